//! Crash test: the real `switchboard` binary is driven over HTTP by agents and customers,
//! killed with SIGKILL at a random moment, and restarted on the same data directory.
//! Everything the API acknowledged (conversations opened, messages, presence changes,
//! wrap-ups) must be there after the restart, and ../shared/SPEC.md's invariants must hold.
//!
//! `CRASH_CYCLES=N` runs N kill/restart cycles (default 3); `CRASH_SEED=S` fixes the seed.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;

mod common;
mod crash_common;
use common::{Process, ADMIN};
use crash_common::{agent_loop, call, customer_loop, lock, verify, Ledger, Shared};

/// Long deadlines: no offer expires during a cycle, so presence changes only by
/// acknowledged (or in-flight) requests.
const ENV: &[(&str, &str)] = &[("SWITCHBOARD_ROUTING__OFFER_TIMEOUT_MS", "600000")];

const AGENTS: usize = 6;

/// Acknowledged changes survive SIGKILL at random moments, and the invariants hold after.
#[actix_rt::test]
async fn nothing_acknowledged_is_lost_across_kill_9() {
    let cycles: usize = std::env::var("CRASH_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let seed: u64 = std::env::var("CRASH_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(rand::random);
    eprintln!("crash test seed {seed} (replay the schedule with CRASH_SEED={seed})");
    let mut rng = StdRng::seed_from_u64(seed);
    let dir = tempfile::tempdir().expect("temp dir");
    let ledger: Shared = Arc::new(Mutex::new(Ledger::default()));
    let client = awc::Client::default();
    let mut engine = Process::start(dir.path(), ENV);
    let mut tokens = Vec::new();
    for i in 0..AGENTS {
        let id = format!("a{i}");
        let body = json!({"id": id, "name": format!("Agent {i}"), "queues": ["support"], "capacity": 1 + i % 3});
        let (status, a) = call(
            &client,
            "POST",
            &format!("{}/api/v1/agents", engine.base),
            ADMIN,
            Some(body),
        )
        .await
        .expect("create agent");
        assert_eq!(status, 201, "{a}");
        tokens.push((id, a["token"].as_str().expect("token").to_string()));
    }
    for cycle in 0..cycles {
        let mut tasks = Vec::new();
        for (i, (id, token)) in tokens.iter().enumerate() {
            let task = agent_loop(
                engine.base.clone(),
                id.clone(),
                token.clone(),
                ledger.clone(),
                rng.gen::<u64>() ^ i as u64,
            );
            tasks.push(actix_rt::spawn(task));
        }
        for _ in 0..2 {
            tasks.push(actix_rt::spawn(customer_loop(
                engine.base.clone(),
                ledger.clone(),
                rng.gen(),
                cycle,
            )));
        }
        actix_rt::time::sleep(Duration::from_millis(rng.gen_range(300..1500))).await;
        engine.kill();
        for t in tasks {
            let _ = t.await;
        }
        engine = Process::start(dir.path(), ENV);
        let snapshot = std::mem::take(&mut *lock(&ledger));
        assert!(
            !snapshot.messages.is_empty(),
            "cycle {cycle} acknowledged no message: the workload did not run"
        );
        let (states, _) = verify(&engine.base, &snapshot, &tokens).await;
        // In-flight requests of the dead process may or may not have landed; what the
        // restarted engine shows is the new baseline.
        let mut l = lock(&ledger);
        l.messages = snapshot.messages;
        l.wrapups = snapshot.wrapups;
        l.states = states.into_iter().map(|(k, s)| (k, (s, None))).collect();
        drop(l);
        eprintln!("cycle {cycle}: verified {} messages", lock(&ledger).messages.len());
    }
    engine.kill();
}
