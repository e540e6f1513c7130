//! libFuzzer entry point; the checks are in `wsloop_fuzz::handshake_response`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| wsloop_fuzz::handshake_response::run(data));
