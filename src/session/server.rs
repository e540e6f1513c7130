//! The server's side of the opening handshake (RFC 6455 §4.2): parse the request, decide
//! (rules, allowed hosts, origin, subprotocol, permessage-deflate, the upgrade hook, the
//! hook's topics), and answer 101 or an HTTP error.

use bytes::Bytes;

use super::{Env, Host, Opened, Session};
use crate::config::{Compression, Config};
use crate::event::UserData;
use crate::protocol::deflate::{self, Agreed, DeflatePolicy};
use crate::protocol::handshake::{self, Request};
use crate::protocol::message::Role;
use crate::upgrade::{Accept, Reject, RejectCause};

/// What the upgrade decided.
struct Accepted {
    response: Bytes,
    deflate: Option<Agreed>,
    protocol: Option<String>,
    user_data: Option<UserData>,
    topics: Vec<String>,
}

impl Session {
    /// A connection the server accepted, waiting for its request head until the
    /// handshake timeout.
    pub(crate) fn server(env: &Env) -> Session {
        Session::new(Role::Server, env)
    }

    /// Handles bytes of a connection still in its handshake; returns how many were used.
    pub(super) fn server_handshake(
        &mut self,
        env: &mut Env,
        host: &mut impl Host,
        data: &mut [u8],
    ) -> usize {
        let max = env.config.max_header_bytes;
        let (request, used) = match handshake::parse_request(data, max) {
            Ok(Some(parsed)) => parsed,
            Ok(None) => return 0,
            Err(e) => {
                self.refuse(env, host, Reject::by_server(e.status(), RejectCause::BadHandshake));
                return data.len();
            }
        };
        // Plain HTTP on the WebSocket port: a request without `Upgrade` the host routes.
        if let Some(answer) = host.http(&request) {
            self.queue_own(env, host, Bytes::from(answer));
            self.complete(env, host);
            return data.len();
        }
        let decided = decide(&env.config, &request).and_then(|accepted| {
            if accepted.topics.is_empty() || host.join_topics(&accepted.topics) {
                Ok(accepted)
            } else {
                Err(Reject::by_server(503, RejectCause::TopicLimit))
            }
        });
        match decided {
            Ok(accepted) => {
                self.accept(env, host, &request, accepted);
                used + self.frames(env, host, &mut data[used..])
            }
            Err(rejection) => {
                self.refuse(env, host, rejection);
                data.len()
            }
        }
    }

    /// Refuses the handshake: the error response, then close.
    fn refuse(&mut self, env: &mut Env, host: &mut impl Host, rejection: Reject) {
        host.refused(&rejection);
        self.queue_own(env, host, Bytes::from(rejection.response()));
        self.complete(env, host);
    }

    fn accept(
        &mut self,
        env: &mut Env,
        host: &mut impl Host,
        request: &Request,
        accepted: Accepted,
    ) {
        self.queue_own(env, host, accepted.response);
        self.become_open(env, host, accepted.deflate);
        host.connect(Opened {
            path: request.path().to_owned(),
            query: request.query().to_owned(),
            protocol: accepted.protocol,
            user_data: accepted.user_data,
        });
    }
}

/// The server's decision on a request: the 101 and what it agreed, or the refusal.
fn decide(config: &Config, request: &Request) -> Result<Accepted, Reject> {
    let bad = |status| Reject::by_server(status, RejectCause::BadHandshake);
    handshake::validate_upgrade(request).map_err(|e| bad(e.status()))?;
    if !host_allowed(&config.allowed_hosts, request) {
        return Err(Reject::by_server(403, RejectCause::Host));
    }
    if !config.origins.allows(request) {
        return Err(Reject::by_server(403, RejectCause::Origin));
    }
    let protocol = handshake::select_protocol(request, &config.subprotocols);
    let deflate = negotiate_deflate(config, request).map_err(bad)?;
    let accept = match &config.on_upgrade {
        Some(hook) => hook(request)?,
        None => Accept::new(),
    };
    let extensions = deflate.map(|agreed| agreed.response_header());
    let mut response = handshake::accept_response(request, protocol, extensions.as_deref());
    accept.add_headers_to(&mut response);
    Ok(Accepted {
        response: Bytes::from(response),
        deflate,
        protocol: protocol.map(str::to_owned),
        user_data: accept.user_data,
        topics: accept.topics,
    })
}

/// Whether the request's `Host` is one the server answers to: any when the list is empty;
/// otherwise an entry equal to the whole value, or to its host part when the entry names
/// no port. Checking the Host closes DNS rebinding, which the same-origin check cannot:
/// a rebound page's `Origin` and `Host` both name the attacker's domain.
pub(crate) fn host_allowed(allowed: &[String], request: &Request) -> bool {
    if allowed.is_empty() {
        return true;
    }
    let Some(value) = request.header("host").map(str::trim) else { return false };
    let without_port = strip_port(value);
    allowed.iter().any(|entry| {
        entry.eq_ignore_ascii_case(value)
            || (strip_port(entry) == entry && entry.eq_ignore_ascii_case(without_port))
    })
}

/// `host[:port]` without the port; IPv6 literals keep their brackets.
fn strip_port(authority: &str) -> &str {
    match authority.rfind(':') {
        Some(i) if !authority[i..].contains(']') => &authority[..i],
        _ => authority,
    }
}

/// The permessage-deflate parameters for this request, if the client offered any the
/// configured mode can honour; 400 for a malformed `Sec-WebSocket-Extensions`.
fn negotiate_deflate(config: &Config, request: &Request) -> Result<Option<Agreed>, u16> {
    let policy = match config.compression {
        Compression::Disabled => return Ok(None),
        Compression::Shared => DeflatePolicy::Shared,
        Compression::Dedicated { window_bits } => DeflatePolicy::Dedicated { window_bits },
    };
    // Straight from the headers, without collecting them: nothing is allocated per
    // handshake here.
    let mut not_utf8 = false;
    let offers = request
        .headers()
        .filter(|(name, _)| name.eq_ignore_ascii_case("sec-websocket-extensions"))
        .filter_map(|(_, value)| {
            let value = std::str::from_utf8(value).ok();
            not_utf8 |= value.is_none();
            value
        });
    let agreed = deflate::negotiate(offers, &policy).map_err(|_| 400u16)?;
    if not_utf8 { Err(400) } else { Ok(agreed) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(host: &str) -> Request {
        let text = format!("GET / HTTP/1.1\r\nHost: {host}\r\n\r\n");
        handshake::parse_request(text.as_bytes(), 8192).unwrap().unwrap().0
    }

    #[test]
    fn allowed_hosts_match_with_or_without_port() {
        let list = vec!["example.com".to_owned(), "127.0.0.1:9001".to_owned(), "[::1]".to_owned()];
        assert!(host_allowed(&[], &request("evil.example:80")));
        assert!(host_allowed(&list, &request("example.com")));
        assert!(host_allowed(&list, &request("EXAMPLE.com:9001")));
        assert!(host_allowed(&list, &request("127.0.0.1:9001")));
        assert!(!host_allowed(&list, &request("127.0.0.1:9002")));
        assert!(host_allowed(&list, &request("[::1]:9001")));
        assert!(!host_allowed(&list, &request("evil.example:9001")));
        assert!(!host_allowed(&list, &request("example.com.evil.example")));
    }
}
