//! Events out (../shared/API.md "Reports and events out"; docs/WEBHOOKS.md): webhook
//! subscriptions, which events each one gets and with what body, and the delivery rules
//! that the sender (`crate::webhooks`) carries out: the retry backoff, when a
//! subscription counts as failing, and how far its backlog may grow.
//!
//! An event is made in the commit of what caused it ([`Subscriptions::events`] at the
//! floor's take), durable in the same atomic batch, so a crash neither loses one that
//! the engine acknowledged nor makes one for what it did not. Events are numbered in one
//! sequence per tenant; each subscription has a cursor ([`Webhook::delivered_through`]):
//! every event up to it is done for it. An event leaves the store once every
//! subscription's cursor has passed it ([`Subscriptions::trim`]).

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::event::{Change, Effect, Observation};
use super::{valid_id, Conversation, CoreError, Millis};

/// Most subscriptions one tenant keeps.
pub const MAX_WEBHOOKS: usize = 20;
/// Longest URL, in bytes.
pub const MAX_URL_BYTES: usize = 2_048;
/// Shortest and longest signing secret, in bytes.
pub const MIN_SECRET_BYTES: usize = 16;
pub const MAX_SECRET_BYTES: usize = 256;

/// The kinds of event a subscription may ask for; the wire names are API.md's.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    strum::IntoStaticStr,
    strum::EnumIter,
    strum::EnumString,
)]
pub enum EventKind {
    #[serde(rename = "conversation.created")]
    #[strum(serialize = "conversation.created")]
    ConversationCreated,
    #[serde(rename = "conversation.offered")]
    #[strum(serialize = "conversation.offered")]
    ConversationOffered,
    #[serde(rename = "conversation.accepted")]
    #[strum(serialize = "conversation.accepted")]
    ConversationAccepted,
    #[serde(rename = "conversation.transferred")]
    #[strum(serialize = "conversation.transferred")]
    ConversationTransferred,
    #[serde(rename = "conversation.ended")]
    #[strum(serialize = "conversation.ended")]
    ConversationEnded,
    #[serde(rename = "conversation.wrapped_up")]
    #[strum(serialize = "conversation.wrapped_up")]
    ConversationWrappedUp,
    #[serde(rename = "message.created")]
    #[strum(serialize = "message.created")]
    MessageCreated,
    #[serde(rename = "agent.state_changed")]
    #[strum(serialize = "agent.state_changed")]
    AgentStateChanged,
    #[serde(rename = "conversation.rated")]
    #[strum(serialize = "conversation.rated")]
    ConversationRated,
}

impl EventKind {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// Why a subscription is failing: its deliveries have failed `failures` times in a row
/// ([`FAILING_AFTER`] or more) since `since`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failing {
    pub since: Millis,
    /// The last failure: an HTTP status or a connection error, as the sender saw it.
    pub error: String,
}

/// One subscription: where events go, which ones, and how far delivery got.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Webhook {
    pub id: String,
    pub url: String,
    /// The kinds it gets, sorted, without repeats, never empty.
    pub events: Vec<EventKind>,
    /// The HMAC-SHA256 key of `X-Switchboard-Signature-256` (never shown back).
    pub secret: String,
    pub created_at: Millis,
    /// The first event it gets: the events made before it existed are not its own.
    pub first_seq: u64,
    /// Every event up to this one is done for it (delivered, or dropped past the bound).
    pub delivered_through: u64,
    /// Events dropped because its backlog reached [`Delivery::max_backlog`].
    pub dropped: u64,
    /// `Some` while its deliveries keep failing.
    pub failing: Option<Failing>,
}

impl Webhook {
    /// Whether it gets event `seq` of kind `kind` and has not done it yet.
    pub fn wants(&self, seq: u64, kind: EventKind) -> bool {
        seq >= self.first_seq && seq > self.delivered_through && self.events.binary_search(&kind).is_ok()
    }
}

/// One event on its way out: its body is what is POSTed, as made in its commit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookEvent {
    /// Its number in the tenant's sequence, also its `id` on the wire.
    pub seq: u64,
    pub kind: EventKind,
    /// What it is ordered by: the conversation's id, or the agent's for agent events.
    /// Events with the same key are delivered in `seq` order.
    pub key: String,
    pub at: Millis,
    /// The JSON body.
    pub body: String,
}

/// A new subscription, as the admin asks for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewWebhook {
    pub id: String,
    pub url: String,
    pub events: Vec<EventKind>,
    pub secret: String,
}

/// What the sender tells of one subscription's progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    pub delivered_through: u64,
    /// Dropped since the last report.
    pub dropped: u64,
    /// `Some` when it is failing now; `None` when its last delivery went through.
    pub failing: Option<Failing>,
}

/// A tenant's subscriptions and its event sequence.
#[derive(Debug, Clone, Default)]
pub struct Subscriptions {
    hooks: BTreeMap<String, Webhook>,
    /// The number of the last event made (0: none yet).
    last_seq: u64,
    /// Every event up to this one is gone from the store.
    trimmed_through: u64,
}

/// Checks a subscription's URL: `http` or `https`, with a host, at most
/// [`MAX_URL_BYTES`]; and, unless `allow_private`, no address of the host (`addresses`,
/// as resolved by the caller) that is loopback, private, link-local or otherwise not on
/// the public internet.
pub fn check_url(url: &str, addresses: &[IpAddr], allow_private: bool) -> Result<(), CoreError> {
    if url.len() > MAX_URL_BYTES {
        return Err(CoreError::InvalidInput(format!(
            "url is longer than {MAX_URL_BYTES} bytes"
        )));
    }
    let parsed = url::Url::parse(url).map_err(|e| CoreError::InvalidInput(format!("url: {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(CoreError::InvalidInput("url must be http or https".into()));
    }
    if parsed.host_str().map_or(true, str::is_empty) {
        return Err(CoreError::InvalidInput("url has no host".into()));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(CoreError::InvalidInput("url must not carry credentials".into()));
    }
    if allow_private {
        return Ok(());
    }
    if addresses.is_empty() {
        return Err(CoreError::InvalidInput("url's host has no address".into()));
    }
    match addresses.iter().find(|a| !is_public(**a)) {
        Some(a) => Err(CoreError::PrivateAddress(a.to_string())),
        None => Ok(()),
    }
}

/// Whether `ip` is an address on the public internet (not loopback, private, link-local,
/// shared (CGNAT), unspecified, multicast, broadcast, documentation or unique-local).
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_multicast()
                || v4.is_broadcast()
                || v4.is_documentation()
                || o[0] == 0
                || (o[0] == 100 && (o[1] & 0xc0) == 64)
                || (o[0] == 192 && o[1] == 0 && o[2] == 0)
                || (o[0] == 198 && (o[1] & 0xfe) == 18)
                || o[0] >= 240)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let s = v6.segments();
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00
                || (s[0] & 0xffc0) == 0xfe80
                || (s[0] == 0x2001 && s[1] == 0x0db8))
        }
    }
}

/// The sender's rules of delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivery {
    /// The first retry's delay; each next one doubles, up to `retry_max_ms`.
    pub retry_base_ms: u64,
    pub retry_max_ms: u64,
    /// Most events one subscription's backlog holds; past it, its oldest are dropped.
    pub max_backlog: usize,
}

/// Failures in a row after which a subscription counts as failing.
pub const FAILING_AFTER: u32 = 5;

impl Delivery {
    /// How long to wait before attempt `failures + 1` of an event that failed `failures`
    /// times (1 or more): `retry_base_ms` doubled each time, at most `retry_max_ms`.
    pub fn retry_delay_ms(&self, failures: u32) -> u64 {
        let doublings = failures.saturating_sub(1).min(32);
        self.retry_base_ms
            .saturating_mul(1u64 << doublings)
            .min(self.retry_max_ms)
    }

    /// Whether `failures` in a row make a subscription failing.
    pub fn is_failing(failures: u32) -> bool {
        failures >= FAILING_AFTER
    }
}

impl Subscriptions {
    /// The subscriptions and the sequence as stored: `events` are the stored events (the
    /// highest numbers the sequence), `trimmed_through` the store's trim mark.
    pub fn restore(hooks: Vec<Webhook>, last_event: Option<u64>, trimmed_through: u64) -> Subscriptions {
        let hooks: BTreeMap<String, Webhook> = hooks.into_iter().map(|h| (h.id.clone(), h)).collect();
        let last_cursor = hooks.values().map(|h| h.delivered_through).max().unwrap_or(0);
        Subscriptions {
            last_seq: last_event.unwrap_or(0).max(trimmed_through).max(last_cursor),
            hooks,
            trimmed_through,
        }
    }

    /// Whether any subscription exists (no events are made otherwise).
    pub fn any(&self) -> bool {
        !self.hooks.is_empty()
    }

    pub fn get(&self, id: &str) -> Option<&Webhook> {
        self.hooks.get(id)
    }

    /// Every subscription, by id.
    pub fn all(&self) -> impl Iterator<Item = &Webhook> {
        self.hooks.values()
    }

    /// Whether some subscription asks for `kind`.
    fn wanted(&self, kind: EventKind) -> bool {
        self.hooks.values().any(|h| h.events.binary_search(&kind).is_ok())
    }

    /// Adds a subscription (its URL checked by the caller with [`check_url`]). It gets
    /// the events made from now on.
    pub fn create(&mut self, new: NewWebhook, now: Millis) -> Result<(Webhook, Vec<Change>), CoreError> {
        if !valid_id(&new.id) {
            return Err(CoreError::InvalidInput(
                "id must be 1 to 64 characters from A-Z a-z 0-9 _ . -".into(),
            ));
        }
        if self.hooks.contains_key(&new.id) {
            return Err(CoreError::AlreadyExists {
                kind: "webhook",
                id: new.id,
            });
        }
        if self.hooks.len() >= MAX_WEBHOOKS {
            return Err(CoreError::TenantLimit {
                limit: "webhooks",
                max: MAX_WEBHOOKS as u32,
            });
        }
        if !(MIN_SECRET_BYTES..=MAX_SECRET_BYTES).contains(&new.secret.len()) {
            return Err(CoreError::InvalidInput(format!(
                "secret must be {MIN_SECRET_BYTES} to {MAX_SECRET_BYTES} bytes"
            )));
        }
        let mut events = new.events;
        events.sort();
        events.dedup();
        if events.is_empty() {
            return Err(CoreError::InvalidInput("events must name at least one event".into()));
        }
        let hook = Webhook {
            id: new.id,
            url: new.url,
            events,
            secret: new.secret,
            created_at: now,
            first_seq: self.last_seq + 1,
            delivered_through: self.last_seq,
            dropped: 0,
            failing: None,
        };
        self.hooks.insert(hook.id.clone(), hook.clone());
        let mut changes = vec![Change::Webhook(Box::new(hook.clone()))];
        changes.extend(self.trim());
        Ok((hook, changes))
    }

    /// Removes a subscription; the events only it still needed leave the store.
    pub fn remove(&mut self, id: &str) -> Result<Vec<Change>, CoreError> {
        if self.hooks.remove(id).is_none() {
            return Err(CoreError::UnknownWebhook(id.into()));
        }
        let mut changes = vec![Change::WebhookRemoved(id.into())];
        changes.extend(self.trim());
        Ok(changes)
    }

    /// The sender's report on `id`. The cursor only moves forward; a report on a
    /// subscription that is gone changes nothing. Returns the changes, or none when
    /// nothing moved.
    pub fn progress(&mut self, id: &str, p: Progress) -> Vec<Change> {
        let last_seq = self.last_seq;
        let Some(h) = self.hooks.get_mut(id) else {
            return Vec::new();
        };
        let through = p.delivered_through.min(last_seq).max(h.delivered_through);
        let failing = match (&h.failing, p.failing) {
            // Still failing: it has failed since the first time, with the latest error.
            (Some(was), Some(now)) => Some(Failing {
                since: was.since,
                error: now.error,
            }),
            (_, now) => now,
        };
        if through == h.delivered_through && p.dropped == 0 && failing == h.failing {
            return Vec::new();
        }
        h.delivered_through = through;
        h.dropped += p.dropped;
        h.failing = failing;
        let mut changes = vec![Change::Webhook(Box::new(h.clone()))];
        changes.extend(self.trim());
        changes
    }

    /// The events every subscription is done with leave the store: those up to the
    /// lowest cursor (every event made so far when there is no subscription).
    fn trim(&mut self) -> Option<Change> {
        let through = self
            .hooks
            .values()
            .map(|h| h.delivered_through)
            .min()
            .unwrap_or(self.last_seq);
        if through <= self.trimmed_through {
            return None;
        }
        let from = self.trimmed_through + 1;
        self.trimmed_through = through;
        Some(Change::WebhookTrim { from, through })
    }

    /// The events that an operation's effects and changes make, numbered from the
    /// sequence: one per observation or new transcript message of a kind some
    /// subscription asks for. `conversation` finds a conversation the floor holds (for
    /// the fields of `conversation.created`). Each event comes as a change (to make it
    /// durable in the same commit) and as an effect (for the sender, once durable).
    pub fn events<'a>(
        &mut self,
        effects: &[Effect],
        changes: &[Change],
        conversation: impl Fn(&str) -> Option<&'a Conversation>,
        now: Millis,
    ) -> (Vec<Change>, Vec<Effect>) {
        // New messages, by conversation, in the order written.
        let mut messages: BTreeMap<&str, Vec<Value>> = BTreeMap::new();
        if self.wanted(EventKind::MessageCreated) {
            for c in changes {
                if let Change::Message { conversation, message } = c {
                    let data = json!({
                        "conversation_id": conversation,
                        "message": {
                            "seq": message.seq,
                            "author": {
                                "kind": message.author.kind.as_str(),
                                "id": message.author.id,
                                "name": message.author.name,
                            },
                            "text": message.text,
                            "at": rfc3339(message.at),
                            "internal": message.internal,
                        },
                    });
                    messages.entry(conversation.as_str()).or_default().push(data);
                }
            }
        }
        // One operation is one commit; inside it, a conversation's new messages come
        // right after its `conversation.created`, and otherwise before its other events
        // (a transfer's note before the transfer, a closing message before the end).
        let mut made: Vec<(EventKind, String, Value)> = Vec::new();
        let flush =
            |made: &mut Vec<(EventKind, String, Value)>, messages: &mut BTreeMap<&str, Vec<Value>>, key: &str| {
                if let Some(ms) = messages.remove(key) {
                    made.extend(ms.into_iter().map(|m| (EventKind::MessageCreated, key.to_string(), m)));
                }
            };
        for e in effects {
            if let Effect::Observe(o) = e {
                if let Some((kind, key, data)) = observed(o, &conversation) {
                    if !self.wanted(kind) {
                        continue;
                    }
                    let created = kind == EventKind::ConversationCreated;
                    if !created {
                        flush(&mut made, &mut messages, &key);
                    }
                    made.push((kind, key.clone(), data));
                    if created {
                        flush(&mut made, &mut messages, &key);
                    }
                }
            }
        }
        let rest: Vec<&str> = messages.keys().copied().collect();
        for key in rest {
            flush(&mut made, &mut messages, key);
        }
        let mut out_changes = Vec::with_capacity(made.len());
        let mut out_effects = Vec::with_capacity(made.len());
        for (kind, key, data) in made {
            self.last_seq += 1;
            let seq = self.last_seq;
            let body = json!({
                "id": seq.to_string(),
                "type": kind.as_str(),
                "created_at": rfc3339(now),
                "data": data,
            })
            .to_string();
            let event = std::sync::Arc::new(WebhookEvent {
                seq,
                kind,
                key,
                at: now,
                body,
            });
            out_changes.push(Change::WebhookEvent(event.clone()));
            out_effects.push(Effect::Webhook(event));
        }
        (out_changes, out_effects)
    }
}

/// The kind, ordering key and `data` of the event an observation makes, if it makes one.
fn observed<'a>(
    o: &Observation,
    conversation: &impl Fn(&str) -> Option<&'a Conversation>,
) -> Option<(EventKind, String, Value)> {
    Some(match o {
        // A conversation is created once: a transfer or overflow into a queue is an
        // arrival of that queue, not a new conversation.
        Observation::Arrived {
            conversation: id,
            queue,
            opened: true,
        } => {
            let c = conversation(id);
            let data = json!({
                "conversation_id": id,
                "queue_id": queue,
                "entry_point_id": c.and_then(|c| c.entry_point.clone()),
                "channel": c.map(|c| c.channel.as_str()),
                "customer": c.map(|c| json!({"id": c.customer.id, "name": c.customer.name})),
            });
            (EventKind::ConversationCreated, id.clone(), data)
        }
        Observation::Offered {
            conversation: id,
            agent,
            kind,
        } => (
            EventKind::ConversationOffered,
            id.clone(),
            json!({"conversation_id": id, "agent_id": agent, "kind": kind.as_str()}),
        ),
        Observation::Accepted {
            conversation: id,
            agent,
            kind,
            queue_wait_ms,
            ..
        } => (
            EventKind::ConversationAccepted,
            id.clone(),
            json!({"conversation_id": id, "agent_id": agent, "kind": kind.as_str(), "wait_ms": queue_wait_ms}),
        ),
        Observation::Transferred { conversation: id, from } => {
            let c = conversation(id);
            let data = json!({
                "conversation_id": id,
                "from_agent_id": from,
                "queue_id": c.map(|c| c.queue.clone()),
                "to_agent_id": c.and_then(|c| c.offer.as_ref()).map(|o| o.agent.clone()),
            });
            (EventKind::ConversationTransferred, id.clone(), data)
        }
        Observation::Ended {
            conversation: id,
            reason,
        } => (
            EventKind::ConversationEnded,
            id.clone(),
            json!({"conversation_id": id, "reason": reason}),
        ),
        Observation::WrappedUp {
            conversation: id,
            agent,
            reason,
        } => (
            EventKind::ConversationWrappedUp,
            id.clone(),
            json!({"conversation_id": id, "agent_id": agent, "reason": reason}),
        ),
        Observation::Rated {
            conversation: id,
            queue,
            agent,
            rating,
            at,
        } => (
            EventKind::ConversationRated,
            id.clone(),
            json!({"conversation_id": id, "rating": rating, "rated_at": rfc3339(*at), "queue_id": queue,
                "agent_id": agent}),
        ),
        Observation::PresenceChanged { agent, from, to } => (
            EventKind::AgentStateChanged,
            agent.clone(),
            json!({"agent_id": agent, "from": from.as_str(), "state": to.as_str()}),
        ),
        _ => return None,
    })
}

/// `at` as RFC 3339 UTC with milliseconds.
fn rfc3339(at: Millis) -> String {
    chrono::DateTime::from_timestamp_millis(at as i64)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[cfg(test)]
#[path = "webhooks_tests.rs"]
mod tests;
