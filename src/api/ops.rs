//! What an operator relies on beside the product's API (../shared/API.md "Operations"): liveness,
//! readiness (an active check of the store), and the online backup.

use actix_web::http::StatusCode;
use actix_web::{web, FromRequest, HttpRequest, HttpResponse};

use super::auth::{Caller, Tenanted};
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
                .and_then(|m| m.outbox.as_ref().map(|o| (o.figures(), o.unauthorized())))
                .map(|(f, unauthorized)| OutboxHealthDto {
                    depth: f.depth,
                    oldest_age_ms: f.oldest_age_ms,
                    unauthorized_entry_points: unauthorized,
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

/// A consistent snapshot of everything durable, as one file streamed while it is read
/// (docs/DEPLOY.md, "Backup and restore"; docs/STORE.md, "Backup"). Its point in time is
/// fixed when the request arrives, between two group commits; commits go on while the
/// file is read and sent, and the server holds a few MB for it whatever the store's size.
/// One backup at a time (409 `backup_in_progress`). A failure after the answer started
/// cuts the connection, so the client never gets a file that ends well (the checksum is
/// the file's last bytes). Restore it with `switchboard restore --from FILE --store-path DIR`.
/// With tenants (docs/TENANTS.md): `default`'s admin token or the operator token takes the
/// deployment's backup (every tenant's records and the tenant registry), another tenant's
/// admin token that tenant's records (restored with `--tenant`).
#[utoipa::path(post, path = "/api/v1/admin/backup", tag = "operations",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The backup file", body = Vec<u8>, content_type = "application/octet-stream"),
        (status = 401, description = "No or wrong token", body = ErrorBody),
        (status = 403, description = "Not an admin token or the operator token", body = ErrorBody),
        (status = 409, description = "Another backup is being taken", body = ErrorBody),
        (status = 503, description = "The store cannot be read", body = ErrorBody),
    ))]
pub async fn backup(req: HttpRequest, app: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    // The operator's token: the deployment's backup (it acts in no tenant otherwise).
    if super::tenants::is_operator(&req, &app) {
        return stream_backup(&app.engine, "deployment", true).await;
    }
    let caller = Caller::extract(&req).await?;
    let state = Tenanted::extract(&req).await?;
    caller.admin()?;
    // `default`'s admin: the deployment's (every tenant's records and the registry);
    // another tenant's admin: its tenant's records.
    // In a cluster, a tenant's own server holds that tenant alone: its whole store.
    let whole = state.tenant() == state.tenants.default_id();
    let name = if state.tenant() == crate::core::tenant::DEFAULT_TENANT {
        "deployment"
    } else {
        state.tenant()
    };
    stream_backup(&state.engine, name, whole).await
}

/// The backup of `engine`'s store (tenant `tenant`'s records, or with `whole` every
/// record of the store), streamed as [`backup`] says.
pub async fn stream_backup(
    engine: &crate::engine::Engine,
    tenant: &str,
    whole: bool,
) -> Result<HttpResponse, ApiError> {
    use futures_util::StreamExt;
    let store = engine.store();
    let started = if whole { store.backup_all() } else { store.backup() };
    let chunks = started.await.map_err(|e| match e {
        crate::store::StoreError::Busy(why) => ApiError::new(StatusCode::CONFLICT, "backup_in_progress", why),
        e => {
            tracing::error!(error = %e, "backup failed");
            ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "store_unavailable", e.to_string())
        }
    })?;
    tracing::info!(tenant, "backup started");
    let name = format!(
        "switchboard-{tenant}-{}.backup",
        chrono::Utc::now().format("%Y%m%dT%H%M%SZ")
    );
    // An error item makes actix cut the connection mid-body, which is what the client
    // must see: the status is already sent.
    let body = chunks.map(|chunk| {
        chunk
            .map(web::Bytes::from)
            .map_err(actix_web::error::ErrorServiceUnavailable)
    });
    Ok(HttpResponse::Ok()
        .content_type("application/octet-stream")
        .insert_header((
            actix_web::http::header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{name}\""),
        ))
        .streaming(body))
}

/// Takes a backup from the engine at `url` (its `POST /api/v1/admin/backup`) into the
/// file `to`, for `switchboard backup`: the answer goes into a temporary file beside `to`
/// as it arrives, which is fsynced, read back and checked whole (every length, the count,
/// the checksum), then renamed over `to`, and the directory fsynced. `to` is therefore the
/// whole backup or what it was before; the temporary file is removed on any failure.
/// The file is written in steps whose writeback is started and waited for as it goes
/// ([`crate::store::backup::SteadyFile`]), at most `bytes_per_s` (0: as fast as it comes),
/// so that a store on the same disk is not stuck behind the backup's writeback.
/// Returns (records, bytes).
pub async fn backup_to_file(
    url: &str,
    token: &str,
    to: &std::path::Path,
    bytes_per_s: u64,
) -> Result<(u64, u64), String> {
    use futures_util::StreamExt;
    let name = to
        .file_name()
        .ok_or_else(|| format!("{} names no file", to.display()))?
        .to_string_lossy()
        .into_owned();
    let dir = match to.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    let partial = dir.join(format!(".{name}.partial-{}", std::process::id()));
    // The timeout covers the answer's head only (awc sets none on a streamed body): the
    // engine answers as soon as the backup's point is fixed.
    let client = awc::Client::builder()
        .timeout(std::time::Duration::from_secs(60))
        .finish();
    let mut res = client
        .post(url)
        .insert_header(("Authorization", format!("Bearer {token}")))
        .send()
        .await
        .map_err(|e| format!("{url}: {e}"))?;
    if !res.status().is_success() {
        let body = res.body().limit(64 << 10).await.unwrap_or_default();
        let why = serde_json::from_slice::<ErrorBody>(&body)
            .map(|b| format!("{} ({})", b.error.message, b.error.code))
            .unwrap_or_else(|_| String::from_utf8_lossy(&body).into_owned());
        return Err(format!("{url} answered {}: {why}", res.status()));
    }
    let result = async {
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&partial)
            .map_err(|e| format!("cannot create {}: {e}", partial.display()))?;
        let mut out = crate::store::backup::SteadyFile::new(file);
        let mut pace = crate::store::backup::Pace::new(bytes_per_s);
        let mut bytes = 0u64;
        while let Some(chunk) = res.next().await {
            let chunk = chunk.map_err(|e| format!("the backup was cut off after {bytes} bytes: {e}"))?;
            bytes += chunk.len() as u64;
            out.write_all(&chunk)
                .map_err(|e| format!("cannot write {}: {e}", partial.display()))?;
            if let Some(wait) = pace.pause(bytes) {
                actix_web::rt::time::sleep(wait).await;
            }
        }
        let file = out
            .finish()
            .map_err(|e| format!("cannot write or fsync {}: {e}", partial.display()))?;
        drop(file);
        let check = std::fs::File::open(&partial)
            .map(|f| std::io::BufReader::with_capacity(1 << 20, f))
            .map_err(|e| format!("cannot read {} back: {e}", partial.display()))?;
        let records = crate::store::backup::verify(check, crate::store::sled::STORE_FORMAT)
            .map_err(|e| format!("the backup received is not whole: {e}"))?;
        if let Ok(file) = std::fs::File::open(&partial) {
            crate::store::backup::drop_cached(&file);
        }
        std::fs::rename(&partial, to).map_err(|e| format!("cannot rename into {}: {e}", to.display()))?;
        crate::store::sled::sync_path(&dir).map_err(|e| format!("cannot fsync {}: {e}", dir.display()))?;
        Ok((records, bytes))
    }
    .await;
    if result.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    result
}
