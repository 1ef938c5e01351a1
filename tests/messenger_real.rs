//! The Messenger channel on real traffic (../shared/API.md "Messenger on real traffic"), over the
//! real server and a fake Graph API: payloads shaped as Meta's reference pages show them
//! (postbacks with `user_ref`, string timestamps, standby, echoes, delivery with and
//! without `mids`, reads), Meta's clock for the windows, delivery states that never move
//! backward, and a page whose token expires and is replaced.

use serde_json::{json, Value};
use switchboard::channels::messenger::fake_graph::{FakeGraph, Scripted};
use switchboard::config::MessengerConfig;

mod common;
mod messenger_common;
use common::{TestServer, ADMIN, WAIT};
use messenger_common::*;

const HOUR: u64 = 60 * 60 * 1000;

async fn server(fake: &FakeGraph) -> TestServer {
    server_with(fake, |_| {}).await
}

/// A server whose Messenger channel talks to `fake`, with `tweak` applied to its
/// Messenger settings.
async fn server_with(fake: &FakeGraph, tweak: impl FnOnce(&mut MessengerConfig)) -> TestServer {
    let url = fake.url();
    TestServer::with(move |c| {
        messenger_config(c, &url);
        tweak(&mut c.messenger);
    })
    .await
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
    let s = server_with(&fake, |m| {
        m.send_max_attempts = 0;
        m.send_backoff_base_ms = 50;
        m.send_backoff_max_ms = 50;
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
    // The gauge is the process's sum over servers (each outbox adds its own pages):
    // other tests of this binary run servers beside this one.
    assert!(metric(&s, "switchboard_messenger_pages_unauthorized").await >= 1);
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
    let s = server_with(&fake, |m| {
        m.profile_retry_ms = 1;
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
    // The message waits for the look-up at most `profile_timeout_ms`; on a busy machine
    // the name follows it a moment later. On a very busy one the first look-up can still
    // be under way when "still there?" comes (one look-up per customer at a time), so the
    // customer writes again until a later message finds it failed and asks again.
    let deadline = std::time::Instant::now() + WAIT;
    let mut c = s.conversation(&cid).await;
    let mut polls = 0;
    while c["customer"]["name"] != "Jane Doe" && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        polls += 1;
        if polls % 50 == 0 {
            let mid = format!("m-again-{polls}");
            deliver(
                &s.client,
                &s.base,
                &page_event(&[(PAGE_ID, vec![text(PSID, &mid, "hello?")])]),
            )
            .await;
        }
        c = s.conversation(&cid).await;
    }
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
    let s = server_with(&fake, |m| {
        m.app_id = "1517776481860111".into();
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

/// The bot's app (the Page's main receiver in Meta's Conversation Routing) and the Page
/// Inbox's app id, as Meta's reference uses them.
const BOT_APP: &str = "123456789";
const INBOX_APP: &str = "263902037430900";

/// A frame of the supervisor socket, or each event of a `batch` frame.
fn events_of(frame: &Value) -> Vec<Value> {
    match frame["events"].as_array() {
        Some(events) if frame["type"] == "batch" => events.clone(),
        _ => vec![frame.clone()],
    }
}

/// Threads a bot owns: with the entry point's `thread_control` set to `take` (PATCH,
/// with `return_to_app_id`), one batch mixes a normal message, a customer message in
/// `standby`, a standby read, a `pass_thread_control` to this app with `metadata`, a
/// `pass_thread_control` to another app, and a `take_thread_control` away from this app
/// (shapes from Meta's `messaging_handovers` and `standby` references). The answer is
/// 200; the normal message, the standby one (after `take_thread_control` for that
/// customer) and the handover (with its metadata as a system note, not sent) are routed;
/// the rest is counted. Ending the standby customer's conversation passes the thread back
/// to `return_to_app_id`, after the agent's reply.
#[actix_web::test]
async fn threads_owned_by_a_bot_are_taken_routed_and_passed_back() {
    let fake = FakeGraph::start().await.expect("fake graph");
    let s = server_with(&fake, |m| {
        m.app_id = "1517776481860111".into();
    })
    .await;
    let ep = s
        .call(
            "PATCH",
            "/api/v1/entry-points/demo-page",
            Some(ADMIN),
            Some(json!({"thread_control": "take", "return_to_app_id": INBOX_APP})),
        )
        .await
        .expect(200);
    assert_eq!(ep["thread_control"], "take", "{ep}");
    assert_eq!(ep["return_to_app_id"], INBOX_APP, "{ep}");
    s.call(
        "PATCH",
        "/api/v1/entry-points/demo-page",
        Some(ADMIN),
        Some(json!({"return_to_app_id": "../me"})),
    )
    .await
    .expect_error(400, "invalid_input");
    let token = s.agent_with_capacity("a1", "Ann", &["support"], 3).await;
    let mut desk = s.available_desktop(&token).await;
    let standby_skips = metric(&s, &skipped("standby")).await;
    let (normal, standby_psid, handed) = ("1254459154682001", "1254459154682002", "1254459154682003");
    let now = now_ms();
    let batch = json!({
        "object": "page",
        "entry": [{
            "id": PAGE_ID,
            "time": now,
            "messaging": [
                text(normal, "m-n1", "a normal message"),
                event(json!({"id": handed}), json!(now), ("pass_thread_control", json!({
                    "previous_owner_app_id": BOT_APP,
                    "new_owner_app_id": "1517776481860111",
                    "metadata": "order 42: wants a refund",
                }))),
                event(json!({"id": normal}), json!(now), ("pass_thread_control", json!({
                    "new_owner_app_id": "999999",
                    "metadata": "to some other app",
                }))),
                event(json!({"id": normal}), json!(now), ("take_thread_control", json!({
                    "previous_owner_app_id": "1517776481860111",
                    "new_owner_app_id": BOT_APP,
                    "metadata": "the bot's turn",
                }))),
            ],
            "standby": [
                event(json!({"id": standby_psid}), json!(now), ("message", json!({"mid": "m-s1", "text": "the bot cannot help"}))),
                event(json!({"id": standby_psid}), json!(now), ("read", json!({"watermark": now}))),
            ],
        }],
    });
    assert_eq!(post_signed(&s, &batch.to_string()).await, 200);
    let mut offers = Vec::new();
    while offers.len() < 3 {
        let o = desk.wait_for("offer").await;
        offers.push((o["customer"]["id"].as_str().unwrap_or_default().to_string(), o));
    }
    let offer_of = |psid: &str| {
        offers
            .iter()
            .find(|(c, _)| c == psid)
            .map(|(_, o)| o.clone())
            .unwrap_or_else(|| panic!("no offer for {psid}: {offers:?}"))
    };
    assert_eq!(offer_of(normal)["text"], "a normal message");
    assert_eq!(offer_of(standby_psid)["text"], "the bot cannot help");
    let handover = offer_of(handed);
    assert_eq!(handover["text"], "Handed over by another app: order 42: wants a refund");
    let c = s.conversation(handover["conversation_id"].as_str().expect("id")).await;
    assert_eq!(c["transcript"][0]["author"]["kind"], "system", "{c}");
    assert!(metric(&s, &skipped("standby")).await > standby_skips);
    // Thread control was taken for the standby customer only, as Meta's reference shapes it.
    let taken = fake
        .wait_until(WAIT, |r| r.iter().any(|r| r.path.ends_with("/me/take_thread_control")))
        .await;
    let takes: Vec<_> = taken
        .iter()
        .filter(|r| r.path.ends_with("/me/take_thread_control"))
        .collect();
    assert_eq!(takes.len(), 1, "{takes:?}");
    assert_eq!(takes[0].body["recipient"]["id"], standby_psid);
    assert!(takes[0].body["metadata"].is_string());
    assert_eq!(takes[0].query.get("access_token").map(String::as_str), Some(PAGE_TOKEN));
    // The agent answers the standby customer and ends: the thread goes back after the reply.
    let cid = offer_of(standby_psid)["conversation_id"]
        .as_str()
        .expect("id")
        .to_string();
    let r = desk.command(json!({"type": "accept", "conversation_id": cid})).await;
    assert_eq!(r["ok"], true, "{r}");
    let r = desk
        .command(json!({"type": "send", "conversation_id": cid, "text": "I can"}))
        .await;
    assert_eq!(r["ok"], true, "{r}");
    let r = desk.command(json!({"type": "end", "conversation_id": cid})).await;
    assert_eq!(r["ok"], true, "{r}");
    let got = fake
        .wait_until(WAIT, |r| r.iter().any(|r| r.path.ends_with("/me/pass_thread_control")))
        .await;
    let order: Vec<String> = got
        .iter()
        .filter(|r| r.body["recipient"]["id"] == standby_psid)
        .map(|r| {
            r.path.rsplit('/').next().unwrap_or_default().to_string()
                + r.body["message"]["text"]
                    .as_str()
                    .map(|t| format!(":{t}"))
                    .as_deref()
                    .unwrap_or("")
        })
        .collect();
    assert_eq!(
        order,
        ["take_thread_control", "messages:I can", "pass_thread_control"],
        "{got:?}"
    );
    let pass = got
        .iter()
        .find(|r| r.path.ends_with("/me/pass_thread_control"))
        .expect("pass");
    assert_eq!(pass.body["target_app_id"], INBOX_APP);
    // The handover's note went to no one.
    assert!(!got.iter().any(|r| r.body["recipient"]["id"] == handed), "{got:?}");
}

/// With thread control `off` (the default), a standby message is counted and skipped:
/// no conversation, no call to the Graph API.
#[actix_web::test]
async fn with_thread_control_off_standby_is_skipped() {
    let fake = FakeGraph::start().await.expect("fake graph");
    let s = server(&fake).await;
    let token = s.agent("a1", "Ann", &["support"]).await;
    let mut desk = s.available_desktop(&token).await;
    let before = metric(&s, &skipped("standby")).await;
    let now = now_ms();
    let batch = json!({"object": "page", "entry": [{"id": PAGE_ID, "time": now,
        "messaging": [text(PSID, "m-1", "hi")],
        "standby": [event(json!({"id": "1254459154682002"}), json!(now), ("message", json!({"mid": "m-s", "text": "bot"})))]}]});
    assert_eq!(post_signed(&s, &batch.to_string()).await, 200);
    let offer = desk.wait_for("offer").await;
    assert_eq!(offer["customer"]["id"], PSID);
    assert!(metric(&s, &skipped("standby")).await > before);
    assert!(!fake.received().iter().any(|r| r.path.contains("thread_control")));
}

/// A multipart body with one part named `name` (a file).
fn multipart(name: &str, filename: &str, content_type: &str, bytes: &[u8]) -> (Vec<u8>, String) {
    let boundary = "----switchboard-test-boundary";
    let mut b = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{filename}\"\r\nContent-Type: {content_type}\r\n\r\n"
    )
    .into_bytes();
    b.extend_from_slice(bytes);
    b.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (b, format!("multipart/form-data; boundary={boundary}"))
}

/// POSTs a multipart body to a conversation's attachments with `token`.
async fn upload(s: &TestServer, cid: &str, token: &str, body: (Vec<u8>, String)) -> (u16, Value) {
    let mut res = s
        .client
        .post(format!("{}/api/v1/conversations/{cid}/attachments", s.base))
        .insert_header(("Authorization", format!("Bearer {token}")))
        .insert_header(("Content-Type", body.1))
        .send_body(body.0)
        .await
        .expect("upload");
    let bytes = res.body().limit(1 << 20).await.expect("body");
    (
        res.status().as_u16(),
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// An agent sends an image: 201 with the message and its attachment; the transcript
/// keeps it, the agent's page reads it back at its URL (and an unknown id is 404), and
/// the Send API gets it as an attachment in multipart form. Too large is 413
/// `attachment_too_large`, no part `file` is 400 `missing_file`, and a conversation the
/// agent is not in (or that ended) is refused as a text would be, nothing changed.
#[actix_web::test]
async fn an_agent_sends_a_file_to_a_messenger_customer() {
    let fake = FakeGraph::start().await.expect("fake graph");
    let s = server_with(&fake, |m| {
        m.max_attachment_bytes = 1000;
    })
    .await;
    let token = s.agent("a1", "Ann", &["support"]).await;
    let other = s.agent("a2", "Bob", &["support"]).await;
    let mut desk = s.available_desktop(&token).await;
    let cid = first_message_accepted(&s, &mut desk).await;
    let png = b"\x89PNG\r\n\x1a\n fake image bytes";
    let (status, m) = upload(&s, &cid, &token, multipart("file", "cat photo.png", "image/png", png)).await;
    assert_eq!(status, 201, "{m}");
    assert_eq!(m["text"], "");
    assert_eq!(m["attachments"][0]["type"], "image", "{m}");
    let file_url = m["attachments"][0]["url"].as_str().expect("url").to_string();
    assert!(
        file_url.starts_with("/files/") && file_url.ends_with("/cat_photo.png"),
        "{file_url}"
    );
    let mut res = s
        .client
        .get(format!("{}{file_url}", s.base))
        .send()
        .await
        .expect("file");
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(
        res.headers().get("content-type").and_then(|v| v.to_str().ok()),
        Some("image/png")
    );
    assert_eq!(res.body().await.expect("bytes").as_ref(), png);
    let unknown = s
        .client
        .get(format!("{}/files/{}/x.png", s.base, "0".repeat(32)))
        .send()
        .await
        .expect("404");
    assert_eq!(unknown.status().as_u16(), 404);
    // Meta's "send an attachment from a file": recipient, messaging type, message, filedata.
    let got = fake
        .wait_until(WAIT, |r| r.iter().any(|r| !r.body["filedata"].is_null()))
        .await;
    let sent = got.iter().find(|r| !r.body["filedata"].is_null()).expect("file send");
    assert!(sent.path.ends_with("/me/messages"));
    assert_eq!(sent.body["recipient"]["id"], PSID);
    assert_eq!(sent.body["messaging_type"], "RESPONSE");
    assert_eq!(sent.body["message"]["attachment"]["type"], "image");
    assert_eq!(sent.body["filedata"]["content_type"], "image/png");
    assert_eq!(sent.body["filedata"]["filename"], "cat_photo.png");
    assert_eq!(sent.body["filedata"]["size"], png.len());
    let status = desk.wait_for("message_status").await;
    assert_eq!(status["delivery"], "sent", "{status}");
    // Refusals, nothing kept in the transcript.
    let (status, e) = upload(
        &s,
        &cid,
        &token,
        multipart("file", "big.bin", "application/pdf", &[7u8; 1001]),
    )
    .await;
    assert_eq!(
        (status, e["error"]["code"].as_str()),
        (413, Some("attachment_too_large")),
        "{e}"
    );
    let (status, e) = upload(&s, &cid, &token, multipart("photo", "a.png", "image/png", b"x")).await;
    assert_eq!(
        (status, e["error"]["code"].as_str()),
        (400, Some("missing_file")),
        "{e}"
    );
    let (status, e) = upload(&s, &cid, &other, multipart("file", "a.png", "image/png", b"x")).await;
    assert_eq!(
        (status, e["error"]["code"].as_str()),
        (403, Some("not_in_conversation")),
        "{e}"
    );
    let (status, e) = upload(&s, &cid, ADMIN, multipart("file", "a.png", "image/png", b"x")).await;
    assert_eq!(status, 403, "{e}");
    let r = desk.command(json!({"type": "end", "conversation_id": cid})).await;
    assert_eq!(r["ok"], true, "{r}");
    let (status, e) = upload(&s, &cid, &token, multipart("file", "a.png", "image/png", b"x")).await;
    assert_eq!(status, 409, "{e}");
    let c = s.conversation(&cid).await;
    assert_eq!(c["transcript"].as_array().map(Vec::len), Some(2), "{c}");
    // An unknown conversation: 404.
    let (status, e) = upload(
        &s,
        "c-999",
        &token,
        multipart("file", "a.pdf", "application/pdf", b"%PDF"),
    )
    .await;
    assert_eq!(status, 404, "{e}");
}

/// A supervisor sees each entry point's `channel_state`: in the snapshot (never its
/// token), and an `entry_point` event when the entry point changes. (A page made
/// `unauthorized` by a 190 reaches the socket the same way: the hub's unit test and the
/// supervisor page's browser test show it; here the process-wide
/// `switchboard_messenger_pages_unauthorized` gauge would sum this binary's servers.)
#[actix_web::test]
async fn entry_points_reach_supervisors() {
    let fake = FakeGraph::start().await.expect("fake graph");
    let s = server(&fake).await;
    let sup = s.supervisor("s1", "Sue").await;
    let (mut live, snapshot) = s.supervisor_socket(&sup).await;
    let ep = snapshot["entry_points"]
        .as_array()
        .and_then(|v| v.iter().find(|e| e["page_id"] == PAGE_ID))
        .cloned()
        .unwrap_or_else(|| panic!("no entry point in {snapshot}"));
    assert_eq!(ep["channel_state"], "ok");
    assert_eq!(ep["thread_control"], "off");
    assert!(ep.get("page_access_token").is_none());
    s.call(
        "PATCH",
        "/api/v1/entry-points/demo-page",
        Some(ADMIN),
        Some(json!({"thread_control": "take"})),
    )
    .await
    .expect(200);
    let changed = |frame: &Value| {
        events_of(frame).iter().any(|e| {
            e["type"] == "entry_point"
                && e["entry_point"]["page_id"] == PAGE_ID
                && e["entry_point"]["thread_control"] == "take"
                && e["entry_point"]["channel_state"] == "ok"
                && e["entry_point"].get("page_access_token").is_none()
        })
    };
    live.wait_for_match("the entry point's event", changed).await;
}
