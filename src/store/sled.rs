//! [`SledStore`]: the engine's durable store on sled 0.34, with group commit.
//!
//! # Layout
//! One sled database per directory, with one tree per kind of record:
//! `agents`, `queues`, `entry_points` and `conversations` (keyed by id, whole records),
//! `messages` (one entry per transcript message, keyed by conversation and `seq`, written
//! once and never rewritten), `ended` (a retention index: `ended_at` then id) and `meta`
//! (the store format and the counters). Every value is a versioned record
//! ([`super::record`]).
//!
//! # Group commit
//! One writer thread owns all writes. [`Store::commit`] hands it a batch over a channel
//! and returns a future. The writer takes every batch that arrived while its last flush
//! ran, applies them in arrival order as **one sled transaction** across the trees (so a
//! crash never leaves half a batch on disk: sled recovers a transaction whole or not at
//! all), calls `db.flush()` once, and only then resolves each batch's future, in order.
//! sled's own background flush is switched off (`flush_every_ms(None)`): nothing counts
//! as durable until the writer's flush returned.
//!
//! # Faults
//! - A directory held by another running engine, an unreadable or corrupt store, or a
//!   record of an unknown format version: [`SledStore::open`] / [`Store::load`] fail with
//!   a [`StoreError`] that names the directory or the record, and write nothing.
//! - A write or flush that fails at run time: that group's futures, and every later one,
//!   resolve to [`StoreError::Write`]. The store never writes again in this process: the
//!   engine refuses changes until a restart rebuilds it from what is durable.
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

use ::sled::transaction::{ConflictableTransactionError, TransactionError};
use ::sled::{Batch, Db, Transactional, Tree};
use tokio::sync::oneshot;

use super::record::{self, *};
use super::{CommitFuture, Snapshot, Store, StoreError};
use crate::config::StoreConfig;
use crate::core::{Change, Conversation, Millis};

/// The layout of the database (tree names, keys, meta entries). Records carry their own
/// version ([`record::RECORD_VERSION`]); this one changes only if the layout does.
pub const STORE_FORMAT: u8 = 1;

const META_FORMAT: &[u8] = b"format";
const META_COUNTERS: &[u8] = b"counters";
/// Retention removes at most this many conversations per transaction.
const SWEEP_CHUNK: usize = 1_000;
const DAY_MS: u64 = 24 * 60 * 60 * 1000;

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
    /// Most commits applied in one group (bounds the size of one transaction).
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

/// Figures of the group commit, for logs and benchmarks.
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
    /// Commits per flush: `(lower bound, flushes)` for the buckets 1, 2-3, 4-7, 8-15, ...
    pub commits_per_flush: Vec<(u64, u64)>,
    /// Total and longest time in `db.flush()`, in microseconds.
    pub flush_us_total: u64,
    pub flush_us_max: u64,
    /// Total time from `commit()` to the future resolving, in microseconds.
    pub commit_us_total: u64,
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

const BUCKETS: usize = 16;

#[derive(Default)]
struct Stats {
    commits: AtomicU64,
    changes: AtomicU64,
    coalesced: AtomicU64,
    flushes: AtomicU64,
    max_per_flush: AtomicU64,
    per_flush: [AtomicU64; BUCKETS],
    flush_us_total: AtomicU64,
    flush_us_max: AtomicU64,
    commit_us_total: AtomicU64,
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
            commits_per_flush: self
                .per_flush
                .iter()
                .enumerate()
                .map(|(i, n)| (1u64 << i, r(n)))
                .filter(|(_, n)| *n > 0)
                .collect(),
            flush_us_total: r(&self.flush_us_total),
            flush_us_max: r(&self.flush_us_max),
            commit_us_total: r(&self.commit_us_total),
            swept: r(&self.swept),
            failed: self.failed.load(Ordering::Relaxed),
        }
    }
}

/// The trees of one store.
#[derive(Clone)]
struct Trees {
    agents: Tree,
    queues: Tree,
    entry_points: Tree,
    conversations: Tree,
    messages: Tree,
    ended: Tree,
    meta: Tree,
}

impl Trees {
    fn open(db: &Db) -> ::sled::Result<Trees> {
        Ok(Trees {
            agents: db.open_tree("agents")?,
            queues: db.open_tree("queues")?,
            entry_points: db.open_tree("entry_points")?,
            conversations: db.open_tree("conversations")?,
            messages: db.open_tree("messages")?,
            ended: db.open_tree("ended")?,
            meta: db.open_tree("meta")?,
        })
    }

    fn all(&self) -> [&Tree; 7] {
        [
            &self.agents,
            &self.queues,
            &self.entry_points,
            &self.conversations,
            &self.messages,
            &self.ended,
            &self.meta,
        ]
    }

    /// Applies one batch per tree as one transaction: on disk, all or nothing.
    fn apply(&self, b: &Batches) -> Result<(), StoreError> {
        let trees = (
            &self.agents,
            &self.queues,
            &self.entry_points,
            &self.conversations,
            &self.messages,
            &self.ended,
            &self.meta,
        );
        trees
            .transaction(|(a, q, e, c, m, en, me)| {
                a.apply_batch(&b.agents)?;
                q.apply_batch(&b.queues)?;
                e.apply_batch(&b.entry_points)?;
                c.apply_batch(&b.conversations)?;
                m.apply_batch(&b.messages)?;
                en.apply_batch(&b.ended)?;
                me.apply_batch(&b.meta)?;
                Ok::<(), ConflictableTransactionError<()>>(())
            })
            .map_err(|e: TransactionError<()>| StoreError::Write(format!("transaction failed: {e:?}")))
    }
}

#[derive(Default)]
struct Batches {
    agents: Batch,
    queues: Batch,
    entry_points: Batch,
    conversations: Batch,
    messages: Batch,
    ended: Batch,
    meta: Batch,
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
        Change::Message { .. } => None,
    }
}

impl Batches {
    /// Encodes a group's changes, skipping every record version that a later change of
    /// the same group replaces: the whole group is applied atomically, so the earlier
    /// version could never be read back, and encoding it is wasted work (an agent's or a
    /// conversation's record often changes several times in one group). Returns how many
    /// changes were skipped.
    fn encode(&mut self, changes: Vec<Vec<Change>>, scratch: &mut Scratch) -> Result<u64, StoreError> {
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
            self.add(change, &mut scratch.key, &mut scratch.value)?;
        }
        Ok(skipped)
    }

    /// Encodes one change into its tree's batch.
    fn add(&mut self, change: Change, key: &mut Vec<u8>, value: &mut Vec<u8>) -> Result<(), StoreError> {
        key.clear();
        value.clear();
        match change {
            Change::Agent(a) => {
                key.extend_from_slice(a.id.as_bytes());
                encode_into(value, &AgentV1::from(*a))?;
                self.agents.insert(&key[..], &value[..]);
            }
            Change::Queue(q) => {
                key.extend_from_slice(q.id.as_bytes());
                encode_into(value, &QueueV1::from(q))?;
                self.queues.insert(&key[..], &value[..]);
            }
            Change::EntryPoint(e) => {
                key.extend_from_slice(e.id.as_bytes());
                encode_into(value, &EntryPointV1::from(e))?;
                self.entry_points.insert(&key[..], &value[..]);
            }
            Change::Conversation(c) => {
                // `ended_at` is set once, when the conversation ends, so the last version
                // of a group indexes it as well as every earlier one would have.
                if let Some(at) = c.ended_at {
                    push_ended_key(key, at, &c.id);
                    self.ended.insert(&key[..], &[][..]);
                    key.clear();
                }
                key.extend_from_slice(c.id.as_bytes());
                encode_into(value, &ConversationV1::from(*c))?;
                self.conversations.insert(&key[..], &value[..]);
            }
            Change::Message { conversation, message } => {
                push_message_key(key, &conversation, message.seq);
                encode_into(value, &MessageV1::from(message))?;
                self.messages.insert(&key[..], &value[..]);
            }
            Change::Counters {
                next_conversation,
                next_offer,
                next_arrival,
            } => {
                let c = CountersV1 {
                    next_conversation,
                    next_offer,
                    next_arrival,
                };
                encode_into(value, &c)?;
                self.meta.insert(META_COUNTERS, &value[..]);
            }
        }
        Ok(())
    }
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
        if path.is_dir() && !db_file.exists() && std::fs::read_dir(path).is_ok_and(|mut d| d.next().is_some()) {
            return Err(StoreError::Corrupt {
                what: format!("{shown} is not empty and holds no store (no `db` file); refusing to write into it"),
            });
        }
        let had_data = std::fs::metadata(&db_file).is_ok_and(|m| m.len() > 0);
        if had_data {
            preflight(path)?;
        }
        let db = open_db(path)?;
        let trees = Trees::open(&db).map_err(|e| sled_error(&shown, e))?;
        match trees.meta.get(META_FORMAT).map_err(|e| sled_error(&shown, e))? {
            Some(v) if v.as_ref() == [STORE_FORMAT] => {}
            Some(v) => {
                return Err(StoreError::UnknownVersion {
                    record: format!("meta/format of {shown}"),
                    version: v.first().copied().unwrap_or(0),
                })
            }
            None => {
                let empty = trees.all().iter().all(|t| t.is_empty());
                if had_data || !empty {
                    return Err(StoreError::Corrupt {
                        what: format!("{shown} holds data but no format marker; refusing to use it"),
                    });
                }
                trees
                    .meta
                    .insert(META_FORMAT, &[STORE_FORMAT])
                    .and_then(|_| db.flush())
                    .map_err(|e| StoreError::Write(format!("{shown}: {e}")))?;
            }
        }
        let stats = Arc::new(Stats::default());
        let (tx, rx) = mpsc::channel();
        let writer = Writer {
            db: db.clone(),
            trees: trees.clone(),
            stats: stats.clone(),
            retain_ms: options.retain_ended.map(|d| d.as_millis() as u64),
            sweep_every: options.sweep_every,
            max_group: options.max_group.max(1),
            before_flush: options.before_flush,
            failed: None,
            scratch: Scratch::default(),
        };
        let handle = std::thread::Builder::new()
            .name("switchboard-store".into())
            .spawn(move || writer.run(rx))
            .map_err(|e| StoreError::Write(format!("cannot start the store writer: {e}")))?;
        tracing::info!(path = %shown, "store opened");
        Ok(SledStore {
            path: path.to_path_buf(),
            db: Mutex::new(Some((db, trees))),
            jobs: Mutex::new(Some(tx)),
            writer: Mutex::new(Some(handle)),
            stats,
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
    /// store does the same.
    pub fn close(&self) {
        drop(lock(&self.jobs).take());
        if let Some(h) = lock(&self.writer).take() {
            let _ = h.join();
        }
        if lock(&self.db).take().is_some() {
            wait_released(&self.path);
        }
        let s = self.stats();
        tracing::info!(
            path = %self.path.display(),
            commits = s.commits,
            flushes = s.flushes,
            mean_commits_per_flush = s.mean_commits_per_flush(),
            mean_flush_ms = s.mean_flush_ms(),
            "store closed"
        );
    }

    fn send(&self, job: Job) -> Result<(), StoreError> {
        match lock(&self.jobs).as_ref() {
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
        let guard = lock(&self.db);
        let (_, trees) = guard
            .as_ref()
            .ok_or_else(|| StoreError::Read("the store is closed".into()))?;
        load(trees, &self.path.display().to_string())
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
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
    let conf = std::fs::read(path.join("conf")).map_err(|e| corrupt(format!("cannot read conf: {e}")))?;
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
    let mut file = std::fs::File::open(path.join("db")).map_err(|e| corrupt(format!("cannot read db: {e}")))?;
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
        ::sled::Error::Corruption { at, .. } => StoreError::Corrupt {
            what: format!("{path}: sled found corruption at {at:?}"),
        },
        other => StoreError::Corrupt {
            what: format!("{path}: {other}"),
        },
    }
}

/// Reads every record back. Messages whose conversation is gone (a retention sweep cut
/// short) are skipped.
fn load(t: &Trees, path: &str) -> Result<Snapshot, StoreError> {
    let read = |e: ::sled::Error| StoreError::Read(format!("{path}: {e}"));
    let mut snap = Snapshot::default();
    for item in t.queues.iter() {
        let (k, v) = item.map_err(read)?;
        snap.queues.push(decode::<QueueV1>("queues", &k, &v)?.into());
    }
    for item in t.entry_points.iter() {
        let (k, v) = item.map_err(read)?;
        snap.entry_points
            .push(decode::<EntryPointV1>("entry_points", &k, &v)?.into());
    }
    for item in t.agents.iter() {
        let (k, v) = item.map_err(read)?;
        snap.agents.push(decode::<AgentV1>("agents", &k, &v)?.into());
    }
    let mut conversations: Vec<Conversation> = Vec::with_capacity(t.conversations.len());
    for item in t.conversations.iter() {
        let (k, v) = item.map_err(read)?;
        conversations.push(decode::<ConversationV1>("conversations", &k, &v)?.into());
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
        let m: MessageV1 = decode("messages", &k, &v)?;
        if m.seq != seq {
            return Err(StoreError::Corrupt {
                what: format!("{path}: message {} holds seq {}", printable(&k), m.seq),
            });
        }
        conversations[at].transcript.push(m.into());
    }
    snap.conversations = conversations;
    if let Some(v) = t.meta.get(META_COUNTERS).map_err(read)? {
        let c: CountersV1 = decode("meta", META_COUNTERS, &v)?;
        snap.counters = (c.next_conversation, c.next_offer, c.next_arrival);
    }
    Ok(snap)
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
        }
    }

    /// Applies a group, flushes once, then resolves its waiters in order.
    fn commit_group(&mut self, changes: Vec<Vec<Change>>, waiters: Vec<Waiter>) {
        let result = match &self.failed {
            Some(e) => Err(e.clone()),
            None => {
                let n: usize = changes.iter().map(Vec::len).sum();
                let mut b = Batches::default();
                let r = b
                    .encode(changes, &mut self.scratch)
                    .and_then(|skipped| self.trees.apply(&b).map(|()| skipped))
                    .and_then(|skipped| self.flush().map(|()| skipped));
                if let Ok(skipped) = r {
                    let s = &self.stats;
                    let k = waiters.len() as u64;
                    s.commits.fetch_add(k, Ordering::Relaxed);
                    s.changes.fetch_add(n as u64, Ordering::Relaxed);
                    s.coalesced.fetch_add(skipped, Ordering::Relaxed);
                    s.max_per_flush.fetch_max(k, Ordering::Relaxed);
                    let bucket = (63 - k.leading_zeros() as usize).min(BUCKETS - 1);
                    s.per_flush[bucket].fetch_add(1, Ordering::Relaxed);
                    crate::metrics::STORE_COMMITS_PER_FLUSH.observe(k as f64);
                }
                r.map(|_| ())
            }
        };
        if let Err(e) = &result {
            if self.failed.is_none() {
                tracing::error!(error = %e, "store write failed; no further writes in this process");
                self.stats.failed.store(true, Ordering::SeqCst);
                self.failed = Some(e.clone());
            }
        }
        let now = Instant::now();
        for (submitted, done) in waiters {
            let us = now.duration_since(submitted).as_micros() as u64;
            self.stats.commit_us_total.fetch_add(us, Ordering::Relaxed);
            crate::metrics::STORE_COMMIT_LATENCY.observe(us as f64 / 1e6);
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
        let us = started.elapsed().as_micros() as u64;
        self.stats.flushes.fetch_add(1, Ordering::Relaxed);
        self.stats.flush_us_total.fetch_add(us, Ordering::Relaxed);
        self.stats.flush_us_max.fetch_max(us, Ordering::Relaxed);
        crate::metrics::STORE_FLUSH_LATENCY.observe(us as f64 / 1e6);
        Ok(())
    }

    /// See [`SledStore::sweep`].
    fn sweep(&mut self, now: Millis) -> Result<usize, StoreError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let Some(retain) = self.retain_ms else { return Ok(0) };
        let cutoff = now.saturating_sub(retain);
        let read = |e: ::sled::Error| StoreError::Read(e.to_string());
        // Conversations an agent still holds stay, whatever their age.
        let mut held: HashSet<String> = HashSet::new();
        for item in self.trees.agents.iter() {
            let (k, v) = item.map_err(read)?;
            let a: AgentV1 = decode("agents", &k, &v)?;
            held.extend(a.wrapups.into_keys());
            held.extend(a.active);
            held.extend(a.offers);
        }
        let mut removed = 0;
        let mut skip_before: Vec<u8> = Vec::new();
        loop {
            let mut b = Batches::default();
            let mut n = 0;
            let mut last_key = None;
            for item in self
                .trees
                .ended
                .range(skip_before.clone()..cutoff.to_be_bytes().to_vec())
            {
                let (k, _) = item.map_err(read)?;
                last_key = Some(k.to_vec());
                let Some((_, id)) = parse_ended_key(&k) else { continue };
                if held.contains(id) {
                    continue;
                }
                for m in self.trees.messages.scan_prefix(record::message_prefix(id)).keys() {
                    b.messages.remove(m.map_err(read)?);
                }
                b.conversations.remove(id.as_bytes());
                b.ended.remove(k.to_vec());
                n += 1;
                if n == SWEEP_CHUNK {
                    break;
                }
            }
            if n > 0 {
                let r = self.trees.apply(&b).and_then(|()| self.flush());
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
