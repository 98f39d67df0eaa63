//! A raw-bytes HTTP/1.1 client for driving the gateway exactly as a test needs.
//!
//! Owns: sending exact bytes over one `TcpStream` and reading responses back (status, headers,
//! body framed by Content-Length, chunked coding or connection close), including pipelined
//! responses and interim `100 Continue`. Does not own request building beyond a small
//! convenience ([`upload_request`]): tests write the bytes they mean. Every read has a timeout,
//! so a test fails instead of hanging.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use crate::bodies::Upload;
use crate::http::{find, parse_chunk_size, parse_response_head};

/// Default bound on waiting for a response (generous: the machine is shared and slow).
pub const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(20);
/// Largest response head the client accepts.
const MAX_RESPONSE_HEAD: usize = 64 * 1024;

/// One HTTP response as read off the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub version: u8,
    pub status: u16,
    pub reason: String,
    /// Header fields in order, names as sent.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// The first value of a header (case-insensitive name).
    pub fn header(&self, name: &str) -> Option<&str> {
        crate::http::header_value(&self.headers, name)
    }

    pub fn body_str(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// One client connection with a carry-over buffer for pipelined responses.
#[derive(Debug)]
pub struct Client {
    stream: TcpStream,
    buf: Vec<u8>,
    timeout: Duration,
}

impl Client {
    /// Connects to `addr` (bounded by the default timeout).
    pub fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
            .unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
        let _ = stream.set_nodelay(true);
        Client {
            stream,
            buf: Vec::new(),
            timeout: DEFAULT_READ_TIMEOUT,
        }
    }

    /// Connects to `addr` (bounded), reporting failure instead of panicking: for tests where
    /// a refused connection is an acceptable outcome.
    pub fn try_connect(addr: SocketAddr) -> std::io::Result<Client> {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
        let _ = stream.set_nodelay(true);
        Ok(Client {
            stream,
            buf: Vec::new(),
            timeout: DEFAULT_READ_TIMEOUT,
        })
    }

    /// Changes the bound on each response read.
    pub fn with_timeout(mut self, timeout: Duration) -> Client {
        self.timeout = timeout;
        self
    }

    /// Writes exactly `bytes` (one `write_all`; small writes go out in one segment).
    pub fn send(&mut self, bytes: &[u8]) {
        self.stream
            .write_all(bytes)
            .and_then(|()| self.stream.flush())
            .unwrap_or_else(|e| panic!("send {} bytes: {e}", bytes.len()));
    }

    /// Like [`Client::send`] but reports failure (the peer may have closed already).
    pub fn try_send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes)?;
        self.stream.flush()
    }

    /// Sends each of `uploads` in turn on this connection, asserting that each is answered 200
    /// before the next goes out (as an SDK that waits for every answer). The connection stays
    /// open for the caller.
    pub fn upload_each_expecting_200(&mut self, uploads: &[Upload]) {
        for upload in uploads {
            self.send(&upload.request(&[]));
            let response = self.read_response();
            assert_eq!(
                response.status, 200,
                "{} upload: {response:?}",
                upload.shape
            );
        }
    }

    /// Reads one more chunk into the buffer before `deadline`. `Ok(false)` on EOF or reset.
    fn fill(&mut self, deadline: Instant) -> Result<bool, String> {
        let now = Instant::now();
        if now >= deadline {
            return Err(format!(
                "timed out after {:?}; buffered: {:?}",
                self.timeout,
                String::from_utf8_lossy(&self.buf)
            ));
        }
        let _ = self.stream.set_read_timeout(Some(deadline - now));
        let mut chunk = [0u8; 16 * 1024];
        loop {
            match self.stream.read(&mut chunk) {
                Ok(0) => return Ok(false),
                Ok(n) => {
                    self.buf.extend_from_slice(&chunk[..n]);
                    return Ok(true);
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    return Err(format!(
                        "timed out after {:?}; buffered: {:?}",
                        self.timeout,
                        String::from_utf8_lossy(&self.buf)
                    ));
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted
                    ) =>
                {
                    return Ok(false);
                }
                Err(e) => return Err(format!("read: {e}")),
            }
        }
    }

    /// Reads one response, panicking on timeout or malformed bytes. An interim `1xx` response
    /// is returned as such (no body); call again for the final one.
    pub fn read_response(&mut self) -> Response {
        match self.try_read_response() {
            Ok(Some(response)) => response,
            Ok(None) => panic!("reading response: connection closed before a response"),
            Err(e) => panic!("reading response: {e}"),
        }
    }

    /// Reads one response; `Ok(None)` if the connection closed before any byte of it.
    pub fn try_read_response(&mut self) -> Result<Option<Response>, String> {
        let deadline = Instant::now() + self.timeout;
        let head_end = loop {
            if let Some(pos) = find(&self.buf, b"\r\n\r\n") {
                break pos + 4;
            }
            if self.buf.len() > MAX_RESPONSE_HEAD {
                return Err("response head too large".into());
            }
            if !self.fill(deadline)? {
                if self.buf.is_empty() {
                    return Ok(None);
                }
                return Err(format!(
                    "connection closed inside a response head: {:?}",
                    String::from_utf8_lossy(&self.buf)
                ));
            }
        };
        let head = parse_response_head(&self.buf[..head_end]).map_err(|e| {
            format!(
                "bad response head ({e:?}): {:?}",
                String::from_utf8_lossy(&self.buf[..head_end])
            )
        })?;
        let (version, status, reason, headers) =
            (head.version, head.status, head.reason, head.headers);
        self.buf.drain(..head_end);
        let mut response = Response {
            version,
            status,
            reason,
            headers,
            body: Vec::new(),
        };
        if (100..200).contains(&status) || status == 204 || status == 304 {
            return Ok(Some(response));
        }
        let chunked = response
            .header("transfer-encoding")
            .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
        if chunked {
            response.body = self.read_chunked(deadline)?;
        } else if let Some(cl) = response.header("content-length") {
            let n: usize = cl
                .trim()
                .parse()
                .map_err(|_| format!("bad Content-Length {cl:?}"))?;
            while self.buf.len() < n {
                if !self.fill(deadline)? {
                    return Err(format!(
                        "connection closed after {} of {n} body bytes",
                        self.buf.len()
                    ));
                }
            }
            response.body = self.buf.drain(..n).collect();
        } else {
            while self.fill(deadline)? {}
            response.body = std::mem::take(&mut self.buf);
        }
        Ok(Some(response))
    }

    fn read_chunked(&mut self, deadline: Instant) -> Result<Vec<u8>, String> {
        let mut body = Vec::new();
        loop {
            let (consumed, size) = loop {
                match parse_chunk_size(&self.buf) {
                    Ok(Some(v)) => break v,
                    Ok(None) => {
                        if !self.fill(deadline)? {
                            return Err("closed inside chunked body".into());
                        }
                    }
                    Err(_) => return Err("bad chunk size line".into()),
                }
            };
            self.buf.drain(..consumed);
            let size = usize::try_from(size).map_err(|_| "chunk too large".to_string())?;
            if size == 0 {
                loop {
                    if let Some(end) = find(&self.buf, b"\r\n") {
                        let line: Vec<u8> = self.buf.drain(..end + 2).collect();
                        if line.len() == 2 {
                            return Ok(body);
                        }
                    } else if !self.fill(deadline)? {
                        return Err("closed inside trailers".into());
                    }
                }
            }
            while self.buf.len() < size + 2 {
                if !self.fill(deadline)? {
                    return Err("closed inside chunk".into());
                }
            }
            body.extend(self.buf.drain(..size));
            self.buf.drain(..2);
        }
    }

    /// Reads `n` pipelined responses in order.
    pub fn read_responses(&mut self, n: usize) -> Vec<Response> {
        (0..n).map(|_| self.read_response()).collect()
    }

    /// Asserts the peer closes the connection without sending anything more.
    pub fn expect_closed(&mut self) {
        let deadline = Instant::now() + self.timeout;
        loop {
            match self.fill(deadline) {
                Ok(false) => break,
                Ok(true) => {}
                Err(e) => panic!("expected the connection to be closed: {e}"),
            }
        }
        assert!(
            self.buf.is_empty(),
            "expected no more bytes before close, got {:?}",
            String::from_utf8_lossy(&self.buf)
        );
    }

    /// A second handle on the same socket, e.g. for a thread that keeps writing while this
    /// one waits for the peer to close.
    pub fn stream_clone(&self) -> TcpStream {
        self.stream.try_clone().expect("clone client socket")
    }

    /// Bytes received but not yet consumed as a response.
    pub fn buffered(&self) -> &[u8] {
        &self.buf
    }
}

/// `POST <target> HTTP/1.1` with Host, the given extra headers, a Content-Length and `body`.
pub fn upload_request(target: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut head = format!("POST {target} HTTP/1.1\r\nHost: pyrogate.test\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    let mut out = head.into_bytes();
    out.extend_from_slice(body);
    out
}

/// The same upload with `Transfer-Encoding: chunked`, the body cut into `chunk`-byte chunks.
pub fn chunked_upload_request(
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    chunk: usize,
) -> Vec<u8> {
    let mut head = format!("POST {target} HTTP/1.1\r\nHost: pyrogate.test\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("Transfer-Encoding: chunked\r\n\r\n");
    let mut out = head.into_bytes();
    out.extend_from_slice(&chunked_body(body, chunk));
    out
}

/// `body` in chunked transfer coding (RFC 9112 §7.1), `chunk` bytes per chunk.
pub fn chunked_body(body: &[u8], chunk: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 64);
    for piece in body.chunks(chunk.max(1)) {
        out.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
        out.extend_from_slice(piece);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

/// One GET with `Connection: close`, for the admin listener.
pub fn get(addr: SocketAddr, target: &str) -> Response {
    let mut client = Client::connect(addr);
    client.send(
        format!("GET {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
    );
    client.read_response()
}
