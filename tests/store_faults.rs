//! The store's guarantees and faults: acknowledged only after a flush, group commit, a
//! held directory, a corrupt store, unknown format versions, a format-1 store, a failing
//! disk, retention, coalescing within a group.

mod store_common;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::task::Context;
use std::time::Duration;

use futures_util::task::noop_waker_ref;
use futures_util::FutureExt;
use store_common::*;
use switchboard::core::{Change, EntryPoint, Presence, Queue, Rules};
use switchboard::engine::{Command, Engine, EngineOptions};
use switchboard::store::record::{encode, QueueV1};
use switchboard::store::sled::{prefix, META_FORMAT};
use switchboard::store::{SledOptions, SledStore, Store, StoreError};

const T0: u64 = 1_700_000_000_000;
const DAY: u64 = 24 * 60 * 60 * 1000;

fn queue_change(id: &str) -> Vec<Change> {
    vec![Change::Queue(Queue::new(id.into(), format!("Queue {id}")))]
}

/// A flush hook that stops the writer inside every flush until the test lets it go.
struct Gate {
    entered: Mutex<mpsc::Receiver<()>>,
    release: mpsc::Sender<()>,
}

fn gated() -> (SledOptions, Gate) {
    let (entered_tx, entered_rx) = mpsc::channel();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let entered_tx = Mutex::new(entered_tx);
    let release_rx = Mutex::new(release_rx);
    let options = SledOptions {
        before_flush: Some(Arc::new(move || {
            let _ = entered_tx.lock().unwrap().send(());
            let _ = release_rx.lock().unwrap().recv();
            Ok(())
        })),
        ..SledOptions::default()
    };
    let gate = Gate {
        entered: Mutex::new(entered_rx),
        release: release_tx,
    };
    (options, gate)
}

impl Gate {
    fn wait_entered(&self) {
        self.entered
            .lock()
            .unwrap()
            .recv_timeout(Duration::from_secs(10))
            .expect("the writer reaches its flush");
    }
}

fn is_ready<F: std::future::Future + Unpin>(f: &mut F) -> bool {
    f.poll_unpin(&mut Context::from_waker(noop_waker_ref())).is_ready()
}

/// Story: a commit is acknowledged only once its flush returned, and every commit that
/// arrives while a flush runs shares the next flush (group commit).
#[test]
fn acknowledged_only_after_flush_and_grouped() {
    let dir = tempfile::tempdir().unwrap();
    let (options, gate) = gated();
    let store = SledStore::open(dir.path(), options).unwrap();

    let mut first = store.commit(queue_change("q0"));
    gate.wait_entered();
    // Applied but not flushed: not acknowledged.
    assert!(!is_ready(&mut first), "acknowledged before its flush");
    assert_eq!(store.stats().flushes, 0);

    // Ten more arrive while that flush runs.
    let mut rest: Vec<_> = (1..=10).map(|i| store.commit(queue_change(&format!("q{i}")))).collect();
    gate.release.send(()).unwrap();
    let first_result = futures_executor_block_on(first);
    assert!(first_result.is_ok());
    assert_eq!(store.stats().flushes, 1);

    // They form one group: one more flush for all ten.
    gate.wait_entered();
    assert!(rest.iter_mut().all(|f| !is_ready(f)), "acknowledged before its flush");
    gate.release.send(()).unwrap();
    for f in rest {
        futures_executor_block_on(f).unwrap();
    }
    let stats = store.stats();
    assert_eq!((stats.commits, stats.flushes, stats.max_commits_per_flush), (11, 2, 10));
    assert_eq!(store.load().unwrap().queues.len(), 11);
}

/// Story: when one group rewrites the same record several times, only its last version
/// is written, and that is what comes back, also after a restart.
#[test]
fn a_group_keeps_the_last_version_of_each_record() {
    let dir = tempfile::tempdir().unwrap();
    let (options, gate) = gated();
    let store = SledStore::open(dir.path(), options).unwrap();
    let first = store.commit(queue_change("q0"));
    gate.wait_entered();

    // While that flush is held, one group builds up: q1 three times (twice within one
    // commit), the counters twice, q2 once.
    let named = |id: &str, name: &str| Change::Queue(Queue::new(id.into(), name.into()));
    let counters = |n: u64| Change::Counters {
        next_conversation: n,
        next_offer: n + 1,
        next_arrival: n + 2,
    };
    let group = vec![
        store.commit(vec![named("q1", "first"), counters(10)]),
        store.commit(vec![named("q2", "only")]),
        store.commit(vec![named("q1", "second"), named("q1", "third"), counters(20)]),
    ];
    gate.release.send(()).unwrap();
    futures_executor_block_on(first).unwrap();
    gate.wait_entered();
    gate.release.send(()).unwrap();
    for f in group {
        futures_executor_block_on(f).unwrap();
    }
    let stats = store.stats();
    assert_eq!((stats.flushes, stats.commits, stats.changes), (2, 4, 7));
    assert_eq!(stats.coalesced, 3, "two earlier versions of q1 and one of the counters");

    let check = |snap: switchboard::store::Snapshot| {
        let names: BTreeMap<_, _> = snap.queues.into_iter().map(|q| (q.id, q.name)).collect();
        assert_eq!(names["q1"], "third");
        assert_eq!(names["q2"], "only");
        assert_eq!(names.len(), 3);
        assert_eq!(snap.counters, (20, 21, 22));
    };
    check(store.load().unwrap());
    store.close();
    drop(store);
    check(open(dir.path()).load().unwrap());
}

/// Waits for a future on this thread (the store's futures need no runtime).
fn futures_executor_block_on<F: std::future::Future>(f: F) -> F::Output {
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    rt.block_on(f)
}

/// Story: commits resolve in the order they were made, and every one is in the store.
#[test]
fn commits_resolve_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SledStore::open(dir.path(), SledOptions::default()).unwrap());
    let order = Arc::new(Mutex::new(Vec::new()));
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    rt.block_on(async {
        let mut tasks = Vec::new();
        let local = tokio::task::LocalSet::new();
        for i in 0..200 {
            let f = store.commit(queue_change(&format!("q{i:03}")));
            let order = order.clone();
            tasks.push(local.spawn_local(async move {
                f.await.unwrap();
                order.lock().unwrap().push(i);
            }));
        }
        local
            .run_until(async {
                for t in tasks {
                    t.await.unwrap();
                }
            })
            .await;
    });
    let order = order.lock().unwrap().clone();
    assert_eq!(order, (0..200).collect::<Vec<_>>());
    assert_eq!(store.load().unwrap().queues.len(), 200);
    assert!(store.stats().flushes < 200, "{:?}", store.stats());
}

/// Story: a second engine pointed at a directory that a running engine holds refuses to
/// start and names the directory.
#[test]
fn a_held_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let first = SledStore::open(dir.path(), SledOptions::default()).unwrap();
    let err = SledStore::open(dir.path(), SledOptions::default()).unwrap_err();
    assert!(matches!(err, StoreError::Locked { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains(&dir.path().display().to_string()), "{text}");
    assert!(text.contains("another running engine"), "{text}");
    // Once the first lets go, the directory opens.
    first.close();
    SledStore::open(dir.path(), SledOptions::default()).unwrap();
}

fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    for e in walk(dir) {
        out.insert(e.display().to_string(), std::fs::read(&e).unwrap());
    }
    out
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// A store with a few records, closed.
fn filled(dir: &Path) {
    let store = SledStore::open(dir, SledOptions::default()).unwrap();
    for i in 0..50 {
        futures_executor_block_on(store.commit(queue_change(&format!("q{i}")))).unwrap();
    }
    store.close();
}

/// Story: a store whose files are garbage is refused with a clear error, and nothing in
/// the directory is changed.
#[test]
fn a_corrupt_store_is_refused_and_left_untouched() {
    for victim in ["db", "conf"] {
        let dir = tempfile::tempdir().unwrap();
        filled(dir.path());
        let path = dir.path().join(victim);
        let len = std::fs::metadata(&path).unwrap().len() as usize;
        let garbage: Vec<u8> = (0..len.max(64)).map(|i| (i * 7 + 13) as u8).collect();
        std::fs::write(&path, &garbage).unwrap();
        let before = files(dir.path());
        let err = SledStore::open(dir.path(), SledOptions::default()).unwrap_err();
        assert!(matches!(err, StoreError::Corrupt { .. }), "{victim}: {err:?} ({err})");
        assert!(err.to_string().contains(&dir.path().display().to_string()), "{err}");
        assert!(before == files(dir.path()), "{victim}: the corrupt store was modified");
    }
}

/// sled's segment size, from the store's `conf`.
fn segment_size(dir: &Path) -> u64 {
    let conf = std::fs::read(dir.join("conf")).unwrap();
    String::from_utf8_lossy(&conf)
        .lines()
        .find_map(|l| l.strip_prefix("segment_size: ").and_then(|n| n.trim().parse().ok()))
        .expect("segment size in conf")
}

/// Writes the first `kept` bytes of a 20-byte segment header at the start of segment
/// `index` of `db`, as a power cut leaves a header write it tore (the rest of the header
/// is what was there: zeros past the end of the file).
fn tear_header(dir: &Path, index: u64, kept: usize) {
    use std::io::{Seek, Write};
    let at = index * segment_size(dir);
    let mut db = std::fs::OpenOptions::new().write(true).open(dir.join("db")).unwrap();
    db.seek(std::io::SeekFrom::Start(at)).unwrap();
    let header: Vec<u8> = (0..kept).map(|i| 0xA5 ^ i as u8).collect();
    db.write_all(&header).unwrap();
}

/// Story: the power goes off while sled starts a new segment of its log, and keeps a
/// prefix of that segment's header: the store opens with everything acknowledged, as
/// sled skips the segment. Two such headers are more than a cut leaves, and are refused.
#[test]
fn a_torn_segment_header_opens_and_two_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    filled(dir.path());
    let len = std::fs::metadata(dir.path().join("db")).unwrap().len();
    let next = len.div_ceil(segment_size(dir.path()));
    tear_header(dir.path(), next, 9);
    let store = SledStore::open(dir.path(), SledOptions::default()).unwrap();
    assert_eq!(store.load().unwrap().queues.len(), 50);
    store.close();

    let dir = tempfile::tempdir().unwrap();
    filled(dir.path());
    let len = std::fs::metadata(dir.path().join("db")).unwrap().len();
    let next = len.div_ceil(segment_size(dir.path()));
    tear_header(dir.path(), next, 9);
    // (A header cut short by the end of the file is not one sled reads.)
    tear_header(dir.path(), next + 1, 20);
    let before = files(dir.path());
    let err = SledStore::open(dir.path(), SledOptions::default()).unwrap_err();
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");
    assert!(err.to_string().contains("2 of"), "{err}");
    assert!(before == files(dir.path()), "the refused store was modified");
}

/// Story: a directory that holds something else is not turned into a store.
#[test]
fn a_directory_that_is_not_a_store_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("notes.txt"), b"keep me").unwrap();
    let err = SledStore::open(dir.path(), SledOptions::default()).unwrap_err();
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");
    assert_eq!(walk(dir.path()).len(), 1);
}

/// Writes `value` under `key` of the records of kind `prefix` (see
/// `switchboard::store::sled::prefix`) with sled directly, as another build might have.
fn poke(dir: &Path, prefix: u8, key: &[u8], value: &[u8]) {
    let db = sled::Config::new().path(dir).open().unwrap();
    db.insert(prefixed(prefix, key), value).unwrap();
    db.flush().unwrap();
    drop(db);
    wait_for_lock(dir);
}

fn prefixed(prefix: u8, key: &[u8]) -> Vec<u8> {
    let mut k = vec![prefix];
    k.extend_from_slice(key);
    k
}

/// sled's helper threads may hold the lock a moment after a raw `Db` is dropped.
fn wait_for_lock(dir: &Path) {
    use fs2::FileExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(dir.join("db"))
        .unwrap();
    for _ in 0..500 {
        if file.try_lock_exclusive().is_ok() {
            FileExt::unlock(&file).unwrap();
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("sled keeps {} locked", dir.display());
}

/// Story: a record written by a newer format stops start-up with an error naming it.
#[test]
fn an_unknown_record_version_stops_start_up() {
    let dir = tempfile::tempdir().unwrap();
    filled(dir.path());
    let mut record = encode(&QueueV1 {
        id: "q-new".into(),
        name: "From the future".into(),
    });
    record[0] = 9;
    poke(dir.path(), prefix::QUEUES, b"q-new", &record);

    let store: Arc<dyn Store> = Arc::new(SledStore::open(dir.path(), SledOptions::default()).unwrap());
    let err = store.load().unwrap_err();
    assert!(matches!(err, StoreError::UnknownVersion { version: 9, .. }), "{err:?}");
    assert!(err.to_string().contains("queues/q-new"), "{err}");
    // The engine refuses to start on it.
    let sys = actix::System::new();
    let started = sys.block_on(async { Engine::start(EngineOptions::new(Rules::default(), store)).map(|_| ()) });
    assert!(started.is_err());
}

/// Story: a store laid out by a newer format is refused at open.
#[test]
fn an_unknown_store_format_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    filled(dir.path());
    poke(dir.path(), prefix::META, META_FORMAT, &[7]);
    let err = SledStore::open(dir.path(), SledOptions::default()).unwrap_err();
    assert!(matches!(err, StoreError::UnknownVersion { version: 7, .. }), "{err:?}");
    assert!(err.to_string().contains("meta/format"), "{err}");
}

/// Story: a directory written by a development build of store format 1 (one sled tree per
/// kind of record) is refused with a message that names the format and what to do, and
/// its records are left as they were.
#[test]
fn a_format_1_store_is_refused_and_left_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let queue = encode(&QueueV1 {
        id: "q1".into(),
        name: "Sales".into(),
    });
    {
        // Format 1 as it was written: the format byte in tree `meta`, records in a tree
        // of their kind.
        let db = sled::Config::new().path(dir.path()).open().unwrap();
        db.open_tree("meta").unwrap().insert("format", &[1]).unwrap();
        db.open_tree("queues").unwrap().insert("q1", queue.clone()).unwrap();
        db.flush().unwrap();
    }
    wait_for_lock(dir.path());

    let err = SledStore::open(dir.path(), SledOptions::default()).unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::OldFormat {
                format: 1,
                expected: 2,
                ..
            }
        ),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(
        text.contains(&dir.path().display().to_string())
            && text.contains("format 1")
            && text.contains("move the directory away"),
        "{text}"
    );
    wait_for_lock(dir.path());
    let db = sled::Config::new().path(dir.path()).open().unwrap();
    assert!(db.is_empty(), "nothing written in format 2");
    assert_eq!(db.open_tree("queues").unwrap().get("q1").unwrap().unwrap(), queue[..]);
    assert_eq!(db.open_tree("meta").unwrap().get("format").unwrap().unwrap(), [1][..]);
}

/// A sled store whose flushes fail (as on a full disk) while the returned switch is on.
fn failing_store(dir: &Path) -> (Arc<SledStore>, Arc<AtomicBool>) {
    let fail = Arc::new(AtomicBool::new(false));
    let f = fail.clone();
    let options = SledOptions {
        before_flush: Some(Arc::new(move || {
            if f.load(Ordering::SeqCst) {
                Err("no space left on device (injected)".into())
            } else {
                Ok(())
            }
        })),
        ..SledOptions::default()
    };
    (Arc::new(SledStore::open(dir, options).unwrap()), fail)
}

/// Story: the disk fails (full) at run time: the operation is answered with an error, the
/// engine reports itself unhealthy and refuses further changes; what was acknowledged
/// before is still there after a restart.
#[test]
fn a_failing_write_makes_the_engine_unhealthy() {
    let dir = tempfile::tempdir().unwrap();
    let (store, fail) = failing_store(dir.path());
    let s = store.clone();
    engine_life(move || async move {
        let e = start(&s, Rules::default(), TestClock::at(T0));
        e.create_queue("q1", "Sales").await.unwrap();
        e.create_agent("a1", "Ann", &["q1"], 1).await.unwrap();
        assert!(e.healthy());
        fail.store(true, Ordering::SeqCst);
        let err = e.set_state("a1", Presence::Available, None).await.unwrap_err();
        assert_eq!(err.code(), "store_unavailable", "{err}");
        assert!(!e.healthy());
        fail.store(false, Ordering::SeqCst);
        // Refused even though the disk is back: memory may be ahead of the store.
        assert!(e.create_queue("q2", "Support").await.is_err());
    });
    assert!(store.stats().failed);
    store.close();
    drop(store);

    let store = open(dir.path());
    let snap = store.load().unwrap();
    assert_eq!(snap.queues.len(), 1);
    assert_eq!(snap.agents.len(), 1);
}

/// Story: a token is issued or reissued in a commit that fails. The new credential never
/// works (the store does not have it) and the old one still does (the store still has it):
/// the credential index follows only what is durable.
#[test]
fn a_credential_works_only_once_durable() {
    let agent = |id: &str| switchboard::core::Principal::Agent(id.into());
    let dir = tempfile::tempdir().unwrap();
    let (store, fail) = failing_store(dir.path());
    let s = store.clone();
    engine_life(move || async move {
        let e = start(&s, Rules::default(), TestClock::at(T0));
        e.create_queue("q1", "Sales").await.unwrap();
        let create = |id: &str, credential: &str| Command::CreateAgent {
            id: id.into(),
            name: id.into(),
            queues: vec!["q1".into()],
            capacity: None,
            credential: Some(credential.into()),
            password_hash: None,

            skills: Default::default(),
        };
        e.exec(create("a1", "old-hash")).await.unwrap();
        assert_eq!(e.principal_for("old-hash", T0).unwrap(), Some(agent("a1")));
        fail.store(true, Ordering::SeqCst);
        let reissue = Command::SetCredential {
            account: switchboard::core::AccountRef::agent("a1"),
            credential: "new-hash".into(),
        };
        assert_eq!(e.exec(reissue).await.unwrap_err().code(), "store_unavailable");
        assert_eq!(e.principal_for("new-hash", T0).unwrap(), None);
        assert_eq!(e.principal_for("old-hash", T0).unwrap(), Some(agent("a1")));
        assert!(e.exec(create("a2", "a2-hash")).await.is_err());
        assert_eq!(e.principal_for("a2-hash", T0).unwrap(), None);
    });
    store.close();
    drop(store);
    // The failed reissue is in doubt on disk (the injected fault fails the flush after sled
    // took the batch), as any unacknowledged write is; the refused agent never got that far.
    let snap = open(dir.path()).load().unwrap();
    assert_eq!(snap.agents.len(), 1);
}

/// Story: ended conversations are removed once older than the retention period, with
/// their messages; those still owed a wrap-up, and open ones, stay.
#[test]
fn retention_removes_old_ended_conversations() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let s = store.clone();
    engine_life(move || async move {
        let e = start(&s, Rules::default(), TestClock::at(T0));
        e.create_queue("q1", "Sales").await.unwrap();
        e.create_entry_point(EntryPoint {
            id: "ep1".into(),
            name: "Page".into(),
            queue: "q1".into(),
            page_id: None,
            page_access_token: None,

            ..Default::default()
        })
        .await
        .unwrap();
        e.create_agent("a1", "Ann", &["q1"], 3).await.unwrap();
        e.set_state("a1", Presence::Available, None).await.unwrap();
        for (n, cust) in ["x", "y", "z"].iter().enumerate() {
            let c = e.customer_message("ep1", cust, "Cust", "hello").await.unwrap();
            assert_eq!(c.id, format!("c-{}", n + 1));
            e.accept("a1", &c.id).await.unwrap();
            e.send("a1", &c.id, "hi there").await.unwrap();
        }
        // c-1: ended and wrapped up. c-2: ended, wrap-up owed. c-3: still active.
        e.end("a1", "c-1").await.unwrap();
        e.wrapup("a1", "c-1", "resolved").await.unwrap();
        e.end("a1", "c-2").await.unwrap();
    });

    assert_eq!(store.sweep(T0 + 29 * DAY).unwrap(), 0, "too young to go");
    assert_eq!(store.sweep(T0 + 31 * DAY).unwrap(), 1);
    assert_eq!(store.sweep(T0 + 31 * DAY).unwrap(), 0, "a sweep is idempotent");
    assert_eq!(store.stats().swept, 1);
    let ids: Vec<_> = store.load().unwrap().conversations.into_iter().map(|c| c.id).collect();
    assert_eq!(ids, ["c-2", "c-3"]);
    store.close();
    drop(store);

    // Nothing of c-1 is left on disk, messages included.
    let db = sled::Config::new().path(dir.path()).open().unwrap();
    let c1 = prefixed(prefix::MESSAGES, &switchboard::store::record::message_prefix("c-1"));
    assert_eq!(db.scan_prefix(c1).count(), 0);
    assert_eq!(
        db.scan_prefix([prefix::MESSAGES]).count(),
        4,
        "c-2 and c-3 keep their transcripts"
    );
    assert_eq!(db.scan_prefix([prefix::ENDED]).count(), 1, "c-2 stays indexed");
    assert!(db.get(prefixed(prefix::CONVERSATIONS, b"c-1")).unwrap().is_none());
    drop(db);
    wait_for_lock(dir.path());

    // The engine restarts on what is left with every invariant holding.
    let store = open(dir.path());
    engine_life(move || async move {
        let e = start(&store, Rules::default(), TestClock::at(T0 + 31 * DAY));
        assert_eq!(e.violations().await.unwrap(), Vec::<String>::new());
        assert!(e.conversation("c-1").await.unwrap().is_none());
        e.wrapup("a1", "c-2", "resolved").await.unwrap();
    });
}

/// Story: with retention off, nothing is swept.
#[test]
fn retention_off_keeps_everything() {
    let dir = tempfile::tempdir().unwrap();
    let options = SledOptions {
        retain_ended: None,
        ..SledOptions::default()
    };
    let store = SledStore::open(dir.path(), options).unwrap();
    assert_eq!(store.sweep(u64::MAX).unwrap(), 0);
}

/// Every file and directory under `dir` (not following links), with its mode.
#[cfg(unix)]
fn modes_under(dir: &Path) -> Vec<(std::path::PathBuf, u32)> {
    use std::os::unix::fs::PermissionsExt;
    let mut out = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let entry = entry.unwrap();
            let meta = std::fs::symlink_metadata(entry.path()).unwrap();
            out.push((entry.path(), meta.permissions().mode()));
            if meta.is_dir() {
                pending.push(entry.path());
            }
        }
    }
    out
}

/// Asserts `dir` is 0700 and nothing under it is open to group or others.
#[cfg(unix)]
#[track_caller]
fn assert_private(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dir).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700, "{} is {mode:o}", dir.display());
    let files = modes_under(dir);
    assert!(!files.is_empty(), "the store wrote its files");
    for (path, mode) in files {
        assert_eq!(mode & 0o077, 0, "{} is {:o}", path.display(), mode & 0o777);
    }
}

/// Another user of the machine cannot read transcripts or credential hashes: a new store
/// directory is made 0700, one left open to others (by hand, or by an older version) is
/// tightened when the engine opens it, files included, and a restore writes the same way.
#[cfg(unix)]
#[test]
fn store_files_are_not_readable_by_other_users() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("parent").join("store");
    let store = SledStore::open(&path, SledOptions::default()).unwrap();
    futures_executor_block_on(store.commit(queue_change("q1"))).unwrap();
    assert_private(&path);
    store.close();

    // Opened up by hand, as an operator's `cp -r` or an older version would leave it.
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    for (file, mode) in modes_under(&path) {
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(mode | 0o044)).unwrap();
    }
    let store = SledStore::open(&path, SledOptions::default()).unwrap();
    assert_private(&path);
    let backup = futures_executor_block_on(async {
        let mut stream = store.backup().await.unwrap();
        let mut file = Vec::new();
        while let Some(chunk) = stream.next_chunk().await {
            file.extend_from_slice(&chunk.unwrap());
        }
        file
    });
    store.close();

    let file = dir.path().join("the.backup");
    std::fs::write(&file, backup).unwrap();
    let restored = dir.path().join("restored");
    switchboard::store::sled::restore(&file, &restored).unwrap();
    assert_private(&restored);
}
