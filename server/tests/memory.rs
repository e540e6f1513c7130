//! Memory per idle connection: the `wsloop` binary as a child process, 10,000 open
//! connections held idle, the RSS growth read from `/proc/<pid>/status`.

#[path = "../../tests/util/mod.rs"]
mod util;

use std::time::Duration;

use util::*;

const CONNECTIONS: usize = 10_000;
const MAX_BYTES_PER_CONN: usize = 2048;

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
    let conns = open_many(addr, &request(addr, ""), CONNECTIONS, 500, |_, _| {});
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
