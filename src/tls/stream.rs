//! A connection that is plain TCP or TLS over TCP, with monoio's owned-buffer I/O.
//!
//! Owns: driving rustls' *unbuffered* connection API (client or server side) over a monoio
//! `TcpStream` — the handshake, encrypting writes straight into one reusable outgoing buffer
//! that is handed to the kernel (so a body's plaintext is copied exactly once, by encryption
//! into its records), and decrypting reads into the caller's buffer. Also: the first-bytes
//! check that answers a plain-HTTP request sent to a TLS port as Go's server does. Does not
//! own: certificates and verification policy ([`super`]), HTTP framing. Hot path: yes. No
//! `unsafe`: plaintext is handed over as `&[u8]` (`AsRef`), never through raw pointers.

use std::io;

use bytes::{Buf, BytesMut};
use monoio::buf::{IoBuf, IoBufMut, SliceMut};
use monoio::io::{AsyncReadRent, AsyncWriteRentExt};
use monoio::net::TcpStream;
use rustls::client::UnbufferedClientConnection;
use rustls::server::UnbufferedServerConnection;
use rustls::unbuffered::{
    ConnectionState, EncodeError, EncryptError, InsufficientSizeError, UnbufferedStatus,
};

/// Plaintext encrypted per step before the records go to the socket: four full TLS records,
/// so the outgoing buffer stays small (and reused) whatever the body size.
const PLAINTEXT_STEP_BYTES: usize = 4 * 16 * 1024;
/// Spare room asked for per socket read of ciphertext (one full record plus its overhead).
const TLS_READ_BYTES: usize = 16 * 1024 + 256;
/// Go's answer to plain HTTP on a TLS port (`net/http` `conn.serve`).
pub const HTTP_ON_TLS_PORT_REPLY: &[u8] =
    b"HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n";
/// Bytes Go inspects to decide that a non-TLS first record is HTTP (`tlsRecordHeaderLooksLikeHTTP`).
const HTTP_SNIFF_BYTES: usize = 5;
/// The TLS record content type of a handshake record (RFC 8446 §5.1): every ClientHello starts so.
const TLS_HANDSHAKE_RECORD: u8 = 0x16;

/// An open connection: plain or TLS.
#[derive(Debug)]
pub enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream>),
}

/// The two rustls sides behind one driver.
enum Side {
    Client(UnbufferedClientConnection),
    Server(UnbufferedServerConnection),
}

/// TLS over a monoio TCP stream.
pub struct TlsStream {
    tcp: TcpStream,
    side: Side,
    /// Ciphertext received and not yet consumed by rustls.
    incoming: BytesMut,
    /// Decrypted bytes beyond what the last read could take.
    plain: BytesMut,
    /// Records waiting to be written (reused across writes).
    out: Vec<u8>,
    eof: bool,
}

impl std::fmt::Debug for TlsStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsStream")
            .field("server", &matches!(self.side, Side::Server(_)))
            .finish_non_exhaustive()
    }
}

/// What the record layer needs next.
enum Need {
    /// More ciphertext from the socket.
    Read,
    /// `out` holds records to transmit.
    Transmit,
    /// The goal of the step is reached (`n` plaintext bytes consumed for a write).
    Done(usize),
    /// The peer closed (close_notify).
    Closed,
}

/// What a step is for.
enum Goal<'a> {
    /// Finish the handshake.
    Handshake,
    /// Encrypt (part of) this plaintext.
    Write(&'a [u8]),
    /// Deliver plaintext into `dst`, at most `room` bytes; `got` counts what was delivered.
    Read {
        dst: &'a mut BytesMut,
        room: usize,
        got: usize,
    },
}

fn tls_err(e: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("tls: {e}"))
}

/// Grows `out` and retries `f` until the records fit.
fn encode_into<E>(
    out: &mut Vec<u8>,
    mut hint: usize,
    mut f: impl FnMut(&mut [u8]) -> Result<usize, E>,
    size: impl Fn(&E) -> Option<usize>,
) -> Result<usize, E> {
    loop {
        let len = out.len();
        out.resize(len + hint, 0);
        match f(&mut out[len..]) {
            Ok(n) => {
                out.truncate(len + n);
                return Ok(n);
            }
            Err(e) => {
                out.truncate(len);
                match size(&e) {
                    Some(required) if required > hint => hint = required,
                    _ => return Err(e),
                }
            }
        }
    }
}

/// Runs the state machine until it needs I/O or reaches `goal`. Generic over the two sides.
fn step<Data>(
    status: UnbufferedStatus<'_, '_, Data>,
    goal: &mut Goal<'_>,
    plain: &mut BytesMut,
    out: &mut Vec<u8>,
    discard: &mut usize,
) -> io::Result<Option<Need>> {
    *discard += status.discard;
    let state = status.state.map_err(tls_err)?;
    match state {
        ConnectionState::ReadTraffic(mut t) => {
            while let Some(rec) = t.next_record() {
                let rec = rec.map_err(tls_err)?;
                *discard += rec.discard;
                match goal {
                    Goal::Read { dst, room, got } => {
                        let take = (*room).min(rec.payload.len());
                        dst.extend_from_slice(&rec.payload[..take]);
                        *room -= take;
                        *got += take;
                        plain.extend_from_slice(&rec.payload[take..]);
                    }
                    _ => plain.extend_from_slice(rec.payload),
                }
            }
            Ok(None)
        }
        ConnectionState::EncodeTlsData(mut e) => {
            encode_into(
                out,
                1024,
                |b| e.encode(b),
                |err| match err {
                    EncodeError::InsufficientSize(InsufficientSizeError { required_size }) => {
                        Some(*required_size)
                    }
                    _ => None,
                },
            )
            .map_err(tls_err)?;
            Ok(None)
        }
        ConnectionState::TransmitTlsData(t) => {
            if out.is_empty() {
                // Everything encoded so far has been written.
                t.done();
                Ok(None)
            } else {
                Ok(Some(Need::Transmit))
            }
        }
        ConnectionState::BlockedHandshake => Ok(Some(Need::Read)),
        ConnectionState::WriteTraffic(mut w) => match goal {
            Goal::Handshake => Ok(Some(Need::Done(0))),
            Goal::Write(data) => {
                let chunk = &data[..data.len().min(PLAINTEXT_STEP_BYTES)];
                encode_into(
                    out,
                    chunk.len() + 1024,
                    |b| w.encrypt(chunk, b),
                    |err| match err {
                        EncryptError::InsufficientSize(InsufficientSizeError { required_size }) => {
                            Some(*required_size)
                        }
                        _ => None,
                    },
                )
                .map_err(tls_err)?;
                Ok(Some(Need::Done(chunk.len())))
            }
            Goal::Read { got, .. } => {
                if *got == 0 && plain.is_empty() {
                    Ok(Some(Need::Read))
                } else {
                    Ok(Some(Need::Done(0)))
                }
            }
        },
        ConnectionState::PeerClosed | ConnectionState::Closed => Ok(Some(Need::Closed)),
        // Early data is never enabled; any future state is unexpected.
        _ => Err(tls_err("unexpected TLS state")),
    }
}

impl TlsStream {
    fn new(tcp: TcpStream, side: Side, incoming: BytesMut) -> Self {
        TlsStream {
            tcp,
            side,
            incoming,
            plain: BytesMut::new(),
            out: Vec::new(),
            eof: false,
        }
    }

    /// Processes buffered ciphertext once; returns what is needed next (None = call again).
    fn advance(&mut self, goal: &mut Goal<'_>) -> io::Result<Option<Need>> {
        let mut discard = 0;
        let r = match &mut self.side {
            Side::Client(c) => step(
                c.process_tls_records(&mut self.incoming[..]),
                goal,
                &mut self.plain,
                &mut self.out,
                &mut discard,
            ),
            Side::Server(s) => step(
                s.process_tls_records(&mut self.incoming[..]),
                goal,
                &mut self.plain,
                &mut self.out,
                &mut discard,
            ),
        };
        self.incoming.advance(discard.min(self.incoming.len()));
        r
    }

    async fn transmit(&mut self) -> io::Result<()> {
        let out = std::mem::take(&mut self.out);
        let (res, mut out) = self.tcp.write_all(out).await;
        out.clear();
        self.out = out;
        res.map(|_| ())
    }

    async fn fill(&mut self) -> io::Result<usize> {
        let buf = std::mem::take(&mut self.incoming);
        let (res, buf) = crate::io::read_more(&mut self.tcp, buf, TLS_READ_BYTES).await;
        self.incoming = buf;
        res
    }

    /// Drives the connection until `goal` is met; returns the plaintext bytes consumed.
    async fn run(&mut self, mut goal: Goal<'_>) -> io::Result<usize> {
        loop {
            match self.advance(&mut goal) {
                Ok(None) => {}
                Ok(Some(Need::Done(n))) => {
                    if !self.out.is_empty() {
                        self.transmit().await?;
                    }
                    return Ok(n);
                }
                Ok(Some(Need::Transmit)) => self.transmit().await?,
                Ok(Some(Need::Read)) => {
                    if self.eof {
                        return match goal {
                            Goal::Read { .. } => Ok(0),
                            _ => Err(io::Error::new(
                                io::ErrorKind::UnexpectedEof,
                                "tls: peer closed the connection",
                            )),
                        };
                    }
                    if self.fill().await? == 0 {
                        self.eof = true;
                    }
                }
                Ok(Some(Need::Closed)) => {
                    return match goal {
                        Goal::Read { .. } => Ok(0),
                        _ => Err(io::Error::new(
                            io::ErrorKind::BrokenPipe,
                            "tls: peer sent close_notify",
                        )),
                    };
                }
                Err(e) => {
                    // Send the alert rustls queued for the failure, best effort: the peer
                    // then sees why (e.g. "certificate required") instead of a reset.
                    let _ = self.advance(&mut Goal::Handshake);
                    if !self.out.is_empty() {
                        let _ = self.transmit().await;
                    }
                    return Err(e);
                }
            }
        }
    }

    /// Client side: handshakes over `tcp`.
    pub async fn connect(
        tcp: TcpStream,
        config: std::sync::Arc<rustls::ClientConfig>,
        name: rustls::pki_types::ServerName<'static>,
    ) -> io::Result<TlsStream> {
        let conn = UnbufferedClientConnection::new(config, name).map_err(tls_err)?;
        let mut s = TlsStream::new(tcp, Side::Client(conn), BytesMut::new());
        s.run(Goal::Handshake).await?;
        Ok(s)
    }

    /// Server side: handshakes over `tcp`; `first` holds bytes already read from it.
    pub async fn accept(
        tcp: TcpStream,
        config: std::sync::Arc<rustls::ServerConfig>,
        first: BytesMut,
    ) -> io::Result<TlsStream> {
        let conn = UnbufferedServerConnection::new(config).map_err(tls_err)?;
        let mut s = TlsStream::new(tcp, Side::Server(conn), first);
        s.run(Goal::Handshake).await?;
        Ok(s)
    }

    /// Appends at most `room` plaintext bytes to `dst`; `Ok(0)` at end of stream.
    async fn read_into(&mut self, dst: &mut BytesMut, room: usize) -> io::Result<usize> {
        if room == 0 {
            return Ok(0);
        }
        if !self.plain.is_empty() {
            let take = room.min(self.plain.len());
            dst.extend_from_slice(&self.plain[..take]);
            self.plain.advance(take);
            return Ok(take);
        }
        let before = dst.len();
        self.run(Goal::Read {
            dst: &mut *dst,
            room,
            got: 0,
        })
        .await?;
        Ok(dst.len() - before)
    }

    async fn write_all_plain(&mut self, mut data: &[u8]) -> io::Result<usize> {
        let total = data.len();
        while !data.is_empty() {
            let n = self.run(Goal::Write(data)).await?;
            data = &data[n..];
        }
        Ok(total)
    }
}

impl Stream {
    pub fn set_nodelay(&self, on: bool) -> io::Result<()> {
        match self {
            Stream::Plain(s) => s.set_nodelay(on),
            Stream::Tls(t) => t.tcp.set_nodelay(on),
        }
    }

    /// Appends one read to the end of `buf` (growing it to at least `min_spare` spare bytes
    /// first), as [`crate::io::read_more`]. Returns the bytes read (0 = end of stream).
    pub async fn read_more(
        &mut self,
        mut buf: BytesMut,
        min_spare: usize,
    ) -> (io::Result<usize>, BytesMut) {
        match self {
            Stream::Plain(s) => crate::io::read_more(s, buf, min_spare).await,
            Stream::Tls(t) => {
                if buf.capacity() - buf.len() < min_spare {
                    buf.reserve(min_spare);
                }
                let room = buf.capacity() - buf.len();
                let r = t.read_into(&mut buf, room).await;
                (r, buf)
            }
        }
    }

    /// [`Stream::read_more`] that `cancel` can stop. A cancelled read is still awaited to its
    /// end: on io_uring a recv the kernel completes before the cancellation lands has consumed
    /// bytes, which are then in `buf` (dropping the read instead would lose them: monoio only
    /// marks a dropped op as ignored). Ends with the bytes read, or `ECANCELED`. TLS streams
    /// read as [`Stream::read_more`] (the handle is not used; they are never parked).
    pub async fn cancelable_read_more(
        &mut self,
        mut buf: BytesMut,
        min_spare: usize,
        cancel: monoio::io::CancelHandle,
    ) -> (io::Result<usize>, BytesMut) {
        use monoio::io::CancelableAsyncReadRent;
        match self {
            Stream::Plain(s) => {
                if buf.capacity() - buf.len() < min_spare {
                    buf.reserve(min_spare);
                }
                let len = buf.len();
                let cap = buf.capacity();
                let slice: SliceMut<BytesMut> = buf.slice_mut(len..cap);
                let (r, slice) = s.cancelable_read(slice, cancel).await;
                (r, slice.into_inner())
            }
            Stream::Tls(_) => self.read_more(buf, min_spare).await,
        }
    }

    /// Whether this is plain TCP (no TLS layer that may hold bytes of its own).
    pub fn is_plain(&self) -> bool {
        matches!(self, Stream::Plain(_))
    }

    /// Waits until the socket has bytes to read (or an error or end of stream to report),
    /// without posting a buffer. Plain TCP only; on TLS it returns at once, since decrypted
    /// bytes may already wait inside rustls.
    pub async fn readable(&self) -> io::Result<()> {
        match self {
            Stream::Plain(s) => s.readable(false).await,
            Stream::Tls(_) => Ok(()),
        }
    }

    /// Reads at most `room` bytes into the spare capacity of `buf` (which must have it).
    pub async fn read_room(
        &mut self,
        mut buf: BytesMut,
        room: usize,
    ) -> (io::Result<usize>, BytesMut) {
        match self {
            Stream::Plain(s) => {
                let len = buf.len();
                let slice: SliceMut<BytesMut> = buf.slice_mut(len..len + room);
                let (r, slice) = s.read(slice).await;
                (r, slice.into_inner())
            }
            Stream::Tls(t) => {
                let r = t.read_into(&mut buf, room).await;
                (r, buf)
            }
        }
    }

    /// Writes `pieces` back to back: with vectored writes of the very same memory for plain TCP
    /// (no copy; see `io::iovec`), encrypted record by record for TLS.
    pub async fn write_pieces(&mut self, pieces: Vec<bytes::Bytes>) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => crate::io::iovec::write_all_vectored(s, pieces).await,
            Stream::Tls(t) => {
                let mut total = 0;
                for p in &pieces {
                    total += t.write_all_plain(p).await?;
                }
                Ok(total)
            }
        }
    }

    /// Writes all of `buf`: as is to the kernel for plain TCP, encrypted for TLS.
    pub async fn write_all<T: IoBuf + AsRef<[u8]>>(&mut self, buf: T) -> (io::Result<usize>, T) {
        match self {
            Stream::Plain(s) => s.write_all(buf).await,
            Stream::Tls(t) => {
                let r = t.write_all_plain(buf.as_ref()).await;
                (r, buf)
            }
        }
    }
}

/// What the first bytes on a TLS listener say.
#[derive(Debug, PartialEq, Eq)]
pub enum FirstBytes {
    /// A TLS handshake record: go on with the handshake.
    Tls,
    /// Plain HTTP (Go's `tlsRecordHeaderLooksLikeHTTP`): answer [`HTTP_ON_TLS_PORT_REPLY`].
    Http,
    /// Something else: close.
    Garbage,
    /// Not enough bytes to tell yet.
    NeedMore,
}

/// Classifies the first bytes received on a TLS port. Pure.
pub fn classify_first_bytes(b: &[u8]) -> FirstBytes {
    match b.first() {
        None => FirstBytes::NeedMore,
        Some(&TLS_HANDSHAKE_RECORD) => FirstBytes::Tls,
        Some(_) if b.len() < HTTP_SNIFF_BYTES => FirstBytes::NeedMore,
        Some(_) => match b.get(..HTTP_SNIFF_BYTES) {
            Some(b"GET /" | b"HEAD " | b"POST " | b"PUT /" | b"OPTIO") => FirstBytes::Http,
            _ => FirstBytes::Garbage,
        },
    }
}

/// Reads the first bytes of a connection to a TLS listener and either handshakes or answers a
/// plain-HTTP request with Go's 400 text. `None` when the connection is to be dropped.
pub async fn accept_tls(
    mut tcp: TcpStream,
    config: std::sync::Arc<rustls::ServerConfig>,
) -> io::Result<Option<TlsStream>> {
    let mut first = BytesMut::with_capacity(TLS_READ_BYTES);
    loop {
        match classify_first_bytes(&first) {
            FirstBytes::Tls => return TlsStream::accept(tcp, config, first).await.map(Some),
            FirstBytes::Http => {
                let (r, _) = tcp.write_all(HTTP_ON_TLS_PORT_REPLY).await;
                r?;
                return Ok(None);
            }
            FirstBytes::Garbage => return Ok(None),
            FirstBytes::NeedMore => {
                let (r, b) = crate::io::read_more(&mut tcp, first, TLS_READ_BYTES).await;
                first = b;
                if r? == 0 {
                    return Ok(None);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_bytes_tell_tls_http_and_garbage_apart() {
        for (input, want) in [
            (&b""[..], FirstBytes::NeedMore),
            (b"\x16", FirstBytes::Tls),
            (b"\x16\x03\x01\x02\x00", FirstBytes::Tls),
            (b"POS", FirstBytes::NeedMore),
            (b"POST /ingest HTTP/1.1", FirstBytes::Http),
            (b"GET / HTTP/1.1", FirstBytes::Http),
            (b"HEAD /", FirstBytes::Http),
            (b"PUT /x", FirstBytes::Http),
            (b"OPTIONS * HTTP/1.1", FirstBytes::Http),
            (b"DELETE /x", FirstBytes::Garbage),
            (b"\x00\x01\x02\x03\x04", FirstBytes::Garbage),
        ] {
            assert_eq!(classify_first_bytes(input), want, "{input:?}");
        }
    }
}
