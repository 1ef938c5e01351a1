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

/// A newcomer opens `/`: the desktop page and every module it loads (its own and the
/// pages' shared ones under `/common/`) come from the binary, with a policy that lets the
/// page load nothing from elsewhere.
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
    // The desktop's own modules, the ones every page shares, and the other pages'.
    for asset in [
        "/assets/app.js",
        "/assets/socket.js",
        "/assets/style.css",
        "/common/socket.js",
        "/common/dom.js",
        "/supervisor/app.js",
        "/supervisor/reports.js",
        "/supervisor/charts.js",
        "/demo/customer.js",
    ] {
        let (status, ty, csp, body) = page(&s, asset).await;
        assert_eq!(status, 200, "{asset}");
        assert!(csp.contains("default-src 'none'"), "{asset}: {csp}");
        assert!(
            ty.starts_with("text/javascript") || ty.starts_with("text/css"),
            "{asset}: {ty}"
        );
        // The SVG namespace is a name, not an address (`createElementNS` needs it).
        let body = body.replace("http://www.w3.org/2000/svg", "");
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

/// An answer's status, the headers named in `names` (empty when absent) and its body.
async fn with_headers(
    s: &TestServer,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<serde_json::Value>,
    names: &[&str],
) -> (u16, Vec<String>, String) {
    let method = awc::http::Method::from_bytes(method.as_bytes()).expect("method");
    let mut req = s.client.request(method, format!("{}{}", s.base, path));
    if let Some(t) = token {
        req = req.insert_header(("Authorization", format!("Bearer {t}")));
    }
    let mut res = match body {
        Some(b) => req.send_json(&b).await,
        None => req.send().await,
    }
    .expect("request");
    let values = names
        .iter()
        .map(|n| {
            res.headers()
                .get(*n)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string()
        })
        .collect();
    let bytes = res.body().limit(16 << 20).await.expect("body");
    (
        res.status().as_u16(),
        values,
        String::from_utf8_lossy(&bytes).into_owned(),
    )
}

/// One request of [`api_answers_are_never_cached`]: method, path, token, body, status.
type Case<'a> = (&'a str, &'a str, Option<&'a str>, Option<serde_json::Value>, u16);

/// A browser or a proxy between the desktop and the engine keeps no copy of what the API
/// answers (session tokens from sign-in, agent tokens, transcripts, errors): every API
/// answer says `Cache-Control: no-store`, whatever its status and whoever answered it.
#[actix_rt::test]
async fn api_answers_are_never_cached() {
    let s = TestServer::start().await;
    let created = s
        .post(
            "/api/v1/agents",
            ADMIN,
            json!({"id": "a1", "name": "Ann", "queues": ["support"], "password": "ann-password-1"}),
        )
        .await
        .expect(201);
    let token = created["token"].as_str().expect("token").to_string();
    let c = s.customer_writes("u1", "Uma", "Where is my order?").await;
    let cid = c["id"].as_str().expect("id").to_string();
    let transcript = format!("/api/v1/conversations/{cid}");
    let login = json!({"id": "a1", "password": "ann-password-1"});
    let wrong = json!({"id": "a1", "password": "not-the-password"});
    let agent = json!({"id": "a2", "name": "Bob", "queues": ["support"]});
    let demo = json!({"name": "Uma", "text": "Hello?"});
    let cases: Vec<Case> = vec![
        ("POST", "/api/v1/login", None, Some(login), 200),
        ("POST", "/api/v1/login", None, Some(wrong), 401),
        ("POST", "/api/v1/agents", Some(ADMIN), Some(agent), 201),
        ("GET", &transcript, Some(ADMIN), None, 200),
        ("GET", "/api/v1/agents/me", Some(&token), None, 200),
        ("GET", "/api/v1/queues", None, None, 401),
        ("POST", "/api/v1/admin/backup", Some(&token), None, 403),
        ("GET", "/api/v1/conversations/c-999", Some(ADMIN), None, 404),
        ("GET", "/api/v1/no-such-thing", Some(ADMIN), None, 404),
        ("DELETE", "/api/v1/queues", Some(ADMIN), None, 405),
        ("POST", "/api/v1/queues", Some(ADMIN), Some(json!({"id": 1})), 400),
        ("GET", "/api/v1/openapi.json", None, None, 200),
        ("POST", "/api/v1/admin/backup", Some(ADMIN), None, 200),
        ("POST", "/demo/api/messages", Some(KEY), Some(demo), 201),
    ];
    for (method, path, token, body, status) in cases {
        let (got, h, text) = with_headers(
            &s,
            method,
            path,
            token,
            body,
            &["cache-control", "x-content-type-options"],
        )
        .await;
        assert_eq!(got, status, "{method} {path}: {text}");
        assert_eq!(h[0], "no-store", "{method} {path}");
        assert_eq!(h[1], "nosniff", "{method} {path}");
    }
}

/// The browsable API description at `/api/docs/` is protected like the pages: a policy
/// that lets it load nothing from elsewhere and no page frame it, no MIME sniffing, no
/// referrer; its HTML needs nothing inline, so that policy does not break it (the
/// browser test loads it in Chromium), and the online validator badge is off.
#[actix_rt::test]
async fn swagger_ui_has_the_pages_headers() {
    let s = TestServer::start().await;
    let names = [
        "content-security-policy",
        "x-content-type-options",
        "x-frame-options",
        "referrer-policy",
        "content-type",
    ];
    let (status, h, html) = with_headers(&s, "GET", "/api/docs/", None, None, &names).await;
    assert_eq!(status, 200);
    assert!(h[4].starts_with("text/html"), "{h:?}");
    assert_eq!(h[0], switchboard::api::headers::SWAGGER_CSP);
    for directive in [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "connect-src 'self'",
        "frame-ancestors 'none'",
    ] {
        assert!(h[0].contains(directive), "{}", h[0]);
    }
    assert_eq!(&h[1..4], ["nosniff", "DENY", "no-referrer"]);
    // Nothing inline for the policy to block: every script is a file, no style element.
    assert!(!html.contains("<style"), "{html}");
    for script in html.split("<script").skip(1) {
        let tag = script.split('>').next().unwrap_or("");
        assert!(tag.contains("src="), "an inline script: {script}");
    }
    for asset in ["swagger-ui-bundle.js", "swagger-ui.css", "swagger-initializer.js"] {
        let (status, h, body) = with_headers(&s, "GET", &format!("/api/docs/{asset}"), None, None, &names).await;
        assert_eq!(status, 200, "{asset}");
        assert_eq!(h[0], switchboard::api::headers::SWAGGER_CSP, "{asset}");
        assert_eq!(&h[1..4], ["nosniff", "DENY", "no-referrer"], "{asset}");
        if asset == "swagger-initializer.js" {
            assert!(body.contains("\"validatorUrl\": \"none\""), "{body}");
        }
    }
}
