//! Mutated TLS input against a live server: real ClientHellos and real encrypted records
//! with bytes changed, cut or repeated. The server must close each connection and keep
//! serving (a panic in a reactor would refuse the next connection).

#[path = "util/trust.rs"]
mod trust;
mod util;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::ServerName;
use trust::trusting;
use util::*;
use wsloop::{Server, TlsConfig};

/// A TLS echo server and a client config trusting it.
fn setup() -> (Server, Arc<rustls::ClientConfig>) {
    let made = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let (chain, key) = (made.cert.pem(), made.signing_key.serialize_pem());
    let tls = TlsConfig::from_pem(chain.as_bytes(), key.as_bytes()).unwrap();
    let server = echo_server(config().reactors(1).tls(tls));
    (server, trusting(made.cert.der()))
}

/// Xorshift: the same mutations every run.
fn noise(mut seed: u64) -> impl FnMut() -> u64 {
    move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    }
}

/// Changes 1 to `most` bytes of `bytes`; every third round also cuts it short, and
/// every fifth sends it twice.
fn mutate(bytes: &mut Vec<u8>, next: &mut impl FnMut() -> u64, round: usize, most: u64) {
    for _ in 0..next() % most + 1 {
        let at = next() as usize % bytes.len();
        bytes[at] = next() as u8;
    }
    if round.is_multiple_of(3) {
        bytes.truncate(next() as usize % bytes.len());
    }
    if round.is_multiple_of(5) {
        bytes.extend_from_slice(&bytes.clone());
    }
}

/// Sends `bytes`, ends the write side, and waits for the server to close.
fn send_and_wait_for_close(mut s: TcpStream, bytes: &[u8]) {
    let _ = s.write_all(bytes);
    let _ = s.shutdown(std::net::Shutdown::Write);
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = [0; 8192];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return,
            Err(e) => panic!("not closed: {e}"),
        }
    }
}

fn client(config: &Arc<rustls::ClientConfig>) -> rustls::ClientConnection {
    let name = ServerName::try_from("localhost").unwrap();
    rustls::ClientConnection::new(config.clone(), name).unwrap()
}

#[test]
fn mutated_client_hellos_are_closed() {
    let _w = Watchdog::new("mutated hellos", Duration::from_secs(60));
    let (server, config) = setup();
    let mut next = noise(88_172_645_463_325_252);
    for round in 0..1000 {
        let mut hello = Vec::new();
        client(&config).write_tls(&mut hello).unwrap();
        mutate(&mut hello, &mut next, round, 8);
        let s = TcpStream::connect(server.local_addr()).expect("the server still accepts");
        send_and_wait_for_close(s, &hello);
    }
}

#[test]
fn mutated_records_after_the_handshake_are_closed() {
    let _w = Watchdog::new("mutated records", Duration::from_secs(60));
    let (server, config) = setup();
    let addr = server.local_addr();
    let mut next = noise(1_234_567);
    for round in 0..200 {
        let mut conn = client(&config);
        let mut s = TcpStream::connect(addr).expect("the server still accepts");
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        while conn.is_handshaking() {
            conn.complete_io(&mut s).unwrap();
        }
        // An upgrade and a masked text frame, encrypted, then damaged.
        let mut plain = request(addr, "").into_bytes();
        plain.extend_from_slice(&[0x81, 0x85, 1, 2, 3, 4, 0x69, 0x67, 0x6f, 0x68, 0x6e]);
        conn.writer().write_all(&plain).unwrap();
        let mut wire = Vec::new();
        while conn.wants_write() {
            conn.write_tls(&mut wire).unwrap();
        }
        mutate(&mut wire, &mut next, round, 4);
        send_and_wait_for_close(s, &wire);
    }
}
