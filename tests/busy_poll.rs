//! Busy polling, seen from outside: a reactor with a window keeps running for that long
//! after a message and then sleeps, one without never spins, and messages echo in both
//! dispatch modes meanwhile. The server threads' CPU time comes from the kernel's
//! `/proc/self/task/TID/schedstat` (nanoseconds on a CPU). Wall-clock, so a smoke test
//! with wide margins; the window's logic is tested in virtual time in
//! src/reactor/busy_poll.rs.

mod util;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use util::*;
use wsloop::{Config, Dispatch, Server};

/// The threads of this process.
fn tids() -> HashSet<String> {
    let tasks = std::fs::read_dir("/proc/self/task").expect("/proc/self/task");
    tasks.filter_map(|t| t.ok()?.file_name().into_string().ok()).collect()
}

/// Starts an echo server; returns it with its threads (those it added to the process).
fn start(config: Config) -> (Server, Vec<String>) {
    let before = tids();
    let server = echo_server(config);
    let threads = tids().difference(&before).cloned().collect();
    (server, threads)
}

/// Nanoseconds the threads have run on a CPU.
fn cpu_ns(threads: &[String]) -> u64 {
    let ns = |tid: &String| {
        let stat = std::fs::read_to_string(format!("/proc/self/task/{tid}/schedstat")).ok()?;
        stat.split_whitespace().next()?.parse::<u64>().ok()
    };
    threads.iter().map(|tid| ns(tid).expect("schedstat")).sum()
}

/// The threads' CPU time over `window` of wall time, as a share of one core.
fn busy_share(threads: &[String], window: Duration) -> f64 {
    let (cpu, wall) = (cpu_ns(threads), Instant::now());
    std::thread::sleep(window);
    (cpu_ns(threads) - cpu) as f64 / wall.elapsed().as_nanos() as f64
}

/// Echoes `count` messages one at a time; returns the server threads' CPU share in the
/// `window` right after the last one.
fn share_after_echoes(config: Config, count: usize, window: Duration) -> f64 {
    let (server, threads) = start(config.reactors(1).workers(1));
    let mut client = connect(server.local_addr());
    for i in 0..count {
        assert_echo(&mut client, &format!("message {i}"));
    }
    busy_share(&threads, window)
}

#[test]
fn a_reactor_spins_for_its_window_after_messages_then_sleeps_and_without_one_never_spins() {
    let _w = Watchdog::new("busy poll", Duration::from_secs(60));
    let window = Duration::from_millis(400);

    let (server, threads) =
        start(config().reactors(1).dispatch(Dispatch::Inline).busy_poll(window));
    let mut client = connect(server.local_addr());
    assert_echo(&mut client, "wake up");
    let spinning = busy_share(&threads, Duration::from_millis(150));
    std::thread::sleep(window);
    let after = busy_share(&threads, Duration::from_millis(300));
    drop((client, server));
    assert!(spinning > 0.3, "inside the window the reactor runs: {spinning:.3} of a core");
    assert!(after < 0.05, "after the window the reactor sleeps: {after:.3} of a core");

    let quiet =
        share_after_echoes(config().dispatch(Dispatch::Inline), 20, Duration::from_millis(150));
    assert!(quiet < 0.05, "no window, no spinning: {quiet:.3} of a core");

    // Worker dispatch: messages pass through a worker while the reactor spins.
    let config = config().dispatch(Dispatch::Workers).busy_poll(window);
    let spinning = share_after_echoes(config, 200, Duration::from_millis(150));
    assert!(spinning > 0.3, "worker dispatch spins too: {spinning:.3} of a core");
}
