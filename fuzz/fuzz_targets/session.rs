//! libFuzzer entry point; the checks are in `wsloop_fuzz::session`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| wsloop_fuzz::session::run(data));
