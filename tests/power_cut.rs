//! Power-cut test: the real `switchboard` binary runs on a filesystem with a volatile
//! write cache (`tests/powercut_fs`, FUSE), under a write burst from agents, REST
//! customers, Messenger customers (through the webhook, with the Graph API down so
//! that the agents' answers wait in the outbox) and online backups (`switchboard backup`
//! into the same filesystem). At a random moment the power goes: the server and any
//! backup client are killed with SIGKILL (so no write races the cut), everything not
//! fsynced is thrown away (file data, and the entries of files created, renamed or
//! removed in a directory that was not fsynced since), the filesystem is mounted again
//! and the server restarted on what survived. Then:
//!
//! - the store opens without a manual repair (the server starts and listens);
//! - every acknowledged message, presence change and wrap-up is there, transcripts are in
//!   order, and the invariants the API shows hold (as in `tests/crash_recovery.rs`);
//! - every acknowledged agent answer in a Messenger conversation is still in the outbox or
//!   already sent: once the Graph API is back, each reaches it;
//! - every backup that `switchboard backup` reported done is a whole file, and now and
//!   then one is restored into the same filesystem, the power cut again, and a server
//!   started on the restored store shows every message acknowledged before the backup
//!   began.
//!
//! A cut falls anywhere, inside a group commit (the filesystem stops answering fsyncs, so
//! the log is written and its fsync never returns while commits queue behind it), or as
//! sled's log moves into a new 512 KiB segment (the same, from the first write of a
//! segment on). Half the cuts drop everything unsynced; the other half keep a random prefix of each
//! file's unsynced writes, the last one torn at a random byte (`CutMode::Torn`).
//!
//! Run it: `cargo test --test power_cut` (a short run, `POWERCUT_CYCLES` defaults to 4);
//! `POWERCUT_CYCLES=1000 cargo test --test power_cut -- --nocapture` for the
//! long run (it starts over on a new store every `POWERCUT_EPOCH` cuts, 50 by default, so
//! that each check stays quick); `POWERCUT_SEED=S` replays a schedule (the cut moments,
//! the cut modes, the torn prefixes and the workload's choices; the server's own timing
//! is not replayable).
//! Needs `/dev/fuse` and root (or Debian's `fuse3` for `fusermount3`); without them the
//! test is skipped with a loud message, unless `CI` is set: then it fails.
//!
//! The check that it can fail: with sled's log-write fdatasync taken out again, or the
//! fsync of the store directory at open, the first cut already loses acknowledged
//! messages (docs/STORE.md, "Power cuts", has the runs).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;
use switchboard::channels::messenger::fake_graph::{FakeGraph, Scripted};

mod common;
mod crash_common;
mod messenger_common;
mod powercut_fs;
use common::{Process, ADMIN};
use crash_common::{agent_loop, call, customer_loop, lock, verify, Ledger, Shared};
use messenger_common::{messenger_env, page_event, signature, text, PAGE_TOKEN};
use powercut_fs::{CutMode, PowerCutFs, Stall};

const AGENTS: usize = 6;
/// The Messenger page of the test's own entry point.
const PAGE: &str = "200000000000002";
/// sled 0.34's default segment size (the `conf` file says so), to count the cuts that
/// came while the log was moving into a new segment.
const SEGMENT: u64 = 512 * 1024;

/// Stops the test: a skip (loud) on a developer machine, a failure in CI.
fn missing(what: &str) {
    if std::env::var_os("CI").is_some() {
        panic!("power-cut test: {what} (CI is set, so this is a failure; .ci/run installs fuse3)");
    }
    eprintln!("\n=====================================================================");
    eprintln!("SKIPPED: the power-cut test did not run: {what}.");
    eprintln!("It needs /dev/fuse and root, or `apt-get install -y fuse3` for fusermount3.");
    eprintln!("=====================================================================\n");
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// The server's environment: long offer deadlines (presence changes only by requests),
/// Messenger on against the fake Graph API, slow retries while it is down.
fn server_env(graph_url: &str) -> Vec<(String, String)> {
    let mut env = messenger_env(graph_url);
    env.retain(|(k, _)| !k.contains("BACKOFF"));
    env.push(("SWITCHBOARD_MESSENGER__SEND_BACKOFF_BASE_MS".into(), "50".into()));
    env.push(("SWITCHBOARD_MESSENGER__SEND_BACKOFF_MAX_MS".into(), "500".into()));
    env.push(("SWITCHBOARD_ROUTING__OFFER_TIMEOUT_MS".into(), "600000".into()));
    env
}

fn start(dir: &Path, env: &[(String, String)]) -> Process {
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    Process::start(dir, &env)
}

/// Messenger customers writing to the page: new conversations and follow-ups, through
/// the signed webhook. (Their messages are not in the ledger: the webhook answers no
/// conversation; the agents' answers to them are.)
async fn messenger_loop(base: String, seed: u64, cycle: usize) {
    let client = awc::Client::builder().timeout(Duration::from_secs(10)).finish();
    let mut rng = StdRng::seed_from_u64(seed);
    for n in 0.. {
        let psid = format!("9{:015}", rng.gen_range(0..20));
        let mut event = text(&psid, &format!("m-{cycle}-{n}-{seed}"), &format!("{psid} asks {n}"));
        event["recipient"]["id"] = json!(PAGE);
        let body = page_event(&[(PAGE, vec![event])]).to_string();
        let sent = client
            .post(format!("{base}/webhooks/messenger"))
            .insert_header(("content-type", "application/json"))
            .insert_header(("x-hub-signature-256", signature(body.as_bytes())))
            .send_body(body)
            .await;
        if sent.is_err() {
            return;
        }
        actix_rt::time::sleep(Duration::from_millis(rng.gen_range(5..50))).await;
    }
}

/// A backup that `switchboard backup` reported done, and the messages acknowledged
/// before it was asked for.
struct Backup {
    file: PathBuf,
    before: Vec<((String, u64), String)>,
}

/// Online backups into the cut filesystem, one after another, with `switchboard backup`.
/// The pids of running clients go to `running` so that the cut can kill them too.
async fn backup_loop(
    base: String,
    dir: PathBuf,
    ledger: Shared,
    done: Arc<Mutex<Vec<Backup>>>,
    running: Arc<Mutex<Vec<u32>>>,
    cycle: usize,
) {
    for n in 0.. {
        let before: Vec<_> = lock(&ledger)
            .messages
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let file = dir.join(format!("backup-{cycle}-{n}.sbk"));
        let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_switchboard"))
            .arg("backup")
            .arg("--to")
            .arg(&file)
            .arg("--url")
            .arg(format!("{base}/api/v1/admin/backup"))
            .arg("--token")
            .arg(ADMIN)
            .env("RUST_LOG", "error")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn();
        let Ok(mut child) = child else { return };
        if let Some(pid) = child.id() {
            running.lock().unwrap_or_else(|p| p.into_inner()).push(pid);
        }
        let status = child.wait().await;
        if let Some(pid) = child.id() {
            running.lock().unwrap_or_else(|p| p.into_inner()).retain(|p| *p != pid);
        }
        match status {
            Ok(s) if s.success() => done
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(Backup { file, before }),
            _ => return,
        }
    }
}

/// Waits until every text in `expected` was accepted by the fake Graph API.
async fn outbox_delivered(fake: &FakeGraph, expected: &[String]) {
    let arrived = |r: &[switchboard::channels::messenger::fake_graph::Received]| {
        let sent: std::collections::HashSet<&str> = r
            .iter()
            .filter(|r| r.method == "POST" && r.path.ends_with("/me/messages") && r.answered == 200)
            .filter_map(|r| r.body["message"]["text"].as_str())
            .collect();
        expected.iter().filter(|t| !sent.contains(t.as_str())).count()
    };
    let received = fake.wait_until(Duration::from_secs(30), |r| arrived(r) == 0).await;
    let missing = arrived(&received);
    assert_eq!(
        missing,
        0,
        "{missing} of {} acknowledged Messenger answers never reached the Graph API: their outbox entries were lost",
        expected.len()
    );
}

/// A server on a new store in `data`, with the test's agents (their tokens) and the
/// Messenger entry point.
async fn fresh(data: &Path, env: &[(String, String)], client: &awc::Client) -> (Process, Vec<(String, String)>) {
    let engine = start(data, env);
    let mut tokens = Vec::new();
    for i in 0..AGENTS {
        let id = format!("a{i}");
        let body = json!({"id": id, "name": format!("Agent {i}"), "queues": ["support"], "capacity": 1 + i % 3});
        let (status, a) = call(
            client,
            "POST",
            &format!("{}/api/v1/agents", engine.base),
            ADMIN,
            Some(body),
        )
        .await
        .expect("create agent");
        assert_eq!(status, 201, "{a}");
        tokens.push((id, a["token"].as_str().expect("token").to_string()));
    }
    let body =
        json!({"id": "acme", "name": "Acme", "queue": "support", "page_id": PAGE, "page_access_token": PAGE_TOKEN});
    let (status, v) = call(
        client,
        "POST",
        &format!("{}/api/v1/entry-points", engine.base),
        ADMIN,
        Some(body),
    )
    .await
    .expect("create entry point");
    assert_eq!(status, 201, "{v}");

    (engine, tokens)
}

/// Where a cut was aimed.
#[derive(Debug, Clone, Copy)]
enum Moment {
    Anywhere,
    GroupCommit,
    Rollover,
}

/// What the run saw, for its summary.
#[derive(Default)]
struct Tally {
    cuts: usize,
    torn: usize,
    anywhere: usize,
    in_group_commit: usize,
    in_rollover: usize,
    with_unsynced_log: usize,
    during_backup: usize,
    bytes_dropped: u64,
    entries_reverted: usize,
    restores_checked: usize,
    backups_checked: usize,
}

impl Tally {
    fn summary(&self) -> String {
        format!(
            "{} cuts ({} torn, {} dropping everything unsynced): {} anywhere, {} inside a group commit, \
             {} at a segment rollover; {} with unsynced log writes; {} during an online backup; \
             {} unsynced bytes dropped, {} directory entries reverted; {} backups checked whole, \
             {} restored and cut again",
            self.cuts,
            self.torn,
            self.cuts - self.torn,
            self.anywhere,
            self.in_group_commit,
            self.in_rollover,
            self.with_unsynced_log,
            self.during_backup,
            self.bytes_dropped,
            self.entries_reverted,
            self.backups_checked,
            self.restores_checked
        )
    }
}

/// Acknowledged changes survive power cuts at random moments, and the store opens on
/// what the disk kept.
#[actix_rt::test]
async fn nothing_acknowledged_is_lost_across_power_cuts() {
    if let Some(why) = powercut_fs::unavailable() {
        return missing(&why);
    }
    let cycles: usize = env_or("POWERCUT_CYCLES", 4);
    // Cuts on one store before the next starts over (see below).
    let epoch: usize = env_or("POWERCUT_EPOCH", 50).max(1);
    let seed: u64 = env_or("POWERCUT_SEED", rand::random());
    eprintln!("power-cut test seed {seed} (replay the schedule with POWERCUT_SEED={seed})");
    let mut rng = StdRng::seed_from_u64(seed);
    let tmp = tempfile::tempdir().expect("temp dir");
    let mnt = tmp.path().join("mnt");
    std::fs::create_dir(&mnt).expect("mountpoint");
    let mut fs = match PowerCutFs::mount(&mnt) {
        Ok(fs) => fs,
        Err(e) => return missing(&format!("cannot mount a FUSE filesystem at {}: {e}", mnt.display())),
    };
    // The test's own directories are made durable by hand: only the engine is under test.
    let data = mnt.join("data");
    let backups = mnt.join("backups");
    std::fs::create_dir(&backups).expect("backups dir");
    std::fs::File::open(&mnt)
        .and_then(|d| d.sync_all())
        .expect("fsync mount root");

    let mut fake = FakeGraph::start().await.expect("fake graph");
    let down = || Scripted::Status(503, r#"{"error":{"message":"down","code":2}}"#.into());
    fake.fail_all(down());
    let mut env = server_env(&fake.url());
    let ledger: Shared = Arc::new(Mutex::new(Ledger::default()));
    let client = awc::Client::default();
    let (mut engine, mut tokens) = fresh(&data, &env, &client).await;
    let mut tally = Tally::default();
    let mut restored = 0;
    for cycle in 0..cycles {
        if cycle > 0 && cycle % epoch == 0 {
            // A long run starts over on a new store now and then, so that checking
            // everything acknowledged so far stays quick.
            engine.kill();
            std::fs::remove_dir_all(&data).expect("remove the store");
            std::fs::File::open(&mnt).and_then(|d| d.sync_all()).expect("fsync");
            *lock(&ledger) = Ledger::default();
            // A new fake Graph API too: it keeps every request it saw, failed sends
            // included, and the outbox check reads them all.
            fake = FakeGraph::start().await.expect("fake graph");
            fake.fail_all(down());
            env = server_env(&fake.url());
            (engine, tokens) = fresh(&data, &env, &client).await;
        }
        let done: Arc<Mutex<Vec<Backup>>> = Arc::default();
        let running: Arc<Mutex<Vec<u32>>> = Arc::default();
        let mut tasks = Vec::new();
        for (i, (id, token)) in tokens.iter().enumerate() {
            let task = agent_loop(
                engine.base.clone(),
                id.clone(),
                token.clone(),
                ledger.clone(),
                rng.gen::<u64>() ^ i as u64,
            );
            tasks.push(actix_rt::spawn(task));
        }
        tasks.push(actix_rt::spawn(customer_loop(
            engine.base.clone(),
            ledger.clone(),
            rng.gen(),
            cycle,
        )));
        tasks.push(actix_rt::spawn(messenger_loop(engine.base.clone(), rng.gen(), cycle)));
        if rng.gen_bool(0.5) {
            tasks.push(actix_rt::spawn(backup_loop(
                engine.base.clone(),
                backups.clone(),
                ledger.clone(),
                done.clone(),
                running.clone(),
                cycle,
            )));
        }
        actix_rt::time::sleep(Duration::from_millis(rng.gen_range(300..1500))).await;
        // Where the cut falls: anywhere (the processes die first, so often between two
        // flushes), in the middle of a group commit (the log written, its fsync never
        // answered while more commits queue behind it), or as sled's log moves into a
        // new segment (the fsync after the first write of a segment is never answered).
        let moment = match rng.gen_range(0..3) {
            0 => Moment::Anywhere,
            1 => {
                fs.stall(Stall::Now);
                actix_rt::time::sleep(Duration::from_millis(rng.gen_range(0..200))).await;
                Moment::GroupCommit
            }
            _ => {
                fs.stall(Stall::AtSegmentStart(SEGMENT));
                let deadline = std::time::Instant::now() + Duration::from_secs(10);
                while fs.held() == 0 && std::time::Instant::now() < deadline {
                    actix_rt::time::sleep(Duration::from_millis(5)).await;
                }
                actix_rt::time::sleep(Duration::from_millis(rng.gen_range(0..100))).await;
                Moment::Rollover
            }
        };
        let held = fs.held();

        // The power cut: every process writing to the disk dies at once, then the disk
        // loses its cache.
        let backing_up: Vec<u32> = running.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let _ = engine.child.kill();
        for pid in &backing_up {
            // SAFETY: kill(2) on a pid this test started and has not reaped yet (its task
            // is still waiting for it); at worst ESRCH.
            unsafe { libc::kill(*pid as libc::pid_t, libc::SIGKILL) };
        }
        // A process killed while it waits for a held fsync dies when that is answered; one
        // that reaches an fsync after that must not be held in turn (a long run hung so).
        fs.power_off();
        engine.kill();
        for t in tasks {
            let _ = t.await;
        }
        let mode = if rng.gen_bool(0.5) {
            CutMode::Torn
        } else {
            CutMode::DropAll
        };
        let report = fs.cut(&mut rng, mode).expect("power cut (unmount and mount again)");
        tally.cuts += 1;
        tally.torn += usize::from(mode == CutMode::Torn);
        tally.bytes_dropped += report.bytes_dropped;
        tally.entries_reverted += report.entries_reverted;
        tally.during_backup += usize::from(!backing_up.is_empty());
        tally.with_unsynced_log += usize::from(report.unsynced.iter().any(|(p, _)| p == "/data/db"));
        match moment {
            Moment::GroupCommit if held > 0 => tally.in_group_commit += 1,
            Moment::Rollover if held > 0 => tally.in_rollover += 1,
            _ => tally.anywhere += 1,
        }
        eprintln!(
            "cut {cycle} ({mode:?}, {moment:?}, {held} fsyncs held): {}",
            report.summary()
        );
        engine = start(&data, &env);
        let snapshot = std::mem::take(&mut *lock(&ledger));
        assert!(
            !snapshot.messages.is_empty(),
            "cycle {cycle} acknowledged no message: the workload did not run"
        );
        let (states, conversations) = verify(&engine.base, &snapshot, &tokens).await;

        // The outbox: every acknowledged answer in a Messenger conversation gets out.
        let expected: Vec<String> = snapshot
            .messages
            .iter()
            .filter(|((cid, _), t)| {
                t.contains(" says ") && conversations.get(cid).is_some_and(|c| c["channel"] == "messenger")
            })
            .map(|(_, t)| t.clone())
            .collect();
        fake.recover();
        outbox_delivered(&fake, &expected).await;
        fake.fail_all(down());

        // Backups reported done are whole files.
        let done = std::mem::take(&mut *done.lock().unwrap_or_else(|p| p.into_inner()));
        for b in &done {
            let file = std::fs::File::open(&b.file)
                .unwrap_or_else(|e| panic!("backup {} was reported done and is gone: {e}", b.file.display()));
            switchboard::store::backup::verify(std::io::BufReader::new(file), switchboard::store::sled::STORE_FORMAT)
                .unwrap_or_else(|e| panic!("backup {} was reported done and is not whole: {e}", b.file.display()));
            tally.backups_checked += 1;
        }
        // Now and then: restore the last one into the same disk, cut the power again, and
        // start a server on what the restore left.
        if let Some(b) = done.last().filter(|_| restored < 2 || rng.gen_bool(0.1)) {
            restored += 1;
            engine.kill();
            let target = mnt.join(format!("restored-{cycle}"));
            let status = std::process::Command::new(env!("CARGO_BIN_EXE_switchboard"))
                .arg("restore")
                .arg("--from")
                .arg(&b.file)
                .arg("--store-path")
                .arg(&target)
                .env("RUST_LOG", "error")
                .stdout(std::process::Stdio::null())
                .status()
                .expect("run switchboard restore");
            assert!(status.success(), "switchboard restore of {} failed", b.file.display());
            fs.cut(&mut rng, CutMode::DropAll).expect("power cut after the restore");
            let copy = start(&target, &env);
            let acknowledged = Ledger {
                messages: b.before.iter().cloned().collect(),
                ..Ledger::default()
            };
            verify(&copy.base, &acknowledged, &[]).await;
            copy.kill();
            std::fs::remove_dir_all(&target).expect("remove the restored store");
            tally.restores_checked += 1;
            engine = start(&data, &env);
        }
        for b in &done {
            let _ = std::fs::remove_file(&b.file);
        }
        // The test's own housekeeping is made durable, or the next cut brings it back.
        for dir in [&backups, &mnt] {
            std::fs::File::open(dir).and_then(|d| d.sync_all()).expect("fsync");
        }

        // In-flight requests of the dead process may or may not have landed; what the
        // restarted engine shows is the new baseline.
        let mut l = lock(&ledger);
        l.messages = snapshot.messages;
        l.wrapups = snapshot.wrapups;
        l.states = states.into_iter().map(|(k, s)| (k, (s, None))).collect();
        let messages = l.messages.len();
        drop(l);
        eprintln!(
            "cut {cycle}: verified {messages} messages, {} outbox answers, {} backups",
            expected.len(),
            done.len()
        );
    }
    engine.kill();
    let counts = fs.counts();
    eprintln!(
        "power-cut test seed {seed}: {}; filesystem: {counts:?}, {} bytes held",
        tally.summary(),
        fs.bytes_held()
    );
    assert!(
        counts.fsyncs > 0,
        "the engine never fsynced: the filesystem saw no fsync"
    );
}
