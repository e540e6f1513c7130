//! Bounds tried as an attacker would, over real sockets, while the server is busy: floods
//! that never read cost at most their caps, every accepted connection is reachable, and
//! shutdown ends on time. Timing itself is proven in virtual time (`session::tests`);
//! these are the real-socket smoke tests of the same rules.

mod util;

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use util::*;
use wsloop::{ConnId, Event, Server};

#[test]
fn a_reactor_stops_reading_while_the_event_consumer_is_over_its_byte_budget() {
    let _w = Watchdog::new("event budget", Duration::from_secs(60));
    let config = config().worker_queue_bytes(64 << 10);
    let (server, mut events) = Server::start_with_events(config).unwrap();
    let s = raw_open(server.local_addr());
    let flooder = std::thread::spawn(move || flood(s, &masked(true, 0x1, b""), 6_000_000));
    // Nobody takes events for a second: the reactor must stop decoding.
    std::thread::sleep(Duration::from_secs(1));
    let decoded = server.handle().stats().messages_in;
    assert!(server.handle().stats().reads_paused > 0);
    // 64 KiB at ~100 bytes an event, plus what one 64 KiB read decodes to.
    assert!(decoded < 15_000, "{decoded} messages decoded while nobody read");
    // And nothing is lost once the consumer catches up.
    let mut messages = 0;
    while messages < 1_000_000 {
        if let Event::Message { .. } = events.recv_timeout(Duration::from_secs(10)).expect("event")
        {
            messages += 1;
        }
    }
    assert!(flooder.join().unwrap() >= 6_000_000);
}

#[test]
fn every_connection_that_gets_a_101_is_addressable() {
    let _w = Watchdog::new("addressable", Duration::from_secs(60));
    let _many = many_sockets();
    let n = 600;
    let config = config().reactors(2).max_connections(n);
    let (server, mut events) = Server::start_with_events(config).unwrap();
    let addr = server.local_addr();
    let mut socks = open_many(addr, &request(addr, ""), n, 100, |_, _| {});
    let mut ids: Vec<ConnId> = Vec::new();
    while ids.len() < n {
        if let Some(Event::Connect(info)) = events.recv_timeout(Duration::from_secs(5)) {
            ids.push(info.id);
        }
    }
    let per_reactor = ids.iter().filter(|id| id.reactor() == 0).count();
    for &id in &ids {
        server.handle().send(id, "hi").expect("reachable");
    }
    for s in &mut socks {
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        assert_eq!(read_frame(s).map(|f| f.2), Some(b"hi".to_vec()));
    }
    let answer = http_exchange(addr, request(addr, "").as_bytes());
    assert_eq!(status_of(&answer), 503, "one more is refused: {answer}");
    println!("addressable: {n} connections, {per_reactor} on reactor 0");
}

#[test]
fn shutdown_ends_within_its_deadline_despite_a_client_that_never_reads() {
    let _w = Watchdog::new("shutdown", Duration::from_secs(60));
    let server = echo_server(config().close_timeout(Duration::from_secs(30)));
    let stop = Arc::new(AtomicBool::new(false));
    let s = raw_open(server.local_addr());
    let writer = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut s = s;
            let frame = masked(true, 0x2, &vec![1; 60_000]);
            s.set_write_timeout(Some(Duration::from_millis(200))).unwrap();
            while !stop.load(Ordering::Relaxed) {
                let _ = s.write_all(&frame);
            }
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    server.handle().shutdown_within(Duration::from_millis(500));
    server.join();
    let took = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    assert!(took < Duration::from_secs(5), "shutdown took {took:?}");
}

#[test]
fn only_the_allowed_hosts_are_answered() {
    let server = echo_server(config().allowed_hosts(["127.0.0.1"]));
    let addr = server.local_addr();
    let rebound = request(addr, "").replace(&format!("Host: {addr}"), "Host: evil.example:80");
    assert_eq!(status_of(&http_exchange(addr, rebound.as_bytes())), 403);
    assert_eq!(status_of(&http_exchange(addr, request(addr, "").as_bytes())), 101);
}
