//! Accounts over HTTP, for agents and supervisors alike (../shared/API.md "Sign-in with a
//! password"): `POST /api/v1/login`, `POST /api/v1/logout`, the admin's password and token
//! endpoints of both kinds (their handlers call [`set_password_of`] and [`reissue`]), and
//! `PUT /api/v1/agents/me/password`.
//!
//! # Guarantees
//! - **Only hashes.** A password is hashed with Argon2id ([`super::password`]) and a token
//!   is kept only as its SHA-256 (its credential, part of the account's durable record:
//!   a session survives a restart until it expires or signs out).
//! - **The same answer, in the same time, for an unknown id and a wrong password:** 401
//!   `invalid_credentials`; an unknown id is verified against a dummy hash of the same cost.
//! - **Throttled per account and per address:** after [`MAX_FAILURES`] failures for one
//!   account (kind and id: a supervisor's failures never lock out the agent of the same
//!   id) within [`FAILURE_WINDOW_MS`], attempts for it are 429 `too_many_attempts` with
//!   `Retry-After`, whatever the password; a success forgets the account's failures.
//!   Every failure also counts toward the client address's failed-authentication limit
//!   (../shared/API.md "Operations"), shared with wrong tokens, so one password sprayed over many
//!   ids is stopped too; an address over that limit gets 429 for every sign-in.
//! - **Bounded work:** every hash and verification goes through
//!   [`super::password::PasswordChecks`]: at most `api.max_concurrent_password_checks` at
//!   once, on the blocking pool (never on an HTTP worker's loop nor on the engine's
//!   thread); one that cannot start within `api.password_check_wait_ms` is 503 `busy`
//!   with `Retry-After`, so a flood costs bounded memory and threads.
//! - **Races are refused, not lost:** a session is opened only if the password hash the
//!   caller verified is still the account's (`Command::StartSession`), and a change of one's
//!   own password only if the current one is still what was verified.
//! - **Sockets end with their credential:** sign-out, reissue and password changes revoke
//!   credentials through the core's effects; the sockets opened with them are closed by
//!   the index that carries those effects out ([`super::ws`], [`super::supervisor::socket`]).

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};

use super::auth::{self, Caller, Tenanted};
use super::dto::{ChangePassword, Login, Password, SessionDto, SetPassword, SignInFormDto, TokenDto};
use super::error::{ApiError, ErrorBody};
use super::password::{self, Busy};
use super::AppState;
use crate::core::{valid_id, AccountRef, CoreError, Millis};
use crate::engine::{Command, EngineError, Reply};

/// Failures per account that lock it out...
pub const MAX_FAILURES: u32 = 5;
/// ...within this window (opened by the first failure).
pub const FAILURE_WINDOW_MS: Millis = 60_000;
/// Accounts whose failures are tracked at once (bounds the limiter's memory).
pub const TRACKED_IDS: usize = 100_000;

type Res = Result<HttpResponse, ApiError>;

fn invalid_credentials() -> ApiError {
    ApiError::from(EngineError::from(CoreError::InvalidCredentials))
}

/// 503 `busy` with `Retry-After: 1`: every password check is taken.
fn busy(_: Busy) -> ApiError {
    crate::metrics::AUTH_FAILURES.with_label_values(&["busy"]).inc();
    ApiError {
        retry_after_s: Some(1),
        ..ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "busy",
            "too many sign-ins are being checked at once; try again in a second",
        )
    }
}

/// 429 `too_many_attempts` with `Retry-After` (whole seconds, at least 1).
fn too_many(wait_ms: Millis, what: &str) -> ApiError {
    let e = ApiError::too_many_attempts(wait_ms);
    let secs = e.retry_after_s.unwrap_or(1);
    ApiError {
        message: format!("too many failed sign-ins {what}; try again in {secs} s"),
        ..e
    }
}

fn account_failures(state: &AppState) -> std::sync::MutexGuard<'_, crate::core::limits::AuthFailures<AccountRef>> {
    state.sign_in_failures.lock().unwrap_or_else(|p| p.into_inner())
}

/// `Ok` while the account and the client's address may try; 429 while either is locked.
fn throttle_check(state: &AppState, req: &HttpRequest, account: &AccountRef) -> Result<(), ApiError> {
    let now = auth::now_ms();
    auth::address_limited(state, auth::client_address(req, state), now)
        .map_err(|wait| too_many(wait, "from this address"))?;
    account_failures(state)
        .check(account, now)
        .map_err(|wait| too_many(wait, "for this account"))
}

/// A failed sign-in counts for the account and for the client's address.
fn throttle_failed(state: &AppState, req: &HttpRequest, account: &AccountRef) {
    let now = auth::now_ms();
    crate::metrics::AUTH_FAILURES.with_label_values(&["rejected"]).inc();
    auth::address_failed(state, auth::client_address(req, state), now);
    account_failures(state).failed(account, now);
    tracing::warn!(account = %account, "sign-in failed");
}

fn throttle_succeeded(state: &AppState, account: &AccountRef) {
    account_failures(state).forget(account);
}

/// The account's current password hash, if it exists and has one.
async fn password_hash_of(state: &AppState, account: &AccountRef) -> Result<Option<String>, ApiError> {
    if !valid_id(&account.id) {
        return Ok(None);
    }
    Ok(state.engine.password_hash(account.clone()).await?)
}

/// Verifies `password` against `hash` (or the dummy hash when there is none) as a
/// bounded password check; true only for a real hash that matches.
async fn verify(state: &AppState, password: Password, hash: Option<String>) -> Result<bool, ApiError> {
    state
        .password_checks
        .run(move || match &hash {
            Some(phc) => password::verify(&password.0, phc),
            // The same work as a real check, so an unknown id takes the same time.
            None => {
                let _ = password::verify(&password.0, password::dummy_hash());
                false
            }
        })
        .await
        .map_err(busy)
}

/// Checks and hashes a new password as a bounded password check (400 `invalid_input`
/// when it breaks a rule of [`password::check_new`]).
pub async fn hash_new(state: &AppState, password: Password) -> Result<String, ApiError> {
    password::check_new(&password.0).map_err(|why| ApiError::bad_request("invalid_input", why))?;
    state
        .password_checks
        .run(move || password::hash(&password.0))
        .await
        .map_err(busy)?
        .map_err(|e| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", e))
}

/// [`hash_new`] of an optional password (create with a password, or without).
pub async fn hash_optional(state: &AppState, password: Option<Password>) -> Result<Option<String>, ApiError> {
    match password {
        Some(p) => Ok(Some(hash_new(state, p).await?)),
        None => Ok(None),
    }
}

/// What a sign-in form asks: the tenant too, when the deployment has more than one.
#[utoipa::path(get, path = "/api/v1/login", tag = "sign-in",
    responses((status = 200, description = "What the sign-in form asks", body = SignInFormDto)))]
pub async fn form(state: web::Data<AppState>) -> Res {
    Ok(HttpResponse::Ok().json(SignInFormDto {
        ask_tenant: state.tenants.count() > 1,
    }))
}

/// Signs in with an id and a password; answers a session token.
#[utoipa::path(post, path = "/api/v1/login", tag = "sign-in", request_body = Login,
    responses(
        (status = 200, description = "A session token that acts as the account's token until `expires_at`", body = SessionDto),
        (status = 400, description = "Malformed body", body = ErrorBody),
        (status = 401, description = "Wrong id or password (`invalid_credentials`), the same for both", body = ErrorBody),
        (status = 429, description = "Too many failures for this account, or from this address, within a minute (`too_many_attempts`); see `Retry-After`", body = ErrorBody),
        (status = 503, description = "Every password check is taken (`busy`); see `Retry-After`", body = ErrorBody),
    ))]
pub async fn login(app: web::Data<AppState>, req: HttpRequest, body: web::Json<Login>) -> Res {
    let Login {
        id,
        password,
        kind,
        tenant,
    } = body.into_inner();
    let account = match kind.as_deref() {
        None | Some("agent") => AccountRef::agent(id),
        Some("supervisor") => AccountRef::supervisor(id),
        Some(other) => {
            return Err(ApiError::bad_request(
                "invalid_input",
                format!("kind is `agent` or `supervisor`, not `{other}`"),
            ))
        }
    };
    // Ids are unique within a tenant: failures are counted per tenant's account.
    let throttled = AccountRef {
        kind: account.kind,
        id: crate::core::tenant::scoped(tenant.as_deref(), &account.id),
    };
    throttle_check(&app, &req, &throttled)?;
    let state = Tenanted::named(&app, tenant.as_deref());
    // An unknown tenant is checked against no hash, as an unknown id is.
    let hash = match &state {
        Some(s) => password_hash_of(s, &account).await?,
        None => None,
    };
    let verified = hash.clone();
    let ok = verify(&app, password, hash).await?;
    let (Some(state), Some(verified_hash)) = (state, verified.filter(|_| ok)) else {
        throttle_failed(&app, &req, &throttled);
        return Err(invalid_credentials());
    };
    let token = state.new_token();
    let expires_at = auth::now_ms().saturating_add(state.session_ttl_ms);
    let reply = state
        .engine
        .exec(Command::StartSession {
            account: account.clone(),
            verified_hash,
            credential: auth::credential_of(&token),
            expires_at,
        })
        .await;
    let name = match reply {
        Ok(Reply::SignedIn { name, .. }) => name,
        Ok(r) => return Err(super::rest::unexpected("signed_in", &r)),
        Err(e) if e.code() == "invalid_credentials" => {
            // The password changed while it was being checked.
            throttle_failed(&state, &req, &throttled);
            return Err(e.into());
        }
        Err(e) => return Err(e.into()),
    };
    throttle_succeeded(&state, &throttled);
    tracing::info!(account = %account, "signed in with a password");
    Ok(HttpResponse::Ok().json(SessionDto {
        token,
        expires_at: super::dto::time(expires_at),
        kind: account.kind.as_str().into(),
        id: account.id,
        name,
    }))
}

/// Ends the session whose token is the bearer; every socket opened with it closes (an
/// account's token is not affected: reissue it to revoke it).
#[utoipa::path(post, path = "/api/v1/logout", tag = "sign-in",
    responses(
        (status = 204, description = "The session has ended"),
        (status = 401, description = "No or wrong token", body = ErrorBody),
        (status = 403, description = "The admin token", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn logout(state: Tenanted, caller: Caller, req: HttpRequest) -> Res {
    let account = caller.account()?;
    let token = auth::bearer(&req).unwrap_or_default();
    state
        .engine
        .exec(Command::EndSession {
            account,
            credential: auth::credential_of(token),
        })
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Sets an agent's password (admin); every session of the agent ends.
#[utoipa::path(put, path = "/api/v1/agents/{id}/password", tag = "sign-in",
    params(("id" = String, Path, description = "Agent id")), request_body = SetPassword,
    responses(
        (status = 204, description = "Set; the agent's sessions have ended"),
        (status = 400, description = "Shorter than 10 characters, all whitespace, or malformed", body = ErrorBody),
        (status = 401, description = "No or wrong token", body = ErrorBody),
        (status = 403, description = "Not the admin", body = ErrorBody),
        (status = 404, description = "Unknown agent", body = ErrorBody),
        (status = 503, description = "Every password check is taken (`busy`)", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn set_password(
    state: Tenanted,
    caller: Caller,
    path: web::Path<String>,
    body: web::Json<SetPassword>,
) -> Res {
    caller.admin()?;
    set_password_of(&state, AccountRef::agent(path.into_inner()), body.into_inner().password).await
}

/// Sets an account's password (the admin's endpoints of both kinds): every session of
/// the account ends, and every socket opened with one of them closes.
pub async fn set_password_of(state: &AppState, account: AccountRef, password: Password) -> Res {
    check_id(&account)?;
    let hash = hash_new(state, password).await?;
    state
        .engine
        .exec(Command::SetPassword {
            account,
            password_hash: Some(hash),
            keep_session: None,
            expected: None,
        })
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Issues a new token for an account (the admin's endpoints of both kinds); the old one
/// stops working, and every socket opened with it closes.
pub async fn reissue(state: &AppState, account: AccountRef) -> Res {
    check_id(&account)?;
    let token = state.new_token();
    state
        .engine
        .exec(Command::SetCredential {
            account,
            credential: auth::credential_of(&token),
        })
        .await?;
    Ok(HttpResponse::Ok().json(TokenDto { token }))
}

fn check_id(account: &AccountRef) -> Result<(), ApiError> {
    if valid_id(&account.id) {
        return Ok(());
    }
    Err(ApiError::bad_request(
        "invalid_input",
        "ids are 1 to 64 characters from [A-Za-z0-9_.-]",
    ))
}

/// The agent changes its own password; its other sessions end, the one making the change
/// (if it is a session) stays.
#[utoipa::path(put, path = "/api/v1/agents/me/password", tag = "sign-in", request_body = ChangePassword,
    responses(
        (status = 204, description = "Changed; the agent's other sessions have ended"),
        (status = 400, description = "The new password is shorter than 10 characters, all whitespace, or malformed", body = ErrorBody),
        (status = 401, description = "No or wrong token", body = ErrorBody),
        (status = 403, description = "The current password is wrong (`wrong_password`), or not an agent token", body = ErrorBody),
        (status = 429, description = "Too many failures for this agent within a minute (`too_many_attempts`)", body = ErrorBody),
        (status = 503, description = "Every password check is taken (`busy`)", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn change_my_password(
    state: Tenanted,
    caller: Caller,
    req: HttpRequest,
    body: web::Json<ChangePassword>,
) -> Res {
    let account = AccountRef::agent(caller.agent()?);
    let ChangePassword { current, new } = body.into_inner();
    password::check_new(&new.0).map_err(|why| ApiError::bad_request("invalid_input", why))?;
    throttle_check(&state, &req, &account)?;
    let hash = password_hash_of(&state, &account).await?;
    let expected = hash.clone();
    if !verify(&state, current, hash).await? {
        throttle_failed(&state, &req, &account);
        return Err(EngineError::from(CoreError::WrongPassword).into());
    }
    let new_hash = hash_new(&state, new).await?;
    let keep = auth::bearer(&req).map(auth::credential_of);
    state
        .engine
        .exec(Command::SetPassword {
            account: account.clone(),
            password_hash: Some(new_hash),
            keep_session: keep,
            expected,
        })
        .await?;
    throttle_succeeded(&state, &account);
    Ok(HttpResponse::NoContent().finish())
}
