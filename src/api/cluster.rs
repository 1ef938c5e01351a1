//! The cluster's HTTP edge (docs/CLUSTER.md): `GET /api/v1/cluster` on every node, and the
//! standby server a node runs while it owns no tenant.
//!
//! A standby answers `/livez`, `/readyz` (200 while it reaches NATS),
//! `GET /api/v1/cluster` and `/metrics` (503 `not_owner`: its figures are the owner's to
//! give); every other request and WebSocket is forwarded to the owner
//! ([`super::forward`]).

use std::net::TcpListener;
use std::sync::Arc;

use actix_web::dev::Server;
use actix_web::http::StatusCode;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use subtle::ConstantTimeEq;

use super::error::ApiError;
use super::AppState;
use crate::cluster::Node;
use crate::config::Config;

/// What a standby server knows: the node and the tokens allowed to read the cluster.
#[derive(Clone)]
pub struct Standby {
    pub node: Node,
    pub admin_token: Arc<str>,
    pub operator_token: Arc<str>,
    /// The owner requests are forwarded to.
    pub owners: Arc<super::forward::OwnerCache>,
}

/// The admin's or the operator's token, compared in constant time; 401 otherwise.
fn operator_or_admin(req: &HttpRequest, admin: &str, operator: &str) -> Result<(), ApiError> {
    let Some(token) = super::auth::bearer(req).filter(|t| !t.is_empty()) else {
        return Err(ApiError::unauthorized());
    };
    let is = |want: &str| !want.is_empty() && bool::from(token.as_bytes().ct_eq(want.as_bytes()));
    if is(admin) || is(operator) {
        Ok(())
    } else {
        Err(ApiError::unauthorized())
    }
}

/// `GET /api/v1/cluster` (the admin's or the operator's token): the nodes seen lately (id,
/// address, last seen, tenants owned) and each tenant's owner and log position. 404
/// `not_clustered` on a node without `[cluster]`.
pub async fn status(
    req: HttpRequest,
    app: Option<web::Data<AppState>>,
    standby: Option<web::Data<Standby>>,
    node: Option<web::Data<Node>>,
) -> Result<HttpResponse, ApiError> {
    let (node, admin, operator) = match (&app, &standby, &node) {
        (_, Some(s), _) => (s.node.clone(), s.admin_token.clone(), s.operator_token.clone()),
        (Some(a), None, Some(n)) => (Node::clone(n), a.admin_token.clone(), a.operator_token.clone()),
        (Some(a), None, None) => {
            operator_or_admin(&req, &a.admin_token, &a.operator_token)?;
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "not_clustered",
                "this node runs alone (no [cluster] section in its config)",
            ));
        }
        (None, None, _) => return Err(ApiError::unauthorized()),
    };
    operator_or_admin(&req, &admin, &operator)?;
    Ok(HttpResponse::Ok().json(node.status().await))
}

/// A standby's `/readyz`: 200 while it reaches NATS (it can take a tenant), 503 otherwise.
async fn standby_ready(standby: web::Data<Standby>) -> Result<HttpResponse, ApiError> {
    if standby.node.reaches_nats() {
        Ok(HttpResponse::Ok().json(serde_json::json!({"status": "ok", "role": "standby"})))
    } else {
        Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_ready",
            "this node does not reach NATS",
        ))
    }
}

/// `/metrics` on a standby: 503 `not_owner` naming the owner (a standby routes nothing;
/// the tenant's figures are the owner's).
async fn not_owner(standby: web::Data<Standby>) -> Result<HttpResponse, ApiError> {
    Err(super::forward::not_owner(
        standby.owners.owner(&standby.node).await.as_ref(),
        "",
    ))
}

/// Everything else on a standby: forwarded to the owner.
async fn forward(
    req: HttpRequest,
    payload: web::Payload,
    standby: web::Data<Standby>,
    client: web::Data<awc::Client>,
) -> Result<HttpResponse, ApiError> {
    super::forward::forward(req, payload, &standby.node, &standby.owners, &client).await
}

/// The standby server on `listener` (not yet running).
pub fn standby_server(config: &Config, node: Node, listener: TcpListener) -> std::io::Result<Server> {
    let standby = web::Data::new(Standby {
        node,
        admin_token: config.api.admin_token.as_str().into(),
        operator_token: config.api.operator_token.as_str().into(),
        owners: Arc::default(),
    });
    let me = standby.node.config.node_id.clone();
    let server = HttpServer::new(move || {
        App::new()
            .wrap(actix_web::middleware::DefaultHeaders::new().add((super::forward::NODE_HEADER, me.clone())))
            .app_data(standby.clone())
            // One client per worker thread (awc's client is not `Send`).
            .app_data(web::Data::new(super::forward::client()))
            .service(web::resource("/livez").route(web::get().to(super::ops::livez)))
            .service(web::resource("/readyz").route(web::get().to(standby_ready)))
            .service(web::resource("/api/v1/cluster").route(web::get().to(status)))
            .service(web::resource("/metrics").to(not_owner))
            .default_service(web::to(forward))
    })
    // As many workers as the owner's server: a standby carries forwarded clients.
    .workers(match config.server.workers {
        0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
        n => n,
    })
    .disable_signals()
    .shutdown_timeout(1)
    .listen(listener)?
    .run();
    Ok(server)
}
