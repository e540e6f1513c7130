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

/// Two independent (unclustered) fan-out servers: subscribers spread over both `--url`s,
/// and a message reaches only the node it was published on, so the per-node counts show
/// exactly which node missed what.
#[test]
fn broadcast_over_two_urls_counts_deliveries_per_node() {
    let _w = Watchdog::new("broadcast_two_urls", Duration::from_secs(90));
    let _s = serial();
    let (a, b) = (broadcast_server(), broadcast_server());
    let (url_a, url_b) = (a.url("/broadcast"), b.url("/broadcast"));
    // 50 msg/s for 1 s = 50 messages; 20 subscribers, 10 on each server.
    let common = ["-c", "20", "--rate", "50", "-d", "1", "-t", "2", "--drain", "1"];

    // One sender, on the first URL: node 1 gets nothing.
    let mut args = vec!["broadcast", "--url", &url_a, "--url", &url_b];
    args.extend_from_slice(&common);
    let r = run("broadcast-two-urls", &args, Duration::from_secs(30));
    assert_eq!(r.code, Some(3), "{}", r.stdout);
    assert_eq!(r.u("/broadcast/published"), 50);
    assert_eq!(r.u("/broadcast/subscribers"), 20);
    assert_eq!(r.u("/broadcast/delivered"), 500);
    assert_eq!(r.u("/broadcast/missing"), 500);
    assert_eq!(r.u("/broadcast/nodes/0/subscribers"), 10);
    assert_eq!(r.u("/broadcast/nodes/0/delivered"), 500);
    assert_eq!(r.u("/broadcast/nodes/0/missing"), 0);
    assert_eq!(r.u("/broadcast/nodes/1/subscribers"), 10);
    assert_eq!(r.u("/broadcast/nodes/1/delivered"), 0);
    assert_eq!(r.u("/broadcast/nodes/1/missing"), 500);
    assert_eq!(r.json().pointer("/urls/1").and_then(|v| v.as_str()), Some(url_b.as_str()));

    // One sender per URL, publishing round-robin: each node gets every other message.
    let mut args = vec!["broadcast", "--url", &url_a, "--url", &url_b];
    args.extend_from_slice(&["--sender-url", &url_a, "--sender-url", &url_b]);
    args.extend_from_slice(&common);
    let r = run("broadcast-two-senders", &args, Duration::from_secs(30));
    assert_eq!(r.code, Some(3), "{}", r.stdout);
    assert_eq!(r.u("/broadcast/published"), 50);
    assert_eq!(r.u("/broadcast/sender_echoes"), 50);
    assert_eq!(r.u("/connections/opened"), 22);
    for node in 0..2 {
        assert_eq!(r.u(&format!("/broadcast/nodes/{node}/expected")), 500);
        assert_eq!(r.u(&format!("/broadcast/nodes/{node}/delivered")), 250);
        assert_eq!(r.u(&format!("/broadcast/nodes/{node}/missing")), 250);
        assert_eq!(r.u(&format!("/broadcast/nodes/{node}/duplicates")), 0);
    }
    assert!(r.stdout.contains("node 1"), "{}", r.stdout);
}
