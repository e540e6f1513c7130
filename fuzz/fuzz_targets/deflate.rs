//! libFuzzer entry point; the checks are in `wsloop_fuzz::deflate`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| wsloop_fuzz::deflate::run(data));
