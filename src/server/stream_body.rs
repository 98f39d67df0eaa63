//! A request body read piece by piece as it arrives, for handlers that forward it without
//! holding it whole (debug-info uploads).
//!
//! Owns: taking the body bytes already buffered after the head, then reading the rest from the
//! socket into the caller's buffer (Content-Length: straight into its spare room, never past
//! the body, so a pipelined next request stays unread; chunked: decoded through
//! [`h1::ChunkedDecoder`], the framing dropped), bounded by a body-size limit and a deadline
//! per read. Does not own: the window size or budget (the caller passes a buffer whose spare
//! capacity is the window), or what happens to the bytes. Hot path: per piece.

use std::time::Instant;

use bytes::{Buf, BytesMut};

use crate::h1::{self, BodyFraming};
use crate::tls::stream::Stream;

/// Read step for the connection buffer while a chunked body is decoded.
const CHUNKED_READ_BYTES: usize = 16 * 1024;

/// Why the body could not be read to its end.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    #[error("the client sent nothing for too long")]
    TimedOut,
    #[error("the client closed the connection inside the body")]
    Closed,
    #[error("request body is larger than {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("{0}")]
    Chunked(h1::ChunkedError),
}

impl BodyError {
    /// The status a client still listening gets.
    pub fn status(&self) -> u16 {
        match self {
            BodyError::TimedOut => 408,
            BodyError::Closed => 400,
            BodyError::TooLarge { .. } => 413,
            BodyError::Chunked(e) => e.status(),
        }
    }
}

enum Left {
    Length(u64),
    Chunked(h1::ChunkedDecoder),
}

/// A body being read from one connection.
pub struct StreamBody<'a> {
    stream: &'a mut Stream,
    /// The connection's read buffer: bytes after the head, maybe past the body.
    buf: &'a mut BytesMut,
    left: Left,
    done: bool,
    read: u64,
}

impl std::fmt::Debug for StreamBody<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamBody")
            .field("done", &self.done)
            .field("read", &self.read)
            .finish()
    }
}

impl<'a> StreamBody<'a> {
    /// The body of a request framed as `framing`, refused up front when its announced length
    /// is over `limit`.
    pub fn new(
        stream: &'a mut Stream,
        buf: &'a mut BytesMut,
        framing: BodyFraming,
        limit: u64,
    ) -> Result<Self, BodyError> {
        let left = match framing {
            BodyFraming::Empty => Left::Length(0),
            BodyFraming::Length(n) if n > limit => return Err(BodyError::TooLarge { limit }),
            BodyFraming::Length(n) => Left::Length(n),
            BodyFraming::Chunked => Left::Chunked(h1::ChunkedDecoder::new(limit)),
        };
        let done = matches!(left, Left::Length(0));
        Ok(StreamBody {
            stream,
            buf,
            left,
            done,
            read: 0,
        })
    }

    /// The announced length, `None` when chunked.
    pub fn length(&self) -> Option<u64> {
        match &self.left {
            Left::Length(n) => Some(*n + self.read),
            Left::Chunked(_) => None,
        }
    }

    /// Whether the whole body has been read.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Body bytes read so far.
    pub fn read_bytes(&self) -> u64 {
        self.read
    }

    /// Appends the next body bytes to `dst`, at most its spare capacity (which must be non-zero
    /// unless the body is done), waiting for the client until `deadline`. Returns `dst` with
    /// at least one more byte, or with the body done.
    pub async fn next_into(
        &mut self,
        mut dst: BytesMut,
        deadline: Instant,
    ) -> (Result<(), BodyError>, BytesMut) {
        loop {
            if self.done {
                return (Ok(()), dst);
            }
            let room = dst.capacity() - dst.len();
            match &mut self.left {
                Left::Length(left) => {
                    let want = usize::try_from(*left).unwrap_or(usize::MAX).min(room);
                    if !self.buf.is_empty() {
                        let take = want.min(self.buf.len());
                        dst.extend_from_slice(&self.buf[..take]);
                        self.buf.advance(take);
                        self.count(take);
                        return (Ok(()), dst);
                    }
                    let now = Instant::now();
                    if now >= deadline {
                        return (Err(BodyError::TimedOut), dst);
                    }
                    let before = dst.len();
                    match monoio::time::timeout(deadline - now, self.stream.read_room(dst, want))
                        .await
                    {
                        Ok((Ok(0), d)) => return (Err(BodyError::Closed), d),
                        Ok((Ok(_), d)) => {
                            let n = d.len() - before;
                            self.count(n);
                            return (Ok(()), d);
                        }
                        Ok((Err(_), d)) => return (Err(BodyError::Closed), d),
                        // The cancelled read took the buffer with it.
                        Err(_) => return (Err(BodyError::TimedOut), BytesMut::new()),
                    }
                }
                Left::Chunked(decoder) => {
                    if !self.buf.is_empty() {
                        // Framing only shrinks, so `room` input bytes decode to at most `room`.
                        let input = self.buf.len().min(room);
                        let before = dst.len();
                        let progress = match decoder.decode(&self.buf[..input], Some(&mut dst)) {
                            Ok(p) => p,
                            Err(h1::ChunkedError::BodyTooLarge { limit }) => {
                                return (Err(BodyError::TooLarge { limit }), dst);
                            }
                            Err(e) => return (Err(BodyError::Chunked(e)), dst),
                        };
                        self.buf.advance(progress.consumed);
                        let produced = dst.len() - before;
                        self.read += produced as u64;
                        if progress.done {
                            self.done = true;
                        }
                        if produced > 0 || self.done {
                            return (Ok(()), dst);
                        }
                        // Framing bytes only: go on with the rest, or read more. The decoder
                        // takes framing byte by byte, so no progress means no input.
                        if progress.consumed > 0 && !self.buf.is_empty() {
                            continue;
                        }
                    }
                    let now = Instant::now();
                    if now >= deadline {
                        return (Err(BodyError::TimedOut), dst);
                    }
                    let b = std::mem::take(self.buf);
                    match monoio::time::timeout(
                        deadline - now,
                        self.stream.read_more(b, CHUNKED_READ_BYTES),
                    )
                    .await
                    {
                        Ok((Ok(0), b)) | Ok((Err(_), b)) => {
                            *self.buf = b;
                            return (Err(BodyError::Closed), dst);
                        }
                        Ok((Ok(_), b)) => *self.buf = b,
                        Err(_) => return (Err(BodyError::TimedOut), dst),
                    }
                }
            }
        }
    }

    fn count(&mut self, n: usize) {
        self.read += n as u64;
        if let Left::Length(left) = &mut self.left {
            *left -= n as u64;
            if *left == 0 {
                self.done = true;
            }
        }
    }
}
