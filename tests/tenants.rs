//! The operator's tenant API (../shared/API.md "Tenants") against a real server: off
//! without an operator token, who may use it, the registry's rules over HTTP, and a
//! registry that survives a kill -9.

mod common;
mod messenger_common;

use common::{Process, TestServer, ADMIN};
use serde_json::json;
use switchboard::channels::messenger::fake_graph::FakeGraph;

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

/// Moving a tenant is a cluster's (docs/CLUSTER.md): a node that runs alone says so.
#[actix_rt::test]
async fn a_node_that_runs_alone_moves_no_tenant() {
    let s = with_operator().await;
    let body = json!({"to": "node-b"});
    for token in [ADMIN, OPERATOR] {
        s.post("/api/v1/tenants/default/move", token, body.clone())
            .await
            .expect_error(404, "not_clustered");
    }
    s.post("/api/v1/tenants/default/move", "nobody", body)
        .await
        .expect_error(401, "unauthorized");
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
    // The tenant's id, a dot, 64 hex digits (docs/TENANTS.md "Tokens").
    let (named, random) = token.split_once('.').expect("acme.<hex>");
    assert_eq!((named, random.len()), ("acme", 64));
    assert!(random.bytes().all(|b| b.is_ascii_hexdigit()), "{token}");
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
        (
            json!({"id": "acme", "name": "A", "wrapup_reasons": []}),
            400,
            "invalid_input",
        ),
        (
            json!({"id": "acme", "name": "A", "idle_codes": [{"code": "a b", "label": "AB"}]}),
            400,
            "invalid_input",
        ),
        (
            json!({"id": "acme", "name": "A", "default_wrapup_reason": "nope"}),
            400,
            "invalid_input",
        ),
        (
            json!({"id": "acme", "name": "A", "wrapup_reasons": [{"code": "x", "label": "X", "y": 1}]}),
            400,
            "invalid_json",
        ),
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
        let admin = a.body["admin_token"].as_str().expect("admin token").to_string();
        let change = json!({
            "limits": {"max_queues": 0},
            "wrapup_reasons": [{"code": "done", "label": "Done"}, {"code": "spam", "label": "Spam"}],
            "default_wrapup_reason": "spam",
            "idle_codes": [{"code": "training", "label": "Training"}],
        });
        let patched = common::request(&client, &format!("{url}/acme"), "PATCH", Some(OPERATOR), Some(change)).await;
        assert_eq!(patched.status, 200, "{}", patched.body);
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
        // Its admin token and its limits came back with it.
        let queue = json!({"id": "q1", "name": "Q"});
        let queues = format!("{}/api/v1/queues", p.base);
        let refused = common::request(&client, &queues, "POST", Some(&admin), Some(queue)).await;
        let code = refused.body["error"]["code"].as_str();
        assert_eq!((refused.status, code), (409, Some("tenant_limit")), "{}", refused.body);
        // Its wrap-up reasons and idle codes too, in its engine and in the registry.
        let get = |path: &'static str, token: String| {
            let (client, url) = (client.clone(), format!("{}{path}", p.base));
            async move { common::request(&client, &url, "GET", Some(&token), None).await }
        };
        let reasons = get("/api/v1/wrapup-reasons", admin.clone()).await;
        assert_eq!(codes_of(&reasons.body), ["done", "spam"], "{}", reasons.body);
        let idle = get("/api/v1/idle-codes", admin.clone()).await;
        assert_eq!(codes_of(&idle.body), ["training"], "{}", idle.body);
        assert_eq!(list.body[1]["default_wrapup_reason"], "spam", "{}", list.body);
        assert_eq!(codes_of(&list.body[1]["idle_codes"]), ["training"], "{}", list.body);
        let theirs = get("/api/v1/wrapup-reasons", ADMIN.to_string()).await;
        assert_eq!(codes_of(&theirs.body), CONFIG_REASONS, "{}", theirs.body);
        p.kill();
    });
}

/// The config's wrap-up reasons and idle codes (config/default.toml).
const CONFIG_REASONS: [&str; 4] = ["resolved", "follow_up", "escalated", "other"];
const CONFIG_IDLE: [&str; 3] = ["break", "meeting", "lunch"];

/// The codes of a list of `{code, label}`.
fn codes_of(list: &serde_json::Value) -> Vec<&str> {
    list.as_array()
        .map(|l| l.iter().filter_map(|c| c["code"].as_str()).collect())
        .unwrap_or_default()
}

/// Tenant acme with wrap-up reasons and idle codes of its own: its tokens see them,
/// `default`'s see the config's; its agents go idle and wrap up with its codes only, over
/// REST and on the desktop; a PATCH is in force at once in the running tenant, and what is
/// under way keeps going; a bad change changes nothing.
#[actix_rt::test]
async fn a_tenant_has_wrapup_reasons_and_idle_codes_of_its_own() {
    let s = with_operator().await;
    let created = s
        .post(
            "/api/v1/tenants",
            OPERATOR,
            json!({
                "id": "acme",
                "name": "Acme",
                "wrapup_reasons": [{"code": "done", "label": "Done"}, {"code": "spam", "label": "Spam"}],
                "idle_codes": [{"code": "training", "label": "Training"}],
            }),
        )
        .await
        .expect(201);
    assert_eq!(codes_of(&created["wrapup_reasons"]), ["done", "spam"], "{created}");
    // No default of its own and the config's ("other") is not among them: the first.
    assert_eq!(created["default_wrapup_reason"], "done", "{created}");
    assert_eq!(
        created["idle_codes"][0],
        json!({"code": "training", "label": "Training"})
    );
    let acme = created["admin_token"].as_str().expect("admin token").to_string();
    let list = s.get("/api/v1/tenants", OPERATOR).await.expect(200);
    assert_eq!(list[0]["id"], "default");
    assert_eq!(codes_of(&list[0]["wrapup_reasons"]), CONFIG_REASONS, "{list}");
    assert_eq!(list[0]["default_wrapup_reason"], "other", "{list}");
    assert_eq!(codes_of(&list[0]["idle_codes"]), CONFIG_IDLE, "{list}");
    assert_eq!(codes_of(&list[1]["wrapup_reasons"]), ["done", "spam"], "{list}");
    let one = s.get("/api/v1/tenants/default", OPERATOR).await.expect(200);
    assert_eq!(codes_of(&one["idle_codes"]), CONFIG_IDLE, "{one}");

    let ann = floor(&s, &acme, "Ann").await;
    let al = s
        .post("/api/v1/agents", &acme, json!({"id": "a2", "name": "Al", "queues": []}))
        .await
        .expect(201)["token"]
        .as_str()
        .expect("token")
        .to_string();
    let dan = s.agent("a1", "Dan", &[]).await;
    for token in [acme.as_str(), &ann] {
        let reasons = s.get("/api/v1/wrapup-reasons", token).await.expect(200);
        assert_eq!(codes_of(&reasons), ["done", "spam"]);
        let idle = s.get("/api/v1/idle-codes", token).await.expect(200);
        assert_eq!(idle, json!([{"code": "training", "label": "Training"}]));
    }
    let found = s.get("/api/v1/wrapup-reasons?q=SPA", &ann).await.expect(200);
    assert_eq!(codes_of(&found), ["spam"]);
    for token in [ADMIN, &dan] {
        let reasons = s.get("/api/v1/wrapup-reasons", token).await.expect(200);
        assert_eq!(codes_of(&reasons), CONFIG_REASONS);
        let idle = s.get("/api/v1/idle-codes", token).await.expect(200);
        assert_eq!(codes_of(&idle), CONFIG_IDLE);
    }

    // Idle: with acme's code, not with one of the config's only; default's agent the other
    // way round.
    let idle = |code: &str| json!({"state": "idle", "idle_code": code});
    s.put("/api/v1/agents/me/state", &ann, idle("break"))
        .await
        .expect_error(400, "unknown_idle_code");
    s.put("/api/v1/agents/me/state", &ann, idle("training"))
        .await
        .expect(200);
    s.put("/api/v1/agents/me/state", &al, idle("training"))
        .await
        .expect(200);
    s.put("/api/v1/agents/me/state", &dan, idle("training"))
        .await
        .expect_error(400, "unknown_idle_code");
    s.put("/api/v1/agents/me/state", &dan, idle("break")).await.expect(200);

    // Wrap-up: wrapup_required on the desktop lists acme's reasons; acme's reason only.
    let mut desk = s.available_desktop(&ann).await;
    let (c1, required) = handled(&s, &acme, &mut desk, "c1").await;
    assert_eq!(
        required["reasons"],
        json!([{"code": "done", "label": "Done"}, {"code": "spam", "label": "Spam"}])
    );
    let wrapup = |cid: &str| format!("/api/v1/conversations/{cid}/wrapup");
    s.post(&wrapup(&c1), &ann, json!({"reason": "resolved"}))
        .await
        .expect_error(400, "unknown_wrapup_reason");
    s.post(&wrapup(&c1), &ann, json!({"reason": "spam"})).await.expect(200);

    // A change is in force at once in the running tenant. c2's wrap-up is owed from before
    // it: it is checked against the reasons in force when it is recorded; Al stays idle with
    // a code no longer listed.
    let (c2, _) = handled(&s, &acme, &mut desk, "c2").await;
    let change = json!({
        "wrapup_reasons": [{"code": "late", "label": "Late"}],
        "idle_codes": null,
    });
    let patched = s
        .call("PATCH", "/api/v1/tenants/acme", Some(OPERATOR), Some(change))
        .await
        .expect(200);
    assert_eq!(codes_of(&patched["wrapup_reasons"]), ["late"], "{patched}");
    assert_eq!(patched["default_wrapup_reason"], "late", "{patched}");
    assert_eq!(codes_of(&patched["idle_codes"]), CONFIG_IDLE, "{patched}");
    assert_eq!(
        codes_of(&s.get("/api/v1/wrapup-reasons", &ann).await.expect(200)),
        ["late"]
    );
    assert_eq!(
        codes_of(&s.get("/api/v1/idle-codes", &ann).await.expect(200)),
        CONFIG_IDLE
    );
    s.post(&wrapup(&c2), &ann, json!({"reason": "done"}))
        .await
        .expect_error(400, "unknown_wrapup_reason");
    let bad = desk
        .command(json!({"type": "wrapup", "conversation_id": c2, "reason": "spam"}))
        .await;
    assert_eq!(bad["error"]["code"], "unknown_wrapup_reason", "{bad}");
    let good = desk
        .command(json!({"type": "wrapup", "conversation_id": c2, "reason": "late"}))
        .await;
    assert_eq!(good["ok"], true, "{good}");
    let a2 = s.get("/api/v1/agents/a2", &acme).await.expect(200);
    assert_eq!(
        (a2["state"].as_str(), a2["idle_code"].as_str()),
        (Some("idle"), Some("training"))
    );
    s.put("/api/v1/agents/me/state", &ann, idle("training"))
        .await
        .expect_error(400, "unknown_idle_code");
    s.put("/api/v1/agents/me/state", &ann, idle("lunch")).await.expect(200);
    // Default's did not change.
    let reasons = s.get("/api/v1/wrapup-reasons", ADMIN).await.expect(200);
    assert_eq!(codes_of(&reasons), CONFIG_REASONS);

    // A bad change is refused and changes nothing; `default` is the config's.
    let before = s.get("/api/v1/tenants/acme", OPERATOR).await.expect(200);
    for (body, code) in [
        (
            json!({"name": "Renamed", "default_wrapup_reason": "spam"}),
            "invalid_input",
        ),
        (
            json!({"wrapup_reasons": [{"code": "x", "label": "X"}], "default_wrapup_reason": "late"}),
            "invalid_input",
        ),
        (
            json!({"idle_codes": [{"code": "a", "label": "A"}, {"code": "a", "label": "B"}]}),
            "invalid_input",
        ),
        (json!({"idle_codes": [{"code": "a", "label": ""}]}), "invalid_input"),
        (json!({"wrapup_reasons": [{"code": "x"}]}), "invalid_json"),
        (json!({"idle_codes": "break"}), "invalid_json"),
    ] {
        let a = s
            .call("PATCH", "/api/v1/tenants/acme", Some(OPERATOR), Some(body.clone()))
            .await;
        assert_eq!((a.status, a.code()), (400, code), "{body}: {}", a.body);
    }
    let after = s.get("/api/v1/tenants/acme", OPERATOR).await.expect(200);
    assert_eq!(before, after);
    assert_eq!(
        codes_of(&s.get("/api/v1/wrapup-reasons", &ann).await.expect(200)),
        ["late"]
    );
    let refused = s
        .call(
            "PATCH",
            "/api/v1/tenants/default",
            Some(OPERATOR),
            Some(json!({"idle_codes": [{"code": "x", "label": "X"}]})),
        )
        .await;
    refused.expect_error(409, "invalid_state");
    // Null for every field: the config's lists again.
    let back = json!({"wrapup_reasons": null, "default_wrapup_reason": null});
    let reset = s
        .call("PATCH", "/api/v1/tenants/acme", Some(OPERATOR), Some(back))
        .await
        .expect(200);
    assert_eq!(codes_of(&reset["wrapup_reasons"]), CONFIG_REASONS, "{reset}");
    assert_eq!(reset["default_wrapup_reason"], "other", "{reset}");
    assert_eq!(
        codes_of(&s.get("/api/v1/wrapup-reasons", &ann).await.expect(200)),
        CONFIG_REASONS
    );
}

/// A conversation of `customer` on entry point `web` of the tenant of `admin`, accepted and
/// ended on `desk`: answers its id and the desktop's `wrapup_required`.
async fn handled(
    s: &TestServer,
    admin: &str,
    desk: &mut common::Desktop,
    customer: &str,
) -> (String, serde_json::Value) {
    let conv = s
        .post(
            "/api/v1/conversations",
            admin,
            json!({"entry_point": "web", "customer": {"id": customer, "name": "C"}, "text": "Hi"}),
        )
        .await
        .expect(201);
    let cid = conv["id"].as_str().expect("id").to_string();
    desk.wait_for_in("offer", &cid).await;
    let accepted = desk.command(json!({"type": "accept", "conversation_id": cid})).await;
    assert_eq!(accepted["ok"], true, "{accepted}");
    let ended = desk.command(json!({"type": "end", "conversation_id": cid})).await;
    assert_eq!(ended["ok"], true, "{ended}");
    let required = desk.wait_for_in("wrapup_required", &cid).await;
    (cid, required)
}

/// Creates tenant `id` and answers its admin token.
async fn tenant(s: &TestServer, id: &str) -> String {
    let t = s
        .post("/api/v1/tenants", OPERATOR, json!({"id": id, "name": id}))
        .await
        .expect(201);
    t["admin_token"].as_str().expect("admin token").to_string()
}

/// In the tenant of `admin`: queue `q1`, entry point `web` to it, and agent `a1` named
/// `name` serving it; answers the agent's token.
async fn floor(s: &TestServer, admin: &str, name: &str) -> String {
    s.post("/api/v1/queues", admin, json!({"id": "q1", "name": "Queue One"}))
        .await
        .expect(201);
    s.post(
        "/api/v1/entry-points",
        admin,
        json!({"id": "web", "name": "Web", "queue": "q1"}),
    )
    .await
    .expect(201);
    let a = s
        .post(
            "/api/v1/agents",
            admin,
            json!({"id": "a1", "name": name, "queues": ["q1"]}),
        )
        .await
        .expect(201);
    a["token"].as_str().expect("token").to_string()
}

#[actix_rt::test]
async fn two_tenants_with_the_same_ids_work_side_by_side_and_never_see_each_other() {
    let s = with_operator().await;
    let acme = tenant(&s, "acme").await;
    let beta = tenant(&s, "beta").await;
    let ann = floor(&s, &acme, "Ann of Acme").await;
    let bob = floor(&s, &beta, "Bob of Beta").await;
    // The same ids in the default tenant too.
    s.queue("q1", "Default One").await;
    let dan = s.agent("a1", "Dan of Default", &["q1"]).await;

    // Each admin reads its own tenant only.
    let queues = s.get("/api/v1/queues", &acme).await.expect(200);
    let names: Vec<&str> = queues
        .as_array()
        .expect("queues")
        .iter()
        .filter_map(|q| q["name"].as_str())
        .collect();
    assert_eq!(names, ["Queue One"], "{queues}");
    assert_eq!(
        s.get("/api/v1/agents/a1", &beta).await.expect(200)["name"],
        "Bob of Beta"
    );
    assert_eq!(
        s.get("/api/v1/agents/a1", ADMIN).await.expect(200)["name"],
        "Dan of Default"
    );

    // A conversation in acme is offered to acme's a1 and nobody else.
    let mut d_ann = s.available_desktop(&ann).await;
    let mut d_bob = s.available_desktop(&bob).await;
    let mut d_dan = s.available_desktop(&dan).await;
    let conv = s
        .post(
            "/api/v1/conversations",
            &acme,
            json!({"entry_point": "web", "customer": {"id": "c1", "name": "Cid"}, "text": "Hello Acme"}),
        )
        .await
        .expect(201);
    let cid = conv["id"].as_str().expect("id").to_string();
    let offer = d_ann.wait_for("offer").await;
    assert_eq!(offer["conversation_id"], cid.as_str());
    let accepted = d_ann.command(json!({"type": "accept", "conversation_id": cid})).await;
    assert_eq!(accepted["ok"], true, "{accepted}");

    // Every token of another tenant gets 404 for it, as for an id that does not exist.
    let path = format!("/api/v1/conversations/{cid}");
    for token in [beta.as_str(), ADMIN, &bob, &dan] {
        s.get(&path, token).await.expect_error(404, "unknown_conversation");
    }
    for agent in [&bob, &dan] {
        let reply = s.post_empty(&format!("{path}/accept"), agent).await;
        reply.expect_error(404, "unknown_conversation");
    }
    assert_eq!(s.get(&path, &acme).await.expect(200)["id"], cid.as_str());
    // Nothing reached the other tenants' desktops: each has its own conversation next.
    s.post(
        "/api/v1/entry-points",
        ADMIN,
        json!({"id": "web", "name": "Web", "queue": "q1"}),
    )
    .await
    .expect(201);
    for (admin, d) in [(beta.as_str(), &mut d_bob), (ADMIN, &mut d_dan)] {
        let c = s
            .post(
                "/api/v1/conversations",
                admin,
                json!({"entry_point": "web", "customer": {"id": "c9", "name": "Cy"}, "text": "Hi"}),
            )
            .await
            .expect(201);
        let next = d.wait_for("offer").await;
        assert_eq!(next["conversation_id"], c["id"], "the first offer is its own tenant's");
    }

    // A supervisor of acme sees acme's floor only.
    let sup = s
        .post("/api/v1/supervisors", &acme, json!({"id": "s1", "name": "Sue"}))
        .await
        .expect(201);
    let (_socket, snap) = common::connect_supervisor(&s.client, &s.base, sup["token"].as_str().expect("token")).await;
    let agents: Vec<&str> = snap["agents"]
        .as_array()
        .expect("agents")
        .iter()
        .filter_map(|a| a["name"].as_str())
        .collect();
    assert_eq!(agents, ["Ann of Acme"], "{snap}");

    // A tenant with an open conversation is not deleted.
    s.call("DELETE", "/api/v1/tenants/acme", Some(OPERATOR), None)
        .await
        .expect_error(409, "tenant_not_empty");
    assert_eq!(
        s.get("/api/v1/agents/a1", &acme).await.expect(200)["name"],
        "Ann of Acme",
        "still there"
    );
}

#[actix_rt::test]
async fn sign_in_names_the_tenant_and_an_unknown_one_is_a_wrong_password() {
    let s = with_operator().await;
    let acme = tenant(&s, "acme").await;
    floor(&s, &acme, "Ann of Acme").await;
    let password = "correct horse battery staple";
    s.put("/api/v1/agents/a1/password", &acme, json!({"password": password}))
        .await
        .expect(204);
    let login = |tenant: Option<&str>| {
        let mut body = json!({"id": "a1", "password": password});
        if let Some(t) = tenant {
            body["tenant"] = json!(t);
        }
        s.call("POST", "/api/v1/login", None, Some(body))
    };
    let session = login(Some("acme")).await.expect(200);
    let token = session["token"].as_str().expect("session token");
    assert_eq!(
        s.get("/api/v1/agents/me", token).await.expect(200)["name"],
        "Ann of Acme"
    );
    // Default has no a1; an unknown tenant answers as a wrong password does.
    login(None).await.expect_error(401, "invalid_credentials");
    login(Some("nope")).await.expect_error(401, "invalid_credentials");
    // A reissued tenant admin token ends the old one.
    s.post_empty("/api/v1/tenants/acme/admin-token", OPERATOR)
        .await
        .expect(200);
    s.get("/api/v1/queues", &acme).await.expect_error(401, "unauthorized");
}

#[actix_rt::test]
async fn a_tenants_limits_refuse_one_more_and_keep_what_it_holds() {
    let s = with_operator().await;
    let acme = tenant(&s, "acme").await;
    floor(&s, &acme, "Ann").await;
    let limits = json!({"limits": {"max_agents": 1, "max_queues": 1, "max_open_conversations": 1}});
    s.call("PATCH", "/api/v1/tenants/acme", Some(OPERATOR), Some(limits))
        .await
        .expect(200);
    let more = s
        .post(
            "/api/v1/agents",
            &acme,
            json!({"id": "a2", "name": "Al", "queues": ["q1"]}),
        )
        .await;
    more.expect_error(409, "tenant_limit");
    assert!(
        more.body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("max_agents")),
        "{}",
        more.body
    );
    s.post("/api/v1/queues", &acme, json!({"id": "q2", "name": "Two"}))
        .await
        .expect_error(409, "tenant_limit");
    let open = |customer: &'static str| {
        s.post(
            "/api/v1/conversations",
            &acme,
            json!({"entry_point": "web", "customer": {"id": customer, "name": "C"}, "text": "Hi"}),
        )
    };
    open("c1").await.expect(201);
    // The same customer writes again: it joins its open conversation, no new one.
    open("c1").await.expect(201);
    open("c2").await.expect_error(409, "tenant_limit");
    // Default is not bound by acme's limits.
    s.post("/api/v1/agents", ADMIN, json!({"id": "a2", "name": "Al", "queues": []}))
        .await
        .expect(201);
    // Lifted: one more is taken.
    s.call(
        "PATCH",
        "/api/v1/tenants/acme",
        Some(OPERATOR),
        Some(json!({"limits": {}})),
    )
    .await
    .expect(200);
    open("c2").await.expect(201);

    // /metrics: per-tenant figures, and acme's queue apart from any other tenant's q1.
    let text = s.call("GET", "/metrics", None, None).await.expect(200);
    let text = text.as_str().expect("the metrics text");
    for line in [
        "switchboard_tenants 2",
        "switchboard_tenant_conversations_open{tenant=\"acme\"} 2",
        "switchboard_tenant_conversations_waiting{tenant=\"acme\"} 2",
        "switchboard_tenant_conversations_open{tenant=\"default\"} 0",
    ] {
        assert!(text.lines().any(|l| l == line), "no `{line}` in /metrics");
    }
    // The queue's figure follows the commit (its queue actor publishes it).
    let want = "switchboard_queue_waiting{queue=\"acme/q1\"} 2";
    let deadline = std::time::Instant::now() + common::WAIT;
    loop {
        let t = s.call("GET", "/metrics", None, None).await.body;
        if t.as_str().is_some_and(|t| t.lines().any(|l| l == want)) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no `{want}` in /metrics");
        actix_rt::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[actix_rt::test]
async fn a_messenger_event_reaches_the_tenant_of_its_page_only() {
    let fake = FakeGraph::start().await.expect("fake graph");
    let url = fake.url();
    let s = TestServer::with(move |c| {
        messenger_common::messenger_config(c, &url);
        c.api.operator_token = OPERATOR.into();
    })
    .await;
    let acme = tenant(&s, "acme").await;
    let page = "200000000000002";
    s.post("/api/v1/queues", &acme, json!({"id": "q1", "name": "Queue One"}))
        .await
        .expect(201);
    let ep = json!({"id": "fb", "name": "Acme on Facebook", "queue": "q1", "page_id": page, "page_access_token": "EAAB-acme"});
    s.post("/api/v1/entry-points", &acme, ep).await.expect(201);
    let a = s
        .post(
            "/api/v1/agents",
            &acme,
            json!({"id": "a1", "name": "Ann", "queues": ["q1"]}),
        )
        .await
        .expect(201);
    let mut ann = s.available_desktop(a["token"].as_str().expect("token")).await;

    // A page belongs to one entry point in one tenant, whichever asks.
    let taken = json!({"id": "fb2", "name": "Again", "queue": "support", "page_id": page});
    s.post("/api/v1/entry-points", ADMIN, taken)
        .await
        .expect_error(409, "page_in_use");
    let theirs = json!({"id": "fb3", "name": "Theirs", "queue": "q1", "page_id": messenger_common::PAGE_ID});
    s.post("/api/v1/entry-points", &acme, theirs)
        .await
        .expect_error(409, "page_in_use");

    // The customer's name comes from the User Profile API with acme's page token.
    fake.profile(messenger_common::PSID, "Jane", "Doe");
    let mut event = messenger_common::text(messenger_common::PSID, "m-acme-1", "Hello Acme");
    event["recipient"]["id"] = json!(page);
    messenger_common::deliver(
        &s.client,
        &s.base,
        &messenger_common::page_event(&[(page, vec![event])]),
    )
    .await;
    let offer = ann.wait_for("offer").await;
    let cid = offer["conversation_id"].as_str().expect("conversation id").to_string();
    let c = s.get(&format!("/api/v1/conversations/{cid}"), &acme).await.expect(200);
    assert_eq!(c["source_page"], "Acme on Facebook", "{c}");
    // The look-up may outlast `profile_timeout_ms` on a busy machine: its name follows.
    let deadline = std::time::Instant::now() + common::WAIT;
    let mut c = c;
    while c["customer"]["name"] != "Jane Doe" && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        c = s.get(&format!("/api/v1/conversations/{cid}"), &acme).await.expect(200);
    }
    assert_eq!(c["customer"]["name"], "Jane Doe", "{c}");
    let asked: Vec<_> = fake
        .received()
        .into_iter()
        .filter(|r| r.method == "GET" && r.path.ends_with(messenger_common::PSID))
        .collect();
    assert!(!asked.is_empty());
    assert!(
        asked
            .iter()
            .all(|r| r.query.get("access_token").map(String::as_str) == Some("EAAB-acme")),
        "{asked:?}"
    );
    // Default never saw it.
    s.get(&format!("/api/v1/conversations/{cid}"), ADMIN)
        .await
        .expect_error(404, "unknown_conversation");
}

#[test]
fn a_tenant_survives_a_kill_and_comes_back_from_its_own_backup() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = dir.path().join("data");
    let env = [("SWITCHBOARD_API__OPERATOR_TOKEN", OPERATOR)];
    let rt = actix_rt::System::new();
    rt.block_on(async {
        let client = awc::Client::builder().timeout(common::WAIT).finish();
        let call = |base: &str, method: &str, path: &str, token: &str, body: Option<serde_json::Value>| {
            let url = format!("{base}{path}");
            let client = client.clone();
            let (token, method) = (token.to_string(), method.to_string());
            async move { common::request(&client, &url, &method, Some(&token), body).await }
        };
        let p = Process::start(&store, &env);
        let t = call(
            &p.base,
            "POST",
            "/api/v1/tenants",
            OPERATOR,
            Some(json!({"id": "acme", "name": "Acme"})),
        )
        .await;
        let acme = t.body["admin_token"].as_str().expect("admin token").to_string();
        call(
            &p.base,
            "POST",
            "/api/v1/queues",
            &acme,
            Some(json!({"id": "q1", "name": "One"})),
        )
        .await;
        let ep = json!({"id": "web", "name": "Web", "queue": "q1"});
        call(&p.base, "POST", "/api/v1/entry-points", &acme, Some(ep)).await;
        let body = json!({"entry_point": "web", "customer": {"id": "c1", "name": "Cid"}, "text": "Kept across a kill"});
        let conv = call(&p.base, "POST", "/api/v1/conversations", &acme, Some(body)).await;
        assert_eq!(conv.status, 201, "{}", conv.body);
        let path = format!("/api/v1/conversations/{}", conv.body["id"].as_str().expect("id"));
        p.kill();

        let p = Process::start(&store, &env);
        let after = call(&p.base, "GET", &path, &acme, None).await;
        assert_eq!(after.status, 200, "{}", after.body);
        assert_eq!(common::texts(&after.body), ["Kept across a kill"]);
        // The tenant's own backup, then its directory restored from it.
        let mut res = client
            .post(format!("{}/api/v1/tenants/acme/backup", p.base))
            .insert_header(("Authorization", format!("Bearer {OPERATOR}")))
            .send()
            .await
            .expect("backup");
        assert_eq!(res.status().as_u16(), 200);
        let bytes = res.body().limit(64 << 20).await.expect("backup body");
        let file = dir.path().join("acme.backup");
        std::fs::write(&file, &bytes).expect("write the backup");
        // A conversation after the backup, which the restore takes back.
        let body = json!({"entry_point": "web", "customer": {"id": "c2", "name": "Dee"}, "text": "After the backup"});
        let later = call(&p.base, "POST", "/api/v1/conversations", &acme, Some(body)).await;
        assert_eq!(later.status, 201, "{}", later.body);
        let later_path = format!("/api/v1/conversations/{}", later.body["id"].as_str().expect("id"));
        p.kill();
        let restore = |replace: bool| {
            let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_switchboard"));
            cmd.args(["restore", "--tenant", "acme", "--from"])
                .arg(&file)
                .arg("--store-path")
                .arg(dir.path().join("data"));
            if replace {
                cmd.arg("--replace");
            }
            cmd.output().expect("run switchboard restore")
        };
        // The tenant has records: only --replace writes over them, and the refusal
        // changes nothing.
        let refused = restore(false);
        assert!(!refused.status.success());
        assert!(
            String::from_utf8_lossy(&refused.stderr).contains("--replace"),
            "{}",
            String::from_utf8_lossy(&refused.stderr)
        );
        let p = Process::start(&store, &env);
        let kept = call(&p.base, "GET", &later_path, &acme, None).await;
        assert_eq!(kept.status, 200, "{}", kept.body);
        p.kill();
        let out = restore(true);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let p = Process::start(&store, &env);
        let gone = call(&p.base, "GET", &later_path, &acme, None).await;
        assert_eq!(gone.status, 404, "{}", gone.body);
        let restored = call(&p.base, "GET", &path, &acme, None).await;
        assert_eq!(restored.status, 200, "{}", restored.body);
        assert_eq!(common::texts(&restored.body), ["Kept across a kill"]);
        p.kill();
    });
}

/// A plausible body for an operation on `path` (the answer must turn on the object, not
/// on a malformed body).
fn body_for(method: &str, path: &str) -> Option<serde_json::Value> {
    let last = path.rsplit('/').next().unwrap_or_default();
    Some(match (method, last) {
        ("post", "messages") | ("post", "notes") => json!({"text": "Who is there?"}),
        ("post", "typing") => json!({"on": true}),
        ("patch", _) if path.starts_with("/api/v1/canned-responses") => json!({"text": "Stolen"}),
        ("post", "transfer") => json!({"queue": "bq"}),
        ("post", "conference") => json!({"agent": "ba"}),
        ("post", "wrapup") => json!({"reason": "resolved"}),
        ("put", "priority") => json!({"priority": 5}),
        ("put", "skills") => json!({"skills": {"english": 3}}),
        ("put", "password") => json!({"password": "correct horse battery staple"}),
        ("put", "state") => json!({"state": "available"}),
        ("patch", _) => json!({"page_access_token": "EAAB-stolen"}),
        _ => return None,
    })
}

/// Every path of the OpenAPI description that names an object, with every kind of token
/// of tenant beta: an object of tenant acme answers exactly as an id no tenant has, and
/// nothing of acme changes.
#[actix_rt::test]
async fn a_foreign_token_cannot_tell_another_tenants_objects_from_none_on_any_path() {
    let s = with_operator().await;
    let acme = tenant(&s, "acme").await;
    let beta = tenant(&s, "beta").await;
    s.post("/api/v1/queues", &acme, json!({"id": "aq", "name": "Acme Q"}))
        .await
        .expect(201);
    s.post(
        "/api/v1/entry-points",
        &acme,
        json!({"id": "aep", "name": "Acme Web", "queue": "aq"}),
    )
    .await
    .expect(201);
    let ann = s
        .post(
            "/api/v1/agents",
            &acme,
            json!({"id": "aa", "name": "Ann", "queues": ["aq"]}),
        )
        .await
        .expect(201)["token"]
        .as_str()
        .expect("token")
        .to_string();
    s.post("/api/v1/supervisors", &acme, json!({"id": "as", "name": "Sue"}))
        .await
        .expect(201);
    let mut desk = s.available_desktop(&ann).await;
    let conv = s
        .post(
            "/api/v1/conversations",
            &acme,
            json!({"entry_point": "aep", "customer": {"id": "c1", "name": "Cid"}, "text": "Acme only"}),
        )
        .await
        .expect(201);
    let cid = conv["id"].as_str().expect("id").to_string();
    desk.wait_for("offer").await;
    let before = s.get(&format!("/api/v1/conversations/{cid}"), &acme).await.expect(200);
    s.post(
        "/api/v1/canned-responses",
        &acme,
        json!({"id": "ac", "code": "hi", "text": "Hi {{customer.first_name}}"}),
    )
    .await
    .expect(201);
    // A public address (nothing here transfers, so nothing is ever sent to it).
    s.post(
        "/api/v1/webhooks",
        &acme,
        json!({"id": "aw", "url": "http://93.184.216.34/hooks", "events": ["conversation.transferred"], "secret": "acme-secret-0123456789"}),
    )
    .await
    .expect(201);

    s.post("/api/v1/queues", &beta, json!({"id": "bq", "name": "Beta Q"}))
        .await
        .expect(201);
    let ba = s
        .post(
            "/api/v1/agents",
            &beta,
            json!({"id": "ba", "name": "Bob", "queues": ["bq"]}),
        )
        .await
        .expect(201)["token"]
        .as_str()
        .expect("token")
        .to_string();
    let bs = s
        .post("/api/v1/supervisors", &beta, json!({"id": "bs", "name": "Bea"}))
        .await
        .expect(201)["token"]
        .as_str()
        .expect("token")
        .to_string();

    let doc = s.call("GET", "/api/v1/openapi.json", None, None).await.expect(200);
    let (mut walked, mut not_found) = (0, 0);
    for (path, ops) in doc["paths"].as_object().expect("paths") {
        if !path.contains("{id}") || path.starts_with("/api/v1/tenants") {
            continue;
        }
        let acme_id = match path.split('/').nth(3) {
            Some("queues") => "aq",
            Some("entry-points") => "aep",
            Some("agents") => "aa",
            Some("supervisors") => "as",
            Some("conversations") => cid.as_str(),
            Some("canned-responses") => "ac",
            Some("webhooks") => "aw",
            other => panic!("a path with an id of an unknown kind: {path} ({other:?})"),
        };
        for method in ops.as_object().expect("operations").keys() {
            let verb = method.to_uppercase();
            for token in [&beta, &ba, &bs] {
                let theirs = s
                    .call(
                        &verb,
                        &path.replace("{id}", acme_id),
                        Some(token),
                        body_for(method, path),
                    )
                    .await;
                let nobodys = s
                    .call(
                        &verb,
                        &path.replace("{id}", "zz-none"),
                        Some(token),
                        body_for(method, path),
                    )
                    .await;
                assert!(
                    theirs.status >= 400 && theirs.status != 405,
                    "{method} {path}: {} {}",
                    theirs.status,
                    theirs.body
                );
                assert_eq!(
                    (theirs.status, theirs.code()),
                    (nobodys.status, nobodys.code()),
                    "{method} {path}: acme's object answers unlike none: {} / {}",
                    theirs.body,
                    nobodys.body
                );
                walked += 1;
                not_found += usize::from(theirs.status == 404);
            }
        }
    }
    assert!(walked >= 60, "walked {walked} operations");
    // Most answers looked the object up (the rest are refused by rights first).
    assert!(not_found >= 20, "{not_found} of {walked} answers were 404");
    // The desktop of beta's agent cannot take acme's conversation either.
    let mut bob = s.available_desktop(&ba).await;
    let reply = bob.command(json!({"type": "accept", "conversation_id": cid})).await;
    assert_eq!(reply["error"]["code"], "unknown_conversation", "{reply}");
    let after = s.get(&format!("/api/v1/conversations/{cid}"), &acme).await.expect(200);
    assert_eq!(before["messages"], after["messages"]);
    assert_eq!(before["state"], after["state"]);
    assert_eq!(s.get("/api/v1/agents/aa", &acme).await.expect(200)["name"], "Ann");
    let canned = s.get("/api/v1/canned-responses/ac", &acme).await.expect(200);
    assert_eq!(
        canned["text"], "Hi {{customer.first_name}}",
        "acme's response is untouched"
    );
    let listed = s.get("/api/v1/canned-responses", &beta).await.expect(200);
    assert_eq!(listed, json!([]), "beta lists none of acme's");
}

#[actix_rt::test]
async fn the_demo_customer_page_chats_with_the_tenant_it_names() {
    let s = with_operator().await;
    let acme = tenant(&s, "acme").await;
    s.post("/api/v1/queues", &acme, json!({"id": "q1", "name": "Acme Support"}))
        .await
        .expect(201);
    let ep = json!({"id": s.config.demo.entry_point, "name": "Acme Demo", "queue": "q1"});
    s.post("/api/v1/entry-points", &acme, ep).await.expect(201);
    let key = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    let write = |tenant: Option<&'static str>| {
        let mut req = s
            .client
            .post(format!("{}/demo/api/messages", s.base))
            .insert_header(("Authorization", format!("Bearer {key}")));
        if let Some(t) = tenant {
            req = req.insert_header(("X-Switchboard-Tenant", t));
        }
        async move {
            let mut res = req
                .send_json(&json!({"name": "Cid", "text": "Hello from the demo page"}))
                .await
                .expect("send");
            let body: serde_json::Value = res.json().await.unwrap_or_default();
            (res.status().as_u16(), body)
        }
    };
    let (status, view) = write(Some("acme")).await;
    assert_eq!(status, 201, "{view}");
    let cid = view["id"].as_str().expect("conversation id").to_string();
    let c = s.get(&format!("/api/v1/conversations/{cid}"), &acme).await.expect(200);
    assert_eq!(c["source_page"], "Acme Demo");
    assert_eq!(c["queue"], "q1");
    // Default's demo conversation is another one (its own entry point and queue).
    let (status, theirs) = write(None).await;
    assert_eq!(status, 201, "{theirs}");
    let d = s
        .get(
            &format!("/api/v1/conversations/{}", theirs["id"].as_str().expect("id")),
            ADMIN,
        )
        .await
        .expect(200);
    assert_ne!(d["source_page"], "Acme Demo");
    let (status, body) = write(Some("nowhere")).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("not_found")),
        "{body}"
    );
}

/// Three tenants with the same ids, a seeded random interleaving of customers writing,
/// agents accepting, ending and wrapping up in all of them at once: every offer and event
/// a desktop gets is of its own tenant's customers, and each tenant's figures count its
/// own conversations only (../shared/SPEC.md: tenants share nothing).
#[actix_rt::test]
async fn random_work_in_three_tenants_never_crosses_between_them() {
    use rand::{Rng, SeedableRng};
    let seed: u64 = std::env::var("TENANTS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2323);
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let s = with_operator().await;
    let names = ["acme", "beta", "gamma"];
    let mut admins = Vec::new();
    let mut desks = Vec::new();
    for t in names {
        let admin = tenant(&s, t).await;
        s.post("/api/v1/queues", &admin, json!({"id": "q1", "name": "Q"}))
            .await
            .expect(201);
        s.post(
            "/api/v1/entry-points",
            &admin,
            json!({"id": "web", "name": "Web", "queue": "q1"}),
        )
        .await
        .expect(201);
        let mut tenant_desks = Vec::new();
        for a in ["a1", "a2"] {
            let body = json!({"id": a, "name": format!("{t} {a}"), "queues": ["q1"], "capacity": 3});
            let token = s.post("/api/v1/agents", &admin, body).await.expect(201)["token"]
                .as_str()
                .expect("token")
                .to_string();
            tenant_desks.push(s.available_desktop(&token).await);
        }
        admins.push(admin);
        desks.push(tenant_desks);
    }
    let mut opened = [0usize; 3];
    let mut ended = [0usize; 3];
    for step in 0..60 {
        let t = rng.gen_range(0..3);
        let customer = format!("{}-customer-{step}", names[t]);
        let body = json!({"entry_point": "web", "customer": {"id": customer, "name": customer}, "text": "hi"});
        let a = s.post("/api/v1/conversations", &admins[t], body).await;
        // Every agent of the tenant may be full: the conversation waits, never crosses.
        assert_eq!(a.status, 201, "seed {seed}, step {step}: {}", a.body);
        opened[t] += 1;
        // Each desktop of every tenant takes what it was offered, and sometimes ends one.
        for (ti, tenant_desks) in desks.iter_mut().enumerate() {
            for d in tenant_desks.iter_mut() {
                while let Some(frame) = d.within(std::time::Duration::from_millis(20)).await {
                    let ty = frame["type"].as_str().unwrap_or_default();
                    if ty != "offer" {
                        if let Some(name) = frame.pointer("/conversation/customer/name").and_then(|n| n.as_str()) {
                            assert!(name.starts_with(names[ti]), "seed {seed}: {} got {frame}", names[ti]);
                        }
                        continue;
                    }
                    let name = frame["customer"]["name"].as_str().unwrap_or_default();
                    assert!(
                        name.starts_with(names[ti]),
                        "seed {seed}: a desktop of {} was offered {frame}",
                        names[ti]
                    );
                    let cid = frame["conversation_id"].as_str().expect("id").to_string();
                    let reply = d.command(json!({"type": "accept", "conversation_id": cid})).await;
                    if reply["ok"] != true {
                        continue;
                    }
                    if rng.gen_bool(0.5) {
                        let end = d.command(json!({"type": "end", "conversation_id": cid})).await;
                        assert_eq!(end["ok"], true, "{end}");
                        let w = d
                            .command(json!({"type": "wrapup", "conversation_id": cid, "reason": "resolved"}))
                            .await;
                        assert_eq!(w["ok"], true, "{w}");
                        ended[ti] += 1;
                    }
                }
            }
        }
    }
    // Each tenant's figures are its own: what it opened and has not finished.
    let list = s.get("/api/v1/tenants", OPERATOR).await.expect(200);
    for (ti, t) in names.iter().enumerate() {
        let row = list
            .as_array()
            .expect("tenants")
            .iter()
            .find(|r| r["id"] == *t)
            .expect("listed");
        let open = row["counts"]["open_conversations"].as_u64().expect("count") as usize;
        assert_eq!(open, opened[ti] - ended[ti], "seed {seed}: {t}: {row}");
    }
    assert_eq!(
        list[0]["counts"]["open_conversations"], 0,
        "default took nothing: {list}"
    );
    assert!(
        opened.iter().all(|&n| n > 0),
        "seed {seed}: every tenant worked: {opened:?}"
    );
    assert!(
        ended.iter().sum::<usize>() > 0,
        "seed {seed}: conversations were ended: {ended:?}"
    );
}

/// The deployment's backup (`/admin/backup` with `default`'s admin token, or with the
/// operator token) holds every tenant and the registry: restored into an empty directory
/// and started there, tenant acme answers its admin token with its conversation.
#[test]
fn the_deployment_backup_brings_back_every_tenant_and_the_registry() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = dir.path().join("data");
    let env = [("SWITCHBOARD_API__OPERATOR_TOKEN", OPERATOR)];
    let rt = actix_rt::System::new();
    rt.block_on(async {
        let client = awc::Client::builder().timeout(common::WAIT).finish();
        let call = |base: &str, method: &str, path: &str, token: &str, body: Option<serde_json::Value>| {
            let url = format!("{base}{path}");
            let client = client.clone();
            let (token, method) = (token.to_string(), method.to_string());
            async move { common::request(&client, &url, &method, Some(&token), body).await }
        };
        let p = Process::start(&store, &env);
        let t = call(
            &p.base,
            "POST",
            "/api/v1/tenants",
            OPERATOR,
            Some(json!({"id": "acme", "name": "Acme"})),
        )
        .await;
        let acme = t.body["admin_token"].as_str().expect("admin token").to_string();
        call(&p.base, "POST", "/api/v1/queues", &acme, Some(json!({"id": "q1", "name": "One"}))).await;
        let ep = json!({"id": "web", "name": "Web", "queue": "q1"});
        call(&p.base, "POST", "/api/v1/entry-points", &acme, Some(ep)).await;
        let body = json!({"entry_point": "web", "customer": {"id": "c1", "name": "Cid"}, "text": "In the deployment's backup"});
        let conv = call(&p.base, "POST", "/api/v1/conversations", &acme, Some(body)).await;
        assert_eq!(conv.status, 201, "{}", conv.body);
        let path = format!("/api/v1/conversations/{}", conv.body["id"].as_str().expect("id"));
        let backup = |token: &str| {
            let req = client
                .post(format!("{}/api/v1/admin/backup", p.base))
                .insert_header(("Authorization", format!("Bearer {token}")));
            async move {
                let mut res = req.send().await.expect("backup");
                assert_eq!(res.status().as_u16(), 200);
                res.body().limit(64 << 20).await.expect("backup body")
            }
        };
        let deployment = backup(ADMIN).await;
        let by_operator = backup(OPERATOR).await;
        let acme_only = backup(&acme).await;
        assert!(acme_only.len() < deployment.len(), "a tenant's admin gets its tenant's records only");
        p.kill();
        for (name, bytes) in [("admin", &deployment), ("operator", &by_operator)] {
            let file = dir.path().join(format!("{name}.backup"));
            std::fs::write(&file, bytes).expect("write the backup");
            let copy = dir.path().join(format!("copy-{name}"));
            let out = std::process::Command::new(env!("CARGO_BIN_EXE_switchboard"))
                .args(["restore", "--from"])
                .arg(&file)
                .arg("--store-path")
                .arg(&copy)
                .output()
                .expect("run switchboard restore");
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            let p = Process::start(&copy, &env);
            let tenants = call(&p.base, "GET", "/api/v1/tenants", OPERATOR, None).await;
            assert_eq!(tenants.status, 200, "{}", tenants.body);
            assert!(tenants.body.to_string().contains("\"acme\""), "{}", tenants.body);
            let restored = call(&p.base, "GET", &path, &acme, None).await;
            assert_eq!(restored.status, 200, "{}", restored.body);
            assert_eq!(common::texts(&restored.body), ["In the deployment's backup"]);
            p.kill();
        }
    });
}

/// `switchboard_agents` is the deployment's: a tenant's agents add to it, and deleting the
/// tenant takes them out again, leaving every other tenant's (one process of its own, so
/// that no other test's server shares the figure).
#[test]
fn a_deleted_tenants_agents_leave_the_deployments_figure() {
    let dir = tempfile::tempdir().expect("temp dir");
    let env = [("SWITCHBOARD_API__OPERATOR_TOKEN", OPERATOR)];
    let rt = actix_rt::System::new();
    rt.block_on(async {
        let client = awc::Client::builder().timeout(common::WAIT).finish();
        let p = Process::start(&dir.path().join("data"), &env);
        let call = |method: &str, path: &str, token: &str, body: Option<serde_json::Value>| {
            let url = format!("{}{path}", p.base);
            let client = client.clone();
            let (token, method) = (token.to_string(), method.to_string());
            async move { common::request(&client, &url, &method, Some(&token), body).await }
        };
        let logged_out = || async {
            let m = call("GET", "/metrics", ADMIN, None).await;
            let text = m.body.as_str().unwrap_or_default().to_string();
            text.lines()
                .find_map(|l| l.strip_prefix("switchboard_agents{state=\"logged_out\"} "))
                .and_then(|v| v.trim().parse::<i64>().ok())
                .expect("switchboard_agents{state=\"logged_out\"}")
        };
        let add_agents = |token: String, ids: &'static [&'static str]| {
            let call = &call;
            async move {
                for id in ids {
                    let a = call(
                        "POST",
                        "/api/v1/agents",
                        &token,
                        Some(json!({"id": id, "name": id, "queues": []})),
                    )
                    .await;
                    assert_eq!(a.status, 201, "{}", a.body);
                }
            }
        };
        let before = logged_out().await;
        let t = call(
            "POST",
            "/api/v1/tenants",
            OPERATOR,
            Some(json!({"id": "acme", "name": "Acme"})),
        )
        .await;
        let acme = t.body["admin_token"].as_str().expect("admin token").to_string();
        let t = call(
            "POST",
            "/api/v1/tenants",
            OPERATOR,
            Some(json!({"id": "temp", "name": "Temp"})),
        )
        .await;
        let temp = t.body["admin_token"].as_str().expect("admin token").to_string();
        add_agents(acme, &["a1", "a2"]).await;
        add_agents(temp, &["a1", "a2", "a3"]).await;
        assert_eq!(logged_out().await, before + 5);
        let d = call("DELETE", "/api/v1/tenants/temp", OPERATOR, None).await;
        assert_eq!(d.status, 204, "{}", d.body);
        assert_eq!(
            logged_out().await,
            before + 2,
            "temp's three agents leave the figure, acme's stay"
        );
        p.kill();
    });
}
