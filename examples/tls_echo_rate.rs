//! Echo throughput over `wss://` against plain `ws://`, in one run: 32-byte messages, a
//! window of them in flight per connection, on two in-process servers alike but for TLS.
//!
//! ```text
//! cargo run --release --example tls_echo_rate -- [--connections 8] [--seconds 3] [--window 100] [--size 32]
//! ```
//! Each connection is a blocking tungstenite client on its own thread (over rustls for
//! `wss://`): it writes a window of messages, flushes once, reads the window back. The two
//! servers are measured in turn, twice each; the figure is the better of each pair, and
//! the ratio of the two. Clients and servers share the machine's cores, so the clients'
//! own TLS work is in the figure too.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rustls::pki_types::{CertificateDer, ServerName};
use wsloop::{Config, ConnId, Handle, Handler, Message, Server, TlsConfig};

struct Echo;

impl Handler for Echo {
    fn on_message(&self, handle: &Handle, id: ConnId, message: Message) {
        let _ = handle.send(id, message);
    }
}

struct Options {
    connections: usize,
    seconds: u64,
    window: usize,
    size: usize,
}

fn options() -> Result<Options, String> {
    let mut o = Options { connections: 8, seconds: 3, window: 100, size: 32 };
    let args: Vec<String> = std::env::args().skip(1).collect();
    for pair in args.chunks(2) {
        let value = pair.get(1).and_then(|v| v.parse().ok()).ok_or(format!("{pair:?}"))?;
        match pair[0].as_str() {
            "--connections" => o.connections = value,
            "--seconds" => o.seconds = value as u64,
            "--window" => o.window = value,
            "--size" => o.size = value,
            other => return Err(format!("unknown flag {other}")),
        }
    }
    Ok(o)
}

fn client_config(cert: &CertificateDer<'static>) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.clone()).expect("the test certificate");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("ring's protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    Arc::new(config)
}

/// Runs one connection's windows until `stop`, counting echoes into `count`.
fn pump<S: Read + Write>(
    mut ws: tungstenite::WebSocket<S>,
    o: &Options,
    stop: &AtomicBool,
    count: &AtomicU64,
) {
    let payload = vec![b'x'; o.size];
    while !stop.load(Ordering::Relaxed) {
        for _ in 0..o.window {
            ws.write(tungstenite::Message::binary(payload.clone())).expect("write");
        }
        ws.flush().expect("flush");
        let mut got = 0;
        while got < o.window {
            if let tungstenite::Message::Binary(_) = ws.read().expect("read") {
                got += 1;
            }
        }
        count.fetch_add(o.window as u64, Ordering::Relaxed);
    }
}

/// Echoes per second over `connections` clients of `addr` (TLS when `cert` is given).
fn measure(addr: SocketAddr, cert: Option<&CertificateDer<'static>>, o: &Options) -> f64 {
    let stop = AtomicBool::new(false);
    let count = AtomicU64::new(0);
    let tls = cert.map(client_config);
    std::thread::scope(|scope| {
        for _ in 0..o.connections {
            let (stop, count, tls) = (&stop, &count, tls.clone());
            scope.spawn(move || {
                let tcp = TcpStream::connect(addr).expect("connect");
                tcp.set_nodelay(true).expect("nodelay");
                match tls {
                    None => {
                        let url = format!("ws://{addr}/");
                        let (ws, _) = tungstenite::client(url.as_str(), tcp).expect("upgrade");
                        pump(ws, o, stop, count)
                    }
                    Some(config) => {
                        let name = ServerName::try_from("localhost").expect("a name");
                        let conn = rustls::ClientConnection::new(config, name).expect("tls");
                        let stream = rustls::StreamOwned::new(conn, tcp);
                        let url = format!("wss://localhost:{}/", addr.port());
                        let (ws, _) = tungstenite::client(url.as_str(), stream).expect("upgrade");
                        pump(ws, o, stop, count)
                    }
                }
            });
        }
        std::thread::sleep(Duration::from_millis(300));
        let (start, before) = (Instant::now(), count.load(Ordering::Relaxed));
        std::thread::sleep(Duration::from_secs(o.seconds));
        let done = count.load(Ordering::Relaxed) - before;
        stop.store(true, Ordering::Relaxed);
        done as f64 / start.elapsed().as_secs_f64()
    })
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let o = options()?;
    let made = rcgen::generate_simple_self_signed(vec!["localhost".into()])?;
    let cert = made.cert.der().clone();
    let tls = TlsConfig::from_pem(
        made.cert.pem().as_bytes(),
        made.signing_key.serialize_pem().as_bytes(),
    )?;
    let config = || Config::default().addr("127.0.0.1:0").reactors(1).workers(1);
    let plain = Server::start(config(), Echo)?;
    let secure = Server::start(config().tls(tls), Echo)?;
    let (mut ws, mut wss) = (0f64, 0f64);
    for _ in 0..2 {
        ws = ws.max(measure(plain.local_addr(), None, &o));
        wss = wss.max(measure(secure.local_addr(), Some(&cert), &o));
    }
    println!(
        "{} B echo, {} connections x {} in flight: ws {:.0} msg/s, wss {:.0} msg/s, wss/ws {:.2}",
        o.size,
        o.connections,
        o.window,
        ws,
        wss,
        wss / ws
    );
    Ok(())
}
