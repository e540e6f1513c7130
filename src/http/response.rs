//! An HTTP/1.1 answer on the WebSocket port: status, headers, body, then the socket closes.

use crate::upgrade::Headers;

/// A plain HTTP answer from a route (see [`Config::route`](crate::Config::route)).
///
/// It is sent with `Content-Length` and `Connection: close`; a `HEAD` request gets the
/// head alone.
///
/// ```
/// let ok = wsloop::Response::text(200, "pong").header("Cache-Control", "no-store");
/// assert_eq!(ok.status(), 200);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    status: u16,
    headers: Headers,
    body: Vec<u8>,
}

impl Response {
    /// An empty answer with `status` (100–599; anything else is sent as 500).
    pub fn new(status: u16) -> Response {
        let status = if (100..600).contains(&status) { status } else { 500 };
        Response { status, headers: Headers::default(), body: Vec::new() }
    }

    /// A `text/plain; charset=utf-8` answer.
    pub fn text(status: u16, body: impl Into<String>) -> Response {
        Response::new(status)
            .header("Content-Type", "text/plain; charset=utf-8")
            .body(body.into().into_bytes())
    }

    /// A `text/html; charset=utf-8` answer.
    pub fn html(status: u16, body: impl Into<String>) -> Response {
        Response::new(status)
            .header("Content-Type", "text/html; charset=utf-8")
            .body(body.into().into_bytes())
    }

    /// An `application/json` answer (the body is sent as given).
    pub fn json(status: u16, body: impl Into<String>) -> Response {
        Response::new(status)
            .header("Content-Type", "application/json")
            .body(body.into().into_bytes())
    }

    /// Adds a header. A name or value that would break the head (CR, LF, a colon in the
    /// name) is left out; `Content-Length` and `Connection` are always the server's.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Response {
        let name = name.into();
        let owned = ["content-length", "connection"];
        if !owned.iter().any(|o| name.eq_ignore_ascii_case(o)) {
            self.headers.push(name, value.into());
        }
        self
    }

    /// Sets the body.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Response {
        self.body = body.into();
        self
    }

    /// The status.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// The bytes on the wire; `head_only` for an answer to `HEAD`.
    pub(crate) fn encode(&self, head_only: bool) -> Vec<u8> {
        let mut out = Vec::with_capacity(128 + self.body.len());
        let head = format!("HTTP/1.1 {} {}\r\n", self.status, reason_phrase(self.status));
        out.extend_from_slice(head.as_bytes());
        self.headers.write_to(&mut out);
        if !self.body.is_empty() && !self.headers.contains("content-type") {
            out.extend_from_slice(b"Content-Type: text/plain; charset=utf-8\r\n");
        }
        let length = format!("Content-Length: {}\r\nConnection: close\r\n\r\n", self.body.len());
        out.extend_from_slice(length.as_bytes());
        if !head_only {
            out.extend_from_slice(&self.body);
        }
        out
    }
}

fn reason_phrase(status: u16) -> &'static str {
    match status {
        200 => "OK",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        413 => "Content Too Large",
        426 => "Upgrade Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_only_keeps_the_length_and_drops_the_body() {
        let r = Response::text(200, "ok").header("X-A", "1").header("Bad\r\nName", "x");
        let full = String::from_utf8(r.encode(false)).unwrap();
        assert_eq!(
            full,
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nX-A: 1\r\n\
             Content-Length: 2\r\nConnection: close\r\n\r\nok"
        );
        let head = String::from_utf8(r.encode(true)).unwrap();
        assert!(head.ends_with("Content-Length: 2\r\nConnection: close\r\n\r\n"), "{head}");
    }

    #[test]
    fn header_values_cannot_inject_lines() {
        let r =
            Response::new(200).header("X", "a\r\nSet-Cookie: evil").header("Connection", "keep");
        let text = String::from_utf8(r.encode(false)).unwrap();
        assert!(!text.contains("evil") && !text.contains("keep"), "{text}");
    }
}
