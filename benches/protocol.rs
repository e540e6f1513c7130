//! The sans-IO protocol core on its own: frame headers, masking, UTF-8, the decoder, and
//! the upgrade handshake. No sockets; each figure is one core's CPU cost.
//!
//! `cargo bench --bench protocol` measures, in this order:
//!
//! - `frame_header/parse` and `frame_header/encode`: one masked header with a 7-bit
//!   (100 B), 16-bit (1000 B) and 64-bit (100,000 B) payload length, in headers/s;
//! - `mask`: [`apply_mask`] against a naive byte-at-a-time loop on 16 B to 64 KiB, in
//!   bytes/s;
//! - `utf8`: `std::str::from_utf8` against `simdutf8::basic::from_utf8` on mixed
//!   ASCII/multibyte text of 32 B, 1 KiB and 64 KiB, in bytes/s;
//! - `decoder`: [`Decoder::decode`] as a server on one whole masked text frame of 32 B
//!   and of 1 KiB (the borrowed fast path), the same through `decode_whole`, ASCII
//!   text through `decode_whole`, and a 64 KiB text message in 16 masked
//!   fragments of 4 KiB (reassembly), in bytes/s of payload;
//! - `handshake`: `parse_request`, `validate_upgrade` and `accept_response` on a typical
//!   browser upgrade request, separately and together, in requests/s.
//!
//! Timings are short (1 s warm-up, 2 s measurement, 20 samples) so the whole file runs in
//! about a minute; command-line flags (`--quick`, `--measurement-time`, a filter) still
//! apply.

use std::hint::black_box;
use std::time::Duration;

use criterion::{BatchSize, BenchmarkId, Criterion, Throughput};
use wsloop::protocol::frame::{FrameHeader, MAX_HEADER_LEN, OpCode, apply_mask};
use wsloop::protocol::handshake::{accept_response, parse_request, validate_upgrade};
use wsloop::protocol::message::{Decoder, DecoderLimits, Incoming, Role, Whole};

/// An arbitrary masking key, with four distinct bytes so a phase error would show.
const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// A header with the given payload length, FIN set, masked with [`MASK`].
fn header(opcode: OpCode, fin: bool, payload_len: u64) -> FrameHeader {
    FrameHeader { fin, rsv1: false, opcode, mask: Some(MASK), payload_len }
}

/// The header's wire bytes.
fn encoded(header: &FrameHeader) -> Vec<u8> {
    let mut out = [0u8; MAX_HEADER_LEN];
    let n = header.encode(&mut out);
    out[..n].to_vec()
}

/// One masked frame: header then `payload` masked with [`MASK`], as a client sends it.
fn masked_frame(opcode: OpCode, fin: bool, payload: &[u8]) -> Vec<u8> {
    let mut wire = encoded(&header(opcode, fin, payload.len() as u64));
    let start = wire.len();
    wire.extend_from_slice(payload);
    apply_mask(&mut wire[start..], MASK, 0);
    wire
}

/// Exactly `len` bytes of UTF-8 mixing ASCII with 2-, 3- and 4-byte characters (about a
/// third of the bytes are ASCII), padded with ASCII to the length.
fn mixed_text(len: usize) -> String {
    const PIECES: [&str; 6] =
        ["Hello, world! ", "Grüße aus Köln, ", "Привет, мир! ", "你好，世界。", "🦀🎉 ", "ok; "];
    let mut text = String::with_capacity(len);
    'fill: loop {
        for piece in PIECES {
            for ch in piece.chars() {
                if text.len() + ch.len_utf8() > len {
                    break 'fill;
                }
                text.push(ch);
            }
        }
    }
    while text.len() < len {
        text.push('.');
    }
    text
}

/// Short timings for every group, as the crate's other benches use.
fn criterion() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2))
        .sample_size(20)
        .configure_from_args()
}

fn frame_headers(c: &mut Criterion) {
    let cases = [("len7", 100u64), ("len16", 1000), ("len64", 100_000)];
    let mut group = c.benchmark_group("frame_header");
    group.throughput(Throughput::Elements(1));
    for (name, len) in cases {
        let h = header(OpCode::Binary, true, len);
        let wire = encoded(&h);
        assert_eq!(FrameHeader::parse(&wire, false), Ok(Some((h, wire.len()))));
        group.bench_function(BenchmarkId::new("parse", name), |b| {
            b.iter(|| FrameHeader::parse(black_box(&wire), black_box(false)));
        });
        group.bench_function(BenchmarkId::new("encode", name), |b| {
            let mut out = [0u8; MAX_HEADER_LEN];
            b.iter(|| {
                let n = black_box(&h).encode(&mut out);
                black_box(&out);
                n
            });
        });
    }
    group.finish();
}

/// The textbook loop: one byte, one modulo, one key lookup at a time.
fn naive_mask(buf: &mut [u8], mask: [u8; 4], offset: usize) {
    for (i, byte) in buf.iter_mut().enumerate() {
        *byte ^= mask[(offset + i) % 4];
    }
}

fn masking(c: &mut Criterion) {
    let mut group = c.benchmark_group("mask");
    for size in [16usize, 128, 1024, 16 << 10, 64 << 10] {
        // Both must agree (from an odd offset, too) before either is timed.
        let original: Vec<u8> = (0..size).map(|i| (i * 7) as u8).collect();
        let (mut fast, mut naive) = (original.clone(), original.clone());
        apply_mask(&mut fast, MASK, 3);
        naive_mask(&mut naive, MASK, 3);
        assert_eq!(fast, naive);

        // Masking in place over and over is fine: XOR twice gives the input back, and
        // the cost does not depend on the bytes.
        let mut buf = original;
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_function(BenchmarkId::new("apply_mask", size), |b| {
            b.iter(|| apply_mask(black_box(&mut buf), black_box(MASK), black_box(0)));
        });
        group.bench_function(BenchmarkId::new("naive", size), |b| {
            b.iter(|| naive_mask(black_box(&mut buf), black_box(MASK), black_box(0)));
        });
    }
    group.finish();
}

fn utf8(c: &mut Criterion) {
    let mut group = c.benchmark_group("utf8");
    for size in [32usize, 1024, 64 << 10] {
        let text = mixed_text(size);
        let bytes = text.as_bytes();
        assert_eq!(bytes.len(), size);
        assert!(simdutf8::basic::from_utf8(bytes).is_ok());
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_function(BenchmarkId::new("std", size), |b| {
            b.iter(|| std::str::from_utf8(black_box(bytes)).is_ok());
        });
        group.bench_function(BenchmarkId::new("simdutf8", size), |b| {
            b.iter(|| simdutf8::basic::from_utf8(black_box(bytes)).is_ok());
        });
    }
    group.finish();
}

/// Decodes everything in `buf` as one message, returning its payload length.
///
/// Panics unless `buf` holds exactly one complete text message.
fn decode_message(decoder: &mut Decoder, buf: &mut [u8]) -> usize {
    let (mut pos, total) = (0, buf.len());
    loop {
        match decoder.decode(&mut buf[pos..]).expect("valid frames") {
            (used, Some(Incoming::Text(text))) if pos + used == total => {
                return black_box(text).len();
            }
            (used, None) if used > 0 => pos += used,
            (used, other) => panic!("unexpected {other:?} after {} bytes", pos + used),
        }
    }
}

fn decoder(c: &mut Criterion) {
    let mut group = c.benchmark_group("decoder");
    let mut decoder = Decoder::new(Role::Server, DecoderLimits::default());

    // One whole frame: the fast path, unmasked and validated in place, returned borrowed.
    // `decode` unmasks its input in place, so every iteration needs a fresh masked copy:
    // `iter_batched_ref` with `BatchSize::SmallInput` clones the frame for a batch of
    // iterations outside the timed section, so only `decode` is timed.
    for size in [32usize, 1024] {
        let text = mixed_text(size);
        let wire = masked_frame(OpCode::Text, true, text.as_bytes());
        assert_eq!(decode_message(&mut decoder, &mut wire.clone()), size);
        assert!(decoder.is_idle());
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_function(BenchmarkId::new("whole_frame", size), |b| {
            b.iter_batched_ref(
                || wire.clone(),
                |buf| decode_message(&mut decoder, buf),
                BatchSize::SmallInput,
            );
        });
        // The same frame through the session's lending loop (`decode_whole`): no
        // `Incoming`, no general header parser.
        group.bench_function(BenchmarkId::new("decode_whole", size), |b| {
            b.iter_batched_ref(
                || wire.clone(),
                |buf| match decoder.decode_whole(buf) {
                    Ok(Some((used, whole))) => black_box((used, whole)).0,
                    other => panic!("unexpected {other:?}"),
                },
                BatchSize::SmallInput,
            );
        });
    }

    // ASCII text (hex digits, as a JSON or log line mostly is): `decode_whole` learns it
    // is ASCII from the unmasking pass, and checks nothing else.
    for size in [32usize, 1024] {
        let text: String = (0..size).map(|i| char::from(b"0123456789abcdef"[i % 16])).collect();
        let wire = masked_frame(OpCode::Text, true, text.as_bytes());
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_function(BenchmarkId::new("decode_whole_ascii", size), |b| {
            b.iter_batched_ref(
                || wire.clone(),
                |buf| match decoder.decode_whole(buf) {
                    Ok(Some((used, Whole::Text(text)))) => black_box((used, text)).0,
                    other => panic!("unexpected {other:?}"),
                },
                BatchSize::SmallInput,
            );
        });
    }

    // Reassembly: a 64 KiB text message in 16 masked frames of 4 KiB (a first Text frame,
    // then continuations), all in one buffer. Fragment boundaries fall inside multibyte
    // characters, so the UTF-8 carry-over between fragments is exercised. A batch of
    // 64 KiB inputs would hold many megabytes, so here each iteration copies the wire
    // bytes into one reused buffer *inside* the timed loop: the figure includes that
    // memcpy of 64 KiB (like the reactor's read into its scratch buffer), as well as the
    // assembly buffer's allocation and the final `String` validation.
    const FRAGMENTS: usize = 16;
    let text = mixed_text(64 << 10);
    let chunk = text.len() / FRAGMENTS;
    let mut wire = Vec::new();
    for (i, piece) in text.as_bytes().chunks(chunk).enumerate() {
        let opcode = if i == 0 { OpCode::Text } else { OpCode::Continuation };
        wire.extend(masked_frame(opcode, i == FRAGMENTS - 1, piece));
    }
    let mut buf = wire.clone();
    assert_eq!(decode_message(&mut decoder, &mut buf), text.len());
    assert!(decoder.is_idle());
    group.throughput(Throughput::Bytes(text.len() as u64));
    group.bench_function(BenchmarkId::new("reassembly_16x4KiB", text.len()), |b| {
        b.iter(|| {
            buf.copy_from_slice(&wire);
            decode_message(&mut decoder, black_box(&mut buf))
        });
    });
    group.finish();
}

/// What Chrome sends to open `ws://example.com:8080/chat` (headers as in Chrome 124).
const BROWSER_REQUEST: &[u8] = b"GET /chat HTTP/1.1\r\n\
    Host: example.com:8080\r\n\
    Connection: Upgrade\r\n\
    Pragma: no-cache\r\n\
    Cache-Control: no-cache\r\n\
    User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) \
    Chrome/124.0.0.0 Safari/537.36\r\n\
    Upgrade: websocket\r\n\
    Origin: http://example.com:8080\r\n\
    Sec-WebSocket-Version: 13\r\n\
    Accept-Encoding: gzip, deflate, br\r\n\
    Accept-Language: en-US,en;q=0.9\r\n\
    Sec-WebSocket-Key: x3JJHMbDL1EzLkh9GBhXDw==\r\n\
    Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n";

fn handshake(c: &mut Criterion) {
    const MAX_HEADER_BYTES: usize = 8 << 10;
    let (req, used) =
        parse_request(BROWSER_REQUEST, MAX_HEADER_BYTES).expect("well-formed").expect("complete");
    assert_eq!(used, BROWSER_REQUEST.len());
    validate_upgrade(&req).expect("a valid upgrade");
    // The key and answer of Wikipedia's WebSocket example.
    let response = accept_response(&req, None, None);
    let accept = b"Sec-WebSocket-Accept: HSmrc0sMlYUkAGmm5OPpG2HaGWk=\r\n";
    assert!(response.windows(accept.len()).any(|w| w == accept));

    let mut group = c.benchmark_group("handshake");
    group.throughput(Throughput::Elements(1));
    let size = BROWSER_REQUEST.len();
    group.bench_function(BenchmarkId::new("parse_request", size), |b| {
        b.iter(|| parse_request(black_box(BROWSER_REQUEST), MAX_HEADER_BYTES));
    });
    group.bench_function(BenchmarkId::new("validate_upgrade", size), |b| {
        b.iter(|| validate_upgrade(black_box(&req)));
    });
    group.bench_function(BenchmarkId::new("accept_response", size), |b| {
        b.iter(|| accept_response(black_box(&req), None, None));
    });
    group.bench_function(BenchmarkId::new("all_three", size), |b| {
        b.iter(|| {
            let (req, _) = parse_request(black_box(BROWSER_REQUEST), MAX_HEADER_BYTES)
                .expect("well-formed")
                .expect("complete");
            validate_upgrade(&req).expect("a valid upgrade");
            accept_response(&req, None, None)
        });
    });
    group.finish();
}

fn main() {
    let mut c = criterion();
    frame_headers(&mut c);
    masking(&mut c);
    utf8(&mut c);
    decoder(&mut c);
    handshake(&mut c);
    c.final_summary();
}
