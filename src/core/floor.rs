//! [`Floor`]: the whole routing state machine.
//!
//! Commands reach the floor through [`Floor::execute`] (`command.rs`). Every operation
//! takes `now` and either returns an error having changed nothing (with one exception: an
//! accept after the deadline carries out the expiry it finds, then answers
//! `offer_expired`; see [`Floor::accept`]), or applies the change and journals [`Effect`]s
//! and [`Change`]s that the caller takes with [`Floor::take_effects`] and
//! [`Floor::take_changes`]. After every operation the routing step runs, so that
//! ../shared/SPEC.md invariant 4 holds whenever the floor is at rest: no conversation
//! waits while an eligible agent for it exists.
//!
//! The fields are private to this module; its parts (`floor/`) hold the rules by concern:
//! `admin` (queues, entry points, agents, presence), `lifecycle` (a conversation from the
//! first message to the last wrap-up), `route` (the routing step and offers), `timers`
//! (what each deadline does), `restore` and `validate`. The journal of what is owed
//! (`journal.rs`) and the deadline table (`deadlines.rs`) are owned parts with their own
//! tests.
//!
//! # Routing
//! Eligible agents and waiting conversations are grouped by queue and requirement set in
//! the [`RoutingIndex`] (`routing.rs`), so the best agent for an arrival and the next
//! conversation for a freed agent are found in O(groups · log n). Reserving the slot and
//! making the offer happen in one step ([`Floor::make_offer`]), so an agent that serves
//! several queues can never be over-offered.

use std::cmp::Reverse;
use std::collections::BTreeSet;
use std::sync::Arc;

use super::agent::{Agent, Presence};
use super::command::Command;
use super::conversation::*;
use super::error::CoreError;
use super::event::*;
use super::journal::{record, Counters, Journal};
use super::queue::{EntryPoint, Queue, QueueKey};
use super::report::{ConversationRecord, History};
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
    /// `reports.enabled`: a complete conversation leaves its report record, figures and
    /// search text, and presence and RONAs add to the agents' figures. Off: none is
    /// written (the reports answer empty), for a deployment that keeps its reports
    /// elsewhere, and to measure what reports cost.
    pub reports: bool,
    /// What recovery does with an offer pending in the records. Off (a restarted node):
    /// made again to the same agent with a fresh deadline (../shared/SPEC.md "Persistence
    /// and recovery"), since the agent's desktop went down with the engine. On (a cluster's
    /// new owner, ../shared/API.md "Cluster"): kept as it was, deadline included, so the
    /// offer expires at its own time (at once if that passed while nobody owned the
    /// tenant); the agent's desktop only reconnected.
    pub offers_keep_deadlines: bool,
}

/// The system message added when a silent customer's conversation is closed.
pub const INACTIVITY_TEXT: &str = "This chat was closed because there was no reply for a while.";

/// The wrap-up reasons and idle codes of a [`Rules`]: the part a tenant may set for
/// itself (`tenant.rs`), changed in a running floor by [`Command::SetCodes`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Codes {
    pub wrapup_reasons: Arc<Vec<Code>>,
    /// One of `wrapup_reasons`: what an automatic wrap-up records.
    pub default_wrapup_reason: String,
    pub idle_codes: Arc<Vec<Code>>,
}

impl Rules {
    /// Preferred agents are on (both keys above 0).
    pub fn preference_on(&self) -> bool {
        self.last_agent_ms > 0 && self.last_agent_within_ms > 0
    }

    /// The wrap-up reasons and idle codes of these rules.
    pub fn codes(&self) -> Codes {
        Codes {
            wrapup_reasons: self.wrapup_reasons.clone(),
            default_wrapup_reason: self.default_wrapup_reason.clone(),
            idle_codes: self.idle_codes.clone(),
        }
    }

    /// These rules with `codes` in place of their wrap-up reasons and idle codes.
    pub fn with_codes(mut self, codes: Codes) -> Rules {
        self.set_codes(codes);
        self
    }

    fn set_codes(&mut self, codes: Codes) {
        self.wrapup_reasons = codes.wrapup_reasons;
        self.default_wrapup_reason = codes.default_wrapup_reason;
        self.idle_codes = codes.idle_codes;
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
            reports: true,
            offers_keep_deadlines: false,
        }
    }
}

/// The routing state machine. See the module docs.
#[derive(Debug, Default)]
pub struct Floor {
    rules: Rules,
    agents: FastMap<AgentId, Agent>,
    queues: FastMap<QueueId, Queue>,
    entry_points: FastMap<EntryPointId, EntryPoint>,
    /// Boxed so that growing the map moves pointers, not whole records: a resize of
    /// 100,000s of inline records stalled the router for tenths of a second.
    conversations: FastMap<ConversationId, Box<Conversation>>,
    /// Open conversation of each (entry point, customer): later messages join it.
    open_by_customer: FastMap<(EntryPointId, String), ConversationId>,
    /// Eligible agents and waiting conversations by queue and requirement set.
    index: RoutingIndex,
    next_conversation: u64,
    next_offer: u64,
    next_arrival: u64,
    /// Routing work left by the last operation.
    touched_agents: Vec<AgentId>,
    touched_conversations: Vec<ConversationId>,
    /// Effects and changes owed since the last take (`journal.rs`).
    journal: Journal,
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
    supervision: super::supervisor::Supervision,
    /// Every armed deadline (`deadlines.rs`): the shell asks [`Floor::next_deadline`] and
    /// calls [`Floor::fire_due`] then.
    deadlines: super::deadlines::Deadlines,
    /// Messenger sender actions (typing, seen) already sent, per conversation
    /// (`messenger.rs`): not durable, bounded.
    sender_actions: super::messenger::SenderActions,
    /// The tenant's limits (`tenant.rs`): set by the shell from the durable registry at
    /// start and on every change ([`Command::SetLimits`]), not durable here.
    limits: super::tenant::TenantLimits,
    /// The tenant's canned responses (`canned.rs`).
    canned: super::canned::CannedResponses,
    /// When the customer of each conversation was last told to be typing (`typing.rs`):
    /// not durable; an entry goes with the typing or the conversation's end.
    customer_typing: FastMap<ConversationId, Millis>,
    /// What each waiting customer was last told of its place in line, and each queue's
    /// recent waits (`place.rs`): not durable.
    place_told: FastMap<ConversationId, super::place::Told>,
    recent_waits: FastMap<QueueId, super::place::RecentWaits>,
    /// Webhook subscriptions and the tenant's event sequence (`webhooks.rs`).
    webhooks: super::webhooks::Subscriptions,
    /// The satisfaction survey pending for each (entry point, customer) (`survey.rs`):
    /// durable, each with its deadline.
    surveys: FastMap<(EntryPointId, String), super::survey::PendingSurvey>,
    /// The time of the last operation or deadline: when the events its take makes happened.
    last_now: Millis,
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

    /// The tenant's limits in force.
    pub fn limits(&self) -> super::tenant::TenantLimits {
        self.limits
    }

    /// Sets the tenant's limits; what the floor holds beyond one stays (a limit refuses
    /// one more, never removes).
    pub(crate) fn set_limits(&mut self, limits: super::tenant::TenantLimits) {
        self.limits = limits;
    }

    /// Sets the tenant's wrap-up reasons and idle codes. What is under way keeps going: an
    /// agent idle with a code no longer listed stays idle, and a wrap-up owed is checked
    /// against the reasons in force when it is recorded (an automatic one records the
    /// default in force then).
    pub(crate) fn set_codes(&mut self, codes: Codes) {
        self.rules.set_codes(codes);
    }

    /// The rules in force.
    pub fn rules(&self) -> &Rules {
        &self.rules
    }

    /// Conversation `id`'s record changed outside the lifecycle (e.g. its customer's name).
    pub(super) fn conversation_changed(&mut self, id: &str) {
        self.journal.conversation_changed(id);
    }

    /// What the operations since the last take owe, for the operations that live in the
    /// core's other modules (Messenger, supervision, accounts).
    pub(super) fn journal(&mut self) -> &mut Journal {
        &mut self.journal
    }

    /// The canned responses (`canned.rs`).
    pub(crate) fn canned(&self) -> &super::canned::CannedResponses {
        &self.canned
    }
    pub(super) fn canned_mut(&mut self) -> &mut super::canned::CannedResponses {
        &mut self.canned
    }

    /// Rebuilds the canned responses from the store (after [`Floor::restore`]).
    pub fn restore_canned(&mut self, list: Vec<super::canned::CannedResponse>) {
        self.canned = super::canned::CannedResponses::restore(list);
    }

    /// The supervisors and the audit log (`supervisor.rs`).
    pub(super) fn supervision(&self) -> &super::supervisor::Supervision {
        &self.supervision
    }
    pub(super) fn supervision_mut(&mut self) -> &mut super::supervisor::Supervision {
        &mut self.supervision
    }

    /// Conversation `id`'s record without its transcript.
    pub fn conversation_record(&mut self, id: &str) -> Option<Conversation> {
        self.conversations.get_mut(id).map(|c| record(c))
    }

    /// Every open conversation's record without its transcript, by id.
    pub fn open_conversation_records(&mut self) -> Vec<Conversation> {
        let mut v: Vec<Conversation> = self
            .conversations
            .values_mut()
            .filter(|c| c.is_open())
            .map(|c| record(c))
            .collect();
        v.sort_by(|a, b| a.id.cmp(&b.id));
        v
    }

    /// An entry point, to change (its page token and channel state, `messenger.rs`); the
    /// caller records the change.
    pub(super) fn entry_point_mut(&mut self, id: &str) -> Option<&mut EntryPoint> {
        self.entry_points.get_mut(id)
    }

    /// The Messenger sender actions already sent (`messenger.rs`).
    pub(super) fn sender_actions(&self) -> &super::messenger::SenderActions {
        &self.sender_actions
    }
    pub(super) fn sender_actions_mut(&mut self) -> &mut super::messenger::SenderActions {
        &mut self.sender_actions
    }

    /// A held conversation, to change outside the lifecycle; the caller marks it with
    /// [`Floor::conversation_changed`] or records the change itself.
    pub(super) fn conversation_mut(&mut self, id: &str) -> Option<&mut Conversation> {
        self.conversations.get_mut(id).map(|c| &mut **c)
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
        self.journal.take_effects()
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
        let counters = Counters {
            next_conversation: self.next_conversation,
            next_offer: self.next_offer,
            next_arrival: self.next_arrival,
        };
        let mut out = self
            .journal
            .take_changes(&self.agents, &mut self.conversations, counters);
        // Events out are made here, from everything the operations decided, so that each
        // is durable in the commit of its cause (no scan without a subscription).
        if self.webhooks.any() {
            let conversations = &self.conversations;
            let (changes, effects) = self.webhooks.events(
                self.journal.pending_effects(),
                &out,
                |id| conversations.get(id).map(|c| &**c),
                self.last_now,
            );
            out.extend(changes);
            self.journal.effects(effects);
        }
        self.evict_finished(&mut out);
        out
    }

    /// The webhook subscriptions (`webhooks.rs`).
    pub fn webhooks(&self) -> &super::webhooks::Subscriptions {
        &self.webhooks
    }

    /// Restores the subscriptions and the event sequence from the store.
    pub fn restore_webhooks(&mut self, webhooks: super::webhooks::Subscriptions) {
        self.webhooks = webhooks;
    }

    /// Notes the time of the operation or deadline under way.
    pub(super) fn saw(&mut self, now: Millis) {
        self.last_now = self.last_now.max(now);
    }

    /// The finished conversations the last [`Floor::take_changes`] removed, with their
    /// transcripts (each is handed out once).
    pub fn take_evicted(&mut self) -> Vec<Box<Conversation>> {
        std::mem::take(&mut self.evicted)
    }

    /// Removes the finished conversations among those the last operations touched. Every
    /// candidate was marked dirty by the step that made it one (end, wrap-up), so its
    /// final record is already in the changes just taken; its report record
    /// ([`ConversationRecord`]) joins them in `out`, so both are durable in one commit.
    fn evict_finished(&mut self, out: &mut Vec<Change>) {
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
                self.survey_outlives(&c);
                if let Some(r) = ConversationRecord::of(&c).filter(|_| self.rules.reports) {
                    // The figures it adds to its queue's and its agents' report rows.
                    let sl = r
                        .queues
                        .first()
                        .and_then(|q| self.queues.get(q))
                        .map_or(super::figures::DEFAULT_SERVICE_LEVEL_MS, Queue::service_level_ms);
                    out.extend(super::figures::queue_delta(&r, sl).map(|d| Change::Figures(Box::new(d))));
                    out.extend(super::figures::agent_deltas(&r).map(|d| Change::Figures(Box::new(d))));
                    let text = super::report::search_text(&c.transcript);
                    if !text.is_empty() {
                        out.push(Change::SearchText {
                            arrived_at: r.arrived_at,
                            conversation: r.id.clone(),
                            text,
                        });
                    }
                    out.push(Change::Record(Box::new(r)));
                }
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

mod admin;
mod hold;
mod lifecycle;
mod notes;
mod overflow;
mod place;
mod restore;
mod route;
mod survey;
mod timers;
mod typing;
mod validate;
mod webhooks;

use validate::{check_id, check_name, check_text};

pub use notes::{handoff_note, MAX_HANDOFF_NOTE_CHARS};
pub use typing::{CUSTOMER_TYPING_REPEAT_MS, CUSTOMER_TYPING_SHOWN_MS};

#[cfg(test)]
#[path = "floor_routing_tests.rs"]
mod routing_tests;
#[cfg(test)]
#[path = "floor_tests.rs"]
mod tests;
