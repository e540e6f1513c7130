//! `connect` against the test echo server, and against servers that refuse.

mod util;

use std::net::TcpListener;
use std::time::Duration;

use util::{Watchdog, echo_server, fake_server, run, serial, sink_server};
use wsloop_loadtest::sink::SinkMode;

#[test]
fn connect_opens_and_times_every_connection() {
    let _w = Watchdog::new("connect_opens_and_times_every_connection", Duration::from_secs(60));
    let _s = serial();
    let server = echo_server();
    let url = server.url("/");
    let r = run(
        "connect",
        &["connect", "--url", &url, "-c", "60", "--rate", "300", "-t", "2"],
        Duration::from_secs(30),
    );
    r.assert_ok();
    assert_eq!(r.u("/connections/attempted"), 60);
    assert_eq!(r.u("/connections/opened"), 60);
    assert_eq!(r.u("/connections/failed"), 0);
    assert_eq!(r.u("/handshake_us/count"), 60);
    assert_eq!(r.u("/connect_us/count"), 60);
    // Paced at 300/s: about 0.2 s of opening.
    let rate = r.f("/throughput/connects_per_sec");
    assert!(rate > 100.0 && rate < 400.0, "{rate}");
    let opened: u64 = r.json()["timeline"]
        .as_array()
        .expect("timeline")
        .iter()
        .map(|p| p["opened"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(opened, 60);
}

#[test]
fn failures_are_counted_by_cause() {
    let _w = Watchdog::new("failures_are_counted_by_cause", Duration::from_secs(60));
    let _s = serial();
    // Refused: a port nobody listens on.
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("port");
    let url = format!("ws://127.0.0.1:{port}/");
    let r = run("refused", &["connect", "--url", &url, "-c", "5"], Duration::from_secs(30));
    assert_eq!(r.code, Some(3), "no connection opened: {}", r.stderr);
    assert!(r.last_line().starts_with("FAIL (exit 3): no connection opened"), "{}", r.stdout);
    assert_eq!(r.u("/connections/failed"), 5);
    assert_eq!(r.u("/connections/failures/refused"), 5);

    // An HTTP answer other than 101.
    let addr = fake_server("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n", 5);
    let url = format!("ws://{addr}/");
    let r = run("http404", &["connect", "--url", &url, "-c", "5"], Duration::from_secs(30));
    assert_eq!(r.u("/connections/failures/http/404"), 5);
    assert_eq!(r.u("/connections/opened"), 0);

    // A 101 with the wrong accept key.
    let addr = fake_server(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: AAAAAAAAAAAAAAAAAAAAAAAAAAA=\r\n\r\n",
        3,
    );
    let url = format!("ws://{addr}/");
    let r = run("badaccept", &["connect", "--url", &url, "-c", "3"], Duration::from_secs(30));
    assert_eq!(r.u("/connections/failures/handshake"), 3);
}

#[test]
fn invalid_deflate_parameters_fail_the_connection() {
    let _w = Watchdog::new("invalid_deflate_parameters", Duration::from_secs(60));
    let _s = serial();
    // RFC 7692 §5: a client fails the connection on parameters it cannot accept.
    let addr = fake_server(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {accept}\r\n\
         Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=99\r\n\r\n",
        4,
    );
    let url = format!("ws://{addr}/");
    let r = run(
        "deflate-bad",
        &["connect", "--url", &url, "-c", "4", "--compression"],
        Duration::from_secs(30),
    );
    assert_eq!(r.code, Some(3), "stderr: {}", r.stderr);
    assert_eq!(r.u("/connections/failures/deflate"), 4);
    assert_eq!(r.u("/connections/opened"), 0);
}

#[test]
fn compression_offer_refused_by_the_server_runs_uncompressed() {
    let _w = Watchdog::new("compression_offer_refused", Duration::from_secs(60));
    let _s = serial();
    // The sink never negotiates extensions.
    let server = sink_server(SinkMode::Echo);
    let url = server.url("/");
    let r = run(
        "compression-refused",
        &["echo", "--url", &url, "-c", "2", "-d", "0.5", "--compression"],
        Duration::from_secs(30),
    );
    r.assert_ok();
    r.assert_all_answered();
    assert_eq!(r.json()["settings"]["compression"], true);
}
