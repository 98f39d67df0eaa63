//! `MockPyroscope`: the one in-process stand-in for a Pyroscope server's `/ingest` and Connect
//! Push endpoints, used by pyrogate's end-to-end tests and by loadtest's sink.
//!
//! Owns: a loopback HTTP/1.1 server over plain TCP or TLS (rustls) — keep-alive, pipelining,
//! Content-Length and chunked request bodies, `Expect: 100-continue`, Go's framing refusals —
//! that judges every request with Pyroscope's rules ([`crate::rules`]) unless told to accept
//! anything, then answers accepted ones from a script ([`Action`]s: status, `Retry-After`,
//! delay, hang, close, reset, an answer cut off inside its body), else from seeded random [`Faults`], else from a default action;
//! a recorder of requests ([`Recorded`], a push also decoded), [`Counters`], a handshake-failure
//! count, and two hooks: a [`Handler`] that may answer a request itself (extra routes,
//! redirects) and an [`Inspector`] that sees the profile payloads of accepted requests and may
//! refuse them. Does not decode pprof or JFR, and serves no gRPC or gRPC-Web (the gateway speaks
//! Connect upstream). Test code: one std thread per connection, blocking sockets, every read
//! bounded; torn down on [`MockPyroscope::stop`] or drop.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io::{self, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::bodies::Prng;
use crate::faults::Faults;
use crate::http::{
    self, HeadError, find, head_end, header_value, header_values, parse_chunk_size,
    parse_request_head, response_bytes, status_text,
};
use crate::push::PushRequest;
use crate::rules::{
    self, Accepted, DEFAULT_BODY_LIMIT, PushCodec, Rejection, Route, connect_code_for_status,
};

/// Largest request head the stand-in buffers (Go's `http.DefaultMaxHeaderBytes`, 1 MiB).
const MAX_HEAD_BYTES: usize = 1024 * 1024;
/// How long a `Hang` (or an idle connection) lasts at most if the stand-in is never stopped.
const MAX_HANG: Duration = Duration::from_secs(120);
/// Open connections served at once by default.
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;

/// What the stand-in does with a request that passed Pyroscope's rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Wait `delay`, then answer `status` (with `Retry-After: <retry_after>` if set).
    Respond {
        status: u16,
        retry_after: Option<String>,
        delay: Duration,
    },
    /// Never answer; keep the connection open until the stand-in stops (at most 120 s).
    Hang,
    /// No answer for this long, then close the connection.
    HangFor(Duration),
    /// Close the connection without answering (FIN).
    Close,
    /// Reset the connection without answering (RST: `SO_LINGER` 0).
    Reset,
    /// Start an answer that never completes: a head with `status` and
    /// `Content-Length: declared`, only the first `sent` bytes of that body (`sent < declared`),
    /// then `end`. Recorded with status `None` (no answer was given) and counted in
    /// [`Counters::truncated`]. See [`Action::truncated`].
    Truncated {
        status: u16,
        declared: usize,
        sent: usize,
        end: Truncation,
    },
}

/// How a [`Action::Truncated`] answer ends after its partial body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Truncation {
    /// Close the connection (FIN): the client reads end-of-stream inside the body.
    Close,
    /// Reset the connection (RST: `SO_LINGER` 0).
    Reset,
    /// Send nothing more; keep the connection open until the stand-in stops (at most 120 s).
    Hang,
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

    /// A `status` answer whose head declares a 64-byte body of which only 32 bytes are sent,
    /// then `end`.
    pub fn truncated(status: u16, end: Truncation) -> Action {
        Action::Truncated {
            status,
            declared: 64,
            sent: 32,
            end,
        }
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

/// One request the stand-in received, as it arrived on the wire.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    /// The request-target as sent (`path?query`).
    pub target: String,
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
    /// What the stand-in answered; `None` when it hung, closed or reset the connection.
    pub status: Option<u16>,
    /// For a Push request: the decoded PushRequest (labels in wire order), when the body
    /// decompressed and decoded; `None` for every other request.
    pub push: Option<PushRequest>,
}

impl Recorded {
    /// The first value of a header (names compared case-insensitively).
    pub fn header(&self, name: &str) -> Option<&str> {
        header_value(&self.headers, name)
    }

    /// Every value of a header, in order.
    pub fn header_all(&self, name: &str) -> Vec<&str> {
        header_values(&self.headers, name)
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

/// What the stand-in counted since it started.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counters {
    /// Requests answered or dropped by an action (handler-answered ones excluded).
    pub requests: u64,
    /// Body bytes of the requests answered with a status.
    pub body_bytes: u64,
    /// Answers by status (refusals, scripted and injected ones included).
    pub statuses: BTreeMap<u16, u64>,
    pub resets: u64,
    pub hangs: u64,
    /// Answers started and never completed ([`Action::Truncated`]).
    pub truncated: u64,
    pub connections: u64,
    /// Connections closed on accept because `max_connections` were open.
    pub refused_connections: u64,
    /// `(requests, body bytes)` per canonical label set of answered accepted requests.
    pub label_sets: HashMap<String, (u64, u64)>,
}

/// What a [`Handler`] can see of the stand-in besides the request.
#[derive(Debug)]
pub struct ServerView<'a> {
    /// The stand-in's own address.
    pub addr: SocketAddr,
    shared: &'a Shared,
}

impl ServerView<'_> {
    /// A copy of the counters now.
    pub fn counters(&self) -> Counters {
        lock(&self.shared.counters).clone()
    }
}

/// Answers a request before Pyroscope's rules see it: `Some(full response bytes)` to answer
/// (the request is recorded, not counted), `None` to go on as usual.
pub type Handler = Arc<dyn Fn(&Recorded, &ServerView<'_>) -> Option<Vec<u8>> + Send + Sync>;

/// Called once the answer status of an accepted request is known (not for resets, hangs or
/// closes).
pub type OnAnswer = Box<dyn FnOnce(u16) + Send>;

/// Sees the profile payloads of each request that passed Pyroscope's rules (`/ingest`: the
/// body; Push: every `raw_profile`): `Err(message)` refuses it with 422, `Ok(callback)` lets it
/// through and is told the final status.
pub type Inspector = Arc<dyn Fn(&[&[u8]]) -> Result<OnAnswer, String> + Send + Sync>;

/// Builder for a [`MockPyroscope`].
#[derive(Clone)]
pub struct MockBuilder {
    listen: SocketAddr,
    body_limit: usize,
    path_prefix: String,
    default_action: Action,
    faults: Option<(Faults, u64)>,
    tls: Option<Arc<rustls::ServerConfig>>,
    rules: bool,
    record: bool,
    max_connections: usize,
    handler: Option<Handler>,
    inspector: Option<Inspector>,
}

impl std::fmt::Debug for MockBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MockBuilder")
            .field("listen", &self.listen)
            .field("body_limit", &self.body_limit)
            .field("path_prefix", &self.path_prefix)
            .field("default_action", &self.default_action)
            .field("faults", &self.faults)
            .field("tls", &self.tls.is_some())
            .field("rules", &self.rules)
            .field("record", &self.record)
            .field("max_connections", &self.max_connections)
            .field("handler", &self.handler.is_some())
            .field("inspector", &self.inspector.is_some())
            .finish()
    }
}

impl MockBuilder {
    /// Where to listen (default `127.0.0.1:0`).
    pub fn listen(mut self, addr: SocketAddr) -> Self {
        self.listen = addr;
        self
    }

    /// Bodies larger than this are refused (default: Pyroscope's 256 MiB): 413 on `/ingest`,
    /// `resource_exhausted` on Push.
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

    /// What to do with valid requests once the script is used up and no faults are set
    /// (default: 200).
    pub fn default_action(mut self, action: Action) -> Self {
        self.default_action = action;
        self
    }

    /// Random faults for valid requests without a scripted action, drawn per connection from
    /// `Prng::new(seed ^ connection_index * 0x9E37_79B9)` (connections count from 1).
    pub fn faults(mut self, faults: Faults, seed: u64) -> Self {
        self.faults = Some((faults, seed));
        self
    }

    /// Serve HTTPS with these settings (see [`crate::tls::Pki::server_config`]).
    pub fn tls(mut self, config: Arc<rustls::ServerConfig>) -> Self {
        self.tls = Some(config);
        self
    }

    /// Accept every request on every path without Pyroscope's rules: a plain recording
    /// upstream (for transport tests whose bodies are not profiles).
    pub fn accept_anything(mut self) -> Self {
        self.rules = false;
        self
    }

    /// Whether to keep every request for [`MockPyroscope::requests`] (default: yes; a load
    /// test turns it off and reads [`MockPyroscope::counters`]).
    pub fn record(mut self, record: bool) -> Self {
        self.record = record;
        self
    }

    /// Open connections served at once; more are closed on accept and counted.
    pub fn max_connections(mut self, n: usize) -> Self {
        self.max_connections = n;
        self
    }

    /// See [`Handler`].
    pub fn handler(mut self, handler: Handler) -> Self {
        self.handler = Some(handler);
        self
    }

    /// See [`Inspector`].
    pub fn inspector(mut self, inspector: Inspector) -> Self {
        self.inspector = Some(inspector);
        self
    }

    /// Binds and starts serving; panics if the address cannot be bound.
    pub fn start(self) -> MockPyroscope {
        self.try_start().expect("bind the Pyroscope stand-in")
    }

    /// Binds and starts serving.
    pub fn try_start(self) -> io::Result<MockPyroscope> {
        MockPyroscope::start_with(self)
    }
}

#[derive(Debug)]
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
    counters: Mutex<Counters>,
    handshake_failures: AtomicUsize,
    active: AtomicUsize,
    /// Open connections by index, for shutting them down on stop.
    connections: Mutex<HashMap<u64, TcpStream>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    next_connection: AtomicU64,
}

/// A Pyroscope stand-in listening on `127.0.0.1:<ephemeral>` (or the builder's address);
/// stops when dropped.
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
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            body_limit: DEFAULT_BODY_LIMIT,
            path_prefix: String::new(),
            default_action: Action::ok(),
            faults: None,
            tls: None,
            rules: true,
            record: true,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            handler: None,
            inspector: None,
        }
    }

    /// A stand-in with default settings that answers 200 to every valid upload.
    pub fn start() -> MockPyroscope {
        Self::builder().start()
    }

    fn start_with(config: MockBuilder) -> io::Result<MockPyroscope> {
        let listener = TcpListener::bind(config.listen)?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            default_action: Mutex::new(config.default_action.clone()),
            config,
            shutdown: AtomicBool::new(false),
            shutdown_lock: Mutex::new(()),
            shutdown_cv: Condvar::new(),
            script: Mutex::new(VecDeque::new()),
            recorded: Mutex::new(Vec::new()),
            recorded_cv: Condvar::new(),
            counters: Mutex::new(Counters::default()),
            handshake_failures: AtomicUsize::new(0),
            active: AtomicUsize::new(0),
            connections: Mutex::new(HashMap::new()),
            threads: Mutex::new(Vec::new()),
            next_connection: AtomicU64::new(0),
        });
        let accept_shared = Arc::clone(&shared);
        let acceptor = std::thread::Builder::new()
            .name("mock-accept".into())
            .spawn(move || accept_loop(listener, addr, accept_shared))?;
        Ok(MockPyroscope {
            addr,
            shared,
            acceptor: Some(acceptor),
        })
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

    /// A copy of the counters now.
    pub fn counters(&self) -> Counters {
        lock(&self.shared.counters).clone()
    }

    /// TLS handshakes that failed (a client refused the certificate or had none to give).
    pub fn handshake_failures(&self) -> usize {
        self.shared.handshake_failures.load(Ordering::SeqCst)
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
                    "Pyroscope stand-in {}: waited {timeout:?} for {n} requests, got {}: {:#?}",
                    self.addr,
                    recorded.len(),
                    recorded
                        .iter()
                        .map(|r| format!("{} {} -> {:?}", r.method, r.target, r.status))
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

    /// Polls (bounded by 30 s, then panics naming `what`) until `pred` holds for the
    /// recorded requests; returns them.
    pub fn wait_until(&self, what: &str, pred: impl Fn(&[Recorded]) -> bool) -> Vec<Recorded> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let r = self.requests();
            if pred(&r) {
                return r;
            }
            assert!(
                Instant::now() < deadline,
                "waited 30 s for {what}; have {r:#?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops accepting, ends every connection (hangs and delays included) and joins every
    /// thread. Idempotent; drop calls it.
    pub fn stop(&mut self) {
        self.shared.shutdown.store(true, Ordering::SeqCst);
        {
            let _guard = lock(&self.shared.shutdown_lock);
            self.shared.shutdown_cv.notify_all();
        }
        let Some(acceptor) = self.acceptor.take() else {
            return;
        };
        // Unblock the acceptor's `accept()`.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        let _ = acceptor.join();
        // Unblock every connection thread's `read()`.
        for (_, stream) in lock(&self.shared.connections).drain() {
            let _ = stream.shutdown(Shutdown::Both);
        }
        let threads: Vec<JoinHandle<()>> = lock(&self.shared.threads).drain(..).collect();
        for thread in threads {
            let _ = thread.join();
        }
    }
}

impl Drop for MockPyroscope {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A loopback port kept bound but not listening, so that connecting to it is refused for as
/// long as this lives and no other socket (another test's stand-in or gateway) can take the
/// port meanwhile — which [`dead_destination`] cannot promise over a long test. Bound with
/// `SO_REUSEADDR`, as std binds listeners on Unix, so a stand-in can start listening on the
/// same address before this is dropped (Linux allows it while none of them listens).
#[derive(Debug)]
pub struct RefusingPort {
    socket: socket2::Socket,
    addr: SocketAddr,
}

impl RefusingPort {
    pub fn bind() -> RefusingPort {
        use socket2::{Domain, Socket, Type};
        let socket = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
        socket.set_reuse_address(true).expect("SO_REUSEADDR");
        let any: SocketAddr = "127.0.0.1:0".parse().expect("loopback");
        socket.bind(&any.into()).expect("bind a refusing port");
        let addr = socket
            .local_addr()
            .ok()
            .and_then(|a| a.as_socket())
            .expect("refusing port address");
        RefusingPort { socket, addr }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Starts `builder`'s stand-in on this port, then gives the port up to it.
    pub fn hand_over(self, builder: MockBuilder) -> io::Result<MockPyroscope> {
        let mock = builder.listen(self.addr).try_start()?;
        drop(self.socket);
        Ok(mock)
    }
}

/// A loopback address on which nothing listens: connecting to it is refused.
pub fn dead_destination() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind for dead destination");
    let addr = listener.local_addr().expect("dead destination address");
    drop(listener);
    addr
}

fn accept_loop(listener: TcpListener, addr: SocketAddr, shared: Arc<Shared>) {
    for stream in listener.incoming() {
        if shared.shutdown.load(Ordering::SeqCst) {
            break;
        }
        let Ok(stream) = stream else { continue };
        lock(&shared.threads).retain(|t| !t.is_finished());
        if shared.active.load(Ordering::SeqCst) >= shared.config.max_connections {
            lock(&shared.counters).refused_connections += 1;
            continue;
        }
        let Ok(clone) = stream.try_clone() else {
            continue;
        };
        let index = shared.next_connection.fetch_add(1, Ordering::SeqCst) + 1;
        lock(&shared.connections).insert(index, clone);
        lock(&shared.counters).connections += 1;
        shared.active.fetch_add(1, Ordering::SeqCst);
        let conn_shared = Arc::clone(&shared);
        let handle = std::thread::Builder::new()
            .name("mock-conn".into())
            .spawn(move || {
                serve_connection(stream, addr, index, &conn_shared);
                lock(&conn_shared.connections).remove(&index);
                conn_shared.active.fetch_sub(1, Ordering::SeqCst);
            });
        match handle {
            Ok(handle) => lock(&shared.threads).push(handle),
            Err(_) => {
                lock(&shared.connections).remove(&index);
                shared.active.fetch_sub(1, Ordering::SeqCst);
            }
        }
    }
}

trait ReadWrite: Read + Write + Send {}
impl<T: Read + Write + Send> ReadWrite for T {}

/// One connection: the byte stream (plain or TLS), the socket under it, and a carry-over
/// buffer (pipelined bytes stay for the next request).
struct Conn {
    stream: Box<dyn ReadWrite>,
    socket: TcpStream,
    buf: Vec<u8>,
    rng: Prng,
    /// Set when the connection is to end with a reset (no FIN first).
    reset: bool,
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

    /// Writes `bytes`; whether it went through.
    fn write(&mut self, bytes: &[u8]) -> bool {
        self.stream.write_all(bytes).is_ok() && self.stream.flush().is_ok()
    }
}

fn serve_connection(stream: TcpStream, addr: SocketAddr, index: u64, shared: &Shared) {
    let _ = stream.set_read_timeout(Some(MAX_HANG));
    let _ = stream.set_nodelay(true);
    let Ok(socket) = stream.try_clone() else {
        return;
    };
    let stream: Box<dyn ReadWrite> = match &shared.config.tls {
        None => Box::new(stream),
        Some(config) => {
            let Ok(server) = rustls::ServerConnection::new(Arc::clone(config)) else {
                return;
            };
            let mut tls = rustls::StreamOwned::new(server, stream);
            // Complete the handshake before reading, to count failures.
            while tls.conn.is_handshaking() {
                if tls.conn.complete_io(&mut tls.sock).is_err() {
                    shared.handshake_failures.fetch_add(1, Ordering::SeqCst);
                    return;
                }
            }
            Box::new(tls)
        }
    };
    let seed = shared.config.faults.as_ref().map_or(0, |(_, seed)| *seed);
    let mut conn = Conn {
        stream,
        socket,
        buf: Vec::new(),
        rng: Prng::new(seed ^ index.wrapping_mul(0x9E37_79B9)),
        reset: false,
    };
    while !shared.shutdown.load(Ordering::SeqCst) {
        if !serve_one(&mut conn, addr, shared) {
            break;
        }
    }
    if !conn.reset {
        let _ = conn.socket.shutdown(Shutdown::Both);
    }
}

/// Go's answer to a request it cannot read: plain text, then close.
fn refuse_head(conn: &mut Conn, status: u16, message: &str) {
    let _ = conn.write(&response_bytes(
        status,
        Some("text/plain; charset=utf-8"),
        &[],
        message.as_bytes(),
        true,
    ));
}

/// Reads one request head; `None` on EOF (or a refused head, already answered).
fn read_head(conn: &mut Conn) -> Option<http::RequestHead> {
    loop {
        if let Some(end) = head_end(&conn.buf) {
            let bytes = conn.take(end);
            return match parse_request_head(&bytes) {
                Ok(head) => Some(head),
                Err(HeadError::TooManyHeaders) => {
                    refuse_head(conn, 431, "431 Request Header Fields Too Large");
                    None
                }
                Err(HeadError::Malformed) => {
                    refuse_head(conn, 400, "400 Bad Request");
                    None
                }
            };
        }
        if conn.buf.len() > MAX_HEAD_BYTES {
            refuse_head(conn, 431, "431 Request Header Fields Too Large");
            return None;
        }
        if !conn.fill() {
            return None;
        }
    }
}

/// Reads and answers one request; `false` when the connection must close.
fn serve_one(conn: &mut Conn, addr: SocketAddr, shared: &Shared) -> bool {
    let Some(head) = read_head(conn) else {
        return false;
    };
    // Go's server: an HTTP/1.1 request needs exactly one Host.
    if head.version == 1 && header_values(&head.headers, "host").len() != 1 {
        refuse_head(conn, 400, "400 Bad Request: missing required Host header");
        return false;
    }
    let (path, query) = match head.target.split_once('?') {
        Some((p, q)) => (p.to_string(), q.to_string()),
        None => (head.target.clone(), String::new()),
    };
    let close = wants_close(&head);
    let mut record = Recorded {
        method: head.method,
        target: head.target,
        path,
        query,
        version: head.version,
        headers: head.headers,
        chunked: false,
        body: Vec::new(),
        received_at: Instant::now(),
        status: None,
        push: None,
    };
    let config = &shared.config;
    let route = if config.rules {
        rules::route(&config.path_prefix, &record.path)
    } else {
        Route::Ingest
    };
    let limit = config.body_limit;
    let expect_continue = record.version == 1
        && header_value(&record.headers, "expect")
            .is_some_and(|v| v.eq_ignore_ascii_case("100-continue"));

    // Body framing (RFC 9112 §6); the gateway must frame its upstream requests correctly.
    let body = match body_framing(&record.headers) {
        Err((status, message)) => {
            refuse_head(conn, status, message);
            return false;
        }
        Ok(Framing::Length(n)) if n > limit as u64 => Err(Rejection::too_large(route, limit)),
        Ok(Framing::Length(n)) => {
            // `n <= limit`, which fits in usize.
            let n = usize::try_from(n).unwrap_or(usize::MAX);
            if expect_continue && n > 0 && conn.buf.is_empty() && !conn.write(CONTINUE) {
                return false;
            }
            if !conn.need(n) {
                return false;
            }
            Ok(conn.take(n))
        }
        Ok(Framing::Chunked) => {
            record.chunked = true;
            if expect_continue && conn.buf.is_empty() && !conn.write(CONTINUE) {
                return false;
            }
            match read_chunked(conn, limit) {
                Ok(body) => Ok(body),
                Err(Chunked::TooLarge) => Err(Rejection::too_large(route, limit)),
                Err(Chunked::Malformed) => {
                    refuse_head(conn, 400, "400 Bad Request: malformed chunked encoding");
                    return false;
                }
            }
        }
    };
    // A body the stand-in will not take ends the connection after the refusal.
    let body = match body {
        Ok(body) => body,
        Err(reject) => {
            count_refusal(shared, reject.status, 0);
            return answer_refusal(conn, shared, record, &reject, true);
        }
    };
    record.body = body;
    record.received_at = Instant::now();

    if let Some(handler) = &config.handler {
        let view = ServerView { addr, shared };
        if let Some(bytes) = handler(&record, &view) {
            record.status = parse_status(&bytes);
            finish_record(shared, record);
            return conn.write(&bytes) && !close;
        }
    }

    let judged = if !config.rules {
        Ok(Accepted {
            label_key: String::new(),
            codec: None,
        })
    } else {
        match route {
            Route::Unknown => Err(Rejection::not_found()),
            Route::Ingest => rules::judge_ingest(&record),
            Route::Otlp => crate::otlp::judge(limit, &record),
            Route::Push => {
                let (decoded, verdict) = rules::judge_push(limit, &record);
                record.push = decoded;
                verdict
            }
        }
    };
    let accepted = match judged {
        Ok(accepted) => accepted,
        Err(reject) => {
            count_refusal(shared, reject.status, record.body.len());
            return answer_refusal(conn, shared, record, &reject, close);
        }
    };
    answer_accepted(conn, shared, record, accepted, close)
}

const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// The status code of full response bytes (`HTTP/1.1 NNN ...`).
fn parse_status(bytes: &[u8]) -> Option<u16> {
    std::str::from_utf8(bytes.get(9..12)?).ok()?.parse().ok()
}

fn count_refusal(shared: &Shared, status: u16, body_bytes: usize) {
    let mut c = lock(&shared.counters);
    c.requests += 1;
    c.body_bytes += body_bytes as u64;
    *c.statuses.entry(status).or_default() += 1;
}

/// Records `record` as answered with `reject`, then writes that answer (with
/// `Connection: close` when `close`); whether the connection stays open.
fn answer_refusal(
    conn: &mut Conn,
    shared: &Shared,
    mut record: Recorded,
    reject: &Rejection,
    close: bool,
) -> bool {
    record.status = Some(reject.status);
    finish_record(shared, record);
    let content_type = (!reject.body.is_empty()).then_some(reject.content_type);
    conn.write(&response_bytes(
        reject.status,
        content_type,
        &reject.extra,
        &reject.body,
        close,
    )) && !close
}

/// Plays the action for a request that passed the rules: the inspector's verdict, else the
/// next scripted action, else a fault draw, else the default.
fn answer_accepted(
    conn: &mut Conn,
    shared: &Shared,
    mut record: Recorded,
    accepted: Accepted,
    close: bool,
) -> bool {
    let config = &shared.config;
    let mut on_answer = None;
    if let Some(inspector) = &config.inspector {
        let payloads: Vec<&[u8]> = match &record.push {
            Some(push) => push
                .series
                .iter()
                .flat_map(|s| s.samples.iter().map(|x| x.raw_profile.as_slice()))
                .collect(),
            None => vec![record.body.as_slice()],
        };
        match inspector(&payloads) {
            Ok(callback) => on_answer = Some(callback),
            Err(message) => {
                let reject = Rejection::with_status(422, &message);
                count_refusal(shared, 422, record.body.len());
                return answer_refusal(conn, shared, record, &reject, close);
            }
        }
    }
    let action = lock(&shared.script)
        .pop_front()
        .or_else(|| {
            config
                .faults
                .as_ref()
                .map(|(faults, _)| faults.decide(&mut conn.rng))
        })
        .unwrap_or_else(|| lock(&shared.default_action).clone());
    let (status, retry_after, delay) = match action {
        Action::Respond {
            status,
            retry_after,
            delay,
        } => (status, retry_after, delay),
        Action::Hang | Action::HangFor(_) => {
            {
                let mut c = lock(&shared.counters);
                c.requests += 1;
                c.hangs += 1;
            }
            finish_record(shared, record);
            let hang = if let Action::HangFor(d) = action {
                d
            } else {
                MAX_HANG
            };
            interruptible_sleep(shared, hang);
            return false;
        }
        Action::Close => {
            lock(&shared.counters).requests += 1;
            finish_record(shared, record);
            return false;
        }
        Action::Reset => {
            {
                let mut c = lock(&shared.counters);
                c.requests += 1;
                c.resets += 1;
            }
            finish_record(shared, record);
            let _ = socket2::SockRef::from(&conn.socket).set_linger(Some(Duration::ZERO));
            conn.reset = true;
            return false;
        }
        Action::Truncated {
            status,
            declared,
            sent,
            end,
        } => {
            {
                let mut c = lock(&shared.counters);
                c.requests += 1;
                c.truncated += 1;
            }
            finish_record(shared, record);
            let body = vec![b'x'; declared];
            let mut bytes = response_bytes(status, None, &[], &body, false);
            bytes.truncate(bytes.len() - (declared - sent.min(declared)));
            if !conn.write(&bytes) {
                return false;
            }
            match end {
                Truncation::Close => {}
                Truncation::Reset => {
                    let _ = socket2::SockRef::from(&conn.socket).set_linger(Some(Duration::ZERO));
                    conn.reset = true;
                }
                Truncation::Hang => {
                    interruptible_sleep(shared, MAX_HANG);
                }
            }
            return false;
        }
    };
    let body_len = record.body.len() as u64;
    let push = record.push.is_some() || accepted.codec.is_some();
    record.status = Some(status);
    finish_record(shared, record);
    if !delay.is_zero() && interruptible_sleep(shared, delay) {
        return false;
    }
    {
        let mut c = lock(&shared.counters);
        c.requests += 1;
        c.body_bytes += body_len;
        *c.statuses.entry(status).or_default() += 1;
        let e = c.label_sets.entry(accepted.label_key).or_default();
        e.0 += 1;
        e.1 += body_len;
    }
    if let Some(callback) = on_answer {
        callback(status);
    }
    let (content_type, body) = success_or_error_body(config.rules, push, accepted.codec, status);
    let mut extra: Vec<(&str, &str)> = Vec::new();
    if let Some(ra) = retry_after.as_deref() {
        extra.push(("Retry-After", ra));
    }
    if config.rules && !push && status != 200 {
        extra.push(("X-Content-Type-Options", "nosniff"));
    }
    conn.write(&response_bytes(status, content_type, &extra, &body, close)) && !close
}

/// The answer body of an accepted request: on Push a Connect answer (an empty `PushResponse`
/// in the request's codec, or a Connect error whose code matches the status); on `/ingest`
/// nothing on success and `httputil.ErrorWithStatus`'s JSON otherwise; nothing at all without
/// the rules.
fn success_or_error_body(
    rules: bool,
    push: bool,
    codec: Option<PushCodec>,
    status: u16,
) -> (Option<&'static str>, Vec<u8>) {
    match (rules, push, status, codec) {
        (false, ..) => (None, Vec::new()),
        (true, true, 200, Some(PushCodec::Json)) => (Some("application/json"), b"{}".to_vec()),
        (true, true, 200, _) => (Some("application/proto"), Vec::new()),
        (true, true, ..) => (
            Some("application/json"),
            rules::json_error(connect_code_for_status(status), status_text(status)),
        ),
        (true, false, 200, _) => (None, Vec::new()),
        (true, false, ..) => {
            let r = Rejection::with_status(status, status_text(status));
            (Some(r.content_type), r.body)
        }
    }
}

fn finish_record(shared: &Shared, record: Recorded) {
    if !shared.config.record {
        return;
    }
    lock(&shared.recorded).push(record);
    shared.recorded_cv.notify_all();
}

/// Sleeps up to `d`; returns `true` if the stand-in is shutting down.
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

/// Whether the connection ends after this request (RFC 9112 §9.3).
fn wants_close(head: &http::RequestHead) -> bool {
    let connection: Vec<String> = header_values(&head.headers, "connection")
        .into_iter()
        .map(str::to_ascii_lowercase)
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

/// The body framing of a request (RFC 9112 §6.1–§6.3), strict as Go's server is: a
/// Content-Length with a Transfer-Encoding, several Content-Lengths or a bad one are 400, a
/// coding other than `chunked` alone is 501.
fn body_framing(headers: &[(String, String)]) -> Result<Framing, (u16, &'static str)> {
    let te = header_values(headers, "transfer-encoding");
    let cl = header_values(headers, "content-length");
    if !te.is_empty() {
        if !cl.is_empty() {
            return Err((
                400,
                "400 Bad Request: Content-Length with Transfer-Encoding",
            ));
        }
        if te.len() == 1 && te[0].trim().eq_ignore_ascii_case("chunked") {
            return Ok(Framing::Chunked);
        }
        return Err((501, "501 Not Implemented: unsupported transfer encoding"));
    }
    match cl.as_slice() {
        [] => Ok(Framing::Length(0)),
        [one] if !one.is_empty() && one.bytes().all(|b| b.is_ascii_digit()) => one
            .parse::<u64>()
            .map(Framing::Length)
            .map_err(|_| (400, "400 Bad Request: bad Content-Length")),
        [_] => Err((400, "400 Bad Request: bad Content-Length")),
        _ => Err((400, "400 Bad Request: more than one Content-Length")),
    }
}

enum Chunked {
    TooLarge,
    Malformed,
}

/// Reads a chunked body, refusing it once it exceeds `limit`.
fn read_chunked(conn: &mut Conn, limit: usize) -> Result<Vec<u8>, Chunked> {
    let mut body = Vec::new();
    loop {
        let (consumed, size) = loop {
            match parse_chunk_size(&conn.buf) {
                Ok(Some(v)) => break v,
                Ok(None) => {
                    if conn.buf.len() > 4096 || !conn.fill() {
                        return Err(Chunked::Malformed);
                    }
                }
                Err(_) => return Err(Chunked::Malformed),
            }
        };
        conn.take(consumed);
        let size = usize::try_from(size).map_err(|_| Chunked::TooLarge)?;
        if size == 0 {
            // Trailer section, ended by an empty line.
            loop {
                let Some(end) = find(&conn.buf, b"\r\n") else {
                    if conn.buf.len() > 4096 || !conn.fill() {
                        return Err(Chunked::Malformed);
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
            return Err(Chunked::TooLarge);
        }
        if !conn.need(size + 2) {
            return Err(Chunked::Malformed);
        }
        let data = conn.take(size + 2);
        if &data[size..] != b"\r\n" {
            return Err(Chunked::Malformed);
        }
        body.extend_from_slice(&data[..size]);
    }
}
