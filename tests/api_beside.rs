//! Issue 26, beside the agent, through the real binary over REST and WebSocket: internal
//! notes and the notes of transfers and conferences (docs/API-NOTES.md "Internal notes").

mod common;

use common::{connect_desktop, Desktop, Process, ProcessClient as Client, ADMIN};
use serde_json::{json, Value};

fn conv(cid: &str, action: &str) -> String {
    if action.is_empty() {
        format!("/api/v1/conversations/{cid}")
    } else {
        format!("/api/v1/conversations/{cid}/{action}")
    }
}

/// The demo customer's key (the page's own bearer token).
const CUSTOMER_KEY: &str = "beside-customer-key-0123456789abcdef";

async fn available(c: &Client, token: &str) {
    c.expect(
        "PUT",
        "/api/v1/agents/me/state",
        token,
        Some(json!({"state": "available"})),
        200,
    )
    .await;
}

async fn desktop(p: &Process, token: &str) -> Desktop {
    let http = awc::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .finish();
    connect_desktop(&http, &p.base, token).await.0
}

/// The transcript as `(internal, author kind, text)`.
fn entries(conversation: &Value) -> Vec<(bool, String, String)> {
    conversation["transcript"]
        .as_array()
        .expect("transcript")
        .iter()
        .map(|m| {
            (
                m["internal"].as_bool().unwrap_or(false),
                m["author"]["kind"].as_str().unwrap_or("").to_string(),
                m["text"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

/// What the demo customer sees of its conversation.
async fn customer_view(p: &Process, cid: &str) -> Value {
    let http = awc::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .finish();
    let a = common::request(
        &http,
        &format!("{}/demo/api/conversations/{cid}", p.base),
        "GET",
        Some(CUSTOMER_KEY),
        None,
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.body);
    a.body
}

/// Ann takes Carol's chat (Carol writes from the demo customer page) and adds an
/// internal note over REST and another from her desktop: both are in the transcript
/// marked `internal`, reach her desktop as `message` frames marked so, and never reach
/// Carol, whose view has only what was said to her. Bad notes are refused with their
/// codes and change nothing. She transfers the chat to Bob with a note: Bob's offer
/// shows it (in the `offer` frame, in `hello` after a reconnect, and in the
/// conversation's `offer`), and the transcript keeps it as a note by Ann. A note over
/// 1,000 characters is 400 `note_too_long`, and the chat stays Ann's. After a kill -9
/// and a restart every note is still there, still internal, and the offer still shows
/// its note.
#[actix_web::test]
async fn notes_stay_with_the_agents_and_a_transfer_note_reaches_the_offer_across_a_restart() {
    let dir = tempfile::tempdir().expect("temp dir");
    let p = Process::start(dir.path(), &[]);
    let c = Client::new(&p.base);
    let ann = c.agent("ann", "Ann").await;
    let bob = c.agent("bob", "Bob").await;
    let cleo = c.agent("cleo", "Cleo").await;
    available(&c, &ann).await;
    let mut ann_desk = desktop(&p, &ann).await;

    let http = awc::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .finish();
    let opened = common::request(
        &http,
        &format!("{}/demo/api/messages", p.base),
        "POST",
        Some(CUSTOMER_KEY),
        Some(json!({"name": "Carol", "text": "Hello, my parcel is late"})),
    )
    .await;
    assert_eq!(opened.status, 201, "{}", opened.body);
    let cid = opened.body["id"].as_str().expect("id").to_string();
    ann_desk.wait_for("offer").await;
    c.expect("POST", &conv(&cid, "accept"), &ann, None, 200).await;

    let note = c
        .expect(
            "POST",
            &conv(&cid, "notes"),
            &ann,
            Some(json!({"text": "Second time this month"})),
            201,
        )
        .await;
    assert_eq!(note["internal"], true);
    assert_eq!(note["author"], json!({"kind": "agent", "id": "ann", "name": "Ann"}));
    let frame = ann_desk
        .wait_for_match("the note's message frame", |v| {
            v["type"] == "message" && v["message"]["text"] == "Second time this month"
        })
        .await;
    assert_eq!(frame["message"]["internal"], true);
    let reply = ann_desk
        .command(json!({"type": "note", "conversation_id": cid, "text": "Offer a voucher"}))
        .await;
    assert_eq!(reply["ok"], true, "{reply}");
    c.expect(
        "POST",
        &conv(&cid, "messages"),
        &ann,
        Some(json!({"text": "Sorry, Carol, let me look"})),
        201,
    )
    .await;

    // Refusals: who may not, and what may not be a note. Each changes nothing.
    for (token, body, status, code) in [
        (bob.as_str(), json!({"text": "not mine"}), 403, "not_in_conversation"),
        (ADMIN, json!({"text": "admin"}), 403, "forbidden"),
        (ann.as_str(), json!({"text": "   "}), 400, "invalid_input"),
        (ann.as_str(), json!({"note": "wrong field"}), 400, "invalid_json"),
    ] {
        let (s, v) = c.call("POST", &conv(&cid, "notes"), token, Some(body)).await;
        assert_eq!((s, v["error"]["code"].as_str()), (status, Some(code)), "{v}");
    }
    let (s, v) = c
        .call("POST", &conv("c-404", "notes"), &ann, Some(json!({"text": "x"})))
        .await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (404, Some("unknown_conversation")),
        "{v}"
    );

    let expected = vec![
        (false, "customer".to_string(), "Hello, my parcel is late".to_string()),
        (true, "agent".to_string(), "Second time this month".to_string()),
        (true, "agent".to_string(), "Offer a voucher".to_string()),
        (false, "agent".to_string(), "Sorry, Carol, let me look".to_string()),
    ];
    assert_eq!(
        entries(&c.expect("GET", &conv(&cid, ""), ADMIN, None, 200).await),
        expected
    );
    // Carol sees her message and Ann's answer, never a note.
    let seen: Vec<String> = customer_view(&p, &cid).await["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| m["text"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(seen, ["Hello, my parcel is late", "Sorry, Carol, let me look"]);

    // A transfer note over the bound: 400 note_too_long, and the chat is still Ann's.
    available(&c, &bob).await;
    let mut bob_desk = desktop(&p, &bob).await;
    let long = "x".repeat(1001);
    let (s, v) = c
        .call(
            "POST",
            &conv(&cid, "transfer"),
            &ann,
            Some(json!({"agent": "bob", "note": long})),
        )
        .await;
    assert_eq!((s, v["error"]["code"].as_str()), (400, Some("note_too_long")), "{v}");
    let view = c.expect("GET", &conv(&cid, ""), ADMIN, None, 200).await;
    assert_eq!(
        (view["owner"].as_str(), view["state"].as_str()),
        (Some("ann"), Some("active"))
    );
    assert_eq!(entries(&view).len(), 4, "nothing was added");
    // From the desktop, the same refusal with the same code.
    let reply = ann_desk
        .command(json!({"type": "transfer", "conversation_id": cid, "agent": "bob", "note": "y".repeat(1001)}))
        .await;
    assert_eq!(reply["error"]["code"], "note_too_long", "{reply}");

    let reply = ann_desk
        .command(json!({"type": "transfer", "conversation_id": cid, "agent": "bob", "note": "Wants a refund, not a voucher"}))
        .await;
    assert_eq!(reply["ok"], true, "{reply}");
    let offer = bob_desk.wait_for("offer").await;
    assert_eq!(offer["kind"], "transfer");
    assert_eq!(offer["from_agent"], "ann");
    assert_eq!(offer["note"], "Wants a refund, not a voucher");
    let view = c.expect("GET", &conv(&cid, ""), ADMIN, None, 200).await;
    assert_eq!(view["offer"]["note"], "Wants a refund, not a voucher");
    assert_eq!(
        entries(&view).last(),
        Some(&(true, "agent".to_string(), "Wants a refund, not a voucher".to_string()))
    );

    // kill -9 and restart: the notes, their marks and the offer's note are durable.
    drop(ann_desk);
    drop(bob_desk);
    p.kill();
    let p = Process::start(dir.path(), &[]);
    let c = Client::new(&p.base);
    let after = c.expect("GET", &conv(&cid, ""), ADMIN, None, 200).await;
    assert_eq!(entries(&after)[..4], expected[..]);
    assert_eq!(after["offer"]["note"], "Wants a refund, not a voucher");
    let http = awc::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .finish();
    let (mut bob_desk, hello) = connect_desktop(&http, &p.base, &bob).await;
    assert_eq!(hello["offers"][0]["note"], "Wants a refund, not a voucher", "{hello}");
    let reply = bob_desk
        .command(json!({"type": "accept", "conversation_id": cid}))
        .await;
    assert_eq!(reply["ok"], true, "{reply}");
    let whole = bob_desk.wait_for("conversation").await;
    let notes: Vec<bool> = whole["conversation"]["transcript"]
        .as_array()
        .expect("transcript")
        .iter()
        .map(|m| m["internal"].as_bool().unwrap_or(false))
        .collect();
    assert_eq!(notes, [false, true, true, false, true], "Bob reads every note, marked");
    let taken = c.expect("GET", &conv(&cid, ""), ADMIN, None, 200).await;
    assert_eq!(taken["offer"], Value::Null);

    // A conference invitation carries its own note; Cleo's offer shows it.
    available(&c, &cleo).await;
    let (mut cleo_desk, _) = connect_desktop(&http, &p.base, &cleo).await;
    c.expect(
        "POST",
        &conv(&cid, "conference"),
        &bob,
        Some(json!({"agent": "cleo", "note": "Can you approve the refund?"})),
        202,
    )
    .await;
    let offer = cleo_desk.wait_for("offer").await;
    assert_eq!(
        (offer["kind"].as_str(), offer["note"].as_str()),
        (Some("conference"), Some("Can you approve the refund?"))
    );
    // Still nothing of it reached Carol.
    let seen = customer_view(&p, &cid).await;
    assert!(
        seen["messages"]
            .as_array()
            .expect("messages")
            .iter()
            .all(|m| m.get("internal").is_none()),
        "{seen}"
    );
    assert_eq!(seen["messages"].as_array().map(Vec::len), Some(2));
    p.kill();
}

/// The admin writes canned responses for everyone and for a queue; bad ones are refused
/// with their codes and change nothing. Ann (support) lists the ones that apply to her,
/// billing's left out and support's replacing the tenant's of the same code, each filled
/// for her conversation with Carol; Bob, not in it, may not have them filled for it.
/// A change and a delete are in force at once, and after a kill -9 and a restart every
/// response is as it was left.
#[actix_web::test]
async fn canned_responses_are_managed_filled_for_the_agent_and_durable() {
    let dir = tempfile::tempdir().expect("temp dir");
    let p = Process::start(dir.path(), &[]);
    let c = Client::new(&p.base);
    c.expect(
        "POST",
        "/api/v1/queues",
        ADMIN,
        Some(json!({"id": "billing", "name": "Billing"})),
        201,
    )
    .await;
    let ann = c.agent("ann", "Ann Lee").await;
    let bob = c.agent("bob", "Bob").await;
    let path = "/api/v1/canned-responses";
    let hi = c
        .expect(
            "POST",
            path,
            ADMIN,
            Some(
                json!({"id": "hi", "code": "hi", "text": "Hello {{customer.first_name}}, {{agent.first_name}} here."}),
            ),
            201,
        )
        .await;
    assert_eq!(hi["queue"], Value::Null);
    for (id, code, text, queue) in [
        (
            "hi-support",
            "hi",
            "Welcome to {{queue.name}}, {{ customer.first_name }}!",
            "support",
        ),
        ("refund", "refund", "Your refund is on its way.", "billing"),
        ("bye", "bye", "Goodbye {{customer.name}}.", ""),
    ] {
        let mut body = json!({"id": id, "code": code, "text": text});
        if !queue.is_empty() {
            body["queue"] = json!(queue);
        }
        c.expect("POST", path, ADMIN, Some(body), 201).await;
    }
    // Refusals, each with its code; none of them is kept.
    for (token, body, status, code) in [
        (
            ann.as_str(),
            json!({"id": "x", "code": "x", "text": "x"}),
            403,
            "forbidden",
        ),
        (
            ADMIN,
            json!({"id": "x", "code": "Not Ok", "text": "x"}),
            400,
            "invalid_input",
        ),
        (
            ADMIN,
            json!({"id": "x", "code": "x", "text": "Hi {{customer.email}}"}),
            400,
            "invalid_input",
        ),
        (
            ADMIN,
            json!({"id": "x", "code": "x", "text": "Hi {{customer.name"}),
            400,
            "invalid_input",
        ),
        (
            ADMIN,
            json!({"id": "x", "code": "x", "text": "  "}),
            400,
            "invalid_input",
        ),
        (
            ADMIN,
            json!({"id": "x", "code": "x", "text": "x", "queue": "nowhere"}),
            404,
            "unknown_queue",
        ),
        (
            ADMIN,
            json!({"id": "hi", "code": "other", "text": "x"}),
            409,
            "already_exists",
        ),
        (
            ADMIN,
            json!({"id": "x", "code": "hi", "text": "again"}),
            409,
            "already_exists",
        ),
        (
            ADMIN,
            json!({"id": "x", "code": "x", "text": "x", "extra": 1}),
            400,
            "invalid_json",
        ),
    ] {
        let (s, v) = c.call("POST", path, token, Some(body.clone())).await;
        assert_eq!((s, v["error"]["code"].as_str()), (status, Some(code)), "{body}: {v}");
    }
    let all = c.expect("GET", path, ADMIN, None, 200).await;
    let ids: Vec<&str> = all
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|r| r["id"].as_str())
        .collect();
    assert_eq!(ids, ["bye", "hi", "hi-support", "refund"]);
    let billing = c
        .expect("GET", &format!("{path}?queue=billing"), ADMIN, None, 200)
        .await;
    assert_eq!(billing.as_array().map(Vec::len), Some(1));

    // Ann's conversation with Carol, and what applies to Ann, filled for it.
    available(&c, &ann).await;
    let opened = c.customer_writes("carol", "Hello").await;
    let cid = opened["id"].as_str().expect("id").to_string();
    c.expect("POST", &conv(&cid, "accept"), &ann, None, 200).await;
    let mine = c
        .expect("GET", &format!("{path}?conversation={cid}"), &ann, None, 200)
        .await;
    let got: Vec<(String, String)> = mine
        .as_array()
        .expect("list")
        .iter()
        .map(|r| {
            (
                r["id"].as_str().unwrap_or("").to_string(),
                r["filled"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("bye".to_string(), "Goodbye Carol.".to_string()),
            ("hi-support".to_string(), "Welcome to Support, Carol!".to_string()),
        ],
        "the tenant's `hi` is replaced by support's, and billing's is not Ann's"
    );
    let (s, v) = c.call("GET", &format!("{path}?conversation={cid}"), &bob, None).await;
    assert_eq!((s, v["error"]["code"].as_str()), (403, Some("forbidden")), "{v}");
    let (s, v) = c.call("GET", &format!("{path}?conversation={cid}"), ADMIN, None).await;
    assert_eq!((s, v["error"]["code"].as_str()), (400, Some("invalid_input")), "{v}");
    let (s, v) = c.call("GET", &format!("{path}?colour=red"), ADMIN, None).await;
    assert_eq!(s, 400, "{v}");

    // A change and a delete, in force at once.
    let changed = c
        .expect(
            "PATCH",
            &format!("{path}/refund"),
            ADMIN,
            Some(json!({"queue": null, "text": "Refund for {{customer.first_name}} is on its way."})),
            200,
        )
        .await;
    assert_eq!(
        (changed["queue"].clone(), changed["code"].clone()),
        (Value::Null, json!("refund"))
    );
    let (s, v) = c.call("PATCH", &format!("{path}/refund"), ADMIN, Some(json!({}))).await;
    assert_eq!((s, v["error"]["code"].as_str()), (400, Some("invalid_input")), "{v}");
    let (s, v) = c
        .call("PATCH", &format!("{path}/ghost"), ADMIN, Some(json!({"code": "g"})))
        .await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (404, Some("unknown_canned_response")),
        "{v}"
    );
    c.expect("DELETE", &format!("{path}/bye"), ADMIN, None, 204).await;
    let (s, v) = c.call("DELETE", &format!("{path}/bye"), ADMIN, None).await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (404, Some("unknown_canned_response")),
        "{v}"
    );
    let (s, _) = c.call("GET", &format!("{path}/hi"), &ann, None).await;
    assert_eq!(s, 403);
    let before = c.expect("GET", path, ADMIN, None, 200).await;

    p.kill();
    let p = Process::start(dir.path(), &[]);
    let c = Client::new(&p.base);
    assert_eq!(c.expect("GET", path, ADMIN, None, 200).await, before);
    let refund = c.expect("GET", &format!("{path}/refund"), ADMIN, None, 200).await;
    assert_eq!(refund["text"], "Refund for {{customer.first_name}} is on its way.");
    let mine = c
        .expect("GET", &format!("{path}?conversation={cid}"), &ann, None, 200)
        .await;
    let filled: Vec<&str> = mine
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|r| r["filled"].as_str())
        .collect();
    assert_eq!(
        filled,
        ["Welcome to Support, Carol!", "Refund for Carol is on its way."]
    );
    p.kill();
}

/// Carol types on the demo customer page: Ann's desktop is told `customer_typing` with
/// an `until` a few seconds on, not again for every keystroke, `off` when Carol stops,
/// and nothing when she had not started. Her message ends the typing, so her next
/// keystroke is told at once. The admin types as the customer over REST alike; a
/// supervisor may not; an ended conversation refuses it.
#[actix_web::test]
async fn the_customers_typing_reaches_the_desktop_bounded_in_rate() {
    let dir = tempfile::tempdir().expect("temp dir");
    let p = Process::start(dir.path(), &[]);
    let c = Client::new(&p.base);
    let ann = c.agent("ann", "Ann").await;
    available(&c, &ann).await;
    let mut desk = desktop(&p, &ann).await;
    let http = awc::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .finish();
    let demo = |path: &str, body: Value| {
        let url = format!("{}{path}", p.base);
        let http = http.clone();
        async move { common::request(&http, &url, "POST", Some(CUSTOMER_KEY), Some(body)).await }
    };
    let opened = demo("/demo/api/messages", json!({"name": "Carol", "text": "Hi"})).await;
    let cid = opened.body["id"].as_str().expect("id").to_string();
    desk.wait_for("offer").await;
    c.expect("POST", &conv(&cid, "accept"), &ann, None, 200).await;
    let typing = format!("/demo/api/conversations/{cid}/typing");

    // An `off` before any `on` tells nothing; the `on` does, with its `until`.
    assert_eq!(demo(&typing, json!({"on": false})).await.status, 204);
    assert_eq!(demo(&typing, json!({"on": true})).await.status, 204);
    let frame = desk.wait_for("customer_typing").await;
    assert_eq!(
        (frame["conversation_id"].as_str(), frame["on"].as_bool()),
        (Some(cid.as_str()), Some(true))
    );
    let until = chrono::DateTime::parse_from_rfc3339(frame["until"].as_str().expect("until")).expect("time");
    let ahead = until.timestamp_millis() - chrono::Utc::now().timestamp_millis();
    assert!((1_000..=6_000).contains(&ahead), "shown for a few seconds: {ahead} ms");
    // More keystrokes within the repeat bound (3 s) are not told again; stopping is.
    let since = std::time::Instant::now();
    for _ in 0..3 {
        assert_eq!(demo(&typing, json!({"on": true})).await.status, 204);
    }
    let within_bound = since.elapsed() < std::time::Duration::from_millis(2_900);
    assert_eq!(demo(&typing, json!({"on": false})).await.status, 204);
    let mut repeated = 0;
    let off = loop {
        let f = desk.wait_for("customer_typing").await;
        if f["on"] == false {
            break f;
        }
        repeated += 1;
    };
    assert_eq!(off["until"], Value::Null);
    // A machine slow enough to pass the bound meanwhile may see one `on` again; never
    // one per keystroke.
    assert!(repeated <= usize::from(!within_bound), "{repeated} `on`s told again");

    // Typing, then her message: the next keystroke is told at once.
    assert_eq!(demo(&typing, json!({"on": true})).await.status, 204);
    assert_eq!(desk.wait_for("customer_typing").await["on"], true);
    demo("/demo/api/messages", json!({"name": "Carol", "text": "My order"})).await;
    desk.wait_for_match("Carol's message", |v| {
        v["type"] == "message" && v["message"]["text"] == "My order"
    })
    .await;
    c.expect("POST", &conv(&cid, "typing"), ADMIN, Some(json!({"on": true})), 204)
        .await;
    assert_eq!(desk.wait_for("customer_typing").await["on"], true);

    // Bad input and other callers.
    let sup = c
        .expect(
            "POST",
            "/api/v1/supervisors",
            ADMIN,
            Some(json!({"id": "s1", "name": "Sue"})),
            201,
        )
        .await;
    let sup_token = sup["token"].as_str().expect("token");
    let (s, v) = c
        .call("POST", &conv(&cid, "typing"), sup_token, Some(json!({"on": true})))
        .await;
    assert_eq!((s, v["error"]["code"].as_str()), (403, Some("forbidden")), "{v}");
    let (s, v) = c
        .call("POST", &conv(&cid, "typing"), ADMIN, Some(json!({"on": "yes"})))
        .await;
    assert_eq!((s, v["error"]["code"].as_str()), (400, Some("invalid_json")), "{v}");
    assert_eq!(demo(&typing, json!({"typing": true})).await.status, 400);
    c.expect("POST", &conv(&cid, "end"), &ann, None, 200).await;
    let ended = demo(&typing, json!({"on": true})).await;
    assert_eq!(
        (ended.status, ended.body["error"]["code"].as_str()),
        (409, Some("conversation_ended")),
        "{}",
        ended.body
    );
    p.kill();
}

/// The OpenAPI description the server serves has the new endpoints, the note fields,
/// the desktop's `note` command and its `customer_typing` event.
#[actix_web::test]
async fn the_openapi_description_has_notes_canned_responses_and_typing() {
    let s = common::TestServer::start().await;
    let doc = s.call("GET", "/api/v1/openapi.json", None, None).await.expect(200);
    for (method, path) in [
        ("post", "/api/v1/conversations/{id}/notes"),
        ("post", "/api/v1/conversations/{id}/typing"),
        ("post", "/api/v1/canned-responses"),
        ("get", "/api/v1/canned-responses"),
        ("get", "/api/v1/canned-responses/{id}"),
        ("patch", "/api/v1/canned-responses/{id}"),
        ("delete", "/api/v1/canned-responses/{id}"),
    ] {
        assert!(doc["paths"][path][method].is_object(), "{method} {path} missing");
    }
    let schemas = &doc["components"]["schemas"];
    assert!(schemas["MessageDto"]["properties"]["internal"].is_object());
    assert!(schemas["OfferDto"]["properties"]["note"].is_object());
    assert!(schemas["OfferEvent"]["properties"]["note"].is_object());
    assert_eq!(schemas["Transfer"]["properties"]["note"]["maxLength"], 1000);
    assert!(schemas["ServerEvent"].to_string().contains("\"customer_typing\""));
    assert!(schemas["DesktopCommand"].to_string().contains("\"note\""));
}

/// The texts the demo customer of `key` has been sent by the system, in order.
async fn system_texts(p: &Process, key: &str, cid: &str) -> Vec<String> {
    let http = awc::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .finish();
    let a = common::request(
        &http,
        &format!("{}/demo/api/conversations/{cid}", p.base),
        "GET",
        Some(key),
        None,
    )
    .await;
    a.body["messages"]
        .as_array()
        .map(|v| {
            v.iter()
                .filter(|m| m["author"]["kind"] == "system")
                .filter_map(|m| m["text"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// The admin gives queue `support` place-in-line messages (a bad setting is refused and
/// changes nothing). Carol and then Dan write from the demo page while no agent is
/// available: each is told their place at once, without an estimate (no recent waits).
/// Ann takes Carol's chat: at the next sweep (every 5 s here) Dan is told he is now first.
/// After a kill -9 and a restart the setting is still the queue's.
#[actix_web::test]
async fn a_waiting_customer_is_told_its_place_in_line() {
    let dir = tempfile::tempdir().expect("temp dir");
    let p = Process::start(dir.path(), &[]);
    let c = Client::new(&p.base);
    let updates = json!({
        "templates": {
            "default": {
                "text": "You are number {{position}} in line; about {{wait_minutes}} min.",
                "text_without_wait": "You are number {{position}} in line."
            }
        },
        "min_interval_ms": 5000
    });
    let mut bad = updates.clone();
    bad["templates"]["default"]["text_without_wait"] = json!("About {{wait_minutes}} min.");
    let (s, v) = c
        .call(
            "PATCH",
            "/api/v1/queues/support",
            ADMIN,
            Some(json!({"place_updates": bad})),
        )
        .await;
    assert_eq!((s, v["error"]["code"].as_str()), (400, Some("invalid_input")), "{v}");
    assert!(c
        .expect("GET", "/api/v1/queues/support", ADMIN, None, 200)
        .await
        .get("place_updates")
        .is_none());
    let q = c
        .expect(
            "PATCH",
            "/api/v1/queues/support",
            ADMIN,
            Some(json!({"place_updates": updates})),
            200,
        )
        .await;
    assert_eq!(q["place_updates"]["position_step"], 1, "defaults filled in: {q}");
    assert_eq!(q["place_updates"]["min_interval_ms"], 5000);

    let http = awc::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .finish();
    let dan_key = "beside-dan-key-0123456789abcdef0123456789";
    let mut ids = Vec::new();
    for (key, name) in [(CUSTOMER_KEY, "Carol"), (dan_key, "Dan")] {
        let a = common::request(
            &http,
            &format!("{}/demo/api/messages", p.base),
            "POST",
            Some(key),
            Some(json!({"name": name, "text": "Hello"})),
        )
        .await;
        assert_eq!(a.status, 201, "{}", a.body);
        ids.push(a.body["id"].as_str().expect("id").to_string());
    }
    assert_eq!(
        system_texts(&p, CUSTOMER_KEY, &ids[0]).await,
        ["You are number 1 in line."]
    );
    assert_eq!(system_texts(&p, dan_key, &ids[1]).await, ["You are number 2 in line."]);

    let ann = c.agent("ann", "Ann").await;
    available(&c, &ann).await;
    c.expect("POST", &conv(&ids[0], "accept"), &ann, None, 200).await;
    // The next sweep comes within the interval (5 s); wait up to four of them.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let texts = system_texts(&p, dan_key, &ids[1]).await;
        if texts.len() == 2 {
            assert_eq!(texts[1], "You are number 1 in line.");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "Dan was not told he moved up: {texts:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    // Carol, now with Ann, is told nothing more.
    assert_eq!(system_texts(&p, CUSTOMER_KEY, &ids[0]).await.len(), 1);

    p.kill();
    let p = Process::start(dir.path(), &[]);
    let c = Client::new(&p.base);
    let q = c.expect("GET", "/api/v1/queues/support", ADMIN, None, 200).await;
    assert_eq!(
        q["place_updates"]["templates"]["default"]["text_without_wait"],
        "You are number {{position}} in line."
    );
    p.kill();
}
