//! gRPC-Web over HTTP/1.1 for the unary Push method (github.com/grpc/grpc/blob/master/doc/
//! PROTOCOL-WEB.md, on top of PROTOCOL-HTTP2.md's length-prefixed messages).
//!
//! Owns: unwrapping the single request message from its 5-byte frame, and the response body
//! (an empty `PushResponse` data frame on success, then the trailer frame). Does not own:
//! decompressing a compressed frame (`grpc-encoding`, see [`super::gunzip_bounded`]) or
//! headers. Hot path for gRPC-Web pushes: no copy, the message is a slice of the body.

use std::fmt;

use bytes::Bytes;

use super::DecodeError;
use super::connect::Code;

/// Length prefix: 1 flag byte + 4-byte big-endian message length.
pub const FRAME_HEADER_BYTES: usize = 5;
/// Flag bit 0: the message is compressed with the request's `grpc-encoding`.
const FLAG_COMPRESSED: u8 = 0x01;
/// Flag bit 7: a trailer frame (responses only).
const FLAG_TRAILER: u8 = 0x80;

/// What is wrong with the gRPC-Web envelope of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameProblem {
    /// No frame at all: a unary call needs exactly one message.
    Empty,
    /// Fewer than 5 bytes of frame header.
    TruncatedHeader { len: usize },
    /// Flags other than "compressed" (a trailer frame, or reserved bits).
    InvalidFlags(u8),
    /// The frame claims more bytes than the body holds.
    TruncatedMessage { declared: u32, remaining: usize },
    /// Bytes after the one message.
    TrailingData { extra: usize },
}

impl fmt::Display for FrameProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameProblem::Empty => {
                f.write_str("empty body: a unary call needs exactly one message")
            }
            FrameProblem::TruncatedHeader { len } => {
                write!(f, "truncated frame header: {len} of 5 bytes")
            }
            FrameProblem::InvalidFlags(flags) => {
                write!(f, "invalid frame flags 0x{flags:02x}")
            }
            FrameProblem::TruncatedMessage {
                declared,
                remaining,
            } => write!(
                f,
                "truncated message: {declared} bytes declared, {remaining} remain"
            ),
            FrameProblem::TrailingData { extra } => write!(
                f,
                "{extra} bytes after the message: a unary call has exactly one message"
            ),
        }
    }
}

/// The one message of a unary gRPC-Web request, as a slice of `body`, and whether it is
/// compressed.
pub fn unwrap_request(body: &Bytes) -> Result<(Bytes, bool), DecodeError> {
    let fail = |p| Err(DecodeError::GrpcWeb(p));
    if body.is_empty() {
        return fail(FrameProblem::Empty);
    }
    let Some(&[flags, a, b, c, d]) = body.get(..FRAME_HEADER_BYTES) else {
        return fail(FrameProblem::TruncatedHeader { len: body.len() });
    };
    if flags & !FLAG_COMPRESSED != 0 {
        return fail(FrameProblem::InvalidFlags(flags));
    }
    let declared = u32::from_be_bytes([a, b, c, d]);
    let remaining = body.len() - FRAME_HEADER_BYTES;
    let len = usize::try_from(declared).unwrap_or(usize::MAX);
    if len > remaining {
        return fail(FrameProblem::TruncatedMessage {
            declared,
            remaining,
        });
    }
    if len < remaining {
        return fail(FrameProblem::TrailingData {
            extra: remaining - len,
        });
    }
    Ok((
        body.slice(FRAME_HEADER_BYTES..),
        flags & FLAG_COMPRESSED != 0,
    ))
}

/// The response body: on success (`None`) an empty data frame (the empty `PushResponse`) and a
/// trailer frame `grpc-status:0\r\n`; on error only the trailer frame, with `grpc-message`
/// percent-encoded when the message is not empty.
pub fn encode_response(code: Option<(Code, &str)>) -> Bytes {
    let mut trailer = String::from("grpc-status:");
    match code {
        None => trailer.push('0'),
        Some((code, message)) => {
            trailer.push_str(&code.grpc_status().to_string());
            if !message.is_empty() {
                trailer.push_str("\r\ngrpc-message:");
                percent_encode(&mut trailer, message);
            }
        }
    }
    trailer.push_str("\r\n");

    let mut out = Vec::with_capacity(2 * FRAME_HEADER_BYTES + trailer.len());
    if code.is_none() {
        out.extend_from_slice(&[0, 0, 0, 0, 0]);
    }
    out.push(FLAG_TRAILER);
    // A trailer is a few hundred bytes at most; saturate rather than wrap if not.
    let len = u32::try_from(trailer.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(trailer.as_bytes());
    Bytes::from(out)
}

/// gRPC's `grpc-message` encoding (PROTOCOL-HTTP2.md, "Responses"): bytes outside printable
/// ASCII 0x20–0x7E, and `%` itself, become `%XX` of the UTF-8 bytes, upper-case hex.
fn percent_encode(out: &mut String, message: &str) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in message.as_bytes() {
        if (0x20..=0x7e).contains(&b) && b != b'%' {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0xf)]));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unwraps_one_uncompressed_frame_without_copying() {
        let body = Bytes::from_static(b"\x00\x00\x00\x00\x03abc");
        let (message, compressed) = unwrap_request(&body).unwrap();
        assert_eq!(&message[..], b"abc");
        assert!(!compressed);
        assert_eq!(message.as_ptr(), body[5..].as_ptr());
    }

    #[test]
    fn unwraps_a_compressed_frame_and_an_empty_message() {
        let body = Bytes::from_static(b"\x01\x00\x00\x00\x02gz");
        assert_eq!(
            unwrap_request(&body).unwrap(),
            (Bytes::from_static(b"gz"), true)
        );
        let empty = Bytes::from_static(b"\x00\x00\x00\x00\x00");
        assert_eq!(unwrap_request(&empty).unwrap(), (Bytes::new(), false));
    }

    #[test]
    fn malformed_frames_are_invalid_argument_with_precise_messages() {
        let table: [(&[u8], &str); 6] = [
            (
                b"",
                "gRPC-Web request: empty body: a unary call needs exactly one message",
            ),
            (
                b"\x00\x00\x00",
                "gRPC-Web request: truncated frame header: 3 of 5 bytes",
            ),
            (
                b"\x80\x00\x00\x00\x00",
                "gRPC-Web request: invalid frame flags 0x80",
            ),
            (
                b"\x02\x00\x00\x00\x00",
                "gRPC-Web request: invalid frame flags 0x02",
            ),
            (
                b"\x00\xff\xff\xff\xffabc",
                "gRPC-Web request: truncated message: 4294967295 bytes declared, 3 remain",
            ),
            (
                b"\x00\x00\x00\x00\x01ab\x00\x00\x00\x00\x00",
                "gRPC-Web request: 6 bytes after the message: a unary call has exactly one message",
            ),
        ];
        for (body, message) in table {
            let err = unwrap_request(&Bytes::copy_from_slice(body)).unwrap_err();
            assert_eq!(err.to_string(), message);
            assert_eq!(err.code(), Code::InvalidArgument);
        }
    }

    #[test]
    fn success_response_is_empty_data_frame_then_status_zero_trailer() {
        assert_eq!(
            &encode_response(None)[..],
            b"\x00\x00\x00\x00\x00\x80\x00\x00\x00\x0fgrpc-status:0\r\n"
        );
    }

    #[test]
    fn error_response_is_trailer_only_with_percent_encoded_message() {
        let body = encode_response(Some((Code::Internal, "bad: 100% é\n")));
        let trailer = "grpc-status:13\r\ngrpc-message:bad: 100%25 %C3%A9%0A\r\n";
        let mut expected = vec![0x80];
        expected.extend_from_slice(&(trailer.len() as u32).to_be_bytes());
        expected.extend_from_slice(trailer.as_bytes());
        assert_eq!(&body[..], &expected[..]);

        assert_eq!(
            &encode_response(Some((Code::InvalidArgument, "")))[..],
            b"\x80\x00\x00\x00\x0fgrpc-status:3\r\n"
        );
    }
}
