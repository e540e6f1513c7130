//! Command-line flags: one per setting (see [`Settings`](crate::settings::Settings)), all
//! optional, so a flag that is not given leaves the file's or the environment's value.

use std::path::PathBuf;

use clap::Parser;
use serde::Serialize;

use crate::settings::{BackpressureMode, CompressionMode, DispatchMode, Layer, SettingsError};

/// A WebSocket server on wsloop: echo on / and /echo, fan-out on /broadcast, chat rooms on
/// /chat; /healthz, /readyz, /metrics and /admin over plain HTTP on the same port.
///
/// Settings come from built-in defaults, then --config FILE (TOML), then WSLOOP_<KEY>
/// environment variables, then these flags. Durations are seconds, sizes bytes.
#[derive(Debug, Parser, Serialize)]
#[command(version, about)]
pub struct Flags {
    /// A TOML file of settings (keys as these flags, with underscores).
    #[arg(long)]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// Print the effective settings as TOML and exit.
    #[arg(long)]
    #[serde(skip)]
    pub print_config: bool,

    /// Address to listen on (a host name resolves: localhost:9001) [default: 127.0.0.1:9001].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub addr: Option<String>,
    /// Reactor threads (0: number of cores) [default: 0].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reactors: Option<usize>,
    /// Worker threads for the handler (0: number of cores) [default: 0].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workers: Option<usize>,
    /// Where the handler runs [default: workers].
    #[arg(long, value_enum)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dispatch: Option<DispatchMode>,
    /// Largest message accepted, in bytes (bigger closes with 1009) [default: 65536].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_message_size: Option<usize>,
    /// Seconds a client has to complete its handshake [default: 15].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub handshake_timeout: Option<f64>,
    /// Bytes that may wait for one connection before the backpressure policy applies
    /// [default: 1048576].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_backpressure: Option<usize>,
    /// What happens past --max-backpressure [default: close].
    #[arg(long, value_enum)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backpressure: Option<BackpressureMode>,
    /// Event batches a worker's queue holds before reading its connections pauses
    /// [default: 1024].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub worker_queue: Option<usize>,
    /// Bytes of events waiting for one worker before reading its connections pauses
    /// [default: 4194304].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub worker_queue_bytes: Option<usize>,
    /// Bytes of publishes and broadcasts waiting for one reactor; past it they are dropped
    /// and counted [default: 16777216].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fanout_queue_bytes: Option<usize>,
    /// Hosts the server answers to, comma-separated (`name` matches any port, `name:port`
    /// only that one); others get 403. Closes DNS rebinding [default: any].
    #[arg(long, value_delimiter = ',')]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allowed_hosts: Option<Vec<String>>,
    /// Sockets held at most; past it new connections get HTTP 503 [default: 1048576].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_connections: Option<usize>,
    /// Seconds without a message before a connection is closed (0: never) [default: 0].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idle_timeout: Option<f64>,
    /// Seconds of silence before a connection is pinged (0: no pings) [default: 30].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ping_interval: Option<f64>,
    /// Seconds a pinged peer has to answer before it is dropped as dead [default: 10].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pong_timeout: Option<f64>,
    /// Microseconds a reactor keeps polling without sleeping after it had events (0: it
    /// sleeps at once). Lowers latency at low load by the wake-up time of a sleeping
    /// thread, for the CPU the polls burn [default: 0].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub busy_poll_us: Option<u64>,
    /// permessage-deflate: off, shared (no memory per connection) or dedicated (context
    /// takeover, ~340 KB per connection) [default: shared].
    #[arg(long, value_enum)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compression: Option<CompressionMode>,
    /// LZ77 window bits (8-15) in dedicated compression [default: 15].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compression_window_bits: Option<u8>,
    /// Messages shorter than this many bytes are sent uncompressed [default: 1024].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compression_threshold: Option<usize>,
    /// zlib level, 0-9 [default: 1].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compression_level: Option<u32>,
    /// Topics (chat rooms) one connection may be in (0: no limit) [default: 64].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_topics_per_connection: Option<usize>,
    /// Members one topic may have (0: no limit) [default: 0].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_subscribers_per_topic: Option<usize>,
    /// Seconds to wait for the peer's answer to a close frame (and for shutdown)
    /// [default: 5].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub close_timeout: Option<f64>,
    /// Subprotocols spoken, in preference order, comma-separated [default: none].
    #[arg(long, value_delimiter = ',')]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subprotocols: Option<Vec<String>>,
    /// Answer GET /healthz [default: true].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub healthz: Option<bool>,
    /// Answer GET /readyz [default: true].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub readyz: Option<bool>,
    /// Answer GET /metrics (Prometheus) [default: true].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics: Option<bool>,
    /// Serve the /admin page [default: true].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admin: Option<bool>,
    /// Bearer token enabling the admin actions (empty: read-only) [default: ""].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admin_token: Option<String>,
    /// Seconds /readyz answers 503 after SIGTERM before connections are closed
    /// [default: 0].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drain_delay: Option<f64>,
    /// Join a cluster through the Redis at redis://HOST:PORT: publishes, /broadcast, /chat
    /// and sends to connection ids reach every node (empty: standalone) [default: ""].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    /// This node's id in the cluster, 1-16777215 (0: random at start) [default: 0].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node_id: Option<u32>,
    /// Seconds a topic stays subscribed in Redis after its last local member left
    /// [default: 2].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster_unsubscribe_delay: Option<f64>,
    /// Bytes of cross-node messages waiting for Redis before publishes are refused
    /// [default: 16777216].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster_queue_bytes: Option<usize>,
    /// PEM file of the certificate chain (leaf first): serve wss:// (with --tls-key)
    /// [default: "", plain ws://].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_cert: Option<String>,
    /// PEM file of the certificate's private key (PKCS#8, PKCS#1 or SEC1) [default: ""].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_key: Option<String>,
    /// Largest plaintext of one TLS record, 32-16384 (0: 16384) [default: 0].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_max_fragment_size: Option<usize>,
    /// TLS 1.3 resumption tickets sent per handshake (0: no resumption) [default: 2].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_tickets: Option<usize>,
}

impl Flags {
    /// The flags that were given, as a settings layer.
    ///
    /// # Errors
    /// A value TOML cannot hold (an integer past `i64::MAX`), naming its flag's key:
    /// never a layer that silently lacks every flag.
    pub fn layer(&self) -> Result<Layer, SettingsError> {
        Layer::try_from(self).map_err(|e| SettingsError::Key {
            source: "flags".to_owned(),
            key: self.refused_key().unwrap_or_default(),
            error: e.to_string(),
        })
    }

    /// The key of the flag TOML refuses, found one key at a time through JSON.
    fn refused_key(&self) -> Option<String> {
        let serde_json::Value::Object(given) = serde_json::to_value(self).ok()? else {
            return None;
        };
        given.into_iter().find(|(_, value)| toml::Value::try_from(value).is_err()).map(|(k, _)| k)
    }
}
