//! The demo customer's API, behind `/demo/customer` (on while `demo.customer_page` is).
//!
//! A browser tab stands in for a Messenger customer on the entry point
//! `demo.entry_point`, so that a newcomer can try the agent desktop with two tabs. It
//! must not need the admin token, so it has its own, narrow endpoints:
//!
//! - `POST /demo/api/messages` `{"name","text"}`: the customer writes (opens or joins its
//!   conversation, exactly as a Messenger message does); 201 with the customer's view.
//! - `GET /demo/api/conversations/{id}?after=SEQ`: the customer's view of its
//!   conversation, messages after `SEQ`; the page polls it to show replies live.
//! - `POST /demo/api/conversations/{id}/end`: the customer ends the chat.
//!
//! `/demo/customer?tenant=ID` chats with tenant `ID` (its entry point `demo.entry_point`,
//! which that tenant's admin creates): the page sends `X-Switchboard-Tenant: ID` with
//! every call.
//!
//! **Who the customer is.** The page makes a random key (32 bytes, hex) and keeps it in
//! the tab's `sessionStorage`; it sends it as `Authorization: Bearer <key>`. The customer
//! id is derived from the key's SHA-256 (`web-` and 24 hex digits), so whoever holds the
//! key is that customer, the server keeps no state for it, and agents, who see the
//! customer id, cannot turn it back into the key. A conversation of another customer or
//! of another entry point is 404, as if it did not exist.
//!
//! Like any public chat widget, this lets anyone who reaches the listener open
//! conversations on that one entry point; it cannot read or act on anything else.
//! New conversations are limited per client address (`demo.new_conversations_per_minute`,
//! [`crate::core::limits::NewConversations`]): one more is 429 `rate_limited` and creates
//! nothing; writing into the customer's open conversation is not counted. Production
//! turns the page off (docs/DECISIONS.md "Demo customer page").

use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::auth;
use super::dto::{AuthorDto, AuthorKindDto, ConversationStateDto, MessageDto};
use super::error::ApiError;
use super::AppState;
use crate::core::{self, Conversation, Customer};
use crate::engine::{Command, Reply};

type Res = Result<HttpResponse, ApiError>;

/// The window of `demo.new_conversations_per_minute`.
pub const OPENING_WINDOW_MS: u64 = 60_000;

/// The demo page's limiter, from `[demo]`; as many addresses and customers tracked as the
/// failed-authentication limit tracks addresses (memory stays bounded).
pub fn openings(config: &crate::config::DemoConfig) -> core::limits::NewConversations<std::net::IpAddr> {
    core::limits::NewConversations::new(
        config.new_conversations_per_minute,
        OPENING_WINDOW_MS,
        super::AUTH_TRACKED_ADDRESSES,
    )
}

/// The limiter's lock. A panic while holding it leaves counts, never broken invariants,
/// so a poisoned lock is taken over (as the failed-authentication limit does).
fn limiter(state: &AppState) -> std::sync::MutexGuard<'_, core::limits::NewConversations<std::net::IpAddr>> {
    state.demo_openings.lock().unwrap_or_else(|p| p.into_inner())
}

/// The demo API's routes.
pub fn routes(cfg: &mut web::ServiceConfig) {
    let resource = |p| web::resource(p).default_service(web::to(super::error::method_not_allowed));
    cfg.service(resource("/demo/api/messages").route(web::post().to(write)))
        .service(resource("/demo/api/conversations/{id}").route(web::get().to(read)))
        .service(resource("/demo/api/conversations/{id}/end").route(web::post().to(end)))
        .service(resource("/demo/api/conversations/{id}/typing").route(web::post().to(typing)));
}

/// What the customer writes.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Write {
    /// The name agents see.
    pub name: String,
    pub text: String,
}

/// The customer types or stopped.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Typing {
    pub on: bool,
}

/// `?after=SEQ`: only messages after this one.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct After {
    #[serde(default)]
    pub after: u64,
}

/// The customer's view of its conversation: no queue, offer or agent ids.
#[derive(Debug, Serialize)]
pub struct CustomerView {
    pub id: String,
    pub state: ConversationStateDto,
    pub ended_reason: Option<String>,
    pub messages: Vec<MessageDto>,
}

impl CustomerView {
    fn of(c: &Conversation, after: u64) -> Self {
        CustomerView {
            id: c.id.clone(),
            state: c.state.into(),
            ended_reason: c.ended_reason.clone(),
            messages: c
                .transcript
                .iter()
                // Internal notes are for the agents (issue 26 item 5).
                .filter(|m| m.seq > after && m.for_customer())
                .map(|m| {
                    let mut dto = MessageDto::from(m);
                    // The customer sees names, not the agents' ids.
                    if !matches!(dto.author.kind, AuthorKindDto::Customer) {
                        dto.author = AuthorDto { id: None, ..dto.author };
                    }
                    dto
                })
                .collect(),
        }
    }
}

/// The customer id of a demo key: `web-` and the first 24 hex digits of its SHA-256.
pub fn customer_id(key: &str) -> String {
    let digest = hex::encode(Sha256::digest(format!("switchboard demo customer\0{key}").as_bytes()));
    format!("web-{}", &digest[..24])
}

/// The caller's customer id, from its bearer key (32 to 128 characters of `[A-Za-z0-9_-]`).
fn customer_of(req: &HttpRequest) -> Result<String, ApiError> {
    let key = auth::bearer(req).unwrap_or("");
    let ok =
        (32..=128).contains(&key.len()) && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(customer_id(key))
    } else {
        Err(ApiError::new(
            actix_web::http::StatusCode::UNAUTHORIZED,
            "unauthorized",
            "the demo customer key (a bearer token of 32 to 128 characters) is missing or malformed",
        ))
    }
}

fn entry_point(state: &AppState) -> Result<&str, ApiError> {
    state
        .demo_entry_point
        .as_deref()
        .ok_or_else(|| ApiError::no_route("/demo/api"))
}

/// The conversation `cid` if it is this customer's on the demo entry point; else 404.
async fn own(state: &AppState, customer: &str, cid: &str) -> Result<Conversation, ApiError> {
    let ep = entry_point(state)?;
    let unknown = || {
        ApiError::from(crate::engine::EngineError::from(core::CoreError::UnknownConversation(
            cid.into(),
        )))
    };
    if !core::valid_id(cid) {
        return Err(unknown());
    }
    // The read right is the core's (`Floor::may_read`): a customer reads its own
    // conversations on its entry point; any other is unknown to it.
    let reader = core::Principal::Customer {
        entry_point: ep.into(),
        customer: customer.into(),
    };
    match state.engine.conversation_for(cid, reader).await {
        Ok(c) => Ok(c),
        Err(e) if e.core().is_some() => Err(unknown()),
        Err(e) => Err(e.into()),
    }
}

/// The customer writes: opens its conversation on the demo entry point or joins the open one.
///
/// A write that would open a conversation takes one from the client address's limit
/// first (429 `rate_limited` over it, and nothing is created); one into the customer's
/// open conversation does not.
pub async fn write(app: web::Data<AppState>, req: HttpRequest, body: web::Json<Write>) -> Res {
    let state = tenant_of(&app, &req)?;
    let customer = customer_of(&req)?;
    // The limiter remembers the customer's conversation per tenant (ids are a tenant's).
    let remembered_as = core::tenant::scoped(Some(state.tenant()), &customer);
    let ep = entry_point(&state)?.to_string();
    let b = body.into_inner();
    // The client address as for the failed-authentication limit: the TCP peer, or the
    // client a trusted proxy names (docs/DECISIONS.md "Operations").
    let address = auth::client_address(&req, &state);
    let remembered = limiter(&state).conversation_of(&remembered_as).map(str::to_string);
    // The conversation this write joins, if the customer's last one is still open. The
    // engine is asked outside the limiter's lock.
    let joins = match remembered {
        Some(cid) => match state.engine.conversation(&cid).await? {
            Some(c)
                if c.state != core::ConversationState::Ended
                    && c.customer.id == customer
                    && c.entry_point.as_deref() == Some(ep.as_str()) =>
            {
                Some(cid)
            }
            _ => None,
        },
        None => None,
    };
    if let (None, Some(ip)) = (&joins, address) {
        if let Err(retry_ms) = limiter(&state).take(&ip, auth::now_ms()) {
            tracing::info!(address = %ip, "demo page: new conversation refused, over demo.new_conversations_per_minute");
            return Err(ApiError::rate_limited(
                retry_ms,
                "too many new conversations from this address",
            ));
        }
    }
    if joins.is_none() {
        if let Err(e) = state.engine.admit() {
            crate::metrics::OVERLOAD_REFUSED.with_label_values(&["demo"]).inc();
            return Err(e.into());
        }
    }
    let reply = state
        .engine
        .exec(Command::CustomerMessage {
            entry_point: ep,
            customer: Customer {
                id: customer.clone(),
                name: b.name,
            },
            text: b.text,
            channel: core::Channel::Rest,
            open: core::Opening::default(),
        })
        .await?;
    // A satisfaction survey's answer names the rated conversation, which the floor may
    // no longer hold (complete): read back whole.
    let reply = match reply {
        Reply::ConversationId(_) => Reply::Conversation(Box::new(state.engine.conversation_of(reply).await?)),
        r => r,
    };
    match reply {
        Reply::Conversation(c) => {
            let mut limits = limiter(&state);
            // The conversation ended between the look-up and the write, so the write
            // opened a new one: it counts, or ending and writing in a loop would open
            // conversations past the limit.
            if let (Some(joined), Some(ip)) = (&joins, address) {
                if *joined != c.id {
                    limits.opened(&ip, auth::now_ms());
                }
            }
            limits.remember(&remembered_as, &c.id);
            drop(limits);
            Ok(HttpResponse::Created().json(CustomerView::of(&c, 0)))
        }
        _ => Err(ApiError::new(
            actix_web::http::StatusCode::SERVICE_UNAVAILABLE,
            "engine_unavailable",
            "the engine gave an unexpected answer",
        )),
    }
}

/// The tenant the page chats with: `X-Switchboard-Tenant` (the page sends its
/// `?tenant=`), else `default`; an unknown tenant is 404, as an unknown page would be.
fn tenant_of(app: &web::Data<AppState>, req: &HttpRequest) -> Result<auth::Tenanted, ApiError> {
    let named = req.headers().get("x-switchboard-tenant").and_then(|h| h.to_str().ok());
    auth::Tenanted::named(app, named).ok_or_else(|| {
        ApiError::new(
            actix_web::http::StatusCode::NOT_FOUND,
            "not_found",
            "no such contact centre",
        )
    })
}

/// The customer's view of its conversation, messages after `?after=`.
pub async fn read(
    app: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    after: web::Query<After>,
) -> Res {
    let state = tenant_of(&app, &req)?;
    let customer = customer_of(&req)?;
    let c = own(&state, &customer, &path).await?;
    Ok(HttpResponse::Ok().json(CustomerView::of(&c, after.after)))
}

/// The customer types (`on: true`) or stopped: the agents in the conversation are told
/// (the engine bounds how often). 204; an ended conversation is 409 `conversation_ended`.
pub async fn typing(
    app: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Json<Typing>,
) -> Res {
    let state = tenant_of(&app, &req)?;
    let customer = customer_of(&req)?;
    let c = own(&state, &customer, &path).await?;
    state
        .engine
        .exec(Command::CustomerTyping {
            conversation: c.id,
            on: body.on,
        })
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// The customer ends the chat.
pub async fn end(app: web::Data<AppState>, req: HttpRequest, path: web::Path<String>) -> Res {
    let state = tenant_of(&app, &req)?;
    let customer = customer_of(&req)?;
    let c = own(&state, &customer, &path).await?;
    if c.state != core::ConversationState::Ended {
        state.engine.customer_end(&c.id).await?;
    }
    let c = own(&state, &customer, &path).await?;
    Ok(HttpResponse::Ok().json(CustomerView::of(&c, 0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn customer_ids_are_stable_valid_and_reveal_nothing() {
        let key = "0123456789abcdef0123456789abcdef";
        let id = customer_id(key);
        assert_eq!(id, customer_id(key));
        assert_ne!(id, customer_id("0123456789abcdef0123456789abcdeF"));
        assert!(core::valid_id(&id), "{id}");
        assert!(!id.contains(key));
    }
}
