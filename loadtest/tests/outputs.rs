//! `--csv`, `--hgrm` and the `hold` memory timeline, from real runs.

mod util;

use std::time::Duration;

use util::{Watchdog, echo_server, run, scratch_dir, serial};

#[test]
fn csv_and_hgrm_describe_the_run() {
    let _w = Watchdog::new("csv_and_hgrm_describe_the_run", Duration::from_secs(60));
    let _s = serial();
    let server = echo_server();
    let url = server.url("/");
    let dir = scratch_dir("outputs-files");
    let csv = dir.join("run.csv");
    let hgrm = dir.join("run.hgrm");
    let (csv_s, hgrm_s) = (csv.display().to_string(), hgrm.display().to_string());
    let r = run(
        "outputs",
        &[
            "echo", "--url", &url, "-c", "4", "-w", "2", "-d", "2", "--csv", &csv_s, "--hgrm",
            &hgrm_s,
        ],
        Duration::from_secs(30),
    );
    r.assert_ok();
    let csv = std::fs::read_to_string(&csv).expect("--csv wrote a file");
    let rows: Vec<&str> = csv.lines().collect();
    assert_eq!(rows[0], wsloop_loadtest::csv::HEADER);
    assert_eq!(rows.len(), 3, "one row per second of the window: {csv}");
    // Echo sends at once, so the seconds' sends add up to what the window sent.
    let sent: u64 = rows[1..]
        .iter()
        .map(|row| row.split(',').nth(1).and_then(|v| v.parse::<u64>().ok()).expect("sent"))
        .sum();
    assert_eq!(sent, r.u("/counters/sent_measured"));
    let hgrm = std::fs::read_to_string(&hgrm).expect("--hgrm wrote a file");
    assert!(hgrm.starts_with("       Value     Percentile TotalCount 1/(1-Percentile)"));
    let count = r.u("/latency_us/count");
    assert!(hgrm.contains(&format!("Total count    = {count:>12}]")), "{hgrm}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn hold_draws_the_servers_memory_over_the_run() {
    let _w = Watchdog::new("hold_draws_the_servers_memory_over_the_run", Duration::from_secs(60));
    let _s = serial();
    let server = echo_server();
    let url = server.url("/");
    let pid = server.pid().to_string();
    let r = run(
        "hold-memory",
        &["hold", "--url", &url, "-c", "200", "-d", "1", "--server-pid", &pid],
        Duration::from_secs(30),
    );
    r.assert_ok();
    let samples = r.json()["memory_timeline"].as_array().expect("memory_timeline");
    assert!(samples.len() >= 4, "{samples:?}");
    assert!(samples.iter().any(|s| s["open"] == 200), "{samples:?}");
    let svg = r.svg.as_deref().expect("svg");
    assert!(svg.contains("server memory over the run"));
    assert!(svg.contains("server RSS, MiB") && svg.contains("connections open"));
}

#[test]
fn progress_is_one_plain_line_per_second_off_a_terminal() {
    let _w = Watchdog::new("progress_is_one_plain_line_per_second", Duration::from_secs(60));
    let _s = serial();
    let server = echo_server();
    let url = server.url("/");
    // Not through util::run, which passes --quiet: stderr is a pipe here, not a terminal.
    let out = std::process::Command::new(util::BIN)
        .args(["echo", "--url", &url, "-c", "4", "-d", "2.5", "--warmup", "0.5"])
        .output()
        .expect("the generator runs");
    assert_eq!(out.status.code(), Some(0));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().filter(|l| l.starts_with("echo  ")).collect();
    assert!((2..=5).contains(&lines.len()), "{stderr}");
    assert!(lines[0].starts_with("echo  opening  conns "), "{stderr}");
    // No terminal control sequences, and a p99 only once the window has samples.
    assert!(!stderr.contains('\u{1b}'), "{stderr:?}");
    assert!(
        lines.iter().any(|l| l.contains("/2.5 s  conns 4/4") && l.contains("p99 ")),
        "{stderr}"
    );
    assert!(lines.iter().all(|l| !l.contains("warmup") || !l.contains("p99")), "{stderr}");
}
