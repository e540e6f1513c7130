//! `buffered` and `Drain` agree: a producer that pauses on one is woken by the other.

mod util;

use std::io::Read;
use std::time::Duration;

use util::*;
use wsloop::Server;

/// A producer that pauses whenever `buffered` is over a threshold and waits for `Drain` is
/// always woken, against a client that reads slowly: the kernel may take everything in
/// one write (no partial write to signal), yet the bytes it was told about all leave.
#[test]
fn a_producer_waiting_on_buffered_is_always_woken_by_drain() {
    let _w = Watchdog::new("drain producer", Duration::from_secs(60));
    let config = config().drain_events(true).max_backpressure(64 << 20);
    let (server, mut events) = Server::start_with_events(config).unwrap();
    let mut s = raw_open(server.local_addr());
    let Some(wsloop::Event::Connect(info)) = events.recv_timeout(Duration::from_secs(5)) else {
        panic!("connect");
    };
    const TOTAL: usize = 16 << 20;
    let reader = std::thread::spawn(move || {
        let mut buf = vec![0u8; 16 << 10];
        let mut got = 0;
        while got < TOTAL {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => got += n,
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        got
    });
    let handle = server.handle();
    let (mut sent, mut pauses) = (0, 0);
    while sent < TOTAL {
        handle.send(info.id, vec![1u8; 8 << 10]).unwrap();
        sent += 8 << 10;
        // The producer's own rule: over its threshold, wait for a drain, then look again
        // (an earlier drain may still be in the queue).
        while handle.buffered(info.id).unwrap() > 256 << 10 {
            pauses += 1;
            match events.recv_timeout(Duration::from_secs(10)) {
                Some(wsloop::Event::Drain { id }) => assert_eq!(id, info.id),
                other => panic!("pause {pauses}: expected a drain, got {other:?}"),
            }
        }
    }
    let got = reader.join().unwrap();
    assert!(got >= TOTAL, "the client read {got} of {TOTAL}");
    assert!(pauses > 5, "the producer had to wait ({pauses} pauses)");
}
