//! Typed configuration.
//!
//! Layers, later ones winning: the embedded `config/default.toml`, then the file named by
//! `--config PATH` (if any), then environment variables `SWITCHBOARD_<SECTION>__<KEY>`.
//! Unknown keys and bad values stop start-up with a message that names the key
//! ([`ConfigError`]).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use figment::providers::{Env, Format, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};

use crate::core::{Code, Rules, TransferNoAnswer};

/// The default configuration, embedded in the binary.
pub const DEFAULT_TOML: &str = include_str!("../config/default.toml");

/// The development admin token of the default config. The engine refuses to listen on a
/// non-loopback address while it is in force.
pub const DEV_ADMIN_TOKEN: &str = "switchboard-dev-admin-token";

/// A configuration that could not be used; the message names the key.
#[derive(Debug, thiserror::Error)]
#[error("configuration error: {0}")]
pub struct ConfigError(pub String);

/// The whole configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub server: ServerConfig,
    pub store: StoreConfig,
    pub api: ApiConfig,
    pub routing: RoutingConfig,
    pub wrapup: WrapupConfig,
    pub idle_codes: Vec<Code>,
    pub queues: Vec<QueueConfig>,
    pub entry_points: Vec<EntryPointConfig>,
    pub log: LogConfig,
    pub messenger: MessengerConfig,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Address of the REST, WebSocket and webhook listener.
    pub listen: SocketAddr,
    /// Larger request bodies get 413.
    pub body_limit_bytes: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// The sled directory.
    pub path: PathBuf,
    /// Ended conversations are removed this many days after they ended.
    pub retain_ended_days: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiConfig {
    pub admin_token: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoutingConfig {
    pub offer_timeout_ms: u64,
    pub transfer_timeout_ms: u64,
    pub conference_timeout_ms: u64,
    pub transfer_no_answer: TransferNoAnswer,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WrapupConfig {
    /// 0 = off.
    pub auto_after_ms: u64,
    pub default_reason: String,
    pub reasons: Vec<Code>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueConfig {
    pub id: String,
    pub name: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EntryPointConfig {
    pub id: String,
    pub name: String,
    pub queue: String,
    #[serde(default)]
    pub page_id: Option<String>,
    #[serde(default)]
    pub page_access_token: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    pub format: LogFormat,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MessengerConfig {
    /// Empty: the webhook is off.
    pub app_secret: String,
    pub verify_token: String,
    pub graph_base_url: String,
    pub graph_version: String,
    pub human_agent_tag: bool,
}

impl Config {
    /// The embedded default with environment overrides from the real environment.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let mut fig = Figment::from(Toml::string(DEFAULT_TOML));
        if let Some(p) = path {
            if !p.is_file() {
                return Err(ConfigError(format!("config file {} does not exist", p.display())));
            }
            fig = fig.merge(Toml::file(p));
        }
        fig = fig.merge(Env::prefixed("SWITCHBOARD_").split("__"));
        let cfg: Config = fig.extract().map_err(|e| ConfigError(e.to_string()))?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks what types cannot: ranges, references, non-empty lists.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |key: &str, why: &str| Err(ConfigError(format!("{key}: {why}")));
        if self.server.body_limit_bytes < 1024 {
            return bad("server.body_limit_bytes", "must be at least 1024");
        }
        for (key, v) in [
            ("routing.offer_timeout_ms", self.routing.offer_timeout_ms),
            ("routing.transfer_timeout_ms", self.routing.transfer_timeout_ms),
            ("routing.conference_timeout_ms", self.routing.conference_timeout_ms),
        ] {
            if v == 0 {
                return bad(key, "must be greater than 0");
            }
        }
        if self.wrapup.reasons.is_empty() {
            return bad("wrapup.reasons", "must list at least one reason");
        }
        if !self.wrapup.reasons.iter().any(|r| r.code == self.wrapup.default_reason) {
            return bad("wrapup.default_reason", "must be one of wrapup.reasons");
        }
        if self.idle_codes.is_empty() {
            return bad("idle_codes", "must list at least one idle code");
        }
        if self.api.admin_token.len() < 16 {
            return bad("api.admin_token", "must be at least 16 characters");
        }
        for q in &self.queues {
            if !crate::core::valid_id(&q.id) {
                return bad("queues.id", "ids are 1 to 64 characters from [A-Za-z0-9_.-]");
            }
        }
        for ep in &self.entry_points {
            if !self.queues.iter().any(|q| q.id == ep.queue) {
                return bad(
                    "entry_points.queue",
                    &format!("entry point {} names unknown queue {}", ep.id, ep.queue),
                );
            }
        }
        if !self.server.listen.ip().is_loopback() && self.api.admin_token == DEV_ADMIN_TOKEN {
            return bad(
                "api.admin_token",
                "the development admin token is in force; set a secret token before listening on a non-loopback address",
            );
        }
        Ok(())
    }

    /// The routing rules the core needs.
    pub fn rules(&self) -> Rules {
        Rules {
            offer_timeout_ms: self.routing.offer_timeout_ms,
            transfer_timeout_ms: self.routing.transfer_timeout_ms,
            conference_timeout_ms: self.routing.conference_timeout_ms,
            transfer_no_answer: self.routing.transfer_no_answer,
            auto_wrapup_after_ms: self.wrapup.auto_after_ms,
            default_wrapup_reason: self.wrapup.default_reason.clone(),
            wrapup_reasons: Arc::new(self.wrapup.reasons.clone()),
            idle_codes: Arc::new(self.idle_codes.clone()),
        }
    }
}
