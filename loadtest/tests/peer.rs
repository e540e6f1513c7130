//! Scenarios against servers that are not ours: the peers of `peers/` (built by
//! `scripts/build-peers.sh` when they are not built yet). The suite measures wsloop against
//! these, so each must echo what the generator sends.

mod util;

use std::time::Duration;

use util::{Peer, Watchdog, peer_echo_server, run, serial};

/// An echo run of 10 connections against `peer`, every message answered.
fn echo_is_answered(test: &str, peer: Peer, size: &str) {
    let server = peer_echo_server(peer);
    let url = server.url("/");
    let r = run(
        test,
        &["echo", "--url", &url, "-c", "10", "-w", "8", "-s", size, "-d", "1"],
        Duration::from_secs(30),
    );
    r.assert_ok();
    r.assert_all_answered();
    assert_eq!(r.u("/connections/opened"), 10);
    assert!(r.u("/messages/received") > 0);
}

#[test]
fn echo_drives_the_tokio_tungstenite_peer() {
    // Building the peers the first time takes minutes; later runs find them built.
    let _w = Watchdog::new("echo_drives_the_tokio_tungstenite_peer", Duration::from_secs(900));
    let _s = serial();
    echo_is_answered("peer-echo", Peer::TokioTungstenite, "32");
}

#[test]
fn echo_drives_the_uwebsockets_peer() {
    let _w = Watchdog::new("echo_drives_the_uwebsockets_peer", Duration::from_secs(900));
    let _s = serial();
    // Small messages, and ones larger than a socket read (several reads per frame).
    echo_is_answered("uws-echo-32", Peer::UWebSockets, "32");
    echo_is_answered("uws-echo-200k", Peer::UWebSockets, "200000");
}
