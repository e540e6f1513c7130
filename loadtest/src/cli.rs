//! The command line: one subcommand per scenario, common options with stable names
//! (scripts use them), validated once into a [`RunSpec`].

use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::clock::secs_to_ns;
use crate::engine::EngineConfig;
use crate::payload::PayloadKind;
use crate::scenario::Plan;
use crate::sink::SinkMode;
use crate::spec::{RunSpec, ScenarioSpec};
use crate::target::{Target, UrlError};
use crate::threshold::{Threshold, ThresholdError};

/// wsloop-loadtest: drive any RFC 6455 server harder than it can take, and measure it
/// honestly.
#[derive(Debug, Parser)]
#[command(name = "wsloop-loadtest", version, about, long_about = None)]
pub struct Cli {
    /// The scenario to run.
    #[command(subcommand)]
    pub command: Command,
}

/// Scenarios, and the self-test sink.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// N connections, each keeping --window messages of --size bytes in flight for
    /// --duration: messages/s, MB/s, round-trip percentiles.
    Echo(EchoArgs),
    /// N connections, each sending one message every --interval ms: round-trip
    /// percentiles measured from the intended send time (coordinated omission corrected).
    Rate(RateArgs),
    /// Open N connections at --rate per second: connect and handshake latency, failures
    /// by cause.
    Connect(ConnectArgs),
    /// Open N connections and keep them idle for --duration; with --server-pid, the
    /// server's RSS before/after and bytes per connection.
    Hold(HoldArgs),
    /// N subscribers on a fan-out path and one sender at --rate: per-delivery latency,
    /// delivered / missing / duplicate counts.
    Broadcast(BroadcastArgs),
    /// Connections opened, used and closed continuously at --rate per second.
    Churn(ChurnArgs),
    /// Fire-and-forget messages as fast as the sockets take them: the generator's own
    /// ceiling (use against `sink --mode discard`).
    Send(SendArgs),
    /// A WebSocket server that discards or echoes with no work, to measure the generator.
    Sink(SinkArgs),
}

/// Options every scenario takes.
#[derive(Debug, Clone, Args)]
pub struct Common {
    /// Server URL (ws:// only).
    #[arg(long, default_value = "ws://127.0.0.1:9001/")]
    pub url: String,
    /// Connections (subscribers for broadcast; the most alive at once for churn).
    #[arg(long, short = 'c', default_value_t = 10)]
    pub connections: usize,
    /// Generator threads per process, each a mio Poll owning its connections.
    #[arg(long, short = 't', default_value_t = 1)]
    pub threads: usize,
    /// Seconds of measurement (after --warmup).
    #[arg(long, short = 'd', default_value_t = 5.0)]
    pub duration: f64,
    /// Message payload bytes (at least 16 binary, 32 text, 54 json: the stamp).
    #[arg(long, short = 's', default_value_t = 32)]
    pub size: usize,
    /// Payload kind: binary frames, text frames, or text frames holding JSON.
    #[arg(long, value_enum, default_value_t = PayloadKind::Binary)]
    pub payload: PayloadKind,
    /// Offer permessage-deflate in the handshake (the generator cannot compress yet: a
    /// server that accepts makes the run stop with an error).
    #[arg(long)]
    pub compression: bool,
    /// Local source addresses, comma-separated, used round-robin (to pass the ephemeral
    /// port range of one address pair), e.g. 127.0.0.1,127.0.0.2.
    #[arg(long, value_delimiter = ',')]
    pub source: Vec<IpAddr>,
    /// Worker processes (to pass the per-process open-file limit); results are merged.
    #[arg(long, default_value_t = 1)]
    pub procs: usize,
    /// Seconds of load before measuring, excluded from every figure.
    #[arg(long, default_value_t = 0.0)]
    pub warmup: f64,
    /// Write every figure as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Draw latency percentiles and throughput over time to this SVG file.
    #[arg(long)]
    pub plot: Option<PathBuf>,
    /// Connections opened per second before the run (0: as fast as
    /// --connect-concurrency allows).
    #[arg(long, default_value_t = 0.0)]
    pub connect_rate: f64,
    /// Most handshakes in progress at once, per thread.
    #[arg(long, default_value_t = 256)]
    pub connect_concurrency: usize,
    /// Seconds allowed for connect + handshake.
    #[arg(long, default_value_t = 10.0)]
    pub connect_timeout: f64,
    /// Seconds to wait for answers still in flight after the window.
    #[arg(long, default_value_t = 2.0)]
    pub drain: f64,
    /// Seconds to wait for close handshakes at the end.
    #[arg(long, default_value_t = 1.0)]
    pub close_timeout: f64,
    /// Outbound bytes queued per connection above which sends are skipped (counted).
    #[arg(long, default_value_t = 4 << 20)]
    pub max_queue: usize,
    /// Largest message accepted from the server, bytes.
    #[arg(long, default_value_t = 64 << 20)]
    pub max_message: usize,
    /// No progress (neither the live line on a terminal nor the per-second lines
    /// otherwise).
    #[arg(long, short = 'q')]
    pub quiet: bool,
    /// A pass/fail condition on a summary figure, e.g. 'p99<2ms', 'msgs_per_s>100k',
    /// 'connect_failures==0' (repeatable). A failed threshold exits with 99.
    #[arg(long = "threshold", value_name = "FIGURE OP VALUE")]
    pub thresholds: Vec<String>,
    /// Internal: this process is worker I of --worker-count (set by --procs).
    #[arg(long, hide = true)]
    pub worker_index: Option<usize>,
    /// Internal: number of worker processes (set by --procs).
    #[arg(long, hide = true, default_value_t = 1)]
    pub worker_count: usize,
}

/// `echo` options.
#[derive(Debug, Clone, Args)]
pub struct EchoArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub common: Common,
    /// Messages in flight per connection.
    #[arg(long, short = 'w', default_value_t = 1)]
    pub window: usize,
}

/// `rate` options.
#[derive(Debug, Clone, Args)]
pub struct RateArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub common: Common,
    /// Milliseconds between two messages of one connection.
    #[arg(long, short = 'i', default_value_t = 100.0)]
    pub interval: f64,
}

/// `connect` options.
#[derive(Debug, Clone, Args)]
pub struct ConnectArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub common: Common,
    /// Connections opened per second (0: as fast as --connect-concurrency allows).
    #[arg(long, short = 'r', default_value_t = 0.0)]
    pub rate: f64,
}

/// `hold` options.
#[derive(Debug, Clone, Args)]
pub struct HoldArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub common: Common,
    /// Connections opened per second (default: --connect-rate).
    #[arg(long, short = 'r')]
    pub rate: Option<f64>,
    /// The server's process id: its RSS is read before the connections open and while
    /// they are all held, giving bytes per connection.
    #[arg(long)]
    pub server_pid: Option<u32>,
}

/// `broadcast` options.
#[derive(Debug, Clone, Args)]
pub struct BroadcastArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub common: Common,
    /// Messages the sender publishes per second.
    #[arg(long, short = 'r', default_value_t = 10.0)]
    pub rate: f64,
    /// URL the sender connects to (default: --url).
    #[arg(long)]
    pub sender_url: Option<String>,
}

/// `churn` options.
#[derive(Debug, Clone, Args)]
pub struct ChurnArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub common: Common,
    /// Connections opened per second.
    #[arg(long, short = 'r', default_value_t = 100.0)]
    pub rate: f64,
    /// Messages echoed on each connection before it closes.
    #[arg(long, default_value_t = 1)]
    pub messages: u64,
}

/// `send` options.
#[derive(Debug, Clone, Args)]
pub struct SendArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub common: Common,
}

/// `sink` options.
#[derive(Debug, Clone, Args)]
pub struct SinkArgs {
    /// Address to listen on (loopback by default).
    #[arg(long, default_value = "127.0.0.1")]
    pub host: IpAddr,
    /// Port (0: pick one and print it).
    #[arg(long, short = 'p', default_value_t = 9001)]
    pub port: u16,
    /// discard: read and drop bytes without decoding; echo: send every message back;
    /// broadcast: send every message to every connection (one thread).
    #[arg(long, value_enum, default_value_t = SinkMode::Echo)]
    pub mode: SinkMode,
    /// Server threads (each with its own SO_REUSEPORT listener).
    #[arg(long, short = 't', default_value_t = 1)]
    pub threads: usize,
    /// Seconds to run before exiting by itself.
    #[arg(long, short = 'd', default_value_t = 600.0)]
    pub duration: f64,
}

/// A command line that cannot run.
#[derive(Debug, Clone, PartialEq)]
pub enum ConfigError {
    /// `--url` (or `--sender-url`) is not usable.
    Url(UrlError),
    /// A count or duration outside its range.
    OutOfRange {
        /// The option.
        option: &'static str,
        /// What it must be.
        rule: &'static str,
    },
    /// A `--threshold` cannot be read.
    Threshold(ThresholdError),
    /// `--size` is below what the payload kind needs for its stamp.
    SizeTooSmall {
        /// The payload kind.
        payload: PayloadKind,
        /// Its minimum.
        min: usize,
    },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Url(e) => write!(f, "{e}"),
            ConfigError::Threshold(e) => write!(f, "{e}"),
            ConfigError::OutOfRange { option, rule } => write!(f, "{option} must be {rule}"),
            ConfigError::SizeTooSmall { payload, min } => write!(
                f,
                "--size must be at least {min} for --payload {payload:?} (the timestamp and sequence number)"
            ),
        }
    }
}

impl std::error::Error for ConfigError {}

fn check(ok: bool, option: &'static str, rule: &'static str) -> Result<(), ConfigError> {
    if ok { Ok(()) } else { Err(ConfigError::OutOfRange { option, rule }) }
}

fn seconds(v: f64, option: &'static str, allow_zero: bool) -> Result<u64, ConfigError> {
    let ok = v.is_finite() && v <= 86_400.0 && (v > 0.0 || (allow_zero && v == 0.0));
    check(
        ok,
        option,
        if allow_zero { "from 0 to 86400 seconds" } else { "over 0 and at most 86400 seconds" },
    )?;
    Ok(secs_to_ns(v))
}

impl Common {
    /// Validates the common options into a spec for `scenario`.
    ///
    /// # Errors
    /// [`ConfigError`] for an unusable URL, a value out of range, or a size too small
    /// for the payload kind.
    pub fn to_spec(&self, scenario: ScenarioSpec) -> Result<RunSpec, ConfigError> {
        let target = Target::parse(&self.url).map_err(ConfigError::Url)?;
        let alt_target = match &scenario {
            ScenarioSpec::Broadcast { sender_url: Some(u), .. } => {
                Some(Target::parse(u).map_err(ConfigError::Url)?)
            }
            _ => None,
        };
        check(
            (1..=10_000_000).contains(&self.connections),
            "--connections",
            "from 1 to 10,000,000",
        )?;
        check((1..=256).contains(&self.threads), "--threads", "from 1 to 256")?;
        check((1..=64).contains(&self.procs), "--procs", "from 1 to 64")?;
        check(
            (1..=64).contains(&self.worker_count)
                && self.worker_index.is_none_or(|i| i < self.worker_count),
            "--worker-index",
            "below --worker-count",
        )?;
        check(self.size <= 64 << 20, "--size", "at most 64 MiB")?;
        if self.size < self.payload.min_size() {
            return Err(ConfigError::SizeTooSmall {
                payload: self.payload,
                min: self.payload.min_size(),
            });
        }
        check(
            self.connect_rate.is_finite() && self.connect_rate >= 0.0,
            "--connect-rate",
            "0 or more",
        )?;
        check(
            (1..=100_000).contains(&self.connect_concurrency),
            "--connect-concurrency",
            "from 1 to 100,000",
        )?;
        check(self.max_queue >= 1024, "--max-queue", "at least 1024 bytes")?;
        check(self.max_message >= self.size, "--max-message", "at least --size")?;
        let plan = Plan {
            warmup_ns: seconds(self.warmup, "--warmup", true)?,
            duration_ns: seconds(self.duration, "--duration", false)?,
            drain_ns: seconds(self.drain, "--drain", true)?,
            close_ns: seconds(self.close_timeout, "--close-timeout", true)?,
            connect_timeout_ns: seconds(self.connect_timeout, "--connect-timeout", false)?,
        };
        let timeline_handshakes = matches!(
            scenario,
            ScenarioSpec::Connect { .. } | ScenarioSpec::Hold { .. } | ScenarioSpec::Churn { .. }
        );
        let engine = EngineConfig {
            target,
            sources: self.source.clone(),
            deflate: self.compression,
            connect_timeout_ns: plan.connect_timeout_ns,
            close_timeout_ns: plan.close_ns,
            max_message: self.max_message,
            max_queue: self.max_queue,
            payload: self.payload,
            alt_target,
            timeline_handshakes,
        };
        let (worker_index, worker_count) = match self.worker_index {
            Some(i) => (i, self.worker_count),
            None => (0, 1),
        };
        Ok(RunSpec {
            scenario,
            engine,
            url: self.url.clone(),
            connections: self.connections,
            threads: self.threads,
            procs: self.procs,
            worker_index,
            worker_count,
            is_worker: self.worker_index.is_some(),
            plan,
            connect_rate: self.connect_rate,
            connect_concurrency: self.connect_concurrency,
            size: self.size,
            payload: self.payload,
            server_pid: None,
        })
    }
}

/// What the process should do, once the command line is validated.
#[derive(Debug)]
pub enum Action {
    /// Run a load scenario.
    Run(Box<RunSpec>, Output),
    /// Run the sink server.
    Sink(SinkArgs),
}

/// Where results go.
#[derive(Debug, Clone, Default)]
pub struct Output {
    /// `--json`.
    pub json: Option<PathBuf>,
    /// `--plot`.
    pub plot: Option<PathBuf>,
    /// `--quiet`.
    pub quiet: bool,
    /// `--threshold`s.
    pub thresholds: Vec<Threshold>,
}

impl Command {
    /// Validates the command into an [`Action`].
    ///
    /// # Errors
    /// [`ConfigError`] when an option is out of range.
    pub fn into_action(self) -> Result<Action, ConfigError> {
        let (common, scenario, server_pid) = match self {
            Command::Sink(a) => {
                check((1..=256).contains(&a.threads), "--threads", "from 1 to 256")?;
                seconds(a.duration, "--duration", false)?;
                return Ok(Action::Sink(a));
            }
            Command::Echo(a) => {
                check((1..=1_000_000).contains(&a.window), "--window", "from 1 to 1,000,000")?;
                (a.common, ScenarioSpec::Echo { window: a.window }, None)
            }
            Command::Rate(a) => {
                check(
                    a.interval.is_finite() && a.interval >= 0.001 && a.interval <= 3_600_000.0,
                    "--interval",
                    "from 0.001 to 3,600,000 ms",
                )?;
                let interval_ns = (a.interval * 1e6) as u64;
                (a.common, ScenarioSpec::Rate { interval_ns }, None)
            }
            Command::Connect(a) => {
                check(a.rate.is_finite() && a.rate >= 0.0, "--rate", "0 or more")?;
                (a.common, ScenarioSpec::Connect { rate: a.rate }, None)
            }
            Command::Hold(a) => {
                let rate = a.rate.unwrap_or(a.common.connect_rate);
                check(rate.is_finite() && rate >= 0.0, "--rate", "0 or more")?;
                (a.common, ScenarioSpec::Hold { rate }, a.server_pid)
            }
            Command::Broadcast(a) => {
                check(
                    a.rate.is_finite() && a.rate > 0.0 && a.rate <= 10_000_000.0,
                    "--rate",
                    "over 0 and at most 10,000,000",
                )?;
                (a.common, ScenarioSpec::Broadcast { rate: a.rate, sender_url: a.sender_url }, None)
            }
            Command::Churn(a) => {
                check(a.rate.is_finite() && a.rate > 0.0, "--rate", "over 0")?;
                check(a.messages <= 1_000_000, "--messages", "at most 1,000,000")?;
                (a.common, ScenarioSpec::Churn { rate: a.rate, messages: a.messages }, None)
            }
            Command::Send(a) => (a.common, ScenarioSpec::Send, None),
        };
        let mut spec = common.to_spec(scenario)?;
        spec.server_pid = server_pid;
        let thresholds = common
            .thresholds
            .iter()
            .map(|t| Threshold::parse(t))
            .collect::<Result<Vec<_>, _>>()
            .map_err(ConfigError::Threshold)?;
        let output = Output {
            json: common.json.clone(),
            plot: common.plot.clone(),
            quiet: common.quiet,
            thresholds,
        };
        Ok(Action::Run(Box::new(spec), output))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Action, ConfigError> {
        let mut v = vec!["wsloop-loadtest"];
        v.extend_from_slice(args);
        Cli::try_parse_from(v).expect("clap accepts").command.into_action()
    }

    #[test]
    fn common_names_are_stable() {
        let a = parse(&[
            "echo",
            "--url",
            "ws://127.0.0.1:9/x",
            "--connections",
            "7",
            "--threads",
            "2",
            "--duration",
            "1.5",
            "--size",
            "64",
            "--payload",
            "json",
            "--compression",
            "--source",
            "127.0.0.1,127.0.0.2",
            "--procs",
            "2",
            "--warmup",
            "0.5",
            "--json",
            "o.json",
            "--plot",
            "o.svg",
            "--window",
            "4",
        ])
        .expect("valid");
        let Action::Run(spec, out) = a else {
            panic!("not a run");
        };
        assert_eq!(spec.connections, 7);
        assert_eq!(spec.threads, 2);
        assert_eq!(spec.procs, 2);
        assert_eq!(spec.plan.duration_ns, 1_500_000_000);
        assert_eq!(spec.plan.warmup_ns, 500_000_000);
        assert_eq!(spec.engine.sources.len(), 2);
        assert!(spec.engine.deflate);
        assert_eq!(spec.scenario, ScenarioSpec::Echo { window: 4 });
        assert_eq!(out.json, Some(PathBuf::from("o.json")));
    }

    #[test]
    fn refuses_what_cannot_run() {
        assert!(matches!(
            parse(&["echo", "--size", "8"]),
            Err(ConfigError::SizeTooSmall { min: 16, .. })
        ));
        assert!(matches!(
            parse(&["echo", "--payload", "json", "--size", "40"]),
            Err(ConfigError::SizeTooSmall { min: 54, .. })
        ));
        assert!(matches!(parse(&["rate", "--interval", "0"]), Err(ConfigError::OutOfRange { .. })));
        assert!(matches!(parse(&["echo", "--duration", "0"]), Err(ConfigError::OutOfRange { .. })));
        assert!(matches!(parse(&["echo", "--url", "http://x/"]), Err(ConfigError::Url(_))));
    }
}
