//! The `wsloop` binary as a child process, so its RSS is its own: a client that never
//! reads costs bounded memory; idle connections cost the same with shared compression;
//! dedicated compression's cost per connection.

#[path = "../../tests/util/mod.rs"]
mod util;

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use util::*;
use wsloop::protocol::deflate::Deflater;

const MIB: usize = 1 << 20;

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

/// A client that sends 100 MB of echo requests and never reads: the `wsloop` binary (as a
/// child process, so its RSS is its own) must close it with 1008 once 1 MiB piles up,
/// stay within that plus a small constant, and keep a probe connection fast.
#[test]
fn a_client_that_never_reads_is_closed_and_costs_bounded_memory() {
    let _w = Watchdog::new("slow_reader", Duration::from_secs(120));
    let (server, addr) =
        start_binary(&["--max-backpressure", "1048576", "--max-message-size", "65536"]);
    let pid = server.pid();

    let stop = Arc::new(AtomicBool::new(false));
    let before_probe =
        probe_rtts(addr, Duration::from_millis(2), stop_after(Duration::from_millis(500)));
    let baseline = proc_bytes(pid, "VmRSS:");
    let probe = {
        let stop = stop.clone();
        std::thread::spawn(move || probe_rtts(addr, Duration::ZERO, stop))
    };

    let mut slow = raw_open(addr);
    slow.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
    let message = masked(true, 0x2, &vec![7u8; 64 << 10]);
    let mut sent = 0usize;
    while sent < 100_000_000 {
        // The server stops reading from us once it has closed us: writes then fail or stall.
        if slow.write_all(&message).is_err() {
            break;
        }
        sent += 64 << 10;
    }
    // Read what the kernel buffered, down to the close frame.
    slow.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let code = read_close_code(&mut slow);
    stop.store(true, Ordering::Relaxed);
    let during = probe.join().unwrap();
    let peak = proc_bytes(pid, "VmHWM:");
    let growth = peak.saturating_sub(baseline);
    println!(
        "slow reader: sent {} MB before the server stopped taking them; close code {code:?}; \
         server RSS baseline {} KiB, peak {} KiB, growth {} KiB (max_backpressure 1024 KiB); \
         probe p50/p99 before {:?}/{:?}, during {:?}/{:?} ({} samples)",
        sent / 1_000_000,
        baseline / 1024,
        peak / 1024,
        growth / 1024,
        percentile(&before_probe, 0.5),
        percentile(&before_probe, 0.99),
        percentile(&during, 0.5),
        percentile(&during, 0.99),
        during.len(),
    );
    assert_eq!(code, Some(1008), "slow consumer closed with 1008");
    assert!(growth < MIB + 8 * MIB, "server grew {growth} bytes");
    assert!(percentile(&during, 0.99) < Duration::from_millis(200), "probe stayed fast");
}

fn stop_after(d: Duration) -> Arc<AtomicBool> {
    let stop = Arc::new(AtomicBool::new(false));
    let s = stop.clone();
    std::thread::spawn(move || {
        std::thread::sleep(d);
        s.store(true, Ordering::Relaxed);
    });
    stop
}

fn idle_growth(args: &[&str], offer: bool, n: usize) -> usize {
    let (server, addr) = start_binary(args);
    let mut warm = connect(addr);
    assert_echo(&mut warm, &"w".repeat(2000));
    std::thread::sleep(Duration::from_millis(200));
    let before = proc_bytes(server.pid(), "VmRSS:");
    let extra = if offer { OFFER } else { "" };
    let head = request(addr, extra);
    let _conns = open_many(addr, &head, n, 100, |_, answer| {
        assert_eq!(answer.contains("permessage-deflate"), offer);
    });
    std::thread::sleep(Duration::from_millis(300));
    proc_bytes(server.pid(), "VmRSS:").saturating_sub(before)
}

#[test]
fn ten_thousand_idle_connections_with_shared_compression_cost_no_more() {
    let _w = Watchdog::new("shared_memory", Duration::from_secs(120));
    let _turn = many_sockets();
    let plain = idle_growth(&["--compression", "off"], false, 10_000);
    let shared = idle_growth(&["--compression", "shared"], true, 10_000);
    println!(
        "idle memory: 10,000 connections: uncompressed {} B/conn, shared compression {} B/conn",
        plain / 10_000,
        shared / 10_000
    );
    assert!(shared * 10 <= plain * 11, "shared {shared} vs plain {plain}");
}

#[test]
fn dedicated_compression_cost_per_connection_is_measured() {
    let _w = Watchdog::new("dedicated_memory", Duration::from_secs(120));
    let _turn = many_sockets();
    let (server, addr) = start_binary(&["--compression", "dedicated"]);
    let text = json_1k();
    let mut warm = connect(addr);
    assert_echo(&mut warm, "warm");
    std::thread::sleep(Duration::from_millis(200));
    let before = proc_bytes(server.pid(), "VmRSS:");
    let n = 200;
    let mut conns = Vec::new();
    for _ in 0..n {
        let (mut s, answer) = open_offering(addr, "/");
        assert!(answer.contains("Sec-WebSocket-Extensions: permessage-deflate\r\n"), "{answer}");
        // Context takeover: both directions keep a window, so both codecs are built.
        let mut body = Vec::new();
        Deflater::new(15, 6, false).compress(text.as_bytes(), &mut body);
        let mut f = masked(true, 0x1, &body);
        f[0] |= 0x40;
        s.write_all(&f).unwrap();
        let (_, opcode, _) = read_frame(&mut s).unwrap();
        assert_eq!(opcode, 0x1);
        conns.push(s);
    }
    std::thread::sleep(Duration::from_millis(300));
    let per_conn = proc_bytes(server.pid(), "VmRSS:").saturating_sub(before) / n;
    println!("dedicated compression: {per_conn} bytes per connection with both codecs built");
    assert!(per_conn > 100_000, "both codecs are held per connection");
}
