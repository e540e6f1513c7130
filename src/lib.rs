//! wsloop: a WebSocket server core on plain threads and mio.
#![deny(missing_docs)]
#![deny(unsafe_code)]

pub mod protocol;
