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

use super::error::{ApiError, ErrorBody};
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
#[utoipa::path(get, path = "/api/v1/cluster", tag = "cluster",
    responses(
        (status = 200, description = "The nodes and the tenants' owners; a part NATS did not answer within 2 s is empty or null", body = crate::cluster::ClusterStatus),
        (status = 401, description = "No or wrong token", body = ErrorBody),
        (status = 404, description = "`not_clustered`: this node runs alone", body = ErrorBody),
    ))]
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

/// `POST /api/v1/tenants/{id}/move`.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MoveTenant {
    /// The node to hand the tenant over to (its `cluster.node_id`).
    pub to: String,
}

/// `POST /api/v1/tenants/{id}/move` (the admin's or the operator's token), on the owner
/// (a standby forwards it there): hands the tenant over to node `to` on purpose. The owner
/// answers 202, then finishes its requests, closes its desktops (they resume from `hello`
/// on the new owner), stops its engine and writes the lease over to `to`, which takes it
/// at its next look (docs/CLUSTER.md "Moving a tenant").
#[utoipa::path(post, path = "/api/v1/tenants/{id}/move", tag = "cluster", request_body = MoveTenant,
    params(("id" = String, Path, description = "Tenant id (a cluster routes `default`)")),
    responses(
        (status = 202, description = "The hand-over has begun: `{tenant, from, to}`"),
        (status = 400, description = "Bad input (`invalid_json`)", body = ErrorBody),
        (status = 401, description = "No or wrong token", body = ErrorBody),
        (status = 404, description = "`not_clustered` (no `[cluster]`), `unknown_tenant`, or `unknown_node` (no such node seen lately)", body = ErrorBody),
        (status = 409, description = "`already_owner`: node `to` routes the tenant now", body = ErrorBody),
        (status = 503, description = "`not_owner` (no node routes the tenant now), or NATS did not answer", body = ErrorBody),
    ))]
pub async fn move_tenant(
    req: HttpRequest,
    app: web::Data<AppState>,
    node: Option<web::Data<Node>>,
    id: web::Path<String>,
    body: web::Json<MoveTenant>,
) -> Result<HttpResponse, ApiError> {
    operator_or_admin(&req, &app.admin_token, &app.operator_token)?;
    let Some(node) = node else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_clustered",
            "this node runs alone (no [cluster] section in its config)",
        ));
    };
    if id.as_str() != crate::core::tenant::DEFAULT_TENANT {
        return Err(crate::engine::EngineError::from(crate::core::CoreError::UnknownTenant(id.to_string())).into());
    }
    let me = node.config.node_id.as_str();
    let to = body.into_inner().to;
    if to == me {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "already_owner",
            format!("node {me} routes the tenant already"),
        ));
    }
    let nodes = tokio::time::timeout(crate::cluster::STATUS_WAIT, node.node_entries())
        .await
        .map_err(|_| "no answer in time".to_string())
        .and_then(|r| r)
        .map_err(|e| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                format!("the node list cannot be read from NATS: {e}"),
            )
        })?;
    if !nodes.iter().any(|n| n.id == to) {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_node",
            format!("no node {to} has been seen lately (GET /api/v1/cluster lists the nodes)"),
        ));
    }
    tracing::info!(tenant = %id, node = me, to = %to, "moving the tenant");
    node.request_handover(&to);
    Ok(HttpResponse::Accepted().json(serde_json::json!({"tenant": id.as_str(), "from": me, "to": to})))
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
