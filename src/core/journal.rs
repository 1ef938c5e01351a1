//! [`Journal`]: what the operations since the last take owe the world, the floor's
//! bookkeeping kept apart from its rules.
//!
//! An operation of the floor decides; the journal remembers what that decision owes:
//! [`Effect`]s for the shell to carry out, and [`Change`]s to make durable. Records
//! (agents, conversations) are not copied at each step that touches them: the journal
//! marks them dirty, each once, and copies each once when the changes are taken, in id
//! order, so that an operation that touches a record five times writes it once, and two
//! runs of the same operations write the same bytes in the same order.

use super::agent::Agent;
use super::conversation::Conversation;
use super::event::{Change, Effect};
use super::{AgentId, ConversationId, FastMap};

/// Hashed set of ids (see [`FastMap`]).
type FastSet<K> = std::collections::HashSet<K, foldhash::fast::RandomState>;

/// The floor's counters, as a [`Change::Counters`] records them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counters {
    pub next_conversation: u64,
    pub next_offer: u64,
    pub next_arrival: u64,
}

/// Effects and changes owed since the last take. See the module docs.
#[derive(Debug, Default)]
pub struct Journal {
    effects: Vec<Effect>,
    /// Changes that are not a record (a queue, a message, an outbox entry, ...), in the
    /// order they were made.
    changes: Vec<Change>,
    /// Records changed since the last take, each once: hashed sets that allocate an id
    /// only when it is new (an operation marks the same record several times; a batch of
    /// operations marks hundreds); sorted when taken.
    dirty_agents: FastSet<AgentId>,
    dirty_conversations: FastSet<ConversationId>,
    counters_dirty: bool,
}

/// Adds `id` to a dirty set unless it is there already (no allocation then).
fn mark(dirty: &mut FastSet<String>, id: &str) {
    if !dirty.contains(id) {
        dirty.insert(id.to_owned());
    }
}

/// A conversation's record without its transcript, cheaply: the transcript is written
/// message by message ([`Change::Message`]), never with the record.
pub fn record(c: &mut Conversation) -> Conversation {
    let transcript = std::mem::take(&mut c.transcript);
    let r = c.clone();
    c.transcript = transcript;
    r
}

impl Journal {
    /// An effect for the shell to carry out, after the ones before it.
    pub fn effect(&mut self, e: Effect) {
        self.effects.push(e);
    }

    /// Several effects, in order.
    pub fn effects(&mut self, es: impl IntoIterator<Item = Effect>) {
        self.effects.extend(es);
    }

    /// A change that is not an agent's or a conversation's record.
    pub fn change(&mut self, c: Change) {
        self.changes.push(c);
    }

    /// Agent `id`'s record changed.
    pub fn agent_changed(&mut self, id: &str) {
        mark(&mut self.dirty_agents, id);
    }

    /// Conversation `id`'s record changed.
    pub fn conversation_changed(&mut self, id: &str) {
        mark(&mut self.dirty_conversations, id);
    }

    /// The counters moved.
    pub fn counters_changed(&mut self) {
        self.counters_dirty = true;
    }

    /// The changes owed so far that are not records, to amend before they are taken (a
    /// Messenger message restamped with Meta's time in the operation that appended it).
    pub fn changes_mut(&mut self) -> impl Iterator<Item = &mut Change> {
        self.changes.iter_mut()
    }

    /// The effects owed so far, to amend before they are taken.
    pub fn effects_mut(&mut self) -> impl Iterator<Item = &mut Effect> {
        self.effects.iter_mut()
    }

    /// The effects owed so far, to read.
    pub fn pending_effects(&self) -> &[Effect] {
        &self.effects
    }

    /// Takes the effects owed.
    pub fn take_effects(&mut self) -> Vec<Effect> {
        // The next operation starts with room for a typical one's effects instead of
        // growing from empty (an `Effect` is large, so each growth copies a lot).
        std::mem::replace(&mut self.effects, Vec::with_capacity(8))
    }

    /// Takes the changes owed: the other changes in the order made, then the dirty
    /// records as they are now in id order (agents, then conversations, each without its
    /// transcript), then the counters if they moved. A dirty record no longer in its map
    /// is skipped.
    pub fn take_changes(
        &mut self,
        agents: &FastMap<AgentId, Agent>,
        conversations: &mut FastMap<ConversationId, Box<Conversation>>,
        counters: Counters,
    ) -> Vec<Change> {
        // One allocation of the right size; `self.changes` keeps its own for the next time.
        let mut out =
            Vec::with_capacity(self.changes.len() + self.dirty_agents.len() + self.dirty_conversations.len() + 1);
        out.append(&mut self.changes);
        let mut ids: Vec<AgentId> = self.dirty_agents.drain().collect();
        ids.sort_unstable();
        for id in ids {
            if let Some(a) = agents.get(&id) {
                out.push(Change::Agent(Box::new(a.clone())));
            }
        }
        let mut ids: Vec<ConversationId> = self.dirty_conversations.drain().collect();
        ids.sort_unstable();
        for id in ids {
            if let Some(c) = conversations.get_mut(&id) {
                out.push(Change::Conversation(Box::new(record(c))));
            }
        }
        if std::mem::take(&mut self.counters_dirty) {
            out.push(Change::Counters {
                next_conversation: counters.next_conversation,
                next_offer: counters.next_offer,
                next_arrival: counters.next_arrival,
            });
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::{Author, AuthorKind, Channel, ConversationState, Customer, Message, Observation, Presence};

    fn agent(id: &str) -> Agent {
        Agent::new(id.into(), id.into(), vec!["q".into()], 1, 0)
    }

    fn conversation(id: &str) -> Box<Conversation> {
        let mut c = Conversation {
            id: id.into(),
            channel: Channel::Rest,
            customer: Customer {
                id: "u".into(),
                name: "U".into(),
            },
            entry_point: None,
            source_page: String::new(),
            queue: "q".into(),
            queue_name: "Q".into(),
            priority: 0,
            received_at: 0,
            arrival: 1,
            state: ConversationState::Queued,
            offer: None,
            owner: None,
            guest: None,
            rona_agents: Default::default(),
            ended_reason: None,
            ended_at: None,
            wrapups: Vec::new(),
            transcript: Vec::new(),
            routing: Default::default(),
            history: Default::default(),
            handoff_note: None,
        };
        let author = Author {
            kind: AuthorKind::System,
            id: None,
            name: "Switchboard".into(),
        };
        c.transcript.push(Message::text(1, author, "hello", 0));
        Box::new(c)
    }

    const COUNTERS: Counters = Counters {
        next_conversation: 7,
        next_offer: 8,
        next_arrival: 9,
    };

    #[test]
    fn records_are_written_once_each_in_id_order_without_transcripts_then_the_counters() {
        let mut j = Journal::default();
        let agents: FastMap<AgentId, Agent> = ["b", "a"].iter().map(|id| (id.to_string(), agent(id))).collect();
        let mut conversations: FastMap<ConversationId, Box<Conversation>> = ["c-2", "c-1"]
            .iter()
            .map(|id| (id.to_string(), conversation(id)))
            .collect();
        j.change(Change::Mid { mid: "m".into(), at: 1 });
        for _ in 0..3 {
            j.agent_changed("b");
            j.agent_changed("a");
            j.conversation_changed("c-2");
            j.conversation_changed("c-1");
        }
        j.agent_changed("gone");
        j.counters_changed();
        let out = j.take_changes(&agents, &mut conversations, COUNTERS);
        let names: Vec<String> = out
            .iter()
            .map(|c| match c {
                Change::Mid { .. } => "mid".to_string(),
                Change::Agent(a) => format!("agent {}", a.id),
                Change::Conversation(c) => {
                    assert!(c.transcript.is_empty(), "no transcript in a record");
                    format!("conversation {}", c.id)
                }
                Change::Counters { next_offer, .. } => format!("counters {next_offer}"),
                other => panic!("unexpected {other:?}"),
            })
            .collect();
        assert_eq!(
            names,
            [
                "mid",
                "agent a",
                "agent b",
                "conversation c-1",
                "conversation c-2",
                "counters 8"
            ]
        );
        // The held records keep their transcripts.
        assert_eq!(conversations["c-1"].transcript.len(), 1);
        // Everything was taken: nothing twice.
        assert!(j.take_changes(&agents, &mut conversations, COUNTERS).is_empty());
    }

    #[test]
    fn effects_keep_their_order_and_are_taken_once() {
        let mut j = Journal::default();
        let added = |id: &str| {
            Effect::Observe(Observation::AgentAdded {
                agent: id.into(),
                presence: Presence::LoggedOut,
            })
        };
        j.effect(added("a"));
        j.effects([added("b"), added("c")]);
        let taken: Vec<String> = j
            .take_effects()
            .into_iter()
            .map(|e| match e {
                Effect::Observe(Observation::AgentAdded { agent, .. }) => agent,
                other => panic!("unexpected {other:?}"),
            })
            .collect();
        assert_eq!(taken, ["a", "b", "c"]);
        assert!(j.take_effects().is_empty());
    }
}
