//! Memory per idle connection: the `wsloop` binary as a child process, 10,000 open
//! connections held idle, the RSS growth read from `/proc/<pid>/status`.

mod util;

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use util::*;

const CONNECTIONS: usize = 10_000;
const MAX_BYTES_PER_CONN: usize = 2048;

/// Opens `n` connections with a raw handshake each, pipelined in batches.
fn open_idle(addr: SocketAddr, n: usize) -> Vec<TcpStream> {
    let req = request(addr, "");
    let mut conns = Vec::with_capacity(n);
    for chunk in 0..n.div_ceil(500) {
        let mut batch: Vec<TcpStream> = (0..500.min(n - chunk * 500)).map(|_| raw(addr)).collect();
        for s in &mut batch {
            s.write_all(req.as_bytes()).unwrap();
        }
        for s in &mut batch {
            assert_eq!(status_of(&read_head(s)), 101);
        }
        conns.extend(batch);
    }
    conns
}

#[test]
fn ten_thousand_idle_connections_cost_under_2_kib_each() {
    let _w = Watchdog::new("memory", Duration::from_secs(120));
    let (server, addr) = start_binary(&[]);
    let pid = server.pid();
    // Warm the reactors' and workers' own buffers with a little traffic first.
    let mut warm = connect(addr);
    for _ in 0..10 {
        assert_echo(&mut warm, &"w".repeat(1000));
    }
    std::thread::sleep(Duration::from_millis(200));
    let before = proc_bytes(pid, "VmRSS:");
    let conns = open_idle(addr, CONNECTIONS);
    std::thread::sleep(Duration::from_millis(500));
    let after = proc_bytes(pid, "VmRSS:");
    let per_conn = after.saturating_sub(before) / CONNECTIONS;
    println!(
        "idle connections: {CONNECTIONS}, rss before {before} B, after {after} B, {per_conn} B per connection"
    );
    assert!(per_conn < MAX_BYTES_PER_CONN, "{per_conn} bytes per idle connection");
    // All still alive and served.
    assert_echo(&mut warm, "alive");
    drop(conns);
}
