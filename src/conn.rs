//! One connection's state, owned by its reactor: small, and buffer-free when idle.
//!
//! An idle open connection holds its socket, a few integers, an empty decoder and empty
//! queues: no read buffer (reads go into the reactor's scratch buffer), no write buffer
//! (writes go to the socket at the end of the turn; only what the kernel refuses stays).

use std::collections::VecDeque;
use std::io::{self, IoSlice, Read, Write};

use bytes::{Buf, Bytes};
use mio::net::TcpStream;

use crate::compress::OwnCodecs;
use crate::event::DisconnectReason;
use crate::protocol::deflate::Agreed;
use crate::protocol::message::Decoder;

/// Where a connection is in its life (RFC 6455 §4, §7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Reading the HTTP request head.
    Handshake,
    /// Messages flow both ways.
    Open,
    /// We sent a close frame and wait for the peer's (§7.1.2); data is discarded.
    Closing,
    /// The peer closed, or broke the protocol: nothing more is read, and our close frame
    /// waits until the handler has answered every earlier message (a barrier travels
    /// through the connection's worker), so replies are not overtaken by the close.
    Finishing,
    /// Nothing more is read; once the queue is written we shut down our side of TCP
    /// (§7.1.1: the server closes first).
    Flushing,
    /// Our side is shut down; what the peer still sends is discarded until its EOF, so
    /// closing the socket never resets a close frame the peer has not read yet.
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

    /// Whether incoming bytes are parsed (as a request head or as frames).
    pub(crate) fn parses_input(self) -> bool {
        matches!(self, Phase::Handshake | Phase::Open | Phase::Closing)
    }

    /// Whether incoming bytes are still parsed as frames.
    pub(crate) fn reads_frames(self) -> bool {
        matches!(self, Phase::Open | Phase::Closing)
    }
}

pub(crate) struct Conn {
    pub(crate) stream: TcpStream,
    pub(crate) generation: u32,
    pub(crate) worker: u16,
    pub(crate) phase: Phase,
    /// `Connect` was delivered, so exactly one `Disconnect` is owed.
    pub(crate) connected: bool,
    /// Not read while its worker's channel is full.
    pub(crate) read_paused: bool,
    /// In the reactor's list of connections to flush this turn.
    pub(crate) dirty: bool,
    /// The socket refused part of the queue; a `Drain` is owed when it empties.
    pub(crate) backlogged: bool,
    /// Unparsed bytes: a partial request head, or a partial frame header / control frame.
    pub(crate) carry: Vec<u8>,
    pub(crate) out: VecDeque<Bytes>,
    pub(crate) decoder: Decoder,
    /// The tick at which the current phase times out; 0 when it does not.
    pub(crate) deadline: u32,
    /// The tick of this connection's live timer-wheel entry; 0 when none.
    pub(crate) timer_tick: u32,
    /// The tick of the last bytes from the peer (heartbeats).
    pub(crate) last_seen: u32,
    /// The tick of the last data message from the peer (idle timeout).
    pub(crate) last_message: u32,
    /// The tick a ping went out with no answer yet; 0 when none.
    pub(crate) ping_sent: u32,
    /// permessage-deflate parameters, when negotiated.
    pub(crate) deflate: Option<Agreed>,
    /// Codecs for the directions that keep their context (the dedicated mode).
    pub(crate) codecs: Option<Box<OwnCodecs>>,
    /// The first cause of the end, once known.
    pub(crate) reason: Option<Box<DisconnectReason>>,
}

/// Whether the socket is drained (`WouldBlock`) or more may be waiting.
pub(crate) enum Flushed {
    All,
    Partly,
}

impl Conn {
    pub(crate) fn new(stream: TcpStream, generation: u32, worker: u16, decoder: Decoder) -> Conn {
        Conn {
            stream,
            generation,
            worker,
            phase: Phase::Handshake,
            connected: false,
            read_paused: false,
            dirty: false,
            backlogged: false,
            carry: Vec::new(),
            out: VecDeque::new(),
            decoder,
            deadline: 0,
            timer_tick: 0,
            last_seen: 0,
            last_message: 0,
            ping_sent: 0,
            deflate: None,
            codecs: None,
            reason: None,
        }
    }

    /// Records why the connection ends, unless a cause is already known.
    pub(crate) fn set_reason(&mut self, reason: DisconnectReason) {
        if self.reason.is_none() {
            self.reason = Some(Box::new(reason));
        }
    }

    /// Reads once, retrying `Interrupted`.
    pub(crate) fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match self.stream.read(buf) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => return other,
            }
        }
    }

    /// Writes the queue with as few `writev` calls as the kernel allows; returns how it
    /// ended and how many bytes the socket took.
    pub(crate) fn flush(&mut self) -> (io::Result<Flushed>, usize) {
        const MAX_SLICES: usize = 64;
        let mut total = 0;
        while !self.out.is_empty() {
            let written = {
                let mut slices = [IoSlice::new(&[]); MAX_SLICES];
                let n = self.out.len().min(MAX_SLICES);
                for (slice, chunk) in slices.iter_mut().zip(self.out.iter()) {
                    *slice = IoSlice::new(chunk);
                }
                match self.stream.write_vectored(&slices[..n]) {
                    Ok(0) => return (Err(io::ErrorKind::WriteZero.into()), total),
                    Ok(w) => w,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        return (Ok(Flushed::Partly), total);
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return (Err(e), total),
                }
            };
            total += written;
            self.consume(written);
        }
        (Ok(Flushed::All), total)
    }

    fn consume(&mut self, mut written: usize) {
        while written > 0 {
            let Some(front) = self.out.front_mut() else {
                return;
            };
            if front.len() <= written {
                written -= front.len();
                self.out.pop_front();
            } else {
                front.advance(written);
                written = 0;
            }
        }
    }
}
