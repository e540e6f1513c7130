//! One scenario against a server that is not ours: the tokio-tungstenite peer from
//! `shared/peers` (skipped, with the reason, when its binary is not built).

mod util;

use std::time::Duration;

use util::{Watchdog, peer_echo_server, run, serial};

#[test]
fn echo_drives_the_tokio_tungstenite_peer() {
    let _w = Watchdog::new("echo_drives_the_tokio_tungstenite_peer", Duration::from_secs(60));
    let _s = serial();
    let Some(server) = peer_echo_server() else { return };
    let url = server.url("/");
    let r = run(
        "peer-echo",
        &["echo", "--url", &url, "-c", "10", "-w", "8", "-d", "1"],
        Duration::from_secs(30),
    );
    r.assert_ok();
    r.assert_all_answered();
    assert_eq!(r.u("/connections/opened"), 10);
    assert!(r.u("/messages/received") > 0);
}
