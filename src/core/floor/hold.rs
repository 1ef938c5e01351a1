//! A queue closed with `hold` hours (docs/API-NOTES.md "Business hours"), on the floor:
//! while it is closed nothing waiting in it is offered, whenever it arrived; at the
//! opening its line is served in order.
//!
//! A held queue's waiting conversations stay in its line (positions, figures and the
//! supervisor's view are unchanged) but are out of the routing index, so no agent is
//! matched with them. The closing is exact: before any offer from a queue with `hold`
//! hours, routing asks the hours ([`Floor::may_offer`]) and holds the queue at once
//! if it closed. The opening is seen by a deadline at each whole minute while the queue
//! is held (opening times are whole minutes in every zone), which puts the line back in
//! the index and routes it. `held` is derived from the hours and the clock, not stored:
//! a restarted floor holds a closed queue at its first routing.

use super::*;

impl Floor {
    /// Whether routing may offer `conversation`, waiting in its queue, at `now`: not
    /// while the queue is held, nor if it has just closed with `hold` hours (it is held
    /// now). On routing's path: a queue without hours costs a lookup, no allocation.
    pub(super) fn may_offer(&mut self, conversation: &str, now: Millis) -> bool {
        let Some(q) = self
            .conversations
            .get(conversation)
            .and_then(|c| self.queues.get(&c.queue))
        else {
            return true;
        };
        if q.held {
            return false;
        }
        if !q.hours.as_ref().is_some_and(|h| h.holds_at(now)) {
            return true;
        }
        let queue = q.id.clone();
        self.hold(&queue, now);
        false
    }

    /// Holds `queue`: its line leaves the routing index until it opens.
    fn hold(&mut self, queue: &str, now: Millis) {
        let Some(q) = self.queues.get_mut(queue) else { return };
        q.held = true;
        let line: Vec<ConversationId> = q.waiting.values().cloned().collect();
        for c in &line {
            self.unindex_waiting(c);
        }
        self.arm_opening(queue, now);
    }

    /// Ends `queue`'s hold: its line goes back in the index and is routed.
    pub(super) fn release(&mut self, queue: &str) {
        let Some(q) = self.queues.get_mut(queue) else { return };
        if !q.held {
            return;
        }
        q.held = false;
        let line: Vec<ConversationId> = q.waiting.values().cloned().collect();
        for c in &line {
            self.index_waiting(c);
        }
        self.touched_conversations.extend(line);
        self.deadlines.cancel(&Timer::Opening { queue: queue.into() });
    }

    /// A held queue's minute came: released and routed if it is open (or its hours no
    /// longer hold it), else armed for the next minute.
    pub fn opening_timer(&mut self, queue: &str, now: Millis) {
        let Some(q) = self.queues.get(queue) else { return };
        if !q.held {
            return;
        }
        if q.hours.as_ref().is_some_and(|h| h.holds_at(now)) {
            self.arm_opening(queue, now);
            return;
        }
        self.release(queue);
        self.route(now);
    }

    /// A change of `queue`'s hours applies at once: a hold they no longer make ends.
    pub(crate) fn hours_changed(&mut self, queue: &str, now: Millis) {
        let holds = self
            .queues
            .get(queue)
            .and_then(|q| q.hours.as_ref())
            .is_some_and(|h| h.holds_at(now));
        if !holds {
            self.release(queue);
            self.route(now);
        }
    }

    fn arm_opening(&mut self, queue: &str, now: Millis) {
        let next_minute = (now / 60_000 + 1) * 60_000;
        self.deadlines.arm(Timer::Opening { queue: queue.into() }, next_minute);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::hours::{Hours, OutsideHours, WeeklyHours};
    use crate::core::Account;

    fn at(s: &str) -> Millis {
        chrono::DateTime::parse_from_rfc3339(s)
            .expect("a time")
            .timestamp_millis() as Millis
    }

    fn hours(outside_hours: OutsideHours) -> Hours {
        Hours {
            time_zone: "UTC".into(),
            weekly: vec![WeeklyHours {
                days: ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
                    .map(String::from)
                    .to_vec(),
                open: "09:00".into(),
                close: "17:00".into(),
            }],
            exceptions: Vec::new(),
            closed_reply: "We open at 09:00.".into(),
            outside_hours,
        }
    }

    /// Queue `q` open 09:00 to 17:00 UTC, holding its line outside; Ann serves it.
    fn floor(now: Millis) -> Floor {
        let mut f = Floor::new(Rules {
            offer_timeout_ms: 3_600_000,
            ..Rules::default()
        });
        f.create_queue(
            "q",
            "Q",
            Vec::new(),
            Some(std::sync::Arc::new(hours(OutsideHours::Hold))),
            None,
            None,
        )
        .expect("queue");
        f.create_entry_point(EntryPoint {
            id: "e".into(),
            name: "Page".into(),
            queue: "q".into(),
            ..Default::default()
        })
        .expect("entry point");
        f.create_agent(
            "ann",
            "Ann",
            vec!["q".into()],
            2,
            Account::default(),
            Skills::new(),
            now,
        )
        .expect("agent");
        f
    }

    fn state(f: &Floor, c: &str) -> ConversationState {
        f.conversation(c).expect("held").state
    }

    #[test]
    fn a_customer_who_writes_at_night_is_told_and_offered_at_the_opening() {
        let night = at("2026-12-02T22:00:00Z");
        let mut f = floor(night);
        f.set_state("ann", Presence::Available, None, night).expect("available");
        let c = f.customer_writes("u1", night);
        let conv = f.conversation(&c).expect("held");
        assert_eq!(
            conv.transcript.last().map(|m| m.text.as_str()),
            Some("We open at 09:00.")
        );
        assert_eq!(
            state(&f, &c),
            ConversationState::Queued,
            "not offered: the queue is held"
        );
        assert!(f.queue("q").is_some_and(|q| q.held && q.waiting.len() == 1));
        assert_eq!(crate::core::invariants::check(&f), Vec::<String>::new());
        f.fire_until(at("2026-12-03T08:59:59Z"));
        assert_eq!(state(&f, &c), ConversationState::Queued);
        f.fire_until(at("2026-12-03T09:00:00Z"));
        assert_eq!(state(&f, &c), ConversationState::Offered, "offered at the opening");
        assert!(f.queue("q").is_some_and(|q| !q.held));
        assert_eq!(f.overdue(at("2026-12-03T09:00:00Z")), Vec::<Timer>::new());
    }

    #[test]
    fn at_the_closing_nothing_more_is_offered_whenever_it_arrived() {
        let day = at("2026-12-02T16:59:00Z");
        let mut f = floor(day);
        let c1 = f.customer_writes("u1", day);
        assert_eq!(state(&f, &c1), ConversationState::Queued, "nobody available yet");
        // Ann is there one second after the closing: no timer has run, nothing is offered.
        let closed = at("2026-12-02T17:00:01Z");
        f.set_state("ann", Presence::Available, None, closed)
            .expect("available");
        assert_eq!(state(&f, &c1), ConversationState::Queued);
        let c2 = f.customer_writes("u2", closed);
        assert_eq!(state(&f, &c2), ConversationState::Queued);
        assert_eq!(crate::core::invariants::check(&f), Vec::<String>::new());
        // The hours change to `wait`: applied at once, both are offered.
        f.execute(
            Command::UpdateQueue {
                queue: "q".into(),
                hours: Some(Some(std::sync::Arc::new(hours(OutsideHours::Wait)))),
                survey: None,
                wait_limit: None,
                service_level_ms: None,
                place_updates: None,
                overflow: None,
            },
            closed + 1,
        )
        .expect("hours changed");
        assert_eq!(state(&f, &c1), ConversationState::Offered);
        assert_eq!(state(&f, &c2), ConversationState::Offered);
    }

    #[test]
    fn a_restarted_floor_holds_a_closed_queue_and_serves_it_at_the_opening() {
        let night = at("2026-12-02T23:00:00Z");
        let mut f = floor(night);
        let c = f.customer_writes("u1", night);
        f.set_state("ann", Presence::Available, None, night).expect("available");
        let later = at("2026-12-03T08:30:00Z");
        let mut r = Floor::restore(
            f.rules().clone(),
            f.queues().map(Queue::record).collect(),
            f.entry_points().cloned().collect(),
            f.agents().cloned().collect(),
            f.conversations().cloned().collect(),
            (2, 1, 2),
            later,
        );
        assert_eq!(state(&r, &c), ConversationState::Queued, "held after the restart too");
        assert!(r.queue("q").is_some_and(|q| q.held));
        r.fire_until(at("2026-12-03T09:00:00Z"));
        assert_eq!(state(&r, &c), ConversationState::Offered);
    }
}
