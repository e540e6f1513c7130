//! The reactor's side of client connections (`crate::client`): open a slot for a
//! `Handle::connect`, connect its socket (after the resolver's answer for a host name),
//! and when its socket ends either park the slot and schedule the next attempt
//! (`Reconnecting`) or end it for good (`Disconnect`).
//!
//! A client's slot stays in the slab for the connection's whole life, so its `ConnId`
//! survives reconnects. While it waits, the slot holds the last socket (shut down and
//! deregistered, or an unconnected placeholder before the first attempt) and a parked
//! session that reads nothing and takes no data.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;
use mio::Interest;
use mio::Token;
use mio::net::TcpStream;

use super::Reactor;
use crate::client::{self, Backoff, Client, ConnectError, Dial, Next, Offline, Stage};
use crate::conn::{Conn, Transport};
use crate::event::{ConnId, DisconnectReason, Event};
use crate::liveness::{self, Liveness};
use crate::session::{ClientOffer, Session, ticks_of};
use crate::tls::{TlsScratch, TlsState};

/// The plaintext of a full TLS record (what a client's records hold at most).
const MAX_RECORD_PLAIN: usize = 16 * 1024;

impl Reactor {
    /// Opens a slot for a `Handle::connect`, answers with its id, starts the first
    /// attempt.
    pub(super) fn dial(&mut self, dial: Dial, reply: Sender<Result<ConnId, ConnectError>>) {
        if self.shutdown_deadline.is_some() {
            let _ = reply.send(Err(ConnectError::ServerStopped));
            return;
        }
        let slot = self.conns.vacant_key();
        let shared = &self.shared;
        let full = shared.sockets.fetch_add(1, Ordering::AcqRel) >= self.env.config.max_connections
            || slot >= self.remote().live.capacity();
        let stream = if full { None } else { placeholder().ok() };
        let Some(stream) = stream else {
            shared.sockets.fetch_sub(1, Ordering::AcqRel);
            let _ = reply.send(Err(ConnectError::TooManyConnections));
            return;
        };
        let generation = self.next_generation;
        self.next_generation = liveness::next_generation(generation);
        let parked = Session::parked(&self.env);
        self.conns.insert(Conn::new(stream, parked, generation));
        self.transports.set(slot, Transport::Plain);
        let id = ConnId::new(self.index, generation, slot);
        self.remote().live.set(id, Liveness::Handshake);
        let offline = Arc::new(Offline::new(dial.options.offline_queue_bytes));
        self.shared.offline.insert(id, offline.clone());
        let client = Client {
            id,
            backoff: dial.options.reconnect.clone().map(Backoff::new),
            topics: dial.options.topics.clone(),
            target: dial.target,
            options: dial.options,
            tls: dial.tls,
            offline,
            stage: Stage::Resolving,
            ended: None,
            stopped: false,
            epoch: 0,
        };
        self.clients.insert(slot, client);
        log::debug!(
            "client {id:?}: dialling {}",
            self.clients.get(slot).map_or("", |c| &c.target.authority)
        );
        let _ = reply.send(Ok(id));
        self.start_attempt(slot);
    }

    /// Resolves the host (on the resolver thread) or connects to its address.
    fn start_attempt(&mut self, slot: usize) {
        let Some(client) = self.clients.get_mut(slot) else { return };
        let (host, port, id) = (&client.target.host, client.target.port, client.id);
        match host.parse::<IpAddr>() {
            Ok(ip) => self.connect_to(slot, SocketAddr::new(ip, port)),
            Err(_) => {
                client.stage = Stage::Resolving;
                let host = host.clone();
                self.shared.resolver.resolve(&self.shared, id, &host, port);
            }
        }
    }

    /// The resolver's answer for `id`.
    pub(super) fn resolved(&mut self, id: ConnId, result: Result<SocketAddr, io::ErrorKind>) {
        let Some(client) = self.clients.of(id) else { return };
        if client.stage != Stage::Resolving {
            return;
        }
        match result {
            Ok(addr) => self.connect_to(id.slot(), addr),
            Err(kind) => self.client_down(id.slot(), DisconnectReason::Io(kind)),
        }
    }

    /// Starts a non-blocking connect and queues the upgrade request behind it (the
    /// socket takes it once connected; a refused connect shows as an error on it).
    fn connect_to(&mut self, slot: usize, addr: SocketAddr) {
        let Some(client) = self.clients.get_mut(slot) else { return };
        client.stage = Stage::Connecting;
        let id = client.id;
        let options = client.options.clone();
        let mut offer = ClientOffer::new(&client.target.authority, &client.target.resource);
        offer.protocols = options.protocols.clone();
        offer.headers = options.headers.clone();
        offer.compression = options.compression;
        let mut stream = match TcpStream::connect(addr) {
            Ok(stream) => stream,
            Err(e) => return self.client_down(slot, DisconnectReason::Io(e.kind())),
        };
        let _ = stream.set_nodelay(true);
        let interest = Interest::READABLE | Interest::WRITABLE;
        if let Err(e) = self.poll.registry().register(&mut stream, Token(slot), interest) {
            return self.client_down(slot, DisconnectReason::Io(e.kind()));
        }
        // A fresh TLS session at every attempt: rustls's client keeps nothing across.
        if client.tls.is_some() && self.tls_scratch.is_empty() {
            self.tls_scratch = TlsScratch::new(super::READ_CHUNK, MAX_RECORD_PLAIN);
        }
        let Some(client) = self.clients.get_mut(slot) else { return };
        let transport = match &client.tls {
            None => Transport::Plain,
            Some(tls) => match TlsState::client(tls.config.clone(), tls.name.clone()) {
                Ok(state) => Transport::Tls(Box::new(state)),
                Err(_) => {
                    return self
                        .client_down(slot, DisconnectReason::Io(io::ErrorKind::InvalidData));
                }
            },
        };
        self.read_paused.remove(slot);
        let Some(conn) = self.conns.get_mut(slot) else { return };
        conn.stream = stream;
        self.transports.set(slot, transport);
        // The client speaks first: its hello goes out (or waits for the connect to
        // finish) before any read could move the handshake on.
        if let Some(Transport::Tls(tls)) = self.transports.get_mut(slot)
            && let Err(e) = tls.start(&conn.stream)
        {
            return self.client_down(slot, DisconnectReason::Io(e.kind()));
        }
        self.remote().live.set(id, Liveness::Handshake);
        let timeout = ticks_of(Some(options.connect_timeout));
        self.with_session(slot, |session, env, host| {
            let mut random = [0u8; 16];
            for chunk in random.chunks_mut(4) {
                chunk.copy_from_slice(&env.mask_key());
            }
            *session = Session::client(env, host, offer, random);
            session.set_handshake_ticks(env, timeout);
        });
    }

    /// The connection opened (its 101 checked): writes what was held while it was down.
    pub(super) fn clients_opened(&mut self) {
        for slot in std::mem::take(&mut self.clients.opened) {
            let Some(client) = self.clients.get_mut(slot) else { continue };
            let held = client.offline.open();
            self.with_session(slot, |session, env, host| {
                for frame in held {
                    session.queue_held(env, host, frame);
                }
            });
        }
    }

    /// A client's socket ended (EOF, error, deadline, or its close completed).
    pub(super) fn client_socket_ended(&mut self, slot: usize, reason: DisconnectReason) {
        match self.clients.get(slot).map(|c| c.stage) {
            Some(Stage::Connecting | Stage::Open) => {}
            // Parked already: a late read of the old socket.
            _ => return,
        }
        self.with_session(slot, |session, _, host| session.end(host, reason.clone()));
        let Some(conn) = self.conns.get_mut(slot) else { return };
        let said = conn.session.reason().cloned();
        let _ = self.poll.registry().deregister(&mut conn.stream);
        let _ = conn.stream.shutdown(std::net::Shutdown::Both);
        conn.session = Session::parked(&self.env);
        let Some(client) = self.clients.get_mut(slot) else { return };
        let why = client.ended.take().or(said).unwrap_or(reason);
        self.client_down(slot, why);
    }

    /// A connection or an attempt ended for `why`: schedule the next attempt, or end it.
    fn client_down(&mut self, slot: usize, why: DisconnectReason) {
        let now = self.clients.clock();
        let random = u64::from_le_bytes(
            [self.env.mask_key(), self.env.mask_key()].concat().try_into().unwrap_or([0; 8]),
        );
        let Some(client) = self.clients.get_mut(slot) else { return };
        let retries = client.retries_after(&why);
        let next = match (&mut client.backoff, retries) {
            (Some(backoff), true) => backoff.ended(now, random),
            _ => Next::GiveUp,
        };
        let Next::Retry { attempt, wait } = next else {
            return self.finish_client(slot, why);
        };
        let id = client.id;
        let worker = self.conns.get(slot).map_or(0, |c| self.dispatcher.worker_of(c.generation));
        client.offline.down();
        log::debug!("client {id:?}: {why:?}; attempt {attempt} in {wait:?}");
        self.remote().live.set(id, Liveness::Handshake);
        self.clients.retry_at(slot, Instant::now() + wait);
        let retry_in = client::rounded(wait);
        self.dispatcher.emit(worker, Event::Reconnecting { id, attempt, retry_in, reason: why });
    }

    /// The end of a client connection: its `Disconnect`, and the slot freed.
    fn finish_client(&mut self, slot: usize, why: DisconnectReason) {
        let Some(client) = self.clients.remove(slot) else { return };
        let id = client.id;
        self.shared.offline.remove(id);
        let mut conn = self.conns.remove(slot);
        self.forget_slot(slot);
        let _ = self.poll.registry().deregister(&mut conn.stream);
        self.shared.sockets.fetch_sub(1, Ordering::AcqRel);
        self.remote().live.set(id, Liveness::Gone);
        log::debug!("client {id:?}: ended, {why:?}");
        let worker = self.dispatcher.worker_of(conn.generation);
        self.dispatcher.emit(worker, Event::Disconnect { id, reason: why });
    }

    /// Starts the attempts whose wait is over.
    pub(super) fn retry_clients(&mut self) {
        if self.clients.next_due().is_none_or(|at| at > Instant::now()) {
            return;
        }
        for slot in self.clients.due(Instant::now()) {
            self.start_attempt(slot);
        }
    }

    /// `Handle::close` on a client connection: no more attempts. True when that ended
    /// it here (it was not open); an open one closes with the usual handshake.
    pub(super) fn close_client(&mut self, id: ConnId, code: crate::CloseCode) -> bool {
        let Some(client) = self.clients.of(id) else { return false };
        client.stopped = true;
        let why = DisconnectReason::ClosedByServer { code };
        match client.stage {
            Stage::Open => false,
            Stage::Connecting => {
                self.close_now(id.slot(), why);
                true
            }
            Stage::Resolving | Stage::Waiting => {
                self.finish_client(id.slot(), why);
                true
            }
        }
    }

    /// Shutdown: no more attempts; those waiting end now, the others as their sockets
    /// close.
    pub(super) fn stop_clients(&mut self) {
        for slot in self.clients.slots() {
            let Some(client) = self.clients.get_mut(slot) else { continue };
            client.stopped = true;
            if matches!(client.stage, Stage::Resolving | Stage::Waiting) {
                self.finish_client(slot, DisconnectReason::Shutdown);
            }
        }
    }

    /// A frame a `Handle` reserved while the client was open, arriving after it
    /// dropped: held for the next open rather than lost.
    pub(super) fn hold_for_client(&mut self, id: ConnId, frame: bytes::Bytes) {
        if let Some(client) = self.clients.of(id)
            && client.stage != Stage::Open
        {
            let _ = client.offline.hold(frame);
        }
    }

    /// When the next attempt is due, for the poll timeout.
    pub(super) fn next_client_wake(&self) -> Option<Duration> {
        self.clients.next_due().map(|at| at.saturating_duration_since(Instant::now()))
    }
}

/// An unconnected socket to hold a client's slot until its first connect.
fn placeholder() -> io::Result<TcpStream> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    socket.set_nonblocking(true)?;
    Ok(TcpStream::from_std(socket.into()))
}
