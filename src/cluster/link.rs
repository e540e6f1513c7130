//! The broker link: one thread, its own `mio::Poll`, one RESP3 connection to Redis.
//!
//! A turn: poll (woken by the socket, by a queued publish or an interest change, or by
//! the next deadline) → connect or give up connecting → read and handle every complete
//! reply → send SUBSCRIBE/UNSUBSCRIBE for interest changes → move queued publishes into
//! the write buffer (while it holds less than `queue_bytes`) → ping → one write of
//! everything (pipelined) → update readiness. mio's rules: reads and writes go on until
//! `WouldBlock`, `Interrupted` is retried, spurious events are harmless (every step
//! checks what it needs).

use std::io;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};

use super::backoff::backoff;
use super::inbound::Inbound;
use super::redis_conn::{Conn, Expect};
use super::resp::Value;
use super::subscriptions::Subscriptions;
use super::{Cluster, ClusterEvent, Outbound, bump};
use crate::handle::Handle;

pub(crate) const WAKER: Token = Token(0);
const SOCKET: Token = Token(1);
/// Commands sent and not yet answered, at most (each holds one byte in `expect`).
const MAX_IN_FLIGHT: usize = 1 << 20;
/// The longest the link sleeps without looking at its deadlines.
const MAX_SLEEP: Duration = Duration::from_millis(250);

pub(crate) struct Link {
    poll: Poll,
    cluster: Arc<Cluster>,
    queue: Receiver<Outbound>,
    /// The longest RESP string accepted (the largest envelope a node may send).
    max_len: usize,
    conn: Option<Conn>,
    subs: Subscriptions,
    inbound: Inbound,
    failures: u32,
    next_attempt: Instant,
    /// Connections that got established (after the first, everything resyncs).
    sessions: u64,
    last_error: String,
}

impl Link {
    pub(crate) fn new(
        poll: Poll,
        cluster: Arc<Cluster>,
        queue: Receiver<Outbound>,
        max_message_size: usize,
    ) -> Link {
        let linger = cluster.config.unsubscribe_delay;
        Link {
            poll,
            cluster,
            queue,
            max_len: max_message_size.saturating_add(128 << 10),
            conn: None,
            subs: Subscriptions::new(linger),
            inbound: Inbound::new(),
            failures: 0,
            next_attempt: Instant::now(),
            sessions: 0,
            last_error: "not connected yet".to_owned(),
        }
    }

    /// Runs until the server stops.
    pub(crate) fn run(mut self, handle: Handle) {
        let mut events = Events::with_capacity(64);
        while !self.cluster.is_stopped() {
            let timeout = self.sleep_for(Instant::now());
            self.cluster.asleep.store(true, Ordering::Release);
            let timeout = if self.has_work() { Duration::ZERO } else { timeout };
            if let Err(e) = self.poll.poll(&mut events, Some(timeout))
                && e.kind() != io::ErrorKind::Interrupted
            {
                log::error!("cluster: poll failed: {e}");
                break;
            }
            self.cluster.asleep.store(false, Ordering::Release);
            self.turn(&handle, Instant::now());
        }
        if let Some(conn) = self.conn.take() {
            self.lost(conn, "server stopped");
        }
    }

    fn turn(&mut self, handle: &Handle, now: Instant) {
        if self.conn.is_none() && now >= self.next_attempt {
            self.connect(now);
        }
        let result = self.io(handle, now);
        if let Err(reason) = result
            && let Some(conn) = self.conn.take()
        {
            self.lost(conn, &reason);
            self.schedule_retry(now);
        }
        for (topic, wanted) in self.cluster.take_interest() {
            self.subs.set_wanted(topic, wanted, now);
        }
        if let Some(conn) = self.conn.as_mut()
            && conn.established
        {
            self.send_subscriptions(now);
            self.take_queue();
            let flushed = self.conn.as_mut().map_or(Ok(()), Conn::flush);
            if let Err(e) = flushed
                && let Some(conn) = self.conn.take()
            {
                self.lost(conn, &format!("write: {e}"));
                self.schedule_retry(now);
            }
        }
        self.update_ready();
    }

    /// Everything the socket has to say, and the deadlines of this connection.
    fn io(&mut self, handle: &Handle, now: Instant) -> Result<(), String> {
        let Some(conn) = self.conn.as_mut() else { return Ok(()) };
        if !conn.established {
            if !conn.check_established()? {
                if now > conn.started + self.cluster.config.connect_timeout {
                    return Err("connect timed out".to_owned());
                }
                return Ok(());
            }
            self.on_established(now);
        }
        let max_len = self.max_len;
        let values = self.conn.as_mut().map_or(Ok(Vec::new()), |c| c.read_values(now, max_len))?;
        for value in values {
            self.on_value(handle, value)?;
        }
        self.keepalive(now)
    }

    fn connect(&mut self, now: Instant) {
        let target = self.cluster.config.host_port().unwrap_or_default().to_owned();
        let Some(addr) = crate::server::resolve(target.as_str()) else {
            self.last_error = format!("{target} does not resolve");
            return self.schedule_retry(now);
        };
        let registered = TcpStream::connect(addr).and_then(|mut stream| {
            let interest = Interest::READABLE | Interest::WRITABLE;
            self.poll.registry().register(&mut stream, SOCKET, interest)?;
            Ok(stream)
        });
        match registered {
            Ok(stream) => {
                self.conn = Some(Conn::new(stream, now));
            }
            Err(e) => {
                self.last_error = format!("connect to {addr}: {e}");
                self.schedule_retry(now);
            }
        }
    }

    /// Greets Redis (RESP3, so publishes and pushes share the connection) and subscribes
    /// the fixed channels and every wanted topic.
    fn on_established(&mut self, now: Instant) {
        let cluster = &self.cluster;
        let Some(conn) = self.conn.as_mut() else { return };
        conn.established = true;
        conn.last_read = now;
        conn.last_ping = now;
        self.sessions += 1;
        bump(&cluster.counters.connects);
        log::info!(
            "cluster: connected to Redis (node {}, session {})",
            cluster.node,
            self.sessions
        );
        conn.command(&[b"HELLO", b"3"], Some(Expect::Hello));
        let (all, mine) = (cluster.broadcast_channel(), cluster.node_channel(cluster.node));
        conn.command(&[b"SUBSCRIBE", &all, &mine], None);
        self.subs.connected();
    }

    fn on_value(&mut self, handle: &Handle, value: Value) -> Result<(), String> {
        let Value::Push(items) = value else { return self.on_reply(value) };
        let [Value::Bulk(kind), Value::Bulk(channel), rest] = &items[..] else { return Ok(()) };
        match (kind.as_slice(), rest) {
            (b"message", Value::Bulk(payload)) => {
                self.inbound.message(&self.cluster, handle, payload);
            }
            (b"subscribe", _) => self.on_subscribed(channel),
            _ => {}
        }
        Ok(())
    }

    /// A reply to a command, in command order.
    fn on_reply(&mut self, value: Value) -> Result<(), String> {
        let Some(conn) = self.conn.as_mut() else { return Ok(()) };
        match (conn.expect.pop_front(), value) {
            (Some(Expect::Hello), Value::Error(e)) => Err(format!(
                "HELLO 3 refused ({}): Redis 6 or newer without a password is needed",
                String::from_utf8_lossy(&e)
            )),
            (Some(Expect::Hello), _) => {
                conn.hello_ok = true;
                Ok(())
            }
            (Some(Expect::Direct), Value::Int(0)) => {
                bump(&self.cluster.counters.unknown_node);
                Ok(())
            }
            (_, Value::Error(e)) => {
                log::warn!("cluster: Redis error: {}", String::from_utf8_lossy(&e));
                Ok(())
            }
            _ => Ok(()),
        }
    }

    fn on_subscribed(&mut self, channel: &[u8]) {
        let cluster = &self.cluster;
        let prefix = cluster.config.channel_prefix.as_bytes();
        let Some(name) = channel.strip_prefix(prefix) else { return };
        if let Some(topic) = name.strip_prefix(b"t:") {
            let topic = String::from_utf8_lossy(topic);
            if self.subs.confirmed(&topic) {
                cluster.emit(ClusterEvent::Resync { topic: topic.into_owned() });
            }
            return;
        }
        if let Some(conn) = self.conn.as_mut() {
            conn.fixed_pending = conn.fixed_pending.saturating_sub(1);
        }
        if name == b"all" && self.sessions > 1 {
            cluster.emit(ClusterEvent::ResyncBroadcast);
        }
    }

    fn send_subscriptions(&mut self, now: Instant) {
        let Some(conn) = self.conn.as_mut() else { return };
        loop {
            let batch = self.subs.batch(now, self.cluster.config.subscribe_batch);
            if batch.subscribe.is_empty() && batch.unsubscribe.is_empty() {
                break;
            }
            for (command, topics) in
                [("SUBSCRIBE", &batch.subscribe), ("UNSUBSCRIBE", &batch.unsubscribe)]
            {
                if topics.is_empty() {
                    continue;
                }
                let channels: Vec<Vec<u8>> =
                    topics.iter().map(|t| self.cluster.topic_channel(t)).collect();
                let mut args: Vec<&[u8]> = vec![command.as_bytes()];
                args.extend(channels.iter().map(Vec::as_slice));
                conn.command(&args, None);
            }
            for topic in &batch.unsubscribe {
                self.inbound.tracker.forget_topic(topic);
            }
        }
        self.cluster.counters.subscribed.store(self.subs.len(), Ordering::Relaxed);
    }

    /// Moves queued publishes into the write buffer while it has room.
    fn take_queue(&mut self) {
        let Some(conn) = self.conn.as_mut() else { return };
        let room = self.cluster.config.queue_bytes;
        while conn.out.len() < room && conn.expect.len() < MAX_IN_FLIGHT {
            let Ok(outbound) = self.queue.try_recv() else { break };
            conn.out.extend_from_slice(&outbound.bytes);
            conn.expect.push_back(if outbound.direct { Expect::Direct } else { Expect::Publish });
            self.cluster.release(outbound.cost);
        }
    }

    fn keepalive(&mut self, now: Instant) -> Result<(), String> {
        let Some(conn) = self.conn.as_mut() else { return Ok(()) };
        let interval = self.cluster.config.ping_interval;
        if now.duration_since(conn.last_read) > 3 * interval {
            return Err(format!("no answer from Redis for {:?}", 3 * interval));
        }
        if now.duration_since(conn.last_ping) >= interval {
            conn.command(&[b"PING"], Some(Expect::Ping));
            conn.last_ping = now;
        }
        Ok(())
    }

    /// Ends a connection: what it had not written is lost (counted), every topic will
    /// resync once subscribed again.
    fn lost(&mut self, mut conn: Conn, reason: &str) {
        let _ = self.poll.registry().deregister(&mut conn.stream);
        let counters = &self.cluster.counters;
        counters.lost_bytes.fetch_add(conn.out.len() as u64, Ordering::Relaxed);
        self.subs.disconnected();
        self.inbound.tracker.clear();
        counters.subscribed.store(0, Ordering::Relaxed);
        counters.up.store(false, Ordering::Relaxed);
        self.last_error = reason.to_owned();
        if conn.established {
            bump(&counters.disconnects);
            log::warn!("cluster: link to Redis lost: {reason}");
            self.cluster.emit(ClusterEvent::Down);
        }
    }

    /// The next attempt: exponential backoff with jitter (a random point in the upper
    /// half of the wait).
    fn schedule_retry(&mut self, now: Instant) {
        let config = &self.cluster.config;
        self.failures = self.failures.saturating_add(1);
        let wait =
            backoff(config.reconnect_min, config.reconnect_max, self.failures, super::random_u64());
        self.next_attempt = now + wait;
    }

    fn update_ready(&mut self) {
        let cluster = &self.cluster;
        let target = cluster.config.host_port().unwrap_or_default();
        let reason = match self.conn.as_mut() {
            None => Some(format!("cluster: Redis at {target} unreachable ({})", self.last_error)),
            Some(c) if !c.established => Some(format!("cluster: connecting to Redis at {target}")),
            Some(c) if c.hello_ok && c.fixed_pending == 0 && self.subs.synced() => {
                if !c.ready {
                    c.ready = true;
                    self.failures = 0;
                    cluster.counters.up.store(true, Ordering::Relaxed);
                    cluster.emit(ClusterEvent::Up);
                }
                None
            }
            Some(c) if c.ready => None,
            Some(_) => Some("cluster: subscribing to topics".to_owned()),
        };
        cluster.set_unready(reason);
    }

    /// Work a producer left after the last turn looked (checked after `asleep` is set,
    /// so a producer either sees it set and wakes us, or its work is seen here).
    fn has_work(&self) -> bool {
        let can_take = self
            .conn
            .as_ref()
            .is_some_and(|c| c.established && c.out.len() < self.cluster.config.queue_bytes);
        let more_to_read = self.conn.as_ref().is_some_and(|c| c.more_to_read);
        more_to_read || self.cluster.interest_pending() || (can_take && !self.queue.is_empty())
    }

    fn sleep_for(&self, now: Instant) -> Duration {
        let mut deadline = now + MAX_SLEEP;
        if self.conn.is_none() {
            deadline = deadline.min(self.next_attempt);
        }
        if let Some(due) = self.subs.next_deadline() {
            deadline = deadline.min(due);
        }
        if self.subs.has_pending() {
            deadline = now;
        }
        deadline.saturating_duration_since(now)
    }
}
