#![no_main]
// Filled in by the config work.
libfuzzer_sys::fuzz_target!(|_data: &[u8]| {});
