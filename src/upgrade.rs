//! The upgrade hook's answer: accept (with per-connection data, topics and extra 101
//! headers) or reject (with a status, headers and a body).

use std::sync::Arc;

use crate::event::UserData;
use crate::protocol::handshake::Request;

/// A function that sees every upgrade request (path, query, headers) before the 101.
pub type UpgradeHook = Arc<dyn Fn(&Request) -> Result<Accept, Reject> + Send + Sync>;

/// A function that decides whether a cross-origin `Origin` value may connect.
pub type OriginCheck = Arc<dyn Fn(&str) -> bool + Send + Sync>;

/// The hook accepts the upgrade.
#[derive(Default)]
pub struct Accept {
    pub(crate) user_data: Option<UserData>,
    pub(crate) topics: Vec<String>,
    pub(crate) headers: Headers,
}

impl Accept {
    /// Accept with nothing attached.
    pub fn new() -> Accept {
        Accept::default()
    }

    /// Attach data the handler receives in `ConnectInfo::user_data` (e.g. the user an
    /// auth token named).
    pub fn with_user_data(mut self, data: UserData) -> Accept {
        self.user_data = Some(data);
        self
    }

    /// Join `topic` before the 101 goes out, so the client cannot miss a message
    /// published after its handshake completes (a subscription made in
    /// `Handler::on_connect` takes effect only when a worker runs it). If a topic limit
    /// refuses the subscription, the upgrade is refused with 503.
    pub fn subscribe(mut self, topic: impl Into<String>) -> Accept {
        self.topics.push(topic.into());
        self
    }

    /// Adds a header to the 101 answer (e.g. `Set-Cookie`). A name or value that would
    /// break the head (CR, LF, a colon in the name) is left out.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Accept {
        self.headers.push(name.into(), value.into());
        self
    }

    /// Appends the extra headers to an encoded 101 answer (before its final blank line).
    pub(crate) fn add_headers_to(&self, response: &mut Vec<u8>) {
        if self.headers.is_empty() || !response.ends_with(b"\r\n\r\n") {
            return;
        }
        response.truncate(response.len() - 2);
        self.headers.write_to(response);
        response.extend_from_slice(b"\r\n");
    }
}

/// Why an upgrade was refused, for the `wsloop_connections_rejected_total` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RejectCause {
    /// The request broke RFC 6455's handshake rules.
    BadHandshake = 0,
    /// A cross-origin request the `Origins` policy refuses.
    Origin = 1,
    /// The application's upgrade hook said no.
    Hook = 2,
    /// A topic limit refused a subscription the hook asked for.
    TopicLimit = 3,
    /// A `Host` not in `Config::allowed_hosts`.
    Host = 4,
}

impl RejectCause {
    /// The label value, by the number the counters store.
    pub(crate) fn label(code: u16) -> &'static str {
        match code {
            0 => "bad_handshake",
            1 => "origin",
            2 => "upgrade_hook",
            3 => "topic_limit",
            4 => "host",
            _ => "other",
        }
    }
}

/// The hook refuses the upgrade: the client gets this HTTP status, headers and body, then
/// the socket closes.
///
/// ```
/// let reject = wsloop::Reject::with_status(401)
///     .header("WWW-Authenticate", "Bearer realm=\"chat\"")
///     .body("a token is required");
/// assert_eq!(reject.status(), 401);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reject {
    pub(crate) status: u16,
    pub(crate) headers: Headers,
    pub(crate) body: Vec<u8>,
    pub(crate) cause: RejectCause,
}

impl Reject {
    /// Refuse with `status` (400–599; anything else is sent as 403).
    pub fn with_status(status: u16) -> Reject {
        let status = if (400..600).contains(&status) { status } else { 403 };
        Reject { status, headers: Headers::default(), body: Vec::new(), cause: RejectCause::Hook }
    }

    /// Adds a header (e.g. `WWW-Authenticate` on a 401). A name or value that would
    /// break the head (CR, LF, a colon in the name) is left out.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Reject {
        self.headers.push(name.into(), value.into());
        self
    }

    /// The body sent with the status (as `text/plain` unless a `Content-Type` header
    /// says otherwise).
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Reject {
        self.body = body.into();
        self
    }

    /// The status that will be sent.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// A refusal the server itself makes, with its cause.
    pub(crate) fn by_server(status: u16, cause: RejectCause) -> Reject {
        let reject = Reject { cause, ..Reject::with_status(status) };
        // RFC 6455 §4.4: a version we do not speak is answered with the one we do.
        if status == 426 { reject.header("Sec-WebSocket-Version", "13") } else { reject }
    }

    /// The HTTP answer, ending with `Connection: close`.
    pub(crate) fn response(&self) -> Vec<u8> {
        let mut response = crate::http::Response::new(self.status);
        for (name, value) in self.headers.iter() {
            response = response.header(name, value);
        }
        if !self.body.is_empty() {
            response = response.body(self.body.clone());
        }
        response.encode(false)
    }
}

/// Extra header lines, checked when added so they cannot split the head.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Headers(Vec<(String, String)>);

impl Headers {
    pub(crate) fn push(&mut self, name: String, value: String) {
        let name_ok = !name.is_empty() && name.bytes().all(|b| b.is_ascii_graphic() && b != b':');
        let value_ok = value.bytes().all(|b| b != b'\r' && b != b'\n');
        if name_ok && value_ok {
            self.0.push((name, value));
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    pub(crate) fn contains(&self, name: &str) -> bool {
        self.0.iter().any(|(n, _)| n.eq_ignore_ascii_case(name))
    }

    pub(crate) fn write_to(&self, out: &mut Vec<u8>) {
        for (name, value) in &self.0 {
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
    }
}

/// Which browser origins may open connections (protects against cross-site WebSocket
/// hijacking). Requests with no `Origin` header (non-browser clients) are always allowed.
#[derive(Clone, Default)]
pub enum Origins {
    /// Only origins whose host\[:port\] equals the request's `Host` (the default).
    #[default]
    SameHost,
    /// Same host, or one of these origins exactly (e.g. `https://app.example.com`),
    /// compared case-insensitively.
    List(Vec<String>),
    /// Same host, or an origin the function accepts.
    Check(OriginCheck),
    /// Every origin. Opt-in: browsers on any site can then connect with the user's cookies.
    Any,
}

impl std::fmt::Debug for Origins {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origins::SameHost => f.write_str("SameHost"),
            Origins::List(l) => f.debug_tuple("List").field(l).finish(),
            Origins::Check(_) => f.write_str("Check(..)"),
            Origins::Any => f.write_str("Any"),
        }
    }
}

impl Origins {
    pub(crate) fn allows(&self, req: &Request) -> bool {
        use crate::protocol::handshake::origin_matches_host;
        if matches!(self, Origins::Any) || origin_matches_host(req) {
            return true;
        }
        let Some(origin) = req.header("origin") else {
            return false;
        };
        match self {
            Origins::List(list) => list.iter().any(|o| o.eq_ignore_ascii_case(origin)),
            Origins::Check(check) => check(origin),
            Origins::SameHost | Origins::Any => false,
        }
    }
}
