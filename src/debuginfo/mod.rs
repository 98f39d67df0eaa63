//! The eBPF debug-info service as a gateway sees it: which requests belong to it, and the few
//! fields of its messages the gateway reads.
//!
//! Owns: the routes of `debuginfo.v1alpha1.DebuginfoService` that Alloy's
//! `pyroscope.receive_http` proxies (grafana/alloy
//! `internal/component/pyroscope/receive_http/debuginfo.go`): the Connect unary methods
//! `ShouldInitiateUpload` and `UploadFinished`, and the plain-HTTP
//! `Upload/{gnu_build_id}`; the upstream paths they are sent to (connect-go's client joins the
//! endpoint URL without its trailing slash and the procedure; the upload path escapes the build
//! ID with Go's `url.PathEscape`, as `write/debuginfoclient/client.go`); and decoding the
//! messages' identifying fields from protobuf or protojson (grafana/pyroscope
//! `api/debuginfo/v1alpha1/debuginfo.proto`). Pure: bytes in, values out, no I/O. Does not own:
//! forwarding (`server::debuginfo`), the wire exchange (`upstream::debuginfo`), or messages'
//! other fields, which are relayed as received.

use std::fmt;

/// The service's path prefix (connect-go: `/<package>.<Service>/`).
pub const SERVICE_PREFIX: &str = "/debuginfo.v1alpha1.DebuginfoService/";
/// `POST` path of the Connect unary `ShouldInitiateUpload`.
pub const SHOULD_INITIATE_UPLOAD_PATH: &str =
    "/debuginfo.v1alpha1.DebuginfoService/ShouldInitiateUpload";
/// `POST` path of the Connect unary `UploadFinished`.
pub const UPLOAD_FINISHED_PATH: &str = "/debuginfo.v1alpha1.DebuginfoService/UploadFinished";
/// Prefix of the plain-HTTP upload route, followed by the GNU build ID.
pub const UPLOAD_PREFIX: &str = "/debuginfo.v1alpha1.DebuginfoService/Upload/";

/// One of the three calls of a debug-info upload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Call {
    ShouldInitiateUpload = 0,
    UploadFinished = 1,
    Upload = 2,
}

impl Call {
    pub const ALL: [Call; 3] = [
        Call::ShouldInitiateUpload,
        Call::UploadFinished,
        Call::Upload,
    ];

    /// The `method` label of `pyroscope_receive_http_debuginfo_downstream_calls_total`
    /// (Alloy's `recordDownstream` names).
    pub fn as_str(self) -> &'static str {
        match self {
            Call::ShouldInitiateUpload => "ShouldInitiateUpload",
            Call::UploadFinished => "UploadFinished",
            Call::Upload => "Upload",
        }
    }
}

impl fmt::Display for Call {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A request path that belongs to the debug-info service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `ShouldInitiateUpload` or `UploadFinished` (Connect unary).
    Unary(Call),
    /// `Upload/{gnu_build_id}`, with the build ID percent-decoded.
    Upload(String),
}

/// Routes a request path (the target before any `?`). `None` when the path is not one of the
/// service's routes: like gorilla/mux, an upload path whose `{gnu_build_id}` is empty or holds a
/// `/` (escaped or not) matches nothing, and so does a build ID that is not UTF-8 after
/// percent-decoding.
pub fn route(path: &[u8]) -> Option<Route> {
    if path == SHOULD_INITIATE_UPLOAD_PATH.as_bytes() {
        return Some(Route::Unary(Call::ShouldInitiateUpload));
    }
    if path == UPLOAD_FINISHED_PATH.as_bytes() {
        return Some(Route::Unary(Call::UploadFinished));
    }
    let id = path.strip_prefix(UPLOAD_PREFIX.as_bytes())?;
    let id = percent_decode(id)?;
    if id.is_empty() || id.contains('/') {
        return None;
    }
    Some(Route::Upload(id))
}

/// RFC 3986 §2.1 percent-decoding of one path segment; `None` on a malformed escape or bytes
/// that are not UTF-8.
fn percent_decode(s: &[u8]) -> Option<String> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while let Some(&b) = s.get(i) {
        if b == b'%' {
            let hi = hex(*s.get(i + 1)?)?;
            let lo = hex(*s.get(i + 2)?)?;
            out.push(hi << 4 | lo);
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Go's `url.PathEscape`: every byte but the unreserved ones and `$&+:=@` becomes `%XX`.
pub fn path_escape_segment(s: &str, out: &mut String) {
    crate::labels::query::percent_escape(s.as_bytes(), out, |b| {
        matches!(b, b'$' | b'&' | b'+' | b':' | b'=' | b'@')
    });
}

/// The upstream path of a unary call on an endpoint whose URL path is `escaped_base` (already
/// escaped): the base without its trailing slash, then the procedure (connect-go's client).
pub fn unary_path(escaped_base: &str, call: Call) -> String {
    let method = match call {
        Call::ShouldInitiateUpload => SHOULD_INITIATE_UPLOAD_PATH,
        Call::UploadFinished => UPLOAD_FINISHED_PATH,
        Call::Upload => UPLOAD_PREFIX.trim_end_matches('/'),
    };
    format!("{}{method}", escaped_base.trim_end_matches('/'))
}

/// The upstream path of an upload: `strings.TrimRight(BaseURL, "/")` + the upload prefix +
/// `url.PathEscape(buildID)` (Alloy's `debuginfoclient.Client.Upload`).
pub fn upload_path(escaped_base: &str, build_id: &str) -> String {
    let mut out = String::with_capacity(escaped_base.len() + UPLOAD_PREFIX.len() + build_id.len());
    out.push_str(escaped_base.trim_end_matches('/'));
    out.push_str(UPLOAD_PREFIX);
    path_escape_segment(build_id, &mut out);
    out
}

/// The message codec of a Connect unary request, by its `Content-Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    /// `application/proto`.
    Proto,
    /// `application/json` (protojson).
    Json,
}

impl Codec {
    /// connect-go's unary content types: the media type before any `;`, case-insensitive.
    pub fn of(content_type: &[u8]) -> Option<Codec> {
        let essence = content_type
            .split(|&b| b == b';')
            .next()
            .unwrap_or_default()
            .trim_ascii();
        if essence.eq_ignore_ascii_case(b"application/proto") {
            Some(Codec::Proto)
        } else if essence.eq_ignore_ascii_case(b"application/json") {
            Some(Codec::Json)
        } else {
            None
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Codec::Proto => "application/proto",
            Codec::Json => "application/json",
        }
    }
}

/// Why a message could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("unmarshal into {message}: truncated protobuf at byte {at}")]
    Truncated { message: &'static str, at: usize },
    #[error("unmarshal into {message}: field {field} has wire type {wire}, want {want}")]
    WireType {
        message: &'static str,
        field: u64,
        wire: u8,
        want: u8,
    },
    #[error("unmarshal into {message}: field {field} is not valid UTF-8")]
    Utf8 { message: &'static str, field: u64 },
    #[error("unmarshal into {message}: {problem}")]
    Json {
        message: &'static str,
        problem: String,
    },
}

/// The identifying fields of a `ShouldInitiateUploadRequest` (`FileMetadata file = 1`:
/// `gnu_build_id = 1`, `go_build_id = 2`, `otel_file_id = 3`, `name = 4`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FileMetadata {
    pub gnu_build_id: String,
    pub go_build_id: String,
    pub otel_file_id: String,
    pub name: String,
}

/// `ShouldInitiateUploadResponse { bool should_initiate_upload = 1; string reason = 2; }`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ShouldInitiateUploadResponse {
    pub should_initiate_upload: bool,
    pub reason: String,
}

const WIRE_VARINT: u8 = 0;
const WIRE_I64: u8 = 1;
const WIRE_LEN: u8 = 2;
const WIRE_I32: u8 = 5;

/// One protobuf field: its number and value.
enum Value<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
    Fixed,
}

/// Walks the fields of one protobuf message (proto3 wire format), skipping none: the caller
/// picks the fields it knows and ignores the rest, as generated code does.
struct Fields<'a> {
    buf: &'a [u8],
    at: usize,
    message: &'static str,
}

impl<'a> Fields<'a> {
    fn new(buf: &'a [u8], message: &'static str) -> Self {
        Fields {
            buf,
            at: 0,
            message,
        }
    }

    fn truncated(&self) -> DecodeError {
        DecodeError::Truncated {
            message: self.message,
            at: self.at,
        }
    }

    fn varint(&mut self) -> Result<u64, DecodeError> {
        let mut v: u64 = 0;
        for shift in (0..64).step_by(7) {
            let b = *self.buf.get(self.at).ok_or_else(|| self.truncated())?;
            self.at += 1;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(self.truncated())
    }

    fn next(&mut self) -> Result<Option<(u64, u8, Value<'a>)>, DecodeError> {
        if self.at >= self.buf.len() {
            return Ok(None);
        }
        let key = self.varint()?;
        let (field, wire) = (key >> 3, (key & 7) as u8);
        if field == 0 {
            return Err(self.truncated());
        }
        let value = match wire {
            WIRE_VARINT => Value::Varint(self.varint()?),
            WIRE_LEN => {
                let len = usize::try_from(self.varint()?).map_err(|_| self.truncated())?;
                let end = self.at.checked_add(len).ok_or_else(|| self.truncated())?;
                let bytes = self.buf.get(self.at..end).ok_or_else(|| self.truncated())?;
                self.at = end;
                Value::Bytes(bytes)
            }
            WIRE_I64 | WIRE_I32 => {
                let n = if wire == WIRE_I64 { 8 } else { 4 };
                if self.buf.len() - self.at < n {
                    return Err(self.truncated());
                }
                self.at += n;
                Value::Fixed
            }
            _ => return Err(self.truncated()),
        };
        Ok(Some((field, wire, value)))
    }

    fn string(&self, field: u64, wire: u8, value: Value<'a>) -> Result<String, DecodeError> {
        match value {
            Value::Bytes(b) => {
                std::str::from_utf8(b)
                    .map(str::to_string)
                    .map_err(|_| DecodeError::Utf8 {
                        message: self.message,
                        field,
                    })
            }
            _ => Err(self.wire_type(field, wire, WIRE_LEN)),
        }
    }

    fn wire_type(&self, field: u64, wire: u8, want: u8) -> DecodeError {
        DecodeError::WireType {
            message: self.message,
            field,
            wire,
            want,
        }
    }
}

const SHOULD_INITIATE_REQUEST: &str = "debuginfo.v1alpha1.ShouldInitiateUploadRequest";
const SHOULD_INITIATE_RESPONSE: &str = "debuginfo.v1alpha1.ShouldInitiateUploadResponse";
const UPLOAD_FINISHED_REQUEST: &str = "debuginfo.v1alpha1.UploadFinishedRequest";
const FILE_METADATA: &str = "debuginfo.v1alpha1.FileMetadata";

/// The `file` of a `ShouldInitiateUploadRequest` (an absent `file` is all empty).
pub fn decode_should_initiate_request(
    codec: Codec,
    body: &[u8],
) -> Result<FileMetadata, DecodeError> {
    match codec {
        Codec::Proto => {
            let mut f = Fields::new(body, SHOULD_INITIATE_REQUEST);
            let mut file = FileMetadata::default();
            while let Some((field, wire, value)) = f.next()? {
                if field == 1 {
                    let Value::Bytes(b) = value else {
                        return Err(f.wire_type(field, wire, WIRE_LEN));
                    };
                    file = decode_file_metadata(b)?;
                }
            }
            Ok(file)
        }
        Codec::Json => {
            let v = json_object(body, SHOULD_INITIATE_REQUEST)?;
            let file = &v["file"];
            let text = |camel: &str, snake: &str| -> Result<String, DecodeError> {
                json_string(file, camel, snake, FILE_METADATA)
            };
            Ok(FileMetadata {
                gnu_build_id: text("gnuBuildId", "gnu_build_id")?,
                go_build_id: text("goBuildId", "go_build_id")?,
                otel_file_id: text("otelFileId", "otel_file_id")?,
                name: text("name", "name")?,
            })
        }
    }
}

fn decode_file_metadata(b: &[u8]) -> Result<FileMetadata, DecodeError> {
    let mut f = Fields::new(b, FILE_METADATA);
    let mut m = FileMetadata::default();
    while let Some((field, wire, value)) = f.next()? {
        let slot = match field {
            1 => &mut m.gnu_build_id,
            2 => &mut m.go_build_id,
            3 => &mut m.otel_file_id,
            4 => &mut m.name,
            _ => continue,
        };
        *slot = f.string(field, wire, value)?;
    }
    Ok(m)
}

/// The `gnu_build_id` of an `UploadFinishedRequest`.
pub fn decode_upload_finished_request(codec: Codec, body: &[u8]) -> Result<String, DecodeError> {
    match codec {
        Codec::Proto => {
            let mut f = Fields::new(body, UPLOAD_FINISHED_REQUEST);
            let mut id = String::new();
            while let Some((field, wire, value)) = f.next()? {
                if field == 1 {
                    id = f.string(field, wire, value)?;
                }
            }
            Ok(id)
        }
        Codec::Json => {
            let v = json_object(body, UPLOAD_FINISHED_REQUEST)?;
            json_string(&v, "gnuBuildId", "gnu_build_id", UPLOAD_FINISHED_REQUEST)
        }
    }
}

/// A `ShouldInitiateUploadResponse`.
pub fn decode_should_initiate_response(
    codec: Codec,
    body: &[u8],
) -> Result<ShouldInitiateUploadResponse, DecodeError> {
    match codec {
        Codec::Proto => {
            let mut f = Fields::new(body, SHOULD_INITIATE_RESPONSE);
            let mut r = ShouldInitiateUploadResponse::default();
            while let Some((field, wire, value)) = f.next()? {
                match (field, value) {
                    (1, Value::Varint(v)) => r.should_initiate_upload = v != 0,
                    (1, _) => return Err(f.wire_type(field, wire, WIRE_VARINT)),
                    (2, value) => r.reason = f.string(field, wire, value)?,
                    _ => {}
                }
            }
            Ok(r)
        }
        Codec::Json => {
            let v = json_object(body, SHOULD_INITIATE_RESPONSE)?;
            let flag = v
                .get("shouldInitiateUpload")
                .or_else(|| v.get("should_initiate_upload"));
            let should_initiate_upload = match flag {
                None | Some(serde_json::Value::Null) => false,
                Some(serde_json::Value::Bool(b)) => *b,
                Some(other) => {
                    return Err(DecodeError::Json {
                        message: SHOULD_INITIATE_RESPONSE,
                        problem: format!("shouldInitiateUpload: want a bool, got {other}"),
                    });
                }
            };
            Ok(ShouldInitiateUploadResponse {
                should_initiate_upload,
                reason: json_string(&v, "reason", "reason", SHOULD_INITIATE_RESPONSE)?,
            })
        }
    }
}

fn json_object(body: &[u8], message: &'static str) -> Result<serde_json::Value, DecodeError> {
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(v @ serde_json::Value::Object(_)) => Ok(v),
        Ok(_) => Err(DecodeError::Json {
            message,
            problem: "want a JSON object".into(),
        }),
        Err(e) => Err(DecodeError::Json {
            message,
            problem: e.to_string(),
        }),
    }
}

/// A protojson string member, under its JSON name or its proto name; absent or `null` is "".
fn json_string(
    v: &serde_json::Value,
    camel: &str,
    snake: &str,
    message: &'static str,
) -> Result<String, DecodeError> {
    match v.get(camel).or_else(|| v.get(snake)) {
        None | Some(serde_json::Value::Null) => Ok(String::new()),
        Some(serde_json::Value::String(s)) => Ok(s.clone()),
        Some(other) => Err(DecodeError::Json {
            message,
            problem: format!("{camel}: want a string, got {other}"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(tag: u8, payload: &[u8]) -> Vec<u8> {
        let mut out = vec![tag, payload.len() as u8];
        out.extend_from_slice(payload);
        out
    }

    #[test]
    fn routes_are_the_three_calls_and_nothing_else() {
        assert_eq!(
            route(b"/debuginfo.v1alpha1.DebuginfoService/ShouldInitiateUpload"),
            Some(Route::Unary(Call::ShouldInitiateUpload))
        );
        assert_eq!(
            route(b"/debuginfo.v1alpha1.DebuginfoService/UploadFinished"),
            Some(Route::Unary(Call::UploadFinished))
        );
        assert_eq!(
            route(b"/debuginfo.v1alpha1.DebuginfoService/Upload/ab01%2B"),
            Some(Route::Upload("ab01+".into()))
        );
        for other in [
            &b"/debuginfo.v1alpha1.DebuginfoService/Upload/"[..],
            b"/debuginfo.v1alpha1.DebuginfoService/Upload/a/b",
            b"/debuginfo.v1alpha1.DebuginfoService/Upload/a%2Fb",
            b"/debuginfo.v1alpha1.DebuginfoService/Upload/%zz",
            b"/debuginfo.v1alpha1.DebuginfoService/Upload",
            b"/debuginfo.v1alpha1.DebuginfoService/Other",
            b"/ingest",
        ] {
            assert_eq!(route(other), None, "{}", String::from_utf8_lossy(other));
        }
    }

    #[test]
    fn upstream_paths_join_the_endpoint_path_as_connect_go_and_alloy() {
        assert_eq!(
            unary_path("/", Call::ShouldInitiateUpload),
            SHOULD_INITIATE_UPLOAD_PATH
        );
        assert_eq!(
            unary_path("/pyro/", Call::UploadFinished),
            "/pyro/debuginfo.v1alpha1.DebuginfoService/UploadFinished"
        );
        assert_eq!(
            upload_path("/base", "ab/c d+"),
            "/base/debuginfo.v1alpha1.DebuginfoService/Upload/ab%2Fc%20d+"
        );
        assert_eq!(
            upload_path("", "deadbeef"),
            "/debuginfo.v1alpha1.DebuginfoService/Upload/deadbeef"
        );
    }

    #[test]
    fn a_build_id_survives_the_upstream_path_and_the_router() {
        for id in ["deadbeef", "a b", "ü%2F", "x+y=z@:$&", "~._-", "%", "?#[]"] {
            let path = upload_path("", id);
            assert_eq!(
                route(path.as_bytes()),
                Some(Route::Upload(id.into())),
                "{path}"
            );
        }
    }

    #[test]
    fn codecs_follow_the_unary_content_types() {
        assert_eq!(Codec::of(b"application/proto"), Some(Codec::Proto));
        assert_eq!(
            Codec::of(b"Application/JSON; charset=utf-8"),
            Some(Codec::Json)
        );
        assert_eq!(Codec::of(b"application/grpc"), None);
        assert_eq!(Codec::of(b""), None);
    }

    #[test]
    fn should_initiate_request_decodes_the_file_metadata_from_proto() {
        let mut file = field(0x0a, b"abc123");
        file.extend(field(0x12, b"go-id"));
        file.extend(field(0x22, b"/usr/bin/app"));
        file.extend([0x28, 0x01]); // type = 1, a varint the gateway ignores
        let body = field(0x0a, &file);
        let m = decode_should_initiate_request(Codec::Proto, &body).unwrap();
        assert_eq!(m.gnu_build_id, "abc123");
        assert_eq!(m.go_build_id, "go-id");
        assert_eq!(m.name, "/usr/bin/app");
        assert_eq!(m.otel_file_id, "");
        assert_eq!(
            decode_should_initiate_request(Codec::Proto, &[]).unwrap(),
            FileMetadata::default()
        );
    }

    #[test]
    fn should_initiate_request_decodes_protojson_names() {
        let m = decode_should_initiate_request(
            Codec::Json,
            br#"{"file":{"gnuBuildId":"abc","name":"app","type":"TYPE_EXECUTABLE_FULL"}}"#,
        )
        .unwrap();
        assert_eq!((m.gnu_build_id.as_str(), m.name.as_str()), ("abc", "app"));
        let m = decode_should_initiate_request(Codec::Json, br#"{"file":{"gnu_build_id":"x"}}"#)
            .unwrap();
        assert_eq!(m.gnu_build_id, "x");
    }

    #[test]
    fn bad_messages_are_errors_naming_the_message() {
        let e = decode_should_initiate_request(Codec::Proto, &[0x0a, 0x05, 0x01]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "unmarshal into debuginfo.v1alpha1.ShouldInitiateUploadRequest: truncated protobuf at byte 2"
        );
        let e = decode_upload_finished_request(Codec::Proto, &[0x08, 0x01]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "unmarshal into debuginfo.v1alpha1.UploadFinishedRequest: field 1 has wire type 0, want 2"
        );
        let e = decode_upload_finished_request(Codec::Json, b"[1]").unwrap_err();
        assert_eq!(
            e.to_string(),
            "unmarshal into debuginfo.v1alpha1.UploadFinishedRequest: want a JSON object"
        );
        let e = decode_upload_finished_request(Codec::Json, br#"{"gnuBuildId":7}"#).unwrap_err();
        assert!(
            e.to_string().contains("gnuBuildId: want a string, got 7"),
            "{e}"
        );
        let e = decode_upload_finished_request(Codec::Proto, &field(0x0a, &[0xff])).unwrap_err();
        assert!(matches!(e, DecodeError::Utf8 { field: 1, .. }));
    }

    #[test]
    fn upload_finished_request_decodes_both_codecs() {
        assert_eq!(
            decode_upload_finished_request(Codec::Proto, &field(0x0a, b"beef")).unwrap(),
            "beef"
        );
        assert_eq!(
            decode_upload_finished_request(Codec::Json, br#"{"gnuBuildId":"beef"}"#).unwrap(),
            "beef"
        );
        assert_eq!(
            decode_upload_finished_request(Codec::Json, b"{}").unwrap(),
            ""
        );
    }

    #[test]
    fn should_initiate_response_decodes_both_codecs() {
        let mut body = vec![0x08, 0x01];
        body.extend(field(0x12, b"first time"));
        let r = decode_should_initiate_response(Codec::Proto, &body).unwrap();
        assert!(r.should_initiate_upload);
        assert_eq!(r.reason, "first time");
        // proto3: an absent bool is false.
        let r = decode_should_initiate_response(Codec::Proto, &field(0x12, b"known")).unwrap();
        assert!(!r.should_initiate_upload);
        let r = decode_should_initiate_response(
            Codec::Json,
            br#"{"shouldInitiateUpload":true,"reason":"r"}"#,
        )
        .unwrap();
        assert!(r.should_initiate_upload);
        assert_eq!(r.reason, "r");
        let r = decode_should_initiate_response(Codec::Json, b"{}").unwrap();
        assert!(!r.should_initiate_upload);
        assert!(
            decode_should_initiate_response(Codec::Json, br#"{"shouldInitiateUpload":"yes"}"#)
                .is_err()
        );
        assert!(decode_should_initiate_response(Codec::Proto, &[0x0a, 0x00]).is_err());
    }
}
