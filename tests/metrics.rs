//! `/metrics` over a real socket: the Prometheus text format 0.0.4 and counters that move
//! with real traffic.

mod util;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use tungstenite::protocol::CloseFrame;
use tungstenite::protocol::frame::coding::CloseCode as WsCloseCode;
use util::*;

/// The value of the sample `series` (name with labels, exactly as written).
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// Every sample line is `name{labels} value`, and every name belongs to a family with
/// HELP and TYPE lines before it.
fn assert_well_formed(text: &str) {
    let mut typed = HashSet::new();
    let mut helped = HashSet::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            assert!(["counter", "gauge", "histogram"].contains(&kind), "{line}");
            assert!(typed.insert(name.to_owned()), "one TYPE per family: {line}");
        } else if let Some(rest) = line.strip_prefix("# HELP ") {
            helped.insert(rest.split_once(' ').unwrap().0.to_owned());
        } else {
            let (series, value) = line.rsplit_once(' ').unwrap();
            assert!(value.parse::<f64>().is_ok(), "{line}");
            let name = series.split('{').next().unwrap();
            assert!(name.starts_with("wsloop_"), "{line}");
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| name.strip_suffix(s).filter(|f| typed.contains(*f)))
                .unwrap_or(name);
            assert!(typed.contains(family) && helped.contains(family), "no TYPE/HELP: {line}");
        }
    }
}

#[test]
fn metrics_speak_prometheus_and_count_real_traffic() {
    let _w = Watchdog::new("metrics", Duration::from_secs(30));
    let server = echo_server(config());
    let addr = server.local_addr();
    let mut a = connect(addr);
    let mut b = connect(addr);
    assert_echo(&mut a, "one");
    assert_echo(&mut a, "two");
    assert_echo(&mut b, "three");
    a.close(Some(CloseFrame { code: WsCloseCode::Normal, reason: "".into() })).unwrap();
    let _ = a.read();
    assert_eq!(http(addr, "GET", "/nowhere", "Connection: Upgrade\r\n").status, 400);
    assert_eq!(http(addr, "GET", "/healthz", "").status, 200);

    let deadline = Instant::now() + Duration::from_secs(5);
    let text = loop {
        let answer = http(addr, "GET", "/metrics", "");
        assert_eq!(answer.status, 200);
        assert_eq!(answer.header("content-type"), Some("text/plain; version=0.0.4; charset=utf-8"));
        if sample(&answer.body, "wsloop_connections_open") == Some(1.0) || Instant::now() > deadline
        {
            break answer.body;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    println!("{text}");
    assert_well_formed(&text);
    assert_eq!(sample(&text, "wsloop_connections_open"), Some(1.0));
    assert_eq!(sample(&text, "wsloop_messages_received_total"), Some(3.0));
    assert_eq!(sample(&text, "wsloop_messages_sent_total"), Some(3.0));
    assert_eq!(sample(&text, "wsloop_closes_total{code=\"1000\"}"), Some(1.0));
    assert_eq!(sample(&text, "wsloop_handshake_failures_total{status=\"400\"}"), Some(1.0));
    assert_eq!(
        sample(&text, "wsloop_connections_rejected_total{reason=\"bad_handshake\"}"),
        Some(1.0)
    );
    assert!(sample(&text, "wsloop_received_bytes_total").unwrap() > 2.0 * 150.0);
    assert!(sample(&text, "wsloop_sent_bytes_total").unwrap() > 2.0 * 129.0);
    // Earlier requests to /metrics were answered and counted.
    assert!(sample(&text, "wsloop_http_responses_total{status=\"200\"}").unwrap() >= 1.0);
    let sockets: f64 = (0..2)
        .map(|r| sample(&text, &format!("wsloop_reactor_sockets{{reactor=\"{r}\"}}")).unwrap())
        .sum();
    assert!(sockets >= 1.0, "the open connection and this request's socket: {sockets}");
    let open: f64 = (0..2)
        .map(|r| {
            sample(&text, &format!("wsloop_reactor_connections_open{{reactor=\"{r}\"}}")).unwrap()
        })
        .sum();
    assert_eq!(open, 1.0, "per-reactor open connections add up");
    let mut all_turns = 0.0;
    for r in 0..2 {
        let count = format!("wsloop_reactor_turn_duration_seconds_count{{reactor=\"{r}\"}}");
        let inf =
            format!("wsloop_reactor_turn_duration_seconds_bucket{{reactor=\"{r}\",le=\"+Inf\"}}");
        assert_eq!(sample(&text, &count), sample(&text, &inf), "+Inf holds every turn");
        all_turns += sample(&text, &count).unwrap();
    }
    assert!(all_turns > 0.0, "turns are timed");
}
