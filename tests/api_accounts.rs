//! Accounts under attack, against the real `switchboard` binary (../shared/API.md "Sign-in with a
//! password", "A credential's sockets end with it"): every way a credential stops
//! working closes the desktop and supervisor sockets opened with it, and nothing runs or
//! arrives on them after; a flood of sign-ins stays within a bounded memory and is
//! answered 503/429; a password sprayed over many ids from one address is stopped; a
//! supervisor's failures never lock out the agent of the same id; the supervisor socket
//! cap.

mod common;

use std::time::{Duration, Instant};

use awc::ws::CloseCode;
use common::*;
use serde_json::{json, Value};

const PASSWORD: &str = "correct horse 1";

/// A client of the real binary.
struct Binary {
    p: Process,
    client: awc::Client,
    _dir: tempfile::TempDir,
}

impl Binary {
    fn start(env: &[(&str, &str)]) -> Binary {
        let dir = tempfile::tempdir().expect("temp dir");
        let p = Process::start(dir.path(), env);
        let client = awc::Client::builder().timeout(WAIT).finish();
        Binary { p, client, _dir: dir }
    }

    async fn call(&self, method: &str, path: &str, token: Option<&str>, body: Option<Value>) -> Answer {
        request(&self.client, &format!("{}{path}", self.p.base), method, token, body).await
    }

    /// Agent `id` in the demo queue with [`PASSWORD`]; its token.
    async fn agent(&self, id: &str) -> String {
        let body = json!({"id": id, "name": format!("Agent {id}"), "queues": ["support"], "password": PASSWORD});
        let a = self
            .call("POST", "/api/v1/agents", Some(ADMIN), Some(body))
            .await
            .expect(201);
        a["token"].as_str().expect("token").to_string()
    }

    /// Supervisor `id` with [`PASSWORD`]; its token.
    async fn supervisor(&self, id: &str) -> String {
        let body = json!({"id": id, "name": format!("Supervisor {id}"), "password": PASSWORD});
        let s = self
            .call("POST", "/api/v1/supervisors", Some(ADMIN), Some(body))
            .await
            .expect(201);
        s["token"].as_str().expect("token").to_string()
    }

    async fn login(&self, kind: &str, id: &str, password: &str) -> Answer {
        self.call(
            "POST",
            "/api/v1/login",
            None,
            Some(json!({"id": id, "password": password, "kind": kind})),
        )
        .await
    }

    /// A session token of `kind` `id`.
    async fn session(&self, kind: &str, id: &str) -> String {
        let s = self.login(kind, id, PASSWORD).await.expect(200);
        s["token"].as_str().expect("token").to_string()
    }

    async fn desktop(&self, token: &str) -> Desktop {
        connect_desktop(&self.client, &self.p.base, token).await.0
    }

    async fn supervisor_socket(&self, token: &str) -> Desktop {
        connect_supervisor(&self.client, &self.p.base, token).await.0
    }

    async fn state_of(&self, agent: &str) -> String {
        let a = self
            .call("GET", &format!("/api/v1/agents/{agent}"), Some(ADMIN), None)
            .await
            .expect(200);
        a["state"].as_str().expect("state").to_string()
    }

    /// The server's resident memory, in bytes (Linux `/proc`).
    fn rss(&self) -> u64 {
        proc_status(self.p.child.id(), "VmRSS:") * 1024
    }
}

/// A field of `/proc/PID/status` (kB for memory figures).
fn proc_status(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .expect("field in /proc status")
}

/// Reads the socket until the server closes it: the close must be 1008 with `reason`, and
/// no frame in `forbidden` may have come first.
async fn closed_with(socket: &mut Desktop, reason: &str, forbidden: &[&str]) {
    let (close, texts) = socket.texts_until_closed(WAIT).await;
    let close = close.expect("a close frame with a reason");
    assert_eq!(close.code, CloseCode::Policy, "{close:?}");
    assert_eq!(close.description.as_deref(), Some(reason), "{close:?}");
    for t in &texts {
        let ty = t["type"].as_str().unwrap_or("");
        assert!(!forbidden.contains(&ty), "a `{ty}` reached a revoked socket: {t}");
    }
}

/// The ways an agent's credential ends: sign-out of the session, the admin setting the
/// password, the owner changing it (which keeps the session that made the change), and a
/// token reissue. Each closes the desktops opened with that credential (1008
/// `credential_revoked`) and only those; a command sent after the revocation is not run,
/// and an offer made after it never reaches the revoked desktop.
#[actix_rt::test]
async fn each_revocation_closes_the_agents_sockets_opened_with_it() {
    let b = Binary::start(&[]);
    let token = b.agent("a1").await;

    // Sign-out: a command sent right after it does nothing, an offer after it is not shown.
    let session = b.session("agent", "a1").await;
    let mut desk = b.desktop(&session).await;
    let mut by_token = b.desktop(&token).await;
    b.call("POST", "/api/v1/logout", Some(&session), None).await.expect(204);
    desk.send_raw(&json!({"type": "set_state", "state": "available", "request_id": "late"}).to_string())
        .await;
    closed_with(&mut desk, "credential_revoked", &["reply", "state_changed"]).await;
    assert_eq!(b.state_of("a1").await, "logged_out", "the late command did not run");
    // The desktop opened with the agent's token is another credential: still open.
    let reply = by_token
        .command(json!({"type": "set_state", "state": "available"}))
        .await;
    assert_eq!(reply["ok"], true, "{reply}");

    // The admin sets the password: every session's desktop closes; an offer made after it
    // reaches only the desktop that still works.
    let (s1, s2) = (b.session("agent", "a1").await, b.session("agent", "a1").await);
    let (mut d1, mut d2) = (b.desktop(&s1).await, b.desktop(&s2).await);
    b.call(
        "PUT",
        "/api/v1/agents/a1/password",
        Some(ADMIN),
        Some(json!({"password": "a new password 2"})),
    )
    .await
    .expect(204);
    let body = json!({"entry_point": "demo-page", "customer": {"id": "u1", "name": "U"}, "text": "hi"});
    b.call("POST", "/api/v1/conversations", Some(ADMIN), Some(body))
        .await
        .expect(201);
    closed_with(&mut d1, "credential_revoked", &["offer"]).await;
    closed_with(&mut d2, "credential_revoked", &["offer"]).await;
    by_token.wait_for("offer").await;
    for s in [&s1, &s2] {
        b.call("GET", "/api/v1/agents/me", Some(s), None)
            .await
            .expect_error(401, "unauthorized");
    }

    // The owner changes the password with session A: session B's desktop closes, A's stays.
    let a = b.login("agent", "a1", "a new password 2").await.expect(200)["token"]
        .as_str()
        .expect("token")
        .to_string();
    let s_b = b.login("agent", "a1", "a new password 2").await.expect(200)["token"]
        .as_str()
        .expect("token")
        .to_string();
    let (mut da, mut db) = (b.desktop(&a).await, b.desktop(&s_b).await);
    b.call(
        "PUT",
        "/api/v1/agents/me/password",
        Some(&a),
        Some(json!({"current": "a new password 2", "new": "a third password 3"})),
    )
    .await
    .expect(204);
    closed_with(&mut db, "credential_revoked", &[]).await;
    let reply = da.command(json!({"type": "set_state", "state": "available"})).await;
    assert_eq!(reply["ok"], true, "the session that made the change stays: {reply}");

    // A token reissue closes the desktop opened with the old token.
    b.call("POST", "/api/v1/agents/a1/token", Some(ADMIN), None)
        .await
        .expect(200);
    closed_with(&mut by_token, "credential_revoked", &[]).await;
    let reply = da
        .command(json!({"type": "set_state", "state": "idle", "idle_code": "break"}))
        .await;
    assert_eq!(reply["ok"], true, "the session's desktop is not the token's: {reply}");
    b.p.kill();
}

/// A supervisor's credential ends the same ways (sign-out, password set by the admin,
/// token reissue): its live socket closes with `credential_revoked` and nothing streams
/// after.
#[actix_rt::test]
async fn each_revocation_closes_the_supervisors_sockets_opened_with_it() {
    let b = Binary::start(&[]);
    let token = b.supervisor("s1").await;
    b.agent("a1").await;

    let session = b.session("supervisor", "s1").await;
    let mut sock = b.supervisor_socket(&session).await;
    let mut by_token = b.supervisor_socket(&token).await;
    b.call("POST", "/api/v1/logout", Some(&session), None).await.expect(204);
    // A change after the sign-out streams to the token's socket, not the session's.
    b.call(
        "PUT",
        "/api/v1/agents/a1/state",
        Some(ADMIN),
        Some(json!({"state": "available"})),
    )
    .await
    .expect(200);
    closed_with(&mut sock, "credential_revoked", &["agent", "batch"]).await;
    by_token
        .wait_for_match("a1 available", |v| {
            v.to_string().contains("\"available\"") && v.to_string().contains("\"a1\"")
        })
        .await;

    let session = b.session("supervisor", "s1").await;
    let mut sock = b.supervisor_socket(&session).await;
    b.call(
        "PUT",
        "/api/v1/supervisors/s1/password",
        Some(ADMIN),
        Some(json!({"password": "a new password 2"})),
    )
    .await
    .expect(204);
    closed_with(&mut sock, "credential_revoked", &[]).await;

    b.call("POST", "/api/v1/supervisors/s1/token", Some(ADMIN), None)
        .await
        .expect(200);
    closed_with(&mut by_token, "credential_revoked", &[]).await;
    b.p.kill();
}

/// A session's sockets close when it expires (`session_expired`), desktop and supervisor
/// alike, and a command sent on one after expiry is not run.
#[actix_rt::test]
async fn sockets_close_when_their_session_expires() {
    let b = Binary::start(&[("SWITCHBOARD_API__SESSION_TTL_MS", "1500")]);
    b.agent("a1").await;
    b.supervisor("s1").await;
    let (agent, supervisor) = (b.session("agent", "a1").await, b.session("supervisor", "s1").await);
    let mut desk = b.desktop(&agent).await;
    let mut sock = b.supervisor_socket(&supervisor).await;
    closed_with(&mut desk, "session_expired", &[]).await;
    closed_with(&mut sock, "session_expired", &[]).await;
    // A new desktop with the expired session is refused outright.
    let refused = b.call("GET", "/api/v1/agents/me", Some(&agent), None).await;
    refused.expect_error(401, "unauthorized");
    b.p.kill();
}

/// A flood of sign-ins (300 at a concurrency of 96) costs bounded memory: at most
/// `api.max_concurrent_password_checks` run at once, the rest wait briefly and are 503
/// `busy` (with Retry-After) instead of queueing without bound. Resident memory grows by
/// less than 64 MB.
#[actix_rt::test]
async fn a_sign_in_flood_stays_bounded() {
    let b = Binary::start(&[
        ("SWITCHBOARD_API__MAX_CONCURRENT_PASSWORD_CHECKS", "2"),
        ("SWITCHBOARD_API__PASSWORD_CHECK_WAIT_MS", "100"),
    ]);
    b.agent("a1").await;
    // One sign-in first, so the baseline has the code paths and the dummy hash warmed.
    b.session("agent", "a1").await;
    let before = b.rss();
    let pid = b.p.child.id();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut peak = 0;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                peak = peak.max(proc_status(pid, "VmRSS:") * 1024);
                std::thread::sleep(Duration::from_millis(10));
            }
            peak
        })
    };
    let statuses = futures_util::future::join_all((0..300).map(|i| {
        let (client, base) = (awc::Client::builder().timeout(WAIT).finish(), b.p.base.clone());
        async move {
            // Right passwords: no failure counts, so every refusal is the bound's.
            let _ = i;
            let body = json!({"id": "a1", "password": PASSWORD});
            let a = request(&client, &format!("{base}/api/v1/login"), "POST", None, Some(body)).await;
            (a.status, a.code().to_string())
        }
    }))
    .await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let peak = sampler.join().expect("sampler");
    let busy = statuses.iter().filter(|(s, c)| *s == 503 && c == "busy").count();
    for (status, code) in &statuses {
        assert!(
            matches!(
                (status, code.as_str()),
                (200, _) | (401, "invalid_credentials") | (503, "busy") | (429, "too_many_attempts")
            ),
            "unexpected answer {status} {code}"
        );
    }
    assert!(busy > 0, "a flood over the bound is refused, not queued: {statuses:?}");
    let growth = peak.saturating_sub(before);
    let ok = statuses.iter().filter(|(s, _)| *s == 200).count();
    eprintln!(
        "sign-in flood: {ok} signed in, {busy} busy; RSS {} MB before, {} MB peak",
        before >> 20,
        peak >> 20
    );
    assert!(
        growth < 64 << 20,
        "resident memory grew by {} MB (from {} MB)",
        growth >> 20,
        before >> 20
    );
    // It still signs people in once the flood is over.
    b.session("agent", "a1").await;
    b.p.kill();
}

/// One password tried over many ids from one address is stopped by the per-address limit
/// (20 failures a minute): later attempts are 429, even for a right password, until the
/// window passes. Behind a trusted proxy, the limit counts the client the proxy names.
#[actix_rt::test]
async fn spraying_from_one_address_is_stopped() {
    let b = Binary::start(&[("SWITCHBOARD_SERVER__TRUSTED_PROXIES", "[\"127.0.0.1\"]")]);
    b.agent("a1").await;
    let mut answers = Vec::new();
    for i in 0..40 {
        let body = json!({"id": format!("victim{i}"), "password": "Summer2026!!"});
        let a = b
            .client
            .post(format!("{}/api/v1/login", b.p.base))
            .insert_header(("X-Forwarded-For", "203.0.113.7"))
            .send_json(&body)
            .await
            .expect("request");
        answers.push(a.status().as_u16());
    }
    assert_eq!(&answers[..20], &[401; 20][..], "{answers:?}");
    assert_eq!(&answers[20..], &[429; 20][..], "{answers:?}");
    let right = b
        .client
        .post(format!("{}/api/v1/login", b.p.base))
        .insert_header(("X-Forwarded-For", "203.0.113.7"))
        .send_json(&json!({"id": "a1", "password": PASSWORD}))
        .await
        .expect("request");
    assert_eq!(right.status().as_u16(), 429, "the address is over its limit");
    // Another client behind the same proxy signs in.
    let other = b
        .client
        .post(format!("{}/api/v1/login", b.p.base))
        .insert_header(("X-Forwarded-For", "198.51.100.20"))
        .send_json(&json!({"id": "a1", "password": PASSWORD}))
        .await
        .expect("request");
    assert_eq!(other.status().as_u16(), 200);
    b.p.kill();
}

/// Failed sign-ins count per account: five failures as supervisor `a1` lock that
/// supervisor account, never the agent `a1`.
#[actix_rt::test]
async fn a_supervisors_failures_never_lock_the_agent_of_the_same_id() {
    let b = Binary::start(&[]);
    b.agent("a1").await;
    b.call(
        "POST",
        "/api/v1/supervisors",
        Some(ADMIN),
        Some(json!({"id": "a1", "name": "Sue", "password": PASSWORD})),
    )
    .await
    .expect(201);
    for _ in 0..5 {
        b.login("supervisor", "a1", "wrong password!")
            .await
            .expect_error(401, "invalid_credentials");
    }
    b.login("supervisor", "a1", PASSWORD)
        .await
        .expect_error(429, "too_many_attempts");
    let agent = b.login("agent", "a1", PASSWORD).await.expect(200);
    assert_eq!(agent["kind"], "agent");
    b.p.kill();
}

/// At most `supervisor.max_sockets` supervisor sockets are open at once: one more is
/// closed at once with 1008 and a reason naming the setting; a place comes free when one
/// closes.
#[actix_rt::test]
async fn supervisor_sockets_are_capped() {
    let b = Binary::start(&[("SWITCHBOARD_SUPERVISOR__MAX_SOCKETS", "2")]);
    let token = b.supervisor("s1").await;
    let first = b.supervisor_socket(&token).await;
    let _second = b.supervisor_socket(&token).await;
    let mut third = connect_ws(
        &b.client,
        &b.p.base,
        &format!("/api/v1/supervisors/me/ws?token={token}"),
    )
    .await;
    let (close, texts) = third.texts_until_closed(WAIT).await;
    let close = close.expect("close reason");
    assert_eq!(close.code, CloseCode::Policy);
    assert!(
        close
            .description
            .as_deref()
            .is_some_and(|d| d.contains("supervisor.max_sockets")),
        "{close:?}"
    );
    assert!(texts.is_empty(), "no snapshot for a refused socket: {texts:?}");
    first.close().await;
    // The freed place is taken again (the server notices the close first).
    let deadline = Instant::now() + WAIT;
    loop {
        let mut s = connect_ws(
            &b.client,
            &b.p.base,
            &format!("/api/v1/supervisors/me/ws?token={token}"),
        )
        .await;
        if s.next_or_close().await.is_some_and(|v| v["type"] == "snapshot") {
            break;
        }
        assert!(Instant::now() < deadline, "no place came free");
    }
    b.p.kill();
}
