//! Echo over real sockets with the tungstenite client: sizes, fragmentation, concurrency.

mod util;

use std::io::Write;
use std::time::Duration;

use tungstenite::Message as WsMessage;
use util::*;
use wsloop::Dispatch;

#[test]
fn text_and_binary_echo_up_to_the_size_limit() {
    let _w = Watchdog::new("echo_sizes", Duration::from_secs(30));
    for dispatch in [Dispatch::Workers, Dispatch::Inline] {
        let server = echo_server(config().dispatch(dispatch));
        let mut client = connect(server.local_addr());
        for size in [0, 1, 125, 126, 65_535, 65_536] {
            let text = "x".repeat(size);
            assert_echo(&mut client, &text);
            let bytes: Vec<u8> = (0..size).map(|i| i as u8).collect();
            client.send(WsMessage::binary(bytes.clone())).unwrap();
            assert_eq!(next_message(&mut client), WsMessage::binary(bytes));
        }
        let multibyte = "é🦀ж".repeat(1000);
        assert_echo(&mut client, &multibyte);
    }
}

#[test]
fn messages_come_back_in_order() {
    let _w = Watchdog::new("echo_order", Duration::from_secs(30));
    let server = echo_server(config());
    let mut client = connect(server.local_addr());
    for i in 0..1000 {
        client.write(WsMessage::text(i.to_string())).unwrap();
    }
    client.flush().unwrap();
    for i in 0..1000 {
        assert_eq!(next_message(&mut client), WsMessage::text(i.to_string()));
    }
}

/// One message in flight at a time through one worker: the worker answers while the
/// reactor is still handing its batch over, marked awake, so nobody wakes the reactor for
/// that answer. The reactor must see it before it sleeps; with no timer set (no pings) a
/// missed answer waits for the next message, which never comes, and the read times out.
#[test]
fn answers_given_during_the_hand_over_are_not_left_waiting() {
    let _w = Watchdog::new("echo_hand_over", Duration::from_secs(60));
    let server = echo_server(config().reactors(1).workers(1).ping_interval(None));
    let mut client = connect(server.local_addr());
    if let tungstenite::stream::MaybeTlsStream::Plain(s) = client.get_ref() {
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    }
    for i in 0..3000 {
        assert_echo(&mut client, &i.to_string());
    }
}

#[test]
fn fragmented_message_with_interleaved_pings() {
    let _w = Watchdog::new("fragments", Duration::from_secs(20));
    let server = echo_server(config());
    let mut s = raw_open(server.local_addr());
    let mut bytes = masked(false, 0x1, "frag".as_bytes());
    bytes.extend(masked(true, 0x9, b"p1"));
    bytes.extend(masked(false, 0x0, "men".as_bytes()));
    bytes.extend(masked(true, 0x9, b"p2"));
    bytes.extend(masked(true, 0x0, "ted é".as_bytes()));
    // Byte by byte, so every frame boundary and partial header is exercised.
    s.set_nodelay(true).unwrap();
    for b in &bytes {
        s.write_all(&[*b]).unwrap();
    }
    assert_eq!(read_frame(&mut s), Some((true, 0xA, b"p1".to_vec())));
    assert_eq!(read_frame(&mut s), Some((true, 0xA, b"p2".to_vec())));
    assert_eq!(read_frame(&mut s), Some((true, 0x1, "fragmented é".as_bytes().to_vec())));
}

#[test]
fn a_thousand_concurrent_connections_echo() {
    let _w = Watchdog::new("thousand", Duration::from_secs(60));
    let server = echo_server(config());
    let addr = server.local_addr();
    let threads: Vec<_> = (0..10)
        .map(|t| {
            std::thread::spawn(move || {
                let mut clients: Vec<_> = (0..100).map(|_| connect(addr)).collect();
                for round in 0..3 {
                    for (i, c) in clients.iter_mut().enumerate() {
                        c.send(WsMessage::text(format!("{t}-{i}-{round}"))).unwrap();
                    }
                    for (i, c) in clients.iter_mut().enumerate() {
                        assert_eq!(next_message(c), WsMessage::text(format!("{t}-{i}-{round}")));
                    }
                }
                clients
            })
        })
        .collect();
    let clients: Vec<_> = threads.into_iter().flat_map(|t| t.join().unwrap()).collect();
    assert_eq!(clients.len(), 1000);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while server.handle().connections() != 1000 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(server.handle().connections(), 1000);
}

#[test]
fn close_handshake_echoes_the_code_and_closes_tcp() {
    let _w = Watchdog::new("close_echo", Duration::from_secs(20));
    let server = echo_server(config());
    let mut s = raw_open(server.local_addr());
    let mut payload = 4000u16.to_be_bytes().to_vec();
    payload.extend_from_slice(b"bye");
    s.write_all(&masked(true, 0x8, &payload)).unwrap();
    assert_eq!(read_close_code(&mut s), Some(4000));
    assert!(sees_eof(&mut s));
    // An empty close is answered with an empty close.
    let mut s = raw_open(server.local_addr());
    s.write_all(&masked(true, 0x8, b"")).unwrap();
    assert_eq!(read_frame(&mut s), Some((true, 0x8, Vec::new())));
}

#[test]
fn tungstenite_close_is_answered() {
    let server = echo_server(config());
    let mut client = connect(server.local_addr());
    client.close(None).unwrap();
    loop {
        match client.read() {
            Ok(_) => continue,
            Err(tungstenite::Error::ConnectionClosed) => break,
            Err(e) => panic!("unexpected {e}"),
        }
    }
}
