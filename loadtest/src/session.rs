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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_and_subprotocols_are_kept_in_order() {
        let s = Session::new(
            &["Authorization: Bearer abc".into(), "X-Trace:1".into()],
            &["chat.v2".into(), "chat".into()],
            &[],
        )
        .expect("valid");
        assert_eq!(
            s.headers,
            [("Authorization".into(), "Bearer abc".into()), ("X-Trace".into(), "1".into())]
        );
        assert_eq!(s.subprotocols, ["chat.v2", "chat"]);
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
