//! What the core decides: effects to carry out and changes to make durable.
//!
//! [`Effect`]s are carried out by the actor shells (`actors/`); [`Change`]s go through the
//! durability seam (`store/`) before the operation that caused them is acknowledged.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::{
    Agent, AgentId, Code, Conversation, ConversationId, EntryPoint, Message, Millis, Offer, OfferKind, Presence, Queue,
    QueueId,
};

/// Why an offer ended without being accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, strum::IntoStaticStr, strum::EnumIter)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum WithdrawReason {
    /// The deadline passed (any kind of offer).
    Expired,
    /// The customer ended the conversation.
    CustomerLeft,
    /// The owner ended the conversation while a conference offer was pending.
    ConversationEnded,
}

impl WithdrawReason {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// An event for one agent's desktops (API.md "Server to desktop").
#[derive(Debug, Clone, PartialEq)]
pub enum AgentEvent {
    StateChanged {
        state: Presence,
        idle_code: Option<String>,
        state_since: Millis,
        /// Why the engine changed the state (`offer_expired`), or `None` for the agent's own change.
        reason: Option<&'static str>,
    },
    /// An offer to the agent. `conversation` is a snapshot for the offer popover: every
    /// field as at the offer, but its `transcript` holds only the customer's first message
    /// (what an offer shows, [`Conversation::first_text`]), not the whole chat, which a
    /// transferred or re-offered conversation may have long. The whole conversation comes
    /// with [`AgentEvent::Conversation`] on accept.
    Offer {
        conversation: Arc<Conversation>,
        offer: Offer,
    },
    OfferWithdrawn {
        conversation: ConversationId,
        reason: WithdrawReason,
    },
    /// The whole conversation, sent on accept.
    Conversation(Arc<Conversation>),
    Message {
        conversation: ConversationId,
        message: Message,
    },
    ParticipantJoined {
        conversation: ConversationId,
        agent: AgentId,
    },
    ParticipantLeft {
        conversation: ConversationId,
        agent: AgentId,
    },
    /// Sent to the owner when its conference offer expired.
    ConferenceNotAccepted {
        conversation: ConversationId,
        agent: AgentId,
    },
    ConversationEnded {
        conversation: ConversationId,
        reason: String,
    },
    WrapupRequired {
        conversation: ConversationId,
        reasons: Arc<Vec<Code>>,
    },
}

/// An engine-wide fact for metrics, logs and tests.
#[derive(Debug, Clone, PartialEq)]
pub enum Observation {
    Arrived {
        conversation: ConversationId,
        queue: QueueId,
    },
    Offered {
        conversation: ConversationId,
        agent: AgentId,
        kind: OfferKind,
    },
    Accepted {
        conversation: ConversationId,
        agent: AgentId,
        kind: OfferKind,
        offer_ms: u64,
        queue_wait_ms: u64,
    },
    Rona {
        conversation: ConversationId,
        agent: AgentId,
        kind: OfferKind,
    },
    Transferred {
        conversation: ConversationId,
        from: AgentId,
    },
    Conferenced {
        conversation: ConversationId,
        owner: AgentId,
        guest: AgentId,
    },
    Ended {
        conversation: ConversationId,
        reason: String,
    },
    WrappedUp {
        conversation: ConversationId,
        agent: AgentId,
        reason: String,
    },
    PresenceChanged {
        agent: AgentId,
        from: Presence,
        to: Presence,
    },
    /// An agent joined the floor: created (logged out), or restored in `presence`.
    AgentAdded { agent: AgentId, presence: Presence },
}

/// A timer that the actor shells arm; firing it calls back into the core.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Timer {
    /// Deadline of offer `offer` of `conversation`. Stale timers are ignored by the core.
    Offer { conversation: ConversationId, offer: u64 },
    /// Automatic wrap-up of `conversation` by `agent`.
    Wrapup {
        agent: AgentId,
        conversation: ConversationId,
    },
}

/// Something the shell must do.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Deliver `event` to every desktop of `agent`.
    Notify { agent: AgentId, event: AgentEvent },
    /// Arm `timer` to fire at `at`.
    Arm { timer: Timer, at: Millis },
    /// Deliver an agent or system message to the customer's channel.
    Deliver {
        conversation: ConversationId,
        message: Message,
    },
    /// Tell the customer's channel that the conversation ended.
    DeliverEnd {
        conversation: ConversationId,
        reason: String,
    },
    /// Record an engine-wide fact.
    Observe(Observation),
    /// The credential index at the edge changes: `revoked` (a credential hash) stops
    /// naming `agent`, `granted` starts to. Carried out, like every effect, only once the
    /// change that caused it is durable, so no credential works that the store lacks.
    Credential {
        agent: AgentId,
        revoked: Option<String>,
        granted: Option<String>,
    },
}

/// A change to make durable. Records are whole snapshots except transcripts, which grow
/// message by message.
// Agent and conversation records are boxed: a conversation is 432 bytes, and unboxed it
// made every `Change` that large, so a batch's `Vec<Change>` (hundreds of changes under
// load) was moved and regrown in large, freshly faulted allocations. A box is one small
// allocation beside the dozen that cloning the record already costs.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    Agent(Box<Agent>),
    Queue(Queue),
    EntryPoint(EntryPoint),
    /// The conversation's record, without its transcript.
    Conversation(Box<Conversation>),
    Message {
        conversation: ConversationId,
        message: Message,
    },
    /// Counters that must survive a restart (the next conversation number).
    Counters {
        next_conversation: u64,
        next_offer: u64,
        next_arrival: u64,
    },
}
