//! Thresholds and exit codes, against real servers: one that answers, one that refuses
//! half the connections, one killed in the middle of the run.

mod util;

use std::time::Duration;

use util::{Watchdog, echo_server, half_refusing_server, run, serial, sink_process, sink_server};
use wsloop_loadtest::sink::SinkMode;

#[test]
fn a_failed_threshold_exits_99_and_is_listed() {
    let _w = Watchdog::new("a_failed_threshold_exits_99_and_is_listed", Duration::from_secs(60));
    let _s = serial();
    let server = echo_server();
    let url = server.url("/");
    let args = ["echo", "--url", &url, "-c", "4", "-d", "0.5"];
    let mut failing = args.to_vec();
    failing.extend(["--threshold", "p99<1ns", "--threshold", "msgs_per_s>1"]);
    let r = run("threshold-fail", &failing, Duration::from_secs(30));
    assert_eq!(r.code, Some(99), "{}\n{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("FAILED  p99<1ns"), "{}", r.stdout);
    assert!(r.stdout.contains("passed  msgs_per_s>1"), "{}", r.stdout);
    assert!(r.last_line().starts_with("FAIL (exit 99): 1 of 2 thresholds failed: p99<1ns"));
    assert_eq!(r.json()["verdict"]["thresholds"][0]["passed"], false);

    let mut passing = args.to_vec();
    passing.extend(["--threshold", "p99<10s", "--threshold", "lost==0"]);
    let r = run("threshold-pass", &passing, Duration::from_secs(30));
    assert_eq!(r.code, Some(0), "{}\n{}", r.stdout, r.stderr);
    assert_eq!(r.last_line(), "PASS: 2 thresholds passed, run healthy");
}

#[test]
fn refused_connections_fail_the_run_unless_a_threshold_allows_them() {
    let _w = Watchdog::new("refused_connections_fail_the_run", Duration::from_secs(60));
    let _s = serial();
    let addr = half_refusing_server();
    let url = format!("ws://{addr}/");
    let r = run("half-refused", &["connect", "--url", &url, "-c", "20"], Duration::from_secs(30));
    assert_eq!(r.code, Some(3), "{}\n{}", r.stdout, r.stderr);
    assert_eq!(r.u("/connections/opened"), 10);
    assert_eq!(r.u("/connections/failed"), 10);
    assert!(
        r.last_line().starts_with("FAIL (exit 3): 10 of 20 connections failed: "),
        "{}",
        r.last_line()
    );
    let r = run(
        "half-refused-allowed",
        &["connect", "--url", &url, "-c", "20", "--threshold", "connect_failures<=10"],
        Duration::from_secs(30),
    );
    assert_eq!(r.code, Some(0), "{}\n{}", r.stdout, r.stderr);
}

#[test]
fn a_server_killed_mid_run_fails_the_run_and_says_so() {
    let _w = Watchdog::new("a_server_killed_mid_run", Duration::from_secs(60));
    let _s = serial();
    let (mut sink, url) = sink_process("echo");
    let pid = sink.id();
    let killer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(1500));
        let _ = sink.kill();
        let _ = sink.wait();
    });
    let r = run(
        "killed",
        &["echo", "--url", &url, "-c", "10", "-w", "4", "-d", "3"],
        Duration::from_secs(30),
    );
    let _ = killer.join();
    assert_eq!(r.code, Some(3), "sink {pid}\n{}\n{}", r.stdout, r.stderr);
    let last = r.last_line();
    assert!(last.starts_with("FAIL (exit 3): the server went away"), "{last}");
    assert!(last.contains("all 10 open connections were closed by the server"), "{last}");
    assert_eq!(r.u("/connections/closed_by_server"), 10);
}

#[test]
fn a_clean_run_passes_without_thresholds() {
    let _w = Watchdog::new("a_clean_run_passes_without_thresholds", Duration::from_secs(60));
    let _s = serial();
    let server = echo_server();
    let url = server.url("/");
    let r = run("clean", &["echo", "--url", &url, "-c", "4", "-d", "0.5"], Duration::from_secs(30));
    assert_eq!(r.code, Some(0), "{}\n{}", r.stdout, r.stderr);
    assert!(r.last_line().starts_with("PASS: "), "{}", r.last_line());
}

#[test]
fn connections_never_attempted_fail_the_run() {
    let _w = Watchdog::new("connections_never_attempted_fail_the_run", Duration::from_secs(60));
    let _s = serial();
    // The sink answers nothing: the two connections let in wait for a reply to their
    // login until the opening stage's time is up, and the other 18 are never tried.
    let server = sink_server(SinkMode::Discard);
    let url = server.url("/");
    let args = [
        "hold",
        "--url",
        &url,
        "-c",
        "20",
        "-d",
        "0.2",
        "--connect-concurrency",
        "2",
        "--connect-timeout",
        "1",
        "--on-open",
        "login",
        "--on-open-wait",
        "1",
    ];
    let r = run("never-attempted", &args, Duration::from_secs(30));
    assert_eq!(r.u("/connections/attempted"), 2, "{}", r.stdout);
    assert_eq!(r.code, Some(3), "{}\n{}", r.stdout, r.stderr);
    assert!(r.last_line().contains("only 2 of 20 connections were attempted"), "{}", r.stdout);
}
