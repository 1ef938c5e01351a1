//! The outbox sender: delivers the outbox entries the core wrote, in order per
//! conversation, and reports each outcome back to the engine as a command.
//!
//! The entries are durable before they get here (the core writes them in the same commit
//! as the message), so this holds only what is in flight. Each conversation with
//! something to send has one task that sends its entries one after the other: an entry
//! waits until the one before it was accepted or finally failed. The tasks run on an
//! arbiter (thread) of their own, so a slow or dead Graph API never holds up the router
//! or another conversation: each request is async and bounded by `send_timeout_ms`.
//!
//! Why not the conversation's actor: it stops when the conversation ends, and the last
//! messages of a conversation (and those resumed after a restart, of conversations that
//! may be finished) still have to go out. The per-conversation task is the same order,
//! owned by the channel.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use actix::{Arbiter, ArbiterHandle};
use tokio::sync::{mpsc, watch, Notify};

use super::graph::{self, SendOutcome};
use super::metrics;
use crate::actors::conversation::CustomerChannel;
use crate::actors::Clock;
use crate::channels::files::FileStore;
use crate::config::MessengerConfig;
use crate::core::messenger::{
    give_up, ChannelState, MessengerCommand, OutboundFile, PageNote, SenderAction, ThreadCall,
};
use crate::core::{Command, ConversationId, Message, Millis, Outbound, OutboxOutcome};
use crate::engine::{Engine, Query, QueryReply};

/// The Messenger channel as the engine sees it ([`CustomerChannel`]).
pub struct Outbox {
    inner: Arc<Inner>,
}

struct Inner {
    config: MessengerConfig,
    arbiter: ArbiterHandle,
    /// Set once the engine runs; the tasks wait for it before reporting.
    engine: watch::Receiver<Option<Engine>>,
    engine_tx: watch::Sender<Option<Engine>>,
    /// The queue of each conversation that has a sending task. A task removes its entry
    /// (under this lock) when it finds its queue empty, so an entry is never left behind.
    queues: Mutex<HashMap<ConversationId, mpsc::UnboundedSender<Outbound>>>,
    /// Every entry not yet done, with when it was queued: the depth and the oldest age.
    waiting: Mutex<BTreeMap<(ConversationId, u64), Millis>>,
    clock: Arc<dyn Clock>,
    /// Each page's token and channel state, as the engine last said (filled from the
    /// engine's entry points on first use, then kept by [`CustomerChannel::page`]). The
    /// outbox entries hold no token: they take the page's token of the moment.
    pages: Mutex<HashMap<String, Page>>,
    /// Woken when a page's token or state changes (what waited for a token goes on).
    page_changed: Notify,
    /// The files agents sent (read when an entry carries one).
    files: Arc<FileStore>,
    /// This outbox's share of `switchboard_messenger_pages_unauthorized`: each tenant has
    /// an outbox, and the gauge is the deployment's sum ([`Inner::report_unauthorized`]).
    unauthorized: std::sync::atomic::AtomicI64,
    /// This outbox's share of `switchboard_messenger_outbox_depth` (the deployment's sum).
    reported_depth: std::sync::atomic::AtomicI64,
}

impl Drop for Inner {
    /// A deleted tenant's outbox takes its share out of the deployment's figures.
    fn drop(&mut self) {
        let depth = self.reported_depth.swap(0, std::sync::atomic::Ordering::SeqCst);
        metrics::OUTBOX_DEPTH.sub(depth);
        let oldest = metrics::OUTBOX_OLDEST_OF.forget(self.source());
        metrics::OUTBOX_OLDEST_AGE.set(oldest as i64);
        let unauthorized = self.unauthorized.swap(0, std::sync::atomic::Ordering::SeqCst);
        metrics::PAGES_UNAUTHORIZED.sub(unauthorized);
    }
}

/// What the sender knows of one page.
#[derive(Debug, Clone)]
struct Page {
    entry_point: String,
    token: Option<String>,
    state: ChannelState,
    /// Bumped on every change: a 190 for a token that was replaced meanwhile is not the
    /// new token's fault.
    generation: u64,
}

/// The outbox's figures for `/healthz`.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct OutboxFigures {
    pub depth: usize,
    pub oldest_age_ms: u64,
}

thread_local! {
    // One HTTP client (and its connection pool) per sender thread: awc's client is not Send.
    static CLIENT: awc::Client = awc::Client::default();
}

impl Outbox {
    /// Starts the sender's arbiter. Must run inside an actix system.
    pub fn start(config: MessengerConfig, clock: Arc<dyn Clock>, files: Arc<FileStore>) -> Arc<Outbox> {
        Self::start_on(config, clock, files, None)
    }

    /// [`Outbox::start`] with the sending tasks on `arbiter` (`None`: a thread of its
    /// own), which several outboxes (tenants) may share.
    pub fn start_on(
        config: MessengerConfig,
        clock: Arc<dyn Clock>,
        files: Arc<FileStore>,
        arbiter: Option<ArbiterHandle>,
    ) -> Arc<Outbox> {
        metrics::init();
        let (engine_tx, engine) = watch::channel(None);
        Arc::new(Outbox {
            inner: Arc::new(Inner {
                config,
                arbiter: arbiter.unwrap_or_else(|| Arbiter::new().handle()),
                engine,
                engine_tx,
                queues: Mutex::new(HashMap::new()),
                waiting: Mutex::new(BTreeMap::new()),
                clock,
                pages: Mutex::new(HashMap::new()),
                page_changed: Notify::new(),
                files,
                unauthorized: std::sync::atomic::AtomicI64::new(0),
                reported_depth: std::sync::atomic::AtomicI64::new(0),
            }),
        })
    }

    /// The thread the sending tasks run on.
    pub fn arbiter(&self) -> ArbiterHandle {
        self.inner.arbiter.clone()
    }

    /// Reports go to `engine` from now on.
    pub fn attach(&self, engine: Engine) {
        let _ = self.inner.engine_tx.send(Some(engine));
    }

    /// The files agents sent, which entries may carry.
    pub fn files(&self) -> Arc<FileStore> {
        self.inner.files.clone()
    }

    /// Depth and oldest age now (also published as gauges).
    pub fn figures(&self) -> OutboxFigures {
        self.inner.figures()
    }

    /// The entry points whose page token the Graph API refused, as the sender knows them.
    pub fn unauthorized(&self) -> Vec<String> {
        let mut v: Vec<String> = lock(&self.inner.pages)
            .values()
            .filter(|p| p.state == ChannelState::Unauthorized)
            .map(|p| p.entry_point.clone())
            .collect();
        v.sort();
        v
    }
}

impl Inner {
    /// This outbox, as a source of the deployment's figures.
    fn source(&self) -> usize {
        self as *const Inner as usize
    }

    fn figures(&self) -> OutboxFigures {
        let waiting = lock(&self.waiting);
        let now = self.clock.now();
        let oldest = waiting.values().min().map_or(0, |at| now.saturating_sub(*at));
        let f = OutboxFigures {
            depth: waiting.len(),
            oldest_age_ms: oldest,
        };
        // Each tenant has an outbox: the depth is the sum of theirs, the age the oldest.
        let depth = i64::try_from(f.depth).unwrap_or(i64::MAX);
        let before = self.reported_depth.swap(depth, std::sync::atomic::Ordering::SeqCst);
        metrics::OUTBOX_DEPTH.add(depth - before);
        let oldest = metrics::OUTBOX_OLDEST_OF.set(self.source(), (f.oldest_age_ms / 1000) as f64);
        metrics::OUTBOX_OLDEST_AGE.set(oldest as i64);
        f
    }

    fn done(&self, o: &Outbound) {
        lock(&self.waiting).remove(&(o.conversation.clone(), o.seq));
        self.figures();
    }

    /// Takes what the engine says of a page.
    fn note(&self, note: PageNote) {
        let mut pages = lock(&self.pages);
        let generation = pages.get(&note.page_id).map_or(0, |p| p.generation + 1);
        pages.insert(
            note.page_id,
            Page {
                entry_point: note.entry_point,
                token: note.token,
                state: note.state,
                generation,
            },
        );
        let unauthorized = pages.values().filter(|p| p.state == ChannelState::Unauthorized).count();
        drop(pages);
        self.report_unauthorized(unauthorized);
        self.page_changed.notify_waiters();
    }

    /// True once the attached engine was stopped for good (a cluster node that stepped
    /// down or handed its tenant over, a deleted tenant).
    fn engine_stopped(&self) -> bool {
        self.engine.borrow().as_ref().is_some_and(Engine::stopped)
    }

    /// The engine, once attached.
    async fn engine(&self) -> Option<Engine> {
        let mut rx = self.engine.clone();
        let engine = rx.wait_for(Option::is_some).await.ok()?.clone();
        engine
    }

    /// Page `page_id`'s token and its generation, waiting while the page is
    /// `unauthorized`. `None`: no entry point gives the page a token.
    async fn token(&self, page_id: &str) -> Option<(String, u64)> {
        if !lock(&self.pages).contains_key(page_id) {
            self.learn_pages().await;
        }
        loop {
            let changed = self.page_changed.notified();
            match lock(&self.pages).get(page_id) {
                None => return None,
                Some(p) if p.state == ChannelState::Ok => return p.token.clone().map(|t| (t, p.generation)),
                Some(_) => {}
            }
            changed.await;
        }
    }

    /// Fills in the pages the sender does not know yet from the engine's entry points.
    async fn learn_pages(&self) {
        let Some(engine) = self.engine().await else { return };
        let Ok(QueryReply::EntryPoints(eps)) = engine.ask(Query::EntryPoints).await else {
            return;
        };
        let mut pages = lock(&self.pages);
        for ep in eps {
            if let Some(page_id) = ep.page_id {
                pages.entry(page_id).or_insert(Page {
                    entry_point: ep.id,
                    token: ep.page_access_token,
                    state: ep.messenger.channel_state,
                    generation: 0,
                });
            }
        }
        let unauthorized = pages.values().filter(|p| p.state == ChannelState::Unauthorized).count();
        drop(pages);
        self.report_unauthorized(unauthorized);
    }

    /// This outbox now has `count` unauthorized pages: the gauge moves by the difference
    /// from what it last reported, so that several outboxes (tenants) add up.
    fn report_unauthorized(&self, count: usize) {
        let count = i64::try_from(count).unwrap_or(i64::MAX);
        let before = self.unauthorized.swap(count, std::sync::atomic::Ordering::SeqCst);
        metrics::PAGES_UNAUTHORIZED.add(count - before);
    }

    /// The Graph API refused `page_id`'s token of generation `generation` (190). Unless a
    /// new token came meanwhile, the page waits, and the engine records the channel state.
    async fn unauthorized(&self, page_id: &str, generation: u64) {
        {
            let mut pages = lock(&self.pages);
            match pages.get_mut(page_id) {
                Some(p) if p.generation == generation && p.state == ChannelState::Ok => {
                    p.state = ChannelState::Unauthorized;
                }
                _ => return,
            }
        }
        let Some(engine) = self.engine().await else { return };
        let cmd = Command::Messenger(MessengerCommand::PageUnauthorized {
            page_id: page_id.into(),
        });
        if let Err(e) = engine.exec(cmd).await {
            tracing::error!(page = %page_id, error = %e, "page's channel state not recorded");
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl CustomerChannel for Outbox {
    // Messenger conversations never produce these: their messages go through `send`.
    fn deliver(&self, _conversation: &ConversationId, _message: &Message) {}
    fn ended(&self, _conversation: &ConversationId, _reason: &str) {}

    fn send(&self, outbound: Outbound) {
        let inner = &self.inner;
        {
            let mut waiting = lock(&inner.waiting);
            let key = (outbound.conversation.clone(), outbound.seq);
            if waiting.contains_key(&key) {
                // Already queued (an entry resumed at start and re-sent by the core).
                return;
            }
            waiting.insert(key, outbound.queued_at);
        }
        let conversation = outbound.conversation.clone();
        let mut queues = lock(&inner.queues);
        if let Some(tx) = queues.get(&conversation) {
            if tx.send(outbound.clone()).is_ok() {
                drop(queues);
                inner.figures();
                return;
            }
        }
        let (tx, rx) = mpsc::unbounded_channel();
        // The receiver is alive: it is moved into the task below.
        let _ = tx.send(outbound);
        queues.insert(conversation.clone(), tx);
        drop(queues);
        inner.figures();
        let task_inner = self.inner.clone();
        inner.arbiter.spawn_fn(move || {
            actix_rt::spawn(run_conversation(task_inner, conversation, rx));
        });
    }

    fn page(&self, note: PageNote) {
        self.inner.note(note);
    }

    fn sender_action(&self, page_id: &str, recipient: &str, action: SenderAction) {
        let inner = self.inner.clone();
        let (page_id, recipient) = (page_id.to_string(), recipient.to_string());
        self.inner.arbiter.spawn_fn(move || {
            actix_rt::spawn(async move {
                // A page waiting for a token shows nothing (the wait would make it late).
                let known = lock(&inner.pages).get(&page_id).map(|p| p.state);
                if known == Some(ChannelState::Unauthorized) {
                    return;
                }
                let Some((token, _)) = inner.token(&page_id).await else {
                    return;
                };
                let client = CLIENT.with(Clone::clone);
                let outcome = graph::sender_action(&client, &inner.config, &token, &recipient, action.as_str()).await;
                let result = if outcome == SendOutcome::Accepted {
                    "sent"
                } else {
                    "failed"
                };
                metrics::SENDER_ACTIONS.with_label_values(&[result]).inc();
                if outcome != SendOutcome::Accepted {
                    tracing::debug!(page = %page_id, action = action.as_str(), ?outcome, "sender action not shown");
                }
            });
        });
    }
}

/// Sends one conversation's entries in order until its queue is empty.
async fn run_conversation(inner: Arc<Inner>, conversation: ConversationId, mut rx: mpsc::UnboundedReceiver<Outbound>) {
    loop {
        let next = {
            let mut queues = lock(&inner.queues);
            match rx.try_recv() {
                Ok(o) => Some(o),
                Err(_) => {
                    queues.remove(&conversation);
                    None
                }
            }
        };
        let Some(o) = next else { return };
        let _span = tracing::debug_span!("outbox", conversation = %o.conversation, seq = o.seq);
        send_entry(&inner, o).await;
    }
}

/// One step of an entry's sending.
enum Step {
    Text(String),
    File(OutboundFile),
    Thread(ThreadCall),
}

/// Step `i` of `o` ([`Outbound::steps`]).
fn step(o: &Outbound, i: usize) -> Option<Step> {
    if let Some(part) = o.parts.get(i) {
        return Some(Step::Text(part.clone()));
    }
    match (i - o.parts.len(), o.file.as_deref(), o.thread.as_deref()) {
        (0, Some(f), _) => Some(Step::File(f.clone())),
        (0, None, Some(t)) | (1, Some(_), Some(t)) => Some(Step::Thread(t.clone())),
        _ => None,
    }
}

/// Carries out one step with `token`. A file that cannot be read from the file store
/// fails the entry for good.
async fn send_step(inner: &Inner, token: &str, o: &Outbound, step: Step) -> SendOutcome {
    let client = CLIENT.with(Clone::clone);
    let config = &inner.config;
    match step {
        Step::Text(part) => graph::send(&client, config, token, o, &part).await,
        Step::File(file) => match inner.files.fetch(file.id.clone()).await {
            Ok((bytes, _)) => graph::send_file(&client, config, token, o, &file, &bytes).await,
            Err(e @ crate::channels::files::FileError::NotFound) => {
                SendOutcome::Final(format!("the file cannot be read: {e}"))
            }
            Err(e) => SendOutcome::Retry(format!("the file could not be read: {e}")),
        },
        Step::Thread(call) => graph::thread_call(&client, config, token, &o.recipient, &call).await,
    }
}

/// Sends every step of `o` not yet accepted (text parts, a file, a thread control call),
/// retrying what may succeed later (for `retry_for_ms`), waiting while the page has no
/// valid token, and reports the outcome.
async fn send_entry(inner: &Inner, mut o: Outbound) {
    let config = &inner.config;
    let mut failures = 0u32;
    let mut first_failure = None;
    while o.parts_sent < o.steps() {
        if inner.engine_stopped() {
            // Whatever is sent now could not be recorded as sent, so whoever routes the
            // tenant next would send it again: it stays in the durable outbox for them.
            tracing::info!(conversation = %o.conversation, seq = o.seq, "the engine stopped; the entry is left to the next owner");
            inner.done(&o);
            return;
        }
        let Some(next) = step(&o, o.parts_sent as usize) else {
            break;
        };
        let Some((token, generation)) = inner.token(&o.page_id).await else {
            metrics::send("failed");
            let error = "the entry point has no page access token".to_string();
            return finish(inner, &o, OutboxOutcome::Failed { error }).await;
        };
        let started = inner.clock.now();
        match send_step(inner, &token, &o, next).await {
            SendOutcome::Accepted => {
                metrics::send("sent");
                failures = 0;
                first_failure = None;
                o.parts_sent += 1;
                if o.parts_sent < o.steps() {
                    let parts_sent = o.parts_sent;
                    report(inner, &o, OutboxOutcome::Progress { parts_sent }).await;
                } else {
                    return finish(inner, &o, OutboxOutcome::Sent { at: started }).await;
                }
            }
            SendOutcome::Unauthorized(error) => {
                // Not this message's failure: the page waits for a new token, and this
                // message (at the head of its conversation) goes out first with it.
                metrics::send("unauthorized");
                tracing::warn!(page = %o.page_id, %error, "Send API refused the page's token; its messages wait for a new one");
                inner.unauthorized(&o.page_id, generation).await;
            }
            SendOutcome::Retry(error) => {
                failures += 1;
                let now = inner.clock.now();
                let first = *first_failure.get_or_insert(now);
                if give_up(first, now, config.retry_for_ms, failures, config.send_max_attempts) {
                    metrics::send("failed");
                    tracing::warn!(conversation = %o.conversation, seq = o.seq, %error, "Send API: giving up");
                    return finish(inner, &o, OutboxOutcome::Failed { error }).await;
                }
                metrics::send("retry");
                let wait = graph::backoff(
                    failures,
                    config.send_backoff_base_ms,
                    config.send_backoff_max_ms,
                    rand::random::<f64>(),
                );
                tracing::debug!(conversation = %o.conversation, seq = o.seq, %error, ?wait, "Send API: retrying");
                actix_rt::time::sleep(wait).await;
            }
            SendOutcome::Final(error) => {
                metrics::send("failed");
                tracing::warn!(conversation = %o.conversation, seq = o.seq, %error, "Send API refused a message");
                return finish(inner, &o, OutboxOutcome::Failed { error }).await;
            }
        }
    }
    // An entry with no parts (nothing to say): done.
    finish(inner, &o, OutboxOutcome::Sent { at: inner.clock.now() }).await;
}

async fn finish(inner: &Inner, o: &Outbound, outcome: OutboxOutcome) {
    report(inner, o, outcome).await;
    inner.done(o);
}

/// Hands the outcome to the engine (which makes it durable and tells the agents). A
/// report the engine cannot take (its store failed) is logged: the entry stays in the
/// outbox and is sent again after the restart that the failure calls for.
async fn report(inner: &Inner, o: &Outbound, outcome: OutboxOutcome) {
    let Some(engine) = inner.engine().await else { return };
    let cmd = Command::OutboxReport {
        entry: o.clone(),
        outcome,
    };
    if let Err(e) = engine.exec(cmd).await {
        tracing::error!(conversation = %o.conversation, seq = o.seq, error = %e, "outbox report not recorded");
    }
}
