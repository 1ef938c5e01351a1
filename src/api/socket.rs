//! What the desktop and supervisor sockets share: one session pump ([`Pump`]: a bounded
//! queue to one writer, heartbeat, server shutdown, closing with a grace, too slow), their
//! caps ([`SocketSlots`]) and the rule that a socket lives only as long as the credential
//! it was opened with (../shared/API.md "A credential's sockets end with it", [`end_with_credential`]).
//!
//! # Guarantees
//! - **Nothing blocks on a socket.** Frames go through a bounded queue to the one task
//!   that writes them, in order; a socket that lets it fill is closed at once with 1013
//!   ("try again"), bypassing the full queue, and resumes by reconnecting.
//! - **Dead sockets go away**: a ping every `server.ws_heartbeat_ms`; a socket silent for
//!   `server.ws_client_timeout_ms` is closed (1008). On server shutdown, 1001.
//! - **A close is final**: after the close frame is queued nothing more is sent, and the
//!   actor stops once it is written (or after a grace, for a peer that stopped reading).
//! - **No frame for a credential that ended**: the pump asks the socket's credential
//!   watch before every frame it queues (one atomic load).

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use actix_web::web::Bytes;
use actix_ws::{AggregatedMessage, CloseCode, CloseReason, ProtocolError, Session};
use bytestring::ByteString;
use tokio::sync::{broadcast, mpsc};

use super::auth;
use super::error::ApiError;
use super::AppState;
use crate::core::{session_valid, Principal};
use crate::protocol::{CredentialEnd, CredentialWatch};

/// How long a closing socket waits for its close frame to be written.
const CLOSE_GRACE: Duration = Duration::from_secs(5);

/// A frame (or a batch of frames) for a socket's writer.
pub enum Outbound {
    Text(ByteString),
    /// Several text frames, shared by every socket that sends them (the supervisor hub's).
    Batch(Arc<[ByteString]>),
    Ping,
    Pong(Bytes),
    Close(Option<CloseReason>),
}

/// A socket session actor with a [`Pump`].
pub trait Pumped: Actor<Context = Context<Self>> {
    fn pump(&mut self) -> &mut Pump;
}

/// A socket session actor that can close itself with a code and a reason.
pub trait Closing: Actor<Context = Context<Self>> {
    /// Sends a close frame after what is queued, then stops; nothing is sent after it.
    fn close(&mut self, code: CloseCode, why: &str, ctx: &mut Context<Self>);
}

impl<A: Pumped> Closing for A {
    fn close(&mut self, code: CloseCode, why: &str, ctx: &mut Context<Self>) {
        let p = self.pump();
        if p.closing {
            return;
        }
        tracing::info!(socket = %p.who, why, "closing socket");
        push(
            self,
            Outbound::Close(Some(CloseReason {
                code,
                description: Some(why.into()),
            })),
            ctx,
        );
        self.pump().closing = true;
        // The writer stops the actor once the close frame is out; this is the backstop
        // for a peer that stopped reading.
        ctx.run_later(CLOSE_GRACE, |_, ctx| ctx.stop());
    }
}

/// The plumbing of one socket session actor. See the module docs.
pub struct Pump {
    /// Who is on the other end, for logs (`agent a1`, `supervisor s1`).
    who: String,
    /// The connection. The writer writes through a clone; this one is kept to close the
    /// connection when the writer cannot (its queue is full).
    session: Option<Session>,
    out: mpsc::Sender<Outbound>,
    /// Taken by [`start`], which hands it to the writer.
    out_rx: Option<mpsc::Receiver<Outbound>>,
    shutdown: Option<broadcast::Receiver<()>>,
    last_heard: Instant,
    heartbeat: Duration,
    client_timeout: Duration,
    /// A close frame is queued: nothing more is sent.
    closing: bool,
    /// The credential the socket was opened with; unregistered on drop.
    watch: CredentialWatch,
    /// The socket's place under its cap, given back on drop.
    _slot: SocketSlot,
    /// Counted when the socket is closed as too slow.
    on_too_slow: fn(),
}

impl Pump {
    /// A pump for `session`, with room for `buffer` frames before the socket is too slow.
    pub fn new(
        who: String,
        session: Session,
        state: &AppState,
        buffer: usize,
        (watch, slot): (CredentialWatch, SocketSlot),
        on_too_slow: fn(),
    ) -> Pump {
        let (out, out_rx) = mpsc::channel(buffer);
        Pump {
            who,
            session: Some(session),
            out,
            out_rx: Some(out_rx),
            shutdown: Some(state.shutdown.subscribe()),
            last_heard: Instant::now(),
            heartbeat: state.heartbeat,
            client_timeout: state.client_timeout,
            closing: false,
            watch,
            _slot: slot,
            on_too_slow,
        }
    }

    /// Whether a close frame is queued.
    pub fn closing(&self) -> bool {
        self.closing
    }

    /// The credential the socket was opened with.
    pub fn watch(&self) -> &CredentialWatch {
        &self.watch
    }
}

/// Starts the pump of `act`: the writer, the shutdown notice, the heartbeat, and the end
/// with the credential. Call from `Actor::started`.
pub fn start<A: Pumped>(act: &mut A, ctx: &mut Context<A>) {
    let p = act.pump();
    end_with_credential(&mut p.watch, ctx);
    // The writer: one frame at a time, in order; when it ends, the socket is gone.
    if let (Some(mut rx), Some(mut session)) = (p.out_rx.take(), p.session.clone()) {
        let writer = async move {
            while let Some(frame) = rx.recv().await {
                let sent = match frame {
                    Outbound::Text(t) => session.text(t).await,
                    Outbound::Batch(b) => {
                        let mut r = Ok(());
                        for f in b.iter() {
                            r = session.text(f.clone()).await;
                            if r.is_err() {
                                break;
                            }
                        }
                        r
                    }
                    Outbound::Ping => session.ping(b"").await,
                    Outbound::Pong(b) => session.pong(&b).await,
                    Outbound::Close(reason) => {
                        let _ = session.close(reason).await;
                        break;
                    }
                };
                if sent.is_err() {
                    break;
                }
            }
        };
        ctx.spawn(actix::fut::wrap_future::<_, A>(writer).map(|_, _, ctx: &mut Context<A>| ctx.stop()));
    }
    if let Some(mut rx) = p.shutdown.take() {
        // A closed channel means the server is gone too.
        let notice = async move {
            let _ = rx.recv().await;
        };
        ctx.spawn(
            actix::fut::wrap_future::<_, A>(notice)
                .map(|_, act: &mut A, ctx: &mut Context<A>| act.close(CloseCode::Away, "server shutting down", ctx)),
        );
    }
    let heartbeat = p.heartbeat;
    ctx.run_interval(heartbeat, |act: &mut A, ctx| {
        let p = act.pump();
        if p.last_heard.elapsed() > p.client_timeout {
            act.close(CloseCode::Policy, "heartbeat timeout", ctx);
        } else {
            push(act, Outbound::Ping, ctx);
        }
    });
}

/// Queues a frame for the writer. A socket whose credential ended is closed instead (no
/// frame reaches it); one whose queue is full is closed at once as too slow.
pub fn push<A: Pumped>(act: &mut A, frame: Outbound, ctx: &mut Context<A>) {
    let p = act.pump();
    if p.closing {
        return;
    }
    if !matches!(frame, Outbound::Close(_)) {
        if let Some(end) = p.watch.ended(auth::now_ms) {
            return ended(act, end, ctx);
        }
    }
    match p.out.try_send(frame) {
        Ok(()) => {}
        Err(mpsc::error::TrySendError::Full(_)) => {
            tracing::warn!(socket = %p.who, "socket too slow, closing it");
            (p.on_too_slow)();
            p.closing = true;
            // Bypass the full queue: the session's own channel takes the close frame.
            if let Some(s) = p.session.take() {
                refuse_with(s, CloseCode::Again, "too slow; reconnect to resume".into());
            }
            ctx.stop();
        }
        Err(mpsc::error::TrySendError::Closed(_)) => ctx.stop(),
    }
}

/// Closes at once, bypassing the writer's queue, with 1013: the source of the socket's
/// frames let go of it (it fell behind, or the engine rebuilt itself).
pub fn drop_now<A: Pumped>(act: &mut A, why: &str, ctx: &mut Context<A>) {
    let p = act.pump();
    if p.closing {
        return;
    }
    p.closing = true;
    if let Some(s) = p.session.take() {
        refuse_with(s, CloseCode::Again, why.into());
    }
    ctx.stop();
}

/// What the peer sent, after the pump has dealt with pings, pongs, closes and protocol
/// errors: a text or binary frame for the socket, or nothing.
pub fn received<A: Pumped>(
    act: &mut A,
    msg: Result<AggregatedMessage, ProtocolError>,
    ctx: &mut Context<A>,
) -> Option<AggregatedMessage> {
    act.pump().last_heard = Instant::now();
    match msg {
        Ok(AggregatedMessage::Ping(b)) => push(act, Outbound::Pong(b), ctx),
        Ok(AggregatedMessage::Pong(_)) => {}
        Ok(AggregatedMessage::Close(_)) => act.close(CloseCode::Normal, "bye", ctx),
        Ok(m) => return Some(m),
        Err(e) => {
            tracing::debug!(socket = %act.pump().who, error = %e, "socket protocol error");
            act.close(CloseCode::Protocol, "protocol error", ctx);
        }
    }
    None
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
        _ if watch.expires_at.is_some_and(|at| !session_valid(at, now)) => Err(CredentialEnd::Expired),
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
    refuse_with(session, CloseCode::Policy, why);
}

fn refuse_with(session: Session, code: CloseCode, why: String) {
    let reason = CloseReason {
        code,
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
