//! The routing step: waiting conversations and eligible agents meet here, and an
//! offer is made, withdrawn or expires. ../shared/SPEC.md invariant 4 holds when it has run.

use super::*;

/// What an offer shows: the conversation with only the customer's first message of its
/// transcript (see [`AgentEvent::Offer`]); the rest of the transcript is not cloned.
pub(super) fn offer_snapshot(c: &mut Conversation) -> Conversation {
    let transcript = std::mem::take(&mut c.transcript);
    let mut r = c.clone();
    r.transcript.extend(
        transcript
            .iter()
            .find(|m| m.author.kind == AuthorKind::Customer)
            .cloned(),
    );
    c.transcript = transcript;
    r
}

impl Floor {
    /// Puts a queued conversation in its queue's waiting order, in the step it is in at
    /// `now`, and schedules routing and its next routing deadline.
    pub(super) fn enqueue(&mut self, conversation: &str, now: Millis) {
        self.update_step(conversation, now);
        let Some(c) = self.conversations.get(conversation) else {
            return;
        };
        let key = queue_key(c);
        let (mut sweeps, mut held) = (false, false);
        if let Some(q) = self.queues.get_mut(&c.queue) {
            q.waiting.insert(key, conversation.into());
            sweeps = q.place_updates.is_some();
            held = q.held;
        }
        // A queue that tells its customers their place sweeps while anything waits
        // (`place.rs`); most queues do not, and pay nothing for it.
        let sweeping = sweeps.then(|| c.queue.clone());
        // A held queue's line stays out of the index until it opens (`hold.rs`).
        if !held {
            self.index_waiting(conversation);
        }
        self.arm_routing_deadline(conversation);
        self.arm_overflow(conversation);
        self.journal.conversation_changed(conversation);
        if let Some(queue) = sweeping {
            self.arm_place_sweep(&queue, now);
        }
        self.touched_conversations.push(conversation.into());
    }

    /// Puts waiting conversation `conversation` in the routing index.
    pub(super) fn index_waiting(&mut self, conversation: &str) {
        let Some(c) = self.conversations.get(conversation) else {
            return;
        };
        let candidates = self.group_candidates(&c.queue, &c.routing.requirements);
        let agents = &self.agents;
        self.index.wait(
            waiting_view(c),
            candidates.iter().filter_map(|id| agents.get(id)).map(view),
        );
    }

    /// Takes waiting conversation `conversation` out of the routing index (it stays in
    /// its queue's line).
    pub(super) fn unindex_waiting(&mut self, conversation: &str) {
        if let Some(c) = self.conversations.get(conversation) {
            self.index.unwait(waiting_view(c));
        }
    }

    pub(super) fn dequeue(&mut self, conversation: &str) {
        let Some(c) = self.conversations.get(conversation) else {
            return;
        };
        let key = queue_key(c);
        if let Some(q) = self.queues.get_mut(&c.queue) {
            q.waiting.remove(&key);
        }
        self.index.unwait(waiting_view(c));
    }

    /// Moves the conversation's step to the one it is in at `now`, and ends a preference
    /// whose time is up. Only for a conversation out of the index (not queued, or
    /// dequeued): the index files it under its step.
    pub(super) fn update_step(&mut self, conversation: &str, now: Millis) {
        let Some(c) = self.conversations.get_mut(conversation) else {
            return;
        };
        let r = &mut c.routing;
        let step = routing::step_at(&r.steps, c.received_at, now);
        let moved = step != r.step || (step.is_none() && !r.requirements.is_empty());
        if moved {
            r.step = step;
            r.requirements = routing::requirements_of(&r.steps, step);
        }
        let preference_ended = match &r.preferred_agent {
            Some(_) if now >= r.preferred_until => r.preferred_agent.take(),
            _ => None,
        };
        if moved || preference_ended.is_some() {
            self.journal.conversation_changed(conversation);
            // A step set when the conversation enters a queue is not a move.
            if c.state != ConversationState::Queued
                || c.routing.step.is_some_and(|s| s > 0)
                || preference_ended.is_some()
            {
                self.journal.effect(Effect::Observe(Observation::Rerouted {
                    conversation: conversation.into(),
                    step: c.routing.step,
                    preference_ended,
                }));
            }
        }
    }

    /// The preferred agent of a new conversation in `queue` from a customer whose last
    /// conversation on the entry point `last` describes (../shared/SPEC.md "Preferred agent"): the
    /// last owner, if the feature is on, the conversation ended recently enough, and that
    /// agent serves the queue and meets step 0's requirements.
    pub(super) fn preference_for(&self, queue: &str, steps: &[Step], last: LastOwner, now: Millis) -> Option<AgentId> {
        if !self.rules.preference_on() || now.saturating_sub(last.ended_at) > self.rules.last_agent_within_ms {
            return None;
        }
        let a = self.agents.get(&last.agent)?;
        let req = routing::requirements_of(steps, (!steps.is_empty()).then_some(0));
        (a.serves(queue) && routing::meets(&a.skills, &req)).then_some(last.agent)
    }

    /// The agents to build a new index group for `req` in `queue` from: the queue's
    /// eligible agents, or none when the group exists already.
    pub(super) fn group_candidates(&self, queue: &str, req: &Requirements) -> Vec<AgentId> {
        if self.index.needs_group(queue, req) {
            self.index.eligible_in(queue)
        } else {
            Vec::new()
        }
    }

    /// The (entry point, customer) whose last owner the shell should look up before
    /// running `cmd`: only for a customer message that will open a conversation while
    /// preferred agents are on.
    pub fn last_owner_wanted(&self, cmd: &Command) -> Option<(EntryPointId, String)> {
        if !self.rules.preference_on() {
            return None;
        }
        let (ep, customer) = match cmd {
            Command::CustomerMessage {
                entry_point, customer, ..
            } => (entry_point.clone(), &customer.id),
            Command::MessengerMessage {
                page_id,
                customer,
                seen: false,
                ..
            } => (self.entry_point_of_page(page_id).ok()?, &customer.id),
            _ => return None,
        };
        let key = (ep, customer.clone());
        (!self.open_by_customer.contains_key(&key)).then_some(key)
    }

    /// Keeps the index's groups for configured steps for good.
    pub(super) fn pin_steps(&mut self, queue: &str, steps: &[Step]) {
        for s in steps {
            let candidates = self.group_candidates(queue, &s.requirements);
            let agents = &self.agents;
            self.index.pin(
                queue,
                &s.requirements,
                candidates.iter().filter_map(|id| agents.get(id)).map(view),
            );
        }
    }

    /// Reserves a slot of `agent` and offers it `conversation`: one indivisible step.
    pub(super) fn make_offer(&mut self, conversation: &str, agent: &str, spec: OfferSpec, now: Millis) {
        let offer = Offer {
            id: self.next_offer,
            agent: agent.into(),
            kind: spec.kind,
            offered_at: now,
            expires_at: now.saturating_add(self.timeout(spec.kind)),
            from_agent: spec.from_agent,
        };
        self.next_offer += 1;
        self.journal.counters_changed();
        if spec.kind == OfferKind::New {
            self.dequeue(conversation);
            self.cancel_overflow(conversation);
        }
        if let Some(c) = self.conversations.get_mut(conversation) {
            if spec.kind == OfferKind::New {
                c.state = ConversationState::Offered;
            }
            c.offer = Some(offer.clone());
            c.history.offered(now);
        }
        if let Some(a) = self.agents.get_mut(agent) {
            a.offers.insert(conversation.into());
        }
        self.journal.agent_changed(agent);
        self.journal.conversation_changed(conversation);
        self.reindex(agent);
        self.journal.effect(Effect::Observe(Observation::Offered {
            conversation: conversation.into(),
            agent: agent.into(),
            kind: offer.kind,
        }));
        self.notify_offer(conversation, &offer);
    }

    pub(super) fn notify_offer(&mut self, conversation: &str, offer: &Offer) {
        let Some(c) = self.conversations.get_mut(conversation) else {
            return;
        };
        let snapshot = Arc::new(offer_snapshot(c));
        self.journal.effect(Effect::Notify {
            agent: offer.agent.clone(),
            event: AgentEvent::Offer {
                conversation: snapshot,
                offer: offer.clone(),
            },
        });
        self.deadlines.arm(
            Timer::Offer {
                conversation: conversation.into(),
                offer: offer.id,
            },
            offer.expires_at,
        );
    }

    /// Withdraws the pending offer of `conversation` (if any) without RONA, freeing the slot.
    pub(super) fn withdraw_offer(&mut self, conversation: &str, reason: WithdrawReason, now: Millis) -> Option<Offer> {
        let offer = self.conversations.get_mut(conversation)?.offer.take()?;
        if let Some(a) = self.agents.get_mut(&offer.agent) {
            a.offers.remove(conversation);
        }
        self.journal.effect(Effect::Notify {
            agent: offer.agent.clone(),
            event: AgentEvent::OfferWithdrawn {
                conversation: conversation.into(),
                reason,
            },
        });
        self.journal.conversation_changed(conversation);
        self.slot_freed(&offer.agent, now);
        Some(offer)
    }

    /// The deadline of `offer` passed: RONA for its agent, then by kind (../shared/SPEC.md).
    pub(super) fn expire_offer(&mut self, conversation: &str, offer_id: u64, now: Millis) {
        let pending = self.conversations.get(conversation).and_then(|c| c.offer.clone());
        let Some(offer) = pending.filter(|o| o.id == offer_id) else {
            return;
        };
        self.withdraw_offer(conversation, WithdrawReason::Expired, now);
        self.change_presence(&offer.agent, Presence::Rona, None, Some("offer_expired"), now);
        // An offer that the preferred agent lets expire ends the preference (../shared/SPEC.md).
        if let Some(c) = self.conversations.get_mut(conversation) {
            if c.routing.preferred_agent.as_deref() == Some(offer.agent.as_str()) {
                c.routing.preferred_agent = None;
            }
        }
        self.journal.effect(Effect::Observe(Observation::Rona {
            conversation: conversation.into(),
            agent: offer.agent.clone(),
            kind: offer.kind,
        }));
        if let Some(c) = self.conversations.get_mut(conversation) {
            c.rona_agents.insert(offer.agent.clone());
            c.history.rona();
        }
        self.journal.conversation_changed(conversation);
        match offer.kind {
            OfferKind::New => self.requeue(conversation, now),
            OfferKind::Transfer => match self.rules.transfer_no_answer {
                TransferNoAnswer::Requeue => self.requeue(conversation, now),
                TransferNoAnswer::Drop => self.end_conversation(
                    conversation,
                    "transfer_not_accepted",
                    WithdrawReason::Expired,
                    false,
                    now,
                ),
            },
            OfferKind::Conference => {
                let owner = self.conversations.get(conversation).and_then(|c| c.owner.clone());
                if let Some(owner) = owner {
                    self.journal.effect(Effect::Notify {
                        agent: owner,
                        event: AgentEvent::ConferenceNotAccepted {
                            conversation: conversation.into(),
                            agent: offer.agent.clone(),
                        },
                    });
                }
            }
        }
    }

    /// Back to its queue keeping its original place (`received_at` and arrival order)
    /// and its step, which counts from `received_at` too.
    pub(super) fn requeue(&mut self, conversation: &str, now: Millis) {
        if let Some(c) = self.conversations.get_mut(conversation) {
            c.state = ConversationState::Queued;
        }
        self.enqueue(conversation, now);
    }

    /// The best eligible agent for a queued conversation (its preferred agent alone while
    /// the preference holds; else by `routing.agent_choice` among those meeting its
    /// current requirements), avoiding agents that let an offer of it expire while
    /// another eligible agent exists.
    pub(super) fn best_agent(&self, conversation: &Conversation) -> Option<AgentId> {
        self.index
            .best_agent(waiting_view(conversation), &conversation.rona_agents, |id| {
                self.agents.get(id).map(view)
            })
    }

    /// For an eligible agent, the first conversation waiting in its queues that it can
    /// take (by priority, received_at, arrival), and the agent that should get it (the
    /// best eligible agent for it, maybe another one).
    pub(super) fn next_match_for(&self, agent: &str) -> Option<(ConversationId, AgentId)> {
        let a = self.agents.get(agent).filter(|a| a.eligible())?;
        let conv = self.index.best_conversation_for(view(a))?;
        let target = self.best_agent(self.conversations.get(&conv)?)?;
        Some((conv, target))
    }

    /// The routing step: offers waiting conversations to eligible agents until no match
    /// remains among what the last operation touched.
    pub(super) fn route(&mut self, now: Millis) {
        loop {
            if let Some(id) = self.touched_conversations.pop() {
                let queued = self
                    .conversations
                    .get(&id)
                    .is_some_and(|c| c.state == ConversationState::Queued);
                if !queued || !self.may_offer(&id, now) {
                    continue;
                }
                let target = self.conversations.get(&id).and_then(|c| self.best_agent(c));
                if let Some(agent) = target {
                    self.make_offer(
                        &id,
                        &agent,
                        OfferSpec {
                            kind: OfferKind::New,
                            from_agent: None,
                        },
                        now,
                    );
                }
                continue;
            }
            if let Some(agent) = self.touched_agents.pop() {
                while let Some((conv, target)) = self.next_match_for(&agent) {
                    if !self.may_offer(&conv, now) {
                        // That queue is held now, its line out of the index: look again.
                        continue;
                    }
                    self.make_offer(
                        &conv,
                        &target,
                        OfferSpec {
                            kind: OfferKind::New,
                            from_agent: None,
                        },
                        now,
                    );
                }
                continue;
            }
            break;
        }
    }
}
