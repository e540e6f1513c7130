//! The suite's matrix: which servers, how each is built and started, and the scenarios'
//! sizes, read from TOML (`loadtest/suite.toml` is the default). Every field is required:
//! a matrix that forgets one is refused, rather than run with a guess.

use std::fmt;

use serde::Deserialize;

/// The default matrix, `loadtest/suite.toml`.
pub const DEFAULT: &str = include_str!("../../suite.toml");

/// A whole matrix.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Matrix {
    /// Timing and cores.
    pub settings: Settings,
    /// Scenario sizes.
    pub scenarios: Scenarios,
    /// The servers, in table order.
    #[serde(rename = "server")]
    pub servers: Vec<ServerSpec>,
}

/// Timing and cores.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Measured seconds of each echo and latency run.
    pub duration_s: f64,
    /// Seconds of load before measuring.
    pub warmup_s: f64,
    /// Seconds the idle connections are held.
    pub hold_s: f64,
    /// The core each server is pinned to.
    pub server_core: usize,
    /// The core the generator and the suite are pinned to.
    pub client_core: usize,
    /// Rounds of the echo and latency runs. A round runs each scenario on every server
    /// in turn (in reverse order in even rounds), so a server's rounds are spread over
    /// the suite's time and each round's ratios compare runs less than a minute apart;
    /// figures are the median round's.
    pub rounds: u32,
}

/// Scenario sizes.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenarios {
    /// Echo connections.
    pub echo_connections: usize,
    /// Echo messages in flight per connection.
    pub echo_window: usize,
    /// Echo payload sizes, bytes: one run each.
    pub echo_sizes: Vec<usize>,
    /// Latency run connections.
    pub rate_connections: usize,
    /// Latency run: milliseconds between two messages of a connection.
    pub rate_interval_ms: f64,
    /// Idle-memory run connections.
    pub hold_connections: usize,
}

/// One server of the matrix.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSpec {
    /// Short name (files, `--servers`).
    pub key: String,
    /// Name in the tables.
    pub label: String,
    /// A server under test (its ratios to every other server are printed).
    pub subject: bool,
    /// Programs that must be on PATH to build and run it.
    pub needs: Vec<String>,
    /// Commands that build it, in order (identical commands run once per suite).
    pub build: Vec<Vec<String>>,
    /// The command that runs it; `{port}` is replaced.
    pub run: Vec<String>,
}

/// A matrix that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MatrixError {
    /// Not valid TOML, or a field missing, unknown or of the wrong type.
    Toml(String),
    /// A value that cannot run.
    Invalid(String),
}

impl fmt::Display for MatrixError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MatrixError::Toml(e) => write!(f, "matrix: {e}"),
            MatrixError::Invalid(e) => write!(f, "matrix: {e}"),
        }
    }
}

impl std::error::Error for MatrixError {}

impl Matrix {
    /// Reads and checks a matrix.
    ///
    /// # Errors
    /// [`MatrixError`] naming the field.
    pub fn parse(text: &str) -> Result<Matrix, MatrixError> {
        let m: Matrix = toml::from_str(text).map_err(|e| MatrixError::Toml(e.to_string()))?;
        m.check()?;
        Ok(m)
    }

    fn check(&self) -> Result<(), MatrixError> {
        let bad = |what: &str| Err(MatrixError::Invalid(what.to_string()));
        let s = &self.settings;
        if !(1.0..=600.0).contains(&s.duration_s) || !(0.0..=60.0).contains(&s.warmup_s) {
            return bad("settings.duration_s must be 1..600 and warmup_s 0..60");
        }
        if !(0.1..=60.0).contains(&s.hold_s) {
            return bad("settings.hold_s must be 0.1..60");
        }
        if !(1..=20).contains(&s.rounds) {
            return bad("settings.rounds must be 1..20");
        }
        if s.server_core == s.client_core {
            return bad("settings.server_core and client_core must differ");
        }
        let c = &self.scenarios;
        if c.echo_connections == 0 || c.echo_window == 0 || c.rate_connections == 0 {
            return bad("scenario connections and window must be at least 1");
        }
        if c.echo_sizes.is_empty() || c.echo_sizes.iter().any(|&n| !(16..=1 << 20).contains(&n)) {
            return bad("scenarios.echo_sizes must list sizes from 16 bytes to 1 MiB");
        }
        if !(1..=100_000).contains(&c.hold_connections) {
            return bad("scenarios.hold_connections must be 1..100000");
        }
        if self.servers.is_empty() {
            return bad("no [[server]]");
        }
        for (i, sv) in self.servers.iter().enumerate() {
            if sv.key.is_empty() || !sv.key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            {
                return bad("a server key must be letters, digits and dashes");
            }
            if self.servers[..i].iter().any(|o| o.key == sv.key) {
                return Err(MatrixError::Invalid(format!("server key {} is repeated", sv.key)));
            }
            if sv.run.is_empty() || !sv.run.iter().any(|a| a.contains("{port}")) {
                return Err(MatrixError::Invalid(format!(
                    "server {}: `run` must be a command with {{port}} in it",
                    sv.key
                )));
            }
            if sv.build.iter().any(Vec::is_empty) {
                return Err(MatrixError::Invalid(format!(
                    "server {}: an empty build command",
                    sv.key
                )));
            }
        }
        Ok(())
    }

    /// Shortens the runs (`--quick`): 3 s measured, 1 s held.
    pub fn quick(&mut self) {
        self.settings.duration_s = self.settings.duration_s.min(3.0);
        self.settings.hold_s = self.settings.hold_s.min(1.0);
        self.settings.rounds = 1;
    }

    /// Keeps only the servers named in `keys`.
    ///
    /// # Errors
    /// [`MatrixError::Invalid`] naming a key the matrix does not have.
    pub fn only(&mut self, keys: &[String]) -> Result<(), MatrixError> {
        if let Some(k) = keys.iter().find(|k| !self.servers.iter().any(|s| &s.key == *k)) {
            return Err(MatrixError::Invalid(format!("no server {k} in the matrix")));
        }
        self.servers.retain(|s| keys.contains(&s.key));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_matrix_reads() {
        let m = Matrix::parse(DEFAULT).expect("loadtest/suite.toml is valid");
        assert_eq!(m.servers.len(), 8);
        assert_eq!(m.servers[4].key, "uwebsockets");
        assert_eq!(m.servers[0].key, "wsloop-inline");
        assert!(m.servers[3].subject && !m.servers[4].subject);
        assert_eq!(m.scenarios.echo_sizes, [32, 1024]);
        assert_eq!((m.settings.server_core, m.settings.client_core), (0, 1));
    }

    #[test]
    fn a_missing_or_unknown_field_is_refused() {
        let missing = DEFAULT.replace("hold_s = 2.0", "");
        let e = Matrix::parse(&missing).expect_err("hold_s is required");
        assert!(e.to_string().contains("hold_s"), "{e}");
        let unknown = DEFAULT.replace("hold_s = 2.0", "hold_s = 2.0\nhodl_s = 3");
        assert!(Matrix::parse(&unknown).expect_err("unknown").to_string().contains("hodl_s"));
        let no_rounds = DEFAULT.replace("rounds = 3", "rounds = 0");
        assert!(matches!(Matrix::parse(&no_rounds), Err(MatrixError::Invalid(_))));
        let same_core = DEFAULT.replace("client_core = 1", "client_core = 0");
        assert!(matches!(Matrix::parse(&same_core), Err(MatrixError::Invalid(_))));
        let no_port = DEFAULT.replace("\"--port\", \"{port}\", \"--threads\"", "\"--threads\"");
        assert!(matches!(Matrix::parse(&no_port), Err(MatrixError::Invalid(_))));
    }

    #[test]
    fn quick_and_only() {
        let mut m = Matrix::parse(DEFAULT).expect("valid");
        m.quick();
        assert_eq!((m.settings.duration_s, m.settings.hold_s, m.settings.rounds), (3.0, 1.0, 1));
        m.only(&["node-ws".into(), "wsloop-inline".into()]).expect("known");
        assert_eq!(
            m.servers.iter().map(|s| s.key.as_str()).collect::<Vec<_>>(),
            ["wsloop-inline", "node-ws"]
        );
        assert!(m.only(&["nginx".into()]).is_err());
    }
}
