//! Every ../shared/SPEC.md flow through the actors, via the `Engine` handle, with real actor timers
//! on short configured timeouts (200 ms offers), plus a concurrent stress test.

use std::sync::Arc;
use std::time::Duration;

use switchboard::core::*;
use switchboard::engine::{Engine, EngineOptions};
use switchboard::store::MemoryStore;
use tokio::sync::mpsc::Receiver;

const WAIT: Duration = Duration::from_secs(10);

fn rules(no_answer: TransferNoAnswer) -> Rules {
    Rules {
        offer_timeout_ms: 200,
        transfer_timeout_ms: 200,
        conference_timeout_ms: 200,
        transfer_no_answer: no_answer,
        ..Rules::default()
    }
}

/// An engine with queues `sales` and `support`, entry point `page` on `support`, and
/// agents a1, a2, a3 serving both queues.
async fn setup(no_answer: TransferNoAnswer, store: MemoryStore) -> Engine {
    let engine = Engine::start(EngineOptions::new(rules(no_answer), Arc::new(store))).expect("engine");
    engine.create_queue("support", "Support").await.expect("queue");
    engine.create_queue("sales", "Sales").await.expect("queue");
    engine
        .create_entry_point(EntryPoint {
            id: "page".into(),
            name: "Acme Page".into(),
            queue: "support".into(),
            page_id: None,
            page_access_token: None,

            ..Default::default()
        })
        .await
        .expect("entry point");
    for (id, name) in [("a1", "Ann"), ("a2", "Bob"), ("a3", "Cy")] {
        engine
            .create_agent(id, name, &["support", "sales"], 1)
            .await
            .expect("agent");
    }
    engine
}

/// Waits for the first event of `rx` that `f` accepts, skipping others.
async fn expect<T>(rx: &mut Receiver<Arc<AgentEvent>>, what: &str, f: impl Fn(&AgentEvent) -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(e)) => {
                if let Some(t) = f(&e) {
                    return t;
                }
            }
            Ok(None) => panic!("event stream ended while waiting for {what}"),
            Err(_) => panic!("timed out waiting for {what}"),
        }
    }
}

async fn offer(rx: &mut Receiver<Arc<AgentEvent>>) -> (Arc<Conversation>, Offer) {
    expect(rx, "offer", |e| match e {
        AgentEvent::Offer { conversation, offer } => Some((conversation.clone(), offer.clone())),
        _ => None,
    })
    .await
}

async fn subscribe(engine: &Engine, agent: &str) -> Receiver<Arc<AgentEvent>> {
    engine.subscribe(agent).await.expect("subscribe").1
}

async fn available(engine: &Engine, agent: &str) {
    engine
        .set_state(agent, Presence::Available, None)
        .await
        .expect("available");
}

async fn code<T: std::fmt::Debug>(r: Result<T, switchboard::engine::EngineError>) -> &'static str {
    r.expect_err("expected a refusal").code()
}

/// A customer writes; the one available agent is offered the conversation with the queue
/// name, source page and first message; it accepts and receives the transcript.
#[actix_rt::test]
async fn offer_and_accept() {
    let engine = setup(TransferNoAnswer::Drop, MemoryStore::new()).await;
    let mut rx = subscribe(&engine, "a1").await;
    available(&engine, "a1").await;
    let c = engine
        .customer_message("page", "u1", "Uma", "my order is late")
        .await
        .expect("message");
    assert_eq!(c.state, ConversationState::Offered);
    let (conv, offer) = offer(&mut rx).await;
    assert_eq!(conv.id, c.id);
    assert_eq!(conv.queue_name, "Support");
    assert_eq!(conv.source_page, "Acme Page");
    assert_eq!(conv.first_text(), "my order is late");
    assert_eq!(offer.kind, OfferKind::New);
    assert_eq!(offer.expires_at, offer.offered_at + 200);
    assert!(conv.received_at <= offer.offered_at);
    let accepted = engine.accept("a1", &c.id).await.expect("accept");
    assert_eq!(accepted.state, ConversationState::Active);
    assert_eq!(accepted.owner.as_deref(), Some("a1"));
    let full = expect(&mut rx, "conversation", |e| match e {
        AgentEvent::Conversation(c) => Some(c.clone()),
        _ => None,
    })
    .await;
    assert_eq!(full.transcript.len(), 1);
    // Someone else cannot accept it now, and messages flow both ways in order.
    assert_eq!(code(engine.accept("a2", &c.id).await).await, "not_offered_to_you");
    engine.send("a1", &c.id, "let me check").await.expect("send");
    engine.customer_reply(&c.id, "thanks").await.expect("reply");
    let conv = engine.conversation(&c.id).await.expect("read").expect("exists");
    let texts: Vec<_> = conv.transcript.iter().map(|m| (m.seq, m.text.as_str())).collect();
    assert_eq!(texts, [(1, "my order is late"), (2, "let me check"), (3, "thanks")]);
    assert!(engine.violations().await.expect("check").is_empty());
}

/// An agent lets the offer expire: it goes to RONA, the conversation goes to the next agent
/// keeping its `received_at`, and the agent stays in RONA until it sets itself available.
#[actix_rt::test]
async fn expiry_to_rona_and_manual_return() {
    let engine = setup(TransferNoAnswer::Drop, MemoryStore::new()).await;
    let mut rx1 = subscribe(&engine, "a1").await;
    let mut rx2 = subscribe(&engine, "a2").await;
    available(&engine, "a1").await;
    available(&engine, "a2").await;
    let c = engine
        .customer_message("page", "u1", "Uma", "hello")
        .await
        .expect("message");
    let (first, _) = offer(&mut rx1).await;
    let reason = expect(&mut rx1, "offer_withdrawn", |e| match e {
        AgentEvent::OfferWithdrawn { reason, .. } => Some(*reason),
        _ => None,
    })
    .await;
    assert_eq!(reason, WithdrawReason::Expired);
    let (state, why) = expect(&mut rx1, "state_changed", |e| match e {
        AgentEvent::StateChanged { state, reason, .. } => Some((*state, *reason)),
        _ => None,
    })
    .await;
    assert_eq!((state, why), (Presence::Rona, Some("offer_expired")));
    let (second, _) = offer(&mut rx2).await;
    assert_eq!(second.id, c.id);
    assert_eq!(
        second.received_at, first.received_at,
        "the conversation keeps its place"
    );
    assert_eq!(code(engine.accept("a1", &c.id).await).await, "offer_expired");
    engine.accept("a2", &c.id).await.expect("accept");
    // RONA is left only by the agent.
    let a1 = engine.agent("a1").await.expect("read").expect("a1");
    assert_eq!(a1.agent.presence, Presence::Rona);
    let back = engine
        .set_state("a1", Presence::Available, None)
        .await
        .expect("available");
    assert_eq!(back.presence, Presence::Available);
    assert!(engine.violations().await.expect("check").is_empty());
}

/// The owner transfers to another agent, which accepts and becomes the owner; the first
/// owner owes a wrap-up.
#[actix_rt::test]
async fn transfer_to_agent_accepted() {
    let engine = setup(TransferNoAnswer::Drop, MemoryStore::new()).await;
    let mut rx1 = subscribe(&engine, "a1").await;
    let mut rx2 = subscribe(&engine, "a2").await;
    available(&engine, "a1").await;
    let c = engine
        .customer_message("page", "u1", "Uma", "hello")
        .await
        .expect("message");
    engine.accept("a1", &c.id).await.expect("accept");
    available(&engine, "a2").await;
    let t = engine.transfer_to_agent("a1", &c.id, "a2").await.expect("transfer");
    assert_eq!(t.offer.as_ref().map(|o| o.kind), Some(OfferKind::Transfer));
    let (_, o) = offer(&mut rx2).await;
    assert_eq!((o.kind, o.from_agent.as_deref()), (OfferKind::Transfer, Some("a1")));
    expect(&mut rx1, "wrapup_required", |e| {
        matches!(e, AgentEvent::WrapupRequired { .. }).then_some(())
    })
    .await;
    let c2 = engine.accept("a2", &c.id).await.expect("accept");
    assert_eq!(c2.owner.as_deref(), Some("a2"));
    engine.wrapup("a1", &c.id, "resolved").await.expect("wrap-up");
    assert_eq!(
        code(engine.wrapup("a1", &c.id, "resolved").await).await,
        "no_wrapup_owed"
    );
    assert!(engine.violations().await.expect("check").is_empty());
}

/// An untaken transfer to an agent is dropped (reason `transfer_not_accepted`) and the
/// target goes to RONA.
#[actix_rt::test]
async fn transfer_not_accepted_is_dropped() {
    let engine = setup(TransferNoAnswer::Drop, MemoryStore::new()).await;
    let mut rx2 = subscribe(&engine, "a2").await;
    available(&engine, "a1").await;
    let c = engine
        .customer_message("page", "u1", "Uma", "hello")
        .await
        .expect("message");
    engine.accept("a1", &c.id).await.expect("accept");
    available(&engine, "a2").await;
    engine.transfer_to_agent("a1", &c.id, "a2").await.expect("transfer");
    offer(&mut rx2).await;
    expect(&mut rx2, "rona", |e| {
        matches!(
            e,
            AgentEvent::StateChanged {
                state: Presence::Rona,
                ..
            }
        )
        .then_some(())
    })
    .await;
    let c = engine.conversation(&c.id).await.expect("read").expect("exists");
    assert_eq!(c.state, ConversationState::Ended);
    assert_eq!(c.ended_reason.as_deref(), Some("transfer_not_accepted"));
    assert!(engine.violations().await.expect("check").is_empty());
}

/// With `transfer_no_answer = "requeue"`, an untaken transfer goes back to its queue and
/// is offered to the next available agent.
#[actix_rt::test]
async fn transfer_not_accepted_is_requeued_when_configured() {
    let engine = setup(TransferNoAnswer::Requeue, MemoryStore::new()).await;
    let mut rx2 = subscribe(&engine, "a2").await;
    let mut rx3 = subscribe(&engine, "a3").await;
    available(&engine, "a1").await;
    let c = engine
        .customer_message("page", "u1", "Uma", "hello")
        .await
        .expect("message");
    engine.accept("a1", &c.id).await.expect("accept");
    available(&engine, "a2").await;
    engine.transfer_to_agent("a1", &c.id, "a2").await.expect("transfer");
    offer(&mut rx2).await;
    available(&engine, "a3").await;
    let (conv, o) = offer(&mut rx3).await;
    assert_eq!((conv.id.as_str(), o.kind), (c.id.as_str(), OfferKind::New));
    let a2 = engine.agent("a2").await.expect("read").expect("a2");
    assert_eq!(a2.agent.presence, Presence::Rona);
}

/// A transfer to a queue puts the conversation in that queue as a new arrival.
#[actix_rt::test]
async fn transfer_to_queue() {
    let engine = setup(TransferNoAnswer::Drop, MemoryStore::new()).await;
    available(&engine, "a1").await;
    let c = engine
        .customer_message("page", "u1", "Uma", "hello")
        .await
        .expect("message");
    engine.accept("a1", &c.id).await.expect("accept");
    let t = engine.transfer_to_queue("a1", &c.id, "sales").await.expect("transfer");
    assert_eq!(
        (t.state, t.queue.as_str(), t.queue_name.as_str()),
        (ConversationState::Queued, "sales", "Sales")
    );
    assert!(t.received_at >= c.received_at);
    let q = engine.queue("sales").await.expect("read").expect("sales");
    assert_eq!(q.waiting, 1);
    let mut rx2 = subscribe(&engine, "a2").await;
    available(&engine, "a2").await;
    let (conv, _) = offer(&mut rx2).await;
    assert_eq!((conv.id.as_str(), conv.queue_name.as_str()), (c.id.as_str(), "Sales"));
    assert_eq!(
        code(engine.transfer_to_queue("a1", &c.id, "sales").await).await,
        "invalid_state"
    );
}

/// Conference: the guest is offered, joins with a system message, exits with another,
/// and the chat goes on between owner and customer; the guest owes a wrap-up.
#[actix_rt::test]
async fn conference_join_and_exit() {
    let engine = setup(TransferNoAnswer::Drop, MemoryStore::new()).await;
    let mut rx1 = subscribe(&engine, "a1").await;
    let mut rx2 = subscribe(&engine, "a2").await;
    available(&engine, "a1").await;
    let c = engine
        .customer_message("page", "u1", "Uma", "hello")
        .await
        .expect("message");
    engine.accept("a1", &c.id).await.expect("accept");
    available(&engine, "a2").await;
    let r = engine.conference("a1", &c.id, "a2").await.expect("conference");
    assert_eq!(r.conference_state(), ConferenceState::ConferenceRequested);
    let (_, o) = offer(&mut rx2).await;
    assert_eq!(o.kind, OfferKind::Conference);
    let joined = engine.accept("a2", &c.id).await.expect("join");
    assert_eq!(joined.conference_state(), ConferenceState::Conference);
    assert_eq!(
        joined.transcript.last().map(|m| m.text.as_str()),
        Some("Bob has joined the chat")
    );
    expect(&mut rx1, "participant_joined", |e| {
        matches!(e, AgentEvent::ParticipantJoined { agent, .. } if agent == "a2").then_some(())
    })
    .await;
    engine.send("a2", &c.id, "hi from Bob").await.expect("guest writes");
    engine.exit_conference("a2", &c.id).await.expect("exit");
    expect(&mut rx1, "participant_left", |e| {
        matches!(e, AgentEvent::ParticipantLeft { .. }).then_some(())
    })
    .await;
    let after = engine.conversation(&c.id).await.expect("read").expect("exists");
    assert_eq!(after.state, ConversationState::Active);
    assert_eq!(after.guest, None);
    assert_eq!(
        after.transcript.last().map(|m| m.text.as_str()),
        Some("Bob has left the chat")
    );
    engine.send("a1", &c.id, "still here").await.expect("owner writes on");
    assert_eq!(
        code(engine.send("a2", &c.id, "me too").await).await,
        "not_in_conversation"
    );
    engine.wrapup("a2", &c.id, "resolved").await.expect("guest wrap-up");
}

/// A conference offer that expires puts the invited agent in RONA; the chat goes on.
#[actix_rt::test]
async fn conference_not_accepted() {
    let engine = setup(TransferNoAnswer::Drop, MemoryStore::new()).await;
    let mut rx1 = subscribe(&engine, "a1").await;
    available(&engine, "a1").await;
    let c = engine
        .customer_message("page", "u1", "Uma", "hello")
        .await
        .expect("message");
    engine.accept("a1", &c.id).await.expect("accept");
    available(&engine, "a2").await;
    engine.conference("a1", &c.id, "a2").await.expect("conference");
    expect(&mut rx1, "conference_not_accepted", |e| {
        matches!(e, AgentEvent::ConferenceNotAccepted { .. }).then_some(())
    })
    .await;
    let c = engine.conversation(&c.id).await.expect("read").expect("exists");
    assert_eq!(
        (c.state, c.conference_state()),
        (ConversationState::Active, ConferenceState::None)
    );
    let a2 = engine.agent("a2").await.expect("read").expect("a2");
    assert_eq!(a2.agent.presence, Presence::Rona);
}

/// The owner ends a conference for everyone; owner and guest each owe a wrap-up.
#[actix_rt::test]
async fn end_conference_both_wrap_up() {
    let engine = setup(TransferNoAnswer::Drop, MemoryStore::new()).await;
    available(&engine, "a1").await;
    let c = engine
        .customer_message("page", "u1", "Uma", "hello")
        .await
        .expect("message");
    engine.accept("a1", &c.id).await.expect("accept");
    available(&engine, "a2").await;
    engine.conference("a1", &c.id, "a2").await.expect("conference");
    engine.accept("a2", &c.id).await.expect("join");
    assert_eq!(code(engine.end_conference("a2", &c.id).await).await, "not_owner");
    engine.end_conference("a1", &c.id).await.expect("end conference");
    let ended = engine.conversation(&c.id).await.expect("read").expect("exists");
    assert_eq!(ended.state, ConversationState::Ended);
    for a in ["a1", "a2"] {
        let d = engine.agent(a).await.expect("read").expect("agent");
        assert_eq!(d.wrapups.len(), 1, "{a} owes one wrap-up");
        assert_eq!(d.agent.load(), 1, "the wrap-up holds {a}'s slot");
    }
    engine.wrapup("a1", &c.id, "resolved").await.expect("wrap-up");
    engine.wrapup("a2", &c.id, "escalated").await.expect("wrap-up");
    assert!(engine.violations().await.expect("check").is_empty());
}

/// End, wrap-up, and the freed agent receives the oldest waiting conversation.
#[actix_rt::test]
async fn end_wrapup_and_next_conversation() {
    let engine = setup(TransferNoAnswer::Drop, MemoryStore::new()).await;
    let mut rx1 = subscribe(&engine, "a1").await;
    available(&engine, "a1").await;
    let c1 = engine
        .customer_message("page", "u1", "Uma", "first")
        .await
        .expect("message");
    let c2 = engine
        .customer_message("page", "u2", "Vic", "second")
        .await
        .expect("message");
    let c3 = engine
        .customer_message("page", "u3", "Wes", "third")
        .await
        .expect("message");
    assert_eq!(c2.state, ConversationState::Queued);
    engine.accept("a1", &c1.id).await.expect("accept");
    engine.end("a1", &c1.id).await.expect("end");
    let ended = engine.conversation(&c1.id).await.expect("read").expect("exists");
    assert_eq!(ended.ended_reason.as_deref(), Some("agent_ended"));
    // The wrap-up holds the slot: nothing new is offered yet.
    assert_eq!(engine.queue("support").await.expect("read").expect("q").waiting, 2);
    assert_eq!(
        code(engine.wrapup("a1", &c1.id, "nonsense").await).await,
        "unknown_wrapup_reason"
    );
    engine.wrapup("a1", &c1.id, "resolved").await.expect("wrap-up");
    let mut next = None;
    while next.is_none() {
        let (c, _) = offer(&mut rx1).await;
        if c.id != c1.id {
            next = Some(c.id.clone());
        }
    }
    assert_eq!(next.as_deref(), Some(c2.id.as_str()), "oldest waiting first");
    let _ = c3;
    // The customer's later message joins the open conversation; after end, a new one opens.
    let again = engine
        .customer_message("page", "u2", "Vic", "still there?")
        .await
        .expect("message");
    assert_eq!(again.id, c2.id);
    let new = engine
        .customer_message("page", "u1", "Uma", "me again")
        .await
        .expect("message");
    assert_ne!(new.id, c1.id);
    assert!(engine.violations().await.expect("check").is_empty());
}

/// Logging out while holding conversations is refused; setting the same state keeps
/// `state_since`; RONA cannot be set by a client.
#[actix_rt::test]
async fn presence_rules() {
    let engine = setup(TransferNoAnswer::Drop, MemoryStore::new()).await;
    let a = engine
        .set_state("a1", Presence::Available, None)
        .await
        .expect("available");
    let again = engine.set_state("a1", Presence::Available, None).await.expect("again");
    assert_eq!(a.state_since, again.state_since);
    assert_eq!(
        code(engine.set_state("a1", Presence::Rona, None).await).await,
        "state_not_settable"
    );
    assert_eq!(
        code(engine.set_state("a1", Presence::Idle, Some("nap")).await).await,
        "unknown_idle_code"
    );
    let c = engine
        .customer_message("page", "u1", "Uma", "hello")
        .await
        .expect("message");
    engine.accept("a1", &c.id).await.expect("accept");
    assert_eq!(
        code(engine.set_state("a1", Presence::LoggedOut, None).await).await,
        "agent_busy"
    );
    let idle = engine
        .set_state("a1", Presence::Idle, Some("break"))
        .await
        .expect("idle");
    assert_eq!(idle.idle_code.as_deref(), Some("break"));
}

/// An engine restarted on the same store has the same agents, queues and conversations,
/// and re-offers a pending offer to the same agent.
#[actix_rt::test]
async fn restart_keeps_state() {
    let store = MemoryStore::new();
    let engine = setup(TransferNoAnswer::Drop, store.clone()).await;
    available(&engine, "a1").await;
    let c1 = engine
        .customer_message("page", "u1", "Uma", "one")
        .await
        .expect("message");
    engine.accept("a1", &c1.id).await.expect("accept");
    engine.send("a1", &c1.id, "hi").await.expect("send");
    available(&engine, "a2").await;
    let c2 = engine
        .customer_message("page", "u2", "Vic", "two")
        .await
        .expect("message");
    let c3 = engine
        .customer_message("page", "u3", "Wes", "three")
        .await
        .expect("message");
    let before = (
        engine.agents().await.expect("agents"),
        engine.conversation(&c1.id).await.expect("c1"),
    );
    let restarted = Engine::start(EngineOptions::new(rules(TransferNoAnswer::Drop), Arc::new(store))).expect("restart");
    let after = (
        restarted.agents().await.expect("agents"),
        restarted.conversation(&c1.id).await.expect("c1"),
    );
    assert_eq!(before, after);
    let c2 = restarted.conversation(&c2.id).await.expect("read").expect("c2");
    assert_eq!(c2.offer.map(|o| o.agent).as_deref(), Some("a2"));
    let c3 = restarted.conversation(&c3.id).await.expect("read").expect("c3");
    assert_eq!(c3.state, ConversationState::Queued);
    assert!(restarted.violations().await.expect("check").is_empty());
}

/// Many tasks hammer one engine at once (presence changes, arrivals, accepts, ends,
/// wrap-ups, transfers, conferences, expiries); at the end every invariant holds, and
/// again after a restart on the same store.
#[actix_rt::test]
async fn concurrent_stress_keeps_invariants() {
    let store = MemoryStore::new();
    let stress_rules = || Rules {
        offer_timeout_ms: 50,
        transfer_timeout_ms: 50,
        conference_timeout_ms: 50,
        ..Rules::default()
    };
    let engine = Engine::start(EngineOptions::new(stress_rules(), Arc::new(store.clone()))).expect("engine");
    engine.create_queue("q1", "One").await.expect("queue");
    engine.create_queue("q2", "Two").await.expect("queue");
    for (ep, q) in [("e1", "q1"), ("e2", "q2")] {
        engine
            .create_entry_point(EntryPoint {
                id: ep.into(),
                name: ep.into(),
                queue: q.into(),
                page_id: None,
                page_access_token: None,

                ..Default::default()
            })
            .await
            .expect("entry point");
    }
    let agents: Vec<String> = (0..12).map(|i| format!("a{i}")).collect();
    for (i, a) in agents.iter().enumerate() {
        let queues: &[&str] = match i % 3 {
            0 => &["q1"],
            1 => &["q2"],
            _ => &["q1", "q2"],
        };
        engine
            .create_agent(a, a, queues, 1 + (i as u32 % 3))
            .await
            .expect("agent");
    }
    let mut watch = engine.observe();
    let mut tasks = Vec::new();
    for (i, a) in agents.iter().cloned().enumerate() {
        let engine = engine.clone();
        let others = agents.clone();
        tasks.push(actix_rt::spawn(async move {
            for round in 0..40u32 {
                let _ = engine.set_state(&a, Presence::Available, None).await;
                let Some(d) = engine.agent(&a).await.ok().flatten() else {
                    continue;
                };
                for c in d.offers {
                    // Every fourth agent lets its offers expire.
                    if i % 4 != 0 {
                        let _ = engine.accept(&a, &c.id).await;
                    }
                }
                let Some(d) = engine.agent(&a).await.ok().flatten() else {
                    continue;
                };
                for c in d.conversations {
                    let _ = engine.send(&a, &c.id, "hello").await;
                    let _ = match round % 5 {
                        0 => engine.transfer_to_queue(&a, &c.id, "q2").await.map(|_| ()),
                        1 => engine
                            .transfer_to_agent(&a, &c.id, &others[(i + 1) % others.len()])
                            .await
                            .map(|_| ()),
                        2 => engine
                            .conference(&a, &c.id, &others[(i + 2) % others.len()])
                            .await
                            .map(|_| ()),
                        3 => engine.exit_conference(&a, &c.id).await,
                        _ => engine.end(&a, &c.id).await,
                    };
                }
                for c in d.wrapups {
                    let _ = engine.wrapup(&a, &c.id, "resolved").await;
                }
                tokio::time::sleep(Duration::from_millis(3)).await;
            }
        }));
    }
    for i in 0..4 {
        let engine = engine.clone();
        tasks.push(actix_rt::spawn(async move {
            for n in 0..60 {
                let ep = if n % 2 == 0 { "e1" } else { "e2" };
                let _ = engine
                    .customer_message(ep, &format!("u{i}-{n}"), "Customer", "help")
                    .await;
                if n % 7 == 0 {
                    if let Ok(Some(c)) = engine.conversation(&format!("c-{}", n + 1)).await {
                        let _ = engine.customer_end(&c.id).await;
                    }
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
    let v = engine.violations().await.expect("check");
    assert!(v.is_empty(), "{v:#?}");
    let agents = engine.agents().await.expect("agents");
    assert!(agents.iter().all(|a| a.load() <= a.capacity));
    let mut ronas = 0;
    let mut accepts = 0;
    while let Ok(o) = watch.try_recv() {
        match &*o {
            switchboard::engine::Observed::Observation(Observation::Rona { .. }) => ronas += 1,
            switchboard::engine::Observed::Observation(Observation::Accepted { .. }) => accepts += 1,
            _ => {}
        }
    }
    assert!(
        ronas > 0 && accepts > 0,
        "the run exercised expiry ({ronas}) and accepts ({accepts})"
    );
    let restarted = Engine::start(EngineOptions::new(stress_rules(), Arc::new(store))).expect("restart");
    let v = restarted.violations().await.expect("check");
    assert!(v.is_empty(), "after restart: {v:#?}");
    // The first engine's timers still run, so presence may move on; who exists may not.
    let ids = |v: &[Agent]| v.iter().map(|a| (a.id.clone(), a.capacity)).collect::<Vec<_>>();
    assert_eq!(ids(&agents), ids(&restarted.agents().await.expect("agents")));
}

/// A caller with several commands at hand sends them as one batch: each is answered in
/// order exactly as `exec` would answer it (a refused command in the middle changes
/// nothing and does not stop the others), and the events follow in decision order.
#[actix_rt::test]
async fn a_batch_runs_its_commands_in_order() {
    use switchboard::engine::{Command, Reply};
    let store = MemoryStore::new();
    let engine = setup(TransferNoAnswer::Drop, store.clone()).await;
    let mut rx = subscribe(&engine, "a1").await;
    let answers = engine
        .exec_batch(vec![
            Command::SetState {
                agent: "a1".into(),
                state: Presence::Available,
                idle_code: None,
            },
            Command::CustomerMessage {
                entry_point: "page".into(),
                customer: Customer {
                    id: "cust".into(),
                    name: "Cus".into(),
                },
                text: "hello".into(),
                channel: Channel::Rest,

                open: Default::default(),
            },
            Command::Accept {
                agent: "a1".into(),
                conversation: "c-404".into(),
            },
            Command::Accept {
                agent: "a1".into(),
                conversation: "c-1".into(),
            },
        ])
        .await;
    assert_eq!(answers.len(), 4);
    assert!(matches!(&answers[0], Ok(Reply::Agent(a)) if a.presence == Presence::Available));
    // A batch's answers name a touched conversation by id (`Detail::Brief`).
    assert!(matches!(&answers[1], Ok(Reply::ConversationId(c)) if c == "c-1"));
    assert_eq!(
        answers[2].as_ref().map(|_| ()).map_err(|e| e.code()),
        Err("unknown_conversation")
    );
    assert!(matches!(&answers[3], Ok(Reply::ConversationId(c)) if c == "c-1"));
    let (c, _) = offer(&mut rx).await;
    assert_eq!(c.id, "c-1");
    expect(&mut rx, "the accepted conversation", |e| match e {
        AgentEvent::Conversation(c) if c.id == "c-1" => Some(()),
        _ => None,
    })
    .await;
    assert!(engine.exec_batch(Vec::new()).await.is_empty());
    assert!(engine.violations().await.expect("check").is_empty());
    // The batch's changes are durable: a restart sees the accepted conversation.
    let restarted = Engine::start(EngineOptions::new(rules(TransferNoAnswer::Drop), Arc::new(store))).expect("restart");
    let c = restarted.conversation("c-1").await.expect("read").expect("stored");
    assert_eq!(c.owner.as_deref(), Some("a1"));
}

/// Memory does not grow with completed conversations: 200 whole lifecycles (some ended by
/// the customer while queued, some by the agent, some with a conference guest) leave the
/// engine holding no conversation and no conversation actor. Each finished conversation
/// still reads back whole from the store, commands on it get the refusals they always
/// got, and a restart on the same store loads none of them.
#[actix_rt::test]
async fn finished_conversations_leave_memory() {
    let store = MemoryStore::new();
    let engine = setup(TransferNoAnswer::Drop, store.clone()).await;
    let mut rx1 = subscribe(&engine, "a1").await;
    let mut rx2 = subscribe(&engine, "a2").await;
    available(&engine, "a1").await;
    let mut finished = Vec::new();
    for i in 0..200 {
        let customer = format!("u{i}");
        if i % 10 == 9 {
            // Ended by the customer before anyone took it: nobody owes a wrap-up.
            engine.set_state("a1", Presence::Idle, None).await.expect("idle");
            let c = engine
                .customer_message("page", &customer, "Uma", "never mind")
                .await
                .expect("message");
            engine.customer_end(&c.id).await.expect("customer end");
            available(&engine, "a1").await;
            finished.push(c.id);
            continue;
        }
        let c = engine
            .customer_message("page", &customer, "Uma", "hello")
            .await
            .expect("message");
        let (conv, _) = offer(&mut rx1).await;
        assert_eq!(conv.id, c.id);
        engine.accept("a1", &c.id).await.expect("accept");
        engine.send("a1", &c.id, "hi there").await.expect("send");
        if i % 10 == 4 {
            available(&engine, "a2").await;
            engine.conference("a1", &c.id, "a2").await.expect("conference");
            let (guest_offer, _) = offer(&mut rx2).await;
            assert_eq!(guest_offer.id, c.id);
            engine.accept("a2", &c.id).await.expect("guest accepts");
            engine.end_conference("a1", &c.id).await.expect("end conference");
            engine.wrapup("a2", &c.id, "resolved").await.expect("guest wrap-up");
            engine
                .set_state("a2", Presence::LoggedOut, None)
                .await
                .expect("a2 logs out");
        } else {
            engine.end("a1", &c.id).await.expect("end");
        }
        // Ended, owed a wrap-up: still held.
        assert!(engine.stats().await.expect("stats").conversations_held >= 1);
        engine.wrapup("a1", &c.id, "resolved").await.expect("wrap-up");
        finished.push(c.id);
    }
    let stats = engine.stats().await.expect("stats");
    assert_eq!(stats.conversations_held, 0, "{stats:?}");
    assert_eq!(stats.conversation_actors, 0, "{stats:?}");
    assert_eq!(stats.conversations_leaving, 0, "{stats:?}");
    assert!(engine.violations().await.expect("check").is_empty());

    // Still readable, whole, and refused as before.
    let last = engine
        .conversation(&finished[198])
        .await
        .expect("read")
        .expect("stored");
    assert_eq!(last.state, ConversationState::Ended);
    assert_eq!(last.ended_reason.as_deref(), Some("agent_ended"));
    let texts: Vec<_> = last.transcript.iter().map(|m| m.text.as_str()).collect();
    assert_eq!(texts, ["hello", "hi there"]);
    assert_eq!(last.wrapups.len(), 1);
    let id = &finished[198];
    assert_eq!(code(engine.send("a1", id, "hello?").await).await, "conversation_ended");
    assert_eq!(
        code(engine.customer_reply(id, "hello?").await).await,
        "conversation_ended"
    );
    assert_eq!(code(engine.end("a1", id).await).await, "conversation_ended");
    assert_eq!(code(engine.accept("a1", id).await).await, "not_offered_to_you");
    assert_eq!(code(engine.wrapup("a1", id, "resolved").await).await, "no_wrapup_owed");
    assert_eq!(code(engine.end("a1", "c-99999").await).await, "unknown_conversation");
    assert!(engine.conversation("c-99999").await.expect("read").is_none());

    let restarted = Engine::start(EngineOptions::new(rules(TransferNoAnswer::Drop), Arc::new(store))).expect("restart");
    let stats = restarted.stats().await.expect("stats");
    assert_eq!(stats.conversations_held, 0, "{stats:?}");
    assert_eq!(restarted.conversation(id).await.expect("read").expect("stored"), last);
    let queued_end = restarted
        .conversation(&finished[9])
        .await
        .expect("read")
        .expect("stored");
    assert_eq!(queued_end.ended_reason.as_deref(), Some("customer_ended"));
    assert!(restarted.violations().await.expect("check").is_empty());
}

/// A tenant's codes set in a running engine are in force at once, answered by
/// `Engine::rules`, and kept by a floor rebuilt from the store (as after a store fault).
#[actix_rt::test]
async fn codes_set_in_a_running_engine_are_kept_by_a_rebuild() {
    let engine = setup(TransferNoAnswer::Drop, MemoryStore::new()).await;
    let code = |c: &str| Code {
        code: c.into(),
        label: c.to_uppercase(),
    };
    engine
        .set_codes(Codes {
            wrapup_reasons: Arc::new(vec![code("done")]),
            default_wrapup_reason: "done".into(),
            idle_codes: Arc::new(vec![code("training")]),
        })
        .await
        .expect("set");
    let codes: Vec<String> = engine.rules().idle_codes.iter().map(|c| c.code.clone()).collect();
    assert_eq!(codes, ["training"]);
    assert_eq!(engine.rules().offer_timeout_ms, 200, "the rest as before");
    engine.restart().await.expect("rebuilt");
    assert_eq!(engine.rules().default_wrapup_reason, "done");
    let refused = engine.set_state("a1", Presence::Idle, Some("break")).await.unwrap_err();
    assert_eq!(refused.code(), "unknown_idle_code");
    let a1 = engine
        .set_state("a1", Presence::Idle, Some("training"))
        .await
        .expect("the code in force");
    assert_eq!(a1.idle_code.as_deref(), Some("training"));
}
