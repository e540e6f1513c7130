//! One generator thread: a `mio::Poll` owning its client connections in a `Slab`.
//!
//! The engine does the IO and the WebSocket client mechanics (non-blocking connect, TLS for
//! `wss://`, upgrade request, 101 check, masked frames out, server frames in,
//! permessage-deflate both ways, ping/pong, close handshake); a scenario [`Driver`] decides
//! what to send and when, and what each answer means.
//!
//! mio's readiness rules, as this loop follows them:
//! - Sockets are registered once for READABLE | WRITABLE, edge-triggered; a readable socket
//!   is read until `WouldBlock` or a short read (on Linux new data after a short read
//!   raises a new edge, as tokio also relies on), or until a per-turn budget, after which
//!   it is revisited on the next turn without waiting. A write that hits `WouldBlock`
//!   waits for the next writable event. `Interrupted` is retried.
//! - Events may be spurious: a connect is complete only when `peer_addr` says so, and an
//!   event for a slab key freed earlier in the same batch finds `slab.get()` empty (or a new
//!   connection in the slot, which tolerates a spurious event).
//! - Writes are batched: frames a driver sends during one turn are appended to the
//!   connection's buffer and written with one `write` at the end of the turn.

use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use rustls::ClientConfig;
use rustls::client::ClientConnection;
use slab::Slab;
use socket2::{Domain, Protocol, Socket, Type};
use wsloop::protocol::frame::{MAX_CONTROL_PAYLOAD, OpCode};
use wsloop::protocol::message::{Decoder, Incoming};
use wsloop::protocol::{CloseCode, ProtocolError};

use crate::clock::now_ns;
use crate::compress::{ConnCodec, ThreadCodecs};
use crate::pattern::find_stamp;
use crate::payload::{PayloadKind, Stamp, Template};
use crate::proto;
use crate::rng::XorShift;
use crate::session::Session;
use crate::shared::Shared;
use crate::stats::{FailCause, RunStats};
use crate::target::Target;
use crate::tls;

/// Bytes read per `read` call (one scratch buffer per thread, not per connection).
const SCRATCH: usize = 256 * 1024;
/// Reads per connection per turn before other connections get their turn.
const READ_BUDGET: usize = 8;
/// Housekeeping period: timeouts, progress counters, the open-connections gauge.
const MAINTENANCE_NS: u64 = 100_000_000;
/// A deadline closer than this is waited for by polling with a zero timeout (epoll
/// timeouts are whole milliseconds).
const SPIN_NS: u64 = 1_000_000;
/// A poll that returned events but took longer than this is counted as idle time.
const BLOCKED_NS: u64 = 20_000;

/// How every connection of a run talks to the server.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Where to connect: connection number `i` goes to `targets[i % len]` (one URL per
    /// node of a cluster). Never empty.
    pub targets: Vec<Target>,
    /// Local addresses to bind, round-robin by connection index; empty: the kernel picks.
    pub sources: Vec<IpAddr>,
    /// Offer permessage-deflate in the upgrade request; if the server agrees, data
    /// messages are sent compressed and compressed answers inflated.
    pub deflate: bool,
    /// The TLS client configuration for `wss://` targets (`None` when every target is
    /// `ws://`).
    pub tls: Option<Arc<ClientConfig>>,
    /// Connect + handshake deadline.
    pub connect_timeout_ns: u64,
    /// How long to wait for the server's side of a close handshake.
    pub close_timeout_ns: u64,
    /// Largest message accepted from the server.
    pub max_message: usize,
    /// Queued outbound bytes per connection above which sends are skipped.
    pub max_queue: usize,
    /// The payload layout of answers.
    pub payload: PayloadKind,
    /// Targets for connections opened with [`Io::connect_alt`] (the broadcast senders'
    /// `--sender-url`s); empty: [`EngineConfig::targets`].
    pub alt_targets: Vec<Target>,
    /// Record handshake times in the timeline's latency buckets (connection scenarios).
    pub timeline_handshakes: bool,
    /// Extra headers, subprotocols and `--on-open` messages.
    pub session: Session,
    /// Answers carry a `{stamp}` anywhere in them (payload patterns) rather than at the
    /// payload kind's fixed place.
    pub marker_stamps: bool,
}

/// Where a connection is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// TCP connect in progress.
    Connecting,
    /// Upgrade request sent (or being sent), waiting for the 101.
    Handshaking,
    /// Frames flow both ways.
    Open,
    /// A close frame was sent; waiting for the server to close TCP until `deadline`.
    Closing { deadline: u64 },
}

impl Phase {
    fn is_pending(self) -> bool {
        matches!(self, Phase::Connecting | Phase::Handshaking)
    }
}

/// How a connection ended, as told to [`Driver::on_end`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// Never opened: connect or handshake failed.
    Failed(FailCause),
    /// Was open; the server closed, reset or broke the protocol first.
    ClosedByServer,
    /// Was open; the generator closed it (close handshake done or timed out).
    ClosedByGenerator,
}

/// A data message received on an open connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Msg {
    /// The stamp it carried, if it was one of ours.
    pub stamp: Option<Stamp>,
    /// Payload length.
    pub len: usize,
}

/// What the engine should do after a driver's tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tick {
    /// Call `tick` again by this time ([`now_ns`]); earlier if events arrive.
    At(u64),
    /// Nothing scheduled: call `tick` again after events or the housekeeping period.
    Idle,
    /// The thread is finished.
    Done,
}

/// A scenario: what to send, when, and what answers mean.
pub trait Driver {
    /// Per-connection scenario state.
    type State;

    /// Called once per turn, before polling. Opens connections, sends what is due, moves
    /// through the run's stages.
    fn tick(&mut self, io: &mut Io<Self::State>) -> Tick;

    /// A connection completed its handshake.
    fn on_open(&mut self, io: &mut Io<Self::State>, key: usize);

    /// A data message arrived.
    fn on_message(&mut self, io: &mut Io<Self::State>, key: usize, msg: Msg);

    /// A connection ended; its state is handed back. The slot may be reused at once.
    fn on_end(&mut self, io: &mut Io<Self::State>, key: usize, state: Self::State, end: End);

    /// An open connection's outbound queue is empty and the socket is writable.
    fn on_writable(&mut self, io: &mut Io<Self::State>, key: usize) {
        let _ = (io, key);
    }
}

struct Conn<S> {
    stream: TcpStream,
    /// The TLS session of a `wss://` connection (boxed: a `ws://` connection pays one
    /// pointer for it).
    tls: Option<Box<ClientConnection>>,
    /// permessage-deflate, once the server agreed to it.
    codec: Option<Box<ConnCodec>>,
    phase: Phase,
    key: [u8; 24],
    started: u64,
    /// Handshake bytes, or the unparsed tail of a frame between reads.
    inbuf: Vec<u8>,
    out: Vec<u8>,
    out_pos: usize,
    decoder: Option<Decoder>,
    close_sent: bool,
    server_closed_first: bool,
    dirty: bool,
    /// Connected to one of [`EngineConfig::alt_targets`].
    alt: bool,
    /// Which target of its list the connection went to.
    node: usize,
    /// The connection's number in the run.
    index: usize,
    /// Data messages sent through [`Io::send`].
    data_sent: u64,
    /// Session replies received (unstamped, before the first data message).
    session_replies: u32,
    /// Still waiting for `--on-open-wait` replies.
    session_waiting: bool,
    state: S,
}

/// Everything of a thread but the driver: sockets, buffers, clock, stats.
pub struct Io<S> {
    poll: Poll,
    conns: Slab<Conn<S>>,
    cfg: Arc<EngineConfig>,
    shared: Arc<Shared>,
    thread: usize,
    rng: XorShift,
    scratch: Vec<u8>,
    dirty: Vec<usize>,
    again: Vec<usize>,
    broken: Vec<(usize, End)>,
    open: usize,
    pending: usize,
    /// Open connections still waiting for their `--on-open-wait` replies.
    session_waiting: usize,
    /// Time of the current turn, [`now_ns`].
    pub now: u64,
    /// What this thread measured.
    pub stats: RunStats,
    window_start: u64,
    window_end: u64,
    buckets: usize,
    /// A pattern's rendered message, reused.
    render: Vec<u8>,
    last_len: usize,
    /// Compression shared by the thread's connections, and its buffers.
    codecs: ThreadCodecs,
}

/// Why a thread could not start.
#[derive(Debug)]
pub enum EngineError {
    /// `epoll_create` failed.
    Poll(std::io::Error),
}

impl std::fmt::Display for EngineError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EngineError::Poll(e) => write!(f, "cannot create a poll instance: {e}"),
        }
    }
}

impl std::error::Error for EngineError {}

impl<S> Io<S> {
    /// A thread's IO state.
    ///
    /// # Errors
    /// [`EngineError::Poll`] when the kernel refuses an epoll instance.
    pub fn new(
        cfg: Arc<EngineConfig>,
        shared: Arc<Shared>,
        thread: usize,
        seed: u64,
    ) -> Result<Io<S>, EngineError> {
        Ok(Io {
            poll: Poll::new().map_err(EngineError::Poll)?,
            conns: Slab::new(),
            cfg,
            shared,
            thread,
            rng: XorShift::new(seed),
            scratch: vec![0; SCRATCH],
            dirty: Vec::new(),
            again: Vec::new(),
            broken: Vec::new(),
            open: 0,
            pending: 0,
            session_waiting: 0,
            now: now_ns(),
            stats: RunStats::new(),
            window_start: 0,
            window_end: 0,
            buckets: 0,
            render: Vec::new(),
            last_len: 0,
            codecs: ThreadCodecs::default(),
        })
    }

    /// The run-wide configuration.
    pub fn config(&self) -> &EngineConfig {
        &self.cfg
    }

    /// The process-wide shared state.
    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// The thread's random generator.
    pub fn rng(&mut self) -> &mut XorShift {
        &mut self.rng
    }

    /// Sets the measurement window: figures count what was sent in `[start, end)`, the
    /// timeline has `buckets` one-second buckets from `start`.
    pub fn set_window(&mut self, start: u64, end: u64, buckets: usize) {
        self.window_start = start;
        self.window_end = end;
        self.buckets = buckets;
        if end != u64::MAX {
            self.stats.window_ns = end.saturating_sub(start);
        }
    }

    /// Whether `ts` falls in the measurement window.
    pub fn in_window(&self, ts: u64) -> bool {
        self.window_start != 0 && ts >= self.window_start && ts < self.window_end
    }

    /// The timeline bucket for the current time, if inside the window.
    pub fn bucket(&mut self) -> Option<&mut crate::stats::Bucket> {
        let now = self.now;
        self.stats.bucket(self.window_start, self.buckets, now)
    }

    /// Connections in the slab (pending, open or closing).
    pub fn conn_count(&self) -> usize {
        self.conns.len()
    }

    /// Connections that completed their handshake and have not ended.
    pub fn open_count(&self) -> usize {
        self.open
    }

    /// Connections still connecting or handshaking, or open and still waiting for their
    /// `--on-open-wait` replies: the opening stage is not over while there are any.
    pub fn pending_count(&self) -> usize {
        self.pending + self.session_waiting
    }

    /// Keys of the open connections (allocates; for stage changes, not per message).
    pub fn open_keys(&self) -> Vec<usize> {
        self.conns.iter().filter(|(_, c)| c.phase == Phase::Open).map(|(k, _)| k).collect()
    }

    /// Keys of every connection in the slab, whatever its phase.
    pub fn all_keys(&self) -> Vec<usize> {
        self.conns.iter().map(|(k, _)| k).collect()
    }

    /// The scenario state of a connection.
    pub fn state(&self, key: usize) -> Option<&S> {
        self.conns.get(key).map(|c| &c.state)
    }

    /// The scenario state of a connection, mutably.
    pub fn state_mut(&mut self, key: usize) -> Option<&mut S> {
        self.conns.get_mut(key).map(|c| &mut c.state)
    }

    /// Whether the connection is open (handshake done, no close sent or received).
    pub fn is_open(&self, key: usize) -> bool {
        self.conns.get(key).is_some_and(|c| c.phase == Phase::Open)
    }

    /// Outbound bytes queued on a connection and not yet accepted by the kernel.
    pub fn queued(&self, key: usize) -> usize {
        self.conns.get(key).map_or(0, |c| c.out.len() - c.out_pos)
    }

    /// Starts a non-blocking connect for connection number `index` (which picks its
    /// `--source` address). The attempt is counted; an immediate failure is recorded and
    /// the state handed back.
    /// The target is `targets[index % len]` (see [`Io::node_of`]).
    pub fn connect(&mut self, index: usize, state: S) -> Result<usize, (S, FailCause)> {
        let node = self.node_of(index);
        self.connect_to(index, state, false, node)
    }

    /// Like [`Io::connect`], to `alt_targets[alt_index % len]` when there are any
    /// (otherwise to `targets[alt_index % len]`).
    pub fn connect_alt(
        &mut self,
        index: usize,
        alt_index: usize,
        state: S,
    ) -> Result<usize, (S, FailCause)> {
        let alt = !self.cfg.alt_targets.is_empty();
        let node = alt_index % self.targets(alt).len().max(1);
        self.connect_to(index, state, alt, node)
    }

    /// The number of [`EngineConfig::targets`] (nodes).
    pub fn node_count(&self) -> usize {
        self.cfg.targets.len().max(1)
    }

    /// The target (node) connection number `index` goes to.
    pub fn node_of(&self, index: usize) -> usize {
        index % self.node_count()
    }

    /// The number of targets [`Io::connect_alt`] spreads over.
    pub fn alt_count(&self) -> usize {
        self.targets(!self.cfg.alt_targets.is_empty()).len().max(1)
    }

    fn connect_to(
        &mut self,
        index: usize,
        state: S,
        alt: bool,
        node: usize,
    ) -> Result<usize, (S, FailCause)> {
        self.stats.counters.attempted += 1;
        // The turn's clock may be stale after many connects in one turn.
        let started = now_ns();
        match self.start_connect(index, alt, node) {
            Ok(stream) => {
                let tls = match self.start_tls(alt, node) {
                    Ok(tls) => tls,
                    Err(cause) => {
                        self.record_failure(cause);
                        return Err((state, cause));
                    }
                };
                let mut random = [0u8; 16];
                self.rng.fill(&mut random);
                let entry = self.conns.vacant_entry();
                let key = entry.key();
                let mut stream = stream;
                if let Err(e) = self.poll.registry().register(
                    &mut stream,
                    Token(key),
                    Interest::READABLE | Interest::WRITABLE,
                ) {
                    let cause = FailCause::from_io(&e);
                    self.record_failure(cause);
                    return Err((state, cause));
                }
                entry.insert(Conn {
                    stream,
                    tls,
                    codec: None,
                    phase: Phase::Connecting,
                    key: proto::handshake_key(random),
                    started,
                    inbuf: Vec::new(),
                    out: Vec::new(),
                    out_pos: 0,
                    decoder: None,
                    close_sent: false,
                    server_closed_first: false,
                    dirty: false,
                    alt,
                    node,
                    index,
                    data_sent: 0,
                    session_replies: 0,
                    session_waiting: false,
                    state,
                });
                self.pending += 1;
                Ok(key)
            }
            Err(e) => {
                let cause = FailCause::from_io(&e);
                self.record_failure(cause);
                Err((state, cause))
            }
        }
    }

    fn targets(&self, alt: bool) -> &[Target] {
        if alt { &self.cfg.alt_targets } else { &self.cfg.targets }
    }

    /// The TLS session of a new connection to a `wss://` target; `None` for `ws://`.
    fn start_tls(
        &self,
        alt: bool,
        node: usize,
    ) -> Result<Option<Box<ClientConnection>>, FailCause> {
        let (Some(name), Some(config)) = (&target_of(&self.cfg, alt, node).tls_name, &self.cfg.tls)
        else {
            return Ok(None);
        };
        let name = tls::server_name(name).map_err(|_| FailCause::Tls)?;
        tls::connect(config, name).map(Some).map_err(|_| FailCause::Tls)
    }

    fn start_connect(&self, index: usize, alt: bool, node: usize) -> std::io::Result<TcpStream> {
        let addr = target_of(&self.cfg, alt, node).addr;
        let socket = Socket::new(
            Domain::for_address(addr),
            Type::STREAM.nonblocking().cloexec(),
            Some(Protocol::TCP),
        )?;
        socket.set_tcp_nodelay(true)?;
        if !self.cfg.sources.is_empty() {
            let ip = self.cfg.sources[index % self.cfg.sources.len()];
            bind_address_no_port(&socket);
            socket.bind(&SocketAddr::new(ip, 0).into())?;
        }
        match socket.connect(&addr.into()) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
            Err(e) => return Err(e),
        }
        Ok(TcpStream::from_std(socket.into()))
    }

    fn record_failure(&mut self, cause: FailCause) {
        self.stats.counters.failed += 1;
        self.stats.failures.record(cause);
        if let Some(b) = self.bucket() {
            b.failed += 1;
        }
    }

    /// Queues one data message made from `template` with `stamp` on an open connection.
    /// Returns false (and sends nothing) when the connection is not open or its queue is
    /// over the cap; the caller counts a skip.
    pub fn send(&mut self, key: usize, template: &Template, stamp: Stamp) -> bool {
        let max_queue = self.cfg.max_queue;
        let mask = self.rng.mask();
        let Some(conn) = self.conns.get_mut(key) else {
            return false;
        };
        if conn.phase != Phase::Open || conn.out.len() - conn.out_pos > max_queue {
            return false;
        }
        let kind = template.kind();
        match (conn.codec.as_deref_mut(), template.pattern()) {
            (None, Some(p)) => {
                self.render.clear();
                p.render(&mut self.render, stamp, conn.index, conn.data_sent);
                proto::push_frame(&mut conn.out, kind.opcode(), &self.render, mask);
                self.last_len = self.render.len();
            }
            (None, None) => {
                proto::push_frame_with(&mut conn.out, kind.opcode(), template.bytes(), mask, |p| {
                    kind.write_stamp(p, stamp)
                });
                self.last_len = template.len();
            }
            (Some(codec), pattern) => {
                // Compressed: the whole payload is needed before it can be deflated.
                self.render.clear();
                match pattern {
                    Some(p) => p.render(&mut self.render, stamp, conn.index, conn.data_sent),
                    None => {
                        self.render.extend_from_slice(template.bytes());
                        kind.write_stamp(&mut self.render, stamp);
                    }
                }
                self.codecs.compress(codec, &self.render);
                proto::push_compressed(&mut conn.out, kind.opcode(), &self.codecs.body, mask);
                self.stats.counters.compressed_sent += 1;
                self.last_len = self.render.len();
            }
        }
        conn.data_sent += 1;
        if !conn.dirty {
            conn.dirty = true;
            self.dirty.push(key);
        }
        true
    }

    /// Payload bytes of the last message [`Io::send`] queued.
    pub fn last_len(&self) -> usize {
        self.last_len
    }

    /// Queues the `--on-open` messages of a connection that just opened.
    fn send_on_open(&mut self, key: usize) {
        if self.cfg.session.on_open.is_empty() {
            return;
        }
        let cfg = self.cfg.clone();
        let mut sent = 0;
        if let Some(conn) = self.conns.get_mut(key) {
            for (n, p) in cfg.session.on_open.iter().enumerate() {
                self.render.clear();
                p.render(&mut self.render, Stamp { ts: 0, seq: 0 }, conn.index, n as u64);
                let mask = self.rng.mask();
                if let Some(codec) = conn.codec.as_deref_mut() {
                    self.codecs.compress(codec, &self.render);
                    proto::push_compressed(&mut conn.out, OpCode::Text, &self.codecs.body, mask);
                    self.stats.counters.compressed_sent += 1;
                } else {
                    proto::push_frame(&mut conn.out, OpCode::Text, &self.render, mask);
                }
                sent += 1;
            }
            if !conn.dirty {
                conn.dirty = true;
                self.dirty.push(key);
            }
        }
        self.stats.counters.session_sent += sent;
    }

    /// Starts the close handshake (1000) on an open connection. The connection ends when
    /// the server closes TCP or after the close timeout.
    pub fn close(&mut self, key: usize) {
        let mask = self.rng.mask();
        let deadline = self.now + self.cfg.close_timeout_ns;
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        match conn.phase {
            Phase::Open => {
                proto::push_close(&mut conn.out, Some(CloseCode::NORMAL), mask);
                conn.close_sent = true;
                conn.phase = Phase::Closing { deadline };
                self.open -= 1;
                if !conn.dirty {
                    conn.dirty = true;
                    self.dirty.push(key);
                }
            }
            Phase::Connecting | Phase::Handshaking => {
                // Abandoned before it opened: it did not open within the run.
                self.broken.push((key, End::Failed(FailCause::Timeout)));
            }
            Phase::Closing { .. } => {}
        }
    }

    /// Starts the close handshake on every open connection and abandons pending ones.
    pub fn close_all(&mut self) {
        let keys: Vec<usize> = self.conns.iter().map(|(k, _)| k).collect();
        for key in keys {
            self.close(key);
        }
    }

    /// Writes a connection's queue now, until it is empty or the socket is full. Returns
    /// true when the queue is empty afterwards. Errors end the connection after the
    /// current callback.
    pub fn flush(&mut self, key: usize) -> bool {
        let Some(conn) = self.conns.get_mut(key) else {
            return false;
        };
        if let Some(tls) = conn.tls.as_deref_mut() {
            // What rustls holds from earlier writes (or handshake messages) goes first.
            match tls::push(tls, &mut conn.stream) {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::WouldBlock => return false,
                Err(e) => {
                    let end = end_for_error(conn, FailCause::from_io(&e));
                    self.broken.push((key, end));
                    return false;
                }
            }
        }
        while conn.out_pos < conn.out.len() {
            let pending = &conn.out[conn.out_pos..];
            let written = match conn.tls.as_deref_mut() {
                None => conn.stream.write(pending),
                Some(tls) => tls::write(tls, &mut conn.stream, pending),
            };
            match written {
                Ok(0) => {
                    let end = end_for_error(conn, FailCause::Reset);
                    self.broken.push((key, end));
                    return false;
                }
                Ok(n) => conn.out_pos += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => {
                    let end = end_for_error(conn, FailCause::from_io(&e));
                    self.broken.push((key, end));
                    return false;
                }
            }
        }
        if conn.out_pos == conn.out.len() {
            conn.out.clear();
            conn.out_pos = 0;
            if conn.out.capacity() > 4 * SCRATCH || conn.phase == Phase::Handshaking {
                conn.out = Vec::new();
            }
            true
        } else {
            if conn.out_pos > SCRATCH && conn.out_pos * 2 > conn.out.len() {
                conn.out.drain(..conn.out_pos);
                conn.out_pos = 0;
            }
            false
        }
    }

    fn flush_dirty(&mut self) {
        let dirty = std::mem::take(&mut self.dirty);
        for &key in &dirty {
            if let Some(c) = self.conns.get_mut(key) {
                c.dirty = false;
            }
            self.flush(key);
        }
        // Keep the allocation.
        self.dirty = dirty;
        self.dirty.clear();
    }

    fn publish_progress(&mut self) {
        let Some(p) = self.shared.progress.get(self.thread) else {
            return;
        };
        let c = &self.stats.counters;
        p.open.store(self.open as u64, Ordering::Relaxed);
        p.sent.store(c.sent, Ordering::Relaxed);
        p.received.store(c.received, Ordering::Relaxed);
        p.failed.store(c.failed, Ordering::Relaxed);
        p.p99_ns.store(self.stats.latency.quantile(0.99), Ordering::Relaxed);
    }
}

fn end_for_error<S>(conn: &Conn<S>, cause: FailCause) -> End {
    match conn.phase {
        Phase::Connecting | Phase::Handshaking => End::Failed(cause),
        Phase::Open => End::ClosedByServer,
        Phase::Closing { .. } if conn.server_closed_first => End::ClosedByServer,
        Phase::Closing { .. } => End::ClosedByGenerator,
    }
}

/// Asks Linux to pick the local port at `connect` rather than at `bind`, so the same port
/// can serve several destinations and source addresses (`IP_BIND_ADDRESS_NO_PORT`).
/// Best effort: on failure `bind` still works, with a smaller port space.
fn bind_address_no_port(socket: &Socket) {
    use std::os::fd::AsRawFd;
    let one: libc::c_int = 1;
    // SAFETY: the fd is a valid, open socket owned by `socket` for the whole call; the
    // option value points to a live c_int and its exact size is passed.
    #[allow(unsafe_code)]
    let _ = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_BIND_ADDRESS_NO_PORT,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
}

/// Measures how much of the measurement window the thread spent idle in `poll`, and how
/// many whole seconds of it had (almost) no idle time at all: a saturated generator.
struct LoadMeter {
    last: u64,
    sec_start: u64,
    sec_idle: u64,
    idle_total: u64,
    observed_total: u64,
    observed_secs: u64,
    saturated_secs: u64,
}

impl LoadMeter {
    fn new(now: u64) -> LoadMeter {
        LoadMeter {
            last: now,
            sec_start: 0,
            sec_idle: 0,
            idle_total: 0,
            observed_total: 0,
            observed_secs: 0,
            saturated_secs: 0,
        }
    }

    /// One poll from `poll_start` to `poll_end`; `got_events` when it returned any.
    /// Counts only the part of the loop inside `window` (start, end).
    fn account(&mut self, poll_start: u64, poll_end: u64, got_events: bool, window: (u64, u64)) {
        let (ws, we) = window;
        let took = poll_end.saturating_sub(poll_start);
        // A poll that returned events at once was not idle; one that waited was.
        let idle = if got_events { took.saturating_sub(BLOCKED_NS) } else { took };
        let from = self.last.max(ws);
        let to = poll_end.min(we);
        self.last = poll_end;
        if ws == 0 || to <= from {
            return;
        }
        let span = to - from;
        let idle = idle.min(span);
        self.observed_total += span;
        self.idle_total += idle;
        if self.sec_start < ws {
            self.sec_start = ws;
            self.sec_idle = 0;
        }
        self.sec_idle += idle;
        // Seconds are aligned on the window's start; idle time carries into the next.
        while to >= self.sec_start + 1_000_000_000 {
            let this = self.sec_idle.min(1_000_000_000);
            self.observed_secs += 1;
            if this * 100 < 1_000_000_000 {
                self.saturated_secs += 1;
            }
            self.sec_idle -= this;
            self.sec_start += 1_000_000_000;
        }
    }

    fn busy(&self) -> f64 {
        if self.observed_total == 0 {
            0.0
        } else {
            1.0 - (self.idle_total as f64 / self.observed_total as f64).clamp(0.0, 1.0)
        }
    }
}

/// Runs a driver on this thread until it says [`Tick::Done`].
pub fn run<D: Driver>(io: &mut Io<D::State>, driver: &mut D) {
    let mut events = Events::with_capacity(1024);
    io.now = now_ns();
    let mut meter = LoadMeter::new(io.now);
    let mut next_maintenance = io.now;
    loop {
        io.now = now_ns();
        let tick = driver.tick(io);
        end_broken(io, driver);
        if tick == Tick::Done {
            break;
        }
        io.flush_dirty();
        end_broken(io, driver);
        if io.now >= next_maintenance {
            maintenance(io, driver);
            next_maintenance = io.now + MAINTENANCE_NS;
        }
        let wake = match tick {
            Tick::At(t) => t.min(next_maintenance),
            _ => next_maintenance,
        };
        let timeout = if io.again.is_empty() {
            poll_timeout(io.now, wake, matches!(tick, Tick::At(_)))
        } else {
            Duration::ZERO
        };
        let t0 = now_ns();
        if let Err(e) = io.poll.poll(&mut events, Some(timeout))
            && e.kind() != ErrorKind::Interrupted
        {
            // epoll_wait failing is not recoverable for this thread.
            io.shared.abort();
            break;
        }
        let t1 = now_ns();
        meter.account(t0, t1, !events.is_empty(), (io.window_start, io.window_end));
        io.now = t1;
        for ev in events.iter() {
            let key = ev.token().0;
            let hup = ev.is_read_closed() || ev.is_error();
            let readable = ev.is_readable() || hup;
            let writable = ev.is_writable() || ev.is_write_closed();
            on_event(io, driver, key, readable, writable, hup);
            end_broken(io, driver);
        }
        let again = std::mem::take(&mut io.again);
        for key in again {
            if io.conns.get(key).is_some() {
                read_frames(io, driver, key, true);
                end_broken(io, driver);
            }
        }
        io.flush_dirty();
        end_broken(io, driver);
    }
    // Whatever is left (close timeouts cut short by the end of the run).
    let keys: Vec<usize> = io.conns.iter().map(|(k, _)| k).collect();
    for key in keys {
        let end = io
            .conns
            .get(key)
            .map_or(End::ClosedByGenerator, |c| end_for_error(c, FailCause::Timeout));
        end_conn(io, driver, key, end);
    }
    io.publish_progress();
    io.stats.threads.push(crate::stats::ThreadLoad {
        worker: 0,
        thread: io.thread,
        busy: meter.busy(),
        saturated_secs: meter.saturated_secs,
        observed_secs: meter.observed_secs,
    });
}

fn poll_timeout(now: u64, wake: u64, precise: bool) -> Duration {
    let until = wake.saturating_sub(now);
    if until == 0 || (precise && until <= SPIN_NS) {
        Duration::ZERO
    } else if precise {
        Duration::from_nanos(until - SPIN_NS)
    } else {
        Duration::from_nanos(until)
    }
}

fn maintenance<D: Driver>(io: &mut Io<D::State>, driver: &mut D) {
    let now = io.now;
    let timeout = io.cfg.connect_timeout_ns;
    let expired: Vec<(usize, End)> = io
        .conns
        .iter()
        .filter_map(|(k, c)| match c.phase {
            Phase::Connecting | Phase::Handshaking if now.saturating_sub(c.started) > timeout => {
                Some((k, End::Failed(FailCause::Timeout)))
            }
            Phase::Closing { deadline } if now >= deadline => {
                Some((k, end_for_error(c, FailCause::Timeout)))
            }
            _ => None,
        })
        .collect();
    for (key, end) in expired {
        end_conn(io, driver, key, end);
    }
    let open = io.open as u64;
    if let Some(b) = io.bucket() {
        b.open = open;
    }
    io.publish_progress();
}

fn end_broken<D: Driver>(io: &mut Io<D::State>, driver: &mut D) {
    while let Some((key, end)) = io.broken.pop() {
        end_conn(io, driver, key, end);
    }
}

/// Removes a connection and tells the driver.
fn end_conn<D: Driver>(io: &mut Io<D::State>, driver: &mut D, key: usize, end: End) {
    let Some(mut conn) = io.conns.try_remove(key) else {
        return;
    };
    let _ = io.poll.registry().deregister(&mut conn.stream);
    if conn.session_waiting {
        io.session_waiting -= 1;
    }
    if conn.phase == Phase::Open {
        io.open -= 1;
    } else if conn.phase.is_pending() {
        io.pending -= 1;
    }
    match end {
        End::Failed(cause) => io.record_failure(cause),
        End::ClosedByServer => {
            io.stats.counters.closed_by_server += 1;
            if let Some(b) = io.bucket() {
                b.closed += 1;
                b.server_closed += 1;
            }
        }
        End::ClosedByGenerator => {
            io.stats.counters.closed_by_generator += 1;
            if let Some(b) = io.bucket() {
                b.closed += 1;
            }
        }
    }
    driver.on_end(io, key, conn.state, end);
}

fn on_event<D: Driver>(
    io: &mut Io<D::State>,
    driver: &mut D,
    key: usize,
    readable: bool,
    writable: bool,
    hup: bool,
) {
    let Some(conn) = io.conns.get_mut(key) else {
        return;
    };
    match conn.phase {
        Phase::Connecting => {
            match conn.stream.take_error() {
                Ok(None) => {}
                Ok(Some(e)) | Err(e) => {
                    io.broken.push((key, End::Failed(FailCause::from_io(&e))));
                    return;
                }
            }
            match conn.stream.peer_addr() {
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::NotConnected => return,
                Err(e) => {
                    io.broken.push((key, End::Failed(FailCause::from_io(&e))));
                    return;
                }
            }
            let took = io.now.saturating_sub(conn.started);
            conn.phase = Phase::Handshaking;
            let target = target_of(&io.cfg, conn.alt, conn.node);
            conn.out = proto::upgrade_request(target, &conn.key, io.cfg.deflate, &io.cfg.session);
            conn.out_pos = 0;
            io.stats.connect.record(took);
            io.flush(key);
            if readable {
                read_handshake(io, driver, key);
            }
        }
        Phase::Handshaking => {
            if writable {
                io.flush(key);
            }
            if readable {
                read_handshake(io, driver, key);
            }
        }
        Phase::Open | Phase::Closing { .. } => {
            if writable && io.flush(key) && io.is_open(key) {
                driver.on_writable(io, key);
            }
            if readable {
                read_frames(io, driver, key, hup);
                // The driver's answers go out now, while their bytes are still in cache
                // and the server can start on them, not with the turn's other flushes: one
                // generator thread then sends ~11% more 1 KiB echoes a second. Not for a
                // connection the read just ended (its end is recorded already).
                if !io.broken.iter().any(|&(k, _)| k == key) {
                    io.flush(key);
                }
            }
        }
    }
}

fn read_handshake<D: Driver>(io: &mut Io<D::State>, driver: &mut D, key: usize) {
    let deflate_offered = io.cfg.deflate;
    let max_message = io.cfg.max_message;
    let cfg = io.cfg.clone();
    let Some(conn) = io.conns.get_mut(key) else {
        return;
    };
    let mut chunk = [0u8; 4096];
    let result = loop {
        match read_socket(&mut conn.stream, conn.tls.as_deref_mut(), &mut chunk) {
            Ok(0) => break Err(FailCause::Reset),
            Ok(n) => {
                conn.inbuf.extend_from_slice(&chunk[..n]);
                match proto::check_response(&conn.inbuf, &conn.key, deflate_offered, &cfg.session) {
                    Ok(None) => continue,
                    Ok(Some((up, used))) => break Ok((up, used)),
                    Err(proto::HandshakeFailure::Status(s)) => break Err(FailCause::Http(s)),
                    Err(proto::HandshakeFailure::BadDeflateParameters) => {
                        break Err(FailCause::Deflate);
                    }
                    Err(_) => break Err(FailCause::Handshake),
                }
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => return,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => break Err(FailCause::from_io(&e)),
        }
    };
    match result {
        Err(cause) => {
            io.broken.push((key, End::Failed(cause)));
        }
        Ok((upgraded, used)) => {
            conn.inbuf.drain(..used);
            if conn.inbuf.is_empty() {
                conn.inbuf = Vec::new();
            }
            conn.phase = Phase::Open;
            let mut decoder = proto::client_decoder(max_message);
            if let Some(agreed) = upgraded.deflate {
                decoder.set_compression(true);
                conn.codec = Some(Box::new(ConnCodec::new(agreed)));
            }
            conn.decoder = Some(decoder);
            let took = io.now.saturating_sub(conn.started);
            io.open += 1;
            io.pending -= 1;
            io.stats.counters.opened += 1;
            io.stats.handshake.record(took);
            let handshakes = io.cfg.timeline_handshakes;
            if let Some(b) = io.bucket() {
                b.opened += 1;
                if handshakes {
                    b.latency.record(took);
                }
            }
            if io.cfg.session.replies > 0
                && let Some(conn) = io.conns.get_mut(key)
            {
                conn.session_waiting = true;
                io.session_waiting += 1;
            }
            io.send_on_open(key);
            driver.on_open(io, key);
            // Frames that came with the 101, and anything after.
            if io.conns.get(key).is_some() {
                read_frames(io, driver, key, true);
            }
        }
    }
}

/// What the engine does with one decoded item, owned so the read buffer can be reused.
enum Item {
    Data(Msg),
    Ping([u8; MAX_CONTROL_PAYLOAD], usize),
    Pong,
    /// The server's close code (already checked by the decoder: a code a peer may send).
    Close(Option<CloseCode>),
}

/// The stamp a received message carries: a marker anywhere in it (templates), or the
/// kind's layout in a message of the kind's type.
fn stamp_of(kind: PayloadKind, marker: bool, text: bool, payload: &[u8]) -> Option<Stamp> {
    if marker { find_stamp(payload) } else { kind.read_stamp_of(text, payload) }
}

fn summarize(item: Incoming<'_>, kind: PayloadKind, marker: bool) -> Item {
    let stamp = |text: bool, p: &[u8]| stamp_of(kind, marker, text, p);
    match item {
        Incoming::Text(t) => Item::Data(Msg { stamp: stamp(true, t.as_bytes()), len: t.len() }),
        Incoming::Binary(b) => Item::Data(Msg { stamp: stamp(false, &b), len: b.len() }),
        Incoming::Ping(p) => {
            // The decoder holds control payloads to MAX_CONTROL_PAYLOAD (§5.5).
            let mut buf = [0u8; MAX_CONTROL_PAYLOAD];
            let n = p.len().min(MAX_CONTROL_PAYLOAD);
            buf[..n].copy_from_slice(&p[..n]);
            Item::Ping(buf, n)
        }
        Incoming::Pong(_) => Item::Pong,
        Incoming::Close(c) => Item::Close(c.map(|f| f.code)),
        // Inflated by the caller before it gets here; count one that is not as a message
        // that is not ours.
        Incoming::Compressed { body, .. } => Item::Data(Msg { stamp: None, len: body.len() }),
    }
}

enum ReadEnd {
    Drained,
    Eof,
    Error(FailCause),
    Protocol(ProtocolError),
}

/// Inflates a compressed message; a text message must be UTF-8 once inflated (RFC 7692
/// §6.1 compresses the bytes RFC 6455 §8.1 checks).
fn inflate<'a>(
    codecs: &'a mut ThreadCodecs,
    codec: &mut ConnCodec,
    text: bool,
    body: &[u8],
    max_message: usize,
) -> Result<&'a [u8], ProtocolError> {
    let payload = codecs.inflate(codec, body, max_message)?;
    if text && std::str::from_utf8(payload).is_err() {
        return Err(ProtocolError::InvalidUtf8);
    }
    Ok(payload)
}

fn read_frames<D: Driver>(io: &mut Io<D::State>, driver: &mut D, key: usize, hup: bool) {
    let kind = io.cfg.payload;
    let marker = io.cfg.marker_stamps;
    let max_message = io.cfg.max_message;
    let max_buf = io.cfg.max_message.saturating_add(64).max(SCRATCH);
    let mut buf = std::mem::take(&mut io.scratch);
    if buf.len() < SCRATCH {
        buf.resize(SCRATCH, 0);
    }
    let mut filled = match io.conns.get_mut(key) {
        Some(conn) => {
            let n = conn.inbuf.len();
            if n > buf.len() {
                buf.resize(n.next_power_of_two(), 0);
            }
            buf[..n].copy_from_slice(&conn.inbuf);
            conn.inbuf.clear();
            if conn.inbuf.capacity() > 1024 {
                conn.inbuf = Vec::new();
            }
            n
        }
        None => {
            io.scratch = buf;
            return;
        }
    };
    let mut reads = 0;
    let mut short_read = false;
    let outcome = 'outer: loop {
        // Decode everything complete in buf[..filled].
        let mut pos = 0;
        loop {
            let Some(conn) = io.conns.get_mut(key) else {
                break 'outer ReadEnd::Drained;
            };
            let Some(decoder) = conn.decoder.as_mut() else {
                break;
            };
            match decoder.decode(&mut buf[pos..filled]) {
                Ok((0, None)) => break,
                Ok((n, None)) => pos += n,
                Ok((n, Some(Incoming::Compressed { text, body }))) => {
                    pos += n;
                    let Some(codec) = conn.codec.as_deref_mut() else {
                        // The decoder only yields these once compression was agreed.
                        break 'outer ReadEnd::Protocol(ProtocolError::ReservedBits);
                    };
                    let item = match inflate(&mut io.codecs, codec, text, &body, max_message) {
                        Ok(payload) => {
                            let stamp = stamp_of(kind, marker, text, payload);
                            Item::Data(Msg { stamp, len: payload.len() })
                        }
                        Err(e) => break 'outer ReadEnd::Protocol(e),
                    };
                    io.stats.counters.compressed_received += 1;
                    dispatch(io, driver, key, item);
                }
                Ok((n, Some(item))) => {
                    pos += n;
                    let item = summarize(item, kind, marker);
                    dispatch(io, driver, key, item);
                }
                Err(e) => break 'outer ReadEnd::Protocol(e),
            }
        }
        buf.copy_within(pos..filled, 0);
        filled -= pos;
        if filled == buf.len() {
            if buf.len() >= max_buf {
                break ReadEnd::Protocol(ProtocolError::MessageTooLarge);
            }
            buf.resize((buf.len() * 2).min(max_buf), 0);
        }
        if short_read {
            // A read that did not fill the buffer drained the socket: on Linux, data that
            // arrives after it raises a new edge, so the `WouldBlock` read is saved.
            break ReadEnd::Drained;
        }
        if reads >= READ_BUDGET {
            io.again.push(key);
            break ReadEnd::Drained;
        }
        let Some(conn) = io.conns.get_mut(key) else {
            break ReadEnd::Drained;
        };
        let space = buf.len() - filled;
        match read_socket(&mut conn.stream, conn.tls.as_deref_mut(), &mut buf[filled..]) {
            Ok(0) => break ReadEnd::Eof,
            Ok(n) => {
                filled += n;
                reads += 1;
                // Only without a hang-up in this event: its FIN may sit behind the data.
                short_read = n < space && !hup;
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => break ReadEnd::Drained,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => break ReadEnd::Error(FailCause::from_io(&e)),
        }
    };
    if let Some(conn) = io.conns.get_mut(key) {
        if filled > 0 {
            conn.inbuf.extend_from_slice(&buf[..filled]);
        }
        match outcome {
            ReadEnd::Drained => {}
            ReadEnd::Eof => {
                let end = if conn.close_sent && !conn.server_closed_first {
                    End::ClosedByGenerator
                } else {
                    End::ClosedByServer
                };
                io.broken.push((key, end));
            }
            ReadEnd::Error(cause) => {
                let end = end_for_error(conn, cause);
                io.broken.push((key, end));
            }
            ReadEnd::Protocol(error) => {
                // The server broke RFC 6455: fail the connection (§7.1.7), saying why in
                // a close frame first as wsloop's own sessions do. One write, best effort:
                // the socket is dropped right after.
                if !conn.close_sent {
                    proto::push_close(&mut conn.out, Some(error.close_code()), io.rng.mask());
                    conn.close_sent = true;
                    let pending = &conn.out[conn.out_pos..];
                    let _ = match conn.tls.as_deref_mut() {
                        None => conn.stream.write(pending),
                        Some(tls) => tls::write(tls, &mut conn.stream, pending),
                    };
                }
                conn.server_closed_first = true;
                io.broken.push((key, End::ClosedByServer));
            }
        }
    }
    if buf.len() > 4 * SCRATCH {
        buf = vec![0; SCRATCH];
    }
    io.scratch = buf;
}

fn dispatch<D: Driver>(io: &mut Io<D::State>, driver: &mut D, key: usize, item: Item) {
    match item {
        Item::Data(msg) => {
            io.stats.counters.bytes_received += msg.len as u64;
            let awaited = io.cfg.session.replies;
            if let Some(conn) = io.conns.get_mut(key)
                && msg.stamp.is_none()
                && conn.data_sent == 0
            {
                // A greeting or the answer to --on-open: the session, not the load.
                io.stats.counters.session_replies += 1;
                conn.session_replies += 1;
                if conn.session_waiting && conn.session_replies >= awaited {
                    conn.session_waiting = false;
                    io.session_waiting -= 1;
                }
                return;
            }
            driver.on_message(io, key, msg);
        }
        Item::Ping(payload, n) => {
            let mask = io.rng.mask();
            if let Some(conn) = io.conns.get_mut(key)
                && conn.phase == Phase::Open
            {
                proto::push_frame(&mut conn.out, OpCode::Pong, &payload[..n], mask);
                io.stats.counters.pings += 1;
                if !conn.dirty {
                    conn.dirty = true;
                    io.dirty.push(key);
                }
            }
        }
        Item::Pong => {}
        Item::Close(code) => {
            let mask = io.rng.mask();
            let deadline = io.now + io.cfg.close_timeout_ns;
            let Some(conn) = io.conns.get_mut(key) else {
                return;
            };
            if conn.close_sent {
                // Our close was answered; wait for the server to close TCP (RFC 6455 §7.1.1).
                return;
            }
            // The server closes first: echo its code, or no code if it sent none (§5.5.1,
            // the rule wsloop's sessions follow), then wait for its FIN.
            proto::push_close(&mut conn.out, code, mask);
            conn.close_sent = true;
            conn.server_closed_first = true;
            if conn.phase == Phase::Open {
                io.open -= 1;
            }
            conn.phase = Phase::Closing { deadline };
            if !conn.dirty {
                conn.dirty = true;
                io.dirty.push(key);
            }
        }
    }
}

/// Reads from a connection's socket, through its TLS session if it has one.
fn read_socket(
    stream: &mut TcpStream,
    tls: Option<&mut ClientConnection>,
    buf: &mut [u8],
) -> std::io::Result<usize> {
    match tls {
        None => stream.read(buf),
        Some(tls) => tls::read(tls, stream, buf),
    }
}

/// The target a connection went to: number `node` of its list.
fn target_of(cfg: &EngineConfig, alt: bool, node: usize) -> &Target {
    let list = if alt && !cfg.alt_targets.is_empty() { &cfg.alt_targets } else { &cfg.targets };
    &list[node % list.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_spin_only_near_precise_deadlines() {
        assert_eq!(poll_timeout(100, 50, true), Duration::ZERO);
        assert_eq!(poll_timeout(0, 500_000, true), Duration::ZERO);
        assert_eq!(poll_timeout(0, 5_000_000, true), Duration::from_nanos(4_000_000));
        assert_eq!(poll_timeout(0, 500_000, false), Duration::from_nanos(500_000));
    }

    #[test]
    fn meter_flags_a_second_without_idle() {
        let mut m = LoadMeter::new(0);
        let window = (1_000, u64::MAX / 2);
        // A whole second of polls that always returned events at once.
        let mut t = 1_000;
        while t < 1_000 + 1_100_000_000 {
            m.account(t, t + 1_000, true, window);
            t += 10_000;
        }
        assert_eq!(m.saturated_secs, 1);
        // A second that slept half the time.
        m.account(t, t + 600_000_000, false, window);
        m.account(t + 1_199_999_000, t + 1_200_000_000, true, window);
        assert_eq!(m.observed_secs, 2);
        assert_eq!(m.saturated_secs, 1);
        assert!(m.busy() > 0.6 && m.busy() < 0.9, "{}", m.busy());
        // Nothing before the window counts.
        let mut early = LoadMeter::new(0);
        early.account(0, 500, false, (1_000, 2_000));
        assert_eq!(early.observed_total, 0);
    }
}
