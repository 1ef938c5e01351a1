//! Scripted conversations and their records, every field checked by hand; and the
//! small rules of records (outcome, filter, paging, cursor) as tables.

use super::*;
use crate::core::{Account, Change, EntryPoint, Floor, Presence, Queue, Rules, Skills};

/// Queues q1 (a1, a2) and q2 (a3), entry points e1 → q1 and e2 → q2; every offer runs
/// 1000 ms; customers close for inactivity after `inactivity_ms` (0: never).
fn floor(inactivity_ms: u64) -> Floor {
    floor_with(rules(inactivity_ms))
}

fn rules(inactivity_ms: u64) -> Rules {
    Rules {
        offer_timeout_ms: 1000,
        transfer_timeout_ms: 1000,
        conference_timeout_ms: 1000,
        inactivity_close_ms: inactivity_ms,
        ..Rules::default()
    }
}

fn floor_with(rules: Rules) -> Floor {
    let queues = vec![
        Queue::new("q1".into(), "One".into()),
        Queue::new("q2".into(), "Two".into()),
    ];
    let mut f = Floor::restore(rules, queues, Vec::new(), Vec::new(), Vec::new(), (1, 1, 1), 0);
    for (e, q) in [("e1", "q1"), ("e2", "q2")] {
        let ep = EntryPoint {
            id: e.into(),
            name: format!("Page {e}"),
            queue: q.into(),
            ..Default::default()
        };
        f.create_entry_point(ep).expect("entry point");
    }
    for (a, q) in [("a1", "q1"), ("a2", "q1"), ("a3", "q2")] {
        f.create_agent(a, a, vec![q.into()], 1, Account::default(), Skills::new(), 0)
            .expect("agent");
    }
    f
}

fn customer(id: &str) -> Customer {
    Customer {
        id: id.into(),
        name: format!("Customer {id}"),
    }
}

/// The records among the changes owed now (taking them, as the router does).
fn records(f: &mut Floor) -> Vec<ConversationRecord> {
    f.take_effects();
    f.take_changes()
        .into_iter()
        .filter_map(|c| match c {
            Change::Record(r) => Some(*r),
            _ => None,
        })
        .collect()
}

fn ok<T, E: std::fmt::Debug>(r: Result<T, E>) {
    if let Err(e) = r {
        panic!("refused: {e:?}");
    }
}

/// Arrival, a RONA, a re-offer, accept, a reply, a transfer to an agent, accept, end,
/// and two wrap-ups: the record comes with the last wrap-up, once, and says all of it.
#[test]
fn a_transferred_conversation_is_recorded_whole_with_its_last_wrapup() {
    let mut f = floor(0);
    ok(f.set_state("a1", Presence::Available, None, 1000));
    ok(f.set_state("a2", Presence::Available, None, 1001));
    ok(f.set_state("a3", Presence::Available, None, 1002));
    ok(f.customer_message("e1", customer("u1"), "hello", Channel::Rest, 2000));
    assert_eq!(
        f.conversation("c-1")
            .and_then(|c| c.offer.as_ref())
            .map(|o| o.agent.as_str()),
        Some("a1")
    );
    assert!(records(&mut f).is_empty());
    // a1 lets the offer expire: RONA, and a2 gets it.
    assert_eq!(f.fire_due(3000), 1);
    assert_eq!(
        f.conversation("c-1")
            .and_then(|c| c.offer.as_ref())
            .map(|o| o.agent.as_str()),
        Some("a2")
    );
    ok(f.accept("a2", "c-1", 3500));
    ok(f.agent_message("a2", "c-1", "how can I help?", 4000));
    ok(f.transfer_to_agent("a2", "c-1", "a3", None, 5000));
    ok(f.accept("a3", "c-1", 5200));
    ok(f.agent_message("a3", "c-1", "a3 here", 5300));
    ok(f.wrapup("a2", "c-1", "escalated", 6000));
    ok(f.end("a3", "c-1", 7000));
    assert!(records(&mut f).is_empty(), "not complete while a3 owes its wrap-up");
    ok(f.wrapup("a3", "c-1", "resolved", 9000));
    let got = records(&mut f);
    let want = ConversationRecord {
        id: "c-1".into(),
        channel: Channel::Rest,
        entry_point: Some("e1".into()),
        source_page: "Page e1".into(),
        customer: customer("u1"),
        queues: vec!["q1".into()],
        agents: vec![
            RecordAgent {
                agent: "a2".into(),
                guest: false,
                joined_at: 3500,
                left_at: 5000,
                handle_ms: 1500,
                wrapup_reason: Some("escalated".into()),
                wrapped_up_at: Some(6000),
                wrapup_automatic: false,
            },
            RecordAgent {
                agent: "a3".into(),
                guest: false,
                joined_at: 5200,
                left_at: 7000,
                handle_ms: 1800,
                wrapup_reason: Some("resolved".into()),
                wrapped_up_at: Some(9000),
                wrapup_automatic: false,
            },
        ],
        arrived_at: 2000,
        first_offered_at: Some(2000),
        accepted_at: Some(3500),
        first_agent_reply_at: Some(4000),
        ended_at: 7000,
        wrapped_up_at: Some(9000),
        ended_reason: "agent_ended".into(),
        outcome: Outcome::Transferred,
        wrapup_reason: Some("resolved".into()),
        rona_count: 1,
        transfers: 1,
        satisfaction: None,
    };
    assert_eq!(got, vec![want]);
    assert!(f.conversation("c-1").is_none(), "complete: the floor let go of it");
    assert!(records(&mut f).is_empty(), "once");
}

/// Every change of the history is among the changes of the operation that made it (the
/// conversation's record is written again), so a restart never loses any of it: after
/// each step, the last written record holds the floor's history.
#[test]
fn every_change_of_the_history_is_written() {
    let mut f = floor(0);
    let mut written: Option<History> = None;
    let mut step = |f: &mut Floor, what: &str| {
        f.take_effects();
        for c in f.take_changes() {
            if let Change::Conversation(c) = c {
                written = Some(c.history.clone());
            }
        }
        if let Some(live) = f.conversation("c-1") {
            assert_eq!(written.as_ref(), Some(&live.history), "after {what}");
        }
    };
    ok(f.set_state("a1", Presence::Available, None, 1000));
    ok(f.set_state("a2", Presence::Available, None, 1001));
    ok(f.customer_message("e1", customer("u1"), "hello", Channel::Rest, 2000));
    step(&mut f, "arrival and offer");
    assert_eq!(f.fire_due(3000), 1);
    step(&mut f, "rona");
    ok(f.accept("a2", "c-1", 3100));
    step(&mut f, "accept");
    ok(f.customer_reply("c-1", "are you there?", 3150));
    step(&mut f, "a customer message");
    ok(f.agent_message("a2", "c-1", "yes", 3200));
    step(&mut f, "first reply");
    ok(f.agent_message("a2", "c-1", "still here", 3300));
    step(&mut f, "second reply");
    ok(f.transfer_to_queue("a2", "c-1", "q2", None, 3400));
    step(&mut f, "transfer");
    ok(f.set_state("a3", Presence::Available, None, 3500));
    ok(f.accept("a3", "c-1", 3600));
    step(&mut f, "accept in q2");
    ok(f.end("a3", "c-1", 3700));
    step(&mut f, "end");
}

/// A transfer to a queue adds the queue; arrival stays the first message's time even
/// though the conversation's `received_at` restarts in the new queue; a conference
/// guest is an agent of the record too.
#[test]
fn a_queue_transfer_and_a_guest_are_recorded() {
    let mut f = floor(0);
    ok(f.set_state("a1", Presence::Available, None, 1000));
    ok(f.customer_message("e1", customer("u1"), "hello", Channel::Rest, 2000));
    ok(f.accept("a1", "c-1", 2100));
    ok(f.transfer_to_queue("a1", "c-1", "q2", None, 2500));
    ok(f.set_state("a3", Presence::Available, None, 3000));
    ok(f.accept("a3", "c-1", 3100));
    ok(f.set_state("a2", Presence::Available, None, 3200));
    ok(f.conference("a3", "c-1", "a2", None, 3300));
    ok(f.accept("a2", "c-1", 3400));
    ok(f.exit_conference("a2", "c-1", 3900));
    ok(f.customer_end("c-1", 4100));
    ok(f.wrapup("a1", "c-1", "other", 4200));
    ok(f.wrapup("a2", "c-1", "follow_up", 4300));
    assert!(records(&mut f).is_empty());
    ok(f.wrapup("a3", "c-1", "resolved", 4400));
    let r = records(&mut f);
    assert_eq!(r.len(), 1);
    let r = &r[0];
    assert_eq!(r.queues, ["q1", "q2"]);
    assert_eq!(r.arrived_at, 2000);
    assert_eq!(r.accepted_at, Some(2100));
    assert_eq!(r.first_agent_reply_at, None, "system messages are no reply");
    assert_eq!(r.ended_reason, "customer_ended");
    assert_eq!(r.outcome, Outcome::Transferred);
    assert_eq!(r.transfers, 1);
    assert_eq!(r.wrapup_reason.as_deref(), Some("resolved"), "the last owner's");
    assert_eq!(r.wrapped_up_at, Some(4400));
    let parts: Vec<(&str, bool, u64, u64, u64)> = r
        .agents
        .iter()
        .map(|a| (a.agent.as_str(), a.guest, a.joined_at, a.left_at, a.handle_ms))
        .collect();
    assert_eq!(
        parts,
        [
            ("a1", false, 2100, 2500, 400),
            ("a3", false, 3100, 4100, 1000),
            ("a2", true, 3400, 3900, 500),
        ]
    );
}

/// The customer leaves before any agent accepted: abandoned, recorded at once (no
/// wrap-up is owed), with the RONA that came before.
#[test]
fn an_abandoned_conversation_is_recorded_when_the_customer_leaves() {
    let mut f = floor(0);
    ok(f.customer_message("e1", customer("u1"), "anyone?", Channel::Rest, 2000));
    ok(f.set_state("a1", Presence::Available, None, 2500));
    assert_eq!(f.fire_due(3500), 1, "a1's offer expires");
    ok(f.customer_end("c-1", 4000));
    let got = records(&mut f);
    let want = ConversationRecord {
        id: "c-1".into(),
        channel: Channel::Rest,
        entry_point: Some("e1".into()),
        source_page: "Page e1".into(),
        customer: customer("u1"),
        queues: vec!["q1".into()],
        agents: Vec::new(),
        arrived_at: 2000,
        first_offered_at: Some(2500),
        accepted_at: None,
        first_agent_reply_at: None,
        ended_at: 4000,
        wrapped_up_at: None,
        ended_reason: "customer_ended".into(),
        outcome: Outcome::Abandoned,
        wrapup_reason: None,
        rona_count: 1,
        transfers: 0,
        satisfaction: None,
    };
    assert_eq!(got, vec![want]);
}

/// An accepted conversation whose customer goes silent is closed for inactivity; its
/// record comes with the owner's wrap-up.
#[test]
fn a_conversation_closed_for_inactivity_is_recorded_with_its_wrapup() {
    let mut f = floor(5000);
    ok(f.set_state("a1", Presence::Available, None, 1000));
    ok(f.customer_message("e1", customer("u1"), "hello", Channel::Rest, 2000));
    ok(f.accept("a1", "c-1", 2100));
    ok(f.agent_message("a1", "c-1", "hi", 2200));
    assert!(records(&mut f).is_empty());
    assert_eq!(f.fire_due(7100), 1, "inactive 5000 ms after the accept");
    assert!(records(&mut f).is_empty(), "a1 owes its wrap-up");
    ok(f.wrapup("a1", "c-1", "resolved", 8000));
    let got = records(&mut f);
    let want = ConversationRecord {
        id: "c-1".into(),
        channel: Channel::Rest,
        entry_point: Some("e1".into()),
        source_page: "Page e1".into(),
        customer: customer("u1"),
        queues: vec!["q1".into()],
        agents: vec![RecordAgent {
            agent: "a1".into(),
            guest: false,
            joined_at: 2100,
            left_at: 7100,
            handle_ms: 5000,
            wrapup_reason: Some("resolved".into()),
            wrapped_up_at: Some(8000),
            wrapup_automatic: false,
        }],
        arrived_at: 2000,
        first_offered_at: Some(2000),
        accepted_at: Some(2100),
        first_agent_reply_at: Some(2200),
        ended_at: 7100,
        wrapped_up_at: Some(8000),
        ended_reason: CUSTOMER_INACTIVE.into(),
        outcome: Outcome::ClosedInactive,
        wrapup_reason: Some("resolved".into()),
        rona_count: 0,
        transfers: 0,
        satisfaction: None,
    };
    assert_eq!(got, vec![want]);
}

#[test]
fn outcome_rules_apply_in_order() {
    let rows = [
        (false, "customer_ended", 0, Outcome::Abandoned),
        (false, CUSTOMER_INACTIVE, 0, Outcome::Abandoned),
        (false, "agent_ended", 2, Outcome::Abandoned),
        (true, CUSTOMER_INACTIVE, 1, Outcome::ClosedInactive),
        (true, "transfer_not_accepted", 1, Outcome::Transferred),
        (true, "agent_ended", 1, Outcome::Transferred),
        (true, "agent_ended", 0, Outcome::Handled),
        (true, "customer_ended", 0, Outcome::Handled),
    ];
    for (accepted, reason, transfers, want) in rows {
        assert_eq!(
            Outcome::of(accepted, reason, transfers),
            want,
            "{accepted} {reason} {transfers}"
        );
        assert_eq!(Outcome::parse(want.as_str()), Some(want));
    }
    assert_eq!(Outcome::parse("nope"), None);
}

fn record(id: &str, arrived_at: Millis, queue: &str, agent: Option<&str>, outcome: Outcome) -> ConversationRecord {
    ConversationRecord {
        id: id.into(),
        channel: Channel::Rest,
        entry_point: None,
        source_page: String::new(),
        customer: customer(&format!("u-{id}")),
        queues: vec![queue.into()],
        agents: agent
            .map(|a| RecordAgent {
                agent: a.into(),
                guest: false,
                joined_at: arrived_at,
                left_at: arrived_at,
                handle_ms: 0,
                wrapup_reason: None,
                wrapped_up_at: None,
                wrapup_automatic: false,
            })
            .into_iter()
            .collect(),
        arrived_at,
        first_offered_at: None,
        accepted_at: None,
        first_agent_reply_at: None,
        ended_at: arrived_at,
        wrapped_up_at: None,
        ended_reason: String::new(),
        outcome,
        wrapup_reason: None,
        rona_count: 0,
        transfers: 0,
        satisfaction: None,
    }
}

#[test]
fn pages_follow_the_filter_and_the_cursor() {
    let all = vec![
        record("c-1", 10, "q1", Some("a1"), Outcome::Handled),
        record("c-2", 20, "q2", None, Outcome::Abandoned),
        record("c-3", 20, "q1", Some("a2"), Outcome::Handled),
        record("c-4", 30, "q1", Some("a1"), Outcome::Transferred),
        record("c-5", 40, "q1", Some("a1"), Outcome::Handled),
    ];
    let ids = |p: &RecordPage| p.records.iter().map(|r| r.id.clone()).collect::<Vec<_>>().join(",");
    let page = |filter: RecordFilter, after: Option<RecordCursor>, limit: usize| {
        RecordPage::collect(&RecordQuery { filter, after, limit }, all.clone())
    };
    let p = page(RecordFilter::default(), None, 2);
    assert_eq!(ids(&p), "c-1,c-2");
    assert_eq!(p.next.as_ref().map(RecordCursor::encode).as_deref(), Some("20.c-2"));
    let p = page(RecordFilter::default(), p.next, 2);
    assert_eq!(ids(&p), "c-3,c-4");
    let p = page(RecordFilter::default(), p.next, 2);
    assert_eq!((ids(&p).as_str(), p.next), ("c-5", None), "no next page after the last");
    let f = |g: fn(&mut RecordFilter)| {
        let mut x = RecordFilter::default();
        g(&mut x);
        x
    };
    let rows: [(RecordFilter, &str); 8] = [
        (f(|x| x.from = Some(20)), "c-2,c-3,c-4,c-5"),
        (f(|x| x.to = Some(30)), "c-1,c-2,c-3"),
        (f(|x| x.queue = Some("q1".into())), "c-1,c-3,c-4,c-5"),
        (f(|x| x.agent = Some("a1".into())), "c-1,c-4,c-5"),
        (f(|x| x.outcome = Some(Outcome::Handled)), "c-1,c-3,c-5"),
        (f(|x| x.customer = Some("u-c-4".into())), "c-4"),
        (
            f(|x| {
                x.agent = Some("a1".into());
                x.from = Some(15);
                x.to = Some(40);
            }),
            "c-4",
        ),
        (f(|x| x.queue = Some("q9".into())), ""),
    ];
    for (filter, want) in rows {
        let p = page(filter.clone(), None, 100);
        assert_eq!(ids(&p), want, "{filter:?}");
        assert_eq!(p.next, None);
    }
    // A full page whose filter matches nothing more has no next page.
    let p = page(f(|x| x.agent = Some("a2".into())), None, 1);
    assert_eq!((ids(&p).as_str(), p.next), ("c-3", None));
}

#[test]
fn cursors_read_back_what_they_wrote_and_refuse_the_rest() {
    let c = RecordCursor {
        arrived_at: 1_700_000_000_000,
        id: "c-12".into(),
    };
    assert_eq!(RecordCursor::decode(&c.encode()), Some(c));
    for bad in [
        "",
        "12",
        ".c-1",
        "x.c-1",
        "12.",
        "12.c 1",
        "-1.c-1",
        "99999999999999999999999.c-1",
    ] {
        assert_eq!(RecordCursor::decode(bad), None, "{bad:?}");
    }
}

/// A conversation stored before histories were kept gets what its fields allow.
#[test]
fn an_old_conversation_gets_an_assumed_history() {
    let mut f = floor(0);
    ok(f.set_state("a1", Presence::Available, None, 1000));
    ok(f.customer_message("e1", customer("u1"), "hello", Channel::Rest, 2000));
    ok(f.accept("a1", "c-1", 2100));
    let mut c = f.conversation("c-1").cloned().expect("held");
    c.history = History::default();
    let h = History::assumed(&c);
    assert_eq!(h.arrived_at, 2000);
    assert!(h.queues_before.is_empty());
    assert_eq!(h.accepted_at, Some(2100));
    assert_eq!(h.parts.len(), 1);
    assert_eq!((h.parts[0].agent.as_str(), h.parts[0].since), ("a1", Some(2100)));
}

/// What search knows of a transcript: the distinct words the customer and the agents
/// wrote, lower-cased, sorted, system texts left out; a query matches whole words only,
/// every one of them.
#[test]
fn a_transcript_is_searched_by_its_words() {
    use crate::core::conversation::{Author, AuthorKind, Message};
    let msg = |kind, text: &str| Message {
        seq: 1,
        author: Author {
            kind,
            id: None,
            name: String::new(),
        },
        text: text.into(),
        at: 0,
        attachments: Vec::new(),
        delivery: None,
        delivery_error: None,
        truncated: false,
        sent_at: None,
        internal: false,
    };
    let t = [
        msg(AuthorKind::Customer, "Hello! My Refund is late (order #4521)."),
        msg(AuthorKind::System, "We are closed"),
        msg(AuthorKind::Agent, "Sorry, the refund is on its way, Élodie"),
    ];
    let text = search_text(&t);
    // In byte order: "élodie" after every ASCII word.
    assert_eq!(text, "4521 hello is its late my on order refund sorry the way élodie");
    let q = |s: &str| words(s).collect::<Vec<_>>();
    assert!(text_matches(&text, &q("REFUND late")));
    assert!(text_matches(&text, &q("élodie")));
    assert!(!text_matches(&text, &q("ref")), "whole words");
    assert!(!text_matches(&text, &q("closed")), "system texts are not searched");
    assert!(!text_matches(&text, &q("refund closed")), "every word");
    // A long transcript keeps its first words, within the bound.
    let long = msg(
        AuthorKind::Customer,
        &(0..5000).map(|i| format!("w{i}")).collect::<Vec<_>>().join(" "),
    );
    let text = search_text(&[long]);
    assert!(text.len() <= MAX_SEARCH_TEXT);
    assert!(text_matches(&text, &q("w0 w1")));
    assert!(!text_matches(&text, &q("w4999")));
}

/// With reports off (`reports.enabled = false`), a whole lifecycle, a RONA and presence
/// changes write no record, no figures and no search text.
#[test]
fn with_reports_off_nothing_of_reports_is_written() {
    let mut rules = rules(0);
    rules.reports = false;
    let mut f = floor_with(rules);
    ok(f.set_state("a1", Presence::Available, None, 1000));
    ok(f.set_state("a2", Presence::Available, None, 1001));
    ok(f.customer_message("e1", customer("u1"), "hello", Channel::Rest, 2000));
    assert_eq!(f.fire_due(3000), 1, "a RONA");
    ok(f.accept("a2", "c-1", 3500));
    ok(f.end("a2", "c-1", 4000));
    ok(f.wrapup("a2", "c-1", "resolved", 5000));
    ok(f.set_state("a2", Presence::LoggedOut, None, 6000));
    f.take_effects();
    let reported: Vec<Change> = f
        .take_changes()
        .into_iter()
        .filter(|c| matches!(c, Change::Record(_) | Change::Figures(_) | Change::SearchText { .. }))
        .collect();
    assert!(reported.is_empty(), "{reported:?}");
    assert!(f.conversation("c-1").is_none(), "complete all the same");
}
