//! Finished conversations over the real binary: a conversation that is over (ended, and
//! every wrap-up it required submitted) reads, and refuses commands, exactly as it did
//! while it was open, also after a restart on the same store.

use serde_json::{json, Value};

mod common;
use common::{Process, ProcessClient as Client, ADMIN};

fn conv(cid: &str, action: &str) -> String {
    if action.is_empty() {
        format!("/api/v1/conversations/{cid}")
    } else {
        format!("/api/v1/conversations/{cid}/{action}")
    }
}

/// Every command on a finished conversation, with the error it answers: the same codes a
/// conversation that is over has always given (accepting it was never offered to you;
/// a second wrap-up is owed by nobody; everything else needs an open conversation).
async fn check_refusals(c: &Client, cid: &str, ann: &str) {
    let cases: Vec<(&str, &str, Option<Value>, u16, &str)> = vec![
        (ann, "accept", None, 409, "not_offered_to_you"),
        (
            ann,
            "messages",
            Some(json!({"text": "still there?"})),
            409,
            "conversation_ended",
        ),
        (
            ADMIN,
            "messages",
            Some(json!({"text": "hello again"})),
            409,
            "conversation_ended",
        ),
        (
            ann,
            "transfer",
            Some(json!({"agent": "bob"})),
            409,
            "conversation_ended",
        ),
        (
            ann,
            "transfer",
            Some(json!({"queue": "support"})),
            409,
            "conversation_ended",
        ),
        (
            ann,
            "conference",
            Some(json!({"agent": "bob"})),
            409,
            "conversation_ended",
        ),
        (ann, "conference/exit", None, 409, "conversation_ended"),
        (ann, "conference/end", None, 409, "conversation_ended"),
        (ann, "end", None, 409, "conversation_ended"),
        (ADMIN, "end", None, 409, "conversation_ended"),
        (
            ann,
            "wrapup",
            Some(json!({"reason": "resolved"})),
            409,
            "no_wrapup_owed",
        ),
    ];
    for (token, action, body, status, code) in cases {
        let (s, v) = c.call("POST", &conv(cid, action), token, body).await;
        assert_eq!((s, v["error"]["code"].as_str()), (status, Some(code)), "{action}: {v}");
    }
    // An unknown conversation is still unknown.
    let (s, v) = c.call("GET", &conv("c-999999", ""), ADMIN, None).await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (404, Some("unknown_conversation")),
        "{v}"
    );
    let (s, v) = c.call("POST", &conv("c-999999", "end"), ann, None).await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (404, Some("unknown_conversation")),
        "{v}"
    );
}

/// Ann takes Carol's chat, they talk, Ann ends it and wraps it up. The finished
/// conversation still reads in full for the admin (state ended, transcript, reason) and
/// for Ann, who handled it, but not for Bob, who never did; every command on it is
/// refused as before, and Carol's next message opens a new conversation. After a restart
/// on the same store, all of that holds unchanged.
#[actix_web::test]
async fn a_finished_conversation_reads_and_refuses_as_before_across_a_restart() {
    let dir = tempfile::tempdir().expect("temp dir");
    let p = Process::start(dir.path(), &[]);
    let c = Client::new(&p.base);
    let ann = c.agent("ann", "Ann").await;
    let bob = c.agent("bob", "Bob").await;
    c.expect(
        "PUT",
        "/api/v1/agents/me/state",
        &ann,
        Some(json!({"state": "available"})),
        200,
    )
    .await;

    let opened = c.customer_writes("carol", "Hello, I need help").await;
    let cid = opened["id"].as_str().expect("id").to_string();
    c.expect("POST", &conv(&cid, "accept"), &ann, None, 200).await;
    c.expect(
        "POST",
        &conv(&cid, "messages"),
        &ann,
        Some(json!({"text": "Hi Carol"})),
        201,
    )
    .await;
    c.expect(
        "POST",
        &conv(&cid, "messages"),
        ADMIN,
        Some(json!({"text": "Thanks"})),
        201,
    )
    .await;
    c.expect("POST", &conv(&cid, "end"), &ann, None, 200).await;
    // Ended but still owed a wrap-up: Ann may read it.
    c.expect("GET", &conv(&cid, ""), &ann, None, 200).await;
    let wrapped = c
        .expect(
            "POST",
            &conv(&cid, "wrapup"),
            &ann,
            Some(json!({"reason": "resolved"})),
            200,
        )
        .await;
    assert_eq!(wrapped["state"], "ended");

    let view = c.expect("GET", &conv(&cid, ""), ADMIN, None, 200).await;
    assert_eq!(view, wrapped);
    assert_eq!(view["state"], "ended");
    assert_eq!(view["ended_reason"], "agent_ended");
    assert_eq!(view["owner"], Value::Null);
    assert_eq!(view["offer"], Value::Null);
    let texts: Vec<&str> = view["transcript"]
        .as_array()
        .expect("transcript")
        .iter()
        .filter_map(|m| m["text"].as_str())
        .collect();
    assert_eq!(texts, ["Hello, I need help", "Hi Carol", "Thanks"]);
    // Ann handled it and reads it still; Bob never did (docs/DECISIONS.md).
    assert_eq!(c.expect("GET", &conv(&cid, ""), &ann, None, 200).await, view);
    let (s, v) = c.call("GET", &conv(&cid, ""), &bob, None).await;
    assert_eq!((s, v["error"]["code"].as_str()), (403, Some("forbidden")), "{v}");

    check_refusals(&c, &cid, &ann).await;

    // Carol writes again: a new conversation, not the finished one.
    let again = c.customer_writes("carol", "One more thing").await;
    assert_ne!(again["id"], opened["id"]);
    let again_id = again["id"].as_str().expect("id").to_string();

    p.kill();
    let p = Process::start(dir.path(), &[]);
    let c = Client::new(&p.base);
    let after = c.expect("GET", &conv(&cid, ""), ADMIN, None, 200).await;
    assert_eq!(after, view);
    assert_eq!(c.expect("GET", &conv(&cid, ""), &ann, None, 200).await, view);
    let (s, v) = c.call("GET", &conv(&cid, ""), &bob, None).await;
    assert_eq!((s, v["error"]["code"].as_str()), (403, Some("forbidden")), "{v}");
    check_refusals(&c, &cid, &ann).await;
    // The open one came back and is still Carol's open conversation.
    let joined = c.customer_writes("carol", "Hello?").await;
    assert_eq!(joined["id"].as_str(), Some(again_id.as_str()));
    p.kill();
}
