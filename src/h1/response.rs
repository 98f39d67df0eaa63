//! Response heads from upstreams, read by pyrogate's HTTP/1.1 client.
//!
//! Owns: status-line and field parsing (via httparse), the response framing rules of RFC 9112
//! §6.3, whether the connection may be reused, and `Retry-After` (RFC 9110 §10.2.3), which
//! pyrogate honours when scheduling a retry. Does not own: reading the body (the sender uses
//! [`super::ChunkedDecoder`] or counts bytes), retry policy, or any I/O. Hot path: once per
//! upstream response; allocates nothing.

use std::ops::Range;
use std::time::{Duration, SystemTime};

use super::{
    ContentLengthError, FramingFields, HeadFailure, Limits, Version, VersionAt, head_status,
    head_window, parse_digits, range_in, trim_ows, with_header_slots,
};

/// A parsed response head. Ranges index the buffer given to [`parse_response`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseHead {
    /// Bytes of the head including the blank line; the body starts here.
    pub head_len: usize,
    pub status: u16,
    pub version: Version,
    /// The reason-phrase (may be empty).
    pub reason: Range<usize>,
    pub body: ResponseBody,
    /// Whether the connection can carry another request once this body has been read: false for
    /// `Connection: close`, HTTP/1.0 without `keep-alive`, close-delimited bodies, and framing
    /// RFC 9112 calls suspicious (Transfer-Encoding together with Content-Length).
    pub keep_alive: bool,
    /// `Retry-After`, when present and parsable.
    pub retry_after: Option<RetryAfter>,
    /// The first `Content-Type` value.
    pub content_type: Option<Range<usize>>,
}

/// How a response body is delimited (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseBody {
    /// No body: 1xx, 204, 304, or the response to HEAD (§6.3 item 1).
    Empty,
    /// `Content-Length: n` (§6.3 item 6).
    Length(u64),
    /// Chunked is the final transfer coding (§6.3 item 4).
    Chunked,
    /// Read until the server closes the connection (§6.3 items 4 and 8).
    UntilClose,
}

/// `Retry-After` (RFC 9110 §10.2.3): delay-seconds or an HTTP-date.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryAfter {
    Seconds(u64),
    Date(SystemTime),
}

/// Why an upstream response head was rejected. The connection must be closed and the response
/// discarded (RFC 9112 §6.3 item 5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ResponseError {
    #[error("upstream response head exceeds the {limit}-byte limit")]
    HeadTooLarge { limit: usize },
    #[error("upstream response head has more than {limit} header fields")]
    TooManyHeaders { limit: usize },
    #[error("malformed upstream response head: {0}")]
    Malformed(httparse::Error),
    #[error("upstream answered with an HTTP version other than 1.0 or 1.1")]
    UnsupportedVersion,
    #[error("upstream Content-Length is not a non-negative decimal integer")]
    InvalidContentLength,
    #[error("upstream response has differing Content-Length values")]
    ConflictingContentLength,
}

impl ResponseError {
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

/// Parses the response head at the start of `buf`. `request_was_head` selects the HEAD rule of
/// RFC 9112 §6.3 item 1. Interim (1xx) responses are returned like any other, with an empty
/// body, so the caller skips `head_len` bytes and parses again.
///
/// Returns `Ok(None)` when the head is incomplete and still within `limits.max_head_bytes`.
///
/// # Errors
/// [`ResponseError`] when the head is too large, has too many fields, is malformed or has an
/// invalid Content-Length.
pub fn parse_response(
    buf: &[u8],
    limits: &Limits,
    request_was_head: bool,
) -> Result<Option<ResponseHead>, ResponseError> {
    let (window, window_full) = head_window(buf, limits);
    with_header_slots(limits.max_headers, |slots| {
        let mut res = httparse::Response::new(&mut []);
        let parsed = httparse::ParserConfig::default()
            .parse_response_with_uninit_headers(&mut res, window, slots);
        match head_status(parsed, window, window_full, VersionAt::Start) {
            Ok(Some(head_len)) => interpret(window, head_len, &res, request_was_head).map(Some),
            Ok(None) => Ok(None),
            Err(failure) => Err(ResponseError::from_head(failure, limits)),
        }
    })
}

fn interpret(
    buf: &[u8],
    head_len: usize,
    res: &httparse::Response<'_, '_>,
    request_was_head: bool,
) -> Result<ResponseHead, ResponseError> {
    // httparse fills all three on Complete; the fallback keeps this panic-free regardless.
    let (Some(minor), Some(status)) = (res.version, res.code) else {
        return Err(ResponseError::Malformed(httparse::Error::Status));
    };
    let Some(version) = Version::from_minor(minor) else {
        return Err(ResponseError::UnsupportedVersion);
    };

    let mut framing = FramingFields::default();
    let mut retry_after = None;
    let mut retry_after_seen = false;
    let mut content_type = None;
    for field in res.headers.iter() {
        let name = field.name.as_bytes();
        if framing.add(name, field.value) {
            continue;
        }
        if name.eq_ignore_ascii_case(b"retry-after") && !retry_after_seen {
            retry_after_seen = true;
            retry_after = parse_retry_after(field.value);
        } else if name.eq_ignore_ascii_case(b"content-type") && content_type.is_none() {
            content_type = Some(range_in(buf, field.value));
        }
    }

    let FramingFields {
        content_length,
        transfer_encoding,
        connection,
    } = framing;
    // RFC 9112 §6.3, in order.
    let body = if request_was_head || matches!(status, 100..=199 | 204 | 304) {
        // Item 1: no body, whatever the header fields say.
        ResponseBody::Empty
    } else if transfer_encoding.present {
        if version == Version::Http10 || !transfer_encoding.last_is_chunked {
            // §6.1: Transfer-Encoding in an HTTP/1.0 message means faulty framing;
            // item 4: chunked not final → the body runs until the server closes.
            ResponseBody::UntilClose
        } else {
            // Item 3: Transfer-Encoding overrides Content-Length.
            ResponseBody::Chunked
        }
    } else {
        match content_length.finish() {
            Ok(Some(n)) => ResponseBody::Length(n),
            // Item 8: neither header → close-delimited.
            Ok(None) => ResponseBody::UntilClose,
            // Item 5: "the user agent MUST close the connection to the server and discard the
            // received response".
            Err(ContentLengthError::Invalid) => return Err(ResponseError::InvalidContentLength),
            Err(ContentLengthError::Differing) => {
                return Err(ResponseError::ConflictingContentLength);
            }
        }
    };

    // Item 3 says both headers together "ought to be handled as an error"; the body is still
    // readable as chunked, so the response is used but the connection is not reused.
    let suspicious = transfer_encoding.present && content_length.is_present();
    let keep_alive =
        connection.persists(version) && body != ResponseBody::UntilClose && !suspicious;

    Ok(ResponseHead {
        head_len,
        status,
        version,
        reason: reason_range(buf, head_len),
        body,
        keep_alive,
        retry_after,
        content_type,
    })
}

/// The reason-phrase of the status line at the start of `buf[..head_len]`, located by hand:
/// httparse hands back a `&'static ""` rather than a slice of the buffer when the reason is
/// absent or holds obs-text (bytes ≥ 0x80), so its pointer cannot be turned into an offset.
fn reason_range(buf: &[u8], head_len: usize) -> Range<usize> {
    let head = buf.get(..head_len).unwrap_or(buf);
    // Empty lines before the status line are skipped, as httparse does.
    let line_start = head
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .unwrap_or(head.len());
    let rest = head.get(line_start..).unwrap_or_default();
    let mut line_end = memchr::memchr(b'\n', rest).map_or(head.len(), |lf| line_start + lf);
    if line_end > line_start && head.get(line_end - 1) == Some(&b'\r') {
        line_end -= 1;
    }
    // RFC 9112 §4: `HTTP/1.x SSS` is 12 bytes, then SP and the (possibly empty) reason.
    let start = (line_start + 13).min(line_end);
    start..line_end
}

/// `Retry-After = HTTP-date / delay-seconds` (RFC 9110 §10.2.3). `None` when unparsable.
fn parse_retry_after(value: &[u8]) -> Option<RetryAfter> {
    let value = trim_ows(value);
    if value.first().is_some_and(u8::is_ascii_digit) {
        return parse_digits(value).map(RetryAfter::Seconds);
    }
    parse_http_date(value).map(RetryAfter::Date)
}

const MONTHS: [&[u8; 3]; 12] = [
    b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec",
];
const DAY_NAMES: [&[u8]; 7] = [b"Mon", b"Tue", b"Wed", b"Thu", b"Fri", b"Sat", b"Sun"];
const DAY_NAMES_LONG: [&[u8]; 7] = [
    b"Monday",
    b"Tuesday",
    b"Wednesday",
    b"Thursday",
    b"Friday",
    b"Saturday",
    b"Sunday",
];

/// HTTP-date (RFC 9110 §5.6.7): IMF-fixdate, or the obsolete RFC 850 and asctime forms that
/// recipients MUST accept. The day name is checked to be a day name but, as in Go's
/// `http.ParseTime`, not checked against the date.
fn parse_http_date(value: &[u8]) -> Option<SystemTime> {
    let fields = match value {
        // IMF-fixdate: `Sun, 06 Nov 1994 08:49:37 GMT`
        [
            w1,
            w2,
            w3,
            b',',
            b' ',
            d1,
            d2,
            b' ',
            m1,
            m2,
            m3,
            b' ',
            y1,
            y2,
            y3,
            y4,
            b' ',
            time @ ..,
            b' ',
            b'G',
            b'M',
            b'T',
        ] if DAY_NAMES.contains(&&[*w1, *w2, *w3][..]) => DateFields {
            year: u32::from(digits(&[*y1, *y2, *y3, *y4])?),
            month: month(&[*m1, *m2, *m3])?,
            day: digits(&[*d1, *d2])?,
            time,
        },
        // asctime: `Sun Nov  6 08:49:37 1994` (day is 2DIGIT or SP DIGIT)
        [
            w1,
            w2,
            w3,
            b' ',
            m1,
            m2,
            m3,
            b' ',
            d1,
            d2,
            b' ',
            time @ ..,
            b' ',
            y1,
            y2,
            y3,
            y4,
        ] if DAY_NAMES.contains(&&[*w1, *w2, *w3][..]) => {
            let day = match d1 {
                b' ' => digits(&[*d2])?,
                _ => digits(&[*d1, *d2])?,
            };
            DateFields {
                year: u32::from(digits(&[*y1, *y2, *y3, *y4])?),
                month: month(&[*m1, *m2, *m3])?,
                day,
                time,
            }
        }
        // RFC 850: `Sunday, 06-Nov-94 08:49:37 GMT`
        _ => {
            let comma = memchr::memchr(b',', value)?;
            let (weekday, rest) = (value.get(..comma)?, value.get(comma..)?);
            if !DAY_NAMES_LONG.contains(&weekday) {
                return None;
            }
            let [
                b',',
                b' ',
                d1,
                d2,
                b'-',
                m1,
                m2,
                m3,
                b'-',
                y1,
                y2,
                b' ',
                time @ ..,
                b' ',
                b'G',
                b'M',
                b'T',
            ] = rest
            else {
                return None;
            };
            // Two-digit years: RFC 9110 §5.6.7 pins them relative to "now"; this pure function
            // has no clock, so it follows Go's `time.Parse` ("06": 69–99 → 19xx, else 20xx).
            let yy = digits(&[*y1, *y2])?;
            DateFields {
                year: u32::from(yy) + if yy >= 69 { 1900 } else { 2000 },
                month: month(&[*m1, *m2, *m3])?,
                day: digits(&[*d1, *d2])?,
                time,
            }
        }
    };
    fields.to_system_time()
}

struct DateFields<'a> {
    year: u32,
    /// 1..=12
    month: u32,
    day: u16,
    /// `HH:MM:SS`, still unparsed.
    time: &'a [u8],
}

impl DateFields<'_> {
    fn to_system_time(&self) -> Option<SystemTime> {
        let [h1, h2, b':', n1, n2, b':', s1, s2] = self.time else {
            return None;
        };
        let (hour, minute, second) = (
            digits(&[*h1, *h2])?,
            digits(&[*n1, *n2])?,
            digits(&[*s1, *s2])?,
        );
        // RFC 9110 §5.6.7 allows second 60 (a leap second); it is counted as the next minute.
        if hour > 23 || minute > 59 || second > 60 {
            return None;
        }
        let day = u32::from(self.day);
        if day == 0 || day > days_in_month(self.year, self.month) {
            return None;
        }
        let days = days_from_civil(i64::from(self.year), self.month, day);
        let secs =
            days * 86_400 + i64::from(hour) * 3600 + i64::from(minute) * 60 + i64::from(second);
        match u64::try_from(secs) {
            Ok(after) => SystemTime::UNIX_EPOCH.checked_add(Duration::from_secs(after)),
            Err(_) => SystemTime::UNIX_EPOCH.checked_sub(Duration::from_secs(secs.unsigned_abs())),
        }
    }
}

/// 1..=12 for a case-sensitive month name (RFC 9110 §5.6.7).
fn month(name: &[u8; 3]) -> Option<u32> {
    let index = MONTHS.iter().position(|m| *m == name)?;
    u32::try_from(index).ok().map(|i| i + 1)
}

/// The value of up to four ASCII digits; `None` if any byte is not a digit.
fn digits(ds: &[u8]) -> Option<u16> {
    ds.iter().try_fold(0u16, |n, &b| {
        b.is_ascii_digit()
            .then(|| n.saturating_mul(10).saturating_add(u16::from(b - b'0')))
    })
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400)) => {
            29
        }
        2 => 28,
        _ => 0,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_from_march = i64::from((month + 9) % 12);
    let day_of_year = (153 * month_from_march + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        max_head_bytes: 1024,
        max_headers: 16,
    };

    fn parse(input: &[u8], request_was_head: bool) -> Result<Option<ResponseHead>, ResponseError> {
        parse_response(input, &LIMITS, request_was_head)
    }

    fn head(input: &[u8]) -> ResponseHead {
        match parse(input, false) {
            Ok(Some(head)) => head,
            other => panic!("{:?} → {other:?}", String::from_utf8_lossy(input)),
        }
    }

    /// 1994-11-06T08:49:37Z, the example date of RFC 9110 §5.6.7.
    fn rfc_example_date() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777)
    }

    #[test]
    fn status_reason_and_content_type_are_recorded() {
        let buf = b"HTTP/1.1 429 Too Many Requests\r\nContent-Type: text/plain\r\nContent-Length: 4\r\nContent-Type: ignored\r\n\r\nslow";
        let h = head(buf);
        assert_eq!(h.head_len, buf.len() - 4);
        assert_eq!(h.status, 429);
        assert_eq!(h.version, Version::Http11);
        assert_eq!(&buf[h.reason.clone()], b"Too Many Requests");
        assert_eq!(
            h.content_type.clone().map(|r| &buf[r]),
            Some(&b"text/plain"[..])
        );
        assert_eq!(h.body, ResponseBody::Length(4));
        assert!(h.keep_alive);
        assert_eq!(h.retry_after, None);
    }

    #[test]
    fn reason_phrases_are_located_in_the_buffer_whatever_they_hold() {
        let cases: &[(&[u8], &[u8])] = &[
            (b"HTTP/1.1 200 \r\nContent-Length: 0\r\n\r\n", b""),
            (b"HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n", b""),
            (b"HTTP/1.1 200\nContent-Length: 0\n\n", b""),
            (
                b"HTTP/1.1 200 Okay then\nContent-Length: 0\n\n",
                b"Okay then",
            ),
            (b"\r\nHTTP/1.1 404 Not Found\r\n\r\n", b"Not Found"),
            // obs-text (RFC 9112 §4) is allowed in a reason-phrase.
            (
                b"HTTP/1.1 200 \xadOK\xff\r\nContent-Length: 0\r\n\r\n",
                b"\xadOK\xff",
            ),
        ];
        for &(buf, reason) in cases {
            let h = head(buf);
            assert_eq!(
                &buf[h.reason.clone()],
                reason,
                "{:?}",
                String::from_utf8_lossy(buf)
            );
        }
    }

    #[test]
    fn body_framing_and_reuse_follow_rfc_9112_section_6_3() {
        use ResponseBody::*;
        // (input, request_was_head, body, keep_alive)
        let cases: &[(&[u8], bool, ResponseBody, bool)] = &[
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\n",
                false,
                Length(12),
                true,
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 12, 12\r\n\r\n",
                false,
                Length(12),
                true,
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
                false,
                Length(0),
                true,
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
                false,
                Chunked,
                true,
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
                false,
                Chunked,
                true,
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
                false,
                UntilClose,
                false,
            ),
            // TE overrides CL, but the connection is not trusted afterwards.
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
                false,
                Chunked,
                false,
            ),
            (
                b"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: keep-alive\r\n\r\n",
                false,
                UntilClose,
                false,
            ),
            (b"HTTP/1.1 200 OK\r\n\r\n", false, UntilClose, false),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\n",
                false,
                Length(3),
                false,
            ),
            (
                b"HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\n",
                false,
                Length(3),
                false,
            ),
            (
                b"HTTP/1.0 200 OK\r\nContent-Length: 3\r\nConnection: keep-alive\r\n\r\n",
                false,
                Length(3),
                true,
            ),
            // Item 1: no body whatever the fields say, invalid ones included.
            (
                b"HTTP/1.1 204 No Content\r\nContent-Length: 3\r\n\r\n",
                false,
                Empty,
                true,
            ),
            (
                b"HTTP/1.1 304 Not Modified\r\nContent-Length: x\r\n\r\n",
                false,
                Empty,
                true,
            ),
            (b"HTTP/1.1 100 Continue\r\n\r\n", false, Empty, true),
            (
                b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n",
                false,
                Empty,
                true,
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n",
                true,
                Empty,
                true,
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
                true,
                Empty,
                true,
            ),
        ];
        for &(input, request_was_head, body, keep_alive) in cases {
            let shown = String::from_utf8_lossy(input);
            let h = parse(input, request_was_head).unwrap().unwrap();
            assert_eq!(h.body, body, "{shown:?}");
            assert_eq!(h.keep_alive, keep_alive, "{shown:?}");
        }
    }

    fn rejection_cases() -> Vec<(&'static [u8], ResponseError)> {
        use ResponseError::*;
        vec![
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
                InvalidContentLength,
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 1.5\r\n\r\n",
                InvalidContentLength,
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 5, 6\r\n\r\n",
                ConflictingContentLength,
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
                ConflictingContentLength,
            ),
            (b"HTTP/2.0 200 OK\r\n\r\n", UnsupportedVersion),
            (b"HTTP/1.2 200 OK\r\n\r\n", UnsupportedVersion),
            (
                b"HTTP/2 200 OK\r\n\r\n",
                Malformed(httparse::Error::Version),
            ),
            (
                b"SPDY/1.1 200 OK\r\n\r\n",
                Malformed(httparse::Error::Version),
            ),
            (
                b"HTTP/1.1 2000 OK\r\n\r\n",
                Malformed(httparse::Error::Status),
            ),
            (
                b"HTTP/1.1 abc OK\r\n\r\n",
                Malformed(httparse::Error::Status),
            ),
            (
                b"HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n",
                Malformed(httparse::Error::HeaderName),
            ),
        ]
    }

    #[test]
    fn invalid_heads_are_rejected_precisely() {
        for (input, error) in rejection_cases() {
            assert_eq!(
                parse(input, false),
                Err(error),
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn every_prefix_of_a_rejected_head_is_incomplete_or_the_same_error() {
        for (input, error) in rejection_cases() {
            for end in 0..input.len() {
                let got = parse(&input[..end], false);
                assert!(
                    got == Ok(None) || got == Err(error),
                    "{:?} prefix {end}: {got:?}",
                    String::from_utf8_lossy(input)
                );
            }
        }
    }

    #[test]
    fn size_and_count_limits_apply() {
        let buf = b"HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\n\r\n";
        let limits = Limits {
            max_head_bytes: buf.len() - 1,
            max_headers: 8,
        };
        assert_eq!(
            parse_response(buf, &limits, false),
            Err(ResponseError::HeadTooLarge {
                limit: buf.len() - 1
            })
        );
        let limits = Limits {
            max_head_bytes: 1024,
            max_headers: 1,
        };
        assert_eq!(
            parse_response(buf, &limits, false),
            Err(ResponseError::TooManyHeaders { limit: 1 })
        );
    }

    #[test]
    fn head_fed_byte_by_byte_completes_exactly_at_the_blank_line() {
        let buf = b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 7\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\n";
        let whole = head(buf);
        for end in 0..buf.len() {
            assert_eq!(parse(&buf[..end], false), Ok(None), "at {end}");
        }
        assert_eq!(whole.retry_after, Some(RetryAfter::Seconds(7)));
    }

    #[test]
    fn interim_responses_are_returned_so_the_caller_can_skip_them() {
        let buf = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
        let interim = head(buf);
        assert_eq!((interim.status, interim.body), (100, ResponseBody::Empty));
        let rest = &buf[interim.head_len..];
        let fin = head(rest);
        assert_eq!(
            (fin.status, fin.body, fin.head_len),
            (200, ResponseBody::Length(0), rest.len())
        );
    }

    #[test]
    fn retry_after_accepts_seconds_and_every_http_date_form() {
        let date = Some(RetryAfter::Date(rfc_example_date()));
        let cases: &[(&[u8], Option<RetryAfter>)] = &[
            (b"120", Some(RetryAfter::Seconds(120))),
            (b"0", Some(RetryAfter::Seconds(0))),
            (b" 5 ", Some(RetryAfter::Seconds(5))),
            (b"18446744073709551616", None),
            (b"-1", None),
            (b"1.5", None),
            (b"", None),
            (b"Sun, 06 Nov 1994 08:49:37 GMT", date),
            (b"Sunday, 06-Nov-94 08:49:37 GMT", date),
            (b"Sun Nov  6 08:49:37 1994", date),
            (b"Sun Nov 06 08:49:37 1994", date),
            (
                b"Thu, 01 Jan 1970 00:00:00 GMT",
                Some(RetryAfter::Date(SystemTime::UNIX_EPOCH)),
            ),
            (
                b"Thu, 29 Feb 2024 23:59:59 GMT",
                Some(RetryAfter::Date(
                    SystemTime::UNIX_EPOCH + Duration::from_secs(1_709_251_199),
                )),
            ),
            (
                b"Friday, 01-Jan-38 00:00:00 GMT",
                Some(RetryAfter::Date(
                    SystemTime::UNIX_EPOCH + Duration::from_secs(2_145_916_800),
                )),
            ),
            (
                b"Wed, 31 Dec 1969 23:59:59 GMT",
                SystemTime::UNIX_EPOCH
                    .checked_sub(Duration::from_secs(1))
                    .map(RetryAfter::Date),
            ),
            (b"Sun, 06 Nov 1994 08:49:37 UTC", None),
            (b"Sun, 06 nov 1994 08:49:37 GMT", None),
            (b"Xyz, 06 Nov 1994 08:49:37 GMT", None),
            (b"Sun, 31 Nov 1994 08:49:37 GMT", None),
            (b"Thu, 29 Feb 2023 00:00:00 GMT", None),
            (b"Sun, 06 Nov 1994 24:00:00 GMT", None),
            (b"Sun, 06 Nov 1994 08:60:00 GMT", None),
            (b"Sun, 6 Nov 1994 08:49:37 GMT", None),
            (b"Sun, 06 Nov 1994 08:49 GMT", None),
            (b"Sun, 06-Nov-94 08:49:37 GMT", None),
            (b"Funday, 06-Nov-94 08:49:37 GMT", None),
            (b"soon", None),
        ];
        for &(value, expected) in cases {
            assert_eq!(
                parse_retry_after(value),
                expected,
                "{:?}",
                String::from_utf8_lossy(value)
            );
        }
    }

    #[test]
    fn retry_after_in_a_head_is_parsed_and_the_first_one_wins() {
        let buf = b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: Sun, 06 Nov 1994 08:49:37 GMT\r\nRetry-After: 1\r\nContent-Length: 0\r\n\r\n";
        assert_eq!(
            head(buf).retry_after,
            Some(RetryAfter::Date(rfc_example_date()))
        );
        let buf = b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: later\r\nRetry-After: 1\r\nContent-Length: 0\r\n\r\n";
        assert_eq!(head(buf).retry_after, None);
    }

    #[test]
    fn errors_display_precise_messages() {
        assert_eq!(
            ResponseError::ConflictingContentLength.to_string(),
            "upstream response has differing Content-Length values"
        );
        assert_eq!(
            ResponseError::Malformed(httparse::Error::Status).to_string(),
            "malformed upstream response head: invalid response status"
        );
    }
}
