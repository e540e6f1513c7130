//! libFuzzer entry point; the checks are in `wsloop_fuzz::frame_decoder`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| wsloop_fuzz::frame_decoder::run(data));
