//! ../shared/SPEC.md "Routing depth" over the real server: skills, routing steps, priority,
//! best-skilled choice, preferred agents and customer inactivity, through REST and agent
//! desktops on WebSockets. Step times are short and configured; the tests wait for events,
//! never for the clock, and check times from the events' own timestamps.

mod common;

use chrono::{DateTime, Utc};
use common::*;
use serde_json::{json, Value};
use switchboard::core::AgentChoice;

fn at(v: &Value) -> DateTime<Utc> {
    v.as_str()
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_else(|| panic!("not an RFC 3339 time: {v}"))
}

/// An agent of the demo queue `support` with `skills`; returns its token.
async fn skilled(s: &TestServer, id: &str, skills: Value) -> String {
    let body = s
        .post(
            "/api/v1/agents",
            ADMIN,
            json!({"id": id, "name": id, "queues": ["support"], "skills": skills}),
        )
        .await
        .expect(201);
    assert_eq!(body["skills"], skills);
    body["token"].as_str().expect("token").to_string()
}

/// An entry point on `support` with `steps` and `priority`.
async fn entry_point(s: &TestServer, id: &str, priority: i64, steps: Value) {
    let body = s
        .post(
            "/api/v1/entry-points",
            ADMIN,
            json!({"id": id, "name": format!("Page {id}"), "queue": "support", "priority": priority, "routing_steps": steps}),
        )
        .await
        .expect(201);
    assert_eq!(body["routing_steps"], steps);
    assert_eq!(body["priority"], priority);
}

/// A customer message on entry point `ep` (with extra fields); the conversation.
async fn write(s: &TestServer, ep: &str, customer: &str, extra: Value) -> Value {
    let mut body = json!({"entry_point": ep, "customer": {"id": customer, "name": customer}, "text": "bonjour"});
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    s.post("/api/v1/conversations", ADMIN, body).await.expect(201)
}

/// `token`'s agent accepts the conversation offered to it.
async fn accept(s: &TestServer, cid: &str, token: &str) -> Value {
    s.post_empty(&format!("/api/v1/conversations/{cid}/accept"), token)
        .await
        .expect(200)
}

/// `token`'s agent ends the conversation it owns and wraps it up as resolved.
async fn end_and_wrap_up(s: &TestServer, cid: &str, token: &str) {
    s.post_empty(&format!("/api/v1/conversations/{cid}/end"), token)
        .await
        .expect(200);
    s.post(
        &format!("/api/v1/conversations/{cid}/wrapup"),
        token,
        json!({"reason": "resolved"}),
    )
    .await
    .expect(200);
}

/// French first: step 0 needs lang.fr >= 8 for `ms`, then anyone.
fn french_steps(ms: u64) -> Value {
    json!([{"requirements": {"lang.fr": 8}, "for_ms": ms}, {"requirements": {}}])
}

/// An agent who has waited longer but lacks the skill does not get the offer; the
/// skilled one does, and the conversation shows step 0 and its requirements.
#[actix_web::test]
async fn a_skilled_agent_gets_the_offer_over_one_who_waited_longer() {
    let s = TestServer::start().await;
    entry_point(&s, "fr", 0, french_steps(60_000)).await;
    let plain = skilled(&s, "plain", json!({})).await;
    let expert = skilled(&s, "expert", json!({"lang.fr": 9, "billing": 2})).await;
    let d_plain = s.available_desktop(&plain).await;
    let mut d_expert = s.available_desktop(&expert).await;

    let c = write(&s, "fr", "u1", json!({})).await;
    let cid = id_of(&c);
    let offer = d_expert.wait_for("offer").await;
    assert_eq!(offer["conversation_id"], cid.as_str());
    let view = s.conversation(&cid).await;
    assert_eq!(view["offer"]["agent"], "expert");
    assert_eq!(view["routing_step"], 0);
    assert_eq!(view["requirements"], json!({"lang.fr": 8}));
    assert_eq!(view["preferred_agent"], Value::Null);
    // The plain agent is still free: nothing was offered to it.
    let listed = s.get("/api/v1/agents?skill=lang.fr", ADMIN).await.expect(200);
    let ids: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a["id"].as_str())
        .collect();
    assert_eq!(ids, ["expert"]);
    assert_eq!(s.agent_detail("plain").await["load"], 0);
    d_plain.close().await;
}

/// Nobody meets step 0; the agent without the skill gets the offer once step 0's time
/// has passed (its offer comes at least `for_ms` after `received_at`), and the
/// conversation shows step 1.
#[actix_web::test]
async fn an_unskilled_agent_gets_it_only_after_the_steps_time() {
    let s = TestServer::start().await;
    entry_point(&s, "fr", 0, french_steps(400)).await;
    let plain = skilled(&s, "plain", json!({"lang.fr": 3})).await;
    let mut d = s.available_desktop(&plain).await;
    let c = write(&s, "fr", "u1", json!({})).await;
    assert_eq!(c["state"], "queued");
    assert_eq!(c["routing_step"], 0);
    let offer = d.wait_for("offer").await;
    let waited = at(&offer["offered_at"]) - at(&offer["received_at"]);
    assert!(waited.num_milliseconds() >= 400, "offered after {waited} only");
    let view = s.conversation(&id_of(&c)).await;
    assert_eq!(view["routing_step"], 1);
    assert_eq!(view["requirements"], json!({}));
    // The move shows in the metrics (the registry is the process's: at least this one).
    let metrics = s.call("GET", "/metrics", None, None).await.body;
    let moves = metrics
        .as_str()
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("switchboard_routing_moves_total{what=\"step\"}"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|n| n.parse::<f64>().ok())
        .unwrap_or(0.0);
    assert!(moves >= 1.0, "{metrics}");
}

/// A waiting conversation is offered the moment an agent is given the skill it needs.
#[actix_web::test]
async fn new_skills_route_a_waiting_conversation_at_once() {
    let s = TestServer::start().await;
    entry_point(&s, "fr", 0, french_steps(600_000)).await;
    let plain = skilled(&s, "plain", json!({})).await;
    let mut d = s.available_desktop(&plain).await;
    let c = write(&s, "fr", "u1", json!({})).await;
    assert_eq!(c["state"], "queued");
    let a = s
        .put("/api/v1/agents/plain/skills", ADMIN, json!({"skills": {"lang.fr": 10}}))
        .await
        .expect(200);
    assert_eq!(a["skills"], json!({"lang.fr": 10}));
    let offer = d.wait_for("offer").await;
    assert_eq!(offer["conversation_id"], c["id"]);
    // Only the admin sets skills.
    s.put("/api/v1/agents/plain/skills", &plain, json!({"skills": {}}))
        .await
        .expect_error(403, "forbidden");
}

/// A conversation transferred to a queue with steps of its own starts at that queue's
/// step 0: the billing agent gets it, though another agent has waited longer.
#[actix_web::test]
async fn a_transfer_to_a_queue_uses_that_queues_steps() {
    let s = TestServer::start().await;
    s.post(
        "/api/v1/queues",
        ADMIN,
        json!({"id": "billing", "name": "Billing", "routing_steps": [{"requirements": {"billing": 3}, "for_ms": 600000}, {}]}),
    )
    .await
    .expect(201);
    let listed = s.get("/api/v1/queues/billing", ADMIN).await.expect(200);
    assert_eq!(listed["routing_steps"][0]["requirements"], json!({"billing": 3}));
    let owner = skilled(&s, "owner", json!({})).await;
    let mut d_owner = s.available_desktop(&owner).await;
    for (id, skills) in [("generalist", json!({})), ("biller", json!({"billing": 5}))] {
        let t = s
            .post(
                "/api/v1/agents",
                ADMIN,
                json!({"id": id, "name": id, "queues": ["billing"], "skills": skills}),
            )
            .await
            .expect(201);
        s.set_state(t["token"].as_str().unwrap(), "available").await;
    }
    let c = s.customer_writes("u1", "Uma", "my invoice").await;
    let cid = id_of(&c);
    d_owner.wait_for("offer").await;
    accept(&s, &cid, &owner).await;
    s.post(
        &format!("/api/v1/conversations/{cid}/transfer"),
        &owner,
        json!({"queue": "billing"}),
    )
    .await
    .expect(202);
    let view = s.conversation(&cid).await;
    assert_eq!(view["queue"], "billing");
    assert_eq!(view["routing_step"], 0);
    assert_eq!(view["requirements"], json!({"billing": 3}));
    assert_eq!(view["offer"]["agent"], "biller");
}

/// Offers follow priority: a priority given when the conversation opens, the entry
/// point's, and a change while it waits; a priority change once it is active is
/// `not_queued`, and an agent may not change priorities.
#[actix_web::test]
async fn offers_follow_priority() {
    let s = TestServer::start().await;
    entry_point(&s, "vip", 5, json!([])).await;
    let ann = skilled(&s, "ann", json!({})).await;
    let plain = write(&s, "demo-page", "plain", json!({})).await;
    let vip = write(&s, "vip", "vip", json!({})).await;
    let urgent = write(&s, "demo-page", "urgent", json!({"priority": 9})).await;
    let late = write(&s, "demo-page", "late", json!({})).await;
    assert_eq!(vip["priority"], 5);
    assert_eq!(urgent["priority"], 9);
    assert_eq!(plain["priority"], 0);
    let changed = s
        .put(
            &format!("/api/v1/conversations/{}/priority", id_of(&late)),
            ADMIN,
            json!({"priority": 7}),
        )
        .await
        .expect(200);
    assert_eq!(changed["priority"], 7);
    s.put(
        &format!("/api/v1/conversations/{}/priority", id_of(&late)),
        &ann,
        json!({"priority": 1}),
    )
    .await
    .expect_error(403, "forbidden");
    s.put(
        &format!("/api/v1/conversations/{}/priority", id_of(&late)),
        ADMIN,
        json!({"priority": "high"}),
    )
    .await
    .expect_error(400, "invalid_json");

    let mut d = s.available_desktop(&ann).await;
    let mut order = Vec::new();
    for _ in 0..4 {
        let offer = d.wait_for("offer").await;
        let cid = offer["conversation_id"].as_str().unwrap().to_string();
        order.push(offer["customer"]["id"].as_str().unwrap().to_string());
        accept(&s, &cid, &ann).await;
        if order.len() == 1 {
            s.put(
                &format!("/api/v1/conversations/{cid}/priority"),
                ADMIN,
                json!({"priority": 1}),
            )
            .await
            .expect_error(409, "not_queued");
        }
        end_and_wrap_up(&s, &cid, &ann).await;
    }
    assert_eq!(order, ["urgent", "late", "vip", "plain"]);
}

/// With `routing.agent_choice = "best_skilled"` the agent with the highest level gets the
/// offer, though another one has waited longer.
#[actix_web::test]
async fn best_skilled_choice() {
    let s = TestServer::with(|c| c.routing.agent_choice = AgentChoice::BestSkilled).await;
    entry_point(&s, "fr", 0, json!([{"requirements": {"lang.fr": 5}}])).await;
    let good = skilled(&s, "good", json!({"lang.fr": 6})).await;
    let best = skilled(&s, "best", json!({"lang.fr": 10})).await;
    s.set_state(&good, "available").await;
    let mut d = s.available_desktop(&best).await;
    let c = write(&s, "fr", "u1", json!({})).await;
    d.wait_for("offer").await;
    assert_eq!(s.conversation(&id_of(&c)).await["offer"]["agent"], "best");
}

/// A returning customer's conversation goes to the agent who owned the last one, and
/// waits for that agent alone until `routing.last_agent_ms` has passed; then anyone may
/// take it.
#[actix_web::test]
async fn a_returning_customer_goes_back_to_the_last_owner() {
    let s = TestServer::with(|c| {
        c.routing.last_agent_ms = 500;
        c.routing.last_agent_within_ms = 600_000;
    })
    .await;
    let ann = skilled(&s, "ann", json!({})).await;
    let bob = skilled(&s, "bob", json!({})).await;
    let mut d_ann = s.available_desktop(&ann).await;
    let c = write(&s, "demo-page", "u1", json!({})).await;
    let cid = id_of(&c);
    d_ann.wait_for("offer").await;
    accept(&s, &cid, &ann).await;
    end_and_wrap_up(&s, &cid, &ann).await;
    // Bob has waited longer than Ann now; the returning customer goes to Ann.
    let mut d_bob = s.available_desktop(&bob).await;
    s.set_state(&ann, "idle").await;
    s.set_state(&ann, "available").await;
    let again = write(&s, "demo-page", "u1", json!({})).await;
    assert_eq!(again["preferred_agent"], "ann");
    let offer = d_ann.wait_for_in("offer", again["id"].as_str().unwrap()).await;
    assert_eq!(offer["customer"]["id"], "u1");
    let cid = id_of(&again);
    accept(&s, &cid, &ann).await;
    assert_eq!(s.conversation(&cid).await["preferred_agent"], Value::Null);
    end_and_wrap_up(&s, &cid, &ann).await;

    // Ann is away: the customer waits for her alone, then Bob gets it.
    s.set_state(&ann, "idle").await;
    let third = write(&s, "demo-page", "u1", json!({})).await;
    assert_eq!(third["state"], "queued");
    assert_eq!(third["preferred_agent"], "ann");
    let offer = d_bob.wait_for_in("offer", third["id"].as_str().unwrap()).await;
    let waited = at(&offer["offered_at"]) - at(&offer["received_at"]);
    assert!(waited.num_milliseconds() >= 500, "offered after {waited} only");
    assert_eq!(s.conversation(&id_of(&third)).await["preferred_agent"], Value::Null);
}

/// An active chat whose customer stays silent for `routing.inactivity_close_ms` is closed
/// with reason `customer_inactive`, a system message says so, and the agent owes a
/// wrap-up; a customer message before that restarts the clock.
#[actix_web::test]
async fn an_inactive_chat_is_closed_and_a_message_restarts_the_clock() {
    let s = TestServer::with(|c| c.routing.inactivity_close_ms = 600).await;
    let ann = skilled(&s, "ann", json!({})).await;
    let mut d = s.available_desktop(&ann).await;
    let c = s.customer_writes("u1", "Uma", "hello").await;
    let cid = id_of(&c);
    d.wait_for("offer").await;
    let accepted = accept(&s, &cid, &ann).await;
    let accepted_at = at(&accepted["transcript"][0]["at"]);
    // The customer writes again; the close is counted from this message.
    let again = s
        .post(
            &format!("/api/v1/conversations/{cid}/messages"),
            ADMIN,
            json!({"text": "still here"}),
        )
        .await
        .expect(201);
    let ended = d.wait_for_in("conversation_ended", &cid).await;
    assert_eq!(ended["reason"], "customer_inactive");
    d.wait_for_in("wrapup_required", &cid).await;
    let view = s.conversation(&cid).await;
    assert_eq!(view["ended_reason"], "customer_inactive");
    let last = view["transcript"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["author"]["kind"], "system");
    let closed_after = at(&last["at"]) - at(&again["at"]);
    assert!(
        closed_after.num_milliseconds() >= 600,
        "closed {closed_after} after the message"
    );
    assert!(at(&again["at"]) >= accepted_at);
    s.post(
        &format!("/api/v1/conversations/{cid}/wrapup"),
        &ann,
        json!({"reason": "resolved"}),
    )
    .await
    .expect(200);
}

/// Bad skill names and levels, and bad steps, are 400 with the usual error body, and
/// change nothing.
#[actix_web::test]
async fn bad_skills_and_steps_are_refused() {
    let s = TestServer::start().await;
    for skills in [
        json!({"Lang.FR": 5}),
        json!({"lang fr": 5}),
        json!({"lang.fr": 0}),
        json!({"lang.fr": 11}),
    ] {
        s.post(
            "/api/v1/agents",
            ADMIN,
            json!({"id": "x", "name": "X", "queues": ["support"], "skills": skills}),
        )
        .await
        .expect_error(400, "invalid_input");
    }
    s.post(
        "/api/v1/agents",
        ADMIN,
        json!({"id": "x", "name": "X", "queues": ["support"], "skills": {"lang.fr": 300}}),
    )
    .await
    .expect_error(400, "invalid_json");
    s.get("/api/v1/agents/x", ADMIN)
        .await
        .expect_error(404, "unknown_agent");
    skilled(&s, "ann", json!({"lang.fr": 5})).await;
    s.put("/api/v1/agents/ann/skills", ADMIN, json!({"skills": {"lang.fr": 12}}))
        .await
        .expect_error(400, "invalid_input");
    assert_eq!(s.agent_detail("ann").await["skills"], json!({"lang.fr": 5}));
    s.put("/api/v1/agents/nobody/skills", ADMIN, json!({"skills": {}}))
        .await
        .expect_error(404, "unknown_agent");

    for steps in [
        json!([{"requirements": {}, "for_ms": 1000}]),
        json!([{"requirements": {}}, {"requirements": {}}]),
        json!([{"requirements": {"lang.fr": 5}, "for_ms": 0}, {}]),
        json!([{"requirements": {"LANG": 5}, "for_ms": 10}, {}]),
    ] {
        s.post(
            "/api/v1/entry-points",
            ADMIN,
            json!({"id": "ep", "name": "Page", "queue": "support", "routing_steps": steps}),
        )
        .await
        .expect_error(400, "invalid_input");
        s.post(
            "/api/v1/queues",
            ADMIN,
            json!({"id": "q9", "name": "Q", "routing_steps": steps}),
        )
        .await
        .expect_error(400, "invalid_input");
        s.post(
            "/api/v1/conversations",
            ADMIN,
            json!({"entry_point": "demo-page", "customer": {"id": "u", "name": "U"}, "text": "hi", "routing_steps": steps}),
        )
        .await
        .expect_error(400, "invalid_input");
    }
    s.post(
        "/api/v1/entry-points",
        ADMIN,
        json!({"id": "ep", "name": "Page", "queue": "support", "routing_steps": [{"requirements": {}, "wait": 5}]}),
    )
    .await
    .expect_error(400, "invalid_json");
    let eps = s.get("/api/v1/entry-points", ADMIN).await.expect(200);
    assert!(eps.as_array().unwrap().iter().all(|e| e["id"] != "ep"));
    assert_eq!(s.get("/api/v1/queues/q9", ADMIN).await.status, 404);
}

/// The real binary is killed (SIGKILL) while a conversation waits in step 0 for an agent
/// with French; step 0 ends while it is down. At start the conversation moves on to step 1
/// and is offered to the agent without French, with its place and `received_at` kept.
#[actix_web::test]
async fn a_step_that_ended_while_the_engine_was_down_moves_on_at_start() {
    let dir = tempfile::tempdir().expect("temp dir");
    let client = awc::Client::builder().timeout(WAIT).finish();
    let engine = Process::start(dir.path(), &[]);
    let url = |base: &str, p: &str| format!("{base}{p}");
    request(
        &client,
        &url(&engine.base, "/api/v1/entry-points"),
        "POST",
        Some(ADMIN),
        Some(json!({"id": "fr", "name": "Page fr", "queue": "support", "routing_steps": french_steps(300)})),
    )
    .await
    .expect(201);
    let agent = request(
        &client,
        &url(&engine.base, "/api/v1/agents"),
        "POST",
        Some(ADMIN),
        Some(json!({"id": "plain", "name": "Plain", "queues": ["support"]})),
    )
    .await
    .expect(201);
    let token = agent["token"].as_str().expect("token").to_string();
    request(
        &client,
        &url(&engine.base, "/api/v1/agents/me/state"),
        "PUT",
        Some(&token),
        Some(json!({"state": "idle", "idle_code": "break"})),
    )
    .await
    .expect(200);
    let c = request(
        &client,
        &url(&engine.base, "/api/v1/conversations"),
        "POST",
        Some(ADMIN),
        Some(json!({"entry_point": "fr", "customer": {"id": "u1", "name": "Uma"}, "text": "bonjour"})),
    )
    .await
    .expect(201);
    assert_eq!(c["routing_step"], 0);
    // Available just before the crash: nobody meets step 0, so it still waits.
    request(
        &client,
        &url(&engine.base, "/api/v1/agents/me/state"),
        "PUT",
        Some(&token),
        Some(json!({"state": "available"})),
    )
    .await
    .expect(200);
    engine.kill();
    // Step 0 (300 ms) ends while the engine is down.
    std::thread::sleep(std::time::Duration::from_millis(400));
    let engine = Process::start(dir.path(), &[]);
    let cid = id_of(&c);
    let deadline = std::time::Instant::now() + WAIT;
    let view = loop {
        let view = request(
            &client,
            &url(&engine.base, &format!("/api/v1/conversations/{cid}")),
            "GET",
            Some(ADMIN),
            None,
        )
        .await
        .expect(200);
        if view["state"] == "offered" || std::time::Instant::now() > deadline {
            break view;
        }
        actix_rt::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert_eq!(view["state"], "offered", "{view}");
    assert_eq!(view["offer"]["agent"], "plain");
    assert_eq!(view["routing_step"], 1);
    assert_eq!(view["received_at"], c["received_at"]);
    engine.kill();
}

/// Business hours over REST (docs/API-NOTES.md "Business hours"): a queue created with
/// hours shows them; a customer who writes while it is closed gets the closed reply at
/// once, and with `close` the conversation ends (`outside_hours`) without an offer; a
/// `PATCH` changes the hours for the next customer, `null` removes them; bad hours are a
/// 400 that changes nothing.
#[actix_web::test]
async fn business_hours_answer_a_customer_who_writes_while_the_queue_is_closed() {
    let s = TestServer::start().await;
    // Open only on dated openings, none of which is today: closed now, whatever the clock.
    let hours = json!({
        "time_zone": "Europe/Paris",
        "weekly": [],
        "exceptions": [{"date": "2000-01-03", "open": "09:00", "close": "17:00"}],
        "closed_reply": "We are closed; write again from 09:00.",
        "outside_hours": "close"
    });
    let q = s
        .post(
            "/api/v1/queues",
            ADMIN,
            json!({"id": "nights", "name": "Nights", "hours": hours}),
        )
        .await
        .expect(201);
    assert_eq!(q["hours"], hours);
    let ann = s.agent_with_capacity("ann", "Ann", &["nights"], 2).await;
    s.post(
        "/api/v1/entry-points",
        ADMIN,
        json!({"id": "night-page", "name": "Night page", "queue": "nights"}),
    )
    .await
    .expect(201);
    s.set_state(&ann, "available").await;
    let write = |customer: &'static str| {
        s.post(
            "/api/v1/conversations",
            ADMIN,
            json!({"entry_point": "night-page", "customer": {"id": customer, "name": "Carol"}, "text": "Hello?"}),
        )
    };
    let closed = write("c1").await.expect(201);
    assert_eq!(closed["state"], "ended", "{closed}");
    assert_eq!(closed["ended_reason"], "outside_hours");
    assert_eq!(texts(&closed), ["Hello?", "We are closed; write again from 09:00."]);
    assert_eq!(s.agent_detail("ann").await["offers"], json!([]), "nothing offered");

    // Bad hours: 400, and the queue keeps its own.
    let path = "/api/v1/queues/nights";
    let mut bad = hours.clone();
    bad["time_zone"] = json!("Mars/Olympus");
    s.call("PATCH", path, Some(ADMIN), Some(json!({ "hours": bad })))
        .await
        .expect_error(400, "invalid_input");
    s.call("PATCH", path, Some(ADMIN), Some(json!({})))
        .await
        .expect_error(400, "invalid_input");
    s.call(
        "PATCH",
        "/api/v1/queues/nope",
        Some(ADMIN),
        Some(json!({ "hours": null })),
    )
    .await
    .expect_error(404, "unknown_queue");
    s.call("PATCH", path, Some(&ann), Some(json!({ "hours": null })))
        .await
        .expect_error(403, "forbidden");
    assert_eq!(s.get(path, ADMIN).await.expect(200)["hours"], hours);

    // `hold`: told, and it waits for the opening: Ann is available, nothing is offered.
    let mut holding = hours.clone();
    holding["outside_hours"] = json!("hold");
    let q = s
        .call("PATCH", path, Some(ADMIN), Some(json!({ "hours": holding })))
        .await
        .expect(200);
    assert_eq!(q["hours"]["outside_hours"], "hold");
    let held = write("c0").await.expect(201);
    assert_eq!(held["state"], "queued", "{held}");
    assert_eq!(texts(&held), ["Hello?", "We are closed; write again from 09:00."]);
    assert_eq!(s.agent_detail("ann").await["offers"], json!([]), "nothing offered");
    assert_eq!(s.get(path, ADMIN).await.expect(200)["waiting"], 1);

    // `wait`: told, then routed as usual (an available agent may still serve it); the
    // change applies at once, so the held one is offered now.
    let mut waiting = hours.clone();
    waiting["outside_hours"] = json!("wait");
    let q = s
        .call("PATCH", path, Some(ADMIN), Some(json!({ "hours": waiting })))
        .await
        .expect(200);
    assert_eq!(q["hours"]["outside_hours"], "wait");
    assert_eq!(s.conversation(&id_of(&held)).await["state"], "offered");
    let told = write("c2").await.expect(201);
    assert_eq!(texts(&told), ["Hello?", "We are closed; write again from 09:00."]);
    assert_ne!(told["state"], "ended", "{told}");
    let cid = id_of(&told);
    s.post_empty(&format!("/api/v1/conversations/{cid}/accept"), &ann)
        .await
        .expect(200);

    // `null`: always open again, nothing said.
    let q = s
        .call("PATCH", path, Some(ADMIN), Some(json!({ "hours": null })))
        .await
        .expect(200);
    assert!(q.get("hours").is_none(), "{q}");
    let open = write("c3").await.expect(201);
    assert_eq!(texts(&open), ["Hello?"]);
}

/// Hours in the config file's `[[queues]]` are the queue's when it is first created.
#[actix_web::test]
async fn business_hours_come_from_the_config_file() {
    use figment::providers::{Format, Toml};
    let hours: switchboard::core::hours::Hours = figment::Figment::from(Toml::string(
        r#"
        time_zone = "America/New_York"
        closed_reply = "Closed for the night."
        outside_hours = "close"
        [[weekly]]
        days = ["mon", "tue", "wed", "thu", "fri"]
        open = "08:00"
        close = "20:00"
        [[exceptions]]
        date = "2026-12-25"
        "#,
    ))
    .extract()
    .expect("hours in TOML");
    let s = TestServer::with(|c| {
        c.queues[0].hours = Some(hours);
    })
    .await;
    let id = s.config.queues[0].id.clone();
    let q = s.get(&format!("/api/v1/queues/{id}"), ADMIN).await.expect(200);
    assert_eq!(q["hours"]["time_zone"], "America/New_York");
    assert_eq!(q["hours"]["outside_hours"], "close");
    assert_eq!(q["hours"]["exceptions"], json!([{"date": "2026-12-25"}]));
}

/// Place-in-line messages in the config file's `[[queues]]` are the queue's when it is
/// first created, with their defaults filled in; a waiting customer is told at once.
#[actix_web::test]
async fn place_updates_come_from_the_config_file() {
    use figment::providers::{Format, Toml};
    let place: switchboard::core::place::PlaceUpdates = figment::Figment::from(Toml::string(
        r#"
        position_step = 2
        [templates.default]
        text = "You are number {{position}}; about {{wait_minutes}} min."
        text_without_wait = "You are number {{position}} in line."
        "#,
    ))
    .extract()
    .expect("place updates in TOML");
    let s = TestServer::with(|c| {
        c.queues[0].place_updates = Some(place);
    })
    .await;
    let id = s.config.queues[0].id.clone();
    let q = s.get(&format!("/api/v1/queues/{id}"), ADMIN).await.expect(200);
    assert_eq!(q["place_updates"]["position_step"], 2, "{q}");
    assert_eq!(q["place_updates"]["min_interval_ms"], 30_000, "the default: {q}");
    // Nobody is available: the customer waits and is told its place.
    let c = s.customer_writes("u1", "Carol", "Hello").await;
    assert_eq!(texts(&c), ["Hello", "You are number 1 in line."], "{c}");
}

/// A queue's bound on waiting over REST: past it a customer is told the reply and the
/// conversation ends (`queue_full`); `null` removes the bound; a bad bound is a 400.
#[actix_web::test]
async fn a_full_queue_refuses_one_more_customer_with_its_reply() {
    let s = TestServer::start().await;
    let limit = json!({"max_waiting": 1, "reply": "Many are waiting; please write again later."});
    let q = s
        .post(
            "/api/v1/queues",
            ADMIN,
            json!({"id": "small", "name": "Small", "wait_limit": limit}),
        )
        .await
        .expect(201);
    assert_eq!(q["wait_limit"], limit);
    s.post(
        "/api/v1/entry-points",
        ADMIN,
        json!({"id": "small-page", "name": "Small page", "queue": "small"}),
    )
    .await
    .expect(201);
    let write = |customer: &'static str| {
        s.post(
            "/api/v1/conversations",
            ADMIN,
            json!({"entry_point": "small-page", "customer": {"id": customer, "name": "Carol"}, "text": "Hi"}),
        )
    };
    assert_eq!(write("c1").await.expect(201)["state"], "queued");
    let refused = write("c2").await.expect(201);
    assert_eq!(refused["state"], "ended", "{refused}");
    assert_eq!(refused["ended_reason"], "queue_full");
    assert_eq!(texts(&refused), ["Hi", "Many are waiting; please write again later."]);

    let path = "/api/v1/queues/small";
    s.call(
        "PATCH",
        path,
        Some(ADMIN),
        Some(json!({"wait_limit": {"max_waiting": 0, "reply": "x"}})),
    )
    .await
    .expect_error(400, "invalid_input");
    assert_eq!(s.get(path, ADMIN).await.expect(200)["wait_limit"], limit);
    let q = s
        .call("PATCH", path, Some(ADMIN), Some(json!({"wait_limit": null})))
        .await
        .expect(200);
    assert!(q.get("wait_limit").is_none(), "{q}");
    assert_eq!(write("c3").await.expect(201)["state"], "queued");
}

/// Overflow over REST (docs/API-NOTES.md "Overflow"): a conversation that waits in
/// `support` longer than its overflow moves to the queue it names, is offered to that
/// queue's agent, and shows there; `/metrics` counts it; bad overflows are a 400 that
/// changes nothing; `null` removes it.
#[actix_web::test]
async fn a_conversation_that_waits_too_long_overflows_to_another_queue() {
    let s = TestServer::start().await;
    s.queue("backup", "Backup").await;
    let bob = s.agent("bob", "Bob", &["backup"]).await;
    let mut d = s.available_desktop(&bob).await;
    let path = "/api/v1/queues/support";
    for (bad, code, why) in [
        (
            json!({"after_ms": 300, "to_queue": "nowhere"}),
            "invalid_input",
            "unknown queue",
        ),
        (
            json!({"after_ms": 300, "to_queue": "support"}),
            "invalid_input",
            "itself",
        ),
        (
            json!({"after_ms": 50, "to_queue": "backup"}),
            "invalid_input",
            "too short",
        ),
        (json!({"after_ms": 300}), "invalid_json", "no target"),
        (
            json!({"after_ms": 300, "to_queue": "backup", "x": 1}),
            "invalid_json",
            "unknown field",
        ),
    ] {
        let answer = s
            .call("PATCH", path, Some(ADMIN), Some(json!({ "overflow": bad })))
            .await;
        answer.expect_error(400, code);
        assert!(
            s.get(path, ADMIN).await.expect(200).get("overflow").is_none(),
            "{why} changed nothing"
        );
    }
    let overflow = json!({"after_ms": 300, "to_queue": "backup"});
    let q = s
        .call("PATCH", path, Some(ADMIN), Some(json!({ "overflow": overflow })))
        .await
        .expect(200);
    assert_eq!(q["overflow"], overflow);

    // Nobody serves support: after 300 ms the customer is Bob's to take, in Backup.
    let c = s.customer_writes("u1", "Uma", "Hello").await;
    assert_eq!(c["queue"], "support");
    let cid = id_of(&c);
    let offer = d.wait_for_in("offer", &cid).await;
    let moved = at(&offer["received_at"]) - at(&c["received_at"]);
    assert!(moved.num_milliseconds() >= 300, "moved after {moved} only: {offer}");
    let view = s.conversation(&cid).await;
    assert_eq!(view["queue"], "backup", "{view}");
    assert_eq!(view["state"], "offered");
    let metrics = s.call("GET", "/metrics", None, None).await.body;
    let overflows = metrics
        .as_str()
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("switchboard_overflows_total{queue=\"support\"}"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|n| n.parse::<f64>().ok())
        .unwrap_or(0.0);
    assert!(overflows >= 1.0, "{metrics}");

    // Removed (the core's tests show nothing moves after that).
    let q = s
        .call("PATCH", path, Some(ADMIN), Some(json!({ "overflow": null })))
        .await
        .expect(200);
    assert!(q.get("overflow").is_none(), "{q}");
}

/// An overflow in the config file's `[[queues]]` may name a queue defined after it; a
/// queue that overflows to one the file lacks stops the start with the key named.
#[actix_web::test]
async fn overflow_comes_from_the_config_file() {
    let s = TestServer::with(|c| {
        let mut later = c.queues[0].clone();
        later.id = "later".into();
        later.name = "Later".into();
        c.queues[0].overflow = Some(switchboard::core::queue::Overflow {
            after_ms: 60_000,
            to_queue: "later".into(),
        });
        c.queues.push(later);
    })
    .await;
    let id = s.config.queues[0].id.clone();
    let q = s.get(&format!("/api/v1/queues/{id}"), ADMIN).await.expect(200);
    assert_eq!(q["overflow"], json!({"after_ms": 60000, "to_queue": "later"}));
    let mut bad = s.config.clone();
    bad.queues[0].overflow = Some(switchboard::core::queue::Overflow {
        after_ms: 60_000,
        to_queue: "missing".into(),
    });
    let e = bad.validate().expect_err("refused");
    assert!(e.to_string().contains("queues.overflow"), "{e}");
}
