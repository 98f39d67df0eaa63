//! Fuzz target for the configuration front end: arbitrary text (UTF-8, or bytes converted
//! lossily) goes through `load_str` and `format_source`; neither may panic. When formatting
//! succeeds, formatting its output again must succeed and change nothing.
#![no_main]

use pyrogate::config::{Environment, format_source, load_str};

struct FuzzEnv;

impl Environment for FuzzEnv {
    fn var(&self, name: &str) -> Option<String> {
        (name == "SET").then(|| "value".to_string())
    }
    fn hostname(&self) -> String {
        "fuzz-host".to_string()
    }
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = load_str("fuzz.alloy", &text, &FuzzEnv);
    if let Ok(once) = format_source("fuzz.alloy", &text) {
        let twice = format_source("fuzz.alloy", &once).expect("formatted output parses");
        assert_eq!(once, twice, "formatting is idempotent");
    }
});
