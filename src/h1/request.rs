//! Request heads from clients: find the end of a head cheaply, then parse it in place.
//!
//! Owns: RFC 9112 request-line and field parsing (via httparse), and every framing decision the
//! server makes from a head — body length, keep-alive, `Expect: 100-continue`, and the rejections
//! RFC 9112 requires for ambiguous framing (request smuggling defences). Does not own: reading the
//! body (see [`super::chunked`] and the runtime), routing, or interpreting any header value other
//! than Host, Content-Length, Transfer-Encoding, Connection and Expect. Hot path: once per request;
//! the only allocation is the `Vec<HeaderRange>`.

use std::ops::Range;

use super::{
    BodyFraming, ContentLengthError, FramingFields, HeadFailure, HeaderRange, Limits, Method,
    Version, VersionAt, head_status, head_window, range_in, trim_ows, with_header_slots,
};

/// A parsed request head. Every range indexes the buffer given to [`parse_request`], so after
/// `split_to(head_len).freeze()` the runtime slices fields out without copying.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHead {
    /// Bytes of the head including the blank line (and any empty lines before the request line,
    /// RFC 9112 §2.2); the body or the next pipelined request starts here.
    pub head_len: usize,
    pub method: Method,
    pub version: Version,
    /// The request-target as sent (RFC 9112 §3.2).
    pub target: Range<usize>,
    /// The target up to the first `?`, or the whole target.
    pub path: Range<usize>,
    /// After the first `?` (the `?` excluded); `None` when the target has no `?`.
    pub query: Option<Range<usize>>,
    /// Every field line, in order.
    pub headers: Vec<HeaderRange>,
    pub body: BodyFraming,
    /// Whether the connection may carry another request after this one (RFC 9112 §9.3).
    pub keep_alive: bool,
    /// `Expect: 100-continue` on an HTTP/1.1 request (RFC 9110 §10.1.1: ignored on HTTP/1.0).
    pub expect_continue: bool,
}

impl RequestHead {
    /// The value of the first field named `name` (ASCII case-insensitive). `buf` must be the
    /// buffer the head was parsed from; a mismatched buffer yields `None`, never a panic.
    pub fn header<'a>(&self, buf: &'a [u8], name: &str) -> Option<&'a [u8]> {
        self.headers
            .iter()
            .find_map(|h| h.value_if_named(buf, name))
    }

    /// The values of every field named `name` (ASCII case-insensitive), in order.
    pub fn headers_named<'a>(
        &'a self,
        buf: &'a [u8],
        name: &'a str,
    ) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.headers
            .iter()
            .filter_map(move |h| h.value_if_named(buf, name))
    }
}

/// Why a request head was rejected. Every variant ends the connection: the request boundary can no
/// longer be trusted (RFC 9112 §6.3, §11.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("request head exceeds the {limit}-byte limit")]
    HeadTooLarge { limit: usize },
    #[error("request head has more than {limit} header fields")]
    TooManyHeaders { limit: usize },
    #[error("malformed request head: {0}")]
    Malformed(httparse::Error),
    #[error("HTTP version not supported (only HTTP/1.0 and HTTP/1.1)")]
    UnsupportedVersion,
    #[error("HTTP/1.1 request without a Host header")]
    MissingHost,
    #[error("request with more than one Host header")]
    DuplicateHost,
    #[error("Host header is not a valid uri-host [ \":\" port ]")]
    InvalidHost,
    #[error("request has both Content-Length and Transfer-Encoding")]
    ContentLengthWithTransferEncoding,
    #[error("Content-Length is not a non-negative decimal integer")]
    InvalidContentLength,
    #[error("request has differing Content-Length values")]
    ConflictingContentLength,
    #[error("Transfer-Encoding other than a single `chunked` is not implemented")]
    UnsupportedTransferCoding,
    #[error("Transfer-Encoding does not end in `chunked`: the body length cannot be determined")]
    ChunkedNotFinal,
    #[error("Transfer-Encoding on an HTTP/1.0 request")]
    TransferEncodingOnHttp10,
}

impl RequestError {
    /// The status to answer with before closing the connection.
    pub fn status(&self) -> u16 {
        match self {
            // RFC 6585 §5.
            Self::HeadTooLarge { .. } | Self::TooManyHeaders { .. } => 431,
            // RFC 9110 §15.6.6.
            Self::UnsupportedVersion => 505,
            // RFC 9112 §6.1: a transfer coding the server does not understand.
            Self::UnsupportedTransferCoding => 501,
            Self::Malformed(_)
            | Self::MissingHost
            | Self::DuplicateHost
            | Self::InvalidHost
            | Self::ChunkedNotFinal
            | Self::ContentLengthWithTransferEncoding
            | Self::InvalidContentLength
            | Self::ConflictingContentLength
            | Self::TransferEncodingOnHttp10 => 400,
        }
    }

    fn from_head(failure: HeadFailure, limits: &Limits) -> Self {
        match failure {
            HeadFailure::TooLarge => Self::HeadTooLarge {
                limit: limits.max_head_bytes,
            },
            HeadFailure::TooManyHeaders => Self::TooManyHeaders {
                limit: limits.max_headers,
            },
            HeadFailure::UnsupportedVersion => Self::UnsupportedVersion,
            HeadFailure::Malformed(e) => Self::Malformed(e),
        }
    }
}

/// Where the head in `buf` ends (just past the blank line), or `None` if no blank line has arrived.
///
/// `scanned` is `buf.len()` at the previous call that returned `None` (0 at first). Only the last 3
/// of those bytes are looked at again, so a client that sends one byte per read costs O(n) in
/// total, not O(n²) (hyper's `is_complete_fast`). Like httparse, a bare LF ends a line, so `\n\n`
/// and `\n\r\n` end a head as well as `\r\n\r\n` (RFC 9112 §2.2 allows recipients to accept LF).
///
/// This is a cheap pre-check; [`parse_request`] is authoritative. The two agree except when a head
/// starts with empty lines, which RFC 9112 §2.2 says to skip: there this may report the end of the
/// empty lines while `parse_request` still answers `Ok(None)`, and the caller keeps reading.
pub fn find_head_end(buf: &[u8], scanned: usize) -> Option<usize> {
    let mut from = scanned.saturating_sub(3).min(buf.len());
    while let Some(pos) = buf.get(from..).and_then(|rest| memchr::memchr(b'\n', rest)) {
        let lf = from + pos;
        match buf.get(lf + 1..) {
            Some([b'\n', ..]) => return Some(lf + 2),
            Some([b'\r', b'\n', ..]) => return Some(lf + 3),
            _ => from = lf + 1,
        }
    }
    None
}

/// The path and query of a request-target (RFC 9112 §3.2). An absolute-form target
/// (`http://host:port/ingest?q`, §3.2.2: "a server MUST accept the absolute-form in requests")
/// is reduced to its path and query, as Go's server does; the authority is never dialled.
/// An absolute-form target without a path has an empty path.
fn split_target(buf: &[u8], target: Range<usize>) -> (Range<usize>, Option<Range<usize>>) {
    let bytes = buf.get(target.clone()).unwrap_or_default();
    let mut start = target.start;
    let scheme = bytes.iter().position(|&b| b == b':');
    if let Some(colon) = scheme
        && bytes.get(colon + 1..colon + 3) == Some(b"//")
        && (bytes[..colon].eq_ignore_ascii_case(b"http")
            || bytes[..colon].eq_ignore_ascii_case(b"https"))
    {
        let after = colon + 3;
        let rest = &bytes[after..];
        let end = rest
            .iter()
            .position(|&b| b == b'/' || b == b'?')
            .unwrap_or(rest.len());
        start = target.start + after + end;
    }
    let from = buf.get(start..target.end).unwrap_or_default();
    match memchr::memchr(b'?', from) {
        Some(q) => (start..start + q, Some(start + q + 1..target.end)),
        None => (start..target.end, None),
    }
}

/// Parses the request head at the start of `buf`.
///
/// Returns `Ok(None)` when the head is incomplete and still within `limits.max_head_bytes`.
///
/// # Errors
/// [`RequestError`] when the head is too large, has too many fields, is malformed, or its framing
/// is ambiguous or unsupported; see each variant and [`RequestError::status`].
pub fn parse_request(buf: &[u8], limits: &Limits) -> Result<Option<RequestHead>, RequestError> {
    match parse_as_given(buf, limits) {
        // RFC 9110 §6.2: HTTP/1.2 to HTTP/1.9 are read as HTTP/1.1 (httparse only knows 1.0 and
        // 1.1). Cold path: a copy of the head with the minor digit replaced is parsed instead;
        // it has the same length, so every range of the result indexes `buf` as well.
        Err(RequestError::UnsupportedVersion) => {
            let Some(at) = super::later_http1_minor(buf) else {
                return Err(RequestError::UnsupportedVersion);
            };
            // One byte past the limit keeps "over the limit" visible to `head_window`.
            let mut copy = buf
                .get(..buf.len().min(limits.max_head_bytes.saturating_add(1)))
                .unwrap_or(buf)
                .to_vec();
            if let Some(minor) = copy.get_mut(at) {
                *minor = b'1';
            }
            parse_as_given(&copy, limits)
        }
        other => other,
    }
}

/// [`parse_request`] without the later-minor-version rewrite.
fn parse_as_given(buf: &[u8], limits: &Limits) -> Result<Option<RequestHead>, RequestError> {
    let (window, window_full) = head_window(buf, limits);
    with_header_slots(limits.max_headers, |slots| {
        let mut req = httparse::Request::new(&mut []);
        let parsed = httparse::ParserConfig::default()
            .parse_request_with_uninit_headers(&mut req, window, slots);
        match head_status(parsed, window, window_full, VersionAt::End) {
            Ok(Some(head_len)) => interpret(window, head_len, &req).map(Some),
            Ok(None) => Ok(None),
            Err(failure) => Err(RequestError::from_head(failure, limits)),
        }
    })
}

/// Turns httparse's output into a [`RequestHead`], applying RFC 9112's framing rules.
fn interpret(
    buf: &[u8],
    head_len: usize,
    req: &httparse::Request<'_, '_>,
) -> Result<RequestHead, RequestError> {
    // httparse fills all three on Complete; the fallback keeps this panic-free regardless.
    let (Some(method), Some(target), Some(minor)) = (req.method, req.path, req.version) else {
        return Err(RequestError::Malformed(httparse::Error::Token));
    };
    let Some(version) = Version::from_minor(minor) else {
        return Err(RequestError::UnsupportedVersion);
    };

    let mut headers = Vec::with_capacity(req.headers.len());
    let mut hosts = 0usize;
    let mut host: &[u8] = b"";
    let mut framing = FramingFields::default();
    let mut expect_continue = false;
    for field in req.headers.iter() {
        headers.push(HeaderRange {
            name: range_in(buf, field.name.as_bytes()),
            value: range_in(buf, field.value),
        });
        let name = field.name.as_bytes();
        if framing.add(name, field.value) {
            continue;
        }
        if name.eq_ignore_ascii_case(b"host") {
            hosts += 1;
            host = field.value;
        } else if name.eq_ignore_ascii_case(b"expect") {
            expect_continue |= trim_ows(field.value).eq_ignore_ascii_case(b"100-continue");
        }
    }

    let body = body_framing(version, &framing)?;

    // RFC 9112 §3.2: 400 for an HTTP/1.1 request without Host, and for any request with more
    // than one Host field line or a Host field with an invalid field value.
    match hosts {
        0 if version == Version::Http11 => return Err(RequestError::MissingHost),
        0 => {}
        1 if is_valid_host(host) => {}
        1 => return Err(RequestError::InvalidHost),
        _ => return Err(RequestError::DuplicateHost),
    }

    let target = range_in(buf, target.as_bytes());
    let (path, query) = split_target(buf, target.clone());

    Ok(RequestHead {
        head_len,
        method: Method::from_token(method),
        version,
        target,
        path,
        query,
        headers,
        body,
        keep_alive: framing.connection.persists(version),
        // RFC 9110 §10.1.1: "A server that receives a 100-continue expectation in an HTTP/1.0
        // request MUST ignore that expectation."
        expect_continue: expect_continue && version == Version::Http11,
    })
}

/// RFC 9112 §3.2: `Host = uri-host [ ":" port ]` (RFC 3986 §3.2.2, §3.2.3), where uri-host is an
/// IP-literal in brackets or a reg-name (which includes IPv4 addresses) and port is `*DIGIT`. An
/// empty value is valid (a target without an authority). The IP-literal's insides are checked
/// only for their alphabet (hex digits, `:`, `.`, IPvFuture's and RFC 6874 zone IDs' characters).
fn is_valid_host(value: &[u8]) -> bool {
    let (host_ok, port) = match value {
        [b'[', rest @ ..] => match memchr::memchr(b']', rest) {
            Some(end) => {
                let literal = rest.get(..end).unwrap_or_default();
                let ok = !literal.is_empty()
                    && literal
                        .iter()
                        .all(|&b| is_unreserved(b) || is_sub_delim(b) || b == b':' || b == b'%');
                (ok, rest.get(end + 1..).unwrap_or_default())
            }
            None => return false,
        },
        _ => {
            let end = memchr::memchr(b':', value).unwrap_or(value.len());
            let (name, port) = value.split_at(end);
            (is_reg_name(name), port)
        }
    };
    host_ok
        && match port {
            [] => true,
            [b':', digits @ ..] => digits.iter().all(u8::is_ascii_digit),
            _ => false,
        }
}

/// RFC 3986 §3.2.2: `reg-name = *( unreserved / pct-encoded / sub-delims )`.
fn is_reg_name(name: &[u8]) -> bool {
    let mut rest = name;
    while let [b, tail @ ..] = rest {
        rest = match (b, tail) {
            (b'%', [h1, h2, tail @ ..]) if h1.is_ascii_hexdigit() && h2.is_ascii_hexdigit() => tail,
            (&b, tail) if is_unreserved(b) || is_sub_delim(b) => tail,
            _ => return false,
        };
    }
    true
}

/// RFC 3986 §2.3.
fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// RFC 3986 §2.2.
fn is_sub_delim(b: u8) -> bool {
    matches!(
        b,
        b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b';' | b'='
    )
}

/// RFC 9112 §6.1 and §6.3 for requests, in the order the RFC gives them.
fn body_framing(version: Version, framing: &FramingFields) -> Result<BodyFraming, RequestError> {
    let FramingFields {
        content_length,
        transfer_encoding,
        ..
    } = framing;
    if transfer_encoding.present {
        // §6.1: an HTTP/1.0 message with Transfer-Encoding has faulty framing (1.0 has no
        // transfer codings), even if Content-Length is present.
        if version == Version::Http10 {
            return Err(RequestError::TransferEncodingOnHttp10);
        }
        // §6.1: "A server MAY reject a request that contains both Content-Length and
        // Transfer-Encoding"; this is the classic smuggling vector, so we do.
        if content_length.is_present() {
            return Err(RequestError::ContentLengthWithTransferEncoding);
        }
        // §6.3 item 4: "If a Transfer-Encoding header field is present in a request and the
        // chunked transfer coding is not the final encoding, the message body length cannot be
        // determined reliably; the server MUST respond with the 400 (Bad Request) status code".
        // This covers unknown final codings, empty lists and `chunked` with parameters too.
        if !transfer_encoding.last_is_chunked {
            return Err(RequestError::ChunkedNotFinal);
        }
        // §6.1: a transfer coding the server does not understand SHOULD get 501. Only a single
        // `chunked` is decoded; `gzip, chunked` would need decompression, and `chunked, chunked`
        // is a coding applied twice (§7.1 forbids it), which we do not undo either.
        if !transfer_encoding.is_only_chunked() {
            return Err(RequestError::UnsupportedTransferCoding);
        }
        return Ok(BodyFraming::Chunked);
    }
    // §6.3 item 5 and RFC 9110 §8.6: invalid or differing lengths are unrecoverable.
    match content_length.finish() {
        Ok(Some(n)) => Ok(BodyFraming::Length(n)),
        // §6.3 item 7: neither header on a request means no body.
        Ok(None) => Ok(BodyFraming::Empty),
        Err(ContentLengthError::Invalid) => Err(RequestError::InvalidContentLength),
        Err(ContentLengthError::Differing) => Err(RequestError::ConflictingContentLength),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        max_head_bytes: 1024,
        max_headers: 16,
    };

    fn parse(input: &[u8]) -> Result<Option<RequestHead>, RequestError> {
        parse_request(input, &LIMITS)
    }

    /// Parses a complete, valid head or fails the test with the input in the message.
    fn head(input: &[u8]) -> RequestHead {
        match parse(input) {
            Ok(Some(head)) => head,
            other => panic!("{:?} → {other:?}", String::from_utf8_lossy(input)),
        }
    }

    fn slice(buf: &[u8], range: Range<usize>) -> &[u8] {
        &buf[range]
    }

    /// `req!(input => error, status)`: the head is rejected with exactly `error`, which answers
    /// `status`.
    macro_rules! rejected {
        ($input:expr => $error:expr, $status:expr) => {{
            let input: &[u8] = $input;
            assert_eq!(
                parse(input),
                Err($error),
                "{:?}",
                String::from_utf8_lossy(input)
            );
            assert_eq!($error.status(), $status, "{:?}", $error);
        }};
    }

    #[test]
    fn get_with_query_is_split_into_path_and_query() {
        let buf = b"GET /ingest?name=app%7Bk%3Dv%7D&from=1 HTTP/1.1\r\nHost: gw:4040\r\n\r\n";
        let h = head(buf);
        assert_eq!(h.head_len, buf.len());
        assert_eq!(h.method, Method::Get);
        assert_eq!(h.version, Version::Http11);
        assert_eq!(
            slice(buf, h.target.clone()),
            b"/ingest?name=app%7Bk%3Dv%7D&from=1"
        );
        assert_eq!(slice(buf, h.path.clone()), b"/ingest");
        assert_eq!(
            h.query.clone().map(|q| slice(buf, q)),
            Some(&b"name=app%7Bk%3Dv%7D&from=1"[..])
        );
        assert_eq!(h.body, BodyFraming::Empty);
        assert!(h.keep_alive);
        assert!(!h.expect_continue);
        assert_eq!(h.header(buf, "HOST"), Some(&b"gw:4040"[..]));
    }

    #[test]
    fn absolute_form_targets_are_reduced_to_path_and_query() {
        type Case<'a> = (&'a [u8], &'a [u8], Option<&'a [u8]>);
        let cases: [Case; 5] = [
            (
                b"http://127.0.0.1:9/ingest?name=a",
                b"/ingest",
                Some(b"name=a"),
            ),
            (
                b"HTTPS://gw.example/pyroscope/ingest",
                b"/pyroscope/ingest",
                None,
            ),
            (b"http://h?q=1", b"", Some(b"q=1")),
            (b"http://h", b"", None),
            (b"/ingest?http://x", b"/ingest", Some(b"http://x")),
        ];
        for (target, path, query) in cases {
            let mut buf = b"POST ".to_vec();
            buf.extend_from_slice(target);
            buf.extend_from_slice(b" HTTP/1.1\r\nHost: x\r\n\r\n");
            let h = head(&buf);
            assert_eq!(
                slice(&buf, h.path.clone()),
                path,
                "{}",
                String::from_utf8_lossy(target)
            );
            assert_eq!(h.query.clone().map(|q| slice(&buf, q)), query);
            assert_eq!(slice(&buf, h.target.clone()), target);
        }
    }

    #[test]
    fn query_is_none_without_question_mark_and_empty_after_a_trailing_one() {
        let buf = b"GET /ingest HTTP/1.1\r\nHost: a\r\n\r\n";
        let h = head(buf);
        assert_eq!(slice(buf, h.path.clone()), b"/ingest");
        assert_eq!(h.query, None);

        let buf = b"GET /ingest? HTTP/1.1\r\nHost: a\r\n\r\n";
        let h = head(buf);
        assert_eq!(slice(buf, h.path.clone()), b"/ingest");
        assert_eq!(h.query.clone().map(|q| slice(buf, q)), Some(&b""[..]));

        // Only the first `?` splits; later ones belong to the query.
        let buf = b"GET /a?b?c HTTP/1.1\r\nHost: a\r\n\r\n";
        let h = head(buf);
        assert_eq!(slice(buf, h.path.clone()), b"/a");
        assert_eq!(h.query.clone().map(|q| slice(buf, q)), Some(&b"b?c"[..]));
    }

    #[test]
    fn methods_are_recognised_case_sensitively() {
        let cases: &[(&str, Method)] = &[
            ("GET", Method::Get),
            ("HEAD", Method::Head),
            ("POST", Method::Post),
            ("PUT", Method::Put),
            ("DELETE", Method::Delete),
            ("OPTIONS", Method::Options),
            ("PATCH", Method::Patch),
            ("CONNECT", Method::Connect),
            ("TRACE", Method::Trace),
            ("get", Method::Other),
            ("PROPFIND", Method::Other),
        ];
        for &(token, method) in cases {
            let buf = format!("{token} / HTTP/1.1\r\nHost: a\r\n\r\n");
            assert_eq!(head(buf.as_bytes()).method, method, "{token}");
        }
    }

    #[test]
    fn headers_are_recorded_in_order_with_offsets_into_the_buffer() {
        let buf = b"POST /ingest HTTP/1.1\r\nHost: a\r\nX-Dup: 1\r\nContent-Type: text/plain\r\nx-dup:  2 \r\nContent-Length: 0\r\n\r\n";
        let h = head(buf);
        let fields: Vec<(&[u8], &[u8])> = h
            .headers
            .iter()
            .map(|f| (slice(buf, f.name.clone()), slice(buf, f.value.clone())))
            .collect();
        assert_eq!(
            fields,
            vec![
                (&b"Host"[..], &b"a"[..]),
                (b"X-Dup", b"1"),
                (b"Content-Type", b"text/plain"),
                // httparse trims the OWS around values (RFC 9112 §5.1).
                (b"x-dup", b"2"),
                (b"Content-Length", b"0"),
            ]
        );
        assert_eq!(h.header(buf, "content-type"), Some(&b"text/plain"[..]));
        assert_eq!(h.header(buf, "missing"), None);
        let dups: Vec<&[u8]> = h.headers_named(buf, "X-DUP").collect();
        assert_eq!(dups, vec![&b"1"[..], b"2"]);
        assert_eq!(h.body, BodyFraming::Length(0));
    }

    #[test]
    fn lookups_against_a_shorter_buffer_return_none_instead_of_panicking() {
        let buf = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";
        let h = head(buf);
        assert_eq!(h.header(b"GET", "host"), None);
        assert_eq!(h.headers_named(b"", "host").count(), 0);
    }

    #[test]
    fn framing_keep_alive_and_expect_follow_rfc_9112() {
        // (input, body, keep_alive, expect_continue)
        let cases: &[(&[u8], BodyFraming, bool, bool)] = &[
            (
                b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
                BodyFraming::Empty,
                true,
                false,
            ),
            (
                b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n",
                BodyFraming::Length(5),
                true,
                false,
            ),
            (
                b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\n",
                BodyFraming::Length(5),
                true,
                false,
            ),
            (
                b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\ncontent-length: 5\r\n\r\n",
                BodyFraming::Length(5),
                true,
                false,
            ),
            (
                b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 007\r\n\r\n",
                BodyFraming::Length(7),
                true,
                false,
            ),
            (
                b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 18446744073709551615\r\n\r\n",
                BodyFraming::Length(u64::MAX),
                true,
                false,
            ),
            (
                b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n",
                BodyFraming::Chunked,
                true,
                false,
            ),
            (
                b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: CHUNKED\r\n\r\n",
                BodyFraming::Chunked,
                true,
                false,
            ),
            // Empty list elements are not codings (RFC 9110 §5.6.1).
            (
                b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: , chunked ,\r\n\r\n",
                BodyFraming::Chunked,
                true,
                false,
            ),
            (
                b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
                BodyFraming::Empty,
                false,
                false,
            ),
            (
                b"GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, CLOSE\r\n\r\n",
                BodyFraming::Empty,
                false,
                false,
            ),
            (
                b"GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive\r\nConnection: close\r\n\r\n",
                BodyFraming::Empty,
                false,
                false,
            ),
            (b"GET / HTTP/1.0\r\n\r\n", BodyFraming::Empty, false, false),
            (
                b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n",
                BodyFraming::Empty,
                true,
                false,
            ),
            (
                b"GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n",
                BodyFraming::Empty,
                false,
                false,
            ),
            (
                b"POST / HTTP/1.0\r\nContent-Length: 3\r\n\r\n",
                BodyFraming::Length(3),
                false,
                false,
            ),
            (
                b"POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n",
                BodyFraming::Length(3),
                true,
                true,
            ),
            (
                b"POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\nContent-Length: 3\r\n\r\n",
                BodyFraming::Length(3),
                true,
                true,
            ),
            // RFC 9110 §10.1.1: ignored on HTTP/1.0.
            (
                b"POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n",
                BodyFraming::Length(3),
                false,
                false,
            ),
            (
                b"POST / HTTP/1.1\r\nHost: a\r\nExpect: 200-ok\r\nContent-Length: 3\r\n\r\n",
                BodyFraming::Length(3),
                true,
                false,
            ),
        ];
        for &(input, body, keep_alive, expect_continue) in cases {
            let h = head(input);
            let shown = String::from_utf8_lossy(input);
            assert_eq!(h.body, body, "{shown:?}");
            assert_eq!(h.keep_alive, keep_alive, "{shown:?}");
            assert_eq!(h.expect_continue, expect_continue, "{shown:?}");
        }
    }

    fn rejection_cases() -> Vec<(&'static [u8], RequestError, u16)> {
        use RequestError::*;
        vec![
            (b"GET / HTTP/1.1\r\n\r\n", MissingHost, 400),
            (b"GET / HTTP/1.1\r\nHost: a\r\nhost: a\r\n\r\n", DuplicateHost, 400),
            (b"GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n", DuplicateHost, 400),
            (b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n", InvalidHost, 400),
            (b"GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", InvalidHost, 400),
            (b"GET / HTTP/1.1\r\nHost: u@a\r\n\r\n", InvalidHost, 400),
            (b"GET / HTTP/1.1\r\nHost: a:http\r\n\r\n", InvalidHost, 400),
            (b"GET / HTTP/1.1\r\nHost: a:1:2\r\n\r\n", InvalidHost, 400),
            (b"GET / HTTP/1.1\r\nHost: [::1\r\n\r\n", InvalidHost, 400),
            (b"GET / HTTP/1.1\r\nHost: []\r\n\r\n", InvalidHost, 400),
            (b"GET / HTTP/1.1\r\nHost: [::1]x\r\n\r\n", InvalidHost, 400),
            (b"GET / HTTP/1.1\r\nHost: a%2\r\n\r\n", InvalidHost, 400),
            (b"GET / HTTP/1.1\r\nHost: \"a\"\r\n\r\n", InvalidHost, 400),
            (b"GET / HTTP/1.0\r\nHost: a\xc3\xa9\r\n\r\n", InvalidHost, 400),
            (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", ContentLengthWithTransferEncoding, 400),
            (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n", ContentLengthWithTransferEncoding, 400),
            (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: x\r\nTransfer-Encoding: chunked\r\n\r\n", ContentLengthWithTransferEncoding, 400),
            (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n", InvalidContentLength, 400),
            (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\n", InvalidContentLength, 400),
            (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x10\r\n\r\n", InvalidContentLength, 400),
            (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5 6\r\n\r\n", InvalidContentLength, 400),
            (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: \r\n\r\n", InvalidContentLength, 400),
            (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5,\r\n\r\n", InvalidContentLength, 400),
            (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 18446744073709551616\r\n\r\n", InvalidContentLength, 400),
            (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 6\r\n\r\n", ConflictingContentLength, 400),
            (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", ConflictingContentLength, 400),
            (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", UnsupportedTransferCoding, 501),
            (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", ChunkedNotFinal, 400),
            (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity\r\n\r\n", ChunkedNotFinal, 400),
            (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n", UnsupportedTransferCoding, 501),
            (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: foo, chunked\r\n\r\n", UnsupportedTransferCoding, 501),
            (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", ChunkedNotFinal, 400),
            (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n\r\n", ChunkedNotFinal, 400),
            (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: ,\r\n\r\n", ChunkedNotFinal, 400),
            (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunkedx\r\n\r\n", ChunkedNotFinal, 400),
            (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", UnsupportedTransferCoding, 501),
            (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n", UnsupportedTransferCoding, 501),
            (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: \r\n\r\n", ChunkedNotFinal, 400),
            (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked;q=1\r\n\r\n", ChunkedNotFinal, 400),
            (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked;x\r\n\r\n", ChunkedNotFinal, 400),
            (b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", TransferEncodingOnHttp10, 400),
            (b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n", TransferEncodingOnHttp10, 400),
            (b"GET / HTTP/2.0\r\nHost: a\r\n\r\n", UnsupportedVersion, 505),
            (b"GET / HTTP/3.1\r\nHost: a\r\n\r\n", UnsupportedVersion, 505),
            (b"GET /a b HTTP/1.1\r\nHost: a\r\n\r\n", Malformed(httparse::Error::Version), 400),
            (b"GET /a b HTTP/1.2\r\nHost: a\r\n\r\n", Malformed(httparse::Error::Version), 400),
            (b"GET / HTTP/0.9\r\nHost: a\r\n\r\n", UnsupportedVersion, 505),
            (b"GET / HTTX/1.1\r\nHost: a\r\n\r\n", Malformed(httparse::Error::Version), 400),
            (b"GET / HTTP/2\r\nHost: a\r\n\r\n", Malformed(httparse::Error::Version), 400),
            (b"GET / HTTP/1.1x\r\nHost: a\r\n\r\n", Malformed(httparse::Error::NewLine), 400),
            (b"GET  / HTTP/1.1\r\nHost: a\r\n\r\n", Malformed(httparse::Error::Token), 400),
            (b"G(T / HTTP/1.1\r\nHost: a\r\n\r\n", Malformed(httparse::Error::Token), 400),
            (b"GET / HTTP/1.1\r\nHo st: a\r\n\r\n", Malformed(httparse::Error::HeaderName), 400),
            (b"GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n", Malformed(httparse::Error::HeaderName), 400),
            (b"GET / HTTP/1.1\r\nHost: a\x00b\r\n\r\n", Malformed(httparse::Error::HeaderValue), 400),
        ]
    }

    #[test]
    fn ambiguous_or_malformed_heads_are_rejected_with_their_status() {
        for (input, error, status) in rejection_cases() {
            rejected!(input => error, status);
        }
    }

    #[test]
    fn every_prefix_of_a_rejected_head_is_incomplete_or_the_same_error() {
        // The verdict must not depend on how the bytes were split across reads.
        for (input, error, _) in rejection_cases() {
            for end in 0..input.len() {
                let got = parse(&input[..end]);
                assert!(
                    got == Ok(None) || got == Err(error),
                    "{:?} prefix {end}: {got:?}",
                    String::from_utf8_lossy(input)
                );
            }
        }
    }

    #[test]
    fn later_http1_minor_versions_are_read_as_http11() {
        // RFC 9110 §6.2: "SHOULD process the message as if it were in the highest minor version
        // within that major version to which the recipient is conformant".
        let buf = b"\r\nPOST /x?a=1 HTTP/1.2\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc";
        let h = head(buf);
        assert_eq!(h.version, Version::Http11);
        assert_eq!(h.head_len, buf.len() - 3);
        assert_eq!(slice(buf, h.path.clone()), b"/x");
        assert_eq!(h.header(buf, "host"), Some(&b"a"[..]));
        assert_eq!(h.body, BodyFraming::Length(3));
        assert!(h.keep_alive);
        assert_eq!(
            head(b"GET / HTTP/1.9\r\nHost: a\r\n\r\n").version,
            Version::Http11
        );
        // Still an HTTP/1.1 request: Host is required.
        assert_eq!(
            parse(b"GET / HTTP/1.9\r\n\r\n"),
            Err(RequestError::MissingHost)
        );
        // Incomplete stays incomplete; over the limit stays over the limit.
        assert_eq!(parse(b"GET / HTTP/1.2\r\nHost: a\r\n"), Ok(None));
        let small = Limits {
            max_head_bytes: 20,
            max_headers: 8,
        };
        assert_eq!(
            parse_request(b"GET / HTTP/1.2\r\nHost: a\r\n", &small),
            Err(RequestError::HeadTooLarge { limit: 20 })
        );
    }

    #[test]
    fn host_values_follow_rfc_3986_authority_syntax() {
        for host in [
            "",
            "a",
            "pyrogate.test:4040",
            "pyrogate.test:",
            "127.0.0.1:4040",
            "[::1]",
            "[::1]:4040",
            "[fe80::1%25eth0]:80",
            "[v1.x]",
            "xn--bcher-kva.example",
            "a%2Fb",
            "sub-delims!$&'()*+,;=",
            "under_score~tilde",
        ] {
            let buf = format!("GET / HTTP/1.1\r\nHost: {host}\r\n\r\n");
            assert!(
                matches!(parse(buf.as_bytes()), Ok(Some(_))),
                "{host:?}: {:?}",
                parse(buf.as_bytes())
            );
        }
    }

    #[test]
    fn more_header_fields_than_the_limit_is_431() {
        let limits = Limits {
            max_head_bytes: 1024,
            max_headers: 3,
        };
        let ok = b"GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\n\r\n";
        assert_eq!(
            parse_request(ok, &limits).map(|h| h.map(|h| h.headers.len())),
            Ok(Some(3))
        );
        let over = b"GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n";
        let err = RequestError::TooManyHeaders { limit: 3 };
        assert_eq!(parse_request(over, &limits), Err(err));
        assert_eq!(err.status(), 431);
        assert_eq!(
            err.to_string(),
            "request head has more than 3 header fields"
        );
    }

    #[test]
    fn header_limits_above_the_stack_array_are_honoured() {
        let limits = Limits {
            max_head_bytes: 64 * 1024,
            max_headers: 200,
        };
        let mut buf = b"GET / HTTP/1.1\r\nHost: a\r\n".to_vec();
        for i in 0..199 {
            buf.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
        }
        buf.extend_from_slice(b"\r\n");
        let h = parse_request(&buf, &limits).unwrap().unwrap();
        assert_eq!(h.headers.len(), 200);
        let mut over = buf[..buf.len() - 2].to_vec();
        over.extend_from_slice(b"X-last: v\r\n\r\n");
        assert_eq!(
            parse_request(&over, &limits),
            Err(RequestError::TooManyHeaders { limit: 200 })
        );
    }

    #[test]
    fn heads_longer_than_the_limit_are_431_complete_or_not() {
        let buf = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"; // 27 bytes
        let exact = Limits {
            max_head_bytes: buf.len(),
            max_headers: 8,
        };
        assert_eq!(
            parse_request(buf, &exact).unwrap().unwrap().head_len,
            buf.len()
        );

        let small = Limits {
            max_head_bytes: buf.len() - 1,
            max_headers: 8,
        };
        let err = RequestError::HeadTooLarge {
            limit: buf.len() - 1,
        };
        assert_eq!(parse_request(buf, &small), Err(err));
        assert_eq!(err.status(), 431);
        // Incomplete and already past the limit.
        assert_eq!(
            parse_request(
                &buf[..buf.len() - 1],
                &Limits {
                    max_head_bytes: 10,
                    ..small
                }
            ),
            Err(RequestError::HeadTooLarge { limit: 10 })
        );
        // Incomplete and within the limit: wait for more.
        assert_eq!(
            parse_request(
                &buf[..10],
                &Limits {
                    max_head_bytes: 10,
                    ..small
                }
            ),
            Ok(None)
        );
        // A bad version still waiting for its line end is too large, not incomplete.
        assert_eq!(
            parse_request(
                b"GET / HTTP/3.0 and more",
                &Limits {
                    max_head_bytes: 16,
                    ..small
                }
            ),
            Err(RequestError::HeadTooLarge { limit: 16 })
        );
    }

    #[test]
    fn a_complete_head_followed_by_body_bytes_stops_at_the_blank_line() {
        let buf = b"POST /ingest HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello";
        let h = head(buf);
        assert_eq!(&buf[h.head_len..], b"hello");
    }

    #[test]
    fn pipelined_requests_are_found_one_after_another() {
        let buf = b"POST /ingest?name=a HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhelloGET /b HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n";
        let first = head(buf);
        assert_eq!(first.body, BodyFraming::Length(5));
        let second_at = first.head_len + 5;
        let rest = &buf[second_at..];
        let second = head(rest);
        assert_eq!(second.head_len, rest.len());
        assert_eq!(slice(rest, second.path.clone()), b"/b");
        assert!(!second.keep_alive);

        let buf = b"GET /1 HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\n";
        let first = head(buf);
        assert_eq!(find_head_end(buf, 0), Some(first.head_len));
        let rest = &buf[first.head_len..];
        assert_eq!(slice(rest, head(rest).path), b"/2");
    }

    #[test]
    fn leading_empty_lines_are_skipped() {
        // RFC 9112 §2.2: a server SHOULD ignore at least one empty line before the request-line.
        let buf = b"\r\n\r\nGET /x HTTP/1.1\r\nHost: a\r\n\r\n";
        let h = head(buf);
        assert_eq!(h.head_len, buf.len());
        assert_eq!(slice(buf, h.path), b"/x");
        // find_head_end may stop at the empty lines; parse_request then says "incomplete".
        assert_eq!(find_head_end(buf, 0), Some(4));
        assert_eq!(parse(&buf[..4]), Ok(None));
    }

    #[test]
    fn bare_lf_line_endings_are_accepted() {
        let buf = b"GET / HTTP/1.1\nHost: a\n\n";
        assert_eq!(find_head_end(buf, 0), Some(buf.len()));
        assert_eq!(head(buf).head_len, buf.len());
    }

    #[test]
    fn find_head_end_finds_every_terminator_form() {
        let cases: &[(&[u8], Option<usize>)] = &[
            (b"", None),
            (b"GET / HTTP/1.1\r\n", None),
            (b"GET / HTTP/1.1\r\n\r", None),
            (b"GET / HTTP/1.1\r\n\r\n", Some(18)),
            (b"GET / HTTP/1.1\r\n\r\nbody", Some(18)),
            (b"GET / HTTP/1.1\n\n", Some(16)),
            (b"GET / HTTP/1.1\n\r\n", Some(17)),
            (b"GET / HTTP/1.1\r\n\n", Some(17)),
            (b"\r\r\r\r", None),
        ];
        for &(input, expected) in cases {
            assert_eq!(
                find_head_end(input, 0),
                expected,
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
        // `scanned` past the end of the buffer is harmless.
        assert_eq!(find_head_end(b"a\r\n\r\n", 99), None);
    }

    #[test]
    fn head_fed_byte_by_byte_is_found_exactly_when_complete() {
        let buf = b"POST /ingest?name=app%7Benv%3Dprod%7D&from=1&until=2 HTTP/1.1\r\nHost: gw\r\nUser-Agent: Go-http-client/1.1\r\nContent-Length: 11\r\nContent-Type: multipart/form-data; boundary=x\r\nAccept-Encoding: gzip\r\n\r\n";
        let whole = head(buf);
        let mut scanned = 0;
        for end in 1..=buf.len() {
            let seen = &buf[..end];
            let found = find_head_end(seen, scanned);
            if end < buf.len() {
                assert_eq!(found, None, "at {end}");
                assert_eq!(parse(seen), Ok(None), "at {end}");
                scanned = end;
            } else {
                assert_eq!(found, Some(buf.len()));
                assert_eq!(parse(seen), Ok(Some(whole.clone())));
            }
        }
    }

    #[test]
    fn errors_display_precise_messages() {
        let cases: &[(RequestError, &str)] = &[
            (
                RequestError::HeadTooLarge { limit: 65536 },
                "request head exceeds the 65536-byte limit",
            ),
            (
                RequestError::Malformed(httparse::Error::HeaderName),
                "malformed request head: invalid header name",
            ),
            (
                RequestError::MissingHost,
                "HTTP/1.1 request without a Host header",
            ),
            (
                RequestError::DuplicateHost,
                "request with more than one Host header",
            ),
            (
                RequestError::UnsupportedTransferCoding,
                "Transfer-Encoding other than a single `chunked` is not implemented",
            ),
        ];
        for (error, message) in cases {
            assert_eq!(error.to_string(), *message);
        }
    }
}
