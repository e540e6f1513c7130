//! The checks behind wsloop's fuzz targets, one module per target.
//!
//! Each module's `run(data)` takes the raw fuzzer input, drives one part of the sans-IO
//! core (`wsloop::protocol`, or one connection's `Session`) with it and panics when an invariant breaks; the
//! binaries in `fuzz_targets/` only hand libFuzzer's input to it. Keeping the checks in
//! a library lets `tests/seeds.rs` replay the committed corpora as plain tests on stable.
//!
//! Memory bounds are checked with [`alloc`], a counting global allocator installed for
//! every binary that links this crate.

#![deny(missing_docs)]

pub mod alloc;
pub mod deflate;
pub mod frame_decoder;
pub mod handshake_request;
pub mod handshake_response;
pub mod session;
mod input;

/// A fuzz target: its name (its binary, and its directory under `corpus/`) and the
/// function that checks one input.
pub type Target = (&'static str, fn(&[u8]));

/// Every fuzz target.
pub const TARGETS: &[Target] = &[
    ("frame_decoder", frame_decoder::run),
    ("handshake_request", handshake_request::run),
    ("deflate", deflate::run),
    ("handshake_response", handshake_response::run),
    ("session", session::run),
];
