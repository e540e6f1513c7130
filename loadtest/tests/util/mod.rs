//! Shared helpers for the loadtest integration tests: the server under test (one place to
//! change it), running the generator binary with a time limit, reading its JSON, and
//! small fake servers for failure paths.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard, mpsc};
use std::time::{Duration, Instant};

use serde_json::Value;
use wsloop::{Config, ConnId, Handle, Handler, Message, Server};
use wsloop_loadtest::sink::{self, SinkConfig, SinkHandle, SinkMode};

/// The generator binary built by cargo for these tests.
pub const BIN: &str = env!("CARGO_BIN_EXE_wsloop-loadtest");

/// Load runs share two cores: one at a time per test binary.
static SERIAL: Mutex<()> = Mutex::new(());

/// Holds the per-binary lock for a test's duration (a poisoned lock is still a lock).
pub fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

/// Aborts the test process if the guard lives longer than `limit`.
pub struct Watchdog(mpsc::Sender<()>);

impl Watchdog {
    /// Starts the watchdog.
    pub fn new(name: &'static str, limit: Duration) -> Watchdog {
        let (tx, rx) = mpsc::channel::<()>();
        std::thread::spawn(move || {
            if let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(limit) {
                eprintln!("watchdog: test `{name}` still running after {limit:?}");
                std::process::abort();
            }
        });
        Watchdog(tx)
    }
}

/// A server the generator can be pointed at; stopped on drop.
pub enum TestServer {
    /// wsloop in-process.
    Wsloop(Option<Server>),
    /// The loadtest crate's own sink, in-process.
    Sink(Option<SinkHandle>),
    /// A peer binary from `peers/`.
    Peer(Child, SocketAddr),
}

impl TestServer {
    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        match self {
            TestServer::Wsloop(s) => s.as_ref().expect("running").local_addr(),
            TestServer::Sink(s) => s.as_ref().expect("running").addr,
            TestServer::Peer(_, a) => *a,
        }
    }

    /// `ws://addr/path`.
    pub fn url(&self, path: &str) -> String {
        format!("ws://{}{path}", self.addr())
    }

    /// The process id that holds the server's memory (this test process when in-process).
    pub fn pid(&self) -> u32 {
        match self {
            TestServer::Peer(c, _) => c.id(),
            _ => std::process::id(),
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        match self {
            TestServer::Wsloop(s) => {
                if let Some(s) = s.take() {
                    s.stop();
                }
            }
            TestServer::Sink(s) => {
                if let Some(s) = s.take() {
                    s.stop();
                }
            }
            TestServer::Peer(c, _) => {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
}

struct Echo;

impl Handler for Echo {
    fn on_message(&self, handle: &Handle, id: ConnId, message: Message) {
        let _ = handle.send(id, message);
    }
}

/// THE server the scenario tests run against: wsloop in-process on 127.0.0.1:0, echoing.
pub fn echo_server() -> TestServer {
    echo_server_with(|config| config)
}

/// The echo server with `adjust` applied to its configuration (compression modes).
pub fn echo_server_with(adjust: impl FnOnce(Config) -> Config) -> TestServer {
    let config =
        Config::default().addr("127.0.0.1:0").reactors(1).workers(1).max_message_size(1 << 20);
    TestServer::Wsloop(Some(Server::start(adjust(config), Echo).expect("wsloop starts")))
}

/// A server that wants a session: the upgrade needs `Authorization: Bearer let-me-in`
/// (else 401), offers the `chat.v1` subprotocol, and echoes messages only after a
/// `login <name>` text message, which it answers with `ok <name>`; anything before that is
/// answered `log in first`. With `login_delay`, the login completes that long after it
/// arrives, off the handler (as an auth service would answer).
struct LoginEcho {
    logged_in: std::sync::Arc<Mutex<std::collections::HashSet<ConnId>>>,
    login_delay: Duration,
}

impl Handler for LoginEcho {
    fn on_message(&self, handle: &Handle, id: ConnId, message: Message) {
        if let Message::Text(t) = &message
            && let Some(name) = t.strip_prefix("login ")
        {
            let (handle, logged_in, delay) =
                (handle.clone(), self.logged_in.clone(), self.login_delay);
            let reply = format!("ok {name}");
            std::thread::spawn(move || {
                std::thread::sleep(delay);
                logged_in.lock().unwrap_or_else(|p| p.into_inner()).insert(id);
                let _ = handle.send(id, Message::Text(reply));
            });
        } else if self.logged_in.lock().unwrap_or_else(|p| p.into_inner()).contains(&id) {
            let _ = handle.send(id, message);
        } else {
            let _ = handle.send(id, Message::Text("log in first".into()));
        }
    }
}

/// wsloop in-process as a [`LoginEcho`] server.
pub fn login_server(login_delay: Duration) -> TestServer {
    let config = Config::default()
        .addr("127.0.0.1:0")
        .reactors(1)
        .workers(1)
        .subprotocols(["chat.v1"])
        .on_upgrade(|req| match req.header("authorization") {
            Some("Bearer let-me-in") => Ok(wsloop::Accept::new()),
            _ => Err(wsloop::Reject::with_status(401)),
        });
    let handler = LoginEcho { logged_in: Default::default(), login_delay };
    TestServer::Wsloop(Some(Server::start(config, handler).expect("wsloop starts")))
}

/// Every message is published to the one topic (the sender included), like the
/// `wsloop` binary's `/broadcast`.
struct FanOut;

impl Handler for FanOut {
    fn on_message(&self, handle: &Handle, _: ConnId, message: Message) {
        handle.publish("all", message);
    }
}

/// wsloop in-process as a fan-out server (two reactors, so fan-out crosses them). The
/// upgrade hook joins the topic before the 101, so a subscriber the generator sees open
/// is already in the topic when publishing starts.
pub fn broadcast_server() -> TestServer {
    let config = Config::default()
        .addr("127.0.0.1:0")
        .reactors(2)
        .on_upgrade(|_| Ok(wsloop::Accept::new().subscribe("all")));
    TestServer::Wsloop(Some(Server::start(config, FanOut).expect("wsloop starts")))
}

pub fn sink_server(mode: SinkMode) -> TestServer {
    sink_server_with(mode, None)
}

/// The sink serving `wss://` with `cert` and `key` (PEM files).
pub fn tls_sink_server(mode: SinkMode, cert: &Path, key: &Path) -> TestServer {
    let config = wsloop_loadtest::tls::server_config(cert, key).expect("usable certificate");
    sink_server_with(mode, Some(config))
}

fn sink_server_with(
    mode: SinkMode,
    tls: Option<std::sync::Arc<rustls::ServerConfig>>,
) -> TestServer {
    let handle = sink::start(SinkConfig {
        addr: "127.0.0.1:0".parse().expect("address"),
        mode,
        threads: 1,
        duration: Duration::from_secs(120),
        tls,
    })
    .expect("sink starts");
    TestServer::Sink(Some(handle))
}

/// Where the peer binaries are built (`scripts/test.sh` builds them into `target/peers`):
/// `$WSLOOP_PEERS_TARGET`, else the workspace's `target/peers`.
fn peer_binary(path: &str) -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = Vec::new();
    if let Ok(d) = std::env::var("WSLOOP_PEERS_TARGET") {
        dirs.push(PathBuf::from(d));
    }
    dirs.push(Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/peers"));
    dirs.into_iter().map(|d| d.join(path)).find(|p| p.is_file())
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A peer echo server of `peers/`.
#[derive(Clone, Copy, Debug)]
pub enum Peer {
    /// tokio-tungstenite, one worker thread.
    TokioTungstenite,
    /// uWebSockets (C++), one event loop.
    UWebSockets,
}

impl Peer {
    /// Its binary under `target/peers`, and the arguments after `--port N`.
    fn binary_and_args(self) -> (&'static str, &'static [&'static str]) {
        match self {
            Peer::TokioTungstenite => ("release/tokio-tungstenite-echo", &["--threads", "1"]),
            Peer::UWebSockets => ("uwebsockets-echo/uwebsockets-echo", &[]),
        }
    }
}

/// `peer`'s echo server on a free port, built with `scripts/build-peers.sh` first when its
/// binary is missing (a test never skips it).
pub fn peer_echo_server(peer: Peer) -> TestServer {
    let (path, args) = peer.binary_and_args();
    let bin = match peer_binary(path) {
        Some(bin) => bin,
        None => {
            let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/build-peers.sh");
            let status = Command::new("bash").arg(&script).status().expect("build-peers.sh runs");
            assert!(status.success(), "scripts/build-peers.sh failed: {status}");
            peer_binary(path).expect("build-peers.sh built the peer")
        }
    };
    let port = free_port();
    let child = Command::new(bin)
        .args(["--port", &port.to_string()])
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("the peer starts");
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("address");
    let server = TestServer::Peer(child, addr);
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(addr).is_err() {
        assert!(Instant::now() < deadline, "the peer did not start listening");
        std::thread::sleep(Duration::from_millis(20));
    }
    server
}

/// What one generator run produced.
pub struct Run {
    /// Exit code (`None`: killed by a signal).
    pub code: Option<i32>,
    /// stdout (the table).
    pub stdout: String,
    /// stderr.
    pub stderr: String,
    /// The `--json` document, when written.
    pub json: Option<Value>,
    /// The `--plot` file, when written.
    pub svg: Option<String>,
}

/// A scratch directory for one test's output files.
pub fn scratch_dir(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("wsloop-loadtest-{}-{test}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// Runs the generator with `args` plus `--json`/`--plot` into a scratch directory, killed
/// after `limit`.
pub fn run(test: &str, args: &[&str], limit: Duration) -> Run {
    let dir = scratch_dir(test);
    let json = dir.join("out.json");
    let svg = dir.join("out.svg");
    let _ = std::fs::remove_file(&json);
    let _ = std::fs::remove_file(&svg);
    let mut child = Command::new(BIN)
        .args(args)
        .arg("--quiet")
        .arg("--json")
        .arg(&json)
        .arg("--plot")
        .arg(&svg)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the generator starts");
    let mut stdout = child.stdout.take().expect("stdout");
    let mut stderr = child.stderr.take().expect("stderr");
    let out_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the generator ran longer than {limit:?}: {args:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let stdout = out_reader.join().unwrap_or_default();
    let stderr = err_reader.join().unwrap_or_default();
    let json = std::fs::read_to_string(&json)
        .ok()
        .map(|t| serde_json::from_str(&t).expect("--json output parses"));
    let svg = std::fs::read_to_string(&svg).ok();
    let _ = std::fs::remove_dir_all(&dir);
    Run { code: status.code(), stdout, stderr, json, svg }
}

impl Run {
    /// The JSON document; panics with the run's output when there is none.
    pub fn json(&self) -> &Value {
        self.json.as_ref().unwrap_or_else(|| {
            panic!(
                "no JSON (exit {:?})\nstdout:\n{}\nstderr:\n{}",
                self.code, self.stdout, self.stderr
            )
        })
    }

    /// An unsigned figure at a JSON pointer such as `/messages/sent`.
    pub fn u(&self, pointer: &str) -> u64 {
        self.json()
            .pointer(pointer)
            .and_then(Value::as_u64)
            .unwrap_or_else(|| panic!("no unsigned {pointer} in {}", self.json()))
    }

    /// A float figure at a JSON pointer.
    pub fn f(&self, pointer: &str) -> f64 {
        self.json()
            .pointer(pointer)
            .and_then(Value::as_f64)
            .unwrap_or_else(|| panic!("no number {pointer} in {}", self.json()))
    }

    /// Asserts a successful run with a valid SVG plot.
    pub fn assert_ok(&self) {
        assert_eq!(self.code, Some(0), "stdout:\n{}\nstderr:\n{}", self.stdout, self.stderr);
        let svg = self.svg.as_deref().expect("--plot wrote a file");
        assert!(
            svg.starts_with("<svg") || svg.starts_with("<?xml"),
            "not an SVG: {}",
            &svg[..svg.len().min(80)]
        );
        assert!(svg.trim_end().ends_with("</svg>"), "SVG is not closed");
        assert!(svg.contains("<polyline") || svg.contains("<path"), "SVG draws nothing");
    }

    /// Asserts `sent = received + lost + in_flight` and no losses.
    pub fn assert_all_answered(&self) {
        let sent = self.u("/messages/sent");
        let received = self.u("/messages/received");
        let lost = self.u("/messages/lost");
        let in_flight = self.u("/messages/in_flight");
        assert_eq!(sent, received + lost + in_flight, "accounting: {}", self.stdout);
        assert_eq!(lost, 0, "{}", self.stdout);
        assert_eq!(in_flight, 0, "{}", self.stdout);
        assert_eq!(self.u("/messages/out_of_order"), 0);
        assert_eq!(self.u("/messages/unstamped"), 0);
        assert_eq!(self.json().pointer("/messages/accounted"), Some(&Value::Bool(true)));
    }
}

/// A fake server: answers every connection's request head with `response` (where
/// `{accept}` is replaced by the accept key), then holds the socket until the client
/// closes. Stops after `connections` connections.
pub fn fake_server(response: &'static str, connections: usize) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    std::thread::spawn(move || {
        for stream in listener.incoming().take(connections) {
            let Ok(mut stream) = stream else { continue };
            std::thread::spawn(move || {
                let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let text = String::from_utf8_lossy(&head);
                let key = text
                    .lines()
                    .find_map(|l| {
                        let (name, value) = l.split_once(':')?;
                        name.eq_ignore_ascii_case("sec-websocket-key")
                            .then(|| value.trim().to_string())
                    })
                    .unwrap_or_default();
                let accept = wsloop::protocol::handshake::accept_key(key.as_bytes());
                let reply = response.replace("{accept}", &accept);
                let _ = stream.write_all(reply.as_bytes());
                while matches!(stream.read(&mut buf), Ok(n) if n > 0) {}
            });
        }
    });
    addr
}

/// A fake server that completes the handshake of every other connection (the 1st, 3rd...)
/// and holds it, and closes the others at once without a word: half the connections fail.
pub fn half_refusing_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    std::thread::spawn(move || {
        for (i, stream) in listener.incoming().enumerate() {
            let Ok(stream) = stream else { continue };
            if i % 2 == 1 {
                drop(stream);
                continue;
            }
            std::thread::spawn(move || accept_and_hold(stream));
        }
    });
    addr
}

fn accept_and_hold(mut stream: TcpStream) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let text = String::from_utf8_lossy(&head);
    let key = text
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("sec-websocket-key").then(|| value.trim().to_string())
        })
        .unwrap_or_default();
    let reply = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {}\r\n\r\n",
        wsloop::protocol::handshake::accept_key(key.as_bytes())
    );
    let _ = stream.write_all(reply.as_bytes());
    while matches!(stream.read(&mut buf), Ok(n) if n > 0) {}
}

/// The generator's own `sink` as a separate process (so a test can kill it): the child
/// and its `ws://` URL.
pub fn sink_process(mode: &str) -> (Child, String) {
    let mut child = Command::new(BIN)
        .args(["sink", "--port", "0", "--mode", mode, "--duration", "120"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("the sink starts");
    let mut out = child.stdout.take().expect("stdout");
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while !line.ends_with(b"\n") {
        match out.read(&mut byte) {
            Ok(1) => line.push(byte[0]),
            _ => panic!("the sink printed no address"),
        }
    }
    let text = String::from_utf8_lossy(&line);
    let url = text
        .split_whitespace()
        .find(|w| w.starts_with("ws://"))
        .expect("sink listening on ws://...")
        .to_string();
    (child, url)
}

impl Run {
    /// The summary's last line (stdout).
    pub fn last_line(&self) -> &str {
        self.stdout.lines().last().unwrap_or("")
    }
}

/// The Python `websockets` release the project's interop tests use (`scripts/test.sh`).
const WEBSOCKETS_VERSION: &str = "17.4";

/// The workspace's `.venv-test` Python with `websockets` installed, created and installed
/// first when missing (a test never skips it).
pub fn python_with_websockets() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let python = root.join(".venv-test/bin/python");
    let check = format!(
        "import sys, websockets; sys.exit(websockets.__version__ != '{WEBSOCKETS_VERSION}')"
    );
    let ready = || Command::new(&python).args(["-c", &check]).status().is_ok_and(|s| s.success());
    if !ready() {
        if !python.is_file() {
            let venv = root.join(".venv-test");
            let status = Command::new("python3").arg("-m").arg("venv").arg(&venv).status();
            assert!(status.is_ok_and(|s| s.success()), "python3 -m venv .venv-test failed");
        }
        let status = Command::new(&python)
            .args(["-m", "pip", "install", "-q", "--disable-pip-version-check"])
            .arg(format!("websockets=={WEBSOCKETS_VERSION}"))
            .status();
        assert!(status.is_ok_and(|s| s.success()), "pip install websockets failed");
        assert!(ready(), "websockets {WEBSOCKETS_VERSION} is not importable after install");
    }
    python
}

/// A certificate for `names` (DNS names or IP addresses) made for this test (rcgen,
/// self-signed), written as `cert.pem` and `key.pem` in `dir`; returns their paths.
pub fn test_certificate(dir: &Path, names: &[&str]) -> (PathBuf, PathBuf) {
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let made = rcgen::generate_simple_self_signed(names).expect("rcgen makes a certificate");
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, made.cert.pem()).expect("write cert.pem");
    std::fs::write(&key, made.signing_key.serialize_pem()).expect("write key.pem");
    (cert, key)
}

/// Python `websockets` serving wss:// echo with `cert` and `key` (`tests/peers/wss_echo.py`),
/// with or without permessage-deflate.
pub fn python_wss_echo(cert: &Path, key: &Path, compression: bool) -> TestServer {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers/wss_echo.py");
    let mut cmd = Command::new(python_with_websockets());
    cmd.arg(script).arg(cert).arg(key);
    if !compression {
        cmd.arg("--no-compression");
    }
    let mut child =
        cmd.stdout(Stdio::piped()).stderr(Stdio::inherit()).spawn().expect("python starts");
    let mut line = String::new();
    let stdout = child.stdout.take().expect("piped stdout");
    std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line)
        .expect("the server prints its port");
    let port: u16 = line.trim().parse().unwrap_or_else(|_| {
        let _ = child.kill();
        panic!("wss_echo.py printed {line:?}, not a port")
    });
    TestServer::Peer(child, SocketAddr::from(([127, 0, 0, 1], port)))
}
