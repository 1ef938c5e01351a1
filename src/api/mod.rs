//! The HTTP edge of Switchboard: REST, the agent desktop WebSocket, health, metrics and
//! the OpenAPI description (API.md is the contract).
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
//! - [`rest`]: the REST handlers.
//! - [`ws`]: the desktop session actor.
//! - [`openapi`]: the generated OpenAPI description and its browsable UI.

pub mod auth;
pub mod dto;
pub mod error;
pub mod openapi;
pub mod rest;
pub mod ws;

use std::io;
use std::net::TcpListener;
use std::sync::Arc;
use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{Server, ServiceRequest, ServiceResponse};
use actix_web::middleware::{from_fn, Next};
use actix_web::{web, App, HttpServer};
use tokio::sync::broadcast;
use tracing::Instrument;
use utoipa::OpenApi;
use utoipa_swagger_ui::SwaggerUi;

use crate::config::Config;
use crate::engine::Engine;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub engine: Engine,
    /// The admin bearer token (compared in constant time, see [`auth`]).
    pub admin_token: Arc<str>,
    /// Largest request body and WebSocket message, in bytes.
    pub body_limit: usize,
    /// How often desktops are pinged, and how long one may stay silent.
    pub heartbeat: std::time::Duration,
    pub client_timeout: std::time::Duration,
    /// Tells every desktop session that the server is shutting down.
    pub shutdown: broadcast::Sender<()>,
}

/// Opens the store, starts the engine, creates the configured queues and entry points,
/// and serves until Ctrl-C or SIGTERM. Must run inside an actix system.
pub async fn serve(config: Config) -> io::Result<()> {
    let options = crate::store::SledOptions::from_config(&config.store);
    let store = crate::store::open_with(&config.store.path, options).map_err(io::Error::other)?;
    let (engine, outbox) = crate::channels::messenger::start_engine(&config, store).map_err(io::Error::other)?;
    provision(&engine, &config).await?;
    let listener = TcpListener::bind(config.server.listen)?;
    let addr = listener.local_addr()?;
    if !config.messenger.webhook_enabled() {
        tracing::warn!(
            "the Messenger webhook is off: no app secret (set messenger.app_secret or \
             SWITCHBOARD_MESSENGER__APP_SECRET); /webhooks/messenger refuses every request"
        );
    }
    let (server, shutdown) = build(&config, engine, Some(outbox), listener)?;
    tracing::info!(%addr, "switchboard listening");
    println!("switchboard listening on http://{addr} (API docs at http://{addr}/api/docs/)");
    let handle = server.handle();
    actix_rt::spawn(async move {
        shutdown_signal().await;
        tracing::info!("shutting down: closing desktops, finishing requests");
        // Desktops get a close frame (1001) before the connections are stopped.
        let _ = shutdown.send(());
        handle.stop(true).await;
    });
    server.await
}

/// Creates the configured queues and entry points that do not exist yet.
pub async fn provision(engine: &Engine, config: &Config) -> io::Result<()> {
    // Provisioning is idempotent: what exists already is kept as it is.
    let ignore_existing = |r: Result<(), crate::engine::EngineError>| match r {
        Ok(()) | Err(crate::engine::EngineError::Core(crate::core::CoreError::AlreadyExists { .. })) => Ok(()),
        Err(e) => Err(io::Error::other(e)),
    };
    for q in &config.queues {
        ignore_existing(engine.create_queue(&q.id, &q.name).await.map(|_| ()))?;
    }
    for ep in &config.entry_points {
        let ep = crate::core::EntryPoint {
            id: ep.id.clone(),
            name: ep.name.clone(),
            queue: ep.queue.clone(),
            page_id: ep.page_id.clone(),
            page_access_token: ep.page_access_token.clone(),
        };
        ignore_existing(engine.create_entry_point(ep).await.map(|_| ()))?;
    }
    Ok(())
}

/// The server on `listener`, not yet running: `.await` it (or spawn it). Tests bind
/// `127.0.0.1:0` and call this.
pub fn build_server(config: &Config, engine: Engine, listener: TcpListener) -> io::Result<Server> {
    build(config, engine, None, listener).map(|(server, _)| server)
}

/// [`build_server`] for an engine that sends Messenger messages through `outbox`
/// (see [`crate::channels::messenger::start_engine`]); `/healthz` shows its figures.
pub fn build_server_with_outbox(
    config: &Config,
    engine: Engine,
    outbox: Arc<crate::channels::messenger::Outbox>,
    listener: TcpListener,
) -> io::Result<Server> {
    build(config, engine, Some(outbox), listener).map(|(server, _)| server)
}

fn build(
    config: &Config,
    engine: Engine,
    outbox: Option<Arc<crate::channels::messenger::Outbox>>,
    listener: TcpListener,
) -> io::Result<(Server, broadcast::Sender<()>)> {
    let (shutdown, _) = broadcast::channel(1);
    let messenger = web::Data::new(crate::channels::messenger::Messenger::new(
        config.messenger.clone(),
        engine.clone(),
        outbox,
    ));
    // A batch of a few hundred Messenger events is larger than a REST body.
    let webhook_limit = config.server.body_limit_bytes.max(1024 * 1024);
    let workers = config.server.workers;
    let state = AppState {
        engine,
        admin_token: config.api.admin_token.as_str().into(),
        body_limit: config.server.body_limit_bytes,
        heartbeat: std::time::Duration::from_millis(config.server.ws_heartbeat_ms),
        client_timeout: std::time::Duration::from_millis(config.server.ws_client_timeout_ms),
        shutdown: shutdown.clone(),
    };
    let openapi = openapi::ApiDoc::openapi();
    let server = HttpServer::new(move || {
        App::new()
            .app_data(web::Data::new(state.clone()))
            .app_data(messenger.clone())
            .app_data(web::PayloadConfig::new(webhook_limit))
            .app_data(
                web::JsonConfig::default()
                    .limit(state.body_limit)
                    .error_handler(error::json_error),
            )
            .app_data(web::PathConfig::default().error_handler(error::path_error))
            .app_data(web::QueryConfig::default().error_handler(error::query_error))
            .wrap(from_fn(observe_request))
            .configure(routes)
            .service(SwaggerUi::new("/api/docs/{_:.*}").url("/api/v1/openapi.json", openapi.clone()))
            .default_service(web::to(error::not_found))
    });
    let server = if workers > 0 { server.workers(workers) } else { server };
    let server = server
        .disable_signals()
        // Small frames (desktop events, replies) go out at once: without this, Nagle's
        // algorithm holds a frame written while the previous one is unacknowledged until the
        // peer's delayed ACK (~40 ms on Linux).
        .tcp_nodelay(true)
        .shutdown_timeout(10)
        .listen(listener)?
        .run();
    Ok((server, shutdown))
}

/// A resource whose unsupported methods answer 405 JSON.
fn resource(path: &str) -> actix_web::Resource {
    web::resource(path).default_service(web::to(error::method_not_allowed))
}

/// Every route of API.md.
pub fn routes(cfg: &mut web::ServiceConfig) {
    use rest::*;
    cfg.service(
        resource("/api/v1/queues")
            .route(web::post().to(create_queue))
            .route(web::get().to(list_queues)),
    )
    .service(resource("/api/v1/queues/{id}").route(web::get().to(get_queue)))
    .service(
        resource("/api/v1/entry-points")
            .route(web::post().to(create_entry_point))
            .route(web::get().to(list_entry_points)),
    )
    .service(
        resource("/api/v1/agents")
            .route(web::post().to(create_agent))
            .route(web::get().to(list_agents)),
    )
    .service(resource("/api/v1/agents/me/state").route(web::put().to(set_my_state)))
    .service(resource("/api/v1/agents/me/ws").route(web::get().to(ws::desktop)))
    .service(resource("/api/v1/agents/{id}").route(web::get().to(get_agent)))
    .service(resource("/api/v1/agents/{id}/token").route(web::post().to(reissue_token)))
    .service(resource("/api/v1/conversations").route(web::post().to(create_conversation)))
    .service(resource("/api/v1/conversations/{id}").route(web::get().to(get_conversation)))
    .service(resource("/api/v1/conversations/{id}/accept").route(web::post().to(accept)))
    .service(resource("/api/v1/conversations/{id}/messages").route(web::post().to(send_message)))
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
    .service(resource("/healthz").route(web::get().to(healthz)))
    .service(resource("/metrics").route(web::get().to(metrics)))
    .service(resource("/api/docs").route(web::get().to(docs_redirect)));
}

/// `/api/docs` → `/api/docs/`, where the UI's relative asset paths resolve.
async fn docs_redirect() -> actix_web::HttpResponse {
    actix_web::HttpResponse::Found()
        .insert_header((actix_web::http::header::LOCATION, "/api/docs/"))
        .finish()
}

/// One span per request (method, path, status); latency and status counters.
async fn observe_request(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let start = Instant::now();
    let method = req.method().to_string();
    let span = tracing::info_span!(
        "request",
        method = %method,
        path = %req.path(),
        status = tracing::field::Empty,
    );
    let res = next.call(req).instrument(span.clone()).await;
    let status = match &res {
        Ok(r) => r.status(),
        Err(e) => e.as_response_error().status_code(),
    };
    span.record("status", status.as_u16());
    let elapsed = start.elapsed();
    crate::metrics::REQUEST_LATENCY
        .with_label_values(&[&method])
        .observe(elapsed.as_secs_f64());
    crate::metrics::HTTP_REQUESTS
        .with_label_values(&[status.as_str()])
        .inc();
    span.in_scope(|| {
        if status.is_server_error() {
            tracing::warn!(elapsed_ms = elapsed.as_millis() as u64, "request failed");
        } else {
            tracing::debug!(elapsed_ms = elapsed.as_millis() as u64, "request");
        }
    });
    res
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
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
