//! The satisfaction survey on the floor: who is asked, what the answer is, and that it
//! lands once, opens nothing, and ends with its window.

use super::*;
use crate::core::survey::{PendingSurvey, Satisfaction, SurveyTexts};
use crate::core::{Account, Reply};

const T0: Millis = 1_000_000;
const WINDOW: Millis = 60_000;
const QUESTION: &str = "How did we do? 1 to 5";
const THANKS: &str = "Thank you!";

fn settings() -> Survey {
    Survey {
        templates: [(
            "default".to_string(),
            SurveyTexts {
                question: QUESTION.into(),
                thanks: THANKS.into(),
            },
        )]
        .into_iter()
        .collect(),
        window_ms: WINDOW,
    }
}

/// A floor with queue `q` (with a survey) and `plain` (without), an entry point to each,
/// and agent `a1` available in both.
fn floor() -> Floor {
    let mut f = Floor::new(Rules {
        offer_timeout_ms: 3_600_000,
        inactivity_close_ms: 600_000,
        ..Rules::default()
    });
    for (id, survey) in [("q", Some(Arc::new(settings()))), ("plain", None)] {
        f.execute(
            Command::CreateQueue {
                id: id.into(),
                name: id.into(),
                routing_steps: Vec::new(),
                hours: None,
                survey,
                wait_limit: None,
                service_level_ms: None,
                place_updates: None,
                overflow: None,
            },
            T0,
        )
        .expect("queue");
        f.create_entry_point(EntryPoint {
            id: format!("e-{id}"),
            name: "Page".into(),
            queue: id.into(),
            ..Default::default()
        })
        .expect("entry point");
    }
    f.create_agent(
        "a1",
        "Ann",
        vec!["q".into(), "plain".into()],
        1,
        Account::default(),
        Skills::new(),
        T0,
    )
    .expect("agent");
    f.set_state("a1", Presence::Available, None, T0).expect("available");
    f
}

/// The customer `u` writes `text` on entry point `e-<queue>`: the conversation it went to.
fn write(f: &mut Floor, queue: &str, text: &str, now: Millis) -> Arrival {
    f.customer_message(
        &format!("e-{queue}"),
        Customer {
            id: "u".into(),
            name: "Una".into(),
        },
        text,
        Channel::Rest,
        now,
    )
    .expect("message")
}

/// A conversation of `queue` that `a1` accepted at `now`.
fn served(f: &mut Floor, queue: &str, now: Millis) -> String {
    let c = write(f, queue, "hello", now).conversation;
    f.accept("a1", &c, now).expect("accept");
    c
}

fn wrapup(f: &mut Floor, c: &str, now: Millis) {
    f.execute(
        Command::Wrapup {
            agent: "a1".into(),
            conversation: c.into(),
            reason: "resolved".into(),
        },
        now,
    )
    .expect("wrapup");
}

fn pending(f: &Floor) -> Option<&PendingSurvey> {
    f.pending_survey("e-q", "u")
}

/// The ratings kept by the changes since the last take.
fn ratings(f: &mut Floor) -> Vec<(String, Satisfaction)> {
    f.take_changes()
        .into_iter()
        .filter_map(|c| match c {
            Change::Satisfaction {
                conversation,
                satisfaction,
                ..
            } => Some((conversation, satisfaction)),
            _ => None,
        })
        .collect()
}

fn texts(f: &Floor, c: &str) -> Vec<String> {
    f.conversation(c)
        .map(|c| c.transcript.iter().map(|m| m.text.clone()).collect())
        .unwrap_or_default()
}

#[test]
fn a_served_conversation_asks_and_its_answer_is_kept_once_without_opening_one() {
    let mut f = floor();
    let c = served(&mut f, "q", T0);
    f.end("a1", &c, T0 + 10).expect("end");
    assert_eq!(texts(&f, &c), ["hello", QUESTION], "the question is the last message");
    let p = pending(&f).expect("pending");
    assert_eq!(
        (p.conversation.as_str(), p.expires_at, p.next_seq),
        (c.as_str(), T0 + 10 + WINDOW, 3)
    );
    assert!(
        f.take_changes()
            .iter()
            .any(|ch| matches!(ch, Change::Survey { pending: Some(p), .. } if p.conversation == c)),
        "pending durably, in the commit of the end"
    );
    // The answer, while the wrap-up is still owed.
    let a = write(&mut f, "q", " 4 ", T0 + 20);
    assert_eq!((a.conversation.as_str(), a.opened), (c.as_str(), false));
    assert!(f.open_conversation_of("e-q", "u").is_none(), "no conversation opened");
    assert_eq!(f.conversations_held(), 1);
    assert_eq!(texts(&f, &c), ["hello", QUESTION, " 4 ", THANKS]);
    assert_eq!(ratings(&mut f), [(c.clone(), Satisfaction { rating: 4, at: T0 + 20 })]);
    assert!(pending(&f).is_none());
    // One answer per conversation: the next "5" is a message like any other.
    let next = write(&mut f, "q", "5", T0 + 30);
    assert!(next.opened && next.conversation != c);
    assert!(ratings(&mut f).is_empty());
}

#[test]
fn who_is_asked() {
    // The customer ends a served conversation: asked.
    let mut f = floor();
    let c = served(&mut f, "q", T0);
    f.customer_end(&c, T0 + 1).expect("end");
    assert_eq!(pending(&f).map(|p| p.conversation.clone()), Some(c));

    // The customer leaves while waiting (abandoned): not asked.
    let mut f = floor();
    f.set_state("a1", Presence::Idle, None, T0).expect("idle");
    let c = write(&mut f, "q", "hello", T0).conversation;
    f.customer_end(&c, T0 + 1).expect("end");
    assert!(pending(&f).is_none());
    assert_eq!(texts(&f, &c), ["hello"], "no question");

    // Closed for the customer's inactivity: not asked.
    let mut f = floor();
    let c = served(&mut f, "q", T0);
    while let Some(at) = f.next_deadline().filter(|at| *at <= T0 + 600_000) {
        f.fire_due(at);
    }
    assert_eq!(
        f.conversation(&c).and_then(|c| c.ended_reason.clone()).as_deref(),
        Some("customer_inactive")
    );
    assert!(pending(&f).is_none());

    // A queue without a survey: not asked.
    let mut f = floor();
    let c = served(&mut f, "plain", T0);
    f.end("a1", &c, T0 + 1).expect("end");
    assert!(f.pending_surveys().next().is_none());
    assert_eq!(texts(&f, &c), ["hello"]);
}

#[test]
fn anything_but_a_rating_drops_the_survey_and_opens_a_conversation() {
    let mut f = floor();
    let c = served(&mut f, "q", T0);
    f.end("a1", &c, T0 + 10).expect("end");
    f.take_changes();
    let a = write(&mut f, "q", "one more question", T0 + 20);
    assert!(a.opened && a.conversation != c);
    assert!(pending(&f).is_none());
    assert!(f
        .take_changes()
        .iter()
        .any(|ch| matches!(ch, Change::Survey { pending: None, .. })));
    assert_eq!(texts(&f, &c), ["hello", QUESTION], "nothing added to the rated one");
}

#[test]
fn the_window_ends_the_survey() {
    let mut f = floor();
    let c = served(&mut f, "q", T0);
    f.end("a1", &c, T0 + 10).expect("end");
    wrapup(&mut f, &c, T0 + 11);
    f.take_changes();
    assert_eq!(f.next_deadline(), Some(T0 + 10 + WINDOW), "the survey's own deadline");
    f.fire_due(T0 + 10 + WINDOW);
    assert!(pending(&f).is_none());
    assert!(f
        .take_changes()
        .iter()
        .any(|ch| matches!(ch, Change::Survey { pending: None, .. })));
    let a = write(&mut f, "q", "5", T0 + 10 + WINDOW + 1);
    assert!(a.opened, "too late: a message like any other");
}

#[test]
fn an_answer_after_the_conversation_is_complete_goes_to_its_stored_transcript() {
    let mut f = floor();
    let c = served(&mut f, "q", T0);
    f.end("a1", &c, T0 + 10).expect("end");
    // A note while the wrap-up is owed follows the question in the transcript.
    f.execute(
        Command::AddNote {
            agent: "a1".into(),
            conversation: c.clone(),
            text: "asked for a refund".into(),
        },
        T0 + 11,
    )
    .expect("note");
    wrapup(&mut f, &c, T0 + 12);
    let changes = f.take_changes();
    assert!(changes.iter().any(|ch| matches!(ch, Change::Record(r) if r.id == c)));
    assert!(f.conversation(&c).is_none(), "complete: the floor let go of it");
    assert_eq!(
        pending(&f).map(|p| p.next_seq),
        Some(4),
        "after the question and the note"
    );
    match f.execute(
        Command::CustomerMessage {
            entry_point: "e-q".into(),
            customer: Customer {
                id: "u".into(),
                name: "Una".into(),
            },
            text: "2".into(),
            channel: Channel::Rest,
            open: Opening::default(),
        },
        T0 + 20,
    ) {
        Ok(Reply::ConversationId(id)) => assert_eq!(id, c, "the answer names the rated conversation"),
        other => panic!("{other:?}"),
    }
    let changes = f.take_changes();
    let written: Vec<(u64, String)> = changes
        .iter()
        .filter_map(|ch| match ch {
            Change::Message { conversation, message } if *conversation == c => {
                Some((message.seq, message.text.clone()))
            }
            _ => None,
        })
        .collect();
    assert_eq!(written, [(4, "2".to_string()), (5, THANKS.to_string())]);
    assert!(changes.iter().any(|ch| matches!(ch,
        Change::Satisfaction { conversation, satisfaction, arrived_at }
            if *conversation == c && satisfaction.rating == 2 && *arrived_at == T0)));
    assert!(f.open_conversation_of("e-q", "u").is_none());
    assert_eq!(f.conversations_held(), 0);
}

#[test]
fn pending_surveys_come_back_after_a_restart() {
    let mut f = floor();
    let c = served(&mut f, "q", T0);
    f.end("a1", &c, T0 + 10).expect("end");
    wrapup(&mut f, &c, T0 + 11);
    let p = pending(&f).cloned().expect("pending");
    let mut g = floor();
    g.restore_surveys(vec![p]);
    assert_eq!(g.next_deadline(), Some(T0 + 10 + WINDOW));
    let a = write(&mut g, "q", "5", T0 + 100);
    assert_eq!((a.conversation.as_str(), a.opened), (c.as_str(), false));
    assert_eq!(
        ratings(&mut g),
        [(
            c,
            Satisfaction {
                rating: 5,
                at: T0 + 100
            }
        )]
    );
}

#[test]
fn bad_settings_change_nothing_and_null_removes_them() {
    let mut f = floor();
    let mut bad = settings();
    bad.window_ms = 1;
    let update = |survey| Command::UpdateQueue {
        queue: "q".into(),
        hours: None,
        survey,
        wait_limit: None,
        service_level_ms: None,
        place_updates: None,
        overflow: None,
    };
    let r = f.execute(update(Some(Some(Arc::new(bad)))), T0);
    assert_eq!(r.map(|_| ()).unwrap_err().code(), "invalid_input");
    assert_eq!(f.queue("q").and_then(|q| q.survey.as_deref()), Some(&settings()));
    match f.execute(update(Some(None)), T0) {
        Ok(Reply::Queue(q)) => assert!(q.survey.is_none()),
        other => panic!("{other:?}"),
    }
    let c = served(&mut f, "q", T0);
    f.end("a1", &c, T0 + 1).expect("end");
    assert!(pending(&f).is_none(), "removed: nobody is asked");
}
