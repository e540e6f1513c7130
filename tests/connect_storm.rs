//! A backlog of connections larger than what a reactor accepts in one turn: every one is
//! taken, though no new readiness edge announces those left waiting after the first turn.

mod util;

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use util::*;
use wsloop::{ConnId, ConnectInfo, Dispatch, Handle, Handler, Message, Server};

/// More than a reactor's accepts per turn (64), several turns' worth.
const WAITING: usize = 300;

/// Holds its reactor in the first `on_connect` (inline dispatch), so the connections
/// that arrive meanwhile pile up in the listener's backlog behind a single edge.
struct FirstConnectStalls {
    stalled: AtomicBool,
}

impl Handler for FirstConnectStalls {
    fn on_connect(&self, _: &Handle, _: ConnectInfo) {
        if !self.stalled.swap(true, Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(700));
        }
    }

    fn on_message(&self, handle: &Handle, id: ConnId, message: Message) {
        let _ = handle.send(id, message);
    }
}

#[test]
fn a_backlog_beyond_one_turn_of_accepts_is_all_taken() {
    let _w = Watchdog::new("connect storm", Duration::from_secs(60));
    let _many = many_sockets();
    let handler = FirstConnectStalls { stalled: AtomicBool::new(false) };
    let config = config().reactors(1).dispatch(Dispatch::Inline);
    let server = Server::start(config, handler).expect("server starts");
    let addr = server.local_addr();
    let mut first = raw(addr);
    first.write_all(request(addr, "").as_bytes()).unwrap();
    // The reactor is now asleep in the handler: these wait in the kernel's backlog.
    std::thread::sleep(Duration::from_millis(200));
    let mut waiting: Vec<_> = (0..WAITING).map(|_| raw(addr)).collect();
    for s in &mut waiting {
        s.write_all(request(addr, "").as_bytes()).unwrap();
    }
    assert_eq!(status_of(&read_head(&mut first)), 101);
    // One deadline for all: a connection left in the backlog fails the count, not the
    // watchdog.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut answered = 0;
    for s in &mut waiting {
        let left = deadline.saturating_duration_since(Instant::now());
        s.set_read_timeout(Some(left.max(Duration::from_millis(1)))).unwrap();
        if status_of(&read_head(s)) == 101 {
            answered += 1;
        }
    }
    assert_eq!(answered, WAITING, "every connection in the backlog is accepted and answered");
}
