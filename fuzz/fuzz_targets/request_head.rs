#![no_main]
// Filled in by the request_head work.
libfuzzer_sys::fuzz_target!(|_data: &[u8]| {});
