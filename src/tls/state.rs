//! One connection's TLS, driven by the reactor through rustls's unbuffered API: rustls
//! keeps its keys and handshake state, and no buffer of its own. Ciphertext is read into
//! the reactor's shared buffer and decrypted from there; the session's queued frames are
//! gathered into another shared buffer and encrypted together, so a turn's output leaves
//! as one record (up to 16 KiB). A connection keeps bytes only while it must: the
//! unfinished record the last read ended in, and ciphertext the socket has refused.

use std::io::{self, IoSlice, Read, Write};
use std::sync::Arc;

use rustls::client::{ClientConnectionData, UnbufferedClientConnection};
use rustls::server::{ServerConnectionData, UnbufferedServerConnection};
use rustls::unbuffered::{ConnectionState, EncodeError, InsufficientSizeError, UnbufferedStatus};

use crate::conn::Flushed;
use crate::session::{Host, Session};

/// Plaintext gathered from a session's queue for one encryption.
const PLAIN_BATCH: usize = 32 << 10;
/// The most a record adds to its plaintext: a header, an AEAD tag, a nonce or content type.
const RECORD_OVERHEAD: usize = 64;
/// Handshake and alert states processed in a row before giving up on a stuck connection.
const MAX_STEPS: usize = 64;

/// The reactor's TLS buffers, shared by all its connections (empty without TLS).
#[derive(Default)]
pub(crate) struct TlsScratch {
    /// Ciphertext: what a read brought, or what an encryption made.
    cipher: Vec<u8>,
    /// Plaintext gathered from a session's queue.
    plain: Vec<u8>,
}

impl TlsScratch {
    /// Whether the buffers are there (a server without TLS has none until it dials a
    /// `wss://` connection).
    pub(crate) fn is_empty(&self) -> bool {
        self.cipher.is_empty()
    }

    /// Buffers for reads of `read_chunk` bytes and records of `fragment` plaintext bytes.
    pub(crate) fn new(read_chunk: usize, fragment: usize) -> TlsScratch {
        let records = PLAIN_BATCH.div_ceil(fragment.max(1));
        let cipher = read_chunk.max(PLAIN_BATCH + records * RECORD_OVERHEAD);
        TlsScratch { cipher: vec![0; cipher], plain: vec![0; PLAIN_BATCH] }
    }
}

/// What one read brought.
pub(crate) struct Received {
    /// Bytes from the socket (0: end of stream).
    pub(crate) wire: usize,
    /// Plaintext put in the caller's buffer.
    pub(crate) plain: usize,
    /// The read filled what it asked for: the socket may have more.
    pub(crate) full: bool,
    /// The peer sent `close_notify`: nothing more will come.
    pub(crate) peer_closed: bool,
}

/// The rustls side of a connection: the server role, or the client role.
enum Endpoint {
    Server(UnbufferedServerConnection),
    Client(UnbufferedClientConnection),
}

/// One connection's TLS state.
pub(crate) struct TlsState {
    endpoint: Endpoint,
    /// The start of a record the last read ended in, and records rustls has read but not
    /// yet let go of (a handshake message split over records). Empty when idle.
    partial: Vec<u8>,
    /// Ciphertext for the peer that the socket has not taken yet (from `sent` on).
    pending: Vec<u8>,
    sent: usize,
}

impl TlsState {
    /// The server side of a new connection.
    pub(crate) fn server(config: Arc<rustls::ServerConfig>) -> Result<TlsState, rustls::Error> {
        Ok(TlsState::with(Endpoint::Server(UnbufferedServerConnection::new(config)?)))
    }

    /// The client side of a new connection to `name`.
    pub(crate) fn client(
        config: Arc<rustls::ClientConfig>,
        name: rustls::pki_types::ServerName<'static>,
    ) -> Result<TlsState, rustls::Error> {
        Ok(TlsState::with(Endpoint::Client(UnbufferedClientConnection::new(config, name)?)))
    }

    fn with(endpoint: Endpoint) -> TlsState {
        TlsState { endpoint, partial: Vec::new(), pending: Vec::new(), sent: 0 }
    }

    /// Sends what the handshake needs sent before any read: a client's hello. (A flush
    /// does it too, when the session has its request queued.)
    pub(crate) fn start(&mut self, mut stream: impl Write) -> io::Result<Flushed> {
        let taken = match &mut self.endpoint {
            Endpoint::Server(conn) => take_handshake(conn, &mut self.partial, &mut self.pending),
            Endpoint::Client(conn) => take_handshake(conn, &mut self.partial, &mut self.pending),
        };
        taken.map_err(|_| io::Error::from(io::ErrorKind::InvalidData))?;
        self.write_pending(&mut stream)
    }

    /// Whether ciphertext waits for the socket.
    pub(crate) fn has_pending(&self) -> bool {
        self.sent < self.pending.len()
    }

    // ---- reading ----

    /// Reads once from `stream` and decrypts every complete record into `plain`, writing
    /// any handshake answer at once. `plain` must be as long as a read (`read_chunk` of
    /// [`TlsScratch::new`]): plaintext is never longer than its ciphertext.
    ///
    /// # Errors
    /// The socket's error, or `InvalidData` when the peer broke TLS (its alert is sent).
    pub(crate) fn receive(
        &mut self,
        mut stream: impl Read + Write,
        scratch: &mut TlsScratch,
        plain: &mut [u8],
    ) -> io::Result<Received> {
        let kept = self.partial.len();
        let room = plain.len().min(scratch.cipher.len());
        if kept >= room {
            // Only a handshake message split over many records keeps this much.
            return Err(io::ErrorKind::InvalidData.into());
        }
        scratch.cipher[..kept].copy_from_slice(&self.partial);
        let wire = loop {
            match stream.read(&mut scratch.cipher[kept..room]) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => break other?,
            }
        };
        let mut got = Received { wire, plain: 0, full: kept + wire == room, peer_closed: false };
        if wire == 0 {
            return Ok(got);
        }
        let incoming = &mut scratch.cipher[..kept + wire];
        let outcome = match &mut self.endpoint {
            Endpoint::Server(conn) => decrypt(conn, incoming, plain, &mut self.pending),
            Endpoint::Client(conn) => decrypt(conn, incoming, plain, &mut self.pending),
        };
        let Decrypted { used, plain: n, peer_closed, failed } = outcome;
        if failed.is_some() {
            self.send_alert(&mut stream, &mut incoming[used..]);
            return Err(io::ErrorKind::InvalidData.into());
        }
        self.partial = incoming[used..].to_vec();
        (got.plain, got.peer_closed) = (n, peer_closed);
        if self.has_pending() {
            // The handshake's next flight (or tickets): the peer waits for it.
            self.write_pending(&mut stream)?;
        }
        Ok(got)
    }

    /// After a TLS error: takes rustls's alert and sends it, best effort. `rest` is the
    /// input rustls has not let go of: it may still point into it.
    fn send_alert(&mut self, stream: &mut impl Write, rest: &mut [u8]) {
        self.partial = Vec::new();
        let _ = match &mut self.endpoint {
            Endpoint::Server(conn) => take_alert(conn, rest, &mut self.pending),
            Endpoint::Client(conn) => take_alert(conn, rest, &mut self.pending),
        };
        let _ = self.write_pending(stream);
    }

    // ---- writing ----

    /// Writes the ciphertext waiting, then encrypts and writes `ahead` and the session's
    /// queue, a batch at a time; what the socket refuses stays in `pending` (one batch at
    /// most: nothing more is encrypted until the socket has taken it).
    ///
    /// `ahead` holds frames to send before the queue, unqueued and uncharged (an inline
    /// handler's replies, src/outbox.rs); what of them is not encrypted when the socket
    /// refuses more goes to the front of the queue, charged.
    pub(crate) fn write_queue(
        &mut self,
        mut stream: impl Write,
        session: &mut Session,
        host: &mut impl Host,
        ahead: &[u8],
        scratch: &mut TlsScratch,
    ) -> io::Result<Flushed> {
        let mut ahead = ahead;
        let flushed = self.write_batches(&mut stream, session, host, &mut ahead, scratch)?;
        if !ahead.is_empty() {
            session.keep_unsent(host, ahead);
        }
        Ok(flushed)
    }

    /// [`TlsState::write_queue`]'s loop: `ahead` is left holding what was not encrypted.
    fn write_batches(
        &mut self,
        stream: &mut impl Write,
        session: &mut Session,
        host: &mut impl Host,
        ahead: &mut &[u8],
        scratch: &mut TlsScratch,
    ) -> io::Result<Flushed> {
        loop {
            if let Flushed::Partly = self.write_pending(stream)? {
                return Ok(Flushed::Partly);
            }
            let TlsScratch { plain, cipher } = scratch;
            let (batch, from_ahead) = if !ahead.is_empty() {
                (&ahead[..ahead.len().min(PLAIN_BATCH)], true)
            } else if session.has_output() {
                let taken = gather(session, plain);
                (&plain[..taken], false)
            } else {
                return Ok(Flushed::All);
            };
            let taken = batch.len();
            let Some(made) = self.encrypt(Seal::Data(batch), cipher)? else {
                // A client's handshake is under way (its hello is in `pending`): the
                // queue waits, and is written once the server's answer is read.
                self.write_pending(stream)?;
                return Ok(Flushed::Partly);
            };
            if from_ahead {
                host.sent(taken);
                *ahead = &ahead[taken..];
            } else {
                session.written(host, taken);
            }
            self.send_or_keep(stream, &cipher[..made])?;
        }
    }

    /// Sends `close_notify` (a clean end of the TLS stream), best effort: called when the
    /// socket has taken everything else.
    pub(crate) fn close_notify(&mut self, mut stream: impl Write, scratch: &mut TlsScratch) {
        if let Ok(Some(made)) = self.encrypt(Seal::CloseNotify, &mut scratch.cipher) {
            let _ = self.send_or_keep(&mut stream, &scratch.cipher[..made]);
        }
    }

    /// Encrypts into `out`; handshake messages rustls wants sent first (a client's hello,
    /// tickets, key updates) go to `pending`, ahead of it. `None` while the handshake
    /// has not reached the point where data may be sent.
    fn encrypt(&mut self, what: Seal<'_>, out: &mut [u8]) -> io::Result<Option<usize>> {
        let made = match &mut self.endpoint {
            Endpoint::Server(conn) => seal(conn, &mut self.partial, &mut self.pending, what, out),
            Endpoint::Client(conn) => seal(conn, &mut self.partial, &mut self.pending, what, out),
        };
        made.map_err(|_| io::ErrorKind::InvalidData.into())
    }

    /// Writes `cipher` after what is pending; keeps what the socket refuses.
    fn send_or_keep(&mut self, stream: &mut impl Write, cipher: &[u8]) -> io::Result<()> {
        if self.has_pending() {
            self.pending.extend_from_slice(cipher);
            return Ok(());
        }
        let written = write_some(stream, cipher)?;
        if written < cipher.len() {
            self.pending = cipher[written..].to_vec();
            self.sent = 0;
        }
        Ok(())
    }

    /// Writes what is pending; frees the buffer once the socket took it all.
    fn write_pending(&mut self, stream: &mut impl Write) -> io::Result<Flushed> {
        while self.has_pending() {
            let written = write_some(stream, &self.pending[self.sent..])?;
            if written == 0 {
                return Ok(Flushed::Partly);
            }
            self.sent += written;
        }
        self.pending = Vec::new();
        self.sent = 0;
        Ok(Flushed::All)
    }
}

/// Writes what the socket takes now: 0 on `WouldBlock`.
fn write_some(stream: &mut impl Write, bytes: &[u8]) -> io::Result<usize> {
    loop {
        match stream.write(bytes) {
            Ok(0) if !bytes.is_empty() => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => return Ok(n),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(0),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Copies the front of the session's queue into `plain`, as much as fits; returns how
/// many bytes.
fn gather(session: &Session, plain: &mut [u8]) -> usize {
    const MAX_SLICES: usize = 64;
    let mut slices = [IoSlice::new(&[]); MAX_SLICES];
    let n = session.slices(&mut slices);
    let mut taken = 0;
    for slice in &slices[..n] {
        let len = slice.len().min(plain.len() - taken);
        plain[taken..taken + len].copy_from_slice(&slice[..len]);
        taken += len;
        if taken == plain.len() {
            break;
        }
    }
    taken
}

/// Both rustls roles, for the functions below.
trait Records {
    type Data;
    fn process<'c, 'i>(
        &'c mut self,
        incoming: &'i mut [u8],
    ) -> UnbufferedStatus<'c, 'i, Self::Data>;
}

impl Records for UnbufferedServerConnection {
    type Data = ServerConnectionData;
    fn process<'c, 'i>(
        &'c mut self,
        incoming: &'i mut [u8],
    ) -> UnbufferedStatus<'c, 'i, Self::Data> {
        self.process_tls_records(incoming)
    }
}

impl Records for UnbufferedClientConnection {
    type Data = ClientConnectionData;
    fn process<'c, 'i>(
        &'c mut self,
        incoming: &'i mut [u8],
    ) -> UnbufferedStatus<'c, 'i, Self::Data> {
        self.process_tls_records(incoming)
    }
}

/// What decrypting a read gave.
struct Decrypted {
    /// Bytes of the input rustls is done with; the rest is kept for the next read.
    used: usize,
    /// Plaintext bytes written.
    plain: usize,
    peer_closed: bool,
    /// The stream failed; `used` still says what rustls let go of, so the alert can be
    /// taken out with the rest of the input where rustls expects it.
    failed: Option<Failure>,
}

/// Something the TLS stream failed on.
#[derive(Debug)]
enum Failure {
    /// rustls refused the peer's records (its alert is queued).
    Tls,
    /// More plaintext than room, or a state this connection never asks for.
    Unexpected,
}

impl From<rustls::Error> for Failure {
    fn from(_: rustls::Error) -> Failure {
        Failure::Tls
    }
}

/// Runs the records in `incoming` through `conn`: application data into `plain`,
/// handshake messages to send into `pending`.
fn decrypt<C: Records>(
    conn: &mut C,
    incoming: &mut [u8],
    plain: &mut [u8],
    pending: &mut Vec<u8>,
) -> Decrypted {
    let mut out = Decrypted { used: 0, plain: 0, peer_closed: false, failed: None };
    for _ in 0..incoming.len() + MAX_STEPS {
        let UnbufferedStatus { discard, state } = conn.process(&mut incoming[out.used..]);
        let more = step(state, plain, pending, &mut out);
        out.used += discard;
        match more {
            Ok(true) => continue,
            Ok(false) => return out,
            Err(failure) => {
                out.failed = Some(failure);
                return out;
            }
        }
    }
    out.failed = Some(Failure::Unexpected);
    out
}

/// Handles one state of [`decrypt`]; true when there is more to process.
fn step<Data>(
    state: Result<ConnectionState<'_, '_, Data>, rustls::Error>,
    plain: &mut [u8],
    pending: &mut Vec<u8>,
    out: &mut Decrypted,
) -> Result<bool, Failure> {
    Ok(match state? {
        ConnectionState::ReadTraffic(mut traffic) => {
            while let Some(record) = traffic.next_record() {
                let payload = record?.payload;
                let end = out.plain + payload.len();
                let room = plain.get_mut(out.plain..end).ok_or(Failure::Unexpected)?;
                room.copy_from_slice(payload);
                out.plain = end;
            }
            true
        }
        ConnectionState::EncodeTlsData(mut encode) => {
            encode_into(pending, |buf| encode.encode(buf))?;
            true
        }
        ConnectionState::TransmitTlsData(transmit) => {
            // `pending` holds it; the caller writes it before anything else.
            transmit.done();
            true
        }
        ConnectionState::PeerClosed => {
            out.peer_closed = true;
            true
        }
        // Waiting for more bytes, or all read.
        ConnectionState::BlockedHandshake
        | ConnectionState::WriteTraffic(_)
        | ConnectionState::Closed => false,
        _ => return Err(Failure::Unexpected),
    })
}

/// Takes the alert rustls queued when it failed into `pending`. Called once: a second
/// call would run the failed input through again.
fn take_alert<C: Records>(
    conn: &mut C,
    incoming: &mut [u8],
    pending: &mut Vec<u8>,
) -> Result<(), Failure> {
    if let Ok(ConnectionState::EncodeTlsData(mut encode)) = conn.process(incoming).state {
        encode_into(pending, |buf| encode.encode(buf))?;
    }
    Ok(())
}

/// Takes every handshake message rustls has to send now into `pending`.
fn take_handshake<C: Records>(
    conn: &mut C,
    partial: &mut Vec<u8>,
    pending: &mut Vec<u8>,
) -> Result<(), Failure> {
    for _ in 0..MAX_STEPS {
        let UnbufferedStatus { discard, state } = conn.process(partial);
        match state? {
            ConnectionState::EncodeTlsData(mut encode) => {
                encode_into(pending, |buf| encode.encode(buf))?
            }
            ConnectionState::TransmitTlsData(transmit) => transmit.done(),
            _ => {
                partial.drain(..discard);
                return Ok(());
            }
        }
        partial.drain(..discard);
    }
    Err(Failure::Unexpected)
}

/// Appends one handshake record to `pending`, sized exactly.
fn encode_into(
    pending: &mut Vec<u8>,
    mut encode: impl FnMut(&mut [u8]) -> Result<usize, EncodeError>,
) -> Result<(), Failure> {
    let required = match encode(&mut []) {
        Ok(_) => return Ok(()),
        Err(EncodeError::InsufficientSize(InsufficientSizeError { required_size })) => {
            required_size
        }
        Err(_) => return Err(Failure::Unexpected),
    };
    let start = pending.len();
    pending.resize(start + required, 0);
    let written = encode(&mut pending[start..]).map_err(|_| Failure::Unexpected)?;
    pending.truncate(start + written);
    Ok(())
}

/// What to encrypt.
enum Seal<'a> {
    Data(&'a [u8]),
    CloseNotify,
}

/// Encrypts `what` into `out` once the connection may send application data; returns
/// the ciphertext's length, or `None` while the handshake must go on first.
fn seal<C: Records>(
    conn: &mut C,
    partial: &mut Vec<u8>,
    pending: &mut Vec<u8>,
    what: Seal<'_>,
    out: &mut [u8],
) -> Result<Option<usize>, Failure> {
    for _ in 0..MAX_STEPS {
        // The kept bytes go in again: rustls may still refer to a split handshake message.
        let UnbufferedStatus { discard, state } = conn.process(partial);
        match state? {
            ConnectionState::EncodeTlsData(mut encode) => {
                encode_into(pending, |buf| encode.encode(buf))?
            }
            ConnectionState::TransmitTlsData(transmit) => transmit.done(),
            ConnectionState::WriteTraffic(mut traffic) => {
                let made = match what {
                    Seal::Data(data) => traffic.encrypt(data, out),
                    Seal::CloseNotify => traffic.queue_close_notify(out),
                };
                partial.drain(..discard);
                return made.map(Some).map_err(|_| Failure::Unexpected);
            }
            ConnectionState::BlockedHandshake => {
                partial.drain(..discard);
                return Ok(None);
            }
            _ => return Err(Failure::Unexpected),
        }
        partial.drain(..discard);
    }
    Err(Failure::Unexpected)
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use super::*;

    /// One direction of an in-memory socket.
    #[derive(Default)]
    struct Pipe(VecDeque<u8>);

    /// Reads from one pipe, writes to the other; empty reads would block.
    struct End<'a>(&'a mut Pipe, &'a mut Pipe);

    impl Read for End<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.0.0.is_empty() {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            self.0.0.read(buf)
        }
    }

    impl Write for End<'_> {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.1.0.extend(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn pair() -> (TlsState, TlsState) {
        let made = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let (chain, key) = (made.cert.pem(), made.signing_key.serialize_pem());
        let server = crate::TlsConfig::from_pem(chain.as_bytes(), key.as_bytes()).unwrap();
        let trust = crate::tls::ClientTls::new("localhost", Some(chain.as_bytes())).unwrap();
        let client = TlsState::client(trust.config, trust.name).unwrap();
        (TlsState::server(server.server).unwrap(), client)
    }

    /// Reads what `end` has for `tls`; true when it said `close_notify`.
    fn read(tls: &mut TlsState, end: End<'_>, scratch: &mut TlsScratch) -> bool {
        let mut plain = vec![0; 64 << 10];
        match tls.receive(end, scratch, &mut plain) {
            Ok(got) => got.peer_closed,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => false,
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn both_roles_handshake_and_close_through_the_seam() {
        let (mut server, mut client) = pair();
        let mut scratch = TlsScratch::new(64 << 10, 16 << 10);
        let (mut up, mut down) = (Pipe::default(), Pipe::default());
        client.start(End(&mut down, &mut up)).unwrap();
        assert!(!up.0.is_empty(), "the client's hello went out");
        for _ in 0..4 {
            read(&mut server, End(&mut up, &mut down), &mut scratch);
            read(&mut client, End(&mut down, &mut up), &mut scratch);
        }
        // Both sides may send data now: each one's close_notify reaches the other.
        server.close_notify(End(&mut up, &mut down), &mut scratch);
        assert!(read(&mut client, End(&mut down, &mut up), &mut scratch), "server's end seen");
        client.close_notify(End(&mut down, &mut up), &mut scratch);
        assert!(read(&mut server, End(&mut up, &mut down), &mut scratch), "client's end seen");
        assert!(server.partial.is_empty() && client.partial.is_empty());
        assert!(!server.has_pending() && !client.has_pending());
    }
}
