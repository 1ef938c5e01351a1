//! The supervisor's live socket, `GET /api/v1/supervisors/me/ws?token=`: a `snapshot`,
//! then `queue`, `agent` and `conversation` events as the [`super::hub`] publishes them.
//!
//! Each connection is one [`SupervisorSocket`] actor that owns its `actix_ws::Session`, as
//! an agent desktop does ([`crate::api::ws`]): the frames go through a bounded queue to one
//! writer, a socket that lets it (or the hub's channel) fill is closed with 1013 and
//! resumes from `snapshot` on reconnecting, a ping every `server.ws_heartbeat_ms` and a
//! close after `server.ws_client_timeout_ms` of silence. A supervisor only listens: a text
//! frame from it is ignored.

use std::time::{Duration, Instant};

use actix::prelude::*;
use actix_web::{web, HttpRequest, HttpResponse};
use actix_ws::{AggregatedMessage, CloseCode, CloseReason, ProtocolError, Session};
use tokio::sync::{broadcast, mpsc};

use super::hub::{Batch, Join};
use crate::api::auth;
use crate::api::error::{ApiError, ErrorBody};
use crate::api::socket::{self, Closing, SocketSlot, SocketSlots};
use crate::api::ws::WsQuery;
use crate::api::AppState;
use crate::protocol::CredentialWatch;

/// How long a closing socket waits for its close frame to be written.
const CLOSE_GRACE: Duration = Duration::from_secs(5);

/// The supervisor's live socket. The server sends `snapshot`
/// (`{"type":"snapshot","queues":[..],"agents":[..],"conversations":[..]}`) first, then
/// `{"type":"queue","queue":{..}}`, `{"type":"agent","agent":{..}}` and
/// `{"type":"conversation","conversation":{..}}` (without the transcript) as they change.
#[utoipa::path(get, path = "/api/v1/supervisors/me/ws", tag = "supervisors", params(WsQuery),
    responses(
        (status = 101, description = "Switching to the WebSocket protocol; frames are `snapshot`, `queue`, `agent` and `conversation` events"),
        (status = 400, description = "Not a WebSocket handshake", body = ErrorBody),
        (status = 401, description = "No or wrong token", body = ErrorBody),
        (status = 403, description = "Not a supervisor token", body = ErrorBody),
    ))]
pub async fn supervisor_ws(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
    query: web::Query<WsQuery>,
) -> Result<HttpResponse, ApiError> {
    let token = query.token.as_deref().or_else(|| auth::bearer(&req));
    let caller = auth::authenticate(&req, &state, token)?;
    let supervisor = caller.supervisor()?.to_string();
    let mut watch = socket::watch(&state, token.unwrap_or_default())?;
    let (response, session, stream) =
        actix_ws::handle(&req, payload).map_err(|e| ApiError::bad_request("not_a_websocket", e.to_string()))?;
    // One key: the cap counts every supervisor's sockets together.
    let Some(slot) = SocketSlots::take(&state.supervisor_sockets, "") else {
        let max = state.supervisor_sockets.max;
        crate::metrics::SUPERVISOR_SOCKETS_REFUSED.with_label_values(&[]).inc();
        tracing::warn!(supervisor = %supervisor, max, "supervisor socket refused: the most allowed are open");
        socket::refuse(
            session,
            format!("{max} supervisor sockets are open, the most allowed (supervisor.max_sockets)"),
        );
        return Ok(response);
    };
    let (tx, rx) = mpsc::channel(state.supervisor.socket_buffer);
    state.hub.do_send(Join { tx });
    let limit = state.body_limit;
    let stream = stream
        .max_frame_size(limit)
        .aggregate_continuations()
        .max_continuation_size(limit);
    let timing = (state.heartbeat, state.client_timeout);
    let buffer = state.supervisor.socket_buffer;
    let shutdown = state.shutdown.subscribe();
    SupervisorSocket::create(move |ctx| {
        ctx.add_stream(stream);
        ctx.add_stream(futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|b| (HubBatch(b), rx))
        }));
        socket::end_with_credential(&mut watch, ctx);
        SupervisorSocket::new(supervisor, session, shutdown, timing, buffer, (watch, slot))
    });
    Ok(response)
}

/// One frame for the writer.
enum Outbound {
    Batch(Batch),
    Ping,
    Pong(web::Bytes),
    Close(Option<CloseReason>),
}

/// A batch of frames from the hub.
#[derive(Message)]
#[rtype(result = "()")]
struct HubBatch(Batch);

/// One connected supervisor. See the module docs.
pub struct SupervisorSocket {
    supervisor: String,
    session: Option<Session>,
    out: mpsc::Sender<Outbound>,
    out_rx: Option<mpsc::Receiver<Outbound>>,
    shutdown: Option<broadcast::Receiver<()>>,
    last_heard: Instant,
    heartbeat: Duration,
    client_timeout: Duration,
    closing: bool,
    /// The credential the socket was opened with: it closes when that is revoked or
    /// expires, and no frame is sent after. Unregistered on drop.
    watch: CredentialWatch,
    /// This socket's place under `supervisor.max_sockets`, given back on drop.
    _slot: SocketSlot,
}

impl SupervisorSocket {
    fn new(
        supervisor: String,
        session: Session,
        shutdown: broadcast::Receiver<()>,
        (heartbeat, client_timeout): (Duration, Duration),
        buffer: usize,
        (watch, slot): (CredentialWatch, SocketSlot),
    ) -> Self {
        let (out, out_rx) = mpsc::channel(buffer);
        SupervisorSocket {
            supervisor,
            session: Some(session),
            out,
            out_rx: Some(out_rx),
            shutdown: Some(shutdown),
            last_heard: Instant::now(),
            heartbeat,
            client_timeout,
            closing: false,
            watch,
            _slot: slot,
        }
    }

    /// Closes at once, bypassing the writer's queue (it is full, or the hub let go).
    fn drop_too_slow(&mut self, why: &str, ctx: &mut Context<Self>) {
        if self.closing {
            return;
        }
        self.closing = true;
        if let Some(s) = self.session.take() {
            let reason = CloseReason {
                code: CloseCode::Again,
                description: Some(why.into()),
            };
            actix_rt::spawn(async move {
                let _ = s.close(Some(reason)).await;
            });
        }
        ctx.stop();
    }

    fn push(&mut self, frame: Outbound, ctx: &mut Context<Self>) {
        if self.closing {
            return;
        }
        match self.out.try_send(frame) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                tracing::warn!(supervisor = %self.supervisor, "supervisor socket too slow, closing it");
                crate::metrics::SUPERVISOR_SOCKETS_DROPPED.with_label_values(&[]).inc();
                self.drop_too_slow("too slow; reconnect to resume from snapshot", ctx);
            }
            Err(mpsc::error::TrySendError::Closed(_)) => ctx.stop(),
        }
    }

    fn close_after_queued(&mut self, code: CloseCode, why: &str, ctx: &mut Context<Self>) {
        if self.closing {
            return;
        }
        self.push(
            Outbound::Close(Some(CloseReason {
                code,
                description: Some(why.into()),
            })),
            ctx,
        );
        self.closing = true;
        ctx.run_later(CLOSE_GRACE, |_, ctx| ctx.stop());
    }
}

impl socket::Closing for SupervisorSocket {
    fn close(&mut self, code: CloseCode, why: &str, ctx: &mut Context<Self>) {
        if !self.closing {
            tracing::info!(supervisor = %self.supervisor, why, "closing supervisor socket");
        }
        self.close_after_queued(code, why, ctx);
    }
}

impl Actor for SupervisorSocket {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        crate::metrics::SUPERVISOR_SOCKETS.inc();
        tracing::info!(supervisor = %self.supervisor, "supervisor socket connected");
        if let (Some(mut rx), Some(mut session)) = (self.out_rx.take(), self.session.clone()) {
            let writer = async move {
                while let Some(frame) = rx.recv().await {
                    let sent = match frame {
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
            ctx.spawn(writer.into_actor(self).map(|_, _, ctx| ctx.stop()));
        }
        if let Some(mut rx) = self.shutdown.take() {
            let notice = async move {
                let _ = rx.recv().await;
            };
            ctx.spawn(
                notice
                    .into_actor(self)
                    .map(|_, act, ctx| act.close(CloseCode::Away, "server shutting down", ctx)),
            );
        }
        ctx.run_interval(self.heartbeat, |act, ctx| {
            if act.last_heard.elapsed() > act.client_timeout {
                act.close(CloseCode::Policy, "heartbeat timeout", ctx);
            } else {
                act.push(Outbound::Ping, ctx);
            }
        });
    }

    fn stopped(&mut self, _ctx: &mut Self::Context) {
        crate::metrics::SUPERVISOR_SOCKETS.dec();
        tracing::info!(supervisor = %self.supervisor, "supervisor socket disconnected");
    }
}

impl StreamHandler<Result<AggregatedMessage, ProtocolError>> for SupervisorSocket {
    fn handle(&mut self, msg: Result<AggregatedMessage, ProtocolError>, ctx: &mut Self::Context) {
        self.last_heard = Instant::now();
        match msg {
            Ok(AggregatedMessage::Ping(b)) => self.push(Outbound::Pong(b), ctx),
            Ok(AggregatedMessage::Close(_)) => self.close(CloseCode::Normal, "bye", ctx),
            // A supervisor only listens.
            Ok(_) => {}
            Err(e) => {
                tracing::debug!(supervisor = %self.supervisor, error = %e, "supervisor socket protocol error");
                self.close(CloseCode::Protocol, "protocol error", ctx);
            }
        }
    }

    fn finished(&mut self, ctx: &mut Self::Context) {
        self.close(CloseCode::Normal, "bye", ctx);
    }
}

impl StreamHandler<HubBatch> for SupervisorSocket {
    fn handle(&mut self, msg: HubBatch, ctx: &mut Self::Context) {
        // Nothing reaches a credential that no longer works.
        if let Some(end) = self.watch.ended(auth::now_ms) {
            return socket::ended(self, end, ctx);
        }
        self.push(Outbound::Batch(msg.0), ctx);
    }

    /// The hub let go of this socket (it fell behind, or the engine rebuilt itself).
    fn finished(&mut self, ctx: &mut Self::Context) {
        self.drop_too_slow("event stream ended; reconnect to resume from snapshot", ctx);
    }
}
