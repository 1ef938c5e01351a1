//! The workload of the crash tests (SIGKILL in `tests/crash_recovery.rs`, power cuts in
//! `tests/power_cut.rs`): agents and customers driving the real binary over HTTP, a ledger
//! of what the API acknowledged, and the check that all of it is there after a restart.

#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

use crate::common::ADMIN;

/// What the API acknowledged.
#[derive(Default)]
pub struct Ledger {
    /// (conversation, seq) → text of every acknowledged message.
    pub messages: BTreeMap<(String, u64), String>,
    /// Agent → (last acknowledged state, state requested but not yet answered).
    pub states: HashMap<String, (String, Option<String>)>,
    /// Acknowledged wrap-ups.
    pub wrapups: Vec<(String, String)>,
}

pub type Shared = Arc<Mutex<Ledger>>;

pub async fn call(
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

pub fn lock(l: &Shared) -> std::sync::MutexGuard<'_, Ledger> {
    match l.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

/// One agent's desktop loop: be available, accept offers, write, end, wrap up.
pub async fn agent_loop(base: String, id: String, token: String, ledger: Shared, seed: u64) {
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
pub async fn customer_loop(base: String, ledger: Shared, seed: u64, cycle: usize) {
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
/// Returns each agent's state and every conversation read (by id).
pub async fn verify(
    base: &str,
    ledger: &Ledger,
    tokens: &[(String, String)],
) -> (HashMap<String, String>, HashMap<String, Value>) {
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
    // ../shared/SPEC.md invariant 10: every complete conversation (ended, no wrap-up owed)
    // has exactly one record, and no other conversation has one.
    // Conversations some agent (of all, as the admin sees them) still owes a wrap-up for.
    let mut owed: std::collections::HashSet<String> = std::collections::HashSet::new();
    let (status, agents) = call(&client, "GET", &format!("{base}/api/v1/agents"), ADMIN, None)
        .await
        .expect("agents");
    assert_eq!(status, 200, "agents: {agents}");
    for a in agents.as_array().into_iter().flatten() {
        let id = a["id"].as_str().unwrap_or_default();
        let (status, d) = call(&client, "GET", &format!("{base}/api/v1/agents/{id}"), ADMIN, None)
            .await
            .expect("agent");
        assert_eq!(status, 200, "agent {id}: {d}");
        for c in d["wrapups"].as_array().into_iter().flatten() {
            owed.insert(c["id"].as_str().unwrap_or_default().to_string());
        }
    }
    let mut records: HashMap<String, usize> = HashMap::new();
    let mut after: Option<String> = None;
    loop {
        let query = match &after {
            Some(a) => format!("?limit=1000&after={a}"),
            None => "?limit=1000".to_string(),
        };
        let (status, page) = call(
            &client,
            "GET",
            &format!("{base}/api/v1/reports/conversations{query}"),
            ADMIN,
            None,
        )
        .await
        .expect("read records");
        assert_eq!(status, 200, "records: {page}");
        for r in page["records"].as_array().into_iter().flatten() {
            *records
                .entry(r["id"].as_str().unwrap_or_default().to_string())
                .or_default() += 1;
        }
        match page["next"].as_str() {
            Some(n) => after = Some(n.to_string()),
            None => break,
        }
    }
    for (cid, n) in &records {
        assert_eq!(*n, 1, "{cid} has {n} records");
        if let Some(c) = conversations.get(cid) {
            assert!(
                c["state"] == "ended" && !owed.contains(cid),
                "{cid} has a record but is not complete: {c}"
            );
        }
    }
    let mut complete = 0;
    for (cid, c) in &conversations {
        if c["state"] == "ended" && !owed.contains(cid) {
            assert!(records.contains_key(cid), "complete conversation {cid} has no record");
            complete += 1;
        }
    }
    eprintln!(
        "{} records, each once; {complete} of the conversations read are complete and have theirs",
        records.len()
    );
    (states, conversations)
}
