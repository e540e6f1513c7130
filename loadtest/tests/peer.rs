//! One scenario against a server that is not ours: the tokio-tungstenite peer of `peers/`
//! (built by `scripts/build-peers.sh` when it is not built yet).

mod util;

use std::time::Duration;

use util::{Watchdog, peer_echo_server, run, serial};

#[test]
fn echo_drives_the_tokio_tungstenite_peer() {
    // Building the peer the first time takes minutes; later runs find it built.
    let _w = Watchdog::new("echo_drives_the_tokio_tungstenite_peer", Duration::from_secs(900));
    let _s = serial();
    let server = peer_echo_server();
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
