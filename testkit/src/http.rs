//! HTTP/1.1 message framing, written from RFC 9112 for the kit alone.
//!
//! Owns: parsing a request head and a response head (start line, header fields), chunked
//! transfer coding (chunk-size lines, RFC 9112 §7.1), Go's status texts, header lookups over
//! `(name, value)` pairs and the byte search the parsers share. Does not own sockets: the
//! stand-in ([`crate::server`]), the client ([`crate::client`]) and the CONNECT proxy
//! ([`crate::tls`]) read and write; this module only looks at bytes. Independent of pyrogate's
//! `h1` module and of `httparse`, so the tests do not check the gateway's framing against
//! itself.

/// Most header fields one head may carry before it is refused with 431.
pub const MAX_HEADERS: usize = 128;

/// The first value of header `name` (case-insensitive) among `(name, value)` pairs.
pub fn header_value<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    header_values(headers, name).into_iter().next()
}

/// Every value of header `name` (case-insensitive), in order.
pub fn header_values<'a>(headers: &'a [(String, String)], name: &str) -> Vec<&'a str> {
    headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
        .collect()
}

/// The first position of `needle` in `haystack`.
pub fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || haystack.len() < needle.len() {
        return None;
    }
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Why a head could not be parsed: the status Go's server answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadError {
    /// Malformed start line or header field (400).
    Malformed,
    /// More than [`MAX_HEADERS`] fields (431).
    TooManyHeaders,
}

/// A parsed request head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHead {
    pub method: String,
    /// The request-target as sent (origin form, or authority form for CONNECT).
    pub target: String,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub version: u8,
    /// Header fields in arrival order, names as sent, values trimmed of OWS.
    pub headers: Vec<(String, String)>,
}

impl RequestHead {
    /// The first value of a header (names compared case-insensitively).
    pub fn header(&self, name: &str) -> Option<&str> {
        header_value(&self.headers, name)
    }
}

/// A parsed response head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseHead {
    pub version: u8,
    pub status: u16,
    pub reason: String,
    pub headers: Vec<(String, String)>,
}

/// The end of the head at the start of `buf` (just past the empty line), if it is complete.
/// Bare LF line ends are accepted, as Go's `textproto` reader does.
pub fn head_end(buf: &[u8]) -> Option<usize> {
    let mut i = 0;
    while let Some(nl) = buf[i..].iter().position(|&b| b == b'\n') {
        let line_start = i;
        i += nl + 1;
        let line = &buf[line_start..i - 1];
        if line.is_empty() || line == b"\r" {
            return Some(i);
        }
    }
    None
}

/// Splits a complete head into its lines (without line ends), stopping at the empty line.
fn lines(head: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    for line in head.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            break;
        }
        out.push(line);
    }
    out
}

/// `tchar` of RFC 9110 §5.6.2.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn version(text: &[u8]) -> Result<u8, HeadError> {
    match text {
        b"HTTP/1.1" => Ok(1),
        b"HTTP/1.0" => Ok(0),
        _ => Err(HeadError::Malformed),
    }
}

/// Header fields (RFC 9112 §5): `name ":" OWS value OWS`, a token name with no space before
/// the colon, no obsolete line folding, values UTF-8.
fn fields(lines: &[&[u8]]) -> Result<Vec<(String, String)>, HeadError> {
    if lines.len() > MAX_HEADERS {
        return Err(HeadError::TooManyHeaders);
    }
    let mut out = Vec::with_capacity(lines.len());
    for line in lines {
        let colon = line
            .iter()
            .position(|&b| b == b':')
            .ok_or(HeadError::Malformed)?;
        let (name, value) = (&line[..colon], &line[colon + 1..]);
        if name.is_empty() || !name.iter().copied().all(is_tchar) {
            return Err(HeadError::Malformed);
        }
        let value = value.trim_ascii();
        if value.iter().any(|&b| b < 0x20 && b != b'\t' || b == 0x7f) {
            return Err(HeadError::Malformed);
        }
        let value = std::str::from_utf8(value).map_err(|_| HeadError::Malformed)?;
        // `name` is all tchar, hence ASCII.
        let name = String::from_utf8_lossy(name).into_owned();
        out.push((name, value.to_string()));
    }
    Ok(out)
}

/// Parses a complete request head (up to and including the empty line).
pub fn parse_request_head(head: &[u8]) -> Result<RequestHead, HeadError> {
    let all = lines(head);
    let (start, rest) = all.split_first().ok_or(HeadError::Malformed)?;
    let mut parts = start.split(|&b| b == b' ');
    let (Some(method), Some(target), Some(ver), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(HeadError::Malformed);
    };
    if method.is_empty() || !method.iter().copied().all(is_tchar) {
        return Err(HeadError::Malformed);
    }
    if target.is_empty() || target.iter().any(|&b| b <= b' ' || b == 0x7f) {
        return Err(HeadError::Malformed);
    }
    Ok(RequestHead {
        method: String::from_utf8_lossy(method).into_owned(),
        target: String::from_utf8_lossy(target).into_owned(),
        version: version(ver)?,
        headers: fields(rest)?,
    })
}

/// Parses a complete response head (up to and including the empty line).
pub fn parse_response_head(head: &[u8]) -> Result<ResponseHead, HeadError> {
    let all = lines(head);
    let (start, rest) = all.split_first().ok_or(HeadError::Malformed)?;
    let mut parts = start.splitn(3, |&b| b == b' ');
    let (Some(ver), Some(code)) = (parts.next(), parts.next()) else {
        return Err(HeadError::Malformed);
    };
    if code.len() != 3 || !code.iter().all(u8::is_ascii_digit) {
        return Err(HeadError::Malformed);
    }
    let status = code
        .iter()
        .fold(0u16, |acc, d| acc * 10 + u16::from(d - b'0'));
    Ok(ResponseHead {
        version: version(ver)?,
        status,
        reason: String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned(),
        headers: fields(rest)?,
    })
}

/// A chunk-size line at the start of `buf` (RFC 9112 §7.1: hex size, optional extensions,
/// CRLF): `Ok(Some((bytes consumed, size)))`, `Ok(None)` if incomplete, `Err` if malformed or
/// the size overflows 64 bits.
pub fn parse_chunk_size(buf: &[u8]) -> Result<Option<(usize, u64)>, BadChunk> {
    let Some(nl) = buf.iter().position(|&b| b == b'\n') else {
        return Ok(None);
    };
    let line = buf[..nl].strip_suffix(b"\r").ok_or(BadChunk)?;
    let size_text = match line.iter().position(|&b| b == b';') {
        Some(semi) => &line[..semi],
        None => line,
    };
    let size_text = size_text.trim_ascii_end();
    if size_text.is_empty() {
        return Err(BadChunk);
    }
    let mut size: u64 = 0;
    for &b in size_text {
        let digit = (b as char).to_digit(16).ok_or(BadChunk)?;
        size = size
            .checked_mul(16)
            .and_then(|s| s.checked_add(u64::from(digit)))
            .ok_or(BadChunk)?;
    }
    Ok(Some((nl + 1, size)))
}

/// A malformed chunk-size line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadChunk;

/// Go's `http.StatusText` for the statuses the kit writes ("Unknown" otherwise).
pub fn status_text(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        204 => "No Content",
        307 => "Temporary Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        413 => "Request Entity Too Large",
        415 => "Unsupported Media Type",
        422 => "Unprocessable Entity",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Unknown",
    }
}

/// One complete response: the status line, `content_type` if any, the `extra` headers,
/// `Connection: close` when `close`, a Content-Length and the body.
pub fn response_bytes(
    status: u16,
    content_type: Option<&str>,
    extra: &[(&str, &str)],
    body: &[u8],
    close: bool,
) -> Vec<u8> {
    let mut out = format!("HTTP/1.1 {status} {}\r\n", status_text(status));
    if let Some(ct) = content_type {
        out.push_str(&format!("Content-Type: {ct}\r\n"));
    }
    for (name, value) in extra {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    if close {
        out.push_str("Connection: close\r\n");
    }
    out.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

/// `HTTP/1.1 <status>` with an empty body and a Content-Length of 0.
pub fn status_response(status: u16) -> Vec<u8> {
    response_bytes(status, None, &[], b"", false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_heads_parse_and_malformed_ones_are_refused() {
        let head =
            parse_request_head(b"POST /ingest?a=b HTTP/1.1\r\nHost: x\r\nX-A:  v w \r\n\r\n")
                .unwrap();
        assert_eq!(head.method, "POST");
        assert_eq!(head.target, "/ingest?a=b");
        assert_eq!(head.version, 1);
        assert_eq!(
            head.headers,
            [("Host".into(), "x".into()), ("X-A".into(), "v w".into())]
        );
        assert_eq!(head_end(b"GET / HTTP/1.0\n\nrest"), Some(16));
        for bad in [
            &b"POST /ingest HTTP/2.0\r\n\r\n"[..],
            b"POST  /ingest HTTP/1.1\r\n\r\n",
            b"POST /ingest HTTP/1.1\r\nBad Name: x\r\n\r\n",
            b"POST /ingest HTTP/1.1\r\nName : x\r\n\r\n",
            b"POST /ingest HTTP/1.1\r\nNoColon\r\n\r\n",
            b"POST /ingest HTTP/1.1\r\nA: \xff\r\n\r\n",
        ] {
            assert_eq!(
                parse_request_head(bad),
                Err(HeadError::Malformed),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        let many: String = (0..=MAX_HEADERS).map(|i| format!("H{i}: v\r\n")).collect();
        let text = format!("GET / HTTP/1.1\r\n{many}\r\n");
        assert_eq!(
            parse_request_head(text.as_bytes()),
            Err(HeadError::TooManyHeaders)
        );
    }

    #[test]
    fn response_heads_and_chunk_sizes_parse() {
        let head = parse_response_head(b"HTTP/1.1 404 Not Found\r\nA: b\r\n\r\n").unwrap();
        assert_eq!((head.status, head.reason.as_str()), (404, "Not Found"));
        assert_eq!(parse_chunk_size(b"1a;ext=1\r\nxx"), Ok(Some((10, 26))));
        assert_eq!(parse_chunk_size(b"1a"), Ok(None));
        assert_eq!(parse_chunk_size(b"zz\r\n"), Err(BadChunk));
        assert_eq!(parse_chunk_size(b"1ffffffffffffffff\r\n"), Err(BadChunk));
    }
}
