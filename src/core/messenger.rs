//! The Messenger channel's rules: the 24-hour messaging window (from Meta's timestamps),
//! the policy of tags, the Send API's text limit, message ids seen before, delivery and
//! read marks, the outbox's reports, the pages' tokens and channel state, and what the
//! webhook may let in (ids, skipped events).
//!
//! Pure like the rest of the core: the webhook (`channels::messenger`) turns Meta's
//! payloads into [`Command`](super::Command)s, the outbox sender reports what the Send API
//! answered, and the rules here decide what changes.

use serde::{Deserialize, Serialize};
use strum::{EnumIter, IntoStaticStr};

use super::command::Reply;
use super::conversation::*;
use super::error::CoreError;
use super::event::*;
use super::floor::Floor;
use super::routing::{LastOwner, Opening};
use super::{ConversationId, EntryPointId, Millis, MAX_TEXT_CHARS};

/// Whether an entry point's page can send: `unauthorized` once the Graph API refused its
/// token (error 190), until the admin sets a new one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, IntoStaticStr, EnumIter)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum ChannelState {
    #[default]
    Ok,
    Unauthorized,
}

impl ChannelState {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// What the engine does with a thread another app (a bot) owns.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, IntoStaticStr, EnumIter)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum ThreadControl {
    /// Standby events are counted and skipped.
    #[default]
    Off,
    /// A customer message in standby makes the engine take thread control.
    Take,
}

/// An entry point's Messenger settings beside its page id and token.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageSettings {
    pub channel_state: ChannelState,
    pub thread_control: ThreadControl,
    /// The app that gets thread control back when a conversation ends.
    pub return_to_app_id: Option<String>,
}

/// A file an agent sent to a Messenger customer, as the outbox sends it: the bytes stay
/// in the engine's file store under `id` (the edge's, see docs/API-NOTES.md).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundFile {
    /// The file store's id of the bytes.
    pub id: String,
    /// Messenger's attachment type: `image`, `video`, `audio` or `file`.
    pub kind: String,
    pub content_type: String,
    /// The file's name as the agent gave it (shown to the customer by Messenger).
    pub name: String,
}

/// A quick reply offered with a message (Send API `quick_replies`, `content_type` text):
/// a button the customer taps, which comes back as a message with `title` as its text and
/// `payload` as its `quick_reply.payload`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuickReply {
    pub title: String,
    pub payload: String,
}

/// A Handover Protocol call (Messenger's Conversation Routing keeps these), carried out
/// by the outbox in the conversation's order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ThreadCall {
    /// `POST /me/take_thread_control`: the thread is this app's from now on.
    Take { metadata: String },
    /// `POST /me/pass_thread_control` to `target_app_id` (the conversation ended).
    Pass { target_app_id: String, metadata: String },
}

/// The outbox key of the call that passes thread control back at the end: after every
/// message of the conversation.
pub const PASS_THREAD_SEQ: u64 = u64::MAX;

/// Messenger's attachment type of a file of MIME type `content_type`.
pub fn attachment_kind(content_type: &str) -> &'static str {
    let major = content_type
        .split('/')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    match major.as_str() {
        "image" => "image",
        "video" => "video",
        "audio" => "audio",
        _ => "file",
    }
}

/// A file store id: 32 lowercase hex digits (128 random bits: the URL that serves the
/// file back is unguessable), behind the tenant's id and a dot for a tenant other than
/// `default` in a cluster (so that any node knows where `/files/{id}/...` goes).
pub fn valid_file_id(id: &str) -> bool {
    let random = match id.split_once('.') {
        Some((tenant, random)) if crate::core::tenant::valid_tenant_id(tenant) => random,
        Some(_) => return false,
        None => id,
    };
    random.len() == 32 && random.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The tenant a file id names ([`valid_file_id`]), if it names one.
pub fn file_tenant(id: &str) -> Option<&str> {
    id.split_once('.').map(|(t, _)| t).filter(|_| valid_file_id(id))
}

/// What the channel's sender learns of a page ([`Effect::Page`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageNote {
    pub entry_point: EntryPointId,
    pub page_id: String,
    /// The token of the moment (`None`: the entry point has none).
    pub token: Option<String>,
    pub state: ChannelState,
}

/// Messenger operations beside messages and marks ([`super::Command::Messenger`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MessengerCommand {
    /// The admin sets a new page access token (`PATCH /api/v1/entry-points/{id}`, or a
    /// config entry point whose token changed): the channel state is `ok` again.
    SetPageToken { entry_point: EntryPointId, token: String },
    /// The Graph API refused page `page_id`'s token (error 190): its entry point is
    /// `unauthorized` and its messages wait for a new token.
    PageUnauthorized { page_id: String },
    /// An agent's desktop says the agent types (`typing: Some(on)`) or has seen the
    /// customer's messages (`typing: None`).
    SenderAction {
        agent: super::AgentId,
        conversation: ConversationId,
        typing: Option<bool>,
    },
    /// An agent sends a file (`POST /api/v1/conversations/{id}/attachments`): a message
    /// with `attachment` (its URL is the edge's) joins the transcript, and to a Messenger
    /// customer `file` goes out through the outbox.
    SendFile {
        agent: super::AgentId,
        conversation: ConversationId,
        // Boxed: commands are moved by value, and this one would make every one larger.
        attachment: Box<Attachment>,
        file: Box<OutboundFile>,
    },
    /// Another app passed thread control of `customer` to this app
    /// (`pass_thread_control`): the customer's conversation opens, or the open one goes
    /// on, with the handover's `metadata` as a system note.
    ThreadPassed {
        page_id: String,
        customer: Customer,
        metadata: String,
        sent_at: Option<Millis>,
    },
    /// Sets an entry point's thread control and the app to return threads to
    /// (`PATCH /api/v1/entry-points/{id}`, or the config).
    SetThreadControl {
        entry_point: EntryPointId,
        thread_control: ThreadControl,
        return_to_app_id: Option<String>,
    },
}

/// A Send API `sender_action`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, IntoStaticStr)]
#[strum(serialize_all = "snake_case")]
pub enum SenderAction {
    TypingOn,
    TypingOff,
    MarkSeen,
}

impl SenderAction {
    /// The Send API's name.
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// Typing is shown at most once per this long per conversation (a desktop may report
/// every keystroke).
pub const TYPING_EVERY_MS: Millis = 3_000;
/// Conversations whose sender actions are remembered; beyond it the oldest are dropped.
const SENDER_ACTIONS_KEPT: usize = 10_000;

/// What was last shown to each conversation's customer (typing, and up to which customer
/// message `mark_seen` went), so the rate bound and "once per new message" hold.
#[derive(Debug, Default)]
pub struct SenderActions {
    last: std::collections::HashMap<ConversationId, ShownActions>,
}

#[derive(Debug, Default, Clone, Copy)]
struct ShownActions {
    /// The last typing action sent, and when.
    typing: Option<(bool, Millis)>,
    /// The seq of the last customer message marked seen.
    seen_seq: u64,
}

/// Why the webhook skipped an event: the `reason` label of
/// `switchboard_messenger_events_skipped_total`, a fixed set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, IntoStaticStr, EnumIter)]
#[strum(serialize_all = "snake_case")]
pub enum SkipReason {
    /// The body's `object` is not `page` (Instagram, WhatsApp, a user...).
    NotPage,
    /// Not JSON, or an entry or event of a shape that cannot be read.
    Unreadable,
    /// The sender is known only by `user_ref` (a chat plugin or checkbox visitor).
    UserRef,
    /// A `timestamp` that is not a time.
    BadTimestamp,
    /// A page id or PSID that is not digits.
    BadId,
    /// A kind of event the engine does not handle (reactions, referrals, opt-ins...).
    UnknownKind,
    /// A message with neither text nor attachments.
    Empty,
    /// An echo of a message this app sent.
    OwnEcho,
    /// A `standby` event on an entry point whose thread control is off.
    Standby,
    /// A page no entry point has.
    UnknownPage,
    /// The core refused it (see the log line).
    Refused,
}

impl SkipReason {
    /// The label.
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// Page ids and PSIDs are digits (at most 32): anything else is skipped before it reaches
/// a Graph API URL or a log line.
pub fn valid_graph_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 32 && id.bytes().all(|b| b.is_ascii_digit())
}

/// When a Messenger event happened: Meta's `timestamp`, never later than `now` (a clock
/// ahead of ours must not lengthen a window); `now` when Meta gave none.
pub fn meta_time(sent_at: Option<Millis>, now: Millis) -> Millis {
    sent_at.map_or(now, |t| t.min(now))
}

/// `text` cut at `limit` characters; true when it was cut.
pub fn truncate(text: &str, limit: usize) -> (String, bool) {
    match text.char_indices().nth(limit) {
        Some((end, _)) => (text[..end].to_string(), true),
        None => (text.to_string(), false),
    }
}

/// The outbox sender gives a message up: its retries began at `first_failure` and it is
/// `now`; `attempts` tries failed. Retries go on for `retry_for_ms`, and at most
/// `max_attempts` tries when that is above 0.
pub fn give_up(first_failure: Millis, now: Millis, retry_for_ms: u64, attempts: u32, max_attempts: u32) -> bool {
    now.saturating_sub(first_failure) >= retry_for_ms || (max_attempts > 0 && attempts >= max_attempts)
}

/// The message id under which a postback is remembered: Meta's `mid` where it gives one,
/// else the sender, Meta's timestamp and the payload (hashed, so the key stays short).
pub fn postback_key(mid: Option<&str>, sender: &str, timestamp: Option<Millis>, payload: &str) -> String {
    use sha2::{Digest, Sha256};
    match mid {
        Some(mid) => format!("postback:{mid}"),
        None => {
            let digest = Sha256::digest(payload.as_bytes());
            let hash: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
            format!("postback:{sender}:{}:{hash}", timestamp.unwrap_or(0))
        }
    }
}

/// The Send API's longest text, in characters.
pub const SEND_TEXT_LIMIT: usize = 2_000;
/// `RESPONSE` is allowed this long after the customer's last message.
pub const WINDOW_MS: Millis = 24 * 60 * 60 * 1000;
/// The `HUMAN_AGENT` tag is allowed this long after the customer's last message.
pub const HUMAN_AGENT_MS: Millis = 7 * WINDOW_MS;

/// How a message may be sent to a Messenger customer now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Window {
    /// `messaging_type: RESPONSE`.
    Response,
    /// `messaging_type: MESSAGE_TAG`, `tag: HUMAN_AGENT`.
    HumanAgentTag,
    /// Not at all: the Send API would refuse it.
    Closed,
}

/// The window at `now` for a customer who last wrote at `last_customer` (`None`: never,
/// which a Messenger conversation cannot be, so the window is open from its start).
pub fn window(last_customer: Option<Millis>, now: Millis, human_agent_tag: bool) -> Window {
    let Some(last) = last_customer else {
        return Window::Response;
    };
    let since = now.saturating_sub(last);
    if since <= WINDOW_MS {
        Window::Response
    } else if human_agent_tag && since <= HUMAN_AGENT_MS {
        Window::HumanAgentTag
    } else {
        Window::Closed
    }
}

/// `text` in parts of at most `limit` characters, cut at whitespace where there is some
/// (a word longer than `limit` is cut where it must be). The parts, joined, give back the
/// text less the whitespace at the cuts; no part is empty.
pub fn split_text(text: &str, limit: usize) -> Vec<String> {
    let limit = limit.max(1);
    let mut parts = Vec::new();
    let mut rest = text.trim();
    while !rest.is_empty() {
        if rest.chars().count() <= limit {
            parts.push(rest.to_string());
            break;
        }
        // Byte offset just past `limit` characters.
        let end = rest.char_indices().nth(limit).map_or(rest.len(), |(i, _)| i);
        let window = &rest[..end];
        // The last whitespace within the limit (a cut right after `limit` characters at a
        // space is fine too: the space is dropped).
        let after_limit_is_space = rest[end..].starts_with(char::is_whitespace);
        let cut = if after_limit_is_space {
            end
        } else {
            match window.rfind(char::is_whitespace) {
                Some(i) if i > 0 => i,
                _ => end,
            }
        };
        parts.push(rest[..cut].trim_end().to_string());
        rest = rest[cut..].trim_start();
    }
    parts
}

/// The name a Messenger customer has until the User Profile API gives the real one:
/// stable for a PSID ("Messenger user 4321", from its last four characters).
pub fn placeholder_name(psid: &str) -> String {
    let tail: String = {
        let chars: Vec<char> = psid.chars().collect();
        chars[chars.len().saturating_sub(4)..].iter().collect()
    };
    format!("Messenger user {tail}")
}

/// Which customers' names to ask the User Profile API for: each customer once while a
/// look-up is under way; after a failure, again on a later message once a backoff has
/// passed (doubling from `base_ms` up to `max_ms`). Bounded: beyond `capacity` customers
/// the oldest is forgotten (its next message may ask again). A found name is in the store
/// and needs no entry here.
#[derive(Debug)]
pub struct ProfileLookups {
    capacity: usize,
    base_ms: u64,
    max_ms: u64,
    entries: std::collections::HashMap<(String, String), Lookup>,
    /// Keys in the order they were first added, for forgetting the oldest.
    order: std::collections::VecDeque<(String, String)>,
}

#[derive(Debug, Clone, Copy)]
struct Lookup {
    under_way: bool,
    failures: u32,
    /// No new look-up before this.
    not_before: Millis,
}

impl ProfileLookups {
    pub fn new(capacity: usize, base_ms: u64, max_ms: u64) -> Self {
        ProfileLookups {
            capacity: capacity.max(1),
            base_ms,
            max_ms,
            entries: Default::default(),
            order: Default::default(),
        }
    }

    /// True when a look-up of `key` should start at `now` (it is then under way).
    pub fn start(&mut self, key: &(String, String), now: Millis) -> bool {
        if let Some(l) = self.entries.get_mut(key) {
            if l.under_way || now < l.not_before {
                return false;
            }
            l.under_way = true;
            return true;
        }
        while self.entries.len() >= self.capacity {
            let Some(old) = self.order.pop_front() else { break };
            self.entries.remove(&old);
        }
        self.entries.insert(
            key.clone(),
            Lookup {
                under_way: true,
                failures: 0,
                not_before: 0,
            },
        );
        self.order.push_back(key.clone());
        true
    }

    /// The look-up of `key` ended at `now`: found (forgotten here) or failed (tried again
    /// after the backoff).
    pub fn ended(&mut self, key: &(String, String), found: bool, now: Millis) {
        if found {
            if self.entries.remove(key).is_some() {
                self.order.retain(|k| k != key);
            }
            return;
        }
        if let Some(l) = self.entries.get_mut(key) {
            l.under_way = false;
            l.failures = l.failures.saturating_add(1);
            let wait = self
                .base_ms
                .saturating_mul(1u64 << (l.failures - 1).min(30))
                .min(self.max_ms);
            l.not_before = now.saturating_add(wait);
        }
    }

    /// Customers held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// None held.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl Floor {
    /// The entry point of Facebook Page `page_id`.
    pub(super) fn entry_point_of_page(&self, page_id: &str) -> Result<String, CoreError> {
        self.entry_points()
            .find(|e| e.page_id.as_deref() == Some(page_id))
            .map(|e| e.id.clone())
            .ok_or_else(|| CoreError::UnknownPage(page_id.into()))
    }

    /// A page belongs to one entry point: `page_id` may be given to `entry_point` only if
    /// no other entry point has it.
    pub(super) fn check_page_free(&self, page_id: &str, entry_point: &str) -> Result<(), CoreError> {
        match self
            .entry_points()
            .find(|e| e.page_id.as_deref() == Some(page_id) && e.id != entry_point)
        {
            Some(other) => Err(CoreError::PageInUse {
                page_id: page_id.into(),
                entry_point: other.id.clone(),
            }),
            None => Ok(()),
        }
    }

    /// A customer's message (or postback) on a Facebook Page: opens or joins the
    /// customer's conversation on the page's entry point. `seen` says the message id was
    /// taken in before (the shell looks it up in the store); then nothing changes and the
    /// answer is `None`. A new `mid` is recorded with the message, in the same commit.
    /// The message's `at` is Meta's `sent_at` (never later than `now`), so the messaging
    /// window counts from when the customer wrote, not from when Meta delivered it. A text
    /// over the engine's bound is kept, cut at the bound, and marked `truncated`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn messenger_message(
        &mut self,
        page_id: &str,
        customer: Customer,
        text: &str,
        attachments: Vec<Attachment>,
        mid: Option<String>,
        seen: bool,
        last_owner: Option<LastOwner>,
        sent_at: Option<Millis>,
        standby: bool,
        now: Millis,
    ) -> Result<Option<ConversationId>, CoreError> {
        let entry_point = self.entry_point_of_page(page_id)?;
        let take = self
            .entry_point(&entry_point)
            .is_some_and(|e| e.messenger.thread_control == ThreadControl::Take);
        if standby && !take {
            return Err(CoreError::ThreadOfAnotherApp(page_id.into()));
        }
        if seen {
            return Ok(None);
        }
        if text.trim().is_empty() && attachments.is_empty() {
            return Err(CoreError::InvalidInput("a message needs text or attachments".into()));
        }
        let (text, truncated) = truncate(text, MAX_TEXT_CHARS);
        let open = Opening {
            last_owner,
            ..Opening::default()
        };
        let arrival = self.customer_message_with(
            &entry_point,
            customer,
            &text,
            attachments,
            Channel::Messenger,
            open,
            now,
        )?;
        let at = meta_time(sent_at, now);
        if at != now || truncated {
            self.restamp(&arrival.conversation, arrival.message.seq, at, truncated);
        }
        if let Some(mid) = mid {
            self.journal().change(Change::Mid { mid, at: now });
        }
        if standby {
            // Another app (a bot) owns the thread: take it, before any reply goes out.
            let metadata = "taken over for a human agent".to_string();
            self.thread_call(
                &arrival.conversation,
                arrival.message.seq,
                ThreadCall::Take { metadata },
                now,
            );
        }
        Ok(Some(arrival.conversation))
    }

    /// Puts Handover Protocol call `call` into `conversation`'s outbox under `seq` (a seq
    /// no message of the outbox has: a customer message's, or [`PASS_THREAD_SEQ`]), so it
    /// goes out in the conversation's order. Nothing without a page and a token.
    fn thread_call(&mut self, conversation: &str, seq: u64, call: ThreadCall, now: Millis) {
        let Some(c) = self.conversation(conversation) else {
            return;
        };
        let page = c
            .entry_point
            .as_ref()
            .and_then(|e| self.entry_point(e))
            .and_then(|e| e.page_access_token.as_ref().and(e.page_id.clone()));
        let Some(page_id) = page else { return };
        let o = Outbound {
            conversation: c.id.clone(),
            seq,
            recipient: c.customer.id.clone(),
            page_id,
            parts: Vec::new(),
            parts_sent: 0,
            human_agent_tag: false,
            queued_at: now,
            file: None,
            thread: Some(Box::new(call)),
            quick_replies: Vec::new(),
        };
        self.journal().change(Change::Outbox(o.clone()));
        self.journal().effect(Effect::Send(o));
    }

    /// `conversation` ends (`reason`): with its entry point's `return_to_app_id` set, a
    /// Messenger thread is passed to that app, after every message of the conversation.
    pub(super) fn return_thread(&mut self, conversation: &str, reason: &str, now: Millis) {
        let Some(c) = self.conversation(conversation) else {
            return;
        };
        if c.channel != Channel::Messenger {
            return;
        }
        let target = c
            .entry_point
            .as_ref()
            .and_then(|e| self.entry_point(e))
            .and_then(|e| e.messenger.return_to_app_id.clone());
        let Some(target_app_id) = target else { return };
        let metadata = format!("conversation {conversation} ended: {reason}");
        self.thread_call(
            conversation,
            PASS_THREAD_SEQ,
            ThreadCall::Pass {
                target_app_id,
                metadata,
            },
            now,
        );
    }

    /// Another app passed thread control of `customer` on `page_id` to this app: the
    /// handover's `metadata` becomes a system note in the customer's open conversation,
    /// or opens one (queued and routed like a customer's first message; the note is what
    /// its offer shows). The note is for the agents: it is not sent to the customer.
    fn thread_passed(
        &mut self,
        page_id: &str,
        customer: Customer,
        metadata: &str,
        sent_at: Option<Millis>,
        now: Millis,
    ) -> Result<ConversationId, CoreError> {
        let entry_point = self.entry_point_of_page(page_id)?;
        let metadata = metadata.trim();
        let note = if metadata.is_empty() {
            "Handed over by another app".to_string()
        } else {
            truncate(&format!("Handed over by another app: {metadata}"), MAX_TEXT_CHARS).0
        };
        let at = meta_time(sent_at, now);
        if let Some(id) = self.open_conversation_of(&entry_point, &customer.id).cloned() {
            self.system_note(&id, &note, at);
            return Ok(id);
        }
        let arrival = self.customer_message_with(
            &entry_point,
            customer,
            &note,
            Vec::new(),
            Channel::Messenger,
            Opening::default(),
            now,
        )?;
        self.as_system_note(&arrival.conversation, arrival.message.seq);
        Ok(arrival.conversation)
    }

    /// Appends a system note for the agents only (never sent to the customer).
    fn system_note(&mut self, conversation: &str, text: &str, at: Millis) {
        let Some(c) = self.conversation_mut(conversation) else {
            return;
        };
        let author = Author {
            kind: AuthorKind::System,
            id: None,
            name: "system".into(),
        };
        let message = Message::text(c.transcript.len() as u64 + 1, author, text, at);
        c.transcript.push(message.clone());
        let participants: Vec<_> = c.participants().cloned().collect();
        self.journal().change(Change::Message {
            conversation: conversation.into(),
            message: message.clone(),
        });
        for agent in participants {
            self.journal().effect(Effect::Notify {
                agent,
                event: AgentEvent::Message {
                    conversation: conversation.into(),
                    message: message.clone(),
                },
            });
        }
    }

    /// Makes message `seq` of `conversation`, just opened with it, a system note: in the
    /// transcript and in what this operation records and tells (the offer's snapshot).
    fn as_system_note(&mut self, conversation: &str, seq: u64) {
        self.patch_message(conversation, seq, |m| {
            m.author = Author {
                kind: AuthorKind::System,
                id: None,
                name: "system".into(),
            };
        });
    }

    /// Applies `fix` to message `seq` of `conversation`, just appended, wherever this
    /// operation holds it: the transcript, the change that records it, and the events that
    /// tell it (a message event, an offer's snapshot of the conversation).
    fn patch_message(&mut self, conversation: &str, seq: u64, fix: impl Fn(&mut Message)) {
        let fix = |m: &mut Message| {
            if m.seq == seq {
                fix(m);
            }
        };
        if let Some(c) = self.conversation_mut(conversation) {
            c.transcript.iter_mut().for_each(fix);
        }
        for change in self.journal().changes_mut() {
            if let Change::Message {
                conversation: c,
                message,
            } = change
            {
                if c == conversation {
                    fix(message);
                }
            }
        }
        for effect in self.journal().effects_mut() {
            if let Effect::Notify { event, .. } = effect {
                match event {
                    AgentEvent::Message {
                        conversation: c,
                        message,
                    } if c == conversation => fix(message),
                    AgentEvent::Offer { conversation: c, .. } if c.id == conversation => {
                        std::sync::Arc::make_mut(c).transcript.iter_mut().for_each(fix);
                    }
                    _ => {}
                }
            }
        }
    }

    /// An agent sends a file: checked as a text would be ([`Floor::may_write`]); the
    /// message carries `attachment` and no text, and its outbox entry (to a Messenger
    /// customer) carries `file`.
    fn send_file(
        &mut self,
        agent: &str,
        conversation: &str,
        attachment: Attachment,
        file: OutboundFile,
        now: Millis,
    ) -> Result<Message, CoreError> {
        let name = self.may_write(agent, conversation, now)?;
        if !valid_file_id(&file.id) {
            return Err(CoreError::InvalidInput(
                "a file id is 32 hex digits, maybe behind a tenant's id".into(),
            ));
        }
        let m = self.append_with(
            conversation,
            AuthorKind::Agent,
            Some(agent.into()),
            name,
            "",
            vec![attachment],
            now,
        );
        let seq = m.seq;
        let with_file = |o: &mut Outbound| {
            if o.conversation == conversation && o.seq == seq {
                o.file = Some(Box::new(file.clone()));
            }
        };
        for change in self.journal().changes_mut() {
            if let Change::Outbox(o) = change {
                with_file(o);
            }
        }
        for effect in self.journal().effects_mut() {
            if let Effect::Send(o) = effect {
                with_file(o);
            }
        }
        Ok(m)
    }

    /// Sets `entry_point`'s thread control and the app threads go back to.
    fn set_thread_control(
        &mut self,
        entry_point: &str,
        thread_control: ThreadControl,
        return_to_app_id: Option<String>,
    ) -> Result<super::EntryPoint, CoreError> {
        if let Some(app) = &return_to_app_id {
            if !valid_graph_id(app) {
                return Err(CoreError::InvalidInput(
                    "return_to_app_id is an app id: 1 to 32 digits".into(),
                ));
            }
        }
        let ep = self
            .entry_point_mut(entry_point)
            .ok_or_else(|| CoreError::UnknownEntryPoint(entry_point.into()))?;
        ep.messenger.thread_control = thread_control;
        ep.messenger.return_to_app_id = return_to_app_id;
        let ep = ep.clone();
        self.journal().change(Change::EntryPoint(ep.clone()));
        Ok(ep)
    }

    /// What a person wrote to `customer` from the Page's own inbox (an echo of another
    /// app's message): it joins the customer's open conversation with author kind `page`
    /// and the entry point's name, and is not sent again. With no open conversation it is
    /// only remembered (its `mid`), so a redelivery stays ignored.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn page_echo(
        &mut self,
        page_id: &str,
        customer: &str,
        text: &str,
        attachments: Vec<Attachment>,
        mid: Option<String>,
        seen: bool,
        sent_at: Option<Millis>,
        now: Millis,
    ) -> Result<(), CoreError> {
        let entry_point = self.entry_point_of_page(page_id)?;
        if seen {
            return Ok(());
        }
        if text.trim().is_empty() && attachments.is_empty() {
            return Err(CoreError::InvalidInput("a message needs text or attachments".into()));
        }
        let (text, truncated) = truncate(text, MAX_TEXT_CHARS);
        let name = self
            .entry_point(&entry_point)
            .map(|e| e.name.clone())
            .ok_or_else(|| CoreError::UnknownEntryPoint(entry_point.clone()))?;
        if let Some(id) = self.open_conversation_of(&entry_point, customer).cloned() {
            let m = self.append_with(&id, AuthorKind::Page, None, name, &text, attachments, now);
            let at = meta_time(sent_at, now);
            if at != now || truncated {
                self.restamp(&id, m.seq, at, truncated);
            }
        }
        if let Some(mid) = mid {
            self.journal().change(Change::Mid { mid, at: now });
        }
        Ok(())
    }

    /// Gives the message just appended (`seq` of `conversation`) Meta's time and its
    /// `truncated` mark, in the transcript and in what this operation records and tells.
    fn restamp(&mut self, conversation: &str, seq: u64, at: Millis, truncated: bool) {
        self.patch_message(conversation, seq, |m| {
            m.at = at;
            m.truncated = truncated;
        });
    }

    /// Messenger's delivery (`read: false`) or read mark for `customer` on `page_id`:
    /// every outbound message of the customer's open conversation that the Send API had
    /// accepted at or before `watermark` is delivered (read). A message still pending is
    /// not marked (it was not sent before the watermark), and a final one (failed, not
    /// sent) never is. A mark for no open conversation changes nothing.
    pub(crate) fn messenger_mark(
        &mut self,
        page_id: &str,
        customer: &str,
        watermark: Millis,
        read: bool,
    ) -> Result<(), CoreError> {
        let entry_point = self.entry_point_of_page(page_id)?;
        let Some(id) = self.open_conversation_of(&entry_point, customer).cloned() else {
            return Ok(());
        };
        let to = if read { Delivery::Read } else { Delivery::Delivered };
        let Some(c) = self.conversation(&id) else {
            return Ok(());
        };
        let seqs: Vec<u64> = c
            .transcript
            .iter()
            .filter(|m| {
                m.sent_at.is_some_and(|at| at <= watermark)
                    && m.delivery
                        .is_some_and(|d| matches!(d, Delivery::Sent | Delivery::Delivered) && d.rank() < to.rank())
            })
            .map(|m| m.seq)
            .collect();
        for seq in seqs {
            self.set_delivery(&id, seq, to, None, None);
        }
        Ok(())
    }

    /// The outbox sender's report on message `seq` of `conversation`. The outbox entry is
    /// rewritten (progress) or removed (sent, failed); the message's delivery state moves
    /// forward, if the floor still holds the conversation (a finished one keeps the state
    /// it had, see docs/DECISIONS.md).
    pub(crate) fn outbox_report(
        &mut self,
        conversation: &str,
        seq: u64,
        outcome: OutboxOutcome,
        progress: Option<Outbound>,
    ) -> Result<(), CoreError> {
        match outcome {
            OutboxOutcome::Progress { parts_sent } => {
                if let Some(mut o) = progress {
                    o.parts_sent = parts_sent;
                    self.journal().change(Change::Outbox(o));
                }
            }
            OutboxOutcome::Sent { at } => {
                self.journal().change(Change::OutboxDone {
                    conversation: conversation.into(),
                    seq,
                });
                self.set_delivery(conversation, seq, Delivery::Sent, None, Some(at));
            }
            OutboxOutcome::Failed { error } => {
                self.journal().change(Change::OutboxDone {
                    conversation: conversation.into(),
                    seq,
                });
                self.set_delivery(conversation, seq, Delivery::Failed, Some(error), None);
            }
        }
        Ok(())
    }

    /// The User Profile API named the customer `customer` of `page_id`: the name is kept
    /// for the next conversations, and the open conversation takes it.
    pub(crate) fn set_customer_name(&mut self, page_id: &str, customer: &str, name: &str) -> Result<(), CoreError> {
        let entry_point = self.entry_point_of_page(page_id)?;
        let name: String = name.chars().take(super::MAX_NAME_CHARS).collect();
        if name.trim().is_empty() {
            return Err(CoreError::InvalidInput("customer name must not be empty".into()));
        }
        self.journal().change(Change::CustomerName {
            page_id: page_id.into(),
            customer: customer.into(),
            name: name.clone(),
        });
        let Some(id) = self.open_conversation_of(&entry_point, customer).cloned() else {
            return Ok(());
        };
        if let Some(c) = self.conversation_mut(&id) {
            c.customer.name = name;
        }
        self.conversation_changed(&id);
        Ok(())
    }

    /// The outbox entries found in the store at start: each is handed to its channel
    /// again ([`Effect::Send`]), in the order given (by conversation, then seq).
    pub fn resume_outbox(&mut self, entries: Vec<Outbound>) {
        self.journal().effects(entries.into_iter().map(Effect::Send));
    }

    /// Runs a [`MessengerCommand`].
    pub(crate) fn messenger(&mut self, cmd: MessengerCommand, now: Millis) -> Result<Reply, CoreError> {
        match cmd {
            MessengerCommand::SetPageToken { entry_point, token } => {
                self.set_page_token(&entry_point, token)?;
                let ep = self
                    .entry_point(&entry_point)
                    .cloned()
                    .ok_or(CoreError::UnknownEntryPoint(entry_point))?;
                Ok(Reply::EntryPoint(ep))
            }
            MessengerCommand::PageUnauthorized { page_id } => {
                self.page_unauthorized(&page_id)?;
                Ok(Reply::Done)
            }
            MessengerCommand::SenderAction {
                agent,
                conversation,
                typing,
            } => {
                self.sender_action(&agent, &conversation, typing, now)?;
                Ok(Reply::Done)
            }
            MessengerCommand::SendFile {
                agent,
                conversation,
                attachment,
                file,
            } => Ok(Reply::Message(self.send_file(
                &agent,
                &conversation,
                *attachment,
                *file,
                now,
            )?)),
            MessengerCommand::ThreadPassed {
                page_id,
                customer,
                metadata,
                sent_at,
            } => {
                self.thread_passed(&page_id, customer, &metadata, sent_at, now)?;
                Ok(Reply::Done)
            }
            MessengerCommand::SetThreadControl {
                entry_point,
                thread_control,
                return_to_app_id,
            } => Ok(Reply::EntryPoint(self.set_thread_control(
                &entry_point,
                thread_control,
                return_to_app_id,
            )?)),
        }
    }

    /// An agent in `conversation` types (`typing: Some(on)`) or has seen the customer's
    /// messages (`None`). Shown to a Messenger customer, within the 24-hour window only:
    /// typing at most once every [`TYPING_EVERY_MS`] per conversation (a change from on to
    /// off goes at once), `mark_seen` once per new customer message. Other channels, and
    /// what the bounds hold back, change nothing (answered all the same: a desktop sends
    /// these as the agent types, and has nothing to do about a refusal).
    fn sender_action(
        &mut self,
        agent: &str,
        conversation: &str,
        typing: Option<bool>,
        now: Millis,
    ) -> Result<(), CoreError> {
        let c = self
            .conversation(conversation)
            .ok_or_else(|| CoreError::UnknownConversation(conversation.into()))?;
        if !c.is_open() || !c.participants().any(|p| p == agent) {
            return Err(CoreError::NotInConversation {
                conversation: conversation.into(),
                agent: agent.into(),
            });
        }
        if c.channel != Channel::Messenger || window(c.last_customer_message_at(), now, false) != Window::Response {
            return Ok(());
        }
        let page_id = c
            .entry_point
            .as_ref()
            .and_then(|e| self.entry_point(e))
            .and_then(|e| e.page_id.clone());
        let Some(page_id) = page_id else { return Ok(()) };
        let last_customer_seq = c
            .transcript
            .iter()
            .rev()
            .find(|m| m.author.kind == AuthorKind::Customer)
            .map_or(0, |m| m.seq);
        let recipient = c.customer.id.clone();
        let full = {
            let actions = &self.sender_actions().last;
            actions.len() >= SENDER_ACTIONS_KEPT && !actions.contains_key(conversation)
        };
        if full {
            let gone: Vec<String> = self
                .sender_actions()
                .last
                .keys()
                .filter(|id| self.conversation(id).is_none())
                .cloned()
                .collect();
            let actions = &mut self.sender_actions_mut().last;
            for id in gone {
                actions.remove(&id);
            }
            if actions.len() >= SENDER_ACTIONS_KEPT {
                actions.clear();
            }
        }
        let shown = self
            .sender_actions_mut()
            .last
            .entry(conversation.to_string())
            .or_default();
        let action = match typing {
            Some(on) => {
                let due = match shown.typing {
                    None => true,
                    Some((was, at)) => was != on || now.saturating_sub(at) >= TYPING_EVERY_MS,
                };
                if !due {
                    return Ok(());
                }
                shown.typing = Some((on, now));
                if on {
                    SenderAction::TypingOn
                } else {
                    SenderAction::TypingOff
                }
            }
            None => {
                if last_customer_seq <= shown.seen_seq {
                    return Ok(());
                }
                shown.seen_seq = last_customer_seq;
                SenderAction::MarkSeen
            }
        };
        self.journal().effect(Effect::SenderAction {
            page_id,
            recipient,
            action,
        });
        Ok(())
    }

    /// A new page access token for `entry_point`: kept, the channel state is `ok`, and
    /// the sender uses it for every message that waits (in order). Setting the token the
    /// entry point has already changes nothing but the state.
    fn set_page_token(&mut self, entry_point: &str, token: String) -> Result<(), CoreError> {
        let token = token.trim().to_string();
        if token.is_empty() || token.len() > 2048 || !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(CoreError::InvalidInput(
                "page_access_token must be 1 to 2048 printable ASCII characters without spaces".into(),
            ));
        }
        let ep = self
            .entry_point_mut(entry_point)
            .ok_or_else(|| CoreError::UnknownEntryPoint(entry_point.into()))?;
        if ep.page_access_token.as_deref() == Some(token.as_str()) && ep.messenger.channel_state == ChannelState::Ok {
            return Ok(());
        }
        ep.page_access_token = Some(token);
        ep.messenger.channel_state = ChannelState::Ok;
        let ep = ep.clone();
        self.page_changed(ep);
        Ok(())
    }

    /// The Graph API refused the token of `page_id` (error 190).
    fn page_unauthorized(&mut self, page_id: &str) -> Result<(), CoreError> {
        let id = self.entry_point_of_page(page_id)?;
        let Some(ep) = self.entry_point_mut(&id) else {
            return Ok(());
        };
        if ep.messenger.channel_state == ChannelState::Unauthorized {
            return Ok(());
        }
        ep.messenger.channel_state = ChannelState::Unauthorized;
        let ep = ep.clone();
        self.page_changed(ep);
        Ok(())
    }

    /// Records entry point `ep` and tells the channel's sender about its page.
    fn page_changed(&mut self, ep: super::EntryPoint) {
        if let Some(page_id) = ep.page_id.clone() {
            self.journal().effect(Effect::Page(PageNote {
                entry_point: ep.id.clone(),
                page_id,
                token: ep.page_access_token.clone(),
                state: ep.messenger.channel_state,
            }));
        }
        self.journal().change(Change::EntryPoint(ep));
    }

    /// Moves message `seq`'s delivery state forward to `to` (never back, never out of a
    /// final state), makes it durable and tells the agents in the conversation.
    fn set_delivery(
        &mut self,
        conversation: &str,
        seq: u64,
        to: Delivery,
        error: Option<String>,
        sent_at: Option<Millis>,
    ) {
        let Some(c) = self.conversation_mut(conversation) else {
            return;
        };
        let Some(m) = seq.checked_sub(1).and_then(|i| c.transcript.get_mut(i as usize)) else {
            return;
        };
        let Some(from) = m.delivery else {
            return;
        };
        if from.is_final() || to.rank() <= from.rank() {
            return;
        }
        m.delivery = Some(to);
        m.delivery_error = error.clone();
        if sent_at.is_some() {
            m.sent_at = sent_at;
        }
        let message = m.clone();
        let participants: Vec<_> = c.participants().cloned().collect();
        self.journal().change(Change::MessageUpdate {
            conversation: conversation.into(),
            message,
        });
        for agent in participants {
            self.journal().effect(Effect::Notify {
                agent,
                event: AgentEvent::MessageStatus {
                    conversation: conversation.into(),
                    seq,
                    delivery: to,
                    delivery_error: error.clone(),
                },
            });
        }
    }

    /// The outbox entry of a system `message` to `customer` of `conversation`, which the
    /// floor no longer holds (a survey's thanks once the conversation is complete), sent
    /// as the customer's message is taken in: within the 24-hour window by then.
    pub(super) fn outbound_to(
        &self,
        conversation: &str,
        entry_point: &str,
        customer: &str,
        message: &mut Message,
        now: Millis,
    ) -> Option<Outbound> {
        let ep = self.entry_point(entry_point);
        let Some(page_id) = ep.and_then(|e| e.page_access_token.as_ref().and(e.page_id.clone())) else {
            message.delivery = Some(Delivery::Failed);
            message.delivery_error = Some("the entry point has no page id or page access token".into());
            return None;
        };
        message.delivery = Some(Delivery::Pending);
        Some(Outbound {
            conversation: conversation.into(),
            seq: message.seq,
            recipient: customer.into(),
            page_id,
            parts: split_text(&message.text, SEND_TEXT_LIMIT),
            parts_sent: 0,
            human_agent_tag: false,
            queued_at: now,
            file: None,
            thread: None,
            quick_replies: Vec::new(),
        })
    }

    /// The outbox entry of an agent or system message to a Messenger customer, deciding
    /// the window now: `None` (and the message marked) when it cannot be sent. Only an
    /// agent's words may use the `HUMAN_AGENT` tag (Meta reserves it for a person's
    /// replies): a system text outside the 24-hour window is `not_sent`.
    pub(super) fn outbound(&self, c: &Conversation, message: &mut Message, now: Millis) -> Option<Outbound> {
        let ep = c.entry_point.as_ref().and_then(|e| self.entry_point(e));
        let page = ep.and_then(|e| e.page_access_token.as_ref().and(e.page_id.clone()));
        let w = window(c.last_customer_message_at(), now, self.rules().human_agent_tag);
        let refuse = |message: &mut Message, delivery: Delivery, why: &str| {
            message.delivery = Some(delivery);
            message.delivery_error = Some(why.into());
            None
        };
        let Some(page_id) = page else {
            return refuse(
                message,
                Delivery::Failed,
                "the entry point has no page id or page access token",
            );
        };
        if message.author.kind == AuthorKind::System && w != Window::Response {
            return refuse(
                message,
                Delivery::NotSent,
                "outside the 24-hour messaging window: only an agent's replies may go out with the HUMAN_AGENT tag",
            );
        }
        if w == Window::Closed {
            return refuse(message, Delivery::Failed, "outside the messaging window");
        }
        message.delivery = Some(Delivery::Pending);
        Some(Outbound {
            conversation: c.id.clone(),
            seq: message.seq,
            recipient: c.customer.id.clone(),
            page_id,
            parts: split_text(&message.text, SEND_TEXT_LIMIT),
            parts_sent: 0,
            human_agent_tag: w == Window::HumanAgentTag,
            queued_at: now,
            file: None,
            thread: None,
            quick_replies: Vec::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_file_id_is_32_hex_digits_maybe_behind_a_tenant() {
        let hex = "0123456789abcdef0123456789abcdef";
        assert!(valid_file_id(hex));
        assert_eq!(file_tenant(hex), None);
        let of_acme = format!("acme.{hex}");
        assert!(valid_file_id(&of_acme));
        assert_eq!(file_tenant(&of_acme), Some("acme"));
        for bad in [
            "0123456789ABCDEF0123456789abcdef",
            "0123456789abcdef0123456789abcde",
            "-acme.0123456789abcdef0123456789abcdef",
            "Acme.0123456789abcdef0123456789abcdef",
            ".0123456789abcdef0123456789abcdef",
            "acme.",
            "../etc/passwd",
            "acme.0123456789abcdef0123456789abcdef.x",
        ] {
            assert!(!valid_file_id(bad), "{bad}");
            assert_eq!(file_tenant(bad), None, "{bad}");
        }
    }

    use super::*;
    use crate::core::{Command, EntryPoint, Presence, Reply, Rules};

    const T0: Millis = 1_700_000_000_000;
    const PAGE: &str = "page-1";
    const H: Millis = 60 * 60 * 1000;

    /// A floor with a Messenger entry point (page `PAGE`, with a token), a queue and an
    /// available agent `a1`.
    fn floor(human_agent_tag: bool) -> Floor {
        let mut f = Floor::new(Rules {
            human_agent_tag,
            ..Rules::default()
        });
        let run = |f: &mut Floor, c: Command| f.execute(c, T0).expect("setup");
        run(
            &mut f,
            Command::CreateQueue {
                id: "q".into(),
                name: "Q".into(),
                routing_steps: Vec::new(),
                hours: None,
                survey: None,
                wait_limit: None,
                service_level_ms: None,
                place_updates: None,
                overflow: None,
            },
        );
        run(
            &mut f,
            Command::CreateEntryPoint(EntryPoint {
                id: "ep".into(),
                name: "Acme Page".into(),
                queue: "q".into(),
                page_id: Some(PAGE.into()),
                page_access_token: Some("page-token".into()),

                ..Default::default()
            }),
        );
        run(
            &mut f,
            Command::CreateAgent {
                id: "a1".into(),
                name: "Ann".into(),
                queues: vec!["q".into()],
                capacity: None,
                credential: None,
                password_hash: None,

                skills: Default::default(),
            },
        );
        run(
            &mut f,
            Command::SetState {
                agent: "a1".into(),
                state: Presence::Available,
                idle_code: None,
            },
        );
        f.take_changes();
        f.take_effects();
        f
    }

    fn customer_writes(
        f: &mut Floor,
        text: &str,
        attachments: Vec<Attachment>,
        mid: &str,
        seen: bool,
        now: Millis,
    ) -> Result<Reply, CoreError> {
        f.execute(
            Command::MessengerMessage {
                page_id: PAGE.into(),
                customer: Customer {
                    id: "psid-1".into(),
                    name: placeholder_name("psid-1"),
                },
                text: text.into(),
                attachments,
                mid: Some(mid.into()),
                seen,
                last_owner: None,
                sent_at: None,
                page_echo: false,
                standby: false,
            },
            now,
        )
    }

    /// The customer writes, `a1` accepts; returns the conversation id.
    fn active(f: &mut Floor) -> String {
        let c = match customer_writes(f, "hello", vec![], "m-1", false, T0) {
            Ok(Reply::Conversation(c)) => c.id,
            other => panic!("{other:?}"),
        };
        f.execute(
            Command::Accept {
                agent: "a1".into(),
                conversation: c.clone(),
            },
            T0,
        )
        .expect("accept");
        f.take_changes();
        f.take_effects();
        c
    }

    fn delivery(f: &Floor, c: &str, seq: u64) -> Option<Delivery> {
        f.conversation(c)
            .and_then(|c| c.transcript.get(seq as usize - 1))
            .and_then(|m| m.delivery)
    }

    #[test]
    fn a_message_id_seen_before_changes_nothing() {
        let mut f = floor(false);
        let r = customer_writes(&mut f, "hi", vec![], "m-1", false, T0).unwrap();
        assert!(
            matches!(r, Reply::Conversation(ref c) if c.channel == Channel::Messenger && c.source_page == "Acme Page")
        );
        assert!(f
            .take_changes()
            .iter()
            .any(|c| matches!(c, Change::Mid { mid, .. } if mid == "m-1")));
        f.take_effects();
        assert!(matches!(
            customer_writes(&mut f, "hi", vec![], "m-1", true, T0),
            Ok(Reply::Done)
        ));
        assert!(f.take_changes().is_empty());
        assert!(f.take_effects().is_empty());
    }

    #[test]
    fn customer_messages_table() {
        let image = || {
            vec![Attachment {
                kind: "image".into(),
                url: Some("https://cdn/x.png".into()),
            }]
        };
        // (text, attachments, expected error code or None)
        let cases: Vec<(&str, Vec<Attachment>, Option<&str>)> = vec![
            ("hi", vec![], None),
            ("", image(), None),
            ("look", image(), None),
            ("", vec![], Some("invalid_input")),
        ];
        for (text, attachments, want) in cases {
            let mut f = floor(false);
            let r = customer_writes(&mut f, text, attachments.clone(), "m", false, T0);
            match (r, want) {
                (Ok(Reply::Conversation(c)), None) => {
                    let m = &c.transcript[0];
                    assert_eq!((m.text.as_str(), &m.attachments), (text, &attachments));
                    assert_eq!(m.delivery, None, "customer messages have no delivery state");
                }
                (Err(e), Some(code)) => assert_eq!(e.code(), code),
                (other, _) => panic!("{text:?}: {other:?}"),
            }
        }
        let mut f = floor(false);
        let unknown = f.execute(
            Command::MessengerMark {
                page_id: "nope".into(),
                customer: "psid-1".into(),
                watermark: T0,
                read: false,
            },
            T0,
        );
        assert_eq!(unknown.unwrap_err().code(), "unknown_page");
    }

    #[test]
    fn an_agent_reply_goes_to_the_outbox_by_the_window_rule() {
        // (hours since the customer wrote, human_agent_tag, expected)
        let cases = [
            (1, false, Ok(false)),
            (25, false, Err("outside_messaging_window")),
            (25, true, Ok(true)),
            (24 * 8, true, Err("outside_messaging_window")),
        ];
        for (hours, tag, want) in cases {
            let mut f = floor(tag);
            let c = active(&mut f);
            let now = T0 + hours * H;
            let long = vec!["word"; 600].join(" "); // 2,999 characters: two parts
            let r = f.execute(
                Command::Send {
                    agent: "a1".into(),
                    conversation: c.clone(),
                    text: long.clone(),
                },
                now,
            );
            match want {
                Ok(tagged) => {
                    let m = match r {
                        Ok(Reply::Message(m)) => m,
                        other => panic!("{hours}h: {other:?}"),
                    };
                    assert_eq!(m.delivery, Some(Delivery::Pending));
                    let changes = f.take_changes();
                    let outbox: Vec<_> = changes
                        .iter()
                        .filter_map(|c| match c {
                            Change::Outbox(o) => Some(o),
                            _ => None,
                        })
                        .collect();
                    assert_eq!(outbox.len(), 1, "{hours}h");
                    let o = outbox[0];
                    assert_eq!(
                        (o.seq, o.recipient.as_str(), o.page_id.as_str()),
                        (m.seq, "psid-1", PAGE)
                    );
                    assert_eq!(o.human_agent_tag, tagged);
                    assert_eq!(o.parts.len(), 2);
                    assert!(f.take_effects().iter().any(|e| matches!(e, Effect::Send(s) if s == o)));
                }
                Err(code) => {
                    assert_eq!(r.unwrap_err().code(), code, "{hours}h");
                    assert!(f.take_changes().is_empty());
                }
            }
        }
    }

    #[test]
    fn delivery_moves_forward_only_and_tells_the_agents() {
        let mut f = floor(false);
        let c = active(&mut f);
        let send = |f: &mut Floor, text: &str, at: Millis| match f.execute(
            Command::Send {
                agent: "a1".into(),
                conversation: c.clone(),
                text: text.into(),
            },
            at,
        ) {
            Ok(Reply::Message(m)) => m,
            other => panic!("{other:?}"),
        };
        let first = send(&mut f, "one", T0 + 10);
        let second = send(&mut f, "two", T0 + 20);
        let entry = |m: &Message| Outbound {
            conversation: c.clone(),
            seq: m.seq,
            recipient: "psid-1".into(),
            page_id: PAGE.into(),
            parts: vec![m.text.clone()],
            parts_sent: 0,
            human_agent_tag: false,
            queued_at: m.at,
            file: None,
            thread: None,
            quick_replies: Vec::new(),
        };
        f.take_changes();
        f.take_effects();
        let report = |f: &mut Floor, m: &Message, outcome: OutboxOutcome| {
            f.execute(
                Command::OutboxReport {
                    entry: entry(m),
                    outcome,
                },
                T0 + 30,
            )
            .unwrap();
        };
        let mark = |f: &mut Floor, watermark: Millis, read: bool| {
            f.execute(
                Command::MessengerMark {
                    page_id: PAGE.into(),
                    customer: "psid-1".into(),
                    watermark,
                    read,
                },
                T0 + 40,
            )
            .unwrap();
        };
        // The first goes out at T0 + 12 (when its request started).
        report(&mut f, &first, OutboxOutcome::Sent { at: T0 + 12 });
        let changes = f.take_changes();
        assert!(changes
            .iter()
            .any(|c| matches!(c, Change::OutboxDone { seq, .. } if *seq == first.seq)));
        assert!(changes
            .iter()
            .any(|c| matches!(c, Change::MessageUpdate { message, .. } if message.delivery == Some(Delivery::Sent))));
        assert!(f.take_effects().iter().any(|e| matches!(e,
            Effect::Notify { agent, event: AgentEvent::MessageStatus { seq, delivery: Delivery::Sent, .. } } if agent == "a1" && *seq == first.seq)));
        // A watermark before the send marks nothing; one after it marks only what was
        // sent: the second message, still pending in the outbox, is not marked.
        mark(&mut f, T0 + 11, false);
        assert_eq!(delivery(&f, &c, first.seq), Some(Delivery::Sent));
        mark(&mut f, T0 + 25, false);
        assert_eq!(delivery(&f, &c, first.seq), Some(Delivery::Delivered));
        assert_eq!(delivery(&f, &c, second.seq), Some(Delivery::Pending));
        mark(&mut f, T0 + 25, true);
        assert_eq!(delivery(&f, &c, first.seq), Some(Delivery::Read));
        assert_eq!(delivery(&f, &c, second.seq), Some(Delivery::Pending));
        // A delivery mark after `read` does not take it back.
        f.take_changes();
        mark(&mut f, T0 + 26, false);
        assert_eq!(delivery(&f, &c, first.seq), Some(Delivery::Read));
        assert!(f.take_changes().is_empty());
        // The second fails for good after the watermarks: it is failed, never read, and
        // no later mark changes that.
        report(
            &mut f,
            &second,
            OutboxOutcome::Failed {
                error: "bad token".into(),
            },
        );
        mark(&mut f, T0 + 1_000, true);
        let m = &f.conversation(&c).unwrap().transcript[second.seq as usize - 1];
        assert_eq!(
            (m.delivery, m.delivery_error.as_deref()),
            (Some(Delivery::Failed), Some("bad token"))
        );
        // A late `sent` report never moves a message back.
        let third = send(&mut f, "three", T0 + 50);
        report(&mut f, &third, OutboxOutcome::Sent { at: T0 + 51 });
        mark(&mut f, T0 + 60, true);
        f.take_changes();
        report(&mut f, &third, OutboxOutcome::Sent { at: T0 + 70 });
        assert_eq!(delivery(&f, &c, third.seq), Some(Delivery::Read));
        assert!(!f
            .take_changes()
            .iter()
            .any(|c| matches!(c, Change::MessageUpdate { .. })));
    }

    /// The outbox entries and the delivery of the last message written.
    fn last_outbound(f: &mut Floor, c: &str) -> (Vec<Outbound>, Option<Delivery>) {
        let outbox = f
            .take_changes()
            .into_iter()
            .filter_map(|ch| match ch {
                Change::Outbox(o) => Some(o),
                _ => None,
            })
            .collect();
        f.take_effects();
        let last = f
            .conversation(c)
            .and_then(|c| c.transcript.last())
            .and_then(|m| m.delivery);
        (outbox, last)
    }

    /// A customer message in standby: refused (`thread_of_another_app`, nothing changed)
    /// with thread control `off`; with `take`, taken in, and a `take_thread_control`
    /// entry in the outbox under the message's seq. Ending passes the thread back to
    /// `return_to_app_id`, after every message; a handover opens a conversation whose
    /// first message is a system note the customer is not sent.
    #[test]
    fn threads_of_another_app_are_taken_and_passed_back() {
        let mut f = floor(false);
        let standby = |f: &mut Floor, mid: &str, psid: &str| {
            f.execute(
                Command::MessengerMessage {
                    page_id: PAGE.into(),
                    customer: Customer {
                        id: psid.into(),
                        name: placeholder_name(psid),
                    },
                    text: "to the bot".into(),
                    attachments: vec![],
                    mid: Some(mid.into()),
                    seen: false,
                    last_owner: None,
                    sent_at: None,
                    page_echo: false,
                    standby: true,
                },
                T0,
            )
        };
        assert_eq!(
            standby(&mut f, "m-s0", "psid-1").map(|_| ()),
            Err(CoreError::ThreadOfAnotherApp(PAGE.into()))
        );
        assert!(f.take_changes().is_empty());
        let set = |f: &mut Floor, tc, app: Option<&str>| {
            f.execute(
                Command::Messenger(MessengerCommand::SetThreadControl {
                    entry_point: "ep".into(),
                    thread_control: tc,
                    return_to_app_id: app.map(String::from),
                }),
                T0,
            )
        };
        assert!(matches!(
            set(&mut f, ThreadControl::Take, Some("../x")),
            Err(CoreError::InvalidInput(_))
        ));
        set(&mut f, ThreadControl::Take, Some("263902037430900")).expect("set");
        f.take_changes();
        let c = match standby(&mut f, "m-s1", "psid-1") {
            Ok(Reply::Conversation(c)) => c.id,
            other => panic!("{other:?}"),
        };
        let (outbox, _) = last_outbound(&mut f, &c);
        assert_eq!(outbox.len(), 1);
        assert_eq!(outbox[0].seq, 1);
        assert!(
            matches!(outbox[0].thread.as_deref(), Some(ThreadCall::Take { .. })),
            "{outbox:?}"
        );
        assert_eq!(outbox[0].steps(), 1);
        f.execute(
            Command::Accept {
                agent: "a1".into(),
                conversation: c.clone(),
            },
            T0,
        )
        .expect("accept");
        f.execute(
            Command::Send {
                agent: "a1".into(),
                conversation: c.clone(),
                text: "hi".into(),
            },
            T0,
        )
        .expect("send");
        f.take_changes();
        f.take_effects();
        f.execute(
            Command::End {
                agent: "a1".into(),
                conversation: c.clone(),
            },
            T0,
        )
        .expect("end");
        let (outbox, _) = last_outbound(&mut f, &c);
        assert_eq!(outbox.len(), 1, "{outbox:?}");
        assert_eq!(outbox[0].seq, PASS_THREAD_SEQ);
        assert_eq!(
            outbox[0].thread.as_deref(),
            Some(&ThreadCall::Pass {
                target_app_id: "263902037430900".into(),
                metadata: format!("conversation {c} ended: agent_ended"),
            })
        );
        // A handover opens a conversation with a note; the customer is sent nothing.
        // (a1 owes a wrap-up: a2 takes the offer.)
        f.execute(
            Command::CreateAgent {
                id: "a2".into(),
                name: "Bob".into(),
                queues: vec!["q".into()],
                capacity: None,
                credential: None,
                password_hash: None,
                skills: Default::default(),
            },
            T0,
        )
        .expect("a2");
        f.execute(
            Command::SetState {
                agent: "a2".into(),
                state: Presence::Available,
                idle_code: None,
            },
            T0,
        )
        .expect("available");
        f.take_changes();
        f.take_effects();
        let passed = f
            .execute(
                Command::Messenger(MessengerCommand::ThreadPassed {
                    page_id: PAGE.into(),
                    customer: Customer {
                        id: "psid-2".into(),
                        name: placeholder_name("psid-2"),
                    },
                    metadata: "VIP".into(),
                    sent_at: None,
                }),
                T0,
            )
            .expect("handover");
        assert!(matches!(passed, Reply::Done), "{passed:?}");
        let changes = f.take_changes();
        assert!(!changes.iter().any(|c| matches!(c, Change::Outbox(_))), "{changes:?}");
        let id = f.open_conversation_of("ep", "psid-2").cloned().expect("opened");
        let conv = f.conversation(&id).expect("held");
        assert_eq!(conv.transcript[0].author.kind, AuthorKind::System);
        assert_eq!(conv.first_text(), "Handed over by another app: VIP");
        let offered = f.take_effects().into_iter().any(|e| {
            matches!(e, Effect::Notify { event: AgentEvent::Offer { conversation, .. }, .. }
                if conversation.transcript[0].author.kind == AuthorKind::System)
        });
        assert!(offered, "the offer's snapshot shows the note as a system message");
    }

    /// An agent's file: a message with the attachment and no text, and an outbox entry
    /// carrying the file (one step); refused as a text would be.
    #[test]
    fn an_agents_file_goes_to_the_outbox() {
        let mut f = floor(false);
        let c = active(&mut f);
        let file = |id: &str| OutboundFile {
            id: id.into(),
            kind: "image".into(),
            content_type: "image/png".into(),
            name: "a.png".into(),
        };
        let send = |f: &mut Floor, agent: &str, id: &str| {
            f.execute(
                Command::Messenger(MessengerCommand::SendFile {
                    agent: agent.into(),
                    conversation: c.clone(),
                    attachment: Box::new(Attachment {
                        kind: "image".into(),
                        url: Some("/files/x/a.png".into()),
                    }),
                    file: Box::new(file(id)),
                }),
                T0,
            )
        };
        let good = "0123456789abcdef0123456789abcdef";
        assert!(matches!(send(&mut f, "a1", "../x"), Err(CoreError::InvalidInput(_))));
        assert!(matches!(send(&mut f, "a2", good), Err(CoreError::UnknownAgent(_))));
        let m = match send(&mut f, "a1", good) {
            Ok(Reply::Message(m)) => m,
            other => panic!("{other:?}"),
        };
        assert_eq!(m.text, "");
        assert_eq!(m.attachments.len(), 1);
        assert_eq!(m.delivery, Some(Delivery::Pending));
        let (outbox, _) = last_outbound(&mut f, &c);
        assert_eq!(outbox.len(), 1);
        assert_eq!(outbox[0].file.as_deref(), Some(&file(good)));
        assert!(outbox[0].parts.is_empty());
        assert_eq!(outbox[0].steps(), 1);
        assert_eq!(attachment_kind("video/mp4"), "video");
        assert_eq!(attachment_kind("AUDIO/ogg"), "audio");
        assert_eq!(attachment_kind("application/pdf"), "file");
    }

    #[test]
    fn only_an_agents_words_use_the_human_agent_tag() {
        // (hours since the customer wrote, expected delivery of the system text "joined")
        let cases = [
            (1, Delivery::Pending),
            (25, Delivery::NotSent),
            (24 * 8, Delivery::NotSent),
        ];
        for (hours, want) in cases {
            let mut f = floor(true);
            let c = active(&mut f);
            f.execute(
                Command::CreateAgent {
                    id: "a2".into(),
                    name: "Bob".into(),
                    queues: vec!["q".into()],
                    capacity: None,
                    credential: None,
                    password_hash: None,
                    skills: Default::default(),
                },
                T0,
            )
            .unwrap();
            let now = T0 + hours * H;
            let run = |f: &mut Floor, cmd: Command| f.execute(cmd, now).unwrap();
            run(
                &mut f,
                Command::SetState {
                    agent: "a2".into(),
                    state: crate::core::Presence::Available,
                    idle_code: None,
                },
            );
            run(
                &mut f,
                Command::Conference {
                    agent: "a1".into(),
                    conversation: c.clone(),
                    target: "a2".into(),
                    note: None,
                },
            );
            f.take_changes();
            run(
                &mut f,
                Command::Accept {
                    agent: "a2".into(),
                    conversation: c.clone(),
                },
            );
            let (outbox, delivery) = last_outbound(&mut f, &c);
            assert_eq!(delivery, Some(want), "{hours}h");
            assert_eq!(outbox.len(), usize::from(want == Delivery::Pending), "{hours}h");
            assert!(outbox.iter().all(|o| !o.human_agent_tag), "{hours}h");
            if hours == 25 {
                // The agent's own words may still go out, tagged.
                run(
                    &mut f,
                    Command::Send {
                        agent: "a1".into(),
                        conversation: c.clone(),
                        text: "still here".into(),
                    },
                );
                let (outbox, delivery) = last_outbound(&mut f, &c);
                assert_eq!(delivery, Some(Delivery::Pending));
                assert!(outbox.len() == 1 && outbox[0].human_agent_tag);
            }
        }
    }

    #[test]
    fn the_window_counts_from_metas_timestamp_and_long_texts_are_kept_cut() {
        let mut f = floor(false);
        let write = |f: &mut Floor, mid: &str, text: &str, sent_at: Option<Millis>, now: Millis| {
            f.execute(
                Command::MessengerMessage {
                    page_id: PAGE.into(),
                    customer: Customer {
                        id: "psid-1".into(),
                        name: "Jane".into(),
                    },
                    text: text.into(),
                    attachments: vec![],
                    mid: Some(mid.into()),
                    seen: false,
                    last_owner: None,
                    sent_at,
                    page_echo: false,
                    standby: false,
                },
                now,
            )
        };
        // Stamped 25 hours before it arrives: the window is closed already.
        let now = T0 + 25 * H;
        let c = match write(&mut f, "m-1", "late", Some(T0), now) {
            Ok(Reply::Conversation(c)) => c,
            other => panic!("{other:?}"),
        };
        assert_eq!(c.transcript[0].at, T0);
        assert_eq!(window(c.last_customer_message_at(), now, false), Window::Closed);
        // A clock ahead of ours does not lengthen the window; a redelivered older message
        // does not shorten it.
        let c = match write(&mut f, "m-2", "ahead", Some(now + H), now) {
            Ok(Reply::Conversation(c)) => c,
            other => panic!("{other:?}"),
        };
        assert_eq!(c.transcript[1].at, now);
        let c = match write(&mut f, "m-3", "older", Some(T0 + H), now) {
            Ok(Reply::Conversation(c)) => c,
            other => panic!("{other:?}"),
        };
        assert_eq!(c.last_customer_message_at(), Some(now));
        // Over the bound: kept, cut, marked, in the transcript and in what is stored.
        let long = "y".repeat(MAX_TEXT_CHARS + 5);
        let c = match write(&mut f, "m-4", &long, None, now) {
            Ok(Reply::Conversation(c)) => c,
            other => panic!("{other:?}"),
        };
        let m = c.transcript.last().unwrap();
        assert_eq!((m.text.chars().count(), m.truncated), (MAX_TEXT_CHARS, true));
        assert!(f
            .take_changes()
            .iter()
            .any(|ch| matches!(ch, Change::Message { message, .. } if message.truncated && message.at == now)));
    }

    #[test]
    fn a_refused_token_pauses_the_page_until_a_new_one() {
        let mut f = floor(false);
        let page = |f: &mut Floor, cmd: MessengerCommand| f.execute(Command::Messenger(cmd), T0);
        let state = |f: &Floor| f.entry_point("ep").expect("ep").messenger.channel_state;
        page(&mut f, MessengerCommand::PageUnauthorized { page_id: PAGE.into() }).unwrap();
        assert_eq!(state(&f), ChannelState::Unauthorized);
        let effects = f.take_effects();
        assert!(
            matches!(
                &effects[..],
                [Effect::Page(PageNote {
                    state: ChannelState::Unauthorized,
                    ..
                })]
            ),
            "{effects:?}"
        );
        assert!(f
            .take_changes()
            .iter()
            .any(|c| matches!(c, Change::EntryPoint(e) if e.messenger.channel_state == ChannelState::Unauthorized)));
        // Twice is once.
        page(&mut f, MessengerCommand::PageUnauthorized { page_id: PAGE.into() }).unwrap();
        assert!(f.take_changes().is_empty());
        for bad in ["", "a b", "tok\nen"] {
            let r = page(
                &mut f,
                MessengerCommand::SetPageToken {
                    entry_point: "ep".into(),
                    token: bad.to_string(),
                },
            );
            assert_eq!(r.unwrap_err().code(), "invalid_input", "{bad:?}");
        }
        let r = page(
            &mut f,
            MessengerCommand::SetPageToken {
                entry_point: "nope".into(),
                token: "t".into(),
            },
        );
        assert_eq!(r.unwrap_err().code(), "unknown_entry_point");
        assert!(f.take_changes().is_empty());
        page(
            &mut f,
            MessengerCommand::SetPageToken {
                entry_point: "ep".into(),
                token: "new-token".into(),
            },
        )
        .unwrap();
        assert_eq!(state(&f), ChannelState::Ok);
        assert_eq!(
            f.entry_point("ep").expect("ep").page_access_token.as_deref(),
            Some("new-token")
        );
        let effects = f.take_effects();
        assert!(
            matches!(&effects[..], [Effect::Page(PageNote { state: ChannelState::Ok, token: Some(t), .. })] if t == "new-token"),
            "{effects:?}"
        );
        // A second entry point may not take the page.
        let r = f.execute(
            Command::CreateEntryPoint(crate::core::EntryPoint {
                id: "ep2".into(),
                name: "Copy".into(),
                queue: "q".into(),
                page_id: Some(PAGE.into()),
                ..Default::default()
            }),
            T0,
        );
        assert_eq!(r.unwrap_err().code(), "page_in_use");
    }

    #[test]
    fn profile_look_ups_are_tried_again_after_a_backoff_and_bounded() {
        let key = |i: u32| ("page".to_string(), format!("psid-{i}"));
        let mut l = ProfileLookups::new(3, 1_000, 4_000);
        assert!(l.start(&key(1), 0));
        assert!(!l.start(&key(1), 10), "under way");
        l.ended(&key(1), false, 100);
        assert!(!l.start(&key(1), 500), "backing off");
        assert!(l.start(&key(1), 1_100));
        l.ended(&key(1), false, 1_200);
        assert!(!l.start(&key(1), 3_000), "twice the wait");
        assert!(l.start(&key(1), 3_200));
        l.ended(&key(1), true, 3_300);
        assert!(l.is_empty(), "a found name is the store's");
        for i in 0..10 {
            assert!(l.start(&key(i), 4_000));
        }
        assert_eq!(l.len(), 3);
        // The oldest were forgotten: asking for one of them starts again.
        assert!(l.start(&key(0), 4_000));
        assert!(!l.start(&key(9), 4_000));
    }

    #[test]
    fn typing_and_seen_are_bounded() {
        let mut f = floor(false);
        let c = active(&mut f);
        let act = |f: &mut Floor, agent: &str, typing: Option<bool>, now: Millis| {
            let r = f.execute(
                Command::Messenger(MessengerCommand::SenderAction {
                    agent: agent.into(),
                    conversation: c.clone(),
                    typing,
                }),
                now,
            );
            let sent: Vec<SenderAction> = f
                .take_effects()
                .into_iter()
                .filter_map(|e| match e {
                    Effect::SenderAction { action, .. } => Some(action),
                    _ => None,
                })
                .collect();
            (r.map(|_| ()).map_err(|e| e.code()), sent)
        };
        use SenderAction::*;
        // (agent, typing, at, sent)
        let steps = [
            ("a1", Some(true), T0, vec![TypingOn]),
            ("a1", Some(true), T0 + 1_000, vec![]),
            ("a1", Some(false), T0 + 1_500, vec![TypingOff]),
            ("a1", Some(false), T0 + 2_000, vec![]),
            ("a1", Some(true), T0 + 2_100, vec![TypingOn]),
            ("a1", Some(true), T0 + 2_100 + TYPING_EVERY_MS, vec![TypingOn]),
            ("a1", None, T0 + 6_000, vec![MarkSeen]),
            ("a1", None, T0 + 7_000, vec![]),
        ];
        for (i, (agent, typing, at, want)) in steps.into_iter().enumerate() {
            assert_eq!(act(&mut f, agent, typing, at), (Ok(()), want), "step {i}");
        }
        assert_eq!(act(&mut f, "a2", Some(true), T0 + 8_000).0, Err("not_in_conversation"));
        // A new customer message may be marked seen again; outside the window, nothing.
        customer_writes(&mut f, "more", vec![], "m-2", false, T0 + 9_000).unwrap();
        assert_eq!(act(&mut f, "a1", None, T0 + 9_500), (Ok(()), vec![MarkSeen]));
        customer_writes(&mut f, "again", vec![], "m-3", false, T0 + 10_000).unwrap();
        assert_eq!(act(&mut f, "a1", None, T0 + 10_000 + 25 * H), (Ok(()), vec![]));
    }

    #[test]
    fn webhook_rules_table() {
        for (id, ok) in [
            ("1254459154682919", true),
            ("", false),
            ("../me", false),
            ("12\n3", false),
            ("1a", false),
        ] {
            assert_eq!(valid_graph_id(id), ok, "{id:?}");
        }
        assert!(!valid_graph_id(&"9".repeat(33)));
        assert_eq!(meta_time(None, 50), 50);
        assert_eq!(meta_time(Some(40), 50), 40);
        assert_eq!(meta_time(Some(60), 50), 50);
        assert_eq!(truncate("héllo", 2), ("hé".to_string(), true));
        assert_eq!(truncate("hé", 2), ("hé".to_string(), false));
        // (retries began, now, attempts, max attempts, give up)
        let hour = 3_600_000;
        for (first, now, attempts, max, want) in [
            (0, 1_000, 3, 0, false),
            (0, hour, 3, 0, true),
            (0, 1_000, 5, 5, true),
            (0, 1_000, 4, 5, false),
        ] {
            assert_eq!(
                give_up(first, now, hour, attempts, max),
                want,
                "{first} {now} {attempts} {max}"
            );
        }
        assert_eq!(postback_key(Some("m"), "1", Some(2), "p"), "postback:m");
        assert_ne!(
            postback_key(None, "1", Some(2), "p"),
            postback_key(None, "1", Some(2), "q")
        );
    }

    #[test]
    fn a_name_that_arrives_later_updates_the_open_conversation() {
        let mut f = floor(false);
        let c = active(&mut f);
        f.execute(
            Command::SetCustomerName {
                page_id: PAGE.into(),
                customer: "psid-1".into(),
                name: "Jane Doe".into(),
            },
            T0,
        )
        .unwrap();
        assert_eq!(f.conversation(&c).unwrap().customer.name, "Jane Doe");
        let changes = f.take_changes();
        assert!(changes
            .iter()
            .any(|ch| matches!(ch, Change::CustomerName { name, .. } if name == "Jane Doe")));
        assert!(changes
            .iter()
            .any(|ch| matches!(ch, Change::Conversation(conv) if conv.customer.name == "Jane Doe")));
    }

    #[test]
    fn the_window_decides_response_tag_or_refusal() {
        const H: Millis = 60 * 60 * 1000;
        let t0 = 1_000 * H;
        let cases = [
            // (last customer message, now, tag on, expected)
            (None, t0, false, Window::Response),
            (Some(t0), t0, false, Window::Response),
            (Some(t0), t0 + 24 * H, false, Window::Response),
            (Some(t0), t0 + 24 * H + 1, false, Window::Closed),
            (Some(t0), t0 + 24 * H + 1, true, Window::HumanAgentTag),
            (Some(t0), t0 + 7 * 24 * H, true, Window::HumanAgentTag),
            (Some(t0), t0 + 7 * 24 * H + 1, true, Window::Closed),
        ];
        for (last, now, tag, want) in cases {
            assert_eq!(window(last, now, tag), want, "{last:?} {now} {tag}");
        }
    }

    #[test]
    fn long_texts_split_at_whitespace_in_order() {
        let word = "abcd";
        let cases: Vec<(String, usize, Vec<String>)> = vec![
            ("hello".into(), 10, vec!["hello".into()]),
            ("".into(), 10, vec![]),
            ("aaa bbb ccc".into(), 7, vec!["aaa bbb".into(), "ccc".into()]),
            ("aaa bbb ccc".into(), 8, vec!["aaa bbb".into(), "ccc".into()]),
            ("aaaaaaaaaa".into(), 4, vec!["aaaa".into(), "aaaa".into(), "aa".into()]),
            ("é é é".into(), 3, vec!["é é".into(), "é".into()]),
        ];
        for (text, limit, want) in cases {
            assert_eq!(split_text(&text, limit), want, "{text:?} at {limit}");
        }
        let long = vec![word; 1_000].join(" "); // 4,999 characters
        let parts = split_text(&long, SEND_TEXT_LIMIT);
        assert_eq!(parts.len(), 3);
        assert!(parts.iter().all(|p| p.chars().count() <= SEND_TEXT_LIMIT));
        assert_eq!(parts.join(" "), long);
    }

    #[test]
    fn placeholders_are_stable_per_customer() {
        assert_eq!(placeholder_name("1254459154682919"), "Messenger user 2919");
        assert_eq!(placeholder_name("12"), "Messenger user 12");
    }
}
