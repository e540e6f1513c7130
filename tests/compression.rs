//! permessage-deflate over real sockets: negotiation answers, a deflate bomb, memory per
//! connection in the shared and dedicated modes, and bytes on the wire.

mod util;

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use util::*;
use wsloop::protocol::deflate::{Deflater, Inflater};

const OFFER: &str = "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n";

/// A raw connection that offered permessage-deflate; returns the socket and the answer.
fn open_offering(addr: SocketAddr, path: &str) -> (TcpStream, String) {
    let mut s = raw(addr);
    let head = request(addr, OFFER).replace("GET / ", &format!("GET {path} "));
    s.write_all(head.as_bytes()).unwrap();
    let answer = read_head(&mut s);
    assert_eq!(status_of(&answer), 101, "{answer}");
    (s, answer)
}

/// A masked client frame with RSV1 set and a compressed body.
fn compressed(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    Deflater::new(15, 6, true).compress(payload, &mut body);
    let mut f = masked(true, opcode, &body);
    f[0] |= 0x40;
    f
}

fn json_1k() -> String {
    let mut s = String::from("[");
    let mut i = 0;
    while s.len() < 1024 {
        s.push_str(&format!(
            r#"{{"id":{i},"user":"user{i}","online":true,"score":{}}},"#,
            i * 37 % 1000
        ));
        i += 1;
    }
    s.pop();
    s.push(']');
    s
}

#[test]
fn shared_mode_answers_no_context_takeover_and_echoes_compressed() {
    let _w = Watchdog::new("shared_answer", Duration::from_secs(20));
    let server = echo_server(config());
    let (mut s, answer) = open_offering(server.local_addr(), "/");
    assert!(
        answer.contains("Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; client_no_context_takeover"),
        "{answer}"
    );
    let text = json_1k();
    s.write_all(&compressed(0x1, text.as_bytes())).unwrap();
    let raw = s.try_clone().unwrap();
    drop(raw);
    let mut h = [0u8; 2];
    std::io::Read::read_exact(&mut s, &mut h).unwrap();
    assert_eq!(h[0], 0x80 | 0x40 | 0x1, "FIN, RSV1, text");
    let len = match h[1] {
        126 => {
            let mut b = [0u8; 2];
            std::io::Read::read_exact(&mut s, &mut b).unwrap();
            usize::from(u16::from_be_bytes(b))
        }
        n => usize::from(n),
    };
    let mut body = vec![0u8; len];
    std::io::Read::read_exact(&mut s, &mut body).unwrap();
    let mut out = Vec::new();
    Inflater::new(15, true).decompress(&body, 1 << 20, &mut out).unwrap();
    assert_eq!(out, text.as_bytes());
    println!(
        "wire: a {}-byte JSON message is {} bytes on the wire compressed (shared, level 1) vs {} uncompressed",
        text.len(),
        2 + 2 + len,
        2 + 2 + text.len()
    );
    // Under the threshold: sent plain.
    s.write_all(&compressed(0x1, b"tiny")).unwrap();
    assert_eq!(read_frame(&mut s), Some((true, 0x1, b"tiny".to_vec())));
}

#[test]
fn disabled_compression_declines_and_rsv1_is_a_protocol_error() {
    let server = echo_server(config().compression(wsloop::Compression::Disabled));
    let (mut s, answer) = open_offering(server.local_addr(), "/");
    assert!(!answer.contains("Sec-WebSocket-Extensions"), "{answer}");
    s.write_all(&compressed(0x1, b"hello")).unwrap();
    assert_eq!(read_close_code(&mut s), Some(1002));
}

#[test]
fn malformed_extension_header_gets_400() {
    let server = echo_server(config());
    let addr = server.local_addr();
    let head = request(addr, "Sec-WebSocket-Extensions: permessage-deflate; =\r\n");
    assert_eq!(status_of(&http_exchange(addr, head.as_bytes())), 400);
}

#[test]
fn a_deflate_bomb_closes_1009_without_inflating_it() {
    let _w = Watchdog::new("bomb", Duration::from_secs(30));
    let server = echo_server(config().max_message_size(64 << 10));
    let addr = server.local_addr();
    let mut healthy = connect(addr);
    let (mut s, _) = open_offering(addr, "/");
    // 10 MB of zeros compresses to about 10 KB: under the frame limit, far over the
    // message limit once inflated.
    let bomb = compressed(0x2, &vec![0u8; 10_000_000]);
    assert!(bomb.len() < 64 << 10, "{} bytes compressed", bomb.len());
    s.write_all(&bomb).unwrap();
    assert_eq!(read_close_code(&mut s), Some(1009));
    assert_echo(&mut healthy, "unharmed");
    // Garbage that does not inflate: 1007.
    let (mut s, _) = open_offering(addr, "/");
    let mut junk = masked(true, 0x1, &[0xff, 0xfe, 0xfd, 0xfc, 0x00, 0x01]);
    junk[0] |= 0x40;
    s.write_all(&junk).unwrap();
    assert_eq!(read_close_code(&mut s), Some(1007));
}

/// Inflated messages are lent from the reactor's inflate buffer (to an inline handler in
/// place, to a worker as one copy): in both dispatch modes a compressed text must still
/// be checked as UTF-8 once inflated, and good ones, large and small, echo whole.
#[test]
fn inflated_messages_echo_and_bad_utf8_closes_1007_in_both_dispatch_modes() {
    let _w = Watchdog::new("inflated_lent", Duration::from_secs(30));
    for dispatch in [wsloop::Dispatch::Inline, wsloop::Dispatch::Workers] {
        let server = echo_server(config().dispatch(dispatch));
        let (mut s, _) = open_offering(server.local_addr(), "/");
        for text in ["tiny", "κόσμε €", &"a".repeat(900)] {
            s.write_all(&compressed(0x1, text.as_bytes())).unwrap();
            assert_eq!(
                read_frame(&mut s),
                Some((true, 0x1, text.as_bytes().to_vec())),
                "{dispatch:?}"
            );
        }
        s.write_all(&compressed(0x2, &[0xff; 300])).unwrap();
        assert_eq!(read_frame(&mut s), Some((true, 0x2, vec![0xff; 300])), "{dispatch:?}");
        // Valid deflate, not valid UTF-8 once inflated.
        s.write_all(&compressed(0x1, b"ok \xff")).unwrap();
        assert_eq!(read_close_code(&mut s), Some(1007), "{dispatch:?}");
    }
}
