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

use crate::core::{AgentChoice, Code, Rules, Step, TransferNoAnswer};

/// The default configuration, embedded in the binary.
pub const DEFAULT_TOML: &str = include_str!("../config/default.toml");

/// The development admin token of the default config. The engine refuses to listen on a
/// non-loopback address while it is in force.
pub const DEV_ADMIN_TOKEN: &str = "switchboard-dev-admin-token";

/// The prefix of configuration environment variables.
pub const ENV_PREFIX: &str = "SWITCHBOARD_";

/// The top-level keys of [`Config`]: what a `SWITCHBOARD_<SECTION>__...` variable may name.
pub const SECTIONS: &[&str] = &[
    "server",
    "store",
    "api",
    "routing",
    "wrapup",
    "idle_codes",
    "queues",
    "entry_points",
    "log",
    "demo",
    "messenger",
    "supervisor",
    "reports",
    "cluster",
    "webhooks",
];

/// True when an environment key (after the prefix) names a config section.
fn env_names_a_section(key: &str) -> bool {
    let section = key.split("__").next().unwrap_or("");
    SECTIONS.iter().any(|s| s.eq_ignore_ascii_case(section))
}

/// `SWITCHBOARD_*` variables of the environment that name no config section: ignored by
/// [`Config::load`]; the server logs a warning for each (names only, never values).
pub fn stray_env_vars() -> Vec<String> {
    let mut names: Vec<String> = std::env::vars_os()
        .filter_map(|(k, _)| k.into_string().ok())
        .filter(|k| k.starts_with(ENV_PREFIX) && !env_names_a_section(&k[ENV_PREFIX.len()..]))
        .collect();
    names.sort();
    names
}

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
    pub demo: DemoConfig,
    /// The Messenger channel: webhook security, the Graph API, the outbox's retries.
    #[serde(default)]
    pub messenger: MessengerConfig,
    /// The supervisors' live socket: tick, queue refresh, per-socket buffer.
    #[serde(default)]
    pub supervisor: SupervisorConfig,
    /// Reports: how long records and figures are kept.
    #[serde(default)]
    pub reports: ReportsConfig,
    /// Events out: which URLs a subscription may name, and how events are sent.
    #[serde(default)]
    pub webhooks: WebhooksConfig,
    /// Several nodes sharing tenants through NATS JetStream (docs/CLUSTER.md); absent:
    /// the single node on its own store.
    #[serde(default)]
    pub cluster: Option<ClusterConfig>,
}

/// `[reports]` (../shared/API.md "Reports and events out").
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReportsConfig {
    /// Report records (and their search texts) are removed this many days after the
    /// conversation arrived, and the figures of intervals older than that; 400 unless
    /// set (a year and a month, for year-on-year reports).
    pub retention_days: u32,
    /// Reports are written: each complete conversation's record, figures and search
    /// text, and the agents' presence figures. Off: none is written and the reports
    /// answer empty (what is stored already stays, until retention).
    pub enabled: bool,
}

impl Default for ReportsConfig {
    fn default() -> Self {
        ReportsConfig {
            retention_days: 400,
            enabled: true,
        }
    }
}

/// `[webhooks]` (../shared/API.md "Reports and events out"; docs/WEBHOOKS.md).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebhooksConfig {
    /// A subscription may name a URL whose host is loopback or on a private network
    /// (refused with 400 `private_address` otherwise).
    pub allow_private: bool,
    /// One delivery attempt's time limit.
    pub timeout_ms: u64,
    /// The first retry of a failed delivery waits this long; each next one twice as
    /// long, up to `retry_max_ms`.
    pub retry_base_ms: u64,
    pub retry_max_ms: u64,
    /// Most events one subscription's backlog holds; past it the oldest are dropped
    /// (counted in the subscription's `dropped`).
    pub max_backlog: usize,
    /// How often delivery progress is recorded in the store.
    pub report_ms: u64,
}

impl Default for WebhooksConfig {
    fn default() -> Self {
        let s = crate::webhooks::Settings::default();
        WebhooksConfig {
            allow_private: false,
            timeout_ms: s.timeout_ms,
            retry_base_ms: s.delivery.retry_base_ms,
            retry_max_ms: s.delivery.retry_max_ms,
            max_backlog: s.delivery.max_backlog,
            report_ms: s.report_ms,
        }
    }
}

impl WebhooksConfig {
    /// The sender's settings.
    pub fn settings(&self) -> crate::webhooks::Settings {
        crate::webhooks::Settings {
            delivery: crate::core::webhooks::Delivery {
                retry_base_ms: self.retry_base_ms,
                retry_max_ms: self.retry_max_ms,
                max_backlog: self.max_backlog,
            },
            timeout_ms: self.timeout_ms,
            report_ms: self.report_ms,
        }
    }
}

/// `[cluster]`: this node's part in a cluster (docs/CLUSTER.md). Absent by default.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    /// The NATS servers to connect to, comma-separated (`nats://10.0.0.1:4222,...`).
    pub nats_url: String,
    /// This node's name in the cluster: unique, stable across restarts.
    pub node_id: String,
    /// Where other nodes and operators reach this node's HTTP API
    /// (`http://10.0.0.1:8080`); shown in `GET /api/v1/cluster`.
    #[serde(default)]
    pub advertise_url: String,
    /// How long a tenant's lease lasts without being renewed; the owner renews it every
    /// third of this, and stops routing the tenant when it could not before its end.
    #[serde(default = "default_lease_ms")]
    pub lease_ms: u64,
    /// Copies JetStream keeps of the log, the leases and the snapshots (1, 3 or 5; at most
    /// the number of NATS servers).
    #[serde(default = "default_replicas")]
    pub replicas: usize,
    /// The owner writes a snapshot of a tenant after this many log entries since the last.
    #[serde(default = "default_snapshot_every")]
    pub snapshot_every: u64,
}

fn default_lease_ms() -> u64 {
    5_000
}

fn default_replicas() -> usize {
    3
}

fn default_snapshot_every() -> u64 {
    10_000
}

/// `[supervisor]`: the supervisor hub (`api::supervisor`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SupervisorConfig {
    /// The hub publishes what changed once per tick (events of one tick are coalesced:
    /// an agent that changed three times is sent once, as it is now).
    pub tick_ms: u64,
    /// A queue with conversations waiting is sent again after this long even if nothing
    /// else changed, so `longest_wait_ms` stays current (at most a second old).
    pub queue_refresh_ms: u64,
    /// Ticks' worth of events one supervisor socket may have queued before it counts as
    /// too slow and is closed (1013; it resumes from `snapshot`).
    pub socket_buffer: usize,
    /// Supervisor sockets open at once, all supervisors together; one more is closed at
    /// once with 1008 (each costs the hub a serialised copy of every change).
    #[serde(default = "default_max_supervisor_sockets")]
    pub max_sockets: usize,
}

fn default_max_supervisor_sockets() -> usize {
    256
}

impl Default for SupervisorConfig {
    fn default() -> Self {
        SupervisorConfig {
            tick_ms: 100,
            queue_refresh_ms: 900,
            socket_buffer: 64,
            max_sockets: default_max_supervisor_sockets(),
        }
    }
}

/// The demo customer chat page (`/demo/customer`): a browser stands in for a Messenger
/// customer so the agent desktop can be tried without Facebook (docs/DECISIONS.md).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DemoConfig {
    /// Serve `/demo/customer` and its `/demo/api/*` endpoints; off, they are 404.
    pub customer_page: bool,
    /// The entry point the demo customer writes to.
    pub entry_point: String,
    /// New conversations one client address may open through the page per minute; the
    /// next is 429 `rate_limited`. Writing into an open conversation is not counted.
    #[serde(default = "default_new_conversations_per_minute")]
    pub new_conversations_per_minute: u32,
}

fn default_new_conversations_per_minute() -> u32 {
    10
}

/// `[messenger]`: read by `channels::messenger` (webhook, outbox sender, profile look-up)
/// and, for `human_agent_tag`, by the core's 24-hour rule.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MessengerConfig {
    /// The app secret that signs webhook bodies (`X-Hub-Signature-256`). Empty: the
    /// webhook is off (every POST and GET is refused, and start-up warns).
    pub app_secret: String,
    /// The token Meta echoes in the verification handshake.
    pub verify_token: String,
    /// This app's id (the Meta app's "App ID"): echoes of its own messages are ignored,
    /// echoes of other apps' messages (a person writing in the Page's inbox) join the
    /// transcript. Empty: every echo is taken as this app's.
    pub app_id: String,
    /// The Graph API's base URL; tests point it at a local fake.
    pub graph_base_url: String,
    /// The Graph API version in request paths.
    pub graph_version: String,
    /// Outside the 24-hour window, send with the `HUMAN_AGENT` tag (up to 7 days) instead
    /// of refusing the agent's message with 409 `outside_messaging_window`.
    pub human_agent_tag: bool,
    /// Tries per outbound message (the first included) before it is marked failed; 0: no
    /// bound but `retry_for_ms`.
    pub send_max_attempts: u32,
    /// How long a message's retries go on before it is marked failed.
    pub retry_for_ms: u64,
    /// Retry backoff: the first wait, doubled per attempt up to the max, with jitter.
    pub send_backoff_base_ms: u64,
    pub send_backoff_max_ms: u64,
    /// How long one Send API request may take before it counts as a network error.
    pub send_timeout_ms: u64,
    /// The longest a new conversation's offer waits for the User Profile API's name.
    pub profile_timeout_ms: u64,
    /// User Profile API look-ups running at once.
    pub profile_concurrency: usize,
    /// A failed look-up is tried again on a later message after this long, doubling per
    /// failure up to an hour.
    pub profile_retry_ms: u64,
    /// Customers whose look-up state (under way, failed, when to try again) is kept in
    /// memory; the oldest is forgotten beyond it.
    pub profile_cache: usize,
    /// The largest file an agent may send (`POST /api/v1/conversations/{id}/attachments`).
    pub max_attachment_bytes: usize,
    /// Every file agents sent, together, at most (the file store refuses more: 507).
    pub attachments_max_total_bytes: u64,
    /// Where the files agents send are kept; empty: beside the store, in
    /// `<store.path>-attachments`.
    pub attachments_path: String,
}

impl Default for MessengerConfig {
    fn default() -> Self {
        MessengerConfig {
            app_secret: String::new(),
            verify_token: String::new(),
            app_id: String::new(),
            graph_base_url: "https://graph.facebook.com".into(),
            graph_version: "v21.0".into(),
            human_agent_tag: false,
            send_max_attempts: 0,
            retry_for_ms: 3_600_000,
            send_backoff_base_ms: 500,
            send_backoff_max_ms: 60_000,
            send_timeout_ms: 10_000,
            profile_timeout_ms: 1_500,
            profile_concurrency: 8,
            profile_retry_ms: 30_000,
            profile_cache: 10_000,
            max_attachment_bytes: 8 * 1024 * 1024,
            attachments_max_total_bytes: 1024 * 1024 * 1024,
            attachments_path: String::new(),
        }
    }
}

impl MessengerConfig {
    /// The webhook is on only with an app secret: an unsigned webhook is never open.
    pub fn webhook_enabled(&self) -> bool {
        !self.app_secret.is_empty()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Address of the REST, WebSocket and webhook listener: `IP:PORT`, or
    /// `localhost:PORT` (the IPv4 loopback).
    #[serde(deserialize_with = "listen_address")]
    pub listen: SocketAddr,
    /// Larger request bodies get 413.
    pub body_limit_bytes: usize,
    /// How often the server pings each agent desktop.
    #[serde(default = "default_ws_heartbeat_ms")]
    pub ws_heartbeat_ms: u64,
    /// A desktop that sends nothing (not even a pong) for this long is closed.
    #[serde(default = "default_ws_client_timeout_ms")]
    pub ws_client_timeout_ms: u64,
    /// HTTP worker threads; 0 means one per CPU core (actix-web's default).
    #[serde(default)]
    pub workers: usize,
    /// The most desktops (WebSockets) one agent may have connected at once.
    #[serde(default = "default_max_desktops_per_agent")]
    pub max_desktops_per_agent: usize,
    /// On shutdown, how long requests in flight may take to finish.
    #[serde(default = "default_shutdown_grace_ms")]
    pub shutdown_grace_ms: u64,
    /// Reverse proxies whose `X-Forwarded-For` names the client: for a request from one of
    /// these addresses, the per-address limits count the client the header names
    /// (`core::limits::client_address`). Empty: the TCP peer is the client.
    #[serde(default)]
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// Admission control on (`core::limits::Admission`).
    #[serde(default = "default_true")]
    pub admission_control: bool,
    /// The least wait for the engine over an interval that means overload (ms; 0: any).
    #[serde(default = "default_overload_wait_ms")]
    pub overload_wait_ms: u64,
    /// The most tenants the deployment may have, `default` included (../shared/API.md
    /// "Tenants"); bounds the `tenant` label of per-tenant metrics.
    #[serde(default = "default_max_tenants")]
    pub max_tenants: usize,
}

fn default_max_tenants() -> usize {
    100
}

fn default_overload_wait_ms() -> u64 {
    50
}

fn default_true() -> bool {
    true
}

impl ServerConfig {
    /// Admission control as configured; `None` when off.
    pub fn admission(&self) -> Option<crate::core::limits::Admission> {
        self.admission_control.then_some(crate::core::limits::Admission {
            target_ms: self.overload_wait_ms,
            interval_ms: crate::core::limits::QUEUE_WAIT_INTERVAL_MS,
        })
    }
}

fn default_max_desktops_per_agent() -> usize {
    10
}

fn default_shutdown_grace_ms() -> u64 {
    10_000
}

/// `IP:PORT`, or `localhost:PORT` for `127.0.0.1:PORT` (no name resolution: a listen
/// address that depended on `/etc/hosts` or DNS would be a surprise).
fn listen_address<'de, D: serde::Deserializer<'de>>(d: D) -> Result<SocketAddr, D::Error> {
    let raw = String::deserialize(d)?;
    parse_listen(&raw).map_err(serde::de::Error::custom)
}

/// See [`ServerConfig::listen`].
pub fn parse_listen(raw: &str) -> Result<SocketAddr, String> {
    let raw = raw.trim();
    if let Some(port) = raw.strip_prefix("localhost:") {
        let port: u16 = port
            .parse()
            .map_err(|_| format!("`{raw}`: the port must be a number from 0 to 65535"))?;
        return Ok(SocketAddr::from(([127, 0, 0, 1], port)));
    }
    raw.parse().map_err(|_| {
        format!("`{raw}` is not an address; write IP:PORT (e.g. 0.0.0.0:8080, [::]:8080) or localhost:PORT")
    })
}

fn default_ws_heartbeat_ms() -> u64 {
    5_000
}

fn default_ws_client_timeout_ms() -> u64 {
    20_000
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// The sled directory.
    pub path: PathBuf,
    /// Ended conversations are removed this many days after they ended.
    pub retain_ended_days: u32,
    /// `/readyz` is 503 when a probe write to the store takes longer than this.
    #[serde(default = "default_probe_timeout_ms")]
    pub probe_timeout_ms: u64,
    /// sled's page cache, in MiB (sled's `cache_capacity`). Every read fills it (start-up,
    /// reads of finished conversations, the first backup after a start reads every
    /// record), so it is most of the store's share of the server's memory. sled evicts
    /// lazily: the share runs some tens of MB above it (docs/STORE.md "Backup").
    #[serde(default = "default_cache_mb")]
    pub cache_mb: u64,
    /// An online backup sends at most this many MiB a second (0: as fast as its client
    /// takes it). Spreads the backup's reads and the client's writes over time.
    #[serde(default)]
    pub backup_mb_per_s: u64,
}

fn default_probe_timeout_ms() -> u64 {
    2_000
}

fn default_cache_mb() -> u64 {
    1024
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiConfig {
    pub admin_token: String,
    /// The operator's token: manages tenants (../shared/API.md "Tenants"), acts in none.
    /// Empty (the default): the tenant API is off.
    #[serde(default)]
    pub operator_token: String,
    /// `false`: refuse to start with the development admin token or a weak one whatever
    /// `server.listen` is (behind a reverse proxy the listener is loopback, yet public).
    /// The embedded default is `true` so that `cargo run` works; the container image and
    /// the systemd unit set it to `false`.
    #[serde(default = "default_allow_development_token")]
    pub allow_development_token: bool,
    /// How long a session token from `POST /api/v1/login` lasts.
    #[serde(default = "default_session_ttl_ms")]
    pub session_ttl_ms: u64,
    /// Password checks (Argon2id hashes and verifications, several MiB of memory each)
    /// running at once; default twice the cores. A sign-in over that waits up to
    /// `password_check_wait_ms` for its turn, then is 503 `busy`.
    #[serde(default)]
    pub max_concurrent_password_checks: Option<usize>,
    #[serde(default = "default_password_check_wait_ms")]
    pub password_check_wait_ms: u64,
}

fn default_password_check_wait_ms() -> u64 {
    500
}

impl ApiConfig {
    /// `max_concurrent_password_checks`, or twice the cores when unset.
    pub fn password_checks(&self) -> usize {
        self.max_concurrent_password_checks
            .unwrap_or_else(|| 2 * std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get))
    }
}

fn default_allow_development_token() -> bool {
    true
}

fn default_session_ttl_ms() -> u64 {
    12 * 60 * 60 * 1000
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoutingConfig {
    pub offer_timeout_ms: u64,
    pub transfer_timeout_ms: u64,
    pub conference_timeout_ms: u64,
    pub transfer_no_answer: TransferNoAnswer,
    /// `longest_idle` or `best_skilled` (../shared/SPEC.md "Routing depth").
    #[serde(default)]
    pub agent_choice: AgentChoice,
    /// How long a returning customer's new conversation waits for its last owner alone
    /// (0: no preferred agent).
    #[serde(default)]
    pub last_agent_ms: u64,
    /// How recently the customer's previous conversation must have ended (0: off).
    #[serde(default)]
    pub last_agent_within_ms: u64,
    /// Close an active conversation whose customer has been silent this long (0: off).
    #[serde(default)]
    pub inactivity_close_ms: u64,
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
    /// Steps for conversations transferred into the queue.
    #[serde(default)]
    pub routing_steps: Vec<Step>,
    /// Business hours (docs/API-NOTES.md "Business hours"), set when the queue is first
    /// created, like the rest of it; `PATCH /api/v1/queues/{id}` changes them later.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hours: Option<crate::core::hours::Hours>,
    /// The satisfaction survey after a served conversation (docs/API-NOTES.md
    /// "Satisfaction"; set at first creation too).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub survey: Option<crate::core::survey::Survey>,
    /// The most conversations that may wait, and what a customer past it is told (set at
    /// first creation too).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait_limit: Option<crate::core::queue::WaitLimit>,
    /// The service level threshold in ms (set at first creation too; 60000 unless set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_level_ms: Option<u64>,
    /// Messages to waiting customers about their place in line (docs/API-NOTES.md
    /// "Place in line"; set at first creation too).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub place_updates: Option<crate::core::place::PlaceUpdates>,
    /// Where conversations that waited too long go (docs/API-NOTES.md "Overflow"; set at
    /// first creation too, once every configured queue exists).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overflow: Option<crate::core::queue::Overflow>,
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
    #[serde(default)]
    pub priority: i32,
    #[serde(default)]
    pub routing_steps: Vec<Step>,
    /// Messenger: `off` (standby events are skipped) or `take` (a customer message in
    /// standby makes the engine take thread control from the app that owns it). Set (or
    /// with `return_to_app_id`) it replaces the stored one at start-up.
    #[serde(default)]
    pub thread_control: crate::core::messenger::ThreadControl,
    /// Messenger: the app that gets thread control back when a conversation ends.
    #[serde(default)]
    pub return_to_app_id: Option<String>,
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

/// The longest offer timeout or automatic wrap-up delay the config accepts: 24 hours. An
/// offer nobody answers for a day is a misconfiguration, and the bound keeps every deadline
/// (`now` plus a timeout) far from overflowing; the core adds with saturation anyway.
pub const MAX_TIMEOUT_MS: u64 = 24 * 60 * 60 * 1000;
/// The longest `routing.last_agent_within_ms`: 90 days.
pub const MAX_WITHIN_MS: u64 = 90 * 24 * 60 * 60 * 1000;

/// Names the key of every figment error in lower-case dotted form, with its source.
fn describe(errors: figment::Error) -> ConfigError {
    let lines: Vec<String> = errors
        .into_iter()
        .map(|e| {
            let key = e.path.join(".").to_lowercase();
            let source = e
                .metadata
                .as_ref()
                .map(|m| match &m.source {
                    Some(src) => format!("{} {src}", m.name),
                    None => m.name.to_string(),
                })
                .unwrap_or_default();
            let key = if key.is_empty() { "(top level)".to_string() } else { key };
            if source.is_empty() {
                format!("{key}: {}", e.kind)
            } else {
                format!("{key}: {} (from {source})", e.kind)
            }
        })
        .collect();
    ConfigError(lines.join("; "))
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
        // Only variables that name a section: platforms inject others for a service named
        // `switchboard` (SWITCHBOARD_PORT=tcp://..., SWITCHBOARD_SERVICE_HOST); those are
        // ignored with a warning ([`stray_env_vars`]). An unknown key inside a known
        // section still stops start-up.
        fig = fig.merge(
            Env::prefixed(ENV_PREFIX)
                .filter(|key| env_names_a_section(key.as_str()))
                .split("__"),
        );
        let cfg: Config = fig.extract().map_err(describe)?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks what types cannot: ranges, references, non-empty lists.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |key: &str, why: &str| Err(ConfigError(format!("{key}: {why}")));
        if self.server.body_limit_bytes < 1024 {
            return bad("server.body_limit_bytes", "must be at least 1024");
        }
        if self.supervisor.tick_ms == 0 || self.supervisor.tick_ms > 1000 {
            return bad("supervisor.tick_ms", "must be 1 to 1000");
        }
        if self.supervisor.queue_refresh_ms == 0 || self.supervisor.queue_refresh_ms > 1000 {
            return bad("supervisor.queue_refresh_ms", "must be 1 to 1000");
        }
        if self.supervisor.socket_buffer == 0 {
            return bad("supervisor.socket_buffer", "must be greater than 0");
        }
        if let Some(c) = &self.cluster {
            if c.nats_url.trim().is_empty() {
                return bad("cluster.nats_url", "must name at least one NATS server");
            }
            if c.node_id.is_empty()
                || c.node_id.len() > 64
                || !c
                    .node_id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                return bad("cluster.node_id", "must be 1 to 64 letters, digits, '-' or '_'");
            }
            if c.lease_ms < 500 || c.lease_ms > 60_000 {
                return bad("cluster.lease_ms", "must be 500 to 60000");
            }
            if ![1, 3, 5].contains(&c.replicas) {
                return bad("cluster.replicas", "must be 1, 3 or 5");
            }
            if c.snapshot_every == 0 {
                return bad("cluster.snapshot_every", "must be at least 1");
            }
        }
        let w = &self.webhooks;
        if w.timeout_ms == 0 || w.timeout_ms > 60_000 {
            return bad("webhooks.timeout_ms", "must be 1 to 60000");
        }
        if w.retry_base_ms == 0 || w.retry_max_ms < w.retry_base_ms || w.retry_max_ms > MAX_TIMEOUT_MS {
            return bad(
                "webhooks.retry_max_ms",
                "retry_base_ms must be at least 1, and retry_max_ms from it to 86400000",
            );
        }
        if w.max_backlog == 0 || w.max_backlog > 10_000_000 {
            return bad("webhooks.max_backlog", "must be 1 to 10000000");
        }
        if w.report_ms < 10 || w.report_ms > 60_000 {
            return bad("webhooks.report_ms", "must be 10 to 60000");
        }
        if self.server.ws_heartbeat_ms == 0 {
            return bad("server.ws_heartbeat_ms", "must be greater than 0");
        }
        if self.server.ws_client_timeout_ms <= self.server.ws_heartbeat_ms {
            return bad(
                "server.ws_client_timeout_ms",
                "must be longer than server.ws_heartbeat_ms",
            );
        }
        if self.messenger.profile_concurrency == 0 {
            return bad("messenger.profile_concurrency", "must be at least 1");
        }
        if self.messenger.profile_cache == 0 {
            return bad("messenger.profile_cache", "must be at least 1");
        }
        if self.messenger.send_backoff_max_ms < self.messenger.send_backoff_base_ms {
            return bad(
                "messenger.send_backoff_max_ms",
                "must be at least messenger.send_backoff_base_ms",
            );
        }
        if !(self.messenger.graph_base_url.starts_with("http://")
            || self.messenger.graph_base_url.starts_with("https://"))
        {
            return bad("messenger.graph_base_url", "must be an http:// or https:// URL");
        }
        for (key, v) in [
            ("routing.offer_timeout_ms", self.routing.offer_timeout_ms),
            ("routing.transfer_timeout_ms", self.routing.transfer_timeout_ms),
            ("routing.conference_timeout_ms", self.routing.conference_timeout_ms),
        ] {
            if v == 0 {
                return bad(key, "must be greater than 0");
            }
            if v > MAX_TIMEOUT_MS {
                return bad(key, &format!("must be at most {MAX_TIMEOUT_MS} (24 hours)"));
            }
        }
        for (key, v, max) in [
            ("routing.last_agent_ms", self.routing.last_agent_ms, MAX_TIMEOUT_MS),
            (
                "routing.inactivity_close_ms",
                self.routing.inactivity_close_ms,
                MAX_TIMEOUT_MS,
            ),
            (
                "routing.last_agent_within_ms",
                self.routing.last_agent_within_ms,
                MAX_WITHIN_MS,
            ),
        ] {
            if v > max {
                return bad(key, &format!("must be at most {max}"));
            }
        }
        for q in &self.queues {
            if let Err(e) = crate::core::routing::check_steps(&q.routing_steps) {
                return bad("queues.routing_steps", &format!("queue {}: {e}", q.id));
            }
        }
        for ep in &self.entry_points {
            if let Err(e) = crate::core::routing::check_steps(&ep.routing_steps) {
                return bad("entry_points.routing_steps", &format!("entry point {}: {e}", ep.id));
            }
        }
        if self.wrapup.auto_after_ms > MAX_TIMEOUT_MS {
            return bad(
                "wrapup.auto_after_ms",
                &format!("must be at most {MAX_TIMEOUT_MS} (24 hours)"),
            );
        }
        if self.api.session_ttl_ms < 1000 {
            return bad("api.session_ttl_ms", "must be at least 1000");
        }
        if self.api.max_concurrent_password_checks == Some(0) {
            return bad("api.max_concurrent_password_checks", "must be at least 1");
        }
        if self.supervisor.max_sockets == 0 {
            return bad("supervisor.max_sockets", "must be at least 1");
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
            if let Some(o) = &q.overflow {
                if let Err(e) = o.check(&q.id) {
                    return bad("queues.overflow", &format!("queue {}: {e}", q.id));
                }
                if !self.queues.iter().any(|t| t.id == o.to_queue) {
                    return bad(
                        "queues.overflow",
                        &format!("queue {} overflows to unknown queue {}", q.id, o.to_queue),
                    );
                }
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
        if self.demo.customer_page && !crate::core::valid_id(&self.demo.entry_point) {
            return bad("demo.entry_point", "ids are 1 to 64 characters from [A-Za-z0-9_.-]");
        }
        if !self.server.listen.ip().is_loopback() && self.api.admin_token == DEV_ADMIN_TOKEN {
            return bad(
                "api.admin_token",
                "the development admin token is in force; set a secret token before listening on a non-loopback address",
            );
        }
        if !self.server.listen.ip().is_loopback() {
            if let Some(why) = crate::core::limits::weak_token(&self.api.admin_token) {
                return bad("api.admin_token", why);
            }
        }
        if !self.api.allow_development_token {
            // Whatever the listen address: behind a reverse proxy every request arrives
            // from loopback, so loopback says nothing about who can reach the engine.
            if self.api.admin_token == DEV_ADMIN_TOKEN {
                return bad(
                    "api.admin_token",
                    "the development admin token is in force and api.allow_development_token is false; \
                     set SWITCHBOARD_API__ADMIN_TOKEN to a secret (e.g. `openssl rand -hex 32`)",
                );
            }
            if let Some(why) = crate::core::limits::weak_token(&self.api.admin_token) {
                return bad(
                    "api.admin_token",
                    &format!("{why} (api.allow_development_token is false, so this holds on loopback too)"),
                );
            }
        }
        if self.demo.new_conversations_per_minute == 0 {
            return bad("demo.new_conversations_per_minute", "must be at least 1");
        }
        if self.server.max_desktops_per_agent == 0 {
            return bad("server.max_desktops_per_agent", "must be at least 1");
        }
        if self.store.cache_mb == 0 {
            return bad("store.cache_mb", "must be greater than 0");
        }
        if self.server.max_tenants == 0 {
            return bad("server.max_tenants", "must be at least 1 (tenant default)");
        }
        if !self.api.operator_token.is_empty() {
            // The operator creates and deletes whole contact centres: never a weak token,
            // and never one that is also the admin's.
            if crate::core::limits::weak_token(&self.api.operator_token).is_some() {
                return bad(
                    "api.operator_token",
                    "must be a random secret of at least 32 characters (e.g. `openssl rand -hex 32`)",
                );
            }
            if self.api.operator_token == self.api.admin_token {
                return bad("api.operator_token", "must differ from api.admin_token");
            }
        }
        if self.store.probe_timeout_ms == 0 {
            return bad("store.probe_timeout_ms", "must be greater than 0");
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
            human_agent_tag: self.messenger.human_agent_tag,
            agent_choice: self.routing.agent_choice,
            last_agent_ms: self.routing.last_agent_ms,
            last_agent_within_ms: self.routing.last_agent_within_ms,
            inactivity_close_ms: self.routing.inactivity_close_ms,
            reports: self.reports.enabled,
            // A cluster's new owner keeps the offers' deadlines (docs/CLUSTER.md).
            offers_keep_deadlines: self.cluster.is_some(),
        }
    }
}

#[cfg(test)]
// figment's Jail API returns its (large) error type by value; that is its design.
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;
    use figment::Jail;

    /// Runs `f` in a jail (a temp dir with a private environment) and returns its result.
    fn jailed<T>(f: impl FnOnce(&mut Jail) -> Result<T, figment::Error>) -> T {
        let mut out = None;
        Jail::expect_with(|jail| {
            out = Some(f(jail)?);
            Ok(())
        });
        out.expect("jail ran")
    }

    /// Every section of the config can be set from the environment (a section missing
    /// from [`SECTIONS`] was once silently ignored there).
    #[test]
    fn every_section_may_be_named_by_the_environment() {
        let c = jailed(|_| Ok(Config::load(None))).expect("default config");
        let v = serde_json::to_value(&c).expect("the config serializes");
        let mut keys: Vec<&str> = v.as_object().expect("an object").keys().map(String::as_str).collect();
        keys.sort_unstable();
        let mut sections = SECTIONS.to_vec();
        sections.sort_unstable();
        assert_eq!(keys, sections);
    }

    #[test]
    fn embedded_default_is_valid_and_matches_the_spec() {
        // In a jail too: the jails of other tests set SWITCHBOARD_* variables in this
        // process, and the jail's lock keeps them out while this test reads the env.
        let c = jailed(|_| Ok(Config::load(None))).expect("default config");
        assert_eq!(c.server.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.server.body_limit_bytes, 65536);
        assert_eq!(c.store.path, PathBuf::from("./data"));
        assert_eq!(c.routing.offer_timeout_ms, 30000);
        assert_eq!(c.routing.transfer_no_answer, TransferNoAnswer::Drop);
        assert_eq!(c.wrapup.auto_after_ms, 0);
        assert!(c.wrapup.reasons.len() >= 3);
        assert!(c.idle_codes.len() >= 2);
        assert_eq!(c.queues.len(), 1);
        assert_eq!(c.entry_points.len(), 1);
        assert!(c.demo.customer_page, "the demo customer page is on by default");
        assert_eq!(c.api.session_ttl_ms, 12 * 60 * 60 * 1000);
        assert_eq!(c.demo.entry_point, "demo-page");
    }

    #[test]
    fn environment_overrides_every_section() {
        let c = jailed(|jail| {
            jail.set_env("SWITCHBOARD_SERVER__LISTEN", "127.0.0.1:9000");
            jail.set_env("SWITCHBOARD_STORE__PATH", "/var/lib/switchboard");
            jail.set_env("SWITCHBOARD_ROUTING__OFFER_TIMEOUT_MS", "5000");
            jail.set_env("SWITCHBOARD_ROUTING__TRANSFER_NO_ANSWER", "requeue");
            jail.set_env("SWITCHBOARD_API__ADMIN_TOKEN", "a-very-secret-admin-token");
            Ok(Config::load(None))
        })
        .expect("config");
        assert_eq!(c.server.listen.port(), 9000);
        assert_eq!(c.store.path, PathBuf::from("/var/lib/switchboard"));
        assert_eq!(c.routing.offer_timeout_ms, 5000);
        assert_eq!(c.routing.transfer_no_answer, TransferNoAnswer::Requeue);
        assert_eq!(c.api.admin_token, "a-very-secret-admin-token");
    }

    #[test]
    fn a_config_file_overrides_the_default() {
        let c = jailed(|jail| {
            jail.create_file("sb.toml", "[routing]\noffer_timeout_ms = 1234\n")?;
            Ok(Config::load(Some(Path::new("sb.toml"))))
        })
        .expect("config");
        assert_eq!(c.routing.offer_timeout_ms, 1234);
        assert_eq!(c.routing.transfer_timeout_ms, 30000, "other keys keep their defaults");
    }

    /// Each bad value stops start-up with a message naming its key.
    #[test]
    fn the_shutdown_grace_is_configurable() {
        let d = jailed(|_| Ok(Config::load(None))).expect("default config");
        assert_eq!(d.server.shutdown_grace_ms, 10_000);
        let c = jailed(|jail| {
            jail.set_env("SWITCHBOARD_SERVER__SHUTDOWN_GRACE_MS", "1500");
            Ok(Config::load(None))
        })
        .expect("config");
        assert_eq!(c.server.shutdown_grace_ms, 1500);
    }

    #[test]
    fn bad_values_name_their_key() {
        let cases: &[(&str, &str, &str)] = &[
            ("SWITCHBOARD_ROUTING__OFFER_TIMEOUT_MS", "soon", "offer_timeout_ms"),
            ("SWITCHBOARD_ROUTING__OFFER_TIMEOUT_MS", "0", "routing.offer_timeout_ms"),
            (
                "SWITCHBOARD_ROUTING__OFFER_TIMEOUT_MS",
                "86400001",
                "routing.offer_timeout_ms",
            ),
            (
                "SWITCHBOARD_ROUTING__CONFERENCE_TIMEOUT_MS",
                "18446744073709551615",
                "routing.conference_timeout_ms",
            ),
            ("SWITCHBOARD_WRAPUP__AUTO_AFTER_MS", "86400001", "wrapup.auto_after_ms"),
            ("SWITCHBOARD_ROUTING__TRANSFER_NO_ANSWER", "maybe", "transfer_no_answer"),
            ("SWITCHBOARD_SERVER__LISTEN", "not-an-address", "listen"),
            ("SWITCHBOARD_WRAPUP__DEFAULT_REASON", "nope", "wrapup.default_reason"),
            ("SWITCHBOARD_SERVER__LISTEN", "0.0.0.0:8080", "api.admin_token"),
            ("SWITCHBOARD_ROUTING__NO_SUCH_KEY", "1", "no_such_key"),
        ];
        for (key, value, named) in cases {
            let err = jailed(|jail| {
                jail.set_env(key, value);
                Ok(Config::load(None))
            })
            .expect_err("must be refused");
            assert!(err.to_string().contains(named), "{key}={value}: {err}");
        }
    }

    #[test]
    fn a_bad_or_missing_file_is_refused() {
        let err = jailed(|jail| {
            jail.create_file("bad.toml", "[routing\noffer_timeout_ms = 1")?;
            Ok(Config::load(Some(Path::new("bad.toml"))))
        })
        .expect_err("bad syntax");
        assert!(err.to_string().contains("bad.toml"), "{err}");
        let err = Config::load(Some(Path::new("/no/such/switchboard.toml"))).expect_err("missing");
        assert!(err.to_string().contains("does not exist"), "{err}");
    }

    #[test]
    fn non_loopback_listen_with_a_real_token_is_allowed() {
        let c = jailed(|jail| {
            jail.set_env("SWITCHBOARD_SERVER__LISTEN", "0.0.0.0:8080");
            jail.set_env("SWITCHBOARD_API__ADMIN_TOKEN", "production-secret-token-0123456789");
            Ok(Config::load(None))
        });
        assert!(c.is_ok(), "{c:?}");
    }

    /// On a non-loopback listener the admin token must be long and not a repetition.
    #[test]
    fn a_weak_admin_token_is_refused_off_loopback() {
        for (listen, token, ok) in [
            ("0.0.0.0:8080", "aaaaaaaaaaaaaaaa", false),
            ("0.0.0.0:8080", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", false),
            ("0.0.0.0:8080", "short-secret-0123", false),
            ("0.0.0.0:8080", "9f86d081884c7d659a2feaa0c55ad015", true),
            ("127.0.0.1:8080", "aaaaaaaaaaaaaaaa", true),
        ] {
            let c = jailed(|jail| {
                jail.set_env("SWITCHBOARD_SERVER__LISTEN", listen);
                jail.set_env("SWITCHBOARD_API__ADMIN_TOKEN", token);
                Ok(Config::load(None))
            });
            match c {
                Ok(_) => assert!(ok, "{listen} {token} accepted"),
                Err(e) => {
                    assert!(!ok, "{listen} {token} refused: {e}");
                    assert!(e.to_string().contains("api.admin_token"), "{e}");
                }
            }
        }
    }

    /// Variables that name no section are ignored (and reported); an unknown key in a
    /// known section still stops start-up; `localhost:PORT` is a listen address.
    #[test]
    fn stray_variables_are_ignored_and_localhost_is_an_address() {
        let (c, stray) = jailed(|jail| {
            jail.set_env("SWITCHBOARD_PORT", "tcp://10.0.0.1:8080");
            jail.set_env("SWITCHBOARD_SERVICE_HOST", "10.0.0.1");
            jail.set_env("SWITCHBOARD_PORT_8080_TCP_ADDR", "10.0.0.1");
            jail.set_env("SWITCHBOARD_SERVER__LISTEN", "localhost:9123");
            Ok((Config::load(None), stray_env_vars()))
        });
        let c = c.expect("stray variables are not an error");
        assert_eq!(c.server.listen.to_string(), "127.0.0.1:9123");
        assert_eq!(
            stray,
            [
                "SWITCHBOARD_PORT",
                "SWITCHBOARD_PORT_8080_TCP_ADDR",
                "SWITCHBOARD_SERVICE_HOST"
            ]
        );
        let err = jailed(|jail| {
            jail.set_env("SWITCHBOARD_SERVER__NO_SUCH_KEY", "1");
            Ok(Config::load(None))
        })
        .expect_err("unknown key in a known section");
        assert!(err.to_string().contains("no_such_key"), "{err}");
    }
    /// With `api.allow_development_token = false` (the container image and the systemd
    /// unit), the development token and weak tokens are refused on loopback too, naming
    /// the key; a real token starts. The embedded default allows them on loopback.
    #[test]
    fn a_recipe_can_refuse_the_development_token_on_loopback() {
        let d = jailed(|_| Ok(Config::load(None))).expect("default config");
        assert!(d.api.allow_development_token, "cargo run works out of the box");
        assert_eq!(d.api.admin_token, DEV_ADMIN_TOKEN);
        for (token, ok) in [
            (None, false),
            (Some("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"), false),
            (Some("short-secret-0123"), false),
            (Some("9f86d081884c7d659a2feaa0c55ad015"), true),
        ] {
            let c = jailed(|jail| {
                jail.set_env("SWITCHBOARD_SERVER__LISTEN", "127.0.0.1:8080");
                jail.set_env("SWITCHBOARD_API__ALLOW_DEVELOPMENT_TOKEN", "false");
                if let Some(t) = token {
                    jail.set_env("SWITCHBOARD_API__ADMIN_TOKEN", t);
                }
                Ok(Config::load(None))
            });
            match c {
                Ok(_) => assert!(ok, "{token:?} accepted"),
                Err(e) => {
                    assert!(!ok, "{token:?} refused: {e}");
                    let e = e.to_string();
                    assert!(
                        e.contains("api.admin_token") && e.contains("api.allow_development_token"),
                        "{e}"
                    );
                }
            }
        }
    }

    /// `[demo]` is a section for the environment too: the container image and the unit
    /// turn the page off with `SWITCHBOARD_DEMO__CUSTOMER_PAGE=false`, which must not be
    /// ignored as a stray variable. The per-address limit has a default and a bound.
    #[test]
    fn the_demo_page_is_configured_from_the_environment() {
        let d = jailed(|_| Ok(Config::load(None))).expect("default config");
        assert_eq!(d.demo.new_conversations_per_minute, 10);
        let (c, stray) = jailed(|jail| {
            jail.set_env("SWITCHBOARD_DEMO__CUSTOMER_PAGE", "false");
            jail.set_env("SWITCHBOARD_DEMO__NEW_CONVERSATIONS_PER_MINUTE", "3");
            Ok((Config::load(None), stray_env_vars()))
        });
        let c = c.expect("config");
        assert!(!c.demo.customer_page);
        assert_eq!(c.demo.new_conversations_per_minute, 3);
        assert!(stray.is_empty(), "{stray:?}");
        let err = jailed(|jail| {
            jail.set_env("SWITCHBOARD_DEMO__NEW_CONVERSATIONS_PER_MINUTE", "0");
            Ok(Config::load(None))
        })
        .expect_err("0 refused");
        assert!(err.to_string().contains("demo.new_conversations_per_minute"), "{err}");
    }
}
