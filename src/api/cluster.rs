//! The cluster's HTTP edge (docs/CLUSTER.md): the front server every node runs on
//! `server.listen`, and `GET /api/v1/cluster` and `POST /api/v1/tenants/{id}/move`.
//!
//! A front server answers `/livez`, `/readyz` (200 while it reaches NATS),
//! `GET /api/v1/cluster`, `/metrics` (the figures of the tenants routed here; 503
//! `not_owner` when none is), `GET /api/v1/login` and the operator's tenant API, whose
//! registry is the cluster's (a KV bucket). Every other request and WebSocket is a
//! tenant's: the front reads which from the request ([`tenant_of`]) and forwards it to the
//! server of the node that routes that tenant ([`super::forward`]), this node's or
//! another's.

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
use crate::core::tenant::{Registry, Tenant, DEFAULT_TENANT};
use crate::core::CoreError;

/// What a front server knows: the node, the config's tokens and limits, and the owners
/// it last read.
#[derive(Clone)]
pub struct Front {
    pub node: Node,
    pub admin_token: Arc<str>,
    pub operator_token: Arc<str>,
    /// The owner requests are forwarded to, per tenant.
    pub owners: Arc<super::forward::OwnerCache>,
    pub config: Arc<Config>,
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
    front: Option<web::Data<Front>>,
    node: Option<web::Data<Node>>,
) -> Result<HttpResponse, ApiError> {
    let (node, admin, operator) = match (&app, &front, &node) {
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
/// (any node's front forwards it there): hands the tenant over to node `to` on purpose. The owner
/// answers 202, then finishes its requests, closes its desktops (they resume from `hello`
/// on the new owner), stops its engine and writes the lease over to `to`, which takes it
/// at its next look (docs/CLUSTER.md "Moving a tenant").
#[utoipa::path(post, path = "/api/v1/tenants/{id}/move", tag = "cluster", request_body = MoveTenant,
    params(("id" = String, Path, description = "Tenant id")),
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
    // The operator, or the tenant's admin (in a cluster, a tenant's own server knows its
    // admin by the registry's credential, not by `api.admin_token`).
    let token = super::auth::bearer(&req).unwrap_or_default();
    let admin = matches!(
        super::auth::resolve(&app, token)?,
        Some(super::auth::Authed {
            caller: super::auth::Caller::Admin,
            ..
        })
    );
    if !admin {
        operator_or_admin(&req, &app.admin_token, &app.operator_token)?;
    }
    let Some(node) = node else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_clustered",
            "this node runs alone (no [cluster] section in its config)",
        ));
    };
    if id.as_str() != app.tenants.default_id() {
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
    node.request_handover(&id, &to);
    Ok(HttpResponse::Accepted().json(serde_json::json!({"tenant": id.as_str(), "from": me, "to": to})))
}

/// A front server's `/readyz`: 200 while it reaches NATS (it can take and forward to any
/// tenant), 503 otherwise.
async fn front_ready(front: web::Data<Front>) -> Result<HttpResponse, ApiError> {
    if front.node.reaches_nats() {
        let owned: Vec<String> = front.node.running().into_iter().map(|(t, _)| t).collect();
        Ok(HttpResponse::Ok().json(serde_json::json!({"status": "ok", "routes": owned})))
    } else {
        Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_ready",
            "this node does not reach NATS",
        ))
    }
}

/// `/metrics` on a cluster node: the figures of the tenants it routes now (every node's
/// scrape together covers the cluster); 503 `not_owner` when it routes none.
async fn front_metrics(front: web::Data<Front>) -> Result<HttpResponse, ApiError> {
    let running = front.node.running();
    if running.is_empty() {
        let owner = front.owners.owner(&front.node, DEFAULT_TENANT).await;
        return Err(super::forward::not_owner(owner.as_ref(), ""));
    }
    super::tenants::scrape_engines(running).await;
    Ok(super::rest::metrics_text())
}

/// `GET /api/v1/login` on a cluster node: the tenant field is asked once the cluster's
/// registry holds a tenant beside `default`.
async fn front_form(front: web::Data<Front>) -> HttpResponse {
    HttpResponse::Ok().json(super::dto::SignInFormDto {
        ask_tenant: !front.node.view().tenants.is_empty(),
    })
}

/// The largest sign-in body a front server reads to find its tenant.
const MAX_LOGIN_BODY: usize = 64 * 1024;

/// `POST /api/v1/login` on a cluster node: on to the owner of the tenant the body names
/// (`default` when it names none, or one the registry does not have: that tenant's owner
/// refuses it as any wrong sign-in).
async fn front_login(
    req: HttpRequest,
    body: web::Bytes,
    front: web::Data<Front>,
    client: web::Data<awc::Client>,
) -> Result<HttpResponse, ApiError> {
    #[derive(serde::Deserialize)]
    struct Named {
        tenant: Option<String>,
    }
    let named = serde_json::from_slice::<Named>(&body).ok().and_then(|n| n.tenant);
    let tenant = match named {
        Some(t) if front.node.tenant_record(&t).is_some() => t,
        _ => DEFAULT_TENANT.to_string(),
    };
    super::forward::forward(
        req,
        super::forward::Body::Read(body),
        &front.node,
        &front.owners,
        &client,
        &tenant,
    )
    .await
}

/// The `token` parameter of a query string (the desktop's and supervisor's sockets), if any.
fn query_token(query: &str) -> Option<&str> {
    query
        .split('&')
        .find_map(|kv| kv.strip_prefix("token="))
        .filter(|t| !t.is_empty())
}

/// Which tenant a request is for, as a front server can tell without the tenant's state:
/// the id in a `/api/v1/tenants/{id}/...` path; else the tenant a token names (its prefix,
/// [`super::auth::tenant_of_token`]; a tenant's admin token by its SHA-256 in the
/// registry); else `default` (its admin token, its accounts' tokens, the demo and
/// desktop pages, the Messenger webhook). A prefix of a tenant the registry does not hold
/// is `Err`: nobody's token; so is a path naming such a tenant (404 `unknown_tenant` to the
/// operator and `default`'s admin, 401 to anyone else).
pub fn tenant_of(req: &HttpRequest, front: &Front) -> Result<String, ApiError> {
    let node = &front.node;
    // A file a tenant's agent sent: its id names the tenant (a capability URL, no token).
    if let Some(rest) = req.path().strip_prefix("/files/") {
        let id = rest.split('/').next().unwrap_or_default();
        return match crate::core::messenger::file_tenant(id) {
            None => Ok(DEFAULT_TENANT.to_string()),
            Some(t) if node.tenant_record(t).is_some() => Ok(t.to_string()),
            // Only tenants the registry holds are looked up (and their owners kept).
            Some(_) => Err(ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such file")),
        };
    }
    if let Some(rest) = req.path().strip_prefix("/api/v1/tenants/") {
        let id = rest.split('/').next().unwrap_or_default();
        if id == DEFAULT_TENANT || node.tenant_record(id).is_some() {
            return Ok(id.to_string());
        }
        // Asked by the operator or `default`'s admin: no such tenant; by anyone else: 401.
        return Err(
            if operator_or_admin(req, &front.admin_token, &front.operator_token).is_ok() {
                crate::engine::EngineError::from(CoreError::UnknownTenant(id.to_string())).into()
            } else {
                ApiError::unauthorized()
            },
        );
    }
    let token = super::auth::bearer(req).or_else(|| query_token(req.query_string()));
    let Some(token) = token.filter(|t| !t.is_empty()) else {
        return Ok(DEFAULT_TENANT.into());
    };
    if let Some(tenant) = super::auth::tenant_of_token(token) {
        if tenant == DEFAULT_TENANT || node.tenant_record(tenant).is_some() {
            return Ok(tenant.to_string());
        }
        return Err(ApiError::unauthorized());
    }
    let view = node.view();
    let admin_of = crate::core::tenant::admin_of(&view.tenants, &super::auth::credential_of(token));
    Ok(admin_of.map_or(DEFAULT_TENANT.to_string(), |t| t.id.clone()))
}

/// `POST /webhooks/messenger` on a cluster node: the signed batch goes to the owner of
/// every tenant, each of which checks the signature and takes the events of its own pages
/// (a page it does not have is acknowledged and skipped). 200 once every owner answered
/// 2xx; otherwise the first other answer, so that Meta delivers the batch again (the
/// owners that took it already ignore what they took: each message's `mid` is recorded).
async fn front_webhook(
    req: HttpRequest,
    body: web::Bytes,
    front: web::Data<Front>,
    client: web::Data<awc::Client>,
) -> Result<HttpResponse, ApiError> {
    let mut tenants = vec![DEFAULT_TENANT.to_string()];
    tenants.extend(front.node.view().tenants.into_iter().map(|t| t.id));
    let sends = tenants.iter().map(|t| {
        super::forward::forward(
            req.clone(),
            super::forward::Body::Read(body.clone()),
            &front.node,
            &front.owners,
            &client,
            t,
        )
    });
    let mut answers = futures_util::future::join_all(sends).await.into_iter();
    let first = answers.next().unwrap_or_else(|| Err(ApiError::unauthorized()));
    for other in answers {
        match other {
            Ok(r) if r.status().is_success() => {}
            refused => {
                tracing::warn!(status = ?refused.as_ref().map(|r| r.status()).ok(), "a tenant's owner did not take a Messenger batch; Meta will deliver it again");
                return refused;
            }
        }
    }
    first
}

/// Every other request on a front server: on to the tenant's owner.
async fn front_forward(
    req: HttpRequest,
    payload: web::Payload,
    front: web::Data<Front>,
    client: web::Data<awc::Client>,
) -> Result<HttpResponse, ApiError> {
    let mut tenant = tenant_of(&req, &front);
    if tenant.is_err() {
        // A tenant created a moment ago on another node: read the registry once more
        // (at most every OWNER_TTL, whatever unknown tenants requests name).
        front.node.refresh_if_older(super::forward::OWNER_TTL).await;
        tenant = tenant_of(&req, &front);
    }
    super::forward::forward(
        req,
        super::forward::Body::Stream(payload),
        &front.node,
        &front.owners,
        &client,
        &tenant?,
    )
    .await
}

/// The operator's token on the front's tenant API: 404 while the API is off, 403 for a
/// tenant's token (one the front can tell: a tenant's prefix, the config's admin token, a
/// tenant's admin token), 401 otherwise.
fn front_operator(req: &HttpRequest, front: &Front) -> Result<(), ApiError> {
    if front.operator_token.is_empty() {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "the tenant API is off: it needs api.operator_token",
        ));
    }
    let token = super::auth::bearer(req).unwrap_or_default();
    if token.is_empty() {
        return Err(ApiError::unauthorized());
    }
    if bool::from(token.as_bytes().ct_eq(front.operator_token.as_bytes())) {
        return Ok(());
    }
    let a_tenant_s = bool::from(token.as_bytes().ct_eq(front.admin_token.as_bytes()))
        || tenant_of(req, front).is_ok_and(|t| t != DEFAULT_TENANT);
    if a_tenant_s {
        Err(ApiError::forbidden("tenants are managed with the operator token"))
    } else {
        Err(ApiError::unauthorized())
    }
}

/// How many times a registry change is decided again when another change came first.
const REGISTRY_TRIES: usize = 8;

/// Decides a change of the cluster's registry with the core's rules (`decide` answers the
/// registry as it should be, and the tenant it changed) and writes it at the revision
/// read; decided again when another change came first.
async fn change_registry(
    front: &Front,
    decide: impl Fn(&mut Vec<Tenant>, &Registry) -> Result<Option<Tenant>, CoreError>,
) -> Result<Option<Tenant>, ApiError> {
    for _ in 0..REGISTRY_TRIES {
        let (mut list, revision) = front.node.read_registry().await.map_err(registry_unavailable)?;
        let registry = Registry::new(front.config.server.max_tenants, front.config.rules(), list.clone());
        let changed = decide(&mut list, &registry).map_err(crate::engine::EngineError::from)?;
        list.sort_by(|a, b| a.id.cmp(&b.id));
        match front.node.write_registry(&list, revision).await {
            Ok(_) => return Ok(changed),
            Err(None) => continue,
            Err(Some(e)) => return Err(registry_unavailable(e)),
        }
    }
    Err(registry_unavailable("other changes kept coming first"))
}

fn registry_unavailable(e: impl std::fmt::Display) -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "store_unavailable",
        format!("the cluster's tenant registry cannot be written: {e}"),
    )
}

/// [`change_registry`] for a change of one tenant's record that `decide` makes (created,
/// patched, a new admin credential): the record as written.
async fn change_tenant(
    front: &Front,
    decide: impl Fn(&Registry) -> Result<Tenant, CoreError>,
) -> Result<Tenant, ApiError> {
    change_registry(front, |list, registry| {
        let t = decide(registry)?;
        list.retain(|x| x.id != t.id);
        list.push(t.clone());
        Ok(Some(t))
    })
    .await?
    .ok_or_else(|| registry_unavailable("nothing written"))
}

/// `POST /api/v1/tenants` on a cluster node: the tenant goes into the cluster's registry;
/// the node the placement rule prefers takes its lease within moments and routes it.
async fn front_create(
    req: HttpRequest,
    front: web::Data<Front>,
    body: web::Json<super::tenants::CreateTenant>,
) -> Result<HttpResponse, ApiError> {
    front_operator(&req, &front)?;
    let mut b = body.into_inner();
    let own = b.own_codes();
    let token = super::auth::new_token_in(&b.id);
    let credential = super::auth::credential_of(&token);
    let now = super::auth::now_ms();
    // What a tenant of this id left behind when its owner died while deleting it: its log
    // and snapshot go before the new tenant can read them.
    if front.node.tenant_record(&b.id).is_none()
        && b.id != DEFAULT_TENANT
        && crate::core::tenant::valid_tenant_id(&b.id)
    {
        crate::cluster::remove_leftovers(&front.node, &b.id).await;
    }
    let t = change_tenant(&front, |registry| {
        registry.create(&b.id, &b.name, own.clone(), credential.clone(), now)
    })
    .await?;
    tracing::info!(tenant = %t.id, "tenant created in the cluster's registry");
    let rules = t.rules(&front.config.rules());
    Ok(HttpResponse::Created().json(super::tenants::tenant_dto(&t, &rules, None, Some(token))))
}

/// `GET /api/v1/tenants` on a cluster node: every tenant of the registry (what each holds
/// is asked of its owner: `GET /api/v1/tenants/{id}`).
async fn front_list(req: HttpRequest, front: web::Data<Front>) -> Result<HttpResponse, ApiError> {
    front_operator(&req, &front)?;
    let (list, _) = front.node.read_registry().await.map_err(registry_unavailable)?;
    let deployment = front.config.rules();
    let mut out = vec![super::tenants::default_tenant_dto(&deployment, None)];
    out.extend(
        list.iter()
            .map(|t| super::tenants::tenant_dto(t, &t.rules(&deployment), None, None)),
    );
    Ok(HttpResponse::Ok().json(out))
}

/// `PATCH /api/v1/tenants/{id}` on a cluster node: the registry's record changes; the
/// owner puts it in force as it reads it (within a tenth of a lease).
async fn front_patch(
    req: HttpRequest,
    front: web::Data<Front>,
    id: web::Path<String>,
    body: web::Json<super::tenants::PatchTenant>,
) -> Result<HttpResponse, ApiError> {
    front_operator(&req, &front)?;
    super::tenants::not_default(&id)?;
    let patch: crate::core::tenant::TenantPatch = body.into_inner().into();
    let t = change_tenant(&front, |registry| registry.patch(&id, patch.clone())).await?;
    let rules = t.rules(&front.config.rules());
    Ok(HttpResponse::Ok().json(super::tenants::tenant_dto(&t, &rules, None, None)))
}

/// `POST /api/v1/tenants/{id}/admin-token` on a cluster node.
async fn front_reissue(
    req: HttpRequest,
    front: web::Data<Front>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    front_operator(&req, &front)?;
    super::tenants::not_default(&id)?;
    let token = super::auth::new_token_in(&id);
    let credential = super::auth::credential_of(&token);
    let t = change_tenant(&front, |registry| registry.reissue(&id, credential.clone())).await?;
    let rules = t.rules(&front.config.rules());
    Ok(HttpResponse::Ok().json(super::tenants::tenant_dto(&t, &rules, None, Some(token))))
}

/// `DELETE /api/v1/tenants/{id}` on a cluster node: the owner is asked how many
/// conversations the tenant has open (409 `tenant_not_empty` unless none); then the record
/// leaves the registry, and the owner stops the tenant and removes its log, snapshot and
/// local copy as it reads that.
async fn front_delete(
    req: HttpRequest,
    front: web::Data<Front>,
    client: web::Data<awc::Client>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    front_operator(&req, &front)?;
    let (list, _) = front.node.read_registry().await.map_err(registry_unavailable)?;
    Registry::new(front.config.server.max_tenants, front.config.rules(), list)
        .may_delete(&id, 0)
        .map_err(crate::engine::EngineError::from)?;
    let open = open_conversations(&front, &client, &id, &req).await?;
    change_registry(&front, |list, registry| {
        registry.may_delete(&id, open)?;
        list.retain(|t| t.id != *id);
        Ok(None)
    })
    .await?;
    tracing::info!(tenant = %id, "tenant deleted from the cluster's registry");
    Ok(HttpResponse::NoContent().finish())
}

/// How many conversations tenant `id` has open, asked of its owner (its
/// `GET /api/v1/tenants/{id}`, with the operator's token the request carries).
async fn open_conversations(
    front: &Front,
    client: &awc::Client,
    id: &str,
    req: &HttpRequest,
) -> Result<usize, ApiError> {
    let owner = match front.owners.owner(&front.node, id).await {
        Some(o) if !o.url.is_empty() && o.handover_to.is_none() => o,
        other => return Err(super::forward::not_owner(other.as_ref(), "")),
    };
    let url = format!("{}/api/v1/tenants/{id}", owner.url.trim_end_matches('/'));
    let mut asked = client.get(&url);
    if let Some(auth) = req.headers().get(actix_web::http::header::AUTHORIZATION) {
        asked = asked.insert_header((actix_web::http::header::AUTHORIZATION, auth.clone()));
    }
    let unreachable = |why: String| {
        let _ = front.owners.forget(id);
        super::forward::not_owner(Some(&owner), &format!(" and its owner did not answer ({why})"))
    };
    let mut answer = asked.send().await.map_err(|e| unreachable(e.to_string()))?;
    let body: serde_json::Value = answer.json().await.map_err(|e| unreachable(e.to_string()))?;
    body.pointer("/counts/open_conversations")
        .and_then(serde_json::Value::as_u64)
        .map(|n| n as usize)
        .ok_or_else(|| unreachable("no counts in its answer".into()))
}

/// The front server on `listener` (not yet running).
pub fn front_server(config: &Config, node: Node, listener: TcpListener) -> std::io::Result<Server> {
    let front = web::Data::new(Front {
        node,
        admin_token: config.api.admin_token.as_str().into(),
        operator_token: config.api.operator_token.as_str().into(),
        owners: Arc::default(),
        config: Arc::new(config.clone()),
    });
    let me = front.node.config.node_id.clone();
    let body_limit = config.server.body_limit_bytes;
    let webhook_limit = super::webhook_limit(config);
    let server = HttpServer::new(move || {
        App::new()
            .wrap(actix_web::middleware::DefaultHeaders::new().add((super::forward::NODE_HEADER, me.clone())))
            .app_data(front.clone())
            // One client per worker thread (awc's client is not `Send`).
            .app_data(web::Data::new(super::forward::client()))
            .app_data(
                web::JsonConfig::default()
                    .limit(body_limit)
                    .error_handler(super::error::json_error),
            )
            .service(web::resource("/livez").route(web::get().to(super::ops::livez)))
            .service(web::resource("/readyz").route(web::get().to(front_ready)))
            .service(web::resource("/api/v1/cluster").route(web::get().to(status)))
            .service(web::resource("/metrics").route(web::get().to(front_metrics)))
            .service(
                web::resource("/api/v1/login")
                    .app_data(web::PayloadConfig::new(MAX_LOGIN_BODY))
                    .route(web::get().to(front_form))
                    .route(web::post().to(front_login)),
            )
            .service(
                web::resource("/webhooks/messenger")
                    .app_data(web::PayloadConfig::new(webhook_limit))
                    .route(web::post().to(front_webhook))
                    .default_service(web::to(front_forward)),
            )
            .service(
                web::resource("/api/v1/tenants")
                    .route(web::post().to(front_create))
                    .route(web::get().to(front_list)),
            )
            .service(
                web::resource("/api/v1/tenants/{id}")
                    .route(web::patch().to(front_patch))
                    .route(web::delete().to(front_delete))
                    .default_service(web::to(front_forward)),
            )
            .service(web::resource("/api/v1/tenants/{id}/admin-token").route(web::post().to(front_reissue)))
            .default_service(web::to(front_forward))
    })
    // As many workers as a tenant's server: every client comes through here.
    .workers(match config.server.workers {
        0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
        n => n,
    })
    .disable_signals()
    .tcp_nodelay(true)
    .shutdown_timeout(1)
    .listen(listener)?
    .run();
    Ok(server)
}
