//! What the desktop and supervisor sockets share: their caps ([`SocketSlots`]) and the
//! rule that a socket lives only as long as the credential it was opened with (API.md "A
//! credential's sockets end with it", [`end_with_credential`]).

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use actix_ws::{CloseCode, CloseReason, Session};

use super::auth;
use super::error::ApiError;
use super::AppState;
use crate::core::Principal;
use crate::protocol::{CredentialEnd, CredentialWatch};

/// A socket session actor that can close itself with a code and a reason.
pub trait Closing: Actor<Context = Context<Self>> {
    /// Sends a close frame after what is queued, then stops; nothing is sent after it.
    fn close(&mut self, code: CloseCode, why: &str, ctx: &mut Context<Self>);
}

/// The hold of a socket opened with `token` on its credential, checked in the same step
/// as it is registered: 401 when the credential stopped working since the request was
/// authenticated.
pub fn watch(state: &AppState, token: &str) -> Result<CredentialWatch, ApiError> {
    state
        .engine
        .watch_credential(&auth::credential_of(token), auth::now_ms())?
        .ok_or_else(ApiError::unauthorized)
}

/// Closes the socket with 1008 and `credential_revoked` when its credential is revoked
/// (the index tells it the moment the revoking change is durable), and with
/// `session_expired` when its session's time runs out.
pub fn end_with_credential<A: Closing>(watch: &mut CredentialWatch, ctx: &mut Context<A>) {
    if let Some(rx) = watch.told.take() {
        let told = actix::fut::wrap_future::<_, A>(rx).map(|end, act: &mut A, ctx: &mut Context<A>| {
            // A dropped sender (the index went away with the engine) is no revocation.
            if let Ok(end) = end {
                ended(act, end, ctx);
            }
        });
        ctx.spawn(told);
    }
    if let Some(at) = watch.expires_at {
        let wait = Duration::from_millis(at.saturating_sub(auth::now_ms()));
        ctx.run_later(wait, |act, ctx| ended(act, CredentialEnd::Expired, ctx));
    }
}

/// Whether the credential of `watch` still authenticates `who` now: re-checked before
/// each command a socket runs. `Err` says why not.
pub fn still_valid(
    engine: &crate::engine::Engine,
    watch: &CredentialWatch,
    who: &Principal,
) -> Result<(), CredentialEnd> {
    let now = auth::now_ms();
    match engine.principal_for(&watch.credential, now) {
        Ok(Some(p)) if &p == who => Ok(()),
        _ if watch.expires_at.is_some_and(|at| now >= at) => Err(CredentialEnd::Expired),
        _ => Err(CredentialEnd::Revoked),
    }
}

/// Closes `act` because its credential ended.
pub fn ended<A: Closing>(act: &mut A, end: CredentialEnd, ctx: &mut Context<A>) {
    crate::metrics::SOCKETS_CREDENTIAL_ENDED
        .with_label_values(&[end.reason()])
        .inc();
    act.close(CloseCode::Policy, end.reason(), ctx);
}

/// Refuses a socket after the upgrade (so a browser sees the code and the reason; a
/// refused handshake shows only a failed connection): 1008 and `why`.
pub fn refuse(session: Session, why: String) {
    let reason = CloseReason {
        code: CloseCode::Policy,
        description: Some(why),
    };
    actix_rt::spawn(async move {
        let _ = session.close(Some(reason)).await;
    });
}

/// Open sockets per key, capped: desktops per agent (`server.max_desktops_per_agent`),
/// supervisor sockets all together (`supervisor.max_sockets`, one key).
#[derive(Debug)]
pub struct SocketSlots {
    /// The most sockets one key may have at once.
    pub max: usize,
    connected: std::sync::Mutex<std::collections::HashMap<String, usize>>,
}

impl SocketSlots {
    pub fn new(max: usize) -> Self {
        SocketSlots {
            max,
            connected: Default::default(),
        }
    }

    /// A slot for one more socket of `key`, or `None` at the cap. The slot is given back
    /// when dropped (when the socket's session actor goes).
    pub fn take(slots: &Arc<SocketSlots>, key: &str) -> Option<SocketSlot> {
        let mut m = slots.connected.lock().unwrap_or_else(|p| p.into_inner());
        let n = m.entry(key.to_string()).or_insert(0);
        if *n >= slots.max {
            return None;
        }
        *n += 1;
        Some(SocketSlot {
            slots: slots.clone(),
            key: key.to_string(),
        })
    }
}

/// One open socket's place under its cap.
#[derive(Debug)]
pub struct SocketSlot {
    slots: Arc<SocketSlots>,
    key: String,
}

impl Drop for SocketSlot {
    fn drop(&mut self) {
        let mut m = self.slots.connected.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = m.get_mut(&self.key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                m.remove(&self.key);
            }
        }
    }
}
