//! [`SledStore`]: the engine's durable store on sled 0.34, with group commit.
//!
//! # Layout (store format 2)
//! One sled database per directory, with every record in sled's default tree: tenant
//! `default`'s under a one-byte prefix naming its kind (every other tenant's under its
//! scope, then the same: [`SledStore::tenant`], [`tenant_scope`]) ([`prefix`]): agents, queues, entry points and
//! conversations (keyed by id, whole records), messages (one entry per transcript message,
//! keyed by conversation and `seq`, written once and never rewritten), the retention index
//! (`ended_at` then id) and meta (the store format and the counters). Every value is a
//! versioned record ([`super::record`]).
//!
//! # Group commit
//! One writer thread owns all writes. [`Store::commit`] hands it a batch over a channel
//! and returns a future. The writer takes every batch that arrived while its last flush
//! ran, encodes the last version of each record the group changes (an earlier version in
//! the same group is skipped: it could never be read back), applies the group, every
//! tenant's commits in it, as **one atomic sled batch** (`Tree::apply_batch`: a crash
//! never leaves half a group on disk, sled recovers a batch whole or not at all), calls
//! `db.flush()` once, and only then
//! resolves each batch's future, in order. sled's own background flush is switched off
//! (`flush_every_ms(None)`): nothing counts as durable until the writer's flush returned.
//!
//! # Faults
//! - A directory held by another running engine, an unreadable or corrupt store, a store
//!   of format 1 or of an unknown format, or a record of an unknown format version: [`SledStore::open`] / [`Store::load`] fail with
//!   a [`StoreError`] that names the directory or the record, and write nothing.
//! - A write or flush that fails at run time: that group's futures, and every later one,
//!   resolve to [`StoreError::Write`]. The store writes nothing more until it is reopened
//!   ([`Store::reopen`]: closed, and opened again from what was flushed); the engine
//!   refuses changes until it has rebuilt itself from the reopened store.
//!
//! # Probe and backup
//! [`Store::probe`] writes and flushes one meta record on the writer thread (readiness).
//! [`Store::backup`] fixes its point in time on the writer thread between two groups (it
//! registers a [`Shadow`], nothing more), and a thread of its own then reads the tree in
//! slices while commits go on: the writer keeps in the shadow the value at that point of
//! every key it is about to change that the reader has not passed yet, and the reader
//! sends the shadow's value instead of the live one (docs/STORE.md "Backup"). The file
//! ([`super::backup`]) goes out in pieces as it is read; [`restore`] writes one into an
//! empty directory, as a stream too.
//!
//! # Retention
//! Ended conversations older than [`SledOptions::retain_ended`] are removed with their
//! messages by the writer thread every [`SledOptions::sweep_every`], and on demand with
//! [`SledStore::sweep`]. A conversation that an agent still owes a wrap-up for is kept.

use std::collections::BTreeMap;
use std::collections::HashMap;
use std::collections::HashSet;
use std::ops::Bound;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ::sled::{Batch, Db, IVec, Tree};
use tokio::sync::oneshot;

use super::record::{self, *};
use super::{BackupFuture, BackupStream, CommitFuture, RegistryRecord, Snapshot, Store, StoreError};
use crate::config::StoreConfig;
use crate::core::figures::{Figures, Subject};
use crate::core::report;
use crate::core::{Change, Conversation, ConversationState, LastOwner, Message, Millis, RecordPage, RecordQuery};

/// The layout of the database (tree, key prefixes, meta entries). Records carry their own
/// version ([`record::RECORD_VERSION`]); this one changes only if the layout does.
/// Format 1 (before the first release) kept one sled tree per kind of record; format 2
/// keeps them all in one tree under the prefixes of [`prefix`]. A format-1 directory is
/// refused with [`StoreError::OldFormat`] (docs/STORE.md, "Format 1").
pub const STORE_FORMAT: u8 = 2;

/// The first byte of every key of format 2: which kind of record follows.
pub mod prefix {
    /// Agent records, keyed by agent id.
    pub const AGENTS: u8 = b'a';
    /// Queue records, keyed by queue id.
    pub const QUEUES: u8 = b'q';
    /// Entry point records, keyed by entry point id.
    pub const ENTRY_POINTS: u8 = b'e';
    /// Conversation records (without transcripts), keyed by conversation id.
    pub const CONVERSATIONS: u8 = b'c';
    /// Transcript messages, keyed by [`crate::store::record::message_key`].
    pub const MESSAGES: u8 = b'm';
    /// The retention index, keyed by [`crate::store::record::ended_key`]; empty values.
    pub const ENDED: u8 = b'x';
    /// `format` (the store format byte) and `counters`.
    pub const META: u8 = b'z';
    /// Outbox entries of the Messenger channel, keyed like messages (conversation, seq).
    pub const OUTBOX: u8 = b'o';
    /// Messenger message ids (`mid`) taken in, with when.
    pub const MIDS: u8 = b'i';
    /// The retention index of `MIDS`: `at` big-endian, then the mid.
    pub const MID_TIMES: u8 = b'j';
    /// Customer names from the User Profile API, keyed by (page id, PSID).
    pub const NAMES: u8 = b'n';
    /// Supervisor records, keyed by supervisor id.
    pub const SUPERVISORS: u8 = b's';
    /// The audit trail of presence set by supervisors and the admin, keyed by the
    /// entry's `seq` big-endian (the newest `AUDIT_RETAIN` are kept).
    pub const AUDIT: u8 = b'u';
    /// The last owner of each customer's conversation per entry point, keyed by
    /// [`crate::store::record::last_owner_key`] (preferred agents).
    pub const LAST_OWNERS: u8 = b'l';
    /// Report records of complete conversations, keyed by
    /// [`crate::store::record::record_key`] (arrival, then id).
    pub const RECORDS: u8 = b'r';
    /// Report rows of figures per queue or agent and interval, keyed by
    /// [`crate::store::record::figures_key_into`].
    pub const FIGURES: u8 = b'f';
    /// The words a complete conversation's transcript is searched by, keyed like its
    /// report record.
    pub const SEARCH: u8 = b't';
    /// The index of report records by customer: an empty value keyed by
    /// [`crate::store::record::customer_key_into`] (the customer's id, then the record's
    /// key), written and removed in the same batch as the record.
    pub const BY_CUSTOMER: u8 = b'b';
    /// Canned responses, keyed by id.
    pub const CANNED: u8 = b'k';
    /// Webhook subscriptions, keyed by id.
    pub const WEBHOOKS: u8 = b'h';
    /// Webhook events still waiting for a subscription, keyed by `seq` big-endian.
    pub const WEBHOOK_EVENTS: u8 = b'w';
    /// Satisfaction surveys asked and not yet answered, keyed like last owners: (entry
    /// point, customer).
    pub const SURVEYS: u8 = b'p';
    /// Conversations' ratings, keyed like their report records (arrival, then id).
    pub const RATINGS: u8 = b'g';
}

/// The meta entry holding the store format; its full key is `[prefix::META] ++ "format"`.
pub const META_FORMAT: &[u8] = b"format";
const META_COUNTERS: &[u8] = b"counters";
/// Every webhook event up to this `seq` has left the store.
const META_WEBHOOKS_TRIMMED: &[u8] = b"webhooks_trimmed";
/// Present once every report record of the space is in the index by customer.
const META_BY_CUSTOMER: &[u8] = b"by_customer";
/// The meta entry the readiness probe writes (left out of backups).
const META_PROBE: &[u8] = b"probe";
/// The tree that holds the format byte in a format-1 store.
const FORMAT1_META_TREE: &[u8] = b"meta";
/// Retention removes at most this many conversations per atomic batch.
const SWEEP_CHUNK: usize = 1_000;
const DAY_MS: u64 = 24 * 60 * 60 * 1000;
/// How long a Messenger message id is remembered (docs/DECISIONS.md, "Messenger").
pub const MID_RETENTION_MS: u64 = 7 * DAY_MS;

/// Called by the writer after a group is applied and before it is flushed. An `Err`
/// counts as a failed flush. For fault drills and tests (a full disk, a slow disk).
pub type FlushHook = Arc<dyn Fn() -> Result<(), String> + Send + Sync>;

/// How a [`SledStore`] behaves.
#[derive(Clone)]
pub struct SledOptions {
    /// Ended conversations are removed this long after they ended; `None` keeps them.
    pub retain_ended: Option<Duration>,
    /// How often the background retention sweep runs.
    pub sweep_every: Duration,
    /// Most commits applied in one group (bounds the size of one atomic batch).
    pub max_group: usize,
    /// See [`FlushHook`].
    pub before_flush: Option<FlushHook>,
    /// sled's page cache, in bytes (`store.cache_mb`).
    pub cache_capacity: u64,
    /// Most bytes a second an online backup sends (`store.backup_mb_per_s`; 0: no limit).
    pub backup_bytes_per_s: u64,
    /// Report records (with their search texts) are removed this long after the
    /// conversation arrived, and report figures of intervals older than that
    /// (`reports.retention_days`); `None` keeps them.
    pub retain_records: Option<Duration>,
}

impl Default for SledOptions {
    /// 30 days of retention, swept hourly; groups of up to 4,096 commits.
    fn default() -> Self {
        SledOptions {
            retain_ended: Some(Duration::from_millis(30 * DAY_MS)),
            sweep_every: Duration::from_secs(3600),
            max_group: 4096,
            before_flush: None,
            cache_capacity: 1 << 30,
            backup_bytes_per_s: 0,
            retain_records: Some(Duration::from_millis(400 * DAY_MS)),
        }
    }
}

impl SledOptions {
    /// The options that `[store]` of the configuration asks for.
    /// `retain_ended_days = 0` removes ended conversations at the next sweep (once their
    /// wrap-ups are in).
    pub fn from_config(cfg: &StoreConfig) -> Self {
        SledOptions {
            retain_ended: Some(Duration::from_millis(u64::from(cfg.retain_ended_days) * DAY_MS)),
            cache_capacity: cfg.cache_mb.saturating_mul(1 << 20),
            backup_bytes_per_s: cfg.backup_mb_per_s.saturating_mul(1 << 20),
            ..SledOptions::default()
        }
    }

    /// These options, with the retention of reports that `[reports]` asks for.
    pub fn with_reports(self, cfg: &crate::config::ReportsConfig) -> Self {
        SledOptions {
            retain_records: Some(Duration::from_millis(u64::from(cfg.retention_days) * DAY_MS)),
            ..self
        }
    }
}

impl std::fmt::Debug for SledOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SledOptions")
            .field("retain_ended", &self.retain_ended)
            .field("sweep_every", &self.sweep_every)
            .field("max_group", &self.max_group)
            .field("before_flush", &self.before_flush.is_some())
            .field("cache_capacity", &self.cache_capacity)
            .field("retain_records", &self.retain_records)
            .finish()
    }
}

/// Figures of one store's group commit, for logs, tests and benchmarks: counts and totals
/// only. The distributions (commits per flush, flush and commit latency) are the Prometheus
/// histograms of `crate::metrics` (`switchboard_store_*`), recorded at the same points; they
/// are process-wide, which is why the per-store counts stay here (tests and the store bench
/// open several stores in one process).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StoreStats {
    /// Batches committed (one per engine operation that changed something).
    pub commits: u64,
    /// Changes (records and messages) in those batches.
    pub changes: u64,
    /// Changes not written because a later change of the same group rewrote the same
    /// record (see the writer's coalescing).
    pub coalesced: u64,
    /// Flushes that made groups durable.
    pub flushes: u64,
    /// Most commits that shared one flush.
    pub max_commits_per_flush: u64,
    /// Total time in `db.flush()`, in microseconds.
    pub flush_us_total: u64,
    /// Conversations removed by retention.
    pub swept: u64,
    /// True once a write failed.
    pub failed: bool,
}

impl StoreStats {
    /// Mean commits per flush.
    pub fn mean_commits_per_flush(&self) -> f64 {
        self.commits as f64 / self.flushes.max(1) as f64
    }
    /// Mean flush time in milliseconds.
    pub fn mean_flush_ms(&self) -> f64 {
        self.flush_us_total as f64 / 1000.0 / self.flushes.max(1) as f64
    }
}

#[derive(Default)]
struct Stats {
    commits: AtomicU64,
    changes: AtomicU64,
    coalesced: AtomicU64,
    flushes: AtomicU64,
    max_per_flush: AtomicU64,
    flush_us_total: AtomicU64,
    swept: AtomicU64,
    failed: AtomicBool,
}

impl Stats {
    fn snapshot(&self) -> StoreStats {
        let r = |a: &AtomicU64| a.load(Ordering::Relaxed);
        StoreStats {
            commits: r(&self.commits),
            changes: r(&self.changes),
            coalesced: r(&self.coalesced),
            flushes: r(&self.flushes),
            max_commits_per_flush: r(&self.max_per_flush),
            flush_us_total: r(&self.flush_us_total),
            swept: r(&self.swept),
            failed: self.failed.load(Ordering::Relaxed),
        }
    }
}

/// One kind of record of one tenant: the records under one key prefix of the store's
/// tree (the tenant's scope, then the kind's byte). Keys given to and returned by a
/// keyspace are without the prefix.
#[derive(Clone)]
struct Keyspace {
    tree: Tree,
    prefix: Arc<[u8]>,
}

/// A record read from a keyspace: (key without the prefix, value).
type Entry = ::sled::Result<(IVec, IVec)>;

impl Keyspace {
    /// The key in the tree of this kind's `key`.
    fn key(&self, key: &[u8]) -> Vec<u8> {
        let mut k = Vec::with_capacity(self.prefix.len() + key.len());
        k.extend_from_slice(&self.prefix);
        k.extend_from_slice(key);
        k
    }

    fn strip(n: usize) -> impl Fn(Entry) -> Entry {
        move |entry| entry.map(|(k, v)| (k.subslice(n, k.len().saturating_sub(n)), v))
    }

    fn get(&self, key: impl AsRef<[u8]>) -> ::sled::Result<Option<IVec>> {
        self.tree.get(self.key(key.as_ref()))
    }

    /// Every record of this kind, in key order.
    fn iter(&self) -> impl DoubleEndedIterator<Item = Entry> {
        self.scan_prefix([])
    }

    /// The records whose key starts with `prefix`, in key order.
    fn scan_prefix(&self, prefix: impl AsRef<[u8]>) -> impl DoubleEndedIterator<Item = Entry> {
        self.tree
            .scan_prefix(self.key(prefix.as_ref()))
            .map(Self::strip(self.prefix.len()))
    }

    /// The records with `from <= key < to`, in key order.
    fn range(&self, from: &[u8], to: &[u8]) -> impl DoubleEndedIterator<Item = Entry> {
        self.tree
            .range(self.key(from)..self.key(to))
            .map(Self::strip(self.prefix.len()))
    }

    /// [`Keyspace::range`], leaving sled's cache as it found it (a bulk read).
    fn range_cold(&self, from: &[u8], to: &[u8]) -> impl DoubleEndedIterator<Item = Entry> {
        self.tree
            .range(self.key(from)..self.key(to))
            .leave_cache()
            .map(Self::strip(self.prefix.len()))
    }
}

/// The first byte of every key of a tenant other than `default`: after every kind's byte
/// (all lowercase letters), so `default`'s records are exactly the keys before it.
pub const TENANT_MARK: u8 = b'~';

/// The scope of tenant `id`'s keys: [`TENANT_MARK`], the id, `/` (no id holds one, so no
/// scope is the start of another). `default`'s scope is empty.
pub fn tenant_scope(id: &str) -> Vec<u8> {
    let mut s = Vec::with_capacity(id.len() + 2);
    s.push(TENANT_MARK);
    s.extend_from_slice(id.as_bytes());
    s.push(b'/');
    s
}

/// One tenant's records (format 2): in sled's default tree, under the tenant's scope
/// (empty for `default`; [`tenant_scope`] for every other), every key goes on with one
/// byte naming the kind of record (see [`prefix`]). One tree for every tenant rather than
/// a tree each, and one tree rather than one per kind, because `Tree::apply_batch` makes
/// a group atomic in one tree at a fraction of the cost of a transaction across trees,
/// which reads every key before writing it and copies the batch (BENCHMARKS.md "Store"),
/// and a batch per tree made sled write twice the bytes for the same records
/// (BENCHMARKS.md "Tenants").
#[derive(Clone)]
struct Trees {
    records: Tree,
    /// The tenant's scope: the start of every key of its records.
    scope: Arc<[u8]>,
    /// Every record of the store, not one tenant's (the deployment's backup).
    whole: bool,
    agents: Keyspace,
    queues: Keyspace,
    entry_points: Keyspace,
    conversations: Keyspace,
    messages: Keyspace,
    ended: Keyspace,
    meta: Keyspace,
    outbox: Keyspace,
    mids: Keyspace,
    mid_times: Keyspace,
    names: Keyspace,
    supervisors: Keyspace,
    audit: Keyspace,
    last_owners: Keyspace,
    /// Report records ([`prefix::RECORDS`]).
    reports: Keyspace,
    /// Report rows of figures ([`prefix::FIGURES`]).
    figures: Keyspace,
    /// Search texts of report records ([`prefix::SEARCH`]).
    search: Keyspace,
    /// Report records by customer ([`prefix::BY_CUSTOMER`]).
    by_customer: Keyspace,
    /// Canned responses ([`prefix::CANNED`]).
    canned: Keyspace,
    /// Webhook subscriptions ([`prefix::WEBHOOKS`]).
    webhooks: Keyspace,
    /// Webhook events ([`prefix::WEBHOOK_EVENTS`]).
    webhook_events: Keyspace,
    /// Pending satisfaction surveys ([`prefix::SURVEYS`]).
    surveys: Keyspace,
    /// Ratings of conversations ([`prefix::RATINGS`]).
    ratings: Keyspace,
}

impl Trees {
    /// Tenant `default`'s.
    fn new(db: &Db) -> Trees {
        Trees::scoped(db, &[])
    }

    /// The records of the tenant whose keys start with `scope`.
    fn scoped(db: &Db, scope: &[u8]) -> Trees {
        let records: Tree = (**db).clone();
        let space = |kind: u8| {
            let mut prefix = scope.to_vec();
            prefix.push(kind);
            Keyspace {
                tree: records.clone(),
                prefix: prefix.into(),
            }
        };
        Trees {
            agents: space(prefix::AGENTS),
            queues: space(prefix::QUEUES),
            entry_points: space(prefix::ENTRY_POINTS),
            conversations: space(prefix::CONVERSATIONS),
            messages: space(prefix::MESSAGES),
            ended: space(prefix::ENDED),
            meta: space(prefix::META),
            outbox: space(prefix::OUTBOX),
            mids: space(prefix::MIDS),
            mid_times: space(prefix::MID_TIMES),
            names: space(prefix::NAMES),
            supervisors: space(prefix::SUPERVISORS),
            audit: space(prefix::AUDIT),
            last_owners: space(prefix::LAST_OWNERS),
            reports: space(prefix::RECORDS),
            figures: space(prefix::FIGURES),
            search: space(prefix::SEARCH),
            by_customer: space(prefix::BY_CUSTOMER),
            canned: space(prefix::CANNED),
            webhooks: space(prefix::WEBHOOKS),
            webhook_events: space(prefix::WEBHOOK_EVENTS),
            surveys: space(prefix::SURVEYS),
            ratings: space(prefix::RATINGS),
            scope: scope.into(),
            whole: false,
            records,
        }
    }

    /// Every record of the store: `default`'s keyspaces, every tenant's and the registry.
    fn whole(db: &Db) -> Trees {
        Trees {
            whole: true,
            ..Trees::new(db)
        }
    }

    /// Every record of this tenant (full keys), in key order.
    fn all(&self) -> ::sled::Iter {
        if self.whole {
            self.records.iter()
        } else if self.scope.is_empty() {
            self.records.range(..[TENANT_MARK].as_slice())
        } else {
            self.records.scan_prefix(&*self.scope)
        }
    }

    /// Applies a batch: on disk, all or nothing (sled recovers a batch whole or not at all).
    fn apply(&self, b: Batch) -> Result<(), StoreError> {
        self.records
            .apply_batch(b)
            .map_err(|e| StoreError::Write(format!("batch failed: {e}")))
    }
}

/// A batch of writes, and while a backup is being read the keys it touches: sled's
/// `Batch` does not show its keys, and the writer must save what they hold before the
/// batch replaces it ([`Shadow`]).
struct Writes {
    batch: Batch,
    /// `None` while no backup is being read (nothing is recorded then).
    keys: Option<Vec<Vec<u8>>>,
}

impl Writes {
    fn new(track: bool) -> Writes {
        Writes {
            batch: Batch::default(),
            keys: track.then(Vec::new),
        }
    }

    fn insert(&mut self, key: &[u8], value: &[u8]) {
        if let Some(keys) = &mut self.keys {
            keys.push(key.to_vec());
        }
        self.batch.insert(key, value);
    }

    fn remove(&mut self, key: &[u8]) {
        if let Some(keys) = &mut self.keys {
            keys.push(key.to_vec());
        }
        self.batch.remove(key);
    }
}

/// Where [`add`] writes a change's records: the writer's batch, or a list of
/// [`Op`]s (a tenant's log in a cluster, docs/CLUSTER.md).
trait Sink {
    fn insert(&mut self, key: &[u8], value: &[u8]);
    fn remove(&mut self, key: &[u8]);
}

impl Sink for Writes {
    fn insert(&mut self, key: &[u8], value: &[u8]) {
        Writes::insert(self, key, value);
    }

    fn remove(&mut self, key: &[u8]) {
        Writes::remove(self, key);
    }
}

/// One write of a store's records, as the writer makes it: a key (of tenant `default`'s
/// keyspace) and its new value, or `None` to remove it. Writes are blind (they never read
/// what they replace), so applying a list of them again over a store that has them already
/// leaves it as it was: a snapshot plus a replay from any point at or before the
/// snapshot's gives the same store.
pub type Op = (Vec<u8>, Option<Vec<u8>>);

impl Sink for Vec<Op> {
    fn insert(&mut self, key: &[u8], value: &[u8]) {
        self.push((key.to_vec(), Some(value.to_vec())));
    }

    fn remove(&mut self, key: &[u8]) {
        self.push((key.to_vec(), None));
    }
}

/// The writes a commit of `changes` makes (tenant `default`'s keys), in order: what a
/// cluster appends to a tenant's log (docs/CLUSTER.md). Report figures are written as
/// the rows they make, added to what `base` holds now: `base` must hold every earlier
/// commit and nothing later (the appender commits one group at a time).
pub fn encode_ops(changes: Vec<Change>, base: &SledStore) -> Result<Vec<Op>, StoreError> {
    let mut ops = Vec::with_capacity(changes.len() + 4);
    let (mut key, mut value) = (Vec::new(), Vec::new());
    let mut figures = FiguresSums::default();
    for change in changes {
        if let Change::Figures(d) = change {
            figures.add(&[], *d);
            continue;
        }
        add(&mut ops, change, &[], &mut key, &mut value)?;
    }
    figures.write(&base.trees()?.records, &mut ops, &mut value)?;
    Ok(ops)
}

/// Applies lists of [`Op`]s in order to the stopped store at `dir` (created empty when
/// absent), each list as one atomic batch, then flushes: how a node brings its copy of a
/// tenant from a snapshot up to the end of the tenant's log. Returns how many writes.
pub fn apply_ops(dir: &Path, batches: impl IntoIterator<Item = Vec<Op>>) -> Result<u64, StoreError> {
    let shown = dir.display().to_string();
    if !dir.join("db").exists() {
        // A new store: opened once as the engine would, so it carries the format marker.
        SledStore::open(dir, SledOptions::default())?.close();
        wait_released(dir);
    }
    let write = |e: ::sled::Error| StoreError::Write(format!("{shown}: {e}"));
    let mut n = 0u64;
    {
        let db = open_db_with(dir, RESTORE_CACHE)?;
        for ops in batches {
            let mut batch = Batch::default();
            for (k, v) in ops {
                n += 1;
                match v {
                    Some(v) => batch.insert(k, v),
                    None => batch.remove(k),
                }
            }
            db.apply_batch(batch).map_err(write)?;
        }
        db.flush().map_err(write)?;
    }
    wait_released(dir);
    Ok(n)
}

/// The writer's reusable encoding buffers: one key and one value buffer for every record
/// of a group (a record is copied once, into sled's own value, instead of being built in
/// a growing `Vec` of its own), and the per-change "replaced later" flags.
#[derive(Default)]
struct Scratch {
    key: Vec<u8>,
    value: Vec<u8>,
    replaced: Vec<bool>,
}

/// Which record a change rewrites whole (`None` for a message, which is never rewritten).
/// Two changes with the same slot in one group: only the later one needs to be written.
fn slot(change: &Change) -> Option<(u8, &str)> {
    match change {
        Change::Agent(a) => Some((0, &a.id)),
        Change::Queue(q) => Some((1, &q.id)),
        Change::EntryPoint(e) => Some((2, &e.id)),
        Change::Conversation(c) => Some((3, &c.id)),
        Change::Counters { .. } => Some((4, "")),
        Change::Supervisor(s) => Some((5, &s.id)),
        // Written in order, each: a later version of the same key wins inside the batch.
        Change::Message { .. }
        | Change::MessageUpdate { .. }
        | Change::Outbox(_)
        | Change::OutboxDone { .. }
        | Change::Mid { .. }
        | Change::CustomerName { .. }
        | Change::Audit { .. }
        | Change::LastOwner { .. }
        | Change::Record(_)
        | Change::SearchText { .. }
        | Change::Figures(_)
        | Change::CannedResponse(_)
        | Change::CannedResponseRemoved(_)
        | Change::Webhook(_)
        | Change::WebhookRemoved(_)
        | Change::WebhookEvent(_)
        | Change::WebhookTrim { .. }
        | Change::Survey { .. }
        | Change::Satisfaction { .. } => None,
    }
}

/// Encodes a group's changes into one batch, skipping every record version that a later
/// change of the same group replaces: the whole group is applied atomically, so the
/// earlier version could never be read back, and encoding it is wasted work (an agent's or
/// a conversation's record often changes several times in one group). Returns how many
/// changes were skipped.
fn encode_group(
    changes: Vec<Vec<Change>>,
    batch: &mut Writes,
    scratch: &mut Scratch,
    scope: &[u8],
    tree: &Tree,
) -> Result<u64, StoreError> {
    let n: usize = changes.iter().map(Vec::len).sum();
    let replaced = &mut scratch.replaced;
    replaced.clear();
    replaced.resize(n, false);
    let mut seen: HashSet<(u8, &str), foldhash::fast::RandomState> =
        HashSet::with_capacity_and_hasher(n, Default::default());
    // Newest first: the first time a slot is seen is its last version.
    for (i, change) in changes.iter().rev().flat_map(|c| c.iter().rev()).enumerate() {
        if let Some(slot) = slot(change) {
            if !seen.insert(slot) {
                replaced[n - 1 - i] = true;
            }
        }
    }
    drop(seen);
    let mut skipped = 0;
    let mut figures = FiguresSums::default();
    for (i, change) in changes.into_iter().flatten().enumerate() {
        if scratch.replaced[i] {
            skipped += 1;
            continue;
        }
        if let Change::Figures(d) = change {
            figures.add(scope, *d);
            continue;
        }
        add(batch, change, scope, &mut scratch.key, &mut scratch.value)?;
    }
    figures.write(tree, batch, &mut scratch.value)?;
    Ok(skipped)
}

/// The figures deltas of one group, added up per row first ([`Change::Figures`]).
#[derive(Default)]
struct FiguresSums(BTreeMap<Vec<u8>, Figures>);

impl FiguresSums {
    fn add(&mut self, scope: &[u8], d: crate::core::figures::Delta) {
        let mut key = Vec::with_capacity(scope.len() + 32);
        key.extend_from_slice(scope);
        key.push(prefix::FIGURES);
        record::figures_key_into(&mut key, &d.subject, d.interval);
        match self.0.entry(key) {
            std::collections::btree_map::Entry::Occupied(mut e) => e.get_mut().add(&d.figures),
            std::collections::btree_map::Entry::Vacant(e) => {
                e.insert(d.figures);
            }
        }
    }

    /// Adds each sum to its row as `tree` holds it and writes the row into `batch`. Only
    /// one writer writes rows (the store's writer; a cluster's appender, one group at a
    /// time), so what it reads is what the batch replaces: the sum goes into the same
    /// atomic batch as the deltas' causes.
    fn write(self, tree: &Tree, batch: &mut impl Sink, value: &mut Vec<u8>) -> Result<(), StoreError> {
        for (key, delta) in self.0 {
            let mut row = match tree.get(&key) {
                Ok(Some(v)) => record::decode_figures(&key, &v)?,
                Ok(None) => Figures::default(),
                Err(e) => return Err(StoreError::Read(format!("a figures row: {e}"))),
            };
            row.add(&delta);
            value.clear();
            record::encode_figures_into(value, &row)?;
            batch.insert(&key, value);
        }
        Ok(())
    }
}

/// Encodes one change of the tenant whose keys start with `scope` into `batch`. `key`
/// and `value` are scratch buffers: sled copies
/// short keys inline and each value once into its own allocation.
fn add(
    batch: &mut impl Sink,
    change: Change,
    scope: &[u8],
    key: &mut Vec<u8>,
    value: &mut Vec<u8>,
) -> Result<(), StoreError> {
    key.clear();
    key.extend_from_slice(scope);
    value.clear();
    match change {
        Change::Agent(a) => {
            key.push(prefix::AGENTS);
            key.extend_from_slice(a.id.as_bytes());
            encode_agent_into(value, &AgentV3::from(*a))?;
        }
        Change::Queue(q) => {
            key.push(prefix::QUEUES);
            key.extend_from_slice(q.id.as_bytes());
            record::encode_queue_into(value, q)?;
        }
        Change::EntryPoint(e) => {
            key.push(prefix::ENTRY_POINTS);
            key.extend_from_slice(e.id.as_bytes());
            encode_versioned_into(value, record::ENTRY_POINT_V3, &record::EntryPointV3::from(e))?;
        }
        Change::Conversation(c) => {
            // `ended_at` is set once, when the conversation ends, so the last version of
            // a group indexes it as well as every earlier one would have.
            if let Some(at) = c.ended_at {
                key.push(prefix::ENDED);
                push_ended_key(key, at, &c.id);
                batch.insert(&key[..], &[]);
                key.clear();
                key.extend_from_slice(scope);
            }
            key.push(prefix::CONVERSATIONS);
            key.extend_from_slice(c.id.as_bytes());
            record::encode_conversation_into(value, *c)?;
        }
        Change::Message { conversation, message } | Change::MessageUpdate { conversation, message } => {
            key.push(prefix::MESSAGES);
            push_message_key(key, &conversation, message.seq);
            encode_message_into(value, message)?;
        }
        Change::Outbox(o) => {
            key.push(prefix::OUTBOX);
            push_message_key(key, &o.conversation, o.seq);
            record::encode_outbound_into(value, o)?;
        }
        Change::OutboxDone { conversation, seq } => {
            key.push(prefix::OUTBOX);
            push_message_key(key, &conversation, seq);
            batch.remove(&key[..]);
            return Ok(());
        }
        Change::Mid { mid, at } => {
            key.push(prefix::MID_TIMES);
            push_ended_key(key, at, &mid);
            batch.insert(&key[..], &[]);
            key.clear();
            key.extend_from_slice(scope);
            key.push(prefix::MIDS);
            key.extend_from_slice(mid.as_bytes());
            encode_into(value, &MidV1 { at })?;
        }
        Change::CustomerName {
            page_id,
            customer,
            name,
        } => {
            key.push(prefix::NAMES);
            key.extend_from_slice(&record::customer_name_key(&page_id, &customer));
            encode_into(value, &CustomerNameV1 { name })?;
        }
        Change::Supervisor(s) => {
            key.push(prefix::SUPERVISORS);
            key.extend_from_slice(s.id.as_bytes());
            encode_into(value, &SupervisorV1::from(*s))?;
        }
        Change::Audit { entry, forget } => {
            if let Some(old) = forget {
                key.push(prefix::AUDIT);
                key.extend_from_slice(&old.to_be_bytes());
                batch.remove(&key[..]);
                key.clear();
                key.extend_from_slice(scope);
            }
            key.push(prefix::AUDIT);
            key.extend_from_slice(&entry.seq.to_be_bytes());
            encode_into(value, &AuditV1::from(entry))?;
        }
        Change::LastOwner {
            entry_point,
            customer,
            owner,
        } => {
            key.push(prefix::LAST_OWNERS);
            key.extend_from_slice(&record::last_owner_key(&entry_point, &customer));
            let o = LastOwnerV1 {
                agent: owner.agent,
                ended_at: owner.ended_at,
            };
            encode_into(value, &o)?;
        }
        // Added up by `encode_group`, never written as such.
        Change::Figures(_) => return Ok(()),
        Change::SearchText {
            arrived_at,
            conversation,
            text,
        } => {
            key.push(prefix::SEARCH);
            key.extend_from_slice(&record::record_key(arrived_at, &conversation));
            encode_into(value, &text)?;
        }
        Change::CannedResponse(c) => {
            key.push(prefix::CANNED);
            key.extend_from_slice(c.id.as_bytes());
            encode_into(value, &record::CannedResponseV1::from(*c))?;
        }
        Change::CannedResponseRemoved(id) => {
            key.push(prefix::CANNED);
            key.extend_from_slice(id.as_bytes());
            batch.remove(&key[..]);
            return Ok(());
        }
        Change::Webhook(h) => {
            key.push(prefix::WEBHOOKS);
            key.extend_from_slice(h.id.as_bytes());
            encode_into(value, &record::WebhookV1::from(&*h))?;
        }
        Change::WebhookRemoved(id) => {
            key.push(prefix::WEBHOOKS);
            key.extend_from_slice(id.as_bytes());
            batch.remove(&key[..]);
            return Ok(());
        }
        Change::WebhookEvent(e) => {
            key.push(prefix::WEBHOOK_EVENTS);
            key.extend_from_slice(&e.seq.to_be_bytes());
            encode_into(value, &record::WebhookEventV1::from(&*e))?;
        }
        Change::WebhookTrim { from, through } => {
            for seq in from..=through {
                key.truncate(scope.len());
                key.push(prefix::WEBHOOK_EVENTS);
                key.extend_from_slice(&seq.to_be_bytes());
                batch.remove(&key[..]);
            }
            key.truncate(scope.len());
            key.push(prefix::META);
            key.extend_from_slice(META_WEBHOOKS_TRIMMED);
            value.extend_from_slice(&through.to_be_bytes());
        }
        Change::Survey {
            entry_point,
            customer,
            pending,
        } => {
            key.push(prefix::SURVEYS);
            key.extend_from_slice(&record::last_owner_key(&entry_point, &customer));
            match pending {
                Some(p) => encode_into(value, &record::PendingSurveyV1::from(*p))?,
                None => {
                    batch.remove(&key[..]);
                    return Ok(());
                }
            }
        }
        Change::Satisfaction {
            arrived_at,
            conversation,
            satisfaction,
        } => {
            key.push(prefix::RATINGS);
            key.extend_from_slice(&record::record_key(arrived_at, &conversation));
            let v = record::SatisfactionV1 {
                rating: satisfaction.rating,
                at: satisfaction.at,
            };
            encode_into(value, &v)?;
        }
        Change::Record(r) => {
            key.push(prefix::BY_CUSTOMER);
            record::customer_key_into(key, &r.customer.id, r.arrived_at, &r.id);
            batch.insert(&key[..], &[]);
            key.truncate(scope.len());
            key.push(prefix::RECORDS);
            key.extend_from_slice(&record::record_key(r.arrived_at, &r.id));
            record::encode_record_into(value, *r)?;
        }
        Change::Counters {
            next_conversation,
            next_offer,
            next_arrival,
        } => {
            key.push(prefix::META);
            key.extend_from_slice(META_COUNTERS);
            let c = CountersV1 {
                next_conversation,
                next_offer,
                next_arrival,
            };
            encode_into(value, &c)?;
        }
    }
    batch.insert(&key[..], &value[..]);
    Ok(())
}

/// Which tenant's records a job is for: the tenant's id, `""` for `default`.
type Space = Arc<str>;

/// The space of tenant `default`.
const DEFAULT_SPACE: &str = "";

/// The whole store: every tenant's records and the registry (a deployment's backup).
const WHOLE_SPACE: &str = "*";

/// The start of every key of the deployment's tenant registry: after [`TENANT_MARK`],
/// and no tenant's scope (an id holds no `~`).
const REGISTRY_SCOPE: &[u8] = b"~~registry/";

/// Work for the writer thread.
enum Job {
    Commit {
        space: Space,
        changes: Vec<Change>,
        submitted: Instant,
        done: oneshot::Sender<Result<(), StoreError>>,
    },
    Sweep {
        space: Space,
        now: Millis,
        done: mpsc::Sender<Result<usize, StoreError>>,
    },
    /// Write and flush a small probe record ([`Store::probe`]).
    Probe {
        space: Space,
        done: oneshot::Sender<Result<(), StoreError>>,
    },
    /// Fix a backup's point in time, between two groups ([`Store::backup`]).
    Backup {
        space: Space,
        done: oneshot::Sender<Result<Arc<Shadow>, StoreError>>,
    },
    /// Write (or remove) one record of the tenant registry, flushed.
    Registry {
        key: Vec<u8>,
        value: Option<Vec<u8>>,
        done: oneshot::Sender<Result<(), StoreError>>,
    },
    /// Remove every record of a tenant ([`SledStore::drop_tenant`]).
    Drop {
        space: Space,
        done: oneshot::Sender<Result<(), StoreError>>,
    },
}

/// What is open of the database: sled's handle, and the trees of every space opened.
struct Open {
    db: Db,
    spaces: HashMap<Space, Trees>,
}

/// The database under every tenant's store: the directory, the writer thread (one group
/// commit for all of them) and what is open. Shared by the [`SledStore`] of tenant
/// `default`, which owns it, and those of the other tenants.
struct SledDb {
    path: PathBuf,
    /// For reads; `None` once closed. The writer takes a space's trees from here.
    open: Arc<Mutex<Option<Open>>>,
    /// To the writer thread; `None` once closed.
    jobs: Mutex<Option<mpsc::Sender<Job>>>,
    writer: Mutex<Option<JoinHandle<()>>>,
    stats: Arc<Stats>,
    /// Kept to reopen the store the same way after a failed write ([`Store::reopen`]).
    options: SledOptions,
    /// One reopen at a time: every tenant's engine asks for one after a failed write.
    reopening: Mutex<()>,
}

/// The sled store of one tenant: tenant `default`'s owns the database (its directory is
/// `store.path`), every other tenant's is a scope of its records. See the module docs.
pub struct SledStore {
    db: Arc<SledDb>,
    space: Space,
    /// How errors and logs name this store: the directory, and the tenant if not `default`.
    shown: String,
    /// Closed ([`SledStore::close`]): every later job fails.
    closed: AtomicBool,
}

impl std::fmt::Debug for SledStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SledStore").field("store", &self.shown).finish()
    }
}

impl SledStore {
    /// Opens (or creates) the store in directory `path` and starts its writer thread:
    /// tenant `default`'s store, and the database every other tenant's lives in
    /// ([`SledStore::tenant`]).
    ///
    /// Refuses, writing nothing, when the directory is held by another running engine,
    /// when it is not a Switchboard store, or when sled cannot read it.
    pub fn open(path: &Path, options: SledOptions) -> Result<SledStore, StoreError> {
        let shown = path.display().to_string();
        if path.exists() && !path.is_dir() {
            return Err(StoreError::Corrupt {
                what: format!("{shown} is not a directory"),
            });
        }
        let db_file = path.join("db");
        if let Err(e) = std::fs::read_dir(path) {
            if let Some(denied) = denied(path, &e) {
                return Err(denied);
            }
        }
        if path.is_dir() && !db_file.exists() && std::fs::read_dir(path).is_ok_and(|mut d| d.next().is_some()) {
            return Err(StoreError::Corrupt {
                what: format!("{shown} is not empty and holds no store (no `db` file); refusing to write into it"),
            });
        }
        let had_data = std::fs::metadata(&db_file).is_ok_and(|m| m.len() > 0);
        if had_data {
            preflight(path)?;
        }
        create_private_dir(path)?;
        let opening = std::time::Instant::now();
        let db = open_db_with(path, options.cache_capacity)?;
        crate::metrics::recovery_phase("open", opening);
        check_layout(&db, &shown)?;
        let trees = Trees::new(&db);
        mark(&db, &trees, had_data, &shown)?;
        // Only once the store is known to be ours: a refused directory is left as it was.
        make_private(path)?;
        // sled creates `db`, `conf` and `blobs/` without fsyncing a directory, and writes
        // `conf` without fsyncing it; the store directory may be new too. Until all of that
        // is on disk, a power cut can take the whole store with it, however many commits
        // were flushed (tests/power_cut.rs found exactly that). Files already synced cost
        // nothing to sync again.
        sync_dir_tree(path).map_err(|e| StoreError::Write(format!("{shown}: cannot fsync: {e}")))?;
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            sync_path(parent).map_err(|e| StoreError::Write(format!("{}: cannot fsync: {e}", parent.display())))?;
        }
        let stats = Arc::new(Stats::default());
        let open = Arc::new(Mutex::new(Some(Open::new(db, trees))));
        let (tx, handle) = start_writer(&open, &stats, &options)?;
        tracing::info!(path = %shown, "store opened");
        Ok(SledStore {
            db: Arc::new(SledDb {
                path: path.to_path_buf(),
                open,
                jobs: Mutex::new(Some(tx)),
                writer: Mutex::new(Some(handle)),
                stats,
                options,
                reopening: Mutex::new(()),
            }),
            space: DEFAULT_SPACE.into(),
            shown,
            closed: AtomicBool::new(false),
        })
    }

    /// The store of tenant `id` (not `default`): its records in this store's tree under
    /// the tenant's scope ([`tenant_scope`]), with a format marker of their own, written
    /// if the tenant has none yet. It shares the writer thread, group commit, flush and
    /// page cache: a commit of any tenant rides in the same group, and the same batch, as
    /// every other's.
    pub fn tenant(&self, id: &str) -> Result<SledStore, StoreError> {
        let space: Space = id.into();
        let shown = format!("{} (tenant {id})", self.db.path.display());
        {
            let mut guard = lock(&self.db.open)?;
            let open = guard.as_mut().ok_or_else(closed)?;
            if !open.spaces.contains_key(&space) {
                let trees = Trees::scoped(&open.db, &tenant_scope(id));
                mark(&open.db, &trees, false, &shown)?;
                open.spaces.insert(space.clone(), trees);
            }
        }
        Ok(SledStore {
            db: self.db.clone(),
            space,
            shown,
            closed: AtomicBool::new(false),
        })
    }

    /// Removes every record of tenant `id`, durably, on the writer thread (after every
    /// commit handed over before, and a chunk at a time between later groups, so that
    /// the other tenants' commits go on meanwhile). Its store must be closed first.
    pub fn drop_tenant(&self, id: &str) -> CommitFuture {
        let (done, rx) = oneshot::channel();
        if let Err(e) = self.db.send(Job::Drop { space: id.into(), done }) {
            return Box::pin(std::future::ready(Err(e)));
        }
        Box::pin(async move { rx.await.unwrap_or_else(|_| Err(closed())) })
    }

    /// Every record of the store as one backup file (every tenant's and the registry),
    /// as [`Store::backup`] makes one tenant's.
    pub fn backup_all(&self) -> BackupFuture {
        self.backup_of(WHOLE_SPACE.into())
    }

    /// The tenant registry's records: (key, value) in key order.
    pub fn registry(&self) -> Result<Vec<RegistryRecord>, StoreError> {
        let records = lock(&self.db.open)?.as_ref().ok_or_else(closed)?.db.clone();
        records
            .scan_prefix(REGISTRY_SCOPE)
            .map(|item| {
                item.map(|(k, v)| (k[REGISTRY_SCOPE.len()..].to_vec(), v.to_vec()))
                    .map_err(|e| StoreError::Read(format!("{}: {e}", self.shown)))
            })
            .collect()
    }

    /// Writes (`Some`) or removes (`None`) the registry's record `key`, flushed, in order
    /// with every commit before it.
    pub fn put_registry(&self, key: &[u8], value: Option<Vec<u8>>) -> CommitFuture {
        let (done, rx) = oneshot::channel();
        if let Err(e) = self.db.send(Job::Registry {
            key: key.to_vec(),
            value,
            done,
        }) {
            return Box::pin(std::future::ready(Err(e)));
        }
        Box::pin(async move { rx.await.unwrap_or_else(|_| Err(closed())) })
    }

    /// The backup of `space` (a tenant's records, or the whole store's).
    fn backup_of(&self, space: Space) -> BackupFuture {
        let trees = match lock(&self.db.open).map(|g| g.as_ref().and_then(|o| o.spaces.get(&space).cloned())) {
            Ok(Some(trees)) => trees,
            Ok(None) => return Box::pin(std::future::ready(Err(closed()))),
            Err(e) => return Box::pin(std::future::ready(Err(e))),
        };
        if self.closed.load(Ordering::SeqCst) {
            return Box::pin(std::future::ready(Err(closed())));
        }
        let (done, rx) = oneshot::channel();
        if let Err(e) = self.db.send(Job::Backup { space, done }) {
            return Box::pin(std::future::ready(Err(e)));
        }
        let stats = self.db.stats.clone();
        let rate = self.db.options.backup_bytes_per_s;
        Box::pin(async move {
            let shadow = rx.await.unwrap_or_else(|_| Err(closed()))?;
            let (tx, chunks) = tokio::sync::mpsc::channel(BACKUP_QUEUE);
            std::thread::Builder::new()
                .name("switchboard-backup".into())
                .spawn(move || read_backup(&trees, &shadow, &stats, &tx, BACKUP_SLICE, rate))
                .map_err(|e| StoreError::Read(format!("cannot start the backup reader: {e}")))?;
            Ok(BackupStream::new(chunks))
        })
    }

    /// The ids of the tenants the store holds records of (`default` aside).
    pub fn tenant_ids(&self) -> Result<Vec<String>, StoreError> {
        let records = lock(&self.db.open)?.as_ref().ok_or_else(closed)?.db.clone();
        let mut ids = Vec::new();
        let mut from = vec![TENANT_MARK];
        // One seek per tenant: after each id found, on past every key of its scope.
        while let Some(item) = records.range(from.as_slice()..).next() {
            let (k, _) = item.map_err(|e| StoreError::Read(format!("{}: {e}", self.shown)))?;
            if k.starts_with(REGISTRY_SCOPE) {
                break;
            }
            let Some(rest) = k.strip_prefix(&[TENANT_MARK]) else {
                break;
            };
            let Some(end) = rest.iter().position(|b| *b == b'/') else {
                break;
            };
            ids.push(String::from_utf8_lossy(&rest[..end]).into_owned());
            from = tenant_scope(&ids[ids.len() - 1]);
            // `/` + 1: the first key after the whole scope.
            if let Some(last) = from.last_mut() {
                *last = b'/' + 1;
            }
        }
        Ok(ids)
    }

    /// The directory of this store's database.
    pub fn path(&self) -> &Path {
        &self.db.path
    }

    /// The group commit's figures so far (the database's: every tenant's commits).
    pub fn stats(&self) -> StoreStats {
        self.db.stats.snapshot()
    }

    /// Removes ended conversations (and their messages) that ended more than the retention
    /// period before `now`, except those an agent still owes a wrap-up for. Runs on the
    /// writer thread, in order with commits; returns how many conversations were removed.
    pub fn sweep(&self, now: Millis) -> Result<usize, StoreError> {
        let (tx, rx) = mpsc::channel();
        self.send(Job::Sweep {
            space: self.space.clone(),
            now,
            done: tx,
        })?;
        rx.recv().map_err(|_| closed())?
    }

    /// Tenant `default`'s store: finishes the commits already handed over, stops the
    /// writer and releases the directory (its lock); later commits of every tenant fail
    /// with [`StoreError::Write`]. Another tenant's: its later commits fail; the database
    /// goes on. Dropping the store does the same. The summary of the store's life is
    /// logged once, by the call that closed it.
    pub fn close(&self) {
        if self.closed.swap(true, Ordering::SeqCst) || !self.owner() {
            return;
        }
        if self.db.shut() {
            self.db.log_summary("store closed");
        }
    }

    fn owner(&self) -> bool {
        &*self.space == DEFAULT_SPACE
    }

    fn send(&self, job: Job) -> Result<(), StoreError> {
        if self.closed.load(Ordering::SeqCst) {
            return Err(closed());
        }
        self.db.send(job)
    }

    /// This store's trees, for a read on the caller's thread.
    fn trees(&self) -> Result<Trees, StoreError> {
        let guard = lock(&self.db.open)?;
        let open = guard
            .as_ref()
            .ok_or_else(|| StoreError::Read("the store is closed".into()))?;
        open.spaces
            .get(&self.space)
            .cloned()
            .ok_or_else(|| StoreError::Read(format!("{} is not open", self.shown)))
    }
}

impl Open {
    fn new(db: Db, trees: Trees) -> Open {
        let mut spaces = HashMap::new();
        spaces.insert(Space::from(DEFAULT_SPACE), trees);
        spaces.insert(Space::from(WHOLE_SPACE), Trees::whole(&db));
        Open { db, spaces }
    }
}

impl SledDb {
    /// Stops the writer and releases the directory; true if it was open.
    fn shut(&self) -> bool {
        drop(lock_to_close(&self.jobs).take());
        if let Some(h) = lock_to_close(&self.writer).take() {
            let _ = h.join();
        }
        let was_open = lock_to_close(&self.open).take().is_some();
        if was_open {
            wait_released(&self.path);
        }
        was_open
    }

    fn log_summary(&self, what: &'static str) {
        let s = self.stats.snapshot();
        tracing::info!(
            path = %self.path.display(),
            commits = s.commits,
            coalesced = s.coalesced,
            flushes = s.flushes,
            mean_commits_per_flush = s.mean_commits_per_flush(),
            mean_flush_ms = s.mean_flush_ms(),
            failed = s.failed,
            "{what}"
        );
    }

    fn send(&self, job: Job) -> Result<(), StoreError> {
        match lock(&self.jobs)?.as_ref() {
            Some(tx) => tx.send(job).map_err(|_| closed()),
            None => Err(closed()),
        }
    }

    /// Closes the failed database and opens it again with every space that was open: sled
    /// recovers what was flushed, the writer starts afresh. Nothing is done while the
    /// database has not failed (another tenant's engine may have reopened it already).
    fn reopen(&self) -> Result<(), StoreError> {
        let _one = lock(&self.reopening)?;
        if !self.stats.failed.load(Ordering::SeqCst) && lock(&self.open)?.is_some() {
            return Ok(());
        }
        let names: Vec<Space> = lock(&self.open)?
            .as_ref()
            .map(|o| o.spaces.keys().cloned().collect())
            .unwrap_or_default();
        if self.shut() {
            self.log_summary("store closed after a failed write");
        }
        let shown = self.path.display().to_string();
        let (db, trees) = open_marked(&self.path, self.options.cache_capacity, || {
            format!("{shown} lost its format marker; refusing to use it")
        })?;
        let mut open = Open::new(db, trees);
        for name in names
            .into_iter()
            .filter(|n| &**n != DEFAULT_SPACE && &**n != WHOLE_SPACE)
        {
            let trees = Trees::scoped(&open.db, &tenant_scope(&name));
            open.spaces.insert(name, trees);
        }
        *lock(&self.open)? = Some(open);
        let (tx, handle) = start_writer(&self.open, &self.stats, &self.options)?;
        self.stats.failed.store(false, Ordering::SeqCst);
        *lock(&self.jobs)? = Some(tx);
        *lock(&self.writer)? = Some(handle);
        tracing::info!(path = %shown, "store reopened");
        Ok(())
    }
}

/// Checks the format marker of a space's `trees`, writing it (flushed) into an empty
/// space: a space with records but no marker, or another format's, is refused. A space
/// of a build before the index of records by customer is indexed now, once.
fn mark(db: &Db, trees: &Trees, had_data: bool, shown: &str) -> Result<(), StoreError> {
    match trees.meta.get(META_FORMAT).map_err(|e| sled_error(shown, e))? {
        Some(v) if v.as_ref() == [STORE_FORMAT] => index_by_customer(db, trees, shown),
        Some(v) => Err(StoreError::UnknownVersion {
            record: format!("meta/format of {shown}"),
            version: v.first().copied().unwrap_or(0),
        }),
        None => {
            if had_data || trees.all().next().is_some() {
                return Err(StoreError::Corrupt {
                    what: format!("{shown} holds data but no format marker; refusing to use it"),
                });
            }
            let mut b = Batch::default();
            b.insert(trees.meta.key(META_FORMAT), &[STORE_FORMAT]);
            b.insert(trees.meta.key(META_BY_CUSTOMER), &[]);
            trees
                .records
                .apply_batch(b)
                .and_then(|_| db.flush())
                .map(|_| ())
                .map_err(|e| StoreError::Write(format!("{shown}: {e}")))
        }
    }
}

/// Writes the index of report records by customer ([`prefix::BY_CUSTOMER`]) for every
/// record of a space that has none yet (a store of a build before the index), then marks
/// the space indexed ([`META_BY_CUSTOMER`]), flushed: a crash midway indexes again from
/// the start, which writes the same keys. Runs once, at open, before any commit.
fn index_by_customer(db: &Db, trees: &Trees, shown: &str) -> Result<(), StoreError> {
    let failed = |e: ::sled::Error| StoreError::Write(format!("{shown}: cannot index records by customer: {e}"));
    if trees.meta.get(META_BY_CUSTOMER).map_err(failed)?.is_some() {
        return Ok(());
    }
    let started = std::time::Instant::now();
    let (mut b, mut n, mut total) = (Batch::default(), 0, 0u64);
    let mut key = Vec::new();
    // Every record key is 8 bytes of time and an id of `[A-Za-z0-9_.-]`: all below this.
    for item in trees.reports.range_cold(&[], &[0xff_u8; 9]) {
        let (k, v) = item.map_err(failed)?;
        let r = decode_record(&k, &v)?;
        key.clear();
        record::customer_key_into(&mut key, &r.customer.id, r.arrived_at, &r.id);
        b.insert(trees.by_customer.key(&key), &[]);
        n += 1;
        if n == SWEEP_CHUNK {
            trees.records.apply_batch(std::mem::take(&mut b)).map_err(failed)?;
            total += n as u64;
            n = 0;
        }
    }
    total += n as u64;
    b.insert(trees.meta.key(META_BY_CUSTOMER), &[]);
    trees.records.apply_batch(b).and_then(|_| db.flush()).map_err(failed)?;
    if total > 0 {
        tracing::info!(path = %shown, records = total, ms = started.elapsed().as_millis() as u64, "report records indexed by customer (once)");
    }
    Ok(())
}

impl Drop for SledStore {
    fn drop(&mut self) {
        self.close();
    }
}

impl Store for SledStore {
    fn commit(&self, changes: Vec<Change>) -> CommitFuture {
        let (done, rx) = oneshot::channel();
        let job = Job::Commit {
            space: self.space.clone(),
            changes,
            submitted: Instant::now(),
            done,
        };
        if let Err(e) = self.send(job) {
            return Box::pin(std::future::ready(Err(e)));
        }
        Box::pin(async move { rx.await.unwrap_or_else(|_| Err(closed())) })
    }

    fn load(&self) -> Result<Snapshot, StoreError> {
        load(&self.trees()?, &self.shown)
    }

    fn conversation(&self, id: &str) -> Result<Option<Conversation>, StoreError> {
        // Reads go straight to sled's tree from the caller's thread: sled serves
        // concurrent readers beside the writer thread, and a group's batch is visible to
        // them as soon as `apply_batch` applied it (before its flush).
        read_conversation(&self.trees()?, id, &self.shown)
    }

    fn records(&self, query: &RecordQuery) -> Result<RecordPage, StoreError> {
        // Straight from sled on the caller's thread, like `conversation`.
        read_records(&self.trees()?, query, &self.shown, false)
    }

    fn records_bulk(&self, query: &RecordQuery) -> Result<RecordPage, StoreError> {
        read_records(&self.trees()?, query, &self.shown, true)
    }

    fn figures(&self, subject: &Subject, from: Millis, to: Millis) -> Result<Vec<(Millis, Figures)>, StoreError> {
        let t = self.trees()?;
        let (mut start, mut end) = (t.figures.prefix.to_vec(), t.figures.prefix.to_vec());
        record::figures_key_into(&mut start, subject, from);
        record::figures_key_into(&mut end, subject, to);
        let mut rows = Vec::new();
        for item in t.records.range(start..end) {
            let (k, v) = item.map_err(|e| StoreError::Read(format!("{}: {e}", self.shown)))?;
            let at = record::figures_interval(&k).ok_or_else(|| StoreError::Corrupt {
                what: format!("a figures row's key is too short: {}", record::printable(&k)),
            })?;
            rows.push((at, record::decode_figures(&k, &v)?));
        }
        Ok(rows)
    }

    fn probe(&self) -> CommitFuture {
        let (done, rx) = oneshot::channel();
        if let Err(e) = self.send(Job::Probe {
            space: self.space.clone(),
            done,
        }) {
            return Box::pin(std::future::ready(Err(e)));
        }
        Box::pin(async move { rx.await.unwrap_or_else(|_| Err(closed())) })
    }

    /// Closes the failed database and opens it again (for every tenant: they share it).
    fn reopen(&self) -> Result<(), StoreError> {
        self.db.reopen()
    }

    /// Fixes the point on the writer thread (a group's worth of waiting at most), then
    /// reads on a thread of its own; see [`read_backup`].
    fn backup(&self) -> BackupFuture {
        self.backup_of(self.space.clone())
    }

    fn backup_all(&self) -> BackupFuture {
        SledStore::backup_all(self)
    }

    fn registry(&self) -> Result<Vec<RegistryRecord>, StoreError> {
        SledStore::registry(self)
    }

    fn put_registry(&self, key: &[u8], value: Option<Vec<u8>>) -> CommitFuture {
        SledStore::put_registry(self, key, value)
    }

    fn mid_seen(&self, mid: &str) -> Result<bool, StoreError> {
        self.trees()?
            .mids
            .get(mid.as_bytes())
            .map(|v| v.is_some())
            .map_err(|e| StoreError::Read(e.to_string()))
    }

    fn customer_name(&self, page_id: &str, customer: &str) -> Result<Option<String>, StoreError> {
        let key = record::customer_name_key(page_id, customer);
        match self
            .trees()?
            .names
            .get(&key)
            .map_err(|e| StoreError::Read(e.to_string()))?
        {
            Some(v) => Ok(Some(decode::<CustomerNameV1>("names", &key, &v)?.name)),
            None => Ok(None),
        }
    }

    fn last_owner(&self, entry_point: &str, customer: &str) -> Result<Option<LastOwner>, StoreError> {
        let key = record::last_owner_key(entry_point, customer);
        match self
            .trees()?
            .last_owners
            .get(&key)
            .map_err(|e| StoreError::Read(e.to_string()))?
        {
            Some(v) => Ok(Some(decode_last_owner(&key, &v)?)),
            None => Ok(None),
        }
    }

    fn tenant(&self, id: &str) -> Result<Arc<dyn Store>, StoreError> {
        Ok(Arc::new(SledStore::tenant(self, id)?))
    }

    fn drop_tenant(&self, id: &str) -> CommitFuture {
        SledStore::drop_tenant(self, id)
    }

    fn close(&self) {
        SledStore::close(self);
    }
}

/// Starts the writer thread over the open database.
fn start_writer(
    open: &Arc<Mutex<Option<Open>>>,
    stats: &Arc<Stats>,
    options: &SledOptions,
) -> Result<(mpsc::Sender<Job>, JoinHandle<()>), StoreError> {
    let db = lock(open)?.as_ref().map(|o| o.db.clone()).ok_or_else(closed)?;
    let (tx, rx) = mpsc::channel();
    let writer = Writer {
        db,
        open: open.clone(),
        spaces: HashMap::new(),
        stats: stats.clone(),
        retain_ms: options.retain_ended.map(|d| d.as_millis() as u64),
        retain_records_ms: options.retain_records.map(|d| d.as_millis() as u64),
        sweep_every: options.sweep_every,
        max_group: options.max_group.max(1),
        before_flush: options.before_flush.clone(),
        failed: None,
        scratch: Scratch::default(),
        dropping: Default::default(),
    };
    let handle = std::thread::Builder::new()
        .name("switchboard-store".into())
        .spawn(move || writer.run(rx))
        .map_err(|e| StoreError::Write(format!("cannot start the store writer: {e}")))?;
    Ok((tx, handle))
}

/// Records a backup reader takes from the tree at a time: the reader locks its shadow
/// once per slice, so the writer waits for at most one slice's merge.
pub(crate) const BACKUP_SLICE: usize = 1024;
/// Bytes of the backup file handed to the client at a time.
const BACKUP_CHUNK: usize = 256 << 10;
/// Chunks read ahead of a slow client: with [`BACKUP_CHUNK`], a backup holds about
/// 1.25 MiB of its file in memory whatever the store's size.
const BACKUP_QUEUE: usize = 4;
/// Most bytes a shadow may keep (keys written during a backup ahead of its reader). A
/// backup that would need more fails rather than grow without bound; commits never wait.
const SHADOW_LIMIT: usize = 64 << 20;
/// What one saved key costs beside its key and value (map node, allocation headers).
const SHADOW_OVERHEAD: usize = 64;

/// What the writer keeps for one backup being read: the value at the backup's point of
/// every key changed since that the reader has not passed yet (docs/STORE.md "Backup").
#[derive(Default)]
pub struct Shadow {
    state: Mutex<ShadowState>,
}

#[derive(Default)]
struct ShadowState {
    /// Every key up to this one (in sled's key order) is read and merged: the writer need
    /// not save it any more. `None` before the first slice.
    done: Option<Vec<u8>>,
    /// The reader has read everything; nothing more needs saving.
    finished: bool,
    /// Keys changed since the point and not read yet: what each held then (`None`: absent).
    before: BTreeMap<Vec<u8>, Option<IVec>>,
    /// What `before` costs, roughly (see [`SHADOW_LIMIT`]).
    bytes: usize,
    /// Why the backup cannot be finished (the store failed or closed, the shadow grew
    /// too large); the reader stops with it.
    broken: Option<String>,
}

impl Shadow {
    /// The shadow's state. Its users never leave it half changed (a panic while it is
    /// held at worst loses saved values, and the reader then fails on the poisoned flag).
    fn lock(&self) -> std::sync::MutexGuard<'_, ShadowState> {
        self.state.lock().unwrap_or_else(|p| {
            let mut s = p.into_inner();
            s.fail("a thread panicked while saving records for the backup".into());
            s
        })
    }
}

impl ShadowState {
    fn fail(&mut self, why: String) {
        self.before = BTreeMap::new();
        self.bytes = 0;
        self.broken.get_or_insert(why);
    }
}

/// Reads the tree for one backup and sends the file in chunks, from its own thread.
///
/// The tree is read in slices of `slice` records with one iterator; after each slice,
/// under the shadow's lock, every record of the slice whose key the writer saved is
/// replaced by the saved value (or left out, if the key did not exist at the point), the
/// saved keys of the slice's range that the iterator no longer saw (removed since the
/// point) are put back, and the shadow forgets that range. What goes out is therefore
/// the tree as it was at the point, whatever the writer did meanwhile (docs/STORE.md
/// "Backup"). Stops, leaving nothing behind, when the receiving end is dropped (the
/// client went away); ends the stream with an error when the shadow broke.
fn read_backup(
    trees: &Trees,
    shadow: &Arc<Shadow>,
    stats: &Stats,
    tx: &tokio::sync::mpsc::Sender<Result<Vec<u8>, StoreError>>,
    slice: usize,
    bytes_per_s: u64,
) {
    yield_to_the_engine();
    let started = Instant::now();
    let mut sent = 0u64;
    let mut pace = super::backup::Pace::new(bytes_per_s);
    let mut send = |chunk: Vec<u8>| {
        sent += chunk.len() as u64;
        let ok = tx.blocking_send(Ok(chunk)).is_ok();
        if let Some(wait) = pace.pause(sent) {
            std::thread::sleep(wait);
        }
        ok
    };
    let fail = |e: StoreError| {
        crate::metrics::STORE_ERRORS.with_label_values(&["read"]).inc();
        tracing::error!(error = %e, "backup failed");
        let _ = tx.blocking_send(Err(e));
    };
    let mut out = Vec::with_capacity(BACKUP_CHUNK + (64 << 10));
    let mut file = super::backup::Encoder::new(STORE_FORMAT, &mut out);
    // Leaves not already in sled's cache are read for the backup alone: left in, they
    // would fill the cache with pages nothing else reads (docs/STORE.md "Backup").
    let mut iter = trees.all().leave_cache();
    // A tenant's file holds its keys without its scope: it restores into any tenant.
    let scope = trees.scope.len();
    let mut live: Vec<(IVec, IVec)> = Vec::with_capacity(slice);
    let mut merged: Vec<(IVec, IVec)> = Vec::with_capacity(slice);
    loop {
        live.clear();
        for item in iter.by_ref() {
            match item {
                Ok(kv) => live.push(kv),
                Err(e) => return fail(StoreError::Read(format!("backup: {e}"))),
            }
            if live.len() == slice {
                break;
            }
        }
        let finished = live.len() < slice;
        if stats.failed.load(Ordering::SeqCst) {
            return fail(StoreError::Read("the store failed a write during the backup".into()));
        }
        if let Err(why) = merge_slice(shadow, &mut live, &mut merged, finished) {
            return fail(StoreError::Read(format!("backup: {why}")));
        }
        for (k, v) in merged.drain(..) {
            if is_probe(&k) {
                continue;
            }
            if let Err(e) = file.entry(&k[scope..], &v, &mut out) {
                return fail(StoreError::Read(format!("backup: {e}")));
            }
            if out.len() >= BACKUP_CHUNK
                && !send(std::mem::replace(
                    &mut out,
                    Vec::with_capacity(BACKUP_CHUNK + (64 << 10)),
                ))
            {
                tracing::info!("backup abandoned: its client went away");
                return;
            }
        }
        if finished {
            break;
        }
    }
    let entries = file.entries();
    file.finish(&mut out);
    if !send(out) {
        tracing::info!("backup abandoned: its client went away");
        return;
    }
    tracing::info!(
        entries,
        bytes = sent,
        duration_ms = started.elapsed().as_secs_f64() * 1000.0,
        "backup read"
    );
}

/// Whether `key` is a readiness probe record, `default`'s or a tenant's (left out of
/// backups).
fn is_probe(key: &[u8]) -> bool {
    if key.starts_with(REGISTRY_SCOPE) {
        return false;
    }
    let tail = match key.first() {
        Some(&TENANT_MARK) => match key.iter().position(|b| *b == b'/') {
            Some(i) => &key[i + 1..],
            None => return false,
        },
        _ => key,
    };
    tail.first() == Some(&prefix::META) && &tail[1..] == META_PROBE
}

/// Lowers the calling thread's CPU priority (nice 10) and puts its disk reads in the idle
/// IO class: a backup reads and hashes the whole store as fast as its client takes it, and
/// on a small machine that thread would compete on equal terms with the engine's, whose
/// latency matters more (BENCHMARKS.md "Streaming backup"). The backup still gets the CPU
/// and the disk the engine leaves (the idle class counts where the disk's scheduler
/// honours IO priorities: bfq, mq-deadline). Nothing happens where a call is refused or
/// unavailable.
fn yield_to_the_engine() {
    #[cfg(target_os = "linux")]
    // SAFETY: `gettid` has no preconditions; `setpriority` with `PRIO_PROCESS` and a
    // thread id changes only that thread's nice value (Linux), and `ioprio_set` with
    // `IOPRIO_WHO_PROCESS` and a thread id only that thread's IO priority; both report
    // failure in their return value, which is ignored: the backup works at any priority.
    unsafe {
        let tid = libc::gettid();
        let _ = libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, 10);
        const IOPRIO_WHO_PROCESS: libc::c_long = 1;
        const IOPRIO_CLASS_IDLE: libc::c_long = 3;
        const IOPRIO_CLASS_SHIFT: u32 = 13;
        let _ = libc::syscall(
            libc::SYS_ioprio_set,
            IOPRIO_WHO_PROCESS,
            tid as libc::c_long,
            IOPRIO_CLASS_IDLE << IOPRIO_CLASS_SHIFT,
        );
    }
}

/// Turns one slice of live records (`live`, in key order, after every key already read)
/// into the records the backup holds for that range (`merged`), and moves the shadow's
/// mark past it. See [`read_backup`].
fn merge_slice(
    shadow: &Shadow,
    live: &mut Vec<(IVec, IVec)>,
    merged: &mut Vec<(IVec, IVec)>,
    finished: bool,
) -> Result<(), String> {
    let mut s = shadow.lock();
    if let Some(why) = &s.broken {
        return Err(why.clone());
    }
    let last: Option<Vec<u8>> = live.last().map(|(k, _)| k.to_vec());
    let lower = match &s.done {
        Some(d) => Bound::Excluded(d.as_slice()),
        None => Bound::Unbounded,
    };
    let upper = match (&last, finished) {
        (Some(k), false) => Bound::Included(k.as_slice()),
        _ => Bound::Unbounded,
    };
    let mut saved = s.before.range::<[u8], _>((lower, upper)).peekable();
    for (k, v) in live.drain(..) {
        // Keys removed since the point, which the iterator did not see, come back in order.
        while let Some((sk, sv)) = saved.next_if(|(sk, _)| sk.as_slice() < k.as_ref()) {
            if let Some(sv) = sv {
                merged.push((IVec::from(sk.as_slice()), sv.clone()));
            }
        }
        match saved.next_if(|(sk, _)| sk.as_slice() == k.as_ref()) {
            // Changed since the point: its value then, or nothing if it did not exist.
            Some((_, sv)) => {
                if let Some(sv) = sv {
                    merged.push((k, sv.clone()));
                }
            }
            None => merged.push((k, v)),
        }
    }
    for (sk, sv) in saved {
        if let Some(sv) = sv {
            merged.push((IVec::from(sk.as_slice()), sv.clone()));
        }
    }
    if finished {
        s.finished = true;
        s.before = BTreeMap::new();
        s.bytes = 0;
    } else if let Some(last) = last {
        // Forget what is read: everything up to and including `last`.
        let mut rest = s.before.split_off(last.as_slice());
        rest.remove(last.as_slice());
        s.bytes = rest
            .iter()
            .map(|(k, v)| SHADOW_OVERHEAD + k.len() + v.as_ref().map_or(0, |v| v.len()))
            .sum();
        s.before = rest;
        s.done = Some(last);
    }
    Ok(())
}

/// How much of sled's cache restore lets it use (sled's default is 1 GiB, which a restore
/// of a large store would fill for nothing: it reads nothing back but a count).
const RESTORE_CACHE: u64 = 64 << 20;
/// Records go into the new store in batches of about this many bytes. Each write of a
/// batch copies the sled node it lands in, and the old copies are freed only once the
/// batch is applied (the vendored sled then collects them: vendor/sled/README.switchboard.md),
/// so the batch bounds that garbage as well as restore's own buffer: at 256 KiB a restore
/// peaks around 200 MiB where 4 MiB batches peaked near 500 MiB (BENCHMARKS.md
/// "Streaming backup").
const RESTORE_BATCH: usize = 256 << 10;
/// sled's log is flushed (written and fsynced) after about this many bytes of batches, and
/// at the end; a restore that fails midway is removed whole, so the batches in between need
/// no flush of their own.
const RESTORE_FLUSH: usize = 4 << 20;

/// Writes the backup file `from` (see [`super::backup`]) into `dir`, which must be absent
/// or empty, as a stream: restore holds one batch of the file at a time, and sled its cache
/// ([`RESTORE_CACHE`]), the garbage of one batch ([`RESTORE_BATCH`]) and a few bytes of
/// metadata per page it wrote. The file is read
/// twice: once to check all of it (magic, formats, every length, the count, the checksum)
/// before anything is written, then to write it, checked again as it is read. On any
/// failure after writing started, what was written is removed: an absent `dir` is absent
/// again, an empty one is empty again. On success everything written is fsynced (sled's
/// file, the directory) and the result has opened as a store and read back record for
/// record. Returns how many records were restored.
pub fn restore(from: &Path, dir: &Path) -> Result<u64, StoreError> {
    let shown = dir.display().to_string();
    let file = BackupFile(from);
    let expected = file.verify()?;
    let existed = dir.exists();
    if existed {
        let mut listing = std::fs::read_dir(dir).map_err(|e| StoreError::Read(format!("{shown}: {e}")))?;
        if listing.next().is_some() {
            return Err(StoreError::Write(format!(
                "{shown} is not empty; restore writes only into an empty or absent directory"
            )));
        }
    }
    create_private_dir(dir)?;
    let result = file.open().and_then(|input| {
        restore_into(input, dir, expected).map_err(|e| match e {
            RestoreError::Backup(e) => file.bad(e),
            RestoreError::Store(e) => e,
        })
    });
    if result.is_err() {
        wait_released(dir);
        if let Err(e) = undo(dir, existed) {
            tracing::error!(path = %shown, error = %e, "restore failed and could not remove what it wrote");
        }
    }
    result
}

/// Writes a backup file (one tenant's, or any store's) into tenant `id`'s scope of the
/// store in `dir`, which must exist and be stopped (sled's lock). The tenant must hold no
/// records yet (its format marker aside), unless `replace`: then its records are removed
/// first. The file is checked whole before anything is written, as [`restore`] does; on
/// a failure after writing started, the tenant's records are removed (with `replace`, the
/// tenant is then empty: restore again). The tenant must be in the deployment's registry
/// (its record holds its name, limits and admin token; its accounts and tokens come back
/// with its records): one it does not hold is refused, since it would not be served.
/// Returns how many records were restored.
pub fn restore_tenant(from: &Path, dir: &Path, id: &str, replace: bool) -> Result<u64, StoreError> {
    if !crate::core::tenant::valid_tenant_id(id) || id == crate::core::tenant::DEFAULT_TENANT {
        return Err(StoreError::Write(format!(
            "`{id}` is not the id of a tenant other than `default` (tenant `default` is the store \
             itself: restore it with --store-path alone, into an empty directory)"
        )));
    }
    let shown = format!("{} (tenant {id})", dir.display());
    let file = BackupFile(from);
    let expected = file.verify()?;
    if !dir.join("db").exists() {
        return Err(StoreError::Read(format!(
            "{} holds no store; a tenant is restored into the deployment's existing store",
            dir.display()
        )));
    }
    preflight(dir)?;
    let (db, _) = open_marked(dir, RESTORE_CACHE, || {
        format!("{} holds no store format record", dir.display())
    })?;
    // A tenant the registry does not hold would sit in the store unserved (its name,
    // limits and admin token are the registry's): the operator creates it first.
    let registered = db
        .contains_key([REGISTRY_SCOPE, id.as_bytes()].concat())
        .map_err(|e| sled_error(&shown, e))?;
    if !registered {
        return Err(StoreError::Write(format!(
            "{} has no tenant `{id}` in its registry; create it first (POST /api/v1/tenants, \
             which issues its admin token), stop the engine and restore again",
            dir.display()
        )));
    }
    let scope = tenant_scope(id);
    let trees = Trees::scoped(&db, &scope);
    let has_records = trees
        .all()
        .keys()
        .any(|k| k.map_or(true, |k| k.get(scope.len()) != Some(&prefix::META)));
    if has_records && !replace {
        return Err(StoreError::Write(format!(
            "{shown} holds records already; restore writes only into a tenant with none, \
             or replaces them all with --replace"
        )));
    }
    let result = remove_all(&db, &trees, &shown)
        .map_err(RestoreError::Store)
        .and_then(|()| {
            let input = file.open().map_err(RestoreError::Store)?;
            restore_scoped(input, &db, &trees, expected, &shown)
        });
    let result = result.map_err(|e| match e {
        RestoreError::Backup(e) => file.bad(e),
        RestoreError::Store(e) => e,
    });
    if result.is_err() {
        if let Err(e) = remove_all(&db, &trees, &shown) {
            tracing::error!(store = %shown, error = %e, "restore failed and could not remove what it wrote");
        }
    }
    drop(trees);
    drop(db);
    wait_released(dir);
    result
}

/// Removes every record of `trees`' tenant, a batch at a time, and flushes.
fn remove_all(db: &Db, trees: &Trees, shown: &str) -> Result<(), StoreError> {
    let write = |e: ::sled::Error| StoreError::Write(format!("{shown}: {e}"));
    loop {
        let mut batch = Batch::default();
        let mut n = 0;
        for k in trees.all().keys().take(SWEEP_CHUNK) {
            batch.remove(k.map_err(write)?);
            n += 1;
        }
        if n == 0 {
            return db.flush().map(|_| ()).map_err(write);
        }
        trees.apply(batch)?;
    }
}

/// The writing half of [`restore_tenant`]: the records under the tenant's scope,
/// flushed, then read back and counted.
fn restore_scoped(
    input: impl std::io::Read,
    db: &Db,
    trees: &Trees,
    expected: u64,
    shown: &str,
) -> Result<u64, RestoreError> {
    let write = |e: ::sled::Error| StoreError::Write(format!("{shown}: {e}"));
    let mut n = 0u64;
    let mut records = super::backup::Decoder::new(input, STORE_FORMAT)?;
    let mut batch = Batch::default();
    let mut bytes = 0;
    let mut unflushed = 0;
    let mut key = Vec::new();
    while let Some((k, v)) = records.next_record()? {
        bytes += k.len() + v.len();
        key.clear();
        key.extend_from_slice(&trees.scope);
        key.extend_from_slice(&k);
        batch.insert(key.as_slice(), v);
        n += 1;
        if bytes >= RESTORE_BATCH {
            trees.apply(std::mem::take(&mut batch))?;
            unflushed += bytes;
            bytes = 0;
            if unflushed >= RESTORE_FLUSH {
                db.flush().map_err(write)?;
                unflushed = 0;
            }
        }
    }
    trees.apply(batch)?;
    db.flush().map_err(write)?;
    if n != expected {
        return Err(StoreError::Corrupt {
            what: format!("the backup changed while it was restored ({expected} records, then {n})"),
        }
        .into());
    }
    match trees.meta.get(META_FORMAT).map_err(write)? {
        Some(v) if v.as_ref() == [STORE_FORMAT] => {}
        _ => {
            return Err(StoreError::Corrupt {
                what: "the backup holds no store format record".into(),
            }
            .into())
        }
    }
    let read = trees.all().try_fold(0u64, |n, item| {
        item.map(|_| n + 1)
            .map_err(|e| StoreError::Read(format!("{shown}: {e}")))
    })?;
    if read != n {
        return Err(StoreError::Corrupt {
            what: format!("{shown}: {n} records written, {read} read back"),
        }
        .into());
    }
    Ok(n)
}

/// A backup file to restore: opened as a stream, and its faults named after it.
struct BackupFile<'a>(&'a Path);

impl BackupFile<'_> {
    fn open(&self) -> Result<std::io::BufReader<std::fs::File>, StoreError> {
        std::fs::File::open(self.0)
            .map(|f| std::io::BufReader::with_capacity(1 << 20, f))
            .map_err(|e| StoreError::Read(format!("cannot read {}: {e}", self.0.display())))
    }

    fn bad(&self, e: super::backup::BackupError) -> StoreError {
        StoreError::Corrupt {
            what: format!("the backup {}: {e}", self.0.display()),
        }
    }

    /// Reads the whole file and checks it (magic, formats, lengths, count, checksum):
    /// its record count.
    fn verify(&self) -> Result<u64, StoreError> {
        super::backup::verify(self.open()?, STORE_FORMAT).map_err(|e| self.bad(e))
    }
}

enum RestoreError {
    Backup(super::backup::BackupError),
    Store(StoreError),
}

impl From<super::backup::BackupError> for RestoreError {
    fn from(e: super::backup::BackupError) -> Self {
        RestoreError::Backup(e)
    }
}

impl From<StoreError> for RestoreError {
    fn from(e: StoreError) -> Self {
        RestoreError::Store(e)
    }
}

/// The writing half of [`restore`].
fn restore_into(input: impl std::io::Read, dir: &Path, expected: u64) -> Result<u64, RestoreError> {
    let shown = dir.display().to_string();
    let write = |e: ::sled::Error| StoreError::Write(format!("{shown}: {e}"));
    let mut n = 0u64;
    {
        let db = open_db_with(dir, RESTORE_CACHE)?;
        let mut records = super::backup::Decoder::new(input, STORE_FORMAT)?;
        let mut batch = Batch::default();
        let mut bytes = 0;
        let mut unflushed = 0;
        while let Some((k, v)) = records.next_record()? {
            bytes += k.len() + v.len();
            batch.insert(k, v);
            n += 1;
            if bytes >= RESTORE_BATCH {
                db.apply_batch(std::mem::take(&mut batch)).map_err(write)?;
                unflushed += bytes;
                bytes = 0;
                if unflushed >= RESTORE_FLUSH {
                    db.flush().map_err(write)?;
                    unflushed = 0;
                }
            }
        }
        db.apply_batch(batch).map_err(write)?;
        db.flush().map_err(write)?;
    }
    wait_released(dir);
    if n != expected {
        return Err(StoreError::Corrupt {
            what: format!("the backup changed while it was restored ({expected} records, then {n})"),
        }
        .into());
    }
    // What was written must open like any store and read back whole.
    preflight(dir)?;
    {
        let (_db, trees) = open_marked(dir, RESTORE_CACHE, || "the backup holds no store format record".into())?;
        let mut read = 0u64;
        for item in trees.records.iter() {
            item.map_err(|e| StoreError::Read(format!("{shown}: {e}")))?;
            read += 1;
        }
        if read != n {
            return Err(StoreError::Corrupt {
                what: format!("{shown}: {n} records written, {read} read back"),
            }
            .into());
        }
    }
    wait_released(dir);
    // Like the engine's store: the files sled made under the umask are the owner's alone.
    make_private(dir)?;
    sync_dir_tree(dir).map_err(|e| StoreError::Write(format!("{shown}: cannot fsync: {e}")))?;
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        sync_path(parent).map_err(|e| StoreError::Write(format!("{}: cannot fsync: {e}", parent.display())))?;
    }
    Ok(n)
}

/// Opens the existing store at `path` (sled's page cache `cache` bytes), checks its layout,
/// and requires this build's format marker: `Corrupt` with `missing()` when it is absent
/// or another. (A first open, which may write the marker, is [`SledStore::open`]'s.)
fn open_marked(path: &Path, cache: u64, missing: impl FnOnce() -> String) -> Result<(::sled::Db, Trees), StoreError> {
    let shown = path.display().to_string();
    let db = open_db_with(path, cache)?;
    check_layout(&db, &shown)?;
    let trees = Trees::new(&db);
    match trees.meta.get(META_FORMAT).map_err(|e| sled_error(&shown, e))? {
        Some(v) if v.as_ref() == [STORE_FORMAT] => Ok((db, trees)),
        _ => Err(StoreError::Corrupt { what: missing() }),
    }
}

/// fsyncs every file under `dir`, then `dir` itself (its entries).
fn sync_dir_tree(dir: &Path) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            sync_dir_tree(&entry.path())?;
        } else {
            std::fs::File::open(entry.path())?.sync_all()?;
        }
    }
    sync_path(dir)
}

/// fsyncs one file or directory.
pub fn sync_path(path: &Path) -> std::io::Result<()> {
    std::fs::File::open(path)?.sync_all()
}

/// Removes what a failed restore wrote into `dir`: all of it, and `dir` too unless it
/// existed before.
fn undo(dir: &Path, existed: bool) -> std::io::Result<()> {
    if !existed {
        return std::fs::remove_dir_all(dir);
    }
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            std::fs::remove_dir_all(&path)?;
        } else {
            std::fs::remove_file(&path)?;
        }
    }
    Ok(())
}

/// A lock of the store's own state. Poisoned (a thread panicked holding it) is an error
/// for every operation that can report one: the state behind it may be half changed.
fn lock<T>(m: &Mutex<T>) -> Result<std::sync::MutexGuard<'_, T>, StoreError> {
    m.lock()
        .map_err(|_| StoreError::Write("the store's state is unusable: a thread panicked while changing it".into()))
}

/// [`lock`] for closing, which must release the directory whatever happened: a poisoned
/// lock is logged and taken over, since closing only takes things out of it.
fn lock_to_close<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| {
        tracing::error!("a store lock was poisoned by a panic; closing the store anyway");
        p.into_inner()
    })
}

fn closed() -> StoreError {
    StoreError::Write("the store is closed".into())
}

/// Checks sled's files before sled opens them, because sled repairs what it cannot read
/// (it treats an unreadable log as a torn tail and writes over it): the `conf` file's
/// checksum, and the header checksums of the `db` file's segments ([`torn_tail_only`]).
/// A store that fails is refused and left as it is. This reads sled 0.34's on-disk
/// format (pinned in Cargo.toml): 20-byte segment headers `[crc ^ !0][lsn][stable lsn]`.
fn preflight(path: &Path) -> Result<(), StoreError> {
    use std::io::Read;
    let shown = path.display();
    let corrupt = |what: String| StoreError::Corrupt {
        what: format!("{shown}: {what}"),
    };
    let conf = std::fs::read(path.join("conf"))
        .map_err(|e| denied(path, &e).unwrap_or_else(|| corrupt(format!("cannot read conf: {e}"))))?;
    if conf.len() <= 8 {
        return Err(corrupt("the conf file is truncated".into()));
    }
    let (body, crc) = conf.split_at(conf.len() - 4);
    if crc32fast::hash(body) != u32::from_le_bytes(crc.try_into().unwrap_or_default()) {
        return Err(corrupt("the conf file fails its checksum".into()));
    }
    let segment_size: u64 = String::from_utf8_lossy(body)
        .lines()
        .find_map(|l| l.strip_prefix("segment_size: ").and_then(|n| n.trim().parse().ok()))
        .filter(|n| *n >= 1024)
        .ok_or_else(|| corrupt("the conf file names no segment size".into()))?;
    let mut file = std::fs::File::open(path.join("db"))
        .map_err(|e| denied(path, &e).unwrap_or_else(|| corrupt(format!("cannot read db: {e}"))))?;
    let len = file.metadata().map_err(|e| corrupt(e.to_string()))?.len();
    let mut header = [0u8; 20];
    let mut offset = 0;
    let mut headers = Vec::new();
    while offset + 20 <= len {
        use std::io::Seek;
        file.seek(std::io::SeekFrom::Start(offset))
            .and_then(|_| file.read_exact(&mut header))
            .map_err(|e| corrupt(format!("cannot read db: {e}")))?;
        let stored = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) ^ 0xFFFF_FFFF;
        headers.push(if header == [0; 20] {
            SegmentHeader::Zero
        } else if crc32fast::hash(&header[4..]) == stored {
            SegmentHeader::Valid
        } else {
            SegmentHeader::Bad(offset)
        });
        offset += segment_size;
    }
    torn_tail_only(&headers).map_err(corrupt)
}

/// What the pre-flight check found at the start of one segment of sled's `db` file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SegmentHeader {
    /// Never written, or cleared by sled (it zeroes the segments it found torn).
    Zero,
    Valid,
    /// Fails its checksum; the segment's byte offset.
    Bad(u64),
}

/// Whether the segment headers are what a power cut can leave, or damage.
///
/// A power cut can tear the one header sled was writing when it struck: a new segment's
/// header goes out with the first write into that segment and is not durable until that
/// write's fdatasync returns, so nothing in that segment was acknowledged, and sled
/// rightly skips it and zeroes it at recovery. That is a single header, in a log that has
/// valid ones. Anything more (two or more failing headers, or no valid header at all) is
/// damage to what was durable, and the store is refused. One failing header caused by
/// damage rather than a cut cannot be told apart from a torn one (docs/STORE.md
/// "Known limits").
fn torn_tail_only(headers: &[SegmentHeader]) -> Result<(), String> {
    let bad: Vec<u64> = headers
        .iter()
        .filter_map(|h| match h {
            SegmentHeader::Bad(offset) => Some(*offset),
            _ => None,
        })
        .collect();
    let valid = headers.iter().filter(|h| **h == SegmentHeader::Valid).count();
    match (bad.as_slice(), valid) {
        ([], _) => Ok(()),
        ([offset], 1..) => {
            tracing::warn!(
                offset,
                "one segment header of the store's log fails its checksum: the segment a power cut                  interrupted; sled skips it"
            );
            Ok(())
        }
        ([offset, ..], _) => Err(format!(
            "the segment at byte {offset} of db fails its checksum ({} of {} segment headers do)",
            bad.len(),
            headers.len()
        )),
    }
}

/// Creates the store directory `path` if it is absent, with mode 0700 (its parents as the
/// umask says). The store holds transcripts and credential hashes: other users of the
/// machine have no business reading them.
fn create_private_dir(path: &Path) -> Result<(), StoreError> {
    if path.exists() {
        return Ok(());
    }
    let fail =
        |e: std::io::Error| denied(path, &e).unwrap_or_else(|| StoreError::Write(format!("{}: {e}", path.display())));
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(fail)?;
    }
    let mut dir = std::fs::DirBuilder::new();
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut dir, 0o700);
    match dir.create(path) {
        Ok(()) => Ok(()),
        // Created meanwhile by someone else: [`make_private`] tightens it.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(fail(e)),
    }
}

/// Takes group and other permissions away from the store directory `path` (0700) and from
/// everything in it. A directory that was open to them (made by hand, or by an older
/// Switchboard) is tightened with an `info` line. sled creates its files under the
/// process's umask (0644 under the usual 022); the directory's 0700 is what keeps later
/// ones (sled's snapshots) from other users, and this clears the bits of those present.
#[cfg(unix)]
fn make_private(path: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::PermissionsExt;
    let fail = |p: &Path, e: std::io::Error| {
        denied(p, &e).unwrap_or_else(|| StoreError::Write(format!("{}: {e}", p.display())))
    };
    let mode = std::fs::metadata(path).map_err(|e| fail(path, e))?.permissions().mode();
    if mode & 0o077 != 0 {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700)).map_err(|e| fail(path, e))?;
        tracing::info!(
            path = %path.display(),
            was = format!("{:04o}", mode & 0o7777),
            "store directory was open to other users; its mode is now 0700"
        );
    }
    let mut pending = vec![path.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).map_err(|e| fail(&dir, e))? {
            let entry = entry.map_err(|e| fail(&dir, e))?;
            // Not following links: sled makes none, and a link's target is not ours to change.
            let meta = std::fs::symlink_metadata(entry.path()).map_err(|e| fail(&entry.path(), e))?;
            if meta.file_type().is_symlink() {
                continue;
            }
            let mode = meta.permissions().mode();
            if mode & 0o077 != 0 {
                std::fs::set_permissions(entry.path(), std::fs::Permissions::from_mode(mode & 0o700))
                    .map_err(|e| fail(&entry.path(), e))?;
            }
            if meta.is_dir() {
                pending.push(entry.path());
            }
        }
    }
    Ok(())
}

/// Permissions are Unix modes; elsewhere the directory's ACLs are the operator's.
#[cfg(not(unix))]
fn make_private(_path: &Path) -> Result<(), StoreError> {
    Ok(())
}

/// [`StoreError::Permission`] for a permission error on `path`.
fn denied(path: &Path, e: &std::io::Error) -> Option<StoreError> {
    (e.kind() == std::io::ErrorKind::PermissionDenied).then(|| StoreError::Permission {
        path: path.display().to_string(),
        detail: e.to_string(),
    })
}

/// Waits (briefly) until sled's helper threads have let go of the directory's lock, so
/// that the directory can be opened again in this process as soon as `close` returns.
fn wait_released(path: &Path) {
    use fs2::FileExt;
    let Ok(file) = std::fs::OpenOptions::new().read(true).write(true).open(path.join("db")) else {
        return;
    };
    for _ in 0..500 {
        if file.try_lock_exclusive().is_ok() {
            let _ = FileExt::unlock(&file);
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    tracing::warn!(path = %path.display(), "the store's lock is still held after close");
}

/// Refuses a database laid out other than format 2 keeps it (everything in sled's default
/// tree), before anything is read or written: a format-1 store ([`StoreError::OldFormat`]),
/// or one with trees this build does not know.
fn check_layout(db: &Db, shown: &str) -> Result<(), StoreError> {
    let default_tree: &[u8] = &db.name();
    let names = db.tree_names();
    if names.iter().any(|n| n.as_ref() == FORMAT1_META_TREE) {
        // The tree exists, so opening it creates nothing.
        let meta = db.open_tree(FORMAT1_META_TREE).map_err(|e| sled_error(shown, e))?;
        return Err(match meta.get(META_FORMAT).map_err(|e| sled_error(shown, e))? {
            Some(v) if v.as_ref() == [1] => StoreError::OldFormat {
                path: shown.into(),
                format: 1,
                expected: STORE_FORMAT,
            },
            Some(v) => StoreError::UnknownVersion {
                record: format!("meta/format of {shown}"),
                version: v.first().copied().unwrap_or(0),
            },
            None => StoreError::Corrupt {
                what: format!("{shown} holds a `meta` tree without a format marker; refusing to use it"),
            },
        });
    }
    if let Some(other) = names.iter().find(|n| n.as_ref() != default_tree) {
        return Err(StoreError::Corrupt {
            what: format!(
                "{shown} holds a tree `{}` that no Switchboard store format has; refusing to use it",
                printable(other)
            ),
        });
    }
    Ok(())
}

/// Opens sled with `cache` bytes of page cache, turning its errors (and panics on garbage
/// files) into [`StoreError`]s.
fn open_db_with(path: &Path, cache: u64) -> Result<Db, StoreError> {
    let shown = path.display().to_string();
    let config = ::sled::Config::new()
        .path(path)
        .flush_every_ms(None)
        .cache_capacity(cache);
    match std::panic::catch_unwind(AssertUnwindSafe(|| config.open())) {
        Ok(Ok(db)) => Ok(db),
        Ok(Err(e)) => Err(sled_error(&shown, e)),
        Err(panic) => {
            let why = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "sled panicked".into());
            Err(StoreError::Corrupt {
                what: format!("{shown}: {why}"),
            })
        }
    }
}

fn sled_error(path: &str, e: ::sled::Error) -> StoreError {
    match e {
        ::sled::Error::Io(io) if io.to_string().contains("could not acquire lock") => {
            StoreError::Locked { path: path.into() }
        }
        ::sled::Error::Io(io) if io.kind() == std::io::ErrorKind::PermissionDenied => StoreError::Permission {
            path: path.into(),
            detail: io.to_string(),
        },
        ::sled::Error::Corruption { at, .. } => StoreError::Corrupt {
            what: format!("{path}: sled found corruption at {at:?}"),
        },
        other => StoreError::Corrupt {
            what: format!("{path}: {other}"),
        },
    }
}

/// Reads every record back, except finished conversations (ended, and no agent record
/// refers to them): the engine does not hold those in memory, and reading them would make
/// start-up grow with the retention period instead of with the open conversations.
/// Messages whose conversation is gone (a retention sweep cut short) or finished are
/// skipped.
fn load(t: &Trees, path: &str) -> Result<Snapshot, StoreError> {
    let read = |e: ::sled::Error| StoreError::Read(format!("{path}: {e}"));
    let reading = Instant::now();
    let mut snap = Snapshot::default();
    for item in t.queues.iter() {
        let (k, v) = item.map_err(read)?;
        snap.queues.push(decode_queue(&k, &v)?);
    }
    for item in t.entry_points.iter() {
        let (k, v) = item.map_err(read)?;
        snap.entry_points.push(decode_entry_point(&k, &v)?);
    }
    for item in t.agents.iter() {
        let (k, v) = item.map_err(read)?;
        snap.agents.push(decode_agent("agents", &k, &v)?);
    }
    let held = super::held_by_agents(snap.agents.iter());
    // Counted while reading: the conversations share sled's one tree with every other
    // record, so there is no cheap `len` of their own.
    let mut stored = 0usize;
    let mut conversations: Vec<Conversation> = Vec::new();
    for item in t.conversations.iter() {
        let (k, v) = item.map_err(read)?;
        stored += 1;
        let c: Conversation = decode_conversation(&k, &v)?;
        if c.state == ConversationState::Ended && !held.contains(c.id.as_str()) {
            continue;
        }
        conversations.push(c);
    }
    drop(held);
    crate::metrics::recovery_phase("read", reading);
    let transcripts = Instant::now();
    // Two ways to the transcripts: when most stored conversations are loaded (a store of
    // open conversations, or a young one), one pass over the whole `messages` tree in key
    // order is cheapest; when finished conversations dominate (the retention period's
    // worth of them), one prefix scan per loaded conversation reads only what is needed
    // (measured: with a quarter loaded, prefix scans took 1.3 s where the pass took 1.8-2.3 s;
    // BENCHMARKS.md "Recovery").
    if conversations.len() * 2 < stored {
        for c in conversations.iter_mut() {
            c.transcript = read_transcript(t, &c.id, path)?;
        }
        crate::metrics::recovery_phase("transcripts", transcripts);
        snap.conversations = conversations;
        return load_counters(t, snap, path);
    }
    let index: HashMap<String, usize> = conversations
        .iter()
        .enumerate()
        .map(|(i, c)| (c.id.clone(), i))
        .collect();
    // Keys sort by conversation, then seq: each transcript comes out in order.
    let mut current: Option<(Vec<u8>, Option<usize>)> = None;
    for item in t.messages.iter() {
        let (k, v) = item.map_err(read)?;
        let (id, seq) = parse_message_key(&k).ok_or_else(|| StoreError::Corrupt {
            what: format!("{path}: message key {} is malformed", printable(&k)),
        })?;
        let at = match &current {
            Some((prefix, at)) if k.starts_with(prefix) => *at,
            _ => {
                let at = index.get(id).copied();
                current = Some((record::message_prefix(id), at));
                at
            }
        };
        let Some(at) = at else { continue };
        let m = decode_message(&k, &v)?;
        if m.seq != seq {
            return Err(StoreError::Corrupt {
                what: format!("{path}: message {} holds seq {}", printable(&k), m.seq),
            });
        }
        conversations[at].transcript.push(m);
    }
    for c in conversations.iter_mut() {
        // What was read, not what pushing it reserved.
        c.transcript.shrink_to_fit();
    }
    crate::metrics::recovery_phase("transcripts", transcripts);
    snap.conversations = conversations;
    load_counters(t, snap, path)
}

fn load_counters(t: &Trees, mut snap: Snapshot, path: &str) -> Result<Snapshot, StoreError> {
    let read = |e: ::sled::Error| StoreError::Read(format!("{path}: {e}"));
    let reading = Instant::now();
    // The outbox, in key order: by conversation, then seq (the order to send in).
    for item in t.outbox.iter() {
        let (k, v) = item.map_err(read)?;
        snap.outbox.push(record::decode_outbound(&k, &v)?);
    }
    if let Some(v) = t.meta.get(META_COUNTERS).map_err(read)? {
        let c: CountersV1 = decode("meta", META_COUNTERS, &v)?;
        snap.counters = (c.next_conversation, c.next_offer, c.next_arrival);
    }
    for item in t.supervisors.iter() {
        let (k, v) = item.map_err(read)?;
        snap.supervisors
            .push(decode::<SupervisorV1>("supervisors", &k, &v)?.into());
    }
    for item in t.audit.iter() {
        let (k, v) = item.map_err(read)?;
        snap.audit.push(decode::<AuditV1>("audit", &k, &v)?.into());
    }
    for item in t.canned.iter() {
        let (k, v) = item.map_err(read)?;
        snap.canned
            .push(decode::<record::CannedResponseV1>("canned", &k, &v)?.into());
    }
    for item in t.webhooks.iter() {
        let (k, v) = item.map_err(read)?;
        snap.webhooks
            .push(decode::<record::WebhookV1>("webhooks", &k, &v)?.into_core()?);
    }
    for item in t.webhook_events.iter() {
        let (k, v) = item.map_err(read)?;
        snap.webhook_events
            .push(decode::<record::WebhookEventV1>("webhook events", &k, &v)?.into_core()?);
    }
    for item in t.surveys.iter() {
        let (k, v) = item.map_err(read)?;
        snap.surveys.push(record::decode_pending_survey(&k, &v)?);
    }
    if let Some(v) = t.meta.get(META_WEBHOOKS_TRIMMED).map_err(read)? {
        let bytes: [u8; 8] = v.as_ref().try_into().map_err(|_| StoreError::Corrupt {
            what: format!("{path}: meta/webhooks_trimmed is not 8 bytes"),
        })?;
        snap.webhooks_trimmed = u64::from_be_bytes(bytes);
    }
    crate::metrics::recovery_phase("records", reading);
    Ok(snap)
}

/// The transcript of conversation `id`, in `seq` order (its message keys sort that way).
fn read_transcript(t: &Trees, id: &str, path: &str) -> Result<Vec<Message>, StoreError> {
    let read = |e: ::sled::Error| StoreError::Read(format!("{path}: {e}"));
    let mut transcript = Vec::new();
    for item in t.messages.scan_prefix(record::message_prefix(id)) {
        let (k, v) = item.map_err(read)?;
        let seq = parse_message_key(&k)
            .map(|(_, seq)| seq)
            .ok_or_else(|| StoreError::Corrupt {
                what: format!("{path}: message key {} is malformed", printable(&k)),
            })?;
        let m = decode_message(&k, &v)?;
        if m.seq != seq {
            return Err(StoreError::Corrupt {
                what: format!("{path}: message {} holds seq {}", printable(&k), m.seq),
            });
        }
        transcript.push(m);
    }
    transcript.shrink_to_fit();
    Ok(transcript)
}

/// One conversation and its transcript: a get from `conversations` and a prefix scan of
/// `messages` (a few µs for a typical transcript).
fn read_conversation(t: &Trees, id: &str, path: &str) -> Result<Option<Conversation>, StoreError> {
    let read = |e: ::sled::Error| StoreError::Read(format!("{path}: {e}"));
    let Some(v) = t.conversations.get(id.as_bytes()).map_err(read)? else {
        return Ok(None);
    };
    let mut c: Conversation = decode_conversation(id.as_bytes(), &v)?;
    c.transcript = read_transcript(t, id, path)?;
    Ok(Some(c))
}

/// A page of report records: a range scan from the later of the filter's `from` and the
/// cursor (records are keyed by arrival), decoded one by one until the page is full or
/// the filter's `to` is passed.
/// A page of records; `cold`: read leaving sled's cache as it was (an export).
fn read_records(t: &Trees, query: &RecordQuery, path: &str, cold: bool) -> Result<RecordPage, StoreError> {
    let from = super::records_start(query).to_be_bytes();
    // Every key is 8 bytes of time and an id of `[A-Za-z0-9_.-]`: all below this.
    let end = [0xff_u8; 9];
    let read_err = |e: ::sled::Error| StoreError::Read(format!("{path}: {e}"));
    let words = &query.filter.words;
    if let (true, Some(customer)) = (words.is_empty(), &query.filter.customer) {
        // One customer's records: its range of the index, then each record by its key.
        let (mut start, mut stop) = (Vec::new(), Vec::new());
        record::customer_prefix_into(&mut start, customer);
        record::customer_prefix_into(&mut stop, customer);
        start.extend_from_slice(&from);
        match query.filter.to {
            Some(to) => stop.extend_from_slice(&to.to_be_bytes()),
            None => stop.extend_from_slice(&end),
        }
        let read = t.by_customer.range(&start, &stop).map(|item| {
            let (k, _) = item.map_err(read_err)?;
            let key = record::record_key_of_customer_key(&k).ok_or_else(|| StoreError::Corrupt {
                what: format!("a key of the index by customer is too short: {}", record::printable(&k)),
            })?;
            match t.reports.get(key).map_err(read_err)? {
                Some(r) => rated(t, key, decode_record(key, &r)?).map(Some),
                None => Ok(None),
            }
        });
        return super::collect_page(query, read);
    }
    if words.is_empty() {
        let (range, ratings): (Box<dyn Iterator<Item = Entry>>, Box<dyn Iterator<Item = Entry>>) = if cold {
            (
                Box::new(t.reports.range_cold(&from, &end)),
                Box::new(t.ratings.range_cold(&from, &end)),
            )
        } else {
            (
                Box::new(t.reports.range(&from, &end)),
                Box::new(t.ratings.range(&from, &end)),
            )
        };
        // Ratings are keyed as their records: read beside them in one pass (a point read
        // per record made a CSV of a million records a quarter slower).
        let mut ratings = ratings.peekable();
        let read = range.map(move |item| {
            let (k, v) = item.map_err(read_err)?;
            let mut r = decode_record(&k, &v)?;
            while let Some(next) = ratings.next_if(|e| e.as_ref().map_or(true, |(rk, _)| rk.as_ref() <= k.as_ref())) {
                let (rk, rv) = next.map_err(read_err)?;
                if rk == k {
                    r.satisfaction = Some(record::decode_satisfaction(&rk, &rv)?);
                }
            }
            Ok(Some(r))
        });
        return super::collect_page(query, read);
    }
    // The search texts in the range, and the record of each that holds every word.
    let read = t.search.range(&from, &end).map(|item| {
        let (k, v) = item.map_err(read_err)?;
        let text: String = record::decode("search", &k, &v)?;
        if !report::text_matches(&text, words) {
            return Ok(None);
        }
        match t.reports.get(&k).map_err(read_err)? {
            Some(r) => rated(t, &k, decode_record(&k, &r)?).map(Some),
            None => Ok(None),
        }
    });
    super::collect_page(query, read)
}

/// Record `r` (under `key`) with its rating, if its customer gave one: kept beside it
/// under the same key ([`prefix::RATINGS`]), one point read per record (a range of
/// records reads the ratings' range beside it instead).
fn rated(
    t: &Trees,
    key: &[u8],
    mut r: crate::core::ConversationRecord,
) -> Result<crate::core::ConversationRecord, StoreError> {
    if let Some(v) = t
        .ratings
        .get(key)
        .map_err(|e| StoreError::Read(format!("a rating: {e}")))?
    {
        r.satisfaction = Some(record::decode_satisfaction(key, &v)?);
    }
    Ok(r)
}

/// The writer thread's state. See the module docs.
/// One space as the writer sees it: its trees, and the backups of it being read.
struct SpaceState {
    trees: Trees,
    /// The backups being read: the reader holds the other end, so one that ended or was
    /// abandoned (its client went away) is gone from here with all it kept.
    shadows: Vec<Weak<Shadow>>,
}

impl SpaceState {
    /// Whether a backup is being read (forgetting those that ended).
    fn tracking(&mut self) -> bool {
        self.shadows.retain(|s| s.strong_count() > 0);
        !self.shadows.is_empty()
    }

    /// Saves the value of every key in `keys` that a backup still has to read and has not
    /// saved yet. Called before the batch that changes them is applied, on the only thread
    /// that writes: a key not saved yet has not changed since the backup's point, so what
    /// it holds now is its value at that point.
    fn preserve(&self, keys: &[Vec<u8>]) {
        let probe = self.trees.meta.key(META_PROBE);
        for shadow in self.shadows.iter().filter_map(Weak::upgrade) {
            let mut s = shadow.lock();
            if s.broken.is_some() || s.finished {
                continue;
            }
            for key in keys.iter().filter(|k| self.owns(k)) {
                if *key == probe || s.done.as_deref().is_some_and(|d| key.as_slice() <= d) || s.before.contains_key(key)
                {
                    continue;
                }
                match self.trees.records.get(key) {
                    Ok(value) => {
                        // A copy: sled's value may share a buffer with the rest of its node.
                        let value = value.map(|v| IVec::from(v.as_ref()));
                        s.bytes += SHADOW_OVERHEAD + key.len() + value.as_ref().map_or(0, |v| v.len());
                        s.before.insert(key.clone(), value);
                        if s.bytes > SHADOW_LIMIT {
                            s.fail(format!(
                                "the store changed by more than {} MiB while the backup was read",
                                SHADOW_LIMIT >> 20
                            ));
                            break;
                        }
                    }
                    Err(e) => {
                        s.fail(format!("cannot save a record for the backup: {e}"));
                        break;
                    }
                }
            }
        }
    }

    /// Whether `key` is one of this space's records (a batch may hold other tenants').
    fn owns(&self, key: &[u8]) -> bool {
        if self.trees.whole {
            true
        } else if self.trees.scope.is_empty() {
            key.first() != Some(&TENANT_MARK)
        } else {
            key.starts_with(&self.trees.scope)
        }
    }

    /// Ends every backup of this space being read, with `why`.
    fn break_shadows(&mut self, why: &str) {
        for shadow in self.shadows.drain(..).filter_map(|w| w.upgrade()) {
            shadow.lock().fail(why.into());
        }
    }
}

struct Writer {
    db: Db,
    /// Where the writer finds a space's trees the first time it writes to it.
    open: Arc<Mutex<Option<Open>>>,
    spaces: HashMap<Space, SpaceState>,
    stats: Arc<Stats>,
    retain_ms: Option<u64>,
    retain_records_ms: Option<u64>,
    sweep_every: Duration,
    max_group: usize,
    before_flush: Option<FlushHook>,
    /// Set by the first failed write; every later job fails with it.
    failed: Option<StoreError>,
    /// Encoding buffers kept from one group to the next.
    scratch: Scratch,
    /// Tenants whose records are being removed, a chunk between groups, with who waits.
    dropping: std::collections::VecDeque<(Trees, oneshot::Sender<Result<(), StoreError>>)>,
}

type Waiter = (Instant, oneshot::Sender<Result<(), StoreError>>);

impl Writer {
    fn run(mut self, rx: mpsc::Receiver<Job>) {
        let mut next_sweep = Instant::now() + self.sweep_every;
        loop {
            // A tenant being dropped goes on a chunk at a time whenever nothing waits.
            let wait = if self.dropping.is_empty() {
                next_sweep.saturating_duration_since(Instant::now())
            } else {
                Duration::ZERO
            };
            let first = match rx.recv_timeout(wait) {
                Ok(job) => job,
                Err(RecvTimeoutError::Timeout) => {
                    self.drop_chunk();
                    if Instant::now() >= next_sweep {
                        next_sweep = Instant::now() + self.sweep_every;
                        self.sweep_all(wall_clock());
                    }
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => {
                    self.break_shadows("the store was closed");
                    break;
                }
            };
            // Everything that arrived while the last flush ran forms the next group.
            let mut changes = Vec::new();
            let mut waiters: Vec<Waiter> = Vec::new();
            let mut sweeps = Vec::new();
            let mut others = Vec::new();
            let mut next = Some(first);
            while let Some(job) = next.take() {
                match job {
                    Job::Commit {
                        space,
                        changes: c,
                        submitted,
                        done,
                    } => {
                        changes.push((space, c));
                        waiters.push((submitted, done));
                    }
                    Job::Sweep { space, now, done } => sweeps.push((space, now, done)),
                    other => others.push(other),
                }
                if waiters.len() < self.max_group {
                    next = rx.try_recv().ok();
                }
            }
            if !waiters.is_empty() {
                self.commit_group(changes, waiters);
            }
            for (space, now, done) in sweeps {
                let _ = done.send(self.sweep(&space, now));
            }
            // After the group: a probe or a backup sees every commit handed over before it.
            for job in others {
                match job {
                    Job::Probe { space, done } => {
                        let _ = done.send(self.probe(&space));
                    }
                    Job::Backup { space, done } => {
                        // A caller that went away drops the shadow with the answer.
                        let _ = done.send(self.start_backup(&space));
                    }
                    Job::Drop { space, done } => self.start_drop(&space, done),
                    Job::Registry { key, value, done } => {
                        let _ = done.send(self.registry(key, value));
                    }
                    Job::Commit { .. } | Job::Sweep { .. } => {}
                }
            }
            self.drop_chunk();
        }
    }

    /// The writer's state of `space`, taken from the open database the first time.
    fn space(&mut self, space: &Space) -> Result<&mut SpaceState, StoreError> {
        if !self.spaces.contains_key(space) {
            let trees = lock(&self.open)?
                .as_ref()
                .and_then(|o| o.spaces.get(space).cloned())
                .ok_or_else(|| StoreError::Write(format!("the store's space `{space}` is not open")))?;
            self.spaces.insert(
                space.clone(),
                SpaceState {
                    trees,
                    shadows: Vec::new(),
                },
            );
        }
        self.spaces.get_mut(space).ok_or_else(closed)
    }

    /// Applies a group (every space's part in one atomic batch), flushes once, then
    /// resolves its waiters in order.
    fn commit_group(&mut self, changes: Vec<(Space, Vec<Change>)>, waiters: Vec<Waiter>) {
        let result = match &self.failed {
            Some(e) => Err(e.clone()),
            None => {
                let n: usize = changes.iter().map(|(_, c)| c.len()).sum();
                let r = self
                    .apply_group(changes)
                    .and_then(|skipped| self.flush().map(|()| skipped));
                if let Ok(skipped) = r {
                    let s = &self.stats;
                    let k = waiters.len() as u64;
                    s.commits.fetch_add(k, Ordering::Relaxed);
                    s.changes.fetch_add(n as u64, Ordering::Relaxed);
                    s.coalesced.fetch_add(skipped, Ordering::Relaxed);
                    s.max_per_flush.fetch_max(k, Ordering::Relaxed);
                    crate::metrics::STORE_COMMITS_PER_FLUSH.observe(k as f64);
                }
                r.map(|_| ())
            }
        };
        if let Err(e) = &result {
            crate::metrics::STORE_ERRORS.with_label_values(&["write"]).inc();
            self.fail(e);
        }
        let now = Instant::now();
        for (submitted, done) in waiters {
            crate::metrics::STORE_COMMIT_LATENCY.observe(now.duration_since(submitted).as_secs_f64());
            // A caller that went away is fine: the change is durable all the same.
            let _ = done.send(result.clone());
        }
    }

    /// Encodes and applies a group's changes, one batch per space (almost always one
    /// space: tenants are apart in time as much as in keys). Returns how many changes a
    /// later one in the group replaced.
    fn apply_group(&mut self, changes: Vec<(Space, Vec<Change>)>) -> Result<u64, StoreError> {
        let mut parts: Vec<(Space, Vec<Vec<Change>>)> = Vec::with_capacity(1);
        for (space, c) in changes {
            match parts.iter_mut().find(|(s, _)| *s == space) {
                Some((_, list)) => list.push(c),
                None => parts.push((space, vec![c])),
            }
        }
        let mut scopes = Vec::with_capacity(parts.len());
        for (space, _) in &parts {
            scopes.push(self.space(space)?.trees.scope.clone());
        }
        let tracking = self.tracking_any();
        // Every tenant's part in one batch: one tree, one atomic write.
        let mut b = Writes::new(tracking);
        let mut skipped = 0;
        let mut scratch = std::mem::take(&mut self.scratch);
        let mut result = Ok(());
        for ((_, list), scope) in parts.into_iter().zip(&scopes) {
            match encode_group(list, &mut b, &mut scratch, scope, &self.db) {
                Ok(s) => skipped += s,
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        self.scratch = scratch;
        result?;
        self.apply_writes(b)?;
        Ok(skipped)
    }

    /// The database refused a write: every later job fails with `e` until it is reopened.
    fn fail(&mut self, e: &StoreError) {
        if self.failed.is_none() {
            tracing::error!(error = %e, "store write failed; refusing writes until the store is reopened");
            self.break_shadows("a store write failed");
            self.stats.failed.store(true, Ordering::SeqCst);
            self.failed = Some(e.clone());
        }
    }

    fn flush(&self) -> Result<(), StoreError> {
        if let Some(hook) = &self.before_flush {
            hook().map_err(StoreError::Write)?;
        }
        let started = Instant::now();
        self.db
            .flush()
            .map_err(|e| StoreError::Write(format!("flush failed: {e}")))?;
        let took = started.elapsed();
        self.stats.flushes.fetch_add(1, Ordering::Relaxed);
        self.stats
            .flush_us_total
            .fetch_add(took.as_micros() as u64, Ordering::Relaxed);
        crate::metrics::STORE_FLUSH_LATENCY.observe(took.as_secs_f64());
        Ok(())
    }

    /// Writes and flushes `space`'s probe record (meta `probe`: the time of the probe).
    fn probe(&mut self, space: &Space) -> Result<(), StoreError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let r = self
            .space(space)
            .and_then(|s| {
                let t = &s.trees;
                t.records
                    .insert(t.meta.key(META_PROBE), &wall_clock().to_be_bytes())
                    .map_err(|e| StoreError::Write(format!("probe failed: {e}")))
            })
            .and_then(|_| self.flush());
        if let Err(e) = &r {
            crate::metrics::STORE_ERRORS.with_label_values(&["probe"]).inc();
            self.fail(e);
        }
        r
    }

    /// Registers a backup's point in time: from the end of the last group on, every key
    /// a write is about to change in `space` is saved in the shadow first (see
    /// [`Shadow`]). Refused while the store has failed (what it holds may not be what was
    /// acknowledged) and while another backup of the space is being read (each holds
    /// buffers and a shadow).
    fn start_backup(&mut self, space: &Space) -> Result<Arc<Shadow>, StoreError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let state = self.space(space)?;
        if state.tracking() {
            return Err(StoreError::Busy(
                "a backup is being taken already; try again once it has ended".into(),
            ));
        }
        let shadow = Arc::new(Shadow::default());
        state.shadows.push(Arc::downgrade(&shadow));
        Ok(shadow)
    }

    /// Ends every backup being read, with `why`.
    fn break_shadows(&mut self, why: &str) {
        for state in self.spaces.values_mut() {
            state.break_shadows(why);
        }
    }

    /// Starts removing a tenant's records (see [`SledStore::drop_tenant`]): the tenant is
    /// no longer open, and [`Writer::drop_chunk`] removes a chunk at a time.
    fn start_drop(&mut self, space: &Space, done: oneshot::Sender<Result<(), StoreError>>) {
        if let Some(e) = &self.failed {
            let _ = done.send(Err(e.clone()));
            return;
        }
        if let Some(mut state) = self.spaces.remove(space) {
            state.break_shadows("the tenant was deleted");
        }
        if let Ok(mut open) = lock(&self.open) {
            if let Some(open) = open.as_mut() {
                open.spaces.remove(space);
            }
        }
        let trees = Trees::scoped(&self.db, &tenant_scope(space));
        self.dropping.push_back((trees, done));
    }

    /// Removes one chunk of the first tenant being dropped, flushed; once none of its
    /// records is left, answers its caller.
    fn drop_chunk(&mut self) {
        let Some((trees, _)) = self.dropping.front() else {
            return;
        };
        let read = |e: ::sled::Error| StoreError::Read(e.to_string());
        let trees = trees.clone();
        let mut batch = Writes::new(self.tracking_any());
        let mut n = 0;
        let mut result = Ok(());
        for k in trees.all().keys().take(SWEEP_CHUNK) {
            match k {
                Ok(k) => batch.remove(&k),
                Err(e) => {
                    result = Err(read(e));
                    break;
                }
            }
            n += 1;
        }
        let result = result.and_then(|()| match &self.failed {
            Some(e) => Err(e.clone()),
            None if n == 0 => Ok(()),
            None => self.apply_writes(batch).and_then(|()| self.flush()),
        });
        if let Err(e) = &result {
            self.fail(e);
        }
        if n == 0 || result.is_err() {
            if let Some((_, done)) = self.dropping.pop_front() {
                let _ = done.send(result);
            }
        }
    }

    /// Whether any backup is being read (of any space).
    fn tracking_any(&mut self) -> bool {
        let mut any = false;
        for state in self.spaces.values_mut() {
            any |= state.tracking();
        }
        any
    }

    /// Applies a batch to the store's tree, after saving what its keys hold now for every
    /// backup being read that holds them (a tenant's, `default`'s, the whole store's).
    fn apply_writes(&self, w: Writes) -> Result<(), StoreError> {
        if let Some(keys) = &w.keys {
            for state in self.spaces.values() {
                state.preserve(keys);
            }
        }
        // Every space's records are in sled's default tree.
        self.db
            .apply_batch(w.batch)
            .map_err(|e| StoreError::Write(format!("batch failed: {e}")))
    }

    /// Writes or removes the registry's record `key`, flushed.
    fn registry(&mut self, key: Vec<u8>, value: Option<Vec<u8>>) -> Result<(), StoreError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        self.space(&Space::from(WHOLE_SPACE))?;
        let mut full = REGISTRY_SCOPE.to_vec();
        full.extend_from_slice(&key);
        let mut w = Writes::new(self.tracking_any());
        match value {
            Some(v) => w.insert(&full, &v),
            None => w.remove(&full),
        }
        let r = self.apply_writes(w).and_then(|()| self.flush());
        if let Err(e) = &r {
            self.fail(e);
        }
        r
    }

    /// Applies a sweep's batch and flushes it; a failure fails the store.
    fn apply_flushed(&mut self, space: &Space, b: Writes) -> Result<(), StoreError> {
        let r = self
            .space(space)
            .map(|_| ())
            .and_then(|()| self.apply_writes(b))
            .and_then(|()| self.flush());
        if let Err(e) = &r {
            self.fail(e);
        }
        r
    }

    /// Whether a backup that may hold `space`'s records is being read.
    fn tracking(&mut self, space: &Space) -> Result<bool, StoreError> {
        self.space(space)?;
        Ok(self.tracking_any())
    }

    /// Forgets Messenger message ids taken in more than [`MID_RETENTION_MS`] ago (Meta
    /// redelivers an unanswered event for hours, not days), a chunk at a time.
    fn sweep_mids(&mut self, space: &Space, now: Millis) -> Result<(), StoreError> {
        let cutoff = now.saturating_sub(MID_RETENTION_MS);
        let trees = self.space(space)?.trees.clone();
        self.sweep_keys(space, &trees.mid_times, &[], &cutoff.to_be_bytes(), |k, _, b| {
            if let Some((_, mid)) = parse_ended_key(k) {
                b.remove(&trees.mids.key(mid.as_bytes()));
            }
            Ok(())
        })
    }

    /// Removes, a chunk at a time, the records of `ks` in `[from, to)` (keys after the
    /// keyspace's prefix).
    fn sweep_range(&mut self, space: &Space, ks: &Keyspace, from: &[u8], to: &[u8]) -> Result<(), StoreError> {
        self.sweep_keys(space, ks, from, to, |_, _, _| Ok(()))
    }

    /// Removes the report records keyed before `cutoff` with their keys in the index by
    /// customer, a chunk at a time (each record is read for its customer).
    fn sweep_records(&mut self, space: &Space, trees: &Trees, cutoff: &[u8]) -> Result<(), StoreError> {
        let mut index_key = Vec::new();
        self.sweep_keys(space, &trees.reports, &[], cutoff, |k, v, b| {
            let r = decode_record(k, v)?;
            index_key.clear();
            record::customer_key_into(&mut index_key, &r.customer.id, r.arrived_at, &r.id);
            b.remove(&trees.by_customer.key(&index_key));
            Ok(())
        })
    }

    /// The sweeps' one loop: removes the records of `ks` in `[from, to)`, and what `also`
    /// adds to the batch for each (its key after the prefix, its value), a chunk of
    /// [`SWEEP_CHUNK`] at a time, each chunk one atomic batch, flushed.
    fn sweep_keys(
        &mut self,
        space: &Space,
        ks: &Keyspace,
        from: &[u8],
        to: &[u8],
        mut also: impl FnMut(&[u8], &[u8], &mut Writes) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let read = |e: ::sled::Error| StoreError::Read(e.to_string());
        loop {
            let mut b = Writes::new(self.tracking(space)?);
            let mut n = 0;
            for item in ks.range(from, to) {
                let (k, v) = item.map_err(read)?;
                also(&k, &v, &mut b)?;
                b.remove(&ks.key(&k));
                n += 1;
                if n == SWEEP_CHUNK {
                    break;
                }
            }
            if n == 0 {
                return Ok(());
            }
            self.apply_flushed(space, b)?;
            if n < SWEEP_CHUNK {
                return Ok(());
            }
        }
    }

    /// The retention of reports: records and search texts of conversations that arrived
    /// before the cutoff (one key range each: they are keyed by arrival), and each
    /// subject's figures rows of intervals before it (a range per subject: its rows are
    /// in time order after its id).
    fn sweep_reports(&mut self, space: &Space, now: Millis) -> Result<(), StoreError> {
        let Some(retain) = self.retain_records_ms else {
            return Ok(());
        };
        let cutoff = now.saturating_sub(retain).to_be_bytes();
        let trees = self.space(space)?.trees.clone();
        self.sweep_records(space, &trees, &cutoff)?;
        self.sweep_range(space, &trees.search, &[], &cutoff)?;
        self.sweep_range(space, &trees.ratings, &[], &cutoff)?;
        let read = |e: ::sled::Error| StoreError::Read(e.to_string());
        let mut next: Vec<u8> = Vec::new();
        loop {
            // Every key is `q` or `a`, an id, a zero byte and 8 bytes: all below 0xff.
            let first = trees.figures.range(&next, &[0xff]).next();
            let Some(item) = first else { return Ok(()) };
            let (k, _) = item.map_err(read)?;
            let Some(subject) = k.len().checked_sub(8).map(|n| &k[..n]) else {
                return Err(StoreError::Corrupt {
                    what: format!("a figures row's key is too short: {}", record::printable(&k)),
                });
            };
            let (mut from, mut to) = (subject.to_vec(), subject.to_vec());
            from.extend_from_slice(&[0; 8]);
            to.extend_from_slice(&cutoff);
            self.sweep_range(space, &trees.figures, &from, &to)?;
            // Past every row of this subject.
            next = subject.to_vec();
            next.extend_from_slice(&[0xff; 9]);
        }
    }

    /// The timed retention sweep: every space that is open.
    fn sweep_all(&mut self, now: Millis) {
        let spaces: Vec<Space> = match lock(&self.open) {
            Ok(g) => g
                .as_ref()
                .map(|o| o.spaces.keys().cloned().collect())
                .unwrap_or_default(),
            Err(_) => return,
        };
        for space in spaces {
            if let Err(e) = self.sweep(&space, now) {
                tracing::error!(error = %e, space = %space, "retention sweep failed");
            }
        }
    }

    /// See [`SledStore::sweep`].
    fn sweep(&mut self, space: &Space, now: Millis) -> Result<usize, StoreError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        self.sweep_mids(space, now)?;
        self.sweep_reports(space, now)?;
        let Some(retain) = self.retain_ms else { return Ok(0) };
        let cutoff = now.saturating_sub(retain);
        let read = |e: ::sled::Error| StoreError::Read(e.to_string());
        let trees = self.space(space)?.trees.clone();
        // Conversations an agent still holds stay, whatever their age.
        let mut held: HashSet<String> = HashSet::new();
        for item in trees.agents.iter() {
            let (k, v) = item.map_err(read)?;
            let a = decode_agent("agents", &k, &v)?;
            held.extend(a.wrapups.into_keys());
            held.extend(a.active);
            held.extend(a.offers);
        }
        let mut removed = 0;
        let mut skip_before: Vec<u8> = Vec::new();
        loop {
            let mut b = Writes::new(self.tracking(space)?);
            let mut n = 0;
            let mut last_key = None;
            for item in trees.ended.range(&skip_before, &cutoff.to_be_bytes()) {
                let (k, _) = item.map_err(read)?;
                last_key = Some(k.to_vec());
                let Some((_, id)) = parse_ended_key(&k) else { continue };
                if held.contains(id) {
                    continue;
                }
                let messages = trees.messages.key(&record::message_prefix(id));
                for m in trees.records.scan_prefix(messages).keys() {
                    b.remove(&m.map_err(read)?);
                }
                b.remove(&trees.conversations.key(id.as_bytes()));
                b.remove(&trees.ended.key(&k));
                n += 1;
                if n == SWEEP_CHUNK {
                    break;
                }
            }
            if n > 0 {
                self.apply_flushed(space, b)?;
                removed += n;
            }
            match last_key {
                Some(mut k) if n == SWEEP_CHUNK => {
                    k.push(0);
                    skip_before = k;
                }
                _ => break,
            }
        }
        if removed > 0 {
            tracing::info!(removed, cutoff, space = %space, "retention removed ended conversations");
        }
        self.stats.swept.fetch_add(removed as u64, Ordering::Relaxed);
        Ok(removed)
    }
}

fn wall_clock() -> Millis {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as Millis)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `default`'s records are the keys before [`TENANT_MARK`]: every kind's byte sorts
    /// before it, so a new kind cannot land among the tenants' scopes unnoticed.
    #[test]
    fn every_kind_of_record_sorts_before_the_tenants() {
        use prefix::*;
        for kind in [
            AGENTS,
            QUEUES,
            ENTRY_POINTS,
            CONVERSATIONS,
            MESSAGES,
            ENDED,
            META,
            OUTBOX,
            MIDS,
            MID_TIMES,
            NAMES,
            SUPERVISORS,
            AUDIT,
            LAST_OWNERS,
            RECORDS,
            CANNED,
        ] {
            assert!(kind < TENANT_MARK, "kind {}", kind as char);
        }
        assert!(tenant_scope("a").starts_with(&[TENANT_MARK]));
        assert!(!tenant_scope("ab").starts_with(&tenant_scope("a")));
    }

    /// Which segment headers a store may open with: a log with no failing header, or with
    /// the one a power cut tore beside valid ones; anything else is damage.
    #[test]
    fn only_a_single_torn_header_beside_valid_ones_is_a_power_cut() {
        use SegmentHeader::{Bad, Valid, Zero};
        let rows: [(&[SegmentHeader], bool); 8] = [
            (&[], true),
            (&[Valid, Valid, Zero], true),
            (&[Valid, Bad(1024)], true),
            (&[Zero, Bad(1024), Valid, Zero], true),
            (&[Bad(0)], false),
            (&[Zero, Bad(1024)], false),
            (&[Valid, Bad(1024), Bad(2048)], false),
            (&[Bad(0), Valid, Valid, Bad(3072)], false),
        ];
        for (headers, opens) in rows {
            let got = torn_tail_only(headers);
            assert_eq!(got.is_ok(), opens, "{headers:?}: {got:?}");
            if let Err(e) = got {
                assert!(e.contains("fails its checksum"), "{e}");
            }
        }
    }

    /// Story: a backup reads while the writer splits and merges the very leaves it reads,
    /// with a cache so small that most leaves are read without being cached. Every pass
    /// of the reader's iterator ends, in key order, with every key nobody touched (sled
    /// change 6 must never hand the tree a leaf to write through: a compare-and-swap on a
    /// leaf that was never cached would fail for ever).
    #[test]
    fn a_reader_that_leaves_the_cache_alone_survives_splits_and_merges_under_it() {
        let dir = tempfile::tempdir().unwrap();
        let db = ::sled::Config::new()
            .path(dir.path())
            .flush_every_ms(None)
            .cache_capacity(256 << 10)
            .open()
            .unwrap();
        let stable = |i: u32| format!("k{:06}-s", i * 2).into_bytes();
        let churn = |i: u32| format!("k{:06}-c", i * 2 + 1).into_bytes();
        for i in 0..20_000 {
            db.insert(stable(i), vec![1u8; 64]).unwrap();
        }
        db.flush().unwrap();
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let rounds = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let writer = {
            let (db, stop, rounds) = (db.clone(), stop.clone(), rounds.clone());
            std::thread::spawn(move || {
                let mut round = 0u32;
                while !stop.load(Ordering::SeqCst) {
                    // Fill a stretch between stable keys (its leaves split), then empty
                    // it again (they fall below the merge threshold).
                    let from = (round * 977) % 19_000;
                    for i in from..from + 500 {
                        db.insert(churn(i), vec![2u8; 64]).unwrap();
                    }
                    for i in from..from + 500 {
                        db.remove(churn(i)).unwrap();
                    }
                    round += 1;
                    rounds.store(round, Ordering::SeqCst);
                }
                round
            })
        };
        // Passes until the writer has gone round 30 times (however fast either runs), or
        // has stopped (a panic, reported by `join` below).
        let mut passes = 0;
        while passes < 3 || (rounds.load(Ordering::SeqCst) < 30 && !writer.is_finished()) {
            passes += 1;
            let mut seen = 0u32;
            let mut last: Option<IVec> = None;
            for item in db.iter().leave_cache() {
                let (k, _) = item.unwrap();
                assert!(last.as_ref().is_none_or(|l| l < &k), "out of order at {k:?}");
                if k.ends_with(b"-s") {
                    assert_eq!(k.as_ref(), stable(seen).as_slice(), "a stable key is missing");
                    seen += 1;
                }
                last = Some(k);
            }
            assert_eq!(seen, 20_000);
        }
        stop.store(true, Ordering::SeqCst);
        let rounds = writer.join().unwrap();
        assert!(rounds >= 30);
    }

    /// Story: the first backup after a start reads a store far larger than what start-up
    /// read. It reads it without filling sled's cache (vendor/sled/README.switchboard.md,
    /// change 6): the pages in memory after the backup are those before it, give or take
    /// the few index nodes above the leaves; a plain scan of the same store, for
    /// comparison, leaves every leaf it read in memory.
    /// A store written before the index of records by customer (no index keys, no mark)
    /// is indexed when it opens, once: a customer's records read back from the index,
    /// and the retention sweep removes a record's index key with it.
    #[tokio::test]
    async fn a_store_without_the_index_by_customer_is_indexed_at_open() {
        use crate::core::{Channel, ConversationRecord, Customer, Outcome, RecordFilter, RecordQuery};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store");
        let record = |id: &str, customer: &str, at: u64| ConversationRecord {
            id: id.into(),
            channel: Channel::Rest,
            entry_point: Some("e1".into()),
            source_page: "Page".into(),
            customer: Customer {
                id: customer.into(),
                name: "U".into(),
            },
            queues: vec!["q1".into()],
            agents: Vec::new(),
            arrived_at: at,
            first_offered_at: None,
            accepted_at: None,
            first_agent_reply_at: None,
            ended_at: at + 5,
            wrapped_up_at: None,
            ended_reason: "customer_ended".into(),
            outcome: Outcome::Abandoned,
            wrapup_reason: None,
            rona_count: 0,
            transfers: 0,
            satisfaction: None,
        };
        let day = 86_400_000;
        let store = SledStore::open(&path, SledOptions::default()).unwrap();
        let changes = (0..2_500u64)
            .map(|i| {
                Change::Record(Box::new(record(
                    &format!("c-{i}"),
                    &format!("u{}", i % 3),
                    i * day / 100,
                )))
            })
            .collect();
        store.commit(changes).await.unwrap();
        // As a build before the index left it: no index keys, no mark.
        let t = store.trees().unwrap();
        let keys: Vec<IVec> = t.by_customer.iter().map(|e| e.unwrap().0).collect();
        assert_eq!(keys.len(), 2_500, "every record is indexed as it is written");
        for k in keys {
            t.records.remove(t.by_customer.key(&k)).unwrap();
        }
        t.records.remove(t.meta.key(META_BY_CUSTOMER)).unwrap();
        t.records.flush().unwrap();
        drop(t);
        store.close();
        drop(store);

        let options = SledOptions {
            retain_records: Some(Duration::from_millis(10 * day)),
            ..SledOptions::default()
        };
        let store = SledStore::open(&path, options).unwrap();
        let t = store.trees().unwrap();
        assert_eq!(t.by_customer.iter().count(), 2_500, "indexed at open");
        assert!(t.meta.get(META_BY_CUSTOMER).unwrap().is_some(), "and marked");
        let of = |customer: &str| RecordQuery {
            filter: RecordFilter {
                customer: Some(customer.into()),
                ..Default::default()
            },
            after: None,
            limit: 10_000,
        };
        let u1 = store.records(&of("u1")).unwrap().records;
        assert_eq!(u1.len(), 833);
        assert!(u1.iter().all(|r| r.customer.id == "u1"));
        // Records arrived over 25 days; ten are kept.
        store.sweep(25 * day).unwrap();
        let kept = store.records(&of("u1")).unwrap().records.len();
        assert_eq!(kept, 333, "u1's records of the last ten days");
        assert_eq!(
            t.by_customer.iter().count(),
            1_000,
            "the index keys went with the records"
        );
    }

    #[tokio::test]
    async fn a_backup_leaves_sled_s_cache_as_it_found_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store");
        let store = SledStore::open(&path, SledOptions::default()).unwrap();
        let ids: Vec<Change> = (0..20_000)
            .map(|i| Change::Mid {
                mid: format!("{i:08}-{}", "m".repeat(100)),
                at: 1_700_000_000_000,
            })
            .collect();
        for group in ids.chunks(1_000) {
            store.commit(group.to_vec()).await.unwrap();
        }
        store.close();
        drop(store);

        let store = SledStore::open(&path, SledOptions::default()).unwrap();
        let resident = || {
            let held = lock(&store.db.open).unwrap();
            held.as_ref().unwrap().db.resident_pages()
        };
        let at_start = resident();
        let mut backup = store.backup().await.unwrap();
        let mut bytes = 0;
        while let Some(chunk) = backup.next_chunk().await {
            bytes += chunk.unwrap().len();
        }
        assert!(bytes > 20_000 * 100, "the backup holds every id: {bytes} bytes");
        let after_backup = resident();
        let records = store.trees().unwrap().records;
        let scanned = records.iter().count();
        let after_scan = resident();

        // Each id is two records, and sled's leaves hold at most 17; an index node has
        // a hundred or more leaves under it.
        let leaves = 2 * 20_000 / 17;
        assert!(scanned >= 2 * 20_000, "{scanned} records");
        assert!(
            after_backup <= at_start + leaves / 50,
            "the backup left pages in the cache: {at_start} at the start, {after_backup} after"
        );
        assert!(
            after_scan >= after_backup + leaves,
            "a plain scan caches its leaves: {after_backup} before it, {after_scan} after"
        );
    }
}
