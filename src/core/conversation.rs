//! A conversation: one customer's chat from the first message to the last wrap-up.
//!
//! `state` moves `queued` → `offered` → `active` → `ended` (an expired offer moves it back
//! to `queued`). A conference offer is made while the conversation stays `active`, so at
//! most one [`Offer`] exists at a time, whatever its kind: ../shared/SPEC.md invariant 1 holds by
//! construction.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use strum::{EnumIter, IntoStaticStr};

use super::routing::{Requirements, Step};
use super::{AgentId, ConversationId, EntryPointId, Millis, QueueId};

/// Lifecycle state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, IntoStaticStr, EnumIter)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum ConversationState {
    Queued,
    Offered,
    Active,
    Ended,
}

impl ConversationState {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// Conference state, derived from the guest and the pending offer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, IntoStaticStr, EnumIter)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum ConferenceState {
    None,
    ConferenceRequested,
    Conference,
}

impl ConferenceState {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// Where the customer writes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, IntoStaticStr, EnumIter)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum Channel {
    Messenger,
    Rest,
}

impl Channel {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// Why an offer was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, IntoStaticStr, EnumIter)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum OfferKind {
    New,
    Transfer,
    Conference,
}

impl OfferKind {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// A request that asks one agent to take a conversation, with a deadline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Offer {
    /// Unique number of this offer; a timer that fires for an older offer is ignored.
    pub id: u64,
    pub agent: AgentId,
    pub kind: OfferKind,
    pub offered_at: Millis,
    pub expires_at: Millis,
    /// The agent that transferred or invited (transfer and conference offers).
    pub from_agent: Option<AgentId>,
}

/// The customer of a conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Customer {
    /// The channel's id of the customer (for Messenger, the page-scoped id).
    pub id: String,
    pub name: String,
}

/// Who wrote a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, IntoStaticStr, EnumIter)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum AuthorKind {
    Customer,
    Agent,
    System,
    /// A person who wrote from the Facebook Page's own inbox (a Messenger echo of a
    /// message another app sent): in the transcript, never sent again.
    Page,
}

impl AuthorKind {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// Author of a message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Author {
    pub kind: AuthorKind,
    pub id: Option<String>,
    pub name: String,
}

/// One transcript entry. `seq` starts at 1 and is the order the engine accepted it in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub seq: u64,
    pub author: Author,
    /// `""` for a message that carries only attachments.
    pub text: String,
    pub at: Millis,
    /// What the customer sent beside (or instead of) text: Messenger's attachments.
    pub attachments: Vec<Attachment>,
    /// Where an agent or system message to a Messenger customer is on its way; `None` for
    /// customer messages and for channels without delivery (REST).
    pub delivery: Option<Delivery>,
    /// The Send API's error, when `delivery` is [`Delivery::Failed`].
    pub delivery_error: Option<String>,
    /// A customer text longer than the engine's bound was kept cut at the bound.
    pub truncated: bool,
    /// When the Send API's request that carried it (its last part) started: delivery and
    /// read watermarks at or after it cover it.
    pub sent_at: Option<Millis>,
    /// An internal note (issue 26 item 5): written by an agent for the agents, shown
    /// marked as internal wherever it shows, and never sent to the customer's channel.
    pub internal: bool,
}

impl Message {
    /// A message with text only, no attachments, no delivery state.
    pub fn text(seq: u64, author: Author, text: &str, at: Millis) -> Message {
        Message {
            seq,
            author,
            text: text.into(),
            at,
            attachments: Vec::new(),
            delivery: None,
            delivery_error: None,
            truncated: false,
            sent_at: None,
            internal: false,
        }
    }

    /// Whether the customer sees this message (its own, and what agents and the system
    /// said to it): every message but internal notes.
    pub fn for_customer(&self) -> bool {
        !self.internal
    }
}

/// An attachment of a customer message: Messenger's `type` (`image`, `audio`, `video`,
/// `file`, `location`, `sticker`, ...) and its URL (a location or a fallback may have none).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    pub kind: String,
    pub url: Option<String>,
}

/// Where an outbound message is: `pending` (in the outbox) → `sent` (the Send API
/// accepted it) → `delivered` → `read`; or `failed` for good. It only moves forward
/// ([`Delivery::rank`]); a late `sent` never takes back a `read`, and `failed` is final.
/// `not_sent`: a system text that Meta's policy did not let go out (outside the window).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, IntoStaticStr, EnumIter)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum Delivery {
    Pending,
    Sent,
    Delivered,
    Read,
    Failed,
    NotSent,
}

impl Delivery {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// Order of progress. `failed` and `not_sent` are final: they rank above `read`, so
    /// no mark moves a message out of them (a message that fails after a watermark is
    /// never shown as read).
    pub fn rank(self) -> u8 {
        match self {
            Delivery::Pending => 0,
            Delivery::Sent => 1,
            Delivery::Delivered => 2,
            Delivery::Read => 3,
            Delivery::Failed | Delivery::NotSent => 4,
        }
    }

    /// No later report or mark changes it.
    pub fn is_final(self) -> bool {
        matches!(self, Delivery::Failed | Delivery::NotSent)
    }
}

/// A submitted wrap-up, kept with the conversation for reporting.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WrapupRecord {
    pub agent: AgentId,
    pub reason: String,
    pub at: Millis,
    /// True when the engine submitted the default reason (`wrapup.auto_after_ms`).
    pub automatic: bool,
}

/// One customer's chat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Conversation {
    pub id: ConversationId,
    pub channel: Channel,
    pub customer: Customer,
    pub entry_point: Option<EntryPointId>,
    /// The entry point's name when the conversation opened (shown to agents).
    pub source_page: String,
    pub queue: QueueId,
    pub queue_name: String,
    pub priority: i32,
    /// When the conversation entered its current queue.
    pub received_at: Millis,
    /// Arrival order, the last tie-break of the queue order.
    pub arrival: u64,
    pub state: ConversationState,
    pub offer: Option<Offer>,
    pub owner: Option<AgentId>,
    pub guest: Option<AgentId>,
    /// Agents that let an offer of this conversation expire; they are not offered it again
    /// while another eligible agent exists.
    pub rona_agents: BTreeSet<AgentId>,
    pub ended_reason: Option<String>,
    pub ended_at: Option<Millis>,
    pub wrapups: Vec<WrapupRecord>,
    /// Kept in the store message by message, not with the conversation's record.
    #[serde(skip)]
    pub transcript: Vec<Message>,
    /// Routing depth (../shared/SPEC.md): steps, the current one, and the preferred agent.
    pub routing: RoutingState,
    /// What its record will need (`report.rs`): arrival, queues, agents and their time.
    pub history: super::report::History,
    /// The note of the last transfer or conference request (issue 26 item 5): shown in
    /// the offers of it until an agent accepts one.
    pub handoff_note: Option<String>,
}

/// Where a conversation is in its routing (../shared/SPEC.md "Routing depth").
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoutingState {
    /// The steps that govern it: its entry point's (or those it was opened with), or its
    /// queue's after a transfer to a queue. Empty: no steps.
    pub steps: Vec<Step>,
    /// Index of the current step; `None` without steps.
    pub step: Option<usize>,
    /// The current step's requirements (`{}` without steps).
    pub requirements: Requirements,
    /// The agent it waits for alone, while the preference holds.
    pub preferred_agent: Option<AgentId>,
    /// When the preference ends (`received_at` + `routing.last_agent_ms`).
    pub preferred_until: Millis,
    /// The agent that last owned it (the preferred agent of the customer's next
    /// conversation on the same entry point).
    pub last_owner: Option<AgentId>,
    /// Inactivity counts from here: the customer's last message, or the owner's accept
    /// if later. `None` until an owner accepts.
    pub inactive_since: Option<Millis>,
}

impl Conversation {
    /// Conference state, derived.
    pub fn conference_state(&self) -> ConferenceState {
        if self.guest.is_some() {
            ConferenceState::Conference
        } else if matches!(&self.offer, Some(o) if o.kind == OfferKind::Conference) {
            ConferenceState::ConferenceRequested
        } else {
            ConferenceState::None
        }
    }

    /// Open means not ended: the customer's later messages join it.
    pub fn is_open(&self) -> bool {
        self.state != ConversationState::Ended
    }

    /// The text shown in an offer popover: the customer's first message (or the first
    /// note of a conversation that a Messenger handover opened).
    pub fn first_text(&self) -> &str {
        self.transcript
            .iter()
            .find(|m| m.author.kind == AuthorKind::Customer)
            .or_else(|| self.transcript.first())
            .map(|m| m.text.as_str())
            .unwrap_or("")
    }

    /// When the customer last wrote, if ever (the Messenger 24-hour window counts from it).
    /// The latest time, not the last message's: a Messenger message's `at` is Meta's
    /// timestamp, and a late redelivery may be older than a message taken in before it.
    pub fn last_customer_message_at(&self) -> Option<Millis> {
        self.transcript
            .iter()
            .filter(|m| m.author.kind == AuthorKind::Customer)
            .map(|m| m.at)
            .max()
    }

    /// Agents currently in the conversation (owner, then guest).
    pub fn participants(&self) -> impl Iterator<Item = &AgentId> {
        self.owner.iter().chain(self.guest.iter())
    }
}
