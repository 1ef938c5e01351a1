//! The Messenger channel over the real server: Meta's webhook in (verification,
//! signatures, every kind of event), the Send API out to a fake Graph API on loopback
//! (order, retries, failures, long texts), and what the agent's desktop sees.

use serde_json::json;
use switchboard::channels::messenger::fake_graph::{FakeGraph, Scripted};
use switchboard::engine::Query;
use switchboard::engine::QueryReply;

mod common;
mod messenger_common;
use common::{TestServer, ADMIN, WAIT};
use messenger_common::*;

async fn server(fake: &FakeGraph) -> TestServer {
    let url = fake.url();
    TestServer::with(move |c| messenger_config(c, &url)).await
}

async fn conversations_held(s: &TestServer) -> usize {
    match s.engine.ask(Query::Stats).await {
        Ok(QueryReply::Stats(st)) => st.conversations_held,
        other => panic!("{other:?}"),
    }
}

/// Meta's verification handshake: the challenge comes back for the right verify token,
/// and anything else is 403.
#[actix_web::test]
async fn verification_answers_the_challenge_only_for_the_verify_token() {
    let fake = FakeGraph::start().await.expect("fake graph");
    let s = server(&fake).await;
    let get = |q: String| {
        let s = &s;
        async move { s.call("GET", &format!("/webhooks/messenger?{q}"), None, None).await }
    };
    let ok = get(format!(
        "hub.mode=subscribe&hub.verify_token={VERIFY_TOKEN}&hub.challenge=1158201444"
    ))
    .await;
    assert_eq!((ok.status, ok.body.clone()), (200, json!(1158201444)), "{:?}", ok.body);
    for q in [
        "hub.mode=subscribe&hub.verify_token=wrong&hub.challenge=1".to_string(),
        format!("hub.mode=unsubscribe&hub.verify_token={VERIFY_TOKEN}&hub.challenge=1"),
        "hub.challenge=1".to_string(),
    ] {
        get(q).await.expect_error(403, "verification_failed");
    }
}

/// With no app secret the webhook is off, and says so, for the handshake and for events.
#[actix_web::test]
async fn without_an_app_secret_the_webhook_is_off() {
    let s = TestServer::start().await;
    s.call(
        "GET",
        "/webhooks/messenger?hub.mode=subscribe&hub.verify_token=&hub.challenge=1",
        None,
        None,
    )
    .await
    .expect_error(403, "webhook_disabled");
    let body = page_event(&[(PAGE_ID, vec![text(PSID, "m-1", "hi")])]).to_string();
    let (status, text) = post_webhook(&s.client, &s.base, body.as_bytes(), Some(&signature(body.as_bytes()))).await;
    assert_eq!(status, 403, "{text}");
    assert!(
        text.contains("webhook_disabled") && text.contains("app_secret"),
        "{text}"
    );
    assert_eq!(conversations_held(&s).await, 0);
}

/// A missing, a wrong and an outdated signature (the body altered after signing) are all
/// refused before the body is read, and nothing changes; a signed body that is not a page
/// event (another `object`, or not JSON) is acknowledged, skipped and counted: Meta would
/// only send it again.
#[actix_web::test]
async fn unsigned_or_altered_bodies_are_refused_and_change_nothing() {
    let fake = FakeGraph::start().await.expect("fake graph");
    let s = server(&fake).await;
    let body = page_event(&[(PAGE_ID, vec![text(PSID, "m-1", "hi")])]).to_string();
    let good = signature(body.as_bytes());
    let altered = body.replace("hi", "ho");
    let wrong = switchboard::channels::messenger::webhook::sign(b"another-secret", body.as_bytes());
    for (b, sig) in [
        (body.as_str(), None),
        (body.as_str(), Some(wrong.as_str())),
        (body.as_str(), Some("sha256=zz")),
        (body.as_str(), Some("sha1=0123")),
        (altered.as_str(), Some(good.as_str())),
    ] {
        let (status, text) = post_webhook(&s.client, &s.base, b.as_bytes(), sig).await;
        assert_eq!(status, 403, "{sig:?}: {text}");
        assert!(text.contains("invalid_signature"), "{text}");
    }
    assert_eq!(conversations_held(&s).await, 0);
    for bad in [r#"{"object":"instagram","entry":[]}"#, "not json"] {
        let (status, text) = post_webhook(&s.client, &s.base, bad.as_bytes(), Some(&signature(bad.as_bytes()))).await;
        assert_eq!(status, 200, "{text}");
    }
    let m = s.call("GET", "/metrics", None, None).await;
    let metrics = m.body.as_str().unwrap_or_default().to_string();
    for reason in ["not_page", "unreadable"] {
        let line = format!("switchboard_messenger_events_skipped_total{{reason=\"{reason}\"}}");
        let count = metrics
            .lines()
            .find_map(|l| l.strip_prefix(line.as_str()))
            .and_then(|v| v.trim().parse::<u64>().ok());
        assert!(count.is_some_and(|c| c >= 1), "{line}: {count:?}");
    }
    assert_eq!(conversations_held(&s).await, 0);
}

/// One batched delivery with every kind of event: a text, an image, a postback, an echo
/// and a reaction on the page, and a message for a page no entry point has. The customer's
/// three messages open one conversation (the attachment keeps its type and URL, the
/// postback joins as its title); the rest is acknowledged and ignored. A redelivery of
/// the same batch adds nothing.
#[actix_web::test]
async fn a_batch_of_every_kind_of_event() {
    let fake = FakeGraph::start().await.expect("fake graph");
    let s = server(&fake).await;
    let token = s.agent("a1", "Ann", &["support"]).await;
    let mut desk = s.available_desktop(&token).await;
    let batch = page_event(&[
        (
            PAGE_ID,
            vec![
                text(PSID, "m-1", "hello"),
                attachment(PSID, "m-2", "image", "https://scontent.example/photo.jpg"),
                postback(PSID, "m-3", "Talk to a person"),
                echo(PSID, "m-echo"),
                reaction(PSID, "m-1"),
            ],
        ),
        ("999999999", vec![text("777", "m-9", "wrong page")]),
    ]);
    deliver(&s.client, &s.base, &batch).await;
    let offer = desk.wait_for("offer").await;
    assert_eq!(offer["source_page"], "Demo Page");
    assert_eq!(offer["text"], "hello");
    let cid = offer["conversation_id"].as_str().expect("id").to_string();
    let c = s.conversation(&cid).await;
    assert_eq!(c["channel"], "messenger");
    assert_eq!(c["customer"]["id"], PSID);
    let t = c["transcript"].as_array().expect("transcript");
    assert_eq!(t.len(), 3, "{c}");
    assert_eq!(t[0]["text"], "hello");
    assert_eq!(t[1]["text"], "");
    assert_eq!(
        t[1]["attachments"],
        json!([{"type": "image", "url": "https://scontent.example/photo.jpg"}])
    );
    assert_eq!(t[2]["text"], "Talk to a person");
    // Meta redelivers what it thinks was lost: nothing is added.
    deliver(&s.client, &s.base, &batch).await;
    let again = s.conversation(&cid).await;
    assert_eq!(again["transcript"].as_array().map(Vec::len), Some(3), "{again}");
    assert_eq!(conversations_held(&s).await, 1);
}

/// The whole flow: the customer writes on the page; the offer shows the page as source
/// page and the customer's name from the User Profile API; the agent accepts and answers;
/// the answer reaches the Send API with the page's token, the customer's PSID and the
/// text; the delivery and read marks reach the desktop; the customer writes again; the
/// agent ends and wraps up.
#[actix_web::test]
async fn full_flow_over_the_desktop() {
    let fake = FakeGraph::start().await.expect("fake graph");
    fake.profile(PSID, "Jane", "Doe");
    let s = server(&fake).await;
    let token = s.agent("a1", "Ann", &["support"]).await;
    let mut desk = s.available_desktop(&token).await;
    deliver(
        &s.client,
        &s.base,
        &page_event(&[(PAGE_ID, vec![text(PSID, "m-1", "my order is late")])]),
    )
    .await;
    let offer = desk.wait_for("offer").await;
    assert_eq!(offer["source_page"], "Demo Page");
    assert_eq!(offer["customer"]["name"], "Jane Doe");
    assert_eq!(offer["customer"]["id"], PSID);
    let cid = offer["conversation_id"].as_str().expect("id").to_string();
    let r = desk.command(json!({"type": "accept", "conversation_id": cid})).await;
    assert_eq!(r["ok"], true, "{r}");
    let r = desk
        .command(json!({"type": "send", "conversation_id": cid, "text": "Let me check"}))
        .await;
    assert_eq!(r["ok"], true, "{r}");
    let mine = desk.wait_for_in("message", &cid).await;
    assert_eq!(mine["message"]["delivery"], "pending");
    let seq = mine["message"]["seq"].as_u64().expect("seq");
    let sent = desk.wait_for_in("message_status", &cid).await;
    assert_eq!(
        (sent["seq"].as_u64(), sent["delivery"].as_str()),
        (Some(seq), Some("sent")),
        "{sent}"
    );
    let sends = fake.accepted_sends();
    assert_eq!(sends.len(), 1);
    assert_eq!(sends[0].path, "/v21.0/me/messages");
    assert_eq!(sends[0].query.get("access_token").map(String::as_str), Some(PAGE_TOKEN));
    assert_eq!(
        sends[0].body,
        json!({"recipient": {"id": PSID}, "messaging_type": "RESPONSE", "message": {"text": "Let me check"}})
    );
    // Marks carry the customer's clock; a watermark after the message covers it.
    let later = chrono::Utc::now().timestamp_millis() as u64 + 1_000;
    deliver(
        &s.client,
        &s.base,
        &page_event(&[(PAGE_ID, vec![delivery(PSID, later)])]),
    )
    .await;
    let d = desk.wait_for_in("message_status", &cid).await;
    assert_eq!(
        (d["seq"].as_u64(), d["delivery"].as_str()),
        (Some(seq), Some("delivered")),
        "{d}"
    );
    deliver(&s.client, &s.base, &page_event(&[(PAGE_ID, vec![read(PSID, later)])])).await;
    let rd = desk.wait_for_in("message_status", &cid).await;
    assert_eq!(rd["delivery"], "read", "{rd}");
    deliver(
        &s.client,
        &s.base,
        &page_event(&[(PAGE_ID, vec![text(PSID, "m-2", "thanks!")])]),
    )
    .await;
    let follow = desk.wait_for_in("message", &cid).await;
    assert_eq!(follow["message"]["text"], "thanks!");
    assert_eq!(follow["message"]["author"]["name"], "Jane Doe");
    let c = s.conversation(&cid).await;
    assert_eq!(c["transcript"][1]["delivery"], "read", "{c}");
    let r = desk.command(json!({"type": "end", "conversation_id": cid})).await;
    assert_eq!(r["ok"], true, "{r}");
    desk.wait_for_in("wrapup_required", &cid).await;
    let r = desk
        .command(json!({"type": "wrapup", "conversation_id": cid, "reason": "resolved"}))
        .await;
    assert_eq!(r["ok"], true, "{r}");
}

/// Opens a conversation from PSID `psid` and has `a1` accept it; returns (desktop, id).
async fn accepted(s: &TestServer, psid: &str) -> (common::Desktop, String) {
    let token = s.agent("a1", "Ann", &["support"]).await;
    let mut desk = s.available_desktop(&token).await;
    deliver(
        &s.client,
        &s.base,
        &page_event(&[(PAGE_ID, vec![text(psid, "m-open", "hi")])]),
    )
    .await;
    let offer = desk.wait_for("offer").await;
    let cid = offer["conversation_id"].as_str().expect("id").to_string();
    let r = desk.command(json!({"type": "accept", "conversation_id": cid})).await;
    assert_eq!(r["ok"], true, "{r}");
    (desk, cid)
}

async fn send(desk: &mut common::Desktop, cid: &str, text: &str) {
    let r = desk
        .command(json!({"type": "send", "conversation_id": cid, "text": text}))
        .await;
    assert_eq!(r["ok"], true, "{r}");
}

/// The texts the fake Graph API accepted, in order.
fn accepted_texts(fake: &FakeGraph) -> Vec<String> {
    fake.accepted_sends()
        .iter()
        .map(|r| r.body["message"]["text"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// A failing Send API (a 500, a 429, a dropped connection) is retried until it accepts,
/// and the messages behind the failing one wait for it: they arrive in order.
#[actix_web::test]
async fn failed_sends_are_retried_in_order() {
    let fake = FakeGraph::start().await.expect("fake graph");
    fake.script([
        Scripted::Status(
            500,
            r#"{"error":{"message":"An unexpected error has occurred","code":2}}"#.into(),
        ),
        Scripted::Status(429, "{}".into()),
        Scripted::Drop,
        Scripted::Status(
            400,
            r#"{"error":{"message":"(#613) Calls to this api have exceeded the rate limit.","code":613}}"#.into(),
        ),
    ]);
    let s = server(&fake).await;
    let (mut desk, cid) = accepted(&s, PSID).await;
    for t in ["one", "two", "three"] {
        send(&mut desk, &cid, t).await;
    }
    let received = fake
        .wait_until(WAIT, |r| r.iter().filter(|r| r.answered == 200).count() >= 3)
        .await;
    assert_eq!(accepted_texts(&fake), ["one", "two", "three"]);
    // "one" was tried five times (four failures), and nothing else went out before it.
    let first_five: Vec<_> = received
        .iter()
        .filter(|r| r.method == "POST")
        .take(5)
        .map(|r| r.body["message"]["text"].clone())
        .collect();
    assert_eq!(first_five, vec![json!("one"); 5]);
    for _ in 0..3 {
        let st = desk.wait_for_in("message_status", &cid).await;
        assert_eq!(st["delivery"], "sent", "{st}");
    }
}

/// An engine stopped for good (a cluster node stepping down or handing its tenant over, a
/// deleted tenant) sends nothing more from its outbox: what it sent could not be recorded
/// as sent, so the next owner, which sends the durable entry, would send it twice.
#[actix_web::test]
async fn a_stopped_engine_leaves_its_outbox_to_the_next_owner() {
    let fake = FakeGraph::start().await.expect("fake graph");
    let s = server(&fake).await;
    let (mut desk, cid) = accepted(&s, PSID).await;
    // The Send API fails for now: the message waits in the outbox, retried.
    fake.fail_all(Scripted::Status(500, "{}".into()));
    send(&mut desk, &cid, "held back").await;
    fake.wait_until(WAIT, |r| r.iter().any(|r| r.method == "POST" && r.answered == 500))
        .await;
    s.engine.stop().await;
    fake.recover();
    // Thirty backoffs (at most 10 ms each here) later, nothing went out.
    let tries = fake.received().len();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(accepted_texts(&fake).is_empty(), "{:?}", accepted_texts(&fake));
    assert!(
        fake.received().len() <= tries + 1,
        "the stopped engine's outbox kept trying"
    );
}

/// A permanent refusal (a 400 that is not throttling) is not retried: the message is
/// marked failed with the Graph API's error, the agents hear of it, and the next message
/// goes out.
#[actix_web::test]
async fn a_permanent_refusal_is_reported_and_not_retried() {
    let fake = FakeGraph::start().await.expect("fake graph");
    fake.script([Scripted::Status(
        400,
        r#"{"error":{"message":"(#100) No matching user found","type":"OAuthException","code":100,"error_subcode":2018001}}"#
            .into(),
    )]);
    let s = server(&fake).await;
    let (mut desk, cid) = accepted(&s, PSID).await;
    send(&mut desk, &cid, "doomed").await;
    send(&mut desk, &cid, "after").await;
    let failed = desk.wait_for_in("message_status", &cid).await;
    assert_eq!(failed["delivery"], "failed", "{failed}");
    assert!(
        failed["delivery_error"]
            .as_str()
            .is_some_and(|e| e.contains("No matching user found")),
        "{failed}"
    );
    let ok = desk.wait_for_in("message_status", &cid).await;
    assert_eq!(ok["delivery"], "sent", "{ok}");
    let tries: Vec<_> = fake
        .received()
        .iter()
        .filter(|r| r.body["message"]["text"] == "doomed")
        .map(|r| r.answered)
        .collect();
    assert_eq!(tries, [400], "tried once");
    assert_eq!(accepted_texts(&fake), ["after"]);
    let c = s.conversation(&cid).await;
    let doomed = &c["transcript"][1];
    assert_eq!(
        (doomed["text"].as_str(), doomed["delivery"].as_str()),
        (Some("doomed"), Some("failed"))
    );
}

/// The Send API takes at most 2,000 characters: a longer answer arrives as several
/// messages, cut at whitespace, in order.
#[actix_web::test]
async fn a_long_answer_arrives_in_parts_in_order() {
    let fake = FakeGraph::start().await.expect("fake graph");
    let s = server(&fake).await;
    let (mut desk, cid) = accepted(&s, PSID).await;
    let words: Vec<String> = (0..900).map(|i| format!("w{i:03}")).collect();
    let long = words.join(" "); // 4,499 characters
    send(&mut desk, &cid, &long).await;
    let st = desk.wait_for_in("message_status", &cid).await;
    assert_eq!(st["delivery"], "sent", "{st}");
    let parts = accepted_texts(&fake);
    assert_eq!(parts.len(), 3, "{parts:?}");
    assert!(parts.iter().all(|p| p.chars().count() <= 2_000));
    assert_eq!(parts.join(" "), long);
}

/// A customer the User Profile API does not know gets the stable placeholder, and the
/// offer still comes.
#[actix_web::test]
async fn an_unknown_profile_gets_a_placeholder() {
    let fake = FakeGraph::start().await.expect("fake graph");
    let s = server(&fake).await;
    let token = s.agent("a1", "Ann", &["support"]).await;
    let mut desk = s.available_desktop(&token).await;
    deliver(
        &s.client,
        &s.base,
        &page_event(&[(PAGE_ID, vec![text("5551234", "m-1", "hi")])]),
    )
    .await;
    let offer = desk.wait_for("offer").await;
    assert_eq!(offer["customer"]["name"], "Messenger user 1234");
}

/// `/healthz` shows the outbox and stays 200 while the Graph API is down; `/metrics`
/// counts the webhook's events and the Send API's results.
#[actix_web::test]
async fn health_and_metrics_while_the_graph_api_is_down() {
    let fake = FakeGraph::start().await.expect("fake graph");
    fake.fail_all(Scripted::Status(503, "{}".into()));
    let url = fake.url();
    let s = TestServer::with(move |c| {
        messenger_config(c, &url);
        c.messenger.send_max_attempts = 1_000_000;
        c.messenger.send_backoff_base_ms = 50;
        c.messenger.send_backoff_max_ms = 50;
    })
    .await;
    let (mut desk, cid) = accepted(&s, PSID).await;
    send(&mut desk, &cid, "waiting").await;
    fake.wait_until(WAIT, |r| r.iter().filter(|r| r.answered == 503).count() >= 2)
        .await;
    let h = s.get("/healthz", ADMIN).await.expect(200);
    assert_eq!(h["status"], "ok");
    assert!(h["messenger_outbox"]["depth"].as_u64().is_some_and(|d| d >= 1), "{h}");
    let m = s.call("GET", "/metrics", None, None).await;
    let text = m.body.as_str().unwrap_or_default().to_string();
    for series in [
        "switchboard_messenger_webhook_events_total{kind=\"message\",outcome=\"accepted\"}",
        "switchboard_messenger_send_total{result=\"retry\"}",
        "switchboard_messenger_outbox_depth",
        "switchboard_messenger_outbox_oldest_age_seconds",
    ] {
        assert!(text.contains(series), "{series} missing");
    }
    fake.recover();
    let st = desk.wait_for_in("message_status", &cid).await;
    assert_eq!(st["delivery"], "sent", "{st}");
}

/// A Graph API that never answers does not hold the offer back beyond
/// `profile_timeout_ms`: the customer comes with the placeholder name.
#[actix_web::test]
async fn a_silent_profile_api_does_not_hold_the_offer() {
    // Accepts connections (the kernel's backlog) and never answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", silent.local_addr().expect("addr"));
    let s = TestServer::with(move |c| {
        messenger_config(c, &url);
        c.messenger.profile_timeout_ms = 100;
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
    drop(silent);
}

/// A delivery of 300 first messages from 300 customers is one commit and one answer
/// (the time it took is printed; BENCHMARKS.md has release figures).
#[actix_web::test]
async fn a_batch_of_hundreds_of_events_is_answered_once_durable() {
    let fake = FakeGraph::start().await.expect("fake graph");
    let s = server(&fake).await;
    let events: Vec<_> = (0..300)
        .map(|i| text(&format!("9000{i:04}"), &format!("m-b{i}"), "hello"))
        .collect();
    let body = page_event(&[(PAGE_ID, events)]).to_string();
    let started = std::time::Instant::now();
    let (status, answer) = post_webhook(&s.client, &s.base, body.as_bytes(), Some(&signature(body.as_bytes()))).await;
    let took = started.elapsed();
    assert_eq!(status, 200, "{answer}");
    assert_eq!(conversations_held(&s).await, 300);
    eprintln!("300 events ({} bytes) answered in {took:?}", body.len());
}

/// A Messenger customer who writes again after their chat ended goes back to the agent who
/// served them (preferred agents on), though another agent has waited longer: the router
/// looks up the last owner for webhook messages as for REST ones.
#[actix_web::test]
async fn a_returning_messenger_customer_goes_back_to_the_last_owner() {
    let fake = FakeGraph::start().await.expect("fake graph");
    let url = fake.url();
    let s = TestServer::with(move |c| {
        messenger_config(c, &url);
        c.routing.last_agent_ms = 600_000;
        c.routing.last_agent_within_ms = 600_000;
    })
    .await;
    let (mut desk, cid) = accepted(&s, PSID).await;
    for cmd in [
        json!({"type": "end", "conversation_id": cid}),
        json!({"type": "wrapup", "conversation_id": cid, "reason": "resolved"}),
    ] {
        let r = desk.command(cmd).await;
        assert_eq!(r["ok"], true, "{r}");
    }
    let bob = s.agent("b1", "Bob", &["support"]).await;
    let bob_desk = s.available_desktop(&bob).await;
    // Ann (a1) becomes free after Bob: longest idle would pick Bob.
    let r = desk
        .command(json!({"type": "set_state", "state": "idle", "idle_code": "break"}))
        .await;
    assert_eq!(r["ok"], true, "{r}");
    let r = desk.command(json!({"type": "set_state", "state": "available"})).await;
    assert_eq!(r["ok"], true, "{r}");
    deliver(
        &s.client,
        &s.base,
        &page_event(&[(PAGE_ID, vec![text(PSID, "m-again", "it broke again")])]),
    )
    .await;
    let offer = desk.wait_for("offer").await;
    let again = offer["conversation_id"].as_str().expect("id").to_string();
    assert_ne!(again, cid);
    assert_eq!(s.conversation(&again).await["preferred_agent"], "a1");
    assert_eq!(s.agent_detail("b1").await["load"], 0);
    bob_desk.close().await;
}

/// Internal notes never reach a Messenger customer (issue 26 item 5): a note written
/// between two answers, and one a conference invitation carries, are in the transcript
/// marked `internal` and without a delivery state, and the Send API only ever receives
/// the two answers, in order.
#[actix_web::test]
async fn internal_notes_never_reach_the_send_api() {
    let fake = FakeGraph::start().await.expect("fake graph");
    let s = server(&fake).await;
    let (mut desk, cid) = accepted(&s, PSID).await;
    send(&mut desk, &cid, "before").await;
    let r = desk
        .command(json!({"type": "note", "conversation_id": cid, "text": "secret: VIP customer"}))
        .await;
    assert_eq!(r["ok"], true, "{r}");
    let bob = s.agent("a2", "Bob", &["support"]).await;
    let _bob_desk = s.available_desktop(&bob).await;
    let r = desk
        .command(
            json!({"type": "conference", "conversation_id": cid, "agent": "a2", "note": "secret: help with a refund"}),
        )
        .await;
    assert_eq!(r["ok"], true, "{r}");
    send(&mut desk, &cid, "after").await;
    for _ in 0..2 {
        let st = desk.wait_for_in("message_status", &cid).await;
        assert_eq!(st["delivery"], "sent", "{st}");
    }
    assert_eq!(accepted_texts(&fake), ["before", "after"]);
    assert!(
        fake.received().iter().all(|r| !r.body.to_string().contains("secret")),
        "no request to the Graph API carried a note"
    );
    let c = s.conversation(&cid).await;
    let notes: Vec<_> = c["transcript"]
        .as_array()
        .expect("transcript")
        .iter()
        .filter(|m| m["internal"] == true)
        .collect();
    assert_eq!(notes.len(), 2, "{c}");
    assert!(notes.iter().all(|m| m.get("delivery").is_none()), "{notes:?}");
}

/// Satisfaction on Messenger (docs/API-NOTES.md "Satisfaction"), with the survey in the
/// config file's `[[queues]]` (its Messenger texts): Ann serves Jane and ends the chat;
/// the Send API gets the question with the quick replies "1" to "5". Ann wraps up (the
/// conversation is complete and leaves the floor); Jane taps "4": the webhook reads the
/// quick reply's payload, the rating lands on the record, the thanks reach the Send API,
/// and no conversation opens.
#[actix_web::test]
async fn a_rating_comes_back_as_a_quick_reply() {
    use figment::providers::{Format, Toml};
    let survey: switchboard::core::survey::Survey = figment::Figment::from(Toml::string(
        r#"
        window_ms = 600000
        [templates.default]
        question = "How did we do? Answer 1 to 5."
        thanks = "Thank you."
        [templates.messenger]
        question = "How did we do? Tap a number."
        thanks = "Thanks, that helps us."
        "#,
    ))
    .extract()
    .expect("a survey in TOML");
    let fake = FakeGraph::start().await.expect("fake graph");
    let url = fake.url();
    let s = TestServer::with(move |c| {
        messenger_config(c, &url);
        c.queues[0].survey = Some(survey);
    })
    .await;
    let (mut desk, cid) = accepted(&s, PSID).await;
    let r = desk.command(json!({"type": "end", "conversation_id": cid})).await;
    assert_eq!(r["ok"], true, "{r}");
    let asked = fake
        .wait_until(WAIT, |r| {
            r.iter()
                .any(|r| r.answered == 200 && r.body["message"]["text"] == "How did we do? Tap a number.")
        })
        .await;
    let question = asked
        .iter()
        .find(|r| r.body["message"]["text"] == "How did we do? Tap a number.")
        .expect("the question");
    let replies: Vec<(String, String)> = question.body["message"]["quick_replies"]
        .as_array()
        .expect("quick replies")
        .iter()
        .map(|q| {
            assert_eq!(q["content_type"], "text", "{q}");
            (
                q["title"].as_str().unwrap_or_default().to_string(),
                q["payload"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    assert_eq!(
        replies,
        (1..=5)
            .map(|n| (n.to_string(), format!("SWITCHBOARD_RATING_{n}")))
            .collect::<Vec<_>>()
    );
    let r = desk
        .command(json!({"type": "wrapup", "conversation_id": cid, "reason": "resolved"}))
        .await;
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(conversations_held(&s).await, 0, "complete: only the store has it");

    let mut tap = text(PSID, "m-rating", "4");
    tap["message"]["quick_reply"] = json!({"payload": "SWITCHBOARD_RATING_4"});
    deliver(&s.client, &s.base, &page_event(&[(PAGE_ID, vec![tap])])).await;
    fake.wait_until(WAIT, |r| {
        r.iter()
            .any(|r| r.answered == 200 && r.body["message"]["text"] == "Thanks, that helps us.")
    })
    .await;
    assert_eq!(conversations_held(&s).await, 0, "the answer opened no conversation");
    let records = s.get("/api/v1/reports/conversations", ADMIN).await.expect(200);
    assert_eq!(records["records"][0]["id"], json!(cid));
    assert_eq!(records["records"][0]["satisfaction"]["rating"], 4, "{records}");
    let c = s.conversation(&cid).await;
    let n = c["transcript"].as_array().map_or(0, Vec::len);
    assert_eq!(c["transcript"][n - 2]["text"], "4", "{c}");
    assert_eq!(c["transcript"][n - 1]["text"], "Thanks, that helps us.", "{c}");
}
