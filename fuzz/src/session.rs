//! One connection's life (the library's sans-IO `Session`, both roles) driven by the
//! input: bytes from the peer, commands, partial writes and time steps. The checks live
//! next to the state machine, in the library's `session::fuzz` driver: bounded memory,
//! valid frames and close codes in what it writes, and `Connect` / `Disconnect` order.

/// Checks one input.
pub fn run(data: &[u8]) {
    wsloop::fuzz_session(data);
}
