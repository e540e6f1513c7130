//! Several wsloop nodes as one server, through Redis pub/sub.
//!
//! # What crosses nodes
//! - [`Handle::publish`](crate::Handle::publish) / `publish_except`: every node's members
//!   of the topic. - [`Handle::broadcast`](crate::Handle::broadcast): every connection of
//!   every node. - [`Handle::send`](crate::Handle::send) / `close` with a [`ConnId`] of
//!   another node ([`ConnId::node`]): that connection.
//!
//! # How
//! One thread per node (`wsloop-cluster`) owns one connection to Redis and its own
//! `mio::Poll`; it speaks RESP3 (our own small codec, `resp.rs`) so publishes and
//! subscriptions share that connection. Callers never wait for it: a publish is framed
//! into a RESP command on the calling thread and put on a channel whose bytes are
//! bounded (`ClusterConfig::queue_bytes`); the link writes everything queued once per
//! turn (pipelined). Messages from other nodes are fanned out to local members through
//! the same reactor commands a local publish uses, within the same per-reactor fan-out
//! budget, so no reactor ever waits on Redis either.
//!
//! Channels (prefix `wsloop:` by default): `t:<topic>` per topic, subscribed exactly
//! while the node has a local member of it (never a pattern), and unsubscribed
//! `unsubscribe_delay` after the last one leaves; `all` for broadcasts; `n:<node>` for
//! direct sends and closes to one node.
//!
//! Every message is wrapped in an envelope (`envelope.rs`): version, origin node, origin
//! epoch, a sequence number per origin and stream (topic, broadcast, or target node), the
//! topic and the payload.
//!
//! # Ordering and duplicates
//! A node delivers its own publish to its own members **at once**, without waiting for
//! Redis, and ignores the copy Redis hands back (its origin is itself): no self
//! duplicates, and local members see local publishes with local latency. Redis keeps
//! each publisher connection's order, so messages from one origin on one topic reach
//! every member in publish order (per-origin FIFO), exactly once (a sequence number seen
//! before is dropped). There is no order *across* origins: two nodes publishing at once
//! may be seen in one order on node A and the other on node B (and each node sees its
//! own first).
//!
//! # Failure semantics: at-most-once, and every gap visible
//! - Delivery is at-most-once. Nothing is stored or replayed: a message published while
//!   a node is cut off from Redis never reaches that node's members.
//! - While Redis is unreachable `/readyz` answers 503 with the reason, and the node
//!   keeps serving its own connections (local publishes still reach local members).
//!   Cross-node publishes wait in the bounded queue; once it is full, `publish` returns 0
//!   and [`Handle::try_publish`](crate::Handle::try_publish) returns
//!   [`PublishErrorKind::QueueFull`] with the message, never blocking and never growing.
//!   What was queued is sent once the link is back; nodes that have not resubscribed yet
//!   by then miss it (and get their `Resync`).
//! - The link reconnects with exponential backoff and full jitter, resubscribes every
//!   topic with local members in batches, and reports ready only when Redis has
//!   confirmed all of them.
//! - Every topic whose stream may have a gap gets [`ClusterEvent::Resync`] (read them
//!   with [`Handle::cluster_events`](crate::Handle::cluster_events)): each one that was
//!   subscribed when the link dropped (sent once it is subscribed again, so a reload
//!   from then on misses nothing), and each one where a sequence number was skipped.
//!   Broadcasts get [`ClusterEvent::ResyncBroadcast`]. A message from another node that
//!   a reactor had no room for (`Config::fanout_queue_bytes`) is a gap too, and reported
//!   the same way. A Redis that closes the link for
//!   lagging (`client-output-buffer-limit pubsub`) is a dropped link like any other.
//! - Counters for all of it are in `/metrics` (`wsloop_cluster_*`).
//! - `Handle::is_open` and `Handle::buffered` know only this node's connections (false
//!   and `None` for another node's id): asking another node would mean waiting on it.
//!   Gaps in the direct stream from one node to another are counted, not evented.
//! - A direct send to a node that does not exist (PUBLISH reached no subscriber) is
//!   counted on the sender; one to a connection that has closed is counted on its node.
//!
//! # How far it scales, and what it costs
//! Every node receives every message of every topic it has a member of, plus every
//! broadcast, once (not once per member): cross-node fan-out costs one Redis message per
//! interested node, and each node fans out locally. Redis runs pub/sub on one core: on
//! a shared 2-core test machine Redis 7.0 took 137,000 PUBLISHes/s of 100 bytes to a
//! channel with 3 subscribed connections (411,000 deliveries/s) and 470,000/s to a
//! channel with none (`redis-benchmark -n 300000 -P 32 -c 4 -q publish CHANNEL PAYLOAD`
//! with three `redis-cli subscribe CHANNEL` readers). So one Redis carries a cluster up to
//! roughly publishes/s × interested nodes ≈ 400k–1M/s on a dedicated core, whatever the
//! number of WebSocket subscribers behind each node; Redis' own output buffers per node (by
//! default 32 MB hard, 8 MB over 60 s soft for pub/sub clients) bound how far behind a
//! node may fall before Redis disconnects it (which we report as a gap).
//!
//! Past one Redis core, shard: Redis 7 cluster's sharded pub/sub (`SSUBSCRIBE`,
//! `SPUBLISH`) keeps a channel's messages on the shard that owns its hash slot
//! (CRC16(channel) mod 16384), so N shards carry N times the traffic. The link would
//! open one connection per shard, map each topic to its shard by that slot (using a
//! `{hash tag}` when related topics must share a shard), SSUBSCRIBE per shard, and treat
//! a slot migration (`-MOVED`, an `sunsubscribe` push) as a dropped link for those topics
//! (resubscribe, then `Resync`). Broadcasts and direct sends would stay on one shard's
//! plain channels, or be spread over per-node slots. Sequence numbers are already per
//! origin and topic, so nothing else changes.
//!
//! Cost per node: one thread and one TCP connection to Redis; per subscribed topic a
//! map entry and a Redis channel membership (about 100 bytes each on both sides); per
//! origin and stream a 16-byte sequence entry on each side (bounded: see
//! `sequence.rs`); per publish one envelope (27 bytes + topic) and one copy of the
//! payload on the way out and on the way in, besides the local fan-out.

mod backoff;
mod config;
mod envelope;
mod inbound;
mod link;
mod metrics;
mod outbound;
mod redis_conn;
mod resp;
mod sequence;
mod subscriptions;

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};
use parking_lot::Mutex;

pub use config::{ClusterConfig, ClusterConfigError};
pub(crate) use link::Link;
pub(crate) use metrics::render;

use crate::event::{ConnId, MAX_NODE_ID, Message};
use sequence::Sequencer;

/// Something the application should know about the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClusterEvent {
    /// Messages of `topic` from other nodes may have been lost (a sequence gap, or the
    /// link to Redis dropped while the topic was subscribed): reload its state. Sent
    /// once the topic's stream flows again.
    Resync {
        /// The topic.
        topic: String,
    },
    /// Broadcasts from other nodes may have been lost.
    ResyncBroadcast,
    /// The link to Redis dropped; cross-node traffic stops until [`ClusterEvent::Up`].
    Down,
    /// The link is up and every topic is subscribed again.
    Up,
}

/// Cluster events as they come (see [`Handle::cluster_events`](crate::Handle::cluster_events)).
/// Every receiver clone takes from the same queue.
#[derive(Debug, Clone)]
pub struct ClusterEvents {
    rx: Receiver<ClusterEvent>,
}

impl ClusterEvents {
    /// The next event, waiting at most `timeout`.
    pub fn recv_timeout(&self, timeout: Duration) -> Option<ClusterEvent> {
        self.rx.recv_timeout(timeout).ok()
    }

    /// The next event if one is waiting.
    pub fn try_recv(&self) -> Option<ClusterEvent> {
        self.rx.try_recv().ok()
    }
}

/// Why a cross-node publish was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PublishErrorKind {
    /// `ClusterConfig::queue_bytes` of messages already wait for Redis (it is down or
    /// slow); nothing was delivered, not even locally. Retry later or drop.
    QueueFull,
    /// Topic names are at most 65,535 bytes across nodes.
    TopicTooLong,
    /// The server has shut down.
    Stopped,
}

/// A refused publish; the message is handed back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishError {
    /// Why.
    pub kind: PublishErrorKind,
    /// The message that was not published.
    pub message: Message,
}

impl fmt::Display for PublishError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.kind {
            PublishErrorKind::QueueFull => "cluster queue full: Redis is down or slow",
            PublishErrorKind::TopicTooLong => "topic over 65535 bytes",
            PublishErrorKind::Stopped => "server stopped",
        })
    }
}

impl std::error::Error for PublishError {}

/// The cluster's counters (rendered by `metrics.rs`).
#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) published: AtomicU64,
    pub(crate) refused: AtomicU64,
    pub(crate) received: AtomicU64,
    pub(crate) duplicates: AtomicU64,
    pub(crate) gaps: AtomicU64,
    pub(crate) missed: AtomicU64,
    pub(crate) resyncs: AtomicU64,
    pub(crate) malformed: AtomicU64,
    pub(crate) connects: AtomicU64,
    pub(crate) disconnects: AtomicU64,
    pub(crate) unknown_node: AtomicU64,
    pub(crate) stale: AtomicU64,
    pub(crate) events_dropped: AtomicU64,
    pub(crate) lost_bytes: AtomicU64,
    pub(crate) local_drops: AtomicU64,
    pub(crate) subscribed: AtomicUsize,
    pub(crate) up: AtomicBool,
}

pub(crate) fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// One queued RESP command for the link, and the budget bytes it holds.
pub(crate) struct Outbound {
    pub(crate) bytes: Vec<u8>,
    /// A direct send: the PUBLISH reply says whether the node exists.
    pub(crate) direct: bool,
    pub(crate) cost: usize,
}

/// The cluster as the rest of the server sees it.
pub(crate) struct Cluster {
    /// This node's id (every local `ConnId` carries it).
    pub(crate) node: u32,
    pub(crate) config: ClusterConfig,
    queue: Sender<Outbound>,
    /// Bytes of `Outbound`s queued and not yet taken by the link.
    queued: AtomicUsize,
    /// Numbers messages and queues them under one lock, so queue order is number order.
    sequencer: Mutex<Sequencer>,
    /// Topics whose local interest changed since the link last looked, in order (the
    /// link takes them all every turn).
    interest: Mutex<Vec<(Arc<str>, bool)>>,
    waker: mio::Waker,
    /// The link is (about to be) blocked in poll: the next producer wakes it.
    asleep: AtomicBool,
    stopped: AtomicBool,
    /// Why the cluster is not ready, or `None`.
    unready: Mutex<Option<String>>,
    pub(crate) counters: Counters,
    events: Sender<ClusterEvent>,
    events_rx: Receiver<ClusterEvent>,
}

/// A random number from the standard library's per-process hash keys and the clock.
pub(crate) fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.finish()
}

/// The cluster half the server shares, and the link thread to run.
pub(crate) fn prepare(
    config: &ClusterConfig,
    max_message_size: usize,
) -> std::io::Result<(Arc<Cluster>, Link)> {
    let node = config.node_id.unwrap_or_else(|| (random_u64() % u64::from(MAX_NODE_ID)) as u32 + 1);
    let poll = mio::Poll::new()?;
    let waker = mio::Waker::new(poll.registry(), link::WAKER)?;
    let (queue, rx) = crossbeam_channel::unbounded();
    let (events, events_rx) = crossbeam_channel::bounded(config.events_capacity);
    let cluster = Arc::new(Cluster {
        node,
        config: config.clone(),
        queue,
        queued: AtomicUsize::new(0),
        sequencer: Mutex::new(Sequencer::new(random_u64() as u32, 1 << 16)),
        interest: Mutex::new(Vec::new()),
        waker,
        asleep: AtomicBool::new(false),
        stopped: AtomicBool::new(false),
        unready: Mutex::new(Some("cluster: connecting to Redis".to_owned())),
        counters: Counters::default(),
        events,
        events_rx,
    });
    let link = Link::new(poll, cluster.clone(), rx, max_message_size);
    Ok((cluster, link))
}

impl Cluster {
    /// A topic gained its first local member or lost its last (called under the topic
    /// registry's lock, so changes arrive in order).
    pub(crate) fn interest(&self, topic: &Arc<str>, wanted: bool) {
        self.interest.lock().push((topic.clone(), wanted));
        self.wake();
    }

    /// Wakes the link if it sleeps (one wake per sleep however many producers call).
    fn wake(&self) {
        if self.asleep.swap(false, Ordering::AcqRel) {
            let _ = self.waker.wake();
        }
    }

    fn interest_pending(&self) -> bool {
        !self.interest.lock().is_empty()
    }

    fn take_interest(&self) -> Vec<(Arc<str>, bool)> {
        std::mem::take(&mut *self.interest.lock())
    }

    pub(crate) fn stop(&self) {
        self.stopped.store(true, Ordering::Release);
        let _ = self.waker.wake();
    }

    fn is_stopped(&self) -> bool {
        self.stopped.load(Ordering::Acquire)
    }

    /// Why the cluster makes the node unready, if it does.
    pub(crate) fn unready_reason(&self) -> Option<String> {
        self.unready.lock().clone()
    }

    fn set_unready(&self, reason: Option<String>) {
        let mut unready = self.unready.lock();
        if *unready != reason {
            match &reason {
                Some(r) => log::warn!("not ready: {r}"),
                None => log::info!("cluster: ready (node {})", self.node),
            }
            *unready = reason;
        }
    }

    /// Hands `event` to the application, or counts it lost when its queue is full.
    fn emit(&self, event: ClusterEvent) {
        if matches!(event, ClusterEvent::Resync { .. } | ClusterEvent::ResyncBroadcast) {
            bump(&self.counters.resyncs);
        }
        if self.events.try_send(event).is_err() {
            bump(&self.counters.events_dropped);
        }
    }

    pub(crate) fn events(&self) -> ClusterEvents {
        ClusterEvents { rx: self.events_rx.clone() }
    }

    /// Bytes waiting for the link.
    pub(crate) fn queued_bytes(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }

    fn release(&self, cost: usize) {
        self.queued.fetch_sub(cost, Ordering::AcqRel);
    }

    fn is_remote(&self, id: ConnId) -> bool {
        id.node() != self.node
    }
}
