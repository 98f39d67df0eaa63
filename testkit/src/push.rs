//! The Connect Push API message (`push.v1.PushRequest`) and the push bodies SDKs send,
//! written for the kit alone so that the tests do not check pyrogate's push codec against
//! itself.
//!
//! Owns: the `PushRequest` model and a hand-written protobuf encoder/decoder for it
//! (grafana/pyroscope `api/push/v1/push.proto`; decoding as protobuf-go does: unknown fields and
//! known fields with an unexpected wire type are skipped, strings must be UTF-8), its protojson
//! form, RFC 4648 base64, gRPC-Web framing, Connect JSON error parsing, and the SDK shapes
//! (pyroscope-rs `src/session.rs`, pyroscope-dotnet `PyroscopePprofSink.cpp`, connect-go
//! clients). Does not own sockets ([`crate::server`], [`crate::client`]) nor Pyroscope's
//! verdict on a push ([`crate::rules`]).

use crate::bodies::{self, Prng};
pub use crate::gzip::{Gunzip, gunzip_bounded, gzip, gzip_bomb};
pub use crate::rules::{
    MAX_PROFILE_SIZE_BYTES, connect_code_for_status, label_pairs_string, valid_label_name,
    validate_push,
};

/// The Connect procedure path of `push.v1.PusherService.Push`.
pub const PUSH_PATH: &str = "/push.v1.PusherService/Push";

/// Largest protobuf field number (2^29 - 1, protobuf encoding spec "Message Structure").
const MAX_FIELD_NUMBER: u64 = (1 << 29) - 1;

/// Protobuf wire types (protobuf encoding spec, "Message Structure").
const WIRE_VARINT: u8 = 0;
const WIRE_I64: u8 = 1;
const WIRE_LEN: u8 = 2;
const WIRE_I32: u8 = 5;

/// `RawSample { bytes raw_profile = 1; string ID = 2; }`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Sample {
    pub raw_profile: Vec<u8>,
    pub id: String,
}

impl Sample {
    pub fn new(raw_profile: Vec<u8>, id: &str) -> Sample {
        Sample {
            raw_profile,
            id: id.to_string(),
        }
    }
}

/// `RawProfileSeries { repeated LabelPair labels = 1; repeated RawSample samples = 2; ... }`
/// with the labels as `(name, value)` in wire order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Series {
    pub labels: Vec<(String, String)>,
    pub samples: Vec<Sample>,
}

impl Series {
    pub fn new(labels: &[(&str, &str)], samples: Vec<Sample>) -> Series {
        Series {
            labels: owned_labels(labels),
            samples,
        }
    }

    /// The value of the first label named `name`.
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// `PushRequest { repeated RawProfileSeries series = 1; }`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PushRequest {
    pub series: Vec<Series>,
}

/// `(&str, &str)` pairs as owned labels.
pub fn owned_labels(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Protobuf encoding

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_len_field(out: &mut Vec<u8>, field: u64, data: &[u8]) {
    put_varint(out, (field << 3) | u64::from(WIRE_LEN));
    put_varint(out, data.len() as u64);
    out.extend_from_slice(data);
}

/// A proto3 `string`/`bytes` field: omitted when empty, as proto3 serializers do.
fn put_scalar_bytes(out: &mut Vec<u8>, field: u64, data: &[u8]) {
    if !data.is_empty() {
        put_len_field(out, field, data);
    }
}

impl Sample {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.raw_profile.len() + self.id.len() + 16);
        put_scalar_bytes(&mut out, 1, &self.raw_profile);
        put_scalar_bytes(&mut out, 2, self.id.as_bytes());
        out
    }
}

/// `LabelPair { string name = 1; string value = 2; }`.
fn encode_label(name: &str, value: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(name.len() + value.len() + 4);
    put_scalar_bytes(&mut out, 1, name.as_bytes());
    put_scalar_bytes(&mut out, 2, value.as_bytes());
    out
}

impl Series {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for (name, value) in &self.labels {
            put_len_field(&mut out, 1, &encode_label(name, value));
        }
        for sample in &self.samples {
            put_len_field(&mut out, 2, &sample.encode());
        }
        out
    }
}

impl PushRequest {
    pub fn new(series: Vec<Series>) -> PushRequest {
        PushRequest { series }
    }

    /// The binary protobuf encoding (fields in number order, empty scalars omitted: the
    /// canonical form protobuf-go's `proto.Marshal` produces).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for series in &self.series {
            put_len_field(&mut out, 1, &series.encode());
        }
        out
    }

    /// Number of samples over all series.
    pub fn sample_count(&self) -> usize {
        self.series.iter().map(|s| s.samples.len()).sum()
    }

    /// Σ len(raw_profile) over all samples (what `pyroscope_write_sent_bytes_total` counts).
    pub fn raw_bytes(&self) -> usize {
        self.series
            .iter()
            .flat_map(|s| s.samples.iter())
            .map(|s| s.raw_profile.len())
            .sum()
    }
}

// ---------------------------------------------------------------------------------------------
// Protobuf decoding

/// One field as found on the wire.
enum Wire<'a> {
    Varint,
    Fixed,
    Len(&'a [u8]),
}

fn read_varint(buf: &[u8], pos: &mut usize) -> Result<u64, String> {
    let mut value: u64 = 0;
    for i in 0..10 {
        let Some(&b) = buf.get(*pos) else {
            return Err("unexpected EOF in varint".into());
        };
        *pos += 1;
        if i == 9 && b > 1 {
            return Err("variable length integer overflow".into());
        }
        value |= u64::from(b & 0x7f) << (7 * i);
        if b < 0x80 {
            return Ok(value);
        }
    }
    Err("variable length integer overflow".into())
}

/// Splits a message into `(field number, value)` pairs, checking every length.
fn fields(buf: &[u8]) -> Result<Vec<(u64, Wire<'_>)>, String> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < buf.len() {
        let tag = read_varint(buf, &mut pos)?;
        let number = tag >> 3;
        let wire = (tag & 7) as u8;
        if number == 0 || number > MAX_FIELD_NUMBER {
            return Err(format!("invalid field number {number}"));
        }
        let value = match wire {
            WIRE_VARINT => {
                read_varint(buf, &mut pos)?;
                Wire::Varint
            }
            WIRE_I64 | WIRE_I32 => {
                let n = if wire == WIRE_I64 { 8 } else { 4 };
                if buf.len() - pos < n {
                    return Err("unexpected EOF in fixed-width field".into());
                }
                pos += n;
                Wire::Fixed
            }
            WIRE_LEN => {
                let len = read_varint(buf, &mut pos)?;
                let len = usize::try_from(len).map_err(|_| "length overflow".to_string())?;
                if buf.len() - pos < len {
                    return Err(format!(
                        "length-delimited field {number} of {len} bytes runs past the end ({} left)",
                        buf.len() - pos
                    ));
                }
                let data = &buf[pos..pos + len];
                pos += len;
                Wire::Len(data)
            }
            other => return Err(format!("unsupported wire type {other} (field {number})")),
        };
        out.push((number, value));
    }
    Ok(out)
}

fn utf8(data: &[u8], what: &str) -> Result<String, String> {
    String::from_utf8(data.to_vec())
        .map_err(|_| format!("{what}: string field contains invalid UTF-8"))
}

impl Sample {
    pub fn decode(buf: &[u8]) -> Result<Sample, String> {
        let mut sample = Sample::default();
        for (number, value) in fields(buf)? {
            match (number, value) {
                (1, Wire::Len(d)) => sample.raw_profile = d.to_vec(),
                (2, Wire::Len(d)) => sample.id = utf8(d, "RawSample.ID")?,
                _ => {}
            }
        }
        Ok(sample)
    }
}

fn decode_label(buf: &[u8]) -> Result<(String, String), String> {
    let (mut name, mut value) = (String::new(), String::new());
    for (number, v) in fields(buf)? {
        match (number, v) {
            (1, Wire::Len(d)) => name = utf8(d, "LabelPair.name")?,
            (2, Wire::Len(d)) => value = utf8(d, "LabelPair.value")?,
            _ => {}
        }
    }
    Ok((name, value))
}

impl Series {
    pub fn decode(buf: &[u8]) -> Result<Series, String> {
        let mut series = Series::default();
        for (number, value) in fields(buf)? {
            match (number, value) {
                (1, Wire::Len(d)) => series.labels.push(decode_label(d)?),
                (2, Wire::Len(d)) => series.samples.push(Sample::decode(d)?),
                // 3 = annotations, which Pyroscope drops; anything else is unknown.
                _ => {}
            }
        }
        Ok(series)
    }
}

impl PushRequest {
    /// Decodes a binary `PushRequest`; the error names what is malformed.
    pub fn decode(buf: &[u8]) -> Result<PushRequest, String> {
        let mut request = PushRequest::default();
        for (number, value) in fields(buf)? {
            if let (1, Wire::Len(d)) = (number, value) {
                request.series.push(Series::decode(d)?);
            }
        }
        Ok(request)
    }
}

// ---------------------------------------------------------------------------------------------
// protojson

/// Which JSON name a sample's profile bytes use: protojson writes the camel-case JSON name
/// and accepts the proto field name too.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RawField {
    /// `rawProfile`, what protojson emits.
    Camel,
    /// `raw_profile`, the proto field name.
    Proto,
}

impl PushRequest {
    /// The protojson form:
    /// `{"series":[{"labels":[{"name":..,"value":..}],"samples":[{"rawProfile":"<b64>","ID":..}]}]}`.
    pub fn to_json(&self, raw_field: RawField) -> String {
        let key = match raw_field {
            RawField::Camel => "rawProfile",
            RawField::Proto => "raw_profile",
        };
        let series: Vec<serde_json::Value> = self
            .series
            .iter()
            .map(|s| {
                let labels: Vec<serde_json::Value> = s
                    .labels
                    .iter()
                    .map(|(n, v)| serde_json::json!({"name": n, "value": v}))
                    .collect();
                let samples: Vec<serde_json::Value> = s
                    .samples
                    .iter()
                    .map(|x| {
                        let mut m = serde_json::Map::new();
                        m.insert(key.into(), base64_encode(&x.raw_profile).into());
                        m.insert("ID".into(), x.id.clone().into());
                        serde_json::Value::Object(m)
                    })
                    .collect();
                serde_json::json!({"labels": labels, "samples": samples})
            })
            .collect();
        serde_json::json!({ "series": series }).to_string()
    }

    /// Parses protojson (both profile field names, standard or URL-safe base64 with or without
    /// padding, unknown fields ignored as connect-go's codec does).
    pub fn from_json(text: &[u8]) -> Result<PushRequest, String> {
        let value: serde_json::Value =
            serde_json::from_slice(text).map_err(|e| format!("invalid JSON: {e}"))?;
        let obj = value
            .as_object()
            .ok_or("PushRequest is not a JSON object")?;
        let mut request = PushRequest::default();
        let Some(series) = obj.get("series") else {
            return Ok(request);
        };
        for s in series.as_array().ok_or("series is not an array")? {
            let mut out = Series::default();
            let s = s.as_object().ok_or("series element is not an object")?;
            if let Some(labels) = s.get("labels") {
                for l in labels.as_array().ok_or("labels is not an array")? {
                    let field = |k: &str| -> Result<String, String> {
                        match l.get(k) {
                            None | Some(serde_json::Value::Null) => Ok(String::new()),
                            Some(serde_json::Value::String(v)) => Ok(v.clone()),
                            Some(other) => Err(format!("label {k} is not a string: {other}")),
                        }
                    };
                    out.labels.push((field("name")?, field("value")?));
                }
            }
            if let Some(samples) = s.get("samples") {
                for x in samples.as_array().ok_or("samples is not an array")? {
                    let raw = x
                        .get("rawProfile")
                        .or_else(|| x.get("raw_profile"))
                        .and_then(serde_json::Value::as_str)
                        .unwrap_or("");
                    let id = x
                        .get("ID")
                        .and_then(serde_json::Value::as_str)
                        .unwrap_or("");
                    out.samples.push(Sample {
                        raw_profile: base64_decode(raw)?,
                        id: id.to_string(),
                    });
                }
            }
            request.series.push(out);
        }
        Ok(request)
    }
}

const B64_STD: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// RFC 4648 §4 base64 with padding.
pub fn base64_encode(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(B64_STD[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Decodes RFC 4648 §4 or §5 (URL-safe) base64, padded or not.
pub fn base64_decode(text: &str) -> Result<Vec<u8>, String> {
    let trimmed = text.trim_end_matches('=');
    let mut out = Vec::with_capacity(trimmed.len() * 3 / 4);
    let mut acc: u32 = 0;
    let mut bits = 0;
    for c in trimmed.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            other => return Err(format!("illegal base64 byte {other:#04x}")),
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    if bits >= 6 {
        return Err("truncated base64".into());
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// gRPC-Web

/// One gRPC-Web frame: flag byte (0x00 data, 0x80 trailers, bit 0 = compressed), u32
/// big-endian length, payload (gRPC over HTTP/2 "Length-Prefixed-Message"; gRPC-Web spec).
pub fn grpc_web_frame(flags: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![flags];
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// Splits a gRPC-Web body into `(flags, payload)` frames; an error if a frame is cut short.
pub fn grpc_web_frames(body: &[u8]) -> Result<Vec<(u8, Vec<u8>)>, String> {
    let mut out = Vec::new();
    let mut rest = body;
    while !rest.is_empty() {
        if rest.len() < 5 {
            return Err(format!("{} bytes left, a frame head needs 5", rest.len()));
        }
        let len = u32::from_be_bytes([rest[1], rest[2], rest[3], rest[4]]) as usize;
        if rest.len() - 5 < len {
            return Err(format!(
                "frame of {len} bytes, {} left",
                rest.len().saturating_sub(5)
            ));
        }
        out.push((rest[0], rest[5..5 + len].to_vec()));
        rest = &rest[5 + len..];
    }
    Ok(out)
}

/// Parses a gRPC-Web trailer frame payload (`name:value\r\n` lines, HTTP/1 header syntax)
/// into lower-cased names and trimmed values.
pub fn grpc_web_trailers(payload: &[u8]) -> Vec<(String, String)> {
    String::from_utf8_lossy(payload)
        .split("\r\n")
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Connect errors

/// `(code, message)` of a Connect JSON error body, `None` if the body is not one.
pub fn connect_error(body: &[u8]) -> Option<(String, String)> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    let code = value.get("code")?.as_str()?.to_string();
    let message = value
        .get("message")
        .and_then(serde_json::Value::as_str)
        .unwrap_or("")
        .to_string();
    Some((code, message))
}

// ---------------------------------------------------------------------------------------------
// SDK shapes

/// One push as a client sends it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushUpload {
    /// Which SDK shape this is, for assertion messages.
    pub shape: &'static str,
    pub content_type: String,
    pub content_encoding: Option<String>,
    pub user_agent: String,
    /// The message before framing and compression.
    pub request: PushRequest,
    /// The HTTP body as sent.
    pub body: Vec<u8>,
}

impl PushUpload {
    /// `POST /push.v1.PusherService/Push` with Content-Type, Content-Encoding, User-Agent,
    /// then `extra`, a Content-Length and the body.
    pub fn http_request(&self, extra: &[(&str, &str)]) -> Vec<u8> {
        let mut headers: Vec<(&str, &str)> = vec![
            ("Content-Type", &self.content_type),
            ("User-Agent", &self.user_agent),
        ];
        if let Some(ce) = &self.content_encoding {
            headers.push(("Content-Encoding", ce));
        }
        headers.extend_from_slice(extra);
        crate::client::upload_request(PUSH_PATH, &headers, &self.body)
    }
}

/// A random (version 4, RFC 9562 §5.4) UUID in its 8-4-4-4-12 text form.
pub fn uuid_v4(rng: &mut Prng) -> String {
    let mut b = rng.bytes(16);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// The series labels `pyroscope-io` 1.4.0 sends (captured; §2), in its wire order, with the
/// user tags `env=staging`, `region=eu` and `service_name=<service>`.
pub fn python_sdk_labels(service: &str) -> Vec<(String, String)> {
    owned_labels(&[
        ("__name__", "process_cpu"),
        ("env", "staging"),
        ("region", "eu"),
        ("service_name", service),
        ("otel.scope.name", "com.grafana.pyroscope/python"),
        ("otel.scope.version", "1.4.0"),
        ("process.runtime.name", "cpython"),
        ("process.runtime.version", "3.11.7"),
    ])
}

/// The Python/Rust SDK shape (pyroscope-rs `session.rs`): `application/proto`, the whole
/// PushRequest gzip'd with `Content-Encoding: gzip`, 1 series × 1 sample whose `raw_profile`
/// is an uncompressed pprof and whose `ID` is a UUIDv4, no `Connect-Protocol-Version`,
/// UA `pyroscope-rs/pyspy/1.4.0 reqwest`.
pub fn python_sdk(seed: u64) -> PushUpload {
    let mut rng = Prng::new(seed ^ 0x9e);
    let request = PushRequest::new(vec![Series {
        labels: python_sdk_labels("myapp"),
        samples: vec![Sample::new(
            bodies::fake_pprof(seed, 1800),
            &uuid_v4(&mut rng),
        )],
    }]);
    PushUpload {
        shape: "python-sdk",
        content_type: "application/proto".into(),
        content_encoding: Some("gzip".into()),
        user_agent: "pyroscope-rs/pyspy/1.4.0 reqwest".into(),
        body: gzip(&request.encode()),
        request,
    }
}

/// The .NET (≥ 1.0) shape (`PyroscopePprofSink.cpp`): `application/proto`, not compressed,
/// one series per pprof, empty `ID`, `spy_name=dotnetspy`; `raw_profile` is a gzip'd pprof.
/// Labels and values are those of the `push-sdk-dotnet` label vector.
pub fn dotnet_sdk(seed: u64) -> PushUpload {
    let request = PushRequest::new(vec![Series {
        labels: owned_labels(&[
            ("__name__", "wall"),
            ("service_name", "shop"),
            ("spy_name", "dotnetspy"),
            ("otel.scope.name", "com.grafana.pyroscope/dotnet"),
        ]),
        samples: vec![Sample::new(
            crate::gzip::gzip_stored(&bodies::fake_pprof(seed, 20_000)),
            "",
        )],
    }]);
    PushUpload {
        shape: "dotnet-sdk",
        content_type: "application/proto".into(),
        content_encoding: None,
        user_agent: "pyroscope-dotnet/1.0.0 cpp-httplib".into(),
        body: request.encode(),
        request,
    }
}

/// A Connect JSON push (`application/json`, protojson) of `request`.
pub fn json_push(request: PushRequest, raw_field: RawField) -> PushUpload {
    PushUpload {
        shape: "json",
        content_type: "application/json".into(),
        content_encoding: None,
        user_agent: "connect-es/1.4.0".into(),
        body: request.to_json(raw_field).into_bytes(),
        request,
    }
}

/// An uncompressed binary push of `request`, as a connect-go client without compression sends.
pub fn proto_push(request: PushRequest) -> PushUpload {
    PushUpload {
        shape: "proto",
        content_type: "application/proto".into(),
        content_encoding: None,
        user_agent: "connect-go/1.18.1 (go1.24.0)".into(),
        body: request.encode(),
        request,
    }
}

/// A valid single-series, single-sample request: `service_name=<service>`,
/// `__name__=process_cpu`, a `len`-byte profile and a UUID.
pub fn simple_request(seed: u64, service: &str, len: usize) -> PushRequest {
    let mut rng = Prng::new(seed ^ 0x51);
    PushRequest::new(vec![Series::new(
        &[("__name__", "process_cpu"), ("service_name", service)],
        vec![Sample::new(
            bodies::fake_pprof(seed, len),
            &uuid_v4(&mut rng),
        )],
    )])
}
