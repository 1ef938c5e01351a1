//! The customer's place in line (issue 26 item 2): messages to a waiting customer with
//! its position and an expected wait, at arrival and when either has changed by a step,
//! at most once per interval, in its channel's template.
//!
//! # The expected wait, and how it is worked out
//! From the queue's recent waits ([`RecentWaits`]): the waits (from entering the queue to
//! an agent's accept of a new offer) of the last [`RECENT_WAITS`] conversations accepted
//! from the queue within the last [`RECENT_WINDOW_MS`]. With at least [`MIN_WAITS`] of
//! them, the expected wait of a customer who has waited `w` is their median minus `w`,
//! and at least one minute; with fewer, there is no estimate and the template without a
//! wait is used. The median, not the mean, so that one customer left waiting overnight
//! does not tell every later one to wait for hours. The waits are the engine's memory
//! of the moment, not stored: after a restart the estimate starts again from the next
//! accepts.

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};

use super::{CoreError, Millis};

/// How many recent waits a queue keeps.
pub const RECENT_WAITS: usize = 20;
/// Waits older than this (by their accept) no longer count.
pub const RECENT_WINDOW_MS: Millis = 60 * 60 * 1000;
/// Fewest recent waits that make an estimate.
pub const MIN_WAITS: usize = 3;
/// Shortest interval between two messages to one customer.
pub const MIN_INTERVAL_MS: Millis = 5_000;
/// Longest template, in characters.
pub const MAX_TEMPLATE_CHARS: usize = 1_000;
/// The template keys: the fallback and one per channel.
pub const TEMPLATE_KEYS: [&str; 3] = ["default", "messenger", "rest"];

/// The texts of one channel (or the fallback).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlaceTexts {
    /// With an estimate: `{{position}}` and `{{wait_minutes}}`.
    pub text: String,
    /// Without one (too few recent waits): `{{position}}` only.
    pub text_without_wait: String,
}

/// A queue's messages about the customer's place in line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlaceUpdates {
    /// By channel (`messenger`, `rest`), with `default` for the others; `default` is
    /// required.
    pub templates: BTreeMap<String, PlaceTexts>,
    /// A new message once the position moved by this many places (1 or more).
    #[serde(default = "one")]
    pub position_step: u32,
    /// ... or the expected wait by this much.
    #[serde(default = "minute")]
    pub wait_step_ms: Millis,
    /// And never more often than this, per customer ([`MIN_INTERVAL_MS`] or more).
    #[serde(default = "half_minute")]
    pub min_interval_ms: Millis,
}

fn one() -> u32 {
    1
}
fn minute() -> Millis {
    60_000
}
fn half_minute() -> Millis {
    30_000
}

fn invalid(m: String) -> CoreError {
    CoreError::InvalidInput(m)
}

/// Every `{{...}}` of `text` is one of `allowed`.
fn check_template(field: &str, text: &str, allowed: &[&str]) -> Result<(), CoreError> {
    if text.trim().is_empty() || text.chars().count() > MAX_TEMPLATE_CHARS {
        return Err(invalid(format!("{field} must be 1 to {MAX_TEMPLATE_CHARS} characters")));
    }
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            return Err(invalid(format!("{field} has a `{{{{` without its `}}}}`")));
        };
        let name = after[..end].trim();
        if !allowed.contains(&name) {
            return Err(invalid(format!("{field}: unknown placeholder {{{{{name}}}}}")));
        }
        rest = &after[end + 2..];
    }
    Ok(())
}

impl PlaceUpdates {
    /// Accepts the settings or says what is wrong with them.
    pub fn check(&self) -> Result<(), CoreError> {
        if !self.templates.contains_key("default") {
            return Err(invalid("place_updates.templates needs `default`".into()));
        }
        for (key, t) in &self.templates {
            if !TEMPLATE_KEYS.contains(&key.as_str()) {
                return Err(invalid(format!(
                    "place_updates.templates: unknown key {key:?}; known: {}",
                    TEMPLATE_KEYS.join(", ")
                )));
            }
            check_template(
                &format!("place_updates.templates.{key}.text"),
                &t.text,
                &["position", "wait_minutes"],
            )?;
            check_template(
                &format!("place_updates.templates.{key}.text_without_wait"),
                &t.text_without_wait,
                &["position"],
            )?;
        }
        if self.position_step == 0 {
            return Err(invalid("place_updates.position_step must be 1 or more".into()));
        }
        if self.min_interval_ms < MIN_INTERVAL_MS {
            return Err(invalid(format!(
                "place_updates.min_interval_ms must be {MIN_INTERVAL_MS} or more"
            )));
        }
        Ok(())
    }

    /// The message for a customer on `channel` at `position`, expected to wait `wait_ms`
    /// more (`None`: no estimate). Minutes are rounded up.
    pub fn text(&self, channel: &str, position: usize, wait_ms: Option<Millis>) -> String {
        let t = self.templates.get(channel).or_else(|| self.templates.get("default"));
        let Some(t) = t else { return String::new() };
        let template = if wait_ms.is_some() {
            &t.text
        } else {
            &t.text_without_wait
        };
        let minutes = wait_ms.map(|w| w.div_ceil(60_000).max(1)).unwrap_or(0);
        fill(template, position, minutes)
    }

    /// Whether a customer told `last` (if ever) is told again now, at `position` with
    /// `wait_ms` to go: the first time always; then once `min_interval_ms` has passed and
    /// the position moved by `position_step` or the estimate by `wait_step_ms` (an
    /// estimate that appears or goes counts as a change).
    pub fn due(&self, last: Option<&Told>, position: usize, wait_ms: Option<Millis>, now: Millis) -> bool {
        let Some(last) = last else { return true };
        if now < last.at.saturating_add(self.min_interval_ms) {
            return false;
        }
        let moved = position.abs_diff(last.position) >= self.position_step as usize;
        let wait_changed = match (wait_ms, last.wait_ms) {
            (Some(a), Some(b)) => a.abs_diff(b) >= self.wait_step_ms,
            (None, None) => false,
            _ => true,
        };
        moved || wait_changed
    }
}

fn fill(template: &str, position: usize, minutes: u64) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        match after.find("}}") {
            Some(end) => {
                match after[..end].trim() {
                    "position" => out.push_str(&position.to_string()),
                    "wait_minutes" => out.push_str(&minutes.to_string()),
                    other => {
                        out.push_str("{{");
                        out.push_str(other);
                        out.push_str("}}");
                    }
                }
                rest = &after[end + 2..];
            }
            None => {
                out.push_str("{{");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// What a customer was last told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Told {
    pub at: Millis,
    pub position: usize,
    pub wait_ms: Option<Millis>,
}

/// A queue's recent waits: `(accepted at, waited)`, newest last.
#[derive(Debug, Clone, Default)]
pub struct RecentWaits {
    waits: VecDeque<(Millis, Millis)>,
}

impl RecentWaits {
    /// A conversation of the queue was accepted at `at` after waiting `waited`.
    pub fn push(&mut self, at: Millis, waited: Millis) {
        if self.waits.len() == RECENT_WAITS {
            self.waits.pop_front();
        }
        self.waits.push_back((at, waited));
    }

    /// The expected wait of a customer who has waited `waited` at `now` (see the module
    /// docs), or `None` with fewer than [`MIN_WAITS`] recent waits.
    pub fn estimate(&self, now: Millis, waited: Millis) -> Option<Millis> {
        self.median(now).map(|m| expected(m, waited))
    }

    /// The median of the recent waits at `now`, or `None` with fewer than [`MIN_WAITS`]
    /// (a sweep takes it once for the whole queue).
    pub fn median(&self, now: Millis) -> Option<Millis> {
        let mut recent: Vec<Millis> = self
            .waits
            .iter()
            .filter(|(at, _)| now.saturating_sub(*at) <= RECENT_WINDOW_MS)
            .map(|(_, w)| *w)
            .collect();
        if recent.len() < MIN_WAITS {
            return None;
        }
        recent.sort_unstable();
        let n = recent.len();
        let median = if n % 2 == 1 {
            recent[n / 2]
        } else {
            (recent[n / 2 - 1] + recent[n / 2]) / 2
        };
        Some(median)
    }
}

/// The expected wait of a customer who has waited `waited`, from the queue's `median`.
pub fn expected(median: Millis, waited: Millis) -> Millis {
    median.saturating_sub(waited).max(60_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> PlaceUpdates {
        let mut templates = BTreeMap::new();
        templates.insert(
            "default".to_string(),
            PlaceTexts {
                text: "You are number {{position}}; about {{wait_minutes}} min.".into(),
                text_without_wait: "You are number {{position}}.".into(),
            },
        );
        templates.insert(
            "messenger".to_string(),
            PlaceTexts {
                text: "Vous êtes n° {{ position }} ; environ {{wait_minutes}} min.".into(),
                text_without_wait: "Vous êtes n° {{position}}.".into(),
            },
        );
        PlaceUpdates {
            templates,
            position_step: 2,
            wait_step_ms: 120_000,
            min_interval_ms: 30_000,
        }
    }

    #[test]
    fn texts_by_channel_with_and_without_an_estimate() {
        let s = settings();
        assert!(s.check().is_ok());
        assert_eq!(s.text("rest", 3, Some(61_000)), "You are number 3; about 2 min.");
        assert_eq!(s.text("rest", 3, None), "You are number 3.");
        assert_eq!(s.text("messenger", 1, Some(60_000)), "Vous êtes n° 1 ; environ 1 min.");
        assert_eq!(s.text("messenger", 4, None), "Vous êtes n° 4.");
    }

    #[test]
    fn bad_settings_are_refused_naming_the_field() {
        let base = settings();
        let mut cases: Vec<(PlaceUpdates, &str)> = Vec::new();
        let mut s = base.clone();
        s.templates.remove("default");
        cases.push((s, "default"));
        let mut s = base.clone();
        s.templates.insert("sms".into(), base.templates["default"].clone());
        cases.push((s, "sms"));
        let mut s = base.clone();
        s.templates.get_mut("default").unwrap().text_without_wait = "{{wait_minutes}}".into();
        cases.push((s, "text_without_wait"));
        let mut s = base.clone();
        s.templates.get_mut("default").unwrap().text = "{{place}}".into();
        cases.push((s, "place"));
        let mut s = base.clone();
        s.templates.get_mut("default").unwrap().text = " ".into();
        cases.push((s, "1 to"));
        let mut s = base.clone();
        s.position_step = 0;
        cases.push((s, "position_step"));
        let mut s = base.clone();
        s.min_interval_ms = 1_000;
        cases.push((s, "min_interval_ms"));
        for (s, says) in cases {
            match s.check() {
                Err(CoreError::InvalidInput(m)) => assert!(m.contains(says), "{says}: {m}"),
                other => panic!("{says}: {other:?}"),
            }
        }
    }

    #[test]
    fn told_again_only_after_the_interval_and_a_step() {
        let s = settings();
        let last = Told {
            at: 1_000,
            position: 5,
            wait_ms: Some(600_000),
        };
        // Table: (now, position, wait, due).
        for (now, position, wait, due) in [
            (1_000, 1, Some(0), false),        // within the interval, whatever changed
            (31_000, 4, Some(600_000), false), // moved one place; the step is two
            (31_000, 3, Some(600_000), true),  // moved two places
            (31_000, 5, Some(480_000), true),  // the wait moved by the step
            (31_000, 5, Some(500_000), false), // by less than the step
            (31_000, 5, None, true),           // the estimate went away
            (31_000, 7, Some(600_000), true),  // moved back (a higher priority came)
        ] {
            assert_eq!(
                s.due(Some(&last), position, wait, now),
                due,
                "{now} {position} {wait:?}"
            );
        }
        assert!(s.due(None, 9, None, 0), "the first time always");
    }

    #[test]
    fn the_estimate_is_the_median_of_recent_waits_less_the_wait_so_far() {
        let mut r = RecentWaits::default();
        assert_eq!(r.estimate(0, 0), None);
        for (at, w) in [(1_000, 300_000), (2_000, 120_000)] {
            r.push(at, w);
        }
        assert_eq!(r.estimate(3_000, 0), None, "two waits are not enough");
        r.push(3_000, 10 * 3_600_000); // one customer left waiting ten hours
        assert_eq!(r.estimate(3_000, 0), Some(300_000), "the median ignores the outlier");
        assert_eq!(r.estimate(3_000, 200_000), Some(100_000), "less what was waited");
        assert_eq!(r.estimate(3_000, 290_000), Some(60_000), "at least a minute");
        // An hour later the old waits no longer count.
        assert_eq!(r.estimate(3_000 + RECENT_WINDOW_MS + 2_001, 0), None);
        for i in 0..(RECENT_WAITS as u64 + 5) {
            r.push(10_000 + i, 60_000);
        }
        assert_eq!(r.waits.len(), RECENT_WAITS, "bounded");
    }
}
