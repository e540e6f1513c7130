//! `sink`: a small WebSocket server for measuring the generator itself.
//!
//! - `discard`: after the handshake, reads and drops bytes without decoding them: the
//!   cheapest possible peer, so `send` against it measures the generator's ceiling.
//! - `echo`: sends every message back (decoded and re-framed with wsloop's protocol
//!   module), one write per connection per turn.
//! - `broadcast`: sends every message to every connection, the sender included (one
//!   thread), like wsloop's `/broadcast`; the broadcast scenario's test peer.
//!
//! One mio thread per `--threads`, each with its own `SO_REUSEPORT` listener. It stops by
//! itself after `--duration`, or when its [`SinkHandle`] is stopped. With `--tls-cert` and
//! `--tls-key` it serves `wss://` (rustls, see [`crate::tls`]), to measure the generator's
//! TLS ceiling.

use std::fmt;
use std::io::{ErrorKind, Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use clap::ValueEnum;
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token, Waker};
use rustls::server::{ServerConfig, ServerConnection};
use slab::Slab;
use socket2::{Domain, Protocol, Socket, Type};
use wsloop::protocol::frame::{FrameHeader, MAX_HEADER_LEN, OpCode};
use wsloop::protocol::handshake;
use wsloop::protocol::message::{Decoder, DecoderLimits, Incoming, Role};

use crate::tls::{self, TlsError};

const LISTENER: Token = Token(usize::MAX - 1);
const WAKER: Token = Token(usize::MAX - 2);
const SCRATCH: usize = 256 * 1024;
const MAX_HEAD: usize = 16 * 1024;
const MAX_MESSAGE: usize = 64 << 20;

/// What the sink does with messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SinkMode {
    /// Read and drop bytes without decoding.
    Discard,
    /// Send every message back.
    Echo,
    /// Send every message to every connection (one thread).
    Broadcast,
}

/// How to run a sink.
#[derive(Debug, Clone)]
pub struct SinkConfig {
    /// Where to listen (port 0: any free port).
    pub addr: SocketAddr,
    /// What to do with messages.
    pub mode: SinkMode,
    /// Server threads (forced to 1 for broadcast).
    pub threads: usize,
    /// Stop by itself after this long.
    pub duration: Duration,
    /// Serve `wss://` with this configuration; `None`: `ws://`.
    pub tls: Option<Arc<ServerConfig>>,
}

/// What a sink thread saw.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SinkStats {
    /// Connections upgraded.
    pub connections: u64,
    /// Messages decoded (0 in discard mode).
    pub messages: u64,
    /// Bytes read after handshakes.
    pub bytes: u64,
}

impl SinkStats {
    fn add(&mut self, o: SinkStats) {
        self.connections += o.connections;
        self.messages += o.messages;
        self.bytes += o.bytes;
    }
}

/// Why a sink could not start.
#[derive(Debug)]
pub enum SinkError {
    /// Socket setup or bind failed.
    Bind(std::io::Error),
    /// Poll, waker or thread creation failed.
    Setup(std::io::Error),
    /// `--tls-cert` or `--tls-key` cannot be used.
    Tls(TlsError),
}

impl fmt::Display for SinkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SinkError::Bind(e) => write!(f, "cannot listen: {e}"),
            SinkError::Setup(e) => write!(f, "cannot start the sink: {e}"),
            SinkError::Tls(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for SinkError {}

/// A running sink.
pub struct SinkHandle {
    /// The address it listens on.
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
    wakers: Vec<Arc<Waker>>,
    threads: Vec<JoinHandle<SinkStats>>,
}

impl SinkHandle {
    /// Stops every thread and returns what they saw.
    pub fn stop(self) -> SinkStats {
        self.stop.store(true, Ordering::Release);
        for w in &self.wakers {
            let _ = w.wake();
        }
        self.join()
    }

    /// Waits for the threads to stop by themselves (after the duration).
    pub fn join(self) -> SinkStats {
        let mut total = SinkStats::default();
        for t in self.threads {
            if let Ok(s) = t.join() {
                total.add(s);
            }
        }
        total
    }
}

fn listener(addr: SocketAddr) -> Result<std::net::TcpListener, SinkError> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))
        .map_err(SinkError::Bind)?;
    socket.set_reuse_address(true).map_err(SinkError::Bind)?;
    socket.set_reuse_port(true).map_err(SinkError::Bind)?;
    socket.set_nonblocking(true).map_err(SinkError::Bind)?;
    socket.bind(&addr.into()).map_err(SinkError::Bind)?;
    socket.listen(4096).map_err(SinkError::Bind)?;
    Ok(socket.into())
}

/// Starts a sink.
///
/// # Errors
/// [`SinkError`] when it cannot bind or start its threads.
pub fn start(cfg: SinkConfig) -> Result<SinkHandle, SinkError> {
    let threads = if cfg.mode == SinkMode::Broadcast { 1 } else { cfg.threads.max(1) };
    let first = listener(cfg.addr)?;
    let addr = first.local_addr().map_err(SinkError::Bind)?;
    let mut listeners = vec![first];
    for _ in 1..threads {
        listeners.push(listener(addr)?);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let deadline = Instant::now() + cfg.duration;
    let mut wakers = Vec::new();
    let mut handles = Vec::new();
    for (i, l) in listeners.into_iter().enumerate() {
        let poll = Poll::new().map_err(SinkError::Setup)?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER).map_err(SinkError::Setup)?);
        wakers.push(waker);
        let stop = stop.clone();
        let mode = cfg.mode;
        let tls = cfg.tls.clone();
        let h = std::thread::Builder::new()
            .name(format!("sink-{i}"))
            .spawn(move || {
                let mut t = SinkThread {
                    poll,
                    listener: TcpListener::from_std(l),
                    conns: Slab::new(),
                    mode,
                    tls,
                    scratch: vec![0; SCRATCH],
                    dirty: Vec::new(),
                    stats: SinkStats::default(),
                };
                t.run(&stop, deadline);
                t.stats
            })
            .map_err(SinkError::Setup)?;
        handles.push(h);
    }
    Ok(SinkHandle { addr, stop, wakers, threads: handles })
}

enum Phase {
    Handshake(Vec<u8>),
    Open(Decoder),
}

struct SinkConn {
    stream: TcpStream,
    tls: Option<Box<ServerConnection>>,
    phase: Phase,
    /// Unparsed tail of a frame between reads.
    inbuf: Vec<u8>,
    out: Vec<u8>,
    out_pos: usize,
    close_after_flush: bool,
    dirty: bool,
}

struct SinkThread {
    poll: Poll,
    listener: TcpListener,
    conns: Slab<SinkConn>,
    mode: SinkMode,
    tls: Option<Arc<ServerConfig>>,
    scratch: Vec<u8>,
    dirty: Vec<usize>,
    stats: SinkStats,
}

fn push_server_frame(out: &mut Vec<u8>, opcode: OpCode, payload: &[u8]) {
    let header = FrameHeader {
        fin: true,
        rsv1: false,
        opcode,
        mask: None,
        payload_len: payload.len() as u64,
    };
    let mut buf = [0u8; MAX_HEADER_LEN];
    let n = header.encode(&mut buf);
    out.reserve(n + payload.len());
    out.extend_from_slice(&buf[..n]);
    out.extend_from_slice(payload);
}

/// What a decoded message asks of the sink, owned so the read buffer can be reused.
enum Reply {
    None,
    Wrote,
    Close,
}

impl SinkThread {
    fn run(&mut self, stop: &AtomicBool, deadline: Instant) {
        let mut events = Events::with_capacity(1024);
        if self.poll.registry().register(&mut self.listener, LISTENER, Interest::READABLE).is_err()
        {
            return;
        }
        while !stop.load(Ordering::Acquire) {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            let timeout = (deadline - now).min(Duration::from_millis(200));
            if let Err(e) = self.poll.poll(&mut events, Some(timeout)) {
                if e.kind() == ErrorKind::Interrupted {
                    continue;
                }
                break;
            }
            for ev in events.iter() {
                match ev.token() {
                    LISTENER => self.accept(),
                    WAKER => {}
                    Token(key) => {
                        if ev.is_writable() {
                            self.flush(key);
                        }
                        let hup = ev.is_read_closed() || ev.is_error();
                        if ev.is_readable() || hup {
                            self.read(key, hup);
                        }
                    }
                }
            }
            for key in std::mem::take(&mut self.dirty) {
                if let Some(c) = self.conns.get_mut(key) {
                    c.dirty = false;
                }
                self.flush(key);
            }
        }
    }

    fn accept(&mut self) {
        loop {
            match self.listener.accept() {
                Ok((mut stream, _)) => {
                    let _ = stream.set_nodelay(true);
                    let tls = match &self.tls {
                        None => None,
                        Some(config) => match ServerConnection::new(config.clone()) {
                            Ok(session) => Some(Box::new(session)),
                            Err(_) => continue,
                        },
                    };
                    let entry = self.conns.vacant_entry();
                    let key = entry.key();
                    if self
                        .poll
                        .registry()
                        .register(&mut stream, Token(key), Interest::READABLE | Interest::WRITABLE)
                        .is_ok()
                    {
                        entry.insert(SinkConn {
                            stream,
                            tls,
                            phase: Phase::Handshake(Vec::new()),
                            inbuf: Vec::new(),
                            out: Vec::new(),
                            out_pos: 0,
                            close_after_flush: false,
                            dirty: false,
                        });
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                // Out of descriptors or a connection reset before accept: try later.
                Err(_) => return,
            }
        }
    }

    fn drop_conn(&mut self, key: usize) {
        if let Some(mut c) = self.conns.try_remove(key) {
            let _ = self.poll.registry().deregister(&mut c.stream);
        }
    }

    fn mark(&mut self, key: usize) {
        if let Some(c) = self.conns.get_mut(key)
            && !c.dirty
        {
            c.dirty = true;
            self.dirty.push(key);
        }
    }

    fn flush(&mut self, key: usize) {
        let Some(c) = self.conns.get_mut(key) else {
            return;
        };
        if let Some(tls) = c.tls.as_deref_mut() {
            match tls::push(tls, &mut c.stream) {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(_) => return self.drop_conn(key),
            }
        }
        while c.out_pos < c.out.len() {
            let pending = &c.out[c.out_pos..];
            let written = match c.tls.as_deref_mut() {
                None => c.stream.write(pending),
                Some(tls) => tls::write(tls, &mut c.stream, pending),
            };
            match written {
                Ok(0) => return self.drop_conn(key),
                Ok(n) => c.out_pos += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return self.drop_conn(key),
            }
        }
        c.out.clear();
        c.out_pos = 0;
        if c.out.capacity() > 4 * SCRATCH {
            c.out = Vec::new();
        }
        if c.close_after_flush {
            // RFC 6455 §7.1.1: the server closes the TCP connection first.
            if let Some(tls) = c.tls.as_deref_mut() {
                tls.send_close_notify();
                let _ = tls::push(tls, &mut c.stream);
            }
            let _ = c.stream.shutdown(std::net::Shutdown::Write);
            self.drop_conn(key);
        }
    }

    fn read(&mut self, key: usize, hup: bool) {
        let mut buf = std::mem::take(&mut self.scratch);
        while let Some(c) = self.conns.get_mut(key) {
            let start = c.inbuf.len();
            if buf.len() < start + SCRATCH {
                buf.resize(start + SCRATCH, 0);
            }
            buf[..start].copy_from_slice(&c.inbuf);
            c.inbuf.clear();
            let read = match c.tls.as_deref_mut() {
                None => c.stream.read(&mut buf[start..]),
                Some(tls) => tls::read(tls, &mut c.stream, &mut buf[start..]),
            };
            let n = match read {
                Ok(0) => {
                    self.drop_conn(key);
                    break;
                }
                Ok(n) => n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    if let Some(c) = self.conns.get_mut(key) {
                        c.inbuf.extend_from_slice(&buf[..start]);
                    }
                    break;
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {
                    c.inbuf.extend_from_slice(&buf[..start]);
                    continue;
                }
                Err(_) => {
                    self.drop_conn(key);
                    break;
                }
            };
            let filled = start + n;
            let short = filled < buf.len() && !hup;
            if !self.consume(key, &mut buf, filled) || short {
                // A short read drained the socket (Linux raises a new edge for later data).
                break;
            }
        }
        if buf.len() > 4 * SCRATCH {
            buf = vec![0; SCRATCH];
        }
        self.scratch = buf;
    }

    /// Handles `buf[..filled]`; returns false when the connection is gone.
    fn consume(&mut self, key: usize, buf: &mut [u8], filled: usize) -> bool {
        let mode = self.mode;
        let Some(c) = self.conns.get_mut(key) else {
            return false;
        };
        if let Phase::Handshake(head) = &mut c.phase {
            head.extend_from_slice(&buf[..filled]);
            match handshake::parse_request(head, MAX_HEAD) {
                Ok(None) => return true,
                Ok(Some((req, used))) => {
                    let rest = head.len() - used;
                    let leftover = head[used..].to_vec();
                    match handshake::validate_upgrade(&req) {
                        Ok(()) => {
                            c.out = handshake::accept_response(&req, None, None);
                            c.phase = Phase::Open(Decoder::new(
                                Role::Server,
                                DecoderLimits {
                                    max_message_size: MAX_MESSAGE,
                                    max_frame_size: MAX_MESSAGE,
                                },
                            ));
                            self.stats.connections += 1;
                        }
                        Err(e) => {
                            c.out = handshake::error_response(e.status());
                            c.close_after_flush = true;
                            self.mark(key);
                            return false;
                        }
                    }
                    buf[..rest].copy_from_slice(&leftover);
                    self.mark(key);
                    return self.consume_frames(key, buf, rest, mode);
                }
                Err(e) => {
                    c.out = handshake::error_response(e.status());
                    c.close_after_flush = true;
                    self.mark(key);
                    return false;
                }
            }
        }
        self.consume_frames(key, buf, filled, mode)
    }

    fn consume_frames(
        &mut self,
        key: usize,
        buf: &mut [u8],
        filled: usize,
        mode: SinkMode,
    ) -> bool {
        self.stats.bytes += filled as u64;
        if mode == SinkMode::Discard {
            return self.conns.contains(key);
        }
        let mut pos = 0;
        let mut broadcast: Vec<u8> = Vec::new();
        loop {
            let Some(c) = self.conns.get_mut(key) else {
                return false;
            };
            let SinkConn { phase, out, .. } = c;
            let Phase::Open(decoder) = phase else {
                return true;
            };
            let reply = match decoder.decode(&mut buf[pos..filled]) {
                Ok((0, None)) => break,
                Ok((n, None)) => {
                    pos += n;
                    Reply::None
                }
                Ok((n, Some(item))) => {
                    pos += n;
                    match item {
                        Incoming::Text(t) => {
                            self.stats.messages += 1;
                            let target =
                                if mode == SinkMode::Broadcast { &mut broadcast } else { out };
                            push_server_frame(target, OpCode::Text, t.as_bytes());
                            Reply::Wrote
                        }
                        Incoming::Binary(b) => {
                            self.stats.messages += 1;
                            let target =
                                if mode == SinkMode::Broadcast { &mut broadcast } else { out };
                            push_server_frame(target, OpCode::Binary, &b);
                            Reply::Wrote
                        }
                        Incoming::Ping(p) => {
                            push_server_frame(out, OpCode::Pong, p);
                            Reply::Wrote
                        }
                        // The sink never negotiates compression, so its decoder refuses RSV1.
                        Incoming::Pong(_) | Incoming::Compressed { .. } => Reply::None,
                        Incoming::Close(frame) => {
                            let code = frame.map_or(1000, |f| f.code.0);
                            push_server_frame(out, OpCode::Close, &code.to_be_bytes());
                            Reply::Close
                        }
                    }
                }
                Err(e) => {
                    push_server_frame(out, OpCode::Close, &e.close_code().0.to_be_bytes());
                    Reply::Close
                }
            };
            match reply {
                Reply::None => {}
                Reply::Wrote => self.mark(key),
                Reply::Close => {
                    if let Some(c) = self.conns.get_mut(key) {
                        c.close_after_flush = true;
                    }
                    self.mark(key);
                    return false;
                }
            }
        }
        if let Some(c) = self.conns.get_mut(key) {
            c.inbuf.extend_from_slice(&buf[pos..filled]);
        }
        if !broadcast.is_empty() {
            let keys: Vec<usize> = self
                .conns
                .iter()
                .filter(|(_, c)| matches!(c.phase, Phase::Open(_)) && !c.close_after_flush)
                .map(|(k, _)| k)
                .collect();
            for k in keys {
                if let Some(c) = self.conns.get_mut(k) {
                    c.out.extend_from_slice(&broadcast);
                }
                self.mark(k);
            }
        }
        self.conns.contains(key)
    }
}

/// `wsloop-loadtest sink`: runs until `--duration` passes.
///
/// # Errors
/// [`SinkError`] when it cannot start.
pub fn run_cli(args: &crate::cli::SinkArgs) -> Result<(), SinkError> {
    let cfg = SinkConfig {
        addr: SocketAddr::new(args.host, args.port),
        mode: args.mode,
        threads: args.threads,
        duration: Duration::from_secs_f64(args.duration),
        tls: match (&args.tls_cert, &args.tls_key) {
            (Some(cert), Some(key)) => Some(tls::server_config(cert, key).map_err(SinkError::Tls)?),
            _ => None,
        },
    };
    let scheme = if cfg.tls.is_some() { "wss" } else { "ws" };
    let handle = start(cfg)?;
    println!(
        "sink listening on {scheme}://{}/ ({:?}, {} thread{})",
        handle.addr,
        args.mode,
        args.threads,
        if args.threads == 1 { "" } else { "s" }
    );
    let _ = std::io::stdout().flush();
    let stats = handle.join();
    eprintln!(
        "sink: {} connections, {} messages, {} bytes",
        stats.connections, stats.messages, stats.bytes
    );
    Ok(())
}
