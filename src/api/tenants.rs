//! The operator's tenant API (../shared/API.md "Tenants"): create, list, read, rename,
//! limit and give its own wrap-up reasons and idle codes, reissue a tenant's admin token,
//! delete an empty tenant. Only the operator token
//! (`api.operator_token`) reaches it; with none configured the API is off (404).
//!
//! The rules are the core's (`crate::core::tenant`); [`crate::tenants::Tenants`] makes
//! them durable and runs each tenant's engine.

use actix_web::dev::Payload;
use actix_web::http::StatusCode;
use actix_web::{web, FromRequest, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::future::{ready, Ready};
use subtle::ConstantTimeEq;
use utoipa::ToSchema;

use super::auth::{authenticate, bearer, credential_of, now_ms};
use super::dto::{present, CodeDto};
use super::error::{ApiError, ErrorBody};
use super::AppState;
use crate::core::tenant::{Tenant, TenantCodes, TenantLimits, TenantPatch, DEFAULT_TENANT};
use crate::core::Code;
use crate::engine::Engine;

type Res = Result<HttpResponse, ApiError>;

/// The caller holds the operator token.
pub struct Operator;

impl FromRequest for Operator {
    type Error = ApiError;
    type Future = Ready<Result<Operator, ApiError>>;

    /// 404 while the tenant API is off, 401 for no or a wrong token (429 over the
    /// failed-authentication limit, as everywhere), 403 for a token of a tenant.
    fn from_request(req: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        let Some(state) = req.app_data::<web::Data<AppState>>() else {
            return ready(Err(ApiError::unauthorized()));
        };
        ready(operator(req, state))
    }
}

/// Whether the request carries the operator token (a tenant API that is off has none).
pub(crate) fn is_operator(req: &HttpRequest, state: &AppState) -> bool {
    let token = bearer(req).unwrap_or_default();
    !state.operator_token.is_empty()
        && !token.is_empty()
        && bool::from(token.as_bytes().ct_eq(state.operator_token.as_bytes()))
}

fn operator(req: &HttpRequest, state: &AppState) -> Result<Operator, ApiError> {
    if state.operator_token.is_empty() {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "the tenant API is off: it needs api.operator_token",
        ));
    }
    if is_operator(req, state) {
        return Ok(Operator);
    }
    // Any other token: a tenant's (403) or nobody's (401, counted as a failure).
    authenticate(req, state, Some(bearer(req).unwrap_or_default()))?;
    Err(ApiError::forbidden("tenants are managed with the operator token"))
}

/// A tenant's limits; a limit left out is none.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LimitsDto {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_agents: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_open_conversations: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_queues: Option<u32>,
}

impl From<TenantLimits> for LimitsDto {
    fn from(l: TenantLimits) -> Self {
        LimitsDto {
            max_agents: l.max_agents,
            max_open_conversations: l.max_open_conversations,
            max_queues: l.max_queues,
        }
    }
}

impl From<LimitsDto> for TenantLimits {
    fn from(l: LimitsDto) -> Self {
        TenantLimits {
            max_agents: l.max_agents,
            max_open_conversations: l.max_open_conversations,
            max_queues: l.max_queues,
        }
    }
}

/// What a tenant holds now.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TenantCounts {
    pub agents: usize,
    pub queues: usize,
    pub open_conversations: usize,
}

/// A tenant as the operator sees it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TenantDto {
    pub id: String,
    pub name: String,
    pub limits: LimitsDto,
    /// When it was created; absent for `default`, which always existed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_at: Option<DateTime<Utc>>,
    /// Absent when the tenant's engine did not answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub counts: Option<TenantCounts>,
    /// The wrap-up reasons in force: the tenant's own, or the config's
    /// (`wrapup.reasons`) when it has none (always, for `default`).
    pub wrapup_reasons: Vec<CodeDto>,
    /// The default wrap-up reason in force (what an automatic wrap-up records).
    pub default_wrapup_reason: String,
    /// The idle codes in force: the tenant's own, or the config's (`idle_codes`).
    pub idle_codes: Vec<CodeDto>,
    /// The tenant's admin token: in the answer to a create or a reissue only, never again.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admin_token: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTenant {
    /// 1 to 32 characters from `[a-z0-9-]`, not starting with `-`.
    pub id: String,
    pub name: String,
    /// The tenant's own wrap-up reasons: 1 to 50, each `code` an id (1 to 64 characters
    /// from `[A-Za-z0-9_.-]`) unique in the list, each `label` 1 to 200 characters.
    /// Absent or null: the config's.
    #[serde(default)]
    pub wrapup_reasons: Option<Vec<CodeDto>>,
    /// One of the tenant's wrap-up reasons. Absent or null: the config's default if it is
    /// one of them, else the first.
    #[serde(default)]
    pub default_wrapup_reason: Option<String>,
    /// The tenant's own idle codes, as `wrapup_reasons`. Absent or null: the config's.
    #[serde(default)]
    pub idle_codes: Option<Vec<CodeDto>>,
}

/// A change of a tenant: a field left out stays as it is.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchTenant {
    #[serde(default)]
    pub name: Option<String>,
    /// Replaces the tenant's limits as a whole.
    #[serde(default)]
    pub limits: Option<LimitsDto>,
    /// Replaces the tenant's wrap-up reasons as a whole (rules as at create); null: the
    /// config's again. In force at once: a wrap-up owed already takes one of these.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Vec<CodeDto>>, nullable)]
    pub wrapup_reasons: Option<Option<Vec<CodeDto>>>,
    /// One of the tenant's wrap-up reasons as the change leaves them; null: the config's
    /// default if it is one of them, else the first. A default kept from before must be
    /// one of new `wrapup_reasons` (else 400: set it too, or null).
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, nullable)]
    pub default_wrapup_reason: Option<Option<String>>,
    /// Replaces the tenant's idle codes as a whole; null: the config's again. An agent
    /// idle with a code no longer listed stays idle.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Vec<CodeDto>>, nullable)]
    pub idle_codes: Option<Option<Vec<CodeDto>>>,
}

pub(crate) fn codes(list: Vec<CodeDto>) -> Vec<Code> {
    list.into_iter().map(Into::into).collect()
}

impl CreateTenant {
    /// The tenant's own codes, as the core's registry takes them.
    pub(crate) fn own_codes(&mut self) -> TenantCodes {
        TenantCodes {
            wrapup_reasons: self.wrapup_reasons.take().map(codes),
            default_wrapup_reason: self.default_wrapup_reason.take(),
            idle_codes: self.idle_codes.take().map(codes),
        }
    }
}

impl From<PatchTenant> for TenantPatch {
    fn from(b: PatchTenant) -> TenantPatch {
        TenantPatch {
            name: b.name,
            limits: b.limits.map(Into::into),
            wrapup_reasons: b.wrapup_reasons.map(|l| l.map(codes)),
            default_wrapup_reason: b.default_wrapup_reason,
            idle_codes: b.idle_codes.map(|l| l.map(codes)),
        }
    }
}

async fn counts(engine: &Engine) -> Option<TenantCounts> {
    let agents = engine.agents().await.ok()?.len();
    let queues = engine.queues().await.ok()?.len();
    let open_conversations = engine.stats().await.ok()?.conversations_held;
    Some(TenantCounts {
        agents,
        queues,
        open_conversations,
    })
}

async fn dto(state: &AppState, t: &Tenant, admin_token: Option<String>) -> TenantDto {
    let counts = match state.tenants.engine(&t.id) {
        Some(e) => counts(&e).await,
        None => None,
    };
    tenant_dto(t, &state.tenants.rules(t), counts, admin_token)
}

/// Tenant `t` as the operator sees it, under `rules` (its codes in force).
pub(crate) fn tenant_dto(
    t: &Tenant,
    rules: &crate::core::Rules,
    counts: Option<TenantCounts>,
    admin_token: Option<String>,
) -> TenantDto {
    TenantDto {
        id: t.id.clone(),
        name: t.name.clone(),
        limits: t.limits.into(),
        created_at: Some(super::dto::time(t.created_ms)),
        counts,
        admin_token,
        wrapup_reasons: code_dtos(&rules.wrapup_reasons),
        default_wrapup_reason: rules.default_wrapup_reason.clone(),
        idle_codes: code_dtos(&rules.idle_codes),
    }
}

async fn default_dto(state: &AppState) -> TenantDto {
    let engine = state.tenants.default_engine();
    default_tenant_dto(&engine.rules(), counts(engine).await)
}

/// Tenant `default` as the operator sees it, under `rules` (the config's).
pub(crate) fn default_tenant_dto(rules: &crate::core::Rules, counts: Option<TenantCounts>) -> TenantDto {
    TenantDto {
        id: DEFAULT_TENANT.into(),
        name: "Default".into(),
        limits: LimitsDto::default(),
        created_at: None,
        counts,
        admin_token: None,
        wrapup_reasons: code_dtos(&rules.wrapup_reasons),
        default_wrapup_reason: rules.default_wrapup_reason.clone(),
        idle_codes: code_dtos(&rules.idle_codes),
    }
}

fn code_dtos(list: &[Code]) -> Vec<CodeDto> {
    list.iter().map(CodeDto::from).collect()
}

/// Creates a tenant: its own store and engine, empty, with the config's wrap-up reasons
/// and idle codes or its own; the answer carries its admin token, shown this once.
#[utoipa::path(post, path = "/api/v1/tenants", tag = "tenants", request_body = CreateTenant,
    responses(
        (status = 201, description = "The tenant, with its admin token", body = TenantDto),
        (status = 400, description = "Bad input (`invalid_json`, `invalid_input`: id, name, wrap-up reasons or idle codes)", body = ErrorBody),
        (status = 401, description = "No or wrong token", body = ErrorBody),
        (status = 403, description = "Not the operator token", body = ErrorBody),
        (status = 404, description = "The tenant API is off", body = ErrorBody),
        (status = 409, description = "Exists already (`already_exists`), or `server.max_tenants` reached (`tenant_limit`)", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 503, description = "The tenant's store cannot be written", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn create(state: web::Data<AppState>, _op: Operator, body: web::Json<CreateTenant>) -> Res {
    let mut b = body.into_inner();
    let own = b.own_codes();
    let token = super::auth::new_token_in(&b.id);
    let t = state
        .tenants
        .create(&b.id, &b.name, own, credential_of(&token), now_ms())
        .await?;
    if let Some(engine) = state.tenants.engine(&t.id) {
        super::spawn_recovery(engine);
    }
    Ok(HttpResponse::Created().json(dto(&state, &t, Some(token)).await))
}

/// Every tenant, `default` first, with what each holds and its wrap-up reasons and idle
/// codes in force.
#[utoipa::path(get, path = "/api/v1/tenants", tag = "tenants",
    responses(
        (status = 200, description = "The tenants", body = [TenantDto]),
        (status = 401, description = "No or wrong token", body = ErrorBody),
        (status = 403, description = "Not the operator token", body = ErrorBody),
        (status = 404, description = "The tenant API is off", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn list(state: web::Data<AppState>, _op: Operator) -> Res {
    let mut out = vec![default_dto(&state).await];
    for t in state.tenants.list() {
        out.push(dto(&state, &t, None).await);
    }
    Ok(HttpResponse::Ok().json(out))
}

/// One tenant.
#[utoipa::path(get, path = "/api/v1/tenants/{id}", tag = "tenants",
    params(("id" = String, Path, description = "Tenant id")),
    responses(
        (status = 200, description = "The tenant", body = TenantDto),
        (status = 401, description = "No or wrong token", body = ErrorBody),
        (status = 403, description = "Not the operator token", body = ErrorBody),
        (status = 404, description = "Unknown tenant (`unknown_tenant`), or the tenant API is off", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn get(state: web::Data<AppState>, _op: Operator, id: web::Path<String>) -> Res {
    if id.as_str() == DEFAULT_TENANT {
        return Ok(HttpResponse::Ok().json(default_dto(&state).await));
    }
    let t = state.tenants.get(&id).map_err(crate::engine::EngineError::from)?;
    Ok(HttpResponse::Ok().json(dto(&state, &t, None).await))
}

/// Renames a tenant, sets its limits, or sets its wrap-up reasons and idle codes (in force
/// in its running engine at once). `default` is configured by the config file (409).
#[utoipa::path(patch, path = "/api/v1/tenants/{id}", tag = "tenants", request_body = PatchTenant,
    params(("id" = String, Path, description = "Tenant id")),
    responses(
        (status = 200, description = "The tenant", body = TenantDto),
        (status = 400, description = "Bad input (`invalid_json`, `invalid_input`: name, wrap-up reasons or idle codes); nothing changed", body = ErrorBody),
        (status = 401, description = "No or wrong token", body = ErrorBody),
        (status = 403, description = "Not the operator token", body = ErrorBody),
        (status = 404, description = "Unknown tenant (`unknown_tenant`), or the tenant API is off", body = ErrorBody),
        (status = 409, description = "Tenant `default` (`invalid_state`)", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 503, description = "The registry cannot be written", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn patch(
    state: web::Data<AppState>,
    _op: Operator,
    id: web::Path<String>,
    body: web::Json<PatchTenant>,
) -> Res {
    not_default(&id)?;
    let t = state.tenants.patch(&id, body.into_inner().into()).await?;
    Ok(HttpResponse::Ok().json(dto(&state, &t, None).await))
}

/// A new admin token for a tenant; the old one stops working at once. `default`'s admin
/// token is the config's `api.admin_token` (409).
#[utoipa::path(post, path = "/api/v1/tenants/{id}/admin-token", tag = "tenants",
    params(("id" = String, Path, description = "Tenant id")),
    responses(
        (status = 200, description = "The tenant, with its new admin token", body = TenantDto),
        (status = 401, description = "No or wrong token", body = ErrorBody),
        (status = 403, description = "Not the operator token", body = ErrorBody),
        (status = 404, description = "Unknown tenant (`unknown_tenant`), or the tenant API is off", body = ErrorBody),
        (status = 409, description = "Tenant `default` (`invalid_state`)", body = ErrorBody),
        (status = 503, description = "The registry cannot be written", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn reissue(state: web::Data<AppState>, _op: Operator, id: web::Path<String>) -> Res {
    not_default(&id)?;
    let token = super::auth::new_token_in(&id);
    let t = state.tenants.reissue(&id, credential_of(&token)).await?;
    Ok(HttpResponse::Ok().json(dto(&state, &t, Some(token)).await))
}

/// Deletes a tenant with everything it holds, once no conversation of it is open.
#[utoipa::path(delete, path = "/api/v1/tenants/{id}", tag = "tenants",
    params(("id" = String, Path, description = "Tenant id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "No or wrong token", body = ErrorBody),
        (status = 403, description = "Not the operator token", body = ErrorBody),
        (status = 404, description = "Unknown tenant (`unknown_tenant`), or the tenant API is off", body = ErrorBody),
        (status = 409, description = "Open conversations (`tenant_not_empty`), or tenant `default` (`invalid_state`)", body = ErrorBody),
        (status = 503, description = "The registry cannot be written", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn delete(state: web::Data<AppState>, _op: Operator, id: web::Path<String>) -> Res {
    state.tenants.delete(&id).await?;
    state.forget_tenant(&id);
    Ok(HttpResponse::NoContent().finish())
}

/// A backup of one tenant's store (`default` included), streamed as
/// `POST /api/v1/admin/backup` is; restore it with `switchboard restore` into the
/// tenant of a stopped store with `--tenant` (docs/TENANTS.md "Backup and restore").
#[utoipa::path(post, path = "/api/v1/tenants/{id}/backup", tag = "tenants",
    params(("id" = String, Path, description = "Tenant id")),
    responses(
        (status = 200, description = "The backup file", body = Vec<u8>, content_type = "application/octet-stream"),
        (status = 401, description = "No or wrong token", body = ErrorBody),
        (status = 403, description = "Not the operator token", body = ErrorBody),
        (status = 404, description = "Unknown tenant (`unknown_tenant`), or the tenant API is off", body = ErrorBody),
        (status = 409, description = "Another backup of this tenant is being taken", body = ErrorBody),
        (status = 503, description = "The store cannot be read", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn backup(state: web::Data<AppState>, _op: Operator, id: web::Path<String>) -> Res {
    let engine = state
        .tenants
        .engine(&id)
        .ok_or_else(|| crate::engine::EngineError::from(crate::core::CoreError::UnknownTenant(id.to_string())))?;
    super::ops::stream_backup(&engine, &id, false).await
}

/// Sets the per-tenant figures of `/metrics` (one label per tenant, so at most
/// `server.max_tenants`; a deleted tenant's label goes with the next scrape).
pub async fn scrape(state: &AppState) {
    let mut all = vec![(DEFAULT_TENANT.to_string(), state.tenants.default_engine().clone())];
    all.extend(
        state
            .tenants
            .list()
            .into_iter()
            .filter_map(|t| state.tenants.engine(&t.id).map(|e| (t.id, e))),
    );
    scrape_engines(all).await;
}

/// Sets the per-tenant figures of `/metrics` from `all` (tenant id, engine).
pub async fn scrape_engines(all: Vec<(String, Engine)>) {
    use crate::metrics::{TENANTS, TENANT_OPEN, TENANT_WAITING};
    TENANTS.set(i64::try_from(all.len()).unwrap_or(i64::MAX));
    TENANT_OPEN.reset();
    TENANT_WAITING.reset();
    for (id, engine) in all {
        if let Ok(s) = engine.stats().await {
            TENANT_OPEN
                .with_label_values(&[&id])
                .set(i64::try_from(s.conversations_held).unwrap_or(i64::MAX));
        }
        if let Ok(queues) = engine.queues().await {
            let waiting: usize = queues.iter().map(|q| q.waiting).sum();
            TENANT_WAITING
                .with_label_values(&[&id])
                .set(i64::try_from(waiting).unwrap_or(i64::MAX));
        }
    }
}

pub(crate) fn not_default(id: &str) -> Result<(), ApiError> {
    if id == DEFAULT_TENANT {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "invalid_state",
            "tenant default is configured by the config file (api.admin_token)",
        ));
    }
    Ok(())
}

/// The tenant API's routes.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/api/v1/tenants")
            .route(web::post().to(create))
            .route(web::get().to(list)),
    )
    .service(
        web::resource("/api/v1/tenants/{id}")
            .route(web::get().to(get))
            .route(web::patch().to(patch))
            .route(web::delete().to(delete)),
    )
    .service(web::resource("/api/v1/tenants/{id}/admin-token").route(web::post().to(reissue)))
    .service(web::resource("/api/v1/tenants/{id}/backup").route(web::post().to(backup)));
}
