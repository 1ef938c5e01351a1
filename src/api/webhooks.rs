//! Events out over HTTP (../shared/API.md "Reports and events out"; docs/WEBHOOKS.md):
//! the admin subscribes URLs, lists them with their delivery state, and deletes them.
//! Which URLs are allowed and every delivery rule are the core's (`core/webhooks.rs`);
//! here the URL's host is resolved so that the core can judge its addresses.

use std::net::IpAddr;
use std::time::Duration;

use actix_web::{web, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::auth::{Caller, Tenanted};
use super::error::{ApiError, ErrorBody};
use super::rest::id;
use crate::core::webhooks::{check_url, EventKind, NewWebhook, Webhook};
use crate::core::{Command, CoreError, Reply};
use crate::engine::EngineError;

type Res = Result<HttpResponse, ApiError>;

/// How long resolving a subscription's host may take.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);

/// A webhook subscription and how its delivery goes (the secret is never shown).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct WebhookDto {
    pub id: String,
    pub url: String,
    /// The kinds of event it gets.
    #[schema(value_type = Vec<String>)]
    pub events: Vec<EventKind>,
    /// `active`, or `failing` while its deliveries keep failing (its events wait).
    pub state: String,
    /// Since when it is failing, and the last failure (null while active).
    pub failing_since: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    /// Every event up to this id is delivered (or dropped).
    pub delivered_through: u64,
    /// Events dropped because its backlog reached `webhooks.max_backlog`.
    pub dropped: u64,
    pub created_at: DateTime<Utc>,
}

fn time(ms: u64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms as i64).unwrap_or_default()
}

impl From<&Webhook> for WebhookDto {
    fn from(h: &Webhook) -> Self {
        WebhookDto {
            id: h.id.clone(),
            url: h.url.clone(),
            events: h.events.clone(),
            state: if h.failing.is_some() { "failing" } else { "active" }.into(),
            failing_since: h.failing.as_ref().map(|f| time(f.since)),
            last_error: h.failing.as_ref().map(|f| f.error.clone()),
            delivered_through: h.delivered_through,
            dropped: h.dropped,
            created_at: time(h.created_at),
        }
    }
}

/// `POST /api/v1/webhooks`.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateWebhook {
    /// Its id; left out: one is made (`wh-` and 12 hex digits).
    #[serde(default)]
    #[schema(pattern = r"^[A-Za-z0-9_.-]{1,64}$")]
    pub id: Option<String>,
    /// Where events are POSTed: http or https.
    #[schema(max_length = 2048)]
    pub url: String,
    /// `conversation.created`, `.offered`, `.accepted`, `.transferred`, `.ended`,
    /// `.wrapped_up`, `message.created`, `agent.state_changed`.
    #[schema(value_type = Vec<String>)]
    pub events: Vec<EventKind>,
    /// The key of `X-Switchboard-Signature-256` (16 to 256 bytes).
    #[schema(min_length = 16, max_length = 256)]
    pub secret: String,
}

/// The webhooks' routes.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        super::resource("/api/v1/webhooks")
            .route(web::get().to(list))
            .route(web::post().to(create)),
    )
    .service(
        super::resource("/api/v1/webhooks/{id}")
            .route(web::get().to(get))
            .route(web::delete().to(delete)),
    );
}

/// The addresses of `url`'s host (none when it has no host or cannot be resolved).
async fn addresses(url: &str) -> Vec<IpAddr> {
    let Ok(parsed) = url::Url::parse(url) else {
        return Vec::new();
    };
    let Some(host) = parsed.host() else { return Vec::new() };
    let port = parsed.port_or_known_default().unwrap_or(80);
    match host {
        url::Host::Ipv4(a) => vec![IpAddr::V4(a)],
        url::Host::Ipv6(a) => vec![IpAddr::V6(a)],
        url::Host::Domain(name) => {
            let lookup = tokio::net::lookup_host((name.to_string(), port));
            match tokio::time::timeout(RESOLVE_TIMEOUT, lookup).await {
                Ok(Ok(addrs)) => addrs.map(|a| a.ip()).collect(),
                _ => Vec::new(),
            }
        }
    }
}

/// Subscribes a URL to events (admin). Events made from now on are POSTed to it.
#[utoipa::path(post, path = "/api/v1/webhooks", tag = "webhooks", request_body = CreateWebhook,
    responses(
        (status = 201, description = "The subscription", body = WebhookDto),
        (status = 400, description = "Bad input: url, events or secret; or a loopback or private address (`private_address`)", body = ErrorBody),
        (status = 401, description = "No or wrong token", body = ErrorBody),
        (status = 403, description = "Not the admin", body = ErrorBody),
        (status = 409, description = "The id is taken (`already_exists`), or the tenant has 20 (`tenant_limit`)", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn create(state: Tenanted, caller: Caller, body: web::Json<CreateWebhook>) -> Res {
    caller.admin()?;
    let b = body.into_inner();
    let allow_private = state.webhooks_allow_private;
    // Resolved only when it matters; the URL's form is checked either way.
    let addrs = if allow_private {
        Vec::new()
    } else {
        addresses(&b.url).await
    };
    check_url(&b.url, &addrs, allow_private).map_err(EngineError::from)?;
    let id = match b.id {
        Some(id) => id,
        None => format!("wh-{:012x}", rand::random::<u64>() >> 16),
    };
    let new = NewWebhook {
        id,
        url: b.url,
        events: b.events,
        secret: b.secret,
    };
    match state.engine.exec(Command::CreateWebhook(new)).await? {
        Reply::Webhook(h) => Ok(HttpResponse::Created().json(WebhookDto::from(&*h))),
        r => Err(EngineError::UnexpectedReply {
            expected: "webhook",
            got: r.name(),
        }
        .into()),
    }
}

/// Every subscription with its delivery state (admin).
#[utoipa::path(get, path = "/api/v1/webhooks", tag = "webhooks",
    responses(
        (status = 200, description = "The subscriptions, by id", body = [WebhookDto]),
        (status = 401, description = "No or wrong token", body = ErrorBody),
        (status = 403, description = "Not the admin", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn list(state: Tenanted, caller: Caller) -> Res {
    caller.admin()?;
    let hooks = state.engine.webhooks().await?;
    let v: Vec<WebhookDto> = hooks.iter().map(WebhookDto::from).collect();
    Ok(HttpResponse::Ok().json(v))
}

/// One subscription (admin).
#[utoipa::path(get, path = "/api/v1/webhooks/{id}", tag = "webhooks",
    params(("id" = String, Path, description = "Webhook id")),
    responses(
        (status = 200, description = "The subscription", body = WebhookDto),
        (status = 400, description = "Not an id", body = ErrorBody),
        (status = 401, description = "No or wrong token", body = ErrorBody),
        (status = 403, description = "Not the admin", body = ErrorBody),
        (status = 404, description = "Unknown webhook", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn get(state: Tenanted, caller: Caller, path: web::Path<String>) -> Res {
    caller.admin()?;
    let wanted = id(&path)?.to_string();
    let hooks = state.engine.webhooks().await?;
    match hooks.iter().find(|h| h.id == wanted) {
        Some(h) => Ok(HttpResponse::Ok().json(WebhookDto::from(h))),
        None => Err(EngineError::from(CoreError::UnknownWebhook(wanted)).into()),
    }
}

/// Deletes a subscription (admin): its events not yet delivered are not sent.
#[utoipa::path(delete, path = "/api/v1/webhooks/{id}", tag = "webhooks",
    params(("id" = String, Path, description = "Webhook id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "Not an id", body = ErrorBody),
        (status = 401, description = "No or wrong token", body = ErrorBody),
        (status = 403, description = "Not the admin", body = ErrorBody),
        (status = 404, description = "Unknown webhook", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn delete(state: Tenanted, caller: Caller, path: web::Path<String>) -> Res {
    caller.admin()?;
    let wanted = id(&path)?.to_string();
    state.engine.exec(Command::DeleteWebhook { id: wanted }).await?;
    Ok(HttpResponse::NoContent().finish())
}
