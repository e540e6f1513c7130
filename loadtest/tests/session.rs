//! Sessions a real server needs: headers, a subprotocol, `--on-open` messages, payloads
//! from a template; and the global `rate --rate`.

mod util;

use std::time::Duration;

use util::{Watchdog, echo_server, login_server, run, serial};

#[test]
fn a_login_session_then_templated_messages() {
    let _w = Watchdog::new("a_login_session_then_templated_messages", Duration::from_secs(60));
    let _s = serial();
    let server = login_server(Duration::ZERO);
    let url = server.url("/");
    let session = [
        "echo",
        "--url",
        &url,
        "-c",
        "6",
        "-w",
        "2",
        "-d",
        "0.5",
        "--header",
        "Authorization: Bearer let-me-in",
        "--subprotocol",
        "chat.v1",
        "--on-open",
        "login user-{conn}",
        "--payload-template",
        r#"{"say":"{stamp}","n":{n}}"#,
    ];
    let r = run("login", &session, Duration::from_secs(30));
    r.assert_ok();
    r.assert_all_answered();
    assert_eq!(r.u("/connections/opened"), 6);
    assert_eq!(r.u("/counters/session_sent"), 6);
    // The six `ok user-N` answers are the session's, not unstamped load.
    assert_eq!(r.u("/counters/session_replies"), 6);
    assert!(r.u("/messages/received") > 12, "{}", r.stdout);
    assert_eq!(r.json()["settings"]["template"], true);

    // Without the header the server refuses every upgrade.
    let mut no_auth: Vec<&str> = session.to_vec();
    no_auth.drain(9..11);
    let r = run("login-refused", &no_auth, Duration::from_secs(30));
    assert_eq!(r.code, Some(3), "{}", r.stdout);
    assert_eq!(r.u("/connections/failures/http/401"), 6);
}

#[test]
fn the_run_waits_for_a_slow_login_with_on_open_wait() {
    let _w = Watchdog::new("the_run_waits_for_a_slow_login", Duration::from_secs(60));
    let _s = serial();
    // Logins complete 300 ms after they arrive: without waiting, the first messages are
    // refused ("log in first") and never echoed.
    let server = login_server(Duration::from_millis(300));
    let url = server.url("/");
    let args = [
        "echo",
        "--url",
        &url,
        "-c",
        "4",
        "-d",
        "0.5",
        "--header",
        "Authorization: Bearer let-me-in",
        "--on-open",
        "login u{conn}",
    ];
    let r = run("no-wait", &args, Duration::from_secs(30));
    assert_eq!(r.code, Some(3), "{}", r.stdout);
    assert!(r.u("/messages/unstamped") > 0, "{}", r.stdout);
    let mut waiting = args.to_vec();
    waiting.extend(["--on-open-wait", "1"]);
    let r = run("wait", &waiting, Duration::from_secs(30));
    r.assert_ok();
    r.assert_all_answered();
    assert_eq!(r.u("/counters/session_replies"), 4);
}

#[test]
fn a_template_without_a_stamp_cannot_time_answers() {
    let r = run(
        "no-stamp",
        &["echo", "--url", "ws://127.0.0.1:9/", "--payload-template", "hello {n}"],
        Duration::from_secs(10),
    );
    assert_eq!(r.code, Some(2));
    assert!(r.stderr.contains("needs {stamp}"), "{}", r.stderr);
}

#[test]
fn a_global_rate_is_spread_over_the_connections() {
    let _w = Watchdog::new("a_global_rate_is_spread_over_the_connections", Duration::from_secs(60));
    let _s = serial();
    let server = echo_server();
    let url = server.url("/");
    let r = run(
        "global-rate",
        &["rate", "--url", &url, "-c", "10", "--rate", "400/s", "-d", "1"],
        Duration::from_secs(30),
    );
    r.assert_ok();
    r.assert_all_answered();
    // 10 connections, each every 25 ms, for 1 s: exactly 400 sends, all timed.
    assert_eq!(r.u("/messages/sent"), 400);
    assert_eq!(r.u("/latency_us/count"), 400);
    assert_eq!(r.f("/settings/interval_ms"), 25.0);
    assert_eq!(r.f("/settings/rate"), 400.0);
}
