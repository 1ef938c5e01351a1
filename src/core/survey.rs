//! Satisfaction (issue 26 item 7): after an agent served a conversation to its end, the
//! customer is asked for a rating from 1 to 5; the answer is kept with the conversation's
//! record and shown to supervisors.
//!
//! The rules, all here and carried out by `floor/survey.rs`:
//! - **Who is asked** ([`asked`]): a conversation of a queue with a [`Survey`] that was
//!   being served (`active`, so an agent accepted it) when it ended, by the agent
//!   (`agent_ended`) or by the customer (`customer_ended`). Not one ended at arrival,
//!   abandoned in a queue, dropped after an untaken transfer, or closed for inactivity.
//! - **The question** is the conversation's last message, a system message to the
//!   customer in the channel's template; on Messenger with the quick replies "1" to "5"
//!   ([`rating_payload`]). It is then *pending* for the customer on that entry point
//!   ([`PendingSurvey`]), durably, until answered, dropped or `window_ms` passes.
//! - **The answer** is the customer's next message on the same entry point within the
//!   window: a rating ([`parse_rating`]: "1" to "5" trimmed, or our quick reply's
//!   payload) is the answer, kept once and thanked, and opens no conversation. Anything
//!   else drops the survey and is handled as any message (it opens a conversation).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::conversation::Channel;
use super::{AgentId, ConversationId, CoreError, EntryPointId, Millis, QueueId};

/// How long a question waits for its answer when the setting names no window: a day.
pub const DEFAULT_WINDOW_MS: Millis = 24 * 60 * 60 * 1000;
/// Shortest window: a second (tests use short ones; a real survey waits for hours).
pub const MIN_WINDOW_MS: Millis = 1_000;
/// Longest window: 7 days, Messenger's longest reach (its `HUMAN_AGENT` tag); a pending
/// survey is memory and a record, so it must end.
pub const MAX_WINDOW_MS: Millis = 7 * 24 * 60 * 60 * 1000;
/// Longest question or thanks, in characters.
pub const MAX_TEXT_CHARS: usize = 1_000;
/// The template keys: the fallback and one per channel.
pub const TEMPLATE_KEYS: [&str; 3] = ["default", "messenger", "rest"];
/// The lowest and the highest rating.
pub const RATINGS: std::ops::RangeInclusive<u8> = 1..=5;
/// What a Messenger quick reply's payload starts with; the rating follows.
pub const RATING_PAYLOAD_PREFIX: &str = "SWITCHBOARD_RATING_";

/// The texts of one channel (or the fallback).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SurveyTexts {
    /// Asked at the end of a served conversation.
    pub question: String,
    /// Sent once the answer is in.
    pub thanks: String,
}

/// A queue's satisfaction survey.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Survey {
    /// By channel (`messenger`, `rest`), with `default` (required) for the others.
    pub templates: BTreeMap<String, SurveyTexts>,
    /// How long the question waits for an answer ([`MIN_WINDOW_MS`] to [`MAX_WINDOW_MS`]).
    #[serde(default = "default_window")]
    pub window_ms: Millis,
}

fn default_window() -> Millis {
    DEFAULT_WINDOW_MS
}

fn invalid(m: String) -> CoreError {
    CoreError::InvalidInput(m)
}

fn check_text(field: &str, text: &str) -> Result<(), CoreError> {
    if text.trim().is_empty() || text.chars().count() > MAX_TEXT_CHARS {
        return Err(invalid(format!("{field} must be 1 to {MAX_TEXT_CHARS} characters")));
    }
    Ok(())
}

impl Survey {
    /// Accepts the settings or says, naming the field, what is wrong with them.
    pub fn check(&self) -> Result<(), CoreError> {
        if !self.templates.contains_key("default") {
            return Err(invalid("survey.templates needs `default`".into()));
        }
        for (key, t) in &self.templates {
            if !TEMPLATE_KEYS.contains(&key.as_str()) {
                return Err(invalid(format!(
                    "survey.templates: unknown key {key:?}; known: {}",
                    TEMPLATE_KEYS.join(", ")
                )));
            }
            check_text(&format!("survey.templates.{key}.question"), &t.question)?;
            check_text(&format!("survey.templates.{key}.thanks"), &t.thanks)?;
        }
        if !(MIN_WINDOW_MS..=MAX_WINDOW_MS).contains(&self.window_ms) {
            return Err(invalid(format!(
                "survey.window_ms must be {MIN_WINDOW_MS} to {MAX_WINDOW_MS}"
            )));
        }
        Ok(())
    }

    /// The texts for a customer on `channel`: its own, else `default`.
    pub fn texts(&self, channel: Channel) -> Option<&SurveyTexts> {
        self.templates
            .get(channel.as_str())
            .or_else(|| self.templates.get("default"))
    }
}

/// Whether a conversation that ends now, in state `was_active` (an agent serving it),
/// for `reason`, asks its customer for a rating (its queue having a survey).
pub fn asked(was_active: bool, reason: &str) -> bool {
    was_active && matches!(reason, "agent_ended" | "customer_ended")
}

/// The rating a customer's text is, if it is one: "1" to "5", spaces around allowed.
pub fn parse_rating(text: &str) -> Option<u8> {
    match text.trim().as_bytes() {
        [d] if (b'1'..=b'5').contains(d) => Some(d - b'0'),
        _ => None,
    }
}

/// The payload of the Messenger quick reply for `rating`.
pub fn rating_payload(rating: u8) -> String {
    format!("{RATING_PAYLOAD_PREFIX}{rating}")
}

/// The rating a quick reply's payload carries, if it is one of ours.
pub fn payload_rating(payload: &str) -> Option<u8> {
    let rest = payload.strip_prefix(RATING_PAYLOAD_PREFIX)?;
    match rest.as_bytes() {
        [d] if (b'1'..=b'5').contains(d) => Some(d - b'0'),
        _ => None,
    }
}

/// The quick replies of a rating question: "1" to "5", each with its payload.
pub fn rating_replies() -> Vec<super::messenger::QuickReply> {
    RATINGS
        .map(|r| super::messenger::QuickReply {
            title: r.to_string(),
            payload: rating_payload(r),
        })
        .collect()
}

/// A question asked and not yet answered: one per customer and entry point (a new one
/// replaces it). Kept durably (docs/STORE.md "Pending surveys"), so that a restart between
/// the question and the answer loses neither.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingSurvey {
    /// The conversation rated.
    pub conversation: ConversationId,
    pub entry_point: EntryPointId,
    /// The customer's channel id.
    pub customer: String,
    pub channel: Channel,
    /// Its queue when it ended, and the agent that served it last (for events out).
    pub queue: QueueId,
    pub agent: Option<AgentId>,
    /// The conversation's arrival: its record's key, which the rating is kept beside.
    pub arrived_at: Millis,
    pub asked_at: Millis,
    /// Gone after this: the customer's next message is a message like any other.
    pub expires_at: Millis,
    /// The `seq` the answer takes in the transcript once the floor no longer holds the
    /// conversation (complete): one past its last message, noted when it leaves.
    pub next_seq: u64,
    /// The thanks as they were when asked: a question asked is answered and thanked
    /// even if the queue's survey changed since.
    pub thanks: String,
}

impl PendingSurvey {
    /// The rating `text` gives this survey at `now`, if it is one and still wanted.
    pub fn answer(&self, text: &str, now: Millis) -> Option<u8> {
        if now >= self.expires_at {
            return None;
        }
        parse_rating(text)
    }
}

/// A conversation's rating, as its record keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Satisfaction {
    /// 1 (poor) to 5 (great).
    pub rating: u8,
    /// When the customer gave it.
    pub at: Millis,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(q: &str) -> SurveyTexts {
        SurveyTexts {
            question: q.into(),
            thanks: "Thanks".into(),
        }
    }

    fn survey() -> Survey {
        Survey {
            templates: [("default".to_string(), texts("Rate us 1-5"))].into_iter().collect(),
            window_ms: 60_000,
        }
    }

    fn pending(expires_at: Millis) -> PendingSurvey {
        PendingSurvey {
            conversation: "c-1".into(),
            entry_point: "e".into(),
            customer: "u".into(),
            channel: Channel::Rest,
            queue: "q".into(),
            agent: Some("a1".into()),
            arrived_at: 1,
            asked_at: 10,
            expires_at,
            next_seq: 3,
            thanks: "Thanks".into(),
        }
    }

    /// `check` of `s` changed by `edit`: `Ok`, or the error's text.
    fn check(edit: impl FnOnce(&mut Survey)) -> Result<(), String> {
        let mut s = survey();
        edit(&mut s);
        s.check().map_err(|e| e.to_string())
    }

    #[test]
    fn settings_are_checked_and_name_the_field() {
        assert_eq!(check(|_| {}), Ok(()));
        type Edit = Box<dyn FnOnce(&mut Survey)>;
        let cases: [(&str, Edit); 7] = [
            ("needs `default`", Box::new(|s| s.templates.clear())),
            (
                "unknown key \"sms\"",
                Box::new(|s| {
                    s.templates.insert("sms".into(), texts("q"));
                }),
            ),
            (
                "survey.templates.default.question",
                Box::new(|s| s.templates.get_mut("default").expect("default").question = " ".into()),
            ),
            (
                "survey.templates.default.thanks",
                Box::new(|s| s.templates.get_mut("default").expect("default").thanks = "x".repeat(1001)),
            ),
            (
                "survey.templates.messenger.question",
                Box::new(|s| {
                    s.templates.insert("messenger".into(), texts(""));
                }),
            ),
            ("survey.window_ms", Box::new(|s| s.window_ms = 999)),
            ("survey.window_ms", Box::new(|s| s.window_ms = MAX_WINDOW_MS + 1)),
        ];
        for (want, edit) in cases {
            let got = check(edit).expect_err(want);
            assert!(got.contains(want), "{got:?} should name {want:?}");
        }
    }

    #[test]
    fn texts_are_the_channels_or_the_default() {
        let mut s = survey();
        s.templates.insert("messenger".into(), texts("Messenger: rate us"));
        assert_eq!(
            s.texts(Channel::Messenger).map(|t| t.question.as_str()),
            Some("Messenger: rate us")
        );
        assert_eq!(s.texts(Channel::Rest).map(|t| t.question.as_str()), Some("Rate us 1-5"));
    }

    #[test]
    fn asked_only_at_the_end_of_a_served_conversation() {
        for (active, reason, want) in [
            (true, "agent_ended", true),
            (true, "customer_ended", true),
            (true, "customer_inactive", false),
            (true, "transfer_not_accepted", false),
            (false, "customer_ended", false),
            (false, "outside_hours", false),
            (false, "queue_full", false),
        ] {
            assert_eq!(asked(active, reason), want, "{active} {reason}");
        }
    }

    #[test]
    fn ratings_are_one_to_five_or_our_payloads() {
        for (text, want) in [
            ("1", Some(1)),
            (" 5 \n", Some(5)),
            ("3", Some(3)),
            ("0", None),
            ("6", None),
            ("10", None),
            ("4 stars", None),
            ("", None),
            ("５", None),
        ] {
            assert_eq!(parse_rating(text), want, "{text:?}");
        }
        for r in RATINGS {
            assert_eq!(payload_rating(&rating_payload(r)), Some(r));
        }
        for payload in [
            "SWITCHBOARD_RATING_0",
            "SWITCHBOARD_RATING_6",
            "SWITCHBOARD_RATING_",
            "RATING_3",
            "3",
        ] {
            assert_eq!(payload_rating(payload), None, "{payload}");
        }
        let replies = rating_replies();
        assert_eq!(replies.len(), 5);
        assert_eq!(
            (replies[0].title.as_str(), replies[4].payload.as_str()),
            ("1", "SWITCHBOARD_RATING_5")
        );
    }

    #[test]
    fn an_answer_counts_only_within_the_window() {
        let p = pending(100);
        assert_eq!(p.answer("4", 99), Some(4));
        assert_eq!(p.answer("4", 100), None, "expired at its deadline");
        assert_eq!(p.answer("hello", 50), None, "not a rating");
    }
}
