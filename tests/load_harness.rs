//! The load harness keeps working: short in-process runs whose correctness outputs (checks
//! passed, every lifecycle completed, no unexpected error) are asserted, never their speed.

use std::time::Duration;

use switchboard::load::{self, Options};

fn options() -> Options {
    Options {
        quiet: true,
        duration: Duration::from_secs(30),
        drain_timeout: Duration::from_secs(20),
        interval_ms: 100,
        ..Options::default()
    }
}

fn run(opts: Options) -> load::Report {
    actix::System::new().block_on(load::run(opts)).expect("the run starts")
}

/// A small contact centre takes 200 plain conversations (arrive, offer, accept, two
/// messages each way, end, wrap-up) and the outside checks find nothing wrong.
#[test]
fn plain_lifecycles_complete_and_pass_the_checks() {
    let report = run(Options {
        agents: 8,
        conversations: Some(200),
        max_open: Some(2),
        ..options()
    });
    assert!(report.checks.passed, "{}", report.table());
    assert!(report.errors.is_empty(), "{}", report.table());
    assert_eq!(report.arrivals, 200);
    assert_eq!(report.completed, 200, "{}", report.table());
    assert_eq!(report.checks.incomplete, 0);
    for m in load::stats::Metric::ALL {
        assert!(report.latencies[&m].count > 0, "{m:?} recorded nothing");
    }
    assert_eq!(report.latencies[&load::stats::Metric::Lifecycle].count, 200);
}

/// Agents that let offers expire go to RONA and come back; transfers and conferences
/// happen; every conversation still ends and is wrapped up.
#[test]
fn rona_transfers_and_conferences_complete() {
    let report = run(Options {
        agents: 2,
        conversations: Some(60),
        max_open: Some(1),
        rona_share: 0.5,
        transfer_share: 0.3,
        conference_share: 0.3,
        offer_timeout_ms: 50,
        ..options()
    });
    assert!(report.checks.passed, "{}", report.table());
    assert!(report.errors.is_empty(), "{}", report.table());
    assert_eq!(report.completed, 60, "{}", report.table());
    assert!(report.expired_on_purpose > 0, "{}", report.table());
    assert!(report.transfers > 0, "{}", report.table());
    assert!(report.conferences > 0, "{}", report.table());
}

/// The JSON report and the SVG chart are written and readable.
#[test]
fn report_and_chart_are_written() {
    let dir = tempfile::tempdir().unwrap();
    let report = run(Options {
        agents: 4,
        conversations: Some(40),
        max_open: Some(2),
        ..options()
    });
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["checks"]["passed"], true);
    assert_eq!(json["completed"], 40);
    assert!(json["latencies"]["arrival_to_offer"]["p99_us"].as_u64().unwrap() > 0);
    let chart = dir.path().join("chart.svg");
    load::chart::write(&report, &chart).unwrap();
    let svg = std::fs::read_to_string(&chart).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("full lifecycle"), "{svg}");
}

/// The HTTP mode refuses a non-loopback address unless told otherwise.
#[test]
fn remote_urls_are_refused() {
    let err = actix::System::new()
        .block_on(load::run(Options {
            in_process: false,
            url: Some("http://10.1.2.3:8080".into()),
            ..options()
        }))
        .unwrap_err();
    assert!(err.to_string().contains("not a loopback address"), "{err}");
}

/// Many agents at once, with RONA, transfers and conferences: the checks must pass.
/// This is also the regression test for effects carried out in decision order: the
/// router once let command N+1's events overtake command N's when several commits were
/// in flight (actix polls waiting futures in no fixed order).
#[test]
fn a_busy_floor_passes_the_checks() {
    let report = run(Options {
        agents: 50,
        conversations: Some(5_000),
        rona_share: 0.1,
        transfer_share: 0.1,
        conference_share: 0.1,
        offer_timeout_ms: 50,
        ..options()
    });
    assert!(report.checks.passed, "{}", report.table());
    assert!(report.errors.is_empty(), "{}", report.table());
    assert_eq!(report.completed, 5_000, "{}", report.table());
}

#[track_caller]
fn assert_skilled_run_is_clean(report: &load::Report) {
    assert!(report.checks.passed, "{}", report.table());
    assert!(report.errors.is_empty(), "{}", report.table());
    assert!(report.arrivals > 0, "{}", report.table());
    assert_eq!(report.completed, report.arrivals, "{}", report.table());
    let by_step = &report.checks.offers_by_step;
    assert!(
        by_step.len() == 2 && by_step.iter().all(|n| *n > 0),
        "offers in both steps: {by_step:?}\n{}",
        report.table()
    );
}

/// `--skills` in process: agents speak four languages at random levels, each queue's
/// conversations need its language at level 7 for 20 ms and then at level 3, some carry a
/// priority of their own, a few are transferred to the other queue (whose own steps then
/// apply) and some offers expire. Every new offer goes to an agent meeting the
/// conversation's step at that instant (checked from the engine's offers and from the
/// times alone), offers are made in both steps, and every conversation completes.
#[test]
fn skilled_lifecycles_keep_invariant_7_in_both_steps() {
    let report = run(Options {
        agents: 8,
        queues: 2,
        conversations: Some(300),
        skills: true,
        step_ms: 20,
        think_ms: 5,
        rona_share: 0.2,
        transfer_share: 0.2,
        offer_timeout_ms: 50,
        ..options()
    });
    assert_skilled_run_is_clean(&report);
    assert!(report.transfers > 0, "{}", report.table());
}

/// `--skills` over REST and WebSocket (`--serve`: the real server, sled): the same
/// scenario, with invariant 7 checked from the desktops' `offer` frames (queue,
/// `received_at`, `offered_at`) against the skills and steps the harness set up.
#[test]
fn skilled_lifecycles_over_http_keep_invariant_7_in_both_steps() {
    let report = run(Options {
        in_process: false,
        serve: true,
        agents: 6,
        queues: 2,
        duration: Duration::from_millis(1500),
        conversations: None,
        skills: true,
        step_ms: 30,
        think_ms: 10,
        rona_share: 0.2,
        offer_timeout_ms: 200,
        ..options()
    });
    assert_skilled_run_is_clean(&report);
}
