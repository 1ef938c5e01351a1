//! Overflow (issue 26 item 3), on the floor: a conversation that waits in a queue with an
//! [`Overflow`] longer than its `after_ms` moves to the queue it names. One deadline per
//! waiting conversation, armed when it enters such a queue (and again when an expired
//! offer puts it back), so a queue without overflow pays nothing.

use super::*;
use crate::core::queue::Overflow;

impl Floor {
    /// Sets (or with `None` removes) queue `id`'s overflow; checked first, the target
    /// must exist. Conversations waiting in the queue meet the new setting at once.
    pub(crate) fn set_overflow(&mut self, id: &str, overflow: Option<Overflow>, now: Millis) -> Result<(), CoreError> {
        if let Some(o) = &overflow {
            self.check_overflow(id, o)?;
        }
        let q = self
            .queues
            .get_mut(id)
            .ok_or_else(|| CoreError::UnknownQueue(id.into()))?;
        q.overflow = overflow;
        let record = q.record();
        let waiting: Vec<ConversationId> = q.waiting.values().cloned().collect();
        self.journal.change(Change::Queue(record));
        for c in &waiting {
            self.deadlines.cancel(&Timer::Overflow {
                conversation: c.clone(),
            });
            self.arm_overflow(c);
        }
        // A shortened wait may have passed already for some of them.
        for c in &waiting {
            self.overflow_timer(c, now);
        }
        Ok(())
    }

    /// Accepts `o` as queue `id`'s overflow or says what is wrong with it.
    pub(crate) fn check_overflow(&self, id: &str, o: &Overflow) -> Result<(), CoreError> {
        o.check(id)?;
        if !self.queues.contains_key(&o.to_queue) {
            return Err(CoreError::InvalidInput(format!(
                "overflow.to_queue: there is no queue {}",
                o.to_queue
            )));
        }
        Ok(())
    }

    /// Arms conversation `id`'s overflow deadline if it waits in a queue that overflows.
    pub(super) fn arm_overflow(&mut self, id: &str) {
        let Some(c) = self.conversations.get(id) else { return };
        let due = self
            .queues
            .get(&c.queue)
            .and_then(|q| q.overflow.as_ref())
            .filter(|_| c.state == ConversationState::Queued)
            .map(|o| o.due_at(c.received_at));
        if let Some(at) = due {
            self.deadlines.arm(
                Timer::Overflow {
                    conversation: id.into(),
                },
                at,
            );
        }
    }

    /// Conversation `id` leaves its queue for an offer: its overflow deadline goes (an
    /// expired offer puts it back and arms it again).
    pub(super) fn cancel_overflow(&mut self, id: &str) {
        let overflows = self
            .conversations
            .get(id)
            .and_then(|c| self.queues.get(&c.queue))
            .is_some_and(|q| q.overflow.is_some());
        if overflows {
            self.deadlines.cancel(&Timer::Overflow {
                conversation: id.into(),
            });
        }
    }

    /// Conversation `id`'s overflow deadline came: if it still waits (not offered) in a
    /// queue that overflows and has waited long enough, it moves to the target queue and
    /// is routed there. Armed again if early; ignored otherwise (an offered conversation
    /// is armed again if its offer expires and puts it back).
    pub fn overflow_timer(&mut self, id: &str, now: Millis) {
        let Some(c) = self.conversations.get(id) else { return };
        if c.state != ConversationState::Queued {
            return;
        }
        let Some(o) = self.queues.get(&c.queue).and_then(|q| q.overflow.clone()) else {
            return;
        };
        if now < o.due_at(c.received_at) {
            self.arm_overflow(id);
            return;
        }
        if !self.queues.contains_key(&o.to_queue) {
            return;
        }
        let from = c.queue.clone();
        self.dequeue(id);
        self.journal.effect(Effect::Observe(Observation::Overflowed {
            conversation: id.into(),
            from,
            to: o.to_queue.clone(),
        }));
        self.join_queue(id, &o.to_queue, now);
        self.route(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::hours::{Hours, OutsideHours};
    use crate::core::queue::WaitLimit;
    use crate::core::{Account, Reply};

    const T0: Millis = 1_000_000;

    fn queue(f: &mut Floor, id: &str, overflow: Option<Overflow>) -> Result<Reply, CoreError> {
        f.execute(
            Command::CreateQueue {
                id: id.into(),
                name: id.to_uppercase(),
                routing_steps: Vec::new(),
                hours: None,
                survey: None,
                wait_limit: None,
                service_level_ms: None,
                place_updates: None,
                overflow: overflow.map(Box::new),
            },
            T0,
        )
    }

    fn to(queue: &str, after_ms: u64) -> Option<Overflow> {
        Some(Overflow {
            after_ms,
            to_queue: queue.into(),
        })
    }

    /// Queue `a` overflows to `b` after 5 s; Ann serves `a`, Bob `b`, both logged out.
    fn floor() -> Floor {
        let mut f = Floor::new(Rules {
            offer_timeout_ms: 10_000,
            ..Rules::default()
        });
        queue(&mut f, "b", None).expect("b");
        queue(&mut f, "a", to("b", 5_000)).expect("a");
        f.create_entry_point(EntryPoint {
            id: "e".into(),
            name: "Page".into(),
            queue: "a".into(),
            ..Default::default()
        })
        .expect("entry point");
        for (id, q) in [("ann", "a"), ("bob", "b")] {
            f.create_agent(id, id, vec![q.into()], 1, Account::default(), Skills::new(), T0)
                .expect("agent");
        }
        f.take_effects();
        f
    }

    fn overflowed(f: &mut Floor) -> Vec<(String, String, String)> {
        f.take_effects()
            .into_iter()
            .filter_map(|e| match e {
                Effect::Observe(Observation::Overflowed { conversation, from, to }) => Some((conversation, from, to)),
                _ => None,
            })
            .collect()
    }

    fn queue_of(f: &Floor, c: &str) -> (String, ConversationState) {
        let c = f.conversation(c).expect("held");
        (c.queue.clone(), c.state)
    }

    #[test]
    fn a_conversation_that_waited_the_limit_moves_to_the_other_queue_and_is_offered_there() {
        let mut f = floor();
        f.set_state("bob", Presence::Available, None, T0).expect("bob");
        let c = f.customer_writes("u1", T0 + 1_000);
        f.fire_until(T0 + 5_999);
        assert_eq!(queue_of(&f, &c), ("a".into(), ConversationState::Queued), "not yet");
        assert!(overflowed(&mut f).is_empty());
        f.fire_until(T0 + 6_000);
        assert_eq!(overflowed(&mut f), [(c.clone(), "a".into(), "b".into())]);
        assert_eq!(queue_of(&f, &c), ("b".into(), ConversationState::Offered));
        let conv = f.conversation(&c).expect("held");
        assert_eq!(conv.offer.as_ref().map(|o| o.agent.as_str()), Some("bob"));
        assert_eq!(conv.received_at, T0 + 6_000, "it waits in b from the move");
        assert_eq!(conv.history.queues_before, ["a"], "its record names both queues");
        assert_eq!(conv.history.transfers, 0, "an overflow is no transfer");
    }

    #[test]
    fn an_offered_conversation_stays_with_its_offer_and_moves_when_the_offer_expires() {
        let mut f = floor();
        f.set_state("ann", Presence::Available, None, T0).expect("ann");
        let c = f.customer_writes("u1", T0);
        assert_eq!(queue_of(&f, &c), ("a".into(), ConversationState::Offered));
        f.fire_until(T0 + 9_999);
        assert_eq!(
            queue_of(&f, &c),
            ("a".into(), ConversationState::Offered),
            "the offer stands"
        );
        // Ann lets it expire at T0 + 10 s, past the 5 s: it moves at once.
        f.fire_until(T0 + 10_000);
        assert_eq!(queue_of(&f, &c), ("b".into(), ConversationState::Queued));
        assert_eq!(f.overdue(T0 + 10_000), Vec::<Timer>::new());
        // Accepted in time, it never moves.
        f.set_state("ann", Presence::Available, None, T0 + 10_000).expect("ann");
        let d = f.customer_writes("u2", T0 + 10_000);
        f.accept("ann", &d, T0 + 11_000).expect("accept");
        f.fire_until(T0 + 60_000);
        assert_eq!(queue_of(&f, &d), ("a".into(), ConversationState::Active));
    }

    #[test]
    fn overflow_takes_a_conversation_into_a_closed_or_full_queue_all_the_same() {
        let mut f = floor();
        let closed = Hours {
            time_zone: "UTC".into(),
            weekly: Vec::new(),
            exceptions: Vec::new(),
            closed_reply: "closed".into(),
            outside_hours: OutsideHours::Close,
        };
        f.update_queue(
            "b",
            Some(Some(std::sync::Arc::new(closed))),
            Some(Some(WaitLimit {
                max_waiting: 1,
                reply: "full".into(),
            })),
            None,
        )
        .expect("b closed and bounded");
        let c1 = f.customer_writes("u1", T0);
        let c2 = f.customer_writes("u2", T0);
        f.fire_until(T0 + 5_000);
        assert_eq!(overflowed(&mut f).len(), 2);
        for c in [&c1, &c2] {
            assert_eq!(queue_of(&f, c), ("b".into(), ConversationState::Queued));
        }
        assert_eq!(f.queue("b").map(|q| q.waiting.len()), Some(2));
    }

    #[test]
    fn queues_that_overflow_into_each_other_pass_a_conversation_on_at_each_limit() {
        let mut f = floor();
        f.set_overflow("b", to("a", 3_000), T0).expect("b to a");
        let c = f.customer_writes("u1", T0);
        f.fire_until(T0 + 5_000);
        assert_eq!(queue_of(&f, &c).0, "b");
        f.fire_until(T0 + 7_999);
        assert_eq!(queue_of(&f, &c).0, "b");
        f.fire_until(T0 + 8_000);
        assert_eq!(queue_of(&f, &c).0, "a");
        f.fire_until(T0 + 13_000);
        assert_eq!(queue_of(&f, &c).0, "b");
        assert_eq!(overflowed(&mut f).len(), 3);
    }

    #[test]
    fn a_change_of_overflow_applies_to_those_waiting_at_once() {
        let mut f = floor();
        let c1 = f.customer_writes("u1", T0);
        let c2 = f.customer_writes("u2", T0 + 3_000);
        // Shortened to 2 s at T0 + 4 s: c1 (4 s) moves now, c2 (1 s) at T0 + 5 s.
        f.execute(
            Command::UpdateQueue {
                queue: "a".into(),
                hours: None,
                survey: None,
                wait_limit: None,
                service_level_ms: None,
                place_updates: None,
                overflow: Some(to("b", 2_000).map(Box::new)),
            },
            T0 + 4_000,
        )
        .expect("shortened");
        assert_eq!(queue_of(&f, &c1).0, "b");
        assert_eq!(queue_of(&f, &c2).0, "a");
        f.fire_until(T0 + 5_000);
        assert_eq!(queue_of(&f, &c2).0, "b");
        // Removed: nothing more moves.
        f.set_overflow("b", to("a", 1_000), T0 + 5_000).expect("b to a");
        f.fire_until(T0 + 6_000);
        assert_eq!(queue_of(&f, &c1).0, "a");
        f.set_overflow("a", None, T0 + 6_000).expect("removed");
        f.fire_until(T0 + 600_000);
        assert_eq!(queue_of(&f, &c1).0, "a");
        assert_eq!(f.overdue(T0 + 600_000), Vec::<Timer>::new());
    }

    #[test]
    fn a_bad_overflow_is_refused_and_changes_nothing() {
        let mut f = floor();
        f.take_changes();
        // Each bad overflow as queue `own`'s.
        type Bad = fn(&str) -> Option<Overflow>;
        let bads: [(Bad, &str); 4] = [
            (|_| to("nowhere", 5_000), "there is no queue nowhere"),
            (|own| to(own, 5_000), "another queue"),
            (|_| to("b", 99), "100 to"),
            (|_| to("b", crate::core::queue::MAX_OVERFLOW_MS + 1), "100 to"),
        ];
        for (bad, why) in bads {
            let e = f
                .execute(
                    Command::UpdateQueue {
                        queue: "a".into(),
                        hours: None,
                        survey: None,
                        wait_limit: None,
                        service_level_ms: None,
                        place_updates: None,
                        overflow: Some(bad("a").map(Box::new)),
                    },
                    T0,
                )
                .expect_err("refused");
            assert_eq!(e.code(), "invalid_input");
            assert!(e.to_string().contains(why), "{e} for {:?}", bad("a"));
            let e = queue(&mut f, "c", bad("c")).expect_err("refused at creation too");
            assert_eq!(e.code(), "invalid_input");
            assert!(f.queue("c").is_none(), "no queue made");
        }
        assert_eq!(f.queue("a").and_then(|q| q.overflow.clone()), to("b", 5_000));
        assert!(f.take_changes().is_empty(), "nothing to store");
    }

    #[test]
    fn a_restarted_floor_moves_what_waited_past_its_limit_while_it_was_down() {
        let mut f = floor();
        let c = f.customer_writes("u1", T0);
        let r = Floor::restore(
            f.rules().clone(),
            f.queues().map(Queue::record).collect(),
            f.entry_points().cloned().collect(),
            f.agents().cloned().collect(),
            f.conversations().cloned().collect(),
            (2, 1, 2),
            T0 + 60_000,
        );
        let mut r = r;
        assert_eq!(r.overdue(T0 + 60_000).len(), 1, "due at once");
        r.fire_due(T0 + 60_000);
        assert_eq!(queue_of(&r, &c), ("b".into(), ConversationState::Queued));
    }
}
