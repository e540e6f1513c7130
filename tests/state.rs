//! Typed per-connection state: made at connect, handed to every callback of its
//! connection, dropped at disconnect; in worker-pool and inline dispatch.

mod util;

use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tungstenite::Message as WsMessage;
use util::*;
use wsloop::{
    ConnId, ConnectInfo, DisconnectReason, Dispatch, Handle, Message, Server, StatefulHandler,
    WithState,
};

/// Counts a connection's messages in its state; an `Rc` shows the state need not be `Send`.
struct Counting {
    dropped: Arc<AtomicUsize>,
    disconnected: Arc<AtomicUsize>,
}

struct PerConnection {
    path: String,
    seen: Rc<std::cell::Cell<u32>>,
    dropped: Arc<AtomicUsize>,
}

impl Drop for PerConnection {
    fn drop(&mut self) {
        self.dropped.fetch_add(1, Ordering::SeqCst);
    }
}

impl StatefulHandler for Counting {
    type State = PerConnection;

    fn on_connect(&self, _: &Handle, info: ConnectInfo) -> PerConnection {
        PerConnection { path: info.path, seen: Rc::default(), dropped: self.dropped.clone() }
    }

    fn on_message(&self, handle: &Handle, state: &mut PerConnection, id: ConnId, _: Message) {
        state.seen.set(state.seen.get() + 1);
        let _ = handle.send(id, format!("{} {}", state.path, state.seen.get()));
    }

    fn on_disconnect(&self, _: &Handle, state: PerConnection, _: ConnId, _: DisconnectReason) {
        assert!(state.seen.get() > 0);
        self.disconnected.fetch_add(1, Ordering::SeqCst);
    }
}

fn run(dispatch: Dispatch) {
    let dropped = Arc::new(AtomicUsize::new(0));
    let disconnected = Arc::new(AtomicUsize::new(0));
    let handler = Counting { dropped: dropped.clone(), disconnected: disconnected.clone() };
    let server = Server::start(
        config().dispatch(dispatch).close_timeout(Duration::from_millis(300)),
        WithState::new(handler),
    )
    .unwrap();
    let addr = server.local_addr();
    let mut clients: Vec<_> = (0..6).map(|i| connect_path(addr, &format!("/c{i}"))).collect();
    for round in 1..=3 {
        for (i, c) in clients.iter_mut().enumerate() {
            c.send(WsMessage::text("x")).unwrap();
            assert_eq!(next_message(c), WsMessage::text(format!("/c{i} {round}")));
        }
    }
    assert_eq!(dropped.load(Ordering::SeqCst), 0, "states live while connected");
    for mut c in clients.drain(..3) {
        c.close(None).unwrap();
        while c.read().is_ok() {}
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while dropped.load(Ordering::SeqCst) < 3 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(disconnected.load(Ordering::SeqCst), 3, "each state handed back once");
    assert_eq!(dropped.load(Ordering::SeqCst), 3, "and dropped after on_disconnect");
    server.stop();
    assert_eq!(dropped.load(Ordering::SeqCst), 6, "shutdown disconnects and drops the rest");
}

#[test]
fn state_follows_its_connection_on_workers() {
    let _w = Watchdog::new("state_workers", Duration::from_secs(20));
    run(Dispatch::Workers);
}

#[test]
fn state_follows_its_connection_inline() {
    let _w = Watchdog::new("state_inline", Duration::from_secs(20));
    run(Dispatch::Inline);
}
