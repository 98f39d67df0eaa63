//! Connect Push bodies in the shapes the Python and .NET SDKs send, made per upload from
//! pre-encoded pieces.
//!
//! Owns: the two SDK shapes of `POST /push.v1.PusherService/Push` (grafana/pyroscope
//! `api/push/v1/push.proto`: `PushRequest { repeated RawProfileSeries series = 1 }`,
//! `RawProfileSeries { repeated LabelPair labels = 1; repeated RawSample samples = 2 }`,
//! `RawSample { bytes raw_profile = 1; string ID = 2 }`), their labels and headers, a
//! compressible pprof-like payload, and the gzip stream (RFC 1951 / RFC 1952) assembled from a
//! deflate run compressed once per template plus two stored blocks per upload.
//!
//! - Python (`pyroscope-io` ≥ 1.0, i.e. pyroscope-rs `src/session.rs`): one series with one
//!   sample whose `raw_profile` is an uncompressed pprof (~61 KB) and whose `ID` is a UUID; the
//!   whole message gzip'd (`Content-Encoding: gzip`, ~18 KB on the wire), `application/proto`,
//!   no `Connect-Protocol-Version` header, UA `pyroscope-rs/pyspy/1.4.0 reqwest`.
//! - .NET (pyroscope-dotnet ≥ 1.0, `PyroscopePprofSink.cpp`): one series per pprof, the request
//!   not compressed, `raw_profile` a gzip'd pprof of 54–260 KB, `ID` empty (omitted, proto3),
//!   UA `pyroscope-dotnet/<version> cpp-httplib`.
//!
//! The checksum trailer ([`crate::bodies::trailer`]) ends each `raw_profile`; what follows it
//! in the message (the `ID` field) goes into the per-upload tail. Only the head (labels and
//! lengths) and the tail are made per upload; the big middle is a shared `Bytes`.
//! Does not own the trailer, the label sets or any I/O. Pure; cold relative to the gateway.

use std::io::Write as _;
use std::sync::Arc;

use bytes::Bytes;

use crate::bodies::{LabelSet, Prng};

/// The Python SDK's User-Agent (pyroscope-io 1.4.0, captured).
pub const PYTHON_USER_AGENT: &str = "pyroscope-rs/pyspy/1.4.0 reqwest";
/// The .NET SDK's User-Agent.
pub const DOTNET_USER_AGENT: &str = "pyroscope-dotnet/1.0.0 cpp-httplib";
/// Longest stored block (RFC 1951 §3.2.4: LEN is 16 bits).
const STORED_MAX: usize = 0xFFFF;
/// gzip header: magic, CM=8 (deflate), no flags, mtime 0, XFL 0, OS 255 (RFC 1952 §2.3).
const GZIP_HEADER: [u8; 10] = [0x1f, 0x8b, 0x08, 0x00, 0, 0, 0, 0, 0x00, 0xff];

/// The series labels pyroscope-io 1.4.0 sends, in its wire order, for label set `l`.
pub fn python_labels(l: &LabelSet) -> Vec<(String, String)> {
    let mut labels = vec![("__name__".to_string(), "process_cpu".to_string())];
    labels.extend(l.tags.iter().cloned());
    for (k, v) in [
        ("service_name", l.service.as_str()),
        ("otel.scope.name", "com.grafana.pyroscope/python"),
        ("otel.scope.version", "1.4.0"),
        ("process.runtime.name", "cpython"),
        ("process.runtime.version", "3.11.7"),
    ] {
        labels.push((k.into(), v.into()));
    }
    labels
}

/// The series labels of the .NET SDK for label set `l` (its static tags last).
pub fn dotnet_labels(l: &LabelSet) -> Vec<(String, String)> {
    let mut labels: Vec<(String, String)> = [
        ("__name__", "process_cpu"),
        ("service_name", l.service.as_str()),
        ("spy_name", "dotnetspy"),
        ("otel.scope.name", "com.grafana.pyroscope/dotnet"),
        ("process.runtime.name", ".NET"),
        ("process.runtime.version", "8.0.11"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    labels.extend(l.tags.iter().cloned());
    labels
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn varint_len(v: u64) -> usize {
    let mut out = Vec::with_capacity(10);
    put_varint(&mut out, v);
    out.len()
}

/// The message bytes before the `raw_profile` data of a one-series, one-sample PushRequest:
/// the series tag and length, the labels, the sample tag and length, the `raw_profile` tag and
/// length. `raw_len` is the whole `raw_profile` (trailer included, so never 0: proto3 would omit
/// an empty one); `id_field_len` the bytes of
/// the `ID` field that follows it ([`id_field`]).
pub fn message_head(labels: &[(String, String)], raw_len: usize, id_field_len: usize) -> Vec<u8> {
    let pairs: Vec<(&str, &str)> = labels
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let label_bytes = testkit::push::Series::new(&pairs, Vec::new()).encode();
    let sample_len = 1 + varint_len(raw_len as u64) + raw_len + id_field_len;
    let series_len = label_bytes.len() + 1 + varint_len(sample_len as u64) + sample_len;
    let mut out = Vec::with_capacity(label_bytes.len() + 24);
    out.push(0x0a); // PushRequest.series, field 1, length-delimited
    put_varint(&mut out, series_len as u64);
    out.extend_from_slice(&label_bytes);
    out.push(0x12); // RawProfileSeries.samples, field 2
    put_varint(&mut out, sample_len as u64);
    out.push(0x0a); // RawSample.raw_profile, field 1
    put_varint(&mut out, raw_len as u64);
    out
}

/// `RawSample.ID` (field 2); empty for an empty ID (proto3 omits default values).
pub fn id_field(id: &str) -> Vec<u8> {
    if id.is_empty() {
        return Vec::new();
    }
    let mut out = vec![0x12];
    put_varint(&mut out, id.len() as u64);
    out.extend_from_slice(id.as_bytes());
    out
}

/// A pprof-like payload of `len` bytes that deflate compresses about as well as a real CPU
/// profile (~3.4:1): `Sample` messages whose location-id stacks come from a small pool of call
/// paths with a random leaf and value, then a string table of Python-style function names.
pub fn pprof_like(rng: &mut Prng, len: usize) -> Vec<u8> {
    let mut out = vec![0x0a, 0x04, 0x08, 0x01, 0x10, 0x02];
    let stacks: Vec<Vec<u64>> = (0..48)
        .map(|_| {
            let depth = 6 + rng.range(0, 18) as usize;
            (0..depth).map(|_| 1 + rng.range(0, 900)).collect()
        })
        .collect();
    let names_at = len - len / 6;
    while out.len() < names_at {
        let stack = &stacks[rng.range(0, stacks.len() as u64) as usize];
        let mut ids = Vec::with_capacity(stack.len() * 2 + 4);
        for _ in 0..2 {
            put_varint(&mut ids, 1 + rng.range(0, 4000));
        }
        for &id in stack {
            put_varint(&mut ids, id);
        }
        let mut sample = vec![0x0a];
        put_varint(&mut sample, ids.len() as u64);
        sample.extend_from_slice(&ids);
        sample.push(0x12);
        let mut value = Vec::new();
        put_varint(&mut value, 1 + rng.range(0, 1 << 20));
        put_varint(&mut sample, value.len() as u64);
        sample.extend_from_slice(&value);
        out.push(0x12); // Profile.sample, field 2
        put_varint(&mut out, sample.len() as u64);
        out.extend_from_slice(&sample);
    }
    let mut i = 0u64;
    while out.len() < len {
        let name = format!(
            "app/handlers/module_{}.py:handle_{}_{}",
            i % 97,
            rng.range(0, 400),
            i % 13
        );
        out.push(0x32); // Profile.string_table, field 6
        put_varint(&mut out, name.len() as u64);
        out.extend_from_slice(name.as_bytes());
        i += 1;
    }
    out.truncate(len);
    out
}

/// Data compressed once into a non-final, byte-aligned run of deflate blocks (ended by a
/// sync flush, RFC 1951 §3.2.4's empty stored block), with its CRC-32 state: it can sit
/// between any two byte-aligned blocks of a deflate stream, since it refers to nothing
/// before itself.
#[derive(Debug, Clone)]
pub struct Deflated {
    pub bytes: Bytes,
    pub crc: Arc<flate2::Crc>,
}

impl Deflated {
    pub fn new(data: &[u8]) -> Deflated {
        let mut enc =
            flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(data).expect("deflate into memory");
        enc.flush().expect("sync flush into memory");
        let bytes = enc.get_ref().clone();
        let mut crc = flate2::Crc::new();
        crc.update(data);
        Deflated {
            bytes: Bytes::from(bytes),
            crc: Arc::new(crc),
        }
    }

    /// Uncompressed bytes.
    pub fn len(&self) -> usize {
        self.crc.amount() as usize
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn stored_block(out: &mut Vec<u8>, data: &[u8], last: bool) {
    assert!(
        data.len() <= STORED_MAX,
        "stored block of {} bytes",
        data.len()
    );
    out.push(u8::from(last)); // BFINAL, BTYPE=00, then padding to the byte boundary
    let len = data.len() as u16;
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&(!len).to_le_bytes());
    out.extend_from_slice(data);
}

/// The gzip stream of `head ++ middle ++ tail` as three pieces written back to back: the
/// header with `head` in a stored block, `middle`'s shared deflate run, and `tail` in the final
/// stored block with the CRC-32 and ISIZE trailer (RFC 1952 §2.3.1). `head` and `tail` are at
/// most 65,535 bytes each.
pub fn gzip_pieces(head: &[u8], middle: &Deflated, tail: &[u8]) -> [Bytes; 3] {
    let mut first = Vec::with_capacity(GZIP_HEADER.len() + 5 + head.len());
    first.extend_from_slice(&GZIP_HEADER);
    stored_block(&mut first, head, false);
    let mut crc = flate2::Crc::new();
    crc.update(head);
    crc.combine(&middle.crc);
    crc.update(tail);
    let mut last = Vec::with_capacity(tail.len() + 13);
    stored_block(&mut last, tail, true);
    last.extend_from_slice(&crc.sum().to_le_bytes());
    // ISIZE: the length modulo 2^32.
    let total = (head.len() + middle.len() + tail.len()) as u64;
    last.extend_from_slice(&((total & 0xFFFF_FFFF) as u32).to_le_bytes());
    [Bytes::from(first), middle.bytes.clone(), Bytes::from(last)]
}

#[cfg(test)]
mod tests {
    use super::*;
    use testkit::push::PushRequest;

    fn labels() -> Vec<(String, String)> {
        vec![
            ("__name__".into(), "process_cpu".into()),
            ("service_name".into(), "svc".into()),
        ]
    }

    #[test]
    fn the_head_and_id_field_frame_a_message_testkit_decodes_as_encoded() {
        for (raw_len, id) in [(1usize, ""), (5, "x"), (200, "a-uuid"), (70_000, "")] {
            let raw = vec![7u8; raw_len];
            let idf = id_field(id);
            let mut msg = message_head(&labels(), raw.len(), idf.len());
            msg.extend_from_slice(&raw);
            msg.extend_from_slice(&idf);
            let expect = PushRequest::new(vec![testkit::push::Series::new(
                &[("__name__", "process_cpu"), ("service_name", "svc")],
                vec![testkit::push::Sample::new(raw.clone(), id)],
            )]);
            assert_eq!(msg, expect.encode(), "raw {raw_len}, id {id:?}");
            assert_eq!(PushRequest::decode(&msg).unwrap(), expect);
        }
    }

    #[test]
    fn pieces_make_one_gzip_stream_with_the_right_crc_and_isize() {
        let mut rng = Prng::new(4);
        let middle_data = pprof_like(&mut rng, 30_000);
        let middle = Deflated::new(&middle_data);
        assert_eq!(middle.len(), 30_000);
        let pieces = gzip_pieces(b"head-bytes", &middle, b"tail");
        let gz = pieces.concat();
        let plain = testkit::gzip::gunzip_bounded(&gz, 1 << 20).expect("valid gzip");
        assert_eq!(&plain[..10], b"head-bytes");
        assert_eq!(&plain[10..30_010], &middle_data[..]);
        assert_eq!(&plain[30_010..], b"tail");
        let n = gz.len();
        assert_eq!(&gz[n - 4..], &30_014u32.to_le_bytes());
        assert_eq!(
            &gz[n - 8..n - 4],
            &testkit::gzip::crc32(&plain).to_le_bytes()
        );
        // A flipped CRC is refused by the inflater.
        let mut bad = gz.clone();
        bad[n - 8] ^= 1;
        assert!(testkit::gzip::gunzip_bounded(&bad, 1 << 20).is_err());
        // Empty head and tail are fine.
        let gz = gzip_pieces(b"", &middle, b"").concat();
        assert_eq!(
            testkit::gzip::gunzip_bounded(&gz, 1 << 20).unwrap(),
            middle_data
        );
    }

    #[test]
    fn pprof_like_compresses_like_a_cpu_profile() {
        let mut rng = Prng::new(1);
        let data = pprof_like(&mut rng, 61 << 10);
        assert_eq!(data.len(), 61 << 10);
        let ratio = data.len() as f64 / testkit::gzip::gzip(&data).len() as f64;
        assert!((3.0..=4.0).contains(&ratio), "ratio {ratio:.2}");
    }
}
