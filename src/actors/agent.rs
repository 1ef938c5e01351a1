//! One actor per agent: the agent's desktops and its automatic wrap-up timers.

use std::collections::HashMap;
use std::sync::Arc;

use actix::prelude::*;
use tokio::sync::mpsc;

use super::router::{FireTimer, RouterActor};
use super::{delay, Clock};
use crate::core::{AgentEvent, AgentId, ConversationId, Millis, Timer};

/// Events queued for one desktop before it counts as too slow and is dropped.
pub const SUBSCRIBER_BUFFER: usize = 1024;

/// Fans an agent's events out to its desktops.
pub struct AgentActor {
    /// The agent this actor serves.
    agent: AgentId,
    router: Addr<RouterActor>,
    clock: Arc<dyn Clock>,
    /// Connected desktops by subscription number. A desktop whose buffer is full is
    /// dropped (its receiver sees the end of the stream) and resumes by reconnecting.
    subscribers: HashMap<u64, mpsc::Sender<Arc<AgentEvent>>>,
    /// Armed automatic wrap-up timers by conversation.
    wrapup_timers: HashMap<ConversationId, SpawnHandle>,
}

impl AgentActor {
    pub fn new(agent: AgentId, router: Addr<RouterActor>, clock: Arc<dyn Clock>) -> Self {
        AgentActor {
            agent,
            router,
            clock,
            subscribers: HashMap::new(),
            wrapup_timers: HashMap::new(),
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

/// Arm the automatic wrap-up of `conversation` at `at`.
#[derive(Message)]
#[rtype(result = "()")]
pub struct ArmWrapup {
    pub conversation: ConversationId,
    pub at: Millis,
}

impl Handler<ArmWrapup> for AgentActor {
    type Result = ();

    /// When it fires, the router asks the core, which ignores it if the wrap-up was
    /// submitted meanwhile.
    fn handle(&mut self, msg: ArmWrapup, ctx: &mut Self::Context) {
        let _span = tracing::trace_span!("agent_actor", agent = %self.agent, message = "ArmWrapup").entered();
        let timer = Timer::Wrapup {
            agent: self.agent.clone(),
            conversation: msg.conversation.clone(),
        };
        let router = self.router.clone();
        let conversation = msg.conversation.clone();
        let handle = ctx.run_later(delay(self.clock.now(), msg.at), move |act, _| {
            act.wrapup_timers.remove(&conversation);
            router.do_send(FireTimer { timer });
        });
        if let Some(old) = self.wrapup_timers.insert(msg.conversation, handle) {
            ctx.cancel_future(old);
        }
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
/// reconnecting) and stop, with the automatic wrap-up timers.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Retire;

impl Handler<Retire> for AgentActor {
    type Result = ();

    fn handle(&mut self, _msg: Retire, ctx: &mut Self::Context) {
        let _span = tracing::trace_span!("agent_actor", agent = %self.agent, message = "Retire").entered();
        self.subscribers.clear();
        for (_, handle) in self.wrapup_timers.drain() {
            ctx.cancel_future(handle);
        }
        ctx.stop();
    }
}
