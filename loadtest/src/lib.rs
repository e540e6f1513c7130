//! wsloop-loadtest: the bundled WebSocket load generator of wsloop.
//!
//! Threads of `mio::Poll` loops, no async runtime, HdrHistogram figures. The pieces:
//!
//! - [`cli`]: subcommands and options, validated into a [`spec::RunSpec`].
//! - [`engine`]: one generator thread: sockets, handshake, frames (through
//!   `wsloop::protocol`), batching, saturation metering; [`tls`] for `wss://` (rustls) and
//!   [`compress`] for permessage-deflate (`wsloop::protocol::deflate`). Scenarios plug in as a
//!   [`engine::Driver`].
//! - [`scenario`]: `echo`, `rate`, `connect`, `hold`, `broadcast`, `churn`, `send`.
//! - [`coord`] and [`procs`]: threads and worker processes kept in step; results merged.
//! - [`stats`], [`report`], [`plot`], [`progress`], [`csv`], [`hgrm`]: figures, the table and
//!   JSON, the SVG, the live line, the per-second CSV, the HdrHistogram percentile text.
//! - [`session`], [`pattern`]: headers, subprotocols, `--on-open`, payload templates.
//! - [`threshold`], [`verdict`]: `--threshold` conditions, health checks, exit codes.
//! - [`suite`]: the benchmark suite (`wsloop-loadtest suite`).
//! - [`sink`]: a discard/echo/broadcast server to measure the generator itself.
#![deny(missing_docs)]
#![deny(unsafe_code)]

pub mod axis;
pub mod cli;
pub mod clock;
pub mod compress;
pub mod coord;
pub mod csv;
pub mod engine;
pub mod hgrm;
pub mod limits;
pub mod pattern;
pub mod payload;
pub mod plot;
pub mod procs;
pub mod progress;
pub mod proto;
pub mod report;
pub mod rng;
pub mod rss;
pub mod scenario;
pub mod session;
pub mod shared;
pub mod sink;
pub mod spec;
pub mod stats;
pub mod suite;
pub mod target;
pub mod threshold;
pub mod tls;
pub mod verdict;
