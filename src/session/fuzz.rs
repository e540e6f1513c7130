//! A driver that runs one session on arbitrary input: bytes from the peer, commands,
//! partial writes and time steps, chosen by the input itself, checking after every step
//! what must always hold:
//!
//! - what the session holds is bounded: its queue never costs more than
//!   `max_backpressure` plus the frames it had to send (handshake answer, close, ping)
//!   plus what the driver reserved itself, and its carry never passes the head limit;
//! - every byte it writes parses as frames of its role, and every close code it sends is
//!   one RFC 6455 allows on the wire;
//! - its events come in order: `Connect` first, nothing after `Disconnect`, which comes
//!   at most once and only after `Connect`.
//!
//! `fuzz/` runs it under libFuzzer; the unit tests run its seed inputs.

use std::sync::Arc;

use super::{ClientOffer, Count, Env, Host, Opened, Session};
use crate::config::{Backpressure, Compression, Config};
use crate::event::{DisconnectReason, Message};
use crate::liveness::Liveness;
use crate::protocol::CloseCode;
use crate::protocol::frame::OpCode;
use crate::protocol::message::{Decoder, DecoderLimits, Incoming, Role};
use crate::wire;

/// The queue's cap in the driven sessions.
const CAP: usize = 4096;
/// The most the session may add beyond the cap by itself: a handshake answer, a ping, a
/// close frame, with their frame costs.
const OWN_FRAMES: usize = 1024;

#[derive(Default)]
struct Checked {
    buffered: usize,
    connected: bool,
    ended: bool,
}

impl Host for Checked {
    fn buffered(&self) -> usize {
        self.buffered
    }
    fn charge(&mut self, cost: usize) {
        self.buffered += cost;
    }
    fn release(&mut self, cost: usize) -> bool {
        self.buffered = self.buffered.checked_sub(cost).expect("released more than was charged");
        false
    }
    fn set_liveness(&mut self, _: Liveness) {}
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
    fn connect(&mut self, _: Opened) {
        assert!(!self.connected && !self.ended, "Connect twice, or after the end");
        self.connected = true;
    }
    fn message(&mut self, _: Message) {
        assert!(self.connected && !self.ended, "a message outside the connection's life");
    }
    fn drain(&mut self) {
        assert!(self.connected && !self.ended, "a drain outside the connection's life");
    }
    fn barrier(&mut self) {}
    fn disconnect(&mut self, _: DisconnectReason) {
        assert!(self.connected && !self.ended, "Disconnect without Connect, or twice");
        self.ended = true;
    }
    fn count(&mut self, _: Count) {}
}

/// A valid upgrade request offering permessage-deflate, to get past the handshake often.
const REQUEST: &[u8] = b"GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n\
    Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
    Sec-WebSocket-Version: 13\r\nSec-WebSocket-Extensions: permessage-deflate\r\n\r\n";

/// Reads the input a byte or a slice at a time; zeros once it runs out.
struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn byte(&mut self) -> u8 {
        let (&b, rest) = self.0.split_first().unwrap_or((&0, &[]));
        self.0 = rest;
        b
    }

    fn bytes(&mut self, n: usize) -> &[u8] {
        let n = n.min(self.0.len());
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        head
    }
}

fn config(choice: u8) -> Config {
    let compression = match choice % 3 {
        0 => Compression::Disabled,
        1 => Compression::Shared,
        _ => Compression::Dedicated { window_bits: 9 },
    };
    let backpressure = if choice & 4 == 0 { Backpressure::Close } else { Backpressure::Drop };
    Config::default()
        .compression(compression)
        .backpressure(backpressure)
        .max_backpressure(CAP)
        .max_message_size(1 << 16)
        .max_header_bytes(1024)
        .idle_timeout(Some(std::time::Duration::from_secs(3)))
        .ping_interval(Some(std::time::Duration::from_secs(1)))
}

/// Runs one session on `data`; panics when an invariant breaks.
pub fn run(data: &[u8]) {
    let mut input = Input(data);
    let setup = input.byte();
    let mut env = Env::new(Arc::new(config(setup)), 0, u64::from(setup));
    let mut host = Checked::default();
    let client = setup & 8 != 0;
    let mut session = if client {
        Session::client(&mut env, &mut host, ClientOffer::new("h", "/"), [setup; 16])
    } else {
        Session::server(&env)
    };
    let role = if client { Role::Client } else { Role::Server };
    let mut written = Written::new(role);
    let mut reserved = 0;
    if setup & 16 != 0 && !client {
        feed(&mut session, &mut env, &mut host, REQUEST);
    }
    while !input.0.is_empty() {
        step(&mut input, &mut session, &mut env, &mut host, &mut written, &mut reserved);
        let bound = CAP + OWN_FRAMES + reserved;
        assert!(host.buffered <= bound, "holds {} > {bound}", host.buffered);
        assert!(session.carry.len() <= 1024, "carry of {}", session.carry.len());
    }
}

fn feed(session: &mut Session, env: &mut Env, host: &mut Checked, bytes: &[u8]) {
    let mut data = session.take_carry().into_vec();
    data.extend_from_slice(bytes);
    session.receive(env, host, &mut data);
}

fn step(
    input: &mut Input<'_>,
    session: &mut Session,
    env: &mut Env,
    host: &mut Checked,
    written: &mut Written,
    reserved: &mut usize,
) {
    match input.byte() % 8 {
        0 | 1 => {
            let n = usize::from(input.byte());
            let bytes = input.bytes(n).to_vec();
            feed(session, env, host, &bytes);
        }
        2 => {
            env.now = env.now.saturating_add(u32::from(input.byte() % 40));
            if !session.on_deadline(env, host) {
                session.end(host, DisconnectReason::Abnormal);
            }
        }
        3 if session.phase().takes_data() => {
            // A `Handle` reserves before it queues.
            let frame = wire::frame(OpCode::Binary, &vec![7; usize::from(input.byte()) * 4]);
            let cost = super::cost(frame.len());
            *reserved += cost;
            host.charge(cost);
            session.queue_reserved(env, host, frame);
        }
        4 => {
            let code = CloseCode(1000 + u16::from(input.byte() % 16));
            let code = if code.is_valid_on_wire() { code } else { CloseCode::NORMAL };
            session.close(env, host, code, "bye", DisconnectReason::ClosedByServer { code });
        }
        5 => session.barrier_passed(env, host),
        6 => {
            let n = usize::from(input.byte()) * 16;
            written.take(session, env, host, n);
        }
        _ => match input.byte() % 3 {
            0 => {
                if !session.shutdown(env, host) {
                    session.end(host, DisconnectReason::Shutdown);
                }
            }
            1 => session.close_slow_consumer(env, host),
            _ => session.send(env, host, OpCode::Text, b"hi"),
        },
    }
}

/// What the session wrote, checked as its peer would read it.
struct Written {
    head_done: bool,
    bytes: Vec<u8>,
    decoder: Decoder,
}

impl Written {
    fn new(role: Role) -> Written {
        // The peer reads with the other role, and accepts compressed frames.
        let peer = if role == Role::Server { Role::Client } else { Role::Server };
        let limits = DecoderLimits { max_message_size: 1 << 20, max_frame_size: 1 << 20 };
        let mut decoder = Decoder::new(peer, limits);
        decoder.set_compression(true);
        // A client's request head and a server's HTTP answer are checked by the parsers'
        // own tests; the frames after them are checked here.
        Written { head_done: false, bytes: Vec::new(), decoder }
    }

    /// Takes up to `n` bytes from the session's queue, as a socket would.
    fn take(&mut self, session: &mut Session, env: &mut Env, host: &mut Checked, n: usize) {
        let mut slices = [std::io::IoSlice::new(&[]); 8];
        let count = session.slices(&mut slices);
        let mut taken = 0;
        for slice in &slices[..count] {
            let part = &slice[..slice.len().min(n - taken)];
            self.bytes.extend_from_slice(part);
            taken += part.len();
            if taken == n {
                break;
            }
        }
        session.written(host, taken);
        if !session.has_output() {
            let after = session.flushed(env, host);
            if after != super::AfterFlush::Idle {
                session.linger(host);
            }
        }
        self.check();
    }

    fn check(&mut self) {
        if !self.head_done {
            let Some(end) = self.bytes.windows(4).position(|w| w == b"\r\n\r\n") else { return };
            self.bytes.drain(..end + 4);
            self.head_done = true;
        }
        loop {
            let (used, item) = match self.decoder.decode(&mut self.bytes) {
                Ok(decoded) => decoded,
                Err(e) => panic!("the session wrote an invalid frame: {e:?}"),
            };
            if let Some(Incoming::Close(Some(close))) = &item {
                assert!(close.code.is_valid_on_wire(), "sent close code {}", close.code.0);
            }
            if used == 0 {
                return;
            }
            self.bytes.drain(..used);
        }
    }
}

#[cfg(test)]
mod tests {
    /// The seed inputs of `fuzz/corpus/session`, and a few made here.
    #[test]
    fn seed_inputs_hold_every_invariant() {
        let mut inputs: Vec<Vec<u8>> = vec![
            vec![16, 6, 200, 2, 30, 6, 200],
            vec![17, 0, 6, 0x81, 0x84, 1, 2, 3, 4, 6, 200],
            vec![24, 6, 255, 2, 39, 2, 39],
            vec![20, 3, 200, 3, 200, 3, 200, 4, 3, 6, 255, 2, 39, 2, 39],
        ];
        // A ping flood that never reads.
        let mut flood = vec![16, 6, 255];
        for _ in 0..2000 {
            flood.extend_from_slice(&[0, 6, 0x89, 0x80, 1, 2, 3, 4]);
        }
        inputs.push(flood);
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/session");
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for entry in entries.flatten() {
                inputs.push(std::fs::read(entry.path()).expect("seed"));
            }
        }
        for input in &inputs {
            super::run(input);
        }
    }
}
