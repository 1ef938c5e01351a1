//! `switchboard-load`: the load harness. It only wires things up: parse the options, run
//! the scenario in an actix system, print the table, write the report and the chart.
//!
//! Exit status: 0 when the checks passed and nothing failed unexpectedly, 1 when a check
//! failed or an operation failed unexpectedly, 2 when the run could not start.

use clap::Parser;
use switchboard::load::{self, Options};

/// mimalloc rather than glibc malloc: Switchboard allocates many small, short-lived
/// records and frees them on other threads (BENCHMARKS.md "Load harness").
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Drive Switchboard with agents and customers, measure it, check it from outside.
#[derive(Parser)]
#[command(name = "switchboard-load", version)]
struct Cli {
    #[command(flatten)]
    options: Options,
}

fn main() {
    let opts = Cli::parse().options;
    let (report_path, chart_path) = (opts.report.clone(), opts.chart.clone());
    let system = actix::System::new();
    if opts.hold_open {
        match system.block_on(load::hold::run(&opts)) {
            Ok(r) => {
                println!("{}", serde_json::to_string_pretty(&r).unwrap_or_default());
                if let Some(path) = report_path {
                    let _ = std::fs::write(&path, serde_json::to_string_pretty(&r).unwrap_or_default());
                }
                std::process::exit(0);
            }
            Err(e) => {
                eprintln!("switchboard-load: {e}");
                std::process::exit(2);
            }
        }
    }
    let report = match system.block_on(load::run(opts)) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("switchboard-load: {e}");
            std::process::exit(2);
        }
    };
    print!("{}", report.table());
    if let Some(path) = report_path {
        let written = serde_json::to_string_pretty(&report)
            .map_err(|e| e.to_string())
            .and_then(|json| std::fs::write(&path, json).map_err(|e| e.to_string()));
        match written {
            Ok(()) => println!("report: {}", path.display()),
            Err(e) => eprintln!("switchboard-load: cannot write the report to {}: {e}", path.display()),
        }
    }
    if let Some(path) = chart_path {
        match load::chart::write(&report, &path) {
            Ok(()) => println!("chart: {}", path.display()),
            Err(e) => eprintln!("switchboard-load: cannot write the chart to {}: {e}", path.display()),
        }
    }
    std::process::exit(if report.ok() { 0 } else { 1 });
}
