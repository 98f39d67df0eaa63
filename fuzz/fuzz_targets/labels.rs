#![no_main]
// Filled in by the labels work.
libfuzzer_sys::fuzz_target!(|_data: &[u8]| {});
