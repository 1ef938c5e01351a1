//! What the [`crate::engine::Engine`] handle and the actors behind it share: reads
//! ([`Query`] and [`QueryReply`]), the errors of an engine call ([`EngineError`]), what an
//! observer sees ([`Observed`]), and the state both read without a round trip
//! ([`Shared`]).
//!
//! A leaf: it imports only the core and the store's error, so `engine.rs` and `actors/`
//! both import it and neither imports the other's internals (`engine.rs` starts the
//! router actor; the actors never name the engine).

use std::collections::HashMap;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, RwLock};

use crate::core::*;
use crate::store::StoreError;

/// A read.
#[derive(Debug, Clone)]
pub enum Query {
    Agent(AgentId),
    Agents,
    Queue(QueueId),
    Queues,
    EntryPoints,
    /// A conversation as `reader` may see it: `forbidden` when the core's
    /// [`Floor::may_read`] says no, `unknown_conversation` when it does not exist.
    Conversation {
        id: ConversationId,
        reader: Principal,
    },
    /// SPEC.md's invariants over the current state (tests and the simulation).
    Invariants,
    /// How much the engine holds in memory ([`EngineStats`]).
    Stats,
    /// The stored User Profile API name of a Messenger customer of a page.
    CustomerName {
        page_id: String,
        customer: String,
    },
    /// A supervisor by id.
    Supervisor(SupervisorId),
    /// Every supervisor.
    Supervisors,
    /// The audit trail: the newest `limit` entries, about `agent` if given.
    Audit {
        agent: Option<AgentId>,
        limit: usize,
    },
    /// Start (or restart) watching: every agent and open conversation now, and from then
    /// on the router remembers which change ([`Query::WatchDelta`]).
    WatchStart,
    /// What changed since the last `WatchStart` or `WatchDelta`.
    WatchDelta,
    /// Stop remembering changes (nobody watches).
    WatchStop,
}

/// The answer to a [`Query`].
#[derive(Debug, Clone)]
pub enum QueryReply {
    // Boxed, like the conversation: the other answers are a few words.
    Agent(Option<Box<AgentDetail>>),
    Agents(Vec<Agent>),
    Queue(Option<QueueStats>),
    Queues(Vec<QueueStats>),
    EntryPoints(Vec<EntryPoint>),
    Conversation(Box<Conversation>),
    Violations(Vec<String>),
    Stats(EngineStats),
    CustomerName(Option<String>),
    Supervisor(Option<Box<Supervisor>>),
    Supervisors(Vec<Supervisor>),
    Audit(Vec<AuditEntry>),
    Watch(Box<FloorDelta>),
}

impl QueryReply {
    /// The variant's name, for [`EngineError::UnexpectedReply`].
    pub fn name(&self) -> &'static str {
        match self {
            QueryReply::Agent(_) => "agent",
            QueryReply::Agents(_) => "agents",
            QueryReply::Queue(_) => "queue",
            QueryReply::Queues(_) => "queues",
            QueryReply::EntryPoints(_) => "entry_points",
            QueryReply::Conversation(_) => "conversation",
            QueryReply::Violations(_) => "violations",
            QueryReply::Stats(_) => "stats",
            QueryReply::CustomerName(_) => "customer_name",
            QueryReply::Supervisor(_) => "supervisor",
            QueryReply::Supervisors(_) => "supervisors",
            QueryReply::Audit(_) => "audit",
            QueryReply::Watch(_) => "watch",
        }
    }
}

/// How much the engine holds in memory: counts read on the engine's thread, for tests,
/// metrics and capacity checks. A finished conversation (ended, every wrap-up submitted)
/// is in none of them once its final record is durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EngineStats {
    /// Conversations the routing core (the floor) holds.
    pub conversations_held: usize,
    /// Conversation actors the router keeps (one per open conversation).
    pub conversation_actors: usize,
    /// Finished conversations whose final commit is still under way.
    pub conversations_leaving: usize,
}

/// An agent with everything it holds: what `hello` and `GET /agents/{id}` show.
#[derive(Debug, Clone)]
pub struct AgentDetail {
    pub agent: Agent,
    /// Conversations offered to the agent (see each one's `offer`).
    pub offers: Vec<Conversation>,
    /// Conversations the agent is in (owner or guest), with transcripts.
    pub conversations: Vec<Conversation>,
    /// Conversations the agent owes a wrap-up for.
    pub wrapups: Vec<Conversation>,
}

impl AgentDetail {
    /// Agent `a` with everything it holds on floor `f`.
    pub fn of(f: &Floor, a: &Agent) -> AgentDetail {
        let convs = |ids: &mut dyn Iterator<Item = &ConversationId>| -> Vec<Conversation> {
            ids.filter_map(|id| f.conversation(id).cloned()).collect()
        };
        AgentDetail {
            offers: convs(&mut a.offers.iter()),
            conversations: convs(&mut a.active.iter()),
            wrapups: convs(&mut a.wrapups.keys()),
            agent: a.clone(),
        }
    }
}

/// What the engine-wide observer sees: every agent event and every observation.
#[derive(Debug, Clone)]
pub enum Observed {
    Agent { agent: AgentId, event: Arc<AgentEvent> },
    Observation(Observation),
}

/// Why an engine operation failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Core(#[from] CoreError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the engine is not running")]
    Stopped,
    /// The engine answered with a reply of another kind than the call expects: a bug in
    /// the engine, not a state a client can cause.
    #[error("the engine answered {got} where {expected} was expected")]
    UnexpectedReply { expected: &'static str, got: &'static str },
    /// A lock shared with the engine was poisoned by a panic on another thread.
    #[error("{0} is unusable: a thread panicked while holding it")]
    Poisoned(&'static str),
}

impl EngineError {
    /// The stable code.
    pub fn code(&self) -> &'static str {
        match self {
            EngineError::Core(e) => e.code(),
            EngineError::Store(_) => "store_unavailable",
            EngineError::Stopped => "engine_unavailable",
            EngineError::UnexpectedReply { .. } | EngineError::Poisoned(_) => "internal_error",
        }
    }

    /// The core error, if this is one.
    pub fn core(&self) -> Option<&CoreError> {
        match self {
            EngineError::Core(e) => Some(e),
            _ => None,
        }
    }
}

/// Read by the [`crate::engine::Engine`] handle without a round trip to the engine's
/// thread, written by the router actor.
#[derive(Default)]
pub struct Shared {
    /// Agent credential (a token's hash) → agent id, for authentication at the edge.
    /// Changed only by [`Effect::Credential`]s, so only once the change is durable.
    pub credentials: RwLock<HashMap<String, AgentId>>,
    /// Session credential (a session token's hash) → agent id and expiry, for password
    /// sign-ins. Changed only by [`Effect::Session`]s, so only once the change is durable.
    pub sessions: RwLock<HashMap<String, (AgentId, Millis)>>,
    /// False once a write to the store has failed.
    pub healthy: AtomicBool,
    /// Supervisor credential → supervisor id ([`Effect::SupervisorCredential`]).
    pub supervisor_credentials: RwLock<HashMap<String, SupervisorId>>,
    /// Supervisor session credential → supervisor id and expiry ([`Effect::SupervisorSession`]).
    pub supervisor_sessions: RwLock<HashMap<String, (SupervisorId, Millis)>>,
    /// Each queue's live figures as its queue actor last published them (the supervisor
    /// hub reads them once per tick).
    pub queue_board: std::sync::Mutex<QueueBoard>,
}

/// The queue actors' live figures, and which changed since the hub last looked.
#[derive(Debug, Default)]
pub struct QueueBoard {
    pub figures: std::collections::BTreeMap<QueueId, QueueFigures>,
    /// Queues published since the last [`QueueBoard::take_changed`].
    pub changed: std::collections::BTreeSet<QueueId>,
}

impl QueueBoard {
    /// What changed since the last call, with the current figures.
    pub fn take_changed(&mut self) -> Vec<QueueFigures> {
        let changed = std::mem::take(&mut self.changed);
        changed.iter().filter_map(|q| self.figures.get(q).cloned()).collect()
    }

    /// Every queue's figures, by id.
    pub fn all(&self) -> Vec<QueueFigures> {
        self.figures.values().cloned().collect()
    }
}

/// A queue's live figures, kept by its queue actor.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueueFigures {
    pub id: QueueId,
    pub name: String,
    pub waiting: usize,
    /// `received_at` of the conversation served next, if any: `longest_wait_ms` is the
    /// time since, computed when shown.
    pub oldest_received_at: Option<Millis>,
    pub agents_available: usize,
    /// The queue's routing steps (for transfers into it), as REST shows them.
    pub routing_steps: Vec<Step>,
}

impl QueueFigures {
    /// As [`QueueStats`] at `now`.
    pub fn stats(&self, now: Millis) -> QueueStats {
        QueueStats {
            id: self.id.clone(),
            name: self.name.clone(),
            waiting: self.waiting,
            longest_wait_ms: self.oldest_received_at.map_or(0, |at| now.saturating_sub(at)),
            agents_available: self.agents_available,
            routing_steps: self.routing_steps.clone(),
        }
    }
}

/// What the supervisor hub learns from the router: records whose state changed since
/// it last asked (or, for [`Query::WatchStart`], every agent and open conversation).
#[derive(Debug, Clone, Default)]
pub struct FloorDelta {
    /// False when the router was not watching (a new router after a rebuild): the hub
    /// must start again from a full view.
    pub watching: bool,
    pub agents: Vec<Agent>,
    /// Records without transcripts; a conversation that has ended is in its last state.
    pub conversations: Vec<Conversation>,
}

impl Shared {
    /// Carries out an [`Effect::SupervisorCredential`].
    pub fn apply_supervisor_credential(
        &self,
        supervisor: &str,
        revoked: Option<String>,
        granted: Option<String>,
    ) -> Result<(), EngineError> {
        let mut m = self
            .supervisor_credentials
            .write()
            .map_err(|_| EngineError::Poisoned("the supervisor credential index"))?;
        if let Some(old) = revoked {
            m.remove(&old);
        }
        if let Some(new) = granted {
            m.insert(new, supervisor.into());
        }
        Ok(())
    }

    /// Carries out an [`Effect::SupervisorSession`].
    pub fn apply_supervisor_session(
        &self,
        supervisor: &str,
        ended: Vec<String>,
        started: Option<(String, Millis)>,
    ) -> Result<(), EngineError> {
        let mut m = self
            .supervisor_sessions
            .write()
            .map_err(|_| EngineError::Poisoned("the supervisor session index"))?;
        for c in ended {
            m.remove(&c);
        }
        if let Some((c, expires_at)) = started {
            m.insert(c, (supervisor.into(), expires_at));
        }
        Ok(())
    }

    /// The supervisor a token credential or a valid session credential belongs to.
    pub fn supervisor_for(&self, credential: &str, now: Millis) -> Result<Option<SupervisorId>, EngineError> {
        let m = self
            .supervisor_credentials
            .read()
            .map_err(|_| EngineError::Poisoned("the supervisor credential index"))?;
        if let Some(s) = m.get(credential) {
            return Ok(Some(s.clone()));
        }
        drop(m);
        let m = self
            .supervisor_sessions
            .read()
            .map_err(|_| EngineError::Poisoned("the supervisor session index"))?;
        Ok(m.get(credential)
            .filter(|(_, expires_at)| session_valid(*expires_at, now))
            .map(|(s, _)| s.clone()))
    }

    /// Forgets every supervisor credential and session (a rebuild adds back what the
    /// store has).
    pub fn clear_supervisors(&self) {
        if let Ok(mut m) = self.supervisor_credentials.write() {
            m.clear();
        }
        if let Ok(mut m) = self.supervisor_sessions.write() {
            m.clear();
        }
    }

    /// A queue actor publishes its figures.
    pub fn publish_queue(&self, figures: QueueFigures) {
        let mut b = self.queue_board.lock().unwrap_or_else(|p| p.into_inner());
        b.changed.insert(figures.id.clone());
        b.figures.insert(figures.id.clone(), figures);
    }

    /// Carries out an [`Effect::Credential`].
    pub fn apply_credential(
        &self,
        agent: &str,
        revoked: Option<String>,
        granted: Option<String>,
    ) -> Result<(), EngineError> {
        let mut m = self
            .credentials
            .write()
            .map_err(|_| EngineError::Poisoned("the credential index"))?;
        if let Some(old) = revoked {
            m.remove(&old);
        }
        if let Some(new) = granted {
            m.insert(new, agent.into());
        }
        Ok(())
    }

    /// Carries out an [`Effect::Session`].
    pub fn apply_session(
        &self,
        agent: &str,
        ended: Vec<String>,
        started: Option<(String, Millis)>,
    ) -> Result<(), EngineError> {
        let mut m = self
            .sessions
            .write()
            .map_err(|_| EngineError::Poisoned("the session index"))?;
        for c in ended {
            m.remove(&c);
        }
        if let Some((c, expires_at)) = started {
            m.insert(c, (agent.into(), expires_at));
        }
        Ok(())
    }

    /// The agent a session credential belongs to while the session is valid at `now`.
    pub fn agent_for_session(&self, credential: &str, now: Millis) -> Result<Option<AgentId>, EngineError> {
        let m = self
            .sessions
            .read()
            .map_err(|_| EngineError::Poisoned("the session index"))?;
        Ok(m.get(credential)
            .filter(|(_, expires_at)| session_valid(*expires_at, now))
            .map(|(agent, _)| agent.clone()))
    }

    /// The agent a credential belongs to.
    pub fn agent_for_credential(&self, credential: &str) -> Result<Option<AgentId>, EngineError> {
        let m = self
            .credentials
            .read()
            .map_err(|_| EngineError::Poisoned("the credential index"))?;
        Ok(m.get(credential).cloned())
    }
}
