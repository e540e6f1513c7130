//! Connection limits and timers: slowloris, max_connections, heartbeats, idle timeout.

mod util;

use std::io::Write;
use std::time::{Duration, Instant};

use util::*;
use wsloop::{DisconnectReason, Event, Server};

#[test]
fn slowloris_connections_are_closed_after_the_handshake_timeout() {
    let _w = Watchdog::new("slowloris", Duration::from_secs(60));
    let timeout = Duration::from_secs(1);
    let server = echo_server(config().handshake_timeout(timeout));
    let addr = server.local_addr();
    let started = Instant::now();
    let mut dribblers: Vec<_> = (0..200).map(|_| raw(addr)).collect();
    let head = request(addr, "");
    // One byte each every 100 ms: never a complete head before the timeout.
    let dribble = std::thread::spawn(move || {
        let mut closed_at = vec![None; dribblers.len()];
        for (i, byte) in head.as_bytes().iter().enumerate().take(40) {
            for (s, closed) in dribblers.iter_mut().zip(closed_at.iter_mut()) {
                if closed.is_none() && s.write_all(&[*byte]).is_err() {
                    *closed = Some(i);
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        // Short timeouts: a dribbler left open fails the assertion below, not the watchdog.
        dribblers
            .into_iter()
            .map(|mut s| {
                let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
                sees_eof(&mut s)
            })
            .collect::<Vec<_>>()
    });
    std::thread::sleep(Duration::from_millis(300));
    let mut normal = connect(addr);
    assert_echo(&mut normal, "a normal client still gets in");
    // When exactly they go is proven in virtual time; here: they all go, while sending.
    let deadline = Instant::now() + timeout + Duration::from_secs(5);
    while server.handle().stats().sockets > 1 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let left = server.handle().stats().sockets;
    let at = started.elapsed();
    let closed = dribble.join().unwrap();
    let elapsed = started.elapsed();
    let open = closed.iter().filter(|c| !**c).count();
    assert_eq!(open, 0, "{open} dribblers were still open");
    assert_eq!(left, 1, "only the normal client is left at {at:?}");
    assert_echo(&mut normal, "and it is still served");
    println!(
        "slowloris: 200 dribblers closed by {at:?} (timeout {timeout:?}); test took {elapsed:?}"
    );
}

#[test]
fn past_max_connections_new_clients_get_503() {
    let _w = Watchdog::new("max_connections", Duration::from_secs(30));
    let server = echo_server(config().max_connections(5));
    let addr = server.local_addr();
    let clients: Vec<_> = (0..5).map(|_| connect(addr)).collect();
    let answer = http_exchange(addr, request(addr, "").as_bytes());
    assert_eq!(status_of(&answer), 503, "{answer}");
    assert_eq!(server.handle().stats().rejected_full, 1);
    drop(clients);
    // Room again once they are gone.
    let deadline = Instant::now() + Duration::from_secs(10);
    while server.handle().stats().sockets > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let _again = connect(addr);
}

#[test]
fn a_peer_that_stops_answering_pings_is_dropped_in_time() {
    let _w = Watchdog::new("pong_timeout", Duration::from_secs(30));
    let (interval, pong) = (Duration::from_millis(400), Duration::from_millis(400));
    let config = config().ping_interval(Some(interval)).pong_timeout(pong);
    let (server, mut events) = Server::start_with_events(config).unwrap();
    let addr = server.local_addr();
    // A raw socket never answers pings; a tungstenite client that keeps reading does.
    let mut dead = raw_open(addr);
    let mut alive = connect(addr);
    let opened = Instant::now();
    set_short_timeout(&alive);
    let alive_reader = std::thread::spawn(move || {
        let until = Instant::now() + Duration::from_secs(2);
        while Instant::now() < until {
            // Reading answers pings; the read timeout is not an error here.
            let _ = alive.read();
        }
        set_timeout(&alive);
        alive
    });
    let mut ids = Vec::new();
    let gone = loop {
        match events.recv_timeout(Duration::from_secs(5)).expect("event") {
            Event::Connect(info) => ids.push(info.id),
            Event::Disconnect { id, reason } => break (id, reason, opened.elapsed()),
            _ => {}
        }
    };
    assert_eq!(gone.0, ids[0], "the raw socket connected first");
    assert_eq!(gone.1, DisconnectReason::PongTimeout);
    // The dead peer saw a ping before it was dropped.
    assert_eq!(read_frame(&mut dead).map(|f| f.1), Some(0x9));
    let mut alive = alive_reader.join().unwrap();
    assert!(server.handle().is_open(ids[1]), "the answering client is still open after 2 s");
    server.handle().send(ids[1], "still here").unwrap();
    assert_eq!(next_message(&mut alive), tungstenite::Message::text("still here"));
    println!(
        "heartbeat: dead peer dropped after {:?} (interval {interval:?} + pong {pong:?})",
        gone.2
    );
}

#[test]
fn idle_connections_are_closed_with_1001() {
    let _w = Watchdog::new("idle", Duration::from_secs(30));
    let server =
        echo_server(config().idle_timeout(Some(Duration::from_millis(500))).ping_interval(None));
    let mut s = raw_open(server.local_addr());
    assert_eq!(read_close_code(&mut s), Some(1001));
}
