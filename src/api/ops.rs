//! What an operator relies on beside the product's API (API.md "Operations"): liveness,
//! readiness (an active check of the store), and the online backup.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};

use super::auth::Caller;
use super::dto::{HealthDto, OutboxHealthDto};
use super::error::{ApiError, ErrorBody};
use super::AppState;

/// 200 while the process serves HTTP; it asks nothing of the engine or the store.
#[utoipa::path(get, path = "/livez", tag = "operations",
    responses((status = 200, description = "The process serves HTTP", body = HealthDto)))]
pub async fn livez() -> HttpResponse {
    HttpResponse::Ok().json(HealthDto {
        status: "ok".into(),
        messenger_outbox: None,
    })
}

/// 200 only while the store accepts a write (a probe record written and flushed within
/// `store.probe_timeout_ms`) and the engine answers; 503 `not_ready` with the reason
/// otherwise. After a store fault the engine rebuilds itself from the store once it
/// accepts writes again (a background task tries after a second, then backs off to 5 s).
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses(
        (status = 200, description = "Ready", body = HealthDto),
        (status = 503, description = "Not ready; the message says why", body = ErrorBody),
    ))]
pub async fn readyz(
    state: web::Data<AppState>,
    messenger: Option<web::Data<crate::channels::messenger::Messenger>>,
) -> Result<HttpResponse, ApiError> {
    match state.engine.ready(state.probe_timeout).await {
        // The Messenger outbox's figures: a dead Graph API makes them grow, and is no
        // reason to be unready (the outbox is there to wait it out).
        Ok(()) => Ok(HttpResponse::Ok().json(HealthDto {
            status: "ok".into(),
            messenger_outbox: messenger
                .and_then(|m| m.outbox.as_ref().map(|o| o.figures()))
                .map(|f| OutboxHealthDto {
                    depth: f.depth,
                    oldest_age_ms: f.oldest_age_ms,
                }),
        })),
        Err(why) => Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "not_ready", why)),
    }
}

/// The same as `/readyz` (kept for probes configured before `/readyz` existed).
#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses(
        (status = 200, description = "Ready", body = HealthDto),
        (status = 503, description = "Not ready; the message says why", body = ErrorBody),
    ))]
pub async fn healthz(
    state: web::Data<AppState>,
    messenger: Option<web::Data<crate::channels::messenger::Messenger>>,
) -> Result<HttpResponse, ApiError> {
    readyz(state, messenger).await
}

/// A consistent snapshot of everything durable, as one file (docs/DEPLOY.md, "Backup and
/// restore"). Commits wait while the copy is taken; restore it with
/// `switchboard restore --from FILE --store-path DIR`.
#[utoipa::path(post, path = "/api/v1/admin/backup", tag = "operations",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The backup file", body = Vec<u8>, content_type = "application/octet-stream"),
        (status = 401, description = "No or wrong token", body = ErrorBody),
        (status = 403, description = "Not the admin token", body = ErrorBody),
        (status = 503, description = "The store cannot be read", body = ErrorBody),
    ))]
pub async fn backup(caller: Caller, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    caller.admin()?;
    let started = std::time::Instant::now();
    let bytes = state.engine.store().backup().await.map_err(|e| {
        tracing::error!(error = %e, "backup failed");
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "store_unavailable", e.to_string())
    })?;
    tracing::info!(
        bytes = bytes.len(),
        duration_ms = started.elapsed().as_secs_f64() * 1000.0,
        "backup taken"
    );
    let name = format!("switchboard-{}.backup", chrono::Utc::now().format("%Y%m%dT%H%M%SZ"));
    Ok(HttpResponse::Ok()
        .content_type("application/octet-stream")
        .insert_header((
            actix_web::http::header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{name}\""),
        ))
        .body(bytes))
}
