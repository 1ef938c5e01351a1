//! A fake Graph API on loopback, for tests and for trying the Messenger channel without
//! Facebook (`switchboard-fake-graph`): it answers the Send API (`POST
//! /{version}/me/messages`: messages, sender actions, and files in multipart form), the
//! Handover Protocol (`POST /{version}/me/take_thread_control` and `pass_thread_control`)
//! and the User Profile API (`GET /{version}/{psid}`), records every request, and can be told to fail (a status, a
//! dropped connection, or error 190 for an expired page token).
//!
//! A plain HTTP/1.1 server on tokio, so that a test controls exactly what goes on the
//! wire (an actix-web server cannot drop a connection without an answer).

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

/// What the fake answers to one Send API request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scripted {
    /// This status with this JSON body.
    Status(u16, String),
    /// Close the connection without an answer.
    Drop,
}

/// A request the fake received.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    /// Without the query.
    pub path: String,
    pub query: HashMap<String, String>,
    pub body: serde_json::Value,
    /// What the fake answered (a status, or 0 for a dropped connection).
    pub answered: u16,
}

#[derive(Default)]
struct State {
    received: Vec<Received>,
    /// Answers to the next Send API requests, in order; when empty, 200.
    script: VecDeque<Scripted>,
    /// While set, every Send API request gets this answer (a dead Graph API).
    failing: Option<Scripted>,
    /// User Profile API answers by PSID: (first name, last name).
    profiles: HashMap<String, (String, String)>,
    /// Page tokens answered with error 190 (expired), as a revoked token would be.
    expired: std::collections::HashSet<String>,
    next_message: u64,
    /// Bumped by [`FakeGraph::recover_for_new_connections`]; each connection is of the
    /// epoch it was accepted in.
    epoch: u64,
    /// `failing` as it was at [`FakeGraph::recover_for_new_connections`]: still the answer
    /// on connections of an earlier epoch.
    failing_old: Option<Scripted>,
}

/// A running fake Graph API. Cheap to clone.
#[derive(Clone)]
pub struct FakeGraph {
    pub addr: SocketAddr,
    state: Arc<Mutex<State>>,
    notify: Arc<Notify>,
    print: bool,
}

impl FakeGraph {
    /// Binds `127.0.0.1:0` and serves on the current tokio runtime.
    pub async fn start() -> std::io::Result<FakeGraph> {
        Self::bind("127.0.0.1:0".parse().expect("address"), false).await
    }

    /// Binds `addr`; with `print`, every request is printed to stdout as it arrives.
    pub async fn bind(addr: SocketAddr, print: bool) -> std::io::Result<FakeGraph> {
        let listener = TcpListener::bind(addr).await?;
        let fake = FakeGraph {
            addr: listener.local_addr()?,
            state: Arc::default(),
            notify: Arc::default(),
            print,
        };
        let server = fake.clone();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let server = server.clone();
                let epoch = server.state().epoch;
                tokio::spawn(async move { server.connection(socket, epoch).await });
            }
        });
        Ok(fake)
    }

    /// `http://127.0.0.1:PORT`, for `messenger.graph_base_url`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The next Send API requests get these answers, in order (then 200 again).
    pub fn script(&self, answers: impl IntoIterator<Item = Scripted>) {
        self.state().script.extend(answers);
    }

    /// Every Send API request gets `answer` until [`FakeGraph::recover`].
    pub fn fail_all(&self, answer: Scripted) {
        self.state().failing = Some(answer);
    }

    /// Ends [`FakeGraph::fail_all`].
    pub fn recover(&self) {
        let mut state = self.state();
        state.failing = None;
        state.failing_old = None;
    }

    /// Ends [`FakeGraph::fail_all`] for connections accepted from now on; connections
    /// already open keep getting its answer. For a crash test: a request a killed process
    /// wrote just before it died may still be waiting on the wire, unread, and answering
    /// it 200 would count a send the restarted process makes again (the Send API has no
    /// idempotency key: a send in flight at a crash can arrive twice).
    pub fn recover_for_new_connections(&self) {
        let mut state = self.state();
        state.epoch += 1;
        state.failing_old = state.failing.take();
    }

    /// Every Send API request with `token` is answered with Graph error 190 (the token
    /// expired), until [`FakeGraph::renew`].
    pub fn expire(&self, token: &str) {
        self.state().expired.insert(token.into());
    }

    /// Ends [`FakeGraph::expire`] for `token`.
    pub fn renew(&self, token: &str) {
        self.state().expired.remove(token);
    }

    /// The User Profile API names `psid` so.
    pub fn profile(&self, psid: &str, first: &str, last: &str) {
        self.state().profiles.insert(psid.into(), (first.into(), last.into()));
    }

    /// Every request so far.
    pub fn received(&self) -> Vec<Received> {
        self.state().received.clone()
    }

    /// The Send API requests that were accepted (200), in order.
    pub fn accepted_sends(&self) -> Vec<Received> {
        self.received()
            .into_iter()
            .filter(|r| r.method == "POST" && r.path.ends_with("/me/messages") && r.answered == 200)
            .collect()
    }

    /// Waits until `pred` holds over the requests received, or `within` passes.
    pub async fn wait_until(&self, within: Duration, pred: impl Fn(&[Received]) -> bool) -> Vec<Received> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let notified = self.notify.notified();
            {
                let received = self.received();
                if pred(&received) {
                    return received;
                }
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.received();
            }
        }
    }

    async fn connection(&self, mut socket: TcpStream, epoch: u64) {
        let mut buf = Vec::new();
        loop {
            let Some((head_end, content_length)) = read_head(&mut socket, &mut buf).await else {
                return;
            };
            while buf.len() < head_end + content_length {
                let mut chunk = [0u8; 8192];
                match socket.read(&mut chunk).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            }
            let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
            let body: Vec<u8> = buf[head_end..head_end + content_length].to_vec();
            buf.drain(..head_end + content_length);
            let answer = self.answer(&head, &body, epoch);
            let Some((status, json)) = answer else {
                let _ = socket.shutdown().await;
                return;
            };
            let reply = format!(
                "HTTP/1.1 {status} {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{json}",
                if status < 400 { "OK" } else { "Error" },
                json.len()
            );
            if socket.write_all(reply.as_bytes()).await.is_err() {
                return;
            }
        }
    }

    /// Records a request and decides its answer (`None`: drop the connection).
    fn answer(&self, head: &str, body: &[u8], epoch: u64) -> Option<(u16, String)> {
        let line = head.lines().next().unwrap_or_default();
        let mut parts = line.split_whitespace();
        let method = parts.next().unwrap_or_default().to_string();
        let target = parts.next().unwrap_or_default();
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        let query: HashMap<String, String> = url_pairs(query);
        let content_type = head
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.trim()
                    .eq_ignore_ascii_case("content-type")
                    .then(|| v.trim().to_string())
            })
            .unwrap_or_default();
        let json: serde_json::Value = match content_type.split_once("boundary=") {
            Some((kind, boundary)) if kind.starts_with("multipart/form-data") => multipart_json(body, boundary),
            _ => serde_json::from_slice(body).unwrap_or(serde_json::Value::Null),
        };
        let mut state = self.state();
        let expired = query.get("access_token").is_some_and(|t| state.expired.contains(t));
        let thread_call = path.ends_with("/me/take_thread_control") || path.ends_with("/me/pass_thread_control");
        let answer = if method == "POST" && (path.ends_with("/me/messages") || thread_call) && expired {
            Some((
                401,
                r#"{"error":{"message":"Error validating access token: Session has expired","type":"OAuthException","code":190,"error_subcode":463}}"#.into(),
            ))
        } else if method == "POST" && thread_call {
            // Handover Protocol: take or pass thread control (Meta answers `success`).
            Some((200, r#"{"success":true}"#.into()))
        } else if method == "POST" && path.ends_with("/me/messages") {
            let old_connection = epoch < state.epoch;
            let failing = state
                .failing
                .clone()
                .or_else(|| old_connection.then(|| state.failing_old.clone()).flatten());
            match failing.or_else(|| state.script.pop_front()) {
                Some(Scripted::Drop) => None,
                Some(Scripted::Status(s, b)) => Some((s, b)),
                None => {
                    state.next_message += 1;
                    let recipient = json["recipient"]["id"].as_str().unwrap_or_default().to_string();
                    Some((
                        200,
                        serde_json::json!({"recipient_id": recipient, "message_id": format!("m_fake_{}", state.next_message)})
                            .to_string(),
                    ))
                }
            }
        } else if method == "GET" {
            let psid = path.rsplit('/').next().unwrap_or_default();
            match state.profiles.get(psid) {
                Some((first, last)) => Some((
                    200,
                    serde_json::json!({"first_name": first, "last_name": last, "id": psid}).to_string(),
                )),
                None => Some((
                    400,
                    r#"{"error":{"message":"Unsupported get request","type":"GraphMethodException","code":100}}"#
                        .into(),
                )),
            }
        } else {
            Some((404, r#"{"error":{"message":"unknown path","code":803}}"#.into()))
        };
        let received = Received {
            method,
            path: path.into(),
            query,
            body: json,
            answered: answer.as_ref().map_or(0, |a| a.0),
        };
        if self.print {
            let mut query: Vec<_> = received.query.iter().map(|(k, v)| format!("{k}={v}")).collect();
            query.sort();
            println!(
                "{} {}?{} -> {} {}",
                received.method,
                received.path,
                query.join("&"),
                received.answered,
                if received.body.is_null() {
                    String::new()
                } else {
                    received.body.to_string()
                }
            );
        }
        state.received.push(received);
        drop(state);
        self.notify.notify_waiters();
        answer
    }
}

/// A multipart/form-data body as JSON: each text field by name (parsed as JSON where it
/// is JSON, as Meta's `recipient` and `message` are), and the file part as `filedata`:
/// `{"filename","content_type","size"}` (the bytes themselves are not kept).
fn multipart_json(body: &[u8], boundary: &str) -> serde_json::Value {
    let boundary = boundary.trim_matches('"');
    let delimiter = format!("--{boundary}");
    let mut out = serde_json::Map::new();
    let mut rest = body;
    while let Some(start) = find(rest, delimiter.as_bytes()) {
        rest = &rest[start + delimiter.len()..];
        if rest.starts_with(b"--") {
            break;
        }
        let Some(head_end) = find(rest, b"\r\n\r\n") else { break };
        let head = String::from_utf8_lossy(&rest[..head_end]).to_string();
        let content = &rest[head_end + 4..];
        let end = find(content, format!("\r\n{delimiter}").as_bytes()).unwrap_or(content.len());
        let value = &content[..end];
        let disposition = head
            .lines()
            .find(|l| l.to_ascii_lowercase().starts_with("content-disposition:"))
            .unwrap_or_default();
        let attr = |name: &str| {
            disposition.split(';').find_map(|p| {
                p.trim()
                    .strip_prefix(&format!("{name}="))
                    .map(|v| v.trim_matches('"').to_string())
            })
        };
        let part_type = head
            .lines()
            .find_map(|l| {
                l.split_once(':')
                    .filter(|(k, _)| k.trim().eq_ignore_ascii_case("content-type"))
            })
            .map(|(_, v)| v.trim().to_string());
        if let Some(name) = attr("name") {
            if let Some(filename) = attr("filename") {
                out.insert(
                    name,
                    serde_json::json!({"filename": filename, "content_type": part_type, "size": value.len()}),
                );
            } else {
                let text = String::from_utf8_lossy(value).to_string();
                let v = serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text));
                out.insert(name, v);
            }
        }
        rest = &content[end..];
    }
    serde_json::Value::Object(out)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Reads until the end of the request head; returns (head length, content length).
async fn read_head(socket: &mut TcpStream, buf: &mut Vec<u8>) -> Option<(usize, usize)> {
    loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..i]).to_lowercase();
            let length = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            return Some((i + 4, length));
        }
        let mut chunk = [0u8; 8192];
        match socket.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// `a=1&b=x%20y` as pairs (percent-decoding what tokens and ids use).
fn url_pairs(query: &str) -> HashMap<String, String> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect()
}

fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
