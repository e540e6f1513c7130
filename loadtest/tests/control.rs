//! Pings and the close handshake as a server sees them: a raw server sends a ping and then
//! a close, and reads what the generator answers with wsloop's own decoder (server role).

mod util;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::mpsc;
use std::time::Duration;

use util::{Watchdog, run, serial};
use wsloop::protocol::frame::{FrameHeader, MAX_HEADER_LEN, OpCode};
use wsloop::protocol::message::{Decoder, DecoderLimits, Incoming, Role};

/// What the generator answered: the pong's payload, and the close payload's code (`None`
/// for an empty close).
type Answers = (Vec<u8>, Option<u16>);

/// Serves one connection: 101, a ping carrying `ping`, then a close frame with
/// `close_payload`; reports the generator's pong and close.
fn control_server(
    ping: &'static [u8],
    close_payload: &'static [u8],
) -> (SocketAddr, mpsc::Receiver<Answers>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let Ok((mut stream, _)) = listener.accept() else { return };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        let end = loop {
            let Ok(n) = stream.read(&mut chunk) else { return };
            if n == 0 {
                return;
            }
            buf.extend_from_slice(&chunk[..n]);
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
        };
        let head = String::from_utf8_lossy(&buf[..end]).to_string();
        let key = head
            .lines()
            .find_map(|l| l.strip_prefix("Sec-WebSocket-Key: "))
            .unwrap_or_default()
            .trim()
            .to_string();
        let accept = wsloop::protocol::handshake::accept_key(key.as_bytes());
        let reply = format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: {accept}\r\n\r\n"
        );
        let _ = stream.write_all(reply.as_bytes());
        let _ = stream.write_all(&frame(OpCode::Ping, ping));
        let mut decoder = Decoder::new(Role::Server, DecoderLimits::default());
        let mut pending = buf.split_off(end);
        let mut pong = None;
        loop {
            let (used, item) = match decoder.decode(&mut pending) {
                Ok(step) => step,
                Err(e) => panic!("the generator sent a bad frame: {e}"),
            };
            match item {
                Some(Incoming::Pong(p)) => {
                    pong = Some(p.to_vec());
                    pending.drain(..used);
                    let _ = stream.write_all(&frame(OpCode::Close, close_payload));
                }
                Some(Incoming::Close(c)) => {
                    let code = c.map(|f| f.code.0);
                    let _ = tx.send((pong.take().unwrap_or_default(), code));
                    return; // closing TCP ends the handshake
                }
                Some(_) | None if used > 0 => {
                    pending.drain(..used);
                }
                _ => {
                    let Ok(n) = stream.read(&mut chunk) else { return };
                    if n == 0 {
                        return;
                    }
                    pending.extend_from_slice(&chunk[..n]);
                }
            }
        }
    });
    (addr, rx)
}

/// An unmasked server frame.
fn frame(opcode: OpCode, payload: &[u8]) -> Vec<u8> {
    let header = FrameHeader {
        fin: true,
        rsv1: false,
        opcode,
        mask: None,
        payload_len: payload.len() as u64,
    };
    let mut head = [0u8; MAX_HEADER_LEN];
    let n = header.encode(&mut head);
    [&head[..n], payload].concat()
}

fn answers(ping: &'static [u8], close_payload: &'static [u8]) -> Answers {
    let (addr, rx) = control_server(ping, close_payload);
    let url = format!("ws://{addr}/");
    let r = run("control", &["hold", "--url", &url, "-c", "1", "-d", "2"], Duration::from_secs(30));
    assert_eq!(r.u("/counters/pings"), 1, "{}", r.stdout);
    assert_eq!(r.u("/counters/closed_by_server"), 1, "{}", r.stdout);
    rx.recv_timeout(Duration::from_secs(10)).expect("the server saw a pong and a close")
}

#[test]
fn a_ping_gets_its_pong_and_a_close_its_echo() {
    let _w = Watchdog::new("control_frames", Duration::from_secs(60));
    let _s = serial();
    // RFC 6455 §5.5.3: the pong carries the ping's payload; §5.5.1: the close answer
    // echoes the status code received.
    assert_eq!(
        answers(b"are you there", &[0x0f, 0xa1, b'b', b'y', b'e']),
        (b"are you there".to_vec(), Some(4001))
    );
    // A close without a payload is answered by a close without one (no 1005 on the wire).
    assert_eq!(answers(b"", b""), (Vec::new(), None));
}
