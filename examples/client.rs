//! A client connection with reconnect:
//! `cargo run --release --example client -- ws://127.0.0.1:9001 [--count N]
//! [--interval-ms M] [--ca PEM] [--compression]`.
//!
//! Sends N numbered text messages (`msg 0`, `msg 1`, ...), one every M ms, prints each
//! message it receives as `recv <text>` and `reconnecting in <ms> ms (attempt <n>)` when
//! the connection drops. Messages sent while it is down are held and written when it
//! comes back; after a reconnect it sends again those not yet echoed (one in flight when
//! the server went away may be lost). Exits 0 once it has received N distinct echoes.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use wsloop::{ClientOptions, Config, Event, Message, SendErrorKind, Server};

struct Args {
    url: String,
    count: usize,
    interval: Duration,
    ca: Option<String>,
    compression: bool,
}

fn args() -> Result<Args, String> {
    let mut args = std::env::args().skip(1);
    let mut parsed = Args {
        url: String::new(),
        count: 10,
        interval: Duration::from_millis(100),
        ca: None,
        compression: false,
    };
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value"));
        match arg.as_str() {
            "--count" => {
                parsed.count = value("--count")?.parse().map_err(|e| format!("--count: {e}"))?
            }
            "--interval-ms" => {
                let ms =
                    value("--interval-ms")?.parse().map_err(|e| format!("--interval-ms: {e}"))?;
                parsed.interval = Duration::from_millis(ms);
            }
            "--ca" => parsed.ca = Some(value("--ca")?),
            "--compression" => parsed.compression = true,
            url if !url.starts_with("--") && parsed.url.is_empty() => parsed.url = url.to_owned(),
            other => return Err(format!("unexpected argument {other}")),
        }
    }
    if parsed.url.is_empty() {
        return Err(
            "usage: client URL [--count N] [--interval-ms M] [--ca PEM] [--compression]".into()
        );
    }
    Ok(parsed)
}

fn main() {
    let args = match args() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    std::process::exit(run(args));
}

fn run(args: Args) -> i32 {
    // A runtime for the client side: one reactor, on a loopback port nobody is told of.
    let config = Config::default().addr("127.0.0.1:0").reactors(1);
    let (server, mut events) = match Server::start_with_events(config) {
        Ok(started) => started,
        Err(e) => {
            eprintln!("cannot start: {e}");
            return 1;
        }
    };
    let handle = server.handle();
    let mut options = ClientOptions::new().compression(args.compression);
    if let Some(path) = &args.ca {
        match std::fs::read(path) {
            Ok(pem) => options = options.ca_pem(pem),
            Err(e) => {
                eprintln!("--ca {path}: {e}");
                return 2;
            }
        }
    }
    let id = match handle.connect(&args.url, options) {
        Ok(id) => id,
        Err(e) => {
            eprintln!("cannot connect to {}: {e}", args.url);
            return 2;
        }
    };
    let mut echoed = BTreeSet::new();
    let mut sent = 0;
    let mut next_send = Instant::now();
    let mut reconnected = false;
    while echoed.len() < args.count {
        if sent < args.count && Instant::now() >= next_send {
            match handle.send(id, format!("msg {sent}")) {
                // Held offline past its bound: sent again after the reconnect.
                Ok(()) | Err(wsloop::SendError { kind: SendErrorKind::OfflineQueueFull, .. }) => {}
                Err(e) => eprintln!("send msg {sent}: {e}"),
            }
            sent += 1;
            next_send += args.interval;
        }
        let wait = if sent < args.count {
            next_send.saturating_duration_since(Instant::now())
        } else {
            Duration::from_millis(500)
        };
        let Some(event) = events.recv_timeout(wait) else { continue };
        match event {
            Event::Connect(info) => {
                println!("connected to {} ({})", args.url, info.remote_addr);
                if std::mem::take(&mut reconnected) {
                    for n in (0..sent).filter(|n| !echoed.contains(n)) {
                        let _ = handle.send(id, format!("msg {n}"));
                    }
                }
            }
            Event::Message { message: Message::Text(text), .. } => {
                println!("recv {text}");
                if let Some(n) = text.strip_prefix("msg ").and_then(|n| n.parse::<usize>().ok()) {
                    echoed.insert(n);
                }
            }
            Event::Message { message: Message::Binary(data), .. } => {
                println!("recv <{} bytes>", data.len());
            }
            Event::Reconnecting { attempt, retry_in, reason, .. } => {
                println!("reconnecting in {} ms (attempt {attempt})", retry_in.as_millis());
                eprintln!("  after {reason:?}");
                reconnected = true;
            }
            Event::Disconnect { reason, .. } => {
                eprintln!("disconnected for good: {reason:?}");
                return 1;
            }
            _ => {}
        }
    }
    let _ = handle.close(id, wsloop::CloseCode::NORMAL, "done");
    server.stop();
    0
}
