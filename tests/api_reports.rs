//! Reports over HTTP (../shared/API.md "Reports and events out", docs/API-NOTES.md
//! "Reports"): the record of each complete conversation, its filters and pages, who may
//! read it, and a record that survives a kill -9 of the real binary exactly once.

use serde_json::{json, Value};

mod common;
use common::{Process, ProcessClient as Client, TestServer, ADMIN};

const OPERATOR: &str = "op-5b1e7c3a9d2f4e6a8c0b1d3f5a7c9e2b";
const RECORDS: &str = "/api/v1/reports/conversations";

fn conv(id: &str, action: &str) -> String {
    format!("/api/v1/conversations/{id}/{action}")
}

/// The ids of a page of records, in order.
fn ids(page: &Value) -> Vec<String> {
    page["records"]
        .as_array()
        .expect("records")
        .iter()
        .filter_map(|r| r["id"].as_str().map(String::from))
        .collect()
}

/// Ann answers Carol (accept, a reply, end, wrap-up): one `handled` record, only once the
/// wrap-up is in. Dave writes while nobody is free and leaves: `abandoned`, recorded at
/// once. The admin and a supervisor read both, filter them by outcome, agent, customer,
/// queue and time, and page through them; an agent may not; bad parameters are 400.
#[actix_rt::test]
async fn complete_conversations_are_recorded_filtered_and_paged() {
    let s = TestServer::start().await;
    let ann = s.agent("ann", "Ann", &["support"]).await;
    let sup = s.supervisor("sue", "Sue").await;
    let empty = s.get(RECORDS, ADMIN).await.expect(200);
    assert_eq!(empty, json!({"records": [], "next": null}));

    s.set_state(&ann, "available").await;
    let carol = s.customer_writes("carol", "Carol", "Hello").await;
    let carol_id = carol["id"].as_str().expect("id").to_string();
    s.post_empty(&conv(&carol_id, "accept"), &ann).await.expect(200);
    s.post(&conv(&carol_id, "messages"), &ann, json!({"text": "Hi Carol"}))
        .await
        .expect(201);
    s.post_empty(&conv(&carol_id, "end"), &ann).await.expect(200);
    // Ended, but Ann owes her wrap-up: not complete, no record yet.
    assert_eq!(ids(&s.get(RECORDS, ADMIN).await.expect(200)), Vec::<String>::new());
    s.post(&conv(&carol_id, "wrapup"), &ann, json!({"reason": "resolved"}))
        .await
        .expect(200);

    s.set_state(&ann, "idle").await;
    let dave = s.customer_writes("dave", "Dave", "Anyone there?").await;
    let dave_id = dave["id"].as_str().expect("id").to_string();
    // The admin ends it as the customer: Dave left before anyone accepted.
    s.post_empty(&conv(&dave_id, "end"), ADMIN).await.expect(200);

    let page = s.get(RECORDS, ADMIN).await.expect(200);
    assert_eq!(ids(&page), [carol_id.clone(), dave_id.clone()]);
    assert_eq!(page["next"], Value::Null);

    // Transcript search: whole words, any case, every word.
    for (q, want) in [
        ("carol", vec![carol_id.clone()]),
        ("HELLO%20carol", vec![carol_id.clone()]),
        ("anyone", vec![dave_id.clone()]),
        ("hello%20anyone", vec![]),
        ("car", vec![]),
    ] {
        let found = s.get(&format!("{RECORDS}?q={q}"), ADMIN).await.expect(200);
        assert_eq!(ids(&found), want, "q={q}");
    }
    let found = s
        .get(&format!("{RECORDS}?q=hello&outcome=abandoned"), ADMIN)
        .await
        .expect(200);
    assert_eq!(ids(&found), Vec::<String>::new(), "with the other filters");
    for bad in ["%21%21", "a%20b%20c%20d%20e%20f%20g%20h%20i"] {
        let e = s.get(&format!("{RECORDS}?q={bad}"), ADMIN).await.expect(400);
        assert_eq!(e["error"]["code"], "invalid_input", "q={bad}");
    }

    // CSV: every record, streamed, a header first; a spreadsheet formula is defused.
    let mut csv = s
        .client
        .get(format!("{}{RECORDS}", s.base))
        .insert_header(("Authorization", format!("Bearer {ADMIN}")))
        .insert_header(("Accept", "text/csv"))
        .send()
        .await
        .expect("csv");
    assert_eq!(csv.status().as_u16(), 200);
    assert!(csv
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/csv")));
    let bytes = csv.body().limit(1 << 20).await.expect("body");
    let body = String::from_utf8_lossy(&bytes).to_string();
    let lines: Vec<&str> = body.lines().collect();
    assert_eq!(lines.len(), 3, "{body}");
    assert!(
        lines[0].starts_with("id,channel,entry_point,source_page,customer_id,customer_name,queues,agents,arrived_at")
    );
    assert!(
        lines[1].starts_with(&format!("{carol_id},rest,demo-page,Demo Page,carol,Carol,support,ann,")),
        "{body}"
    );
    assert!(lines[1].contains(",agent_ended,handled,resolved,0,0,"), "{body}");
    assert!(lines[2].starts_with(&format!("{dave_id},rest,")), "{body}");
    assert!(lines[2].contains(",abandoned,"), "{body}");
    let r = &page["records"][0];
    assert_eq!(r["channel"], "rest");
    assert_eq!(r["entry_point"], "demo-page");
    assert_eq!(r["source_page"], "Demo Page");
    assert_eq!(r["customer"], json!({"id": "carol", "name": "Carol"}));
    assert_eq!(r["queues"], json!(["support"]));
    assert_eq!(r["outcome"], "handled");
    assert_eq!(r["ended_reason"], "agent_ended");
    assert_eq!(r["wrapup_reason"], "resolved");
    assert_eq!(r["rona_count"], 0);
    assert_eq!(r["transfers"], 0);
    assert_eq!(r["arrived_at"], carol["received_at"]);
    for t in [
        "first_offered_at",
        "accepted_at",
        "first_agent_reply_at",
        "ended_at",
        "wrapped_up_at",
    ] {
        assert!(r[t].is_string(), "{t}: {r}");
    }
    let agents = r["agents"].as_array().expect("agents");
    assert_eq!(agents.len(), 1);
    assert_eq!(agents[0]["agent"], "ann");
    assert_eq!(agents[0]["guest"], false);
    assert_eq!(agents[0]["wrapup_reason"], "resolved");
    assert!(agents[0]["handle_ms"].is_u64());
    let d = &page["records"][1];
    assert_eq!(d["outcome"], "abandoned");
    assert_eq!(d["ended_reason"], "customer_ended");
    assert_eq!(d["agents"], json!([]));
    for t in [
        "first_offered_at",
        "accepted_at",
        "first_agent_reply_at",
        "wrapped_up_at",
        "wrapup_reason",
    ] {
        assert_eq!(d[t], Value::Null, "{t}: {d}");
    }

    // A supervisor reads the same; an agent may not, nor anyone without a token.
    assert_eq!(s.get(RECORDS, &sup).await.expect(200), page);
    s.get(RECORDS, &ann).await.expect_error(403, "forbidden");
    s.call("GET", RECORDS, None, None)
        .await
        .expect_error(401, "unauthorized");

    // Filters.
    let only = |q: &str| format!("{RECORDS}?{q}");
    let rows: [(&str, Vec<&str>); 9] = [
        ("outcome=abandoned", vec![&dave_id]),
        ("outcome=handled", vec![&carol_id]),
        ("outcome=transferred", vec![]),
        ("agent=ann", vec![&carol_id]),
        ("customer=dave", vec![&dave_id]),
        ("queue=support", vec![&carol_id, &dave_id]),
        ("queue=elsewhere", vec![]),
        (
            "from=2000-01-01T00:00:00Z&to=2100-01-01T00:00:00%2B02:00",
            vec![&carol_id, &dave_id],
        ),
        ("from=2100-01-01T00:00:00Z", vec![]),
    ];
    for (q, want) in rows {
        assert_eq!(ids(&s.get(&only(q), ADMIN).await.expect(200)), want, "{q}");
    }
    let arrived = r["arrived_at"].as_str().expect("arrived_at").replace('+', "%2B");
    assert_eq!(
        ids(&s.get(&only(&format!("to={arrived}")), ADMIN).await.expect(200)),
        Vec::<String>::new(),
        "`to` is exclusive"
    );
    assert_eq!(
        ids(&s
            .get(&only(&format!("from={arrived}&customer=carol")), ADMIN)
            .await
            .expect(200)),
        [carol_id.as_str()],
        "`from` is inclusive"
    );

    // Pages.
    let first = s.get(&only("limit=1"), ADMIN).await.expect(200);
    assert_eq!(ids(&first), [carol_id.as_str()]);
    let next = first["next"].as_str().expect("a next page").to_string();
    let second = s.get(&only(&format!("limit=1&after={next}")), ADMIN).await.expect(200);
    assert_eq!(ids(&second), [dave_id.as_str()]);
    assert_eq!(second["next"], Value::Null);

    // Bad parameters.
    for q in [
        "from=yesterday",
        "to=1733400000000",
        "from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z",
        "outcome=lost",
        "agent=not%20an%20id",
        "limit=0",
        "limit=1001",
        "limit=many",
        "after=garbage",
        "q=%21%21",
        "sort=id",
    ] {
        s.get(&only(q), ADMIN).await.expect_error(400, "invalid_input");
    }
    // Only GET.
    s.post(RECORDS, ADMIN, json!({}))
        .await
        .expect_error(405, "method_not_allowed");
}

/// Another tenant's admin and supervisor read their own records only: none of
/// `default`'s, and `default` none of theirs.
#[actix_rt::test]
async fn records_stay_in_their_tenant() {
    let s = TestServer::with(|c| c.api.operator_token = OPERATOR.into()).await;
    let ann = s.agent("ann", "Ann", &["support"]).await;
    s.set_state(&ann, "idle").await;
    let carol = s.customer_writes("carol", "Carol", "Hello").await;
    let carol_id = carol["id"].as_str().expect("id").to_string();
    s.post_empty(&conv(&carol_id, "end"), ADMIN).await.expect(200);
    assert_eq!(ids(&s.get(RECORDS, ADMIN).await.expect(200)), [carol_id]);

    let acme = s
        .post("/api/v1/tenants", OPERATOR, json!({"id": "acme", "name": "Acme"}))
        .await
        .expect(201)["admin_token"]
        .as_str()
        .expect("admin token")
        .to_string();
    assert_eq!(ids(&s.get(RECORDS, &acme).await.expect(200)), Vec::<String>::new());
    s.post("/api/v1/queues", &acme, json!({"id": "sales", "name": "Sales"}))
        .await
        .expect(201);
    s.post(
        "/api/v1/entry-points",
        &acme,
        json!({"id": "shop", "name": "Shop", "queue": "sales"}),
    )
    .await
    .expect(201);
    let opened = s
        .post(
            "/api/v1/conversations",
            &acme,
            json!({"entry_point": "shop", "customer": {"id": "zed", "name": "Zed"}, "text": "Hi"}),
        )
        .await
        .expect(201);
    let zed = opened["id"].as_str().expect("id").to_string();
    s.post_empty(&conv(&zed, "end"), &acme).await.expect(200);
    let theirs = s.get(RECORDS, &acme).await.expect(200);
    assert_eq!(ids(&theirs), [zed]);
    assert_eq!(theirs["records"][0]["customer"]["id"], "zed");
    let ours = s.get(RECORDS, ADMIN).await.expect(200);
    assert_eq!(ours["records"].as_array().map(Vec::len), Some(1));
    assert_eq!(ours["records"][0]["customer"]["id"], "carol");
    s.get(RECORDS, OPERATOR).await.expect_error(403, "forbidden");
}

/// The real binary: Ann handles Carol's chat, wraps it up, and the server is killed
/// (SIGKILL) at once; a second chat is left ended but owing its wrap-up. After the
/// restart on the same store, the first record is there exactly once, the second
/// conversation has none until Ann's wrap-up, and then exactly one, also after a second
/// kill.
#[actix_rt::test]
async fn a_record_survives_a_kill_exactly_once() {
    let dir = tempfile::tempdir().expect("temp dir");
    let p = Process::start(dir.path(), &[]);
    let c = Client::new(&p.base);
    let ann = c
        .expect(
            "POST",
            "/api/v1/agents",
            ADMIN,
            Some(json!({"id": "ann", "name": "Ann", "queues": ["support"], "capacity": 2})),
            201,
        )
        .await["token"]
        .as_str()
        .expect("token")
        .to_string();
    c.expect(
        "PUT",
        "/api/v1/agents/me/state",
        &ann,
        Some(json!({"state": "available"})),
        200,
    )
    .await;
    let mut ids_opened = Vec::new();
    for who in ["carol", "erin"] {
        let opened = c
            .expect(
                "POST",
                "/api/v1/conversations",
                ADMIN,
                Some(json!({"entry_point": "demo-page", "customer": {"id": who, "name": who}, "text": "Hello"})),
                201,
            )
            .await;
        let id = opened["id"].as_str().expect("id").to_string();
        c.expect("POST", &conv(&id, "accept"), &ann, None, 200).await;
        c.expect("POST", &conv(&id, "end"), &ann, None, 200).await;
        ids_opened.push(id);
    }
    c.expect(
        "POST",
        &conv(&ids_opened[0], "wrapup"),
        &ann,
        Some(json!({"reason": "resolved"})),
        200,
    )
    .await;
    let before = c.expect("GET", RECORDS, ADMIN, None, 200).await;
    assert_eq!(ids(&before), [ids_opened[0].clone()]);
    let handled = |report: &Value| report["queues"][0]["total"]["answered"].clone();
    assert_eq!(handled(&c.expect("GET", &today("queues"), ADMIN, None, 200).await), 1);
    p.kill();

    let p = Process::start(dir.path(), &[]);
    let c = Client::new(&p.base);
    let after = c.expect("GET", RECORDS, ADMIN, None, 200).await;
    assert_eq!(after, before, "the record, once, unchanged");
    c.expect(
        "POST",
        &conv(&ids_opened[1], "wrapup"),
        &ann,
        Some(json!({"reason": "follow_up"})),
        200,
    )
    .await;
    let both = c.expect("GET", RECORDS, ADMIN, None, 200).await;
    assert_eq!(ids(&both), ids_opened);
    assert_eq!(
        handled(&c.expect("GET", &today("queues"), ADMIN, None, 200).await),
        2,
        "the figures of the first conversation counted once across the kill"
    );
    assert_eq!(both["records"][1]["wrapup_reason"], "follow_up");
    assert_eq!(both["records"][1]["outcome"], "handled");
    p.kill();

    let p = Process::start(dir.path(), &[]);
    let c = Client::new(&p.base);
    assert_eq!(c.expect("GET", RECORDS, ADMIN, None, 200).await, both);
    assert_eq!(handled(&c.expect("GET", &today("queues"), ADMIN, None, 200).await), 2);
    p.kill();
}

/// `/api/v1/reports/{kind}` over the day before and after now, by the day.
fn today(kind: &str) -> String {
    let now = chrono::Utc::now();
    let from = (now - chrono::Duration::days(1)).format("%Y-%m-%dT%H:%M:%SZ");
    let to = (now + chrono::Duration::days(1)).format("%Y-%m-%dT%H:%M:%SZ");
    format!("/api/v1/reports/{kind}?from={from}&to={to}&interval=1d")
}

/// Ann answers Carol and wraps up; Dave leaves unanswered. The queue report counts two
/// offered, one answered within the (patched) service level, one abandoned; Ann's report
/// counts her conversation and her time available, the state under way included. Bad
/// parameters are 400 and an agent may not read reports.
#[actix_rt::test]
async fn queue_and_agent_reports_add_up_what_happened() {
    let s = TestServer::start().await;
    let ann = s.agent("ann", "Ann", &["support"]).await;
    let q = s
        .call(
            "PATCH",
            "/api/v1/queues/support",
            Some(ADMIN),
            Some(json!({"service_level_ms": 30000})),
        )
        .await
        .expect(200);
    assert_eq!(q["service_level_ms"], 30000);
    s.set_state(&ann, "available").await;
    let carol = s.customer_writes("carol", "Carol", "Hello").await;
    let carol_id = carol["id"].as_str().expect("id").to_string();
    s.post_empty(&conv(&carol_id, "accept"), &ann).await.expect(200);
    s.post(&conv(&carol_id, "messages"), &ann, json!({"text": "Hi Carol"}))
        .await
        .expect(201);
    s.post_empty(&conv(&carol_id, "end"), &ann).await.expect(200);
    s.post(&conv(&carol_id, "wrapup"), &ann, json!({"reason": "resolved"}))
        .await
        .expect(200);
    s.set_state(&ann, "idle").await;
    let dave = s.customer_writes("dave", "Dave", "Anyone there?").await;
    let dave_id = dave["id"].as_str().expect("id").to_string();
    s.post_empty(&conv(&dave_id, "end"), ADMIN).await.expect(200);

    let report = s.get(&today("queues"), ADMIN).await.expect(200);
    assert_eq!(report["interval"], "1d");
    assert_eq!(report["time_zone"], "UTC");
    let support = report["queues"]
        .as_array()
        .expect("queues")
        .iter()
        .find(|q| q["queue"] == "support")
        .expect("support")
        .clone();
    assert_eq!(support["service_level_ms"], 30000);
    let days = support["intervals"].as_array().expect("intervals");
    assert!((2..=3).contains(&days.len()), "{days:?}");
    let t = &support["total"];
    assert_eq!(t["offered"], 2);
    assert_eq!(t["answered"], 1);
    assert_eq!(t["abandoned"], 1);
    assert_eq!(t["refused"], 0);
    assert_eq!(t["answered_within_sl"], 1, "accepted at once");
    assert_eq!(t["service_level_percent"], 50.0);
    assert_eq!(t["wait_ms"]["count"], 1);
    assert_eq!(t["handle_ms"]["count"], 1);
    assert_eq!(t["wrapup_ms"]["count"], 1);
    assert_eq!(t["first_response_ms"]["count"], 1);
    assert_eq!(t["abandon_wait_ms"]["count"], 1);
    let summed: u64 = days.iter().map(|d| d["offered"].as_u64().unwrap_or(0)).sum();
    assert_eq!(summed, 2, "the intervals add up to the total");
    let one = s
        .get(&format!("{}&queue=support", today("queues")), ADMIN)
        .await
        .expect(200);
    assert_eq!(one["queues"].as_array().map(Vec::len), Some(1));

    let sup = s.supervisor("sue", "Sue").await;
    let agents = s.get(&format!("{}&agent=ann", today("agents")), &sup).await.expect(200);
    let a = &agents["agents"][0];
    assert_eq!(a["agent"], "ann");
    assert_eq!(a["total"]["handled"], 1);
    assert_eq!(a["total"]["handle_ms"]["count"], 1);
    assert_eq!(a["total"]["wrapup_ms"]["count"], 1);
    assert_eq!(a["total"]["ronas"], 0);
    assert!(a["total"]["presence_ms"]["available"].as_u64().is_some(), "{a}");
    assert!(
        a["total"]["presence_ms"]["idle"].as_u64().is_some(),
        "idle, under way: {a}"
    );

    s.get(&today("queues"), &ann).await.expect(403);
    for bad in [
        "/api/v1/reports/queues?from=2026-12-05T00:00:00Z".to_string(),
        "/api/v1/reports/queues?from=yesterday&to=2026-12-05T00:00:00Z".to_string(),
        "/api/v1/reports/queues?from=2026-12-05T00:00:00Z&to=2026-12-04T00:00:00Z".to_string(),
        format!("{}&interval=2h", today("queues").replace("&interval=1d", "")),
        format!("{}&time_zone=Mars/Olympus", today("queues")),
        "/api/v1/reports/queues?from=2025-01-01T00:00:00Z&to=2026-01-01T00:00:00Z&interval=15m".to_string(),
        format!("{}&agent=ann", today("queues")),
        format!("{}&queue=support", today("agents")),
        format!("{}&queue=no%20id", today("queues")),
    ] {
        let e = s.get(&bad, ADMIN).await.expect(400);
        assert_eq!(e["error"]["code"], "invalid_input", "{bad}: {e}");
    }
    let e = s
        .call(
            "PATCH",
            "/api/v1/queues/support",
            Some(ADMIN),
            Some(json!({"service_level_ms": 0})),
        )
        .await
        .expect(400);
    assert_eq!(e["error"]["code"], "invalid_input");
}
