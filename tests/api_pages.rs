//! The browser pages and the demo customer's API over real HTTP (the pages themselves run
//! in Chromium in `tests/browser.rs`).

mod common;

use common::*;
use serde_json::json;

const KEY: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
const OTHER_KEY: &str = "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210";

/// A raw GET: status, content type, Content-Security-Policy and body.
async fn page(s: &TestServer, path: &str) -> (u16, String, String, String) {
    let mut res = s
        .client
        .get(format!("{}{}", s.base, path))
        .send()
        .await
        .expect("request");
    let header = |name: &str| {
        res.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    let (ty, csp) = (header("content-type"), header("content-security-policy"));
    let body = res.body().limit(1 << 20).await.expect("body");
    (
        res.status().as_u16(),
        ty,
        csp,
        String::from_utf8_lossy(&body).into_owned(),
    )
}

/// A newcomer opens `/`: the desktop page and every module it loads come from the binary,
/// with a policy that lets the page load nothing from elsewhere.
#[actix_rt::test]
async fn the_desktop_page_and_its_assets_are_served_from_the_binary() {
    let s = TestServer::start().await;
    let (status, ty, csp, body) = page(&s, "/").await;
    assert_eq!(status, 200);
    assert!(ty.starts_with("text/html"), "{ty}");
    assert!(body.contains("Switchboard agent desktop"));
    assert!(
        csp.contains("default-src 'none'") && csp.contains("connect-src 'self'"),
        "{csp}"
    );
    for asset in [
        "/assets/app.js",
        "/assets/socket.js",
        "/assets/style.css",
        "/demo/customer.js",
    ] {
        let (status, ty, _, body) = page(&s, asset).await;
        assert_eq!(status, 200, "{asset}");
        assert!(
            ty.starts_with("text/javascript") || ty.starts_with("text/css"),
            "{asset}: {ty}"
        );
        assert!(
            !body.contains("http://") && !body.contains("https://"),
            "{asset} names another origin"
        );
    }
    let (status, _, _, _) = page(&s, "/assets/nope.js").await;
    assert_eq!(status, 404);
}

/// The desktop learns whose token it holds from `GET /api/v1/agents/me`.
#[actix_rt::test]
async fn an_agent_token_tells_whose_it_is() {
    let s = TestServer::start().await;
    let token = s.agent("a1", "Ann", &["support"]).await;
    let me = s.get("/api/v1/agents/me", &token).await.expect(200);
    assert_eq!(me["id"], "a1");
    assert_eq!(me["name"], "Ann");
    assert!(me["conversations"].is_array() && me["wrapups"].is_array() && me["offers"].is_array());
    s.get("/api/v1/agents/me", ADMIN).await.expect_error(403, "forbidden");
    s.get("/api/v1/agents/me", "nope")
        .await
        .expect_error(401, "unauthorized");
}

/// A demo customer writes without the admin token, reads the agent's reply, and ends the
/// chat; another customer key cannot see or end that conversation.
#[actix_rt::test]
async fn the_demo_customer_writes_reads_replies_and_ends() {
    let s = TestServer::start().await;
    let token = s.agent("a1", "Ann", &["support"]).await;
    let mut desk = s.available_desktop(&token).await;

    let first = s
        .post("/demo/api/messages", KEY, json!({"name": "Uma", "text": "Hello?"}))
        .await
        .expect(201);
    let cid = first["id"].as_str().expect("id").to_string();
    assert_eq!(first["messages"][0]["text"], "Hello?");
    let offer = desk.wait_for("offer").await;
    assert_eq!(offer["customer"]["name"], "Uma");
    assert_eq!(offer["source_page"], "Demo Page");
    let customer_id = offer["customer"]["id"].as_str().expect("customer id");
    assert!(customer_id.starts_with("web-") && !KEY.contains(&customer_id[4..]));

    s.post_empty(&format!("/api/v1/conversations/{cid}/accept"), &token)
        .await
        .expect(200);
    s.post(
        &format!("/api/v1/conversations/{cid}/messages"),
        &token,
        json!({"text": "Hi Uma"}),
    )
    .await
    .expect(201);
    // A second message joins the same conversation.
    let again = s
        .post("/demo/api/messages", KEY, json!({"name": "Uma", "text": "My order"}))
        .await
        .expect(201);
    assert_eq!(again["id"], cid.as_str());

    let view = s
        .get(&format!("/demo/api/conversations/{cid}?after=1"), KEY)
        .await
        .expect(200);
    assert_eq!(view["state"], "active");
    let texts: Vec<&str> = view["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .filter_map(|m| m["text"].as_str())
        .collect();
    assert_eq!(texts, ["Hi Uma", "My order"], "only the messages after seq 1");
    assert_eq!(view["messages"][0]["author"]["name"], "Ann");
    assert!(
        view["messages"][0]["author"]["id"].is_null(),
        "the customer sees no agent ids"
    );

    s.get(&format!("/demo/api/conversations/{cid}"), OTHER_KEY)
        .await
        .expect_error(404, "unknown_conversation");
    s.post_empty(&format!("/demo/api/conversations/{cid}/end"), OTHER_KEY)
        .await
        .expect_error(404, "unknown_conversation");
    s.get(&format!("/demo/api/conversations/{cid}"), "short")
        .await
        .expect_error(401, "unauthorized");

    let ended = s
        .post_empty(&format!("/demo/api/conversations/{cid}/end"), KEY)
        .await
        .expect(200);
    assert_eq!(ended["state"], "ended");
    assert_eq!(ended["ended_reason"], "customer_ended");
    desk.wait_for_in("conversation_ended", &cid).await;
}

/// With `demo.customer_page = false`, the page and its API do not exist.
#[actix_rt::test]
async fn the_demo_page_can_be_turned_off() {
    let s = TestServer::with(|c| c.demo.customer_page = false).await;
    let (status, _, _, _) = page(&s, "/demo/customer").await;
    assert_eq!(status, 404);
    s.post("/demo/api/messages", KEY, json!({"name": "Uma", "text": "Hello?"}))
        .await
        .expect_error(404, "not_found");
    let (status, _, _, _) = page(&s, "/").await;
    assert_eq!(status, 200, "the desktop stays");
}

/// A demo customer key made from `n` (64 hex digits).
fn key(n: u32) -> String {
    format!("{n:064x}")
}

/// Someone who reaches the demo page opens chats in a loop from one address: past
/// `demo.new_conversations_per_minute` each new chat is 429 `rate_limited` with
/// `Retry-After` and creates nothing, while a customer whose chat is open keeps writing
/// in it; once that chat ends, its next message would open a new one and is refused too.
#[actix_rt::test]
async fn new_demo_conversations_are_limited_per_address() {
    let s = TestServer::with(|c| c.demo.new_conversations_per_minute = 3).await;
    let mut cids = Vec::new();
    for n in 0..3 {
        let c = s
            .post("/demo/api/messages", &key(n), json!({"name": "Uma", "text": "Hello?"}))
            .await
            .expect(201);
        cids.push(c["id"].as_str().expect("id").to_string());
    }
    let held = s.engine.stats().await.expect("stats").conversations_held;
    assert_eq!(held, 3);

    let mut res = s
        .client
        .post(format!("{}/demo/api/messages", s.base))
        .insert_header(("Authorization", format!("Bearer {}", key(3))))
        .send_json(&json!({"name": "Vic", "text": "Me too"}))
        .await
        .expect("request");
    assert_eq!(res.status().as_u16(), 429);
    let retry: u64 = res
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("Retry-After in seconds");
    assert!((1..=60).contains(&retry), "{retry}");
    let body: serde_json::Value = res.json().await.expect("JSON error");
    assert_eq!(body["error"]["code"], "rate_limited", "{body}");
    assert_eq!(
        s.engine.stats().await.expect("stats").conversations_held,
        3,
        "the refused write created nothing"
    );

    // Writing into an open conversation is not limited.
    for text in ["Still there?", "Hello again"] {
        let again = s
            .post("/demo/api/messages", &key(0), json!({"name": "Uma", "text": text}))
            .await
            .expect(201);
        assert_eq!(again["id"], cids[0].as_str());
    }

    // Ended, the next message would open a new conversation: limited like any.
    s.post_empty(&format!("/demo/api/conversations/{}/end", cids[0]), &key(0))
        .await
        .expect(200);
    s.post(
        "/demo/api/messages",
        &key(0),
        json!({"name": "Uma", "text": "One more thing"}),
    )
    .await
    .expect_error(429, "rate_limited");
    let queue = s.get("/api/v1/queues/support", ADMIN).await.expect(200);
    assert_eq!(queue["waiting"], 2, "{queue}");
}
