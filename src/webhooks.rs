//! The webhook sender: carries out events out (../shared/API.md "Reports and events
//! out"; docs/WEBHOOKS.md). What is sent, when a subscription is failing, how retries
//! back off and how far a backlog grows are the core's rules (`core/webhooks.rs`); this
//! shell POSTs, signs, waits and reports.
//!
//! Each subscription has [`LANES`] lanes; an event goes to the lane of its key (its
//! conversation, or its agent), and a lane sends one event at a time, retrying it until
//! it goes through, so one key's events arrive in order while different conversations
//! go out side by side. The sender reports each subscription's progress to the engine
//! ([`Command::WebhookProgress`]) every `report_ms`: its cursor (the events before the
//! oldest still waiting are done), what it dropped, and whether it is failing. Events
//! are durable before the sender hears of them; after a restart, those past the durable
//! cursor are sent again (at least once: a receiver deduplicates by the event id).

use std::cell::{Cell, RefCell};
use std::collections::{BTreeSet, HashMap, VecDeque};
use std::hash::{Hash, Hasher};
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::{Arbiter, ArbiterHandle};
use tokio::sync::{mpsc, watch, Notify};

use crate::actors::Clock;
use crate::core::webhooks::{Delivery, Failing, Progress, Webhook, WebhookEvent};
use crate::core::Command;
use crate::engine::Engine;

/// Lanes per subscription: how many of its events may be in flight at once (each of a
/// different conversation or agent).
pub const LANES: usize = 4;

/// How the sender works (`[webhooks]` in the config, without `allow_private`, which the
/// API checks when a subscription is made).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    pub delivery: Delivery,
    /// One delivery attempt's time limit.
    pub timeout_ms: u64,
    /// How often progress is reported to the engine (and so made durable).
    pub report_ms: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            delivery: Delivery {
                retry_base_ms: 1_000,
                retry_max_ms: 60_000,
                max_backlog: 100_000,
            },
            timeout_ms: 5_000,
            report_ms: 250,
        }
    }
}

enum Msg {
    /// Start over with these subscriptions and stored events (an engine's start or rebuild).
    Reset(Vec<Webhook>, Vec<WebhookEvent>),
    /// The subscriptions now (one was made or deleted).
    Hooks(Arc<Vec<Webhook>>),
    Event(Arc<WebhookEvent>),
}

/// A tenant's sender. Its task starts with the first subscription.
pub struct Sender {
    settings: Settings,
    clock: Arc<dyn Clock>,
    /// Where the task runs: a shared arbiter, or (`None`) one of its own, made when needed.
    arbiter: Option<ArbiterHandle>,
    own: Mutex<Option<Arbiter>>,
    tx: Mutex<Option<mpsc::UnboundedSender<Msg>>>,
    engine_tx: watch::Sender<Option<Engine>>,
}

impl Sender {
    pub fn new(settings: Settings, clock: Arc<dyn Clock>, arbiter: Option<ArbiterHandle>) -> Arc<Sender> {
        let (engine_tx, _) = watch::channel(None);
        Arc::new(Sender {
            settings,
            clock,
            arbiter,
            own: Mutex::new(None),
            tx: Mutex::new(None),
            engine_tx,
        })
    }

    /// Progress reports go to `engine` from now on.
    pub fn attach(&self, engine: Engine) {
        // Kept even before the task (its receiver) exists.
        self.engine_tx.send_replace(Some(engine));
    }

    /// Stops sending (the engine stops): what waits stays in the store.
    pub fn stop(&self) {
        if let Ok(mut tx) = self.tx.lock() {
            tx.take();
        }
        self.engine_tx.send_replace(None);
        if let Ok(mut own) = self.own.lock() {
            if let Some(a) = own.take() {
                a.stop();
            }
        }
    }

    /// The subscriptions and the stored events, at the engine's start or rebuild.
    pub fn resume(&self, hooks: Vec<Webhook>, events: Vec<WebhookEvent>) {
        let running = self.tx.lock().map(|tx| tx.is_some()).unwrap_or(false);
        if hooks.is_empty() && !running {
            return;
        }
        self.send(Msg::Reset(hooks, events));
    }

    /// The subscriptions changed.
    pub fn hooks(&self, hooks: Arc<Vec<Webhook>>) {
        self.send(Msg::Hooks(hooks));
    }

    /// An event, durable already.
    pub fn event(&self, event: Arc<WebhookEvent>) {
        self.send(Msg::Event(event));
    }

    fn send(&self, msg: Msg) {
        let Ok(mut tx) = self.tx.lock() else { return };
        if tx.is_none() {
            let (t, rx) = mpsc::unbounded_channel();
            let handle = match &self.arbiter {
                Some(a) => a.clone(),
                None => {
                    let Ok(mut own) = self.own.lock() else { return };
                    own.get_or_insert_with(Arbiter::new).handle()
                }
            };
            let (settings, clock, engine) = (self.settings, self.clock.clone(), self.engine_tx.subscribe());
            // The task is made on its own thread: it holds what cannot cross threads.
            handle.spawn_fn(move || {
                let task = Task {
                    settings,
                    clock,
                    engine,
                    client: RefCell::new(None),
                    last_seen: Cell::new(0),
                    subs: RefCell::new(HashMap::new()),
                    published: Cell::new(0),
                };
                actix_rt::spawn(async move { Rc::new(task).run(rx).await });
            });
            *tx = Some(t);
        }
        if let Some(t) = tx.as_ref() {
            let _ = t.send(msg);
        }
    }
}

/// The sender's task, on one thread.
struct Task {
    settings: Settings,
    clock: Arc<dyn Clock>,
    engine: watch::Receiver<Option<Engine>>,
    /// Made on the task's thread (an HTTP client is not `Send`).
    client: RefCell<Option<awc::Client>>,
    /// The highest event number heard of (every subscription's cursor reaches it once
    /// nothing of its own waits).
    last_seen: Cell<u64>,
    subs: RefCell<HashMap<String, Rc<Sub>>>,
    /// This task's share of `switchboard_webhook_backlog`.
    published: Cell<i64>,
}

/// One subscription's delivery state.
struct Sub {
    hook: Webhook,
    lanes: Vec<Lane>,
    /// Events queued in its lanes, by number.
    waiting: RefCell<BTreeSet<u64>>,
    /// Its events' failures in a row (any lane); 0 after a success.
    failures: Cell<u32>,
    failing: RefCell<Option<Failing>>,
    dropped: Cell<u64>,
    /// What was last reported: (cursor, failing or not).
    reported: Cell<(u64, bool)>,
    gone: Cell<bool>,
}

#[derive(Default)]
struct Lane {
    queue: RefCell<VecDeque<Arc<WebhookEvent>>>,
    /// The front event is being sent (or waits to be tried again).
    busy: Cell<bool>,
    ready: Notify,
}

fn lane_of(key: &str) -> usize {
    let mut h = std::hash::DefaultHasher::new();
    key.hash(&mut h);
    (h.finish() % LANES as u64) as usize
}

impl Task {
    async fn run(self: Rc<Self>, mut rx: mpsc::UnboundedReceiver<Msg>) {
        let reporter = {
            let me = self.clone();
            actix_rt::spawn(async move { me.report_loop().await })
        };
        while let Some(msg) = rx.recv().await {
            match msg {
                Msg::Reset(hooks, events) => {
                    self.subs.borrow_mut().drain().for_each(|(_, s)| s.retire());
                    for h in hooks {
                        self.last_seen.set(self.last_seen.get().max(h.delivered_through));
                        self.add(h);
                    }
                    for e in events {
                        self.event(Arc::new(e));
                    }
                }
                Msg::Hooks(hooks) => {
                    let keep: BTreeSet<&str> = hooks.iter().map(|h| h.id.as_str()).collect();
                    self.subs.borrow_mut().retain(|id, s| {
                        let stays = keep.contains(id.as_str());
                        if !stays {
                            s.retire();
                        }
                        stays
                    });
                    for h in hooks.iter() {
                        if !self.subs.borrow().contains_key(&h.id) {
                            self.add(h.clone());
                        }
                    }
                }
                Msg::Event(e) => self.event(e),
            }
            self.publish_backlog();
        }
        self.subs.borrow().values().for_each(|s| s.retire());
        // What this sender still held is no longer its share of the gauge.
        crate::metrics::WEBHOOK_BACKLOG.sub(self.published.replace(0));
        reporter.abort();
    }

    fn add(self: &Rc<Self>, hook: Webhook) {
        let sub = Rc::new(Sub {
            reported: Cell::new((hook.delivered_through, hook.failing.is_some())),
            failing: RefCell::new(hook.failing.clone()),
            hook,
            lanes: (0..LANES).map(|_| Lane::default()).collect(),
            waiting: RefCell::new(BTreeSet::new()),
            failures: Cell::new(0),
            dropped: Cell::new(0),
            gone: Cell::new(false),
        });
        for lane in 0..LANES {
            let (me, s) = (self.clone(), sub.clone());
            actix_rt::spawn(async move { me.lane_loop(s, lane).await });
        }
        self.subs.borrow_mut().insert(sub.hook.id.clone(), sub);
    }

    fn event(&self, e: Arc<WebhookEvent>) {
        self.last_seen.set(self.last_seen.get().max(e.seq));
        let max = self.settings.delivery.max_backlog.max(1);
        for s in self.subs.borrow().values() {
            if !s.hook.wants(e.seq, e.kind) {
                continue;
            }
            let lane = &s.lanes[lane_of(&e.key)];
            lane.queue.borrow_mut().push_back(e.clone());
            s.waiting.borrow_mut().insert(e.seq);
            lane.ready.notify_one();
            while s.waiting.borrow().len() > max {
                if !s.drop_oldest() {
                    break;
                }
            }
        }
    }

    /// Moves the deployment's backlog gauge by this task's change since it last did: each
    /// tenant's sender owns a share of the sum.
    fn publish_backlog(&self) {
        let now = self.backlog() as i64;
        crate::metrics::WEBHOOK_BACKLOG.add(now - self.published.replace(now));
    }

    fn backlog(&self) -> usize {
        self.subs.borrow().values().map(|s| s.waiting.borrow().len()).sum()
    }

    fn client(&self) -> awc::Client {
        self.client
            .borrow_mut()
            .get_or_insert_with(|| {
                awc::Client::builder()
                    .timeout(Duration::from_millis(self.settings.timeout_ms))
                    .add_default_header((
                        "User-Agent",
                        concat!("Switchboard-Webhooks/", env!("CARGO_PKG_VERSION")),
                    ))
                    .finish()
            })
            .clone()
    }

    /// Sends one lane's events, each until it goes through, in order.
    async fn lane_loop(self: Rc<Self>, sub: Rc<Sub>, lane: usize) {
        let l = &sub.lanes[lane];
        let mut failures = 0u32;
        loop {
            if sub.gone.get() {
                return;
            }
            let front = l.queue.borrow().front().cloned();
            let Some(event) = front else {
                l.ready.notified().await;
                continue;
            };
            // Busy until it goes through, retries and their waits included: the event a
            // lane holds is never the one the backlog's bound drops.
            l.busy.set(true);
            let outcome = self.post(&sub.hook, &event).await;
            match outcome {
                Ok(()) => {
                    failures = 0;
                    crate::metrics::WEBHOOK_DELIVERIES
                        .with_label_values(&["delivered"])
                        .inc();
                    // The front may have been dropped meanwhile (it never is while busy).
                    let mut q = l.queue.borrow_mut();
                    if q.front().is_some_and(|f| f.seq == event.seq) {
                        q.pop_front();
                    }
                    l.busy.set(false);
                    sub.waiting.borrow_mut().remove(&event.seq);
                    sub.failures.set(0);
                    sub.failing.borrow_mut().take();
                }
                Err(error) => {
                    failures += 1;
                    crate::metrics::WEBHOOK_DELIVERIES.with_label_values(&["failed"]).inc();
                    tracing::warn!(webhook = %sub.hook.id, event = event.seq, kind = event.kind.as_str(), %error, "webhook delivery failed");
                    sub.failures.set(sub.failures.get() + 1);
                    if Delivery::is_failing(sub.failures.get()) {
                        let mut f = sub.failing.borrow_mut();
                        let since = f.as_ref().map_or(self.clock.now(), |f| f.since);
                        *f = Some(Failing { since, error });
                    }
                    let wait = self.settings.delivery.retry_delay_ms(failures);
                    actix_rt::time::sleep(Duration::from_millis(wait)).await;
                }
            }
            self.publish_backlog();
        }
    }

    /// One attempt: a 2xx answer is a delivery.
    async fn post(&self, hook: &Webhook, event: &WebhookEvent) -> Result<(), String> {
        // The same `sha256=<hex HMAC-SHA256>` form as Meta's `X-Hub-Signature-256`.
        let signature = crate::channels::messenger::webhook::sign(hook.secret.as_bytes(), event.body.as_bytes());
        let request = self
            .client()
            .post(&hook.url)
            .insert_header(("Content-Type", "application/json"))
            .insert_header(("X-Switchboard-Event", event.kind.as_str()))
            .insert_header(("X-Switchboard-Event-Id", event.seq.to_string()))
            .insert_header(("X-Switchboard-Signature-256", signature));
        let mut res = request
            .send_body(event.body.clone())
            .await
            .map_err(|e| format!("request failed: {e}"))?;
        // The body is read (and dropped) so that the connection can be used again.
        let _ = res.body().limit(64 * 1024).await;
        if res.status().is_success() {
            Ok(())
        } else {
            Err(format!("HTTP {}", res.status().as_u16()))
        }
    }

    /// Reports every subscription's progress that moved, every `report_ms`.
    async fn report_loop(self: Rc<Self>) {
        let every = Duration::from_millis(self.settings.report_ms.max(10));
        loop {
            actix_rt::time::sleep(every).await;
            let engine = self.engine.borrow().clone();
            let Some(engine) = engine else { continue };
            let subs: Vec<Rc<Sub>> = self.subs.borrow().values().cloned().collect();
            for s in subs {
                let through = match s.waiting.borrow().first() {
                    Some(oldest) => oldest - 1,
                    None => self.last_seen.get(),
                };
                let failing = s.failing.borrow().clone();
                let dropped = s.dropped.get();
                if (through, failing.is_some()) == s.reported.get() && dropped == 0 {
                    continue;
                }
                let progress = Progress {
                    delivered_through: through,
                    dropped,
                    failing: failing.clone(),
                };
                let cmd = Command::WebhookProgress {
                    id: s.hook.id.clone(),
                    progress,
                };
                match engine.exec(cmd).await {
                    Ok(_) => {
                        s.reported.set((through, failing.is_some()));
                        s.dropped.set(s.dropped.get() - dropped);
                    }
                    Err(e) => tracing::warn!(webhook = %s.hook.id, error = %e, "webhook progress not recorded"),
                }
            }
        }
    }
}

impl Sub {
    /// The subscription is gone (deleted, or the sender starts over): its lanes end.
    fn retire(&self) {
        self.gone.set(true);
        self.lanes.iter().for_each(|l| l.ready.notify_one());
    }

    /// Drops the oldest event that is not being sent; false when there is none.
    fn drop_oldest(&self) -> bool {
        let oldest = self
            .lanes
            .iter()
            .enumerate()
            .filter_map(|(i, l)| {
                let skip = usize::from(l.busy.get());
                l.queue.borrow().get(skip).map(|e| (e.seq, i, skip))
            })
            .min();
        let Some((seq, lane, at)) = oldest else { return false };
        self.lanes[lane].queue.borrow_mut().remove(at);
        self.waiting.borrow_mut().remove(&seq);
        self.dropped.set(self.dropped.get() + 1);
        crate::metrics::WEBHOOK_DELIVERIES.with_label_values(&["dropped"]).inc();
        true
    }
}
