//! The parts of a `ws://` / `wss://` URL a client needs (RFC 6455 §3).

use super::options::ConnectError;

/// Where a client connects, and what its request line and `Host` header say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Target {
    pub(crate) secure: bool,
    /// The host to resolve (brackets of an IPv6 literal removed).
    pub(crate) host: String,
    pub(crate) port: u16,
    /// The `Host` header: `host[:port]` as written, the port left out when default.
    pub(crate) authority: String,
    /// Path and query, `/` when the URL has none (§3: the fragment is not allowed).
    pub(crate) resource: String,
}

impl Target {
    pub(crate) fn parse(url: &str) -> Result<Target, ConnectError> {
        let (secure, rest) = if let Some(rest) = strip_prefix_ignore_case(url, "ws://") {
            (false, rest)
        } else if let Some(rest) = strip_prefix_ignore_case(url, "wss://") {
            (true, rest)
        } else {
            return Err(ConnectError::UnsupportedScheme);
        };
        if rest.contains('#') || rest.bytes().any(|b| b <= b' ' || b == 0x7f) {
            return Err(ConnectError::InvalidUrl);
        }
        let split = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, resource) = rest.split_at(split);
        let resource = match resource {
            "" => "/".to_owned(),
            r if r.starts_with('?') => format!("/{r}"),
            r => r.to_owned(),
        };
        let authority = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
        let (host, port) = split_port(authority)?;
        let port = port.unwrap_or(if secure { 443 } else { 80 });
        if host.is_empty() {
            return Err(ConnectError::InvalidUrl);
        }
        Ok(Target {
            secure,
            host: host.to_owned(),
            port,
            authority: authority.to_owned(),
            resource,
        })
    }
}

fn strip_prefix_ignore_case<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix).then(|| &s[prefix.len()..])
}

/// `host[:port]` or `[v6][:port]`.
fn split_port(authority: &str) -> Result<(&str, Option<u16>), ConnectError> {
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (host, after) = v6.split_once(']').ok_or(ConnectError::InvalidUrl)?;
        match after {
            "" => (host, None),
            p => (host, Some(p.strip_prefix(':').ok_or(ConnectError::InvalidUrl)?)),
        }
    } else {
        match authority.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    let port = match port {
        Some(p) => Some(p.parse::<u16>().ok().filter(|&p| p != 0).ok_or(ConnectError::InvalidUrl)?),
        None => None,
    };
    Ok((host, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(url: &str) -> Target {
        Target::parse(url).unwrap()
    }

    #[test]
    fn urls_split_into_host_port_and_resource() {
        let a = t("ws://example.com/feed?x=1");
        assert_eq!((a.secure, a.host.as_str(), a.port), (false, "example.com", 80));
        assert_eq!((a.authority.as_str(), a.resource.as_str()), ("example.com", "/feed?x=1"));
        let b = t("WSS://[::1]:9443");
        assert_eq!(
            (b.secure, b.host.as_str(), b.port, b.resource.as_str()),
            (true, "::1", 9443, "/")
        );
        assert_eq!(b.authority, "[::1]:9443");
        assert_eq!(t("ws://h:1?q").resource, "/?q");
        assert_eq!(t("wss://h").port, 443);
    }

    #[test]
    fn bad_urls_are_named() {
        assert_eq!(Target::parse("http://h/"), Err(ConnectError::UnsupportedScheme));
        for bad in [
            "ws://",
            "ws://h:0",
            "ws://h:70000",
            "ws://h:x",
            "ws://h/#frag",
            "ws://h/a b",
            "ws://[::1",
            "ws://h/\r\nX: y",
        ] {
            assert_eq!(Target::parse(bad), Err(ConnectError::InvalidUrl), "{bad}");
        }
    }
}
