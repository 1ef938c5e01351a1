//! The Messenger Platform's webhook payload (`object: "page"`, `entry[].messaging[]`) and
//! what each event becomes.
//!
//! Parsed leniently: an event of a kind Switchboard does not handle (reactions,
//! referrals, optins, ...) is acknowledged and ignored rather than failing the batch,
//! since Meta would redeliver a refused batch for hours.

use serde::Deserialize;

use crate::core::{Attachment, Command, Customer};

/// A webhook body.
#[derive(Debug, Deserialize)]
pub struct WebhookBody {
    pub object: String,
    #[serde(default)]
    pub entry: Vec<Entry>,
}

/// One page's batch of events.
#[derive(Debug, Deserialize)]
pub struct Entry {
    /// The page id.
    pub id: String,
    #[serde(default)]
    pub messaging: Vec<Event>,
}

#[derive(Debug, Deserialize)]
pub struct Party {
    pub id: String,
}

/// One `messaging[]` event: exactly one of its optional parts is set.
#[derive(Debug, Deserialize)]
pub struct Event {
    pub sender: Option<Party>,
    pub recipient: Option<Party>,
    #[serde(default)]
    pub timestamp: u64,
    pub message: Option<MessagePart>,
    pub postback: Option<Postback>,
    pub delivery: Option<Watermark>,
    pub read: Option<Watermark>,
    pub reaction: Option<serde_json::Value>,
}

#[derive(Debug, Deserialize)]
pub struct MessagePart {
    pub mid: Option<String>,
    pub text: Option<String>,
    #[serde(default)]
    pub attachments: Vec<AttachmentPart>,
    #[serde(default)]
    pub is_echo: bool,
}

#[derive(Debug, Deserialize)]
pub struct AttachmentPart {
    #[serde(rename = "type")]
    pub kind: String,
    pub payload: Option<AttachmentPayload>,
}

#[derive(Debug, Deserialize)]
pub struct AttachmentPayload {
    pub url: Option<String>,
    pub coordinates: Option<Coordinates>,
}

#[derive(Debug, Deserialize)]
pub struct Coordinates {
    pub lat: f64,
    pub long: f64,
}

#[derive(Debug, Deserialize)]
pub struct Postback {
    pub mid: Option<String>,
    #[serde(default)]
    pub title: String,
    #[serde(default)]
    pub payload: String,
}

#[derive(Debug, Deserialize)]
pub struct Watermark {
    pub watermark: u64,
}

/// What one event is, for metrics and for the engine.
#[derive(Debug)]
pub enum Kind {
    /// A customer's message or postback (the label): a command (the name is filled in later).
    Message(Command, &'static str),
    /// A delivery or read mark.
    Mark(Command),
    /// Accepted and ignored: `echo`, `reaction`, or `other`.
    Ignored(&'static str),
}

impl Kind {
    /// The `kind` label of the webhook metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Kind::Message(_, label) => label,
            Kind::Mark(Command::MessengerMark { read: true, .. }) => "read",
            Kind::Mark(_) => "delivery",
            Kind::Ignored(k) => k,
        }
    }
}

/// The event `e` of page `page_id`. `name` is the customer's name for the command.
pub fn classify(page_id: &str, e: Event) -> Kind {
    let customer = e.sender.map(|s| s.id).unwrap_or_default();
    if customer.is_empty() {
        return Kind::Ignored("other");
    }
    if let Some(m) = e.message {
        if m.is_echo {
            return Kind::Ignored("echo");
        }
        let attachments: Vec<Attachment> = m
            .attachments
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
            .collect();
        let text = m.text.unwrap_or_default();
        if text.is_empty() && attachments.is_empty() {
            return Kind::Ignored("other");
        }
        return Kind::Message(
            Command::MessengerMessage {
                page_id: page_id.into(),
                customer: Customer {
                    name: super::placeholder(&customer),
                    id: customer,
                },
                text,
                attachments,
                mid: m.mid,
                seen: false,
                last_owner: None,
            },
            "message",
        );
    }
    if let Some(p) = e.postback {
        let text = if p.title.trim().is_empty() { p.payload } else { p.title };
        if text.trim().is_empty() {
            return Kind::Ignored("other");
        }
        return Kind::Message(
            Command::MessengerMessage {
                page_id: page_id.into(),
                customer: Customer {
                    name: super::placeholder(&customer),
                    id: customer,
                },
                text,
                attachments: Vec::new(),
                mid: p.mid.map(|m| format!("postback:{m}")),
                seen: false,
                last_owner: None,
            },
            "postback",
        );
    }
    for (mark, read) in [(e.delivery, false), (e.read, true)] {
        if let Some(w) = mark {
            return Kind::Mark(Command::MessengerMark {
                page_id: page_id.into(),
                customer,
                watermark: w.watermark,
                read,
            });
        }
    }
    if e.reaction.is_some() {
        return Kind::Ignored("reaction");
    }
    Kind::Ignored("other")
}
