//! An agent: presence state, capacity and the conversations that hold its slots.
//!
//! A slot is held by a conversation that is offered to the agent, active with it, or
//! waiting for its wrap-up. [`Agent::eligible`] is the one definition of "may receive a new
//! offer" (../shared/SPEC.md Routing), used by routing and by the invariant checks alike.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::routing::Skills;
use super::{Account, AgentId, ConversationId, Millis, QueueId};

/// Presence state (../shared/SPEC.md Agents).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, strum::IntoStaticStr, strum::EnumIter)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum Presence {
    LoggedOut,
    Idle,
    Available,
    Rona,
}

impl Presence {
    /// The wire name, as ../shared/API.md spells it.
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// One agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Agent {
    pub id: AgentId,
    pub name: String,
    /// Queues this agent serves, in the order given at creation.
    pub queues: Vec<QueueId>,
    /// Most conversations held at once (offered + active + owing wrap-up).
    pub capacity: u32,
    pub presence: Presence,
    /// The reason for being idle; `Some` only while `presence` is `Idle`.
    pub idle_code: Option<String>,
    /// When `presence` (or the idle code) last changed.
    pub state_since: Millis,
    /// Routing key: when this agent last became free (its last change to `available`
    /// or its last freed slot). The eligible agent with the smallest value is offered first.
    pub free_since: Millis,
    /// Conversations offered to this agent and not yet accepted.
    pub offers: BTreeSet<ConversationId>,
    /// Conversations in which this agent is the owner or the conference guest.
    pub active: BTreeSet<ConversationId>,
    /// Conversations this agent left and owes a wrap-up for, with the deadline of the
    /// automatic wrap-up where `wrapup.auto_after_ms` is on.
    pub wrapups: BTreeMap<ConversationId, Option<Millis>>,
    /// What the agent authenticates with: its token's hash, password and sessions.
    #[serde(flatten)]
    pub account: Account,
    /// Skill name → level 1-10 (../shared/SPEC.md "Routing depth").
    pub skills: Skills,
}

impl Agent {
    /// A new agent, logged out.
    pub fn new(id: AgentId, name: String, queues: Vec<QueueId>, capacity: u32, now: Millis) -> Self {
        Agent {
            id,
            name,
            queues,
            capacity,
            presence: Presence::LoggedOut,
            idle_code: None,
            state_since: now,
            free_since: now,
            offers: BTreeSet::new(),
            active: BTreeSet::new(),
            wrapups: BTreeMap::new(),
            account: Account::default(),
            skills: Skills::new(),
        }
    }

    /// Slots in use: offered + active + owing wrap-up.
    pub fn load(&self) -> u32 {
        (self.offers.len() + self.active.len() + self.wrapups.len()) as u32
    }

    /// Holds at least one offered or active conversation (derived, ../shared/SPEC.md).
    pub fn engaged(&self) -> bool {
        !self.offers.is_empty() || !self.active.is_empty()
    }

    /// May receive a new offer: available, with a free slot.
    pub fn eligible(&self) -> bool {
        self.presence == Presence::Available && self.load() < self.capacity
    }

    /// Serves queue `q`.
    pub fn serves(&self, q: &str) -> bool {
        self.queues.iter().any(|x| x == q)
    }

    /// Sets presence; returns false (and changes nothing) when it is already that state.
    pub fn set_presence(&mut self, presence: Presence, idle_code: Option<String>, now: Millis) -> bool {
        if self.presence == presence && self.idle_code == idle_code {
            return false;
        }
        self.presence = presence;
        self.idle_code = idle_code;
        self.state_since = now;
        if presence == Presence::Available {
            self.free_since = now;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agent(capacity: u32) -> Agent {
        Agent::new("a1".into(), "Ann".into(), vec!["q1".into()], capacity, 10)
    }

    /// One row: presence, load, capacity, and whether the agent may be offered.
    fn check(
        presence: Presence,
        offers: usize,
        active: usize,
        wrapups: usize,
        capacity: u32,
        eligible: bool,
        engaged: bool,
    ) {
        let mut a = agent(capacity);
        a.presence = presence;
        for i in 0..offers {
            a.offers.insert(format!("o{i}"));
        }
        for i in 0..active {
            a.active.insert(format!("c{i}"));
        }
        for i in 0..wrapups {
            a.wrapups.insert(format!("w{i}"), None);
        }
        assert_eq!(
            a.eligible(),
            eligible,
            "{presence:?} {offers}/{active}/{wrapups} cap {capacity}"
        );
        assert_eq!(
            a.engaged(),
            engaged,
            "{presence:?} {offers}/{active}/{wrapups} cap {capacity}"
        );
        assert_eq!(a.load(), (offers + active + wrapups) as u32);
    }

    #[test]
    fn eligibility_table() {
        use Presence::*;
        check(Available, 0, 0, 0, 1, true, false);
        check(Available, 1, 0, 0, 1, false, true);
        check(Available, 0, 1, 0, 1, false, true);
        check(Available, 0, 0, 1, 1, false, false); // a wrap-up holds the slot
        check(Available, 0, 1, 0, 2, true, true);
        check(Available, 1, 1, 1, 3, false, true);
        check(Idle, 0, 0, 0, 1, false, false);
        check(Rona, 0, 0, 0, 1, false, false);
        check(LoggedOut, 0, 0, 0, 1, false, false);
    }

    #[test]
    fn setting_the_same_state_keeps_state_since() {
        let mut a = agent(1);
        assert!(a.set_presence(Presence::Available, None, 20));
        assert_eq!(a.state_since, 20);
        assert_eq!(a.free_since, 20);
        assert!(!a.set_presence(Presence::Available, None, 30));
        assert_eq!(a.state_since, 20);
        assert!(a.set_presence(Presence::Idle, Some("break".into()), 40));
        assert!(a.set_presence(Presence::Idle, Some("lunch".into()), 50));
        assert_eq!(a.state_since, 50);
    }
}
