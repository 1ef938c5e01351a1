//! `--hold-open`: the memory scenario. Over HTTP (`--url` or `--serve`), connect
//! `--agents` desktops, open `--conversations` conversations (default 100,000) and let the
//! agents accept them (up to `--capacity` each), then hold everything open and read the
//! server's resident memory from `/proc/PID/status` (`--server-pid`, or this process with
//! `--serve`). Nothing is ended: the conversations stay open on the server.

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde::Serialize;

use super::backend::{Backend, Desk, DeskEvent, Setup};
use super::http::{Http, Target};
use super::{LoadError, Options};
use crate::core::{OfferKind, Presence};

/// What the memory scenario measured.
#[derive(Debug, Clone, Serialize)]
pub struct HoldReport {
    pub agents: usize,
    pub desktops_connected: u64,
    pub conversations_opened: u64,
    pub conversations_accepted: u64,
    pub open_errors: u64,
    pub setup_s: f64,
    pub open_s: f64,
    pub server_pid: Option<u32>,
    /// `VmRSS` of the server, KiB, once everything is open.
    pub server_rss_kib: Option<u64>,
    /// `VmHWM` (peak RSS) of the server, KiB.
    pub server_peak_rss_kib: Option<u64>,
    /// `VmRSS` of this process, KiB.
    pub harness_rss_kib: Option<u64>,
}

/// A field of `/proc/PID/status` in KiB.
pub fn proc_status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Runs the memory scenario and prints what it found.
pub async fn run(opts: &Options) -> Result<HoldReport, LoadError> {
    let (served, base, token) = if opts.serve {
        let s = super::serve::Served::start(opts).await?;
        let (b, t) = (s.base.clone(), s.admin_token.clone());
        (Some(s), b, t)
    } else {
        let url = opts
            .url
            .clone()
            .ok_or_else(|| LoadError::Options("--hold-open needs --url or --serve".into()))?;
        if !opts.allow_remote && !super::is_loopback_url(&url)? {
            return Err(LoadError::Remote(url));
        }
        let token = opts
            .admin_token
            .clone()
            .or_else(|| crate::config::Config::load(None).ok().map(|c| c.api.admin_token))
            .ok_or_else(|| LoadError::Options("--admin-token is required".into()))?;
        (None, url.trim_end_matches('/').to_string(), token)
    };
    let server_pid = opts.server_pid.or(served.as_ref().map(|s| s.pid));
    let prefix = opts
        .id_prefix
        .clone()
        .unwrap_or_else(|| format!("h{}-", std::process::id()));
    let backend = Http::new(Target {
        base,
        admin_token: token,
        prefix,
        connections: opts.http_connections,
    });
    backend
        .wait_healthy(Duration::from_secs(10))
        .await
        .map_err(|f| LoadError::Setup(format!("healthz: {}", f.code)))?;
    let start = Instant::now();
    let agents: Vec<String> = (0..opts.agents).map(|i| format!("load-{i}")).collect();
    backend
        .setup(&Setup {
            queues: vec!["q1".into()],
            agents: agents
                .iter()
                .map(|a| (a.clone(), vec!["q1".into()], opts.capacity))
                .collect(),
            ..Default::default()
        })
        .await
        .map_err(|f| LoadError::Setup(format!("creating agents: {}", f.code)))?;
    let connected = Rc::new(Cell::new(0u64));
    let accepted = Rc::new(Cell::new(0u64));
    let desks: Vec<_> = futures_util::stream::iter(agents.iter().cloned())
        .map(|a| {
            let b = backend.clone();
            async move { b.connect(&a).await.map(|d| (a, d)) }
        })
        .buffer_unordered(64)
        .collect()
        .await;
    for d in desks {
        let (agent, mut desk) = d.map_err(|f| LoadError::Setup(format!("connecting desktops: {}", f.code)))?;
        connected.set(connected.get() + 1);
        let (b, accepted) = (backend.clone(), accepted.clone());
        actix_rt::spawn(async move {
            while let Some(e) = desk.next().await {
                if let DeskEvent::Offer {
                    conversation,
                    kind: OfferKind::New,
                    ..
                } = e
                {
                    let (b, agent, accepted) = (b.clone(), agent.clone(), accepted.clone());
                    actix_rt::spawn(async move {
                        if b.accept(&agent, &conversation).await.is_ok() {
                            accepted.set(accepted.get() + 1);
                        }
                    });
                }
            }
        });
    }
    futures_util::stream::iter(agents.iter())
        .map(|a| backend.set_state(a, Presence::Available))
        .buffer_unordered(64)
        .for_each(|_| async {})
        .await;
    let setup_s = start.elapsed().as_secs_f64();
    let n = opts.conversations.unwrap_or(100_000);
    let t = Instant::now();
    let errors = Rc::new(Cell::new(0u64));
    futures_util::stream::iter(1..=n)
        .map(|i| {
            let (b, errors) = (backend.clone(), errors.clone());
            async move {
                if b.customer_message("ep-q1", &format!("hold-{i}"), "Hello, I need help", None)
                    .await
                    .is_err()
                {
                    errors.set(errors.get() + 1);
                }
            }
        })
        .buffer_unordered(opts.http_connections.max(1))
        .for_each(|_| async {})
        .await;
    // Offers follow as fast as agents have room.
    let want = n.min(opts.agents as u64 * opts.capacity as u64);
    let deadline = Instant::now() + opts.drain_timeout;
    while accepted.get() < want && Instant::now() < deadline {
        actix_rt::time::sleep(Duration::from_millis(50)).await;
    }
    let open_s = t.elapsed().as_secs_f64();
    // Let the server settle (group commit, allocator) before reading its memory.
    actix_rt::time::sleep(Duration::from_secs(2)).await;
    let report = HoldReport {
        agents: opts.agents,
        desktops_connected: connected.get(),
        conversations_opened: n - errors.get(),
        conversations_accepted: accepted.get(),
        open_errors: errors.get(),
        setup_s,
        open_s,
        server_pid,
        server_rss_kib: server_pid.and_then(|p| proc_status_kib(p, "VmRSS:")),
        server_peak_rss_kib: server_pid.and_then(|p| proc_status_kib(p, "VmHWM:")),
        harness_rss_kib: proc_status_kib(std::process::id(), "VmRSS:"),
    };
    if let Some(s) = served {
        s.stop().await;
    }
    Ok(report)
}
