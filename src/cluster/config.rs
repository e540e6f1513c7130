//! How a server joins a cluster: the Redis address, this node's id, and the link's bounds.

use std::fmt;
use std::time::Duration;

use crate::event::MAX_NODE_ID;

/// Joins a server to a cluster through Redis pub/sub; give it to
/// [`Config::cluster`](crate::Config::cluster).
///
/// ```
/// use std::time::Duration;
/// let cluster = wsloop::ClusterConfig::new("redis://127.0.0.1:6379")
///     .node_id(7)
///     .unsubscribe_delay(Duration::from_secs(1));
/// let config = wsloop::Config::default().cluster(cluster);
/// assert!(config.validate().is_ok());
/// ```
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    pub(crate) url: String,
    pub(crate) node_id: Option<u32>,
    pub(crate) unsubscribe_delay: Duration,
    pub(crate) queue_bytes: usize,
    pub(crate) reconnect_min: Duration,
    pub(crate) reconnect_max: Duration,
    pub(crate) connect_timeout: Duration,
    pub(crate) ping_interval: Duration,
    pub(crate) subscribe_batch: usize,
    pub(crate) channel_prefix: String,
    pub(crate) events_capacity: usize,
}

/// A [`ClusterConfig`] field out of range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClusterConfigError {
    /// The URL is not `redis://HOST:PORT` (no user, password, database or TLS yet).
    Url,
    /// The node id must be 1 to [`MAX_NODE_ID`](crate::MAX_NODE_ID).
    NodeId(u32),
    /// `queue_bytes` must be at least 64 KiB.
    QueueBytes(usize),
    /// `subscribe_batch` must be 1 to 100,000.
    SubscribeBatch(usize),
    /// `events_capacity` must be at least 1.
    EventsCapacity(usize),
    /// Reconnect delays, connect timeout and ping interval must be non-zero, with
    /// `reconnect_min <= reconnect_max`, and at most 1 hour.
    Durations,
}

impl fmt::Display for ClusterConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClusterConfigError::Url => f.write_str("cluster URL must be redis://HOST:PORT"),
            ClusterConfigError::NodeId(n) => write!(f, "node id {n} must be 1..={MAX_NODE_ID}"),
            ClusterConfigError::QueueBytes(n) => {
                write!(f, "cluster queue_bytes = {n}, must be at least 65536")
            }
            ClusterConfigError::SubscribeBatch(n) => {
                write!(f, "cluster subscribe_batch = {n}, must be 1..=100000")
            }
            ClusterConfigError::EventsCapacity(n) => {
                write!(f, "cluster events_capacity = {n}, must be at least 1")
            }
            ClusterConfigError::Durations => f.write_str(
                "cluster reconnect delays, connect timeout and ping interval must be 1 ms..1 h, \
                 reconnect_min <= reconnect_max",
            ),
        }
    }
}

impl std::error::Error for ClusterConfigError {}

impl ClusterConfig {
    /// Joins the cluster whose nodes all use the Redis at `url` (`redis://HOST:PORT`).
    pub fn new(url: impl Into<String>) -> ClusterConfig {
        ClusterConfig {
            url: url.into(),
            node_id: None,
            unsubscribe_delay: Duration::from_secs(2),
            queue_bytes: 16 << 20,
            reconnect_min: Duration::from_millis(100),
            reconnect_max: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(2),
            ping_interval: Duration::from_secs(5),
            subscribe_batch: 500,
            channel_prefix: "wsloop:".to_owned(),
            events_capacity: 4096,
        }
    }

    /// This node's id (1 to [`MAX_NODE_ID`](crate::MAX_NODE_ID)); every [`ConnId`](crate::ConnId)
    /// of this server carries it. Default: drawn at random at start (two nodes with the
    /// same id would take each other's messages for their own: give fixed ids when you
    /// run more than a few hundred nodes).
    pub fn node_id(mut self, id: u32) -> ClusterConfig {
        self.node_id = Some(id);
        self
    }

    /// How long a topic stays subscribed in Redis after its last local member left (a
    /// member that comes back meanwhile costs no Redis traffic). Default 2 s.
    pub fn unsubscribe_delay(mut self, delay: Duration) -> ClusterConfig {
        self.unsubscribe_delay = delay;
        self
    }

    /// Bytes of publishes, broadcasts and direct sends waiting for Redis (while it is
    /// slow or down) before further ones are refused with
    /// [`PublishErrorKind::QueueFull`](crate::PublishErrorKind::QueueFull). The link
    /// holds at most this much again in its write buffer. Default 16 MiB.
    pub fn queue_bytes(mut self, bytes: usize) -> ClusterConfig {
        self.queue_bytes = bytes;
        self
    }

    /// The first and the longest wait between reconnect attempts; each failure doubles
    /// the wait, and each wait is drawn at random from its upper half (jitter, so nodes
    /// do not reconnect in step). Default 100 ms and 5 s.
    pub fn reconnect_delays(mut self, min: Duration, max: Duration) -> ClusterConfig {
        self.reconnect_min = min;
        self.reconnect_max = max;
        self
    }

    /// How long a connection attempt may take. Default 2 s.
    pub fn connect_timeout(mut self, timeout: Duration) -> ClusterConfig {
        self.connect_timeout = timeout;
        self
    }

    /// How often the link pings Redis; three intervals without a byte from Redis and
    /// the link is taken for dead and reconnected. Default 5 s.
    pub fn ping_interval(mut self, interval: Duration) -> ClusterConfig {
        self.ping_interval = interval;
        self
    }

    /// Channels per SUBSCRIBE command when resubscribing after a reconnect. Default 500.
    pub fn subscribe_batch(mut self, n: usize) -> ClusterConfig {
        self.subscribe_batch = n;
        self
    }

    /// The prefix of every Redis channel this cluster uses, so clusters can share one
    /// Redis. Default `wsloop:`.
    pub fn channel_prefix(mut self, prefix: impl Into<String>) -> ClusterConfig {
        self.channel_prefix = prefix.into();
        self
    }

    /// How many [`ClusterEvent`](crate::ClusterEvent)s wait for the application before
    /// further ones are dropped and counted. Default 4096.
    pub fn events_capacity(mut self, n: usize) -> ClusterConfig {
        self.events_capacity = n;
        self
    }

    /// `HOST:PORT` from the URL.
    pub(crate) fn host_port(&self) -> Option<&str> {
        let rest = self.url.strip_prefix("redis://")?;
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        let (host, port) = rest.rsplit_once(':')?;
        let valid = !host.is_empty() && !host.contains(['@', '/']) && port.parse::<u16>().is_ok();
        valid.then_some(rest)
    }

    /// Checks every field.
    ///
    /// # Errors
    /// The first field out of range.
    pub fn validate(&self) -> Result<(), ClusterConfigError> {
        if self.host_port().is_none() {
            return Err(ClusterConfigError::Url);
        }
        if let Some(id) = self.node_id
            && !(1..=MAX_NODE_ID).contains(&id)
        {
            return Err(ClusterConfigError::NodeId(id));
        }
        if self.queue_bytes < 64 << 10 {
            return Err(ClusterConfigError::QueueBytes(self.queue_bytes));
        }
        if !(1..=100_000).contains(&self.subscribe_batch) {
            return Err(ClusterConfigError::SubscribeBatch(self.subscribe_batch));
        }
        if self.events_capacity == 0 {
            return Err(ClusterConfigError::EventsCapacity(self.events_capacity));
        }
        let ok = |d: Duration| d >= Duration::from_millis(1) && d <= Duration::from_secs(3600);
        let all =
            [self.reconnect_min, self.reconnect_max, self.connect_timeout, self.ping_interval];
        if !all.into_iter().all(ok) || self.reconnect_min > self.reconnect_max {
            return Err(ClusterConfigError::Durations);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_ranges() {
        assert_eq!(ClusterConfig::new("redis://127.0.0.1:6379").validate(), Ok(()));
        assert_eq!(ClusterConfig::new("redis://h:1/").host_port(), Some("h:1"));
        assert_eq!(ClusterConfig::new("redis://[::1]:6379").host_port(), Some("[::1]:6379"));
        for bad in
            ["127.0.0.1:6379", "redis://h", "redis://u:p@h:1", "redis://h:99999", "rediss://h:1"]
        {
            assert_eq!(ClusterConfig::new(bad).validate(), Err(ClusterConfigError::Url), "{bad}");
        }
        let c = || ClusterConfig::new("redis://h:1");
        assert_eq!(c().node_id(0).validate(), Err(ClusterConfigError::NodeId(0)));
        assert_eq!(c().node_id(MAX_NODE_ID).validate(), Ok(()));
        assert_eq!(c().queue_bytes(10).validate(), Err(ClusterConfigError::QueueBytes(10)));
        let (long, short) = (Duration::from_secs(2), Duration::from_secs(1));
        assert_eq!(
            c().reconnect_delays(long, short).validate(),
            Err(ClusterConfigError::Durations)
        );
    }
}
