//! Shared helpers for the integration tests: servers on 127.0.0.1:0, real clients,
//! raw-socket frame crafting, and a watchdog per test.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use tungstenite::stream::MaybeTlsStream;
use wsloop::{Config, ConnId, Handle, Handler, Message, Server};

pub type Client = tungstenite::WebSocket<MaybeTlsStream<TcpStream>>;

/// Aborts the test process if the guard lives longer than `limit`: a hung test fails loudly.
pub struct Watchdog(mpsc::Sender<()>);

impl Watchdog {
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

/// Echoes every message.
pub struct Echo;

impl Handler for Echo {
    fn on_message(&self, handle: &Handle, id: ConnId, message: Message) {
        let _ = handle.send(id, message);
    }
}

pub fn config() -> Config {
    Config::default().addr("127.0.0.1:0").reactors(2).workers(2)
}

pub fn echo_server(config: Config) -> Server {
    Server::start(config, Echo).expect("server starts")
}

pub fn url(addr: SocketAddr, path: &str) -> String {
    format!("ws://{addr}{path}")
}

/// A tungstenite client with a read timeout, so a missing answer fails instead of hanging.
pub fn connect(addr: SocketAddr) -> Client {
    connect_path(addr, "/")
}

pub fn connect_path(addr: SocketAddr, path: &str) -> Client {
    let (client, response) = tungstenite::connect(url(addr, path)).expect("handshake");
    assert_eq!(response.status(), 101);
    set_timeout(&client);
    client
}

pub fn set_timeout(client: &Client) {
    if let MaybeTlsStream::Plain(s) = client.get_ref() {
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    }
}

/// Reads the next data message, answering nothing else.
pub fn next_message<S: Read + Write>(
    client: &mut tungstenite::WebSocket<S>,
) -> tungstenite::Message {
    loop {
        match client.read().expect("read") {
            m @ (tungstenite::Message::Text(_) | tungstenite::Message::Binary(_)) => return m,
            _ => continue,
        }
    }
}

/// Sends `text` and asserts it comes back.
pub fn assert_echo(client: &mut Client, text: &str) {
    client.send(tungstenite::Message::text(text)).expect("send");
    assert_eq!(next_message(client), tungstenite::Message::text(text));
}

// ---- raw sockets ----

pub const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

pub fn request(addr: SocketAddr, extra: &str) -> String {
    format!(
        "GET / HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
    )
}

pub fn raw(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

/// A plain HTTP answer: status, head (status line and headers) and body.
pub struct HttpAnswer {
    pub status: u16,
    pub head: String,
    pub body: String,
}

impl HttpAnswer {
    /// The value of header `name` (case-insensitive), if present.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

/// Sends `method path` with `extra` header lines as plain HTTP/1.1 and reads the answer
/// to the end (the server closes after answering).
pub fn http(addr: SocketAddr, method: &str, path: &str, extra: &str) -> HttpAnswer {
    let mut s = raw(addr);
    let request = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{extra}\r\n");
    s.write_all(request.as_bytes()).unwrap();
    let mut all = Vec::new();
    s.read_to_end(&mut all).expect("the server closes after answering");
    let all = String::from_utf8_lossy(&all).into_owned();
    let (head, body) = all.split_once("\r\n\r\n").unwrap_or((&all, ""));
    HttpAnswer { status: status_of(head), head: head.to_owned(), body: body.to_owned() }
}

/// Sends `head` and returns the response head (through the blank line).
pub fn http_exchange(addr: SocketAddr, head: &[u8]) -> String {
    let mut s = raw(addr);
    s.write_all(head).unwrap();
    read_head(&mut s)
}

pub fn read_head(s: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match s.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&head).into_owned()
}

pub fn status_of(head: &str) -> u16 {
    head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0)
}

/// A raw socket past a successful handshake.
pub fn raw_open(addr: SocketAddr) -> TcpStream {
    let mut s = raw(addr);
    s.write_all(request(addr, "").as_bytes()).unwrap();
    let head = read_head(&mut s);
    assert_eq!(status_of(&head), 101, "{head}");
    s
}

/// A client frame: masked unless `mask` is None.
pub fn frame(fin: bool, opcode: u8, payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
    let mut out = vec![(u8::from(fin) << 7) | opcode];
    let m = if mask.is_some() { 0x80 } else { 0 };
    match payload.len() {
        n if n < 126 => out.push(m | n as u8),
        n if n <= 0xffff => {
            out.push(m | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(m | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    match mask {
        Some(key) => {
            out.extend_from_slice(&key);
            out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
        }
        None => out.extend_from_slice(payload),
    }
    out
}

pub fn masked(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    frame(fin, opcode, payload, Some([0x37, 0xfa, 0x21, 0x3d]))
}

/// Reads one server frame: (fin, opcode, payload). None at EOF.
pub fn read_frame(s: &mut TcpStream) -> Option<(bool, u8, Vec<u8>)> {
    let mut h = [0u8; 2];
    s.read_exact(&mut h).ok()?;
    assert_eq!(h[1] & 0x80, 0, "server frames are never masked");
    let len = match h[1] & 0x7f {
        126 => {
            let mut b = [0u8; 2];
            s.read_exact(&mut b).ok()?;
            u64::from(u16::from_be_bytes(b))
        }
        127 => {
            let mut b = [0u8; 8];
            s.read_exact(&mut b).ok()?;
            u64::from_be_bytes(b)
        }
        n => u64::from(n),
    };
    let mut payload = vec![0u8; len as usize];
    s.read_exact(&mut payload).ok()?;
    Some((h[0] & 0x80 != 0, h[0] & 0x0f, payload))
}

/// Reads frames until a close frame; returns its code (None if it had no payload, or EOF).
pub fn read_close_code(s: &mut TcpStream) -> Option<u16> {
    while let Some((_, opcode, payload)) = read_frame(s) {
        if opcode == 0x8 {
            return (payload.len() >= 2).then(|| u16::from_be_bytes([payload[0], payload[1]]));
        }
    }
    None
}

/// Whether the server closes the TCP connection (EOF) within the read timeout.
pub fn sees_eof(s: &mut TcpStream) -> bool {
    let mut buf = [0u8; 256];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}

// ---- the binary as a child process ----

/// The `wsloop` binary, killed when dropped.
pub struct ServerProcess(Child);

impl ServerProcess {
    pub fn pid(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The `wsloop` binary; only the server package's tests have it.
pub fn server_binary() -> &'static str {
    match option_env!("CARGO_BIN_EXE_wsloop") {
        Some(path) => path,
        None => panic!("tests that run the binary live in server/tests"),
    }
}

/// Starts `wsloop --addr 127.0.0.1:0 <args>` and reads the address it prints.
pub fn start_binary(args: &[&str]) -> (ServerProcess, SocketAddr) {
    let mut child = Command::new(server_binary())
        .args(["--addr", "127.0.0.1:0", "--reactors", "2", "--workers", "2"])
        .args(args)
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn wsloop");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let addr = line.trim().rsplit("ws://").next().unwrap().parse().expect("address line");
    (ServerProcess(child), addr)
}

/// A field of `/proc/<pid>/status` in bytes (`VmRSS`, `VmHWM`...).
pub fn proc_bytes(pid: u32, field: &str) -> usize {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    let line = status.lines().find(|l| l.starts_with(field)).expect("field");
    let kb: usize = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kb * 1024
}

/// Percentile of sorted samples.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Echo round trips of a probe connection: one every `every` until `stop` is set.
pub fn probe_rtts(
    addr: SocketAddr,
    every: Duration,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> Vec<Duration> {
    let mut client = connect(addr);
    let mut rtts = Vec::new();
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        let t = std::time::Instant::now();
        assert_echo(&mut client, "probe");
        rtts.push(t.elapsed());
        std::thread::sleep(every);
    }
    rtts.sort();
    rtts
}

/// A read timeout short enough for a loop that polls a deadline.
pub fn set_short_timeout(client: &Client) {
    if let MaybeTlsStream::Plain(s) = client.get_ref() {
        s.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
    }
}

/// Held by tests that open thousands of sockets, so two of them in one test binary never
/// run at once (the process may hold 20,000 files).
pub fn many_sockets() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// Opens `n` raw connections sending `head`, `batch` at a time (handshakes pipelined),
/// asserts each gets 101 and hands `check` the socket and its response head.
pub fn open_many(
    addr: SocketAddr,
    head: &str,
    n: usize,
    batch: usize,
    mut check: impl FnMut(&mut TcpStream, &str),
) -> Vec<TcpStream> {
    let mut all = Vec::with_capacity(n);
    while all.len() < n {
        let mut group: Vec<TcpStream> = (0..batch.min(n - all.len())).map(|_| raw(addr)).collect();
        for s in &mut group {
            s.write_all(head.as_bytes()).unwrap();
        }
        for s in &mut group {
            let answer = read_head(s);
            assert_eq!(status_of(&answer), 101, "{answer}");
            check(s, &answer);
        }
        all.extend(group);
    }
    all
}

/// Writes `frame` over and over until `total` bytes went or the peer stops taking them;
/// returns the bytes sent.
pub fn flood(mut s: TcpStream, frame: &[u8], total: usize) -> usize {
    let blob: Vec<u8> = frame.iter().copied().cycle().take(frame.len() * 10_000).collect();
    s.set_write_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut sent = 0;
    while sent < total {
        match s.write(&blob) {
            Ok(n) => sent += n,
            Err(_) => break,
        }
    }
    sent
}
