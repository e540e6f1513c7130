//! `churn` against the test echo server: every cycle opened, echoed and closed.

mod util;

use std::time::Duration;

use util::{Watchdog, echo_server, run, serial};

#[test]
fn churn_cycles_at_the_rate() {
    let _w = Watchdog::new("churn_cycles_at_the_rate", Duration::from_secs(60));
    let _s = serial();
    let server = echo_server();
    let url = server.url("/");
    // 100 opens/s for 1 s = exactly 100 cycles, 2 messages each.
    let r = run(
        "churn",
        &["churn", "--url", &url, "-c", "20", "--rate", "100", "--messages", "2", "-d", "1"],
        Duration::from_secs(30),
    );
    r.assert_ok();
    r.assert_all_answered();
    assert_eq!(r.u("/connections/attempted"), 100);
    assert_eq!(r.u("/connections/opened"), 100);
    assert_eq!(r.u("/connections/failed"), 0);
    assert_eq!(r.u("/counters/cycles"), 100);
    assert_eq!(r.u("/messages/sent"), 200);
    assert_eq!(r.u("/cycle_us/count"), 100);
    assert_eq!(r.u("/connections/closed_by_generator"), 100);
}
