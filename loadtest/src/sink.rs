//! `loadtest sink`: a Pyroscope stand-in upstream that counts, verifies and misbehaves on demand.
//!
//! Owns: a loopback HTTP/1.1 server (keep-alive, pipelining, Content-Length and chunked bodies,
//! `Expect: 100-continue`), Pyroscope's acceptance rules as `shared/reference/pyroscope-ingest-api.md`
//! §1–§4 state them ([`judge`]: routes and methods, the `name` grammar via `pyrogate::labels`,
//! the text-format profile-type suffix, multipart parts, Connect Push content types, gzip and
//! series validation; answers 400/404/405/413/415/422 with Pyroscope's bodies), the checksum
//! check of every payload ([`crate::bodies::verify`]), per-label-set request and byte counts,
//! per-upload delivery counts, and fault injection at given rates ([`Faults`]: latency fixed or
//! distributed, 5xx, 429 with `Retry-After`, connection resets, hangs). Counters are served at
//! `GET /-/loadtest/stats` as JSON. Does not decode pprof or JFR. A tool, not the data path: one
//! std thread per connection with blocking sockets; bounded connection count; stops on
//! [`Sink::stop`] or drop.

use std::collections::{BTreeMap, HashMap};
use std::io::{self, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use pyrogate::h1::{self, BodyFraming, ChunkedDecoder, Limits, Method};

use crate::bodies::{self, Prng, UploadId};

/// Pyroscope's default `-distributor.ingestion-body-limit-mb` (256 MiB).
pub const DEFAULT_BODY_LIMIT: usize = 256 * 1024 * 1024;
/// Pyroscope's `max_profile_size_bytes` for one Push sample (4 MiB).
pub const MAX_PUSH_PROFILE_BYTES: usize = 4 * 1024 * 1024;
/// Pyroscope's `validation.max-label-names-per-series`.
pub const MAX_LABEL_NAMES: usize = 30;
/// Pyroscope's label value length limit (bytes).
pub const MAX_LABEL_VALUE_BYTES: usize = 2048;
/// Open connections served at once; more are closed on accept (and counted).
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;
/// Highest upload sequence number tracked per run (bounds the delivery table's memory: 1 byte
/// per upload).
pub const MAX_TRACKED_SEQ: u64 = 64 * 1024 * 1024;
/// Head limits (Go's `http.DefaultMaxHeaderBytes` is 1 MiB).
const LIMITS: Limits = Limits {
    max_head_bytes: 1024 * 1024,
    max_headers: 128,
};
/// How often blocked reads and hangs look at the stop flag.
const POLL: Duration = Duration::from_millis(200);
/// An idle keep-alive connection is closed after this long.
const IDLE_TIMEOUT: Duration = Duration::from_secs(120);
/// The stats route.
pub const STATS_PATH: &str = "/-/loadtest/stats";

/// Profile-type suffixes of the text-format path (`convertMetadata`, §1).
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

/// How long an accepted request waits before its answer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Latency {
    None,
    Fixed(Duration),
    /// Uniform between the two bounds.
    Uniform(Duration, Duration),
    /// Exponential with this mean (a long tail, as a loaded server has), capped at 20 × mean.
    Exponential(Duration),
}

impl Latency {
    /// `0`, `5ms`, `2ms..20ms` (uniform), `exp:10ms`.
    pub fn parse(s: &str) -> Option<Latency> {
        if s == "0" || s == "none" {
            return Some(Latency::None);
        }
        if let Some(mean) = s.strip_prefix("exp:") {
            return Some(Latency::Exponential(crate::cli::parse_duration(mean)?));
        }
        if let Some((lo, hi)) = s.split_once("..") {
            let (lo, hi) = (
                crate::cli::parse_duration(lo)?,
                crate::cli::parse_duration(hi)?,
            );
            return (lo <= hi).then_some(Latency::Uniform(lo, hi));
        }
        crate::cli::parse_duration(s).map(Latency::Fixed)
    }

    pub fn sample(&self, rng: &mut Prng) -> Duration {
        match *self {
            Latency::None => Duration::ZERO,
            Latency::Fixed(d) => d,
            Latency::Uniform(lo, hi) => lo + (hi - lo).mul_f64(rng.next_f64()),
            Latency::Exponential(mean) => {
                let u = rng.next_f64();
                mean.mul_f64((-(1.0 - u).ln()).min(20.0))
            }
        }
    }
}

/// Faults injected into requests that passed validation, each at its own rate (0..1).
#[derive(Debug, Clone, PartialEq)]
pub struct Faults {
    pub latency: Latency,
    /// Rate of `error_status` answers.
    pub error_rate: f64,
    pub error_status: u16,
    /// Rate of 429 answers with `Retry-After: retry_after_secs`.
    pub throttle_rate: f64,
    pub retry_after_secs: u32,
    /// Rate of connection resets (RST, no answer).
    pub reset_rate: f64,
    /// Rate of hangs: no answer for `hang_for`, then the connection is closed.
    pub hang_rate: f64,
    pub hang_for: Duration,
}

impl Default for Faults {
    fn default() -> Self {
        Faults {
            latency: Latency::None,
            error_rate: 0.0,
            error_status: 503,
            throttle_rate: 0.0,
            retry_after_secs: 1,
            reset_rate: 0.0,
            hang_rate: 0.0,
            hang_for: Duration::from_secs(30),
        }
    }
}

/// What the sink does with one valid request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Respond {
        status: u16,
        retry_after: Option<u32>,
        delay: Duration,
    },
    Reset,
    Hang(Duration),
}

impl Faults {
    /// Draws this request's fate: one uniform number picks reset, hang, error, throttle or
    /// success in that order of the rates; a response also draws its latency.
    pub fn decide(&self, rng: &mut Prng) -> Action {
        let u = rng.next_f64();
        let mut edge = self.reset_rate;
        if u < edge {
            return Action::Reset;
        }
        edge += self.hang_rate;
        if u < edge {
            return Action::Hang(self.hang_for);
        }
        let delay = self.latency.sample(rng);
        edge += self.error_rate;
        if u < edge {
            return Action::Respond {
                status: self.error_status,
                retry_after: None,
                delay,
            };
        }
        edge += self.throttle_rate;
        if u < edge {
            return Action::Respond {
                status: 429,
                retry_after: Some(self.retry_after_secs),
                delay,
            };
        }
        Action::Respond {
            status: 200,
            retry_after: None,
            delay,
        }
    }

    pub fn is_none(&self) -> bool {
        self.error_rate == 0.0
            && self.throttle_rate == 0.0
            && self.reset_rate == 0.0
            && self.hang_rate == 0.0
            && self.latency == Latency::None
    }
}

/// One request as the rules see it.
#[derive(Debug, Clone, Copy)]
pub struct Incoming<'a> {
    pub method: Method,
    pub path: &'a [u8],
    pub query: &'a [u8],
    pub content_type: Option<&'a [u8]>,
    pub content_encoding: Option<&'a [u8]>,
    pub body: &'a [u8],
}

/// Pyroscope's answer to a request, before faults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Judgement {
    Accept {
        /// The label set, canonical (`/ingest`: `Normalized()`; Push: sorted `k=v` pairs).
        label_key: String,
        /// The trailer check of each profile payload.
        payloads: Vec<bodies::Verdict>,
        /// `application/proto` for Push, none for `/ingest`.
        content_type: Option<&'static str>,
    },
    Reject {
        status: u16,
        content_type: &'static str,
        body: String,
    },
}

fn connect_error(status: u16, code: &str, message: &str) -> Judgement {
    Judgement::Reject {
        status,
        content_type: "application/json",
        body: pyrogate::push::error_body(
            pyrogate::push::Code::parse(code).unwrap_or(pyrogate::push::Code::Unknown),
            message,
        ),
    }
}

/// Applies Pyroscope's rules to one request (pure).
pub fn judge(req: &Incoming<'_>, body_limit: usize) -> Judgement {
    let ingest = matches!(req.path, b"/ingest" | b"/pyroscope/ingest");
    let push = req.path == pyrogate::push::PUSH_PATH.as_bytes();
    if !ingest && !push {
        return Judgement::Reject {
            status: 404,
            content_type: "text/plain; charset=utf-8",
            body: "404 page not found\n".into(),
        };
    }
    if req.method != Method::Post {
        return Judgement::Reject {
            status: 405,
            content_type: "text/plain; charset=utf-8",
            body: String::new(),
        };
    }
    if req.body.len() > body_limit {
        return Judgement::Reject {
            status: 413,
            content_type: "text/plain; charset=utf-8",
            body: "request body too large\n".into(),
        };
    }
    if ingest {
        judge_ingest(req)
    } else {
        judge_push(req, body_limit)
    }
}

fn judge_ingest(req: &Incoming<'_>) -> Judgement {
    let query = pyrogate::labels::parse_query(req.query);
    let name = query.first(b"name").unwrap_or_default();
    if name.is_empty() {
        return connect_error(400, "invalid_argument", "name: service name is required");
    }
    let labels = match pyrogate::labels::parse_bytes(name) {
        Ok(l) => l,
        Err(e) => return connect_error(400, "invalid_argument", &format!("name: {e}")),
    };
    let ct = req.content_type.unwrap_or_default();
    let multipart = memchr::memmem::find(ct, b"multipart/form-data").is_some();
    let format = query.first(b"format").unwrap_or_default();
    let unprocessable = |why: &str| connect_error(422, "invalid_argument", why);
    match format {
        b"trie" | b"tree" | b"lines" | b"speedscope" => {}
        b"jfr" => {
            if multipart {
                match form_parts(ct, req.body) {
                    Some(parts) if parts.iter().any(|p| p == "jfr") => {}
                    _ => return unprocessable("jfr: missing jfr part"),
                }
            }
        }
        b"pprof" => {
            if multipart {
                return unprocessable("pprof: failed to parse profile: multipart body");
            }
        }
        _ if multipart => match form_parts(ct, req.body) {
            Some(parts) if parts.iter().any(|p| p == "prev_profile") => {
                return unprocessable("unsupported client version");
            }
            Some(parts) if parts.iter().any(|p| p == "profile") => {}
            _ => return unprocessable("pprof: missing profile part"),
        },
        _ => {
            let app = labels.get("__name__").unwrap_or_default();
            if let Some((_, suffix)) = app.rsplit_once('.')
                && !KNOWN_PROFILE_TYPES.contains(&suffix)
            {
                return connect_error(
                    400,
                    "invalid_argument",
                    &format!("unknown profile type: {suffix}"),
                );
            }
            for line in req.body.split(|&b| b == b'\n') {
                if let Some(at) = memchr::memrchr(b' ', line) {
                    let count = std::str::from_utf8(&line[at + 1..]).ok();
                    if count
                        .and_then(|c| c.trim_end_matches('\r').parse::<i64>().ok())
                        .is_none()
                    {
                        return unprocessable("folded: invalid sample count");
                    }
                }
            }
        }
    }
    Judgement::Accept {
        label_key: labels.normalized(),
        payloads: vec![bodies::verify(req.body)],
        content_type: None,
    }
}

/// The `name`s of the file parts of a multipart body (parts without `filename` do not count,
/// as Go's `ReadForm` files them as values). `None` when the boundary is missing.
fn form_parts(content_type: &[u8], body: &[u8]) -> Option<Vec<String>> {
    let ct = std::str::from_utf8(content_type).ok()?;
    let boundary = ct
        .split(';')
        .find_map(|p| p.trim().strip_prefix("boundary="))?
        .trim_matches('"');
    if boundary.is_empty() {
        return None;
    }
    let delimiter = format!("--{boundary}");
    let finder = memchr::memmem::Finder::new(delimiter.as_bytes());
    let mut names = Vec::new();
    for at in finder.find_iter(body) {
        let rest = &body[at + delimiter.len()..];
        if rest.starts_with(b"--") {
            break;
        }
        let head_end = memchr::memmem::find(rest, b"\r\n\r\n").unwrap_or(rest.len());
        let head = String::from_utf8_lossy(&rest[..head_end]);
        let disposition = head
            .lines()
            .find(|l| l.to_ascii_lowercase().starts_with("content-disposition:"));
        if let Some(d) = disposition
            && d.contains("filename=")
            && let Some(name) = d.split(';').find_map(|p| p.trim().strip_prefix("name="))
        {
            names.push(name.trim_matches('"').to_string());
        }
    }
    Some(names)
}

fn judge_push(req: &Incoming<'_>, body_limit: usize) -> Judgement {
    let ct = req.content_type.unwrap_or_default();
    let media = ct
        .split(|&b| b == b';')
        .next()
        .unwrap_or_default()
        .trim_ascii();
    let json = if media.eq_ignore_ascii_case(b"application/proto") {
        false
    } else if media.eq_ignore_ascii_case(b"application/json") {
        true
    } else {
        return connect_error(415, "unknown", "unsupported content type");
    };
    let body = bytes::Bytes::copy_from_slice(req.body);
    let body = match req.content_encoding.map(|e| e.trim_ascii()) {
        None | Some(b"identity") | Some(b"") => body,
        Some(b"gzip") => match pyrogate::push::gunzip_bounded(&body, body_limit as u64) {
            Ok(b) => b,
            Err(e) => {
                let code = e.code();
                return connect_error(code.http_status(), code.as_str(), &e.to_string());
            }
        },
        Some(_) => return connect_error(501, "unimplemented", "unknown compression"),
    };
    let decoded = if json {
        pyrogate::push::decode_json(&body)
    } else {
        pyrogate::push::decode_proto(&body)
    };
    let request = match decoded {
        Ok(r) => r,
        Err(e) => return connect_error(400, "invalid_argument", &e.to_string()),
    };
    if request.series.is_empty() {
        return connect_error(400, "invalid_argument", "no profiles received");
    }
    let mut keys = Vec::with_capacity(request.series.len());
    let mut payloads = Vec::new();
    for series in &request.series {
        let mut labels: Vec<(&str, &str)> = series
            .labels
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        labels.sort_unstable();
        if labels.len() > MAX_LABEL_NAMES {
            return connect_error(
                400,
                "invalid_argument",
                &format!(
                    "profile series has {} label names; limit {MAX_LABEL_NAMES}",
                    labels.len()
                ),
            );
        }
        if let Err(e) = pyrogate::labels::labelset::validate_labels(labels.iter().copied()) {
            return connect_error(400, "invalid_argument", &e.to_string());
        }
        if !labels.iter().any(|(n, _)| *n == "__name__") {
            return connect_error(
                400,
                "invalid_argument",
                "invalid labels: __name__ is required",
            );
        }
        if !labels
            .iter()
            .any(|(n, v)| *n == "service_name" && !v.is_empty())
        {
            return connect_error(
                400,
                "invalid_argument",
                "invalid labels: service name is required",
            );
        }
        if let Some((n, _)) = labels.iter().find(|(_, v)| v.len() > MAX_LABEL_VALUE_BYTES) {
            return connect_error(
                400,
                "invalid_argument",
                &format!("label value too long for {n}"),
            );
        }
        for s in &series.samples {
            if s.raw_profile.len() > MAX_PUSH_PROFILE_BYTES {
                return connect_error(
                    400,
                    "invalid_argument",
                    &format!(
                        "profile too large: {} bytes, limit {MAX_PUSH_PROFILE_BYTES}",
                        s.raw_profile.len()
                    ),
                );
            }
            payloads.push(bodies::verify(&s.raw_profile));
        }
        let key: Vec<String> = labels.iter().map(|(n, v)| format!("{n}={v}")).collect();
        keys.push(key.join(","));
    }
    Judgement::Accept {
        label_key: keys.join(";"),
        payloads,
        content_type: Some(if json {
            "application/json"
        } else {
            "application/proto"
        }),
    }
}

/// A sink's configuration.
#[derive(Debug, Clone)]
pub struct SinkConfig {
    pub listen: SocketAddr,
    pub body_limit: usize,
    pub faults: Faults,
    pub seed: u64,
    pub max_connections: usize,
}

impl Default for SinkConfig {
    fn default() -> Self {
        SinkConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            body_limit: DEFAULT_BODY_LIMIT,
            faults: Faults::default(),
            seed: 1,
            max_connections: DEFAULT_MAX_CONNECTIONS,
        }
    }
}

/// Counters of one sink.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SinkStats {
    pub requests: u64,
    pub body_bytes: u64,
    /// Answers by status (injected ones included).
    pub statuses: BTreeMap<u16, u64>,
    pub resets: u64,
    pub hangs: u64,
    /// Payloads whose trailer did not match their bytes.
    pub corrupt: u64,
    /// Accepted payloads without a trailer.
    pub unmarked: u64,
    pub connections: u64,
    pub refused_connections: u64,
    /// `(requests, body bytes)` per label set.
    pub label_sets: HashMap<String, (u64, u64)>,
    /// Per generator run: how many times each upload was delivered (answered 200), by seq.
    pub deliveries: HashMap<u32, Vec<u8>>,
}

impl SinkStats {
    /// Times upload `id` was delivered.
    pub fn delivered(&self, id: UploadId) -> u8 {
        self.deliveries
            .get(&id.run)
            .and_then(|v| v.get(usize::try_from(id.seq).ok()?).copied())
            .unwrap_or(0)
    }

    fn record_delivery(&mut self, id: UploadId) {
        if id.seq >= MAX_TRACKED_SEQ {
            return;
        }
        let counts = self.deliveries.entry(id.run).or_default();
        let at = id.seq as usize;
        if counts.len() <= at {
            counts.resize(at + 1, 0);
        }
        counts[at] = counts[at].saturating_add(1);
    }

    /// JSON: totals, statuses, the 20 busiest label sets, and deliveries run-length encoded as
    /// `[first_seq, end_seq_exclusive, count]`.
    pub fn to_json(&self) -> serde_json::Value {
        let mut busiest: Vec<(&String, &(u64, u64))> = self.label_sets.iter().collect();
        busiest.sort_by(|a, b| b.1.0.cmp(&a.1.0).then(a.0.cmp(b.0)));
        let runs: serde_json::Map<String, serde_json::Value> = self
            .deliveries
            .iter()
            .map(|(run, counts)| (format!("{run:08x}"), serde_json::json!(run_lengths(counts))))
            .collect();
        serde_json::json!({
            "requests": self.requests,
            "body_bytes": self.body_bytes,
            "statuses": self.statuses.iter().map(|(k, v)| (k.to_string(), *v)).collect::<BTreeMap<_, _>>(),
            "resets": self.resets,
            "hangs": self.hangs,
            "corrupt": self.corrupt,
            "unmarked": self.unmarked,
            "connections": self.connections,
            "refused_connections": self.refused_connections,
            "label_sets": self.label_sets.len(),
            "busiest_label_sets": busiest.iter().take(20).map(|(k, (n, b))| serde_json::json!({"labels": k, "requests": n, "bytes": b})).collect::<Vec<_>>(),
            "deliveries": runs,
        })
    }

    /// Reads back what [`SinkStats::to_json`] wrote (label sets are not round-tripped).
    pub fn from_json(v: &serde_json::Value) -> Option<SinkStats> {
        let u = |k: &str| v.get(k).and_then(serde_json::Value::as_u64).unwrap_or(0);
        let mut stats = SinkStats {
            requests: u("requests"),
            body_bytes: u("body_bytes"),
            resets: u("resets"),
            hangs: u("hangs"),
            corrupt: u("corrupt"),
            unmarked: u("unmarked"),
            connections: u("connections"),
            refused_connections: u("refused_connections"),
            ..SinkStats::default()
        };
        for (k, n) in v.get("statuses")?.as_object()? {
            stats.statuses.insert(k.parse().ok()?, n.as_u64()?);
        }
        for (run, ranges) in v.get("deliveries")?.as_object()? {
            let run = u32::from_str_radix(run, 16).ok()?;
            let mut counts = Vec::new();
            for r in ranges.as_array()? {
                let r = r.as_array()?;
                let (a, b, c) = (
                    r.first()?.as_u64()?,
                    r.get(1)?.as_u64()?,
                    r.get(2)?.as_u64()?,
                );
                if b > MAX_TRACKED_SEQ || a > b {
                    return None;
                }
                if counts.len() < b as usize {
                    counts.resize(b as usize, 0);
                }
                counts[a as usize..b as usize].fill(u8::try_from(c).unwrap_or(u8::MAX));
            }
            stats.deliveries.insert(run, counts);
        }
        Some(stats)
    }
}

/// Run-length encoding of delivery counts: `[first, end_exclusive, count]`.
pub fn run_lengths(counts: &[u8]) -> Vec<[u64; 3]> {
    let mut out: Vec<[u64; 3]> = Vec::new();
    for (i, &c) in counts.iter().enumerate() {
        match out.last_mut() {
            Some(last) if last[2] == u64::from(c) && last[1] == i as u64 => last[1] += 1,
            _ => out.push([i as u64, i as u64 + 1, u64::from(c)]),
        }
    }
    out
}

#[derive(Debug, Default)]
struct Shared {
    stats: Mutex<SinkStats>,
    stop: AtomicBool,
    active: AtomicUsize,
}

impl Shared {
    fn stats(&self) -> MutexGuard<'_, SinkStats> {
        self.stats.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A running sink.
#[derive(Debug)]
pub struct Sink {
    addr: SocketAddr,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

impl Sink {
    /// Binds and starts serving.
    pub fn start(config: SinkConfig) -> io::Result<Sink> {
        let listener = TcpListener::bind(config.listen)?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared::default());
        let s = shared.clone();
        let acceptor = std::thread::Builder::new()
            .name("sink-accept".into())
            .spawn(move || accept_loop(listener, config, s))?;
        Ok(Sink {
            addr,
            shared,
            acceptor: Some(acceptor),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A copy of the counters now.
    pub fn stats(&self) -> SinkStats {
        self.shared.stats().clone()
    }

    /// Stops accepting and ends every connection (hangs included) within [`POLL`].
    pub fn stop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(h) = self.acceptor.take() {
            let _ = h.join();
        }
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.stop();
    }
}

fn accept_loop(listener: TcpListener, config: SinkConfig, shared: Arc<Shared>) {
    let config = Arc::new(config);
    let mut conn_index = 0u64;
    let mut workers: Vec<JoinHandle<()>> = Vec::new();
    for stream in listener.incoming() {
        if shared.stop.load(Ordering::SeqCst) {
            break;
        }
        let Ok(stream) = stream else { continue };
        workers.retain(|w| !w.is_finished());
        if shared.active.load(Ordering::SeqCst) >= config.max_connections {
            shared.stats().refused_connections += 1;
            continue;
        }
        conn_index += 1;
        shared.stats().connections += 1;
        shared.active.fetch_add(1, Ordering::SeqCst);
        let (cfg, sh) = (config.clone(), shared.clone());
        let rng = Prng::new(config.seed ^ conn_index.wrapping_mul(0x9E37_79B9));
        match std::thread::Builder::new()
            .name("sink-conn".into())
            .spawn(move || {
                let _ = serve(stream, &cfg, &sh, rng);
                sh.active.fetch_sub(1, Ordering::SeqCst);
            }) {
            Ok(h) => workers.push(h),
            Err(_) => {
                shared.active.fetch_sub(1, Ordering::SeqCst);
            }
        }
    }
    for w in workers {
        let _ = w.join();
    }
}

/// Reads into `buf` until it holds `want` bytes; false on EOF, stop or idle timeout.
fn fill(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    want: usize,
    shared: &Shared,
) -> io::Result<bool> {
    let idle_since = Instant::now();
    while buf.len() < want {
        if shared.stop.load(Ordering::Relaxed) || idle_since.elapsed() > IDLE_TIMEOUT {
            return Ok(false);
        }
        let start = buf.len();
        buf.resize(want.max(start + 64 * 1024), 0);
        match stream.read(&mut buf[start..]) {
            Ok(0) => {
                buf.truncate(start);
                return Ok(false);
            }
            Ok(n) => buf.truncate(start + n),
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                ) =>
            {
                buf.truncate(start);
            }
            Err(e) => {
                buf.truncate(start);
                return Err(e);
            }
        }
    }
    Ok(true)
}

fn respond(
    stream: &mut TcpStream,
    status: u16,
    content_type: Option<&str>,
    extra: &[(&str, String)],
    body: &[u8],
    close: bool,
) -> io::Result<()> {
    let mut head = format!("HTTP/1.1 {status} {}\r\n", h1::reason_phrase(status));
    if let Some(ct) = content_type {
        head.push_str(&format!("Content-Type: {ct}\r\n"));
    }
    for (n, v) in extra {
        head.push_str(&format!("{n}: {v}\r\n"));
    }
    if close {
        head.push_str("Connection: close\r\n");
    }
    head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    let mut out = head.into_bytes();
    out.extend_from_slice(body);
    stream.write_all(&out)
}

fn sleep_unless_stopped(d: Duration, shared: &Shared) {
    let end = Instant::now() + d;
    while !shared.stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        if now >= end {
            return;
        }
        std::thread::sleep((end - now).min(POLL));
    }
}

fn serve(
    mut stream: TcpStream,
    config: &SinkConfig,
    shared: &Shared,
    mut rng: Prng,
) -> io::Result<()> {
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(POLL))?;
    let mut buf: Vec<u8> = Vec::with_capacity(64 * 1024);
    loop {
        // Head.
        let head = loop {
            match h1::parse_request(&buf, &LIMITS) {
                Ok(Some(head)) => break head,
                Ok(None) => {
                    let want = buf.len() + 1;
                    if !fill(&mut stream, &mut buf, want, shared)? {
                        return Ok(());
                    }
                }
                Err(e) => {
                    return respond(
                        &mut stream,
                        e.status(),
                        Some("text/plain; charset=utf-8"),
                        &[],
                        b"",
                        true,
                    );
                }
            }
        };
        let text = |r: &std::ops::Range<usize>| buf.get(r.clone()).unwrap_or_default();
        let path = text(&head.path).to_vec();
        let query = head
            .query
            .as_ref()
            .map(|q| text(q).to_vec())
            .unwrap_or_default();
        let content_type = head.header(&buf, "content-type").map(<[u8]>::to_vec);
        let content_encoding = head.header(&buf, "content-encoding").map(<[u8]>::to_vec);
        let keep_alive = head.keep_alive;
        let mut consumed = head.head_len;
        // Body.
        let body: Vec<u8> = match head.body {
            BodyFraming::Empty => Vec::new(),
            BodyFraming::Length(n) => {
                let n = usize::try_from(n).unwrap_or(usize::MAX);
                if n > config.body_limit {
                    let _ = respond(
                        &mut stream,
                        413,
                        Some("text/plain; charset=utf-8"),
                        &[],
                        b"request body too large\n",
                        true,
                    );
                    record_status(shared, 413, 0);
                    return Ok(());
                }
                if head.expect_continue && buf.len() == head.head_len {
                    stream.write_all(h1::CONTINUE_100)?;
                }
                if !fill(&mut stream, &mut buf, head.head_len + n, shared)? {
                    return Ok(());
                }
                consumed += n;
                buf[head.head_len..head.head_len + n].to_vec()
            }
            BodyFraming::Chunked => {
                if head.expect_continue && buf.len() == head.head_len {
                    stream.write_all(h1::CONTINUE_100)?;
                }
                let mut decoder = ChunkedDecoder::new(config.body_limit as u64);
                let mut out = BytesMut::new();
                loop {
                    match decoder.decode(&buf[consumed..], Some(&mut out)) {
                        Ok(p) => {
                            consumed += p.consumed;
                            if p.done {
                                break;
                            }
                            let want = buf.len() + 1;
                            if !fill(&mut stream, &mut buf, want, shared)? {
                                return Ok(());
                            }
                        }
                        Err(e) => {
                            let _ = respond(
                                &mut stream,
                                e.status(),
                                Some("text/plain; charset=utf-8"),
                                &[],
                                b"",
                                true,
                            );
                            record_status(shared, e.status(), 0);
                            return Ok(());
                        }
                    }
                }
                out.to_vec()
            }
        };
        buf.drain(..consumed);
        let close = !keep_alive;
        if head.method == Method::Get && path == STATS_PATH.as_bytes() {
            let json = shared.stats().to_json().to_string();
            respond(
                &mut stream,
                200,
                Some("application/json"),
                &[],
                json.as_bytes(),
                close,
            )?;
            if close {
                return Ok(());
            }
            continue;
        }
        let incoming = Incoming {
            method: head.method,
            path: &path,
            query: &query,
            content_type: content_type.as_deref(),
            content_encoding: content_encoding.as_deref(),
            body: &body,
        };
        match judge(&incoming, config.body_limit) {
            Judgement::Reject {
                status,
                content_type,
                body: text,
            } => {
                record_status(shared, status, body.len());
                respond(
                    &mut stream,
                    status,
                    Some(content_type),
                    &[],
                    text.as_bytes(),
                    close,
                )?;
            }
            Judgement::Accept {
                label_key,
                payloads,
                content_type,
            } => {
                let corrupt = payloads.contains(&bodies::Verdict::Corrupt);
                let action = if corrupt {
                    Action::Respond {
                        status: 422,
                        retry_after: None,
                        delay: Duration::ZERO,
                    }
                } else {
                    config.faults.decide(&mut rng)
                };
                match action {
                    Action::Reset => {
                        let mut s = shared.stats();
                        s.requests += 1;
                        s.resets += 1;
                        drop(s);
                        let _ = socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO));
                        return Ok(());
                    }
                    Action::Hang(d) => {
                        let mut s = shared.stats();
                        s.requests += 1;
                        s.hangs += 1;
                        drop(s);
                        sleep_unless_stopped(d, shared);
                        return Ok(());
                    }
                    Action::Respond {
                        status,
                        retry_after,
                        delay,
                    } => {
                        if !delay.is_zero() {
                            sleep_unless_stopped(delay, shared);
                        }
                        {
                            let mut s = shared.stats();
                            s.requests += 1;
                            s.body_bytes += body.len() as u64;
                            *s.statuses.entry(status).or_default() += 1;
                            for p in &payloads {
                                match *p {
                                    bodies::Verdict::Corrupt => s.corrupt += 1,
                                    bodies::Verdict::Unmarked if status == 200 => s.unmarked += 1,
                                    bodies::Verdict::Valid(id) if status == 200 => {
                                        s.record_delivery(id)
                                    }
                                    _ => {}
                                }
                            }
                            let e = s.label_sets.entry(label_key).or_default();
                            e.0 += 1;
                            e.1 += body.len() as u64;
                        }
                        let extra: Vec<(&str, String)> = retry_after
                            .map(|r| ("Retry-After", r.to_string()))
                            .into_iter()
                            .collect();
                        if status == 200 {
                            respond(&mut stream, 200, content_type, &extra, b"", close)?;
                        } else if corrupt {
                            let j = connect_error(
                                422,
                                "invalid_argument",
                                "loadtest: payload checksum mismatch",
                            );
                            if let Judgement::Reject {
                                content_type, body, ..
                            } = j
                            {
                                respond(
                                    &mut stream,
                                    422,
                                    Some(content_type),
                                    &extra,
                                    body.as_bytes(),
                                    close,
                                )?;
                            }
                        } else {
                            let code = pyrogate::push::Code::from_http_status(status);
                            let body = pyrogate::push::error_body(code, "loadtest: injected fault");
                            respond(
                                &mut stream,
                                status,
                                Some("application/json"),
                                &extra,
                                body.as_bytes(),
                                close,
                            )?;
                        }
                    }
                }
            }
        }
        if close {
            return Ok(());
        }
    }
}

fn record_status(shared: &Shared, status: u16, bytes: usize) {
    let mut s = shared.stats();
    s.requests += 1;
    s.body_bytes += bytes as u64;
    *s.statuses.entry(status).or_default() += 1;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bodies::{BodyPool, Mix};

    fn ingest<'a>(query: &'a str, ct: Option<&'a str>, body: &'a [u8]) -> Incoming<'a> {
        Incoming {
            method: Method::Post,
            path: b"/ingest",
            query: query.as_bytes(),
            content_type: ct.map(str::as_bytes),
            content_encoding: None,
            body,
        }
    }

    fn rejected(j: Judgement) -> (u16, String) {
        match j {
            Judgement::Reject { status, body, .. } => (status, body),
            other => panic!("accepted: {other:?}"),
        }
    }

    #[test]
    fn ingest_rules_answer_as_pyroscope_does() {
        type Case<'a> = (&'a str, Option<&'a str>, &'a [u8], u16, &'a str);
        let cases: &[Case<'_>] = &[
            (
                "from=1",
                None,
                b"a 1",
                400,
                r#"{"code":"invalid_argument","message":"name: service name is required"}"#,
            ),
            (
                "name=my%20app",
                None,
                b"a 1",
                400,
                r#"{"code":"invalid_argument","message":"name: invalid service name: my app: character is not allowed: ' '"}"#,
            ),
            (
                "name=my.app",
                None,
                b"a 1",
                400,
                r#"{"code":"invalid_argument","message":"unknown profile type: app"}"#,
            ),
            (
                "name=app.cpu",
                None,
                b"a;b x\n",
                422,
                r#"{"code":"invalid_argument","message":"folded: invalid sample count"}"#,
            ),
            (
                "name=app&format=pprof",
                Some("multipart/form-data; boundary=b"),
                b"--b--\r\n",
                422,
                r#"{"code":"invalid_argument","message":"pprof: failed to parse profile: multipart body"}"#,
            ),
            (
                "name=app",
                Some("multipart/form-data; boundary=b"),
                b"--b\r\nContent-Disposition: form-data; name=\"profile\"\r\n\r\nx\r\n--b--\r\n",
                422,
                r#"{"code":"invalid_argument","message":"pprof: missing profile part"}"#,
            ),
            (
                "name=app&format=jfr",
                Some("multipart/form-data; boundary=b"),
                b"--b--\r\n",
                422,
                r#"{"code":"invalid_argument","message":"jfr: missing jfr part"}"#,
            ),
        ];
        for (query, ct, body, status, text) in cases {
            assert_eq!(
                rejected(judge(&ingest(query, *ct, body), DEFAULT_BODY_LIMIT)),
                (*status, text.to_string()),
                "{query}"
            );
        }
    }

    #[test]
    fn routes_methods_and_the_body_limit() {
        let mut req = ingest("name=app", None, b"a;b 1\n");
        req.path = b"/nope";
        assert_eq!(
            rejected(judge(&req, 100)),
            (404, "404 page not found\n".into())
        );
        req.path = b"/pyroscope/ingest";
        req.method = Method::Get;
        assert_eq!(rejected(judge(&req, 100)), (405, String::new()));
        req.method = Method::Post;
        assert_eq!(
            rejected(judge(&req, 3)),
            (413, "request body too large\n".into())
        );
        assert!(matches!(judge(&req, 100), Judgement::Accept { .. }));
    }

    #[test]
    fn generated_bodies_of_every_shape_are_accepted_with_valid_trailers() {
        let pool = BodyPool::new(Mix::All, 10, 3, 9);
        for seq in 0..10 {
            let id = UploadId { run: 7, seq };
            let r = pool.request(id);
            let body = r.body.concat();
            let (path, query) = r.target.split_once('?').unwrap_or((&r.target, ""));
            let header = |n: &str| r.headers.iter().find(|h| h.0 == n).map(|h| h.1.as_bytes());
            let req = Incoming {
                method: Method::Post,
                path: path.as_bytes(),
                query: query.as_bytes(),
                content_type: header("Content-Type"),
                content_encoding: header("Content-Encoding"),
                body: &body,
            };
            match judge(&req, DEFAULT_BODY_LIMIT) {
                Judgement::Accept {
                    payloads,
                    label_key,
                    ..
                } => {
                    assert_eq!(payloads, vec![bodies::Verdict::Valid(id)], "{}", r.target);
                    assert!(label_key.contains("svc-"), "{label_key}");
                }
                other => panic!("{}: {other:?}", r.target),
            }
        }
    }

    #[test]
    fn push_rules_answer_with_connect_errors() {
        let series = |labels: &[(&str, &str)]| {
            let labels: Vec<(String, String)> = labels
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect();
            let sample = pyrogate::push::Sample {
                raw_profile: bytes::Bytes::from_static(b"pprof"),
                id: String::new(),
            };
            pyrogate::push::encode_series(&labels, &[sample]).concat()
        };
        let push = |ct: &'static str, body: &[u8]| -> (u16, String) {
            rejected(judge(
                &Incoming {
                    method: Method::Post,
                    path: b"/push.v1.PusherService/Push",
                    query: b"",
                    content_type: Some(ct.as_bytes()),
                    content_encoding: None,
                    body,
                },
                DEFAULT_BODY_LIMIT,
            ))
        };
        assert_eq!(push("application/connect+proto", b"").0, 415);
        assert_eq!(
            push("application/proto", b""),
            (
                400,
                r#"{"code":"invalid_argument","message":"no profiles received"}"#.into()
            )
        );
        assert_eq!(push("application/proto", &series(&[("__name__", "process_cpu")])), (400, r#"{"code":"invalid_argument","message":"invalid labels: service name is required"}"#.into()));
        assert_eq!(
            push("application/proto", &series(&[("service_name", "a")])),
            (
                400,
                r#"{"code":"invalid_argument","message":"invalid labels: __name__ is required"}"#
                    .into()
            )
        );
        assert_eq!(
            push(
                "application/proto",
                &series(&[("__name__", "p"), ("service_name", "a"), ("bad-name", "x")])
            )
            .0,
            400
        );
        let ok = series(&[("__name__", "process_cpu"), ("service_name", "a")]);
        let req = Incoming {
            method: Method::Post,
            path: b"/push.v1.PusherService/Push",
            query: b"",
            content_type: Some(b"application/proto"),
            content_encoding: None,
            body: &ok,
        };
        assert_eq!(
            judge(&req, DEFAULT_BODY_LIMIT),
            Judgement::Accept {
                label_key: "__name__=process_cpu,service_name=a".into(),
                payloads: vec![bodies::Verdict::Unmarked],
                content_type: Some("application/proto")
            }
        );
    }

    #[test]
    fn fault_rates_are_met_with_a_fixed_seed() {
        let faults = Faults {
            latency: Latency::Uniform(Duration::from_millis(1), Duration::from_millis(3)),
            error_rate: 0.05,
            error_status: 503,
            throttle_rate: 0.02,
            retry_after_secs: 2,
            reset_rate: 0.01,
            hang_rate: 0.01,
            hang_for: Duration::from_secs(1),
        };
        let mut rng = Prng::new(42);
        let (mut ok, mut err, mut thr, mut reset, mut hang) = (0, 0, 0, 0, 0);
        let mut delays = Duration::ZERO;
        for _ in 0..100_000 {
            match faults.decide(&mut rng) {
                Action::Respond {
                    status: 200,
                    retry_after: None,
                    delay,
                } => {
                    ok += 1;
                    assert!(delay >= Duration::from_millis(1) && delay < Duration::from_millis(3));
                    delays += delay;
                }
                Action::Respond {
                    status: 503,
                    retry_after: None,
                    ..
                } => err += 1,
                Action::Respond {
                    status: 429,
                    retry_after: Some(2),
                    ..
                } => thr += 1,
                Action::Reset => reset += 1,
                Action::Hang(d) => {
                    assert_eq!(d, Duration::from_secs(1));
                    hang += 1
                }
                other => panic!("{other:?}"),
            }
        }
        // Exact for this seed; within 0.2 percentage points of each rate.
        assert_eq!(
            (ok, err, thr, reset, hang),
            (91_058, 4_863, 2_019, 1_025, 1_035)
        );
        let mean = delays / ok;
        assert!(
            mean > Duration::from_micros(1_980) && mean < Duration::from_micros(2_020),
            "{mean:?}"
        );
    }

    #[test]
    fn latency_specs_parse() {
        assert_eq!(Latency::parse("0"), Some(Latency::None));
        assert_eq!(
            Latency::parse("5ms"),
            Some(Latency::Fixed(Duration::from_millis(5)))
        );
        assert_eq!(
            Latency::parse("2ms..20ms"),
            Some(Latency::Uniform(
                Duration::from_millis(2),
                Duration::from_millis(20)
            ))
        );
        assert_eq!(
            Latency::parse("exp:10ms"),
            Some(Latency::Exponential(Duration::from_millis(10)))
        );
        assert_eq!(Latency::parse("20ms..2ms"), None);
        assert_eq!(Latency::parse("fast"), None);
    }

    #[test]
    fn delivery_counts_round_trip_through_json_run_lengths() {
        let mut s = SinkStats::default();
        for seq in [0, 1, 2, 4, 4, 5] {
            s.record_delivery(UploadId { run: 3, seq });
        }
        assert_eq!(
            run_lengths(&s.deliveries[&3]),
            vec![[0, 3, 1], [3, 4, 0], [4, 5, 2], [5, 6, 1]]
        );
        let back = SinkStats::from_json(&s.to_json()).unwrap();
        assert_eq!(back.deliveries, s.deliveries);
        assert_eq!(back.delivered(UploadId { run: 3, seq: 4 }), 2);
        assert_eq!(back.delivered(UploadId { run: 3, seq: 99 }), 0);
        // Ranges out of order still rebuild the same table; malformed ones are refused.
        let shuffled =
            serde_json::json!({"statuses": {}, "deliveries": {"00000003": [[4, 6, 1], [0, 2, 1]]}});
        assert_eq!(
            SinkStats::from_json(&shuffled).unwrap().deliveries[&3],
            vec![1, 1, 0, 0, 1, 1]
        );
        let reversed = serde_json::json!({"statuses": {}, "deliveries": {"00000003": [[5, 2, 1]]}});
        assert_eq!(SinkStats::from_json(&reversed), None);
    }
}
