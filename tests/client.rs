//! Client connections (`Handle::connect`) against real servers: a tungstenite echo
//! server that is stopped and restarted under the client (backoff, re-joined topics,
//! the bounded offline queue), raw servers that answer the upgrade wrongly or vanish
//! mid-message, and wsloop's own server with permessage-deflate.

#[path = "util/peer.rs"]
mod peer;
mod util;

use std::time::{Duration, Instant};

use wsloop::{
    ClientOptions, CloseCode, Compression, ConnId, ConnectError, DisconnectReason, Event, Events,
    Message, Reconnect, SendErrorKind, Server,
};

use peer::{EchoPeer, raw_peer, switching, write};
use util::Watchdog;
use wsloop::protocol::client::ResponseError;

/// A wsloop server used only for its client side, with its events on a channel.
fn runtime() -> (Server, Events) {
    let config = util::config().compression(Compression::Shared);
    Server::start_with_events(config).expect("runtime starts")
}

fn next(events: &mut Events) -> Event {
    events.recv_timeout(Duration::from_secs(10)).expect("an event within 10 s")
}

fn expect_connect(events: &mut Events, id: ConnId) {
    match next(events) {
        Event::Connect(info) => assert_eq!(info.id, id),
        other => panic!("expected Connect, got {other:?}"),
    }
}

fn expect_text(events: &mut Events, id: ConnId, text: &str) {
    match next(events) {
        Event::Message { id: got, message } => {
            assert_eq!(got, id);
            assert_eq!(message, Message::Text(text.to_owned()));
        }
        other => panic!("expected a text of {} bytes, got {other:?}", text.len()),
    }
}

fn fast_reconnect() -> Reconnect {
    Reconnect {
        initial: Duration::from_millis(100),
        max: Duration::from_millis(400),
        ..Reconnect::default()
    }
}

#[test]
fn a_client_connection_talks_to_a_tungstenite_server_and_closes() {
    let _w = Watchdog::new("client_echo", Duration::from_secs(30));
    let peer = EchoPeer::start("127.0.0.1:0".parse().unwrap());
    let (server, mut events) = runtime();
    let handle = server.handle();
    let options = ClientOptions::new().header("X-Token", "t").protocol("chat");
    let id = handle.connect(&format!("ws://{}/feed?x=1", peer.addr), options).unwrap();
    match next(&mut events) {
        Event::Connect(info) => {
            assert_eq!(info.id, id);
            assert_eq!((info.path.as_str(), info.query.as_str()), ("/feed", "x=1"));
            assert_eq!(info.remote_addr, peer.addr);
        }
        other => panic!("expected Connect, got {other:?}"),
    }
    for i in 0..100 {
        handle.send(id, format!("msg {i}")).unwrap();
    }
    handle.send(id, vec![0u8, 1, 2, 255]).unwrap();
    for i in 0..100 {
        expect_text(&mut events, id, &format!("msg {i}"));
    }
    match next(&mut events) {
        Event::Message { message, .. } => assert_eq!(message, Message::Binary(vec![0, 1, 2, 255])),
        other => panic!("expected binary, got {other:?}"),
    }
    let big = "x".repeat(60_000);
    handle.send(id, big.clone()).unwrap();
    expect_text(&mut events, id, &big);
    handle.close(id, CloseCode::NORMAL, "bye").unwrap();
    match next(&mut events) {
        Event::Disconnect { id: got, reason } => {
            assert_eq!(got, id);
            assert_eq!(reason, DisconnectReason::ClosedByServer { code: CloseCode::NORMAL });
        }
        other => panic!("expected Disconnect, got {other:?}"),
    }
    let err = handle.send(id, "late").unwrap_err();
    assert_eq!(err.kind, SendErrorKind::UnknownConnection);
    server.stop();
    peer.stop();
}

#[test]
fn a_stopped_server_is_redialled_with_backoff_topics_rejoined_and_sends_held() {
    let _w = Watchdog::new("client_reconnect", Duration::from_secs(60));
    let peer = EchoPeer::start("127.0.0.1:0".parse().unwrap());
    let addr = peer.addr;
    let (server, mut events) = runtime();
    let handle = server.handle();
    // Room for exactly three short messages (each counted at its frame + 64 bytes).
    let options = ClientOptions::new()
        .topic("feed")
        .reconnect(Some(fast_reconnect()))
        .offline_queue_bytes(3 * (2 + 6 + 64));
    let id = handle.connect(&format!("ws://{addr}/"), options).unwrap();
    expect_connect(&mut events, id);
    handle.subscribe(id, "news").unwrap();
    assert_eq!((handle.topic_size("feed"), handle.topic_size("news")), (1, 1));
    handle.send(id, "before").unwrap();
    expect_text(&mut events, id, "before");

    peer.stop();
    // The drop, then failed attempts (nothing listens): attempts 1, 2, 3, ... with windows
    // 100, 200, 400, 400 ms.
    let mut seen = Vec::new();
    let mut last = Instant::now();
    while seen.len() < 5 {
        match next(&mut events) {
            Event::Reconnecting { id: got, attempt, retry_in, reason } => {
                assert_eq!(got, id);
                let gap = last.elapsed();
                last = Instant::now();
                eprintln!(
                    "reconnecting: attempt {attempt}, retry in {retry_in:?} ({gap:?} since the last event), {reason:?}"
                );
                // Each attempt came when the previous event said it would.
                if let Some((_, promised, _)) = seen.last() {
                    let promised: Duration = *promised;
                    assert!(gap + Duration::from_millis(2) >= promised, "{gap:?} < {promised:?}");
                    assert!(gap < promised + Duration::from_millis(300), "{gap:?} late");
                }
                seen.push((attempt, retry_in, reason));
            }
            other => panic!("expected Reconnecting, got {other:?}"),
        }
    }
    let windows = [100, 200, 400, 400, 400];
    for (i, (attempt, retry_in, _)) in seen.iter().enumerate() {
        assert_eq!(*attempt, i as u32 + 1);
        assert!(*retry_in <= Duration::from_millis(windows[i]), "{retry_in:?} over the window");
    }
    assert!(matches!(seen[0].2, DisconnectReason::Abnormal | DisconnectReason::Io(_)));
    assert!(
        seen[1..]
            .iter()
            .all(|s| s.2 == DisconnectReason::Io(std::io::ErrorKind::ConnectionRefused))
    );
    // While down: its topics are left, sends are held up to the bound, then refused.
    assert_eq!((handle.topic_size("feed"), handle.topic_size("news")), (0, 0));
    assert!(!handle.is_open(id));
    for text in ["held 1", "held 2", "held 3"] {
        handle.send(id, text).unwrap();
    }
    let over = handle.send(id, "held 4").unwrap_err();
    assert_eq!(over.kind, SendErrorKind::OfflineQueueFull);
    assert_eq!(over.message, Message::Text("held 4".into()));

    let peer = EchoPeer::start(addr);
    let started = Instant::now();
    loop {
        match next(&mut events) {
            Event::Reconnecting { .. } => continue,
            Event::Connect(info) => {
                assert_eq!(info.id, id, "the same id after the reconnect");
                break;
            }
            other => panic!("expected Connect, got {other:?}"),
        }
    }
    eprintln!("reopened {:?} after the server came back", started.elapsed());
    assert!(started.elapsed() < Duration::from_millis(1500));
    for text in ["held 1", "held 2", "held 3"] {
        expect_text(&mut events, id, text);
    }
    assert_eq!((handle.topic_size("feed"), handle.topic_size("news")), (1, 1));
    assert_eq!(handle.publish("news", "via topic"), 1);
    expect_text(&mut events, id, "via topic");
    handle.send(id, "after").unwrap();
    expect_text(&mut events, id, "after");
    server.stop();
    peer.stop();
}

/// A server that answers every upgrade with `answer` fails each attempt with `expected`;
/// with `max_attempts: 1` the second failure ends the connection.
fn refused_twice(answer: &'static str, offer_deflate: bool, expected: ResponseError) {
    let addr = raw_peer(move |stream, key| {
        let text = if answer.is_empty() {
            switching(key, "Sec-WebSocket-Extensions: permessage-deflate\r\n")
        } else {
            answer.replace("{ok}", &switching(key, ""))
        };
        write(stream, text.as_bytes());
        std::thread::sleep(Duration::from_millis(200));
    });
    let (server, mut events) = runtime();
    let reconnect = Reconnect { max_attempts: Some(1), ..fast_reconnect() };
    let options = ClientOptions::new().compression(offer_deflate).reconnect(Some(reconnect));
    let id = server.handle().connect(&format!("ws://{addr}/"), options).unwrap();
    let failed = DisconnectReason::HandshakeFailed(expected);
    match next(&mut events) {
        Event::Reconnecting { id: got, attempt: 1, reason, .. } => {
            assert_eq!((got, reason), (id, failed.clone()));
        }
        other => panic!("expected Reconnecting, got {other:?}"),
    }
    match next(&mut events) {
        Event::Disconnect { id: got, reason } => assert_eq!((got, reason), (id, failed)),
        other => panic!("expected Disconnect, got {other:?}"),
    }
    server.stop();
}

#[test]
fn a_bad_accept_key_fails_the_attempt() {
    let _w = Watchdog::new("bad_accept", Duration::from_secs(30));
    refused_twice(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: AAAAAAAAAAAAAAAAAAAAAAAAAAA=\r\n\r\n",
        false,
        ResponseError::BadAccept,
    );
}

#[test]
fn an_extension_not_offered_fails_the_attempt() {
    let _w = Watchdog::new("unoffered_extension", Duration::from_secs(30));
    refused_twice("", false, ResponseError::UnofferedExtension);
}

#[test]
fn a_status_other_than_101_fails_the_attempt() {
    let _w = Watchdog::new("status_403", Duration::from_secs(30));
    refused_twice(
        "HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n",
        false,
        ResponseError::Status(403),
    );
}

#[test]
fn a_server_that_vanishes_mid_message_is_redialled() {
    let _w = Watchdog::new("vanish", Duration::from_secs(30));
    let calls = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = calls.clone();
    let addr = raw_peer(move |stream, key| {
        write(stream, switching(key, "").as_bytes());
        if counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0 {
            // A text frame announcing 100 bytes, 10 of them sent, then gone.
            write(stream, &[0x81, 100]);
            write(stream, b"0123456789");
        } else {
            write(stream, &[0x81, 5]);
            write(stream, b"whole");
            std::thread::sleep(Duration::from_millis(500));
        }
    });
    let (server, mut events) = runtime();
    let options = ClientOptions::new().reconnect(Some(fast_reconnect()));
    let id = server.handle().connect(&format!("ws://{addr}/"), options).unwrap();
    expect_connect(&mut events, id);
    match next(&mut events) {
        Event::Reconnecting { attempt: 1, reason, .. } => {
            assert!(
                matches!(reason, DisconnectReason::Abnormal | DisconnectReason::Io(_)),
                "{reason:?}"
            );
        }
        other => panic!("expected Reconnecting, got {other:?}"),
    }
    expect_connect(&mut events, id);
    expect_text(&mut events, id, "whole");
    server.stop();
}

#[test]
fn without_reconnect_a_refused_connect_ends_with_disconnect() {
    let _w = Watchdog::new("refused", Duration::from_secs(30));
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let (server, mut events) = runtime();
    let id = server
        .handle()
        .connect(&format!("ws://{free}/"), ClientOptions::new().reconnect(None))
        .unwrap();
    match next(&mut events) {
        Event::Disconnect { id: got, reason } => {
            assert_eq!(got, id);
            assert_eq!(reason, DisconnectReason::Io(std::io::ErrorKind::ConnectionRefused));
        }
        other => panic!("expected Disconnect, got {other:?}"),
    }
    server.stop();
}

#[test]
fn a_silent_server_times_the_attempt_out() {
    let _w = Watchdog::new("connect_timeout", Duration::from_secs(30));
    let addr = raw_peer(|_, _| std::thread::sleep(Duration::from_secs(5)));
    let (server, mut events) = runtime();
    let options = ClientOptions::new().reconnect(None).connect_timeout(Duration::from_millis(300));
    let started = Instant::now();
    let id = server.handle().connect(&format!("ws://{addr}/"), options).unwrap();
    match next(&mut events) {
        Event::Disconnect { id: got, reason } => {
            assert_eq!((got, reason), (id, DisconnectReason::ConnectTimeout));
        }
        other => panic!("expected Disconnect, got {other:?}"),
    }
    let took = started.elapsed();
    // Deadlines are wheel ticks (100 ms) counted from the turn that dialled.
    assert!(took >= Duration::from_millis(200) && took < Duration::from_secs(2), "{took:?}");
    server.stop();
}

#[test]
fn closing_a_connection_that_is_down_ends_it() {
    let _w = Watchdog::new("close_while_down", Duration::from_secs(30));
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let (server, mut events) = runtime();
    let handle = server.handle();
    let slow = Reconnect { initial: Duration::from_secs(30), ..Reconnect::default() };
    let id = handle
        .connect(&format!("ws://{free}/"), ClientOptions::new().reconnect(Some(slow)))
        .unwrap();
    assert!(matches!(next(&mut events), Event::Reconnecting { attempt: 1, .. }));
    handle.send(id, "held").unwrap();
    handle.close(id, CloseCode::NORMAL, "").unwrap();
    match next(&mut events) {
        Event::Disconnect { id: got, reason } => {
            assert_eq!(
                (got, reason),
                (id, DisconnectReason::ClosedByServer { code: CloseCode::NORMAL })
            );
        }
        other => panic!("expected Disconnect, got {other:?}"),
    }
    assert_eq!(handle.send(id, "late").unwrap_err().kind, SendErrorKind::UnknownConnection);
    server.stop();
}

#[test]
fn host_names_are_resolved_and_bad_urls_refused() {
    let _w = Watchdog::new("resolve", Duration::from_secs(30));
    let peer = EchoPeer::start("127.0.0.1:0".parse().unwrap());
    let (server, mut events) = runtime();
    let handle = server.handle();
    let url = format!("ws://localhost:{}/", peer.addr.port());
    let id = handle.connect(&url, ClientOptions::new()).unwrap();
    expect_connect(&mut events, id);
    handle.send(id, "named").unwrap();
    expect_text(&mut events, id, "named");
    assert_eq!(
        handle.connect("http://x/", ClientOptions::new()),
        Err(ConnectError::UnsupportedScheme)
    );
    assert_eq!(handle.connect("ws://:80/", ClientOptions::new()), Err(ConnectError::InvalidUrl));
    let bad = ClientOptions::new().header("X", "a\r\nInjected: yes");
    assert_eq!(handle.connect(&url, bad), Err(ConnectError::InvalidHeader));
    let not_pem = ClientOptions::new().ca_pem("no certificate");
    assert_eq!(handle.connect("wss://x/", not_pem), Err(ConnectError::InvalidCa));
    server.stop();
    peer.stop();
}

#[test]
fn compressed_messages_go_both_ways_with_wsloops_own_server() {
    let _w = Watchdog::new("client_deflate", Duration::from_secs(30));
    let echo = util::echo_server(util::config().compression(Compression::Shared));
    let (server, mut events) = runtime();
    let handle = server.handle();
    let url = format!("ws://{}/", echo.local_addr());
    let id = handle.connect(&url, ClientOptions::new().compression(true)).unwrap();
    expect_connect(&mut events, id);
    let text = "compress me ".repeat(1000);
    for _ in 0..3 {
        handle.send(id, text.clone()).unwrap();
    }
    for _ in 0..3 {
        expect_text(&mut events, id, &text);
    }
    let stats = echo.handle().stats();
    assert!(stats.bytes_in < 3 * text.len() as u64 / 4, "compressed on the wire: {stats:?}");
    server.stop();
    echo.stop();
}

/// A `wss://` server of wsloop's own with a certificate for `localhost` made here; its
/// certificate as PEM.
fn wss_echo(config: wsloop::Config) -> (Server, String) {
    let made = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let (chain, key) = (made.cert.pem(), made.signing_key.serialize_pem());
    let tls = wsloop::TlsConfig::from_pem(chain.as_bytes(), key.as_bytes()).unwrap();
    (util::echo_server(config.tls(tls)), chain)
}

#[test]
fn wss_connections_trust_a_custom_ca_and_compress() {
    let _w = Watchdog::new("client_wss", Duration::from_secs(30));
    let (echo, ca) = wss_echo(util::config().compression(Compression::Shared));
    let (server, mut events) = runtime();
    let handle = server.handle();
    let url = format!("wss://localhost:{}/", echo.local_addr().port());
    let options = ClientOptions::new().ca_pem(ca.as_bytes()).compression(true);
    let id = handle.connect(&url, options).unwrap();
    expect_connect(&mut events, id);
    let text = "over tls ".repeat(500);
    for _ in 0..3 {
        handle.send(id, text.clone()).unwrap();
    }
    for _ in 0..3 {
        expect_text(&mut events, id, &text);
    }
    server.stop();
    echo.stop();
}

#[test]
fn a_wss_server_the_client_does_not_trust_is_a_failed_attempt() {
    let _w = Watchdog::new("client_wss_untrusted", Duration::from_secs(30));
    let (echo, _) = wss_echo(util::config());
    let (server, mut events) = runtime();
    let handle = server.handle();
    let url = format!("wss://localhost:{}/", echo.local_addr().port());
    // The bundled roots do not know a certificate made a moment ago.
    let no_retry = ClientOptions::new().reconnect(None);
    let id = handle.connect(&url, no_retry).unwrap();
    match next(&mut events) {
        Event::Disconnect { id: got, reason } => {
            assert_eq!(got, id);
            assert_eq!(reason, DisconnectReason::Io(std::io::ErrorKind::InvalidData));
        }
        other => panic!("expected Disconnect, got {other:?}"),
    }
    server.stop();
    echo.stop();
}

#[test]
fn a_terminal_close_code_ends_the_connection_without_reconnecting() {
    let _w = Watchdog::new("terminal_code", Duration::from_secs(30));
    let addr = raw_peer(|stream, key| {
        write(stream, switching(key, "").as_bytes());
        // Close 4001 "banned", then wait for the client's answer before closing TCP.
        write(stream, &[0x88, 8, 0x0f, 0xa1, b'b', b'a', b'n', b'n', b'e', b'd']);
        let mut answer = [0u8; 64];
        let _ = std::io::Read::read(stream, &mut answer);
    });
    let (server, mut events) = runtime();
    let reconnect = Reconnect { terminal_codes: vec![CloseCode(4001)], ..fast_reconnect() };
    let options = ClientOptions::new().reconnect(Some(reconnect));
    let id = server.handle().connect(&format!("ws://{addr}/"), options).unwrap();
    expect_connect(&mut events, id);
    match next(&mut events) {
        Event::Disconnect { id: got, reason } => {
            assert_eq!(got, id);
            let code = CloseCode(4001);
            assert_eq!(reason, DisconnectReason::ClosedByPeer { code, reason: "banned".into() });
        }
        other => panic!("expected Disconnect, got {other:?}"),
    }
    server.stop();
}

#[test]
fn shutdown_ends_a_connection_waiting_to_reconnect() {
    let _w = Watchdog::new("shutdown_waiting", Duration::from_secs(30));
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let (server, mut events) = runtime();
    let handle = server.handle();
    let slow = Reconnect { initial: Duration::from_secs(30), ..Reconnect::default() };
    let options = ClientOptions::new().reconnect(Some(slow));
    let id = handle.connect(&format!("ws://{free}/"), options).unwrap();
    assert!(matches!(next(&mut events), Event::Reconnecting { attempt: 1, .. }));
    let started = Instant::now();
    handle.shutdown();
    match next(&mut events) {
        Event::Disconnect { id: got, reason } => {
            assert_eq!((got, reason), (id, DisconnectReason::Shutdown));
        }
        other => panic!("expected Disconnect, got {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(
        handle.connect(&format!("ws://{free}/"), ClientOptions::new()),
        Err(ConnectError::ServerStopped)
    );
    server.join();
}
