//! One actor per conversation that has something for its customer: it talks to the
//! customer's channel. (Deadlines are the core's: the router sleeps until the next one.)

use std::sync::Arc;

use actix::prelude::*;

use crate::core::{ConversationId, Message, Outbound};

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
    /// A Messenger page's token or channel state changed (durable already).
    fn page(&self, _note: crate::core::messenger::PageNote) {}
    /// Shows a Messenger customer a sender action (typing, seen), at once, best effort.
    fn sender_action(&self, _page_id: &str, _recipient: &str, _action: crate::core::messenger::SenderAction) {}
}

/// A channel that delivers nowhere: customers over REST read the transcript.
#[derive(Debug, Default)]
pub struct NoChannel;

impl CustomerChannel for NoChannel {
    fn deliver(&self, _conversation: &ConversationId, _message: &Message) {}
    fn ended(&self, _conversation: &ConversationId, _reason: &str) {}
}

/// Talks to one conversation's customer channel, in the order the router decided.
pub struct ConversationActor {
    conversation: ConversationId,
    channel: Arc<dyn CustomerChannel>,
}

impl ConversationActor {
    pub fn new(conversation: ConversationId, channel: Arc<dyn CustomerChannel>) -> Self {
        ConversationActor { conversation, channel }
    }
}

impl Actor for ConversationActor {
    type Context = Context<Self>;
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
