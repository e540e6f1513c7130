//! The server under test: `ws://` or `wss://host[:port][/path]` resolved once to a socket
//! address.

use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs};

/// Where to connect and what to put in the upgrade request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The resolved address (the first one the resolver gives).
    pub addr: SocketAddr,
    /// The `Host` header: `host[:port]` as written in the URL.
    pub host: String,
    /// The request target: path and query, starting with `/`.
    pub path: String,
    /// `wss://`: the connection runs TLS, and this is the name the server's certificate
    /// must be valid for (the host without port or brackets). `None` for `ws://`.
    pub tls_name: Option<String>,
}

/// Why a `--url` was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UrlError {
    /// Neither `ws://` nor `wss://`.
    Scheme(String),
    /// No host after the scheme.
    MissingHost,
    /// The port is not a number from 1 to 65535.
    BadPort(String),
    /// The host did not resolve.
    Resolve(String),
}

impl fmt::Display for UrlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UrlError::Scheme(s) => {
                write!(f, "unsupported URL scheme in {s:?}: use ws:// or wss://")
            }
            UrlError::MissingHost => f.write_str("the URL has no host"),
            UrlError::BadPort(p) => write!(f, "bad port {p:?}"),
            UrlError::Resolve(h) => write!(f, "cannot resolve {h:?}"),
        }
    }
}

impl std::error::Error for UrlError {}

impl Target {
    /// Parses and resolves a `ws://` or `wss://` URL (default ports 80 and 443).
    ///
    /// # Errors
    /// [`UrlError`] for another scheme, a missing host, a bad port or a name that does not
    /// resolve.
    pub fn parse(url: &str) -> Result<Target, UrlError> {
        let (rest, tls) = match (url.strip_prefix("ws://"), url.strip_prefix("wss://")) {
            (Some(rest), _) => (rest, false),
            (None, Some(rest)) => (rest, true),
            (None, None) => return Err(UrlError::Scheme(url.to_string())),
        };
        let (authority, path) = match rest.find(['/', '?']) {
            Some(i) if rest.as_bytes()[i] == b'/' => (&rest[..i], rest[i..].to_string()),
            Some(i) => (&rest[..i], format!("/{}", &rest[i..])),
            None => (rest, "/".to_string()),
        };
        if authority.is_empty() {
            return Err(UrlError::MissingHost);
        }
        let (host, port) = split_host_port(authority, if tls { 443 } else { 80 })?;
        if host.is_empty() {
            return Err(UrlError::MissingHost);
        }
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let addr = (bare, port)
            .to_socket_addrs()
            .map_err(|_| UrlError::Resolve(host.to_string()))?
            .next()
            .ok_or_else(|| UrlError::Resolve(host.to_string()))?;
        let tls_name = tls.then(|| bare.to_string());
        Ok(Target { addr, host: authority.to_string(), path, tls_name })
    }
}

fn split_host_port(authority: &str, default_port: u16) -> Result<(&str, u16), UrlError> {
    // `[::1]:9001`, `[::1]`, `host:9001`, `host`
    let (host, port) = if let Some(end) = authority.find(']') {
        let host = &authority[..=end];
        match authority[end + 1..].strip_prefix(':') {
            Some(p) => (host, Some(p)),
            None => (host, None),
        }
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    let port = match port {
        None => default_port,
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n > 0 => n,
            _ => return Err(UrlError::BadPort(p.to_string())),
        },
    };
    Ok((host, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_common_forms() {
        let t = Target::parse("ws://127.0.0.1:9001/echo?x=1").expect("valid");
        assert_eq!(t.addr, "127.0.0.1:9001".parse().expect("addr"));
        assert_eq!(t.host, "127.0.0.1:9001");
        assert_eq!(t.path, "/echo?x=1");
        let t = Target::parse("ws://127.0.0.1:9001").expect("valid");
        assert_eq!(t.path, "/");
        let t = Target::parse("ws://127.0.0.1:9001?a").expect("valid");
        assert_eq!(t.path, "/?a");
        let t = Target::parse("ws://[::1]:9/").expect("valid");
        assert_eq!(t.addr.port(), 9);
        assert_eq!(Target::parse("ws://127.0.0.1/").expect("valid").addr.port(), 80);
        assert_eq!(Target::parse("ws://127.0.0.1/").expect("valid").tls_name, None);
        let t = Target::parse("wss://localhost/x").expect("valid");
        assert_eq!((t.addr.port(), t.tls_name.as_deref()), (443, Some("localhost")));
        let t = Target::parse("wss://[::1]:8443").expect("valid");
        assert_eq!(
            (t.addr.port(), t.tls_name.as_deref(), t.host.as_str()),
            (8443, Some("::1"), "[::1]:8443")
        );
    }

    #[test]
    fn refuses_bad_urls() {
        assert!(matches!(Target::parse("http://127.0.0.1/"), Err(UrlError::Scheme(_))));
        assert_eq!(Target::parse("ws:///x"), Err(UrlError::MissingHost));
        assert!(matches!(Target::parse("ws://127.0.0.1:0/"), Err(UrlError::BadPort(_))));
        assert!(matches!(Target::parse("ws://127.0.0.1:70000/"), Err(UrlError::BadPort(_))));
    }
}
