//! `wss://`: echo over TLS with a real rustls client, the close (WebSocket close, then
//! `close_notify`), a fatal alert, and bad input: a client stuck mid-handshake, garbage
//! instead of a ClientHello.

#[path = "util/trust.rs"]
mod trust;
mod util;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use rustls::pki_types::{CertificateDer, ServerName};
use trust::{Identity, identity, tls_stream, trusting, wss};
use util::*;
use wsloop::{Config, Dispatch, Server};

fn tls_server(identity: &Identity, config: Config) -> Server {
    echo_server(config.tls(identity.tls.clone()))
}

fn echo<S: Read + Write>(client: &mut tungstenite::WebSocket<S>, message: tungstenite::Message) {
    client.send(message.clone()).unwrap();
    assert_eq!(next_message(client), message);
}

#[test]
fn messages_of_every_size_echo_over_tls() {
    let _w = Watchdog::new("tls echo", Duration::from_secs(60));
    let id = identity();
    let server = tls_server(&id, config().max_message_size(4 << 20));
    let mut client = wss(server.local_addr(), &id.cert);
    for len in [0, 1, 125, 126, 16 << 10, (16 << 10) + 1, 100_000, 3 << 20] {
        let payload: Vec<u8> = (0..len).map(|i| (i * 7) as u8).collect();
        echo(&mut client, tungstenite::Message::binary(payload));
    }
    // Many small messages in flight at once: records cut anywhere by TCP.
    for i in 0..2000 {
        client.write(tungstenite::Message::text(format!("n{i}"))).unwrap();
    }
    client.flush().unwrap();
    for i in 0..2000 {
        assert_eq!(next_tls_text(&mut client), format!("n{i}"));
    }
}

fn next_tls_text<S: Read + Write>(client: &mut tungstenite::WebSocket<S>) -> String {
    loop {
        if let tungstenite::Message::Text(text) = client.read().expect("read") {
            return text.to_string();
        }
    }
}

#[test]
fn a_closed_connection_ends_with_close_notify() {
    let _w = Watchdog::new("tls close", Duration::from_secs(30));
    let id = identity();
    let server = tls_server(&id, config());
    let mut client = wss(server.local_addr(), &id.cert);
    echo(&mut client, tungstenite::Message::text("before"));
    client.close(None).unwrap();
    // The server's close frame, then the end of the TLS stream.
    loop {
        match client.read() {
            Ok(_) => continue,
            Err(tungstenite::Error::ConnectionClosed) => break,
            Err(e) => panic!("close handshake: {e}"),
        }
    }
    let mut stream = client.into_inner();
    let mut rest = Vec::new();
    // rustls reports a TCP end without close_notify as UnexpectedEof.
    stream.read_to_end(&mut rest).expect("a clean end: close_notify came first");
    assert!(rest.is_empty());
}

#[test]
fn a_broken_record_gets_an_alert_and_no_close_frame() {
    let _w = Watchdog::new("tls alert", Duration::from_secs(30));
    let id = identity();
    let server = tls_server(&id, config());
    let mut client = wss(server.local_addr(), &id.cert);
    echo(&mut client, tungstenite::Message::text("before"));
    // An application-data record whose tag cannot be right, under rustls's feet.
    let mut forged = vec![0x17, 0x03, 0x03, 0x00, 0x20];
    forged.extend_from_slice(&[0x5a; 32]);
    client.get_mut().sock.write_all(&forged).unwrap();
    match client.read() {
        Err(tungstenite::Error::Io(e)) => {
            let alert = e.to_string();
            assert!(alert.contains("alert") && alert.contains("BadRecordMac"), "{alert}");
        }
        other => panic!("expected the server's fatal alert, got {other:?}"),
    }
    let mut other = wss(server.local_addr(), &id.cert);
    echo(&mut other, tungstenite::Message::text("others are served"));
}

/// The first bytes of a real ClientHello, cut before its end.
fn half_a_client_hello(addr: SocketAddr, cert: &CertificateDer<'static>) -> TcpStream {
    let name = ServerName::try_from("localhost").unwrap();
    let mut conn = rustls::ClientConnection::new(trusting(cert), name).unwrap();
    let mut hello = Vec::new();
    conn.write_tls(&mut hello).unwrap();
    let mut tcp = TcpStream::connect(addr).unwrap();
    tcp.write_all(&hello[..hello.len() / 2]).unwrap();
    tcp
}

fn sees_eof_within(s: &mut TcpStream, limit: Duration) -> bool {
    s.set_read_timeout(Some(limit)).unwrap();
    let mut buf = [0; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}

#[test]
fn tls_connections_count_websocket_bytes_both_ways_not_records() {
    let _w = Watchdog::new("tls byte counts", Duration::from_secs(30));
    let id = identity();
    // Inline, the echo is encrypted from the reply window; with workers, from the queue.
    for dispatch in [Dispatch::Workers, Dispatch::Inline] {
        let server = tls_server(&id, config().reactors(1).dispatch(dispatch));
        let mut client = wss(server.local_addr(), &id.cert);
        echo(&mut client, tungstenite::Message::text("settle the handshake's counts"));
        let before = settled_bytes(&server, None);
        let payload = vec![7u8; 1000];
        echo(&mut client, tungstenite::Message::binary(payload));
        // In: 2 + 2 (126: 16-bit length) header bytes, the 4-byte mask, the payload. Out:
        // the same unmasked. A record's header, type and tag (22 bytes in TLS 1.3) are
        // not counted.
        let after = settled_bytes(&server, Some(before.1 + 1004));
        let counted = (after.0 - before.0, after.1 - before.1);
        assert_eq!(counted, (1008, 1004), "{dispatch:?}");
    }
}

/// `(bytes_in, bytes_out)` once `bytes_out` is `out` (the count follows the write the
/// client may already have read) or, with no `out` given, has stopped moving.
fn settled_bytes(server: &Server, out: Option<u64>) -> (u64, u64) {
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut last = None;
    loop {
        let stats = server.handle().stats();
        let now = (stats.bytes_in, stats.bytes_out);
        let settled = match out {
            Some(out) => now.1 >= out,
            None => last == Some(now),
        };
        if settled || Instant::now() > deadline {
            return now;
        }
        last = Some(now);
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_client_stuck_mid_handshake_counts_and_is_cut_at_the_timeout() {
    let _w = Watchdog::new("tls handshake timeout", Duration::from_secs(30));
    let id = identity();
    let timeout = Duration::from_secs(1);
    let server =
        tls_server(&id, config().reactors(1).max_connections(1).handshake_timeout(timeout));
    let addr = server.local_addr();
    let started = Instant::now();
    let mut stuck = half_a_client_hello(addr, &id.cert);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(server.handle().stats().sockets, 1, "a TLS handshake holds a connection");
    // max_connections is reached: a second client is turned away.
    let name = ServerName::try_from("localhost").unwrap();
    let conn = rustls::ClientConnection::new(trusting(&id.cert), name).unwrap();
    let mut second = rustls::StreamOwned::new(conn, TcpStream::connect(addr).unwrap());
    second.sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    assert!(second.conn.complete_io(&mut second.sock).is_err(), "over max_connections");
    assert!(sees_eof_within(&mut stuck, Duration::from_secs(5)), "cut at the timeout");
    let cut = started.elapsed();
    assert!(cut >= timeout, "not before the timeout: {cut:?}");
    let mut client = wss(addr, &id.cert);
    echo(&mut client, tungstenite::Message::text("the slot is free again"));
    println!("stuck TLS client cut after {cut:?} (timeout {timeout:?})");
}

#[test]
fn garbage_instead_of_a_client_hello_is_closed_and_harms_no_one() {
    let _w = Watchdog::new("tls garbage", Duration::from_secs(30));
    let id = identity();
    let server = tls_server(&id, config().reactors(1));
    let addr = server.local_addr();
    let mut bystander = wss(addr, &id.cert);
    let garbage: [&[u8]; 4] = [
        b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n",
        &[0x16, 0x03, 0x01, 0xff, 0xff, 0x01, 0, 0, 0],
        &[0x16, 0x03, 0x01, 0x00, 0x05, 0x01, 0x00, 0x00, 0x01, 0x00],
        &[0xff; 600],
    ];
    for bytes in garbage {
        let mut s = TcpStream::connect(addr).unwrap();
        let _ = s.write_all(bytes);
        assert!(sees_eof_within(&mut s, Duration::from_secs(5)), "closed: {:?}", &bytes[..5]);
        echo(&mut bystander, tungstenite::Message::text("still served"));
    }
    assert_eq!(server.handle().stats().sockets, 1);
    // Plain HTTP over TLS on the same port: the failures are counted.
    let metrics = https_get(addr, &id.cert, "/metrics");
    assert!(metrics.starts_with("HTTP/1.1 200"), "{metrics}");
    let line = metrics.lines().find(|l| l.starts_with("wsloop_tls_failures_total "));
    let failures: u64 = line.and_then(|l| l.split(' ').nth(1)?.parse().ok()).unwrap_or(0);
    assert!(failures >= 3, "wsloop_tls_failures_total {failures}");
}

/// A GET over TLS; the answer ends with the server's close_notify.
fn https_get(addr: SocketAddr, cert: &CertificateDer<'static>, path: &str) -> String {
    let mut stream = tls_stream(addr, cert);
    write!(stream, "GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();
    stream.flush().unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("an answer, then close_notify");
    answer
}

#[test]
fn random_bytes_and_an_endless_handshake_message_are_closed() {
    let _w = Watchdog::new("tls random input", Duration::from_secs(60));
    let id = identity();
    let server = tls_server(&id, config().reactors(1));
    let addr = server.local_addr();
    let mut bystander = wss(addr, &id.cert);
    // A ClientHello that claims 64 KiB, sent as full records: kept until it is whole,
    // never past one read's worth.
    let mut endless = TcpStream::connect(addr).unwrap();
    let mut record = vec![0x16, 0x03, 0x01, 0x40, 0x00, 0x01, 0x00, 0xff, 0xff];
    record.resize(5 + 0x4000, 0x41);
    for _ in 0..5 {
        if endless.write_all(&record).is_err() {
            break;
        }
        record.truncate(5);
        record.resize(5 + 0x4000, 0x41);
    }
    assert!(sees_eof_within(&mut endless, Duration::from_secs(5)), "an endless hello is closed");
    // Seeded noise, some of it behind a plausible record header.
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for round in 0..100usize {
        let len = (next() % 3000) as usize + 1;
        let mut bytes: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        if round.is_multiple_of(2) {
            bytes[..3].copy_from_slice(&[0x16, 0x03, 0x01]);
        }
        let mut s = TcpStream::connect(addr).unwrap();
        let _ = s.write_all(&bytes);
        let _ = s.shutdown(std::net::Shutdown::Write);
        assert!(sees_eof_within(&mut s, Duration::from_secs(5)), "round {round} closed");
    }
    echo(&mut bystander, tungstenite::Message::text("still served"));
    assert_eq!(server.handle().stats().sockets, 1);
}

/// A socket that counts the TLS records it reads, by their headers.
struct RecordCounter {
    inner: TcpStream,
    header: Vec<u8>,
    body_left: usize,
    records: Arc<AtomicUsize>,
}

impl Read for RecordCounter {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        let mut at = 0;
        while at < n {
            if self.body_left > 0 {
                let skip = self.body_left.min(n - at);
                (self.body_left, at) = (self.body_left - skip, at + skip);
                continue;
            }
            self.header.push(buf[at]);
            at += 1;
            if self.header.len() == 5 {
                self.body_left = usize::from(u16::from_be_bytes([self.header[3], self.header[4]]));
                self.header.clear();
                self.records.fetch_add(1, Ordering::SeqCst);
            }
        }
        Ok(n)
    }
}

impl Write for RecordCounter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.inner.write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

#[test]
fn a_turns_replies_leave_as_one_record() {
    let _w = Watchdog::new("tls one record", Duration::from_secs(30));
    let id = identity();
    let tls = id.tls.clone().tickets(0);
    let server = echo_server(config().reactors(1).dispatch(Dispatch::Inline).tls(tls));
    let records = Arc::new(AtomicUsize::new(0));
    let tcp = TcpStream::connect(server.local_addr()).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let counter =
        RecordCounter { inner: tcp, header: Vec::new(), body_left: 0, records: records.clone() };
    let name = ServerName::try_from("localhost").unwrap();
    let conn = rustls::ClientConnection::new(trusting(&id.cert), name).unwrap();
    let url = format!("wss://localhost:{}/", server.local_addr().port());
    let (mut client, _) =
        tungstenite::client(url.as_str(), rustls::StreamOwned::new(conn, counter)).unwrap();
    echo(&mut client, tungstenite::Message::text("warm"));
    let before = records.load(Ordering::SeqCst);
    // Fifty messages in one record, so one read: the inline handler answers them all in
    // one turn, and the turn's output is encrypted together.
    for i in 0..50 {
        client.write(tungstenite::Message::text(format!("m{i}"))).unwrap();
    }
    client.flush().unwrap();
    for i in 0..50 {
        assert_eq!(next_tls_text(&mut client), format!("m{i}"));
    }
    assert_eq!(records.load(Ordering::SeqCst) - before, 1, "fifty replies, one record");
}

fn disconnect_reason(events: &mut wsloop::Events) -> wsloop::DisconnectReason {
    loop {
        match events.recv_timeout(Duration::from_secs(10)).expect("an event") {
            wsloop::Event::Disconnect { reason, .. } => return reason,
            _ => continue,
        }
    }
}

#[test]
fn the_application_hears_how_a_tls_connection_ended() {
    let _w = Watchdog::new("tls disconnect reasons", Duration::from_secs(30));
    let id = identity();
    let (server, mut events) =
        Server::start_with_events(config().tls(id.tls.clone())).expect("server starts");
    let addr = server.local_addr();
    // close_notify without a WebSocket close: the TLS stream's end, taken as an EOF.
    let mut client = wss(addr, &id.cert);
    client.get_mut().conn.send_close_notify();
    client.flush().unwrap();
    let stream = client.get_mut();
    stream.conn.write_tls(&mut stream.sock).unwrap();
    assert_eq!(disconnect_reason(&mut events), wsloop::DisconnectReason::Abnormal);
    // A broken record: the connection fails with a TLS error.
    let mut client = wss(addr, &id.cert);
    client.get_mut().sock.write_all(&[0x17, 0x03, 0x03, 0x00, 0x11, 1, 2, 3]).unwrap();
    client.get_mut().sock.write_all(&[0; 14]).unwrap();
    let reason = disconnect_reason(&mut events);
    assert_eq!(reason, wsloop::DisconnectReason::Io(ErrorKind::InvalidData));
}
