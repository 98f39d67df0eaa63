//! The wire formats of OpenTelemetry profiles over HTTP (OTLP/HTTP, `POST
//! /v1development/profiles`): the `ExportProfilesServiceRequest` in binary protobuf and in the
//! OTLP JSON mapping, read only as deep as the gateway needs (resource attributes, the
//! element boundaries), the resource-attribute rewrite, and the `google.rpc.Status` error body.
//!
//! Owns: bytes in, values out — [`Format::classify`], [`decode`], [`rewrite`], [`labels`],
//! [`status_body`]. Does not own: routing, limits, gzip (`push::gzip` is reused by the
//! handler), or any I/O. Hot path: once per OTLP request (decode) and once per writer that
//! sets `external_labels` or drops a `ResourceProfiles` (rewrite).
//!
//! Zero copy: decoding records byte ranges of the body; a rewrite re-encodes only the
//! `Resource` messages (and the framing around them) and returns every other byte — the
//! scope profiles, the samples, the dictionary — as `Bytes::slice`s of the body. The cost is
//! independent of the profiles' size (benched by `benches/otlp.rs`, fuzzed by
//! `fuzz/fuzz_targets/otlp.rs`).
//!
//! Schema (opentelemetry-proto v1.10.0, the version Pyroscope pins):
//! ```text
//! collector/profiles/v1development/profiles_service.proto
//!   ExportProfilesServiceRequest { repeated ResourceProfiles resource_profiles = 1;
//!                                  ProfilesDictionary dictionary = 2; }
//! profiles/v1development/profiles.proto
//!   ResourceProfiles { Resource resource = 1; repeated ScopeProfiles scope_profiles = 2;
//!                      string schema_url = 3; }
//!   ScopeProfiles    { InstrumentationScope scope = 1; repeated Profile profiles = 2;
//!                      string schema_url = 3; }
//! resource/v1/resource.proto
//!   Resource { repeated KeyValue attributes = 1; uint32 dropped_attributes_count = 2;
//!              repeated EntityRef entity_refs = 3; }
//! common/v1/common.proto
//!   KeyValue { string key = 1; AnyValue value = 2; int32 key_strindex = 3; }
//!   AnyValue { oneof value { string string_value = 1; bool bool_value = 2; int64 int_value = 3;
//!              double double_value = 4; ArrayValue array_value = 5;
//!              KeyValueList kvlist_value = 6; bytes bytes_value = 7;
//!              int32 string_value_strindex = 8; } }
//! google/rpc/status.proto
//!   Status { int32 code = 1; string message = 2; repeated google.protobuf.Any details = 3; }
//! ```

use std::fmt;
use std::ops::Range;

use bytes::Bytes;

pub mod json;
pub mod proto;

pub use json::JsonProblem;
pub use proto::ProtoProblem;

/// The request path of OTLP/HTTP profiles (the OTLP/HTTP specification's default for the
/// profiles signal; Pyroscope's `pkg/api/api.go` serves it).
pub const OTLP_PATH: &str = "/v1development/profiles";

/// The label Pyroscope derives from `service.name` (pkg/ingester/otlp/ingest_handler.go).
pub const SERVICE_NAME_LABEL: &str = "service_name";
/// The resource attribute that names the service (OpenTelemetry semantic conventions).
pub const SERVICE_NAME_ATTRIBUTE: &str = "service.name";
/// The attribute Pyroscope falls back to when `service.name` is missing.
pub const PROCESS_EXECUTABLE_NAME_ATTRIBUTE: &str = "process.executable.name";
/// Pyroscope's service name when neither attribute is set.
pub const UNKNOWN_SERVICE: &str = "unknown_service";

/// The request's encoding, from its `Content-Type` (matched exactly, as Pyroscope's handler
/// does). The variant is also the `Content-Type` the request goes upstream with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `application/x-protobuf` (what OTLP/HTTP exporters send).
    XProtobuf,
    /// `application/protobuf`.
    Protobuf,
    /// `application/json` (the OTLP JSON mapping).
    Json,
}

impl Format {
    /// The format of an exact `Content-Type` value; `None` answers 415.
    pub fn classify(content_type: &[u8]) -> Option<Format> {
        match content_type {
            b"application/x-protobuf" => Some(Format::XProtobuf),
            b"application/protobuf" => Some(Format::Protobuf),
            b"application/json" => Some(Format::Json),
            _ => None,
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::XProtobuf => "application/x-protobuf",
            Format::Protobuf => "application/protobuf",
            Format::Json => "application/json",
        }
    }

    pub fn is_json(self) -> bool {
        self == Format::Json
    }
}

/// One decoded request: where each `ResourceProfiles` is and what its resource says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Export {
    pub resources: Vec<ResourceProfiles>,
}

/// One `ResourceProfiles` element, as byte ranges of the body plus its resource attributes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResourceProfiles {
    /// Protobuf: the whole `resource_profiles` field, tag and length included. JSON: the
    /// element's object text.
    pub element: Range<usize>,
    /// Protobuf: the message's fields (the element without tag and length). JSON: the same as
    /// `element`.
    pub content: Range<usize>,
    /// Protobuf: every `resource` field (tag included; repeated occurrences merge). JSON: the
    /// value of the `resource` member, at most one.
    pub resource: Vec<Range<usize>>,
    /// The resource attributes whose key is a string, in wire order.
    pub attributes: Vec<Attribute>,
    /// `Profile` messages in its scope profiles (for metrics).
    pub profiles: u64,
}

/// A resource attribute: its key and, when the value is a `string_value`, that string.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Attribute {
    pub key: String,
    pub string_value: Option<String>,
}

/// Where in the request a problem was found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Location {
    /// Index of the `ResourceProfiles`, if inside one.
    pub resource_profiles: Option<usize>,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.resource_profiles {
            None => f.write_str("ExportProfilesServiceRequest"),
            Some(i) => write!(f, "resource_profiles[{i}]"),
        }
    }
}

/// A body that is not an `ExportProfilesServiceRequest` Pyroscope would accept: HTTP 400.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("{at}: {problem}")]
    Proto { at: Location, problem: ProtoProblem },
    #[error("{at}: {problem}")]
    Json { at: Location, problem: JsonProblem },
    /// Pyroscope's check (`missing resource profiles`).
    #[error("missing resource profiles")]
    NoResourceProfiles,
    /// Pyroscope's check (`missing profile metadata dictionary`).
    #[error("missing profile metadata dictionary")]
    NoDictionary,
}

/// Decodes `body` in `format`.
pub fn decode(format: Format, body: &Bytes) -> Result<Export, DecodeError> {
    match format {
        Format::Json => json::decode(body),
        Format::XProtobuf | Format::Protobuf => proto::decode(body),
    }
}

/// The labels `pyroscope.relabel` rules see for one `ResourceProfiles`, sorted by name, as
/// Pyroscope's OTLP ingest derives them (pkg/ingester/otlp/ingest_handler.go): every
/// attribute with a non-empty string value under its key (the first of a repeated key wins),
/// and `service_name` from `service.name`, else `unknown_service:<process.executable.name>`,
/// else `unknown_service` (replacing an attribute named `service_name`).
pub fn labels(resource: &ResourceProfiles) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::with_capacity(resource.attributes.len() + 1);
    let mut service = None;
    let mut executable = None;
    for a in &resource.attributes {
        let Some(v) = a.string_value.as_deref().filter(|v| !v.is_empty()) else {
            continue;
        };
        if a.key == SERVICE_NAME_ATTRIBUTE && service.is_none() {
            service = Some(v);
        }
        if a.key == PROCESS_EXECUTABLE_NAME_ATTRIBUTE && executable.is_none() {
            executable = Some(v);
        }
        if a.key != SERVICE_NAME_LABEL && !out.iter().any(|(k, _)| *k == a.key) {
            out.push((a.key.clone(), v.to_string()));
        }
    }
    let service = match (service, executable) {
        (Some(s), _) => s.to_string(),
        (None, Some(e)) => format!("{UNKNOWN_SERVICE}:{e}"),
        (None, None) => UNKNOWN_SERVICE.to_string(),
    };
    out.push((SERVICE_NAME_LABEL.to_string(), service));
    out.sort();
    out
}

/// The body of `export` with only the `ResourceProfiles` at `keep` (indices, ascending), each
/// resource given the string attributes `set` (an attribute with the same key is replaced; an
/// empty value only removes it), as pieces to write back to back: re-encoded resources and
/// framing, everything else slices of `body`.
pub fn rewrite(
    format: Format,
    body: &Bytes,
    export: &Export,
    keep: &[usize],
    set: &[(String, String)],
) -> Vec<Bytes> {
    match format {
        Format::Json => json::rewrite(body, export, keep, set),
        Format::XProtobuf | Format::Protobuf => proto::rewrite(body, export, keep, set),
    }
}

/// `google.rpc.Status` codes used in OTLP error bodies (google/rpc/code.proto).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusCode {
    InvalidArgument = 3,
    ResourceExhausted = 8,
    Internal = 13,
    Unavailable = 14,
}

/// The OTLP/HTTP error body: a `google.rpc.Status` in the request's format (OTLP/HTTP
/// specification, "Failures": the response uses the request's `Content-Type`).
pub fn status_body(format: Format, code: StatusCode, message: &str) -> Bytes {
    if format.is_json() {
        let mut out = format!("{{\"code\":{},\"message\":", code as i32);
        json::push_string(&mut out, message);
        out.push('}');
        return Bytes::from(out);
    }
    let mut out = Vec::with_capacity(message.len() + 8);
    out.push(0x08); // field 1, varint
    crate::push::proto::put_varint(&mut out, code as u64);
    if !message.is_empty() {
        out.push(0x12); // field 2, LEN
        crate::push::proto::put_varint(&mut out, message.len() as u64);
        out.extend_from_slice(message.as_bytes());
    }
    Bytes::from(out)
}

/// The body of a successful export: an empty `ExportProfilesServiceResponse` in the request's
/// format (`{}` in JSON, no bytes in protobuf).
pub fn success_body(format: Format) -> Bytes {
    if format.is_json() {
        Bytes::from_static(b"{}")
    } else {
        Bytes::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rp(attrs: &[(&str, Option<&str>)]) -> ResourceProfiles {
        ResourceProfiles {
            attributes: attrs
                .iter()
                .map(|(k, v)| Attribute {
                    key: k.to_string(),
                    string_value: v.map(str::to_string),
                })
                .collect(),
            ..ResourceProfiles::default()
        }
    }

    fn pairs(l: &[(String, String)]) -> Vec<(&str, &str)> {
        l.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
    }

    #[test]
    fn labels_follow_pyroscopes_service_name_rules() {
        let l = labels(&rp(&[
            ("service.name", Some("api")),
            ("host.name", Some("h1")),
            ("host.name", Some("h2")),
            ("pid", None),
            ("empty", Some("")),
        ]));
        assert_eq!(
            pairs(&l),
            [
                ("host.name", "h1"),
                ("service.name", "api"),
                ("service_name", "api")
            ]
        );
        let l = labels(&rp(&[("process.executable.name", Some("java"))]));
        assert_eq!(
            pairs(&l),
            [
                ("process.executable.name", "java"),
                ("service_name", "unknown_service:java")
            ]
        );
        let l = labels(&rp(&[("service_name", Some("spoof"))]));
        assert_eq!(pairs(&l), [("service_name", "unknown_service")]);
    }

    #[test]
    fn content_types_match_exactly() {
        assert_eq!(
            Format::classify(b"application/x-protobuf"),
            Some(Format::XProtobuf)
        );
        assert_eq!(
            Format::classify(b"application/protobuf"),
            Some(Format::Protobuf)
        );
        assert_eq!(Format::classify(b"application/json"), Some(Format::Json));
        assert_eq!(Format::classify(b"application/json; charset=utf-8"), None);
        assert_eq!(Format::classify(b"Application/JSON"), None);
        assert_eq!(Format::classify(b""), None);
    }

    #[test]
    fn status_bodies_are_google_rpc_status() {
        assert_eq!(
            status_body(Format::XProtobuf, StatusCode::InvalidArgument, "bad").as_ref(),
            b"\x08\x03\x12\x03bad"
        );
        assert_eq!(
            status_body(Format::Json, StatusCode::Unavailable, "a \"b\"").as_ref(),
            br#"{"code":14,"message":"a \"b\""}"#
        );
    }
}
