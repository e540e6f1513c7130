//! What the upgrade hook can say: a refusal with headers and a body, an acceptance with
//! extra response headers.

mod util;

use std::time::Duration;

use util::*;
use wsloop::{Accept, Reject};

#[test]
fn a_rejection_carries_headers_and_a_body() {
    let _w = Watchdog::new("reject_headers", Duration::from_secs(20));
    let server = echo_server(config().on_upgrade(|request| {
        match request.header("authorization") {
            Some("Bearer ok") => Ok(Accept::new().header("Set-Cookie", "session=1; HttpOnly")),
            _ => Err(Reject::with_status(401)
                .header("WWW-Authenticate", "Bearer realm=\"chat\"")
                .header("Bad\r\nHeader", "dropped")
                .body("a token is required")),
        }
    }));
    let addr = server.local_addr();
    let upgrade = "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\
                   Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";
    let refused = http(addr, "GET", "/", upgrade);
    assert_eq!(refused.status, 401, "{}", refused.head);
    assert_eq!(refused.header("www-authenticate"), Some("Bearer realm=\"chat\""));
    assert_eq!(refused.body, "a token is required");
    assert!(!refused.head.contains("dropped"));

    let mut s = raw(addr);
    use std::io::Write;
    s.write_all(
        format!("GET / HTTP/1.1\r\nHost: {addr}\r\n{upgrade}Authorization: Bearer ok\r\n\r\n")
            .as_bytes(),
    )
    .unwrap();
    let head = read_head(&mut s);
    assert_eq!(status_of(&head), 101, "{head}");
    assert!(head.contains("\r\nSet-Cookie: session=1; HttpOnly\r\n"), "{head}");
    assert!(head.ends_with("\r\n\r\n") && !head.ends_with("\r\n\r\n\r\n"));
}
