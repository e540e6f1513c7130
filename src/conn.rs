//! The slab entry: a socket, its session, and the reactor's bookkeeping for it. Small,
//! and buffer-free when idle.
//!
//! An idle open connection holds its socket, a few integers, an empty decoder and no
//! queue: no read buffer (reads go into the reactor's scratch buffer), no write buffer
//! (writes go to the socket at the end of the turn, small frames gathered into the
//! reactor's cork buffer; only what the kernel refuses stays).
//!
//! The [`Transport`] is the one seam between the socket and the session: plain bytes, or
//! TLS (src/tls/), whose records are read and written through the reactor's shared
//! buffers. Both roles of TLS plug in there. Transports live beside the slab
//! ([`Transports`]), not in its entries: a plain connection (every one of a server
//! without TLS) pays nothing for the seam.

use std::io::{self, IoSlice, Read, Write};

use mio::net::TcpStream;

use crate::session::{Host, Session};
use crate::tls::{Received, TlsScratch, TlsState};

pub(crate) struct Conn {
    pub(crate) stream: TcpStream,
    pub(crate) session: Session,
    /// The full generation of this slot's connection: what a `ConnId` must carry to
    /// reach it. It also picks the connection's worker (`Dispatcher::worker_of`).
    pub(crate) generation: u64,
    /// The tick of this connection's live timer-wheel entry; 0 when none.
    pub(crate) timer_tick: u32,
}

/// What carries the session's bytes over the socket.
pub(crate) enum Transport {
    /// The bytes themselves (`ws://`).
    Plain,
    /// TLS records (`wss://`); boxed, so a plain connection pays one pointer.
    Tls(Box<TlsState>),
}

impl Transport {
    /// Whether bytes below the session (TLS records) wait for the socket.
    pub(crate) fn has_pending(&self) -> bool {
        match self {
            Transport::Plain => false,
            Transport::Tls(tls) => tls.has_pending(),
        }
    }

    /// Ends the stream cleanly once everything else is written: `close_notify` for TLS.
    pub(crate) fn end_output(&mut self, stream: &TcpStream, scratch: &mut TlsScratch) {
        if let Transport::Tls(tls) = self {
            tls.close_notify(stream, scratch);
        }
    }
}

/// Each slot's [`Transport`], by slot. Slots past the end are plain, so a server with no
/// TLS connection keeps nothing here; with TLS it holds a pointer per slot up to the
/// highest TLS slot (bounded by the slab's, like the slab it never shrinks).
#[derive(Default)]
pub(crate) struct Transports {
    by_slot: Vec<Transport>,
}

impl Transports {
    /// Gives `slot` its transport. Every slot that opens or reopens sets one, and
    /// [`Transports::clear`] ends it, so a reused slot never finds an old TLS state.
    pub(crate) fn set(&mut self, slot: usize, transport: Transport) {
        if slot >= self.by_slot.len() {
            if matches!(transport, Transport::Plain) {
                return;
            }
            self.by_slot.resize_with(slot + 1, || Transport::Plain);
        }
        self.by_slot[slot] = transport;
    }

    /// Drops `slot`'s transport (its TLS state, if any).
    pub(crate) fn clear(&mut self, slot: usize) {
        self.set(slot, Transport::Plain);
    }

    /// `slot`'s transport when it is not plain.
    pub(crate) fn get_mut(&mut self, slot: usize) -> Option<&mut Transport> {
        self.by_slot.get_mut(slot).filter(|t| !matches!(t, Transport::Plain))
    }

    /// Whether bytes below `slot`'s session (TLS records) wait for its socket.
    pub(crate) fn has_pending(&self, slot: usize) -> bool {
        self.by_slot.get(slot).is_some_and(Transport::has_pending)
    }
}

/// How a flush ended.
pub(crate) enum Flushed {
    /// The socket took everything.
    All,
    /// The socket refused the rest (`WouldBlock`).
    Partly,
}

impl Conn {
    pub(crate) fn new(stream: TcpStream, session: Session, generation: u64) -> Conn {
        Conn { stream, session, generation, timer_tick: 0 }
    }

    /// Reads once into `plain` (after TLS, the plaintext of the complete records) over
    /// this connection's `transport` (`None`: plain).
    ///
    /// # Errors
    /// The socket's, or `InvalidData` when the peer broke TLS (its alert was sent).
    pub(crate) fn receive(
        &mut self,
        transport: Option<&mut Transport>,
        plain: &mut [u8],
        scratch: &mut TlsScratch,
    ) -> io::Result<Received> {
        match transport {
            Some(Transport::Tls(tls)) => tls.receive(&self.stream, scratch, plain),
            Some(Transport::Plain) | None => {
                let n = self.read(plain)?;
                Ok(Received { wire: n, plain: n, full: n == plain.len(), peer_closed: false })
            }
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
}

/// Writes the session's queue over `transport`, after the frames `cork` may hold (see
/// [`write_queue`]); `cork` is left empty.
pub(crate) fn write_out(
    stream: &TcpStream,
    transport: &mut Transport,
    session: &mut Session,
    host: &mut impl Host,
    cork: &mut Vec<u8>,
    scratch: &mut TlsScratch,
) -> io::Result<Flushed> {
    match transport {
        Transport::Plain => write_queue(stream, session, host, cork),
        Transport::Tls(tls) => {
            let written = tls.write_queue(stream, session, host, cork, scratch);
            cork.clear();
            written
        }
    }
}

/// Writes the session's queue in as few calls as the kernel allows, releasing what the
/// socket took: runs of small frames as one contiguous `write` from `cork` (the
/// reactor's buffer), large frames by `writev` with no copy.
///
/// `cork` may arrive holding frames to write ahead of the queue, unqueued and uncharged
/// (an inline handler's replies, src/outbox.rs): they leave in the same write as the
/// queue's first frames, and only what the socket refuses of them is queued. `cork` is
/// left empty.
pub(crate) fn write_queue(
    stream: &TcpStream,
    session: &mut Session,
    host: &mut impl Host,
    cork: &mut Vec<u8>,
) -> io::Result<Flushed> {
    let mut ahead = cork.len();
    let flushed = loop {
        if ahead == 0 && !session.has_output() {
            break Ok(Flushed::All);
        }
        session.gather(cork);
        let result = if cork.is_empty() {
            write_slices(stream, session)
        } else {
            write_retrying(stream, |mut s| s.write(cork))
        };
        let (written, refused) = match result {
            Ok(0) => break Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => (n, false),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => (0, true),
            Err(e) => break Err(e),
        };
        let from_ahead = written.min(ahead);
        if from_ahead > 0 {
            host.sent(from_ahead);
        }
        if written > from_ahead {
            session.written(host, written - from_ahead);
        }
        if ahead > from_ahead {
            session.keep_unsent(host, &cork[from_ahead..ahead]);
        }
        ahead = 0;
        cork.clear();
        if refused {
            break Ok(Flushed::Partly);
        }
    };
    cork.clear();
    flushed
}

/// One `writev` of the queue's frames, oldest first; a plain `write` for a lone frame
/// (the kernel then has no vector to import).
fn write_slices(stream: &TcpStream, session: &Session) -> io::Result<usize> {
    const MAX_SLICES: usize = 64;
    let mut slices = [IoSlice::new(&[]); MAX_SLICES];
    match session.slices(&mut slices) {
        1 => write_retrying(stream, |mut s| s.write(&slices[0])),
        n => write_retrying(stream, |mut s| s.write_vectored(&slices[..n])),
    }
}

/// Runs `write` until it is not interrupted by a signal.
fn write_retrying(
    stream: &TcpStream,
    mut write: impl FnMut(&TcpStream) -> io::Result<usize>,
) -> io::Result<usize> {
    loop {
        match write(stream) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    /// What an idle connection costs in its slab entry (its socket, decoder state and
    /// liveness cell come on top): keep it from creeping up.
    #[test]
    fn a_slab_entry_stays_small() {
        // mio's socket is 4 bytes in release builds, more with debug assertions.
        let socket = std::mem::size_of::<mio::net::TcpStream>();
        let size = std::mem::size_of::<super::Conn>();
        // 108 besides the socket, 112 in all (the slab's entry: a vacant slot fits in
        // the connection's niche). The transport (plain or TLS) is kept beside the slab
        // (`Transports`), so are the flags the reactor keeps per connection
        // (reactor/slot_set.rs), and its worker follows from its generation.
        let bound = (108 + socket).next_multiple_of(8);
        assert!(size <= bound, "Conn is {size} bytes, {socket} of them its socket");
        // A TLS connection's state is one allocation apart, its pointer in `Transports`.
        assert_eq!(std::mem::size_of::<super::Transport>(), 8);
    }

    #[test]
    fn a_freed_slot_keeps_no_tls_state_and_plain_slots_cost_nothing() {
        use super::{Transport, Transports};
        let made = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let (chain, key) = (made.cert.pem(), made.signing_key.serialize_pem());
        let tls = crate::TlsConfig::from_pem(chain.as_bytes(), key.as_bytes()).unwrap();
        let state = crate::tls::TlsState::server(tls.server).unwrap();

        let mut transports = Transports::default();
        transports.set(40, Transport::Plain);
        assert!(transports.by_slot.is_empty(), "plain slots keep nothing");
        assert!(transports.get_mut(40).is_none());

        transports.set(3, Transport::Tls(Box::new(state)));
        assert!(matches!(transports.get_mut(3), Some(Transport::Tls(_))));
        assert!(transports.get_mut(2).is_none() && transports.get_mut(4).is_none());
        // The slot is freed, then reused by a plain connection.
        transports.clear(3);
        assert!(transports.get_mut(3).is_none());
        assert!(!transports.has_pending(3));
    }
}
