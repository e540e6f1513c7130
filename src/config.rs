//! Server configuration: one struct with defaults, chained setters, validated once.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::error::ConfigError;
use crate::protocol::handshake::Request;
use crate::upgrade::{Accept, Origins, Reject, UpgradeHook};

/// Where the handler runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Dispatch {
    /// A pool of worker threads (the default). Every event of one connection goes to the
    /// same worker, so a connection's events stay in order; a slow handler delays only its
    /// worker's connections.
    #[default]
    Workers,
    /// On the reactor thread itself: no channel hop, the lowest latency. The handler must
    /// not block: while it runs, every connection of that reactor waits.
    Inline,
}

/// What happens to a message sent to a connection whose buffered bytes would pass
/// `max_backpressure`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Backpressure {
    /// Close the slow consumer with 1008, discarding what it has not read (the default).
    #[default]
    Close,
    /// Drop the message (the send returns `SendErrorKind::Backpressure`) and count it.
    Drop,
}

/// permessage-deflate (RFC 7692): whether it is offered back to clients that ask, and how.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Compression {
    /// Never negotiated; RSV1 from a client is a protocol error.
    Disabled,
    /// No context takeover either way (the default): one deflater and one inflater per
    /// reactor serve every connection, so a connection holds no compression memory. A
    /// message sent to many connections is compressed once per reactor.
    #[default]
    Shared,
    /// Context takeover (unless the client declines it) with LZ77 windows of at most
    /// `window_bits` (8–15): the best ratio for streams of similar messages, at about
    /// 340 KB per connection (measured with 200 connections, window 15; the codecs
    /// themselves hold 430 KB at most) once it has sent and received a compressed
    /// message. Fan-out is compressed once per recipient.
    Dedicated {
        /// Base-2 logarithm of the largest LZ77 window.
        window_bits: u8,
    },
}

/// Everything a [`Server`](crate::Server) is told at start.
///
/// ```
/// use std::time::Duration;
/// let config = wsloop::Config::default()
///     .addr("127.0.0.1:0")
///     .reactors(2)
///     .max_message_size(1 << 20)
///     .handshake_timeout(Duration::from_secs(5));
/// assert_eq!(config.get_reactors(), 2);
/// ```
#[derive(Clone)]
pub struct Config {
    pub(crate) addr: SocketAddr,
    pub(crate) reactors: usize,
    pub(crate) workers: usize,
    pub(crate) dispatch: Dispatch,
    pub(crate) max_message_size: usize,
    pub(crate) max_frame_size: Option<usize>,
    pub(crate) max_header_bytes: usize,
    pub(crate) max_connections: usize,
    pub(crate) handshake_timeout: Duration,
    pub(crate) close_timeout: Duration,
    pub(crate) worker_queue: usize,
    pub(crate) worker_queue_bytes: usize,
    pub(crate) fanout_queue_bytes: usize,
    pub(crate) max_backpressure: usize,
    pub(crate) backpressure: Backpressure,
    pub(crate) drain_events: bool,
    pub(crate) compression: Compression,
    pub(crate) compression_threshold: usize,
    pub(crate) compression_level: u32,
    pub(crate) max_topics_per_connection: usize,
    pub(crate) max_subscribers_per_topic: usize,
    pub(crate) idle_timeout: Option<Duration>,
    pub(crate) ping_interval: Option<Duration>,
    pub(crate) pong_timeout: Duration,
    pub(crate) backlog: i32,
    pub(crate) busy_poll: Duration,
    pub(crate) origins: Origins,
    pub(crate) allowed_hosts: Vec<String>,
    pub(crate) subprotocols: Vec<String>,
    pub(crate) on_upgrade: Option<UpgradeHook>,
    /// Plain HTTP routes (src/http/routes.rs has the setters).
    pub(crate) routes: crate::http::Routes,
    /// Whether the last `addr` given resolved.
    pub(crate) addr_resolved: bool,
    pub(crate) cluster: Option<crate::cluster::ClusterConfig>,
    pub(crate) tls: Option<crate::tls::TlsConfig>,
}

/// The longest duration a timeout or interval may be: 10 years.
pub const MAX_DURATION: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

impl Default for Config {
    fn default() -> Config {
        Config {
            addr: SocketAddr::from(([127, 0, 0, 1], 9001)),
            reactors: cores(),
            workers: cores(),
            dispatch: Dispatch::Workers,
            max_message_size: 64 << 10,
            max_frame_size: None,
            max_header_bytes: 8 << 10,
            max_connections: 1 << 20,
            handshake_timeout: Duration::from_secs(15),
            close_timeout: Duration::from_secs(5),
            worker_queue: 1024,
            worker_queue_bytes: 4 << 20,
            fanout_queue_bytes: 16 << 20,
            max_backpressure: 1 << 20,
            backpressure: Backpressure::Close,
            drain_events: false,
            compression: Compression::Shared,
            compression_threshold: 1024,
            compression_level: 1,
            max_topics_per_connection: 0,
            max_subscribers_per_topic: 0,
            idle_timeout: None,
            ping_interval: Some(Duration::from_secs(30)),
            pong_timeout: Duration::from_secs(10),
            backlog: 4096,
            busy_poll: Duration::ZERO,
            origins: Origins::SameHost,
            allowed_hosts: Vec::new(),
            subprotocols: Vec::new(),
            on_upgrade: None,
            routes: Default::default(),
            addr_resolved: true,
            cluster: None,
            tls: None,
        }
    }
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("addr", &self.addr)
            .field("reactors", &self.reactors)
            .field("workers", &self.workers)
            .field("dispatch", &self.dispatch)
            .field("max_message_size", &self.max_message_size)
            .field("max_frame_size", &self.frame_limit())
            .field("max_header_bytes", &self.max_header_bytes)
            .field("max_connections", &self.max_connections)
            .field("handshake_timeout", &self.handshake_timeout)
            .field("close_timeout", &self.close_timeout)
            .field("worker_queue", &self.worker_queue)
            .field("worker_queue_bytes", &self.worker_queue_bytes)
            .field("fanout_queue_bytes", &self.fanout_queue_bytes)
            .field("max_backpressure", &self.max_backpressure)
            .field("backpressure", &self.backpressure)
            .field("drain_events", &self.drain_events)
            .field("compression", &self.compression)
            .field("compression_threshold", &self.compression_threshold)
            .field("compression_level", &self.compression_level)
            .field("max_topics_per_connection", &self.max_topics_per_connection)
            .field("max_subscribers_per_topic", &self.max_subscribers_per_topic)
            .field("idle_timeout", &self.idle_timeout)
            .field("ping_interval", &self.ping_interval)
            .field("pong_timeout", &self.pong_timeout)
            .field("backlog", &self.backlog)
            .field("busy_poll", &self.busy_poll)
            .field("origins", &self.origins)
            .field("allowed_hosts", &self.allowed_hosts)
            .field("subprotocols", &self.subprotocols)
            .field("on_upgrade", &self.on_upgrade.is_some())
            .field("routes", &self.routes)
            .field("cluster", &self.cluster)
            .field("tls", &self.tls)
            .finish()
    }
}

impl Config {
    /// The address to listen on: what `ToSocketAddrs` takes (`"localhost:9001"`, a
    /// `SocketAddr`); a name with several addresses binds its first IPv4 one. Default
    /// `127.0.0.1:9001`; port 0 picks a free port (read it back with
    /// `Server::local_addr`). A name that does not resolve fails `validate`.
    pub fn addr(mut self, addr: impl std::net::ToSocketAddrs) -> Config {
        let resolved = crate::server::resolve(addr);
        self.addr_resolved = resolved.is_some();
        self.addr = resolved.unwrap_or(self.addr);
        self
    }

    /// Reactor threads, each with its own `SO_REUSEPORT` listener, poll and connections.
    /// Default: the number of cores. 1 to 256.
    pub fn reactors(mut self, n: usize) -> Config {
        self.reactors = n;
        self
    }

    /// Worker threads running the handler in [`Dispatch::Workers`]. Default: the number of
    /// cores.
    pub fn workers(mut self, n: usize) -> Config {
        self.workers = n;
        self
    }

    /// Where the handler runs. Default [`Dispatch::Workers`].
    pub fn dispatch(mut self, dispatch: Dispatch) -> Config {
        self.dispatch = dispatch;
        self
    }

    /// The largest message a peer may send, after reassembly; bigger closes with 1009.
    /// Default 64 KiB. A connection receiving a message holds up to this much memory.
    pub fn max_message_size(mut self, bytes: usize) -> Config {
        self.max_message_size = bytes;
        self
    }

    /// The largest frame a peer may send; bigger closes with 1009. Default: equal to
    /// `max_message_size`.
    pub fn max_frame_size(mut self, bytes: usize) -> Config {
        self.max_frame_size = Some(bytes);
        self
    }

    /// The largest HTTP request head; bigger is answered 431. Default 8 KiB, which is also
    /// the most a connection holds while its handshake is in progress.
    pub fn max_header_bytes(mut self, bytes: usize) -> Config {
        self.max_header_bytes = bytes;
        self
    }

    /// Open connections (handshaking or open) the server holds at most; past it new
    /// connections are answered 503. Default 2^20.
    pub fn max_connections(mut self, n: usize) -> Config {
        self.max_connections = n;
        self
    }

    /// How long a client has to complete its handshake before the socket is closed
    /// (slowloris protection). Default 15 s. Like every timeout here, counted in 100 ms
    /// ticks: it never fires early, and fires at most one tick late.
    pub fn handshake_timeout(mut self, timeout: Duration) -> Config {
        self.handshake_timeout = timeout;
        self
    }

    /// How long to wait for the peer's answer to a close frame before dropping TCP.
    /// Default 5 s. Never fires early, at most one 100 ms tick late.
    pub fn close_timeout(mut self, timeout: Duration) -> Config {
        self.close_timeout = timeout;
        self
    }

    /// Event batches a worker's channel holds before its reactor stops reading from that
    /// worker's connections (TCP flow control then slows their senders). Default 1024.
    pub fn worker_queue(mut self, batches: usize) -> Config {
        self.worker_queue = batches;
        self
    }

    /// Bytes of events that may wait for one worker (or for the plain receiver of
    /// [`Server::start_with_events`](crate::Server::start_with_events)), each counted at
    /// its memory cost (a message: its payload plus about 100 bytes) from the moment a
    /// reactor reads it until it has been handled. Past it, the reactors stop reading
    /// that worker's connections until it catches up, so a flood of messages costs at
    /// most this (plus what one read of 64 KiB decodes to) whatever the backpressure
    /// policy. Default 4 MiB.
    pub fn worker_queue_bytes(mut self, bytes: usize) -> Config {
        self.worker_queue_bytes = bytes;
        self
    }

    /// Bytes of fan-out (publish, broadcast, send_many) that may wait for one reactor to
    /// apply it. A producer that publishes faster than the reactor can frame gets its
    /// messages dropped (counted in `Stats::messages_dropped`) past this. Default 16 MiB.
    pub fn fanout_queue_bytes(mut self, bytes: usize) -> Config {
        self.fanout_queue_bytes = bytes;
        self
    }

    /// Memory that may be held for one connection (frames in the command channel and in
    /// its write queue) before [`Backpressure`] applies. Default 1 MiB; this bounds what
    /// a connection that does not read can cost. At most 2^31. Every frame counts at its
    /// length plus 64 bytes (its queue slot and allocation), control frames included, so
    /// a flood of tiny messages or pings is bounded by the same figure.
    pub fn max_backpressure(mut self, bytes: usize) -> Config {
        self.max_backpressure = bytes;
        self
    }

    /// What happens past `max_backpressure`. Default [`Backpressure::Close`].
    pub fn backpressure(mut self, policy: Backpressure) -> Config {
        self.backpressure = policy;
        self
    }

    /// Deliver `Event::Drain` (`Handler::on_drain`) once everything buffered for a
    /// connection has been written, when either its socket had refused part of its queue,
    /// or a producer was told bytes were buffered (`Handle::buffered` answered more than 0,
    /// or a send was refused for backpressure). So a producer that pauses on `buffered` is
    /// always woken. Default off.
    pub fn drain_events(mut self, on: bool) -> Config {
        self.drain_events = on;
        self
    }

    /// permessage-deflate mode. Default [`Compression::Shared`]: clients that offer it
    /// (every browser does) get compressed messages at no memory cost per connection.
    pub fn compression(mut self, compression: Compression) -> Config {
        self.compression = compression;
        self
    }

    /// Messages shorter than this many bytes are sent uncompressed even where compression
    /// was negotiated (compressing them costs more than it saves). Default 1024.
    pub fn compression_threshold(mut self, bytes: usize) -> Config {
        self.compression_threshold = bytes;
        self
    }

    /// zlib level, 0 (store) to 9 (smallest). Default 1: the fastest that still
    /// compresses, since the reactor compresses on its own thread.
    pub fn compression_level(mut self, level: u32) -> Config {
        self.compression_level = level;
        self
    }

    /// Topics one connection may be in at once; 0 (the default) sets no limit. Each
    /// membership costs about 40 bytes.
    pub fn max_topics_per_connection(mut self, n: usize) -> Config {
        self.max_topics_per_connection = n;
        self
    }

    /// Members one topic may have; 0 (the default) sets no limit.
    pub fn max_subscribers_per_topic(mut self, n: usize) -> Config {
        self.max_subscribers_per_topic = n;
        self
    }

    /// Close (1001) connections that send no message for this long. Default: none.
    /// Pings and pongs do not count as messages. Never fires early, at most one 100 ms
    /// tick late.
    pub fn idle_timeout(mut self, timeout: Option<Duration>) -> Config {
        self.idle_timeout = timeout;
        self
    }

    /// Ping a connection that has been silent this long. Default 30 s; `None` sends no
    /// pings. The ping is never early, at most one 100 ms tick late.
    pub fn ping_interval(mut self, interval: Option<Duration>) -> Config {
        self.ping_interval = interval;
        self
    }

    /// After a ping, how long the peer has to send anything (a pong, or any frame) before
    /// the connection is dropped as dead. Default 10 s. A dead peer's `Disconnect` comes
    /// no sooner than `ping_interval + pong_timeout` after its last sign of life, and at
    /// most 200 ms (a tick for each timer) later.
    pub fn pong_timeout(mut self, timeout: Duration) -> Config {
        self.pong_timeout = timeout;
        self
    }

    /// How long a reactor keeps polling without sleeping after a poll that brought
    /// events. Default zero: it sleeps at once. A thread woken from sleep takes tens of
    /// microseconds to run again (on a virtual machine, about 40 µs: most of a loopback
    /// round trip at low load); a reactor still polling sees the next message at once.
    /// The price is CPU: a reactor whose connections send more often than this window
    /// never sleeps. An empty poll in the window yields the core first, so a worker
    /// sharing it still runs.
    pub fn busy_poll(mut self, window: Duration) -> Config {
        self.busy_poll = window;
        self
    }

    /// The listen backlog of each listener. Default 4096 (the kernel caps it at
    /// `net.core.somaxconn`).
    pub fn backlog(mut self, backlog: i32) -> Config {
        self.backlog = backlog;
        self
    }

    /// Which browser origins may connect. Default [`Origins::SameHost`]: a browser's
    /// `Origin` must name the request's `Host`. That stops other sites' pages, but not DNS
    /// rebinding, where the attacker's name resolves to this server and both headers name
    /// it; to close that too, name the hosts the server answers to in
    /// [`Config::allowed_hosts`].
    pub fn origins(mut self, origins: Origins) -> Config {
        self.origins = origins;
        self
    }

    /// The `Host` values the server answers to (`example.com` matches any port,
    /// `example.com:443` only that one; compared case-insensitively); any other gets 403.
    /// Default: empty, every host is answered.
    pub fn allowed_hosts<I, S>(mut self, hosts: I) -> Config
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.allowed_hosts = hosts.into_iter().map(Into::into).collect();
        self
    }

    /// Subprotocols the server speaks, in preference order; the first the client also
    /// offers is chosen. Default: none (no `Sec-WebSocket-Protocol` in the answer).
    pub fn subprotocols<I, S>(mut self, protocols: I) -> Config
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.subprotocols = protocols.into_iter().map(Into::into).collect();
        self
    }

    /// A function that sees every upgrade request (after the RFC and origin checks) and
    /// accepts it, possibly attaching user data, or rejects it with a status.
    pub fn on_upgrade<F>(mut self, hook: F) -> Config
    where
        F: Fn(&Request) -> Result<Accept, Reject> + Send + Sync + 'static,
    {
        self.on_upgrade = Some(Arc::new(hook));
        self
    }

    /// The configured number of reactors.
    pub fn get_reactors(&self) -> usize {
        self.reactors
    }

    /// Joins a cluster of nodes through Redis pub/sub: publishes, broadcasts, sends and
    /// closes reach every node (see [`ClusterConfig`](crate::ClusterConfig) and the
    /// failure semantics in its module docs). Default: none, a standalone server.
    pub fn cluster(mut self, cluster: crate::cluster::ClusterConfig) -> Config {
        self.cluster = Some(cluster);
        self
    }

    /// Serves `wss://`: every connection on the port speaks TLS first (see
    /// [`TlsConfig`](crate::TlsConfig)). Default: none, plain `ws://`. Costs each
    /// connection rustls's keys and state, about 2 to 3 KiB, and nothing while idle
    /// besides; each reactor keeps about 100 KiB of shared buffers.
    pub fn tls(mut self, tls: crate::tls::TlsConfig) -> Config {
        self.tls = Some(tls);
        self
    }

    /// The configured listen address.
    pub fn get_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Every duration must fit the timer wheel (whole ticks in 32 bits, about 13 years).
    fn validate_durations(&self) -> Result<(), ConfigError> {
        let named = [
            ("handshake_timeout", Some(self.handshake_timeout)),
            ("close_timeout", Some(self.close_timeout)),
            ("idle_timeout", self.idle_timeout),
            ("ping_interval", self.ping_interval),
            ("pong_timeout", Some(self.pong_timeout)),
            ("busy_poll", Some(self.busy_poll)),
        ];
        for (name, duration) in named {
            if let Some(d) = duration
                && d > MAX_DURATION
            {
                return Err(ConfigError::Duration(name));
            }
        }
        Ok(())
    }

    pub(crate) fn frame_limit(&self) -> usize {
        self.max_frame_size.unwrap_or(self.max_message_size)
    }

    /// Checks every field; `Server::start` calls this.
    ///
    /// # Errors
    /// The first field out of range.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !self.addr_resolved {
            return Err(ConfigError::Addr);
        }
        if !(1..=256).contains(&self.reactors) {
            return Err(ConfigError::Reactors(self.reactors));
        }
        if self.dispatch == Dispatch::Workers && self.workers == 0 {
            return Err(ConfigError::Workers(self.workers));
        }
        if self.max_message_size == 0 {
            return Err(ConfigError::MaxMessageSize(self.max_message_size));
        }
        let frame = self.frame_limit();
        if frame == 0 || frame > self.max_message_size {
            return Err(ConfigError::MaxFrameSize(frame));
        }
        if self.max_header_bytes < 256 {
            return Err(ConfigError::MaxHeaderBytes(self.max_header_bytes));
        }
        if self.max_connections == 0 || self.max_connections / self.reactors > u32::MAX as usize {
            return Err(ConfigError::MaxConnections(self.max_connections));
        }
        if self.worker_queue == 0 {
            return Err(ConfigError::WorkerQueue(self.worker_queue));
        }
        if self.worker_queue_bytes == 0 {
            return Err(ConfigError::WorkerQueueBytes(self.worker_queue_bytes));
        }
        self.validate_durations()?;
        if self.compression_level > 9 {
            return Err(ConfigError::CompressionLevel(self.compression_level));
        }
        if let Compression::Dedicated { window_bits } = self.compression
            && !(8..=15).contains(&window_bits)
        {
            return Err(ConfigError::WindowBits(window_bits));
        }
        if self.max_backpressure == 0 || self.max_backpressure > 1 << 31 {
            return Err(ConfigError::MaxBackpressure(self.max_backpressure));
        }
        if let Some(cluster) = &self.cluster {
            cluster.validate().map_err(ConfigError::Cluster)?;
        }
        if let Some(bytes) = self.tls.as_ref().and_then(|tls| tls.get_max_fragment_size())
            && !crate::tls::FRAGMENT_SIZES.contains(&bytes)
        {
            return Err(ConfigError::TlsFragmentSize(bytes));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        assert_eq!(Config::default().validate(), Ok(()));
    }

    #[test]
    fn out_of_range_fields_are_named() {
        assert_eq!(Config::default().reactors(0).validate(), Err(ConfigError::Reactors(0)));
        assert_eq!(Config::default().reactors(257).validate(), Err(ConfigError::Reactors(257)));
        assert_eq!(
            Config::default().max_message_size(10).max_frame_size(11).validate(),
            Err(ConfigError::MaxFrameSize(11))
        );
        assert_eq!(
            Config::default().max_header_bytes(10).validate(),
            Err(ConfigError::MaxHeaderBytes(10))
        );
        assert_eq!(Config::default().dispatch(Dispatch::Inline).workers(0).validate(), Ok(()));
        assert_eq!(
            Config::default().close_timeout(Duration::MAX).validate(),
            Err(ConfigError::Duration("close_timeout"))
        );
        assert_eq!(Config::default().close_timeout(MAX_DURATION).validate(), Ok(()));
        assert_eq!(
            Config::default().busy_poll(Duration::MAX).validate(),
            Err(ConfigError::Duration("busy_poll"))
        );
        assert_eq!(
            Config::default().worker_queue_bytes(0).validate(),
            Err(ConfigError::WorkerQueueBytes(0))
        );
    }
}
