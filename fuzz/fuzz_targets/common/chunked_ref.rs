//! A second chunked-body decoder (RFC 9112 §7.1 with pyrogate's documented relaxations), written
//! as a one-shot recursive-descent reader over the whole input, independent of the state machine
//! in `pyrogate::h1::chunked`. Targets compare the two.
//!
//! Grammar accepted: `chunk-size = 1*HEXDIG`, then `*( SP / HTAB )`, then optionally `;` and any
//! bytes but CR/LF (the extension, unvalidated), then CRLF; chunk data; CRLF; ... `last-chunk`
//! (size 0), then trailer lines (any bytes but CR/LF) each ending in CRLF, then the final CRLF.
//! A bare LF anywhere in framing is an error. Limits: the decoded body (checked as soon as a
//! size digit makes the running total exceed it), the bytes after a size up to its CR summed over
//! the body, and the trailer bytes without their CRLFs.

#![allow(dead_code)] // each target uses part of it

pub const EXTENSIONS_LIMIT: usize = pyrogate::h1::chunked::CHUNK_EXTENSIONS_LIMIT;
pub const TRAILERS_LIMIT: usize = pyrogate::h1::chunked::TRAILERS_LIMIT;

/// The reference verdict on a whole input.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The body ended after `consumed` bytes; `data` is the decoded body.
    Done { data: Vec<u8>, consumed: usize },
    /// More bytes are needed; `data` is what was decoded so far.
    Incomplete { data: Vec<u8> },
    /// The framing is invalid or over a limit.
    Error,
}

struct Reader<'a> {
    input: &'a [u8],
    pos: usize,
}

/// Why reading stopped early.
enum Stop {
    Incomplete,
    Error,
}

impl Reader<'_> {
    fn peek(&self) -> Result<u8, Stop> {
        self.input.get(self.pos).copied().ok_or(Stop::Incomplete)
    }

    fn expect(&mut self, byte: u8) -> Result<(), Stop> {
        if self.peek()? != byte {
            return Err(Stop::Error);
        }
        self.pos += 1;
        Ok(())
    }
}

fn hex(b: u8) -> Option<u64> {
    (b as char).to_digit(16).map(u64::from)
}

fn read(r: &mut Reader<'_>, data: &mut Vec<u8>, max_body: u64) -> Result<(), Stop> {
    let mut extension_bytes = 0usize;
    loop {
        // chunk-size
        let digits_at = r.pos;
        let mut size: u64 = 0;
        while let Some(d) = r.input.get(r.pos).copied().and_then(hex) {
            size = size.checked_mul(16).and_then(|s| s.checked_add(d)).ok_or(Stop::Error)?;
            if data.len() as u64 + size > max_body {
                return Err(Stop::Error);
            }
            r.pos += 1;
        }
        if r.pos == digits_at {
            r.peek()?;
            return Err(Stop::Error);
        }
        // BWS, then an optional extension, up to the CR.
        let mut in_extension = false;
        loop {
            let b = r.peek()?;
            if b == b'\r' {
                r.pos += 1;
                break;
            }
            match (in_extension, b) {
                (true, b'\n') => return Err(Stop::Error),
                (true, _) => {}
                (false, b';') => in_extension = true,
                (false, b' ' | b'\t') => {}
                (false, _) => return Err(Stop::Error),
            }
            extension_bytes += 1;
            if extension_bytes > EXTENSIONS_LIMIT {
                return Err(Stop::Error);
            }
            r.pos += 1;
        }
        r.expect(b'\n')?;
        if size == 0 {
            break;
        }
        // chunk-data CRLF
        let available = (r.input.len() - r.pos) as u64;
        if available < size {
            data.extend_from_slice(&r.input[r.pos..]);
            r.pos = r.input.len();
            return Err(Stop::Incomplete);
        }
        let end = r.pos + size as usize;
        data.extend_from_slice(&r.input[r.pos..end]);
        r.pos = end;
        r.expect(b'\r')?;
        r.expect(b'\n')?;
    }
    // trailer-section CRLF
    let mut trailer_bytes = 0usize;
    loop {
        if r.peek()? == b'\r' {
            r.pos += 1;
            return r.expect(b'\n');
        }
        loop {
            match r.peek()? {
                b'\r' => break,
                b'\n' => return Err(Stop::Error),
                _ => {
                    trailer_bytes += 1;
                    if trailer_bytes > TRAILERS_LIMIT {
                        return Err(Stop::Error);
                    }
                    r.pos += 1;
                }
            }
        }
        r.pos += 1;
        r.expect(b'\n')?;
    }
}

/// Decodes the chunked body at the start of `input`.
pub fn decode(input: &[u8], max_body: u64) -> Verdict {
    let mut r = Reader { input, pos: 0 };
    let mut data = Vec::new();
    match read(&mut r, &mut data, max_body) {
        Ok(()) => Verdict::Done {
            data,
            consumed: r.pos,
        },
        Err(Stop::Incomplete) => Verdict::Incomplete { data },
        Err(Stop::Error) => Verdict::Error,
    }
}

/// The chunked encoding of `data` as one chunk (when non-empty) and the last chunk.
pub fn encode(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    if !data.is_empty() {
        out.extend_from_slice(format!("{:x}\r\n", data.len()).as_bytes());
        out.extend_from_slice(data);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

/// Decodes `input` in one call with pyrogate's `ChunkedDecoder` and with [`decode`], asserts
/// that they agree (error, incomplete with the same data and all input used, or done with the
/// same data after the same number of bytes), and returns `(data, consumed)` when done.
pub fn check_one_shot(input: &[u8], max_body: u64) -> Option<(Vec<u8>, usize)> {
    let mut decoder = pyrogate::h1::ChunkedDecoder::new(max_body);
    let mut out = bytes::BytesMut::new();
    let got = decoder.decode(input, Some(&mut out));
    let reference = decode(input, max_body);
    match (got, reference) {
        (Err(e), Verdict::Error) => {
            assert!(matches!(e.status(), 400 | 413));
            None
        }
        (Ok(p), Verdict::Incomplete { data }) if !p.done => {
            assert_eq!(p.consumed, input.len(), "an unfinished body uses all input");
            assert_eq!(&out[..], &data[..], "data of an unfinished body");
            assert_eq!(decoder.body_len(), out.len() as u64);
            None
        }
        (Ok(p), Verdict::Done { data, consumed }) if p.done => {
            assert_eq!(p.consumed, consumed, "end of the body");
            assert_eq!(&out[..], &data[..], "decoded body");
            assert_eq!(decoder.body_len(), out.len() as u64);
            Some((data, consumed))
        }
        (got, reference) => panic!(
            "chunked decoders disagree on {:?}: pyrogate {got:?} (data {:?}), reference {reference:?}",
            String::from_utf8_lossy(input),
            String::from_utf8_lossy(&out)
        ),
    }
}
