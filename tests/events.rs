//! Events and the Handle: order per connection, exactly one Disconnect, sends from other
//! threads, stale ids, server-initiated close and shutdown.

mod util;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tungstenite::Message as WsMessage;
use util::*;
use wsloop::{
    CloseCode, CloseError, ConnId, DisconnectReason, Event, Handle, Handler, Message,
    SendErrorKind, Server,
};

#[test]
fn each_connection_sees_connect_messages_in_order_then_one_disconnect() {
    let _w = Watchdog::new("event_order", Duration::from_secs(30));
    let (server, mut events) = Server::start_with_events(config()).unwrap();
    let addr = server.local_addr();
    let clients: Vec<_> = (0..20)
        .map(|_| {
            std::thread::spawn(move || {
                let mut c = connect(addr);
                for i in 0..50 {
                    c.send(WsMessage::text(i.to_string())).unwrap();
                }
                c.close(None).unwrap();
                while c.read().is_ok() {}
            })
        })
        .collect();
    for c in clients {
        c.join().unwrap();
    }
    let mut seen: HashMap<ConnId, Vec<String>> = HashMap::new();
    let mut disconnects = 0;
    while disconnects < 20 {
        let event = events.recv_timeout(Duration::from_secs(10)).expect("event");
        let log = seen.entry(event.id()).or_default();
        match event {
            Event::Connect(_) => {
                assert!(log.is_empty(), "connect first");
                log.push("connect".into());
            }
            Event::Message { message: Message::Text(t), .. } => log.push(t),
            Event::Disconnect { reason, .. } => {
                assert!(
                    matches!(reason, DisconnectReason::ClosedByPeer { code, .. } if code == CloseCode::NO_STATUS),
                    "{reason:?}"
                );
                log.push("disconnect".into());
                disconnects += 1;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(seen.len(), 20);
    let expected: Vec<String> = std::iter::once("connect".to_string())
        .chain((0..50).map(|i| i.to_string()))
        .chain(std::iter::once("disconnect".to_string()))
        .collect();
    for log in seen.values() {
        assert_eq!(log, &expected);
    }
    assert!(events.recv_timeout(Duration::from_millis(200)).is_none(), "nothing after disconnect");
}

/// Remembers ids and reasons; echoes nothing.
#[derive(Default, Clone)]
struct Recorder {
    connected: Arc<Mutex<Vec<ConnId>>>,
    gone: Arc<Mutex<Vec<(ConnId, DisconnectReason)>>>,
}

impl Handler for Recorder {
    fn on_connect(&self, _: &Handle, info: wsloop::ConnectInfo) {
        self.connected.lock().unwrap().push(info.id);
    }
    fn on_message(&self, _: &Handle, _: ConnId, _: Message) {}
    fn on_disconnect(&self, _: &Handle, id: ConnId, reason: DisconnectReason) {
        self.gone.lock().unwrap().push((id, reason));
    }
}

fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(std::time::Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn sends_from_other_threads_and_stale_ids() {
    let _w = Watchdog::new("handle_threads", Duration::from_secs(30));
    let recorder = Recorder::default();
    let server = Server::start(config(), recorder.clone()).unwrap();
    let handle = server.handle();
    let mut client = connect(server.local_addr());
    wait_for("connect", || recorder.connected.lock().unwrap().len() == 1);
    let id = recorder.connected.lock().unwrap()[0];
    let senders: Vec<_> = (0..4)
        .map(|t| {
            let handle = handle.clone();
            std::thread::spawn(move || {
                for i in 0..100 {
                    handle.send(id, format!("{t}:{i}")).unwrap();
                }
            })
        })
        .collect();
    for s in senders {
        s.join().unwrap();
    }
    let mut last = [-1i32; 4];
    for _ in 0..400 {
        let WsMessage::Text(t) = next_message(&mut client) else { panic!("text") };
        let (t, i) = t.split_once(':').unwrap();
        let (t, i): (usize, i32) = (t.parse().unwrap(), i.parse().unwrap());
        assert_eq!(i, last[t] + 1, "per-thread order holds");
        last[t] = i;
    }
    handle.send_many(&[id, id], "twice");
    assert_eq!(next_message(&mut client), WsMessage::text("twice"));
    assert_eq!(next_message(&mut client), WsMessage::text("twice"));
    handle.broadcast(vec![1u8, 2, 3]);
    assert_eq!(next_message(&mut client), WsMessage::binary(vec![1u8, 2, 3]));

    handle.close(id, CloseCode(4001), "done").unwrap();
    match client.read() {
        Ok(WsMessage::Close(Some(frame))) => assert_eq!(u16::from(frame.code), 4001),
        other => panic!("expected close, got {other:?}"),
    }
    while client.read().is_ok() {}
    wait_for("disconnect", || recorder.gone.lock().unwrap().len() == 1);
    assert_eq!(
        recorder.gone.lock().unwrap()[0],
        (id, DisconnectReason::ClosedByServer { code: CloseCode(4001) })
    );

    // The id is stale now: every call says so and hands the message back.
    let err = handle.send(id, "late").unwrap_err();
    assert_eq!(err.kind, SendErrorKind::UnknownConnection);
    assert_eq!(err.message, Message::Text("late".into()));
    assert_eq!(handle.close(id, CloseCode::NORMAL, ""), Err(CloseError::UnknownConnection));
    assert_eq!(handle.send_many(&[id], "x"), 0);
    assert!(!handle.is_open(id));
    // A new connection reusing the slot does not answer to the old id.
    let _again = connect(server.local_addr());
    wait_for("second connect", || recorder.connected.lock().unwrap().len() == 2);
    assert_ne!(recorder.connected.lock().unwrap()[1], id);
    assert_eq!(handle.send(id, "late").unwrap_err().kind, SendErrorKind::UnknownConnection);
    assert_eq!(handle.close(id, CloseCode(1005), ""), Err(CloseError::InvalidCode(1005)));
}

#[test]
fn shutdown_closes_every_connection_with_1001_and_delivers_disconnects() {
    let _w = Watchdog::new("shutdown", Duration::from_secs(30));
    let recorder = Recorder::default();
    let server = Server::start(config(), recorder.clone()).unwrap();
    let addr = server.local_addr();
    let clients: Vec<_> = (0..10).map(|_| connect(addr)).collect();
    wait_for("connects", || recorder.connected.lock().unwrap().len() == 10);
    let readers: Vec<_> = clients
        .into_iter()
        .map(|mut c| {
            std::thread::spawn(move || {
                loop {
                    match c.read() {
                        Ok(WsMessage::Close(frame)) => return frame.map(|f| u16::from(f.code)),
                        Ok(_) => continue,
                        Err(e) => panic!("{e}"),
                    }
                }
            })
        })
        .collect();
    let handle = server.handle();
    handle.shutdown();
    for r in readers {
        assert_eq!(r.join().unwrap(), Some(1001));
    }
    server.join();
    let gone = recorder.gone.lock().unwrap();
    assert_eq!(gone.len(), 10);
    assert!(gone.iter().all(|(_, r)| *r == DisconnectReason::Shutdown), "{gone:?}");
    assert_eq!(handle.send(gone[0].0, "x").unwrap_err().kind, SendErrorKind::ServerStopped);
    assert!(std::net::TcpStream::connect(addr).is_err(), "listener closed");
}
