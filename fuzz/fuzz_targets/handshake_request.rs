//! libFuzzer entry point; the checks are in `wsloop_fuzz::handshake_request`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| wsloop_fuzz::handshake_request::run(data));
