#![no_main]
//! Arbitrary bytes as a chunked body, fed in pieces of fuzzer-chosen sizes: no panic, consumption
//! within the input, the limit held, and the same data or error as one-shot decoding. One-shot
//! decoding is checked against an independent reference decoder (`common/chunked_ref.rs`), and a
//! decoded body re-encoded as one chunk decodes back to itself.

use bytes::BytesMut;
use pyrogate::h1::{ChunkedDecoder, ChunkedError};

#[path = "common/chunked_ref.rs"]
mod chunked_ref;

const MAX_BODY_BYTES: u64 = 64 * 1024;

/// Decodes `body` in pieces whose sizes cycle through `splits` (1..=256 bytes each).
fn decode(body: &[u8], splits: &[u8]) -> (Vec<u8>, Result<bool, ChunkedError>) {
    let mut decoder = ChunkedDecoder::new(MAX_BODY_BYTES);
    let mut out = BytesMut::new();
    let mut pos = 0;
    let mut sizes = splits.iter().cycle();
    while pos < body.len() {
        let size = sizes.next().map_or(body.len(), |&s| usize::from(s) + 1);
        let piece = &body[pos..body.len().min(pos + size)];
        match decoder.decode(piece, Some(&mut out)) {
            Err(e) => return (out.to_vec(), Err(e)),
            Ok(progress) => {
                assert!(progress.consumed <= piece.len());
                assert_eq!(decoder.body_len(), out.len() as u64);
                assert!(decoder.body_len() <= MAX_BODY_BYTES);
                pos += progress.consumed;
                if progress.done {
                    // A finished decoder takes nothing more.
                    let again = decoder.decode(&body[pos..], None).unwrap();
                    assert_eq!((again.consumed, again.done), (0, true));
                    return (out.to_vec(), Ok(true));
                }
                assert_eq!(
                    progress.consumed,
                    piece.len(),
                    "an unfinished body uses all input"
                );
            }
        }
    }
    (out.to_vec(), Ok(false))
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some((&n, rest)) = data.split_first() else {
        return;
    };
    let (splits, body) = rest.split_at(usize::from(n % 8).min(rest.len()));
    let pieces = decode(body, splits);
    let whole = decode(body, &[]);
    assert_eq!(pieces, whole);
    if let Some((data, consumed)) = chunked_ref::check_one_shot(body, MAX_BODY_BYTES) {
        assert_eq!(whole, (data.clone(), Ok(true)));
        // Exactly the body's bytes are a complete body too.
        assert_eq!(
            chunked_ref::check_one_shot(&body[..consumed], MAX_BODY_BYTES),
            Some((data.clone(), consumed))
        );
        let encoded = chunked_ref::encode(&data);
        assert_eq!(
            chunked_ref::check_one_shot(&encoded, MAX_BODY_BYTES),
            Some((data, encoded.len()))
        );
    }
});
