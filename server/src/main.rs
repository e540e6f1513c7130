//! The `wsloop` server: echo on `/` and `/echo`, fan-out on `/broadcast`, JSON chat rooms
//! on `/chat`, and the library's plain HTTP routes (`/healthz`, `/readyz`, `/metrics`,
//! `/admin`) on the same port.
//!
//! Settings: defaults < `--config FILE` < `WSLOOP_*` environment < flags (see
//! [`settings`]). Logs go to stderr through `env_logger` (`RUST_LOG`, default `info`);
//! stdout carries one line, the address, for scripts.

use std::process::ExitCode;

use clap::Parser;
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;
use wsloop::Server;

mod chat;
mod demo;
mod flags;
mod limits;
mod settings;

use flags::Flags;
use settings::{Settings, SettingsError};

fn main() -> ExitCode {
    let flags = Flags::parse();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let settings = match effective_settings(&flags) {
        Ok(settings) => settings,
        Err(e) => {
            eprintln!("wsloop: {e}");
            return ExitCode::FAILURE;
        }
    };
    if flags.print_config {
        print!("{}", settings.to_toml());
        return ExitCode::SUCCESS;
    }
    match run(&settings) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("wsloop: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Defaults, then the file, then the environment, then the flags.
fn effective_settings(flags: &Flags) -> Result<Settings, SettingsError> {
    let file = match &flags.config {
        Some(path) => settings::file_layer(path)?,
        None => settings::Layer::new(),
    };
    let (env, unknown) = settings::env_layer(std::env::vars())?;
    for name in unknown {
        log::warn!("{name} names no setting; ignored");
    }
    let file_source = if flags.config.is_some() { "config file" } else { "no config file" };
    settings::merge([(file, file_source), (env, "environment"), (flags.layer()?, "flags")])
}

fn run(settings: &Settings) -> Result<(), Box<dyn std::error::Error>> {
    match limits::raise_open_files() {
        Ok((before, after)) if before != after => {
            log::info!("open-file limit raised from {before} to {after} (the hard limit)")
        }
        Ok((_, limit)) => log::info!("open-file limit {limit} (already the hard limit)"),
        Err(e) => log::warn!("cannot read or raise the open-file limit: {e}"),
    }
    let mut signals = Signals::new([SIGINT, SIGTERM])?;
    let config = settings.config()?.on_upgrade(demo::upgrade);
    log::info!("settings: {}", settings.summary());
    let server = Server::start(config, demo::Demo::handler())?;
    let scheme = if settings.tls_cert.is_empty() { "ws" } else { "wss" };
    println!("wsloop listening on {scheme}://{}", server.local_addr());
    let handle = server.handle();
    if let Some(events) = handle.cluster_events() {
        log::info!("cluster node {}", handle.node_id());
        let handle = handle.clone();
        std::thread::spawn(move || {
            loop {
                if let Some(event) = events.recv_timeout(std::time::Duration::from_secs(1)) {
                    demo::on_cluster_event(&handle, event);
                }
            }
        });
    }
    let drain = settings::seconds("drain_delay", settings.drain_delay)?;
    std::thread::spawn(move || {
        if let Some(signal) = signals.forever().next() {
            log::info!("signal {signal}: draining for {drain:?}, then closing connections");
            handle.set_unready("shutting down");
            std::thread::sleep(drain);
            handle.shutdown();
        }
    });
    server.join();
    log::info!("stopped");
    Ok(())
}
