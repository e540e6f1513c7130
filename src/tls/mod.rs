//! TLS (`wss://`) with rustls and its ring provider, on the reactor: [`TlsConfig`] is the
//! setting, `state` one connection's TLS as the reactor drives it (server role, and the
//! client role for outgoing connections).

mod client;
mod config;
mod state;

pub(crate) use client::{ClientTls, ClientTlsError};
pub(crate) use config::FRAGMENT_SIZES;
pub use config::{TlsConfig, TlsError};
pub(crate) use state::{Received, TlsScratch, TlsState};
