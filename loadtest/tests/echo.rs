//! `echo` against the test echo server: exact accounting, JSON, SVG.

mod util;

use std::time::Duration;

use util::{Watchdog, echo_server, run, serial};

#[test]
fn echo_window_counts_every_message() {
    let _w = Watchdog::new("echo_window_counts_every_message", Duration::from_secs(60));
    let _s = serial();
    let server = echo_server();
    let url = server.url("/");
    let r = run(
        "echo",
        &["echo", "--url", &url, "-c", "8", "-w", "4", "-d", "1", "--warmup", "0.3"],
        Duration::from_secs(30),
    );
    r.assert_ok();
    r.assert_all_answered();
    assert_eq!(r.u("/connections/opened"), 8);
    assert_eq!(r.u("/connections/failed"), 0);
    assert_eq!(r.u("/connections/open_at_end"), 8);
    assert_eq!(r.u("/connections/closed_by_server"), 0);
    let received = r.u("/messages/received");
    assert!(received > 8 * 4, "{}", r.stdout);
    // Only what was sent inside the window is measured; warmup traffic is not.
    let measured = r.u("/latency_us/count");
    assert_eq!(measured, r.u("/counters/received_measured"));
    assert!(measured > 0 && measured < received, "{measured} of {received}");
    assert!(r.f("/throughput/msgs_per_sec") > 0.0);
    assert!(r.f("/latency_us/p99_us") >= r.f("/latency_us/p50_us"));
    let timeline = r.json()["timeline"].as_array().expect("timeline");
    assert_eq!(timeline.len(), 1, "one bucket per second of the window");
    assert!(r.stdout.contains("all accounted for"));
}

#[test]
fn text_and_json_payloads_round_trip() {
    let _w = Watchdog::new("text_and_json_payloads_round_trip", Duration::from_secs(60));
    let _s = serial();
    let server = echo_server();
    let url = server.url("/");
    for (payload, size) in [("text", "40"), ("json", "200")] {
        let r = run(
            &format!("echo-{payload}"),
            &[
                "echo",
                "--url",
                &url,
                "-c",
                "4",
                "-w",
                "2",
                "-d",
                "0.5",
                "--payload",
                payload,
                "--size",
                size,
            ],
            Duration::from_secs(30),
        );
        r.assert_ok();
        r.assert_all_answered();
        assert!(r.u("/messages/received") > 0, "{payload}");
    }
}
