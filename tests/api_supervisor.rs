//! Supervisors over the real server (../shared/API.md "Supervisor"): their rights, the presence they
//! set for agents and its audit trail, and the live socket (snapshot, then events).

mod common;

use awc::ws::CloseCode;
use common::*;
use serde_json::{json, Value};

/// Sets the short supervisor tick the event tests use (events arrive within a tick).
fn quick(c: &mut switchboard::config::Config) {
    c.supervisor.tick_ms = 20;
    c.supervisor.queue_refresh_ms = 100;
}

/// A supervisor may read everything the admin reads and set agents' presence; everything
/// else is 403. An agent token is 403 on every supervisor endpoint, even setting its own
/// presence through them. A reissued supervisor token replaces the old one (401).
#[actix_rt::test]
async fn what_a_supervisor_token_may_do() {
    let server = TestServer::start().await;
    let sup = server.supervisor("s1", "Sue").await;
    let a1 = server.agent("a1", "Ann", &["support"]).await;
    server.agent("a2", "Bob", &["support"]).await;
    let c = server.customer_writes("u1", "Uma", "hello").await;
    let cid = id_of(&c);
    let conv = |tail: &str| format!("/api/v1/conversations/{cid}{tail}");
    let state = json!({"state": "available"});
    let pw = json!({"password": "a-long-password"});
    // (method, path, body, status for the supervisor)
    let rows: Vec<(&str, String, Option<Value>, u16)> = vec![
        ("GET", "/api/v1/queues".into(), None, 200),
        ("GET", "/api/v1/queues/support".into(), None, 200),
        (
            "POST",
            "/api/v1/queues".into(),
            Some(json!({"id": "q2", "name": "Q2"})),
            403,
        ),
        ("GET", "/api/v1/entry-points".into(), None, 200),
        (
            "POST",
            "/api/v1/entry-points".into(),
            Some(json!({"id": "e2", "name": "E", "queue": "support"})),
            403,
        ),
        ("GET", "/api/v1/agents".into(), None, 200),
        ("GET", "/api/v1/agents/a1".into(), None, 200),
        (
            "POST",
            "/api/v1/agents".into(),
            Some(json!({"id": "a9", "name": "N", "queues": []})),
            403,
        ),
        ("GET", "/api/v1/agents/me".into(), None, 403),
        ("POST", "/api/v1/agents/a1/token".into(), None, 403),
        ("PUT", "/api/v1/agents/a1/password".into(), Some(pw.clone()), 403),
        (
            "PUT",
            "/api/v1/agents/me/password".into(),
            Some(json!({"current": "a-long-password", "new": "another-long-one"})),
            403,
        ),
        ("PUT", "/api/v1/agents/me/state".into(), Some(state.clone()), 403),
        (
            "POST",
            "/api/v1/conversations".into(),
            Some(json!({"entry_point": "demo-page", "customer": {"id": "u2", "name": "V"}, "text": "x"})),
            403,
        ),
        ("GET", conv(""), None, 200),
        ("POST", conv("/accept"), None, 403),
        ("POST", conv("/messages"), Some(json!({"text": "hi"})), 403),
        ("POST", conv("/transfer"), Some(json!({"agent": "a2"})), 403),
        ("POST", conv("/conference"), Some(json!({"agent": "a2"})), 403),
        ("POST", conv("/conference/exit"), None, 403),
        ("POST", conv("/conference/end"), None, 403),
        ("POST", conv("/end"), None, 403),
        ("POST", conv("/wrapup"), Some(json!({"reason": "resolved"})), 403),
        ("GET", "/api/v1/wrapup-reasons".into(), None, 200),
        ("GET", "/api/v1/idle-codes".into(), None, 200),
        ("POST", "/api/v1/admin/backup".into(), None, 403),
        (
            "POST",
            "/api/v1/supervisors".into(),
            Some(json!({"id": "s2", "name": "S"})),
            403,
        ),
        ("GET", "/api/v1/supervisors".into(), None, 200),
        ("GET", "/api/v1/supervisors/me".into(), None, 200),
        ("POST", "/api/v1/supervisors/s1/token".into(), None, 403),
        ("PUT", "/api/v1/supervisors/s1/password".into(), Some(pw.clone()), 403),
        ("GET", "/api/v1/audit".into(), None, 200),
        ("PUT", "/api/v1/agents/a2/state".into(), Some(state.clone()), 200),
        ("POST", "/api/v1/logout".into(), None, 204),
    ];
    for (method, path, body, want) in &rows {
        let a = server.call(method, path, Some(&sup), body.clone()).await;
        assert_eq!(a.status, *want, "supervisor {method} {path}: {}", a.body);
        if *want == 403 {
            assert_eq!(a.code(), "forbidden", "{method} {path}");
        }
    }
    let read = server.get(&conv(""), &sup).await.expect(200);
    assert_eq!(texts(&read), ["hello"], "a supervisor reads transcripts");
    // An agent token on the supervisor endpoints.
    let agent_rows: Vec<(&str, &str, Option<Value>)> = vec![
        ("POST", "/api/v1/supervisors", Some(json!({"id": "s3", "name": "S"}))),
        ("GET", "/api/v1/supervisors", None),
        ("GET", "/api/v1/supervisors/me", None),
        ("POST", "/api/v1/supervisors/s1/token", None),
        ("PUT", "/api/v1/supervisors/s1/password", Some(pw.clone())),
        ("PUT", "/api/v1/agents/a1/state", Some(state.clone())),
        ("PUT", "/api/v1/agents/a2/state", Some(state.clone())),
        ("GET", "/api/v1/audit", None),
        ("GET", "/api/v1/supervisors/me/ws", None),
    ];
    for (method, path, body) in agent_rows {
        let a = server.call(method, path, Some(&a1), body).await;
        assert_eq!(a.status, 403, "agent {method} {path}: {}", a.body);
    }
    // Reissue: the old token is refused, the new one works.
    let new = server
        .post_empty("/api/v1/supervisors/s1/token", ADMIN)
        .await
        .expect(200);
    let new = new["token"].as_str().expect("token");
    assert_eq!(server.get("/api/v1/supervisors/me", &sup).await.status, 401);
    let me = server.get("/api/v1/supervisors/me", new).await.expect(200);
    assert_eq!(me["id"], "s1");
    assert_eq!(me["name"], "Sue");
    // The admin manages supervisors: duplicates and bad input are refused.
    server
        .post("/api/v1/supervisors", ADMIN, json!({"id": "s1", "name": "Again"}))
        .await
        .expect_error(409, "already_exists");
    server
        .post("/api/v1/supervisors", ADMIN, json!({"id": "bad id", "name": "X"}))
        .await
        .expect_error(400, "invalid_input");
    server
        .post_empty("/api/v1/supervisors/nobody/token", ADMIN)
        .await
        .expect_error(404, "unknown_supervisor");
}

/// A supervisor signs in at the page with an id and a password (`kind: supervisor`): the
/// session token acts as the supervisor's token until sign-out. A wrong password is 401
/// as for agents, and an agent's password does not sign in a supervisor of the same id.
#[actix_rt::test]
async fn a_supervisor_signs_in_with_a_password() {
    let server = TestServer::start().await;
    server
        .post(
            "/api/v1/supervisors",
            ADMIN,
            json!({"id": "s1", "name": "Sue", "password": "first-password"}),
        )
        .await
        .expect(201);
    let login = |pw: &str| json!({"id": "s1", "password": pw, "kind": "supervisor"});
    server
        .call("POST", "/api/v1/login", None, Some(login("wrong-password")))
        .await
        .expect_error(401, "invalid_credentials");
    let s = server
        .call("POST", "/api/v1/login", None, Some(login("first-password")))
        .await
        .expect(200);
    assert_eq!(s["kind"], "supervisor");
    assert_eq!(s["name"], "Sue");
    let session = s["token"].as_str().expect("token").to_string();
    server.get("/api/v1/supervisors/me", &session).await.expect(200);
    // As an agent, the same id and password sign in nobody.
    server
        .call(
            "POST",
            "/api/v1/login",
            None,
            Some(json!({"id": "s1", "password": "first-password"})),
        )
        .await
        .expect_error(401, "invalid_credentials");
    // The admin sets a new password: every session ends.
    server
        .put(
            "/api/v1/supervisors/s1/password",
            ADMIN,
            json!({"password": "second-password"}),
        )
        .await
        .expect(204);
    assert_eq!(server.get("/api/v1/supervisors/me", &session).await.status, 401);
    let s = server
        .call("POST", "/api/v1/login", None, Some(login("second-password")))
        .await
        .expect(200);
    let session = s["token"].as_str().expect("token").to_string();
    server.post_empty("/api/v1/logout", &session).await.expect(204);
    assert_eq!(server.get("/api/v1/supervisors/me", &session).await.status, 401);
}

/// A supervisor (or the admin) sets an agent's presence: the agent's desktop gets
/// `state_changed` with reason `supervisor` (`admin`), the audit trail says who changed
/// whom and when, and logging out an agent that holds a conversation is 409 as it is for
/// the agent itself.
#[actix_rt::test]
async fn presence_set_by_a_supervisor_reaches_the_desktop_and_the_audit_trail() {
    let server = TestServer::start().await;
    let sup = server.supervisor("s1", "Sue").await;
    let token = server.agent("a1", "Ann", &["support"]).await;
    let (mut desktop, _) = server.desktop(&token).await;
    let a = server
        .put(
            "/api/v1/agents/a1/state",
            &sup,
            json!({"state": "idle", "idle_code": "meeting"}),
        )
        .await
        .expect(200);
    assert_eq!(a["state"], "idle");
    let ev = desktop.wait_for("state_changed").await;
    assert_eq!(ev["state"], "idle");
    assert_eq!(ev["idle_code"], "meeting");
    assert_eq!(ev["reason"], "supervisor");
    server
        .put("/api/v1/agents/a1/state", ADMIN, json!({"state": "available"}))
        .await
        .expect(200);
    let ev = desktop.wait_for("state_changed").await;
    assert_eq!(
        (ev["state"].as_str(), ev["reason"].as_str()),
        (Some("available"), Some("admin"))
    );
    // Rules as for the agent's own change.
    server
        .put("/api/v1/agents/a1/state", &sup, json!({"state": "rona"}))
        .await
        .expect_error(400, "state_not_settable");
    server
        .put("/api/v1/agents/nobody/state", &sup, json!({"state": "available"}))
        .await
        .expect_error(404, "unknown_agent");
    // The agent takes a conversation: a supervisor cannot log it out.
    let c = server.customer_writes("u1", "Uma", "hello").await;
    let cid = id_of(&c);
    desktop.wait_for("offer").await;
    server
        .post_empty(&format!("/api/v1/conversations/{cid}/accept"), &token)
        .await
        .expect(200);
    server
        .put("/api/v1/agents/a1/state", &sup, json!({"state": "logged_out"}))
        .await
        .expect_error(409, "agent_busy");
    let audit = server.get("/api/v1/audit?agent=a1&limit=10", &sup).await.expect(200);
    let audit = audit.as_array().expect("entries");
    assert_eq!(audit.len(), 2, "{audit:?}");
    assert_eq!(audit[0]["by_kind"], "admin");
    assert_eq!(audit[0]["by"], Value::Null);
    assert_eq!(
        (audit[0]["from"].as_str(), audit[0]["to"].as_str()),
        (Some("idle"), Some("available"))
    );
    assert_eq!(audit[1]["by_kind"], "supervisor");
    assert_eq!(audit[1]["by"], "s1");
    assert_eq!(audit[1]["to"], "idle");
    assert_eq!(audit[1]["idle_code"], "meeting");
    assert!(audit[0]["seq"].as_u64() > audit[1]["seq"].as_u64());
    assert!(audit[0]["at"].as_str().is_some());
    let none = server.get("/api/v1/audit?agent=a2", ADMIN).await.expect(200);
    assert_eq!(none, json!([]));
    server
        .get("/api/v1/audit?limit=0", ADMIN)
        .await
        .expect_error(400, "invalid_input");
}

/// The snapshot shows the whole floor: every queue with its figures, every agent with its
/// state, load and conversations, every open conversation without its transcript.
#[actix_rt::test]
async fn the_snapshot_shows_the_floor() {
    let server = TestServer::with(quick).await;
    let sup = server.supervisor("s1", "Sue").await;
    let t1 = server.agent("a1", "Ann", &["support"]).await;
    server.agent("a2", "Bob", &["support"]).await;
    server.set_state(&t1, "available").await;
    let offered = server.customer_writes("u1", "Uma", "first").await;
    let waiting = server.customer_writes("u2", "Vic", "second").await;
    let (_socket, snap) = server.supervisor_socket(&sup).await;
    let queue = &snap["queues"][0];
    assert_eq!(queue["id"], "support");
    assert_eq!(queue["waiting"], 1);
    assert_eq!(queue["agents_available"], 0);
    let agents = snap["agents"].as_array().expect("agents");
    assert_eq!(agents.len(), 2);
    assert_eq!(agents[0]["id"], "a1");
    assert_eq!(agents[0]["state"], "available");
    assert_eq!(agents[0]["load"], 1);
    assert_eq!(agents[0]["offers"], json!([id_of(&offered)]));
    assert_eq!(agents[1]["state"], "logged_out");
    let convs = snap["conversations"].as_array().expect("conversations");
    assert_eq!(convs.len(), 2);
    let find = |id: &str| convs.iter().find(|c| c["id"] == id).expect("conversation").clone();
    assert_eq!(find(&id_of(&offered))["state"], "offered");
    assert_eq!(find(&id_of(&offered))["offer"]["agent"], "a1");
    assert_eq!(find(&id_of(&waiting))["state"], "queued");
    assert!(convs.iter().all(|c| c.get("transcript").is_none()), "no transcripts");
}

/// Each step of a conversation reaches the supervisor socket as it happens: an agent's
/// state change, the arrival (queued), the offer, the accept (active) and the end.
#[actix_rt::test]
async fn a_conversations_life_reaches_the_supervisor_socket() {
    let server = TestServer::with(quick).await;
    let sup = server.supervisor("s1", "Sue").await;
    let token = server.agent("a1", "Ann", &["support"]).await;
    let (mut socket, _) = server.supervisor_socket(&sup).await;
    server.set_state(&token, "idle").await;
    let ev = socket
        .wait_for_match("a1 idle", |v| v["type"] == "agent" && v["agent"]["state"] == "idle")
        .await;
    assert_eq!(ev["agent"]["idle_code"], "break");
    // Arrival, with nobody available: queued, and the queue's figures.
    let c = server.customer_writes("u1", "Uma", "hello").await;
    let cid = id_of(&c);
    let conv_in = |state: &'static str| {
        let cid = cid.clone();
        move |v: &Value| {
            v["type"] == "conversation" && v["conversation"]["id"] == cid && v["conversation"]["state"] == state
        }
    };
    socket.wait_for_match("queued", conv_in("queued")).await;
    socket
        .wait_for_match("queue with 1 waiting", |v| {
            v["type"] == "queue" && v["queue"]["waiting"] == 1
        })
        .await;
    // The agent becomes available: the offer.
    let (mut desktop, _) = server.desktop(&token).await;
    server.set_state(&token, "available").await;
    let offered = socket.wait_for_match("offered", conv_in("offered")).await;
    assert_eq!(offered["conversation"]["offer"]["agent"], "a1");
    desktop.wait_for("offer").await;
    server
        .post_empty(&format!("/api/v1/conversations/{cid}/accept"), &token)
        .await
        .expect(200);
    // One tick carries both: the agent's change comes before the conversation's.
    socket
        .wait_for_match("a1 holding it", |v| {
            v["type"] == "agent" && v["agent"]["conversations"].as_array().is_some_and(|c| c.len() == 1)
        })
        .await;
    let active = socket.wait_for_match("active", conv_in("active")).await;
    assert_eq!(active["conversation"]["owner"], "a1");
    assert!(active["conversation"].get("transcript").is_none());
    server
        .post_empty(&format!("/api/v1/conversations/{cid}/end"), &token)
        .await
        .expect(200);
    let ended = socket.wait_for_match("ended", conv_in("ended")).await;
    assert_eq!(ended["conversation"]["ended_reason"], "agent_ended");
}

/// While a conversation waits, the queue's `longest_wait_ms` is sent again and again, and
/// rises.
#[actix_rt::test]
async fn longest_wait_rises_while_a_conversation_waits() {
    let server = TestServer::with(quick).await;
    let sup = server.supervisor("s1", "Sue").await;
    let (mut socket, _) = server.supervisor_socket(&sup).await;
    server.customer_writes("u1", "Uma", "hello").await;
    let waiting = |v: &Value| v["type"] == "queue" && v["queue"]["waiting"] == 1;
    let first = socket.wait_for_match("a waiting queue", waiting).await;
    let first_ms = first["queue"]["longest_wait_ms"].as_u64().expect("ms");
    let later = socket
        .wait_for_match("a longer wait", move |v| {
            waiting(v) && v["queue"]["longest_wait_ms"].as_u64().is_some_and(|ms| ms > first_ms)
        })
        .await;
    assert!(later["queue"]["longest_wait_ms"].as_u64() > Some(first_ms));
}

/// A supervisor socket that never reads is closed (1013, resume from `snapshot`) once its
/// buffer is full, while routing and another supervisor go on: an arrival is still
/// offered to an available agent, and the other supervisor sees it.
#[actix_rt::test]
async fn a_slow_supervisor_socket_is_closed_without_stalling_anything() {
    let server = TestServer::with(|c| {
        c.supervisor.tick_ms = 5;
        c.supervisor.socket_buffer = 4;
    })
    .await;
    let sup = server.supervisor("s1", "Sue").await;
    // Long names make every agent event a few hundred bytes.
    let long = "N".repeat(200);
    for i in 0..200 {
        server
            .engine
            .create_agent(&format!("b{i}"), &long, &["support"], 1)
            .await
            .expect("agent");
    }
    let (mut slow, _) = server.supervisor_socket(&sup).await;
    let (mut fast, _) = server.supervisor_socket(&sup).await;
    // The fast supervisor reads everything, all along, on its own task.
    let (seen_tx, mut seen) = tokio::sync::mpsc::unbounded_channel::<Value>();
    actix_rt::spawn(async move {
        loop {
            let v = fast.next().await;
            if seen_tx.send(v).is_err() {
                break;
            }
        }
    });
    // Flood: every agent changes state, round after round, until the slow socket is let
    // go (the metric counts it).
    let dropped = || async {
        let m = server.call("GET", "/metrics", None, None).await;
        let text = m.body.as_str().unwrap_or("").to_string();
        text.lines()
            .find(|l| l.starts_with("switchboard_supervisor_sockets_dropped_total"))
            .and_then(|l| l.split_whitespace().last()?.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    let set_all = |state: switchboard::core::Presence| {
        let idle_code = (state == switchboard::core::Presence::Idle).then(|| "break".to_string());
        (0..200)
            .map(|i| switchboard::engine::Command::SetStateFor {
                by: switchboard::core::Principal::Admin,
                agent: format!("b{i}"),
                state,
                idle_code: idle_code.clone(),
            })
            .collect::<Vec<_>>()
    };
    let mut rounds = 0;
    while dropped().await < 1.0 {
        rounds += 1;
        assert!(rounds < 5_000, "the slow socket was never dropped");
        let state = if rounds % 2 == 0 {
            switchboard::core::Presence::Available
        } else {
            switchboard::core::Presence::Idle
        };
        for r in server.engine.exec_batch(set_all(state)).await {
            r.expect("state set");
        }
    }
    for r in server
        .engine
        .exec_batch(set_all(switchboard::core::Presence::Idle))
        .await
    {
        r.expect("state set");
    }
    // Routing goes on: an available agent is offered the next arrival at once, and the
    // other supervisor sees the offer.
    let token = server.agent("a1", "Ann", &["support"]).await;
    let mut desktop = server.available_desktop(&token).await;
    let c = server.customer_writes("u1", "Uma", "hello").await;
    let cid = id_of(&c);
    desktop.wait_for("offer").await;
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let v = tokio::time::timeout_at(deadline, seen.recv())
            .await
            .expect("the other supervisor saw the offer in time")
            .expect("the reader is running");
        if v["type"] == "conversation"
            && v["conversation"]["id"] == cid.as_str()
            && v["conversation"]["state"] == "offered"
        {
            break;
        }
    }
    let (reason, _texts) = slow.until_closed(WAIT).await;
    let reason = reason.expect("a close reason");
    assert_eq!(reason.code, CloseCode::Again, "closed as too slow");
    // It resumes from a snapshot.
    let (_again, snap) = server.supervisor_socket(&sup).await;
    assert_eq!(snap["agents"].as_array().map(Vec::len), Some(201));
}

/// The real binary is killed (SIGKILL) after a supervisor was created, given a password
/// and used to send an agent to idle. After the restart the supervisor's token and
/// password still work, the agent is still idle, and the audit trail still has the change.
#[actix_web::test]
async fn supervisors_and_the_audit_trail_survive_a_kill() {
    let dir = tempfile::tempdir().expect("temp dir");
    let client = awc::Client::builder().timeout(WAIT).finish();
    let engine = Process::start(dir.path(), &[]);
    let call = |base: &str, method: &'static str, path: &str, token: &str, body: Option<serde_json::Value>| {
        let (client, url, token) = (client.clone(), format!("{base}{path}"), token.to_string());
        async move { request(&client, &url, method, Some(&token), body).await }
    };
    let sup = call(
        &engine.base,
        "POST",
        "/api/v1/supervisors",
        ADMIN,
        Some(json!({"id": "sue", "name": "Sue"})),
    )
    .await
    .expect(201);
    let token = sup["token"].as_str().expect("token").to_string();
    call(
        &engine.base,
        "PUT",
        "/api/v1/supervisors/sue/password",
        ADMIN,
        Some(json!({"password": "sue-password-1"})),
    )
    .await
    .expect(204);
    let agent = call(
        &engine.base,
        "POST",
        "/api/v1/agents",
        ADMIN,
        Some(json!({"id": "ann", "name": "Ann", "queues": ["support"]})),
    )
    .await
    .expect(201);
    let ann = agent["token"].as_str().expect("token").to_string();
    call(
        &engine.base,
        "PUT",
        "/api/v1/agents/me/state",
        &ann,
        Some(json!({"state": "available"})),
    )
    .await
    .expect(200);
    call(
        &engine.base,
        "PUT",
        "/api/v1/agents/ann/state",
        &token,
        Some(json!({"state": "idle", "idle_code": "break"})),
    )
    .await
    .expect(200);
    engine.kill();

    let engine = Process::start(dir.path(), &[]);
    let me = call(&engine.base, "GET", "/api/v1/supervisors/me", &token, None)
        .await
        .expect(200);
    assert_eq!(me["id"], "sue");
    let login = request(
        &client,
        &format!("{}/api/v1/login", engine.base),
        "POST",
        None,
        Some(json!({"id": "sue", "password": "sue-password-1", "kind": "supervisor"})),
    )
    .await
    .expect(200);
    assert_eq!(login["kind"], "supervisor");
    let a = call(&engine.base, "GET", "/api/v1/agents/ann", &token, None)
        .await
        .expect(200);
    assert_eq!(a["state"], "idle");
    let audit = call(&engine.base, "GET", "/api/v1/audit?agent=ann", &token, None)
        .await
        .expect(200);
    let entries = audit.as_array().expect("audit list");
    assert!(
        entries
            .iter()
            .any(|e| e["by"] == "sue" && e["from"] == "available" && e["to"] == "idle"),
        "{audit}"
    );
    engine.kill();
}
