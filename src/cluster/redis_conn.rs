//! One TCP connection to Redis as the link sees it: connecting, bytes in as RESP values,
//! bytes out, and what each reply answers.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::time::Instant;

use mio::net::TcpStream;

use super::resp::{self, Value};

/// What the next non-push reply answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Expect {
    Hello,
    Publish,
    /// A PUBLISH to a node's channel: 0 receivers means no such node.
    Direct,
    Ping,
}

pub(crate) struct Conn {
    pub(crate) stream: TcpStream,
    pub(crate) established: bool,
    pub(crate) started: Instant,
    read: Vec<u8>,
    /// Bytes not yet taken by the socket.
    pub(crate) out: Vec<u8>,
    pub(crate) expect: VecDeque<Expect>,
    pub(crate) last_read: Instant,
    pub(crate) last_ping: Instant,
    /// Confirmations of the broadcast and node channels still awaited.
    pub(crate) fixed_pending: u8,
    pub(crate) hello_ok: bool,
    pub(crate) ready: bool,
    /// The last read stopped at its budget, not at `WouldBlock`.
    pub(crate) more_to_read: bool,
}

/// Bytes read per turn at most, so one burst from Redis cannot hold the link (and its
/// memory) for long.
const READ_BUDGET: usize = 1 << 20;

impl Conn {
    pub(crate) fn new(stream: TcpStream, now: Instant) -> Conn {
        Conn {
            stream,
            established: false,
            started: now,
            read: Vec::new(),
            out: Vec::new(),
            expect: VecDeque::new(),
            last_read: now,
            last_ping: now,
            fixed_pending: 2,
            hello_ok: false,
            ready: false,
            more_to_read: false,
        }
    }

    /// Whether the connecting socket has connected; an error if it failed.
    pub(crate) fn check_established(&mut self) -> Result<bool, String> {
        if let Ok(Some(e)) | Err(e) = self.stream.take_error() {
            return Err(format!("connect: {e}"));
        }
        match self.stream.peer_addr() {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(false),
            Err(e) => Err(format!("connect: {e}")),
        }
    }

    /// Appends a command to the write buffer, remembering what its reply answers.
    pub(crate) fn command(&mut self, args: &[&[u8]], expect: Option<Expect>) {
        resp::command(&mut self.out, args);
        self.expect.extend(expect);
    }

    /// Reads until `WouldBlock` or `READ_BUDGET` bytes (then `more_to_read` is set: mio
    /// will not say so again) and returns every complete value. A value with a string
    /// over `max_len`, or an incomplete one over twice that, ends the connection.
    pub(crate) fn read_values(
        &mut self,
        now: Instant,
        max_len: usize,
    ) -> Result<Vec<Value>, String> {
        let mut chunk = [0u8; 16 << 10];
        let mut values = Vec::new();
        let mut budget = READ_BUDGET;
        self.more_to_read = false;
        loop {
            if budget == 0 {
                self.more_to_read = true;
                break;
            }
            match self.stream.read(&mut chunk) {
                Ok(0) => return Err("Redis closed the connection".to_owned()),
                Ok(n) => {
                    budget = budget.saturating_sub(n);
                    self.read.extend_from_slice(&chunk[..n]);
                    self.last_read = now;
                    self.parse_into(&mut values, max_len)?;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(format!("read: {e}")),
            }
        }
        Ok(values)
    }

    /// Moves every complete value out of the read buffer.
    fn parse_into(&mut self, values: &mut Vec<Value>, max_len: usize) -> Result<(), String> {
        let mut used = 0;
        while let Some((value, n)) =
            resp::parse(&self.read[used..], max_len).map_err(|e| format!("RESP: {e:?}"))?
        {
            values.push(value);
            used += n;
        }
        self.read.drain(..used);
        if self.read.len() > 2 * max_len {
            return Err("a reply over the size limit".to_owned());
        }
        Ok(())
    }

    /// Writes what the socket takes now.
    pub(crate) fn flush(&mut self) -> io::Result<()> {
        let mut written = 0;
        while written < self.out.len() {
            match self.stream.write(&self.out[written..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        self.out.drain(..written);
        Ok(())
    }
}
