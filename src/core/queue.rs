//! Queues and entry points.
//!
//! A queue orders its waiting conversations by [`QueueKey`]: higher priority first, then
//! the oldest `received_at`, then arrival order. A conversation that comes back after an
//! expired offer keeps its original key, and so its place.

use std::cmp::Reverse;
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::routing::Step;
use super::{ConversationId, EntryPointId, Millis, QueueId};

/// Position of a waiting conversation in its queue; smaller is served first.
pub type QueueKey = (Reverse<i32>, Millis, u64);

/// A named line of waiting conversations.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Queue {
    pub id: QueueId,
    pub name: String,
    /// Routing steps for conversations transferred into this queue (empty: any agent of
    /// the queue will do).
    pub routing_steps: Vec<Step>,
    /// Waiting conversations in serving order. Rebuilt from the conversations on recovery,
    /// so it is not part of the queue's stored record.
    #[serde(skip)]
    pub waiting: BTreeMap<QueueKey, ConversationId>,
    /// Business hours (`None`: always open; ../shared/API.md is silent, docs/API-NOTES.md
    /// "Business hours").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hours: Option<std::sync::Arc<super::hours::Hours>>,
    /// The satisfaction survey after a served conversation (`None`: none; issue 26 item
    /// 7, `survey.rs`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub survey: Option<std::sync::Arc<super::survey::Survey>>,
    /// The most conversations that may wait, and what a customer past it is told.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait_limit: Option<WaitLimit>,
    /// Answered within this many ms of arrival counts as within service level (`None`:
    /// [`crate::core::figures::DEFAULT_SERVICE_LEVEL_MS`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_level_ms: Option<u64>,
    /// Messages to waiting customers about their place in line (`None`: none; issue 26
    /// item 2, `place.rs`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub place_updates: Option<std::sync::Arc<super::place::PlaceUpdates>>,
    /// Where conversations that waited too long in it go (`None`: they stay; issue 26
    /// item 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overflow: Option<Overflow>,
    /// Closed with `hold` hours, so nothing waiting in it is offered: its conversations
    /// are out of the routing index (`floor/hold.rs`). Derived from the hours and the
    /// clock, so not stored.
    #[serde(skip)]
    pub held: bool,
}

/// A queue's overflow: a conversation that has waited `after_ms` in the queue (since it
/// entered it) without being offered moves to queue `to_queue`, where it waits like a
/// conversation transferred there: a new arrival of that queue, under that queue's steps,
/// keeping its priority. One offered at the time stays with the offer; should the offer
/// expire, it moves at once. It moves whatever the target's hours or bound on waiting
/// say: overflow never refuses or loses a conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Overflow {
    pub after_ms: u64,
    pub to_queue: QueueId,
}

/// The shortest wait an [`Overflow`] may name: a chain of queues that overflow into each
/// other moves a conversation at most this often.
pub const MIN_OVERFLOW_MS: u64 = 100;

/// The longest wait an [`Overflow`] may name (30 days).
pub const MAX_OVERFLOW_MS: u64 = 30 * 24 * 3_600_000;

impl Overflow {
    /// Accepts the overflow of queue `own` or says what is wrong with it (whether the
    /// target exists is the floor's to check).
    pub fn check(&self, own: &str) -> Result<(), super::CoreError> {
        if !(MIN_OVERFLOW_MS..=MAX_OVERFLOW_MS).contains(&self.after_ms) {
            return Err(super::CoreError::InvalidInput(format!(
                "overflow.after_ms must be {MIN_OVERFLOW_MS} to {MAX_OVERFLOW_MS} (30 days)"
            )));
        }
        if self.to_queue == own {
            return Err(super::CoreError::InvalidInput(
                "overflow.to_queue must be another queue".into(),
            ));
        }
        Ok(())
    }

    /// When a conversation that entered the queue at `since` overflows.
    pub fn due_at(&self, since: Millis) -> Millis {
        since.saturating_add(self.after_ms)
    }
}

/// A queue's bound on waiting conversations: a customer who would open one more while
/// `max_waiting` wait is told `reply`, and the conversation ends (reason `queue_full`).
/// Waiting counts the conversations in the queue not yet offered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WaitLimit {
    pub max_waiting: u32,
    pub reply: String,
}

/// The reason a conversation refused by a full queue ends with.
pub const QUEUE_FULL_REASON: &str = "queue_full";

/// Most conversations a [`WaitLimit`] may allow to wait.
pub const MAX_WAIT_LIMIT: u32 = 1_000_000;

impl WaitLimit {
    /// Accepts the limit or says what is wrong with it.
    pub fn check(&self) -> Result<(), super::CoreError> {
        if self.max_waiting == 0 || self.max_waiting > MAX_WAIT_LIMIT {
            return Err(super::CoreError::InvalidInput(format!(
                "wait_limit.max_waiting must be 1 to {MAX_WAIT_LIMIT}"
            )));
        }
        super::hours::check_reply("wait_limit.reply", &self.reply)
    }
}

impl Queue {
    /// A new, empty queue.
    pub fn new(id: QueueId, name: String) -> Self {
        Queue {
            id,
            name,
            routing_steps: Vec::new(),
            waiting: BTreeMap::new(),
            hours: None,
            survey: None,
            wait_limit: None,
            service_level_ms: None,
            place_updates: None,
            overflow: None,
            held: false,
        }
    }

    /// What the store keeps of it: everything but the waiting order, which is rebuilt
    /// from the conversations.
    pub fn record(&self) -> Queue {
        Queue {
            id: self.id.clone(),
            name: self.name.clone(),
            routing_steps: self.routing_steps.clone(),
            waiting: BTreeMap::new(),
            hours: self.hours.clone(),
            survey: self.survey.clone(),
            wait_limit: self.wait_limit.clone(),
            service_level_ms: self.service_level_ms,
            place_updates: self.place_updates.clone(),
            overflow: self.overflow.clone(),
            held: false,
        }
    }

    /// Its service level threshold in force.
    pub fn service_level_ms(&self) -> u64 {
        self.service_level_ms
            .unwrap_or(crate::core::figures::DEFAULT_SERVICE_LEVEL_MS)
    }

    /// The conversation served next, if any.
    pub fn head(&self) -> Option<(&QueueKey, &ConversationId)> {
        self.waiting.iter().next()
    }

    /// How long the head has waited at `now`.
    pub fn longest_wait_ms(&self, now: Millis) -> u64 {
        self.head().map(|((_, at, _), _)| now.saturating_sub(*at)).unwrap_or(0)
    }
}

/// A customer-facing address that feeds one queue (for Messenger, a Facebook Page).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntryPoint {
    pub id: EntryPointId,
    /// The source page shown to agents.
    pub name: String,
    pub queue: QueueId,
    pub page_id: Option<String>,
    /// Secret for the Messenger Send API; never shown by the API.
    pub page_access_token: Option<String>,
    /// Priority of the conversations it opens (higher first).
    pub priority: i32,
    /// Routing steps of the conversations it opens (empty: none).
    pub routing_steps: Vec<Step>,
    /// Messenger: the page's channel state and thread control.
    pub messenger: super::messenger::PageSettings,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn priority_then_received_at_then_arrival() {
        let mut q = Queue::new("q".into(), "Q".into());
        q.waiting.insert((Reverse(0), 100, 1), "old".into());
        q.waiting.insert((Reverse(0), 200, 2), "new".into());
        q.waiting.insert((Reverse(5), 300, 3), "vip".into());
        q.waiting.insert((Reverse(0), 100, 0), "first".into());
        let order: Vec<_> = q.waiting.values().cloned().collect();
        assert_eq!(order, ["vip", "first", "old", "new"]);
        assert_eq!(q.longest_wait_ms(1000), 700);
    }
}
