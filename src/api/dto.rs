//! Wire types: the JSON that ../shared/API.md fixes, converted from core types with `From`.
//!
//! Core types keep times as milliseconds since the Unix epoch and have no JSON shape of
//! their own that clients may rely on; every time here is an RFC 3339 string in UTC and
//! every field name is ../shared/API.md's. Request bodies refuse unknown fields, so a typo in a
//! client is a 400, not a silently ignored field.

use chrono::{DateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::core::{
    self, AuthorKind, Channel, Code, ConferenceState, Conversation, ConversationState, Message, Millis, Offer,
    OfferKind, Presence,
};
use crate::engine::{AgentDetail, QueueStats};

/// Milliseconds since the Unix epoch as a UTC time.
pub fn time(ms: Millis) -> DateTime<Utc> {
    // Out-of-range values cannot come from the engine's clock; fall back to the epoch
    // rather than panic.
    Utc.timestamp_millis_opt(ms as i64).single().unwrap_or_default()
}

// ----- enums -----

/// An agent's presence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AgentState {
    LoggedOut,
    Idle,
    Available,
    Rona,
}

impl From<Presence> for AgentState {
    fn from(p: Presence) -> Self {
        match p {
            Presence::LoggedOut => AgentState::LoggedOut,
            Presence::Idle => AgentState::Idle,
            Presence::Available => AgentState::Available,
            Presence::Rona => AgentState::Rona,
        }
    }
}

impl From<AgentState> for Presence {
    fn from(s: AgentState) -> Self {
        match s {
            AgentState::LoggedOut => Presence::LoggedOut,
            AgentState::Idle => Presence::Idle,
            AgentState::Available => Presence::Available,
            AgentState::Rona => Presence::Rona,
        }
    }
}

/// Where the customer writes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ChannelKind {
    Messenger,
    Rest,
}

impl From<Channel> for ChannelKind {
    fn from(c: Channel) -> Self {
        match c {
            Channel::Messenger => ChannelKind::Messenger,
            Channel::Rest => ChannelKind::Rest,
        }
    }
}

/// A conversation's lifecycle state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ConversationStateDto {
    Queued,
    Offered,
    Active,
    Ended,
}

impl From<ConversationState> for ConversationStateDto {
    fn from(s: ConversationState) -> Self {
        match s {
            ConversationState::Queued => ConversationStateDto::Queued,
            ConversationState::Offered => ConversationStateDto::Offered,
            ConversationState::Active => ConversationStateDto::Active,
            ConversationState::Ended => ConversationStateDto::Ended,
        }
    }
}

/// Whether a conversation has a conference guest or a pending conference offer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ConferenceStateDto {
    None,
    ConferenceRequested,
    Conference,
}

impl From<ConferenceState> for ConferenceStateDto {
    fn from(s: ConferenceState) -> Self {
        match s {
            ConferenceState::None => ConferenceStateDto::None,
            ConferenceState::ConferenceRequested => ConferenceStateDto::ConferenceRequested,
            ConferenceState::Conference => ConferenceStateDto::Conference,
        }
    }
}

/// Why an offer was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OfferKindDto {
    New,
    Transfer,
    Conference,
}

impl From<OfferKind> for OfferKindDto {
    fn from(k: OfferKind) -> Self {
        match k {
            OfferKind::New => OfferKindDto::New,
            OfferKind::Transfer => OfferKindDto::Transfer,
            OfferKind::Conference => OfferKindDto::Conference,
        }
    }
}

impl From<OfferKindDto> for OfferKind {
    fn from(k: OfferKindDto) -> Self {
        match k {
            OfferKindDto::New => OfferKind::New,
            OfferKindDto::Transfer => OfferKind::Transfer,
            OfferKindDto::Conference => OfferKind::Conference,
        }
    }
}

/// Who wrote a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AuthorKindDto {
    Customer,
    Agent,
    System,
    /// Someone who wrote from the Facebook Page's own inbox (a Messenger echo).
    Page,
}

impl From<AuthorKind> for AuthorKindDto {
    fn from(k: AuthorKind) -> Self {
        match k {
            AuthorKind::Customer => AuthorKindDto::Customer,
            AuthorKind::Agent => AuthorKindDto::Agent,
            AuthorKind::System => AuthorKindDto::System,
            AuthorKind::Page => AuthorKindDto::Page,
        }
    }
}

// ----- resources -----

/// An agent as lists show it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AgentDto {
    pub id: String,
    pub name: String,
    pub state: AgentState,
    /// Set only while `state` is `idle`.
    pub idle_code: Option<String>,
    /// When the state (or idle code) last changed.
    pub state_since: DateTime<Utc>,
    /// Holds at least one offered or active conversation.
    pub engaged: bool,
    /// Ids of the queues the agent serves.
    pub queues: Vec<String>,
    /// Most conversations held at once (offered, active or owing a wrap-up).
    pub capacity: u32,
    /// Slots in use.
    pub load: u32,
    /// Skill name → level 1-10.
    pub skills: std::collections::BTreeMap<String, u8>,
    /// May take an offer now (available, with a free slot): the engine's own rule for
    /// routing, transfers to this agent and conference invitations, so that a page shows
    /// it rather than working it out.
    pub eligible: bool,
}

impl From<&core::Agent> for AgentDto {
    fn from(a: &core::Agent) -> Self {
        AgentDto {
            id: a.id.clone(),
            name: a.name.clone(),
            state: a.presence.into(),
            idle_code: a.idle_code.clone(),
            state_since: time(a.state_since),
            engaged: a.engaged(),
            queues: a.queues.clone(),
            capacity: a.capacity,
            load: a.load(),
            skills: a.skills.clone(),
            eligible: a.eligible(),
        }
    }
}

/// A new agent with its token, shown only this once.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AgentCreatedDto {
    #[serde(flatten)]
    pub agent: AgentDto,
    /// The agent's bearer token. Only its hash is stored; keep it safe.
    pub token: String,
}

/// An agent with everything it holds: `GET /api/v1/agents/{id}` and the desktop's `hello`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AgentDetailDto {
    #[serde(flatten)]
    pub agent: AgentDto,
    /// Conversations offered to the agent (see each one's `offer`).
    pub offers: Vec<ConversationDto>,
    /// Conversations the agent is in, as owner or guest, with transcripts.
    pub conversations: Vec<ConversationDto>,
    /// Conversations the agent left and owes a wrap-up for.
    pub wrapups: Vec<ConversationDto>,
}

impl From<&AgentDetail> for AgentDetailDto {
    fn from(d: &AgentDetail) -> Self {
        let list = |v: &[Conversation]| v.iter().map(ConversationDto::from).collect();
        AgentDetailDto {
            agent: (&d.agent).into(),
            offers: list(&d.offers),
            conversations: list(&d.conversations),
            wrapups: list(&d.wrapups),
        }
    }
}

/// A queue with its live figures.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct QueueDto {
    pub id: String,
    pub name: String,
    /// Conversations waiting in the queue.
    pub waiting: u64,
    /// How long the oldest waiting conversation has waited.
    pub longest_wait_ms: u64,
    /// Agents serving the queue that are available with a free slot.
    pub agents_available: u64,
    /// Steps for conversations transferred into the queue.
    pub routing_steps: Vec<StepDto>,
    /// Business hours; absent: always open.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hours: Option<HoursDto>,
    /// The satisfaction survey after a served conversation; absent: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub survey: Option<SurveyDto>,
    /// The most conversations that may wait; absent: no bound.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait_limit: Option<WaitLimitDto>,
    /// A conversation accepted within this many ms of its arrival counts as answered
    /// within service level (the queue report); 60000 unless set.
    pub service_level_ms: u64,
    /// Messages to waiting customers about their place in line; absent: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub place_updates: Option<PlaceUpdatesDto>,
    /// Where conversations that waited too long go; absent: they stay.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overflow: Option<OverflowDto>,
}

/// One channel's texts of place-in-line messages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlaceTextsDto {
    /// With an estimate: `{{position}}` and `{{wait_minutes}}`.
    #[schema(max_length = 1000)]
    pub text: String,
    /// Without one (too few recent waits): `{{position}}` only.
    #[schema(max_length = 1000)]
    pub text_without_wait: String,
}

/// Messages to waiting customers with their place in line and an expected wait
/// (docs/API-NOTES.md "The customer's place in line").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlaceUpdatesDto {
    /// By channel: `default` (required), `messenger`, `rest`.
    pub templates: std::collections::BTreeMap<String, PlaceTextsDto>,
    /// A new message once the position moved by this many places (default 1).
    #[serde(default)]
    #[schema(minimum = 1)]
    pub position_step: Option<u32>,
    /// ... or the expected wait by this much (default 60000).
    #[serde(default)]
    pub wait_step_ms: Option<u64>,
    /// And never more often than this per customer (default 30000, at least 5000).
    #[serde(default)]
    #[schema(minimum = 5000)]
    pub min_interval_ms: Option<u64>,
}

impl From<&core::place::PlaceUpdates> for PlaceUpdatesDto {
    fn from(p: &core::place::PlaceUpdates) -> Self {
        PlaceUpdatesDto {
            templates: p
                .templates
                .iter()
                .map(|(k, t)| {
                    (
                        k.clone(),
                        PlaceTextsDto {
                            text: t.text.clone(),
                            text_without_wait: t.text_without_wait.clone(),
                        },
                    )
                })
                .collect(),
            position_step: Some(p.position_step),
            wait_step_ms: Some(p.wait_step_ms),
            min_interval_ms: Some(p.min_interval_ms),
        }
    }
}

impl From<PlaceUpdatesDto> for core::place::PlaceUpdates {
    fn from(p: PlaceUpdatesDto) -> Self {
        core::place::PlaceUpdates {
            templates: p
                .templates
                .into_iter()
                .map(|(k, t)| {
                    (
                        k,
                        core::place::PlaceTexts {
                            text: t.text,
                            text_without_wait: t.text_without_wait,
                        },
                    )
                })
                .collect(),
            position_step: p.position_step.unwrap_or(1),
            wait_step_ms: p.wait_step_ms.unwrap_or(60_000),
            min_interval_ms: p.min_interval_ms.unwrap_or(30_000),
        }
    }
}

/// A queue's bound on waiting conversations (not yet offered): a customer who would open
/// one more while `max_waiting` wait is told `reply`, and the conversation ends with
/// reason `queue_full`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WaitLimitDto {
    #[schema(minimum = 1, maximum = 1000000)]
    pub max_waiting: u32,
    pub reply: String,
}

impl From<&core::queue::WaitLimit> for WaitLimitDto {
    fn from(l: &core::queue::WaitLimit) -> Self {
        WaitLimitDto {
            max_waiting: l.max_waiting,
            reply: l.reply.clone(),
        }
    }
}

/// A queue's overflow: a conversation that has waited `after_ms` in the queue without
/// being offered moves to queue `to_queue` (docs/API-NOTES.md "Overflow").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OverflowDto {
    #[schema(minimum = 100, maximum = 2592000000u64)]
    pub after_ms: u64,
    #[schema(pattern = "^[A-Za-z0-9_.-]{1,64}$")]
    pub to_queue: String,
}

impl From<&core::queue::Overflow> for OverflowDto {
    fn from(o: &core::queue::Overflow) -> Self {
        OverflowDto {
            after_ms: o.after_ms,
            to_queue: o.to_queue.clone(),
        }
    }
}

impl From<OverflowDto> for core::queue::Overflow {
    fn from(o: OverflowDto) -> Self {
        core::queue::Overflow {
            after_ms: o.after_ms,
            to_queue: o.to_queue,
        }
    }
}

impl From<WaitLimitDto> for core::queue::WaitLimit {
    fn from(l: WaitLimitDto) -> Self {
        core::queue::WaitLimit {
            max_waiting: l.max_waiting,
            reply: l.reply,
        }
    }
}

/// A queue's business hours (docs/API-NOTES.md "Business hours"): weekly opening times
/// in `time_zone` (wall clock), dated exceptions, and what a customer who writes while the
/// queue is closed gets: `closed_reply` at once, then a wait in the queue (`wait`: agents
/// who are available may still serve it), a wait for the opening (`hold`: the queue
/// offers nothing while closed) or the end of the conversation (`close`, reason
/// `outside_hours`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HoursDto {
    /// IANA time zone name, e.g. `Europe/Paris`.
    pub time_zone: String,
    #[serde(default)]
    pub weekly: Vec<WeeklyHoursDto>,
    /// Dates with their own opening; on such a date only its exceptions count.
    #[serde(default)]
    pub exceptions: Vec<DatedHoursDto>,
    pub closed_reply: String,
    /// `wait` (default), `hold` or `close`.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub outside_hours: core::hours::OutsideHours,
}

/// Open from `open` to `close` (`HH:MM`; `close` may be `24:00`) on each of `days`
/// (`mon`, `tue`, `wed`, `thu`, `fri`, `sat`, `sun`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WeeklyHoursDto {
    pub days: Vec<String>,
    pub open: String,
    pub close: String,
}

/// A date (`YYYY-MM-DD`) open from `open` to `close`, or closed all day without them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DatedHoursDto {
    pub date: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub close: Option<String>,
}

impl From<&core::hours::Hours> for HoursDto {
    fn from(h: &core::hours::Hours) -> Self {
        HoursDto {
            time_zone: h.time_zone.clone(),
            weekly: h
                .weekly
                .iter()
                .map(|w| WeeklyHoursDto {
                    days: w.days.clone(),
                    open: w.open.clone(),
                    close: w.close.clone(),
                })
                .collect(),
            exceptions: h
                .exceptions
                .iter()
                .map(|e| DatedHoursDto {
                    date: e.date.clone(),
                    open: e.open.clone(),
                    close: e.close.clone(),
                })
                .collect(),
            closed_reply: h.closed_reply.clone(),
            outside_hours: h.outside_hours,
        }
    }
}

impl From<HoursDto> for core::hours::Hours {
    fn from(h: HoursDto) -> Self {
        core::hours::Hours {
            time_zone: h.time_zone,
            weekly: h
                .weekly
                .into_iter()
                .map(|w| core::hours::WeeklyHours {
                    days: w.days,
                    open: w.open,
                    close: w.close,
                })
                .collect(),
            exceptions: h
                .exceptions
                .into_iter()
                .map(|e| core::hours::DatedHours {
                    date: e.date,
                    open: e.open,
                    close: e.close,
                })
                .collect(),
            closed_reply: h.closed_reply,
            outside_hours: h.outside_hours,
        }
    }
}

/// `PATCH /api/v1/queues/{id}`.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchQueue {
    /// The queue's business hours as a whole; null: always open again. In force for the
    /// next customer who writes.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<HoursDto>, nullable)]
    pub hours: Option<Option<HoursDto>>,
    /// The queue's satisfaction survey; null: none (questions asked stay pending).
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<SurveyDto>, nullable)]
    pub survey: Option<Option<SurveyDto>>,
    /// The queue's bound on waiting conversations; null: no bound.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<WaitLimitDto>, nullable)]
    pub wait_limit: Option<Option<WaitLimitDto>>,
    /// The service level threshold in ms (1 to 86400000); null: the default, 60000.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<u64>, nullable, minimum = 1, maximum = 86400000)]
    pub service_level_ms: Option<Option<u64>>,
    /// Messages about the customer's place in line; null: none.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<PlaceUpdatesDto>, nullable)]
    pub place_updates: Option<Option<PlaceUpdatesDto>>,
    /// Where conversations that waited too long go; null: they stay.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<OverflowDto>, nullable)]
    pub overflow: Option<Option<OverflowDto>>,
}

/// One channel's texts of a satisfaction survey.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SurveyTextsDto {
    /// Asked at the end of a served conversation (1 to 1000 characters).
    #[schema(max_length = 1000)]
    pub question: String,
    /// Sent once the customer answered (1 to 1000 characters).
    #[schema(max_length = 1000)]
    pub thanks: String,
}

/// A queue's satisfaction survey (docs/API-NOTES.md "Satisfaction"): the customer of a
/// conversation an agent served to its end is asked for a rating from 1 to 5.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SurveyDto {
    /// By channel: `default` (required), `messenger`, `rest`.
    pub templates: std::collections::BTreeMap<String, SurveyTextsDto>,
    /// How long the question waits for its answer (1000 to 604800000; default 86400000).
    #[serde(default)]
    #[schema(minimum = 1000, maximum = 604800000)]
    pub window_ms: Option<u64>,
}

impl From<&core::survey::Survey> for SurveyDto {
    fn from(s: &core::survey::Survey) -> Self {
        SurveyDto {
            templates: s
                .templates
                .iter()
                .map(|(k, t)| {
                    (
                        k.clone(),
                        SurveyTextsDto {
                            question: t.question.clone(),
                            thanks: t.thanks.clone(),
                        },
                    )
                })
                .collect(),
            window_ms: Some(s.window_ms),
        }
    }
}

impl From<SurveyDto> for core::survey::Survey {
    fn from(s: SurveyDto) -> Self {
        core::survey::Survey {
            templates: s
                .templates
                .into_iter()
                .map(|(k, t)| {
                    (
                        k,
                        core::survey::SurveyTexts {
                            question: t.question,
                            thanks: t.thanks,
                        },
                    )
                })
                .collect(),
            window_ms: s.window_ms.unwrap_or(core::survey::DEFAULT_WINDOW_MS),
        }
    }
}

/// A field of a `PATCH` that is present, its value `null` or not (absent is `None`, by
/// `#[serde(default)]`).
pub(crate) fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// A routing step: its requirements (skill name → lowest level) and how long a
/// conversation stays in it (`for_ms`; the last step has none).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StepDto {
    #[serde(default)]
    pub requirements: std::collections::BTreeMap<String, u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub for_ms: Option<u64>,
}

impl From<&core::Step> for StepDto {
    fn from(s: &core::Step) -> Self {
        StepDto {
            requirements: s.requirements.clone(),
            for_ms: s.for_ms,
        }
    }
}

impl From<StepDto> for core::Step {
    fn from(s: StepDto) -> Self {
        core::Step {
            requirements: s.requirements,
            for_ms: s.for_ms,
        }
    }
}

/// Steps from the wire.
pub fn steps(v: Vec<StepDto>) -> Vec<core::Step> {
    v.into_iter().map(Into::into).collect()
}

/// Steps to the wire.
pub fn steps_dto(v: &[core::Step]) -> Vec<StepDto> {
    v.iter().map(StepDto::from).collect()
}

impl From<&QueueStats> for QueueDto {
    fn from(q: &QueueStats) -> Self {
        QueueDto {
            id: q.id.clone(),
            name: q.name.clone(),
            waiting: q.waiting as u64,
            longest_wait_ms: q.longest_wait_ms,
            agents_available: q.agents_available as u64,
            routing_steps: steps_dto(&q.routing_steps),
            hours: q.hours.as_deref().map(HoursDto::from),
            survey: q.survey.as_deref().map(SurveyDto::from),
            wait_limit: q.wait_limit.as_ref().map(WaitLimitDto::from),
            service_level_ms: q.service_level_ms,
            place_updates: q.place_updates.as_deref().map(PlaceUpdatesDto::from),
            overflow: q.overflow.as_ref().map(OverflowDto::from),
        }
    }
}

/// A customer-facing address that feeds one queue. Its page access token is never shown.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct EntryPointDto {
    pub id: String,
    /// The source page shown to agents.
    pub name: String,
    pub queue: String,
    /// The Facebook Page id, for Messenger entry points.
    pub page_id: Option<String>,
    /// Priority of the conversations it opens (higher first).
    pub priority: i32,
    /// Routing steps of the conversations it opens.
    pub routing_steps: Vec<StepDto>,
    /// Messenger: `ok`, or `unauthorized` once the Graph API refused the page's token
    /// (error 190); its messages wait until a new token is set.
    pub channel_state: String,
    /// Messenger: `off` or `take` (take thread control from another app).
    pub thread_control: String,
    /// Messenger: the app that gets thread control back when a conversation ends.
    pub return_to_app_id: Option<String>,
}

impl From<&core::EntryPoint> for EntryPointDto {
    fn from(e: &core::EntryPoint) -> Self {
        EntryPointDto {
            id: e.id.clone(),
            name: e.name.clone(),
            queue: e.queue.clone(),
            page_id: e.page_id.clone(),
            priority: e.priority,
            routing_steps: steps_dto(&e.routing_steps),
            channel_state: e.messenger.channel_state.as_str().into(),
            thread_control: <&str>::from(e.messenger.thread_control).into(),
            return_to_app_id: e.messenger.return_to_app_id.clone(),
        }
    }
}

/// `PATCH /api/v1/entry-points/{id}`: a new page access token, and/or the thread control
/// settings (given together: `return_to_app_id` left out is null).
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchEntryPoint {
    /// The page's new access token; stored, never shown.
    #[serde(default)]
    pub page_access_token: Option<String>,
    /// Messenger: `off` or `take`.
    #[serde(default)]
    pub thread_control: Option<ThreadControlDto>,
    /// Messenger: the app that gets thread control back when a conversation ends (digits).
    #[serde(default)]
    pub return_to_app_id: Option<String>,
}

/// What the engine does with a Messenger thread another app (a bot) owns.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ThreadControlDto {
    /// Standby events are counted and skipped.
    #[default]
    Off,
    /// A customer message in standby makes the engine take thread control.
    Take,
}

impl From<ThreadControlDto> for core::messenger::ThreadControl {
    fn from(t: ThreadControlDto) -> Self {
        match t {
            ThreadControlDto::Off => core::messenger::ThreadControl::Off,
            ThreadControlDto::Take => core::messenger::ThreadControl::Take,
        }
    }
}

/// A customer: the channel's id for them and their display name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CustomerDto {
    pub id: String,
    pub name: String,
}

impl From<&core::Customer> for CustomerDto {
    fn from(c: &core::Customer) -> Self {
        CustomerDto {
            id: c.id.clone(),
            name: c.name.clone(),
        }
    }
}

/// The pending offer of a conversation.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct OfferDto {
    /// The agent the conversation is offered to.
    pub agent: String,
    pub kind: OfferKindDto,
    pub offered_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    /// The agent that transferred or invited (transfer and conference offers).
    pub from_agent: Option<String>,
    /// The note of the transfer or conference request that led to this offer, if any.
    pub note: Option<String>,
}

impl OfferDto {
    /// Offer `o` of conversation `c` (whose request's note it shows).
    pub fn of(c: &Conversation, o: &Offer) -> Self {
        OfferDto {
            agent: o.agent.clone(),
            kind: o.kind.into(),
            offered_at: time(o.offered_at),
            expires_at: time(o.expires_at),
            from_agent: o.from_agent.clone(),
            note: c.handoff_note.clone(),
        }
    }
}

/// Who wrote a message. `id` is the agent id or the customer's channel id; null for the system.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AuthorDto {
    pub kind: AuthorKindDto,
    pub id: Option<String>,
    pub name: String,
}

/// One transcript entry; `seq` starts at 1 and is the order the engine accepted it in.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct MessageDto {
    pub seq: u64,
    pub author: AuthorDto,
    /// `""` for a message that carries only attachments.
    pub text: String,
    pub at: DateTime<Utc>,
    /// A Messenger customer's attachments (`type` as Messenger names it, and its URL).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<AttachmentDto>,
    /// On agent and system messages to a Messenger customer: `pending`, `sent`,
    /// `delivered`, `read` or `failed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery: Option<DeliveryDto>,
    /// The Send API's error when `delivery` is `failed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery_error: Option<String>,
    /// A customer text longer than the engine's bound, kept cut at the bound.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub truncated: bool,
    /// An internal note: written by an agent for the agents, never sent to the customer
    /// (left out when false).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub internal: bool,
}

/// A Messenger attachment as agents see it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AttachmentDto {
    /// Messenger's type: `image`, `audio`, `video`, `file`, `location`, `sticker`, ...
    #[serde(rename = "type")]
    pub kind: String,
    pub url: Option<String>,
}

/// Where an outbound Messenger message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryDto {
    Pending,
    Sent,
    Delivered,
    Read,
    Failed,
    /// A system text that Meta's policy kept from going out (outside the window).
    NotSent,
}

impl From<crate::core::Delivery> for DeliveryDto {
    fn from(d: crate::core::Delivery) -> Self {
        use crate::core::Delivery;
        match d {
            Delivery::Pending => DeliveryDto::Pending,
            Delivery::Sent => DeliveryDto::Sent,
            Delivery::Delivered => DeliveryDto::Delivered,
            Delivery::Read => DeliveryDto::Read,
            Delivery::Failed => DeliveryDto::Failed,
            Delivery::NotSent => DeliveryDto::NotSent,
        }
    }
}

impl From<&Message> for MessageDto {
    fn from(m: &Message) -> Self {
        MessageDto {
            seq: m.seq,
            author: AuthorDto {
                kind: m.author.kind.into(),
                id: m.author.id.clone(),
                name: m.author.name.clone(),
            },
            text: m.text.clone(),
            at: time(m.at),
            attachments: m
                .attachments
                .iter()
                .map(|a| AttachmentDto {
                    kind: a.kind.clone(),
                    url: a.url.clone(),
                })
                .collect(),
            delivery: m.delivery.map(Into::into),
            delivery_error: m.delivery_error.clone(),
            truncated: m.truncated,
            internal: m.internal,
        }
    }
}

/// One customer's chat.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ConversationDto {
    pub id: String,
    pub channel: ChannelKind,
    pub state: ConversationStateDto,
    pub conference_state: ConferenceStateDto,
    /// Id of the current queue.
    pub queue: String,
    pub queue_name: String,
    pub entry_point: Option<String>,
    /// The entry point's name when the conversation opened.
    pub source_page: String,
    pub customer: CustomerDto,
    /// The owning agent, once accepted.
    pub owner: Option<String>,
    /// The conference guest.
    pub guest: Option<String>,
    /// The pending offer, if any.
    pub offer: Option<OfferDto>,
    /// When the conversation entered its current queue.
    pub received_at: DateTime<Utc>,
    /// Why it ended: `agent_ended`, `customer_ended`, `transfer_not_accepted`, ...
    pub ended_reason: Option<String>,
    pub ended_at: Option<DateTime<Utc>>,
    /// Every message, in order.
    pub transcript: Vec<MessageDto>,
    /// Higher first.
    pub priority: i32,
    /// Index of the current routing step, or null without steps.
    pub routing_step: Option<usize>,
    /// The current step's requirements (`{}` without steps).
    pub requirements: std::collections::BTreeMap<String, u8>,
    /// The agent it waits for alone while a preference holds, else null.
    pub preferred_agent: Option<String>,
}

impl From<&Conversation> for ConversationDto {
    fn from(c: &Conversation) -> Self {
        ConversationDto {
            id: c.id.clone(),
            channel: c.channel.into(),
            state: c.state.into(),
            conference_state: c.conference_state().into(),
            queue: c.queue.clone(),
            queue_name: c.queue_name.clone(),
            entry_point: c.entry_point.clone(),
            source_page: c.source_page.clone(),
            customer: (&c.customer).into(),
            owner: c.owner.clone(),
            guest: c.guest.clone(),
            offer: c.offer.as_ref().map(|o| OfferDto::of(c, o)),
            received_at: time(c.received_at),
            ended_reason: c.ended_reason.clone(),
            ended_at: c.ended_at.map(time),
            transcript: c.transcript.iter().map(MessageDto::from).collect(),
            priority: c.priority,
            routing_step: c.routing.step,
            requirements: c.routing.requirements.clone(),
            preferred_agent: c.routing.preferred_agent.clone(),
        }
    }
}

/// A wrap-up reason or an idle code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CodeDto {
    pub code: String,
    pub label: String,
}

impl From<&Code> for CodeDto {
    fn from(c: &Code) -> Self {
        CodeDto {
            code: c.code.clone(),
            label: c.label.clone(),
        }
    }
}

impl From<CodeDto> for Code {
    fn from(c: CodeDto) -> Self {
        Code {
            code: c.code,
            label: c.label,
        }
    }
}

/// A freshly issued agent token.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TokenDto {
    pub token: String,
}

/// The answer of `/healthz`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct HealthDto {
    /// `ok`.
    pub status: String,
    /// The Messenger outbox: entries waiting and the oldest one's age. A dead Graph API
    /// makes these grow; it does not make the engine unhealthy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub messenger_outbox: Option<OutboxHealthDto>,
}

/// The Messenger outbox's figures in `/healthz`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct OutboxHealthDto {
    pub depth: usize,
    pub oldest_age_ms: u64,
    /// Entry points whose page token the Graph API refused (`channel_state`
    /// `unauthorized`): their messages wait for a new token.
    #[serde(default)]
    pub unauthorized_entry_points: Vec<String>,
}

// ----- request bodies -----

/// `POST /api/v1/queues`.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateQueue {
    #[schema(pattern = "^[A-Za-z0-9_.-]{1,64}$")]
    pub id: String,
    pub name: String,
    /// Steps for conversations transferred into the queue.
    #[serde(default)]
    pub routing_steps: Vec<StepDto>,
    /// Business hours; absent: always open.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hours: Option<HoursDto>,
    /// The satisfaction survey after a served conversation; absent: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub survey: Option<SurveyDto>,
    /// The most conversations that may wait; absent: no bound.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait_limit: Option<WaitLimitDto>,
    /// The service level threshold in ms (1 to 86400000); absent: 60000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 86400000)]
    pub service_level_ms: Option<u64>,
    /// Messages to waiting customers about their place in line; absent: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub place_updates: Option<PlaceUpdatesDto>,
    /// Where conversations that waited too long go (an existing queue); absent: they stay.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overflow: Option<OverflowDto>,
}

/// `POST /api/v1/entry-points`.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateEntryPoint {
    #[schema(pattern = "^[A-Za-z0-9_.-]{1,64}$")]
    pub id: String,
    /// The source page shown to agents.
    pub name: String,
    /// The queue it feeds.
    pub queue: String,
    #[serde(default)]
    pub page_id: Option<String>,
    /// Messenger Send API token; stored, never shown.
    #[serde(default)]
    pub page_access_token: Option<String>,
    /// Priority of the conversations it opens (default 0; higher first).
    #[serde(default)]
    pub priority: i32,
    /// Routing steps of the conversations it opens.
    #[serde(default)]
    pub routing_steps: Vec<StepDto>,
    /// Messenger: `off` (default) or `take` (take thread control from a bot).
    #[serde(default)]
    pub thread_control: ThreadControlDto,
    /// Messenger: the app that gets thread control back when a conversation ends.
    #[serde(default)]
    pub return_to_app_id: Option<String>,
}

/// `POST /api/v1/agents`.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateAgent {
    #[schema(pattern = "^[A-Za-z0-9_.-]{1,64}$")]
    pub id: String,
    pub name: String,
    /// Ids of the queues the agent serves.
    pub queues: Vec<String>,
    /// Default 1.
    #[serde(default)]
    pub capacity: Option<u32>,
    /// A password to sign in at a page with (at least 10 characters); only its Argon2id
    /// hash is kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = Password)]
    pub password: Option<Password>,
    /// Skill name → level 1-10.
    #[serde(default)]
    pub skills: std::collections::BTreeMap<String, u8>,
}

/// `PUT /api/v1/agents/{id}/skills`: replaces the agent's skills.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetSkills {
    pub skills: std::collections::BTreeMap<String, u8>,
}

/// `PUT /api/v1/conversations/{id}/priority`.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetPriority {
    pub priority: i32,
}

/// A password in a request body: never printed (its `Debug` is redacted).
#[derive(Clone, Deserialize, Serialize)]
#[serde(transparent)]
pub struct Password(pub String);

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(..)")
    }
}

/// `POST /api/v1/login`.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Login {
    pub id: String,
    #[schema(value_type = String, format = Password)]
    pub password: Password,
    /// `agent` (the default) or `supervisor`.
    #[serde(default)]
    pub kind: Option<String>,
    /// The account's tenant (default `default`). An unknown tenant is refused as a
    /// wrong id or password is, so the answer does not tell which tenants exist.
    #[serde(default)]
    pub tenant: Option<String>,
}

/// The answer of `GET /api/v1/login`: what a sign-in form needs to ask.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SignInFormDto {
    /// True when the deployment has more than one tenant: the form asks for the tenant
    /// (`tenant` of `POST /api/v1/login`). Says nothing of which tenants exist.
    pub ask_tenant: bool,
}

/// The answer of `POST /api/v1/login`: a session token, shown once.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SessionDto {
    /// Acts like the agent's token until `expires_at` or `POST /api/v1/logout`.
    pub token: String,
    pub expires_at: DateTime<Utc>,
    /// `agent`.
    pub kind: String,
    pub id: String,
    pub name: String,
}

/// `PUT /api/v1/agents/{id}/password` (admin).
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetPassword {
    #[schema(value_type = String, format = Password)]
    pub password: Password,
}

/// `PUT /api/v1/agents/me/password`: the agent changes its own password.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangePassword {
    #[schema(value_type = String, format = Password)]
    pub current: Password,
    #[schema(value_type = String, format = Password)]
    pub new: Password,
}

/// `PUT /api/v1/agents/me/state`. `idle_code` is required for `idle` and refused otherwise;
/// `rona` cannot be set.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetState {
    pub state: AgentState,
    #[serde(default)]
    pub idle_code: Option<String>,
}

/// `POST /api/v1/conversations`: a customer message over REST.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateConversation {
    pub entry_point: String,
    pub customer: CustomerDto,
    pub text: String,
    /// Overrides the entry point's priority for a new conversation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<i32>,
    /// Overrides the entry point's routing steps for a new conversation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub routing_steps: Option<Vec<StepDto>>,
}

/// A message's text.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SendText {
    pub text: String,
}

/// `POST /api/v1/conversations/{id}/typing`.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetTyping {
    /// Typing now (true) or stopped (false).
    pub on: bool,
}

/// `POST /api/v1/conversations/{id}/transfer`: exactly one of `agent` and `queue`.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Transfer {
    #[serde(default)]
    pub agent: Option<String>,
    #[serde(default)]
    pub queue: Option<String>,
    /// For the receiving agent: shown in its offer, and kept in the transcript as an
    /// internal note. At most 1,000 characters (else 400 `note_too_long`); empty is none.
    #[serde(default)]
    #[schema(max_length = 1000)]
    pub note: Option<String>,
}

/// `POST /api/v1/conversations/{id}/conference`.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Invite {
    pub agent: String,
    /// For the invited agent, as a transfer's `note`.
    #[serde(default)]
    #[schema(max_length = 1000)]
    pub note: Option<String>,
}

/// `POST /api/v1/conversations/{id}/wrapup`.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Wrapup {
    /// A code from `GET /api/v1/wrapup-reasons`.
    pub reason: String,
}

// ----- query strings -----

/// Filters of `GET /api/v1/agents`; all optional, combined with "and".
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AgentFilter {
    /// Only agents in this state.
    pub state: Option<AgentState>,
    /// Only agents serving this queue id.
    pub queue: Option<String>,
    /// Case-insensitive substring of the agent's id or name.
    pub q: Option<String>,
    /// Only agents having this skill (at any level).
    pub skill: Option<String>,
    /// Only agents that may (`true`) or may not (`false`) take an offer now (`eligible`).
    pub eligible: Option<bool>,
}

/// Filter of `GET /api/v1/wrapup-reasons`.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CodeFilter {
    /// Case-insensitive substring of the code or the label.
    pub q: Option<String>,
}

/// True when `needle` is empty or a case-insensitive substring of one of `hay`.
pub fn matches(needle: Option<&str>, hay: &[&str]) -> bool {
    match needle {
        None => true,
        Some(n) => {
            let n = n.to_lowercase();
            hay.iter().any(|h| h.to_lowercase().contains(&n))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339_utc() {
        let s = serde_json::to_string(&time(1_700_000_000_123)).unwrap();
        assert_eq!(s, "\"2023-11-14T22:13:20.123Z\"");
    }

    #[test]
    fn search_is_a_case_insensitive_substring() {
        assert!(matches(None, &["x"]));
        assert!(matches(Some("RES"), &["resolved", "Resolved"]));
        assert!(matches(Some("up n"), &["follow_up", "Follow-up needed"]));
        assert!(!matches(Some("zzz"), &["resolved", "Resolved"]));
    }
}
