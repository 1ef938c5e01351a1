//! The production path under the simulation: seeded random schedules drive the real
//! [`Engine`] (its router, agent, queue and conversation actors, group commit to a store)
//! on tokio's paused clock, as mini-redis's tests drive its server. Deadlines fire as in
//! production: the router sleeps until the floor's next deadline and hands the time back;
//! the clock only moves when the schedule advances it. After every step ../shared/SPEC.md's
//! invariants hold; after every advance nothing the state says is overdue is left
//! unfired; and some steps restart the engine from what the store holds, as a crash and
//! a restart would. At the end of each run every finished conversation has exactly one
//! record, the one its final state gives, and no other conversation has one.
//!
//! The fast pure-core simulation (`tests/simulation.rs`) explores far more schedules a
//! second; this one proves that the shells carry the core's decisions out the same way.
//! `SIM_ENGINE_SEEDS=N` runs N seeds (default 100), `SIM_ENGINE_STEPS=N` steps per seed
//! (default 300), `SIM_ENGINE_SEED=S` replays one seed.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use switchboard::actors::conversation::NoChannel;
use switchboard::actors::Clock;
use switchboard::core::*;
use switchboard::engine::{Engine, EngineOptions, Query, QueryReply};
use switchboard::store::MemoryStore;

const T0: Millis = 1_700_000_000_000;
const AGENTS: [&str; 6] = ["a1", "a2", "a3", "a4", "a5", "a6"];
const CUSTOMERS: usize = 12;

/// The engine's clock: tokio's (paused) time, from `T0`.
struct PausedClock(tokio::time::Instant);

impl Clock for PausedClock {
    fn now(&self) -> Millis {
        T0 + self.0.elapsed().as_millis() as Millis
    }
}

fn rules() -> Rules {
    Rules {
        offer_timeout_ms: 1_000,
        transfer_timeout_ms: 800,
        conference_timeout_ms: 800,
        auto_wrapup_after_ms: 2_500,
        inactivity_close_ms: 6_000,
        ..Rules::default()
    }
}

/// Queues q1 and q2; entry points e1 → q1 and e2 → q2, where e2 routes in two steps
/// (French speakers for 700 ms, then anyone); agents serving one or both queues, some
/// with capacity 2, some speaking French.
async fn provision(e: &Engine) -> Result<(), String> {
    let err = |e: switchboard::engine::EngineError| e.to_string();
    e.create_queue("q1", "Sales").await.map_err(err)?;
    e.create_queue("q2", "Support").await.map_err(err)?;
    for (id, queue, steps) in [
        ("e1", "q1", Vec::new()),
        (
            "e2",
            "q2",
            vec![
                Step {
                    requirements: [("lang.fr".to_string(), 3)].into_iter().collect(),
                    for_ms: Some(700),
                },
                Step {
                    requirements: Default::default(),
                    for_ms: None,
                },
            ],
        ),
    ] {
        e.create_entry_point(EntryPoint {
            id: id.into(),
            name: format!("Page {id}"),
            queue: queue.into(),
            page_id: None,
            page_access_token: None,
            priority: 0,
            routing_steps: steps,
            messenger: Default::default(),
        })
        .await
        .map_err(err)?;
    }
    for (i, a) in AGENTS.iter().enumerate() {
        let queues = match i % 3 {
            0 => vec!["q1".to_string()],
            1 => vec!["q2".to_string()],
            _ => vec!["q1".to_string(), "q2".to_string()],
        };
        let skills: Skills = if i % 2 == 0 {
            [("lang.fr".to_string(), 5)].into_iter().collect()
        } else {
            Skills::new()
        };
        e.exec(Command::CreateAgent {
            id: a.to_string(),
            name: a.to_uppercase(),
            queues,
            capacity: Some(1 + (i % 2) as u32),
            credential: None,
            password_hash: None,
            skills,
        })
        .await
        .map_err(err)?;
    }
    Ok(())
}

/// One random step, as a client would send it; returns what it was and how it ended.
async fn step(e: &Engine, rng: &mut StdRng) -> Result<String, String> {
    let agents = e.agents().await.map_err(|e| e.to_string())?;
    // An agent with something in `set` (offers, conversations, wrap-ups owed), and one of
    // those conversations; or any agent, and none.
    let holder = |set: fn(&Agent) -> &std::collections::BTreeSet<ConversationId>, rng: &mut StdRng| {
        let with: Vec<&Agent> = agents.iter().filter(|a| !set(a).is_empty()).collect();
        if with.is_empty() {
            return (AGENTS[rng.gen_range(0..AGENTS.len())].to_string(), None);
        }
        let a = with[rng.gen_range(0..with.len())];
        let ids: Vec<&ConversationId> = set(a).iter().collect();
        (a.id.clone(), Some(ids[rng.gen_range(0..ids.len())].clone()))
    };
    let kind = rng.gen_range(0..100);
    let (agent, held) = match kind {
        33..=52 => holder(|a| &a.offers, rng),
        70..=79 => {
            let with: Vec<&Agent> = agents.iter().filter(|a| !a.wrapups.is_empty()).collect();
            match with.is_empty() {
                true => (AGENTS[rng.gen_range(0..AGENTS.len())].to_string(), None),
                false => {
                    let a = with[rng.gen_range(0..with.len())];
                    let ids: Vec<&ConversationId> = a.wrapups.keys().collect();
                    (a.id.clone(), Some(ids[rng.gen_range(0..ids.len())].clone()))
                }
            }
        }
        53..=69 | 80..=100 => holder(|a| &a.active, rng),
        _ => (AGENTS[rng.gen_range(0..AGENTS.len())].to_string(), None),
    };
    let other = AGENTS[rng.gen_range(0..AGENTS.len())].to_string();
    let (what, cmd) = match kind {
        0..=17 => {
            let customer = Customer {
                id: format!("u{}", rng.gen_range(0..CUSTOMERS)),
                name: "Customer".into(),
            };
            let ep = if rng.gen_bool(0.5) { "e1" } else { "e2" };
            (
                format!("{} writes on {ep}", customer.id),
                Command::CustomerMessage {
                    entry_point: ep.into(),
                    customer,
                    text: "hello".into(),
                    channel: Channel::Rest,
                    open: Default::default(),
                },
            )
        }
        18..=32 => {
            let state = match rng.gen_range(0..4) {
                0 => Presence::LoggedOut,
                1 => Presence::Idle,
                _ => Presence::Available,
            };
            let idle_code = (state == Presence::Idle).then(|| "break".to_string());
            (
                format!("{agent} sets {state:?}"),
                Command::SetState {
                    agent: agent.clone(),
                    state,
                    idle_code,
                },
            )
        }
        33..=52 => match held.clone() {
            Some(c) => (
                format!("{agent} accepts {c}"),
                Command::Accept {
                    agent: agent.clone(),
                    conversation: c,
                },
            ),
            None => return Ok(format!("{agent} has nothing to accept")),
        },
        53..=60 => match held.clone() {
            Some(c) => (
                format!("{agent} writes in {c}"),
                Command::Send {
                    agent: agent.clone(),
                    conversation: c,
                    text: "here".into(),
                },
            ),
            None => return Ok(format!("{agent} has nothing to say")),
        },
        61..=69 => match held.clone() {
            Some(c) => (
                format!("{agent} ends {c}"),
                Command::End {
                    agent: agent.clone(),
                    conversation: c,
                },
            ),
            None => return Ok(format!("{agent} has nothing to end")),
        },
        70..=79 => match held.clone() {
            Some(c) => (
                format!("{agent} wraps up {c}"),
                Command::Wrapup {
                    agent: agent.clone(),
                    conversation: c,
                    reason: "resolved".into(),
                },
            ),
            None => return Ok(format!("{agent} has nothing to wrap up")),
        },
        80..=85 => match held.clone() {
            Some(c) if rng.gen_bool(0.5) => (
                format!("{agent} transfers {c} to {other}"),
                Command::TransferToAgent {
                    agent: agent.clone(),
                    conversation: c,
                    target: other,
                    note: None,
                },
            ),
            Some(c) => (
                format!("{agent} transfers {c} to q2"),
                Command::TransferToQueue {
                    agent: agent.clone(),
                    conversation: c,
                    queue: "q2".into(),
                    note: None,
                },
            ),
            None => return Ok(format!("{agent} has nothing to transfer")),
        },
        86..=90 => match held.clone() {
            Some(c) => (
                format!("{agent} invites {other} to {c}"),
                Command::Conference {
                    agent: agent.clone(),
                    conversation: c,
                    target: other,
                    note: None,
                },
            ),
            None => return Ok(format!("{agent} has nothing to conference")),
        },
        91..=94 => match held.clone() {
            Some(c) => (
                format!("{agent} leaves the conference in {c}"),
                Command::ExitConference {
                    agent: agent.clone(),
                    conversation: c,
                },
            ),
            None => return Ok(format!("{agent} is in no conference")),
        },
        _ => match held.clone() {
            Some(c) => (
                format!("the customer of {c} writes"),
                Command::CustomerReply {
                    conversation: c,
                    text: "still there?".into(),
                },
            ),
            None => return Ok("no customer to write".into()),
        },
    };
    let outcome = match e.exec(cmd).await {
        Ok(_) => "ok".to_string(),
        Err(err) => err.code().to_string(),
    };
    Ok(format!("{what} -> {outcome}"))
}

/// Lets every actor run what the clock's last move made due (paused time: a millisecond
/// more, then the engine's mailbox is drained by a read).
async fn settle(e: &Engine) -> Result<(), String> {
    tokio::time::sleep(Duration::from_millis(1)).await;
    e.stats().await.map(|_| ()).map_err(|e| e.to_string())
}

async fn check(e: &Engine, after_advance: bool) -> Vec<String> {
    let mut v = e.violations().await.unwrap_or_else(|err| vec![err.to_string()]);
    if after_advance {
        match e.ask(Query::Overdue).await {
            Ok(QueryReply::Violations(o)) => v.extend(o.into_iter().map(|t| format!("not fired in time: {t}"))),
            other => v.push(format!("overdue query: {other:?}")),
        }
    }
    v
}

fn run_seed(seed: u64, steps: usize) -> Result<BTreeMap<String, u64>, String> {
    let system = actix_rt::System::new();
    system.block_on(async move {
        tokio::time::pause();
        let mut rng = StdRng::seed_from_u64(seed);
        let store: Arc<dyn switchboard::store::Store> = Arc::new(MemoryStore::new());
        let mut options = EngineOptions::new(rules(), store.clone());
        options.clock = Arc::new(PausedClock(tokio::time::Instant::now()));
        options.channel = Arc::new(NoChannel);
        options.arbiter = Some(actix::Arbiter::current());
        let engine = Engine::start(options).map_err(|e| e.to_string())?;
        // What the deadlines did, as the engine reports it to its observers.
        let mut observed = engine.observe();
        provision(&engine).await?;
        let mut log: Vec<String> = Vec::new();
        let mut stats: BTreeMap<String, u64> = BTreeMap::new();
        let fail = |step: usize, log: &[String], v: Vec<String>| {
            let tail = log[log.len().saturating_sub(25)..].join("\n");
            format!(
                "seed {seed} failed at step {step} (replay with SIM_ENGINE_SEED={seed}):\n{}\nlast steps:\n{tail}",
                v.join("\n")
            )
        };
        for n in 0..steps {
            while let Ok(o) = observed.try_recv() {
                if let switchboard::engine::Observed::Observation(o) = o.as_ref() {
                    let kind = match o {
                        Observation::Rona { .. } => "deadline: rona",
                        Observation::Rerouted { .. } => "deadline: next step",
                        Observation::Ended { reason, .. } if reason == "customer_inactive" => "deadline: inactive",
                        Observation::WrappedUp { reason, .. } if reason == "other" => "deadline: auto wrap-up",
                        _ => continue,
                    };
                    *stats.entry(kind.into()).or_default() += 1;
                }
            }
            let what = step(&engine, &mut rng).await?;
            let outcome = match what.split_once("-> ") {
                Some((_, outcome)) => outcome.to_string(),
                None => "nothing to do".to_string(),
            };
            *stats.entry(outcome).or_default() += 1;
            log.push(format!("{n}: {what}"));
            let v = check(&engine, false).await;
            if !v.is_empty() {
                return Err(fail(n, &log, v));
            }
            if rng.gen_bool(0.25) {
                let ms = rng.gen_range(1..1_600);
                tokio::time::advance(Duration::from_millis(ms)).await;
                settle(&engine).await?;
                log.push(format!("{n}: the clock moves {ms} ms"));
                let v = check(&engine, true).await;
                if !v.is_empty() {
                    return Err(fail(n, &log, v));
                }
            }
            if rng.gen_bool(0.03) {
                engine.restart().await.map_err(|e| e.to_string())?;
                settle(&engine).await?;
                *stats.entry("restart".into()).or_default() += 1;
                log.push(format!("{n}: the engine restarts from the store"));
                let v = check(&engine, true).await;
                if !v.is_empty() {
                    return Err(fail(n, &log, v));
                }
            }
        }
        settle(&engine).await?;
        let (v, recorded) = records_once(&*store);
        if !v.is_empty() {
            return Err(fail(steps, &log, v));
        }
        *stats.entry("finished with its record".into()).or_default() += recorded;
        Ok(stats)
    })
}

/// ../shared/SPEC.md invariant 10 over what the store holds: every finished conversation
/// (ended, and not held by any agent's record) has exactly one record, the one its final
/// state gives, and no other conversation has one.
/// Returns the violations and how many finished conversations were checked.
fn records_once(store: &dyn switchboard::store::Store) -> (Vec<String>, u64) {
    let mut v = Vec::new();
    let mut recorded = 0;
    let all = RecordQuery {
        filter: RecordFilter::default(),
        after: None,
        limit: usize::MAX,
    };
    let (records, snapshot) = match (store.records(&all), store.load()) {
        (Ok(p), Ok(s)) => (p.records, s),
        (r, s) => {
            return (
                vec![format!("10: the store cannot be read: {:?} {:?}", r.err(), s.err())],
                0,
            )
        }
    };
    let held: std::collections::HashSet<&str> = snapshot.conversations.iter().map(|c| c.id.as_str()).collect();
    let mut by_id: BTreeMap<&str, Vec<&ConversationRecord>> = BTreeMap::new();
    for r in &records {
        by_id.entry(r.id.as_str()).or_default().push(r);
    }
    for n in 1..snapshot.counters.0 {
        let id = format!("c-{n}");
        let stored = match store.conversation(&id) {
            Ok(c) => c,
            Err(e) => return (vec![format!("10: {id} cannot be read: {e}")], recorded),
        };
        let finished = stored
            .as_ref()
            .filter(|c| c.state == ConversationState::Ended && !held.contains(id.as_str()));
        let mine = by_id.remove(id.as_str()).unwrap_or_default();
        match finished {
            Some(c) => {
                recorded += 1;
                if mine.len() != 1 || Some(mine[0]) != ConversationRecord::of(c).as_ref() {
                    v.push(format!("10: finished {id} has the records {mine:?}"));
                }
            }
            None if !mine.is_empty() => v.push(format!("10: {id} is not finished but has a record")),
            None => {}
        }
    }
    for id in by_id.keys() {
        v.push(format!("10: a record of {id}, which the store does not have"));
    }
    (v, recorded)
}

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// ../shared/SPEC.md's invariants hold over random schedules run by the real router and actors,
/// every deadline fires from the core's table when the paused clock reaches it, and a
/// restart from the store keeps both. Each kind of step must have happened, so a
/// schedule that never reaches a state cannot pass unnoticed.
#[test]
fn the_real_engine_keeps_the_invariants_on_a_paused_clock() {
    let steps = env("SIM_ENGINE_STEPS", 300) as usize;
    let seeds: Vec<u64> = match std::env::var("SIM_ENGINE_SEED").ok().and_then(|s| s.parse().ok()) {
        Some(s) => vec![s],
        None => (0..env("SIM_ENGINE_SEEDS", 100)).collect(),
    };
    let mut total: BTreeMap<String, u64> = BTreeMap::new();
    for seed in seeds {
        match run_seed(seed, steps) {
            Ok(stats) => {
                for (k, v) in stats {
                    *total.entry(k).or_default() += v;
                }
            }
            Err(e) => panic!("{e}"),
        }
    }
    eprintln!("outcomes over the run: {total:?}");
    if std::env::var("SIM_ENGINE_SEED").is_err() {
        for must in [
            "ok",
            "restart",
            "finished with its record",
            "deadline: rona",
            "deadline: next step",
            "deadline: inactive",
            "deadline: auto wrap-up",
        ] {
            assert!(total.get(must).is_some_and(|n| *n > 0), "no `{must}` in {total:?}");
        }
    }
}
