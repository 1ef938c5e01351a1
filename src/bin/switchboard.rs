//! The Switchboard server binary. It only wires things up: config, logs, serve.
//!
//! `switchboard [--config PATH]`: the embedded default config, then the file, then
//! `SWITCHBOARD_<SECTION>__<KEY>` environment variables. `RUST_LOG` sets the log level
//! (default `info`); `log.format = "json"` switches to JSON lines.

use std::path::PathBuf;

use clap::Parser;
use switchboard::config::{Config, LogFormat};
use tracing_subscriber::EnvFilter;

/// Switchboard: a self-hosted contact-centre routing engine.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// A TOML config file layered over the embedded default.
    #[arg(long, value_name = "PATH")]
    config: Option<PathBuf>,
}

/// mimalloc rather than glibc malloc: Switchboard allocates many small, short-lived
/// records and frees them on other threads (BENCHMARKS.md "Load harness").
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let args = Args::parse();
    let config = match Config::load(args.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("switchboard: {e}");
            std::process::exit(2);
        }
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt().with_env_filter(filter);
    match config.log.format {
        LogFormat::Json => logs.json().init(),
        LogFormat::Text => logs.init(),
    }
    let result = actix_web::rt::System::new().block_on(switchboard::api::serve(config));
    if let Err(e) = result {
        tracing::error!(error = %e, "switchboard stopped");
        eprintln!("switchboard: {e}");
        std::process::exit(1);
    }
}
