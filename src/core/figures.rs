//! Figures per interval, for the queue and agent reports (../shared/API.md "Reports and
//! events out"; docs/API-NOTES.md "Reports: queues and agents").
//!
//! The engine keeps, per queue and per agent, one [`Figures`] row for each 15-minute
//! interval ([`INTERVAL_MS`]) that saw anything. Rows only ever grow by addition
//! ([`Figures::add`]): each step that learns something emits a **delta** (a
//! [`Change::Figures`](super::Change::Figures)) in the same commit as the state it
//! comes from, and the store adds it to the row it keeps. A report of any length then
//! reads one row per interval and subject and adds them up ([`Figures::add`] again),
//! whatever the number of conversations behind them.
//!
//! # Where a figure lands
//! - A **queue**'s figures come from a conversation's record once it is complete
//!   ([`queue_delta`]), in the interval of its **arrival**, in the queue it **arrived**
//!   in (its first): a conversation counts once, where the customer first waited. A
//!   wrap-up an hour after the interval closed still lands there, beside its arrival:
//!   late events change the interval they belong to, not the current one.
//! - An **agent**'s conversation figures (handled, handle time, wrap-up time) come from
//!   the same record ([`agent_deltas`]), in the interval in which the agent **accepted**.
//! - An agent's **time in each presence state** is counted when the state ends
//!   ([`presence_deltas`]), split over the intervals it spans; a **RONA** counts in the
//!   interval it happened ([`rona_delta`]).
//!
//! # Percentiles
//! A row keeps a histogram of waits ([`Histogram`]) in buckets of a quarter of an octave
//! (1 to 1.25, 1.25 to 1.5, ... times a power of two: a bucket's upper edge is at most
//! 25 % above its lower edge), so rows add up exactly and a p90 over any range is read
//! from the sum: it is the upper edge of the bucket holding the 90th percentile, never
//! below it by more than that 25 %, never above the true maximum.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::agent::Presence;
use super::report::{ConversationRecord, Outcome};
use super::{AgentId, Millis, QueueId};

/// The grain of the stored figures: 15 minutes.
pub const INTERVAL_MS: Millis = 15 * 60 * 1000;

/// A queue's service level threshold when none is set: answered within a minute.
pub const DEFAULT_SERVICE_LEVEL_MS: u64 = 60_000;

/// The most a queue's `service_level_ms` may be: a day.
pub const MAX_SERVICE_LEVEL_MS: u64 = 24 * 60 * 60 * 1000;

/// The start of the interval holding `at`.
pub fn interval_of(at: Millis) -> Millis {
    at - at % INTERVAL_MS
}

/// Whose figures a row holds.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Subject {
    Queue(QueueId),
    Agent(AgentId),
}

/// Count, total and maximum of some duration.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sum {
    pub count: u64,
    pub total_ms: u64,
    pub max_ms: u64,
}

impl Sum {
    /// One duration.
    pub fn of(ms: u64) -> Sum {
        Sum {
            count: 1,
            total_ms: ms,
            max_ms: ms,
        }
    }

    /// Adds `other` in.
    pub fn add(&mut self, other: &Sum) {
        self.count = self.count.saturating_add(other.count);
        self.total_ms = self.total_ms.saturating_add(other.total_ms);
        self.max_ms = self.max_ms.max(other.max_ms);
    }

    /// The mean, or `None` when there is nothing.
    pub fn mean_ms(&self) -> Option<u64> {
        (self.count > 0).then(|| self.total_ms / self.count)
    }
}

/// Durations counted in quarter-octave buckets: bucket 0 holds 0 ms, bucket `i` > 0 holds
/// `[lower(i), lower(i + 1))` where `lower(1 + 4k + s) = 2^k * (4 + s) / 4`. Sparse: only
/// buckets that hold something, in bucket order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Histogram {
    pub buckets: Vec<(u8, u64)>,
}

impl Histogram {
    /// The bucket of `ms`.
    pub fn bucket(ms: u64) -> u8 {
        if ms == 0 {
            return 0;
        }
        let k = 63 - ms.leading_zeros() as u64;
        // The two bits after the leading one (or what there is of them).
        let s = if k >= 2 {
            (ms >> (k - 2)) & 3
        } else {
            (ms << (2 - k)) & 3
        };
        (1 + 4 * k + s).min(u8::MAX as u64) as u8
    }

    /// The lowest duration of bucket `b`.
    pub fn lower(b: u8) -> u64 {
        if b == 0 {
            return 0;
        }
        let k = (b as u64 - 1) / 4;
        let s = (b as u64 - 1) % 4;
        ((4 + s) << k) >> 2
    }

    /// The highest duration of bucket `b` (below 4 ms a bucket holds one value).
    pub fn upper(b: u8) -> u64 {
        if b == 0 || (b - 1) / 4 < 2 {
            Self::lower(b)
        } else if b == u8::MAX {
            u64::MAX
        } else {
            Self::lower(b + 1) - 1
        }
    }

    /// Counts `ms` once.
    pub fn record(&mut self, ms: u64) {
        self.add_count(Self::bucket(ms), 1);
    }

    fn add_count(&mut self, b: u8, n: u64) {
        match self.buckets.binary_search_by_key(&b, |(x, _)| *x) {
            Ok(i) => self.buckets[i].1 = self.buckets[i].1.saturating_add(n),
            Err(i) => self.buckets.insert(i, (b, n)),
        }
    }

    /// Adds `other` in.
    pub fn add(&mut self, other: &Histogram) {
        for &(b, n) in &other.buckets {
            self.add_count(b, n);
        }
    }

    /// The `q` quantile (0 < q ≤ 1): the upper edge of the bucket holding it, at most
    /// `max`; `None` when empty.
    pub fn quantile(&self, q: f64, max: u64) -> Option<u64> {
        let n: u64 = self.buckets.iter().map(|(_, n)| n).sum();
        if n == 0 {
            return None;
        }
        let rank = ((q * n as f64).ceil() as u64).clamp(1, n);
        let mut seen = 0;
        for &(b, c) in &self.buckets {
            seen += c;
            if seen >= rank {
                return Some(Self::upper(b).min(max));
            }
        }
        Some(max)
    }
}

/// What a queue or an agent did in one interval (or, added up, over a range). A queue's
/// row uses the conversation fields, an agent's the agent fields and the durations.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Figures {
    /// Queue: conversations that arrived and waited (not refused at arrival).
    pub offered: u64,
    /// Queue: of those, accepted by an agent.
    pub answered: u64,
    /// Queue: answered within the queue's `service_level_ms` of arrival.
    pub answered_in_sl: u64,
    /// Queue: waited and ended before any accept (left, inactive, closed).
    pub abandoned: u64,
    /// Queue: ended at arrival, never waiting: outside business hours (`close`) or a
    /// full queue.
    pub refused: u64,
    /// Queue: transferred at least once; agent: transfers are not counted here.
    pub transferred: u64,
    /// Queue: closed for the customer's inactivity after an accept.
    pub closed_inactive: u64,
    /// Queue: arrival to first accept, of answered conversations.
    pub wait: Sum,
    /// Queue: the same waits, for percentiles.
    pub wait_histogram: Histogram,
    /// Queue: arrival to the end, of abandoned conversations.
    pub abandon_wait: Sum,
    /// Queue: arrival to the first agent message.
    pub first_response: Sum,
    /// Queue: per answered conversation, every agent's time in it; agent: per
    /// conversation it accepted, its own time in it.
    pub handle: Sum,
    /// Leaving to wrap-up, per wrap-up (the queue's: every agent's).
    pub wrapup: Sum,
    /// Agent: conversations it accepted as owner.
    pub handled: u64,
    /// Agent: conversations it joined only as a conference guest.
    pub conferenced: u64,
    /// Agent: offers it let expire.
    pub ronas: u64,
    /// Agent: time in each presence state (`available`, `idle`, `rona`), ms.
    pub presence_ms: BTreeMap<String, u64>,
}

impl Figures {
    /// Adds `other` in: every count and duration.
    pub fn add(&mut self, other: &Figures) {
        let add = |a: &mut u64, b: u64| *a = a.saturating_add(b);
        add(&mut self.offered, other.offered);
        add(&mut self.answered, other.answered);
        add(&mut self.answered_in_sl, other.answered_in_sl);
        add(&mut self.abandoned, other.abandoned);
        add(&mut self.refused, other.refused);
        add(&mut self.transferred, other.transferred);
        add(&mut self.closed_inactive, other.closed_inactive);
        self.wait.add(&other.wait);
        self.wait_histogram.add(&other.wait_histogram);
        self.abandon_wait.add(&other.abandon_wait);
        self.first_response.add(&other.first_response);
        self.handle.add(&other.handle);
        self.wrapup.add(&other.wrapup);
        add(&mut self.handled, other.handled);
        add(&mut self.conferenced, other.conferenced);
        add(&mut self.ronas, other.ronas);
        for (state, ms) in &other.presence_ms {
            add(self.presence_ms.entry(state.clone()).or_default(), *ms);
        }
    }

    /// The service level in percent: answered within the threshold over offered; `None`
    /// when nothing was offered.
    pub fn service_level_percent(&self) -> Option<f64> {
        (self.offered > 0).then(|| self.answered_in_sl as f64 * 100.0 / self.offered as f64)
    }

    /// Occupancy in percent: handle time over time available. An agent serving two
    /// conversations at once counts both, so it may pass 100. `None` with no time
    /// available.
    pub fn occupancy_percent(&self) -> Option<f64> {
        let available = self.presence_ms.get(Presence::Available.as_str()).copied().unwrap_or(0);
        (available > 0).then(|| self.handle.total_ms as f64 * 100.0 / available as f64)
    }
}

/// One delta: add `figures` to `subject`'s row of the interval starting at `interval`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delta {
    pub subject: Subject,
    pub interval: Millis,
    pub figures: Figures,
}

/// Whether a conversation with this `ended_reason` ended at arrival without waiting.
pub fn refused_at_arrival(ended_reason: &str) -> bool {
    ended_reason == super::hours::OUTSIDE_HOURS_REASON || ended_reason == super::queue::QUEUE_FULL_REASON
}

/// The queue figures of a complete conversation: in the queue it arrived in, in its
/// arrival's interval. `service_level_ms` is that queue's threshold.
pub fn queue_delta(r: &ConversationRecord, service_level_ms: u64) -> Option<Delta> {
    let queue = r.queues.first()?;
    let mut f = Figures::default();
    if refused_at_arrival(&r.ended_reason) {
        f.refused = 1;
    } else {
        f.offered = 1;
        match r.accepted_at {
            Some(accepted) => {
                let wait = accepted.saturating_sub(r.arrived_at);
                f.answered = 1;
                f.answered_in_sl = u64::from(wait <= service_level_ms);
                f.wait = Sum::of(wait);
                f.wait_histogram.record(wait);
                let handle: u64 = r.agents.iter().map(|a| a.handle_ms).sum();
                f.handle = Sum::of(handle);
            }
            None => {
                f.abandoned = 1;
                f.abandon_wait = Sum::of(r.ended_at.saturating_sub(r.arrived_at));
            }
        }
        match r.outcome {
            Outcome::Transferred => f.transferred = 1,
            Outcome::ClosedInactive => f.closed_inactive = 1,
            Outcome::Handled | Outcome::Abandoned => {}
        }
        if let Some(reply) = r.first_agent_reply_at {
            f.first_response = Sum::of(reply.saturating_sub(r.arrived_at));
        }
        for a in &r.agents {
            if let Some(at) = a.wrapped_up_at {
                f.wrapup.add(&Sum::of(at.saturating_sub(a.left_at)));
            }
        }
    }
    Some(Delta {
        subject: Subject::Queue(queue.clone()),
        interval: interval_of(r.arrived_at),
        figures: f,
    })
}

/// The agent figures of a complete conversation: one delta per agent that accepted it,
/// in the interval in which it did.
pub fn agent_deltas(r: &ConversationRecord) -> impl Iterator<Item = Delta> + '_ {
    r.agents.iter().map(|a| {
        let mut f = Figures {
            handle: Sum::of(a.handle_ms),
            ..Default::default()
        };
        if a.guest {
            f.conferenced = 1;
        } else {
            f.handled = 1;
        }
        if let Some(at) = a.wrapped_up_at {
            f.wrapup = Sum::of(at.saturating_sub(a.left_at));
        }
        Delta {
            subject: Subject::Agent(a.agent.clone()),
            interval: interval_of(a.joined_at),
            figures: f,
        }
    })
}

/// The name a presence state's time is kept under; `None` for signed out (not counted).
pub fn presence_key(p: Presence) -> Option<&'static str> {
    match p {
        Presence::LoggedOut => None,
        Presence::Idle | Presence::Available | Presence::Rona => Some(p.as_str()),
    }
}

/// `agent`'s time in presence `state` from `since` to `until`, split over the intervals
/// it spans (none for signed out, or an empty stretch).
pub fn presence_deltas(agent: &str, state: Presence, since: Millis, until: Millis) -> Vec<Delta> {
    let Some(key) = presence_key(state) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut at = since;
    while at < until {
        let interval = interval_of(at);
        let end = until.min(interval + INTERVAL_MS);
        let mut f = Figures::default();
        f.presence_ms.insert(key.to_string(), end - at);
        out.push(Delta {
            subject: Subject::Agent(agent.to_string()),
            interval,
            figures: f,
        });
        at = end;
    }
    out
}

/// One expired offer of `agent`, at `now`.
pub fn rona_delta(agent: &str, now: Millis) -> Delta {
    Delta {
        subject: Subject::Agent(agent.to_string()),
        interval: interval_of(now),
        figures: Figures {
            ronas: 1,
            ..Default::default()
        },
    }
}

/// The length of a report's intervals: the stored grain, or rows added up by the hour or
/// the day on a time zone's wall clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grain {
    Quarter,
    Hour,
    Day,
}

impl Grain {
    /// `15m`, `1h` or `1d`.
    pub fn parse(s: &str) -> Option<Grain> {
        match s {
            "15m" => Some(Grain::Quarter),
            "1h" => Some(Grain::Hour),
            "1d" => Some(Grain::Day),
            _ => None,
        }
    }

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Grain::Quarter => "15m",
            Grain::Hour => "1h",
            Grain::Day => "1d",
        }
    }
}

/// The most intervals one report may hold per subject (a year by the day is 366; a month
/// by the quarter hour 2,976).
pub const MAX_REPORT_INTERVALS: usize = 5_000;

/// The start of the report interval of `grain` holding `at`, on `tz`'s wall clock: the
/// quarter hour, the hour (of a zone whose offset may be a half or a quarter hour), or
/// the local midnight (the day of a daylight-saving change is 23 or 25 hours long).
pub fn report_interval(at: Millis, grain: Grain, tz: chrono_tz::Tz) -> Millis {
    use chrono::{Offset, TimeZone};
    match grain {
        Grain::Quarter => interval_of(at),
        Grain::Hour => {
            let offset = local(at, tz).offset().fix().local_minus_utc() as i64 * 1000;
            let wall = at as i64 + offset;
            (at as i64 - wall.rem_euclid(3_600_000)).max(0) as Millis
        }
        Grain::Day => {
            let date = local(at, tz).date_naive();
            // The first instant of the local date (a zone may skip its midnight).
            (0..24)
                .find_map(|h| {
                    let t = date.and_hms_opt(h, 0, 0)?;
                    tz.from_local_datetime(&t).earliest()
                })
                .map_or(at, |t| t.timestamp_millis().max(0) as Millis)
        }
    }
}

fn local(at: Millis, tz: chrono_tz::Tz) -> chrono::DateTime<chrono_tz::Tz> {
    // Out of chrono's range (hundreds of thousands of years on): the epoch.
    chrono::DateTime::from_timestamp_millis(i64::try_from(at).unwrap_or(i64::MAX))
        .unwrap_or_default()
        .with_timezone(&tz)
}

/// The start of the report interval after the one starting at `start`.
pub fn next_report_interval(start: Millis, grain: Grain, tz: chrono_tz::Tz) -> Millis {
    match grain {
        Grain::Quarter => start + INTERVAL_MS,
        Grain::Hour => report_interval(start + 3_600_000, grain, tz),
        // 25 hours on is always within the next local day, never past it.
        Grain::Day => report_interval(start + 25 * 3_600_000, grain, tz),
    }
}

/// The report intervals of `grain` from the one holding `from` to the last starting
/// before `to`; `None` if there would be more than [`MAX_REPORT_INTERVALS`].
pub fn report_intervals(from: Millis, to: Millis, grain: Grain, tz: chrono_tz::Tz) -> Option<Vec<Millis>> {
    let mut out = Vec::new();
    let mut at = report_interval(from, grain, tz);
    while at < to {
        if out.len() == MAX_REPORT_INTERVALS {
            return None;
        }
        out.push(at);
        at = next_report_interval(at, grain, tz);
    }
    Some(out)
}

/// Stored rows (interval start, figures) added up into the report's `intervals` (from
/// [`report_intervals`]): one sum per interval, in order, empty ones included. Rows
/// before the first interval or from the last one's end on are left out by the caller's
/// read range.
///
/// `intervals` are the report's interval starts in order ([`report_intervals`]) and `end`
/// the end of the last: each interval runs to the next start, so a row belongs to the
/// last interval starting at or before it, found without the wall clock (a year by the
/// day rolls up 35,040 rows; working out each row's local day cost most of the report).
/// Rows before the first interval or from `end` on are left out.
pub fn roll_up(rows: &[(Millis, Figures)], intervals: &[Millis], end: Millis) -> Vec<Figures> {
    let mut out = vec![Figures::default(); intervals.len()];
    for (at, f) in rows {
        if *at >= end {
            continue;
        }
        if let Some(i) = intervals.partition_point(|start| start <= at).checked_sub(1) {
            out[i].add(f);
        }
    }
    out
}

#[cfg(test)]
#[path = "figures_tests.rs"]
mod tests;
