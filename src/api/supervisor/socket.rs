//! The supervisor's live socket, `GET /api/v1/supervisors/me/ws?token=`: a `snapshot`,
//! then `queue`, `agent` and `conversation` events as the [`super::hub`] publishes them,
//! a tick's events together in `batch` frames.
//!
//! Each connection is one [`SupervisorSocket`] actor with the socket pump a desktop has
//! ([`crate::api::socket::Pump`]): the frames go through a bounded queue to one writer, a
//! socket that lets it (or the hub's channel) fill is closed with 1013 and resumes from
//! `snapshot` on reconnecting, a ping every `server.ws_heartbeat_ms` and a close after
//! `server.ws_client_timeout_ms` of silence; it ends with its credential. A supervisor
//! only listens: a text frame from it is ignored. At most `supervisor.max_sockets` are
//! open at once.

use actix::prelude::*;
use actix_web::{web, HttpRequest, HttpResponse};
use actix_ws::{AggregatedMessage, CloseCode, ProtocolError};
use tokio::sync::mpsc;

use super::hub::{Batch, Join};
use crate::api::auth;
use crate::api::error::{ApiError, ErrorBody};
use crate::api::socket::{self, Closing, Outbound, Pump, SocketSlots};
use crate::api::ws::WsQuery;
use crate::api::AppState;

/// The supervisor's live socket. The server sends `snapshot`
/// (`{"type":"snapshot","queues":[..],"agents":[..],"conversations":[..]}`) first, then
/// `{"type":"queue","queue":{..}}`, `{"type":"agent","agent":{..}}` and
/// `{"type":"conversation","conversation":{..}}` (without the transcript) as they change,
/// several of them in one `{"type":"batch","events":[..]}` frame when a tick has several.
#[utoipa::path(get, path = "/api/v1/supervisors/me/ws", tag = "supervisors", params(WsQuery),
    responses(
        (status = 101, description = "Switching to the WebSocket protocol; frames are `snapshot`, `queue`, `agent` and `conversation` events, or `batch` frames of them"),
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
    let authed = auth::authenticate_in(&req, &state, token)?;
    let state = auth::Tenanted::of(&state, &authed)?;
    let supervisor = authed.caller.supervisor()?.to_string();
    let watch = socket::watch(&state, token.unwrap_or_default())?;
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
    SupervisorSocket::create(move |ctx| {
        ctx.add_stream(stream);
        ctx.add_stream(futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|b| (HubBatch(b), rx))
        }));
        let who = format!("supervisor {supervisor}");
        let too_slow = || crate::metrics::SUPERVISOR_SOCKETS_DROPPED.with_label_values(&[]).inc();
        let buffer = state.supervisor.socket_buffer;
        SupervisorSocket {
            pump: Pump::new(who, session, &state, buffer, (watch, slot), too_slow),
            supervisor,
        }
    });
    Ok(response)
}

/// A batch of frames from the hub.
#[derive(Message)]
#[rtype(result = "()")]
struct HubBatch(Batch);

/// One connected supervisor. See the module docs.
pub struct SupervisorSocket {
    supervisor: String,
    /// The socket's plumbing: writer, heartbeat, shutdown, close, credential, cap.
    pump: Pump,
}

impl socket::Pumped for SupervisorSocket {
    fn pump(&mut self) -> &mut Pump {
        &mut self.pump
    }
}

impl Actor for SupervisorSocket {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        crate::metrics::SUPERVISOR_SOCKETS.inc();
        tracing::info!(supervisor = %self.supervisor, "supervisor socket connected");
        socket::start(self, ctx);
    }

    fn stopped(&mut self, _ctx: &mut Self::Context) {
        crate::metrics::SUPERVISOR_SOCKETS.dec();
        tracing::info!(supervisor = %self.supervisor, "supervisor socket disconnected");
    }
}

impl StreamHandler<Result<AggregatedMessage, ProtocolError>> for SupervisorSocket {
    /// A supervisor only listens: what it sends beyond pings and closes is ignored.
    fn handle(&mut self, msg: Result<AggregatedMessage, ProtocolError>, ctx: &mut Self::Context) {
        let _ = socket::received(self, msg, ctx);
    }

    fn finished(&mut self, ctx: &mut Self::Context) {
        self.close(CloseCode::Normal, "bye", ctx);
    }
}

impl StreamHandler<HubBatch> for SupervisorSocket {
    /// Every batch goes out unless the socket's credential ended (the pump checks).
    fn handle(&mut self, msg: HubBatch, ctx: &mut Self::Context) {
        socket::push(self, Outbound::Batch(msg.0), ctx);
    }

    /// The hub let go of this socket (it fell behind, or the engine rebuilt itself).
    fn finished(&mut self, ctx: &mut Self::Context) {
        crate::metrics::SUPERVISOR_SOCKETS_DROPPED.with_label_values(&[]).inc();
        socket::drop_now(self, "event stream ended; reconnect to resume from snapshot", ctx);
    }
}
