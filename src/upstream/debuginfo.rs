//! The upstream end of the debug-info proxy: one request to one destination on a connection
//! of its own.
//!
//! Owns: opening a connection to a destination with the endpoint's transport (address
//! rotation, TLS, proxy: [`super::sender::connect`]), the request head (the endpoint's
//! `headers`, `http_headers`, `User-Agent` and current `Authorization`, then the caller's
//! headers), a Connect unary exchange whose answer is relayed ([`unary`]), and an upload
//! written piece by piece as the client's body arrives ([`Upload`]: `Content-Length` when the
//! client announced one, else chunked), whose response is read once the body is out. The
//! connection is closed after the call: debug-info calls are rare and large, and never take or
//! give a connection of the upload sender pool. Does not own: deadlines (the caller wraps each
//! step), choosing destinations, or what the answer means (`server::debuginfo`).

use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};

use super::{Destination, Target};
use crate::h1;
use crate::tls::stream::Stream;

/// Largest upstream response body kept (a unary answer is a few bytes; an error message a
/// few hundred).
pub const MAX_RESPONSE_BYTES: usize = 64 * 1024;
/// Read buffer step for responses.
const READ_CHUNK_BYTES: usize = 8 * 1024;

/// Why a call produced no response.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("the endpoint is a capture directory, not a Pyroscope server")]
    NotHttp,
    #[error("credentials unavailable: {0}")]
    Auth(String),
    #[error("connection closed before a complete response")]
    Closed,
    #[error("malformed response: {0}")]
    Malformed(String),
    #[error("response body larger than {MAX_RESPONSE_BYTES} bytes")]
    TooLarge,
}

/// An upstream answer: status, the first `Content-Type`, and the body.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub content_type: Option<Bytes>,
    pub body: Bytes,
}

/// How an upload's body is framed upstream.
pub use crate::h1::RequestFraming as Framing;

/// The escaped URL path of a destination (`""` for capture destinations).
pub fn escaped_base(dest: &Destination) -> String {
    let mut out = String::new();
    crate::labels::path_escape(dest.base_path(), &mut out);
    out
}

/// The request head: the endpoint's static headers (`headers`, `http_headers`,
/// `User-Agent`), `Authorization`, then `extra`.
fn head(
    dest: &Destination,
    path: &str,
    extra: &[(&[u8], &[u8])],
    framing: Framing,
) -> Result<BytesMut, CallError> {
    let Target::Http(http) = &dest.target else {
        return Err(CallError::NotHttp);
    };
    let auth = dest
        .auth
        .current()
        .map_err(|e| CallError::Auth(e.to_string()))?;
    let mut headers: Vec<(&[u8], &[u8])> =
        Vec::with_capacity(dest.static_headers.len() + extra.len() + 1);
    for (n, v) in &dest.static_headers {
        headers.push((n, v));
    }
    if let Some(a) = &auth {
        headers.push((b"Authorization", a));
    }
    headers.extend_from_slice(extra);
    let mut out = BytesMut::with_capacity(256);
    h1::encode_request_head(
        &mut out,
        "POST",
        path.as_bytes(),
        None,
        &http.host_header,
        &headers,
        framing,
    );
    Ok(out)
}

async fn open(dest: &Destination) -> Result<Stream, CallError> {
    let Target::Http(http) = &dest.target else {
        return Err(CallError::NotHttp);
    };
    match super::sender::connect(dest, http).await {
        Ok(c) => Ok(c.stream),
        Err(e) => Err(CallError::Io(std::io::Error::other(e.to_string()))),
    }
}

/// One Connect unary call: `body` (already encoded by the client) to `path` with `extra`
/// headers; the answer as the upstream gave it.
pub async fn unary(
    dest: &Destination,
    path: &str,
    extra: &[(&[u8], &[u8])],
    body: Bytes,
) -> Result<Answer, CallError> {
    let head = head(dest, path, extra, Framing::Length(body.len() as u64))?;
    let mut stream = open(dest).await?;
    stream.write_pieces(vec![head.freeze(), body]).await?;
    read_answer(&mut stream, BytesMut::with_capacity(READ_CHUNK_BYTES)).await
}

/// An upload being written upstream.
#[derive(Debug)]
pub struct Upload {
    stream: Stream,
    framing: Framing,
    written: u64,
}

impl Upload {
    /// Connects and writes the request head.
    pub async fn start(
        dest: &Destination,
        path: &str,
        extra: &[(&[u8], &[u8])],
        framing: Framing,
    ) -> Result<Upload, CallError> {
        let head = head(dest, path, extra, framing)?;
        let mut stream = open(dest).await?;
        let (r, _) = stream.write_all(head.freeze()).await;
        r?;
        Ok(Upload {
            stream,
            framing,
            written: 0,
        })
    }

    /// Writes the next piece of the body (the very same memory, framed when chunked).
    pub async fn send(&mut self, piece: Bytes) -> std::io::Result<()> {
        if piece.is_empty() {
            return Ok(());
        }
        self.written += piece.len() as u64;
        match self.framing {
            Framing::Length(_) => {
                let (r, _) = self.stream.write_all(piece).await;
                r.map(|_| ())
            }
            Framing::Chunked => {
                let size = Bytes::from(format!("{:x}\r\n", piece.len()));
                self.stream
                    .write_pieces(vec![size, piece, Bytes::from_static(b"\r\n")])
                    .await
                    .map(|_| ())
            }
        }
    }

    /// Body bytes written so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Ends the body (the last chunk when chunked) and reads the answer.
    pub async fn finish(mut self) -> Result<Answer, CallError> {
        if self.framing == Framing::Chunked {
            let (r, _) = self.stream.write_all(&b"0\r\n\r\n"[..]).await;
            r?;
        }
        read_answer(&mut self.stream, BytesMut::with_capacity(READ_CHUNK_BYTES)).await
    }

    /// The answer an upstream gave before the body was complete (it refused early and the
    /// write failed), read within `within`; `None` when there is none.
    pub async fn early_answer(mut self, within: Duration) -> Option<Answer> {
        let read = read_answer(&mut self.stream, BytesMut::with_capacity(READ_CHUNK_BYTES));
        monoio::time::timeout(within, read).await.ok()?.ok()
    }
}

async fn fill(stream: &mut Stream, buf: &mut BytesMut) -> Result<(), CallError> {
    let b = std::mem::take(buf);
    let (r, b) = stream.read_more(b, READ_CHUNK_BYTES).await;
    *buf = b;
    match r? {
        0 => Err(CallError::Closed),
        _ => Ok(()),
    }
}

/// Reads one response (interim ones skipped), keeping at most [`MAX_RESPONSE_BYTES`] of body.
async fn read_answer(stream: &mut Stream, mut buf: BytesMut) -> Result<Answer, CallError> {
    let limits = h1::Limits {
        max_head_bytes: super::client::MAX_RESPONSE_HEAD_BYTES,
        max_headers: super::client::MAX_RESPONSE_HEADERS,
    };
    let head = loop {
        match h1::parse_response(&buf, &limits, false)
            .map_err(|e| CallError::Malformed(e.to_string()))?
        {
            Some(h) if (100..200).contains(&h.status) => buf.advance(h.head_len),
            Some(h) => break h,
            None => fill(stream, &mut buf).await?,
        }
    };
    let content_type = head
        .content_type
        .clone()
        .map(|r| Bytes::copy_from_slice(&buf[r]));
    buf.advance(head.head_len);
    let body = match head.body {
        h1::ResponseBody::Empty => Bytes::new(),
        h1::ResponseBody::Length(n) => {
            let n = usize::try_from(n)
                .ok()
                .filter(|n| *n <= MAX_RESPONSE_BYTES)
                .ok_or(CallError::TooLarge)?;
            while buf.len() < n {
                fill(stream, &mut buf).await?;
            }
            buf.split_to(n).freeze()
        }
        h1::ResponseBody::Chunked => {
            let mut dec = h1::ChunkedDecoder::new(MAX_RESPONSE_BYTES as u64);
            let mut out = BytesMut::new();
            loop {
                let p = dec.decode(&buf, Some(&mut out)).map_err(|e| match e {
                    h1::ChunkedError::BodyTooLarge { .. } => CallError::TooLarge,
                    e => CallError::Malformed(e.to_string()),
                })?;
                buf.advance(p.consumed);
                if p.done {
                    break out.freeze();
                }
                fill(stream, &mut buf).await?;
            }
        }
        h1::ResponseBody::UntilClose => loop {
            if buf.len() > MAX_RESPONSE_BYTES {
                return Err(CallError::TooLarge);
            }
            match fill(stream, &mut buf).await {
                Ok(()) => {}
                Err(CallError::Closed) => break buf.split().freeze(),
                Err(e) => return Err(e),
            }
        },
    };
    Ok(Answer {
        status: head.status,
        content_type,
        body,
    })
}
