//! `handshake_request`: the server side of the opening handshake, as the reactor runs it:
//! `parse_request` on a growing buffer, then `validate_upgrade`, the origin rule,
//! `select_protocol`, permessage-deflate negotiation and `accept_response`.
//!
//! `src/protocol/handshake.rs` has no parser for the server's response (the client
//! role), so only the server role is fuzzed here.
//!
//! Input: 2 settings bytes, then the request bytes.
//! - byte 0: picks `max_header_bytes` from [`MAX_HEADER_BYTES`];
//! - byte 1: where the head is cut for the incremental check, and the dedicated
//!   window bits for the negotiation.
//!
//! Checked:
//! - no panic;
//! - a prefix of the input parses as "need more" or exactly as the whole input does;
//! - a parsed head used at most `max_header_bytes` bytes, has at most 64 headers, and
//!   its copy costs at most its size plus [`SLACK`];
//! - a refusal has a 4xx status and a response HTTP parsers accept with that status;
//! - an accepted upgrade's 101 parses as HTTP, answers its key, and carries the chosen
//!   subprotocol and extensions exactly.

use wsloop::Request;
use wsloop::protocol::deflate::{self, DeflatePolicy};
use wsloop::protocol::handshake::{
    HandshakeError, accept_key, accept_response, origin_matches_host, parse_request,
    select_protocol, validate_upgrade,
};

use crate::alloc;
use crate::input::{pick, settings};

/// The head sizes a byte can pick: tiny ones hit the limit checks, 8192 is the default.
pub const MAX_HEADER_BYTES: [usize; 8] = [0, 1, 16, 100, 512, 1024, 8192, 65536];

/// Heap a parsed head may take beyond its length: its three allocations' worth of offsets
/// (64 headers of 8 bytes) and change.
pub const SLACK: isize = 1024;

/// Runs one fuzzer input.
pub fn run(data: &[u8]) {
    let Some((&[limit, cut], head)) = settings::<2>(data) else {
        return;
    };
    let max = pick(&MAX_HEADER_BYTES, limit);
    let base = alloc::live();
    let whole = parse_request(head, max);
    if let Ok(Some(_)) = &whole {
        let held = alloc::live() - base;
        let size = isize::try_from(head.len()).unwrap_or(isize::MAX);
        assert!(held <= size + SLACK, "a {size}-byte head holds {held} bytes");
    }

    let at = usize::from(cut) * head.len() / 255;
    match parse_request(&head[..at], max) {
        Ok(None) => {}
        prefix => assert_eq!(prefix, whole, "a {at}-byte prefix parsed differently"),
    }

    match whole {
        Ok(Some((request, used))) => {
            assert!(used <= head.len() && used <= max, "used {used} of {} (max {max})", head.len());
            check_request(&request);
            upgrade(&request, cut);
        }
        Ok(None) => assert!(head.len() < max, "incomplete at the limit"),
        Err(error) => check_refusal(error),
    }
}

/// Every accessor answers without panicking, and agrees with the others.
fn check_request(request: &Request) {
    assert!(request.headers().count() <= 64);
    assert!(!request.method().is_empty());
    assert!(!request.path().contains('?'));
    let _ = (request.query(), request.version(), request.is_upgrade());
    let _ = format!("{request:?}");
    for (name, _) in request.headers() {
        assert!(
            request.header(name).is_some()
                || request.headers().any(|(n, v)| {
                    n.eq_ignore_ascii_case(name) && std::str::from_utf8(v).is_err()
                })
        );
    }
    for protocol in request.protocols() {
        assert!(!protocol.is_empty() && protocol.trim_matches([' ', '\t']) == protocol);
    }
}

/// The reactor's upgrade path, then the 101 it would send.
fn upgrade(request: &Request, window_bits: u8) {
    let _ = origin_matches_host(request);
    if let Err(error) = validate_upgrade(request) {
        check_refusal(error);
        return;
    }
    // The server prefers the client's last offer: the choice must not just be the first.
    let mut supported: Vec<String> = request.protocols().map(str::to_owned).collect();
    supported.reverse();
    let protocol = select_protocol(request, &supported);
    assert_eq!(protocol.is_some(), !supported.is_empty());
    for policy in [DeflatePolicy::Shared, DeflatePolicy::Dedicated { window_bits }] {
        let extensions = negotiate(request, &policy);
        let response = accept_response(request, protocol, extensions.as_deref());
        check_accept(request, &response, protocol, extensions.as_deref());
    }
    check_accept(request, &accept_response(request, None, None), None, None);
}

/// Negotiation as the server does it: every `Sec-WebSocket-Extensions` value, which must
/// all be UTF-8 (else the server answers 400).
fn negotiate(request: &Request, policy: &DeflatePolicy) -> Option<String> {
    let values: Option<Vec<&str>> = request
        .headers()
        .filter(|(name, _)| name.eq_ignore_ascii_case("sec-websocket-extensions"))
        .map(|(_, value)| std::str::from_utf8(value).ok())
        .collect();
    let agreed = deflate::negotiate(values?.into_iter(), policy).ok()??;
    Some(agreed.response_header())
}

/// A refusal is a 4xx that parses as an HTTP response with that status.
fn check_refusal(error: HandshakeError) {
    let status = error.status();
    assert!(matches!(status, 400 | 403 | 426 | 431), "{error:?} answers {status}");
    let bytes = error.response();
    let mut headers = [httparse::EMPTY_HEADER; 8];
    let mut response = httparse::Response::new(&mut headers);
    let parsed = response.parse(&bytes);
    assert!(matches!(parsed, Ok(httparse::Status::Complete(n)) if n == bytes.len()));
    assert_eq!(response.code, Some(status));
}

/// The 101 parses, answers the request's key, and says exactly what was agreed.
fn check_accept(request: &Request, bytes: &[u8], protocol: Option<&str>, extensions: Option<&str>) {
    let mut headers = [httparse::EMPTY_HEADER; 8];
    let mut response = httparse::Response::new(&mut headers);
    let parsed = response.parse(bytes);
    assert!(
        matches!(parsed, Ok(httparse::Status::Complete(n)) if n == bytes.len()),
        "101 does not parse: {parsed:?} {:?}",
        String::from_utf8_lossy(bytes)
    );
    assert_eq!(response.code, Some(101));
    let header = |name: &str| {
        response.headers.iter().find(|h| h.name.eq_ignore_ascii_case(name)).map(|h| h.value)
    };
    let key = request.header("Sec-WebSocket-Key").map(|k| k.trim_matches([' ', '\t']));
    let expected = accept_key(key.unwrap_or_default().as_bytes());
    assert_eq!(header("Sec-WebSocket-Accept"), Some(expected.as_bytes()));
    assert_eq!(header("Sec-WebSocket-Protocol"), protocol.map(str::as_bytes));
    assert_eq!(header("Sec-WebSocket-Extensions"), extensions.map(str::as_bytes));
}
