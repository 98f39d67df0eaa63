#![no_main]
//! Arbitrary bytes as an upstream response head: no panic, ranges inside the head, and the same
//! answer from the head alone.

use pyrogate::h1::{Limits, parse_response};

const LIMITS: Limits = Limits {
    max_head_bytes: 4096,
    max_headers: 32,
};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some((&flags, data)) = data.split_first() else {
        return;
    };
    let request_was_head = flags & 1 == 1;
    if let Ok(Some(head)) = parse_response(data, &LIMITS, request_was_head) {
        assert!(head.head_len <= data.len() && head.head_len <= LIMITS.max_head_bytes);
        let within = |r: &std::ops::Range<usize>| r.start <= r.end && r.end <= head.head_len;
        assert!(within(&head.reason));
        if let Some(content_type) = &head.content_type {
            assert!(within(content_type));
        }
        assert_eq!(
            parse_response(&data[..head.head_len], &LIMITS, request_was_head),
            Ok(Some(head))
        );
    }
});
