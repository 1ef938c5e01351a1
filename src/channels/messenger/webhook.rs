//! `GET` and `POST /webhooks/messenger`: Meta's verification handshake and the signed
//! event deliveries.
//!
//! The signature (`X-Hub-Signature-256: sha256=<hex>`, HMAC-SHA256 of the raw body with
//! the app secret) is checked on the raw bytes, in constant time, before anything is
//! parsed. The answer is 200 only once every event of the batch is durable (or was
//! ignored); a store failure answers 500 so that Meta redelivers, and the message ids
//! make the redelivery harmless.

use actix_web::{web, HttpRequest, HttpResponse};
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;
use subtle::ConstantTimeEq;

use super::payload::{classify, Kind, WebhookBody};
use super::{metrics, Messenger};
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
    let parsed: WebhookBody = match serde_json::from_slice(&body) {
        Ok(b) => b,
        Err(e) => {
            metrics::webhook("batch", "bad_payload");
            return refuse(
                actix_web::http::StatusCode::BAD_REQUEST,
                "not_a_page_event",
                &format!("the body is not a Messenger page event: {e}"),
            );
        }
    };
    if parsed.object != "page" {
        metrics::webhook("batch", "bad_payload");
        return refuse(
            actix_web::http::StatusCode::BAD_REQUEST,
            "not_a_page_event",
            &format!("object is {:?}, not \"page\"", parsed.object),
        );
    }
    let mut commands = Vec::new();
    let mut labels = Vec::new();
    for entry in parsed.entry {
        for event in entry.messaging {
            match classify(&entry.id, event) {
                Kind::Ignored(kind) => metrics::webhook(kind, "ignored"),
                k @ (Kind::Message(..) | Kind::Mark(_)) => {
                    labels.push(k.label());
                    match k {
                        Kind::Message(cmd, _) | Kind::Mark(cmd) => commands.push(cmd),
                        Kind::Ignored(_) => {}
                    }
                }
            }
        }
    }
    messenger.name_customers(&mut commands).await;
    let answers = messenger.engine.exec_batch(commands).await;
    let mut failed = None;
    for (answer, kind) in answers.into_iter().zip(labels) {
        match answer {
            Ok(_) => metrics::webhook(kind, "accepted"),
            Err(EngineError::Core(CoreError::UnknownPage(page))) => {
                tracing::warn!(%page, kind, "messenger event for a page no entry point has; acknowledged");
                metrics::webhook(kind, "unknown_page");
            }
            Err(EngineError::Core(e)) => {
                tracing::warn!(kind, code = e.code(), error = %e, "messenger event refused; acknowledged");
                metrics::webhook(kind, "refused");
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
