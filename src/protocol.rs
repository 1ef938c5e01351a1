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
}

impl Shared {
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
