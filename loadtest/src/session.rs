//! What a connection says besides the load: extra upgrade headers (`--header`), the
//! subprotocols it offers (`--subprotocol`), and the messages it sends right after the 101,
//! before any measured message (`--on-open`: a login, a room to join).

use std::fmt;

use crate::pattern::{Pattern, PatternError};

/// Headers the generator writes itself; `--header` may not set them.
const RESERVED: [&str; 6] = [
    "host",
    "upgrade",
    "connection",
    "sec-websocket-key",
    "sec-websocket-version",
    "sec-websocket-extensions",
];

/// A connection's session settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Session {
    /// Extra request headers, name and value.
    pub headers: Vec<(String, String)>,
    /// Subprotocols offered, in order of preference.
    pub subprotocols: Vec<String>,
    /// Text messages sent after the 101, in order, before the scenario's first message.
    pub on_open: Vec<Pattern>,
    /// Replies each connection waits for after its `--on-open` messages before the run
    /// may start (`--on-open-wait`).
    pub replies: u32,
}

/// A session option that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionError {
    /// `--header` is not `Name: value`, or breaks the request.
    BadHeader(String),
    /// `--header` sets a header the generator writes itself.
    ReservedHeader(String),
    /// `--subprotocol` is not an HTTP token.
    BadSubprotocol(String),
    /// `--on-open` is not a usable pattern.
    OnOpen(PatternError),
}

impl fmt::Display for SessionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SessionError::BadHeader(h) => write!(
                f,
                "--header `{h}`: expected `Name: value`, a token name and a value without line breaks"
            ),
            SessionError::ReservedHeader(h) => write!(
                f,
                "--header `{h}`: the generator writes this header itself (use --subprotocol for \
                 Sec-WebSocket-Protocol, --compression for extensions)"
            ),
            SessionError::BadSubprotocol(p) => {
                write!(f, "--subprotocol `{p}` is not a token (RFC 6455 §4.1)")
            }
            SessionError::OnOpen(e) => write!(f, "--on-open: {e}"),
        }
    }
}

impl std::error::Error for SessionError {}

/// RFC 7230 `tchar`.
fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

impl Session {
    /// Validates the command line's session options.
    ///
    /// # Errors
    /// [`SessionError`] for a malformed or reserved header, a subprotocol that is not a
    /// token, or an empty `--on-open`.
    pub fn new(
        headers: &[String],
        subprotocols: &[String],
        on_open: &[String],
    ) -> Result<Session, SessionError> {
        let mut s = Session::default();
        for h in headers {
            let (name, value) =
                h.split_once(':').ok_or_else(|| SessionError::BadHeader(h.clone()))?;
            let (name, value) = (name.trim(), value.trim());
            if !is_token(name) || value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
                return Err(SessionError::BadHeader(h.clone()));
            }
            let lower = name.to_ascii_lowercase();
            if RESERVED.contains(&lower.as_str()) || lower == "sec-websocket-protocol" {
                return Err(SessionError::ReservedHeader(h.clone()));
            }
            s.headers.push((name.to_string(), value.to_string()));
        }
        for p in subprotocols {
            if !is_token(p) {
                return Err(SessionError::BadSubprotocol(p.clone()));
            }
            s.subprotocols.push(p.clone());
        }
        for m in on_open {
            s.on_open.push(Pattern::parse(m.as_bytes()).map_err(SessionError::OnOpen)?);
        }
        Ok(s)
    }

    /// Appends the extra header lines (each ending in CRLF) to an upgrade request.
    pub fn write_headers(&self, req: &mut Vec<u8>) {
        for (name, value) in &self.headers {
            req.extend_from_slice(name.as_bytes());
            req.extend_from_slice(b": ");
            req.extend_from_slice(value.as_bytes());
            req.extend_from_slice(b"\r\n");
        }
        if !self.subprotocols.is_empty() {
            req.extend_from_slice(b"Sec-WebSocket-Protocol: ");
            req.extend_from_slice(self.subprotocols.join(", ").as_bytes());
            req.extend_from_slice(b"\r\n");
        }
    }

    /// Whether the server's choice of subprotocol (the response header's value, if any)
    /// is one we offered (RFC 6455 §4.1: the client fails the connection otherwise).
    pub fn accepts_subprotocol(&self, chosen: Option<&str>) -> bool {
        match chosen {
            None => true,
            Some(p) => self.subprotocols.iter().any(|o| o == p),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_and_subprotocols_are_written_and_checked() {
        let s = Session::new(
            &["Authorization: Bearer abc".into(), "X-Trace:1".into()],
            &["chat.v2".into(), "chat".into()],
            &[],
        )
        .expect("valid");
        let mut req = Vec::new();
        s.write_headers(&mut req);
        assert_eq!(
            String::from_utf8(req).expect("ascii"),
            "Authorization: Bearer abc\r\nX-Trace: 1\r\nSec-WebSocket-Protocol: chat.v2, chat\r\n"
        );
        assert!(s.accepts_subprotocol(Some("chat")));
        assert!(s.accepts_subprotocol(None));
        assert!(!s.accepts_subprotocol(Some("mqtt")));
    }

    #[test]
    fn refuses_headers_that_would_break_the_request() {
        let bad = |h: &str| Session::new(&[h.to_string()], &[], &[]);
        assert!(matches!(bad("no colon"), Err(SessionError::BadHeader(_))));
        assert!(matches!(bad("Bad Name: x"), Err(SessionError::BadHeader(_))));
        assert!(matches!(bad("X: a\r\nHost: evil"), Err(SessionError::BadHeader(_))));
        assert!(matches!(bad("host: x"), Err(SessionError::ReservedHeader(_))));
        assert!(matches!(bad("Sec-WebSocket-Protocol: x"), Err(SessionError::ReservedHeader(_))));
        assert!(matches!(
            Session::new(&[], &["a b".into()], &[]),
            Err(SessionError::BadSubprotocol(_))
        ));
        assert!(matches!(Session::new(&[], &[], &[String::new()]), Err(SessionError::OnOpen(_))));
    }
}
