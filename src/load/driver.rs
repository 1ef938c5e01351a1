//! The scenario: customers arrive, agents take offers and hold conversations, a share of
//! agents lets offers expire, some conversations are transferred or conferenced; the
//! checker follows the engine's facts; a ticker closes the intervals.
//!
//! Everything runs as tasks on the current (single-threaded) actix arbiter, so the state
//! they share is in `Rc<RefCell<..>>` and no lock is taken. Each agent has one dispatcher
//! task reading its desktop, and one task per conversation it was offered.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, HashSet};
use std::rc::Rc;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};
use tokio::sync::Semaphore;

use super::backend::{Backend, Desk, DeskEvent, Facts, Failure, Setup};
use super::check::Checker;
use super::report::{Checks, Report};
use super::skills;
use super::stats::{Metric, Stats};
use super::{LoadError, Options};
use crate::core::{OfferKind, Presence};

/// What happens to a conversation beyond the plain lifecycle, decided at arrival.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Plan {
    Plain,
    TransferToAgent,
    TransferToQueue,
    Conference,
}

/// A conversation the harness follows, from its first offer to its completion.
struct Track {
    /// When the customer's first message was sent.
    arrived: Instant,
    /// Taken by the first owner that carries it out.
    plan: Plan,
    accepted_once: bool,
}

struct Agent {
    id: String,
    /// Lets every other offer expire (RONA), then sets itself available again.
    lazy: bool,
}

/// The state every task shares.
struct Run<B: Backend> {
    backend: B,
    opts: Options,
    queues: Vec<String>,
    agents: Vec<Agent>,
    stats: RefCell<Stats>,
    /// Customer id → (first message sent, plan), until the first offer names the conversation.
    arriving: RefCell<HashMap<String, (Instant, Plan)>>,
    tracks: RefCell<HashMap<String, Track>>,
    checker: RefCell<Checker>,
    /// Open conversations allowed at once; a permit comes back when one completes.
    open: Semaphore,
    rng: RefCell<StdRng>,
    stopping: Cell<bool>,
}

const RACE_CODES: &[&str] = &[
    "offer_expired",
    "not_offered_to_you",
    "conversation_ended",
    "agent_unavailable",
    "not_in_conversation",
    "not_guest",
    "no_conference",
];

impl<B: Backend> Run<B> {
    fn failed(&self, what: &str, f: &Failure, racy: bool) {
        let code = format!("{what}: {}", f.code);
        if racy && RACE_CODES.contains(&f.code.as_str()) {
            self.stats.borrow_mut().race(&code);
        } else {
            self.stats.borrow_mut().error(&code);
        }
    }

    fn record(&self, m: Metric, since: Instant) {
        self.stats.borrow_mut().record(m, since.elapsed());
    }

    fn other_agent(&self, me: usize) -> usize {
        let n = self.agents.len();
        (me + self.rng.borrow_mut().gen_range(1..n)) % n
    }

    async fn think(&self) {
        if self.opts.think_ms > 0 {
            actix_rt::time::sleep(Duration::from_millis(self.opts.think_ms)).await;
        }
    }
}

/// Runs the scenario against `backend` and reports.
pub async fn drive<B: Backend>(backend: B, opts: Options) -> Result<Report, LoadError> {
    let queues: Vec<String> = (1..=opts.queues).map(|i| format!("q{i}")).collect();
    let mut rng = StdRng::seed_from_u64(opts.seed);
    let lazy_agents = (opts.agents as f64 * opts.rona_share).round() as usize;
    let agents: Vec<Agent> = (0..opts.agents)
        .map(|i| Agent {
            id: format!("load-{i}"),
            lazy: i < lazy_agents,
        })
        .collect();
    // Each agent serves its own queue and, with several queues, the next one too.
    let serves = |i: usize| -> Vec<usize> {
        let mut qs = vec![i % queues.len()];
        if queues.len() > 1 {
            qs.push((i + 1) % queues.len());
        }
        qs
    };
    let mut setup = Setup {
        queues: queues.clone(),
        agents: agents
            .iter()
            .enumerate()
            .map(|(i, a)| {
                let qs = serves(i).into_iter().map(|q| queues[q].clone()).collect();
                (a.id.clone(), qs, opts.capacity)
            })
            .collect(),
        ..Default::default()
    };
    if opts.skills {
        let mut skill_rng = StdRng::seed_from_u64(rng.gen());
        setup.skills = agents
            .iter()
            .enumerate()
            .map(|(i, a)| (a.id.clone(), skills::agent_skills(&mut skill_rng, &serves(i))))
            .collect();
        setup.steps = queues
            .iter()
            .enumerate()
            .map(|(i, q)| (q.clone(), skills::steps(i, opts.step_ms)))
            .collect();
    }
    let mut checker = Checker::new(agents.iter().map(|a| (a.id.clone(), opts.capacity)));
    if opts.skills {
        checker = checker.with_routing(skills::Book {
            skills: setup.skills.clone(),
            steps: setup.steps.clone(),
        });
    }
    backend
        .setup(&setup)
        .await
        .map_err(|f| LoadError::Setup(format!("creating queues and agents: {}", f.code)))?;
    let max_open = opts.max_open.unwrap_or(opts.agents * opts.capacity as usize * 2).max(1);
    let run = Rc::new(Run {
        checker: RefCell::new(checker),
        backend,
        queues,
        agents,
        stats: RefCell::new(Stats::default()),
        arriving: RefCell::new(HashMap::new()),
        tracks: RefCell::new(HashMap::new()),
        open: Semaphore::new(max_open),
        rng: RefCell::new(StdRng::seed_from_u64(rng.gen())),
        stopping: Cell::new(false),
        opts,
    });

    // The checker sees every fact from before the first agent becomes available.
    let facts = run.backend.facts();
    actix_rt::spawn(check_facts(run.clone(), facts));
    for i in 0..run.agents.len() {
        let desk = run
            .backend
            .connect(&run.agents[i].id)
            .await
            .map_err(|f| LoadError::Setup(format!("connecting agent desktops: {}", f.code)))?;
        actix_rt::spawn(agent_loop(run.clone(), i, desk));
    }
    for a in &run.agents {
        run.backend
            .set_state(&a.id, Presence::Available)
            .await
            .map_err(|f| LoadError::Setup(format!("setting agents available: {}", f.code)))?;
    }

    let progress = progress_bar(&run.opts);
    let start = Instant::now();
    let ticker = actix_rt::spawn(tick(run.clone(), start, progress.clone()));
    arrivals(&run, start).await;
    let arrival_phase = start.elapsed();
    let completed_in_phase = run.checker.borrow().completed;

    // Drain: wait for every open conversation to complete.
    let drain_deadline = Instant::now() + run.opts.drain_timeout;
    while Instant::now() < drain_deadline {
        let pending = run.checker.borrow().incomplete() + run.arriving.borrow().len();
        if pending == 0 && run.stats.borrow().arrivals == run.checker.borrow().completed + errors_on_arrival(&run) {
            break;
        }
        actix_rt::time::sleep(Duration::from_millis(10)).await;
    }
    run.stopping.set(true);
    ticker.abort();
    let elapsed = start.elapsed();
    {
        let completed = run.checker.borrow().completed;
        let t = elapsed.as_secs_f64();
        let last = run.stats.borrow().series.last().map_or(0.0, |i| i.t_s);
        run.stats.borrow_mut().tick(t, t - last, completed);
    }
    progress.finish_and_clear();
    run.checker.borrow_mut().finish();
    // Say what the engine holds for conversations that never completed, so a failed run
    // explains itself.
    let stuck = run.checker.borrow().some_incomplete(3);
    for id in stuck {
        let said = run.backend.describe(&id).await;
        run.checker.borrow_mut().note(format!("{id} on the engine: {said}"));
    }

    let checker = run.checker.borrow();
    let stats = run.stats.borrow();
    Ok(Report::new(
        &run.opts,
        &stats,
        arrival_phase,
        elapsed,
        completed_in_phase,
        Checks {
            passed: checker.passed(),
            violation_count: checker.violation_count,
            violations: checker.violations.clone(),
            lost_facts: checker.lost,
            completed: checker.completed,
            incomplete: checker.incomplete() as u64,
            offers_by_step: checker.offers_by_step.clone(),
        },
    ))
}

/// Arrivals refused by the engine never open a conversation.
fn errors_on_arrival<B: Backend>(run: &Run<B>) -> u64 {
    run.stats
        .borrow()
        .errors
        .iter()
        .filter(|(k, _)| k.starts_with("customer_message:"))
        .map(|(_, n)| n)
        .sum()
}

fn progress_bar(opts: &Options) -> ProgressBar {
    let pb = match opts.conversations {
        Some(n) => ProgressBar::new(n),
        None => ProgressBar::new(opts.duration.as_secs().max(1)),
    };
    if opts.quiet {
        pb.set_draw_target(ProgressDrawTarget::hidden());
    }
    let template = "{elapsed_precise} [{bar:30}] {pos}/{len} {msg}";
    if let Ok(style) = ProgressStyle::with_template(template) {
        pb.set_style(style.progress_chars("=> "));
    }
    pb
}

/// Sends customers until `--duration` or `--conversations`, at `--rate` if given, never
/// with more than `--max-open` conversations open.
async fn arrivals<B: Backend>(run: &Rc<Run<B>>, start: Instant) {
    let opts = &run.opts;
    let mut n: u64 = 0;
    loop {
        if opts.conversations.is_some_and(|max| n >= max) {
            break;
        }
        let left = match opts.duration.checked_sub(start.elapsed()) {
            Some(d) if !d.is_zero() => d,
            _ => break,
        };
        if opts.rate > 0.0 {
            let due = Duration::from_secs_f64(n as f64 / opts.rate);
            if let Some(wait) = due.checked_sub(start.elapsed()) {
                if wait > Duration::from_micros(500) {
                    actix_rt::time::sleep(wait.min(left)).await;
                    continue;
                }
            }
        }
        match actix_rt::time::timeout(left, run.open.acquire()).await {
            Ok(Ok(permit)) => permit.forget(),
            _ => break,
        }
        n += 1;
        customer(run, n);
        if n % 64 == 0 {
            // Let the agents run: arrivals must not starve the tasks that complete them.
            actix_rt::task::yield_now().await;
        }
    }
}

/// One customer: writes the first message of a new conversation. Counted and booked
/// before the task is spawned, so the drain never misses an arrival still to be sent.
fn customer<B: Backend>(run: &Rc<Run<B>>, n: u64) {
    let id = format!("cust-{n}");
    let entry_point = format!("ep-{}", run.queues[n as usize % run.queues.len()]);
    let priority = if run.opts.skills {
        skills::priority(&mut *run.rng.borrow_mut())
    } else {
        None
    };
    let plan = {
        let opts = &run.opts;
        let x: f64 = run.rng.borrow_mut().gen();
        if x < opts.transfer_share / 2.0 {
            Plan::TransferToAgent
        } else if x < opts.transfer_share {
            Plan::TransferToQueue
        } else if x < opts.transfer_share + opts.conference_share {
            Plan::Conference
        } else {
            Plan::Plain
        }
    };
    // Before sending: the offer may reach the agent before the answer reaches us.
    run.arriving.borrow_mut().insert(id.clone(), (Instant::now(), plan));
    run.stats.borrow_mut().arrivals += 1;
    let run = run.clone();
    actix_rt::spawn(async move {
        if let Err(f) = run
            .backend
            .customer_message(&entry_point, &id, "Hello, I need help", priority)
            .await
        {
            run.failed("customer_message", &f, false);
            run.arriving.borrow_mut().remove(&id);
            run.open.add_permits(1);
        }
    });
}

/// Follows the engine's facts: the checks, and a permit back for each completion.
async fn check_facts<B: Backend>(run: Rc<Run<B>>, mut facts: B::Facts) {
    while let Some(fact) = facts.next().await {
        let done = run.checker.borrow_mut().apply(fact);
        if let Some(conversation) = done {
            run.tracks.borrow_mut().remove(&conversation);
            if !run.stopping.get() {
                run.open.add_permits(1);
            }
        }
    }
}

/// Closes an interval every `--interval-ms` and updates the progress bar.
async fn tick<B: Backend>(run: Rc<Run<B>>, start: Instant, pb: ProgressBar) {
    let every = Duration::from_millis(run.opts.interval_ms.max(10));
    let mut last = Instant::now();
    loop {
        actix_rt::time::sleep(every).await;
        let now = Instant::now();
        let completed = run.checker.borrow().completed;
        let dt = now.duration_since(last).as_secs_f64();
        last = now;
        let mut stats = run.stats.borrow_mut();
        let i = stats.tick(start.elapsed().as_secs_f64(), dt, completed);
        let p99 = |m: Metric| i.latencies.get(&m).map_or(0.0, |s| s.p99_us as f64 / 1000.0);
        pb.set_message(format!(
            "{:.0} lifecycles/s  p99 offer {:.2} ms  lifecycle {:.2} ms  ({} done)",
            i.lifecycles_per_s,
            p99(Metric::ArrivalToOffer),
            p99(Metric::Lifecycle),
            completed
        ));
        match run.opts.conversations {
            Some(_) => pb.set_position(stats.arrivals),
            None => pb.set_position(start.elapsed().as_secs()),
        }
    }
}

/// Routes one agent's desktop events to its conversation tasks.
async fn agent_loop<B: Backend>(run: Rc<Run<B>>, me: usize, mut desk: B::Desk) {
    let routes: Rc<RefCell<HashMap<String, UnboundedSender<DeskEvent>>>> = Rc::default();
    let mut offers: u64 = 0;
    while let Some(event) = desk.next().await {
        match event {
            DeskEvent::Offer {
                conversation,
                customer,
                kind,
            } => {
                run.stats.borrow_mut().offers += 1;
                if kind == OfferKind::New {
                    if let Some((arrived, plan)) = run.arriving.borrow_mut().remove(&customer) {
                        run.record(Metric::ArrivalToOffer, arrived);
                        run.tracks.borrow_mut().insert(
                            conversation.clone(),
                            Track {
                                arrived,
                                plan,
                                accepted_once: false,
                            },
                        );
                    }
                }
                offers += 1;
                if run.agents[me].lazy && offers % 2 == 1 {
                    // Let it expire: the engine puts us in RONA, and we come back below.
                    run.stats.borrow_mut().expired_on_purpose += 1;
                    continue;
                }
                let (tx, rx) = unbounded_channel();
                routes.borrow_mut().insert(conversation.clone(), tx.clone());
                let inbox = Inbox::new(rx);
                actix_rt::spawn(conversation_task(
                    run.clone(),
                    me,
                    conversation,
                    kind,
                    inbox,
                    routes.clone(),
                    tx,
                ));
            }
            DeskEvent::StateChanged { state: Presence::Rona } => {
                let run = run.clone();
                actix_rt::spawn(async move {
                    if let Err(f) = run.backend.set_state(&run.agents[me].id, Presence::Available).await {
                        run.failed("set_state available after rona", &f, false);
                    }
                });
            }
            other => {
                if let Some(c) = other.conversation() {
                    if let Some(tx) = routes.borrow().get(c) {
                        let _ = tx.send(other);
                    }
                }
            }
        }
    }
    if !run.stopping.get() {
        run.stats.borrow_mut().error("desktop disconnected");
    }
}

/// The events of one conversation as one agent sees them, and what they showed so far.
struct Inbox {
    rx: UnboundedReceiver<DeskEvent>,
    /// Sequence numbers of this agent's own messages seen.
    echoes: HashSet<u64>,
    joined: bool,
    left: bool,
    refused: bool,
    ended: bool,
}

impl Inbox {
    fn new(rx: UnboundedReceiver<DeskEvent>) -> Self {
        Inbox {
            rx,
            echoes: HashSet::new(),
            joined: false,
            left: false,
            refused: false,
            ended: false,
        }
    }

    /// Reads events until `done` holds, the conversation ends, or `timeout` passes;
    /// answers whether `done` holds.
    async fn until(&mut self, me: &str, timeout: Duration, done: impl Fn(&Inbox) -> bool) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        while !done(self) && !self.ended {
            let event = match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                Ok(Some(e)) => e,
                _ => break,
            };
            match event {
                DeskEvent::Message { seq, agent, .. } if agent.as_deref() == Some(me) => {
                    self.echoes.insert(seq);
                }
                DeskEvent::ParticipantJoined { .. } => self.joined = true,
                DeskEvent::ParticipantLeft { .. } => self.left = true,
                DeskEvent::ConferenceNotAccepted { .. } => self.refused = true,
                DeskEvent::ConversationEnded { .. } => self.ended = true,
                _ => {}
            }
        }
        done(self)
    }
}

/// How long to wait for an event the engine owes us before counting it missing.
const EVENT_TIMEOUT: Duration = Duration::from_secs(10);

async fn conversation_task<B: Backend>(
    run: Rc<Run<B>>,
    me: usize,
    conversation: String,
    kind: OfferKind,
    mut inbox: Inbox,
    routes: Rc<RefCell<HashMap<String, UnboundedSender<DeskEvent>>>>,
    tx: UnboundedSender<DeskEvent>,
) {
    match kind {
        OfferKind::New | OfferKind::Transfer => owner(&run, me, &conversation, kind, &mut inbox).await,
        OfferKind::Conference => guest(&run, me, &conversation, &mut inbox).await,
    }
    // The same conversation may have been offered to us again meanwhile: keep that route.
    let mut routes = routes.borrow_mut();
    if routes.get(&conversation).is_some_and(|t| t.same_channel(&tx)) {
        routes.remove(&conversation);
    }
}

/// Sends one agent message and waits for its answer and its echo.
/// `racy`: the conversation may end meanwhile (a conference guest's message).
async fn exchange<B: Backend>(
    run: &Run<B>,
    me: &str,
    conversation: &str,
    inbox: &mut Inbox,
    text: &str,
    racy: bool,
) -> bool {
    let t = Instant::now();
    let seq = match run.backend.send(me, conversation, text).await {
        Ok(seq) => seq,
        Err(f) => {
            run.failed("send", &f, racy);
            return false;
        }
    };
    if inbox.until(me, EVENT_TIMEOUT, |i| i.echoes.contains(&seq)).await {
        run.record(Metric::AgentMessageRoundTrip, t);
        true
    } else {
        if !inbox.ended {
            run.stats.borrow_mut().error("send: echo never arrived");
        } else if !racy {
            run.stats.borrow_mut().error("send: conversation ended before the echo");
        }
        false
    }
}

/// The owner's part: accept, talk, maybe transfer or conference, end, wrap up.
async fn owner<B: Backend>(run: &Rc<Run<B>>, me_i: usize, conversation: &str, kind: OfferKind, inbox: &mut Inbox) {
    let me = run.agents[me_i].id.as_str();
    run.think().await;
    let t = Instant::now();
    if let Err(f) = run.backend.accept(me, conversation).await {
        run.failed("accept", &f, true);
        return;
    }
    run.record(Metric::AcceptAck, t);
    run.stats.borrow_mut().accepted += 1;
    let (arrived, plan) = {
        let mut tracks = run.tracks.borrow_mut();
        match tracks.get_mut(conversation) {
            Some(track) => {
                if kind == OfferKind::New && !track.accepted_once {
                    track.accepted_once = true;
                    run.record(Metric::QueueWait, track.arrived);
                }
                (Some(track.arrived), std::mem::replace(&mut track.plan, Plan::Plain))
            }
            None => (None, Plan::Plain),
        }
    };
    let mut conferenced = false;
    for i in 0..run.opts.replies {
        if let Err(f) = run.backend.customer_reply(conversation, "One more thing").await {
            run.failed("customer_reply", &f, false);
            break;
        }
        if !exchange(run, me, conversation, inbox, "Happy to help", false).await {
            break;
        }
        if i == 0 {
            match plan {
                Plan::Plain => {}
                Plan::TransferToAgent | Plan::TransferToQueue => {
                    if transfer(run, me_i, conversation, plan).await {
                        run.stats.borrow_mut().transfers += 1;
                        wrapup(run, me, conversation).await;
                        return;
                    }
                }
                Plan::Conference => conferenced = conference(run, me_i, conversation, inbox).await,
            }
        }
    }
    if conferenced && inbox.joined {
        // Give the guest the time to say its word and leave; ending also ends it for the guest.
        inbox.until(me, EVENT_TIMEOUT, |i| i.left).await;
    }
    if let Err(f) = run.backend.end(me, conversation).await {
        run.failed("end", &f, false);
        return;
    }
    if wrapup(run, me, conversation).await {
        if let Some(arrived) = arrived {
            run.record(Metric::Lifecycle, arrived);
        }
    }
}

async fn wrapup<B: Backend>(run: &Run<B>, me: &str, conversation: &str) -> bool {
    match run.backend.wrapup(me, conversation, "resolved").await {
        Ok(()) => true,
        Err(f) => {
            run.failed("wrapup", &f, false);
            false
        }
    }
}

/// Transfers to another agent (up to three tries, targets may be busy) or to a queue.
async fn transfer<B: Backend>(run: &Run<B>, me_i: usize, conversation: &str, plan: Plan) -> bool {
    let me = run.agents[me_i].id.as_str();
    if plan == Plan::TransferToQueue {
        let q = run.queues[run.rng.borrow_mut().gen_range(0..run.queues.len())].clone();
        return match run.backend.transfer_to_queue(me, conversation, &q).await {
            Ok(()) => true,
            Err(f) => {
                run.failed("transfer_to_queue", &f, false);
                false
            }
        };
    }
    if run.agents.len() < 2 {
        return false;
    }
    for _ in 0..3 {
        let target = &run.agents[run.other_agent(me_i)].id;
        match run.backend.transfer_to_agent(me, conversation, target).await {
            Ok(()) => return true,
            Err(f) => run.failed("transfer_to_agent", &f, true),
        }
    }
    false
}

/// Invites another agent (up to three tries) and waits for its answer.
async fn conference<B: Backend>(run: &Run<B>, me_i: usize, conversation: &str, inbox: &mut Inbox) -> bool {
    let me = run.agents[me_i].id.as_str();
    if run.agents.len() < 2 {
        return false;
    }
    for _ in 0..3 {
        let target = &run.agents[run.other_agent(me_i)].id;
        match run.backend.conference(me, conversation, target).await {
            Ok(()) => {
                let wait = Duration::from_millis(run.opts.offer_timeout_ms) + EVENT_TIMEOUT;
                inbox.until(me, wait, |i| i.joined || i.refused).await;
                return true;
            }
            Err(f) => run.failed("conference", &f, true),
        }
    }
    false
}

/// The conference guest: accept, one message, leave, wrap up.
async fn guest<B: Backend>(run: &Rc<Run<B>>, me_i: usize, conversation: &str, inbox: &mut Inbox) {
    let me = run.agents[me_i].id.as_str();
    run.think().await;
    let t = Instant::now();
    if let Err(f) = run.backend.accept(me, conversation).await {
        run.failed("accept conference", &f, true);
        return;
    }
    run.record(Metric::AcceptAck, t);
    run.stats.borrow_mut().conferences += 1;
    exchange(run, me, conversation, inbox, "Joining to help", true).await;
    if let Err(f) = run.backend.exit_conference(me, conversation).await {
        // The owner may have ended the chat meanwhile: we owe the wrap-up all the same.
        run.failed("exit_conference", &f, true);
    }
    wrapup(run, me, conversation).await;
}
