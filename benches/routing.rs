//! The routing decision with skills and two-step requirements (issue 12, "Still fast"),
//! beside plain longest-idle routing, all from one criterion run so the two compare.
//!
//! Every case drives the pure core ([`Floor`]) through [`Floor::execute`] only, on a floor
//! of W waiting conversations (10 / 1,000 / 100,000) and A agents (10 / 1,000 / 10,000),
//! built once per (mode, W, A) and put back after each timed command (untimed), so W and A
//! stay what they say. The clock stands still at one instant: every conversation is in
//! step 0 of its entry point, as a floor is between two step deadlines.
//!
//! `skills` floor: one queue; entry point `ep-fr` has steps `lang.fr >= 7` for 30 s, then
//! `lang.fr >= 3`; entry point `ep-en` the same with `lang.en`. The A agents are all
//! `available` with three languages at seeded random levels, `lang.fr` never above 6,
//! so the W conversations from `ep-fr` wait while every agent is free. Agent `star`
//! (`lang.fr` 9) serves the queue and is `idle` between cases.
//!
//! `plain` floor (today's routing: no skills, no steps, longest idle): the W conversations
//! wait in queue `q`, served only by `star` (`idle`); the A agents are `available` in
//! queue `q2`, which nothing waits in (plain routing cannot leave a conversation waiting
//! while an agent of its queue is free).
//!
//! What is timed, one `execute` each:
//! - `arrival_offered`: a customer message opens a conversation that is offered at once
//!   (`skills`: on `ep-en`, to the longest-idle agent with `lang.en >= 7`; `plain`: on
//!   `q2`'s entry point). Put back: the customer ends it.
//! - `arrival_waits`: a customer message opens a conversation nobody free can take
//!   (`skills`: on `ep-fr`, with A free agents none of which meets `lang.fr >= 7`;
//!   `plain`: on `q`). Put back: the customer ends it.
//! - `agent_free`: `star` sets itself `available` and is offered the first waiting
//!   conversation it meets. Put back: `star` goes `idle`, the customer ends that
//!   conversation, a new one arrives at the back of the queue.
//!
//! Run: `cargo bench --bench routing` (a few minutes on 2 cores, most of it putting the
//! floors back and building them; a filter such as `-- w100000/a10/` runs only what it
//! names, but every floor is still built). BENCHMARKS.md "Routing depth".

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use switchboard::core::{
    Channel, Command, Conversation, Customer, EntryPoint, Floor, Presence, Reply, Rules, Skills, Step,
};

/// mimalloc, as in the binaries (BENCHMARKS.md "Load harness").
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The instant every command of the bench runs at.
const NOW: u64 = 1_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Plain,
    Skills,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Plain => "plain",
            Mode::Skills => "skills",
        }
    }

    /// Where an arrival that is offered at once comes in.
    fn offered_ep(self) -> &'static str {
        match self {
            Mode::Plain => "ep-q2",
            Mode::Skills => "ep-en",
        }
    }

    /// Where an arrival that waits comes in (and the W waiting ones came in).
    fn waiting_ep(self) -> &'static str {
        match self {
            Mode::Plain => "ep-q",
            Mode::Skills => "ep-fr",
        }
    }
}

/// A floor and the number of its next customer.
struct Bed {
    f: Floor,
    customers: usize,
}

fn ok(f: &mut Floor, cmd: Command) -> Reply {
    let name = cmd.name();
    f.execute(cmd, NOW).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn skills(pairs: &[(&str, u8)]) -> Skills {
    pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
}

/// Two steps on one language: `>= 7` for 30 s, then `>= 3`.
fn two_steps(lang: &str) -> Vec<Step> {
    vec![
        Step {
            requirements: skills(&[(lang, 7)]),
            for_ms: Some(30_000),
        },
        Step {
            requirements: skills(&[(lang, 3)]),
            for_ms: None,
        },
    ]
}

fn queue(f: &mut Floor, id: &str) {
    ok(
        f,
        Command::CreateQueue {
            id: id.into(),
            name: id.into(),
            routing_steps: Vec::new(),
            hours: None,
            survey: None,
            wait_limit: None,
            service_level_ms: None,
            place_updates: None,
            overflow: None,
        },
    );
}

fn entry_point(f: &mut Floor, id: &str, queue: &str, routing_steps: Vec<Step>) {
    ok(
        f,
        Command::CreateEntryPoint(EntryPoint {
            id: id.into(),
            name: id.into(),
            queue: queue.into(),
            routing_steps,
            ..Default::default()
        }),
    );
}

fn agent(f: &mut Floor, id: &str, queue: &str, skills: Skills, state: Presence) {
    ok(
        f,
        Command::CreateAgent {
            id: id.into(),
            name: id.into(),
            queues: vec![queue.into()],
            capacity: Some(1),
            credential: None,
            password_hash: None,
            skills,
        },
    );
    set_state(f, id, state);
}

fn set_state(f: &mut Floor, agent: &str, state: Presence) -> Reply {
    ok(
        f,
        Command::SetState {
            agent: agent.into(),
            state,
            idle_code: None,
        },
    )
}

impl Bed {
    fn new(mode: Mode, waiting: usize, agents: usize) -> Bed {
        let mut f = Floor::new(Rules::default());
        let mut rng = StdRng::seed_from_u64(12);
        match mode {
            Mode::Plain => {
                queue(&mut f, "q");
                queue(&mut f, "q2");
                entry_point(&mut f, "ep-q", "q", Vec::new());
                entry_point(&mut f, "ep-q2", "q2", Vec::new());
                for i in 0..agents {
                    agent(&mut f, &format!("a-{i}"), "q2", Skills::new(), Presence::Available);
                }
                agent(&mut f, "star", "q", Skills::new(), Presence::Idle);
            }
            Mode::Skills => {
                queue(&mut f, "q");
                entry_point(&mut f, "ep-fr", "q", two_steps("lang.fr"));
                entry_point(&mut f, "ep-en", "q", two_steps("lang.en"));
                for i in 0..agents {
                    // Agent 0 meets `lang.en >= 7` whatever the draw.
                    let en = if i == 0 { 9 } else { rng.gen_range(1..=10) };
                    let s = skills(&[
                        ("lang.fr", rng.gen_range(1..=6)),
                        ("lang.en", en),
                        ("lang.de", rng.gen_range(1..=10)),
                    ]);
                    agent(&mut f, &format!("a-{i}"), "q", s, Presence::Available);
                }
                let s = skills(&[("lang.fr", 9), ("lang.en", 5), ("lang.de", 2)]);
                agent(&mut f, "star", "q", s, Presence::Idle);
            }
        }
        let mut bed = Bed { f, customers: 0 };
        for _ in 0..waiting {
            let reply = bed.arrive(mode.waiting_ep());
            assert!(reply.offer.is_none(), "a conversation of the waiting queue was offered");
        }
        bed.drain();
        bed
    }

    /// A new customer's first message on `ep`.
    fn customer_message(&mut self, ep: &str) -> Command {
        self.customers += 1;
        Command::CustomerMessage {
            entry_point: ep.into(),
            customer: Customer {
                id: format!("cust-{}", self.customers),
                name: "Customer".into(),
            },
            text: "hello".into(),
            channel: Channel::Rest,
            open: Default::default(),
        }
    }

    /// A new customer's first message on `ep`: the conversation it opened.
    fn arrive(&mut self, ep: &str) -> Box<Conversation> {
        let cmd = self.customer_message(ep);
        ok(&mut self.f, cmd).into_conversation().expect("a conversation")
    }

    fn customer_end(&mut self, conversation: String) {
        ok(&mut self.f, Command::CustomerEnd { conversation });
    }

    /// Drops what the shell would carry out and store (and evicts finished conversations).
    fn drain(&mut self) {
        self.f.take_effects();
        self.f.take_changes();
    }

    /// `iters` arrivals on `ep`, each timed alone; `offered` says whether each must be
    /// offered at once. Each is ended by its customer afterwards (untimed).
    fn arrivals(&mut self, iters: u64, ep: &str, offered: bool) -> Duration {
        let mut timed = Duration::ZERO;
        for _ in 0..iters {
            let cmd = self.customer_message(ep);
            let start = Instant::now();
            let reply = self.f.execute(cmd, NOW);
            timed += start.elapsed();
            let c = reply.expect("arrival").into_conversation().expect("a conversation");
            assert_eq!(c.offer.is_some(), offered, "arrival on {ep}");
            self.customer_end(c.id);
            self.drain();
        }
        timed
    }

    /// `iters` times: `star` sets itself available (timed) and takes the first waiting
    /// conversation; then it goes idle, that conversation ends and a new one arrives.
    fn agent_free(&mut self, iters: u64, mode: Mode) -> Duration {
        let mut timed = Duration::ZERO;
        for _ in 0..iters {
            let cmd = Command::SetState {
                agent: "star".into(),
                state: Presence::Available,
                idle_code: None,
            };
            let start = Instant::now();
            let reply = self.f.execute(cmd, NOW);
            timed += start.elapsed();
            let a = reply.expect("available").into_agent().expect("an agent");
            let conv = a
                .offers
                .iter()
                .next()
                .cloned()
                .expect("star was offered a conversation");
            set_state(&mut self.f, "star", Presence::Idle);
            self.customer_end(conv);
            let c = self.arrive(mode.waiting_ep());
            assert!(c.offer.is_none());
            self.drain();
        }
        timed
    }
}

fn routing(c: &mut Criterion) {
    for waiting in [10usize, 1_000, 100_000] {
        for agents in [10usize, 1_000, 10_000] {
            let mut g = c.benchmark_group(format!("routing/w{waiting}/a{agents}"));
            g.throughput(Throughput::Elements(1));
            for mode in [Mode::Plain, Mode::Skills] {
                // Built before criterion starts the clock: a build inside the first
                // warm-up call would end the warm-up after one iteration and leave the
                // estimate to a cold one. Dropped at the end of the mode.
                let mut bed = Bed::new(mode, waiting, agents);
                let id = |what: &str| BenchmarkId::new(what, mode.name());
                g.bench_function(id("arrival_offered"), |b| {
                    b.iter_custom(|iters| bed.arrivals(iters, mode.offered_ep(), true))
                });
                g.bench_function(id("arrival_waits"), |b| {
                    b.iter_custom(|iters| bed.arrivals(iters, mode.waiting_ep(), false))
                });
                g.bench_function(id("agent_free"), |b| b.iter_custom(|iters| bed.agent_free(iters, mode)));
            }
            g.finish();
        }
    }
}

fn config() -> Criterion {
    // 54 cases on a 2-core machine shared with builds: short runs; each case's untimed
    // put-back costs more than its timed command, so wall time is about 3× these. No
    // plots: the figures go to BENCHMARKS.md.
    Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(200))
        .measurement_time(Duration::from_millis(600))
        .without_plots()
}

criterion_group! {
    name = benches;
    config = config();
    targets = routing
}
criterion_main!(benches);
