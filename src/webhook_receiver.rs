//! A webhook receiver for trying and testing events out: it answers every POST, keeps
//! what it got, checks each signature with the subscription's secret, and can fail on
//! purpose. `switchboard-fake-graph receive` runs one that prints each event; the tests
//! run one in-process.

use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use tokio::sync::Notify;

/// One POST as received.
#[derive(Debug, Clone)]
pub struct Received {
    /// `X-Switchboard-Event-Id`.
    pub id: String,
    /// `X-Switchboard-Event`.
    pub kind: String,
    /// `X-Switchboard-Signature-256` is the HMAC of the body with the secret.
    pub signature_ok: bool,
    /// The body (`Null` if it was not JSON).
    pub body: serde_json::Value,
    /// Answered with a failure on purpose (the sender will try it again).
    pub refused: bool,
}

struct State {
    secret: String,
    got: Mutex<Vec<Received>>,
    /// Answer 503 to every request while set.
    down: AtomicBool,
    /// Answer 500 to this many more requests.
    fail_next: AtomicU32,
    /// Print each event as it comes (the command-line receiver).
    print: bool,
    arrived: Notify,
}

/// A running receiver.
pub struct Receiver {
    /// `http://ADDR/hooks`: the URL to subscribe.
    pub url: String,
    pub addr: SocketAddr,
    state: Arc<State>,
    server: actix_web::dev::ServerHandle,
}

fn header(req: &HttpRequest, name: &str) -> String {
    req.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string()
}

async fn receive(req: HttpRequest, body: web::Bytes, state: web::Data<State>) -> HttpResponse {
    // Checked in constant time, as a real receiver should (the form of Meta's signature).
    let signature_ok = crate::channels::messenger::webhook::signature_valid(
        state.secret.as_bytes(),
        &body,
        Some(&header(&req, "X-Switchboard-Signature-256")),
    );
    let refused = state.down.load(Ordering::SeqCst)
        || state
            .fail_next
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
    let r = Received {
        id: header(&req, "X-Switchboard-Event-Id"),
        kind: header(&req, "X-Switchboard-Event"),
        signature_ok,
        body: serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null),
        refused,
    };
    if state.print {
        println!(
            "{} event {} {} (signature {})",
            if refused { "refused" } else { "got" },
            r.id,
            r.kind,
            if signature_ok { "ok" } else { "WRONG" },
        );
        println!("{}", r.body);
    }
    if let Ok(mut got) = state.got.lock() {
        got.push(r);
    }
    state.arrived.notify_waiters();
    match (refused, state.down.load(Ordering::SeqCst)) {
        (false, _) => HttpResponse::NoContent().finish(),
        (true, true) => HttpResponse::ServiceUnavailable().body("down on purpose"),
        (true, false) => HttpResponse::InternalServerError().body("failing on purpose"),
    }
}

impl Receiver {
    /// Listens on `listen` (port 0: any free one) in the current actix system.
    pub fn start(listen: SocketAddr, secret: &str, print: bool) -> std::io::Result<Receiver> {
        let state = Arc::new(State {
            secret: secret.to_string(),
            got: Mutex::new(Vec::new()),
            down: AtomicBool::new(false),
            fail_next: AtomicU32::new(0),
            print,
            arrived: Notify::new(),
        });
        let listener = TcpListener::bind(listen)?;
        let addr = listener.local_addr()?;
        let data = web::Data::from(state.clone());
        let server = HttpServer::new(move || App::new().app_data(data.clone()).default_service(web::to(receive)))
            .workers(1)
            .disable_signals()
            .listen(listener)?
            .run();
        let handle = server.handle();
        actix_rt::spawn(server);
        Ok(Receiver {
            url: format!("http://{addr}/hooks"),
            addr,
            state,
            server: handle,
        })
    }

    /// Every POST so far, refused ones included, in arrival order.
    pub fn received(&self) -> Vec<Received> {
        self.state.got.lock().map(|g| g.clone()).unwrap_or_default()
    }

    /// The events taken (answered 2xx), each once (by id), in the order first taken.
    pub fn taken(&self) -> Vec<Received> {
        let mut seen = std::collections::HashSet::new();
        self.received()
            .into_iter()
            .filter(|r| !r.refused && seen.insert(r.id.clone()))
            .collect()
    }

    /// Answer 503 to everything while `down`.
    pub fn set_down(&self, down: bool) {
        self.state.down.store(down, Ordering::SeqCst);
    }

    /// Answer 500 to the next `n` requests.
    pub fn fail_next(&self, n: u32) {
        self.state.fail_next.store(n, Ordering::SeqCst);
    }

    /// Waits until `done` holds for what was received, for at most `within`; returns
    /// whether it did.
    pub async fn wait_until(&self, within: Duration, done: impl Fn(&[Received]) -> bool) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let arrived = self.state.arrived.notified();
            if done(&self.received()) {
                return true;
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                return done(&self.received());
            }
        }
    }

    /// Stops listening.
    pub async fn stop(self) {
        self.server.stop(false).await;
    }
}
