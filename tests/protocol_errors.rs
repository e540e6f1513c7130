//! Malformed input closes the offending connection with the right code, never panics,
//! and never disturbs a second connection that keeps echoing meanwhile.

mod util;

use std::io::Write;
use std::time::Duration;

use util::*;

/// Sends `bad` on a fresh connection and returns the close code the server answers with,
/// checking a healthy neighbour echoes before and after.
fn close_code_for(bad: &[u8], config: wsloop::Config) -> Option<u16> {
    let server = echo_server(config);
    let addr = server.local_addr();
    let mut healthy = connect(addr);
    assert_echo(&mut healthy, "before");
    let mut s = raw_open(addr);
    s.write_all(bad).unwrap();
    let code = read_close_code(&mut s);
    // The server waits for our close answer, then closes TCP.
    let _ = s.write_all(&masked(true, 0x8, &code.unwrap_or(1000).to_be_bytes()));
    assert!(sees_eof(&mut s), "server must close TCP after the close exchange");
    assert_echo(&mut healthy, "after");
    code
}

#[test]
fn invalid_utf8_closes_1007() {
    let _w = Watchdog::new("utf8", Duration::from_secs(20));
    assert_eq!(close_code_for(&masked(true, 0x1, b"ok \xff\xfe"), config()), Some(1007));
    // Fails fast: the invalid fragment alone is enough, before the message ends.
    assert_eq!(
        close_code_for(
            &masked(false, 0x1, b"\xce\xba\xe1\xbd\xb9\xce\xbc\xce\xb5\xed\xa0\x80"),
            config()
        ),
        Some(1007)
    );
}

#[test]
fn unmasked_frame_closes_1002() {
    let _w = Watchdog::new("unmasked", Duration::from_secs(20));
    assert_eq!(close_code_for(&frame(true, 0x1, b"hi", None), config()), Some(1002));
}

#[test]
fn oversize_message_closes_1009() {
    let _w = Watchdog::new("oversize", Duration::from_secs(20));
    let config = config().max_message_size(1000);
    assert_eq!(close_code_for(&masked(true, 0x2, &[0u8; 1001]), config.clone()), Some(1009));
    // Fragments adding up past the limit too.
    let mut bytes = masked(false, 0x2, &[0u8; 600]);
    bytes.extend(masked(true, 0x0, &[0u8; 600]));
    assert_eq!(close_code_for(&bytes, config), Some(1009));
}

#[test]
fn framing_violations_close_1002() {
    let _w = Watchdog::new("framing", Duration::from_secs(60));
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("reserved bits", {
            let mut f = masked(true, 0x1, b"x");
            f[0] |= 0x40;
            f
        }),
        ("unknown opcode", masked(true, 0x3, b"x")),
        ("fragmented ping", masked(false, 0x9, b"x")),
        ("long ping", masked(true, 0x9, &[0u8; 126])),
        ("continuation first", masked(true, 0x0, b"x")),
        (
            "new message inside fragments",
            [masked(false, 0x1, b"a"), masked(true, 0x1, b"b")].concat(),
        ),
        ("close with 1-byte payload", masked(true, 0x8, &[3])),
        ("close code 1005", masked(true, 0x8, &1005u16.to_be_bytes())),
        ("close code 999", masked(true, 0x8, &999u16.to_be_bytes())),
    ];
    for (name, bytes) in cases {
        assert_eq!(close_code_for(&bytes, config()), Some(1002), "{name}");
    }
}

#[test]
fn close_reason_with_invalid_utf8_closes_1007() {
    let mut payload = 1000u16.to_be_bytes().to_vec();
    payload.extend_from_slice(b"\xff");
    assert_eq!(close_code_for(&masked(true, 0x8, &payload), config()), Some(1007));
}

#[test]
fn garbage_after_handshake_does_not_panic() {
    let _w = Watchdog::new("garbage", Duration::from_secs(30));
    let server = echo_server(config());
    let addr = server.local_addr();
    let mut healthy = connect(addr);
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    for _ in 0..50 {
        let mut s = raw_open(addr);
        let junk: Vec<u8> = (0..512)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed as u8
            })
            .collect();
        let _ = s.write_all(&junk);
    }
    assert_echo(&mut healthy, "still here");
}

#[test]
fn peer_that_never_answers_close_is_dropped_after_the_close_timeout() {
    let _w = Watchdog::new("close_timeout", Duration::from_secs(20));
    let server = echo_server(config().close_timeout(Duration::from_millis(300)));
    let mut s = raw_open(server.local_addr());
    s.write_all(&frame(true, 0x1, b"unmasked", None)).unwrap();
    assert_eq!(read_close_code(&mut s), Some(1002));
    let started = std::time::Instant::now();
    assert!(sees_eof(&mut s));
    assert!(started.elapsed() < Duration::from_secs(3));
}
