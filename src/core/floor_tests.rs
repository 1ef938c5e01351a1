//! Table-driven tests of every ../shared/SPEC.md rule, through one small [`check`] helper.
//!
//! Each table is a script of operations and expectations with the outcome each must
//! have (`"ok"` or an error code). The floor has queues q1 (agents a1, a2, a4) and q2
//! (a2, a3); entry points e1 → q1 and e2 → q2; a4 has capacity 2. Timeouts are 1000 ms
//! for every kind of offer; `Tick` advances the virtual clock and fires due timers.

use super::*;
use crate::core::Account;

#[derive(Debug, Clone, Copy)]
enum Op {
    Avail(&'static str),
    Idle(&'static str, &'static str),
    Logout(&'static str),
    /// A customer writes on an entry point.
    Msg(&'static str, &'static str),
    /// The customer of a conversation writes.
    Reply(&'static str),
    Accept(&'static str, &'static str),
    Send(&'static str, &'static str),
    Tick(u64),
    TransferTo(&'static str, &'static str, &'static str),
    TransferToQueue(&'static str, &'static str, &'static str),
    Conference(&'static str, &'static str, &'static str),
    Exit(&'static str, &'static str),
    EndConference(&'static str, &'static str),
    End(&'static str, &'static str),
    CustomerEnd(&'static str),
    Wrapup(&'static str, &'static str, &'static str),
    /// Conversation state: `queued`, `offered:a1`, `active:a1`, `active:a1+a2`
    /// (owner + guest), `requested:a1>a2` (owner, invited), `ended:reason`.
    Is(&'static str, &'static str),
    /// Agent presence and load: `available/1`, `rona/0`, ...
    Agent(&'static str, &'static str),
    /// The waiting order of a queue, comma separated.
    Waiting(&'static str, &'static str),
    /// The transcript's texts, `|` separated.
    Transcript(&'static str, &'static str),
    /// Whether the floor still holds the conversation: `held` or `gone` (finished).
    Held(&'static str, &'static str),
}
use Op::*;

fn floor(no_answer: TransferNoAnswer, auto_wrapup: u64) -> Floor {
    let mut f = Floor::new(Rules {
        offer_timeout_ms: 1000,
        transfer_timeout_ms: 1000,
        conference_timeout_ms: 1000,
        transfer_no_answer: no_answer,
        auto_wrapup_after_ms: auto_wrapup,
        ..Rules::default()
    });
    for (q, name) in [("q1", "One"), ("q2", "Two")] {
        f.create_queue(q, name, Vec::new(), None, None, None).expect("queue");
    }
    for (e, q) in [("e1", "q1"), ("e2", "q2")] {
        let ep = EntryPoint {
            id: e.into(),
            name: format!("Page {e}"),
            queue: q.into(),
            page_id: None,
            page_access_token: None,

            ..Default::default()
        };
        f.create_entry_point(ep).expect("entry point");
    }
    for (a, qs, cap) in [
        ("a1", &["q1"][..], 1),
        ("a2", &["q1", "q2"][..], 1),
        ("a3", &["q2"][..], 1),
        ("a4", &["q1"][..], 2),
    ] {
        let name = format!("Agent {}", &a[1..]);
        f.create_agent(
            a,
            &name,
            qs.iter().map(|q| q.to_string()).collect(),
            cap,
            Account::default(),
            Skills::new(),
            0,
        )
        .expect("agent");
    }
    f
}

/// Finished conversations the floor let go of, as the store keeps them.
type Archive = std::collections::HashMap<ConversationId, Box<Conversation>>;

fn describe(f: &Floor, archive: &Archive, c: &str) -> String {
    let Some(c) = f.conversation(c).or_else(|| archive.get(c).map(|c| &**c)) else {
        return "missing".into();
    };
    match (c.state, &c.offer) {
        (ConversationState::Queued, _) => "queued".into(),
        (ConversationState::Offered, Some(o)) => format!("offered:{}", o.agent),
        (ConversationState::Active, Some(o)) => {
            format!("requested:{}>{}", c.owner.clone().unwrap_or_default(), o.agent)
        }
        (ConversationState::Active, None) => match &c.guest {
            Some(g) => format!("active:{}+{g}", c.owner.clone().unwrap_or_default()),
            None => format!("active:{}", c.owner.clone().unwrap_or_default()),
        },
        (ConversationState::Ended, _) => format!("ended:{}", c.ended_reason.clone().unwrap_or_default()),
        (s, o) => format!("{s:?}/{o:?}"),
    }
}

/// The conversation a command names, and what a finished one answers to it.
fn finished_act(op: &Op) -> Option<(&'static str, FinishedAct)> {
    Some(match *op {
        Accept(a, c) => (c, FinishedAct::Accept { agent: a.into() }),
        Wrapup(a, c, _) => (c, FinishedAct::Wrapup { agent: a.into() }),
        Reply(c) | CustomerEnd(c) => (c, FinishedAct::NeedsOpen),
        Send(_, c)
        | TransferTo(_, c, _)
        | TransferToQueue(_, c, _)
        | Conference(_, c, _)
        | Exit(_, c)
        | EndConference(_, c)
        | End(_, c) => (c, FinishedAct::NeedsOpen),
        _ => return None,
    })
}

/// Runs `rows` on a fresh floor; each row's outcome must be as given. Like the engine,
/// it takes the changes after every row (so finished conversations leave the floor),
/// keeps what left in an archive (the store), and answers a command on an archived
/// conversation with [`Floor::refusal_for_finished`]: the expectations are those of a
/// floor that never let go of anything.
fn check_with(mut f: Floor, rows: &[(Op, &str)]) {
    let mut archive = Archive::new();
    let mut now: Millis = 1_000;
    for (i, (op, want)) in rows.iter().enumerate() {
        now += 1;
        let r: Result<(), CoreError> = match *op {
            Avail(a) => f.set_state(a, Presence::Available, None, now).map(|_| ()),
            Idle(a, code) => f.set_state(a, Presence::Idle, Some(code.into()), now).map(|_| ()),
            Logout(a) => f.set_state(a, Presence::LoggedOut, None, now).map(|_| ()),
            Msg(ep, u) => {
                let customer = Customer {
                    id: u.into(),
                    name: format!("Customer {u}"),
                };
                f.customer_message(ep, customer, &format!("hi from {u}"), Channel::Rest, now)
                    .map(|_| ())
            }
            Reply(c) => f.customer_reply(c, "more", now).map(|_| ()),
            Accept(a, c) => f.accept(a, c, now).map(|_| ()),
            Send(a, c) => f.agent_message(a, c, &format!("{a} here"), now).map(|_| ()),
            Tick(ms) => {
                now += ms;
                f.fire_due(now);
                assert_eq!(f.overdue(now), Vec::<Timer>::new(), "a deadline the table missed");
                Ok(())
            }
            TransferTo(a, c, t) => f.transfer_to_agent(a, c, t, None, now),
            TransferToQueue(a, c, q) => f.transfer_to_queue(a, c, q, None, now),
            Conference(a, c, t) => f.conference(a, c, t, None, now),
            Exit(a, c) => f.exit_conference(a, c, now),
            EndConference(a, c) => f.end_conference(a, c, now),
            End(a, c) => f.end(a, c, now),
            CustomerEnd(c) => f.customer_end(c, now),
            Wrapup(a, c, r) => f.wrapup(a, c, r, now),
            Is(c, _) => Err(CoreError::InvalidInput(describe(&f, &archive, c))),
            Held(c, _) => Err(CoreError::InvalidInput(
                if f.conversation(c).is_some() { "held" } else { "gone" }.into(),
            )),
            Agent(a, _) => {
                let a = f.agent(a).expect("agent");
                Err(CoreError::InvalidInput(format!("{}/{}", a.presence.as_str(), a.load())))
            }
            Waiting(q, _) => {
                let q = f.queue(q).expect("queue");
                Err(CoreError::InvalidInput(
                    q.waiting.values().cloned().collect::<Vec<_>>().join(","),
                ))
            }
            Transcript(c, _) => {
                let c = f
                    .conversation(c)
                    .or_else(|| archive.get(c).map(|c| &**c))
                    .expect("conversation");
                Err(CoreError::InvalidInput(
                    c.transcript
                        .iter()
                        .map(|m| m.text.as_str())
                        .collect::<Vec<_>>()
                        .join("|"),
                ))
            }
        };
        let r = match (r, finished_act(op)) {
            (Err(CoreError::UnknownConversation(id)), Some((c, act))) if id == c && archive.contains_key(c) => {
                Err(Floor::refusal_for_finished(&archive[c], &act))
            }
            (r, _) => r,
        };
        let got = match (&r, op) {
            (Err(CoreError::InvalidInput(s)), Is(..) | Agent(..) | Waiting(..) | Transcript(..) | Held(..)) => {
                s.clone()
            }
            (Ok(()), _) => "ok".into(),
            (Err(e), _) => e.code().into(),
        };
        let want = match op {
            Is(_, w) | Agent(_, w) | Waiting(_, w) | Transcript(_, w) | Held(_, w) => *w,
            _ => want,
        };
        assert_eq!(got, want, "row {i}: {op:?}");
        f.take_effects();
        let changes = f.take_changes();
        for c in f.take_evicted() {
            // The final record went out with the changes that evicted it.
            assert!(
                changes.iter().any(
                    |ch| matches!(ch, Change::Conversation(r) if r.id == c.id && r.state == ConversationState::Ended)
                ),
                "row {i}: {} left the floor without its final record",
                c.id
            );
            // And its report record, exactly once (../shared/SPEC.md invariant 10).
            let n = changes
                .iter()
                .filter(|ch| matches!(ch, Change::Record(r) if r.id == c.id))
                .count();
            assert_eq!(n, 1, "row {i}: {} finished with {n} records", c.id);
            archive.insert(c.id.clone(), c);
        }
        for ch in &changes {
            if let Change::Record(r) = ch {
                assert!(
                    archive.contains_key(&r.id),
                    "row {i}: a record of {}, which did not finish",
                    r.id
                );
            }
        }
        let v = super::super::invariants::check(&f);
        assert!(v.is_empty(), "row {i}: {op:?} broke invariants: {v:?}");
    }
}

fn check(rows: &[(Op, &str)]) {
    check_with(floor(TransferNoAnswer::Drop, 0), rows)
}

/// Expectation rows carry their expected value inside the op.
const E: &str = "";

#[test]
fn arrival_and_offer() {
    check(&[
        (Msg("e1", "u1"), "ok"),
        (Is("c-1", "queued"), E),
        (Msg("e1", "u1"), "ok"), // the same customer joins the open conversation
        (Transcript("c-1", "hi from u1|hi from u1"), E),
        (Avail("a1"), "ok"),
        (Is("c-1", "offered:a1"), E),
        (Agent("a1", "available/1"), E),
        (Msg("nope", "u2"), "unknown_entry_point"),
    ]);
}

#[test]
fn longest_free_agent_gets_the_offer() {
    check(&[
        (Avail("a2"), "ok"),
        (Avail("a1"), "ok"),
        (Msg("e1", "u1"), "ok"),
        (Is("c-1", "offered:a2"), E),
        (Msg("e1", "u2"), "ok"),
        (Is("c-2", "offered:a1"), E),
    ]);
}

#[test]
fn freed_agent_takes_oldest_across_its_queues() {
    check(&[
        (Msg("e2", "u1"), "ok"),
        (Tick(10), "ok"),
        (Msg("e1", "u2"), "ok"),
        (Avail("a2"), "ok"), // serves q1 and q2: the q2 conversation is older
        (Is("c-1", "offered:a2"), E),
        (Is("c-2", "queued"), E),
        (Waiting("q1", "c-2"), E),
    ]);
}

#[test]
fn only_the_offered_agent_accepts_in_time() {
    check(&[
        (Avail("a1"), "ok"),
        (Msg("e1", "u1"), "ok"),
        (Accept("a2", "c-1"), "not_offered_to_you"),
        (Accept("a1", "c-9"), "unknown_conversation"),
        (Accept("a1", "c-1"), "ok"),
        (Is("c-1", "active:a1"), E),
        (Accept("a1", "c-1"), "not_offered_to_you"),
    ]);
}

#[test]
fn accept_after_the_deadline_is_an_expiry() {
    check(&[
        (Avail("a1"), "ok"),
        (Msg("e1", "u1"), "ok"),
        // The deadline passes but the timer has not fired yet (no Tick): accept still loses.
        (Reply("c-1"), "ok"),
        (Agent("a1", "available/1"), E),
    ]);
    let mut f = floor(TransferNoAnswer::Drop, 0);
    f.set_state("a1", Presence::Available, None, 10).expect("available");
    let customer = Customer {
        id: "u1".into(),
        name: "U".into(),
    };
    f.customer_message("e1", customer, "hi", Channel::Rest, 20)
        .expect("message");
    assert_eq!(
        f.accept("a1", "c-1", 20 + 1000).map(|_| ()).unwrap_err().code(),
        "offer_expired"
    );
    assert_eq!(f.agent("a1").map(|a| a.presence), Some(Presence::Rona));
    assert_eq!(describe(&f, &Archive::new(), "c-1"), "queued");
}

#[test]
fn expiry_puts_agent_in_rona_and_requeues_keeping_place() {
    check(&[
        (Avail("a1"), "ok"),
        (Msg("e1", "u1"), "ok"),
        (Msg("e1", "u2"), "ok"),
        (Tick(1000), "ok"),
        (Agent("a1", "rona/0"), E),
        (Waiting("q1", "c-1,c-2"), E), // c-1 keeps its place ahead of c-2
        (Avail("a4"), "ok"),
        (Is("c-1", "offered:a4"), E),
        (Is("c-2", "offered:a4"), E), // capacity 2
        (Agent("a4", "available/2"), E),
        (Tick(5000), "ok"),
        (Agent("a1", "rona/0"), E), // never automatically
        (Logout("a1"), "invalid_state"),
        (Idle("a1", "break"), "ok"),
    ]);
}

#[test]
fn expired_agent_is_not_offered_the_same_conversation_while_another_is_eligible() {
    check(&[
        (Avail("a1"), "ok"),
        (Msg("e1", "u1"), "ok"),
        (Avail("a2"), "ok"),
        (Tick(1000), "ok"), // a1 lets c-1 expire; a2 gets it
        (Is("c-1", "offered:a2"), E),
        (Avail("a1"), "ok"), // a1 is now free longer than a4
        (Avail("a4"), "ok"),
        (Tick(1000), "ok"), // a2 lets it expire too: a4, not a1, gets it
        (Is("c-1", "offered:a4"), E),
    ]);
    // With no other eligible agent, the agent that let it expire gets it again.
    check(&[
        (Avail("a1"), "ok"),
        (Msg("e1", "u1"), "ok"),
        (Tick(1000), "ok"),
        (Is("c-1", "queued"), E),
        (Avail("a1"), "ok"),
        (Is("c-1", "offered:a1"), E),
    ]);
}

#[test]
fn presence_rules() {
    check(&[
        (Idle("a1", "unknown-code"), "unknown_idle_code"),
        (Idle("a1", "break"), "ok"),
        (Msg("e1", "u1"), "ok"),
        (Is("c-1", "queued"), E), // idle receives no offer
        (Avail("a1"), "ok"),
        (Accept("a1", "c-1"), "ok"),
        (Logout("a1"), "agent_busy"),
        (End("a1", "c-1"), "ok"),
        (Logout("a1"), "agent_busy"), // the wrap-up is still owed
        (Wrapup("a1", "c-1", "resolved"), "ok"),
        (Logout("a1"), "ok"),
        (Logout("a9"), "unknown_agent"),
    ]);
}

#[test]
fn messages() {
    check(&[
        (Avail("a1"), "ok"),
        (Msg("e1", "u1"), "ok"),
        (Send("a1", "c-1"), "not_in_conversation"), // offered, not yet accepted
        (Reply("c-1"), "ok"),                       // the customer may always write
        (Accept("a1", "c-1"), "ok"),
        (Send("a1", "c-1"), "ok"),
        (Send("a2", "c-1"), "not_in_conversation"),
        (Transcript("c-1", "hi from u1|more|a1 here"), E),
        (End("a1", "c-1"), "ok"),
        (Send("a1", "c-1"), "conversation_ended"),
        (Reply("c-1"), "conversation_ended"),
    ]);
}

#[test]
fn transfer_to_agent() {
    check(&[
        (Avail("a1"), "ok"),
        (Msg("e1", "u1"), "ok"),
        (Accept("a1", "c-1"), "ok"),
        (TransferTo("a1", "c-1", "a2"), "agent_unavailable"), // a2 is logged out
        (TransferTo("a1", "c-1", "a1"), "invalid_input"),
        (TransferTo("a2", "c-1", "a1"), "not_owner"),
        (Avail("a2"), "ok"),
        (TransferTo("a1", "c-1", "a2"), "ok"),
        (Is("c-1", "offered:a2"), E),
        (Agent("a1", "available/1"), E), // owes the wrap-up
        (Send("a1", "c-1"), "not_in_conversation"),
        (Accept("a2", "c-1"), "ok"),
        (Is("c-1", "active:a2"), E),
        (Wrapup("a1", "c-1", "resolved"), "ok"),
        (Agent("a1", "available/0"), E),
    ]);
}

#[test]
fn untaken_transfer_is_dropped() {
    check(&[
        (Avail("a1"), "ok"),
        (Msg("e1", "u1"), "ok"),
        (Accept("a1", "c-1"), "ok"),
        (Avail("a2"), "ok"),
        (TransferTo("a1", "c-1", "a2"), "ok"),
        (Tick(1000), "ok"),
        (Is("c-1", "ended:transfer_not_accepted"), E),
        (Agent("a2", "rona/0"), E),
        (Agent("a1", "available/1"), E),
    ]);
}

#[test]
fn untaken_transfer_is_requeued_when_configured() {
    check_with(
        floor(TransferNoAnswer::Requeue, 0),
        &[
            (Avail("a1"), "ok"),
            (Msg("e1", "u1"), "ok"),
            (Accept("a1", "c-1"), "ok"),
            (Avail("a2"), "ok"),
            (TransferTo("a1", "c-1", "a2"), "ok"),
            (Tick(1000), "ok"),
            (Is("c-1", "queued"), E),
            (Agent("a2", "rona/0"), E),
            (Avail("a4"), "ok"),
            (Is("c-1", "offered:a4"), E),
        ],
    );
}

#[test]
fn transfer_to_queue() {
    check(&[
        (Avail("a1"), "ok"),
        (Msg("e1", "u1"), "ok"),
        (Accept("a1", "c-1"), "ok"),
        (TransferToQueue("a1", "c-1", "nope"), "unknown_queue"),
        (TransferToQueue("a1", "c-1", "q2"), "ok"),
        (Is("c-1", "queued"), E),
        (Waiting("q2", "c-1"), E),
        (Avail("a3"), "ok"),
        (Is("c-1", "offered:a3"), E),
        (TransferToQueue("a3", "c-1", "q1"), "invalid_state"), // not yet accepted
    ]);
}

#[test]
fn conference() {
    check(&[
        (Avail("a1"), "ok"),
        (Msg("e1", "u1"), "ok"),
        (Accept("a1", "c-1"), "ok"),
        (Avail("a2"), "ok"),
        (Conference("a1", "c-1", "a2"), "ok"),
        (Is("c-1", "requested:a1>a2"), E),
        (Conference("a1", "c-1", "a4"), "conference_in_progress"),
        (TransferToQueue("a1", "c-1", "q2"), "conference_in_progress"),
        (Send("a1", "c-1"), "ok"), // the chat goes on meanwhile
        (Accept("a2", "c-1"), "ok"),
        (Is("c-1", "active:a1+a2"), E),
        (Send("a2", "c-1"), "ok"),
        (Exit("a1", "c-1"), "not_guest"),
        (Exit("a2", "c-1"), "ok"),
        (Is("c-1", "active:a1"), E),
        (
            Transcript(
                "c-1",
                "hi from u1|a1 here|Agent 2 has joined the chat|a2 here|Agent 2 has left the chat",
            ),
            E,
        ),
        (Agent("a2", "available/1"), E), // owes its wrap-up
        (Wrapup("a2", "c-1", "resolved"), "ok"),
    ]);
}

#[test]
fn conference_offer_expiry() {
    check(&[
        (Avail("a1"), "ok"),
        (Msg("e1", "u1"), "ok"),
        (Accept("a1", "c-1"), "ok"),
        (Avail("a2"), "ok"),
        (Conference("a1", "c-1", "a2"), "ok"),
        (Tick(1000), "ok"),
        (Is("c-1", "active:a1"), E),
        (Agent("a2", "rona/0"), E),
        (EndConference("a1", "c-1"), "no_conference"),
    ]);
}

#[test]
fn end_conference_ends_for_everyone() {
    check(&[
        (Avail("a1"), "ok"),
        (Msg("e1", "u1"), "ok"),
        (Accept("a1", "c-1"), "ok"),
        (Avail("a2"), "ok"),
        (Conference("a1", "c-1", "a2"), "ok"),
        (Accept("a2", "c-1"), "ok"),
        (EndConference("a2", "c-1"), "not_owner"),
        (EndConference("a1", "c-1"), "ok"),
        (Is("c-1", "ended:agent_ended"), E),
        (Agent("a1", "available/1"), E),
        (Agent("a2", "available/1"), E),
        (Wrapup("a1", "c-1", "resolved"), "ok"),
        (Wrapup("a2", "c-1", "resolved"), "ok"),
        (Wrapup("a2", "c-1", "resolved"), "no_wrapup_owed"),
    ]);
}

#[test]
fn ending_with_a_pending_conference_offer_withdraws_it() {
    check(&[
        (Avail("a1"), "ok"),
        (Msg("e1", "u1"), "ok"),
        (Accept("a1", "c-1"), "ok"),
        (Avail("a2"), "ok"),
        (Conference("a1", "c-1", "a2"), "ok"),
        (End("a1", "c-1"), "ok"),
        (Agent("a2", "available/0"), E),
        (Accept("a2", "c-1"), "not_offered_to_you"),
    ]);
}

#[test]
fn customer_ends() {
    check(&[
        (Msg("e1", "u1"), "ok"),
        (CustomerEnd("c-1"), "ok"), // while queued
        (Is("c-1", "ended:customer_ended"), E),
        (Waiting("q1", ""), E),
        (Avail("a1"), "ok"),
        (Msg("e1", "u2"), "ok"),
        (CustomerEnd("c-2"), "ok"), // while offered: the offer is withdrawn, no wrap-up
        (Agent("a1", "available/0"), E),
        (Msg("e1", "u3"), "ok"),
        (Accept("a1", "c-3"), "ok"),
        (CustomerEnd("c-3"), "ok"), // while active: the owner owes a wrap-up
        (Agent("a1", "available/1"), E),
        (CustomerEnd("c-3"), "conversation_ended"),
        (Msg("e1", "u3"), "ok"), // a new message opens a new conversation
        (Is("c-4", "queued"), E),
    ]);
}

#[test]
fn wrapup_frees_the_slot_for_the_next_conversation() {
    check(&[
        (Avail("a1"), "ok"),
        (Msg("e1", "u1"), "ok"),
        (Msg("e1", "u2"), "ok"),
        (Accept("a1", "c-1"), "ok"),
        (End("a1", "c-1"), "ok"),
        (Is("c-2", "queued"), E), // the wrap-up holds the slot
        (Wrapup("a1", "c-1", "bogus"), "unknown_wrapup_reason"),
        (Wrapup("a2", "c-1", "resolved"), "no_wrapup_owed"),
        (Wrapup("a1", "c-1", "resolved"), "ok"),
        (Is("c-2", "offered:a1"), E),
    ]);
}

#[test]
fn automatic_wrapup() {
    check_with(
        floor(TransferNoAnswer::Drop, 5000),
        &[
            (Avail("a1"), "ok"),
            (Msg("e1", "u1"), "ok"),
            (Msg("e1", "u2"), "ok"),
            (Accept("a1", "c-1"), "ok"),
            (End("a1", "c-1"), "ok"),
            (Tick(4000), "ok"),
            (Agent("a1", "available/1"), E),
            (Tick(1000), "ok"),
            (Is("c-2", "offered:a1"), E),
        ],
    );
}

#[test]
fn leaving_a_conversation_twice_owes_one_wrapup() {
    // a1 transfers c-1 to q1 (owes a wrap-up), is offered c-1 again (capacity 2: a4).
    check(&[
        (Avail("a4"), "ok"),
        (Msg("e1", "u1"), "ok"),
        (Accept("a4", "c-1"), "ok"),
        (TransferToQueue("a4", "c-1", "q1"), "ok"),
        (Is("c-1", "offered:a4"), E),
        (Accept("a4", "c-1"), "ok"),
        (Agent("a4", "available/2"), E),
        (End("a4", "c-1"), "ok"),
        (Agent("a4", "available/1"), E),
        (Wrapup("a4", "c-1", "resolved"), "ok"),
        (Agent("a4", "available/0"), E),
    ]);
}

#[test]
fn bad_input_changes_nothing() {
    let mut f = floor(TransferNoAnswer::Drop, 0);
    f.take_changes();
    f.take_effects();
    let before = format!("{:?}", f.agents().map(|a| a.id.clone()).collect::<Vec<_>>());
    assert_eq!(
        f.create_agent("bad id", "X", vec![], 1, Account::default(), Skills::new(), 0)
            .map(|_| ())
            .unwrap_err()
            .code(),
        "invalid_input"
    );
    assert_eq!(
        f.create_agent("a1", "X", vec![], 1, Account::default(), Skills::new(), 0)
            .map(|_| ())
            .unwrap_err()
            .code(),
        "already_exists"
    );
    assert_eq!(
        f.create_agent("a9", "X", vec!["q9".into()], 1, Account::default(), Skills::new(), 0)
            .map(|_| ())
            .unwrap_err()
            .code(),
        "unknown_queue"
    );
    assert_eq!(
        f.create_agent("a9", "X", vec![], 0, Account::default(), Skills::new(), 0)
            .map(|_| ())
            .unwrap_err()
            .code(),
        "invalid_input"
    );
    assert_eq!(
        f.create_queue("q1", "Again", Vec::new(), None, None, None)
            .map(|_| ())
            .unwrap_err()
            .code(),
        "already_exists"
    );
    let c = Customer {
        id: "u1".into(),
        name: "U".into(),
    };
    assert_eq!(
        f.customer_message("e1", c.clone(), "  ", Channel::Rest, 1)
            .map(|_| ())
            .unwrap_err()
            .code(),
        "invalid_input"
    );
    let long = "x".repeat(MAX_TEXT_CHARS + 1);
    assert_eq!(
        f.customer_message("e1", c, &long, Channel::Rest, 1)
            .map(|_| ())
            .unwrap_err()
            .code(),
        "invalid_input"
    );
    assert!(f.take_changes().is_empty(), "a refused operation records no change");
    assert!(f.take_effects().is_empty(), "a refused operation has no effect");
    assert_eq!(
        before,
        format!("{:?}", f.agents().map(|a| a.id.clone()).collect::<Vec<_>>())
    );
}

/// A timer that fires a millisecond early is armed again, never dropped: otherwise an
/// offer nobody answers would stay pending forever.
#[test]
fn an_early_timer_is_armed_again() {
    let mut f = floor(TransferNoAnswer::Drop, 0);
    f.set_state("a1", Presence::Available, None, 10).expect("available");
    let customer = Customer {
        id: "u1".into(),
        name: "U".into(),
    };
    f.customer_message("e1", customer, "hi", Channel::Rest, 20)
        .expect("message");
    let offer = f.conversation("c-1").and_then(|c| c.offer.clone()).expect("offer");
    assert_eq!(f.next_deadline(), Some(offer.expires_at));
    // The shell's timer wakes a millisecond early: nothing is due yet.
    assert_eq!(f.fire_due(offer.expires_at - 1), 0);
    // Fired early all the same (a clock that lags), the deadline is armed again.
    f.offer_timer("c-1", offer.id, offer.expires_at - 1);
    assert_eq!(f.next_deadline(), Some(offer.expires_at));
    assert_eq!(describe(&f, &Archive::new(), "c-1"), "offered:a1");
    assert_eq!(f.fire_due(offer.expires_at), 1);
    assert_eq!(describe(&f, &Archive::new(), "c-1"), "queued");
    assert_eq!(f.agent("a1").map(|a| a.presence), Some(Presence::Rona));
}

/// A conversation leaves the floor once it is finished: ended, and every wrap-up it
/// required submitted. Ended but still owed a wrap-up, it stays; a command on it after it
/// left answers as before (through the archive, as the engine does through the store).
#[test]
fn a_finished_conversation_leaves_the_floor() {
    check(&[
        (Avail("a1"), "ok"),
        (Msg("e1", "u1"), "ok"),
        (Accept("a1", "c-1"), "ok"),
        (End("a1", "c-1"), "ok"),
        // Ended, but a1 owes the wrap-up: still held, and still a1's slot.
        (Held("c-1", "held"), E),
        (Agent("a1", "available/1"), E),
        (End("a1", "c-1"), "conversation_ended"),
        (Wrapup("a1", "c-1", "resolved"), "ok"),
        (Held("c-1", "gone"), E),
        (Is("c-1", "ended:agent_ended"), E),
        (Transcript("c-1", "hi from u1"), E),
        (Agent("a1", "available/0"), E),
        // Every command on it answers what it answered while the floor held it.
        (Accept("a1", "c-1"), "not_offered_to_you"),
        (Accept("a2", "c-1"), "not_offered_to_you"),
        (Send("a1", "c-1"), "conversation_ended"),
        (Reply("c-1"), "conversation_ended"),
        (TransferTo("a1", "c-1", "a2"), "conversation_ended"),
        (TransferToQueue("a1", "c-1", "q2"), "conversation_ended"),
        (Conference("a1", "c-1", "a2"), "conversation_ended"),
        (Exit("a1", "c-1"), "conversation_ended"),
        (EndConference("a1", "c-1"), "conversation_ended"),
        (End("a1", "c-1"), "conversation_ended"),
        (CustomerEnd("c-1"), "conversation_ended"),
        (Wrapup("a1", "c-1", "resolved"), "no_wrapup_owed"),
        (Wrapup("a1", "c-1", "bogus"), "unknown_wrapup_reason"),
        (Accept("a9", "c-1"), "unknown_agent"),
        (Accept("a1", "c-9"), "unknown_conversation"),
        // The customer writes again: a new conversation.
        (Msg("e1", "u1"), "ok"),
        (Is("c-2", "offered:a1"), E),
    ]);
}

/// Ended while queued or offered, nobody owes a wrap-up: it leaves at once. With an owner
/// and a guest, it stays until both have wrapped up; a transferring owner's wrap-up keeps
/// it too, however it ended.
#[test]
fn a_conversation_stays_while_any_wrapup_is_owed() {
    check(&[
        (Msg("e1", "u1"), "ok"),
        (CustomerEnd("c-1"), "ok"), // queued: nobody owes anything
        (Held("c-1", "gone"), E),
        (Is("c-1", "ended:customer_ended"), E),
        (Avail("a1"), "ok"),
        (Avail("a2"), "ok"),
        (Avail("a3"), "ok"),
        (Msg("e1", "u2"), "ok"),
        (Accept("a1", "c-2"), "ok"),
        (Conference("a1", "c-2", "a2"), "ok"),
        (Accept("a2", "c-2"), "ok"),
        (EndConference("a1", "c-2"), "ok"),
        (Wrapup("a1", "c-2", "resolved"), "ok"),
        (Held("c-2", "held"), E), // a2 still owes its wrap-up
        (Exit("a2", "c-2"), "conversation_ended"),
        (Wrapup("a2", "c-2", "other"), "ok"),
        (Held("c-2", "gone"), E),
        (Exit("a2", "c-2"), "conversation_ended"),
        // a3 takes c-3 and transfers it to a1; a1's transfer offer expires: dropped.
        (Msg("e2", "u3"), "ok"),
        (Accept("a3", "c-3"), "ok"),
        (TransferTo("a3", "c-3", "a1"), "ok"),
        (Tick(1000), "ok"),
        (Is("c-3", "ended:transfer_not_accepted"), E),
        (Held("c-3", "held"), E), // a3 owes the wrap-up of the transfer
        (Accept("a1", "c-3"), "offer_expired"),
        (Wrapup("a3", "c-3", "resolved"), "ok"),
        (Held("c-3", "gone"), E),
        // a1 let the offer expire, so accepting it answers as before: offer_expired.
        (Accept("a1", "c-3"), "offer_expired"),
        (Accept("a2", "c-3"), "not_offered_to_you"),
    ]);
}

/// The automatic wrap-up finishes a conversation like a submitted one.
#[test]
fn the_automatic_wrapup_finishes_a_conversation() {
    check_with(
        floor(TransferNoAnswer::Drop, 5000),
        &[
            (Avail("a1"), "ok"),
            (Msg("e1", "u1"), "ok"),
            (Accept("a1", "c-1"), "ok"),
            (End("a1", "c-1"), "ok"),
            (Held("c-1", "held"), E),
            (Tick(5000), "ok"),
            (Held("c-1", "gone"), E),
            (Wrapup("a1", "c-1", "resolved"), "no_wrapup_owed"),
        ],
    );
}

/// Takes `f`'s changes and effects, keeping the conversations and agents as a store would.
fn keep_records(
    f: &mut Floor,
    records: &mut std::collections::BTreeMap<String, Conversation>,
    agents: &mut std::collections::BTreeMap<String, super::Agent>,
) {
    for ch in f.take_changes() {
        match ch {
            Change::Conversation(c) => {
                records.insert(c.id.clone(), *c);
            }
            Change::Agent(a) => {
                agents.insert(a.id.clone(), *a);
            }
            _ => {}
        }
    }
    f.take_effects();
}

/// Recovery leaves finished conversations out, whatever the store hands it, and keeps the
/// ones still owed a wrap-up with their counts.
#[test]
fn restore_leaves_finished_conversations_out() {
    let mut f = floor(TransferNoAnswer::Drop, 0);
    let mut now = 10;
    f.set_state("a1", Presence::Available, None, now).expect("available");
    let mut records: std::collections::BTreeMap<String, Conversation> = Default::default();
    let mut agents: std::collections::BTreeMap<String, super::Agent> = Default::default();
    let mut keep = |f: &mut Floor| keep_records(f, &mut records, &mut agents);
    for u in ["u1", "u2"] {
        now += 1;
        let customer = Customer {
            id: u.into(),
            name: u.into(),
        };
        f.customer_message("e1", customer, "hi", Channel::Rest, now)
            .expect("message");
        let id = f.open_conversation_of("e1", u).cloned().expect("open");
        f.accept("a1", &id, now).expect("accept");
        f.end("a1", &id, now).expect("end");
        keep(&mut f);
        if u == "u1" {
            f.wrapup("a1", &id, "resolved", now).expect("wrap-up");
            keep(&mut f);
        }
    }
    assert_eq!(f.conversations_held(), 1, "c-1 finished, c-2 owed a wrap-up");
    let r = Floor::restore(
        f.rules().clone(),
        f.queues().cloned().collect(),
        f.entry_points().cloned().collect(),
        agents.into_values().collect(),
        records.into_values().collect(),
        (3, 10, 3),
        now,
    );
    assert!(r.conversation("c-1").is_none());
    assert_eq!(r.wrapups_owed("c-2"), 1);
    assert!(r.conversation("c-2").is_some_and(|c| !r.is_finished(c)));
    assert_eq!(super::super::invariants::check(&r), Vec::<String>::new());
}

/// A pending offer at recovery: a restarted node makes it again to the same agent with a
/// fresh deadline and a new offer number (SPEC.md); a cluster's new owner
/// (`offers_keep_deadlines`) keeps it as it was, and it expires at its own time: RONA for
/// that agent, then the next one. One that expired while nobody owned the tenant expires at
/// once.
#[test]
fn restore_renews_a_pending_offer_or_keeps_its_deadline() {
    let mut f = floor(TransferNoAnswer::Drop, 0);
    let mut records: std::collections::BTreeMap<String, Conversation> = Default::default();
    let mut agents: std::collections::BTreeMap<String, super::Agent> = Default::default();
    for a in ["a1", "a2"] {
        f.set_state(a, Presence::Available, None, 10).expect("available");
    }
    let customer = Customer {
        id: "u1".into(),
        name: "U".into(),
    };
    f.customer_message("e1", customer, "hi", Channel::Rest, 20)
        .expect("message");
    keep_records(&mut f, &mut records, &mut agents);
    let offer = records["c-1"].offer.clone().expect("offered");
    assert_eq!(offer.expires_at, 1020);
    let restore = |keep: bool, now: Millis| {
        Floor::restore(
            Rules {
                offers_keep_deadlines: keep,
                ..f.rules().clone()
            },
            f.queues().cloned().collect(),
            f.entry_points().cloned().collect(),
            agents.values().cloned().collect(),
            records.values().cloned().collect(),
            (2, offer.id + 1, 2),
            now,
        )
    };
    // A restart at 500: the same agent, a fresh deadline, a new number.
    let r = restore(false, 500);
    let renewed = r.conversation("c-1").and_then(|c| c.offer.clone()).expect("offer");
    assert_eq!(
        (renewed.agent.as_str(), renewed.expires_at),
        (offer.agent.as_str(), 1500)
    );
    assert_ne!(renewed.id, offer.id);
    // A new owner at 500: the same offer, to expire at 1020, then the next agent.
    let mut r = restore(true, 500);
    assert_eq!(r.conversation("c-1").and_then(|c| c.offer.clone()), Some(offer.clone()));
    r.fire_until(1019);
    assert_eq!(r.conversation("c-1").and_then(|c| c.offer.clone()), Some(offer.clone()));
    r.fire_until(1020);
    let next = r
        .conversation("c-1")
        .and_then(|c| c.offer.clone())
        .expect("offered again");
    assert_ne!(next.agent, offer.agent);
    assert_eq!(r.agent(&offer.agent).map(|a| a.presence), Some(Presence::Rona));
    assert_eq!(super::super::invariants::check(&r), Vec::<String>::new());
    // A new owner after the deadline: it expires at once.
    let mut r = restore(true, 1500);
    assert_eq!(r.next_deadline(), Some(1020), "due already");
    r.fire_until(1500);
    let next = r
        .conversation("c-1")
        .and_then(|c| c.offer.clone())
        .expect("offered again");
    assert_ne!(next.agent, offer.agent);
}

#[test]
fn a_tenants_limits_refuse_one_more_and_change_nothing() {
    use crate::core::tenant::TenantLimits;
    // The floor holds 2 queues and 4 agents.
    let mut f = floor(TransferNoAnswer::Drop, 0);
    f.set_limits(TenantLimits {
        max_agents: Some(4),
        max_open_conversations: Some(1),
        max_queues: Some(2),
    });
    let agent = |f: &mut Floor, id: &str| {
        f.create_agent(id, "New", Vec::new(), 1, Account::default(), Skills::new(), 0)
            .map(|_| ())
    };
    assert_eq!(agent(&mut f, "a5").unwrap_err().code(), "tenant_limit");
    assert_eq!(
        f.create_queue("q3", "Three", Vec::new(), None, None, None)
            .map(|_| ())
            .unwrap_err()
            .code(),
        "tenant_limit"
    );
    let customer = |id: &str| Customer {
        id: id.into(),
        name: "U".into(),
    };
    f.customer_message("e1", customer("u1"), "hi", Channel::Rest, 1)
        .expect("the first");
    // Its customer writes again: the open conversation takes it.
    f.customer_message("e1", customer("u1"), "again", Channel::Rest, 2)
        .expect("joins");
    let refused = f
        .customer_message("e2", customer("u2"), "hi", Channel::Rest, 3)
        .unwrap_err();
    assert_eq!(refused.code(), "tenant_limit");
    assert!(f.agent("a5").is_none() && f.queue("q3").is_none() && f.conversation("c-2").is_none());
    // A lowered limit keeps what is there; a raised one takes one more.
    f.set_limits(TenantLimits {
        max_agents: Some(5),
        ..TenantLimits::default()
    });
    assert_eq!(f.agents().count(), 4);
    agent(&mut f, "a5").expect("under the raised limit");
    f.customer_message("e2", customer("u2"), "hi", Channel::Rest, 4)
        .expect("no limit");
}

/// A tenant's codes changed in a running floor: new ones are in force at once, and what
/// is under way keeps going (an agent idle with a code no longer listed stays idle; an
/// owed wrap-up is checked against the reasons in force when it is recorded, and an
/// automatic one records the default in force then).
#[test]
fn codes_changed_in_a_running_floor_leave_what_is_under_way() {
    let code = |c: &str| Code {
        code: c.into(),
        label: c.to_uppercase(),
    };
    let mut f = floor(TransferNoAnswer::Drop, 5000);
    let customer = |id: &str| Customer {
        id: id.into(),
        name: "U".into(),
    };
    f.set_state("a2", Presence::Idle, Some("meeting".into()), 1)
        .expect("a configured code");
    f.set_state("a1", Presence::Available, None, 1).expect("available");
    for (u, now) in [("u1", 2), ("u2", 3)] {
        f.customer_message("e1", customer(u), "hi", Channel::Rest, now)
            .expect("message");
    }
    f.accept("a1", "c-1", 4).expect("accept");
    f.end("a1", "c-1", 5).expect("end");
    f.take_effects();

    f.set_codes(Codes {
        wrapup_reasons: Arc::new(vec![code("done"), code("spam")]),
        default_wrapup_reason: "spam".into(),
        idle_codes: Arc::new(vec![code("training")]),
    });
    assert_eq!(f.agent("a2").and_then(|a| a.idle_code.as_deref()), Some("meeting"));
    assert_eq!(f.agent("a2").map(|a| a.presence), Some(Presence::Idle));
    let e = f
        .set_state("a3", Presence::Idle, Some("meeting".into()), 6)
        .map(|_| ())
        .unwrap_err();
    assert_eq!(e.code(), "unknown_idle_code");
    f.set_state("a3", Presence::Idle, Some("training".into()), 6)
        .expect("the tenant's code");
    // Idle without a code takes the first of the codes in force.
    f.set_state("a4", Presence::Idle, None, 6).expect("idle");
    assert_eq!(f.agent("a4").and_then(|a| a.idle_code.as_deref()), Some("training"));

    // c-1's wrap-up was owed before the change: it takes a reason in force now.
    assert_eq!(
        f.wrapup("a1", "c-1", "resolved", 7).unwrap_err().code(),
        "unknown_wrapup_reason"
    );
    f.wrapup("a1", "c-1", "done", 7).expect("a reason in force");
    // c-2 is offered to a1 now; its wrap-up required lists the reasons in force.
    f.accept("a1", "c-2", 8).expect("accept");
    f.take_effects();
    f.end("a1", "c-2", 9).expect("end");
    let reasons: Vec<String> = f
        .take_effects()
        .into_iter()
        .find_map(|e| match e {
            Effect::Notify {
                event: AgentEvent::WrapupRequired { reasons, .. },
                ..
            } => Some(reasons.iter().map(|r| r.code.clone()).collect()),
            _ => None,
        })
        .expect("wrapup_required");
    assert_eq!(reasons, ["done", "spam"]);
    f.fire_due(9 + 5000);
    let auto = f.take_effects().into_iter().find_map(|e| match e {
        Effect::Observe(Observation::WrappedUp { reason, .. }) => Some(reason),
        _ => None,
    });
    assert_eq!(auto.as_deref(), Some("spam"), "the default in force");
}
