//! The Messenger outbox across a crash of the real binary: messages the agent's send
//! acknowledged while the Graph API was down survive SIGKILL and arrive, in order and
//! none lost, after the restart; a message id taken in before the crash is still known
//! after it.

use std::time::Duration;

use serde_json::{json, Value};
use switchboard::channels::messenger::fake_graph::{FakeGraph, Scripted};

mod common;
mod messenger_common;
use common::{Process, ADMIN};
use messenger_common::*;

async fn call(
    client: &awc::Client,
    base: &str,
    method: &str,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let a = common::request(client, &format!("{base}{path}"), method, Some(token), body).await;
    (a.status, a.body)
}

/// SIGKILL with five acknowledged answers queued behind a dead Graph API: after the
/// restart all five arrive, in order, once each; a redelivered message adds nothing.
#[actix_web::test]
async fn queued_answers_survive_sigkill_in_order() {
    let fake = FakeGraph::start().await.expect("fake graph");
    fake.fail_all(Scripted::Status(503, r#"{"error":{"message":"down","code":2}}"#.into()));
    let dir = tempfile::tempdir().expect("temp dir");
    let env = messenger_env(&fake.url());
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let client = awc::Client::builder().timeout(Duration::from_secs(10)).finish();

    let p = Process::start(dir.path(), &env);
    let (s, v) = call(
        &client,
        &p.base,
        "POST",
        "/api/v1/agents",
        ADMIN,
        Some(json!({"id": "a1", "name": "Ann", "queues": ["support"]})),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    let token = v["token"].as_str().expect("token").to_string();
    let (s, v) = call(
        &client,
        &p.base,
        "PUT",
        "/api/v1/agents/me/state",
        &token,
        Some(json!({"state": "available"})),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    // The page's entry point has no token in the default config: give one over REST.
    let (s, v) = call(
        &client,
        &p.base,
        "POST",
        "/api/v1/entry-points",
        ADMIN,
        Some(json!({"id": "acme", "name": "Acme", "queue": "support", "page_id": "200000000000002", "page_access_token": PAGE_TOKEN})),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    let mut first = text(PSID, "m-first", "hello");
    first["recipient"]["id"] = json!("200000000000002");
    let event = page_event(&[("200000000000002", vec![first])]);
    deliver(&client, &p.base, &event).await;
    let (_, agent) = call(&client, &p.base, "GET", "/api/v1/agents/a1", ADMIN, None).await;
    let cid = agent["offers"][0]["id"]
        .as_str()
        .expect("offered conversation")
        .to_string();
    let (s, v) = call(
        &client,
        &p.base,
        "POST",
        &format!("/api/v1/conversations/{cid}/accept"),
        &token,
        None,
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let texts: Vec<String> = (1..=5).map(|i| format!("answer {i}")).collect();
    for t in &texts {
        let (s, v) = call(
            &client,
            &p.base,
            "POST",
            &format!("/api/v1/conversations/{cid}/messages"),
            &token,
            Some(json!({"text": t})),
        )
        .await;
        assert_eq!(s, 201, "{v}");
    }
    // The Graph API is being tried (and failing) when the process dies.
    fake.wait_until(common::WAIT, |r| r.iter().any(|r| r.answered == 503))
        .await;
    p.kill();
    assert!(fake.accepted_sends().is_empty());

    // What the killed process wrote last may still wait unread on its connection: it
    // keeps failing, as it never reached the Graph API before the crash.
    fake.recover_for_new_connections();
    let p = Process::start(dir.path(), &env);
    fake.wait_until(common::WAIT, |r| {
        r.iter().filter(|r| r.answered == 200 && r.method == "POST").count() >= 5
    })
    .await;
    let arrived: Vec<String> = fake
        .accepted_sends()
        .iter()
        .map(|r| r.body["message"]["text"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(arrived, texts, "in order, none lost, none twice");
    assert!(fake
        .accepted_sends()
        .iter()
        .all(|r| r.query.get("access_token").map(String::as_str) == Some(PAGE_TOKEN)));
    // The first message's id is remembered across the crash.
    deliver(&client, &p.base, &event).await;
    let (s, c) = call(
        &client,
        &p.base,
        "GET",
        &format!("/api/v1/conversations/{cid}"),
        ADMIN,
        None,
    )
    .await;
    assert_eq!(s, 200, "{c}");
    let transcript = c["transcript"].as_array().expect("transcript");
    assert_eq!(transcript.len(), 6, "{c}");
    // Every answer ends `sent` in the transcript once its report is durable.
    let done = async {
        loop {
            let (_, c) = call(
                &client,
                &p.base,
                "GET",
                &format!("/api/v1/conversations/{cid}"),
                ADMIN,
                None,
            )
            .await;
            if c["transcript"]
                .as_array()
                .is_some_and(|t| t[1..].iter().all(|m| m["delivery"] == "sent"))
            {
                return;
            }
            actix_rt::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(common::WAIT, done)
        .await
        .expect("every answer marked sent");
    p.kill();
}
