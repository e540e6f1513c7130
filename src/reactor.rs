//! One reactor thread: a `mio::Poll` that owns a listener and its connections.
//!
//! # Readiness rules (mio, edge-triggered)
//! - A readable socket is read until `WouldBlock`, or until its per-turn read budget is
//!   spent; then it goes on `read_again` and is read next turn without waiting for an
//!   event, so one firehose cannot starve the rest.
//! - `Interrupted` is retried; spurious events are harmless (a read just sees `WouldBlock`).
//! - Events for a slot freed earlier in the same batch are skipped with `Slab::get`.
//! - One `Waker` per `Poll`; other threads wake it only when the reactor sleeps
//!   (see [`Handle`](crate::Handle)).
//!
//! # A turn
//! poll → accept / read / write per event → read the budget-limited connections again →
//! fire timers → drain commands → send the turn's event batches to workers → mark asleep,
//! drain commands once more (closes the race with senders) → write every connection that
//! has frames queued, one `writev` each → poll.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::Bytes;
use crossbeam_channel::Receiver;
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use slab::Slab;

use crate::config::Config;
use crate::conn::{Conn, Flushed, Phase};
use crate::dispatch::Dispatcher;
use crate::event::{ConnId, ConnectInfo, DisconnectReason, Event, Message};
use crate::handle::{Command, Remote, Shared};
use crate::liveness::Liveness;
use crate::protocol::frame::OpCode;
use crate::protocol::handshake::{self, Request};
use crate::protocol::message::{Decoder, DecoderLimits, Incoming, Role};
use crate::protocol::{CloseCode, ProtocolError};
use crate::timer::{Entry, TimerWheel};
use crate::wire;

pub(crate) const LISTENER: Token = Token(usize::MAX - 1);
pub(crate) const WAKER: Token = Token(usize::MAX - 2);

/// Bytes read from one connection per turn before others get their go.
const READ_BUDGET: usize = 256 << 10;
/// Bytes one `read` asks for.
const READ_CHUNK: usize = 64 << 10;

/// A reactor's parts, made on the starting thread so errors surface from `Server::start`.
pub(crate) struct ReactorParts {
    pub(crate) index: usize,
    pub(crate) poll: Poll,
    pub(crate) listener: TcpListener,
    pub(crate) commands: Receiver<Command>,
    pub(crate) dispatcher: Dispatcher,
}

pub(crate) struct Reactor {
    poll: Poll,
    listener: Option<TcpListener>,
    conns: Slab<Conn>,
    /// Reads land after `front` bytes, so a carried partial head or frame can be put in
    /// front of them and parsed as one slice.
    scratch: Vec<u8>,
    front: usize,
    ctx: Ctx,
}

/// Everything but the connections and the read buffer, so both can be borrowed beside it.
struct Ctx {
    index: usize,
    shared: Arc<Shared>,
    config: Arc<Config>,
    commands: Receiver<Command>,
    dispatcher: Dispatcher,
    wheel: TimerWheel,
    limits: DecoderLimits,
    next_generation: u32,
    dirty: Vec<usize>,
    read_again: Vec<usize>,
    paused: Vec<usize>,
    shutdown_deadline: Option<Instant>,
}

impl Ctx {
    fn remote(&self) -> &Remote {
        &self.shared.reactors[self.index]
    }

    fn id(&self, slot: usize, conn: &Conn) -> ConnId {
        ConnId::new(self.index, conn.generation, slot)
    }

    fn queue(&mut self, slot: usize, conn: &mut Conn, frame: Bytes) {
        conn.out.push_back(frame);
        if !conn.dirty {
            conn.dirty = true;
            self.dirty.push(slot);
        }
    }

    fn set_deadline(&mut self, slot: usize, conn: &mut Conn, after: Duration) {
        let tick = self.wheel.deadline(Instant::now(), after);
        conn.deadline = tick;
        if conn.timer_tick == 0 || tick < conn.timer_tick {
            conn.timer_tick = tick;
            self.wheel.schedule(slot as u32, tick);
        }
    }

    /// Sends a close frame and waits for the peer's (§7.1.2).
    fn start_close(
        &mut self,
        slot: usize,
        conn: &mut Conn,
        frame: Bytes,
        reason: DisconnectReason,
    ) {
        if conn.phase != Phase::Open {
            return;
        }
        conn.set_reason(reason);
        conn.phase = Phase::Closing;
        self.remote()
            .live
            .set(self.id(slot, conn), Liveness::Closing);
        self.queue(slot, conn, frame);
        let timeout = self.config.close_timeout;
        self.set_deadline(slot, conn, timeout);
    }

    /// Fails the connection (§7.1.7): close with the error's code, then wait for the peer.
    fn fail(&mut self, slot: usize, conn: &mut Conn, error: ProtocolError) {
        if conn.phase == Phase::Open {
            let frame = wire::close_frame(Some(error.close_code()), "");
            self.start_close(slot, conn, frame, DisconnectReason::ProtocolError(error));
        } else {
            self.flush_then_close(slot, conn);
        }
    }

    /// Stops reading; TCP closes once the queue is written.
    fn flush_then_close(&mut self, slot: usize, conn: &mut Conn) {
        conn.phase = Phase::Flushing;
        conn.carry = Vec::new();
        if conn.connected {
            self.remote()
                .live
                .set(self.id(slot, conn), Liveness::Closing);
        }
        let timeout = self.config.close_timeout;
        self.set_deadline(slot, conn, timeout);
        if !conn.dirty {
            conn.dirty = true;
            self.dirty.push(slot);
        }
    }

    fn emit_message(&mut self, slot: usize, conn: &Conn, message: Message) {
        let id = self.id(slot, conn);
        self.dispatcher
            .emit(conn.worker, Event::Message { id, message });
    }
}

impl Reactor {
    pub(crate) fn new(parts: ReactorParts, shared: Arc<Shared>, config: Arc<Config>) -> Reactor {
        let limits = DecoderLimits {
            max_message_size: config.max_message_size,
            max_frame_size: config.frame_limit(),
        };
        let front = config.max_header_bytes.max(256);
        Reactor {
            poll: parts.poll,
            listener: Some(parts.listener),
            conns: Slab::new(),
            scratch: vec![0; front + READ_CHUNK],
            front,
            ctx: Ctx {
                index: parts.index,
                shared,
                config,
                commands: parts.commands,
                dispatcher: parts.dispatcher,
                wheel: TimerWheel::new(Instant::now()),
                limits,
                next_generation: 1,
                dirty: Vec::new(),
                read_again: Vec::new(),
                paused: Vec::new(),
                shutdown_deadline: None,
            },
        }
    }

    /// Runs until shutdown has closed every connection.
    pub(crate) fn run(mut self) {
        let mut events = Events::with_capacity(1024);
        loop {
            self.ctx.remote().awake.store(false, Ordering::SeqCst);
            self.drain_commands();
            self.flush_dirty();
            if self.shutdown_done() {
                break;
            }
            let timeout = self.poll_timeout();
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                break;
            }
            self.ctx.remote().awake.store(true, Ordering::SeqCst);
            for event in events.iter() {
                match event.token() {
                    LISTENER => self.accept_all(),
                    WAKER => {}
                    Token(slot) => {
                        if event.is_writable() {
                            self.write_ready(slot);
                        }
                        if event.is_readable() || event.is_read_closed() || event.is_error() {
                            self.read(slot);
                        }
                    }
                }
            }
            self.read_again();
            self.run_timers();
            self.drain_commands();
            self.dispatch_batches();
        }
        self.close_all(DisconnectReason::Shutdown);
        self.dispatch_batches();
        self.drain_backlog();
    }

    fn poll_timeout(&self) -> Option<Duration> {
        if !self.ctx.read_again.is_empty() {
            return Some(Duration::ZERO);
        }
        if self.ctx.dispatcher.has_backlog() {
            return Some(Duration::from_millis(1));
        }
        self.ctx.wheel.next_wake(Instant::now())
    }

    fn shutdown_done(&self) -> bool {
        match self.ctx.shutdown_deadline {
            Some(deadline) => self.conns.is_empty() || Instant::now() >= deadline,
            None => false,
        }
    }

    // ---- accepting ----

    fn accept_all(&mut self) {
        loop {
            let Some(listener) = &self.listener else {
                return;
            };
            match listener.accept() {
                Ok((stream, _)) => self.admit(stream),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::ConnectionAborted => continue,
                // Out of file descriptors or memory: leave the rest in the backlog; they
                // are retried on the next listener event.
                Err(_) => return,
            }
        }
    }

    fn admit(&mut self, mut stream: TcpStream) {
        let shared = &self.ctx.shared;
        if shared.sockets.fetch_add(1, Ordering::AcqRel) >= self.ctx.config.max_connections {
            shared.sockets.fetch_sub(1, Ordering::AcqRel);
            use std::io::Write;
            let _ = stream.write(&handshake::error_response(503));
            return;
        }
        let _ = stream.set_nodelay(true);
        let entry = self.conns.vacant_entry();
        let slot = entry.key();
        let interest = Interest::READABLE | Interest::WRITABLE;
        if self
            .poll
            .registry()
            .register(&mut stream, Token(slot), interest)
            .is_err()
        {
            self.ctx.shared.sockets.fetch_sub(1, Ordering::AcqRel);
            return;
        }
        let generation = self.ctx.next_generation;
        self.ctx.next_generation = (generation + 1) & ConnId::GEN_MASK;
        let worker = self.ctx.dispatcher.assign();
        let decoder = Decoder::new(Role::Server, self.ctx.limits);
        let conn = entry.insert(Conn::new(stream, generation, worker, decoder));
        let timeout = self.ctx.config.handshake_timeout;
        self.ctx.set_deadline(slot, conn, timeout);
    }

    // ---- reading ----

    fn read_again(&mut self) {
        let slots = std::mem::take(&mut self.ctx.read_again);
        for slot in slots {
            self.read(slot);
        }
    }

    fn read(&mut self, slot: usize) {
        let mut budget = READ_BUDGET;
        loop {
            let Some(conn) = self.conns.get_mut(slot) else {
                return;
            };
            if conn.read_paused
                || !matches!(conn.phase, Phase::Handshake | Phase::Open | Phase::Closing)
            {
                return;
            }
            if self.ctx.dispatcher.is_congested(conn.worker) {
                conn.read_paused = true;
                self.ctx.paused.push(slot);
                return;
            }
            if budget == 0 {
                self.ctx.read_again.push(slot);
                return;
            }
            let front = self.front;
            let n = match conn.read(&mut self.scratch[front..]) {
                Ok(0) => {
                    conn.set_reason(DisconnectReason::Abnormal);
                    self.close_now(slot);
                    return;
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) => {
                    conn.set_reason(DisconnectReason::Io(e.kind()));
                    self.close_now(slot);
                    return;
                }
            };
            budget = budget.saturating_sub(n);
            let carry = std::mem::take(&mut conn.carry);
            let start = front - carry.len();
            self.scratch[start..front].copy_from_slice(&carry);
            let data = &mut self.scratch[start..front + n];
            let used = match conn.phase {
                Phase::Handshake => handshake_bytes(&mut self.ctx, slot, conn, data),
                _ => frame_bytes(&mut self.ctx, slot, conn, data),
            };
            if conn.phase.reads_frames() || conn.phase == Phase::Handshake {
                let rest = &data[used.min(data.len())..];
                if !rest.is_empty() {
                    conn.carry = rest.to_vec();
                }
            }
        }
    }

    // ---- writing ----

    fn write_ready(&mut self, slot: usize) {
        let Some(conn) = self.conns.get_mut(slot) else {
            return;
        };
        if !conn.out.is_empty() && !conn.dirty {
            conn.dirty = true;
            self.ctx.dirty.push(slot);
        }
    }

    fn flush_dirty(&mut self) {
        let slots = std::mem::take(&mut self.ctx.dirty);
        for &slot in &slots {
            let Some(conn) = self.conns.get_mut(slot) else {
                continue;
            };
            conn.dirty = false;
            match conn.flush() {
                Ok(Flushed::All) if conn.phase == Phase::Flushing => self.close_now(slot),
                Ok(_) => {}
                Err(e) => {
                    conn.set_reason(DisconnectReason::Io(e.kind()));
                    self.close_now(slot);
                }
            }
        }
        // Reuse the list's memory for the next turn.
        let mut slots = slots;
        slots.clear();
        if self.ctx.dirty.is_empty() {
            self.ctx.dirty = slots;
        }
    }

    // ---- ending ----

    /// Drops the socket and delivers `Disconnect` if `Connect` was delivered.
    fn close_now(&mut self, slot: usize) {
        if !self.conns.contains(slot) {
            return;
        }
        let mut conn = self.conns.remove(slot);
        let _ = self.poll.registry().deregister(&mut conn.stream);
        self.ctx.shared.sockets.fetch_sub(1, Ordering::AcqRel);
        if conn.connected {
            let id = self.ctx.id(slot, &conn);
            self.ctx.remote().live.set(id, Liveness::Gone);
            self.ctx.shared.open.fetch_sub(1, Ordering::AcqRel);
            let reason = conn.reason.map_or(DisconnectReason::Abnormal, |r| *r);
            self.ctx
                .dispatcher
                .emit(conn.worker, Event::Disconnect { id, reason });
        }
    }

    fn close_all(&mut self, reason: DisconnectReason) {
        let slots: Vec<usize> = self.conns.iter().map(|(slot, _)| slot).collect();
        for slot in slots {
            if let Some(conn) = self.conns.get_mut(slot) {
                conn.set_reason(reason.clone());
                let _ = conn.flush();
            }
            self.close_now(slot);
        }
    }

    // ---- timers ----

    fn run_timers(&mut self) {
        let mut due: Vec<Entry> = Vec::new();
        let now = Instant::now();
        self.ctx.wheel.expire(now, &mut due);
        let now_tick = self.ctx.wheel.tick_at(now);
        for entry in due {
            let slot = entry.slot as usize;
            let Some(conn) = self.conns.get_mut(slot) else {
                continue;
            };
            if conn.timer_tick != entry.tick {
                continue;
            }
            conn.timer_tick = 0;
            if conn.deadline == 0 {
                continue;
            }
            if conn.deadline > now_tick {
                conn.timer_tick = conn.deadline;
                self.ctx.wheel.schedule(entry.slot, conn.deadline);
                continue;
            }
            conn.deadline = 0;
            match conn.phase {
                Phase::Open => {}
                Phase::Handshake | Phase::Flushing => self.close_now(slot),
                Phase::Closing => {
                    conn.set_reason(DisconnectReason::CloseTimeout);
                    self.close_now(slot);
                }
            }
        }
    }

    // ---- commands ----

    fn drain_commands(&mut self) {
        while let Ok(command) = self.ctx.commands.try_recv() {
            self.apply(command);
        }
    }

    fn send_to(&mut self, id: ConnId, frame: Bytes) {
        if let Some(conn) = open_conn(&mut self.conns, id) {
            self.ctx.queue(id.slot(), conn, frame);
        }
    }

    fn apply(&mut self, command: Command) {
        match command {
            Command::Send { id, frame } => self.send_to(id, frame),
            Command::SendMany { ids, frame } => {
                for id in ids {
                    self.send_to(id, frame.clone());
                }
            }
            Command::Broadcast { frame } => {
                for (slot, conn) in self.conns.iter_mut() {
                    if conn.phase.is_open() {
                        self.ctx.queue(slot, conn, frame.clone());
                    }
                }
            }
            Command::Close { id, code, frame } => {
                let Reactor { conns, ctx, .. } = self;
                if let Some(conn) = open_conn(conns, id) {
                    let reason = DisconnectReason::ClosedByServer { code };
                    ctx.start_close(id.slot(), conn, frame, reason);
                }
            }
            Command::Shutdown => self.begin_shutdown(),
        }
    }

    fn begin_shutdown(&mut self) {
        if let Some(mut listener) = self.listener.take() {
            let _ = self.poll.registry().deregister(&mut listener);
        }
        self.ctx.shutdown_deadline = Some(Instant::now() + self.ctx.config.close_timeout);
        let frame = wire::close_frame(Some(CloseCode::GOING_AWAY), "");
        let slots: Vec<usize> = self.conns.iter().map(|(slot, _)| slot).collect();
        for slot in slots {
            let Some(conn) = self.conns.get_mut(slot) else {
                continue;
            };
            match conn.phase {
                Phase::Handshake => self.close_now(slot),
                Phase::Open => {
                    self.ctx
                        .start_close(slot, conn, frame.clone(), DisconnectReason::Shutdown)
                }
                Phase::Closing | Phase::Flushing => {}
            }
        }
    }

    // ---- events to workers ----

    fn dispatch_batches(&mut self) {
        let mut relieved = Vec::new();
        self.ctx.dispatcher.flush(&mut relieved);
        if relieved.is_empty() || self.ctx.paused.is_empty() {
            return;
        }
        let paused = std::mem::take(&mut self.ctx.paused);
        for slot in paused {
            let Some(conn) = self.conns.get_mut(slot) else {
                continue;
            };
            if self.ctx.dispatcher.is_congested(conn.worker) {
                self.ctx.paused.push(slot);
            } else if conn.read_paused {
                conn.read_paused = false;
                self.ctx.read_again.push(slot);
            }
        }
    }

    /// At exit, waits for workers to take the last batches so no `Disconnect` is lost.
    fn drain_backlog(&mut self) {
        let mut relieved = Vec::new();
        while self.ctx.dispatcher.has_backlog() {
            std::thread::sleep(Duration::from_millis(1));
            self.ctx.dispatcher.flush(&mut relieved);
        }
    }
}

/// The connection `id` names, if it is still open (a stale id's generation differs).
fn open_conn(conns: &mut Slab<Conn>, id: ConnId) -> Option<&mut Conn> {
    let conn = conns.get_mut(id.slot())?;
    (conn.generation == id.generation() && conn.phase.is_open()).then_some(conn)
}

/// Handles bytes of a connection still in its handshake; returns how many were used.
fn handshake_bytes(ctx: &mut Ctx, slot: usize, conn: &mut Conn, data: &mut [u8]) -> usize {
    let max = ctx.config.max_header_bytes;
    let (request, used) = match handshake::parse_request(data, max) {
        Ok(Some(parsed)) => parsed,
        Ok(None) => return 0,
        Err(e) => {
            reject(ctx, slot, conn, e.status());
            return data.len();
        }
    };
    match upgrade(ctx, &request) {
        Ok((response, info)) => {
            open(ctx, slot, conn, response, &request, info);
            used + frame_bytes(ctx, slot, conn, &mut data[used..])
        }
        Err(status) => {
            reject(ctx, slot, conn, status);
            data.len()
        }
    }
}

/// What the upgrade decided: the 101 bytes, the subprotocol and the hook's user data.
type Upgrade = (Bytes, (Option<String>, Option<crate::event::UserData>));

fn upgrade(ctx: &Ctx, request: &Request) -> Result<Upgrade, u16> {
    handshake::validate_upgrade(request).map_err(|e| e.status())?;
    let config = &ctx.config;
    if !config.origins.allows(request) {
        return Err(403);
    }
    let protocol = handshake::select_protocol(request, &config.subprotocols);
    let user_data = match &config.on_upgrade {
        Some(hook) => hook(request).map_err(|r| r.status())?.user_data,
        None => None,
    };
    let response = Bytes::from(handshake::accept_response(request, protocol, None));
    Ok((response, (protocol.map(str::to_owned), user_data)))
}

fn reject(ctx: &mut Ctx, slot: usize, conn: &mut Conn, status: u16) {
    ctx.queue(slot, conn, Bytes::from(handshake::error_response(status)));
    ctx.flush_then_close(slot, conn);
}

fn open(
    ctx: &mut Ctx,
    slot: usize,
    conn: &mut Conn,
    response: Bytes,
    request: &Request,
    (protocol, user_data): (Option<String>, Option<crate::event::UserData>),
) {
    ctx.queue(slot, conn, response);
    conn.phase = Phase::Open;
    conn.connected = true;
    conn.deadline = 0;
    let id = ctx.id(slot, conn);
    ctx.remote().live.set(id, Liveness::Open);
    ctx.shared.open.fetch_add(1, Ordering::AcqRel);
    let unknown = SocketAddr::from(([0, 0, 0, 0], 0));
    let info = ConnectInfo {
        id,
        remote_addr: conn.stream.peer_addr().unwrap_or(unknown),
        local_addr: conn.stream.local_addr().unwrap_or(unknown),
        path: request.path().to_owned(),
        query: request.query().to_owned(),
        protocol,
        user_data,
    };
    ctx.dispatcher.emit(conn.worker, Event::Connect(info));
}

/// Parses frames from `data`; returns how many bytes were used (the rest is a partial
/// header or control frame, carried to the next read).
fn frame_bytes(ctx: &mut Ctx, slot: usize, conn: &mut Conn, data: &mut [u8]) -> usize {
    let mut pos = 0;
    while pos < data.len() && conn.phase.reads_frames() {
        match conn.decoder.decode(&mut data[pos..]) {
            Ok((0, None)) => break,
            Ok((used, item)) => {
                pos += used;
                if let Some(item) = item {
                    incoming(ctx, slot, conn, item);
                }
            }
            Err(error) => {
                ctx.fail(slot, conn, error);
                return data.len();
            }
        }
    }
    if conn.phase.reads_frames() {
        pos
    } else {
        data.len()
    }
}

fn incoming(ctx: &mut Ctx, slot: usize, conn: &mut Conn, item: Incoming<'_>) {
    match item {
        Incoming::Text(text) if conn.phase.is_open() => {
            ctx.emit_message(slot, conn, Message::Text(text.into_owned()));
        }
        Incoming::Binary(data) if conn.phase.is_open() => {
            ctx.emit_message(slot, conn, Message::Binary(data.into_owned()));
        }
        Incoming::Ping(payload) if conn.phase.is_open() => {
            ctx.queue(slot, conn, wire::frame(OpCode::Pong, payload));
        }
        Incoming::Close(frame) => {
            if conn.phase.is_open() {
                let (code, reason) = match &frame {
                    Some(f) => (f.code, f.reason.to_owned()),
                    None => (CloseCode::NO_STATUS, String::new()),
                };
                // §5.5.1: echo the status code received.
                let reply = wire::close_frame(frame.as_ref().map(|f| f.code), "");
                ctx.queue(slot, conn, reply);
                conn.set_reason(DisconnectReason::ClosedByPeer { code, reason });
            }
            ctx.flush_then_close(slot, conn);
        }
        // `Compressed` never arrives until the reactor calls `Decoder::set_compression`.
        Incoming::Text(_)
        | Incoming::Binary(_)
        | Incoming::Ping(_)
        | Incoming::Pong(_)
        | Incoming::Compressed { .. } => {}
    }
}
