//! HTTP/1.1 wire format, both directions: request heads from clients, chunked bodies, response
//! heads from upstreams, and the heads pyrogate writes.
//!
//! Owns: turning bytes into framing decisions (RFC 9112) and values into bytes. Does not own: any
//! I/O, timeouts, buffering strategy or routing — the runtime reads into a `BytesMut`, calls these
//! functions, and slices the frozen buffer with the ranges they return (no copies: what is
//! forwarded is a `Bytes::slice` of what was read).
//! Hot path: every request and every upstream response goes through here. Nothing in this module
//! allocates per header, panics on any input, or touches monoio, so all of it is table-tested,
//! fuzzed (`fuzz/fuzz_targets/{request_head,chunked,response_head}.rs`) and benched
//! (`benches/h1.rs`).
//!
//! Convention (httparse's `Status::Partial`, as hyper uses it): `Ok(None)` means "not enough
//! bytes yet", `Err` means "answer the error's status (if any) and close the connection".

use std::mem::MaybeUninit;
use std::ops::Range;

pub mod chunked;
pub mod encode;
pub mod request;
pub mod response;
pub mod status;

pub use chunked::{ChunkedDecoder, ChunkedError, ChunkedProgress};
pub use encode::{CONTINUE_100, RequestFraming, encode_request_head, encode_response};
pub use request::{RequestError, RequestHead, find_head_end, parse_request};
pub use response::{ResponseBody, ResponseError, ResponseHead, RetryAfter, parse_response};
pub use status::reason_phrase;

/// Size limits applied while parsing a head. The defaults and the config keys that override them
/// live in `config::model` (`DEFAULT_MAX_HEAD_BYTES`, `DEFAULT_MAX_HEADERS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest head (start line + fields + blank line) accepted; more → 431 for requests.
    pub max_head_bytes: usize,
    /// Most header fields accepted in one head; more → 431 for requests.
    pub max_headers: usize,
}

/// HTTP version of a parsed message. Only 1.0 and 1.1 are spoken (RFC 9112 §2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    Http10,
    Http11,
}

impl Version {
    /// `HTTP/1.minor` as httparse reports it; `None` for a version pyrogate does not speak.
    fn from_minor(minor: u8) -> Option<Self> {
        match minor {
            0 => Some(Self::Http10),
            1 => Some(Self::Http11),
            _ => None,
        }
    }
}

/// Request method (RFC 9110 §9). Methods are case-sensitive, so `get` is [`Method::Other`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Head,
    Post,
    Put,
    Delete,
    Options,
    Patch,
    Connect,
    Trace,
    Other,
}

impl Method {
    fn from_token(token: &str) -> Self {
        match token {
            "GET" => Self::Get,
            "HEAD" => Self::Head,
            "POST" => Self::Post,
            "PUT" => Self::Put,
            "DELETE" => Self::Delete,
            "OPTIONS" => Self::Options,
            "PATCH" => Self::Patch,
            "CONNECT" => Self::Connect,
            "TRACE" => Self::Trace,
            _ => Self::Other,
        }
    }
}

/// One header field line, as offsets into the buffer the head was parsed from, so the runtime
/// can `Bytes::slice` it after freezing the head (no per-header allocation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderRange {
    pub name: Range<usize>,
    pub value: Range<usize>,
}

impl HeaderRange {
    /// The field value, if the field is named `name` (ASCII case-insensitive) and both ranges lie
    /// inside `buf`.
    fn value_if_named<'a>(&self, buf: &'a [u8], name: &str) -> Option<&'a [u8]> {
        let field_name = buf.get(self.name.clone())?;
        if field_name.eq_ignore_ascii_case(name.as_bytes()) {
            buf.get(self.value.clone())
        } else {
            None
        }
    }
}

/// How a request body is delimited (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFraming {
    /// Neither Content-Length nor Transfer-Encoding: no body (§6.3 item 7).
    Empty,
    /// `Content-Length: n` (n may be 0).
    Length(u64),
    /// `Transfer-Encoding: chunked`; decode with [`ChunkedDecoder`].
    Chunked,
}

/// Header fields on the stack per parse. Heads with a larger configured `max_headers` fall back to
/// one heap array per parse (cold: only a non-default config gets there). 128 uninitialised
/// `httparse::Header`s are 4 KiB of stack and cost nothing to set up.
const HEADERS_ON_STACK: usize = 128;

/// Runs `f` with an uninitialised header array of exactly `max_headers` slots, on the stack when
/// it fits. httparse reports `TooManyHeaders` when a head has more fields than slots.
fn with_header_slots<'b, T>(
    max_headers: usize,
    f: impl FnOnce(&mut [MaybeUninit<httparse::Header<'b>>]) -> T,
) -> T {
    if max_headers <= HEADERS_ON_STACK {
        let mut slots = [const { MaybeUninit::<httparse::Header<'b>>::uninit() }; HEADERS_ON_STACK];
        f(&mut slots[..max_headers])
    } else {
        let mut slots = vec![MaybeUninit::<httparse::Header<'b>>::uninit(); max_headers];
        f(&mut slots)
    }
}

/// The part of `buf` handed to httparse, and whether `buf` already holds more than the head limit.
/// Never hand httparse more than the limit: a complete head inside the window is within the limit
/// by construction, and an incomplete window that is already full can never fit.
fn head_window<'b>(buf: &'b [u8], limits: &Limits) -> (&'b [u8], bool) {
    let window = buf.get(..limits.max_head_bytes).unwrap_or(buf);
    (window, buf.len() > limits.max_head_bytes)
}

/// Why a head is rejected, in the terms requests and responses share; each direction turns it
/// into its own error type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HeadFailure {
    /// Over `Limits::max_head_bytes`.
    TooLarge,
    /// Over `Limits::max_headers`.
    TooManyHeaders,
    /// A well-formed HTTP-version other than 1.0 and 1.1.
    UnsupportedVersion,
    Malformed(httparse::Error),
}

/// Reads httparse's verdict on `window` (from [`head_window`]): `Ok(Some(head_len))` for a
/// complete head, `Ok(None)` to wait for more bytes, or why the head is rejected. `at` says where
/// the start line carries its version, to tell an unsupported version from a malformed line.
fn head_status(
    parsed: Result<httparse::Status<usize>, httparse::Error>,
    window: &[u8],
    window_full: bool,
    at: VersionAt,
) -> Result<Option<usize>, HeadFailure> {
    match parsed {
        Ok(httparse::Status::Complete(head_len)) => Ok(Some(head_len)),
        Ok(httparse::Status::Partial) if window_full => Err(HeadFailure::TooLarge),
        Ok(httparse::Status::Partial) => Ok(None),
        Err(httparse::Error::TooManyHeaders) => Err(HeadFailure::TooManyHeaders),
        Err(httparse::Error::Version) => match classify_version(window, at) {
            VersionLine::Incomplete if window_full => Err(HeadFailure::TooLarge),
            VersionLine::Incomplete => Ok(None),
            VersionLine::WellFormed => Err(HeadFailure::UnsupportedVersion),
            VersionLine::Malformed => Err(HeadFailure::Malformed(httparse::Error::Version)),
        },
        Err(e) => Err(HeadFailure::Malformed(e)),
    }
}

/// Offsets of `part` inside `buf`. `part` must borrow from `buf` (httparse's output always does),
/// which keeps the subtraction in range; wrapping arithmetic keeps it panic-free regardless.
fn range_in(buf: &[u8], part: &[u8]) -> Range<usize> {
    let start = (part.as_ptr() as usize).wrapping_sub(buf.as_ptr() as usize);
    start..start.wrapping_add(part.len())
}

/// Strips optional whitespace (OWS = *( SP / HTAB ), RFC 9110 §5.6.3) from both ends.
fn trim_ows(mut value: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = value {
        value = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = value {
        value = rest;
    }
    value
}

/// Elements of a comma-separated list field (RFC 9110 §5.6.1), OWS-trimmed, empty ones included
/// (each caller decides what an empty element means for its field).
fn list_elements(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value.split(|&b| b == b',').map(trim_ows)
}

/// Why a set of Content-Length field values was rejected (RFC 9112 §6.3 item 5, RFC 9110 §8.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ContentLengthError {
    /// A value (or list element) is not 1*DIGIT, or does not fit in a u64.
    Invalid,
    /// Values are valid but not all equal.
    Differing,
}

/// Accumulates Content-Length field lines. RFC 9110 §8.6 lets a recipient accept a list of
/// identical values (`5, 5`, or the same header twice) as that value; anything else is invalid.
#[derive(Debug, Clone, Copy, Default)]
struct ContentLength {
    value: Option<u64>,
    error: Option<ContentLengthError>,
}

impl ContentLength {
    fn add_field(&mut self, field_value: &[u8]) {
        for element in list_elements(field_value) {
            let Some(n) = parse_digits(element) else {
                self.error = Some(ContentLengthError::Invalid);
                return;
            };
            match self.value {
                Some(prev) if prev != n => {
                    // An earlier Invalid stays: it is the more precise complaint.
                    self.error.get_or_insert(ContentLengthError::Differing);
                }
                _ => self.value = Some(n),
            }
        }
    }

    /// At least one Content-Length field line was seen, valid or not.
    fn is_present(&self) -> bool {
        self.value.is_some() || self.error.is_some()
    }

    fn finish(self) -> Result<Option<u64>, ContentLengthError> {
        match self.error {
            Some(e) => Err(e),
            None => Ok(self.value),
        }
    }
}

/// Parses 1*DIGIT into a u64; `None` for empty input, any non-digit (signs, spaces, hex) or
/// overflow.
fn parse_digits(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() {
        return None;
    }
    let mut n: u64 = 0;
    for &b in digits {
        if !b.is_ascii_digit() {
            return None;
        }
        n = n.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
    }
    Some(n)
}

/// Accumulates Transfer-Encoding field lines as one list (RFC 9110 §5.3: several field lines
/// combine in order into one list).
#[derive(Debug, Clone, Copy, Default)]
struct TransferEncoding {
    present: bool,
    /// Non-empty codings seen, in all field lines together.
    codings: usize,
    /// The last non-empty coding seen is exactly `chunked` (case-insensitive, RFC 9112 §7).
    last_is_chunked: bool,
}

impl TransferEncoding {
    fn add_field(&mut self, field_value: &[u8]) {
        self.present = true;
        // RFC 9110 §5.6.1: empty list elements do not count as elements.
        for coding in list_elements(field_value).filter(|c| !c.is_empty()) {
            self.codings += 1;
            self.last_is_chunked = coding.eq_ignore_ascii_case(b"chunked");
        }
    }

    /// Exactly one coding, and it is `chunked`: the only request framing pyrogate decodes.
    fn is_only_chunked(&self) -> bool {
        self.codings == 1 && self.last_is_chunked
    }
}

/// Connection options (RFC 9112 §9.3, §9.6): the `close` and `keep-alive` tokens of every
/// Connection field line.
#[derive(Debug, Clone, Copy, Default)]
struct ConnectionOptions {
    close: bool,
    keep_alive: bool,
}

impl ConnectionOptions {
    fn add_field(&mut self, field_value: &[u8]) {
        for option in list_elements(field_value) {
            if option.eq_ignore_ascii_case(b"close") {
                self.close = true;
            } else if option.eq_ignore_ascii_case(b"keep-alive") {
                self.keep_alive = true;
            }
        }
    }

    /// RFC 9112 §9.3: `close` always ends the connection; otherwise HTTP/1.1 persists by default
    /// and HTTP/1.0 only when the peer sent `keep-alive`.
    fn persists(&self, version: Version) -> bool {
        !self.close && (version == Version::Http11 || self.keep_alive)
    }
}

/// The field lines that decide framing and reuse in both directions (RFC 9112 §6.3, §9.3):
/// Content-Length, Transfer-Encoding and Connection, each accumulated over all its lines.
#[derive(Debug, Clone, Copy, Default)]
struct FramingFields {
    content_length: ContentLength,
    transfer_encoding: TransferEncoding,
    connection: ConnectionOptions,
}

impl FramingFields {
    /// Takes in one field line if it is one of the three; returns whether it was.
    fn add(&mut self, name: &[u8], value: &[u8]) -> bool {
        if name.eq_ignore_ascii_case(b"content-length") {
            self.content_length.add_field(value);
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            self.transfer_encoding.add_field(value);
        } else if name.eq_ignore_ascii_case(b"connection") {
            self.connection.add_field(value);
        } else {
            return false;
        }
        true
    }
}

/// Where the version token sits in a start line (RFC 9112 §3 and §4).
#[derive(Debug, Clone, Copy)]
enum VersionAt {
    /// request-line = method SP request-target SP HTTP-version
    End,
    /// status-line = HTTP-version SP status-code SP [ reason-phrase ]
    Start,
}

/// What a start line's version token looks like once httparse rejected it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum VersionLine {
    /// The start line has not fully arrived: wait, so the verdict does not depend on how the
    /// bytes were split across reads (httparse rejects `HTTP/2` as soon as it sees the `2`).
    Incomplete,
    /// `HTTP/d.d` (RFC 9112 §2.3) but not 1.0 or 1.1: a version we do not speak (505).
    WellFormed,
    /// Not an HTTP-version at all (400).
    Malformed,
}

fn classify_version(buf: &[u8], at: VersionAt) -> VersionLine {
    let Some((_, line)) = start_line(buf) else {
        return VersionLine::Incomplete;
    };
    match version_token(line, at) {
        Some((_, [b'H', b'T', b'T', b'P', b'/', major, b'.', minor]))
            if major.is_ascii_digit() && minor.is_ascii_digit() =>
        {
            VersionLine::WellFormed
        }
        _ => VersionLine::Malformed,
    }
}

/// The first start line in `buf` after any empty lines (RFC 9112 §2.2), without its line
/// terminator, and its offset; `None` while its LF has not arrived.
fn start_line(buf: &[u8]) -> Option<(usize, &[u8])> {
    let start = buf
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .unwrap_or(buf.len());
    let rest = buf.get(start..).unwrap_or_default();
    let lf = memchr::memchr(b'\n', rest)?;
    let line = rest.get(..lf).unwrap_or_default();
    Some((start, line.strip_suffix(b"\r").unwrap_or(line)))
}

/// The version token of a start line and its offset in the line. A request line must have
/// exactly three SP-separated parts (RFC 9112 §3): with more, the target held a space and the
/// line is malformed (400), whatever its last token looks like.
fn version_token(line: &[u8], at: VersionAt) -> Option<(usize, &[u8])> {
    match at {
        VersionAt::End => {
            if line.split(|&b| b == b' ').count() != 3 {
                return None;
            }
            let space = memchr::memrchr(b' ', line)?;
            Some((space + 1, line.get(space + 1..)?))
        }
        VersionAt::Start => {
            let end = memchr::memchr(b' ', line).unwrap_or(line.len());
            Some((0, line.get(..end)?))
        }
    }
}

/// Where the minor digit of a request line's `HTTP/1.<minor>` sits in `buf`, when the minor is
/// above 1. RFC 9110 §6.2: such a message SHOULD be processed as the highest minor version of
/// that major version the recipient implements (HTTP/1.1); Go's server does so.
fn later_http1_minor(buf: &[u8]) -> Option<usize> {
    let (start, line) = start_line(buf)?;
    match version_token(line, VersionAt::End)? {
        (at, [b'H', b'T', b'T', b'P', b'/', b'1', b'.', b'2'..=b'9']) => Some(start + at + 7),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_digits_accepts_only_plain_decimal_that_fits_u64() {
        let cases: &[(&[u8], Option<u64>)] = &[
            (b"0", Some(0)),
            (b"007", Some(7)),
            (b"18446744073709551615", Some(u64::MAX)),
            (b"18446744073709551616", None),
            (b"", None),
            (b"+5", None),
            (b"-5", None),
            (b"5 ", None),
            (b"0x10", None),
        ];
        for &(input, expected) in cases {
            assert_eq!(
                parse_digits(input),
                expected,
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn trim_ows_strips_spaces_and_tabs_only() {
        assert_eq!(trim_ows(b" \t a b \t"), b"a b");
        assert_eq!(trim_ows(b"   "), b"");
        assert_eq!(trim_ows(b"\r\n"), b"\r\n");
    }

    #[test]
    fn header_slots_beyond_the_stack_array_still_bound_the_count() {
        let seen = with_header_slots(HEADERS_ON_STACK + 7, |slots| slots.len());
        assert_eq!(seen, HEADERS_ON_STACK + 7);
        let seen = with_header_slots(3, |slots| slots.len());
        assert_eq!(seen, 3);
    }
}
