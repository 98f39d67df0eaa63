//! gzip (RFC 1952) for the kit: real deflate compression and bounded inflation through
//! `flate2`, a dependency-free stored-block encoder with its CRC-32, and a gzip bomb.
//!
//! Owns: every gzip the stand-in inflates (Push `Content-Encoding: gzip`) and every gzip the
//! body builders make. Does not own the magic-byte sniffing of payloads (Pyroscope's, not the
//! stand-in's concern: it never decodes pprof).

use std::io::{Read, Write};

use crate::push::{PushRequest, Sample, Series};

/// gzip with real (default-level) deflate compression, as the Rust/Python SDKs send.
pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(data).expect("gzip into memory");
    encoder.finish().expect("finish gzip")
}

/// Why a bounded gunzip failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Gunzip {
    /// The data inflates past the limit (inflation stopped there).
    TooLarge,
    /// Not a valid gzip stream.
    Corrupt(String),
}

/// Inflates `data`, never holding more than `limit + 1` output bytes.
pub fn gunzip_bounded(data: &[u8], limit: usize) -> Result<Vec<u8>, Gunzip> {
    let decoder = flate2::read::GzDecoder::new(data);
    let mut out = Vec::new();
    decoder
        .take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| Gunzip::Corrupt(e.to_string()))?;
    if out.len() > limit {
        return Err(Gunzip::TooLarge);
    }
    Ok(out)
}

/// A gzip'd, otherwise valid PushRequest whose one sample is `inflated_len` zero bytes: a few
/// KB on the wire (deflate reaches about 1000:1 on zeros) that inflate past any small limit.
pub fn gzip_bomb(inflated_len: usize) -> Vec<u8> {
    let request = PushRequest::new(vec![Series::new(
        &[("__name__", "process_cpu"), ("service_name", "bomb")],
        vec![Sample::new(vec![0; inflated_len], "")],
    )]);
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder
        .write_all(&request.encode())
        .expect("gzip into memory");
    encoder.finish().expect("finish gzip")
}

/// CRC-32 (IEEE, as gzip uses it; `flate2`'s table-driven implementation).
pub fn crc32(data: &[u8]) -> u32 {
    let mut crc = flate2::Crc::new();
    crc.update(data);
    crc.sum()
}

/// Size of a stored deflate block (RFC 1951 §3.2.4: LEN is 16 bits).
const STORED_BLOCK: usize = u16::MAX as usize;

/// A gzip member (RFC 1952) holding `data` in stored deflate blocks (RFC 1951 §3.2.4): real
/// gzip framing with the `1f 8b` magic Pyroscope sniffs, at memcpy cost.
pub fn gzip_stored(data: &[u8]) -> Vec<u8> {
    let blocks = data.len().div_ceil(STORED_BLOCK).max(1);
    let mut out = Vec::with_capacity(data.len() + 18 + 5 * blocks);
    // Header: magic, CM=8 (deflate), no flags, mtime 0, XFL 0, OS 255 (unknown).
    out.extend_from_slice(&[0x1f, 0x8b, 0x08, 0x00, 0, 0, 0, 0, 0x00, 0xff]);
    if data.is_empty() {
        out.extend_from_slice(&[0x01, 0x00, 0x00, 0xff, 0xff]);
    }
    let mut chunks = data.chunks(STORED_BLOCK).peekable();
    while let Some(block) = chunks.next() {
        out.push(u8::from(chunks.peek().is_none())); // BFINAL, BTYPE=00
        let len = u16::try_from(block.len()).unwrap_or(u16::MAX);
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(block);
    }
    out.extend_from_slice(&crc32(data).to_le_bytes());
    // ISIZE is the length modulo 2^32 (RFC 1952 §2.3.1).
    out.extend_from_slice(&((data.len() as u64 & 0xFFFF_FFFF) as u32).to_le_bytes());
    out
}
