//! What the load harness drives: a [`Backend`] with the operations of agents and
//! customers, desktops that yield [`DeskEvent`]s, and an ordered stream of [`Fact`]s for
//! the outside checks.
//!
//! The driver (`driver.rs`) only knows this trait, so a mode is one implementation of
//! it: [`InProcess`] calls [`Engine`] directly; the HTTP/WebSocket mode implements the
//! same trait over REST and the desktop WebSocket.

use std::sync::Arc;

use tokio::sync::{broadcast, mpsc};

use crate::core::{AgentEvent, EntryPoint, Observation, OfferKind, Presence, Rules};
use crate::engine::{Engine, EngineError, EngineOptions, Observed};
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
#[derive(Debug, Clone)]
pub struct Setup {
    /// Queue ids; entry point `ep-{queue}` feeds each.
    pub queues: Vec<String>,
    /// (agent id, queues it serves, capacity).
    pub agents: Vec<(String, Vec<String>, u32)>,
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

    async fn set_state(&self, agent: &str, state: Presence) -> Result<(), Failure>;
    /// A customer writes on an entry point; answers the conversation id.
    async fn customer_message(&self, entry_point: &str, customer: &str, text: &str) -> Result<String, Failure>;
    async fn customer_reply(&self, conversation: &str, text: &str) -> Result<(), Failure>;
    async fn accept(&self, agent: &str, conversation: &str) -> Result<(), Failure>;
    /// An agent writes; answers the message's sequence number.
    async fn send(&self, agent: &str, conversation: &str, text: &str) -> Result<u64, Failure>;
    async fn transfer_to_agent(&self, agent: &str, conversation: &str, target: &str) -> Result<(), Failure>;
    async fn transfer_to_queue(&self, agent: &str, conversation: &str, queue: &str) -> Result<(), Failure>;
    async fn conference(&self, agent: &str, conversation: &str, target: &str) -> Result<(), Failure>;
    async fn exit_conference(&self, agent: &str, conversation: &str) -> Result<(), Failure>;
    async fn end(&self, agent: &str, conversation: &str) -> Result<(), Failure>;
    async fn wrapup(&self, agent: &str, conversation: &str, reason: &str) -> Result<(), Failure>;
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
    /// Keeps the sled directory until the run ends.
    _dir: Option<tempfile::TempDir>,
}

impl InProcess {
    /// Starts an engine on its own arbiter. Must run inside an actix system.
    pub fn start(rules: Rules, store: StoreKind) -> Result<InProcess, Failure> {
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
        Ok(InProcess { engine, _dir: dir })
    }

    /// The engine handle.
    pub fn engine(&self) -> &Engine {
        &self.engine
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
    })
}

/// Facts from the engine-wide observer ([`Engine::observe`]): one broadcast, in the
/// order the engine carried its decisions out.
pub struct InProcessFacts {
    rx: broadcast::Receiver<Arc<Observed>>,
}

impl Facts for InProcessFacts {
    async fn next(&mut self) -> Option<Fact> {
        loop {
            let o = match self.rx.recv().await {
                Ok(o) => o,
                Err(broadcast::error::RecvError::Lagged(n)) => return Some(Fact::Lost(n)),
                Err(broadcast::error::RecvError::Closed) => return None,
            };
            if let Some(f) = fact(&o) {
                return Some(f);
            }
        }
    }
}

fn fact(o: &Observed) -> Option<Fact> {
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
            _ => return None,
        },
    })
}

impl Backend for InProcess {
    type Desk = InProcessDesk;
    type Facts = InProcessFacts;

    async fn setup(&self, setup: &Setup) -> Result<(), Failure> {
        for q in &setup.queues {
            self.engine.create_queue(q, &format!("Queue {q}")).await?;
            self.engine
                .create_entry_point(EntryPoint {
                    id: format!("ep-{q}"),
                    name: format!("Page {q}"),
                    queue: q.clone(),
                    page_id: None,
                    page_access_token: None,
                })
                .await?;
        }
        for (id, queues, capacity) in &setup.agents {
            let queues: Vec<&str> = queues.iter().map(|q| q.as_str()).collect();
            self.engine
                .create_agent(id, &format!("Agent {id}"), &queues, *capacity)
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
        }
    }

    async fn set_state(&self, agent: &str, state: Presence) -> Result<(), Failure> {
        self.engine.set_state(agent, state, None).await?;
        Ok(())
    }

    async fn customer_message(&self, entry_point: &str, customer: &str, text: &str) -> Result<String, Failure> {
        Ok(self
            .engine
            .customer_message(entry_point, customer, "Customer", text)
            .await?
            .id)
    }

    async fn customer_reply(&self, conversation: &str, text: &str) -> Result<(), Failure> {
        self.engine.customer_reply(conversation, text).await?;
        Ok(())
    }

    async fn accept(&self, agent: &str, conversation: &str) -> Result<(), Failure> {
        self.engine.accept(agent, conversation).await?;
        Ok(())
    }

    async fn send(&self, agent: &str, conversation: &str, text: &str) -> Result<u64, Failure> {
        Ok(self.engine.send(agent, conversation, text).await?.seq)
    }

    async fn transfer_to_agent(&self, agent: &str, conversation: &str, target: &str) -> Result<(), Failure> {
        self.engine.transfer_to_agent(agent, conversation, target).await?;
        Ok(())
    }

    async fn transfer_to_queue(&self, agent: &str, conversation: &str, queue: &str) -> Result<(), Failure> {
        self.engine.transfer_to_queue(agent, conversation, queue).await?;
        Ok(())
    }

    async fn conference(&self, agent: &str, conversation: &str, target: &str) -> Result<(), Failure> {
        self.engine.conference(agent, conversation, target).await?;
        Ok(())
    }

    async fn exit_conference(&self, agent: &str, conversation: &str) -> Result<(), Failure> {
        Ok(self.engine.exit_conference(agent, conversation).await?)
    }

    async fn end(&self, agent: &str, conversation: &str) -> Result<(), Failure> {
        Ok(self.engine.end(agent, conversation).await?)
    }

    async fn wrapup(&self, agent: &str, conversation: &str, reason: &str) -> Result<(), Failure> {
        Ok(self.engine.wrapup(agent, conversation, reason).await?)
    }
}
