//! The load harness behind `switchboard-load`: drives agents and customers through a whole
//! conversation lifecycle against one Switchboard, measures it, and checks ../shared/SPEC.md's
//! invariants from outside.
//!
//! - `backend`: the [`backend::Backend`] trait, the one seam between the scenario and a
//!   Switchboard, and its in-process implementation over [`crate::engine::Engine`].
//! - `driver`: the scenario (arrivals, agents, RONA, transfers, conferences, drain).
//! - `check`: the outside checks over the engine's facts.
//! - `skills`: the `--skills` scenario (skills, two routing steps, priorities) and its
//!   check of invariant 7.
//! - `stats`, `report`, `chart`: HDR histograms, the JSON report and table, the SVG chart.
//!
//! # Guarantees
//! A run is bounded by `--duration` and `--conversations`, then drains what is open for at
//! most `--drain-timeout`. It talks only to the Switchboard it was given: in-process, or a
//! loopback URL unless `--allow-remote`.

pub mod backend;
pub mod baseline;
pub mod chart;
pub mod check;
pub mod driver;
pub mod hold;
pub mod http;
pub mod report;
pub mod serve;
pub mod skills;
pub mod stats;

use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

use crate::core::Rules;
pub use report::Report;

/// The harness's options (`switchboard-load --help`).
#[derive(Debug, Clone, clap::Args, Serialize)]
pub struct Options {
    /// Start the engine in this process (in-memory store) and drive it through its Rust API.
    #[arg(long, conflicts_with_all = ["url", "serve"])]
    pub in_process: bool,
    /// Start the real server in this process (127.0.0.1, an ephemeral port, sled in a
    /// temporary directory) and drive it over REST and WebSocket like --url.
    #[arg(long, conflicts_with = "url")]
    pub serve: bool,
    /// Drive a running Switchboard over REST and WebSocket at this base URL.
    #[arg(long)]
    pub url: Option<String>,
    /// Allow a --url that is not a loopback address.
    #[arg(long)]
    pub allow_remote: bool,
    /// Admin token for --url (default: the development token of config/default.toml).
    #[arg(long)]
    #[serde(skip)]
    pub admin_token: Option<String>,
    /// Log the harness's agents out at the end (--url).
    #[arg(long)]
    pub cleanup: bool,
    /// Prefix of the ids the harness creates over HTTP (default: `r<pid>-<seconds>-`),
    /// so that runs against one server do not collide.
    #[arg(long)]
    pub id_prefix: Option<String>,
    /// Most REST connections open at once (--url, --serve).
    #[arg(long, default_value_t = 64)]
    pub http_connections: usize,

    /// Agents (each with one desktop).
    #[arg(long, default_value_t = 200)]
    pub agents: usize,
    /// Conversations each agent may hold at once.
    #[arg(long, default_value_t = 1)]
    pub capacity: u32,
    /// Queues (each with one entry point); with more than one, each agent serves two.
    #[arg(long, default_value_t = 1)]
    pub queues: usize,

    /// Stop sending customers after this long (e.g. 10s, 500ms).
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    #[serde(serialize_with = "seconds")]
    pub duration: Duration,
    /// Stop sending customers after this many.
    #[arg(long)]
    pub conversations: Option<u64>,
    /// Customers per second; 0 sends as fast as conversations complete (see --max-open).
    #[arg(long, default_value_t = 0.0)]
    pub rate: f64,
    /// Most conversations open at once (default: twice the agents' total capacity).
    #[arg(long)]
    pub max_open: Option<usize>,
    /// After the arrivals stop, wait at most this long for open conversations to complete.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    #[serde(serialize_with = "seconds")]
    pub drain_timeout: Duration,

    /// Supervisors watching the floor over their live socket during the run (--url,
    /// --serve): each reads every `snapshot`, `queue`, `agent` and `conversation` event.
    #[arg(long, default_value_t = 0)]
    pub supervisors: usize,

    /// Messages each way per conversation (customer, then agent).
    #[arg(long, default_value_t = 2)]
    pub replies: u32,
    /// Milliseconds an agent waits before accepting an offer.
    #[arg(long, default_value_t = 0)]
    pub think_ms: u64,
    /// Share of agents (0..1) that let every other offer expire (RONA), then set
    /// themselves available again.
    #[arg(long, default_value_t = 0.0)]
    pub rona_share: f64,
    /// Share of conversations (0..1) transferred after the first exchange (half to an
    /// agent, half to a queue).
    #[arg(long, default_value_t = 0.0)]
    pub transfer_share: f64,
    /// Share of conversations (0..1) in which the owner invites a conference guest.
    #[arg(long, default_value_t = 0.0)]
    pub conference_share: f64,
    /// Store of the in-process engine.
    #[arg(long, value_enum, default_value_t = backend::StoreKind::Memory)]
    pub store: backend::StoreKind,
    /// One `Engine::exec` per operation instead of batching what the harness's tasks have
    /// ready at once into `Engine::exec_batch` (in-process engine).
    #[arg(long)]
    pub no_batch: bool,
    /// Write no reports (`reports.enabled = false`, in-process engine): what records,
    /// figures and search texts cost is this run's throughput against one without it.
    #[arg(long)]
    pub no_reports: bool,
    /// The skilled scenario (`load::skills`): agents with four languages at random
    /// levels, each queue's entry point (and the queue, for transfers) with two routing
    /// steps (its language at level 7 for --step-ms, then at level 3), a fifth of the
    /// conversations with a priority of their own; the checks verify invariant 7.
    #[arg(long)]
    pub skills: bool,
    /// With --skills: how long a conversation stays in step 0, in milliseconds.
    #[arg(long, default_value_t = 500)]
    pub step_ms: u64,
    /// Offer, transfer and conference deadline in milliseconds (in-process engine).
    #[arg(long, default_value_t = 1000)]
    pub offer_timeout_ms: u64,

    /// Write the JSON report here.
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// Write the SVG chart of latency percentiles over time here.
    #[arg(long)]
    pub chart: Option<PathBuf>,
    /// Length of one interval of the time series and the progress display, in ms.
    #[arg(long, default_value_t = 1000)]
    pub interval_ms: u64,
    /// Seed of the scenario's random choices.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
    /// The memory scenario instead of lifecycles (see `load::hold`): open --conversations
    /// (default 100,000), let --agents accept them up to --capacity, hold, read the
    /// server's RSS.
    #[arg(long)]
    pub hold_open: bool,
    /// The server's process id, whose RSS --hold-open reads (default with --serve: this
    /// process).
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// Before the scenario, measure the baselines (a raw actix-web WebSocket echo, an
    /// actix round trip, a sled insert + flush) for about this long each, e.g. 2s.
    #[arg(long, value_parser = humantime::parse_duration)]
    #[serde(serialize_with = "opt_seconds")]
    pub baseline: Option<Duration>,
}

fn opt_seconds<S: serde::Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_f64(d.as_secs_f64()),
        None => s.serialize_none(),
    }
}

impl Default for Options {
    /// The defaults of the command line, in-process.
    fn default() -> Self {
        // The defaults above parse; this is tested.
        let mut o = Options::from_args(["--in-process"]).expect("default options");
        o.admin_token = None;
        o
    }
}

impl Options {
    /// The options of a `switchboard-load` command line (`args` without the program name).
    pub fn from_args<'a>(args: impl IntoIterator<Item = &'a str>) -> Result<Options, clap::Error> {
        use clap::{FromArgMatches, Parser};
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            options: Options,
        }
        let m = <Cli as clap::CommandFactory>::command()
            .try_get_matches_from(std::iter::once("switchboard-load").chain(args))?;
        Ok(Cli::from_arg_matches(&m)?.options)
    }
}

fn seconds<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

/// Why a run could not start.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("invalid options: {0}")]
    Options(String),
    #[error("refusing to drive {0}: not a loopback address (pass --allow-remote to insist)")]
    Remote(String),
    #[error("{0}")]
    NotYetAvailable(String),
    #[error("setup failed: {0}")]
    Setup(String),
}

impl Options {
    /// `in-process`, `http` or `serve` (HTTP against a server started in this process).
    pub fn mode_name(&self) -> &'static str {
        if self.serve {
            "serve"
        } else if self.url.is_some() {
            "http"
        } else {
            "in-process"
        }
    }

    fn validate(&self) -> Result<(), LoadError> {
        let share = |name: &str, x: f64| {
            if (0.0..=1.0).contains(&x) {
                Ok(())
            } else {
                Err(LoadError::Options(format!("{name} must be between 0 and 1")))
            }
        };
        share("--rona-share", self.rona_share)?;
        share("--transfer-share", self.transfer_share)?;
        share("--conference-share", self.conference_share)?;
        share(
            "--transfer-share + --conference-share",
            self.transfer_share + self.conference_share,
        )?;
        if self.agents == 0 {
            return Err(LoadError::Options("--agents must be at least 1".into()));
        }
        if self.step_ms == 0 {
            return Err(LoadError::Options("--step-ms must be at least 1".into()));
        }
        if self.queues == 0 {
            return Err(LoadError::Options("--queues must be at least 1".into()));
        }
        if self.capacity == 0 || self.capacity > crate::core::MAX_CAPACITY {
            return Err(LoadError::Options(format!(
                "--capacity must be 1 to {}",
                crate::core::MAX_CAPACITY
            )));
        }
        if !(self.rate >= 0.0 && self.rate.is_finite()) {
            return Err(LoadError::Options("--rate must be 0 or more".into()));
        }
        if [self.in_process, self.url.is_some(), self.serve]
            .iter()
            .filter(|x| **x)
            .count()
            != 1
        {
            return Err(LoadError::Options(
                "give exactly one of --in-process, --url and --serve".into(),
            ));
        }
        Ok(())
    }
}

/// True when `url`'s host is a loopback address (`localhost`, 127.0.0.0/8, `::1`).
pub fn is_loopback_url(url: &str) -> Result<bool, LoadError> {
    let uri: actix_web::http::Uri = url
        .parse()
        .map_err(|e| LoadError::Options(format!("--url {url}: {e}")))?;
    match uri.scheme_str() {
        Some("http") | Some("https") => {}
        _ => {
            return Err(LoadError::Options(format!(
                "--url {url}: must start with http:// or https://"
            )))
        }
    }
    let host = uri
        .host()
        .ok_or_else(|| LoadError::Options(format!("--url {url}: no host")))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.eq_ignore_ascii_case("localhost") {
        return Ok(true);
    }
    Ok(host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback()))
}

/// Runs the harness as `opts` say. Must run inside an actix system (the engine and the
/// scenario's tasks live on its arbiters).
pub async fn run(opts: Options) -> Result<Report, LoadError> {
    opts.validate()?;
    let baselines = match opts.baseline {
        Some(each) => baseline::run_all(each).await,
        None => Vec::new(),
    };
    let mut report = run_scenario(opts).await?;
    report.baselines = baselines;
    Ok(report)
}

async fn run_scenario(opts: Options) -> Result<Report, LoadError> {
    if let Some(url) = &opts.url {
        if !opts.allow_remote && !is_loopback_url(url)? {
            return Err(LoadError::Remote(url.clone()));
        }
        let token = opts
            .admin_token
            .clone()
            .or_else(|| crate::config::Config::load(None).ok().map(|c| c.api.admin_token))
            .ok_or_else(|| LoadError::Options("--admin-token is required".into()))?;
        return http::run(&opts, url.trim_end_matches('/'), &token).await;
    }
    if opts.serve {
        let server = serve::Served::start(&opts).await?;
        let report = http::run(&opts, &server.base, &server.admin_token).await;
        server.stop().await;
        return report;
    }
    let rules = Rules {
        offer_timeout_ms: opts.offer_timeout_ms,
        transfer_timeout_ms: opts.offer_timeout_ms,
        conference_timeout_ms: opts.offer_timeout_ms,
        reports: !opts.no_reports,
        ..Rules::default()
    };
    let backend = backend::InProcess::start(rules, opts.store, !opts.no_batch).map_err(|f| LoadError::Setup(f.code))?;
    driver::drive(backend, opts).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Options, clap::Error> {
        Options::from_args(std::iter::once("--in-process").chain(args.iter().copied()))
    }

    #[test]
    fn durations_are_humantimes_forms() {
        // The forms README.md and BENCHMARKS.md use, and humantime's fractions and sums.
        for (given, want) in [
            ("10s", Duration::from_secs(10)),
            ("500ms", Duration::from_millis(500)),
            ("2m", Duration::from_secs(120)),
            ("2min", Duration::from_secs(120)),
            ("1.5s", Duration::from_millis(1500)),
            ("1s 500ms", Duration::from_millis(1500)),
        ] {
            assert_eq!(parse(&["--duration", given]).unwrap().duration, want, "{given}");
        }
        let o = parse(&["--drain-timeout", "120s", "--baseline", "1s"]).unwrap();
        assert_eq!(
            (o.drain_timeout, o.baseline),
            (Duration::from_secs(120), Some(Duration::from_secs(1)))
        );
        // A number without its unit is refused rather than guessed.
        for bad in ["ten", "1.5", "-1s", ""] {
            assert!(parse(&["--duration", bad]).is_err(), "{bad}");
        }
    }

    #[test]
    fn only_loopback_urls_are_loopback() {
        for url in [
            "http://127.0.0.1:8080",
            "http://localhost:8080",
            "http://[::1]:8080",
            "https://127.1.2.3",
        ] {
            assert!(is_loopback_url(url).unwrap(), "{url}");
        }
        for url in ["http://10.0.0.1:8080", "http://example.com", "http://0.0.0.0:8080"] {
            assert!(!is_loopback_url(url).unwrap(), "{url}");
        }
        assert!(is_loopback_url("ftp://127.0.0.1").is_err());
    }

    #[test]
    fn defaults_are_valid_and_in_process() {
        let o = Options::default();
        assert!(o.in_process);
        o.validate().unwrap();
    }
}
