//! One HTTP/1.1 exchange with an upstream over an open connection.
//!
//! Owns: writing a request head and the payload's `Bytes` (no copy: each handle goes to the
//! kernel as is), then reading the response: head via `h1::response`, body framed by
//! Content-Length, chunked coding or connection close, keeping at most
//! [`MAX_ERROR_BODY_BYTES`] of it for logs. Decides whether the connection may be reused
//! (only after the response was fully read). Does not own: timeouts, retries, pooling.
//! Hot path: yes.

use std::time::{Duration, SystemTime};

use crate::h1;
use crate::tls::stream::Stream;
use crate::upload::{DeliveryError, Payload};
use bytes::{Buf, Bytes, BytesMut};

/// Upstream error bodies kept for logs, as Alloy keeps (2 KiB).
pub const MAX_ERROR_BODY_BYTES: usize = 2048;
/// Largest upstream response head accepted.
pub const MAX_RESPONSE_HEAD_BYTES: usize = 64 * 1024;
/// Most header fields in an upstream response head.
pub const MAX_RESPONSE_HEADERS: usize = 128;
/// Read buffer size for upstream responses.
const READ_CHUNK_BYTES: usize = 8 * 1024;

/// Why an exchange produced no usable response.
#[derive(Debug, thiserror::Error)]
pub enum ExchangeError {
    #[error("upstream i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("upstream closed the connection before a complete response")]
    Closed { response_started: bool },
    /// An i/o error once part of the response had arrived: the request was processed, so this
    /// is an attempt even on a reused connection.
    #[error("upstream i/o during the response: {0}")]
    IoInResponse(std::io::Error),
    #[error("malformed upstream response: {0}")]
    Malformed(String),
}

impl ExchangeError {
    /// The delivery error this is on a reused keep-alive connection: before any response
    /// byte, an i/o error or a close means the upstream closed the idle connection first
    /// (RFC 9112 §9.3.1 allows it), which is retried at once on a fresh connection.
    pub fn on_reused_connection(&self) -> DeliveryError {
        match self {
            ExchangeError::Io(_)
            | ExchangeError::Closed {
                response_started: false,
            } => DeliveryError::StaleConnection,
            _ => DeliveryError::Transport,
        }
    }
}

/// The parts of an upstream response pyrogate acts on.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub retry_after: Option<Duration>,
    /// The first [`MAX_ERROR_BODY_BYTES`] of the body.
    pub body_excerpt: Bytes,
    /// `Location` of a 3xx response (for `follow_redirects`).
    pub location: Option<String>,
}

/// An open upstream connection with its read buffer.
#[derive(Debug)]
pub struct Connection {
    pub stream: Stream,
    rbuf: BytesMut,
}

#[cfg(test)]
thread_local! {
    /// Addresses of payload pieces handed to `write_all`, so tests can prove no copy was made.
    pub static WRITTEN_PAYLOAD_PTRS: std::cell::RefCell<Vec<usize>> = const { std::cell::RefCell::new(Vec::new()) };
}

impl Connection {
    pub fn new(stream: Stream) -> Self {
        Connection {
            stream,
            rbuf: BytesMut::with_capacity(READ_CHUNK_BYTES),
        }
    }

    /// Writes `head` and `payload`, reads the response. `Ok((response, reusable))`.
    pub async fn exchange(
        &mut self,
        head: Bytes,
        payload: &Payload,
    ) -> Result<(Response, bool), ExchangeError> {
        let mut pieces = Vec::with_capacity(payload.parts().len() + 1);
        pieces.push(head);
        for part in payload.parts() {
            #[cfg(test)]
            WRITTEN_PAYLOAD_PTRS.with(|p| p.borrow_mut().push(part.as_ptr() as usize));
            pieces.push(part.clone());
        }
        self.stream.write_pieces(pieces).await?;
        self.read_response().await
    }

    async fn fill(&mut self, response_started: bool) -> Result<(), ExchangeError> {
        let buf = std::mem::take(&mut self.rbuf);
        let (res, buf) = self.stream.read_more(buf, READ_CHUNK_BYTES).await;
        self.rbuf = buf;
        match res {
            Ok(0) => Err(ExchangeError::Closed { response_started }),
            Ok(_) => Ok(()),
            Err(e) if response_started => Err(ExchangeError::IoInResponse(e)),
            Err(e) => Err(ExchangeError::Io(e)),
        }
    }

    async fn read_response(&mut self) -> Result<(Response, bool), ExchangeError> {
        let limits = h1::Limits {
            max_head_bytes: MAX_RESPONSE_HEAD_BYTES,
            max_headers: MAX_RESPONSE_HEADERS,
        };
        let head = loop {
            match h1::parse_response(&self.rbuf, &limits, false)
                .map_err(|e| ExchangeError::Malformed(e.to_string()))?
            {
                Some(head) if (100..200).contains(&head.status) => {
                    // RFC 9110 §15.2: interim responses precede the final one.
                    self.rbuf.advance(head.head_len);
                }
                Some(head) => break head,
                None => {
                    let started = !self.rbuf.is_empty();
                    self.fill(started).await?;
                }
            }
        };
        let retry_after = head.retry_after.as_ref().and_then(|ra| match ra {
            h1::RetryAfter::Seconds(s) => Some(Duration::from_secs(*s)),
            h1::RetryAfter::Date(t) => t.duration_since(SystemTime::now()).ok(),
        });
        let location = if (300..400).contains(&head.status) {
            super::redirect::location_of(&self.rbuf[..head.head_len])
        } else {
            None
        };
        self.rbuf.advance(head.head_len);
        let mut excerpt = BytesMut::new();
        let mut reusable = head.keep_alive;
        match head.body {
            h1::ResponseBody::Empty => {}
            h1::ResponseBody::Length(mut left) => loop {
                let take = (self.rbuf.len() as u64).min(left) as usize;
                let keep = take.min(MAX_ERROR_BODY_BYTES - excerpt.len());
                excerpt.extend_from_slice(&self.rbuf[..keep]);
                self.rbuf.advance(take);
                left -= take as u64;
                if left == 0 {
                    break;
                }
                self.fill(true).await?;
            },
            h1::ResponseBody::Chunked => {
                let mut dec = h1::ChunkedDecoder::new(u64::MAX);
                loop {
                    let room = MAX_ERROR_BODY_BYTES.saturating_sub(excerpt.len());
                    let before = excerpt.len();
                    let progress = dec
                        .decode(&self.rbuf, if room > 0 { Some(&mut excerpt) } else { None })
                        .map_err(|e| ExchangeError::Malformed(e.to_string()))?;
                    excerpt.truncate(before + room.min(excerpt.len() - before));
                    self.rbuf.advance(progress.consumed);
                    if progress.done {
                        break;
                    }
                    self.fill(true).await?;
                }
            }
            h1::ResponseBody::UntilClose => {
                reusable = false;
                loop {
                    let keep = self.rbuf.len().min(MAX_ERROR_BODY_BYTES - excerpt.len());
                    excerpt.extend_from_slice(&self.rbuf[..keep]);
                    self.rbuf.clear();
                    match self.fill(true).await {
                        Ok(()) => {}
                        Err(ExchangeError::Closed { .. }) => break,
                        Err(e) => return Err(e),
                    }
                }
            }
        }
        // Bytes after the response (an upstream must not send them) make reuse unsafe.
        if !self.rbuf.is_empty() {
            reusable = false;
        }
        Ok((
            Response {
                status: head.status,
                retry_after,
                body_excerpt: excerpt.freeze(),
                location,
            },
            reusable,
        ))
    }
}
