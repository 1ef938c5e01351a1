//! Builds a store for the backup and report measurements (BENCHMARKS.md "Streaming
//! backup", "Reports over a million records"): a deployment that has served for a
//! while, as the real core writes it.
//!
//! `BACKUP_STORE_DIR=DIR BACKUP_STORE_CONVERSATIONS=1000000 [BACKUP_STORE_SPREAD_DAYS=365] cargo bench --bench backup_store`
//!
//! With `BACKUP_STORE_SPREAD_DAYS`, the conversations are spread evenly over that many
//! days up to now (their records, figures and search texts with them; retention then
//! forgets the old conversations themselves, not their records), and each customer
//! names an order number of its own (`order 123`), a word for transcript search to
//! find once.
//!
//! Writes into DIR (absent or empty) 200 agents, one queue and one entry point (`q1`,
//! `ep1`), and CONVERSATIONS conversations that went through a whole lifecycle (customer
//! message, accept, agent message, customer reply, end, wrap-up), dated now so that
//! retention keeps them, committed through `Store::commit` in groups of 1,000
//! conversations. `switchboard` then starts on DIR like on any store.

use std::time::Instant;

use switchboard::core::{Channel, Command, Customer, EntryPoint, Floor, Presence, Rules};
use switchboard::store::{SledOptions, SledStore, Store};

fn chat(f: &mut Floor, customer: Customer, text: String, now: u64) -> Option<(String, String)> {
    let id = f
        .execute(
            Command::CustomerMessage {
                entry_point: "ep1".into(),
                customer,
                text,
                channel: Channel::Rest,
                open: Default::default(),
            },
            now,
        )
        .ok()?
        .into_conversation()?
        .id;
    let agent = f.conversation(&id)?.offer.as_ref()?.agent.clone();
    for cmd in [
        Command::Accept {
            agent: agent.clone(),
            conversation: id.clone(),
        },
        Command::Send {
            agent: agent.clone(),
            conversation: id.clone(),
            text: "Hi, I am looking into it.".into(),
        },
        Command::CustomerReply {
            conversation: id.clone(),
            text: "thanks".into(),
        },
        Command::End {
            agent: agent.clone(),
            conversation: id.clone(),
        },
        Command::Wrapup {
            agent: agent.clone(),
            conversation: id.clone(),
            reason: "resolved".into(),
        },
    ] {
        f.execute(cmd, now).ok()?;
    }
    Some((id, agent))
}

fn main() {
    let Ok(dir) = std::env::var("BACKUP_STORE_DIR") else {
        eprintln!("set BACKUP_STORE_DIR (and BACKUP_STORE_CONVERSATIONS, default 1000000)");
        return;
    };
    let n: usize = std::env::var("BACKUP_STORE_CONVERSATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let spread_ms: u64 = std::env::var("BACKUP_STORE_SPREAD_DAYS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .map_or(0, |d| d * 86_400_000);
    let store = SledStore::open(std::path::Path::new(&dir), SledOptions::default()).expect("store opens");
    let now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0)
    };
    let mut f = Floor::new(Rules::default());
    let setup = [
        Command::CreateQueue {
            id: "q1".into(),
            name: "Support".into(),
            routing_steps: Vec::new(),
            hours: None,
            survey: None,
            wait_limit: None,
            service_level_ms: None,
            place_updates: None,
            overflow: None,
        },
        Command::CreateEntryPoint(EntryPoint {
            id: "ep1".into(),
            name: "Page".into(),
            queue: "q1".into(),
            ..Default::default()
        }),
    ];
    for cmd in setup {
        f.execute(cmd, now()).expect("setup");
    }
    for a in 0..200 {
        let id = format!("a{a}");
        f.execute(
            Command::CreateAgent {
                id: id.clone(),
                name: id.clone(),
                queues: vec!["q1".into()],
                capacity: Some(5),
                credential: None,
                password_hash: None,
                skills: Default::default(),
            },
            now(),
        )
        .expect("agent");
        f.execute(
            Command::SetState {
                agent: id,
                state: Presence::Available,
                idle_code: None,
            },
            now(),
        )
        .expect("presence");
    }
    let rt = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
    let started = Instant::now();
    let mut pending = Vec::new();
    for i in 0..n {
        let customer = Customer {
            id: format!("k{i}"),
            name: "Customer".into(),
        };
        let (at, text) = if spread_ms == 0 {
            (now(), "hello, I need help with my order".to_string())
        } else {
            let back = spread_ms / n as u64 * (n - 1 - i) as u64;
            (now() - back, format!("hello, I need help with my order {i}"))
        };
        chat(&mut f, customer, text, at).expect("a whole lifecycle");
        if i % 1000 == 999 || i + 1 == n {
            pending.push(store.commit(f.take_changes()));
            f.take_effects();
            if pending.len() >= 16 {
                rt.block_on(async {
                    for p in pending.drain(..) {
                        p.await.expect("commit");
                    }
                });
            }
        }
        if i % 100_000 == 99_999 {
            println!("{} conversations in {:.1} s", i + 1, started.elapsed().as_secs_f64());
        }
    }
    // Agents off the floor: the load harness that runs beside the backup brings its own.
    for a in 0..200 {
        let _ = f.execute(
            Command::SetState {
                agent: format!("a{a}"),
                state: Presence::LoggedOut,
                idle_code: None,
            },
            now(),
        );
    }
    pending.push(store.commit(f.take_changes()));
    rt.block_on(async {
        for p in pending.drain(..) {
            p.await.expect("commit");
        }
    });
    store.close();
    println!(
        "{n} conversations written to {dir} in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}
