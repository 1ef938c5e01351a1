//! Password sign-in for people at a page (API.md "Sign-in with a password"):
//! `POST /api/v1/login`, `POST /api/v1/logout`, `PUT /api/v1/agents/{id}/password`
//! (admin) and `PUT /api/v1/agents/me/password` (the agent itself).
//!
//! # Guarantees
//! - **Only hashes.** A password is hashed with Argon2id ([`super::password`]) and the
//!   session token is kept only as its SHA-256 (the session's credential, part of the
//!   agent's durable record: a session survives a restart until it expires or signs out).
//! - **The same answer, in the same time, for an unknown id and a wrong password:** 401
//!   `invalid_credentials`; an unknown id is verified against a dummy hash of the same cost.
//! - **Throttled per id:** after [`MAX_FAILURES`] failures for one id within
//!   [`FAILURE_WINDOW_MS`], attempts for it are 429 `too_many_attempts` with
//!   `Retry-After`, whatever the password ([`crate::core::limits::AuthFailures`] keyed by
//!   id; a success forgets the id's failures). Failed changes of one's own password count
//!   too.
//! - **Never on the engine's thread, nor on an HTTP worker's loop:** Argon2 runs on the
//!   blocking pool (`web::block`); the engine only stores the result.
//! - **Races are refused, not lost:** a session is opened only if the password hash the
//!   caller verified is still the agent's (`Command::StartSession`), and a change of one's
//!   own password only if the current one is still what was verified.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};

use super::auth::{self, Caller};
use super::dto::{ChangePassword, Login, Password, SessionDto, SetPassword};
use super::error::{ApiError, ErrorBody};
use super::password;
use super::AppState;
use crate::core::{valid_id, CoreError, Millis};
use crate::engine::{Command, EngineError, Reply};

/// Failures per id that lock it out...
pub const MAX_FAILURES: u32 = 5;
/// ...within this window (opened by the first failure).
pub const FAILURE_WINDOW_MS: Millis = 60_000;
/// Ids whose failures are tracked at once (bounds the limiter's memory).
pub const TRACKED_IDS: usize = 100_000;

type Res = Result<HttpResponse, ApiError>;

fn invalid_credentials() -> ApiError {
    ApiError::from(EngineError::from(CoreError::InvalidCredentials))
}

/// 429 `too_many_attempts` with `Retry-After` (whole seconds, at least 1).
fn too_many(wait_ms: Millis) -> ApiError {
    let e = ApiError::too_many_attempts(wait_ms);
    let secs = e.retry_after_s.unwrap_or(1);
    ApiError {
        message: format!("too many failed sign-ins for this id; try again in {secs} s"),
        ..e
    }
}

fn failures(state: &AppState) -> std::sync::MutexGuard<'_, crate::core::limits::AuthFailures<String>> {
    state.sign_in_failures.lock().unwrap_or_else(|p| p.into_inner())
}

/// `Ok` while `id` may try; how long it must wait while it is locked out.
fn throttle_check(state: &AppState, id: &str) -> Result<(), Millis> {
    failures(state).check(&id.to_string(), auth::now_ms())
}

fn throttle_failed(state: &AppState, id: &str) {
    failures(state).failed(&id.to_string(), auth::now_ms());
}

fn throttle_succeeded(state: &AppState, id: &str) {
    failures(state).forget(&id.to_string());
}

/// The agent's current password hash, if it exists and has one.
async fn password_hash_of(state: &AppState, agent: &str) -> Result<Option<String>, ApiError> {
    if !valid_id(agent) {
        return Ok(None);
    }
    Ok(state
        .engine
        .agent(agent)
        .await?
        .and_then(|d| d.agent.sign_in.as_ref().and_then(|s| s.password_hash.clone())))
}

/// Verifies `password` against `hash` (or the dummy hash when there is none) on the
/// blocking pool; true only for a real hash that matches.
async fn verify(password: Password, hash: Option<String>) -> Result<bool, ApiError> {
    web::block(move || {
        match &hash {
            Some(phc) => password::verify(&password.0, phc),
            // The same work as a real check, so an unknown id takes the same time.
            None => {
                let _ = password::verify(&password.0, password::dummy_hash());
                false
            }
        }
    })
    .await
    .map_err(|_| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "the password check did not run",
        )
    })
}

/// Checks and hashes a new password on the blocking pool (400 `invalid_input` when too
/// short or too long).
pub async fn hash_new(password: Password) -> Result<String, ApiError> {
    password::check_new(&password.0).map_err(|why| ApiError::bad_request("invalid_input", why))?;
    web::block(move || password::hash(&password.0))
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "the password hash did not run",
            )
        })?
        .map_err(|e| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", e))
}

/// Signs in with an id and a password; answers a session token.
#[utoipa::path(post, path = "/api/v1/login", tag = "sign-in", request_body = Login,
    responses(
        (status = 200, description = "A session token that acts as the agent's token until `expires_at`", body = SessionDto),
        (status = 400, description = "Malformed body", body = ErrorBody),
        (status = 401, description = "Wrong id or password (`invalid_credentials`), the same for both", body = ErrorBody),
        (status = 429, description = "Too many failures for this id within a minute (`too_many_attempts`); see `Retry-After`", body = ErrorBody),
    ))]
pub async fn login(state: web::Data<AppState>, body: web::Json<Login>) -> Res {
    let Login { id, password, kind } = body.into_inner();
    if let Err(wait) = throttle_check(&state, &id) {
        return Err(too_many(wait));
    }
    let supervisor = kind.as_deref() == Some("supervisor");
    let hash = match kind.as_deref() {
        None | Some("agent") => password_hash_of(&state, &id).await?,
        Some("supervisor") => supervisor_password_hash_of(&state, &id).await?,
        Some(other) => {
            return Err(ApiError::bad_request(
                "invalid_input",
                format!("kind is `agent` or `supervisor`, not `{other}`"),
            ))
        }
    };
    let verified = hash.clone();
    if !verify(password, hash).await? {
        throttle_failed(&state, &id);
        return Err(invalid_credentials());
    }
    let Some(verified_hash) = verified else {
        return Err(invalid_credentials());
    };
    let token = auth::new_token();
    let expires_at = auth::now_ms().saturating_add(state.session_ttl_ms);
    if supervisor {
        return start_supervisor_session(&state, id, verified_hash, token, expires_at).await;
    }
    let reply = state
        .engine
        .exec(Command::StartSession {
            agent: id.clone(),
            verified_hash,
            credential: auth::credential_of(&token),
            expires_at,
        })
        .await;
    let agent = match reply {
        Ok(Reply::Agent(a)) => a,
        Ok(_) => return Err(invalid_credentials()),
        Err(e) if e.code() == "invalid_credentials" => {
            throttle_failed(&state, &id);
            return Err(e.into());
        }
        Err(e) => return Err(e.into()),
    };
    throttle_succeeded(&state, &id);
    tracing::info!(agent = %agent.id, "signed in with a password");
    Ok(HttpResponse::Ok().json(SessionDto {
        token,
        expires_at: super::dto::time(expires_at),
        kind: "agent".into(),
        id: agent.id.clone(),
        name: agent.name.clone(),
    }))
}

/// A supervisor's current password hash, if it exists and has one.
async fn supervisor_password_hash_of(state: &AppState, id: &str) -> Result<Option<String>, ApiError> {
    if !valid_id(id) {
        return Ok(None);
    }
    Ok(state
        .engine
        .supervisor(id)
        .await?
        .and_then(|s| s.sign_in.as_ref().and_then(|x| x.password_hash.clone())))
}

/// The supervisor half of [`login`]: the same checks, a supervisor session.
async fn start_supervisor_session(
    state: &AppState,
    id: String,
    verified_hash: String,
    token: String,
    expires_at: Millis,
) -> Res {
    let reply = state
        .engine
        .exec(Command::StartSupervisorSession {
            supervisor: id.clone(),
            verified_hash,
            credential: auth::credential_of(&token),
            expires_at,
        })
        .await;
    let s = match reply {
        Ok(Reply::Supervisor(s)) => s,
        Ok(_) => return Err(invalid_credentials()),
        Err(e) if e.code() == "invalid_credentials" => {
            throttle_failed(state, &id);
            return Err(e.into());
        }
        Err(e) => return Err(e.into()),
    };
    throttle_succeeded(state, &id);
    tracing::info!(supervisor = %s.id, "supervisor signed in with a password");
    Ok(HttpResponse::Ok().json(SessionDto {
        token,
        expires_at: super::dto::time(expires_at),
        kind: "supervisor".into(),
        id: s.id.clone(),
        name: s.name.clone(),
    }))
}

/// Ends the session whose token is the bearer (an agent token is not affected: reissue it
/// to revoke it).
#[utoipa::path(post, path = "/api/v1/logout", tag = "sign-in",
    responses(
        (status = 204, description = "The session has ended"),
        (status = 401, description = "No or wrong token", body = ErrorBody),
        (status = 403, description = "The admin token", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn logout(state: web::Data<AppState>, caller: Caller, req: HttpRequest) -> Res {
    let token = auth::bearer(&req).unwrap_or_default();
    let credential = auth::credential_of(token);
    let cmd = match &caller {
        Caller::Supervisor(s) => Command::EndSupervisorSession {
            supervisor: s.clone(),
            credential,
        },
        _ => Command::EndSession {
            agent: caller.agent()?.to_string(),
            credential,
        },
    };
    state.engine.exec(cmd).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Sets an agent's password (admin); every session of the agent ends.
#[utoipa::path(put, path = "/api/v1/agents/{id}/password", tag = "sign-in",
    params(("id" = String, Path, description = "Agent id")), request_body = SetPassword,
    responses(
        (status = 204, description = "Set; the agent's sessions have ended"),
        (status = 400, description = "Shorter than 10 characters, or malformed", body = ErrorBody),
        (status = 401, description = "No or wrong token", body = ErrorBody),
        (status = 403, description = "Not the admin", body = ErrorBody),
        (status = 404, description = "Unknown agent", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn set_password(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    body: web::Json<SetPassword>,
) -> Res {
    caller.admin()?;
    let agent = path.into_inner();
    if !valid_id(&agent) {
        return Err(ApiError::bad_request(
            "invalid_input",
            "ids are 1 to 64 characters from [A-Za-z0-9_.-]",
        ));
    }
    let hash = hash_new(body.into_inner().password).await?;
    state
        .engine
        .exec(Command::SetPassword {
            agent,
            password_hash: Some(hash),
            keep_session: None,
            expected: None,
        })
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// The agent changes its own password; its other sessions end, the one making the change
/// (if it is a session) stays.
#[utoipa::path(put, path = "/api/v1/agents/me/password", tag = "sign-in", request_body = ChangePassword,
    responses(
        (status = 204, description = "Changed; the agent's other sessions have ended"),
        (status = 400, description = "The new password is shorter than 10 characters, or malformed", body = ErrorBody),
        (status = 401, description = "No or wrong token", body = ErrorBody),
        (status = 403, description = "The current password is wrong (`wrong_password`), or not an agent token", body = ErrorBody),
        (status = 429, description = "Too many failures for this agent within a minute (`too_many_attempts`)", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn change_my_password(
    state: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
    body: web::Json<ChangePassword>,
) -> Res {
    let agent = caller.agent()?.to_string();
    let ChangePassword { current, new } = body.into_inner();
    password::check_new(&new.0).map_err(|why| ApiError::bad_request("invalid_input", why))?;
    if let Err(wait) = throttle_check(&state, &agent) {
        return Err(too_many(wait));
    }
    let hash = password_hash_of(&state, &agent).await?;
    let expected = hash.clone();
    if !verify(current, hash).await? {
        throttle_failed(&state, &agent);
        return Err(EngineError::from(CoreError::WrongPassword).into());
    }
    let new_hash = hash_new(new).await?;
    let keep = auth::bearer(&req).map(auth::credential_of);
    state
        .engine
        .exec(Command::SetPassword {
            agent: agent.clone(),
            password_hash: Some(new_hash),
            keep_session: keep,
            expected,
        })
        .await?;
    throttle_succeeded(&state, &agent);
    Ok(HttpResponse::NoContent().finish())
}
