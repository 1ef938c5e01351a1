//! The core's deadlines: one ordered table of every armed [`Timer`] (as quinn-proto's
//! connection keeps its timer table), so that what fires when is decided and tested in
//! one place.
//!
//! The floor arms and re-arms deadlines here as its rules say; the shell only asks when
//! the next one is due ([`Floor::next_deadline`]), sleeps until then, and hands the time
//! back ([`Floor::fire_due`]). The simulation drives the same two calls on its virtual
//! clock, so the timer path production runs is the one the invariants are checked on.
//!
//! Each timer has a *slot*: a conversation has at most one offer deadline, one routing
//! deadline and one inactivity deadline, and an agent one automatic wrap-up per
//! conversation; arming a slot again replaces its deadline. Where a deadline's reason goes
//! away on the hot path (an offer accepted, a wrap-up submitted, a conversation leaving
//! the floor), the floor cancels it, so that a busy floor's table holds what is live and
//! the shell is not woken for nothing; any other stale deadline fires and the rule it
//! reaches ignores it (correct either way, as the simulations check).

use std::collections::BTreeSet;

use super::event::Timer;
use super::{FastMap, Millis};

/// What one timer occupies: at most one deadline per slot.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Slot {
    Offer(String),
    Wrapup(String, String),
    Route(String),
    Inactivity(String),
    Survey(String, String),
    Places(String),
    Overflow(String),
    Opening(String),
}

impl Slot {
    fn of(timer: &Timer) -> Slot {
        match timer {
            Timer::Offer { conversation, .. } => Slot::Offer(conversation.clone()),
            Timer::Wrapup { agent, conversation } => Slot::Wrapup(agent.clone(), conversation.clone()),
            Timer::Route { conversation } => Slot::Route(conversation.clone()),
            Timer::Inactivity { conversation } => Slot::Inactivity(conversation.clone()),
            Timer::Survey { entry_point, customer } => Slot::Survey(entry_point.clone(), customer.clone()),
            Timer::Places { queue } => Slot::Places(queue.clone()),
            Timer::Overflow { conversation } => Slot::Overflow(conversation.clone()),
            Timer::Opening { queue } => Slot::Opening(queue.clone()),
        }
    }
}

/// Every armed deadline, ordered by time (then slot, so that deadlines due at the same
/// millisecond fire in one fixed order, whatever order they were armed in).
#[derive(Debug, Default)]
pub struct Deadlines {
    order: BTreeSet<(Millis, Slot)>,
    armed: FastMap<Slot, (Millis, Timer)>,
}

impl Deadlines {
    /// Arms `timer` at `at`, replacing the deadline its slot had.
    pub fn arm(&mut self, timer: Timer, at: Millis) {
        let slot = Slot::of(&timer);
        if let Some((old, _)) = self.armed.insert(slot.clone(), (at, timer)) {
            self.order.remove(&(old, slot.clone()));
        }
        self.order.insert((at, slot));
    }

    /// Whether `timer`'s slot has a deadline armed.
    pub fn is_armed(&self, timer: &Timer) -> bool {
        self.armed.contains_key(&Slot::of(timer))
    }

    /// Cancels the deadline of `timer`'s slot, if one is armed.
    pub fn cancel(&mut self, timer: &Timer) {
        let slot = Slot::of(timer);
        if let Some((at, _)) = self.armed.remove(&slot) {
            self.order.remove(&(at, slot));
        }
    }

    /// Cancels every deadline of conversation `id` (it left the floor): its offer,
    /// routing, inactivity and overflow deadlines.
    pub fn cancel_conversation(&mut self, id: &str) {
        for slot in [
            Slot::Offer(id.to_string()),
            Slot::Route(id.to_string()),
            Slot::Inactivity(id.to_string()),
            Slot::Overflow(id.to_string()),
        ] {
            if let Some((at, _)) = self.armed.remove(&slot) {
                self.order.remove(&(at, slot));
            }
        }
    }

    /// When the earliest deadline is due.
    pub fn next(&self) -> Option<Millis> {
        self.order.first().map(|(at, _)| *at)
    }

    /// Takes the earliest deadline if it is due at `now`.
    pub fn pop_due(&mut self, now: Millis) -> Option<Timer> {
        let (at, _) = self.order.first()?;
        if *at > now {
            return None;
        }
        let (_, slot) = self.order.pop_first()?;
        self.armed.remove(&slot).map(|(_, timer)| timer)
    }

    /// Deadlines armed.
    pub fn len(&self) -> usize {
        self.armed.len()
    }

    pub fn is_empty(&self) -> bool {
        self.armed.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offer(c: &str, id: u64) -> Timer {
        Timer::Offer {
            conversation: c.into(),
            offer: id,
        }
    }

    fn route(c: &str) -> Timer {
        Timer::Route { conversation: c.into() }
    }

    /// Deadlines come out in time order, one slot holds one deadline (the newest), and
    /// nothing comes out before it is due.
    #[test]
    fn the_table_orders_and_replaces() {
        let mut d = Deadlines::default();
        assert_eq!(d.next(), None);
        d.arm(offer("c1", 1), 300);
        d.arm(route("c1"), 100);
        d.arm(offer("c2", 2), 200);
        // A new offer of c1 replaces its first one, whatever its time.
        d.arm(offer("c1", 3), 150);
        assert_eq!(d.len(), 3);
        assert_eq!(d.next(), Some(100));
        assert_eq!(d.pop_due(99), None, "not due yet");
        assert_eq!(d.pop_due(1_000), Some(route("c1")));
        assert_eq!(d.pop_due(1_000), Some(offer("c1", 3)));
        assert_eq!(d.pop_due(1_000), Some(offer("c2", 2)));
        assert_eq!(d.pop_due(1_000), None);
        assert!(d.is_empty());
        // Re-arming a slot later moves it.
        d.arm(route("c9"), 10);
        d.arm(route("c9"), 50);
        assert_eq!(d.pop_due(20), None);
        assert_eq!(d.next(), Some(50));
    }

    /// A cancelled deadline never comes out; cancelling what is not armed changes nothing.
    #[test]
    fn cancelled_deadlines_go() {
        let mut d = Deadlines::default();
        d.arm(offer("c1", 1), 100);
        d.arm(route("c1"), 200);
        d.arm(
            Timer::Inactivity {
                conversation: "c1".into(),
            },
            300,
        );
        d.arm(offer("c2", 2), 400);
        // The slot, not the offer id, is what is cancelled.
        d.cancel(&offer("c1", 99));
        assert_eq!(d.next(), Some(200));
        d.cancel_conversation("c1");
        d.cancel_conversation("nothing");
        assert_eq!(d.len(), 1);
        assert_eq!(d.pop_due(1_000), Some(offer("c2", 2)));
        assert!(d.is_empty());
    }

    /// Deadlines due at the same time fire in one order, whatever order they were armed in.
    #[test]
    fn ties_fire_in_a_fixed_order() {
        let timers = [
            route("b"),
            offer("a", 1),
            route("a"),
            Timer::Inactivity {
                conversation: "a".into(),
            },
        ];
        let fired = |order: &[usize]| {
            let mut d = Deadlines::default();
            for &i in order {
                d.arm(timers[i].clone(), 5);
            }
            std::iter::from_fn(|| d.pop_due(5)).collect::<Vec<_>>()
        };
        assert_eq!(fired(&[0, 1, 2, 3]), fired(&[3, 2, 1, 0]));
    }
}
