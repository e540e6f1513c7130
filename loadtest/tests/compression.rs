//! `--compression` against wsloop, whose default is permessage-deflate in the shared mode
//! (no context takeover), and in its dedicated mode (context takeover both ways): every
//! message goes out compressed, every compressed answer is inflated, in every scenario.

mod util;

use std::time::Duration;

use util::{Run, Watchdog, broadcast_server, echo_server, echo_server_with, run, serial};
use wsloop::Compression;

/// Every data message sent was sent compressed, and every answer came compressed.
fn assert_all_compressed(r: &Run) {
    let sent = r.u("/counters/sent");
    assert!(sent > 0, "{}", r.stdout);
    assert_eq!(r.u("/counters/compressed_sent"), sent, "{}", r.stdout);
    assert_eq!(r.u("/counters/compressed_received"), r.u("/counters/received"), "{}", r.stdout);
    assert_eq!(r.json()["settings"]["compression"], true);
}

fn echo_compressed(test: &str, mode: Compression, payload: &str) -> Run {
    let server = echo_server_with(|c| c.compression(mode).compression_threshold(0));
    let url = server.url("/");
    let r = run(
        test,
        &[
            "echo",
            "--url",
            &url,
            "-c",
            "4",
            "-w",
            "4",
            "-d",
            "1",
            "--size",
            "600",
            "--payload",
            payload,
            "--compression",
        ],
        Duration::from_secs(30),
    );
    r.assert_ok();
    r.assert_all_answered();
    assert_all_compressed(&r);
    r
}

#[test]
fn echo_compresses_and_inflates_in_the_shared_mode() {
    let _w = Watchdog::new("echo_compresses_shared", Duration::from_secs(60));
    let _s = serial();
    echo_compressed("deflate-shared", Compression::Shared, "text");
    echo_compressed("deflate-shared-json", Compression::Shared, "json");
}

#[test]
fn echo_compresses_and_inflates_with_context_takeover() {
    let _w = Watchdog::new("echo_compresses_dedicated", Duration::from_secs(60));
    let _s = serial();
    // Window 10: the server limits the generator's window too (it offered
    // client_max_window_bits), so both sides keep a context of 1 KiB across messages.
    echo_compressed("deflate-dedicated", Compression::Dedicated { window_bits: 10 }, "binary");
}

#[test]
fn every_scenario_runs_compressed() {
    let _w = Watchdog::new("every_scenario_runs_compressed", Duration::from_secs(120));
    let _s = serial();
    // wsloop's defaults: shared mode, messages of 1024 bytes and more compressed.
    let server = echo_server();
    let url = server.url("/");
    let limit = Duration::from_secs(30);
    let size = ["--size", "2048", "--compression"];
    let args = |a: &[&'static str]| [a, &size[..]].concat();

    let r =
        run("deflate-rate", &args(&["rate", "-c", "10", "-i", "20", "-d", "1"]).with(&url), limit);
    r.assert_ok();
    r.assert_all_answered();
    assert_all_compressed(&r);

    let churn = args(&["churn", "-c", "10", "--rate", "50", "--messages", "2", "-d", "1"]);
    let r = run("deflate-churn", &churn.with(&url), limit);
    r.assert_ok();
    r.assert_all_answered();
    assert_all_compressed(&r);

    let hold = ["hold", "-c", "10", "-d", "0.5", "--compression"];
    let r = run("deflate-hold", &hold.with(&url), limit);
    r.assert_ok();
    assert_eq!(r.u("/connections/opened"), 10);

    let with_login = args(&["echo", "-c", "2", "-d", "0.5", "--on-open", "hello {conn}"]);
    let r = run("deflate-on-open", &with_login.with(&url), limit);
    r.assert_ok();
    assert_eq!(r.u("/counters/compressed_sent"), r.u("/counters/sent") + 2);

    let fan_out = broadcast_server();
    let url = fan_out.url("/broadcast");
    let broadcast = args(&["broadcast", "-c", "10", "--rate", "20", "-d", "1", "--drain", "10"]);
    let r = run("deflate-broadcast", &broadcast.with(&url), limit);
    r.assert_ok();
    assert_eq!(r.u("/broadcast/missing"), 0);
    assert_eq!(r.u("/broadcast/delivered"), r.u("/broadcast/expected"));
    assert_eq!(r.u("/counters/compressed_sent"), r.u("/broadcast/published"));
    assert!(r.u("/counters/compressed_received") >= r.u("/broadcast/delivered"));
}

/// Appends `--url URL` to a command line.
trait WithUrl {
    fn with<'a>(&'a self, url: &'a str) -> Vec<&'a str>;
}

impl<T: AsRef<[&'static str]>> WithUrl for T {
    fn with<'a>(&'a self, url: &'a str) -> Vec<&'a str> {
        let mut v: Vec<&'a str> = self.as_ref().to_vec();
        v.extend(["--url", url]);
        v
    }
}
