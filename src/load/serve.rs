//! `--serve`: the real server (REST, WebSocket, sled with group commit) started in this
//! process on `127.0.0.1:0` with a temporary store, so that one command measures
//! everything over real HTTP and WebSocket.

use std::net::TcpListener;

use actix_web::dev::ServerHandle;

use super::{LoadError, Options};
use crate::config::Config;
use crate::engine::{Engine, EngineOptions};

/// A server started by the harness; stopped (and its store removed) by [`Served::stop`].
pub struct Served {
    /// `http://127.0.0.1:PORT`
    pub base: String,
    pub admin_token: String,
    /// The server's process id (this process).
    pub pid: u32,
    handle: ServerHandle,
    _dir: tempfile::TempDir,
}

impl Served {
    /// Starts the server with the default config, the offer deadlines of `opts`, a fresh
    /// admin token and a store in a temporary directory. Must run inside an actix system.
    pub async fn start(opts: &Options) -> Result<Served, LoadError> {
        let setup = |what: &str, e: &dyn std::fmt::Display| LoadError::Setup(format!("{what}: {e}"));
        let dir = tempfile::Builder::new()
            .prefix("switchboard-load-serve-")
            .tempdir()
            .map_err(|e| setup("temporary directory", &e))?;
        let mut config = Config::load(None).map_err(|e| setup("config", &e))?;
        config.store.path = dir.path().join("data");
        config.api.admin_token = format!("load-admin-{:032x}", rand::random::<u128>());
        config.server.listen = "127.0.0.1:0".parse().expect("a socket address");
        config.routing.offer_timeout_ms = opts.offer_timeout_ms;
        config.routing.transfer_timeout_ms = opts.offer_timeout_ms;
        config.routing.conference_timeout_ms = opts.offer_timeout_ms;
        let options = crate::store::SledOptions::from_config(&config.store).with_reports(&config.reports);
        let store = crate::store::open_with(&config.store.path, options).map_err(|e| setup("store", &e))?;
        let engine = Engine::start(EngineOptions::new(config.rules(), store)).map_err(|e| setup("engine", &e))?;
        crate::api::provision(&engine, &config)
            .await
            .map_err(|e| setup("provisioning", &e))?;
        let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| setup("bind", &e))?;
        let addr = listener.local_addr().map_err(|e| setup("bind", &e))?;
        let server = crate::api::build_server(&config, engine, listener).map_err(|e| setup("server", &e))?;
        let handle = server.handle();
        actix_rt::spawn(server);
        Ok(Served {
            base: format!("http://{addr}"),
            admin_token: config.api.admin_token.clone(),
            pid: std::process::id(),
            handle,
            _dir: dir,
        })
    }

    /// Stops the server at once (desktops are cut) and removes its store.
    pub async fn stop(self) {
        self.handle.stop(false).await;
    }
}
