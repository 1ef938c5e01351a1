//! A tenant's store in a cluster: every group commit appended to the tenant's JetStream
//! log before it is acknowledged, the node's own sled store as its local copy.
//!
//! [`LogStore`] is a [`Store`]: `commit` encodes the changes as the writes the sled store
//! makes ([`encode_ops`]), appends them as one log entry with
//! `Nats-Expected-Last-Subject-Sequence` set to the last entry this owner knows of, waits
//! for JetStream's acknowledgement (the entry is then on a majority of the stream's
//! replicas), and only then applies the changes to the local sled store and resolves.
//! Reads (`load`, `conversation`, `records`, ...) are the local store's.
//!
//! # Fencing
//! An append that JetStream refuses because the log has moved on (another owner appended)
//! fences the store: that commit and every later one fail, and the node stops routing the
//! tenant ([`Fence`]). So does an append attempted after this owner's lease may have lapsed,
//! and any append whose outcome is unknown (a timeout): after it, this owner's idea of the
//! log's end cannot be trusted. Nothing after a fence is acknowledged.
//!
//! # Snapshots
//! Every `snapshot_every` entries, or once the log since the last snapshot holds as many
//! bytes as it (64 MiB at least), the owner writes a snapshot: the local store's backup
//! file ([`crate::store::backup`]), taken between two groups, with the log sequence it
//! covers in the object's description. A new owner restores the latest snapshot and applies
//! the entries after it ([`rebuild`]). The writes are blind, so a snapshot that covers a
//! little more than its sequence says gives the same store.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream;
use async_nats::HeaderMap;
use tokio::sync::{mpsc, oneshot};

use crate::core::{Change, Conversation, LastOwner, RecordPage, RecordQuery};
use crate::store::sled::{encode_ops, Op};
use crate::store::{BackupFuture, CommitFuture, SledStore, Snapshot, Store, StoreError};

/// The version byte of a log entry's payload (then bincode of [`Entry`]).
const ENTRY_VERSION: u8 = 1;
/// A group larger than this is appended as several entries, all but the last marked
/// `more` (NATS refuses a message above its `max_payload`, 1 MiB by default).
const ENTRY_BYTES: usize = 256 << 10;
/// Header naming the node that appended an entry (for people reading the log).
pub const NODE_HEADER: &str = "Switchboard-Node";
/// Header of the entry a new owner appends before it routes: the takeover mark.
pub const TAKEOVER_HEADER: &str = "Switchboard-Takeover";
/// How long an append may wait for JetStream's acknowledgement before its outcome counts
/// as unknown (the store is then fenced).
const APPEND_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a new owner waits for the next entry of the log while it replays.
const REPLAY_WAIT: Duration = Duration::from_secs(5);

/// One log entry: a group's writes, or part of one (`more`: the group goes on in the next
/// entry; a new owner drops a group whose last part never came).
#[derive(serde::Serialize, serde::Deserialize)]
struct Entry {
    more: bool,
    ops: Vec<Op>,
}

/// Whether this node may still write a tenant: cleared by a fence or a lost lease, never
/// set again (a node that takes the tenant later makes a new one).
#[derive(Debug)]
pub struct Fence {
    fenced: AtomicBool,
    why: std::sync::Mutex<String>,
    /// This owner's lease is valid until this instant (set by the lease keeper).
    valid_until: std::sync::Mutex<Instant>,
    /// Woken once, when the store is fenced.
    notify: tokio::sync::Notify,
}

impl Fence {
    /// A fence for an owner whose lease is valid until `valid_until`.
    pub fn new(valid_until: Instant) -> Arc<Fence> {
        Arc::new(Fence {
            fenced: AtomicBool::new(false),
            why: std::sync::Mutex::new(String::new()),
            valid_until: std::sync::Mutex::new(valid_until),
            notify: tokio::sync::Notify::new(),
        })
    }

    /// Fences: every later commit fails with `why`.
    pub fn fence(&self, why: &str) {
        if !self.fenced.swap(true, Ordering::SeqCst) {
            if let Ok(mut w) = self.why.lock() {
                *w = why.to_string();
            }
            self.notify.notify_waiters();
            self.notify.notify_one();
        }
    }

    pub fn is_fenced(&self) -> bool {
        self.fenced.load(Ordering::SeqCst)
    }

    /// Why it was fenced (empty while not).
    pub fn why(&self) -> String {
        self.why.lock().map(|w| w.clone()).unwrap_or_default()
    }

    /// The lease was renewed: valid until `until`.
    pub fn extend(&self, until: Instant) {
        if let Ok(mut v) = self.valid_until.lock() {
            *v = until;
        }
    }

    /// True while the lease is valid by this node's clock.
    pub fn lease_valid(&self) -> bool {
        self.valid_until.lock().map(|v| Instant::now() < *v).unwrap_or(false)
    }

    /// Resolves once fenced.
    pub async fn fenced(&self) {
        loop {
            let notified = self.notify.notified();
            if self.is_fenced() {
                return;
            }
            notified.await;
        }
    }

    fn error(&self) -> StoreError {
        StoreError::Write(format!(
            "this node no longer owns the tenant (fenced: {}); nothing more is written here",
            self.why()
        ))
    }
}

/// Where a tenant's log and snapshots are.
#[derive(Clone)]
pub struct LogPlace {
    pub js: jetstream::Context,
    /// The stream holding every tenant's log.
    pub stream: String,
    /// This tenant's subject in it.
    pub subject: String,
    pub snapshots: jetstream::object_store::ObjectStore,
    /// The snapshot's object name (the tenant's id).
    pub snapshot_name: String,
    /// The object store's bucket.
    pub snapshot_bucket: String,
    pub node: String,
    pub tenant: String,
}

/// Where a new owner's copy of the tenant stands after its rebuild.
#[derive(Debug, Clone, Copy, Default)]
pub struct Rebuilt {
    /// The sequence of the tenant's last entry (its takeover mark).
    pub last: u64,
    /// The sequence the snapshot it started from covers (0: none).
    pub covered: u64,
    /// That snapshot's size in bytes.
    pub snapshot_bytes: u64,
}

/// The log bytes after which a snapshot is written whatever `snapshot_every` says, at the
/// least: a tenant's first snapshot comes after this much log.
const SNAPSHOT_MIN_BYTES: u64 = 64 << 20;

/// How long a snapshot's upload may take before it is given up (the next one is tried
/// after the next `snapshot_every` entries or log bytes).
const SNAPSHOT_WAIT: Duration = Duration::from_secs(120);

/// A commit waiting for the appender.
struct Job {
    changes: Vec<Change>,
    done: oneshot::Sender<Result<(), StoreError>>,
}

/// A tenant's store on its owner: see the module docs.
pub struct LogStore {
    local: Arc<SledStore>,
    jobs: mpsc::UnboundedSender<Job>,
    fence: Arc<Fence>,
    /// The sequence of the last entry appended (the log position), for `GET /api/v1/cluster`.
    position: Arc<AtomicU64>,
    connection: async_nats::Client,
}

impl LogStore {
    /// The store over the local copy `local`, which holds the log up to `at.last` (the
    /// sequence of the tenant's last entry, 0 for none), rebuilt from a snapshot covering
    /// the log up to `at.covered` (0: none). Starts the appender on the cluster's threads.
    pub fn start(
        place: LogPlace,
        client: async_nats::Client,
        local: Arc<SledStore>,
        at: Rebuilt,
        fence: Arc<Fence>,
        snapshot_every: u64,
    ) -> LogStore {
        let last = at.last;
        let (tx, rx) = mpsc::unbounded_channel();
        let position = Arc::new(AtomicU64::new(last));
        let appender = Appender {
            place,
            local: local.clone(),
            fence: fence.clone(),
            last,
            position: position.clone(),
            since_snapshot: 0,
            bytes_since_snapshot: 0,
            snapshot_every,
            snapshotting: Arc::new(AtomicBool::new(false)),
            covered: Arc::new(AtomicU64::new(at.covered)),
            snapshot_bytes: Arc::new(AtomicU64::new(at.snapshot_bytes)),
        };
        super::runtime().spawn(appender.run(rx));
        LogStore {
            local,
            jobs: tx,
            fence,
            position,
            connection: client,
        }
    }

    /// The sequence of the last entry this owner appended or replayed.
    pub fn position(&self) -> Arc<AtomicU64> {
        self.position.clone()
    }
}

impl Store for LogStore {
    fn commit(&self, changes: Vec<Change>) -> CommitFuture {
        if self.fence.is_fenced() {
            return Box::pin(std::future::ready(Err(self.fence.error())));
        }
        let (done, rx) = oneshot::channel();
        if self.jobs.send(Job { changes, done }).is_err() {
            return Box::pin(std::future::ready(Err(StoreError::Write(
                "the tenant's log appender has stopped".into(),
            ))));
        }
        Box::pin(async move {
            rx.await
                .unwrap_or_else(|_| Err(StoreError::Write("the tenant's log appender has stopped".into())))
        })
    }

    fn load(&self) -> Result<Snapshot, StoreError> {
        self.local.load()
    }

    fn conversation(&self, id: &str) -> Result<Option<Conversation>, StoreError> {
        self.local.conversation(id)
    }

    fn records(&self, query: &RecordQuery) -> Result<RecordPage, StoreError> {
        self.local.records(query)
    }

    fn records_bulk(&self, query: &RecordQuery) -> Result<RecordPage, StoreError> {
        self.local.records_bulk(query)
    }

    fn figures(
        &self,
        subject: &crate::core::figures::Subject,
        from: crate::core::Millis,
        to: crate::core::Millis,
    ) -> Result<Vec<(crate::core::Millis, crate::core::figures::Figures)>, StoreError> {
        self.local.figures(subject, from, to)
    }

    fn mid_seen(&self, mid: &str) -> Result<bool, StoreError> {
        self.local.mid_seen(mid)
    }

    fn customer_name(&self, page_id: &str, customer: &str) -> Result<Option<String>, StoreError> {
        self.local.customer_name(page_id, customer)
    }

    fn last_owner(&self, entry_point: &str, customer: &str) -> Result<Option<LastOwner>, StoreError> {
        self.local.last_owner(entry_point, customer)
    }

    /// Ready while this node owns the tenant, reaches NATS, and the local copy takes writes.
    fn probe(&self) -> CommitFuture {
        if self.fence.is_fenced() {
            return Box::pin(std::future::ready(Err(self.fence.error())));
        }
        if self.connection.connection_state() != async_nats::connection::State::Connected {
            return Box::pin(std::future::ready(Err(StoreError::Write(
                "this node does not reach NATS".into(),
            ))));
        }
        self.local.probe()
    }

    fn reopen(&self) -> Result<(), StoreError> {
        if self.fence.is_fenced() {
            return Err(self.fence.error());
        }
        Store::reopen(&*self.local)
    }

    fn backup(&self) -> BackupFuture {
        Store::backup(&*self.local)
    }

    fn tenant(&self, id: &str) -> Result<Arc<dyn Store>, StoreError> {
        Err(StoreError::Write(format!(
            "tenant {id}: a cluster routes tenant `default` only so far (docs/CLUSTER.md)"
        )))
    }

    fn registry(&self) -> Result<Vec<crate::store::RegistryRecord>, StoreError> {
        // No tenant but `default` in a cluster yet: an empty registry.
        Ok(Vec::new())
    }

    fn close(&self) {
        self.local.close();
    }
}

/// The one task that appends a tenant's entries, in order.
struct Appender {
    place: LogPlace,
    local: Arc<SledStore>,
    fence: Arc<Fence>,
    /// The sequence of the tenant's last entry: the expected last subject sequence of the
    /// next append.
    last: u64,
    position: Arc<AtomicU64>,
    since_snapshot: u64,
    /// The bytes appended since the last snapshot.
    bytes_since_snapshot: u64,
    snapshot_every: u64,
    /// One snapshot upload at a time.
    snapshotting: Arc<AtomicBool>,
    /// What the latest snapshot (written or restored by this owner) covers.
    covered: Arc<AtomicU64>,
    /// Its size in bytes.
    snapshot_bytes: Arc<AtomicU64>,
}

impl Appender {
    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Job>) {
        while let Some(first) = rx.recv().await {
            // Everything that arrived during the last append forms the next group.
            let mut jobs = vec![first];
            while jobs.len() < 1024 {
                match rx.try_recv() {
                    Ok(j) => jobs.push(j),
                    Err(_) => break,
                }
            }
            let result = self.group(&mut jobs).await;
            for job in jobs {
                let _ = job.done.send(result.clone());
            }
        }
    }

    async fn group(&mut self, jobs: &mut [Job]) -> Result<(), StoreError> {
        if self.fence.is_fenced() {
            return Err(self.fence.error());
        }
        let mut changes = Vec::new();
        for job in jobs.iter_mut() {
            changes.append(&mut job.changes);
        }
        let ops = encode_ops(changes.clone(), &self.local)?;
        let entries = split(ops)?;
        for payload in entries {
            self.bytes_since_snapshot += payload.len() as u64;
            self.append(payload, None).await?;
        }
        self.local.commit(changes).await?;
        self.position.store(self.last, Ordering::SeqCst);
        self.since_snapshot += 1;
        if self.snapshot_due() && !self.snapshotting.load(Ordering::SeqCst) {
            self.since_snapshot = 0;
            self.bytes_since_snapshot = 0;
            self.snapshot().await;
        }
        Ok(())
    }

    /// Appends one entry after `self.last`; any failure fences.
    async fn append(&mut self, payload: Vec<u8>, takeover: Option<&str>) -> Result<(), StoreError> {
        if !self.fence.lease_valid() {
            self.fence.fence("the lease may have lapsed before this append");
            tracing::warn!(tenant = %self.place.tenant, node = %self.place.node, "lease lapsed: fenced, not appending");
            return Err(self.fence.error());
        }
        let fence = self.fence.clone();
        match append(&self.place, self.last, payload, takeover, move || {
            fence.lease_valid() && !fence.is_fenced()
        })
        .await
        {
            Ok(seq) => {
                self.last = seq;
                Ok(())
            }
            Err(e) => {
                tracing::error!(tenant = %self.place.tenant, node = %self.place.node, error = %e,
                    "append to the tenant's log failed: fenced, this node stops routing the tenant");
                self.fence.fence(&e);
                Err(self.fence.error())
            }
        }
    }

    /// Whether the tail since the last snapshot asks for a new one: `snapshot_every`
    /// entries, or as many bytes as the last snapshot (at least [`SNAPSHOT_MIN_BYTES`]).
    /// A new owner's rebuild reads the snapshot and replays the tail; the byte bound keeps
    /// the tail no larger than the snapshot however large the groups (100,000 conversations
    /// opened at once made 4,000 entries of several hundred MB: no snapshot at 10,000
    /// entries, and a replay of seconds). Writing a snapshot when the log has grown by its
    /// size costs no more bytes than the log itself. A bound of half a snapshot with an
    /// 8 MiB floor wrote one every 1.4 s at saturation and cost a quarter of a clustered
    /// owner's throughput (BENCHMARKS.md "Cluster").
    fn snapshot_due(&self) -> bool {
        let bytes_bound = self.snapshot_bytes.load(Ordering::SeqCst).max(SNAPSHOT_MIN_BYTES);
        self.since_snapshot >= self.snapshot_every || self.bytes_since_snapshot >= bytes_bound
    }

    /// Fixes a backup of the local copy now (between two groups), then writes it as the
    /// tenant's snapshot on a task of its own.
    async fn snapshot(&mut self) {
        let covered = self.last;
        let backup = match Store::backup(&*self.local).await {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(tenant = %self.place.tenant, node = %self.place.node, error = %e, "snapshot not taken");
                return;
            }
        };
        let place = self.place.clone();
        let busy = self.snapshotting.clone();
        let previous = self.covered.clone();
        let size = self.snapshot_bytes.clone();
        busy.store(true, Ordering::SeqCst);
        tokio::spawn(async move {
            // A stalled upload must not stop every later snapshot (the flag below).
            let result = tokio::time::timeout(SNAPSHOT_WAIT, write_snapshot(&place, backup, covered))
                .await
                .unwrap_or_else(|_| Err(format!("not written within {SNAPSHOT_WAIT:?}")));
            busy.store(false, Ordering::SeqCst);
            match result {
                Ok(bytes) => {
                    tracing::info!(tenant = %place.tenant, node = %place.node, covered, bytes, "snapshot written");
                    size.store(bytes as u64, Ordering::SeqCst);
                    let before = previous.swap(covered, Ordering::SeqCst);
                    truncate(&place, before).await;
                }
                Err(e) => {
                    tracing::warn!(tenant = %place.tenant, node = %place.node, error = %e, "snapshot not written")
                }
            }
        });
    }
}

/// Removes the tenant's entries before sequence `before`: those the snapshot *before* the
/// one just written covers. Not the new snapshot's: a node that read the previous snapshot
/// just before the new one was written may be replaying the entries after it (a new owner
/// taking the tenant while this owner, past its lease, finishes its last upload). Every
/// reader starts from one of the last two snapshots, so nothing it needs is removed. The
/// entry at `before` itself stays, so the subject's last sequence never goes back.
async fn truncate(place: &LogPlace, before: u64) {
    if before <= 1 {
        return;
    }
    match purge(place, Some(before)).await {
        Ok(purged) => tracing::info!(tenant = %place.tenant, node = %place.node, before, purged, "log truncated"),
        Err(e) => tracing::warn!(tenant = %place.tenant, node = %place.node, error = %e, "log not truncated"),
    }
}

/// Removes the tenant's entries before sequence `before` (`None`: all of them); the count
/// removed.
pub async fn purge(place: &LogPlace, before: Option<u64>) -> Result<u64, String> {
    let stream = place
        .js
        .get_stream_no_info(&place.stream)
        .await
        .map_err(|e| e.to_string())?;
    let purge = stream.purge().filter(place.subject.clone());
    let purged = match before {
        Some(before) => purge.sequence(before).await,
        None => purge.await,
    };
    purged.map(|p| p.purged).map_err(|e| e.to_string())
}

/// Collects a backup and puts it as the tenant's snapshot covering the log up to `covered`.
async fn write_snapshot(
    place: &LogPlace,
    mut backup: crate::store::BackupStream,
    covered: u64,
) -> Result<usize, String> {
    let mut bytes = Vec::new();
    while let Some(chunk) = backup.next_chunk().await {
        bytes.extend_from_slice(&chunk.map_err(|e| e.to_string())?);
    }
    let meta = jetstream::object_store::ObjectMetadata {
        name: place.snapshot_name.clone(),
        description: Some(covered.to_string()),
        ..Default::default()
    };
    let n = bytes.len();
    // An upload stalled now and then in the tests (three NATS servers on two busy cores),
    // holding every later snapshot back until SNAPSHOT_WAIT: each attempt is bounded by
    // what its size could take at 4 MiB/s, plus 15 s, and tried again within SNAPSHOT_WAIT.
    let attempt_wait = Duration::from_secs(15 + (n as u64 >> 22));
    let mut last = String::new();
    for attempt in 1..=UPLOAD_ATTEMPTS {
        let mut reader = bytes.as_slice();
        match tokio::time::timeout(attempt_wait, place.snapshots.put(meta.clone(), &mut reader)).await {
            Ok(Ok(_)) => return Ok(n),
            Ok(Err(e)) => last = e.to_string(),
            Err(_) => last = format!("not uploaded within {attempt_wait:?}"),
        }
        tracing::warn!(tenant = %place.tenant, node = %place.node, attempt, error = %last, "snapshot upload failed; trying again");
    }
    Err(last)
}

/// How many times a snapshot's upload is tried.
const UPLOAD_ATTEMPTS: u32 = 3;

/// The entries of one group: its writes in parts of about [`ENTRY_BYTES`].
fn split(ops: Vec<Op>) -> Result<Vec<Vec<u8>>, StoreError> {
    let mut parts: Vec<Vec<Op>> = vec![Vec::new()];
    let mut size = 0;
    for op in ops {
        let n = op.0.len() + op.1.as_ref().map_or(0, Vec::len) + 16;
        if size + n > ENTRY_BYTES && parts.last().is_some_and(|p| !p.is_empty()) {
            parts.push(Vec::new());
            size = 0;
        }
        size += n;
        if let Some(p) = parts.last_mut() {
            p.push(op);
        }
    }
    let count = parts.len();
    parts
        .into_iter()
        .enumerate()
        .map(|(i, ops)| {
            encode_entry(&Entry {
                more: i + 1 < count,
                ops,
            })
        })
        .collect()
}

fn encode_entry(entry: &Entry) -> Result<Vec<u8>, StoreError> {
    let mut out = vec![ENTRY_VERSION];
    bincode::serialize_into(&mut out, entry)
        .map_err(|e| StoreError::Write(format!("cannot encode a log entry: {e}")))?;
    Ok(out)
}

fn decode_entry(seq: u64, bytes: &[u8]) -> Result<Entry, StoreError> {
    match bytes.split_first() {
        Some((&ENTRY_VERSION, rest)) => bincode::deserialize(rest).map_err(|e| StoreError::Corrupt {
            what: format!("log entry {seq} cannot be decoded: {e}"),
        }),
        Some((v, _)) => Err(StoreError::UnknownVersion {
            record: format!("log entry {seq}"),
            version: *v,
        }),
        None => Err(StoreError::Corrupt {
            what: format!("log entry {seq} is empty"),
        }),
    }
}

/// Appends `payload` to the tenant's log if its last entry is still `last`: the new
/// entry's sequence, or why not (a refusal by the expected-sequence check names it).
///
/// An append whose outcome is unknown (no acknowledgement: a NATS server lost, the
/// connection moving to another) is sent again, the same bytes with the same
/// `Nats-Msg-Id`, until `until` (the lease's end): JetStream stores a message id once
/// within its duplicate window and acknowledges the copy with the first one's sequence, so
/// an entry is never appended twice, and a copy arriving after another node's entry is
/// refused by the expected-sequence check.
async fn append(
    place: &LogPlace,
    last: u64,
    payload: Vec<u8>,
    takeover: Option<&str>,
    until: impl Fn() -> bool,
) -> Result<u64, String> {
    let mut headers = HeaderMap::new();
    headers.insert(
        async_nats::header::NATS_EXPECTED_LAST_SUBJECT_SEQUENCE,
        last.to_string().as_str(),
    );
    headers.insert(NODE_HEADER, place.node.as_str());
    let id = format!(
        "{}.{}.{}.{}",
        place.tenant,
        place.node,
        last,
        MSG_IDS.fetch_add(1, Ordering::Relaxed)
    );
    headers.insert(async_nats::header::NATS_MESSAGE_ID, id.as_str());
    if let Some(node) = takeover {
        headers.insert(TAKEOVER_HEADER, node);
    }
    let payload = bytes::Bytes::from(payload);
    let mut tries = 0u32;
    loop {
        tries += 1;
        let why = match place
            .js
            .publish_with_headers(place.subject.clone(), headers.clone(), payload.clone())
            .await
        {
            Ok(ack) => match tokio::time::timeout(APPEND_TIMEOUT, ack).await {
                Ok(Ok(ack)) => return Ok(ack.sequence),
                Ok(Err(e)) if e.kind() == jetstream::context::PublishErrorKind::WrongLastSequence => {
                    return Err(format!(
                        "the log moved past entry {last}: another node owns the tenant (append refused)"
                    ))
                }
                Ok(Err(e)) => format!("the append was not acknowledged: {e}"),
                Err(_) => format!("the append was not acknowledged within {APPEND_TIMEOUT:?}"),
            },
            Err(e) => format!("the append was not sent: {e}"),
        };
        if !until() {
            return Err(format!("{why}; {tries} tries before the lease's end"));
        }
        tracing::warn!(tenant = %place.tenant, node = %place.node, error = %why, tries, "append not acknowledged; sending it again");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Makes each append's message id unique within a process (with the tenant, node and
/// expected sequence in front, unique across nodes and terms too).
static MSG_IDS: AtomicU64 = AtomicU64::new(0);

/// The sequence of the tenant's last log entry (0: none yet).
pub async fn last_sequence(place: &LogPlace) -> Result<u64, String> {
    let stream = place
        .js
        .get_stream_no_info(&place.stream)
        .await
        .map_err(|e| format!("the log stream: {e}"))?;
    match stream.get_last_raw_message_by_subject(&place.subject).await {
        Ok(m) => Ok(m.sequence),
        Err(e) if e.kind() == jetstream::stream::LastRawMessageErrorKind::NoMessageFound => Ok(0),
        Err(e) => Err(format!("the log's last entry: {e}")),
    }
}

/// Rebuilds this node's copy of the tenant at `dir` from the latest snapshot and the log
/// after it, then appends the takeover mark (which fences any earlier owner that has not
/// stepped down yet). Returns the store, with the log position it is at.
pub async fn rebuild(
    place: &LogPlace,
    client: async_nats::Client,
    dir: &Path,
    options: crate::store::SledOptions,
    fence: Arc<Fence>,
    snapshot_every: u64,
) -> Result<(LogStore, u64), String> {
    let started = Instant::now();
    if dir.exists() {
        // The local copy is a cache of the log: it is rebuilt whole by whoever takes the tenant.
        std::fs::remove_dir_all(dir).map_err(|e| format!("cannot clear the local copy {}: {e}", dir.display()))?;
    }
    let (covered, snapshot_bytes) = restore_snapshot(place, dir).await?;
    let snapshot_ms = started.elapsed().as_millis() as u64;
    let last = last_sequence(place).await?;
    let replayed = if last > covered {
        replay(place, dir, covered, last).await?
    } else {
        0
    };
    // The takeover mark: appended only if nobody appended since what was replayed.
    let mark = encode_entry(&Entry {
        more: false,
        ops: Vec::new(),
    })
    .map_err(|e| e.to_string())?;
    let held = fence.clone();
    let marked = append(place, last, mark, Some(&place.node), move || {
        held.lease_valid() && !held.is_fenced()
    })
    .await?;
    let local = Arc::new(SledStore::open(dir, options).map_err(|e| e.to_string())?);
    tracing::info!(tenant = %place.tenant, node = %place.node, snapshot = covered, replayed, position = marked,
        snapshot_ms, took_ms = started.elapsed().as_millis() as u64, "tenant rebuilt from its snapshot and log");
    let at = Rebuilt {
        last: marked,
        covered,
        snapshot_bytes,
    };
    let store = LogStore::start(place.clone(), client, local, at, fence, snapshot_every);
    Ok((store, marked))
}

/// Restores the tenant's latest snapshot into `dir` (absent): the log sequence it covers
/// and its size, `(0, 0)` when there is none.
async fn restore_snapshot(place: &LogPlace, dir: &Path) -> Result<(u64, u64), String> {
    let info = match place.snapshots.info(&place.snapshot_name).await {
        Ok(i) => i,
        Err(e) if e.kind() == jetstream::object_store::InfoErrorKind::NotFound => return Ok((0, 0)),
        Err(e) => return Err(format!("the tenant's snapshot: {e}")),
    };
    let covered: u64 = info
        .description
        .as_deref()
        .and_then(|d| d.parse().ok())
        .ok_or_else(|| "the tenant's snapshot does not say which log entry it covers".to_string())?;
    // The object's chunks, read one by one from its stream's leader: the client library's
    // object reader goes through a consumer, which NATS 2.9 may not place while one server
    // of the cluster is down (and the reader panics on the timeout).
    // The first chunk by subject; the rest by sequence after it, REPLAY_WINDOW requests in
    // flight (one at a time, a 50 MB snapshot took 1.5 s), passing over other objects'.
    use futures_util::StreamExt;
    // `get_stream` reads the stream's info: its last sequence bounds the chunks' search.
    let stream = place
        .js
        .get_stream(format!("OBJ_{}", place.snapshot_bucket))
        .await
        .map_err(|e| format!("the snapshot stream: {e}"))?;
    let end = stream.cached_info().state.last_sequence;
    let subject = format!("$O.{}.C.{}", place.snapshot_bucket, info.nuid);
    let mut bytes = Vec::with_capacity(info.size);
    let mut chunks = 0;
    if info.chunks > 0 {
        let first = next_on(&stream, &subject, 0).await?;
        bytes.extend_from_slice(&first.payload);
        chunks += 1;
        let stream = &stream;
        let mut gets = futures_util::stream::iter(first.sequence + 1..=end.max(first.sequence))
            .map(|seq| entry_at(stream, seq))
            .buffered(REPLAY_WINDOW);
        while chunks < info.chunks {
            match gets.next().await {
                Some(Ok(Some(m))) if m.subject.as_str() == subject => {
                    bytes.extend_from_slice(&m.payload);
                    chunks += 1;
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e),
                None => break,
            }
        }
    }
    if chunks != info.chunks {
        return Err(format!(
            "the tenant's snapshot has {chunks} of its {} chunks",
            info.chunks
        ));
    }
    if bytes.len() != info.size {
        return Err(format!(
            "the tenant's snapshot holds {} bytes where its description says {}",
            bytes.len(),
            info.size
        ));
    }
    let parent = dir
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
    let file = tempfile::NamedTempFile::new_in(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
    std::fs::write(file.path(), &bytes).map_err(|e| format!("{}: {e}", file.path().display()))?;
    let (from, to) = (file.path().to_path_buf(), dir.to_path_buf());
    tokio::task::spawn_blocking(move || crate::store::sled::restore(&from, &to))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("the tenant's snapshot cannot be restored: {e}"))?;
    Ok((covered, info.size as u64))
}

/// The first message on `subject` at or after sequence `from`, from the stream's leader.
async fn next_on<I>(
    stream: &jetstream::stream::Stream<I>,
    subject: &str,
    from: u64,
) -> Result<async_nats::jetstream::message::StreamMessage, String> {
    let get = stream
        .raw_message_builder()
        .sequence(from.max(1))
        .next_by_subject(subject.to_string())
        .send();
    match tokio::time::timeout(REPLAY_WAIT, get).await {
        Ok(Ok(m)) => Ok(m),
        Ok(Err(e)) => Err(format!("cannot read {subject} at {from}: {e}")),
        Err(_) => Err(format!("{subject} at {from} was not read within {REPLAY_WAIT:?}")),
    }
}

/// How many log entries a new owner asks for at once while it replays: one request per
/// entry, one after the other, made a tail of 4,000 entries take 7 s on the 2-core machine
/// (BENCHMARKS.md "Cluster").
const REPLAY_WINDOW: usize = 64;

/// Applies the tenant's entries after `after` up to `last` to the store at `dir`. Returns
/// how many entries.
///
/// Entries are read by sequence from the stream's leader (see `restore_snapshot` on
/// consumers), [`REPLAY_WINDOW`] requests in flight and taken in order. The stream holds
/// every tenant's log, so a message on another subject is passed over, and so is a
/// sequence with no message (removed by a truncation).
async fn replay(place: &LogPlace, dir: &Path, after: u64, last: u64) -> Result<u64, String> {
    use futures_util::StreamExt;
    let stream = place
        .js
        .get_stream_no_info(&place.stream)
        .await
        .map_err(|e| format!("the log stream: {e}"))?;
    let mut batches: Vec<Vec<Op>> = Vec::new();
    let mut pending: Vec<Op> = Vec::new();
    let mut entries = 0u64;
    let mut queued = 0usize;
    let stream = &stream;
    let mut gets = futures_util::stream::iter(after + 1..=last)
        .map(|seq| async move { (seq, entry_at(stream, seq).await) })
        .buffered(REPLAY_WINDOW);
    // One batch written while the next is read (in order: a batch waits for the one before).
    let mut writing: Option<tokio::task::JoinHandle<Result<(), String>>> = None;
    while let Some((seq, got)) = gets.next().await {
        let Some(message) = got? else { continue };
        if message.subject.as_str() != place.subject {
            continue;
        }
        if message.headers.get(TAKEOVER_HEADER).is_some() {
            // A group an earlier owner never finished is dropped: it was never acknowledged.
            pending.clear();
        }
        let entry = decode_entry(seq, &message.payload).map_err(|e| e.to_string())?;
        entries += 1;
        pending.extend(entry.ops);
        if !entry.more {
            queued += pending.len();
            batches.push(std::mem::take(&mut pending));
        }
        if queued > 100_000 {
            finish(writing.take()).await?;
            writing = Some(apply(dir, std::mem::take(&mut batches)));
            queued = 0;
        }
    }
    finish(writing.take()).await?;
    if !batches.is_empty() {
        finish(Some(apply(dir, batches))).await?;
    }
    Ok(entries)
}

/// Starts writing `batches` of replayed writes to the store at `dir` (off the async threads).
fn apply(dir: &Path, batches: Vec<Vec<Op>>) -> tokio::task::JoinHandle<Result<(), String>> {
    let to = dir.to_path_buf();
    tokio::task::spawn_blocking(move || {
        crate::store::sled::apply_ops(&to, batches)
            .map(|_| ())
            .map_err(|e| format!("cannot apply the log: {e}"))
    })
}

/// Waits for a write [`apply`] started, if one was.
async fn finish(writing: Option<tokio::task::JoinHandle<Result<(), String>>>) -> Result<(), String> {
    match writing {
        Some(w) => w.await.map_err(|e| e.to_string())?,
        None => Ok(()),
    }
}

/// The log's message at sequence `seq`, if there is one.
async fn entry_at<I>(
    stream: &jetstream::stream::Stream<I>,
    seq: u64,
) -> Result<Option<async_nats::jetstream::message::StreamMessage>, String> {
    match tokio::time::timeout(REPLAY_WAIT, stream.get_raw_message(seq)).await {
        Ok(Ok(m)) => Ok(Some(m)),
        Ok(Err(e)) if e.kind() == jetstream::stream::RawMessageErrorKind::NoMessageFound => Ok(None),
        Ok(Err(e)) => Err(format!("cannot read the log at {seq}: {e}")),
        Err(_) => Err(format!("the log at {seq} was not read within {REPLAY_WAIT:?}")),
    }
}
