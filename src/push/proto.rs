//! The binary protobuf codec of `PushRequest`, hand-written for the five tiny messages so that
//! `raw_profile` stays a `Bytes::slice` of the body on the way in and the very same `Bytes` on
//! the way out.
//!
//! Decoding follows the protobuf encoding spec (protobuf.dev/programming-guides/encoding) the
//! way protobuf-go's `proto.Unmarshal` applies it to proto3 messages: unknown fields of the
//! varint, i64, len and i32 wire types are skipped; a known field number with an unexpected
//! wire type is an unknown field too; a repeated scalar keeps its last value; `string` fields
//! must be UTF-8. Deliberately stricter than protobuf-go: groups (wire types 3 and 4, deprecated
//! since proto2 and never sent by a Pyroscope SDK) are an error, and so are field numbers above
//! 2^29-1. Every length is checked against the bytes that remain before it is used, varints are
//! at most 10 bytes, and the only allocations are the decoded values themselves (each needs at
//! least two input bytes), so no untrusted length sizes a buffer.
//!
//! Encoding matches protobuf-go's `proto.Marshal`: fields in number order, proto3 empty strings
//! and bytes omitted.
//! Hot path: once per Push request (decode) and once per series per endpoint (encode).

use std::fmt;
use std::ops::Range;

use bytes::Bytes;

use super::{DecodeError, Item, Location, PushRequest, Sample, Series};

/// Wire type of varint fields (encoding spec, "Message Structure").
pub(crate) const WIRE_VARINT: u8 = 0;
/// Wire type of fixed 8-byte fields.
pub(crate) const WIRE_I64: u8 = 1;
/// Wire type of length-delimited fields (strings, bytes, messages).
pub(crate) const WIRE_LEN: u8 = 2;
/// Wire type that starts a group (deprecated).
const WIRE_SGROUP: u8 = 3;
/// Wire type that ends a group (deprecated).
const WIRE_EGROUP: u8 = 4;
/// Wire type of fixed 4-byte fields.
pub(crate) const WIRE_I32: u8 = 5;

/// The largest field number the protobuf language allows (2^29 - 1).
const MAX_FIELD_NUMBER: u64 = (1 << 29) - 1;
/// A 64-bit varint takes at most 10 bytes of 7 bits; the 10th may only carry bit 63.
const MAX_VARINT_BYTES: usize = 10;

/// The tag of field 1 with wire type LEN (`series`, `labels`, `name`, `raw_profile`, `key`).
const TAG_1_LEN: u8 = (1 << 3) | WIRE_LEN;
/// The tag of field 2 with wire type LEN (`samples`, `value`, `ID`).
const TAG_2_LEN: u8 = (2 << 3) | WIRE_LEN;

/// Which field a wire-level problem is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// The tag (field number and wire type) itself.
    Tag,
    /// A field of the schema, by its proto name.
    Known(&'static str),
    /// A field the schema does not know, by number.
    Unknown(u32),
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Field::Tag => f.write_str("tag"),
            Field::Known(name) => f.write_str(name),
            Field::Unknown(number) => write!(f, "{number}"),
        }
    }
}

/// What is wrong with the protobuf bytes at a [`Location`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtoProblem {
    #[error("truncated varint in field {0}")]
    TruncatedVarint(Field),
    #[error("varint in field {0} overflows 64 bits")]
    VarintOverflow(Field),
    #[error("invalid field number {0} (must be 1 to 536870911)")]
    InvalidFieldNumber(u64),
    #[error("invalid wire type {wire_type} for field {number}")]
    InvalidWireType { number: u32, wire_type: u8 },
    #[error("group wire type {wire_type} for field {number} is not supported")]
    Group { number: u32, wire_type: u8 },
    #[error(
        "truncated length-delimited field {field}: {declared} bytes declared, {remaining} remain"
    )]
    TruncatedLength {
        field: Field,
        declared: u64,
        remaining: usize,
    },
    #[error("truncated fixed{bits} field {field}: {remaining} bytes remain")]
    TruncatedFixed {
        field: Field,
        bits: u8,
        remaining: usize,
    },
    #[error("string field {field} is not valid UTF-8 (invalid byte at offset {valid_up_to})")]
    InvalidUtf8 { field: Field, valid_up_to: usize },
}

/// Decodes a binary `PushRequest`. Every `raw_profile` is `body.slice(..)`: no profile byte is
/// copied. Fails with the location and nature of the first malformed byte.
pub fn decode_proto(body: &Bytes) -> Result<PushRequest, DecodeError> {
    let mut cur = Cursor::new(body, 0..body.len());
    let mut series = Vec::new();
    while !cur.at_end() {
        let at = Location::TOP;
        let (number, wire) = cur.tag().map_err(|p| err(at, p))?;
        if number == 1 && wire == WIRE_LEN {
            let range = cur
                .len_delimited(Field::Known("series"))
                .map_err(|p| err(at, p))?;
            let s = decode_series(body, range, Location::series(series.len()))?;
            series.push(s);
        } else {
            cur.skip(number, wire).map_err(|p| err(at, p))?;
        }
    }
    Ok(PushRequest { series })
}

fn err(at: Location, problem: ProtoProblem) -> DecodeError {
    DecodeError::Proto { at, problem }
}

fn decode_series(body: &Bytes, range: Range<usize>, at: Location) -> Result<Series, DecodeError> {
    let mut cur = Cursor::new(body, range);
    let mut series = Series::default();
    let mut annotations = 0;
    while !cur.at_end() {
        let (number, wire) = cur.tag().map_err(|p| err(at, p))?;
        match (number, wire) {
            (1, WIRE_LEN) => {
                let r = cur
                    .len_delimited(Field::Known("labels"))
                    .map_err(|p| err(at, p))?;
                let here = at.item(Item::Labels, series.labels.len());
                let pair = decode_pair(body, r, "name", "value").map_err(|p| err(here, p))?;
                series.labels.push(pair);
            }
            (2, WIRE_LEN) => {
                let r = cur
                    .len_delimited(Field::Known("samples"))
                    .map_err(|p| err(at, p))?;
                let here = at.item(Item::Samples, series.samples.len());
                let sample = decode_sample(body, r).map_err(|p| err(here, p))?;
                series.samples.push(sample);
            }
            (3, WIRE_LEN) => {
                // Parsed for well-formedness as protobuf-go would, then dropped like the server.
                let r = cur
                    .len_delimited(Field::Known("annotations"))
                    .map_err(|p| err(at, p))?;
                let here = at.item(Item::Annotations, annotations);
                decode_pair(body, r, "key", "value").map_err(|p| err(here, p))?;
                annotations += 1;
            }
            _ => cur.skip(number, wire).map_err(|p| err(at, p))?,
        }
    }
    Ok(series)
}

/// `LabelPair` and `ProfileAnnotation`: two strings, fields 1 and 2.
fn decode_pair(
    body: &Bytes,
    range: Range<usize>,
    first: &'static str,
    second: &'static str,
) -> Result<(String, String), ProtoProblem> {
    let mut cur = Cursor::new(body, range);
    let (mut a, mut b) = (Range::default(), Range::default());
    while !cur.at_end() {
        let (number, wire) = cur.tag()?;
        match (number, wire) {
            (1, WIRE_LEN) => a = cur.len_delimited(Field::Known(first))?,
            (2, WIRE_LEN) => b = cur.len_delimited(Field::Known(second))?,
            _ => cur.skip(number, wire)?,
        }
    }
    Ok((utf8(body, a, first)?, utf8(body, b, second)?))
}

fn decode_sample(body: &Bytes, range: Range<usize>) -> Result<Sample, ProtoProblem> {
    let mut cur = Cursor::new(body, range);
    let (mut raw, mut id) = (Range::default(), Range::default());
    while !cur.at_end() {
        let (number, wire) = cur.tag()?;
        match (number, wire) {
            (1, WIRE_LEN) => raw = cur.len_delimited(Field::Known("raw_profile"))?,
            (2, WIRE_LEN) => id = cur.len_delimited(Field::Known("ID"))?,
            _ => cur.skip(number, wire)?,
        }
    }
    Ok(Sample {
        raw_profile: body.slice(raw),
        id: utf8(body, id, "ID")?,
    })
}

/// Copies a validated `string` field out of the body.
pub(crate) fn utf8(
    body: &[u8],
    range: Range<usize>,
    field: &'static str,
) -> Result<String, ProtoProblem> {
    let bytes = body.get(range).unwrap_or_default();
    match std::str::from_utf8(bytes) {
        Ok(s) => Ok(s.to_owned()),
        Err(e) => Err(ProtoProblem::InvalidUtf8 {
            field: Field::Known(field),
            valid_up_to: e.valid_up_to(),
        }),
    }
}

/// A read position inside one message: `pos..end` of the whole body, so nested messages and
/// `raw_profile` keep absolute offsets that `Bytes::slice` can use.
pub(crate) struct Cursor<'a> {
    data: &'a [u8],
    pos: usize,
    /// INVARIANT: `pos <= end <= data.len()`.
    end: usize,
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(data: &'a [u8], range: Range<usize>) -> Cursor<'a> {
        let end = range.end.min(data.len());
        Cursor {
            data,
            pos: range.start.min(end),
            end,
        }
    }

    /// The absolute position of the next byte.
    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    pub(crate) fn at_end(&self) -> bool {
        self.pos >= self.end
    }

    fn remaining(&self) -> usize {
        self.end - self.pos
    }

    pub(crate) fn varint(&mut self, field: Field) -> Result<u64, ProtoProblem> {
        let mut value = 0u64;
        for i in 0..MAX_VARINT_BYTES {
            let Some(&byte) = self
                .data
                .get(self.pos + i)
                .filter(|_| self.pos + i < self.end)
            else {
                return Err(ProtoProblem::TruncatedVarint(field));
            };
            if i == MAX_VARINT_BYTES - 1 && byte > 1 {
                return Err(ProtoProblem::VarintOverflow(field));
            }
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte < 0x80 {
                self.pos += i + 1;
                return Ok(value);
            }
        }
        Err(ProtoProblem::VarintOverflow(field))
    }

    /// Reads a tag; groups and the reserved wire types 6 and 7 are errors here, so callers only
    /// ever see wire types 0, 1, 2 and 5.
    pub(crate) fn tag(&mut self) -> Result<(u32, u8), ProtoProblem> {
        let key = self.varint(Field::Tag)?;
        let number = key >> 3;
        if number == 0 || number > MAX_FIELD_NUMBER {
            return Err(ProtoProblem::InvalidFieldNumber(number));
        }
        // Bounded by MAX_FIELD_NUMBER just above.
        let number = number as u32;
        let wire_type = (key & 7) as u8;
        match wire_type {
            WIRE_VARINT | WIRE_I64 | WIRE_LEN | WIRE_I32 => Ok((number, wire_type)),
            WIRE_SGROUP | WIRE_EGROUP => Err(ProtoProblem::Group { number, wire_type }),
            _ => Err(ProtoProblem::InvalidWireType { number, wire_type }),
        }
    }

    /// Reads a length prefix and returns the absolute range of the payload it announces.
    pub(crate) fn len_delimited(&mut self, field: Field) -> Result<Range<usize>, ProtoProblem> {
        let declared = self.varint(field)?;
        let remaining = self.remaining();
        match usize::try_from(declared) {
            Ok(len) if len <= remaining => {
                let start = self.pos;
                self.pos += len;
                Ok(start..self.pos)
            }
            _ => Err(ProtoProblem::TruncatedLength {
                field,
                declared,
                remaining,
            }),
        }
    }

    fn fixed(&mut self, field: Field, bytes: usize) -> Result<(), ProtoProblem> {
        let remaining = self.remaining();
        if remaining < bytes {
            return Err(ProtoProblem::TruncatedFixed {
                field,
                bits: (bytes * 8) as u8,
                remaining,
            });
        }
        self.pos += bytes;
        Ok(())
    }

    /// Skips the value of a field the caller does not want.
    pub(crate) fn skip(&mut self, number: u32, wire_type: u8) -> Result<(), ProtoProblem> {
        let field = Field::Unknown(number);
        match wire_type {
            WIRE_VARINT => self.varint(field).map(drop),
            WIRE_I64 => self.fixed(field, 8),
            WIRE_LEN => self.len_delimited(field).map(drop),
            WIRE_I32 => self.fixed(field, 4),
            _ => Err(ProtoProblem::InvalidWireType { number, wire_type }),
        }
    }
}

/// The bytes of `PushRequest{series: [{labels, samples}]}` as pieces to write back to back.
/// Framing, labels and IDs share one small allocation (sliced into pieces); each non-empty
/// `raw_profile` is its own piece, a clone of the caller's `Bytes` (a reference count, not a
/// copy). Empty pieces are left out.
pub fn encode_series(labels: &[(String, String)], samples: &[Sample]) -> Vec<Bytes> {
    let label_lens: u64 = labels
        .iter()
        .map(|(n, v)| nested_len(pair_len(n.len(), v.len())))
        .sum();
    let sample_lens: u64 = samples
        .iter()
        .map(|s| nested_len(pair_len(s.raw_profile.len(), s.id.len())))
        .sum();
    let series_len = label_lens + sample_lens;
    let profile_bytes: u64 = samples.iter().map(|s| s.raw_profile.len() as u64).sum();
    let framing_len = nested_len(series_len) - profile_bytes;

    let mut framing = Vec::with_capacity(usize::try_from(framing_len).unwrap_or(0));
    // Ranges of `framing`, interleaved with profiles: (framing end, profile to write after it).
    let mut cuts: Vec<(usize, &Bytes)> = Vec::with_capacity(samples.len());
    framing.push(TAG_1_LEN);
    put_varint(&mut framing, series_len);
    for (name, value) in labels {
        framing.push(TAG_1_LEN);
        put_varint(&mut framing, pair_len(name.len(), value.len()));
        put_field(&mut framing, TAG_1_LEN, name.as_bytes());
        put_field(&mut framing, TAG_2_LEN, value.as_bytes());
    }
    for sample in samples {
        framing.push(TAG_2_LEN);
        put_varint(
            &mut framing,
            pair_len(sample.raw_profile.len(), sample.id.len()),
        );
        if !sample.raw_profile.is_empty() {
            framing.push(TAG_1_LEN);
            put_varint(&mut framing, sample.raw_profile.len() as u64);
            cuts.push((framing.len(), &sample.raw_profile));
        }
        put_field(&mut framing, TAG_2_LEN, sample.id.as_bytes());
    }

    let framing = Bytes::from(framing);
    let mut parts = Vec::with_capacity(2 * cuts.len() + 1);
    let mut start = 0;
    for (end, profile) in cuts {
        if end > start {
            parts.push(framing.slice(start..end));
        }
        parts.push(profile.clone());
        start = end;
    }
    if framing.len() > start {
        parts.push(framing.slice(start..));
    }
    parts
}

/// Total bytes of the pieces [`encode_series`] returned: the upstream `Content-Length`.
pub fn encoded_len(parts: &[Bytes]) -> u64 {
    parts.iter().map(|p| p.len() as u64).sum()
}

/// Bytes a varint takes (1 to 10).
pub(crate) fn varint_len(v: u64) -> u64 {
    // 7 payload bits per byte; `| 1` makes 0 take one byte.
    u64::from((64 - (v | 1).leading_zeros()).div_ceil(7))
}

/// Encoded size of a proto3 LEN field with `len` payload bytes; an empty one is omitted.
fn field_len(len: usize) -> u64 {
    if len == 0 {
        0
    } else {
        1 + varint_len(len as u64) + len as u64
    }
}

/// Encoded size of a message made of fields 1 and 2 of types string/bytes.
fn pair_len(first: usize, second: usize) -> u64 {
    field_len(first) + field_len(second)
}

/// Encoded size of a message of `len` bytes embedded as a LEN field (always present, since an
/// empty element of a repeated field still counts).
fn nested_len(len: u64) -> u64 {
    1 + varint_len(len) + len
}

pub(crate) fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_field(out: &mut Vec<u8>, tag: u8, payload: &[u8]) {
    if !payload.is_empty() {
        out.push(tag);
        put_varint(out, payload.len() as u64);
        out.extend_from_slice(payload);
    }
}

/// Hand assembly of protobuf for the codecs' tests, independent of the encoders under test.
#[cfg(test)]
pub(crate) mod hand {
    /// A base-128 varint.
    pub(crate) fn varint(mut v: u64) -> Vec<u8> {
        let mut out = Vec::new();
        loop {
            let b = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                out.push(b);
                return out;
            }
            out.push(b | 0x80);
        }
    }

    /// A LEN field (wire type 2) numbered `number` holding `payload`.
    pub(crate) fn len_field(number: u64, payload: &[u8]) -> Vec<u8> {
        let mut out = varint((number << 3) | 2);
        out.extend(varint(payload.len() as u64));
        out.extend_from_slice(payload);
        out
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;
    use crate::push::gunzip_bounded;

    use super::hand::{len_field, varint};

    fn label(name: &str, value: &str) -> Vec<u8> {
        label_bytes(name.as_bytes(), value.as_bytes())
    }

    fn label_bytes(name: &[u8], value: &[u8]) -> Vec<u8> {
        let mut pair = len_field(1, name);
        pair.extend(len_field(2, value));
        len_field(1, &pair)
    }

    fn sample(raw: &[u8], id: &str) -> Vec<u8> {
        let mut s = Vec::new();
        if !raw.is_empty() {
            s.extend(len_field(1, raw));
        }
        if !id.is_empty() {
            s.extend(len_field(2, id.as_bytes()));
        }
        len_field(2, &s)
    }

    fn series(labels: &[(&str, &str)], samples: &[(&[u8], &str)]) -> Vec<u8> {
        let mut s = Vec::new();
        for (n, v) in labels {
            s.extend(label(n, v));
        }
        for (raw, id) in samples {
            s.extend(sample(raw, id));
        }
        len_field(1, &s)
    }

    fn owned(labels: &[(&str, &str)]) -> Vec<(String, String)> {
        labels
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    fn concat(parts: &[Bytes]) -> Bytes {
        Bytes::from(parts.concat())
    }

    /// A stand-in pprof: gzip magic plus enough bytes to be a distinct slice.
    fn fake_pprof(seed: u8, len: usize) -> Vec<u8> {
        let mut p = vec![0x1f, 0x8b, 0x08, 0x00];
        p.extend((0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)));
        p
    }

    const RUST_SDK_LABELS: [(&str, &str); 8] = [
        ("__name__", "process_cpu"),
        ("env", "staging"),
        ("service_name", "checkout-rs"),
        ("otel.scope.name", "com.grafana.pyroscope/rust"),
        ("otel.scope.version", "2.1.5"),
        ("process.runtime.name", "rust"),
        (
            "process.runtime.version",
            "rustc 1.95.0 (59807616e 2026-04-14)",
        ),
        ("hostname", "pod-7d9f8b6c5-x2k4q"),
    ];
    const UUID: &str = "6f1c0c2e-8a4b-4e0f-9d3a-2b7c5e1f0a9d";

    #[test]
    fn encode_series_writes_exact_bytes_in_pieces() {
        let samples = [Sample {
            raw_profile: Bytes::from_static(b"xyz"),
            id: "1".into(),
        }];
        let parts = encode_series(&owned(&[("a", "b")]), &samples);
        let parts: Vec<&[u8]> = parts.iter().map(|p| &p[..]).collect();
        assert_eq!(
            parts,
            [
                &b"\x0a\x12\x0a\x06\x0a\x01a\x12\x01b\x12\x08\x0a\x03"[..],
                b"xyz",
                b"\x12\x011"
            ]
        );
    }

    #[test]
    fn encode_series_omits_empty_proto3_fields_like_go() {
        // An empty value, an empty ID and an empty profile are not written; empty messages are.
        let samples = [
            Sample {
                raw_profile: Bytes::new(),
                id: String::new(),
            },
            Sample {
                raw_profile: Bytes::from_static(b"p"),
                id: String::new(),
            },
        ];
        let parts = encode_series(&owned(&[("k", ""), ("", "")]), &samples);
        assert_eq!(
            &concat(&parts)[..],
            b"\x0a\x0e\x0a\x03\x0a\x01k\x0a\x00\x12\x00\x12\x03\x0a\x01p"
        );
        assert_eq!(encoded_len(&parts), 16);
        assert_eq!(
            encode_series(&[], &[])
                .iter()
                .map(|p| p.to_vec())
                .collect::<Vec<_>>(),
            [b"\x0a\x00".to_vec()]
        );
    }

    #[test]
    fn encode_series_uses_multi_byte_lengths_for_large_profiles() {
        let profile = Bytes::from(vec![0xab; 60_000]);
        let samples = [Sample {
            raw_profile: profile.clone(),
            id: UUID.into(),
        }];
        let parts = encode_series(&owned(&RUST_SDK_LABELS), &samples);
        let body = concat(&parts);
        assert_eq!(encoded_len(&parts), body.len() as u64);
        // 60 000 = 0xEA60 → varint e0 d4 03.
        assert!(parts[0].ends_with(b"\x0a\xe0\xd4\x03"));
        let decoded = decode_proto(&body).unwrap();
        assert_eq!(decoded.series[0].samples[0].raw_profile, profile);
    }

    #[test]
    fn round_trip_keeps_labels_samples_and_profile_allocation() {
        let body = Bytes::from(
            [
                series(
                    &RUST_SDK_LABELS,
                    &[(&fake_pprof(1, 300), UUID), (&fake_pprof(2, 5), "")],
                ),
                series(&[("service_name", "b")], &[(&fake_pprof(3, 200_000), "x")]),
            ]
            .concat(),
        );
        let request = decode_proto(&body).unwrap();
        assert_eq!(request.series.len(), 2);
        for s in &request.series {
            let parts = encode_series(&s.labels, &s.samples);
            // Every profile piece is the decoded slice itself, which is a slice of `body`.
            for sample in &s.samples {
                let piece = parts
                    .iter()
                    .find(|p| p.as_ptr() == sample.raw_profile.as_ptr())
                    .expect("profile piece shares the input allocation");
                assert_eq!(piece.len(), sample.raw_profile.len());
                let offset = sample.raw_profile.as_ptr() as usize - body.as_ptr() as usize;
                assert!(offset + piece.len() <= body.len());
            }
            let again = decode_proto(&concat(&parts)).unwrap();
            assert_eq!(again.series, std::slice::from_ref(s));
        }
    }

    #[test]
    fn decodes_the_gzipped_push_of_the_rust_and_python_sdks() {
        let pprof = fake_pprof(9, 4000);
        let request = series(&RUST_SDK_LABELS, &[(&pprof, UUID)]);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&request).unwrap();
        let wire = gz.finish().unwrap();

        let body = gunzip_bounded(&wire, 1 << 20).unwrap();
        let decoded = decode_proto(&body).unwrap();
        assert_eq!(
            decoded,
            PushRequest {
                series: vec![Series {
                    labels: owned(&RUST_SDK_LABELS),
                    samples: vec![Sample {
                        raw_profile: Bytes::from(pprof),
                        id: UUID.into(),
                    }],
                }],
            }
        );
        let raw = &decoded.series[0].samples[0].raw_profile;
        let at = raw.as_ptr() as usize - body.as_ptr() as usize;
        assert_eq!(&body[at..at + raw.len()], &raw[..]);
    }

    #[test]
    fn decodes_the_uncompressed_dotnet_push_with_empty_id() {
        let labels = [
            ("__name__", "wall"),
            ("service_name", "Shop.Api"),
            ("spy_name", "dotnetspy"),
            ("otel.scope.name", "com.grafana.pyroscope/dotnet"),
            ("process.runtime.name", ".NET"),
            ("process.runtime.version", "8.0.11"),
            ("region", "eu-west-1"),
        ];
        let pprof = fake_pprof(4, 54_000);
        let body = Bytes::from(series(&labels, &[(&pprof, "")]));
        let decoded = decode_proto(&body).unwrap();
        assert_eq!(decoded.series.len(), 1);
        assert_eq!(decoded.series[0].labels, owned(&labels));
        assert_eq!(decoded.series[0].samples.len(), 1);
        assert_eq!(decoded.series[0].samples[0].id, "");
        assert_eq!(&decoded.series[0].samples[0].raw_profile[..], &pprof[..]);
    }

    #[test]
    fn decodes_multi_series_with_duplicates_and_empty_values_in_wire_order() {
        let body = Bytes::from(
            [
                series(&[("a", "1"), ("a", "2"), ("b", "")], &[(b"p1", "i1")]),
                series(&[], &[]),
                series(&[("c", "3")], &[(b"p2", ""), (b"p3", "i3")]),
            ]
            .concat(),
        );
        let d = decode_proto(&body).unwrap();
        assert_eq!(d.series.len(), 3);
        assert_eq!(
            d.series[0].labels,
            owned(&[("a", "1"), ("a", "2"), ("b", "")])
        );
        assert_eq!(d.series[1], Series::default());
        let ids: Vec<&str> = d.series[2].samples.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(ids, ["", "i3"]);
        assert_eq!(&d.series[2].samples[1].raw_profile[..], b"p3");
        assert_eq!(decode_proto(&Bytes::new()).unwrap(), PushRequest::default());
    }

    #[test]
    fn unknown_fields_of_every_wire_type_are_skipped_at_every_level() {
        let unknown = |n: u64| -> Vec<u8> {
            let mut u = varint(n << 3);
            u.extend(varint(u64::MAX));
            u.extend(varint(n << 3 | 1));
            u.extend([1, 2, 3, 4, 5, 6, 7, 8]);
            u.extend(len_field(n, b"\xff\xfe not utf-8 is fine here"));
            u.extend(varint(n << 3 | 5));
            u.extend([1, 2, 3, 4]);
            u
        };
        let mut pair = unknown(3);
        pair.extend(len_field(1, b"k"));
        pair.extend(unknown(536_870_911));
        pair.extend(len_field(2, b"v"));
        let mut raw_sample = len_field(1, b"raw");
        raw_sample.extend(unknown(7));
        raw_sample.extend(len_field(2, b"id"));
        // A known field number with an unexpected wire type is an unknown field (protobuf-go).
        raw_sample.extend(varint(1 << 3));
        raw_sample.push(5);
        let mut annotation = len_field(1, b"key");
        annotation.extend(len_field(2, b"value"));
        let mut s = unknown(4);
        s.extend(len_field(1, &pair));
        s.extend(len_field(3, &annotation));
        s.extend(len_field(2, &raw_sample));
        s.extend(unknown(99));
        let mut body = unknown(2);
        body.extend(varint(1 << 3 | 5));
        body.extend([0, 0, 0, 0]);
        body.extend(len_field(1, &s));
        body.extend(unknown(1000));

        let d = decode_proto(&Bytes::from(body)).unwrap();
        assert_eq!(d.series.len(), 1);
        assert_eq!(d.series[0].labels, owned(&[("k", "v")]));
        assert_eq!(&d.series[0].samples[0].raw_profile[..], b"raw");
        assert_eq!(d.series[0].samples[0].id, "id");
    }

    #[test]
    fn repeated_scalar_fields_keep_the_last_value() {
        let mut pair = len_field(1, b"old");
        pair.extend(len_field(1, b"name"));
        pair.extend(len_field(2, b"value"));
        let mut raw_sample = len_field(1, b"first");
        raw_sample.extend(len_field(2, b"a"));
        raw_sample.extend(len_field(1, b"second"));
        let mut s = len_field(1, &pair);
        s.extend(len_field(2, &raw_sample));
        let d = decode_proto(&Bytes::from(len_field(1, &s))).unwrap();
        assert_eq!(d.series[0].labels, owned(&[("name", "value")]));
        assert_eq!(&d.series[0].samples[0].raw_profile[..], b"second");
        assert_eq!(d.series[0].samples[0].id, "a");
    }

    #[test]
    fn malformed_bodies_fail_with_precise_errors() {
        let bad_label = {
            let mut s = label("service_name", "ok");
            s.extend(label_bytes(b"k", b"a\xc3"));
            len_field(1, &s)
        };
        let truncated_profile = {
            let mut s = sample(b"ok", "");
            // Sample 1 declares a 100-byte raw_profile but holds 3 bytes.
            s.extend(len_field(2, b"\x0a\x64abc"));
            len_field(1, &s)
        };
        let bad_id = [
            series(&[], &[]),
            len_field(1, &len_field(2, &len_field(2, b"\xff"))),
        ]
        .concat();
        let bad_annotation = len_field(1, &len_field(3, &len_field(1, b"\xe2\x82")));
        // The series declares 4 bytes, inside which the label declares 5: bounded by the
        // series, even though the body goes on.
        let nested_overrun = b"\x0a\x04\x0a\x05\x0a\x01a\x12\x01b".to_vec();
        let mut big_length = b"\x0a".to_vec();
        big_length.extend(varint(u64::MAX));
        let mut overflow = b"\x08".to_vec();
        overflow.extend([0xff; 9]);
        overflow.push(0x02);

        let table: Vec<(Vec<u8>, &str)> = vec![
            (
                b"\x80".to_vec(),
                "PushRequest: truncated varint in field tag",
            ),
            (
                b"\x0a".to_vec(),
                "PushRequest: truncated varint in field series",
            ),
            (
                b"\x0a\x05\x0a".to_vec(),
                "PushRequest: truncated length-delimited field series: 5 bytes declared, 1 remain",
            ),
            (
                big_length,
                "PushRequest: truncated length-delimited field series: 18446744073709551615 \
                 bytes declared, 0 remain",
            ),
            (overflow, "PushRequest: varint in field 1 overflows 64 bits"),
            (
                vec![0xff; 11],
                "PushRequest: varint in field tag overflows 64 bits",
            ),
            (
                b"\x0e".to_vec(),
                "PushRequest: invalid wire type 6 for field 1",
            ),
            (
                b"\x17".to_vec(),
                "PushRequest: invalid wire type 7 for field 2",
            ),
            (
                b"\x0b\x0c".to_vec(),
                "PushRequest: group wire type 3 for field 1 is not supported",
            ),
            (
                b"\x0c".to_vec(),
                "PushRequest: group wire type 4 for field 1 is not supported",
            ),
            (
                b"\x02\x00".to_vec(),
                "PushRequest: invalid field number 0 (must be 1 to 536870911)",
            ),
            (
                b"\x80\x80\x80\x80\x10\x00".to_vec(),
                "PushRequest: invalid field number 536870912 (must be 1 to 536870911)",
            ),
            (
                b"\x09\x01\x02".to_vec(),
                "PushRequest: truncated fixed64 field 1: 2 bytes remain",
            ),
            (
                b"\x0a\x02\x1d\x01".to_vec(),
                "series[0]: truncated fixed32 field 3: 1 bytes remain",
            ),
            (
                bad_label,
                "series[0].labels[1]: string field value is not valid UTF-8 (invalid byte at \
                 offset 1)",
            ),
            (
                truncated_profile,
                "series[0].samples[1]: truncated length-delimited field raw_profile: 100 bytes \
                 declared, 3 remain",
            ),
            (
                bad_id,
                "series[1].samples[0]: string field ID is not valid UTF-8 (invalid byte at \
                 offset 0)",
            ),
            (
                bad_annotation,
                "series[0].annotations[0]: string field key is not valid UTF-8 (invalid byte \
                 at offset 0)",
            ),
            (
                nested_overrun,
                "series[0]: truncated length-delimited field labels: 5 bytes declared, 2 remain",
            ),
        ];
        for (body, message) in table {
            let err = decode_proto(&Bytes::from(body.clone())).unwrap_err();
            assert_eq!(err.to_string(), message, "{body:02x?}");
            assert_eq!(err.http_status(), 400);
        }
    }
}
