//! `--procs` and `--source`: worker processes merged into one result.

mod util;

use std::time::Duration;

use util::{Watchdog, echo_server, run, serial};

#[test]
fn two_worker_processes_merge_exactly() {
    let _w = Watchdog::new("two_worker_processes_merge_exactly", Duration::from_secs(90));
    let _s = serial();
    let server = echo_server();
    let url = server.url("/");
    let r = run(
        "procs-rate",
        &[
            "rate",
            "--url",
            &url,
            "-c",
            "10",
            "-i",
            "20",
            "-d",
            "1",
            "--procs",
            "2",
            "--source",
            "127.0.0.1,127.0.0.2",
        ],
        Duration::from_secs(45),
    );
    r.assert_ok();
    r.assert_all_answered();
    assert_eq!(r.u("/connections/opened"), 10);
    // 10 connections × 50 messages, split over the two workers.
    assert_eq!(r.u("/messages/sent"), 500);
    assert_eq!(r.u("/latency_us/count"), 500);
    let generator = r.json()["generator"].as_array().expect("generator");
    assert_eq!(generator.len(), 2);
    let workers: Vec<u64> = generator.iter().filter_map(|g| g["worker"].as_u64()).collect();
    assert!(workers.contains(&0) && workers.contains(&1), "{workers:?}");
}

#[test]
fn hold_over_processes_and_sources() {
    let _w = Watchdog::new("hold_over_processes_and_sources", Duration::from_secs(90));
    let _s = serial();
    let server = echo_server();
    let url = server.url("/");
    let r = run(
        "procs-hold",
        &[
            "hold",
            "--url",
            &url,
            "-c",
            "400",
            "-d",
            "0.5",
            "--procs",
            "2",
            "--source",
            "127.0.0.1,127.0.0.2,127.0.0.3",
        ],
        Duration::from_secs(45),
    );
    r.assert_ok();
    assert_eq!(r.u("/connections/opened"), 400);
    assert_eq!(r.u("/connections/open_at_end"), 400);
}
