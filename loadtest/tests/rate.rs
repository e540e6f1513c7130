//! `rate` against the test echo server: the schedule is exact.

mod util;

use std::time::Duration;

use util::{Watchdog, echo_server, run, serial};

#[test]
fn rate_sends_exactly_the_schedule() {
    let _w = Watchdog::new("rate_sends_exactly_the_schedule", Duration::from_secs(60));
    let _s = serial();
    let server = echo_server();
    let url = server.url("/");
    // 20 connections × one message every 10 ms × 1 s = exactly 2,000 messages.
    let r = run(
        "rate",
        &["rate", "--url", &url, "-c", "20", "-i", "10", "-d", "1"],
        Duration::from_secs(30),
    );
    r.assert_ok();
    r.assert_all_answered();
    assert_eq!(r.u("/messages/sent"), 2000);
    assert_eq!(r.u("/messages/received"), 2000);
    assert_eq!(r.u("/latency_us/count"), 2000);
    assert_eq!(r.u("/messages/skipped"), 0);
    let msgs = r.f("/throughput/msgs_per_sec");
    assert!((msgs - 2000.0).abs() < 1.0, "{msgs}");
    assert_eq!(r.json()["settings"]["interval_ms"], 10.0);
}
