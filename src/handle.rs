//! `Handle`: talk to connections from any thread.
//!
//! Every call checks the id against the owning reactor's [`LiveTable`] (no lock), encodes
//! the frame on the calling thread, and puts a command on that reactor's queue. The
//! reactor is woken through its `mio::Waker` only when it is asleep: while it is running
//! a turn it drains the queue before sleeping again, so a burst of sends costs one wake.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use crossbeam_channel::Sender;

use crate::compress::Outgoing;
use crate::config::Backpressure;
use crate::error::{CloseError, SendError, SendErrorKind};
use crate::event::{ConnId, Message, MessageRef};
use crate::liveness::{Compresses, LiveTable, Liveness, Refused};
use crate::metrics::{Counters, Stats};
use crate::outbox;
use crate::protocol::CloseCode;
use crate::protocol::frame::OpCode;
use crate::pubsub::{SubscribeError, Topics};
use crate::session;
use crate::wire;

/// What a reactor is asked to do by other threads.
pub(crate) enum Command {
    Send {
        id: ConnId,
        frame: Bytes,
    },
    /// To a connection that compresses: the reactor compresses and frames it; `reserved`
    /// bytes were reserved for it.
    SendUnframed {
        id: ConnId,
        opcode: OpCode,
        payload: Bytes,
        reserved: usize,
    },
    /// Fan-out commands carry the `cost` charged to the reactor's fan-out budget.
    SendMany {
        ids: Vec<ConnId>,
        out: Arc<Outgoing>,
        cost: usize,
    },
    Broadcast {
        out: Arc<Outgoing>,
        cost: usize,
    },
    Close {
        id: ConnId,
        code: CloseCode,
        reason: Box<str>,
    },
    /// Over `max_backpressure` under `Backpressure::Close`.
    SlowConsumer {
        id: ConnId,
    },
    /// Fan a frame out to this reactor's members of `topic`.
    Publish {
        topic: Arc<str>,
        out: Arc<Outgoing>,
        except: Option<ConnId>,
        cost: usize,
    },
    /// Every event of `id` sent before its barrier has been handled.
    BarrierPassed {
        id: ConnId,
    },
    Shutdown {
        timeout: Option<Duration>,
    },
    /// Commands a worker made while handling one batch of events, in order.
    Batch(Vec<Command>),
    /// Open a client connection (`Handle::connect`); the id goes back through `reply`.
    Dial {
        dial: Box<crate::client::Dial>,
        reply: Sender<Result<ConnId, crate::client::ConnectError>>,
    },
    /// The resolver thread's answer for a client connection.
    Resolved {
        id: ConnId,
        result: Result<std::net::SocketAddr, std::io::ErrorKind>,
    },
}

impl Command {
    /// The message a send that was never queued carried, for its error.
    fn message(self) -> Message {
        match self {
            Command::Send { frame, .. } => wire::unframe(&frame),
            Command::SendUnframed { opcode, payload, .. } => wire::from_payload(opcode, &payload),
            _ => Message::Binary(Vec::new()),
        }
    }
}

/// What a fan-out command holds until its reactor applies it: the frame, the payload kept
/// for compression, and the command itself.
fn fanout_cost(out: &Outgoing) -> usize {
    let payload = out.payload.as_ref().map_or(0, |(_, p)| p.len());
    out.plain.len() + payload + session::FRAME_COST + std::mem::size_of::<Command>()
}

/// A reactor as seen from other threads.
pub(crate) struct Remote {
    /// This reactor's index in `Shared::reactors`.
    pub(crate) index: usize,
    pub(crate) commands: Sender<Command>,
    pub(crate) waker: mio::Waker,
    /// True while the reactor is running a turn (it will drain `commands` before sleeping).
    pub(crate) awake: AtomicBool,
    pub(crate) live: LiveTable,
    /// Bytes of fan-out commands (publish, broadcast, send_many) sent to this reactor and
    /// not yet applied, bounded by `Shared::fanout_limit`.
    pub(crate) fanout_queued: AtomicUsize,
}

impl Remote {
    /// Charges a fan-out command's cost; false when the reactor is already holding
    /// `limit` bytes of them (the producer is faster than its sockets).
    pub(crate) fn charge_fanout(&self, cost: usize, limit: usize) -> bool {
        let before = self.fanout_queued.fetch_add(cost, Ordering::AcqRel);
        if before > 0 && before + cost > limit {
            self.fanout_queued.fetch_sub(cost, Ordering::AcqRel);
            return false;
        }
        true
    }

    /// Frees a fan-out command's cost once it is applied (or given back).
    pub(crate) fn release_fanout(&self, cost: usize) {
        self.fanout_queued.fetch_sub(cost, Ordering::AcqRel);
    }

    /// Queues `command` and wakes the reactor if it sleeps; a reactor that is gone gives
    /// the command back.
    pub(crate) fn send(&self, command: Command) -> Result<(), Command> {
        self.commands.send(command).map_err(|unsent| unsent.0)?;
        // Sequentially consistent, as the reactor's `awake.store(false)` before it looks
        // at the queue: either it sees this command, or this sees it asleep and wakes it.
        if !self.awake.swap(true, Ordering::SeqCst) {
            // A failed wake means the reactor is gone; the command is then moot.
            let _ = self.waker.wake();
        }
        Ok(())
    }
}

pub(crate) struct Shared {
    pub(crate) reactors: Box<[Remote]>,
    /// Open connections (handshake done, `Disconnect` not yet delivered).
    pub(crate) open: AtomicUsize,
    /// Accepted sockets, handshaking or open: what `max_connections` bounds.
    pub(crate) sockets: AtomicUsize,
    pub(crate) stopped: AtomicBool,
    pub(crate) counters: Counters,
    pub(crate) max_backpressure: usize,
    pub(crate) backpressure: Backpressure,
    /// What fan-out commands may hold per reactor (`Config::fanout_queue_bytes`).
    pub(crate) fanout_limit: usize,
    pub(crate) topics: Topics,
    /// What `/readyz` reports besides shutdown.
    pub(crate) readiness: crate::http::Readiness,
    /// Messages at least this long are compressed where negotiated (`usize::MAX`: never).
    pub(crate) compression_threshold: usize,
    /// This node's id (0 outside a cluster): ids of other nodes route through `cluster`.
    pub(crate) node: u32,
    pub(crate) cluster: Option<Arc<crate::cluster::Cluster>>,
    /// Client connections' offline queues (looked up only for ids that are not open).
    pub(crate) offline: crate::client::OfflineTable,
    /// Resolves client connections' host names off the reactors.
    pub(crate) resolver: crate::client::Resolver,
    /// Which reactor opens the next client connection.
    pub(crate) next_dial: AtomicUsize,
}

/// Sends, closes and counts connections from any thread. Cheap to clone.
///
/// # Examples
/// ```no_run
/// # fn demo(handle: wsloop::Handle, id: wsloop::ConnId) {
/// let sender = handle.clone();
/// std::thread::spawn(move || {
///     // A stale id is an error, never a panic.
///     let _ = sender.send(id, "tick");
/// });
/// # }
/// ```
#[derive(Clone)]
pub struct Handle {
    pub(crate) shared: Arc<Shared>,
}

impl std::fmt::Debug for Handle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handle").field("connections", &self.connections()).finish()
    }
}

impl Handle {
    fn remote(&self, id: ConnId) -> Option<&Remote> {
        if id.node() != self.shared.node {
            return None;
        }
        self.shared.reactors.get(id.reactor())
    }

    pub(crate) fn is_stopped(&self) -> bool {
        self.shared.stopped.load(Ordering::Acquire)
    }

    /// Queues `message` for `id` (a `&str`/`String` is sent as text, bytes as binary).
    ///
    /// # Errors
    /// The message comes back when the id is unknown or closed, the connection is
    /// closing, or the server stopped. A connection that closes after this returns `Ok`
    /// drops the message.
    pub fn send(&self, id: ConnId, message: impl Into<Message>) -> Result<(), SendError> {
        let message = message.into();
        if self.is_stopped() {
            return Err(SendError { kind: SendErrorKind::ServerStopped, message });
        }
        if id.node() != self.shared.node {
            return self.send_to_node(id, message);
        }
        let Some(remote) = self.remote(id) else {
            return Err(SendError { kind: SendErrorKind::UnknownConnection, message });
        };
        if outbox::reply(remote, id, message.view()) {
            return Ok(());
        }
        let frame_len = session::cost(wire::frame_len(message.len()));
        let kind = match remote.live.reserve(id, frame_len, self.shared.max_backpressure) {
            Ok(Compresses(compresses)) => {
                let compress = compresses && message.len() >= self.shared.compression_threshold;
                let command = if compress {
                    let (opcode, payload) = wire::into_payload(message);
                    Command::SendUnframed { id, opcode, payload, reserved: frame_len }
                } else {
                    Command::Send { id, frame: wire::into_frame(message) }
                };
                return match self.push(remote, command) {
                    Ok(()) => {
                        Counters::bump(&self.shared.counters.messages_out);
                        Ok(())
                    }
                    Err(unsent) => Err(SendError {
                        kind: SendErrorKind::ServerStopped,
                        message: unsent.message(),
                    }),
                };
            }
            Err(refused @ (Refused::Gone | Refused::Closing)) => {
                return self.hold_offline(id, message, refused);
            }
            Err(Refused::Full) => {
                self.over_backpressure(remote, id);
                SendErrorKind::Backpressure
            }
        };
        Err(SendError { kind, message })
    }

    /// A send to an id that is not open: held if it names a client connection that is
    /// down and will come back, refused otherwise.
    fn hold_offline(
        &self,
        id: ConnId,
        message: Message,
        refused: Refused,
    ) -> Result<(), SendError> {
        let kind = match refused {
            Refused::Closing => SendErrorKind::Closing,
            _ => SendErrorKind::UnknownConnection,
        };
        let Some(line) = self.shared.offline.get(id) else {
            return Err(SendError { kind, message });
        };
        let frame = wire::message_frame(&message);
        match line.hold(frame) {
            crate::client::Offered::Held => Ok(()),
            crate::client::Offered::Full => {
                Err(SendError { kind: SendErrorKind::OfflineQueueFull, message })
            }
            crate::client::Offered::NotDown => Err(SendError { kind, message }),
        }
    }

    fn over_backpressure(&self, remote: &Remote, id: ConnId) {
        let counters = &self.shared.counters;
        match self.shared.backpressure {
            Backpressure::Drop => Counters::bump(&counters.messages_dropped),
            Backpressure::Close => {
                if remote.live.mark_closing(id) {
                    let _ = self.push(remote, Command::SlowConsumer { id });
                }
            }
        }
    }

    /// [`Handle::send`] of a lent message. An inline handler answering the connection it
    /// is handling (from [`Handler::on_message_ref`](crate::Handler::on_message_ref)) sends
    /// with no allocation; elsewhere the message is copied.
    ///
    /// # Errors
    /// As [`Handle::send`], with the message copied into the error.
    pub fn send_ref(&self, id: ConnId, message: MessageRef<'_>) -> Result<(), SendError> {
        if let Some(remote) = self.remote(id)
            && !self.is_stopped()
            && outbox::reply(remote, id, message)
        {
            return Ok(());
        }
        self.send(id, message.to_message())
    }

    /// Memory held for `id` and not yet taken by its socket (frames in the command channel
    /// and the write queue, each at its length plus 64 bytes); `None` when the id is not
    /// open. Compare with `max_backpressure` to slow a producer down before the policy
    /// applies: with `Config::drain_events`, a non-zero answer promises a `Drain` event
    /// once all of it has been written, so a producer may pause until then.
    pub fn buffered(&self, id: ConnId) -> Option<usize> {
        self.remote(id)?.live.buffered(id)
    }

    /// The server's counters now.
    pub fn stats(&self) -> Stats {
        let shared = &self.shared;
        shared.counters.snapshot(
            shared.open.load(Ordering::Relaxed),
            shared.sockets.load(Ordering::Relaxed),
            shared.topics.topic_count(),
        )
    }

    /// Queues one message for many connections. The frame is encoded once and its bytes
    /// shared by every recipient. Ids that are unknown or closed are skipped. In a
    /// cluster, ids of other nodes get one direct send each.
    ///
    /// Returns how many ids were queued.
    pub fn send_many(&self, ids: &[ConnId], message: impl Into<Message>) -> usize {
        let message = message.into();
        let elsewhere = self.send_to_nodes(ids, &message);
        let out = self.outgoing(message);
        let mut per_reactor: Vec<Vec<ConnId>> = vec![Vec::new(); self.shared.reactors.len()];
        for &id in ids {
            if let Some(remote) = self.remote(id)
                && remote.live.get(id) == Liveness::Open
            {
                per_reactor[id.reactor()].push(id);
            }
        }
        let mut queued = 0;
        for (remote, ids) in self.shared.reactors.iter().zip(per_reactor) {
            let n = ids.len();
            let cost = fanout_cost(&out) + n * std::mem::size_of::<ConnId>();
            if n > 0
                && self.push_fanout(remote, cost, |cost| Command::SendMany {
                    ids,
                    out: out.clone(),
                    cost,
                })
            {
                queued += n;
            }
        }
        Counters::add(&self.shared.counters.messages_out, queued);
        queued + elsewhere
    }

    /// Sends a fan-out command within the reactor's fan-out budget; false (and counted as
    /// dropped) when over it or when the reactor is gone.
    fn push_fanout(
        &self,
        remote: &Remote,
        cost: usize,
        make: impl FnOnce(usize) -> Command,
    ) -> bool {
        if !remote.charge_fanout(cost, self.shared.fanout_limit) {
            Counters::bump(&self.shared.counters.messages_dropped);
            return false;
        }
        if self.push(remote, make(cost)).is_err() {
            remote.release_fanout(cost);
            return false;
        }
        true
    }

    /// Queues one message for every open connection (of every node, in a cluster); the
    /// frame is encoded once. In a cluster whose queue to Redis is full, it is dropped
    /// everywhere and counted.
    pub fn broadcast(&self, message: impl Into<Message>) {
        let message = message.into();
        if self.broadcast_to_nodes(&message).is_ok() {
            self.broadcast_here(message);
        }
    }

    /// [`Handle::broadcast`] to this node's connections only.
    /// Returns false when a reactor refused it (over its fan-out budget).
    pub(crate) fn broadcast_here(&self, message: Message) -> bool {
        let out = self.outgoing(message);
        let cost = fanout_cost(&out);
        let mut complete = true;
        for remote in self.shared.reactors.iter() {
            complete &= self
                .push_fanout(remote, cost, |cost| Command::Broadcast { out: out.clone(), cost });
        }
        let open = self.shared.open.load(Ordering::Relaxed);
        Counters::add(&self.shared.counters.messages_out, open);
        complete
    }

    /// Starts the close handshake with `code` and `reason` (≤ 123 bytes). The
    /// `Disconnect` event follows when the peer answers or the close timeout passes.
    ///
    /// # Errors
    /// Unknown or closed id, a code that may not be sent (1005, 1006, 1015...), a reason
    /// too long, or a stopped server.
    pub fn close(&self, id: ConnId, code: CloseCode, reason: &str) -> Result<(), CloseError> {
        if !code.is_valid_on_wire() {
            return Err(CloseError::InvalidCode(code.0));
        }
        if reason.len() > 123 {
            return Err(CloseError::ReasonTooLong);
        }
        if self.is_stopped() {
            return Err(CloseError::ServerStopped);
        }
        if id.node() != self.shared.node {
            return self.close_on_node(id, code, reason);
        }
        let remote = self.remote(id).ok_or(CloseError::UnknownConnection)?;
        // A client connection that is down is closed by its reactor too (it stops
        // reconnecting).
        if remote.live.get(id) == Liveness::Gone && self.shared.offline.get(id).is_none() {
            return Err(CloseError::UnknownConnection);
        }
        if self.push(remote, Command::Close { id, code, reason: reason.into() }).is_ok() {
            Ok(())
        } else {
            Err(CloseError::ServerStopped)
        }
    }

    /// Adds `id` to `topic` (created on first use). Subscribing twice is a no-op; the
    /// membership ends by itself when the connection does.
    ///
    /// # Errors
    /// The id is not open, or a limit (`max_topics_per_connection`,
    /// `max_subscribers_per_topic`) is reached; the error names which.
    pub fn subscribe(&self, id: ConnId, topic: &str) -> Result<(), SubscribeError> {
        let remote = self.remote(id).ok_or(SubscribeError::UnknownConnection)?;
        self.shared.topics.subscribe(id, topic, || remote.live.get(id) == Liveness::Open)?;
        Ok(())
    }

    /// Removes `id` from `topic`; returns whether it was a member.
    pub fn unsubscribe(&self, id: ConnId, topic: &str) -> bool {
        self.shared.topics.unsubscribe(id, topic)
    }

    /// Sends `message` to every member of `topic`. The frame is encoded once; each
    /// reactor with members writes the same bytes to all of its members. Messages
    /// published from one thread reach each member in publish order. Returns how many
    /// members there were when it was published; 0 when no reactor could take it (each
    /// reactor holds at most `Config::fanout_queue_bytes` of fan-out waiting for its
    /// sockets: a producer faster than that has its messages dropped and counted in
    /// `Stats::messages_dropped`, never queued without bound).
    ///
    /// In a cluster ([`Config::cluster`](crate::Config::cluster)) it also reaches every
    /// other node's members (the count is this node's); when the queue to Redis is full
    /// it reaches no one and returns 0 ([`Handle::try_publish`] says why).
    pub fn publish(&self, topic: &str, message: impl Into<Message>) -> usize {
        self.publish_to(topic, message.into(), None)
    }

    /// [`Handle::publish`] to every member but `except` (e.g. the sender of a chat
    /// message).
    pub fn publish_except(
        &self,
        topic: &str,
        message: impl Into<Message>,
        except: ConnId,
    ) -> usize {
        self.publish_to(topic, message.into(), Some(except))
    }

    /// In a cluster, queues the message for the other nodes first: when that is refused
    /// (see [`Handle::try_publish`]) it is delivered nowhere and 0 is returned.
    fn publish_to(&self, topic: &str, message: Message, except: Option<ConnId>) -> usize {
        match self.publish_to_nodes(topic, &message, except) {
            Ok(()) => self.publish_here(topic, message, except),
            Err(_) => 0,
        }
    }

    /// Fans out to this node's members of `topic`.
    pub(crate) fn publish_here(
        &self,
        topic: &str,
        message: Message,
        except: Option<ConnId>,
    ) -> usize {
        self.fan_out_here(topic, message, except).0
    }

    /// [`Handle::publish_here`], and whether every reactor with members took it (false:
    /// some were over their fan-out budget and their members miss it).
    pub(crate) fn fan_out_here(
        &self,
        topic: &str,
        message: Message,
        except: Option<ConnId>,
    ) -> (usize, bool) {
        let reactors = self.shared.topics.reactors_of(topic);
        if reactors.is_empty() {
            return (0, true);
        }
        let wanted = reactors.len();
        let out = self.outgoing(message);
        let topic: Arc<str> = Arc::from(topic);
        let cost = fanout_cost(&out) + topic.len();
        let mut sent = 0;
        for index in reactors {
            if let Some(remote) = self.shared.reactors.get(index)
                && self.push_fanout(remote, cost, |cost| Command::Publish {
                    topic: topic.clone(),
                    out: out.clone(),
                    except,
                    cost,
                })
            {
                sent += 1;
            }
        }
        if sent == 0 {
            return (0, false);
        }
        let members = self.shared.topics.size(&topic);
        let counters = &self.shared.counters;
        Counters::bump(&counters.publishes);
        Counters::add(
            &counters.messages_out,
            members.saturating_sub(usize::from(except.is_some())),
        );
        (members, sent == wanted)
    }

    /// A message for many recipients: framed once, and its payload kept for the reactors
    /// to compress once when it is worth it.
    /// A fan-out's frame, shared by the commands to every reactor (behind an `Arc`, so a
    /// command stays small: every send moves one).
    fn outgoing(&self, message: Message) -> Arc<Outgoing> {
        let plain = wire::message_frame(&message);
        let payload = (message.len() >= self.shared.compression_threshold)
            .then(|| wire::into_payload(message));
        Arc::new(Outgoing { plain, payload })
    }

    /// Members of `topic` now.
    pub fn topic_size(&self, topic: &str) -> usize {
        self.shared.topics.size(topic)
    }

    /// The topics `id` is in.
    pub fn topics_of(&self, id: ConnId) -> Vec<String> {
        self.shared.topics.topics_of(id)
    }

    /// The members of `topic` (for admin pages: it copies the whole set).
    pub fn connections_of(&self, topic: &str) -> Vec<ConnId> {
        self.shared.topics.members(topic)
    }

    /// Queues a command for `remote`: kept in this thread's outbox when it is a reactor or
    /// worker thread of this server, else sent through the channel. A stopped reactor
    /// gives it back.
    fn push(&self, remote: &Remote, command: Command) -> Result<(), Command> {
        match outbox::hold(&self.shared, remote, command) {
            None => Ok(()),
            Some(command) => remote.send(command),
        }
    }

    pub(crate) fn barrier_passed(&self, id: ConnId) {
        if let Some(remote) = self.remote(id) {
            let _ = self.push(remote, Command::BarrierPassed { id });
        }
    }

    /// Whether `id` names an open connection (not closing, not closed).
    pub fn is_open(&self, id: ConnId) -> bool {
        self.remote(id).is_some_and(|r| r.live.get(id) == Liveness::Open)
    }

    /// Open connections now (handshake done, not yet disconnected).
    pub fn connections(&self) -> usize {
        self.shared.open.load(Ordering::Relaxed)
    }

    /// Sends now what this thread's handler calls have queued. On a worker, the sends
    /// of a batch of events leave together once the worker has handled the batch (or
    /// 32 events of it); a handler about to block (a database query, a sleep) calls
    /// this first so that replies to earlier events are not held back. Elsewhere sends
    /// leave at once, and this does nothing.
    pub fn flush(&self) {
        outbox::flush_worker(&self.shared);
    }

    /// Stops the server: listeners close, every connection gets close 1001, and once their
    /// close handshakes end (or `Config::close_timeout` passes) every `Disconnect` is
    /// delivered and the threads exit. Returns at once; `Server::join` waits for the end.
    pub fn shutdown(&self) {
        self.stop(None);
    }

    /// [`Handle::shutdown`], waiting at most `timeout` for the close handshakes.
    pub fn shutdown_within(&self, timeout: Duration) {
        self.stop(Some(timeout));
    }

    fn stop(&self, timeout: Option<Duration>) {
        if self.shared.stopped.swap(true, Ordering::AcqRel) {
            return;
        }
        log::debug!("shutdown requested (close handshakes wait at most {timeout:?})");
        if let Some(cluster) = &self.shared.cluster {
            cluster.stop();
        }
        for remote in self.shared.reactors.iter() {
            let _ = self.push(remote, Command::Shutdown { timeout });
        }
    }
}

#[cfg(test)]
mod tests {
    /// Every send moves a command (into the outbox, a batch, the channel): the common
    /// ones stay small, rare large ones go behind a pointer.
    #[test]
    fn a_command_stays_small() {
        let size = std::mem::size_of::<super::Command>();
        assert!(size <= 64, "Command is {size} bytes");
    }
}
