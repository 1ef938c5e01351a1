//! What the load harness drives: a [`Backend`] with the operations of agents and
//! customers, desktops that yield [`DeskEvent`]s, and an ordered stream of [`Fact`]s for
//! the outside checks.
//!
//! The driver (`driver.rs`) only knows this trait, so a mode is one implementation of
//! it: [`InProcess`] calls [`Engine`] directly; the HTTP/WebSocket mode implements the
//! same trait over REST and the desktop WebSocket.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;

use tokio::sync::{broadcast, mpsc, oneshot};

use super::skills::Claimed;
use crate::core::{
    AgentEvent, Channel, Customer, Detail, EntryPoint, Millis, Observation, OfferKind, Opening, Presence, Rules,
    Skills, Step,
};
use crate::engine::{Command, Engine, EngineError, EngineOptions, Observed, Reply};
use crate::store::{MemoryStore, Store};

/// A failed operation, by its stable code (the engine's error code, or the API's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub code: String,
}

impl Failure {
    pub fn new(code: impl Into<String>) -> Self {
        Failure { code: code.into() }
    }
}

impl From<EngineError> for Failure {
    fn from(e: EngineError) -> Self {
        Failure::new(e.code())
    }
}

/// What the harness creates before the run.
#[derive(Debug, Clone, Default)]
pub struct Setup {
    /// Queue ids; entry point `ep-{queue}` feeds each.
    pub queues: Vec<String>,
    /// (agent id, queues it serves, capacity).
    pub agents: Vec<(String, Vec<String>, u32)>,
    /// Agents' skills (`--skills`; none for an agent not named).
    pub skills: HashMap<String, Skills>,
    /// Routing steps of a queue and of its entry point (`--skills`; none for a queue not
    /// named). With any, the backend reports [`Fact::Routed`].
    pub steps: HashMap<String, Vec<Step>>,
}

/// What a desktop sees, reduced to what the harness acts on.
#[derive(Debug, Clone, PartialEq)]
pub enum DeskEvent {
    Offer {
        conversation: String,
        /// The customer's id: how the harness finds the arrival time of a new conversation.
        customer: String,
        kind: OfferKind,
    },
    OfferWithdrawn {
        conversation: String,
    },
    /// The accepted conversation with its transcript.
    Accepted {
        conversation: String,
    },
    Message {
        conversation: String,
        seq: u64,
        /// The author's agent id; `None` for customer and system messages.
        agent: Option<String>,
    },
    ParticipantJoined {
        conversation: String,
    },
    ParticipantLeft {
        conversation: String,
    },
    ConferenceNotAccepted {
        conversation: String,
    },
    ConversationEnded {
        conversation: String,
    },
    WrapupRequired {
        conversation: String,
    },
    StateChanged {
        state: Presence,
    },
}

impl DeskEvent {
    /// The conversation the event is about, if any.
    pub fn conversation(&self) -> Option<&str> {
        use DeskEvent::*;
        match self {
            Offer { conversation, .. }
            | OfferWithdrawn { conversation }
            | Accepted { conversation }
            | Message { conversation, .. }
            | ParticipantJoined { conversation }
            | ParticipantLeft { conversation }
            | ConferenceNotAccepted { conversation }
            | ConversationEnded { conversation }
            | WrapupRequired { conversation } => Some(conversation),
            StateChanged { .. } => None,
        }
    }
}

/// A fact about the whole engine, in the order the engine decided it: what the checks
/// (`check.rs`) run on.
#[derive(Debug, Clone, PartialEq)]
pub enum Fact {
    Arrived {
        conversation: String,
    },
    Offered {
        conversation: String,
        agent: String,
    },
    /// The offer ended without becoming participation (expired, withdrawn): slot freed.
    OfferEnded {
        conversation: String,
        agent: String,
    },
    /// The offer became participation: the slot stays held until the wrap-up.
    Accepted {
        conversation: String,
        agent: String,
    },
    Ended {
        conversation: String,
    },
    WrapupOwed {
        conversation: String,
        agent: String,
    },
    WrappedUp {
        conversation: String,
        agent: String,
    },
    Presence {
        agent: String,
        state: Presence,
    },
    /// A new offer (`kind: new`, from a queue) with what invariant 7 is checked on: the
    /// queue, when the conversation entered it and when it was offered, and what the
    /// engine says of its step when the backend hears it. Only with routing steps set up.
    Routed {
        conversation: String,
        agent: String,
        queue: String,
        received_at: Millis,
        offered_at: Millis,
        claimed: Option<Claimed>,
    },
    /// The fact stream lost `0` facts: the checks are incomplete.
    Lost(u64),
}

/// One agent desktop's event stream.
#[allow(async_fn_in_trait)] // The harness runs on one thread; its futures need not be Send.
pub trait Desk: 'static {
    /// The next event; `None` when the desktop was disconnected.
    async fn next(&mut self) -> Option<DeskEvent>;
}

/// The ordered stream of [`Fact`]s.
#[allow(async_fn_in_trait)]
pub trait Facts: 'static {
    /// The next fact; `None` when the stream ended.
    async fn next(&mut self) -> Option<Fact>;
}

/// Operations of agents and customers against one Switchboard.
#[allow(async_fn_in_trait)]
pub trait Backend: 'static {
    type Desk: Desk;
    type Facts: Facts;

    /// Creates queues, entry points and agents.
    async fn setup(&self, setup: &Setup) -> Result<(), Failure>;
    /// Connects a desktop of `agent`.
    async fn connect(&self, agent: &str) -> Result<Self::Desk, Failure>;
    /// The engine's facts, from now on.
    fn facts(&self) -> Self::Facts;

    /// Runs one engine command the way this backend's clients do (the engine itself, or
    /// REST for the customer and the desktop socket for agents), answering as the engine
    /// does with [`Detail::Brief`]: the one place a backend meets the commands.
    async fn exec(&self, cmd: Command) -> Result<Reply, Failure>;
    /// What the engine says of `conversation` (state, owner, offer, wrap-ups owed), for the
    /// report when a conversation never completed.
    async fn describe(&self, conversation: &str) -> String;

    // What the scenario does, each one command through [`Backend::exec`].

    async fn set_state(&self, agent: &str, state: Presence) -> Result<(), Failure> {
        let cmd = Command::SetState {
            agent: agent.into(),
            state,
            idle_code: None,
        };
        self.exec(cmd).await.map(drop)
    }
    /// A customer writes on an entry point, the conversation it opens with `priority`
    /// instead of the entry point's if given; answers the conversation id.
    async fn customer_message(
        &self,
        entry_point: &str,
        customer: &str,
        text: &str,
        priority: Option<i32>,
    ) -> Result<String, Failure> {
        let cmd = Command::CustomerMessage {
            entry_point: entry_point.into(),
            customer: Customer {
                id: customer.into(),
                name: "Customer".into(),
            },
            text: text.into(),
            channel: Channel::Rest,
            open: Opening {
                priority,
                ..Default::default()
            },
        };
        match self.exec(cmd).await? {
            Reply::ConversationId(id) => Ok(id),
            Reply::Conversation(c) => Ok(c.id),
            _ => Err(Failure::new("unexpected_reply")),
        }
    }
    async fn customer_reply(&self, conversation: &str, text: &str) -> Result<(), Failure> {
        let cmd = Command::CustomerReply {
            conversation: conversation.into(),
            text: text.into(),
        };
        self.exec(cmd).await.map(drop)
    }
    async fn accept(&self, agent: &str, conversation: &str) -> Result<(), Failure> {
        let cmd = Command::Accept {
            agent: agent.into(),
            conversation: conversation.into(),
        };
        self.exec(cmd).await.map(drop)
    }
    /// An agent writes; answers the message's sequence number.
    async fn send(&self, agent: &str, conversation: &str, text: &str) -> Result<u64, Failure> {
        let cmd = Command::Send {
            agent: agent.into(),
            conversation: conversation.into(),
            text: text.into(),
        };
        match self.exec(cmd).await? {
            Reply::Message(m) => Ok(m.seq),
            _ => Err(Failure::new("unexpected_reply")),
        }
    }
    async fn transfer_to_agent(&self, agent: &str, conversation: &str, target: &str) -> Result<(), Failure> {
        let cmd = Command::TransferToAgent {
            agent: agent.into(),
            conversation: conversation.into(),
            target: target.into(),
            note: None,
        };
        self.exec(cmd).await.map(drop)
    }
    async fn transfer_to_queue(&self, agent: &str, conversation: &str, queue: &str) -> Result<(), Failure> {
        let cmd = Command::TransferToQueue {
            agent: agent.into(),
            conversation: conversation.into(),
            queue: queue.into(),
            note: None,
        };
        self.exec(cmd).await.map(drop)
    }
    async fn conference(&self, agent: &str, conversation: &str, target: &str) -> Result<(), Failure> {
        let cmd = Command::Conference {
            agent: agent.into(),
            conversation: conversation.into(),
            target: target.into(),
            note: None,
        };
        self.exec(cmd).await.map(drop)
    }
    async fn exit_conference(&self, agent: &str, conversation: &str) -> Result<(), Failure> {
        let cmd = Command::ExitConference {
            agent: agent.into(),
            conversation: conversation.into(),
        };
        self.exec(cmd).await.map(drop)
    }
    async fn end(&self, agent: &str, conversation: &str) -> Result<(), Failure> {
        let cmd = Command::End {
            agent: agent.into(),
            conversation: conversation.into(),
        };
        self.exec(cmd).await.map(drop)
    }
    async fn wrapup(&self, agent: &str, conversation: &str, reason: &str) -> Result<(), Failure> {
        let cmd = Command::Wrapup {
            agent: agent.into(),
            conversation: conversation.into(),
            reason: reason.into(),
        };
        self.exec(cmd).await.map(drop)
    }
}

// ----- in-process -----

/// Which store the in-process engine uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StoreKind {
    /// [`MemoryStore`]: the engine's cost alone.
    Memory,
    /// The sled store with group commit, in a temporary directory removed at the end.
    Sled,
}

/// The engine in this process, called through [`Engine`].
pub struct InProcess {
    engine: Engine,
    /// `None`: one [`Engine::exec`] per operation.
    batcher: Option<Rc<Batcher>>,
    /// Keeps the sled directory until the run ends.
    _dir: Option<tempfile::TempDir>,
    /// Routing steps were set up: facts include [`Fact::Routed`].
    routed: Cell<bool>,
}

impl InProcess {
    /// Starts an engine on its own arbiter. Must run inside an actix system. With `batch`,
    /// the operations that the scenario's tasks issue while the harness thread is busy go
    /// to the engine together through [`Engine::exec_batch`] (see [`Batcher`]).
    pub fn start(rules: Rules, store: StoreKind, batch: bool) -> Result<InProcess, Failure> {
        let (store, dir): (Arc<dyn Store>, _) = match store {
            StoreKind::Memory => (Arc::new(MemoryStore::new()), None),
            StoreKind::Sled => {
                let dir = tempfile::Builder::new()
                    .prefix("switchboard-load-")
                    .tempdir()
                    .map_err(|e| Failure::new(format!("temporary directory: {e}")))?;
                let store = crate::store::open(dir.path()).map_err(|e| Failure::new(format!("store: {e}")))?;
                (store, Some(dir))
            }
        };
        let engine =
            Engine::start(EngineOptions::new(rules, store)).map_err(|e| Failure::new(format!("store: {e}")))?;
        let batcher = batch.then(|| {
            Rc::new(Batcher {
                engine: engine.clone(),
                waiting: RefCell::new(Vec::new()),
                scheduled: Cell::new(false),
            })
        });
        Ok(InProcess {
            engine,
            batcher,
            _dir: dir,
            routed: Cell::new(false),
        })
    }

    /// The engine handle.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Runs one command, alone or in the current batch.
    async fn run(&self, cmd: Command) -> Result<Reply, EngineError> {
        match &self.batcher {
            None => self.engine.exec_for(cmd, Detail::Brief).await,
            Some(b) => Batcher::exec(b, cmd).await,
        }
    }
}

/// Gathers the commands that the harness's tasks issue during one turn of its thread and
/// sends them as one [`Engine::exec_batch`]: a cross-thread round trip costs far more than
/// a command (../shared/MEASURED.md), and the harness's thousands of tasks have many commands ready
/// at once. Each task still waits for its own answer before its next command, so the
/// order of one conversation's operations is the same as with one call each.
struct Batcher {
    engine: Engine,
    /// Commands of the batch being gathered, with where each answer goes.
    waiting: RefCell<Vec<(Command, Answer)>>,
    /// A task is about to send the batch being gathered.
    scheduled: Cell<bool>,
}

/// Where a batched command's answer goes.
type Answer = oneshot::Sender<Result<Reply, EngineError>>;

impl Batcher {
    /// Most commands in one batch: bounds the time the engine's thread spends on one message.
    const MAX: usize = 256;

    async fn exec(this: &Rc<Batcher>, cmd: Command) -> Result<Reply, EngineError> {
        let (tx, rx) = oneshot::channel();
        this.waiting.borrow_mut().push((cmd, tx));
        if this.waiting.borrow().len() >= Self::MAX {
            this.send();
        } else if !this.scheduled.replace(true) {
            let b = this.clone();
            actix_rt::spawn(async move {
                // Let every task that is ready now add its command first.
                tokio::task::yield_now().await;
                b.scheduled.set(false);
                b.send();
            });
        }
        rx.await.unwrap_or(Err(EngineError::Stopped))
    }

    /// Sends the gathered commands; their answers go back to their tasks in order.
    fn send(&self) {
        let batch = std::mem::take(&mut *self.waiting.borrow_mut());
        if batch.is_empty() {
            return;
        }
        let (cmds, txs): (Vec<_>, Vec<_>) = batch.into_iter().unzip();
        let engine = self.engine.clone();
        actix_rt::spawn(async move {
            let answers = engine.exec_batch(cmds).await;
            for (tx, answer) in txs.into_iter().zip(answers) {
                let _ = tx.send(answer);
            }
        });
    }
}

/// A desktop subscribed through [`Engine::subscribe`].
pub struct InProcessDesk {
    rx: mpsc::Receiver<Arc<AgentEvent>>,
}

impl Desk for InProcessDesk {
    async fn next(&mut self) -> Option<DeskEvent> {
        loop {
            let event = self.rx.recv().await?;
            if let Some(e) = desk_event(&event) {
                return Some(e);
            }
        }
    }
}

fn desk_event(e: &AgentEvent) -> Option<DeskEvent> {
    Some(match e {
        AgentEvent::StateChanged { state, .. } => DeskEvent::StateChanged { state: *state },
        AgentEvent::Offer { conversation, offer } => DeskEvent::Offer {
            conversation: conversation.id.clone(),
            customer: conversation.customer.id.clone(),
            kind: offer.kind,
        },
        AgentEvent::OfferWithdrawn { conversation, .. } => DeskEvent::OfferWithdrawn {
            conversation: conversation.clone(),
        },
        AgentEvent::Conversation(c) => DeskEvent::Accepted {
            conversation: c.id.clone(),
        },
        AgentEvent::Message { conversation, message } => DeskEvent::Message {
            conversation: conversation.clone(),
            seq: message.seq,
            agent: match message.author.kind {
                crate::core::AuthorKind::Agent => message.author.id.clone(),
                _ => None,
            },
        },
        AgentEvent::ParticipantJoined { conversation, .. } => DeskEvent::ParticipantJoined {
            conversation: conversation.clone(),
        },
        AgentEvent::ParticipantLeft { conversation, .. } => DeskEvent::ParticipantLeft {
            conversation: conversation.clone(),
        },
        AgentEvent::ConferenceNotAccepted { conversation, .. } => DeskEvent::ConferenceNotAccepted {
            conversation: conversation.clone(),
        },
        AgentEvent::ConversationEnded { conversation, .. } => DeskEvent::ConversationEnded {
            conversation: conversation.clone(),
        },
        AgentEvent::WrapupRequired { conversation, .. } => DeskEvent::WrapupRequired {
            conversation: conversation.clone(),
        },
        // The harness drives the REST channel, which has no delivery states.
        AgentEvent::MessageStatus { .. } | AgentEvent::CustomerTyping { .. } => return None,
    })
}

/// Facts from the engine-wide observer ([`Engine::observe`]): one broadcast, in the
/// order the engine carried its decisions out.
///
/// The stream is polled (read what is there, else sleep [`FACT_POLL`]) rather than
/// awaited: a waiting receiver makes the engine's thread wake the harness's for every
/// fact it publishes, a system call each (about a tenth of the engine thread's time at
/// full load), while the checks and the permits they give back need no sub-millisecond
/// promptness. The broadcast holds 65,536 facts, far more than a poll interval brings.
pub struct InProcessFacts {
    rx: broadcast::Receiver<Arc<Observed>>,
    routed: bool,
}

/// How long the fact reader sleeps when it has read everything published.
const FACT_POLL: std::time::Duration = std::time::Duration::from_millis(1);

impl Facts for InProcessFacts {
    async fn next(&mut self) -> Option<Fact> {
        use broadcast::error::TryRecvError;
        loop {
            let o = match self.rx.try_recv() {
                Ok(o) => o,
                Err(TryRecvError::Empty) => {
                    actix_rt::time::sleep(FACT_POLL).await;
                    continue;
                }
                Err(TryRecvError::Lagged(n)) => return Some(Fact::Lost(n)),
                Err(TryRecvError::Closed) => return None,
            };
            if let Some(f) = fact(&o, self.routed) {
                return Some(f);
            }
        }
    }
}

fn fact(o: &Observed, routed: bool) -> Option<Fact> {
    Some(match o {
        Observed::Observation(o) => match o {
            Observation::Arrived { conversation, .. } => Fact::Arrived {
                conversation: conversation.clone(),
            },
            Observation::Offered {
                conversation, agent, ..
            } => Fact::Offered {
                conversation: conversation.clone(),
                agent: agent.clone(),
            },
            Observation::Accepted {
                conversation, agent, ..
            } => Fact::Accepted {
                conversation: conversation.clone(),
                agent: agent.clone(),
            },
            Observation::Ended { conversation, .. } => Fact::Ended {
                conversation: conversation.clone(),
            },
            Observation::WrappedUp {
                conversation, agent, ..
            } => Fact::WrappedUp {
                conversation: conversation.clone(),
                agent: agent.clone(),
            },
            _ => return None,
        },
        Observed::Agent { agent, event } => match &**event {
            AgentEvent::OfferWithdrawn { conversation, .. } => Fact::OfferEnded {
                conversation: conversation.clone(),
                agent: agent.clone(),
            },
            AgentEvent::WrapupRequired { conversation, .. } => Fact::WrapupOwed {
                conversation: conversation.clone(),
                agent: agent.clone(),
            },
            AgentEvent::StateChanged { state, .. } => Fact::Presence {
                agent: agent.clone(),
                state: *state,
            },
            AgentEvent::Offer { conversation: c, offer } if routed && offer.kind == OfferKind::New => Fact::Routed {
                conversation: c.id.clone(),
                agent: agent.clone(),
                queue: c.queue.clone(),
                received_at: c.received_at,
                offered_at: offer.offered_at,
                claimed: Some(Claimed {
                    step: c.routing.step,
                    requirements: c.routing.requirements.clone(),
                    preferred_agent: c.routing.preferred_agent.clone(),
                }),
            },
            _ => return None,
        },
    })
}

impl Backend for InProcess {
    type Desk = InProcessDesk;
    type Facts = InProcessFacts;

    async fn setup(&self, setup: &Setup) -> Result<(), Failure> {
        self.routed.set(!setup.steps.is_empty());
        for q in &setup.queues {
            let steps = setup.steps.get(q).cloned().unwrap_or_default();
            self.engine
                .create_queue_with_steps(q, &format!("Queue {q}"), steps.clone())
                .await?;
            self.engine
                .create_entry_point(EntryPoint {
                    id: format!("ep-{q}"),
                    name: format!("Page {q}"),
                    queue: q.clone(),
                    page_id: None,
                    page_access_token: None,
                    routing_steps: steps,
                    ..Default::default()
                })
                .await?;
        }
        for (id, queues, capacity) in &setup.agents {
            self.engine
                .exec(Command::CreateAgent {
                    id: id.clone(),
                    name: format!("Agent {id}"),
                    queues: queues.clone(),
                    capacity: Some(*capacity),
                    credential: None,
                    password_hash: None,
                    skills: setup.skills.get(id).cloned().unwrap_or_default(),
                })
                .await?;
        }
        Ok(())
    }

    async fn connect(&self, agent: &str) -> Result<InProcessDesk, Failure> {
        let (_, rx) = self.engine.subscribe(agent).await?;
        Ok(InProcessDesk { rx })
    }

    fn facts(&self) -> InProcessFacts {
        InProcessFacts {
            rx: self.engine.observe(),
            routed: self.routed.get(),
        }
    }

    async fn exec(&self, cmd: Command) -> Result<Reply, Failure> {
        Ok(self.run(cmd).await?)
    }

    async fn describe(&self, conversation: &str) -> String {
        match self.engine.conversation(conversation).await {
            Ok(Some(c)) => format!("{c:?}"),
            Ok(None) => "unknown to the engine".into(),
            Err(e) => format!("query failed: {}", e.code()),
        }
    }
}
