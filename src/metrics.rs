//! Prometheus metrics, served at `/metrics`.
//!
//! The router records every [`Observation`] here; the HTTP layer records request latency.
//!
//! Label values come from fixed sets only (kinds, reasons and queues the engine knows,
//! HTTP methods from the standard list plus `other`, route templates): no request can
//! add a series. [`init`] creates every counter's known series at 0, registers the
//! process metrics (`process_*`) and sets `switchboard_build_info`.

use std::sync::LazyLock;

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};

use crate::core::Observation;

/// The registry every Switchboard metric is in.
pub static REGISTRY: LazyLock<Registry> = LazyLock::new(Registry::new);

fn register<T: prometheus::core::Collector + Clone + 'static>(c: T) -> T {
    // Registration fails only for a duplicate name, which is a programming error caught
    // by the metrics test; keep the collector working either way.
    let _ = REGISTRY.register(Box::new(c.clone()));
    c
}

const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
];

macro_rules! counter {
    ($name:ident, $metric:literal, $help:literal, $labels:expr) => {
        pub static $name: LazyLock<IntCounterVec> =
            LazyLock::new(|| register(IntCounterVec::new(Opts::new($metric, $help), $labels).expect("valid metric")));
    };
}

counter!(OFFERS, "switchboard_offers_total", "Offers made, by kind.", &["kind"]);
counter!(
    ACCEPTS,
    "switchboard_accepts_total",
    "Offers accepted, by kind.",
    &["kind"]
);
counter!(
    RONAS,
    "switchboard_ronas_total",
    "Offers that expired (agent put in RONA), by kind.",
    &["kind"]
);
counter!(TRANSFERS, "switchboard_transfers_total", "Transfers started.", &[]);
counter!(
    WEBHOOK_DELIVERIES,
    "switchboard_webhook_deliveries_total",
    "Webhook delivery attempts and drops, by outcome (`delivered`, `failed`, `dropped`).",
    &["outcome"]
);

/// Webhook events waiting to be delivered, summed over subscriptions and tenants.
pub static WEBHOOK_BACKLOG: LazyLock<IntGauge> = LazyLock::new(|| {
    register(
        IntGauge::new(
            "switchboard_webhook_backlog",
            "Webhook events waiting to be delivered, summed over subscriptions.",
        )
        .expect("valid metric"),
    )
});
counter!(
    PRESENCE_SET,
    "switchboard_presence_set_total",
    "Agent presence changes made by someone else, by who (`supervisor`, `admin`).",
    &["by"]
);
counter!(
    SUPERVISOR_SOCKETS_DROPPED,
    "switchboard_supervisor_sockets_dropped_total",
    "Supervisor sockets closed because they fell behind (they resume from `snapshot`).",
    &[]
);
counter!(
    SUPERVISOR_TICKS,
    "switchboard_supervisor_ticks_total",
    "Ticks of the supervisor hub that published events.",
    &[]
);

counter!(
    OVERLOAD_REFUSED,
    "switchboard_overload_refusals_total",
    "New conversations refused with 503 `overloaded` (admission control), by channel.",
    &["channel"]
);

/// A gauge several sources report to (each tenant's engine, each tenant's outbox): it
/// shows the largest of their last values, so that the deployment's figure is its worst
/// tenant's rather than whichever spoke last.
#[derive(Default)]
pub struct MaxOf {
    values: std::sync::Mutex<std::collections::HashMap<usize, f64>>,
}

impl MaxOf {
    /// Source `source` now reads `value`; answers the largest reading, for the gauge.
    pub fn set(&self, source: usize, value: f64) -> f64 {
        let mut values = self.values.lock().unwrap_or_else(|p| p.into_inner());
        values.insert(source, value);
        values.values().copied().fold(0.0, f64::max)
    }

    /// Source `source` is gone (a deleted tenant's engine or outbox); answers the largest
    /// reading left.
    pub fn forget(&self, source: usize) -> f64 {
        let mut values = self.values.lock().unwrap_or_else(|p| p.into_inner());
        values.remove(&source);
        values.values().copied().fold(0.0, f64::max)
    }
}

/// The readings behind [`COMMAND_WAIT`], one per engine.
pub static COMMAND_WAIT_OF: LazyLock<MaxOf> = LazyLock::new(MaxOf::default);

/// The least time a command waited for the engine's router over the last 100 ms interval
/// (what admission control compares with `server.overload_wait_ms`).
pub static COMMAND_WAIT: LazyLock<prometheus::Gauge> = LazyLock::new(|| {
    register(
        prometheus::Gauge::new(
            "switchboard_command_wait_seconds",
            "Least time a command waited for the engine over the last interval.",
        )
        .expect("valid metric"),
    )
});

/// How long each phase of the last start-up (or rebuild after a store fault) took.
pub static RECOVERY_PHASE: LazyLock<prometheus::GaugeVec> = LazyLock::new(|| {
    register(
        prometheus::GaugeVec::new(
            prometheus::Opts::new(
                "switchboard_recovery_phase_seconds",
                "Time of each phase of the last recovery: open, read, transcripts, records, rebuild, accounts.",
            ),
            &["phase"],
        )
        .expect("valid metric"),
    )
});

/// Times one phase of a recovery (start-up, or a rebuild after a store fault): the gauge
/// and an `info` line naming the phase.
pub fn recovery_phase(phase: &'static str, started: std::time::Instant) {
    let took = started.elapsed();
    RECOVERY_PHASE.with_label_values(&[phase]).set(took.as_secs_f64());
    tracing::info!(phase, ms = took.as_secs_f64() * 1000.0, "recovery phase done");
}

/// Connected supervisor sockets.
pub static SUPERVISOR_SOCKETS: LazyLock<IntGauge> = LazyLock::new(|| {
    register(
        IntGauge::new(
            "switchboard_supervisor_sockets_connected",
            "Connected supervisor sockets.",
        )
        .expect("valid metric"),
    )
});
counter!(CONFERENCES, "switchboard_conferences_total", "Conferences joined.", &[]);
counter!(
    RATINGS,
    "switchboard_ratings_total",
    "Satisfaction ratings customers gave, by rating (1 to 5).",
    &["rating"]
);
counter!(
    ENDS,
    "switchboard_conversations_ended_total",
    "Conversations ended, by reason.",
    &["reason"]
);
counter!(
    WRAPUPS,
    "switchboard_wrapups_total",
    "Wrap-ups submitted, by reason.",
    &["reason"]
);
counter!(
    REROUTES,
    "switchboard_routing_moves_total",
    "Waiting conversations whose routing moved on by itself: to a later step, or a preferred agent's wait ended.",
    &["what"]
);
counter!(
    ARRIVALS,
    "switchboard_arrivals_total",
    "Conversations that entered a queue.",
    &["queue"]
);
counter!(
    OVERFLOWS,
    "switchboard_overflows_total",
    "Waiting conversations that overflowed from a queue to another, by the queue they left.",
    &["queue"]
);
counter!(
    HTTP_REQUESTS,
    "switchboard_http_requests_total",
    "HTTP requests, by status.",
    &["status"]
);

counter!(
    STORE_ERRORS,
    "switchboard_store_errors_total",
    "Store operations that failed, by operation (write, probe, read, reopen).",
    &["op"]
);
counter!(
    RECOVERIES,
    "switchboard_engine_recoveries_total",
    "Times the engine rebuilt itself from the store after a store fault.",
    &[]
);
counter!(
    AUTH_FAILURES,
    "switchboard_auth_failures_total",
    "Failed authentications by outcome: a wrong token or password (401 `rejected`), refused over a limit (429 `limited`), a sign-in refused because every password check was taken (503 `busy`).",
    &["outcome"]
);
counter!(
    SOCKETS_CREDENTIAL_ENDED,
    "switchboard_sockets_credential_ended_total",
    "Desktop and supervisor sockets closed because their credential was revoked (`credential_revoked`) or their session expired (`session_expired`).",
    &["reason"]
);
counter!(
    DESKTOP_COMMANDS_REFUSED,
    "switchboard_desktop_commands_refused_total",
    "Desktop commands refused (`too_many_commands`) because 64 were already waiting for their replies.",
    &[]
);
counter!(
    SUPERVISOR_SOCKETS_REFUSED,
    "switchboard_supervisor_sockets_refused_total",
    "Supervisor sockets refused because supervisor.max_sockets were open.",
    &[]
);
counter!(
    DESKTOPS_REFUSED,
    "switchboard_desktops_refused_total",
    "Desktop connections refused because the agent had server.max_desktops_per_agent.",
    &[]
);

/// 1, labelled with the version (and the git commit when the build knew it).
pub static BUILD_INFO: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    register(
        IntGaugeVec::new(
            Opts::new("switchboard_build_info", "Always 1; the labels say which build runs."),
            &["version", "commit"],
        )
        .expect("valid metric"),
    )
});

/// Conversations waiting, per queue.
pub static QUEUE_WAITING: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    register(
        IntGaugeVec::new(
            Opts::new("switchboard_queue_waiting", "Conversations waiting, per queue."),
            &["queue"],
        )
        .expect("valid metric"),
    )
});

/// Agents per presence state.
pub static AGENTS: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    register(
        IntGaugeVec::new(
            Opts::new("switchboard_agents", "Agents per presence state."),
            &["state"],
        )
        .expect("valid metric"),
    )
});

/// The deployment's tenants, `default` included (set at each scrape).
pub static TENANTS: LazyLock<IntGauge> = LazyLock::new(|| {
    register(
        IntGauge::new("switchboard_tenants", "Tenants of the deployment, default included.").expect("valid metric"),
    )
});

/// Open conversations per tenant (set at each scrape; at most `server.max_tenants` labels).
pub static TENANT_OPEN: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    register(
        IntGaugeVec::new(
            Opts::new(
                "switchboard_tenant_conversations_open",
                "Open conversations per tenant.",
            ),
            &["tenant"],
        )
        .expect("valid metric"),
    )
});

/// Waiting conversations per tenant (set at each scrape).
pub static TENANT_WAITING: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    register(
        IntGaugeVec::new(
            Opts::new(
                "switchboard_tenant_conversations_waiting",
                "Conversations waiting in a queue, per tenant.",
            ),
            &["tenant"],
        )
        .expect("valid metric"),
    )
});

/// Connected agent desktops.
pub static DESKTOPS: LazyLock<IntGauge> = LazyLock::new(|| {
    register(IntGauge::new("switchboard_desktops_connected", "Connected agent desktops.").expect("valid metric"))
});

fn histogram(name: &str, help: &str, labels: &[&str]) -> HistogramVec {
    register(
        HistogramVec::new(HistogramOpts::new(name, help).buckets(LATENCY_BUCKETS.to_vec()), labels)
            .expect("valid metric"),
    )
}

/// Seconds from offer to accept.
pub static OFFER_TO_ACCEPT: LazyLock<HistogramVec> = LazyLock::new(|| {
    histogram(
        "switchboard_offer_to_accept_seconds",
        "Time from offer to accept.",
        &["kind"],
    )
});
/// Seconds a conversation waited in its queue before it was accepted.
pub static QUEUE_WAIT: LazyLock<HistogramVec> = LazyLock::new(|| {
    histogram(
        "switchboard_queue_wait_seconds",
        "Time from queue entry to accept.",
        &[],
    )
});
/// HTTP request latency.
pub static REQUEST_LATENCY: LazyLock<HistogramVec> = LazyLock::new(|| {
    histogram(
        "switchboard_http_request_seconds",
        "HTTP request latency, by method (standard methods, else `other`) and route template (`unmatched` for none).",
        &["method", "route"],
    )
});

fn plain_histogram(name: &str, help: &str, buckets: Vec<f64>) -> prometheus::Histogram {
    register(prometheus::Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets)).expect("valid metric"))
}

/// Commits (engine operations) made durable by one store flush: the group commit's batch size.
pub static STORE_COMMITS_PER_FLUSH: LazyLock<prometheus::Histogram> = LazyLock::new(|| {
    plain_histogram(
        "switchboard_store_commits_per_flush",
        "Engine operations made durable by one flush (group commit batch size).",
        vec![1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0],
    )
});
/// Seconds one store flush took.
pub static STORE_FLUSH_LATENCY: LazyLock<prometheus::Histogram> = LazyLock::new(|| {
    plain_histogram(
        "switchboard_store_flush_seconds",
        "Time in one store flush.",
        LATENCY_BUCKETS.to_vec(),
    )
});
/// Seconds from handing changes to the store to their being durable.
pub static STORE_COMMIT_LATENCY: LazyLock<prometheus::Histogram> = LazyLock::new(|| {
    plain_histogram(
        "switchboard_store_commit_seconds",
        "Time from commit to durable (includes waiting for the group's flush).",
        LATENCY_BUCKETS.to_vec(),
    )
});

/// Records one engine-wide observation.
pub fn observe(o: &Observation) {
    match o {
        Observation::Arrived { queue, .. } => ARRIVALS.with_label_values(&[queue]).inc(),
        Observation::Offered { kind, .. } => OFFERS.with_label_values(&[kind.as_str()]).inc(),
        Observation::Accepted {
            kind,
            offer_ms,
            queue_wait_ms,
            ..
        } => {
            ACCEPTS.with_label_values(&[kind.as_str()]).inc();
            OFFER_TO_ACCEPT
                .with_label_values(&[kind.as_str()])
                .observe(*offer_ms as f64 / 1000.0);
            QUEUE_WAIT
                .with_label_values(&[])
                .observe(*queue_wait_ms as f64 / 1000.0);
        }
        Observation::Rona { kind, .. } => RONAS.with_label_values(&[kind.as_str()]).inc(),
        Observation::Transferred { .. } => TRANSFERS.with_label_values(&[]).inc(),
        Observation::Overflowed { from, .. } => OVERFLOWS.with_label_values(&[from]).inc(),
        Observation::Conferenced { .. } => CONFERENCES.with_label_values(&[]).inc(),
        Observation::Ended { reason, .. } => ENDS.with_label_values(&[reason]).inc(),
        Observation::WrappedUp { reason, .. } => WRAPUPS.with_label_values(&[reason]).inc(),
        Observation::PresenceChanged { from, to, .. } => {
            AGENTS.with_label_values(&[from.as_str()]).dec();
            AGENTS.with_label_values(&[to.as_str()]).inc();
        }
        Observation::AgentAdded { presence, .. } => AGENTS.with_label_values(&[presence.as_str()]).inc(),
        Observation::Rerouted {
            step, preference_ended, ..
        } => {
            if step.is_some_and(|s| s > 0) {
                REROUTES.with_label_values(&["step"]).inc();
            }
            if preference_ended.is_some() {
                REROUTES.with_label_values(&["preference_ended"]).inc();
            }
        }
        Observation::Audited(e) => PRESENCE_SET.with_label_values(&[e.by.reason()]).inc(),
        Observation::Rated { rating, .. } => RATINGS.with_label_values(&[&rating.to_string()]).inc(),
    }
}

/// Creates every counter's known series at 0 (so a rate is defined before the first
/// event), the process metrics and the build info. `wrapup_reasons` and `queues` are the
/// configured ones; queues created later get their series on first use.
pub fn init<'a>(wrapup_reasons: impl IntoIterator<Item = &'a str>, queues: impl IntoIterator<Item = &'a str>) {
    #[cfg(target_os = "linux")]
    {
        use std::sync::Once;
        static PROCESS: Once = Once::new();
        PROCESS.call_once(|| {
            let _ = REGISTRY.register(Box::new(prometheus::process_collector::ProcessCollector::for_self()));
        });
    }
    let commit = option_env!("SWITCHBOARD_GIT_COMMIT").unwrap_or("unknown");
    BUILD_INFO
        .with_label_values(&[env!("CARGO_PKG_VERSION"), commit])
        .set(1);
    for kind in ["new", "transfer", "conference"] {
        OFFERS.with_label_values(&[kind]);
        ACCEPTS.with_label_values(&[kind]);
        RONAS.with_label_values(&[kind]);
    }
    TRANSFERS.with_label_values(&[]);
    for outcome in ["delivered", "failed", "dropped"] {
        WEBHOOK_DELIVERIES.with_label_values(&[outcome]);
    }
    LazyLock::force(&WEBHOOK_BACKLOG);
    for by in ["supervisor", "admin"] {
        PRESENCE_SET.with_label_values(&[by]);
    }
    SUPERVISOR_SOCKETS_DROPPED.with_label_values(&[]);
    SUPERVISOR_TICKS.with_label_values(&[]);
    LazyLock::force(&SUPERVISOR_SOCKETS);
    CONFERENCES.with_label_values(&[]);
    for rating in ["1", "2", "3", "4", "5"] {
        RATINGS.with_label_values(&[rating]);
    }
    RECOVERIES.with_label_values(&[]);
    DESKTOPS_REFUSED.with_label_values(&[]);
    SUPERVISOR_SOCKETS_REFUSED.with_label_values(&[]);
    DESKTOP_COMMANDS_REFUSED.with_label_values(&[]);
    for channel in ["rest", "demo"] {
        OVERLOAD_REFUSED.with_label_values(&[channel]);
    }
    LazyLock::force(&COMMAND_WAIT);
    for reason in ["credential_revoked", "session_expired"] {
        SOCKETS_CREDENTIAL_ENDED.with_label_values(&[reason]);
    }
    for what in ["step", "preference_ended"] {
        REROUTES.with_label_values(&[what]);
    }
    for reason in [
        "agent_ended",
        "customer_ended",
        "transfer_not_accepted",
        "customer_inactive",
    ] {
        ENDS.with_label_values(&[reason]);
    }
    for reason in wrapup_reasons {
        WRAPUPS.with_label_values(&[reason]);
    }
    for queue in queues {
        ARRIVALS.with_label_values(&[queue]);
        OVERFLOWS.with_label_values(&[queue]);
    }
    for op in ["write", "probe", "read", "reopen"] {
        STORE_ERRORS.with_label_values(&[op]);
    }
    for outcome in ["rejected", "limited", "busy"] {
        AUTH_FAILURES.with_label_values(&[outcome]);
    }
    for status in ["200", "400", "401", "403", "404", "409", "429", "500", "503"] {
        HTTP_REQUESTS.with_label_values(&[status]);
    }
    for state in ["logged_out", "idle", "available", "rona"] {
        AGENTS.with_label_values(&[state]);
    }
    LazyLock::force(&DESKTOPS);
    LazyLock::force(&STORE_COMMITS_PER_FLUSH);
    LazyLock::force(&STORE_FLUSH_LATENCY);
    LazyLock::force(&STORE_COMMIT_LATENCY);
}

/// The Prometheus text exposition of every metric.
pub fn render() -> String {
    let mut buf = Vec::new();
    // Encoding into a Vec cannot fail for the text format.
    let _ = TextEncoder::new().encode(&REGISTRY.gather(), &mut buf);
    String::from_utf8_lossy(&buf).into_owned()
}

#[cfg(test)]
mod tests {
    use super::MaxOf;

    /// The deployment's figure is the largest reading of its sources, and a source that
    /// goes takes its reading with it.
    #[test]
    fn max_of_is_the_worst_source_and_forgets_a_gone_one() {
        let m = MaxOf::default();
        assert_eq!(m.set(1, 0.5), 0.5);
        assert_eq!(m.set(2, 0.2), 0.5);
        assert_eq!(m.set(1, 0.1), 0.2, "a source's new reading replaces its old one");
        assert_eq!(m.forget(2), 0.1);
        assert_eq!(m.forget(1), 0.0);
    }
}
