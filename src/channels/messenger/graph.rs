//! The Graph API calls: the Send API and the User Profile API, over awc, and what a
//! Send API answer means for the outbox (sent, retry, or final failure).

use std::time::Duration;

use serde::Deserialize;
use serde_json::json;

use crate::config::MessengerConfig;
use crate::core::messenger::{OutboundFile, ThreadCall};
use crate::core::Outbound;

/// What one Send API request came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendOutcome {
    Accepted,
    /// Network error, timeout, 5xx, 429, or a Graph throttling or transient error.
    Retry(String),
    /// Any other refusal: retrying would not help.
    Final(String),
    /// The page's token is expired or revoked (Graph error 190): nothing of the page can
    /// go out until a new token is set.
    Unauthorized(String),
}

/// The Graph API's "invalid OAuth access token" error.
pub const TOKEN_ERROR_CODE: i64 = 190;

/// Graph error codes that mean "slow down" (API too many calls, user request limit, page
/// request limit, rate limit) or "temporary" (1200): the request is retried. Other error
/// codes with a 4xx status are final (docs/DECISIONS.md, "Messenger").
pub const THROTTLING_CODES: &[i64] = &[1, 2, 4, 17, 32, 613, 1200];

#[derive(Debug, Deserialize)]
struct GraphErrorBody {
    error: GraphError,
}

#[derive(Debug, Deserialize)]
struct GraphError {
    #[serde(default)]
    message: String,
    #[serde(default)]
    code: i64,
    #[serde(default)]
    error_subcode: Option<i64>,
    #[serde(default)]
    is_transient: bool,
}

/// Classifies a Send API answer: `status` and its body.
pub fn classify(status: u16, body: &[u8]) -> SendOutcome {
    if (200..300).contains(&status) {
        return SendOutcome::Accepted;
    }
    let parsed = serde_json::from_slice::<GraphErrorBody>(body).ok();
    let message = match &parsed {
        Some(b) => match b.error.error_subcode {
            Some(sub) => format!("{} (code {}, subcode {sub})", b.error.message, b.error.code),
            None => format!("{} (code {})", b.error.message, b.error.code),
        },
        None => format!("HTTP {status}"),
    };
    let throttled = parsed
        .as_ref()
        .is_some_and(|b| b.error.is_transient || THROTTLING_CODES.contains(&b.error.code));
    if parsed.as_ref().is_some_and(|b| b.error.code == TOKEN_ERROR_CODE) {
        return SendOutcome::Unauthorized(message);
    }
    if status >= 500 || status == 429 || throttled {
        SendOutcome::Retry(message)
    } else {
        SendOutcome::Final(message)
    }
}

/// The Send API body of part `part` of `o`. The entry's quick replies go with its last
/// text part, so they are under the text the customer reads last (a rating question).
pub fn send_body(o: &Outbound, part: &str) -> serde_json::Value {
    let mut message = json!({"text": part});
    if !o.quick_replies.is_empty() && o.parts.last().map(String::as_str) == Some(part) {
        message["quick_replies"] = o
            .quick_replies
            .iter()
            .map(|q| json!({"content_type": "text", "title": q.title, "payload": q.payload}))
            .collect();
    }
    if o.human_agent_tag {
        json!({
            "recipient": {"id": o.recipient},
            "messaging_type": "MESSAGE_TAG",
            "tag": "HUMAN_AGENT",
            "message": message,
        })
    } else {
        json!({
            "recipient": {"id": o.recipient},
            "messaging_type": "RESPONSE",
            "message": message,
        })
    }
}

/// `POST {base}/{version}/me/{path}?access_token=...` with the page's token of the
/// moment, timing out after `timeout_ms`.
fn me_post(
    client: &awc::Client,
    config: &MessengerConfig,
    token: &str,
    path: &str,
    timeout_ms: u64,
) -> Result<awc::ClientRequest, SendOutcome> {
    let url = format!(
        "{}/{}/me/{path}",
        config.graph_base_url.trim_end_matches('/'),
        config.graph_version
    );
    client
        .post(url)
        .timeout(Duration::from_millis(timeout_ms))
        .query(&[("access_token", token)])
        .map_err(|e| SendOutcome::Final(format!("cannot build the request: {e}")))
}

/// One Send API request: `POST {base}/{version}/me/messages?access_token=...`, with the
/// page's token of the moment.
pub async fn send(
    client: &awc::Client,
    config: &MessengerConfig,
    token: &str,
    o: &Outbound,
    part: &str,
) -> SendOutcome {
    match me_post(client, config, token, "messages", config.send_timeout_ms) {
        Ok(request) => answer(request.send_json(&send_body(o, part)).await).await,
        Err(outcome) => outcome,
    }
}

/// The Send API's `messaging_type` (and `tag`) fields of `o`.
fn messaging_type(o: &Outbound) -> Vec<(&'static str, &'static str)> {
    if o.human_agent_tag {
        vec![("messaging_type", "MESSAGE_TAG"), ("tag", "HUMAN_AGENT")]
    } else {
        vec![("messaging_type", "RESPONSE")]
    }
}

/// A multipart/form-data body of text `fields` and one file part `filedata`; returns
/// the body and its content type.
pub fn multipart(fields: &[(&str, String)], file: &OutboundFile, bytes: &[u8]) -> (Vec<u8>, String) {
    let mut raw = [0u8; 12];
    rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut raw);
    let boundary = format!("switchboard-{}", hex::encode(raw));
    let mut body = Vec::with_capacity(bytes.len() + 1024);
    for (name, value) in fields {
        body.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n").as_bytes(),
        );
    }
    // The name is clean (letters, digits, `.-_`: see `channels::files::clean_name`).
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"filedata\"; filename=\"{}\"\r\nContent-Type: {}\r\n\r\n",
            file.name, file.content_type
        )
        .as_bytes(),
    );
    body.extend_from_slice(bytes);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (body, format!("multipart/form-data; boundary={boundary}"))
}

/// A file for `o`'s recipient: one Send API request in multipart form (`recipient`,
/// `messaging_type`, `message` with the attachment's type, and the bytes as
/// `filedata`), as Meta's "send an attachment from a file" does; no separate upload.
pub async fn send_file(
    client: &awc::Client,
    config: &MessengerConfig,
    token: &str,
    o: &Outbound,
    file: &OutboundFile,
    bytes: &[u8],
) -> SendOutcome {
    let mut fields: Vec<(&str, String)> = vec![("recipient", json!({"id": o.recipient}).to_string())];
    fields.extend(messaging_type(o).into_iter().map(|(k, v)| (k, v.to_string())));
    fields.push((
        "message",
        json!({"attachment": {"type": file.kind, "payload": {"is_reusable": false}}}).to_string(),
    ));
    let (body, content_type) = multipart(&fields, file, bytes);
    match me_post(client, config, token, "messages", config.send_timeout_ms.max(30_000)) {
        Ok(request) => {
            answer(
                request
                    .insert_header(("content-type", content_type))
                    .send_body(body)
                    .await,
            )
            .await
        }
        Err(outcome) => outcome,
    }
}

/// A Handover Protocol call for `recipient`: `POST /me/take_thread_control` or
/// `/me/pass_thread_control` (with `target_app_id`), JSON as Meta's reference shows.
pub async fn thread_call(
    client: &awc::Client,
    config: &MessengerConfig,
    token: &str,
    recipient: &str,
    call: &ThreadCall,
) -> SendOutcome {
    let (path, body) = thread_body(recipient, call);
    match me_post(client, config, token, path, config.send_timeout_ms) {
        Ok(request) => answer(request.send_json(&body).await).await,
        Err(outcome) => outcome,
    }
}

/// The path and JSON body of a Handover Protocol call.
pub fn thread_body(recipient: &str, call: &ThreadCall) -> (&'static str, serde_json::Value) {
    match call {
        ThreadCall::Take { metadata } => (
            "take_thread_control",
            json!({"recipient": {"id": recipient}, "metadata": metadata}),
        ),
        ThreadCall::Pass {
            target_app_id,
            metadata,
        } => (
            "pass_thread_control",
            json!({"recipient": {"id": recipient}, "target_app_id": target_app_id, "metadata": metadata}),
        ),
    }
}

/// What a Graph API request came to.
async fn answer<S>(res: Result<awc::ClientResponse<S>, awc::error::SendRequestError>) -> SendOutcome
where
    S: futures_util::Stream<Item = Result<actix_web::web::Bytes, awc::error::PayloadError>> + Unpin,
{
    match res {
        Ok(mut res) => {
            let status = res.status().as_u16();
            let body = res.body().limit(64 * 1024).await.unwrap_or_default();
            classify(status, &body)
        }
        Err(e) => SendOutcome::Retry(format!("network error: {e}")),
    }
}

/// A sender action (`typing_on`, `typing_off`, `mark_seen`) for `recipient`: one request,
/// no retries (it means nothing late).
pub async fn sender_action(
    client: &awc::Client,
    config: &MessengerConfig,
    token: &str,
    recipient: &str,
    action: &str,
) -> SendOutcome {
    let body = json!({"recipient": {"id": recipient}, "sender_action": action});
    match me_post(client, config, token, "messages", config.send_timeout_ms) {
        Ok(request) => answer(request.send_json(&body).await).await,
        Err(outcome) => outcome,
    }
}

#[derive(Debug, Deserialize)]
struct Profile {
    #[serde(default)]
    first_name: String,
    #[serde(default)]
    last_name: String,
}

/// The User Profile API: `GET {base}/{version}/{psid}?fields=first_name,last_name`.
/// `None` on any failure (the caller keeps the placeholder).
pub async fn profile_name(client: &awc::Client, config: &MessengerConfig, psid: &str, token: &str) -> Option<String> {
    let url = format!(
        "{}/{}/{}",
        config.graph_base_url.trim_end_matches('/'),
        config.graph_version,
        psid
    );
    let mut res = client
        .get(url)
        .timeout(Duration::from_millis(config.send_timeout_ms))
        .query(&[("fields", "first_name,last_name"), ("access_token", token)])
        .ok()?
        .send()
        .await
        .ok()?;
    if !res.status().is_success() {
        return None;
    }
    let p: Profile = res.json().await.ok()?;
    let name = format!("{} {}", p.first_name.trim(), p.last_name.trim())
        .trim()
        .to_string();
    (!name.is_empty()).then_some(name)
}

/// The wait before try `attempt + 1` (`attempt` >= 1 failed tries so far): the base
/// doubled per failed try, capped at the max, then "equal jitter" (half fixed, half
/// random) so that many conversations retrying at once spread out.
pub fn backoff(attempt: u32, base_ms: u64, max_ms: u64, random: f64) -> Duration {
    let exp = base_ms.saturating_mul(1u64 << attempt.saturating_sub(1).min(30));
    let capped = exp.min(max_ms);
    let half = capped / 2;
    Duration::from_millis(half + ((capped - half) as f64 * random.clamp(0.0, 1.0)) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn send_api_answers_are_retried_or_final() {
        let err = |code: i64, sub: Option<i64>| {
            serde_json::to_vec(
                &json!({"error": {"message": "m", "type": "OAuthException", "code": code, "error_subcode": sub}}),
            )
            .unwrap()
        };
        let retry = |o: SendOutcome| matches!(o, SendOutcome::Retry(_));
        let fin = |o: SendOutcome| matches!(o, SendOutcome::Final(_));
        assert_eq!(classify(200, b"{}"), SendOutcome::Accepted);
        assert!(retry(classify(500, b"")));
        assert!(retry(classify(503, b"oops")));
        assert!(retry(classify(429, b"")));
        for code in [4, 17, 32, 613] {
            assert!(retry(classify(400, &err(code, None))), "code {code}");
        }
        assert!(fin(classify(400, &err(100, Some(2018001)))));
        assert!(fin(classify(403, &err(10, Some(2018278)))));
        assert!(fin(classify(400, b"not json")));
        assert!(matches!(
            classify(401, &err(190, Some(463))),
            SendOutcome::Unauthorized(_)
        ));
        assert!(matches!(classify(400, &err(190, None)), SendOutcome::Unauthorized(_)));
        match classify(400, &err(100, Some(2018001))) {
            SendOutcome::Final(m) => assert!(m.contains("2018001"), "{m}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn backoff_doubles_up_to_the_max_with_jitter() {
        let cases = [
            // (attempt, random, expected ms) with base 100, max 1000
            (1, 0.0, 50),
            (1, 1.0, 100),
            (2, 1.0, 200),
            (3, 0.5, 300),
            (4, 1.0, 800),
            (5, 1.0, 1000),
            (40, 0.0, 500),
        ];
        for (attempt, random, want) in cases {
            assert_eq!(
                backoff(attempt, 100, 1000, random).as_millis() as u64,
                want,
                "attempt {attempt}"
            );
        }
    }

    #[test]
    fn the_body_carries_the_window_decision() {
        let mut o = Outbound {
            conversation: "c-1".into(),
            seq: 2,
            recipient: "psid".into(),
            page_id: "p".into(),
            parts: vec!["hi".into()],
            parts_sent: 0,
            human_agent_tag: false,
            queued_at: 0,
            file: None,
            thread: None,
            quick_replies: Vec::new(),
        };
        assert_eq!(
            send_body(&o, "hi"),
            json!({"recipient": {"id": "psid"}, "messaging_type": "RESPONSE", "message": {"text": "hi"}})
        );
        o.quick_replies = crate::core::survey::rating_replies();
        let body = send_body(&o, "hi");
        assert_eq!(
            body["message"]["quick_replies"][0],
            json!({"content_type": "text", "title": "1", "payload": "SWITCHBOARD_RATING_1"})
        );
        assert_eq!(body["message"]["quick_replies"].as_array().map(Vec::len), Some(5));
        o.quick_replies.clear();
        o.human_agent_tag = true;
        assert_eq!(send_body(&o, "hi")["tag"], "HUMAN_AGENT");
        assert_eq!(send_body(&o, "hi")["messaging_type"], "MESSAGE_TAG");
    }
}
