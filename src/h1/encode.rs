//! Heads pyrogate writes: upstream request heads and (small, complete) downstream responses.
//!
//! Owns: byte layout of request and status lines and header fields (RFC 9112 §3, §4, §5). Does
//! not own: deciding which headers to send (hop-by-hop filtering and Content-Type forwarding are
//! the upstream module's) or writing to sockets. Field names and values are written as given: the
//! caller passes names that are tokens and values without CR/LF (client values come out of
//! httparse, which guarantees that; configured ones are validated by `config`). Hot path: one
//! exact `reserve` per head, then plain appends.

use bytes::{BufMut, BytesMut};

use super::status::reason_phrase;

/// The interim response sent when a client's `Expect: 100-continue` is accepted (RFC 9110
/// §10.1.1).
pub const CONTINUE_100: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

const HTTP11_CRLF: &[u8] = b" HTTP/1.1\r\n";
const HOST: &[u8] = b"Host: ";
const CONTENT_LENGTH: &[u8] = b"Content-Length: ";
const CONNECTION_CLOSE: &[u8] = b"Connection: close\r\n";
const CHUNKED: &[u8] = b"Transfer-Encoding: chunked\r\n";
const CRLF: &[u8] = b"\r\n";
const COLON_SP: &[u8] = b": ";

/// How an upstream request's body is delimited (RFC 9112 §6.3): a request pyrogate sends always
/// says, so there is no unframed case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestFraming {
    /// `Content-Length: n`, sent even for 0 (a POST without it would need chunked framing).
    Length(u64),
    /// `Transfer-Encoding: chunked` (RFC 9112 §7.1), for a body of unknown length.
    Chunked,
}

/// Appends `METHOD path[?query] HTTP/1.1\r\nHost: host\r\n<headers><framing field>\r\n\r\n`,
/// the framing field being `Content-Length: n` or `Transfer-Encoding: chunked`.
///
/// An empty `path` is written as `/` (RFC 9112 §3.2.1: origin-form starts with an absolute
/// path). `query: Some(b"")` writes a bare `?`, keeping the target exactly as the caller has it.
pub fn encode_request_head(
    dst: &mut BytesMut,
    method: &str,
    path: &[u8],
    query: Option<&[u8]>,
    host: &str,
    headers: &[(&[u8], &[u8])],
    framing: RequestFraming,
) {
    let framing_len = match framing {
        RequestFraming::Length(n) => CONTENT_LENGTH.len() + decimal_len(n) + CRLF.len(),
        RequestFraming::Chunked => CHUNKED.len(),
    };
    let path: &[u8] = if path.is_empty() { b"/" } else { path };
    let fields: usize = headers
        .iter()
        .map(|(name, value)| name.len() + COLON_SP.len() + value.len() + CRLF.len())
        .sum();
    dst.reserve(
        method.len()
            + 1
            + path.len()
            + query.map_or(0, |q| 1 + q.len())
            + HTTP11_CRLF.len()
            + HOST.len()
            + host.len()
            + CRLF.len()
            + fields
            + framing_len
            + CRLF.len(),
    );
    dst.put_slice(method.as_bytes());
    dst.put_u8(b' ');
    dst.put_slice(path);
    if let Some(query) = query {
        dst.put_u8(b'?');
        dst.put_slice(query);
    }
    dst.put_slice(HTTP11_CRLF);
    dst.put_slice(HOST);
    dst.put_slice(host.as_bytes());
    dst.put_slice(CRLF);
    for (name, value) in headers {
        put_field(dst, name, value);
    }
    match framing {
        RequestFraming::Length(n) => {
            dst.put_slice(CONTENT_LENGTH);
            put_decimal(dst, n);
            dst.put_slice(CRLF);
        }
        RequestFraming::Chunked => dst.put_slice(CHUNKED),
    }
    dst.put_slice(CRLF);
}

/// Appends a complete response: `HTTP/1.1 <status> <reason>\r\n<headers>Content-Length: <n>\r\n`,
/// `Connection: close\r\n` when `close`, the blank line, then `body`.
///
/// The reason is Go's `StatusText` ([`reason_phrase`]), empty for unknown codes. For 1xx, 204 and
/// 304 neither Content-Length nor the body is written: those responses end at the blank line
/// (RFC 9112 §6.3 item 1), and RFC 9110 §8.6 forbids Content-Length on 1xx and 204.
pub fn encode_response(
    dst: &mut BytesMut,
    status: u16,
    headers: &[(&str, &[u8])],
    body: &[u8],
    close: bool,
) {
    let bodiless = matches!(status, 100..=199 | 204 | 304);
    let body = if bodiless { &[][..] } else { body };
    let reason = reason_phrase(status);
    let fields: usize = headers
        .iter()
        .map(|(name, value)| name.len() + COLON_SP.len() + value.len() + CRLF.len())
        .sum();
    let length_field = if bodiless {
        0
    } else {
        CONTENT_LENGTH.len() + decimal_len(body.len() as u64) + CRLF.len()
    };
    dst.reserve(
        b"HTTP/1.1 ".len()
            + decimal_len(u64::from(status))
            + 1
            + reason.len()
            + CRLF.len()
            + fields
            + length_field
            + if close { CONNECTION_CLOSE.len() } else { 0 }
            + CRLF.len()
            + body.len(),
    );
    dst.put_slice(b"HTTP/1.1 ");
    put_decimal(dst, u64::from(status));
    dst.put_u8(b' ');
    dst.put_slice(reason.as_bytes());
    dst.put_slice(CRLF);
    for (name, value) in headers {
        put_field(dst, name.as_bytes(), value);
    }
    if !bodiless {
        dst.put_slice(CONTENT_LENGTH);
        put_decimal(dst, body.len() as u64);
        dst.put_slice(CRLF);
    }
    if close {
        dst.put_slice(CONNECTION_CLOSE);
    }
    dst.put_slice(CRLF);
    dst.put_slice(body);
}

fn put_field(dst: &mut BytesMut, name: &[u8], value: &[u8]) {
    dst.put_slice(name);
    dst.put_slice(COLON_SP);
    dst.put_slice(value);
    dst.put_slice(CRLF);
}

/// Number of decimal digits in `n` (1 for 0).
fn decimal_len(mut n: u64) -> usize {
    let mut len = 1;
    while n >= 10 {
        n /= 10;
        len += 1;
    }
    len
}

/// Appends `n` in decimal without going through `fmt`.
fn put_decimal(dst: &mut BytesMut, mut n: u64) {
    // u64::MAX has 20 digits.
    let mut digits = [0u8; 20];
    let mut start = digits.len();
    loop {
        start -= 1;
        digits[start] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    dst.put_slice(&digits[start..]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::h1::{BodyFraming, Limits, Method, Version, parse_request};

    fn request_head(
        method: &str,
        path: &[u8],
        query: Option<&[u8]>,
        headers: &[(&[u8], &[u8])],
        content_length: u64,
    ) -> Vec<u8> {
        let mut dst = BytesMut::new();
        encode_request_head(
            &mut dst,
            method,
            path,
            query,
            "pyroscope:4040",
            headers,
            RequestFraming::Length(content_length),
        );
        dst.to_vec()
    }

    #[test]
    fn request_head_has_the_exact_layout() {
        let got = request_head(
            "POST",
            b"/ingest",
            Some(b"name=app%7B%7D&from=1"),
            &[
                (b"Content-Type", b"application/octet-stream"),
                (b"User-Agent", b"pyrogate/0.1.0"),
            ],
            1234,
        );
        assert_eq!(
            String::from_utf8(got).unwrap(),
            "POST /ingest?name=app%7B%7D&from=1 HTTP/1.1\r\nHost: pyroscope:4040\r\nContent-Type: application/octet-stream\r\nUser-Agent: pyrogate/0.1.0\r\nContent-Length: 1234\r\n\r\n"
        );
    }

    /// (path, query, content_length, expected head)
    type RequestCase = (&'static [u8], Option<&'static [u8]>, u64, &'static str);

    #[test]
    fn request_head_edge_cases() {
        let cases: &[RequestCase] = &[
            (
                b"/x",
                None,
                0,
                "POST /x HTTP/1.1\r\nHost: pyroscope:4040\r\nContent-Length: 0\r\n\r\n",
            ),
            (
                b"",
                None,
                7,
                "POST / HTTP/1.1\r\nHost: pyroscope:4040\r\nContent-Length: 7\r\n\r\n",
            ),
            (
                b"/x",
                Some(b""),
                0,
                "POST /x? HTTP/1.1\r\nHost: pyroscope:4040\r\nContent-Length: 0\r\n\r\n",
            ),
            (
                b"/x",
                None,
                u64::MAX,
                "POST /x HTTP/1.1\r\nHost: pyroscope:4040\r\nContent-Length: 18446744073709551615\r\n\r\n",
            ),
        ];
        for &(path, query, length, expected) in cases {
            let got = request_head("POST", path, query, &[], length);
            assert_eq!(String::from_utf8(got).unwrap(), expected);
        }
    }

    #[test]
    fn request_head_reserves_exactly_once() {
        let mut dst = BytesMut::new();
        encode_request_head(
            &mut dst,
            "POST",
            b"/ingest",
            Some(b"a=b"),
            "h",
            &[(b"K", b"V")],
            RequestFraming::Length(99),
        );
        assert_eq!(dst.len(), dst.capacity(), "the reservation was exact");
    }

    #[test]
    fn chunked_request_head_has_the_exact_layout_and_reserves_exactly_once() {
        let mut dst = BytesMut::new();
        encode_request_head(
            &mut dst,
            "POST",
            b"/debuginfo.v1alpha1.DebuginfoService/Upload/ab01",
            None,
            "pyroscope:4040",
            &[(b"User-Agent", b"pyrogate/0.1.0")],
            RequestFraming::Chunked,
        );
        assert_eq!(dst.len(), dst.capacity(), "the reservation was exact");
        assert_eq!(
            String::from_utf8(dst.to_vec()).unwrap(),
            "POST /debuginfo.v1alpha1.DebuginfoService/Upload/ab01 HTTP/1.1\r\nHost: pyroscope:4040\r\nUser-Agent: pyrogate/0.1.0\r\nTransfer-Encoding: chunked\r\n\r\n"
        );
    }

    #[test]
    fn encoded_request_heads_parse_back_to_the_same_fields() {
        let headers: &[(&[u8], &[u8])] = &[
            (b"Content-Type", b"multipart/form-data; boundary=abc"),
            (b"X-Scope-OrgID", b"tenant-1"),
        ];
        let buf = request_head(
            "POST",
            b"/pyroscope/ingest",
            Some(b"name=a%7Bb%3Dc%7D"),
            headers,
            42,
        );
        let limits = Limits {
            max_head_bytes: 4096,
            max_headers: 16,
        };
        let head = parse_request(&buf, &limits).unwrap().unwrap();
        assert_eq!(head.head_len, buf.len());
        assert_eq!(head.method, Method::Post);
        assert_eq!(head.version, Version::Http11);
        assert_eq!(&buf[head.path.clone()], b"/pyroscope/ingest");
        assert_eq!(
            head.query.clone().map(|q| &buf[q]),
            Some(&b"name=a%7Bb%3Dc%7D"[..])
        );
        assert_eq!(head.header(&buf, "host"), Some(&b"pyroscope:4040"[..]));
        assert_eq!(head.header(&buf, "content-type"), Some(headers[0].1));
        assert_eq!(head.header(&buf, "x-scope-orgid"), Some(headers[1].1));
        assert_eq!(head.body, BodyFraming::Length(42));
        assert!(head.keep_alive);
        assert_eq!(head.headers.len(), 4);

        let buf = request_head("GET", b"/x", None, &[], 0);
        let head = parse_request(&buf, &limits).unwrap().unwrap();
        assert_eq!(head.method, Method::Get);
        assert_eq!(head.query, None);
        assert_eq!(head.body, BodyFraming::Length(0));
    }

    /// (status, headers, body, close, expected bytes)
    type ResponseCase = (
        u16,
        &'static [(&'static str, &'static [u8])],
        &'static [u8],
        bool,
        &'static str,
    );

    #[test]
    fn responses_have_the_exact_layout() {
        let cases: &[ResponseCase] = &[
            (
                200,
                &[],
                b"",
                false,
                "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
            ),
            (
                503,
                &[
                    ("Retry-After", b"5"),
                    ("Content-Type", b"text/plain; charset=utf-8"),
                ],
                b"overloaded\n",
                true,
                "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 5\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 11\r\nConnection: close\r\n\r\noverloaded\n",
            ),
            (
                431,
                &[],
                b"",
                true,
                "HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            ),
            (
                299,
                &[],
                b"x",
                false,
                "HTTP/1.1 299 \r\nContent-Length: 1\r\n\r\nx",
            ),
            (
                204,
                &[],
                b"ignored",
                false,
                "HTTP/1.1 204 No Content\r\n\r\n",
            ),
            (
                304,
                &[],
                b"",
                true,
                "HTTP/1.1 304 Not Modified\r\nConnection: close\r\n\r\n",
            ),
            (
                103,
                &[("Link", b"</a>")],
                b"",
                false,
                "HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n",
            ),
        ];
        for &(status, headers, body, close, expected) in cases {
            let mut dst = BytesMut::new();
            encode_response(&mut dst, status, headers, body, close);
            assert_eq!(
                String::from_utf8(dst.to_vec()).unwrap(),
                expected,
                "status {status}"
            );
            assert_eq!(
                dst.len(),
                dst.capacity(),
                "status {status}: the reservation was exact"
            );
        }
    }

    #[test]
    fn continue_is_a_complete_interim_response() {
        let mut dst = BytesMut::new();
        encode_response(&mut dst, 100, &[], b"", false);
        assert_eq!(&dst[..], CONTINUE_100);
    }

    #[test]
    fn decimal_helpers_agree_with_fmt() {
        for n in [
            0,
            1,
            9,
            10,
            99,
            100,
            12345,
            u64::from(u32::MAX),
            u64::MAX - 1,
            u64::MAX,
        ] {
            let mut dst = BytesMut::new();
            put_decimal(&mut dst, n);
            assert_eq!(&dst[..], n.to_string().as_bytes());
            assert_eq!(decimal_len(n), n.to_string().len());
        }
    }
}
