//! Floods that never read, against the binary as a child process (so its memory is its
//! own): they cost at most their caps, whatever the flood's length.

#[path = "../../tests/util/mod.rs"]
mod util;

use std::time::Duration;

use util::*;

const MIB: usize = 1 << 20;

/// The server's peak memory growth while `attack` runs against the binary.
fn peak_growth(
    args: &[&str],
    attack: impl FnOnce(std::net::SocketAddr) -> usize,
) -> (usize, usize) {
    let (server, addr) = start_binary(args);
    std::thread::sleep(Duration::from_millis(200));
    let baseline = proc_bytes(server.pid(), "VmRSS:");
    let sent = attack(addr);
    let peak = proc_bytes(server.pid(), "VmHWM:");
    (peak.saturating_sub(baseline), sent)
}

#[test]
fn empty_pings_never_read_cost_at_most_max_backpressure() {
    let _w = Watchdog::new("ping flood", Duration::from_secs(90));
    let (growth, sent) = peak_growth(&["--max-backpressure", "1048576"], |addr| {
        let floods: Vec<_> = (0..4)
            .map(|_| {
                let s = raw_open(addr);
                std::thread::spawn(move || flood(s, &masked(true, 0x9, b""), 6_000_000))
            })
            .collect();
        floods.into_iter().map(|f| f.join().unwrap()).sum()
    });
    println!(
        "ping flood: {} M pings over 4 connections, peak growth {} KiB",
        sent / 6_000_000,
        growth / 1024
    );
    assert!(sent >= 4_000_000, "the flood went through ({sent} bytes)");
    // Before: every 2-byte pong counted as 2 bytes but held ~64: +32 MiB per connection.
    assert!(growth < 4 * MIB + 8 * MIB, "server grew {} KiB", growth / 1024);
}

#[test]
fn empty_messages_never_read_wait_in_bounded_bytes_whatever_the_policy() {
    let _w = Watchdog::new("tiny flood", Duration::from_secs(90));
    let args = ["--backpressure", "drop", "--worker-queue-bytes", "1048576"];
    let (growth, sent) = peak_growth(&args, |addr| {
        let floods: Vec<_> = (0..2)
            .map(|_| {
                let s = raw_open(addr);
                std::thread::spawn(move || flood(s, &masked(true, 0x1, b""), 12_000_000))
            })
            .collect();
        floods.into_iter().map(|f| f.join().unwrap()).sum()
    });
    println!(
        "tiny flood: {} M empty messages, peak growth {} KiB",
        sent / 6_000_000,
        growth / 1024
    );
    assert!(sent >= 24_000_000, "the flood went through ({sent} bytes)");
    // Before: bounded by 1024 batches of a whole turn's reads each, +289 MiB and growing.
    // Two workers of 1 MiB each, two queues of 1 MiB, scratch and allocator slack.
    assert!(growth < 2 * MIB + 2 * MIB + 12 * MIB, "server grew {} KiB", growth / 1024);
}
