//! Every handshake accept/reject rule, over real sockets.

mod util;

use std::io::Write;
use std::time::Duration;

use util::*;
use wsloop::{Accept, Event, Origins, Reject, Server};

fn head(addr: std::net::SocketAddr, lines: &[&str]) -> Vec<u8> {
    let mut s = format!("GET /chat?room=1 HTTP/1.1\r\nHost: {addr}\r\n");
    for line in lines {
        s.push_str(line);
        s.push_str("\r\n");
    }
    s.push_str("\r\n");
    s.into_bytes()
}

const UPGRADE: &str = "Upgrade: websocket";
const CONNECTION: &str = "Connection: Upgrade";
const KEY_LINE: &str = "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==";
const VERSION: &str = "Sec-WebSocket-Version: 13";

#[test]
fn valid_request_gets_101_with_the_accept_key() {
    let _w = Watchdog::new("valid_101", Duration::from_secs(20));
    let server = echo_server(config());
    let answer = http_exchange(
        server.local_addr(),
        &head(server.local_addr(), &[UPGRADE, CONNECTION, KEY_LINE, VERSION]),
    );
    assert_eq!(status_of(&answer), 101, "{answer}");
    assert!(answer.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo="), "{answer}");
}

#[test]
fn token_lists_and_case_are_accepted() {
    let server = echo_server(config());
    let addr = server.local_addr();
    let lines = ["upgrade: WebSocket", "connection: keep-alive, Upgrade", KEY_LINE, VERSION];
    assert_eq!(status_of(&http_exchange(addr, &head(addr, &lines))), 101);
}

#[test]
fn each_broken_rule_gets_its_status() {
    let _w = Watchdog::new("broken_rules", Duration::from_secs(30));
    let server = echo_server(config());
    let addr = server.local_addr();
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        ("no upgrade", head(addr, &[CONNECTION, KEY_LINE, VERSION]), 400),
        ("no connection token", head(addr, &[UPGRADE, "Connection: keep-alive", KEY_LINE, VERSION]), 400),
        ("no key", head(addr, &[UPGRADE, CONNECTION, VERSION]), 400),
        ("short key", head(addr, &[UPGRADE, CONNECTION, "Sec-WebSocket-Key: c2hvcnQ=", VERSION]), 400),
        ("version 8", head(addr, &[UPGRADE, CONNECTION, KEY_LINE, "Sec-WebSocket-Version: 8"]), 426),
        (
            "POST",
            format!("POST / HTTP/1.1\r\nHost: {addr}\r\n{UPGRADE}\r\n{CONNECTION}\r\n{KEY_LINE}\r\n{VERSION}\r\n\r\n").into_bytes(),
            400,
        ),
        (
            "HTTP/1.0",
            format!("GET / HTTP/1.0\r\nHost: {addr}\r\n{UPGRADE}\r\n{CONNECTION}\r\n{KEY_LINE}\r\n{VERSION}\r\n\r\n").into_bytes(),
            400,
        ),
        (
            "no host",
            format!("GET / HTTP/1.1\r\n{UPGRADE}\r\n{CONNECTION}\r\n{KEY_LINE}\r\n{VERSION}\r\n\r\n").into_bytes(),
            400,
        ),
        ("garbage", b"\x16\x03\x01 not http at all\r\n\r\n".to_vec(), 400),
        ("cross origin", head(addr, &[UPGRADE, CONNECTION, KEY_LINE, VERSION, "Origin: https://evil.example"]), 403),
    ];
    for (name, request, status) in cases {
        let answer = http_exchange(addr, &request);
        assert_eq!(status_of(&answer), status, "{name}: {answer}");
        if status == 426 {
            assert!(answer.contains("Sec-WebSocket-Version: 13"), "{answer}");
        }
    }
}

#[test]
fn oversized_headers_get_431() {
    let server = echo_server(config());
    let addr = server.local_addr();
    let big = format!("X-Big: {}", "a".repeat(9000));
    let answer = http_exchange(addr, &head(addr, &[UPGRADE, CONNECTION, KEY_LINE, VERSION, &big]));
    assert_eq!(status_of(&answer), 431, "{answer}");
    // A head that never ends is cut off at the limit too.
    let mut s = raw(addr);
    let _ = s.write_all(format!("GET / HTTP/1.1\r\nX: {}", "b".repeat(10_000)).as_bytes());
    assert_eq!(status_of(&read_head(&mut s)), 431);
}

#[test]
fn same_host_origin_and_allow_list_are_accepted() {
    let server = echo_server(config().origins(Origins::List(vec!["https://app.example".into()])));
    let addr = server.local_addr();
    let same = format!("Origin: http://{addr}");
    for origin in [same.as_str(), "Origin: https://APP.example"] {
        let answer =
            http_exchange(addr, &head(addr, &[UPGRADE, CONNECTION, KEY_LINE, VERSION, origin]));
        assert_eq!(status_of(&answer), 101, "{origin}: {answer}");
    }
    let answer = http_exchange(
        addr,
        &head(addr, &[UPGRADE, CONNECTION, KEY_LINE, VERSION, "Origin: https://other.example"]),
    );
    assert_eq!(status_of(&answer), 403);
}

#[test]
fn origin_callback_decides_cross_origin_requests() {
    let config =
        config().origins(Origins::Check(std::sync::Arc::new(|o: &str| o.ends_with(".trusted"))));
    let server = echo_server(config);
    let addr = server.local_addr();
    let ok = http_exchange(
        addr,
        &head(addr, &[UPGRADE, CONNECTION, KEY_LINE, VERSION, "Origin: https://a.trusted"]),
    );
    let no = http_exchange(
        addr,
        &head(addr, &[UPGRADE, CONNECTION, KEY_LINE, VERSION, "Origin: https://a.untrusted"]),
    );
    assert_eq!((status_of(&ok), status_of(&no)), (101, 403));
}

#[test]
fn subprotocol_is_the_servers_first_preference_the_client_offers() {
    let server = echo_server(config().subprotocols(["v2.chat", "v1.chat"]));
    let addr = server.local_addr();
    let answer = http_exchange(
        addr,
        &head(
            addr,
            &[UPGRADE, CONNECTION, KEY_LINE, VERSION, "Sec-WebSocket-Protocol: v1.chat, v2.chat"],
        ),
    );
    assert!(answer.contains("Sec-WebSocket-Protocol: v2.chat"), "{answer}");
    let answer = http_exchange(
        addr,
        &head(addr, &[UPGRADE, CONNECTION, KEY_LINE, VERSION, "Sec-WebSocket-Protocol: other"]),
    );
    assert_eq!(status_of(&answer), 101);
    assert!(!answer.contains("Sec-WebSocket-Protocol"), "{answer}");
}

#[test]
fn upgrade_hook_rejects_with_status_and_attaches_user_data() {
    let _w = Watchdog::new("upgrade_hook", Duration::from_secs(20));
    let config = config().on_upgrade(|req| match req.query().strip_prefix("token=") {
        Some(user) if !user.is_empty() => {
            Ok(Accept::new().with_user_data(Box::new(user.to_owned())))
        }
        _ => Err(Reject::with_status(401)),
    });
    let (server, mut events) = Server::start_with_events(config).unwrap();
    let addr = server.local_addr();
    let refused = http_exchange(addr, &head(addr, &[UPGRADE, CONNECTION, KEY_LINE, VERSION]));
    assert_eq!(status_of(&refused), 401);
    let _client = connect_path(addr, "/room?token=alice");
    let Some(Event::Connect(info)) = events.recv_timeout(Duration::from_secs(5)) else {
        panic!("no connect event");
    };
    assert_eq!((info.path.as_str(), info.query.as_str()), ("/room", "token=alice"));
    let user = info.user_data.expect("user data").downcast::<String>().unwrap();
    assert_eq!(*user, "alice");
}

#[test]
fn handshake_delivered_one_byte_at_a_time_works() {
    let _w = Watchdog::new("one_byte", Duration::from_secs(30));
    let server = echo_server(config());
    let addr = server.local_addr();
    let mut s = raw(addr);
    s.set_nodelay(true).unwrap();
    for byte in request(addr, "").as_bytes() {
        s.write_all(&[*byte]).unwrap();
        std::thread::sleep(Duration::from_micros(200));
    }
    assert_eq!(status_of(&read_head(&mut s)), 101);
    s.write_all(&masked(true, 0x1, b"after")).unwrap();
    assert_eq!(read_frame(&mut s), Some((true, 0x1, b"after".to_vec())));
}

#[test]
fn frames_pipelined_behind_the_handshake_are_read() {
    let server = echo_server(config());
    let addr = server.local_addr();
    let mut s = raw(addr);
    let mut bytes = request(addr, "").into_bytes();
    bytes.extend(masked(true, 0x1, b"early"));
    s.write_all(&bytes).unwrap();
    assert_eq!(status_of(&read_head(&mut s)), 101);
    assert_eq!(read_frame(&mut s), Some((true, 0x1, b"early".to_vec())));
}

#[test]
fn silent_client_is_closed_after_the_handshake_timeout() {
    let _w = Watchdog::new("handshake_timeout", Duration::from_secs(20));
    let server = echo_server(config().handshake_timeout(Duration::from_millis(300)));
    let mut s = raw(server.local_addr());
    s.write_all(b"GET / HT").unwrap();
    let started = std::time::Instant::now();
    assert!(sees_eof(&mut s));
    assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
}
