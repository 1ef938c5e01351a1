//! The Messenger Platform's webhook payload (`object: "page"`, `entry[].messaging[]`) and
//! what each event becomes.
//!
//! Read one event at a time: the body is JSON values first, and each event is read on its
//! own, so an event the engine does not handle or cannot read (an unknown kind, a sender
//! known only by `user_ref`, an id that is not digits, a timestamp that is no time) is
//! skipped with its [`SkipReason`] and costs the others nothing. Meta redelivers a batch
//! that is not answered 200, and unsubscribes an app that keeps failing.

use serde::Deserialize;
use serde_json::Value;

use crate::core::messenger::{postback_key, valid_graph_id, MessengerCommand, SkipReason};
use crate::core::{Attachment, Command, Customer, Millis};

/// One event of a delivery, read or skipped.
#[derive(Debug)]
pub enum Item {
    /// A command for the engine, with its metrics kind (`message`, `postback`,
    /// `delivery`, `read`).
    Use(Command, &'static str),
    /// Skipped, with why and the metrics kind.
    Skip(SkipReason, &'static str),
}

/// Every event of the webhook body `body` (raw bytes, signature already checked).
/// `app_id` is this app's id (`messenger.app_id`): echoes of its own messages are
/// skipped, echoes of other apps' (the Page's inbox) are kept; empty: every echo is
/// taken as this app's.
pub fn read_body(body: &[u8], app_id: &str) -> Vec<Item> {
    let Ok(v) = serde_json::from_slice::<Value>(body) else {
        return vec![Item::Skip(SkipReason::Unreadable, "batch")];
    };
    if v.get("object").and_then(Value::as_str) != Some("page") {
        return vec![Item::Skip(SkipReason::NotPage, "batch")];
    }
    let Some(entries) = v.get("entry").and_then(Value::as_array) else {
        return vec![Item::Skip(SkipReason::Unreadable, "batch")];
    };
    let mut items = Vec::new();
    for entry in entries {
        let page = entry.get("id").and_then(id_of);
        let events = entry.get("messaging").and_then(Value::as_array);
        let standby = entry.get("standby").and_then(Value::as_array);
        let Some(page) = page.filter(|p| valid_graph_id(p)) else {
            let n = events.map_or(0, Vec::len) + standby.map_or(0, Vec::len);
            items.extend((0..n.max(1)).map(|_| Item::Skip(SkipReason::BadId, "other")));
            continue;
        };
        for e in events.into_iter().flatten() {
            items.push(read_event(&page, e, app_id));
        }
        // Events of threads another app owns (Handover Protocol / Conversation Routing):
        // a customer's message or postback may make the engine take the thread (the core
        // decides, by the entry point's `thread_control`); the rest is skipped.
        for e in standby.into_iter().flatten() {
            let standby_skip = || Item::Skip(SkipReason::Standby, "standby");
            items.push(match read_event(&page, e, app_id) {
                Item::Use(mut command, _) => match &mut command {
                    Command::MessengerMessage {
                        page_echo: false,
                        standby,
                        ..
                    } => {
                        *standby = true;
                        Item::Use(command, "standby")
                    }
                    _ => standby_skip(),
                },
                _ => standby_skip(),
            });
        }
    }
    items
}

/// An id given as a string or a number.
fn id_of(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => n.as_u64().map(|n| n.to_string()),
        _ => None,
    }
}

/// A time in ms given as a number or a string of digits (Meta: "All JSON properties ...
/// are strings" in some references). `Err` for anything else.
fn time_of(v: Option<&Value>) -> Result<Option<Millis>, ()> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n.as_u64().map(Some).ok_or(()),
        Some(Value::String(s)) if !s.is_empty() && s.len() <= 20 && s.bytes().all(|b| b.is_ascii_digit()) => {
            s.parse().map(Some).map_err(|_| ())
        }
        Some(_) => Err(()),
    }
}

#[derive(Debug, Deserialize)]
struct MessagePart {
    mid: Option<String>,
    text: Option<String>,
    #[serde(default)]
    attachments: Vec<AttachmentPart>,
    #[serde(default)]
    is_echo: bool,
    /// The quick reply the customer tapped (Meta sends its title as `text` too).
    quick_reply: Option<QuickReplyPart>,
}

#[derive(Debug, Deserialize)]
struct QuickReplyPart {
    payload: Option<String>,
}

#[derive(Debug, Deserialize)]
struct AttachmentPart {
    #[serde(rename = "type")]
    kind: String,
    payload: Option<AttachmentPayload>,
}

#[derive(Debug, Deserialize)]
struct AttachmentPayload {
    url: Option<String>,
    coordinates: Option<Coordinates>,
}

#[derive(Debug, Deserialize)]
struct Coordinates {
    lat: f64,
    long: f64,
}

#[derive(Debug, Deserialize)]
struct Postback {
    mid: Option<String>,
    #[serde(default)]
    title: String,
    #[serde(default)]
    payload: String,
}

/// One `messaging[]` event of page `page`.
fn read_event(page: &str, e: &Value, app_id: &str) -> Item {
    let kind = kind_of(e);
    let Some(e) = e.as_object() else {
        return Item::Skip(SkipReason::Unreadable, "other");
    };
    let Ok(sent_at) = time_of(e.get("timestamp")) else {
        return Item::Skip(SkipReason::BadTimestamp, kind);
    };
    let sender = e.get("sender");
    if sender.and_then(|s| s.get("id")).is_none() && sender.and_then(|s| s.get("user_ref")).is_some() {
        return Item::Skip(SkipReason::UserRef, kind);
    }
    if kind == "echo" {
        return read_echo(page, e, app_id, sent_at);
    }
    let Some(customer) = sender.and_then(|s| s.get("id")).and_then(id_of) else {
        return Item::Skip(SkipReason::Unreadable, kind);
    };
    if !valid_graph_id(&customer) {
        return Item::Skip(SkipReason::BadId, kind);
    }
    let message = |text: String, attachments: Vec<Attachment>, mid: Option<String>| Command::MessengerMessage {
        page_id: page.into(),
        customer: Customer {
            name: super::placeholder(&customer),
            id: customer.clone(),
        },
        text,
        attachments,
        mid,
        seen: false,
        last_owner: None,
        sent_at,
        page_echo: false,
        standby: false,
    };
    match kind {
        "message" => {
            let Some(Ok(m)) = e.get("message").map(MessagePart::deserialize) else {
                return Item::Skip(SkipReason::Unreadable, kind);
            };
            debug_assert!(!m.is_echo);
            let attachments = attachments_of(m.attachments);
            // A rating question's quick reply (`core::survey`): its payload says the
            // rating, whatever its title reads, so the core sees the rating itself.
            let rating = m
                .quick_reply
                .and_then(|q| q.payload)
                .and_then(|p| crate::core::survey::payload_rating(&p));
            let text = match rating {
                Some(r) => r.to_string(),
                None => m.text.unwrap_or_default(),
            };
            if text.trim().is_empty() && attachments.is_empty() {
                return Item::Skip(SkipReason::Empty, kind);
            }
            Item::Use(message(text, attachments, m.mid), kind)
        }
        "postback" => {
            let Some(Ok(p)) = e.get("postback").map(Postback::deserialize) else {
                return Item::Skip(SkipReason::Unreadable, kind);
            };
            let key = postback_key(p.mid.as_deref(), &customer, sent_at, &p.payload);
            let text = if p.title.trim().is_empty() { p.payload } else { p.title };
            if text.trim().is_empty() {
                return Item::Skip(SkipReason::Empty, kind);
            }
            Item::Use(message(text, Vec::new(), Some(key)), kind)
        }
        "delivery" | "read" => {
            let part = e.get(kind);
            let Ok(Some(watermark)) = time_of(part.and_then(|p| p.get("watermark"))) else {
                return Item::Skip(SkipReason::Unreadable, kind);
            };
            Item::Use(
                Command::MessengerMark {
                    page_id: page.into(),
                    customer,
                    watermark,
                    read: kind == "read",
                },
                kind,
            )
        }
        "handover" if e.get("pass_thread_control").is_some_and(|p| !p.is_null()) => {
            let part = e.get("pass_thread_control");
            let to = part.and_then(|p| p.get("new_owner_app_id")).and_then(id_of);
            // Passed to another app (a secondary receiver sees those too): not ours.
            if !app_id.is_empty() && to.as_deref() != Some(app_id) {
                return Item::Skip(SkipReason::UnknownKind, "handover");
            }
            let metadata = part
                .and_then(|p| p.get("metadata"))
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            Item::Use(
                Command::Messenger(MessengerCommand::ThreadPassed {
                    page_id: page.into(),
                    customer: Customer {
                        name: super::placeholder(&customer),
                        id: customer.clone(),
                    },
                    metadata,
                    sent_at,
                }),
                "handover",
            )
        }
        // Thread control taken from this app, a role change, a request: nothing to do.
        "handover" => Item::Skip(SkipReason::UnknownKind, "handover"),
        _ => Item::Skip(SkipReason::UnknownKind, kind),
    }
}

/// An echo: what the page sent to the customer (`recipient`). This app's own are
/// skipped; another app's (a person in the Page's inbox) joins the transcript.
fn read_echo(page: &str, e: &serde_json::Map<String, Value>, app_id: &str, sent_at: Option<Millis>) -> Item {
    let kind = "echo";
    let message = e.get("message");
    let from = message.and_then(|m| m.get("app_id")).and_then(id_of);
    if app_id.is_empty() || from.as_deref() == Some(app_id) {
        return Item::Skip(SkipReason::OwnEcho, kind);
    }
    let Some(Ok(m)) = message.map(MessagePart::deserialize) else {
        return Item::Skip(SkipReason::Unreadable, kind);
    };
    let Some(customer) = e.get("recipient").and_then(|r| r.get("id")).and_then(id_of) else {
        return Item::Skip(SkipReason::Unreadable, kind);
    };
    if !valid_graph_id(&customer) {
        return Item::Skip(SkipReason::BadId, kind);
    }
    let attachments = attachments_of(m.attachments);
    let text = m.text.unwrap_or_default();
    if text.trim().is_empty() && attachments.is_empty() {
        return Item::Skip(SkipReason::Empty, kind);
    }
    Item::Use(
        Command::MessengerMessage {
            page_id: page.into(),
            customer: Customer {
                name: super::placeholder(&customer),
                id: customer,
            },
            text,
            attachments,
            mid: m.mid.map(|mid| format!("echo:{mid}")),
            seen: false,
            last_owner: None,
            sent_at,
            page_echo: true,
            standby: false,
        },
        kind,
    )
}

/// Messenger's attachments as the transcript keeps them: the type and a URL (a location
/// gets a maps link to its coordinates).
fn attachments_of(parts: Vec<AttachmentPart>) -> Vec<Attachment> {
    parts
        .into_iter()
        .map(|a| Attachment {
            url: a.payload.as_ref().and_then(|p| {
                p.url.clone().or_else(|| {
                    p.coordinates
                        .as_ref()
                        .map(|c| format!("https://maps.google.com/?q={},{}", c.lat, c.long))
                })
            }),
            kind: a.kind,
        })
        .collect()
}

/// The metrics kind of an event: which of its parts is set.
fn kind_of(e: &Value) -> &'static str {
    let has = |k: &str| e.get(k).is_some_and(|v| !v.is_null());
    if has("message") {
        if e["message"].get("is_echo").and_then(Value::as_bool) == Some(true) {
            "echo"
        } else {
            "message"
        }
    } else if has("postback") {
        "postback"
    } else if has("delivery") {
        "delivery"
    } else if has("read") {
        "read"
    } else if has("reaction") {
        "reaction"
    } else if has("pass_thread_control")
        || has("take_thread_control")
        || has("request_thread_control")
        || has("app_roles")
    {
        "handover"
    } else {
        "other"
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn skip_reasons(body: &Value) -> Vec<&'static str> {
        read_body(body.to_string().as_bytes(), "1517776481860111")
            .into_iter()
            .map(|i| match i {
                Item::Use(_, kind) => kind,
                Item::Skip(r, _) => r.as_str(),
            })
            .collect()
    }

    #[test]
    fn each_event_is_read_on_its_own() {
        let ev = |extra: Value| {
            let mut e = json!({"sender": {"id": "123"}, "recipient": {"id": "99"}, "timestamp": 1458692752478u64});
            for (k, v) in extra.as_object().unwrap() {
                e[k] = v.clone();
            }
            e
        };
        let body = json!({"object": "page", "entry": [{"id": "99", "time": 1, "messaging": [
            ev(json!({"message": {"mid": "m1", "text": "hi"}})),
            ev(json!({"timestamp": "1458692752478", "message": {"mid": "m2", "text": "string time"}})),
            ev(json!({"timestamp": "yesterday", "message": {"mid": "m3", "text": "x"}})),
            ev(json!({"sender": {"user_ref": "abc"}, "postback": {"title": "Start", "payload": "P"}})),
            ev(json!({"sender": {"id": "../1"}, "message": {"mid": "m4", "text": "x"}})),
            ev(json!({"reaction": {"reaction": "love", "mid": "m1"}})),
            ev(json!({"message": {"mid": "m5", "text": 12}})),
            ev(json!({"message": {"mid": "m6", "is_echo": true, "app_id": 1517776481860111u64, "text": "x"}})),
            ev(json!({"sender": {"id": "99"}, "recipient": {"id": "123"}, "message": {"mid": "m6b", "is_echo": true, "app_id": 263902037430900u64, "text": "from the inbox"}})),
            ev(json!({"message": {"mid": "m7"}})),
            ev(json!({"delivery": {"watermark": 1458668856253u64}})),
            ev(json!({"read": {"watermark": "1458668856253"}})),
            ev(json!({"postback": {"title": "Yes", "payload": "Y"}})),
            json!("not an object"),
            ev(json!({"pass_thread_control": {"previous_owner_app_id": "123456789", "new_owner_app_id": "1517776481860111", "metadata": "VIP"}})),
            ev(json!({"pass_thread_control": {"new_owner_app_id": "999", "metadata": "to another app"}})),
            ev(json!({"take_thread_control": {"previous_owner_app_id": "1517776481860111", "new_owner_app_id": "123456789", "metadata": "bot's turn"}})),
        ], "standby": [
            ev(json!({"message": {"mid": "m8", "text": "bot's"}})),
            ev(json!({"read": {"watermark": 1458668856253u64}})),
        ]},
        {"id": "9\nforged", "messaging": [ev(json!({"message": {"mid": "m9", "text": "x"}}))]}]});
        assert_eq!(
            skip_reasons(&body),
            [
                "message",
                "message",
                "bad_timestamp",
                "user_ref",
                "bad_id",
                "unknown_kind",
                "unreadable",
                "own_echo",
                "echo",
                "empty",
                "delivery",
                "read",
                "postback",
                "unreadable",
                "handover",
                "unknown_kind",
                "unknown_kind",
                "standby",
                "standby",
                "bad_id",
            ]
        );
        assert_eq!(skip_reasons(&json!({"object": "instagram", "entry": []})), ["not_page"]);
        assert_eq!(read_body(b"not json", "").len(), 1);
    }

    #[test]
    fn a_rating_quick_reply_is_read_by_its_payload() {
        let message = |m: serde_json::Value| {
            let body = json!({"object": "page", "entry": [{"id": "99", "time": 1,
                "messaging": [{"sender": {"id": "123"}, "recipient": {"id": "99"}, "timestamp": 1458692752478u64,
                    "message": m}]}]});
            match read_body(body.to_string().as_bytes(), "").pop() {
                Some(Item::Use(Command::MessengerMessage { text, .. }, _)) => text,
                other => panic!("{other:?}"),
            }
        };
        let tapped = json!({"mid": "m1", "text": "★★★★", "quick_reply": {"payload": "SWITCHBOARD_RATING_4"}});
        assert_eq!(message(tapped), "4", "the payload wins over the title");
        let other = json!({"mid": "m2", "text": "Yes", "quick_reply": {"payload": "ANOTHER_APP_YES"}});
        assert_eq!(message(other), "Yes", "another payload: the text as it is");
    }

    #[test]
    fn standby_messages_and_handovers_become_commands() {
        let body = json!({"object": "page", "entry": [{"id": "99", "time": 1,
            "messaging": [{"sender": {"id": "123"}, "recipient": {"id": "99"}, "timestamp": 1458692752478u64,
                "pass_thread_control": {"previous_owner_app_id": null, "new_owner_app_id": "1517776481860111", "metadata": "Additional content"}}],
            "standby": [{"sender": {"id": "123"}, "recipient": {"id": "99"}, "timestamp": 1458692752478u64,
                "message": {"mid": "m1", "text": "hello bot"}}]}]});
        let items = read_body(body.to_string().as_bytes(), "1517776481860111");
        assert!(
            matches!(&items[0], Item::Use(Command::Messenger(MessengerCommand::ThreadPassed { metadata, customer, .. }), "handover")
                if metadata == "Additional content" && customer.id == "123"),
            "{items:?}"
        );
        assert!(
            matches!(&items[1], Item::Use(Command::MessengerMessage { standby: true, text, .. }, "standby") if text == "hello bot"),
            "{items:?}"
        );
    }

    #[test]
    fn times_are_numbers_or_digit_strings() {
        let cases = [
            (json!(12), Ok(Some(12))),
            (json!("12"), Ok(Some(12))),
            (Value::Null, Ok(None)),
            (json!("1.5"), Err(())),
            (json!(-3), Err(())),
            (json!(""), Err(())),
            (json!("99999999999999999999999"), Err(())),
        ];
        for (v, want) in cases {
            assert_eq!(time_of(Some(&v)), want, "{v}");
        }
    }

    #[test]
    fn postbacks_without_a_mid_are_keyed_by_sender_time_and_payload() {
        let body = |mid: Option<&str>, ts: u64, payload: &str| {
            let mut pb = json!({"title": "Go", "payload": payload});
            if let Some(m) = mid {
                pb["mid"] = json!(m);
            }
            json!({"object": "page", "entry": [{"id": "99", "messaging": [
                {"sender": {"id": "123"}, "recipient": {"id": "99"}, "timestamp": ts, "postback": pb}]}]})
        };
        let mid = |b: Value| match read_body(b.to_string().as_bytes(), "").pop() {
            Some(Item::Use(Command::MessengerMessage { mid, .. }, _)) => mid,
            other => panic!("{other:?}"),
        };
        assert_eq!(mid(body(Some("abc"), 1, "P")), Some("postback:abc".into()));
        assert_eq!(mid(body(None, 1, "P")), mid(body(None, 1, "P")));
        assert_ne!(mid(body(None, 1, "P")), mid(body(None, 2, "P")));
        assert_ne!(mid(body(None, 1, "P")), mid(body(None, 1, "Q")));
    }
}
