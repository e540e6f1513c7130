//! One reactor thread: the IO driver of its connections' sessions. It owns a `mio::Poll`,
//! a listener and a slab of connections; it reads into one scratch buffer, feeds each
//! session, writes what the sessions queued, and arms one timer per connection.
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
//! poll → read the clock once (`Env::now`, the tick every deadline of the turn is set
//! from and checked against) → accept (at most [`ACCEPTS_PER_TURN`]) / read / write per
//! event → read the budget-limited connections again → fire timers (writing what a
//! deadline queued at once) → mark asleep →
//! drain commands (after the mark, which closes the race with senders) → write every
//! connection that has frames queued, one write each → send the turn's event batches to
//! workers, marked awake (a worker sharing the core answers at once and needs not wake
//! the reactor), then mark asleep and look for commands once more (what came meanwhile
//! woke nobody: it starts another drain and write) → poll, for at most the time until the
//! next timer tick or the shutdown deadline (at once when reads or accepts were left for
//! this turn, or commands for it). A poll that slept [`IDLE_SLEEP`] and found nothing
//! makes the reactor free what the last burst grew.
//! With a busy-poll window ([`Config::busy_poll`](crate::Config::busy_poll)), a reactor
//! that had events polls with a zero timeout instead, until the window passes; an empty
//! poll there is no turn, just a yield of the core (reactor/busy_poll.rs).

use std::io;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::Bytes;
use crossbeam_channel::Receiver;
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use slab::Slab;

use crate::accept_backoff::AcceptBackoff;
use crate::client;
use crate::client::Clients;
use crate::config::Config;
use crate::conn::{self, Conn, Flushed, Transport, Transports};
use crate::dispatch::Dispatcher;
use crate::event::{ConnId, ConnectInfo, DisconnectReason, Event, Message, MessageRef};
use crate::handle::{Command, Remote, Shared};
use crate::liveness::{self, Liveness};
use crate::metrics::Counters;
use crate::outbox;
use crate::protocol::handshake::{self, Request};
use crate::session::{self, AfterFlush, CORK_BYTES, Count, Env, Host, Opened, Phase, Session};
use crate::timer::{self, Entry, TimerWheel};
use crate::tls::{TlsScratch, TlsState};
use crate::upgrade::Reject;

mod busy_poll;
mod dial;
mod slot_set;

use busy_poll::BusyPoll;

use slot_set::SlotSet;

pub(crate) const LISTENER: Token = Token(usize::MAX - 1);
pub(crate) const WAKER: Token = Token(usize::MAX - 2);

/// Bytes read from one connection per turn before others get their go.
const READ_BUDGET: usize = 256 << 10;
/// Bytes one `read` asks for.
const READ_CHUNK: usize = 64 << 10;
/// How many frames' room the reusable run of one connection's sends keeps (512 bytes).
const SEND_RUN_KEPT: usize = 16;
/// Connections accepted per turn. A connect storm is admitted in steps, so the
/// connections already open are read between them, and what a turn's handshakes hold
/// until a worker takes their events (entries, `ConnectInfo`s) stays small: a large
/// batch of them would push the reactor's malloc arena up, and the idle connections
/// that follow would keep that peak resident around their own long-lived memory.
const ACCEPTS_PER_TURN: usize = 64;
/// How soon a reactor looks again at connections paused for a busy worker.
const RECHECK: Duration = Duration::from_millis(1);
/// A reactor that slept this long and found nothing to do is idle: it frees what the
/// last burst grew (`Reactor::went_idle`).
const IDLE_SLEEP: Duration = Duration::from_millis(50);
/// Entries the reactor's reused lists keep room for while idle.
const IDLE_ROOM: usize = 64;

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
    /// Each connection's transport (plain or TLS), beside the slab.
    transports: Transports,
    /// Reads land after `front` bytes, so a carried partial head or frame can be put in
    /// front of them and parsed as one slice.
    scratch: Vec<u8>,
    front: usize,
    index: usize,
    shared: Arc<Shared>,
    /// The same config as `env.config`, borrowed by hosts while `env` is lent mutably.
    config: Arc<Config>,
    commands: Receiver<Command>,
    dispatcher: Dispatcher,
    env: Env,
    wheel: TimerWheel,
    next_generation: u64,
    /// Connections with frames queued this turn, written at its end...
    dirty: Vec<usize>,
    /// ...and the same as marks, so each is listed once and skipped once written.
    dirty_marks: SlotSet,
    /// A reply window is open (src/outbox.rs): set only while a session receives.
    reply_window: bool,
    /// A connection's consecutive sends from a worker batch, queued together (reused).
    send_run: Vec<Bytes>,
    /// Where a connection's small frames are gathered for one contiguous write.
    cork: Vec<u8>,
    /// Connections whose read budget ran out, or whose reading resumed.
    read_again: Vec<usize>,
    /// Connections not read while their worker is over its budget...
    paused: Vec<usize>,
    /// ...and the same as marks; unmarked when reading may resume.
    read_paused: SlotSet,
    shutdown_deadline: Option<Instant>,
    /// Reused buffers: the commands this thread sent itself, due timer entries, slots.
    own_commands: Vec<Command>,
    due: Vec<Entry>,
    slots: Vec<usize>,
    /// Out of file descriptors: stop accepting for a moment (src/accept_backoff.rs).
    accept_backoff: AcceptBackoff,
    /// Whether the next poll may sleep (reactor/busy_poll.rs).
    busy_poll: BusyPoll,
    /// Accepts this turn may still make ([`ACCEPTS_PER_TURN`]).
    accepts_left: usize,
    /// The listener had more when the turn's accepts ran out: accept again next turn
    /// (no new readiness edge would say so).
    accept_again: bool,
    /// Outgoing connections by slot (reactor/dial.rs).
    clients: Clients,
    /// TLS records in and out of every connection pass through these (empty without TLS).
    tls_scratch: TlsScratch,
}

/// The reactor's side of one session: where its events, counts and bytes go.
struct ConnHost<'a> {
    shared: &'a Shared,
    shared_arc: &'a Arc<Shared>,
    config: &'a Config,
    remote: &'a Remote,
    dispatcher: &'a mut Dispatcher,
    dirty: &'a mut Vec<usize>,
    dirty_marks: &'a mut SlotSet,
    stream: &'a TcpStream,
    transport: &'a mut Transport,
    tls_scratch: &'a mut TlsScratch,
    slot: usize,
    id: ConnId,
    worker: u16,
    /// Looked up only when a connection opens or ends.
    clients: &'a mut Clients,
    /// Messages received during this call, added to the server's count once.
    messages_in: usize,
    /// This connection's replies go to a reply window (src/outbox.rs) during this call.
    reply_window: bool,
}

impl Host for ConnHost<'_> {
    fn buffered(&self) -> usize {
        self.remote.live.owned_buffered(self.id)
    }

    fn charge(&mut self, cost: usize) {
        self.remote.live.add(self.id, cost);
    }

    fn release(&mut self, cost: usize) -> bool {
        self.remote.live.release(self.id, cost)
    }

    fn sent(&mut self, bytes: usize) {
        self.shared.counters.wrote_bytes(self.remote.index, bytes);
    }

    fn set_liveness(&mut self, state: Liveness) {
        self.remote.live.set(self.id, state);
    }

    fn set_compresses(&mut self) {
        self.remote.live.set_compresses(self.id);
    }

    fn wants_write(&mut self) {
        if self.reply_window {
            // The session queued a frame of its own (a pong, a close): replies made
            // after it must follow it through the queue.
            outbox::seal_window();
        }
        if self.dirty_marks.insert(self.slot) {
            self.dirty.push(self.slot);
        }
    }

    fn http(&mut self, request: &Request) -> Option<Vec<u8>> {
        crate::http::respond(self.shared_arc, self.config, request)
    }

    fn refused(&mut self, rejection: &Reject) {
        self.shared.counters.rejected(rejection);
    }

    fn join_topics(&mut self, topics: &[String]) -> bool {
        let registry = &self.shared.topics;
        // The connection is not open yet and only this thread can end it, so no
        // disconnect can race the joins.
        let joined = topics.iter().all(|topic| registry.subscribe(self.id, topic, || true).is_ok());
        if !joined {
            registry.remove_connection(self.id);
        }
        joined
    }

    fn connect(&mut self, opened: Opened) {
        let now = self.clients.clock();
        if let Some(client) = self.clients.get_mut(self.slot) {
            client::opened(client, self.shared, self.id, now);
            self.clients.opened.push(self.slot);
        }
        self.shared.open.fetch_add(1, Ordering::AcqRel);
        self.shared.counters.opened(self.remote.index);
        let unknown = std::net::SocketAddr::from(([0, 0, 0, 0], 0));
        let info = ConnectInfo {
            id: self.id,
            remote_addr: self.stream.peer_addr().unwrap_or(unknown),
            local_addr: self.stream.local_addr().unwrap_or(unknown),
            path: opened.path,
            query: opened.query,
            protocol: opened.protocol,
            user_data: opened.user_data,
        };
        self.dispatcher.emit(self.worker, Event::Connect(info));
    }

    fn message(&mut self, message: Message) {
        self.dispatcher.emit(self.worker, Event::Message { id: self.id, message });
    }

    fn lend_message(&mut self, message: MessageRef<'_>) {
        self.dispatcher.lend(self.worker, self.id, message);
    }

    fn recycle(&mut self, frame: Bytes) {
        self.dispatcher.recycle(frame);
    }

    fn drain(&mut self) {
        self.dispatcher.emit(self.worker, Event::Drain { id: self.id });
    }

    fn barrier(&mut self) {
        self.dispatcher.barrier(self.worker, self.id);
    }

    fn disconnect(&mut self, reason: DisconnectReason) {
        if let Some(client) = self.clients.get_mut(self.slot) {
            // A client connection: `Reconnecting` or its `Disconnect` follows when its
            // socket closes (reactor/dial.rs).
            client::dropped(client, self.shared, self.id, &self.remote.live, reason.clone());
            self.shared.open.fetch_sub(1, Ordering::AcqRel);
            self.shared.counters.closed(self.remote.index, &reason);
            return;
        }
        self.remote.live.set(self.id, Liveness::Gone);
        // After `Gone`: a subscribe racing with this end fails, or is undone here.
        self.shared.topics.remove_connection(self.id);
        self.shared.open.fetch_sub(1, Ordering::AcqRel);
        self.shared.counters.closed(self.remote.index, &reason);
        self.dispatcher.emit(self.worker, Event::Disconnect { id: self.id, reason });
    }

    fn count(&mut self, what: Count) {
        let counters = &self.shared.counters;
        match what {
            // Added once per call on the session (`with_session`), not per message.
            Count::MessageIn => self.messages_in += 1,
            Count::SlowConsumerClosed => Counters::bump(&counters.slow_consumers_closed),
            Count::Dropped => Counters::bump(&counters.messages_dropped),
        }
    }
}

impl ConnHost<'_> {
    /// Writes the session's queue over the connection's transport.
    fn write_out(&mut self, session: &mut Session, cork: &mut Vec<u8>) -> io::Result<Flushed> {
        // Both leave the host for the call, which needs the host as well: pointer moves.
        let mut transport = std::mem::replace(self.transport, Transport::Plain);
        let mut scratch = std::mem::take(self.tls_scratch);
        let written =
            conn::write_out(self.stream, &mut transport, session, self, cork, &mut scratch);
        *self.transport = transport;
        *self.tls_scratch = scratch;
        written
    }
}

/// What a flush leaves the reactor to do.
enum AfterWrite {
    Nothing,
    Discard,
    Drop(DisconnectReason),
}

impl Reactor {
    pub(crate) fn new(parts: ReactorParts, shared: Arc<Shared>, config: Arc<Config>) -> Reactor {
        let front = config.max_header_bytes.max(256);
        let busy_poll = BusyPoll::new(config.busy_poll);
        let tls_scratch = match &config.tls {
            Some(tls) => {
                let fragment = tls.get_max_fragment_size().unwrap_or(16 << 10);
                TlsScratch::new(READ_CHUNK, fragment)
            }
            None => TlsScratch::default(),
        };
        let started = Instant::now();
        // Client masking keys need not be secret, only unpredictable to a page's script.
        let seed = started.elapsed().as_nanos() as u64 ^ (&shared as *const _ as u64);
        Reactor {
            poll: parts.poll,
            listener: Some(parts.listener),
            conns: Slab::new(),
            transports: Transports::default(),
            scratch: vec![0; front + READ_CHUNK],
            front,
            index: parts.index,
            shared,
            commands: parts.commands,
            dispatcher: parts.dispatcher,
            env: Env::new(config.clone(), 0, seed),
            config,
            wheel: TimerWheel::new(started),
            next_generation: 1,
            dirty: Vec::new(),
            dirty_marks: SlotSet::default(),
            reply_window: false,
            cork: Vec::with_capacity(CORK_BYTES),
            read_again: Vec::new(),
            paused: Vec::new(),
            read_paused: SlotSet::default(),
            shutdown_deadline: None,
            own_commands: Vec::new(),
            send_run: Vec::new(),
            due: Vec::new(),
            slots: Vec::new(),
            accept_backoff: AcceptBackoff::default(),
            busy_poll,
            accepts_left: ACCEPTS_PER_TURN,
            accept_again: false,
            clients: Clients::default(),
            tls_scratch,
        }
    }

    fn remote(&self) -> &Remote {
        &self.shared.reactors[self.index]
    }

    /// Runs until shutdown has closed every connection.
    pub(crate) fn run(mut self) {
        outbox::become_reactor(self.remote());
        let mut events = Events::with_capacity(1024);
        let mut turn_started: Option<Instant> = None;
        // At most one yield between polls: a worker that answers every batch must not
        // keep the reactor from its sockets.
        let mut may_yield = true;
        loop {
            self.remote().awake.store(false, Ordering::SeqCst);
            self.drain_commands();
            self.flush_dirty();
            // Last, so events the writes produced (Drain, Disconnect) leave before sleeping.
            let commands_waiting = self.hand_over(may_yield);
            if self.shutdown_done() {
                break;
            }
            if commands_waiting && std::mem::take(&mut may_yield) {
                continue;
            }
            may_yield = true;
            if let Some(started) = turn_started.take() {
                let (sockets, paused) = (self.conns.len(), self.paused.len());
                self.shared.counters.turn_ended(self.index, started.elapsed(), sockets, paused);
            }
            // Commands that came while marked awake woke nobody: look at once.
            let sleep = if commands_waiting { Some(Duration::ZERO) } else { self.poll_timeout() };
            let timeout = self.busy_poll.timeout(Instant::now, sleep);
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                break;
            }
            let now = Instant::now();
            self.busy_poll.polled(now, !events.is_empty());
            if events.is_empty() && timeout != sleep {
                // A busy poll found nothing, and nothing else is due (it would have made
                // `sleep` zero): no turn. Let a thread sharing this core (a worker) run
                // before polling again.
                std::thread::yield_now();
                continue;
            }
            if events.is_empty() && timeout.is_none_or(|t| t >= IDLE_SLEEP) {
                self.went_idle();
            }
            self.remote().awake.store(true, Ordering::SeqCst);
            turn_started = Some(now);
            self.env.now = self.wheel.tick_at(now);
            let accept_again = std::mem::take(&mut self.accept_again);
            self.accepts_left = ACCEPTS_PER_TURN;
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
            if self.accept_backoff.resume_due(Instant::now()) || accept_again {
                self.accept_all();
            }
            self.read_again();
            self.run_timers();
            self.retry_clients();
        }
        self.close_all(DisconnectReason::Shutdown);
        self.dispatch_batches();
        self.drain_backlog();
    }

    /// Sends the turn's batches to the workers while marked awake, then marks the reactor
    /// asleep. A worker sharing this core runs the moment its bell rings (a woken thread
    /// preempts its waker), so its reply needs no wake-up; when batches left and
    /// `may_yield`, the core is yielded once so such a worker can answer before the
    /// reactor sleeps. True when commands wait: nobody woke the reactor for them.
    fn hand_over(&mut self, may_yield: bool) -> bool {
        self.remote().awake.store(true, Ordering::SeqCst);
        let handed = self.dispatch_batches();
        if handed && may_yield && self.commands.is_empty() {
            std::thread::yield_now();
        }
        self.remote().awake.store(false, Ordering::SeqCst);
        !self.commands.is_empty()
    }

    /// How long to sleep: until the next timer tick, a recheck of paused connections, or
    /// the shutdown deadline, whichever comes first; not at all with reads pending.
    fn poll_timeout(&self) -> Option<Duration> {
        if !self.read_again.is_empty() || self.accept_again {
            return Some(Duration::ZERO);
        }
        let now = Instant::now();
        let mut wake = self.wheel.next_tick(self.env.now).map(|tick| self.wheel.instant_of(tick));
        if self.dispatcher.has_backlog() || !self.paused.is_empty() {
            wake = Some(wake.map_or(now + RECHECK, |w| w.min(now + RECHECK)));
        }
        if let Some(deadline) = self.shutdown_deadline {
            wake = Some(wake.map_or(deadline, |w| w.min(deadline)));
        }
        if let Some(wait) = self.accept_backoff.wait(now) {
            wake = Some(wake.map_or(now + wait, |w| w.min(now + wait)));
        }
        if let Some(wait) = self.next_client_wake() {
            wake = Some(wake.map_or(now + wait, |w| w.min(now + wait)));
        }
        wake.map(|w| w.saturating_duration_since(now))
    }

    /// Frees what a burst grew and the idle connections it left do not need: the
    /// dispatcher's batch buffers and the reactor's reused lists. Each is freed on this
    /// thread, which allocated it.
    fn went_idle(&mut self) {
        self.dispatcher.release_spares();
        self.wheel.release_spare();
        for list in [&mut self.dirty, &mut self.slots, &mut self.read_again] {
            if list.is_empty() {
                list.shrink_to(IDLE_ROOM);
            }
        }
        self.due.shrink_to(IDLE_ROOM);
        self.own_commands.shrink_to(IDLE_ROOM);
    }

    fn shutdown_done(&self) -> bool {
        match self.shutdown_deadline {
            Some(deadline) => self.conns.is_empty() || Instant::now() >= deadline,
            None => false,
        }
    }

    // ---- sessions ----

    /// Runs `f` on the session in `slot` with its host, then arms the wheel for the
    /// session's deadline: every change a session makes reaches the timer here.
    fn with_session<T>(
        &mut self,
        slot: usize,
        f: impl FnOnce(&mut Session, &mut Env, &mut ConnHost<'_>) -> T,
    ) -> Option<T> {
        let Reactor {
            conns,
            transports,
            shared,
            config,
            dispatcher,
            dirty,
            dirty_marks,
            env,
            wheel,
            index,
            clients,
            tls_scratch,
            reply_window,
            ..
        } = self;
        let conn = conns.get_mut(slot)?;
        let Conn { stream, session, generation, timer_tick } = conn;
        let worker = dispatcher.worker_of(*generation);
        let mut plain = Transport::Plain;
        let transport = transports.get_mut(slot).unwrap_or(&mut plain);
        let mut host = ConnHost {
            shared,
            shared_arc: shared,
            config,
            remote: &shared.reactors[*index],
            dispatcher,
            dirty,
            dirty_marks,
            stream,
            transport,
            tls_scratch,
            slot,
            id: ConnId::new(*index, *generation, slot),
            worker,
            clients,
            messages_in: 0,
            reply_window: *reply_window,
        };
        let out = f(session, env, &mut host);
        if host.messages_in > 0 {
            Counters::add(&shared.counters.messages_in, host.messages_in);
        }
        wheel.arm(slot as u32, timer_tick, session.deadline());
        Some(out)
    }

    /// [`Reactor::with_session`] for the connection `id` names, if it is still that
    /// connection and its phase passes `wanted`.
    fn with_id<T>(
        &mut self,
        id: ConnId,
        wanted: fn(Phase) -> bool,
        f: impl FnOnce(&mut Session, &mut Env, &mut ConnHost<'_>) -> T,
    ) -> Option<T> {
        let conn = self.conns.get(id.slot())?;
        if conn.generation != id.generation() || !wanted(conn.session.phase()) {
            return None;
        }
        self.with_session(id.slot(), f)
    }

    // ---- accepting ----

    fn accept_all(&mut self) {
        if self.accept_backoff.is_paused() {
            return;
        }
        loop {
            let Some(listener) = &self.listener else { return };
            if self.accepts_left == 0 {
                self.accept_again = true;
                return;
            }
            match listener.accept() {
                Ok((stream, _)) => {
                    self.accepts_left -= 1;
                    self.admit(stream);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::ConnectionAborted => continue,
                // Out of file descriptors or memory: leave the rest in the backlog and
                // retry after a pause.
                Err(e) => {
                    let counters = &self.shared.counters;
                    self.accept_backoff.failed(&e, Instant::now(), self.index, counters);
                    return;
                }
            }
        }
    }

    fn admit(&mut self, mut stream: TcpStream) {
        let shared = &self.shared;
        Counters::bump(&shared.counters.accepted);
        let slot = self.conns.vacant_key();
        let full = shared.sockets.fetch_add(1, Ordering::AcqRel) >= self.env.config.max_connections
            || slot >= self.remote().live.capacity();
        if full {
            shared.sockets.fetch_sub(1, Ordering::AcqRel);
            Counters::bump(&shared.counters.rejected_full);
            // Best effort: a fresh socket's send buffer takes these few bytes. A TLS
            // client could not read them: it is just closed.
            if self.config.tls.is_none() {
                use std::io::Write;
                let _ = stream.write(&handshake::error_response(503));
            }
            return;
        }
        let _ = stream.set_nodelay(true);
        let interest = Interest::READABLE | Interest::WRITABLE;
        if self.poll.registry().register(&mut stream, Token(slot), interest).is_err() {
            self.shared.sockets.fetch_sub(1, Ordering::AcqRel);
            return;
        }
        let transport = match &self.config.tls {
            None => Transport::Plain,
            Some(tls) => match TlsState::server(tls.server.clone()) {
                Ok(state) => Transport::Tls(Box::new(state)),
                Err(_) => {
                    let _ = self.poll.registry().deregister(&mut stream);
                    self.shared.sockets.fetch_sub(1, Ordering::AcqRel);
                    return;
                }
            },
        };
        let generation = self.next_generation;
        self.next_generation = liveness::next_generation(generation);
        let session = Session::server(&self.env);
        self.conns.insert(Conn::new(stream, session, generation));
        self.transports.set(slot, transport);
        self.remote().live.set(ConnId::new(self.index, generation, slot), Liveness::Handshake);
        self.with_session(slot, |_, _, _| ());
    }

    // ---- reading ----

    fn read_again(&mut self) {
        let slots = std::mem::take(&mut self.read_again);
        for slot in slots {
            self.read(slot, true);
        }
    }

    /// Reads and handles what `slot` has; `to_the_end` keeps reading past short reads.
    fn read(&mut self, slot: usize, to_the_end: bool) {
        let mut budget = READ_BUDGET;
        loop {
            let Some(conn) = self.conns.get_mut(slot) else { return };
            match conn.session.phase() {
                Phase::Lingering => return self.discard_input(slot),
                phase if !phase.parses_input() => return,
                _ => {}
            }
            if self.read_paused.contains(slot) {
                return;
            }
            if self.dispatcher.is_congested(self.dispatcher.worker_of(conn.generation)) {
                self.read_paused.insert(slot);
                Counters::bump(&self.shared.counters.reads_paused);
                self.paused.push(slot);
                return;
            }
            if budget == 0 {
                self.read_again.push(slot);
                return;
            }
            let front = self.front;
            let handshaking = conn.session.phase() == Phase::Handshake;
            let transport = self.transports.get_mut(slot);
            let received =
                conn.receive(transport, &mut self.scratch[front..], &mut self.tls_scratch);
            let got = match received {
                Ok(got) if got.wire == 0 => {
                    return self.close_now(slot, DisconnectReason::Abnormal);
                }
                Ok(got) => got,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) => {
                    // Sockets never say InvalidData; TLS does when the peer broke it.
                    if e.kind() == io::ErrorKind::InvalidData {
                        Counters::bump(&self.shared.counters.tls_failures);
                    }
                    return self.close_now(slot, DisconnectReason::Io(e.kind()));
                }
            };
            budget = budget.saturating_sub(got.wire);
            // WebSocket bytes, as `bytes_out` counts them: over TLS, the plaintext.
            self.shared.counters.read_bytes(self.index, got.plain);
            if got.plain > 0 {
                let carry = conn.session.take_carry();
                let start = front - carry.len();
                let mut scratch = std::mem::take(&mut self.scratch);
                scratch[start..front].copy_from_slice(&carry);
                let data = &mut scratch[start..front + got.plain];
                self.open_reply_window(slot);
                self.with_session(slot, |session, env, host| session.receive(env, host, data));
                self.close_reply_window();
                self.scratch = scratch;
            } else if conn.session.has_output() && self.dirty_marks.insert(slot) {
                // A TLS handshake moved on: what waited for it (a client's request) may go.
                self.dirty.push(slot);
            }
            if !self.clients.opened.is_empty() {
                self.clients_opened();
            }
            if self.dispatcher.is_inline() {
                // The handler already answered: write now, not after every other socket
                // of this turn has been read. Still one write for what this read produced.
                self.drain_own_commands();
                if !self.cork.is_empty() || self.dirty_marks.contains(slot) {
                    self.flush(slot);
                }
            } else if handshaking && self.dirty_marks.contains(slot) {
                // A handshake's answer goes now, so its queue returns to the pool at once:
                // a storm of connects does not hold a queue and a 101 per connection until
                // the end of the turn (and leave that peak in the allocator's arena).
                self.flush(slot);
            }
            if got.peer_closed {
                // TLS's end of stream (`close_notify`): an EOF after the data it ended.
                if self.conns.get(slot).is_some_and(|c| c.session.phase().parses_input()) {
                    self.close_now(slot, DisconnectReason::Abnormal);
                }
                return;
            }
            if !got.full && !to_the_end {
                return;
            }
        }
    }

    /// Lends this thread the cork buffer for an inline handler's replies to the
    /// connection in `slot` while its bytes are handled (src/outbox.rs), when they may be
    /// written ahead of its queue: an open server connection (`ws://` or `wss://`) with
    /// nothing queued.
    fn open_reply_window(&mut self, slot: usize) {
        let Some(conn) = self.conns.get(slot) else { return };
        if !(self.dispatcher.is_inline() && conn.session.lends_replies()) {
            return;
        }
        let id = ConnId::new(self.index, conn.generation, slot);
        let compress_from =
            if conn.session.compresses() { self.shared.compression_threshold } else { usize::MAX };
        outbox::open_window(id, std::mem::take(&mut self.cork), compress_from);
        self.reply_window = true;
    }

    /// Takes the cork back with the replies framed in it, if a window is open; the next
    /// flush of that connection writes them.
    fn close_reply_window(&mut self) {
        if !std::mem::take(&mut self.reply_window) {
            return;
        }
        if let Some(replies) = outbox::close_window() {
            self.cork = replies.frames;
            if replies.sent > 0 {
                Counters::add(&self.shared.counters.messages_out, replies.sent);
            }
        }
    }

    /// Reads and drops what a lingering peer still sends, until its EOF, at most a read
    /// budget per turn.
    fn discard_input(&mut self, slot: usize) {
        let mut budget = READ_BUDGET;
        loop {
            let Some(conn) = self.conns.get_mut(slot) else { return };
            match conn.read(&mut self.scratch) {
                Ok(0) => return self.close_now(slot, DisconnectReason::Abnormal),
                Ok(n) => budget = budget.saturating_sub(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) => return self.close_now(slot, DisconnectReason::Io(e.kind())),
            }
            if budget == 0 {
                self.read_again.push(slot);
                return;
            }
        }
    }

    // ---- writing ----

    fn write_ready(&mut self, slot: usize) {
        let Some(conn) = self.conns.get(slot) else { return };
        if (conn.session.has_output() || self.transports.has_pending(slot))
            && self.dirty_marks.insert(slot)
        {
            self.dirty.push(slot);
        }
    }

    fn flush_dirty(&mut self) {
        let mut slots = std::mem::take(&mut self.dirty);
        for &slot in &slots {
            // Inline dispatch may have written it already, right after its read.
            if self.dirty_marks.contains(slot) {
                self.flush(slot);
            }
        }
        // Keep the list's memory for the next turn.
        slots.clear();
        if self.dirty.is_empty() {
            self.dirty = slots;
        }
    }

    fn flush(&mut self, slot: usize) {
        let mut cork = std::mem::take(&mut self.cork);
        let after = self.with_session(slot, |session, env, host| {
            host.dirty_marks.remove(host.slot);
            let stream = host.stream;
            match host.write_out(session, &mut cork) {
                Ok(Flushed::All) => match session.flushed(env, host) {
                    AfterFlush::Idle => AfterWrite::Nothing,
                    AfterFlush::ShutdownWrite => {
                        host.transport.end_output(stream, host.tls_scratch);
                        if let Err(e) = stream.shutdown(std::net::Shutdown::Write) {
                            return AfterWrite::Drop(DisconnectReason::Io(e.kind()));
                        }
                        session.linger(host);
                        // The peer may have closed already; its EOF left no new edge.
                        AfterWrite::Discard
                    }
                    AfterFlush::Linger => {
                        host.transport.end_output(stream, host.tls_scratch);
                        session.linger(host);
                        AfterWrite::Discard
                    }
                },
                Ok(Flushed::Partly) => {
                    session.blocked();
                    AfterWrite::Nothing
                }
                Err(e) => AfterWrite::Drop(DisconnectReason::Io(e.kind())),
            }
        });
        // Replies for a connection that has gone since are dropped with it.
        cork.clear();
        self.cork = cork;
        match after {
            Some(AfterWrite::Discard) => self.discard_input(slot),
            Some(AfterWrite::Drop(reason)) => self.close_now(slot, reason),
            Some(AfterWrite::Nothing) | None => {}
        }
    }

    // ---- ending ----

    /// Drops the socket and delivers `Disconnect` if `Connect` was delivered (`reason`
    /// unless the session already knows why it ends).
    fn close_now(&mut self, slot: usize, reason: DisconnectReason) {
        if self.clients.contains(slot) {
            return self.client_socket_ended(slot, reason);
        }
        let Some(id) = self.conns.get(slot).map(|c| ConnId::new(self.index, c.generation, slot))
        else {
            return;
        };
        self.with_session(slot, |session, _, host| session.end(host, reason));
        let mut conn = self.conns.remove(slot);
        self.forget_slot(slot);
        let _ = self.poll.registry().deregister(&mut conn.stream);
        self.shared.sockets.fetch_sub(1, Ordering::AcqRel);
        self.remote().live.set(id, Liveness::Gone);
    }

    /// Clears what a freed slot kept beside the slab (its transport, its marks), so its
    /// next connection starts plain and unmarked. (It may still be listed in `dirty` or
    /// `paused`: those lists skip slots that are not marked.)
    fn forget_slot(&mut self, slot: usize) {
        self.transports.clear(slot);
        self.dirty_marks.remove(slot);
        self.read_paused.remove(slot);
    }

    fn close_all(&mut self, reason: DisconnectReason) {
        let mut slots = std::mem::take(&mut self.slots);
        slots.extend(self.conns.iter().map(|(slot, _)| slot));
        let mut cork = std::mem::take(&mut self.cork);
        for &slot in &slots {
            // A last write of what is queued, best effort.
            self.with_session(slot, |session, _, host| {
                let _ = host.write_out(session, &mut cork);
            });
            self.close_now(slot, reason.clone());
        }
        self.cork = cork;
        slots.clear();
        self.slots = slots;
    }

    // ---- timers ----

    /// Acts on every deadline due at this turn's tick.
    fn run_timers(&mut self) {
        let mut due = std::mem::take(&mut self.due);
        self.wheel.expire(self.env.now, &mut due);
        for entry in due.drain(..) {
            let slot = entry.slot as usize;
            let Some(conn) = self.conns.get_mut(slot) else { continue };
            let deadline = conn.session.deadline();
            if !timer::settle(&mut self.wheel, entry, &mut conn.timer_tick, deadline, self.env.now)
            {
                continue;
            }
            let keep = self.with_session(slot, |session, env, host| session.on_deadline(env, host));
            if keep == Some(false) {
                self.close_now(slot, DisconnectReason::Abnormal);
            } else if self.dirty_marks.contains(slot) {
                // A heartbeat's ping (or a close) goes now, so its queue is freed at once:
                // a cohort of connections due in one tick does not hold a queue each until
                // the end of the turn (and leave that peak resident in the arena).
                self.flush(slot);
            }
        }
        self.due = due;
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
        while let Ok(command) = self.commands.try_recv() {
            self.apply(command);
        }
    }

    fn apply(&mut self, command: Command) {
        match command {
            Command::Send { id, frame } => {
                let mut run = std::mem::take(&mut self.send_run);
                run.push(frame);
                self.send_run_to(id, &mut run);
                self.send_run = run;
            }
            Command::SendUnframed { id, opcode, payload, reserved } => {
                let queued = self.with_id(id, Phase::takes_data, |session, env, host| {
                    session.queue_compressed(env, host, opcode, &payload, reserved)
                });
                if queued.is_none() {
                    let _ = self.remote().live.release(id, reserved);
                }
            }
            Command::SendMany { ids, out, cost } => {
                let mut once = None;
                for id in ids {
                    self.with_id(id, Phase::takes_data, |session, env, host| {
                        session.queue_fanout(env, host, &out, &mut once)
                    });
                }
                self.remote().release_fanout(cost);
            }
            Command::Broadcast { out, cost } => {
                let mut once = None;
                let mut slots = std::mem::take(&mut self.slots);
                slots.extend(self.conns.iter().map(|(slot, _)| slot));
                for &slot in &slots {
                    self.with_session(slot, |session, env, host| {
                        if session.phase().takes_data() {
                            session.queue_fanout(env, host, &out, &mut once);
                        }
                    });
                }
                slots.clear();
                self.slots = slots;
                self.remote().release_fanout(cost);
            }
            Command::Close { id, code, reason } => {
                if self.close_client(id, code) {
                    return;
                }
                self.with_id(id, Phase::is_open, |session, env, host| {
                    let why = DisconnectReason::ClosedByServer { code };
                    session.close(env, host, code, &reason, why)
                });
            }
            Command::SlowConsumer { id } => {
                self.with_id(id, Phase::is_open, |session, env, host| {
                    session.close_slow_consumer(env, host)
                });
            }
            Command::Publish { topic, out, except, cost } => {
                let shared = self.shared.clone();
                let mut once = None;
                shared.topics.for_each_member(&topic, self.index, |id| {
                    if Some(id) != except {
                        self.with_id(id, Phase::takes_data, |session, env, host| {
                            session.queue_fanout(env, host, &out, &mut once)
                        });
                    }
                });
                self.remote().release_fanout(cost);
            }
            Command::BarrierPassed { id } => {
                self.with_id(id, |_| true, |session, env, host| session.barrier_passed(env, host));
            }
            Command::Shutdown { timeout } => self.begin_shutdown(timeout),
            Command::Dial { dial, reply } => self.dial(*dial, reply),
            Command::Resolved { id, result } => self.resolved(id, result),
            Command::Batch(commands) => self.apply_batch(commands),
        }
    }

    /// A worker's commands, in order. A connection's consecutive sends (a worker handles
    /// one connection's messages one after another) are queued in one visit to its
    /// session.
    fn apply_batch(&mut self, commands: Vec<Command>) {
        let mut run = std::mem::take(&mut self.send_run);
        let mut commands = commands.into_iter().peekable();
        while let Some(command) = commands.next() {
            let Command::Send { id, frame } = command else {
                self.apply(command);
                continue;
            };
            run.push(frame);
            while let Some(Command::Send { frame, .. }) = commands
                .next_if(|next| matches!(next, Command::Send { id: same, .. } if *same == id))
            {
                run.push(frame);
            }
            self.send_run_to(id, &mut run);
        }
        // A long run (one connection sent thousands of messages) does not stay allocated.
        run.shrink_to(SEND_RUN_KEPT);
        self.send_run = run;
    }

    /// Queues `frames` (their cost reserved by a `Handle`) for `id`, emptying `frames`;
    /// for an id that is not open, frees what was reserved (a client connection that is
    /// down keeps them for when it is back).
    fn send_run_to(&mut self, id: ConnId, frames: &mut Vec<Bytes>) {
        let queued = self.with_id(id, Phase::takes_data, |session, env, host| {
            for frame in frames.drain(..) {
                session.queue_reserved(env, host, frame);
            }
        });
        if queued.is_none() {
            for frame in frames.drain(..) {
                let _ = self.remote().live.release(id, session::cost(frame.len()));
                self.hold_for_client(id, frame);
            }
        }
    }

    fn begin_shutdown(&mut self, timeout: Option<Duration>) {
        if let Some(mut listener) = self.listener.take() {
            let _ = self.poll.registry().deregister(&mut listener);
        }
        self.stop_clients();
        let timeout = timeout.unwrap_or(self.env.config.close_timeout);
        self.shutdown_deadline = Some(Instant::now() + timeout);
        let mut slots = std::mem::take(&mut self.slots);
        slots.extend(self.conns.iter().map(|(slot, _)| slot));
        for &slot in &slots {
            let keep = self.with_session(slot, |session, env, host| session.shutdown(env, host));
            if keep == Some(false) {
                self.close_now(slot, DisconnectReason::Shutdown);
            }
        }
        slots.clear();
        self.slots = slots;
    }

    // ---- events to workers ----

    /// Sends the turn's event batches, and reads again the paused connections whose
    /// worker has caught up. True when a batch went to a worker.
    fn dispatch_batches(&mut self) -> bool {
        let handed = self.dispatcher.flush();
        if self.paused.is_empty() {
            return handed;
        }
        let paused = std::mem::take(&mut self.paused);
        for slot in paused {
            let Some(conn) = self.conns.get(slot) else { continue };
            if self.dispatcher.is_congested(self.dispatcher.worker_of(conn.generation)) {
                self.paused.push(slot);
            } else if self.read_paused.remove(slot) {
                self.read_again.push(slot);
            }
        }
        handed
    }

    /// At exit, waits for workers to take the last batches so no `Disconnect` is lost.
    fn drain_backlog(&mut self) {
        while self.dispatcher.has_backlog() {
            std::thread::sleep(Duration::from_millis(1));
            self.dispatcher.flush();
        }
    }
}
