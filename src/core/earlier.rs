//! The customer's earlier conversations beside a conversation, the desktop's "History"
//! (issue 26 item 6; docs/API-NOTES.md "History"; not [`super::report::History`], what a
//! conversation keeps for its own record): which earlier conversations of the same
//! customer an agent sees beside the one it serves, and its right to read their
//! transcripts.
//!
//! # The rule
//! Beside conversation C, the **earlier conversations** are the complete ones (ended, every
//! wrap-up in: those with a durable record, `report.rs`) of C's customer (the channel's
//! customer id) on C's entry point that arrived before C, newest first, at most
//! [`MAX_EARLIER`]. A conversation without an entry point has none. Who sees them:
//!
//! - the admin and supervisors, beside any conversation;
//! - an agent **in** C (owner or conference guest) while C is open: the agent serving
//!   the customer now. An agent that is only offered C has not taken the customer yet,
//!   and one that left C (transferred it, owes its wrap-up) serves it no more.
//!
//! Such an agent may read each earlier conversation whole, transcript and internal notes
//! included ([`Floor::reads_as_earlier`], one branch of [`Floor::may_read`]): the notes
//! were written for the agents who serve that customer next.
//!
//! The records are read from the store (filtered by customer and arrival,
//! [`EarlierScope::filter`]); which of them are earlier conversations is decided here
//! ([`EarlierScope::select`]), so the store and the HTTP layer only carry it out.

use super::command::Principal;
use super::conversation::Conversation;
use super::report::{ConversationRecord, RecordFilter};
use super::{CoreError, EntryPointId, Floor, Millis};

/// The most earlier conversations shown beside one: a customer's last few months, as an
/// agent can take them in at a glance while the customer waits.
pub const MAX_EARLIER: usize = 20;

/// How far back the earlier conversations go: a year before this one arrived (reports
/// keep records 400 days by default). The store reads them from its index of records by
/// customer, so the cost is the customer's own records, not the tenant's: under 10 ms
/// for a customer among 1,000,000 records of a year (it was 0.67 s warm and 5.8 s cold,
/// and the window 90 days, while records were read by arrival alone).
pub const LOOK_BACK_MS: Millis = 365 * 24 * 60 * 60 * 1000;

/// Where the earlier conversations beside one conversation are: its customer, its entry
/// point and its arrival.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EarlierScope {
    /// The channel's customer id.
    pub customer: String,
    pub entry_point: EntryPointId,
    /// The conversation's arrival (its history's `arrived_at`, which a transfer to a queue
    /// does not move): earlier ones arrived before it.
    pub before: Millis,
}

impl EarlierScope {
    /// The scope of `c`; `None` for a conversation without an entry point.
    pub fn of(c: &Conversation) -> Option<EarlierScope> {
        Some(EarlierScope {
            customer: c.customer.id.clone(),
            entry_point: c.entry_point.clone()?,
            before: c.history.arrived_at,
        })
    }

    /// What to ask the store's records for: the customer's, arrived before. (Records are
    /// not filtered by entry point in the store; [`EarlierScope::select`] does it.)
    pub fn filter(&self) -> RecordFilter {
        RecordFilter {
            customer: Some(self.customer.clone()),
            from: Some(self.since()),
            to: Some(self.before),
            ..RecordFilter::default()
        }
    }

    /// The earliest arrival in scope ([`LOOK_BACK_MS`] before this one).
    pub fn since(&self) -> Millis {
        self.before.saturating_sub(LOOK_BACK_MS)
    }

    /// Whether record `r` is one of the earlier conversations.
    pub fn holds(&self, r: &ConversationRecord) -> bool {
        r.customer.id == self.customer
            && r.entry_point.as_deref() == Some(self.entry_point.as_str())
            && (self.since()..self.before).contains(&r.arrived_at)
    }

    /// Whether conversation `e` (finished or not) is of this scope: same customer, same
    /// entry point, arrived before.
    pub fn holds_conversation(&self, e: &Conversation) -> bool {
        e.customer.id == self.customer
            && e.entry_point.as_deref() == Some(self.entry_point.as_str())
            && (self.since()..self.before).contains(&e.history.arrived_at)
    }

    /// The earlier conversations among `records` (in any order): those it
    /// [holds](EarlierScope::holds), newest arrival first (then id, descending), at most
    /// [`MAX_EARLIER`]. Keeps at most twice that many at any time, however many are read.
    pub fn select(&self, records: impl IntoIterator<Item = ConversationRecord>) -> Vec<ConversationRecord> {
        let newest_first = |v: &mut Vec<ConversationRecord>| {
            v.sort_by_key(|r| std::cmp::Reverse(r.cursor()));
            v.truncate(MAX_EARLIER);
        };
        let mut kept = Vec::new();
        for r in records.into_iter().filter(|r| self.holds(r)) {
            kept.push(r);
            if kept.len() == 2 * MAX_EARLIER {
                newest_first(&mut kept);
            }
        }
        newest_first(&mut kept);
        kept
    }
}

impl Floor {
    /// The scope of the earlier conversations `reader` may see beside `c` (held by the
    /// floor, or finished and read from the store): the module's rule. `Ok(None)`: `c` has
    /// no entry point, so none. An agent not in `c` is refused `forbidden`, as a read of a
    /// conversation is ([`Floor::check_may_read`]).
    pub fn earlier_scope(&self, reader: &Principal, c: &Conversation) -> Result<Option<EarlierScope>, CoreError> {
        match reader {
            Principal::Admin | Principal::Supervisor(_) => {}
            Principal::Agent(agent) => {
                // Owner and guest are cleared when a conversation ends, so this is "in it,
                // and it is open".
                if !c.participants().any(|p| p == agent) {
                    return Err(CoreError::MayNotRead {
                        conversation: c.id.clone(),
                        agent: agent.clone(),
                    });
                }
            }
            Principal::Customer { .. } => return Err(Principal::customer_may_not("read a customer's history")),
        }
        Ok(EarlierScope::of(c))
    }

    /// May `agent` read `e` as an earlier conversation of a customer it serves? Yes when `e`
    /// is complete (finished: ended, every wrap-up in) and `agent` is in (owner or guest)
    /// the open conversation of `e`'s customer on `e`'s entry point, which arrived after
    /// `e`. A customer has at most one open conversation per entry point, so this is one
    /// look-up.
    pub fn reads_as_earlier(&self, agent: &str, e: &Conversation) -> bool {
        let Some(entry_point) = e.entry_point.as_deref() else {
            return false;
        };
        if !self.is_finished(e) {
            return false;
        }
        let Some(c) = self
            .open_conversation_of(entry_point, &e.customer.id)
            .and_then(|id| self.conversation(id))
        else {
            return false;
        };
        c.id != e.id
            && c.participants().any(|p| p == agent)
            && EarlierScope::of(c).is_some_and(|s| s.holds_conversation(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::report::{Outcome, RecordAgent};
    use crate::core::{
        Account, Channel, Command, ConversationState, Customer, EntryPoint, Presence, Queue, Reply, Rules, Skills,
    };

    const T0: Millis = 1_000_000;

    fn record(id: &str, customer: &str, entry_point: Option<&str>, arrived_at: Millis) -> ConversationRecord {
        ConversationRecord {
            id: id.into(),
            channel: Channel::Rest,
            entry_point: entry_point.map(Into::into),
            source_page: "Page".into(),
            customer: Customer {
                id: customer.into(),
                name: "U".into(),
            },
            queues: vec!["q".into()],
            agents: vec![RecordAgent {
                agent: "a1".into(),
                guest: false,
                joined_at: arrived_at,
                left_at: arrived_at + 10,
                handle_ms: 10,
                wrapup_reason: Some("resolved".into()),
                wrapped_up_at: Some(arrived_at + 20),
                wrapup_automatic: false,
            }],
            arrived_at,
            first_offered_at: Some(arrived_at),
            accepted_at: Some(arrived_at),
            first_agent_reply_at: None,
            ended_at: arrived_at + 10,
            wrapped_up_at: Some(arrived_at + 20),
            ended_reason: "agent_ended".into(),
            outcome: Outcome::Handled,
            wrapup_reason: Some("resolved".into()),
            rona_count: 0,
            transfers: 0,
            satisfaction: None,
        }
    }

    fn scope() -> EarlierScope {
        EarlierScope {
            customer: "u".into(),
            entry_point: "ep".into(),
            before: 500,
        }
    }

    /// Which records are earlier conversations: same customer, same entry point, arrived
    /// strictly before.
    #[test]
    fn which_records_are_earlier_conversations() {
        let s = scope();
        for (r, holds) in [
            (record("c-1", "u", Some("ep"), 100), true),
            (record("c-2", "u", Some("ep"), 499), true),
            (record("c-3", "u", Some("ep"), 500), false), // arrived with it (itself)
            (record("c-4", "u", Some("ep"), 900), false), // later
            (record("c-5", "u", Some("ep2"), 100), false), // another entry point
            (record("c-6", "u2", Some("ep"), 100), false), // another customer
            (record("c-7", "u", None, 100), false),       // no entry point
        ] {
            assert_eq!(s.holds(&r), holds, "{}", r.id);
        }
        assert_eq!(
            s.filter(),
            RecordFilter {
                customer: Some("u".into()),
                from: Some(0),
                to: Some(500),
                ..RecordFilter::default()
            }
        );
        // A year back, not further.
        let late = EarlierScope {
            before: LOOK_BACK_MS + 500,
            ..scope()
        };
        assert!(late.holds(&record("c-8", "u", Some("ep"), 500)));
        assert!(!late.holds(&record("c-9", "u", Some("ep"), 499)));
        assert_eq!(late.filter().from, Some(500));
    }

    /// Newest first, ties by id descending, at most MAX_EARLIER, whatever order the
    /// records come in and however many there are.
    #[test]
    fn newest_first_and_at_most_the_bound() {
        let s = EarlierScope {
            before: 10_000,
            ..scope()
        };
        let picked = |v: Vec<ConversationRecord>| s.select(v).into_iter().map(|r| r.id).collect::<Vec<_>>();
        assert_eq!(
            picked(vec![
                record("c-1", "u", Some("ep"), 100),
                record("c-3", "u", Some("ep"), 300),
                record("c-9", "u", Some("ep2"), 400),
                record("c-2", "u", Some("ep"), 300),
            ]),
            ["c-3", "c-2", "c-1"]
        );
        assert!(picked(Vec::new()).is_empty());
        let many: Vec<_> = (0..5 * MAX_EARLIER as u64)
            .map(|i| record(&format!("c-{i:03}"), "u", Some("ep"), 100 + i))
            .collect();
        let want: Vec<String> = (0..5 * MAX_EARLIER as u64)
            .rev()
            .take(MAX_EARLIER)
            .map(|i| format!("c-{i:03}"))
            .collect();
        assert_eq!(picked(many.clone()), want);
        assert_eq!(picked(many.into_iter().rev().collect()), want, "in reverse order too");
    }

    // ----- on the floor -----

    /// Queue q, entry points ep and ep2 onto it, agents a1 and a2 (capacity 2).
    fn floor() -> Floor {
        let mut f = Floor::restore(
            Rules::default(),
            vec![Queue::new("q".into(), "Q".into())],
            Vec::new(),
            Vec::new(),
            Vec::new(),
            (1, 1, 1),
            0,
        );
        for e in ["ep", "ep2"] {
            f.create_entry_point(EntryPoint {
                id: e.into(),
                name: format!("Page {e}"),
                queue: "q".into(),
                ..Default::default()
            })
            .unwrap();
        }
        for a in ["a1", "a2"] {
            f.create_agent(a, a, vec!["q".into()], 2, Account::default(), Skills::new(), 0)
                .unwrap();
        }
        f
    }

    fn run(f: &mut Floor, cmd: Command, now: Millis) -> Reply {
        let r = f.execute(cmd, now).unwrap_or_else(|e| panic!("{e}"));
        f.take_effects();
        r
    }

    /// Customer `u` writes on `ep` at `now`; `agent` (available) accepts: the id.
    fn served(f: &mut Floor, ep: &str, agent: &str, now: Millis) -> String {
        run(
            f,
            Command::SetState {
                agent: agent.into(),
                state: Presence::Available,
                idle_code: None,
            },
            now,
        );
        let id = match run(
            f,
            Command::CustomerMessage {
                entry_point: ep.into(),
                customer: Customer {
                    id: "u".into(),
                    name: "U".into(),
                },
                text: "hello".into(),
                channel: Channel::Rest,
                open: Default::default(),
            },
            now,
        ) {
            Reply::Conversation(c) => c.id,
            other => panic!("unexpected {other:?}"),
        };
        run(
            f,
            Command::Accept {
                agent: agent.into(),
                conversation: id.clone(),
            },
            now,
        );
        id
    }

    /// `agent` ends `id` and wraps it up: it is complete, and the floor lets go of it. The
    /// conversation as the store then hands it back.
    fn finish(f: &mut Floor, id: &str, agent: &str, now: Millis) -> Conversation {
        run(
            f,
            Command::End {
                agent: agent.into(),
                conversation: id.into(),
            },
            now,
        );
        run(
            f,
            Command::Wrapup {
                agent: agent.into(),
                conversation: id.into(),
                reason: "resolved".into(),
            },
            now,
        );
        let done = f.conversation(id).cloned().unwrap();
        f.take_changes();
        assert!(f.conversation(id).is_none(), "the floor let go of {id}");
        done
    }

    /// Who sees the history beside a conversation, through its life: the admin and
    /// supervisors always; an agent while it is in it (owner or guest), not while only
    /// offered it, not after it left; never a customer.
    #[test]
    fn who_sees_the_history_beside_a_conversation() {
        let mut f = floor();
        let earlier = served(&mut f, "ep", "a1", T0);
        finish(&mut f, &earlier, "a1", T0 + 10);
        let now = match run(
            &mut f,
            Command::CustomerMessage {
                entry_point: "ep".into(),
                customer: Customer {
                    id: "u".into(),
                    name: "U".into(),
                },
                text: "again".into(),
                channel: Channel::Rest,
                open: Default::default(),
            },
            T0 + 100,
        ) {
            Reply::Conversation(c) => c.id,
            other => panic!("unexpected {other:?}"),
        };
        let (a1, a2) = (Principal::Agent("a1".into()), Principal::Agent("a2".into()));
        let who = |f: &Floor| {
            let c = f.conversation(&now).cloned().unwrap();
            [
                Principal::Admin,
                Principal::Supervisor("s1".into()),
                a1.clone(),
                a2.clone(),
                Principal::Customer {
                    entry_point: "ep".into(),
                    customer: "u".into(),
                },
            ]
            .map(|p| f.earlier_scope(&p, &c).map_err(|e| e.code()))
        };
        let yes = Ok(Some(EarlierScope {
            customer: "u".into(),
            entry_point: "ep".into(),
            before: T0 + 100,
        }));
        let no: Result<Option<EarlierScope>, &str> = Err("forbidden");
        // Offered to a1 (the longest idle): not yet.
        assert_eq!(f.conversation(&now).unwrap().state, ConversationState::Offered);
        assert_eq!(who(&f), [yes.clone(), yes.clone(), no.clone(), no.clone(), no.clone()]);
        run(
            &mut f,
            Command::Accept {
                agent: "a1".into(),
                conversation: now.clone(),
            },
            T0 + 110,
        );
        assert_eq!(who(&f), [yes.clone(), yes.clone(), yes.clone(), no.clone(), no.clone()]);
        // A conference guest serves the customer too.
        run(
            &mut f,
            Command::SetState {
                agent: "a2".into(),
                state: Presence::Available,
                idle_code: None,
            },
            T0 + 120,
        );
        run(
            &mut f,
            Command::Conference {
                agent: "a1".into(),
                conversation: now.clone(),
                target: "a2".into(),
                note: None,
            },
            T0 + 120,
        );
        assert_eq!(who(&f)[3], no, "invited, not in it yet");
        run(
            &mut f,
            Command::Accept {
                agent: "a2".into(),
                conversation: now.clone(),
            },
            T0 + 130,
        );
        assert_eq!(
            who(&f),
            [yes.clone(), yes.clone(), yes.clone(), yes.clone(), no.clone()]
        );
        // Ended: both owe a wrap-up and serve the customer no more.
        run(
            &mut f,
            Command::End {
                agent: "a1".into(),
                conversation: now.clone(),
            },
            T0 + 140,
        );
        assert_eq!(who(&f), [yes.clone(), yes.clone(), no.clone(), no.clone(), no.clone()]);
        // A conversation without an entry point has no history.
        let mut bare = f.conversation(&now).cloned().unwrap();
        bare.entry_point = None;
        assert_eq!(f.earlier_scope(&Principal::Admin, &bare), Ok(None));
    }

    /// An agent serving the customer reads the customer's earlier, complete conversations
    /// on the same entry point, as the store hands them back, and nothing else: not one on
    /// another entry point, not another customer's, not once it left, and another agent
    /// not at all. [`Floor::may_read`] says the same.
    #[test]
    fn the_agent_serving_the_customer_reads_its_earlier_conversations() {
        let mut f = floor();
        let first = served(&mut f, "ep", "a2", T0);
        let first = finish(&mut f, &first, "a2", T0 + 10);
        let elsewhere = served(&mut f, "ep2", "a2", T0 + 20);
        let elsewhere = finish(&mut f, &elsewhere, "a2", T0 + 30);
        let mut other_customer = first.clone();
        other_customer.id = "c-other".into();
        other_customer.customer.id = "u2".into();
        let (a1, a2) = (Principal::Agent("a1".into()), Principal::Agent("a2".into()));
        // Nobody serves u now: a1 reads none of them (a2 handled them, so reads them anyway).
        assert!(!f.reads_as_earlier("a1", &first));
        assert!(!f.may_read(&a1, &first));
        assert!(f.may_read(&a2, &first));

        // a1 takes u's next conversation on ep.
        run(
            &mut f,
            Command::SetState {
                agent: "a2".into(),
                state: Presence::LoggedOut,
                idle_code: None,
            },
            T0 + 90,
        );
        let now = served(&mut f, "ep", "a1", T0 + 100);
        assert!(f.reads_as_earlier("a1", &first));
        assert!(f.may_read(&a1, &first));
        assert!(f.check_may_read(&a1, &first).is_ok());
        for e in [&elsewhere, &other_customer] {
            assert!(!f.reads_as_earlier("a1", e), "{}", e.id);
            assert_eq!(f.check_may_read(&a1, e).unwrap_err().code(), "forbidden");
        }
        // Not the conversation itself, nor one of u's not complete (it owes a wrap-up).
        let current = f.conversation(&now).cloned().unwrap();
        assert!(!f.reads_as_earlier("a1", &current));
        let mut unfinished = first.clone();
        unfinished.state = ConversationState::Active;
        assert!(!f.reads_as_earlier("a1", &unfinished));
        // One that arrived after it (a clock set back) is not earlier.
        let mut later = first.clone();
        later.history.arrived_at = T0 + 200;
        assert!(!f.reads_as_earlier("a1", &later));
        // Once a1 ended u's conversation it serves u no more.
        run(
            &mut f,
            Command::End {
                agent: "a1".into(),
                conversation: now.clone(),
            },
            T0 + 300,
        );
        assert!(!f.reads_as_earlier("a1", &first));
        assert!(!f.may_read(&a1, &first));
    }
}
