//! Password sign-in over real HTTP (../shared/API.md "Sign-in with a password"): sessions that act
//! as the agent, sign-out, password changes that end other sessions, the same answer for
//! an unknown id and a wrong password, the per-id lockout, expiry, and sessions that
//! survive a restart of the real binary.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};

/// Creates agent `id` with `password` (capacity 1, the demo queue).
async fn agent_with_password(s: &TestServer, id: &str, password: &str) -> Value {
    s.post(
        "/api/v1/agents",
        ADMIN,
        json!({"id": id, "name": format!("Agent {id}"), "queues": ["support"], "password": password}),
    )
    .await
    .expect(201)
}

async fn login(s: &TestServer, id: &str, password: &str) -> Answer {
    s.call(
        "POST",
        "/api/v1/login",
        None,
        Some(json!({"id": id, "password": password})),
    )
    .await
}

/// A person signs in with an id and a password: the session token acts as the agent over
/// REST and the desktop WebSocket until sign-out, and the password is never shown.
#[actix_rt::test]
async fn a_session_acts_as_the_agent_until_sign_out() {
    let s = TestServer::start().await;
    let created = agent_with_password(&s, "a1", "correct horse 1").await;
    assert!(
        created["token"].is_string(),
        "an agent created with a password still gets its token"
    );
    let text = created.to_string();
    assert!(!text.contains("password") && !text.contains("argon2"), "{text}");

    let session = login(&s, "a1", "correct horse 1").await.expect(200);
    assert_eq!(session["kind"], "agent");
    assert_eq!(session["id"], "a1");
    assert_eq!(session["name"], "Agent a1");
    assert!(session["expires_at"].as_str().is_some_and(|t| t.ends_with('Z')));
    let token = session["token"].as_str().expect("token").to_string();

    let me = s.get("/api/v1/agents/me", &token).await.expect(200);
    assert!(!me.to_string().contains("argon2"));
    s.put("/api/v1/agents/me/state", &token, json!({"state": "available"}))
        .await
        .expect(200);
    let (mut desk, hello) = s.desktop(&token).await;
    assert_eq!(hello["agent"]["id"], "a1");
    desk.command(json!({"type": "set_state", "state": "idle", "idle_code": "break"}))
        .await;

    // A second sign-in is a second session; signing out of one leaves the other.
    let other = login(&s, "a1", "correct horse 1").await.expect(200)["token"]
        .as_str()
        .expect("token")
        .to_string();
    assert_ne!(other, token);
    let out = s.post_empty("/api/v1/logout", &token).await;
    assert_eq!(out.status, 204, "{:?}", out.body);
    s.get("/api/v1/agents/me", &token)
        .await
        .expect_error(401, "unauthorized");
    s.get("/api/v1/agents/me", &other).await.expect(200);
    s.post_empty("/api/v1/logout", ADMIN)
        .await
        .expect_error(403, "forbidden");
}

/// An unknown id and a wrong password get the same answer; after five failures for an id
/// within a minute even the right password is 429 with Retry-After, and other ids are not
/// affected.
#[actix_rt::test]
async fn wrong_credentials_are_refused_alike_then_locked_out() {
    let s = TestServer::start().await;
    agent_with_password(&s, "a1", "correct horse 1").await;
    agent_with_password(&s, "a2", "correct horse 2").await;
    let unknown = login(&s, "nobody", "correct horse 1").await;
    let wrong = login(&s, "a1", "wrong horse 111").await;
    unknown.expect_error(401, "invalid_credentials");
    wrong.expect_error(401, "invalid_credentials");
    assert_eq!(unknown.body, wrong.body, "the same body for both");
    // An agent without a password cannot sign in with one.
    s.agent("a3", "Ann", &["support"]).await;
    login(&s, "a3", "any password 1")
        .await
        .expect_error(401, "invalid_credentials");

    for _ in 0..4 {
        login(&s, "a1", "wrong horse 111")
            .await
            .expect_error(401, "invalid_credentials");
    }
    let locked = s
        .client
        .post(format!("{}/api/v1/login", s.base))
        .send_json(&json!({"id": "a1", "password": "correct horse 1"}))
        .await
        .expect("request");
    assert_eq!(locked.status().as_u16(), 429);
    let retry: u64 = locked
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("Retry-After in seconds");
    assert!((1..=60).contains(&retry), "{retry}");
    login(&s, "a1", "correct horse 1")
        .await
        .expect_error(429, "too_many_attempts");
    login(&s, "a2", "correct horse 2").await.expect(200);
    // Unknown ids are throttled the same way, so the lockout tells nothing about ids.
    for _ in 0..5 {
        login(&s, "nobody.else", "x")
            .await
            .expect_error(401, "invalid_credentials");
    }
    login(&s, "nobody.else", "x")
        .await
        .expect_error(429, "too_many_attempts");
}

/// Passwords have at least 10 characters, on create, on reset and on change.
#[actix_rt::test]
async fn short_passwords_are_refused() {
    let s = TestServer::start().await;
    s.post(
        "/api/v1/agents",
        ADMIN,
        json!({"id": "a1", "name": "Ann", "queues": ["support"], "password": "short"}),
    )
    .await
    .expect_error(400, "invalid_input");
    s.get("/api/v1/agents/a1", ADMIN)
        .await
        .expect_error(404, "unknown_agent");
    agent_with_password(&s, "a1", "correct horse 1").await;
    s.put("/api/v1/agents/a1/password", ADMIN, json!({"password": "123456789"}))
        .await
        .expect_error(400, "invalid_input");
    let token = login(&s, "a1", "correct horse 1").await.expect(200)["token"]
        .as_str()
        .expect("token")
        .to_string();
    s.put(
        "/api/v1/agents/me/password",
        &token,
        json!({"current": "correct horse 1", "new": "tiny"}),
    )
    .await
    .expect_error(400, "invalid_input");
}

/// The admin resets a password: every session of the agent ends, the old password stops
/// working and the new one works. The agent changes its own: the session that changed it
/// stays, the others end; a wrong current password is refused.
#[actix_rt::test]
async fn password_changes_end_other_sessions() {
    let s = TestServer::start().await;
    agent_with_password(&s, "a1", "first password").await;
    let t1 = login(&s, "a1", "first password").await.expect(200)["token"]
        .as_str()
        .expect("t")
        .to_string();
    let reset = s
        .put(
            "/api/v1/agents/a1/password",
            ADMIN,
            json!({"password": "second password"}),
        )
        .await;
    assert_eq!(reset.status, 204, "{:?}", reset.body);
    s.get("/api/v1/agents/me", &t1).await.expect_error(401, "unauthorized");
    login(&s, "a1", "first password")
        .await
        .expect_error(401, "invalid_credentials");
    let t2 = login(&s, "a1", "second password").await.expect(200)["token"]
        .as_str()
        .expect("t")
        .to_string();
    let t3 = login(&s, "a1", "second password").await.expect(200)["token"]
        .as_str()
        .expect("t")
        .to_string();

    s.put(
        "/api/v1/agents/me/password",
        &t2,
        json!({"current": "not the password", "new": "third password"}),
    )
    .await
    .expect_error(403, "wrong_password");
    let changed = s
        .put(
            "/api/v1/agents/me/password",
            &t2,
            json!({"current": "second password", "new": "third password"}),
        )
        .await;
    assert_eq!(changed.status, 204, "{:?}", changed.body);
    s.get("/api/v1/agents/me", &t2).await.expect(200);
    s.get("/api/v1/agents/me", &t3).await.expect_error(401, "unauthorized");
    login(&s, "a1", "third password").await.expect(200);
    // Only the admin resets passwords; an unknown agent is 404.
    s.put(
        "/api/v1/agents/a1/password",
        &t2,
        json!({"password": "fourth password"}),
    )
    .await
    .expect_error(403, "forbidden");
    s.put(
        "/api/v1/agents/zz/password",
        ADMIN,
        json!({"password": "fourth password"}),
    )
    .await
    .expect_error(404, "unknown_agent");
}

/// A session ends by itself at `expires_at` (`api.session_ttl_ms`, here 1 s).
#[actix_rt::test]
async fn sessions_expire() {
    let s = TestServer::with(|c| c.api.session_ttl_ms = 1000).await;
    agent_with_password(&s, "a1", "correct horse 1").await;
    let token = login(&s, "a1", "correct horse 1").await.expect(200)["token"]
        .as_str()
        .expect("token")
        .to_string();
    s.get("/api/v1/agents/me", &token).await.expect(200);
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let a = s.get("/api/v1/agents/me", &token).await;
        if a.status == 401 {
            a.expect_error(401, "unauthorized");
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the session did not expire");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Sessions and passwords are durable: after SIGKILL and a restart of the real binary,
/// the session token still works and the password still signs in.
#[test]
fn sessions_and_passwords_survive_a_restart() {
    let dir = tempfile::tempdir().expect("temp dir");
    let rt = actix_rt::System::new();
    rt.block_on(async {
        let client = awc::Client::builder().timeout(WAIT).finish();
        let p = Process::start(dir.path(), &[]);
        request(
            &client,
            &format!("{}/api/v1/agents", p.base),
            "POST",
            Some(ADMIN),
            Some(json!({"id": "a1", "name": "Ann", "queues": ["support"], "password": "correct horse 1"})),
        )
        .await
        .expect(201);
        let session = request(
            &client,
            &format!("{}/api/v1/login", p.base),
            "POST",
            None,
            Some(json!({"id": "a1", "password": "correct horse 1"})),
        )
        .await
        .expect(200);
        let token = session["token"].as_str().expect("token").to_string();
        p.kill();

        let p = Process::start(dir.path(), &[]);
        let me = request(
            &client,
            &format!("{}/api/v1/agents/me", p.base),
            "GET",
            Some(&token),
            None,
        )
        .await
        .expect(200);
        assert_eq!(me["id"], "a1");
        request(
            &client,
            &format!("{}/api/v1/login", p.base),
            "POST",
            None,
            Some(json!({"id": "a1", "password": "correct horse 1"})),
        )
        .await
        .expect(200);
        p.kill();
    });
}
