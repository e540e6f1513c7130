//! One connection's life as a sans-IO state machine, for both roles: bytes, the current
//! tick and commands go in; bytes to write, events (through [`Host`]) and the next
//! deadline come out. No socket, no clock, no thread: the reactor reads and writes, and
//! tests drive a session byte by byte in virtual time.
//!
//! ```text
//!  Handshake ──101──► Open ──our close──► Closing ──peer's close──► Flushing ─► Lingering
//!      │               │ peer's close or protocol error                ▲
//!      │               └──────────► Finishing ──barrier passed──────────┘
//!      └── refused (4xx/5xx) ─────────────────────────────────────────────┘
//! ```
//!
//! Time is counted in ticks of the reactor's wheel ([`crate::timer::TICK`]). Every
//! deadline is a tick, set from [`Env::now`], the one clock reading of the turn (rounded
//! down to its tick), and a session asked about its deadline ([`Session::on_deadline`])
//! at or after that tick acts on it, however late the turn is. A timeout of `T` ticks
//! from an event in tick `N` is due at tick `N + T + 1` (`env::deadline_after`): the
//! event may have come at the very end of tick `N`, so the deadline is never early, and
//! at most one tick late.

mod client;
mod env;
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) mod fuzz;
mod host;
mod outbound;
mod server;
#[cfg(test)]
mod tests;

use std::borrow::Cow;
use std::io::IoSlice;

use bytes::Bytes;

use crate::compress::{Outgoing, OwnCodecs};
use crate::config::Backpressure;
use crate::event::{DisconnectReason, Message, MessageRef};
use crate::liveness::Liveness;
use crate::protocol::deflate::Agreed;
use crate::protocol::frame::OpCode;
use crate::protocol::message::{Decoder, Incoming, Role, Whole};
use crate::protocol::{CloseCode, ProtocolError};
use crate::wire;

pub(crate) use client::ClientOffer;
use env::deadline_after;
pub(crate) use env::{Env, ticks_of};
pub(crate) use host::{Count, Host, Opened};
use outbound::Outbound;
pub(crate) use outbound::{CORK_BYTES, FRAME_COST, cost};

/// Where a connection is in its life (RFC 6455 §4, §7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Reading the HTTP request head (server), or waiting for the 101 (client).
    Handshake,
    /// Messages flow both ways.
    Open,
    /// We sent a close frame and wait for the peer's (§7.1.2); data is discarded.
    Closing,
    /// The peer closed, or broke the protocol: nothing more is read, and our close frame
    /// waits until the handler has answered every earlier message (a barrier travels
    /// through the connection's worker), so replies are not overtaken by the close.
    Finishing,
    /// Nothing more is read; once the queue is written the server shuts down its side of
    /// TCP (§7.1.1: the server closes first).
    Flushing,
    /// Our part is done; what the peer still sends is discarded until its EOF, so closing
    /// the socket never resets a close frame the peer has not read yet.
    Lingering,
}

impl Phase {
    /// Whether data messages may still be received from the peer.
    pub(crate) fn is_open(self) -> bool {
        self == Phase::Open
    }

    /// Whether frames may still be queued for the peer.
    pub(crate) fn takes_data(self) -> bool {
        matches!(self, Phase::Open | Phase::Finishing)
    }

    /// Whether incoming bytes are parsed (as a head or as frames).
    pub(crate) fn parses_input(self) -> bool {
        matches!(self, Phase::Handshake | Phase::Open | Phase::Closing)
    }

    /// Whether incoming bytes are still parsed as frames.
    fn reads_frames(self) -> bool {
        matches!(self, Phase::Open | Phase::Closing)
    }
}

/// What the IO driver does once the queue is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AfterFlush {
    /// Nothing: wait for more.
    Idle,
    /// Shut down the write side, then call [`Session::linger`].
    ShutdownWrite,
    /// Call [`Session::linger`]; the peer closes first.
    Linger,
}

/// One connection, apart from its socket.
pub(crate) struct Session {
    phase: Phase,
    role: Role,
    /// `Connect` was delivered, so exactly one `Disconnect` is owed.
    connected: bool,
    /// The socket refused part of the queue; a `Drain` is owed when it empties.
    backlogged: bool,
    /// A producer saw bytes buffered and everything has since been written: a `Drain`
    /// is owed.
    drain_owed: bool,
    /// Unparsed bytes: a partial request head, or a partial frame header / control frame.
    carry: Box<[u8]>,
    out: Outbound,
    decoder: Decoder,
    /// The tick at which the session wants [`Session::on_deadline`]; 0 when never.
    deadline: u32,
    /// The tick of the last bytes from the peer (heartbeats).
    last_seen: u32,
    /// The tick of the last data message from the peer (idle timeout).
    last_message: u32,
    /// The tick a ping went out with no answer yet; 0 when none.
    ping_sent: u32,
    /// permessage-deflate parameters, when negotiated.
    deflate: Option<Agreed>,
    /// Codecs for the directions that keep their context (the dedicated mode).
    codecs: Option<Box<OwnCodecs>>,
    /// What a connection keeps aside on rare paths, in one pointer: a client's offer
    /// until the server answers, then the first cause of the end once known.
    aside: Option<Box<Aside>>,
}

/// The rarely needed state of a session, allocated only when there is some.
enum Aside {
    /// A client's handshake in progress: what it asked for.
    Offer(ClientOffer),
    /// The first cause of the end.
    Reason(DisconnectReason),
}

impl Session {
    fn new(role: Role, env: &Env) -> Session {
        Session {
            phase: Phase::Handshake,
            role,
            connected: false,
            backlogged: false,
            drain_owed: false,
            carry: Box::default(),
            out: Outbound::default(),
            decoder: Decoder::new(role, env.limits),
            deadline: env.after(env.ticks.handshake),
            last_seen: env.now,
            last_message: env.now,
            ping_sent: 0,
            deflate: None,
            codecs: None,
            aside: None,
        }
    }

    pub(crate) fn phase(&self) -> Phase {
        self.phase
    }

    /// The tick of the session's next deadline; 0 when it has none.
    pub(crate) fn deadline(&self) -> u32 {
        self.deadline
    }

    /// Why the connection ends (or ended), once known.
    pub(crate) fn reason(&self) -> Option<&DisconnectReason> {
        match self.aside.as_deref() {
            Some(Aside::Reason(reason)) => Some(reason),
            _ => None,
        }
    }

    /// Records why the connection ends, unless a cause is already known.
    pub(crate) fn set_reason(&mut self, reason: DisconnectReason) {
        // An offer still kept is moot once the connection ends.
        if !matches!(self.aside.as_deref(), Some(Aside::Reason(_))) {
            self.aside = Some(Box::new(Aside::Reason(reason)));
        }
    }

    // ---- input ----

    /// Takes the bytes the last [`Session::receive`] left unparsed; the driver puts them
    /// in front of the next read.
    pub(crate) fn take_carry(&mut self) -> Box<[u8]> {
        std::mem::take(&mut self.carry)
    }

    /// Bytes from the peer, after the carry. Keeps what it cannot parse yet (at most a
    /// request head, or one frame header and control payload).
    pub(crate) fn receive(&mut self, env: &mut Env, host: &mut impl Host, data: &mut [u8]) {
        if !self.phase.parses_input() {
            return;
        }
        self.seen(env.now);
        let used = match (self.phase, self.role) {
            (Phase::Handshake, Role::Server) => self.server_handshake(env, host, data),
            (Phase::Handshake, Role::Client) => self.client_handshake(env, host, data),
            _ => self.frames(env, host, data),
        };
        if self.phase.parses_input() && used < data.len() {
            self.carry = data[used..].into();
        }
    }

    /// Any bytes from the peer prove it alive.
    fn seen(&mut self, now: u32) {
        self.last_seen = now;
        self.ping_sent = 0;
    }

    /// Parses frames from `data`; returns how many bytes were used.
    fn frames(&mut self, env: &mut Env, host: &mut impl Host, data: &mut [u8]) -> usize {
        let mut pos = 0;
        while pos < data.len() && self.phase.reads_frames() {
            match self.lend_whole(env, host, &mut data[pos..]) {
                Ok(0) => {}
                Ok(used) => {
                    pos += used;
                    continue;
                }
                Err(error) => {
                    self.fail(env, host, error);
                    return data.len();
                }
            }
            match self.decoder.decode(&mut data[pos..]) {
                Ok((0, None)) => break,
                Ok((used, item)) => {
                    pos += used;
                    if let Some(item) = item {
                        self.incoming(env, host, item);
                    }
                }
                Err(error) => {
                    self.fail(env, host, error);
                    return data.len();
                }
            }
        }
        if self.phase.reads_frames() { pos } else { data.len() }
    }

    /// The common case in a tight loop: whole single-frame messages at the front of
    /// `data`, lent to the host while the connection is open. Returns the bytes used;
    /// anything else is left to the general decoder.
    fn lend_whole(
        &mut self,
        env: &Env,
        host: &mut impl Host,
        data: &mut [u8],
    ) -> Result<usize, ProtocolError> {
        let mut pos = 0;
        while self.phase.is_open()
            && let Some((used, whole)) = self.decoder.decode_whole(&mut data[pos..])?
        {
            pos += used;
            let message = match whole {
                Whole::Text(text) => MessageRef::Text(text),
                Whole::Binary(data) => MessageRef::Binary(data),
            };
            self.deliver_lent(env, host, message);
        }
        Ok(pos)
    }

    fn incoming(&mut self, env: &mut Env, host: &mut impl Host, item: Incoming<'_>) {
        let open = self.phase.is_open();
        match item {
            Incoming::Text(Cow::Borrowed(text)) if open => {
                self.deliver_lent(env, host, MessageRef::Text(text));
            }
            Incoming::Binary(Cow::Borrowed(data)) if open => {
                self.deliver_lent(env, host, MessageRef::Binary(data));
            }
            Incoming::Text(Cow::Owned(text)) if open => {
                self.deliver(env, host, Message::Text(text));
            }
            Incoming::Binary(Cow::Owned(data)) if open => {
                self.deliver(env, host, Message::Binary(data));
            }
            // §5.5.3: a pong answers a ping; one that never reads must not grow the queue.
            Incoming::Ping(payload) if open => {
                let frame = self.frame(env, OpCode::Pong, payload);
                self.queue_bounded(env, host, frame);
            }
            Incoming::Close(frame) if open => {
                let (code, reason) = match &frame {
                    Some(f) => (f.code, f.reason.to_owned()),
                    None => (CloseCode::NO_STATUS, String::new()),
                };
                self.set_reason(DisconnectReason::ClosedByPeer { code, reason });
                self.begin_finish(env, host);
            }
            // The answer to our close (§7.1.2): the handshake is complete.
            Incoming::Close(_) => self.complete(env, host),
            Incoming::Compressed { text, body } if open => self.inflated(env, host, text, &body),
            Incoming::Text(_)
            | Incoming::Binary(_)
            | Incoming::Ping(_)
            | Incoming::Pong(_)
            | Incoming::Compressed { .. } => {}
        }
    }

    fn deliver(&mut self, env: &Env, host: &mut impl Host, message: Message) {
        self.last_message = env.now;
        host.count(Count::MessageIn);
        host.message(message);
    }

    /// Delivers a message that is still in the received bytes.
    fn deliver_lent(&mut self, env: &Env, host: &mut impl Host, message: MessageRef<'_>) {
        self.last_message = env.now;
        host.count(Count::MessageIn);
        host.lend_message(message);
    }

    /// Inflates a compressed message (RFC 7692 §7.2.2) and delivers it; bad data fails
    /// the connection (1007), too much of it as well (1009, before more than the limit is
    /// held).
    fn inflated(&mut self, env: &mut Env, host: &mut impl Host, text: bool, body: &[u8]) {
        let Some(agreed) = self.deflate else {
            return self.fail(env, host, ProtocolError::ReservedBits);
        };
        let max = env.config.max_message_size;
        let mut out = env.compressor.lend_inflate_buffer();
        let inflated = env.compressor.inflate_into(&agreed, &mut self.codecs, body, max, &mut out);
        match inflated.and_then(|()| lent(text, &out)) {
            // Lent like a plain message: an inline handler reads it in place (and its
            // echo is framed into the reply window); a worker gets one copy.
            Ok(message) => self.deliver_lent(env, host, message),
            Err(error) => self.fail(env, host, error),
        }
        env.compressor.return_inflate_buffer(out);
    }

    // ---- output ----

    /// A frame of this session's role: masked by a client (§5.3), plain from a server.
    fn frame(&self, env: &mut Env, opcode: OpCode, payload: &[u8]) -> Bytes {
        match self.role {
            Role::Server => wire::frame(opcode, payload),
            Role::Client => wire::masked_frame(opcode, payload, env.mask_key()),
        }
    }

    fn close_frame(&self, env: &mut Env, code: Option<CloseCode>, reason: &str) -> Bytes {
        let (payload, len) = wire::close_payload(code, reason);
        self.frame(env, OpCode::Close, &payload[..len])
    }

    /// Queues a frame whose cost a `Handle` already reserved (a client masks it first,
    /// and pays for the key).
    pub(crate) fn queue_reserved(&mut self, env: &mut Env, host: &mut impl Host, frame: Bytes) {
        let frame = self.for_peer(env, host, frame);
        self.push(env, host, frame);
    }

    /// A `Handle`'s (unmasked) frame as this role sends it: a client masks it (§5.3) and
    /// charges the four bytes of its key.
    fn for_peer(&self, env: &mut Env, host: &mut impl Host, frame: Bytes) -> Bytes {
        match self.role {
            Role::Server => frame,
            Role::Client => {
                host.charge(4);
                wire::mask_frame(&frame, env.mask_key())
            }
        }
    }

    /// Queues a frame that is ready for the wire, its cost already counted.
    fn push(&mut self, env: &mut Env, host: &mut impl Host, frame: Bytes) {
        if self.out.is_empty() && !self.out.has_storage() {
            self.out.lend(env.lend_queue());
        }
        self.out.push(frame);
        host.wants_write();
    }

    /// Queues a frame the session made itself (101, pong, ping, close), charging it.
    fn queue_own(&mut self, env: &mut Env, host: &mut impl Host, frame: Bytes) {
        host.charge(cost(frame.len()));
        self.push(env, host, frame);
    }

    /// Queues a frame held for a client connection while it was down (unmasked, not yet
    /// charged).
    pub(crate) fn queue_held(&mut self, env: &mut Env, host: &mut impl Host, frame: Bytes) {
        if self.phase.takes_data() {
            host.charge(cost(frame.len()));
            self.queue_reserved(env, host, frame);
        }
    }

    /// Queues a frame nobody reserved room for, under the backpressure policy.
    fn queue_bounded(&mut self, env: &mut Env, host: &mut impl Host, frame: Bytes) {
        if host.buffered() + cost(frame.len()) <= env.config.max_backpressure {
            return self.queue_own(env, host, frame);
        }
        match env.config.backpressure {
            Backpressure::Drop => host.count(Count::Dropped),
            Backpressure::Close => self.close_slow_consumer(env, host),
        }
    }

    /// Sends a data message from this side (a client's own messages, masked).
    #[cfg_attr(not(test), allow(dead_code, reason = "the fuzz driver and tests send this way"))]
    pub(crate) fn send(
        &mut self,
        env: &mut Env,
        host: &mut impl Host,
        opcode: OpCode,
        payload: &[u8],
    ) {
        if self.phase.is_open() {
            let frame = self.frame(env, opcode, payload);
            self.queue_bounded(env, host, frame);
        }
    }

    /// Compresses and queues a message a `Handle` reserved `reserved` for (the cost of
    /// its plain frame), then settles the count with the real cost.
    pub(crate) fn queue_compressed(
        &mut self,
        env: &mut Env,
        host: &mut impl Host,
        opcode: OpCode,
        payload: &[u8],
        reserved: usize,
    ) {
        let frame = match &self.deflate {
            Some(agreed) => env.compressor.frame_for(agreed, &mut self.codecs, opcode, payload),
            None => wire::frame(opcode, payload),
        };
        let real = cost(frame.len());
        if real < reserved {
            self.release(host, reserved - real);
        } else {
            host.charge(real - reserved);
        }
        self.queue_reserved(env, host, frame);
    }

    /// Queues one recipient's copy of a fan-out message: the plain frame, or the
    /// compressed one, made at most once per reactor (`once`) for every recipient the
    /// shared deflater may serve.
    pub(crate) fn queue_fanout(
        &mut self,
        env: &mut Env,
        host: &mut impl Host,
        out: &Outgoing,
        once: &mut Option<Bytes>,
    ) {
        let frame = match (&self.deflate, &out.payload) {
            (Some(agreed), Some((opcode, payload)))
                if agreed.fits_shared_deflater(payload.len()) =>
            {
                once.get_or_insert_with(|| env.compressor.shared_frame(*opcode, payload)).clone()
            }
            (Some(agreed), Some((opcode, payload))) => {
                env.compressor.frame_for(agreed, &mut self.codecs, *opcode, payload)
            }
            _ => out.plain.clone(),
        };
        let frame = match self.role {
            Role::Server => frame,
            Role::Client => wire::mask_frame(&frame, env.mask_key()),
        };
        self.queue_bounded(env, host, frame);
    }

    fn release(&mut self, host: &mut impl Host, cost: usize) {
        self.drain_owed |= host.release(cost);
    }

    /// Fills `slices` with what to write; returns how many.
    pub(crate) fn slices<'a>(&'a self, slices: &mut [IoSlice<'a>]) -> usize {
        self.out.slices(slices)
    }

    /// Copies the small frames at the front of the queue onto `cork`; returns how many.
    pub(crate) fn gather(&self, cork: &mut Vec<u8>) -> usize {
        self.out.gather(cork)
    }

    /// Whether an inline handler's replies may be written ahead of the queue, from the
    /// reactor's buffer (src/outbox.rs): an open server connection with nothing queued,
    /// so nothing they could overtake. Compressed replies still take the queue.
    pub(crate) fn lends_replies(&self) -> bool {
        self.role == Role::Server && self.phase == Phase::Open && self.out.is_empty()
    }

    /// Whether permessage-deflate was negotiated.
    pub(crate) fn compresses(&self) -> bool {
        self.deflate.is_some()
    }

    /// The socket refused the last `bytes` of frames written ahead of the queue (an
    /// inline handler's replies): they go to the front of the queue, charged.
    pub(crate) fn keep_unsent(&mut self, host: &mut impl Host, bytes: &[u8]) {
        host.charge(cost(bytes.len()));
        self.out.push_front(Bytes::copy_from_slice(bytes));
    }

    /// Whether anything waits to be written.
    pub(crate) fn has_output(&self) -> bool {
        !self.out.is_empty()
    }

    /// The socket took `n` bytes.
    pub(crate) fn written(&mut self, host: &mut impl Host, n: usize) {
        let freed = self.out.consume(n, |frame| host.recycle(frame));
        self.release(host, freed);
        host.sent(n);
    }

    /// The socket refused part of the queue (`WouldBlock`).
    pub(crate) fn blocked(&mut self) {
        self.backlogged = true;
    }

    /// The socket took the whole queue.
    pub(crate) fn flushed(&mut self, env: &mut Env, host: &mut impl Host) -> AfterFlush {
        if self.phase == Phase::Flushing {
            return match self.role {
                Role::Server => AfterFlush::ShutdownWrite,
                Role::Client => AfterFlush::Linger,
            };
        }
        env.return_queue(self.out.take_storage());
        // Owed after the socket refused part of the queue, or when a producer saw bytes
        // buffered that have all been written since (however few writes that took).
        let owed = std::mem::take(&mut self.backlogged) | std::mem::take(&mut self.drain_owed);
        if owed && env.config.drain_events && self.connected {
            host.drain();
        }
        AfterFlush::Idle
    }

    // ---- closing ----

    /// Starts the close handshake with a close frame (§7.1.2) and waits for the peer's.
    pub(crate) fn close(
        &mut self,
        env: &mut Env,
        host: &mut impl Host,
        code: CloseCode,
        reason_text: &str,
        reason: DisconnectReason,
    ) {
        if self.phase != Phase::Open {
            return;
        }
        let frame = self.close_frame(env, Some(code), reason_text);
        self.set_reason(reason);
        self.phase = Phase::Closing;
        host.set_liveness(Liveness::Closing);
        self.queue_own(env, host, frame);
        self.deadline = env.after(env.ticks.close);
    }

    /// Closes a connection that does not read: what it has not taken is discarded (but a
    /// frame the socket has started stays whole), then close 1008.
    pub(crate) fn close_slow_consumer(&mut self, env: &mut Env, host: &mut impl Host) {
        if self.phase != Phase::Open {
            return;
        }
        host.count(Count::SlowConsumerClosed);
        let freed = self.out.drop_unstarted(true);
        self.release(host, freed);
        let reason = DisconnectReason::SlowConsumer;
        self.close(env, host, CloseCode::POLICY, "slow consumer", reason);
    }

    /// The server shuts down: close what is open; false when the connection should just be
    /// dropped (still in its handshake).
    pub(crate) fn shutdown(&mut self, env: &mut Env, host: &mut impl Host) -> bool {
        match self.phase {
            Phase::Handshake => false,
            Phase::Open => {
                self.close(env, host, CloseCode::GOING_AWAY, "", DisconnectReason::Shutdown);
                true
            }
            Phase::Closing | Phase::Finishing | Phase::Flushing | Phase::Lingering => true,
        }
    }

    /// Fails the connection (§7.1.7): stop reading, send a close with the error's code
    /// (after the handler's replies to earlier messages), close TCP.
    fn fail(&mut self, env: &mut Env, host: &mut impl Host, error: ProtocolError) {
        if self.phase == Phase::Open {
            self.set_reason(DisconnectReason::ProtocolError(error));
            self.begin_finish(env, host);
        } else {
            self.complete(env, host);
        }
    }

    /// Stops reading and sends a barrier through the connection's handler; the close
    /// frame goes out when it comes back ([`Session::barrier_passed`]) or the close
    /// timeout passes.
    fn begin_finish(&mut self, env: &mut Env, host: &mut impl Host) {
        self.phase = Phase::Finishing;
        self.carry = Box::default();
        self.deadline = env.after(env.ticks.close);
        host.barrier();
    }

    /// Every event before the barrier was handled: send the close frame the reason calls
    /// for, then close TCP.
    pub(crate) fn barrier_passed(&mut self, env: &mut Env, host: &mut impl Host) {
        if self.phase != Phase::Finishing {
            return;
        }
        let code = match self.reason() {
            // §5.5.1: echo the status code received (none for an empty close).
            Some(DisconnectReason::ClosedByPeer { code, .. }) => {
                (*code != CloseCode::NO_STATUS).then_some(*code)
            }
            Some(DisconnectReason::ProtocolError(e)) => Some(e.close_code()),
            _ => Some(CloseCode::NORMAL),
        };
        let frame = self.close_frame(env, code, "");
        self.queue_own(env, host, frame);
        self.complete(env, host);
    }

    /// Stops reading; once the queue is written the server shuts down TCP (§7.1.1: the
    /// server closes first), a client waits for the server to.
    fn complete(&mut self, env: &mut Env, host: &mut impl Host) {
        self.phase = Phase::Flushing;
        self.carry = Box::default();
        if self.connected {
            host.set_liveness(Liveness::Closing);
        }
        self.deadline = env.after(env.ticks.close);
        host.wants_write();
    }

    /// Our side is done (after [`AfterFlush`]): the connection has ended for the
    /// application, while the socket lingers until the peer's EOF or the deadline.
    pub(crate) fn linger(&mut self, host: &mut impl Host) {
        self.phase = Phase::Lingering;
        self.disconnect(host);
    }

    /// The socket is gone (EOF, error, a deadline, shutdown): delivers `Disconnect` if it
    /// is owed, and frees what the queue held.
    pub(crate) fn end(&mut self, host: &mut impl Host, reason: DisconnectReason) {
        self.set_reason(reason);
        let freed = self.out.drop_unstarted(false);
        self.release(host, freed);
        self.disconnect(host);
    }

    /// Delivers `Disconnect` (once).
    fn disconnect(&mut self, host: &mut impl Host) {
        if std::mem::take(&mut self.connected) {
            let reason = match self.aside.take().map(|aside| *aside) {
                Some(Aside::Reason(reason)) => reason,
                _ => DisconnectReason::Abnormal,
            };
            host.disconnect(reason);
        }
    }

    // ---- time ----

    /// The deadline's tick has come (`env.now` is at or past it): time out the handshake
    /// or the close, ping a quiet peer, drop a dead one, close an idle one. False when the
    /// socket should be dropped now (then call [`Session::end`]).
    pub(crate) fn on_deadline(&mut self, env: &mut Env, host: &mut impl Host) -> bool {
        if self.deadline == 0 || self.deadline > env.now {
            return true;
        }
        self.deadline = 0;
        match self.phase {
            Phase::Open => self.open_timer(env, host),
            Phase::Finishing => {
                self.barrier_passed(env, host);
                true
            }
            Phase::Closing => {
                self.set_reason(DisconnectReason::CloseTimeout);
                false
            }
            Phase::Handshake if self.role == Role::Client => {
                self.set_reason(DisconnectReason::ConnectTimeout);
                false
            }
            Phase::Handshake | Phase::Flushing | Phase::Lingering => false,
        }
    }

    /// A client connection's handshake (TCP connect included) must end within `ticks`.
    pub(crate) fn set_handshake_ticks(&mut self, env: &Env, ticks: u32) {
        if self.phase == Phase::Handshake {
            self.deadline = env.after(ticks);
        }
    }

    /// What a client connection's slot holds while it waits to reconnect: reads nothing,
    /// takes no data, has no deadline.
    pub(crate) fn parked(env: &Env) -> Session {
        let mut session = Session::new(Role::Client, env);
        session.phase = Phase::Lingering;
        session.deadline = 0;
        session
    }

    /// The next heartbeat or idle deadline of an open connection; 0 when neither is set.
    fn open_deadline(&self, env: &Env) -> u32 {
        let ticks = env.ticks;
        let mut next = u32::MAX;
        if ticks.idle > 0 {
            next = next.min(deadline_after(self.last_message, ticks.idle));
        }
        if self.ping_sent > 0 {
            next = next.min(deadline_after(self.ping_sent, ticks.pong));
        } else if ticks.ping > 0 {
            next = next.min(deadline_after(self.last_seen, ticks.ping));
        }
        if next == u32::MAX { 0 } else { next.max(env.now + 1) }
    }

    fn open_timer(&mut self, env: &mut Env, host: &mut impl Host) -> bool {
        let (now, ticks) = (env.now, env.ticks);
        if self.ping_sent > 0 && now >= deadline_after(self.ping_sent, ticks.pong) {
            self.set_reason(DisconnectReason::PongTimeout);
            return false;
        }
        if ticks.idle > 0 && now >= deadline_after(self.last_message, ticks.idle) {
            let reason = DisconnectReason::IdleTimeout;
            self.close(env, host, CloseCode::GOING_AWAY, "idle timeout", reason);
            return true;
        }
        if ticks.ping > 0
            && self.ping_sent == 0
            && now >= deadline_after(self.last_seen, ticks.ping)
        {
            self.ping_sent = now;
            let ping = self.frame(env, OpCode::Ping, b"");
            self.queue_own(env, host, ping);
        }
        self.deadline = self.open_deadline(env);
        true
    }

    /// Becomes open after a successful handshake.
    fn become_open(&mut self, env: &Env, host: &mut impl Host, deflate: Option<Agreed>) {
        self.phase = Phase::Open;
        self.connected = true;
        self.last_message = env.now;
        self.seen(env.now);
        self.deadline = self.open_deadline(env);
        if deflate.is_some() {
            self.deflate = deflate;
            self.decoder.set_compression(true);
            host.set_compresses();
        }
        host.set_liveness(Liveness::Open);
    }
}

/// An inflated message's bytes as a message to lend: text is validated (§8.1).
fn lent(text: bool, data: &[u8]) -> Result<MessageRef<'_>, ProtocolError> {
    if !text {
        return Ok(MessageRef::Binary(data));
    }
    simdutf8::basic::from_utf8(data).map(MessageRef::Text).map_err(|_| ProtocolError::InvalidUtf8)
}
