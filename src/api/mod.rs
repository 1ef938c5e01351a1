//! The HTTP edge of Switchboard: REST, the agent desktop WebSocket, health, metrics and
//! the OpenAPI description (../shared/API.md is the contract).
//!
//! # Architecture invariant
//! This is the only place that knows HTTP, JSON and WebSocket frames. Handlers
//! authenticate, turn requests into [`crate::engine::Command`]s and queries on the
//! [`Engine`], and turn answers into wire types ([`dto`]); they hold no routing rule.
//! Statuses are derived once, in [`error`], from the domain error's kind.
//!
//! - [`auth`]: admin and agent tokens (401 vs 403).
//! - [`dto`]: wire types, converted from core types with `From`.
//! - [`error`]: the one error mapping and the JSON error handlers.
//! - [`headers`]: `Cache-Control: no-store` on API answers, the pages' protections on
//!   Swagger UI.
//! - [`rest`]: the REST handlers.
//! - [`ws`]: the desktop session actor.
//! - [`openapi`]: the generated OpenAPI description and its browsable UI.
//! - [`ops`]: liveness, readiness and the online backup.
//! - [`pages`]: the embedded browser pages (agent desktop at `/`, demo customer chat).
//! - [`signin`]: accounts over HTTP: password sign-in, sessions, sign-out, password
//!   changes and token reissue, for agents and supervisors alike.
//! - [`socket`]: what the desktop and supervisor sockets share: caps, and ending with
//!   their credential.
//! - [`password`]: Argon2id hashing (off the engine thread).
//! - [`supervisor`]: supervisor accounts, presence control, the audit trail, and the
//!   supervisors' live socket with its hub.
//! - [`reports`]: the records of complete conversations (`/api/v1/reports/*`).
//! - [`canned`]: canned responses (`/api/v1/canned-responses`).
//! - [`history`]: the customer's earlier conversations beside one
//!   (`/api/v1/conversations/{id}/history`).
//! - [`webhooks`]: events out, the subscriptions (`/api/v1/webhooks`).
//! - [`tenants`]: the operator's tenant API (`api.operator_token`).
//! - [`demo`]: the demo customer's narrow API (`/demo/api/*`, off with `demo.customer_page`).

pub mod attachments;
pub mod auth;
pub mod canned;
pub mod cluster;
pub mod demo;
pub mod dto;
pub mod error;
pub mod forward;
pub mod headers;
pub mod history;
pub mod openapi;
pub mod ops;
pub mod pages;
pub mod password;
pub mod reports;
pub mod rest;
pub mod signin;
pub mod socket;
pub mod supervisor;
pub mod tenants;
pub mod webhooks;
pub mod ws;

use std::io;
use std::net::TcpListener;
use std::sync::Arc;
use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{Server, ServiceRequest, ServiceResponse};
use actix_web::middleware::{from_fn, Next};
use actix_web::{web, App, HttpMessage, HttpServer};
use tokio::sync::broadcast;
use tracing::Instrument;
use utoipa::OpenApi;
use utoipa_swagger_ui::SwaggerUi;

use crate::config::Config;
use crate::engine::Engine;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    /// The engine of the tenant this state acts in (`default`'s in the server's own state).
    pub engine: Engine,
    /// The id of the tenant this state acts in.
    pub tenant_id: Arc<str>,
    /// Every tenant, `default` included, and their engines.
    pub tenants: Arc<crate::tenants::Tenants>,
    /// The admin bearer token (compared in constant time, see [`auth`]).
    pub admin_token: Arc<str>,
    /// The operator's token (`api.operator_token`); empty: the tenant API is off.
    pub operator_token: Arc<str>,
    /// The state of each tenant other than `default` as [`auth::Tenanted`] hands it out
    /// (this state with the tenant's engine and supervisor hub), made on first use.
    pub tenant_states: Arc<std::sync::Mutex<std::collections::HashMap<String, TenantState>>>,
    /// Largest request body and WebSocket message, in bytes.
    pub body_limit: usize,
    /// How often desktops are pinged, and how long one may stay silent.
    pub heartbeat: std::time::Duration,
    pub client_timeout: std::time::Duration,
    /// Tells every desktop session that the server is shutting down.
    pub shutdown: broadcast::Sender<()>,
    /// Failed authentications per client address (../shared/API.md "Operations").
    pub auth_failures: Arc<std::sync::Mutex<crate::core::limits::AuthFailures<std::net::IpAddr>>>,
    /// How long `/readyz` waits for the store's probe write and for the engine.
    pub probe_timeout: std::time::Duration,
    /// Connected desktops per agent, and the most one agent may have at once.
    pub desktops: Arc<socket::SocketSlots>,
    /// The demo customer page's entry point; `None` when `demo.customer_page` is off.
    pub demo_entry_point: Option<Arc<str>>,
    /// The demo page's new conversations per client address (`demo.new_conversations_per_minute`).
    pub demo_openings: Arc<std::sync::Mutex<crate::core::limits::NewConversations<std::net::IpAddr>>>,
    /// Failed password sign-ins per account (../shared/API.md: 5 a minute, then 429).
    pub sign_in_failures: Arc<std::sync::Mutex<crate::core::limits::AuthFailures<crate::core::AccountRef>>>,
    /// Password hashes and verifications, bounded (`api.max_concurrent_password_checks`).
    pub password_checks: password::PasswordChecks,
    /// Proxies whose `X-Forwarded-For` names the client (`server.trusted_proxies`).
    pub trusted_proxies: Arc<[std::net::IpAddr]>,
    /// A cluster's tenant server: every request comes through a node's front server, whose
    /// address is trusted as a proxy too (docs/CLUSTER.md "Any node, any client").
    pub behind_front: bool,
    /// Supervisor sockets open now, capped at `supervisor.max_sockets`.
    pub supervisor_sockets: Arc<socket::SocketSlots>,
    /// How long a session token lasts (`api.session_ttl_ms`).
    pub session_ttl_ms: u64,
    /// The supervisor hub (its own thread) and its settings.
    pub hub: actix::Addr<supervisor::hub::Hub>,
    pub supervisor: crate::config::SupervisorConfig,
    /// The files agents send, and the largest one (`messenger.max_attachment_bytes`).
    pub files: Arc<crate::channels::files::FileStore>,
    pub max_attachment_bytes: usize,
    /// A webhook URL may name a loopback or private address (`webhooks.allow_private`).
    pub webhooks_allow_private: bool,
}

/// A tenant's state (see [`AppState::tenant_states`]) and its id.
#[derive(Clone)]
pub struct TenantState {
    pub state: web::Data<AppState>,
    pub id: Arc<str>,
}

impl AppState {
    /// A new token of this state's tenant ([`auth::new_token_in`]).
    pub fn new_token(&self) -> String {
        auth::new_token_in(&self.tenant_id)
    }

    /// Tenant `tenant`'s state over its `engine`: made once (with a supervisor hub of its
    /// own: a hub watches one floor) and kept, so that a request costs a look-up. A kept
    /// state over another engine (the tenant was deleted and made again) is replaced.
    pub fn tenant_state(&self, tenant: &str, engine: &Engine) -> TenantState {
        let mut states = self.tenant_states.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(kept) = states.get(tenant).filter(|k| k.state.engine.is(engine)) {
            return kept.clone();
        }
        let mut s = self.clone();
        s.engine = engine.clone();
        s.tenant_id = tenant.into();
        s.hub = supervisor::hub::Hub::start_on_own_thread(engine.clone(), self.supervisor.clone());
        let made = TenantState {
            state: web::Data::new(s),
            id: tenant.into(),
        };
        if let Some(old) = states.insert(tenant.to_string(), made.clone()) {
            old.state.hub.do_send(supervisor::hub::Stop);
        }
        made
    }

    /// Drops a deleted tenant's state and stops its supervisor hub.
    pub fn forget_tenant(&self, tenant: &str) {
        let gone = self
            .tenant_states
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(tenant);
        if let Some(gone) = gone {
            gone.state.hub.do_send(supervisor::hub::Stop);
        }
    }
}

/// Failed authentications from one address within [`AUTH_WINDOW_MS`] before its wrong
/// tokens get 429 (../shared/API.md "Operations").
pub const AUTH_FAILURE_LIMIT: u32 = 20;
/// The window of [`AUTH_FAILURE_LIMIT`].
pub const AUTH_WINDOW_MS: u64 = 60_000;
/// Client addresses whose failures are tracked at once (bounds the limiter's memory).
pub const AUTH_TRACKED_ADDRESSES: usize = 100_000;

/// Opens the store, starts the engine, creates the configured queues and entry points,
/// and serves until Ctrl-C or SIGTERM. Must run inside an actix system. The store is
/// closed (and its summary logged) however serving ends.
pub async fn serve(config: Config) -> io::Result<()> {
    if config.cluster.is_some() {
        // A node of a cluster: a front server, and the server of each tenant it owns (docs/CLUSTER.md).
        return crate::cluster::serve(config).await;
    }
    let options = crate::store::SledOptions::from_config(&config.store).with_reports(&config.reports);
    let sled = Arc::new(crate::store::SledStore::open(&config.store.path, options).map_err(io::Error::other)?);
    let result = serve_on(&config, sled.clone()).await;
    sled.close();
    result
}

async fn serve_on(config: &Config, sled: Arc<crate::store::SledStore>) -> io::Result<()> {
    let store: Arc<dyn crate::store::Store> = sled;
    let (engine, outbox) = crate::channels::messenger::start_engine(config, store).map_err(io::Error::other)?;
    provision(&engine, config).await?;
    let listen = config.server.listen;
    let listener = TcpListener::bind(listen)
        .map_err(|e| io::Error::new(e.kind(), format!("cannot listen on {listen} (server.listen): {e}")))?;
    let addr = listener.local_addr()?;
    if !config.messenger.webhook_enabled() {
        tracing::warn!(
            "the Messenger webhook is off: no app secret (set messenger.app_secret or \
             SWITCHBOARD_MESSENGER__APP_SECRET); /webhooks/messenger refuses every request"
        );
    }
    let (server, shutdown, tenants) = build(config, engine, Some(outbox), listener, None, None)?;
    banner(config, addr);
    let handle = server.handle();
    actix_rt::spawn(async move {
        shutdown_signal().await;
        tracing::info!("shutting down: closing desktops, finishing requests");
        // Desktops get a close frame (1001) before the connections are stopped.
        let _ = shutdown.send(());
        handle.stop(true).await;
    });
    let result = server.await;
    // Tenant `default`'s store is closed by `serve`, which opened it.
    tenants.close();
    result
}

/// A term of a cluster node as the owner of tenant `default` over `store` (rebuilt from
/// the tenant's log): the full server on `listener` until the node is stopped (`stop`),
/// asked to hand the tenant over ([`crate::cluster::Node::request_handover`]; both end
/// gracefully), or `fence` falls (the lease lost, an append refused). On a fence the engine stops at once
/// and connections are dropped: nothing more is routed or acknowledged here.
pub(crate) async fn serve_owner(
    config: &Config,
    store: Arc<dyn crate::store::Store>,
    node: crate::cluster::Node,
    tenant: Option<crate::core::tenant::Tenant>,
    fence: Arc<crate::cluster::log::Fence>,
    listener: TcpListener,
    stop: &mut tokio::sync::watch::Receiver<bool>,
) -> io::Result<()> {
    let id = tenant
        .as_ref()
        .map_or(crate::core::tenant::DEFAULT_TENANT.to_string(), |t| t.id.clone());
    // The agents' files go into the cluster's object store too (any next owner serves them).
    let files = crate::channels::files::FileStore::for_config(config)?.replicated(node.files.clone(), &id);
    let (rules, limits) = match &tenant {
        None => (config.rules(), Default::default()),
        Some(t) => (t.rules(&config.rules()), t.limits),
    };
    let (engine, outbox) = crate::channels::messenger::start_engine_with(
        config,
        store,
        tenant.as_ref().map(|t| t.id.as_str()),
        rules,
        limits,
        None,
        Some(files),
    )
    .map_err(io::Error::other)?;
    if tenant.is_none() {
        provision(&engine, config).await?;
    }
    let mut moves = node.handover_requests(&id);
    node.set_running(&id, Some(engine.clone()));
    let (server, shutdown, tenants) = build(
        config,
        engine.clone(),
        Some(outbox),
        listener,
        Some(node.clone()),
        tenant,
    )?;
    tenants.in_cluster(node.clone());
    // The config's entry points are `default`'s: their pages are claimed for it.
    if id == crate::core::tenant::DEFAULT_TENANT {
        for page in config.entry_points.iter().filter_map(|ep| ep.page_id.as_deref()) {
            match node.claim_page(page, &id).await {
                Ok(None) => {}
                Ok(Some(other)) => {
                    tracing::error!(page, tenant = %other, "a page of the config's entry points belongs to another tenant in the cluster's index")
                }
                Err(e) => tracing::warn!(page, error = %e, "a page of the config's entry points was not claimed"),
            }
        }
    }
    // A change of the tenant's record in the cluster's registry (limits, codes, a new
    // admin token) is put in force here as the node reads it.
    let adopter = (id != crate::core::tenant::DEFAULT_TENANT).then(|| {
        let (node, tenants, id) = (node.clone(), tenants.clone(), id.clone());
        actix_rt::spawn(async move {
            let mut last = node.tenant_record(&id);
            loop {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                let now = node.tenant_record(&id);
                if let Some(t) = now.clone().filter(|t| Some(t) != last.as_ref()) {
                    match tenants.adopt(t).await {
                        Ok(_) => tracing::info!(tenant = %id, "tenant record changed: in force"),
                        Err(e) => tracing::warn!(tenant = %id, error = %e, "tenant record not put in force"),
                    }
                }
                last = now;
            }
        })
    });
    let handle = server.handle();
    let mut stop = stop.clone();
    let watcher = actix_rt::spawn(async move {
        tokio::select! {
            _ = fence.fenced() => {
                // Fail closed: the engine first (no more routing, no more commits), then
                // every connection, without waiting for requests in flight.
                engine.stop().await;
                let _ = shutdown.send(());
                handle.stop(false).await;
            }
            why = async {
                tokio::select! {
                    _ = stop.wait_for(|s| *s) => "shutting down",
                    _ = moves.wait_for(Option::is_some) => "handing the tenant over",
                }
            } => {
                tracing::info!("{why}: closing desktops, finishing requests");
                let _ = shutdown.send(());
                handle.stop(true).await;
                engine.stop().await;
            }
        }
    });
    let result = server.await;
    watcher.abort();
    if let Some(a) = adopter {
        a.abort();
    }
    node.set_running(&id, None);
    tenants.close();
    result
}

/// The start-up line on stdout, whatever the log level (scripts and tests wait for it):
/// a JSON line in the tracing layout with `log.format = "json"`, text otherwise.
pub(crate) fn banner(config: &Config, addr: std::net::SocketAddr) {
    let message = format!("switchboard listening on http://{addr} (API docs at http://{addr}/api/docs/)");
    if config.log.format == crate::config::LogFormat::Json {
        let line = serde_json::json!({
            "timestamp": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            "level": "INFO",
            "fields": {"message": message, "addr": addr.to_string(), "version": env!("CARGO_PKG_VERSION")},
            "target": "switchboard",
        });
        println!("{line}");
    } else {
        tracing::info!(%addr, version = env!("CARGO_PKG_VERSION"), "switchboard listening");
        println!("{message}");
    }
}

/// A plain HTTP/1.0 GET of `url` (`http://HOST:PORT/PATH` only): the status code. For
/// `switchboard healthcheck`, so that a container image needs no HTTP client.
pub fn probe_url(url: &str, timeout: std::time::Duration) -> io::Result<u16> {
    use std::io::{Read, Write};
    use std::net::ToSocketAddrs;
    let bad = |why: &str| io::Error::new(io::ErrorKind::InvalidInput, why.to_string());
    let rest = url.strip_prefix("http://").ok_or_else(|| bad("only http:// URLs"))?;
    let (host, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let addr = host
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| bad("the host resolves to no address"))?;
    let mut stream = std::net::TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n")?;
    let mut head = Vec::new();
    stream.take(1024).read_to_end(&mut head)?;
    let line = String::from_utf8_lossy(&head);
    line.split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("not an HTTP answer"))
}

/// Creates the configured queues and entry points that do not exist yet.
pub async fn provision(engine: &Engine, config: &Config) -> io::Result<()> {
    // Provisioning is idempotent: what exists already is kept as it is.
    let ignore_existing = |r: Result<(), crate::engine::EngineError>| match r {
        Ok(()) | Err(crate::engine::EngineError::Core(crate::core::CoreError::AlreadyExists { .. })) => Ok(()),
        Err(e) => Err(io::Error::other(e)),
    };
    let mut created_now = Vec::new();
    for q in &config.queues {
        let created = engine
            .exec(crate::engine::Command::CreateQueue {
                id: q.id.clone(),
                name: q.name.clone(),
                routing_steps: q.routing_steps.clone(),
                hours: q.hours.clone().map(std::sync::Arc::new),
                survey: q.survey.clone().map(std::sync::Arc::new),
                wait_limit: q.wait_limit.clone(),
                service_level_ms: q.service_level_ms,
                place_updates: q.place_updates.clone().map(Box::new),
                overflow: None,
            })
            .await;
        if created.is_ok() {
            created_now.push(q);
        }
        ignore_existing(created.map(|_| ()))?;
    }
    // An overflow names another queue, which may come later in the file: set once they
    // all exist, on the queues this start created.
    for q in created_now {
        if let Some(o) = &q.overflow {
            engine
                .exec(crate::engine::Command::UpdateQueue {
                    queue: q.id.clone(),
                    hours: None,
                    survey: None,
                    wait_limit: None,
                    service_level_ms: None,
                    place_updates: None,
                    overflow: Some(Some(Box::new(o.clone()))),
                })
                .await
                .map_err(io::Error::other)?;
        }
    }
    for ep in &config.entry_points {
        let ep = crate::core::EntryPoint {
            id: ep.id.clone(),
            name: ep.name.clone(),
            queue: ep.queue.clone(),
            page_id: ep.page_id.clone(),
            page_access_token: ep.page_access_token.clone(),
            priority: ep.priority,
            routing_steps: ep.routing_steps.clone(),
            messenger: crate::core::messenger::PageSettings {
                thread_control: ep.thread_control,
                return_to_app_id: ep.return_to_app_id.clone(),
                ..Default::default()
            },
        };
        let (id, token) = (ep.id.clone(), ep.page_access_token.clone());
        let settings = ep.messenger.clone();
        ignore_existing(engine.create_entry_point(ep).await.map(|_| ()))?;
        // Thread control set in the config is the entry point's (as the token below).
        if settings.thread_control != crate::core::messenger::ThreadControl::Off || settings.return_to_app_id.is_some()
        {
            let cmd = crate::core::Command::Messenger(crate::core::messenger::MessengerCommand::SetThreadControl {
                entry_point: id.clone(),
                thread_control: settings.thread_control,
                return_to_app_id: settings.return_to_app_id,
            });
            engine.exec(cmd).await.map_err(io::Error::other)?;
        }
        // A token in the config is the page's token: one that changed since the entry
        // point was created replaces the stored one (the same token changes nothing).
        if let Some(token) = token {
            let cmd = crate::core::Command::Messenger(crate::core::messenger::MessengerCommand::SetPageToken {
                entry_point: id,
                token,
            });
            engine.exec(cmd).await.map_err(io::Error::other)?;
        }
    }
    Ok(())
}

/// The server on `listener`, not yet running: `.await` it (or spawn it). Tests bind
/// `127.0.0.1:0` and call this.
pub fn build_server(config: &Config, engine: Engine, listener: TcpListener) -> io::Result<Server> {
    build(config, engine, None, listener, None, None).map(|(server, _, _)| server)
}

/// [`build_server`] for an engine that sends Messenger messages through `outbox`
/// (see [`crate::channels::messenger::start_engine`]); `/healthz` shows its figures.
pub fn build_server_with_outbox(
    config: &Config,
    engine: Engine,
    outbox: Arc<crate::channels::messenger::Outbox>,
    listener: TcpListener,
) -> io::Result<Server> {
    build(config, engine, Some(outbox), listener, None, None).map(|(server, _, _)| server)
}

fn build(
    config: &Config,
    engine: Engine,
    outbox: Option<Arc<crate::channels::messenger::Outbox>>,
    listener: TcpListener,
    cluster: Option<crate::cluster::Node>,
    tenant: Option<crate::core::tenant::Tenant>,
) -> io::Result<(Server, broadcast::Sender<()>, Arc<crate::tenants::Tenants>)> {
    // In a cluster, a tenant's server sits behind the nodes' front servers, which name
    // the client in `X-Forwarded-For`.
    let behind_front = cluster.is_some();
    // In a cluster every answer names the node that made it (forwarded ones keep it).
    let node_header = cluster.as_ref().map(|n| n.config.node_id.clone());
    let cluster = cluster.map(web::Data::new);
    let (shutdown, _) = broadcast::channel(1);
    let files = match &outbox {
        Some(o) => o.files(),
        None => Arc::new(crate::channels::files::FileStore::for_config(config)?),
    };
    let tenants = Arc::new(match tenant {
        Some(t) => crate::tenants::Tenants::single(config, engine.clone(), t),
        None => crate::tenants::Tenants::open(config, engine.clone()).map_err(io::Error::other)?,
    });
    let mut messenger = crate::channels::messenger::Messenger::new(config.messenger.clone(), engine.clone(), outbox);
    messenger.tenants = Some(tenants.clone());
    let messenger = web::Data::new(messenger);
    let webhook_limit = webhook_limit(config);
    let workers = config.server.workers;
    let hub = supervisor::hub::Hub::start_on_own_thread(engine.clone(), config.supervisor.clone());
    let state = AppState {
        hub,
        supervisor: config.supervisor.clone(),
        engine,
        tenant_id: tenants.default_id().into(),
        tenants: tenants.clone(),
        admin_token: config.api.admin_token.as_str().into(),
        operator_token: config.api.operator_token.as_str().into(),
        tenant_states: Arc::default(),
        body_limit: config.server.body_limit_bytes,
        heartbeat: std::time::Duration::from_millis(config.server.ws_heartbeat_ms),
        client_timeout: std::time::Duration::from_millis(config.server.ws_client_timeout_ms),
        shutdown: shutdown.clone(),
        auth_failures: Arc::new(std::sync::Mutex::new(crate::core::limits::AuthFailures::new(
            AUTH_FAILURE_LIMIT,
            AUTH_WINDOW_MS,
            AUTH_TRACKED_ADDRESSES,
        ))),
        desktops: Arc::new(socket::SocketSlots::new(config.server.max_desktops_per_agent)),
        probe_timeout: std::time::Duration::from_millis(config.store.probe_timeout_ms),
        demo_entry_point: config
            .demo
            .customer_page
            .then(|| config.demo.entry_point.as_str().into()),
        demo_openings: Arc::new(std::sync::Mutex::new(demo::openings(&config.demo))),
        sign_in_failures: Arc::new(std::sync::Mutex::new(crate::core::limits::AuthFailures::new(
            signin::MAX_FAILURES,
            signin::FAILURE_WINDOW_MS,
            signin::TRACKED_IDS,
        ))),
        session_ttl_ms: config.api.session_ttl_ms,
        password_checks: password::PasswordChecks::new(
            config.api.password_checks(),
            std::time::Duration::from_millis(config.api.password_check_wait_ms),
        ),
        trusted_proxies: config.server.trusted_proxies.clone().into(),
        behind_front,
        supervisor_sockets: Arc::new(socket::SocketSlots::new(config.supervisor.max_sockets)),
        files,
        max_attachment_bytes: config.messenger.max_attachment_bytes,
        webhooks_allow_private: config.webhooks.allow_private,
    };
    crate::metrics::init(
        config.wrapup.reasons.iter().map(|r| r.code.as_str()),
        config.queues.iter().map(|q| q.id.as_str()),
    );
    spawn_recovery(state.engine.clone());
    for engine in state.tenants.others() {
        spawn_recovery(engine);
    }
    let openapi = openapi::ApiDoc::openapi();
    let server = HttpServer::new(move || {
        App::new()
            .app_data(web::Data::new(state.clone()))
            .app_data(messenger.clone())
            .configure(|cfg| {
                if let Some(node) = &cluster {
                    cfg.app_data(node.clone());
                }
            })
            .app_data(web::PayloadConfig::new(webhook_limit))
            .app_data(
                web::JsonConfig::default()
                    .limit(state.body_limit)
                    .error_handler(error::json_error),
            )
            .app_data(web::PathConfig::default().error_handler(error::path_error))
            .app_data(web::QueryConfig::default().error_handler(error::query_error))
            .wrap(from_fn(observe_request))
            .wrap(from_fn(headers::edge_headers))
            .wrap(actix_web::middleware::Condition::new(
                node_header.is_some(),
                actix_web::middleware::DefaultHeaders::new()
                    .add((forward::NODE_HEADER, node_header.clone().unwrap_or_default())),
            ))
            .configure(routes)
            .configure(supervisor::routes)
            .configure(reports::routes)
            .configure(canned::routes)
            .configure(history::routes)
            .configure(webhooks::routes)
            .configure(tenants::routes)
            .configure(pages::desktop_routes)
            .configure(|cfg| {
                if state.demo_entry_point.is_some() {
                    pages::demo_routes(cfg);
                    demo::routes(cfg);
                }
            })
            .service(
                SwaggerUi::new("/api/docs/{_:.*}")
                    .url("/api/v1/openapi.json", openapi.clone())
                    // No badge from the online validator: it would send the description's
                    // URL elsewhere, and the CSP (`headers`) loads nothing from elsewhere.
                    .config(utoipa_swagger_ui::Config::default().validator_url("none")),
            )
            .default_service(web::to(error::not_found))
    });
    let server = if workers > 0 { server.workers(workers) } else { server };
    let server = server
        .disable_signals()
        // Small frames (desktop events, replies) go out at once: without this, Nagle's
        // algorithm holds a frame written while the previous one is unacknowledged until the
        // peer's delayed ACK (~40 ms on Linux).
        .tcp_nodelay(true)
        .shutdown_timeout(config.server.shutdown_grace_ms.div_ceil(1000))
        .listen(listener)?
        .run();
    Ok((server, shutdown, tenants))
}

/// The largest body `/webhooks/messenger` takes: a batch of a few hundred Messenger
/// events is larger than a REST body (a cluster node's front server takes the same).
pub(crate) fn webhook_limit(config: &Config) -> usize {
    config.server.body_limit_bytes.max(1024 * 1024)
}

/// How often a healthy engine is looked at, and the first wait before a rebuild.
pub const RECOVERY_CHECK: std::time::Duration = std::time::Duration::from_secs(1);
/// The longest wait between two rebuild attempts while the store still refuses writes
/// (each attempt reopens the store, which reads its log).
pub const RECOVERY_BACKOFF_MAX: std::time::Duration = std::time::Duration::from_secs(5);

/// After a store fault, the engine rebuilds itself once the store accepts writes again
/// (../shared/API.md "Operations"), whether or not anything polls `/readyz`: an attempt a second
/// after the fault, then with the wait doubling up to [`RECOVERY_BACKOFF_MAX`].
pub(crate) fn spawn_recovery(engine: Engine) {
    actix_rt::spawn(async move {
        let mut wait = RECOVERY_CHECK;
        let mut failing_since: Option<Instant> = None;
        loop {
            tokio::time::sleep(wait).await;
            if engine.stopped() {
                // A deleted tenant's: nothing to rebuild.
                return;
            }
            if engine.healthy() {
                failing_since = None;
                wait = RECOVERY_CHECK;
                continue;
            }
            let since = *failing_since.get_or_insert_with(Instant::now);
            match engine.recover().await {
                Ok(()) => wait = RECOVERY_CHECK,
                Err(e) => {
                    tracing::warn!(error = %e, down_s = since.elapsed().as_secs(), "the store does not accept writes yet");
                    wait = (wait * 2).min(RECOVERY_BACKOFF_MAX);
                }
            }
        }
    });
}

/// A resource whose unsupported methods answer 405 JSON.
pub(crate) fn resource(path: &str) -> actix_web::Resource {
    web::resource(path).default_service(web::to(error::method_not_allowed))
}

/// Every route of ../shared/API.md.
pub fn routes(cfg: &mut web::ServiceConfig) {
    use rest::*;
    cfg.service(
        resource("/api/v1/queues")
            .route(web::post().to(create_queue))
            .route(web::get().to(list_queues)),
    )
    .service(
        resource("/api/v1/queues/{id}")
            .route(web::get().to(get_queue))
            .route(web::patch().to(patch_queue)),
    )
    .service(
        resource("/api/v1/entry-points")
            .route(web::post().to(create_entry_point))
            .route(web::get().to(list_entry_points)),
    )
    .service(resource("/api/v1/entry-points/{id}").route(web::patch().to(patch_entry_point)))
    .service(
        resource("/api/v1/agents")
            .route(web::post().to(create_agent))
            .route(web::get().to(list_agents)),
    )
    .service(
        resource("/api/v1/login")
            .route(web::post().to(signin::login))
            .route(web::get().to(signin::form)),
    )
    .service(resource("/api/v1/logout").route(web::post().to(signin::logout)))
    .service(resource("/api/v1/agents/me").route(web::get().to(get_me)))
    .service(resource("/api/v1/agents/me/password").route(web::put().to(signin::change_my_password)))
    .service(resource("/api/v1/agents/me/state").route(web::put().to(set_my_state)))
    .service(resource("/api/v1/agents/me/ws").route(web::get().to(ws::desktop)))
    .service(resource("/api/v1/agents/{id}").route(web::get().to(get_agent)))
    .service(resource("/api/v1/agents/{id}/token").route(web::post().to(reissue_token)))
    .service(resource("/api/v1/agents/{id}/skills").route(web::put().to(set_skills)))
    .service(resource("/api/v1/agents/{id}/password").route(web::put().to(signin::set_password)))
    .service(resource("/api/v1/conversations").route(web::post().to(create_conversation)))
    .service(resource("/api/v1/conversations/{id}").route(web::get().to(get_conversation)))
    .service(resource("/api/v1/conversations/{id}/priority").route(web::put().to(set_priority)))
    .service(resource("/api/v1/conversations/{id}/accept").route(web::post().to(accept)))
    .service(resource("/api/v1/conversations/{id}/messages").route(web::post().to(send_message)))
    .service(resource("/api/v1/conversations/{id}/notes").route(web::post().to(add_note)))
    .service(resource("/api/v1/conversations/{id}/typing").route(web::post().to(typing)))
    .service(resource("/api/v1/conversations/{id}/attachments").route(web::post().to(attachments::send_attachment)))
    .service(resource("/files/{id}/{name}").route(web::get().to(attachments::get_file)))
    .service(resource("/api/v1/conversations/{id}/transfer").route(web::post().to(transfer)))
    .service(resource("/api/v1/conversations/{id}/conference").route(web::post().to(conference)))
    .service(resource("/api/v1/conversations/{id}/conference/exit").route(web::post().to(exit_conference)))
    .service(resource("/api/v1/conversations/{id}/conference/end").route(web::post().to(end_conference)))
    .service(resource("/api/v1/conversations/{id}/end").route(web::post().to(end_conversation)))
    .service(resource("/api/v1/conversations/{id}/wrapup").route(web::post().to(wrapup)))
    .service(resource("/api/v1/wrapup-reasons").route(web::get().to(wrapup_reasons)))
    .service(resource("/api/v1/idle-codes").route(web::get().to(idle_codes)))
    .service(
        resource("/webhooks/messenger")
            .route(web::get().to(crate::channels::messenger::webhook::verify))
            .route(web::post().to(crate::channels::messenger::webhook::receive)),
    )
    .service(resource("/api/v1/admin/backup").route(web::post().to(ops::backup)))
    .service(resource("/api/v1/cluster").route(web::get().to(cluster::status)))
    .service(resource("/api/v1/tenants/{id}/move").route(web::post().to(cluster::move_tenant)))
    .service(
        resource("/livez")
            .route(web::get().to(ops::livez))
            .route(web::head().to(ops::livez)),
    )
    .service(
        resource("/readyz")
            .route(web::get().to(ops::readyz))
            .route(web::head().to(ops::readyz)),
    )
    .service(
        resource("/healthz")
            .route(web::get().to(ops::healthz))
            .route(web::head().to(ops::healthz)),
    )
    .service(resource("/metrics").route(web::get().to(metrics)))
    .service(resource("/api/docs").route(web::get().to(docs_redirect)));
}

/// `/api/docs` → `/api/docs/`, where the UI's relative asset paths resolve.
async fn docs_redirect() -> actix_web::HttpResponse {
    actix_web::HttpResponse::Found()
        .insert_header((actix_web::http::header::LOCATION, "/api/docs/"))
        .finish()
}

/// The method as a metric label: one of the standard methods, or `other`. A client can
/// send any token as a method; the label set must not grow with what clients invent.
pub fn method_label(method: &actix_web::http::Method) -> &'static str {
    use actix_web::http::Method;
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "other",
    }
}

/// The route label of a request that matched no route.
pub const UNMATCHED_ROUTE: &str = "unmatched";

/// The agent a request acted as, once authentication found it (for the access log).
#[derive(Debug, Clone)]
pub struct AuthenticatedAgent(pub crate::core::AgentId);

/// A per-process request id: a random prefix (so ids from two runs differ) and a counter.
fn next_request_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::LazyLock;
    static PREFIX: LazyLock<u32> = LazyLock::new(rand::random);
    static NEXT: AtomicU64 = AtomicU64::new(1);
    format!("{:08x}-{}", *PREFIX, NEXT.fetch_add(1, Ordering::Relaxed))
}

/// One span and one `info` access-log line per request (request id, method, route
/// template, status, duration, agent when known; never the raw path's query, tokens or
/// bodies); latency and status metrics labelled from fixed sets only.
async fn observe_request(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let start = Instant::now();
    let method = method_label(req.method());
    // The route template (`/api/v1/conversations/{id}`), never the raw path: ids in paths
    // would make one series per conversation, and unknown paths are the client's choice.
    let route: String = req.match_pattern().unwrap_or_else(|| UNMATCHED_ROUTE.to_string());
    let request_id = next_request_id();
    let span = tracing::info_span!(
        "request",
        request_id = %request_id,
        method = method,
        route = %route,
    );
    let res = next.call(req).instrument(span.clone()).await;
    let (status, agent) = match &res {
        Ok(r) => (
            r.status(),
            r.request()
                .extensions()
                .get::<AuthenticatedAgent>()
                .map(|a| a.0.clone()),
        ),
        Err(e) => (e.as_response_error().status_code(), None),
    };
    let elapsed = start.elapsed();
    crate::metrics::REQUEST_LATENCY
        .with_label_values(&[method, &route])
        .observe(elapsed.as_secs_f64());
    crate::metrics::HTTP_REQUESTS
        .with_label_values(&[status.as_str()])
        .inc();
    let duration_ms = elapsed.as_secs_f64() * 1000.0;
    // Recorded only when known (an agent's token authenticated the request).
    let agent = agent.as_deref();
    span.in_scope(|| {
        if status.is_server_error() {
            tracing::warn!(status = status.as_u16(), duration_ms, agent, "request failed");
        } else {
            tracing::info!(status = status.as_u16(), duration_ms, agent, "request");
        }
    });
    let mut res = res;
    if let Ok(r) = &mut res {
        if let Ok(v) = actix_web::http::header::HeaderValue::from_str(&request_id) {
            r.headers_mut()
                .insert(actix_web::http::header::HeaderName::from_static("x-request-id"), v);
        }
    }
    res
}

/// Resolves on Ctrl-C or SIGTERM.
pub(crate) async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
