//! The operator's tenant API (../shared/API.md "Tenants") against a real server: off
//! without an operator token, who may use it, the registry's rules over HTTP, and a
//! registry that survives a kill -9.

mod common;

use common::{Process, TestServer, ADMIN};
use serde_json::json;

const OPERATOR: &str = "op-7f3a9c1e5b2d8f4a6c0e9b7d3f1a5c8e";

async fn with_operator() -> TestServer {
    TestServer::with(|c| c.api.operator_token = OPERATOR.into()).await
}

#[actix_rt::test]
async fn the_tenant_api_is_off_without_an_operator_token() {
    let s = TestServer::start().await;
    s.get("/api/v1/tenants", ADMIN).await.expect_error(404, "not_found");
    let a = s
        .post("/api/v1/tenants", OPERATOR, json!({"id": "acme", "name": "Acme"}))
        .await;
    a.expect_error(404, "not_found");
}

#[actix_rt::test]
async fn only_the_operator_manages_tenants_and_acts_in_none() {
    let s = with_operator().await;
    s.get("/api/v1/tenants", ADMIN).await.expect_error(403, "forbidden");
    s.get("/api/v1/tenants", "not-a-token-of-anyone")
        .await
        .expect_error(401, "unauthorized");
    s.call("GET", "/api/v1/tenants", None, None)
        .await
        .expect_error(401, "unauthorized");
    // The operator token acts in no tenant.
    s.get("/api/v1/queues", OPERATOR).await.expect_error(403, "forbidden");
    s.get("/api/v1/tenants", OPERATOR).await.expect(200);
}

#[actix_rt::test]
async fn tenants_are_created_read_changed_reissued_and_deleted() {
    let s = with_operator().await;
    s.queue("q1", "Support").await;
    let created = s
        .post("/api/v1/tenants", OPERATOR, json!({"id": "acme", "name": "Acme"}))
        .await
        .expect(201);
    assert_eq!(created["id"], "acme");
    assert_eq!(created["name"], "Acme");
    let token = created["admin_token"]
        .as_str()
        .expect("admin token shown once")
        .to_string();
    assert_eq!(token.len(), 64);
    assert!(created["created_at"].is_string());
    assert_eq!(
        created["counts"],
        json!({"agents": 0, "queues": 0, "open_conversations": 0})
    );

    let list = s.get("/api/v1/tenants", OPERATOR).await.expect(200);
    let ids: Vec<&str> = list
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|t| t["id"].as_str())
        .collect();
    assert_eq!(ids, ["default", "acme"]);
    let queues = s.get("/api/v1/queues", ADMIN).await.expect(200);
    assert_eq!(
        list[0]["counts"]["queues"],
        queues.as_array().map_or(0, Vec::len),
        "{list}"
    );
    assert!(list
        .as_array()
        .expect("array")
        .iter()
        .all(|t| t.get("admin_token").is_none()));

    let read = s.get("/api/v1/tenants/acme", OPERATOR).await.expect(200);
    assert_eq!(read["name"], "Acme");
    assert!(read.get("admin_token").is_none(), "the token is shown once: {read}");

    let patched = s
        .call(
            "PATCH",
            "/api/v1/tenants/acme",
            Some(OPERATOR),
            Some(json!({"name": "Acme Ltd", "limits": {"max_agents": 5, "max_queues": 2}})),
        )
        .await
        .expect(200);
    assert_eq!(patched["name"], "Acme Ltd");
    assert_eq!(patched["limits"], json!({"max_agents": 5, "max_queues": 2}));

    let again = s
        .post_empty("/api/v1/tenants/acme/admin-token", OPERATOR)
        .await
        .expect(200);
    let new_token = again["admin_token"].as_str().expect("a new token");
    assert_ne!(new_token, token);

    s.call("DELETE", "/api/v1/tenants/acme", Some(OPERATOR), None)
        .await
        .expect(204);
    s.get("/api/v1/tenants/acme", OPERATOR)
        .await
        .expect_error(404, "unknown_tenant");
    s.call("DELETE", "/api/v1/tenants/acme", Some(OPERATOR), None)
        .await
        .expect_error(404, "unknown_tenant");
    // The id is free again, for a new, empty tenant.
    let fresh = s
        .post("/api/v1/tenants", OPERATOR, json!({"id": "acme", "name": "Acme again"}))
        .await
        .expect(201);
    assert_eq!(fresh["counts"]["queues"], 0);
}

#[actix_rt::test]
async fn bad_requests_change_nothing() {
    let s = TestServer::with(|c| {
        c.api.operator_token = OPERATOR.into();
        c.server.max_tenants = 2;
    })
    .await;
    for (body, status, code) in [
        (json!({"id": "Acme", "name": "Acme"}), 400, "invalid_input"),
        (json!({"id": "a.b", "name": "Acme"}), 400, "invalid_input"),
        (json!({"id": "acme", "name": ""}), 400, "invalid_input"),
        (json!({"id": "acme"}), 400, "invalid_json"),
        (json!({"id": "acme", "name": "A", "extra": 1}), 400, "invalid_json"),
        (json!({"id": "default", "name": "Default"}), 409, "already_exists"),
    ] {
        let a = s.post("/api/v1/tenants", OPERATOR, body.clone()).await;
        assert_eq!((a.status, a.code()), (status, code), "{body}: {}", a.body);
    }
    assert_eq!(
        s.get("/api/v1/tenants", OPERATOR)
            .await
            .expect(200)
            .as_array()
            .map(Vec::len),
        Some(1)
    );
    s.post("/api/v1/tenants", OPERATOR, json!({"id": "acme", "name": "Acme"}))
        .await
        .expect(201);
    s.post("/api/v1/tenants", OPERATOR, json!({"id": "acme", "name": "Acme"}))
        .await
        .expect_error(409, "already_exists");
    // `default` and acme: max_tenants = 2 is reached.
    let full = s
        .post("/api/v1/tenants", OPERATOR, json!({"id": "beta", "name": "Beta"}))
        .await;
    full.expect_error(409, "tenant_limit");
    assert!(full.body["error"]["message"]
        .as_str()
        .is_some_and(|m| m.contains("max_tenants")));
    // Tenant default is the config's.
    s.post_empty("/api/v1/tenants/default/admin-token", OPERATOR)
        .await
        .expect_error(409, "invalid_state");
    s.call("DELETE", "/api/v1/tenants/default", Some(OPERATOR), None)
        .await
        .expect_error(409, "invalid_state");
    let patch = s
        .call(
            "PATCH",
            "/api/v1/tenants/acme",
            Some(OPERATOR),
            Some(json!({"name": "  "})),
        )
        .await;
    patch.expect_error(400, "invalid_input");
    assert_eq!(
        s.get("/api/v1/tenants/acme", OPERATOR).await.expect(200)["name"],
        "Acme"
    );
    s.get("/api/v1/tenants/nope", OPERATOR)
        .await
        .expect_error(404, "unknown_tenant");
}

#[test]
fn the_registry_survives_a_kill() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = dir.path().join("data");
    let env = [("SWITCHBOARD_API__OPERATOR_TOKEN", OPERATOR)];
    let rt = actix_rt::System::new();
    rt.block_on(async {
        let p = Process::start(&store, &env);
        let client = awc::Client::default();
        let url = format!("{}/api/v1/tenants", p.base);
        let a = common::request(
            &client,
            &url,
            "POST",
            Some(OPERATOR),
            Some(json!({"id": "acme", "name": "Acme"})),
        )
        .await;
        assert_eq!(a.status, 201, "{}", a.body);
        p.kill();
        let p = Process::start(&store, &env);
        let list = common::request(
            &client,
            &format!("{}/api/v1/tenants", p.base),
            "GET",
            Some(OPERATOR),
            None,
        )
        .await;
        assert_eq!(list.status, 200, "{}", list.body);
        assert_eq!(list.body[1]["id"], "acme", "{}", list.body);
        assert_eq!(list.body[1]["counts"]["agents"], 0, "its engine runs: {}", list.body);
        p.kill();
    });
}
