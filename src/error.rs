//! Errors of the public API. Each variant says who is at fault and what to do.

use std::fmt;
use std::io;
use std::net::SocketAddr;

use crate::event::Message;

/// Starting a server failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The configuration is inconsistent; fix the named field.
    Config(ConfigError),
    /// A listener could not be bound (address in use, no permission...).
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// What the OS said.
        source: io::Error,
    },
    /// The OS refused a poll instance, a waker or a thread.
    Io(io::Error),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Config(e) => write!(f, "invalid configuration: {e}"),
            Error::Bind { addr, source } => write!(f, "cannot bind {addr}: {source}"),
            Error::Io(e) => write!(f, "cannot start server: {e}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Config(e) => Some(e),
            Error::Bind { source, .. } => Some(source),
            Error::Io(e) => Some(e),
        }
    }
}

impl From<ConfigError> for Error {
    fn from(e: ConfigError) -> Error {
        Error::Config(e)
    }
}

/// A [`Config`](crate::Config) field out of range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigError {
    /// `reactors` must be 1 to 256 (the reactor index is 8 bits of a `ConnId`).
    Reactors(usize),
    /// `workers` must be at least 1 in worker-pool dispatch.
    Workers(usize),
    /// `max_message_size` must be at least 1 byte.
    MaxMessageSize(usize),
    /// `max_frame_size` must be 1 to `max_message_size`.
    MaxFrameSize(usize),
    /// `max_header_bytes` must be at least 256 bytes.
    MaxHeaderBytes(usize),
    /// `max_connections` must be 1 to 2^32 per reactor.
    MaxConnections(usize),
    /// `worker_queue` must be at least 1.
    WorkerQueue(usize),
    /// `worker_queue_bytes` must be at least 1.
    WorkerQueueBytes(usize),
    /// The named duration is longer than [`MAX_DURATION`](crate::MAX_DURATION).
    Duration(&'static str),
    /// `max_backpressure` must be 1 byte to 2 GiB.
    MaxBackpressure(usize),
    /// A [`ClusterConfig`](crate::ClusterConfig) field is out of range.
    Cluster(crate::ClusterConfigError),
    /// `compression_level` must be 0 to 9.
    CompressionLevel(u32),
    /// `Compression::Dedicated { window_bits }` must be 8 to 15.
    WindowBits(u8),
    /// `addr` named a host that resolved to no address.
    Addr,
    /// `TlsConfig::max_fragment_size` must be 32 to 16384 bytes.
    TlsFragmentSize(usize),
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Reactors(n) => write!(f, "reactors = {n}, must be 1..=256"),
            ConfigError::Workers(n) => write!(f, "workers = {n}, must be at least 1"),
            ConfigError::MaxMessageSize(n) => write!(f, "max_message_size = {n}, must be > 0"),
            ConfigError::MaxFrameSize(n) => {
                write!(f, "max_frame_size = {n}, must be 1..=max_message_size")
            }
            ConfigError::MaxHeaderBytes(n) => write!(f, "max_header_bytes = {n}, must be >= 256"),
            ConfigError::MaxConnections(n) => write!(f, "max_connections = {n}, out of range"),
            ConfigError::WorkerQueue(n) => write!(f, "worker_queue = {n}, must be at least 1"),
            ConfigError::WorkerQueueBytes(n) => {
                write!(f, "worker_queue_bytes = {n}, must be at least 1")
            }
            ConfigError::Duration(name) => write!(f, "{name} is longer than 10 years"),
            ConfigError::CompressionLevel(n) => write!(f, "compression_level = {n}, must be 0..=9"),
            ConfigError::WindowBits(n) => write!(f, "window_bits = {n}, must be 8..=15"),
            ConfigError::Addr => f.write_str("addr does not resolve to any address"),
            ConfigError::MaxBackpressure(n) => {
                write!(f, "max_backpressure = {n}, must be 1..=2^31")
            }
            ConfigError::Cluster(e) => write!(f, "{e}"),
            ConfigError::TlsFragmentSize(n) => {
                write!(f, "tls max_fragment_size = {n}, must be 32..=16384")
            }
        }
    }
}

impl std::error::Error for ConfigError {}

/// Why a [`Handle`](crate::Handle) command was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SendErrorKind {
    /// The id never named a connection of this server, or its connection has closed
    /// (ids are never reused: a closed connection's id stays invalid).
    UnknownConnection,
    /// The connection is closing; it takes no more messages.
    Closing,
    /// The server has shut down.
    ServerStopped,
    /// The connection already has `max_backpressure` bytes waiting; under
    /// `Backpressure::Close` it is now being closed as a slow consumer.
    Backpressure,
    /// The id is on another node and the queue to Redis is full (Redis is down or slow).
    ClusterUnavailable,
    /// A client connection is down and its offline queue is full
    /// (`ClientOptions::offline_queue_bytes`).
    OfflineQueueFull,
}

/// A refused send; the message is handed back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendError {
    /// Why it was refused.
    pub kind: SendErrorKind,
    /// The message that was not sent.
    pub message: Message,
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = match self.kind {
            SendErrorKind::UnknownConnection => "unknown or closed connection",
            SendErrorKind::Closing => "connection is closing",
            SendErrorKind::ServerStopped => "server stopped",
            SendErrorKind::Backpressure => "connection over max_backpressure",
            SendErrorKind::ClusterUnavailable => "cluster queue full",
            SendErrorKind::OfflineQueueFull => "client connection down and its offline queue full",
        };
        f.write_str(text)
    }
}

impl std::error::Error for SendError {}

/// Why a [`Handle::close`](crate::Handle::close) was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CloseError {
    /// Unknown id, or a connection that already closed.
    UnknownConnection,
    /// The code may not be sent on the wire (1005, 1006, 1015, or outside the ranges).
    InvalidCode(u16),
    /// The reason is over 123 bytes (a close payload is at most 125 bytes).
    ReasonTooLong,
    /// The server has shut down.
    ServerStopped,
    /// The id is on another node and the queue to Redis is full (Redis is down or slow).
    ClusterUnavailable,
}

impl fmt::Display for CloseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CloseError::UnknownConnection => f.write_str("unknown or closed connection"),
            CloseError::InvalidCode(c) => write!(f, "close code {c} may not be sent"),
            CloseError::ReasonTooLong => f.write_str("close reason over 123 bytes"),
            CloseError::ServerStopped => f.write_str("server stopped"),
            CloseError::ClusterUnavailable => f.write_str("cluster queue full"),
        }
    }
}

impl std::error::Error for CloseError {}
