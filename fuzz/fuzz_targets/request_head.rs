#![no_main]
//! Arbitrary bytes as a request head: no panic, every range inside the head, and the cheap
//! end-of-head scan agreeing with the parser however the bytes were split.

use pyrogate::h1::{Limits, find_head_end, parse_request};

const LIMITS: Limits = Limits {
    max_head_bytes: 4096,
    max_headers: 32,
};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let end = find_head_end(data, 0);
    if let Some(end) = end {
        assert!(end <= data.len());
    }
    // Rescanning from any earlier point that had not found the end finds the same end.
    let split = data.first().map_or(0, |&b| usize::from(b)).min(data.len());
    if find_head_end(&data[..split], 0).is_none() {
        assert_eq!(find_head_end(data, split), end);
    }

    if let Ok(Some(head)) = parse_request(data, &LIMITS) {
        assert!(head.head_len <= data.len() && head.head_len <= LIMITS.max_head_bytes);
        assert!(head.headers.len() <= LIMITS.max_headers);
        let within = |r: &std::ops::Range<usize>| r.start <= r.end && r.end <= head.head_len;
        assert!(within(&head.target) && within(&head.path));
        assert!(head.path.start == head.target.start && head.path.end <= head.target.end);
        if let Some(query) = &head.query {
            assert!(
                within(query) && query.start == head.path.end + 1 && query.end == head.target.end
            );
        }
        for field in &head.headers {
            assert!(within(&field.name) && within(&field.value));
        }
        // The first blank line the scan finds is never past the parsed head.
        assert!(matches!(end, Some(e) if e <= head.head_len));
        // Parsing only the head gives the same answer.
        assert_eq!(
            parse_request(&data[..head.head_len], &LIMITS),
            Ok(Some(head))
        );
    }
});
