//! The backup file: a consistent copy of every record of a store, as one file that is
//! written and read as a stream (neither side holds more than one record of it).
//!
//! Format 2 (written by this build):
//!
//! ```text
//! magic            b"SWITCHBOARD-BACKUP\n"    (19 bytes)
//! backup format    u8 = 2
//! store format     u8 (the layout the records are in; restore refuses another one)
//! entry *          key length u32 LE (1 ..= MAX_KEY), key, value length u32 LE, value
//! end              u32 LE = 0xFFFF_FFFF
//! entries          u64 LE (how many entries came before the end)
//! checksum         SHA-256 of every byte before it (32 bytes)
//! ```
//!
//! Format 1 (written by earlier builds, still read) had the entry count in the header,
//! because the whole file was built in memory first:
//!
//! ```text
//! magic, backup format u8 = 1, store format u8, entries u64 LE,
//! entry * entries, checksum (SHA-256 of every byte before it)
//! ```
//!
//! Format 2 moves the count to the end so that a backup can be sent while it is read from
//! the store. Keys and values are the store's own (versioned records under their kind
//! prefix), so a backup restores byte for byte. The checksum covers the whole file and is
//! computed as it is written; a reader checks it before it reports success, so a truncated
//! or altered file is refused.

use std::io::Read;

use sha2::{Digest, Sha256};

/// The first bytes of every backup file.
pub const MAGIC: &[u8] = b"SWITCHBOARD-BACKUP\n";
/// The version of the file layout this build writes.
pub const BACKUP_FORMAT: u8 = 2;
/// The layout of earlier builds (count in the header); still read.
pub const BACKUP_FORMAT_1: u8 = 1;
/// The key length that ends the entries of format 2 (no key is that long).
const END: u32 = u32::MAX;
/// The longest key a backup holds. Store keys are a prefix byte and ids; the bound keeps
/// a damaged length field from making a reader allocate gigabytes.
pub const MAX_KEY: usize = 1 << 20;
/// The longest value a backup holds (a store record is a few KB at most; see [`MAX_KEY`]).
pub const MAX_VALUE: usize = 64 << 20;
/// Size of the checksum at the end of the file.
const SUM: usize = 32;

/// Why a backup file cannot be restored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BackupError {
    #[error("not a Switchboard backup (no magic header)")]
    NotABackup,
    #[error("backup format {0} is unknown to this build (it reads formats 1 and {BACKUP_FORMAT})")]
    UnknownFormat(u8),
    #[error("the backup holds store format {found}; this build reads store format {expected}")]
    StoreFormat { found: u8, expected: u8 },
    #[error("the backup fails its checksum (truncated or altered)")]
    Checksum,
    #[error("the backup is truncated (it ends before its checksum)")]
    Truncated,
    #[error("the backup is malformed: {0}")]
    Malformed(String),
    #[error("the backup cannot be read: {0}")]
    Io(String),
}

/// Encodes a backup as it goes, hashing every byte it hands out: the header first, then
/// each record, then [`Encoder::finish`] gives the trailer (count and checksum).
pub struct Encoder {
    hash: Sha256,
    entries: u64,
}

impl Encoder {
    /// A backup of records in `store_format`; its header is appended to `out`.
    pub fn new(store_format: u8, out: &mut Vec<u8>) -> Encoder {
        let mut e = Encoder {
            hash: Sha256::new(),
            entries: 0,
        };
        let start = out.len();
        out.extend_from_slice(MAGIC);
        out.push(BACKUP_FORMAT);
        out.push(store_format);
        e.hash.update(&out[start..]);
        e
    }

    /// Appends one record to `out`. Refuses a key or value beyond [`MAX_KEY`] or
    /// [`MAX_VALUE`], which no reader would accept.
    pub fn entry(&mut self, key: &[u8], value: &[u8], out: &mut Vec<u8>) -> Result<(), BackupError> {
        if key.is_empty() || key.len() > MAX_KEY || value.len() > MAX_VALUE {
            return Err(BackupError::Malformed(format!(
                "a record of {} key bytes and {} value bytes is beyond what a backup holds",
                key.len(),
                value.len()
            )));
        }
        let start = out.len();
        out.extend_from_slice(&(key.len() as u32).to_le_bytes());
        out.extend_from_slice(key);
        out.extend_from_slice(&(value.len() as u32).to_le_bytes());
        out.extend_from_slice(value);
        self.hash.update(&out[start..]);
        self.entries += 1;
        Ok(())
    }

    /// Records so far.
    pub fn entries(&self) -> u64 {
        self.entries
    }

    /// Appends the end marker, the count and the checksum of the whole file to `out`.
    pub fn finish(mut self, out: &mut Vec<u8>) {
        let start = out.len();
        out.extend_from_slice(&END.to_le_bytes());
        out.extend_from_slice(&self.entries.to_le_bytes());
        self.hash.update(&out[start..]);
        out.extend_from_slice(&self.hash.finalize());
    }
}

/// One record of a backup: the store's key and value.
pub type Record = (Vec<u8>, Vec<u8>);

/// Reads a backup file record by record from any reader, hashing what it reads. The
/// checksum is only known at the end: [`Decoder::next`] returns `Ok(None)` only once the
/// whole file was read and its checksum matched, so whoever writes records as they come
/// must undo them on any error.
pub struct Decoder<R: Read> {
    input: R,
    hash: Sha256,
    format: u8,
    /// Format 1: entries still to come. Format 2: `None`.
    left: Option<u64>,
    read: u64,
    done: bool,
}

impl<R: Read> Decoder<R> {
    /// Reads and checks the header: magic, backup format, store format.
    pub fn new(input: R, store_format: u8) -> Result<Decoder<R>, BackupError> {
        let mut d = Decoder {
            input,
            hash: Sha256::new(),
            format: 0,
            left: None,
            read: 0,
            done: false,
        };
        let mut magic = [0u8; MAGIC.len()];
        match d.exact(&mut magic) {
            Ok(()) if magic == MAGIC => {}
            Ok(()) | Err(BackupError::Truncated) => return Err(BackupError::NotABackup),
            Err(e) => return Err(e),
        }
        let mut formats = [0u8; 2];
        d.exact(&mut formats)?;
        let [format, found] = formats;
        if format != BACKUP_FORMAT && format != BACKUP_FORMAT_1 {
            return Err(BackupError::UnknownFormat(format));
        }
        if found != store_format {
            return Err(BackupError::StoreFormat {
                found,
                expected: store_format,
            });
        }
        d.format = format;
        if format == BACKUP_FORMAT_1 {
            d.left = Some(d.u64()?);
        }
        Ok(d)
    }

    /// The backup format of the file (1 or 2).
    pub fn format(&self) -> u8 {
        self.format
    }

    /// The next record; `Ok(None)` once the file ended where it should and its checksum
    /// matched.
    pub fn next_record(&mut self) -> Result<Option<Record>, BackupError> {
        if self.done {
            return Ok(None);
        }
        let klen = match self.left {
            Some(0) => return self.end(None).map(|()| None),
            Some(_) => self.u32()?,
            None => match self.u32()? {
                END => {
                    let count = self.u64()?;
                    return self.end(Some(count)).map(|()| None);
                }
                n => n,
            },
        } as usize;
        if klen == 0 || klen > MAX_KEY {
            return Err(BackupError::Malformed(format!("a key length of {klen} bytes")));
        }
        let key = self.bytes(klen)?;
        let vlen = self.u32()? as usize;
        if vlen > MAX_VALUE {
            return Err(BackupError::Malformed(format!("a value length of {vlen} bytes")));
        }
        let value = self.bytes(vlen)?;
        if let Some(left) = &mut self.left {
            *left -= 1;
        }
        self.read += 1;
        Ok(Some((key, value)))
    }

    /// The checksum, then nothing: the file must end right after it.
    fn end(&mut self, count: Option<u64>) -> Result<(), BackupError> {
        let want = std::mem::take(&mut self.hash).finalize();
        let mut sum = [0u8; SUM];
        self.input
            .read_exact(&mut sum)
            .map_err(|e| io_or_truncated(&e).unwrap_or(BackupError::Truncated))?;
        if want.as_slice() != sum {
            return Err(BackupError::Checksum);
        }
        let mut more = [0u8; 1];
        loop {
            match self.input.read(&mut more) {
                Ok(0) => break,
                Ok(_) => return Err(BackupError::Malformed("bytes after the checksum".into())),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(BackupError::Io(e.to_string())),
            }
        }
        if let Some(count) = count {
            if count != self.read {
                return Err(BackupError::Malformed(format!(
                    "the file says {count} records and holds {}",
                    self.read
                )));
            }
        }
        self.done = true;
        Ok(())
    }

    fn exact(&mut self, buf: &mut [u8]) -> Result<(), BackupError> {
        self.input
            .read_exact(buf)
            .map_err(|e| io_or_truncated(&e).unwrap_or(BackupError::Truncated))?;
        self.hash.update(&*buf);
        Ok(())
    }

    fn u32(&mut self) -> Result<u32, BackupError> {
        let mut b = [0u8; 4];
        self.exact(&mut b)?;
        Ok(u32::from_le_bytes(b))
    }

    fn u64(&mut self) -> Result<u64, BackupError> {
        let mut b = [0u8; 8];
        self.exact(&mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    /// `n` bytes, read in pieces so that a damaged length on a short file costs no more
    /// memory than the file has left.
    fn bytes(&mut self, n: usize) -> Result<Vec<u8>, BackupError> {
        let mut out = Vec::with_capacity(n.min(1 << 16));
        let got = (&mut self.input)
            .take(n as u64)
            .read_to_end(&mut out)
            .map_err(|e| BackupError::Io(e.to_string()))?;
        if got < n {
            return Err(BackupError::Truncated);
        }
        self.hash.update(&out);
        Ok(out)
    }
}

/// A short read is a truncated file; any other I/O error is itself.
fn io_or_truncated(e: &std::io::Error) -> Option<BackupError> {
    (e.kind() != std::io::ErrorKind::UnexpectedEof).then(|| BackupError::Io(e.to_string()))
}

/// Reads a whole backup without keeping it, checking everything (header, every length,
/// the count, the checksum): how many records it holds.
pub fn verify<R: Read>(input: R, store_format: u8) -> Result<u64, BackupError> {
    let mut d = Decoder::new(input, store_format)?;
    let mut n = 0;
    while d.next_record()?.is_some() {
        n += 1;
    }
    Ok(n)
}

/// The records of a backup held in memory, checked (tests and small files).
pub fn decode(file: &[u8], store_format: u8) -> Result<Vec<Record>, BackupError> {
    let mut d = Decoder::new(file, store_format)?;
    let mut out = Vec::new();
    while let Some(r) = d.next_record()? {
        out.push(r);
    }
    Ok(out)
}

/// Spreads a backup over time at a most `bytes_per_s` (0: no limit): how long to wait
/// before going on once `done` bytes went out, measured from the start. A backup that
/// falls behind (a slow client or disk) does not catch up in a burst: the start moves.
#[derive(Debug, Clone)]
pub struct Pace {
    bytes_per_s: u64,
    started: std::time::Instant,
    base: u64,
}

impl Pace {
    pub fn new(bytes_per_s: u64) -> Self {
        Pace {
            bytes_per_s,
            started: std::time::Instant::now(),
            base: 0,
        }
    }

    /// The pause due after `done` bytes in all.
    pub fn pause(&mut self, done: u64) -> Option<std::time::Duration> {
        if self.bytes_per_s == 0 {
            return None;
        }
        let due = std::time::Duration::from_secs_f64(done.saturating_sub(self.base) as f64 / self.bytes_per_s as f64);
        let elapsed = self.started.elapsed();
        if elapsed >= due {
            // Behind: from here on, pace from now (no burst to catch up).
            if elapsed - due > std::time::Duration::from_millis(250) {
                self.started = std::time::Instant::now();
                self.base = done;
            }
            return None;
        }
        Some(due - elapsed)
    }
}

/// How much of a backup file goes to the disk at a time ([`SteadyFile`]).
pub const WRITE_STEP: usize = 4 << 20;

/// A backup file written in steps of [`WRITE_STEP`] whose writeback is started at once and
/// waited for one step later (Linux `sync_file_range`), so that at most two steps are ever
/// dirty or in flight: the disk sees a steady trickle instead of hundreds of MB at once
/// when the kernel's flusher or the final fsync gets to them, and a store on the same disk
/// waits behind a few MB at most for its own fsyncs (BENCHMARKS.md "Streaming backup").
/// Elsewhere it writes plainly; [`SteadyFile::finish`] fsyncs in every case.
pub struct SteadyFile {
    file: std::fs::File,
    buf: Vec<u8>,
    written: u64,
    in_flight: Option<(u64, u64)>,
}

impl SteadyFile {
    pub fn new(file: std::fs::File) -> Self {
        SteadyFile {
            file,
            buf: Vec::with_capacity(WRITE_STEP),
            written: 0,
            in_flight: None,
        }
    }

    /// Bytes handed to the file so far (written or buffered).
    pub fn len(&self) -> u64 {
        self.written + self.buf.len() as u64
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn write_all(&mut self, mut data: &[u8]) -> std::io::Result<()> {
        while !data.is_empty() {
            let take = (WRITE_STEP - self.buf.len()).min(data.len());
            self.buf.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.buf.len() == WRITE_STEP {
                self.step()?;
            }
        }
        Ok(())
    }

    fn step(&mut self) -> std::io::Result<()> {
        use std::io::Write;
        if self.buf.is_empty() {
            return Ok(());
        }
        self.file.write_all(&self.buf)?;
        let range = (self.written, self.buf.len() as u64);
        self.written += range.1;
        self.buf.clear();
        start_writeback(&self.file, range);
        if let Some(before) = self.in_flight.replace(range) {
            finish_writeback(&self.file, before)?;
        }
        Ok(())
    }

    /// Writes what is buffered, fsyncs the file and returns it.
    pub fn finish(mut self) -> std::io::Result<std::fs::File> {
        self.step()?;
        self.file.sync_all()?;
        Ok(self.file)
    }
}

#[cfg(target_os = "linux")]
fn start_writeback(file: &std::fs::File, (offset, len): (u64, u64)) {
    use std::os::fd::AsRawFd;
    // SAFETY: a valid open descriptor and a range inside what was written; the call only
    // starts writeback of those pages. Failure is ignored: the final fsync reports errors.
    unsafe {
        let _ = libc::sync_file_range(
            file.as_raw_fd(),
            offset as libc::off64_t,
            len as libc::off64_t,
            libc::SYNC_FILE_RANGE_WRITE,
        );
    }
}

#[cfg(not(target_os = "linux"))]
fn start_writeback(_: &std::fs::File, _: (u64, u64)) {}

#[cfg(target_os = "linux")]
fn finish_writeback(file: &std::fs::File, (offset, len): (u64, u64)) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: as in `start_writeback`; this waits for that range's writeback to end.
    let rc = unsafe {
        libc::sync_file_range(
            file.as_raw_fd(),
            offset as libc::off64_t,
            len as libc::off64_t,
            libc::SYNC_FILE_RANGE_WAIT_BEFORE | libc::SYNC_FILE_RANGE_WRITE | libc::SYNC_FILE_RANGE_WAIT_AFTER,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(not(target_os = "linux"))]
fn finish_writeback(_: &std::fs::File, _: (u64, u64)) -> std::io::Result<()> {
    Ok(())
}

/// Tells the kernel that the file's cached pages will not be read again (after a backup
/// file was written and checked), so that it does not push out the store's pages.
pub fn drop_cached(file: &std::fs::File) {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        // SAFETY: a valid open descriptor; advice only, failure ignored.
        unsafe {
            let _ = libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED);
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = file;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        let mut out = Vec::new();
        let mut e = Encoder::new(2, &mut out);
        e.entry(b"aa1", b"agent", &mut out).unwrap();
        e.entry(b"zformat", &[2], &mut out).unwrap();
        e.finish(&mut out);
        out
    }

    /// A format-1 file as earlier builds wrote it (count in the header).
    fn format1() -> Vec<u8> {
        let mut buf = Vec::new();
        buf.extend_from_slice(MAGIC);
        buf.push(1);
        buf.push(2);
        buf.extend_from_slice(&2u64.to_le_bytes());
        for (k, v) in [(&b"aa1"[..], &b"agent"[..]), (b"zformat", &[2])] {
            buf.extend_from_slice(&(k.len() as u32).to_le_bytes());
            buf.extend_from_slice(k);
            buf.extend_from_slice(&(v.len() as u32).to_le_bytes());
            buf.extend_from_slice(v);
        }
        let sum = Sha256::digest(&buf);
        buf.extend_from_slice(&sum);
        buf
    }

    /// Story: a backup written as a stream reads back record for record, and so does a
    /// file of the earlier layout that operators may still keep.
    #[test]
    fn a_backup_round_trips_and_format_1_is_still_read() {
        let want = vec![(b"aa1".to_vec(), b"agent".to_vec()), (b"zformat".to_vec(), vec![2])];
        assert_eq!(decode(&sample(), 2).unwrap(), want);
        assert_eq!(decode(&format1(), 2).unwrap(), want);
        assert_eq!(verify(&sample()[..], 2).unwrap(), 2);
    }

    /// Story: a paced backup waits once it is ahead of its rate, never when unlimited,
    /// and one that fell far behind does not burst to catch up.
    #[test]
    fn pace_spreads_bytes_over_time() {
        let mut none = Pace::new(0);
        assert_eq!(none.pause(u64::MAX), None);
        let mut slow = Pace::new(1 << 20);
        let wait = slow.pause(1 << 20).expect("a second ahead");
        assert!(wait > std::time::Duration::from_millis(500), "{wait:?}");
        // Behind by far: pacing starts again from here.
        slow.started -= std::time::Duration::from_secs(60);
        assert_eq!(slow.pause(2 << 20), None);
        assert!(slow.pause((2 << 20) + (1 << 20)).is_some());
    }

    /// Story: a file written in steps holds exactly what was written, across step
    /// boundaries, once finished.
    #[test]
    fn a_steady_file_holds_what_was_written() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("b");
        let mut f = SteadyFile::new(std::fs::File::create(&path).unwrap());
        let data: Vec<u8> = (0..WRITE_STEP * 2 + 12_345).map(|i| (i % 251) as u8).collect();
        for part in data.chunks(100_000) {
            f.write_all(part).unwrap();
        }
        assert_eq!(f.len(), data.len() as u64);
        let file = f.finish().unwrap();
        drop_cached(&file);
        assert_eq!(std::fs::read(&path).unwrap(), data);
    }

    /// Story: every way a file can be damaged (cut anywhere, one bit flipped anywhere,
    /// another file, another store format, bytes appended) is refused with its reason,
    /// never read as a shorter backup.
    #[test]
    fn bad_files_are_named() {
        for good in [sample(), format1()] {
            for cut in 0..good.len() {
                let err = verify(&good[..cut], 2).unwrap_err();
                assert!(
                    matches!(err, BackupError::Truncated | BackupError::NotABackup),
                    "cut at {cut}: {err:?}"
                );
            }
            for at in MAGIC.len() + 2..good.len() {
                for bit in 0..8 {
                    let mut flipped = good.clone();
                    flipped[at] ^= 1 << bit;
                    assert!(verify(&flipped[..], 2).is_err(), "bit {bit} of byte {at} flipped");
                }
            }
            let mut longer = good.clone();
            longer.push(0);
            assert!(matches!(verify(&longer[..], 2), Err(BackupError::Malformed(_))));
            assert_eq!(
                verify(&good[..], 3).unwrap_err(),
                BackupError::StoreFormat { found: 2, expected: 3 }
            );
        }
        assert_eq!(verify(&b"hello"[..], 2).unwrap_err(), BackupError::NotABackup);
        // A bit of a value: only the checksum can tell.
        let mut flipped = sample();
        flipped[MAGIC.len() + 14] ^= 1;
        assert_eq!(verify(&flipped[..], 2).unwrap_err(), BackupError::Checksum);
    }
}
