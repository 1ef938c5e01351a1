//! Operating the real `switchboard` binary (../shared/API.md "Operations"): recovery from a full
//! disk without a restart, backup under load and restore, logs (access log, JSON, no
//! colour codes on a pipe), stray environment variables, clearer start-up errors, and the
//! store's close summary on shutdown.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{request, Answer, ADMIN, WAIT};
use serde_json::{json, Value};

/// A strong admin token (the binary may listen off loopback in some tests).
const TOKEN_ENV: (&str, &str) = ("SWITCHBOARD_API__ADMIN_TOKEN", ADMIN);

/// The binary as a child, with every line it writes to stdout kept.
struct Server {
    child: Child,
    base: String,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Server {
    /// Starts the binary on `store` and waits for its start-up line.
    fn start(store: &Path, env: &[(&str, &str)]) -> Server {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_switchboard"));
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("SWITCHBOARD_SERVER__LISTEN", "127.0.0.1:0")
            .env("SWITCHBOARD_STORE__PATH", store)
            .env(TOKEN_ENV.0, TOKEN_ENV.1)
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("start the switchboard binary");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let stdout = child.stdout.take().expect("stdout");
        let kept = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(rest) = line.split("listening on ").nth(1) {
                    let base = rest
                        .split_whitespace()
                        .next()
                        .unwrap_or("")
                        .trim_end_matches(['/', '"']);
                    let _ = tx.send(base.to_string());
                }
                kept.lock().unwrap().push(line);
            }
        });
        let stderr = child.stderr.take().expect("stderr");
        let kept = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                kept.lock().unwrap().push(line);
            }
        });
        let base = rx.recv_timeout(Duration::from_secs(60)).unwrap_or_else(|_| {
            let _ = child.kill();
            panic!("switchboard did not start: {:?}", lines.lock().unwrap())
        });
        Server { child, base, lines }
    }

    fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    /// SIGTERM, then waits for the exit; returns every line written.
    fn stop(mut self) -> Vec<String> {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let status = self.child.wait().expect("wait");
        assert!(status.success(), "switchboard exited with {status}");
        // The reader threads finish once the pipes close.
        std::thread::sleep(Duration::from_millis(50));
        self.lines()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the binary to completion (a start-up that must fail, a subcommand).
fn run(args: &[&str], env: &[(&str, &str)]) -> (bool, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_switchboard"));
    cmd.args(args).env("RUST_LOG", "info").env(TOKEN_ENV.0, TOKEN_ENV.1);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run switchboard");
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

async fn call(
    c: &awc::Client,
    base: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> Answer {
    request(c, &format!("{base}{path}"), method, token, body).await
}

/// A tmpfs of `size` mounted on a new temporary directory, unmounted on drop; `None`
/// where this test may not mount one.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Option<Tmpfs> {
        let dir = tempfile::tempdir().ok()?;
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        ok.then_some(Tmpfs { dir })
    }

    /// Writes a file until the filesystem is full.
    fn fill(&self) -> std::path::PathBuf {
        let path = self.dir.path().join("filler");
        let mut f = std::fs::File::create(&path).expect("filler");
        let chunk = vec![0u8; 64 * 1024];
        loop {
            if f.write_all(&chunk).and_then(|_| f.sync_all()).is_err() {
                break;
            }
        }
        // Small writes fill what the chunks left.
        while f.write_all(&[0u8; 512]).and_then(|_| f.sync_all()).is_ok() {}
        path
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(self.dir.path()).status();
    }
}

/// Polls `path` until it answers `status`, for at most `within`.
async fn until_status(c: &awc::Client, base: &str, path: &str, status: u16, within: Duration) -> Answer {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let a = call(c, base, "GET", path, None, None).await;
        if a.status == status {
            return a;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{path} never answered {status}: {a:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Story: the disk under the store fills up while agents work. The change that cannot
/// be written is refused with 503 `store_unavailable`, `/readyz` says 503, `/livez` 200.
/// Once space is back, the engine rebuilds itself from what is durable without a restart
/// of the process: `/readyz` is 200 again, the desktop that was open is closed and resumes
/// from `hello`, every acknowledged message is there and new work is accepted.
#[actix_rt::test]
async fn a_full_disk_is_survived_without_a_restart() {
    let Some(fs) = Tmpfs::mount("16m") else {
        // Mounting needs CAP_SYS_ADMIN; CI runs as root. Say so loudly rather than pass
        // silently: this is the test of the recovery.
        panic!("this test mounts a small tmpfs and needs root (CAP_SYS_ADMIN); run cargo test as root");
    };
    let store = fs.dir.path().join("store");
    let s = Server::start(&store, &[]);
    let c = client();
    let b = &s.base;
    let ann = call(
        &c,
        b,
        "POST",
        "/api/v1/agents",
        Some(ADMIN),
        Some(json!({"id": "ann", "name": "Ann", "queues": ["support"]})),
    )
    .await
    .expect(201)["token"]
        .as_str()
        .unwrap()
        .to_string();
    call(
        &c,
        b,
        "PUT",
        "/api/v1/agents/me/state",
        Some(&ann),
        Some(json!({"state": "available"})),
    )
    .await
    .expect(200);
    let conv = call(
        &c,
        b,
        "POST",
        "/api/v1/conversations",
        Some(ADMIN),
        Some(json!({"entry_point": "demo-page", "customer": {"id": "u1", "name": "Uma"}, "text": "hello"})),
    )
    .await
    .expect(201);
    let cid = conv["id"].as_str().unwrap().to_string();
    call(
        &c,
        b,
        "POST",
        &format!("/api/v1/conversations/{cid}/accept"),
        Some(&ann),
        None,
    )
    .await
    .expect(200);
    let ws = format!("{}/api/v1/agents/me/ws?token={ann}", b.replace("http", "ws"));
    let (_r, framed) = c.ws(ws.clone()).max_frame_size(64 << 20).connect().await.expect("ws");
    let mut desktop = common::Desktop::from_framed(framed);
    assert_eq!(desktop.next().await["type"], "hello");

    let filler = fs.fill();
    // Acknowledged messages go on until the store refuses one.
    let mut acknowledged = vec!["hello".to_string()];
    let big = "x".repeat(4000);
    let mut refused = None;
    for i in 0..5_000 {
        let text = format!("m{i} {big}");
        let a = call(
            &c,
            b,
            "POST",
            &format!("/api/v1/conversations/{cid}/messages"),
            Some(&ann),
            Some(json!({"text": text})),
        )
        .await;
        match a.status {
            201 => acknowledged.push(text),
            _ => {
                refused = Some(a);
                break;
            }
        }
    }
    let refused = refused.expect("the full disk never refused a write");
    refused.expect_error(503, "store_unavailable");
    let r = call(&c, b, "GET", "/readyz", None, None).await;
    r.expect_error(503, "not_ready");
    call(&c, b, "GET", "/livez", None, None).await.expect(200);
    // Still refused while the disk is full, and still not ready.
    call(
        &c,
        b,
        "POST",
        &format!("/api/v1/conversations/{cid}/messages"),
        Some(&ann),
        Some(json!({"text": "no room"})),
    )
    .await
    .expect_error(503, "store_unavailable");

    std::fs::remove_file(&filler).expect("free the space");
    until_status(&c, b, "/readyz", 200, Duration::from_secs(30)).await;
    // The open desktop was closed (1013) and resumes from hello with everything.
    let (reason, _) = desktop.until_closed(WAIT).await;
    assert_eq!(reason.map(|r| u16::from(r.code)), Some(1013));
    let (_r, framed) = c.ws(ws).max_frame_size(64 << 20).connect().await.expect("ws");
    let mut desktop = common::Desktop::from_framed(framed);
    let hello = desktop.next().await;
    assert_eq!(hello["type"], "hello");
    let held = &hello["agent"]["conversations"][0];
    assert_eq!(held["id"], cid.as_str());
    let texts: Vec<String> = held["transcript"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["text"].as_str().unwrap().to_string())
        .collect();
    for t in &acknowledged {
        assert!(
            texts.contains(t),
            "acknowledged message lost: {}",
            &t[..t.len().min(20)]
        );
    }
    // New work is accepted, with the agent's token.
    call(
        &c,
        b,
        "POST",
        &format!("/api/v1/conversations/{cid}/messages"),
        Some(&ann),
        Some(json!({"text": "back"})),
    )
    .await
    .expect(201);
    let metrics = call(&c, b, "GET", "/metrics", None, None).await.body;
    let metrics = metrics.as_str().unwrap();
    assert!(metrics.contains("switchboard_engine_recoveries_total 1"), "{metrics}");
    assert!(
        !metrics.contains("switchboard_store_errors_total{op=\"write\"} 0"),
        "write errors counted"
    );
    let lines = s.stop();
    assert!(
        lines.iter().any(|l| l.contains("store closed")),
        "no close summary: {lines:?}"
    );
}

/// Story: an operator takes a backup while customers keep writing, restores it into a
/// new directory, and starts the engine there: every conversation acknowledged before the
/// backup was asked for is there with its transcript, and every agent token works.
/// `restore` refuses a directory that is not empty.
#[actix_rt::test]
async fn a_backup_under_load_restores_everything_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(&dir.path().join("store"), &[]);
    let c = client();
    let b = s.base.clone();
    let mut tokens = Vec::new();
    for i in 0..3 {
        let t = call(
            &c,
            &b,
            "POST",
            "/api/v1/agents",
            Some(ADMIN),
            Some(json!({"id": format!("a{i}"), "name": "Agent", "queues": ["support"]})),
        )
        .await
        .expect(201)["token"]
            .as_str()
            .unwrap()
            .to_string();
        tokens.push((format!("a{i}"), t));
    }
    // Customers write from four tasks while the backup is taken.
    let acked: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut writers = Vec::new();
    for w in 0..4 {
        let (acked, stop, b, c) = (acked.clone(), stop.clone(), b.clone(), client());
        writers.push(actix_rt::spawn(async move {
            let mut i = 0;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let text = format!("w{w} m{i}");
                let body =
                    json!({"entry_point": "demo-page", "customer": {"id": format!("u{w}"), "name": "U"}, "text": text});
                let a = call(&c, &b, "POST", "/api/v1/conversations", Some(ADMIN), Some(body)).await;
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
    let before: Vec<(String, String)> = acked.lock().unwrap().clone();
    let mut res = c
        .post(format!("{b}/api/v1/admin/backup"))
        .insert_header(("Authorization", format!("Bearer {ADMIN}")))
        .send()
        .await
        .expect("backup");
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(res.headers().get("content-type").unwrap(), "application/octet-stream");
    let backup = res.body().limit(256 << 20).await.expect("body");
    while acked.lock().unwrap().len() < before.len() + 20 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    for w in writers {
        w.await.unwrap();
    }
    // Agents may not take a backup.
    call(&c, &b, "POST", "/api/v1/admin/backup", Some(&tokens[0].1), None)
        .await
        .expect_error(403, "forbidden");
    drop(s);

    let file = dir.path().join("switchboard.backup");
    std::fs::write(&file, &backup).unwrap();
    let restored = dir.path().join("restored");
    let (ok, out) = run(
        &[
            "restore",
            "--from",
            file.to_str().unwrap(),
            "--store-path",
            restored.to_str().unwrap(),
        ],
        &[],
    );
    assert!(ok, "restore failed: {out}");
    // What restore writes is the engine user's alone, like any store directory.
    let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&restored).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o700, "restored store is {mode:o}");
    let (ok, out) = run(
        &[
            "restore",
            "--from",
            file.to_str().unwrap(),
            "--store-path",
            restored.to_str().unwrap(),
        ],
        &[],
    );
    assert!(
        !ok && out.contains("not empty"),
        "a non-empty directory must be refused: {out}"
    );
    let mut damaged = backup.to_vec();
    let mid = damaged.len() / 2;
    damaged[mid] ^= 0xff;
    std::fs::write(&file, &damaged).unwrap();
    let (ok, out) = run(
        &[
            "restore",
            "--from",
            file.to_str().unwrap(),
            "--store-path",
            dir.path().join("other").to_str().unwrap(),
        ],
        &[],
    );
    assert!(
        !ok && out.contains("the backup"),
        "a damaged backup must be refused: {out}"
    );
    assert!(
        !dir.path().join("other").exists(),
        "a refused restore leaves nothing behind"
    );

    let s = Server::start(&restored, &[]);
    let b = &s.base;
    for (cid, text) in &before {
        let conv = call(&c, b, "GET", &format!("/api/v1/conversations/{cid}"), Some(ADMIN), None)
            .await
            .expect(200);
        let texts = common::texts(&conv);
        assert!(texts.contains(text), "{cid} lost {text}: {texts:?}");
    }
    for (id, token) in &tokens {
        let a = call(&c, b, "GET", &format!("/api/v1/agents/{id}"), Some(token), None)
            .await
            .expect(200);
        assert_eq!(a["id"], id.as_str());
    }
    call(&c, b, "GET", "/readyz", None, None).await.expect(200);
}

/// Story: an operator reads the logs. At `info` every request leaves one line with its
/// request id, method, route template and status, and never a token; a wrong token
/// leaves a `warn` with the address and path; a pipe gets no colour codes; with
/// `log.format = "json"` every line is JSON, the start-up banner included. Stray
/// `SWITCHBOARD_*` variables are ignored with a warning, and `localhost:PORT` is a
/// listen address.
#[actix_rt::test]
async fn logs_are_plain_on_a_pipe_and_all_json_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let c = client();
    for json_format in [false, true] {
        let store = dir.path().join(format!("store-{json_format}"));
        let mut env = vec![
            ("SWITCHBOARD_PORT", "tcp://10.0.0.1:8080"),
            ("SWITCHBOARD_SERVICE_HOST", "10.0.0.1"),
            ("SWITCHBOARD_SERVER__LISTEN", "localhost:0"),
        ];
        if json_format {
            env.push(("SWITCHBOARD_LOG__FORMAT", "json"));
        }
        let s = Server::start(&store, &env);
        let b = s.base.clone();
        call(&c, &b, "GET", "/api/v1/queues/support", Some(ADMIN), None)
            .await
            .expect(200);
        let url = format!("{b}/api/v1/agents/me/ws?token=not-a-real-token-123");
        request(&c, &url, "GET", None, None)
            .await
            .expect_error(401, "unauthorized");
        // A desktop command leaves its own line.
        let token = call(
            &c,
            &b,
            "POST",
            "/api/v1/agents",
            Some(ADMIN),
            Some(json!({"id": "ann", "name": "Ann", "queues": ["support"]})),
        )
        .await
        .expect(201)["token"]
            .as_str()
            .unwrap()
            .to_string();
        let ws = format!("{}/api/v1/agents/me/ws?token={token}", b.replace("http", "ws"));
        let (_r, framed) = c.ws(ws).connect().await.expect("ws");
        let mut desktop = common::Desktop::from_framed(framed);
        assert_eq!(desktop.next().await["type"], "hello");
        let reply = desktop
            .command(json!({"type": "set_state", "state": "available"}))
            .await;
        assert_eq!(reply["ok"], true);
        desktop.close().await;
        let lines = s.stop();
        let all = lines.join("\n");
        assert!(!all.contains('\u{1b}'), "colour codes on a pipe:\n{all}");
        assert!(
            !all.contains(ADMIN) && !all.contains("not-a-real-token-123"),
            "a token was logged:\n{all}"
        );
        assert!(
            all.contains("SWITCHBOARD_PORT") && all.contains("SWITCHBOARD_SERVICE_HOST"),
            "no warning:\n{all}"
        );
        let access = lines
            .iter()
            .find(|l| l.contains("/api/v1/queues/{id}") && l.contains("200"))
            .unwrap_or_else(|| panic!("no access log line:\n{all}"));
        assert!(access.contains("request_id") && access.contains("GET"), "{access}");
        let command = lines
            .iter()
            .find(|l| l.contains("desktop command"))
            .unwrap_or_else(|| panic!("no desktop command line:\n{all}"));
        assert!(
            command.contains("set_state") && command.contains("ann") && command.contains("duration_ms"),
            "{command}"
        );
        assert!(!all.contains(&token), "an agent token was logged");
        let warn = lines
            .iter()
            .find(|l| l.contains("authentication failed"))
            .unwrap_or_else(|| panic!("no warning of the failed authentication:\n{all}"));
        assert!(
            warn.contains("WARN") && warn.contains("127.0.0.1") && warn.contains("/api/v1/agents/me/ws"),
            "{warn}"
        );
        if json_format {
            for l in &lines {
                let v: Value = serde_json::from_str(l).unwrap_or_else(|_| panic!("not JSON: {l}"));
                assert!(v["level"].is_string(), "{l}");
            }
            assert!(lines.iter().any(|l| l.contains("listening on")), "no banner");
        }
        assert!(all.contains("store closed"), "no close summary:\n{all}");
    }
}

/// Story: start-up errors an operator can act on: a port in use names the address; a
/// store directory the user may not open says "permission denied"; a weak admin token
/// off loopback names the key.
#[actix_rt::test]
async fn start_up_errors_name_the_cause() {
    let dir = tempfile::tempdir().unwrap();
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = busy.local_addr().unwrap().to_string();
    let store = dir.path().join("s1");
    let (ok, out) = run(
        &[],
        &[
            ("SWITCHBOARD_SERVER__LISTEN", &addr),
            ("SWITCHBOARD_STORE__PATH", store.to_str().unwrap()),
        ],
    );
    assert!(!ok && out.contains(&format!("cannot listen on {addr}")), "{out}");

    let (ok, out) = run(
        &[],
        &[
            ("SWITCHBOARD_SERVER__LISTEN", "0.0.0.0:0"),
            ("SWITCHBOARD_API__ADMIN_TOKEN", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"),
        ],
    );
    assert!(!ok && out.contains("api.admin_token"), "{out}");

    // A store the user may not enter. Root passes permission checks, so as root the
    // binary runs as `nobody`.
    let locked = dir.path().join("locked");
    std::fs::create_dir(&locked).unwrap();
    let store = locked.join("store");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_switchboard"));
    cmd.env("SWITCHBOARD_STORE__PATH", &store)
        .env("SWITCHBOARD_SERVER__LISTEN", "127.0.0.1:0")
        .env(TOKEN_ENV.0, TOKEN_ENV.1);
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o700)).unwrap();
    // The temp dir must be traversable by nobody to reach `locked` at all.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    // /proc/self belongs to the process's effective user.
    let root = std::os::unix::fs::MetadataExt::uid(&std::fs::metadata("/proc/self").unwrap()) == 0;
    if root {
        cmd.uid(65534).gid(65534).current_dir("/");
    } else {
        std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o000)).unwrap();
    }
    let out = cmd.output().expect("run");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o700)).unwrap();
    assert!(!out.status.success(), "{text}");
    assert!(text.to_lowercase().contains("permission denied"), "{text}");
    assert!(!text.contains("corrupt"), "{text}");
}

/// Story: a container health check runs `switchboard healthcheck`: 0 while `/readyz` is
/// 200, 1 when nothing answers.
#[actix_rt::test]
async fn the_healthcheck_subcommand_follows_readyz() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(&dir.path().join("store"), &[]);
    let url = format!("{}/readyz", s.base);
    let (ok, out) = run(&["healthcheck", "--url", &url], &[]);
    assert!(ok, "{out}");
    drop(s);
    let (ok, _) = run(&["healthcheck", "--url", &url], &[]);
    assert!(!ok, "healthcheck passed with no server");
}

/// The `KEY=VALUE` settings a packaging recipe gives the engine: the systemd unit's
/// `Environment=` lines, or the `ENV` instruction of the Dockerfile's final stage.
fn recipe_env(recipe: &str) -> Vec<(String, String)> {
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(recipe)).expect("recipe");
    let words: Vec<String> = if recipe.ends_with(".service") {
        text.lines()
            .filter_map(|l| l.trim().strip_prefix("Environment="))
            .map(str::to_string)
            .collect()
    } else {
        let last_stage = text.rsplit("\nFROM ").next().unwrap_or("");
        let joined = last_stage.replace("\\\n", " ");
        joined
            .lines()
            .filter_map(|l| l.trim().strip_prefix("ENV "))
            .flat_map(|l| l.split_whitespace().map(str::to_string).collect::<Vec<_>>())
            .collect()
    };
    words
        .iter()
        .filter_map(|w| w.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Runs the binary with exactly `env` (and PATH) and waits for it to exit; one that is
/// still running after [`WAIT`] has started, which is a failure here.
fn start_must_fail(env: &[(String, String)]) -> String {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_switchboard"));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("start the switchboard binary");
    let deadline = std::time::Instant::now() + WAIT;
    while child.try_wait().expect("wait").is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("switchboard started with {env:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().expect("output");
    assert!(!out.status.success());
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Story: an operator installs the systemd unit or runs the container image and forgets
/// the admin token (or sets a weak one), behind a reverse proxy on loopback. The engine
/// refuses to start, naming `api.admin_token` and `api.allow_development_token`, instead
/// of serving the development token; with a real token the same recipe starts.
#[actix_rt::test]
async fn the_packaging_recipes_refuse_the_development_token() {
    let dir = tempfile::tempdir().unwrap();
    for recipe in ["deploy/switchboard.service", "Dockerfile"] {
        let store = dir.path().join(recipe.replace('/', "-"));
        // Loopback (as behind the proxy) and a temporary store; the rest as the recipe says.
        let mut env: Vec<(String, String)> = recipe_env(recipe)
            .into_iter()
            .filter(|(k, _)| k != "SWITCHBOARD_SERVER__LISTEN" && k != "SWITCHBOARD_STORE__PATH")
            .collect();
        assert!(
            env.contains(&("SWITCHBOARD_API__ALLOW_DEVELOPMENT_TOKEN".into(), "false".into())),
            "{recipe}: {env:?}"
        );
        env.push(("SWITCHBOARD_SERVER__LISTEN".into(), "127.0.0.1:0".into()));
        env.push(("SWITCHBOARD_STORE__PATH".into(), store.display().to_string()));
        let out = start_must_fail(&env);
        assert!(
            out.contains("api.admin_token") && out.contains("api.allow_development_token"),
            "{recipe}: {out}"
        );
        let mut weak = env.clone();
        weak.push(("SWITCHBOARD_API__ADMIN_TOKEN".into(), "changeme-changeme".into()));
        let out = start_must_fail(&weak);
        assert!(out.contains("api.admin_token"), "{recipe}: {out}");
        assert!(!store.exists(), "{recipe}: a refused start wrote nothing");

        let strong = "9f86d081884c7d659a2feaa0c55ad015b3bf4b1b";
        let pairs: Vec<(&str, &str)> = env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .chain([("SWITCHBOARD_API__ADMIN_TOKEN", strong)])
            .collect();
        let s = Server::start(&store, &pairs);
        let c = client();
        call(&c, &s.base, "GET", "/api/v1/agents", Some(strong), None)
            .await
            .expect(200);
        s.stop();
    }
}
