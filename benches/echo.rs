//! An in-process loopback echo round trip: one blocking client, one server, one message in
//! flight.
//!
//! `cargo bench --bench echo` starts a [`wsloop::Server`] on `127.0.0.1:0` with one
//! reactor, one worker and an echo handler, once with [`Dispatch::Inline`] and once with
//! [`Dispatch::Workers`]. A client on a plain `std::net::TcpStream` upgrades once, then
//! each iteration writes one masked 32-byte binary frame and reads the 34-byte echo, so
//! the figure (round trips/s) is latency-bound: two loopback TCP hops, the reactor's wake
//! and read and write, plus (with workers) the hand-off to the worker and back. Client
//! and server share the machine's cores, so the figure is rough.
//!
//! `echo/burst-*` writes [`BURST`] frames at once and reads their echoes: the server
//! reads them in one call and answers in one write, so the figure (messages/s) shows the
//! per-message cost of decoding, handling and framing more than the hops' wake-ups.
//!
//! `echo/burst-tls-*` is the burst over `wss://` (a certificate made for the run, a
//! rustls client): the server decrypts the burst's record, and encrypts its replies
//! together. The client's TLS work is in the figure too, and with inline dispatch all 256
//! replies leave as one record and one write (fewest syscalls), so the client starts
//! decrypting only once the server has encrypted the last of them.
//!
//! Timings are short (1 s warm-up, 2 s measurement, 20 samples); command-line flags still
//! apply.

use std::hint::black_box;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, BenchmarkId, Criterion, Throughput};
use wsloop::{Config, ConnId, Dispatch, Handle, Handler, Message, Server};

#[path = "../tests/util/trust.rs"]
mod trust;

/// Sends every message back to its sender.
struct Echo;

impl Handler for Echo {
    fn on_message(&self, handle: &Handle, id: ConnId, message: Message) {
        let _ = handle.send(id, message);
    }
}

const PAYLOAD_LEN: usize = 32;
const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// A fixed upgrade request, as a minimal client sends it (no Origin, no extensions).
const UPGRADE: &[u8] = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n\
    Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
    Sec-WebSocket-Version: 13\r\n\r\n";

/// The payload: 32 distinct bytes.
fn payload() -> [u8; PAYLOAD_LEN] {
    std::array::from_fn(|i| i as u8)
}

/// One masked binary frame carrying [`payload`]: FIN + binary, MASK + length 32, key.
fn request_frame() -> [u8; 6 + PAYLOAD_LEN] {
    let payload = payload();
    let mut frame = [0u8; 6 + PAYLOAD_LEN];
    frame[..2].copy_from_slice(&[0x82, 0x80 | PAYLOAD_LEN as u8]);
    frame[2..6].copy_from_slice(&MASK);
    for (i, (out, byte)) in frame[6..].iter_mut().zip(payload).enumerate() {
        *out = byte ^ MASK[i % 4];
    }
    frame
}

/// The server's unmasked echo of [`request_frame`].
fn reply_frame() -> [u8; 2 + PAYLOAD_LEN] {
    let mut frame = [0u8; 2 + PAYLOAD_LEN];
    frame[..2].copy_from_slice(&[0x82, PAYLOAD_LEN as u8]);
    frame[2..].copy_from_slice(&payload());
    frame
}

/// Connects with `TCP_NODELAY` and a read timeout (a stuck server fails the bench
/// instead of hanging it).
fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).expect("connect");
    stream.set_nodelay(true).expect("nodelay");
    stream.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    stream
}

/// Completes the upgrade, reading the response up to its blank line.
///
/// Panics if the server does not answer 101 within the read timeout.
fn upgrade<S: Read + Write>(mut stream: S) -> S {
    stream.write_all(UPGRADE).expect("write upgrade");
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    // Byte by byte, once: nothing after the head may be consumed here.
    while !head.ends_with(b"\r\n\r\n") {
        stream.read_exact(&mut byte).expect("read response");
        head.push(byte[0]);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 101 "),
        "upgrade refused: {}",
        String::from_utf8_lossy(&head)
    );
    stream
}

/// Writes one frame and reads its echo.
fn round_trip(stream: &mut (impl Write + Read), frame: &[u8], reply: &mut [u8]) {
    stream.write_all(frame).expect("write frame");
    stream.flush().expect("flush frame");
    stream.read_exact(reply).expect("read echo");
}

/// The frames in flight per write: one, and a burst of this many (about 10 KB: one read
/// and one write).
const BURST: usize = 256;

fn echo(c: &mut Criterion) {
    let mut group = c.benchmark_group("echo");
    let identity = trust::identity();
    for (kind, frames, tls) in
        [("", 1, false), ("burst-", BURST, false), ("burst-tls-", BURST, true)]
    {
        let request = request_frame().repeat(frames);
        let expected = reply_frame().repeat(frames);
        group.throughput(Throughput::Elements(frames as u64));
        for (name, dispatch) in [("inline", Dispatch::Inline), ("workers", Dispatch::Workers)] {
            let id = BenchmarkId::new(
                format!("{kind}{name}"),
                if frames == 1 {
                    format!("{PAYLOAD_LEN}B")
                } else {
                    format!("{frames}x{PAYLOAD_LEN}B")
                },
            );
            let mut config = Config::default()
                .addr(SocketAddr::from(([127, 0, 0, 1], 0)))
                .reactors(1)
                .workers(1)
                .dispatch(dispatch);
            if tls {
                config = config.tls(identity.tls.clone());
            }
            // One server per benchmark, alive for all of it.
            let server = Server::start(config, Echo).expect("server starts");
            let addr = server.local_addr();
            let bench = Bench { id, request: &request, expected: &expected };
            if tls {
                bench.run(&mut group, upgrade(trust::tls_stream(addr, &identity.cert)));
            } else {
                bench.run(&mut group, upgrade(connect(addr)));
            }
            server.stop();
        }
    }
    group.finish();
}

/// One benchmark: round trips of `request`, answered by `expected`.
struct Bench<'a> {
    id: BenchmarkId,
    request: &'a [u8],
    expected: &'a [u8],
}

impl Bench<'_> {
    /// Times round trips on `stream`, checking the replies before and after.
    fn run(self, group: &mut BenchmarkGroup<'_, WallTime>, mut stream: impl Read + Write) {
        let (request, expected) = (self.request, self.expected);
        let mut replies = vec![0u8; expected.len()];
        round_trip(&mut stream, request, &mut replies);
        assert_eq!(replies, expected);
        group.bench_function(self.id, |b| {
            b.iter(|| {
                round_trip(&mut stream, black_box(request), &mut replies);
                black_box(&replies);
            });
        });
        // Still in step after every timed round trip.
        round_trip(&mut stream, request, &mut replies);
        assert_eq!(replies, expected);
    }
}

fn main() {
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2))
        .sample_size(20)
        .configure_from_args();
    echo(&mut c);
    c.final_summary();
}
