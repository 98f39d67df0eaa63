//! Pyroscope's acceptance rules, as pure functions over one received request.
//!
//! Owns: what Pyroscope answers to a request on its ingest routes before it stores anything —
//! routing and methods, the `/ingest` `name` label set, the text formats' profile-type suffix
//! and folded-line counts, the multipart parts (grafana/pyroscope
//! `pkg/ingester/pyroscope/ingest_handler.go`, `ingest_adapter.go`, `pkg/og/convert/parser.go`),
//! the Connect unary protocol of `POST /push.v1.PusherService/Push` (connectrpc/connect-go
//! `protocol_connect.go`, `handler.go`) and the distributor's series validation
//! (grafana/pyroscope `pkg/validation/validate.go`), with the status and JSON error body of each
//! refusal (`pkg/util/http/error.go` for `/ingest`, connect-go's error writer for Push). Does not
//! own sockets, scripted answers or counters ([`crate::server`]), nor decode pprof or JFR
//! payloads.

use crate::gzip::{Gunzip, gunzip_bounded};
use crate::http::find;
use crate::labelset::{normalized, parse_labelset, parse_query};
use crate::push::{PUSH_PATH, PushRequest};
use crate::server::Recorded;

/// Pyroscope's default `-distributor.ingestion-body-limit-mb` (256 MiB).
pub const DEFAULT_BODY_LIMIT: usize = 256 * 1024 * 1024;
/// Pyroscope's default `max_profile_size_bytes` (`pkg/validation/limits.go`).
pub const MAX_PROFILE_SIZE_BYTES: usize = 4 * 1024 * 1024;
/// `validation.max-label-names-per-series` default.
pub const MAX_LABEL_NAMES_PER_SERIES: usize = 30;
/// `validation.max-label-name-length` default.
pub const MAX_LABEL_NAME_LENGTH: usize = 1024;
/// `validation.max-label-value-length` default.
pub const MAX_LABEL_VALUE_LENGTH: usize = 2048;

/// The profile-type suffixes `convertMetadata` knows (grafana/pyroscope
/// `pkg/ingester/pyroscope/ingest_adapter.go`); an app name without a dot means `cpu`.
pub const KNOWN_PROFILE_TYPES: &[&str] = &[
    "cpu",
    "wall",
    "inuse_objects",
    "inuse_space",
    "alloc_objects",
    "alloc_space",
    "goroutines",
    "mutex_count",
    "mutex_duration",
    "block_count",
    "block_duration",
    "itimer",
    "alloc_in_new_tlab_objects",
    "alloc_in_new_tlab_bytes",
    "alloc_outside_tlab_objects",
    "alloc_outside_tlab_bytes",
    "lock_count",
    "lock_duration",
    "live",
    "exceptions",
    "seconds",
    "nanoseconds",
    "microseconds",
    "milliseconds",
    "bytes",
];

/// The content types connect-go lists in `Accept-Post` on a 415 for a unary procedure.
pub const ACCEPT_POST: &str = "application/grpc, application/grpc+json, application/grpc+proto, application/grpc-web, application/grpc-web+json, application/grpc-web+proto, application/json, application/proto";

/// Most digits connect-go accepts in `Connect-Timeout-Ms` (Connect protocol spec: "Timeout →
/// positive integer of at most 10 digits").
const MAX_TIMEOUT_DIGITS: usize = 10;

/// Which ingest route a path is, under the stand-in's path prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// `/ingest` or `/pyroscope/ingest` (grafana/pyroscope `pkg/api/api.go`).
    Ingest,
    /// `/push.v1.PusherService/Push`.
    Push,
    /// `/v1development/profiles` (OTLP/HTTP profiles).
    Otlp,
    /// Anything else: 404.
    Unknown,
}

/// Routes `path` as Pyroscope behind a reverse proxy serving it under `prefix` would.
pub fn route(prefix: &str, path: &str) -> Route {
    match path.strip_prefix(prefix) {
        Some("/ingest" | "/pyroscope/ingest") => Route::Ingest,
        Some(p) if p == PUSH_PATH => Route::Push,
        Some(crate::otlp::OTLP_PATH) => Route::Otlp,
        _ => Route::Unknown,
    }
}

/// An error answer, in Pyroscope's shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
    /// Headers beyond Content-Type (`Allow`, `Accept-Post`, `X-Content-Type-Options`).
    pub extra: Vec<(&'static str, &'static str)>,
}

impl Rejection {
    /// A Connect error as connect-go's error writer writes it (no trailing newline).
    pub fn connect(status: u16, code: &str, message: &str) -> Rejection {
        Rejection {
            status,
            content_type: "application/json",
            body: json_error(code, message),
            extra: Vec::new(),
        }
    }

    /// `httputil.ErrorWithStatus` (grafana/pyroscope `pkg/util/http/error.go`): JSON from
    /// `json.Encoder` (so a trailing newline), the code from `connectgrpc.HTTPToCode(status)`,
    /// `X-Content-Type-Options: nosniff`.
    pub fn with_status(status: u16, message: &str) -> Rejection {
        let mut body = json_error(http_to_code(status), message);
        body.push(b'\n');
        Rejection {
            status,
            content_type: "application/json",
            body,
            extra: vec![("X-Content-Type-Options", "nosniff")],
        }
    }

    /// An empty answer (gorilla/mux's 405, connect-go's 405 and 415).
    pub fn empty(status: u16, extra: Vec<(&'static str, &'static str)>) -> Rejection {
        Rejection {
            status,
            content_type: "text/plain; charset=utf-8",
            body: Vec::new(),
            extra,
        }
    }

    /// Go's `http.NotFound`.
    pub fn not_found() -> Rejection {
        Rejection {
            status: 404,
            content_type: "text/plain; charset=utf-8",
            body: b"404 page not found\n".to_vec(),
            extra: vec![("X-Content-Type-Options", "nosniff")],
        }
    }

    /// The answer to a body over the limit: on `/ingest` the handler's 413 for an
    /// `*http.MaxBytesError`; on Push connect-go's `WithReadMaxBytes` error,
    /// `resource_exhausted` (HTTP 429).
    pub fn too_large(route: Route, limit: usize) -> Rejection {
        if route == Route::Push {
            Rejection::connect(
                429,
                "resource_exhausted",
                &format!("message size is larger than configured max {limit}"),
            )
        } else {
            Rejection::with_status(413, "request body too large: http: request body too large")
        }
    }
}

/// `connectgrpc.HTTPToCode` (grafana/pyroscope `pkg/util/connectgrpc/connectgrpc.go`): the code
/// `httputil.ErrorWithStatus` writes for a status.
pub fn http_to_code(status: u16) -> &'static str {
    match status {
        400 | 413 => "invalid_argument",
        401 => "unauthenticated",
        403 => "permission_denied",
        404 => "unimplemented",
        412 => "failed_precondition",
        429 | 431 => "resource_exhausted",
        499 => "canceled",
        502 | 503 => "unavailable",
        504 => "deadline_exceeded",
        _ => "unknown",
    }
}

/// `{"code":"<code>","message":"<message>"}` with JSON string escaping.
pub fn json_error(code: &str, message: &str) -> Vec<u8> {
    let mut out = String::from("{\"code\":\"");
    json_escape_into(&mut out, code);
    out.push_str("\",\"message\":\"");
    json_escape_into(&mut out, message);
    out.push_str("\"}");
    out.into_bytes()
}

fn json_escape_into(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
}

/// A request Pyroscope would take: the canonical label set (for counters) and the profile
/// payloads (`/ingest`: the body; Push: every sample's `raw_profile`), plus for a push the
/// decoded message and its codec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    /// `/ingest`: `labelset.Normalized()`; Push: each series' sorted `k=v` pairs joined by
    /// `,`, series joined by `;`.
    pub label_key: String,
    pub codec: Option<PushCodec>,
}

/// Applies Pyroscope's `/ingest` rules (method, `name`, body by format) to a fully received
/// request on an ingest route.
pub fn judge_ingest(req: &Recorded) -> Result<Accepted, Rejection> {
    if req.method != "POST" {
        return Err(Rejection::empty(405, Vec::new()));
    }
    let query = parse_query(&req.query);
    let first = |key: &str| {
        query
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    };
    let labels = parse_labelset(first("name").unwrap_or(""))
        .map_err(|e| Rejection::with_status(400, &format!("name: {e}")))?;
    let format = first("format").unwrap_or("");
    let content_type = req.header("content-type").unwrap_or("");
    let multipart = content_type.contains("multipart/form-data");
    // `readInputRawDataFromRequest`'s switch, first match wins; conversion errors are 422.
    let unprocessable = |msg: String| Rejection::with_status(422, &msg);
    let text_format = match format {
        "trie" | "tree" | "lines" => true,
        _ if content_type == "binary/octet-stream+trie"
            || content_type == "binary/octet-stream+tree" =>
        {
            true
        }
        "jfr" => {
            if multipart {
                let parts = parse_multipart(content_type, &req.body).map_err(unprocessable)?;
                require_file_part(&parts, "jfr").map_err(unprocessable)?;
            }
            false
        }
        // A multipart body with format=pprof is not unpacked: it fails to parse as pprof.
        "pprof" if multipart => {
            return Err(unprocessable(
                "failed to parse pprof: multipart body with format=pprof".into(),
            ));
        }
        "pprof" => false,
        "speedscope" => true,
        _ if multipart => {
            let parts = parse_multipart(content_type, &req.body).map_err(unprocessable)?;
            require_file_part(&parts, "profile").map_err(unprocessable)?;
            if has_file_part(&parts, "prev_profile") {
                return Err(unprocessable("unsupported client version".into()));
            }
            false
        }
        _ => {
            // Folded ("groups"): `convert.ParseGroups` runs before the profile type is looked at.
            check_folded(&req.body).map_err(unprocessable)?;
            true
        }
    };
    // Text formats take the profile type from the app name (`convertMetadata`), except that a
    // `profile_id` label makes `Put` drop the profile silently first.
    if text_format && !labels.iter().any(|(k, _)| k == "profile_id") {
        let app = labels
            .iter()
            .find(|(k, _)| k == "__name__")
            .map_or("", |(_, v)| v.as_str());
        let profile_type = app.rsplit_once('.').map_or("cpu", |(_, s)| s);
        if !KNOWN_PROFILE_TYPES.contains(&profile_type) {
            return Err(Rejection::connect(
                400,
                "invalid_argument",
                &format!("unknown profile type: {profile_type}"),
            ));
        }
    }
    Ok(Accepted {
        label_key: normalized(&labels),
        codec: None,
    })
}

/// Folded lines `a;b;c 10` as `convert.ParseGroups` reads them: `bufio.ScanLines` (a trailing
/// `\r` dropped), split at the last space, the count parsed by `strconv.Atoi` (optional sign,
/// 64-bit range); a line without a space is skipped. The error is Go's.
pub fn check_folded(body: &[u8]) -> Result<(), String> {
    for line in body.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(pos) = line.iter().rposition(|&b| b == b' ') else {
            continue;
        };
        let count = &line[pos + 1..];
        let quoted = || format!("{:?}", String::from_utf8_lossy(count));
        let digits = count
            .strip_prefix(b"-")
            .or_else(|| count.strip_prefix(b"+"))
            .unwrap_or(count);
        if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
            return Err(format!(
                "strconv.Atoi: parsing {}: invalid syntax",
                quoted()
            ));
        }
        if std::str::from_utf8(count)
            .ok()
            .and_then(|c| c.parse::<i64>().ok())
            .is_none()
        {
            return Err(format!(
                "strconv.Atoi: parsing {}: value out of range",
                quoted()
            ));
        }
    }
    Ok(())
}

/// Whether a part named `name` counts for `form.File[name]`: it has a filename and is not
/// empty.
fn has_file_part(parts: &[Part], name: &str) -> bool {
    parts
        .iter()
        .any(|p| p.name == name && p.filename.is_some() && p.len > 0)
}

fn require_file_part(parts: &[Part], name: &str) -> Result<(), String> {
    if has_file_part(parts, name) {
        Ok(())
    } else {
        Err(format!("{name} is required"))
    }
}

/// One multipart part, as Go's `multipart.Reader` would see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    pub name: String,
    pub filename: Option<String>,
    pub len: usize,
}

/// Splits a `multipart/form-data` body into its parts (RFC 7578).
pub fn parse_multipart(content_type: &str, body: &[u8]) -> Result<Vec<Part>, String> {
    let boundary = content_type
        .split(';')
        .map(str::trim)
        .find_map(|p| p.strip_prefix("boundary="))
        .map(|b| b.trim_matches('"'))
        .filter(|b| !b.is_empty())
        .ok_or_else(|| "no multipart boundary param in Content-Type".to_string())?;
    let delim = format!("--{boundary}").into_bytes();
    let mut pos = find(body, &delim).ok_or("multipart: NextPart: EOF")?;
    let mut parts = Vec::new();
    loop {
        let after = pos + delim.len();
        let rest = body.get(after..).ok_or("multipart: truncated")?;
        if rest.starts_with(b"--") {
            return Ok(parts);
        }
        let rest = rest
            .strip_prefix(b"\r\n")
            .ok_or("multipart: malformed boundary line")?;
        let part_start = after + 2;
        let head_end = find(rest, b"\r\n\r\n").ok_or("multipart: malformed part header")?;
        let head = String::from_utf8_lossy(&rest[..head_end]).into_owned();
        let data_start = part_start + head_end + 4;
        let mut next_delim = b"\r\n".to_vec();
        next_delim.extend_from_slice(&delim);
        let data_len = find(body.get(data_start..).unwrap_or(&[]), &next_delim)
            .ok_or("multipart: NextPart: EOF")?;
        let mut name = String::new();
        let mut filename = None;
        for line in head.split("\r\n") {
            let Some((hname, value)) = line.split_once(':') else {
                continue;
            };
            if !hname.trim().eq_ignore_ascii_case("content-disposition") {
                continue;
            }
            for param in value.split(';').map(str::trim) {
                if let Some(v) = param.strip_prefix("name=") {
                    name = v.trim_matches('"').to_string();
                } else if let Some(v) = param.strip_prefix("filename=") {
                    filename = Some(v.trim_matches('"').to_string());
                }
            }
        }
        parts.push(Part {
            name,
            filename,
            len: data_len,
        });
        pos = data_start + data_len + 2;
    }
}

/// The codec of an accepted Connect unary push, by its Content-Type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushCodec {
    /// `application/proto`.
    Proto,
    /// `application/json` (protojson).
    Json,
}

/// What Pyroscope's connect-go handler does with one request to the Push route, up to the
/// point where it would store the profiles: the decoded message (when the body decompressed
/// and decoded) and either the acceptance or the error answer.
pub fn judge_push(
    body_limit: usize,
    req: &Recorded,
) -> (Option<PushRequest>, Result<Accepted, Rejection>) {
    let invalid = |message: String| Rejection::connect(400, "invalid_argument", &message);
    if req.method != "POST" {
        return (None, Err(Rejection::empty(405, vec![("Allow", "POST")])));
    }
    let media = req
        .header("content-type")
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let codec = match media.as_str() {
        "application/proto" => PushCodec::Proto,
        "application/json" => PushCodec::Json,
        _ => {
            return (
                None,
                Err(Rejection::empty(415, vec![("Accept-Post", ACCEPT_POST)])),
            );
        }
    };
    if let Some(version) = req.header("connect-protocol-version")
        && version != "1"
    {
        return (
            None,
            Err(invalid(format!(
                "connect-protocol-version must be \"1\": got {version:?}"
            ))),
        );
    }
    if let Some(timeout) = req.header("connect-timeout-ms")
        && (timeout.is_empty()
            || timeout.len() > MAX_TIMEOUT_DIGITS
            || !timeout.bytes().all(|b| b.is_ascii_digit()))
    {
        return (
            None,
            Err(invalid(format!(
                "protocol error: invalid timeout {timeout:?}"
            ))),
        );
    }
    let encoding = req.header("content-encoding").unwrap_or("").trim();
    let message = match encoding {
        "" | "identity" => req.body.clone(),
        "gzip" => match gunzip_bounded(&req.body, body_limit) {
            Ok(inflated) => inflated,
            Err(Gunzip::TooLarge) => {
                return (None, Err(Rejection::too_large(Route::Push, body_limit)));
            }
            Err(Gunzip::Corrupt(e)) => return (None, Err(invalid(format!("decompress: {e}")))),
        },
        other => {
            return (
                None,
                Err(Rejection::connect(
                    501,
                    "unimplemented",
                    &format!("unknown compression {other:?}: supported encodings are gzip"),
                )),
            );
        }
    };
    let decoded = match codec {
        PushCodec::Proto => PushRequest::decode(&message),
        PushCodec::Json => PushRequest::from_json(&message),
    };
    let decoded = match decoded {
        Ok(d) => d,
        Err(e) => {
            return (
                None,
                Err(invalid(format!("unmarshal into *v1.PushRequest: {e}"))),
            );
        }
    };
    let verdict = match validate_push(&decoded) {
        Ok(()) => Ok(Accepted {
            label_key: push_label_key(&decoded),
            codec: Some(codec),
        }),
        Err(message) => Err(invalid(message)),
    };
    (Some(decoded), verdict)
}

/// Each series' labels sorted as `k=v` joined by `,`; series joined by `;`.
fn push_label_key(request: &PushRequest) -> String {
    let keys: Vec<String> = request
        .series
        .iter()
        .map(|s| {
            let mut labels: Vec<String> =
                s.labels.iter().map(|(n, v)| format!("{n}={v}")).collect();
            labels.sort();
            labels.join(",")
        })
        .collect();
    keys.join(";")
}

/// The Connect code a Connect server puts on an error answered with HTTP `status` (the
/// inverse of connect-go's code → HTTP table, one code per status).
pub fn connect_code_for_status(status: u16) -> &'static str {
    match status {
        400 => "invalid_argument",
        401 => "unauthenticated",
        403 => "permission_denied",
        404 => "not_found",
        408 | 504 => "deadline_exceeded",
        409 => "aborted",
        412 => "failed_precondition",
        413 | 429 => "resource_exhausted",
        499 => "canceled",
        500 => "internal",
        501 => "unimplemented",
        503 => "unavailable",
        _ => "unknown",
    }
}

/// Pyroscope's label-name rule for pushed series, `[a-zA-Z_][a-zA-Z0-9_.]*`.
pub fn valid_label_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    match bytes.next() {
        Some(b) if b.is_ascii_alphabetic() || b == b'_' => {}
        _ => return false,
    }
    bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.')
}

/// Prometheus' legacy metric-name rule `[a-zA-Z_:][a-zA-Z0-9_:]*`
/// (prometheus/common `model.IsValidMetricName`).
fn valid_metric_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    match bytes.next() {
        Some(b) if b.is_ascii_alphabetic() || b == b'_' || b == b':' => {}
        _ => return false,
    }
    bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b':')
}

/// `{a="1", b="2"}` as Pyroscope's `LabelPairsString` prints a series in error messages.
pub fn label_pairs_string(labels: &[(String, String)]) -> String {
    let inner: Vec<String> = labels.iter().map(|(n, v)| format!("{n}={v:?}")).collect();
    format!("{{{}}}", inner.join(", "))
}

/// What Pyroscope's distributor checks on a push before accepting it, in
/// `validation.ValidateLabels` order (grafana/pyroscope `pkg/validation/validate.go`): at least
/// one series; per series at least one label, at most 30 label names, a valid `__name__`, a
/// non-empty `service_name`, then per label (sorted) name length, value length, name syntax and
/// duplicates; per sample a `raw_profile` of at most 4 MiB. `Err` holds the message of the
/// `invalid_argument` answer.
pub fn validate_push(request: &PushRequest) -> Result<(), String> {
    if request.series.is_empty() {
        return Err("no profiles received".into());
    }
    for series in &request.series {
        let mut sorted = series.labels.clone();
        sorted.sort();
        let shown = label_pairs_string(&sorted);
        let invalid = |why: String| format!("invalid labels '{shown}' with error: {why}");
        if sorted.is_empty() {
            return Err("error at least one label pair is required per profile".into());
        }
        if sorted.len() > MAX_LABEL_NAMES_PER_SERIES {
            return Err(format!(
                "profile series '{shown}' has {} label names; limit {MAX_LABEL_NAMES_PER_SERIES}",
                sorted.len()
            ));
        }
        if !valid_metric_name(series.label("__name__").unwrap_or("")) {
            return Err(invalid("invalid metric name".into()));
        }
        if series.label("service_name").is_none_or(str::is_empty) {
            return Err(invalid("service name is not provided".into()));
        }
        let mut last: Option<&str> = None;
        for (name, value) in &sorted {
            if name.len() > MAX_LABEL_NAME_LENGTH {
                return Err(format!(
                    "profile with labels '{shown}' has label name too long: '{name}'"
                ));
            }
            if value.len() > MAX_LABEL_VALUE_LENGTH {
                return Err(format!(
                    "profile with labels '{shown}' has label value too long: '{value}'"
                ));
            }
            if !valid_label_name(name) {
                return Err(invalid(format!("invalid label name '{name}'")));
            }
            if last == Some(name.as_str()) {
                return Err(format!(
                    "profile with labels '{shown}' has duplicate label name: '{name}'"
                ));
            }
            last = Some(name);
        }
        for sample in &series.samples {
            if sample.raw_profile.len() > MAX_PROFILE_SIZE_BYTES {
                return Err(format!(
                    "the profile with labels '{shown}' exceeds the size limit (max_profile_size_byte, actual: {}, limit: {MAX_PROFILE_SIZE_BYTES})",
                    sample.raw_profile.len()
                ));
            }
        }
    }
    Ok(())
}
