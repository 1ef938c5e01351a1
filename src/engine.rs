//! [`Engine`]: the Rust API of Switchboard. The HTTP layer, the load harness and the
//! benches call it; it hides the actors behind plain async methods.
//!
//! Every operation returns a typed result or an [`EngineError`] with a stable code. A
//! successful answer means the change is durable (it went through the [`Store`]).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use actix::{Actor, Addr, Arbiter, ArbiterHandle};
use tokio::sync::{broadcast, mpsc};

use crate::actors::conversation::{CustomerChannel, NoChannel};
use crate::actors::router::{Ask, CountDesktops, Exec, ExecBatch, Fence, Retire, RouterActor, Subscribe};
use crate::actors::{Clock, SystemClock};
use crate::core::limits::Admission;
use crate::core::*;
use crate::protocol::Shared;
use crate::store::{Store, StoreError};

pub use crate::core::{Command, Principal, QueueStats, Reply};
pub use crate::protocol::{AgentDetail, EngineError, EngineStats, Observed, Query, QueryReply};

/// Starts a router on `arbiter` over the floor rebuilt from what `store` holds; what the
/// core grants (tokens and valid sessions) replaces the credential index in `shared`.
#[allow(clippy::too_many_arguments)]
fn start_router(
    rules: &Rules,
    store: &Arc<dyn Store>,
    arbiter: &ArbiterHandle,
    clock: &Arc<dyn Clock>,
    channel: &Arc<dyn CustomerChannel>,
    shared: &Arc<Shared>,
    observer: &broadcast::Sender<Arc<Observed>>,
    limits: crate::core::tenant::TenantLimits,
    webhooks: &Arc<crate::webhooks::Sender>,
) -> Result<Addr<RouterActor>, StoreError> {
    let snapshot = store.load()?;
    let now = clock.now();
    let rebuilding = Instant::now();
    let mut floor = Floor::restore(
        rules.clone(),
        snapshot.queues,
        snapshot.entry_points,
        snapshot.agents,
        snapshot.conversations,
        snapshot.counters,
        now,
    );
    // What the outbox still holds goes to the channel again (it skips what it is sending).
    floor.resume_outbox(snapshot.outbox);
    floor.restore_supervision(snapshot.supervisors, snapshot.audit);
    floor.restore_canned(snapshot.canned);
    floor.restore_surveys(snapshot.surveys);
    let last_event = snapshot.webhook_events.last().map(|e| e.seq);
    floor.restore_webhooks(crate::core::webhooks::Subscriptions::restore(
        snapshot.webhooks.clone(),
        last_event,
        snapshot.webhooks_trimmed,
    ));
    webhooks.resume(snapshot.webhooks, snapshot.webhook_events);
    floor.set_limits(limits);
    crate::metrics::recovery_phase("rebuild", rebuilding);
    // Before the router answers anything, so no request finds the index empty.
    let granting = Instant::now();
    shared.reset_accounts(floor.account_grants(now));
    crate::metrics::recovery_phase("accounts", granting);
    shared.healthy.store(true, Ordering::SeqCst);
    let (store, clock, channel) = (store.clone(), clock.clone(), channel.clone());
    let (s, o, w) = (shared.clone(), observer.clone(), webhooks.clone());
    Ok(RouterActor::start_in_arbiter(arbiter, move |_| {
        RouterActor::new(floor, store, clock, channel, s, o, w)
    }))
}

/// How to build an engine.
pub struct EngineOptions {
    pub rules: Rules,
    pub store: Arc<dyn Store>,
    pub clock: Arc<dyn Clock>,
    pub channel: Arc<dyn CustomerChannel>,
    /// Where the engine's actors run: a thread of their own (`None`, production), or the
    /// given arbiter (a test on tokio's paused clock runs them on its own thread, so that
    /// the clock it pauses is theirs).
    pub arbiter: Option<ArbiterHandle>,
    /// Admission control (`server.overload_wait_ms`); `None`: new work is never refused.
    pub admission: Option<Admission>,
    /// The tenant's limits at start ([`Engine::set_limits`] changes them).
    pub limits: crate::core::tenant::TenantLimits,
    /// The engine's tenant; `None`: `default`.
    pub tenant: Option<String>,
    /// How webhook events are sent (`[webhooks]`).
    pub webhooks: crate::webhooks::Settings,
    /// Where the webhook sender runs; `None`: a thread of its own, made with the first
    /// subscription.
    pub webhook_arbiter: Option<ArbiterHandle>,
}

impl EngineOptions {
    /// Rules and store given; the system clock; no customer channel.
    pub fn new(rules: Rules, store: Arc<dyn Store>) -> Self {
        EngineOptions {
            rules,
            store,
            clock: Arc::new(SystemClock),
            channel: Arc::new(NoChannel),
            arbiter: None,
            admission: None,
            limits: Default::default(),
            tenant: None,
            webhooks: Default::default(),
            webhook_arbiter: None,
        }
    }
}

/// A handle to a running engine. Cheap to clone; every clone talks to the same engine.
#[derive(Clone)]
pub struct Engine {
    /// The router in charge. Replaced (behind the lock) when the engine rebuilds itself
    /// after a store fault ([`Engine::recover`]); every call reads it afresh.
    router: Arc<std::sync::RwLock<Addr<RouterActor>>>,
    shared: Arc<Shared>,
    observer: broadcast::Sender<Arc<Observed>>,
    /// The rules in force: what a rebuilt floor starts with, and what
    /// [`Engine::rules`] answers. [`Engine::set_codes`] replaces them.
    rules: Arc<std::sync::RwLock<Arc<Rules>>>,
    /// What a rebuild needs: the store, the engine's thread, the clock and the channel.
    store: Arc<dyn Store>,
    arbiter: ArbiterHandle,
    clock: Arc<dyn Clock>,
    channel: Arc<dyn CustomerChannel>,
    /// One rebuild at a time.
    recovering: Arc<tokio::sync::Mutex<()>>,
    admission: Option<Admission>,
    /// The tenant's limits now: what a rebuilt floor starts with.
    limits: Arc<std::sync::Mutex<crate::core::tenant::TenantLimits>>,
    /// Set by [`Engine::stop`]: the engine is gone for good (nothing rebuilds it).
    stopped: Arc<std::sync::atomic::AtomicBool>,
    /// The arbiter is the engine's own (stopped with it), not one it shares.
    owns_arbiter: bool,
    /// The webhook sender (`webhooks.rs`).
    webhooks: Arc<crate::webhooks::Sender>,
}

impl Engine {
    /// Rebuilds the engine from `options.store` and starts its actors on a dedicated
    /// arbiter (thread) of the current actix system.
    pub fn start(options: EngineOptions) -> Result<Engine, StoreError> {
        let shared = Arc::new(Shared {
            tenant: options.tenant.as_deref().map(Arc::from),
            ..Shared::default()
        });
        let (observer, _) = broadcast::channel(65_536);
        let owns_arbiter = options.arbiter.is_none();
        let arbiter = options.arbiter.unwrap_or_else(|| Arbiter::new().handle());
        let webhooks = crate::webhooks::Sender::new(options.webhooks, options.clock.clone(), options.webhook_arbiter);
        let router = start_router(
            &options.rules,
            &options.store,
            &arbiter,
            &options.clock,
            &options.channel,
            &shared,
            &observer,
            options.limits,
            &webhooks,
        )?;
        let engine = Engine {
            router: Arc::new(std::sync::RwLock::new(router)),
            shared,
            observer,
            rules: Arc::new(std::sync::RwLock::new(Arc::new(options.rules))),
            store: options.store,
            arbiter,
            clock: options.clock,
            channel: options.channel,
            recovering: Arc::new(tokio::sync::Mutex::new(())),
            admission: options.admission,
            limits: Arc::new(std::sync::Mutex::new(options.limits)),
            stopped: Arc::default(),
            owns_arbiter,
            webhooks: webhooks.clone(),
        };
        webhooks.attach(engine.clone());
        Ok(engine)
    }

    /// The router in charge now.
    fn router(&self) -> Addr<RouterActor> {
        match self.router.read() {
            Ok(r) => r.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// The store the engine commits to (for backups).
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The engine's time now.
    pub fn now(&self) -> Millis {
        self.clock.now()
    }

    /// Ready to serve: the engine is not waiting for [`Engine::recover`] after a store
    /// fault, the store accepts a write (a probe record written and flushed within
    /// `timeout`), and the engine answers a query within `timeout`. `Err` says why not.
    pub async fn ready(&self, timeout: std::time::Duration) -> Result<(), String> {
        if !self.healthy() {
            return Err(
                "a store write failed; the engine refuses changes and rebuilds itself from the store \
                 once it accepts writes again"
                    .into(),
            );
        }
        match tokio::time::timeout(timeout, self.store.probe()).await {
            Err(_) => {
                return Err(format!(
                    "the store did not accept a write within {} ms",
                    timeout.as_millis()
                ))
            }
            Ok(Err(e)) => {
                // The store now refuses writes; the next check rebuilds once it takes them.
                self.shared.healthy.store(false, Ordering::SeqCst);
                return Err(format!("the store does not accept writes: {e}"));
            }
            Ok(Ok(())) => {}
        }
        match tokio::time::timeout(timeout, self.ask(Query::Stats)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!("the engine did not answer within {} ms", timeout.as_millis())),
        }
    }

    /// After a store fault, once the store accepts writes again: rebuilds the engine from
    /// what is durable, as a restart would, without restarting the process. The failed
    /// router is fenced first (it refuses every change from then on), the store reopened
    /// and probed, a new router started from [`Store::load`] and put in charge; then the
    /// old one is retired, which closes its desktops (they reconnect and resume from
    /// `hello`). Does nothing while the engine is healthy.
    pub async fn recover(&self) -> Result<(), EngineError> {
        let _one = self.recovering.lock().await;
        if self.healthy() {
            return Ok(());
        }
        self.rebuild().await?;
        crate::metrics::RECOVERIES.with_label_values(&[]).inc();
        tracing::warn!("the store accepts writes again: engine rebuilt from what is durable");
        Ok(())
    }

    /// Rebuilds the engine from what is durable, healthy or not, as a restart of the
    /// process would (the simulation's crash and restart).
    pub async fn restart(&self) -> Result<(), EngineError> {
        let _one = self.recovering.lock().await;
        self.rebuild().await
    }

    async fn rebuild(&self) -> Result<(), EngineError> {
        let old = self.router();
        // From here on the old router commits nothing: a commit of its own could land in
        // the reopened store after the snapshot below was taken.
        let _ = old.send(Fence).await;
        let count = |op: &str| crate::metrics::STORE_ERRORS.with_label_values(&[op]).inc();
        self.store.reopen().inspect_err(|_| count("reopen"))?;
        self.store.probe().await?;
        // This engine's agents only: the floor rebuilt below counts them again.
        self.shared.forget_agents();
        let router = start_router(
            &self.rules(),
            &self.store,
            &self.arbiter,
            &self.clock,
            &self.channel,
            &self.shared,
            &self.observer,
            *self.limits.lock().unwrap_or_else(|p| p.into_inner()),
            &self.webhooks,
        )?;
        match self.router.write() {
            Ok(mut r) => *r = router,
            Err(p) => *p.into_inner() = router,
        }
        let _ = old.send(Retire).await;
        self.shared.healthy.store(true, Ordering::SeqCst);
        Ok(())
    }

    /// True when `other` is a handle to this same engine.
    pub fn is(&self, other: &Engine) -> bool {
        Arc::ptr_eq(&self.shared, &other.shared)
    }

    /// True once [`Engine::stop`] was called.
    pub fn stopped(&self) -> bool {
        self.stopped.load(Ordering::SeqCst)
    }

    /// Sets the tenant's limits (../shared/API.md "Tenants"): in force for the next
    /// command, and kept for a rebuilt floor.
    pub async fn set_limits(&self, limits: crate::core::tenant::TenantLimits) -> Result<(), EngineError> {
        *self.limits.lock().unwrap_or_else(|p| p.into_inner()) = limits;
        self.exec(Command::SetLimits(limits)).await.map(|_| ())
    }

    /// Sets the tenant's wrap-up reasons and idle codes (../shared/API.md "Tenants"): in
    /// force for the next command, in [`Engine::rules`] at once, and kept for a rebuilt
    /// floor. What is under way keeps going (`Floor::set_codes`).
    pub async fn set_codes(&self, codes: Codes) -> Result<(), EngineError> {
        {
            let mut rules = self.rules.write().unwrap_or_else(|p| p.into_inner());
            *rules = Arc::new((**rules).clone().with_codes(codes.clone()));
        }
        self.exec(Command::SetCodes(codes)).await.map(|_| ())
    }

    /// Stops the engine for good (a deleted tenant): its router commits nothing more, its
    /// desktops are closed, and its thread ends. Every later call fails.
    pub async fn stop(&self) {
        self.stopped.store(true, Ordering::SeqCst);
        let router = self.router();
        let _ = router.send(Fence).await;
        let _ = router.send(Retire).await;
        self.shared.healthy.store(false, Ordering::SeqCst);
        if self.owns_arbiter {
            self.arbiter.stop();
        }
        self.webhooks.stop();
        let source = Arc::as_ptr(&self.shared) as usize;
        crate::metrics::COMMAND_WAIT.set(crate::metrics::COMMAND_WAIT_OF.forget(source));
        self.shared.forget_agents();
    }

    /// The rules in force (wrap-up reasons, idle codes, timeouts).
    pub fn rules(&self) -> Arc<Rules> {
        self.rules.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Runs one command; `Ok` means it is durable. A conversation in the answer is whole.
    pub async fn exec(&self, cmd: Command) -> Result<Reply, EngineError> {
        self.exec_for(cmd, Detail::Full).await
    }

    /// Whether the engine takes new work now (a new conversation over REST): `overloaded`
    /// while commands wait too long for the router (`core::limits::Admission`). Work
    /// already taken in (agents' commands, customers' replies, Messenger events, which
    /// Meta would only deliver again) is never refused by it.
    pub fn admit(&self) -> Result<(), EngineError> {
        let Some(admission) = self.admission else {
            return Ok(());
        };
        let least = self.shared.least_wait_us.load(Ordering::Relaxed);
        let at = self.shared.least_wait_at.load(Ordering::Relaxed);
        admission
            .check(least, at, self.clock.now())
            .map_err(|retry_after_ms| EngineError::Overloaded { retry_after_ms })
    }

    /// [`Engine::exec`] with as much of a touched conversation in the answer as `detail`
    /// asks for: a caller that discards it says [`Detail::Brief`].
    pub async fn exec_for(&self, cmd: Command, detail: Detail) -> Result<Reply, EngineError> {
        let sent = Instant::now();
        self.router()
            .send(Exec { cmd, detail, sent })
            .await
            .map_err(|_| EngineError::Stopped)?
    }

    /// Runs several commands in order, as [`Engine::exec`] would one after the other, and
    /// answers each in the same order; every `Ok` is durable. The batch crosses to the
    /// engine's thread once and its changes are committed together, so a caller with many
    /// independent commands at hand (an HTTP worker, the load harness) pays one thread
    /// crossing per batch instead of one per command (../shared/MEASURED.md: ~50 µs each).
    pub async fn exec_batch(&self, cmds: Vec<Command>) -> Vec<Result<Reply, EngineError>> {
        let n = cmds.len();
        match self.router().send(ExecBatch(cmds, Instant::now())).await {
            Ok(answers) if answers.len() == n => answers,
            _ => (0..n).map(|_| Err(EngineError::Stopped)).collect(),
        }
    }

    /// Reads something.
    pub async fn ask(&self, q: Query) -> Result<QueryReply, EngineError> {
        self.router().send(Ask(q)).await.map_err(|_| EngineError::Stopped)?
    }

    /// Subscribes to an agent's events: its full state now, and every event after it.
    pub async fn subscribe(&self, agent: &str) -> Result<(AgentDetail, mpsc::Receiver<Arc<AgentEvent>>), EngineError> {
        self.router()
            .send(Subscribe { agent: agent.into() })
            .await
            .map_err(|_| EngineError::Stopped)?
    }

    /// Every agent event and observation from now on (a lagging receiver loses the oldest).
    pub fn observe(&self) -> broadcast::Receiver<Arc<Observed>> {
        self.observer.subscribe()
    }

    /// Who a credential (a token's SHA-256) authenticates at `now`, without a round trip
    /// to the engine. The index holds only credentials the store has (see
    /// [`Effect::Credential`], [`Effect::Session`]).
    pub fn principal_for(&self, credential: &str, now: Millis) -> Result<Option<Principal>, EngineError> {
        self.shared.principal_for(credential, now)
    }

    /// A socket's hold on the credential it is opened with: `None` when the credential
    /// does not work at `now`; otherwise told when it is revoked (see
    /// [`crate::protocol::CredentialWatch`]).
    pub fn watch_credential(
        &self,
        credential: &str,
        now: Millis,
    ) -> Result<Option<crate::protocol::CredentialWatch>, EngineError> {
        self.shared.watch(credential, now)
    }

    /// An account's password hash, if it exists and has a password.
    pub async fn password_hash(&self, account: AccountRef) -> Result<Option<String>, EngineError> {
        match self.ask(Query::PasswordHash(account)).await? {
            QueryReply::PasswordHash(h) => Ok(h),
            r => Err(unexpected_query("password_hash", &r)),
        }
    }

    /// The queues' live figures as their queue actors last published them: those that
    /// changed since the last call (`all`: every queue).
    pub fn queue_figures(&self, all: bool) -> Vec<crate::protocol::QueueFigures> {
        let mut b = self.shared.queue_board.lock().unwrap_or_else(|p| p.into_inner());
        if all {
            b.changed.clear();
            b.all()
        } else {
            b.take_changed()
        }
    }

    /// A watch query ([`Query::WatchStart`], [`Query::WatchDelta`], [`Query::WatchStop`]).
    pub async fn watch(&self, q: Query) -> Result<crate::protocol::FloorDelta, EngineError> {
        match self.ask(q).await? {
            QueryReply::Watch(d) => Ok(*d),
            r => Err(unexpected_query("watch", &r)),
        }
    }

    pub async fn supervisor(&self, id: &str) -> Result<Option<Supervisor>, EngineError> {
        match self.ask(Query::Supervisor(id.into())).await? {
            QueryReply::Supervisor(s) => Ok(s.map(|s| *s)),
            r => Err(unexpected_query("supervisor", &r)),
        }
    }

    pub async fn supervisors(&self) -> Result<Vec<Supervisor>, EngineError> {
        match self.ask(Query::Supervisors).await? {
            QueryReply::Supervisors(s) => Ok(s),
            r => Err(unexpected_query("supervisors", &r)),
        }
    }

    /// The audit trail, newest first.
    pub async fn audit(&self, agent: Option<&str>, limit: usize) -> Result<Vec<AuditEntry>, EngineError> {
        match self
            .ask(Query::Audit {
                agent: agent.map(Into::into),
                limit,
            })
            .await?
        {
            QueryReply::Audit(v) => Ok(v),
            r => Err(unexpected_query("audit", &r)),
        }
    }

    /// False once a store write failed: the engine refuses changes until it has rebuilt
    /// itself from the store ([`Engine::recover`]).
    pub fn healthy(&self) -> bool {
        self.shared.healthy.load(Ordering::SeqCst)
    }

    /// Connected desktops across all agents.
    pub async fn desktops(&self) -> usize {
        self.router().send(CountDesktops).await.unwrap_or(0)
    }

    // ----- typed conveniences -----

    pub async fn create_queue(&self, id: &str, name: &str) -> Result<QueueStats, EngineError> {
        self.create_queue_with_steps(id, name, Vec::new()).await
    }

    /// A queue with routing steps for the conversations transferred into it.
    pub async fn create_queue_with_steps(
        &self,
        id: &str,
        name: &str,
        routing_steps: Vec<Step>,
    ) -> Result<QueueStats, EngineError> {
        match self
            .exec(Command::CreateQueue {
                id: id.into(),
                name: name.into(),
                routing_steps,
                hours: None,
                survey: None,
                wait_limit: None,
                service_level_ms: None,
                place_updates: None,
                overflow: None,
            })
            .await?
        {
            Reply::Queue(q) => Ok(q),
            r => Err(unexpected("queue", &r)),
        }
    }

    pub async fn create_entry_point(&self, ep: EntryPoint) -> Result<EntryPoint, EngineError> {
        match self.exec(Command::CreateEntryPoint(ep)).await? {
            Reply::EntryPoint(e) => Ok(e),
            r => Err(unexpected("entry_point", &r)),
        }
    }

    pub async fn create_agent(
        &self,
        id: &str,
        name: &str,
        queues: &[&str],
        capacity: u32,
    ) -> Result<Agent, EngineError> {
        let cmd = Command::CreateAgent {
            id: id.into(),
            name: name.into(),
            queues: queues.iter().map(|q| q.to_string()).collect(),
            capacity: Some(capacity),
            credential: None,
            password_hash: None,
            skills: Skills::new(),
        };
        self.agent_reply(cmd).await
    }

    pub async fn set_state(&self, agent: &str, state: Presence, idle_code: Option<&str>) -> Result<Agent, EngineError> {
        self.agent_reply(Command::SetState {
            agent: agent.into(),
            state,
            idle_code: idle_code.map(Into::into),
        })
        .await
    }

    async fn agent_reply(&self, cmd: Command) -> Result<Agent, EngineError> {
        match self.exec(cmd).await? {
            Reply::Agent(a) => Ok(*a),
            r => Err(unexpected("agent", &r)),
        }
    }

    async fn conversation_reply(&self, cmd: Command) -> Result<Conversation, EngineError> {
        let reply = self.exec(cmd).await?;
        self.conversation_of(reply).await
    }

    /// The conversation a command's answer names: carried whole, or by its id when the
    /// floor no longer holds it (a customer's answer to a satisfaction survey of a
    /// complete conversation), then read back as it is stored.
    pub async fn conversation_of(&self, reply: Reply) -> Result<Conversation, EngineError> {
        match reply {
            Reply::Conversation(c) => Ok(*c),
            Reply::ConversationId(id) => self
                .conversation(&id)
                .await?
                .ok_or(EngineError::Core(CoreError::UnknownConversation(id))),
            r => Err(unexpected("conversation", &r)),
        }
    }

    async fn message_reply(&self, cmd: Command) -> Result<Message, EngineError> {
        match self.exec(cmd).await? {
            Reply::Message(m) => Ok(m),
            r => Err(unexpected("message", &r)),
        }
    }

    async fn done(&self, cmd: Command) -> Result<(), EngineError> {
        self.exec(cmd).await.map(|_| ())
    }

    /// A customer message over REST on an entry point.
    pub async fn customer_message(
        &self,
        entry_point: &str,
        customer_id: &str,
        customer_name: &str,
        text: &str,
    ) -> Result<Conversation, EngineError> {
        self.conversation_reply(Command::CustomerMessage {
            entry_point: entry_point.into(),
            customer: Customer {
                id: customer_id.into(),
                name: customer_name.into(),
            },
            text: text.into(),
            channel: Channel::Rest,
            open: Opening::default(),
        })
        .await
    }

    pub async fn customer_reply(&self, conversation: &str, text: &str) -> Result<Message, EngineError> {
        self.message_reply(Command::CustomerReply {
            conversation: conversation.into(),
            text: text.into(),
        })
        .await
    }

    pub async fn customer_end(&self, conversation: &str) -> Result<(), EngineError> {
        self.done(Command::CustomerEnd {
            conversation: conversation.into(),
        })
        .await
    }

    pub async fn accept(&self, agent: &str, conversation: &str) -> Result<Conversation, EngineError> {
        self.conversation_reply(Command::Accept {
            agent: agent.into(),
            conversation: conversation.into(),
        })
        .await
    }

    pub async fn send(&self, agent: &str, conversation: &str, text: &str) -> Result<Message, EngineError> {
        self.message_reply(Command::Send {
            agent: agent.into(),
            conversation: conversation.into(),
            text: text.into(),
        })
        .await
    }

    pub async fn transfer_to_agent(
        &self,
        agent: &str,
        conversation: &str,
        target: &str,
    ) -> Result<Conversation, EngineError> {
        self.conversation_reply(Command::TransferToAgent {
            agent: agent.into(),
            conversation: conversation.into(),
            target: target.into(),
            note: None,
        })
        .await
    }

    pub async fn transfer_to_queue(
        &self,
        agent: &str,
        conversation: &str,
        queue: &str,
    ) -> Result<Conversation, EngineError> {
        self.conversation_reply(Command::TransferToQueue {
            agent: agent.into(),
            conversation: conversation.into(),
            queue: queue.into(),
            note: None,
        })
        .await
    }

    pub async fn conference(&self, agent: &str, conversation: &str, target: &str) -> Result<Conversation, EngineError> {
        self.conversation_reply(Command::Conference {
            agent: agent.into(),
            conversation: conversation.into(),
            target: target.into(),
            note: None,
        })
        .await
    }

    pub async fn exit_conference(&self, agent: &str, conversation: &str) -> Result<(), EngineError> {
        self.done(Command::ExitConference {
            agent: agent.into(),
            conversation: conversation.into(),
        })
        .await
    }

    pub async fn end_conference(&self, agent: &str, conversation: &str) -> Result<(), EngineError> {
        self.done(Command::EndConference {
            agent: agent.into(),
            conversation: conversation.into(),
        })
        .await
    }

    pub async fn end(&self, agent: &str, conversation: &str) -> Result<(), EngineError> {
        self.done(Command::End {
            agent: agent.into(),
            conversation: conversation.into(),
        })
        .await
    }

    pub async fn wrapup(&self, agent: &str, conversation: &str, reason: &str) -> Result<(), EngineError> {
        self.done(Command::Wrapup {
            agent: agent.into(),
            conversation: conversation.into(),
            reason: reason.into(),
        })
        .await
    }

    pub async fn agent(&self, id: &str) -> Result<Option<AgentDetail>, EngineError> {
        match self.ask(Query::Agent(id.into())).await? {
            QueryReply::Agent(a) => Ok(a.map(|a| *a)),
            r => Err(unexpected_query("agent", &r)),
        }
    }

    pub async fn agents(&self) -> Result<Vec<Agent>, EngineError> {
        match self.ask(Query::Agents).await? {
            QueryReply::Agents(a) => Ok(a),
            r => Err(unexpected_query("agents", &r)),
        }
    }

    pub async fn queue(&self, id: &str) -> Result<Option<QueueStats>, EngineError> {
        match self.ask(Query::Queue(id.into())).await? {
            QueryReply::Queue(q) => Ok(q),
            r => Err(unexpected_query("queue", &r)),
        }
    }

    pub async fn queues(&self) -> Result<Vec<QueueStats>, EngineError> {
        match self.ask(Query::Queues).await? {
            QueryReply::Queues(q) => Ok(q),
            r => Err(unexpected_query("queues", &r)),
        }
    }

    pub async fn entry_points(&self) -> Result<Vec<EntryPoint>, EngineError> {
        match self.ask(Query::EntryPoints).await? {
            QueryReply::EntryPoints(e) => Ok(e),
            r => Err(unexpected_query("entry_points", &r)),
        }
    }

    /// Every webhook subscription, with its delivery state.
    pub async fn webhooks(&self) -> Result<Vec<crate::core::webhooks::Webhook>, EngineError> {
        match self.ask(Query::Webhooks).await? {
            QueryReply::Webhooks(v) => Ok(v),
            r => Err(unexpected_query("webhooks", &r)),
        }
    }

    /// One conversation with its transcript. A finished one is read from the store (the
    /// engine no longer holds it), with the same content as before it finished.
    pub async fn conversation(&self, id: &str) -> Result<Option<Conversation>, EngineError> {
        match self.conversation_for(id, Principal::Admin).await {
            Ok(c) => Ok(Some(c)),
            Err(EngineError::Core(CoreError::UnknownConversation(_))) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// One conversation as `reader` may see it, in one step on the engine's thread:
    /// `unknown_conversation` when it does not exist, `forbidden` when the core's
    /// [`Floor::may_read`] refuses `reader`.
    pub async fn conversation_for(&self, id: &str, reader: Principal) -> Result<Conversation, EngineError> {
        match self.ask(Query::Conversation { id: id.into(), reader }).await? {
            QueryReply::Conversation(c) => Ok(*c),
            r => Err(unexpected_query("conversation", &r)),
        }
    }

    /// Where the earlier conversations beside conversation `id` are, as `reader` may see
    /// them (the core's [`Floor::earlier_scope`]): `None` when it has no entry point;
    /// `unknown_conversation` and `forbidden` as [`Engine::conversation_for`] gives them.
    pub async fn earlier_scope(
        &self,
        id: &str,
        reader: Principal,
    ) -> Result<Option<crate::core::earlier::EarlierScope>, EngineError> {
        match self.ask(Query::Earlier { id: id.into(), reader }).await? {
            QueryReply::Earlier(s) => Ok(s),
            r => Err(unexpected_query("earlier", &r)),
        }
    }

    /// The names of agents `ids`, in their order (`None`: deleted since).
    pub async fn agent_names(&self, ids: Vec<AgentId>) -> Result<Vec<Option<String>>, EngineError> {
        match self.ask(Query::AgentNames(ids)).await? {
            QueryReply::AgentNames(v) => Ok(v),
            r => Err(unexpected_query("agent_names", &r)),
        }
    }

    /// The canned responses `reader` may use, filled for `conversation` when named
    /// (issue 26 item 4).
    pub async fn canned_responses(
        &self,
        reader: Principal,
        conversation: Option<String>,
        queue: Option<String>,
    ) -> Result<Vec<crate::core::canned::CannedView>, EngineError> {
        match self
            .ask(Query::CannedResponses {
                reader,
                conversation,
                queue,
            })
            .await?
        {
            QueryReply::CannedResponses(v) => Ok(v),
            r => Err(unexpected_query("canned_responses", &r)),
        }
    }

    /// How much the engine holds in memory.
    pub async fn stats(&self) -> Result<EngineStats, EngineError> {
        match self.ask(Query::Stats).await? {
            QueryReply::Stats(s) => Ok(s),
            r => Err(unexpected_query("stats", &r)),
        }
    }

    /// ../shared/SPEC.md invariant violations in the current state; empty when all hold.
    pub async fn violations(&self) -> Result<Vec<String>, EngineError> {
        match self.ask(Query::Invariants).await? {
            QueryReply::Violations(v) => Ok(v),
            r => Err(unexpected_query("violations", &r)),
        }
    }
}

fn unexpected(expected: &'static str, got: &Reply) -> EngineError {
    EngineError::UnexpectedReply {
        expected,
        got: got.name(),
    }
}

fn unexpected_query(expected: &'static str, got: &QueryReply) -> EngineError {
    EngineError::UnexpectedReply {
        expected,
        got: got.name(),
    }
}
