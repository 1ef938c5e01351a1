//! Deadlines: what fires when (offers, automatic wrap-ups, routing steps, inactivity),
//! armed in one place each and kept in the [`Deadlines`](crate::core::deadlines::Deadlines) table.

use super::*;

impl Floor {
    /// An offer's timer fired. Ignored unless that offer is still pending and due.
    pub fn offer_timer(&mut self, conversation: &str, offer: u64, now: Millis) {
        let pending = self
            .conversations
            .get(conversation)
            .and_then(|c| c.offer.as_ref())
            .filter(|o| o.id == offer)
            .map(|o| o.expires_at);
        match pending {
            Some(at) if now >= at => {
                self.expire_offer(conversation, offer, now);
                self.route(now);
            }
            // A timer that fires before the deadline (the shell's timer and the clock it
            // reads `now` from need not agree to the millisecond) is armed again: an
            // ignored early firing would leave the offer pending forever.
            Some(at) => self.deadlines.arm(
                Timer::Offer {
                    conversation: conversation.into(),
                    offer,
                },
                at,
            ),
            None => {}
        }
    }

    /// An automatic wrap-up timer fired. Ignored unless still owed; armed again if early.
    pub fn wrapup_timer(&mut self, agent: &str, conversation: &str, now: Millis) {
        let due = self
            .agents
            .get(agent)
            .and_then(|a| a.wrapups.get(conversation))
            .copied()
            .flatten();
        match due {
            Some(at) if now >= at => {
                let reason = self.rules.default_wrapup_reason.clone();
                self.submit_wrapup(agent, conversation, reason, true, now);
                self.route(now);
            }
            Some(_) => self.arm_wrapup(agent, conversation),
            None => {}
        }
    }

    /// A routing deadline of a waiting conversation came (its step ended, or its
    /// preference ran out): it moves on and is routed at once. Ignored for a conversation
    /// that no longer waits; armed again if early.
    pub fn route_timer(&mut self, conversation: &str, now: Millis) {
        let Some(c) = self.conversations.get(conversation) else {
            return;
        };
        let Some(at) = next_routing_deadline(c).filter(|_| steps_apply(c)) else {
            return;
        };
        match c.state {
            ConversationState::Queued if now >= at => {
                self.dequeue(conversation);
                self.enqueue(conversation, now);
                self.route(now);
            }
            ConversationState::Offered if now >= at => {
                // The offer stands; the conversation shows its new step, and an expiry
                // re-queues it there.
                self.update_step(conversation, now);
                self.arm_routing_deadline(conversation);
            }
            ConversationState::Queued | ConversationState::Offered => self.arm_routing_deadline(conversation),
            _ => {}
        }
    }

    /// The inactivity deadline of an active conversation came: closed with reason
    /// `customer_inactive` if the customer has not written since; armed again if early.
    pub fn inactivity_timer(&mut self, conversation: &str, now: Millis) {
        if self.rules.inactivity_close_ms == 0 {
            return;
        }
        let Some(c) = self.conversations.get(conversation) else {
            return;
        };
        let Some(since) = c.routing.inactive_since else { return };
        if c.state != ConversationState::Active {
            return;
        }
        if now < since.saturating_add(self.rules.inactivity_close_ms) {
            self.arm_inactivity(conversation);
            return;
        }
        self.append(
            conversation,
            AuthorKind::System,
            None,
            "system".into(),
            INACTIVITY_TEXT,
            now,
        );
        self.end_conversation(
            conversation,
            "customer_inactive",
            WithdrawReason::CustomerLeft,
            true,
            now,
        );
        self.route(now);
    }

    /// When the earliest armed deadline is due: the shell sleeps until then and calls
    /// [`Floor::fire_due`]. `None` while nothing is armed.
    pub fn next_deadline(&self) -> Option<Millis> {
        self.deadlines.next()
    }

    /// Fires every deadline due at `now`, earliest first (one that a firing arms and that
    /// is due already fires in the same call). Returns how many fired. A deadline whose
    /// reason went away is ignored by the rule it reaches; one that comes early (the
    /// shell's timer and its clock need not agree to the millisecond) is armed again.
    pub fn fire_due(&mut self, now: Millis) -> usize {
        let mut fired = 0;
        while self.fire_next_due(now).is_some() {
            fired += 1;
        }
        fired
    }

    /// Fires every deadline up to `now` each at its own time, as the shell's timer
    /// would (the floor tests' clock).
    #[cfg(test)]
    pub(crate) fn fire_until(&mut self, now: Millis) {
        while let Some(at) = self.next_deadline().filter(|at| *at <= now) {
            self.fire_due(at);
        }
    }

    /// Fires the earliest deadline due at `now`, if one is: [`Floor::fire_due`] one at a
    /// time (the simulation checks the invariants after each).
    pub fn fire_next_due(&mut self, now: Millis) -> Option<Timer> {
        let timer = self.deadlines.pop_due(now)?;
        self.saw(now);
        self.fire(&timer, now);
        Some(timer)
    }

    /// Every deadline the state says has passed at `now`, found by a scan of every
    /// conversation and agent, independently of the deadline table. After
    /// [`Floor::fire_due`]`(now)` it is empty: the simulation and the table tests check
    /// that, so a rule that forgets to arm a deadline is caught.
    pub fn overdue(&self, now: Millis) -> Vec<Timer> {
        let mut out = Vec::new();
        for c in self.conversations.values() {
            if let Some(o) = &c.offer {
                if now >= o.expires_at {
                    out.push(Timer::Offer {
                        conversation: c.id.clone(),
                        offer: o.id,
                    });
                }
            }
        }
        for a in self.agents.values() {
            for (conv, at) in &a.wrapups {
                if matches!(at, Some(t) if now >= *t) {
                    out.push(Timer::Wrapup {
                        agent: a.id.clone(),
                        conversation: conv.clone(),
                    });
                }
            }
        }
        for c in self.conversations.values() {
            if steps_apply(c) && next_routing_deadline(c).is_some_and(|at| now >= at) {
                out.push(Timer::Route {
                    conversation: c.id.clone(),
                });
            }
            let overflow = self.queues.get(&c.queue).and_then(|q| q.overflow.as_ref());
            if c.state == ConversationState::Queued && overflow.is_some_and(|o| now >= o.due_at(c.received_at)) {
                out.push(Timer::Overflow {
                    conversation: c.id.clone(),
                });
            }
            if c.state == ConversationState::Active && self.rules.inactivity_close_ms > 0 {
                if let Some(since) = c.routing.inactive_since {
                    if now >= since.saturating_add(self.rules.inactivity_close_ms) {
                        out.push(Timer::Inactivity {
                            conversation: c.id.clone(),
                        });
                    }
                }
            }
        }
        for p in self.surveys.values().filter(|p| now >= p.expires_at) {
            out.push(Timer::Survey {
                entry_point: p.entry_point.clone(),
                customer: p.customer.clone(),
            });
        }
        // A held queue that opened (its hold ends at the minute's deadline).
        for q in self.queues.values() {
            if q.held && !q.hours.as_ref().is_some_and(|h| h.holds_at(now)) {
                out.push(Timer::Opening { queue: q.id.clone() });
            }
        }
        out.sort_by(|a, b| format!("{a:?}").cmp(&format!("{b:?}")));
        out
    }

    /// Fires `timer` at `now`: the rule its deadline reaches. The shell never calls it (it
    /// calls [`Floor::fire_due`]); the simulation does, to move steps on before a crash
    /// as a restart would.
    pub fn fire(&mut self, timer: &Timer, now: Millis) {
        match timer {
            Timer::Offer { conversation, offer } => self.offer_timer(conversation, *offer, now),
            Timer::Wrapup { agent, conversation } => self.wrapup_timer(agent, conversation, now),
            Timer::Route { conversation } => self.route_timer(conversation, now),
            Timer::Inactivity { conversation } => self.inactivity_timer(conversation, now),
            Timer::Survey { entry_point, customer } => self.survey_timer(entry_point, customer, now),
            Timer::Places { queue } => self.place_timer(queue, now),
            Timer::Overflow { conversation } => self.overflow_timer(conversation, now),
            Timer::Opening { queue } => self.opening_timer(queue, now),
        }
    }

    /// The customer wrote in conversation `id`: the inactivity clock starts again.
    pub(super) fn customer_active(&mut self, id: &str, now: Millis) {
        let Some(c) = self.conversations.get_mut(id) else {
            return;
        };
        if c.routing.inactive_since.is_none() {
            return;
        }
        c.routing.inactive_since = Some(now);
        self.journal.conversation_changed(id);
        self.arm_inactivity(id);
    }

    /// Arms the conversation's inactivity deadline (its `inactive_since` plus
    /// `routing.inactivity_close_ms`) if it is active and the close is on.
    /// Arms `agent`'s automatic wrap-up of `conversation` at the time its owed wrap-up
    /// says, if it has one (`wrapup.auto_after_ms`).
    pub(super) fn arm_wrapup(&mut self, agent: &str, conversation: &str) {
        let Some(at) = self
            .agents
            .get(agent)
            .and_then(|a| a.wrapups.get(conversation))
            .copied()
            .flatten()
        else {
            return;
        };
        self.deadlines.arm(
            Timer::Wrapup {
                agent: agent.into(),
                conversation: conversation.into(),
            },
            at,
        );
    }

    pub(super) fn arm_inactivity(&mut self, id: &str) {
        let Some(c) = self.conversations.get(id) else { return };
        let (Some(since), true) = (
            c.routing.inactive_since,
            c.state == ConversationState::Active && self.rules.inactivity_close_ms > 0,
        ) else {
            return;
        };
        self.deadlines.arm(
            Timer::Inactivity {
                conversation: id.into(),
            },
            since.saturating_add(self.rules.inactivity_close_ms),
        );
    }

    /// Arms the conversation's next routing deadline ([`next_routing_deadline`]), if any.
    pub(super) fn arm_routing_deadline(&mut self, id: &str) {
        if let Some(at) = self.conversations.get(id).and_then(|c| next_routing_deadline(c)) {
            self.deadlines.arm(
                Timer::Route {
                    conversation: id.into(),
                },
                at,
            );
        }
    }
}
