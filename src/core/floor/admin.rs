//! Administration and presence: queues, entry points and agents are created here, and
//! an agent's presence, skills and a conversation's priority change here.

use super::*;
use crate::core::tenant::Limit;

impl Floor {
    /// Creates a queue.
    pub(crate) fn create_queue(
        &mut self,
        id: &str,
        name: &str,
        steps: Vec<Step>,
        hours: Option<std::sync::Arc<crate::core::hours::Hours>>,
        wait_limit: Option<crate::core::queue::WaitLimit>,
        service_level_ms: Option<u64>,
    ) -> Result<&Queue, CoreError> {
        check_id("queue", id)?;
        check_name("queue name", name)?;
        check_steps(&steps)?;
        check_queue_settings(hours.as_deref(), wait_limit.as_ref(), service_level_ms)?;
        if self.queues.contains_key(id) {
            return Err(CoreError::AlreadyExists {
                kind: "queue",
                id: id.into(),
            });
        }
        self.limits.admit(Limit::Queues, self.queues.len())?;
        let mut q = Queue::new(id.into(), name.into());
        q.routing_steps = steps;
        q.hours = hours;
        q.wait_limit = wait_limit;
        q.service_level_ms = service_level_ms;
        self.journal.change(Change::Queue(q.record()));
        self.index.add_queue(id);
        self.pin_steps(id, &q.routing_steps);
        Ok(self.queues.entry(id.into()).or_insert(q))
    }

    /// Changes queue `id`'s settings: each `Some` replaces one (`Some(None)` removes it);
    /// the next customer who writes meets them. Conversations already open are left as
    /// they are. Everything is checked before anything changes.
    pub(crate) fn update_queue(
        &mut self,
        id: &str,
        hours: Option<Option<std::sync::Arc<crate::core::hours::Hours>>>,
        wait_limit: Option<Option<crate::core::queue::WaitLimit>>,
        service_level_ms: Option<Option<u64>>,
    ) -> Result<(), CoreError> {
        check_queue_settings(
            hours.as_ref().and_then(Option::as_deref),
            wait_limit.as_ref().and_then(Option::as_ref),
            service_level_ms.flatten(),
        )?;
        let q = self
            .queues
            .get_mut(id)
            .ok_or_else(|| CoreError::UnknownQueue(id.into()))?;
        if let Some(hours) = hours {
            q.hours = hours;
        }
        if let Some(limit) = wait_limit {
            q.wait_limit = limit;
        }
        if let Some(sl) = service_level_ms {
            q.service_level_ms = sl;
        }
        let record = q.record();
        self.journal.change(Change::Queue(record));
        Ok(())
    }

    /// Creates an entry point feeding `queue`.
    pub(crate) fn create_entry_point(&mut self, ep: EntryPoint) -> Result<&EntryPoint, CoreError> {
        check_id("entry point", &ep.id)?;
        check_name("entry point name", &ep.name)?;
        if let Some(p) = &ep.page_id {
            check_id("page", p)?;
            self.check_page_free(p, &ep.id)?;
        }
        if let Some(app) = &ep.messenger.return_to_app_id {
            if !crate::core::messenger::valid_graph_id(app) {
                return Err(CoreError::InvalidInput(
                    "return_to_app_id is an app id: 1 to 32 digits".into(),
                ));
            }
        }
        if self.entry_points.contains_key(&ep.id) {
            return Err(CoreError::AlreadyExists {
                kind: "entry point",
                id: ep.id,
            });
        }
        if !self.queues.contains_key(&ep.queue) {
            return Err(CoreError::UnknownQueue(ep.queue));
        }
        check_steps(&ep.routing_steps)?;
        self.journal.change(Change::EntryPoint(ep.clone()));
        self.pin_steps(&ep.queue, &ep.routing_steps);
        let id = ep.id.clone();
        Ok(self.entry_points.entry(id).or_insert(ep))
    }

    /// Creates an agent, logged out.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn create_agent(
        &mut self,
        id: &str,
        name: &str,
        queues: Vec<QueueId>,
        capacity: u32,
        account: crate::core::Account,
        skills: Skills,
        now: Millis,
    ) -> Result<&Agent, CoreError> {
        check_id("agent", id)?;
        check_name("agent name", name)?;
        check_skills("skills", &skills)?;
        if capacity == 0 || capacity > MAX_CAPACITY {
            return Err(CoreError::InvalidInput(format!("capacity must be 1 to {MAX_CAPACITY}")));
        }
        let mut seen = BTreeSet::new();
        for q in &queues {
            check_id("queue", q)?;
            if !self.queues.contains_key(q) {
                return Err(CoreError::UnknownQueue(q.clone()));
            }
            if !seen.insert(q) {
                return Err(CoreError::InvalidInput(format!("queue {q} is listed twice")));
            }
        }
        if self.agents.contains_key(id) {
            return Err(CoreError::AlreadyExists {
                kind: "agent",
                id: id.into(),
            });
        }
        self.limits.admit(Limit::Agents, self.agents.len())?;
        let mut a = Agent::new(id.into(), name.into(), queues, capacity, now);
        a.account = account;
        a.skills = skills;
        self.journal.effect(Effect::Observe(Observation::AgentAdded {
            agent: id.into(),
            presence: a.presence,
        }));
        self.account_created(crate::core::AccountRef::agent(id), &a.account);
        self.agents.insert(id.into(), a);
        self.journal.agent_changed(id);
        Ok(&self.agents[id])
    }

    /// An agent's account (its token and sign-in), for [`crate::core::accounts`].
    pub(in crate::core) fn agent_account_mut(&mut self, id: &str) -> Option<&mut crate::core::Account> {
        self.agents.get_mut(id).map(|a| &mut a.account)
    }

    /// An agent's record is to be written with the next commit.
    pub(in crate::core) fn agent_changed(&mut self, id: &str) {
        self.journal.agent_changed(id);
    }

    // ----- presence -----

    /// The agent sets its own presence. `rona` cannot be set; `logged_out` is refused while
    /// the agent holds conversations; leaving `rona` is only possible to `available` or `idle`.
    pub(crate) fn set_state(
        &mut self,
        agent: &str,
        state: Presence,
        idle_code: Option<String>,
        now: Millis,
    ) -> Result<&Agent, CoreError> {
        self.set_state_with_reason(agent, state, idle_code, None, now)
    }

    /// [`Floor::set_state`], with the `reason` the agent's `state_changed` carries
    /// (`None`: the agent's own change; `supervisor` or `admin` when set for it).
    pub(crate) fn set_state_with_reason(
        &mut self,
        agent: &str,
        state: Presence,
        idle_code: Option<String>,
        reason: Option<&'static str>,
        now: Millis,
    ) -> Result<&Agent, CoreError> {
        let a = self
            .agents
            .get(agent)
            .ok_or_else(|| CoreError::UnknownAgent(agent.into()))?;
        let idle_code = match state {
            Presence::Rona => return Err(CoreError::StateNotSettable("rona".into())),
            Presence::Idle => {
                let code = match idle_code {
                    Some(c) => c,
                    None => self
                        .rules
                        .idle_codes
                        .first()
                        .map(|c| c.code.clone())
                        .ok_or_else(|| CoreError::InvalidInput("idle_code is required".into()))?,
                };
                if !self.rules.idle_codes.iter().any(|c| c.code == code) {
                    return Err(CoreError::UnknownIdleCode(code));
                }
                Some(code)
            }
            _ => {
                if idle_code.is_some() {
                    return Err(CoreError::InvalidInput(
                        "idle_code is only allowed with state idle".into(),
                    ));
                }
                None
            }
        };
        if state == Presence::LoggedOut && a.presence != Presence::LoggedOut {
            if a.load() > 0 {
                return Err(CoreError::AgentBusy(agent.into()));
            }
            if a.presence == Presence::Rona {
                return Err(CoreError::InvalidState(format!(
                    "agent {agent} is in rona and can only set itself available or idle"
                )));
            }
        }
        self.change_presence(agent, state, idle_code, reason, now);
        self.route(now);
        Ok(&self.agents[agent])
    }

    /// Changes presence, records it, reindexes and notifies. No-op if unchanged.
    pub(super) fn change_presence(
        &mut self,
        agent: &str,
        state: Presence,
        idle_code: Option<String>,
        reason: Option<&'static str>,
        now: Millis,
    ) {
        let Some(a) = self.agents.get_mut(agent) else { return };
        let (from, since) = (a.presence, a.state_since);
        if !a.set_presence(state, idle_code, now) {
            return;
        }
        // The state that ended, for the agent report; an expired offer counts there too.
        if self.rules.reports {
            for d in crate::core::figures::presence_deltas(agent, from, since, now) {
                self.journal.change(Change::Figures(Box::new(d)));
            }
            if state == Presence::Rona {
                let d = crate::core::figures::rona_delta(agent, now);
                self.journal.change(Change::Figures(Box::new(d)));
            }
        }
        let event = AgentEvent::StateChanged {
            state: a.presence,
            idle_code: a.idle_code.clone(),
            state_since: a.state_since,
            reason,
        };
        self.journal.effect(Effect::Notify {
            agent: agent.into(),
            event,
        });
        self.journal.effect(Effect::Observe(Observation::PresenceChanged {
            agent: agent.into(),
            from,
            to: state,
        }));
        self.journal.agent_changed(agent);
        self.reindex(agent);
        self.touched_agents.push(agent.into());
    }

    /// Puts the agent in the free index of its queues if eligible, or takes it out.
    pub(super) fn reindex(&mut self, agent: &str) {
        let Some(a) = self.agents.get(agent) else { return };
        let want = a.eligible().then_some(a.free_since);
        if want == self.index.indexed(agent) {
            return;
        }
        match want {
            Some(_) => self.index.agent_in(view(a)),
            None => self.index.agent_out(view(a)),
        }
    }

    /// Replaces an agent's skills (admin). Routing runs at once: a waiting conversation
    /// the agent now meets is offered to it if it is eligible.
    pub(crate) fn set_skills(&mut self, agent: &str, skills: Skills, now: Millis) -> Result<&Agent, CoreError> {
        check_skills("skills", &skills)?;
        let a = self
            .agents
            .get(agent)
            .ok_or_else(|| CoreError::UnknownAgent(agent.into()))?;
        if a.skills != skills {
            // Out of the index under the old skills, back in under the new ones.
            self.index.agent_out(view(a));
            if let Some(a) = self.agents.get_mut(agent) {
                a.skills = skills;
            }
            self.reindex(agent);
            self.journal.agent_changed(agent);
            self.touched_agents.push(agent.into());
            self.route(now);
        }
        self.agent_ref(agent)
    }

    /// Changes a waiting (queued or offered) conversation's priority (admin). A queued one
    /// takes its new place at once and routing runs; an offered one keeps its offer, and
    /// the priority counts if it is queued again.
    pub(crate) fn set_priority(&mut self, conversation: &str, priority: i32, now: Millis) -> Result<(), CoreError> {
        let c = self
            .conversations
            .get(conversation)
            .ok_or_else(|| CoreError::UnknownConversation(conversation.into()))?;
        let queued = match c.state {
            ConversationState::Queued => true,
            ConversationState::Offered => false,
            _ => return Err(CoreError::NotQueued(conversation.into())),
        };
        if c.priority == priority {
            return Ok(());
        }
        if queued {
            self.dequeue(conversation);
        }
        if let Some(c) = self.conversations.get_mut(conversation) {
            c.priority = priority;
        }
        self.journal.conversation_changed(conversation);
        if queued {
            self.enqueue(conversation, now);
        }
        self.route(now);
        Ok(())
    }

    /// A slot of `agent` was freed at `now`.
    pub(super) fn slot_freed(&mut self, agent: &str, now: Millis) {
        if let Some(a) = self.agents.get_mut(agent) {
            a.free_since = now;
        }
        self.journal.agent_changed(agent);
        self.reindex(agent);
        self.touched_agents.push(agent.into());
    }
}

/// Accepts a queue's business hours, bound on waiting and service level threshold, each
/// if given.
fn check_queue_settings(
    hours: Option<&crate::core::hours::Hours>,
    wait_limit: Option<&crate::core::queue::WaitLimit>,
    service_level_ms: Option<u64>,
) -> Result<(), CoreError> {
    if let Some(h) = hours {
        crate::core::hours::check(h)?;
    }
    if let Some(sl) = service_level_ms {
        if !(1..=crate::core::figures::MAX_SERVICE_LEVEL_MS).contains(&sl) {
            return Err(CoreError::InvalidInput(format!(
                "service_level_ms is 1 to {} (a day)",
                crate::core::figures::MAX_SERVICE_LEVEL_MS
            )));
        }
    }
    wait_limit.map_or(Ok(()), crate::core::queue::WaitLimit::check)
}
