//! Decoder for the chunked transfer coding (RFC 9112 §7.1), one state machine per body.
//!
//! Owns: chunk framing — sizes, extensions, chunk data, trailer section — and the body-size
//! limit, enforced as soon as a chunk size announces more than the limit allows (before its data
//! is read or stored). Does not own: buffering or I/O (the caller feeds whatever bytes it has and
//! keeps the unconsumed rest), or trailer fields (read, bounded and discarded, as RFC 9112 §7.1.2
//! permits). Hot path: chunk data is copied once into the caller's `BytesMut` with a single
//! `extend_from_slice` per run; only the framing bytes go through the per-byte state machine.
//!
//! Strictness follows RFC 9112 §7.1, relaxed only where hyper relaxes it (`hyper/src/proto/h1/
//! decode.rs`): spaces or tabs may follow the chunk size (the BWS the chunk-ext grammar allows
//! before `;`), and extension contents are skipped without validating their grammar. Every line
//! must end in CRLF; a bare LF is an error, because lenient LF handling in chunked framing is a
//! known request-smuggling vector when the front proxy disagrees.

use bytes::BytesMut;

/// Most chunk-extension bytes (including whitespace after a size) accepted across one body.
/// Pyrogate ignores extensions; the bound stops a client from streaming framing without data.
/// Same value as hyper's `CHUNKED_EXTENSIONS_LIMIT`.
pub const CHUNK_EXTENSIONS_LIMIT: usize = 16 * 1024;

/// Most trailer-section bytes (field lines without their CRLFs) accepted after the last chunk.
/// Trailers are discarded; the bound keeps a body from never ending. Same value as hyper's
/// `TRAILER_LIMIT`.
pub const TRAILERS_LIMIT: usize = 16 * 1024;

/// Where the decoder is inside the chunked body. Each variant names what the next byte must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ChunkedState {
    /// Expecting the first hex digit of a chunk size.
    SizeStart,
    /// Inside the hex digits; `size` is the value so far.
    Size { size: u64 },
    /// Spaces or tabs after the size, before `;` or CR.
    SizeWhitespace { size: u64 },
    /// Inside a chunk extension (after `;`), skipping to CR.
    Extension { size: u64 },
    /// Saw the CR ending the size line; expecting LF.
    SizeLf { size: u64 },
    /// Inside chunk data; `remaining` bytes still to come.
    Data { remaining: u64 },
    /// Chunk data done; expecting its CR.
    DataCr,
    /// Expecting the LF after chunk data.
    DataLf,
    /// After the last chunk or a trailer field line: a CR (end of body) or a trailer field.
    TrailerStart,
    /// Inside a trailer field line, skipping to CR.
    Trailer,
    /// Expecting the LF ending a trailer field line.
    TrailerLf,
    /// Expecting the LF of the final CRLF.
    EndLf,
    /// The whole body, trailers and final CRLF have been read.
    Done,
}

/// Incremental chunked-body decoder. Create one per body; feed it bytes as they arrive.
#[derive(Debug, Clone)]
pub struct ChunkedDecoder {
    state: ChunkedState,
    /// Largest decoded body accepted; a chunk size that would exceed it is rejected with 413.
    max_body_bytes: u64,
    /// Decoded bytes so far (appended or discarded).
    body_len: u64,
    /// Extension bytes so far, bounded by [`CHUNK_EXTENSIONS_LIMIT`].
    extension_bytes: usize,
    /// Trailer bytes so far, bounded by [`TRAILERS_LIMIT`].
    trailer_bytes: usize,
}

/// How far one [`ChunkedDecoder::decode`] call got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkedProgress {
    /// Input bytes used; the caller keeps `input[consumed..]` (it may be the next request).
    pub consumed: usize,
    /// The final chunk, trailers and closing CRLF have been read.
    pub done: bool,
}

/// Why a chunked body was rejected. The connection cannot be reused after any of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ChunkedError {
    #[error("chunked body exceeds the {limit}-byte limit")]
    BodyTooLarge { limit: u64 },
    #[error("invalid chunk size: expected a hexadecimal digit")]
    InvalidChunkSize,
    #[error("chunk size does not fit in 64 bits")]
    ChunkSizeOverflow,
    #[error("chunk extensions exceed {CHUNK_EXTENSIONS_LIMIT} bytes")]
    ExtensionsTooLong,
    #[error("chunked trailer section exceeds {TRAILERS_LIMIT} bytes")]
    TrailersTooLong,
    #[error("malformed chunked body: {0}")]
    Malformed(&'static str),
}

impl ChunkedError {
    /// The status to answer with before closing the connection.
    pub fn status(&self) -> u16 {
        match self {
            // RFC 9110 §15.5.14.
            Self::BodyTooLarge { .. } => 413,
            _ => 400,
        }
    }
}

impl ChunkedDecoder {
    /// A decoder that rejects bodies longer than `max_body_bytes` decoded bytes.
    pub fn new(max_body_bytes: u64) -> Self {
        Self {
            state: ChunkedState::SizeStart,
            max_body_bytes,
            body_len: 0,
            extension_bytes: 0,
            trailer_bytes: 0,
        }
    }

    /// Decoded body bytes so far.
    pub fn body_len(&self) -> u64 {
        self.body_len
    }

    /// Consumes as much of `input` as possible, appending chunk data to `out` (`None` discards
    /// it, still counting it against the limit). Never consumes past the end of the body, so
    /// bytes of a pipelined next request stay with the caller. After `done`, consumes nothing.
    ///
    /// # Errors
    /// [`ChunkedError`] on malformed framing or when the body would exceed the limit; the
    /// decoder must not be used afterwards.
    pub fn decode(
        &mut self,
        input: &[u8],
        mut out: Option<&mut BytesMut>,
    ) -> Result<ChunkedProgress, ChunkedError> {
        let mut pos = 0;
        while let Some(rest) = input.get(pos..).filter(|rest| !rest.is_empty()) {
            match self.state {
                ChunkedState::Done => break,
                ChunkedState::Data { remaining } => {
                    // `take` ≤ rest.len(), so the cast back to usize is lossless.
                    let take = remaining.min(rest.len() as u64);
                    let data = rest.get(..take as usize).unwrap_or_default();
                    if let Some(out) = out.as_deref_mut() {
                        out.extend_from_slice(data);
                    }
                    pos += data.len();
                    self.body_len += take;
                    self.state = match remaining - take {
                        0 => ChunkedState::DataCr,
                        remaining => ChunkedState::Data { remaining },
                    };
                }
                _ => {
                    self.state = self.step(rest[0])?;
                    pos += 1;
                }
            }
        }
        Ok(ChunkedProgress {
            consumed: pos,
            done: self.state == ChunkedState::Done,
        })
    }

    /// One framing byte: the next state, or why the byte is not allowed here.
    fn step(&mut self, byte: u8) -> Result<ChunkedState, ChunkedError> {
        use ChunkedState::*;
        Ok(match self.state {
            SizeStart => match hex_value(byte) {
                // RFC 9112 §7.1: chunk-size = 1*HEXDIG.
                Some(digit) => self.size_digit(0, digit)?,
                None => return Err(ChunkedError::InvalidChunkSize),
            },
            Size { size } => match byte {
                b' ' | b'\t' => self.extension_byte(SizeWhitespace { size })?,
                b';' => self.extension_byte(Extension { size })?,
                b'\r' => SizeLf { size },
                _ => match hex_value(byte) {
                    Some(digit) => self.size_digit(size, digit)?,
                    None => return Err(ChunkedError::InvalidChunkSize),
                },
            },
            SizeWhitespace { size } => match byte {
                b' ' | b'\t' => self.extension_byte(SizeWhitespace { size })?,
                b';' => self.extension_byte(Extension { size })?,
                b'\r' => SizeLf { size },
                _ => return Err(ChunkedError::InvalidChunkSize),
            },
            Extension { size } => match byte {
                b'\r' => SizeLf { size },
                b'\n' => return Err(ChunkedError::Malformed("bare LF in chunk extension")),
                _ => self.extension_byte(Extension { size })?,
            },
            SizeLf { size } => match byte {
                // RFC 9112 §7.1: last-chunk = 1*("0") [ chunk-ext ] CRLF, then the trailers.
                b'\n' if size == 0 => TrailerStart,
                b'\n' => Data { remaining: size },
                _ => return Err(ChunkedError::Malformed("chunk size line not ended by CRLF")),
            },
            DataCr => match byte {
                b'\r' => DataLf,
                _ => return Err(ChunkedError::Malformed("chunk data not followed by CRLF")),
            },
            DataLf => match byte {
                b'\n' => SizeStart,
                _ => return Err(ChunkedError::Malformed("chunk data not followed by CRLF")),
            },
            TrailerStart => match byte {
                b'\r' => EndLf,
                b'\n' => return Err(ChunkedError::Malformed("bare LF in trailer section")),
                _ => self.trailer_byte()?,
            },
            Trailer => match byte {
                b'\r' => TrailerLf,
                b'\n' => return Err(ChunkedError::Malformed("bare LF in trailer section")),
                _ => self.trailer_byte()?,
            },
            TrailerLf => match byte {
                b'\n' => TrailerStart,
                _ => {
                    return Err(ChunkedError::Malformed(
                        "trailer field line not ended by CRLF",
                    ));
                }
            },
            EndLf => match byte {
                b'\n' => Done,
                _ => return Err(ChunkedError::Malformed("chunked body not ended by CRLF")),
            },
            // `decode` handles data runs and never steps past the end; staying put is harmless.
            Data { .. } | Done => self.state,
        })
    }

    /// Appends one hex digit to the chunk size. The body limit is checked here, per digit, so an
    /// oversized chunk is refused before its size line ends and before any of its data is read.
    fn size_digit(&self, size: u64, digit: u8) -> Result<ChunkedState, ChunkedError> {
        let size = size
            .checked_mul(16)
            .and_then(|s| s.checked_add(u64::from(digit)))
            .ok_or(ChunkedError::ChunkSizeOverflow)?;
        match self.body_len.checked_add(size) {
            Some(total) if total <= self.max_body_bytes => Ok(ChunkedState::Size { size }),
            _ => Err(ChunkedError::BodyTooLarge {
                limit: self.max_body_bytes,
            }),
        }
    }

    fn extension_byte(&mut self, next: ChunkedState) -> Result<ChunkedState, ChunkedError> {
        self.extension_bytes += 1;
        if self.extension_bytes > CHUNK_EXTENSIONS_LIMIT {
            return Err(ChunkedError::ExtensionsTooLong);
        }
        Ok(next)
    }

    fn trailer_byte(&mut self) -> Result<ChunkedState, ChunkedError> {
        self.trailer_bytes += 1;
        if self.trailer_bytes > TRAILERS_LIMIT {
            return Err(ChunkedError::TrailersTooLong);
        }
        Ok(ChunkedState::Trailer)
    }
}

fn hex_value(byte: u8) -> Option<u8> {
    match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'a'..=b'f' => Some(byte - b'a' + 10),
        b'A'..=b'F' => Some(byte - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: u64 = 1024;

    /// Decodes `input` in one call: (data, progress) or the error.
    fn decode_all(input: &[u8]) -> Result<(Vec<u8>, ChunkedProgress), ChunkedError> {
        let mut decoder = ChunkedDecoder::new(LIMIT);
        let mut out = BytesMut::new();
        let progress = decoder.decode(input, Some(&mut out))?;
        assert_eq!(decoder.body_len(), out.len() as u64);
        Ok((out.to_vec(), progress))
    }

    /// Decodes `input` in pieces of `split` bytes, carrying unconsumed bytes over like a reader.
    fn decode_in_pieces(
        input: &[u8],
        split: usize,
    ) -> Result<(Vec<u8>, usize, bool), ChunkedError> {
        let mut decoder = ChunkedDecoder::new(LIMIT);
        let mut out = BytesMut::new();
        let mut consumed = 0;
        let mut done = false;
        for piece in input.chunks(split) {
            let progress = decoder.decode(piece, Some(&mut out))?;
            consumed += progress.consumed;
            done = progress.done;
            if done {
                break;
            }
            assert_eq!(
                progress.consumed,
                piece.len(),
                "a partial body consumes everything"
            );
        }
        Ok((out.to_vec(), consumed, done))
    }

    fn valid_cases() -> Vec<(&'static [u8], &'static [u8])> {
        vec![
            (b"0\r\n\r\n", b""),
            (b"5\r\nhello\r\n0\r\n\r\n", b"hello"),
            (b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", b"hello world"),
            (b"A\r\n0123456789\r\n0\r\n\r\n", b"0123456789"),
            (b"a\r\n0123456789\r\n000\r\n\r\n", b"0123456789"),
            (b"0005\r\nhello\r\n0\r\n\r\n", b"hello"),
            // Extensions are skipped (RFC 9112 §7.1.1), with BWS before `;` as hyper allows.
            (b"5;name=value\r\nhello\r\n0;last\r\n\r\n", b"hello"),
            (b"5 ;a=\"quoted;\"\r\nhello\r\n0\r\n\r\n", b"hello"),
            (b"5\t \r\nhello\r\n0\r\n\r\n", b"hello"),
            // Trailers are read and discarded (RFC 9112 §7.1.2).
            (
                b"5\r\nhello\r\n0\r\nExpires: never\r\nX-Sum: 1\r\n\r\n",
                b"hello",
            ),
            // Chunk data is opaque, CRLFs inside it included.
            (b"4\r\n\r\n\r\n\r\n0\r\n\r\n", b"\r\n\r\n"),
        ]
    }

    #[test]
    fn valid_bodies_decode_to_their_data() {
        for (input, data) in valid_cases() {
            let shown = String::from_utf8_lossy(input);
            let (out, progress) = decode_all(input).unwrap_or_else(|e| panic!("{shown:?}: {e}"));
            assert_eq!(out, data, "{shown:?}");
            assert_eq!(
                progress,
                ChunkedProgress {
                    consumed: input.len(),
                    done: true
                },
                "{shown:?}"
            );
        }
    }

    #[test]
    fn every_split_of_a_valid_body_decodes_the_same() {
        for (input, data) in valid_cases() {
            for split in 1..=input.len() {
                let got = decode_in_pieces(input, split).unwrap();
                assert_eq!(got, (data.to_vec(), input.len(), true), "split {split}");
            }
        }
    }

    #[test]
    fn bytes_after_the_body_are_left_for_the_next_request() {
        let input = b"5\r\nhello\r\n0\r\n\r\nGET / HTTP/1.1\r\n";
        let (out, progress) = decode_all(input).unwrap();
        assert_eq!(out, b"hello");
        assert_eq!(
            progress,
            ChunkedProgress {
                consumed: 15,
                done: true
            }
        );
        assert_eq!(&input[progress.consumed..], b"GET / HTTP/1.1\r\n");
    }

    #[test]
    fn a_finished_decoder_consumes_nothing_more() {
        let mut decoder = ChunkedDecoder::new(LIMIT);
        assert!(decoder.decode(b"0\r\n\r\n", None).unwrap().done);
        assert_eq!(
            decoder.decode(b"5\r\nhello", None),
            Ok(ChunkedProgress {
                consumed: 0,
                done: true
            })
        );
    }

    #[test]
    fn partial_input_is_consumed_and_not_done() {
        let mut decoder = ChunkedDecoder::new(LIMIT);
        let mut out = BytesMut::new();
        assert_eq!(
            decoder.decode(b"5\r\nhel", Some(&mut out)),
            Ok(ChunkedProgress {
                consumed: 6,
                done: false
            })
        );
        assert_eq!(&out[..], b"hel");
        assert_eq!(decoder.body_len(), 3);
        assert_eq!(
            decoder.decode(b"", Some(&mut out)),
            Ok(ChunkedProgress {
                consumed: 0,
                done: false
            })
        );
    }

    #[test]
    fn discarded_data_still_counts() {
        let mut decoder = ChunkedDecoder::new(LIMIT);
        let progress = decoder.decode(b"5\r\nhello\r\n0\r\n\r\n", None).unwrap();
        assert!(progress.done);
        assert_eq!(decoder.body_len(), 5);
    }

    #[test]
    fn malformed_framing_is_rejected_with_a_precise_error() {
        use ChunkedError::*;
        let cases: &[(&[u8], ChunkedError)] = &[
            (b"\r\n", InvalidChunkSize),
            (b"x\r\n", InvalidChunkSize),
            (b"-1\r\n", InvalidChunkSize),
            (b";ext\r\n", InvalidChunkSize),
            (b" 5\r\n", InvalidChunkSize),
            (b"5x\r\n", InvalidChunkSize),
            (b"5 5\r\n", InvalidChunkSize),
            (b"0x5\r\n", InvalidChunkSize),
            (b"5\nhello\r\n", InvalidChunkSize),
            (b"5\rhello", Malformed("chunk size line not ended by CRLF")),
            (b"5;a\nhello", Malformed("bare LF in chunk extension")),
            (b"5\r\nhelloX", Malformed("chunk data not followed by CRLF")),
            // Strict: a bare LF after chunk data is rejected (hyper rejects it too).
            (
                b"5\r\nhello\n0\r\n\r\n",
                Malformed("chunk data not followed by CRLF"),
            ),
            (
                b"5\r\nhello\rX",
                Malformed("chunk data not followed by CRLF"),
            ),
            (b"0\r\n\n", Malformed("bare LF in trailer section")),
            (b"0\r\nA: b\n", Malformed("bare LF in trailer section")),
            (
                b"0\r\nA: b\rX",
                Malformed("trailer field line not ended by CRLF"),
            ),
            (b"0\r\n\rX", Malformed("chunked body not ended by CRLF")),
        ];
        for &(input, error) in cases {
            let shown = String::from_utf8_lossy(input);
            assert_eq!(decode_all(input), Err(error), "{shown:?}");
            assert_eq!(error.status(), 400);
            // The verdict does not depend on how the bytes arrive.
            assert_eq!(
                decode_in_pieces(input, 1),
                Err(error),
                "{shown:?} byte by byte"
            );
        }
    }

    #[test]
    fn chunk_size_overflow_is_an_error() {
        let mut decoder = ChunkedDecoder::new(u64::MAX);
        assert_eq!(
            decoder.decode(b"ffffffffffffffff", None),
            Ok(ChunkedProgress {
                consumed: 16,
                done: false
            })
        );
        let mut decoder = ChunkedDecoder::new(u64::MAX);
        assert_eq!(
            decoder.decode(b"10000000000000000\r\n", None),
            Err(ChunkedError::ChunkSizeOverflow)
        );
    }

    #[test]
    fn a_body_exactly_at_the_limit_is_accepted() {
        let mut decoder = ChunkedDecoder::new(10);
        let mut out = BytesMut::new();
        let progress = decoder
            .decode(b"5\r\nhello\r\n5\r\nworld\r\n0\r\n\r\n", Some(&mut out))
            .unwrap();
        assert!(progress.done);
        assert_eq!(&out[..], b"helloworld");
    }

    #[test]
    fn a_chunk_announcing_more_than_the_limit_is_413_before_its_data_is_stored() {
        let mut decoder = ChunkedDecoder::new(10);
        let mut out = BytesMut::new();
        let err = decoder.decode(b"5\r\nhello\r\n6\r\nworld!\r\n0\r\n\r\n", Some(&mut out));
        assert_eq!(err, Err(ChunkedError::BodyTooLarge { limit: 10 }));
        assert_eq!(err.unwrap_err().status(), 413);
        assert_eq!(
            &out[..],
            b"hello",
            "nothing of the oversized chunk was appended"
        );
        assert_eq!(decoder.body_len(), 5);
        // Refused on the size digits, before the size line even ends.
        let mut decoder = ChunkedDecoder::new(10);
        assert_eq!(
            decoder.decode(b"ff", None),
            Err(ChunkedError::BodyTooLarge { limit: 10 })
        );
    }

    #[test]
    fn extensions_are_bounded_across_the_body() {
        let mut body = Vec::new();
        let ext = ";".to_string() + &"e".repeat(CHUNK_EXTENSIONS_LIMIT / 2 - 1);
        for _ in 0..2 {
            body.extend_from_slice(format!("1{ext}\r\nx\r\n").as_bytes());
        }
        let mut decoder = ChunkedDecoder::new(LIMIT);
        assert_eq!(decoder.decode(&body, None).map(|p| p.done), Ok(false));
        assert_eq!(
            decoder.decode(b"0;e\r\n", None),
            Err(ChunkedError::ExtensionsTooLong)
        );

        let spaces = format!("1{}\r\n", " ".repeat(CHUNK_EXTENSIONS_LIMIT + 1));
        assert_eq!(
            decode_all(spaces.as_bytes()),
            Err(ChunkedError::ExtensionsTooLong)
        );
    }

    #[test]
    fn trailers_are_bounded() {
        let at_limit = format!("0\r\n{}\r\n\r\n", "t".repeat(TRAILERS_LIMIT));
        assert!(decode_all(at_limit.as_bytes()).unwrap().1.done);
        let over = format!("0\r\n{}\r\n\r\n", "t".repeat(TRAILERS_LIMIT + 1));
        assert_eq!(
            decode_all(over.as_bytes()),
            Err(ChunkedError::TrailersTooLong)
        );
    }

    #[test]
    fn errors_display_precise_messages() {
        assert_eq!(
            ChunkedError::BodyTooLarge { limit: 5 }.to_string(),
            "chunked body exceeds the 5-byte limit"
        );
        assert_eq!(
            ChunkedError::ExtensionsTooLong.to_string(),
            "chunk extensions exceed 16384 bytes"
        );
        assert_eq!(
            ChunkedError::Malformed("chunk data not followed by CRLF").to_string(),
            "malformed chunked body: chunk data not followed by CRLF"
        );
    }
}
