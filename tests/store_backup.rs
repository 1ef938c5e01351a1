//! The streaming backup at the store's level (docs/STORE.md "Backup"): what a backup holds
//! is the store at the backup's point in time, whatever is written, overwritten or removed
//! while it is read; a reader that stops midway leaves nothing behind; restore refuses a
//! damaged file and leaves its target as it found it.

use std::path::Path;
use std::sync::Arc;

use switchboard::core::Change;
use switchboard::store::{SledOptions, SledStore, Store, StoreError};

/// Now, for the Messenger ids' retention (7 days).
const NOW: u64 = 1_700_000_000_000;
const DAY: u64 = 24 * 60 * 60 * 1000;
/// Records before the backup: enough that the file is many times what the backup reads
/// ahead of its client (about 1.25 MiB), so that the writes below land mid-read.
const MIDS: usize = 20_000;
const NAMES: usize = 2_000;

fn open(dir: &Path) -> Arc<SledStore> {
    Arc::new(SledStore::open(dir, SledOptions::default()).expect("store opens"))
}

/// A long Messenger id, so the store is a few MB; `i` in a scrambled order, so that old and
/// recent ids interleave across the key space.
fn mid(i: usize) -> String {
    format!("{:08x}-{}", (i as u32).wrapping_mul(2_654_435_761), "m".repeat(120))
}

fn name(customer: usize, version: &str) -> Change {
    Change::CustomerName {
        page_id: "page".into(),
        customer: format!("u{customer:05}"),
        name: format!("{version} {}", "n".repeat(200)),
    }
}

fn counters(n: u64) -> Change {
    Change::Counters {
        next_conversation: n,
        next_offer: n,
        next_arrival: n,
    }
}

/// Reads a whole backup stream; `Err` if it ended with one.
async fn collect(mut stream: switchboard::store::BackupStream) -> Result<Vec<u8>, StoreError> {
    let mut file = Vec::new();
    while let Some(chunk) = stream.next_chunk().await {
        file.extend_from_slice(&chunk?);
    }
    Ok(file)
}

/// Asks for a backup until the one before has let go (its reader thread ends as soon as it
/// sees its client gone; a few milliseconds).
async fn backup_when_free(store: &SledStore) -> switchboard::store::BackupStream {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match store.backup().await {
            Ok(s) => return s,
            Err(StoreError::Busy(_)) if std::time::Instant::now() < deadline => tokio::task::yield_now().await,
            Err(e) => panic!("backup: {e}"),
        }
    }
}

/// Story: an operator takes a backup while the engine keeps writing: records overwritten,
/// records added, and records removed by retention, some behind and some ahead of where
/// the backup is reading. The restored store is exactly the store at the backup's point:
/// every old record with its old value, the removed ones still there, none of the new ones,
/// and the counters of that moment; the live store has all the changes.
#[tokio::test]
async fn a_backup_is_the_store_at_its_point_whatever_is_written_while_it_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir.path().join("store"));
    // Half the ids are old enough for retention to remove them.
    let before: Vec<Change> = (0..MIDS)
        .map(|i| Change::Mid {
            mid: mid(i),
            at: if i % 2 == 0 { NOW - 30 * DAY } else { NOW },
        })
        .chain((0..NAMES).map(|c| name(c, "v0")))
        .chain([counters(7)])
        .collect();
    for group in before.chunks(1000) {
        store.commit(group.to_vec()).await.expect("commit");
    }

    let mut stream = store.backup().await.expect("backup");
    let first = stream.next_chunk().await.expect("a first chunk").expect("read");
    // The backup is being read: overwrite every name, add ids, move the counters, and let
    // retention remove the old ids.
    let during: Vec<Change> = (0..NAMES)
        .map(|c| name(c, "v1"))
        .chain((MIDS..MIDS + 2_000).map(|i| Change::Mid { mid: mid(i), at: NOW }))
        .chain([counters(9)])
        .collect();
    for group in during.chunks(500) {
        store.commit(group.to_vec()).await.expect("commit during the backup");
    }
    assert_eq!(store.sweep(NOW).expect("sweep"), 0, "no conversations to sweep");
    assert!(!store.mid_seen(&mid(0)).unwrap(), "retention removed the old ids");
    let mut file = first;
    file.extend_from_slice(&collect(stream).await.expect("the rest of the backup"));

    let path = dir.path().join("b.backup");
    std::fs::write(&path, &file).unwrap();
    let restored = dir.path().join("restored");
    let n = switchboard::store::sled::restore(&path, &restored).expect("restore");
    // Every id (two records each), every name, the counters, the format record and the
    // mark of the index of records by customer.
    assert_eq!(n as usize, 2 * MIDS + NAMES + 3);
    let r = open(&restored);
    for i in 0..MIDS {
        assert!(r.mid_seen(&mid(i)).unwrap(), "id {i} is missing from the backup");
    }
    for i in MIDS..MIDS + 2_000 {
        assert!(!r.mid_seen(&mid(i)).unwrap(), "id {i} came after the point");
    }
    for c in 0..NAMES {
        let got = r.customer_name("page", &format!("u{c:05}")).unwrap().unwrap();
        assert!(got.starts_with("v0 "), "customer {c}: {got}");
        let live = store.customer_name("page", &format!("u{c:05}")).unwrap().unwrap();
        assert!(live.starts_with("v1 "), "customer {c} live: {live}");
    }
    assert_eq!(r.load().unwrap().counters, (7, 7, 7));
    assert_eq!(store.load().unwrap().counters, (9, 9, 9));
}

/// Story: the client of a backup goes away after the first chunk. The store goes on
/// accepting commits, the reader lets go of everything it held, and the next backup works
/// and holds the store as it is then.
#[tokio::test]
async fn a_backup_dropped_midway_leaves_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir.path().join("store"));
    let first: Vec<Change> = (0..MIDS).map(|i| Change::Mid { mid: mid(i), at: NOW }).collect();
    for group in first.chunks(1000) {
        store.commit(group.to_vec()).await.expect("commit");
    }
    let mut stream = store.backup().await.expect("backup");
    stream.next_chunk().await.expect("a chunk").expect("read");
    // While it is being read, a second one is refused, not queued.
    assert!(matches!(store.backup().await, Err(StoreError::Busy(_))));
    drop(stream);
    store
        .commit(vec![Change::Mid {
            mid: mid(MIDS),
            at: NOW,
        }])
        .await
        .expect("commits go on");
    let file = collect(backup_when_free(&store).await).await.expect("a later backup");
    let records = switchboard::store::backup::decode(&file, switchboard::store::sled::STORE_FORMAT).unwrap();
    // Two records an id, the format record and the mark of the index by customer.
    assert_eq!(records.len(), 2 * (MIDS + 1) + 2);
}

/// Story: an operator restores a backup that was cut short, and one with a bit flipped in
/// the middle: both are refused with the reason, and the target directory is left as it
/// was (absent stays absent, empty stays empty). A backup of the earlier file layout
/// (format 1) still restores.
#[tokio::test]
async fn a_damaged_backup_is_refused_and_the_target_left_empty() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir.path().join("store"));
    let records: Vec<Change> = (0..2_000).map(|i| Change::Mid { mid: mid(i), at: NOW }).collect();
    store.commit(records).await.expect("commit");
    let file = collect(store.backup().await.expect("backup")).await.expect("read");
    let restore = |bytes: &[u8], target: &Path| {
        let path = dir.path().join("damaged.backup");
        std::fs::write(&path, bytes).unwrap();
        switchboard::store::sled::restore(&path, target)
    };
    let mut flipped = file.clone();
    flipped[file.len() / 2] ^= 0x10;
    let cut = &file[..file.len() - 100];
    for (what, bytes, reason) in [("truncated", cut, "truncated"), ("bit-flipped", &flipped[..], "")] {
        let absent = dir.path().join(format!("absent-{what}"));
        let err = restore(bytes, &absent).expect_err(what).to_string();
        assert!(err.contains(reason) && err.contains("backup"), "{what}: {err}");
        assert!(!absent.exists(), "{what}: the absent target was created");
        let empty = dir.path().join(format!("empty-{what}"));
        std::fs::create_dir(&empty).unwrap();
        restore(bytes, &empty).expect_err(what);
        assert_eq!(
            std::fs::read_dir(&empty).unwrap().count(),
            0,
            "{what}: left files behind"
        );
    }

    // Format 1: the same records, the count in the header.
    let decoded = switchboard::store::backup::decode(&file, switchboard::store::sled::STORE_FORMAT).unwrap();
    let mut old = Vec::new();
    old.extend_from_slice(switchboard::store::backup::MAGIC);
    old.extend_from_slice(&[1, switchboard::store::sled::STORE_FORMAT]);
    old.extend_from_slice(&(decoded.len() as u64).to_le_bytes());
    for (k, v) in &decoded {
        old.extend_from_slice(&(k.len() as u32).to_le_bytes());
        old.extend_from_slice(k);
        old.extend_from_slice(&(v.len() as u32).to_le_bytes());
        old.extend_from_slice(v);
    }
    use sha2::Digest;
    let sum = sha2::Sha256::digest(&old);
    old.extend_from_slice(&sum);
    let target = dir.path().join("from-format-1");
    assert_eq!(restore(&old, &target).expect("format 1") as usize, decoded.len());
    assert!(open(&target).mid_seen(&mid(1_999)).unwrap());
}

/// The peak resident memory of a child that ran to its end, in KiB, and whether it
/// succeeded (Linux: `wait4`'s own accounting of that child alone).
#[cfg(target_os = "linux")]
#[allow(clippy::zombie_processes)] // reaped by `wait4` below, which `Child::wait` cannot replace
fn run_measured(cmd: &mut std::process::Command) -> (bool, u64) {
    let child = cmd
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start the switchboard binary");
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value to be filled in.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waits for our own child, whose pid `spawn` returned and nothing reaped yet.
    let pid = unsafe { libc::wait4(child.id() as libc::pid_t, &mut status, 0, &mut usage) };
    assert_eq!(pid, child.id() as libc::pid_t, "wait4");
    (
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        usage.ru_maxrss as u64,
    )
}

/// Story: an operator restores a backup much larger than sled's cache. `switchboard
/// restore` stays within a bound that does not grow with the file: sled 0.34 kept every
/// copy of the nodes a large batch wrote until long after (about twenty times what was
/// written, 1 GiB for this file); the vendored sled now collects them after each batch
/// (vendor/sled/README.switchboard.md). The bound is generous (several times what the
/// restore needs) so that it only fails when memory grows with the file again.
#[cfg(target_os = "linux")]
#[tokio::test]
async fn a_restore_much_larger_than_the_cache_stays_within_a_bound() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir.path().join("store"));
    store.commit(vec![counters(7)]).await.expect("commit");
    let small = collect(store.backup().await.expect("backup")).await.expect("read");
    let records = switchboard::store::backup::decode(&small, switchboard::store::sled::STORE_FORMAT).unwrap();
    // The store's own records, then 48 MB of others after every prefix the store uses.
    let path = dir.path().join("large.backup");
    let mut file = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    let mut out = Vec::new();
    let mut enc = switchboard::store::backup::Encoder::new(switchboard::store::sled::STORE_FORMAT, &mut out);
    for (k, v) in &records {
        enc.entry(k, v, &mut out).unwrap();
    }
    let filler = 400_000u64;
    for i in 0..filler {
        let key = format!(
            "\u{7f}filler/{:012}/{}",
            i.wrapping_mul(2_654_435_761) % 1_000_000_000_007,
            i % 5
        );
        let value = vec![(i % 251) as u8; 90 + (i % 60) as usize];
        enc.entry(key.as_bytes(), &value, &mut out).unwrap();
        if out.len() > 1 << 20 {
            file.write_all(&out).unwrap();
            out.clear();
        }
    }
    enc.finish(&mut out);
    file.write_all(&out).unwrap();
    file.into_inner().unwrap().sync_all().unwrap();
    assert!(std::fs::metadata(&path).unwrap().len() > 48 << 20);

    let target = dir.path().join("restored");
    let (ok, peak_kib) = run_measured(
        std::process::Command::new(env!("CARGO_BIN_EXE_switchboard"))
            .args(["restore", "--from"])
            .arg(&path)
            .arg("--store-path")
            .arg(&target),
    );
    assert!(ok, "restore failed");
    eprintln!(
        "restore of a {} MiB backup peaked at {} MiB",
        std::fs::metadata(&path).unwrap().len() >> 20,
        peak_kib >> 10
    );
    assert!(peak_kib < 400 << 10, "restore peaked at {} MiB", peak_kib >> 10);
    let restored = open(&target);
    assert!(restored.mid_seen("none").is_ok());
}
