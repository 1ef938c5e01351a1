//! Satisfaction over HTTP (issue 26 item 7, docs/API-NOTES.md "Satisfaction"): a queue's
//! survey set and refused over REST, the question at the end of a served conversation,
//! the customer's answer kept once with the conversation's record (JSON and CSV) and
//! opening nothing, anything else opening a conversation, and, on the real binary, a
//! pending survey and a rating that survive a kill -9 and land exactly once.

use serde_json::{json, Value};

mod common;
use common::{texts, Process, ProcessClient as Client, TestServer, ADMIN};

const RECORDS: &str = "/api/v1/reports/conversations";
const QUESTION: &str = "How did we do? Answer 1 (poor) to 5 (great).";
const THANKS: &str = "Thank you for your answer.";

fn survey() -> Value {
    json!({"templates": {"default": {"question": QUESTION, "thanks": THANKS}}})
}

fn conv(id: &str, action: &str) -> String {
    format!("/api/v1/conversations/{id}/{action}")
}

fn id(v: &Value) -> String {
    v["id"].as_str().expect("id").to_string()
}

/// The admin gives queue `support` a survey: bad settings are 400 naming the field (a
/// wrong shape `invalid_json`, as every body) and change nothing; `GET` shows it with its window filled in. Ann serves Carol and ends the
/// chat: Carol is asked, as the chat's last message. Carol answers "4" after Ann's wrap-up
/// (the conversation is complete): the answer names her rated conversation, opens none,
/// is thanked, and her record shows the rating (JSON, `rated` filter, CSV). A second "5"
/// is a message like any other (one answer per conversation). Dan, asked too, writes
/// something else: that opens a conversation and his survey is gone.
#[actix_rt::test]
async fn a_served_customer_is_asked_and_the_answer_lands_once_on_the_record() {
    let s = TestServer::start().await;
    for (bad, field) in [
        (json!({"templates": {}}), "default"),
        (
            json!({"templates": {"default": {"question": "", "thanks": "t"}}}),
            "survey.templates.default.question",
        ),
        (
            json!({"templates": {"default": {"question": "q", "thanks": "t"}}, "window_ms": 10}),
            "survey.window_ms",
        ),
        (
            json!({"templates": {"fax": {"question": "q", "thanks": "t"}, "default": {"question": "q", "thanks": "t"}}}),
            "fax",
        ),
    ] {
        let e = s
            .call(
                "PATCH",
                "/api/v1/queues/support",
                Some(ADMIN),
                Some(json!({"survey": bad})),
            )
            .await;
        e.expect_error(400, "invalid_input");
        let message = e.body["error"]["message"].as_str().unwrap_or_default().to_string();
        assert!(message.contains(field), "{message} names {field}");
    }
    let e = s
        .call(
            "PATCH",
            "/api/v1/queues/support",
            Some(ADMIN),
            Some(json!({"survey": {"template": {}}})),
        )
        .await;
    e.expect_error(400, "invalid_json");
    let q = s.get("/api/v1/queues/support", ADMIN).await.expect(200);
    assert!(q.get("survey").is_none(), "nothing changed: {q}");
    let q = s
        .call(
            "PATCH",
            "/api/v1/queues/support",
            Some(ADMIN),
            Some(json!({"survey": survey()})),
        )
        .await
        .expect(200);
    assert_eq!(q["survey"]["window_ms"], 86_400_000, "the default window: {q}");
    assert_eq!(
        s.get("/api/v1/queues/support", ADMIN).await.expect(200)["survey"],
        q["survey"]
    );

    let ann = s.agent("ann", "Ann", &["support"]).await;
    s.set_state(&ann, "available").await;
    let carol = id(&s.customer_writes("carol", "Carol", "My order is late").await);
    s.post_empty(&conv(&carol, "accept"), &ann).await.expect(200);
    s.post(&conv(&carol, "messages"), &ann, json!({"text": "It ships today."}))
        .await
        .expect(201);
    s.post_empty(&conv(&carol, "end"), &ann).await.expect(200);
    let ended = s.conversation(&carol).await;
    assert_eq!(texts(&ended), ["My order is late", "It ships today.", QUESTION]);
    s.post(&conv(&carol, "wrapup"), &ann, json!({"reason": "resolved"}))
        .await
        .expect(200);
    let records = s.get(RECORDS, ADMIN).await.expect(200);
    assert_eq!(records["records"][0]["satisfaction"], Value::Null, "not answered yet");

    let answered = s.customer_writes("carol", "Carol", "4").await;
    assert_eq!(id(&answered), carol, "the rated conversation, not a new one");
    assert_eq!(answered["state"], "ended");
    assert_eq!(
        texts(&answered),
        ["My order is late", "It ships today.", QUESTION, "4", THANKS]
    );
    let records = s.get(RECORDS, ADMIN).await.expect(200);
    assert_eq!(records["records"].as_array().map(Vec::len), Some(1), "{records}");
    let rating = &records["records"][0]["satisfaction"];
    assert_eq!(rating["rating"], 4, "{records}");
    assert!(rating["at"].as_str().is_some_and(|t| t.ends_with('Z')), "{rating}");
    let rated = s.get(&format!("{RECORDS}?rated=true"), ADMIN).await.expect(200);
    assert_eq!(rated["records"][0]["id"], json!(carol));
    let unrated = s.get(&format!("{RECORDS}?rated=false"), ADMIN).await.expect(200);
    assert_eq!(unrated["records"], json!([]));
    s.get(&format!("{RECORDS}?rated=maybe"), ADMIN)
        .await
        .expect_error(400, "invalid_input");

    let mut csv = s
        .client
        .get(format!("{}{RECORDS}", s.base))
        .insert_header(("Authorization", format!("Bearer {ADMIN}")))
        .insert_header(("Accept", "text/csv"))
        .send()
        .await
        .expect("csv");
    let bytes = csv.body().limit(1 << 20).await.expect("body");
    let body = String::from_utf8_lossy(&bytes).to_string();
    let lines: Vec<&str> = body.lines().collect();
    assert!(lines[0].ends_with(",guests,satisfaction,satisfaction_at"), "{body}");
    let cells: Vec<&str> = lines[1].split(',').collect();
    assert_eq!(cells[cells.len() - 2], "4", "{body}");
    assert!(cells[cells.len() - 1].ends_with('Z'), "{body}");

    // One answer per conversation: the next "5" opens a conversation.
    let again = s.customer_writes("carol", "Carol", "5").await;
    assert_ne!(id(&again), carol);
    assert_eq!(again["state"], "offered", "a new chat, routed: {again}");
    let records = s.get(RECORDS, ADMIN).await.expect(200);
    assert_eq!(records["records"][0]["satisfaction"]["rating"], 4, "unchanged");

    // Dan is asked and writes something else: that is a new chat, and his survey is gone.
    s.post_empty(&conv(&id(&again), "accept"), &ann).await.expect(200);
    s.post_empty(&conv(&id(&again), "end"), &ann).await.expect(200);
    s.post(&conv(&id(&again), "wrapup"), &ann, json!({"reason": "resolved"}))
        .await
        .expect(200);
    let dan = id(&s.customer_writes("dan", "Dan", "Hi").await);
    s.post_empty(&conv(&dan, "accept"), &ann).await.expect(200);
    s.post_empty(&conv(&dan, "end"), &ann).await.expect(200);
    let other = s.customer_writes("dan", "Dan", "Actually, one more thing").await;
    assert_ne!(id(&other), dan);
    assert_eq!(texts(&other), ["Actually, one more thing"]);
    let later = s.customer_writes("dan", "Dan", "3").await;
    assert_eq!(id(&later), id(&other), "joins his open chat: the survey was dropped");

    // Removing the survey: nobody is asked any more.
    let q = s
        .call(
            "PATCH",
            "/api/v1/queues/support",
            Some(ADMIN),
            Some(json!({"survey": null})),
        )
        .await
        .expect(200);
    assert!(q.get("survey").is_none(), "{q}");
}

/// A customer who leaves a chat nobody accepted is not asked; nor is one whose chat was
/// closed at arrival by a full queue.
#[actix_rt::test]
async fn unserved_customers_are_not_asked() {
    let s = TestServer::start().await;
    s.call(
        "PATCH",
        "/api/v1/queues/support",
        Some(ADMIN),
        Some(json!({"survey": survey(), "wait_limit": {"max_waiting": 1, "reply": "Too many waiting."}})),
    )
    .await
    .expect(200);
    let erin = id(&s.customer_writes("erin", "Erin", "Hello?").await);
    let full = s.customer_writes("fay", "Fay", "Hello?").await;
    assert_eq!(full["ended_reason"], "queue_full");
    s.post_empty(&conv(&erin, "end"), ADMIN).await.expect(200);
    assert_eq!(texts(&s.conversation(&erin).await), ["Hello?"], "no question");
    assert_eq!(
        texts(&s.conversation(&id(&full)).await),
        ["Hello?", "Too many waiting."]
    );
    // Their "5" is a new chat.
    let next = s.customer_writes("erin", "Erin", "5").await;
    assert_ne!(id(&next), erin);
}

/// The real binary: Ann serves Carol and ends the chat (the question is pending), and the
/// server is killed. After the restart Carol's "5" is her answer, before Ann's wrap-up;
/// the wrap-up then makes the record, which carries the rating. Killed again: the
/// record and its rating are there once, the survey is gone (Carol's next "5" opens a
/// chat), and the survey setting is still the queue's.
#[actix_rt::test]
async fn a_pending_survey_and_its_rating_survive_a_kill_exactly_once() {
    let dir = tempfile::tempdir().expect("temp dir");
    let p = Process::start(dir.path(), &[]);
    let c = Client::new(&p.base);
    c.expect(
        "PATCH",
        "/api/v1/queues/support",
        ADMIN,
        Some(json!({"survey": survey()})),
        200,
    )
    .await;
    let ann = c.agent("ann", "Ann").await;
    c.expect(
        "PUT",
        "/api/v1/agents/me/state",
        &ann,
        Some(json!({"state": "available"})),
        200,
    )
    .await;
    let carol = id(&c.customer_writes("carol", "Hello").await);
    c.expect("POST", &conv(&carol, "accept"), &ann, None, 200).await;
    c.expect("POST", &conv(&carol, "end"), &ann, None, 200).await;
    p.kill();

    let p = Process::start(dir.path(), &[]);
    let c = Client::new(&p.base);
    let answered = c.customer_writes("carol", "5").await;
    assert_eq!(id(&answered), carol, "the pending survey came back");
    assert_eq!(texts(&answered), ["Hello", QUESTION, "5", THANKS]);
    c.expect(
        "POST",
        &conv(&carol, "wrapup"),
        &ann,
        Some(json!({"reason": "resolved"})),
        200,
    )
    .await;
    let records = c.expect("GET", RECORDS, ADMIN, None, 200).await;
    assert_eq!(records["records"][0]["satisfaction"]["rating"], 5, "{records}");
    p.kill();

    let p = Process::start(dir.path(), &[]);
    let c = Client::new(&p.base);
    let after = c.expect("GET", RECORDS, ADMIN, None, 200).await;
    assert_eq!(after, records, "the record and its rating, once");
    let q = c.expect("GET", "/api/v1/queues/support", ADMIN, None, 200).await;
    assert_eq!(q["survey"]["templates"]["default"]["question"], QUESTION);
    let next = c.customer_writes("carol", "5").await;
    assert_ne!(id(&next), carol, "answered once: the survey is gone for good");
    p.kill();
}
