//! The `wsloop` server on built-in defaults, tuned by flags: echo on `/` and `/echo`,
//! fan-out on `/broadcast`, JSON chat rooms on `/chat`.
//!
//! Flags are kept stable (other tools use them). Durations are in seconds (fractions
//! allowed), sizes in bytes.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;
use wsloop::{Backpressure, Compression, Config, Dispatch, Server};

mod chat;
mod demo;

#[derive(Debug, Clone, Copy, ValueEnum)]
enum DispatchArg {
    Workers,
    Inline,
}

/// A WebSocket server on wsloop: echo on / and /echo, fan-out on /broadcast, chat rooms on
/// /chat.
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
    /// Bytes that may wait for one connection before the backpressure policy applies.
    #[arg(long, default_value_t = 1 << 20)]
    max_backpressure: usize,
    /// What happens past --max-backpressure.
    #[arg(long, value_enum, default_value = "close")]
    backpressure: BackpressureArg,
    /// Event batches a worker's queue holds before reading from its connections pauses.
    #[arg(long, default_value_t = 1024)]
    worker_queue: usize,
    /// Sockets held at most; past it new connections get HTTP 503.
    #[arg(long, default_value_t = 1 << 20)]
    max_connections: usize,
    /// Seconds without a message before a connection is closed (0: never).
    #[arg(long, default_value_t = 0.0, value_parser = seconds)]
    idle_timeout: f64,
    /// Seconds of silence before a connection is pinged (0: no pings).
    #[arg(long, default_value_t = 30.0, value_parser = seconds)]
    ping_interval: f64,
    /// Seconds a pinged peer has to answer before it is dropped as dead.
    #[arg(long, default_value_t = 10.0, value_parser = seconds)]
    pong_timeout: f64,
    /// permessage-deflate for clients that offer it: off, shared (no memory per
    /// connection) or dedicated (context takeover, ~340 KB per connection).
    #[arg(long, value_enum, default_value = "shared")]
    compression: CompressionArg,
    /// LZ77 window bits (8-15) in dedicated compression.
    #[arg(long, default_value_t = 15)]
    compression_window_bits: u8,
    /// Messages shorter than this many bytes are sent uncompressed.
    #[arg(long, default_value_t = 1024)]
    compression_threshold: usize,
    /// zlib level, 0-9.
    #[arg(long, default_value_t = 1)]
    compression_level: u32,
    /// Topics (chat rooms) one connection may be in (0: no limit). Bounded by default:
    /// a client on the network must not grow the server's memory without end.
    #[arg(long, default_value_t = 64)]
    max_topics_per_connection: usize,
    /// Members one topic may have (0: no limit).
    #[arg(long, default_value_t = 0)]
    max_subscribers_per_topic: usize,
    /// Seconds to wait for the peer's answer to a close frame (and for shutdown).
    #[arg(long, default_value_t = 5.0, value_parser = seconds)]
    close_timeout: f64,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum CompressionArg {
    Off,
    Shared,
    Dedicated,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum BackpressureArg {
    Close,
    Drop,
}

/// Seconds as a duration; 0 means "off".
fn optional(seconds: f64) -> Option<Duration> {
    (seconds > 0.0).then(|| Duration::from_secs_f64(seconds))
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
            .handshake_timeout(Duration::from_secs_f64(self.handshake_timeout))
            .max_backpressure(self.max_backpressure)
            .backpressure(match self.backpressure {
                BackpressureArg::Close => Backpressure::Close,
                BackpressureArg::Drop => Backpressure::Drop,
            })
            .worker_queue(self.worker_queue)
            .max_connections(self.max_connections)
            .idle_timeout(optional(self.idle_timeout))
            .ping_interval(optional(self.ping_interval))
            .pong_timeout(Duration::from_secs_f64(self.pong_timeout))
            .close_timeout(Duration::from_secs_f64(self.close_timeout))
            .compression(match self.compression {
                CompressionArg::Off => Compression::Disabled,
                CompressionArg::Shared => Compression::Shared,
                CompressionArg::Dedicated => {
                    Compression::Dedicated { window_bits: self.compression_window_bits }
                }
            })
            .compression_threshold(self.compression_threshold)
            .compression_level(self.compression_level)
            .max_topics_per_connection(self.max_topics_per_connection)
            .max_subscribers_per_topic(self.max_subscribers_per_topic)
            .on_upgrade(demo::upgrade);
        if let Some(n) = self.reactors {
            config = config.reactors(n);
        }
        if let Some(n) = self.workers {
            config = config.workers(n);
        }
        config
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
    let server = match Server::start(args.config(), demo::Demo::new()) {
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
