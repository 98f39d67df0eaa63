//! `MockPyroscope`: an in-process stand-in for a Pyroscope server's `/ingest` and Connect Push
//! endpoints.
//!
//! Owns: a loopback HTTP/1.1 server (keep-alive, Content-Length and chunked request bodies)
//! that enforces Pyroscope's own acceptance rules as documented in
//! `shared/reference/pyroscope-ingest-api.md` §1–§4 — routes and methods, the `name` label-set
//! grammar, the text-format profile-type suffix, the body size limit and the multipart parts;
//! for `POST /push.v1.PusherService/Push` the Connect unary protocol (`application/proto` and
//! `application/json`, gzip or identity, `Connect-Protocol-Version`), PushRequest decoding and
//! Pyroscope's series validation, with Connect JSON errors —, records every request it receives
//! (a push also decoded), and answers accepted ones as scripted (status, `Retry-After`, delay,
//! hang, close). Does not decode pprof or JFR payloads, and serves no gRPC or gRPC-Web (the
//! gateway speaks Connect upstream). Test code: one std thread per connection, blocking
//! sockets, torn down on drop.
//!
//! The label-set parser and the query parser here are written independently of pyrogate's
//! `labels` module, from the reference text and Go's `net/url` behaviour, so that the e2e tests
//! do not check the gateway against itself.

use std::collections::VecDeque;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::push::{self, Gunzip, PUSH_PATH, PushRequest};

/// Pyroscope's default `-distributor.ingestion-body-limit-mb` (256 MiB).
pub const DEFAULT_BODY_LIMIT: usize = 256 * 1024 * 1024;
/// Largest request head the mock buffers (Go's `http.DefaultMaxHeaderBytes`, 1 MiB).
const MAX_HEAD_BYTES: usize = 1024 * 1024;
/// Most header fields the mock parses in one head.
const MAX_HEADERS: usize = 128;
/// How long a `Hang` (or an idle connection) lasts at most if the mock is never dropped.
const MAX_HANG: Duration = Duration::from_secs(120);

/// Profile-type suffixes Pyroscope's text-format path understands (`convertMetadata` in
/// `pkg/ingester/pyroscope/ingest_adapter.go`). An app name without a dot means `cpu`.
const KNOWN_PROFILE_TYPES: &[&str] = &[
    "cpu",
    "wall",
    "itimer",
    "inuse_space",
    "inuse_objects",
    "alloc_space",
    "alloc_objects",
    "goroutines",
    "mutex_count",
    "mutex_duration",
    "block_count",
    "block_duration",
    "lock_count",
    "lock_duration",
    "alloc_in_new_tlab_bytes",
    "alloc_in_new_tlab_objects",
    "alloc_outside_tlab_bytes",
    "alloc_outside_tlab_objects",
    "live",
    "exceptions",
    "seconds",
    "bytes",
    "samples",
    "objects",
];

/// What the mock does with a request that passed Pyroscope's validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Wait `delay`, then answer `status` (with `Retry-After: <retry_after>` if set).
    Respond {
        status: u16,
        retry_after: Option<String>,
        delay: Duration,
    },
    /// Never answer; keep the connection open until the mock is dropped.
    Hang,
    /// Close the connection without answering.
    Close,
}

impl Action {
    /// Answer `status` at once.
    pub fn status(status: u16) -> Action {
        Action::Respond {
            status,
            retry_after: None,
            delay: Duration::ZERO,
        }
    }

    /// The default: 200 with an empty body.
    pub fn ok() -> Action {
        Action::status(200)
    }

    /// Adds `Retry-After: <value>` to a `Respond` action.
    pub fn with_retry_after(self, value: &str) -> Action {
        match self {
            Action::Respond { status, delay, .. } => Action::Respond {
                status,
                retry_after: Some(value.to_string()),
                delay,
            },
            other => other,
        }
    }

    /// Delays a `Respond` action.
    pub fn delayed(self, by: Duration) -> Action {
        match self {
            Action::Respond {
                status,
                retry_after,
                ..
            } => Action::Respond {
                status,
                retry_after,
                delay: by,
            },
            other => other,
        }
    }
}

/// One request the mock received, as it arrived on the wire.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    /// The request-target's path, undecoded.
    pub path: String,
    /// The raw query string after `?` (empty when there is none).
    pub query: String,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub version: u8,
    /// Header fields in arrival order, names as sent.
    pub headers: Vec<(String, String)>,
    /// Whether the body came with `Transfer-Encoding: chunked`.
    pub chunked: bool,
    pub body: Vec<u8>,
    /// When the whole request had been read.
    pub received_at: Instant,
    /// What the mock answered; `None` when it hung or closed the connection.
    pub status: Option<u16>,
    /// For a Push request: the decoded PushRequest (labels in wire order), when the body
    /// decompressed and decoded; `None` for every other request.
    pub push: Option<PushRequest>,
}

impl Recorded {
    /// The first value of a header (names compared case-insensitively).
    pub fn header(&self, name: &str) -> Option<&str> {
        super::header_value(&self.headers, name)
    }

    /// Every value of a header, in order.
    pub fn header_all(&self, name: &str) -> Vec<&str> {
        super::header_values(&self.headers, name)
    }

    /// The decoded PushRequest of a push; panics (naming the request) for anything else.
    pub fn push_request(&self) -> &PushRequest {
        self.push.as_ref().unwrap_or_else(|| {
            panic!(
                "not a decoded push: {} {} -> {:?}",
                self.method, self.path, self.status
            )
        })
    }

    /// Header names lower-cased and sorted, duplicates kept.
    pub fn header_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .headers
            .iter()
            .map(|(n, _)| n.to_ascii_lowercase())
            .collect();
        names.sort();
        names
    }
}

/// Builder for a [`MockPyroscope`].
#[derive(Debug, Clone)]
pub struct MockBuilder {
    body_limit: usize,
    path_prefix: String,
    default_action: Action,
}

impl MockBuilder {
    /// Bodies larger than this get 413 (default: Pyroscope's 256 MiB).
    pub fn body_limit(mut self, bytes: usize) -> Self {
        self.body_limit = bytes;
        self
    }

    /// Serve the ingest routes under a path prefix, e.g. `/prefix` serves `/prefix/ingest` —
    /// a Pyroscope behind a reverse proxy.
    pub fn path_prefix(mut self, prefix: &str) -> Self {
        self.path_prefix = prefix.trim_end_matches('/').to_string();
        self
    }

    /// What to do with valid requests once the script is used up (default: 200).
    pub fn default_action(mut self, action: Action) -> Self {
        self.default_action = action;
        self
    }

    pub fn start(self) -> MockPyroscope {
        MockPyroscope::start_with(self)
    }
}

struct Shared {
    config: MockBuilder,
    shutdown: AtomicBool,
    /// Guards nothing but is the partner of `shutdown_cv` for interruptible sleeps.
    shutdown_lock: Mutex<()>,
    shutdown_cv: Condvar,
    script: Mutex<VecDeque<Action>>,
    default_action: Mutex<Action>,
    recorded: Mutex<Vec<Recorded>>,
    recorded_cv: Condvar,
    connections: Mutex<Vec<TcpStream>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

/// A Pyroscope stand-in listening on `127.0.0.1:<ephemeral>`; stops when dropped.
pub struct MockPyroscope {
    addr: SocketAddr,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for MockPyroscope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MockPyroscope")
            .field("addr", &self.addr)
            .finish()
    }
}

/// Locks a mutex, ignoring poisoning (a panicking test thread must not cascade).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl MockPyroscope {
    pub fn builder() -> MockBuilder {
        MockBuilder {
            body_limit: DEFAULT_BODY_LIMIT,
            path_prefix: String::new(),
            default_action: Action::ok(),
        }
    }

    /// A mock with default settings that answers 200 to every valid upload.
    pub fn start() -> MockPyroscope {
        Self::builder().start()
    }

    fn start_with(config: MockBuilder) -> MockPyroscope {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind mock upstream");
        let addr = listener.local_addr().expect("mock upstream address");
        let shared = Arc::new(Shared {
            default_action: Mutex::new(config.default_action.clone()),
            config,
            shutdown: AtomicBool::new(false),
            shutdown_lock: Mutex::new(()),
            shutdown_cv: Condvar::new(),
            script: Mutex::new(VecDeque::new()),
            recorded: Mutex::new(Vec::new()),
            recorded_cv: Condvar::new(),
            connections: Mutex::new(Vec::new()),
            threads: Mutex::new(Vec::new()),
        });
        let accept_shared = Arc::clone(&shared);
        let acceptor = std::thread::Builder::new()
            .name("mock-accept".into())
            .spawn(move || accept_loop(listener, accept_shared))
            .expect("spawn mock acceptor");
        MockPyroscope {
            addr,
            shared,
            acceptor: Some(acceptor),
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:<port>` — an endpoint `url` for the gateway config.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Queues actions for the next valid requests, in order (after any already queued).
    pub fn script(&self, actions: impl IntoIterator<Item = Action>) {
        lock(&self.shared.script).extend(actions);
    }

    /// Replaces the action used once the script is empty.
    pub fn set_default(&self, action: Action) {
        *lock(&self.shared.default_action) = action;
    }

    /// Every request received so far, in order of completion.
    pub fn requests(&self) -> Vec<Recorded> {
        lock(&self.shared.recorded).clone()
    }

    pub fn request_count(&self) -> usize {
        lock(&self.shared.recorded).len()
    }

    /// Waits until at least `n` requests have been received, then returns all of them.
    /// Panics (with what was received) after `timeout`.
    pub fn wait_for_requests(&self, n: usize, timeout: Duration) -> Vec<Recorded> {
        let deadline = Instant::now() + timeout;
        let mut recorded = lock(&self.shared.recorded);
        while recorded.len() < n {
            let now = Instant::now();
            if now >= deadline {
                panic!(
                    "mock upstream {}: waited {timeout:?} for {n} requests, got {}: {:#?}",
                    self.addr,
                    recorded.len(),
                    recorded
                        .iter()
                        .map(|r| format!("{} {}?{} -> {:?}", r.method, r.path, r.query, r.status))
                        .collect::<Vec<_>>()
                );
            }
            recorded = self
                .shared
                .recorded_cv
                .wait_timeout(recorded, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        recorded.clone()
    }
}

impl Drop for MockPyroscope {
    fn drop(&mut self) {
        self.shared.shutdown.store(true, Ordering::SeqCst);
        {
            let _guard = lock(&self.shared.shutdown_lock);
            self.shared.shutdown_cv.notify_all();
        }
        // Unblock the acceptor's `accept()`.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
        // Unblock every connection thread's `read()`.
        for stream in lock(&self.shared.connections).drain(..) {
            let _ = stream.shutdown(Shutdown::Both);
        }
        let threads: Vec<JoinHandle<()>> = lock(&self.shared.threads).drain(..).collect();
        for thread in threads {
            let _ = thread.join();
        }
    }
}

/// A loopback address on which nothing listens: connecting to it is refused.
pub fn dead_destination() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind for dead destination");
    let addr = listener.local_addr().expect("dead destination address");
    drop(listener);
    addr
}

fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    for stream in listener.incoming() {
        if shared.shutdown.load(Ordering::SeqCst) {
            break;
        }
        let Ok(stream) = stream else { continue };
        let Ok(clone) = stream.try_clone() else {
            continue;
        };
        lock(&shared.connections).push(clone);
        let conn_shared = Arc::clone(&shared);
        let handle = std::thread::Builder::new()
            .name("mock-conn".into())
            .spawn(move || serve_connection(stream, conn_shared));
        if let Ok(handle) = handle {
            lock(&shared.threads).push(handle);
        }
    }
}

/// A blocking reader with a carry-over buffer (pipelined bytes stay for the next request).
struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    /// Reads more bytes; `false` on EOF or error.
    fn fill(&mut self) -> bool {
        let mut chunk = [0u8; 16 * 1024];
        loop {
            match self.stream.read(&mut chunk) {
                Ok(0) => return false,
                Ok(n) => {
                    self.buf.extend_from_slice(&chunk[..n]);
                    return true;
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(_) => return false,
            }
        }
    }

    /// Ensures at least `n` buffered bytes.
    fn need(&mut self, n: usize) -> bool {
        while self.buf.len() < n {
            if !self.fill() {
                return false;
            }
        }
        true
    }

    fn take(&mut self, n: usize) -> Vec<u8> {
        let rest = self.buf.split_off(n);
        std::mem::replace(&mut self.buf, rest)
    }
}

/// Why a request could not be read as HTTP; answered and the connection closed.
struct Reject {
    status: u16,
    message: &'static str,
}

/// A parsed request head.
struct Head {
    method: String,
    target: String,
    version: u8,
    headers: Vec<(String, String)>,
}

fn serve_connection(stream: TcpStream, shared: Arc<Shared>) {
    let _ = stream.set_read_timeout(Some(MAX_HANG));
    let _ = stream.set_nodelay(true);
    let mut conn = Conn {
        stream,
        buf: Vec::new(),
    };
    while !shared.shutdown.load(Ordering::SeqCst) {
        let keep_going = serve_one(&mut conn, &shared);
        if !keep_going {
            break;
        }
    }
    let _ = conn.stream.shutdown(Shutdown::Both);
}

/// Reads and answers one request; `false` when the connection must close.
fn serve_one(conn: &mut Conn, shared: &Shared) -> bool {
    let head = match read_head(conn) {
        Ok(Some(head)) => head,
        Ok(None) => return false,
        Err(reject) => {
            let _ = write_response(
                &mut conn.stream,
                reject.status,
                "text/plain; charset=utf-8",
                reject.message.as_bytes(),
                None,
                true,
            );
            return false;
        }
    };
    let (path, query) = match head.target.split_once('?') {
        Some((p, q)) => (p.to_string(), q.to_string()),
        None => (head.target.clone(), String::new()),
    };
    let mut record = Recorded {
        method: head.method.clone(),
        path,
        query,
        version: head.version,
        headers: head.headers.clone(),
        chunked: false,
        body: Vec::new(),
        received_at: Instant::now(),
        status: None,
        push: None,
    };
    let close_requested = wants_close(&head);
    let limit = shared.config.body_limit;
    let push_route = record.path == format!("{}{PUSH_PATH}", shared.config.path_prefix);

    // Body framing (RFC 9112 §6); the gateway must frame its upstream requests correctly.
    let framing = body_framing(&head);
    let body = match framing {
        Err(reject) => Err(Rejection {
            status: reject.status,
            content_type: "text/plain; charset=utf-8",
            body: reject.message.as_bytes().to_vec(),
        }),
        Ok(Framing::Length(n)) if n > limit as u64 => Err(too_large(push_route)),
        Ok(Framing::Length(n)) => {
            // `n <= limit`, which fits in usize.
            let n = usize::try_from(n).unwrap_or(usize::MAX);
            if !conn.need(n) {
                return false;
            }
            Ok(conn.take(n))
        }
        Ok(Framing::Chunked) => {
            record.chunked = true;
            read_chunked(conn, limit).map_err(|status| {
                if status == 413 {
                    too_large(push_route)
                } else {
                    Rejection {
                        status,
                        content_type: "text/plain; charset=utf-8",
                        body: b"request body too large\n".to_vec(),
                    }
                }
            })
        }
    };
    // A body the mock will not take ends the connection after the refusal.
    let body = match body {
        Ok(body) => body,
        Err(reject) => {
            return answer_recorded(
                conn,
                shared,
                record,
                reject.status,
                reject.content_type,
                &reject.body,
                true,
            );
        }
    };
    record.body = body;
    record.received_at = Instant::now();

    if push_route {
        return serve_push(conn, shared, record, close_requested);
    }

    // Pyroscope's own acceptance rules.
    if let Err(err) = validate(&shared.config.path_prefix, &record) {
        return answer_recorded(
            conn,
            shared,
            record,
            err.status,
            err.content_type,
            &err.body,
            close_requested,
        );
    }

    let Some((status, retry_after)) = play_next_action(shared, record) else {
        return false;
    };
    let (content_type, body) = if status == 200 {
        ("text/plain; charset=utf-8", Vec::new())
    } else {
        (
            "application/json",
            json_error(connect_code(status), status_text(status)),
        )
    };
    write_response(
        &mut conn.stream,
        status,
        content_type,
        &body,
        retry_after.as_deref(),
        close_requested,
    )
    .is_ok()
        && !close_requested
}

/// Records `record` as answered `status`, then writes that answer (with `Connection: close`
/// when `close`); whether the connection stays open: only if the write went through and
/// `close` is false.
fn answer_recorded(
    conn: &mut Conn,
    shared: &Shared,
    mut record: Recorded,
    status: u16,
    content_type: &str,
    body: &[u8],
    close: bool,
) -> bool {
    record.status = Some(status);
    finish_record(shared, record);
    write_response(&mut conn.stream, status, content_type, body, None, close).is_ok() && !close
}

/// Plays the next scripted [`Action`] (or the default) for a request that passed validation:
/// records it, then waits out a `Respond` delay, hangs, or gives up. `Some((status,
/// retry_after))` when an answer is to be written; `None` when the connection is to be
/// closed unanswered (`Close`, `Hang`, or the mock shutting down mid-delay).
fn play_next_action(shared: &Shared, mut record: Recorded) -> Option<(u16, Option<String>)> {
    let action = lock(&shared.script)
        .pop_front()
        .unwrap_or_else(|| lock(&shared.default_action).clone());
    match action {
        Action::Respond {
            status,
            retry_after,
            delay,
        } => {
            record.status = Some(status);
            finish_record(shared, record);
            if !delay.is_zero() && interruptible_sleep(shared, delay) {
                return None;
            }
            Some((status, retry_after))
        }
        Action::Hang => {
            finish_record(shared, record);
            interruptible_sleep(shared, MAX_HANG);
            None
        }
        Action::Close => {
            finish_record(shared, record);
            None
        }
    }
}

/// The answer to a body over the mock's limit: Pyroscope's 413 on `/ingest`; on Push,
/// connect-go's `WithReadMaxBytes` error, `resource_exhausted` (HTTP 429).
fn too_large(push_route: bool) -> Rejection {
    if push_route {
        Rejection::json(
            429,
            "resource_exhausted",
            "request message size is larger than configured max",
        )
    } else {
        Rejection {
            status: 413,
            content_type: "text/plain; charset=utf-8",
            body: b"request body too large\n".to_vec(),
        }
    }
}

/// The content types connect-go lists in `Accept-Post` on a 415 for a unary procedure.
const ACCEPT_POST: &str = "application/grpc, application/grpc+json, application/grpc+proto, application/grpc-web, application/grpc-web+json, application/grpc-web+proto, application/json, application/proto";

/// Most digits connect-go accepts in `Connect-Timeout-Ms` (Connect protocol spec: "Timeout →
/// positive integer of at most 10 digits").
const MAX_TIMEOUT_DIGITS: usize = 10;

/// The codec of an accepted Connect unary push, by its Content-Type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushCodec {
    /// `application/proto`.
    Proto,
    /// `application/json` (protojson).
    Json,
}

/// What Pyroscope's connect-go handler does with one request to the Push route, up to the
/// point where it would store the profiles: the decoded message (when the body decompressed
/// and decoded) and either the codec of an accepted push or the error answer.
pub fn accept_push(
    body_limit: usize,
    req: &Recorded,
) -> (Option<PushRequest>, Result<PushCodec, Rejection>) {
    let plain = |status: u16| Rejection {
        status,
        content_type: "text/plain; charset=utf-8",
        body: Vec::new(),
    };
    let invalid = |message: String| Rejection::json(400, "invalid_argument", &message);
    if req.method != "POST" {
        return (None, Err(plain(405)));
    }
    let media = req
        .header("content-type")
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let codec = match media.as_str() {
        "application/proto" => PushCodec::Proto,
        "application/json" => PushCodec::Json,
        _ => return (None, Err(plain(415))),
    };
    if let Some(version) = req.header("connect-protocol-version")
        && version != "1"
    {
        return (
            None,
            Err(invalid(format!(
                "connect-protocol-version must be \"1\": got {version:?}"
            ))),
        );
    }
    if let Some(timeout) = req.header("connect-timeout-ms")
        && (timeout.is_empty()
            || timeout.len() > MAX_TIMEOUT_DIGITS
            || !timeout.bytes().all(|b| b.is_ascii_digit()))
    {
        return (
            None,
            Err(invalid(format!(
                "protocol error: invalid timeout {timeout:?}"
            ))),
        );
    }
    let encoding = req.header("content-encoding").unwrap_or("").trim();
    let message = match encoding {
        "" | "identity" => req.body.clone(),
        "gzip" => match push::gunzip_bounded(&req.body, body_limit) {
            Ok(inflated) => inflated,
            Err(Gunzip::TooLarge) => return (None, Err(too_large(true))),
            Err(Gunzip::Corrupt(e)) => return (None, Err(invalid(format!("decompress: {e}")))),
        },
        other => {
            return (
                None,
                Err(Rejection::json(
                    501,
                    "unimplemented",
                    &format!("unknown compression {other:?}: supported encodings are gzip"),
                )),
            );
        }
    };
    let decoded = match codec {
        PushCodec::Proto => PushRequest::decode(&message),
        PushCodec::Json => PushRequest::from_json(&message),
    };
    let decoded = match decoded {
        Ok(d) => d,
        Err(e) => {
            return (
                None,
                Err(invalid(format!("unmarshal into *v1.PushRequest: {e}"))),
            );
        }
    };
    let verdict = push::validate_push(&decoded)
        .map(|()| codec)
        .map_err(invalid);
    (Some(decoded), verdict)
}

/// Answers one request to the Push route (Connect unary), as Pyroscope would.
fn serve_push(
    conn: &mut Conn,
    shared: &Shared,
    mut record: Recorded,
    close_requested: bool,
) -> bool {
    let (decoded, verdict) = accept_push(shared.config.body_limit, &record);
    record.push = decoded;
    let keep_alive = |written: std::io::Result<()>| written.is_ok() && !close_requested;
    let codec = match verdict {
        Ok(codec) => codec,
        Err(reject) => {
            record.status = Some(reject.status);
            finish_record(shared, record);
            let extra: &[(&str, &str)] = match reject.status {
                405 => &[("Allow", "POST")],
                415 => &[("Accept-Post", ACCEPT_POST)],
                _ => &[],
            };
            let content_type = (!reject.body.is_empty()).then_some(reject.content_type);
            return keep_alive(write_push_response(
                &mut conn.stream,
                reject.status,
                content_type,
                &reject.body,
                extra,
                close_requested,
            ));
        }
    };
    let Some((status, retry_after)) = play_next_action(shared, record) else {
        return false;
    };
    let (content_type, body) = match (status, codec) {
        (200, PushCodec::Proto) => ("application/proto", Vec::new()),
        (200, PushCodec::Json) => ("application/json", b"{}".to_vec()),
        _ => (
            "application/json",
            json_error(push::connect_code_for_status(status), status_text(status)),
        ),
    };
    let mut extra: Vec<(&str, &str)> = Vec::new();
    if let Some(ra) = retry_after.as_deref() {
        extra.push(("Retry-After", ra));
    }
    keep_alive(write_push_response(
        &mut conn.stream,
        status,
        Some(content_type),
        &body,
        &extra,
        close_requested,
    ))
}

/// Writes one answer: the status line, `content_type` if any, the `extra` headers, then
/// `Connection: close` when `close`, Content-Length and the body. Connect answers call it
/// directly (a success carries a Content-Type with an empty body); `/ingest` answers through
/// [`write_response`].
fn write_push_response(
    stream: &mut TcpStream,
    status: u16,
    content_type: Option<&str>,
    body: &[u8],
    extra: &[(&str, &str)],
    close: bool,
) -> std::io::Result<()> {
    let mut out = format!("HTTP/1.1 {status} {}\r\n", status_text(status));
    if let Some(ct) = content_type {
        out.push_str(&format!("Content-Type: {ct}\r\n"));
    }
    for (name, value) in extra {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    if close {
        out.push_str("Connection: close\r\n");
    }
    out.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(body);
    stream.write_all(&bytes)?;
    stream.flush()
}

fn finish_record(shared: &Shared, record: Recorded) {
    lock(&shared.recorded).push(record);
    shared.recorded_cv.notify_all();
}

/// Sleeps up to `d`; returns `true` if the mock is shutting down.
fn interruptible_sleep(shared: &Shared, d: Duration) -> bool {
    let deadline = Instant::now() + d;
    let mut guard = lock(&shared.shutdown_lock);
    loop {
        if shared.shutdown.load(Ordering::SeqCst) {
            return true;
        }
        let now = Instant::now();
        if now >= deadline {
            return false;
        }
        guard = shared
            .shutdown_cv
            .wait_timeout(guard, deadline - now)
            .unwrap_or_else(|e| e.into_inner())
            .0;
    }
}

/// Reads one request head; `Ok(None)` on a clean EOF between requests.
fn read_head(conn: &mut Conn) -> Result<Option<Head>, Reject> {
    loop {
        if let Some(end) = find(&conn.buf, b"\r\n\r\n") {
            let head_bytes = conn.take(end + 4);
            return parse_head(&head_bytes).map(Some);
        }
        if conn.buf.len() > MAX_HEAD_BYTES {
            return Err(Reject {
                status: 431,
                message: "431 Request Header Fields Too Large",
            });
        }
        if !conn.fill() {
            return Ok(None);
        }
    }
}

fn parse_head(bytes: &[u8]) -> Result<Head, Reject> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let bad = Reject {
        status: 400,
        message: "400 Bad Request",
    };
    match req.parse(bytes) {
        Ok(httparse::Status::Complete(_)) => {}
        Err(httparse::Error::TooManyHeaders) => {
            return Err(Reject {
                status: 431,
                message: "431 Request Header Fields Too Large",
            });
        }
        _ => return Err(bad),
    }
    let method = req.method.unwrap_or_default().to_string();
    let target = req.path.unwrap_or_default().to_string();
    let version = req.version.unwrap_or(1);
    let mut out = Vec::with_capacity(req.headers.len());
    for h in req.headers.iter() {
        let Ok(value) = std::str::from_utf8(h.value) else {
            return Err(bad);
        };
        out.push((h.name.to_string(), value.to_string()));
    }
    let head = Head {
        method,
        target,
        version,
        headers: out,
    };
    // Go's server: an HTTP/1.1 request needs exactly one Host.
    let hosts = head
        .headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("host"))
        .count();
    if head.version == 1 && hosts != 1 {
        return Err(Reject {
            status: 400,
            message: "400 Bad Request: missing required Host header",
        });
    }
    Ok(head)
}

fn wants_close(head: &Head) -> bool {
    let connection: Vec<String> = head
        .headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("connection"))
        .map(|(_, v)| v.to_ascii_lowercase())
        .collect();
    if head.version == 0 {
        !connection.iter().any(|v| v.contains("keep-alive"))
    } else {
        connection.iter().any(|v| v.contains("close"))
    }
}

enum Framing {
    Length(u64),
    Chunked,
}

fn body_framing(head: &Head) -> Result<Framing, Reject> {
    let te: Vec<&str> = head
        .headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("transfer-encoding"))
        .map(|(_, v)| v.as_str())
        .collect();
    let cl: Vec<&str> = head
        .headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .map(|(_, v)| v.as_str())
        .collect();
    if !te.is_empty() {
        if !cl.is_empty() {
            return Err(Reject {
                status: 400,
                message: "400 Bad Request: Content-Length with Transfer-Encoding",
            });
        }
        if te.len() == 1 && te[0].trim().eq_ignore_ascii_case("chunked") {
            return Ok(Framing::Chunked);
        }
        return Err(Reject {
            status: 501,
            message: "501 Not Implemented: unsupported transfer encoding",
        });
    }
    match cl.as_slice() {
        [] => Ok(Framing::Length(0)),
        [one] => one
            .trim()
            .parse::<u64>()
            .ok()
            .filter(|_| one.trim().bytes().all(|b| b.is_ascii_digit()))
            .map(Framing::Length)
            .ok_or(Reject {
                status: 400,
                message: "400 Bad Request: bad Content-Length",
            }),
        _ => Err(Reject {
            status: 400,
            message: "400 Bad Request: more than one Content-Length",
        }),
    }
}

/// Reads a chunked body; `Err(413)` once it exceeds `limit`, `Err(400)` if malformed.
fn read_chunked(conn: &mut Conn, limit: usize) -> Result<Vec<u8>, u16> {
    let mut body = Vec::new();
    loop {
        let (consumed, size) = loop {
            match httparse::parse_chunk_size(&conn.buf) {
                Ok(httparse::Status::Complete(v)) => break v,
                Ok(httparse::Status::Partial) => {
                    if conn.buf.len() > 4096 || !conn.fill() {
                        return Err(400);
                    }
                }
                Err(_) => return Err(400),
            }
        };
        conn.take(consumed);
        let size = usize::try_from(size).map_err(|_| 413u16)?;
        if size == 0 {
            // Trailer section, ended by an empty line.
            loop {
                let Some(end) = find(&conn.buf, b"\r\n") else {
                    if conn.buf.len() > 4096 || !conn.fill() {
                        return Err(400);
                    }
                    continue;
                };
                let line = conn.take(end + 2);
                if line.len() == 2 {
                    return Ok(body);
                }
            }
        }
        if body.len().saturating_add(size) > limit {
            return Err(413);
        }
        if !conn.need(size + 2) {
            return Err(400);
        }
        let data = conn.take(size + 2);
        if &data[size..] != b"\r\n" {
            return Err(400);
        }
        body.extend_from_slice(&data[..size]);
    }
}

/// An `/ingest` answer: a Content-Type only with a body, `Retry-After` when given.
fn write_response(
    stream: &mut TcpStream,
    status: u16,
    content_type: &str,
    body: &[u8],
    retry_after: Option<&str>,
    close: bool,
) -> std::io::Result<()> {
    let content_type = (!body.is_empty()).then_some(content_type);
    let extra = retry_after.map(|ra| ("Retry-After", ra));
    write_push_response(stream, status, content_type, body, extra.as_slice(), close)
}

/// Go's `http.StatusText` for the statuses the tests use.
pub fn status_text(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        413 => "Request Entity Too Large",
        422 => "Unprocessable Entity",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Unknown",
    }
}

/// The connect code Pyroscope's error JSON would carry for a status.
fn connect_code(status: u16) -> &'static str {
    match status {
        400 => "invalid_argument",
        401 => "unauthenticated",
        403 => "permission_denied",
        404 => "not_found",
        408 => "deadline_exceeded",
        413 | 429 => "resource_exhausted",
        501 => "unimplemented",
        503 => "unavailable",
        _ => "unknown",
    }
}

/// An error answer of the mock, in Pyroscope's shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
}

impl Rejection {
    pub fn json(status: u16, code: &str, message: &str) -> Rejection {
        Rejection {
            status,
            content_type: "application/json",
            body: json_error(code, message),
        }
    }
}

/// `{"code":"<code>","message":"<message>"}` as Pyroscope's `pkg/util/http/error.go` writes it.
pub fn json_error(code: &str, message: &str) -> Vec<u8> {
    let mut out = String::from("{\"code\":\"");
    json_escape_into(&mut out, code);
    out.push_str("\",\"message\":\"");
    json_escape_into(&mut out, message);
    out.push_str("\"}");
    out.into_bytes()
}

fn json_escape_into(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
}

/// Applies Pyroscope's `/ingest` rules to a fully received request: routing, `name`,
/// text-format profile type, multipart parts. `Ok` means Pyroscope would accept it.
pub fn validate(path_prefix: &str, req: &Recorded) -> Result<(), Rejection> {
    let ingest = format!("{path_prefix}/ingest");
    let pyroscope_ingest = format!("{path_prefix}/pyroscope/ingest");
    if req.path != ingest && req.path != pyroscope_ingest {
        return Err(Rejection {
            status: 404,
            content_type: "text/plain; charset=utf-8",
            body: b"404 page not found\n".to_vec(),
        });
    }
    if req.method != "POST" {
        return Err(Rejection {
            status: 405,
            content_type: "text/plain; charset=utf-8",
            body: Vec::new(),
        });
    }
    let query = parse_query(&req.query);
    let first = |key: &str| {
        query
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    };
    let name = first("name").unwrap_or("");
    let labels = parse_labelset(name)
        .map_err(|e| Rejection::json(400, "invalid_argument", &format!("name: {e}")))?;
    let format = first("format").unwrap_or("");
    let content_type = req.header("content-type").unwrap_or("");
    let multipart = content_type.contains("multipart/form-data");
    let bad = |msg: String| Rejection::json(422, "invalid_argument", &msg);
    match format {
        "jfr" => {
            if multipart {
                let parts = parse_multipart(content_type, &req.body).map_err(bad)?;
                require_file_part(&parts, "jfr").map_err(bad)?;
            }
        }
        "pprof" => {
            if multipart {
                return Err(bad(
                    "failed to parse pprof: multipart body with format=pprof".into(),
                ));
            }
        }
        "speedscope" => {}
        _ if multipart => {
            let parts = parse_multipart(content_type, &req.body).map_err(bad)?;
            require_file_part(&parts, "profile").map_err(bad)?;
            if parts
                .iter()
                .any(|p| p.name == "prev_profile" && p.filename.is_some() && p.len > 0)
            {
                return Err(bad("unsupported client version".into()));
            }
        }
        _ => {
            // Text formats take the profile type from the app name's last dot-suffix.
            let app = labels
                .iter()
                .find(|(k, _)| k == "__name__")
                .map(|(_, v)| v.as_str())
                .unwrap_or("");
            let profile_type = app.rsplit_once('.').map(|(_, s)| s).unwrap_or("cpu");
            if !KNOWN_PROFILE_TYPES.contains(&profile_type) {
                return Err(Rejection::json(
                    400,
                    "invalid_argument",
                    &format!("unknown profile type: {profile_type}"),
                ));
            }
            if format.is_empty() || format == "folded" || format == "groups" {
                check_folded(&req.body).map_err(bad)?;
            }
        }
    }
    Ok(())
}

/// Folded lines `a;b;c 10`: split at the last space, the count must be an integer
/// (`strconv.Atoi`); a line without a space is skipped.
fn check_folded(body: &[u8]) -> Result<(), String> {
    for line in body.split(|&b| b == b'\n') {
        let Some(pos) = line.iter().rposition(|&b| b == b' ') else {
            continue;
        };
        let count = &line[pos + 1..];
        let digits = count.strip_prefix(b"-").unwrap_or(count);
        let digits = digits.strip_prefix(b"+").unwrap_or(digits);
        if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
            return Err(format!(
                "strconv.Atoi: parsing {:?}: invalid syntax",
                String::from_utf8_lossy(count)
            ));
        }
    }
    Ok(())
}

/// One multipart part, as Go's `multipart.Reader` would see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    pub name: String,
    pub filename: Option<String>,
    pub len: usize,
}

fn require_file_part(parts: &[Part], name: &str) -> Result<(), String> {
    // `form.File[name]`: only parts with a filename count, and an empty one is absent.
    if parts
        .iter()
        .any(|p| p.name == name && p.filename.is_some() && p.len > 0)
    {
        Ok(())
    } else {
        Err(format!("{name} is required"))
    }
}

/// Splits a `multipart/form-data` body into its parts (RFC 7578).
pub fn parse_multipart(content_type: &str, body: &[u8]) -> Result<Vec<Part>, String> {
    let boundary = content_type
        .split(';')
        .map(str::trim)
        .find_map(|p| p.strip_prefix("boundary="))
        .map(|b| b.trim_matches('"'))
        .filter(|b| !b.is_empty())
        .ok_or_else(|| "no multipart boundary param in Content-Type".to_string())?;
    let delim = format!("--{boundary}").into_bytes();
    let mut pos = find(body, &delim).ok_or("multipart: NextPart: EOF")?;
    let mut parts = Vec::new();
    loop {
        let after = pos + delim.len();
        let rest = body.get(after..).ok_or("multipart: truncated")?;
        if rest.starts_with(b"--") {
            return Ok(parts);
        }
        let rest = rest
            .strip_prefix(b"\r\n")
            .ok_or("multipart: malformed boundary line")?;
        let part_start = after + 2;
        let head_end = find(rest, b"\r\n\r\n").ok_or("multipart: malformed part header")?;
        let head = String::from_utf8_lossy(&rest[..head_end]).into_owned();
        let data_start = part_start + head_end + 4;
        let mut next_delim = b"\r\n".to_vec();
        next_delim.extend_from_slice(&delim);
        let data_len = find(body.get(data_start..).unwrap_or(&[]), &next_delim)
            .ok_or("multipart: NextPart: EOF")?;
        let mut name = String::new();
        let mut filename = None;
        for line in head.split("\r\n") {
            let Some((hname, value)) = line.split_once(':') else {
                continue;
            };
            if !hname.trim().eq_ignore_ascii_case("content-disposition") {
                continue;
            }
            for param in value.split(';').map(str::trim) {
                if let Some(v) = param.strip_prefix("name=") {
                    name = v.trim_matches('"').to_string();
                } else if let Some(v) = param.strip_prefix("filename=") {
                    filename = Some(v.trim_matches('"').to_string());
                }
            }
        }
        parts.push(Part {
            name,
            filename,
            len: data_len,
        });
        pos = data_start + data_len + 2;
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || haystack.len() < needle.len() {
        return None;
    }
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Go's `url.ParseQuery` as `r.URL.Query()` uses it: pairs split on `&`, a pair containing `;`
/// or a malformed `%` escape is dropped, `+` is a space.
pub fn parse_query(raw: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for pair in raw.split('&') {
        if pair.is_empty() || pair.contains(';') {
            continue;
        }
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let (Some(k), Some(v)) = (query_unescape(k), query_unescape(v)) else {
            continue;
        };
        out.push((k, v));
    }
    out
}

/// Go's `url.QueryUnescape`; `None` on a malformed escape.
pub fn query_unescape(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hi = bytes.get(i + 1).and_then(|b| (*b as char).to_digit(16))?;
                let lo = bytes.get(i + 2).and_then(|b| (*b as char).to_digit(16))?;
                out.push((hi * 16 + lo) as u8);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    Some(String::from_utf8_lossy(&out).into_owned())
}

/// Pyroscope's `labelset.Parse`: a rune state machine over `name + "{"`. Returns the labels
/// (`__name__` = app name) sorted by key, or the error text Pyroscope would put after `name: `.
pub fn parse_labelset(name: &str) -> Result<Vec<(String, String)>, String> {
    enum State {
        App,
        Key,
        Value,
        Done,
    }
    let mut labels: Vec<(String, String)> = Vec::new();
    let set = |labels: &mut Vec<(String, String)>, k: String, v: String| {
        if let Some(slot) = labels.iter_mut().find(|(key, _)| *key == k) {
            slot.1 = v;
        } else {
            labels.push((k, v));
        }
    };
    let mut state = State::App;
    let mut key = String::new();
    let mut value = String::new();
    let input = format!("{name}{{");
    for c in input.chars() {
        match state {
            State::App => {
                if c == '{' {
                    let app = value.trim().to_string();
                    validate_service_name(&app)?;
                    set(&mut labels, "__name__".into(), app);
                    value.clear();
                    state = State::Key;
                } else {
                    value.push(c);
                }
            }
            State::Key => match c {
                '}' => state = State::Done,
                '=' => {
                    state = State::Value;
                    value.clear();
                }
                c => key.push(c),
            },
            State::Value => match c {
                ',' | '}' => {
                    let k = key.trim().to_string();
                    if k != "__name__" {
                        validate_label_name(&k)?;
                    }
                    set(&mut labels, k, value.trim().to_string());
                    key.clear();
                    value.clear();
                    state = State::Key;
                }
                c => value.push(c),
            },
            State::Done => break,
        }
    }
    labels.sort();
    Ok(labels)
}

/// `labelset.Normalized()`: `app{k1=v1,k2=v2}` with keys sorted.
pub fn normalized(labels: &[(String, String)]) -> String {
    let app = labels
        .iter()
        .find(|(k, _)| k == "__name__")
        .map(|(_, v)| v.as_str())
        .unwrap_or("");
    let rest: Vec<String> = labels
        .iter()
        .filter(|(k, _)| k != "__name__")
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    format!("{app}{{{}}}", rest.join(","))
}

fn validate_service_name(app: &str) -> Result<(), String> {
    if app.is_empty() {
        return Err("service name is required".into());
    }
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-' | '/');
    match app.chars().find(|&c| !allowed(c)) {
        Some(c) => Err(format!(
            "invalid service name: {app}: character is not allowed: {}",
            go_quote_rune(c)
        )),
        None => Ok(()),
    }
}

fn validate_label_name(key: &str) -> Result<(), String> {
    if key.is_empty() {
        return Err("label name is required".into());
    }
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '.');
    match key.chars().find(|&c| !allowed(c)) {
        Some(c) => Err(format!(
            "invalid label name: {key}: character is not allowed: {}",
            go_quote_rune(c)
        )),
        None => Ok(()),
    }
}

/// Go's `%q` of a rune (`strconv.QuoteRune`), for the characters the tests meet.
fn go_quote_rune(c: char) -> String {
    match c {
        '\'' => "'\\''".into(),
        '\\' => "'\\\\'".into(),
        '\t' => "'\\t'".into(),
        '\n' => "'\\n'".into(),
        '\r' => "'\\r'".into(),
        c if c.is_control() || is_go_unprintable_format(c) => {
            if (c as u32) <= 0xFFFF {
                format!("'\\u{:04x}'", c as u32)
            } else {
                format!("'\\U{:08x}'", c as u32)
            }
        }
        c => format!("'{c}'"),
    }
}

/// Unicode format characters (category Cf) Go does not print literally.
fn is_go_unprintable_format(c: char) -> bool {
    matches!(c as u32, 0xAD | 0x200B..=0x200F | 0x2028..=0x202E | 0x2060..=0x2064 | 0xFEFF)
}
