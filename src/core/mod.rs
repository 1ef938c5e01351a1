//! The pure routing core: agents, queues, conversations and the routing choice.
//!
//! # Architecture invariant
//! Nothing in this module does I/O. There is no actix, tokio, sled, HTTP or clock read
//! here: time (`now`, milliseconds since the Unix epoch) comes in as an argument, and
//! every decision goes out as a value ([`Effect`]s to carry out and [`Change`]s to make
//! durable). This makes the core deterministic, so [`Floor`] can be driven by a seeded
//! simulation through millions of steps faster than real time (see `tests/simulation.rs`).
//!
//! The core is one state machine, [`Floor`], built from small per-entity parts:
//! [`agent::Agent`] (presence and capacity), [`conversation::Conversation`] (lifecycle,
//! offer, participants, transcript) and [`queue::Queue`] (waiting order). Routing needs a
//! consistent view across all three (an agent that serves two queues must never be
//! over-offered), so the reservation of an agent's slot and the offer are one step of
//! [`Floor`], never two messages that another could slip between.

pub mod accounts;
pub mod agent;
pub mod canned;
pub mod command;
pub mod conversation;
pub mod deadlines;
pub mod earlier;
pub mod error;
pub mod event;
pub mod figures;
pub mod floor;
pub mod hours;
pub mod invariants;
pub mod journal;
pub mod limits;
pub mod messenger;
pub mod place;
pub mod placement;
pub mod queue;
pub mod report;
pub mod routing;
pub mod supervisor;
pub mod survey;
pub mod tenant;
pub mod webhooks;
#[cfg(test)]
mod wire_names;

pub use accounts::{session_valid, Account, AccountKind, AccountRef, Grant, SignIn};
pub use agent::{Agent, Presence};
pub use command::{Command, Detail, Principal, QueueStats, Reply, DEFAULT_CAPACITY};
pub use conversation::{
    Attachment, Author, AuthorKind, Channel, ConferenceState, Conversation, ConversationState, Customer, Delivery,
    Message, Offer, OfferKind, RoutingState, WrapupRecord,
};
pub use error::{CoreError, ErrorKind};
pub use event::{AgentEvent, Change, Effect, Observation, Outbound, OutboxOutcome, Timer, WithdrawReason};
pub use floor::{Codes, FinishedAct, Floor, Rules, TransferNoAnswer};
pub use queue::{EntryPoint, Queue};
pub use report::{
    ConversationRecord, History, Outcome, RecordAgent, RecordCursor, RecordFilter, RecordPage, RecordQuery,
};
pub use routing::{AgentChoice, LastOwner, Opening, Requirements, Skills, Step};
pub use supervisor::{AuditEntry, AuditLog, Changer, Supervisor, SupervisorId, AUDIT_READ_MAX, AUDIT_RETAIN};

/// The hash map of the engine's hot paths (the floor's records, the router's actor
/// addresses): std's `HashMap` with foldhash instead of SipHash, which took an eighth of
/// all instructions of a load run hashing ids. foldhash is seeded per process, like std's
/// default; ids from outside (customer ids) are hashed too, so a fixed-key hash is not
/// an option.
pub type FastMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

/// Milliseconds since the Unix epoch. The core never reads a clock; callers pass `now`.
pub type Millis = u64;

/// Agent ids, queue ids, entry point ids and conversation ids are plain strings of 1 to 64
/// characters from `[A-Za-z0-9_.-]` (../shared/API.md).
pub type AgentId = String;
/// See [`AgentId`].
pub type QueueId = String;
/// See [`AgentId`].
pub type ConversationId = String;
/// See [`AgentId`].
pub type EntryPointId = String;

/// A `{code, label}` pair: a wrap-up reason or an idle code.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Code {
    /// Stable machine-readable code, e.g. `resolved`.
    pub code: String,
    /// What a person sees, e.g. `Resolved`.
    pub label: String,
}

/// True when `id` is a valid id: 1 to 64 characters from `[A-Za-z0-9_.-]`.
pub fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'-')
}

/// Longest text of one message, in characters. Longer texts are refused, not cut.
pub const MAX_TEXT_CHARS: usize = 20_000;
/// Longest display name (agent, queue, entry point, customer), in characters.
pub const MAX_NAME_CHARS: usize = 200;
/// Largest capacity one agent may have.
pub const MAX_CAPACITY: u32 = 100;
