//! The end of a run: the [`Report`] (JSON with `--report`), the table on stdout.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use serde::Serialize;

use super::stats::{Interval, Metric, Stats, Summary};
use super::Options;

/// What the outside checks found.
#[derive(Debug, Clone, Serialize)]
pub struct Checks {
    /// No violation, and every fact was seen.
    pub passed: bool,
    pub violation_count: u64,
    /// The first violations, word for word.
    pub violations: Vec<String>,
    /// Facts the checker lost by lagging (then the checks are incomplete and fail).
    pub lost_facts: u64,
    /// Conversations ended with every wrap-up submitted.
    pub completed: u64,
    /// Conversations that arrived and did not complete.
    pub incomplete: u64,
    /// `--skills`: new offers checked against invariant 7, by routing step (empty without).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub offers_by_step: Vec<u64>,
}

/// The machine the run was on.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    pub cpus: usize,
    pub cpu_model: String,
}

impl Machine {
    pub fn this() -> Machine {
        let cpu_model = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split(':').nth(1))
                    .map(|m| m.trim().to_string())
            })
            .unwrap_or_else(|| "unknown".into());
        Machine {
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
            cpu_model,
        }
    }
}

/// Everything a run measured and checked.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub mode: String,
    pub options: Options,
    pub machine: Machine,
    /// Seconds during which customers arrived.
    pub arrival_phase_s: f64,
    /// Seconds in all, with the drain of open conversations at the end.
    pub elapsed_s: f64,
    pub arrivals: u64,
    /// Lifecycles completed (ended, every wrap-up submitted).
    pub completed: u64,
    /// Lifecycles completed during the arrival phase ÷ its length: the throughput figure.
    pub lifecycles_per_s: f64,
    pub offers: u64,
    pub accepted: u64,
    pub transfers: u64,
    pub conferences: u64,
    pub expired_on_purpose: u64,
    pub latencies: BTreeMap<Metric, Summary>,
    /// Unexpected failures by `operation: code`.
    pub errors: BTreeMap<String, u64>,
    /// Failures the scenario makes possible (races it provokes), by `operation: code`.
    pub races: BTreeMap<String, u64>,
    pub checks: Checks,
    pub series: Vec<Interval>,
    /// Baselines measured before the scenario (`--baseline`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub baselines: Vec<super::baseline::Baseline>,
}

impl Report {
    pub fn new(
        opts: &Options,
        stats: &Stats,
        arrival_phase: Duration,
        elapsed: Duration,
        completed_in_phase: u64,
        checks: Checks,
    ) -> Report {
        let phase = arrival_phase.as_secs_f64();
        Report {
            mode: opts.mode_name().into(),
            options: opts.clone(),
            machine: Machine::this(),
            arrival_phase_s: round3(phase),
            elapsed_s: round3(elapsed.as_secs_f64()),
            arrivals: stats.arrivals,
            completed: checks.completed,
            lifecycles_per_s: if phase > 0.0 {
                (completed_in_phase as f64 / phase).round()
            } else {
                0.0
            },
            offers: stats.offers,
            accepted: stats.accepted,
            transfers: stats.transfers,
            conferences: stats.conferences,
            expired_on_purpose: stats.expired_on_purpose,
            latencies: Metric::ALL.iter().map(|m| (*m, stats.summary(*m))).collect(),
            errors: stats.errors.clone(),
            races: stats.races.clone(),
            checks,
            series: stats.series.clone(),
            baselines: Vec::new(),
        }
    }

    /// True when the checks passed, every arrival completed and nothing failed unexpectedly.
    pub fn ok(&self) -> bool {
        self.checks.passed && self.errors.is_empty()
    }

    /// The table printed at the end of a run.
    pub fn table(&self) -> String {
        let mut s = String::new();
        let ms = |us: u64| us as f64 / 1000.0;
        let _ = writeln!(
            s,
            "switchboard-load ({}): {} arrivals, {} lifecycles completed in {:.2} s ({:.2} s of arrivals)",
            self.mode, self.arrivals, self.completed, self.elapsed_s, self.arrival_phase_s
        );
        let _ = writeln!(s, "throughput: {:.0} lifecycles/s", self.lifecycles_per_s);
        let _ = writeln!(
            s,
            "offers {}  accepted {}  transfers {}  conferences {}  offers let expire (RONA) {}",
            self.offers, self.accepted, self.transfers, self.conferences, self.expired_on_purpose
        );
        let _ = writeln!(
            s,
            "\n{:<34} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
            "latency (ms)", "count", "p50", "p90", "p99", "p99.9", "max"
        );
        for (m, x) in &self.latencies {
            let _ = writeln!(
                s,
                "{:<34} {:>9} {:>9.3} {:>9.3} {:>9.3} {:>9.3} {:>9.3}",
                m.label(),
                x.count,
                ms(x.p50_us),
                ms(x.p90_us),
                ms(x.p99_us),
                ms(x.p999_us),
                ms(x.max_us)
            );
        }
        for (title, map) in [("errors", &self.errors), ("races (expected)", &self.races)] {
            if map.is_empty() {
                let _ = writeln!(s, "\n{title}: none");
            } else {
                let _ = writeln!(s, "\n{title}:");
                for (code, n) in map {
                    let _ = writeln!(s, "  {code:<50} {n:>9}");
                }
            }
        }
        let c = &self.checks;
        let _ = writeln!(
            s,
            "\nchecks: {} (violations {}, incomplete conversations {}, facts lost {})",
            if c.passed { "passed" } else { "FAILED" },
            c.violation_count,
            c.incomplete,
            c.lost_facts
        );
        if !c.offers_by_step.is_empty() {
            let by_step: Vec<String> = c
                .offers_by_step
                .iter()
                .enumerate()
                .map(|(k, n)| format!("step {k}: {n}"))
                .collect();
            let _ = writeln!(s, "new offers meeting their step (invariant 7): {}", by_step.join(", "));
        }
        for v in &c.violations {
            let _ = writeln!(s, "  {v}");
        }
        if !self.baselines.is_empty() {
            let _ = writeln!(
                s,
                "\nbaselines (same run)                clients        ops/s    p50 ms    p99 ms"
            );
            for b in &self.baselines {
                let _ = writeln!(
                    s,
                    "{:<34} {:>8} {:>12.0} {:>9.3} {:>9.3}",
                    b.name,
                    b.clients,
                    b.ops_per_s,
                    ms(b.p50_us),
                    ms(b.p99_us)
                );
            }
        }
        s
    }
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}
