//! `wss://` against an independent TLS server: Python `websockets` with a certificate this
//! test makes (rcgen), with and without permessage-deflate (its defaults keep the context
//! both ways, unlike wsloop's shared mode), trusted with `--ca`, accepted with
//! `--insecure`, and refused by the bundled roots.

mod util;

use std::time::Duration;

use util::{
    Watchdog, python_wss_echo, run, scratch_dir, serial, test_certificate, tls_sink_server,
};
use wsloop_loadtest::sink::SinkMode;

#[test]
fn wss_with_compression_against_python_websockets() {
    let _w = Watchdog::new("wss_with_compression", Duration::from_secs(180));
    let _s = serial();
    let (cert, key) = test_certificate(&scratch_dir("wss-cert"), &["localhost"]);
    let server = python_wss_echo(&cert, &key, true);
    let url = format!("wss://localhost:{}/", server.addr().port());
    let ca = cert.to_str().expect("utf-8 path");
    for payload in ["text", "binary"] {
        let r = run(
            &format!("wss-deflate-{payload}"),
            &[
                "echo",
                "--url",
                &url,
                "--ca",
                ca,
                "--compression",
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
            ],
            Duration::from_secs(60),
        );
        r.assert_ok();
        r.assert_all_answered();
        let sent = r.u("/counters/sent");
        assert!(sent > 0);
        assert_eq!(r.u("/counters/compressed_sent"), sent);
        assert_eq!(r.u("/counters/compressed_received"), r.u("/counters/received"));
    }
    // Connections: full TLS handshakes (no resumption), all opened and closed cleanly.
    let r = run(
        "wss-connect",
        &["connect", "--url", &url, "--ca", ca, "--compression", "-c", "20"],
        Duration::from_secs(60),
    );
    r.assert_ok();
    assert_eq!(r.u("/connections/opened"), 20);
    assert_eq!(r.u("/counters/closed_by_server"), 0);
}

#[test]
fn wss_trust_ca_insecure_and_roots() {
    let _w = Watchdog::new("wss_trust", Duration::from_secs(180));
    let _s = serial();
    let (cert, key) = test_certificate(&scratch_dir("wss-trust-cert"), &["localhost", "127.0.0.1"]);
    let server = python_wss_echo(&cert, &key, false);
    let port = server.addr().port();
    // An IP address in the URL: checked against the certificate's IP name.
    let by_ip = format!("wss://127.0.0.1:{port}/");
    let ca = cert.to_str().expect("utf-8 path");
    let r = run(
        "wss-ip",
        &["rate", "--url", &by_ip, "--ca", ca, "-c", "5", "-i", "20", "-d", "1"],
        Duration::from_secs(60),
    );
    r.assert_ok();
    r.assert_all_answered();
    assert_eq!(r.u("/counters/compressed_sent"), 0);

    let r = run(
        "wss-insecure",
        &["echo", "--url", &by_ip, "--insecure", "-c", "2", "-d", "0.5"],
        Duration::from_secs(60),
    );
    r.assert_ok();
    r.assert_all_answered();

    // The bundled Mozilla roots do not know this certificate: every handshake fails.
    let r = run("wss-untrusted", &["connect", "--url", &by_ip, "-c", "3"], Duration::from_secs(60));
    assert_eq!(r.code, Some(3), "{}", r.stderr);
    assert_eq!(r.u("/connections/failures/tls"), 3);
    assert_eq!(r.u("/connections/opened"), 0);
}

#[test]
fn wss_refuses_a_certificate_for_another_name() {
    let _w = Watchdog::new("wss_wrong_name", Duration::from_secs(180));
    let _s = serial();
    // Made for `localhost` only; reached as 127.0.0.1, even trusted with --ca.
    let (cert, key) = test_certificate(&scratch_dir("wss-name-cert"), &["localhost"]);
    let server = python_wss_echo(&cert, &key, false);
    let by_ip = format!("wss://127.0.0.1:{}/", server.addr().port());
    let ca = cert.to_str().expect("utf-8 path");
    let r = run(
        "wss-wrong-name",
        &["connect", "--url", &by_ip, "--ca", ca, "-c", "2"],
        Duration::from_secs(60),
    );
    assert_eq!(r.code, Some(3), "{}", r.stderr);
    assert_eq!(r.u("/connections/failures/tls"), 2, "{}", r.stdout);
}

#[test]
fn wss_against_the_tls_sink_in_every_direction() {
    let _w = Watchdog::new("wss_tls_sink", Duration::from_secs(120));
    let _s = serial();
    let (cert, key) = test_certificate(&scratch_dir("wss-sink-cert"), &["localhost"]);
    let ca = cert.to_str().expect("utf-8 path");
    let echo = tls_sink_server(SinkMode::Echo, &cert, &key);
    let url = format!("wss://localhost:{}/", echo.addr().port());
    // Large messages cross many TLS records each way, and fill the socket buffers.
    let r = run(
        "wss-sink-echo",
        &["echo", "--url", &url, "--ca", ca, "-c", "8", "-w", "8", "-d", "1", "--size", "100000"],
        Duration::from_secs(60),
    );
    r.assert_ok();
    r.assert_all_answered();
    let discard = tls_sink_server(SinkMode::Discard, &cert, &key);
    let url = format!("wss://localhost:{}/", discard.addr().port());
    let r = run(
        "wss-sink-send",
        &["send", "--url", &url, "--ca", ca, "-c", "2", "-d", "1", "--size", "32"],
        Duration::from_secs(60),
    );
    r.assert_ok();
    assert!(r.u("/counters/sent") > 1000, "{}", r.stdout);
}
