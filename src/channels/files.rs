//! The files agents send (`POST /api/v1/conversations/{id}/attachments`): kept in a
//! directory of their own beside the store, bounded, and read back by the outbox sender
//! (to send them through the Send API) and by `GET /files/{id}/{name}` (agents' pages).
//!
//! Each file is two files named by its id, 32 hex digits from the OS's CSPRNG (128
//! bits, so the URL that serves it is a capability: unguessable, like a token): `{id}`
//! (the bytes) and `{id}.json` (content type, name, size). Both are written to a
//! temporary name, fsynced and renamed, and the directory fsynced, before the message
//! that names the file is committed: a file the store's outbox names exists after a
//! power cut. Together the files hold at most `messenger.attachments_max_total_bytes`;
//! beyond it a new file is refused ([`FileError::Full`]). Nothing deletes them (they are
//! part of transcripts); docs/API-NOTES.md says how an operator prunes the directory.
//!
//! In a cluster ([`FileStore::replicated`]), a file is also put into the cluster's
//! JetStream object store before the message naming it is committed, so that whichever
//! node routes the tenant next serves it: a file missing from this node's directory is
//! fetched from there (and kept here). A tenant other than `default` puts its id in front
//! of each file's (`acme.<32 hex>`), so that any node knows where `/files/{id}/...` goes
//! (docs/CLUSTER.md "Tenants in a cluster").

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use rand::RngCore;
use serde::{Deserialize, Serialize};

use crate::core::messenger::valid_file_id;

/// What is kept beside a file's bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileMeta {
    pub content_type: String,
    /// The name the agent gave it (cleaned: see [`clean_name`]).
    pub name: String,
    pub size: u64,
}

/// Why a file could not be kept or read.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("the file store is full ({0} bytes): no more files can be kept")]
    Full(u64),
    #[error("no such file")]
    NotFound,
    #[error("the file store failed: {0}")]
    Io(#[from] std::io::Error),
}

/// The directory of files. See the module docs.
pub struct FileStore {
    dir: PathBuf,
    max_total: u64,
    /// Bytes held now (counted at open, then kept).
    used: AtomicU64,
    /// In a cluster: the tenant's id in front of each new file's, and where every file is
    /// put too.
    replica: Option<Replica>,
}

/// Where a cluster keeps every tenant's files: see [`FileStore::replicated`].
struct Replica {
    objects: async_nats::jetstream::object_store::ObjectStore,
    prefix: Option<String>,
}

impl std::fmt::Debug for FileStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileStore")
            .field("dir", &self.dir)
            .field("max_total", &self.max_total)
            .field("replicated", &self.replica.is_some())
            .finish()
    }
}

impl FileStore {
    /// Opens (creating) `dir`, counting what it holds; `max_total` bounds it.
    pub fn open(dir: &Path, max_total: u64) -> std::io::Result<FileStore> {
        std::fs::create_dir_all(dir)?;
        let mut used = 0;
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            if entry.file_name().to_str().is_some_and(valid_file_id) {
                used += entry.metadata()?.len();
            }
        }
        Ok(FileStore {
            dir: dir.to_path_buf(),
            max_total,
            used: AtomicU64::new(used),
            replica: None,
        })
    }

    /// This store, in a cluster: each new file is put into `objects` too, and a file
    /// this node does not hold is fetched from there. `tenant` (not `default`) goes in
    /// front of each new file's id.
    pub fn replicated(mut self, objects: async_nats::jetstream::object_store::ObjectStore, tenant: &str) -> FileStore {
        self.replica = Some(Replica {
            objects,
            prefix: (tenant != crate::core::tenant::DEFAULT_TENANT).then(|| tenant.to_string()),
        });
        self
    }

    /// The directory of `config`: `messenger.attachments_path`, or `<store.path>-attachments`.
    pub fn dir_of(config: &crate::config::Config) -> PathBuf {
        if config.messenger.attachments_path.is_empty() {
            let mut name = config.store.path.as_os_str().to_owned();
            name.push("-attachments");
            PathBuf::from(name)
        } else {
            PathBuf::from(&config.messenger.attachments_path)
        }
    }

    /// Opens the directory of `config`.
    pub fn for_config(config: &crate::config::Config) -> std::io::Result<FileStore> {
        Self::open(&Self::dir_of(config), config.messenger.attachments_max_total_bytes)
    }

    /// Keeps `bytes` durably; returns the new file's id.
    pub fn put(&self, bytes: &[u8], content_type: &str, name: &str) -> Result<(String, FileMeta), FileError> {
        let size = bytes.len() as u64;
        // Reserve the room first, so two uploads at once cannot both pass the bound.
        let reserved = self.used.fetch_add(size, Ordering::SeqCst);
        if reserved.saturating_add(size) > self.max_total {
            self.used.fetch_sub(size, Ordering::SeqCst);
            return Err(FileError::Full(self.max_total));
        }
        let result = self.write(bytes, content_type, name);
        if result.is_err() {
            self.used.fetch_sub(size, Ordering::SeqCst);
        }
        result
    }

    fn write(&self, bytes: &[u8], content_type: &str, name: &str) -> Result<(String, FileMeta), FileError> {
        let mut raw = [0u8; 16];
        rand::rngs::OsRng.fill_bytes(&mut raw);
        let id = match self.replica.as_ref().and_then(|r| r.prefix.as_deref()) {
            Some(tenant) => format!("{tenant}.{}", hex::encode(raw)),
            None => hex::encode(raw),
        };
        self.write_as(&id, bytes, content_type, name)
    }

    fn write_as(
        &self,
        id: &str,
        bytes: &[u8],
        content_type: &str,
        name: &str,
    ) -> Result<(String, FileMeta), FileError> {
        let id = id.to_string();
        let meta = FileMeta {
            content_type: content_type.to_string(),
            name: clean_name(name),
            size: bytes.len() as u64,
        };
        let meta_json = serde_json::to_vec(&meta).map_err(std::io::Error::other)?;
        write_durably(&self.dir.join(format!("{id}.json")), &meta_json)?;
        write_durably(&self.dir.join(&id), bytes)?;
        std::fs::File::open(&self.dir)?.sync_all()?;
        Ok((id, meta))
    }

    /// The bytes and what is known of file `id`.
    pub fn get(&self, id: &str) -> Result<(Vec<u8>, FileMeta), FileError> {
        if !valid_file_id(id) {
            return Err(FileError::NotFound);
        }
        let read = |path: PathBuf| match std::fs::read(path) {
            Ok(b) => Ok(b),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(FileError::NotFound),
            Err(e) => Err(FileError::Io(e)),
        };
        let meta: FileMeta = serde_json::from_slice(&read(self.dir.join(format!("{id}.json")))?)
            .map_err(|e| FileError::Io(std::io::Error::other(e)))?;
        let bytes = read(self.dir.join(id))?;
        Ok((bytes, meta))
    }

    /// Bytes held now.
    pub fn used(&self) -> u64 {
        self.used.load(Ordering::SeqCst)
    }

    /// [`FileStore::put`] off the calling thread, then, in a cluster, into the object
    /// store too: the answer comes once the file is durable wherever the tenant's next
    /// owner looks for it.
    pub async fn keep(
        self: &Arc<Self>,
        bytes: Vec<u8>,
        content_type: String,
        name: String,
    ) -> Result<(String, FileMeta), FileError> {
        let store = self.clone();
        let kept = tokio::task::spawn_blocking(move || {
            let put = store.put(&bytes, &content_type, &name);
            put.map(|(id, meta)| (id, meta, bytes))
        })
        .await
        .map_err(|e| FileError::Io(std::io::Error::other(e)))??;
        let (id, meta, bytes) = kept;
        if let Some(replica) = &self.replica {
            let description = serde_json::to_string(&meta).map_err(std::io::Error::other)?;
            let object = async_nats::jetstream::object_store::ObjectMetadata {
                name: id.clone(),
                description: Some(description),
                ..Default::default()
            };
            let mut reader = std::io::Cursor::new(bytes);
            replica
                .objects
                .put(object, &mut reader)
                .await
                .map_err(|e| FileError::Io(std::io::Error::other(format!("the cluster's file store: {e}"))))?;
        }
        Ok((id, meta))
    }

    /// [`FileStore::get`] off the calling thread; in a cluster, a file this node does not
    /// hold is fetched from the object store (and kept here for the next time).
    pub async fn fetch(self: &Arc<Self>, id: String) -> Result<(Vec<u8>, FileMeta), FileError> {
        let store = self.clone();
        let wanted = id.clone();
        let local = tokio::task::spawn_blocking(move || store.get(&wanted))
            .await
            .map_err(|e| FileError::Io(std::io::Error::other(e)))?;
        let replica = match (&local, &self.replica) {
            (Err(FileError::NotFound), Some(r)) if valid_file_id(&id) => r,
            _ => return local,
        };
        let mut object = match replica.objects.get(&id).await {
            Ok(o) => o,
            Err(e) if e.kind() == async_nats::jetstream::object_store::GetErrorKind::NotFound => {
                return Err(FileError::NotFound)
            }
            Err(e) => {
                return Err(FileError::Io(std::io::Error::other(format!(
                    "the cluster's file store: {e}"
                ))))
            }
        };
        let meta: FileMeta = object
            .info()
            .description
            .as_deref()
            .and_then(|d| serde_json::from_str(d).ok())
            .ok_or(FileError::NotFound)?;
        let mut bytes = Vec::new();
        tokio::io::AsyncReadExt::read_to_end(&mut object, &mut bytes)
            .await
            .map_err(|e| FileError::Io(std::io::Error::other(format!("the cluster's file store: {e}"))))?;
        // Kept here too; a copy that cannot be kept is only served again from the cluster.
        let store = self.clone();
        let (copy, m) = (bytes.clone(), meta.clone());
        let _ = tokio::task::spawn_blocking(move || {
            let size = copy.len() as u64;
            store.used.fetch_add(size, Ordering::SeqCst);
            if let Err(e) = store.write_as(&id, &copy, &m.content_type, &m.name) {
                store.used.fetch_sub(size, Ordering::SeqCst);
                tracing::warn!(file = %id, error = %e, "a file fetched from the cluster was not kept here");
            }
        })
        .await;
        Ok((bytes, meta))
    }
}

/// Writes `bytes` to `path` through a temporary name, fsynced before the rename.
fn write_durably(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    // `{name}.tmp`: a tenant's file ids have a dot of their own.
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// A file name as it may be shown and put in a URL path: its last path component, at
/// most 100 characters of letters, digits, `.`, `-` and `_` (others become `_`); `file`
/// when nothing is left.
pub fn clean_name(name: &str) -> String {
    let last = name.rsplit(['/', '\\']).next().unwrap_or_default();
    let cleaned: String = last
        .chars()
        .take(100)
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let trimmed = cleaned.trim_matches('.');
    if trimmed.is_empty() {
        "file".into()
    } else {
        trimmed.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_cleaned_for_urls() {
        let cases = [
            ("photo.png", "photo.png"),
            ("../../etc/passwd", "passwd"),
            ("C:\\Users\\a\\b c.pdf", "b_c.pdf"),
            ("..", "file"),
            ("", "file"),
            ("é.txt", "_.txt"),
        ];
        for (raw, want) in cases {
            assert_eq!(clean_name(raw), want, "{raw}");
        }
    }

    #[test]
    fn files_are_kept_bounded_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::open(dir.path(), 10).unwrap();
        let (id, meta) = store.put(b"hello", "text/plain", "a b.txt").unwrap();
        assert!(valid_file_id(&id));
        assert_eq!(meta.name, "a_b.txt");
        assert_eq!(store.get(&id).unwrap().0, b"hello");
        assert!(matches!(
            store.put(b"123456", "text/plain", "x"),
            Err(FileError::Full(10))
        ));
        assert!(matches!(store.get("../x"), Err(FileError::NotFound)));
        assert!(matches!(store.get(&"0".repeat(32)), Err(FileError::NotFound)));
        // Reopened, it counts what it holds.
        let again = FileStore::open(dir.path(), 10).unwrap();
        assert_eq!(again.used(), 5);
    }
}
