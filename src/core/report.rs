//! What a conversation leaves behind for reports (../shared/API.md "Reports and events
//! out"): [`History`], kept with the conversation while it is open, and
//! [`ConversationRecord`], the durable record made from it once the conversation is
//! complete.
//!
//! # When a record is made
//! A conversation is **complete** when it has ended and every wrap-up it required is in
//! (ended with none owed: at once). That is the moment the floor lets go of it
//! ([`super::Floor::is_finished`]), and [`super::Floor::take_changes`] puts the record
//! among the changes of that same operation, beside the conversation's final state: one
//! atomic commit holds both or neither, so a crash never loses a record nor writes a
//! second one (the conversation is complete in the store exactly when its record is).
//!
//! # Outcome
//! In this order: never accepted by an agent (the customer left, went inactive, or it
//! ended otherwise while waiting): `abandoned`; closed for the customer's inactivity
//! after an accept: `closed_inactive`; transferred at least once (to an agent or a
//! queue): `transferred`, the chain being the record's `agents` in the order they
//! joined; otherwise `handled`.

use serde::{Deserialize, Serialize};
use strum::{EnumIter, IntoStaticStr};

use super::conversation::{Channel, Conversation, Customer};
use super::{AgentId, ConversationId, EntryPointId, Millis, QueueId};

/// The `ended_reason` of a conversation closed for the customer's inactivity.
pub const CUSTOMER_INACTIVE: &str = "customer_inactive";

/// How a conversation went. See the module docs for the order the rules apply in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, IntoStaticStr, EnumIter)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum Outcome {
    Handled,
    Abandoned,
    Transferred,
    ClosedInactive,
}

impl Outcome {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// The outcome of the wire name `s`.
    pub fn parse(s: &str) -> Option<Outcome> {
        use strum::IntoEnumIterator;
        Outcome::iter().find(|o| o.as_str() == s)
    }

    /// The rule of the module docs.
    pub fn of(accepted: bool, ended_reason: &str, transfers: u32) -> Outcome {
        if !accepted {
            Outcome::Abandoned
        } else if ended_reason == CUSTOMER_INACTIVE {
            Outcome::ClosedInactive
        } else if transfers > 0 {
            Outcome::Transferred
        } else {
            Outcome::Handled
        }
    }
}

/// One agent's part in a conversation while it is open.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Part {
    pub agent: AgentId,
    /// Took part only as a conference guest, never as the owner.
    pub guest: bool,
    /// When it first accepted.
    pub joined_at: Millis,
    /// When it last left (transfer, exit, end); `None` while it is in the conversation.
    pub left_at: Option<Millis>,
    /// Time in the conversation over every stretch that ended, from accept to leaving.
    pub handle_ms: u64,
    /// The start of the stretch under way (accepted, not left yet).
    pub since: Option<Millis>,
}

/// What the record of a conversation needs that its live state forgets (a transfer to a
/// queue resets `received_at`, an owner leaves): kept with the conversation, durable with
/// it, changed only through these methods, which the floor calls from the one step of
/// each kind (offer made, accept, leave, agent message, RONA, transfer).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct History {
    /// When the customer's first message opened the conversation.
    pub arrived_at: Millis,
    /// The queues it left for another (a transfer to a queue), in order; its current
    /// queue is the conversation's own. Empty, and so free, for most conversations: a
    /// history is copied with every write of its conversation.
    pub queues_before: Vec<QueueId>,
    pub first_offered_at: Option<Millis>,
    /// The first accept by an agent (a new or transfer offer; a conference needs one).
    pub accepted_at: Option<Millis>,
    /// The first message an agent wrote.
    pub first_agent_reply_at: Option<Millis>,
    /// Agents that accepted it, in the order they first did.
    pub parts: Vec<Part>,
    /// Offers of it that expired (any kind).
    pub ronas: u32,
    /// Transfers to an agent or a queue.
    pub transfers: u32,
}

impl History {
    /// A conversation opened at `now`.
    pub fn new(now: Millis) -> History {
        History {
            arrived_at: now,
            ..Default::default()
        }
    }

    /// The best that can be said of a conversation stored before histories were kept:
    /// arrived when it entered its current queue, accepted (by its owner and guest, if
    /// any) when its inactivity count started (the owner's accept, or a customer message
    /// after it). Such a conversation's record is as good as its stored fields allow.
    pub fn assumed(c: &Conversation) -> History {
        let mut h = History::new(c.received_at);
        let since = c.routing.inactive_since.unwrap_or(c.received_at);
        for (agent, guest) in c
            .owner
            .iter()
            .map(|a| (a, false))
            .chain(c.guest.iter().map(|a| (a, true)))
        {
            h.accepted_at.get_or_insert(since);
            h.parts.push(Part {
                agent: agent.clone(),
                guest,
                joined_at: since,
                since: Some(since),
                ..Default::default()
            });
        }
        h
    }

    /// It moves from queue `from` to queue `to` (a transfer to a queue).
    pub fn changed_queue(&mut self, from: &str, to: &str) {
        if from != to {
            self.queues_before.push(from.to_string());
        }
    }

    /// An offer of it was made.
    pub fn offered(&mut self, now: Millis) {
        self.first_offered_at.get_or_insert(now);
    }

    /// `agent` accepted an offer of it (`guest`: a conference offer).
    pub fn accepted(&mut self, agent: &str, guest: bool, now: Millis) {
        if !guest {
            self.accepted_at.get_or_insert(now);
        }
        match self.parts.iter_mut().find(|p| p.agent == agent) {
            Some(p) => {
                p.guest &= guest;
                p.since = Some(now);
                p.left_at = None;
            }
            None => {
                // Room for this part alone: most conversations have one agent, and a
                // first push would reserve four (320 bytes a conversation held open).
                self.parts.reserve_exact(1);
                self.parts.push(Part {
                    agent: agent.to_string(),
                    guest,
                    joined_at: now,
                    since: Some(now),
                    ..Default::default()
                })
            }
        }
    }

    /// `agent` left it (and owes a wrap-up).
    pub fn left(&mut self, agent: &str, now: Millis) {
        if let Some(p) = self.parts.iter_mut().find(|p| p.agent == agent) {
            if let Some(since) = p.since.take() {
                p.handle_ms = p.handle_ms.saturating_add(now.saturating_sub(since));
            }
            p.left_at = Some(now);
        }
    }

    /// An agent wrote in it. True when that was the first time (the history changed, so
    /// the conversation's record must be written again).
    pub fn agent_wrote(&mut self, now: Millis) -> bool {
        let first = self.first_agent_reply_at.is_none();
        self.first_agent_reply_at.get_or_insert(now);
        first
    }

    /// An offer of it expired.
    pub fn rona(&mut self) {
        self.ronas = self.ronas.saturating_add(1);
    }

    /// Its owner transferred it (to an agent or a queue).
    pub fn transferred(&mut self) {
        self.transfers = self.transfers.saturating_add(1);
    }
}

/// One agent's part in a complete conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordAgent {
    pub agent: AgentId,
    /// Took part only as a conference guest.
    pub guest: bool,
    pub joined_at: Millis,
    pub left_at: Millis,
    /// Time in the conversation, accept to leaving, over every stretch.
    pub handle_ms: u64,
    /// Its wrap-up (every agent that left owed one).
    pub wrapup_reason: Option<String>,
    pub wrapped_up_at: Option<Millis>,
    /// The engine submitted the default reason (`wrapup.auto_after_ms`).
    pub wrapup_automatic: bool,
}

/// The durable record of a complete conversation (../shared/API.md "Reports and events out").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConversationRecord {
    pub id: ConversationId,
    pub channel: Channel,
    pub entry_point: Option<EntryPointId>,
    /// The entry point's name when the conversation opened.
    pub source_page: String,
    pub customer: Customer,
    /// The queues it passed through, in order.
    pub queues: Vec<QueueId>,
    /// The agents that accepted it, in the order they first did (a transfer chain).
    pub agents: Vec<RecordAgent>,
    pub arrived_at: Millis,
    pub first_offered_at: Option<Millis>,
    pub accepted_at: Option<Millis>,
    pub first_agent_reply_at: Option<Millis>,
    pub ended_at: Millis,
    /// The last wrap-up; `None` when none was owed.
    pub wrapped_up_at: Option<Millis>,
    pub ended_reason: String,
    pub outcome: Outcome,
    /// The wrap-up reason of the last owner (the agent that handled it last), or of the
    /// last wrap-up if no owner recorded one.
    pub wrapup_reason: Option<String>,
    pub rona_count: u32,
    pub transfers: u32,
    /// The customer's rating (`survey.rs`). Kept beside the record, not in it (a rating
    /// may come before or after the record is written): the store fills it in on read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub satisfaction: Option<super::survey::Satisfaction>,
}

impl ConversationRecord {
    /// The record of `c`, which must be complete (ended, every wrap-up in); `None` while
    /// it has not ended.
    pub fn of(c: &Conversation) -> Option<ConversationRecord> {
        let ended_at = c.ended_at?;
        let h = &c.history;
        let wrapup_of = |agent: &str| c.wrapups.iter().rev().find(|w| w.agent == agent);
        let agents: Vec<RecordAgent> = h
            .parts
            .iter()
            .map(|p| {
                let w = wrapup_of(&p.agent);
                // A stretch still open (nothing left it, which ending does) counts to the end.
                let open_ms = p.since.map_or(0, |s| ended_at.saturating_sub(s));
                RecordAgent {
                    agent: p.agent.clone(),
                    guest: p.guest,
                    joined_at: p.joined_at,
                    left_at: p.left_at.unwrap_or(ended_at),
                    handle_ms: p.handle_ms.saturating_add(open_ms),
                    wrapup_reason: w.map(|w| w.reason.clone()),
                    wrapped_up_at: w.map(|w| w.at),
                    wrapup_automatic: w.is_some_and(|w| w.automatic),
                }
            })
            .collect();
        let last_owner = agents.iter().rev().find(|a| !a.guest && a.wrapup_reason.is_some());
        let wrapup_reason = last_owner
            .and_then(|a| a.wrapup_reason.clone())
            .or_else(|| c.wrapups.last().map(|w| w.reason.clone()));
        let ended_reason = c.ended_reason.clone().unwrap_or_default();
        Some(ConversationRecord {
            id: c.id.clone(),
            channel: c.channel,
            entry_point: c.entry_point.clone(),
            source_page: c.source_page.clone(),
            customer: c.customer.clone(),
            queues: h.queues_before.iter().chain([&c.queue]).cloned().collect(),
            agents,
            arrived_at: h.arrived_at,
            first_offered_at: h.first_offered_at,
            accepted_at: h.accepted_at,
            first_agent_reply_at: h.first_agent_reply_at,
            ended_at,
            wrapped_up_at: c.wrapups.iter().map(|w| w.at).max(),
            outcome: Outcome::of(h.accepted_at.is_some(), &ended_reason, h.transfers),
            ended_reason,
            wrapup_reason,
            rona_count: h.ronas,
            transfers: h.transfers,
            satisfaction: None,
        })
    }

    /// Where the record sorts: by arrival, then id (the store's key, and the paging cursor).
    pub fn cursor(&self) -> RecordCursor {
        RecordCursor {
            arrived_at: self.arrived_at,
            id: self.id.clone(),
        }
    }
}

/// A place in the records' order (arrival, then id): a page goes on after it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct RecordCursor {
    pub arrived_at: Millis,
    pub id: ConversationId,
}

impl RecordCursor {
    /// The cursor's text (`<arrived_at>.<id>`), opaque to clients.
    pub fn encode(&self) -> String {
        format!("{}.{}", self.arrived_at, self.id)
    }

    /// The cursor of a text [`RecordCursor::encode`] made.
    pub fn decode(s: &str) -> Option<RecordCursor> {
        let (at, id) = s.split_once('.')?;
        if at.is_empty() || !at.bytes().all(|b| b.is_ascii_digit()) || !super::valid_id(id) {
            return None;
        }
        Some(RecordCursor {
            arrived_at: at.parse().ok()?,
            id: id.to_string(),
        })
    }
}

/// Which records a report asks for: every condition given must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecordFilter {
    /// Arrived at or after.
    pub from: Option<Millis>,
    /// Arrived before.
    pub to: Option<Millis>,
    /// Passed through this queue.
    pub queue: Option<QueueId>,
    /// This agent accepted it (owner or guest).
    pub agent: Option<AgentId>,
    pub outcome: Option<Outcome>,
    /// The customer's channel id.
    pub customer: Option<String>,
    /// Words the transcript holds, every one ([`words`] of the query's `q`).
    pub words: Vec<String>,
    /// Rated by its customer (`Some(true)`) or not (`Some(false)`).
    pub rated: Option<bool>,
}

impl RecordFilter {
    /// Whether `r` is one of the records asked for.
    pub fn matches(&self, r: &ConversationRecord) -> bool {
        self.from.map_or(true, |f| r.arrived_at >= f)
            && self.to.map_or(true, |t| r.arrived_at < t)
            && self.queue.as_ref().map_or(true, |q| r.queues.contains(q))
            && self
                .agent
                .as_ref()
                .map_or(true, |a| r.agents.iter().any(|x| &x.agent == a))
            && self.outcome.map_or(true, |o| r.outcome == o)
            && self.customer.as_ref().map_or(true, |c| &r.customer.id == c)
            && self.rated.map_or(true, |rated| r.satisfaction.is_some() == rated)
    }
}

/// A page of records: the filter, the cursor to go on after, and how many at most.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordQuery {
    pub filter: RecordFilter,
    pub after: Option<RecordCursor>,
    pub limit: usize,
}

/// A page of records in their order, and the cursor of the next page (`None`: no more).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecordPage {
    pub records: Vec<ConversationRecord>,
    pub next: Option<RecordCursor>,
}

impl RecordPage {
    /// The page of `query` from `records` (in their order, at or after the query's start):
    /// the matching ones after its cursor, at most its limit. The stores use this over
    /// what they scan, so both page alike.
    pub fn collect(query: &RecordQuery, records: impl IntoIterator<Item = ConversationRecord>) -> RecordPage {
        let mut page = RecordPage::default();
        for r in records {
            if query.after.as_ref().is_some_and(|a| r.cursor() <= *a) {
                continue;
            }
            if query.filter.to.is_some_and(|t| r.arrived_at >= t) {
                break;
            }
            if !query.filter.matches(&r) {
                continue;
            }
            if page.records.len() == query.limit {
                page.next = page.records.last().map(ConversationRecord::cursor);
                break;
            }
            page.records.push(r);
        }
        page
    }
}

/// The most bytes of words kept to search a conversation's transcript by (`q`): a
/// conversation's first few hundred distinct words.
pub const MAX_SEARCH_TEXT: usize = 4096;

/// The most words a search (`q`) may hold.
pub const MAX_SEARCH_WORDS: usize = 8;

/// The words of `text` as search knows them: runs of letters and digits, lower-cased.
pub fn words(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
}

/// What a transcript is searched by: the distinct words of what the customer and the
/// agents wrote (not system texts), sorted, space-separated, at most
/// [`MAX_SEARCH_TEXT`] bytes (the words first written win).
pub fn search_text(transcript: &[super::conversation::Message]) -> String {
    use super::conversation::AuthorKind;
    let mut seen = std::collections::BTreeSet::new();
    let mut bytes = 0;
    'messages: for m in transcript {
        if !matches!(
            m.author.kind,
            AuthorKind::Customer | AuthorKind::Agent | AuthorKind::Page
        ) {
            continue;
        }
        for w in words(&m.text) {
            if bytes + w.len() + 1 > MAX_SEARCH_TEXT {
                break 'messages;
            }
            if !seen.contains(&w) {
                bytes += w.len() + 1;
                seen.insert(w);
            }
        }
    }
    seen.into_iter().collect::<Vec<_>>().join(" ")
}

/// Whether a [`search_text`] holds every one of `words` (whole words).
pub fn text_matches(text: &str, words: &[String]) -> bool {
    words.iter().all(|w| text.split(' ').any(|t| t == w))
}

#[cfg(test)]
#[path = "report_tests.rs"]
mod tests;
