//! A stand-in for Pyroscope's debug-info service, and the service's messages.
//!
//! Owns: [`DebugInfoServer`], a loopback HTTP/1.1 server with Pyroscope's debug-info rules
//! (grafana/pyroscope `pkg/debuginfo/store.go`): `ShouldInitiateUpload` (Connect unary, proto or
//! JSON) answers yes or no as configured and, on yes, opens a pending upload for the build ID;
//! `Upload/{gnu_build_id}` answers 412 `no pending upload for this build ID` unless one is
//! pending, reads the body as it arrives (Content-Length or chunked) without keeping it — only
//! its size and an FNV-1a hash — refuses one over the upload cap with 500 `upload failed` (the
//! store's answer when `http.MaxBytesReader` cuts the bucket upload), and records a completed
//! upload only when the whole body arrived; `UploadFinished` closes it. Also the messages'
//! protobuf/protojson codec, written from `api/debuginfo/v1alpha1/debuginfo.proto`
//! independently of the gateway's. Test code: std threads, blocking sockets, bounded reads.

use std::collections::HashSet;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::http::{head_end, parse_chunk_size, parse_request_head, response_bytes};

pub const SHOULD_INITIATE_UPLOAD: &str =
    "/debuginfo.v1alpha1.DebuginfoService/ShouldInitiateUpload";
pub const UPLOAD_FINISHED: &str = "/debuginfo.v1alpha1.DebuginfoService/UploadFinished";
pub const UPLOAD_PREFIX: &str = "/debuginfo.v1alpha1.DebuginfoService/Upload/";

/// Pyroscope's `-debug-info.max-upload-size` default.
pub const DEFAULT_MAX_UPLOAD: u64 = 1 << 30;
/// How long the stand-in waits for a client's next bytes before giving up on the request.
const READ_TIMEOUT: Duration = Duration::from_secs(30);

/// FNV-1a, 64-bit: a hash of a body the stand-in does not keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fnv(pub u64);

impl Default for Fnv {
    fn default() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv {
    pub fn update(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }

    pub fn of(bytes: &[u8]) -> Fnv {
        let mut h = Fnv::default();
        h.update(bytes);
        h
    }
}

// ---------------------------------------------------------------------------------------------
// Messages
// ---------------------------------------------------------------------------------------------

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_bytes(out: &mut Vec<u8>, field: u64, bytes: &[u8]) {
    put_varint(out, field << 3 | 2);
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// `ShouldInitiateUploadRequest { FileMetadata file = 1 }` with `gnu_build_id = 1`,
/// `name = 4`, `type = 5` (1: executable) set.
pub fn should_initiate_request_proto(gnu_build_id: &str, name: &str) -> Vec<u8> {
    let mut file = Vec::new();
    put_bytes(&mut file, 1, gnu_build_id.as_bytes());
    put_bytes(&mut file, 4, name.as_bytes());
    put_varint(&mut file, 5 << 3);
    put_varint(&mut file, 1);
    let mut out = Vec::new();
    put_bytes(&mut out, 1, &file);
    out
}

/// The protojson form of [`should_initiate_request_proto`].
pub fn should_initiate_request_json(gnu_build_id: &str, name: &str) -> Vec<u8> {
    serde_json::json!({"file": {"gnuBuildId": gnu_build_id, "name": name, "type": "TYPE_EXECUTABLE_FULL"}})
        .to_string()
        .into_bytes()
}

/// `UploadFinishedRequest { string gnu_build_id = 1 }`.
pub fn upload_finished_request_proto(gnu_build_id: &str) -> Vec<u8> {
    let mut out = Vec::new();
    put_bytes(&mut out, 1, gnu_build_id.as_bytes());
    out
}

pub fn upload_finished_request_json(gnu_build_id: &str) -> Vec<u8> {
    serde_json::json!({"gnuBuildId": gnu_build_id})
        .to_string()
        .into_bytes()
}

/// One protobuf field: `(number, varint value or bytes)`.
type ProtoField<'a> = (u64, Result<u64, &'a [u8]>);

/// The fields of a protobuf message (varint and length-delimited only; anything else is an
/// error, as none of these messages has another).
pub fn proto_fields(mut b: &[u8]) -> Result<Vec<ProtoField<'_>>, String> {
    fn varint(b: &mut &[u8]) -> Result<u64, String> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let (&x, rest) = b.split_first().ok_or("truncated varint")?;
            *b = rest;
            v |= u64::from(x & 0x7f) << shift;
            if x & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err("varint too long".into())
    }
    let mut out = Vec::new();
    while !b.is_empty() {
        let key = varint(&mut b)?;
        match key & 7 {
            0 => out.push((key >> 3, Ok(varint(&mut b)?))),
            2 => {
                let n = varint(&mut b)? as usize;
                if b.len() < n {
                    return Err("truncated bytes".into());
                }
                let (v, rest) = b.split_at(n);
                b = rest;
                out.push((key >> 3, Err(v)));
            }
            w => return Err(format!("unexpected wire type {w}")),
        }
    }
    Ok(out)
}

fn proto_string(fields: &[ProtoField<'_>], n: u64) -> String {
    fields
        .iter()
        .rev()
        .find_map(|(f, v)| match v {
            Err(b) if *f == n => Some(String::from_utf8_lossy(b).into_owned()),
            _ => None,
        })
        .unwrap_or_default()
}

/// A decoded `ShouldInitiateUploadResponse`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShouldInitiate {
    pub should_initiate_upload: bool,
    pub reason: String,
}

/// Decodes a `ShouldInitiateUploadResponse` in the codec of `content_type`.
pub fn decode_should_initiate_response(
    content_type: &str,
    body: &[u8],
) -> Result<ShouldInitiate, String> {
    if content_type.starts_with("application/json") {
        let v: serde_json::Value = serde_json::from_slice(body).map_err(|e| e.to_string())?;
        return Ok(ShouldInitiate {
            should_initiate_upload: v["shouldInitiateUpload"].as_bool().unwrap_or(false),
            reason: v["reason"].as_str().unwrap_or_default().to_string(),
        });
    }
    let fields = proto_fields(body)?;
    Ok(ShouldInitiate {
        should_initiate_upload: fields.iter().any(|(f, v)| *f == 1 && *v == Ok(1)),
        reason: proto_string(&fields, 2),
    })
}

fn encode_should_initiate_response(json: bool, yes: bool, reason: &str) -> Vec<u8> {
    if json {
        let mut v = serde_json::json!({ "reason": reason });
        if yes {
            v["shouldInitiateUpload"] = serde_json::Value::Bool(true);
        }
        return v.to_string().into_bytes();
    }
    let mut out = Vec::new();
    if yes {
        put_varint(&mut out, 1 << 3);
        put_varint(&mut out, 1);
    }
    put_bytes(&mut out, 2, reason.as_bytes());
    out
}

// ---------------------------------------------------------------------------------------------
// The stand-in
// ---------------------------------------------------------------------------------------------

/// How the stand-in answers `ShouldInitiateUpload`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// "Yes, upload it" (a first sighting of the build ID).
    Yes,
    /// "No" (the file is already known).
    No,
}

/// One request as it arrived.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub target: String,
    pub headers: Vec<(String, String)>,
    /// The answer's status; `None` when the request never completed.
    pub status: Option<u16>,
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<&str> {
        crate::http::header_value(&self.headers, name)
    }
}

/// An upload whose whole body arrived and was accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completed {
    pub build_id: String,
    pub bytes: u64,
    pub hash: Fnv,
}

#[derive(Debug, Default)]
struct State {
    pending: HashSet<String>,
    uploaded: HashSet<String>,
    finished: Vec<String>,
    completed: Vec<Completed>,
    /// Uploads whose body ended early (the client went away mid-body).
    incomplete: u64,
    seen: Vec<Seen>,
}

/// The debug-info stand-in; stops on drop.
#[derive(Debug)]
pub struct DebugInfoServer {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl DebugInfoServer {
    /// A stand-in that answers `answer` to every `ShouldInitiateUpload` and caps uploads at
    /// `max_upload` bytes.
    pub fn start(answer: Answer, max_upload: u64) -> DebugInfoServer {
        Self::start_with(answer, max_upload, None)
    }

    /// [`DebugInfoServer::start`] serving HTTPS with `tls` when given.
    pub fn start_with(
        answer: Answer,
        max_upload: u64,
        tls: Option<Arc<rustls::ServerConfig>>,
    ) -> DebugInfoServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local addr");
        listener.set_nonblocking(true).expect("nonblocking");
        let state = Arc::new(Mutex::new(State::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let (st, sp) = (state.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !sp.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((s, _)) => {
                        let st = st.clone();
                        let tls = tls.clone();
                        std::thread::spawn(move || {
                            let _ = s.set_nonblocking(false);
                            let _ = s.set_read_timeout(Some(READ_TIMEOUT));
                            match tls {
                                None => serve(s, &st, answer, max_upload),
                                Some(config) => {
                                    let Ok(conn) = rustls::ServerConnection::new(config) else {
                                        return;
                                    };
                                    serve(
                                        rustls::StreamOwned::new(conn, s),
                                        &st,
                                        answer,
                                        max_upload,
                                    );
                                }
                            }
                        });
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        DebugInfoServer {
            addr,
            state,
            stop,
            thread: Some(thread),
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.state.lock().unwrap().seen.clone()
    }

    pub fn completed(&self) -> Vec<Completed> {
        self.state.lock().unwrap().completed.clone()
    }

    pub fn finished(&self) -> Vec<String> {
        self.state.lock().unwrap().finished.clone()
    }

    pub fn incomplete(&self) -> u64 {
        self.state.lock().unwrap().incomplete
    }

    /// Waits until `f` holds (checked every 10 ms), at most `bound`.
    pub fn wait_until(&self, bound: Duration, f: impl Fn(&DebugInfoServer) -> bool) -> bool {
        let end = Instant::now() + bound;
        while Instant::now() < end {
            if f(self) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        f(self)
    }
}

impl Drop for DebugInfoServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// How a body is framed.
enum Body {
    Length(u64),
    Chunked,
}

/// Hands the next `left` body bytes to `sink`, reading more with `more` as needed; `Err` when
/// `sink` refuses (returns false) or the input ends.
fn pass<S>(
    s: &mut S,
    buf: &mut Vec<u8>,
    mut left: u64,
    more: &mut dyn FnMut(&mut S, &mut Vec<u8>) -> io::Result<()>,
    sink: &mut dyn FnMut(&[u8]) -> bool,
) -> io::Result<()> {
    while left > 0 {
        if buf.is_empty() {
            more(s, buf)?;
        }
        let take = (buf.len() as u64).min(left) as usize;
        if !sink(&buf[..take]) {
            return Err(io::Error::other("refused"));
        }
        buf.drain(..take);
        left -= take as u64;
    }
    Ok(())
}

/// Reads a body piece by piece, handing each piece to `sink`; `Err` when it ends early or
/// `sink` refuses (returns false).
fn read_body<S: Read>(
    s: &mut S,
    buf: &mut Vec<u8>,
    body: Body,
    sink: &mut dyn FnMut(&[u8]) -> bool,
) -> io::Result<()> {
    let mut chunk = vec![0u8; 256 * 1024];
    let mut more = |s: &mut S, buf: &mut Vec<u8>| -> io::Result<()> {
        let n = s.read(&mut chunk)?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
        Ok(())
    };
    match body {
        Body::Length(left) => {
            pass(s, buf, left, &mut more, sink)?;
            Ok(())
        }
        Body::Chunked => loop {
            let (used, size) = loop {
                match parse_chunk_size(buf) {
                    Ok(Some(x)) => break x,
                    Ok(None) => more(s, buf)?,
                    Err(_) => return Err(io::ErrorKind::InvalidData.into()),
                }
            };
            buf.drain(..used);
            if size == 0 {
                // Trailer section: lines until an empty one.
                loop {
                    while !buf.contains(&b'\n') {
                        more(s, buf)?;
                    }
                    let nl = buf.iter().position(|&b| b == b'\n').unwrap();
                    let empty = nl <= 1;
                    buf.drain(..=nl);
                    if empty {
                        return Ok(());
                    }
                }
            }
            let left = size;
            pass(s, buf, left, &mut more, sink)?;
            while buf.len() < 2 {
                more(s, buf)?;
            }
            if &buf[..2] != b"\r\n" {
                return Err(io::ErrorKind::InvalidData.into());
            }
            buf.drain(..2);
        },
    }
}

fn serve<S: Read + Write>(mut s: S, state: &Mutex<State>, answer: Answer, max_upload: u64) {
    let mut buf: Vec<u8> = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        let end = loop {
            if let Some(e) = head_end(&buf) {
                break e;
            }
            match s.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let Ok(head) = parse_request_head(&buf[..end]) else {
            let _ = send(&mut s, &response_bytes(400, None, &[], b"", true));
            return;
        };
        buf.drain(..end);
        let index = {
            let mut st = state.lock().unwrap();
            st.seen.push(Seen {
                method: head.method.clone(),
                target: head.target.clone(),
                headers: head.headers.clone(),
                status: None,
            });
            st.seen.len() - 1
        };
        let framing = if head
            .header("transfer-encoding")
            .is_some_and(|t| t.eq_ignore_ascii_case("chunked"))
        {
            Body::Chunked
        } else {
            Body::Length(
                head.header("content-length")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0),
            )
        };
        let set_status = |status: u16| state.lock().unwrap().seen[index].status = Some(status);
        let ct = head.header("content-type").unwrap_or("").to_string();
        let json = ct.starts_with("application/json");
        // Served under any path prefix (a Pyroscope behind a reverse proxy's path).
        let target = match head.target.find("/debuginfo.v1alpha1.DebuginfoService/") {
            Some(at) => head.target[at..].to_string(),
            None => head.target.clone(),
        };
        if head.method != "POST" {
            set_status(405);
            let _ = send(&mut s, &response_bytes(405, None, &[], b"", true));
            return;
        }
        if let Some(id) = target.strip_prefix(UPLOAD_PREFIX) {
            let id = id.to_string();
            if !state.lock().unwrap().pending.contains(&id) {
                // Go's server discards up to 256 KiB of an unread body before closing, so a
                // small upload's client reads the answer rather than a reset.
                if let Body::Length(n) = framing
                    && n <= 256 * 1024
                {
                    let _ = read_body(&mut s, &mut buf, Body::Length(n), &mut |_| true);
                }
                set_status(412);
                let _ = send(
                    &mut s,
                    &response_bytes(
                        412,
                        Some("text/plain; charset=utf-8"),
                        &[],
                        b"no pending upload for this build ID\n",
                        true,
                    ),
                );
                return;
            }
            let (mut bytes, mut hash, mut over) = (0u64, Fnv::default(), false);
            let read = read_body(&mut s, &mut buf, framing, &mut |piece| {
                bytes += piece.len() as u64;
                if bytes > max_upload {
                    over = true;
                    return false;
                }
                hash.update(piece);
                true
            });
            if over {
                set_status(500);
                let _ = send(
                    &mut s,
                    &response_bytes(
                        500,
                        Some("text/plain; charset=utf-8"),
                        &[],
                        b"upload failed\n",
                        true,
                    ),
                );
                return;
            }
            if read.is_err() {
                state.lock().unwrap().incomplete += 1;
                return;
            }
            {
                let mut st = state.lock().unwrap();
                st.pending.remove(&id);
                st.uploaded.insert(id.clone());
                st.completed.push(Completed {
                    build_id: id,
                    bytes,
                    hash,
                });
            }
            set_status(200);
            if send(&mut s, &response_bytes(200, None, &[], b"", false)).is_err() {
                return;
            }
            continue;
        }
        // Connect unary: a small body, read whole.
        let mut body = Vec::new();
        if read_body(&mut s, &mut buf, framing, &mut |p| {
            body.extend_from_slice(p);
            body.len() <= 1 << 20
        })
        .is_err()
        {
            return;
        }
        let (status, ctype, out) = match target.as_str() {
            SHOULD_INITIATE_UPLOAD => {
                let id = if json {
                    serde_json::from_slice::<serde_json::Value>(&body)
                        .ok()
                        .and_then(|v| v["file"]["gnuBuildId"].as_str().map(str::to_string))
                } else {
                    proto_fields(&body).ok().and_then(|f| {
                        f.iter().find_map(|(n, v)| match v {
                            Err(file) if *n == 1 => {
                                proto_fields(file).ok().map(|ff| proto_string(&ff, 1))
                            }
                            _ => None,
                        })
                    })
                };
                match id {
                    Some(id) if !id.is_empty() => {
                        let yes = answer == Answer::Yes;
                        if yes {
                            state.lock().unwrap().pending.insert(id);
                        }
                        let reason = if yes {
                            "First time we see this Build ID, and it does not exist in symbol storage"
                        } else {
                            "Debuginfo already exists"
                        };
                        (
                            200,
                            content_type(json),
                            encode_should_initiate_response(json, yes, reason),
                        )
                    }
                    _ => connect_error(400, "invalid_argument", "invalid gnu_build_id"),
                }
            }
            UPLOAD_FINISHED => {
                let id = if json {
                    serde_json::from_slice::<serde_json::Value>(&body)
                        .ok()
                        .and_then(|v| v["gnuBuildId"].as_str().map(str::to_string))
                } else {
                    proto_fields(&body).ok().map(|f| proto_string(&f, 1))
                };
                let mut st = state.lock().unwrap();
                match id {
                    Some(id) if st.uploaded.contains(&id) => {
                        st.finished.push(id);
                        (
                            200,
                            content_type(json),
                            if json { b"{}".to_vec() } else { Vec::new() },
                        )
                    }
                    _ => connect_error(
                        400,
                        "failed_precondition",
                        "no upload in progress for this build ID",
                    ),
                }
            }
            _ => (
                404,
                "text/plain; charset=utf-8",
                b"404 page not found\n".to_vec(),
            ),
        };
        set_status(status);
        if send(
            &mut s,
            &response_bytes(status, Some(ctype), &[], &out, false),
        )
        .is_err()
        {
            return;
        }
    }
}

/// Writes an answer and flushes it (a TLS stream holds records until flushed).
fn send<S: Write>(s: &mut S, bytes: &[u8]) -> io::Result<()> {
    s.write_all(bytes)?;
    s.flush()
}

fn content_type(json: bool) -> &'static str {
    if json {
        "application/json"
    } else {
        "application/proto"
    }
}

fn connect_error(status: u16, code: &str, message: &str) -> (u16, &'static str, Vec<u8>) {
    (
        status,
        "application/json",
        serde_json::json!({"code": code, "message": message})
            .to_string()
            .into_bytes(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_through_the_kit_codec() {
        let req = should_initiate_request_proto("abc", "app");
        let fields = proto_fields(&req).unwrap();
        let Err(file) = fields[0].1 else { panic!() };
        assert_eq!(proto_string(&proto_fields(file).unwrap(), 1), "abc");
        let yes = encode_should_initiate_response(false, true, "r");
        assert_eq!(
            decode_should_initiate_response("application/proto", &yes).unwrap(),
            ShouldInitiate {
                should_initiate_upload: true,
                reason: "r".into()
            }
        );
        let no = encode_should_initiate_response(true, false, "x");
        assert!(
            !decode_should_initiate_response("application/json", &no)
                .unwrap()
                .should_initiate_upload
        );
    }
}
