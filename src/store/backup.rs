//! The backup file: a consistent copy of every record of a store, as one file.
//!
//! ```text
//! magic            b"SWITCHBOARD-BACKUP\n"    (19 bytes)
//! backup format    u8 = 1
//! store format     u8 (the layout the records are in; restore refuses another one)
//! entries          u64 LE
//! entry * entries  key length u32 LE, key, value length u32 LE, value
//! checksum         SHA-256 of every byte before it (32 bytes)
//! ```
//!
//! Keys and values are the store's own (versioned records under their kind prefix), so a
//! backup restores byte for byte. The checksum catches a truncated or altered file before
//! anything is written.

use sha2::{Digest, Sha256};

/// The first bytes of every backup file.
pub const MAGIC: &[u8] = b"SWITCHBOARD-BACKUP\n";
/// The version of this file layout.
pub const BACKUP_FORMAT: u8 = 1;

/// Why a backup file cannot be restored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BackupError {
    #[error("not a Switchboard backup (no magic header)")]
    NotABackup,
    #[error("backup format {0} is unknown to this build (it reads format {BACKUP_FORMAT})")]
    UnknownFormat(u8),
    #[error("the backup holds store format {found}; this build reads store format {expected}")]
    StoreFormat { found: u8, expected: u8 },
    #[error("the backup fails its checksum (truncated or altered)")]
    Checksum,
    #[error("the backup is truncated or malformed")]
    Malformed,
}

/// Builds a backup file entry by entry.
pub struct Writer {
    buf: Vec<u8>,
    entries: u64,
}

impl Writer {
    /// A backup of records in `store_format`.
    pub fn new(store_format: u8) -> Writer {
        let mut buf = Vec::with_capacity(1 << 16);
        buf.extend_from_slice(MAGIC);
        buf.push(BACKUP_FORMAT);
        buf.push(store_format);
        buf.extend_from_slice(&0u64.to_le_bytes());
        Writer { buf, entries: 0 }
    }

    /// One record.
    pub fn entry(&mut self, key: &[u8], value: &[u8]) {
        self.buf.extend_from_slice(&(key.len() as u32).to_le_bytes());
        self.buf.extend_from_slice(key);
        self.buf.extend_from_slice(&(value.len() as u32).to_le_bytes());
        self.buf.extend_from_slice(value);
        self.entries += 1;
    }

    /// The finished file: the entry count filled in, the checksum appended.
    pub fn finish(mut self) -> Vec<u8> {
        let at = MAGIC.len() + 2;
        self.buf[at..at + 8].copy_from_slice(&self.entries.to_le_bytes());
        let sum = Sha256::digest(&self.buf);
        self.buf.extend_from_slice(&sum);
        self.buf
    }
}

/// One record of a backup: the store's key and value.
pub type Record = (Vec<u8>, Vec<u8>);

/// The records of a backup file, checked: magic, formats, checksum, every length.
pub fn decode(file: &[u8], store_format: u8) -> Result<Vec<Record>, BackupError> {
    if !file.starts_with(MAGIC) {
        return Err(BackupError::NotABackup);
    }
    let header = MAGIC.len() + 2 + 8;
    if file.len() < header + 32 {
        return Err(BackupError::Malformed);
    }
    let (body, sum) = file.split_at(file.len() - 32);
    if Sha256::digest(body).as_slice() != sum {
        return Err(BackupError::Checksum);
    }
    let format = body[MAGIC.len()];
    if format != BACKUP_FORMAT {
        return Err(BackupError::UnknownFormat(format));
    }
    let found = body[MAGIC.len() + 1];
    if found != store_format {
        return Err(BackupError::StoreFormat {
            found,
            expected: store_format,
        });
    }
    let count = u64::from_le_bytes(
        body[MAGIC.len() + 2..header]
            .try_into()
            .map_err(|_| BackupError::Malformed)?,
    );
    let mut rest = &body[header..];
    let mut take = |n: usize| -> Result<&[u8], BackupError> {
        if rest.len() < n {
            return Err(BackupError::Malformed);
        }
        let (a, b) = rest.split_at(n);
        rest = b;
        Ok(a)
    };
    let mut entries = Vec::new();
    for _ in 0..count {
        let klen = u32::from_le_bytes(take(4)?.try_into().map_err(|_| BackupError::Malformed)?) as usize;
        let key = take(klen)?.to_vec();
        let vlen = u32::from_le_bytes(take(4)?.try_into().map_err(|_| BackupError::Malformed)?) as usize;
        let value = take(vlen)?.to_vec();
        entries.push((key, value));
    }
    if !take(0)?.is_empty() || !rest.is_empty() {
        return Err(BackupError::Malformed);
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        let mut w = Writer::new(2);
        w.entry(b"aa1", b"agent");
        w.entry(b"zformat", &[2]);
        w.finish()
    }

    #[test]
    fn a_backup_round_trips() {
        let entries = decode(&sample(), 2).unwrap();
        assert_eq!(
            entries,
            vec![(b"aa1".to_vec(), b"agent".to_vec()), (b"zformat".to_vec(), vec![2])]
        );
    }

    #[test]
    fn bad_files_are_named() {
        let good = sample();
        let mut flipped = good.clone();
        flipped[MAGIC.len() + 12] ^= 1;
        let cases: Vec<(Vec<u8>, BackupError)> = vec![
            (b"hello".to_vec(), BackupError::NotABackup),
            (good[..good.len() - 1].to_vec(), BackupError::Checksum),
            (flipped, BackupError::Checksum),
            (MAGIC.to_vec(), BackupError::Malformed),
        ];
        for (file, want) in cases {
            assert_eq!(decode(&file, 2).unwrap_err(), want);
        }
        assert_eq!(
            decode(&good, 3).unwrap_err(),
            BackupError::StoreFormat { found: 2, expected: 3 }
        );
    }
}
