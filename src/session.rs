//! What bytes, commands and deadlines do to one connection: the upgrade, frames, the
//! close handshake, the backpressure policy and heartbeats. The reactor does the IO and
//! calls in here with the connection and its own shared state ([`Ctx`]).

use std::borrow::Cow;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::Bytes;
use crossbeam_channel::Receiver;

use crate::compress::{Compressor, Outgoing};
use crate::config::{Backpressure, Compression, Config};
use crate::conn::{Conn, Phase};
use crate::dispatch::Dispatcher;
use crate::event::{ConnId, ConnectInfo, DisconnectReason, Event, Message, UserData};
use crate::handle::{Command, Remote, Shared};
use crate::liveness::Liveness;
use crate::metrics::Counters;
use crate::protocol::deflate::{self, Agreed, DeflatePolicy};
use crate::protocol::frame::OpCode;
use crate::protocol::handshake::{self, Request};
use crate::protocol::message::{self, DecoderLimits, Incoming};
use crate::protocol::{CloseCode, ProtocolError};
use crate::timer::TimerWheel;
use crate::upgrade::{Accept, Reject, RejectCause};
use crate::wire;

/// A reactor's state apart from its sockets and read buffer.
pub(crate) struct Ctx {
    pub(crate) index: usize,
    pub(crate) shared: Arc<Shared>,
    pub(crate) config: Arc<Config>,
    pub(crate) commands: Receiver<Command>,
    pub(crate) dispatcher: Dispatcher,
    pub(crate) compressor: Compressor,
    pub(crate) wheel: TimerWheel,
    pub(crate) limits: DecoderLimits,
    /// The tick this turn runs in.
    pub(crate) now: u32,
    pub(crate) next_generation: u32,
    /// Emptied write queues, lent to connections with something to write: an idle
    /// connection holds no queue, and a busy one does not allocate one per turn.
    pub(crate) queues: Vec<VecDeque<Bytes>>,
    /// Connections with frames queued this turn, written at its end.
    pub(crate) dirty: Vec<usize>,
    /// Connections whose read budget ran out, or whose reading resumed.
    pub(crate) read_again: Vec<usize>,
    /// Connections not read while their worker's channel is full.
    pub(crate) paused: Vec<usize>,
    /// Ticks of the configured durations (0 = off).
    pub(crate) ticks: Ticks,
    pub(crate) shutdown_deadline: Option<Instant>,
}

/// Durations in wheel ticks, computed once.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ticks {
    pub(crate) idle: u32,
    pub(crate) ping: u32,
    pub(crate) pong: u32,
}

impl Ticks {
    pub(crate) fn of(config: &Config) -> Ticks {
        let t = |d: Option<Duration>| {
            d.map_or(0, |d| d.as_millis().div_ceil(crate::timer::TICK.as_millis()).max(1) as u32)
        };
        Ticks {
            idle: t(config.idle_timeout),
            ping: t(config.ping_interval),
            pong: t(Some(config.pong_timeout)),
        }
    }
}

impl Ctx {
    pub(crate) fn remote(&self) -> &Remote {
        &self.shared.reactors[self.index]
    }

    pub(crate) fn id(&self, slot: usize, conn: &Conn) -> ConnId {
        ConnId::new(self.index, conn.generation, slot)
    }

    fn mark_dirty(&mut self, slot: usize, conn: &mut Conn) {
        if !conn.dirty {
            conn.dirty = true;
            self.dirty.push(slot);
        }
    }

    /// Queues a frame whose bytes a `Handle` already reserved.
    pub(crate) fn queue_reserved(&mut self, slot: usize, conn: &mut Conn, frame: Bytes) {
        if conn.out.capacity() == 0
            && let Some(queue) = self.queues.pop()
        {
            conn.out = queue;
        }
        conn.out.push_back(frame);
        self.mark_dirty(slot, conn);
    }

    /// Queues a frame the reactor made (101, pong, close), counting its bytes.
    pub(crate) fn queue_own(&mut self, slot: usize, conn: &mut Conn, frame: Bytes) {
        self.remote().live.add(self.id(slot, conn), frame.len());
        self.queue_reserved(slot, conn, frame);
    }

    /// Compresses and queues a message a `Handle` reserved `reserved` bytes for (the
    /// size of its plain frame), then settles the count with the real size.
    pub(crate) fn queue_compressed(
        &mut self,
        slot: usize,
        conn: &mut Conn,
        opcode: OpCode,
        payload: &[u8],
        reserved: usize,
    ) {
        let frame = match &conn.deflate {
            Some(agreed) => self.compressor.frame_for(agreed, &mut conn.codecs, opcode, payload),
            None => wire::frame(opcode, payload),
        };
        let id = self.id(slot, conn);
        let live = &self.remote().live;
        if frame.len() < reserved {
            live.release(id, reserved - frame.len());
        } else {
            live.add(id, frame.len() - reserved);
        }
        self.queue_reserved(slot, conn, frame);
    }

    /// Queues one recipient's copy of a fan-out message: the plain frame, or the
    /// compressed one, made at most once per reactor (`once`) for every recipient the
    /// shared deflater may serve.
    pub(crate) fn queue_fanout(
        &mut self,
        slot: usize,
        conn: &mut Conn,
        out: &Outgoing,
        once: &mut Option<Bytes>,
    ) {
        let frame = match (&conn.deflate, &out.payload) {
            (Some(agreed), Some((opcode, payload)))
                if agreed.fits_shared_deflater(payload.len()) =>
            {
                once.get_or_insert_with(|| self.compressor.shared_frame(*opcode, payload)).clone()
            }
            (Some(agreed), Some((opcode, payload))) => {
                self.compressor.frame_for(agreed, &mut conn.codecs, *opcode, payload)
            }
            _ => out.plain.clone(),
        };
        self.queue_shared(slot, conn, frame);
    }

    /// Queues a frame shared by many recipients, under the backpressure policy.
    pub(crate) fn queue_shared(&mut self, slot: usize, conn: &mut Conn, frame: Bytes) {
        let id = self.id(slot, conn);
        let buffered = self.remote().live.owned_buffered(id);
        if buffered + frame.len() <= self.config.max_backpressure {
            self.queue_own(slot, conn, frame);
            return;
        }
        match self.config.backpressure {
            Backpressure::Drop => Counters::bump(&self.shared.counters.messages_dropped),
            Backpressure::Close => self.close_slow_consumer(slot, conn),
        }
    }

    /// Releases the bytes of a reserved frame that will not be written.
    pub(crate) fn discard_reserved(&self, id: ConnId, len: usize) {
        self.remote().live.release(id, len);
    }

    pub(crate) fn set_deadline(&mut self, slot: usize, conn: &mut Conn, tick: u32) {
        conn.deadline = tick;
        if conn.timer_tick == 0 || tick < conn.timer_tick {
            conn.timer_tick = tick;
            self.wheel.schedule(slot as u32, tick);
        }
    }

    pub(crate) fn deadline_after(&self, after: Duration) -> u32 {
        self.wheel.deadline(Instant::now(), after)
    }

    /// Sends a close frame and waits for the peer's (§7.1.2).
    pub(crate) fn start_close(
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
        self.remote().live.set(self.id(slot, conn), Liveness::Closing);
        self.queue_own(slot, conn, frame);
        let tick = self.deadline_after(self.config.close_timeout);
        self.set_deadline(slot, conn, tick);
    }

    /// Closes a connection that does not read: what it has not taken is discarded (but a
    /// frame the socket has started stays whole), then close 1008.
    pub(crate) fn close_slow_consumer(&mut self, slot: usize, conn: &mut Conn) {
        if conn.phase != Phase::Open {
            return;
        }
        Counters::bump(&self.shared.counters.slow_consumers_closed);
        let dropped: usize = conn.out.iter().skip(1).map(Bytes::len).sum();
        conn.out.truncate(1);
        self.discard_reserved(self.id(slot, conn), dropped);
        let frame = wire::close_frame(Some(CloseCode::POLICY), "slow consumer");
        self.start_close(slot, conn, frame, DisconnectReason::SlowConsumer);
    }

    /// Fails the connection (§7.1.7): stop reading, send a close with the error's code
    /// (after the handler's replies to earlier messages), close TCP.
    fn fail(&mut self, slot: usize, conn: &mut Conn, error: ProtocolError) {
        if conn.phase == Phase::Open {
            conn.set_reason(DisconnectReason::ProtocolError(error));
            self.begin_finish(slot, conn);
        } else {
            self.flush_then_close(slot, conn);
        }
    }

    /// Stops reading and sends a barrier through the connection's worker; the close
    /// frame goes out when it comes back ([`Ctx::finish`]) or the close timeout passes.
    fn begin_finish(&mut self, slot: usize, conn: &mut Conn) {
        conn.phase = Phase::Finishing;
        conn.carry = Vec::new();
        let tick = self.deadline_after(self.config.close_timeout);
        self.set_deadline(slot, conn, tick);
        let id = self.id(slot, conn);
        self.dispatcher.barrier(conn.worker, id);
    }

    /// Sends the close frame the reason calls for, then closes TCP.
    pub(crate) fn finish(&mut self, slot: usize, conn: &mut Conn) {
        if conn.phase != Phase::Finishing {
            return;
        }
        let code = match conn.reason.as_deref() {
            // §5.5.1: echo the status code received (none for an empty close).
            Some(DisconnectReason::ClosedByPeer { code, .. }) => {
                (*code != CloseCode::NO_STATUS).then_some(*code)
            }
            Some(DisconnectReason::ProtocolError(e)) => Some(e.close_code()),
            _ => Some(CloseCode::NORMAL),
        };
        self.queue_own(slot, conn, wire::close_frame(code, ""));
        self.flush_then_close(slot, conn);
    }

    /// Delivers `Disconnect` (once) and frees the id, while the socket may linger.
    pub(crate) fn disconnect(&mut self, slot: usize, conn: &mut Conn) {
        if !std::mem::take(&mut conn.connected) {
            return;
        }
        let id = self.id(slot, conn);
        self.remote().live.set(id, Liveness::Gone);
        // After `Gone`: a subscribe racing with this end fails, or is undone here.
        self.shared.topics.remove_connection(id);
        self.shared.open.fetch_sub(1, Ordering::AcqRel);
        let reason = conn.reason.take().map_or(DisconnectReason::Abnormal, |r| *r);
        self.shared.counters.closed(self.index, &reason);
        self.dispatcher.emit(conn.worker, Event::Disconnect { id, reason });
    }

    /// Stops reading; TCP closes once the queue is written (§7.1.1: the server closes
    /// first).
    pub(crate) fn flush_then_close(&mut self, slot: usize, conn: &mut Conn) {
        conn.phase = Phase::Flushing;
        conn.carry = Vec::new();
        if conn.connected {
            self.remote().live.set(self.id(slot, conn), Liveness::Closing);
        }
        let tick = self.deadline_after(self.config.close_timeout);
        self.set_deadline(slot, conn, tick);
        self.mark_dirty(slot, conn);
    }

    /// The connection's next heartbeat or idle deadline; 0 when neither is configured.
    fn open_deadline(&self, conn: &Conn) -> u32 {
        let Ticks { idle, ping, pong } = self.ticks;
        let mut next = u32::MAX;
        if idle > 0 {
            next = next.min(conn.last_message.saturating_add(idle));
        }
        if conn.ping_sent > 0 {
            next = next.min(conn.ping_sent.saturating_add(pong));
        } else if ping > 0 {
            next = next.min(conn.last_seen.saturating_add(ping));
        }
        if next == u32::MAX { 0 } else { next.max(self.now + 1) }
    }

    /// An open connection's deadline passed: drop a dead peer, close an idle one, or ping
    /// a quiet one.
    pub(crate) fn open_timer(&mut self, slot: usize, conn: &mut Conn) -> bool {
        let Ticks { idle, ping, pong } = self.ticks;
        if conn.ping_sent > 0 && self.now >= conn.ping_sent.saturating_add(pong) {
            conn.set_reason(DisconnectReason::PongTimeout);
            return false;
        }
        if idle > 0 && self.now >= conn.last_message.saturating_add(idle) {
            let frame = wire::close_frame(Some(CloseCode::GOING_AWAY), "idle timeout");
            self.start_close(slot, conn, frame, DisconnectReason::IdleTimeout);
            return true;
        }
        if ping > 0 && conn.ping_sent == 0 && self.now >= conn.last_seen.saturating_add(ping) {
            conn.ping_sent = self.now;
            self.queue_own(slot, conn, wire::frame(OpCode::Ping, b""));
        }
        let tick = self.open_deadline(conn);
        if tick > 0 {
            self.set_deadline(slot, conn, tick);
        }
        true
    }

    /// Any bytes from the peer prove it alive.
    pub(crate) fn seen(&self, conn: &mut Conn) {
        conn.last_seen = self.now;
        conn.ping_sent = 0;
    }
}

/// Handles bytes of a connection still in its handshake; returns how many were used.
pub(crate) fn handshake_bytes(
    ctx: &mut Ctx,
    slot: usize,
    conn: &mut Conn,
    data: &mut [u8],
) -> usize {
    let max = ctx.config.max_header_bytes;
    let (request, used) = match handshake::parse_request(data, max) {
        Ok(Some(parsed)) => parsed,
        Ok(None) => return 0,
        Err(e) => {
            reject(ctx, slot, conn, Reject::by_server(e.status(), RejectCause::BadHandshake));
            return data.len();
        }
    };
    // Plain HTTP on the WebSocket port (src/http): a routed request without `Upgrade`.
    if let Some(answer) = crate::http::respond(&ctx.shared, &ctx.config, &request) {
        ctx.queue_own(slot, conn, Bytes::from(answer));
        ctx.flush_then_close(slot, conn);
        return data.len();
    }
    match upgrade(ctx, &request).and_then(|accepted| join_topics(ctx, slot, conn, accepted)) {
        Ok(accepted) => {
            open(ctx, slot, conn, &request, accepted);
            used + frame_bytes(ctx, slot, conn, &mut data[used..])
        }
        Err(rejection) => {
            reject(ctx, slot, conn, rejection);
            data.len()
        }
    }
}

/// What the upgrade decided.
struct Accepted {
    response: Bytes,
    deflate: Option<Agreed>,
    protocol: Option<String>,
    user_data: Option<UserData>,
    topics: Vec<String>,
}

fn upgrade(ctx: &Ctx, request: &Request) -> Result<Accepted, Reject> {
    let bad = |status| Reject::by_server(status, RejectCause::BadHandshake);
    handshake::validate_upgrade(request).map_err(|e| bad(e.status()))?;
    let config = &ctx.config;
    if !config.origins.allows(request) {
        return Err(Reject::by_server(403, RejectCause::Origin));
    }
    let protocol = handshake::select_protocol(request, &config.subprotocols);
    let deflate = negotiate_deflate(config, request).map_err(bad)?;
    let accept = match &config.on_upgrade {
        Some(hook) => hook(request)?,
        None => Accept::new(),
    };
    let extensions = deflate.map(|agreed| agreed.response_header());
    let mut response = handshake::accept_response(request, protocol, extensions.as_deref());
    accept.add_headers_to(&mut response);
    Ok(Accepted {
        response: Bytes::from(response),
        deflate,
        protocol: protocol.map(str::to_owned),
        user_data: accept.user_data,
        topics: accept.topics,
    })
}

/// The permessage-deflate parameters for this request, if the client offered any the
/// configured mode can honour; 400 for a malformed `Sec-WebSocket-Extensions`.
fn negotiate_deflate(config: &Config, request: &Request) -> Result<Option<Agreed>, u16> {
    let policy = match config.compression {
        Compression::Disabled => return Ok(None),
        Compression::Shared => DeflatePolicy::Shared,
        Compression::Dedicated { window_bits } => DeflatePolicy::Dedicated { window_bits },
    };
    // Straight from the headers, without collecting them: nothing is allocated per
    // handshake here.
    let mut not_utf8 = false;
    let offers = request
        .headers()
        .filter(|(name, _)| name.eq_ignore_ascii_case("sec-websocket-extensions"))
        .filter_map(|(_, value)| {
            let value = std::str::from_utf8(value).ok();
            not_utf8 |= value.is_none();
            value
        });
    let agreed = deflate::negotiate(offers, &policy).map_err(|_| 400u16)?;
    if not_utf8 { Err(400) } else { Ok(agreed) }
}

/// Joins the topics the upgrade hook named, before the 101 is queued: nothing published
/// after the client sees its handshake can miss it. A limit refuses the upgrade with 503.
fn join_topics(
    ctx: &Ctx,
    slot: usize,
    conn: &Conn,
    accepted: Accepted,
) -> Result<Accepted, Reject> {
    if accepted.topics.is_empty() {
        return Ok(accepted);
    }
    let id = ctx.id(slot, conn);
    let topics = &ctx.shared.topics;
    // The connection is not open yet and only this thread can end it, so no disconnect
    // can race the joins.
    if accepted.topics.iter().all(|topic| topics.subscribe(id, topic, || true).is_ok()) {
        Ok(accepted)
    } else {
        topics.remove_connection(id);
        Err(Reject::by_server(503, RejectCause::TopicLimit))
    }
}

fn reject(ctx: &mut Ctx, slot: usize, conn: &mut Conn, rejection: Reject) {
    ctx.shared.counters.rejected(&rejection);
    ctx.queue_own(slot, conn, Bytes::from(rejection.response()));
    ctx.flush_then_close(slot, conn);
}

fn open(ctx: &mut Ctx, slot: usize, conn: &mut Conn, request: &Request, accepted: Accepted) {
    ctx.queue_own(slot, conn, accepted.response);
    conn.phase = Phase::Open;
    conn.connected = true;
    conn.last_message = ctx.now;
    ctx.seen(conn);
    conn.deadline = 0;
    let tick = ctx.open_deadline(conn);
    if tick > 0 {
        ctx.set_deadline(slot, conn, tick);
    }
    let id = ctx.id(slot, conn);
    if accepted.deflate.is_some() {
        conn.deflate = accepted.deflate;
        conn.decoder.set_compression(true);
        ctx.remote().live.set_compresses(id);
    }
    ctx.remote().live.set(id, Liveness::Open);
    ctx.shared.open.fetch_add(1, Ordering::AcqRel);
    ctx.shared.counters.opened(ctx.index);
    let unknown = SocketAddr::from(([0, 0, 0, 0], 0));
    let info = ConnectInfo {
        id,
        remote_addr: conn.stream.peer_addr().unwrap_or(unknown),
        local_addr: conn.stream.local_addr().unwrap_or(unknown),
        path: request.path().to_owned(),
        query: request.query().to_owned(),
        protocol: accepted.protocol,
        user_data: accepted.user_data,
    };
    ctx.dispatcher.emit(conn.worker, Event::Connect(info));
}

/// Parses frames from `data`; returns how many bytes were used (the rest is a partial
/// header or control frame, carried to the next read).
pub(crate) fn frame_bytes(ctx: &mut Ctx, slot: usize, conn: &mut Conn, data: &mut [u8]) -> usize {
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
    if conn.phase.reads_frames() { pos } else { data.len() }
}

fn emit_message(ctx: &mut Ctx, slot: usize, conn: &mut Conn, message: Message) {
    conn.last_message = ctx.now;
    Counters::bump(&ctx.shared.counters.messages_in);
    let id = ctx.id(slot, conn);
    ctx.dispatcher.emit(conn.worker, Event::Message { id, message });
}

fn incoming(ctx: &mut Ctx, slot: usize, conn: &mut Conn, item: Incoming<'_>) {
    match item {
        Incoming::Text(text) if conn.phase.is_open() => {
            let text = match text {
                Cow::Borrowed(text) => wire::text_with_frame_room(text),
                Cow::Owned(text) => text,
            };
            emit_message(ctx, slot, conn, Message::Text(text));
        }
        Incoming::Binary(data) if conn.phase.is_open() => {
            let data = match data {
                Cow::Borrowed(data) => wire::with_frame_room(data),
                Cow::Owned(data) => data,
            };
            emit_message(ctx, slot, conn, Message::Binary(data));
        }
        Incoming::Ping(payload) if conn.phase.is_open() => {
            // A peer that pings without reading must not grow our queue.
            let id = ctx.id(slot, conn);
            let room =
                ctx.config.max_backpressure.saturating_sub(ctx.remote().live.owned_buffered(id));
            if payload.len() + 2 <= room {
                ctx.queue_own(slot, conn, wire::frame(OpCode::Pong, payload));
            }
        }
        Incoming::Close(frame) if conn.phase.is_open() => {
            let (code, reason) = match &frame {
                Some(f) => (f.code, f.reason.to_owned()),
                None => (CloseCode::NO_STATUS, String::new()),
            };
            conn.set_reason(DisconnectReason::ClosedByPeer { code, reason });
            ctx.begin_finish(slot, conn);
        }
        // The answer to our close (§7.1.2): the handshake is complete.
        Incoming::Close(_) => ctx.flush_then_close(slot, conn),
        Incoming::Compressed { text, body } if conn.phase.is_open() => {
            inflated(ctx, slot, conn, text, &body);
        }
        Incoming::Text(_)
        | Incoming::Binary(_)
        | Incoming::Ping(_)
        | Incoming::Pong(_)
        | Incoming::Compressed { .. } => {}
    }
}

/// Inflates a compressed message (RFC 7692 §7.2.2) and delivers it; bad data fails the
/// connection (1007), too much of it as well (1009, before more than the limit is held).
fn inflated(ctx: &mut Ctx, slot: usize, conn: &mut Conn, text: bool, body: &[u8]) {
    let Some(agreed) = conn.deflate else {
        return ctx.fail(slot, conn, ProtocolError::ReservedBits);
    };
    let max = ctx.config.max_message_size;
    let data = match ctx.compressor.inflate(&agreed, &mut conn.codecs, body, max) {
        Ok(data) => data,
        Err(error) => return ctx.fail(slot, conn, error),
    };
    let message = if text {
        match message::into_text(data) {
            Ok(s) => Message::Text(s),
            Err(error) => return ctx.fail(slot, conn, error),
        }
    } else {
        Message::Binary(data)
    };
    emit_message(ctx, slot, conn, message);
}
