//! A seeded, randomised run of many engine operations on sled with restarts at random
//! points. After every restart: nothing acknowledged is lost, every invariant holds, and
//! after a clean stop the whole state is the same.
//!
//! `STORE_RANDOM_SEED=N` replays a run (the seed is printed); `STORE_RANDOM_STEPS=N` runs
//! longer.

mod store_common;

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use store_common::*;
use switchboard::core::{EntryPoint, Presence, Rules};
use switchboard::engine::{Engine, EngineError};
use switchboard::store::SledStore;

const AGENTS: [(&str, &[&str], u32); 6] = [
    ("a1", &["q1"], 1),
    ("a2", &["q1", "q2"], 2),
    ("a3", &["q2"], 1),
    ("a4", &["q2"], 2),
    ("a5", &["q1"], 1),
    ("a6", &["q1", "q2"], 3),
];

/// No timer fires during the run: offers stay until accepted (RONA is the reopen test's).
fn rules() -> Rules {
    Rules {
        offer_timeout_ms: 600_000,
        transfer_timeout_ms: 600_000,
        conference_timeout_ms: 600_000,
        ..Rules::default()
    }
}

/// What the engine acknowledged, to be found after every restart.
#[derive(Debug, Default, Clone)]
struct Acked {
    /// (conversation, seq, text)
    messages: Vec<(String, u64, String)>,
    /// (conversation, agent)
    wrapups: Vec<(String, String)>,
    /// Highest conversation number seen.
    conversations: u64,
}

impl Acked {
    fn conversation(&mut self, id: &str) {
        if let Some(n) = id.strip_prefix("c-").and_then(|n| n.parse().ok()) {
            self.conversations = self.conversations.max(n);
        }
    }
}

/// Checks that everything in `acked` is in the engine.
async fn check_acked(e: &Engine, acked: &Acked, seed: u64) {
    for (c, seq, text) in &acked.messages {
        let conv = e.conversation(c).await.unwrap();
        let found = conv
            .as_ref()
            .and_then(|c| c.transcript.get(*seq as usize - 1))
            .map(|m| m.text.as_str());
        assert_eq!(
            found,
            Some(text.as_str()),
            "seed {seed}: acknowledged message {c}#{seq} lost"
        );
    }
    for (c, a) in &acked.wrapups {
        let conv = e.conversation(c).await.unwrap().expect("wrapped-up conversation");
        assert!(
            conv.wrapups.iter().any(|w| &w.agent == a),
            "seed {seed}: acknowledged wrap-up of {c} by {a} lost"
        );
    }
    assert_eq!(e.violations().await.unwrap(), Vec::<String>::new(), "seed {seed}");
}

fn ok_or_domain<T>(r: Result<T, EngineError>, seed: u64) -> Option<T> {
    match r {
        Ok(v) => Some(v),
        Err(EngineError::Core(_)) => None,
        Err(e) => panic!("seed {seed}: unexpected engine error {e}"),
    }
}

/// One random operation.
async fn step(e: &Engine, rng: &mut StdRng, acked: &mut Acked, i: u64, seed: u64) {
    let agent = AGENTS[rng.gen_range(0..AGENTS.len())].0;
    let conv = format!("c-{}", rng.gen_range(1..=acked.conversations.max(1)));
    let text = format!("m{i}");
    match rng.gen_range(0..14) {
        0 | 1 => {
            let ep = if rng.gen_bool(0.5) { "ep1" } else { "ep2" };
            let cust = format!("k{}", rng.gen_range(0..12));
            if let Some(c) = ok_or_domain(e.customer_message(ep, &cust, "Cust", &text).await, seed) {
                acked.conversation(&c.id);
                let m = c.transcript.last().expect("the message");
                acked.messages.push((c.id.clone(), m.seq, text));
            }
        }
        2 => {
            if let Some(m) = ok_or_domain(e.customer_reply(&conv, &text).await, seed) {
                acked.messages.push((conv, m.seq, text));
            }
        }
        3 | 4 => {
            let state = [
                Presence::Available,
                Presence::Available,
                Presence::Idle,
                Presence::LoggedOut,
            ][rng.gen_range(0..4)];
            ok_or_domain(e.set_state(agent, state, None).await, seed);
        }
        5 | 6 => {
            let detail = e.agent(agent).await.unwrap().unwrap();
            if let Some(c) = detail.offers.first() {
                ok_or_domain(e.accept(agent, &c.id).await, seed);
            }
        }
        7 | 8 => {
            let detail = e.agent(agent).await.unwrap().unwrap();
            if let Some(c) = detail.conversations.first() {
                if let Some(m) = ok_or_domain(e.send(agent, &c.id, &text).await, seed) {
                    acked.messages.push((c.id.clone(), m.seq, text));
                }
            }
        }
        9 => {
            let detail = e.agent(agent).await.unwrap().unwrap();
            if let Some(c) = detail.wrapups.first() {
                if ok_or_domain(e.wrapup(agent, &c.id, "resolved").await, seed).is_some() {
                    acked.wrapups.push((c.id.clone(), agent.to_string()));
                }
            }
        }
        10 => {
            let detail = e.agent(agent).await.unwrap().unwrap();
            if let Some(c) = detail.conversations.first() {
                let r = match rng.gen_range(0..3) {
                    0 => e.end(agent, &c.id).await,
                    1 => e.exit_conference(agent, &c.id).await,
                    _ => e.end_conference(agent, &c.id).await,
                };
                ok_or_domain(r, seed);
            }
        }
        11 => {
            let detail = e.agent(agent).await.unwrap().unwrap();
            if let Some(c) = detail.conversations.first() {
                let target = AGENTS[rng.gen_range(0..AGENTS.len())].0;
                let r = match rng.gen_range(0..3) {
                    0 => e.transfer_to_agent(agent, &c.id, target).await.map(|_| ()),
                    1 => e
                        .transfer_to_queue(agent, &c.id, ["q1", "q2"][rng.gen_range(0..2)])
                        .await
                        .map(|_| ()),
                    _ => e.conference(agent, &c.id, target).await.map(|_| ()),
                };
                ok_or_domain(r, seed);
            }
        }
        12 => {
            ok_or_domain(e.customer_end(&conv).await, seed);
        }
        _ => {
            assert_eq!(
                e.violations().await.unwrap(),
                Vec::<String>::new(),
                "seed {seed} step {i}"
            );
        }
    }
}

/// How an engine life ends.
enum Ending {
    /// Every operation answered, then stopped: the next life must show the same state.
    Clean(State),
    /// Stopped in the middle of a burst of concurrent operations.
    Burst,
}

struct Run {
    seed: u64,
    rng: StdRng,
    acked: Acked,
    steps_left: u64,
    now: u64,
    ending: Option<Ending>,
    first: bool,
}

/// One engine life on `store`: check what the last life left, then run random steps
/// until a random restart point, and end cleanly or in the middle of a burst.
fn life(store: Arc<SledStore>, mut run: Run) -> Run {
    let rules = rules();
    engine_life(move || async move {
        let clock = TestClock::at(run.now);
        let e = start(&store, rules.clone(), clock.clone());
        let seed = run.seed;
        if run.first {
            for q in ["q1", "q2"] {
                e.create_queue(q, q).await.unwrap();
            }
            for (ep, q) in [("ep1", "q1"), ("ep2", "q2")] {
                e.create_entry_point(EntryPoint {
                    id: ep.into(),
                    name: ep.into(),
                    queue: q.into(),
                    page_id: None,
                    page_access_token: None,

                    ..Default::default()
                })
                .await
                .unwrap();
            }
            for (a, qs, cap) in AGENTS {
                e.create_agent(a, a, qs, cap).await.unwrap();
            }
            run.first = false;
        }
        check_acked(&e, &run.acked, seed).await;
        if let Some(Ending::Clean(before)) = run.ending.take() {
            let after = capture(&e, conversation_ids(run.acked.conversations + 50)).await;
            assert_restored(&before, &after, &rules, run.now);
        }
        let steps = run.rng.gen_range(1..=run.steps_left.min(80));
        for i in 0..steps {
            clock.advance(1);
            step(&e, &mut run.rng, &mut run.acked, run.now + i, seed).await;
        }
        run.steps_left -= steps;
        run.now = clock.now_ms() + 1_000;
        if run.rng.gen_bool(0.5) || run.steps_left == 0 {
            let state = capture(&e, conversation_ids(run.acked.conversations + 50)).await;
            store.close();
            run.ending = Some(Ending::Clean(state));
        } else {
            burst(&e, &store, &mut run).await;
            run.ending = Some(Ending::Burst);
        }
        run
    })
}

/// Fires concurrent customer messages and replies, and closes the store after a random
/// number of them were acknowledged. Every answer that says "ok" is recorded, whenever
/// it comes: the store flushed it before it said so.
async fn burst(e: &Engine, store: &SledStore, run: &mut Run) {
    let acks: Rc<RefCell<Vec<(String, u64, String)>>> = Rc::default();
    let done: Rc<RefCell<usize>> = Rc::default();
    let n = 30;
    let stop_after = run.rng.gen_range(0..n);
    let mut tasks = Vec::new();
    for i in 0..n {
        let (e, acks, done) = (e.clone(), acks.clone(), done.clone());
        let text = format!("burst{}-{i}", run.now);
        let reply_to =
            (run.acked.conversations > 0).then(|| format!("c-{}", run.rng.gen_range(1..=run.acked.conversations)));
        let cust = format!("k{}", run.rng.gen_range(0..12));
        tasks.push(actix::spawn(async move {
            match reply_to {
                Some(c) if i % 2 == 0 => {
                    if let Ok(m) = e.customer_reply(&c, &text).await {
                        acks.borrow_mut().push((c, m.seq, text));
                    }
                }
                _ => {
                    if let Ok(c) = e.customer_message("ep1", &cust, "Cust", &text).await {
                        let seq = c.transcript.last().map_or(0, |m| m.seq);
                        acks.borrow_mut().push((c.id, seq, text));
                    }
                }
            }
            *done.borrow_mut() += 1;
        }));
    }
    while *done.borrow() < stop_after {
        tokio::task::yield_now().await;
    }
    store.close();
    for t in tasks {
        t.await.unwrap();
    }
    for (c, seq, text) in acks.borrow_mut().drain(..) {
        run.acked.conversation(&c);
        run.acked.messages.push((c, seq, text));
    }
}

trait NowMs {
    fn now_ms(&self) -> u64;
}

impl NowMs for TestClock {
    fn now_ms(&self) -> u64 {
        switchboard::actors::Clock::now(self)
    }
}

/// Story: whatever the moment of a restart, nothing the engine acknowledged is lost and
/// every invariant holds after recovery.
#[test]
fn random_operations_survive_random_restarts() {
    let seed = std::env::var("STORE_RANDOM_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| rand::thread_rng().gen());
    let steps = std::env::var("STORE_RANDOM_STEPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1000);
    println!("STORE_RANDOM_SEED={seed}");
    let dir = tempfile::tempdir().unwrap();
    let mut run = Run {
        seed,
        rng: StdRng::seed_from_u64(seed),
        acked: Acked::default(),
        steps_left: steps,
        now: 1_700_000_000_000,
        ending: None,
        first: true,
    };
    let mut lives = 0;
    while run.steps_left > 0 {
        run = life(open(dir.path()), run);
        lives += 1;
    }
    // A last life checks what the final one left.
    run.steps_left = 1;
    run = life(open(dir.path()), run);
    println!(
        "seed {seed}: {} lives, {} acknowledged messages, {} wrap-ups, {} conversations",
        lives + 1,
        run.acked.messages.len(),
        run.acked.wrapups.len(),
        run.acked.conversations
    );
    assert!(
        run.acked.messages.len() > 10,
        "the run did too little to prove anything"
    );
}
