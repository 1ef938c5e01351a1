//! The HTTP/WebSocket mode: [`Http`] implements [`Backend`] over a running Switchboard's
//! REST API and agent desktop WebSockets, the way a deployment's clients use it.
//!
//! - Setup (queues, entry points, agents) goes through REST with the admin token; each
//!   agent's token comes back from its creation.
//! - Each agent has one desktop: a WebSocket (`/api/v1/agents/me/ws?token=`) read by one
//!   task and written by another. Agents act through desktop commands (`request_id`,
//!   answered by `reply`); customers (the admin token acting as the customer) through
//!   `POST /api/v1/conversations` and `POST /api/v1/conversations/{id}/messages`.
//! - Every id the harness chooses is sent with a per-run prefix (`--id-prefix`), so runs
//!   can follow each other against the same server; the scenario never sees the prefix.
//! - Every body and frame, both ways, is one of the API's own wire types (`api::dto`,
//!   `api::ws`) through serde: the harness speaks exactly the JSON the server reads and
//!   writes, with no second copy of the protocol to drift.
//!
//! # Facts from outside
//! The checks run on [`Fact`]s derived from what the desktops see: each agent's stream is
//! in the engine's order for that agent, but streams of different agents may interleave
//! differently from the engine's decisions. [`HttpFacts`] therefore holds back an offer of
//! a conversation still offered to another agent until that agent's desktop shows the
//! earlier offer ending, for at most [`REORDER_GRACE`]; past that, the checker sees it as
//! is and reports it. A wrap-up counts as submitted when its `reply` is `ok`, or earlier
//! when the agent's next offer overtakes that reply.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, HashSet, VecDeque};
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use awc::ws::{Frame, Message};
use futures_util::{SinkExt, StreamExt};
use serde::Serialize;
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};
use tokio::sync::oneshot;

use super::backend::{Backend, Desk, DeskEvent, Fact, Facts, Failure, Setup};
use crate::api::dto::{
    AgentCreatedDto, AgentState, AuthorKindDto, ConversationDto, ConversationStateDto, CreateAgent, CreateConversation,
    CreateEntryPoint, CreateQueue, CustomerDto, SendText, SetState, StepDto,
};
use crate::api::error::ErrorBody;
use crate::api::ws::{DesktopCommand, DesktopRequest, ServerEvent};
use crate::core::{Author, AuthorKind, Command, OfferKind, Presence, Reply, WithdrawReason};

/// How long an offer that looks like a double offer is held back, waiting for the other
/// agent's desktop to show the earlier offer ending.
pub const REORDER_GRACE: Duration = Duration::from_secs(2);
/// How long a request or a desktop command may take before it counts as failed.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// Setup requests in flight at once.
const SETUP_PARALLEL: usize = 32;

/// Where and how to reach the server.
#[derive(Debug, Clone)]
pub struct Target {
    /// `http://host:port`, no trailing slash.
    pub base: String,
    pub admin_token: String,
    /// Prefix of every id the harness chooses.
    pub prefix: String,
    /// Most REST connections open at once.
    pub connections: usize,
}

/// One agent's desktop connection.
struct Conn {
    out: UnboundedSender<Message>,
    /// Commands waiting for their `reply`, by request id.
    replies: RefCell<HashMap<u64, oneshot::Sender<Result<(), Failure>>>>,
    /// `send` commands waiting for the echo of their message, by conversation.
    echoes: RefCell<HashMap<String, oneshot::Sender<u64>>>,
    /// Wrap-ups sent and not yet counted as submitted: request id → conversation.
    wrapups: RefCell<HashMap<u64, String>>,
    /// Conversations offered to this desktop's agent as a transfer, not yet answered.
    transfers: RefCell<HashSet<String>>,
    /// Commands sent and not yet answered, at most the server's bound per desktop
    /// ([`crate::api::ws::MAX_PENDING_COMMANDS`]): the harness pipelines within it, so
    /// that a desktop holding a hundred conversations is never refused.
    window: tokio::sync::Semaphore,
}

struct Inner {
    target: Target,
    /// REST client.
    rest: awc::Client,
    /// WebSocket client (no connection limit: one per desktop).
    ws: awc::Client,
    auth: String,
    tokens: RefCell<HashMap<String, String>>,
    conns: RefCell<HashMap<String, Rc<Conn>>>,
    next_request: Cell<u64>,
    facts_tx: UnboundedSender<Fact>,
    facts_rx: RefCell<Option<UnboundedReceiver<Fact>>>,
    /// Conversations whose `Arrived` fact was sent (once each).
    arrived: RefCell<HashSet<String>>,
    /// Routing steps were set up: new offers also make a [`Fact::Routed`].
    routed: Cell<bool>,
}

/// What the supervisors of `--supervisors` received. Their sockets are read on a thread
/// of their own, so that reading hundreds of thousands of frames a second does not delay
/// the harness's own desktops (and so its arrival → offer figures).
#[derive(Debug, Default)]
pub struct Watching {
    pub frames: AtomicU64,
    /// Events, counting each event of a `batch` frame.
    pub events: AtomicU64,
    pub closed: AtomicU64,
}

/// How many events a supervisor frame carries: one, or each of a `batch` frame's events.
/// Counted without parsing (the reader shares the machine with the server it measures):
/// every event is an object that opens with `{"type":"`, and the objects inside events
/// (agents, queues, conversations without transcripts) have no `type` of their own.
fn events_in(frame: &[u8]) -> u64 {
    const BATCH: &[u8] = br#"{"type":"batch""#;
    if !frame.starts_with(BATCH) {
        return 1;
    }
    memchr::memmem::find_iter(&frame[BATCH.len()..], br#"{"type":""#).count() as u64
}

/// The HTTP/WebSocket backend; clones share one set of connections.
#[derive(Clone)]
pub struct Http {
    inner: Rc<Inner>,
}

/// awc's TCP connector with `TCP_NODELAY` set on each connection: the harness writes
/// small frames and requests, which Nagle's algorithm would otherwise hold back while an
/// earlier one waits for the server's delayed ACK.
#[derive(Clone)]
struct NoDelay<S>(S);

type ConnectInfo = actix_tls::connect::ConnectInfo<awc::http::Uri>;
type TcpConnection = actix_tls::connect::Connection<awc::http::Uri, tokio::net::TcpStream>;

impl<S> actix_service::Service<ConnectInfo> for NoDelay<S>
where
    S: actix_service::Service<ConnectInfo, Response = TcpConnection, Error = actix_tls::connect::ConnectError>,
    S::Future: 'static,
{
    type Response = TcpConnection;
    type Error = actix_tls::connect::ConnectError;
    type Future = futures_util::future::LocalBoxFuture<'static, Result<TcpConnection, Self::Error>>;

    fn poll_ready(&self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&self, req: ConnectInfo) -> Self::Future {
        let fut = self.0.call(req);
        Box::pin(async move {
            let conn = fut.await?;
            let _ = conn.io_ref().set_nodelay(true);
            Ok(conn)
        })
    }
}

/// An awc client with `TCP_NODELAY` and at most `limit` connections (0: no limit).
pub(crate) fn client(limit: usize) -> awc::Client {
    let tcp = actix_tls::connect::ConnectorService::default();
    awc::Client::builder()
        .connector(awc::Connector::new().connector(NoDelay(tcp)).limit(limit))
        .timeout(CALL_TIMEOUT)
        .finish()
}

impl Http {
    /// A backend for the server at `target` (no request is made yet).
    pub fn new(target: Target) -> Http {
        let rest = client(target.connections.max(1));
        let ws = client(0);
        let (facts_tx, facts_rx) = unbounded_channel();
        Http {
            inner: Rc::new(Inner {
                auth: format!("Bearer {}", target.admin_token),
                target,
                rest,
                ws,
                tokens: RefCell::default(),
                conns: RefCell::default(),
                next_request: Cell::new(1),
                facts_tx,
                facts_rx: RefCell::new(Some(facts_rx)),
                arrived: RefCell::default(),
                routed: Cell::new(false),
            }),
        }
    }

    fn id(&self, id: &str) -> String {
        format!("{}{id}", self.inner.target.prefix)
    }

    /// A REST call; answers the body of a 2xx answer, else the error code.
    async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Vec<u8>>,
    ) -> Result<actix_web::web::Bytes, Failure> {
        let inner = &self.inner;
        let url = format!("{}{path}", inner.target.base);
        let mut req = match method {
            "POST" => inner.rest.post(url),
            "PUT" => inner.rest.put(url),
            _ => inner.rest.get(url),
        };
        req = match token {
            Some(t) => req.insert_header(("Authorization", format!("Bearer {t}"))),
            None => req.insert_header(("Authorization", inner.auth.as_str())),
        };
        let res = match body {
            Some(b) => {
                req.insert_header(("Content-Type", "application/json"))
                    .send_body(b)
                    .await
            }
            None => req.send().await,
        };
        let mut res = res.map_err(|e| Failure::new(format!("http: {e}")))?;
        let bytes = res
            .body()
            .limit(16 << 20)
            .await
            .map_err(|e| Failure::new(format!("http body: {e}")))?;
        if res.status().is_success() {
            Ok(bytes)
        } else {
            Err(match serde_json::from_slice::<ErrorBody>(&bytes) {
                Ok(e) => Failure::new(e.error.code),
                Err(_) => Failure::new(format!("http_{}", res.status().as_u16())),
            })
        }
    }

    /// An agent writes over its desktop socket; the answer is the message as the
    /// desktop's echo of it numbered it (the socket's `reply` carries no message).
    async fn send(&self, agent: &str, conversation: String, text: String) -> Result<Reply, Failure> {
        let conn = self.conn(agent)?;
        let (tx, rx) = oneshot::channel();
        conn.echoes.borrow_mut().insert(conversation.clone(), tx);
        let command = DesktopCommand::Send {
            conversation_id: conversation.clone(),
            text: text.clone(),
        };
        if let Err(f) = self.command(agent, command, None).await {
            conn.echoes.borrow_mut().remove(&conversation);
            return Err(f);
        }
        match tokio::time::timeout(CALL_TIMEOUT, rx).await {
            Ok(Ok(seq)) => {
                let author = Author {
                    kind: AuthorKind::Agent,
                    id: Some(agent.into()),
                    name: agent.into(),
                };
                Ok(Reply::Message(crate::core::Message::text(seq, author, &text, 0)))
            }
            _ => Err(Failure::new("echo_missing")),
        }
    }

    fn conn(&self, agent: &str) -> Result<Rc<Conn>, Failure> {
        self.inner
            .conns
            .borrow()
            .get(agent)
            .cloned()
            .ok_or_else(|| Failure::new("desktop_not_connected"))
    }

    /// Sends a desktop command with the next request id and waits for its `reply`.
    async fn command(&self, agent: &str, command: DesktopCommand, wrapup_of: Option<&str>) -> Result<(), Failure> {
        let conn = self.conn(agent)?;
        // Held until the reply comes (or the call gives up).
        let _turn = conn
            .window
            .acquire()
            .await
            .map_err(|_| Failure::new("desktop_disconnected"))?;
        let rid = self.inner.next_request.get();
        self.inner.next_request.set(rid + 1);
        let (tx, rx) = oneshot::channel();
        conn.replies.borrow_mut().insert(rid, tx);
        if let Some(c) = wrapup_of {
            conn.wrapups.borrow_mut().insert(rid, c.to_string());
        }
        let text = frame(rid, command)?;
        if conn.out.send(Message::Text(text.into())).is_err() {
            conn.replies.borrow_mut().remove(&rid);
            return Err(Failure::new("desktop_disconnected"));
        }
        match tokio::time::timeout(CALL_TIMEOUT, rx).await {
            Ok(Ok(r)) => r,
            Ok(Err(_)) => Err(Failure::new("desktop_disconnected")),
            Err(_) => {
                conn.replies.borrow_mut().remove(&rid);
                Err(Failure::new("reply_timeout"))
            }
        }
    }

    /// Creates a supervisor and connects `n` live sockets for it on a thread of their own,
    /// each read to the end on its own task (answering pings), counting what arrives.
    pub async fn watch_floor(&self, n: usize) -> Result<Arc<Watching>, Failure> {
        let id = self.id("supervisor");
        let body = serde_json::to_vec(&serde_json::json!({"id": id, "name": "Load supervisor"}))
            .map_err(|e| Failure::new(format!("json: {e}")))?;
        let created = self.call("POST", "/api/v1/supervisors", None, Some(body)).await?;
        let created: serde_json::Value =
            serde_json::from_slice(&created).map_err(|e| Failure::new(format!("json: {e}")))?;
        let token = created["token"].as_str().ok_or_else(|| Failure::new("no_token"))?;
        let watching = Arc::new(Watching::default());
        let url = format!(
            "{}/api/v1/supervisors/me/ws?token={token}",
            self.inner.target.base.replacen("http", "ws", 1)
        );
        let (ready_tx, ready_rx) = oneshot::channel::<Result<(), Failure>>();
        let w = watching.clone();
        std::thread::Builder::new()
            .name("supervisors".into())
            .spawn(move || {
                actix_rt::System::new().block_on(async move {
                    let client = awc::Client::builder().timeout(Duration::from_secs(30)).finish();
                    for _ in 0..n {
                        let framed = match client.ws(url.clone()).max_frame_size(256 << 20).connect().await {
                            Ok((_, framed)) => framed,
                            Err(e) => {
                                let _ = ready_tx.send(Err(Failure::new(format!("websocket: {e}"))));
                                return;
                            }
                        };
                        let w = w.clone();
                        actix_rt::spawn(async move {
                            let (mut sink, mut stream) = framed.split();
                            while let Some(Ok(frame)) = stream.next().await {
                                match frame {
                                    Frame::Text(t) => {
                                        w.frames.fetch_add(1, Ordering::Relaxed);
                                        w.events.fetch_add(events_in(&t), Ordering::Relaxed);
                                    }
                                    Frame::Ping(p) if sink.send(Message::Pong(p.clone())).await.is_err() => break,
                                    Frame::Close(_) => {
                                        w.closed.fetch_add(1, Ordering::Relaxed);
                                        break;
                                    }
                                    _ => {}
                                }
                            }
                        });
                    }
                    let _ = ready_tx.send(Ok(()));
                    // Read until the process ends.
                    std::future::pending::<()>().await;
                });
            })
            .map_err(|e| Failure::new(format!("thread: {e}")))?;
        ready_rx.await.map_err(|_| Failure::new("supervisor thread ended"))??;
        Ok(watching)
    }

    /// Logs every agent of the run out over REST; answers how many could not be.
    pub async fn cleanup(&self) -> usize {
        let tokens: Vec<String> = self.inner.tokens.borrow().values().cloned().collect();
        let failures: Vec<String> = futures_util::stream::iter(tokens)
            .map(|t| {
                let me = self.clone();
                async move { me.log_out(&t).await.err().map(|f| f.code) }
            })
            .buffer_unordered(SETUP_PARALLEL)
            .filter_map(std::future::ready)
            .collect()
            .await;
        if let Some(code) = failures.first() {
            eprintln!("switchboard-load: cleanup: a logout failed: {code}");
        }
        let failed = failures.len();
        // Closing the desktops ends their reader tasks.
        for conn in self.inner.conns.borrow_mut().drain().map(|(_, c)| c) {
            let _ = conn.out.send(Message::Close(None));
        }
        failed
    }

    /// Logs one agent out. Setting a state is idempotent, so a failed attempt (a pooled
    /// connection the server closed after its keep-alive, say) is tried again, a few
    /// times, before the failure counts.
    async fn log_out(&self, token: &str) -> Result<(), Failure> {
        let body = json(&SetState {
            state: AgentState::LoggedOut,
            idle_code: None,
        })?;
        let mut attempt = 0;
        loop {
            match self
                .call("PUT", "/api/v1/agents/me/state", Some(token), Some(body.clone()))
                .await
            {
                Ok(_) => return Ok(()),
                Err(f) if attempt >= 4 => return Err(f),
                Err(_) => {
                    attempt += 1;
                    actix_rt::time::sleep(Duration::from_millis(100 * attempt)).await;
                }
            }
        }
    }

    /// Waits until the server answers `/healthz`, for at most `timeout`.
    pub async fn wait_healthy(&self, timeout: Duration) -> Result<(), Failure> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.call("GET", "/healthz", None, None).await {
                Ok(_) => return Ok(()),
                Err(f) if Instant::now() >= deadline => return Err(f),
                Err(_) => actix_rt::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }
}

/// Reads one desktop's frames: replies resolve commands, events become [`DeskEvent`]s
/// for the scenario and [`Fact`]s for the checks.
struct Reader {
    /// The agent, without the prefix.
    agent: String,
    prefix: String,
    conn: Rc<Conn>,
    desk: UnboundedSender<DeskEvent>,
    inner: Rc<Inner>,
}

impl Reader {
    fn strip(&self, id: &str) -> String {
        id.strip_prefix(self.prefix.as_str()).unwrap_or(id).to_string()
    }

    fn fact(&self, f: Fact) {
        let _ = self.inner.facts_tx.send(f);
    }

    fn desk(&self, e: DeskEvent) {
        let _ = self.desk.send(e);
    }

    /// A transfer offer expired. With `routing.transfer_no_answer = "drop"` that ended
    /// the conversation in the same step, and nobody is in it any more (the transferring
    /// agent left when it transferred), so no desktop hears `conversation_ended`: the
    /// harness asks the REST API, as an operator's tool would. Requeued, it is not ended
    /// and its end comes later from the desktop of whoever takes it.
    fn dropped_transfer(&self, conversation: String) {
        let http = Http {
            inner: self.inner.clone(),
        };
        actix_rt::spawn(async move {
            let path = format!("/api/v1/conversations/{conversation}");
            let state = match http.call("GET", &path, None, None).await {
                Ok(body) => serde_json::from_slice::<ConversationDto>(&body).ok().map(|c| c.state),
                Err(_) => None,
            };
            if state == Some(ConversationStateDto::Ended) {
                let _ = http.inner.facts_tx.send(Fact::Ended { conversation });
            }
        });
    }

    fn frame(&self, text: &[u8]) {
        // A frame the harness does not know (a newer server's) is not one it waits for.
        let Ok(event) = serde_json::from_slice::<ServerEvent>(text) else {
            return;
        };
        let agent = || self.agent.clone();
        match event {
            ServerEvent::Reply { request_id, ok, error } => {
                let Some(rid) = request_id.as_deref().and_then(|r| r.parse::<u64>().ok()) else {
                    return;
                };
                let result = if ok {
                    Ok(())
                } else {
                    Err(Failure::new(error.map_or_else(|| "unknown".into(), |e| e.code)))
                };
                if let Some(c) = self.conn.wrapups.borrow_mut().remove(&rid) {
                    if result.is_ok() {
                        self.fact(Fact::WrappedUp {
                            conversation: c,
                            agent: agent(),
                        });
                    }
                }
                if let Some(tx) = self.conn.replies.borrow_mut().remove(&rid) {
                    let _ = tx.send(result);
                }
            }
            ServerEvent::Offer(offer) => {
                // The engine offers only after the slot is free: a wrap-up whose reply is
                // still on its way has been carried out.
                let early: Vec<String> = self.conn.wrapups.borrow_mut().drain().map(|(_, c)| c).collect();
                for c in early {
                    self.fact(Fact::WrappedUp {
                        conversation: c,
                        agent: agent(),
                    });
                }
                let conversation = offer.conversation_id;
                let kind = OfferKind::from(offer.kind);
                if kind == OfferKind::Transfer {
                    self.conn.transfers.borrow_mut().insert(conversation.clone());
                }
                if kind == OfferKind::New && self.inner.arrived.borrow_mut().insert(conversation.clone()) {
                    self.fact(Fact::Arrived {
                        conversation: conversation.clone(),
                    });
                }
                self.fact(Fact::Offered {
                    conversation: conversation.clone(),
                    agent: agent(),
                });
                if kind == OfferKind::New && self.inner.routed.get() {
                    // The frame carries no step: the checker works it out from the times.
                    let ms = |t: chrono::DateTime<chrono::Utc>| u64::try_from(t.timestamp_millis()).unwrap_or(0);
                    self.fact(Fact::Routed {
                        conversation: conversation.clone(),
                        agent: agent(),
                        queue: self.strip(&offer.queue),
                        received_at: ms(offer.received_at),
                        offered_at: ms(offer.offered_at),
                        claimed: None,
                    });
                }
                self.desk(DeskEvent::Offer {
                    conversation,
                    customer: self.strip(&offer.customer.id),
                    kind,
                });
            }
            ServerEvent::OfferWithdrawn {
                conversation_id: conversation,
                reason,
            } => {
                self.fact(Fact::OfferEnded {
                    conversation: conversation.clone(),
                    agent: agent(),
                });
                let transfer = self.conn.transfers.borrow_mut().remove(&conversation);
                if transfer && reason == WithdrawReason::Expired.as_str() {
                    self.dropped_transfer(conversation.clone());
                }
                self.desk(DeskEvent::OfferWithdrawn { conversation });
            }
            ServerEvent::Conversation { conversation: c } => {
                self.conn.transfers.borrow_mut().remove(&c.id);
                self.fact(Fact::Accepted {
                    conversation: c.id.clone(),
                    agent: agent(),
                });
                self.desk(DeskEvent::Accepted { conversation: c.id });
            }
            ServerEvent::Message {
                conversation_id: conversation,
                message: m,
            } => {
                let author = match m.author.kind {
                    AuthorKindDto::Agent => m.author.id.as_deref().map(|a| self.strip(a)),
                    AuthorKindDto::Customer | AuthorKindDto::System | AuthorKindDto::Page => None,
                };
                if author.as_deref() == Some(self.agent.as_str()) {
                    if let Some(tx) = self.conn.echoes.borrow_mut().remove(&conversation) {
                        let _ = tx.send(m.seq);
                    }
                }
                self.desk(DeskEvent::Message {
                    conversation,
                    seq: m.seq,
                    agent: author,
                });
            }
            ServerEvent::ParticipantJoined { conversation_id, .. } => self.desk(DeskEvent::ParticipantJoined {
                conversation: conversation_id,
            }),
            ServerEvent::ParticipantLeft { conversation_id, .. } => self.desk(DeskEvent::ParticipantLeft {
                conversation: conversation_id,
            }),
            ServerEvent::ConferenceNotAccepted { conversation_id, .. } => self.desk(DeskEvent::ConferenceNotAccepted {
                conversation: conversation_id,
            }),
            ServerEvent::ConversationEnded {
                conversation_id: conversation,
                ..
            } => {
                self.fact(Fact::Ended {
                    conversation: conversation.clone(),
                });
                self.desk(DeskEvent::ConversationEnded { conversation });
            }
            ServerEvent::WrapupRequired {
                conversation_id: conversation,
                ..
            } => {
                self.fact(Fact::WrapupOwed {
                    conversation: conversation.clone(),
                    agent: agent(),
                });
                self.desk(DeskEvent::WrapupRequired { conversation });
            }
            ServerEvent::StateChanged { state, .. } => {
                let state = Presence::from(state);
                self.fact(Fact::Presence { agent: agent(), state });
                self.desk(DeskEvent::StateChanged { state });
            }
            ServerEvent::Hello { .. } | ServerEvent::MessageStatus { .. } | ServerEvent::CustomerTyping { .. } => {}
        }
    }
}

/// A desktop's events for the scenario.
pub struct HttpDesk {
    rx: UnboundedReceiver<DeskEvent>,
}

impl Desk for HttpDesk {
    async fn next(&mut self) -> Option<DeskEvent> {
        self.rx.recv().await
    }
}

/// The facts derived from every desktop, with double-offer look-alikes held back (see the
/// module docs).
pub struct HttpFacts {
    rx: UnboundedReceiver<Fact>,
    ready: VecDeque<Fact>,
    /// The agent each conversation is offered to, as far as the released facts say.
    offered_to: HashMap<String, String>,
    /// Facts held back per conversation: (since, the agent whose offer must end first, facts).
    held: HashMap<String, (Instant, String, VecDeque<Fact>)>,
    /// Agents whose offer is held back, with the conversation it is held under: a later
    /// fact about the same agent (its presence, another offer) waits behind it, so that
    /// one desktop's facts reach the checker in the order that desktop saw them.
    held_agents: HashMap<String, String>,
    closed: bool,
}

impl HttpFacts {
    fn new(rx: UnboundedReceiver<Fact>) -> Self {
        HttpFacts {
            rx,
            ready: VecDeque::new(),
            offered_to: HashMap::new(),
            held: HashMap::new(),
            held_agents: HashMap::new(),
            closed: false,
        }
    }

    /// The conversation and agent a fact is about.
    fn about(f: &Fact) -> (Option<&str>, Option<&str>) {
        match f {
            Fact::Arrived { conversation } | Fact::Ended { conversation } => (Some(conversation), None),
            Fact::Offered { conversation, agent }
            | Fact::OfferEnded { conversation, agent }
            | Fact::Accepted { conversation, agent }
            | Fact::WrapupOwed { conversation, agent }
            | Fact::WrappedUp { conversation, agent } => (Some(conversation), Some(agent)),
            Fact::Presence { agent, .. } => (None, Some(agent)),
            // Checked on its own (its times and the scenario's skills): never held back.
            Fact::Routed { .. } | Fact::Lost(_) => (None, None),
        }
    }

    fn take(&mut self, f: Fact) {
        let (c, a) = Self::about(&f);
        // Behind a held offer of the same agent (see `held_agents`).
        if let Some(conversation) = a.and_then(|a| self.held_agents.get(a)) {
            if c != Some(conversation.as_str()) {
                if let Some((_, _, queue)) = self.held.get_mut(conversation) {
                    queue.push_back(f);
                    return;
                }
            }
        }
        if let Some(c) = c {
            if let Some((_, blocker, queue)) = self.held.get_mut(c) {
                if a != Some(blocker.as_str()) {
                    queue.push_back(f);
                    return;
                }
            }
        }
        self.release(f);
    }

    /// Passes `f` on (holding it back if it is an offer of a conversation still offered
    /// to another agent), then what it unblocked.
    fn release(&mut self, f: Fact) {
        match &f {
            Fact::Offered { conversation, agent } => {
                if let Some(other) = self.offered_to.get(conversation) {
                    if other != agent {
                        let other = other.clone();
                        self.held_agents.insert(agent.clone(), conversation.clone());
                        self.held
                            .insert(conversation.clone(), (Instant::now(), other, VecDeque::from([f])));
                        return;
                    }
                }
                self.offered_to.insert(conversation.clone(), agent.clone());
                self.ready.push_back(f);
            }
            Fact::OfferEnded { conversation, agent } | Fact::Accepted { conversation, agent } => {
                let c = conversation.clone();
                if self.offered_to.get(&c) == Some(agent) {
                    self.offered_to.remove(&c);
                }
                self.ready.push_back(f);
                if let Some((_, _, queue)) = self.held.remove(&c) {
                    self.held_agents.retain(|_, held| *held != c);
                    for f in queue {
                        self.take(f);
                    }
                }
            }
            _ => self.ready.push_back(f),
        }
    }

    /// Lets the checker see what was held back too long.
    fn expire(&mut self, all: bool) {
        let old: Vec<String> = self
            .held
            .iter()
            .filter(|(_, (since, _, _))| all || since.elapsed() >= REORDER_GRACE)
            .map(|(c, _)| c.clone())
            .collect();
        for c in old {
            self.held_agents.retain(|_, held| *held != c);
            if let Some((_, _, queue)) = self.held.remove(&c) {
                for f in queue {
                    if let Fact::Offered { conversation, agent } = &f {
                        self.offered_to.insert(conversation.clone(), agent.clone());
                    }
                    self.ready.push_back(f);
                }
            }
        }
    }
}

impl Facts for HttpFacts {
    async fn next(&mut self) -> Option<Fact> {
        loop {
            if let Some(f) = self.ready.pop_front() {
                return Some(f);
            }
            if self.closed {
                self.expire(true);
                return self.ready.pop_front();
            }
            match tokio::time::timeout(Duration::from_millis(100), self.rx.recv()).await {
                Ok(Some(f)) => self.take(f),
                Ok(None) => self.closed = true,
                Err(_) => self.expire(false),
            }
        }
    }
}

/// The text frame of desktop command `command` with request id `rid`: the API's own
/// [`DesktopRequest`], serialized by serde.
fn frame(rid: u64, command: DesktopCommand) -> Result<String, Failure> {
    serde_json::to_string(&DesktopRequest {
        request_id: Some(rid.to_string()),
        command,
    })
    .map_err(|e| Failure::new(format!("encoding a desktop command: {e}")))
}

/// A REST body: one of the API's request types, serialized by serde.
fn json<T: Serialize>(body: &T) -> Result<Vec<u8>, Failure> {
    serde_json::to_vec(body).map_err(|e| Failure::new(format!("encoding a request: {e}")))
}

impl Backend for Http {
    type Desk = HttpDesk;
    type Facts = HttpFacts;

    async fn setup(&self, setup: &Setup) -> Result<(), Failure> {
        self.inner.routed.set(!setup.steps.is_empty());
        for q in &setup.queues {
            let steps: Vec<StepDto> = setup.steps.get(q).into_iter().flatten().map(StepDto::from).collect();
            let body = json(&CreateQueue {
                id: self.id(q),
                name: format!("Queue {q}"),
                routing_steps: steps.clone(),
                hours: None,
                survey: None,
                wait_limit: None,
                service_level_ms: None,
                place_updates: None,
                overflow: None,
            })?;
            self.call("POST", "/api/v1/queues", None, Some(body)).await?;
            let body = json(&CreateEntryPoint {
                id: self.id(&format!("ep-{q}")),
                name: format!("Page {q}"),
                queue: self.id(q),
                page_id: None,
                page_access_token: None,
                priority: 0,
                routing_steps: steps,
                thread_control: Default::default(),
                return_to_app_id: None,
            })?;
            self.call("POST", "/api/v1/entry-points", None, Some(body)).await?;
        }
        let results: Vec<Result<(String, String), Failure>> = futures_util::stream::iter(setup.agents.iter())
            .map(|(id, queues, capacity)| {
                let me = self.clone();
                async move {
                    let body = json(&CreateAgent {
                        id: me.id(id),
                        name: format!("Agent {id}"),
                        queues: queues.iter().map(|q| me.id(q)).collect(),
                        capacity: Some(*capacity),
                        password: None,
                        skills: setup.skills.get(id).cloned().unwrap_or_default(),
                    })?;
                    let bytes = me.call("POST", "/api/v1/agents", None, Some(body)).await?;
                    let created: AgentCreatedDto =
                        serde_json::from_slice(&bytes).map_err(|e| Failure::new(format!("agent answer: {e}")))?;
                    Ok((id.clone(), created.token))
                }
            })
            .buffer_unordered(SETUP_PARALLEL)
            .collect()
            .await;
        let mut tokens = self.inner.tokens.borrow_mut();
        for r in results {
            let (id, token) = r?;
            tokens.insert(id, token);
        }
        Ok(())
    }

    async fn connect(&self, agent: &str) -> Result<HttpDesk, Failure> {
        let token = self
            .inner
            .tokens
            .borrow()
            .get(agent)
            .cloned()
            .ok_or_else(|| Failure::new("no_token"))?;
        let url = format!(
            "{}/api/v1/agents/me/ws?token={token}",
            self.inner.target.base.replacen("http", "ws", 1)
        );
        let (_, framed) = self
            .inner
            .ws
            .ws(url)
            .max_frame_size(16 << 20)
            .connect()
            .await
            .map_err(|e| Failure::new(format!("websocket: {e}")))?;
        let (mut sink, mut stream) = framed.split();
        let (out, mut out_rx) = unbounded_channel::<Message>();
        let conn = Rc::new(Conn {
            out,
            replies: RefCell::default(),
            echoes: RefCell::default(),
            wrapups: RefCell::default(),
            transfers: RefCell::default(),
            window: tokio::sync::Semaphore::new(crate::api::ws::MAX_PENDING_COMMANDS),
        });
        self.inner.conns.borrow_mut().insert(agent.to_string(), conn.clone());
        // The writer: everything queued goes out in one flush.
        actix_rt::spawn(async move {
            while let Some(m) = out_rx.recv().await {
                let close = matches!(m, Message::Close(_));
                if sink.feed(m).await.is_err() {
                    return;
                }
                while let Ok(m) = out_rx.try_recv() {
                    if sink.feed(m).await.is_err() {
                        return;
                    }
                }
                if sink.flush().await.is_err() || close {
                    return;
                }
            }
        });
        let (desk_tx, desk_rx) = unbounded_channel();
        let reader = Reader {
            agent: agent.to_string(),
            prefix: self.inner.target.prefix.clone(),
            conn,
            desk: desk_tx,
            inner: self.inner.clone(),
        };
        actix_rt::spawn(async move {
            while let Some(Ok(frame)) = stream.next().await {
                match frame {
                    Frame::Text(t) => reader.frame(&t),
                    Frame::Ping(p) => {
                        let _ = reader.conn.out.send(Message::Pong(p));
                    }
                    Frame::Close(_) => break,
                    _ => {}
                }
            }
            // Commands still waiting learn that the desktop is gone.
            reader.conn.replies.borrow_mut().clear();
            reader.conn.echoes.borrow_mut().clear();
        });
        Ok(HttpDesk { rx: desk_rx })
    }

    fn facts(&self) -> HttpFacts {
        let rx = self.inner.facts_rx.borrow_mut().take().unwrap_or_else(|| {
            // A second stream would see nothing: facts go to the first one.
            let (_, rx) = unbounded_channel();
            rx
        });
        HttpFacts::new(rx)
    }

    /// The customer's commands go over REST, the agents' over their desktop sockets,
    /// with the run's id prefix on every id the harness chose (not on conversation ids,
    /// which the server chose).
    async fn exec(&self, cmd: Command) -> Result<Reply, Failure> {
        let (agent, command, wrapup_of) = match cmd {
            Command::CustomerMessage {
                entry_point,
                customer,
                text,
                open,
                ..
            } => {
                let body = json(&CreateConversation {
                    entry_point: self.id(&entry_point),
                    customer: CustomerDto {
                        id: self.id(&customer.id),
                        name: customer.name,
                    },
                    text,
                    priority: open.priority,
                    routing_steps: None,
                })?;
                let bytes = self.call("POST", "/api/v1/conversations", None, Some(body)).await?;
                let c: ConversationDto =
                    serde_json::from_slice(&bytes).map_err(|e| Failure::new(format!("conversation answer: {e}")))?;
                if self.inner.arrived.borrow_mut().insert(c.id.clone()) {
                    let _ = self.inner.facts_tx.send(Fact::Arrived {
                        conversation: c.id.clone(),
                    });
                }
                return Ok(Reply::ConversationId(c.id));
            }
            Command::CustomerReply { conversation, text } => {
                let body = json(&SendText { text })?;
                let path = format!("/api/v1/conversations/{conversation}/messages");
                self.call("POST", &path, None, Some(body)).await?;
                return Ok(Reply::Done);
            }
            Command::Send {
                agent,
                conversation,
                text,
            } => return self.send(&agent, conversation, text).await,
            Command::SetState {
                agent,
                state,
                idle_code,
            } => (
                agent,
                DesktopCommand::SetState {
                    state: state.into(),
                    idle_code,
                },
                None,
            ),
            Command::Accept { agent, conversation } => (
                agent,
                DesktopCommand::Accept {
                    conversation_id: conversation,
                },
                None,
            ),
            Command::TransferToAgent {
                agent,
                conversation,
                target,
                note,
            } => (
                agent,
                DesktopCommand::Transfer {
                    conversation_id: conversation,
                    agent: Some(self.id(&target)),
                    queue: None,
                    note,
                },
                None,
            ),
            Command::TransferToQueue {
                agent,
                conversation,
                queue,
                note,
            } => (
                agent,
                DesktopCommand::Transfer {
                    conversation_id: conversation,
                    agent: None,
                    queue: Some(self.id(&queue)),
                    note,
                },
                None,
            ),
            Command::Conference {
                agent,
                conversation,
                target,
                note,
            } => (
                agent,
                DesktopCommand::Conference {
                    conversation_id: conversation,
                    agent: self.id(&target),
                    note,
                },
                None,
            ),
            Command::ExitConference { agent, conversation } => (
                agent,
                DesktopCommand::ExitConference {
                    conversation_id: conversation,
                },
                None,
            ),
            Command::End { agent, conversation } => (
                agent,
                DesktopCommand::End {
                    conversation_id: conversation,
                },
                None,
            ),
            Command::Wrapup {
                agent,
                conversation,
                reason,
            } => (
                agent,
                DesktopCommand::Wrapup {
                    conversation_id: conversation.clone(),
                    reason,
                },
                Some(conversation),
            ),
            other => return Err(Failure::new(format!("not_a_scenario_command: {}", other.name()))),
        };
        self.command(&agent, command, wrapup_of.as_deref()).await?;
        Ok(Reply::Done)
    }

    async fn describe(&self, conversation: &str) -> String {
        let path = format!("/api/v1/conversations/{conversation}");
        match self.call("GET", &path, None, None).await {
            Ok(body) => String::from_utf8_lossy(&body).into_owned(),
            Err(f) => format!("GET {path}: {}", f.code),
        }
    }
}

/// Runs the scenario against the server at `base` (`http://host:port`).
pub async fn run(opts: &super::Options, base: &str, admin_token: &str) -> Result<super::Report, super::LoadError> {
    let prefix = opts.id_prefix.clone().unwrap_or_else(|| {
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        format!("r{}-{}-", std::process::id(), secs % 1_000_000)
    });
    let backend = Http::new(Target {
        base: base.to_string(),
        admin_token: admin_token.to_string(),
        prefix,
        connections: opts.http_connections,
    });
    backend
        .wait_healthy(Duration::from_secs(10))
        .await
        .map_err(|f| super::LoadError::Setup(format!("{base}/healthz: {}", f.code)))?;
    let watching = if opts.supervisors > 0 {
        Some(
            backend
                .watch_floor(opts.supervisors)
                .await
                .map_err(|f| super::LoadError::Setup(format!("supervisors: {}", f.code)))?,
        )
    } else {
        None
    };
    let report = super::driver::drive(backend.clone(), opts.clone()).await;
    if let Some(w) = watching {
        eprintln!(
            "switchboard-load: {} supervisors watched: {} events received in {} frames, {} sockets closed by the server",
            opts.supervisors,
            w.events.load(Ordering::Relaxed),
            w.frames.load(Ordering::Relaxed),
            w.closed.load(Ordering::Relaxed)
        );
    }
    if opts.cleanup {
        let failed = backend.cleanup().await;
        if failed > 0 {
            eprintln!("switchboard-load: cleanup: {failed} agents could not be logged out");
        }
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offered(c: &str, a: &str) -> Fact {
        Fact::Offered {
            conversation: c.into(),
            agent: a.into(),
        }
    }

    #[test]
    fn a_supervisor_frame_counts_its_events() {
        let rows: [(&str, u64); 3] = [
            (r#"{"type":"agent","agent":{"id":"a"}}"#, 1),
            (r#"{"type":"batch","events":[{"type":"queue","queue":{"id":"q"}}]}"#, 1),
            (
                r#"{"type":"batch","events":[{"type":"agent","agent":{}},{"type":"conversation","conversation":{}},{"type":"queue","queue":{}}]}"#,
                3,
            ),
        ];
        for (frame, want) in rows {
            assert_eq!(events_in(frame.as_bytes()), want, "{frame}");
        }
    }

    #[test]
    fn an_offer_overtaking_the_end_of_the_previous_one_is_put_back_in_order() {
        let (_tx, rx) = unbounded_channel();
        let mut f = HttpFacts::new(rx);
        f.take(offered("c1", "a"));
        f.take(offered("c1", "b"));
        f.take(Fact::Accepted {
            conversation: "c1".into(),
            agent: "b".into(),
        });
        assert_eq!(f.ready.len(), 1);
        f.take(Fact::OfferEnded {
            conversation: "c1".into(),
            agent: "a".into(),
        });
        let order: Vec<Fact> = f.ready.drain(..).collect();
        assert_eq!(
            order,
            vec![
                offered("c1", "a"),
                Fact::OfferEnded {
                    conversation: "c1".into(),
                    agent: "a".into()
                },
                offered("c1", "b"),
                Fact::Accepted {
                    conversation: "c1".into(),
                    agent: "b".into()
                },
            ]
        );
        assert!(f.held.is_empty());
    }

    /// A held-back offer keeps its place among its agent's facts: the agent's later
    /// presence (here RONA, when that offer expires) reaches the checker after it, as the
    /// agent's desktop saw them, not before (which would look like an offer in RONA).
    #[test]
    fn an_agents_later_facts_wait_behind_its_held_offer() {
        let (_tx, rx) = unbounded_channel();
        let mut f = HttpFacts::new(rx);
        let rona = Fact::Presence {
            agent: "b".into(),
            state: Presence::Rona,
        };
        let ended = |a: &str| Fact::OfferEnded {
            conversation: "c1".into(),
            agent: a.into(),
        };
        f.take(offered("c1", "a"));
        f.take(offered("c1", "b"));
        f.take(ended("b"));
        f.take(rona.clone());
        assert_eq!(f.ready.len(), 1, "b's facts wait behind its held offer");
        f.take(ended("a"));
        let order: Vec<Fact> = f.ready.drain(..).collect();
        assert_eq!(
            order,
            vec![offered("c1", "a"), ended("a"), offered("c1", "b"), ended("b"), rona]
        );
        assert!(f.held.is_empty() && f.held_agents.is_empty());
    }

    /// The frames the harness sends are the API's `DesktopRequest` as serde writes it, and
    /// the server's reading of them (`api::ws` parses every desktop frame as a
    /// `DesktopRequest`) gives back the same command.
    #[test]
    fn a_desktop_frame_is_the_apis_own_desktop_request() {
        for (command, want) in [
            (
                DesktopCommand::End {
                    conversation_id: "c-1".into(),
                },
                r#"{"request_id":"7","type":"end","conversation_id":"c-1"}"#,
            ),
            (
                DesktopCommand::Send {
                    conversation_id: "c-1".into(),
                    text: "say \"hi\"".into(),
                },
                r#"{"request_id":"7","type":"send","conversation_id":"c-1","text":"say \"hi\""}"#,
            ),
            (
                DesktopCommand::Transfer {
                    conversation_id: "c-1".into(),
                    agent: None,
                    queue: Some("q2".into()),
                    note: None,
                },
                r#"{"request_id":"7","type":"transfer","conversation_id":"c-1","queue":"q2"}"#,
            ),
            (
                DesktopCommand::SetState {
                    state: AgentState::Available,
                    idle_code: None,
                },
                r#"{"request_id":"7","type":"set_state","state":"available"}"#,
            ),
        ] {
            let sent = frame(7, command).unwrap();
            assert_eq!(sent, want);
            let read: DesktopRequest = serde_json::from_str(&sent).unwrap();
            assert_eq!(read.request_id.as_deref(), Some("7"));
            assert_eq!(serde_json::to_string(&read).unwrap(), sent);
        }
    }

    #[test]
    fn a_real_double_offer_is_released_after_the_grace() {
        let (_tx, rx) = unbounded_channel();
        let mut f = HttpFacts::new(rx);
        f.take(offered("c1", "a"));
        f.take(offered("c1", "b"));
        f.expire(true);
        assert_eq!(f.ready.len(), 2);
    }
}
