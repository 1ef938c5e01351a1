//! [`SledStore`]: the engine's durable store on sled 0.34, with group commit.
//!
//! # Layout (store format 2)
//! One sled database per directory, with every record in sled's default tree under a
//! one-byte prefix naming its kind ([`prefix`]): agents, queues, entry points and
//! conversations (keyed by id, whole records), messages (one entry per transcript message,
//! keyed by conversation and `seq`, written once and never rewritten), the retention index
//! (`ended_at` then id) and meta (the store format and the counters). Every value is a
//! versioned record ([`super::record`]).
//!
//! # Group commit
//! One writer thread owns all writes. [`Store::commit`] hands it a batch over a channel
//! and returns a future. The writer takes every batch that arrived while its last flush
//! ran, encodes the last version of each record the group changes (an earlier version in
//! the same group is skipped: it could never be read back), applies the group as **one
//! atomic sled batch** (`Tree::apply_batch`: a crash never leaves half a group on disk,
//! sled recovers a batch whole or not at all), calls `db.flush()` once, and only then
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
//! [`Store::probe`] writes and flushes one meta record on the writer thread (readiness);
//! [`Store::backup`] copies every record there between two groups, so it is consistent
//! ([`super::backup`] is the file; [`restore`] writes one into an empty directory).
//!
//! # Retention
//! Ended conversations older than [`SledOptions::retain_ended`] are removed with their
//! messages by the writer thread every [`SledOptions::sweep_every`], and on demand with
//! [`SledStore::sweep`]. A conversation that an agent still owes a wrap-up for is kept.

use std::collections::HashMap;
use std::collections::HashSet;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ::sled::{Batch, Db, IVec, Tree};
use tokio::sync::oneshot;

use super::record::{self, *};
use super::{BackupFuture, CommitFuture, Snapshot, Store, StoreError};
use crate::config::StoreConfig;
use crate::core::{Change, Conversation, ConversationState, LastOwner, Message, Millis};

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
}

/// The meta entry holding the store format; its full key is `[prefix::META] ++ "format"`.
pub const META_FORMAT: &[u8] = b"format";
const META_COUNTERS: &[u8] = b"counters";
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
}

impl Default for SledOptions {
    /// 30 days of retention, swept hourly; groups of up to 4,096 commits.
    fn default() -> Self {
        SledOptions {
            retain_ended: Some(Duration::from_millis(30 * DAY_MS)),
            sweep_every: Duration::from_secs(3600),
            max_group: 4096,
            before_flush: None,
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
            ..SledOptions::default()
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

/// One kind of record: the records under one key prefix of the store's tree. Keys given
/// to and returned by a keyspace are without the prefix.
#[derive(Clone)]
struct Keyspace {
    tree: Tree,
    prefix: u8,
}

/// A record read from a keyspace: (key without the prefix, value).
type Entry = ::sled::Result<(IVec, IVec)>;

impl Keyspace {
    /// The key in the tree of this kind's `key`.
    fn key(&self, key: &[u8]) -> Vec<u8> {
        let mut k = Vec::with_capacity(1 + key.len());
        k.push(self.prefix);
        k.extend_from_slice(key);
        k
    }

    fn strip(entry: Entry) -> Entry {
        entry.map(|(k, v)| (k.subslice(1, k.len().saturating_sub(1)), v))
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
        self.tree.scan_prefix(self.key(prefix.as_ref())).map(Self::strip)
    }

    /// The records with `from <= key < to`, in key order.
    fn range(&self, from: &[u8], to: &[u8]) -> impl DoubleEndedIterator<Item = Entry> {
        self.tree.range(self.key(from)..self.key(to)).map(Self::strip)
    }
}

/// The store's records (format 2): one sled tree, sled's default one, in which every key
/// starts with one byte naming the kind of record (see [`prefix`]). One tree rather than
/// one per kind because `Tree::apply_batch` makes a group atomic in one tree at a fraction
/// of the cost of a transaction across trees, which reads every key before writing it and
/// copies the batch (BENCHMARKS.md "Store").
#[derive(Clone)]
struct Trees {
    records: Tree,
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
}

impl Trees {
    fn new(db: &Db) -> Trees {
        let records: Tree = (**db).clone();
        let space = |prefix| Keyspace {
            tree: records.clone(),
            prefix,
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
            records,
        }
    }

    /// Applies a batch: on disk, all or nothing (sled recovers a batch whole or not at all).
    fn apply(&self, b: Batch) -> Result<(), StoreError> {
        self.records
            .apply_batch(b)
            .map_err(|e| StoreError::Write(format!("batch failed: {e}")))
    }
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
        | Change::LastOwner { .. } => None,
    }
}

/// Encodes a group's changes into one batch, skipping every record version that a later
/// change of the same group replaces: the whole group is applied atomically, so the
/// earlier version could never be read back, and encoding it is wasted work (an agent's or
/// a conversation's record often changes several times in one group). Returns how many
/// changes were skipped.
fn encode_group(changes: Vec<Vec<Change>>, batch: &mut Batch, scratch: &mut Scratch) -> Result<u64, StoreError> {
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
    for (i, change) in changes.into_iter().flatten().enumerate() {
        if scratch.replaced[i] {
            skipped += 1;
            continue;
        }
        add(batch, change, &mut scratch.key, &mut scratch.value)?;
    }
    Ok(skipped)
}

/// Encodes one change into `batch`. `key` and `value` are scratch buffers: sled copies
/// short keys inline and each value once into its own allocation.
fn add(batch: &mut Batch, change: Change, key: &mut Vec<u8>, value: &mut Vec<u8>) -> Result<(), StoreError> {
    key.clear();
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
            encode_versioned_into(value, ROUTING_V2, &QueueV2::from(q))?;
        }
        Change::EntryPoint(e) => {
            key.push(prefix::ENTRY_POINTS);
            key.extend_from_slice(e.id.as_bytes());
            encode_versioned_into(value, ROUTING_V2, &EntryPointV2::from(e))?;
        }
        Change::Conversation(c) => {
            // `ended_at` is set once, when the conversation ends, so the last version of
            // a group indexes it as well as every earlier one would have.
            if let Some(at) = c.ended_at {
                key.push(prefix::ENDED);
                push_ended_key(key, at, &c.id);
                batch.insert(&key[..], &[][..]);
                key.clear();
            }
            key.push(prefix::CONVERSATIONS);
            key.extend_from_slice(c.id.as_bytes());
            encode_versioned_into(value, ROUTING_V2, &ConversationV2::from(*c))?;
        }
        Change::Message { conversation, message } | Change::MessageUpdate { conversation, message } => {
            key.push(prefix::MESSAGES);
            push_message_key(key, &conversation, message.seq);
            encode_message_into(value, message)?;
        }
        Change::Outbox(o) => {
            key.push(prefix::OUTBOX);
            push_message_key(key, &o.conversation, o.seq);
            encode_into(value, &OutboundV1::from(o))?;
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
            batch.insert(&key[..], &[][..]);
            key.clear();
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

/// Work for the writer thread.
enum Job {
    Commit {
        changes: Vec<Change>,
        submitted: Instant,
        done: oneshot::Sender<Result<(), StoreError>>,
    },
    Sweep {
        now: Millis,
        done: mpsc::Sender<Result<usize, StoreError>>,
    },
    /// Write and flush a small probe record ([`Store::probe`]).
    Probe {
        done: oneshot::Sender<Result<(), StoreError>>,
    },
    /// Copy every record, between two groups ([`Store::backup`]).
    Backup {
        done: oneshot::Sender<Result<Vec<u8>, StoreError>>,
    },
}

/// The sled store. See the module docs.
pub struct SledStore {
    path: PathBuf,
    /// For reads (`load`); `None` once closed.
    db: Mutex<Option<(Db, Trees)>>,
    /// To the writer thread; `None` once closed.
    jobs: Mutex<Option<mpsc::Sender<Job>>>,
    writer: Mutex<Option<JoinHandle<()>>>,
    stats: Arc<Stats>,
    /// Kept to reopen the store the same way after a failed write ([`Store::reopen`]).
    options: SledOptions,
}

impl std::fmt::Debug for SledStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SledStore").field("path", &self.path).finish()
    }
}

impl SledStore {
    /// Opens (or creates) the store in directory `path` and starts its writer thread.
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
        let db = open_db(path)?;
        check_layout(&db, &shown)?;
        let trees = Trees::new(&db);
        match trees.meta.get(META_FORMAT).map_err(|e| sled_error(&shown, e))? {
            Some(v) if v.as_ref() == [STORE_FORMAT] => {}
            Some(v) => {
                return Err(StoreError::UnknownVersion {
                    record: format!("meta/format of {shown}"),
                    version: v.first().copied().unwrap_or(0),
                })
            }
            None => {
                if had_data || !trees.records.is_empty() {
                    return Err(StoreError::Corrupt {
                        what: format!("{shown} holds data but no format marker; refusing to use it"),
                    });
                }
                trees
                    .records
                    .insert(trees.meta.key(META_FORMAT), &[STORE_FORMAT])
                    .and_then(|_| db.flush())
                    .map_err(|e| StoreError::Write(format!("{shown}: {e}")))?;
            }
        }
        // Only once the store is known to be ours: a refused directory is left as it was.
        make_private(path)?;
        let stats = Arc::new(Stats::default());
        let (tx, handle) = start_writer(&db, &trees, &stats, &options)?;
        tracing::info!(path = %shown, "store opened");
        Ok(SledStore {
            path: path.to_path_buf(),
            db: Mutex::new(Some((db, trees))),
            jobs: Mutex::new(Some(tx)),
            writer: Mutex::new(Some(handle)),
            stats,
            options,
        })
    }

    /// The directory of this store.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The group commit's figures so far.
    pub fn stats(&self) -> StoreStats {
        self.stats.snapshot()
    }

    /// Removes ended conversations (and their messages) that ended more than the retention
    /// period before `now`, except those an agent still owes a wrap-up for. Runs on the
    /// writer thread, in order with commits; returns how many conversations were removed.
    pub fn sweep(&self, now: Millis) -> Result<usize, StoreError> {
        let (tx, rx) = mpsc::channel();
        self.send(Job::Sweep { now, done: tx })?;
        rx.recv().map_err(|_| closed())?
    }

    /// Finishes the commits already handed over, stops the writer and releases the
    /// directory (its lock). Later commits fail with [`StoreError::Write`]. Dropping the
    /// store does the same. The summary of the store's life is logged once, by the call
    /// that closed it.
    pub fn close(&self) {
        if self.shut() {
            self.log_summary("store closed");
        }
    }

    /// Stops the writer and releases the directory; true if it was open.
    fn shut(&self) -> bool {
        drop(lock_to_close(&self.jobs).take());
        if let Some(h) = lock_to_close(&self.writer).take() {
            let _ = h.join();
        }
        let was_open = lock_to_close(&self.db).take().is_some();
        if was_open {
            wait_released(&self.path);
        }
        was_open
    }

    fn log_summary(&self, what: &'static str) {
        let s = self.stats();
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
        let guard = lock(&self.db)?;
        let (_, trees) = guard
            .as_ref()
            .ok_or_else(|| StoreError::Read("the store is closed".into()))?;
        load(trees, &self.path.display().to_string())
    }

    fn conversation(&self, id: &str) -> Result<Option<Conversation>, StoreError> {
        // Reads go straight to sled's tree from the caller's thread: sled serves
        // concurrent readers beside the writer thread, and a group's batch is visible to
        // them as soon as `apply_batch` applied it (before its flush).
        let guard = lock(&self.db)?;
        let (_, trees) = guard
            .as_ref()
            .ok_or_else(|| StoreError::Read("the store is closed".into()))?;
        read_conversation(trees, id, &self.path.display().to_string())
    }

    fn probe(&self) -> CommitFuture {
        let (done, rx) = oneshot::channel();
        if let Err(e) = self.send(Job::Probe { done }) {
            return Box::pin(std::future::ready(Err(e)));
        }
        Box::pin(async move { rx.await.unwrap_or_else(|_| Err(closed())) })
    }

    /// Closes the failed store and opens it again: sled recovers what was flushed, the
    /// writer starts afresh. Nothing is done while the store has not failed.
    fn reopen(&self) -> Result<(), StoreError> {
        if !self.stats.failed.load(Ordering::SeqCst) && lock(&self.db)?.is_some() {
            return Ok(());
        }
        if self.shut() {
            self.log_summary("store closed after a failed write");
        }
        let shown = self.path.display().to_string();
        let db = open_db(&self.path)?;
        check_layout(&db, &shown)?;
        let trees = Trees::new(&db);
        match trees.meta.get(META_FORMAT).map_err(|e| sled_error(&shown, e))? {
            Some(v) if v.as_ref() == [STORE_FORMAT] => {}
            _ => {
                return Err(StoreError::Corrupt {
                    what: format!("{shown} lost its format marker; refusing to use it"),
                })
            }
        }
        let (tx, handle) = start_writer(&db, &trees, &self.stats, &self.options)?;
        self.stats.failed.store(false, Ordering::SeqCst);
        *lock(&self.db)? = Some((db, trees));
        *lock(&self.jobs)? = Some(tx);
        *lock(&self.writer)? = Some(handle);
        tracing::info!(path = %shown, "store reopened");
        Ok(())
    }

    fn backup(&self) -> BackupFuture {
        let (done, rx) = oneshot::channel();
        if let Err(e) = self.send(Job::Backup { done }) {
            return Box::pin(std::future::ready(Err(e)));
        }
        Box::pin(async move { rx.await.unwrap_or_else(|_| Err(closed())) })
    }

    fn mid_seen(&self, mid: &str) -> Result<bool, StoreError> {
        let guard = lock(&self.db)?;
        let (_, trees) = guard
            .as_ref()
            .ok_or_else(|| StoreError::Read("the store is closed".into()))?;
        trees
            .mids
            .get(mid.as_bytes())
            .map(|v| v.is_some())
            .map_err(|e| StoreError::Read(e.to_string()))
    }

    fn customer_name(&self, page_id: &str, customer: &str) -> Result<Option<String>, StoreError> {
        let guard = lock(&self.db)?;
        let (_, trees) = guard
            .as_ref()
            .ok_or_else(|| StoreError::Read("the store is closed".into()))?;
        let key = record::customer_name_key(page_id, customer);
        match trees.names.get(&key).map_err(|e| StoreError::Read(e.to_string()))? {
            Some(v) => Ok(Some(decode::<CustomerNameV1>("names", &key, &v)?.name)),
            None => Ok(None),
        }
    }

    fn last_owner(&self, entry_point: &str, customer: &str) -> Result<Option<LastOwner>, StoreError> {
        let guard = lock(&self.db)?;
        let (_, trees) = guard
            .as_ref()
            .ok_or_else(|| StoreError::Read("the store is closed".into()))?;
        let key = record::last_owner_key(entry_point, customer);
        match trees
            .last_owners
            .get(&key)
            .map_err(|e| StoreError::Read(e.to_string()))?
        {
            Some(v) => Ok(Some(decode_last_owner(&key, &v)?)),
            None => Ok(None),
        }
    }
}

/// Starts the writer thread over an open database.
fn start_writer(
    db: &Db,
    trees: &Trees,
    stats: &Arc<Stats>,
    options: &SledOptions,
) -> Result<(mpsc::Sender<Job>, JoinHandle<()>), StoreError> {
    let (tx, rx) = mpsc::channel();
    let writer = Writer {
        db: db.clone(),
        trees: trees.clone(),
        stats: stats.clone(),
        retain_ms: options.retain_ended.map(|d| d.as_millis() as u64),
        sweep_every: options.sweep_every,
        max_group: options.max_group.max(1),
        before_flush: options.before_flush.clone(),
        failed: None,
        scratch: Scratch::default(),
    };
    let handle = std::thread::Builder::new()
        .name("switchboard-store".into())
        .spawn(move || writer.run(rx))
        .map_err(|e| StoreError::Write(format!("cannot start the store writer: {e}")))?;
    Ok((tx, handle))
}

/// Writes a backup (see [`super::backup`]) into `dir`, which must be absent or empty,
/// and checks that the result opens and loads as a store. Refuses a non-empty directory
/// and a backup that fails its checksum or names another store format, writing nothing.
pub fn restore(backup: &[u8], dir: &Path) -> Result<usize, StoreError> {
    let shown = dir.display().to_string();
    let entries = super::backup::decode(backup, STORE_FORMAT).map_err(|e| StoreError::Corrupt {
        what: format!("the backup: {e}"),
    })?;
    if dir.exists() {
        let mut listing = std::fs::read_dir(dir).map_err(|e| StoreError::Read(format!("{shown}: {e}")))?;
        if listing.next().is_some() {
            return Err(StoreError::Write(format!(
                "{shown} is not empty; restore writes only into an empty or absent directory"
            )));
        }
    }
    create_private_dir(dir)?;
    let n = entries.len();
    {
        let db = open_db(dir)?;
        let mut b = Batch::default();
        for (k, v) in entries {
            b.insert(k, v);
        }
        db.apply_batch(b)
            .and_then(|()| db.flush().map(|_| ()))
            .map_err(|e| StoreError::Write(format!("{shown}: {e}")))?;
    }
    wait_released(dir);
    // What was written must open and load like any store.
    let store = SledStore::open(dir, SledOptions::default())?;
    store.load()?;
    store.shut();
    Ok(n)
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
/// checksum, and the header checksum of every segment of the `db` file that is in use.
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
    while offset + 20 <= len {
        use std::io::Seek;
        file.seek(std::io::SeekFrom::Start(offset))
            .and_then(|_| file.read_exact(&mut header))
            .map_err(|e| corrupt(format!("cannot read db: {e}")))?;
        let stored = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) ^ 0xFFFF_FFFF;
        if header != [0; 20] && crc32fast::hash(&header[4..]) != stored {
            return Err(corrupt(format!(
                "the segment at byte {offset} of db fails its checksum"
            )));
        }
        offset += segment_size;
    }
    Ok(())
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

/// Opens sled, turning its errors (and panics on garbage files) into [`StoreError`]s.
fn open_db(path: &Path) -> Result<Db, StoreError> {
    let shown = path.display().to_string();
    let config = ::sled::Config::new().path(path).flush_every_ms(None);
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
    snap.conversations = conversations;
    load_counters(t, snap, path)
}

fn load_counters(t: &Trees, mut snap: Snapshot, path: &str) -> Result<Snapshot, StoreError> {
    let read = |e: ::sled::Error| StoreError::Read(format!("{path}: {e}"));
    // The outbox, in key order: by conversation, then seq (the order to send in).
    for item in t.outbox.iter() {
        let (k, v) = item.map_err(read)?;
        snap.outbox.push(decode::<OutboundV1>("outbox", &k, &v)?.into());
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

/// The writer thread's state. See the module docs.
struct Writer {
    db: Db,
    trees: Trees,
    stats: Arc<Stats>,
    retain_ms: Option<u64>,
    sweep_every: Duration,
    max_group: usize,
    before_flush: Option<FlushHook>,
    /// Set by the first failed write; every later job fails with it.
    failed: Option<StoreError>,
    /// Encoding buffers kept from one group to the next.
    scratch: Scratch,
}

type Waiter = (Instant, oneshot::Sender<Result<(), StoreError>>);

impl Writer {
    fn run(mut self, rx: mpsc::Receiver<Job>) {
        let mut next_sweep = Instant::now() + self.sweep_every;
        loop {
            let wait = next_sweep.saturating_duration_since(Instant::now());
            let first = match rx.recv_timeout(wait) {
                Ok(job) => job,
                Err(RecvTimeoutError::Timeout) => {
                    next_sweep = Instant::now() + self.sweep_every;
                    if let Err(e) = self.sweep(wall_clock()) {
                        tracing::error!(error = %e, "retention sweep failed");
                    }
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => break,
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
                        changes: c,
                        submitted,
                        done,
                    } => {
                        changes.push(c);
                        waiters.push((submitted, done));
                    }
                    Job::Sweep { now, done } => sweeps.push((now, done)),
                    other => others.push(other),
                }
                if waiters.len() < self.max_group {
                    next = rx.try_recv().ok();
                }
            }
            if !waiters.is_empty() {
                self.commit_group(changes, waiters);
            }
            for (now, done) in sweeps {
                let _ = done.send(self.sweep(now));
            }
            // After the group: a probe or a backup sees every commit handed over before it.
            for job in others {
                match job {
                    Job::Probe { done } => {
                        let _ = done.send(self.probe());
                    }
                    Job::Backup { done } => {
                        let _ = done.send(self.backup());
                    }
                    Job::Commit { .. } | Job::Sweep { .. } => {}
                }
            }
        }
    }

    /// Applies a group, flushes once, then resolves its waiters in order.
    fn commit_group(&mut self, changes: Vec<Vec<Change>>, waiters: Vec<Waiter>) {
        let result = match &self.failed {
            Some(e) => Err(e.clone()),
            None => {
                let n: usize = changes.iter().map(Vec::len).sum();
                let mut b = Batch::default();
                let r = encode_group(changes, &mut b, &mut self.scratch)
                    .and_then(|skipped| self.trees.apply(b).map(|()| skipped))
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
            if self.failed.is_none() {
                tracing::error!(error = %e, "store write failed; refusing writes until the store is reopened");
                self.stats.failed.store(true, Ordering::SeqCst);
                self.failed = Some(e.clone());
            }
        }
        let now = Instant::now();
        for (submitted, done) in waiters {
            crate::metrics::STORE_COMMIT_LATENCY.observe(now.duration_since(submitted).as_secs_f64());
            // A caller that went away is fine: the change is durable all the same.
            let _ = done.send(result.clone());
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

    /// Writes and flushes the probe record (meta `probe`: the time of the probe).
    fn probe(&mut self) -> Result<(), StoreError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let r = self
            .trees
            .records
            .insert(self.trees.meta.key(META_PROBE), &wall_clock().to_be_bytes())
            .map_err(|e| StoreError::Write(format!("probe failed: {e}")))
            .and_then(|_| self.flush());
        if let Err(e) = &r {
            crate::metrics::STORE_ERRORS.with_label_values(&["probe"]).inc();
            tracing::error!(error = %e, "store probe failed; refusing writes until the store is reopened");
            self.stats.failed.store(true, Ordering::SeqCst);
            self.failed = Some(e.clone());
        }
        r
    }

    /// Every record of the tree (the probe record aside) in the backup format. Runs on
    /// the writer between two groups, so it sees whole groups only: a consistent copy.
    fn backup(&self) -> Result<Vec<u8>, StoreError> {
        let probe_key = self.trees.meta.key(META_PROBE);
        let mut out = super::backup::Writer::new(STORE_FORMAT);
        for item in self.trees.records.iter() {
            let (k, v) = item.map_err(|e| {
                crate::metrics::STORE_ERRORS.with_label_values(&["read"]).inc();
                StoreError::Read(format!("backup: {e}"))
            })?;
            if k.as_ref() != probe_key.as_slice() {
                out.entry(&k, &v);
            }
        }
        Ok(out.finish())
    }

    /// Forgets Messenger message ids taken in more than [`MID_RETENTION_MS`] ago (Meta
    /// redelivers an unanswered event for hours, not days), a chunk at a time.
    fn sweep_mids(&mut self, now: Millis) -> Result<(), StoreError> {
        let cutoff = now.saturating_sub(MID_RETENTION_MS);
        let read = |e: ::sled::Error| StoreError::Read(e.to_string());
        loop {
            let mut b = Batch::default();
            let mut n = 0;
            for item in self.trees.mid_times.range(&[], &cutoff.to_be_bytes()) {
                let (k, _) = item.map_err(read)?;
                if let Some((_, mid)) = parse_ended_key(&k) {
                    b.remove(self.trees.mids.key(mid.as_bytes()));
                }
                b.remove(self.trees.mid_times.key(&k));
                n += 1;
                if n == SWEEP_CHUNK {
                    break;
                }
            }
            if n == 0 {
                return Ok(());
            }
            if let Err(e) = self.trees.apply(b).and_then(|()| self.flush()) {
                self.stats.failed.store(true, Ordering::SeqCst);
                self.failed = Some(e.clone());
                return Err(e);
            }
            if n < SWEEP_CHUNK {
                return Ok(());
            }
        }
    }

    /// See [`SledStore::sweep`].
    fn sweep(&mut self, now: Millis) -> Result<usize, StoreError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        self.sweep_mids(now)?;
        let Some(retain) = self.retain_ms else { return Ok(0) };
        let cutoff = now.saturating_sub(retain);
        let read = |e: ::sled::Error| StoreError::Read(e.to_string());
        // Conversations an agent still holds stay, whatever their age.
        let mut held: HashSet<String> = HashSet::new();
        for item in self.trees.agents.iter() {
            let (k, v) = item.map_err(read)?;
            let a = decode_agent("agents", &k, &v)?;
            held.extend(a.wrapups.into_keys());
            held.extend(a.active);
            held.extend(a.offers);
        }
        let mut removed = 0;
        let mut skip_before: Vec<u8> = Vec::new();
        loop {
            let mut b = Batch::default();
            let mut n = 0;
            let mut last_key = None;
            for item in self.trees.ended.range(&skip_before, &cutoff.to_be_bytes()) {
                let (k, _) = item.map_err(read)?;
                last_key = Some(k.to_vec());
                let Some((_, id)) = parse_ended_key(&k) else { continue };
                if held.contains(id) {
                    continue;
                }
                let messages = self.trees.messages.key(&record::message_prefix(id));
                for m in self.trees.records.scan_prefix(messages).keys() {
                    b.remove(m.map_err(read)?);
                }
                b.remove(self.trees.conversations.key(id.as_bytes()));
                b.remove(self.trees.ended.key(&k));
                n += 1;
                if n == SWEEP_CHUNK {
                    break;
                }
            }
            if n > 0 {
                let r = self.trees.apply(b).and_then(|()| self.flush());
                if let Err(e) = r {
                    self.stats.failed.store(true, Ordering::SeqCst);
                    self.failed = Some(e.clone());
                    return Err(e);
                }
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
            tracing::info!(removed, cutoff, "retention removed ended conversations");
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
