//! The agent desktop WebSocket, `GET /api/v1/agents/me/ws?token=`.
//!
//! Each connection is one [`Desktop`] actor that owns its `actix_ws::Session`. It is fed by
//! two streams: the frames the desktop sends, and the agent's events from
//! [`Engine::subscribe`]. `hello` (the agent's full state, taken in the same step as the
//! subscription so no event falls between them) is always the first frame.
//!
//! # Guarantees
//! - **The engine is never blocked by a desktop.** The engine drops a subscriber whose
//!   event buffer is full; the desktop's outbound frames go through a bounded queue here,
//!   and a desktop that lets either overflow is closed with code 1013 ("try again") and a
//!   reason. Since `hello` carries the full state, reconnecting resumes it.
//! - **Commands of one desktop run in the order sent**, one at a time, each answered by a
//!   `reply` with the command's `request_id` (which may come before or after the events
//!   the command caused).
//! - **Dead desktops go away**: a ping every `server.ws_heartbeat_ms` (5 s); a desktop
//!   silent for `server.ws_client_timeout_ms` (20 s) is closed.
//! - **A desktop ends with its credential** (1008 `credential_revoked` or
//!   `session_expired`), and each command re-checks the credential before it runs.
//!
//! The writer, heartbeat, shutdown and close are the socket pump every socket shares
//! ([`super::socket::Pump`]).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use actix::prelude::*;
use actix_web::{web, HttpRequest, HttpResponse};
use actix_ws::{AggregatedMessage, CloseCode, ProtocolError};
use serde::{Deserialize, Serialize};
use tracing::Instrument;
use utoipa::{IntoParams, ToSchema};

use super::auth;
use super::dto::*;
use super::error::{ApiError, ErrorBody, ErrorDetail};
use super::socket::{self, Closing, Outbound, Pump, SocketSlots};
use super::AppState;
use crate::core::{AgentEvent, AgentId, Conversation, Detail, Offer, Principal};
use crate::engine::{Command, Engine, EngineError};
use crate::protocol::AgentDetail;

/// Frames waiting to be written to one desktop before it counts as too slow.
pub const OUTBOUND_BUFFER: usize = 256;
/// Commands of one desktop waiting for their turn (one runs at a time). A desktop that
/// sends more without waiting for replies gets `reply` with `too_many_commands` for each
/// command over the bound, which is not run: a flooding desktop holds a bounded amount of
/// memory and its commands reach the engine no faster than they are answered.
pub const MAX_PENDING_COMMANDS: usize = 64;
/// At most one log line per desktop this often about commands refused over the bound.
const REFUSAL_LOG_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

// ----- the protocol -----

/// A frame from the server to a desktop. Every frame is one JSON object with a `type`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerEvent {
    /// First frame of every connection: the agent's full state, and what a desktop needs
    /// from the engine's rules to show it (docs/API-NOTES.md).
    Hello {
        agent: AgentDetailDto,
        /// The agent's offers (`agent.offers`) with exactly the fields an `offer` frame
        /// carries, so a desktop shows an offer from `hello` and one from `offer` alike and
        /// never derives one shape from the other.
        offers: Vec<OfferEvent>,
        /// The shortest new password the engine accepts, in characters: the desktop's
        /// password form says it and checks it before sending. The engine's own check
        /// ([`super::password::check_new`]) stays the authority.
        password_min_chars: usize,
    },
    /// The agent's presence changed (`reason` is set when the engine changed it, e.g.
    /// `offer_expired`).
    StateChanged {
        state: AgentState,
        idle_code: Option<String>,
        state_since: chrono::DateTime<chrono::Utc>,
        reason: Option<String>,
    },
    /// A conversation is offered to the agent.
    Offer(OfferEvent),
    /// An offer ended without being accepted by this agent: `expired`, `customer_left`, or
    /// `conversation_ended` for a conference offer whose conversation ended. ../shared/API.md's
    /// `accepted_elsewhere` is never sent: an offer goes to one agent at a time
    /// (docs/API-NOTES.md).
    OfferWithdrawn { conversation_id: String, reason: String },
    /// The whole conversation, sent on accept.
    Conversation { conversation: Box<ConversationDto> },
    /// A new transcript entry in a conversation the agent is in.
    Message {
        conversation_id: String,
        message: MessageDto,
    },
    /// An agent joined a conversation (conference guest).
    ParticipantJoined { conversation_id: String, agent: String },
    /// An agent left a conversation (guest exit).
    ParticipantLeft { conversation_id: String, agent: String },
    /// Sent to the owner when its conference invitation expired.
    ConferenceNotAccepted { conversation_id: String, agent: String },
    /// A conversation the agent was in ended.
    ConversationEnded { conversation_id: String, reason: String },
    /// The agent owes a wrap-up for this conversation; `reasons` is its tenant's list in force.
    WrapupRequired {
        conversation_id: String,
        reasons: Vec<CodeDto>,
    },
    /// The customer types (`on: true`, shown until `until`) or stopped (issue 26 item 8).
    CustomerTyping {
        conversation_id: String,
        on: bool,
        until: Option<chrono::DateTime<chrono::Utc>>,
    },
    /// The delivery state of an agent or system message to a Messenger customer changed.
    MessageStatus {
        conversation_id: String,
        seq: u64,
        delivery: DeliveryDto,
        delivery_error: Option<String>,
    },
    /// The answer to a desktop command.
    Reply {
        request_id: Option<String>,
        ok: bool,
        error: Option<ErrorDetail>,
    },
}

/// The fields of an `offer` frame.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct OfferEvent {
    pub conversation_id: String,
    pub kind: OfferKindDto,
    pub queue: String,
    pub queue_name: String,
    pub source_page: String,
    pub customer: CustomerDto,
    /// The customer's first message.
    pub text: String,
    /// When the conversation entered its queue: the customer's total wait.
    pub received_at: chrono::DateTime<chrono::Utc>,
    /// When this agent received the offer: the popover's timer starts here.
    pub offered_at: chrono::DateTime<chrono::Utc>,
    pub expires_at: chrono::DateTime<chrono::Utc>,
    /// The agent that transferred or invited (transfer and conference offers).
    pub from_agent: Option<String>,
    /// The note of the transfer or conference request, for this agent (issue 26 item 5).
    pub note: Option<String>,
}

impl OfferEvent {
    /// The `offer` frame of `offer`, made of conversation `c`.
    pub fn new(c: &Conversation, offer: &Offer) -> Self {
        OfferEvent {
            conversation_id: c.id.clone(),
            kind: offer.kind.into(),
            queue: c.queue.clone(),
            queue_name: c.queue_name.clone(),
            source_page: c.source_page.clone(),
            customer: (&c.customer).into(),
            text: c.first_text().to_string(),
            received_at: time(c.received_at),
            offered_at: time(offer.offered_at),
            expires_at: time(offer.expires_at),
            from_agent: offer.from_agent.clone(),
            note: c.handoff_note.clone(),
        }
    }
}

impl ServerEvent {
    /// The `hello` frame of an agent's full state.
    pub fn hello(detail: &AgentDetail) -> Self {
        ServerEvent::Hello {
            agent: AgentDetailDto::from(detail),
            offers: detail
                .offers
                .iter()
                .filter_map(|c| c.offer.as_ref().map(|o| OfferEvent::new(c, o)))
                .collect(),
            password_min_chars: super::password::MIN_CHARS,
        }
    }
}

impl From<&AgentEvent> for ServerEvent {
    fn from(e: &AgentEvent) -> Self {
        match e {
            AgentEvent::StateChanged {
                state,
                idle_code,
                state_since,
                reason,
            } => ServerEvent::StateChanged {
                state: (*state).into(),
                idle_code: idle_code.clone(),
                state_since: time(*state_since),
                reason: reason.map(str::to_string),
            },
            AgentEvent::Offer { conversation, offer } => ServerEvent::Offer(OfferEvent::new(conversation, offer)),
            AgentEvent::OfferWithdrawn { conversation, reason } => ServerEvent::OfferWithdrawn {
                conversation_id: conversation.clone(),
                reason: reason.as_str().to_string(),
            },
            AgentEvent::Conversation(c) => ServerEvent::Conversation {
                conversation: Box::new(c.as_ref().into()),
            },
            AgentEvent::Message { conversation, message } => ServerEvent::Message {
                conversation_id: conversation.clone(),
                message: message.into(),
            },
            AgentEvent::ParticipantJoined { conversation, agent } => ServerEvent::ParticipantJoined {
                conversation_id: conversation.clone(),
                agent: agent.clone(),
            },
            AgentEvent::ParticipantLeft { conversation, agent } => ServerEvent::ParticipantLeft {
                conversation_id: conversation.clone(),
                agent: agent.clone(),
            },
            AgentEvent::ConferenceNotAccepted { conversation, agent } => ServerEvent::ConferenceNotAccepted {
                conversation_id: conversation.clone(),
                agent: agent.clone(),
            },
            AgentEvent::ConversationEnded { conversation, reason } => ServerEvent::ConversationEnded {
                conversation_id: conversation.clone(),
                reason: reason.clone(),
            },
            AgentEvent::WrapupRequired { conversation, reasons } => ServerEvent::WrapupRequired {
                conversation_id: conversation.clone(),
                reasons: reasons.iter().map(CodeDto::from).collect(),
            },
            AgentEvent::CustomerTyping {
                conversation,
                on,
                until,
            } => ServerEvent::CustomerTyping {
                conversation_id: conversation.clone(),
                on: *on,
                until: until.map(time),
            },
            AgentEvent::MessageStatus {
                conversation,
                seq,
                delivery,
                delivery_error,
            } => ServerEvent::MessageStatus {
                conversation_id: conversation.clone(),
                seq: *seq,
                delivery: (*delivery).into(),
                delivery_error: delivery_error.clone(),
            },
        }
    }
}

/// A frame from a desktop: a command with the `request_id` its `reply` echoes.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DesktopRequest {
    /// Chosen by the desktop; echoed by the `reply`.
    pub request_id: Option<String>,
    #[serde(flatten)]
    pub command: DesktopCommand,
}

/// The actions a desktop can take: the same as REST, with the REST body's fields.
///
/// The server only reads these; the load harness (`load::http`) writes them, leaving out
/// absent optional fields as a desktop would.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum DesktopCommand {
    SetState {
        state: AgentState,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        idle_code: Option<String>,
    },
    Accept {
        conversation_id: String,
    },
    Send {
        conversation_id: String,
        text: String,
    },
    /// An internal note, as `POST /api/v1/conversations/{id}/notes`.
    Note {
        conversation_id: String,
        text: String,
    },
    /// Exactly one of `agent` and `queue`; `note` as REST's.
    Transfer {
        conversation_id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        agent: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        queue: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        note: Option<String>,
    },
    Conference {
        conversation_id: String,
        agent: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        note: Option<String>,
    },
    ExitConference {
        conversation_id: String,
    },
    EndConference {
        conversation_id: String,
    },
    End {
        conversation_id: String,
    },
    Wrapup {
        conversation_id: String,
        reason: String,
    },
    /// The agent types (`on: true`) or stopped: shown to a Messenger customer as
    /// `typing_on` / `typing_off`, at most once every few seconds per conversation.
    Typing {
        conversation_id: String,
        on: bool,
    },
    /// The agent has seen the customer's messages: `mark_seen`, once per new message.
    Seen {
        conversation_id: String,
    },
}

impl DesktopCommand {
    /// The engine command for `agent`, or a 400-style refusal.
    fn into_command(self, agent: &str) -> Result<Command, ApiError> {
        let agent: AgentId = agent.into();
        Ok(match self {
            DesktopCommand::SetState { state, idle_code } => Command::SetState {
                agent,
                state: state.into(),
                idle_code,
            },
            DesktopCommand::Accept { conversation_id } => Command::Accept {
                agent,
                conversation: conversation_id,
            },
            DesktopCommand::Send { conversation_id, text } => Command::Send {
                agent,
                conversation: conversation_id,
                text,
            },
            DesktopCommand::Note { conversation_id, text } => Command::AddNote {
                agent,
                conversation: conversation_id,
                text,
            },
            DesktopCommand::Transfer {
                conversation_id,
                agent: target,
                queue,
                note,
            } => Command::transfer(agent, conversation_id, target, queue, note)?,
            DesktopCommand::Conference {
                conversation_id,
                agent: target,
                note,
            } => Command::Conference {
                agent,
                conversation: conversation_id,
                target,
                note,
            },
            DesktopCommand::ExitConference { conversation_id } => Command::ExitConference {
                agent,
                conversation: conversation_id,
            },
            DesktopCommand::EndConference { conversation_id } => Command::EndConference {
                agent,
                conversation: conversation_id,
            },
            DesktopCommand::End { conversation_id } => Command::End {
                agent,
                conversation: conversation_id,
            },
            DesktopCommand::Wrapup {
                conversation_id,
                reason,
            } => Command::Wrapup {
                agent,
                conversation: conversation_id,
                reason,
            },
            DesktopCommand::Typing { conversation_id, on } => {
                Command::Messenger(crate::core::messenger::MessengerCommand::SenderAction {
                    agent,
                    conversation: conversation_id,
                    typing: Some(on),
                })
            }
            DesktopCommand::Seen { conversation_id } => {
                Command::Messenger(crate::core::messenger::MessengerCommand::SenderAction {
                    agent,
                    conversation: conversation_id,
                    typing: None,
                })
            }
        })
    }

    fn conversation_id(&self) -> Option<&str> {
        match self {
            DesktopCommand::SetState { .. } => None,
            DesktopCommand::Accept { conversation_id }
            | DesktopCommand::Send { conversation_id, .. }
            | DesktopCommand::Note { conversation_id, .. }
            | DesktopCommand::Transfer { conversation_id, .. }
            | DesktopCommand::Conference { conversation_id, .. }
            | DesktopCommand::ExitConference { conversation_id }
            | DesktopCommand::EndConference { conversation_id }
            | DesktopCommand::End { conversation_id }
            | DesktopCommand::Wrapup { conversation_id, .. }
            | DesktopCommand::Typing { conversation_id, .. }
            | DesktopCommand::Seen { conversation_id } => Some(conversation_id),
        }
    }
}

// ----- the endpoint -----

/// Query of the WebSocket endpoint.
#[derive(Debug, Clone, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct WsQuery {
    /// The agent token (browsers cannot set headers on a WebSocket). A bearer header is
    /// accepted too.
    pub token: Option<String>,
}

/// The agent desktop WebSocket. After the upgrade the server sends `hello`, then every
/// event of the agent ([`ServerEvent`]); the desktop sends commands ([`DesktopRequest`]),
/// each answered by a `reply`.
#[utoipa::path(get, path = "/api/v1/agents/me/ws", tag = "desktop", params(WsQuery),
    responses(
        (status = 101, description = "Switching to the WebSocket protocol; frames are `ServerEvent` (server to desktop) and `DesktopRequest` (desktop to server)"),
        (status = 400, description = "Not a WebSocket handshake", body = ErrorBody),
        (status = 401, description = "No or wrong token", body = ErrorBody),
        (status = 403, description = "Not an agent token", body = ErrorBody),
    ))]
pub async fn desktop(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
    query: web::Query<WsQuery>,
) -> Result<HttpResponse, ApiError> {
    let token = query.token.as_deref().or_else(|| auth::bearer(&req));
    let authed = auth::authenticate_in(&req, &state, token)?;
    let state = auth::Tenanted::of(&state, &authed)?;
    let agent = authed.caller.agent()?.to_string();
    let watch = socket::watch(&state, token.unwrap_or_default())?;
    let (response, session, stream) =
        actix_ws::handle(&req, payload).map_err(|e| ApiError::bad_request("not_a_websocket", e.to_string()))?;
    // Agent ids are unique within a tenant: the cap counts each tenant's agent apart.
    let slot_key = crate::core::tenant::scoped(authed.tenant.as_deref(), &agent);
    let Some(slot) = SocketSlots::take(&state.desktops, &slot_key) else {
        let max = state.desktops.max;
        crate::metrics::DESKTOPS_REFUSED.with_label_values(&[]).inc();
        tracing::warn!(agent = %agent, max, "desktop refused: the agent has the most desktops allowed");
        socket::refuse(
            session,
            format!("agent {agent} already has {max} desktops connected (server.max_desktops_per_agent)"),
        );
        return Ok(response);
    };
    let (hello, events) = state.engine.subscribe(&agent).await?;
    let limit = state.body_limit;
    let stream = stream
        .max_frame_size(limit)
        .aggregate_continuations()
        .max_continuation_size(limit);
    let hello = ServerEvent::hello(&hello);
    Desktop::create(move |ctx| {
        let who = format!("agent {agent}");
        let pump = Pump::new(who, session, &state, OUTBOUND_BUFFER, (watch, slot), || {});
        let mut d = Desktop {
            agent,
            engine: state.engine.clone(),
            pump,
            pending: VecDeque::new(),
            busy: false,
            refused: 0,
            refused_logged: None,
        };
        d.send(&hello, ctx);
        ctx.add_stream(stream);
        ctx.add_stream(futures_util::stream::unfold(events, |mut rx| async move {
            rx.recv().await.map(|e| (EngineEvent(e), rx))
        }));
        d
    });
    Ok(response)
}

// ----- the session actor -----

/// An agent event from the engine.
#[derive(Message)]
#[rtype(result = "()")]
struct EngineEvent(Arc<AgentEvent>);

/// A desktop command waiting for its turn.
struct Pending {
    request_id: Option<String>,
    command: DesktopCommand,
}

/// One connected desktop. See the module docs.
pub struct Desktop {
    /// The agent whose desktop this is.
    agent: AgentId,
    engine: Engine,
    /// The socket's plumbing: writer, heartbeat, shutdown, close, credential, cap.
    pump: Pump,
    /// Commands not yet run, in the order received; one runs at a time.
    pending: VecDeque<Pending>,
    busy: bool,
    /// Commands refused over [`MAX_PENDING_COMMANDS`] since the last log line about them,
    /// and when that line was written.
    refused: u64,
    refused_logged: Option<Instant>,
}

impl socket::Pumped for Desktop {
    fn pump(&mut self) -> &mut Pump {
        &mut self.pump
    }
}

impl Desktop {
    fn send(&mut self, event: &ServerEvent, ctx: &mut Context<Self>) {
        match serde_json::to_string(event) {
            Ok(json) => socket::push(self, Outbound::Text(json.into()), ctx),
            Err(e) => tracing::error!(error = %e, "cannot encode a desktop event"),
        }
    }

    fn reply(&mut self, request_id: Option<String>, result: Result<(), ApiError>, ctx: &mut Context<Self>) {
        let (ok, error) = match result {
            Ok(()) => (true, None),
            Err(e) => (false, Some(e.detail())),
        };
        self.send(&ServerEvent::Reply { request_id, ok, error }, ctx);
    }

    /// Runs the next pending command, if none is running.
    fn run_next(&mut self, ctx: &mut Context<Self>) {
        if self.busy || self.pump.closing() {
            return;
        }
        let Some(Pending { request_id, command }) = self.pending.pop_front() else {
            return;
        };
        // No command runs for a credential that no longer works (../shared/API.md).
        if let Err(end) = socket::still_valid(&self.engine, self.pump.watch(), &Principal::Agent(self.agent.clone())) {
            self.pending.clear();
            return socket::ended(self, end, ctx);
        }
        let span = tracing::info_span!(
            "ws_command",
            agent = %self.agent,
            conversation = command.conversation_id().unwrap_or(""),
            request_id = request_id.as_deref().unwrap_or(""),
            command = tracing::field::Empty,
        );
        let cmd = match command.into_command(&self.agent) {
            Ok(c) => c,
            Err(e) => {
                self.reply(request_id, Err(e), ctx);
                return self.run_next(ctx);
            }
        };
        span.record("command", cmd.name());
        self.busy = true;
        let engine = self.engine.clone();
        let fut = async move {
            let started = Instant::now();
            // The desktop learns of the result from its events: the answer needs no record.
            let r = engine.exec_for(cmd, Detail::Brief).await;
            // The access log of desktop commands: never the text a command carries.
            let duration_ms = started.elapsed().as_secs_f64() * 1000.0;
            match &r {
                Ok(_) => tracing::info!(ok = true, duration_ms, "desktop command"),
                Err(e) => tracing::info!(ok = false, code = e.code(), duration_ms, "desktop command"),
            }
            r
        }
        .instrument(span);
        ctx.spawn(fut.into_actor(self).map(move |res: Result<_, EngineError>, act, ctx| {
            act.busy = false;
            act.reply(request_id, res.map(|_| ()).map_err(ApiError::from), ctx);
            act.run_next(ctx);
        }));
    }

    fn on_text(&mut self, text: &str, ctx: &mut Context<Self>) {
        match serde_json::from_str::<DesktopRequest>(text) {
            Ok(r) if self.pending.len() >= MAX_PENDING_COMMANDS => {
                crate::metrics::DESKTOP_COMMANDS_REFUSED.with_label_values(&[]).inc();
                self.refused += 1;
                // Logged at a bounded rate: a flooding desktop must not flood the log.
                let due = self.refused_logged.map_or(true, |at| at.elapsed() >= REFUSAL_LOG_EVERY);
                if due {
                    tracing::warn!(
                        agent = %self.agent,
                        refused = self.refused,
                        "desktop sends commands faster than they are answered (count since the last such line)"
                    );
                    self.refused = 0;
                    self.refused_logged = Some(Instant::now());
                }
                self.reply(
                    r.request_id,
                    Err(ApiError::new(
                        actix_web::http::StatusCode::TOO_MANY_REQUESTS,
                        "too_many_commands",
                        format!("more than {MAX_PENDING_COMMANDS} commands are waiting for their replies; wait for replies before sending more"),
                    )),
                    ctx,
                );
            }
            Ok(r) => {
                self.pending.push_back(Pending {
                    request_id: r.request_id,
                    command: r.command,
                });
                self.run_next(ctx);
            }
            Err(e) => {
                // Echo the request_id if the frame is an object that has one.
                let request_id = serde_json::from_str::<serde_json::Value>(text)
                    .ok()
                    .and_then(|v| v.get("request_id")?.as_str().map(str::to_string));
                self.reply(
                    request_id,
                    Err(ApiError::bad_request("invalid_command", e.to_string())),
                    ctx,
                );
            }
        }
    }
}

impl Actor for Desktop {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        crate::metrics::DESKTOPS.inc();
        tracing::info!(agent = %self.agent, "desktop connected");
        socket::start(self, ctx);
    }

    fn stopped(&mut self, _ctx: &mut Self::Context) {
        crate::metrics::DESKTOPS.dec();
        tracing::info!(agent = %self.agent, "desktop disconnected");
    }
}

impl StreamHandler<Result<AggregatedMessage, ProtocolError>> for Desktop {
    fn handle(&mut self, msg: Result<AggregatedMessage, ProtocolError>, ctx: &mut Self::Context) {
        match socket::received(self, msg, ctx) {
            Some(AggregatedMessage::Text(t)) => self.on_text(&t, ctx),
            Some(AggregatedMessage::Binary(_)) => self.reply(
                None,
                Err(ApiError::bad_request(
                    "invalid_command",
                    "commands are JSON text frames",
                )),
                ctx,
            ),
            _ => {}
        }
    }

    /// The desktop's side ended: answer with a close frame if none was sent yet.
    fn finished(&mut self, ctx: &mut Self::Context) {
        self.close(CloseCode::Normal, "bye", ctx);
    }
}

impl StreamHandler<EngineEvent> for Desktop {
    /// Every event goes out unless the desktop's credential ended (the pump checks).
    fn handle(&mut self, msg: EngineEvent, ctx: &mut Self::Context) {
        self.send(&ServerEvent::from(msg.0.as_ref()), ctx);
    }

    /// The engine dropped this subscriber (its buffer overflowed) or stopped.
    fn finished(&mut self, ctx: &mut Self::Context) {
        tracing::warn!(agent = %self.agent, "engine ended the desktop's event stream");
        self.close(CloseCode::Again, "event stream ended; reconnect to resume", ctx);
    }
}
