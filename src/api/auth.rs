//! Who is calling: the admin, an agent, a supervisor, or nobody.
//!
//! An agent or a supervisor acts with its token or with a session token from a password
//! sign-in ([`super::signin`]); both are looked up by their SHA-256 in the engine's one
//! credential index, sessions only until they expire.
//!
//! The admin token comes from config and is compared in constant time (`subtle`). Agent
//! tokens are 32 random bytes from the OS CSPRNG; the engine only ever sees their SHA-256
//! hash (the agent's `credential`), so a leaked store does not leak usable tokens. Lookup
//! is by that hash, so lookup timing tells an attacker nothing about a token's bytes.

use actix_web::dev::Payload;
use actix_web::{web, FromRequest, HttpMessage, HttpRequest};
use rand::rngs::OsRng;
use rand::RngCore;
use sha2::{Digest, Sha256};
use std::future::{ready, Ready};
use std::sync::Arc;
use subtle::ConstantTimeEq;

use super::error::ApiError;
use super::AppState;
use crate::core::{AccountRef, Millis};

/// The authenticated caller of a request: the core's [`Principal`], so the rules that
/// depend on who asks (reading a conversation, the admin writing as the customer) are
/// the core's.
pub use crate::core::Principal as Caller;

impl Caller {
    /// The admin or nobody (403 for an agent or a supervisor).
    pub fn admin(&self) -> Result<(), ApiError> {
        match self {
            Caller::Admin => Ok(()),
            Caller::Agent(a) => Err(ApiError::forbidden(format!(
                "agent {a} may not use this endpoint; it needs the admin token"
            ))),
            Caller::Supervisor(s) => Err(ApiError::forbidden(format!(
                "supervisor {s} may not use this endpoint; it needs the admin token"
            ))),
            Caller::Customer { .. } => Err(customer()),
        }
    }

    /// The acting agent (403 for the admin and supervisors, who are not agents).
    pub fn agent(&self) -> Result<&str, ApiError> {
        match self {
            Caller::Agent(a) => Ok(a),
            Caller::Admin | Caller::Supervisor(_) | Caller::Customer { .. } => Err(ApiError::forbidden(
                "this endpoint acts as an agent; use the agent's token",
            )),
        }
    }

    /// The acting supervisor (403 for anyone else).
    pub fn supervisor(&self) -> Result<&str, ApiError> {
        match self {
            Caller::Supervisor(s) => Ok(s),
            Caller::Admin | Caller::Agent(_) | Caller::Customer { .. } => Err(ApiError::forbidden(
                "this endpoint is a supervisor's; use a supervisor token",
            )),
        }
    }

    /// The admin or a supervisor: those who read everything (403 for an agent).
    pub fn reader(&self) -> Result<(), ApiError> {
        match self {
            Caller::Admin | Caller::Supervisor(_) => Ok(()),
            Caller::Agent(a) => Err(ApiError::forbidden(format!(
                "agent {a} may not use this endpoint; it needs the admin or a supervisor token"
            ))),
            Caller::Customer { .. } => Err(customer()),
        }
    }

    /// The account the caller acts as (403 for the admin, who has none, and a customer).
    pub fn account(&self) -> Result<AccountRef, ApiError> {
        match self {
            Caller::Agent(a) => Ok(AccountRef::agent(a.clone())),
            Caller::Supervisor(s) => Ok(AccountRef::supervisor(s.clone())),
            Caller::Admin | Caller::Customer { .. } => Err(ApiError::forbidden(
                "the admin token is not an account; sign out with a session token",
            )),
        }
    }

    /// The admin, a supervisor (both read every agent), or agent `id` itself.
    pub fn admin_or_agent(&self, id: &str) -> Result<(), ApiError> {
        match self {
            Caller::Admin | Caller::Supervisor(_) => Ok(()),
            Caller::Agent(a) if a == id => Ok(()),
            Caller::Agent(a) => Err(ApiError::forbidden(format!("agent {a} may not act on agent {id}"))),
            Caller::Customer { .. } => Err(customer()),
        }
    }
}

/// A customer (the demo page's, never a token's) on an endpoint of the management API.
fn customer() -> ApiError {
    ApiError::forbidden("a customer may not use this endpoint")
}

/// A new agent token: 32 bytes from the OS CSPRNG, hex-encoded.
pub fn new_token() -> String {
    let mut bytes = [0u8; 32];
    OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// A new token of tenant `tenant`: [`new_token`], behind the tenant's id and a dot for
/// every tenant but `default` (`acme.5f3a…`). Any node of a cluster reads a token's
/// tenant from it, without asking the tenant's owner (docs/TENANTS.md "Tokens").
pub fn new_token_in(tenant: &str) -> String {
    if tenant == crate::core::tenant::DEFAULT_TENANT {
        new_token()
    } else {
        format!("{tenant}.{}", new_token())
    }
}

/// The tenant a token names ([`new_token_in`]): `None` for a token without a tenant's
/// prefix (tenant `default`'s, or one made before tokens carried their tenant).
pub fn tenant_of_token(token: &str) -> Option<&str> {
    let (tenant, rest) = token.split_once('.')?;
    (crate::core::tenant::valid_tenant_id(tenant) && !rest.is_empty()).then_some(tenant)
}

/// The credential stored for a token: its SHA-256, hex-encoded.
pub fn credential_of(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// The bearer token of a request, if it has one.
pub fn bearer(req: &HttpRequest) -> Option<&str> {
    let h = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = h.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// A request's authenticated caller and its tenant (`None`: tenant `default`), kept in
/// the request's extensions so that every extractor of the request sees one answer.
#[derive(Debug, Clone)]
pub struct Authed {
    pub caller: Caller,
    pub tenant: Option<String>,
}

/// Resolves a token to its caller and tenant; `None` for a token that belongs to nobody.
/// Tenant `default` is asked first (the config's admin token, then its accounts), then
/// the other tenants ([`crate::tenants::Tenants::principal_for`]).
pub fn resolve(state: &AppState, token: &str) -> Result<Option<Authed>, ApiError> {
    if token.is_empty() {
        return Ok(None);
    }
    if bool::from(token.as_bytes().ct_eq(state.admin_token.as_bytes())) {
        return Ok(Some(Authed {
            caller: Caller::Admin,
            tenant: None,
        }));
    }
    let credential = credential_of(token);
    let now = now_ms();
    if let Some(caller) = state.engine.principal_for(&credential, now)? {
        return Ok(Some(Authed { caller, tenant: None }));
    }
    Ok(state
        .tenants
        .principal_for(&credential, now)?
        .map(|(tenant, caller)| Authed {
            caller,
            tenant: Some(tenant),
        }))
}

/// The client address a request counts for in per-address limits: the TCP peer, or the
/// client a trusted proxy names (`server.trusted_proxies`, [`crate::core::limits::client_address`]).
pub fn client_address(req: &HttpRequest, state: &AppState) -> Option<std::net::IpAddr> {
    let peer = req.peer_addr()?.ip();
    if state.trusted_proxies.is_empty() && !state.behind_front {
        return Some(peer);
    }
    let forwarded: Vec<&str> = req
        .headers()
        .get_all("x-forwarded-for")
        .filter_map(|v| v.to_str().ok())
        .collect();
    if state.behind_front {
        let mut trusted = state.trusted_proxies.to_vec();
        trusted.push(peer);
        return Some(crate::core::limits::client_address(peer, &forwarded, &trusted));
    }
    Some(crate::core::limits::client_address(
        peer,
        &forwarded,
        &state.trusted_proxies,
    ))
}

/// Authenticates a request that carries `token` (from the bearer header, or the
/// WebSocket's `?token=`): 401 for a missing or unknown token, 429 `too_many_attempts`
/// for a wrong token from an address over the failed-authentication limit (../shared/API.md
/// "Operations"). A right token always works. The client address is the TCP peer, or
/// the client a trusted proxy names ([`client_address`]).
pub fn authenticate(req: &HttpRequest, state: &AppState, token: Option<&str>) -> Result<Caller, ApiError> {
    authenticate_in(req, state, token).map(|a| a.caller)
}

/// [`authenticate`], with the caller's tenant. The answer is kept in the request's
/// extensions: asked again (by another extractor), it is not looked up twice, nor a
/// failure counted twice.
pub fn authenticate_in(req: &HttpRequest, state: &AppState, token: Option<&str>) -> Result<Authed, ApiError> {
    if let Some(done) = req.extensions().get::<Result<Authed, ApiError>>() {
        return done.clone();
    }
    let answer = authenticate_once(req, state, token);
    req.extensions_mut().insert(answer.clone());
    answer
}

fn authenticate_once(req: &HttpRequest, state: &AppState, token: Option<&str>) -> Result<Authed, ApiError> {
    // A missing (or empty) token is not a failure: it is a client that did not try.
    let Some(token) = token.filter(|t| !t.is_empty()) else {
        return Err(ApiError::unauthorized());
    };
    if !state.operator_token.is_empty() && bool::from(token.as_bytes().ct_eq(state.operator_token.as_bytes())) {
        return Err(ApiError::forbidden(
            "the operator token manages tenants only; it acts in no tenant",
        ));
    }
    if let Some(authed) = resolve(state, token)? {
        if let Caller::Agent(a) = &authed.caller {
            req.extensions_mut().insert(super::AuthenticatedAgent(a.clone()));
        }
        return Ok(authed);
    }
    let address = client_address(req, state);
    let now = now_ms();
    if let Err(retry_ms) = address_limited(state, address, now) {
        tracing::debug!(address = ?address, path = req.path(), "authentication refused: too many failures");
        return Err(ApiError::too_many_attempts(retry_ms));
    }
    address_failed(state, address, now);
    let shown = address.map(|ip| ip.to_string()).unwrap_or_else(|| "unknown".into());
    crate::metrics::AUTH_FAILURES.with_label_values(&["rejected"]).inc();
    tracing::warn!(address = %shown, path = req.path(), "authentication failed: wrong or unknown token");
    Err(ApiError::unauthorized())
}

/// `Err(retry_after_ms)` while the client's `address` is over the failed-authentication
/// limit (../shared/API.md "Operations"; counted as `limited`): wrong tokens and failed sign-ins
/// share it. An unknown address is never limited.
pub fn address_limited(state: &AppState, address: Option<std::net::IpAddr>, now: Millis) -> Result<(), Millis> {
    let Some(ip) = address else { return Ok(()) };
    let failures = state.auth_failures.lock().unwrap_or_else(|p| p.into_inner());
    failures.check(&ip, now).inspect_err(|_| {
        crate::metrics::AUTH_FAILURES.with_label_values(&["limited"]).inc();
    })
}

/// Counts one failed authentication (a wrong token, a failed sign-in) of the client's
/// `address` toward [`address_limited`].
pub fn address_failed(state: &AppState, address: Option<std::net::IpAddr>, now: Millis) {
    if let Some(ip) = address {
        let mut failures = state.auth_failures.lock().unwrap_or_else(|p| p.into_inner());
        failures.failed(&ip, now);
    }
}

/// The wall clock in ms since the epoch, as the core takes time.
pub fn now_ms() -> crate::core::Millis {
    crate::actors::Clock::now(&crate::actors::SystemClock)
}

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = Ready<Result<Caller, ApiError>>;

    /// 401 for a missing or unknown token, 429 over the failed-authentication limit;
    /// rights are checked by the handler (403).
    fn from_request(req: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        let Some(state) = req.app_data::<web::Data<AppState>>() else {
            return ready(Err(ApiError::unauthorized()));
        };
        ready(authenticate(req, state, bearer(req)))
    }
}

/// The server's state as the caller's tenant sees it: [`AppState`] with the tenant's
/// engine and supervisor hub. A handler that acts inside a tenant takes this instead of
/// `web::Data<AppState>`; authenticating is part of extracting it (401, 429 as for
/// [`Caller`]), so a handler with both sees one caller.
pub struct Tenanted(web::Data<AppState>, Option<Arc<str>>);

impl std::ops::Deref for Tenanted {
    type Target = AppState;

    fn deref(&self) -> &AppState {
        &self.0
    }
}

impl Tenanted {
    /// The caller's tenant's state, once `authed` is known.
    pub fn of(state: &web::Data<AppState>, authed: &Authed) -> Result<Tenanted, ApiError> {
        // A tenant deleted since the token was resolved is gone for this request too.
        Tenanted::named(state, authed.tenant.as_deref()).ok_or_else(ApiError::unauthorized)
    }

    /// Tenant `tenant`'s state (`None`: `default`); `None` for a tenant that does not exist.
    pub fn named(state: &web::Data<AppState>, tenant: Option<&str>) -> Option<Tenanted> {
        let tenant = match tenant {
            None => return Some(Tenanted(state.clone(), None)),
            Some(t) if t == state.tenants.default_id() => return Some(Tenanted(state.clone(), None)),
            Some(t) => t,
        };
        let engine = state.tenants.engine(tenant)?;
        let t = state.tenant_state(tenant, &engine);
        Some(Tenanted(t.state, Some(t.id)))
    }

    /// The tenant's id (`default` included).
    pub fn tenant(&self) -> &str {
        self.1.as_deref().unwrap_or(self.0.tenants.default_id())
    }
}

impl FromRequest for Tenanted {
    type Error = ApiError;
    type Future = Ready<Result<Tenanted, ApiError>>;

    fn from_request(req: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        let Some(state) = req.app_data::<web::Data<AppState>>() else {
            return ready(Err(ApiError::unauthorized()));
        };
        ready(authenticate_in(req, state, bearer(req)).and_then(|a| Tenanted::of(state, &a)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_hashed() {
        let (a, b) = (new_token(), new_token());
        assert_ne!(a, b);
        assert_eq!(a.len(), 64);
        assert_eq!(credential_of(&a).len(), 64);
        assert_ne!(credential_of(&a), a);
        assert_eq!(credential_of(&a), credential_of(&a));
    }
}
