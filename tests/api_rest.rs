//! REST rules that clients rely on: every error kind of ../shared/API.md with its status and code
//! (and nothing changed afterwards), the list filters, idempotent state, the OpenAPI
//! contract, health and metrics.

mod common;

use common::*;
use serde_json::{json, Value};

/// Everything a client could observe, to prove that a refused request changed nothing.
async fn world(s: &TestServer) -> Value {
    json!({
        "agents": s.get("/api/v1/agents", ADMIN).await.expect(200),
        "queues": s.get("/api/v1/queues", ADMIN).await.expect(200),
        "entry_points": s.get("/api/v1/entry-points", ADMIN).await.expect(200),
        "ann": s.agent_detail("ann").await,
    })
}

/// 400: malformed JSON, unknown fields, missing fields, wrong content type, wrong types,
/// ids, names, capacities and texts out of bounds, unknown codes and settable states, and
/// bad filters: each is a JSON error with a stable code, and nothing changes.
#[actix_web::test]
async fn bad_requests_are_400_and_change_nothing() {
    let s = TestServer::start().await;
    let ann = s.agent("ann", "Ann", &["support"]).await;
    s.set_state(&ann, "available").await;
    let cid = id_of(&s.customer_writes("cust-1", "Carol", "Hello").await);
    s.post_empty(&format!("/api/v1/conversations/{cid}/accept"), &ann)
        .await
        .expect(200);
    let before = world(&s).await;
    let conv_before = s.conversation(&cid).await;

    let json_ct = "application/json";
    s.raw("POST", "/api/v1/queues", ADMIN, json_ct, "{not json")
        .await
        .expect_error(400, "invalid_json");
    s.raw(
        "POST",
        "/api/v1/queues",
        ADMIN,
        "text/plain",
        r#"{"id":"q2","name":"Q2"}"#,
    )
    .await
    .expect_error(400, "unsupported_content_type");
    s.raw("POST", "/api/v1/queues", ADMIN, json_ct, "")
        .await
        .expect_error(400, "invalid_json");
    let cases: Vec<(&str, &str, Value, &str)> = vec![
        (
            "POST",
            "/api/v1/queues",
            json!({"id": "q2", "name": "Q2", "extra": 1}),
            "invalid_json",
        ),
        ("POST", "/api/v1/queues", json!({"id": "q2"}), "invalid_json"),
        ("POST", "/api/v1/queues", json!({"id": 7, "name": "Q2"}), "invalid_json"),
        ("POST", "/api/v1/queues", json!([1, 2]), "invalid_json"),
        (
            "POST",
            "/api/v1/queues",
            json!({"id": "bad id!", "name": "Q2"}),
            "invalid_input",
        ),
        (
            "POST",
            "/api/v1/queues",
            json!({"id": "x".repeat(65), "name": "Q2"}),
            "invalid_input",
        ),
        (
            "POST",
            "/api/v1/queues",
            json!({"id": "q2", "name": ""}),
            "invalid_input",
        ),
        (
            "POST",
            "/api/v1/agents",
            json!({"id": "zed", "name": "Zed", "queues": ["support"], "capacity": 0}),
            "invalid_input",
        ),
        (
            "POST",
            "/api/v1/agents",
            json!({"id": "zed", "name": "Z".repeat(201), "queues": ["support"]}),
            "invalid_input",
        ),
        (
            "POST",
            "/api/v1/conversations",
            json!({"entry_point": "demo-page", "customer": {"id": "c9", "name": "N"}, "text": "x".repeat(20_001)}),
            "invalid_input",
        ),
        (
            "POST",
            "/api/v1/conversations",
            json!({"entry_point": "demo-page", "customer": {"id": "c9", "name": "N"}, "text": ""}),
            "invalid_input",
        ),
        (
            "POST",
            "/api/v1/conversations",
            json!({"entry_point": "demo-page", "customer": {"id": "c9"}, "text": "hi"}),
            "invalid_json",
        ),
    ];
    for (method, path, body, code) in cases {
        let a = s.call(method, path, Some(ADMIN), Some(body.clone())).await;
        assert_eq!((a.status, a.code()), (400, code), "{method} {path} {body}: {}", a.body);
    }
    let agent_cases: Vec<(&str, String, Value, &str)> = vec![
        (
            "PUT",
            "/api/v1/agents/me/state".into(),
            json!({"state": "rona"}),
            "state_not_settable",
        ),
        (
            "PUT",
            "/api/v1/agents/me/state".into(),
            json!({"state": "busy"}),
            "invalid_json",
        ),
        (
            "PUT",
            "/api/v1/agents/me/state".into(),
            json!({"state": "idle", "idle_code": "nap"}),
            "unknown_idle_code",
        ),
        (
            "PUT",
            "/api/v1/agents/me/state".into(),
            json!({"state": "available", "idle_code": "break"}),
            "invalid_input",
        ),
        (
            "POST",
            format!("/api/v1/conversations/{cid}/messages"),
            json!({"text": "x".repeat(20_001)}),
            "invalid_input",
        ),
        (
            "POST",
            format!("/api/v1/conversations/{cid}/transfer"),
            json!({"agent": "bob", "queue": "support"}),
            "invalid_input",
        ),
        (
            "POST",
            format!("/api/v1/conversations/{cid}/transfer"),
            json!({}),
            "invalid_input",
        ),
        (
            "POST",
            format!("/api/v1/conversations/{cid}/transfer"),
            json!({"agent": "ann"}),
            "invalid_input",
        ),
        (
            "POST",
            format!("/api/v1/conversations/{cid}/wrapup"),
            json!({"reason": "no-such-reason"}),
            "unknown_wrapup_reason",
        ),
    ];
    for (method, path, body, code) in agent_cases {
        let a = s.call(method, &path, Some(&ann), Some(body.clone())).await;
        assert_eq!((a.status, a.code()), (400, code), "{method} {path} {body}: {}", a.body);
    }
    s.get("/api/v1/agents?state=busy", ADMIN)
        .await
        .expect_error(400, "invalid_input");
    s.get("/api/v1/queues/bad%20id", ADMIN)
        .await
        .expect_error(400, "invalid_input");

    assert_eq!(world(&s).await, before);
    assert_eq!(s.conversation(&cid).await, conv_before);
}

/// 404 for unknown agents, queues, entry points, conversations and routes; 405 for a
/// known path with another method. Nothing changes.
#[actix_web::test]
async fn unknown_things_are_404_and_wrong_methods_405() {
    let s = TestServer::start().await;
    let ann = s.agent("ann", "Ann", &["support"]).await;
    let before = world(&s).await;
    s.get("/api/v1/queues/nope", ADMIN)
        .await
        .expect_error(404, "unknown_queue");
    s.get("/api/v1/agents/nope", ADMIN)
        .await
        .expect_error(404, "unknown_agent");
    s.get("/api/v1/conversations/nope", ADMIN)
        .await
        .expect_error(404, "unknown_conversation");
    s.post_empty("/api/v1/conversations/nope/accept", &ann)
        .await
        .expect_error(404, "unknown_conversation");
    s.post(
        "/api/v1/conversations",
        ADMIN,
        json!({"entry_point": "nope", "customer": {"id": "c", "name": "C"}, "text": "hi"}),
    )
    .await
    .expect_error(404, "unknown_entry_point");
    s.post(
        "/api/v1/agents",
        ADMIN,
        json!({"id": "zed", "name": "Zed", "queues": ["nope"]}),
    )
    .await
    .expect_error(404, "unknown_queue");
    s.post(
        "/api/v1/entry-points",
        ADMIN,
        json!({"id": "ep2", "name": "Page", "queue": "nope"}),
    )
    .await
    .expect_error(404, "unknown_queue");
    s.get("/api/v1/nothing-here", ADMIN)
        .await
        .expect_error(404, "not_found");
    // `/` is the agent desktop page (tests/api_pages.rs); other unknown paths are 404.
    s.get("/nothing-here", ADMIN).await.expect_error(404, "not_found");
    s.call("DELETE", "/api/v1/queues", Some(ADMIN), None)
        .await
        .expect_error(405, "method_not_allowed");
    s.call("GET", "/api/v1/conversations/x/accept", Some(ADMIN), None)
        .await
        .expect_error(405, "method_not_allowed");
    assert_eq!(world(&s).await, before);
}

/// 409 when the action does not fit the state: duplicates, accepting what was never
/// offered, logging out while holding a conversation, transferring to an unavailable
/// agent. Nothing changes.
#[actix_web::test]
async fn conflicts_are_409_and_change_nothing() {
    let s = TestServer::start().await;
    let ann = s.agent("ann", "Ann", &["support"]).await;
    let bob = s.agent("bob", "Bob", &["support"]).await;
    s.set_state(&ann, "available").await;
    let cid = id_of(&s.customer_writes("cust-1", "Carol", "Hello").await);
    s.post_empty(&format!("/api/v1/conversations/{cid}/accept"), &ann)
        .await
        .expect(200);
    let before = world(&s).await;
    let conv_before = s.conversation(&cid).await;

    s.post("/api/v1/queues", ADMIN, json!({"id": "support", "name": "Again"}))
        .await
        .expect_error(409, "already_exists");
    s.post(
        "/api/v1/agents",
        ADMIN,
        json!({"id": "ann", "name": "Ann 2", "queues": []}),
    )
    .await
    .expect_error(409, "already_exists");
    s.post_empty(&format!("/api/v1/conversations/{cid}/accept"), &bob)
        .await
        .expect_error(409, "not_offered_to_you");
    s.put("/api/v1/agents/me/state", &ann, json!({"state": "logged_out"}))
        .await
        .expect_error(409, "agent_busy");
    s.post(
        &format!("/api/v1/conversations/{cid}/transfer"),
        &ann,
        json!({"agent": "bob"}),
    )
    .await
    .expect_error(409, "agent_unavailable");

    assert_eq!(world(&s).await, before);
    assert_eq!(s.conversation(&cid).await, conv_before);
    let _ = bob;
}

/// 413: a body over `server.body_limit_bytes` is refused with JSON, and nothing is created.
#[actix_web::test]
async fn oversized_body_is_413() {
    let s = TestServer::with(|c| c.server.body_limit_bytes = 2048).await;
    let a = s
        .post(
            "/api/v1/conversations",
            ADMIN,
            json!({"entry_point": "demo-page", "customer": {"id": "c", "name": "C"}, "text": "x".repeat(4000)}),
        )
        .await;
    a.expect_error(413, "payload_too_large");
    assert_eq!(s.get("/api/v1/queues/support", ADMIN).await.expect(200)["waiting"], 0);
}

/// Setting the state an agent is already in succeeds and keeps `state_since`; from
/// `logged_out`, `idle` logs in with an idle code.
#[actix_web::test]
async fn same_state_keeps_state_since() {
    let s = TestServer::start().await;
    let ann = s.agent("ann", "Ann", &["support"]).await;
    let idle = s
        .put(
            "/api/v1/agents/me/state",
            &ann,
            json!({"state": "idle", "idle_code": "break"}),
        )
        .await
        .expect(200);
    assert_eq!(idle["state"], "idle");
    assert_eq!(idle["idle_code"], "break");
    let first = s.set_state(&ann, "available").await;
    let again = s.set_state(&ann, "available").await;
    assert_eq!(first["state_since"], again["state_since"]);
    assert_eq!(again["idle_code"], Value::Null);
    let out = s.set_state(&ann, "logged_out").await;
    assert_eq!(out["state"], "logged_out");
}

/// The agent list filters that the transfer and conference dialogs use: by state, queue, a
/// case-insensitive substring of id or name, and whether the agent may take an offer now
/// (`eligible`, the engine's rule); reference lists for idle codes.
#[actix_web::test]
async fn agent_list_filters_and_reference_lists() {
    let s = TestServer::start().await;
    s.queue("billing", "Billing").await;
    let ann = s.agent("ann", "Ann Smith", &["support"]).await;
    let bob = s.agent("bob", "Bob Jones", &["support", "billing"]).await;
    s.agent("cleo", "Cleo Annand", &["billing"]).await;
    s.set_state(&ann, "available").await;
    s.set_state(&bob, "available").await;
    let ids = |v: Value| -> Vec<String> {
        v.as_array()
            .expect("list")
            .iter()
            .map(|a| a["id"].as_str().expect("id").to_string())
            .collect()
    };
    let all = s.get("/api/v1/agents", &ann).await.expect(200);
    assert_eq!(ids(all.clone()), ["ann", "bob", "cleo"]);
    for a in all.as_array().expect("list") {
        for key in [
            "id",
            "name",
            "state",
            "idle_code",
            "state_since",
            "engaged",
            "queues",
            "capacity",
            "load",
        ] {
            assert!(a.get(key).is_some(), "agent without {key}: {a}");
        }
    }
    assert_eq!(
        ids(s.get("/api/v1/agents?state=available", ADMIN).await.expect(200)),
        ["ann", "bob"]
    );
    assert_eq!(
        ids(s.get("/api/v1/agents?queue=billing", ADMIN).await.expect(200)),
        ["bob", "cleo"]
    );
    assert_eq!(
        ids(s.get("/api/v1/agents?q=ANN", ADMIN).await.expect(200)),
        ["ann", "cleo"]
    );
    assert_eq!(
        ids(s
            .get("/api/v1/agents?q=ann&state=available&queue=support", ADMIN)
            .await
            .expect(200)),
        ["ann"]
    );
    assert_eq!(
        ids(s.get("/api/v1/agents?q=nobody", ADMIN).await.expect(200)),
        Vec::<String>::new()
    );
    // `eligible` is the engine's word on who may take an offer (a transfer, an invitation)
    // now: available with a free slot. An offer takes the only slot of the agent it goes to.
    assert_eq!(
        ids(s.get("/api/v1/agents?eligible=true", ADMIN).await.expect(200)),
        ["ann", "bob"]
    );
    s.customer_writes("u1", "Una", "hello").await;
    let eligible = ids(s.get("/api/v1/agents?eligible=true", ADMIN).await.expect(200));
    assert_eq!(eligible.len(), 1, "one of ann and bob holds the offer: {eligible:?}");
    let all = s.get("/api/v1/agents", ADMIN).await.expect(200);
    for a in all.as_array().expect("list") {
        let free = a["state"] == "available" && a["load"].as_u64() < a["capacity"].as_u64();
        assert_eq!(a["eligible"], free, "{a}");
    }
    assert_eq!(
        ids(s.get("/api/v1/agents?eligible=false", ADMIN).await.expect(200)).len(),
        2
    );

    let codes = s.get("/api/v1/idle-codes", &ann).await.expect(200);
    assert!(codes.as_array().expect("list").len() >= 2);
    assert!(codes[0]["code"].is_string() && codes[0]["label"].is_string());
    let reasons = s.get("/api/v1/wrapup-reasons?q=up", ADMIN).await.expect(200);
    assert_eq!(reasons, json!([{"code": "follow_up", "label": "Follow-up needed"}]));

    let q = s.get("/api/v1/queues/support", &ann).await.expect(200);
    assert_eq!(q["agents_available"], 1, "the other one holds the offer");
    let eps = s.get("/api/v1/entry-points", ADMIN).await.expect(200);
    assert_eq!(eps[0]["name"], "Demo Page");
    assert!(eps[0].get("page_access_token").is_none());
}

/// The generated OpenAPI description has every path and method of ../shared/API.md, the desktop
/// events and commands, and the bearer scheme; the browsable UI is served.
#[actix_web::test]
async fn openapi_contract() {
    let s = TestServer::start().await;
    let doc = s.call("GET", "/api/v1/openapi.json", None, None).await.expect(200);
    let paths = &doc["paths"];
    for (method, path) in [
        ("post", "/api/v1/queues"),
        ("get", "/api/v1/queues"),
        ("get", "/api/v1/queues/{id}"),
        ("post", "/api/v1/entry-points"),
        ("get", "/api/v1/entry-points"),
        ("post", "/api/v1/agents"),
        ("get", "/api/v1/agents"),
        ("get", "/api/v1/agents/{id}"),
        ("post", "/api/v1/agents/{id}/token"),
        ("put", "/api/v1/agents/me/state"),
        ("get", "/api/v1/agents/me/ws"),
        ("post", "/api/v1/conversations"),
        ("get", "/api/v1/conversations/{id}"),
        ("post", "/api/v1/conversations/{id}/accept"),
        ("post", "/api/v1/conversations/{id}/messages"),
        ("post", "/api/v1/conversations/{id}/transfer"),
        ("post", "/api/v1/conversations/{id}/conference"),
        ("post", "/api/v1/conversations/{id}/conference/exit"),
        ("post", "/api/v1/conversations/{id}/conference/end"),
        ("post", "/api/v1/conversations/{id}/end"),
        ("post", "/api/v1/conversations/{id}/wrapup"),
        ("get", "/api/v1/wrapup-reasons"),
        ("get", "/api/v1/idle-codes"),
        ("get", "/healthz"),
        ("get", "/livez"),
        ("get", "/readyz"),
        ("post", "/api/v1/admin/backup"),
        ("get", "/metrics"),
    ] {
        assert!(
            paths[path][method].is_object(),
            "{method} {path} missing from the OpenAPI"
        );
    }
    let schemas = &doc["components"]["schemas"];
    let events = schemas["ServerEvent"].to_string();
    for ty in [
        "hello",
        "state_changed",
        "offer",
        "offer_withdrawn",
        "conversation",
        "message",
        "participant_joined",
        "participant_left",
        "conversation_ended",
        "wrapup_required",
        "reply",
    ] {
        assert!(
            events.contains(&format!("\"{ty}\"")),
            "event {ty} missing from ServerEvent"
        );
    }
    let commands = schemas["DesktopCommand"].to_string();
    for ty in [
        "set_state",
        "accept",
        "send",
        "transfer",
        "conference",
        "exit_conference",
        "end_conference",
        "end",
        "wrapup",
    ] {
        assert!(
            commands.contains(&format!("\"{ty}\"")),
            "command {ty} missing from DesktopCommand"
        );
    }
    assert_eq!(doc["components"]["securitySchemes"]["bearer"]["scheme"], "bearer");
    let conversation = schemas["ConversationDto"]["properties"].clone();
    for key in [
        "id",
        "channel",
        "state",
        "conference_state",
        "queue",
        "queue_name",
        "entry_point",
        "source_page",
        "customer",
        "owner",
        "guest",
        "offer",
        "received_at",
        "ended_reason",
        "transcript",
    ] {
        assert!(conversation.get(key).is_some(), "conversation field {key} missing");
    }

    let mut ui = s
        .client
        .get(format!("{}/api/docs/", s.base))
        .send()
        .await
        .expect("docs");
    assert_eq!(ui.status().as_u16(), 200);
    let html = ui.body().await.expect("body");
    assert!(String::from_utf8_lossy(&html).to_lowercase().contains("swagger"));
}

/// `/healthz` answers 200 while the engine works; `/metrics` is Prometheus text with the
/// request counters, the connected desktops gauge, the routing counters and the store's
/// group-commit figures.
#[actix_web::test]
async fn health_and_metrics() {
    let s = TestServer::start().await;
    let ann = s.agent("ann", "Ann", &["support"]).await;
    let h = s.call("GET", "/healthz", None, None).await.expect(200);
    assert_eq!(h["status"], "ok");
    // An idle Messenger outbox: nothing waiting, no page without a valid token.
    assert_eq!(
        h["messenger_outbox"],
        json!({"depth": 0, "oldest_age_ms": 0, "unauthorized_entry_points": []}),
        "{h}"
    );
    let (_d, _) = s.desktop(&ann).await;
    let m = s.call("GET", "/metrics", None, None).await.expect(200);
    let text = m.as_str().expect("text").to_string();
    for name in [
        "switchboard_http_requests_total",
        "switchboard_http_request_seconds",
        "switchboard_desktops_connected",
        "switchboard_agents",
        "switchboard_store_commits_per_flush",
        "switchboard_store_flush_seconds",
        "switchboard_store_commit_seconds",
    ] {
        assert!(text.contains(name), "{name} missing from /metrics");
    }
}
