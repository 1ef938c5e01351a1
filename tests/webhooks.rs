//! Events out through the real server (../shared/API.md "Reports and events out";
//! docs/WEBHOOKS.md): subscriptions over REST, signed POSTs to a receiver on loopback
//! (`switchboard::webhook_receiver`), in order per conversation, retried while the
//! receiver fails, `failing` visible, a bounded backlog, and events that survive SIGKILL.

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use common::{Process, ProcessClient, TestServer, ADMIN, WAIT};
use serde_json::{json, Value};
use switchboard::webhook_receiver::{Received, Receiver};

const SECRET: &str = "a-test-secret-of-some-length";
const ALL: [&str; 8] = [
    "conversation.created",
    "conversation.offered",
    "conversation.accepted",
    "conversation.transferred",
    "conversation.ended",
    "conversation.wrapped_up",
    "message.created",
    "agent.state_changed",
];

fn any_port() -> SocketAddr {
    "127.0.0.1:0".parse().expect("address")
}

/// A server that may send to loopback, retrying fast and reporting often.
async fn server() -> TestServer {
    TestServer::with(|c| {
        c.webhooks.allow_private = true;
        c.webhooks.retry_base_ms = 20;
        c.webhooks.retry_max_ms = 200;
        c.webhooks.report_ms = 20;
    })
    .await
}

async fn subscribe(s: &TestServer, url: &str, events: &[&str]) -> Value {
    s.post(
        "/api/v1/webhooks",
        ADMIN,
        json!({"url": url, "events": events, "secret": SECRET}),
    )
    .await
    .expect(201)
}

/// One whole lifecycle over REST: the customer writes, `agent` accepts, replies, ends
/// and wraps up. Returns the conversation id.
async fn lifecycle(s: &TestServer, agent: &str, customer: &str) -> String {
    let c = s.customer_writes(customer, "Carol", "hello").await;
    let id = common::id_of(&c);
    let path = |what: &str| format!("/api/v1/conversations/{id}/{what}");
    s.post_empty(&path("accept"), agent).await.expect(200);
    s.post(&path("messages"), agent, json!({"text": "how can I help?"}))
        .await
        .expect(201);
    s.post_empty(&path("end"), agent).await.expect(200);
    s.post(&path("wrapup"), agent, json!({"reason": "resolved"}))
        .await
        .expect(200);
    id
}

/// The kinds taken for each conversation, in the order first taken.
fn by_conversation(taken: &[Received]) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for r in taken {
        if let Some(c) = r.body["data"]["conversation_id"].as_str() {
            out.entry(c.to_string()).or_default().push(r.kind.clone());
        }
    }
    out
}

const LIFECYCLE: [&str; 7] = [
    "conversation.created",
    "message.created",
    "conversation.offered",
    "conversation.accepted",
    "message.created",
    "conversation.ended",
    "conversation.wrapped_up",
];

async fn webhook_state(s: &TestServer, id: &str) -> Value {
    s.get(&format!("/api/v1/webhooks/{id}"), ADMIN).await.expect(200)
}

/// Waits until the subscription's state answers `want`.
async fn wait_state(s: &TestServer, id: &str, what: &str, want: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let v = webhook_state(s, id).await;
        if want(&v) {
            return v;
        }
        assert!(tokio::time::Instant::now() < deadline, "{what}: {v}");
        actix_rt::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Every event of three lifecycles arrives once, signed, with its id and kind in the
/// headers as in the body, each conversation's in the order they happened; the
/// subscription ends active with its cursor at the last event.
#[actix_rt::test]
async fn events_arrive_signed_and_in_order_per_conversation() {
    let s = server().await;
    let receiver = Receiver::start(any_port(), SECRET, false).expect("receiver");
    let hook = subscribe(&s, &receiver.url, &ALL).await;
    assert_eq!(hook["state"], "active", "{hook}");
    assert!(hook.get("secret").is_none(), "the secret is never shown: {hook}");
    let agent = s.agent("a1", "Ann", &["support"]).await;
    s.set_state(&agent, "available").await;
    let mut ids = Vec::new();
    for n in 0..3 {
        ids.push(lifecycle(&s, &agent, &format!("u{n}")).await);
    }
    let want = 1 + 3 * LIFECYCLE.len();
    assert!(
        receiver.wait_until(WAIT, |got| got.len() >= want).await,
        "{} of {want} events: {:?}",
        receiver.received().len(),
        receiver.received()
    );
    let got = receiver.received();
    assert_eq!(got.len(), want, "each once: {got:?}");
    for r in &got {
        assert!(r.signature_ok, "signature: {r:?}");
        assert_eq!(r.body["id"], r.id.as_str(), "{r:?}");
        assert_eq!(r.body["type"], r.kind.as_str(), "{r:?}");
        assert!(r.body["created_at"].as_str().is_some_and(|t| t.ends_with('Z')), "{r:?}");
    }
    let numbers: std::collections::BTreeSet<u64> = got.iter().map(|r| r.id.parse().expect("a number")).collect();
    assert_eq!(numbers.len(), want, "ids are unique");
    let per = by_conversation(&got);
    for id in &ids {
        assert_eq!(per[id], LIFECYCLE, "{id}");
    }
    let state = got.iter().find(|r| r.kind == "agent.state_changed").expect("presence");
    assert_eq!(
        state.body["data"],
        json!({"agent_id": "a1", "from": "logged_out", "state": "available"})
    );
    let last = *numbers.last().expect("some");
    let v = wait_state(&s, hook["id"].as_str().expect("id"), "cursor at the last event", |v| {
        v["delivered_through"] == last
    })
    .await;
    assert_eq!((v["state"].as_str(), v["dropped"].as_u64()), (Some("active"), Some(0)));
    let list = s.get("/api/v1/webhooks", ADMIN).await.expect(200);
    assert_eq!(list.as_array().map(Vec::len), Some(1), "{list}");
}

/// A receiver that answers 503: the events wait and are tried again with backoff, the
/// subscription shows `failing` with the error; once the receiver answers, everything
/// arrives, each conversation's in order, and the subscription is active again.
#[actix_rt::test]
async fn a_failing_receiver_is_retried_in_order_and_shown_failing() {
    let s = server().await;
    let receiver = Receiver::start(any_port(), SECRET, false).expect("receiver");
    receiver.set_down(true);
    let hook = subscribe(&s, &receiver.url, &ALL[..7]).await;
    let id = hook["id"].as_str().expect("id").to_string();
    let agent = s.agent("a1", "Ann", &["support"]).await;
    s.set_state(&agent, "available").await;
    let a = lifecycle(&s, &agent, "u1").await;
    let b = lifecycle(&s, &agent, "u2").await;
    let v = wait_state(&s, &id, "failing", |v| v["state"] == "failing").await;
    assert_eq!(v["last_error"], "HTTP 503", "{v}");
    assert!(v["failing_since"].is_string(), "{v}");
    assert_eq!(v["delivered_through"], 0, "nothing is done while it fails: {v}");
    let tries = receiver.received().len();
    assert!(tries >= 5, "tried again: {tries}");
    assert!(receiver.taken().is_empty());
    receiver.set_down(false);
    let want = 2 * LIFECYCLE.len();
    assert!(
        receiver.wait_until(WAIT, |_| receiver.taken().len() >= want).await,
        "{:?}",
        receiver.taken()
    );
    let per = by_conversation(&receiver.taken());
    assert_eq!(per[&a], LIFECYCLE);
    assert_eq!(per[&b], LIFECYCLE);
    assert!(receiver.taken().iter().all(|r| r.signature_ok));
    wait_state(&s, &id, "active again, cursor at the end", |v| {
        v["state"] == "active" && v["delivered_through"].as_u64() >= Some(want as u64)
    })
    .await;
}

/// A receiver that is down while more events come than the backlog holds: the oldest
/// are dropped and counted, the rest arrive, and the newest is among them.
#[actix_rt::test]
async fn a_backlog_past_its_bound_drops_the_oldest_and_counts_them() {
    let s = TestServer::with(|c| {
        c.webhooks.allow_private = true;
        c.webhooks.retry_base_ms = 20;
        c.webhooks.retry_max_ms = 100;
        c.webhooks.report_ms = 20;
        c.webhooks.max_backlog = 3;
    })
    .await;
    let receiver = Receiver::start(any_port(), SECRET, false).expect("receiver");
    receiver.set_down(true);
    let hook = subscribe(&s, &receiver.url, &["message.created"]).await;
    let id = hook["id"].as_str().expect("id").to_string();
    let c = s.customer_writes("u1", "Carol", "message 1").await;
    let cid = common::id_of(&c);
    for n in 2..=10 {
        s.post(
            &format!("/api/v1/conversations/{cid}/messages"),
            ADMIN,
            json!({"text": format!("message {n}")}),
        )
        .await
        .expect(201);
    }
    // Ten events, one lane (one conversation): the one being tried stays, and the
    // backlog keeps three in all, so seven are dropped.
    let v = wait_state(&s, &id, "drops counted, failing", |v| {
        v["dropped"] == 7 && v["state"] == "failing"
    })
    .await;
    assert_eq!(v["delivered_through"], 0, "the first is still tried: {v}");
    receiver.set_down(false);
    assert!(receiver.wait_until(WAIT, |_| receiver.taken().len() >= 3).await);
    actix_rt::time::sleep(Duration::from_millis(200)).await;
    let texts: Vec<String> = receiver
        .taken()
        .iter()
        .map(|r| r.body["data"]["message"]["text"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(
        texts,
        ["message 1", "message 9", "message 10"],
        "the first (in flight) and the newest"
    );
    wait_state(&s, &id, "all done", |v| {
        v["state"] == "active" && v["delivered_through"] == 10
    })
    .await;
}

/// Bad subscriptions are refused with a clear error and change nothing.
#[actix_rt::test]
async fn bad_subscriptions_are_refused_and_change_nothing() {
    // The default config: private addresses refused.
    let s = TestServer::start().await;
    let post = |body: Value| s.post("/api/v1/webhooks", ADMIN, body);
    let ok = json!({"url": "http://127.0.0.1:9/hooks", "events": ["conversation.ended"], "secret": SECRET});
    post(ok.clone()).await.expect_error(400, "private_address");
    let mut named = ok.clone();
    named["url"] = json!("http://localhost:9/hooks");
    post(named).await.expect_error(400, "private_address");
    let mut bad = ok.clone();
    bad["url"] = json!("ftp://hooks.example.com/");
    post(bad).await.expect_error(400, "invalid_input");
    let mut short = ok.clone();
    short["secret"] = json!("short");
    short["url"] = json!("http://93.184.216.34/hooks");
    post(short).await.expect_error(400, "invalid_input");
    let mut unknown = ok.clone();
    unknown["events"] = json!(["conversation.exploded"]);
    assert_eq!(post(unknown).await.status, 400);
    let mut none = ok.clone();
    none["events"] = json!([]);
    none["url"] = json!("http://93.184.216.34/hooks");
    post(none).await.expect_error(400, "invalid_input");
    let agent = s.agent("a1", "Ann", &["support"]).await;
    s.post("/api/v1/webhooks", &agent, ok.clone())
        .await
        .expect_error(403, "forbidden");
    s.get("/api/v1/webhooks", &agent).await.expect_error(403, "forbidden");
    let list = s.get("/api/v1/webhooks", ADMIN).await.expect(200);
    assert_eq!(list, json!([]), "nothing was kept");
    s.get("/api/v1/webhooks/nope", ADMIN)
        .await
        .expect_error(404, "unknown_webhook");
    s.call("DELETE", "/api/v1/webhooks/nope", Some(ADMIN), None)
        .await
        .expect_error(404, "unknown_webhook");
    // A public address is taken (nothing is sent until an event is made), and deleted.
    let mut public = ok.clone();
    public["url"] = json!("http://93.184.216.34/hooks");
    public["id"] = json!("crm");
    let made = post(public.clone()).await.expect(201);
    assert_eq!(made["id"], "crm");
    post(public).await.expect_error(409, "already_exists");
    assert_eq!(
        s.call("DELETE", "/api/v1/webhooks/crm", Some(ADMIN), None).await.status,
        204
    );
    s.get("/api/v1/webhooks/crm", ADMIN)
        .await
        .expect_error(404, "unknown_webhook");
}

/// Events made while the receiver is down survive a SIGKILL of the real binary, and the
/// restarted engine delivers them with their ids; the sequence goes on after them.
#[actix_rt::test]
async fn events_survive_sigkill_and_are_delivered_after_a_restart() {
    let dir = tempfile::tempdir().expect("temp dir");
    let env = [
        ("SWITCHBOARD_WEBHOOKS__ALLOW_PRIVATE", "true"),
        ("SWITCHBOARD_WEBHOOKS__RETRY_BASE_MS", "20"),
        ("SWITCHBOARD_WEBHOOKS__RETRY_MAX_MS", "100"),
        ("SWITCHBOARD_WEBHOOKS__REPORT_MS", "20"),
    ];
    let receiver = Receiver::start(any_port(), SECRET, false).expect("receiver");
    receiver.set_down(true);
    let p = Process::start(dir.path(), &env);
    let api = ProcessClient::new(&p.base);
    let body = json!({"id": "crm", "url": receiver.url, "events": ["conversation.created", "message.created"], "secret": SECRET});
    api.expect("POST", "/api/v1/webhooks", ADMIN, Some(body), 201).await;
    for n in 0..3 {
        api.customer_writes(&format!("u{n}"), "hello").await;
    }
    assert!(
        receiver.wait_until(WAIT, |got| !got.is_empty()).await,
        "tried before the kill"
    );
    p.kill();
    let tried_before = receiver.received().len();
    receiver.set_down(false);
    let p = Process::start(dir.path(), &env);
    let api = ProcessClient::new(&p.base);
    assert!(
        receiver.wait_until(WAIT, |_| receiver.taken().len() >= 6).await,
        "{:?}",
        receiver.received()
    );
    let ids: Vec<String> = receiver.taken().iter().map(|r| r.id.clone()).collect();
    let mut sorted = ids.clone();
    sorted.sort_by_key(|i| i.parse::<u64>().unwrap_or(0));
    assert_eq!(
        sorted,
        ["1", "2", "3", "4", "5", "6"],
        "every event once, as numbered before the kill"
    );
    assert!(tried_before >= 1);
    api.customer_writes("u9", "later").await;
    assert!(receiver.wait_until(WAIT, |_| receiver.taken().len() >= 8).await);
    let later: Vec<String> = receiver.taken()[6..].iter().map(|r| r.id.clone()).collect();
    assert_eq!(later, ["7", "8"], "the sequence goes on");
    let v = api.expect("GET", "/api/v1/webhooks/crm", ADMIN, None, 200).await;
    assert_eq!(v["state"], "active", "{v}");
    p.kill();
}

/// `conversation.rated` (docs/WEBHOOKS.md): a customer's answer to the satisfaction
/// survey goes out once, signed, after the conversation's other events, with the rating,
/// the queue and the agent that served it.
#[actix_rt::test]
async fn a_rating_goes_out_as_conversation_rated() {
    let s = server().await;
    s.call(
        "PATCH",
        "/api/v1/queues/support",
        Some(ADMIN),
        Some(json!({"survey": {"templates": {"default": {"question": "1 to 5?", "thanks": "Thanks."}}}})),
    )
    .await
    .expect(200);
    let receiver = Receiver::start(any_port(), SECRET, false).expect("receiver");
    subscribe(&s, &receiver.url, &["conversation.wrapped_up", "conversation.rated"]).await;
    let agent = s.agent("a1", "Ann", &["support"]).await;
    s.set_state(&agent, "available").await;
    let id = lifecycle(&s, &agent, "u1").await;
    let answered = s.customer_writes("u1", "Carol", "2").await;
    assert_eq!(common::id_of(&answered), id);
    assert!(
        receiver.wait_until(WAIT, |got| got.len() >= 2).await,
        "{:?}",
        receiver.received()
    );
    let got = receiver.received();
    assert_eq!(
        by_conversation(&got).get(&id),
        Some(&vec![
            "conversation.wrapped_up".to_string(),
            "conversation.rated".to_string()
        ])
    );
    let rated = &got[1].body;
    assert_eq!(rated["type"], "conversation.rated");
    assert_eq!(
        (
            &rated["data"]["rating"],
            &rated["data"]["queue_id"],
            &rated["data"]["agent_id"]
        ),
        (&json!(2), &json!("support"), &json!("a1")),
        "{rated}"
    );
    assert!(
        rated["data"]["rated_at"].as_str().is_some_and(|t| t.ends_with('Z')),
        "{rated}"
    );
}
