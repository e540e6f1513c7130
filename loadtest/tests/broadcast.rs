//! `broadcast` against wsloop as a fan-out server (in-process, like the binary's
//! `/broadcast`): every delivery accounted for.

mod util;

use std::time::Duration;

use util::{Watchdog, broadcast_server, echo_server, run, serial};

#[test]
fn broadcast_delivers_every_message_to_every_subscriber() {
    let _w = Watchdog::new("broadcast_delivers_every_message", Duration::from_secs(60));
    let _s = serial();
    let server = broadcast_server();
    let url = server.url("/broadcast");
    // 50 msg/s for 1 s = exactly 50 messages, to 20 subscribers.
    let r = run(
        "broadcast",
        // A long drain: it ends as soon as every delivery came, and a loaded machine is slow.
        &[
            "broadcast",
            "--url",
            &url,
            "-c",
            "20",
            "--rate",
            "50",
            "-d",
            "1",
            "-t",
            "2",
            "--drain",
            "10",
        ],
        Duration::from_secs(30),
    );
    r.assert_ok();
    assert_eq!(r.u("/broadcast/published"), 50);
    assert_eq!(r.u("/broadcast/subscribers"), 20);
    assert_eq!(r.u("/broadcast/expected"), 1000);
    assert_eq!(r.u("/broadcast/delivered"), 1000);
    assert_eq!(r.u("/broadcast/missing"), 0);
    assert_eq!(r.u("/broadcast/duplicates"), 0);
    assert_eq!(r.u("/broadcast/sender_echoes"), 50);
    assert_eq!(r.u("/latency_us/count"), 1000);
    assert_eq!(r.u("/connections/opened"), 21);
}

#[test]
fn broadcast_on_an_echo_server_reports_missing_deliveries() {
    let _w = Watchdog::new("broadcast_missing", Duration::from_secs(60));
    let _s = serial();
    let server = echo_server();
    let url = server.url("/");
    let r = run(
        "broadcast-missing",
        &["broadcast", "--url", &url, "-c", "3", "--rate", "20", "-d", "0.5", "--drain", "0.2"],
        Duration::from_secs(30),
    );
    // Missing deliveries fail the run (exit 3) and the last line says so.
    assert_eq!(r.code, Some(3), "{}", r.stdout);
    assert_eq!(r.last_line(), "FAIL (exit 3): 30 of 30 deliveries missing");
    assert_eq!(r.u("/broadcast/published"), 10);
    assert_eq!(r.u("/broadcast/delivered"), 0);
    assert_eq!(r.u("/broadcast/missing"), 30);
    assert_eq!(r.u("/broadcast/sender_echoes"), 10);
}
