//! The Messenger channel on real traffic (../shared/API.md "Messenger on real traffic"), over the
//! real server and a fake Graph API: payloads shaped as Meta's reference pages show them
//! (postbacks with `user_ref`, string timestamps, standby, echoes, delivery with and
//! without `mids`, reads), Meta's clock for the windows, delivery states that never move
//! backward, and a page whose token expires and is replaced.

use serde_json::{json, Value};
use switchboard::channels::messenger::fake_graph::{FakeGraph, Scripted};

mod common;
mod messenger_common;
use common::{TestServer, ADMIN, WAIT};
use messenger_common::*;

const HOUR: u64 = 60 * 60 * 1000;

async fn server(fake: &FakeGraph) -> TestServer {
    let url = fake.url();
    TestServer::with(move |c| messenger_config(c, &url)).await
}

/// The value of one Prometheus series in `/metrics` (0 when absent).
async fn metric(s: &TestServer, series: &str) -> u64 {
    let m = s.call("GET", "/metrics", None, None).await;
    let text = m.body.as_str().unwrap_or_default().to_string();
    text.lines()
        .find_map(|l| l.strip_prefix(series))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}

fn skipped(reason: &str) -> String {
    format!("switchboard_messenger_events_skipped_total{{reason=\"{reason}\"}}")
}

/// POSTs `body` (any bytes) signed right; returns the status.
async fn post_signed(s: &TestServer, body: &str) -> u16 {
    post_webhook(&s.client, &s.base, body.as_bytes(), Some(&signature(body.as_bytes())))
        .await
        .0
}

/// An event envelope as Meta's reference shows it, with `part` set.
fn event(sender: Value, timestamp: Value, part: (&str, Value)) -> Value {
    let mut e = json!({"sender": sender, "recipient": {"id": PAGE_ID}, "timestamp": timestamp});
    e[part.0] = part.1;
    e
}

/// One delivery mixing normal messages with every odd event Meta documents: a postback
/// whose sender has only `user_ref`, a message whose `timestamp` is a string of digits
/// (read), one whose timestamp is no time, a reaction, an echo of this app's own message,
/// a delivery without `mids`, a read, a PSID with `../`, a standby event (thread control
/// off), and an entry whose page id would forge a log line. The answer is 200, the normal
/// messages are routed, and the rest is counted by reason; another `object` and a body
/// that is not JSON are 200 and counted too.
#[actix_web::test]
async fn one_odd_event_never_costs_the_others() {
    let fake = FakeGraph::start().await.expect("fake graph");
    let s = server(&fake).await;
    let token = s.agent("a1", "Ann", &["support"]).await;
    let mut desk = s.available_desktop(&token).await;
    let before: Vec<u64> = {
        let mut v = Vec::new();
        for r in [
            "user_ref",
            "bad_timestamp",
            "unknown_kind",
            "own_echo",
            "bad_id",
            "standby",
        ] {
            v.push(metric(&s, &skipped(r)).await);
        }
        v
    };
    let now = now_ms();
    let psid = json!({"id": PSID});
    let batch = json!({
        "object": "page",
        "entry": [
            {
                "id": PAGE_ID,
                "time": now,
                "messaging": [
                    text(PSID, "m-1", "first"),
                    event(json!({"user_ref": "<REF_FROM_CHECKBOX_PLUGIN>"}), json!(now),
                        ("postback", json!({"title": "Get Started", "payload": "START", "mid": "m-pb"}))),
                    event(psid.clone(), json!(now.to_string()),
                        ("message", json!({"mid": "m-2", "text": "string timestamp"}))),
                    event(psid.clone(), json!("yesterday"), ("message", json!({"mid": "m-3", "text": "lost"}))),
                    reaction(PSID, "m-1"),
                    echo(PSID, "m-echo"),
                    event(psid.clone(), json!(now), ("delivery", json!({"watermark": now}))),
                    read(PSID, now),
                    event(json!({"id": "../../me/messages"}), json!(now), ("message", json!({"mid": "m-4", "text": "x"}))),
                ],
                "standby": [event(psid.clone(), json!(now), ("message", json!({"mid": "m-5", "text": "to the bot"})))],
            },
            {"id": "1\nforged line", "time": now, "messaging": [text(PSID, "m-6", "x")]},
        ],
    });
    assert_eq!(post_signed(&s, &batch.to_string()).await, 200);
    let offer = desk.wait_for("offer").await;
    let cid = offer["conversation_id"].as_str().expect("id").to_string();
    let c = s.conversation(&cid).await;
    assert_eq!(texts_of(&c), ["first", "string timestamp"], "{c}");
    for (reason, was) in [
        "user_ref",
        "bad_timestamp",
        "unknown_kind",
        "own_echo",
        "bad_id",
        "standby",
    ]
    .iter()
    .zip(before)
    {
        let now = metric(&s, &skipped(reason)).await;
        assert!(now > was, "{reason}: {was} -> {now}");
    }
    let not_page = metric(&s, &skipped("not_page")).await;
    let unreadable = metric(&s, &skipped("unreadable")).await;
    assert_eq!(post_signed(&s, r#"{"object":"instagram","entry":[]}"#).await, 200);
    assert_eq!(post_signed(&s, "{not json").await, 200);
    assert!(metric(&s, &skipped("not_page")).await > not_page);
    assert!(metric(&s, &skipped("unreadable")).await > unreadable);
    // A postback without a `mid`, delivered twice, joins once.
    let pb = event(
        psid,
        json!(now),
        ("postback", json!({"title": "Talk to us", "payload": "AGENT"})),
    );
    let body = page_event(&[(PAGE_ID, vec![pb])]);
    deliver(&s.client, &s.base, &body).await;
    deliver(&s.client, &s.base, &body).await;
    let c = s.conversation(&cid).await;
    assert_eq!(texts_of(&c), ["first", "string timestamp", "Talk to us"], "{c}");
}

/// The demo page's entry point's `channel_state`.
async fn ep_state(s: &TestServer) -> Option<String> {
    let eps = s.get("/api/v1/entry-points", ADMIN).await.expect(200);
    eps.as_array()
        .into_iter()
        .flatten()
        .find(|e| e["page_id"] == PAGE_ID)
        .map(|e| e["channel_state"].as_str().unwrap_or_default().to_string())
}

fn texts_of(c: &Value) -> Vec<String> {
    c["transcript"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|m| m["text"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// A customer text longer than the engine's bound is kept, cut at the bound and marked
/// `truncated`, never dropped.
#[actix_web::test]
async fn an_over_long_text_is_kept_cut_and_marked() {
    let fake = FakeGraph::start().await.expect("fake graph");
    let s = server(&fake).await;
    let token = s.agent("a1", "Ann", &["support"]).await;
    let mut desk = s.available_desktop(&token).await;
    let long = "x".repeat(25_000);
    deliver(
        &s.client,
        &s.base,
        &page_event(&[(PAGE_ID, vec![text(PSID, "m-long", &long)])]),
    )
    .await;
    let offer = desk.wait_for("offer").await;
    let c = s.conversation(offer["conversation_id"].as_str().expect("id")).await;
    let m = &c["transcript"][0];
    assert_eq!(m["text"].as_str().map(|t| t.chars().count()), Some(20_000));
    assert_eq!(m["truncated"], true, "{m}");
}

/// A message Meta stamped 25 hours ago and redelivered now: the window counts from Meta's
/// timestamp, so the agent's answer is refused at once (no Send API call that would end
/// in error 10 / 2018278), and the message shows Meta's time.
#[actix_web::test]
async fn windows_count_from_metas_timestamp() {
    let fake = FakeGraph::start().await.expect("fake graph");
    let s = server(&fake).await;
    let token = s.agent("a1", "Ann", &["support"]).await;
    let mut desk = s.available_desktop(&token).await;
    let old = now_ms() - 25 * HOUR;
    let mut late = text(PSID, "m-old", "sent yesterday");
    late["timestamp"] = json!(old);
    deliver(&s.client, &s.base, &page_event(&[(PAGE_ID, vec![late])])).await;
    let offer = desk.wait_for("offer").await;
    let cid = offer["conversation_id"].as_str().expect("id").to_string();
    let c = s.conversation(&cid).await;
    let at = chrono::DateTime::parse_from_rfc3339(c["transcript"][0]["at"].as_str().expect("at")).expect("time");
    assert_eq!(at.timestamp_millis() as u64, old);
    let r = desk.command(json!({"type": "accept", "conversation_id": cid})).await;
    assert_eq!(r["ok"], true, "{r}");
    let r = desk
        .command(json!({"type": "send", "conversation_id": cid, "text": "sorry for the wait"}))
        .await;
    assert_eq!(r["ok"], false, "{r}");
    assert_eq!(r["error"]["code"], "outside_messaging_window", "{r}");
    assert!(fake.accepted_sends().is_empty());
}

/// Delivery states only move forward: a watermark does not mark a message still pending
/// in the outbox; a message that then fails for good stays `failed` under a later read
/// watermark; a delivery mark after `read` changes nothing.
#[actix_web::test]
async fn statuses_never_move_backward() {
    let fake = FakeGraph::start().await.expect("fake graph");
    let url = fake.url();
    let s = TestServer::with(move |c| {
        messenger_config(c, &url);
        c.messenger.send_max_attempts = 0;
        c.messenger.send_backoff_base_ms = 50;
        c.messenger.send_backoff_max_ms = 50;
    })
    .await;
    let token = s.agent("a1", "Ann", &["support"]).await;
    let mut desk = s.available_desktop(&token).await;
    let cid = first_message_accepted(&s, &mut desk).await;
    // The first answer goes out and is read.
    let r = desk
        .command(json!({"type": "send", "conversation_id": cid, "text": "one"}))
        .await;
    assert_eq!(r["ok"], true, "{r}");
    let st = desk.wait_for_in("message_status", &cid).await;
    assert_eq!(st["delivery"], "sent", "{st}");
    let watermark = now_ms() + 1_000;
    deliver(
        &s.client,
        &s.base,
        &page_event(&[(PAGE_ID, vec![read(PSID, watermark)])]),
    )
    .await;
    let st = desk.wait_for_in("message_status", &cid).await;
    assert_eq!(st["delivery"], "read", "{st}");
    // The second meets a Graph API that fails: it waits, pending, under a read watermark.
    fake.fail_all(Scripted::Status(503, "{}".into()));
    let r = desk
        .command(json!({"type": "send", "conversation_id": cid, "text": "two"}))
        .await;
    assert_eq!(r["ok"], true, "{r}");
    fake.wait_until(WAIT, |r| r.iter().any(|r| r.answered == 503)).await;
    let watermark = now_ms() + 1_000;
    deliver(
        &s.client,
        &s.base,
        &page_event(&[(PAGE_ID, vec![delivery(PSID, watermark), read(PSID, watermark)])]),
    )
    .await;
    let c = s.conversation(&cid).await;
    assert_eq!(c["transcript"][1]["delivery"], "read", "{c}");
    assert_eq!(c["transcript"][2]["delivery"], "pending", "{c}");
    // Then it fails for good, and a later read mark does not make it read.
    fake.fail_all(Scripted::Status(
        400,
        r#"{"error":{"message":"(#100) No matching user found","type":"OAuthException","code":100,"error_subcode":2018001}}"#
            .into(),
    ));
    let st = desk.wait_for_in("message_status", &cid).await;
    assert_eq!(st["delivery"], "failed", "{st}");
    let watermark = now_ms() + 1_000;
    deliver(
        &s.client,
        &s.base,
        &page_event(&[(PAGE_ID, vec![read(PSID, watermark)])]),
    )
    .await;
    let c = s.conversation(&cid).await;
    assert_eq!(c["transcript"][1]["delivery"], "read", "{c}");
    assert_eq!(c["transcript"][2]["delivery"], "failed", "{c}");
}

/// An expired page token (Graph error 190) does not fail messages one by one: the entry
/// point turns `unauthorized` (REST, health JSON, metrics), its messages wait, and once the
/// admin sets a new token they go out in order with it.
#[actix_web::test]
async fn an_expired_token_pauses_the_page_and_a_new_one_drains_it_in_order() {
    let fake = FakeGraph::start().await.expect("fake graph");
    let s = server(&fake).await;
    let token = s.agent("a1", "Ann", &["support"]).await;
    let mut desk = s.available_desktop(&token).await;
    let cid = first_message_accepted(&s, &mut desk).await;
    fake.expire(PAGE_TOKEN);
    for t in ["one", "two", "three"] {
        let r = desk
            .command(json!({"type": "send", "conversation_id": cid, "text": t}))
            .await;
        assert_eq!(r["ok"], true, "{r}");
    }
    fake.wait_until(WAIT, |r| r.iter().any(|r| r.answered == 401)).await;
    let mut state = None;
    for _ in 0..100 {
        state = ep_state(&s).await;
        if state.as_deref() == Some("unauthorized") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(state.as_deref(), Some("unauthorized"));
    let h = s.get("/healthz", ADMIN).await.expect(200);
    assert_eq!(
        h["messenger_outbox"]["unauthorized_entry_points"],
        json!(["demo-page"]),
        "{h}"
    );
    assert_eq!(metric(&s, "switchboard_messenger_pages_unauthorized").await, 1);
    // One request per page, not one per message: the others wait without trying.
    let tried = fake.received().iter().filter(|r| r.answered == 401).count();
    assert_eq!(tried, 1);
    let c = s.conversation(&cid).await;
    for m in &c["transcript"].as_array().expect("transcript")[1..] {
        assert_eq!(m["delivery"], "pending", "{c}");
    }
    // Bad new tokens are refused clearly and change nothing.
    let patch = |body: Value, token: Option<&'static str>| {
        let s = &s;
        async move {
            s.call("PATCH", "/api/v1/entry-points/demo-page", token, Some(body))
                .await
        }
    };
    patch(json!({"page_access_token": ""}), Some(ADMIN))
        .await
        .expect_error(400, "invalid_input");
    patch(json!({"page_access_token": "a b"}), Some(ADMIN))
        .await
        .expect_error(400, "invalid_input");
    patch(json!({"page_access_token": "EAAB-new"}), None)
        .await
        .expect_error(401, "unauthorized");
    s.call(
        "PATCH",
        "/api/v1/entry-points/nope",
        Some(ADMIN),
        Some(json!({"page_access_token": "EAAB-new"})),
    )
    .await
    .expect_error(404, "unknown_entry_point");
    let ep = patch(json!({"page_access_token": "EAAB-new-page-token"}), Some(ADMIN))
        .await
        .expect(200);
    assert_eq!(ep["channel_state"], "ok", "{ep}");
    assert!(ep.get("page_access_token").is_none(), "{ep}");
    fake.wait_until(WAIT, |r| {
        r.iter().filter(|r| r.answered == 200 && r.method == "POST").count() >= 3
    })
    .await;
    let sends = fake.accepted_sends();
    let texts: Vec<_> = sends.iter().map(|r| r.body["message"]["text"].clone()).collect();
    assert_eq!(texts, [json!("one"), json!("two"), json!("three")]);
    assert!(sends
        .iter()
        .all(|r| r.query.get("access_token").map(String::as_str) == Some("EAAB-new-page-token")));
    assert_eq!(ep_state(&s).await.as_deref(), Some("ok"));
    let h = s.get("/healthz", ADMIN).await.expect(200);
    assert_eq!(h["messenger_outbox"]["unauthorized_entry_points"], json!([]), "{h}");
}

/// A Facebook Page belongs to one entry point: a second one with the same `page_id` is
/// 409 `page_in_use`.
#[actix_web::test]
async fn a_page_belongs_to_one_entry_point() {
    let fake = FakeGraph::start().await.expect("fake graph");
    let s = server(&fake).await;
    s.post(
        "/api/v1/entry-points",
        ADMIN,
        json!({"id": "copy", "name": "Copy", "queue": "support", "page_id": PAGE_ID}),
    )
    .await
    .expect_error(409, "page_in_use");
    s.post(
        "/api/v1/entry-points",
        ADMIN,
        json!({"id": "other", "name": "Other", "queue": "support", "page_id": "200000000000002"}),
    )
    .await
    .expect(201);
}

/// A failed User Profile API look-up is tried again on a later message (after
/// `messenger.profile_retry_ms`), and the name it finds then reaches the conversation.
#[actix_web::test]
async fn a_failed_profile_look_up_is_tried_again_later() {
    let fake = FakeGraph::start().await.expect("fake graph");
    let url = fake.url();
    let s = TestServer::with(move |c| {
        messenger_config(c, &url);
        c.messenger.profile_retry_ms = 1;
    })
    .await;
    let token = s.agent("a1", "Ann", &["support"]).await;
    let mut desk = s.available_desktop(&token).await;
    deliver(
        &s.client,
        &s.base,
        &page_event(&[(PAGE_ID, vec![text(PSID, "m-1", "hi")])]),
    )
    .await;
    let offer = desk.wait_for("offer").await;
    assert_eq!(offer["customer"]["name"], "Messenger user 2919");
    let cid = offer["conversation_id"].as_str().expect("id").to_string();
    fake.profile(PSID, "Jane", "Doe");
    deliver(
        &s.client,
        &s.base,
        &page_event(&[(PAGE_ID, vec![text(PSID, "m-2", "still there?")])]),
    )
    .await;
    let c = s.conversation(&cid).await;
    assert_eq!(c["customer"]["name"], "Jane Doe", "{c}");
    let asked = fake
        .received()
        .iter()
        .filter(|r| r.method == "GET" && r.path.ends_with(PSID))
        .count();
    assert_eq!(asked, 2);
}

/// Echoes: what a person typed in the Page's own inbox (an echo whose `app_id` is another
/// app's) joins the transcript with author kind `page` and the Page's name, reaches the
/// agent's desktop, and is not sent again; the engine's own echoes (this app's `app_id`)
/// are ignored.
#[actix_web::test]
async fn echoes_from_the_pages_inbox_join_the_transcript() {
    let fake = FakeGraph::start().await.expect("fake graph");
    let url = fake.url();
    let s = TestServer::with(move |c| {
        messenger_config(c, &url);
        c.messenger.app_id = "1517776481860111".into();
    })
    .await;
    let token = s.agent("a1", "Ann", &["support"]).await;
    let mut desk = s.available_desktop(&token).await;
    let cid = first_message_accepted(&s, &mut desk).await;
    let own = echo(PSID, "m-own");
    let mut inbox = echo(PSID, "m-inbox");
    inbox["message"]["app_id"] = json!(263902037430900u64);
    inbox["message"]["text"] = json!("Hi, this is Sam from the shop");
    deliver(&s.client, &s.base, &page_event(&[(PAGE_ID, vec![own, inbox.clone()])])).await;
    let m = desk.wait_for_in("message", &cid).await;
    assert_eq!(m["message"]["author"]["kind"], "page", "{m}");
    assert_eq!(m["message"]["author"]["name"], "Demo Page", "{m}");
    assert_eq!(m["message"]["text"], "Hi, this is Sam from the shop");
    assert!(m["message"].get("delivery").is_none(), "{m}");
    // Redelivered: nothing more.
    deliver(&s.client, &s.base, &page_event(&[(PAGE_ID, vec![inbox])])).await;
    let c = s.conversation(&cid).await;
    assert_eq!(texts_of(&c), ["hi", "Hi, this is Sam from the shop"], "{c}");
    assert!(
        fake.received().iter().all(|r| r.method != "POST"),
        "nothing is sent again"
    );
}

/// Typing and seen from the desktop reach the Send API as `sender_action`s, at most at the
/// stated rate: a burst of `typing` gives one `typing_on`, `seen` gives one `mark_seen` per
/// new customer message; neither enters the transcript.
#[actix_web::test]
async fn typing_and_seen_reach_the_graph_api_at_most_at_the_rate() {
    let fake = FakeGraph::start().await.expect("fake graph");
    let s = server(&fake).await;
    let token = s.agent("a1", "Ann", &["support"]).await;
    let mut desk = s.available_desktop(&token).await;
    let cid = first_message_accepted(&s, &mut desk).await;
    for _ in 0..5 {
        let r = desk
            .command(json!({"type": "typing", "conversation_id": cid, "on": true}))
            .await;
        assert_eq!(r["ok"], true, "{r}");
    }
    for _ in 0..3 {
        let r = desk.command(json!({"type": "seen", "conversation_id": cid})).await;
        assert_eq!(r["ok"], true, "{r}");
    }
    let r = desk
        .command(json!({"type": "typing", "conversation_id": "c-999", "on": true}))
        .await;
    assert_eq!(r["ok"], false, "{r}");
    let actions = |r: &[switchboard::channels::messenger::fake_graph::Received]| -> Vec<String> {
        r.iter()
            .filter_map(|r| r.body["sender_action"].as_str().map(String::from))
            .collect()
    };
    let got = fake.wait_until(WAIT, |r| actions(r).len() >= 2).await;
    assert_eq!(actions(&got), ["typing_on", "mark_seen"]);
    let sa = got
        .iter()
        .find(|r| !r.body["sender_action"].is_null())
        .expect("an action");
    assert_eq!(sa.body["recipient"]["id"], PSID);
    assert_eq!(sa.query.get("access_token").map(String::as_str), Some(PAGE_TOKEN));
    // Settle: an answer sent after them comes behind them, and no other action came.
    let r = desk
        .command(json!({"type": "send", "conversation_id": cid, "text": "here"}))
        .await;
    assert_eq!(r["ok"], true, "{r}");
    let got = fake
        .wait_until(WAIT, |r| r.iter().any(|r| r.body["message"]["text"] == "here"))
        .await;
    assert_eq!(actions(&got), ["typing_on", "mark_seen"]);
    let c = s.conversation(&cid).await;
    assert_eq!(texts_of(&c), ["hi", "here"], "{c}");
}

/// The customer's first message (`hi`, `m-1`) on the page, offered to `desk` and accepted
/// there: the conversation's id.
async fn first_message_accepted(s: &TestServer, desk: &mut common::Desktop) -> String {
    deliver(
        &s.client,
        &s.base,
        &page_event(&[(PAGE_ID, vec![text(PSID, "m-1", "hi")])]),
    )
    .await;
    let offer = desk.wait_for("offer").await;
    let cid = offer["conversation_id"].as_str().expect("id").to_string();
    let r = desk.command(json!({"type": "accept", "conversation_id": cid})).await;
    assert_eq!(r["ok"], true, "{r}");
    cid
}
