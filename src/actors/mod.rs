//! The actix shells around the core.
//!
//! - [`router::RouterActor`] owns the [`crate::core::Floor`]: it turns each command into
//!   a core call, makes the resulting changes durable through the [`crate::store::Store`]
//!   seam, and only then acknowledges and carries out the effects.
//! - [`agent::AgentActor`], one per agent: fans events out to the agent's desktops
//!   (several subscribers, each with a bounded buffer) and runs automatic wrap-up timers.
//! - [`conversation::ConversationActor`], one per open conversation: runs the offer
//!   deadline timer and delivers agent and system messages to the customer's channel.
//! - [`queue::QueueActor`], one per queue: keeps the queue's live figures (waiting,
//!   longest wait, agents available) for metrics and dashboards.
//!
//! # Architecture invariant
//! Handlers hold no business rules. Every decision (who gets an offer, what RONA does,
//! who owes a wrap-up) is the core's; actors carry decisions out. All engine actors live
//! on one arbiter, so the messages between them never cross a thread (../shared/MEASURED.md: a
//! cross-thread round trip costs about a hundred same-thread ones).

pub mod agent;
pub mod conversation;
pub mod queue;
pub mod router;

use std::time::{SystemTime, UNIX_EPOCH};

use crate::core::Millis;

/// Where the shells read the time; the core never does.
pub trait Clock: Send + Sync + 'static {
    /// Milliseconds since the Unix epoch.
    fn now(&self) -> Millis;
}

/// The system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Millis {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as Millis)
            .unwrap_or(0)
    }
}

/// Delay from `now` until `at`, for an actor timer.
pub(crate) fn delay(now: Millis, at: Millis) -> std::time::Duration {
    std::time::Duration::from_millis(at.saturating_sub(now))
}
