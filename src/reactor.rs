//! One reactor thread: a `mio::Poll` that owns a listener and its connections.
//!
//! # Readiness rules (mio, edge-triggered)
//! - A readable socket is read until a read comes back short (it had less than the
//!   buffer), `WouldBlock`, or its per-turn read budget is spent; then it goes on
//!   `read_again` and is read next turn without waiting for an event, so one firehose
//!   cannot starve the rest. Stopping at a short read saves the `WouldBlock` read that
//!   would otherwise cost one syscall per socket per turn: Linux's edge-triggered epoll
//!   queues a new event for every arrival after the read. The one arrival an event
//!   reports without a later edge is the peer's FIN, so when an event says "read closed"
//!   (or error) the socket is read to `WouldBlock`/EOF.
//! - `Interrupted` is retried; spurious events are harmless (a read just sees `WouldBlock`).
//! - Events for a slot freed earlier in the same batch are skipped with `Slab::get`.
//! - One `Waker` per `Poll`; other threads wake it only when the reactor sleeps
//!   (see [`Handle`](crate::Handle)).
//!
//! # A turn
//! poll → accept / read / write per event → read the budget-limited connections again →
//! fire timers → mark asleep → drain commands (after the mark, which closes the race with
//! senders) → write every connection that has frames queued, one `writev` each → send the
//! turn's event batches to workers → poll.

use std::io;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use slab::Slab;

use crate::accept_backoff::AcceptBackoff;
use crate::compress::Compressor;
use crate::config::Config;
use crate::conn::{Conn, Flushed, Phase};
use crate::dispatch::Dispatcher;
use crate::event::{ConnId, DisconnectReason, Event};
use crate::handle::{Command, Shared};
use crate::liveness::Liveness;
use crate::metrics::Counters;
use crate::outbox;
use crate::protocol::CloseCode;
use crate::protocol::handshake;
use crate::protocol::message::{Decoder, DecoderLimits, Role};
use crate::session::{self, Ctx, Ticks};
use crate::timer::{Entry, TimerWheel};
use crate::wire;

pub(crate) const LISTENER: Token = Token(usize::MAX - 1);
pub(crate) const WAKER: Token = Token(usize::MAX - 2);

/// Bytes read from one connection per turn before others get their go.
const READ_BUDGET: usize = 256 << 10;
/// Write queues kept for reuse, and the largest kept.
const MAX_POOLED: usize = 1024;
const MAX_POOLED_QUEUE: usize = 64;
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
    /// Reused buffer for the commands this thread sent itself.
    own_commands: Vec<Command>,
    ctx: Ctx,
    /// Out of file descriptors: stop accepting for a moment (src/accept_backoff.rs).
    accept_backoff: AcceptBackoff,
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
            own_commands: Vec::new(),
            accept_backoff: AcceptBackoff::default(),
            ctx: Ctx {
                index: parts.index,
                shared,
                ticks: Ticks::of(&config),
                compressor: Compressor::new(&config),
                config,
                commands: parts.commands,
                dispatcher: parts.dispatcher,
                wheel: TimerWheel::new(Instant::now()),
                limits,
                now: 0,
                next_generation: 1,
                queues: Vec::new(),
                dirty: Vec::new(),
                read_again: Vec::new(),
                paused: Vec::new(),
                shutdown_deadline: None,
            },
        }
    }

    /// Runs until shutdown has closed every connection.
    pub(crate) fn run(mut self) {
        outbox::become_reactor(self.ctx.remote());
        let mut events = Events::with_capacity(1024);
        let mut turn_started: Option<Instant> = None;
        loop {
            self.ctx.remote().awake.store(false, Ordering::SeqCst);
            self.drain_commands();
            self.flush_dirty();
            // Last, so events the writes produced (Drain, Disconnect) leave before sleeping.
            self.dispatch_batches();
            if self.shutdown_done() {
                break;
            }
            if let Some(started) = turn_started.take() {
                let (sockets, paused) = (self.conns.len(), self.ctx.paused.len());
                self.ctx.shared.counters.turn_ended(
                    self.ctx.index,
                    started.elapsed(),
                    sockets,
                    paused,
                );
            }
            let timeout = self.poll_timeout();
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                break;
            }
            self.ctx.remote().awake.store(true, Ordering::SeqCst);
            turn_started = Some(Instant::now());
            self.ctx.now = self.ctx.wheel.tick_at(Instant::now());
            for event in events.iter() {
                match event.token() {
                    LISTENER => self.accept_all(),
                    WAKER => {}
                    Token(slot) => {
                        if event.is_writable() {
                            self.write_ready(slot);
                        }
                        let closed = event.is_read_closed() || event.is_error();
                        if event.is_readable() || closed {
                            self.read(slot, closed);
                        }
                    }
                }
            }
            if self.accept_backoff.resume_due(Instant::now()) {
                self.accept_all();
            }
            self.read_again();
            self.run_timers();
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
        let now = Instant::now();
        let wheel = self.ctx.wheel.next_wake(now);
        match self.accept_backoff.wait(now) {
            Some(wait) => Some(wheel.map_or(wait, |w| w.min(wait))),
            None => wheel,
        }
    }

    fn shutdown_done(&self) -> bool {
        match self.ctx.shutdown_deadline {
            Some(deadline) => self.conns.is_empty() || Instant::now() >= deadline,
            None => false,
        }
    }

    // ---- accepting ----

    fn accept_all(&mut self) {
        if self.accept_backoff.is_paused() {
            return;
        }
        loop {
            let Some(listener) = &self.listener else { return };
            match listener.accept() {
                Ok((stream, _)) => self.admit(stream),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::ConnectionAborted => continue,
                // Out of file descriptors or memory: leave the rest in the backlog and
                // retry after a pause.
                Err(e) => {
                    let counters = &self.ctx.shared.counters;
                    self.accept_backoff.failed(&e, Instant::now(), self.ctx.index, counters);
                    return;
                }
            }
        }
    }

    fn admit(&mut self, mut stream: TcpStream) {
        let shared = &self.ctx.shared;
        Counters::bump(&shared.counters.accepted);
        if shared.sockets.fetch_add(1, Ordering::AcqRel) >= self.ctx.config.max_connections {
            shared.sockets.fetch_sub(1, Ordering::AcqRel);
            Counters::bump(&shared.counters.rejected_full);
            // Best effort: a fresh socket's send buffer takes these few bytes.
            use std::io::Write;
            let _ = stream.write(&handshake::error_response(503));
            return;
        }
        let _ = stream.set_nodelay(true);
        let entry = self.conns.vacant_entry();
        let slot = entry.key();
        let interest = Interest::READABLE | Interest::WRITABLE;
        if self.poll.registry().register(&mut stream, Token(slot), interest).is_err() {
            self.ctx.shared.sockets.fetch_sub(1, Ordering::AcqRel);
            return;
        }
        let generation = self.ctx.next_generation;
        // Generation 0 is never used, so an empty liveness cell matches no id.
        self.ctx.next_generation = ((generation + 1) & ConnId::GEN_MASK).max(1);
        let worker = self.ctx.dispatcher.assign();
        let decoder = Decoder::new(Role::Server, self.ctx.limits);
        let conn = entry.insert(Conn::new(stream, generation, worker, decoder));
        let id = self.ctx.id(slot, conn);
        self.ctx.remote().live.set(id, Liveness::Handshake);
        let tick = self.ctx.deadline_after(self.ctx.config.handshake_timeout);
        self.ctx.set_deadline(slot, conn, tick);
    }

    // ---- reading ----

    fn read_again(&mut self) {
        let slots = std::mem::take(&mut self.ctx.read_again);
        for slot in slots {
            self.read(slot, true);
        }
    }

    /// Reads and handles what `slot` has; `to_the_end` keeps reading past short reads.
    fn read(&mut self, slot: usize, to_the_end: bool) {
        let mut budget = READ_BUDGET;
        loop {
            let Some(conn) = self.conns.get_mut(slot) else { return };
            if !conn.phase.parses_input() {
                if conn.phase == Phase::Lingering {
                    self.discard_input(slot);
                }
                return;
            }
            if conn.read_paused {
                return;
            }
            if self.ctx.dispatcher.is_congested(conn.worker) {
                conn.read_paused = true;
                Counters::bump(&self.ctx.shared.counters.reads_paused);
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
            self.ctx.shared.counters.read_bytes(self.ctx.index, n);
            self.ctx.seen(conn);
            let carry = std::mem::take(&mut conn.carry);
            let start = front - carry.len();
            self.scratch[start..front].copy_from_slice(&carry);
            let data = &mut self.scratch[start..front + n];
            let used = match conn.phase {
                Phase::Handshake => session::handshake_bytes(&mut self.ctx, slot, conn, data),
                _ => session::frame_bytes(&mut self.ctx, slot, conn, data),
            };
            if conn.phase.parses_input() && used < data.len() {
                conn.carry = data[used..].to_vec();
            }
            if self.ctx.dispatcher.is_inline() {
                // The handler already answered: write now, not after every other socket
                // of this turn has been read. Still one write for what this read produced.
                self.drain_own_commands();
                if self.conns.get(slot).is_some_and(|c| c.dirty) {
                    self.flush(slot);
                }
            }
            if n < READ_CHUNK && !to_the_end {
                return;
            }
        }
    }

    /// Reads and drops what a lingering peer still sends, until its EOF.
    fn discard_input(&mut self, slot: usize) {
        let Some(conn) = self.conns.get_mut(slot) else { return };
        loop {
            match conn.read(&mut self.scratch) {
                Ok(0) => return self.close_now(slot),
                Ok(_) => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(_) => return self.close_now(slot),
            }
        }
    }

    // ---- writing ----

    fn write_ready(&mut self, slot: usize) {
        let Some(conn) = self.conns.get_mut(slot) else { return };
        if !conn.out.is_empty() && !conn.dirty {
            conn.dirty = true;
            self.ctx.dirty.push(slot);
        }
    }

    fn flush_dirty(&mut self) {
        let mut slots = std::mem::take(&mut self.ctx.dirty);
        for &slot in &slots {
            // Inline dispatch may have written it already, right after its read.
            if self.conns.get(slot).is_some_and(|c| c.dirty) {
                self.flush(slot);
            }
        }
        // Keep the list's memory for the next turn.
        slots.clear();
        if self.ctx.dirty.is_empty() {
            self.ctx.dirty = slots;
        }
    }

    fn flush(&mut self, slot: usize) {
        let Some(conn) = self.conns.get_mut(slot) else { return };
        conn.dirty = false;
        let id = self.ctx.id(slot, conn);
        let (flushed, written) = conn.flush();
        if written > 0 {
            self.ctx.shared.counters.wrote_bytes(self.ctx.index, written);
            self.ctx.remote().live.release(id, written);
        }
        match flushed {
            Ok(Flushed::All) if conn.phase == Phase::Flushing => {
                if conn.stream.shutdown(std::net::Shutdown::Write).is_err() {
                    return self.close_now(slot);
                }
                conn.phase = Phase::Lingering;
                self.ctx.disconnect(slot, conn);
                // The peer may have closed already; its EOF left no new edge to wait for.
                self.discard_input(slot);
            }
            Ok(Flushed::All) => {
                let queue = std::mem::take(&mut conn.out);
                // Only a queue with memory is worth lending out again.
                if (1..=MAX_POOLED_QUEUE).contains(&queue.capacity())
                    && self.ctx.queues.len() < MAX_POOLED
                {
                    self.ctx.queues.push(queue);
                }
                if std::mem::take(&mut conn.backlogged)
                    && self.ctx.config.drain_events
                    && conn.connected
                {
                    self.ctx.dispatcher.emit(conn.worker, Event::Drain { id });
                }
            }
            Ok(Flushed::Partly) => conn.backlogged = true,
            Err(e) => {
                conn.set_reason(DisconnectReason::Io(e.kind()));
                self.close_now(slot);
            }
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
        self.ctx.disconnect(slot, &mut conn);
        let id = self.ctx.id(slot, &conn);
        self.ctx.remote().live.set(id, Liveness::Gone);
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
        self.ctx.wheel.expire(Instant::now(), &mut due);
        for entry in due {
            let slot = entry.slot as usize;
            let Some(conn) = self.conns.get_mut(slot) else { continue };
            if conn.timer_tick != entry.tick {
                continue;
            }
            conn.timer_tick = 0;
            if conn.deadline == 0 {
                continue;
            }
            if conn.deadline > self.ctx.now {
                conn.timer_tick = conn.deadline;
                self.ctx.wheel.schedule(entry.slot, conn.deadline);
                continue;
            }
            conn.deadline = 0;
            let keep = match conn.phase {
                Phase::Open => self.ctx.open_timer(slot, conn),
                Phase::Finishing => {
                    self.ctx.finish(slot, conn);
                    true
                }
                Phase::Handshake | Phase::Flushing | Phase::Lingering => false,
                Phase::Closing => {
                    conn.set_reason(DisconnectReason::CloseTimeout);
                    false
                }
            };
            if !keep {
                self.close_now(slot);
            }
        }
    }

    // ---- commands ----

    /// Applies the commands an inline handler made on this thread (no channel).
    fn drain_own_commands(&mut self) {
        let mut own = std::mem::take(&mut self.own_commands);
        outbox::take_own(&mut own);
        for command in own.drain(..) {
            self.apply(command);
        }
        self.own_commands = own;
    }

    fn drain_commands(&mut self) {
        self.drain_own_commands();
        while let Ok(command) = self.ctx.commands.try_recv() {
            self.apply(command);
        }
    }

    fn apply(&mut self, command: Command) {
        let Reactor { conns, ctx, .. } = self;
        match command {
            Command::Send { id, frame } => match data_conn(conns, id) {
                Some(conn) => ctx.queue_reserved(id.slot(), conn, frame),
                None => ctx.discard_reserved(id, frame.len()),
            },
            Command::SendUnframed { id, opcode, payload, reserved } => match data_conn(conns, id) {
                Some(conn) => ctx.queue_compressed(id.slot(), conn, opcode, &payload, reserved),
                None => ctx.discard_reserved(id, reserved),
            },
            Command::SendMany { ids, out } => {
                let mut once = None;
                for id in ids {
                    if let Some(conn) = data_conn(conns, id) {
                        ctx.queue_fanout(id.slot(), conn, &out, &mut once);
                    }
                }
            }
            Command::Broadcast { out } => {
                let mut once = None;
                for (slot, conn) in conns.iter_mut() {
                    if conn.phase.takes_data() {
                        ctx.queue_fanout(slot, conn, &out, &mut once);
                    }
                }
            }
            Command::Close { id, code, frame } => {
                if let Some(conn) = open_conn(conns, id) {
                    let reason = DisconnectReason::ClosedByServer { code };
                    ctx.start_close(id.slot(), conn, frame, reason);
                }
            }
            Command::SlowConsumer { id } => {
                if let Some(conn) = open_conn(conns, id) {
                    ctx.close_slow_consumer(id.slot(), conn);
                }
            }
            Command::Publish { topic, out, except } => {
                let shared = ctx.shared.clone();
                let mut once = None;
                shared.topics.for_each_member(&topic, ctx.index, |id| {
                    if Some(id) != except
                        && let Some(conn) = data_conn(conns, id)
                    {
                        ctx.queue_fanout(id.slot(), conn, &out, &mut once);
                    }
                });
            }
            Command::BarrierPassed { id } => {
                if let Some(conn) = conns.get_mut(id.slot())
                    && conn.generation == id.generation()
                {
                    ctx.finish(id.slot(), conn);
                }
            }
            Command::Shutdown { timeout } => self.begin_shutdown(timeout),
            Command::Batch(commands) => {
                for command in commands {
                    self.apply(command);
                }
            }
        }
    }

    fn begin_shutdown(&mut self, timeout: Option<Duration>) {
        if let Some(mut listener) = self.listener.take() {
            let _ = self.poll.registry().deregister(&mut listener);
        }
        let timeout = timeout.unwrap_or(self.ctx.config.close_timeout);
        self.ctx.shutdown_deadline = Some(Instant::now() + timeout);
        let frame = wire::close_frame(Some(CloseCode::GOING_AWAY), "");
        let slots: Vec<usize> = self.conns.iter().map(|(slot, _)| slot).collect();
        for slot in slots {
            let Some(conn) = self.conns.get_mut(slot) else { continue };
            match conn.phase {
                Phase::Handshake => self.close_now(slot),
                Phase::Open => {
                    self.ctx.start_close(slot, conn, frame.clone(), DisconnectReason::Shutdown)
                }
                Phase::Closing | Phase::Finishing | Phase::Flushing | Phase::Lingering => {}
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
            let Some(conn) = self.conns.get_mut(slot) else { continue };
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

/// The connection `id` names, if frames may still be queued for it.
fn data_conn(conns: &mut Slab<Conn>, id: ConnId) -> Option<&mut Conn> {
    let conn = conns.get_mut(id.slot())?;
    (conn.generation == id.generation() && conn.phase.takes_data()).then_some(conn)
}

/// The connection `id` names, if it is still open (a stale id's generation differs).
fn open_conn(conns: &mut Slab<Conn>, id: ConnId) -> Option<&mut Conn> {
    let conn = conns.get_mut(id.slot())?;
    (conn.generation == id.generation() && conn.phase.is_open()).then_some(conn)
}
