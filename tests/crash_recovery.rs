//! Crash test: the real `switchboard` binary is driven over HTTP by agents and customers,
//! killed with SIGKILL at a random moment, and restarted on the same data directory.
//! Everything the API acknowledged (conversations opened, messages, presence changes,
//! wrap-ups) must be there after the restart, and ../shared/SPEC.md's invariants must hold.
//!
//! `CRASH_CYCLES=N` runs N kill/restart cycles (default 3); `CRASH_SEED=S` fixes the seed.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

mod common;
use common::{Process, ADMIN};

/// Long deadlines: no offer expires during a cycle, so presence changes only by
/// acknowledged (or in-flight) requests.
const ENV: &[(&str, &str)] = &[("SWITCHBOARD_ROUTING__OFFER_TIMEOUT_MS", "600000")];

const AGENTS: usize = 6;

/// What the API acknowledged.
#[derive(Default)]
struct Ledger {
    /// (conversation, seq) → text of every acknowledged message.
    messages: BTreeMap<(String, u64), String>,
    /// Agent → (last acknowledged state, state requested but not yet answered).
    states: HashMap<String, (String, Option<String>)>,
    /// Acknowledged wrap-ups.
    wrapups: Vec<(String, String)>,
}

type Shared = Arc<Mutex<Ledger>>;

async fn call(
    client: &awc::Client,
    method: &str,
    url: &str,
    token: &str,
    body: Option<Value>,
) -> Result<(u16, Value), String> {
    let req = match method {
        "GET" => client.get(url),
        "PUT" => client.put(url),
        _ => client.post(url),
    }
    .insert_header(("Authorization", format!("Bearer {token}")))
    .timeout(Duration::from_secs(10));
    let res = match body {
        Some(b) => req.send_json(&b).await,
        None => req.send().await,
    };
    let mut res = res.map_err(|e| e.to_string())?;
    let status = res.status().as_u16();
    let bytes = res.body().limit(64 * 1024 * 1024).await.map_err(|e| e.to_string())?;
    let value = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap_or(Value::Null)
    };
    Ok((status, value))
}

fn lock(l: &Shared) -> std::sync::MutexGuard<'_, Ledger> {
    match l.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

/// One agent's desktop loop: be available, accept offers, write, end, wrap up.
async fn agent_loop(base: String, id: String, token: String, ledger: Shared, seed: u64) {
    let client = awc::Client::default();
    let mut rng = StdRng::seed_from_u64(seed);
    let me = format!("{base}/api/v1/agents/{id}");
    loop {
        let target = if rng.gen_bool(0.9) { "available" } else { "idle" };
        lock(&ledger)
            .states
            .entry(id.clone())
            .or_insert(("logged_out".into(), None))
            .1 = Some(target.into());
        let body = if target == "idle" {
            json!({"state": "idle", "idle_code": "break"})
        } else {
            json!({"state": target})
        };
        match call(
            &client,
            "PUT",
            &format!("{base}/api/v1/agents/me/state"),
            &token,
            Some(body),
        )
        .await
        {
            Ok((200, _)) => {
                let mut l = lock(&ledger);
                let e = l.states.entry(id.clone()).or_insert(("logged_out".into(), None));
                *e = (target.into(), None);
            }
            Ok(_) => {}
            Err(_) => return,
        }
        let Ok((200, detail)) = call(&client, "GET", &me, &token, None).await else {
            return;
        };
        for c in detail["offers"].as_array().cloned().unwrap_or_default() {
            let cid = c["id"].as_str().unwrap_or_default().to_string();
            if call(
                &client,
                "POST",
                &format!("{base}/api/v1/conversations/{cid}/accept"),
                &token,
                None,
            )
            .await
            .is_err()
            {
                return;
            }
        }
        for c in detail["conversations"].as_array().cloned().unwrap_or_default() {
            let cid = c["id"].as_str().unwrap_or_default().to_string();
            let text = format!("{id} says {}", rng.gen::<u32>());
            let url = format!("{base}/api/v1/conversations/{cid}/messages");
            match call(&client, "POST", &url, &token, Some(json!({"text": text}))).await {
                Ok((201, m)) => {
                    if let Some(seq) = m["seq"].as_u64() {
                        lock(&ledger).messages.insert((cid.clone(), seq), text);
                    }
                }
                Ok(_) => {}
                Err(_) => return,
            }
            if rng.gen_bool(0.4)
                && call(
                    &client,
                    "POST",
                    &format!("{base}/api/v1/conversations/{cid}/end"),
                    &token,
                    None,
                )
                .await
                .is_err()
            {
                return;
            }
        }
        for c in detail["wrapups"].as_array().cloned().unwrap_or_default() {
            let cid = c["id"].as_str().unwrap_or_default().to_string();
            let url = format!("{base}/api/v1/conversations/{cid}/wrapup");
            match call(&client, "POST", &url, &token, Some(json!({"reason": "resolved"}))).await {
                Ok((200, _)) => lock(&ledger).wrapups.push((id.clone(), cid)),
                Ok(_) => {}
                Err(_) => return,
            }
        }
    }
}

/// Customers writing in: new conversations and follow-ups.
async fn customer_loop(base: String, ledger: Shared, seed: u64, cycle: usize) {
    let client = awc::Client::default();
    let mut rng = StdRng::seed_from_u64(seed);
    loop {
        let customer = format!("u{cycle}-{}", rng.gen_range(0..40));
        let text = format!("customer {customer} writes {}", rng.gen::<u32>());
        let body = json!({"entry_point": "demo-page", "customer": {"id": customer, "name": "Customer"}, "text": text});
        match call(
            &client,
            "POST",
            &format!("{base}/api/v1/conversations"),
            ADMIN,
            Some(body),
        )
        .await
        {
            Ok((201, c)) => {
                let cid = c["id"].as_str().unwrap_or_default().to_string();
                // The acknowledged message is the last one in the answer's transcript with our text.
                if let Some(m) = c["transcript"]
                    .as_array()
                    .and_then(|t| t.iter().rev().find(|m| m["text"] == text))
                {
                    if let Some(seq) = m["seq"].as_u64() {
                        lock(&ledger).messages.insert((cid, seq), text);
                    }
                }
            }
            Ok(_) => {}
            Err(_) => return,
        }
    }
}

/// Checks everything acknowledged is present, and the invariants, on a restarted engine.
async fn verify(base: &str, ledger: &Ledger, tokens: &[(String, String)]) -> HashMap<String, String> {
    let mut states = HashMap::new();
    let client = awc::Client::default();
    let mut conversations: HashMap<String, Value> = HashMap::new();
    for ((cid, seq), text) in &ledger.messages {
        if !conversations.contains_key(cid) {
            let (status, c) = call(
                &client,
                "GET",
                &format!("{base}/api/v1/conversations/{cid}"),
                ADMIN,
                None,
            )
            .await
            .expect("read conversation");
            assert_eq!(status, 200, "acknowledged conversation {cid} lost");
            conversations.insert(cid.clone(), c);
        }
        let c = &conversations[cid];
        let found = c["transcript"]
            .as_array()
            .and_then(|t| t.iter().find(|m| m["seq"].as_u64() == Some(*seq)));
        assert_eq!(
            found.map(|m| m["text"].clone()),
            Some(json!(text)),
            "message {seq} of {cid} lost or changed"
        );
    }
    // Transcript order (invariant 6).
    for (cid, c) in &conversations {
        let seqs: Vec<u64> = c["transcript"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|m| m["seq"].as_u64())
            .collect();
        assert_eq!(
            seqs,
            (1..=seqs.len() as u64).collect::<Vec<_>>(),
            "transcript of {cid} out of order"
        );
    }
    let mut offered: HashMap<String, String> = HashMap::new();
    for (id, token) in tokens {
        let (status, d) = call(&client, "GET", &format!("{base}/api/v1/agents/{id}"), token, None)
            .await
            .expect("agent");
        assert_eq!(status, 200, "agent {id} after restart");
        let state = d["state"].as_str().unwrap_or_default().to_string();
        states.insert(id.clone(), state.clone());
        if let Some((acked, in_flight)) = ledger.states.get(id) {
            assert!(
                state == *acked || in_flight.as_deref() == Some(state.as_str()),
                "agent {id} is {state}, acknowledged {acked} (in flight {in_flight:?})"
            );
        }
        // Invariant 2.
        let load = d["load"].as_u64().unwrap_or(0);
        let capacity = d["capacity"].as_u64().unwrap_or(0);
        assert!(load <= capacity, "agent {id} over capacity");
        // Invariant 1.
        for o in d["offers"].as_array().into_iter().flatten() {
            let cid = o["id"].as_str().unwrap_or_default().to_string();
            if let Some(other) = offered.insert(cid.clone(), id.clone()) {
                panic!("{cid} offered to {other} and {id}");
            }
        }
        for (agent, cid) in &ledger.wrapups {
            if agent == id {
                let owed = d["wrapups"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|c| c["id"] == json!(cid));
                assert!(!owed, "acknowledged wrap-up of {cid} by {id} lost");
            }
        }
    }
    states
}

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
        let states = verify(&engine.base, &snapshot, &tokens).await;
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
