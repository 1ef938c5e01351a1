//! The checks from outside: ../shared/SPEC.md's invariants as seen in the engine's [`Fact`]s.
//!
//! - no conversation is offered to two agents at once (invariant 1);
//! - no agent holds more than its capacity: offers + participations + owed wrap-ups
//!   (invariant 2);
//! - no offer goes to an agent that is not `available` (invariant 3);
//! - with `--skills`, every new offer goes to an agent meeting the conversation's
//!   requirements at that instant (invariant 7; see [`Book::check`]);
//! - at the end of the run, every conversation that arrived has ended and every wrap-up
//!   it caused has been submitted.
//!
//! The checker knows nothing of the engine's internals: it keeps its own books from the
//! facts and compares.

use std::collections::{HashMap, HashSet};

use super::backend::Fact;
use super::skills::Book;
use crate::core::Presence;

/// Most violations kept word for word; the rest are only counted.
const KEEP: usize = 50;

/// The checker's books.
#[derive(Debug, Default)]
pub struct Checker {
    capacity: HashMap<String, u32>,
    /// Slots each agent holds.
    held: HashMap<String, u32>,
    presence: HashMap<String, Presence>,
    /// The agent each conversation is offered to now.
    offered_to: HashMap<String, String>,
    /// Conversations that arrived and are not complete yet.
    open: HashSet<String>,
    ended: HashSet<String>,
    /// Wrap-ups owed per conversation.
    owed: HashMap<String, u32>,
    /// Conversations ended with every wrap-up submitted.
    pub completed: u64,
    /// Facts lost by a lagging stream: the checks are then incomplete.
    pub lost: u64,
    pub violations: Vec<String>,
    pub violation_count: u64,
    /// The skills and steps of `--skills`, to check invariant 7 with.
    routing: Option<Book>,
    /// New offers checked against invariant 7, by the step they were made in.
    pub offers_by_step: Vec<u64>,
}

impl Checker {
    /// Books for agents with these capacities.
    pub fn new(agents: impl IntoIterator<Item = (String, u32)>) -> Self {
        Checker {
            capacity: agents.into_iter().collect(),
            ..Default::default()
        }
    }

    /// The same books, also checking every [`Fact::Routed`] against `book`.
    pub fn with_routing(mut self, book: Book) -> Self {
        self.routing = Some(book);
        self
    }

    fn violation(&mut self, v: String) {
        self.violation_count += 1;
        if self.violations.len() < KEEP {
            self.violations.push(v);
        }
    }

    /// Takes one fact; answers the conversation it completed, if any.
    pub fn apply(&mut self, fact: Fact) -> Option<String> {
        match fact {
            Fact::Arrived { conversation } => {
                // A transfer to a queue arrives again in its new queue.
                self.open.insert(conversation);
            }
            Fact::Offered { conversation, agent } => {
                if let Some(other) = self.offered_to.get(&conversation) {
                    self.violation(format!(
                        "conversation {conversation} offered to {agent} while offered to {other}"
                    ));
                }
                match self.presence.get(&agent) {
                    Some(Presence::Available) => {}
                    p => self.violation(format!("conversation {conversation} offered to {agent} in state {p:?}")),
                }
                let held = self.held.entry(agent.clone()).or_default();
                *held += 1;
                let held = *held;
                let cap = self.capacity.get(&agent).copied().unwrap_or(0);
                if held > cap {
                    self.violation(format!("agent {agent} holds {held} conversations, capacity {cap}"));
                }
                self.offered_to.insert(conversation, agent);
            }
            Fact::OfferEnded { conversation, agent } => {
                self.end_offer(&conversation, &agent);
                self.release(&agent);
            }
            Fact::Accepted { conversation, agent } => self.end_offer(&conversation, &agent),
            Fact::Ended { conversation } => {
                self.ended.insert(conversation.clone());
                return self.complete_if_done(conversation);
            }
            Fact::WrapupOwed { conversation, .. } => *self.owed.entry(conversation).or_default() += 1,
            Fact::WrappedUp { conversation, agent } => {
                self.release(&agent);
                match self.owed.get_mut(&conversation) {
                    Some(n) if *n > 0 => *n -= 1,
                    _ => self.violation(format!("{agent} wrapped up {conversation}, which owed nothing")),
                }
                return self.complete_if_done(conversation);
            }
            Fact::Presence { agent, state } => {
                self.presence.insert(agent, state);
            }
            Fact::Routed {
                conversation,
                agent,
                queue,
                received_at,
                offered_at,
                claimed,
            } => {
                let Some(book) = &self.routing else { return None };
                match book.check(&conversation, &agent, &queue, received_at, offered_at, claimed.as_ref()) {
                    Ok(step) => {
                        if self.offers_by_step.len() <= step {
                            self.offers_by_step.resize(step + 1, 0);
                        }
                        self.offers_by_step[step] += 1;
                    }
                    Err(v) => self.violation(v),
                }
            }
            Fact::Lost(n) => self.lost += n,
        }
        None
    }

    fn end_offer(&mut self, conversation: &str, agent: &str) {
        match self.offered_to.get(conversation) {
            Some(a) if a == agent => {
                self.offered_to.remove(conversation);
            }
            other => self.violation(format!(
                "offer of {conversation} to {agent} ended, but it was offered to {other:?}"
            )),
        }
    }

    fn release(&mut self, agent: &str) {
        match self.held.get_mut(agent) {
            Some(n) if *n > 0 => *n -= 1,
            _ => self.violation(format!("agent {agent} freed a slot it did not hold")),
        }
    }

    fn complete_if_done(&mut self, conversation: String) -> Option<String> {
        let owed = self.owed.get(&conversation).copied().unwrap_or(0);
        if owed == 0 && self.ended.contains(&conversation) && self.open.remove(&conversation) {
            self.ended.remove(&conversation);
            self.owed.remove(&conversation);
            self.completed += 1;
            return Some(conversation);
        }
        None
    }

    /// Conversations that arrived but have not completed.
    pub fn incomplete(&self) -> usize {
        self.open.len()
    }

    /// Up to `n` conversations that arrived but have not completed, in id order.
    pub fn some_incomplete(&self, n: usize) -> Vec<String> {
        let mut some: Vec<_> = self.open.iter().cloned().collect();
        some.sort();
        some.truncate(n);
        some
    }

    /// Adds a line about the run to the violations (what the engine said of an
    /// incomplete conversation); it does not count as a violation of its own.
    pub fn note(&mut self, line: String) {
        self.violations.push(line);
    }

    /// The end-of-run check: everything that arrived completed.
    pub fn finish(&mut self) {
        let open = self.open.len();
        if open > 0 {
            let some = self.some_incomplete(5);
            self.violation(format!(
                "{open} conversations never ended and wrapped up (e.g. {})",
                some.join(", ")
            ));
        }
    }

    /// True when the checks ran on every fact and found nothing.
    pub fn passed(&self) -> bool {
        self.violation_count == 0 && self.lost == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offered(c: &str, a: &str) -> Fact {
        Fact::Offered {
            conversation: c.into(),
            agent: a.into(),
        }
    }

    fn available(a: &str) -> Fact {
        Fact::Presence {
            agent: a.into(),
            state: Presence::Available,
        }
    }

    #[test]
    fn a_whole_lifecycle_completes() {
        let mut c = Checker::new([("a".to_string(), 1)]);
        c.apply(available("a"));
        c.apply(Fact::Arrived {
            conversation: "c1".into(),
        });
        c.apply(offered("c1", "a"));
        c.apply(Fact::Accepted {
            conversation: "c1".into(),
            agent: "a".into(),
        });
        c.apply(Fact::WrapupOwed {
            conversation: "c1".into(),
            agent: "a".into(),
        });
        assert_eq!(
            c.apply(Fact::Ended {
                conversation: "c1".into()
            }),
            None
        );
        assert_eq!(
            c.apply(Fact::WrappedUp {
                conversation: "c1".into(),
                agent: "a".into()
            }),
            Some("c1".to_string())
        );
        c.finish();
        assert!(c.passed(), "{:?}", c.violations);
        assert_eq!(c.completed, 1);
    }

    #[test]
    fn double_offer_over_capacity_and_unfinished_are_violations() {
        let mut c = Checker::new([("a".to_string(), 1), ("b".to_string(), 1)]);
        c.apply(available("a"));
        c.apply(available("b"));
        c.apply(Fact::Arrived {
            conversation: "c1".into(),
        });
        c.apply(offered("c1", "a"));
        c.apply(offered("c1", "b"));
        c.apply(offered("c2", "a"));
        c.finish();
        assert!(!c.passed());
        let all = c.violations.join("\n");
        assert!(all.contains("while offered to a"), "{all}");
        assert!(all.contains("capacity 1"), "{all}");
        assert!(all.contains("never ended"), "{all}");
    }

    #[test]
    fn offers_that_break_invariant_7_are_violations_and_the_others_count_by_step() {
        use crate::core::Skills;
        let book = Book {
            skills: [
                ("fluent".to_string(), Skills::from([("lang.en".into(), 8)])),
                ("some".to_string(), Skills::from([("lang.en".into(), 3)])),
            ]
            .into(),
            steps: [("q1".to_string(), crate::load::skills::steps(0, 100))].into(),
        };
        let mut c = Checker::new([("fluent".to_string(), 1), ("some".to_string(), 1)]).with_routing(book);
        let routed = |agent: &str, after: u64| Fact::Routed {
            conversation: "c1".into(),
            agent: agent.into(),
            queue: "q1".into(),
            received_at: 1_000,
            offered_at: 1_000 + after,
            claimed: None,
        };
        c.apply(routed("fluent", 10));
        c.apply(routed("some", 150));
        c.apply(routed("fluent", 150));
        assert!(c.violations.is_empty(), "{:?}", c.violations);
        assert_eq!(c.offers_by_step, [1, 2]);
        c.apply(routed("some", 10));
        assert_eq!(c.violation_count, 1);
        assert!(c.violations[0].starts_with("invariant 7"), "{:?}", c.violations);
        // Without --skills the fact is not checked.
        let mut plain = Checker::new([("some".to_string(), 1)]);
        plain.apply(routed("some", 10));
        assert!(plain.violations.is_empty() && plain.offers_by_step.is_empty());
    }

    #[test]
    fn an_offer_to_an_agent_in_rona_is_a_violation() {
        let mut c = Checker::new([("a".to_string(), 1)]);
        c.apply(Fact::Presence {
            agent: "a".into(),
            state: Presence::Rona,
        });
        c.apply(offered("c1", "a"));
        assert!(c.violations[0].contains("Rona"), "{:?}", c.violations);
    }
}
