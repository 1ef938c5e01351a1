//! Store benchmarks (BENCHMARKS.md "Store"):
//!
//! - `commit/group` vs `commit/flush_each`: many concurrent committers, each waiting for
//!   its commit to be durable before the next, with group commit and with one flush per
//!   commit (the same writer with groups of one). Prints throughput, p50/p99 commit
//!   latency (the load harness's HDR histogram), commits per flush, and the ratio.
//! - `recovery`: open + load + `Floor::restore` of a store with 100,000 open
//!   conversations (3 messages each) and 10,000 agents; then (printed, not a criterion
//!   bench) the same with 300,000 finished conversations beside them.
//!
//! `cargo bench --bench store`; `STORE_BENCH_QUICK=1` shrinks the workloads.

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, Criterion};
use switchboard::core::{Agent, Change, Channel, Command, Customer, EntryPoint, Floor, Message, Presence, Rules};
use switchboard::load::stats::{histogram, record};
use switchboard::store::{SledOptions, SledStore, Store};

const T0: u64 = 1_700_000_000_000;

fn quick() -> bool {
    std::env::var("STORE_BENCH_QUICK").is_ok()
}

/// A typical operation's changes: an agent record, a conversation record and a message
/// (what an agent's `send` or an `accept` writes).
fn typical_changes(i: u64, template: &(Agent, switchboard::core::Conversation)) -> Vec<Change> {
    let (mut a, mut c) = template.clone();
    a.id = format!("a{}", i % 1000);
    c.id = format!("c-{}", i % 10_000);
    let message = Message::text(
        i,
        switchboard::core::Author {
            kind: switchboard::core::AuthorKind::Agent,
            id: Some(a.id.clone()),
            name: a.name.clone(),
        },
        "Thanks for waiting, let me look at your order right away.",
        T0 + i,
    );
    vec![
        Change::Agent(Box::new(a)),
        Change::Conversation(Box::new(c.clone())),
        Change::Message {
            conversation: c.id,
            message,
        },
    ]
}

fn template() -> (Agent, switchboard::core::Conversation) {
    let mut f = Floor::new(Rules::default());
    f.execute(
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
        T0,
    )
    .unwrap();
    f.execute(
        Command::CreateEntryPoint(EntryPoint {
            id: "ep1".into(),
            name: "Page".into(),
            queue: "q1".into(),
            page_id: None,
            page_access_token: None,

            ..Default::default()
        }),
        T0,
    )
    .unwrap();
    f.execute(
        Command::CreateAgent {
            id: "a1".into(),
            name: "Agent One".into(),
            queues: vec!["q1".into()],
            capacity: Some(3),
            credential: None,
            password_hash: None,

            skills: Default::default(),
        },
        T0,
    )
    .unwrap();
    f.execute(
        Command::SetState {
            agent: "a1".into(),
            state: Presence::Available,
            idle_code: None,
        },
        T0,
    )
    .unwrap();
    let id = f
        .execute(
            Command::CustomerMessage {
                entry_point: "ep1".into(),
                customer: Customer {
                    id: "k1".into(),
                    name: "Customer".into(),
                },
                text: "hello".into(),
                channel: Channel::Rest,

                open: Default::default(),
            },
            T0,
        )
        .unwrap()
        .into_conversation()
        .expect("conversation")
        .id;
    f.execute(
        Command::Accept {
            agent: "a1".into(),
            conversation: id.clone(),
        },
        T0,
    )
    .unwrap();
    let c = f.conversation(&id).unwrap().clone();
    (f.agent("a1").unwrap().clone(), c)
}

/// Results of one commit run.
struct Run {
    commits: u64,
    elapsed: Duration,
    p50: Duration,
    p99: Duration,
    mean_per_flush: f64,
    max_per_flush: u64,
    mean_flush_ms: f64,
}

/// `clients` tasks each make `per_client` commits, one at a time.
fn commit_run(max_group: usize, clients: u64, per_client: u64) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let options = SledOptions {
        max_group,
        ..SledOptions::default()
    };
    let store = Arc::new(SledStore::open(dir.path(), options).unwrap());
    let template = Arc::new(template());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let started = Instant::now();
    let latencies = rt.block_on(async {
        let mut tasks = Vec::new();
        for c in 0..clients {
            let (store, template) = (store.clone(), template.clone());
            tasks.push(tokio::spawn(async move {
                let mut h = histogram();
                for i in 0..per_client {
                    let changes = typical_changes(c * per_client + i, &template);
                    let t = Instant::now();
                    store.commit(changes).await.unwrap();
                    record(&mut h, t.elapsed());
                }
                h
            }));
        }
        let mut all = histogram();
        for t in tasks {
            all.add(t.await.unwrap()).unwrap();
        }
        all
    });
    let elapsed = started.elapsed();
    let pct = |q: f64| Duration::from_micros(latencies.value_at_quantile(q));
    let s = store.stats();
    Run {
        commits: latencies.len(),
        elapsed,
        p50: pct(0.50),
        p99: pct(0.99),
        mean_per_flush: s.mean_commits_per_flush(),
        max_per_flush: s.max_commits_per_flush,
        mean_flush_ms: s.mean_flush_ms(),
    }
}

fn report(name: &str, r: &Run) -> f64 {
    let rate = r.commits as f64 / r.elapsed.as_secs_f64();
    println!(
        "{name:<28} {:>7} commits in {:>6.2} s = {:>8.0} commits/s | p50 {:>7.2} ms p99 {:>7.2} ms | \
         commits/flush mean {:>6.1} max {:>5} | flush mean {:.2} ms",
        r.commits,
        r.elapsed.as_secs_f64(),
        rate,
        r.p50.as_secs_f64() * 1e3,
        r.p99.as_secs_f64() * 1e3,
        r.mean_per_flush,
        r.max_per_flush,
        r.mean_flush_ms,
    );
    rate
}

/// The commit comparison, printed once (criterion's timing below repeats it smaller).
fn commit_comparison() {
    let (group_n, each_n) = if quick() { (50, 10) } else { (400, 40) };
    println!("\n== store commit: group commit vs a flush per commit (same run) ==");
    for clients in [1u64, 16, 64, 256] {
        let g = commit_run(4096, clients, group_n * 64 / clients.max(1) / 4 + 50);
        let e = commit_run(1, clients, (each_n * 64 / clients.max(1) / 4).max(20));
        let rg = report(&format!("group      clients={clients}"), &g);
        let re = report(&format!("flush_each clients={clients}"), &e);
        println!("ratio group/flush_each at {clients} clients: {:.1}x", rg / re);
    }
}

/// A customer writes, the offered agent accepts, and they exchange a message each way:
/// the open part of a lifecycle. Answers the conversation and its agent.
fn chat(f: &mut Floor, customer: Customer, now: u64) -> (String, String) {
    let id = f
        .execute(
            Command::CustomerMessage {
                entry_point: "ep1".into(),
                customer,
                text: "hello, I need help".into(),
                channel: Channel::Rest,

                open: Default::default(),
            },
            now,
        )
        .unwrap()
        .into_conversation()
        .expect("conversation")
        .id;
    let agent = f.conversation(&id).unwrap().offer.as_ref().unwrap().agent.clone();
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
    ] {
        f.execute(cmd, now).unwrap();
    }
    (id, agent)
}

/// A store with `conversations` open (active) conversations of three messages each and
/// `agents` agents, built by the real core and committed in large groups. Before them,
/// `finished` conversations go through a whole lifecycle (three messages, end, wrap-up):
/// what a store that has served for a while holds besides its open work.
fn build_recovery_store(dir: &std::path::Path, agents: usize, conversations: usize, finished: usize) {
    let store = SledStore::open(dir, SledOptions::default()).unwrap();
    let capacity = conversations.div_ceil(agents) as u32;
    let mut f = Floor::new(Rules::default());
    f.execute(
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
        T0,
    )
    .unwrap();
    f.execute(
        Command::CreateEntryPoint(EntryPoint {
            id: "ep1".into(),
            name: "Page".into(),
            queue: "q1".into(),
            page_id: None,
            page_access_token: None,

            ..Default::default()
        }),
        T0,
    )
    .unwrap();
    for a in 0..agents {
        let id = format!("a{a}");
        f.execute(
            Command::CreateAgent {
                id: id.clone(),
                name: id.clone(),
                queues: vec!["q1".into()],
                capacity: Some(capacity),
                credential: None,
                password_hash: None,

                skills: Default::default(),
            },
            T0,
        )
        .unwrap();
        f.execute(
            Command::SetState {
                agent: id.clone(),
                state: Presence::Available,
                idle_code: None,
            },
            T0,
        )
        .unwrap();
    }
    let mut pending = Vec::new();
    let flush = |f: &mut Floor, pending: &mut Vec<_>| {
        pending.push(store.commit(f.take_changes()));
        f.take_effects();
        if pending.len() >= 64 {
            let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
            rt.block_on(async {
                for p in pending.drain(..) {
                    p.await.unwrap();
                }
            });
        }
    };
    for i in 0..finished {
        let now = T0;
        let customer = Customer {
            id: format!("f{i}"),
            name: "Customer".into(),
        };
        let (id, agent) = chat(&mut f, customer, now);
        f.execute(
            Command::End {
                agent: agent.clone(),
                conversation: id.clone(),
            },
            now,
        )
        .unwrap();
        f.execute(
            Command::Wrapup {
                agent: agent.clone(),
                conversation: id.clone(),
                reason: "resolved".into(),
            },
            now,
        )
        .unwrap();
        if i % 1000 == 999 {
            flush(&mut f, &mut pending);
        }
    }
    for i in 0..conversations {
        let now = T0 + i as u64;
        let customer = Customer {
            id: format!("k{i}"),
            name: "Customer".into(),
        };
        chat(&mut f, customer, now);
        if i % 1000 == 999 {
            flush(&mut f, &mut pending);
        }
    }
    flush(&mut f, &mut pending);
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    rt.block_on(async {
        for p in pending.drain(..) {
            p.await.unwrap();
        }
    });
    store.close();
}

/// Opens, loads and restores; returns (open, load, restore) times.
fn recover(dir: &std::path::Path) -> (Duration, Duration, Duration, usize) {
    let t = Instant::now();
    let store = SledStore::open(dir, SledOptions::default()).unwrap();
    let opened = t.elapsed();
    let t = Instant::now();
    let snap = store.load().unwrap();
    let loaded = t.elapsed();
    let n = snap.conversations.len();
    let t = Instant::now();
    let floor = Floor::restore(
        Rules::default(),
        snap.queues,
        snap.entry_points,
        snap.agents,
        snap.conversations,
        snap.counters,
        T0 + 10_000_000,
    );
    let restored = t.elapsed();
    assert_eq!(switchboard::core::invariants::check(&floor), Vec::<String>::new());
    drop(floor);
    store.close();
    (opened, loaded, restored, n)
}

fn benches(c: &mut Criterion) {
    commit_comparison();

    let mut g = c.benchmark_group("store");
    g.sample_size(10).measurement_time(Duration::from_secs(5));
    g.bench_function("commit/group/64_clients_x_50", |b| {
        b.iter_custom(|iters| (0..iters).map(|_| commit_run(4096, 64, 50).elapsed).sum())
    });
    g.bench_function("commit/flush_each/64_clients_x_5", |b| {
        b.iter_custom(|iters| (0..iters).map(|_| commit_run(1, 64, 5).elapsed).sum())
    });

    let (agents, conversations) = if quick() { (1_000, 10_000) } else { (10_000, 100_000) };
    // STORE_BENCH_RECOVERY_DIR=path keeps the recovery store there; a later run finds it
    // and recovers it in a fresh process, as a restarting server does, instead of right
    // after building it in this one (whose allocator still holds the build's heap).
    let kept = std::env::var_os("STORE_BENCH_RECOVERY_DIR").map(std::path::PathBuf::from);
    let temp = tempfile::tempdir().unwrap();
    let dir_path = kept.clone().unwrap_or_else(|| temp.path().to_path_buf());
    let reuse = kept.is_some() && dir_path.join("db").exists();
    let t = Instant::now();
    if !reuse {
        build_recovery_store(&dir_path, agents, conversations, 0);
    }
    let dir = &dir_path;
    let size: u64 = std::fs::metadata(dir.join("db")).map(|m| m.len()).unwrap_or(0);
    println!(
        "\n== recovery: {agents} agents, {conversations} open conversations x 3 messages \
         ({} in {:.1} s, db file {} MB) ==",
        if reuse {
            "kept from an earlier run, opened"
        } else {
            "built"
        },
        t.elapsed().as_secs_f64(),
        size / 1_000_000
    );
    for _ in 0..3 {
        let (o, l, r, n) = recover(dir);
        println!(
            "open {:>6.0} ms + load {:>6.0} ms + Floor::restore {:>6.0} ms = {:>6.0} ms ({n} conversations)",
            o.as_secs_f64() * 1e3,
            l.as_secs_f64() * 1e3,
            r.as_secs_f64() * 1e3,
            (o + l + r).as_secs_f64() * 1e3
        );
    }
    g.bench_function(format!("recovery/{agents}_agents_{conversations}_conversations"), |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| {
                    let (o, l, r, _) = recover(dir);
                    o + l + r
                })
                .sum()
        })
    });
    g.finish();

    // The same open work in a store that also holds three times as many finished
    // conversations: `load` leaves them out, so recovery should cost about the same.
    let finished = conversations * 3;
    let dir = tempfile::tempdir().unwrap();
    let t = Instant::now();
    build_recovery_store(dir.path(), agents, conversations, finished);
    let size: u64 = std::fs::metadata(dir.path().join("db")).map(|m| m.len()).unwrap_or(0);
    println!(
        "\n== recovery: {agents} agents, {conversations} open + {finished} finished conversations x 3 \
         messages (built in {:.1} s, db file {} MB) ==",
        t.elapsed().as_secs_f64(),
        size / 1_000_000
    );
    for _ in 0..3 {
        let (o, l, r, n) = recover(dir.path());
        println!(
            "open {:>6.0} ms + load {:>6.0} ms + Floor::restore {:>6.0} ms = {:>6.0} ms ({n} conversations loaded)",
            o.as_secs_f64() * 1e3,
            l.as_secs_f64() * 1e3,
            r.as_secs_f64() * 1e3,
            (o + l + r).as_secs_f64() * 1e3
        );
    }
}

criterion_group!(store_benches, benches);

fn main() {
    store_benches();
    Criterion::default().configure_from_args().final_summary();
}
