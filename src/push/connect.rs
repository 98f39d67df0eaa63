//! The Connect protocol around the Push method (connectrpc.com/docs/protocol): error codes and
//! their HTTP and gRPC numbers, the JSON error body in both directions, content-type
//! classification and `Connect-Timeout-Ms`.
//!
//! Owns: the tables connect-go applies (`protocol_connect.go`: `connectCodeToHTTP`,
//! `connectHTTPToCode`; `code.go`) and Alloy's retry rule for Push (`write.go`: `shouldRetry`).
//! Does not own: which code a given failure maps to (the server and senders decide).
//! Cold path apart from [`classify`] and [`parse_timeout_ms`] (once per request).

use std::fmt;
use std::time::Duration;

use super::json;

/// The `Accept-Post` value sent with a 415, listing what the Push endpoint decodes.
pub const ACCEPT_POST: &str =
    "application/grpc-web, application/grpc-web+proto, application/json, application/proto";

/// Most bytes of a rejected `Content-Type` echoed back in the error message.
const MAX_ECHOED_CONTENT_TYPE: usize = 128;

/// `Connect-Timeout-Ms` is "a positive integer as ASCII string of at most 10 digits".
const MAX_TIMEOUT_DIGITS: usize = 10;

/// A Connect (and gRPC) status code other than OK, in gRPC's numbering order (1 to 16).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Code {
    Canceled,
    Unknown,
    InvalidArgument,
    DeadlineExceeded,
    NotFound,
    AlreadyExists,
    PermissionDenied,
    ResourceExhausted,
    FailedPrecondition,
    Aborted,
    OutOfRange,
    Unimplemented,
    Internal,
    Unavailable,
    DataLoss,
    Unauthenticated,
}

impl Code {
    /// Every code, in gRPC order.
    pub const ALL: [Code; 16] = [
        Code::Canceled,
        Code::Unknown,
        Code::InvalidArgument,
        Code::DeadlineExceeded,
        Code::NotFound,
        Code::AlreadyExists,
        Code::PermissionDenied,
        Code::ResourceExhausted,
        Code::FailedPrecondition,
        Code::Aborted,
        Code::OutOfRange,
        Code::Unimplemented,
        Code::Internal,
        Code::Unavailable,
        Code::DataLoss,
        Code::Unauthenticated,
    ];

    /// The code's name in Connect error bodies (`"invalid_argument"`).
    pub fn as_str(self) -> &'static str {
        match self {
            Code::Canceled => "canceled",
            Code::Unknown => "unknown",
            Code::InvalidArgument => "invalid_argument",
            Code::DeadlineExceeded => "deadline_exceeded",
            Code::NotFound => "not_found",
            Code::AlreadyExists => "already_exists",
            Code::PermissionDenied => "permission_denied",
            Code::ResourceExhausted => "resource_exhausted",
            Code::FailedPrecondition => "failed_precondition",
            Code::Aborted => "aborted",
            Code::OutOfRange => "out_of_range",
            Code::Unimplemented => "unimplemented",
            Code::Internal => "internal",
            Code::Unavailable => "unavailable",
            Code::DataLoss => "data_loss",
            Code::Unauthenticated => "unauthenticated",
        }
    }

    /// The HTTP status of a Connect unary error with this code (protocol spec, "Error Codes";
    /// connect-go `connectCodeToHTTP`).
    pub fn http_status(self) -> u16 {
        match self {
            Code::Canceled => 499,
            Code::Unknown => 500,
            Code::InvalidArgument => 400,
            Code::DeadlineExceeded => 504,
            Code::NotFound => 404,
            Code::AlreadyExists => 409,
            Code::PermissionDenied => 403,
            Code::ResourceExhausted => 429,
            Code::FailedPrecondition => 400,
            Code::Aborted => 409,
            Code::OutOfRange => 400,
            Code::Unimplemented => 501,
            Code::Internal => 500,
            Code::Unavailable => 503,
            Code::DataLoss => 500,
            Code::Unauthenticated => 401,
        }
    }

    /// The numeric gRPC status (`grpc-status` trailer).
    pub fn grpc_status(self) -> u8 {
        match self {
            Code::Canceled => 1,
            Code::Unknown => 2,
            Code::InvalidArgument => 3,
            Code::DeadlineExceeded => 4,
            Code::NotFound => 5,
            Code::AlreadyExists => 6,
            Code::PermissionDenied => 7,
            Code::ResourceExhausted => 8,
            Code::FailedPrecondition => 9,
            Code::Aborted => 10,
            Code::OutOfRange => 11,
            Code::Unimplemented => 12,
            Code::Internal => 13,
            Code::Unavailable => 14,
            Code::DataLoss => 15,
            Code::Unauthenticated => 16,
        }
    }

    /// The code named by a Connect error body's `code` (exact, lower-case, as connect-go).
    pub fn parse(s: &str) -> Option<Code> {
        Code::ALL.into_iter().find(|c| c.as_str() == s)
    }

    /// The code connect-go's client gives a response whose body is not a Connect error
    /// (connectrpc/connect-go `protocol_connect.go`, `connectHTTPToCode`; Alloy's
    /// `internal/component/pyroscope/write/write.go` `shouldRetry` retries on it). 400 becoming
    /// `internal` is real.
    pub fn from_http_status(status: u16) -> Code {
        match status {
            400 => Code::Internal,
            401 => Code::Unauthenticated,
            403 => Code::PermissionDenied,
            404 => Code::Unimplemented,
            429 | 502 | 503 | 504 => Code::Unavailable,
            _ => Code::Unknown,
        }
    }

    /// Alloy's `shouldRetry` for a Push error carrying this code.
    pub fn is_retryable(self, retry_on_429: bool) -> bool {
        match self {
            Code::DeadlineExceeded
            | Code::Unknown
            | Code::Internal
            | Code::Unavailable
            | Code::DataLoss
            | Code::Aborted => true,
            Code::ResourceExhausted => retry_on_429,
            _ => false,
        }
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A Connect unary error body: `{"code":"invalid_argument","message":"..."}`, escaped as Go's
/// `encoding/json` does (connect-go marshals its wire error with it); an empty message is left
/// out (`omitempty`).
pub fn error_body(code: Code, message: &str) -> String {
    let mut out = String::with_capacity(32 + message.len());
    out.push_str("{\"code\":\"");
    out.push_str(code.as_str());
    out.push('"');
    if !message.is_empty() {
        out.push_str(",\"message\":");
        json::push_go_string(&mut out, message);
    }
    out.push('}');
    out
}

/// The code and message of an upstream's Connect error body, or `None` when the body is not a
/// JSON object whose `code` names a Connect code (the caller then uses
/// [`Code::from_http_status`], as connect-go does). Other members (`details`) are ignored; a
/// missing or `null` message is empty.
pub fn parse_error_body(body: &[u8]) -> Option<(Code, String)> {
    json::parse_error_object(body)
}

/// The request protocols the Push endpoint speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// Connect unary, `application/proto`.
    ConnectProto,
    /// Connect unary, `application/json` (protojson).
    ConnectJson,
    /// gRPC-Web, `application/grpc-web` or `application/grpc-web+proto`.
    GrpcWeb,
}

impl Protocol {
    /// The `Content-Type` of a successful response.
    pub fn response_content_type(self) -> &'static str {
        match self {
            Protocol::ConnectProto => "application/proto",
            Protocol::ConnectJson => "application/json",
            Protocol::GrpcWeb => "application/grpc-web+proto",
        }
    }
}

/// A `Content-Type` the Push endpoint does not decode: HTTP 415 with a Connect error body and
/// [`ACCEPT_POST`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnsupportedContentType {
    /// The rejected value, lossily decoded and cut to a bounded length for the message.
    pub content_type: String,
    /// `application/connect+*`: the Connect streaming protocol, which a unary method refuses.
    pub streaming: bool,
}

impl UnsupportedContentType {
    /// The Connect code of the error body.
    pub fn code(&self) -> Code {
        Code::Unimplemented
    }

    /// The HTTP status: 415, whatever the code's own status is.
    pub fn http_status(&self) -> u16 {
        415
    }
}

impl fmt::Display for UnsupportedContentType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.streaming {
            write!(
                f,
                "content type {:?} is the Connect streaming protocol; {} is unary: use application/proto or application/json",
                self.content_type,
                super::PUSH_PATH
            )
        } else {
            write!(
                f,
                "unsupported content type {:?}: use application/proto, application/json or application/grpc-web+proto",
                self.content_type
            )
        }
    }
}

impl std::error::Error for UnsupportedContentType {}

/// The protocol of a request by its `Content-Type` (the unary content types connect-go's handler
/// accepts: `protocol_connect.go`, `protocol_grpc.go` for gRPC and gRPC-Web): the media
/// type before any `;` parameter, trimmed, compared case-insensitively.
pub fn classify(content_type: &[u8]) -> Result<Protocol, UnsupportedContentType> {
    let essence = content_type
        .split(|&b| b == b';')
        .next()
        .unwrap_or_default()
        .trim_ascii();
    let is = |t: &str| essence.eq_ignore_ascii_case(t.as_bytes());
    if is("application/proto") {
        Ok(Protocol::ConnectProto)
    } else if is("application/json") {
        Ok(Protocol::ConnectJson)
    } else if is("application/grpc-web") || is("application/grpc-web+proto") {
        Ok(Protocol::GrpcWeb)
    } else {
        let echoed = content_type
            .get(..MAX_ECHOED_CONTENT_TYPE)
            .unwrap_or(content_type);
        let prefix = b"application/connect+";
        let streaming = essence
            .get(..prefix.len())
            .is_some_and(|p| p.eq_ignore_ascii_case(prefix));
        Err(UnsupportedContentType {
            content_type: String::from_utf8_lossy(echoed).into_owned(),
            streaming,
        })
    }
}

/// `Connect-Timeout-Ms`: 1 to 10 ASCII digits, nothing else (no sign, no spaces). `None` means
/// the value is malformed (connect-go answers `invalid_argument`); `0` is a valid, already
/// expired deadline.
pub fn parse_timeout_ms(v: &[u8]) -> Option<Duration> {
    if v.is_empty() || v.len() > MAX_TIMEOUT_DIGITS || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    // At most 10 digits: < 10^10, far inside u64.
    let ms = v.iter().fold(0u64, |acc, d| acc * 10 + u64::from(d - b'0'));
    Some(Duration::from_millis(ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_tables_match_the_connect_spec_and_grpc() {
        let table: [(Code, &str, u16, u8); 16] = [
            (Code::Canceled, "canceled", 499, 1),
            (Code::Unknown, "unknown", 500, 2),
            (Code::InvalidArgument, "invalid_argument", 400, 3),
            (Code::DeadlineExceeded, "deadline_exceeded", 504, 4),
            (Code::NotFound, "not_found", 404, 5),
            (Code::AlreadyExists, "already_exists", 409, 6),
            (Code::PermissionDenied, "permission_denied", 403, 7),
            (Code::ResourceExhausted, "resource_exhausted", 429, 8),
            (Code::FailedPrecondition, "failed_precondition", 400, 9),
            (Code::Aborted, "aborted", 409, 10),
            (Code::OutOfRange, "out_of_range", 400, 11),
            (Code::Unimplemented, "unimplemented", 501, 12),
            (Code::Internal, "internal", 500, 13),
            (Code::Unavailable, "unavailable", 503, 14),
            (Code::DataLoss, "data_loss", 500, 15),
            (Code::Unauthenticated, "unauthenticated", 401, 16),
        ];
        for (code, name, http, grpc) in table {
            assert_eq!(code.as_str(), name);
            assert_eq!(code.http_status(), http, "{name}");
            assert_eq!(code.grpc_status(), grpc, "{name}");
            assert_eq!(Code::parse(name), Some(code));
        }
        assert_eq!(Code::parse("ok"), None);
        assert_eq!(Code::parse("Internal"), None);
        assert_eq!(Code::parse(""), None);
    }

    #[test]
    fn http_status_without_connect_body_maps_like_connect_go() {
        let table = [
            (400, Code::Internal),
            (401, Code::Unauthenticated),
            (403, Code::PermissionDenied),
            (404, Code::Unimplemented),
            (429, Code::Unavailable),
            (502, Code::Unavailable),
            (503, Code::Unavailable),
            (504, Code::Unavailable),
            (408, Code::Unknown),
            (413, Code::Unknown),
            (500, Code::Unknown),
            (200, Code::Unknown),
            (302, Code::Unknown),
        ];
        for (status, code) in table {
            assert_eq!(Code::from_http_status(status), code, "{status}");
        }
    }

    #[test]
    fn retryable_codes_follow_alloys_should_retry() {
        let retried = [
            Code::DeadlineExceeded,
            Code::Unknown,
            Code::Internal,
            Code::Unavailable,
            Code::DataLoss,
            Code::Aborted,
        ];
        for code in Code::ALL {
            let expected = retried.contains(&code);
            if code == Code::ResourceExhausted {
                assert!(code.is_retryable(true));
                assert!(!code.is_retryable(false));
            } else {
                assert_eq!(code.is_retryable(false), expected, "{code}");
                assert_eq!(code.is_retryable(true), expected, "{code}");
            }
        }
    }

    #[test]
    fn error_body_escapes_like_go_encoding_json() {
        let table = [
            ("", r#"{"code":"internal"}"#),
            ("plain", r#"{"code":"internal","message":"plain"}"#),
            (
                "quote \" back \\ slash /",
                r#"{"code":"internal","message":"quote \" back \\ slash /"}"#,
            ),
            (
                "nl\ncr\rtab\tbs\u{8}ff\u{c}nul\u{0}us\u{1f}",
                r#"{"code":"internal","message":"nl\ncr\rtab\tbs\bff\fnul\u0000us\u001f"}"#,
            ),
            (
                "<a>&b \u{2028}\u{2029} é 😀 \u{7f}",
                "{\"code\":\"internal\",\"message\":\"\\u003ca\\u003e\\u0026b \\u2028\\u2029 é 😀 \u{7f}\"}",
            ),
        ];
        for (message, body) in table {
            assert_eq!(error_body(Code::Internal, message), body);
        }
        assert_eq!(
            error_body(Code::InvalidArgument, "no profiles received"),
            r#"{"code":"invalid_argument","message":"no profiles received"}"#
        );
    }

    #[test]
    fn error_body_round_trips_through_parse_error_body() {
        for message in ["", "a \"b\" \\ \n\t <&> \u{2028} é 😀 \u{1}"] {
            for code in Code::ALL {
                let body = error_body(code, message);
                assert_eq!(
                    parse_error_body(body.as_bytes()),
                    Some((code, message.to_owned())),
                    "{body}"
                );
            }
        }
    }

    #[test]
    fn parse_error_body_reads_upstream_errors() {
        type Case = (&'static [u8], Option<(Code, &'static str)>);
        let table: [Case; 12] = [
            (
                br#"{"code":"unavailable","message":"ingester down"}"#,
                Some((Code::Unavailable, "ingester down")),
            ),
            (
                br#" { "message" : "x\u00e9\ud83d\ude00" , "code" : "resource_exhausted" ,
                    "details": [{"type":"t","value":"AAE=","debug":{"a":[1,2.5e3,true,null]}}] } "#,
                Some((Code::ResourceExhausted, "xé😀")),
            ),
            (br#"{"code":"internal"}"#, Some((Code::Internal, ""))),
            (
                br#"{"code":"internal","message":null}"#,
                Some((Code::Internal, "")),
            ),
            (br#"{"code":"INTERNAL","message":"m"}"#, None),
            (br#"{"code":"ok","message":"m"}"#, None),
            (br#"{"message":"m"}"#, None),
            (br#"{"code":13,"message":"m"}"#, None),
            (br#"{"code":"internal","message":5}"#, None),
            (br#"{"code":"internal""#, None),
            (b"<html>502 Bad Gateway</html>", None),
            (b"", None),
        ];
        for (body, expected) in table {
            assert_eq!(
                parse_error_body(body),
                expected.map(|(c, m)| (c, m.to_owned())),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn classify_content_types_per_the_contract() {
        let ok: [(&[u8], Protocol); 8] = [
            (b"application/proto", Protocol::ConnectProto),
            (b"Application/Proto", Protocol::ConnectProto),
            (b"application/proto; charset=utf-8", Protocol::ConnectProto),
            (b"application/json", Protocol::ConnectJson),
            (b" application/json ;charset=UTF-8", Protocol::ConnectJson),
            (b"application/grpc-web", Protocol::GrpcWeb),
            (b"application/grpc-web+proto", Protocol::GrpcWeb),
            (b"application/GRPC-WEB+PROTO;x=y", Protocol::GrpcWeb),
        ];
        for (ct, protocol) in ok {
            assert_eq!(
                classify(ct),
                Ok(protocol),
                "{}",
                String::from_utf8_lossy(ct)
            );
        }
        let refused: [(&[u8], bool); 9] = [
            (b"application/connect+proto", true),
            (b"application/connect+json", true),
            (b"Application/Connect+Proto; charset=utf-8", true),
            (b"application/grpc", false),
            (b"application/grpc+proto", false),
            (b"application/grpc-web+json", false),
            (b"application/grpc-web-text", false),
            (b"application/octet-stream", false),
            (b"", false),
        ];
        for (ct, streaming) in refused {
            let e = classify(ct).unwrap_err();
            assert_eq!(e.streaming, streaming, "{}", String::from_utf8_lossy(ct));
            assert_eq!(e.http_status(), 415);
            assert_eq!(e.code(), Code::Unimplemented);
        }
    }

    #[test]
    fn unsupported_content_type_messages_name_the_type() {
        assert_eq!(
            classify(b"application/connect+proto")
                .unwrap_err()
                .to_string(),
            "content type \"application/connect+proto\" is the Connect streaming protocol; \
             /push.v1.PusherService/Push is unary: use application/proto or application/json"
        );
        assert_eq!(
            classify(b"text/plain").unwrap_err().to_string(),
            "unsupported content type \"text/plain\": use application/proto, application/json \
             or application/grpc-web+proto"
        );
        let long = vec![b'x'; 1000];
        assert_eq!(
            classify(&long).unwrap_err().content_type.len(),
            MAX_ECHOED_CONTENT_TYPE
        );
    }

    #[test]
    fn timeout_header_is_one_to_ten_digits() {
        let table: [(&[u8], Option<u64>); 10] = [
            (b"0", Some(0)),
            (b"1", Some(1)),
            (b"10000", Some(10_000)),
            (b"9999999999", Some(9_999_999_999)),
            (b"0000000001", Some(1)),
            (b"10000000000", None),
            (b"", None),
            (b"-1", None),
            (b" 5", None),
            (b"5s", None),
        ];
        for (v, ms) in table {
            assert_eq!(
                parse_timeout_ms(v),
                ms.map(Duration::from_millis),
                "{}",
                String::from_utf8_lossy(v)
            );
        }
    }
}
