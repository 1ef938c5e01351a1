//! The HTTP/WebSocket mode of the load harness keeps working: brief runs against a real
//! server (REST, desktop WebSockets, sled) whose correctness outputs are asserted (checks
//! passed, every lifecycle completed, no unexpected error), never their speed.

mod common;

use std::time::Duration;

use switchboard::load::{self, Options};

fn options() -> Options {
    Options {
        in_process: false,
        quiet: true,
        agents: 6,
        duration: Duration::from_millis(1500),
        drain_timeout: Duration::from_secs(20),
        interval_ms: 100,
        ..Options::default()
    }
}

#[track_caller]
fn assert_clean(report: &load::Report) {
    assert!(report.checks.passed, "{}", report.table());
    assert!(report.errors.is_empty(), "{}", report.table());
    assert!(report.arrivals > 0, "{}", report.table());
    assert_eq!(report.completed, report.arrivals, "{}", report.table());
    assert_eq!(report.checks.incomplete, 0, "{}", report.table());
}

/// `--url` against a server started the way the API tests start it: plain lifecycles
/// over REST and WebSocket complete, every metric is measured, and a second run against
/// the same server (other id prefix) works too; `--cleanup` logs the agents out.
#[actix_rt::test]
async fn http_mode_against_a_real_server_passes_the_checks() {
    let server = common::TestServer::start().await;
    for prefix in ["t1-", "t2-"] {
        let report = load::run(Options {
            url: Some(server.base.clone()),
            admin_token: Some(common::ADMIN.into()),
            id_prefix: Some(prefix.into()),
            cleanup: true,
            ..options()
        })
        .await
        .expect("the run starts");
        assert_clean(&report);
        for m in load::stats::Metric::ALL {
            assert!(report.latencies[&m].count > 0, "{m:?} recorded nothing");
        }
        let agent = server.agent_detail(&format!("{prefix}load-0")).await;
        assert_eq!(agent["state"], "logged_out", "{agent}");
    }
}

/// `--serve`: the harness starts the real server itself; RONA, transfers and conferences
/// happen over the desktops' commands and every conversation still ends and is wrapped up.
///
/// This run once stranded a conversation about one time in twenty, for two reasons, both
/// fixed: an offer timer firing a millisecond early was ignored by the engine (the core
/// now arms it again), and a transfer offered to an agent that lets offers expire is
/// dropped (`transfer_not_accepted`) with nobody left in the conversation to hear
/// `conversation_ended`, which the harness now learns from the REST API.
#[test]
fn serve_mode_with_rona_transfers_and_conferences_passes_the_checks() {
    let report = actix::System::new()
        .block_on(load::run(Options {
            serve: true,
            capacity: 2,
            rona_share: 0.2,
            transfer_share: 0.2,
            conference_share: 0.2,
            offer_timeout_ms: 200,
            ..options()
        }))
        .expect("the run starts");
    assert_clean(&report);
    assert!(report.expired_on_purpose > 0, "{}", report.table());
    assert!(report.transfers > 0, "{}", report.table());
}

/// A transfer offered to an agent that lets it expire drops the conversation
/// (`transfer_not_accepted`) with nobody left in it; the harness still counts it as ended
/// (from the REST API) once the transferring agent has wrapped up, so the run completes.
#[test]
fn dropped_transfers_are_counted_as_ended() {
    let report = actix::System::new()
        .block_on(load::run(Options {
            serve: true,
            capacity: 2,
            rona_share: 0.5,
            transfer_share: 1.0,
            offer_timeout_ms: 200,
            duration: Duration::from_millis(1000),
            ..options()
        }))
        .expect("the run starts");
    assert_clean(&report);
    assert!(report.transfers > 0, "{}", report.table());
    assert!(report.expired_on_purpose > 0, "{}", report.table());
}
