//! Bounded gzip decompression of request bodies (`Content-Encoding: gzip` on Connect unary,
//! `grpc-encoding: gzip` on a compressed gRPC-Web frame).
//!
//! Owns: inflating at most `max_out + 1` bytes, so a gzip bomb costs at most the limit in memory
//! and CPU before it is refused, into an output allocation no larger than the output (sized
//! from the gzip trailer, so the in-flight budget can be charged before inflating). Does not own: choosing the limit (the receiver's
//! `max_request_body_bytes`) or the HTTP answer ([`GzipError::code`]).
//! Semantics follow Go's `compress/gzip` reader that connect-go uses: concatenated members are
//! one stream (RFC 1952 §2.2), every member's CRC-32 and length are checked, bytes after the
//! last member that do not start another member are an error. An empty input is an empty
//! message (connect-go only decompresses a non-empty payload).
//! Hot path for gzip'd pushes (the Rust and Python SDKs send them).

use std::io::Read;

use bytes::Bytes;
use flate2::read::MultiGzDecoder;

use super::connect::Code;

/// First buffer size for the output when the input is small and carries no usable size: most
/// profiles inflate 3–10×.
const INITIAL_OUTPUT_BYTES: usize = 64 * 1024;
/// Expected inflation ratio used to size the first buffer when the gzip trailer gives no size
/// (then doubled as needed, capped at the limit).
const EXPECTED_RATIO: usize = 4;
/// Spare capacity a finished output may keep; beyond it the output moves to an exact
/// allocation, so what the in-flight budget is charged (the length) is what stays allocated.
const MAX_SLACK_BYTES: usize = 4096;

/// The decompressed size `input` announces, capped at `max_out + 1`: the ISIZE field of its
/// last member's trailer (RFC 1952 §2.3.1, the size modulo 2³²), exact for the usual
/// single-member body. `None` when `input` is too short to be gzip. Only a hint: the output is
/// checked as it is inflated, never trusted from this. Pure.
pub fn inflated_size_hint(input: &[u8], max_out: u64) -> Option<u64> {
    // A member is at least a 10-byte header, the deflate data and an 8-byte trailer.
    if input.len() < 18 || input[..2] != [0x1f, 0x8b] {
        return None;
    }
    let trailer: [u8; 4] = input[input.len() - 4..].try_into().ok()?;
    Some(u64::from(u32::from_le_bytes(trailer)).min(max_out.saturating_add(1)))
}

/// Why a compressed body could not be inflated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GzipError {
    /// The decompressed body would exceed the limit; inflation stopped at limit + 1 bytes.
    #[error("decompressed message is larger than the configured maximum of {limit} bytes")]
    TooLarge { limit: u64 },
    /// Not a valid gzip stream (bad header, deflate data, checksum or length).
    #[error("decompress gzip: {reason}")]
    Corrupt { reason: String },
}

impl GzipError {
    /// The Connect code: `resource_exhausted` for a bomb (HTTP 429, as connect-go's read limit),
    /// `invalid_argument` for corrupt data (connect-go's decompression failure).
    pub fn code(&self) -> Code {
        match self {
            GzipError::TooLarge { .. } => Code::ResourceExhausted,
            GzipError::Corrupt { .. } => Code::InvalidArgument,
        }
    }
}

/// Inflates `input`, refusing output larger than `max_out` bytes. Memory use is bounded by
/// `max_out + 1` bytes of output buffer plus the decoder's fixed state (~40 KB window and
/// tables); an input that inflates further is never fully decompressed.
pub fn gunzip_bounded(input: &[u8], max_out: u64) -> Result<Bytes, GzipError> {
    if input.is_empty() {
        return Ok(Bytes::new());
    }
    // One byte past the limit proves the body too large.
    let cap = usize::try_from(max_out).unwrap_or(usize::MAX - 1) + 1;
    // One byte past the announced size lets the decoder report the end without a growth.
    let first = match inflated_size_hint(input, max_out) {
        Some(n) => usize::try_from(n).unwrap_or(cap).saturating_add(1),
        None => input
            .len()
            .saturating_mul(EXPECTED_RATIO)
            .max(INITIAL_OUTPUT_BYTES),
    }
    .min(cap);
    let mut out = vec![0u8; first];
    let mut filled = 0;
    let mut decoder = MultiGzDecoder::new(input);
    loop {
        if filled == out.len() {
            if out.len() >= cap {
                return Err(GzipError::TooLarge { limit: max_out });
            }
            let grown = out.len().saturating_mul(2).min(cap);
            out.resize(grown, 0);
        }
        let spare = out.get_mut(filled..).unwrap_or_default();
        match decoder.read(spare) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => {
                return Err(GzipError::Corrupt {
                    reason: e.to_string(),
                });
            }
        }
    }
    if filled > cap - 1 {
        return Err(GzipError::TooLarge { limit: max_out });
    }
    if out.len() - filled > MAX_SLACK_BYTES {
        // The size hint was missing or wrong (several members, a forged trailer): keep an
        // exact copy of the output, not the oversized buffer.
        return Ok(Bytes::copy_from_slice(&out[..filled]));
    }
    out.truncate(filled);
    Ok(Bytes::from(out))
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use flate2::Compression;
    use flate2::write::GzEncoder;

    use super::*;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut enc = GzEncoder::new(Vec::new(), Compression::best());
        enc.write_all(data).unwrap();
        enc.finish().unwrap()
    }

    #[test]
    fn inflates_a_body_within_the_limit() {
        let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let out = gunzip_bounded(&gzip(&data), 200_000).unwrap();
        assert_eq!(&out[..], &data[..]);
    }

    #[test]
    fn limit_is_inclusive() {
        let data = vec![7u8; 1000];
        let gz = gzip(&data);
        assert_eq!(gunzip_bounded(&gz, 1000).unwrap().len(), 1000);
        assert_eq!(
            gunzip_bounded(&gz, 999),
            Err(GzipError::TooLarge { limit: 999 })
        );
        assert_eq!(
            gunzip_bounded(&gz, 0),
            Err(GzipError::TooLarge { limit: 0 })
        );
    }

    #[test]
    fn gzip_bomb_is_refused_without_inflating_it_all() {
        // 1 GiB of zeros compresses to about 1 MB; build 64 MiB (~64 KB compressed) instead.
        let mut enc = GzEncoder::new(Vec::new(), Compression::best());
        let zeros = vec![0u8; 1 << 20];
        for _ in 0..64 {
            enc.write_all(&zeros).unwrap();
        }
        let bomb = enc.finish().unwrap();
        assert!(bomb.len() < 100_000, "{}", bomb.len());
        let limit = 4 << 20;
        let err = gunzip_bounded(&bomb, limit).unwrap_err();
        assert_eq!(err, GzipError::TooLarge { limit });
        assert_eq!(err.code(), Code::ResourceExhausted);
        assert_eq!(
            err.to_string(),
            "decompressed message is larger than the configured maximum of 4194304 bytes"
        );
    }

    #[test]
    fn concatenated_members_are_one_stream() {
        let mut two = gzip(b"hello ");
        two.extend_from_slice(&gzip(b"world"));
        assert_eq!(&gunzip_bounded(&two, 100).unwrap()[..], b"hello world");
    }

    #[test]
    fn corrupt_streams_are_invalid_argument() {
        let good = gzip(b"some profile bytes, long enough to matter");
        let mut bad_crc = good.clone();
        let n = bad_crc.len();
        bad_crc[n - 8] ^= 0xff;
        let truncated = &good[..good.len() - 4];
        let mut trailing = good.clone();
        trailing.extend_from_slice(b"junk!junk!");
        let cases: [&[u8]; 5] = [
            b"not gzip at all",
            &bad_crc,
            truncated,
            &trailing,
            &[0x1f, 0x8b],
        ];
        for case in cases {
            let err = gunzip_bounded(case, 1 << 20).unwrap_err();
            assert!(
                matches!(err, GzipError::Corrupt { .. }),
                "{case:?} -> {err:?}"
            );
            assert_eq!(err.code(), Code::InvalidArgument);
        }
    }

    #[test]
    fn the_trailer_announces_the_size_and_the_output_keeps_no_slack() {
        let data: Vec<u8> = (0..300_000u32).map(|i| (i % 7) as u8).collect();
        let gz = gzip(&data);
        assert_eq!(inflated_size_hint(&gz, 1 << 20), Some(300_000));
        assert_eq!(inflated_size_hint(&gz, 1000), Some(1001));
        assert_eq!(inflated_size_hint(b"short", 1000), None);
        // Several members: the hint is the last member's size; the output is still exact.
        let mut two = gzip(&data);
        two.extend_from_slice(&gzip(b"tail"));
        assert_eq!(inflated_size_hint(&two, 1 << 20), Some(4));
        let out = gunzip_bounded(&two, 1 << 20).unwrap();
        assert_eq!(out.len(), 300_004);
        assert!(out.starts_with(&data) && out.ends_with(b"tail"));
    }

    #[test]
    fn empty_input_is_an_empty_message() {
        assert_eq!(gunzip_bounded(b"", 10), Ok(Bytes::new()));
    }
}
