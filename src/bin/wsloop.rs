//! The `wsloop` server: an echo server on built-in defaults, tuned by flags.
//!
//! Flags are kept stable (other tools use them). Durations are in seconds (fractions
//! allowed), sizes in bytes.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;
use wsloop::{Config, ConnId, Dispatch, Handle, Handler, Message, Server};

#[derive(Debug, Clone, Copy, ValueEnum)]
enum DispatchArg {
    Workers,
    Inline,
}

/// A WebSocket echo server on wsloop.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:9001")]
    addr: SocketAddr,
    /// Reactor threads [default: number of cores].
    #[arg(long)]
    reactors: Option<usize>,
    /// Worker threads for the handler [default: number of cores].
    #[arg(long)]
    workers: Option<usize>,
    /// Where the handler runs.
    #[arg(long, value_enum, default_value = "workers")]
    dispatch: DispatchArg,
    /// Largest message accepted, in bytes (bigger closes with 1009).
    #[arg(long, default_value_t = 64 << 10)]
    max_message_size: usize,
    /// Seconds a client has to complete its handshake.
    #[arg(long, default_value_t = 15.0, value_parser = seconds)]
    handshake_timeout: f64,
}

fn seconds(s: &str) -> Result<f64, String> {
    let v: f64 = s.parse().map_err(|_| format!("`{s}` is not a number of seconds"))?;
    if v.is_finite() && v >= 0.0 { Ok(v) } else { Err(format!("`{s}` is not a duration")) }
}

impl Args {
    fn config(&self) -> Config {
        let mut config = Config::default()
            .addr(self.addr)
            .dispatch(match self.dispatch {
                DispatchArg::Workers => Dispatch::Workers,
                DispatchArg::Inline => Dispatch::Inline,
            })
            .max_message_size(self.max_message_size)
            .handshake_timeout(Duration::from_secs_f64(self.handshake_timeout));
        if let Some(n) = self.reactors {
            config = config.reactors(n);
        }
        if let Some(n) = self.workers {
            config = config.workers(n);
        }
        config
    }
}

/// Echoes every message back to its sender.
struct Echo;

impl Handler for Echo {
    fn on_message(&self, handle: &Handle, id: ConnId, message: Message) {
        let _ = handle.send(id, message);
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    let mut signals = match Signals::new([SIGINT, SIGTERM]) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("wsloop: cannot handle signals: {e}");
            return ExitCode::FAILURE;
        }
    };
    let server = match Server::start(args.config(), Echo) {
        Ok(server) => server,
        Err(e) => {
            eprintln!("wsloop: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("wsloop listening on ws://{}", server.local_addr());
    let handle = server.handle();
    std::thread::spawn(move || {
        if signals.forever().next().is_some() {
            handle.shutdown();
        }
    });
    server.join();
    ExitCode::SUCCESS
}
