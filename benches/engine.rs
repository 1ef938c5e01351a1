//! Engine benches (issue 3), all in one criterion run so their ratios mean something:
//!
//! - `routing_decision/{10,1000,100000}`: the pure core ([`Floor`]) with N waiting
//!   conversations; one agent becomes available and takes one offer. Only that
//!   `set_state` call (which runs the routing step) is timed; putting the floor back
//!   (accept, end, idle, wrap-up, one new arrival so N stays N) is not.
//! - `lifecycle/engine_in_memory`: one whole conversation through the actors via
//!   [`Engine`] with a [`MemoryStore`]: arrive, offer (seen on the agent's event stream),
//!   accept, two messages each way, end, wrap-up.
//! - `actix_round_trip/{same_arbiter,cross_arbiter}`: the baseline, a task awaiting
//!   `addr.send(msg)` to an actor that answers at once, on the caller's arbiter and on
//!   another one (the engine runs its actors on their own arbiter, so every [`Engine`]
//!   call is a cross-thread round trip).
//!
//! Run: `cargo bench --bench engine -- --warm-up-time 1 --measurement-time 3`.
//! BENCHMARKS.md records the figures and the ratio lifecycle ÷ round trip.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use switchboard::core::{AgentEvent, Channel, Command, Customer, EntryPoint, Floor, Presence, Rules};
use switchboard::engine::{Engine, EngineOptions};
use switchboard::load::baseline::{Echo, Ping};
use switchboard::store::MemoryStore;

/// mimalloc rather than glibc malloc: Switchboard allocates many small, short-lived
/// records and frees them on other threads (BENCHMARKS.md "Load harness").
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A floor with one queue, one entry point, one idle agent and `waiting` queued
/// conversations (received one millisecond apart).
fn floor_with_waiting(waiting: usize) -> (Floor, u64) {
    let mut f = Floor::new(Rules::default());
    f.execute(
        Command::CreateQueue {
            id: "q".into(),
            name: "Queue".into(),
            routing_steps: Vec::new(),
            hours: None,
            survey: None,
            wait_limit: None,
            service_level_ms: None,
            place_updates: None,
            overflow: None,
        },
        0,
    )
    .unwrap();
    f.execute(
        Command::CreateEntryPoint(EntryPoint {
            id: "ep".into(),
            name: "Page".into(),
            queue: "q".into(),
            page_id: None,
            page_access_token: None,

            ..Default::default()
        }),
        0,
    )
    .unwrap();
    f.execute(
        Command::CreateAgent {
            id: "a".into(),
            name: "Agent".into(),
            queues: vec!["q".into()],
            capacity: Some(1),
            credential: None,
            password_hash: None,

            skills: Default::default(),
        },
        0,
    )
    .unwrap();
    f.execute(
        Command::SetState {
            agent: "a".into(),
            state: Presence::Idle,
            idle_code: None,
        },
        0,
    )
    .unwrap();
    let mut now = 1;
    for i in 0..waiting {
        arrive(&mut f, i, now);
        now += 1;
    }
    f.take_effects();
    f.take_changes();
    (f, now)
}

fn arrive(f: &mut Floor, i: usize, now: u64) {
    let customer = Customer {
        id: format!("cust-{i}"),
        name: "Customer".into(),
    };
    f.execute(
        Command::CustomerMessage {
            entry_point: "ep".into(),
            customer,
            text: "hello".into(),
            channel: Channel::Rest,

            open: Default::default(),
        },
        now,
    )
    .unwrap();
}

fn routing_decision(c: &mut Criterion) {
    let mut g = c.benchmark_group("routing_decision");
    g.throughput(Throughput::Elements(1));
    for waiting in [10usize, 1_000, 100_000] {
        let (mut f, mut now) = floor_with_waiting(waiting);
        let mut next_customer = waiting;
        g.bench_with_input(BenchmarkId::from_parameter(waiting), &waiting, |b, _| {
            b.iter_custom(|iters| {
                let mut timed = Duration::ZERO;
                for _ in 0..iters {
                    now += 1;
                    let start = Instant::now();
                    let a = f
                        .execute(
                            Command::SetState {
                                agent: "a".into(),
                                state: Presence::Available,
                                idle_code: None,
                            },
                            now,
                        )
                        .unwrap();
                    timed += start.elapsed();
                    let a = a.into_agent().expect("agent");
                    let conv = a.offers.iter().next().cloned().expect("one offer");
                    // Put the floor back: N conversations waiting, the agent idle.
                    f.execute(
                        Command::Accept {
                            agent: "a".into(),
                            conversation: conv.clone(),
                        },
                        now,
                    )
                    .unwrap();
                    f.execute(
                        Command::End {
                            agent: "a".into(),
                            conversation: conv.clone(),
                        },
                        now,
                    )
                    .unwrap();
                    f.execute(
                        Command::SetState {
                            agent: "a".into(),
                            state: Presence::Idle,
                            idle_code: None,
                        },
                        now,
                    )
                    .unwrap();
                    f.execute(
                        Command::Wrapup {
                            agent: "a".into(),
                            conversation: conv.clone(),
                            reason: "resolved".into(),
                        },
                        now,
                    )
                    .unwrap();
                    arrive(&mut f, next_customer, now);
                    next_customer += 1;
                    f.take_effects();
                    f.take_changes();
                }
                timed
            })
        });
    }
    g.finish();
}

/// One lifecycle for agent `a`, whose event stream is `events`.
async fn lifecycle(engine: &Engine, events: &mut tokio::sync::mpsc::Receiver<Arc<AgentEvent>>, customer: &str) {
    let conv = engine
        .customer_message("ep", customer, "Customer", "hello")
        .await
        .unwrap();
    loop {
        match events.recv().await.as_deref() {
            Some(AgentEvent::Offer { conversation, .. }) if conversation.id == conv.id => break,
            Some(_) => continue,
            None => panic!("event stream closed"),
        }
    }
    engine.accept("a", &conv.id).await.unwrap();
    engine.customer_reply(&conv.id, "are you there?").await.unwrap();
    engine.send("a", &conv.id, "hello, how can I help?").await.unwrap();
    engine.customer_reply(&conv.id, "my order").await.unwrap();
    engine.send("a", &conv.id, "done").await.unwrap();
    engine.end("a", &conv.id).await.unwrap();
    engine.wrapup("a", &conv.id, "resolved").await.unwrap();
    // The remaining events of this conversation are not part of the agent's next wait.
    while events.try_recv().is_ok() {}
}

fn engine_lifecycle(c: &mut Criterion) {
    let system = System::new();
    let (engine, mut events) = system.block_on(async {
        let engine = Engine::start(EngineOptions::new(Rules::default(), Arc::new(MemoryStore::new()))).unwrap();
        engine.create_queue("q", "Queue").await.unwrap();
        engine
            .create_entry_point(EntryPoint {
                id: "ep".into(),
                name: "Page".into(),
                queue: "q".into(),
                page_id: None,
                page_access_token: None,

                ..Default::default()
            })
            .await
            .unwrap();
        engine.create_agent("a", "Agent", &["q"], 1).await.unwrap();
        let (_, events) = engine.subscribe("a").await.unwrap();
        engine.set_state("a", Presence::Available, None).await.unwrap();
        (engine, events)
    });
    let mut g = c.benchmark_group("lifecycle");
    g.throughput(Throughput::Elements(1));
    let mut n = 0u64;
    g.bench_function("engine_in_memory", |b| {
        b.iter_custom(|iters| {
            system.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    n += 1;
                    lifecycle(&engine, &mut events, &format!("cust-{n}")).await;
                }
                start.elapsed()
            })
        })
    });
    g.finish();
}

fn actix_round_trip(c: &mut Criterion) {
    let system = System::new();
    let (local, remote, _arbiter) = system.block_on(async {
        let arbiter = Arbiter::new();
        let remote = Echo::start_in_arbiter(&arbiter.handle(), |_| Echo);
        (Echo.start(), remote, arbiter)
    });
    let mut g = c.benchmark_group("actix_round_trip");
    g.throughput(Throughput::Elements(1));
    for (name, addr) in [("same_arbiter", local), ("cross_arbiter", remote)] {
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                system.block_on(async {
                    let start = Instant::now();
                    for i in 0..iters {
                        std::hint::black_box(addr.send(Ping(i)).await.unwrap());
                    }
                    start.elapsed()
                })
            })
        });
    }
    g.finish();
}

fn config() -> Criterion {
    // The machine has 2 cores shared with other builds: short runs, more samples is noise.
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
}

criterion_group! {
    name = benches;
    config = config();
    targets = routing_decision, engine_lifecycle, actix_round_trip
}
criterion_main!(benches);
