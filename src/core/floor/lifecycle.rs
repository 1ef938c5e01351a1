//! A conversation's life from the customer's first message to the last wrap-up: what
//! customers and agents do, and the steps those share (appending a message, leaving,
//! ending, wrapping up).

use super::*;
use crate::core::hours::{OutsideHours, OUTSIDE_HOURS_REASON};
use crate::core::queue::QUEUE_FULL_REASON;

impl Floor {
    /// A customer message on an entry point: opens a conversation or joins the open one.
    #[cfg(test)]
    pub(crate) fn customer_message(
        &mut self,
        entry_point: &str,
        customer: Customer,
        text: &str,
        channel: Channel,
        now: Millis,
    ) -> Result<Arrival, CoreError> {
        self.customer_message_with(
            entry_point,
            customer,
            text,
            Vec::new(),
            channel,
            Opening::default(),
            now,
        )
    }

    /// Customer `customer` (named as its id) writes "hello" on entry point `e` over REST:
    /// the conversation it opened or joined. The floor tests' customer.
    #[cfg(test)]
    pub(crate) fn customer_writes(&mut self, customer: &str, now: Millis) -> ConversationId {
        let who = Customer {
            id: customer.into(),
            name: customer.into(),
        };
        self.customer_message("e", who, "hello", Channel::Rest, now)
            .expect("message")
            .conversation
    }

    /// [`Floor::customer_message`] with attachments: `text` may be empty when there are
    /// attachments (a Messenger image, sticker, location...). `open` says how a
    /// conversation it opens is routed (priority, steps, the customer's last owner).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn customer_message_with(
        &mut self,
        entry_point: &str,
        customer: Customer,
        text: &str,
        attachments: Vec<Attachment>,
        channel: Channel,
        open: Opening,
        now: Millis,
    ) -> Result<Arrival, CoreError> {
        if !self.entry_points.contains_key(entry_point) {
            return Err(CoreError::UnknownEntryPoint(entry_point.into()));
        }
        if attachments.is_empty() || !text.is_empty() {
            check_text(text)?;
        }
        if customer.id.is_empty() || customer.id.len() > 256 {
            return Err(CoreError::InvalidInput(
                "customer id must be 1 to 256 characters".into(),
            ));
        }
        check_name("customer name", &customer.name)?;
        if let Some(steps) = &open.routing_steps {
            check_steps(steps)?;
        }
        let key = (entry_point.to_string(), customer.id.clone());
        if let Some(id) = self.open_by_customer.get(&key).cloned() {
            let message = self.append_with(
                &id,
                AuthorKind::Customer,
                Some(customer.id.clone()),
                customer.name,
                text,
                attachments,
                now,
            );
            self.customer_active(&id, now);
            self.route(now);
            return Ok(Arrival {
                conversation: id,
                opened: false,
                message,
            });
        }
        // The answer to a satisfaction survey opens nothing; any other message drops it.
        if let Some(arrival) = self.survey_answer(&key, &customer, text, !attachments.is_empty(), now) {
            return Ok(arrival);
        }
        let ep = self
            .entry_points
            .get(entry_point)
            .ok_or_else(|| CoreError::UnknownEntryPoint(entry_point.into()))?;
        // A new conversation: the tenant's limit counts the open ones.
        self.limits.admit(
            crate::core::tenant::Limit::OpenConversations,
            self.open_by_customer.len(),
        )?;
        let queue = self
            .queues
            .get(&ep.queue)
            .ok_or_else(|| CoreError::UnknownQueue(ep.queue.clone()))?;
        let id = format!("c-{}", self.next_conversation);
        self.next_conversation += 1;
        let arrival = self.next_arrival;
        self.next_arrival += 1;
        self.journal.counters_changed();
        let steps = open.routing_steps.unwrap_or_else(|| ep.routing_steps.clone());
        let preferred = open
            .last_owner
            .and_then(|last| self.preference_for(&queue.id, &steps, last, now));
        let c = Conversation {
            id: id.clone(),
            channel,
            customer: customer.clone(),
            entry_point: Some(entry_point.into()),
            source_page: ep.name.clone(),
            queue: queue.id.clone(),
            queue_name: queue.name.clone(),
            priority: open.priority.unwrap_or(ep.priority),
            received_at: now,
            arrival,
            state: ConversationState::Queued,
            offer: None,
            owner: None,
            guest: None,
            rona_agents: BTreeSet::new(),
            ended_reason: None,
            ended_at: None,
            wrapups: Vec::new(),
            transcript: Vec::new(),
            routing: RoutingState {
                steps,
                preferred_until: preferred
                    .as_ref()
                    .map_or(0, |_| now.saturating_add(self.rules.last_agent_ms)),
                preferred_agent: preferred,
                ..Default::default()
            },
            history: History::new(now),
            handoff_note: None,
        };
        let queue_id = c.queue.clone();
        // Business hours: a queue closed now answers at once, then lets the conversation
        // wait or closes it (`hours.rs`).
        let closed = queue
            .hours
            .as_ref()
            .filter(|h| !h.is_open(now))
            .map(|h| (h.closed_reply.clone(), h.outside_hours));
        // A queue with as many waiting as it allows refuses one more (`WaitLimit`).
        let full = queue
            .wait_limit
            .as_ref()
            .filter(|l| queue.waiting.len() >= l.max_waiting as usize)
            .map(|l| l.reply.clone());
        self.conversations.insert(id.clone(), Box::new(c));
        self.open_by_customer.insert(key, id.clone());
        let message = self.append_with(
            &id,
            AuthorKind::Customer,
            Some(customer.id),
            customer.name,
            text,
            attachments,
            now,
        );
        // Closing for the hours wins over a full queue; waiting for the morning in a
        // full queue is refused like any other wait. One reply at most.
        let (reply, close) = match (closed, full) {
            (Some((reply, OutsideHours::Close)), _) => (Some(reply), Some(OUTSIDE_HOURS_REASON)),
            (_, Some(reply)) => (Some(reply), Some(QUEUE_FULL_REASON)),
            (Some((reply, OutsideHours::Wait | OutsideHours::Hold)), None) => (Some(reply), None),
            (None, None) => (None, None),
        };
        if let Some(reply) = reply {
            self.append(&id, AuthorKind::System, None, "system".into(), &reply, now);
        }
        if close.is_none() {
            self.enqueue(&id, now);
        }
        self.journal.effect(Effect::Observe(Observation::Arrived {
            conversation: id.clone(),
            queue: queue_id,
            opened: true,
        }));
        if let Some(reason) = close {
            self.end_conversation(&id, reason, WithdrawReason::CustomerLeft, false, now);
        }
        self.route(now);
        self.place_at_arrival(&id, now);
        Ok(Arrival {
            conversation: id,
            opened: true,
            message,
        })
    }

    /// The customer writes in an open conversation (REST: admin as the customer).
    pub(crate) fn customer_reply(&mut self, conversation: &str, text: &str, now: Millis) -> Result<Message, CoreError> {
        check_text(text)?;
        let c = self.open(conversation)?;
        let (id, name) = (c.customer.id.clone(), c.customer.name.clone());
        let message = self.append(conversation, AuthorKind::Customer, Some(id), name, text, now);
        self.customer_active(conversation, now);
        Ok(message)
    }

    /// The customer leaves: the conversation ends; whoever was in it owes a wrap-up.
    pub(crate) fn customer_end(&mut self, conversation: &str, now: Millis) -> Result<(), CoreError> {
        self.open(conversation)?;
        self.ask_survey(conversation, "customer_ended", now);
        self.end_conversation(conversation, "customer_ended", WithdrawReason::CustomerLeft, false, now);
        self.route(now);
        Ok(())
    }

    // ----- agent side -----

    /// The offered agent accepts before the deadline.
    pub(crate) fn accept(&mut self, agent: &str, conversation: &str, now: Millis) -> Result<&Conversation, CoreError> {
        self.agent_ref(agent)?;
        let c = self
            .conversations
            .get(conversation)
            .ok_or_else(|| CoreError::UnknownConversation(conversation.into()))?;
        let offer = match &c.offer {
            Some(o) if o.agent == agent => o.clone(),
            _ => {
                return Err(if c.rona_agents.contains(agent) {
                    CoreError::OfferExpired {
                        conversation: conversation.into(),
                        agent: agent.into(),
                    }
                } else {
                    CoreError::NotOfferedToYou {
                        conversation: conversation.into(),
                        agent: agent.into(),
                    }
                })
            }
        };
        if now >= offer.expires_at {
            self.expire_offer(conversation, offer.id, now);
            self.route(now);
            return Err(CoreError::OfferExpired {
                conversation: conversation.into(),
                agent: agent.into(),
            });
        }
        let name = self.agents[agent].name.clone();
        {
            let a = self
                .agents
                .get_mut(agent)
                .ok_or_else(|| CoreError::UnknownAgent(agent.into()))?;
            a.offers.remove(conversation);
            a.active.insert(conversation.into());
        }
        self.journal.agent_changed(agent);
        self.deadlines.cancel(&Timer::Offer {
            conversation: conversation.into(),
            offer: offer.id,
        });
        let c = self
            .conversations
            .get_mut(conversation)
            .ok_or_else(|| CoreError::UnknownConversation(conversation.into()))?;
        c.offer = None;
        // The request's note has reached the agent that took it (issue 26 item 5).
        c.handoff_note = None;
        c.history.accepted(agent, offer.kind == OfferKind::Conference, now);
        let queue_wait_ms = now.saturating_sub(c.received_at);
        let queue_id = c.queue.clone();
        match offer.kind {
            OfferKind::New | OfferKind::Transfer => {
                c.state = ConversationState::Active;
                c.owner = Some(agent.into());
                // Once any agent accepts, the preference is over (../shared/API.md).
                c.routing.preferred_agent = None;
                c.routing.last_owner = Some(agent.into());
                c.routing.inactive_since = Some(now);
            }
            OfferKind::Conference => {
                c.guest = Some(agent.into());
            }
        }
        self.journal.conversation_changed(conversation);
        if offer.kind != OfferKind::Conference {
            self.arm_inactivity(conversation);
        }
        if offer.kind == OfferKind::New {
            self.waited_in_line(&queue_id, conversation, queue_wait_ms, now);
        }
        self.journal.effect(Effect::Observe(Observation::Accepted {
            conversation: conversation.into(),
            agent: agent.into(),
            kind: offer.kind,
            offer_ms: now.saturating_sub(offer.offered_at),
            queue_wait_ms,
        }));
        if offer.kind == OfferKind::Conference {
            let owner = self.conversations[conversation].owner.clone();
            if let Some(owner) = owner {
                self.journal.effect(Effect::Observe(Observation::Conferenced {
                    conversation: conversation.into(),
                    owner: owner.clone(),
                    guest: agent.into(),
                }));
                self.journal.effect(Effect::Notify {
                    agent: owner,
                    event: AgentEvent::ParticipantJoined {
                        conversation: conversation.into(),
                        agent: agent.into(),
                    },
                });
            }
            self.append(
                conversation,
                AuthorKind::System,
                None,
                "system".into(),
                &format!("{name} has joined the chat"),
                now,
            );
        }
        let snapshot = Arc::new(Conversation::clone(&self.conversations[conversation]));
        self.journal.effect(Effect::Notify {
            agent: agent.into(),
            event: AgentEvent::Conversation(snapshot),
        });
        self.route(now);
        Ok(&self.conversations[conversation])
    }

    /// An agent in the conversation (owner or guest) writes while it is active.
    pub(crate) fn agent_message(
        &mut self,
        agent: &str,
        conversation: &str,
        text: &str,
        now: Millis,
    ) -> Result<Message, CoreError> {
        check_text(text)?;
        let name = self.may_write(agent, conversation, now)?;
        Ok(self.append(conversation, AuthorKind::Agent, Some(agent.into()), name, text, now))
    }

    /// The name of `agent` if it may write in `conversation` now (a text or a file): it
    /// is active, the agent is in it, and a Messenger customer's window is not closed.
    pub(in crate::core) fn may_write(&self, agent: &str, conversation: &str, now: Millis) -> Result<String, CoreError> {
        let name = self.agent_ref(agent)?.name.clone();
        let c = self.open(conversation)?;
        if c.state != ConversationState::Active || !c.participants().any(|p| p == agent) {
            return Err(CoreError::NotInConversation {
                conversation: conversation.into(),
                agent: agent.into(),
            });
        }
        // Messenger's 24-hour rule is decided now, so the agent knows at once.
        if c.channel == Channel::Messenger
            && crate::core::messenger::window(c.last_customer_message_at(), now, self.rules.human_agent_tag)
                == crate::core::messenger::Window::Closed
        {
            return Err(CoreError::OutsideMessagingWindow(conversation.into()));
        }
        Ok(name)
    }

    /// The owner transfers to another agent, which must be eligible. The owner leaves at once.
    pub(crate) fn transfer_to_agent(
        &mut self,
        agent: &str,
        conversation: &str,
        target: &str,
        note: Option<String>,
        now: Millis,
    ) -> Result<(), CoreError> {
        self.check_target(agent, conversation, target, "transfer to")?;
        self.hand_off_note(agent, conversation, note, now);
        self.owner_leaves(agent, conversation, now);
        if let Some(c) = self.conversations.get_mut(conversation) {
            c.state = ConversationState::Offered;
            c.history.transferred();
        }
        self.journal.effect(Effect::Observe(Observation::Transferred {
            conversation: conversation.into(),
            from: agent.into(),
        }));
        self.make_offer(
            conversation,
            target,
            OfferSpec {
                kind: OfferKind::Transfer,
                from_agent: Some(agent.into()),
            },
            now,
        );
        self.route(now);
        Ok(())
    }

    /// What a transfer and a conference to a named agent both check: the owner may hand
    /// the conversation on, and the target is another agent that may take an offer now
    /// ([`Agent::eligible`], which the agent list shows as `eligible`).
    pub(super) fn check_target(
        &self,
        agent: &str,
        conversation: &str,
        target: &str,
        verb: &str,
    ) -> Result<(), CoreError> {
        self.check_owner_free_to_leave(agent, conversation)?;
        if target == agent {
            return Err(CoreError::InvalidInput(format!("cannot {verb} yourself")));
        }
        if !self.agent_ref(target)?.eligible() {
            return Err(CoreError::AgentUnavailable(target.into()));
        }
        Ok(())
    }

    /// The owner transfers to a queue: it joins that queue as a new arrival.
    pub(crate) fn transfer_to_queue(
        &mut self,
        agent: &str,
        conversation: &str,
        queue: &str,
        note: Option<String>,
        now: Millis,
    ) -> Result<(), CoreError> {
        self.check_owner_free_to_leave(agent, conversation)?;
        if !self.queues.contains_key(queue) {
            return Err(CoreError::UnknownQueue(queue.into()));
        }
        self.hand_off_note(agent, conversation, note, now);
        self.owner_leaves(agent, conversation, now);
        if let Some(c) = self.conversations.get_mut(conversation) {
            c.history.transferred();
        }
        self.journal.effect(Effect::Observe(Observation::Transferred {
            conversation: conversation.into(),
            from: agent.into(),
        }));
        self.join_queue(conversation, queue, now);
        self.route(now);
        Ok(())
    }

    /// A conversation out of every queue (its owner left it, or it was taken out of the
    /// queue it waited in) joins queue `queue` as a new arrival of it: it waits from
    /// `now`, behind those already there of its priority, under that queue's steps.
    pub(super) fn join_queue(&mut self, conversation: &str, queue: &str, now: Millis) {
        let Some(q) = self.queues.get(queue) else { return };
        let (qid, qname, steps) = (q.id.clone(), q.name.clone(), q.routing_steps.clone());
        let arrival = self.next_arrival;
        self.next_arrival += 1;
        self.journal.counters_changed();
        if let Some(c) = self.conversations.get_mut(conversation) {
            c.history.changed_queue(&c.queue, &qid);
            c.queue = qid.clone();
            c.queue_name = qname;
            c.received_at = now;
            c.arrival = arrival;
            c.rona_agents.clear();
            c.state = ConversationState::Queued;
            // The entry point's steps were written for the queue it first entered; the
            // new queue's own steps (maybe none) apply from step 0 (../shared/SPEC.md).
            c.routing.steps = steps;
            c.routing.step = None;
            c.routing.requirements.clear();
            c.routing.preferred_agent = None;
        }
        self.enqueue(conversation, now);
        self.journal.effect(Effect::Observe(Observation::Arrived {
            conversation: conversation.into(),
            queue: qid,
            opened: false,
        }));
    }

    /// The owner invites a second agent, which must be eligible.
    pub(crate) fn conference(
        &mut self,
        agent: &str,
        conversation: &str,
        target: &str,
        note: Option<String>,
        now: Millis,
    ) -> Result<(), CoreError> {
        self.check_target(agent, conversation, target, "invite")?;
        self.hand_off_note(agent, conversation, note, now);
        self.make_offer(
            conversation,
            target,
            OfferSpec {
                kind: OfferKind::Conference,
                from_agent: Some(agent.into()),
            },
            now,
        );
        self.route(now);
        Ok(())
    }

    /// The guest leaves the conference; the chat goes on.
    pub(crate) fn exit_conference(&mut self, agent: &str, conversation: &str, now: Millis) -> Result<(), CoreError> {
        let name = self.agent_ref(agent)?.name.clone();
        let c = self.open(conversation)?;
        if c.guest.as_deref() != Some(agent) {
            return Err(CoreError::NotGuest {
                conversation: conversation.into(),
                agent: agent.into(),
            });
        }
        let owner = c.owner.clone();
        if let Some(c) = self.conversations.get_mut(conversation) {
            c.guest = None;
        }
        self.journal.conversation_changed(conversation);
        self.leave(agent, conversation, now);
        self.append(
            conversation,
            AuthorKind::System,
            None,
            "system".into(),
            &format!("{name} has left the chat"),
            now,
        );
        if let Some(owner) = owner {
            self.journal.effect(Effect::Notify {
                agent: owner,
                event: AgentEvent::ParticipantLeft {
                    conversation: conversation.into(),
                    agent: agent.into(),
                },
            });
        }
        self.route(now);
        Ok(())
    }

    /// The owner ends a conference (guest joined or invited) for everyone.
    pub(crate) fn end_conference(&mut self, agent: &str, conversation: &str, now: Millis) -> Result<(), CoreError> {
        let c = self.owned(agent, conversation)?;
        if c.conference_state() == ConferenceState::None {
            return Err(CoreError::NoConference(conversation.into()));
        }
        self.ask_survey(conversation, "agent_ended", now);
        self.end_conversation(
            conversation,
            "agent_ended",
            WithdrawReason::ConversationEnded,
            true,
            now,
        );
        self.route(now);
        Ok(())
    }

    /// The owner ends the conversation (for everyone, guest included).
    pub(crate) fn end(&mut self, agent: &str, conversation: &str, now: Millis) -> Result<(), CoreError> {
        self.owned(agent, conversation)?;
        self.ask_survey(conversation, "agent_ended", now);
        self.end_conversation(
            conversation,
            "agent_ended",
            WithdrawReason::ConversationEnded,
            true,
            now,
        );
        self.route(now);
        Ok(())
    }

    /// The agent submits the wrap-up it owes; its slot is freed.
    pub(crate) fn wrapup(
        &mut self,
        agent: &str,
        conversation: &str,
        reason: &str,
        now: Millis,
    ) -> Result<(), CoreError> {
        if !self.rules.wrapup_reasons.iter().any(|r| r.code == reason) {
            return Err(CoreError::UnknownWrapupReason(reason.into()));
        }
        let a = self.agent_ref(agent)?;
        if !a.wrapups.contains_key(conversation) {
            if !self.conversations.contains_key(conversation) {
                return Err(CoreError::UnknownConversation(conversation.into()));
            }
            return Err(CoreError::NoWrapupOwed {
                conversation: conversation.into(),
                agent: agent.into(),
            });
        }
        self.submit_wrapup(agent, conversation, reason.to_string(), false, now);
        self.route(now);
        Ok(())
    }

    pub(super) fn agent_ref(&self, agent: &str) -> Result<&Agent, CoreError> {
        self.agents
            .get(agent)
            .ok_or_else(|| CoreError::UnknownAgent(agent.into()))
    }

    pub(super) fn open(&self, conversation: &str) -> Result<&Conversation, CoreError> {
        let c = self
            .conversations
            .get(conversation)
            .ok_or_else(|| CoreError::UnknownConversation(conversation.into()))?;
        if !c.is_open() {
            return Err(CoreError::ConversationEnded(conversation.into()));
        }
        Ok(c)
    }

    /// The conversation, if it is active and `agent` owns it.
    pub(super) fn owned(&self, agent: &str, conversation: &str) -> Result<&Conversation, CoreError> {
        self.agent_ref(agent)?;
        let c = self.open(conversation)?;
        if c.owner.as_deref() != Some(agent) {
            if c.state != ConversationState::Active {
                return Err(CoreError::InvalidState(format!(
                    "conversation {conversation} is {}, not active",
                    c.state.as_str()
                )));
            }
            return Err(CoreError::NotOwner {
                conversation: conversation.into(),
                agent: agent.into(),
            });
        }
        Ok(c)
    }

    /// Owner check for transfer and conference: no conference may be in progress.
    pub(super) fn check_owner_free_to_leave(&self, agent: &str, conversation: &str) -> Result<(), CoreError> {
        let c = self.owned(agent, conversation)?;
        if c.conference_state() != ConferenceState::None {
            return Err(CoreError::ConferenceInProgress(conversation.into()));
        }
        Ok(())
    }

    pub(super) fn timeout(&self, kind: OfferKind) -> u64 {
        match kind {
            OfferKind::New => self.rules.offer_timeout_ms,
            OfferKind::Transfer => self.rules.transfer_timeout_ms,
            OfferKind::Conference => self.rules.conference_timeout_ms,
        }
    }

    /// Appends a message to the transcript and delivers it to the agents in the
    /// conversation and (for agent and system messages) to the customer's channel.
    pub(super) fn append(
        &mut self,
        conversation: &str,
        kind: AuthorKind,
        id: Option<String>,
        name: String,
        text: &str,
        now: Millis,
    ) -> Message {
        self.append_with(conversation, kind, id, name, text, Vec::new(), now)
    }

    /// Makes `message` of `conversation`, already in its transcript, durable and tells
    /// each of `told` about it.
    pub(in crate::core) fn publish_message(&mut self, conversation: &str, message: &Message, told: Vec<AgentId>) {
        self.journal.change(Change::Message {
            conversation: conversation.into(),
            message: message.clone(),
        });
        for agent in told {
            self.journal.effect(Effect::Notify {
                agent,
                event: AgentEvent::Message {
                    conversation: conversation.into(),
                    message: message.clone(),
                },
            });
        }
    }

    /// [`Floor::append`] with attachments. An agent or system message to a Messenger
    /// customer goes to the outbox ([`Floor::outbound`]) instead of [`Effect::Deliver`].
    #[allow(clippy::too_many_arguments)]
    pub(in crate::core) fn append_with(
        &mut self,
        conversation: &str,
        kind: AuthorKind,
        id: Option<String>,
        name: String,
        text: &str,
        attachments: Vec<Attachment>,
        now: Millis,
    ) -> Message {
        self.append_message(conversation, kind, id, name, text, attachments, Vec::new(), now)
    }

    /// [`Floor::append_with`] with quick replies for a Messenger customer (a rating
    /// question's; other channels show none).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn append_message(
        &mut self,
        conversation: &str,
        kind: AuthorKind,
        id: Option<String>,
        name: String,
        text: &str,
        attachments: Vec<Attachment>,
        quick_replies: Vec<crate::core::messenger::QuickReply>,
        now: Millis,
    ) -> Message {
        if kind == AuthorKind::Customer {
            self.customer_stopped_typing(conversation);
        }
        let Some(c) = self.conversations.get(conversation) else {
            // Callers check the conversation first; an empty message is never stored.
            return Message::text(0, Author { kind, id, name }, text, now);
        };
        let mut message = Message::text(c.transcript.len() as u64 + 1, Author { kind, id, name }, text, now);
        message.attachments = attachments;
        // Customer messages and what the Page's own inbox wrote (echoes) go to no one.
        let to_customer = !matches!(kind, AuthorKind::Customer | AuthorKind::Page);
        let outbound = if to_customer && c.channel == Channel::Messenger {
            self.outbound(c, &mut message, now)
                .map(|o| Outbound { quick_replies, ..o })
        } else {
            None
        };
        let Some(c) = self.conversations.get_mut(conversation) else {
            return message;
        };
        // A message is written on its own, not with the conversation's record; the first
        // agent reply changes the history, which is.
        let first_reply = kind == AuthorKind::Agent && c.history.agent_wrote(now);
        if c.transcript.is_empty() {
            // Most conversations wait with one customer message: room for that one, not
            // the four a first push reserves (BENCHMARKS.md "Memory per open conversation").
            c.transcript.reserve_exact(1);
        }
        c.transcript.push(message.clone());
        let participants: Vec<AgentId> = c.participants().cloned().collect();
        if first_reply {
            self.journal.conversation_changed(conversation);
        }
        self.publish_message(conversation, &message, participants);
        if let Some(o) = outbound {
            self.journal.change(Change::Outbox(o.clone()));
            self.journal.effect(Effect::Send(o));
        } else if to_customer {
            self.journal.effect(Effect::Deliver {
                conversation: conversation.into(),
                message: message.clone(),
            });
        }
        message
    }

    /// The agent leaves the conversation and owes a wrap-up (the slot stays held).
    pub(super) fn leave(&mut self, agent: &str, conversation: &str, now: Millis) {
        let due = (self.rules.auto_wrapup_after_ms > 0).then(|| now.saturating_add(self.rules.auto_wrapup_after_ms));
        let mut already_owed = false;
        if let Some(c) = self.conversations.get_mut(conversation) {
            c.history.left(agent, now);
            self.journal.conversation_changed(conversation);
        }
        if let Some(a) = self.agents.get_mut(agent) {
            a.active.remove(conversation);
            already_owed = a.wrapups.insert(conversation.into(), due).is_some();
            if !already_owed {
                *self.owed.entry(conversation.into()).or_default() += 1;
            }
        }
        self.journal.agent_changed(agent);
        if already_owed {
            // The agent left this conversation before and was offered it again: it still
            // owes one wrap-up for it (../shared/SPEC.md), so the slot of the active part is free.
            self.slot_freed(agent, now);
        }
        self.journal.effect(Effect::Notify {
            agent: agent.into(),
            event: AgentEvent::WrapupRequired {
                conversation: conversation.into(),
                reasons: self.rules.wrapup_reasons.clone(),
            },
        });
        self.arm_wrapup(agent, conversation);
    }

    /// The owner leaves (transfer): it owes a wrap-up; the conversation has no owner.
    pub(super) fn owner_leaves(&mut self, agent: &str, conversation: &str, now: Millis) {
        if let Some(c) = self.conversations.get_mut(conversation) {
            c.owner = None;
        }
        self.journal.conversation_changed(conversation);
        self.leave(agent, conversation, now);
    }

    /// Ends the conversation for everyone. A pending offer is withdrawn; queued, it leaves
    /// its queue; owner and guest leave and owe wrap-ups.
    pub(super) fn end_conversation(
        &mut self,
        conversation: &str,
        reason: &str,
        withdraw: WithdrawReason,
        tell_customer: bool,
        now: Millis,
    ) {
        self.customer_stopped_typing(conversation);
        self.left_the_line(conversation);
        let Some(c) = self.conversations.get(conversation) else {
            return;
        };
        let queued = c.state == ConversationState::Queued;
        let participants: Vec<AgentId> = c.participants().cloned().collect();
        let key = c.entry_point.clone().map(|ep| (ep, c.customer.id.clone()));
        // The customer's next conversation on this entry point may prefer this owner.
        if let (Some((ep, customer)), Some(agent)) = (&key, &c.routing.last_owner) {
            if self.rules.preference_on() {
                self.journal.change(Change::LastOwner {
                    entry_point: ep.clone(),
                    customer: customer.clone(),
                    owner: LastOwner {
                        agent: agent.clone(),
                        ended_at: now,
                    },
                });
            }
        }
        if queued {
            self.dequeue(conversation);
        }
        self.withdraw_offer(conversation, withdraw, now);
        if let Some(c) = self.conversations.get_mut(conversation) {
            c.state = ConversationState::Ended;
            c.ended_reason = Some(reason.into());
            c.ended_at = Some(now);
            c.owner = None;
            c.guest = None;
        }
        if let Some(key) = key {
            if self.open_by_customer.get(&key).map(|s| s.as_str()) == Some(conversation) {
                self.open_by_customer.remove(&key);
            }
        }
        self.journal.conversation_changed(conversation);
        // A thread taken from another app goes back to it (Messenger's Handover Protocol).
        self.return_thread(conversation, reason, now);
        for p in participants {
            self.journal.effect(Effect::Notify {
                agent: p.clone(),
                event: AgentEvent::ConversationEnded {
                    conversation: conversation.into(),
                    reason: reason.into(),
                },
            });
            self.leave(&p, conversation, now);
        }
        // Finished at once if nobody owes it a wrap-up (it ended while queued or offered,
        // and nobody had left it before).
        self.finishing.push(conversation.into());
        if tell_customer {
            self.journal.effect(Effect::DeliverEnd {
                conversation: conversation.into(),
                reason: reason.into(),
            });
        }
        self.journal.effect(Effect::Observe(Observation::Ended {
            conversation: conversation.into(),
            reason: reason.into(),
        }));
    }

    pub(super) fn submit_wrapup(
        &mut self,
        agent: &str,
        conversation: &str,
        reason: String,
        automatic: bool,
        now: Millis,
    ) {
        self.deadlines.cancel(&Timer::Wrapup {
            agent: agent.into(),
            conversation: conversation.into(),
        });
        if let Some(a) = self.agents.get_mut(agent) {
            if a.wrapups.remove(conversation).is_some() {
                if let Some(n) = self.owed.get_mut(conversation) {
                    *n = n.saturating_sub(1);
                    if *n == 0 {
                        self.owed.remove(conversation);
                    }
                }
            }
        }
        if let Some(c) = self.conversations.get_mut(conversation) {
            c.wrapups.push(WrapupRecord {
                agent: agent.into(),
                reason: reason.clone(),
                at: now,
                automatic,
            });
            self.journal.conversation_changed(conversation);
            // The last wrap-up of an ended conversation finishes it.
            if c.state == ConversationState::Ended {
                self.finishing.push(conversation.into());
            }
        }
        self.journal.effect(Effect::Observe(Observation::WrappedUp {
            conversation: conversation.into(),
            agent: agent.into(),
            reason,
        }));
        self.slot_freed(agent, now);
    }
}
