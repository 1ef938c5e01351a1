//! Messenger test helpers: Meta's webhook payloads (shapes copied from the Messenger
//! Platform's webhook reference), signed with the test app secret, and the config that
//! points a server at a [`FakeGraph`].

#![allow(dead_code)]

use serde_json::{json, Value};
use switchboard::channels::messenger::webhook::sign;
use switchboard::config::Config;

/// The app secret, verify token and page of every Messenger test.
pub const APP_SECRET: &str = "test-app-secret";
pub const VERIFY_TOKEN: &str = "test-verify-token";
/// The default config's demo entry point's page.
pub const PAGE_ID: &str = "100000000000001";
pub const PAGE_TOKEN: &str = "EAAB-test-page-token";
pub const PSID: &str = "1254459154682919";

/// Points `config` at the fake Graph API at `graph_url`, with fast retries.
pub fn messenger_config(config: &mut Config, graph_url: &str) {
    let m = &mut config.messenger;
    m.app_secret = APP_SECRET.into();
    m.verify_token = VERIFY_TOKEN.into();
    m.graph_base_url = graph_url.into();
    m.graph_version = "v21.0".into();
    m.send_max_attempts = 5;
    m.send_backoff_base_ms = 2;
    m.send_backoff_max_ms = 10;
    m.send_timeout_ms = 5_000;
    // Long, so that the fake's name always arrives in time (the bound itself is proven by
    // the placeholder of a customer the fake does not know).
    m.profile_timeout_ms = 5_000;
    for ep in &mut config.entry_points {
        if ep.page_id.as_deref() == Some(PAGE_ID) {
            ep.page_access_token = Some(PAGE_TOKEN.into());
        }
    }
}

/// The same settings as environment variables, for the real binary.
pub fn messenger_env(graph_url: &str) -> Vec<(String, String)> {
    [
        ("SWITCHBOARD_MESSENGER__APP_SECRET", APP_SECRET),
        ("SWITCHBOARD_MESSENGER__VERIFY_TOKEN", VERIFY_TOKEN),
        ("SWITCHBOARD_MESSENGER__GRAPH_BASE_URL", graph_url),
        ("SWITCHBOARD_MESSENGER__SEND_MAX_ATTEMPTS", "100000"),
        ("SWITCHBOARD_MESSENGER__SEND_BACKOFF_BASE_MS", "5"),
        ("SWITCHBOARD_MESSENGER__SEND_BACKOFF_MAX_MS", "20"),
        ("SWITCHBOARD_MESSENGER__PROFILE_TIMEOUT_MS", "200"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// A webhook body: one entry per (page, events).
pub fn page_event(entries: &[(&str, Vec<Value>)]) -> Value {
    json!({
        "object": "page",
        "entry": entries.iter().map(|(page, events)| json!({
            "id": page,
            "time": now_ms(),
            "messaging": events,
        })).collect::<Vec<_>>(),
    })
}

/// Now, in ms since the epoch (Meta's `timestamp`s: the messaging window counts from them).
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn envelope(psid: &str, page: &str, part: (&str, Value)) -> Value {
    let mut e = json!({
        "sender": {"id": psid},
        "recipient": {"id": page},
        "timestamp": now_ms(),
    });
    e[part.0] = part.1;
    e
}

/// A text message.
pub fn text(psid: &str, mid: &str, text: &str) -> Value {
    envelope(
        psid,
        PAGE_ID,
        (
            "message",
            json!({"mid": mid, "text": text, "quick_reply": {"payload": "<DEVELOPER_DEFINED_PAYLOAD>"}}),
        ),
    )
}

/// A message with attachments only.
pub fn attachment(psid: &str, mid: &str, kind: &str, url: &str) -> Value {
    envelope(
        psid,
        PAGE_ID,
        (
            "message",
            json!({"mid": mid, "attachments": [{"type": kind, "payload": {"url": url}}]}),
        ),
    )
}

/// A postback (a button the customer tapped).
pub fn postback(psid: &str, mid: &str, title: &str) -> Value {
    envelope(
        psid,
        PAGE_ID,
        (
            "postback",
            json!({"mid": mid, "title": title, "payload": "<USER_DEFINED_PAYLOAD>"}),
        ),
    )
}

/// A delivery mark.
pub fn delivery(psid: &str, watermark: u64) -> Value {
    envelope(
        psid,
        PAGE_ID,
        (
            "delivery",
            json!({"mids": ["mid.1458668856218:ed81099e15d3f4f233"], "watermark": watermark}),
        ),
    )
}

/// A read mark.
pub fn read(psid: &str, watermark: u64) -> Value {
    envelope(psid, PAGE_ID, ("read", json!({"watermark": watermark})))
}

/// An echo of a message the page sent.
pub fn echo(psid: &str, mid: &str) -> Value {
    let mut e = envelope(
        PAGE_ID,
        psid,
        (
            "message",
            json!({"is_echo": true, "app_id": 1517776481860111u64, "metadata": "<DEVELOPER_DEFINED_METADATA_STRING>", "mid": mid, "text": "from the page"}),
        ),
    );
    e["sender"]["id"] = json!(PAGE_ID);
    e
}

/// A reaction.
pub fn reaction(psid: &str, mid: &str) -> Value {
    envelope(
        psid,
        PAGE_ID,
        (
            "reaction",
            json!({"reaction": "love", "emoji": "\u{2764}", "action": "react", "mid": mid}),
        ),
    )
}

/// The `X-Hub-Signature-256` header for `body`.
pub fn signature(body: &[u8]) -> String {
    sign(APP_SECRET.as_bytes(), body)
}

/// POSTs `body` to `/webhooks/messenger` of `base` with `signature` (None: no header);
/// returns the status and the body.
pub async fn post_webhook(client: &awc::Client, base: &str, body: &[u8], signature: Option<&str>) -> (u16, String) {
    let mut req = client
        .post(format!("{base}/webhooks/messenger"))
        .insert_header(("content-type", "application/json"));
    if let Some(s) = signature {
        req = req.insert_header(("x-hub-signature-256", s));
    }
    let mut res = req.send_body(body.to_vec()).await.expect("webhook request");
    let text = res
        .body()
        .await
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    (res.status().as_u16(), text)
}

/// POSTs `event` signed right; asserts 200.
pub async fn deliver(client: &awc::Client, base: &str, event: &Value) {
    let body = event.to_string();
    let (status, text) = post_webhook(client, base, body.as_bytes(), Some(&signature(body.as_bytes()))).await;
    assert_eq!(status, 200, "webhook answered {status}: {text}");
}
