//! Bounded gzip decompression of request bodies (`Content-Encoding: gzip` on Connect unary,
//! `grpc-encoding: gzip` on a compressed gRPC-Web frame).
//!
//! Owns: inflating at most `max_out + 1` bytes, so a gzip bomb costs at most the limit in memory
//! and CPU before it is refused, into an output allocation no larger than the output (plus a
//! little), sized from the gzip trailer so the in-flight budget can be charged before inflating. Does not own: choosing the limit (the receiver's
//! `max_request_body_bytes`) or the HTTP answer ([`GzipError::code`]).
//! Semantics follow Go's `compress/gzip` reader that connect-go uses: concatenated members are
//! one stream (RFC 1952 §2.2), every member's CRC-32 and length are checked, bytes after the
//! last member that do not start another member are an error. An empty input is an empty
//! message (connect-go only decompresses a non-empty payload).
//! Hot path for gzip'd pushes (the Rust and Python SDKs send them).

use bytes::Bytes;
use flate2::{Crc, Decompress, FlushDecompress, Status};

use super::connect::Code;

/// First buffer size when the gzip trailer's size cannot be used as a hint.
const INITIAL_OUTPUT_BYTES: usize = 64 * 1024;
/// Expected inflation ratio used to size the first buffer when there is no usable hint (then
/// doubled as needed, capped at the limit).
const EXPECTED_RATIO: usize = 4;
/// Spare output capacity a result may keep; beyond it the result moves to an exact allocation.
const MAX_SLACK_BYTES: usize = 4096;
/// Fixed part of a member header (RFC 1952 §2.3): ID1 ID2 CM FLG MTIME(4) XFL OS.
const HEADER_BYTES: usize = 10;
/// Member trailer: CRC32 then ISIZE, both little-endian (RFC 1952 §2.3.1).
const TRAILER_BYTES: usize = 8;

// FLG bits (RFC 1952 §2.3.1). FTEXT (bit 0) is informational.
const FHCRC: u8 = 1 << 1;
const FEXTRA: u8 = 1 << 2;
const FNAME: u8 = 1 << 3;
const FCOMMENT: u8 = 1 << 4;
const FRESERVED: u8 = 0xe0;

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

fn corrupt(reason: &str) -> GzipError {
    GzipError::Corrupt {
        reason: reason.to_string(),
    }
}

/// Go's `gzip.ErrHeader` text.
const BAD_HEADER: &str = "gzip: invalid header";
/// Go's `gzip.ErrChecksum` text (CRC or length mismatch).
const BAD_CHECKSUM: &str = "gzip: invalid checksum";
/// Go's `io.ErrUnexpectedEOF` text (input ends inside a member).
const TRUNCATED: &str = "unexpected EOF";

/// Inflates `input`, refusing output larger than `max_out` bytes. Memory use is bounded by
/// `max_out + 1` bytes of output buffer plus the inflater's fixed state (~40 KB window and
/// tables); an input that inflates further is never fully decompressed.
///
/// A single member whose trailer announces a size within the limit is inflated whole by
/// libdeflate ([`whole_single_member`]). Otherwise the output buffer is sized once from the
/// last member's ISIZE trailer when that is plausible (a single member's exact length, RFC
/// 1952 §2.3.1; never trusted beyond the limit), is never zero-filled (the inflater writes into
/// its spare capacity), and becomes the returned `Bytes` without a copy.
pub fn gunzip_bounded(input: &[u8], max_out: u64) -> Result<Bytes, GzipError> {
    if input.is_empty() {
        return Ok(Bytes::new());
    }
    if let Some(out) = whole_single_member(input, max_out) {
        return Ok(out);
    }
    gunzip_streaming(input, max_out)
}

/// [`gunzip_bounded`] with flate2's streaming inflater, member by member, growing the output as
/// needed within the limit: every body the fast path does not take.
fn gunzip_streaming(input: &[u8], max_out: u64) -> Result<Bytes, GzipError> {
    // One byte past the limit proves the body too large.
    let cap = usize::try_from(max_out).unwrap_or(usize::MAX - 1) + 1;
    let mut out: Vec<u8> = Vec::with_capacity(first_capacity(input, cap));
    let mut inflater = Decompress::new(false);
    let mut rest = input;
    loop {
        rest = inflate_member(rest, &mut out, &mut inflater, cap, max_out)?;
        // Go's multistream reader: end of input after a member ends the stream; anything else
        // must be another member (a bad header is an error, not ignored).
        if rest.is_empty() {
            break;
        }
        inflater.reset(false);
    }
    if out.capacity() - out.len() > MAX_SLACK_BYTES {
        // The size hint was missing or wrong (several members, a forged trailer): keep an
        // exact copy, not the larger buffer, so that what the in-flight budget is charged (the
        // length) is what stays allocated.
        return Ok(Bytes::copy_from_slice(&out));
    }
    Ok(Bytes::from(out))
}

/// The fast path for the usual body, one member whose trailer announces its size within the
/// limit: libdeflate inflates it whole into an allocation of exactly that size. `Some` only
/// when everything Go's reader checks holds — the header ([`skip_header`]), the DEFLATE data,
/// the CRC-32 and length in the trailer right after it, and nothing after the trailer — so the
/// result is the one [`gunzip_bounded`]'s streaming path gives; any doubt (several members, a
/// lying trailer, corrupt data) returns `None` and the streaming path decides, with its exact
/// errors. The output is zero-filled first (libdeflate writes into an initialized slice).
fn whole_single_member(input: &[u8], max_out: u64) -> Option<Bytes> {
    let size = usize::try_from(inflated_size_hint(input, max_out)?).ok()?;
    if size as u64 > max_out {
        return None;
    }
    let data = skip_header(input).ok()?;
    let mut out = vec![0u8; size];
    let consumed = super::deflate_ffi::inflate_exact(data, &mut out)?;
    let trailer = data.get(consumed..)?;
    if trailer.len() != TRAILER_BYTES {
        return None;
    }
    let stored_crc = u32::from_le_bytes([trailer[0], trailer[1], trailer[2], trailer[3]]);
    let mut crc = Crc::new();
    crc.update(&out);
    (crc.sum() == stored_crc).then(|| Bytes::from(out))
}

/// The first output capacity: the trailer's ISIZE + 1 (so the end of the stream is seen
/// without growing) when it is usable (see [`inflated_size_hint`]), else a ratio guess.
fn first_capacity(input: &[u8], cap: usize) -> usize {
    match inflated_size_hint(input, cap as u64 - 1) {
        Some(n) => usize::try_from(n).unwrap_or(cap).saturating_add(1).min(cap),
        None => input
            .len()
            .saturating_mul(EXPECTED_RATIO)
            .max(INITIAL_OUTPUT_BYTES)
            .min(cap),
    }
}

/// The decompressed size `input` announces, capped at `max_out + 1`: the last member's ISIZE
/// (RFC 1952 §2.3.1, the size modulo 2³²), exact for the usual single-member body. `None`
/// when it is zero or implausible: a compressed member is at least ~1/1032 of its output
/// (deflate's best ratio), so an ISIZE claiming more is a lie or a wrap-around. Only a hint
/// (for sizing the output and charging the in-flight budget before inflating): the output is
/// checked as it is inflated, never trusted from this. Pure.
pub fn inflated_size_hint(input: &[u8], max_out: u64) -> Option<u64> {
    let tail = input.len().checked_sub(4).and_then(|at| input.get(at..))?;
    let isize = u32::from_le_bytes([tail[0], tail[1], tail[2], tail[3]]) as usize;
    let plausible = isize > 0 && isize / 1032 <= input.len();
    plausible.then(|| (isize as u64).min(max_out.saturating_add(1)))
}

/// Parses one member header (RFC 1952 §2.3, checked as Go's `compress/gzip` does) and returns
/// the input after it.
fn skip_header(input: &[u8]) -> Result<&[u8], GzipError> {
    let Some(fixed) = input.get(..HEADER_BYTES) else {
        return Err(corrupt(TRUNCATED));
    };
    if fixed[0] != 0x1f || fixed[1] != 0x8b || fixed[2] != 8 {
        return Err(corrupt(BAD_HEADER));
    }
    let flags = fixed[3];
    if flags & FRESERVED != 0 {
        return Err(corrupt(BAD_HEADER));
    }
    let mut at = HEADER_BYTES;
    if flags & FEXTRA != 0 {
        let len = input.get(at..at + 2).ok_or_else(|| corrupt(TRUNCATED))?;
        let xlen = usize::from(u16::from_le_bytes([len[0], len[1]]));
        at += 2;
        if input.len() < at + xlen {
            return Err(corrupt(TRUNCATED));
        }
        at += xlen;
    }
    for flag in [FNAME, FCOMMENT] {
        if flags & flag != 0 {
            let field = input.get(at..).unwrap_or_default();
            let nul = field
                .iter()
                .position(|&b| b == 0)
                .ok_or_else(|| corrupt(TRUNCATED))?;
            at += nul + 1;
        }
    }
    if flags & FHCRC != 0 {
        let stored = input.get(at..at + 2).ok_or_else(|| corrupt(TRUNCATED))?;
        let mut crc = Crc::new();
        crc.update(&input[..at]);
        if u16::from_le_bytes([stored[0], stored[1]]) != (crc.sum() & 0xffff) as u16 {
            return Err(corrupt(BAD_HEADER));
        }
        at += 2;
    }
    Ok(&input[at..])
}

/// Inflates one member into `out`, checks its trailer, and returns the input after it.
fn inflate_member<'a>(
    input: &'a [u8],
    out: &mut Vec<u8>,
    inflater: &mut Decompress,
    cap: usize,
    max_out: u64,
) -> Result<&'a [u8], GzipError> {
    let data = skip_header(input)?;
    let member_start = out.len();
    let mut consumed = 0usize;
    loop {
        if out.len() == out.capacity() {
            if out.len() >= cap {
                return Err(GzipError::TooLarge { limit: max_out });
            }
            let grown = out.capacity().saturating_mul(2).clamp(1, cap);
            out.reserve_exact(grown - out.len());
        }
        let before_in = inflater.total_in();
        let before_out = out.len();
        let status = inflater
            .decompress_vec(
                data.get(consumed..).unwrap_or_default(),
                out,
                FlushDecompress::None,
            )
            .map_err(|_| corrupt("flate: corrupt input"))?;
        consumed += (inflater.total_in() - before_in) as usize;
        if out.len() > cap - 1 {
            return Err(GzipError::TooLarge { limit: max_out });
        }
        match status {
            Status::StreamEnd => break,
            Status::Ok | Status::BufError => {
                let progressed = out.len() != before_out || inflater.total_in() != before_in;
                if !progressed && out.len() < out.capacity() {
                    // Room to write and nothing consumed: the input ended inside the member.
                    return Err(corrupt(TRUNCATED));
                }
            }
        }
    }
    let after = data.get(consumed..).unwrap_or_default();
    let Some(trailer) = after.get(..TRAILER_BYTES) else {
        return Err(corrupt(TRUNCATED));
    };
    let member = &out[member_start..];
    let mut crc = Crc::new();
    crc.update(member);
    let stored_crc = u32::from_le_bytes([trailer[0], trailer[1], trailer[2], trailer[3]]);
    let stored_len = u32::from_le_bytes([trailer[4], trailer[5], trailer[6], trailer[7]]);
    if stored_crc != crc.sum() || stored_len != member.len() as u32 {
        return Err(corrupt(BAD_CHECKSUM));
    }
    Ok(&after[TRAILER_BYTES..])
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

    /// A member with every optional header field (RFC 1952 §2.3.1), its header CRC correct.
    fn gzip_with_all_header_fields(data: &[u8]) -> Vec<u8> {
        let plain = gzip(data);
        let mut head = vec![
            0x1f,
            0x8b,
            8,
            FEXTRA | FNAME | FCOMMENT | FHCRC,
            0,
            0,
            0,
            0,
            0,
            255,
        ];
        head.extend_from_slice(&3u16.to_le_bytes());
        head.extend_from_slice(b"abc");
        head.extend_from_slice(b"name.pprof\0");
        head.extend_from_slice(b"a comment\0");
        let mut crc = Crc::new();
        crc.update(&head);
        head.extend_from_slice(&((crc.sum() & 0xffff) as u16).to_le_bytes());
        head.extend_from_slice(&plain[HEADER_BYTES..]);
        head
    }

    #[test]
    fn optional_header_fields_are_skipped_and_the_header_crc_checked() {
        let gz = gzip_with_all_header_fields(b"profile");
        assert_eq!(&gunzip_bounded(&gz, 100).unwrap()[..], b"profile");
        let mut bad = gz.clone();
        bad[10] ^= 1; // XLEN changes, so the header CRC no longer matches
        assert_eq!(
            gunzip_bounded(&bad, 100),
            Err(GzipError::Corrupt {
                reason: BAD_HEADER.into()
            })
        );
        let mut reserved = gzip(b"x");
        reserved[3] = 0x20;
        assert_eq!(
            gunzip_bounded(&reserved, 100),
            Err(GzipError::Corrupt {
                reason: BAD_HEADER.into()
            })
        );
    }

    #[test]
    fn a_lying_size_trailer_only_changes_the_first_allocation() {
        let data: Vec<u8> = (0..100_000u32).map(|i| (i % 7) as u8).collect();
        let gz = gzip(&data);
        let n = gz.len();
        // The trailer is checked after inflating: a wrong ISIZE is a checksum error, whatever
        // size it announced (tiny, huge, or past the limit), and never an allocation of it.
        for lie in [1u32, 99_999, 100_001, u32::MAX] {
            let mut bad = gz.clone();
            bad[n - 4..].copy_from_slice(&lie.to_le_bytes());
            assert_eq!(
                gunzip_bounded(&bad, 200_000),
                Err(GzipError::Corrupt {
                    reason: BAD_CHECKSUM.into()
                }),
                "ISIZE {lie}"
            );
        }
        // An honest trailer sizes the buffer exactly: one byte of slack, no growth.
        assert_eq!(first_capacity(&gz, 1 << 20), 100_001);
        assert_eq!(first_capacity(&gz, 50_000), 50_000);
    }

    #[test]
    fn a_large_body_inflates_through_growth_when_the_trailer_is_unusable() {
        // Two members: the last member's ISIZE (5) undersizes the buffer for the whole.
        let data: Vec<u8> = (0..300_000u32).map(|i| (i * 31 % 253) as u8).collect();
        let mut two = gzip(&data);
        two.extend_from_slice(&gzip(b"tail!"));
        let out = gunzip_bounded(&two, 1 << 20).unwrap();
        assert_eq!(out.len(), 300_005);
        assert_eq!(&out[..300_000], &data[..]);
        assert_eq!(&out[300_000..], b"tail!");
    }

    #[test]
    fn the_trailer_announces_the_size_and_the_output_keeps_no_slack() {
        let data: Vec<u8> = (0..300_000u32).map(|i| (i % 7) as u8).collect();
        let gz = gzip(&data);
        assert_eq!(inflated_size_hint(&gz, 1 << 20), Some(300_000));
        assert_eq!(inflated_size_hint(&gz, 1000), Some(1001));
        assert_eq!(inflated_size_hint(b"abc", 1000), None);
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

    #[test]
    fn the_whole_buffer_path_agrees_with_the_streaming_path() {
        let mut rng = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        let mut taken = 0;
        for case in 0..120 {
            let len = (next() % 100_000) as usize;
            // Compressible bytes with some noise, like a pprof.
            let data: Vec<u8> = (0..len)
                .map(|i| {
                    if next() % 8 == 0 {
                        next() as u8
                    } else {
                        (i % 97) as u8
                    }
                })
                .collect();
            let mut input = gzip(&data);
            match case % 6 {
                0 => {}
                1 => input.extend(gzip(&data)),
                2 => input.extend_from_slice(b"junk"),
                3 if input.len() > 20 => {
                    let at = (next() as usize) % input.len();
                    input[at] ^= 1 << (next() % 8);
                }
                4 => input.truncate(input.len().saturating_sub(1 + (next() % 5) as usize)),
                _ => {}
            }
            let limit = if case % 7 == 0 {
                (len / 2) as u64
            } else {
                1 << 20
            };
            let streaming = gunzip_streaming(&input, limit);
            if let Some(fast) = whole_single_member(&input, limit) {
                taken += 1;
                assert_eq!(Ok(fast), streaming, "case {case}");
            }
            assert_eq!(gunzip_bounded(&input, limit), streaming, "case {case}");
        }
        assert!(taken > 25, "the fast path took {taken} of 120");
    }
}
