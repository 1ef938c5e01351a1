//! The router actor: owner of the [`Floor`], and the one place where a state change is
//! made durable before it is acknowledged.
//!
//! Each [`Exec`] runs in three steps: the core applies the command at `now`; the changes
//! go to the store; when the store says they are durable, the effects are carried out
//! (events to agent actors, timers to conversation and agent actors, figures to queue
//! actors) and the caller gets its answer. The router goes on with the next command while
//! a commit is under way, so many commands share one flush (group commit).

use std::collections::{BTreeSet, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use actix::prelude::*;
use tokio::sync::{broadcast, mpsc, oneshot};

use super::agent::{AddSubscriber, AgentActor, CountSubscribers, Deliver};
use super::conversation::{Close, ConversationActor, CustomerChannel, ToCustomer};
use super::queue::{Figures, QueueActor, QueueFigures};
use super::{delay, Clock};
use crate::core::limits::{QueueWait, QUEUE_WAIT_INTERVAL_MS};
use crate::core::*;
use crate::protocol::{AgentDetail, EngineError, EngineStats, FloorDelta, Observed, Query, QueryReply, Shared};
use crate::store::{Store, StoreError};

/// Called once an operation's commit settled: `None` when durable, or the store error.
type Answer = Box<dyn FnOnce(Option<StoreError>)>;

/// An operation waiting for its commit.
struct Pending {
    seq: u64,
    /// `None` while the commit is under way.
    outcome: Option<Result<(), StoreError>>,
    /// Carried out once durable, after every earlier operation's.
    effects: Vec<Effect>,
    /// Conversations this operation finished (the floor let go of them): held in
    /// `leaving` until this commit settles.
    evicted: Vec<ConversationId>,
    answer: Answer,
}

/// Owns the floor. See the module docs.
pub struct RouterActor {
    floor: Floor,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    channel: Arc<dyn CustomerChannel>,
    shared: Arc<Shared>,
    observer: broadcast::Sender<Arc<Observed>>,
    /// Where webhook events go once durable.
    webhooks: Arc<crate::webhooks::Sender>,
    agents: FastMap<AgentId, Addr<AgentActor>>,
    conversations: FastMap<ConversationId, Addr<ConversationActor>>,
    queues: FastMap<QueueId, Addr<QueueActor>>,
    /// Conversations the floor let go of (finished) whose final commit is still under
    /// way. Until it is durable the store may not have their final record (sled applies
    /// it on its writer thread), so reads, refusals and the effects of operations still
    /// pending use this copy. Bounded by the commits in flight.
    leaving: FastMap<ConversationId, Box<Conversation>>,
    next_subscription: u64,
    /// Operations whose changes are being committed, in decision order.
    pending: VecDeque<Pending>,
    next_seq: u64,
    /// Set when a commit failed: the floor may be ahead of the store, so every further
    /// change is refused until the engine rebuilds from what is durable (a new router,
    /// [`crate::engine::Engine::recover`]).
    failed: Option<StoreError>,
    /// Fenced by a rebuild: this router no longer speaks for the engine, so it leaves the
    /// shared health flag to the new one.
    fenced: bool,
    /// Messenger message ids taken in by operations whose commit is under way (the store
    /// answers for the rest), with the operation's `seq`: a redelivery that arrives before
    /// the first one is durable is still seen.
    mids_in_flight: FastMap<String, u64>,
    /// While a supervisor hub watches: which records changed since it last asked.
    watch: Option<WatchDirty>,
    /// Last owners (preferred agents) written by operations whose commit is under way, by
    /// (entry point, customer), with the operation's `seq`: the store answers for the rest.
    owners_in_flight: FastMap<(EntryPointId, String), (LastOwner, u64)>,
    /// The one timer of the engine: set for the floor's next deadline
    /// ([`Floor::next_deadline`]), at which the router hands the time back
    /// ([`Floor::fire_due`]). Set earlier after every operation that moves the next
    /// deadline earlier (see [`RouterActor::set_wake`]).
    wake: Option<(Millis, SpawnHandle)>,
    /// How long commands wait for the router, per interval (admission control).
    queue_wait: QueueWait,
}

/// The records changed since the supervisor hub last asked ([`Query::WatchDelta`]): ids
/// only, so routing pays a set insert per changed record; the hub reads them once per tick.
#[derive(Default)]
struct WatchDirty {
    agents: FastSet<AgentId>,
    conversations: FastSet<ConversationId>,
    /// Conversations that finished (the floor let go of them) with their last record.
    gone: FastMap<ConversationId, Conversation>,
    /// Entry points changed (a page's channel state, a new token, a new entry point).
    entry_points: FastSet<String>,
}

type FastSet<K> = std::collections::HashSet<K, foldhash::fast::RandomState>;

impl RouterActor {
    pub fn new(
        floor: Floor,
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        channel: Arc<dyn CustomerChannel>,
        shared: Arc<Shared>,
        observer: broadcast::Sender<Arc<Observed>>,
        webhooks: Arc<crate::webhooks::Sender>,
    ) -> Self {
        RouterActor {
            webhooks,
            floor,
            store,
            clock,
            channel,
            shared,
            observer,
            agents: FastMap::default(),
            conversations: FastMap::default(),
            queues: FastMap::default(),
            leaving: FastMap::default(),
            next_subscription: 1,
            pending: VecDeque::new(),
            next_seq: 0,
            failed: None,
            fenced: false,
            mids_in_flight: FastMap::default(),
            watch: None,
            wake: None,
            queue_wait: QueueWait::new(QUEUE_WAIT_INTERVAL_MS),
            owners_in_flight: FastMap::default(),
        }
    }

    fn agent_actor(&mut self, id: &str) -> Addr<AgentActor> {
        if let Some(a) = self.agents.get(id) {
            return a.clone();
        }
        let addr = AgentActor::new(id.into()).start();
        self.agents.insert(id.into(), addr.clone());
        addr
    }

    fn conversation_actor(&mut self, id: &str) -> Addr<ConversationActor> {
        if let Some(a) = self.conversations.get(id) {
            return a.clone();
        }
        let addr = ConversationActor::new(id.into(), self.channel.clone()).start();
        self.conversations.insert(id.into(), addr.clone());
        addr
    }

    fn queue_actor(&mut self, id: &str) -> Addr<QueueActor> {
        let name = self.floor.queue(id).map(|q| q.name.clone()).unwrap_or_default();
        let shared = &self.shared;
        self.queues
            .entry(id.into())
            .or_insert_with(|| QueueActor::new(id.into(), name, shared.clone()).start())
            .clone()
    }

    /// The queue of a conversation the floor holds or has just let go of.
    fn queue_of(&self, conversation: &str) -> Option<QueueId> {
        match self.floor.conversation(conversation) {
            Some(c) => Some(c.queue.clone()),
            None => self.leaving.get(conversation).map(|c| c.queue.clone()),
        }
    }

    /// A conversation for a read: from the floor, else (finished) from `leaving` or the
    /// store. The store read is synchronous, on the engine's thread: a get and a prefix
    /// scan, a few µs with sled, paid only by reads of finished conversations, which is
    /// cheaper than a round trip to another thread and keeps the read in order with the
    /// commands before it.
    fn read_conversation(&self, id: &str) -> Result<Option<Conversation>, StoreError> {
        if let Some(c) = self.floor.conversation(id) {
            return Ok(Some(c.clone()));
        }
        if let Some(c) = self.leaving.get(id) {
            return Ok(Some(Conversation::clone(c)));
        }
        self.store.conversation(id)
    }

    /// The floor does not know conversation `id`: either it never existed (404), or it is
    /// finished and only the store has it; the core then gives the refusal it gave while
    /// it held it (docs/DECISIONS.md, "Finished conversations").
    fn refuse_unknown(&self, id: String, act: &FinishedAct) -> EngineError {
        // Only commands naming a conversation the floor does not hold pay this read.
        match self.read_conversation(&id) {
            Ok(stored) => Floor::refusal_for_unknown(id, act, stored.as_ref()).into(),
            Err(e) => EngineError::Store(e),
        }
    }

    fn publish(&self, o: Observed) {
        // No receiver is fine: nobody is watching.
        let _ = self.observer.send(Arc::new(o));
    }

    /// Carries out what the core decided, after the changes are durable.
    fn carry_out(&mut self, effects: Vec<Effect>) {
        let mut queues_touched = BTreeSet::new();
        for effect in effects {
            match effect {
                Effect::Notify { agent, event } => {
                    let event = Arc::new(event);
                    self.agent_actor(&agent).do_send(Deliver { event: event.clone() });
                    self.publish(Observed::Agent { agent, event });
                }
                Effect::Deliver { conversation, message } => {
                    self.conversation_actor(&conversation).do_send(ToCustomer { message });
                }
                Effect::Send(outbound) => {
                    self.channel.send(outbound);
                }
                Effect::Webhook(event) => self.webhooks.event(event),
                Effect::Webhooks(hooks) => self.webhooks.hooks(hooks),
                Effect::Page(note) => {
                    self.channel.page(note);
                }
                Effect::SenderAction {
                    page_id,
                    recipient,
                    action,
                } => {
                    self.channel.sender_action(&page_id, &recipient, action);
                }
                Effect::DeliverEnd { conversation, reason } => {
                    if let Some(a) = self.conversations.remove(&conversation) {
                        a.do_send(Close {
                            reason,
                            tell_customer: true,
                        });
                    }
                }
                Effect::Credential {
                    account,
                    revoked,
                    granted,
                } => {
                    if let Err(e) = self.shared.apply_credential(&account, revoked, granted) {
                        tracing::error!(%account, error = %e, "credential index not updated");
                    }
                }
                Effect::Session {
                    account,
                    ended,
                    started,
                } => {
                    if let Err(e) = self.shared.apply_session(&account, ended, started) {
                        tracing::error!(%account, error = %e, "credential index not updated");
                    }
                }
                Effect::Observe(o) => {
                    crate::metrics::observe(&o);
                    self.shared.count_agents(&o);
                    match &o {
                        Observation::Arrived { queue, .. } => {
                            queues_touched.insert(queue.clone());
                        }
                        Observation::Offered {
                            conversation, agent, ..
                        }
                        | Observation::Accepted {
                            conversation, agent, ..
                        } => {
                            queues_touched.extend(self.queue_of(conversation));
                            // The agent's load changed: its queues' `agents_available` may have.
                            self.touch_queues_of(agent, &mut queues_touched);
                        }
                        Observation::PresenceChanged { agent, .. }
                        | Observation::WrappedUp { agent, .. }
                        | Observation::Rona { agent, .. } => {
                            self.touch_queues_of(agent, &mut queues_touched);
                        }
                        Observation::Audited(e) => {
                            let by = match &e.by {
                                Changer::Admin => "admin",
                                Changer::Supervisor(s) => s.as_str(),
                            };
                            tracing::info!(
                                agent = %e.agent,
                                by,
                                by_kind = e.by.reason(),
                                from = e.from.as_str(),
                                to = e.to.as_str(),
                                idle_code = e.idle_code.as_deref(),
                                seq = e.seq,
                                "agent presence set by someone else (audit)"
                            );
                        }
                        Observation::Ended { conversation, reason } => {
                            queues_touched.extend(self.queue_of(conversation));
                            // The conversation's actor goes with it: an ended
                            // conversation has no offer deadline and no customer to
                            // write to.
                            if let Some(a) = self.conversations.remove(conversation) {
                                a.do_send(Close {
                                    reason: reason.clone(),
                                    tell_customer: false,
                                });
                            }
                        }
                        _ => {}
                    }
                    tracing::debug!(observation = ?o, "engine");
                    self.publish(Observed::Observation(o));
                }
            }
        }
        for q in queues_touched {
            let figures = self.figures(&q);
            self.queue_actor(&q).do_send(Figures(figures));
        }
    }

    /// Adds the queues `agent` serves to `touched`.
    fn touch_queues_of(&self, agent: &str, touched: &mut BTreeSet<QueueId>) {
        if let Some(a) = self.floor.agent(agent) {
            for q in &a.queues {
                if !touched.contains(q) {
                    touched.insert(q.clone());
                }
            }
        }
    }

    fn figures(&self, queue: &str) -> QueueFigures {
        let q = self.floor.queue(queue);
        QueueFigures {
            id: queue.into(),
            name: q.map(|q| q.name.clone()).unwrap_or_default(),
            routing_steps: q.map(|q| q.routing_steps.clone()).unwrap_or_default(),
            hours: q.and_then(|q| q.hours.clone()),
            wait_limit: q.and_then(|q| q.wait_limit.clone()),
            service_level_ms: q.map_or(crate::core::figures::DEFAULT_SERVICE_LEVEL_MS, |q| q.service_level_ms()),
            waiting: q.map_or(0, |q| q.waiting.len()),
            oldest_received_at: q.and_then(|q| q.head()).map(|((_, at, _), _)| *at),
            agents_available: self.floor.agents_available(queue),
        }
    }

    /// Commits what the floor changed; once durable, and after every earlier operation's
    /// effects, carries out this operation's effects and calls `answer`.
    ///
    /// Commits resolve in order, but actix may poll the futures waiting on them in any
    /// order; the `pending` queue is what keeps events and answers in decision order.
    fn finish(&mut self, answer: Answer, ctx: &mut Context<Self>) {
        self.set_wake(ctx);
        let changes = self.floor.take_changes();
        let effects = self.floor.take_effects();
        // Only written while preferred agents are on: no scan of the changes otherwise.
        if self.floor.rules().preference_on() {
            for c in &changes {
                if let Change::LastOwner {
                    entry_point,
                    customer,
                    owner,
                } = c
                {
                    self.owners_in_flight
                        .insert((entry_point.clone(), customer.clone()), (owner.clone(), self.next_seq));
                }
            }
        }
        let mut evicted = Vec::new();
        let mut new_queues = Vec::new();
        if let Some(w) = &mut self.watch {
            for change in &changes {
                match change {
                    Change::Agent(a) if !w.agents.contains(&a.id) => {
                        w.agents.insert(a.id.clone());
                    }
                    Change::Conversation(c) if !w.conversations.contains(&c.id) => {
                        w.conversations.insert(c.id.clone());
                    }
                    Change::EntryPoint(e) => {
                        w.entry_points.insert(e.id.clone());
                    }
                    _ => {}
                }
            }
        }
        for change in &changes {
            if let Change::Queue(q) = change {
                new_queues.push(q.id.clone());
            }
        }
        for mut c in self.floor.take_evicted() {
            evicted.push(c.id.clone());
            if let Some(w) = &mut self.watch {
                w.gone.insert(c.id.clone(), crate::core::journal::record(&mut c));
            }
            self.leaving.insert(c.id.clone(), c);
        }
        // A new queue has its figures (all zero) from the start.
        for q in new_queues {
            let figures = self.figures(&q);
            self.queue_actor(&q).do_send(Figures(figures));
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        let nothing_to_commit = changes.is_empty();
        self.pending.push_back(Pending {
            seq,
            outcome: None,
            effects,
            evicted,
            answer,
        });
        if nothing_to_commit {
            self.settle(seq, Ok(()), ctx);
            return;
        }
        let commit = self.store.commit(changes);
        ctx.spawn(
            commit
                .into_actor(self)
                .map(move |res, act, ctx| act.settle(seq, res, ctx)),
        );
    }

    /// Sets the engine's timer for the floor's next deadline when that comes before the
    /// time it is set for (or it is not set). A deadline that moved later (the earliest
    /// offer was accepted) leaves the timer as it is: it goes off early, finds nothing
    /// due and is set again ([`RouterActor::woken`]). Under load the earliest deadline
    /// moves later on nearly every accept, and cancelling and setting a timer each time
    /// cost more than one early wake per deadline. Cheap when nothing moved: one look at
    /// the first entry of the table.
    fn set_wake(&mut self, ctx: &mut Context<Self>) {
        let Some(next) = self.floor.next_deadline() else {
            return;
        };
        if self.wake.as_ref().is_some_and(|(at, _)| *at <= next) {
            return;
        }
        if let Some((_, handle)) = self.wake.take() {
            ctx.cancel_future(handle);
        }
        let handle = ctx.run_later(delay(self.clock.now(), next), |act, ctx| act.woken(ctx));
        self.wake = Some((next, handle));
    }

    /// The engine's timer went off: every deadline due now fires, as one operation.
    fn woken(&mut self, ctx: &mut Context<Self>) {
        self.wake = None;
        if self.failed.is_some() {
            // A router that cannot commit changes nothing; the rebuilt one re-arms
            // every deadline from the store.
            return;
        }
        let _span = tracing::debug_span!("deadlines").entered();
        let fired = self.floor.fire_due(self.clock.now());
        if fired == 0 {
            // Woken a little early (the timer and the clock need not agree): sleep again.
            self.set_wake(ctx);
            return;
        }
        self.finish(Box::new(|_| {}), ctx);
    }

    /// Records the outcome of commit `seq`, then completes every operation at the front of
    /// the queue whose commit is settled, in order.
    fn settle(&mut self, seq: u64, outcome: Result<(), StoreError>, _ctx: &mut Context<Self>) {
        if let Some(p) = self.pending.iter_mut().find(|p| p.seq == seq) {
            p.outcome = Some(outcome);
        }
        while self.pending.front().is_some_and(|p| p.outcome.is_some()) {
            let Some(p) = self.pending.pop_front() else { break };
            if !self.mids_in_flight.is_empty() {
                self.mids_in_flight.retain(|_, s| *s != p.seq);
            }
            if !self.owners_in_flight.is_empty() {
                self.owners_in_flight.retain(|_, (_, s)| *s != p.seq);
            }
            let evicted = p.evicted;
            match p.outcome {
                Some(Ok(())) if self.failed.is_none() => {
                    self.carry_out(p.effects);
                    (p.answer)(None);
                }
                Some(Err(e)) => {
                    if !self.fenced {
                        tracing::error!(error = %e, "store write failed; refusing changes until the engine rebuilds");
                        self.shared.healthy.store(false, Ordering::SeqCst);
                    }
                    self.failed = Some(e.clone());
                    (p.answer)(Some(e));
                }
                _ => {
                    // An earlier commit failed: this one's changes may follow a lost one.
                    let e = self
                        .failed
                        .clone()
                        .unwrap_or_else(|| StoreError::Write("earlier write failed".into()));
                    (p.answer)(Some(e));
                }
            }
            // Durable (or failed, and then the engine refuses every change anyway): from
            // now on the store answers for the conversations this operation finished.
            // After the effects: they may name them (an `Ended` observation's queue).
            for id in &evicted {
                self.leaving.remove(id);
            }
        }
    }

    /// Starts the queue actors of a restored floor with their figures. Agent and
    /// conversation actors start when they first have something to carry out (a desktop,
    /// a message for the customer): a restored floor of a million open conversations
    /// starts no million actors.
    fn start_restored(&mut self) {
        let queues: Vec<_> = self.floor.queues().map(|q| q.id.clone()).collect();
        for q in queues {
            let figures = self.figures(&q);
            self.queue_actor(&q).do_send(Figures(figures));
        }
    }
}

impl Actor for RouterActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        // Commands queue up behind a commit; give the mailbox room for bursts.
        ctx.set_mailbox_capacity(65_536);
        self.start_restored();
        // Recovery re-offers with fresh deadlines; those offers must be durable before the
        // desktops see them, like any other change.
        self.finish(Box::new(|_| {}), ctx);
    }
}

/// Stop making changes: the engine is about to rebuild from the store. Every later
/// command is refused as after a failed write; reads still answer.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Fence;

impl Handler<Fence> for RouterActor {
    type Result = ();

    fn handle(&mut self, _msg: Fence, _ctx: &mut Self::Context) {
        let _span = tracing::debug_span!("fence").entered();
        self.fenced = true;
        if self.failed.is_none() {
            self.failed = Some(StoreError::Write("the engine is rebuilding from the store".into()));
        }
    }
}

/// Go away: a new router is in charge. Closes every desktop of this router (each
/// reconnects and resumes from `hello`), lets go of every actor, and stops.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Retire;

impl Handler<Retire> for RouterActor {
    type Result = ();

    fn handle(&mut self, _msg: Retire, ctx: &mut Self::Context) {
        let _span = tracing::debug_span!("retire").entered();
        self.fenced = true;
        for (_, a) in self.agents.drain() {
            a.do_send(super::agent::Retire);
        }
        self.conversations.clear();
        self.queues.clear();
        ctx.stop();
    }
}

/// Run one command, answering with as much of a touched conversation as `detail` asks.
#[derive(Message)]
#[rtype(result = "Result<Reply, EngineError>")]
pub struct Exec {
    pub cmd: Command,
    pub detail: Detail,
    /// When the caller sent it: how long it waited for the router is admission
    /// control's measure of load (`core::limits::QueueWait`).
    pub sent: Instant,
}

impl RouterActor {
    /// A message sent at `sent` reaches the router at `now`: its wait feeds admission
    /// control (`Shared::least_wait_us`), once per measuring interval.
    fn waited(&mut self, sent: Instant, now: Millis) {
        let us = u64::try_from(sent.elapsed().as_micros()).unwrap_or(u64::MAX);
        if let Some(least) = self.queue_wait.observe(us, now) {
            self.shared.least_wait_us.store(least, Ordering::Relaxed);
            self.shared.least_wait_at.store(now, Ordering::Relaxed);
            let source = std::sync::Arc::as_ptr(&self.shared) as usize;
            let worst = crate::metrics::COMMAND_WAIT_OF.set(source, least as f64 / 1e6);
            crate::metrics::COMMAND_WAIT.set(worst);
        }
    }

    /// Applies one command of an [`Exec`] or an [`ExecBatch`] at `now`.
    fn run(&mut self, mut cmd: Command, now: Millis, detail: Detail) -> Result<Reply, EngineError> {
        let span = tracing::debug_span!("exec", command = cmd.name());
        let _enter = span.enter();
        // A Messenger message id: the core needs to know whether it was taken in before.
        let mut new_mid = None;
        if let Command::MessengerMessage {
            mid: Some(mid), seen, ..
        } = &mut cmd
        {
            *seen = self.mids_in_flight.contains_key(mid.as_str()) || self.store.mid_seen(mid)?;
            if !*seen {
                new_mid = Some(mid.clone());
            }
        }
        // A message that opens a conversation: the core needs the customer's last owner
        // on the entry point (preferred agents), from a commit under way or the store.
        if let Some((entry_point, customer)) = self.floor.last_owner_wanted(&cmd) {
            let found = match self.owners_in_flight.get(&(entry_point.clone(), customer.clone())) {
                Some((o, _)) => Some(o.clone()),
                None => self.store.last_owner(&entry_point, &customer)?,
            };
            match &mut cmd {
                Command::CustomerMessage { open, .. } => open.last_owner = found,
                Command::MessengerMessage { last_owner, .. } => *last_owner = found,
                _ => {}
            }
        }
        // What the command is to a finished conversation, taken before `execute` consumes it.
        let act = cmd.finished_act();
        let result = match (self.floor.execute_for(cmd, now, detail), act) {
            (Err(CoreError::UnknownConversation(id)), Some(act)) => Err(self.refuse_unknown(id, &act)),
            (r, _) => r.map_err(EngineError::from),
        };
        match &result {
            Err(e) => tracing::debug!(code = e.code(), error = %e, "command refused"),
            Ok(_) => {
                // This operation's commit is `next_seq` (see `finish`).
                if let Some(mid) = new_mid {
                    self.mids_in_flight.insert(mid, self.next_seq);
                }
            }
        }
        result
    }
}

impl Handler<Exec> for RouterActor {
    type Result = ResponseFuture<Result<Reply, EngineError>>;

    /// Applies the command, commits its changes, then answers.
    fn handle(&mut self, msg: Exec, ctx: &mut Self::Context) -> Self::Result {
        if let Some(e) = &self.failed {
            let e = EngineError::Store(e.clone());
            return Box::pin(async move { Err(e) });
        }
        let now = self.clock.now();
        self.waited(msg.sent, now);
        let result = self.run(msg.cmd, now, msg.detail);
        let (tx, rx) = oneshot::channel();
        self.finish(
            Box::new(move |failed| {
                let answer = match failed {
                    None => result,
                    Some(e) => Err(EngineError::Store(e)),
                };
                // The caller may have gone away; nothing to do then.
                let _ = tx.send(answer);
            }),
            ctx,
        );
        Box::pin(async move { rx.await.unwrap_or(Err(EngineError::Stopped)) })
    }
}

/// Run several commands, in order, as one message: one thread crossing and one commit for
/// the whole batch instead of one each (see `Engine::exec_batch` in engine.rs). Answers
/// are [`Detail::Brief`]: a batch's callers use a new conversation's id at most.
#[derive(Message)]
#[rtype(result = "Vec<Result<Reply, EngineError>>")]
pub struct ExecBatch(pub Vec<Command>, pub Instant);

impl Handler<ExecBatch> for RouterActor {
    type Result = ResponseFuture<Vec<Result<Reply, EngineError>>>;

    /// Applies the commands one after the other, exactly as that many [`Exec`]s would,
    /// commits all their changes together, then carries out their effects in decision
    /// order and answers them all. A command refused by the core changes nothing, so it
    /// does not affect the others.
    fn handle(&mut self, msg: ExecBatch, ctx: &mut Self::Context) -> Self::Result {
        if let Some(e) = &self.failed {
            let answers = msg.0.iter().map(|_| Err(EngineError::Store(e.clone()))).collect();
            return Box::pin(async move { answers });
        }
        let now = self.clock.now();
        self.waited(msg.1, now);
        let mut results = Vec::with_capacity(msg.0.len());
        for cmd in msg.0 {
            results.push(self.run(cmd, now, Detail::Brief));
        }
        let (tx, rx) = oneshot::channel();
        self.finish(
            Box::new(move |failed| {
                let answers: Vec<_> = match failed {
                    None => results,
                    Some(e) => results.iter().map(|_| Err(EngineError::Store(e.clone()))).collect(),
                };
                let _ = tx.send(answers);
            }),
            ctx,
        );
        Box::pin(async move { rx.await.unwrap_or_default() })
    }
}

/// Read something.
#[derive(Message)]
#[rtype(result = "Result<QueryReply, EngineError>")]
pub struct Ask(pub Query);

impl Handler<Ask> for RouterActor {
    type Result = Result<QueryReply, EngineError>;

    fn handle(&mut self, msg: Ask, _ctx: &mut Self::Context) -> Self::Result {
        let _span = tracing::trace_span!("ask", query = ?msg.0).entered();
        let now = self.clock.now();
        // Watch queries change the router's own bookkeeping, not the floor.
        let f = &self.floor;
        Ok(match msg.0 {
            Query::Agent(id) => QueryReply::Agent(f.agent(&id).map(|a| Box::new(AgentDetail::of(f, a)))),
            Query::Agents => {
                let mut v: Vec<Agent> = f.agents().cloned().collect();
                v.sort_by(|a, b| a.id.cmp(&b.id));
                QueryReply::Agents(v)
            }
            Query::Queue(id) => QueryReply::Queue(f.queue_stats(&id, now)),
            Query::Queues => QueryReply::Queues(f.all_queue_stats(now)),
            Query::EntryPoints => {
                let mut v: Vec<EntryPoint> = f.entry_points().cloned().collect();
                v.sort_by(|a, b| a.id.cmp(&b.id));
                QueryReply::EntryPoints(v)
            }
            Query::Conversation { id, reader } => {
                let c = self
                    .read_conversation(&id)?
                    .ok_or_else(|| CoreError::UnknownConversation(id.clone()))?;
                f.check_may_read(&reader, &c)?;
                QueryReply::Conversation(Box::new(c))
            }
            Query::Earlier { id, reader } => {
                let c = self
                    .read_conversation(&id)?
                    .ok_or_else(|| CoreError::UnknownConversation(id.clone()))?;
                QueryReply::Earlier(f.earlier_scope(&reader, &c)?)
            }
            Query::AgentNames(ids) => {
                QueryReply::AgentNames(ids.iter().map(|id| f.agent(id).map(|a| a.name.clone())).collect())
            }
            Query::Invariants => QueryReply::Violations(crate::core::invariants::check(f)),
            // The timer goes off within the millisecond after a deadline (the clock reads
            // whole milliseconds): what was due a millisecond ago must have fired.
            Query::Overdue => QueryReply::Violations(
                f.overdue(now.saturating_sub(1))
                    .iter()
                    .map(|t| format!("{t:?}"))
                    .collect(),
            ),
            Query::Stats => QueryReply::Stats(EngineStats {
                conversations_held: f.conversations_held(),
                conversation_actors: self.conversations.len(),
                conversations_leaving: self.leaving.len(),
            }),
            Query::CustomerName { page_id, customer } => {
                QueryReply::CustomerName(self.store.customer_name(&page_id, &customer)?)
            }
            Query::PasswordHash(who) => QueryReply::PasswordHash(f.password_hash(&who).map(str::to_string)),
            Query::Supervisor(id) => QueryReply::Supervisor(f.supervisor(&id).map(|s| Box::new(s.clone()))),
            Query::Supervisors => QueryReply::Supervisors(f.supervisors().into_iter().cloned().collect()),
            Query::CannedResponses {
                reader,
                conversation,
                queue,
            } => QueryReply::CannedResponses(f.canned_for(&reader, conversation.as_deref(), queue.as_deref())?),
            Query::Audit { agent, limit } => QueryReply::Audit(f.audit(agent.as_deref(), limit)),
            Query::Webhooks => QueryReply::Webhooks(f.webhooks().all().cloned().collect()),
            Query::WatchStart => {
                let mut agents: Vec<Agent> = f.agents().cloned().collect();
                agents.sort_by(|a, b| a.id.cmp(&b.id));
                let entry_points = f.entry_points().cloned().collect();
                let conversations = self.floor.open_conversation_records();
                self.watch = Some(WatchDirty::default());
                QueryReply::Watch(Box::new(FloorDelta {
                    watching: true,
                    agents,
                    conversations,
                    entry_points,
                }))
            }
            Query::WatchDelta => {
                let Some(w) = self.watch.take() else {
                    return Ok(QueryReply::Watch(Box::default()));
                };
                let agents = w.agents.iter().filter_map(|id| f.agent(id).cloned()).collect();
                let entry_points = w
                    .entry_points
                    .iter()
                    .filter_map(|id| f.entry_point(id).cloned())
                    .collect();
                let mut conversations: Vec<Conversation> = w
                    .conversations
                    .iter()
                    .filter(|id| !w.gone.contains_key(*id))
                    .filter_map(|id| self.floor.conversation_record(id))
                    .collect();
                conversations.extend(w.gone.into_values());
                self.watch = Some(WatchDirty::default());
                QueryReply::Watch(Box::new(FloorDelta {
                    watching: true,
                    agents,
                    conversations,
                    entry_points,
                }))
            }
            Query::WatchStop => {
                self.watch = None;
                QueryReply::Watch(Box::default())
            }
        })
    }
}

/// Subscribe a desktop to an agent's events; answers with the agent's full state.
#[derive(Message)]
#[rtype(result = "Result<(AgentDetail, mpsc::Receiver<Arc<AgentEvent>>), EngineError>")]
pub struct Subscribe {
    pub agent: AgentId,
}

impl Handler<Subscribe> for RouterActor {
    type Result = Result<(AgentDetail, mpsc::Receiver<Arc<AgentEvent>>), EngineError>;

    /// The snapshot and the subscription are taken in one step, so no event falls between
    /// them: every later effect for this agent is sent after the subscriber is added.
    fn handle(&mut self, msg: Subscribe, _ctx: &mut Self::Context) -> Self::Result {
        let _span = tracing::debug_span!("subscribe", agent = %msg.agent).entered();
        let a = self
            .floor
            .agent(&msg.agent)
            .ok_or_else(|| CoreError::UnknownAgent(msg.agent.clone()))?;
        let detail = AgentDetail::of(&self.floor, a);
        let (tx, rx) = mpsc::channel(super::agent::SUBSCRIBER_BUFFER);
        let id = self.next_subscription;
        self.next_subscription += 1;
        self.agent_actor(&msg.agent).do_send(AddSubscriber { id, tx });
        Ok((detail, rx))
    }
}

/// How many desktops are connected across all agents.
#[derive(Message)]
#[rtype(result = "usize")]
pub struct CountDesktops;

impl Handler<CountDesktops> for RouterActor {
    type Result = ResponseFuture<usize>;

    fn handle(&mut self, _msg: CountDesktops, _ctx: &mut Self::Context) -> Self::Result {
        let _span = tracing::trace_span!("count_desktops").entered();
        let addrs: Vec<_> = self.agents.values().cloned().collect();
        Box::pin(async move {
            let mut n = 0;
            for a in addrs {
                n += a.send(CountSubscribers).await.unwrap_or(0);
            }
            n
        })
    }
}
