//! `send` against the discard sink: the generator's own ceiling, and saturation metering.

mod util;

use std::time::Duration;

use util::{Watchdog, run, serial, sink_server};
use wsloop_loadtest::sink::SinkMode;

#[test]
fn send_blasts_the_sink_and_reports_saturation() {
    let _w = Watchdog::new("send_blasts_the_sink", Duration::from_secs(60));
    let _s = serial();
    let server = sink_server(SinkMode::Discard);
    let url = server.url("/");
    let r = run(
        "send",
        &["send", "--url", &url, "-c", "2", "-d", "1.2", "--close-timeout", "0.2"],
        Duration::from_secs(30),
    );
    r.assert_ok();
    assert_eq!(r.u("/connections/opened"), 2);
    assert!(r.u("/messages/sent") > 10_000, "{}", r.stdout);
    assert!(r.f("/throughput/sent_per_sec") > 10_000.0);
    let generator = r.json()["generator"].as_array().expect("generator");
    assert_eq!(generator.len(), 1);
    // Writing as fast as possible: the thread never idles.
    assert!(generator[0]["busy"].as_f64().unwrap_or(0.0) > 0.5, "{}", r.stdout);
}
