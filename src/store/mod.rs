//! The durability seam: every change the core makes passes through a [`Store`] before the
//! operation that caused it is acknowledged.
//!
//! - [`Store`]: the narrow interface (`commit` a batch of [`Change`]s, `load` a
//!   [`Snapshot`], read one `conversation` back), so that another embedded store could be
//!   measured beside sled.
//! - [`sled::SledStore`]: the engine's store: one sled tree with a key prefix per kind of
//!   record (store format 2), versioned records, group commit as one atomic batch per
//!   group on one writer thread, retention of ended conversations. [`open`] opens it.
//! - [`record`]: the on-disk encoding (a version byte, then bincode of `*V1` types).
//! - [`MemoryStore`]: durable for the life of the process, for tests and benches.
//!
//! docs/STORE.md ("Persistence") describes the layout, group commit and recovery.
//!
//! # Architecture invariant
//! The store knows records, not rules: it never decides anything about routing. It keeps
//! what [`Change`]s say and gives it back as a [`Snapshot`] on start.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use crate::core::figures::{Figures, Subject};
use crate::core::{
    Agent, AuditEntry, Change, Conversation, ConversationRecord, ConversationState, EntryPoint, FastMap, LastOwner,
    Millis, Outbound, Queue, RecordPage, RecordQuery, Supervisor,
};

pub mod backup;
pub mod record;
pub mod sled;

pub use self::sled::{SledOptions, SledStore, StoreStats};

/// Why the store failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// A write or flush failed at run time (e.g. a full disk); nothing later is written.
    #[error("the store cannot be written: {0}")]
    Write(String),
    #[error("the store cannot be read: {0}")]
    Read(String),
    /// The store is doing what was asked already (one backup at a time).
    #[error("{0}")]
    Busy(String),
    /// Another running engine holds the directory.
    #[error("the store directory {path} is held by another running engine; refusing to start")]
    Locked { path: String },
    /// The engine's user may not read or write the store directory (its owner or mode).
    #[error(
        "permission denied on the store directory {path} ({detail}); the user running Switchboard \
         must be able to read and write it (check its owner and mode, store.path)"
    )]
    Permission { path: String, detail: String },
    /// The store is unreadable, corrupt, or not a Switchboard store; it is left as it is.
    #[error("the store is unreadable or corrupt, and was left untouched: {what}")]
    Corrupt { what: String },
    /// A store laid out in a format that development builds wrote before the first
    /// release and this build no longer reads (docs/STORE.md, "Format 1").
    #[error(
        "the store directory {path} holds store format {format}, which this build no longer reads \
         (it reads format {expected}); no release wrote format {format}: move the directory away \
         and start on an empty one; refusing to start"
    )]
    OldFormat { path: String, format: u8, expected: u8 },
    /// A record written by a format this build does not know (a newer Switchboard?).
    #[error("record {record} has format version {version}, which this build cannot read; refusing to start")]
    UnknownVersion { record: String, version: u8 },
}

/// One record of the tenant registry ([`Store::registry`]): its key and value.
pub type RegistryRecord = (Vec<u8>, Vec<u8>);

/// Resolves when a batch of changes is durable.
pub type CommitFuture = Pin<Box<dyn Future<Output = Result<(), StoreError>> + Send>>;

/// Resolves, once the backup's point in time is fixed, to its file as a stream.
pub type BackupFuture = Pin<Box<dyn Future<Output = Result<BackupStream, StoreError>> + Send>>;

/// A backup file ([`backup`]) in the order it is read from the store, a chunk at a time
/// (a few hundred KB each; a few chunks are read ahead, no more). An `Err` ends it: the
/// file is then incomplete and must be thrown away. Dropping the stream stops the reading
/// and releases everything the backup held.
pub struct BackupStream {
    chunks: tokio::sync::mpsc::Receiver<Result<Vec<u8>, StoreError>>,
}

impl BackupStream {
    /// The stream of the chunks a reader sends into `chunks`.
    pub fn new(chunks: tokio::sync::mpsc::Receiver<Result<Vec<u8>, StoreError>>) -> Self {
        BackupStream { chunks }
    }

    /// The next chunk; `None` after the last one (or after an error).
    pub async fn next_chunk(&mut self) -> Option<Result<Vec<u8>, StoreError>> {
        self.chunks.recv().await
    }
}

impl futures_util::Stream for BackupStream {
    type Item = Result<Vec<u8>, StoreError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<Option<Self::Item>> {
        self.chunks.poll_recv(cx)
    }
}

/// Everything needed to rebuild the engine.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub queues: Vec<Queue>,
    pub entry_points: Vec<EntryPoint>,
    pub agents: Vec<Agent>,
    /// With their transcripts.
    pub conversations: Vec<Conversation>,
    /// (next conversation, next offer, next arrival).
    pub counters: (u64, u64, u64),
    /// The Messenger outbox, by conversation then seq: what is still to be sent.
    pub outbox: Vec<Outbound>,
    /// Supervisor accounts.
    pub supervisors: Vec<Supervisor>,
    /// The audit trail's retained entries, oldest first.
    pub audit: Vec<AuditEntry>,
    /// The canned responses (issue 26 item 4), by id.
    pub canned: Vec<crate::core::canned::CannedResponse>,
    /// The webhook subscriptions, by id.
    pub webhooks: Vec<crate::core::webhooks::Webhook>,
    /// The events still waiting for some subscription, in `seq` order.
    pub webhook_events: Vec<crate::core::webhooks::WebhookEvent>,
    /// Every event up to this one has left the store.
    pub webhooks_trimmed: u64,
    /// The satisfaction surveys asked and not yet answered.
    pub surveys: Vec<crate::core::survey::PendingSurvey>,
}

/// Where the engine makes its changes durable.
pub trait Store: Send + Sync + 'static {
    /// Makes `changes` durable, in order after every earlier call; the future resolves
    /// once they are.
    fn commit(&self, changes: Vec<Change>) -> CommitFuture;
    /// Reads back everything the engine needs to start: every record, and every
    /// conversation except the finished ones (ended, and no agent record lists it as
    /// owing a wrap-up, offered or active), which the engine does not hold in memory.
    fn load(&self) -> Result<Snapshot, StoreError>;
    /// One conversation with its transcript, or `None` if the store has none by that id.
    /// The engine reads finished conversations this way (the floor no longer holds them);
    /// it is a synchronous read, called on the engine's thread.
    fn conversation(&self, id: &str) -> Result<Option<Conversation>, StoreError>;
    /// A page of report records of complete conversations (`core/report.rs`), in arrival
    /// order: a synchronous read, meant for a thread that may block (not the engine's).
    fn records(&self, query: &RecordQuery) -> Result<RecordPage, StoreError>;
    /// [`Store::records`] for a read of many pages in a row (an export): the same page,
    /// read so as to leave the store's cache as it was (the sled store's reads of a year
    /// of records would otherwise fill its page cache, and the server's memory with it).
    fn records_bulk(&self, query: &RecordQuery) -> Result<RecordPage, StoreError> {
        self.records(query)
    }
    /// `subject`'s report rows of figures (`core/figures.rs`) for the intervals starting
    /// in `[from, to)`, in time order: a synchronous read, like [`Store::records`].
    fn figures(&self, subject: &Subject, from: Millis, to: Millis) -> Result<Vec<(Millis, Figures)>, StoreError>;
    /// Whether Messenger message id `mid` was taken in (within its retention); a
    /// synchronous read on the engine's thread, like [`Store::conversation`].
    fn mid_seen(&self, mid: &str) -> Result<bool, StoreError>;
    /// The cached User Profile API name of `customer` on page `page_id`.
    fn customer_name(&self, page_id: &str, customer: &str) -> Result<Option<String>, StoreError>;
    /// The last owner of `customer`'s conversation on `entry_point` (preferred agents); a
    /// synchronous read on the engine's thread, like [`Store::conversation`].
    fn last_owner(&self, entry_point: &str, customer: &str) -> Result<Option<LastOwner>, StoreError>;
    /// Writes and flushes a small probe record, in order after every earlier commit:
    /// resolves `Ok` once the store has shown it accepts writes (readiness).
    fn probe(&self) -> CommitFuture {
        Box::pin(std::future::ready(Ok(())))
    }
    /// After a failed write: closes the store and opens it again from what is durable, so
    /// that it can accept writes once the disk does. Does nothing while it has not failed.
    fn reopen(&self) -> Result<(), StoreError> {
        Ok(())
    }
    /// A consistent copy of everything durable at one point in time, as one file
    /// ([`backup`]) streamed as it is read. The point is fixed before the future resolves;
    /// commits go on meanwhile.
    fn backup(&self) -> BackupFuture {
        Box::pin(std::future::ready(Err(StoreError::Read(
            "this store cannot make backups".into(),
        ))))
    }
    /// The store of tenant `id` (not `default`, which is this one) within this store: the
    /// same disk and the same group commit, its records apart from every other tenant's.
    /// Opened, or created empty, the first time.
    fn tenant(&self, id: &str) -> Result<Arc<dyn Store>, StoreError> {
        Err(StoreError::Write(format!("this store cannot hold tenant {id}")))
    }
    /// Removes tenant `id`'s store with everything it holds, durably. Its handle
    /// ([`Store::tenant`]) must be closed first.
    fn drop_tenant(&self, id: &str) -> CommitFuture {
        Box::pin(std::future::ready(Err(StoreError::Write(format!(
            "this store holds no tenant {id}"
        )))))
    }
    /// Every record of the store, every tenant's and the registry, as one backup file
    /// (the deployment's backup); a store without tenants makes [`Store::backup`]'s.
    fn backup_all(&self) -> BackupFuture {
        self.backup()
    }
    /// The deployment's tenant registry, kept in this store: (key, value) in key order.
    fn registry(&self) -> Result<Vec<RegistryRecord>, StoreError> {
        Ok(Vec::new())
    }
    /// Writes (`Some`) or removes (`None`) a record of the tenant registry, durably.
    fn put_registry(&self, _key: &[u8], _value: Option<Vec<u8>>) -> CommitFuture {
        Box::pin(std::future::ready(Err(StoreError::Write(
            "this store cannot hold a tenant registry".into(),
        ))))
    }
    /// Stops taking commits: those handed over already are finished first. Tenant
    /// `default`'s store closes the whole store (every tenant's), another tenant's only
    /// itself. Does nothing for a store that needs no closing.
    fn close(&self) {}
}

/// Where a page of `query` starts reading, by arrival: the later of its `from` and its
/// cursor's (both stores key records by arrival, then id).
pub(crate) fn records_start(query: &RecordQuery) -> Millis {
    query
        .filter
        .from
        .unwrap_or(0)
        .max(query.after.as_ref().map_or(0, |a| a.arrived_at))
}

/// The page of `query` ([`RecordPage::collect`]) from records read one at a time in key
/// order, `Ok(None)` being one to pass over (a search text without the words): the
/// reading stops at the page's end or at the first error, which is the answer then.
pub(crate) fn collect_page(
    query: &RecordQuery,
    read: impl Iterator<Item = Result<Option<ConversationRecord>, StoreError>>,
) -> Result<RecordPage, StoreError> {
    let mut failed = None;
    let records = read.map_while(|r| r.map_err(|e| failed = Some(e)).ok()).flatten();
    let page = RecordPage::collect(query, records);
    failed.map_or(Ok(page), Err)
}

/// Conversations that an agent record still refers to (owes a wrap-up for, is offered,
/// is in): the record-level reading of "not finished" that [`Store::load`] and the
/// retention sweep use for ended conversations.
pub(crate) fn held_by_agents<'a>(agents: impl Iterator<Item = &'a Agent>) -> std::collections::HashSet<&'a str> {
    let mut held = std::collections::HashSet::new();
    for a in agents {
        held.extend(a.wrapups.keys().map(String::as_str));
        held.extend(a.active.iter().map(String::as_str));
        held.extend(a.offers.iter().map(String::as_str));
    }
    held
}

/// An in-memory store: durable for the life of the process. Clones share their contents,
/// so a test can "restart" an engine on the same store.
#[derive(Debug, Clone, Default)]
pub struct MemoryStore {
    inner: Arc<Mutex<MemoryState>>,
    /// The tenants' stores ([`Store::tenant`]), shared by clones like the contents.
    tenants: Arc<Mutex<BTreeMap<String, MemoryStore>>>,
    /// The tenant registry ([`Store::registry`]).
    registry: Arc<Mutex<BTreeMap<Vec<u8>, Vec<u8>>>>,
}

#[derive(Debug, Default)]
struct MemoryState {
    queues: BTreeMap<String, Queue>,
    entry_points: BTreeMap<String, EntryPoint>,
    // Updated in place (no key clone per change). Ordered maps rather than hashed ones:
    // a hash map of 100,000s of records stalls the engine's thread for most of a second
    // each time it doubles (measured with the load harness).
    agents: BTreeMap<String, Box<Agent>>,
    // Boxed, as the changes carry them: an update swaps a pointer instead of copying a
    // record of several hundred bytes, and a node split moves pointers (memmove was the
    // top symbol of the engine's thread in the in-process harness with this store).
    conversations: BTreeMap<String, Box<Conversation>>,
    transcripts: FastMap<String, Vec<crate::core::Message>>,
    counters: (u64, u64, u64),
    outbox: BTreeMap<(String, u64), Outbound>,
    mids: std::collections::HashSet<String>,
    names: BTreeMap<(String, String), String>,
    supervisors: BTreeMap<String, Supervisor>,
    audit: BTreeMap<u64, AuditEntry>,
    last_owners: BTreeMap<(String, String), LastOwner>,
    /// Report records, keyed and encoded as the sled store keeps them: one allocation
    /// for the key and one for the value, where the record itself holds a dozen (the
    /// in-process harness keeps every one it makes).
    records: BTreeMap<Box<[u8]>, Box<[u8]>>,
    /// Report rows of figures, keyed as the sled store keys them.
    figures: BTreeMap<Vec<u8>, Figures>,
    /// Search texts of report records, keyed like the records.
    search: BTreeMap<Box<[u8]>, Box<str>>,
    canned: BTreeMap<String, crate::core::canned::CannedResponse>,
    webhooks: BTreeMap<String, crate::core::webhooks::Webhook>,
    webhook_events: BTreeMap<u64, crate::core::webhooks::WebhookEvent>,
    webhooks_trimmed: u64,
    surveys: BTreeMap<(String, String), crate::core::survey::PendingSurvey>,
    /// Ratings, keyed like the records.
    ratings: BTreeMap<Box<[u8]>, crate::core::survey::Satisfaction>,
}

impl MemoryState {
    /// Record `r` (under `key`) with its rating, if any (kept beside it, like the sled
    /// store keeps it).
    fn rated(&self, key: &[u8], mut r: ConversationRecord) -> ConversationRecord {
        r.satisfaction = self.ratings.get(key).copied();
        r
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

impl Store for MemoryStore {
    fn registry(&self) -> Result<Vec<RegistryRecord>, StoreError> {
        let r = self.registry.lock().map_err(|e| StoreError::Read(e.to_string()))?;
        Ok(r.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
    }

    fn put_registry(&self, key: &[u8], value: Option<Vec<u8>>) -> CommitFuture {
        let result = match self.registry.lock() {
            Ok(mut r) => {
                match value {
                    Some(v) => r.insert(key.to_vec(), v),
                    None => r.remove(key),
                };
                Ok(())
            }
            Err(e) => Err(StoreError::Write(e.to_string())),
        };
        Box::pin(std::future::ready(result))
    }

    fn tenant(&self, id: &str) -> Result<Arc<dyn Store>, StoreError> {
        let mut tenants = self.tenants.lock().map_err(|e| StoreError::Read(e.to_string()))?;
        Ok(Arc::new(tenants.entry(id.to_string()).or_default().clone()))
    }

    fn drop_tenant(&self, id: &str) -> CommitFuture {
        let result = match self.tenants.lock() {
            Ok(mut t) => {
                t.remove(id);
                Ok(())
            }
            Err(e) => Err(StoreError::Write(e.to_string())),
        };
        Box::pin(std::future::ready(result))
    }

    fn commit(&self, changes: Vec<Change>) -> CommitFuture {
        let mut s = match self.inner.lock() {
            Ok(s) => s,
            Err(e) => return Box::pin(std::future::ready(Err(StoreError::Write(e.to_string())))),
        };
        for change in changes {
            match change {
                Change::Agent(a) => match s.agents.get_mut(&a.id) {
                    Some(old) => *old = a,
                    None => {
                        s.agents.insert(a.id.clone(), a);
                    }
                },
                Change::Queue(q) => {
                    s.queues.insert(q.id.clone(), q);
                }
                Change::EntryPoint(e) => {
                    s.entry_points.insert(e.id.clone(), e);
                }
                Change::Conversation(c) => match s.conversations.get_mut(&c.id) {
                    Some(old) => *old = c,
                    None => {
                        s.conversations.insert(c.id.clone(), c);
                    }
                },
                Change::Message { conversation, message } => {
                    s.transcripts.entry(conversation).or_default().push(message);
                }
                Change::MessageUpdate { conversation, message } => {
                    let t = s.transcripts.entry(conversation).or_default();
                    if let Some(m) = t.iter_mut().find(|m| m.seq == message.seq) {
                        *m = message;
                    }
                }
                Change::Outbox(o) => {
                    s.outbox.insert((o.conversation.clone(), o.seq), o);
                }
                Change::OutboxDone { conversation, seq } => {
                    s.outbox.remove(&(conversation, seq));
                }
                Change::Mid { mid, .. } => {
                    s.mids.insert(mid);
                }
                Change::CustomerName {
                    page_id,
                    customer,
                    name,
                } => {
                    s.names.insert((page_id, customer), name);
                }
                Change::LastOwner {
                    entry_point,
                    customer,
                    owner,
                } => {
                    s.last_owners.insert((entry_point, customer), owner);
                }
                Change::Counters {
                    next_conversation,
                    next_offer,
                    next_arrival,
                } => {
                    s.counters = (next_conversation, next_offer, next_arrival);
                }
                Change::Supervisor(x) => {
                    s.supervisors.insert(x.id.clone(), *x);
                }
                Change::Audit { entry, forget } => {
                    if let Some(old) = forget {
                        s.audit.remove(&old);
                    }
                    s.audit.insert(entry.seq, entry);
                }
                Change::SearchText {
                    arrived_at,
                    conversation,
                    text,
                } => {
                    let key = record::record_key(arrived_at, &conversation).into_boxed_slice();
                    s.search.insert(key, text.into_boxed_str());
                }
                Change::Figures(d) => {
                    let mut key = Vec::new();
                    record::figures_key_into(&mut key, &d.subject, d.interval);
                    s.figures.entry(key).or_default().add(&d.figures);
                }
                Change::Record(r) => {
                    let key = record::record_key(r.arrived_at, &r.id).into_boxed_slice();
                    let mut value = Vec::with_capacity(256);
                    if record::encode_record_into(&mut value, *r).is_err() {
                        // Plain data always encodes; a record that would not is not kept.
                        continue;
                    }
                    let value = value.into_boxed_slice();
                    s.records.insert(key, value);
                }
                Change::CannedResponse(c) => {
                    s.canned.insert(c.id.clone(), *c);
                }
                Change::CannedResponseRemoved(id) => {
                    s.canned.remove(&id);
                }
                Change::Webhook(h) => {
                    s.webhooks.insert(h.id.clone(), *h);
                }
                Change::WebhookRemoved(id) => {
                    s.webhooks.remove(&id);
                }
                Change::WebhookEvent(e) => {
                    s.webhook_events.insert(e.seq, (*e).clone());
                }
                Change::WebhookTrim { from, through } => {
                    s.webhook_events.retain(|seq, _| !(from..=through).contains(seq));
                    s.webhooks_trimmed = through;
                }
                Change::Survey {
                    entry_point,
                    customer,
                    pending,
                } => match pending {
                    Some(p) => {
                        s.surveys.insert((entry_point, customer), *p);
                    }
                    None => {
                        s.surveys.remove(&(entry_point, customer));
                    }
                },
                Change::Satisfaction {
                    arrived_at,
                    conversation,
                    satisfaction,
                } => {
                    let key = record::record_key(arrived_at, &conversation).into_boxed_slice();
                    s.ratings.insert(key, satisfaction);
                }
            }
        }
        Box::pin(std::future::ready(Ok(())))
    }

    fn load(&self) -> Result<Snapshot, StoreError> {
        let s = self.inner.lock().map_err(|e| StoreError::Read(e.to_string()))?;
        let held = held_by_agents(s.agents.values().map(|a| &**a));
        let conversations: Vec<Conversation> = s
            .conversations
            .values()
            .filter(|c| c.state != ConversationState::Ended || held.contains(c.id.as_str()))
            .map(|c| {
                let mut c = Conversation::clone(c);
                c.transcript = s.transcripts.get(&c.id).cloned().unwrap_or_default();
                c
            })
            .collect();
        let agents: Vec<Agent> = s.agents.values().map(|a| Agent::clone(a)).collect();
        Ok(Snapshot {
            queues: s.queues.values().cloned().collect(),
            entry_points: s.entry_points.values().cloned().collect(),
            agents,
            conversations,
            counters: s.counters,
            outbox: s.outbox.values().cloned().collect(),
            supervisors: s.supervisors.values().cloned().collect(),
            audit: s.audit.values().cloned().collect(),
            canned: s.canned.values().cloned().collect(),
            webhooks: s.webhooks.values().cloned().collect(),
            webhook_events: s.webhook_events.values().cloned().collect(),
            webhooks_trimmed: s.webhooks_trimmed,
            surveys: s.surveys.values().cloned().collect(),
        })
    }

    fn records(&self, query: &RecordQuery) -> Result<RecordPage, StoreError> {
        let s = self.inner.lock().map_err(|e| StoreError::Read(e.to_string()))?;
        let from: Box<[u8]> = Box::new(records_start(query).to_be_bytes());
        let words = &query.filter.words;
        if words.is_empty() {
            let read = s
                .records
                .range(from..)
                .map(|(k, v)| record::decode_record(k, v).map(|r| Some(s.rated(k, r))));
            return collect_page(query, read);
        }
        let read = s.search.range(from..).map(|(k, text)| match s.records.get(k) {
            Some(v) if crate::core::report::text_matches(text, words) => {
                record::decode_record(k, v).map(|r| Some(s.rated(k, r)))
            }
            _ => Ok(None),
        });
        collect_page(query, read)
    }

    fn figures(&self, subject: &Subject, from: Millis, to: Millis) -> Result<Vec<(Millis, Figures)>, StoreError> {
        let s = self.inner.lock().map_err(|e| StoreError::Read(e.to_string()))?;
        let (mut start, mut end) = (Vec::new(), Vec::new());
        record::figures_key_into(&mut start, subject, from);
        record::figures_key_into(&mut end, subject, to);
        Ok(s.figures
            .range(start..end)
            .filter_map(|(k, f)| Some((record::figures_interval(k)?, f.clone())))
            .collect())
    }

    fn mid_seen(&self, mid: &str) -> Result<bool, StoreError> {
        let s = self.inner.lock().map_err(|e| StoreError::Read(e.to_string()))?;
        Ok(s.mids.contains(mid))
    }

    fn customer_name(&self, page_id: &str, customer: &str) -> Result<Option<String>, StoreError> {
        let s = self.inner.lock().map_err(|e| StoreError::Read(e.to_string()))?;
        Ok(s.names.get(&(page_id.to_string(), customer.to_string())).cloned())
    }

    fn last_owner(&self, entry_point: &str, customer: &str) -> Result<Option<LastOwner>, StoreError> {
        let s = self.inner.lock().map_err(|e| StoreError::Read(e.to_string()))?;
        Ok(s.last_owners
            .get(&(entry_point.to_string(), customer.to_string()))
            .cloned())
    }

    fn conversation(&self, id: &str) -> Result<Option<Conversation>, StoreError> {
        let s = self.inner.lock().map_err(|e| StoreError::Read(e.to_string()))?;
        Ok(s.conversations.get(id).map(|c| {
            let mut c = Conversation::clone(c);
            c.transcript = s.transcripts.get(id).cloned().unwrap_or_default();
            c
        }))
    }
}

/// Opens the engine's sled store at `path` with the default options (30 days of
/// retention). The server binary calls this; [`open_with`] takes options from the config.
pub fn open(path: &std::path::Path) -> Result<Arc<dyn Store>, StoreError> {
    open_with(path, SledOptions::default())
}

/// Opens the engine's sled store at `path` with `options`
/// (see [`SledOptions::from_config`]).
pub fn open_with(path: &std::path::Path, options: SledOptions) -> Result<Arc<dyn Store>, StoreError> {
    Ok(Arc::new(SledStore::open(path, options)?))
}
