//! One actor per agent: the agent's desktops. (Its automatic wrap-up deadlines are the
//! core's: the router sleeps until the next one.)

use std::collections::HashMap;
use std::sync::Arc;

use actix::prelude::*;
use tokio::sync::mpsc;

use crate::core::{AgentEvent, AgentId};

/// Events queued for one desktop before it counts as too slow and is dropped.
pub const SUBSCRIBER_BUFFER: usize = 1024;

/// Fans an agent's events out to its desktops.
pub struct AgentActor {
    /// The agent this actor serves.
    agent: AgentId,
    /// Connected desktops by subscription number. A desktop whose buffer is full is
    /// dropped (its receiver sees the end of the stream) and resumes by reconnecting.
    subscribers: HashMap<u64, mpsc::Sender<Arc<AgentEvent>>>,
}

impl AgentActor {
    pub fn new(agent: AgentId) -> Self {
        AgentActor {
            agent,
            subscribers: HashMap::new(),
        }
    }
}

impl Actor for AgentActor {
    type Context = Context<Self>;
}

/// Deliver one event to every desktop of the agent.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Deliver {
    pub event: Arc<AgentEvent>,
}

impl Handler<Deliver> for AgentActor {
    type Result = ();

    /// Sends to each desktop without waiting; a full or closed desktop is dropped.
    fn handle(&mut self, msg: Deliver, _ctx: &mut Self::Context) {
        let _span = tracing::trace_span!("agent_actor", agent = %self.agent, message = "Deliver").entered();
        let agent = &self.agent;
        self.subscribers.retain(|id, tx| match tx.try_send(msg.event.clone()) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                tracing::warn!(agent = %agent, subscription = id, "desktop too slow, dropping it");
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        });
    }
}

/// Add a desktop.
#[derive(Message)]
#[rtype(result = "()")]
pub struct AddSubscriber {
    /// Unique number of the subscription.
    pub id: u64,
    pub tx: mpsc::Sender<Arc<AgentEvent>>,
}

impl Handler<AddSubscriber> for AgentActor {
    type Result = ();

    fn handle(&mut self, msg: AddSubscriber, _ctx: &mut Self::Context) {
        let _span = tracing::trace_span!("agent_actor", agent = %self.agent, message = "AddSubscriber").entered();
        self.subscribers.insert(msg.id, msg.tx);
    }
}

/// How many desktops are connected (for metrics and tests).
#[derive(Message)]
#[rtype(result = "usize")]
pub struct CountSubscribers;

impl Handler<CountSubscribers> for AgentActor {
    type Result = usize;

    fn handle(&mut self, _msg: CountSubscribers, _ctx: &mut Self::Context) -> usize {
        let _span = tracing::trace_span!("agent_actor", agent = %self.agent, message = "CountSubscribers").entered();
        self.subscribers.retain(|_, tx| !tx.is_closed());
        self.subscribers.len()
    }
}

/// The router that owns this actor was replaced (the engine rebuilt itself): drop every
/// desktop (each sees its event stream end, closes with 1013 and resumes from `hello` on
/// reconnecting) and stop.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Retire;

impl Handler<Retire> for AgentActor {
    type Result = ();

    fn handle(&mut self, _msg: Retire, ctx: &mut Self::Context) {
        let _span = tracing::trace_span!("agent_actor", agent = %self.agent, message = "Retire").entered();
        self.subscribers.clear();
        ctx.stop();
    }
}
