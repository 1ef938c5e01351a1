//! Issue 26 item 6, the customer's history beside a conversation, through the real binary
//! over REST (docs/API-NOTES.md "History"): `GET /api/v1/conversations/{id}/history` from
//! the durable records, and the serving agent's right to read the earlier transcripts.

mod common;

use common::{Process, ProcessClient as Client, ADMIN};
use serde_json::{json, Value};

fn conv(cid: &str, action: &str) -> String {
    if action.is_empty() {
        format!("/api/v1/conversations/{cid}")
    } else {
        format!("/api/v1/conversations/{cid}/{action}")
    }
}

async fn set_state(c: &Client, token: &str, state: &str) {
    c.expect(
        "PUT",
        "/api/v1/agents/me/state",
        token,
        Some(json!({"state": state})),
        200,
    )
    .await;
}

/// `customer` writes `text` on `entry_point`: the conversation's id.
async fn writes(c: &Client, entry_point: &str, customer: &str, text: &str) -> String {
    let body = json!({"entry_point": entry_point, "customer": {"id": customer, "name": "Uma"}, "text": text});
    let v = c.expect("POST", "/api/v1/conversations", ADMIN, Some(body), 201).await;
    v["id"].as_str().expect("id").to_string()
}

/// The agent of `token` (available, and the only one) takes `cid`, answers, notes, ends it
/// and wraps it up with `reason`.
async fn handle(c: &Client, token: &str, cid: &str, reason: &str) {
    c.expect("POST", &conv(cid, "accept"), token, None, 200).await;
    c.expect(
        "POST",
        &conv(cid, "messages"),
        token,
        Some(json!({"text": format!("Answer in {cid}")})),
        201,
    )
    .await;
    c.expect(
        "POST",
        &conv(cid, "notes"),
        token,
        Some(json!({"text": format!("Note in {cid}")})),
        201,
    )
    .await;
    c.expect("POST", &conv(cid, "end"), token, None, 200).await;
    c.expect(
        "POST",
        &conv(cid, "wrapup"),
        token,
        Some(json!({"reason": reason})),
        200,
    )
    .await;
}

fn ids(history: &Value) -> Vec<String> {
    history["conversations"]
        .as_array()
        .expect("conversations")
        .iter()
        .map(|c| c["id"].as_str().unwrap_or("").to_string())
        .collect()
}

/// Uma had two complete conversations with Bob on the demo page and one on the shop page.
/// She writes again on the demo page and Ann takes it: beside it Ann sees exactly the two
/// demo page conversations, newest first, each with Bob by name, its wrap-up reason (code
/// and label), outcome and times; the admin and a supervisor see the same. Ann reads both
/// transcripts, Bob's internal notes marked internal, but not the shop page one; Cleo, not
/// in Ann's conversation, may see neither the history nor the transcripts. Vic, with no
/// past, has an empty history. Once Ann ended her conversation with Uma she no longer
/// serves her: both are refused to her again. Unknown and malformed ids are 404 and 400.
#[actix_web::test]
async fn the_serving_agent_sees_the_customers_earlier_conversations_on_the_entry_point() {
    let dir = tempfile::tempdir().expect("temp dir");
    let p = Process::start(dir.path(), &[]);
    let c = Client::new(&p.base);
    c.expect(
        "POST",
        "/api/v1/entry-points",
        ADMIN,
        Some(json!({"id": "shop-page", "name": "Shop Page", "queue": "support"})),
        201,
    )
    .await;
    let ann = c.agent("ann", "Ann").await;
    let bob = c.agent("bob", "Bob").await;
    let cleo = c.agent("cleo", "Cleo").await;
    let sup = c
        .expect(
            "POST",
            "/api/v1/supervisors",
            ADMIN,
            Some(json!({"id": "sue", "name": "Sue"})),
            201,
        )
        .await["token"]
        .as_str()
        .expect("token")
        .to_string();

    // Bob alone is available: he handles Uma's three earlier conversations.
    set_state(&c, &bob, "available").await;
    let first = writes(&c, "demo-page", "u1", "My parcel is late").await;
    handle(&c, &bob, &first, "resolved").await;
    let elsewhere = writes(&c, "shop-page", "u1", "A question about the shop").await;
    handle(&c, &bob, &elsewhere, "other").await;
    let second = writes(&c, "demo-page", "u1", "Still no parcel").await;
    handle(&c, &bob, &second, "follow_up").await;
    set_state(&c, &bob, "idle").await;

    // Ann takes Uma's new conversation on the demo page.
    set_state(&c, &ann, "available").await;
    let now = writes(&c, "demo-page", "u1", "Third time I write").await;
    // Offered to Ann, not yet hers: no history.
    c.expect("GET", &conv(&now, "history"), &ann, None, 403).await;
    c.expect("POST", &conv(&now, "accept"), &ann, None, 200).await;

    let history = c.expect("GET", &conv(&now, "history"), &ann, None, 200).await;
    assert_eq!(ids(&history), [second.clone(), first.clone()], "{history}");
    let newest = &history["conversations"][0];
    assert_eq!(newest["agents"], json!([{"id": "bob", "name": "Bob", "guest": false}]));
    assert_eq!(newest["wrapup_reason"], "follow_up");
    assert_eq!(newest["wrapup_label"], "Follow-up needed");
    assert_eq!(newest["outcome"], "handled");
    assert_eq!(newest["ended_reason"], "agent_ended");
    assert_eq!(history["conversations"][1]["wrapup_reason"], "resolved");
    assert_eq!(history["conversations"][1]["wrapup_label"], "Resolved");
    let at = |i: usize, f: &str| {
        chrono::DateTime::parse_from_rfc3339(history["conversations"][i][f].as_str().expect(f)).expect("RFC 3339")
    };
    assert!(at(0, "arrived_at") >= at(1, "ended_at"), "newest first");
    assert!(at(0, "ended_at") >= at(0, "arrived_at"));
    for token in [ADMIN, sup.as_str()] {
        let seen = c.expect("GET", &conv(&now, "history"), token, None, 200).await;
        assert_eq!(seen, history, "the admin and supervisors see the same");
    }

    // Ann reads the earlier transcripts, notes marked; not the shop page's.
    for (cid, said) in [(&first, "My parcel is late"), (&second, "Still no parcel")] {
        let t = c.expect("GET", &conv(cid, ""), &ann, None, 200).await;
        assert_eq!(t["state"], "ended");
        let texts: Vec<(String, bool)> = t["transcript"]
            .as_array()
            .expect("transcript")
            .iter()
            .map(|m| {
                (
                    m["text"].as_str().unwrap_or("").to_string(),
                    m["internal"].as_bool().unwrap_or(false),
                )
            })
            .collect();
        assert_eq!(
            texts,
            [
                (said.to_string(), false),
                (format!("Answer in {cid}"), false),
                (format!("Note in {cid}"), true),
            ]
        );
    }
    c.expect("GET", &conv(&elsewhere, ""), &ann, None, 403).await;
    // Ann may not write in an earlier conversation: reading is all.
    let (status, _) = c
        .call(
            "POST",
            &conv(&first, "messages"),
            &ann,
            Some(json!({"text": "hello again"})),
        )
        .await;
    assert!(status == 403 || status == 409, "{status}");

    // Cleo is not in Ann's conversation.
    set_state(&c, &cleo, "available").await;
    let e = c.expect("GET", &conv(&now, "history"), &cleo, None, 403).await;
    assert_eq!(e["error"]["code"], "forbidden");
    for cid in [&first, &second] {
        c.expect("GET", &conv(cid, ""), &cleo, None, 403).await;
    }

    // Vic has no past: Cleo (Ann is busy) takes his first conversation.
    let vic = writes(&c, "demo-page", "u2", "Hello?").await;
    c.expect("POST", &conv(&vic, "accept"), &cleo, None, 200).await;
    let empty = c.expect("GET", &conv(&vic, "history"), &cleo, None, 200).await;
    assert_eq!(empty, json!({"conversations": []}));

    // Bad ids.
    c.expect("GET", &conv("c-nope", "history"), &ann, None, 404).await;
    c.expect("GET", &conv("no%20id", "history"), &ann, None, 400).await;

    // Ann ends Uma's conversation: she serves Uma no more.
    c.expect("POST", &conv(&now, "end"), &ann, None, 200).await;
    c.expect("GET", &conv(&now, "history"), &ann, None, 403).await;
    c.expect("GET", &conv(&first, ""), &ann, None, 403).await;
    // Bob handled them: he reads them still.
    c.expect("GET", &conv(&first, ""), &bob, None, 200).await;
}

#[actix_web::test]
async fn the_openapi_description_has_the_history() {
    let s = common::TestServer::start().await;
    let doc = s.call("GET", "/api/v1/openapi.json", None, None).await.expect(200);
    assert!(doc["paths"]["/api/v1/conversations/{id}/history"]["get"].is_object());
    let schemas = &doc["components"]["schemas"];
    for field in [
        "id",
        "arrived_at",
        "ended_at",
        "agents",
        "wrapup_reason",
        "wrapup_label",
        "outcome",
    ] {
        assert!(
            schemas["EarlierConversationDto"]["properties"][field].is_object(),
            "{field}"
        );
    }
}
