//! The Switchboard server binary. It only wires things up: config, logs, serve.
//!
//! `switchboard [--config PATH]`: the embedded default config, then the file, then
//! `SWITCHBOARD_<SECTION>__<KEY>` environment variables. `RUST_LOG` sets the log level
//! (default `info`); `log.format = "json"` switches every line to JSON. Colour codes
//! only when stdout is a terminal.
//!
//! `switchboard restore --from FILE --store-path DIR` writes a backup (from
//! `POST /api/v1/admin/backup`) into an empty or absent store directory; with
//! `--tenant ID`, into that tenant of the (stopped) store at DIR.
//! `switchboard backup --to FILE [--url URL] [--token TOKEN] [--rate-mb N]` takes a backup
//! from a running engine into a file (for operators who run it from cron), its writeback
//! kept steady so that a store on the same disk is not held up.
//! `switchboard healthcheck [--url URL]` exits 0 when `/readyz` answers 200 (for container
//! health checks, where no HTTP client may be installed).

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use switchboard::config::{Config, LogFormat};
use tracing_subscriber::EnvFilter;

/// Switchboard: a self-hosted contact-centre routing engine.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// A TOML config file layered over the embedded default.
    #[arg(long, value_name = "PATH", global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Cmd>,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Restore a backup file into an empty or absent store directory.
    Restore {
        /// The backup file (from `POST /api/v1/admin/backup`).
        #[arg(long = "from", value_name = "FILE")]
        from: PathBuf,
        /// The store directory to create; refused when it exists and is not empty. With
        /// `--tenant`: the deployment's existing store (`store.path`), stopped.
        #[arg(long, value_name = "DIR")]
        store_path: PathBuf,
        /// Restore into this tenant (not `default`) of the store at `--store-path`, which
        /// must hold none of its records yet (docs/TENANTS.md "Backup and restore").
        #[arg(long, value_name = "ID")]
        tenant: Option<String>,
        /// With `--tenant`: replace the tenant's records (all of them) with the backup's.
        #[arg(long, requires = "tenant")]
        replace: bool,
    },
    /// Take a backup from a running engine into FILE (written beside it, fsynced, checked,
    /// then renamed into place: FILE is either the whole backup or untouched).
    Backup {
        /// Where the backup goes.
        #[arg(long, value_name = "FILE")]
        to: PathBuf,
        /// Defaults to `http://<server.listen>/api/v1/admin/backup` (0.0.0.0 and :: as loopback).
        #[arg(long, value_name = "URL")]
        url: Option<String>,
        /// The admin token; defaults to `api.admin_token` of the config, which
        /// `SWITCHBOARD_API__ADMIN_TOKEN` sets.
        #[arg(long, value_name = "TOKEN")]
        token: Option<String>,
        /// Write at most this many MiB a second (0: as fast as the engine sends it, which
        /// `store.backup_mb_per_s` of the engine may limit in turn).
        #[arg(long = "rate-mb", value_name = "MIB_PER_S", default_value_t = 0)]
        rate_mb: u64,
    },
    /// Exit 0 when the server's `/readyz` answers 200 within 5 s, 1 otherwise.
    Healthcheck {
        /// Defaults to `http://<server.listen>/readyz` (0.0.0.0 and :: as loopback).
        #[arg(long, value_name = "URL")]
        url: Option<String>,
    },
}

/// mimalloc rather than glibc malloc: Switchboard allocates many small, short-lived
/// records and frees them on other threads (BENCHMARKS.md "Load harness"). The
/// `system-alloc` feature keeps glibc's, so that a heap profiler that wraps `malloc`
/// (`heaptrack`) sees every allocation (BENCHMARKS.md "Memory per open conversation").
#[cfg(not(feature = "system-alloc"))]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let args = Args::parse();
    if let Some(Cmd::Restore {
        from,
        store_path,
        tenant,
        replace,
    }) = &args.command
    {
        return restore(from, store_path, tenant.as_deref(), *replace);
    }
    let config = match Config::load(args.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("switchboard: {e}");
            return ExitCode::from(2);
        }
    };
    if let Some(Cmd::Healthcheck { url }) = &args.command {
        return healthcheck(url.clone(), &config);
    }
    if let Some(Cmd::Backup {
        to,
        url,
        token,
        rate_mb,
    }) = &args.command
    {
        let url = url
            .clone()
            .unwrap_or_else(|| local_url(&config, "/api/v1/admin/backup"));
        let token = token.clone().unwrap_or_else(|| config.api.admin_token.clone());
        return backup(to, &url, &token, rate_mb.saturating_mul(1 << 20));
    }
    let json = config.log.format == LogFormat::Json;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stdout().is_terminal());
    if json {
        logs.json().init();
    } else {
        logs.init();
    }
    for name in switchboard::config::stray_env_vars() {
        tracing::warn!(
            variable = %name,
            "ignoring an environment variable that names no config section (see SWITCHBOARD_<SECTION>__<KEY>)"
        );
    }
    let result = actix_web::rt::System::new().block_on(switchboard::api::serve(config));
    if let Err(e) = result {
        tracing::error!(error = %e, "switchboard stopped");
        if !json {
            eprintln!("switchboard: {e}");
        }
        return ExitCode::from(1);
    }
    ExitCode::SUCCESS
}

fn restore(from: &std::path::Path, dir: &std::path::Path, tenant: Option<&str>, replace: bool) -> ExitCode {
    let restored = match tenant {
        Some(id) => switchboard::store::sled::restore_tenant(from, dir, id, replace),
        None => switchboard::store::sled::restore(from, dir),
    };
    match restored {
        Ok(n) => {
            let whose = tenant.map(|t| format!(" (tenant {t})")).unwrap_or_default();
            println!(
                "restored {n} records from {} into {}{whose}",
                from.display(),
                dir.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("switchboard restore: {e}");
            ExitCode::from(1)
        }
    }
}

/// `http://<server.listen><path>`, with an unspecified listen address as loopback.
fn local_url(config: &Config, path: &str) -> String {
    let mut addr = config.server.listen;
    if addr.ip().is_unspecified() {
        addr.set_ip(if addr.is_ipv4() {
            std::net::Ipv4Addr::LOCALHOST.into()
        } else {
            std::net::Ipv6Addr::LOCALHOST.into()
        });
    }
    format!("http://{addr}{path}")
}

fn backup(to: &std::path::Path, url: &str, token: &str, bytes_per_s: u64) -> ExitCode {
    match actix_web::rt::System::new().block_on(switchboard::api::ops::backup_to_file(url, token, to, bytes_per_s)) {
        Ok((records, bytes)) => {
            println!(
                "backup of {records} records ({bytes} bytes) written to {}",
                to.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("switchboard backup: {e}");
            ExitCode::from(1)
        }
    }
}

fn healthcheck(url: Option<String>, config: &Config) -> ExitCode {
    let url = url.unwrap_or_else(|| local_url(config, "/readyz"));
    match switchboard::api::probe_url(&url, std::time::Duration::from_secs(5)) {
        Ok(200) => ExitCode::SUCCESS,
        Ok(status) => {
            eprintln!("switchboard healthcheck: {url} answered {status}");
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("switchboard healthcheck: {url}: {e}");
            ExitCode::from(1)
        }
    }
}
