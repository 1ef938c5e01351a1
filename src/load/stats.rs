//! What the harness measures: HDR histograms of the five latencies, counts, errors by
//! code, and a time series of per-interval percentiles for the chart.
//!
//! Latencies are recorded in microseconds, from 1 µs to 10 minutes at 3 significant
//! figures (hdrhistogram), so a percentile is within 0.1% of the true value. [`histogram`]
//! and [`record`] are the one such histogram of the harness, its baselines and the benches.

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

/// The latencies the harness records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// Customer message sent (new conversation) → the offer seen on the agent's desktop.
    ArrivalToOffer,
    /// Accept sent → its answer.
    AcceptAck,
    /// Agent message sent → its answer and its echo on the agent's own desktop.
    AgentMessageRoundTrip,
    /// Customer message sent (new conversation) → an agent's accept answered.
    QueueWait,
    /// Customer message sent (new conversation) → the last owner's wrap-up answered.
    Lifecycle,
}

impl Metric {
    pub const ALL: [Metric; 5] = [
        Metric::ArrivalToOffer,
        Metric::AcceptAck,
        Metric::AgentMessageRoundTrip,
        Metric::QueueWait,
        Metric::Lifecycle,
    ];

    /// What the table and the chart call it.
    pub fn label(self) -> &'static str {
        match self {
            Metric::ArrivalToOffer => "arrival → offer",
            Metric::AcceptAck => "accept → ack",
            Metric::AgentMessageRoundTrip => "agent message round trip",
            Metric::QueueWait => "queue wait (arrival → accepted)",
            Metric::Lifecycle => "full lifecycle",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Longest latency a histogram holds, in microseconds (10 minutes); longer ones count as this.
const MAX_US: u64 = 600_000_000;

/// The one latency histogram of the harness and the benches: 1 µs .. 10 min, 3 significant
/// figures, in microseconds. Fill it with [`record`].
pub fn histogram() -> Histogram<u64> {
    // The bounds are constants, so this cannot fail.
    Histogram::new_with_bounds(1, MAX_US, 3).expect("valid histogram bounds")
}

/// Records `d` in `h`, in whole microseconds rounded up (a sub-microsecond actix round trip
/// counts as 1 µs), clamped into the histogram's bounds so that recording cannot fail.
pub fn record(h: &mut Histogram<u64>, d: Duration) {
    let us = u64::try_from(d.as_nanos().div_ceil(1000))
        .unwrap_or(MAX_US)
        .clamp(1, MAX_US);
    // In bounds (above), so this cannot fail.
    let _ = h.record(us);
}

/// A histogram's summary in microseconds.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Summary {
    pub count: u64,
    pub min_us: u64,
    pub mean_us: f64,
    pub p50_us: u64,
    pub p90_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub max_us: u64,
}

fn summary(h: &Histogram<u64>) -> Summary {
    if h.is_empty() {
        return Summary::default();
    }
    Summary {
        count: h.len(),
        min_us: h.min(),
        mean_us: (h.mean() * 10.0).round() / 10.0,
        p50_us: h.value_at_quantile(0.50),
        p90_us: h.value_at_quantile(0.90),
        p99_us: h.value_at_quantile(0.99),
        p999_us: h.value_at_quantile(0.999),
        max_us: h.max(),
    }
}

/// One interval of the run, for the chart and the JSON report.
#[derive(Debug, Clone, Serialize)]
pub struct Interval {
    /// Seconds since the start of the run, at the end of the interval.
    pub t_s: f64,
    /// Lifecycles completed per second in this interval.
    pub lifecycles_per_s: f64,
    /// Per metric (in [`Metric::ALL`] order): the interval's summary.
    pub latencies: BTreeMap<Metric, Summary>,
}

/// Everything measured.
pub struct Stats {
    total: Vec<Histogram<u64>>,
    interval: Vec<Histogram<u64>>,
    pub arrivals: u64,
    pub offers: u64,
    pub accepted: u64,
    pub transfers: u64,
    pub conferences: u64,
    /// Offers that agents let expire on purpose (RONA).
    pub expired_on_purpose: u64,
    /// Unexpected failures, by code.
    pub errors: BTreeMap<String, u64>,
    /// Failures that the scenario makes possible (an offer withdrawn while the agent was
    /// accepting it, a transfer target that became busy), by code.
    pub races: BTreeMap<String, u64>,
    pub series: Vec<Interval>,
    completed_at_last_tick: u64,
}

impl Default for Stats {
    fn default() -> Self {
        Stats {
            total: Metric::ALL.iter().map(|_| histogram()).collect(),
            interval: Metric::ALL.iter().map(|_| histogram()).collect(),
            arrivals: 0,
            offers: 0,
            accepted: 0,
            transfers: 0,
            conferences: 0,
            expired_on_purpose: 0,
            errors: BTreeMap::new(),
            races: BTreeMap::new(),
            series: Vec::new(),
            completed_at_last_tick: 0,
        }
    }
}

impl Stats {
    /// Records one latency.
    pub fn record(&mut self, m: Metric, d: Duration) {
        record(&mut self.total[m.index()], d);
        record(&mut self.interval[m.index()], d);
    }

    pub fn error(&mut self, code: &str) {
        *self.errors.entry(code.to_string()).or_default() += 1;
    }

    pub fn race(&mut self, code: &str) {
        *self.races.entry(code.to_string()).or_default() += 1;
    }

    /// Closes the current interval at `t_s` seconds into the run.
    pub fn tick(&mut self, t_s: f64, interval_s: f64, completed: u64) -> &Interval {
        let done = completed - self.completed_at_last_tick;
        self.completed_at_last_tick = completed;
        let latencies = Metric::ALL
            .iter()
            .map(|m| (*m, summary(&self.interval[m.index()])))
            .collect();
        for h in &mut self.interval {
            h.reset();
        }
        self.series.push(Interval {
            t_s: (t_s * 1000.0).round() / 1000.0,
            lifecycles_per_s: if interval_s > 0.0 {
                done as f64 / interval_s
            } else {
                0.0
            },
            latencies,
        });
        self.series.last().expect("just pushed")
    }

    /// The whole run's summary of `m`.
    pub fn summary(&self, m: Metric) -> Summary {
        summary(&self.total[m.index()])
    }
}
