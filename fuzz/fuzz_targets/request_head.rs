#![no_main]
//! Arbitrary bytes as a request head: no panic, every range inside the head, and the cheap
//! end-of-head scan agreeing with the parser however the bytes were split.
//!
//! Then the same bytes as a pipelined request stream, framed as the connection loop frames it:
//! `parse_request`, then the body its framing implies (a Content-Length slice, or the chunked
//! decoder, checked against the reference decoder in `common/chunked_ref.rs`), then the next
//! request. The framing `parse_request` reports is checked against an independent reading of
//! the Content-Length / Transfer-Encoding / Connection field lines (RFC 9112 §6.1, §6.3, §9.3).

use pyrogate::h1::{BodyFraming, Limits, RequestHead, Version, find_head_end, parse_request};

#[path = "common/chunked_ref.rs"]
mod chunked_ref;

/// Small, so that chunk sizes and Content-Length values regularly hit it.
const MAX_BODY_BYTES: u64 = 1024;
/// Requests framed per input at most.
const MAX_PIPELINED: usize = 8;

/// Optional white space (RFC 9110 §5.6.3) trimmed from both ends.
fn ows_trim(mut v: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = v {
        v = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = v {
        v = rest;
    }
    v
}

/// The field values named `name` (ASCII case-insensitive), in order.
fn values<'a>(buf: &'a [u8], head: &RequestHead, name: &str) -> Vec<&'a [u8]> {
    head.headers
        .iter()
        .filter(|f| buf[f.name.clone()].eq_ignore_ascii_case(name.as_bytes()))
        .map(|f| &buf[f.value.clone()])
        .collect()
}

/// The framing RFC 9112 gives the head's fields, as pyrogate documents its choices: TE on 1.0,
/// TE with CL, and any TE but a single `chunked` are rejected (`None`); CL values (lists
/// included) must all be the same 1*DIGIT that fits in a u64.
fn expected_framing(buf: &[u8], head: &RequestHead) -> Option<BodyFraming> {
    let te = values(buf, head, "transfer-encoding");
    let cl = values(buf, head, "content-length");
    if !te.is_empty() {
        if head.version == Version::Http10 || !cl.is_empty() {
            return None;
        }
        let codings: Vec<&[u8]> = te
            .iter()
            .flat_map(|v| v.split(|&b| b == b','))
            .map(ows_trim)
            .filter(|c| !c.is_empty())
            .collect();
        return match codings.as_slice() {
            [only] if only.eq_ignore_ascii_case(b"chunked") => Some(BodyFraming::Chunked),
            _ => None,
        };
    }
    let mut length: Option<u64> = None;
    for element in cl.iter().flat_map(|v| v.split(|&b| b == b',')).map(ows_trim) {
        if element.is_empty() || !element.iter().all(u8::is_ascii_digit) {
            return None;
        }
        let n: u64 = std::str::from_utf8(element).ok()?.parse().ok()?;
        if length.is_some_and(|prev| prev != n) {
            return None;
        }
        length = Some(n);
    }
    Some(length.map_or(BodyFraming::Empty, BodyFraming::Length))
}

/// Connection persistence (RFC 9112 §9.3): `close` ends it; 1.1 persists by default, 1.0 only
/// with `keep-alive`.
fn expected_keep_alive(buf: &[u8], head: &RequestHead) -> bool {
    let options: Vec<&[u8]> = values(buf, head, "connection")
        .into_iter()
        .flat_map(|v| v.split(|&b| b == b','))
        .map(ows_trim)
        .collect();
    let has = |token: &[u8]| options.iter().any(|o| o.eq_ignore_ascii_case(token));
    !has(b"close") && (head.version == Version::Http11 || has(b"keep-alive"))
}

/// Frames `data` as a stream of pipelined requests.
fn frame_stream(data: &[u8]) {
    let mut pos = 0;
    for _ in 0..MAX_PIPELINED {
        let buf = &data[pos..];
        let head = match parse_request(buf, &LIMITS) {
            Ok(Some(head)) => head,
            Ok(None) => return,
            Err(e) => {
                assert!(matches!(e.status(), 400 | 431 | 501 | 505));
                return;
            }
        };
        assert_eq!(
            Some(head.body),
            expected_framing(buf, &head),
            "framing of {:?}",
            String::from_utf8_lossy(&buf[..head.head_len])
        );
        assert_eq!(head.keep_alive, expected_keep_alive(buf, &head));
        let rest = &buf[head.head_len..];
        let body_len = match head.body {
            BodyFraming::Empty => 0,
            // Over the limit: 413 and close. Not all here yet: the caller waits for more.
            BodyFraming::Length(n) if n > MAX_BODY_BYTES || (rest.len() as u64) < n => return,
            BodyFraming::Length(n) => n as usize,
            BodyFraming::Chunked => {
                let Some((data, consumed)) = chunked_ref::check_one_shot(rest, MAX_BODY_BYTES)
                else {
                    return;
                };
                assert!(data.len() <= consumed && data.len() as u64 <= MAX_BODY_BYTES);
                consumed
            }
        };
        pos += head.head_len + body_len;
        if !head.keep_alive {
            return;
        }
    }
}

const LIMITS: Limits = Limits {
    max_head_bytes: 4096,
    max_headers: 32,
};

/// The verdict on a head does not depend on how its bytes were split across reads: a prefix is
/// either "not enough yet" or the same answer as the whole.
fn split_independent(data: &[u8]) {
    let whole = parse_request(data, &LIMITS);
    for &b in data.iter().take(2) {
        let cut = usize::from(b) * data.len() / 256;
        let prefix = parse_request(&data[..cut], &LIMITS);
        assert!(
            prefix == Ok(None) || prefix == whole,
            "prefix of {cut} bytes: {prefix:?}, whole: {whole:?}"
        );
    }
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    split_independent(data);
    frame_stream(data);
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
        assert!(head.target.start <= head.path.start && head.path.end <= head.target.end);
        if head.path.start != head.target.start {
            // Absolute-form (RFC 9112 §3.2.2): only `http://` or `https://` and an authority
            // without `/` or `?` are skipped.
            let skipped = data[head.target.start..head.path.start].to_ascii_lowercase();
            let authority = skipped
                .strip_prefix(b"http://")
                .or_else(|| skipped.strip_prefix(b"https://"))
                .expect("only an absolute-form target has its scheme skipped");
            assert!(!authority.iter().any(|&b| b == b'/' || b == b'?'));
        }
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
