//! The store's own encoding of records: one version byte, then bincode of a `*V1` type.
//!
//! The `*V1` types mirror the core types field by field and convert with `From`, so the
//! bytes on disk do not change when a core type changes: a new core field fails to
//! compile here, and whoever adds it decides whether the format needs a version 2 (and a
//! reader for version 1 beside it). A record whose version byte this build does not know
//! stops start-up with [`StoreError::UnknownVersion`] naming the record.
//!
//! A newer version of a record is the previous version whole, followed by the new
//! fields, written with its own version byte ([`encode_versioned_into`]); its reader
//! ([`decode_newer`]) hands older bytes to the previous version's reader, so no store is
//! rewritten. Messages have version 2 ([`MessageV2`]: attachments and delivery state);
//! agents version 3 ([`AgentV3`]: skills, after version 2's sign-in); queues, entry
//! points and conversations version 2 (routing steps, priority, routing state).
//!
//! Keys: agents, queues, entry points and conversations are keyed by their id; a
//! transcript message by [`message_key`] (the conversation id with its length in front,
//! then the message's `seq` big-endian), so one conversation's messages are adjacent and
//! in order, and each message is written once, never rewritten.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::StoreError;
use crate::core::figures::{Figures, Histogram, Subject, Sum};
use crate::core::report::Part;
use crate::core::{
    Account, Agent, Attachment, Author, AuthorKind, Channel, Conversation, ConversationState, Customer, Delivery,
    EntryPoint, LastOwner, Message, Millis, Offer, OfferKind, Outbound, Presence, Queue, RoutingState, SignIn, Skills,
    Step, WrapupRecord,
};
use crate::core::{AuditEntry, Changer, ConversationRecord, History, Outcome, RecordAgent, Supervisor};

/// The record format this build writes and reads.
pub const RECORD_VERSION: u8 = 1;

/// The format of transcript messages this build writes ([`MessageV3`]); it reads 1 and 2 too.
pub const MESSAGE_VERSION: u8 = 3;
/// Messages with attachments and delivery state ([`MessageV2`]).
pub const MESSAGE_V2: u8 = 2;

/// Internal notes ([`MessageV4`]).
pub const MESSAGE_V4: u8 = 4;

/// A transcript message, version 4: version 3 whole, then whether it is an internal
/// note. Only notes are written so; every other message is still [`MessageV3`], which
/// builds before notes read.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MessageV4 {
    pub message: MessageV3,
    pub internal: bool,
}

impl From<MessageV4> for Message {
    fn from(m: MessageV4) -> Self {
        let mut message = Message::from(m.message);
        message.internal = m.internal;
        message
    }
}

/// Appends `[MESSAGE_VERSION] ++ bincode(MessageV3)` to `out`, or for an internal note
/// `[MESSAGE_V4] ++ bincode(MessageV4)`.
pub fn encode_message_into(out: &mut Vec<u8>, message: Message) -> Result<(), StoreError> {
    if message.internal {
        return encode_versioned_into(
            out,
            MESSAGE_V4,
            &MessageV4 {
                message: MessageV3::from(message),
                internal: true,
            },
        );
    }
    encode_versioned_into(out, MESSAGE_VERSION, &MessageV3::from(message))
}

/// Decodes a transcript message of any version.
pub fn decode_message(key: &[u8], bytes: &[u8]) -> Result<Message, StoreError> {
    decode_newer::<MessageV4, Message>("messages", key, bytes, MESSAGE_V4, || {
        decode_newer::<MessageV3, Message>("messages", key, bytes, MESSAGE_VERSION, || {
            decode_newer::<MessageV2, Message>("messages", key, bytes, MESSAGE_V2, || {
                decode::<MessageV1>("messages", key, bytes).map(Message::from)
            })
        })
    })
}

/// `[RECORD_VERSION] ++ bincode(value)`.
pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    let mut out = Vec::with_capacity(128);
    out.push(RECORD_VERSION);
    // Writing into a Vec cannot fail, and every record type is plain data that bincode
    // can encode (no maps with non-string keys problems, no untagged enums).
    bincode::serialize_into(&mut out, value).expect("bincode encodes plain records into a Vec");
    out
}

/// Appends `[RECORD_VERSION] ++ bincode(value)` to `out` (the writer reuses one buffer
/// for every record of a group instead of allocating one per record).
pub fn encode_into<T: Serialize>(out: &mut Vec<u8>, value: &T) -> Result<(), StoreError> {
    out.push(RECORD_VERSION);
    bincode::serialize_into(&mut *out, value).map_err(|e| StoreError::Write(format!("cannot encode a record: {e}")))
}

/// Decodes a record of `tree` stored under `key`; errors name the record.
pub fn decode<T: DeserializeOwned>(tree: &str, key: &[u8], bytes: &[u8]) -> Result<T, StoreError> {
    let record = || format!("{tree}/{}", printable(key));
    match bytes.split_first() {
        Some((&RECORD_VERSION, rest)) => bincode::deserialize(rest).map_err(|e| StoreError::Corrupt {
            what: format!("record {} cannot be decoded: {e}", record()),
        }),
        Some((&version, _)) => Err(StoreError::UnknownVersion {
            record: record(),
            version,
        }),
        None => Err(StoreError::Corrupt {
            what: format!("record {} is empty", record()),
        }),
    }
}

/// A key as people read it: ids are ASCII; anything else is shown in hex.
pub fn printable(key: &[u8]) -> String {
    if key.iter().all(|b| b.is_ascii_graphic()) {
        String::from_utf8_lossy(key).into_owned()
    } else {
        format!("0x{}", hex::encode(key))
    }
}

/// The prefix shared by every message of `conversation`: its length, then its bytes.
/// The length byte keeps `c-1`'s messages apart from `c-10`'s.
pub fn message_prefix(conversation: &str) -> Vec<u8> {
    let id = conversation.as_bytes();
    let mut k = Vec::with_capacity(1 + id.len() + 8);
    // Ids are at most 64 bytes (core::valid_id); clamp anyway so the key stays parseable.
    let len = id.len().min(255);
    k.push(len as u8);
    k.extend_from_slice(&id[..len]);
    k
}

/// The key of message `seq` of `conversation`.
pub fn message_key(conversation: &str, seq: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + conversation.len() + 8);
    push_message_key(&mut k, conversation, seq);
    k
}

/// Appends [`message_key`]`(conversation, seq)` to `out`.
pub fn push_message_key(out: &mut Vec<u8>, conversation: &str, seq: u64) {
    let id = conversation.as_bytes();
    // Ids are at most 64 bytes (core::valid_id); clamp anyway so the key stays parseable.
    let len = id.len().min(255);
    out.push(len as u8);
    out.extend_from_slice(&id[..len]);
    out.extend_from_slice(&seq.to_be_bytes());
}

/// Splits a message key into (conversation id, seq).
pub fn parse_message_key(key: &[u8]) -> Option<(&str, u64)> {
    let (&len, rest) = key.split_first()?;
    let len = len as usize;
    if rest.len() != len + 8 {
        return None;
    }
    let id = std::str::from_utf8(&rest[..len]).ok()?;
    let seq = u64::from_be_bytes(rest[len..].try_into().ok()?);
    Some((id, seq))
}

/// The key of an ended conversation in the retention index: `ended_at` big-endian, then
/// the id, so a range scan finds every conversation that ended before a cutoff.
pub fn ended_key(ended_at: Millis, conversation: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(8 + conversation.len());
    push_ended_key(&mut k, ended_at, conversation);
    k
}

/// Appends [`ended_key`]`(ended_at, conversation)` to `out`.
pub fn push_ended_key(out: &mut Vec<u8>, ended_at: Millis, conversation: &str) {
    out.extend_from_slice(&ended_at.to_be_bytes());
    out.extend_from_slice(conversation.as_bytes());
}

/// Splits a retention index key into (ended_at, conversation id).
pub fn parse_ended_key(key: &[u8]) -> Option<(Millis, &str)> {
    if key.len() < 8 {
        return None;
    }
    let at = u64::from_be_bytes(key[..8].try_into().ok()?);
    Some((at, std::str::from_utf8(&key[8..]).ok()?))
}

// ----- version 1 records -----

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub enum PresenceV1 {
    LoggedOut,
    Idle,
    Available,
    Rona,
}

impl From<Presence> for PresenceV1 {
    fn from(p: Presence) -> Self {
        match p {
            Presence::LoggedOut => PresenceV1::LoggedOut,
            Presence::Idle => PresenceV1::Idle,
            Presence::Available => PresenceV1::Available,
            Presence::Rona => PresenceV1::Rona,
        }
    }
}

impl From<PresenceV1> for Presence {
    fn from(p: PresenceV1) -> Self {
        match p {
            PresenceV1::LoggedOut => Presence::LoggedOut,
            PresenceV1::Idle => Presence::Idle,
            PresenceV1::Available => Presence::Available,
            PresenceV1::Rona => Presence::Rona,
        }
    }
}

/// An agent (see [`Agent`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AgentV1 {
    pub id: String,
    pub name: String,
    pub queues: Vec<String>,
    pub capacity: u32,
    pub presence: PresenceV1,
    pub idle_code: Option<String>,
    pub state_since: u64,
    pub free_since: u64,
    pub offers: BTreeSet<String>,
    pub active: BTreeSet<String>,
    pub wrapups: BTreeMap<String, Option<u64>>,
    pub credential: Option<String>,
}

impl From<Agent> for AgentV1 {
    fn from(a: Agent) -> Self {
        AgentV1 {
            id: a.id,
            name: a.name,
            queues: a.queues,
            capacity: a.capacity,
            presence: a.presence.into(),
            idle_code: a.idle_code,
            state_since: a.state_since,
            free_since: a.free_since,
            offers: a.offers,
            active: a.active,
            wrapups: a.wrapups,
            credential: a.account.credential,
        }
    }
}

impl From<AgentV1> for Agent {
    fn from(a: AgentV1) -> Self {
        Agent {
            id: a.id,
            name: a.name,
            queues: a.queues,
            capacity: a.capacity,
            presence: a.presence.into(),
            idle_code: a.idle_code,
            state_since: a.state_since,
            free_since: a.free_since,
            offers: a.offers,
            active: a.active,
            wrapups: a.wrapups,
            account: Account {
                credential: a.credential,
                sign_in: None,
            },
            skills: Skills::new(),
        }
    }
}

// ----- version 2: agents with their sign-in -----

/// The version byte of agent records. Version 2 added [`AgentV2::sign_in`] (password
/// hash and sessions); version-1 agent records are still read ([`decode_agent`]) as
/// agents without a password, and rewritten as version 2 at their next change.
pub const AGENT_RECORD_VERSION: u8 = 2;

/// An agent's password hash and sessions (see [`SignIn`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SignInV2 {
    pub password_hash: Option<String>,
    /// Session credential (hex SHA-256 of the token) → expiry, ms since the epoch.
    pub sessions: BTreeMap<String, u64>,
}

/// An agent (see [`Agent`]): [`AgentV1`] and its sign-in.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AgentV2 {
    pub agent: AgentV1,
    pub sign_in: Option<SignInV2>,
}

impl From<Agent> for AgentV2 {
    fn from(mut a: Agent) -> Self {
        let sign_in = a.account.sign_in.take().map(|s| {
            let s = Arc::unwrap_or_clone(s);
            SignInV2 {
                password_hash: s.password_hash,
                sessions: s.sessions,
            }
        });
        AgentV2 {
            agent: a.into(),
            sign_in,
        }
    }
}

impl From<AgentV2> for Agent {
    fn from(a: AgentV2) -> Self {
        let mut agent: Agent = a.agent.into();
        agent.account.sign_in = a.sign_in.map(|s| {
            Arc::new(SignIn {
                password_hash: s.password_hash,
                sessions: s.sessions,
            })
        });
        agent
    }
}

// ----- routing depth: version 3 of agents, version 2 of queues, entry points and
// conversations. Each wraps the previous version and adds its fields, so every older
// record is still read (as having no skills, steps or preference) and rewritten in the
// new version at its next change. -----

/// The version byte of agent records written by this build.
pub const AGENT_V3: u8 = 3;
/// The version byte of queue, entry point and conversation records with routing fields.
pub const ROUTING_V2: u8 = 2;

/// A routing step (see [`Step`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StepV1 {
    pub requirements: BTreeMap<String, u8>,
    pub for_ms: Option<u64>,
}

fn steps_v1(steps: Vec<Step>) -> Vec<StepV1> {
    steps
        .into_iter()
        .map(|s| StepV1 {
            requirements: s.requirements,
            for_ms: s.for_ms,
        })
        .collect()
}

fn steps_of(steps: Vec<StepV1>) -> Vec<Step> {
    steps
        .into_iter()
        .map(|s| Step {
            requirements: s.requirements,
            for_ms: s.for_ms,
        })
        .collect()
}

/// An agent (see [`Agent`]): [`AgentV2`] and its skills.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AgentV3 {
    pub agent: AgentV2,
    pub skills: BTreeMap<String, u8>,
}

impl From<Agent> for AgentV3 {
    fn from(mut a: Agent) -> Self {
        let skills = std::mem::take(&mut a.skills);
        AgentV3 {
            agent: a.into(),
            skills,
        }
    }
}

impl From<AgentV3> for Agent {
    fn from(a: AgentV3) -> Self {
        let mut agent: Agent = a.agent.into();
        agent.skills = a.skills;
        agent
    }
}

/// A queue (see [`Queue`]): [`QueueV1`] and its routing steps.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct QueueV2 {
    pub queue: QueueV1,
    pub routing_steps: Vec<StepV1>,
}

impl From<Queue> for QueueV2 {
    fn from(mut q: Queue) -> Self {
        let steps = std::mem::take(&mut q.routing_steps);
        QueueV2 {
            queue: q.into(),
            routing_steps: steps_v1(steps),
        }
    }
}

impl From<QueueV2> for Queue {
    fn from(q: QueueV2) -> Self {
        let mut queue: Queue = q.queue.into();
        queue.routing_steps = steps_of(q.routing_steps);
        queue
    }
}

/// An entry point (see [`EntryPoint`]): [`EntryPointV1`], its priority and its steps.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EntryPointV2 {
    pub entry_point: EntryPointV1,
    pub priority: i32,
    pub routing_steps: Vec<StepV1>,
}

impl From<EntryPoint> for EntryPointV2 {
    fn from(mut e: EntryPoint) -> Self {
        let steps = std::mem::take(&mut e.routing_steps);
        let priority = e.priority;
        EntryPointV2 {
            entry_point: e.into(),
            priority,
            routing_steps: steps_v1(steps),
        }
    }
}

impl From<EntryPointV2> for EntryPoint {
    fn from(e: EntryPointV2) -> Self {
        let mut ep: EntryPoint = e.entry_point.into();
        ep.priority = e.priority;
        ep.routing_steps = steps_of(e.routing_steps);
        ep
    }
}

/// Where a conversation is in its routing (see [`RoutingState`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RoutingV1 {
    pub steps: Vec<StepV1>,
    pub step: Option<u32>,
    pub requirements: BTreeMap<String, u8>,
    pub preferred_agent: Option<String>,
    pub preferred_until: u64,
    pub last_owner: Option<String>,
    pub inactive_since: Option<u64>,
}

/// A conversation (see [`Conversation`]): [`ConversationV1`] and its routing state.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConversationV2 {
    pub conversation: ConversationV1,
    pub routing: RoutingV1,
}

impl From<Conversation> for ConversationV2 {
    fn from(mut c: Conversation) -> Self {
        let r = std::mem::take(&mut c.routing);
        ConversationV2 {
            conversation: c.into(),
            routing: RoutingV1 {
                steps: steps_v1(r.steps),
                step: r.step.map(|s| s as u32),
                requirements: r.requirements,
                preferred_agent: r.preferred_agent,
                preferred_until: r.preferred_until,
                last_owner: r.last_owner,
                inactive_since: r.inactive_since,
            },
        }
    }
}

impl From<ConversationV2> for Conversation {
    fn from(c: ConversationV2) -> Self {
        let mut conv: Conversation = c.conversation.into();
        let r = c.routing;
        conv.routing = RoutingState {
            steps: steps_of(r.steps),
            step: r.step.map(|s| s as usize),
            requirements: r.requirements,
            preferred_agent: r.preferred_agent,
            preferred_until: r.preferred_until,
            last_owner: r.last_owner,
            inactive_since: r.inactive_since,
        };
        conv
    }
}

/// The last owner of a customer's conversation on an entry point (see [`LastOwner`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LastOwnerV1 {
    pub agent: String,
    pub ended_at: u64,
}

/// The key of a last-owner record: the entry point id with its length in front, then
/// the customer id.
pub fn last_owner_key(entry_point: &str, customer: &str) -> Vec<u8> {
    customer_name_key(entry_point, customer)
}

/// Appends `[version] ++ bincode(value)` to `out`.
pub fn encode_versioned_into<T: Serialize>(out: &mut Vec<u8>, version: u8, value: &T) -> Result<(), StoreError> {
    out.push(version);
    bincode::serialize_into(&mut *out, value).map_err(|e| StoreError::Write(format!("cannot encode a record: {e}")))
}

/// Decodes a record written as `[version] ++ bincode(New)`, or by an earlier version
/// through `older` (which names the record if it cannot).
pub fn decode_newer<New, T>(
    tree: &str,
    key: &[u8],
    bytes: &[u8],
    version: u8,
    older: impl FnOnce() -> Result<T, StoreError>,
) -> Result<T, StoreError>
where
    New: DeserializeOwned + Into<T>,
{
    match bytes.split_first() {
        Some((&v, rest)) if v == version => {
            bincode::deserialize::<New>(rest)
                .map(Into::into)
                .map_err(|e| StoreError::Corrupt {
                    what: format!("record {tree}/{} cannot be decoded: {e}", printable(key)),
                })
        }
        _ => older(),
    }
}

/// Appends `[AGENT_V3] ++ bincode(agent)` to `out`.
pub fn encode_agent_into(out: &mut Vec<u8>, agent: &AgentV3) -> Result<(), StoreError> {
    encode_versioned_into(out, AGENT_V3, agent)
}

/// Decodes an agent record of any version.
pub fn decode_agent(tree: &str, key: &[u8], bytes: &[u8]) -> Result<Agent, StoreError> {
    decode_newer::<AgentV3, Agent>(tree, key, bytes, AGENT_V3, || {
        decode_newer::<AgentV2, Agent>(tree, key, bytes, AGENT_RECORD_VERSION, || {
            decode::<AgentV1>(tree, key, bytes).map(Agent::from)
        })
    })
}

/// Decodes a queue record of any version.
pub fn decode_queue(key: &[u8], bytes: &[u8]) -> Result<Queue, StoreError> {
    if bytes.first() == Some(&QUEUE_V3) {
        let v3: QueueV3 = bincode::deserialize(&bytes[1..]).map_err(|e| StoreError::Corrupt {
            what: format!("record queues/{} cannot be decoded: {e}", printable(key)),
        })?;
        let settings: QueueSettings = serde_json::from_str(&v3.settings).map_err(|e| StoreError::Corrupt {
            what: format!("record queues/{}: its settings cannot be read: {e}", printable(key)),
        })?;
        let mut queue = Queue::from(v3.queue);
        queue.hours = settings.hours.map(std::sync::Arc::new);
        queue.survey = settings.survey.map(std::sync::Arc::new);
        queue.wait_limit = settings.wait_limit;
        queue.service_level_ms = settings.service_level_ms;
        queue.place_updates = settings.place_updates.map(std::sync::Arc::new);
        queue.overflow = settings.overflow;
        return Ok(queue);
    }
    decode_newer::<QueueV2, Queue>("queues", key, bytes, ROUTING_V2, || {
        decode::<QueueV1>("queues", key, bytes).map(Queue::from)
    })
}

/// Version of a queue record with settings beyond its steps ([`QueueV3`]). A queue
/// without any is still written as [`QueueV2`], which builds before them read.
pub const QUEUE_V3: u8 = 3;

/// A queue with settings: [`QueueV2`] and [`QueueSettings`] as JSON (their API shape, so
/// that a setting added later needs no new record version).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct QueueV3 {
    pub queue: QueueV2,
    pub settings: String,
}

/// The settings of a queue kept in [`QueueV3`]: business hours, the bound on waiting and
/// the service level threshold.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct QueueSettings {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hours: Option<crate::core::hours::Hours>,
    /// The satisfaction survey (issue 26 item 7).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub survey: Option<crate::core::survey::Survey>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait_limit: Option<crate::core::queue::WaitLimit>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_level_ms: Option<u64>,
    /// The customer's place in line (issue 26 item 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub place_updates: Option<crate::core::place::PlaceUpdates>,
    /// Where conversations that waited too long go (issue 26 item 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overflow: Option<crate::core::queue::Overflow>,
}

/// Appends queue `q`'s record to `out`: [`QueueV3`] with settings, else [`QueueV2`].
pub fn encode_queue_into(out: &mut Vec<u8>, mut q: Queue) -> Result<(), StoreError> {
    let settings = QueueSettings {
        hours: q.hours.take().map(|h| (*h).clone()),
        survey: q.survey.take().map(|s| (*s).clone()),
        wait_limit: q.wait_limit.take(),
        service_level_ms: q.service_level_ms.take(),
        place_updates: q.place_updates.take().map(|p| (*p).clone()),
        overflow: q.overflow.take(),
    };
    if settings.hours.is_none()
        && settings.survey.is_none()
        && settings.wait_limit.is_none()
        && settings.service_level_ms.is_none()
        && settings.place_updates.is_none()
        && settings.overflow.is_none()
    {
        return encode_versioned_into(out, ROUTING_V2, &QueueV2::from(q));
    }
    let settings = serde_json::to_string(&settings)
        .map_err(|e| StoreError::Write(format!("cannot encode a queue's settings: {e}")))?;
    encode_versioned_into(
        out,
        QUEUE_V3,
        &QueueV3 {
            queue: QueueV2::from(q),
            settings,
        },
    )
}

/// Decodes an entry point record of any version.
pub fn decode_entry_point(key: &[u8], bytes: &[u8]) -> Result<EntryPoint, StoreError> {
    decode_newer::<EntryPointV3, EntryPoint>("entry_points", key, bytes, ENTRY_POINT_V3, || {
        decode_newer::<EntryPointV2, EntryPoint>("entry_points", key, bytes, ROUTING_V2, || {
            decode::<EntryPointV1>("entry_points", key, bytes).map(EntryPoint::from)
        })
    })
}

/// Entry points with their Messenger settings ([`EntryPointV3`]).
pub const ENTRY_POINT_V3: u8 = 3;

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub enum ThreadControlV1 {
    Off,
    Take,
}

/// An entry point, version 3: version 2 and the page's channel state and thread control.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EntryPointV3 {
    pub entry_point: EntryPointV2,
    pub unauthorized: bool,
    pub thread_control: ThreadControlV1,
    pub return_to_app_id: Option<String>,
}

impl From<EntryPoint> for EntryPointV3 {
    fn from(mut e: EntryPoint) -> Self {
        use crate::core::messenger::{ChannelState, ThreadControl};
        let m = std::mem::take(&mut e.messenger);
        EntryPointV3 {
            entry_point: e.into(),
            unauthorized: m.channel_state == ChannelState::Unauthorized,
            thread_control: match m.thread_control {
                ThreadControl::Off => ThreadControlV1::Off,
                ThreadControl::Take => ThreadControlV1::Take,
            },
            return_to_app_id: m.return_to_app_id,
        }
    }
}

impl From<EntryPointV3> for EntryPoint {
    fn from(e: EntryPointV3) -> Self {
        use crate::core::messenger::{ChannelState, PageSettings, ThreadControl};
        let mut ep: EntryPoint = e.entry_point.into();
        ep.messenger = PageSettings {
            channel_state: if e.unauthorized {
                ChannelState::Unauthorized
            } else {
                ChannelState::Ok
            },
            thread_control: match e.thread_control {
                ThreadControlV1::Off => ThreadControl::Off,
                ThreadControlV1::Take => ThreadControl::Take,
            },
            return_to_app_id: e.return_to_app_id,
        };
        ep
    }
}

/// Decodes a conversation record of any version. One written before histories were kept
/// gets the history its fields allow ([`History::assumed`]).
pub fn decode_conversation(key: &[u8], bytes: &[u8]) -> Result<Conversation, StoreError> {
    decode_newer::<ConversationV4, Conversation>("conversations", key, bytes, CONVERSATION_V4, || {
        decode_newer::<ConversationV3, Conversation>("conversations", key, bytes, CONVERSATION_V3, || {
            let mut c = decode_newer::<ConversationV2, Conversation>("conversations", key, bytes, ROUTING_V2, || {
                decode::<ConversationV1>("conversations", key, bytes).map(Conversation::from)
            })?;
            c.history = History::assumed(&c);
            Ok(c)
        })
    })
}

/// Conversations with the note of a transfer or conference request ([`ConversationV4`]).
pub const CONVERSATION_V4: u8 = 4;

/// A conversation, version 4: version 3 whole, then the note its offers show. Only a
/// conversation with such a note is written so; the rest stay [`ConversationV3`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConversationV4 {
    pub conversation: ConversationV3,
    pub handoff_note: Option<String>,
}

impl From<ConversationV4> for Conversation {
    fn from(c: ConversationV4) -> Self {
        let mut conv = Conversation::from(c.conversation);
        conv.handoff_note = c.handoff_note;
        conv
    }
}

/// Appends conversation `c`'s record to `out`: [`ConversationV4`] with a handoff note,
/// else [`ConversationV3`].
pub fn encode_conversation_into(out: &mut Vec<u8>, mut c: Conversation) -> Result<(), StoreError> {
    match c.handoff_note.take() {
        Some(note) => encode_versioned_into(
            out,
            CONVERSATION_V4,
            &ConversationV4 {
                conversation: ConversationV3::from(c),
                handoff_note: Some(note),
            },
        ),
        None => encode_versioned_into(out, CONVERSATION_V3, &ConversationV3::from(c)),
    }
}

/// Conversations with their history for reports ([`ConversationV3`]).
pub const CONVERSATION_V3: u8 = 3;

/// One agent's part in an open conversation (see [`Part`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PartV1 {
    pub agent: String,
    pub guest: bool,
    pub joined_at: u64,
    pub left_at: Option<u64>,
    pub handle_ms: u64,
    pub since: Option<u64>,
}

/// What a conversation's report record will need (see [`History`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HistoryV1 {
    pub arrived_at: u64,
    pub queues_before: Vec<String>,
    pub first_offered_at: Option<u64>,
    pub accepted_at: Option<u64>,
    pub first_agent_reply_at: Option<u64>,
    pub parts: Vec<PartV1>,
    pub ronas: u32,
    pub transfers: u32,
}

/// A conversation, version 3: version 2 whole, then its history.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConversationV3 {
    pub conversation: ConversationV2,
    pub history: HistoryV1,
}

impl From<Conversation> for ConversationV3 {
    fn from(mut c: Conversation) -> Self {
        let h = std::mem::take(&mut c.history);
        ConversationV3 {
            conversation: c.into(),
            history: HistoryV1 {
                arrived_at: h.arrived_at,
                queues_before: h.queues_before,
                first_offered_at: h.first_offered_at,
                accepted_at: h.accepted_at,
                first_agent_reply_at: h.first_agent_reply_at,
                parts: h
                    .parts
                    .into_iter()
                    .map(|p| PartV1 {
                        agent: p.agent,
                        guest: p.guest,
                        joined_at: p.joined_at,
                        left_at: p.left_at,
                        handle_ms: p.handle_ms,
                        since: p.since,
                    })
                    .collect(),
                ronas: h.ronas,
                transfers: h.transfers,
            },
        }
    }
}

impl From<ConversationV3> for Conversation {
    fn from(c: ConversationV3) -> Self {
        let mut conv: Conversation = c.conversation.into();
        let h = c.history;
        conv.history = History {
            arrived_at: h.arrived_at,
            queues_before: h.queues_before,
            first_offered_at: h.first_offered_at,
            accepted_at: h.accepted_at,
            first_agent_reply_at: h.first_agent_reply_at,
            parts: h
                .parts
                .into_iter()
                .map(|p| Part {
                    agent: p.agent,
                    guest: p.guest,
                    joined_at: p.joined_at,
                    left_at: p.left_at,
                    handle_ms: p.handle_ms,
                    since: p.since,
                })
                .collect(),
            ronas: h.ronas,
            transfers: h.transfers,
        };
        conv
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub enum OutcomeV1 {
    Handled,
    Abandoned,
    Transferred,
    ClosedInactive,
}

/// One agent's part in a complete conversation (see [`RecordAgent`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RecordAgentV1 {
    pub agent: String,
    pub guest: bool,
    pub joined_at: u64,
    pub left_at: u64,
    pub handle_ms: u64,
    pub wrapup_reason: Option<String>,
    pub wrapped_up_at: Option<u64>,
    pub wrapup_automatic: bool,
}

/// The report record of a complete conversation (see [`ConversationRecord`]), keyed by
/// [`record_key`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConversationRecordV1 {
    pub id: String,
    pub channel: ChannelV1,
    pub entry_point: Option<String>,
    pub source_page: String,
    pub customer_id: String,
    pub customer_name: String,
    pub queues: Vec<String>,
    pub agents: Vec<RecordAgentV1>,
    pub arrived_at: u64,
    pub first_offered_at: Option<u64>,
    pub accepted_at: Option<u64>,
    pub first_agent_reply_at: Option<u64>,
    pub ended_at: u64,
    pub wrapped_up_at: Option<u64>,
    pub ended_reason: String,
    pub outcome: OutcomeV1,
    pub wrapup_reason: Option<String>,
    pub rona_count: u32,
    pub transfers: u32,
}

impl From<ConversationRecord> for ConversationRecordV1 {
    fn from(r: ConversationRecord) -> Self {
        ConversationRecordV1 {
            id: r.id,
            channel: r.channel.into(),
            entry_point: r.entry_point,
            source_page: r.source_page,
            customer_id: r.customer.id,
            customer_name: r.customer.name,
            queues: r.queues,
            agents: r
                .agents
                .into_iter()
                .map(|a| RecordAgentV1 {
                    agent: a.agent,
                    guest: a.guest,
                    joined_at: a.joined_at,
                    left_at: a.left_at,
                    handle_ms: a.handle_ms,
                    wrapup_reason: a.wrapup_reason,
                    wrapped_up_at: a.wrapped_up_at,
                    wrapup_automatic: a.wrapup_automatic,
                })
                .collect(),
            arrived_at: r.arrived_at,
            first_offered_at: r.first_offered_at,
            accepted_at: r.accepted_at,
            first_agent_reply_at: r.first_agent_reply_at,
            ended_at: r.ended_at,
            wrapped_up_at: r.wrapped_up_at,
            ended_reason: r.ended_reason,
            outcome: match r.outcome {
                Outcome::Handled => OutcomeV1::Handled,
                Outcome::Abandoned => OutcomeV1::Abandoned,
                Outcome::Transferred => OutcomeV1::Transferred,
                Outcome::ClosedInactive => OutcomeV1::ClosedInactive,
            },
            wrapup_reason: r.wrapup_reason,
            rona_count: r.rona_count,
            transfers: r.transfers,
        }
    }
}

impl From<ConversationRecordV1> for ConversationRecord {
    fn from(r: ConversationRecordV1) -> Self {
        ConversationRecord {
            id: r.id,
            channel: r.channel.into(),
            entry_point: r.entry_point,
            source_page: r.source_page,
            customer: Customer {
                id: r.customer_id,
                name: r.customer_name,
            },
            queues: r.queues,
            agents: r
                .agents
                .into_iter()
                .map(|a| RecordAgent {
                    agent: a.agent,
                    guest: a.guest,
                    joined_at: a.joined_at,
                    left_at: a.left_at,
                    handle_ms: a.handle_ms,
                    wrapup_reason: a.wrapup_reason,
                    wrapped_up_at: a.wrapped_up_at,
                    wrapup_automatic: a.wrapup_automatic,
                })
                .collect(),
            arrived_at: r.arrived_at,
            first_offered_at: r.first_offered_at,
            accepted_at: r.accepted_at,
            first_agent_reply_at: r.first_agent_reply_at,
            ended_at: r.ended_at,
            wrapped_up_at: r.wrapped_up_at,
            ended_reason: r.ended_reason,
            outcome: match r.outcome {
                OutcomeV1::Handled => Outcome::Handled,
                OutcomeV1::Abandoned => Outcome::Abandoned,
                OutcomeV1::Transferred => Outcome::Transferred,
                OutcomeV1::ClosedInactive => Outcome::ClosedInactive,
            },
            wrapup_reason: r.wrapup_reason,
            rona_count: r.rona_count,
            transfers: r.transfers,
            satisfaction: None,
        }
    }
}

/// The key of a report record: when the conversation arrived (big-endian, so records
/// sort by arrival and a time range is a key range), then its id.
/// Appends the key of report record (`arrived_at`, `conversation`) in the index of
/// customer `customer`'s records to `out`: [`customer_prefix_into`], then the record's
/// own key ([`record_key`]), so one customer's records are one key range, by arrival.
pub fn customer_key_into(out: &mut Vec<u8>, customer: &str, arrived_at: u64, conversation: &str) {
    customer_prefix_into(out, customer);
    out.extend_from_slice(&arrived_at.to_be_bytes());
    out.extend_from_slice(conversation.as_bytes());
}

/// Appends the start of every key of customer `customer` in the index of records by
/// customer: the id's length (2 bytes, big-endian; an id is at most 256 characters) and
/// its bytes, so that no customer's keys run into another's, whatever bytes ids hold.
pub fn customer_prefix_into(out: &mut Vec<u8>, customer: &str) {
    let len = u16::try_from(customer.len()).unwrap_or(u16::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&customer.as_bytes()[..usize::from(len)]);
}

/// The record's key within a key of the index by customer (after its prefix).
pub fn record_key_of_customer_key(key: &[u8]) -> Option<&[u8]> {
    let len = usize::from(u16::from_be_bytes([*key.first()?, *key.get(1)?]));
    key.get(2 + len..).filter(|k| k.len() >= 8)
}

pub fn record_key(arrived_at: u64, conversation: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(8 + conversation.len());
    k.extend_from_slice(&arrived_at.to_be_bytes());
    k.extend_from_slice(conversation.as_bytes());
    k
}

/// The version byte of report records written with variable-length integers: the
/// fields of [`ConversationRecordV1`], each integer and length in as few bytes as it
/// needs (bincode's varint encoding). A record is mostly small numbers and short
/// strings, whose lengths took 8 bytes each in version 1: version 2 is about 40 %
/// smaller, and reports cost by the bytes they keep (BENCHMARKS.md "Reports: the
/// roll-up, events out, and what reports cost"). Version 1 records are still read.
pub const CONVERSATION_RECORD_V2: u8 = 2;

/// Encodes `value` as version `version` in bincode's varint encoding (version 2 of report
/// records and figures rows) into `out`.
fn encode_varint_into<T: Serialize>(out: &mut Vec<u8>, version: u8, value: &T) -> Result<(), StoreError> {
    use bincode::Options;
    out.push(version);
    bincode::DefaultOptions::new()
        .serialize_into(&mut *out, value)
        .map_err(|e| StoreError::Write(format!("cannot encode a record: {e}")))
}

/// Decodes a record of `tree` that is either `varint_version` (varint encoding) or one
/// [`decode`] reads (version 1, fixed width).
fn decode_varint_or_v1<T: DeserializeOwned>(
    tree: &str,
    varint_version: u8,
    key: &[u8],
    bytes: &[u8],
) -> Result<T, StoreError> {
    use bincode::Options;
    match bytes.split_first() {
        Some((&v, rest)) if v == varint_version => {
            bincode::DefaultOptions::new()
                .deserialize(rest)
                .map_err(|e| StoreError::Corrupt {
                    what: format!("record {tree}/{} cannot be decoded: {e}", printable(key)),
                })
        }
        _ => decode(tree, key, bytes),
    }
}

/// Encodes a report record (version 2) into `out`.
pub fn encode_record_into(out: &mut Vec<u8>, r: ConversationRecord) -> Result<(), StoreError> {
    encode_varint_into(out, CONVERSATION_RECORD_V2, &ConversationRecordV1::from(r))
}

/// Decodes a report record of either version.
pub fn decode_record(key: &[u8], bytes: &[u8]) -> Result<ConversationRecord, StoreError> {
    decode_varint_or_v1::<ConversationRecordV1>("records", CONVERSATION_RECORD_V2, key, bytes)
        .map(ConversationRecord::from)
}

/// A pending satisfaction survey (see [`crate::core::survey::PendingSurvey`]), keyed like
/// a last owner: (entry point, customer).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PendingSurveyV1 {
    pub conversation: String,
    pub entry_point: String,
    pub customer: String,
    pub channel: ChannelV1,
    pub queue: String,
    pub agent: Option<String>,
    pub arrived_at: u64,
    pub asked_at: u64,
    pub expires_at: u64,
    pub next_seq: u64,
    pub thanks: String,
}

impl From<crate::core::survey::PendingSurvey> for PendingSurveyV1 {
    fn from(p: crate::core::survey::PendingSurvey) -> Self {
        PendingSurveyV1 {
            conversation: p.conversation,
            entry_point: p.entry_point,
            customer: p.customer,
            channel: p.channel.into(),
            queue: p.queue,
            agent: p.agent,
            arrived_at: p.arrived_at,
            asked_at: p.asked_at,
            expires_at: p.expires_at,
            next_seq: p.next_seq,
            thanks: p.thanks,
        }
    }
}

impl From<PendingSurveyV1> for crate::core::survey::PendingSurvey {
    fn from(p: PendingSurveyV1) -> Self {
        crate::core::survey::PendingSurvey {
            conversation: p.conversation,
            entry_point: p.entry_point,
            customer: p.customer,
            channel: p.channel.into(),
            queue: p.queue,
            agent: p.agent,
            arrived_at: p.arrived_at,
            asked_at: p.asked_at,
            expires_at: p.expires_at,
            next_seq: p.next_seq,
            thanks: p.thanks,
        }
    }
}

/// A conversation's rating (see [`crate::core::survey::Satisfaction`]), keyed like its
/// report record ([`record_key`]).
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct SatisfactionV1 {
    pub rating: u8,
    pub at: u64,
}

/// Decodes a pending survey record.
pub fn decode_pending_survey(key: &[u8], bytes: &[u8]) -> Result<crate::core::survey::PendingSurvey, StoreError> {
    decode::<PendingSurveyV1>("surveys", key, bytes).map(Into::into)
}

/// Decodes a rating record.
pub fn decode_satisfaction(key: &[u8], bytes: &[u8]) -> Result<crate::core::survey::Satisfaction, StoreError> {
    decode::<SatisfactionV1>("ratings", key, bytes).map(|s| crate::core::survey::Satisfaction {
        rating: s.rating,
        at: s.at,
    })
}

/// Decodes a last-owner record.
pub fn decode_last_owner(key: &[u8], bytes: &[u8]) -> Result<LastOwner, StoreError> {
    decode::<LastOwnerV1>("last_owners", key, bytes).map(|o| LastOwner {
        agent: o.agent,
        ended_at: o.ended_at,
    })
}

/// A queue; its waiting order is rebuilt from the conversations, so it is not stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct QueueV1 {
    pub id: String,
    pub name: String,
}

impl From<Queue> for QueueV1 {
    fn from(q: Queue) -> Self {
        QueueV1 { id: q.id, name: q.name }
    }
}

impl From<QueueV1> for Queue {
    fn from(q: QueueV1) -> Self {
        Queue::new(q.id, q.name)
    }
}

/// An entry point (see [`EntryPoint`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EntryPointV1 {
    pub id: String,
    pub name: String,
    pub queue: String,
    pub page_id: Option<String>,
    pub page_access_token: Option<String>,
}

impl From<EntryPoint> for EntryPointV1 {
    fn from(e: EntryPoint) -> Self {
        EntryPointV1 {
            id: e.id,
            name: e.name,
            queue: e.queue,
            page_id: e.page_id,
            page_access_token: e.page_access_token,
        }
    }
}

impl From<EntryPointV1> for EntryPoint {
    fn from(e: EntryPointV1) -> Self {
        EntryPoint {
            id: e.id,
            name: e.name,
            queue: e.queue,
            page_id: e.page_id,
            page_access_token: e.page_access_token,
            priority: 0,
            routing_steps: Vec::new(),
            messenger: Default::default(),
        }
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub enum ChannelV1 {
    Messenger,
    Rest,
}

impl From<Channel> for ChannelV1 {
    fn from(c: Channel) -> Self {
        match c {
            Channel::Messenger => ChannelV1::Messenger,
            Channel::Rest => ChannelV1::Rest,
        }
    }
}

impl From<ChannelV1> for Channel {
    fn from(c: ChannelV1) -> Self {
        match c {
            ChannelV1::Messenger => Channel::Messenger,
            ChannelV1::Rest => Channel::Rest,
        }
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub enum ConversationStateV1 {
    Queued,
    Offered,
    Active,
    Ended,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub enum OfferKindV1 {
    New,
    Transfer,
    Conference,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OfferV1 {
    pub id: u64,
    pub agent: String,
    pub kind: OfferKindV1,
    pub offered_at: u64,
    pub expires_at: u64,
    pub from_agent: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WrapupV1 {
    pub agent: String,
    pub reason: String,
    pub at: u64,
    pub automatic: bool,
}

/// A conversation's record, without its transcript (kept message by message).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConversationV1 {
    pub id: String,
    pub channel: ChannelV1,
    pub customer_id: String,
    pub customer_name: String,
    pub entry_point: Option<String>,
    pub source_page: String,
    pub queue: String,
    pub queue_name: String,
    pub priority: i32,
    pub received_at: u64,
    pub arrival: u64,
    pub state: ConversationStateV1,
    pub offer: Option<OfferV1>,
    pub owner: Option<String>,
    pub guest: Option<String>,
    pub rona_agents: BTreeSet<String>,
    pub ended_reason: Option<String>,
    pub ended_at: Option<u64>,
    pub wrapups: Vec<WrapupV1>,
}

impl From<Conversation> for ConversationV1 {
    fn from(c: Conversation) -> Self {
        ConversationV1 {
            id: c.id,
            channel: c.channel.into(),
            customer_id: c.customer.id,
            customer_name: c.customer.name,
            entry_point: c.entry_point,
            source_page: c.source_page,
            queue: c.queue,
            queue_name: c.queue_name,
            priority: c.priority,
            received_at: c.received_at,
            arrival: c.arrival,
            state: match c.state {
                ConversationState::Queued => ConversationStateV1::Queued,
                ConversationState::Offered => ConversationStateV1::Offered,
                ConversationState::Active => ConversationStateV1::Active,
                ConversationState::Ended => ConversationStateV1::Ended,
            },
            offer: c.offer.map(|o| OfferV1 {
                id: o.id,
                agent: o.agent,
                kind: match o.kind {
                    OfferKind::New => OfferKindV1::New,
                    OfferKind::Transfer => OfferKindV1::Transfer,
                    OfferKind::Conference => OfferKindV1::Conference,
                },
                offered_at: o.offered_at,
                expires_at: o.expires_at,
                from_agent: o.from_agent,
            }),
            owner: c.owner,
            guest: c.guest,
            rona_agents: c.rona_agents,
            ended_reason: c.ended_reason,
            ended_at: c.ended_at,
            wrapups: c
                .wrapups
                .into_iter()
                .map(|w| WrapupV1 {
                    agent: w.agent,
                    reason: w.reason,
                    at: w.at,
                    automatic: w.automatic,
                })
                .collect(),
        }
    }
}

impl From<ConversationV1> for Conversation {
    fn from(c: ConversationV1) -> Self {
        Conversation {
            id: c.id,
            channel: c.channel.into(),
            customer: Customer {
                id: c.customer_id,
                name: c.customer_name,
            },
            entry_point: c.entry_point,
            source_page: c.source_page,
            queue: c.queue,
            queue_name: c.queue_name,
            priority: c.priority,
            received_at: c.received_at,
            arrival: c.arrival,
            state: match c.state {
                ConversationStateV1::Queued => ConversationState::Queued,
                ConversationStateV1::Offered => ConversationState::Offered,
                ConversationStateV1::Active => ConversationState::Active,
                ConversationStateV1::Ended => ConversationState::Ended,
            },
            offer: c.offer.map(|o| Offer {
                id: o.id,
                agent: o.agent,
                kind: match o.kind {
                    OfferKindV1::New => OfferKind::New,
                    OfferKindV1::Transfer => OfferKind::Transfer,
                    OfferKindV1::Conference => OfferKind::Conference,
                },
                offered_at: o.offered_at,
                expires_at: o.expires_at,
                from_agent: o.from_agent,
            }),
            owner: c.owner,
            guest: c.guest,
            rona_agents: c.rona_agents,
            ended_reason: c.ended_reason,
            ended_at: c.ended_at,
            wrapups: c
                .wrapups
                .into_iter()
                .map(|w| WrapupRecord {
                    agent: w.agent,
                    reason: w.reason,
                    at: w.at,
                    automatic: w.automatic,
                })
                .collect(),
            transcript: Vec::new(),
            routing: RoutingState::default(),
            history: History::default(),
            handoff_note: None,
        }
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub enum AuthorKindV1 {
    Customer,
    Agent,
    System,
}

/// One transcript message.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MessageV1 {
    pub seq: u64,
    pub author_kind: AuthorKindV1,
    pub author_id: Option<String>,
    pub author_name: String,
    pub text: String,
    pub at: u64,
}

impl From<Message> for MessageV1 {
    fn from(m: Message) -> Self {
        MessageV1 {
            seq: m.seq,
            author_kind: match m.author.kind {
                AuthorKind::Customer => AuthorKindV1::Customer,
                AuthorKind::Agent => AuthorKindV1::Agent,
                // Version 1 has no page author; version 3 writes them.
                AuthorKind::System | AuthorKind::Page => AuthorKindV1::System,
            },
            author_id: m.author.id,
            author_name: m.author.name,
            text: m.text,
            at: m.at,
        }
    }
}

impl From<MessageV1> for Message {
    fn from(m: MessageV1) -> Self {
        Message {
            seq: m.seq,
            author: Author {
                kind: match m.author_kind {
                    AuthorKindV1::Customer => AuthorKind::Customer,
                    AuthorKindV1::Agent => AuthorKind::Agent,
                    AuthorKindV1::System => AuthorKind::System,
                },
                id: m.author_id,
                name: m.author_name,
            },
            text: m.text,
            at: m.at,
            attachments: Vec::new(),
            delivery: None,
            delivery_error: None,
            truncated: false,
            sent_at: None,
            internal: false,
        }
    }
}

// ----- version 2 messages, and the Messenger channel's records (version 1) -----

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub enum DeliveryV2 {
    Pending,
    Sent,
    Delivered,
    Read,
    Failed,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AttachmentV2 {
    pub kind: String,
    pub url: Option<String>,
}

/// A transcript message with attachments and delivery state (version byte 2).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MessageV2 {
    pub seq: u64,
    pub author_kind: AuthorKindV1,
    pub author_id: Option<String>,
    pub author_name: String,
    pub text: String,
    pub at: u64,
    pub attachments: Vec<AttachmentV2>,
    pub delivery: Option<DeliveryV2>,
    pub delivery_error: Option<String>,
}

impl From<Message> for MessageV2 {
    fn from(m: Message) -> Self {
        let v1 = MessageV1 {
            seq: m.seq,
            author_kind: match m.author.kind {
                AuthorKind::Customer => AuthorKindV1::Customer,
                AuthorKind::Agent => AuthorKindV1::Agent,
                AuthorKind::System | AuthorKind::Page => AuthorKindV1::System,
            },
            author_id: m.author.id,
            author_name: m.author.name,
            text: m.text,
            at: m.at,
        };
        MessageV2 {
            seq: v1.seq,
            author_kind: v1.author_kind,
            author_id: v1.author_id,
            author_name: v1.author_name,
            text: v1.text,
            at: v1.at,
            attachments: m
                .attachments
                .into_iter()
                .map(|a| AttachmentV2 {
                    kind: a.kind,
                    url: a.url,
                })
                .collect(),
            delivery: m.delivery.map(|d| match d {
                Delivery::Pending => DeliveryV2::Pending,
                Delivery::Sent => DeliveryV2::Sent,
                Delivery::Delivered => DeliveryV2::Delivered,
                Delivery::Read => DeliveryV2::Read,
                Delivery::Failed | Delivery::NotSent => DeliveryV2::Failed,
            }),
            delivery_error: m.delivery_error,
        }
    }
}

impl From<MessageV2> for Message {
    fn from(m: MessageV2) -> Self {
        let mut out = Message::from(MessageV1 {
            seq: m.seq,
            author_kind: m.author_kind,
            author_id: m.author_id,
            author_name: m.author_name,
            text: m.text,
            at: m.at,
        });
        out.attachments = m
            .attachments
            .into_iter()
            .map(|a| Attachment {
                kind: a.kind,
                url: a.url,
            })
            .collect();
        out.delivery = m.delivery.map(|d| match d {
            DeliveryV2::Pending => Delivery::Pending,
            DeliveryV2::Sent => Delivery::Sent,
            DeliveryV2::Delivered => Delivery::Delivered,
            DeliveryV2::Read => Delivery::Read,
            DeliveryV2::Failed => Delivery::Failed,
        });
        out.delivery_error = m.delivery_error;
        out
    }
}

/// Who wrote a message, version 3: with the Page's own inbox.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub enum AuthorKindV3 {
    Customer,
    Agent,
    System,
    Page,
}

/// Delivery state, version 3: with `not_sent`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub enum DeliveryV3 {
    Pending,
    Sent,
    Delivered,
    Read,
    Failed,
    NotSent,
}

/// A transcript message, version 3: page authors, `not_sent`, and `truncated`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MessageV3 {
    pub seq: u64,
    pub author_kind: AuthorKindV3,
    pub author_id: Option<String>,
    pub author_name: String,
    pub text: String,
    pub at: u64,
    pub attachments: Vec<AttachmentV2>,
    pub delivery: Option<DeliveryV3>,
    pub delivery_error: Option<String>,
    pub truncated: bool,
    pub sent_at: Option<u64>,
}

impl From<Message> for MessageV3 {
    fn from(m: Message) -> Self {
        MessageV3 {
            seq: m.seq,
            author_kind: match m.author.kind {
                AuthorKind::Customer => AuthorKindV3::Customer,
                AuthorKind::Agent => AuthorKindV3::Agent,
                AuthorKind::System => AuthorKindV3::System,
                AuthorKind::Page => AuthorKindV3::Page,
            },
            author_id: m.author.id,
            author_name: m.author.name,
            text: m.text,
            at: m.at,
            attachments: m
                .attachments
                .into_iter()
                .map(|a| AttachmentV2 {
                    kind: a.kind,
                    url: a.url,
                })
                .collect(),
            delivery: m.delivery.map(|d| match d {
                Delivery::Pending => DeliveryV3::Pending,
                Delivery::Sent => DeliveryV3::Sent,
                Delivery::Delivered => DeliveryV3::Delivered,
                Delivery::Read => DeliveryV3::Read,
                Delivery::Failed => DeliveryV3::Failed,
                Delivery::NotSent => DeliveryV3::NotSent,
            }),
            delivery_error: m.delivery_error,
            truncated: m.truncated,
            sent_at: m.sent_at,
        }
    }
}

impl From<MessageV3> for Message {
    fn from(m: MessageV3) -> Self {
        Message {
            seq: m.seq,
            author: Author {
                kind: match m.author_kind {
                    AuthorKindV3::Customer => AuthorKind::Customer,
                    AuthorKindV3::Agent => AuthorKind::Agent,
                    AuthorKindV3::System => AuthorKind::System,
                    AuthorKindV3::Page => AuthorKind::Page,
                },
                id: m.author_id,
                name: m.author_name,
            },
            text: m.text,
            at: m.at,
            attachments: m
                .attachments
                .into_iter()
                .map(|a| Attachment {
                    kind: a.kind,
                    url: a.url,
                })
                .collect(),
            delivery: m.delivery.map(|d| match d {
                DeliveryV3::Pending => Delivery::Pending,
                DeliveryV3::Sent => Delivery::Sent,
                DeliveryV3::Delivered => Delivery::Delivered,
                DeliveryV3::Read => Delivery::Read,
                DeliveryV3::Failed => Delivery::Failed,
                DeliveryV3::NotSent => Delivery::NotSent,
            }),
            delivery_error: m.delivery_error,
            truncated: m.truncated,
            sent_at: m.sent_at,
            internal: false,
        }
    }
}

/// An outbox entry of version 1, which kept a copy of the page's token; read only (the
/// token is dropped: the sender asks for the page's token of the moment).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OutboundV1 {
    pub conversation: String,
    pub seq: u64,
    pub recipient: String,
    pub page_id: String,
    pub page_access_token: String,
    pub parts: Vec<String>,
    pub parts_sent: u32,
    pub human_agent_tag: bool,
    pub queued_at: u64,
}

impl From<OutboundV1> for Outbound {
    fn from(o: OutboundV1) -> Self {
        Outbound {
            conversation: o.conversation,
            seq: o.seq,
            recipient: o.recipient,
            page_id: o.page_id,
            parts: o.parts,
            parts_sent: o.parts_sent,
            human_agent_tag: o.human_agent_tag,
            queued_at: o.queued_at,
            file: None,
            thread: None,
            quick_replies: Vec::new(),
        }
    }
}

/// The format of outbox entries version 2 wrote (no file, no thread call); read only.
pub const OUTBOX_V2: u8 = 2;

/// An outbox entry (see [`Outbound`]), keyed like a message: (conversation, seq). No token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OutboundV2 {
    pub conversation: String,
    pub seq: u64,
    pub recipient: String,
    pub page_id: String,
    pub parts: Vec<String>,
    pub parts_sent: u32,
    pub human_agent_tag: bool,
    pub queued_at: u64,
}

impl From<OutboundV2> for Outbound {
    fn from(o: OutboundV2) -> Self {
        Outbound {
            conversation: o.conversation,
            seq: o.seq,
            recipient: o.recipient,
            page_id: o.page_id,
            parts: o.parts,
            parts_sent: o.parts_sent,
            human_agent_tag: o.human_agent_tag,
            queued_at: o.queued_at,
            file: None,
            thread: None,
            quick_replies: Vec::new(),
        }
    }
}

/// The format of outbox entries this build writes ([`OutboundV3`]); it reads 1 and 2 too.
pub const OUTBOX_V3: u8 = 3;

/// A file an agent sent, in an outbox entry (see [`crate::core::messenger::OutboundFile`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OutboundFileV1 {
    pub id: String,
    pub kind: String,
    pub content_type: String,
    pub name: String,
}

/// A Handover Protocol call in an outbox entry (see [`crate::core::messenger::ThreadCall`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ThreadCallV1 {
    Take { metadata: String },
    Pass { target_app_id: String, metadata: String },
}

/// An outbox entry of version 3: version 2 and a file or a thread control call.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OutboundV3 {
    pub conversation: String,
    pub seq: u64,
    pub recipient: String,
    pub page_id: String,
    pub parts: Vec<String>,
    pub parts_sent: u32,
    pub human_agent_tag: bool,
    pub queued_at: u64,
    pub file: Option<OutboundFileV1>,
    pub thread: Option<ThreadCallV1>,
}

impl From<Outbound> for OutboundV3 {
    fn from(o: Outbound) -> Self {
        use crate::core::messenger::ThreadCall;
        OutboundV3 {
            conversation: o.conversation,
            seq: o.seq,
            recipient: o.recipient,
            page_id: o.page_id,
            parts: o.parts,
            parts_sent: o.parts_sent,
            human_agent_tag: o.human_agent_tag,
            queued_at: o.queued_at,
            file: o.file.map(|f| *f).map(|f| OutboundFileV1 {
                id: f.id,
                kind: f.kind,
                content_type: f.content_type,
                name: f.name,
            }),
            thread: o.thread.map(|t| match *t {
                ThreadCall::Take { metadata } => ThreadCallV1::Take { metadata },
                ThreadCall::Pass {
                    target_app_id,
                    metadata,
                } => ThreadCallV1::Pass {
                    target_app_id,
                    metadata,
                },
            }),
        }
    }
}

impl From<OutboundV3> for Outbound {
    fn from(o: OutboundV3) -> Self {
        use crate::core::messenger::{OutboundFile, ThreadCall};
        Outbound {
            conversation: o.conversation,
            seq: o.seq,
            recipient: o.recipient,
            page_id: o.page_id,
            parts: o.parts,
            parts_sent: o.parts_sent,
            human_agent_tag: o.human_agent_tag,
            queued_at: o.queued_at,
            file: o.file.map(|f| {
                Box::new(OutboundFile {
                    id: f.id,
                    kind: f.kind,
                    content_type: f.content_type,
                    name: f.name,
                })
            }),
            thread: o.thread.map(|t| {
                Box::new(match t {
                    ThreadCallV1::Take { metadata } => ThreadCall::Take { metadata },
                    ThreadCallV1::Pass {
                        target_app_id,
                        metadata,
                    } => ThreadCall::Pass {
                        target_app_id,
                        metadata,
                    },
                })
            }),
            quick_replies: Vec::new(),
        }
    }
}

/// The format of outbox entries with quick replies (a rating question, issue 26 item 7):
/// [`OutboundV3`] and the replies. Written only for such an entry; every other entry is
/// still written as version 3, which builds before it read.
pub const OUTBOX_V4: u8 = 4;

/// A quick reply of an outbox entry (see [`crate::core::messenger::QuickReply`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct QuickReplyV1 {
    pub title: String,
    pub payload: String,
}

/// An outbox entry of version 4: version 3 and its quick replies.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OutboundV4 {
    pub entry: OutboundV3,
    pub quick_replies: Vec<QuickReplyV1>,
}

impl From<OutboundV4> for Outbound {
    fn from(o: OutboundV4) -> Self {
        let mut out = Outbound::from(o.entry);
        out.quick_replies = o
            .quick_replies
            .into_iter()
            .map(|q| crate::core::messenger::QuickReply {
                title: q.title,
                payload: q.payload,
            })
            .collect();
        out
    }
}

/// Appends outbox entry `o`: version 4 with quick replies, else version 3.
pub fn encode_outbound_into(out: &mut Vec<u8>, mut o: Outbound) -> Result<(), StoreError> {
    let quick_replies: Vec<QuickReplyV1> = std::mem::take(&mut o.quick_replies)
        .into_iter()
        .map(|q| QuickReplyV1 {
            title: q.title,
            payload: q.payload,
        })
        .collect();
    if quick_replies.is_empty() {
        return encode_versioned_into(out, OUTBOX_V3, &OutboundV3::from(o));
    }
    encode_versioned_into(
        out,
        OUTBOX_V4,
        &OutboundV4 {
            entry: OutboundV3::from(o),
            quick_replies,
        },
    )
}

/// Decodes an outbox entry of any version.
pub fn decode_outbound(key: &[u8], bytes: &[u8]) -> Result<Outbound, StoreError> {
    decode_newer::<OutboundV4, Outbound>("outbox", key, bytes, OUTBOX_V4, || {
        decode_newer::<OutboundV3, Outbound>("outbox", key, bytes, OUTBOX_V3, || {
            decode_newer::<OutboundV2, Outbound>("outbox", key, bytes, OUTBOX_V2, || {
                decode::<OutboundV1>("outbox", key, bytes).map(Outbound::from)
            })
        })
    })
}

/// When a Messenger message id was taken in.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct MidV1 {
    pub at: u64,
}

/// A customer's name from the User Profile API.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CustomerNameV1 {
    pub name: String,
}

/// The key of a customer's name: the page id with its length in front, then the PSID.
pub fn customer_name_key(page_id: &str, customer: &str) -> Vec<u8> {
    let mut k = message_prefix(page_id);
    k.extend_from_slice(customer.as_bytes());
    k
}

/// A supervisor (see [`crate::core::Supervisor`]), with its sign-in as an agent's.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SupervisorV1 {
    pub id: String,
    pub name: String,
    pub credential: Option<String>,
    pub sign_in: Option<SignInV2>,
}

impl From<Supervisor> for SupervisorV1 {
    fn from(s: Supervisor) -> Self {
        SupervisorV1 {
            id: s.id,
            name: s.name,
            credential: s.account.credential,
            sign_in: s.account.sign_in.map(|x| {
                let x = Arc::unwrap_or_clone(x);
                SignInV2 {
                    password_hash: x.password_hash,
                    sessions: x.sessions,
                }
            }),
        }
    }
}

impl From<SupervisorV1> for Supervisor {
    fn from(s: SupervisorV1) -> Self {
        Supervisor {
            id: s.id,
            name: s.name,
            account: Account {
                credential: s.credential,
                sign_in: s.sign_in.map(|x| {
                    Arc::new(SignIn {
                        password_hash: x.password_hash,
                        sessions: x.sessions,
                    })
                }),
            },
        }
    }
}

/// An audit trail entry (see [`AuditEntry`]); keyed by its `seq`, big-endian.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuditV1 {
    pub seq: u64,
    pub at: u64,
    /// `None`: the admin; else the supervisor's id.
    pub by_supervisor: Option<String>,
    pub agent: String,
    pub from: PresenceV1,
    pub to: PresenceV1,
    pub idle_code: Option<String>,
}

impl From<AuditEntry> for AuditV1 {
    fn from(e: AuditEntry) -> Self {
        AuditV1 {
            seq: e.seq,
            at: e.at,
            by_supervisor: match e.by {
                Changer::Admin => None,
                Changer::Supervisor(s) => Some(s),
            },
            agent: e.agent,
            from: e.from.into(),
            to: e.to.into(),
            idle_code: e.idle_code,
        }
    }
}

impl From<AuditV1> for AuditEntry {
    fn from(e: AuditV1) -> Self {
        AuditEntry {
            seq: e.seq,
            at: e.at,
            by: e.by_supervisor.map_or(Changer::Admin, Changer::Supervisor),
            agent: e.agent,
            from: e.from.into(),
            to: e.to.into(),
            idle_code: e.idle_code,
        }
    }
}

/// The counters that must survive a restart.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct CountersV1 {
    pub next_conversation: u64,
    pub next_offer: u64,
    pub next_arrival: u64,
}

/// The key of a report row of figures (after the kind's prefix): `q` (a queue's) or `a`
/// (an agent's), the id, a zero byte (below every id's bytes, so no id's rows run into
/// another's), then the interval's start big-endian (rows sort by time).
pub fn figures_key_into(key: &mut Vec<u8>, subject: &Subject, interval: Millis) {
    let (kind, id) = match subject {
        Subject::Queue(q) => (b'q', q),
        Subject::Agent(a) => (b'a', a),
    };
    key.push(kind);
    key.extend_from_slice(id.as_bytes());
    key.push(0);
    key.extend_from_slice(&interval.to_be_bytes());
}

/// The interval of a figures row's key (its last 8 bytes).
pub fn figures_interval(key: &[u8]) -> Option<Millis> {
    let at: [u8; 8] = key.get(key.len().checked_sub(8)?..)?.try_into().ok()?;
    Some(Millis::from_be_bytes(at))
}

/// A duration's count, total and maximum, version 1.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct SumV1 {
    pub count: u64,
    pub total_ms: u64,
    pub max_ms: u64,
}

impl From<Sum> for SumV1 {
    fn from(s: Sum) -> Self {
        SumV1 {
            count: s.count,
            total_ms: s.total_ms,
            max_ms: s.max_ms,
        }
    }
}

impl From<SumV1> for Sum {
    fn from(s: SumV1) -> Self {
        Sum {
            count: s.count,
            total_ms: s.total_ms,
            max_ms: s.max_ms,
        }
    }
}

/// A report row of figures (`core/figures.rs`), version 1.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct FiguresV1 {
    pub offered: u64,
    pub answered: u64,
    pub answered_in_sl: u64,
    pub abandoned: u64,
    pub refused: u64,
    pub transferred: u64,
    pub closed_inactive: u64,
    pub wait: SumV1,
    pub wait_histogram: Vec<(u8, u64)>,
    pub abandon_wait: SumV1,
    pub first_response: SumV1,
    pub handle: SumV1,
    pub wrapup: SumV1,
    pub handled: u64,
    pub conferenced: u64,
    pub ronas: u64,
    pub presence_ms: Vec<(String, u64)>,
}

impl From<&Figures> for FiguresV1 {
    fn from(f: &Figures) -> Self {
        FiguresV1 {
            offered: f.offered,
            answered: f.answered,
            answered_in_sl: f.answered_in_sl,
            abandoned: f.abandoned,
            refused: f.refused,
            transferred: f.transferred,
            closed_inactive: f.closed_inactive,
            wait: f.wait.into(),
            wait_histogram: f.wait_histogram.buckets.clone(),
            abandon_wait: f.abandon_wait.into(),
            first_response: f.first_response.into(),
            handle: f.handle.into(),
            wrapup: f.wrapup.into(),
            handled: f.handled,
            conferenced: f.conferenced,
            ronas: f.ronas,
            presence_ms: f.presence_ms.iter().map(|(k, v)| (k.clone(), *v)).collect(),
        }
    }
}

impl From<FiguresV1> for Figures {
    fn from(f: FiguresV1) -> Self {
        Figures {
            offered: f.offered,
            answered: f.answered,
            answered_in_sl: f.answered_in_sl,
            abandoned: f.abandoned,
            refused: f.refused,
            transferred: f.transferred,
            closed_inactive: f.closed_inactive,
            wait: f.wait.into(),
            wait_histogram: Histogram {
                buckets: f.wait_histogram,
            },
            abandon_wait: f.abandon_wait.into(),
            first_response: f.first_response.into(),
            handle: f.handle.into(),
            wrapup: f.wrapup.into(),
            handled: f.handled,
            conferenced: f.conferenced,
            ronas: f.ronas,
            presence_ms: f.presence_ms.into_iter().collect(),
        }
    }
}

/// Decodes a report row of figures.
pub fn decode_figures(key: &[u8], bytes: &[u8]) -> Result<Figures, StoreError> {
    decode_varint_or_v1::<FiguresV1>("figures", FIGURES_V2, key, bytes).map(Figures::from)
}

/// The version byte of figures rows in varint encoding (the fields of [`FiguresV1`]):
/// a row is rewritten at each commit that adds to it, so its size is written to the
/// store's log again and again; mostly small counts, it is about a third of version 1's
/// fixed-width size. Version 1 rows are still read.
pub const FIGURES_V2: u8 = 2;

/// Encodes a figures row (version 2) into `out`.
pub fn encode_figures_into(out: &mut Vec<u8>, f: &Figures) -> Result<(), StoreError> {
    encode_varint_into(out, FIGURES_V2, &FiguresV1::from(f))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A figures row reads back whole in version 2 (varint) and in version 1, and
    /// version 2 is the smaller.
    #[test]
    fn figures_rows_of_both_versions_are_read() {
        let mut f = Figures {
            offered: 3,
            answered: 2,
            answered_in_sl: 1,
            abandoned: 1,
            handled: 2,
            ..Default::default()
        };
        f.wait = crate::core::figures::Sum::of(4_000);
        f.wait_histogram.record(4_000);
        f.handle = crate::core::figures::Sum::of(95_000);
        f.presence_ms.insert("available".into(), 900_000);
        let key = b"qq1\0\0\0\0\0\0\0\0\0";
        let mut v1 = Vec::new();
        encode_into(&mut v1, &FiguresV1::from(&f)).expect("encoded");
        let mut v2 = Vec::new();
        encode_figures_into(&mut v2, &f).expect("encoded");
        assert_eq!(decode_figures(key, &v1).expect("version 1"), f);
        assert_eq!(decode_figures(key, &v2).expect("version 2"), f);
        assert!(v2.len() * 2 < v1.len(), "{} against {}", v2.len(), v1.len());
    }

    /// An outbox entry with a file or a thread call reads back whole (version 3), and an
    /// entry version 2 wrote still reads, without either.
    #[test]
    fn outbox_entries_of_every_version_read_back() {
        use crate::core::messenger::{OutboundFile, ThreadCall};
        let entry = |file: Option<OutboundFile>, thread: Option<ThreadCall>| Outbound {
            conversation: "c-1".into(),
            seq: 3,
            recipient: "123".into(),
            page_id: "99".into(),
            parts: vec!["hi".into()],
            parts_sent: 1,
            human_agent_tag: true,
            queued_at: 7,
            file: file.map(Box::new),
            thread: thread.map(Box::new),
            quick_replies: Vec::new(),
        };
        let file = OutboundFile {
            id: "0123456789abcdef0123456789abcdef".into(),
            kind: "image".into(),
            content_type: "image/png".into(),
            name: "a.png".into(),
        };
        let pass = ThreadCall::Pass {
            target_app_id: "263902037430900".into(),
            metadata: "ended".into(),
        };
        for o in [entry(Some(file), None), entry(None, Some(pass)), entry(None, None)] {
            let mut bytes = Vec::new();
            encode_outbound_into(&mut bytes, o.clone()).unwrap();
            assert_eq!(bytes[0], OUTBOX_V3, "no quick replies: still version 3");
            assert_eq!(decode_outbound(b"k", &bytes).unwrap(), o);
        }
        let mut rated = entry(None, None);
        rated.quick_replies = crate::core::survey::rating_replies();
        let mut bytes = Vec::new();
        encode_outbound_into(&mut bytes, rated.clone()).unwrap();
        assert_eq!(bytes[0], OUTBOX_V4);
        assert_eq!(decode_outbound(b"k", &bytes).unwrap(), rated);
        let v2 = OutboundV2 {
            conversation: "c-1".into(),
            seq: 3,
            recipient: "123".into(),
            page_id: "99".into(),
            parts: vec!["hi".into()],
            parts_sent: 1,
            human_agent_tag: true,
            queued_at: 7,
        };
        let mut bytes = Vec::new();
        encode_versioned_into(&mut bytes, OUTBOX_V2, &v2).unwrap();
        assert_eq!(decode_outbound(b"k", &bytes).unwrap(), entry(None, None));
    }

    #[test]
    fn message_keys_sort_by_conversation_then_seq() {
        let mut keys = [
            message_key("c-10", 1),
            message_key("c-1", 2),
            message_key("c-1", 10),
            message_key("c-1", 1),
        ];
        keys.sort();
        let parsed: Vec<_> = keys.iter().map(|k| parse_message_key(k).unwrap()).collect();
        assert_eq!(parsed, [("c-1", 1), ("c-1", 2), ("c-1", 10), ("c-10", 1)]);
        assert!(!message_key("c-10", 1).starts_with(&message_prefix("c-1")));
    }

    #[test]
    fn ended_keys_sort_by_time() {
        let a = ended_key(5, "c-9");
        let b = ended_key(300, "c-1");
        assert!(a < b);
        assert_eq!(parse_ended_key(&b), Some((300, "c-1")));
    }

    #[test]
    fn unknown_version_names_the_record() {
        let mut bytes = encode(&QueueV1 {
            id: "q1".into(),
            name: "Q".into(),
        });
        bytes[0] = 9;
        let err = decode::<QueueV1>("queues", b"q1", &bytes).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("queues/q1") && text.contains('9'), "{text}");
    }

    #[test]
    fn encode_into_matches_encode() {
        let q = QueueV1 {
            id: "q1".into(),
            name: "Q".into(),
        };
        let mut buf = vec![7];
        encode_into(&mut buf, &q).unwrap();
        assert_eq!(buf[1..], encode(&q)[..]);
        let mut k = Vec::new();
        push_message_key(&mut k, "c-1", 3);
        assert_eq!(k, message_key("c-1", 3));
        k.clear();
        push_ended_key(&mut k, 9, "c-1");
        assert_eq!(k, ended_key(9, "c-1"));
    }

    #[test]
    fn messages_of_every_version_are_read() {
        let author = Author {
            kind: AuthorKind::Agent,
            id: Some("a1".into()),
            name: "Ann".into(),
        };
        let old = Message::text(3, author.clone(), "hi", 9);
        let v1 = encode(&MessageV1::from(old.clone()));
        assert_eq!(decode_message(b"k", &v1).unwrap(), old);
        let mut new = Message::text(4, author, "", 10);
        new.attachments.push(Attachment {
            kind: "image".into(),
            url: Some("https://x/y.png".into()),
        });
        new.delivery = Some(Delivery::Failed);
        new.delivery_error = Some("nope".into());
        let mut v2 = Vec::new();
        encode_message_into(&mut v2, new.clone()).unwrap();
        assert_eq!(v2[0], MESSAGE_VERSION);
        assert_eq!(decode_message(b"k", &v2).unwrap(), new);
        let mut older = Vec::new();
        encode_versioned_into(&mut older, MESSAGE_V2, &MessageV2::from(new.clone())).unwrap();
        assert_eq!(decode_message(b"k", &older).unwrap(), new);
        let mut page = new.clone();
        page.author.kind = AuthorKind::Page;
        page.delivery = Some(Delivery::NotSent);
        page.truncated = true;
        page.sent_at = Some(12);
        let mut v3 = Vec::new();
        encode_message_into(&mut v3, page.clone()).unwrap();
        assert_eq!(decode_message(b"k", &v3).unwrap(), page);
        let mut bad = v2.clone();
        bad[0] = 7;
        assert!(matches!(
            decode_message(b"k", &bad),
            Err(StoreError::UnknownVersion { .. })
        ));
    }

    #[test]
    fn round_trip() {
        let q = QueueV1 {
            id: "q1".into(),
            name: "Q".into(),
        };
        let back: QueueV1 = decode("queues", b"q1", &encode(&q)).unwrap();
        assert_eq!(back.name, "Q");
    }

    /// An agent written before passwords existed (version 1) reads as an agent without a
    /// sign-in; agents are written as version 2 with theirs, and read back whole.
    #[test]
    fn agent_records_of_both_versions_are_read() {
        let mut a = Agent::new("a1".into(), "Ann".into(), vec!["q1".into()], 2, 5);
        a.account.credential = Some("c0ffee".into());
        let v1 = encode(&AgentV1::from(a.clone()));
        assert_eq!(v1[0], 1);
        assert_eq!(decode_agent("agents", b"a1", &v1).unwrap(), a);

        let mut sign_in = SignIn {
            password_hash: Some("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into()),
            ..Default::default()
        };
        sign_in.start("5e55".into(), 99, 0);
        a.account.sign_in = Some(Arc::new(sign_in));
        let mut v2 = Vec::new();
        encode_versioned_into(&mut v2, AGENT_RECORD_VERSION, &AgentV2::from(a.clone())).unwrap();
        assert_eq!(v2[0], AGENT_RECORD_VERSION);
        assert_eq!(decode_agent("agents", b"a1", &v2).unwrap(), a);

        // Version 3 adds skills.
        a.skills.insert("lang.fr".into(), 7);
        let mut v3 = Vec::new();
        encode_agent_into(&mut v3, &AgentV3::from(a.clone())).unwrap();
        assert_eq!(v3[0], AGENT_V3);
        assert_eq!(decode_agent("agents", b"a1", &v3).unwrap(), a);

        v3[0] = 9;
        let err = decode_agent("agents", b"a1", &v3).unwrap_err().to_string();
        assert!(err.contains("agents/a1") && err.contains('9'), "{err}");
    }

    /// Queues, entry points and conversations written before routing depth (version 1)
    /// read as having no steps, priority 0 and no preference; version 2 keeps them.
    #[test]
    fn routing_records_of_both_versions_are_read() {
        let step = Step {
            requirements: [("lang.fr".to_string(), 5u8)].into(),
            for_ms: None,
        };
        let mut q = Queue::new("q1".into(), "Q".into());
        assert_eq!(decode_queue(b"q1", &encode(&QueueV1::from(q.clone()))).unwrap(), q);
        q.routing_steps = vec![step.clone()];
        let mut v = Vec::new();
        encode_versioned_into(&mut v, ROUTING_V2, &QueueV2::from(q.clone())).unwrap();
        assert_eq!(decode_queue(b"q1", &v).unwrap(), q);
        // Without hours a queue is still written as version 2; with them, as version 3.
        let mut v = Vec::new();
        encode_queue_into(&mut v, q.clone()).unwrap();
        assert_eq!(v[0], ROUTING_V2);
        q.hours = Some(std::sync::Arc::new(crate::core::hours::Hours {
            time_zone: "Europe/Paris".into(),
            weekly: vec![crate::core::hours::WeeklyHours {
                days: vec!["mon".into()],
                open: "09:00".into(),
                close: "17:00".into(),
            }],
            exceptions: Vec::new(),
            closed_reply: "Closed".into(),
            outside_hours: crate::core::hours::OutsideHours::Close,
        }));
        let mut v = Vec::new();
        encode_queue_into(&mut v, q.clone()).unwrap();
        assert_eq!(v[0], QUEUE_V3);
        assert_eq!(decode_queue(b"q1", &v).unwrap(), q);
        q.hours = None;
        q.wait_limit = Some(crate::core::queue::WaitLimit {
            max_waiting: 3,
            reply: "Full".into(),
        });
        let mut v = Vec::new();
        encode_queue_into(&mut v, q.clone()).unwrap();
        assert_eq!(v[0], QUEUE_V3);
        assert_eq!(decode_queue(b"q1", &v).unwrap(), q);

        let mut e = EntryPoint {
            id: "e1".into(),
            name: "Page".into(),
            queue: "q1".into(),
            ..Default::default()
        };
        assert_eq!(
            decode_entry_point(b"e1", &encode(&EntryPointV1::from(e.clone()))).unwrap(),
            e
        );
        e.priority = 3;
        e.routing_steps = vec![step.clone()];
        let mut v = Vec::new();
        encode_versioned_into(&mut v, ROUTING_V2, &EntryPointV2::from(e.clone())).unwrap();
        assert_eq!(decode_entry_point(b"e1", &v).unwrap(), e);
        v[0] = 7;
        assert!(decode_entry_point(b"e1", &v).is_err());
    }

    /// An open conversation with a history worth keeping: arrived, offered, accepted,
    /// answered, transferred to a queue.
    pub(super) fn conversation_with_history() -> Conversation {
        use crate::core::{Account, Floor, Rules};
        let queues = vec![
            Queue::new("q1".into(), "One".into()),
            Queue::new("q2".into(), "Two".into()),
        ];
        let mut f = Floor::restore(
            Rules::default(),
            queues,
            Vec::new(),
            Vec::new(),
            Vec::new(),
            (1, 1, 1),
            0,
        );
        let ep = EntryPoint {
            id: "e1".into(),
            name: "Page".into(),
            queue: "q1".into(),
            ..Default::default()
        };
        f.create_entry_point(ep).unwrap();
        f.create_agent("a1", "A", vec!["q1".into()], 1, Account::default(), Skills::new(), 0)
            .unwrap();
        f.set_state("a1", Presence::Available, None, 10).unwrap();
        let customer = Customer {
            id: "u".into(),
            name: "U".into(),
        };
        f.customer_message("e1", customer, "hi", Channel::Rest, 20).unwrap();
        f.accept("a1", "c-1", 30).unwrap();
        f.agent_message("a1", "c-1", "hello", 40).unwrap();
        f.transfer_to_queue("a1", "c-1", "q2", None, 50).unwrap();
        let mut c = f.conversation("c-1").unwrap().clone();
        c.transcript.clear();
        c
    }

    /// Conversations of version 3 keep their history; those of version 2 (a store written
    /// before records) read with the history their fields allow.
    #[test]
    fn conversation_histories_are_kept_and_older_records_get_one() {
        let c = conversation_with_history();
        assert_eq!(c.history.queues_before, ["q1"]);
        let mut v = Vec::new();
        encode_versioned_into(&mut v, CONVERSATION_V3, &ConversationV3::from(c.clone())).unwrap();
        assert_eq!(decode_conversation(b"c-1", &v).unwrap(), c);

        let mut v2 = Vec::new();
        encode_versioned_into(&mut v2, ROUTING_V2, &ConversationV2::from(c.clone())).unwrap();
        let old = decode_conversation(b"c-1", &v2).unwrap();
        assert_eq!(old.history, History::assumed(&c));
        assert_eq!(old.history.arrived_at, 50, "when it entered its current queue");
        assert!(old.history.queues_before.is_empty());
        let mut without = old.clone();
        without.history = c.history.clone();
        assert_eq!(without, c, "everything else as it was");
    }

    #[test]
    fn report_records_read_back_as_written() {
        let mut c = conversation_with_history();
        c.ended_at = Some(60);
        c.ended_reason = Some("customer_ended".into());
        c.wrapups.push(WrapupRecord {
            agent: "a1".into(),
            reason: "resolved".into(),
            at: 70,
            automatic: true,
        });
        let r = ConversationRecord::of(&c).unwrap();
        assert_eq!(r.outcome, Outcome::Transferred);
        let key = record_key(r.arrived_at, &r.id);
        assert_eq!(&key[..8], &20u64.to_be_bytes());
        // Version 1 (fixed-width), as stores written before version 2 hold it.
        let mut v1 = Vec::new();
        encode_into(&mut v1, &ConversationRecordV1::from(r.clone())).unwrap();
        assert_eq!(decode_record(&key, &v1).unwrap(), r);
        let mut v = Vec::new();
        encode_record_into(&mut v, r.clone()).unwrap();
        assert_eq!(v[0], CONVERSATION_RECORD_V2);
        assert_eq!(decode_record(&key, &v).unwrap(), r);
        assert!(
            v.len() * 10 < v1.len() * 7,
            "version 2 is smaller: {} against {}",
            v.len(),
            v1.len()
        );
        v[0] = 9;
        assert!(matches!(
            decode_record(&key, &v),
            Err(StoreError::UnknownVersion { version: 9, .. })
        ));
    }
}

/// A canned response (see [`crate::core::canned::CannedResponse`]), version 1.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CannedResponseV1 {
    pub id: String,
    pub code: String,
    pub text: String,
    pub queue: Option<String>,
}

impl From<crate::core::canned::CannedResponse> for CannedResponseV1 {
    fn from(c: crate::core::canned::CannedResponse) -> Self {
        CannedResponseV1 {
            id: c.id,
            code: c.code,
            text: c.text,
            queue: c.queue,
        }
    }
}

impl From<CannedResponseV1> for crate::core::canned::CannedResponse {
    fn from(c: CannedResponseV1) -> Self {
        crate::core::canned::CannedResponse {
            id: c.id,
            code: c.code,
            text: c.text,
            queue: c.queue,
        }
    }
}

/// A webhook subscription as stored (prefix `h`). Event kinds are kept by their wire
/// names, which are the API's contract, rather than by the core enum's order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookV1 {
    pub id: String,
    pub url: String,
    pub events: Vec<String>,
    pub secret: String,
    pub created_at: u64,
    pub first_seq: u64,
    pub delivered_through: u64,
    pub dropped: u64,
    /// Failing since, and the last error.
    pub failing: Option<(u64, String)>,
}

/// A webhook event waiting for a subscription, as stored (prefix `w`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookEventV1 {
    pub seq: u64,
    pub kind: String,
    pub key: String,
    pub at: u64,
    pub body: String,
}

fn event_kind(name: &str) -> Result<crate::core::webhooks::EventKind, StoreError> {
    name.parse().map_err(|_| StoreError::Corrupt {
        what: format!("webhook event kind {name:?} is unknown"),
    })
}

impl From<&crate::core::webhooks::Webhook> for WebhookV1 {
    fn from(h: &crate::core::webhooks::Webhook) -> Self {
        WebhookV1 {
            id: h.id.clone(),
            url: h.url.clone(),
            events: h.events.iter().map(|k| k.as_str().to_string()).collect(),
            secret: h.secret.clone(),
            created_at: h.created_at,
            first_seq: h.first_seq,
            delivered_through: h.delivered_through,
            dropped: h.dropped,
            failing: h.failing.as_ref().map(|f| (f.since, f.error.clone())),
        }
    }
}

impl WebhookV1 {
    pub fn into_core(self) -> Result<crate::core::webhooks::Webhook, StoreError> {
        Ok(crate::core::webhooks::Webhook {
            events: self.events.iter().map(|k| event_kind(k)).collect::<Result<_, _>>()?,
            id: self.id,
            url: self.url,
            secret: self.secret,
            created_at: self.created_at,
            first_seq: self.first_seq,
            delivered_through: self.delivered_through,
            dropped: self.dropped,
            failing: self
                .failing
                .map(|(since, error)| crate::core::webhooks::Failing { since, error }),
        })
    }
}

impl From<&crate::core::webhooks::WebhookEvent> for WebhookEventV1 {
    fn from(e: &crate::core::webhooks::WebhookEvent) -> Self {
        WebhookEventV1 {
            seq: e.seq,
            kind: e.kind.as_str().to_string(),
            key: e.key.clone(),
            at: e.at,
            body: e.body.clone(),
        }
    }
}

impl WebhookEventV1 {
    pub fn into_core(self) -> Result<crate::core::webhooks::WebhookEvent, StoreError> {
        Ok(crate::core::webhooks::WebhookEvent {
            kind: event_kind(&self.kind)?,
            seq: self.seq,
            key: self.key,
            at: self.at,
            body: self.body,
        })
    }
}

#[cfg(test)]
mod note_tests {
    use super::*;

    /// Internal notes are written as version 4 and read back as notes; every other
    /// message stays version 3, which builds before notes read.
    #[test]
    fn notes_are_version_4_and_other_messages_stay_version_3() {
        let author = Author {
            kind: AuthorKind::Agent,
            id: Some("a1".into()),
            name: "Ana".into(),
        };
        let plain = Message::text(2, author.clone(), "hi", 9);
        let mut note = Message::text(3, author, "VIP", 10);
        note.internal = true;
        for (m, version) in [(plain, MESSAGE_VERSION), (note, MESSAGE_V4)] {
            let mut bytes = Vec::new();
            encode_message_into(&mut bytes, m.clone()).unwrap();
            assert_eq!(bytes[0], version);
            assert_eq!(decode_message(b"k", &bytes).unwrap(), m);
        }
    }

    /// A conversation whose offers show a transfer's note is version 4; one without is
    /// still version 3.
    #[test]
    fn a_handoff_note_makes_a_version_4_conversation() {
        let c = super::tests::conversation_with_history();
        let mut with = c.clone();
        with.handoff_note = Some("wants a refund".into());
        for (c, version) in [(c, CONVERSATION_V3), (with, CONVERSATION_V4)] {
            let mut bytes = Vec::new();
            encode_conversation_into(&mut bytes, c.clone()).unwrap();
            assert_eq!(bytes[0], version);
            assert_eq!(decode_conversation(b"c-1", &bytes).unwrap(), c);
        }
    }
}
