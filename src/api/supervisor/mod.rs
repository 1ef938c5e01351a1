//! Supervisors over HTTP (../shared/API.md "Supervisor"): accounts (`/api/v1/supervisors`),
//! presence control (`PUT /api/v1/agents/{id}/state`), the audit trail
//! (`GET /api/v1/audit`) and the live socket ([`socket`], fed by the [`hub`]).
//!
//! # Guarantees
//! - A supervisor token is shown once, on create or reissue; only its SHA-256 is stored,
//!   as for agents. Passwords are Argon2id hashes ([`super::signin`]).
//! - A supervisor reads what the admin reads and sets agents' presence; every other
//!   action is 403 (checked by [`Caller`]'s methods and, for acting as an agent or a
//!   customer, by the core).

pub mod hub;
pub mod socket;

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::auth::{self, Caller, Tenanted};
use super::dto::*;
use super::error::{ApiError, ErrorBody};
use crate::core::{self, valid_id, AccountRef, AuditEntry, Changer, CoreError, AUDIT_READ_MAX};
use crate::engine::{Command, EngineError, Reply};

type Res = Result<HttpResponse, ApiError>;

// ----- wire types -----

/// A supervisor account.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SupervisorDto {
    pub id: String,
    pub name: String,
}

impl From<&core::Supervisor> for SupervisorDto {
    fn from(s: &core::Supervisor) -> Self {
        SupervisorDto {
            id: s.id.clone(),
            name: s.name.clone(),
        }
    }
}

/// A new supervisor with its token, shown only this once.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SupervisorCreatedDto {
    #[serde(flatten)]
    pub supervisor: SupervisorDto,
    /// The supervisor's bearer token. Only its hash is stored; keep it safe.
    pub token: String,
}

/// `POST /api/v1/supervisors`.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSupervisor {
    pub id: String,
    pub name: String,
    /// Optional: a password for the supervisor page (at least 10 characters).
    #[serde(default)]
    #[schema(value_type = Option<String>, format = Password)]
    pub password: Option<Password>,
}

/// One presence change made by a supervisor or the admin.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AuditDto {
    /// Increasing number of the entry.
    pub seq: u64,
    pub at: chrono::DateTime<chrono::Utc>,
    /// `supervisor` or `admin`.
    pub by_kind: String,
    /// The supervisor's id; null for the admin.
    pub by: Option<String>,
    pub agent: String,
    pub from: AgentState,
    pub to: AgentState,
    pub idle_code: Option<String>,
}

impl From<&AuditEntry> for AuditDto {
    fn from(e: &AuditEntry) -> Self {
        AuditDto {
            seq: e.seq,
            at: time(e.at),
            by_kind: e.by.reason().into(),
            by: match &e.by {
                Changer::Admin => None,
                Changer::Supervisor(s) => Some(s.clone()),
            },
            agent: e.agent.clone(),
            from: e.from.into(),
            to: e.to.into(),
            idle_code: e.idle_code.clone(),
        }
    }
}

/// Query of `GET /api/v1/audit`.
#[derive(Debug, Clone, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AuditFilter {
    /// Only changes of this agent.
    pub agent: Option<String>,
    /// At most this many entries, newest first (1 to 1000; default 100).
    pub limit: Option<usize>,
}

/// An agent as a supervisor sees it: the REST agent, with the ids of the conversations it
/// holds.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SupervisedAgentDto {
    #[serde(flatten)]
    pub agent: AgentDto,
    /// Conversations the agent is in (owner or guest).
    pub conversations: Vec<String>,
    /// Conversations offered to the agent.
    pub offers: Vec<String>,
    /// Conversations the agent owes a wrap-up for.
    pub wrapups: Vec<String>,
}

impl From<&core::Agent> for SupervisedAgentDto {
    fn from(a: &core::Agent) -> Self {
        SupervisedAgentDto {
            agent: a.into(),
            conversations: a.active.iter().cloned().collect(),
            offers: a.offers.iter().cloned().collect(),
            wrapups: a.wrapups.keys().cloned().collect(),
        }
    }
}

// ----- handlers -----

fn path_id(raw: &str) -> Result<&str, ApiError> {
    if valid_id(raw) {
        Ok(raw)
    } else {
        Err(ApiError::bad_request(
            "invalid_input",
            "ids are 1 to 64 characters from [A-Za-z0-9_.-]",
        ))
    }
}

/// Creates a supervisor; answers its token, shown only this once.
#[utoipa::path(post, path = "/api/v1/supervisors", tag = "supervisors", request_body = CreateSupervisor,
    responses(
        (status = 201, description = "The supervisor with its token", body = SupervisorCreatedDto),
        (status = 400, description = "Bad input", body = ErrorBody),
        (status = 401, description = "No or wrong token", body = ErrorBody),
        (status = 403, description = "Not the admin", body = ErrorBody),
        (status = 409, description = "A supervisor with this id exists (`already_exists`)", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn create_supervisor(state: Tenanted, caller: Caller, body: web::Json<CreateSupervisor>) -> Res {
    caller.admin()?;
    let b = body.into_inner();
    let password_hash = super::signin::hash_optional(&state, b.password).await?;
    let token = state.new_token();
    let reply = state
        .engine
        .exec(Command::CreateSupervisor {
            id: b.id,
            name: b.name,
            credential: Some(auth::credential_of(&token)),
            password_hash,
        })
        .await?;
    match reply {
        Reply::Supervisor(s) => Ok(HttpResponse::Created().json(SupervisorCreatedDto {
            supervisor: SupervisorDto::from(&*s),
            token,
        })),
        r => Err(super::rest::unexpected("supervisor", &r)),
    }
}

/// Lists supervisors.
#[utoipa::path(get, path = "/api/v1/supervisors", tag = "supervisors",
    responses(
        (status = 200, description = "Every supervisor, by id", body = [SupervisorDto]),
        (status = 401, description = "No or wrong token", body = ErrorBody),
        (status = 403, description = "An agent token", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn list_supervisors(state: Tenanted, caller: Caller) -> Res {
    caller.reader()?;
    let v: Vec<SupervisorDto> = state
        .engine
        .supervisors()
        .await?
        .iter()
        .map(SupervisorDto::from)
        .collect();
    Ok(HttpResponse::Ok().json(v))
}

/// The calling supervisor: how the supervisor page checks a token and learns whose it is.
#[utoipa::path(get, path = "/api/v1/supervisors/me", tag = "supervisors",
    responses(
        (status = 200, description = "The calling supervisor", body = SupervisorDto),
        (status = 401, description = "No or wrong token", body = ErrorBody),
        (status = 403, description = "Not a supervisor token", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn get_me(state: Tenanted, caller: Caller) -> Res {
    let id = caller.supervisor()?;
    match state.engine.supervisor(id).await? {
        Some(s) => Ok(HttpResponse::Ok().json(SupervisorDto::from(&s))),
        None => Err(EngineError::from(CoreError::UnknownSupervisor(id.into())).into()),
    }
}

/// Issues a new token for a supervisor; the old one stops working.
#[utoipa::path(post, path = "/api/v1/supervisors/{id}/token", tag = "supervisors",
    params(("id" = String, Path, description = "Supervisor id")),
    responses(
        (status = 200, description = "The new token", body = TokenDto),
        (status = 400, description = "Not an id", body = ErrorBody),
        (status = 401, description = "No or wrong token", body = ErrorBody),
        (status = 403, description = "Not the admin", body = ErrorBody),
        (status = 404, description = "Unknown supervisor", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn reissue_token(state: Tenanted, caller: Caller, path: web::Path<String>) -> Res {
    caller.admin()?;
    super::signin::reissue(&state, AccountRef::supervisor(path.into_inner())).await
}

/// Sets a supervisor's password (admin); every session of the supervisor ends.
#[utoipa::path(put, path = "/api/v1/supervisors/{id}/password", tag = "supervisors",
    params(("id" = String, Path, description = "Supervisor id")), request_body = SetPassword,
    responses(
        (status = 204, description = "Set; the supervisor's sessions have ended"),
        (status = 400, description = "Shorter than 10 characters, or malformed", body = ErrorBody),
        (status = 401, description = "No or wrong token", body = ErrorBody),
        (status = 403, description = "Not the admin", body = ErrorBody),
        (status = 404, description = "Unknown supervisor", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn set_password(
    state: Tenanted,
    caller: Caller,
    path: web::Path<String>,
    body: web::Json<SetPassword>,
) -> Res {
    caller.admin()?;
    super::signin::set_password_of(
        &state,
        AccountRef::supervisor(path.into_inner()),
        body.into_inner().password,
    )
    .await
}

/// Sets an agent's presence for it (a supervisor or the admin), with the agent's own
/// rules; the agent's desktops get `state_changed` with reason `supervisor` or `admin`.
#[utoipa::path(put, path = "/api/v1/agents/{id}/state", tag = "supervisors",
    params(("id" = String, Path, description = "Agent id")), request_body = SetState,
    responses(
        (status = 200, description = "The agent", body = AgentDto),
        (status = 400, description = "Bad input, unknown idle code, `rona`", body = ErrorBody),
        (status = 401, description = "No or wrong token", body = ErrorBody),
        (status = 403, description = "An agent token (even the agent's own)", body = ErrorBody),
        (status = 404, description = "Unknown agent", body = ErrorBody),
        (status = 409, description = "Logging out an agent that holds conversations (`agent_busy`)", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn set_agent_state(
    state: Tenanted,
    caller: Caller,
    path: web::Path<String>,
    body: web::Json<SetState>,
) -> Res {
    caller.reader()?;
    let agent = path_id(&path)?.to_string();
    let b = body.into_inner();
    let reply = state
        .engine
        .exec(Command::SetStateFor {
            by: caller,
            agent,
            state: b.state.into(),
            idle_code: b.idle_code,
        })
        .await?;
    match reply {
        Reply::Agent(a) => Ok(HttpResponse::Ok().json(AgentDto::from(&*a))),
        r => Err(super::rest::unexpected("agent", &r)),
    }
}

/// The audit trail of presence set by supervisors and the admin, newest first.
#[utoipa::path(get, path = "/api/v1/audit", tag = "supervisors", params(AuditFilter),
    responses(
        (status = 200, description = "Entries, newest first (the last 10,000 are kept)", body = [AuditDto]),
        (status = 400, description = "Bad filter", body = ErrorBody),
        (status = 401, description = "No or wrong token", body = ErrorBody),
        (status = 403, description = "An agent token", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn audit(state: Tenanted, caller: Caller, filter: web::Query<AuditFilter>) -> Res {
    caller.reader()?;
    let f = filter.into_inner();
    let limit = f.limit.unwrap_or(100);
    if limit == 0 || limit > AUDIT_READ_MAX {
        return Err(ApiError::bad_request(
            "invalid_input",
            format!("limit is 1 to {AUDIT_READ_MAX}"),
        ));
    }
    if let Some(a) = &f.agent {
        path_id(a)?;
    }
    let v: Vec<AuditDto> = state
        .engine
        .audit(f.agent.as_deref(), limit)
        .await?
        .iter()
        .map(AuditDto::from)
        .collect();
    Ok(HttpResponse::Ok().json(v))
}

/// The supervisor routes.
pub fn routes(cfg: &mut web::ServiceConfig) {
    use super::resource;
    cfg.service(
        resource("/api/v1/supervisors")
            .route(web::post().to(create_supervisor))
            .route(web::get().to(list_supervisors)),
    )
    .service(resource("/api/v1/supervisors/me").route(web::get().to(get_me)))
    .service(resource("/api/v1/supervisors/me/ws").route(web::get().to(socket::supervisor_ws)))
    .service(resource("/api/v1/supervisors/{id}/token").route(web::post().to(reissue_token)))
    .service(resource("/api/v1/supervisors/{id}/password").route(web::put().to(set_password)))
    .service(resource("/api/v1/agents/{id}/state").route(web::put().to(set_agent_state)))
    .service(resource("/api/v1/audit").route(web::get().to(audit)));
}
