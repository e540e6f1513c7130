//! The slab entry: a socket, its session, and the reactor's bookkeeping for it. Small,
//! and buffer-free when idle.
//!
//! An idle open connection holds its socket, a few integers, an empty decoder and no
//! queue: no read buffer (reads go into the reactor's scratch buffer), no write buffer
//! (writes go to the socket at the end of the turn, small frames gathered into the
//! reactor's cork buffer; only what the kernel refuses stays).

use std::io::{self, IoSlice, Read, Write};

use mio::net::TcpStream;

use crate::session::{Host, Session};

pub(crate) struct Conn {
    pub(crate) stream: TcpStream,
    pub(crate) session: Session,
    /// The full generation of this slot's connection: what a `ConnId` must carry to
    /// reach it.
    pub(crate) generation: u64,
    pub(crate) worker: u16,
    /// Not read while its worker's queue is over budget.
    pub(crate) read_paused: bool,
    /// In the reactor's list of connections to flush this turn.
    pub(crate) dirty: bool,
    /// The tick of this connection's live timer-wheel entry; 0 when none.
    pub(crate) timer_tick: u32,
}

/// How a flush ended.
pub(crate) enum Flushed {
    /// The socket took everything.
    All,
    /// The socket refused the rest (`WouldBlock`).
    Partly,
}

impl Conn {
    pub(crate) fn new(stream: TcpStream, session: Session, generation: u64, worker: u16) -> Conn {
        Conn {
            stream,
            session,
            generation,
            worker,
            read_paused: false,
            dirty: false,
            timer_tick: 0,
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

/// Writes the session's queue in as few calls as the kernel allows, releasing what the
/// socket took: runs of small frames as one contiguous `write` from `cork` (the
/// reactor's buffer), large frames by `writev` with no copy.
pub(crate) fn write_queue(
    stream: &TcpStream,
    session: &mut Session,
    host: &mut impl Host,
    cork: &mut Vec<u8>,
) -> io::Result<Flushed> {
    while session.has_output() {
        let result = if session.gather(cork) > 1 {
            write_retrying(stream, |mut s| s.write(cork))
        } else {
            write_slices(stream, session)
        };
        match result {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(written) => session.written(host, written),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(Flushed::Partly),
            Err(e) => return Err(e),
        }
    }
    Ok(Flushed::All)
}

/// One `writev` of the queue's frames, oldest first.
fn write_slices(stream: &TcpStream, session: &Session) -> io::Result<usize> {
    const MAX_SLICES: usize = 64;
    let mut slices = [IoSlice::new(&[]); MAX_SLICES];
    let n = session.slices(&mut slices);
    write_retrying(stream, |mut s| s.write_vectored(&slices[..n]))
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
        let size = std::mem::size_of::<super::Conn>() - socket;
        assert!(size <= 116, "Conn is {size} bytes besides its socket");
    }
}
