//! `GET` and `POST /webhooks/messenger`: Meta's verification handshake and the signed
//! event deliveries.
//!
//! The signature (`X-Hub-Signature-256: sha256=<hex>`, HMAC-SHA256 of the raw body with
//! the app secret) is checked on the raw bytes, in constant time, before anything is
//! parsed. Each event is read on its own ([`super::payload`]): one the engine cannot use
//! is skipped and counted, never the batch's failure. The answer is 200 once every event
//! it could use is durable; only a bad signature (403) or a store failure (500) makes Meta
//! redeliver, and the message ids make the redelivery harmless.

use actix_web::{web, HttpRequest, HttpResponse};
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;
use subtle::ConstantTimeEq;

use super::payload::{read_body, Item};
use super::{metrics, Messenger};
use crate::core::messenger::SkipReason;
use crate::core::CoreError;
use crate::engine::EngineError;

/// The verification handshake's query.
#[derive(Debug, Deserialize)]
pub struct Verify {
    #[serde(rename = "hub.mode")]
    mode: Option<String>,
    #[serde(rename = "hub.verify_token")]
    verify_token: Option<String>,
    #[serde(rename = "hub.challenge")]
    challenge: Option<String>,
}

fn refuse(status: actix_web::http::StatusCode, code: &str, message: &str) -> HttpResponse {
    HttpResponse::build(status).json(serde_json::json!({"error": {"code": code, "message": message}}))
}

fn disabled() -> HttpResponse {
    refuse(
        actix_web::http::StatusCode::FORBIDDEN,
        "webhook_disabled",
        "the Messenger webhook is off: no app secret is configured (messenger.app_secret, \
         SWITCHBOARD_MESSENGER__APP_SECRET)",
    )
}

/// `GET /webhooks/messenger`: answers `hub.challenge` when `hub.mode` is `subscribe` and
/// `hub.verify_token` is the configured one (compared in constant time); 403 otherwise.
pub async fn verify(messenger: web::Data<Messenger>, q: web::Query<Verify>) -> HttpResponse {
    let config = &messenger.config;
    if !config.webhook_enabled() {
        return disabled();
    }
    let token_ok = !config.verify_token.is_empty()
        && q.verify_token
            .as_deref()
            .is_some_and(|t| bool::from(t.as_bytes().ct_eq(config.verify_token.as_bytes())));
    match (&q.mode, &q.challenge) {
        (Some(mode), Some(challenge)) if mode == "subscribe" && token_ok => {
            tracing::info!("messenger webhook verified");
            HttpResponse::Ok().content_type("text/plain").body(challenge.clone())
        }
        _ => refuse(
            actix_web::http::StatusCode::FORBIDDEN,
            "verification_failed",
            "hub.mode must be subscribe and hub.verify_token the configured verify token",
        ),
    }
}

/// True when `header` is `sha256=<hex>` of HMAC-SHA256(`secret`, `body`); constant time.
pub fn signature_valid(secret: &[u8], body: &[u8], header: Option<&str>) -> bool {
    let Some(hex_sig) = header.and_then(|h| h.trim().strip_prefix("sha256=")) else {
        return false;
    };
    let Ok(sig) = hex::decode(hex_sig) else {
        return false;
    };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else {
        return false;
    };
    mac.update(body);
    mac.verify_slice(&sig).is_ok()
}

/// `X-Hub-Signature-256` for `body` signed with `secret` (tests and the signing tool).
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    // HMAC takes a key of any length.
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC accepts any key length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Counts (and logs at debug) one skipped event.
fn skipped(reason: SkipReason, kind: &'static str) {
    tracing::debug!(reason = reason.as_str(), kind, "messenger event skipped");
    metrics::webhook(kind, "ignored");
    metrics::skipped(reason);
}

/// `POST /webhooks/messenger`. See the module docs.
pub async fn receive(messenger: web::Data<Messenger>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    let config = &messenger.config;
    if !config.webhook_enabled() {
        metrics::webhook("batch", "disabled");
        return disabled();
    }
    let header = req.headers().get("x-hub-signature-256").and_then(|h| h.to_str().ok());
    if !signature_valid(config.app_secret.as_bytes(), &body, header) {
        tracing::warn!("messenger webhook: missing or invalid signature");
        metrics::webhook("batch", "bad_signature");
        return refuse(
            actix_web::http::StatusCode::FORBIDDEN,
            "invalid_signature",
            "X-Hub-Signature-256 must be sha256=<HMAC-SHA256 of the body with the app secret>",
        );
    }
    let mut commands = Vec::new();
    let mut labels = Vec::new();
    for item in read_body(&body, &config.app_id) {
        match item {
            Item::Use(cmd, kind) => {
                commands.push(cmd);
                labels.push(kind);
            }
            Item::Skip(reason, kind) => skipped(reason, kind),
        }
    }
    messenger.name_customers(&mut commands).await;
    let answers = exec_in_tenants(&messenger, commands).await;
    let mut failed = None;
    for (answer, kind) in answers.into_iter().zip(labels) {
        match answer {
            Ok(_) => metrics::webhook(kind, "accepted"),
            Err(EngineError::Core(CoreError::UnknownPage(page))) => {
                // The page id is digits (checked before it got here): safe in a log line.
                tracing::warn!(%page, kind, "messenger event for a page no entry point has; acknowledged");
                metrics::webhook(kind, "unknown_page");
                metrics::skipped(SkipReason::UnknownPage);
            }
            Err(EngineError::Core(CoreError::ThreadOfAnotherApp(_))) => {
                // Standby on an entry point whose thread control is off: the bot's thread.
                metrics::webhook(kind, "ignored");
                metrics::skipped(SkipReason::Standby);
            }
            Err(EngineError::Core(e)) => {
                tracing::warn!(kind, code = e.code(), error = ?e.to_string(), "messenger event refused; acknowledged");
                metrics::webhook(kind, "refused");
                metrics::skipped(SkipReason::Refused);
            }
            Err(e) => {
                metrics::webhook(kind, "failed");
                failed = Some(e);
            }
        }
    }
    if let Some(e) = failed {
        tracing::error!(error = %e, "messenger events not made durable; Meta will redeliver");
        return refuse(
            actix_web::http::StatusCode::INTERNAL_SERVER_ERROR,
            e.code(),
            &e.to_string(),
        );
    }
    HttpResponse::Ok().content_type("text/plain").body("EVENT_RECEIVED")
}

/// Runs a batch of events in tenant `default`; the events for a page none of its entry
/// points has go, in order, to each other tenant in turn until one takes them
/// (../shared/API.md "Tenants": a page belongs to one entry point in one tenant). With no
/// other tenant this is one `exec_batch`, as it always was.
async fn exec_in_tenants(
    messenger: &Messenger,
    commands: Vec<crate::engine::Command>,
) -> Vec<Result<crate::engine::Reply, EngineError>> {
    let others = messenger.tenants.as_ref().map(|t| t.others()).unwrap_or_default();
    if others.is_empty() {
        return messenger.engine.exec_batch(commands).await;
    }
    let copy = commands.clone();
    let mut answers = messenger.engine.exec_batch(commands).await;
    for engine in others {
        let unknown: Vec<usize> = answers
            .iter()
            .enumerate()
            .filter(|(_, a)| matches!(a, Err(EngineError::Core(CoreError::UnknownPage(_)))))
            .map(|(i, _)| i)
            .collect();
        if unknown.is_empty() {
            break;
        }
        let retry: Vec<_> = unknown.iter().filter_map(|&i| copy.get(i).cloned()).collect();
        for (i, answer) in unknown.into_iter().zip(engine.exec_batch(retry).await) {
            if !matches!(answer, Err(EngineError::Core(CoreError::UnknownPage(_)))) {
                answers[i] = answer;
            }
        }
    }
    answers
}
