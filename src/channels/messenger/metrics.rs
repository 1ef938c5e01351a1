//! The Messenger channel's metrics: webhook events by kind and outcome, Send API results
//! and retries, the outbox's depth and oldest entry. Every series named here exists from
//! start-up ([`init`]), at 0.

use std::sync::LazyLock;

use prometheus::{IntCounterVec, IntGauge, Opts};
use strum::IntoEnumIterator;

use crate::core::messenger::SkipReason;

use crate::metrics::REGISTRY;

fn register<T: prometheus::core::Collector + Clone + 'static>(c: T) -> T {
    // Fails only for a duplicate name; the collector works either way.
    let _ = REGISTRY.register(Box::new(c.clone()));
    c
}

/// Webhook events by `kind` (message, postback, delivery, read, echo, reaction, standby,
/// other, batch) and `outcome` (accepted, ignored, unknown_page, refused, failed,
/// bad_signature, bad_payload, disabled).
pub static WEBHOOK_EVENTS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register(
        IntCounterVec::new(
            Opts::new(
                "switchboard_messenger_webhook_events_total",
                "Messenger webhook events by kind and outcome.",
            ),
            &["kind", "outcome"],
        )
        .expect("valid metric"),
    )
});

/// Webhook events skipped, by `reason` ([`SkipReason`], a fixed set).
pub static SKIPPED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register(
        IntCounterVec::new(
            Opts::new(
                "switchboard_messenger_events_skipped_total",
                "Messenger webhook events skipped (not handled or unreadable), by reason.",
            ),
            &["reason"],
        )
        .expect("valid metric"),
    )
});

/// Pages whose token the Graph API refused (error 190), as the sender knows them.
pub static PAGES_UNAUTHORIZED: LazyLock<IntGauge> = LazyLock::new(|| {
    register(
        IntGauge::new(
            "switchboard_messenger_pages_unauthorized",
            "Messenger entry points whose page token was refused (channel_state unauthorized).",
        )
        .expect("valid metric"),
    )
});

/// Sender actions (typing, seen) by `result`: sent, failed (not retried).
pub static SENDER_ACTIONS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register(
        IntCounterVec::new(
            Opts::new(
                "switchboard_messenger_sender_actions_total",
                "Messenger sender actions (typing, seen) by result.",
            ),
            &["result"],
        )
        .expect("valid metric"),
    )
});

/// Send API requests by `result`: sent, retry (a retryable failure), failed (final),
/// unauthorized (the page's token was refused; the message waits for a new one).
pub static SEND_RESULTS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register(
        IntCounterVec::new(
            Opts::new(
                "switchboard_messenger_send_total",
                "Messenger Send API requests by result.",
            ),
            &["result"],
        )
        .expect("valid metric"),
    )
});

/// Outbox entries not yet accepted or finally failed.
pub static OUTBOX_DEPTH: LazyLock<IntGauge> = LazyLock::new(|| {
    register(
        IntGauge::new(
            "switchboard_messenger_outbox_depth",
            "Messenger outbox entries waiting to be sent.",
        )
        .expect("valid metric"),
    )
});

/// Age of the oldest outbox entry, in seconds (0 when empty), as of the last scrape.
pub static OUTBOX_OLDEST_AGE: LazyLock<IntGauge> = LazyLock::new(|| {
    register(
        IntGauge::new(
            "switchboard_messenger_outbox_oldest_age_seconds",
            "Age of the oldest Messenger outbox entry in seconds (0 when empty).",
        )
        .expect("valid metric"),
    )
});

/// The readings behind [`OUTBOX_OLDEST_AGE`], one per outbox (tenant).
pub static OUTBOX_OLDEST_OF: LazyLock<crate::metrics::MaxOf> = LazyLock::new(Default::default);

/// Creates every series at 0.
pub fn init() {
    for reason in SkipReason::iter() {
        SKIPPED.with_label_values(&[reason.as_str()]);
    }
    PAGES_UNAUTHORIZED.set(PAGES_UNAUTHORIZED.get());
    for kind in [
        "message", "postback", "delivery", "read", "echo", "reaction", "standby", "handover", "other", "batch",
    ] {
        for outcome in ["accepted", "ignored", "unknown_page", "refused", "failed"] {
            WEBHOOK_EVENTS.with_label_values(&[kind, outcome]);
        }
    }
    for outcome in ["bad_signature", "bad_payload", "disabled"] {
        WEBHOOK_EVENTS.with_label_values(&["batch", outcome]);
    }
    for result in ["sent", "failed"] {
        SENDER_ACTIONS.with_label_values(&[result]);
    }
    for result in ["sent", "retry", "failed", "unauthorized"] {
        SEND_RESULTS.with_label_values(&[result]);
    }
    OUTBOX_DEPTH.set(OUTBOX_DEPTH.get());
    OUTBOX_OLDEST_AGE.set(OUTBOX_OLDEST_AGE.get());
}

/// Counts one webhook event.
pub fn webhook(kind: &str, outcome: &str) {
    WEBHOOK_EVENTS.with_label_values(&[kind, outcome]).inc();
}

/// Counts one skipped event.
pub fn skipped(reason: SkipReason) {
    SKIPPED.with_label_values(&[reason.as_str()]).inc();
}

/// Counts one Send API result.
pub fn send(result: &str) {
    SEND_RESULTS.with_label_values(&[result]).inc();
}
