//! The durability seam: every change the core makes passes through a [`Store`] before the
//! operation that caused it is acknowledged.
//!
//! # Architecture invariant
//! The store knows records, not rules: it never decides anything about routing. It keeps
//! what [`Change`]s say and gives it back as a [`Snapshot`] on start.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use crate::core::{Agent, Change, Conversation, EntryPoint, Queue};

/// Why the store failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error("the store cannot be written: {0}")]
    Write(String),
    #[error("the store cannot be read: {0}")]
    Read(String),
}

/// Resolves when a batch of changes is durable.
pub type CommitFuture = Pin<Box<dyn Future<Output = Result<(), StoreError>> + Send>>;

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
}

/// Where the engine makes its changes durable.
pub trait Store: Send + Sync + 'static {
    /// Makes `changes` durable, in order after every earlier call; the future resolves
    /// once they are.
    fn commit(&self, changes: Vec<Change>) -> CommitFuture;
    /// Reads everything back.
    fn load(&self) -> Result<Snapshot, StoreError>;
}

/// An in-memory store: durable for the life of the process. Clones share their contents,
/// so a test can "restart" an engine on the same store.
#[derive(Debug, Clone, Default)]
pub struct MemoryStore {
    inner: Arc<Mutex<MemoryState>>,
}

#[derive(Debug, Default)]
struct MemoryState {
    queues: BTreeMap<String, Queue>,
    entry_points: BTreeMap<String, EntryPoint>,
    agents: BTreeMap<String, Agent>,
    conversations: BTreeMap<String, Conversation>,
    transcripts: HashMap<String, Vec<crate::core::Message>>,
    counters: (u64, u64, u64),
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

impl Store for MemoryStore {
    fn commit(&self, changes: Vec<Change>) -> CommitFuture {
        let mut s = match self.inner.lock() {
            Ok(s) => s,
            Err(p) => p.into_inner(),
        };
        for change in changes {
            match change {
                Change::Agent(a) => {
                    s.agents.insert(a.id.clone(), a);
                }
                Change::Queue(q) => {
                    s.queues.insert(q.id.clone(), q);
                }
                Change::EntryPoint(e) => {
                    s.entry_points.insert(e.id.clone(), e);
                }
                Change::Conversation(c) => {
                    s.conversations.insert(c.id.clone(), c);
                }
                Change::Message { conversation, message } => {
                    s.transcripts.entry(conversation).or_default().push(message);
                }
                Change::Counters {
                    next_conversation,
                    next_offer,
                    next_arrival,
                } => {
                    s.counters = (next_conversation, next_offer, next_arrival);
                }
            }
        }
        Box::pin(std::future::ready(Ok(())))
    }

    fn load(&self) -> Result<Snapshot, StoreError> {
        let s = self.inner.lock().map_err(|e| StoreError::Read(e.to_string()))?;
        let conversations = s
            .conversations
            .values()
            .map(|c| {
                let mut c = c.clone();
                c.transcript = s.transcripts.get(&c.id).cloned().unwrap_or_default();
                c
            })
            .collect();
        Ok(Snapshot {
            queues: s.queues.values().cloned().collect(),
            entry_points: s.entry_points.values().cloned().collect(),
            agents: s.agents.values().cloned().collect(),
            conversations,
            counters: s.counters,
        })
    }
}

/// Opens the engine's store at `path`. The server binary calls this; the sled store
/// replaces the in-memory one here (issue: durability and crash recovery).
pub fn open(_path: &std::path::Path) -> Result<Arc<dyn Store>, StoreError> {
    Ok(Arc::new(MemoryStore::new()))
}
