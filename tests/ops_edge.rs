//! The edge an operator relies on (../shared/API.md "Operations"): health routes, the
//! failed-authentication limit, the desktop cap, metrics present from start-up. Real
//! server on `127.0.0.1:0`, real HTTP and WebSocket. (The metric series count has its
//! own test binary, `ops_metrics.rs`: the registry is per process.)

mod common;

use common::*;

/// Story: a client guesses tokens. Its first 20 wrong tokens within a minute are 401;
/// from then on its wrong tokens are 429 `too_many_attempts` with `Retry-After`, over
/// REST and as the WebSocket's `?token=`. A right token from the same address still
/// works, and a request without a token is a plain 401 that counts for nothing.
#[actix_rt::test]
async fn failed_authentication_is_limited_per_address() {
    let s = TestServer::start().await;
    let ann = s.agent("ann", "Ann", &["support"]).await;
    // Missing tokens are not failures.
    for _ in 0..30 {
        s.call("GET", "/api/v1/queues", None, None)
            .await
            .expect_error(401, "unauthorized");
    }
    for i in 0..20 {
        let a = if i % 2 == 0 {
            s.get("/api/v1/queues", &format!("guess-{i}")).await
        } else {
            // A wrong token on the desktop WebSocket counts too.
            let url = format!("{}/api/v1/agents/me/ws?token=guess-{i}", s.base);
            request(&s.client, &url, "GET", None, None).await
        };
        a.expect_error(401, "unauthorized");
    }
    let mut res = s
        .client
        .get(format!("{}/api/v1/queues", s.base))
        .insert_header(("Authorization", "Bearer guess-21"))
        .send()
        .await
        .expect("request");
    assert_eq!(res.status().as_u16(), 429);
    let retry: u64 = res
        .headers()
        .get("retry-after")
        .expect("Retry-After")
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "Retry-After {retry}");
    let body: serde_json::Value = serde_json::from_slice(&res.body().await.unwrap()).unwrap();
    assert_eq!(body["error"]["code"], "too_many_attempts");
    let url = format!("{}/api/v1/agents/me/ws?token=guess-22", s.base);
    request(&s.client, &url, "GET", None, None)
        .await
        .expect_error(429, "too_many_attempts");
    // The right tokens still work from the same address.
    s.get("/api/v1/queues", ADMIN).await.expect(200);
    s.get("/api/v1/queues", &ann).await.expect(200);
    let (_d, hello) = s.desktop(&ann).await;
    assert_eq!(hello["agent"]["id"], "ann");
    // A missing token stays a plain 401.
    s.call("GET", "/api/v1/queues", None, None)
        .await
        .expect_error(401, "unauthorized");
    let metrics = s.call("GET", "/metrics", None, None).await.body;
    let metrics = metrics.as_str().unwrap();
    assert!(
        metrics.contains("switchboard_auth_failures_total{outcome=\"rejected\"} 20"),
        "{metrics}"
    );
}

/// Story: an agent opens desktops up to `server.max_desktops_per_agent`; one more is
/// closed at once with code 1008 and a reason. When one desktop goes, another may come.
#[actix_rt::test]
async fn one_desktop_over_the_cap_is_refused_with_1008() {
    let s = TestServer::with(|c| c.server.max_desktops_per_agent = 2).await;
    let ann = s.agent("ann", "Ann", &["support"]).await;
    let bob = s.agent("bob", "Bob", &["support"]).await;
    let (first, _) = s.desktop(&ann).await;
    let (_second, _) = s.desktop(&ann).await;
    let url = format!("{}/api/v1/agents/me/ws?token={ann}", s.base.replace("http", "ws"));
    let (_res, framed) = s.client.ws(url.clone()).connect().await.expect("handshake");
    let mut third = Desktop::from_framed(framed);
    let (reason, texts) = third.until_closed(WAIT).await;
    let reason = reason.expect("a close reason");
    assert_eq!(u16::from(reason.code), 1008);
    assert!(
        reason
            .description
            .as_deref()
            .unwrap_or("")
            .contains("max_desktops_per_agent"),
        "{reason:?}"
    );
    assert_eq!(texts, 0, "a refused desktop gets no hello");
    // Other agents are not affected.
    let (_b, _) = s.desktop(&bob).await;
    // A slot comes free when a desktop goes (the server notices the close).
    first.close().await;
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let (_res, framed) = s.client.ws(url.clone()).connect().await.expect("handshake");
        let mut d = Desktop::from_framed(framed);
        if d.next_or_close().await.is_some() {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the slot never came free");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// Story: a load balancer probes `/livez`, `/readyz` and `/healthz` with GET and HEAD;
/// all answer 200 while the engine works, HEAD without a body.
#[actix_rt::test]
async fn health_routes_answer_get_and_head() {
    let s = TestServer::start().await;
    for path in ["/livez", "/readyz", "/healthz"] {
        let a = s.call("GET", path, None, None).await;
        assert_eq!(a.status, 200, "GET {path}: {}", a.body);
        assert_eq!(a.body["status"], "ok");
        let a = s.call("HEAD", path, None, None).await;
        assert_eq!(a.status, 200, "HEAD {path}");
        assert_eq!(a.body, serde_json::Value::Null, "HEAD {path} has no body");
    }
}

/// Story: a fresh server's `/metrics` already has every counter at 0, the process
/// metrics, the build info and the store error counter.
#[actix_rt::test]
async fn metrics_are_present_from_start_up() {
    let s = TestServer::start().await;
    let text = s.call("GET", "/metrics", None, None).await.body;
    let text = text.as_str().unwrap();
    for series in [
        "switchboard_offers_total{kind=\"new\"}",
        "switchboard_ronas_total{kind=\"transfer\"}",
        "switchboard_transfers_total",
        "switchboard_conferences_total",
        "switchboard_conversations_ended_total{reason=\"customer_ended\"}",
        "switchboard_wrapups_total{reason=\"resolved\"}",
        "switchboard_store_errors_total{op=\"write\"}",
        "switchboard_engine_recoveries_total",
        "switchboard_auth_failures_total{outcome=\"limited\"}",
        "switchboard_build_info{",
        "process_resident_memory_bytes",
        "process_open_fds",
    ] {
        assert!(text.contains(series), "{series} missing from /metrics:\n{text}");
    }
    assert!(text.contains(&format!("version=\"{}\"", env!("CARGO_PKG_VERSION"))));
}

/// Story: the disk under the store freezes (a flush hangs). `/readyz` does not hang and
/// does not say 200 from memory: it answers 503 once the probe write has taken longer
/// than `store.probe_timeout_ms`, while `/livez` stays 200; when the disk moves again,
/// `/readyz` is 200.
#[actix_rt::test]
async fn a_frozen_store_is_not_ready() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Condvar, Mutex};
    let dir = tempfile::tempdir().unwrap();
    let frozen = Arc::new((Mutex::new(false), Condvar::new()));
    let hook = frozen.clone();
    let entered = Arc::new(AtomicBool::new(false));
    let seen = entered.clone();
    let options = switchboard::store::SledOptions {
        before_flush: Some(Arc::new(move || {
            let (lock, cvar) = &*hook;
            let mut f = lock.lock().unwrap();
            if *f {
                seen.store(true, Ordering::SeqCst);
            }
            while *f {
                f = cvar.wait(f).unwrap();
            }
            Ok(())
        })),
        ..Default::default()
    };
    let store: Arc<dyn switchboard::store::Store> =
        Arc::new(switchboard::store::SledStore::open(&dir.path().join("store"), options).unwrap());
    let mut config = switchboard::config::Config::load(None).unwrap();
    config.api.admin_token = ADMIN.into();
    config.store.probe_timeout_ms = 300;
    let engine =
        switchboard::engine::Engine::start(switchboard::engine::EngineOptions::new(config.rules(), store)).unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    actix_rt::spawn(switchboard::api::build_server(&config, engine, listener).unwrap());
    let client = awc::Client::builder().timeout(WAIT).finish();
    request(&client, &format!("{base}/readyz"), "GET", None, None)
        .await
        .expect(200);

    *frozen.0.lock().unwrap() = true;
    let a = request(&client, &format!("{base}/readyz"), "GET", None, None).await;
    a.expect_error(503, "not_ready");
    assert!(
        a.body["error"]["message"].as_str().unwrap().contains("300 ms"),
        "{}",
        a.body
    );
    assert!(entered.load(Ordering::SeqCst), "the probe reached the store's flush");
    request(&client, &format!("{base}/livez"), "GET", None, None)
        .await
        .expect(200);

    *frozen.0.lock().unwrap() = false;
    frozen.1.notify_all();
    request(&client, &format!("{base}/readyz"), "GET", None, None)
        .await
        .expect(200);
}

/// Story: the engine is overloaded (here made so by a target of 0 ms: any wait at all
/// for the engine counts). A new conversation over REST is refused with 503 `overloaded`
/// and `Retry-After`, and counted in `/metrics`; what was taken in before keeps working:
/// the customer of an open conversation still writes, and agents' commands still run.
#[actix_rt::test]
async fn an_overloaded_engine_refuses_new_conversations_and_nothing_else() {
    let s = TestServer::with(|c| {
        c.server.admission_control = true;
        c.server.overload_wait_ms = 0;
    })
    .await;
    let ann = s.agent("ann", "Ann", &["support"]).await;
    // Start-up's own commands may have measured the engine as overloaded already; an idle
    // engine's measure goes stale after two intervals, and then it takes new work.
    let mut open = None;
    for _ in 0..100 {
        let a = s
            .post(
                "/api/v1/conversations",
                ADMIN,
                serde_json::json!({"entry_point": "demo-page", "customer": {"id": "cust-1", "name": "Cus"}, "text": "hello"}),
            )
            .await;
        if a.status == 201 {
            open = Some(a.body);
            break;
        }
        a.expect_error(503, "overloaded");
        actix_rt::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let open = open.expect("an idle engine takes new work");
    let id = open["id"].as_str().expect("id").to_string();
    // The engine measures the least wait once per 100 ms interval: keep it busy across
    // intervals until the measure says overloaded (bounded, so a slow machine only
    // makes it take longer).
    let mut refused = None;
    for _ in 0..100 {
        s.set_state(&ann, "idle").await;
        let mut res = s
            .client
            .post(format!("{}/api/v1/conversations", s.base))
            .insert_header(("Authorization", format!("Bearer {ADMIN}")))
            .send_json(&serde_json::json!({
                "entry_point": "demo-page",
                "customer": {"id": "cust-2", "name": "Two"},
                "text": "hello"
            }))
            .await
            .expect("request");
        if res.status().as_u16() == 503 {
            let retry = res
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap_or("").to_string());
            let body: serde_json::Value = serde_json::from_slice(&res.body().await.expect("body")).expect("json");
            refused = Some((retry, body));
            break;
        }
        assert_eq!(res.status().as_u16(), 201, "not refused: joined or created");
        actix_rt::time::sleep(std::time::Duration::from_millis(60)).await;
    }
    let (retry, body) = refused.expect("refused once the measure says overloaded");
    assert_eq!(body["error"]["code"], "overloaded");
    assert_eq!(retry.as_deref(), Some("1"));
    // Work already taken in is never refused by admission control.
    s.post(
        &format!("/api/v1/conversations/{id}/messages"),
        ADMIN,
        serde_json::json!({"text": "still there?"}),
    )
    .await
    .expect(201);
    s.set_state(&ann, "available").await;
    let metrics = s.call("GET", "/metrics", None, None).await.body;
    let text = metrics.as_str().unwrap_or_default();
    let refusals = text
        .lines()
        .find(|l| l.starts_with("switchboard_overload_refusals_total{channel=\"rest\"}"))
        .expect("the refusal counter");
    let n: u64 = refusals
        .rsplit(' ')
        .next()
        .and_then(|v| v.parse().ok())
        .expect("a count");
    assert!(n >= 1, "{refusals}");
    assert!(text.contains("switchboard_command_wait_seconds"));
}
