//! Test harness: a real Switchboard server on `127.0.0.1:0` with a temporary store, a real
//! HTTP client and real WebSocket desktops (awc).
//!
//! Timeouts are long by default so that no test depends on the machine being fast; a test
//! about expiry shortens only the timeout it is about ([`TestServer::with`]).

#![allow(dead_code)]

use std::collections::VecDeque;
use std::net::TcpListener;
use std::time::Duration;

use actix_codec::Framed;
use awc::ws::{Codec, Frame, Message};
use awc::BoxedSocket;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use switchboard::config::Config;
use switchboard::engine::Engine;

/// The admin token of every test server.
pub const ADMIN: &str = "test-admin-token-0123456789";
/// A short deadline, for the offers a test lets expire.
pub const SHORT_MS: u64 = 300;
/// How long a test waits for an event before it fails (never a speed assertion: events
/// normally arrive in milliseconds).
pub const WAIT: Duration = Duration::from_secs(10);

/// A running server and a client for it.
pub struct TestServer {
    /// `http://127.0.0.1:PORT`
    pub base: String,
    pub client: awc::Client,
    pub engine: Engine,
    pub config: Config,
    _dir: tempfile::TempDir,
}

/// An HTTP answer: status and JSON body (`Null` when empty, a string when not JSON).
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub body: Value,
}

impl Answer {
    /// The error code of an error answer.
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }

    /// Asserts the status (and shows the body when it is wrong).
    #[track_caller]
    pub fn expect(self, status: u16) -> Value {
        assert_eq!(self.status, status, "unexpected answer: {}", self.body);
        self.body
    }

    /// Asserts an error answer's status and code.
    #[track_caller]
    pub fn expect_error(&self, status: u16, code: &str) {
        assert_eq!(self.status, status, "unexpected answer: {}", self.body);
        assert_eq!(self.code(), code, "unexpected answer: {}", self.body);
        assert!(
            self.body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()),
            "error without a message: {}",
            self.body
        );
    }
}

impl TestServer {
    /// A server with the default config, long timeouts.
    pub async fn start() -> TestServer {
        Self::with(|_| {}).await
    }

    /// A server whose config `f` adjusts first.
    pub async fn with(f: impl FnOnce(&mut Config)) -> TestServer {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config = Config::load(None).expect("default config");
        config.store.path = dir.path().join("data");
        config.api.admin_token = ADMIN.into();
        config.server.listen = "127.0.0.1:0".parse().expect("address");
        config.routing.offer_timeout_ms = 60_000;
        config.routing.transfer_timeout_ms = 60_000;
        config.routing.conference_timeout_ms = 60_000;
        // Admission control measures how long commands wait for the engine: on a machine
        // busy with other work it would refuse the tests' conversations. The tests of
        // admission control turn it on.
        config.server.admission_control = false;
        f(&mut config);
        let store = switchboard::store::open(&config.store.path).expect("store");
        // As the binary does: Messenger conversations send through an outbox.
        let (engine, outbox) = switchboard::channels::messenger::start_engine(&config, store).expect("engine");
        switchboard::api::provision(&engine, &config).await.expect("provision");
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let server =
            switchboard::api::build_server_with_outbox(&config, engine.clone(), outbox, listener).expect("server");
        actix_rt::spawn(server);
        let client = awc::Client::builder().timeout(WAIT).finish();
        TestServer {
            base: format!("http://{addr}"),
            client,
            engine,
            config,
            _dir: dir,
        }
    }

    /// Any request; `token` is sent as a bearer token, `body` as JSON.
    pub async fn call(&self, method: &str, path: &str, token: Option<&str>, body: Option<Value>) -> Answer {
        request(&self.client, &format!("{}{}", self.base, path), method, token, body).await
    }

    /// A request with a raw body and content type (for malformed input).
    pub async fn raw(&self, method: &str, path: &str, token: &str, content_type: &str, body: &str) -> Answer {
        let method = awc::http::Method::from_bytes(method.as_bytes()).expect("method");
        let mut res = self
            .client
            .request(method, format!("{}{}", self.base, path))
            .insert_header(("Authorization", format!("Bearer {token}")))
            .insert_header(("Content-Type", content_type))
            .send_body(body.to_string())
            .await
            .expect("request");
        let bytes = res.body().limit(16 << 20).await.expect("body");
        Answer {
            status: res.status().as_u16(),
            body: serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into())),
        }
    }

    pub async fn get(&self, path: &str, token: &str) -> Answer {
        self.call("GET", path, Some(token), None).await
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> Answer {
        self.call("POST", path, Some(token), Some(body)).await
    }

    /// A POST without a body.
    pub async fn post_empty(&self, path: &str, token: &str) -> Answer {
        self.call("POST", path, Some(token), None).await
    }

    pub async fn put(&self, path: &str, token: &str, body: Value) -> Answer {
        self.call("PUT", path, Some(token), Some(body)).await
    }

    // ----- admin helpers -----

    /// Creates an agent serving `queues` (capacity 1) and returns its token.
    pub async fn agent(&self, id: &str, name: &str, queues: &[&str]) -> String {
        self.agent_with_capacity(id, name, queues, 1).await
    }

    pub async fn agent_with_capacity(&self, id: &str, name: &str, queues: &[&str], capacity: u32) -> String {
        let body = self
            .post(
                "/api/v1/agents",
                ADMIN,
                json!({"id": id, "name": name, "queues": queues, "capacity": capacity}),
            )
            .await
            .expect(201);
        body["token"].as_str().expect("token").to_string()
    }

    pub async fn queue(&self, id: &str, name: &str) {
        self.post("/api/v1/queues", ADMIN, json!({"id": id, "name": name}))
            .await
            .expect(201);
    }

    /// A customer message on the demo entry point; returns the conversation.
    pub async fn customer_writes(&self, customer: &str, name: &str, text: &str) -> Value {
        self.post(
            "/api/v1/conversations",
            ADMIN,
            json!({"entry_point": "demo-page", "customer": {"id": customer, "name": name}, "text": text}),
        )
        .await
        .expect(201)
    }

    /// Sets an agent's state over REST.
    pub async fn set_state(&self, token: &str, state: &str) -> Value {
        let body = if state == "idle" {
            json!({"state": "idle", "idle_code": "break"})
        } else {
            json!({"state": state})
        };
        self.put("/api/v1/agents/me/state", token, body).await.expect(200)
    }

    pub async fn conversation(&self, id: &str) -> Value {
        self.get(&format!("/api/v1/conversations/{id}"), ADMIN)
            .await
            .expect(200)
    }

    pub async fn agent_detail(&self, id: &str) -> Value {
        self.get(&format!("/api/v1/agents/{id}"), ADMIN).await.expect(200)
    }

    /// Connects a desktop and returns it with its `hello`.
    pub async fn desktop(&self, token: &str) -> (Desktop, Value) {
        connect_desktop(&self.client, &self.base, token).await
    }

    /// Creates a supervisor and returns its token.
    pub async fn supervisor(&self, id: &str, name: &str) -> String {
        let body = self
            .post("/api/v1/supervisors", ADMIN, json!({"id": id, "name": name}))
            .await
            .expect(201);
        body["token"].as_str().expect("token").to_string()
    }

    /// Connects a supervisor's live socket and returns it with its `snapshot`.
    pub async fn supervisor_socket(&self, token: &str) -> (Desktop, Value) {
        connect_supervisor(&self.client, &self.base, token).await
    }

    /// Connects a desktop, sets the agent available, and drains the resulting state change.
    pub async fn available_desktop(&self, token: &str) -> Desktop {
        let (mut d, _) = self.desktop(token).await;
        let reply = d.command(json!({"type": "set_state", "state": "available"})).await;
        assert_eq!(reply["ok"], true, "{reply}");
        d.wait_for("state_changed").await;
        d
    }
}

/// A WebSocket to `path` (with its query) of the server at `base` (`http://...`), not yet
/// read from.
pub async fn connect_ws(client: &awc::Client, base: &str, path: &str) -> Desktop {
    let url = format!("{}{path}", base.replace("http", "ws"));
    // hello carries whole transcripts, so it may be large.
    let (_res, framed) = client
        .ws(url)
        .max_frame_size(64 * 1024 * 1024)
        .connect()
        .await
        .expect("websocket connect");
    Desktop::from_framed(framed)
}

/// Connects a desktop of the server at `base` and returns it with its `hello`.
pub async fn connect_desktop(client: &awc::Client, base: &str, token: &str) -> (Desktop, Value) {
    let mut d = connect_ws(client, base, &format!("/api/v1/agents/me/ws?token={token}")).await;
    let hello = d.next().await;
    assert_eq!(hello["type"], "hello", "first frame must be hello: {hello}");
    (d, hello)
}

/// Connects a supervisor's live socket of the server at `base` and returns it with its
/// `snapshot`.
pub async fn connect_supervisor(client: &awc::Client, base: &str, token: &str) -> (Desktop, Value) {
    let mut d = connect_ws(client, base, &format!("/api/v1/supervisors/me/ws?token={token}")).await;
    let snapshot = d.next().await;
    assert_eq!(snapshot["type"], "snapshot", "first frame must be snapshot: {snapshot}");
    (d, snapshot)
}

/// A WebSocket agent desktop.
pub struct Desktop {
    framed: Framed<BoxedSocket, Codec>,
    /// Events read while waiting for something else, in arrival order.
    buffered: VecDeque<Value>,
    next_request: u64,
}

impl Desktop {
    /// A desktop over an already upgraded connection (no `hello` read yet).
    pub fn from_framed(framed: Framed<BoxedSocket, Codec>) -> Desktop {
        Desktop {
            framed,
            buffered: VecDeque::new(),
            next_request: 1,
        }
    }

    /// The first text frame, or `None` if the server closes the connection first.
    pub async fn next_or_close(&mut self) -> Option<Value> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            match tokio::time::timeout_at(deadline, self.framed.next()).await {
                Err(_) => panic!("no frame in time"),
                Ok(None) | Ok(Some(Err(_))) | Ok(Some(Ok(Frame::Close(_)))) => return None,
                Ok(Some(Ok(Frame::Text(t)))) => {
                    return Some(self.unpack(serde_json::from_slice(&t).expect("JSON frame")))
                }
                Ok(Some(Ok(_))) => {}
            }
        }
    }

    /// A frame as events: a `batch` (the supervisor socket's several events in one frame)
    /// answers its first event and keeps the rest, in order, for the next reads.
    fn unpack(&mut self, frame: Value) -> Value {
        if frame["type"] != "batch" {
            return frame;
        }
        let Value::Array(events) = frame["events"].clone() else {
            panic!("a batch frame without events: {frame}");
        };
        let mut events = events.into_iter();
        let first = events.next().expect("a batch frame carries at least one event");
        for (i, e) in events.enumerate() {
            self.buffered.insert(i, e);
        }
        first
    }

    /// The next frame from the server before `deadline` (answers pings on the way).
    async fn read(&mut self, deadline: tokio::time::Instant) -> Option<Value> {
        loop {
            let frame = tokio::time::timeout_at(deadline, self.framed.next())
                .await
                .ok()?
                .expect("connection closed")
                .expect("protocol error");
            match frame {
                Frame::Text(t) => return Some(self.unpack(serde_json::from_slice(&t).expect("JSON frame"))),
                Frame::Ping(p) => self.framed.send(Message::Pong(p)).await.expect("pong"),
                Frame::Close(r) => panic!("server closed the desktop: {r:?}"),
                _ => {}
            }
        }
    }

    async fn next_before(&mut self, deadline: tokio::time::Instant) -> Option<Value> {
        match self.buffered.pop_front() {
            Some(v) => Some(v),
            None => self.read(deadline).await,
        }
    }

    /// The next event or reply if one comes within `wait`: for sampling what a desktop
    /// got so far (never to assert that nothing came).
    pub async fn within(&mut self, wait: Duration) -> Option<Value> {
        self.next_before(tokio::time::Instant::now() + wait).await
    }

    /// The next event or reply, in order.
    pub async fn next(&mut self) -> Value {
        self.next_before(tokio::time::Instant::now() + WAIT)
            .await
            .expect("no frame from the server in time")
    }

    /// The next frame that `want` accepts, skipping (and dropping) others.
    pub async fn wait_for_match(&mut self, what: &str, want: impl Fn(&Value) -> bool) -> Value {
        self.wait_until(want, what.to_string()).await
    }

    /// The next frame of type `ty`, skipping (and dropping) others.
    pub fn wait_for<'a>(&'a mut self, ty: &'a str) -> impl std::future::Future<Output = Value> + 'a {
        self.wait_until(move |v| v["type"] == ty, ty.to_string())
    }

    /// The next frame of type `ty` about conversation `cid`, skipping others.
    pub fn wait_for_in<'a>(&'a mut self, ty: &'a str, cid: &'a str) -> impl std::future::Future<Output = Value> + 'a {
        self.wait_until(
            move |v| v["type"] == ty && v["conversation_id"] == cid,
            format!("{ty} of {cid}"),
        )
    }

    async fn wait_until(&mut self, want: impl Fn(&Value) -> bool, what: String) -> Value {
        let deadline = tokio::time::Instant::now() + WAIT;
        let mut skipped = Vec::new();
        loop {
            let Some(v) = self.next_before(deadline).await else {
                panic!("no {what} in time; skipped {skipped:?}");
            };
            if want(&v) {
                return v;
            }
            skipped.push(v);
        }
    }

    /// Sends a command with a fresh `request_id` and returns its `reply`; events that
    /// arrive meanwhile stay buffered for [`Desktop::next`].
    pub async fn command(&mut self, mut cmd: Value) -> Value {
        let rid = format!("r{}", self.next_request);
        self.next_request += 1;
        cmd["request_id"] = json!(rid);
        self.send_raw(&cmd.to_string()).await;
        let mut seen = VecDeque::new();
        let deadline = tokio::time::Instant::now() + WAIT;
        let reply = loop {
            let v = self.next_before(deadline).await.expect("no reply in time");
            if v["type"] == "reply" && v["request_id"] == rid.as_str() {
                break v;
            }
            seen.push_back(v);
        };
        // Keep what came before the reply ahead of anything still buffered.
        while let Some(v) = seen.pop_back() {
            self.buffered.push_front(v);
        }
        reply
    }

    /// Sends a raw text frame.
    pub async fn send_raw(&mut self, text: &str) {
        self.framed
            .send(Message::Text(text.to_string().into()))
            .await
            .expect("send");
    }

    /// Reads without answering pings until the server closes the connection; returns the
    /// close reason (if the close frame carried one) and how many text frames came first.
    pub async fn until_closed(&mut self, within: Duration) -> (Option<awc::ws::CloseReason>, usize) {
        let deadline = tokio::time::Instant::now() + within;
        let mut texts = 0;
        loop {
            match tokio::time::timeout_at(deadline, self.framed.next()).await {
                Err(_) => panic!("the server did not close the desktop in time ({texts} text frames)"),
                Ok(None) | Ok(Some(Err(_))) => return (None, texts),
                Ok(Some(Ok(Frame::Close(r)))) => return (r, texts),
                Ok(Some(Ok(Frame::Text(_)))) => texts += 1,
                Ok(Some(Ok(_))) => {}
            }
        }
    }

    /// Reads (answering pings) until the server closes the connection; returns the close
    /// reason and every text frame that came first.
    pub async fn texts_until_closed(&mut self, within: Duration) -> (Option<awc::ws::CloseReason>, Vec<Value>) {
        let deadline = tokio::time::Instant::now() + within;
        let mut texts: Vec<Value> = self.buffered.drain(..).collect();
        loop {
            match tokio::time::timeout_at(deadline, self.framed.next()).await {
                Err(_) => panic!("the server did not close the socket in time; got {texts:?}"),
                Ok(None) | Ok(Some(Err(_))) => return (None, texts),
                Ok(Some(Ok(Frame::Close(r)))) => return (r, texts),
                Ok(Some(Ok(Frame::Text(t)))) => texts.push(serde_json::from_slice(&t).expect("JSON frame")),
                Ok(Some(Ok(Frame::Ping(p)))) => {
                    let _ = self.framed.send(Message::Pong(p)).await;
                }
                Ok(Some(Ok(_))) => {}
            }
        }
    }

    /// Closes the connection.
    pub async fn close(mut self) {
        let _ = self.framed.send(Message::Close(None)).await;
    }
}

/// The `id` field of a JSON object, as a string.
pub fn id_of(v: &Value) -> String {
    v["id"].as_str().expect("id").to_string()
}

/// The texts of a transcript, in order.
pub fn texts(conversation: &Value) -> Vec<String> {
    conversation["transcript"]
        .as_array()
        .expect("transcript")
        .iter()
        .map(|m| m["text"].as_str().unwrap_or("").to_string())
        .collect()
}

/// Any request to `url`; `token` is sent as a bearer token, `body` as JSON. A body that
/// is not JSON comes back as a JSON string.
pub async fn request(
    client: &awc::Client,
    url: &str,
    method: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> Answer {
    let method = awc::http::Method::from_bytes(method.as_bytes()).expect("method");
    let mut req = client.request(method, url);
    if let Some(t) = token {
        req = req.insert_header(("Authorization", format!("Bearer {t}")));
    }
    let res = match body {
        Some(b) => req.send_json(&b).await,
        None => req.send().await,
    };
    let mut res = res.expect("request");
    let bytes = res.body().limit(16 << 20).await.expect("body");
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()))
    };
    Answer {
        status: res.status().as_u16(),
        body,
    }
}

/// The real `switchboard` binary as a child process, on a free loopback port.
pub struct Process {
    pub child: std::process::Child,
    /// `http://127.0.0.1:PORT`
    pub base: String,
    /// Every line the process wrote to stdout (its log) so far.
    pub log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Process {
    /// Starts the binary over the store directory `dir` with the admin token [`ADMIN`] and
    /// the extra environment `env`, and waits until it says where it listens.
    pub fn start(dir: &std::path::Path, env: &[(&str, &str)]) -> Process {
        use std::io::{BufRead, BufReader};
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_switchboard"));
        cmd.env("SWITCHBOARD_SERVER__LISTEN", "127.0.0.1:0")
            .env("SWITCHBOARD_STORE__PATH", dir)
            .env("SWITCHBOARD_API__ADMIN_TOKEN", ADMIN)
            // See `TestServer::with`: off unless a test turns it on.
            .env("SWITCHBOARD_SERVER__ADMISSION_CONTROL", "false")
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("start the switchboard binary");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let base = loop {
            let line = lines
                .next()
                .expect("switchboard exited before listening")
                .expect("read stdout");
            if let Some(rest) = line.split("listening on ").nth(1) {
                break rest
                    .split_whitespace()
                    .next()
                    .expect("address")
                    .trim_end_matches('/')
                    .to_string();
            }
        };
        // Keep draining stdout so the child never blocks on a full pipe; keep the lines.
        let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let kept = log.clone();
        std::thread::spawn(move || {
            for line in lines.by_ref().map_while(Result::ok) {
                if let Ok(mut l) = kept.lock() {
                    l.push(line);
                }
            }
        });
        Process { child, base, log }
    }

    /// The log lines written so far.
    pub fn log_lines(&self) -> Vec<String> {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// SIGKILL: no shutdown code runs.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A test that fails half-way must not leave its server running (holding the test's
/// output pipe open, so that the run never ends).
impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A small REST client for a [`Process`].
pub struct ProcessClient {
    http: awc::Client,
    base: String,
}

impl ProcessClient {
    pub fn new(base: &str) -> ProcessClient {
        ProcessClient {
            http: awc::Client::builder().timeout(Duration::from_secs(10)).finish(),
            base: base.to_string(),
        }
    }

    pub async fn call(&self, method: &str, path: &str, token: &str, body: Option<Value>) -> (u16, Value) {
        let a = request(&self.http, &format!("{}{}", self.base, path), method, Some(token), body).await;
        (a.status, a.body)
    }

    pub async fn expect(&self, method: &str, path: &str, token: &str, body: Option<Value>, status: u16) -> Value {
        let (s, v) = self.call(method, path, token, body).await;
        assert_eq!(s, status, "{method} {path}: {v}");
        v
    }

    pub async fn agent(&self, id: &str, name: &str) -> String {
        let body = json!({"id": id, "name": name, "queues": ["support"]});
        let v = self.expect("POST", "/api/v1/agents", ADMIN, Some(body), 201).await;
        v["token"].as_str().expect("token").to_string()
    }

    pub async fn customer_writes(&self, customer: &str, text: &str) -> Value {
        let body = json!({"entry_point": "demo-page", "customer": {"id": customer, "name": "Carol"}, "text": text});
        self.expect("POST", "/api/v1/conversations", ADMIN, Some(body), 201)
            .await
    }
}
