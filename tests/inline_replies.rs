//! Inline handlers answering the connection they handle: replies framed straight into the
//! reactor's write buffer (src/outbox.rs), checked over real sockets with the tungstenite
//! client for order, for what a full socket refuses, and against the queue's other users;
//! the first two over `wss://` as well, where the replies are encrypted ahead of the queue.

#[path = "util/trust.rs"]
mod trust;
mod util;

use std::io::{Read, Write};
use std::time::Duration;

use tungstenite::{Message as WsMessage, WebSocket};
use util::*;
use wsloop::{
    CloseCode, ConnId, ConnectInfo, Dispatch, Handle, Handler, Message, MessageRef, Server,
};

fn inline() -> wsloop::Config {
    config().dispatch(Dispatch::Inline).reactors(1)
}

/// Inline, with room for every reply a test leaves queued (64 MiB).
fn roomy() -> wsloop::Config {
    inline().max_backpressure(64 << 20)
}

/// A [`roomy`] server over `wss://` (a certificate made for the test) running `handler`,
/// and a client of it.
fn over_tls(handler: impl Handler) -> (Server, trust::WssClient) {
    let id = trust::identity();
    let server = Server::start(roomy().tls(id.tls.clone()), handler).expect("server starts");
    let client = trust::wss(server.local_addr(), &id.cert);
    (server, client)
}

/// A reply larger than what a window holds (64 KiB): it must take the queue.
const LARGE: usize = 70 * 1024;

/// Answers every message three times: lent, then too large for the window, then lent
/// again (which must follow the large one, not overtake it).
struct Sandwich;

impl Handler for Sandwich {
    fn on_message(&self, _: &Handle, _: ConnId, _: Message) {
        panic!("a whole message read at once is lent");
    }

    fn on_message_ref(&self, handle: &Handle, id: ConnId, message: MessageRef<'_>) {
        handle.send_ref(id, message).expect("first reply");
        let mut large = vec![b'L'; LARGE];
        large[..message.len()].copy_from_slice(message.as_bytes());
        // (Not `expect`: the error would print 70 KiB.)
        assert!(handle.send(id, large).is_ok(), "large reply refused");
        handle.send_ref(id, message).expect("last reply");
    }
}

#[test]
fn replies_keep_their_order_when_one_cannot_go_ahead() {
    let _w = Watchdog::new("sandwich", Duration::from_secs(30));
    let server = Server::start(roomy(), Sandwich).expect("server starts");
    sandwiches_in_order(&server, &mut connect(server.local_addr()));
}

#[test]
fn replies_keep_their_order_when_one_cannot_go_ahead_over_tls() {
    let _w = Watchdog::new("sandwich over tls", Duration::from_secs(30));
    let (server, mut client) = over_tls(Sandwich);
    sandwiches_in_order(&server, &mut client);
}

/// Sends pipelined messages to a [`Sandwich`] and checks its three replies to each.
fn sandwiches_in_order<S: Read + Write>(server: &Server, client: &mut WebSocket<S>) {
    // Pipelined, so that one read carries many messages and one window many replies.
    const N: usize = 200;
    for i in 0..N {
        client.write(WsMessage::text(format!("m{i}"))).unwrap();
    }
    client.flush().unwrap();
    for i in 0..N {
        let text = format!("m{i}");
        assert_eq!(next_message(client), WsMessage::text(text.clone()));
        match next_message(client) {
            WsMessage::Binary(large) => {
                assert_eq!(large.len(), LARGE);
                assert_eq!(&large[..text.len()], text.as_bytes(), "large reply {i}");
            }
            other => panic!("expected the large reply to m{i}, got {other:?}"),
        }
        assert_eq!(next_message(client), WsMessage::text(text));
    }
    let stats = server.handle().stats();
    assert_eq!(stats.messages_in, N as u64);
    assert_eq!(stats.messages_out, 3 * N as u64, "replies framed in the window are counted");
}

/// Echoes what it is lent.
struct LentEcho;

impl Handler for LentEcho {
    fn on_connect(&self, handle: &Handle, info: ConnectInfo) {
        handle.subscribe(info.id, "all").expect("subscribe");
    }

    fn on_message(&self, handle: &Handle, id: ConnId, message: Message) {
        let _ = handle.send(id, message);
    }

    fn on_message_ref(&self, handle: &Handle, id: ConnId, message: MessageRef<'_>) {
        let _ = handle.send_ref(id, message);
    }
}

#[test]
fn replies_a_full_socket_refuses_are_queued_whole_and_in_order() {
    let _w = Watchdog::new("refused", Duration::from_secs(60));
    let server = Server::start(roomy(), LentEcho).expect("server starts");
    refused_echoes_arrive_in_order(&server, &mut connect(server.local_addr()));
}

#[test]
fn replies_a_full_socket_refuses_are_queued_whole_and_in_order_over_tls() {
    let _w = Watchdog::new("refused over tls", Duration::from_secs(60));
    let (server, mut client) = over_tls(LentEcho);
    refused_echoes_arrive_in_order(&server, &mut client);
}

/// Sends 12 MiB of messages to a [`LentEcho`] before reading any echo: the socket fills
/// while replies are written ahead of an empty queue, so its first refusal cuts through
/// the window's frames. Every echo must still arrive, whole and in order, and nothing stay
/// buffered.
fn refused_echoes_arrive_in_order<S: Read + Write>(server: &Server, client: &mut WebSocket<S>) {
    const N: u32 = 3000;
    let body = |i: u32| -> Vec<u8> {
        let mut b: Vec<u8> = (0..4096u32).map(|j| (i.wrapping_mul(31) ^ j) as u8).collect();
        b[..4].copy_from_slice(&i.to_be_bytes());
        b
    };
    for i in 0..N {
        client.write(WsMessage::binary(body(i))).unwrap();
    }
    client.flush().unwrap();
    for i in 0..N {
        assert_eq!(next_message(client), WsMessage::binary(body(i)), "echo {i}");
    }
    assert_nothing_stays_buffered(server);
}

/// Asserts the server's only connection soon holds nothing: every frame it queued was
/// written and released (its count drops just after the write, which the client may see
/// first).
fn assert_nothing_stays_buffered(server: &Server) {
    let id = conn_id(server);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while server.handle().buffered(id) != Some(0) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(server.handle().buffered(id), Some(0));
}

/// The id of the server's only connection.
fn conn_id(server: &Server) -> ConnId {
    let handle = server.handle();
    let ids = handle.connections_of("all");
    *ids.first().expect("the connection joined `all`")
}

/// Answers "bye" with a reply, a close and a reply after the close; "pub" with a
/// publish to its own topic, then a reply.
struct Closer;

impl Handler for Closer {
    fn on_connect(&self, handle: &Handle, info: ConnectInfo) {
        handle.subscribe(info.id, "all").expect("subscribe");
    }

    fn on_message(&self, _: &Handle, _: ConnId, _: Message) {
        panic!("a whole message read at once is lent");
    }

    fn on_message_ref(&self, handle: &Handle, id: ConnId, message: MessageRef<'_>) {
        match message {
            MessageRef::Text("bye") => {
                handle.send_ref(id, MessageRef::Text("before")).expect("reply");
                handle.close(id, CloseCode::NORMAL, "done").expect("close");
                // The close was asked first: this must not overtake it.
                let _ = handle.send_ref(id, MessageRef::Text("after"));
            }
            MessageRef::Text("pub") => {
                handle.publish("all", "published");
                handle.send_ref(id, MessageRef::Text("replied")).expect("reply");
            }
            _ => {}
        }
    }
}

#[test]
fn a_publish_or_a_close_before_a_reply_stays_before_it() {
    let _w = Watchdog::new("closer", Duration::from_secs(30));
    let server = Server::start(inline(), Closer).expect("server starts");
    let mut client = connect(server.local_addr());
    client.send(WsMessage::text("pub")).unwrap();
    assert_eq!(next_message(&mut client), WsMessage::text("published"));
    assert_eq!(next_message(&mut client), WsMessage::text("replied"));
    assert_nothing_stays_buffered(&server);
    client.send(WsMessage::text("bye")).unwrap();
    assert_eq!(next_message(&mut client), WsMessage::text("before"));
    match client.read().expect("the close") {
        WsMessage::Close(Some(frame)) => assert_eq!(u16::from(frame.code), 1000),
        other => panic!("expected the close, got {other:?}"),
    }
}

#[test]
fn a_pong_queued_before_a_reply_stays_before_it() {
    let _w = Watchdog::new("pong_first", Duration::from_secs(30));
    let server = Server::start(inline(), LentEcho).expect("server starts");
    let mut s = raw_open(server.local_addr());
    // One write, so one read: the pong is queued, then the whole message is answered.
    let mut bytes = masked(false, 0x1, b"frag");
    bytes.extend(masked(true, 0x9, b"ping"));
    bytes.extend(masked(true, 0x0, b"ment"));
    bytes.extend(masked(true, 0x2, b"whole"));
    s.write_all(&bytes).unwrap();
    assert_eq!(read_frame(&mut s), Some((true, 0xA, b"ping".to_vec())));
    assert_eq!(read_frame(&mut s), Some((true, 0x1, b"fragment".to_vec())));
    assert_eq!(read_frame(&mut s), Some((true, 0x2, b"whole".to_vec())));
}
