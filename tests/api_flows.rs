//! ../shared/SPEC.md's flows end to end: agents on WebSocket desktops, a customer over REST.

mod common;

use chrono::{DateTime, Utc};
use common::*;
use serde_json::{json, Value};

fn at(v: &Value) -> DateTime<Utc> {
    v.as_str()
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_else(|| panic!("not an RFC 3339 time: {v}"))
}

fn path(cid: &str, action: &str) -> String {
    format!("/api/v1/conversations/{cid}/{action}")
}

/// A customer writes over REST; Ann's desktop gets an offer with the queue name, source
/// page, customer, first text and its times; she accepts and gets the conversation;
/// messages go both ways in order; she ends it, owes a wrap-up, finds the reason with the
/// search filter, submits it, and at once receives the conversation that waited meanwhile.
#[actix_web::test]
async fn offer_accept_chat_end_wrapup_then_next_conversation() {
    let s = TestServer::start().await;
    let ann = s.agent("ann", "Ann", &["support"]).await;
    let mut d = s.available_desktop(&ann).await;

    let c = s.customer_writes("cust-1", "Carol", "Hello, I need help").await;
    let cid = id_of(&c);
    assert_eq!(c["channel"], "rest");
    let offer = d.wait_for("offer").await;
    assert_eq!(offer["conversation_id"], cid.as_str());
    assert_eq!(offer["kind"], "new");
    assert_eq!(offer["queue"], "support");
    assert_eq!(offer["queue_name"], "Support");
    assert_eq!(offer["source_page"], "Demo Page");
    assert_eq!(offer["customer"], json!({"id": "cust-1", "name": "Carol"}));
    assert_eq!(offer["text"], "Hello, I need help");
    assert_eq!(offer["from_agent"], Value::Null);
    assert_eq!(at(&offer["received_at"]), at(&c["received_at"]));
    assert!(at(&offer["offered_at"]) >= at(&offer["received_at"]));
    assert!(at(&offer["expires_at"]) > at(&offer["offered_at"]));

    let view = s.conversation(&cid).await;
    assert_eq!(view["state"], "offered");
    assert_eq!(view["offer"]["agent"], "ann");
    assert_eq!(view["offer"]["kind"], "new");
    assert_eq!(view["conference_state"], "none");

    let reply = d.command(json!({"type": "accept", "conversation_id": cid})).await;
    assert_eq!(
        reply,
        json!({"type": "reply", "request_id": "r2", "ok": true, "error": null})
    );
    let conv = d.wait_for("conversation").await;
    assert_eq!(conv["conversation"]["state"], "active");
    assert_eq!(conv["conversation"]["owner"], "ann");
    assert_eq!(texts(&conv["conversation"]), ["Hello, I need help"]);

    // Messages both ways: customer (admin as customer), agent over REST, agent over WS.
    let m = s
        .post(&path(&cid, "messages"), ADMIN, json!({"text": "Are you there?"}))
        .await
        .expect(201);
    assert_eq!(m["author"]["kind"], "customer");
    let m = s
        .post(&path(&cid, "messages"), &ann, json!({"text": "Yes, how can I help?"}))
        .await
        .expect(201);
    assert_eq!(m["author"], json!({"kind": "agent", "id": "ann", "name": "Ann"}));
    s.post(&path(&cid, "messages"), ADMIN, json!({"text": "My order is late"}))
        .await
        .expect(201);
    let reply = d
        .command(json!({"type": "send", "conversation_id": cid, "text": "Let me check"}))
        .await;
    assert_eq!(reply["ok"], true, "{reply}");
    let mut last_seq = 1;
    for expected in [
        "Are you there?",
        "Yes, how can I help?",
        "My order is late",
        "Let me check",
    ] {
        let m = d.wait_for_in("message", &cid).await;
        assert_eq!(m["message"]["text"], expected);
        let seq = m["message"]["seq"].as_u64().expect("seq");
        assert!(seq > last_seq, "messages out of order");
        last_seq = seq;
    }
    assert_eq!(
        texts(&s.conversation(&cid).await),
        [
            "Hello, I need help",
            "Are you there?",
            "Yes, how can I help?",
            "My order is late",
            "Let me check"
        ]
    );

    // A second customer waits while Ann is busy.
    let c2 = s.customer_writes("cust-2", "Dave", "Hi there").await;
    let cid2 = id_of(&c2);
    assert_eq!(c2["state"], "queued");

    let ended = s.post_empty(&path(&cid, "end"), &ann).await.expect(200);
    assert_eq!(ended["state"], "ended");
    assert_eq!(ended["ended_reason"], "agent_ended");
    let e = d.wait_for_in("conversation_ended", &cid).await;
    assert_eq!(e["reason"], "agent_ended");
    let w = d.wait_for_in("wrapup_required", &cid).await;
    assert!(w["reasons"].as_array().expect("reasons").len() >= 3);

    // The wrap-up still holds Ann's only slot.
    let me = s.get("/api/v1/agents/ann", &ann).await.expect(200);
    assert_eq!(me["load"], 1);
    assert_eq!(me["wrapups"][0]["id"], cid.as_str());
    assert_eq!(s.conversation(&cid2).await["state"], "queued");

    let reasons = s.get("/api/v1/wrapup-reasons?q=RESOL", &ann).await.expect(200);
    assert_eq!(reasons, json!([{"code": "resolved", "label": "Resolved"}]));
    let all = s.get("/api/v1/wrapup-reasons", &ann).await.expect(200);
    assert!(all.as_array().expect("list").len() >= 3);
    s.post(&path(&cid, "wrapup"), &ann, json!({"reason": "resolved"}))
        .await
        .expect(200);

    let next = d.wait_for("offer").await;
    assert_eq!(next["conversation_id"], cid2.as_str());
    assert_eq!(next["text"], "Hi there");
}

/// Ann lets an offer expire: it is withdrawn, she goes to RONA (reason `offer_expired`),
/// and the conversation goes to Bob keeping its place (`received_at`). Ann is offered
/// nothing while in RONA and only leaves it by setting herself available.
#[actix_web::test]
async fn rona_then_next_agent_then_manual_return() {
    let s = TestServer::with(|c| c.routing.offer_timeout_ms = SHORT_MS).await;
    let ann = s.agent("ann", "Ann", &["support"]).await;
    let bob = s.agent("bob", "Bob", &["support"]).await;
    let mut da = s.available_desktop(&ann).await;

    let c = s.customer_writes("cust-1", "Carol", "Anyone?").await;
    let cid = id_of(&c);
    assert_eq!(da.wait_for("offer").await["conversation_id"], cid.as_str());
    let w = da.wait_for("offer_withdrawn").await;
    assert_eq!(
        w,
        json!({"type": "offer_withdrawn", "conversation_id": cid, "reason": "expired"})
    );
    let st = da.wait_for("state_changed").await;
    assert_eq!(st["state"], "rona");
    assert_eq!(st["reason"], "offer_expired");
    let late = s.post_empty(&path(&cid, "accept"), &ann).await;
    assert_eq!(late.status, 409, "{:?}", late);
    assert!(["offer_expired", "not_offered_to_you"].contains(&late.code()));

    // Back in the queue with its original place; Bob gets it when he becomes available.
    let view = s.conversation(&cid).await;
    assert_eq!(view["state"], "queued");
    assert_eq!(view["received_at"], c["received_at"]);
    let agents = s.get("/api/v1/agents?state=rona", ADMIN).await.expect(200);
    assert_eq!(agents.as_array().expect("list").len(), 1);
    assert_eq!(agents[0]["id"], "ann");

    let mut db = s.available_desktop(&bob).await;
    let o = db.wait_for("offer").await;
    assert_eq!(o["conversation_id"], cid.as_str());
    assert_eq!(o["received_at"], c["received_at"]);
    let r = db.command(json!({"type": "accept", "conversation_id": cid})).await;
    assert_eq!(r["ok"], true, "{r}");

    // Ann stays in RONA until she acts.
    assert_eq!(s.agent_detail("ann").await["state"], "rona");
    let r = da.command(json!({"type": "set_state", "state": "available"})).await;
    assert_eq!(r["ok"], true, "{r}");
    let st = da.wait_for("state_changed").await;
    assert_eq!(st["state"], "available");
    assert_eq!(st["reason"], Value::Null);
}

/// Ann transfers to Bob: she leaves at once and owes a wrap-up; the answer is 202 and the
/// conversation already shows the transfer offer; Bob accepts and becomes the owner with
/// the transcript.
#[actix_web::test]
async fn transfer_to_agent_taken() {
    let s = TestServer::start().await;
    let ann = s.agent("ann", "Ann", &["support"]).await;
    let bob = s.agent("bob", "Bob", &["support"]).await;
    let mut da = s.available_desktop(&ann).await;
    let cid = id_of(&s.customer_writes("cust-1", "Carol", "Billing question").await);
    da.wait_for("offer").await;
    s.post_empty(&path(&cid, "accept"), &ann).await.expect(200);
    let mut db = s.available_desktop(&bob).await;

    let t = s
        .post(&path(&cid, "transfer"), &ann, json!({"agent": "bob"}))
        .await
        .expect(202);
    assert_eq!(t["offer"]["agent"], "bob");
    assert_eq!(t["offer"]["kind"], "transfer");
    assert_eq!(t["offer"]["from_agent"], "ann");
    assert_eq!(t["owner"], Value::Null);
    da.wait_for_in("wrapup_required", &cid).await;

    let o = db.wait_for("offer").await;
    assert_eq!(o["kind"], "transfer");
    assert_eq!(o["from_agent"], "ann");
    assert_eq!(o["text"], "Billing question");
    let r = db.command(json!({"type": "accept", "conversation_id": cid})).await;
    assert_eq!(r["ok"], true, "{r}");
    let conv = db.wait_for("conversation").await;
    assert_eq!(conv["conversation"]["owner"], "bob");
    assert_eq!(texts(&conv["conversation"]), ["Billing question"]);

    let r = da
        .command(json!({"type": "wrapup", "conversation_id": cid, "reason": "escalated"}))
        .await;
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(s.agent_detail("ann").await["load"], 0);
}

/// A transfer that Bob lets expire puts Bob in RONA and drops the conversation
/// (`transfer_not_accepted`); Ann still owes her wrap-up.
#[actix_web::test]
async fn transfer_to_agent_not_taken_is_dropped() {
    let s = TestServer::with(|c| c.routing.transfer_timeout_ms = SHORT_MS).await;
    let ann = s.agent("ann", "Ann", &["support"]).await;
    let bob = s.agent("bob", "Bob", &["support"]).await;
    let mut da = s.available_desktop(&ann).await;
    let cid = id_of(&s.customer_writes("cust-1", "Carol", "Hello").await);
    da.wait_for("offer").await;
    s.post_empty(&path(&cid, "accept"), &ann).await.expect(200);
    let mut db = s.available_desktop(&bob).await;

    let r = da
        .command(json!({"type": "transfer", "conversation_id": cid, "agent": "bob"}))
        .await;
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(db.wait_for("offer").await["kind"], "transfer");
    assert_eq!(db.wait_for("offer_withdrawn").await["reason"], "expired");
    assert_eq!(db.wait_for("state_changed").await["state"], "rona");

    let view = s.conversation(&cid).await;
    assert_eq!(view["state"], "ended");
    assert_eq!(view["ended_reason"], "transfer_not_accepted");
    let ann_now = s.agent_detail("ann").await;
    assert_eq!(ann_now["wrapups"][0]["id"], cid.as_str());
}

/// Ann transfers to the billing queue: she leaves and owes a wrap-up; the conversation
/// arrives in billing and is offered to Cleo, who serves it.
#[actix_web::test]
async fn transfer_to_queue() {
    let s = TestServer::start().await;
    s.queue("billing", "Billing").await;
    let ann = s.agent("ann", "Ann", &["support"]).await;
    let cleo = s.agent("cleo", "Cleo", &["billing"]).await;
    let mut da = s.available_desktop(&ann).await;
    let mut dc = s.available_desktop(&cleo).await;
    let cid = id_of(&s.customer_writes("cust-1", "Carol", "Refund please").await);
    da.wait_for("offer").await;
    s.post_empty(&path(&cid, "accept"), &ann).await.expect(200);

    let t = s
        .post(&path(&cid, "transfer"), &ann, json!({"queue": "billing"}))
        .await
        .expect(202);
    assert_eq!(t["queue"], "billing");
    da.wait_for_in("wrapup_required", &cid).await;
    let o = dc.wait_for("offer").await;
    assert_eq!(o["conversation_id"], cid.as_str());
    assert_eq!(o["queue"], "billing");
    assert_eq!(o["queue_name"], "Billing");
    s.post_empty(&path(&cid, "accept"), &cleo).await.expect(200);
    assert_eq!(s.conversation(&cid).await["owner"], "cleo");
}

/// Ann invites Bob to a conference: 202 with `conference_requested`; Bob accepts and joins
/// as guest with a "Bob has joined the chat" message; Bob writes; Bob exits ("has left"
/// message, a wrap-up for Bob); after his wrap-up Ann invites him again, then ends the
/// conference: both owe and submit wrap-ups.
#[actix_web::test]
async fn conference_join_exit_and_end() {
    let s = TestServer::start().await;
    let ann = s.agent("ann", "Ann", &["support"]).await;
    let bob = s.agent("bob", "Bob", &["support"]).await;
    let mut da = s.available_desktop(&ann).await;
    let cid = id_of(&s.customer_writes("cust-1", "Carol", "Complex case").await);
    da.wait_for("offer").await;
    s.post_empty(&path(&cid, "accept"), &ann).await.expect(200);
    let mut db = s.available_desktop(&bob).await;

    let c = s
        .post(&path(&cid, "conference"), &ann, json!({"agent": "bob"}))
        .await
        .expect(202);
    assert_eq!(c["conference_state"], "conference_requested");
    assert_eq!(c["state"], "active");
    let o = db.wait_for("offer").await;
    assert_eq!(o["kind"], "conference");
    assert_eq!(o["from_agent"], "ann");
    let r = db.command(json!({"type": "accept", "conversation_id": cid})).await;
    assert_eq!(r["ok"], true, "{r}");
    let joined = da.wait_for_in("participant_joined", &cid).await;
    assert_eq!(joined["agent"], "bob");
    let m = da.wait_for_in("message", &cid).await;
    assert_eq!(m["message"]["text"], "Bob has joined the chat");
    assert_eq!(m["message"]["author"]["kind"], "system");
    let view = s.conversation(&cid).await;
    assert_eq!(view["conference_state"], "conference");
    assert_eq!(view["guest"], "bob");

    // The guest writes; the owner sees it. Bob's own token may read the conversation.
    s.post(&path(&cid, "messages"), &bob, json!({"text": "Hi, Bob here"}))
        .await
        .expect(201);
    assert_eq!(da.wait_for_in("message", &cid).await["message"]["text"], "Hi, Bob here");
    s.get(&format!("/api/v1/conversations/{cid}"), &bob).await.expect(200);

    // Guest exit.
    let r = db
        .command(json!({"type": "exit_conference", "conversation_id": cid}))
        .await;
    assert_eq!(r["ok"], true, "{r}");
    // The system message and `participant_left` may come in either order.
    let (mut left, mut said) = (false, false);
    while !(left && said) {
        let e = da.next().await;
        match e["type"].as_str() {
            Some("participant_left") => left = e["agent"] == "bob",
            Some("message") => said = e["message"]["text"] == "Bob has left the chat",
            _ => {}
        }
    }
    db.wait_for_in("wrapup_required", &cid).await;
    let view = s.conversation(&cid).await;
    assert_eq!(texts(&view).last().map(String::as_str), Some("Bob has left the chat"));
    assert_eq!(view["conference_state"], "none");
    assert_eq!(view["state"], "active");
    s.post(&path(&cid, "wrapup"), &bob, json!({"reason": "other"}))
        .await
        .expect(200);

    // Again, then the owner ends the conference for everyone.
    s.post(&path(&cid, "conference"), &ann, json!({"agent": "bob"}))
        .await
        .expect(202);
    db.wait_for("offer").await;
    s.post_empty(&path(&cid, "accept"), &bob).await.expect(200);
    let r = da
        .command(json!({"type": "end_conference", "conversation_id": cid}))
        .await;
    assert_eq!(r["ok"], true, "{r}");
    for d in [&mut da, &mut db] {
        d.wait_for_in("conversation_ended", &cid).await;
        d.wait_for_in("wrapup_required", &cid).await;
    }
    assert_eq!(s.conversation(&cid).await["state"], "ended");
    for t in [&ann, &bob] {
        s.post(&path(&cid, "wrapup"), t, json!({"reason": "resolved"}))
            .await
            .expect(200);
    }
    assert_eq!(s.agent_detail("ann").await["load"], 0);
    assert_eq!(s.agent_detail("bob").await["load"], 0);
}

/// Bob lets a conference invitation expire: he goes to RONA, Ann is told
/// (`conference_not_accepted`) and the chat goes on without him.
#[actix_web::test]
async fn conference_not_accepted() {
    let s = TestServer::with(|c| c.routing.conference_timeout_ms = SHORT_MS).await;
    let ann = s.agent("ann", "Ann", &["support"]).await;
    let bob = s.agent("bob", "Bob", &["support"]).await;
    let mut da = s.available_desktop(&ann).await;
    let cid = id_of(&s.customer_writes("cust-1", "Carol", "Hello").await);
    da.wait_for("offer").await;
    s.post_empty(&path(&cid, "accept"), &ann).await.expect(200);
    let mut db = s.available_desktop(&bob).await;

    let r = da
        .command(json!({"type": "conference", "conversation_id": cid, "agent": "bob"}))
        .await;
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(db.wait_for("offer").await["kind"], "conference");
    assert_eq!(db.wait_for("offer_withdrawn").await["reason"], "expired");
    assert_eq!(db.wait_for("state_changed").await["state"], "rona");
    let n = da.wait_for_in("conference_not_accepted", &cid).await;
    assert_eq!(n["agent"], "bob");
    let view = s.conversation(&cid).await;
    assert_eq!(view["state"], "active");
    assert_eq!(view["conference_state"], "none");
    s.post(&path(&cid, "messages"), &ann, json!({"text": "Still here"}))
        .await
        .expect(201);
}

/// The customer ends first (admin as the customer): the owner is told and owes a wrap-up.
#[actix_web::test]
async fn customer_ends_first() {
    let s = TestServer::start().await;
    let ann = s.agent("ann", "Ann", &["support"]).await;
    let mut da = s.available_desktop(&ann).await;
    let cid = id_of(&s.customer_writes("cust-1", "Carol", "Hello").await);
    da.wait_for("offer").await;
    s.post_empty(&path(&cid, "accept"), &ann).await.expect(200);
    let ended = s.post_empty(&path(&cid, "end"), ADMIN).await.expect(200);
    assert_eq!(ended["ended_reason"], "customer_ended");
    assert_eq!(
        da.wait_for_in("conversation_ended", &cid).await["reason"],
        "customer_ended"
    );
    da.wait_for_in("wrapup_required", &cid).await;
}

/// A later message from the same customer joins the open conversation (201 either way).
#[actix_web::test]
async fn later_customer_message_joins_the_open_conversation() {
    let s = TestServer::start().await;
    let first = s.customer_writes("cust-1", "Carol", "One").await;
    let second = s.customer_writes("cust-1", "Carol", "Two").await;
    assert_eq!(first["id"], second["id"]);
    assert_eq!(texts(&second), ["One", "Two"]);
}

/// A desktop that reconnects gets `hello` with everything: its offer, its conversation
/// with the transcript, and its owed wrap-up. Two desktops of one agent both get events.
#[actix_web::test]
async fn reconnect_resumes_from_hello_and_several_desktops_get_every_event() {
    let s = TestServer::start().await;
    let ann = s.agent_with_capacity("ann", "Ann", &["support"], 3).await;
    let mut d = s.available_desktop(&ann).await;
    let done = id_of(&s.customer_writes("cust-1", "Carol", "First").await);
    d.wait_for("offer").await;
    s.post_empty(&path(&done, "accept"), &ann).await.expect(200);
    s.post_empty(&path(&done, "end"), &ann).await.expect(200);
    let active = id_of(&s.customer_writes("cust-2", "Dave", "Second").await);
    d.wait_for_in("offer", &active).await;
    s.post_empty(&path(&active, "accept"), &ann).await.expect(200);
    s.post(&path(&active, "messages"), &ann, json!({"text": "Hello Dave"}))
        .await
        .expect(201);
    let offered = id_of(&s.customer_writes("cust-3", "Erin", "Third").await);
    d.wait_for_in("offer", &offered).await;
    d.close().await;

    let (mut d1, hello) = s.desktop(&ann).await;
    let agent = &hello["agent"];
    assert_eq!(agent["id"], "ann");
    assert_eq!(agent["state"], "available");
    assert_eq!(agent["load"], 3);
    assert_eq!(agent["offers"][0]["id"], offered.as_str());
    assert_eq!(agent["offers"][0]["offer"]["agent"], "ann");
    assert_eq!(agent["conversations"][0]["id"], active.as_str());
    assert_eq!(texts(&agent["conversations"][0]), ["Second", "Hello Dave"]);
    assert_eq!(agent["wrapups"][0]["id"], done.as_str());
    // The same as GET /agents/{id}.
    assert_eq!(*agent, s.agent_detail("ann").await);

    let (mut d2, _) = s.desktop(&ann).await;
    s.post(&path(&active, "messages"), ADMIN, json!({"text": "Still there?"}))
        .await
        .expect(201);
    for d in [&mut d1, &mut d2] {
        assert_eq!(
            d.wait_for_in("message", &active).await["message"]["text"],
            "Still there?"
        );
    }
}

/// A refused desktop command answers `ok: false` with the same error as REST; a frame that
/// is not a command answers `invalid_command` (echoing its `request_id`); the desktop
/// stays connected and keeps working.
#[actix_web::test]
async fn desktop_command_errors_keep_the_desktop_connected() {
    let s = TestServer::start().await;
    let ann = s.agent("ann", "Ann", &["support"]).await;
    let (mut d, hello) = s.desktop(&ann).await;
    assert_eq!(hello["agent"]["state"], "logged_out");

    let r = d.command(json!({"type": "accept", "conversation_id": "nope"})).await;
    assert_eq!(r["ok"], false);
    assert_eq!(r["error"]["code"], "unknown_conversation");
    let r = d.command(json!({"type": "set_state", "state": "rona"})).await;
    assert_eq!(r["error"]["code"], "state_not_settable");
    let r = d.command(json!({"type": "transfer", "conversation_id": "c-1"})).await;
    assert_eq!(r["error"]["code"], "invalid_input");
    let r = d.command(json!({"type": "dance"})).await;
    assert_eq!(r["error"]["code"], "invalid_command");
    assert_eq!(r["request_id"], "r4");
    d.send_raw("not json").await;
    let r = d.wait_for("reply").await;
    assert_eq!(r["request_id"], Value::Null);
    assert_eq!(r["error"]["code"], "invalid_command");

    let r = d
        .command(json!({"type": "set_state", "state": "idle", "idle_code": "lunch"}))
        .await;
    assert_eq!(r["ok"], true, "{r}");
    let st = d.wait_for("state_changed").await;
    assert_eq!(st["state"], "idle");
    assert_eq!(st["idle_code"], "lunch");
}
