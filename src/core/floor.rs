//! [`Floor`]: the whole routing state machine.
//!
//! Commands reach the floor through [`Floor::execute`] (`command.rs`). Every operation
//! takes `now` and either returns an error having changed nothing (with one exception: an
//! accept after the deadline carries out the expiry it finds, then answers
//! `offer_expired`; see [`Floor::accept`]), or applies the change and queues [`Effect`]s and [`Change`]s that the caller takes with
//! [`Floor::take_effects`] and [`Floor::take_changes`]. After every operation the routing
//! step runs, so that SPEC.md invariant 4 holds whenever the floor is at rest: no
//! conversation waits while an eligible agent for it exists.
//!
//! # Routing
//! Eligible agents of each queue are kept in an index ordered by `free_since`, so the
//! longest-free agent is found in O(log n). An agent that becomes free takes the oldest
//! waiting conversation (priority first) across the queues it serves. Reserving the slot
//! and making the offer happen in one step ([`Floor::make_offer`]), so an agent that serves
//! several queues can never be over-offered.

use std::cmp::Reverse;
use std::collections::BTreeSet;
use std::sync::Arc;

use super::agent::{Agent, Presence};
use super::command::Command;
use super::conversation::*;
use super::error::CoreError;
use super::event::*;
use super::queue::{EntryPoint, Queue, QueueKey};
use super::routing::{
    self, check_skills, check_steps, AgentChoice, AgentView, LastOwner, Opening, Requirements, RoutingIndex, Skills,
    Step, WaitingView,
};
use super::{
    valid_id, AgentId, Code, ConversationId, EntryPointId, FastMap, Millis, QueueId, MAX_CAPACITY, MAX_NAME_CHARS,
    MAX_TEXT_CHARS,
};

/// What the customer does when an untaken transfer to an agent expires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransferNoAnswer {
    /// End the conversation with reason `transfer_not_accepted` (the reference product).
    Drop,
    /// Put it back in its queue, keeping its place.
    Requeue,
}

/// The routing rules from configuration.
#[derive(Debug, Clone)]
pub struct Rules {
    pub offer_timeout_ms: u64,
    pub transfer_timeout_ms: u64,
    pub conference_timeout_ms: u64,
    pub transfer_no_answer: TransferNoAnswer,
    /// 0 = off.
    pub auto_wrapup_after_ms: u64,
    pub default_wrapup_reason: String,
    pub wrapup_reasons: Arc<Vec<Code>>,
    pub idle_codes: Arc<Vec<Code>>,
    /// Messenger: outside the 24-hour window, send with the `HUMAN_AGENT` tag (up to 7
    /// days) instead of refusing (`messenger.human_agent_tag`).
    pub human_agent_tag: bool,
    /// `routing.agent_choice`.
    pub agent_choice: AgentChoice,
    /// `routing.last_agent_ms`: how long a returning customer's conversation waits for
    /// its last owner alone (0: off).
    pub last_agent_ms: u64,
    /// `routing.last_agent_within_ms`: how recent the previous conversation must have
    /// ended for a preference (0: off).
    pub last_agent_within_ms: u64,
    /// `routing.inactivity_close_ms`: an active conversation whose customer has been
    /// silent this long is closed (0: off).
    pub inactivity_close_ms: u64,
}

/// The system message added when a silent customer's conversation is closed.
pub const INACTIVITY_TEXT: &str = "This chat was closed because there was no reply for a while.";

impl Rules {
    /// Preferred agents are on (both keys above 0).
    pub fn preference_on(&self) -> bool {
        self.last_agent_ms > 0 && self.last_agent_within_ms > 0
    }
}

impl Default for Rules {
    fn default() -> Self {
        let code = |c: &str, l: &str| Code {
            code: c.into(),
            label: l.into(),
        };
        Rules {
            offer_timeout_ms: 30_000,
            transfer_timeout_ms: 30_000,
            conference_timeout_ms: 30_000,
            transfer_no_answer: TransferNoAnswer::Drop,
            auto_wrapup_after_ms: 0,
            default_wrapup_reason: "other".into(),
            wrapup_reasons: Arc::new(vec![
                code("resolved", "Resolved"),
                code("follow_up", "Follow-up needed"),
                code("escalated", "Escalated"),
                code("other", "Other"),
            ]),
            idle_codes: Arc::new(vec![
                code("break", "Break"),
                code("meeting", "Meeting"),
                code("lunch", "Lunch"),
            ]),
            human_agent_tag: false,
            agent_choice: AgentChoice::LongestIdle,
            last_agent_ms: 0,
            last_agent_within_ms: 0,
            inactivity_close_ms: 0,
        }
    }
}

/// The routing state machine. See the module docs.
#[derive(Debug, Default)]
pub struct Floor {
    pub(super) rules: Rules,
    agents: FastMap<AgentId, Agent>,
    queues: FastMap<QueueId, Queue>,
    pub(super) entry_points: FastMap<EntryPointId, EntryPoint>,
    /// Boxed so that growing the map moves pointers, not whole records: a resize of
    /// 100,000s of inline records stalled the router for tenths of a second.
    pub(super) conversations: FastMap<ConversationId, Box<Conversation>>,
    /// Open conversation of each (entry point, customer): later messages join it.
    pub(super) open_by_customer: FastMap<(EntryPointId, String), ConversationId>,
    /// Eligible agents and waiting conversations by queue and requirement set.
    index: RoutingIndex,
    next_conversation: u64,
    next_offer: u64,
    next_arrival: u64,
    /// Routing work left by the last operation.
    touched_agents: Vec<AgentId>,
    touched_conversations: Vec<ConversationId>,
    pub(super) effects: Vec<Effect>,
    /// Records changed since the last [`Floor::take_changes`], each once (see [`mark`]):
    /// hashed sets that allocate an id only when it is new (an operation marks the same
    /// record several times; a batch of operations marks hundreds); sorted when taken.
    dirty_agents: FastSet<AgentId>,
    dirty_conversations: FastSet<ConversationId>,
    pub(super) changes: Vec<Change>,
    counters_dirty: bool,
    /// How many agents owe a wrap-up for each conversation: derived from the agents'
    /// `wrapups` (kept in step by [`Floor::leave`] and [`Floor::submit_wrapup`], rebuilt
    /// by [`Floor::restore`]), so that finding out whether an ended conversation is
    /// finished costs one lookup instead of a scan of every agent.
    owed: FastMap<ConversationId, u32>,
    /// Conversations that an operation since the last [`Floor::take_changes`] may have
    /// finished (ended, or had a wrap-up submitted); checked there.
    finishing: Vec<ConversationId>,
    /// The finished conversations the last [`Floor::take_changes`] removed, whole (with
    /// their transcripts), for the shell to hold until their final record is durable.
    // Boxes, not records: they come out of `conversations` and go into the router's map
    // as they are, with no copy of the record and no new allocation.
    #[allow(clippy::vec_box)]
    evicted: Vec<Box<Conversation>>,
    /// Supervisor accounts and the audit trail of presence they set (`supervisor.rs`).
    pub(super) supervision: super::supervisor::Supervision,
    /// Every armed deadline (`deadlines.rs`): the shell asks [`Floor::next_deadline`] and
    /// calls [`Floor::fire_due`] then.
    deadlines: super::deadlines::Deadlines,
    /// Messenger sender actions (typing, seen) already sent, per conversation
    /// (`messenger.rs`): not durable, bounded.
    pub(super) sender_actions: super::messenger::SenderActions,
}

/// A command on a conversation the floor no longer holds because it is finished; what
/// the command was decides its refusal ([`Floor::refusal_for_finished`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FinishedAct {
    /// `agent` accepts it.
    Accept { agent: AgentId },
    /// `agent` submits a wrap-up for it.
    Wrapup { agent: AgentId },
    /// Any other command naming it: a message (agent or customer), a transfer, a
    /// conference, exit or end of a conference, an end (agent or customer). Each needs
    /// an open conversation.
    NeedsOpen,
    /// A priority change: it needs a waiting conversation.
    NeedsQueued,
}

/// What happened to a customer message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arrival {
    pub conversation: ConversationId,
    /// True when the message opened a new conversation.
    pub opened: bool,
    pub message: Message,
}

/// A new offer's parameters.
struct OfferSpec {
    kind: OfferKind,
    from_agent: Option<AgentId>,
}

fn check_id(what: &str, id: &str) -> Result<(), CoreError> {
    if valid_id(id) {
        Ok(())
    } else {
        Err(CoreError::InvalidInput(format!(
            "{what} id must be 1 to 64 characters from [A-Za-z0-9_.-]"
        )))
    }
}

fn check_name(what: &str, name: &str) -> Result<(), CoreError> {
    let n = name.chars().count();
    if n == 0 || n > MAX_NAME_CHARS || name.trim().is_empty() {
        return Err(CoreError::InvalidInput(format!(
            "{what} must be 1 to {MAX_NAME_CHARS} characters"
        )));
    }
    Ok(())
}

fn check_text(text: &str) -> Result<(), CoreError> {
    if text.trim().is_empty() {
        return Err(CoreError::InvalidInput("text must not be empty".into()));
    }
    if text.chars().count() > MAX_TEXT_CHARS {
        return Err(CoreError::InvalidInput(format!(
            "text must be at most {MAX_TEXT_CHARS} characters"
        )));
    }
    Ok(())
}

/// Hashed set of ids (see [`FastMap`]).
type FastSet<K> = std::collections::HashSet<K, foldhash::fast::RandomState>;

/// Adds `id` to a dirty set unless it is there already.
fn mark(dirty: &mut FastSet<String>, id: &str) {
    if !dirty.contains(id) {
        dirty.insert(id.to_owned());
    }
}

/// What an offer shows: the conversation with only the customer's first message of its
/// transcript (see [`AgentEvent::Offer`]); the rest of the transcript is not cloned.
fn offer_snapshot(c: &mut Conversation) -> Conversation {
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

/// A conversation's record without its transcript, cheaply.
fn record(c: &mut Conversation) -> Conversation {
    let transcript = std::mem::take(&mut c.transcript);
    let r = c.clone();
    c.transcript = transcript;
    r
}

impl Floor {
    /// An empty floor with these rules.
    pub fn new(rules: Rules) -> Self {
        Floor {
            index: RoutingIndex::new(rules.agent_choice),
            rules,
            next_conversation: 1,
            next_offer: 1,
            next_arrival: 1,
            ..Default::default()
        }
    }

    /// The rules in force.
    pub fn rules(&self) -> &Rules {
        &self.rules
    }

    /// Conversation `id`'s record changed outside the lifecycle (e.g. its customer's name).
    pub(super) fn conversation_changed(&mut self, id: &str) {
        mark(&mut self.dirty_conversations, id);
    }

    // ----- reading -----

    pub fn agent(&self, id: &str) -> Option<&Agent> {
        self.agents.get(id)
    }
    pub fn agents(&self) -> impl Iterator<Item = &Agent> {
        self.agents.values()
    }
    pub fn queue(&self, id: &str) -> Option<&Queue> {
        self.queues.get(id)
    }
    pub fn queues(&self) -> impl Iterator<Item = &Queue> {
        self.queues.values()
    }
    pub fn entry_point(&self, id: &str) -> Option<&EntryPoint> {
        self.entry_points.get(id)
    }
    pub fn entry_points(&self) -> impl Iterator<Item = &EntryPoint> {
        self.entry_points.values()
    }
    pub fn conversation(&self, id: &str) -> Option<&Conversation> {
        self.conversations.get(id).map(|c| &**c)
    }
    pub fn conversations(&self) -> impl Iterator<Item = &Conversation> {
        self.conversations.values().map(|c| &**c)
    }
    /// How many conversations the floor holds: every one not finished (and, between an
    /// operation and the next [`Floor::take_changes`], those it just finished).
    pub fn conversations_held(&self) -> usize {
        self.conversations.len()
    }
    /// How many agents owe a wrap-up for `conversation`.
    pub fn wrapups_owed(&self, conversation: &str) -> u32 {
        self.owed.get(conversation).copied().unwrap_or(0)
    }
    /// Finished: ended, and every wrap-up it required submitted. Nothing on the floor
    /// refers to a finished conversation any more (ending withdrew its offer and took its
    /// participants out), so [`Floor::take_changes`] lets go of it.
    pub fn is_finished(&self, c: &Conversation) -> bool {
        c.state == ConversationState::Ended && self.wrapups_owed(&c.id) == 0
    }
    /// Agents serving `queue` that are eligible now.
    pub fn agents_available(&self, queue: &str) -> usize {
        self.index.available_in(queue)
    }
    /// The open conversation of a customer on an entry point.
    pub fn open_conversation_of(&self, entry_point: &str, customer: &str) -> Option<&ConversationId> {
        self.open_by_customer
            .get(&(entry_point.to_string(), customer.to_string()))
    }

    /// Takes the effects queued since the last call.
    pub fn take_effects(&mut self) -> Vec<Effect> {
        // The next operation starts with room for a typical one's effects instead of
        // growing from empty (an `Effect` is large, so each growth copies a lot).
        std::mem::replace(&mut self.effects, Vec::with_capacity(8))
    }

    /// Takes the changes to make durable since the last call: the records in id order
    /// (agents, then conversations), then the counters.
    ///
    /// Conversations that the operations since the last call finished leave the floor
    /// here, once their final record is among the changes: holding every conversation
    /// ever made cost ~1.9 KiB per lifecycle of the load harness's scenario (BENCHMARKS.md,
    /// "Memory"), without bound, and the growing maps stalled routing. The
    /// removed conversations are kept, whole, until the next call for
    /// [`Floor::take_evicted`]; afterwards only the store has them.
    pub fn take_changes(&mut self) -> Vec<Change> {
        // One allocation of the right size; `self.changes` keeps its own for the next time.
        let mut out =
            Vec::with_capacity(self.changes.len() + self.dirty_agents.len() + self.dirty_conversations.len() + 1);
        out.append(&mut self.changes);
        let mut agents: Vec<AgentId> = self.dirty_agents.drain().collect();
        agents.sort_unstable();
        for id in agents {
            if let Some(a) = self.agents.get(&id) {
                out.push(Change::Agent(Box::new(a.clone())));
            }
        }
        let mut conversations: Vec<ConversationId> = self.dirty_conversations.drain().collect();
        conversations.sort_unstable();
        for id in conversations {
            if let Some(c) = self.conversations.get_mut(&id) {
                out.push(Change::Conversation(Box::new(record(c))));
            }
        }
        if std::mem::take(&mut self.counters_dirty) {
            out.push(Change::Counters {
                next_conversation: self.next_conversation,
                next_offer: self.next_offer,
                next_arrival: self.next_arrival,
            });
        }
        self.evict_finished();
        out
    }

    /// The finished conversations the last [`Floor::take_changes`] removed, with their
    /// transcripts (each is handed out once).
    pub fn take_evicted(&mut self) -> Vec<Box<Conversation>> {
        std::mem::take(&mut self.evicted)
    }

    /// Removes the finished conversations among those the last operations touched. Every
    /// candidate was marked dirty by the step that made it one (end, wrap-up), so its
    /// final record is already in the changes just taken.
    fn evict_finished(&mut self) {
        self.evicted.clear();
        if self.finishing.is_empty() {
            return;
        }
        let mut finishing = std::mem::take(&mut self.finishing);
        for id in finishing.drain(..) {
            if !self.conversations.get(&id).is_some_and(|c| self.is_finished(c)) {
                continue;
            }
            if let Some(c) = self.conversations.remove(&id) {
                self.deadlines.cancel_conversation(&id);
                self.evicted.push(c);
            }
        }
        // Keep the allocation for the next operations.
        self.finishing = finishing;
    }

    /// The refusal a command on a finished conversation gets: the one the floor gave while
    /// it still held the conversation (see [`Floor::accept`], [`Floor::wrapup`] and
    /// [`Floor::open`]), so that letting go of it changes no answer. The shell calls this
    /// when the floor answered `unknown_conversation` and the store has the conversation.
    /// `c` must be finished; every check that comes before the conversation's in the
    /// command (agent, text, reason) has already passed, or the floor would have said so.
    pub fn refusal_for_finished(c: &Conversation, act: &FinishedAct) -> CoreError {
        match act {
            FinishedAct::Accept { agent } if c.rona_agents.contains(agent) => CoreError::OfferExpired {
                conversation: c.id.clone(),
                agent: agent.clone(),
            },
            FinishedAct::Accept { agent } => CoreError::NotOfferedToYou {
                conversation: c.id.clone(),
                agent: agent.clone(),
            },
            FinishedAct::Wrapup { agent } => CoreError::NoWrapupOwed {
                conversation: c.id.clone(),
                agent: agent.clone(),
            },
            FinishedAct::NeedsOpen => CoreError::ConversationEnded(c.id.clone()),
            FinishedAct::NeedsQueued => CoreError::NotQueued(c.id.clone()),
        }
    }

    // ----- administration -----

    /// Creates a queue.
    pub(crate) fn create_queue(&mut self, id: &str, name: &str, steps: Vec<Step>) -> Result<&Queue, CoreError> {
        check_id("queue", id)?;
        check_name("queue name", name)?;
        check_steps(&steps)?;
        if self.queues.contains_key(id) {
            return Err(CoreError::AlreadyExists {
                kind: "queue",
                id: id.into(),
            });
        }
        let mut q = Queue::new(id.into(), name.into());
        q.routing_steps = steps;
        self.changes.push(Change::Queue(q.clone()));
        self.index.add_queue(id);
        self.pin_steps(id, &q.routing_steps);
        Ok(self.queues.entry(id.into()).or_insert(q))
    }

    /// Creates an entry point feeding `queue`.
    pub(crate) fn create_entry_point(&mut self, ep: EntryPoint) -> Result<&EntryPoint, CoreError> {
        check_id("entry point", &ep.id)?;
        check_name("entry point name", &ep.name)?;
        if let Some(p) = &ep.page_id {
            check_id("page", p)?;
            self.check_page_free(p, &ep.id)?;
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
        self.changes.push(Change::EntryPoint(ep.clone()));
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
        account: super::Account,
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
        let mut a = Agent::new(id.into(), name.into(), queues, capacity, now);
        a.account = account;
        a.skills = skills;
        self.effects.push(Effect::Observe(Observation::AgentAdded {
            agent: id.into(),
            presence: a.presence,
        }));
        self.account_created(super::AccountRef::agent(id), &a.account);
        self.agents.insert(id.into(), a);
        mark(&mut self.dirty_agents, id);
        Ok(&self.agents[id])
    }

    /// An agent's account (its token and sign-in), for [`super::accounts`].
    pub(super) fn agent_account_mut(&mut self, id: &str) -> Option<&mut super::Account> {
        self.agents.get_mut(id).map(|a| &mut a.account)
    }

    /// An agent's record is to be written with the next commit.
    pub(super) fn agent_changed(&mut self, id: &str) {
        mark(&mut self.dirty_agents, id);
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
    fn change_presence(
        &mut self,
        agent: &str,
        state: Presence,
        idle_code: Option<String>,
        reason: Option<&'static str>,
        now: Millis,
    ) {
        let Some(a) = self.agents.get_mut(agent) else { return };
        let from = a.presence;
        if !a.set_presence(state, idle_code, now) {
            return;
        }
        let event = AgentEvent::StateChanged {
            state: a.presence,
            idle_code: a.idle_code.clone(),
            state_since: a.state_since,
            reason,
        };
        self.effects.push(Effect::Notify {
            agent: agent.into(),
            event,
        });
        self.effects.push(Effect::Observe(Observation::PresenceChanged {
            agent: agent.into(),
            from,
            to: state,
        }));
        mark(&mut self.dirty_agents, agent);
        self.reindex(agent);
        self.touched_agents.push(agent.into());
    }

    /// Puts the agent in the free index of its queues if eligible, or takes it out.
    fn reindex(&mut self, agent: &str) {
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
            mark(&mut self.dirty_agents, agent);
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
        mark(&mut self.dirty_conversations, conversation);
        if queued {
            self.enqueue(conversation, now);
        }
        self.route(now);
        Ok(())
    }

    /// A slot of `agent` was freed at `now`.
    fn slot_freed(&mut self, agent: &str, now: Millis) {
        if let Some(a) = self.agents.get_mut(agent) {
            a.free_since = now;
        }
        mark(&mut self.dirty_agents, agent);
        self.reindex(agent);
        self.touched_agents.push(agent.into());
    }

    // ----- customer side -----

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
        let ep = self
            .entry_points
            .get(entry_point)
            .ok_or_else(|| CoreError::UnknownEntryPoint(entry_point.into()))?;
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
        let queue = self
            .queues
            .get(&ep.queue)
            .ok_or_else(|| CoreError::UnknownQueue(ep.queue.clone()))?;
        let id = format!("c-{}", self.next_conversation);
        self.next_conversation += 1;
        let arrival = self.next_arrival;
        self.next_arrival += 1;
        self.counters_dirty = true;
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
        };
        let queue_id = c.queue.clone();
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
        self.enqueue(&id, now);
        self.effects.push(Effect::Observe(Observation::Arrived {
            conversation: id.clone(),
            queue: queue_id,
        }));
        self.route(now);
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
        mark(&mut self.dirty_agents, agent);
        self.deadlines.cancel(&Timer::Offer {
            conversation: conversation.into(),
            offer: offer.id,
        });
        let c = self
            .conversations
            .get_mut(conversation)
            .ok_or_else(|| CoreError::UnknownConversation(conversation.into()))?;
        c.offer = None;
        let queue_wait_ms = now.saturating_sub(c.received_at);
        match offer.kind {
            OfferKind::New | OfferKind::Transfer => {
                c.state = ConversationState::Active;
                c.owner = Some(agent.into());
                // Once any agent accepts, the preference is over (API.md).
                c.routing.preferred_agent = None;
                c.routing.last_owner = Some(agent.into());
                c.routing.inactive_since = Some(now);
            }
            OfferKind::Conference => {
                c.guest = Some(agent.into());
            }
        }
        mark(&mut self.dirty_conversations, conversation);
        if offer.kind != OfferKind::Conference {
            self.arm_inactivity(conversation);
        }
        self.effects.push(Effect::Observe(Observation::Accepted {
            conversation: conversation.into(),
            agent: agent.into(),
            kind: offer.kind,
            offer_ms: now.saturating_sub(offer.offered_at),
            queue_wait_ms,
        }));
        if offer.kind == OfferKind::Conference {
            let owner = self.conversations[conversation].owner.clone();
            if let Some(owner) = owner {
                self.effects.push(Effect::Observe(Observation::Conferenced {
                    conversation: conversation.into(),
                    owner: owner.clone(),
                    guest: agent.into(),
                }));
                self.effects.push(Effect::Notify {
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
        self.effects.push(Effect::Notify {
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
            && super::messenger::window(c.last_customer_message_at(), now, self.rules.human_agent_tag)
                == super::messenger::Window::Closed
        {
            return Err(CoreError::OutsideMessagingWindow(conversation.into()));
        }
        Ok(self.append(conversation, AuthorKind::Agent, Some(agent.into()), name, text, now))
    }

    /// The owner transfers to another agent, which must be eligible. The owner leaves at once.
    pub(crate) fn transfer_to_agent(
        &mut self,
        agent: &str,
        conversation: &str,
        target: &str,
        now: Millis,
    ) -> Result<(), CoreError> {
        self.check_target(agent, conversation, target, "transfer to")?;
        self.owner_leaves(agent, conversation, now);
        if let Some(c) = self.conversations.get_mut(conversation) {
            c.state = ConversationState::Offered;
        }
        self.effects.push(Effect::Observe(Observation::Transferred {
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
    fn check_target(&self, agent: &str, conversation: &str, target: &str, verb: &str) -> Result<(), CoreError> {
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
        now: Millis,
    ) -> Result<(), CoreError> {
        self.check_owner_free_to_leave(agent, conversation)?;
        let q = self
            .queues
            .get(queue)
            .ok_or_else(|| CoreError::UnknownQueue(queue.into()))?;
        let (qid, qname, steps) = (q.id.clone(), q.name.clone(), q.routing_steps.clone());
        self.owner_leaves(agent, conversation, now);
        let arrival = self.next_arrival;
        self.next_arrival += 1;
        self.counters_dirty = true;
        if let Some(c) = self.conversations.get_mut(conversation) {
            c.queue = qid.clone();
            c.queue_name = qname;
            c.received_at = now;
            c.arrival = arrival;
            c.rona_agents.clear();
            c.state = ConversationState::Queued;
            // The entry point's steps were written for the queue it first entered; the
            // new queue's own steps (maybe none) apply from step 0 (SPEC.md).
            c.routing.steps = steps;
            c.routing.step = None;
            c.routing.requirements.clear();
            c.routing.preferred_agent = None;
        }
        self.enqueue(conversation, now);
        self.effects.push(Effect::Observe(Observation::Transferred {
            conversation: conversation.into(),
            from: agent.into(),
        }));
        self.effects.push(Effect::Observe(Observation::Arrived {
            conversation: conversation.into(),
            queue: qid,
        }));
        self.route(now);
        Ok(())
    }

    /// The owner invites a second agent, which must be eligible.
    pub(crate) fn conference(
        &mut self,
        agent: &str,
        conversation: &str,
        target: &str,
        now: Millis,
    ) -> Result<(), CoreError> {
        self.check_target(agent, conversation, target, "invite")?;
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
        mark(&mut self.dirty_conversations, conversation);
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
            self.effects.push(Effect::Notify {
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

    // ----- timers -----

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

    /// Fires the earliest deadline due at `now`, if one is: [`Floor::fire_due`] one at a
    /// time (the simulation checks the invariants after each).
    pub fn fire_next_due(&mut self, now: Millis) -> Option<Timer> {
        let timer = self.deadlines.pop_due(now)?;
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
        }
    }

    // ----- recovery -----

    /// Rebuilds a floor from stored records. Pending offers are made again to the same
    /// agent with a fresh deadline (SPEC.md); automatic wrap-up timers keep their stored
    /// deadlines. Routing then runs, so recovered state at rest keeps invariant 4.
    #[allow(clippy::too_many_arguments)]
    pub fn restore(
        rules: Rules,
        queues: Vec<Queue>,
        entry_points: Vec<EntryPoint>,
        agents: Vec<Agent>,
        conversations: Vec<Conversation>,
        counters: (u64, u64, u64),
        now: Millis,
    ) -> Floor {
        let mut f = Floor::new(rules);
        f.next_conversation = counters.0.max(1);
        f.next_offer = counters.1.max(1);
        f.next_arrival = counters.2.max(1);
        for q in &queues {
            f.index.add_queue(&q.id);
        }
        for q in queues {
            f.queues.insert(q.id.clone(), q);
        }
        for ep in entry_points {
            f.entry_points.insert(ep.id.clone(), ep);
        }
        for a in agents {
            for c in a.wrapups.keys() {
                *f.owed.entry(c.clone()).or_default() += 1;
            }
            f.effects.push(Effect::Observe(Observation::AgentAdded {
                agent: a.id.clone(),
                presence: a.presence,
            }));
            f.agents.insert(a.id.clone(), a);
        }
        let mut ids: Vec<_> = Vec::with_capacity(conversations.len());
        for c in conversations {
            // Counters are written in the same batch as the conversation, but be safe.
            if let Some(n) = c.id.strip_prefix("c-").and_then(|n| n.parse::<u64>().ok()) {
                f.next_conversation = f.next_conversation.max(n + 1);
            }
            f.next_arrival = f.next_arrival.max(c.arrival + 1);
            if let Some(o) = &c.offer {
                f.next_offer = f.next_offer.max(o.id + 1);
            }
            // A finished conversation stays in the store only (the stores skip them when
            // they can; this catches the rest).
            if f.is_finished(&c) {
                continue;
            }
            ids.push(c.id.clone());
            if c.is_open() {
                if let Some(ep) = &c.entry_point {
                    f.open_by_customer
                        .insert((ep.clone(), c.customer.id.clone()), c.id.clone());
                }
            }
            f.conversations.insert(c.id.clone(), Box::new(c));
        }
        ids.sort();
        // Agents are indexed before the queued conversations, so that the groups those
        // make find the eligible agents; configured steps are pinned first.
        let agent_ids: Vec<_> = {
            let mut v: Vec<_> = f.agents.keys().cloned().collect();
            v.sort();
            v
        };
        for id in &agent_ids {
            f.reindex(id);
        }
        let pins: Vec<(QueueId, Vec<Step>)> = f
            .queues
            .values()
            .map(|q| (q.id.clone(), q.routing_steps.clone()))
            .chain(
                f.entry_points
                    .values()
                    .map(|e| (e.queue.clone(), e.routing_steps.clone())),
            )
            .collect();
        for (q, steps) in pins {
            f.pin_steps(&q, &steps);
        }
        for id in &ids {
            let c = &f.conversations[id];
            match c.state {
                // A conversation that should have moved on while the engine was down
                // moves on now (enqueue files it under its step at `now`).
                ConversationState::Queued => f.enqueue(id, now),
                ConversationState::Offered if steps_apply(c) => {
                    f.update_step(id, now);
                    f.arm_routing_deadline(id);
                }
                ConversationState::Offered => {}
                ConversationState::Active => f.arm_inactivity(id),
                ConversationState::Ended => {}
            }
        }
        // Re-offer pending offers with a fresh deadline, in a stable order.
        for id in &ids {
            let Some(o) = f.conversations[id].offer.clone() else {
                continue;
            };
            let timeout = f.timeout(o.kind);
            let offer_id = f.next_offer;
            f.next_offer += 1;
            f.counters_dirty = true;
            let fresh = Offer {
                id: offer_id,
                offered_at: now,
                expires_at: now.saturating_add(timeout),
                ..o
            };
            if let Some(c) = f.conversations.get_mut(id) {
                c.offer = Some(fresh.clone());
            }
            mark(&mut f.dirty_conversations, id);
            f.notify_offer(id, &fresh);
        }
        for id in &agent_ids {
            f.touched_agents.push(id.clone());
            let owed: Vec<ConversationId> = f.agents[id].wrapups.keys().cloned().collect();
            for conversation in owed {
                f.arm_wrapup(id, &conversation);
            }
        }
        f.touched_conversations.extend(ids);
        f.route(now);
        f
    }

    // ----- internals -----

    fn agent_ref(&self, agent: &str) -> Result<&Agent, CoreError> {
        self.agents
            .get(agent)
            .ok_or_else(|| CoreError::UnknownAgent(agent.into()))
    }

    fn open(&self, conversation: &str) -> Result<&Conversation, CoreError> {
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
    fn owned(&self, agent: &str, conversation: &str) -> Result<&Conversation, CoreError> {
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
    fn check_owner_free_to_leave(&self, agent: &str, conversation: &str) -> Result<(), CoreError> {
        let c = self.owned(agent, conversation)?;
        if c.conference_state() != ConferenceState::None {
            return Err(CoreError::ConferenceInProgress(conversation.into()));
        }
        Ok(())
    }

    fn timeout(&self, kind: OfferKind) -> u64 {
        match kind {
            OfferKind::New => self.rules.offer_timeout_ms,
            OfferKind::Transfer => self.rules.transfer_timeout_ms,
            OfferKind::Conference => self.rules.conference_timeout_ms,
        }
    }

    /// Appends a message to the transcript and delivers it to the agents in the
    /// conversation and (for agent and system messages) to the customer's channel.
    fn append(
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

    /// [`Floor::append`] with attachments. An agent or system message to a Messenger
    /// customer goes to the outbox ([`Floor::outbound`]) instead of [`Effect::Deliver`].
    #[allow(clippy::too_many_arguments)]
    pub(super) fn append_with(
        &mut self,
        conversation: &str,
        kind: AuthorKind,
        id: Option<String>,
        name: String,
        text: &str,
        attachments: Vec<Attachment>,
        now: Millis,
    ) -> Message {
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
        } else {
            None
        };
        let Some(c) = self.conversations.get_mut(conversation) else {
            return message;
        };
        c.transcript.push(message.clone());
        let participants: Vec<AgentId> = c.participants().cloned().collect();
        self.changes.push(Change::Message {
            conversation: conversation.into(),
            message: message.clone(),
        });
        for p in participants {
            self.effects.push(Effect::Notify {
                agent: p,
                event: AgentEvent::Message {
                    conversation: conversation.into(),
                    message: message.clone(),
                },
            });
        }
        if let Some(o) = outbound {
            self.changes.push(Change::Outbox(o.clone()));
            self.effects.push(Effect::Send(o));
        } else if to_customer {
            self.effects.push(Effect::Deliver {
                conversation: conversation.into(),
                message: message.clone(),
            });
        }
        message
    }

    /// Puts a queued conversation in its queue's waiting order, in the step it is in at
    /// `now`, and schedules routing and its next routing deadline.
    fn enqueue(&mut self, conversation: &str, now: Millis) {
        self.update_step(conversation, now);
        let Some(c) = self.conversations.get(conversation) else {
            return;
        };
        let key = queue_key(c);
        if let Some(q) = self.queues.get_mut(&c.queue) {
            q.waiting.insert(key, conversation.into());
        }
        let candidates = self.group_candidates(&c.queue, &c.routing.requirements);
        let agents = &self.agents;
        self.index.wait(
            waiting_view(c),
            candidates.iter().filter_map(|id| agents.get(id)).map(view),
        );
        self.arm_routing_deadline(conversation);
        mark(&mut self.dirty_conversations, conversation);
        self.touched_conversations.push(conversation.into());
    }

    fn dequeue(&mut self, conversation: &str) {
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
    fn update_step(&mut self, conversation: &str, now: Millis) {
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
            mark(&mut self.dirty_conversations, conversation);
            // A step set when the conversation enters a queue is not a move.
            if c.state != ConversationState::Queued
                || c.routing.step.is_some_and(|s| s > 0)
                || preference_ended.is_some()
            {
                self.effects.push(Effect::Observe(Observation::Rerouted {
                    conversation: conversation.into(),
                    step: c.routing.step,
                    preference_ended,
                }));
            }
        }
    }

    /// The preferred agent of a new conversation in `queue` from a customer whose last
    /// conversation on the entry point `last` describes (SPEC.md "Preferred agent"): the
    /// last owner, if the feature is on, the conversation ended recently enough, and that
    /// agent serves the queue and meets step 0's requirements.
    fn preference_for(&self, queue: &str, steps: &[Step], last: LastOwner, now: Millis) -> Option<AgentId> {
        if !self.rules.preference_on() || now.saturating_sub(last.ended_at) > self.rules.last_agent_within_ms {
            return None;
        }
        let a = self.agents.get(&last.agent)?;
        let req = routing::requirements_of(steps, (!steps.is_empty()).then_some(0));
        (a.serves(queue) && routing::meets(&a.skills, &req)).then_some(last.agent)
    }

    /// The customer wrote in conversation `id`: the inactivity clock starts again.
    fn customer_active(&mut self, id: &str, now: Millis) {
        let Some(c) = self.conversations.get_mut(id) else {
            return;
        };
        if c.routing.inactive_since.is_none() {
            return;
        }
        c.routing.inactive_since = Some(now);
        mark(&mut self.dirty_conversations, id);
        self.arm_inactivity(id);
    }

    /// Arms the conversation's inactivity deadline (its `inactive_since` plus
    /// `routing.inactivity_close_ms`) if it is active and the close is on.
    /// Arms `agent`'s automatic wrap-up of `conversation` at the time its owed wrap-up
    /// says, if it has one (`wrapup.auto_after_ms`).
    fn arm_wrapup(&mut self, agent: &str, conversation: &str) {
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

    fn arm_inactivity(&mut self, id: &str) {
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
    fn arm_routing_deadline(&mut self, id: &str) {
        if let Some(at) = self.conversations.get(id).and_then(|c| next_routing_deadline(c)) {
            self.deadlines.arm(
                Timer::Route {
                    conversation: id.into(),
                },
                at,
            );
        }
    }

    /// The agents to build a new index group for `req` in `queue` from: the queue's
    /// eligible agents, or none when the group exists already.
    fn group_candidates(&self, queue: &str, req: &Requirements) -> Vec<AgentId> {
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
    fn pin_steps(&mut self, queue: &str, steps: &[Step]) {
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
    fn make_offer(&mut self, conversation: &str, agent: &str, spec: OfferSpec, now: Millis) {
        let offer = Offer {
            id: self.next_offer,
            agent: agent.into(),
            kind: spec.kind,
            offered_at: now,
            expires_at: now.saturating_add(self.timeout(spec.kind)),
            from_agent: spec.from_agent,
        };
        self.next_offer += 1;
        self.counters_dirty = true;
        if spec.kind == OfferKind::New {
            self.dequeue(conversation);
        }
        if let Some(c) = self.conversations.get_mut(conversation) {
            if spec.kind == OfferKind::New {
                c.state = ConversationState::Offered;
            }
            c.offer = Some(offer.clone());
        }
        if let Some(a) = self.agents.get_mut(agent) {
            a.offers.insert(conversation.into());
        }
        mark(&mut self.dirty_agents, agent);
        mark(&mut self.dirty_conversations, conversation);
        self.reindex(agent);
        self.effects.push(Effect::Observe(Observation::Offered {
            conversation: conversation.into(),
            agent: agent.into(),
            kind: offer.kind,
        }));
        self.notify_offer(conversation, &offer);
    }

    fn notify_offer(&mut self, conversation: &str, offer: &Offer) {
        let Some(c) = self.conversations.get_mut(conversation) else {
            return;
        };
        let snapshot = Arc::new(offer_snapshot(c));
        self.effects.push(Effect::Notify {
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
    fn withdraw_offer(&mut self, conversation: &str, reason: WithdrawReason, now: Millis) -> Option<Offer> {
        let offer = self.conversations.get_mut(conversation)?.offer.take()?;
        if let Some(a) = self.agents.get_mut(&offer.agent) {
            a.offers.remove(conversation);
        }
        self.effects.push(Effect::Notify {
            agent: offer.agent.clone(),
            event: AgentEvent::OfferWithdrawn {
                conversation: conversation.into(),
                reason,
            },
        });
        mark(&mut self.dirty_conversations, conversation);
        self.slot_freed(&offer.agent, now);
        Some(offer)
    }

    /// The deadline of `offer` passed: RONA for its agent, then by kind (SPEC.md).
    fn expire_offer(&mut self, conversation: &str, offer_id: u64, now: Millis) {
        let pending = self.conversations.get(conversation).and_then(|c| c.offer.clone());
        let Some(offer) = pending.filter(|o| o.id == offer_id) else {
            return;
        };
        self.withdraw_offer(conversation, WithdrawReason::Expired, now);
        self.change_presence(&offer.agent, Presence::Rona, None, Some("offer_expired"), now);
        // An offer that the preferred agent lets expire ends the preference (SPEC.md).
        if let Some(c) = self.conversations.get_mut(conversation) {
            if c.routing.preferred_agent.as_deref() == Some(offer.agent.as_str()) {
                c.routing.preferred_agent = None;
            }
        }
        self.effects.push(Effect::Observe(Observation::Rona {
            conversation: conversation.into(),
            agent: offer.agent.clone(),
            kind: offer.kind,
        }));
        if let Some(c) = self.conversations.get_mut(conversation) {
            c.rona_agents.insert(offer.agent.clone());
        }
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
                    self.effects.push(Effect::Notify {
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
    fn requeue(&mut self, conversation: &str, now: Millis) {
        if let Some(c) = self.conversations.get_mut(conversation) {
            c.state = ConversationState::Queued;
        }
        self.enqueue(conversation, now);
    }

    /// The agent leaves the conversation and owes a wrap-up (the slot stays held).
    fn leave(&mut self, agent: &str, conversation: &str, now: Millis) {
        let due = (self.rules.auto_wrapup_after_ms > 0).then(|| now.saturating_add(self.rules.auto_wrapup_after_ms));
        let mut already_owed = false;
        if let Some(a) = self.agents.get_mut(agent) {
            a.active.remove(conversation);
            already_owed = a.wrapups.insert(conversation.into(), due).is_some();
            if !already_owed {
                *self.owed.entry(conversation.into()).or_default() += 1;
            }
        }
        mark(&mut self.dirty_agents, agent);
        if already_owed {
            // The agent left this conversation before and was offered it again: it still
            // owes one wrap-up for it (SPEC.md), so the slot of the active part is free.
            self.slot_freed(agent, now);
        }
        self.effects.push(Effect::Notify {
            agent: agent.into(),
            event: AgentEvent::WrapupRequired {
                conversation: conversation.into(),
                reasons: self.rules.wrapup_reasons.clone(),
            },
        });
        self.arm_wrapup(agent, conversation);
    }

    /// The owner leaves (transfer): it owes a wrap-up; the conversation has no owner.
    fn owner_leaves(&mut self, agent: &str, conversation: &str, now: Millis) {
        if let Some(c) = self.conversations.get_mut(conversation) {
            c.owner = None;
        }
        mark(&mut self.dirty_conversations, conversation);
        self.leave(agent, conversation, now);
    }

    /// Ends the conversation for everyone. A pending offer is withdrawn; queued, it leaves
    /// its queue; owner and guest leave and owe wrap-ups.
    fn end_conversation(
        &mut self,
        conversation: &str,
        reason: &str,
        withdraw: WithdrawReason,
        tell_customer: bool,
        now: Millis,
    ) {
        let Some(c) = self.conversations.get(conversation) else {
            return;
        };
        let queued = c.state == ConversationState::Queued;
        let participants: Vec<AgentId> = c.participants().cloned().collect();
        let key = c.entry_point.clone().map(|ep| (ep, c.customer.id.clone()));
        // The customer's next conversation on this entry point may prefer this owner.
        if let (Some((ep, customer)), Some(agent)) = (&key, &c.routing.last_owner) {
            if self.rules.preference_on() {
                self.changes.push(Change::LastOwner {
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
        mark(&mut self.dirty_conversations, conversation);
        for p in participants {
            self.effects.push(Effect::Notify {
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
            self.effects.push(Effect::DeliverEnd {
                conversation: conversation.into(),
                reason: reason.into(),
            });
        }
        self.effects.push(Effect::Observe(Observation::Ended {
            conversation: conversation.into(),
            reason: reason.into(),
        }));
    }

    fn submit_wrapup(&mut self, agent: &str, conversation: &str, reason: String, automatic: bool, now: Millis) {
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
            mark(&mut self.dirty_conversations, conversation);
            // The last wrap-up of an ended conversation finishes it.
            if c.state == ConversationState::Ended {
                self.finishing.push(conversation.into());
            }
        }
        self.effects.push(Effect::Observe(Observation::WrappedUp {
            conversation: conversation.into(),
            agent: agent.into(),
            reason,
        }));
        self.slot_freed(agent, now);
    }

    /// The best eligible agent for a queued conversation (its preferred agent alone while
    /// the preference holds; else by `routing.agent_choice` among those meeting its
    /// current requirements), avoiding agents that let an offer of it expire while
    /// another eligible agent exists.
    fn best_agent(&self, conversation: &Conversation) -> Option<AgentId> {
        self.index
            .best_agent(waiting_view(conversation), &conversation.rona_agents, |id| {
                self.agents.get(id).map(view)
            })
    }

    /// For an eligible agent, the first conversation waiting in its queues that it can
    /// take (by priority, received_at, arrival), and the agent that should get it (the
    /// best eligible agent for it, maybe another one).
    fn next_match_for(&self, agent: &str) -> Option<(ConversationId, AgentId)> {
        let a = self.agents.get(agent).filter(|a| a.eligible())?;
        let conv = self.index.best_conversation_for(view(a))?;
        let target = self.best_agent(self.conversations.get(&conv)?)?;
        Some((conv, target))
    }

    /// The routing step: offers waiting conversations to eligible agents until no match
    /// remains among what the last operation touched.
    fn route(&mut self, now: Millis) {
        loop {
            if let Some(id) = self.touched_conversations.pop() {
                let target = match self.conversations.get(&id) {
                    Some(c) if c.state == ConversationState::Queued => self.best_agent(c),
                    _ => None,
                };
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

/// What the routing index needs of an agent.
fn view(a: &Agent) -> AgentView<'_> {
    AgentView {
        id: &a.id,
        queues: &a.queues,
        skills: &a.skills,
        free_since: a.free_since,
    }
}

/// A conversation's place in its queue's waiting order.
fn queue_key(c: &Conversation) -> QueueKey {
    (Reverse(c.priority), c.received_at, c.arrival)
}

/// What the routing index needs of a waiting conversation.
fn waiting_view(c: &Conversation) -> WaitingView<'_> {
    WaitingView {
        id: &c.id,
        queue: &c.queue,
        key: queue_key(c),
        requirements: &c.routing.requirements,
        preferred: c.routing.preferred_agent.as_deref(),
    }
}

/// Whether routing steps and the preference govern `c` now: while it waits in its queue
/// or is offered from it. A transfer or conference offer names its agent; its step stands
/// still until the conversation is back in a queue.
fn steps_apply(c: &Conversation) -> bool {
    match c.state {
        ConversationState::Queued => true,
        ConversationState::Offered => c.offer.as_ref().is_some_and(|o| o.kind == OfferKind::New),
        _ => false,
    }
}

/// When the conversation's routing next changes by itself: its step ends, or its
/// preference runs out. `None` when neither will happen.
fn next_routing_deadline(c: &Conversation) -> Option<Millis> {
    let r = &c.routing;
    let step_end = r.step.and_then(|k| routing::step_ends_at(&r.steps, c.received_at, k));
    let preference_end = r.preferred_agent.as_ref().map(|_| r.preferred_until);
    match (step_end, preference_end) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
#[path = "floor_routing_tests.rs"]
mod routing_tests;
#[cfg(test)]
#[path = "floor_tests.rs"]
mod tests;
