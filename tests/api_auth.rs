//! The auth matrix of ../shared/API.md: every endpoint with no token, a wrong token, and a valid
//! token acting outside its rights.

mod common;

use common::*;
use serde_json::{json, Value};

/// Who may call an endpoint.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Rights {
    /// Only the admin: an agent token is 403.
    Admin,
    /// Admin and any agent.
    Anyone,
    /// Only an agent acting for itself: the admin token is 403.
    Agent,
}

/// One endpoint: method, path, body and rights.
struct Endpoint {
    method: &'static str,
    path: String,
    body: Option<Value>,
    rights: Rights,
}

fn ep(method: &'static str, path: impl Into<String>, body: Option<Value>, rights: Rights) -> Endpoint {
    Endpoint {
        method,
        path: path.into(),
        body,
        rights,
    }
}

/// Every REST endpoint of ../shared/API.md, on real resources.
fn endpoints(cid: &str) -> Vec<Endpoint> {
    use Rights::*;
    let c = |action: &str| format!("/api/v1/conversations/{cid}/{action}");
    vec![
        ep("POST", "/api/v1/queues", Some(json!({"id": "q9", "name": "Q9"})), Admin),
        ep("GET", "/api/v1/queues", None, Anyone),
        ep("GET", "/api/v1/queues/support", None, Anyone),
        ep(
            "POST",
            "/api/v1/entry-points",
            Some(json!({"id": "ep9", "name": "Page 9", "queue": "support"})),
            Admin,
        ),
        ep("GET", "/api/v1/entry-points", None, Admin),
        ep(
            "POST",
            "/api/v1/agents",
            Some(json!({"id": "zed", "name": "Zed", "queues": ["support"]})),
            Admin,
        ),
        ep("GET", "/api/v1/agents?q=a", None, Anyone),
        ep("POST", "/api/v1/agents/bob/token", None, Admin),
        ep("GET", "/api/v1/agents/me", None, Agent),
        ep(
            "PUT",
            "/api/v1/agents/me/state",
            Some(json!({"state": "idle", "idle_code": "break"})),
            Agent,
        ),
        ep(
            "POST",
            "/api/v1/conversations",
            Some(json!({"entry_point": "demo-page", "customer": {"id": "x", "name": "X"}, "text": "hi"})),
            Admin,
        ),
        ep("POST", c("accept"), None, Agent),
        ep("POST", c("transfer"), Some(json!({"agent": "bob"})), Agent),
        ep("POST", c("conference"), Some(json!({"agent": "bob"})), Agent),
        ep("POST", c("conference/exit"), None, Agent),
        ep("POST", c("conference/end"), None, Agent),
        ep("POST", c("wrapup"), Some(json!({"reason": "resolved"})), Agent),
        ep("GET", "/api/v1/wrapup-reasons?q=res", None, Anyone),
        ep("GET", "/api/v1/idle-codes", None, Anyone),
    ]
}

/// No token and a wrong token are 401 on every endpoint (also on the ones whose
/// resources do not exist: authentication comes first), and change nothing.
#[actix_web::test]
async fn missing_or_wrong_token_is_401_everywhere() {
    let s = TestServer::start().await;
    s.agent("ann", "Ann", &["support"]).await;
    let cid = id_of(&s.customer_writes("cust-1", "Carol", "Hello").await);
    let mut all = endpoints(&cid);
    all.push(ep("GET", "/api/v1/agents/ann", None, Rights::Admin));
    all.push(ep("GET", format!("/api/v1/conversations/{cid}"), None, Rights::Admin));
    all.push(ep(
        "POST",
        format!("/api/v1/conversations/{cid}/messages"),
        Some(json!({"text": "x"})),
        Rights::Admin,
    ));
    all.push(ep(
        "POST",
        format!("/api/v1/conversations/{cid}/end"),
        None,
        Rights::Admin,
    ));
    all.push(ep("GET", "/api/v1/agents/nobody", None, Rights::Admin));
    let before = s.conversation(&cid).await;
    // The first 20 wrong tokens from this address are 401; the later ones are 429 (the
    // failed-authentication limit, ../shared/API.md "Operations"). Missing and empty tokens are
    // always 401 and count for nothing.
    let mut wrong = 0;
    for e in &all {
        for token in [None, Some("wrong-token"), Some("")] {
            let a = s.call(e.method, &e.path, token, e.body.clone()).await;
            if token == Some("wrong-token") {
                wrong += 1;
                if wrong > 20 {
                    a.expect_error(429, "too_many_attempts");
                    continue;
                }
            }
            assert_eq!(a.status, 401, "{} {} with {token:?}: {}", e.method, e.path, a.body);
            a.expect_error(401, "unauthorized");
        }
    }
    assert!(wrong > 20, "the limit is exercised");
    // A malformed header is no better than none.
    let mut req = s.client.get(format!("{}/api/v1/queues", s.base));
    req = req.insert_header(("Authorization", format!("Basic {ADMIN}")));
    assert_eq!(req.send().await.expect("request").status().as_u16(), 401);
    assert_eq!(s.conversation(&cid).await, before);
    assert_eq!(
        s.get("/api/v1/agents", ADMIN)
            .await
            .expect(200)
            .as_array()
            .map(Vec::len),
        Some(1)
    );
}

/// An agent token on an admin endpoint, and the admin token on an agent's own action, are
/// 403; the endpoints anyone may read answer both.
#[actix_web::test]
async fn rights_of_admin_and_agent_tokens() {
    let s = TestServer::start().await;
    let ann = s.agent("ann", "Ann", &["support"]).await;
    s.agent("bob", "Bob", &["support"]).await;
    let cid = id_of(&s.customer_writes("cust-1", "Carol", "Hello").await);
    for e in endpoints(&cid) {
        let as_agent = s.call(e.method, &e.path, Some(&ann), e.body.clone()).await;
        let as_admin = s.call(e.method, &e.path, Some(ADMIN), e.body.clone()).await;
        let what = format!(
            "{} {}: admin {} / agent {}",
            e.method, e.path, as_admin.body, as_agent.body
        );
        match e.rights {
            Rights::Admin => {
                as_agent.expect_error(403, "forbidden");
                assert!(as_admin.status < 300, "{what}");
            }
            Rights::Agent => {
                // The agent may get a state or rights refusal from the engine (not_owner,
                // not_offered_to_you, ...), but never the token-level refusals.
                as_admin.expect_error(403, "forbidden");
                assert_ne!(as_agent.status, 401, "{what}");
                assert_ne!(as_agent.code(), "forbidden", "{what}");
            }
            Rights::Anyone => {
                assert_eq!(as_admin.status, 200, "{what}");
                assert_eq!(as_agent.status, 200, "{what}");
            }
        }
    }
}

/// Another agent's token: Bob may not read Ann, nor read, write in, transfer, invite from,
/// exit or end Ann's conversation; only Ann and the admin may.
#[actix_web::test]
async fn another_agents_token_is_403() {
    let s = TestServer::start().await;
    let ann = s.agent("ann", "Ann", &["support"]).await;
    let bob = s.agent("bob", "Bob", &["support"]).await;
    let cleo = s.agent("cleo", "Cleo", &["support"]).await;
    s.set_state(&ann, "available").await;
    let cid = id_of(&s.customer_writes("cust-1", "Carol", "Hello").await);
    s.post_empty(&format!("/api/v1/conversations/{cid}/accept"), &ann)
        .await
        .expect(200);
    s.set_state(&cleo, "available").await;
    let before = s.conversation(&cid).await;

    s.get("/api/v1/agents/ann", &bob).await.expect_error(403, "forbidden");
    s.get("/api/v1/agents/ann", &ann).await.expect(200);
    s.get("/api/v1/agents/ann", ADMIN).await.expect(200);
    s.get(&format!("/api/v1/conversations/{cid}"), &bob)
        .await
        .expect_error(403, "forbidden");
    s.get(&format!("/api/v1/conversations/{cid}"), &ann).await.expect(200);

    let c = |action: &str| format!("/api/v1/conversations/{cid}/{action}");
    let cases = [
        (
            "messages",
            Some(json!({"text": "I am not in it"})),
            "not_in_conversation",
        ),
        ("transfer", Some(json!({"agent": "cleo"})), "not_owner"),
        ("transfer", Some(json!({"queue": "support"})), "not_owner"),
        ("conference", Some(json!({"agent": "cleo"})), "not_owner"),
        ("conference/exit", None, "not_guest"),
        ("conference/end", None, "not_owner"),
        ("end", None, "not_owner"),
    ];
    for (action, body, code) in cases {
        let a = s.call("POST", &c(action), Some(&bob), body).await;
        a.expect_error(403, code);
    }
    // Not rights but state: accepting what was never offered, a wrap-up never owed.
    s.post_empty(&c("accept"), &bob)
        .await
        .expect_error(409, "not_offered_to_you");
    s.post(&c("wrapup"), &bob, json!({"reason": "resolved"}))
        .await
        .expect_error(409, "no_wrapup_owed");
    assert_eq!(s.conversation(&cid).await, before);
}

/// The desktop WebSocket: no token or a wrong one is 401 before any upgrade; the admin
/// token is 403 (the admin has no desktop).
#[actix_web::test]
async fn websocket_auth() {
    let s = TestServer::start().await;
    let ws = |q: &str| format!("{}/api/v1/agents/me/ws{q}", s.base.replace("http", "ws"));
    for (q, status) in [
        ("", 401),
        ("?token=wrong", 401),
        (&format!("?token={ADMIN}") as &str, 403),
    ] {
        match s.client.ws(ws(q)).connect().await {
            Err(awc::error::WsClientError::InvalidResponseStatus(st)) => {
                assert_eq!(st.as_u16(), status, "{q}")
            }
            Err(e) => panic!("{q}: unexpected error {e}"),
            Ok(_) => panic!("{q}: connected"),
        }
    }
}

/// A reissued token replaces the old one at once.
#[actix_web::test]
async fn reissued_token_replaces_the_old_one() {
    let s = TestServer::start().await;
    let old = s.agent("ann", "Ann", &["support"]).await;
    s.get("/api/v1/agents/ann", &old).await.expect(200);
    let new = s.post_empty("/api/v1/agents/ann/token", ADMIN).await.expect(200)["token"]
        .as_str()
        .expect("token")
        .to_string();
    assert_ne!(new, old);
    s.get("/api/v1/agents/ann", &old)
        .await
        .expect_error(401, "unauthorized");
    s.get("/api/v1/agents/ann", &new).await.expect(200);
    s.post_empty("/api/v1/agents/nobody/token", ADMIN)
        .await
        .expect_error(404, "unknown_agent");
}
