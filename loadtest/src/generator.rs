//! `loadtest gen`: the load generator (module `generator`: `gen` is reserved in Rust 2024), and the integrity check against the sinks.
//!
//! Owns: the three schedules — closed loop (N connections, each sends its next upload when the
//! previous one is answered), open loop at a constant rate, and the fleet burst (instances that
//! upload on wall-clock multiples of a period, as the Rust/Python SDKs do every 10 s and the Go
//! SDK every 15 s) — the client side of HTTP/1.1 keep-alive exchanges, the live progress line,
//! and [`check_integrity`]. In the open-loop and burst schedules every upload has an intended
//! send time and its latency is measured from that time, not from when a connection became free,
//! so a stall shows up in the percentiles instead of being hidden by coordinated omission. Does
//! not own the bodies (`bodies`) or the sinks. A tool: one std thread per connection, blocking
//! sockets; every run is bounded by a duration and an upload count.

use std::io::{self, IoSlice, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::BytesMut;
use pyrogate::h1::{self, ChunkedDecoder, Limits, ResponseBody};

use crate::bodies::{Request, UploadId};
use crate::integrity::SinkStats;
use crate::stats::{Latencies, Outcomes};

/// Limits for response heads.
const RESPONSE_LIMITS: Limits = Limits {
    max_head_bytes: 64 * 1024,
    max_headers: 64,
};
/// Largest response body read (error texts are short).
const MAX_RESPONSE_BODY: u64 = 1024 * 1024;
/// How often the progress line is redrawn.
const PROGRESS_EVERY: Duration = Duration::from_millis(500);

/// When uploads are sent.
#[derive(Debug, Clone)]
pub enum Schedule {
    /// Each connection sends back to back.
    Closed,
    /// Upload `i` is due at `start + i / rate`.
    Rate(f64),
    /// Upload `i` is due at `start + offsets[i]` (sorted).
    Offsets(Arc<[Duration]>),
}

/// A bounded run.
#[derive(Debug, Clone)]
pub struct Plan {
    pub connections: usize,
    pub schedule: Schedule,
    /// No upload is started after this much time.
    pub duration: Duration,
    pub max_uploads: u64,
    /// Per-exchange socket timeout.
    pub timeout: Duration,
}

/// The fleet burst: `instances` uploads on every wall-clock multiple of `period`, each instance
/// at its own fixed offset within `spread` after the boundary, for as long as `duration` lasts
/// from now. Offsets are relative to `now_unix` (the run's start).
pub fn burst_offsets(
    now_unix: Duration,
    duration: Duration,
    period: Duration,
    instances: usize,
    spread: Duration,
) -> Vec<Duration> {
    let mut out = Vec::new();
    if period.is_zero() {
        return out;
    }
    let p = period.as_nanos();
    let first = now_unix.as_nanos().div_ceil(p) * p;
    let end = now_unix.as_nanos() + duration.as_nanos();
    let mut boundary = first;
    while boundary < end {
        for k in 0..instances {
            // Instance k always fires at the same point of the spread (its clock skew).
            let skew = spread.as_nanos() * k as u128 / instances.max(1) as u128;
            let at = boundary + skew;
            if at < end {
                out.push(Duration::from_nanos((at - now_unix.as_nanos()) as u64));
            }
        }
        boundary += p;
    }
    out.sort();
    out
}

/// Live counters, read by the progress line.
#[derive(Debug, Default)]
pub struct Progress {
    pub done: AtomicU64,
    pub ok: AtomicU64,
    pub failed: AtomicU64,
}

/// What one run measured.
#[derive(Debug, Clone)]
pub struct RunResult {
    pub latencies: Latencies,
    pub outcomes: Outcomes,
    /// Per upload index: the HTTP status, or 0 when no answer came.
    pub statuses: Vec<u16>,
    pub elapsed: Duration,
    pub body_bytes: u64,
}

impl RunResult {
    pub fn uploads(&self) -> u64 {
        self.outcomes.total()
    }

    pub fn accepted(&self) -> u64 {
        self.outcomes.get("200")
    }

    pub fn per_second(&self) -> f64 {
        self.uploads() as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// One keep-alive client connection.
#[derive(Debug)]
struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
}

/// Why an exchange produced no status.
fn failure_label(e: &io::Error) -> &'static str {
    match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => "timeout",
        io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe => "reset",
        io::ErrorKind::ConnectionRefused => "refused",
        io::ErrorKind::UnexpectedEof => "closed",
        _ => "io-error",
    }
}

fn write_all_vectored(stream: &mut TcpStream, mut slices: &mut [IoSlice<'_>]) -> io::Result<()> {
    while !slices.is_empty() {
        match stream.write_vectored(slices) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => IoSlice::advance_slices(&mut slices, n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

impl Conn {
    fn open(addr: SocketAddr, timeout: Duration) -> io::Result<Conn> {
        let stream = TcpStream::connect_timeout(&addr, timeout)?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(timeout))?;
        Ok(Conn {
            stream,
            buf: Vec::with_capacity(4096),
        })
    }

    fn fill(&mut self) -> io::Result<()> {
        let start = self.buf.len();
        self.buf.resize(start + 16 * 1024, 0);
        let n = self.stream.read(&mut self.buf[start..]);
        self.buf.truncate(start + *n.as_ref().unwrap_or(&0));
        match n? {
            0 => Err(io::ErrorKind::UnexpectedEof.into()),
            _ => Ok(()),
        }
    }

    /// Sends `head` + `body` and reads the answer: (status, keep-alive).
    fn exchange(&mut self, head: &[u8], body: &[bytes::Bytes]) -> io::Result<(u16, bool)> {
        let mut slices: Vec<IoSlice<'_>> = Vec::with_capacity(body.len() + 1);
        slices.push(IoSlice::new(head));
        slices.extend(
            body.iter()
                .filter(|b| !b.is_empty())
                .map(|b| IoSlice::new(b)),
        );
        write_all_vectored(&mut self.stream, &mut slices)?;
        loop {
            let parsed = h1::parse_response(&self.buf, &RESPONSE_LIMITS, false)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
            let Some(resp) = parsed else {
                self.fill()?;
                continue;
            };
            self.buf.drain(..resp.head_len);
            if (100..200).contains(&resp.status) {
                continue;
            }
            let mut keep = resp.keep_alive;
            match resp.body {
                ResponseBody::Empty => {}
                ResponseBody::Length(n) => {
                    if n > MAX_RESPONSE_BODY {
                        return Err(io::Error::new(
                            io::ErrorKind::InvalidData,
                            "response body too large",
                        ));
                    }
                    while (self.buf.len() as u64) < n {
                        self.fill()?;
                    }
                    self.buf.drain(..n as usize);
                }
                ResponseBody::Chunked => {
                    let mut d = ChunkedDecoder::new(MAX_RESPONSE_BODY);
                    loop {
                        let p = d.decode(&self.buf, None::<&mut BytesMut>).map_err(|e| {
                            io::Error::new(io::ErrorKind::InvalidData, e.to_string())
                        })?;
                        self.buf.drain(..p.consumed);
                        if p.done {
                            break;
                        }
                        self.fill()?;
                    }
                }
                ResponseBody::UntilClose => {
                    keep = false;
                    while self.fill().is_ok() {
                        self.buf.clear();
                    }
                }
            }
            return Ok((resp.status, keep));
        }
    }
}

/// Runs `plan` against `target`: `make(i)` builds upload `i`. `label` prefixes the progress
/// line (none when `show_progress` is false).
pub fn drive(
    target: SocketAddr,
    plan: &Plan,
    make: &(dyn Fn(u64) -> Request + Sync),
    label: &str,
    show_progress: bool,
) -> RunResult {
    let start = Instant::now();
    let end = start + plan.duration;
    let next = AtomicU64::new(0);
    let progress = Progress::default();
    let finished = AtomicBool::new(false);
    let merged = Mutex::new((
        Latencies::new(),
        Outcomes::default(),
        Vec::<(u64, u16)>::new(),
        0u64,
    ));
    let host = target.to_string();
    let limit = match &plan.schedule {
        Schedule::Offsets(o) => plan.max_uploads.min(o.len() as u64),
        _ => plan.max_uploads,
    };
    std::thread::scope(|scope| {
        if show_progress {
            scope.spawn(|| {
                let mut last = Instant::now();
                while !finished.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(50));
                    if last.elapsed() >= PROGRESS_EVERY {
                        last = Instant::now();
                        let t = start.elapsed().as_secs_f64();
                        let done = progress.done.load(Ordering::Relaxed);
                        eprint!(
                            "\r{label} {t:5.1}s/{:.0}s  uploads={done} ({:.0}/s)  failed={}   ",
                            plan.duration.as_secs_f64(),
                            done as f64 / t.max(1e-9),
                            progress.failed.load(Ordering::Relaxed)
                        );
                    }
                }
                eprint!("\r{:100}\r", "");
            });
        }
        let workers: Vec<_> = (0..plan.connections.max(1))
            .map(|_| {
                scope.spawn(|| {
                    let mut lat = Latencies::new();
                    let mut out = Outcomes::default();
                    let mut statuses = Vec::new();
                    let mut bytes = 0u64;
                    let mut conn: Option<Conn> = None;
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= limit {
                            break;
                        }
                        let intended = match &plan.schedule {
                            Schedule::Closed => None,
                            Schedule::Rate(r) => {
                                Some(start + Duration::from_secs_f64(i as f64 / r))
                            }
                            Schedule::Offsets(o) => o.get(i as usize).map(|d| start + *d),
                        };
                        let now = Instant::now();
                        match intended {
                            Some(t) if t >= end => break,
                            None if now >= end => break,
                            Some(t) if t > now => std::thread::sleep(t - now),
                            _ => {}
                        }
                        let request = make(i);
                        let head = request.head(&host);
                        let t0 = intended.unwrap_or_else(Instant::now);
                        let result = match conn.as_mut() {
                            Some(c) => Ok(c),
                            None => Conn::open(target, plan.timeout).map(|c| conn.insert(c)),
                        }
                        .and_then(|c| c.exchange(&head, &request.body));
                        lat.record(t0.elapsed());
                        bytes += request.body_len() as u64;
                        progress.done.fetch_add(1, Ordering::Relaxed);
                        match result {
                            Ok((status, keep)) => {
                                out.add(&status.to_string(), 1);
                                statuses.push((i, status));
                                if status == 200 {
                                    progress.ok.fetch_add(1, Ordering::Relaxed);
                                } else {
                                    progress.failed.fetch_add(1, Ordering::Relaxed);
                                }
                                if !keep {
                                    conn = None;
                                }
                            }
                            Err(e) => {
                                out.add(failure_label(&e), 1);
                                statuses.push((i, 0));
                                progress.failed.fetch_add(1, Ordering::Relaxed);
                                conn = None;
                            }
                        }
                    }
                    let mut m = merged.lock().unwrap_or_else(|e| e.into_inner());
                    m.0.merge(&lat);
                    m.1.merge(&out);
                    m.2.extend(statuses);
                    m.3 += bytes;
                })
            })
            .collect();
        for w in workers {
            let _ = w.join();
        }
        finished.store(true, Ordering::Relaxed);
    });
    let elapsed = start.elapsed();
    let (latencies, outcomes, pairs, body_bytes) =
        merged.into_inner().unwrap_or_else(|e| e.into_inner());
    let n = pairs.iter().map(|p| p.0 + 1).max().unwrap_or(0);
    let mut statuses = vec![0u16; n as usize];
    for (i, s) in pairs {
        statuses[i as usize] = s;
    }
    RunResult {
        latencies,
        outcomes,
        statuses,
        elapsed,
        body_bytes,
    }
}

/// One destination's side of the integrity check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SinkIntegrity {
    pub name: String,
    /// Accepted uploads this sink received exactly once.
    pub exactly_once: u64,
    /// Accepted uploads it never received.
    pub missing: u64,
    /// Uploads it received more than once (at-least-once retries after a lost answer).
    pub duplicated: u64,
    /// Uploads it received although the client was not answered 200 (another destination failed).
    pub unacknowledged: u64,
    pub corrupt: u64,
}

/// Every accepted upload delivered to every destination exactly once, or counted as dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Integrity {
    pub sent: u64,
    pub accepted: u64,
    pub sinks: Vec<SinkIntegrity>,
    /// `pyrogate_dropped_total` over every endpoint, when the system is pyrogate.
    pub gateway_dropped: Option<u64>,
}

impl Integrity {
    pub fn lost(&self) -> u64 {
        let missing: u64 = self.sinks.iter().map(|s| s.missing).sum();
        missing.saturating_sub(self.gateway_dropped.unwrap_or(0))
    }

    pub fn passed(&self) -> bool {
        self.lost() == 0
            && self
                .sinks
                .iter()
                .all(|s| s.duplicated == 0 && s.corrupt == 0)
    }

    /// `ok: 4120 accepted, each delivered once to 2 sinks` or the failures.
    pub fn summary(&self) -> String {
        let mut problems = Vec::new();
        for s in &self.sinks {
            if s.missing + s.duplicated + s.corrupt > 0 {
                problems.push(format!(
                    "{}: missing={} duplicated={} corrupt={}",
                    s.name, s.missing, s.duplicated, s.corrupt
                ));
            }
        }
        let dropped = self
            .gateway_dropped
            .map(|d| format!(", gateway dropped={d}"))
            .unwrap_or_default();
        if self.passed() {
            format!(
                "ok: {} accepted of {} sent, each delivered exactly once to {} sink(s){dropped}",
                self.accepted,
                self.sent,
                self.sinks.len()
            )
        } else {
            format!(
                "FAILED: {} accepted of {} sent; {}{dropped}",
                self.accepted,
                self.sent,
                problems.join("; ")
            )
        }
    }

    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "passed": self.passed(),
            "sent": self.sent,
            "accepted": self.accepted,
            "lost": self.lost(),
            "gateway_dropped": self.gateway_dropped,
            "sinks": self.sinks.iter().map(|s| serde_json::json!({
                "name": s.name, "exactly_once": s.exactly_once, "missing": s.missing,
                "duplicated": s.duplicated, "unacknowledged": s.unacknowledged, "corrupt": s.corrupt,
            })).collect::<Vec<_>>(),
        })
    }
}

/// Compares what the client was told (`statuses`, by upload index = seq of `run`) with what
/// each sink received. `corrupt` counts are the sinks' totals over the check's window.
pub fn check_integrity(
    run: u32,
    statuses: &[u16],
    sinks: &[(String, SinkStats)],
    gateway_dropped: Option<u64>,
) -> Integrity {
    let accepted = statuses.iter().filter(|&&s| s == 200).count() as u64;
    let sinks = sinks
        .iter()
        .map(|(name, stats)| {
            let mut si = SinkIntegrity {
                name: name.clone(),
                exactly_once: 0,
                missing: 0,
                duplicated: 0,
                unacknowledged: 0,
                corrupt: stats.corrupt,
            };
            let counts = stats
                .deliveries
                .get(&run)
                .map(Vec::as_slice)
                .unwrap_or_default();
            let n = counts.len().max(statuses.len());
            for seq in 0..n {
                let got = counts.get(seq).copied().unwrap_or(0);
                let ok = statuses.get(seq) == Some(&200);
                match (ok, got) {
                    (true, 0) => si.missing += 1,
                    (true, 1) => si.exactly_once += 1,
                    (false, 0) => {}
                    (false, 1) => si.unacknowledged += 1,
                    (_, _) => si.duplicated += 1,
                }
            }
            si
        })
        .collect();
    Integrity {
        sent: statuses.len() as u64,
        accepted,
        sinks,
        gateway_dropped,
    }
}

/// A blocking `GET` on 127.0.0.1 (stats and metrics endpoints): (status, body).
pub fn http_get(addr: SocketAddr, path: &str, timeout: Duration) -> io::Result<(u16, Vec<u8>)> {
    let mut s = TcpStream::connect_timeout(&addr, timeout)?;
    s.set_read_timeout(Some(timeout))?;
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
    )?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf)?;
    let head = h1::parse_response(&buf, &RESPONSE_LIMITS, false)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?
        .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "incomplete response"))?;
    let body = buf.get(head.head_len..).unwrap_or_default();
    let body = match head.body {
        ResponseBody::Chunked => {
            let mut out = BytesMut::new();
            ChunkedDecoder::new(1 << 30)
                .decode(body, Some(&mut out))
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
            out.to_vec()
        }
        _ => body.to_vec(),
    };
    Ok((head.status, body))
}

/// The sum of every sample of `metric` in a Prometheus text exposition.
pub fn sum_metric(text: &str, metric: &str) -> u64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            l.strip_prefix(metric)
                .is_some_and(|r| r.starts_with('{') || r.starts_with(' '))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// A run tag from the clock (distinct per run, so sinks keep runs apart).
pub fn new_run_tag() -> u32 {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    (now.as_nanos() as u32) ^ ((now.as_secs() as u32).rotate_left(16)) ^ std::process::id()
}

/// The upload id of index `i` in run `run`.
pub fn id(run: u32, i: u64) -> UploadId {
    UploadId { run, seq: i }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_offsets_align_on_wall_clock_boundaries() {
        // Now = 12.3 s after the epoch; 10 s period; 4 instances spread over 200 ms; 25 s run.
        let o = burst_offsets(
            Duration::from_millis(12_300),
            Duration::from_secs(25),
            Duration::from_secs(10),
            4,
            Duration::from_millis(200),
        );
        let ms: Vec<u128> = o.iter().map(|d| d.as_millis()).collect();
        assert_eq!(
            ms,
            vec![7_700, 7_750, 7_800, 7_850, 17_700, 17_750, 17_800, 17_850]
        );
    }

    fn stats_with(run: u32, counts: &[u8], corrupt: u64) -> SinkStats {
        let mut s = SinkStats {
            corrupt,
            ..SinkStats::default()
        };
        s.deliveries.insert(run, counts.to_vec());
        s
    }

    #[test]
    fn integrity_counts_missing_duplicates_and_unacknowledged_exactly() {
        let statuses = [200, 200, 503, 200, 0];
        let a = stats_with(9, &[1, 1, 0, 1], 0);
        let b = stats_with(9, &[1, 2, 1, 0, 0], 0);
        let i = check_integrity(9, &statuses, &[("a".into(), a), ("b".into(), b)], None);
        assert_eq!(i.accepted, 3);
        assert_eq!(
            i.sinks[0],
            SinkIntegrity {
                name: "a".into(),
                exactly_once: 3,
                missing: 0,
                duplicated: 0,
                unacknowledged: 0,
                corrupt: 0
            }
        );
        assert_eq!(
            i.sinks[1],
            SinkIntegrity {
                name: "b".into(),
                exactly_once: 1,
                missing: 1,
                duplicated: 1,
                unacknowledged: 1,
                corrupt: 0
            }
        );
        assert!(!i.passed());
        assert_eq!(
            i.summary(),
            "FAILED: 3 accepted of 5 sent; b: missing=1 duplicated=1 corrupt=0"
        );
    }

    #[test]
    fn missing_uploads_the_gateway_counted_as_dropped_are_not_lost() {
        let i = check_integrity(
            1,
            &[200, 200],
            &[("a".into(), stats_with(1, &[1], 0))],
            Some(1),
        );
        assert_eq!(i.lost(), 0);
        assert!(i.passed());
        assert_eq!(
            i.summary(),
            "ok: 2 accepted of 2 sent, each delivered exactly once to 1 sink(s), gateway dropped=1"
        );
    }

    #[test]
    fn metric_sums_cover_every_label_set() {
        let text = "# TYPE pyrogate_dropped_total counter\npyrogate_dropped_total{endpoint=\"a\",reason=\"queue_full\"} 3\npyrogate_dropped_total{endpoint=\"b\",reason=\"shutdown\"} 2\npyrogate_dropped_totalx 9\n";
        assert_eq!(sum_metric(text, "pyrogate_dropped_total"), 5);
        assert_eq!(sum_metric(text, "nothing"), 0);
    }
}
