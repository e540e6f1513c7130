//! The server's settings: one struct, filled from built-in defaults, then a TOML file,
//! then `WSLOOP_*` environment variables, then flags (each later source wins), and turned
//! into a library [`Config`].
//!
//! Every key is a flag (`max_message_size` is `--max-message-size`) and an environment
//! variable (`WSLOOP_MAX_MESSAGE_SIZE`). Each source is checked key by key, so an unknown
//! key or a bad value is reported with its key and where it came from. Durations are
//! seconds (fractions allowed, 0 turns an optional one off), sizes bytes.

use std::fmt;
use std::path::Path;
use std::time::Duration;

use clap::ValueEnum;
use serde::{Deserialize, Serialize};
use wsloop::{
    Backpressure, Builtin, ClusterConfig, Compression, Config, Dispatch, TlsConfig, TlsError,
};

/// Where the handler runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum DispatchMode {
    Workers,
    Inline,
}

/// What happens past `max_backpressure`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum BackpressureMode {
    Close,
    Drop,
}

/// permessage-deflate for clients that offer it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum CompressionMode {
    Off,
    Shared,
    Dedicated,
}

/// The effective settings (what `--print-config` prints).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    pub addr: String,
    /// 0: the number of cores.
    pub reactors: usize,
    /// 0: the number of cores.
    pub workers: usize,
    pub dispatch: DispatchMode,
    pub max_message_size: usize,
    pub handshake_timeout: f64,
    pub max_backpressure: usize,
    pub backpressure: BackpressureMode,
    pub worker_queue: usize,
    pub worker_queue_bytes: usize,
    pub fanout_queue_bytes: usize,
    /// Hosts answered; empty: any.
    pub allowed_hosts: Vec<String>,
    pub max_connections: usize,
    pub idle_timeout: f64,
    pub ping_interval: f64,
    pub pong_timeout: f64,
    /// Microseconds of busy polling after events; 0: none.
    pub busy_poll_us: u64,
    pub compression: CompressionMode,
    pub compression_window_bits: u8,
    pub compression_threshold: usize,
    pub compression_level: u32,
    pub max_topics_per_connection: usize,
    pub max_subscribers_per_topic: usize,
    pub close_timeout: f64,
    /// Subprotocols spoken, in preference order.
    pub subprotocols: Vec<String>,
    pub healthz: bool,
    pub readyz: bool,
    pub metrics: bool,
    pub admin: bool,
    /// Enables the admin actions; empty: read-only.
    pub admin_token: String,
    /// Seconds `/readyz` answers 503 before a SIGTERM closes connections.
    pub drain_delay: f64,
    /// `redis://HOST:PORT` of the cluster to join; empty: standalone.
    pub cluster: String,
    /// This node's id; 0: random.
    pub node_id: u32,
    pub cluster_unsubscribe_delay: f64,
    pub cluster_queue_bytes: usize,
    /// PEM file of the certificate chain; with `tls_key`, the port serves wss://.
    pub tls_cert: String,
    /// PEM file of the private key.
    pub tls_key: String,
    /// Largest plaintext of one TLS record; 0: 16384.
    pub tls_max_fragment_size: usize,
    /// TLS 1.3 resumption tickets per handshake.
    pub tls_tickets: usize,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            addr: "127.0.0.1:9001".to_owned(),
            reactors: 0,
            workers: 0,
            dispatch: DispatchMode::Workers,
            max_message_size: 64 << 10,
            handshake_timeout: 15.0,
            max_backpressure: 1 << 20,
            backpressure: BackpressureMode::Close,
            worker_queue: 1024,
            worker_queue_bytes: 4 << 20,
            fanout_queue_bytes: 16 << 20,
            allowed_hosts: Vec::new(),
            max_connections: 1 << 20,
            idle_timeout: 0.0,
            ping_interval: 30.0,
            pong_timeout: 10.0,
            busy_poll_us: 0,
            compression: CompressionMode::Shared,
            compression_window_bits: 15,
            compression_threshold: 1024,
            compression_level: 1,
            // A client on the network must not grow the server's memory without end.
            max_topics_per_connection: 64,
            max_subscribers_per_topic: 0,
            close_timeout: 5.0,
            subprotocols: Vec::new(),
            healthz: true,
            readyz: true,
            metrics: true,
            admin: true,
            admin_token: String::new(),
            drain_delay: 0.0,
            cluster: String::new(),
            node_id: 0,
            cluster_unsubscribe_delay: 2.0,
            cluster_queue_bytes: 16 << 20,
            tls_cert: String::new(),
            tls_key: String::new(),
            tls_max_fragment_size: 0,
            tls_tickets: 2,
        }
    }
}

/// A setting that could not be read, with where it came from.
#[derive(Debug)]
pub enum SettingsError {
    /// The config file could not be read.
    File { path: String, error: std::io::Error },
    /// The config file is not TOML.
    Syntax { path: String, error: String },
    /// A key no setting has, or a value its setting cannot take.
    Key { source: String, key: String, error: String },
}

impl fmt::Display for SettingsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SettingsError::File { path, error } => write!(f, "cannot read {path}: {error}"),
            SettingsError::Syntax { path, error } => write!(f, "{path}: {error}"),
            SettingsError::Key { source, key, error } => write!(f, "{source}: `{key}`: {error}"),
        }
    }
}

impl std::error::Error for SettingsError {}

/// One source's keys and values.
pub type Layer = toml::Table;

/// Reads the TOML file at `path` as a layer.
pub fn file_layer(path: &Path) -> Result<Layer, SettingsError> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path)
        .map_err(|error| SettingsError::File { path: name.clone(), error })?;
    let layer: Layer = text.parse().map_err(|e: toml::de::Error| SettingsError::Syntax {
        path: name.clone(),
        error: e.to_string(),
    })?;
    check(&layer, &name)?;
    Ok(layer)
}

/// The `WSLOOP_<KEY>` variables among `vars` as a layer. A value is read as TOML (`2`,
/// `true`, `1.5`), or else as a string (`localhost:9001`). Variables that name no setting
/// are returned apart so the caller can warn about them.
pub fn env_layer(
    vars: impl IntoIterator<Item = (String, String)>,
) -> Result<(Layer, Vec<String>), SettingsError> {
    let known = toml::Table::try_from(Settings::default()).unwrap_or_default();
    let mut layer = Layer::new();
    let mut unknown = Vec::new();
    for (name, raw) in vars {
        let Some(key) = name.strip_prefix("WSLOOP_").map(str::to_ascii_lowercase) else {
            continue;
        };
        if !known.contains_key(&key) {
            unknown.push(name);
            continue;
        }
        let value = format!("v = {raw}")
            .parse::<toml::Table>()
            .ok()
            .and_then(|mut t| t.remove("v"))
            .unwrap_or(toml::Value::String(raw));
        let mut one = Layer::new();
        one.insert(key.clone(), value.clone());
        check(&one, &name)?;
        layer.insert(key, value);
    }
    Ok((layer, unknown))
}

/// Checks every key of `layer` on its own, so an error names the key.
pub fn check(layer: &Layer, source: &str) -> Result<(), SettingsError> {
    for (key, value) in layer {
        let mut one = Layer::new();
        one.insert(key.clone(), value.clone());
        Settings::deserialize(one).map_err(|e| SettingsError::Key {
            source: source.to_owned(),
            key: key.clone(),
            error: e.message().to_owned(),
        })?;
    }
    Ok(())
}

/// The settings from the layers, later layers winning.
pub fn merge(
    layers: impl IntoIterator<Item = (Layer, &'static str)>,
) -> Result<Settings, SettingsError> {
    let mut all = Layer::new();
    for (layer, source) in layers {
        check(&layer, source)?;
        all.extend(layer);
    }
    Settings::deserialize(all).map_err(|e| SettingsError::Key {
        source: "settings".to_owned(),
        key: String::new(),
        error: e.message().to_owned(),
    })
}

impl Settings {
    /// The effective settings as TOML.
    pub fn to_toml(&self) -> String {
        toml::to_string(self).unwrap_or_default()
    }

    /// The library configuration these settings describe.
    pub fn config(&self) -> Result<Config, SettingsError> {
        let mut config = Config::default()
            .addr(self.addr.as_str())
            .dispatch(match self.dispatch {
                DispatchMode::Workers => Dispatch::Workers,
                DispatchMode::Inline => Dispatch::Inline,
            })
            .max_message_size(self.max_message_size)
            .handshake_timeout(seconds("handshake_timeout", self.handshake_timeout)?)
            .max_backpressure(self.max_backpressure)
            .backpressure(match self.backpressure {
                BackpressureMode::Close => Backpressure::Close,
                BackpressureMode::Drop => Backpressure::Drop,
            })
            .worker_queue(self.worker_queue)
            .worker_queue_bytes(self.worker_queue_bytes)
            .fanout_queue_bytes(self.fanout_queue_bytes)
            .allowed_hosts(self.allowed_hosts.iter().cloned())
            .max_connections(self.max_connections)
            .idle_timeout(optional("idle_timeout", self.idle_timeout)?)
            .ping_interval(optional("ping_interval", self.ping_interval)?)
            .pong_timeout(seconds("pong_timeout", self.pong_timeout)?)
            .busy_poll(Duration::from_micros(self.busy_poll_us))
            .close_timeout(seconds("close_timeout", self.close_timeout)?)
            .compression(match self.compression {
                CompressionMode::Off => Compression::Disabled,
                CompressionMode::Shared => Compression::Shared,
                CompressionMode::Dedicated => {
                    Compression::Dedicated { window_bits: self.compression_window_bits }
                }
            })
            .compression_threshold(self.compression_threshold)
            .compression_level(self.compression_level)
            .max_topics_per_connection(self.max_topics_per_connection)
            .max_subscribers_per_topic(self.max_subscribers_per_topic)
            .subprotocols(self.subprotocols.iter().map(String::as_str))
            .builtin_route(Builtin::Healthz, self.healthz)
            .builtin_route(Builtin::Readyz, self.readyz)
            .builtin_route(Builtin::Metrics, self.metrics)
            .builtin_route(Builtin::Admin, self.admin)
            .admin_token(self.admin_token.as_str());
        seconds("drain_delay", self.drain_delay)?;
        if self.reactors > 0 {
            config = config.reactors(self.reactors);
        }
        if self.workers > 0 {
            config = config.workers(self.workers);
        }
        if let Some(cluster) = self.cluster_config()? {
            config = config.cluster(cluster);
        }
        if let Some(tls) = self.tls_config()? {
            config = config.tls(tls);
        }
        Ok(config)
    }

    /// The TLS settings, when a certificate and key are named.
    fn tls_config(&self) -> Result<Option<TlsConfig>, SettingsError> {
        let error = |key: &str, error: String| SettingsError::Key {
            source: "settings".to_owned(),
            key: key.to_owned(),
            error,
        };
        match (self.tls_cert.is_empty(), self.tls_key.is_empty()) {
            (true, true) => return Ok(None),
            (false, true) => return Err(error("tls_key", "tls_cert needs tls_key".into())),
            (true, false) => return Err(error("tls_cert", "tls_key needs tls_cert".into())),
            (false, false) => {}
        }
        let tls = TlsConfig::from_pem_files(&self.tls_cert, &self.tls_key).map_err(|e| {
            let key_at_fault = match &e {
                TlsError::NoPrivateKey => true,
                TlsError::Read { path, .. } => path.as_os_str() == self.tls_key.as_str(),
                _ => false,
            };
            error(if key_at_fault { "tls_key" } else { "tls_cert" }, e.to_string())
        })?;
        let fragment = Some(self.tls_max_fragment_size).filter(|n| *n > 0);
        Ok(Some(tls.max_fragment_size(fragment).tickets(self.tls_tickets)))
    }

    /// The cluster to join, if any.
    fn cluster_config(&self) -> Result<Option<ClusterConfig>, SettingsError> {
        let delay = seconds("cluster_unsubscribe_delay", self.cluster_unsubscribe_delay)?;
        if self.cluster.is_empty() {
            return Ok(None);
        }
        let mut cluster = ClusterConfig::new(self.cluster.as_str())
            .unsubscribe_delay(delay)
            .queue_bytes(self.cluster_queue_bytes);
        if self.node_id > 0 {
            cluster = cluster.node_id(self.node_id);
        }
        cluster.validate().map_err(|e| SettingsError::Key {
            source: "settings".to_owned(),
            key: "cluster".to_owned(),
            error: e.to_string(),
        })?;
        Ok(Some(cluster))
    }

    /// The settings for the start-up log line: every key, the admin token hidden.
    pub fn summary(&self) -> String {
        let mut shown = self.clone();
        if !shown.admin_token.is_empty() {
            shown.admin_token = "(set)".to_owned();
        }
        let table = toml::Table::try_from(&shown).unwrap_or_default();
        table.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" ")
    }
}

/// Seconds as a duration; negative, infinite, NaN or over `MAX_DURATION` (10 years) is an
/// error naming `key`.
pub fn seconds(key: &str, value: f64) -> Result<Duration, SettingsError> {
    Duration::try_from_secs_f64(value).ok().filter(|d| *d <= wsloop::MAX_DURATION).ok_or_else(
        || SettingsError::Key {
            source: "settings".to_owned(),
            key: key.to_owned(),
            error: format!("{value} is not a number of seconds from 0 to 10 years"),
        },
    )
}

/// Seconds, 0 meaning "off".
fn optional(key: &str, value: f64) -> Result<Option<Duration>, SettingsError> {
    Ok(Some(seconds(key, value)?).filter(|d| !d.is_zero()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(text: &str) -> Layer {
        text.parse().unwrap()
    }

    #[test]
    fn later_layers_win_key_by_key() {
        let file = layer("reactors = 3\nmax_message_size = 1000\ncompression_level = 2");
        let env =
            [("WSLOOP_MAX_MESSAGE_SIZE", "2000"), ("WSLOOP_COMPRESSION_LEVEL", "5"), ("HOME", "/")];
        let (env, unknown) =
            env_layer(env.iter().map(|(k, v)| (k.to_string(), v.to_string()))).unwrap();
        assert!(unknown.is_empty());
        let flags = layer("compression_level = 7");
        let s = merge([(file, "file"), (env, "env"), (flags, "flags")]).unwrap();
        assert_eq!((s.reactors, s.max_message_size, s.compression_level), (3, 2000, 7));
        assert_eq!(s.addr, "127.0.0.1:9001", "untouched keys keep their defaults");
    }

    #[test]
    fn errors_name_the_key_and_the_source() {
        let err = merge([(layer("bogus = 1"), "wsloop.toml")]).unwrap_err().to_string();
        assert!(err.contains("wsloop.toml") && err.contains("bogus"), "{err}");
        let err = merge([(layer("reactors = \"x\""), "wsloop.toml")]).unwrap_err().to_string();
        assert!(err.contains("`reactors`"), "{err}");
        let vars = [("WSLOOP_DISPATCH".to_owned(), "sideways".to_owned())];
        let err = env_layer(vars).unwrap_err().to_string();
        assert!(err.contains("WSLOOP_DISPATCH") && err.contains("dispatch"), "{err}");
        let s = Settings { idle_timeout: -1.0, ..Settings::default() };
        assert!(s.config().unwrap_err().to_string().contains("idle_timeout"));
        let s = Settings { cluster: "localhost:6379".into(), ..Settings::default() };
        assert!(s.config().unwrap_err().to_string().contains("redis://HOST:PORT"));
        let s = Settings { cluster: "redis://h:1".into(), node_id: 1 << 24, ..Settings::default() };
        assert!(s.config().unwrap_err().to_string().contains("node id"));
    }

    #[test]
    fn tls_needs_both_files_and_says_what_is_wrong() {
        let s = Settings { tls_cert: "cert.pem".into(), ..Settings::default() };
        assert!(s.config().unwrap_err().to_string().contains("tls_key"));
        let s = Settings {
            tls_cert: "/nonexistent/cert.pem".into(),
            tls_key: "/nonexistent/key.pem".into(),
            ..Settings::default()
        };
        let err = s.config().unwrap_err().to_string();
        assert!(err.contains("tls_cert") && err.contains("/nonexistent/cert.pem"), "{err}");
    }

    #[test]
    fn printed_settings_read_back_the_same() {
        let s = Settings { reactors: 2, addr: "localhost:9001".into(), ..Settings::default() };
        let back = merge([(layer(&s.to_toml()), "printed")]).unwrap();
        assert_eq!(back, s);
    }

    #[test]
    fn env_values_are_toml_or_strings() {
        let vars =
            [("WSLOOP_ADDR", "localhost:9001"), ("WSLOOP_METRICS", "false"), ("WSLOOP_NOPE", "1")];
        let (env, unknown) =
            env_layer(vars.iter().map(|(k, v)| (k.to_string(), v.to_string()))).unwrap();
        assert_eq!(unknown, vec!["WSLOOP_NOPE".to_owned()]);
        let s = merge([(env, "env")]).unwrap();
        assert_eq!((s.addr.as_str(), s.metrics), ("localhost:9001", false));
    }
}
