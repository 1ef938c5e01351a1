//! One actor per open conversation: its offer deadline and its customer channel.

use std::sync::Arc;

use actix::prelude::*;

use super::router::{FireTimer, RouterActor};
use super::{delay, Clock};
use crate::core::{ConversationId, Message, Millis, Outbound, Timer};

/// Where agent and system messages go to reach the customer (the Messenger Send API for
/// Messenger conversations). The REST channel's customer reads the transcript instead.
pub trait CustomerChannel: Send + Sync + 'static {
    /// Delivers `message` of `conversation` to its customer.
    fn deliver(&self, conversation: &ConversationId, message: &Message);
    /// Tells the customer that `conversation` ended.
    fn ended(&self, conversation: &ConversationId, reason: &str);
    /// Sends an outbox entry (already durable) in order after every earlier one of its
    /// conversation, and reports the outcome back to the engine. A channel without an
    /// outbox leaves the entry where it is (it is sent after a restart with a channel).
    fn send(&self, _outbound: Outbound) {}
}

/// A channel that delivers nowhere: customers over REST read the transcript.
#[derive(Debug, Default)]
pub struct NoChannel;

impl CustomerChannel for NoChannel {
    fn deliver(&self, _conversation: &ConversationId, _message: &Message) {}
    fn ended(&self, _conversation: &ConversationId, _reason: &str) {}
}

/// Runs the offer deadline of one conversation and talks to its customer's channel.
pub struct ConversationActor {
    conversation: ConversationId,
    router: Addr<RouterActor>,
    clock: Arc<dyn Clock>,
    channel: Arc<dyn CustomerChannel>,
    /// The armed offer deadline; a new offer replaces it.
    offer_timer: Option<SpawnHandle>,
    /// The armed routing deadline (step or preference) and inactivity deadline; a new
    /// one of a kind replaces the armed one.
    route_timer: Option<SpawnHandle>,
    inactivity_timer: Option<SpawnHandle>,
}

impl ConversationActor {
    pub fn new(
        conversation: ConversationId,
        router: Addr<RouterActor>,
        clock: Arc<dyn Clock>,
        channel: Arc<dyn CustomerChannel>,
    ) -> Self {
        ConversationActor {
            conversation,
            router,
            clock,
            channel,
            offer_timer: None,
            route_timer: None,
            inactivity_timer: None,
        }
    }
}

impl Actor for ConversationActor {
    type Context = Context<Self>;
}

/// Arm the deadline of offer `offer` at `at`.
#[derive(Message)]
#[rtype(result = "()")]
pub struct ArmOffer {
    pub offer: u64,
    pub at: Millis,
}

impl Handler<ArmOffer> for ConversationActor {
    type Result = ();

    /// Replaces any earlier deadline: a conversation has at most one offer at a time.
    fn handle(&mut self, msg: ArmOffer, ctx: &mut Self::Context) {
        let _span = tracing::trace_span!("conversation_actor", conversation = %self.conversation, message = "ArmOffer")
            .entered();
        let timer = Timer::Offer {
            conversation: self.conversation.clone(),
            offer: msg.offer,
        };
        let router = self.router.clone();
        let handle = ctx.run_later(delay(self.clock.now(), msg.at), move |act, _| {
            act.offer_timer = None;
            router.do_send(FireTimer { timer });
        });
        if let Some(old) = self.offer_timer.replace(handle) {
            ctx.cancel_future(old);
        }
    }
}

/// Arm a routing deadline ([`Timer::Route`]) or the inactivity deadline
/// ([`Timer::Inactivity`]) of this conversation at `at`.
#[derive(Message)]
#[rtype(result = "()")]
pub struct ArmDeadline {
    pub timer: Timer,
    pub at: Millis,
}

impl Handler<ArmDeadline> for ConversationActor {
    type Result = ();

    /// Replaces the armed deadline of the same kind: the core arms at most one of each.
    fn handle(&mut self, msg: ArmDeadline, ctx: &mut Self::Context) {
        let _span =
            tracing::trace_span!("conversation_actor", conversation = %self.conversation, message = "ArmDeadline")
                .entered();
        let inactivity = matches!(msg.timer, Timer::Inactivity { .. });
        let router = self.router.clone();
        let timer = msg.timer;
        let handle = ctx.run_later(delay(self.clock.now(), msg.at), move |act, _| {
            if inactivity {
                act.inactivity_timer = None;
            } else {
                act.route_timer = None;
            }
            router.do_send(FireTimer { timer });
        });
        let slot = if inactivity {
            &mut self.inactivity_timer
        } else {
            &mut self.route_timer
        };
        if let Some(old) = slot.replace(handle) {
            ctx.cancel_future(old);
        }
    }
}

/// Deliver an agent or system message to the customer.
#[derive(Message)]
#[rtype(result = "()")]
pub struct ToCustomer {
    pub message: Message,
}

impl Handler<ToCustomer> for ConversationActor {
    type Result = ();

    fn handle(&mut self, msg: ToCustomer, _ctx: &mut Self::Context) {
        let _span =
            tracing::trace_span!("conversation_actor", conversation = %self.conversation, message = "ToCustomer")
                .entered();
        self.channel.deliver(&self.conversation, &msg.message);
    }
}

/// The conversation ended: tell the customer (if `tell_customer`) and stop.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Close {
    pub reason: String,
    pub tell_customer: bool,
}

impl Handler<Close> for ConversationActor {
    type Result = ();

    fn handle(&mut self, msg: Close, ctx: &mut Self::Context) {
        let _span =
            tracing::trace_span!("conversation_actor", conversation = %self.conversation, message = "Close").entered();
        if msg.tell_customer {
            self.channel.ended(&self.conversation, &msg.reason);
        }
        ctx.stop();
    }
}
