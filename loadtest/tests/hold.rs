//! `hold` against the test echo server: every connection held, server RSS sampled.

mod util;

use std::time::Duration;

use util::{Watchdog, echo_server, run, serial};

#[test]
fn hold_keeps_every_connection_open_and_measures_rss() {
    let _w = Watchdog::new("hold_keeps_every_connection_open", Duration::from_secs(60));
    let _s = serial();
    let server = echo_server();
    let url = server.url("/");
    let pid = server.pid().to_string();
    let r = run(
        "hold",
        &["hold", "--url", &url, "-c", "300", "-d", "1", "-t", "2", "--server-pid", &pid],
        Duration::from_secs(30),
    );
    r.assert_ok();
    assert_eq!(r.u("/connections/opened"), 300);
    assert_eq!(r.u("/connections/open_at_end"), 300);
    assert_eq!(r.u("/connections/closed_by_server"), 0);
    assert_eq!(r.u("/messages/sent"), 0);
    assert!(r.u("/memory/rss_before") > 0);
    assert!(r.u("/memory/rss_after") > 0);
    assert!(r.json()["memory"]["bytes_per_connection"].is_number());
    let open = r.json()["timeline"][0]["open"].as_u64().expect("open gauge");
    assert_eq!(open, 300);
}

#[test]
fn a_long_on_open_text_answered_by_an_echo_opens_every_connection() {
    let _w = Watchdog::new("a_long_on_open_text_opens_every_connection", Duration::from_secs(60));
    let _s = serial();
    let server = echo_server();
    let url = server.url("/");
    // Long enough to hold a binary stamp's 16 bytes: its echo is still the session's
    // answer, so each connection stops waiting and makes room for the next handshake.
    let login = format!("login {{conn}} {}", "x".repeat(1200));
    let r = run(
        "hold-on-open",
        &[
            "hold",
            "--url",
            &url,
            "-c",
            "1000",
            "-d",
            "0.5",
            "--on-open",
            &login,
            "--on-open-wait",
            "1",
            "--connect-concurrency",
            "100",
        ],
        Duration::from_secs(30),
    );
    r.assert_ok();
    assert_eq!(r.u("/connections/opened"), 1000, "{}", r.stdout);
    assert_eq!(r.u("/connections/open_at_end"), 1000);
    assert_eq!(r.u("/counters/session_replies"), 1000);
    assert_eq!(r.u("/messages/unstamped"), 0);
}
