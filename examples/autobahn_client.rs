//! Drives Autobahn's `wstest -m fuzzingserver` with wsloop's client role (the test command
//! runs it through `scripts/autobahn.sh client`):
//! `cargo run --release --example autobahn_client -- ws://127.0.0.1:9001 [--agent NAME]
//! [--compression]`.
//!
//! Asks the fuzzing server for its case count, then opens one client connection per
//! case (`/runCase?case=N&agent=NAME`, no reconnect) and echoes every message until the
//! server closes it, then asks for the reports (`/updateReports`).

use std::time::Duration;

use wsloop::{ClientOptions, Config, Event, Events, Handle, Message, Server};

fn main() {
    let mut args = std::env::args().skip(1);
    let mut url = String::new();
    let mut agent = "wsloop".to_owned();
    let mut compression = false;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--agent" => agent = args.next().unwrap_or(agent),
            "--compression" => compression = true,
            other => url = other.trim_end_matches('/').to_owned(),
        }
    }
    if url.is_empty() {
        eprintln!("usage: autobahn_client URL [--agent NAME] [--compression]");
        std::process::exit(2);
    }
    // Autobahn's largest messages are 16 MiB; its 9.* cases send them back to back.
    let config = Config::default()
        .addr("127.0.0.1:0")
        .reactors(1)
        .max_message_size(16 << 20)
        .max_backpressure(256 << 20);
    let (server, mut events) = Server::start_with_events(config).expect("runtime starts");
    let handle = server.handle();
    let options = ClientOptions::new().reconnect(None).compression(compression);
    let count = case_count(&handle, &mut events, &url, &options);
    println!("autobahn_client: {count} cases");
    for case in 1..=count {
        let target = format!("{url}/runCase?case={case}&agent={agent}");
        run(&handle, &mut events, &target, &options);
    }
    run(&handle, &mut events, &format!("{url}/updateReports?agent={agent}"), &options);
    server.stop();
}

fn case_count(handle: &Handle, events: &mut Events, url: &str, options: &ClientOptions) -> u32 {
    let id = handle.connect(&format!("{url}/getCaseCount"), options.clone()).expect("connect");
    let mut count = 0;
    while let Some(event) = events.recv_timeout(Duration::from_secs(30)) {
        match event {
            Event::Message { message: Message::Text(text), .. } => {
                count = text.trim().parse().expect("a case count");
            }
            Event::Disconnect { id: ended, .. } if ended == id => break,
            _ => {}
        }
    }
    count
}

/// One connection: echo until it ends.
fn run(handle: &Handle, events: &mut Events, target: &str, options: &ClientOptions) {
    let Ok(id) = handle.connect(target, options.clone()) else {
        eprintln!("autobahn_client: cannot connect to {target}");
        return;
    };
    while let Some(event) = events.recv_timeout(Duration::from_secs(120)) {
        match event {
            Event::Message { id: from, message } if from == id => {
                let _ = handle.send(id, message);
            }
            Event::Disconnect { id: ended, .. } if ended == id => return,
            _ => {}
        }
    }
    eprintln!("autobahn_client: {target} did not end within 120 s of quiet");
}
