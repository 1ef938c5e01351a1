//! Messenger's 24-hour window through the real engine and outbox, on a clock the test
//! moves: an agent's answer more than 24 hours after the customer's last message is
//! refused (409 `outside_messaging_window`), or, with `messenger.human_agent_tag`, sent
//! to the fake Graph API as `MESSAGE_TAG` with the `HUMAN_AGENT` tag.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use switchboard::actors::Clock;
use switchboard::channels::messenger::fake_graph::FakeGraph;
use switchboard::channels::messenger::Outbox;
use switchboard::config::Config;
use switchboard::core::{Command, Customer, EntryPoint, Presence, Reply};
use switchboard::engine::{Engine, EngineOptions};
use switchboard::store::MemoryStore;

mod messenger_common;
use messenger_common::*;

/// A clock the test sets.
struct TestClock(AtomicU64);

impl Clock for TestClock {
    fn now(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

const T0: u64 = 1_700_000_000_000;
const HOUR: u64 = 60 * 60 * 1000;

/// An engine whose Messenger messages go to `fake`, with the customer's conversation
/// accepted by `a1` at T0; returns the engine, the clock and the conversation id.
async fn engine(fake: &FakeGraph, human_agent_tag: bool) -> (Engine, Arc<TestClock>, String) {
    let mut config = Config::load(None).expect("default config");
    messenger_config(&mut config, &fake.url());
    config.messenger.human_agent_tag = human_agent_tag;
    let clock = Arc::new(TestClock(AtomicU64::new(T0)));
    let files_dir = std::env::temp_dir().join(format!("switchboard-window-files-{}", std::process::id()));
    let files = switchboard::channels::files::FileStore::open(&files_dir, 1 << 20).expect("file store");
    let outbox = Outbox::start(config.messenger.clone(), clock.clone(), Arc::new(files));
    let mut options = EngineOptions::new(config.rules(), Arc::new(MemoryStore::new()));
    options.clock = clock.clone();
    options.channel = outbox.clone();
    let engine = Engine::start(options).expect("engine");
    outbox.attach(engine.clone());
    engine.create_queue("q", "Q").await.expect("queue");
    engine
        .create_entry_point(EntryPoint {
            id: "ep".into(),
            name: "Acme".into(),
            queue: "q".into(),
            page_id: Some(PAGE_ID.into()),
            page_access_token: Some(PAGE_TOKEN.into()),

            ..Default::default()
        })
        .await
        .expect("entry point");
    engine
        .exec(Command::CreateAgent {
            id: "a1".into(),
            name: "Ann".into(),
            queues: vec!["q".into()],
            capacity: None,
            credential: None,
            password_hash: None,

            skills: Default::default(),
        })
        .await
        .expect("agent");
    engine
        .set_state("a1", Presence::Available, None)
        .await
        .expect("available");
    let reply = engine
        .exec(Command::MessengerMessage {
            page_id: PAGE_ID.into(),
            customer: Customer {
                id: PSID.into(),
                name: "Jane".into(),
            },
            text: "hello".into(),
            attachments: vec![],
            mid: Some("m-1".into()),
            seen: false,

            last_owner: None,
            sent_at: None,
            page_echo: false,
            standby: false,
        })
        .await
        .expect("message");
    let Reply::Conversation(c) = reply else {
        panic!("{reply:?}")
    };
    engine.accept("a1", &c.id).await.expect("accept");
    (engine, clock, c.id)
}

fn send(conversation: &str, text: &str) -> Command {
    Command::Send {
        agent: "a1".into(),
        conversation: conversation.into(),
        text: text.into(),
    }
}

/// Without the tag, an answer 25 hours after the customer wrote is refused at once and
/// never reaches the Send API; within the window it goes out as `RESPONSE`.
#[actix_web::test]
async fn outside_the_window_the_answer_is_refused() {
    let fake = FakeGraph::start().await.expect("fake graph");
    let (engine, clock, cid) = engine(&fake, false).await;
    engine.exec(send(&cid, "within")).await.expect("within the window");
    clock.0.store(T0 + 25 * HOUR, Ordering::SeqCst);
    let refused = engine.exec(send(&cid, "too late")).await.expect_err("refused");
    assert_eq!(refused.code(), "outside_messaging_window");
    let received = fake
        .wait_until(Duration::from_secs(10), |r| r.iter().any(|r| r.answered == 200))
        .await;
    let texts: Vec<_> = received
        .iter()
        .filter(|r| r.method == "POST")
        .map(|r| r.body.clone())
        .collect();
    assert_eq!(texts.len(), 1, "{texts:?}");
    assert_eq!(texts[0]["message"]["text"], "within");
    assert_eq!(texts[0]["messaging_type"], "RESPONSE");
}

/// With `messenger.human_agent_tag`, the late answer goes out tagged.
#[actix_web::test]
async fn outside_the_window_the_answer_is_tagged_when_allowed() {
    let fake = FakeGraph::start().await.expect("fake graph");
    let (engine, clock, cid) = engine(&fake, true).await;
    clock.0.store(T0 + 25 * HOUR, Ordering::SeqCst);
    engine.exec(send(&cid, "late but tagged")).await.expect("tagged");
    let received = fake
        .wait_until(Duration::from_secs(10), |r| r.iter().any(|r| r.answered == 200))
        .await;
    let body = &received.iter().find(|r| r.method == "POST").expect("a send").body;
    assert_eq!(body["messaging_type"], "MESSAGE_TAG");
    assert_eq!(body["tag"], "HUMAN_AGENT");
    assert_eq!(body["message"]["text"], "late but tagged");
}
