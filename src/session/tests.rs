//! Sessions driven byte-in/byte-out in virtual time: no socket, no clock. A [`World`]
//! holds sessions, a timer wheel and recording hosts, and runs turns at chosen ticks the
//! way the reactor does (the same `TimerWheel::arm` after every call, the same
//! `timer::settle` for every due reminder).

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::*;
use crate::config::Config;
use crate::event::UserData;
use crate::protocol::message::{CloseFrame, DecoderLimits};
use crate::timer::{self, TICK, TimerWheel};

/// What a session told its host.
#[derive(Debug, PartialEq)]
enum Seen {
    Connect { path: String, protocol: Option<String> },
    Message(Message),
    Drain,
    Disconnect(DisconnectReason),
}

#[derive(Default)]
struct Recorder {
    buffered: usize,
    peak: usize,
    seen: Vec<Seen>,
    liveness: Option<Liveness>,
    barriers: usize,
    dropped: usize,
    slow_closed: usize,
}

impl Host for Recorder {
    fn buffered(&self) -> usize {
        self.buffered
    }
    fn charge(&mut self, cost: usize) {
        self.buffered += cost;
        self.peak = self.peak.max(self.buffered);
    }
    fn release(&mut self, cost: usize) -> bool {
        self.buffered = self.buffered.checked_sub(cost).expect("released more than charged");
        false
    }
    fn set_liveness(&mut self, state: Liveness) {
        self.liveness = Some(state);
    }
    fn set_compresses(&mut self) {}
    fn sent(&mut self, _: usize) {}
    fn wants_write(&mut self) {}
    fn join_topics(&mut self, _: &[String]) -> bool {
        true
    }
    fn http(&mut self, _: &crate::protocol::handshake::Request) -> Option<Vec<u8>> {
        None
    }
    fn refused(&mut self, _: &crate::upgrade::Reject) {}
    fn connect(&mut self, opened: Opened) {
        let _: Option<UserData> = opened.user_data;
        self.seen.push(Seen::Connect { path: opened.path, protocol: opened.protocol });
    }
    fn message(&mut self, message: Message) {
        self.seen.push(Seen::Message(message));
    }
    fn drain(&mut self) {
        self.seen.push(Seen::Drain);
    }
    fn barrier(&mut self) {
        self.barriers += 1;
    }
    fn disconnect(&mut self, reason: DisconnectReason) {
        assert!(!self.seen.iter().any(|s| matches!(s, Seen::Disconnect(_))), "a second Disconnect");
        self.seen.push(Seen::Disconnect(reason));
    }
    fn count(&mut self, what: Count) {
        match what {
            Count::Dropped => self.dropped += 1,
            Count::SlowConsumerClosed => self.slow_closed += 1,
            Count::MessageIn => {}
        }
    }
}

/// One endpoint: a session, its host and its timer bookkeeping, as the reactor keeps them.
struct Peer {
    session: Session,
    host: Recorder,
    timer_tick: u32,
    /// The socket was dropped.
    dropped: bool,
}

/// Sessions on one virtual reactor.
struct World {
    env: Env,
    wheel: TimerWheel,
    peers: Vec<Peer>,
}

fn config() -> Config {
    Config::default()
        .handshake_timeout(Duration::from_secs(1))
        .close_timeout(Duration::from_secs(1))
        .ping_interval(None)
}

impl World {
    fn new(config: Config) -> World {
        World {
            env: Env::new(Arc::new(config), 0, 7),
            wheel: TimerWheel::new(Instant::now()),
            peers: Vec::new(),
        }
    }

    fn server(&mut self) -> usize {
        let session = Session::server(&self.env);
        self.add(session, Recorder::default())
    }

    fn client(&mut self, offer: ClientOffer) -> usize {
        let mut host = Recorder::default();
        let session = Session::client(&mut self.env, &mut host, offer, [3; 16]);
        self.add(session, host)
    }

    fn add(&mut self, session: Session, host: Recorder) -> usize {
        self.peers.push(Peer { session, host, timer_tick: 0, dropped: false });
        let slot = self.peers.len() - 1;
        self.arm(slot);
        slot
    }

    fn arm(&mut self, slot: usize) {
        let peer = &mut self.peers[slot];
        self.wheel.arm(slot as u32, &mut peer.timer_tick, peer.session.deadline());
    }

    /// Runs `f` on a session the way the reactor does: then arms its deadline.
    fn call<T>(
        &mut self,
        slot: usize,
        f: impl FnOnce(&mut Session, &mut Env, &mut Recorder) -> T,
    ) -> T {
        let peer = &mut self.peers[slot];
        let out = f(&mut peer.session, &mut self.env, &mut peer.host);
        self.arm(slot);
        out
    }

    fn feed(&mut self, slot: usize, bytes: &[u8]) {
        let mut data = self.peers[slot].session.take_carry().into_vec();
        data.extend_from_slice(bytes);
        self.call(slot, |s, env, host| s.receive(env, host, &mut data));
    }

    /// Everything the session queued, as the socket would take it.
    fn take_output(&mut self, slot: usize) -> Vec<u8> {
        let peer = &mut self.peers[slot];
        let (bytes, freed) = peer.session.out.take_all();
        let _ = peer.host.release(freed);
        if peer.session.phase() != Phase::Lingering {
            let after = peer.session.flushed(&mut self.env, &mut peer.host);
            if after != AfterFlush::Idle {
                peer.session.linger(&mut peer.host);
            }
        }
        self.arm(slot);
        bytes
    }

    /// A reactor turn at tick `now`: every due reminder, settled and acted on.
    fn turn(&mut self, now: u32) {
        self.env.now = now;
        let mut due = Vec::new();
        self.wheel.expire(now, &mut due);
        for entry in due {
            let slot = entry.slot as usize;
            let peer = &mut self.peers[slot];
            let deadline = peer.session.deadline();
            if peer.dropped
                || !timer::settle(&mut self.wheel, entry, &mut peer.timer_tick, deadline, now)
            {
                continue;
            }
            if !self.call(slot, |s, env, host| s.on_deadline(env, host)) {
                let peer = &mut self.peers[slot];
                peer.session.end(&mut peer.host, DisconnectReason::Abnormal);
                peer.dropped = true;
            }
        }
    }

    fn dropped(&self, slot: usize) -> bool {
        self.peers[slot].dropped
    }

    fn seen(&self, slot: usize) -> &[Seen] {
        &self.peers[slot].host.seen
    }
}

const REQUEST: &[u8] = b"GET /chat HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\n\
    Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
    Sec-WebSocket-Version: 13\r\n\r\n";

/// A masked client frame.
fn client_frame(opcode: OpCode, payload: &[u8]) -> Vec<u8> {
    wire::masked_frame(opcode, payload, [1, 2, 3, 4]).to_vec()
}

/// The frames a server wrote, decoded as a client would.
fn decode_server(bytes: &[u8]) -> Vec<(OpCode, Vec<u8>)> {
    let mut decoder = Decoder::new(Role::Client, DecoderLimits::default());
    let mut bytes = bytes.to_vec();
    let mut pos = 0;
    let mut out = Vec::new();
    while pos < bytes.len() {
        let (used, item) = decoder.decode(&mut bytes[pos..]).expect("valid server frames");
        assert!(used > 0, "a whole frame");
        pos += used;
        match item {
            Some(Incoming::Text(t)) => out.push((OpCode::Text, t.as_bytes().to_vec())),
            Some(Incoming::Binary(b)) => out.push((OpCode::Binary, b.to_vec())),
            Some(Incoming::Ping(p)) => out.push((OpCode::Ping, p.to_vec())),
            Some(Incoming::Pong(p)) => out.push((OpCode::Pong, p.to_vec())),
            Some(Incoming::Close(c)) => {
                let payload = c.map_or(Vec::new(), |c: CloseFrame<'_>| {
                    let mut p = c.code.0.to_be_bytes().to_vec();
                    p.extend_from_slice(c.reason.as_bytes());
                    p
                });
                out.push((OpCode::Close, payload));
            }
            Some(Incoming::Compressed { .. }) | None => {}
        }
    }
    out
}

/// A server session past its handshake, with the 101 taken.
fn open_server(world: &mut World) -> usize {
    let s = world.server();
    world.feed(s, REQUEST);
    let response = world.take_output(s);
    assert!(response.starts_with(b"HTTP/1.1 101"), "{}", String::from_utf8_lossy(&response));
    s
}

// ---- handshake ----

#[test]
fn a_half_sent_request_is_dropped_at_the_handshake_timeout_tick() {
    let mut world = World::new(config());
    let s = world.server();
    world.feed(s, &REQUEST[..20]);
    // 1 s = 10 ticks, counted from the end of tick 0 (the request may have come late in it).
    world.turn(10);
    assert!(!world.dropped(s), "not before its tick");
    world.turn(11);
    assert!(world.dropped(s));
    assert!(world.seen(s).is_empty(), "never connected, so no Disconnect");
}

/// Where in its tick a turn's clock reading may fall: the start, the middle, the last
/// nanosecond.
const IN_TICK: [Duration; 3] =
    [Duration::ZERO, Duration::from_millis(50), TICK.saturating_sub(Duration::from_nanos(1))];

#[test]
fn a_handshake_begun_late_in_a_tick_gets_its_whole_timeout_and_at_most_a_tick_more() {
    let timeout = Duration::from_secs(1);
    for offset in IN_TICK {
        let mut world = World::new(config().handshake_timeout(timeout));
        // The turn that reads the first bytes reads the clock `offset` into tick 3.
        let seen = world.wheel.instant_of(3) + offset;
        world.env.now = world.wheel.tick_at(seen);
        let s = world.server();
        world.feed(s, &REQUEST[..20]);
        // Every turn whose reading is before `seen + timeout` leaves it alone.
        world.turn(world.wheel.tick_at(seen + timeout - Duration::from_nanos(1)));
        assert!(!world.dropped(s), "cut before its timeout ({offset:?} into the tick)");
        let due = world.wheel.instant_of(world.peers[s].session.deadline());
        assert!(due >= seen + timeout && due <= seen + timeout + TICK, "{offset:?}");
        world.turn(world.wheel.tick_at(seen + timeout + TICK));
        assert!(world.dropped(s), "not cut within a tick of its timeout ({offset:?})");
    }
}

#[test]
fn a_message_late_in_a_tick_gets_its_whole_idle_timeout_and_at_most_a_tick_more() {
    let idle = Duration::from_millis(1500);
    for offset in IN_TICK {
        let mut world = World::new(config().idle_timeout(Some(idle)));
        let s = open_server(&mut world);
        let seen = world.wheel.instant_of(10) + offset;
        world.env.now = world.wheel.tick_at(seen);
        world.feed(s, &client_frame(OpCode::Text, b"hi"));
        world.turn(world.wheel.tick_at(seen + idle - Duration::from_nanos(1)));
        assert!(world.take_output(s).is_empty(), "closed before its timeout ({offset:?})");
        world.turn(world.wheel.tick_at(seen + idle + TICK));
        let frames = decode_server(&world.take_output(s));
        assert_eq!(frames.first().map(|f| f.0), Some(OpCode::Close), "{offset:?}");
    }
}

#[test]
fn a_deadline_crossed_during_a_turn_still_fires() {
    // The reactor reads the clock once per turn; a session armed late in a turn whose
    // tick the wheel has already swept must still be reminded.
    let mut world = World::new(config());
    world.turn(5);
    world.env.now = 0; // a deadline computed from an older reading than the sweep
    let s = world.server();
    assert_eq!(world.peers[s].session.deadline(), 11);
    world.turn(7);
    assert!(!world.dropped(s));
    world.turn(11);
    assert!(world.dropped(s), "fired at its tick");
}

#[test]
fn a_reactor_busy_for_many_ticks_fires_every_late_deadline_at_once() {
    let mut world = World::new(config());
    let slots: Vec<usize> = (0..50).map(|_| world.server()).collect();
    // One turn 3000 ticks later (five minutes, past a whole turn of the wheel).
    world.turn(3000);
    assert!(slots.iter().all(|&s| world.dropped(s)));
    assert!(world.wheel.is_empty());
}

#[test]
fn handshakes_are_refused_with_their_status() {
    let mut world = World::new(config().allowed_hosts(["server.example.com"]));
    let cases: [(&[u8], &str); 4] = [
        (b"POST / HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 400"),
        (b"GET / HTTP/1.1\r\nHost: evil.example\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n", "HTTP/1.1 403"),
        (REQUEST, "HTTP/1.1 101"),
        (&[b'x'; 9000], "HTTP/1.1 431"),
    ];
    for (request, status) in cases {
        let s = world.server();
        world.feed(s, request);
        let out = world.take_output(s);
        assert!(out.starts_with(status.as_bytes()), "{status}: {}", String::from_utf8_lossy(&out));
    }
}

// ---- heartbeats and idle ----

#[test]
fn a_quiet_peer_is_pinged_and_a_dead_one_dropped_at_the_pong_timeout() {
    let mut world = World::new(
        config().ping_interval(Some(Duration::from_secs(3))).pong_timeout(Duration::from_secs(2)),
    );
    let s = open_server(&mut world);
    // Opened in tick 0: 3 s have surely passed at tick 31, and 2 s after the ping at 52.
    world.turn(30);
    assert!(world.take_output(s).is_empty(), "no ping before 3 s");
    world.turn(31);
    assert_eq!(decode_server(&world.take_output(s)), [(OpCode::Ping, vec![])]);
    world.turn(51);
    assert!(!world.dropped(s));
    world.turn(52);
    assert!(world.dropped(s));
    assert_eq!(world.seen(s).last(), Some(&Seen::Disconnect(DisconnectReason::PongTimeout)));
}

#[test]
fn any_bytes_prove_the_peer_alive() {
    let mut world = World::new(
        config().ping_interval(Some(Duration::from_secs(3))).pong_timeout(Duration::from_secs(2)),
    );
    let s = open_server(&mut world);
    world.turn(31);
    assert_eq!(decode_server(&world.take_output(s)), [(OpCode::Ping, vec![])]);
    world.env.now = 45;
    world.feed(s, &client_frame(OpCode::Pong, b""));
    world.turn(52);
    assert!(!world.dropped(s), "the pong came in time");
    world.turn(75);
    assert!(world.take_output(s).is_empty(), "no ping before 3 s after the pong");
    world.turn(76);
    assert_eq!(
        decode_server(&world.take_output(s)),
        [(OpCode::Ping, vec![])],
        "3 s after the pong"
    );
}

#[test]
fn an_idle_connection_is_closed_with_1001() {
    let mut world = World::new(config().idle_timeout(Some(Duration::from_millis(1500))));
    let s = open_server(&mut world);
    world.env.now = 10;
    world.feed(s, &client_frame(OpCode::Text, b"hi"));
    world.turn(25);
    assert!(world.take_output(s).is_empty());
    world.turn(26);
    let frames = decode_server(&world.take_output(s));
    assert_eq!(frames[0].0, OpCode::Close);
    assert_eq!(frames[0].1[..2], 1001u16.to_be_bytes());
    // The peer never answers: dropped at the close timeout, 1 s later.
    world.turn(36);
    assert!(!world.dropped(s));
    world.turn(37);
    assert!(world.dropped(s));
    assert_eq!(world.seen(s).last(), Some(&Seen::Disconnect(DisconnectReason::IdleTimeout)));
}

// ---- closing ----

#[test]
fn a_close_the_peer_never_answers_times_out() {
    let mut world = World::new(config());
    let s = open_server(&mut world);
    world.env.now = 3;
    world.call(s, |session, env, host| {
        session.close(env, host, CloseCode::NORMAL, "bye", DisconnectReason::Shutdown)
    });
    assert_eq!(decode_server(&world.take_output(s))[0].0, OpCode::Close);
    // Data from a peer that keeps sending but never closes does not postpone it.
    world.env.now = 12;
    world.feed(s, &client_frame(OpCode::Text, b"still here"));
    world.turn(13);
    assert!(!world.dropped(s));
    world.turn(14);
    assert!(world.dropped(s));
    assert_eq!(world.peers[s].host.liveness, Some(Liveness::Closing));
    assert_eq!(world.seen(s).last(), Some(&Seen::Disconnect(DisconnectReason::Shutdown)));
}

#[test]
fn a_reply_is_never_overtaken_by_the_close() {
    let mut world = World::new(config());
    let s = open_server(&mut world);
    let mut bytes = client_frame(OpCode::Text, b"question");
    bytes.extend(client_frame(OpCode::Close, &1000u16.to_be_bytes()));
    world.feed(s, &bytes);
    assert_eq!(world.peers[s].host.barriers, 1);
    assert!(world.take_output(s).is_empty(), "no close before the handler is done");
    // The handler answers, then the barrier comes back.
    world.call(s, |session, env, host| {
        let reply = wire::frame(OpCode::Text, b"answer");
        host.charge(cost(reply.len()));
        session.queue_reserved(env, host, reply)
    });
    world.call(s, |session, env, host| session.barrier_passed(env, host));
    let frames = decode_server(&world.take_output(s));
    assert_eq!(frames[0], (OpCode::Text, b"answer".to_vec()));
    assert_eq!(frames[1], (OpCode::Close, 1000u16.to_be_bytes().to_vec()));
    assert_eq!(world.peers[s].session.phase(), Phase::Lingering);
    assert!(matches!(
        world.seen(s).last(),
        Some(Seen::Disconnect(DisconnectReason::ClosedByPeer { .. }))
    ));
}

#[test]
fn a_barrier_that_never_returns_still_sends_the_close_at_the_close_timeout() {
    let mut world = World::new(config());
    let s = open_server(&mut world);
    world.feed(s, &client_frame(OpCode::Close, &1000u16.to_be_bytes()));
    world.turn(10);
    assert!(world.take_output(s).is_empty());
    world.turn(11);
    assert_eq!(decode_server(&world.take_output(s))[0].0, OpCode::Close);
}

#[test]
fn protocol_errors_close_with_their_code() {
    for (bytes, code) in [
        (vec![0x81, 0x02, b'h', b'i'], 1002u16), // unmasked
        (client_frame(OpCode::Text, &[0xff, 0xfe]), 1007),
        (wire::masked_frame(OpCode::Binary, &vec![0; 70_000], [1, 2, 3, 4]).to_vec(), 1009),
    ] {
        let mut world = World::new(config());
        let s = open_server(&mut world);
        world.feed(s, &bytes);
        world.call(s, |session, env, host| session.barrier_passed(env, host));
        let frames = decode_server(&world.take_output(s));
        assert_eq!(frames.last().map(|f| f.1[..2].to_vec()), Some(code.to_be_bytes().to_vec()));
    }
}

#[test]
fn shutdown_ends_every_session_by_its_deadline_and_empties_the_wheel() {
    let mut world = World::new(config().ping_interval(Some(Duration::from_secs(30))));
    let open: Vec<usize> = (0..3).map(|_| open_server(&mut world)).collect();
    let handshaking = world.server();
    world.env.now = 2;
    for slot in 0..world.peers.len() {
        let keep = world.call(slot, |session, env, host| session.shutdown(env, host));
        if !keep {
            let peer = &mut world.peers[slot];
            peer.session.end(&mut peer.host, DisconnectReason::Shutdown);
            peer.dropped = true;
        }
    }
    assert!(world.dropped(handshaking));
    world.turn(12);
    assert!(!open.iter().any(|&s| world.dropped(s)), "the close timeout is 1 s from tick 2");
    world.turn(13);
    assert!(open.iter().all(|&s| world.dropped(s)));
    // Stale reminders (the handshake's, the heartbeats') fall out as their ticks pass.
    world.turn(400);
    assert!(world.wheel.is_empty());
}

// ---- bounded memory ----

#[test]
fn pings_never_read_cost_at_most_max_backpressure_then_close_1008() {
    let cap = 64 << 10;
    let mut world = World::new(config().max_backpressure(cap));
    let s = open_server(&mut world);
    let ping = client_frame(OpCode::Ping, b"");
    let flood: Vec<u8> = ping.iter().copied().cycle().take(ping.len() * 5000).collect();
    world.feed(s, &flood);
    let host = &world.peers[s].host;
    assert!(host.peak <= cap, "peak {} over the cap {cap}", host.peak);
    // Exactly as many pongs as fit, at 2 bytes + FRAME_COST each, then the close.
    let fit = cap / cost(2);
    assert_eq!(host.slow_closed, 1);
    let frames = decode_server(&world.take_output(s));
    assert!(frames.len() <= fit + 1, "{} frames", frames.len());
    assert_eq!(frames.last().map(|f| f.0), Some(OpCode::Close));
    assert_eq!(frames.last().map(|f| f.1[..2].to_vec()), Some(1008u16.to_be_bytes().to_vec()));
}

#[test]
fn with_the_drop_policy_pongs_past_the_cap_are_dropped_at_the_exact_byte() {
    let fit = 10;
    let cap = fit * cost(2) + cost(2) - 1;
    let mut world =
        World::new(config().max_backpressure(cap).backpressure(crate::config::Backpressure::Drop));
    let s = open_server(&mut world);
    for _ in 0..100 {
        world.feed(s, &client_frame(OpCode::Ping, b""));
    }
    let host = &world.peers[s].host;
    assert_eq!(host.buffered, fit * cost(2));
    assert_eq!(host.dropped, 100 - fit);
    assert_eq!(decode_server(&world.take_output(s)).len(), fit);
    assert_eq!(world.peers[s].host.buffered, 0, "all released once written");
}

// ---- the client role ----

fn connect_pair(world: &mut World, offer: ClientOffer) -> (usize, usize) {
    let c = world.client(offer);
    let s = world.server();
    let request = world.take_output(c);
    assert!(request.starts_with(b"GET /chat?room=1 HTTP/1.1\r\n"));
    world.feed(s, &request);
    let response = world.take_output(s);
    world.feed(c, &response);
    (c, s)
}

#[test]
fn a_client_and_a_server_session_talk_and_close_cleanly() {
    let mut world = World::new(config());
    let (c, s) = connect_pair(&mut world, ClientOffer::new("server.example.com", "/chat?room=1"));
    assert_eq!(world.seen(c), [Seen::Connect { path: "/chat".into(), protocol: None }]);
    assert!(matches!(world.seen(s)[0], Seen::Connect { .. }));
    world.call(c, |session, env, host| session.send(env, host, OpCode::Text, b"hello"));
    let bytes = world.take_output(c);
    assert_ne!(bytes[1] & 0x80, 0, "client frames are masked");
    world.feed(s, &bytes);
    assert_eq!(world.seen(s)[1], Seen::Message(Message::Text("hello".into())));
    // The server closes; the client answers once its handler is done; the server ends.
    world.call(s, |session, env, host| {
        session.close(env, host, CloseCode::NORMAL, "done", DisconnectReason::Shutdown)
    });
    let close = world.take_output(s);
    world.feed(c, &close);
    world.call(c, |session, env, host| session.barrier_passed(env, host));
    let answer = world.take_output(c);
    world.feed(s, &answer);
    world.take_output(s);
    assert_eq!(world.peers[s].session.phase(), Phase::Lingering);
    assert_eq!(world.peers[c].session.phase(), Phase::Lingering);
    assert!(matches!(
        world.seen(c).last(),
        Some(Seen::Disconnect(DisconnectReason::ClosedByPeer { code: CloseCode::NORMAL, .. }))
    ));
    assert_eq!(world.seen(s).last(), Some(&Seen::Disconnect(DisconnectReason::Shutdown)));
}

#[test]
fn a_client_refuses_a_bad_accept_key_and_never_opens() {
    let mut world = World::new(config());
    let c = world.client(ClientOffer::new("h", "/"));
    world.take_output(c);
    world.feed(
        c,
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Accept: AAAAAAAAAAAAAAAAAAAAAAAAAAA=\r\n\r\n",
    );
    assert_eq!(world.peers[c].session.phase(), Phase::Flushing);
    assert_eq!(
        world.peers[c].session.reason(),
        Some(&DisconnectReason::HandshakeFailed(crate::protocol::client::ResponseError::BadAccept))
    );
    assert!(world.seen(c).is_empty());
}

#[test]
fn a_server_that_never_answers_a_client_times_it_out() {
    let mut world = World::new(config());
    let c = world.client(ClientOffer::new("h", "/"));
    world.take_output(c);
    world.turn(10);
    assert!(!world.dropped(c), "1 s from the end of tick 0 is tick 11");
    world.turn(11);
    assert!(world.dropped(c));
}

#[test]
fn a_clients_handle_frames_are_masked_and_their_key_paid_for() {
    let mut world = World::new(config());
    let (c, s) = connect_pair(&mut world, ClientOffer::new("h", "/chat?room=1"));
    let before = world.peers[c].host.buffered;
    // What a Handle reserves and queues: an unmasked frame at its cost.
    let frame = crate::wire::frame(OpCode::Text, b"from a handle");
    world.call(c, |session, env, host| {
        host.charge(super::cost(frame.len()));
        session.queue_reserved(env, host, frame.clone());
    });
    assert_eq!(world.peers[c].host.buffered, before + super::cost(frame.len()) + 4);
    let bytes = world.take_output(c);
    assert_eq!(bytes.len(), frame.len() + 4);
    assert_ne!(bytes[1] & 0x80, 0, "masked");
    assert_eq!(world.peers[c].host.buffered, before, "the key's bytes released with the frame");
    world.feed(s, &bytes);
    assert_eq!(world.seen(s)[1], Seen::Message(Message::Text("from a handle".into())));
}

#[test]
fn a_client_that_offers_deflate_compresses_and_inflates_with_a_server() {
    let mut world = World::new(config().compression(crate::config::Compression::Shared));
    let mut offer = ClientOffer::new("h", "/chat?room=1");
    offer.compression = true;
    let (c, s) = connect_pair(&mut world, offer);
    assert!(matches!(world.seen(c)[0], Seen::Connect { .. }));
    let text = "squeeze ".repeat(100);
    let reserved = super::cost(crate::wire::frame_len(text.len()));
    world.call(c, |session, env, host| {
        host.charge(reserved);
        session.queue_compressed(env, host, OpCode::Text, text.as_bytes(), reserved);
    });
    let bytes = world.take_output(c);
    assert!(bytes.len() < text.len() / 4, "compressed: {} bytes", bytes.len());
    assert_ne!(bytes[0] & 0x40, 0, "RSV1 set");
    world.feed(s, &bytes);
    assert_eq!(world.seen(s)[1], Seen::Message(Message::Text(text.clone())));
    // And back: the server compresses, the client inflates.
    world.call(s, |session, env, host| {
        host.charge(reserved);
        session.queue_compressed(env, host, OpCode::Text, text.as_bytes(), reserved);
    });
    let back = world.take_output(s);
    world.feed(c, &back);
    assert_eq!(world.seen(c)[1], Seen::Message(Message::Text(text)));
}

// ---- replies written ahead of the queue ----

#[test]
fn replies_may_go_ahead_only_of_an_empty_queue_of_an_open_server_connection() {
    let mut world = World::new(config());
    let s = world.server();
    assert!(!world.peers[s].session.lends_replies(), "not during the handshake");
    world.feed(s, REQUEST);
    assert!(!world.peers[s].session.lends_replies(), "not ahead of the queued 101");
    world.take_output(s);
    assert!(world.peers[s].session.lends_replies());
    world.feed(s, &client_frame(OpCode::Ping, b"p"));
    assert!(!world.peers[s].session.lends_replies(), "not ahead of the queued pong");
}

#[test]
fn refused_bytes_written_ahead_are_queued_first_and_charged() {
    let mut world = World::new(config());
    let s = open_server(&mut world);
    world.call(s, |session, env, host| session.send(env, host, OpCode::Text, b"later"));
    let queued = world.peers[s].host.buffered;
    let refused = wire::frame(OpCode::Text, b"ahead");
    world.call(s, |session, _, host| session.keep_unsent(host, &refused));
    assert_eq!(world.peers[s].host.buffered, queued + cost(refused.len()));
    let mut expected = refused.to_vec();
    expected.extend_from_slice(&wire::frame(OpCode::Text, b"later"));
    assert_eq!(world.take_output(s), expected);
    assert_eq!(world.peers[s].host.buffered, 0, "writing them frees what they were charged");
}
