//! Agent desktops: what `hello` gives them, and desktops that go wrong: silent, too slow
//! to read, or connected while the server shuts down. The engine must never wait for them,
//! and they must be told why they were closed so that they reconnect (and resume from
//! `hello`).

mod common;

use std::process::Command;

use awc::ws::CloseCode;
use common::*;
use serde_json::json;

/// A desktop that connects while an offer waits for it shows that offer from `hello` as it
/// would one from an `offer` frame: `hello.offers` holds exactly the `offer` frame's fields
/// (and `agent.offers` still the whole conversations), so the page derives nothing. The
/// same `hello` says the shortest password the engine accepts, in characters, which is
/// where the engine's own check starts accepting.
#[actix_rt::test]
async fn hello_carries_offers_in_the_offer_shape_and_the_password_rule() {
    let server = TestServer::start().await;
    let token = server.agent("a1", "Ann", &["support"]).await;
    let (_first, hello) = server.desktop(&token).await;
    assert_eq!(hello["offers"], json!([]), "no offer yet: {hello}");

    let mut desktop = server.available_desktop(&token).await;
    let c = server.customer_writes("u1", "Uma", "hello there").await;
    let cid = id_of(&c);
    let mut offer = desktop.wait_for("offer").await;
    let (_second, hello) = server.desktop(&token).await;
    offer.as_object_mut().expect("an object").remove("type");
    assert_eq!(hello["offers"], json!([offer]), "{hello}");
    assert_eq!(hello["offers"][0]["text"], "hello there");
    assert_eq!(hello["agent"]["offers"][0]["id"], cid.as_str());
    assert_eq!(hello["agent"]["offers"][0]["transcript"][0]["text"], "hello there");

    let min = hello["password_min_chars"].as_u64().expect("password_min_chars") as usize;
    assert!(min >= 10, "../shared/API.md: at least 10 characters, got {min}");
    // Characters, not bytes: one short in characters is refused even when its bytes are enough.
    let path = "/api/v1/agents/a1/password";
    server
        .put(path, ADMIN, json!({"password": "é".repeat(min - 1)}))
        .await
        .expect_error(400, "invalid_input");
    server
        .put(path, ADMIN, json!({"password": "é".repeat(min)}))
        .await
        .expect(204);
}

/// A desktop that answers nothing, not even pings, is closed with 1008 once it has been
/// silent for `server.ws_client_timeout_ms`.
#[actix_rt::test]
async fn a_silent_desktop_is_closed_by_the_heartbeat() {
    let server = TestServer::with(|c| {
        c.server.ws_heartbeat_ms = 100;
        c.server.ws_client_timeout_ms = 300;
    })
    .await;
    let token = server.agent("a1", "Ann", &["support"]).await;
    let (mut desktop, _hello) = server.desktop(&token).await;
    let (reason, _) = desktop.until_closed(WAIT).await;
    let reason = reason.expect("a close reason");
    assert_eq!(reason.code, CloseCode::Policy);
    assert_eq!(reason.description.as_deref(), Some("heartbeat timeout"));
}

/// A desktop that stops reading while events pour in is closed with 1013 ("try again")
/// when its buffer is full; meanwhile the engine goes on serving everyone else, and the
/// desktop resumes from `hello` on reconnecting.
#[actix_rt::test]
async fn a_slow_desktop_is_dropped_without_blocking_the_engine() {
    let server = TestServer::start().await;
    let token = server.agent("a1", "Ann", &["support"]).await;
    let mut desktop = server.available_desktop(&token).await;
    let c = server.customer_writes("u1", "Uma", "hello").await;
    let cid = id_of(&c);
    let reply = desktop.command(json!({"type": "accept", "conversation_id": cid})).await;
    assert_eq!(reply["ok"], true, "{reply}");
    // The desktop reads nothing from here on. Each customer message is an event for it.
    let big = "x".repeat(16_000);
    let mut sent = 0;
    for _ in 0..1_200 {
        let a = server
            .post(
                &format!("/api/v1/conversations/{cid}/messages"),
                ADMIN,
                json!({"text": big}),
            )
            .await;
        assert_eq!(a.status, 201, "the engine keeps answering: {:?}", a.body);
        sent += 1;
    }
    // Others are still served at once.
    let other = server.agent("a2", "Bob", &["support"]).await;
    server.set_state(&other, "available").await;
    let (reason, texts) = desktop.until_closed(WAIT).await;
    let reason = reason.expect("a close reason");
    assert_eq!(reason.code, CloseCode::Again, "closed as too slow");
    assert!(texts < sent, "the slow desktop was cut off ({texts} of {sent} frames)");
    // Reconnecting resumes: hello carries the conversation with its whole transcript.
    let (_d, hello) = server.desktop(&token).await;
    let conversations = hello["agent"]["conversations"].as_array().expect("conversations");
    assert_eq!(conversations.len(), 1);
    assert_eq!(
        conversations[0]["transcript"].as_array().map(|t| t.len()),
        Some(sent + 1)
    );
}

/// On SIGTERM the server tells every desktop it is going away (close 1001), finishes, and
/// exits cleanly.
#[actix_rt::test]
async fn shutdown_closes_desktops_with_going_away() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut engine = Process::start(dir.path(), &[]);
    let base = engine.base.clone();
    let client = awc::Client::builder().timeout(WAIT).finish();
    let mut res = client
        .post(format!("{base}/api/v1/agents"))
        .insert_header(("Authorization", format!("Bearer {ADMIN}")))
        .send_json(&json!({"id": "a1", "name": "Ann", "queues": ["support"]}))
        .await
        .expect("create agent");
    let agent: serde_json::Value = res.json().await.expect("agent");
    let token = agent["token"].as_str().expect("token").to_string();
    let url = format!("{}/api/v1/agents/me/ws?token={token}", base.replace("http", "ws"));
    let (_res, mut framed) = client.ws(url).connect().await.expect("connect");
    use futures_util::StreamExt;
    let first = framed.next().await.expect("a frame").expect("ok frame");
    assert!(matches!(first, awc::ws::Frame::Text(_)), "hello first");
    let status = Command::new("kill")
        .arg("-TERM")
        .arg(engine.child.id().to_string())
        .status()
        .expect("kill");
    assert!(status.success());
    let mut close = None;
    let deadline = tokio::time::Instant::now() + WAIT;
    while let Ok(Some(Ok(frame))) = tokio::time::timeout_at(deadline, framed.next()).await {
        if let awc::ws::Frame::Close(r) = frame {
            close = r;
            break;
        }
    }
    assert_eq!(close.map(|r| r.code), Some(CloseCode::Away));
    let exit = tokio::task::spawn_blocking(move || engine.child.wait())
        .await
        .expect("join")
        .expect("wait");
    assert!(exit.success(), "clean exit: {exit:?}");
}

/// A desktop that sends commands faster than they are answered: past the 64 waiting, each
/// is answered `too_many_commands` and not run; every command gets its reply, the refusals
/// are counted in `/metrics`, and the log gets one line about them, not one per command
/// (a flooding desktop must not flood the log).
#[actix_rt::test]
async fn a_flooding_desktop_is_refused_and_logged_at_a_bounded_rate() {
    let dir = tempfile::tempdir().expect("temp dir");
    let engine = Process::start(dir.path(), &[]);
    let client = awc::Client::builder().timeout(WAIT).finish();
    let created = request(
        &client,
        &format!("{}/api/v1/agents", engine.base),
        "POST",
        Some(ADMIN),
        Some(json!({"id": "a1", "name": "Ann", "queues": ["support"]})),
    )
    .await
    .expect(201);
    let token = created["token"].as_str().expect("token").to_string();
    let (mut desk, _hello) = connect_desktop(&client, &engine.base, &token).await;
    const SENT: usize = 400;
    for i in 0..SENT {
        let state = if i % 2 == 0 { "available" } else { "logged_out" };
        desk.send_raw(&json!({"type": "set_state", "state": state, "request_id": format!("f{i}")}).to_string())
            .await;
    }
    let (mut ok, mut refused) = (0, 0);
    while ok + refused < SENT {
        let frame = desk.next().await;
        if frame["type"] != "reply" {
            continue;
        }
        match (frame["ok"].as_bool(), frame["error"]["code"].as_str()) {
            (Some(true), _) => ok += 1,
            (Some(false), Some("too_many_commands")) => refused += 1,
            other => panic!("unexpected reply {other:?}: {frame}"),
        }
    }
    assert!(refused > 0, "400 commands at once overflow the 64 that may wait");
    let metrics = request(&client, &format!("{}/metrics", engine.base), "GET", None, None).await;
    let text = metrics.body.as_str().expect("metrics text").to_string();
    let counted: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("switchboard_desktop_commands_refused_total "))
        .and_then(|v| v.trim().parse().ok())
        .expect("the refusal counter");
    assert_eq!(counted, refused as u64);
    let lines = engine
        .log_lines()
        .iter()
        .filter(|l| l.contains("faster than they are answered"))
        .count();
    assert_eq!(lines, 1, "{refused} refusals, one log line");
}
