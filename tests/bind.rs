//! Listening: a port another process (or socket) holds is an error, never a silent split,
//! while the reactors of one server share their port; `addr` takes host names.

mod util;

use std::net::TcpListener;
use std::time::Duration;

use util::*;
use wsloop::{Config, ConfigError, Error, Server};

#[test]
fn a_port_held_elsewhere_is_addr_in_use() {
    let _w = Watchdog::new("addr_in_use", Duration::from_secs(20));
    let first = echo_server(config().reactors(4));
    let port = first.local_addr().port();
    let second = Server::start(config().addr(("127.0.0.1", port)), Echo);
    match second {
        Err(Error::Bind { source, .. }) => {
            assert_eq!(source.kind(), std::io::ErrorKind::AddrInUse)
        }
        other => panic!("a second server on the same port must fail, got {other:?}"),
    }
    // A plain listener without SO_REUSEPORT, as another program would hold it.
    let held = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = held.local_addr().unwrap();
    assert!(matches!(Server::start(config().addr(addr), Echo), Err(Error::Bind { .. })));
    // The first server's four reactors still serve.
    for _ in 0..8 {
        assert_echo(&mut connect(first.local_addr()), "still mine");
    }
}

#[test]
fn addr_takes_host_names() {
    let _w = Watchdog::new("host_names", Duration::from_secs(20));
    let server = echo_server(config().addr("localhost:0"));
    assert!(server.local_addr().ip().is_loopback());
    assert_echo(&mut connect(server.local_addr()), "by name");
    let bad = Config::default().addr("no-such-host.invalid:9001");
    assert_eq!(bad.validate(), Err(ConfigError::Addr));
}
