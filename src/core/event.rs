//! What the core decides: effects to carry out and changes to make durable.
//!
//! [`Effect`]s are carried out by the actor shells (`actors/`); [`Change`]s go through the
//! durability seam (`store/`) before the operation that caused them is acknowledged.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::routing::LastOwner;
use super::supervisor::{AuditEntry, Supervisor};
use super::{
    AccountRef, Agent, AgentId, Code, Conversation, ConversationId, Delivery, EntryPoint, EntryPointId, Message,
    Millis, Offer, OfferKind, Presence, Queue, QueueId,
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

/// An event for one agent's desktops (../shared/API.md "Server to desktop").
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
    /// The customer types (`on`) or stopped (issue 26 item 8); shown until `until`.
    CustomerTyping {
        conversation: ConversationId,
        on: bool,
        until: Option<Millis>,
    },
    /// The delivery state of an outbound message changed (../shared/API.md `message_status`).
    MessageStatus {
        conversation: ConversationId,
        seq: u64,
        delivery: Delivery,
        delivery_error: Option<String>,
    },
}

/// An engine-wide fact for metrics, logs and tests.
#[derive(Debug, Clone, PartialEq)]
pub enum Observation {
    Arrived {
        conversation: ConversationId,
        queue: QueueId,
        /// The customer's message opened it (not a transfer or overflow into the queue).
        opened: bool,
    },
    /// A conversation waited its queue's overflow time and moved to another queue.
    Overflowed {
        conversation: ConversationId,
        from: QueueId,
        to: QueueId,
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
    /// A waiting conversation's routing moved on by itself (../shared/SPEC.md "Routing depth"): it
    /// is now in `step`, and/or the preference for `preference_ended` is over.
    Rerouted {
        conversation: ConversationId,
        step: Option<usize>,
        preference_ended: Option<AgentId>,
    },
    /// A supervisor or the admin changed an agent's presence (the audit trail's entry).
    Audited(AuditEntry),
    /// The customer of `conversation` rated it (`survey.rs`): `agent` served it last, in
    /// `queue`.
    Rated {
        conversation: ConversationId,
        queue: QueueId,
        agent: Option<AgentId>,
        rating: u8,
        at: Millis,
    },
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
    /// The next routing deadline of a waiting conversation: its step ends or its
    /// preference runs out. At most one is armed per conversation (a new one replaces it).
    Route { conversation: ConversationId },
    /// The customer-inactivity deadline of an active conversation (a new one replaces it).
    Inactivity { conversation: ConversationId },
    /// The end of the window of the survey pending for `customer` on `entry_point`
    /// (`survey.rs`); one per pair, like the survey.
    Survey {
        entry_point: EntryPointId,
        customer: String,
    },
    /// The next sweep of a queue's place-in-line messages (`place.rs`); one per queue.
    Places { queue: QueueId },
    /// When a waiting conversation overflows from its queue (`queue::Overflow`); at most
    /// one per conversation, armed when it enters a queue that overflows.
    Overflow { conversation: ConversationId },
    /// A held queue (closed with `hold` hours) looks whether it opened: at each minute
    /// while it is held (opening times are whole minutes); one per queue.
    Opening { queue: QueueId },
}

/// Something the shell must do.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Deliver `event` to every desktop of `agent`.
    Notify { agent: AgentId, event: AgentEvent },
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
    /// Hand an outbound message to its channel's outbox sender (durable already).
    Send(Outbound),
    /// A Messenger page's token or channel state changed (durable already): the sender
    /// uses the new token from now on, and what waited for it goes out in order.
    Page(super::messenger::PageNote),
    /// Show a Messenger customer a sender action (typing, seen): sent at once, outside
    /// the outbox's order, and not retried.
    SenderAction {
        page_id: String,
        recipient: String,
        action: super::messenger::SenderAction,
    },
    /// The credential index at the edge changes: `revoked` (a token's hash) stops naming
    /// `account`, `granted` starts to. Carried out, like every effect, only once the
    /// change that caused it is durable, so no credential works that the store lacks;
    /// every socket opened with `revoked` ends then.
    Credential {
        account: AccountRef,
        revoked: Option<String>,
        granted: Option<String>,
    },
    /// The session index at the edge changes (password sign-ins): the `ended` session
    /// credentials stop naming `account` (and their sockets end); `started` (a credential
    /// and its expiry) starts to. Like [`Effect::Credential`], carried out only once
    /// durable.
    Session {
        account: AccountRef,
        ended: Vec<String>,
        started: Option<(String, Millis)>,
    },
    /// An event for the webhook sender (durable already).
    Webhook(Arc<super::webhooks::WebhookEvent>),
    /// The webhook subscriptions changed (one made or deleted): the sender's new list.
    Webhooks(Arc<Vec<super::webhooks::Webhook>>),
}

/// A change to make durable. Records are whole snapshots except transcripts, which grow
/// message by message.
// Agent and conversation records are boxed: a conversation is several hundred bytes (432
// before its report history), and unboxed it made every `Change` that large, so a batch's
// `Vec<Change>` (hundreds of changes under load) was moved and regrown in large, freshly
// faulted allocations. A box is one small
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
    /// A transcript message changed after it was written (its delivery state): the
    /// message's record is written again, whole, under its `seq`.
    MessageUpdate {
        conversation: ConversationId,
        message: Message,
    },
    /// An outbound message waits in the outbox (written, or rewritten with its progress).
    Outbox(Outbound),
    /// The outbox is done with message `seq` of `conversation` (accepted or failed for good).
    OutboxDone {
        conversation: ConversationId,
        seq: u64,
    },
    /// A Messenger message id (`mid`) was taken in at `at`; a redelivery is ignored.
    Mid {
        mid: String,
        at: Millis,
    },
    /// A customer's display name, looked up once per (page, customer).
    CustomerName {
        page_id: String,
        customer: String,
        name: String,
    },
    /// The last owner of a customer's conversation on an entry point (one record per
    /// pair, overwritten): the customer's next conversation there may prefer that agent.
    LastOwner {
        entry_point: EntryPointId,
        customer: String,
        owner: LastOwner,
    },
    /// Counters that must survive a restart (the next conversation number).
    Counters {
        next_conversation: u64,
        next_offer: u64,
        next_arrival: u64,
    },
    /// A supervisor's record, whole.
    Supervisor(Box<Supervisor>),
    /// An audit trail entry; `forget` is the entry that fell out of the retained window.
    Audit {
        entry: AuditEntry,
        forget: Option<u64>,
    },
    /// The report record of a conversation that just became complete (`report.rs`):
    /// written once, in the commit of the conversation's final state.
    Record(Box<super::report::ConversationRecord>),
    /// To be added to a report row of figures (`figures.rs`): a queue's or an agent's, of
    /// one interval. Rows only grow by such deltas.
    Figures(Box<super::figures::Delta>),
    /// What a complete conversation's transcript is searched by (`report::search_text`),
    /// written with its record and keyed like it.
    SearchText {
        arrived_at: Millis,
        conversation: ConversationId,
        text: String,
    },
    /// The survey pending for `customer` on `entry_point` (`survey.rs`): asked (`Some`,
    /// whole) or gone (`None`: answered, dropped or expired).
    Survey {
        entry_point: EntryPointId,
        customer: String,
        pending: Option<Box<super::survey::PendingSurvey>>,
    },
    /// A conversation's rating, kept beside its report record (keyed like it) whether
    /// the record is written yet or not: the key is the conversation's, so it is there
    /// once however the two commits fall.
    Satisfaction {
        arrived_at: Millis,
        conversation: ConversationId,
        satisfaction: super::survey::Satisfaction,
    },
    /// A canned response, whole (made or changed).
    CannedResponse(Box<super::canned::CannedResponse>),
    /// A canned response was deleted.
    CannedResponseRemoved(String),
    /// A webhook subscription, whole (made, or its delivery moved on).
    Webhook(Box<super::webhooks::Webhook>),
    /// A webhook subscription was deleted.
    WebhookRemoved(String),
    /// An event on its way out (`webhooks.rs`), made in the commit of its cause.
    WebhookEvent(Arc<super::webhooks::WebhookEvent>),
    /// Every subscription is done with events `from..=through`: they leave the store.
    WebhookTrim {
        from: u64,
        through: u64,
    },
}

/// An agent or system message on its way to a Messenger customer: one outbox entry. The
/// outbox is keyed by (conversation, seq), so one conversation's entries are in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outbound {
    pub conversation: ConversationId,
    /// The transcript message this entry carries.
    pub seq: u64,
    /// The customer's page-scoped id (`recipient.id`).
    pub recipient: String,
    /// The page whose token sends it. The token itself is not kept with the entry: the
    /// sender asks for the page's token of the moment, so a new one reaches what waits.
    pub page_id: String,
    /// The text in Send API-sized parts ([`super::messenger::split_text`]), in order.
    pub parts: Vec<String>,
    /// Parts the Send API accepted already (a restart resumes after them).
    pub parts_sent: u32,
    /// Sent as `MESSAGE_TAG` with tag `HUMAN_AGENT` (outside the 24-hour window).
    pub human_agent_tag: bool,
    /// When it entered the outbox (the outbox's oldest age).
    pub queued_at: Millis,
    /// A file an agent sent: one more step after the text parts (an attachment send).
    // Boxed, like `thread`: most entries have neither, and an entry is moved by value
    // (in changes, effects and the outbox's reports).
    pub file: Option<Box<super::messenger::OutboundFile>>,
    /// A Handover Protocol call instead of a message (taking or passing thread control):
    /// one step, in the conversation's order like a message.
    pub thread: Option<Box<super::messenger::ThreadCall>>,
    /// Quick replies offered with the text's last part (a rating question's "1" to "5";
    /// `survey.rs`); empty for every other entry.
    pub quick_replies: Vec<super::messenger::QuickReply>,
}

impl Outbound {
    /// Steps of the entry: each text part, then the file, then the thread call.
    /// `parts_sent` counts the steps done.
    pub fn steps(&self) -> u32 {
        self.parts.len() as u32 + u32::from(self.file.is_some()) + u32::from(self.thread.is_some())
    }
}

/// What the outbox sender reports about one entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutboxOutcome {
    /// Parts up to `parts_sent` were accepted; more follow.
    Progress { parts_sent: u32 },
    /// Every part was accepted; `at` is when the last part's request started (Meta
    /// stamps the message after that, so a watermark at or after its stamp covers it).
    Sent { at: Millis },
    /// Failed for good (a final 4xx, or the retries ran out), with the Graph error's message.
    Failed { error: String },
}
