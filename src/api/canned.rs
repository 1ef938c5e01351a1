//! Canned responses over HTTP (issue 26 item 4; docs/API-NOTES.md "Canned responses"):
//! the admin writes them, every reader lists them, and an agent gets the ones that apply
//! to it, filled for a conversation it is in. The rules (codes, placeholders, scopes,
//! which apply) are the core's (`core/canned.rs`).

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::auth::{Caller, Tenanted};
use super::error::{ApiError, ErrorBody};
use super::rest::id;
use crate::core::canned::{CannedResponse, CannedView};
use crate::core::{Command, Reply};
use crate::engine::EngineError;

type Res = Result<HttpResponse, ApiError>;

/// A canned response.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CannedResponseDto {
    pub id: String,
    /// What an agent types after `/` to find it: 1 to 32 of `[a-z0-9_-]`.
    pub code: String,
    /// The text with its placeholders (`{{customer.first_name}}`, `{{customer.name}}`,
    /// `{{agent.name}}`, `{{agent.first_name}}`, `{{queue.name}}`).
    pub text: String,
    /// The queue whose agents it is for; null: every agent.
    pub queue: Option<String>,
    /// The text filled for the conversation named by `?conversation=` (left out without).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filled: Option<String>,
}

impl From<&CannedView> for CannedResponseDto {
    fn from(v: &CannedView) -> Self {
        let mut dto = CannedResponseDto::from(&v.response);
        dto.filled = v.filled.clone();
        dto
    }
}

impl From<&CannedResponse> for CannedResponseDto {
    fn from(c: &CannedResponse) -> Self {
        CannedResponseDto {
            id: c.id.clone(),
            code: c.code.clone(),
            text: c.text.clone(),
            queue: c.queue.clone(),
            filled: None,
        }
    }
}

/// `POST /api/v1/canned-responses`.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateCannedResponse {
    #[schema(pattern = r"^[A-Za-z0-9_.-]{1,64}$")]
    pub id: String,
    #[schema(pattern = r"^[a-z0-9_-]{1,32}$")]
    pub code: String,
    #[schema(max_length = 5000)]
    pub text: String,
    /// A queue's id: for that queue's agents only. Left out or null: every agent.
    #[serde(default)]
    pub queue: Option<String>,
}

/// `PATCH /api/v1/canned-responses/{id}`: each field given replaces one; `queue: null`
/// makes it tenant-wide.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchCannedResponse {
    #[serde(default)]
    pub code: Option<String>,
    #[serde(default)]
    pub text: Option<String>,
    #[serde(default, deserialize_with = "super::dto::present")]
    #[schema(value_type = Option<String>, nullable)]
    pub queue: Option<Option<String>>,
}

/// Query of `GET /api/v1/canned-responses`.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct CannedQuery {
    /// Only this queue's responses; empty: only the tenant-wide ones.
    #[param(pattern = r"^[A-Za-z0-9_.-]{0,64}$")]
    pub queue: Option<String>,
    /// An agent's conversation: each response's `filled` is its text for it.
    #[param(pattern = r"^[A-Za-z0-9_.-]{1,64}$")]
    pub conversation: Option<String>,
}

/// The canned responses' routes.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        super::resource("/api/v1/canned-responses")
            .route(web::get().to(list))
            .route(web::post().to(create)),
    )
    .service(
        super::resource("/api/v1/canned-responses/{id}")
            .route(web::get().to(get))
            .route(web::patch().to(patch))
            .route(web::delete().to(delete)),
    );
}

fn answer(reply: Reply, status: actix_web::http::StatusCode) -> Res {
    match reply {
        Reply::CannedResponse(c) => Ok(HttpResponse::build(status).json(CannedResponseDto::from(&*c))),
        r => Err(EngineError::UnexpectedReply {
            expected: "canned_response",
            got: r.name(),
        }
        .into()),
    }
}

/// Creates a canned response (admin).
#[utoipa::path(post, path = "/api/v1/canned-responses", tag = "canned responses", request_body = CreateCannedResponse,
    responses(
        (status = 201, description = "The canned response", body = CannedResponseDto),
        (status = 400, description = "Bad input: id, code, text, or an unknown placeholder", body = ErrorBody),
        (status = 401, description = "No or wrong token", body = ErrorBody),
        (status = 403, description = "Not the admin", body = ErrorBody),
        (status = 404, description = "Unknown queue", body = ErrorBody),
        (status = 409, description = "The id, or the code in its scope, is taken (`already_exists`); or the tenant's bound (`tenant_limit`)", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn create(state: Tenanted, caller: Caller, body: web::Json<CreateCannedResponse>) -> Res {
    caller.admin()?;
    let b = body.into_inner();
    let response = CannedResponse {
        id: b.id,
        code: b.code,
        text: b.text,
        queue: b.queue,
    };
    let reply = state.engine.exec(Command::CreateCannedResponse(response)).await?;
    answer(reply, actix_web::http::StatusCode::CREATED)
}

/// Lists canned responses: every one for the admin and supervisors; for an agent, the
/// tenant's and its queues' (a queue's replacing the tenant's of the same code), each
/// filled for `conversation` when given.
#[utoipa::path(get, path = "/api/v1/canned-responses", tag = "canned responses", params(CannedQuery),
    responses(
        (status = 200, description = "The responses, by code (agents) or id", body = [CannedResponseDto]),
        (status = 400, description = "Bad query (or `conversation` without an agent's token)", body = ErrorBody),
        (status = 401, description = "No or wrong token", body = ErrorBody),
        (status = 403, description = "A conversation the agent is not in", body = ErrorBody),
        (status = 404, description = "Unknown conversation", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn list(state: Tenanted, caller: Caller, query: web::Query<CannedQuery>) -> Res {
    let q = query.into_inner();
    if let Some(c) = &q.conversation {
        id(c)?;
    }
    if let Some(queue) = q.queue.as_deref().filter(|q| !q.is_empty()) {
        id(queue)?;
    }
    let views = state.engine.canned_responses(caller, q.conversation, q.queue).await?;
    let v: Vec<CannedResponseDto> = views.iter().map(CannedResponseDto::from).collect();
    Ok(HttpResponse::Ok().json(v))
}

/// One canned response (admin, supervisors).
#[utoipa::path(get, path = "/api/v1/canned-responses/{id}", tag = "canned responses",
    params(("id" = String, Path, description = "Canned response id")),
    responses(
        (status = 200, description = "The canned response", body = CannedResponseDto),
        (status = 400, description = "Not an id", body = ErrorBody),
        (status = 401, description = "No or wrong token", body = ErrorBody),
        (status = 403, description = "An agent", body = ErrorBody),
        (status = 404, description = "Unknown canned response", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn get(state: Tenanted, caller: Caller, path: web::Path<String>) -> Res {
    if let Caller::Agent(_) = caller {
        return Err(ApiError::forbidden("agents list the responses that apply to them"));
    }
    let wanted = id(&path)?.to_string();
    let all = state.engine.canned_responses(caller, None, None).await?;
    match all.iter().find(|v| v.response.id == wanted) {
        Some(v) => Ok(HttpResponse::Ok().json(CannedResponseDto::from(v))),
        None => Err(EngineError::from(crate::core::CoreError::UnknownCannedResponse(wanted)).into()),
    }
}

/// Changes a canned response (admin): the fields given replace its own.
#[utoipa::path(patch, path = "/api/v1/canned-responses/{id}", tag = "canned responses",
    params(("id" = String, Path, description = "Canned response id")), request_body = PatchCannedResponse,
    responses(
        (status = 200, description = "The canned response", body = CannedResponseDto),
        (status = 400, description = "Bad input", body = ErrorBody),
        (status = 401, description = "No or wrong token", body = ErrorBody),
        (status = 403, description = "Not the admin", body = ErrorBody),
        (status = 404, description = "Unknown canned response or queue", body = ErrorBody),
        (status = 409, description = "The code is taken in its scope", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn patch(
    state: Tenanted,
    caller: Caller,
    path: web::Path<String>,
    body: web::Json<PatchCannedResponse>,
) -> Res {
    caller.admin()?;
    let b = body.into_inner();
    let reply = state
        .engine
        .exec(Command::UpdateCannedResponse {
            id: id(&path)?.to_string(),
            code: b.code,
            text: b.text,
            queue: b.queue,
        })
        .await?;
    answer(reply, actix_web::http::StatusCode::OK)
}

/// Deletes a canned response (admin).
#[utoipa::path(delete, path = "/api/v1/canned-responses/{id}", tag = "canned responses",
    params(("id" = String, Path, description = "Canned response id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "Not an id", body = ErrorBody),
        (status = 401, description = "No or wrong token", body = ErrorBody),
        (status = 403, description = "Not the admin", body = ErrorBody),
        (status = 404, description = "Unknown canned response", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn delete(state: Tenanted, caller: Caller, path: web::Path<String>) -> Res {
    caller.admin()?;
    let wanted = id(&path)?.to_string();
    state.engine.exec(Command::DeleteCannedResponse { id: wanted }).await?;
    Ok(HttpResponse::NoContent().finish())
}
