//! What the [`crate::engine::Engine`] handle and the actors behind it share: reads
//! ([`Query`] and [`QueryReply`]), the errors of an engine call ([`EngineError`]), what an
//! observer sees ([`Observed`]), and the state both read without a round trip
//! ([`Shared`]).
//!
//! A leaf: it imports only the core and the store's error, so `engine.rs` and `actors/`
//! both import it and neither imports the other's internals (`engine.rs` starts the
//! router actor; the actors never name the engine).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use crate::core::*;
use crate::store::StoreError;

/// A read.
#[derive(Debug, Clone)]
pub enum Query {
    Agent(AgentId),
    Agents,
    Queue(QueueId),
    Queues,
    EntryPoints,
    /// A conversation as `reader` may see it: `forbidden` when the core's
    /// [`Floor::may_read`] says no, `unknown_conversation` when it does not exist.
    Conversation {
        id: ConversationId,
        reader: Principal,
    },
    /// Where the earlier conversations beside conversation `id` are, as `reader` may see
    /// them ([`Floor::earlier_scope`]): `forbidden` or `unknown_conversation` as for
    /// [`Query::Conversation`].
    Earlier {
        id: ConversationId,
        reader: Principal,
    },
    /// The names of these agents, in their order (`None`: no such agent any more).
    AgentNames(Vec<AgentId>),
    /// ../shared/SPEC.md's invariants over the current state (tests and the simulation).
    Invariants,
    /// Deadlines the state says have passed and that have not fired
    /// ([`Floor::overdue`]; the simulation on the real router).
    Overdue,
    /// How much the engine holds in memory ([`EngineStats`]).
    Stats,
    /// The stored User Profile API name of a Messenger customer of a page.
    CustomerName {
        page_id: String,
        customer: String,
    },
    /// An account's password hash (password sign-in verifies against it off the engine's
    /// thread).
    PasswordHash(AccountRef),
    /// A supervisor by id.
    Supervisor(SupervisorId),
    /// Every supervisor.
    Supervisors,
    /// The canned responses `reader` may use ([`Floor::canned_for`]), filled for
    /// `conversation` when named, of one `queue` when named (`""`: tenant-wide ones).
    CannedResponses {
        reader: Principal,
        conversation: Option<ConversationId>,
        queue: Option<QueueId>,
    },
    /// Every webhook subscription.
    Webhooks,
    /// The audit trail: the newest `limit` entries, about `agent` if given.
    Audit {
        agent: Option<AgentId>,
        limit: usize,
    },
    /// Start (or restart) watching: every agent and open conversation now, and from then
    /// on the router remembers which change ([`Query::WatchDelta`]).
    WatchStart,
    /// What changed since the last `WatchStart` or `WatchDelta`.
    WatchDelta,
    /// Stop remembering changes (nobody watches).
    WatchStop,
}

/// The answer to a [`Query`].
#[derive(Debug, Clone)]
pub enum QueryReply {
    // Boxed, like the conversation: the other answers are a few words.
    Agent(Option<Box<AgentDetail>>),
    Agents(Vec<Agent>),
    Queue(Option<QueueStats>),
    Queues(Vec<QueueStats>),
    EntryPoints(Vec<EntryPoint>),
    Conversation(Box<Conversation>),
    Earlier(Option<crate::core::earlier::EarlierScope>),
    AgentNames(Vec<Option<String>>),
    Violations(Vec<String>),
    Stats(EngineStats),
    CustomerName(Option<String>),
    PasswordHash(Option<String>),
    Supervisor(Option<Box<Supervisor>>),
    Supervisors(Vec<Supervisor>),
    Audit(Vec<AuditEntry>),
    Watch(Box<FloorDelta>),
    CannedResponses(Vec<crate::core::canned::CannedView>),
    Webhooks(Vec<crate::core::webhooks::Webhook>),
}

impl QueryReply {
    /// The variant's name, for [`EngineError::UnexpectedReply`].
    pub fn name(&self) -> &'static str {
        match self {
            QueryReply::Agent(_) => "agent",
            QueryReply::Agents(_) => "agents",
            QueryReply::Queue(_) => "queue",
            QueryReply::Queues(_) => "queues",
            QueryReply::EntryPoints(_) => "entry_points",
            QueryReply::Conversation(_) => "conversation",
            QueryReply::Earlier(_) => "earlier",
            QueryReply::AgentNames(_) => "agent_names",
            QueryReply::Violations(_) => "violations",
            QueryReply::Stats(_) => "stats",
            QueryReply::CustomerName(_) => "customer_name",
            QueryReply::PasswordHash(_) => "password_hash",
            QueryReply::Supervisor(_) => "supervisor",
            QueryReply::Supervisors(_) => "supervisors",
            QueryReply::Audit(_) => "audit",
            QueryReply::Watch(_) => "watch",
            QueryReply::CannedResponses(_) => "canned_responses",
            QueryReply::Webhooks(_) => "webhooks",
        }
    }
}

/// How much the engine holds in memory: counts read on the engine's thread, for tests,
/// metrics and capacity checks. A finished conversation (ended, every wrap-up submitted)
/// is in none of them once its final record is durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EngineStats {
    /// Conversations the routing core (the floor) holds.
    pub conversations_held: usize,
    /// Conversation actors the router keeps (one per open conversation).
    pub conversation_actors: usize,
    /// Finished conversations whose final commit is still under way.
    pub conversations_leaving: usize,
}

/// An agent with everything it holds: what `hello` and `GET /agents/{id}` show.
#[derive(Debug, Clone)]
pub struct AgentDetail {
    pub agent: Agent,
    /// Conversations offered to the agent (see each one's `offer`).
    pub offers: Vec<Conversation>,
    /// Conversations the agent is in (owner or guest), with transcripts.
    pub conversations: Vec<Conversation>,
    /// Conversations the agent owes a wrap-up for.
    pub wrapups: Vec<Conversation>,
}

impl AgentDetail {
    /// Agent `a` with everything it holds on floor `f`.
    pub fn of(f: &Floor, a: &Agent) -> AgentDetail {
        let convs = |ids: &mut dyn Iterator<Item = &ConversationId>| -> Vec<Conversation> {
            ids.filter_map(|id| f.conversation(id).cloned()).collect()
        };
        AgentDetail {
            offers: convs(&mut a.offers.iter()),
            conversations: convs(&mut a.active.iter()),
            wrapups: convs(&mut a.wrapups.keys()),
            agent: a.clone(),
        }
    }
}

/// What the engine-wide observer sees: every agent event and every observation.
#[derive(Debug, Clone)]
pub enum Observed {
    Agent { agent: AgentId, event: Arc<AgentEvent> },
    Observation(Observation),
}

/// Why an engine operation failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Core(#[from] CoreError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the engine is not running")]
    Stopped,
    /// The engine answered with a reply of another kind than the call expects: a bug in
    /// the engine, not a state a client can cause.
    #[error("the engine answered {got} where {expected} was expected")]
    UnexpectedReply { expected: &'static str, got: &'static str },
    /// A lock shared with the engine was poisoned by a panic on another thread.
    #[error("{0} is unusable: a thread panicked while holding it")]
    Poisoned(&'static str),
    /// Admission control refused new work: commands wait too long for the engine now.
    #[error("the engine is overloaded; try again in {retry_after_ms} ms")]
    Overloaded { retry_after_ms: u64 },
}

impl EngineError {
    /// The stable code.
    pub fn code(&self) -> &'static str {
        match self {
            EngineError::Core(e) => e.code(),
            EngineError::Store(_) => "store_unavailable",
            EngineError::Stopped => "engine_unavailable",
            EngineError::UnexpectedReply { .. } | EngineError::Poisoned(_) => "internal_error",
            EngineError::Overloaded { .. } => "overloaded",
        }
    }

    /// The core error, if this is one.
    pub fn core(&self) -> Option<&CoreError> {
        match self {
            EngineError::Core(e) => Some(e),
            _ => None,
        }
    }
}

/// Read by the [`crate::engine::Engine`] handle without a round trip to the engine's
/// thread, written by the router actor.
#[derive(Default)]
pub struct Shared {
    /// Every credential that authenticates, agents' and supervisors' alike (../shared/API.md
    /// "Authentication"), and the sockets opened with each. Changed only by
    /// [`Effect::Credential`]s and [`Effect::Session`]s, so only once a change is durable,
    /// and at (re)start from [`Floor::account_grants`].
    pub accounts: RwLock<AccountIndex>,
    /// False once a write to the store has failed.
    pub healthy: AtomicBool,
    /// Each queue's live figures as its queue actor last published them (the supervisor
    /// hub reads them once per tick).
    pub queue_board: std::sync::Mutex<QueueBoard>,
    /// The least time a command waited for the router over the last measured interval
    /// (µs), and when it was measured (ms since the epoch): admission control's reading
    /// (`core::limits::QueueWait`).
    pub least_wait_us: AtomicU64,
    pub least_wait_at: AtomicU64,
    /// The engine's tenant when it is not `default`: it prefixes the `queue` label of the
    /// per-queue metrics (`acme/q1`), since queue ids are unique within a tenant only.
    pub tenant: Option<Arc<str>>,
    /// This engine's share of `switchboard_agents{state}` (logged out, idle, available,
    /// RONA): what a rebuild or the tenant's deletion takes back out of the deployment's
    /// figure, leaving the other tenants' agents in it.
    pub agents: [AtomicI64; 4],
}

impl Shared {
    fn presence_slot(p: crate::core::Presence) -> usize {
        use crate::core::Presence::*;
        match p {
            LoggedOut => 0,
            Idle => 1,
            Available => 2,
            Rona => 3,
        }
    }

    /// Counts an observation that moves an agent between presences in this engine's share.
    pub fn count_agents(&self, o: &crate::core::Observation) {
        use crate::core::Observation::*;
        match o {
            PresenceChanged { from, to, .. } => {
                self.agents[Self::presence_slot(*from)].fetch_sub(1, Ordering::Relaxed);
                self.agents[Self::presence_slot(*to)].fetch_add(1, Ordering::Relaxed);
            }
            AgentAdded { presence, .. } => {
                self.agents[Self::presence_slot(*presence)].fetch_add(1, Ordering::Relaxed);
            }
            _ => {}
        }
    }

    /// Takes this engine's agents out of `switchboard_agents` (before a rebuild counts them
    /// again, or when the tenant is deleted).
    pub fn forget_agents(&self) {
        use crate::core::Presence::*;
        for p in [LoggedOut, Idle, Available, Rona] {
            let n = self.agents[Self::presence_slot(p)].swap(0, Ordering::Relaxed);
            crate::metrics::AGENTS.with_label_values(&[p.as_str()]).sub(n);
        }
    }
}

/// Why a socket's credential stopped working (../shared/API.md "A credential's sockets end with it").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialEnd {
    /// Sign-out, token reissue, a password change or the account's deletion.
    Revoked,
    /// The session's time ran out.
    Expired,
}

impl CredentialEnd {
    /// The close reason sent to the socket.
    pub fn reason(self) -> &'static str {
        match self {
            CredentialEnd::Revoked => "credential_revoked",
            CredentialEnd::Expired => "session_expired",
        }
    }
}

/// The credential index: credential (a token's SHA-256) → the account it authenticates and,
/// for a session, its expiry; and for each credential the sockets opened with it, told
/// when it is revoked.
#[derive(Debug, Default)]
pub struct AccountIndex {
    grants: HashMap<String, (AccountRef, Option<Millis>)>,
    watchers: HashMap<String, Vec<Watcher>>,
    next_watcher: u64,
}

impl AccountIndex {
    /// The account `credential` authenticates at `now` and, for a session, when it expires.
    pub fn lookup(&self, credential: &str, now: Millis) -> Option<(&AccountRef, Option<Millis>)> {
        self.grants
            .get(credential)
            .filter(|(_, expires_at)| expires_at.map_or(true, |at| session_valid(at, now)))
            .map(|(account, expires_at)| (account, *expires_at))
    }

    fn grant(&mut self, account: &AccountRef, credential: String, expires_at: Option<Millis>) {
        self.grants.insert(credential, (account.clone(), expires_at));
    }

    /// `credential` stops working; every socket opened with it is told.
    fn revoke(&mut self, credential: &str) {
        self.grants.remove(credential);
        for w in self.watchers.remove(credential).unwrap_or_default() {
            w.tell();
        }
    }

    /// Carries out an [`Effect::Credential`].
    pub fn apply_credential(&mut self, account: &AccountRef, revoked: Option<String>, granted: Option<String>) {
        if let Some(old) = revoked {
            self.revoke(&old);
        }
        if let Some(new) = granted {
            self.grant(account, new, None);
        }
    }

    /// Carries out an [`Effect::Session`].
    pub fn apply_session(&mut self, account: &AccountRef, ended: Vec<String>, started: Option<(String, Millis)>) {
        for c in ended {
            self.revoke(&c);
        }
        if let Some((c, expires_at)) = started {
            self.grant(account, c, Some(expires_at));
        }
    }

    /// Replaces every grant by `grants` (a (re)start); a socket whose credential is not
    /// among them any more is told it was revoked.
    pub fn reset(&mut self, grants: Vec<(AccountRef, Grant)>) {
        self.grants = grants
            .into_iter()
            .map(|(account, g)| (g.credential, (account, g.expires_at)))
            .collect();
        let gone: Vec<String> = self
            .watchers
            .keys()
            .filter(|c| !self.grants.contains_key(*c))
            .cloned()
            .collect();
        for c in gone {
            for w in self.watchers.remove(&c).unwrap_or_default() {
                w.tell();
            }
        }
    }

    /// Registers a socket opened with `credential`, if it works at `now` (checked in the
    /// same step, so no revocation falls between the check and the registration).
    fn watch(&mut self, credential: &str, now: Millis) -> Option<CredentialWatch> {
        let (account, expires_at) = self.lookup(credential, now).map(|(a, e)| (a.clone(), e))?;
        let (tx, rx) = tokio::sync::oneshot::channel();
        let id = self.next_watcher;
        self.next_watcher += 1;
        let revoked = Arc::new(AtomicBool::new(false));
        let list = self.watchers.entry(credential.to_string()).or_default();
        // Sockets that ended without saying so (their receiver is gone) go too.
        list.retain(|w| !w.tx.is_closed());
        list.push(Watcher {
            id,
            revoked: revoked.clone(),
            tx,
        });
        Some(CredentialWatch {
            account,
            credential: credential.to_string(),
            expires_at,
            revoked,
            told: Some(rx),
            id,
            shared: std::sync::Weak::new(),
        })
    }

    fn unwatch(&mut self, credential: &str, id: u64) {
        if let Some(list) = self.watchers.get_mut(credential) {
            list.retain(|w| w.id != id);
            if list.is_empty() {
                self.watchers.remove(credential);
            }
        }
    }
}

type WatchRx = tokio::sync::oneshot::Receiver<CredentialEnd>;

/// A socket registered on a credential: a flag set in the same step as the revocation
/// (read before each frame the socket sends) and a channel that wakes the socket to close.
#[derive(Debug)]
struct Watcher {
    id: u64,
    revoked: Arc<AtomicBool>,
    tx: tokio::sync::oneshot::Sender<CredentialEnd>,
}

impl Watcher {
    fn tell(self) {
        self.revoked.store(true, std::sync::atomic::Ordering::SeqCst);
        let _ = self.tx.send(CredentialEnd::Revoked);
    }
}

/// A socket's hold on the credential it was opened with: the account, the session's
/// expiry, and a receiver told when the credential is revoked. Dropping it (the socket
/// ended) unregisters it.
#[derive(Debug)]
pub struct CredentialWatch {
    pub account: AccountRef,
    /// The credential, to re-check before each command.
    pub credential: String,
    /// A session's expiry; `None` for a token.
    pub expires_at: Option<Millis>,
    /// Set in the same step as the credential is revoked.
    revoked: Arc<AtomicBool>,
    /// Told once if the credential is revoked. Take it to wait on it.
    pub told: Option<WatchRx>,
    id: u64,
    shared: std::sync::Weak<Shared>,
}

impl CredentialWatch {
    /// Why the credential no longer works, as far as this watch knows (revoked, or
    /// expired at `now`); `None` while it works. Cheap enough to ask before every frame:
    /// an atomic load, and the clock only for a session.
    pub fn ended(&self, now: impl FnOnce() -> Millis) -> Option<CredentialEnd> {
        if self.revoked.load(std::sync::atomic::Ordering::SeqCst) {
            return Some(CredentialEnd::Revoked);
        }
        match self.expires_at {
            Some(at) if !session_valid(at, now()) => Some(CredentialEnd::Expired),
            _ => None,
        }
    }
}

impl Drop for CredentialWatch {
    fn drop(&mut self) {
        if let Some(shared) = self.shared.upgrade() {
            let mut index = shared.accounts.write().unwrap_or_else(|p| p.into_inner());
            index.unwatch(&self.credential, self.id);
        }
    }
}

/// The queue actors' live figures, and which changed since the hub last looked.
#[derive(Debug, Default)]
pub struct QueueBoard {
    pub figures: std::collections::BTreeMap<QueueId, QueueFigures>,
    /// Queues published since the last [`QueueBoard::take_changed`].
    pub changed: std::collections::BTreeSet<QueueId>,
}

impl QueueBoard {
    /// What changed since the last call, with the current figures.
    pub fn take_changed(&mut self) -> Vec<QueueFigures> {
        let changed = std::mem::take(&mut self.changed);
        changed.iter().filter_map(|q| self.figures.get(q).cloned()).collect()
    }

    /// Every queue's figures, by id.
    pub fn all(&self) -> Vec<QueueFigures> {
        self.figures.values().cloned().collect()
    }
}

/// A queue's live figures, kept by its queue actor.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueueFigures {
    pub id: QueueId,
    pub name: String,
    pub waiting: usize,
    /// `received_at` of the conversation served next, if any: `longest_wait_ms` is the
    /// time since, computed when shown.
    pub oldest_received_at: Option<Millis>,
    pub agents_available: usize,
    /// The queue's routing steps (for transfers into it), as REST shows them.
    pub routing_steps: Vec<Step>,
    /// The queue's business hours, as REST shows them.
    pub hours: Option<std::sync::Arc<crate::core::hours::Hours>>,
    /// The queue's bound on waiting conversations, as REST shows it.
    pub wait_limit: Option<crate::core::queue::WaitLimit>,
    /// The queue's service level threshold, as REST shows it.
    pub service_level_ms: u64,
}

impl QueueFigures {
    /// As [`QueueStats`] at `now`.
    pub fn stats(&self, now: Millis) -> QueueStats {
        QueueStats {
            id: self.id.clone(),
            name: self.name.clone(),
            waiting: self.waiting,
            longest_wait_ms: self.oldest_received_at.map_or(0, |at| now.saturating_sub(at)),
            agents_available: self.agents_available,
            routing_steps: self.routing_steps.clone(),
            hours: self.hours.clone(),
            survey: None,
            wait_limit: self.wait_limit.clone(),
            service_level_ms: self.service_level_ms,
            place_updates: None,
            overflow: None,
        }
    }
}

/// What the supervisor hub learns from the router: records whose state changed since
/// it last asked (or, for [`Query::WatchStart`], every agent and open conversation).
#[derive(Debug, Clone, Default)]
pub struct FloorDelta {
    /// False when the router was not watching (a new router after a rebuild): the hub
    /// must start again from a full view.
    pub watching: bool,
    pub agents: Vec<Agent>,
    /// Records without transcripts; a conversation that has ended is in its last state.
    pub conversations: Vec<Conversation>,
    /// Entry points (their Messenger `channel_state` is what supervisors watch).
    pub entry_points: Vec<crate::core::EntryPoint>,
}

impl Shared {
    fn index(&self) -> Result<std::sync::RwLockWriteGuard<'_, AccountIndex>, EngineError> {
        self.accounts
            .write()
            .map_err(|_| EngineError::Poisoned("the credential index"))
    }

    /// Who `credential` authenticates at `now`.
    pub fn principal_for(&self, credential: &str, now: Millis) -> Result<Option<Principal>, EngineError> {
        let index = self
            .accounts
            .read()
            .map_err(|_| EngineError::Poisoned("the credential index"))?;
        Ok(index.lookup(credential, now).map(|(a, _)| a.principal()))
    }

    /// Carries out an [`Effect::Credential`].
    pub fn apply_credential(
        &self,
        account: &AccountRef,
        revoked: Option<String>,
        granted: Option<String>,
    ) -> Result<(), EngineError> {
        self.index()?.apply_credential(account, revoked, granted);
        Ok(())
    }

    /// Carries out an [`Effect::Session`].
    pub fn apply_session(
        &self,
        account: &AccountRef,
        ended: Vec<String>,
        started: Option<(String, Millis)>,
    ) -> Result<(), EngineError> {
        self.index()?.apply_session(account, ended, started);
        Ok(())
    }

    /// Fills the index from what the core grants at a (re)start.
    pub fn reset_accounts(&self, grants: Vec<(AccountRef, Grant)>) {
        let mut index = self.accounts.write().unwrap_or_else(|p| p.into_inner());
        index.reset(grants);
    }

    /// A socket's hold on `credential` ([`CredentialWatch`]), or `None` when it does not
    /// work at `now`.
    pub fn watch(self: &Arc<Self>, credential: &str, now: Millis) -> Result<Option<CredentialWatch>, EngineError> {
        let watched = self.index()?.watch(credential, now);
        Ok(watched.map(|mut w| {
            w.shared = Arc::downgrade(self);
            w
        }))
    }

    /// A queue actor publishes its figures.
    pub fn publish_queue(&self, figures: QueueFigures) {
        let mut b = self.queue_board.lock().unwrap_or_else(|p| p.into_inner());
        b.changed.insert(figures.id.clone());
        b.figures.insert(figures.id.clone(), figures);
    }
}
