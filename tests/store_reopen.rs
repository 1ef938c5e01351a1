//! Recovery through the engine: build a floor with every lifecycle stage, stop the engine,
//! reopen the same directory with a new engine, and compare the whole state.

mod store_common;

use std::time::Duration;

use store_common::*;
use switchboard::core::{ConversationState, EntryPoint, Observation, OfferKind, Presence, Rules};
use switchboard::engine::{Engine, Observed};

const T0: u64 = 1_700_000_000_000;

/// Short deadlines: the test makes one agent RONA by moving its clock past a deadline and
/// waiting for the (short, real) timer. Other offers stay pending because the clock stays.
fn rules() -> Rules {
    Rules {
        offer_timeout_ms: 100,
        transfer_timeout_ms: 150,
        conference_timeout_ms: 200,
        ..Rules::default()
    }
}

async fn entry_point(e: &Engine, id: &str, queue: &str) {
    e.create_entry_point(EntryPoint {
        id: id.into(),
        name: format!("Page {id}"),
        queue: queue.into(),
        page_id: None,
        page_access_token: None,

        ..Default::default()
    })
    .await
    .unwrap();
}

async fn available(e: &Engine, agent: &str) {
    e.set_state(agent, Presence::Available, None).await.unwrap();
}

/// The conversation's pending offer goes to `agent`.
async fn offered_to(e: &Engine, conversation: &str, agent: &str) {
    let c = e.conversation(conversation).await.unwrap().unwrap();
    assert_eq!(c.offer.as_ref().map(|o| o.agent.as_str()), Some(agent), "{c:?}");
}

/// Builds, through the engine: a RONA agent, an idle agent, a logged-out agent, two
/// conversations queued in order, an active conference with a transcript, an owed
/// wrap-up, and pending offers of every kind (new, transfer, conference).
async fn build(e: &Engine, clock: &TestClock) -> u64 {
    for (q, name) in [("q1", "Sales"), ("q2", "Support"), ("q3", "Billing")] {
        e.create_queue(q, name).await.unwrap();
        entry_point(e, &format!("ep-{q}"), q).await;
    }
    for (a, q) in [
        ("rona", "q1"),
        ("idler", "q1"),
        ("away", "q1"),
        ("wrapper", "q2"),
        ("owner", "q2"),
        ("guest", "q2"),
        ("offeree", "q2"),
        ("owner2", "q3"),
        ("guest2", "q3"),
        ("xfrom", "q3"),
        ("xto", "q3"),
    ] {
        e.create_agent(a, &format!("Agent {a}"), &[q], 1).await.unwrap();
    }
    e.set_state("idler", Presence::Idle, Some("lunch")).await.unwrap();

    // RONA: the only agent of q1 lets its offer expire; c-1 goes back to q1.
    let mut seen = e.observe();
    available(e, "rona").await;
    let c1 = e.customer_message("ep-q1", "cust-1", "Ann", "hello?").await.unwrap();
    assert_eq!(c1.id, "c-1");
    offered_to(e, "c-1", "rona").await;
    clock.advance(1_000);
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let o = seen.recv().await.unwrap();
            if let Observed::Observation(Observation::Rona { agent, .. }) = &*o {
                assert_eq!(agent, "rona");
                break;
            }
        }
    })
    .await
    .expect("the offer to rona expires");
    // Queued behind c-1 in q1.
    clock.advance(10);
    e.customer_message("ep-q1", "cust-2", "Bob", "anyone there")
        .await
        .unwrap();
    e.customer_reply("c-2", "second line").await.unwrap();

    // An owed wrap-up: wrapper takes c-3, talks, ends it.
    clock.advance(10);
    available(e, "wrapper").await;
    e.customer_message("ep-q2", "cust-3", "Cy", "my order").await.unwrap();
    e.accept("wrapper", "c-3").await.unwrap();
    e.send("wrapper", "c-3", "it shipped").await.unwrap();
    e.end("wrapper", "c-3").await.unwrap();

    // An active conference with a transcript: owner takes c-4, invites guest.
    clock.advance(10);
    available(e, "owner").await;
    e.customer_message("ep-q2", "cust-4", "Di", "broken screen")
        .await
        .unwrap();
    e.accept("owner", "c-4").await.unwrap();
    e.send("owner", "c-4", "sorry to hear").await.unwrap();
    e.customer_reply("c-4", "thanks").await.unwrap();
    available(e, "guest").await;
    e.conference("owner", "c-4", "guest").await.unwrap();
    e.accept("guest", "c-4").await.unwrap();
    e.send("guest", "c-4", "I can help").await.unwrap();

    // A pending new offer, and a conversation queued in q2 behind nobody.
    clock.advance(10);
    available(e, "offeree").await;
    e.customer_message("ep-q2", "cust-5", "Ed", "refund").await.unwrap();
    offered_to(e, "c-5", "offeree").await;
    e.customer_message("ep-q2", "cust-6", "Fay", "invoice").await.unwrap();

    // A pending conference offer (c-7) and a pending transfer offer (c-8).
    clock.advance(10);
    available(e, "owner2").await;
    e.customer_message("ep-q3", "cust-7", "Gil", "charge").await.unwrap();
    e.accept("owner2", "c-7").await.unwrap();
    available(e, "guest2").await;
    e.conference("owner2", "c-7", "guest2").await.unwrap();
    available(e, "xfrom").await;
    e.customer_message("ep-q3", "cust-8", "Hal", "double charge")
        .await
        .unwrap();
    e.accept("xfrom", "c-8").await.unwrap();
    e.send("xfrom", "c-8", "passing you on").await.unwrap();
    available(e, "xto").await;
    e.transfer_to_agent("xfrom", "c-8", "xto").await.unwrap();
    8
}

/// Story: an engine is stopped with work in every stage; a new engine on the same
/// directory shows the same agents, queues, conversations and transcripts, re-offers the
/// pending offers to the same agents with fresh deadlines, and keeps every invariant.
#[test]
fn reopen_restores_every_lifecycle_stage() {
    let dir = tempfile::tempdir().unwrap();
    let rules = rules();

    let store = open(dir.path());
    let clock = TestClock::at(T0);
    let (s, r) = (store.clone(), rules.clone());
    let before = engine_life(move || async move {
        let e = start(&s, r, clock.clone());
        let n = build(&e, &clock).await;
        assert_eq!(e.violations().await.unwrap(), Vec::<String>::new());
        capture(&e, conversation_ids(n)).await
    });
    store.close();
    drop(store);

    // Spot checks on what was built, so the comparison below covers every stage.
    let c = &before.conversations;
    assert_eq!(before.agents["rona"].presence, Presence::Rona);
    assert_eq!(before.agents["idler"].idle_code.as_deref(), Some("lunch"));
    assert_eq!(before.agents["away"].presence, Presence::LoggedOut);
    assert_eq!(c["c-1"].state, ConversationState::Queued);
    assert_eq!(c["c-2"].state, ConversationState::Queued);
    assert!(before.agents["wrapper"].wrapups.contains_key("c-3"));
    assert_eq!(c["c-3"].state, ConversationState::Ended);
    assert_eq!(c["c-4"].guest.as_deref(), Some("guest"));
    assert_eq!(c["c-4"].transcript.len(), 5, "{:?}", c["c-4"].transcript);
    assert_eq!(c["c-5"].offer.as_ref().unwrap().kind, OfferKind::New);
    assert_eq!(c["c-6"].state, ConversationState::Queued);
    assert_eq!(c["c-7"].offer.as_ref().unwrap().kind, OfferKind::Conference);
    assert_eq!(c["c-8"].offer.as_ref().unwrap().kind, OfferKind::Transfer);

    let store = open(dir.path());
    let now = T0 + 60_000;
    let (s, r) = (store.clone(), rules.clone());
    let before2 = before.clone();
    engine_life(move || async move {
        let e = start(&s, r.clone(), TestClock::at(now));
        let after = capture(&e, conversation_ids(8)).await;
        assert_restored(&before2, &after, &r, now);
        assert_eq!(e.violations().await.unwrap(), Vec::<String>::new());
        // The queue order survived: the first agent of q1 to become free takes c-1 first.
        available(&e, "idler").await;
        offered_to(&e, "c-1", "idler").await;
        let c2 = e.conversation("c-2").await.unwrap().unwrap();
        assert_eq!(c2.state, ConversationState::Queued);
        // New conversations are numbered after the old ones.
        let c = e.customer_message("ep-q2", "cust-9", "Ivy", "hi").await.unwrap();
        assert_eq!(c.id, "c-9");
        assert_eq!(e.violations().await.unwrap(), Vec::<String>::new());
        assert!(e.healthy());
    });
    let stats = store.stats();
    assert!(stats.flushes >= 1 && stats.commits >= 1, "{stats:?}");
}

/// Customer `customer` (Carol) writes `text` on entry point `e1` over REST; the
/// conversation's id.
fn customer_message(f: &mut switchboard::core::Floor, customer: &str, text: &str, now: u64) -> String {
    use switchboard::core::{Channel, Command, Customer};
    let customer = Customer {
        id: customer.into(),
        name: "Carol".into(),
    };
    f.execute(
        Command::CustomerMessage {
            entry_point: "e1".into(),
            customer,
            text: text.into(),
            channel: Channel::Rest,
            open: Default::default(),
        },
        now,
    )
    .unwrap()
    .into_conversation()
    .expect("conversation")
    .id
}

/// A floor with queue `q1`, entry point `e1` on it, and agent `a1` (capacity 1) available.
fn floor_with_agent() -> switchboard::core::Floor {
    use switchboard::core::{Command, Floor};
    let mut f = Floor::new(rules());
    f.execute(
        Command::CreateQueue {
            id: "q1".into(),
            name: "One".into(),
            routing_steps: Vec::new(),
            hours: None,
            survey: None,
            wait_limit: None,
            service_level_ms: None,
            place_updates: None,
            overflow: None,
        },
        T0,
    )
    .unwrap();
    f.execute(
        Command::CreateEntryPoint(EntryPoint {
            id: "e1".into(),
            name: "Page".into(),
            queue: "q1".into(),
            page_id: None,
            page_access_token: None,

            ..Default::default()
        }),
        T0,
    )
    .unwrap();
    f.execute(
        Command::CreateAgent {
            id: "a1".into(),
            name: "Ann".into(),
            queues: vec!["q1".into()],
            capacity: Some(1),
            credential: None,
            password_hash: None,

            skills: Default::default(),
        },
        T0,
    )
    .unwrap();
    f.execute(
        Command::SetState {
            agent: "a1".into(),
            state: Presence::Available,
            idle_code: None,
        },
        T0,
    )
    .unwrap();
    f
}

/// The sled store's side of finished conversations: after a reopen, `load` leaves out the
/// finished ones (ended, no agent owes them anything) and keeps the one still owed a
/// wrap-up, whether most stored conversations are finished (transcripts by prefix scan)
/// or not (one pass over the messages); `conversation` reads a finished one back whole.
#[test]
fn load_skips_finished_conversations_and_reads_them_back() {
    use switchboard::core::{Command, Floor};
    use switchboard::store::Store;
    for finished_count in [1usize, 9] {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        let mut f = floor_with_agent();
        let mut finished = Vec::new();
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let commit = |f: &mut Floor| rt.block_on(store.commit(f.take_changes())).unwrap();
        let mut now = T0;
        for i in 0..=finished_count {
            now += 10;
            let id = customer_message(&mut f, &format!("u{i}"), "hello", now);
            f.execute(
                Command::Accept {
                    agent: "a1".into(),
                    conversation: id.clone(),
                },
                now,
            )
            .unwrap();
            f.execute(
                Command::Send {
                    agent: "a1".into(),
                    conversation: id.clone(),
                    text: "hi".into(),
                },
                now,
            )
            .unwrap();
            f.execute(
                Command::End {
                    agent: "a1".into(),
                    conversation: id.clone(),
                },
                now,
            )
            .unwrap();
            if i < finished_count {
                f.execute(
                    Command::Wrapup {
                        agent: "a1".into(),
                        conversation: id.clone(),
                        reason: "resolved".into(),
                    },
                    now,
                )
                .unwrap();
                finished.push(id);
            }
            commit(&mut f);
        }
        let owed = format!("c-{}", finished_count + 1);
        assert_eq!(f.conversations_held(), 1);
        store.close();
        drop(store);

        let store = open(dir.path());
        let snap = store.load().unwrap();
        let ids: Vec<_> = snap.conversations.iter().map(|c| c.id.clone()).collect();
        assert_eq!(ids, [owed], "{finished_count} finished");
        let texts: Vec<_> = snap.conversations[0]
            .transcript
            .iter()
            .map(|m| m.text.as_str())
            .collect();
        assert_eq!(texts, ["hello", "hi"]);
        let c = store.conversation(&finished[0]).unwrap().expect("stored");
        assert_eq!(c.state, ConversationState::Ended);
        assert_eq!(c.wrapups.len(), 1);
        let texts: Vec<_> = c.transcript.iter().map(|m| m.text.as_str()).collect();
        assert_eq!(texts, ["hello", "hi"]);
        assert!(store.conversation("c-999").unwrap().is_none());
    }
}

/// A store of many open conversations (transcripts read in one pass over the messages):
/// each transcript comes back whole and in order, and a finished conversation stays out.
#[test]
fn a_large_store_reads_every_transcript_whole() {
    use switchboard::core::Command;
    use switchboard::store::Store;
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let mut f = floor_with_agent();
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let mut want = std::collections::BTreeMap::new();
    let mut now = T0;
    let message = |f: &mut switchboard::core::Floor, i: usize, k: usize, now| {
        customer_message(f, &format!("u{i}"), &format!("m{i}-{k}"), now)
    };
    // The first conversation is taken by a1, answered, ended and wrapped up: finished.
    let finished = message(&mut f, 0, 0, now);
    for cmd in [
        Command::Accept {
            agent: "a1".into(),
            conversation: finished.clone(),
        },
        Command::End {
            agent: "a1".into(),
            conversation: finished.clone(),
        },
        Command::Wrapup {
            agent: "a1".into(),
            conversation: finished.clone(),
            reason: "resolved".into(),
        },
    ] {
        f.execute(cmd, now).unwrap();
    }
    for i in 1..=25_000usize {
        now += 1;
        let mut texts = Vec::new();
        let mut id = String::new();
        for k in 0..=i % 3 {
            id = message(&mut f, i, k, now);
            texts.push(format!("m{i}-{k}"));
        }
        want.insert(id, texts);
        if i % 1_000 == 0 {
            rt.block_on(store.commit(f.take_changes())).unwrap();
        }
    }
    rt.block_on(store.commit(f.take_changes())).unwrap();
    store.close();
    drop(store);

    let snap = open(dir.path()).load().unwrap();
    let got: std::collections::BTreeMap<String, Vec<String>> = snap
        .conversations
        .iter()
        .map(|c| (c.id.clone(), c.transcript.iter().map(|m| m.text.clone()).collect()))
        .collect();
    assert!(!got.contains_key(&finished), "a finished conversation was loaded");
    assert_eq!(got.len(), want.len());
    assert!(got == want, "a transcript came back changed");
    for c in &snap.conversations {
        let seqs: Vec<u64> = c.transcript.iter().map(|m| m.seq).collect();
        assert_eq!(seqs, (1..=c.transcript.len() as u64).collect::<Vec<_>>(), "{}", c.id);
    }
}
