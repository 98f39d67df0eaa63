#![no_main]
// Filled in by the chunked work.
libfuzzer_sys::fuzz_target!(|_data: &[u8]| {});
