//! Baselines measured in the same run as the scenario (`--baseline`), so that figures can
//! be reported as ratios to what the stack underneath costs on this machine:
//!
//! - `ws_echo`: a raw actix-web WebSocket echo server (in this process, 127.0.0.1:0,
//!   `TCP_NODELAY`) and awc clients, each sending one text frame and waiting for its echo:
//!   the floor of a desktop command's round trip.
//! - `actix_cross_arbiter` / `actix_same_arbiter`: a task awaiting `addr.send(msg)` to an
//!   actor that answers at once, on another arbiter (thread) or on its own: the floor of
//!   one `Engine` call.
//! - `sled_insert_flush`: one 100-byte insert then `flush()`, in a temporary directory:
//!   the floor of one durable commit without group commit.

use std::net::TcpListener;
use std::time::{Duration, Instant};

use actix::prelude::*;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use serde::Serialize;

use super::stats::{histogram, record};

/// One baseline's figures.
#[derive(Debug, Clone, Serialize)]
pub struct Baseline {
    pub name: String,
    /// What one operation is.
    pub what: String,
    /// Concurrent clients.
    pub clients: usize,
    pub ops: u64,
    pub ops_per_s: f64,
    pub p50_us: u64,
    pub p99_us: u64,
}

fn baseline(name: &str, what: &str, clients: usize, h: &Histogram<u64>, elapsed: Duration) -> Baseline {
    Baseline {
        name: name.into(),
        what: what.into(),
        clients,
        ops: h.len(),
        ops_per_s: (h.len() as f64 / elapsed.as_secs_f64()).round(),
        p50_us: h.value_at_quantile(0.5),
        p99_us: h.value_at_quantile(0.99),
    }
}

/// Runs every baseline for about `each` apiece. Must run inside an actix system.
pub async fn run_all(each: Duration) -> Vec<Baseline> {
    let mut out = Vec::new();
    for clients in [1, 16] {
        match ws_echo(each, clients).await {
            Ok(b) => out.push(b),
            Err(e) => eprintln!("switchboard-load: ws_echo baseline failed: {e}"),
        }
    }
    out.push(actix_round_trip(each, true).await);
    out.push(actix_round_trip(each, false).await);
    match sled_flush(each).await {
        Ok(b) => out.push(b),
        Err(e) => eprintln!("switchboard-load: sled baseline failed: {e}"),
    }
    out
}

async fn echo(req: HttpRequest, body: web::Payload) -> Result<HttpResponse, actix_web::Error> {
    let (res, mut session, mut stream) = actix_ws::handle(&req, body)?;
    actix_rt::spawn(async move {
        while let Some(Ok(msg)) = stream.next().await {
            let r = match msg {
                actix_ws::Message::Text(t) => session.text(t).await,
                actix_ws::Message::Ping(p) => session.pong(&p).await,
                actix_ws::Message::Close(_) => break,
                _ => Ok(()),
            };
            if r.is_err() {
                break;
            }
        }
        let _ = session.close(None).await;
    });
    Ok(res)
}

/// `clients` WebSockets to a raw echo server, each in a loop of frame → echo.
pub async fn ws_echo(each: Duration, clients: usize) -> Result<Baseline, String> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let server = HttpServer::new(|| App::new().route("/ws", web::get().to(echo)))
        .workers(2)
        .disable_signals()
        .tcp_nodelay(true)
        .listen(listener)
        .map_err(|e| e.to_string())?
        .run();
    let handle = server.handle();
    actix_rt::spawn(server);
    let client = super::http::client(0);
    let mut tasks = Vec::new();
    let start = Instant::now();
    for _ in 0..clients {
        let (_, framed) = client
            .ws(format!("ws://{addr}/ws"))
            .connect()
            .await
            .map_err(|e| e.to_string())?;
        tasks.push(actix_rt::spawn(async move {
            let mut framed = framed;
            let mut h = histogram();
            let payload = r#"{"type":"send","conversation_id":"c-1","text":"Happy to help","request_id":"1"}"#;
            while start.elapsed() < each {
                let t = Instant::now();
                if framed.send(awc::ws::Message::Text(payload.into())).await.is_err() {
                    break;
                }
                loop {
                    match framed.next().await {
                        Some(Ok(awc::ws::Frame::Text(_))) => break,
                        Some(Ok(_)) => continue,
                        _ => return h,
                    }
                }
                record(&mut h, t.elapsed());
            }
            let _ = framed.send(awc::ws::Message::Close(None)).await;
            h
        }));
    }
    let mut h = histogram();
    for t in tasks {
        if let Ok(part) = t.await {
            let _ = h.add(part);
        }
    }
    let elapsed = start.elapsed();
    handle.stop(false).await;
    Ok(baseline(
        "ws_echo",
        "actix-web WebSocket echo: text frame → echo (awc client, loopback)",
        clients,
        &h,
        elapsed,
    ))
}

/// An actor that answers at once: the cost of the actix machinery alone (also the
/// engine bench's round-trip baseline).
pub struct Echo;

impl Actor for Echo {
    type Context = Context<Self>;
}

/// A message [`Echo`] answers with its number.
#[derive(Message)]
#[rtype(result = "u64")]
pub struct Ping(pub u64);

impl Handler<Ping> for Echo {
    type Result = u64;
    fn handle(&mut self, m: Ping, _: &mut Context<Self>) -> u64 {
        m.0
    }
}

/// A task awaiting `addr.send` to an actor on another arbiter (`cross`) or on this one.
pub async fn actix_round_trip(each: Duration, cross: bool) -> Baseline {
    let arbiter = cross.then(Arbiter::new);
    let addr = match &arbiter {
        Some(a) => Echo::start_in_arbiter(&a.handle(), |_| Echo),
        None => Echo.start(),
    };
    let mut h = histogram();
    let start = Instant::now();
    let mut i = 0;
    while start.elapsed() < each {
        let t = Instant::now();
        if addr.send(Ping(i)).await.is_err() {
            break;
        }
        record(&mut h, t.elapsed());
        i += 1;
    }
    let elapsed = start.elapsed();
    if let Some(a) = arbiter {
        a.stop();
    }
    let (name, what) = if cross {
        (
            "actix_cross_arbiter",
            "actix addr.send().await to an actor on another arbiter (thread)",
        )
    } else {
        (
            "actix_same_arbiter",
            "actix addr.send().await to an actor on the same arbiter",
        )
    };
    baseline(name, what, 1, &h, elapsed)
}

/// One 100-byte insert and `flush()` at a time.
pub async fn sled_flush(each: Duration) -> Result<Baseline, String> {
    let (h, elapsed) = tokio::task::spawn_blocking(move || -> Result<(Histogram<u64>, Duration), String> {
        let dir = tempfile::Builder::new()
            .prefix("switchboard-load-sled-")
            .tempdir()
            .map_err(|e| e.to_string())?;
        let db = sled::open(dir.path()).map_err(|e| e.to_string())?;
        let value = [7u8; 100];
        let mut h = histogram();
        let start = Instant::now();
        let mut i: u64 = 0;
        while start.elapsed() < each {
            let t = Instant::now();
            db.insert(i.to_be_bytes(), &value[..]).map_err(|e| e.to_string())?;
            db.flush().map_err(|e| e.to_string())?;
            record(&mut h, t.elapsed());
            i += 1;
        }
        Ok((h, start.elapsed()))
    })
    .await
    .map_err(|e| e.to_string())??;
    Ok(baseline(
        "sled_insert_flush",
        "sled insert (100 B) + flush(), one at a time",
        1,
        &h,
        elapsed,
    ))
}
