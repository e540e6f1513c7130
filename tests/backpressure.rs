//! Slow consumers and floods: memory stays bounded and healthy connections stay fast.

mod util;

use std::io::{Read, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use util::*;
use wsloop::{ConnId, Handle, Handler, Message, Server};

const MIB: usize = 1 << 20;

fn stop_after(d: Duration) -> Arc<AtomicBool> {
    let stop = Arc::new(AtomicBool::new(false));
    let s = stop.clone();
    std::thread::spawn(move || {
        std::thread::sleep(d);
        s.store(true, Ordering::Relaxed);
    });
    stop
}

/// Echoes, taking 20 µs a message: slower than a flooding client can send.
struct SlowEcho;

impl Handler for SlowEcho {
    fn on_message(&self, handle: &Handle, id: ConnId, message: Message) {
        let t = Instant::now();
        while t.elapsed() < Duration::from_micros(20) {}
        let _ = handle.send(id, message);
    }
}

#[test]
fn a_flood_against_a_slow_handler_is_slowed_without_losing_anyone_elses_messages() {
    let _w = Watchdog::new("flood", Duration::from_secs(120));
    let config = config().reactors(1).workers(2).worker_queue(4);
    let server = Server::start(config, SlowEcho).unwrap();
    let addr = server.local_addr();
    let baseline = proc_bytes(std::process::id(), "VmRSS:");
    let before = probe_rtts(addr, Duration::ZERO, stop_after(Duration::from_millis(300)));

    // The flooder sends 32-byte messages flat out and reads (and counts) the echoes.
    let stop = Arc::new(AtomicBool::new(false));
    let flooder = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut s = raw_open(addr);
            let mut reader = s.try_clone().unwrap();
            let drain = std::thread::spawn(move || {
                let mut buf = vec![0u8; 1 << 16];
                let mut total = 0usize;
                while let Ok(n) = reader.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    total += n;
                }
                total
            });
            let batch: Vec<u8> = (0..1000).flat_map(|_| masked(true, 0x2, &[1u8; 32])).collect();
            let mut sent = 0usize;
            while !stop.load(Ordering::Relaxed) {
                s.write_all(&batch).unwrap();
                sent += 1000;
            }
            s.shutdown(std::net::Shutdown::Both).unwrap();
            (sent, drain.join().unwrap())
        })
    };
    std::thread::sleep(Duration::from_millis(300));

    // A well-behaved client, on the other worker or the same one, loses nothing.
    let mut good = connect(addr);
    let started = Instant::now();
    let mut rtts = Vec::new();
    for i in 0..300 {
        let t = Instant::now();
        assert_echo(&mut good, &format!("good {i}"));
        rtts.push(t.elapsed());
    }
    let good_time = started.elapsed();
    std::thread::sleep(Duration::from_secs(1));
    let peak = proc_bytes(std::process::id(), "VmHWM:");
    stop.store(true, Ordering::Relaxed);
    let (sent, echoed_bytes) = flooder.join().unwrap();
    rtts.sort();
    let stats = server.handle().stats();
    println!(
        "flood: flooder sent {sent} messages, got {} echoes back; reads paused {} times; \
         probe before p50 {:?} p99 {:?}; \
         well-behaved during: 300/300 echoed in {good_time:?}, p50 {:?} p99 {:?}; \
         test process RSS baseline {} KiB, peak {} KiB",
        echoed_bytes / 34,
        stats.reads_paused,
        percentile(&before, 0.5),
        percentile(&before, 0.99),
        percentile(&rtts, 0.5),
        percentile(&rtts, 0.99),
        baseline / 1024,
        peak / 1024,
    );
    assert!(stats.reads_paused > 0, "flow control paused the flooder's reading");
    assert!(peak.saturating_sub(baseline) < 64 * MIB, "memory stayed bounded");
}

#[test]
fn drop_policy_refuses_and_counts_instead_of_closing() {
    let _w = Watchdog::new("drop_policy", Duration::from_secs(30));
    let (server, mut events) = Server::start_with_events(
        config().max_backpressure(64 << 10).backpressure(wsloop::Backpressure::Drop),
    )
    .unwrap();
    let mut s = raw_open(server.local_addr());
    let Some(wsloop::Event::Connect(info)) = events.recv_timeout(Duration::from_secs(5)) else {
        panic!("connect");
    };
    let handle = server.handle();
    let mut refused = 0;
    for _ in 0..10_000 {
        match handle.send(info.id, vec![0u8; 16 << 10]) {
            Ok(()) => {}
            Err(e) => {
                assert_eq!(e.kind, wsloop::SendErrorKind::Backpressure);
                refused += 1;
            }
        }
        assert!(handle.buffered(info.id).unwrap() <= (64 << 10) + (16 << 10));
    }
    assert!(refused > 0);
    assert_eq!(handle.stats().messages_dropped, refused);
    assert!(handle.is_open(info.id), "the connection stays open under Drop");
    // Once the client reads, the queue drains and sends are accepted again.
    let mut buf = vec![0u8; 1 << 20];
    let deadline = Instant::now() + Duration::from_secs(10);
    while handle.buffered(info.id).unwrap() > 0 && Instant::now() < deadline {
        let _ = s.read(&mut buf);
    }
    assert_eq!(handle.buffered(info.id), Some(0));
    handle.send(info.id, "again").unwrap();
}

#[test]
fn drain_event_follows_a_filled_queue() {
    let _w = Watchdog::new("drain", Duration::from_secs(30));
    let (server, mut events) =
        Server::start_with_events(config().drain_events(true).max_backpressure(64 << 20)).unwrap();
    let mut s = raw_open(server.local_addr());
    let Some(wsloop::Event::Connect(info)) = events.recv_timeout(Duration::from_secs(5)) else {
        panic!("connect");
    };
    // More than the socket buffers take, so the queue fills.
    for _ in 0..512 {
        server.handle().send(info.id, vec![0u8; 60 << 10]).unwrap();
    }
    std::thread::sleep(Duration::from_millis(200));
    assert!(server.handle().buffered(info.id).unwrap() > 0, "the kernel refused part of it");
    assert!(events.try_recv().is_none(), "no drain while the client does not read");
    let reader = std::thread::spawn(move || {
        let mut buf = vec![0u8; 1 << 20];
        while s.read(&mut buf).map(|n| n > 0).unwrap_or(false) {}
    });
    match events.recv_timeout(Duration::from_secs(10)) {
        Some(wsloop::Event::Drain { id }) => assert_eq!(id, info.id),
        other => panic!("expected drain, got {other:?}"),
    }
    drop(server);
    reader.join().unwrap();
}
