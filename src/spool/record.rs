//! The spool's record format: one upload for one destination, as bytes on disk.
//!
//! Owns: encoding a record into the pieces that are written back to back (a small head and the
//! body's own `Bytes` handles, so the body is never copied before the write), decoding a
//! record from a read buffer into slices of it, and the frame check that tells a whole record
//! from a torn or corrupt one. Does not own: files, offsets or I/O (`store`). Pure.
//!
//! A segment file starts with [`SEGMENT_MAGIC`]; then frames back to back:
//! ```text
//! frame   = len:u32le crc:u32le payload            crc = CRC-32 (IEEE) of payload
//! payload = version:u8(=1) api:u8 reserved:u16
//!           accepted_at_unix_ms:u64 profiles:u64 bytes:u64
//!           target_len:u32 target
//!           header_count:u16 { name_len:u16 name value_len:u32 value }*
//!           request_count:u32 { request_len:u32 }*
//!           request bodies, back to back
//! ```
//! All integers little-endian. The headers are the client's forwarded headers (the
//! destination's own headers and credentials are added again at replay, from the current
//! configuration); the requests are the upstream bodies exactly as they would have been sent
//! (one for `/ingest` and OTLP, one per series for Push). `api`: 0 `/ingest`, 1 Push, 2-4 OTLP
//! in `application/x-protobuf`, `application/protobuf`, `application/json`.

use bytes::{BufMut, Bytes, BytesMut};

use crate::upload::Api;

/// The first bytes of every segment file (format version 1).
pub const SEGMENT_MAGIC: &[u8; 8] = b"PGSPOOL1";
/// Bytes of a frame's length and checksum.
pub const FRAME_HEAD: usize = 8;
/// Largest payload a frame may announce; a larger length is corruption, not a record.
pub const MAX_PAYLOAD: u32 = 1 << 30;
const VERSION: u8 = 1;

/// What a record says about the upload besides its bodies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Meta {
    pub api: Api,
    /// When the gateway accepted the upload (`max_age` counts from here).
    pub accepted_at_unix_ms: u64,
    /// Profiles and profile bytes carried, for metrics.
    pub profiles: u64,
    pub bytes: u64,
    /// Upstream path and query.
    pub target: String,
    /// The client's forwarded headers, in order.
    pub headers: Vec<(Bytes, Bytes)>,
}

/// One record read back: its meta and one body per upstream request, slices of the read
/// buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub meta: Meta,
    pub requests: Vec<Bytes>,
}

/// Why bytes are not a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// Fewer bytes than the frame head or than the length it announces: a torn write.
    #[error("torn record: {have} of {need} bytes present")]
    Torn { have: usize, need: usize },
    /// The announced length is impossible.
    #[error("record length {0} out of range")]
    BadLength(u32),
    /// The payload's checksum does not match.
    #[error("record checksum mismatch")]
    Checksum,
    /// The checksum matched but the payload does not parse (a newer or broken writer).
    #[error("malformed record payload")]
    Malformed,
}

/// The pieces of one encoded record, in write order: the frame head with everything but the
/// bodies, then the bodies' own handles.
#[derive(Debug, Clone)]
pub struct Encoded {
    pub chunks: Vec<Bytes>,
}

impl Encoded {
    /// Total bytes the record takes on disk.
    pub fn len(&self) -> u64 {
        self.chunks.iter().map(|c| c.len() as u64).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.chunks.is_empty()
    }
}

/// Encodes `meta` and `requests` (each request a list of pieces written back to back).
/// Returns `None` when the record would exceed [`MAX_PAYLOAD`] or a field its width.
pub fn encode(meta: &Meta, requests: &[Vec<Bytes>]) -> Option<Encoded> {
    let mut head = BytesMut::with_capacity(
        FRAME_HEAD
            + 40
            + meta.target.len()
            + meta
                .headers
                .iter()
                .map(|(n, v)| n.len() + v.len() + 6)
                .sum::<usize>()
            + 4 * requests.len(),
    );
    head.put_u32_le(0); // length, set below
    head.put_u32_le(0); // checksum, set below
    head.put_u8(VERSION);
    head.put_u8(match meta.api {
        Api::Ingest => 0,
        Api::Push => 1,
        Api::Otlp(crate::otlp::Format::XProtobuf) => 2,
        Api::Otlp(crate::otlp::Format::Protobuf) => 3,
        Api::Otlp(crate::otlp::Format::Json) => 4,
    });
    head.put_u16_le(0);
    head.put_u64_le(meta.accepted_at_unix_ms);
    head.put_u64_le(meta.profiles);
    head.put_u64_le(meta.bytes);
    head.put_u32_le(u32::try_from(meta.target.len()).ok()?);
    head.put_slice(meta.target.as_bytes());
    head.put_u16_le(u16::try_from(meta.headers.len()).ok()?);
    for (n, v) in &meta.headers {
        head.put_u16_le(u16::try_from(n.len()).ok()?);
        head.put_slice(n);
        head.put_u32_le(u32::try_from(v.len()).ok()?);
        head.put_slice(v);
    }
    head.put_u32_le(u32::try_from(requests.len()).ok()?);
    let mut body_len: u64 = 0;
    for r in requests {
        let n: u64 = r.iter().map(|p| p.len() as u64).sum();
        head.put_u32_le(u32::try_from(n).ok()?);
        body_len += n;
    }
    let payload_len = (head.len() - FRAME_HEAD) as u64 + body_len;
    let payload_len = u32::try_from(payload_len)
        .ok()
        .filter(|n| *n <= MAX_PAYLOAD)?;
    let mut crc = crc32fast::Hasher::new();
    crc.update(&head[FRAME_HEAD..]);
    for p in requests.iter().flatten() {
        crc.update(p);
    }
    head[0..4].copy_from_slice(&payload_len.to_le_bytes());
    head[4..8].copy_from_slice(&crc.finalize().to_le_bytes());
    let mut chunks = Vec::with_capacity(1 + requests.iter().map(Vec::len).sum::<usize>());
    chunks.push(head.freeze());
    chunks.extend(requests.iter().flatten().filter(|p| !p.is_empty()).cloned());
    Some(Encoded { chunks })
}

/// Reads a frame head: the payload length it announces and the checksum.
pub fn frame_head(bytes: &[u8]) -> Result<(u32, u32), RecordError> {
    if bytes.len() < FRAME_HEAD {
        return Err(RecordError::Torn {
            have: bytes.len(),
            need: FRAME_HEAD,
        });
    }
    let len = u32::from_le_bytes(bytes[0..4].try_into().expect("4 bytes"));
    let crc = u32::from_le_bytes(bytes[4..8].try_into().expect("4 bytes"));
    if len == 0 || len > MAX_PAYLOAD {
        return Err(RecordError::BadLength(len));
    }
    Ok((len, crc))
}

/// Checks `payload` against the frame's checksum and decodes it.
pub fn decode_payload(payload: Bytes, crc: u32) -> Result<Record, RecordError> {
    if crc32fast::hash(&payload) != crc {
        return Err(RecordError::Checksum);
    }
    parse(payload).ok_or(RecordError::Malformed)
}

/// Decodes the first frame of `frame` (head and payload). Returns the record and the bytes
/// the frame took.
pub fn decode(frame: &Bytes) -> Result<(Record, usize), RecordError> {
    let (len, crc) = frame_head(frame)?;
    let need = FRAME_HEAD + len as usize;
    if frame.len() < need {
        return Err(RecordError::Torn {
            have: frame.len(),
            need,
        });
    }
    let record = decode_payload(frame.slice(FRAME_HEAD..need), crc)?;
    Ok((record, need))
}

/// Reads the accepted time and profile count of a payload's fixed prefix (for the index
/// built at recovery, without decoding the rest).
pub fn peek_meta(payload: &[u8]) -> Option<(u64, u64, u64)> {
    if payload.len() < 28 || payload[0] != VERSION {
        return None;
    }
    let at = u64::from_le_bytes(payload[4..12].try_into().ok()?);
    let profiles = u64::from_le_bytes(payload[12..20].try_into().ok()?);
    let bytes = u64::from_le_bytes(payload[20..28].try_into().ok()?);
    Some((at, profiles, bytes))
}

/// A cursor over a payload that yields slices of it.
struct Cursor {
    buf: Bytes,
    pos: usize,
}

impl Cursor {
    fn take(&mut self, n: usize) -> Option<Bytes> {
        let end = self.pos.checked_add(n).filter(|e| *e <= self.buf.len())?;
        let out = self.buf.slice(self.pos..end);
        self.pos = end;
        Some(out)
    }
    fn u8(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }
    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_le_bytes(self.take(2)?.as_ref().try_into().ok()?))
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.as_ref().try_into().ok()?))
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.as_ref().try_into().ok()?))
    }
}

fn parse(payload: Bytes) -> Option<Record> {
    let mut c = Cursor {
        buf: payload,
        pos: 0,
    };
    if c.u8()? != VERSION {
        return None;
    }
    let api = match c.u8()? {
        0 => Api::Ingest,
        1 => Api::Push,
        2 => Api::Otlp(crate::otlp::Format::XProtobuf),
        3 => Api::Otlp(crate::otlp::Format::Protobuf),
        4 => Api::Otlp(crate::otlp::Format::Json),
        _ => return None,
    };
    c.u16()?;
    let accepted_at_unix_ms = c.u64()?;
    let profiles = c.u64()?;
    let bytes = c.u64()?;
    let n = c.u32()? as usize;
    let target = String::from_utf8(c.take(n)?.to_vec()).ok()?;
    let headers_n = c.u16()?;
    let mut headers = Vec::with_capacity(usize::from(headers_n));
    for _ in 0..headers_n {
        let n = usize::from(c.u16()?);
        let name = c.take(n)?;
        let n = c.u32()? as usize;
        headers.push((name, c.take(n)?));
    }
    let count = c.u32()? as usize;
    // Each length takes 4 bytes: a count larger than what is left is corruption.
    if count > (c.buf.len() - c.pos) / 4 {
        return None;
    }
    let mut lens = Vec::with_capacity(count);
    for _ in 0..count {
        lens.push(c.u32()? as usize);
    }
    let mut requests = Vec::with_capacity(count);
    for n in lens {
        requests.push(c.take(n)?);
    }
    if c.pos != c.buf.len() {
        return None;
    }
    Some(Record {
        meta: Meta {
            api,
            accepted_at_unix_ms,
            profiles,
            bytes,
            target,
            headers,
        },
        requests,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta() -> Meta {
        Meta {
            api: Api::Push,
            accepted_at_unix_ms: 1_700_000_000_123,
            profiles: 3,
            bytes: 11,
            target: "/push.v1.PusherService/Push?x=%7B".into(),
            headers: vec![(
                Bytes::from_static(b"X-Scope-OrgID"),
                Bytes::from_static(b"tenant-a"),
            )],
        }
    }

    fn joined(e: &Encoded) -> Bytes {
        let mut b = BytesMut::new();
        for c in &e.chunks {
            b.extend_from_slice(c);
        }
        b.freeze()
    }

    #[test]
    fn a_record_round_trips_with_its_bodies_as_given() {
        let body = Bytes::from_static(b"\x00\x01profile");
        let reqs = vec![
            vec![Bytes::from_static(b"ab"), body.clone()],
            vec![Bytes::from_static(b"xyz")],
        ];
        let e = encode(&meta(), &reqs).unwrap();
        // The body travels as its own handle: no copy before the write.
        assert!(e.chunks.iter().any(|c| c.as_ptr() == body.as_ptr()));
        let frame = joined(&e);
        assert_eq!(frame.len() as u64, e.len());
        let (rec, used) = decode(&frame).unwrap();
        assert_eq!(used, frame.len());
        assert_eq!(rec.meta, meta());
        assert_eq!(
            rec.requests,
            vec![
                Bytes::from_static(b"ab\x00\x01profile"),
                Bytes::from_static(b"xyz")
            ]
        );
        assert_eq!(
            peek_meta(&frame[FRAME_HEAD..]),
            Some((1_700_000_000_123, 3, 11))
        );
    }

    #[test]
    fn an_ingest_record_with_an_empty_body_round_trips() {
        let m = Meta {
            api: Api::Ingest,
            headers: vec![],
            ..meta()
        };
        let frame = joined(&encode(&m, &[vec![Bytes::new()]]).unwrap());
        let (rec, _) = decode(&frame).unwrap();
        assert_eq!(rec.meta, m);
        assert_eq!(rec.requests, vec![Bytes::new()]);
    }

    #[test]
    fn every_truncation_of_a_record_is_torn_never_a_record() {
        let frame = joined(&encode(&meta(), &[vec![Bytes::from_static(b"body")]]).unwrap());
        for cut in 0..frame.len() {
            let got = decode(&frame.slice(..cut));
            assert!(
                matches!(got, Err(RecordError::Torn { have, .. }) if have == cut),
                "cut at {cut}: {got:?}"
            );
        }
    }

    #[test]
    fn a_flipped_bit_anywhere_in_the_payload_fails_the_checksum() {
        let frame = joined(&encode(&meta(), &[vec![Bytes::from_static(b"body")]]).unwrap());
        for i in FRAME_HEAD..frame.len() {
            let mut bad = frame.to_vec();
            bad[i] ^= 0x10;
            assert_eq!(
                decode(&Bytes::from(bad)).unwrap_err(),
                RecordError::Checksum,
                "byte {i}"
            );
        }
    }

    #[test]
    fn a_zero_or_huge_length_is_not_a_frame() {
        let mut zero = vec![0u8; 16];
        assert_eq!(
            decode(&Bytes::from(zero.clone())).unwrap_err(),
            RecordError::BadLength(0)
        );
        zero[0..4].copy_from_slice(&(MAX_PAYLOAD + 1).to_le_bytes());
        assert_eq!(
            decode(&Bytes::from(zero)).unwrap_err(),
            RecordError::BadLength(MAX_PAYLOAD + 1)
        );
    }

    #[test]
    fn a_payload_with_a_matching_checksum_but_bad_fields_is_malformed() {
        let payload = Bytes::from_static(b"\x01\x07\x00\x00garbage-that-is-long-enough-to-peek");
        assert_eq!(
            decode_payload(payload.clone(), crc32fast::hash(&payload)).unwrap_err(),
            RecordError::Malformed
        );
    }
}
