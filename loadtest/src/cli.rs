//! The command line: one subcommand per scenario, common options with stable names
//! (scripts use them), validated once into a [`RunSpec`].

use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;

use clap::{Args, Parser, Subcommand};

use crate::clock::secs_to_ns;
use crate::engine::EngineConfig;
use crate::pattern::Pattern;
use crate::payload::PayloadKind;
use crate::scenario::Plan;
use crate::session::{Session, SessionError};
use crate::sink::SinkMode;
use crate::spec::{RunSpec, ScenarioSpec};
use crate::target::{Target, UrlError};
use crate::threshold::{Threshold, ThresholdError};
use crate::tls::{self, TlsError, Trust};

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
    /// The benchmark suite: build, start and measure every server of a matrix (default
    /// loadtest/suite.toml), one core each; print a Markdown table and draw SVG charts.
    Suite(SuiteArgs),
}

/// `suite` options.
#[derive(Debug, Clone, Args)]
pub struct SuiteArgs {
    /// The matrix (TOML; see loadtest/suite.toml, the default).
    pub matrix: Option<PathBuf>,
    /// Shorter runs: 3 s measured per scenario, 1 s held.
    #[arg(long)]
    pub quick: bool,
    /// Only these servers (keys of the matrix, comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub servers: Vec<String>,
    /// Use what is already built.
    #[arg(long)]
    pub no_build: bool,
    /// The output directory (default target/bench-suite/<UTC time>).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Also write the Markdown report to FILE (e.g. BENCHMARKS.md), and its charts beside
    /// it named after it (BENCHMARKS.throughput.svg, BENCHMARKS.latency.svg).
    #[arg(long, value_name = "FILE")]
    pub write: Option<PathBuf>,
}

/// Options every scenario takes.
#[derive(Debug, Clone, Args)]
pub struct Common {
    /// Server URL, ws:// or wss:// (see --ca, --insecure). Repeat it to spread connections
    /// over several servers (one per node of a cluster): connection i goes to the
    /// (i mod n)-th URL.
    #[arg(long = "url", default_value = "ws://127.0.0.1:9001/", value_name = "URL")]
    pub urls: Vec<String>,
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
    /// Payload kind: binary frames, text frames, or text frames holding JSON (default:
    /// binary; text with --payload-template or --payload-file).
    #[arg(long, value_enum)]
    pub payload: Option<PayloadKind>,
    /// Each message is this text, with {stamp} (send time and sequence, needed to time
    /// answers), {conn} (connection number) and {n} (message number on the connection)
    /// replaced; other braces are kept, so JSON needs no escaping.
    #[arg(long, value_name = "TEXT", conflicts_with = "payload_file")]
    pub payload_template: Option<String>,
    /// Like --payload-template, the template read from FILE.
    #[arg(long, value_name = "FILE")]
    pub payload_file: Option<PathBuf>,
    /// An extra upgrade request header, 'Name: value' (repeatable), e.g. a cookie or
    /// 'Authorization: Bearer ...'.
    #[arg(long = "header", short = 'H', value_name = "NAME: VALUE")]
    pub headers: Vec<String>,
    /// A subprotocol to offer in Sec-WebSocket-Protocol (repeatable or comma-separated,
    /// in order of preference); a server choosing another fails the connection.
    #[arg(long = "subprotocol", value_delimiter = ',', value_name = "NAME")]
    pub subprotocols: Vec<String>,
    /// A text message sent on each connection right after the 101, before any measured
    /// message (repeatable, sent in order), e.g. a login or a room to join; {conn} and {n}
    /// are replaced as in --payload-template. Unstamped answers before a connection's
    /// first measured message are counted as session replies.
    #[arg(long = "on-open", value_name = "TEXT")]
    pub on_open: Vec<String>,
    /// Messages each connection waits for after the 101 (a greeting, the answer to a
    /// login) before the run may start; the run starts without the late ones once the
    /// opening stage's time is up.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub on_open_wait: u32,
    /// Offer permessage-deflate in the handshake; where the server agrees, every data
    /// message is sent compressed (zlib level 1) and compressed answers are inflated.
    #[arg(long)]
    pub compression: bool,
    /// wss://: accept any server certificate (the handshake's signatures are still
    /// checked). For test servers with self-signed certificates.
    #[arg(long, conflicts_with = "ca")]
    pub insecure: bool,
    /// wss://: trust the certificates of this PEM file instead of the bundled Mozilla
    /// roots (webpki-roots).
    #[arg(long, value_name = "PEM")]
    pub ca: Option<PathBuf>,
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
    /// Write the latency histogram as HdrHistogram's percentile distribution text
    /// (milliseconds), as wrk2 prints it.
    #[arg(long, value_name = "FILE")]
    pub hgrm: Option<PathBuf>,
    /// Write the measurement window second by second as CSV.
    #[arg(long, value_name = "FILE")]
    pub csv: Option<PathBuf>,
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
    #[arg(long, short = 'i', default_value_t = 100.0, conflicts_with = "rate")]
    pub interval: f64,
    /// Messages per second over all connections together (e.g. 50000, 50k/s), evenly
    /// spaced: each connection sends every connections ÷ rate seconds.
    #[arg(long, short = 'r', value_name = "N/s", value_parser = per_second)]
    pub rate: Option<f64>,
}

/// `50000`, `50000/s`, `50k/s`, `1.5M/s`.
fn per_second(v: &str) -> Result<f64, String> {
    let n = v.strip_suffix("/s").unwrap_or(v);
    let (num, scale) = match n.strip_suffix('k') {
        Some(x) => (x, 1e3),
        None => match n.strip_suffix('M') {
            Some(x) => (x, 1e6),
            None => (n, 1.0),
        },
    };
    match num.parse::<f64>() {
        Ok(x) if x.is_finite() && x > 0.0 && x * scale <= 100e6 => Ok(x * scale),
        _ => Err(format!("`{v}`: expected messages per second over 0, e.g. 50000 or 50k/s")),
    }
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
    /// URL a sender connects to (default: the --url list). Repeat it for one sender per
    /// URL: publishes then go round-robin over the senders (e.g. one per node).
    #[arg(long = "sender-url", value_name = "URL")]
    pub sender_urls: Vec<String>,
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
    /// Serve wss:// with this certificate chain (PEM; needs --tls-key).
    #[arg(long, value_name = "PEM", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM).
    #[arg(long, value_name = "PEM", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
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
    /// `--header`, `--subprotocol` or `--on-open` cannot be used.
    Session(SessionError),
    /// `--ca` or a `wss://` host cannot be used.
    Tls(TlsError),
    /// `--payload-template` or `--payload-file` cannot be used.
    Pattern(String),
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
            ConfigError::Session(e) => write!(f, "{e}"),
            ConfigError::Tls(e) => write!(f, "{e}"),
            ConfigError::Pattern(e) => write!(f, "{e}"),
            ConfigError::OutOfRange { option, rule } => write!(f, "{option} must be {rule}"),
            ConfigError::SizeTooSmall { payload, min } => write!(
                f,
                "--size must be at least {min} for --payload {payload:?} (the timestamp and sequence number)"
            ),
        }
    }
}

impl std::error::Error for ConfigError {}

fn parse_urls(urls: &[String]) -> Result<Vec<Target>, ConfigError> {
    urls.iter().map(|u| Target::parse(u).map_err(ConfigError::Url)).collect()
}

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
        check((1..=256).contains(&self.urls.len()), "--url", "given from 1 to 256 times")?;
        let targets = parse_urls(&self.urls)?;
        let alt_targets = match &scenario {
            ScenarioSpec::Broadcast { sender_urls, .. } => {
                check(sender_urls.len() <= 256, "--sender-url", "given at most 256 times")?;
                parse_urls(sender_urls)?
            }
            _ => Vec::new(),
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
        let pattern = self.pattern(&scenario)?;
        let payload = self.payload.unwrap_or(if pattern.is_some() {
            PayloadKind::Text
        } else {
            PayloadKind::Binary
        });
        let size = pattern.as_ref().map_or(self.size, Pattern::nominal_len);
        if pattern.is_none() && self.size < payload.min_size() {
            return Err(ConfigError::SizeTooSmall { payload, min: payload.min_size() });
        }
        let mut session = Session::new(&self.headers, &self.subprotocols, &self.on_open)
            .map_err(ConfigError::Session)?;
        check(self.on_open_wait <= 1000, "--on-open-wait", "at most 1000")?;
        session.replies = self.on_open_wait;
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
        check(self.max_message >= size, "--max-message", "at least --size")?;
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
        let tls = self.tls_config(targets.iter().chain(&alt_targets))?;
        let engine = EngineConfig {
            targets,
            sources: self.source.clone(),
            deflate: self.compression,
            tls,
            connect_timeout_ns: plan.connect_timeout_ns,
            close_timeout_ns: plan.close_ns,
            max_message: self.max_message,
            max_queue: self.max_queue,
            payload,
            alt_targets,
            timeline_handshakes,
            marker_stamps: pattern.is_some(),
            session,
        };
        let (worker_index, worker_count) = match self.worker_index {
            Some(i) => (i, self.worker_count),
            None => (0, 1),
        };
        Ok(RunSpec {
            scenario,
            engine,
            url: self.urls[0].clone(),
            urls: self.urls.clone(),
            connections: self.connections,
            threads: self.threads,
            procs: self.procs,
            worker_index,
            worker_count,
            is_worker: self.worker_index.is_some(),
            plan,
            connect_rate: self.connect_rate,
            connect_concurrency: self.connect_concurrency,
            size,
            payload,
            pattern,
            server_pid: None,
        })
    }

    /// The TLS configuration when any of `targets` is `wss://` (each host checked as a
    /// server name), from `--insecure`, `--ca` or the bundled roots.
    fn tls_config<'a>(
        &self,
        targets: impl Iterator<Item = &'a Target>,
    ) -> Result<Option<Arc<rustls::ClientConfig>>, ConfigError> {
        let mut any = false;
        for name in targets.filter_map(|t| t.tls_name.as_deref()) {
            tls::server_name(name).map_err(ConfigError::Tls)?;
            any = true;
        }
        if !any {
            return Ok(None);
        }
        let trust = match (&self.ca, self.insecure) {
            (Some(path), _) => Trust::Ca(path.clone()),
            (None, true) => Trust::Insecure,
            (None, false) => Trust::WebPki,
        };
        tls::client_config(&trust).map(Some).map_err(ConfigError::Tls)
    }

    /// The payload pattern of `--payload-template` or `--payload-file`, checked for the
    /// scenario: one that times answers needs a `{stamp}`, and text frames need UTF-8.
    fn pattern(&self, scenario: &ScenarioSpec) -> Result<Option<Pattern>, ConfigError> {
        let text = match (&self.payload_template, &self.payload_file) {
            (Some(t), _) => t.clone().into_bytes(),
            (None, Some(path)) => std::fs::read(path).map_err(|e| {
                ConfigError::Pattern(format!("--payload-file {}: {e}", path.display()))
            })?,
            (None, None) => return Ok(None),
        };
        let pattern = Pattern::parse(&text).map_err(|e| ConfigError::Pattern(e.to_string()))?;
        let times_answers = !matches!(
            scenario,
            ScenarioSpec::Send | ScenarioSpec::Connect { .. } | ScenarioSpec::Hold { .. }
        );
        if times_answers && !pattern.has_stamp() {
            return Err(ConfigError::Pattern(format!(
                "the payload template needs {{stamp}} for {}: the generator reads each \
                 message's send time back from its answer",
                scenario.name()
            )));
        }
        if self.payload != Some(PayloadKind::Binary) && std::str::from_utf8(&text).is_err() {
            return Err(ConfigError::Pattern(
                "the payload template is not UTF-8: send it with --payload binary".into(),
            ));
        }
        Ok(Some(pattern))
    }
}

/// What the process should do, once the command line is validated.
#[derive(Debug)]
pub enum Action {
    /// Run a load scenario.
    Run(Box<RunSpec>, Output),
    /// Run the sink server.
    Sink(SinkArgs),
    /// Run the benchmark suite.
    Suite(SuiteArgs),
}

/// Where results go.
#[derive(Debug, Clone, Default)]
pub struct Output {
    /// `--json`.
    pub json: Option<PathBuf>,
    /// `--plot`.
    pub plot: Option<PathBuf>,
    /// `--hgrm`.
    pub hgrm: Option<PathBuf>,
    /// `--csv`.
    pub csv: Option<PathBuf>,
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
            Command::Suite(a) => return Ok(Action::Suite(a)),
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
                let interval_ns = match a.rate {
                    Some(rate) => (a.common.connections as f64 * 1e9 / rate) as u64,
                    None => (a.interval * 1e6) as u64,
                };
                check(
                    interval_ns >= 1_000,
                    "--rate",
                    "at most 1,000,000 per connection per second",
                )?;
                (a.common, ScenarioSpec::Rate { interval_ns, rate: a.rate }, None)
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
                (
                    a.common,
                    ScenarioSpec::Broadcast { rate: a.rate, sender_urls: a.sender_urls },
                    None,
                )
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
            hgrm: common.hgrm.clone(),
            csv: common.csv.clone(),
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
    fn urls_repeat_and_senders_follow_sender_urls() {
        let Ok(Action::Run(spec, _)) = parse(&[
            "broadcast",
            "--url",
            "ws://127.0.0.1:9/a",
            "--url",
            "ws://127.0.0.1:10/b",
            "--sender-url",
            "ws://127.0.0.1:11/c",
        ]) else {
            panic!("not a run");
        };
        assert_eq!(spec.urls, ["ws://127.0.0.1:9/a", "ws://127.0.0.1:10/b"]);
        assert_eq!(spec.url, "ws://127.0.0.1:9/a");
        let ports: Vec<u16> = spec.engine.targets.iter().map(|t| t.addr.port()).collect();
        assert_eq!(ports, [9, 10]);
        assert_eq!(spec.engine.targets[1].path, "/b");
        assert_eq!(spec.engine.alt_targets.len(), 1);
        let Ok(Action::Run(spec, _)) = parse(&["echo"]) else {
            panic!("not a run");
        };
        assert_eq!(spec.urls, ["ws://127.0.0.1:9001/"]);
        assert!(spec.engine.alt_targets.is_empty());
        assert!(matches!(
            parse(&["echo", "--url", "ws://127.0.0.1:9/", "--url", "http://x/"]),
            Err(ConfigError::Url(_))
        ));
    }

    #[test]
    fn tls_is_set_up_only_for_wss_targets() {
        let tls = |args: &[&str]| match parse(args) {
            Ok(Action::Run(spec, _)) => Ok(spec.engine.tls.is_some()),
            Ok(_) => panic!("not a run"),
            Err(e) => Err(e),
        };
        assert_eq!(tls(&["echo", "--url", "ws://127.0.0.1:9/"]), Ok(false));
        assert_eq!(tls(&["echo", "--url", "wss://127.0.0.1:9/"]), Ok(true));
        assert_eq!(tls(&["echo", "--url", "wss://localhost:9/", "--insecure"]), Ok(true));
        // Only a broadcast sender speaks TLS: still set up.
        let sender =
            ["broadcast", "--url", "ws://127.0.0.1:9/", "--sender-url", "wss://localhost:9/"];
        assert_eq!(tls(&sender), Ok(true));
        assert!(matches!(
            tls(&["echo", "--url", "wss://127.0.0.1:9/", "--ca", "/nonexistent/ca.pem"]),
            Err(ConfigError::Tls(TlsError::Ca { .. }))
        ));
        let mut v = vec!["wsloop-loadtest", "echo", "--url", "wss://localhost:9/"];
        v.extend(["--insecure", "--ca", "ca.pem"]);
        assert!(Cli::try_parse_from(v).is_err(), "--insecure and --ca conflict");
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
