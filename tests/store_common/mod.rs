//! Helpers shared by the store tests: a hand-driven clock, an engine life in its own actix
//! system (so that stopping it really stops its actors), and a whole-state capture.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::future::Future;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use switchboard::actors::Clock;
use switchboard::core::{Agent, Conversation, EntryPoint, Millis, OfferKind, Rules};
use switchboard::engine::{Engine, EngineOptions, QueueStats};
use switchboard::store::{SledOptions, SledStore, Store};

/// A clock that moves only when the test moves it.
#[derive(Debug)]
pub struct TestClock(AtomicU64);

impl TestClock {
    pub fn at(now: Millis) -> Arc<TestClock> {
        Arc::new(TestClock(AtomicU64::new(now)))
    }
    pub fn advance(&self, ms: u64) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Clock for TestClock {
    fn now(&self) -> Millis {
        self.0.load(Ordering::SeqCst)
    }
}

/// Runs one engine life: a fresh actix system on its own thread, `f` inside it, then the
/// system (and every actor of the engine) is stopped.
pub fn engine_life<F, Fut, T>(f: F) -> T
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = T>,
    T: Send + 'static,
{
    std::thread::spawn(move || {
        let sys = actix::System::new();
        let out = sys.block_on(f());
        actix::System::current().stop();
        let _ = sys.run();
        out
    })
    .join()
    .expect("engine life panicked")
}

/// Opens the sled store in `dir` with default options.
pub fn open(dir: &Path) -> Arc<SledStore> {
    Arc::new(SledStore::open(dir, SledOptions::default()).expect("store opens"))
}

/// Starts an engine on `store` with `rules` and `clock`.
pub fn start(store: &Arc<SledStore>, rules: Rules, clock: Arc<TestClock>) -> Engine {
    let store: Arc<dyn Store> = store.clone();
    let mut options = EngineOptions::new(rules, store);
    options.clock = clock;
    Engine::start(options).expect("engine starts")
}

/// Everything the engine shows, keyed by id.
#[derive(Debug, Clone, PartialEq)]
pub struct State {
    pub agents: BTreeMap<String, Agent>,
    pub queues: Vec<QueueStats>,
    pub entry_points: Vec<EntryPoint>,
    pub conversations: BTreeMap<String, Conversation>,
}

/// Captures the whole state of `engine`; `conversations` names the ids to read.
pub async fn capture(engine: &Engine, conversations: impl IntoIterator<Item = String>) -> State {
    let agents = engine
        .agents()
        .await
        .expect("agents")
        .into_iter()
        .map(|a| (a.id.clone(), a))
        .collect();
    let mut convs = BTreeMap::new();
    for id in conversations {
        if let Some(c) = engine.conversation(&id).await.expect("conversation") {
            convs.insert(id, c);
        }
    }
    State {
        agents,
        queues: engine.queues().await.expect("queues"),
        entry_points: engine.entry_points().await.expect("entry points"),
        conversations: convs,
    }
}

/// The conversation ids `c-1` .. `c-(n)`: the engine numbers conversations this way.
pub fn conversation_ids(n: u64) -> impl Iterator<Item = String> {
    (1..=n).map(|i| format!("c-{i}"))
}

/// The deadline of an offer of `kind` under `rules`.
pub fn timeout(rules: &Rules, kind: OfferKind) -> u64 {
    match kind {
        OfferKind::New => rules.offer_timeout_ms,
        OfferKind::Transfer => rules.transfer_timeout_ms,
        OfferKind::Conference => rules.conference_timeout_ms,
    }
}

/// Asserts that `after` (a restarted engine at `now`) equals `before`, except that every
/// pending offer was made again to the same agent with a fresh deadline.
pub fn assert_restored(before: &State, after: &State, rules: &Rules, now: Millis) {
    assert_eq!(before.agents, after.agents, "agents differ after restart");
    // The longest wait is measured at the restart's `now`; the rest must match.
    let figures = |s: &State| -> Vec<_> {
        s.queues
            .iter()
            .map(|q| (q.id.clone(), q.name.clone(), q.waiting, q.agents_available))
            .collect()
    };
    assert_eq!(figures(before), figures(after), "queues differ after restart");
    assert_eq!(
        before.entry_points, after.entry_points,
        "entry points differ after restart"
    );
    assert_eq!(
        before.conversations.keys().collect::<Vec<_>>(),
        after.conversations.keys().collect::<Vec<_>>(),
        "conversations differ after restart"
    );
    for (id, b) in &before.conversations {
        let a = &after.conversations[id];
        match (&b.offer, &a.offer) {
            (Some(ob), Some(oa)) => {
                assert_eq!(
                    (&ob.agent, ob.kind, &ob.from_agent),
                    (&oa.agent, oa.kind, &oa.from_agent),
                    "offer of {id} not re-made to the same agent"
                );
                assert_eq!(oa.offered_at, now, "offer of {id} not re-made at restart");
                assert_eq!(
                    oa.expires_at,
                    now + timeout(rules, oa.kind),
                    "offer of {id}: stale deadline"
                );
                assert_ne!(ob.id, oa.id, "re-made offer of {id} keeps its old number");
            }
            (None, None) => {}
            _ => panic!("offer of {id} differs: {:?} vs {:?}", b.offer, a.offer),
        }
        let mut a = a.clone();
        a.offer = b.offer.clone();
        assert_eq!(b, &a, "conversation {id} differs after restart");
    }
}
