//! Reason phrases for status lines pyrogate writes.
//!
//! Owns: the status-code → reason-phrase table. Does not own: deciding which status to send.
//! Pyrogate answers clients with the same status text Alloy (Go `net/http`) would, because SDK
//! logs and users' dashboards show it; so the table is exactly Go's `http.StatusText`
//! (`net/http/status.go`, Go 1.22+: includes 103 Early Hints and 425 Too Early, and keeps the
//! RFC 7231 wording such as "Request Entity Too Large"). Cold-ish path: one `match`.

/// The reason phrase Go's `net/http.StatusText` returns for `status`, or `""` for a code Go does
/// not know (RFC 9112 §4 allows an empty reason-phrase).
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        101 => "Switching Protocols",
        102 => "Processing",
        103 => "Early Hints",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        203 => "Non-Authoritative Information",
        204 => "No Content",
        205 => "Reset Content",
        206 => "Partial Content",
        207 => "Multi-Status",
        208 => "Already Reported",
        226 => "IM Used",
        300 => "Multiple Choices",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        305 => "Use Proxy",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        402 => "Payment Required",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        411 => "Length Required",
        412 => "Precondition Failed",
        413 => "Request Entity Too Large",
        414 => "Request URI Too Long",
        415 => "Unsupported Media Type",
        416 => "Requested Range Not Satisfiable",
        417 => "Expectation Failed",
        418 => "I'm a teapot",
        421 => "Misdirected Request",
        422 => "Unprocessable Entity",
        423 => "Locked",
        424 => "Failed Dependency",
        425 => "Too Early",
        426 => "Upgrade Required",
        428 => "Precondition Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        451 => "Unavailable For Legal Reasons",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        506 => "Variant Also Negotiates",
        507 => "Insufficient Storage",
        508 => "Loop Detected",
        510 => "Not Extended",
        511 => "Network Authentication Required",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::reason_phrase;

    #[test]
    fn reason_phrases_match_go_status_text() {
        let cases: &[(u16, &str)] = &[
            (100, "Continue"),
            (103, "Early Hints"),
            (200, "OK"),
            (202, "Accepted"),
            (204, "No Content"),
            (400, "Bad Request"),
            (404, "Not Found"),
            (405, "Method Not Allowed"),
            (408, "Request Timeout"),
            (413, "Request Entity Too Large"),
            (414, "Request URI Too Long"),
            (418, "I'm a teapot"),
            (422, "Unprocessable Entity"),
            (425, "Too Early"),
            (429, "Too Many Requests"),
            (431, "Request Header Fields Too Large"),
            (500, "Internal Server Error"),
            (501, "Not Implemented"),
            (503, "Service Unavailable"),
            (505, "HTTP Version Not Supported"),
            (511, "Network Authentication Required"),
        ];
        for &(status, text) in cases {
            assert_eq!(reason_phrase(status), text, "status {status}");
        }
    }

    #[test]
    fn unknown_codes_have_an_empty_reason() {
        for status in [
            0,
            99,
            199,
            306,
            419,
            420,
            427,
            430,
            509,
            599,
            600,
            999,
            u16::MAX,
        ] {
            assert_eq!(reason_phrase(status), "", "status {status}");
        }
    }
}
