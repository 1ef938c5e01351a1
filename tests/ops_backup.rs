//! The streaming backup through the real `switchboard` binary (../shared/API.md "Operations",
//! docs/DEPLOY.md "Backup and restore"): `switchboard backup --to FILE` under a write load
//! and a restore of what it wrote; a client that goes away midway; the server's memory
//! while a backup of a store many times its buffers is read.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{request, Answer, ADMIN, WAIT};
use serde_json::{json, Value};

/// The binary as a child on `store`, listening on a free loopback port.
struct Server {
    child: Child,
    base: String,
}

impl Server {
    fn start(store: &Path, env: &[(&str, &str)]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_switchboard"))
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("SWITCHBOARD_SERVER__LISTEN", "127.0.0.1:0")
            .env("SWITCHBOARD_STORE__PATH", store)
            .env("SWITCHBOARD_API__ADMIN_TOKEN", ADMIN)
            .env("RUST_LOG", "warn")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the switchboard binary");
        let (tx, rx) = std::sync::mpsc::channel();
        let stdout = child.stdout.take().expect("stdout");
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(rest) = line.split("listening on ").nth(1) {
                    let base = rest.split_whitespace().next().unwrap_or("").trim_end_matches('/');
                    let _ = tx.send(base.to_string());
                }
            }
        });
        let base = rx.recv_timeout(Duration::from_secs(60)).unwrap_or_else(|_| {
            let _ = child.kill();
            panic!("switchboard did not start")
        });
        Server { child, base }
    }

    /// The server's resident memory now, in KiB.
    fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).expect("proc status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .expect("VmRSS")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the binary to completion with `args`.
fn run(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .args(args)
        .env("SWITCHBOARD_API__ADMIN_TOKEN", ADMIN)
        .output()
        .expect("run switchboard");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn client() -> awc::Client {
    awc::Client::builder().timeout(WAIT).finish()
}

async fn call(c: &awc::Client, base: &str, method: &str, path: &str, body: Option<Value>) -> Answer {
    request(c, &format!("{base}{path}"), method, Some(ADMIN), body).await
}

/// Story: an operator's cron job runs `switchboard backup --to FILE` while customers keep
/// writing. The file is complete (no temporary file is left beside it), and the engine
/// started on its restore has every conversation acknowledged before the command ran,
/// with its message; a conversation acknowledged while it ran is there whole, with its
/// message, or not at all.
#[actix_rt::test]
async fn the_backup_command_writes_a_whole_file_under_load_and_it_restores() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(&dir.path().join("store"), &[]);
    let b = s.base.clone();
    let acked: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut writers = Vec::new();
    for w in 0..4 {
        let (acked, stop, b, c) = (acked.clone(), stop.clone(), b.clone(), client());
        writers.push(actix_rt::spawn(async move {
            let mut i = 0;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let text = format!("w{w} m{i}");
                let body = json!({"entry_point": "demo-page", "customer": {"id": format!("u{w}-{i}"), "name": "U"}, "text": text});
                let a = call(&c, &b, "POST", "/api/v1/conversations", Some(body)).await;
                if a.status == 201 {
                    acked
                        .lock()
                        .unwrap()
                        .push((a.body["id"].as_str().unwrap().to_string(), text));
                }
                i += 1;
            }
        }));
    }
    while acked.lock().unwrap().len() < 40 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let before = acked.lock().unwrap().len();
    let file = dir.path().join("nightly.backup");
    let url = format!("{b}/api/v1/admin/backup");
    let to = file.to_str().unwrap().to_string();
    let (ok, out) = tokio::task::spawn_blocking(move || run(&["backup", "--to", &to, "--url", &url]))
        .await
        .unwrap();
    assert!(ok, "backup failed: {out}");
    assert!(out.contains("written to"), "{out}");
    while acked.lock().unwrap().len() < before + 20 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    for w in writers {
        w.await.unwrap();
    }
    drop(s);
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        !names.iter().any(|n| n.contains("partial")),
        "a temporary file was left: {names:?}"
    );
    // A wrong token is refused, and writes nothing.
    let (ok, out) = run(&[
        "backup",
        "--to",
        dir.path().join("refused.backup").to_str().unwrap(),
        "--url",
        "http://127.0.0.1:1/api/v1/admin/backup",
    ]);
    assert!(!ok && !dir.path().join("refused.backup").exists(), "{out}");

    let restored = dir.path().join("restored");
    let (ok, out) = run(&[
        "restore",
        "--from",
        file.to_str().unwrap(),
        "--store-path",
        restored.to_str().unwrap(),
    ]);
    assert!(ok, "restore failed: {out}");
    let s = Server::start(&restored, &[]);
    let c = client();
    let all = acked.lock().unwrap().clone();
    for (n, (cid, text)) in all.iter().enumerate() {
        let a = call(&c, &s.base, "GET", &format!("/api/v1/conversations/{cid}"), None).await;
        if n < before {
            assert_eq!(a.status, 200, "{cid}, acknowledged before the backup, is missing");
        }
        if a.status == 200 {
            let texts = common::texts(&a.body);
            assert!(texts.contains(text), "{cid} is there without its message: {texts:?}");
        } else {
            assert_eq!(a.status, 404, "{cid}: {a:?}");
        }
    }
}

/// A store of about 60 MB, written directly through the store: 60,000 customer names of
/// 1 KB each beside the usual records.
async fn large_store(path: &Path) -> usize {
    use switchboard::core::Change;
    use switchboard::store::{SledOptions, SledStore, Store};
    let store = SledStore::open(path, SledOptions::default()).expect("store");
    let n = 60_000;
    {
        for chunk in (0..n).collect::<Vec<_>>().chunks(2_000) {
            let changes = chunk
                .iter()
                .map(|i| Change::CustomerName {
                    page_id: "page".into(),
                    customer: format!("u{i:06}"),
                    name: format!("{i:06} {}", "x".repeat(1_000)),
                })
                .collect();
            store.commit(changes).await.expect("commit");
        }
    }
    store.close();
    n
}

/// The whole backup from `base`, or the status of a refusal.
async fn take_backup(base: &str, mut each_chunk: impl FnMut()) -> Result<Vec<u8>, u16> {
    use futures_util::StreamExt;
    let c = awc::Client::builder().timeout(WAIT).finish();
    let mut res = c
        .post(format!("{base}/api/v1/admin/backup"))
        .insert_header(("Authorization", format!("Bearer {ADMIN}")))
        .send()
        .await
        .expect("backup");
    if res.status() != 200 {
        return Err(res.status().as_u16());
    }
    let mut file = Vec::new();
    while let Some(chunk) = res.next().await {
        file.extend_from_slice(&chunk.expect("chunk"));
        each_chunk();
    }
    Ok(file)
}

/// Story: a backup client goes away after the first bytes of a store far larger than what
/// the server reads ahead. The server goes on serving and writing, lets go of the backup
/// (the next one is accepted once it has), and that next backup is whole. Backups after
/// it grow the server's resident memory by a few MB, not by the file: the backup holds
/// its buffers only (the first read of a cold store fills sled's page cache, which is the
/// store's, whatever reads it; docs/STORE.md "Backup").
#[actix_rt::test]
async fn a_client_that_goes_away_midway_changes_nothing_and_memory_stays_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let names = large_store(&store).await;
    let s = Server::start(&store, &[]);
    let c = client();

    // A raw client that reads 64 KB of the answer and hangs up.
    let addr = s.base.trim_start_matches("http://").to_string();
    let mut tcp = std::net::TcpStream::connect(&addr).expect("connect");
    write!(
        tcp,
        "POST /api/v1/admin/backup HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {ADMIN}\r\nContent-Length: 0\r\n\r\n"
    )
    .unwrap();
    let mut first = vec![0u8; 64 << 10];
    tcp.read_exact(&mut first).expect("the first bytes");
    assert!(
        first.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&first[..64])
    );
    drop(tcp);

    call(&c, &s.base, "GET", "/readyz", None).await.expect(200);
    let body = json!({"entry_point": "demo-page", "customer": {"id": "after", "name": "U"}, "text": "still here"});
    let conv = call(&c, &s.base, "POST", "/api/v1/conversations", Some(body))
        .await
        .expect(201);

    // The abandoned backup ends as soon as its reader sees the connection gone; until
    // then a new one is 409 `backup_in_progress`.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let file = loop {
        match take_backup(&s.base, || {}).await {
            Ok(file) => break file,
            Err(409) if std::time::Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(20)).await,
            Err(status) => panic!("the backup after an abandoned one answered {status}"),
        }
    };
    let records = switchboard::store::backup::decode(&file, switchboard::store::sled::STORE_FORMAT).expect("whole");
    assert!(records.len() > names, "{} records", records.len());
    let id = conv["id"].as_str().unwrap();
    assert!(
        records
            .iter()
            .any(|(k, _)| k.first() == Some(&b'c') && &k[1..] == id.as_bytes()),
        "the conversation written after the abandoned backup is in the next one"
    );

    // Two more, the server's memory sampled at every chunk received.
    let file_mib = file.len() as f64 / f64::from(1 << 20);
    for _ in 0..2 {
        let base = s.rss_kib();
        let mut peak = base;
        let again = take_backup(&s.base, || peak = peak.max(s.rss_kib()))
            .await
            .expect("another backup");
        assert_eq!(again.len(), file.len());
        let grown_mib = peak.saturating_sub(base) as f64 / 1024.0;
        println!("backup of {file_mib:.1} MiB: server RSS grew by {grown_mib:.1} MiB");
        assert!(
            grown_mib < file_mib / 4.0,
            "the server grew by {grown_mib:.1} MiB for a {file_mib:.1} MiB backup"
        );
    }
}
