//! The `wsloop-loadtest` binary: parse, run, report.

use std::process::ExitCode;

use clap::Parser;
use wsloop_loadtest::cli::{Action, Cli, Output};
use wsloop_loadtest::coord::{self, Outcome};
use wsloop_loadtest::procs;
use wsloop_loadtest::progress::{self, Progress, Timing};
use wsloop_loadtest::report::Report;
use wsloop_loadtest::spec::{RunSpec, ScenarioSpec};
use wsloop_loadtest::{csv, hgrm, plot};
use wsloop_loadtest::{limits, sink, suite};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let action = match cli.command.into_action() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let result = match action {
        Action::Sink(args) => {
            sink::run_cli(&args).map(|_| ExitCode::SUCCESS).map_err(|e| e.to_string())
        }
        Action::Run(spec, output) => run(&spec, &output),
        Action::Suite(args) => suite::run(&args).map(ExitCode::from),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(spec: &RunSpec, output: &Output) -> Result<ExitCode, String> {
    let per_process = spec.connections.div_ceil(spec.worker_count.max(if spec.is_worker {
        1
    } else {
        spec.procs
    }));
    let needed = per_process as u64 + 64;
    let limit = limits::ensure_open_files(needed);
    if limit != 0 && limit < needed && !spec.is_worker {
        eprintln!(
            "warning: {per_process} connections per process need about {needed} open files, the limit is {limit}: \
             use --procs to spread them over processes"
        );
    }
    if spec.is_worker {
        coord::run_worker(spec).map_err(|e| e.to_string())?;
        return Ok(ExitCode::SUCCESS);
    }
    let timing = Timing { warmup_ns: spec.plan.warmup_ns, duration_ns: spec.plan.duration_ns };
    let mode = progress::Mode::detect(!output.quiet);
    // The broadcast sender is a connection of its own.
    let sender = matches!(spec.scenario, ScenarioSpec::Broadcast { .. }) as u64;
    let conns = spec.connections as u64 + sender;
    let mut progress = Progress::new(mode, spec.scenario.name(), conns, timing);
    let outcome: Outcome = if spec.procs > 1 {
        procs::run_parent(spec, &mut progress)
    } else {
        coord::run_standalone(spec, &mut progress)
    }
    .map_err(|e| e.to_string())?;
    let mut report = Report::build(spec, &outcome);
    report.judge(&output.thresholds);
    print!("{}", report.table());
    print!("{}", report.verdict.table());
    for w in &report.warnings {
        eprintln!("warning: {w}");
    }
    if let Some(path) = &output.json {
        report.write_json(path).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    if let Some(path) = &output.plot {
        plot::write_svg(&report, path).map_err(|e| e.to_string())?;
    }
    if let Some(path) = &output.csv {
        write_file(path, &csv::timeline(&report))?;
    }
    if let Some(path) = &output.hgrm {
        let stats = &outcome.stats;
        // Connection scenarios' headline latency is the handshake.
        let hist =
            if spec.scenario.is_connection_scenario() { &stats.handshake } else { &stats.latency };
        write_file(path, &hgrm::percentile_distribution(hist.histogram()))?;
    }
    // The last line says whether the run passed, and why not.
    println!("{}", report.verdict.last_line());
    Ok(ExitCode::from(report.verdict.exit_code()))
}

fn write_file(path: &std::path::Path, text: &str) -> Result<(), String> {
    std::fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
}
