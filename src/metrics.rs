//! Counters and latency histograms, kept per core and merged only when scraped.
//!
//! Owns: the per-core metric cells ([`DestMetrics`], [`ReceiverMetrics`]), the plain-data
//! snapshots a core sends to the admin thread ([`CoreSnapshot`]), merging them, and rendering
//! the Prometheus text format. Does not own: serving HTTP (`admin`) or deciding what to count.
//! Hot path: recording is `Cell` arithmetic (no atomics); rendering is cold.
//!
//! Alloy's `pyroscope_write_*` names are kept, so existing dashboards work unchanged.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::rc::Rc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::config::Config;

/// Why an accepted upload did not reach a destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    QueueFull = 0,
    RetriesExhausted = 1,
    Rejected = 2,
    Shutdown = 3,
    /// Still queued for a destination a configuration reload removed, after its
    /// `graceful_shutdown_timeout`.
    Reload = 4,
    /// A spooled upload passed `spool.max_age` before it could be replayed.
    Expired = 5,
    /// The spool had no room (`spool.max_bytes`): its oldest uploads, or one too large.
    SpoolFull = 6,
}

impl DropReason {
    /// Every reason, in counter order.
    pub const ALL: [DropReason; 7] = [
        DropReason::QueueFull,
        DropReason::RetriesExhausted,
        DropReason::Rejected,
        DropReason::Shutdown,
        DropReason::Reload,
        DropReason::Expired,
        DropReason::SpoolFull,
    ];

    /// The `reason` label value.
    pub fn label(self) -> &'static str {
        match self {
            DropReason::QueueFull => "queue_full",
            DropReason::RetriesExhausted => "retries_exhausted",
            DropReason::Rejected => "rejected",
            DropReason::Shutdown => "shutdown",
            DropReason::Reload => "reload",
            DropReason::Expired => "expired",
            DropReason::SpoolFull => "spool_full",
        }
    }
}

/// Why a request was answered 503 before anything was queued. (Shutdown refuses nothing: a
/// request already being read is served, and a keep-alive connection is closed between
/// requests without an answer, as Go's server does.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefuseReason {
    Budget = 0,
    QueueFull = 1,
}

impl RefuseReason {
    /// Every reason, in counter order.
    pub const ALL: [RefuseReason; 2] = [RefuseReason::Budget, RefuseReason::QueueFull];

    /// The `reason` label value.
    pub fn label(self) -> &'static str {
        match self {
            RefuseReason::Budget => "budget",
            RefuseReason::QueueFull => "queue_full",
        }
    }
}

/// Upper bounds (seconds) of the rendered upstream latency histogram.
const LATENCY_BUCKETS_SECONDS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

fn new_latency_histogram() -> Histogram<u64> {
    // 1 µs .. 1 h at 2 significant digits: about 20 KiB per destination per core.
    Histogram::new_with_bounds(1, 3_600_000_000, 2).expect("static histogram bounds are valid")
}

/// Prometheus' default buckets (client_golang `prometheus.DefBuckets`), the layout of Alloy's
/// `pyroscope_write_latency` (internal/component/pyroscope/write/metrics.go).
pub const WRITE_LATENCY_BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// dskit's `instrument.DefBuckets`, the layout of `request_duration_seconds`
/// (grafana/dskit instrument/instrument.go, server/metrics.go).
pub const REQUEST_DURATION_BUCKETS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 25.0, 50.0, 100.0,
];

/// dskit's `middleware.BodySizeBuckets` (`prometheus.ExponentialBuckets(4, 4, 15)`), the
/// layout of `request_message_bytes` and `response_message_bytes`.
pub const MESSAGE_BYTES_BUCKETS: [f64; 15] = [
    4.0,
    16.0,
    64.0,
    256.0,
    1024.0,
    4096.0,
    16384.0,
    65536.0,
    262_144.0,
    1_048_576.0,
    4_194_304.0,
    16_777_216.0,
    67_108_864.0,
    268_435_456.0,
    1_073_741_824.0,
];

/// A fixed-bucket histogram on one core: a count per bucket (the last one is `+Inf`) and the
/// sum. Recording is a binary search and two `Cell` writes; cores are merged when scraped.
#[derive(Debug)]
pub struct FixedHistogram {
    bounds: &'static [f64],
    /// Observations per bucket, not cumulative; `bounds.len() + 1` entries.
    counts: Box<[Cell<u64>]>,
    sum: Cell<f64>,
}

impl FixedHistogram {
    pub fn new(bounds: &'static [f64]) -> Self {
        FixedHistogram {
            bounds,
            counts: (0..=bounds.len()).map(|_| Cell::new(0)).collect(),
            sum: Cell::new(0.0),
        }
    }

    /// Counts `v` in the first bucket whose upper bound is at least `v` (Prometheus' `le`).
    pub fn observe(&self, v: f64) {
        let i = self.bounds.partition_point(|&b| b < v);
        add(&self.counts[i], 1);
        self.sum.set(self.sum.get() + v);
    }

    pub fn snapshot(&self) -> HistogramSnapshot {
        HistogramSnapshot {
            bounds: self.bounds,
            counts: self.counts.iter().map(Cell::get).collect(),
            sum: self.sum.get(),
        }
    }
}

/// Plain-data copy of a [`FixedHistogram`].
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramSnapshot {
    pub bounds: &'static [f64],
    /// Per bucket, not cumulative; the last entry is the `+Inf` bucket.
    pub counts: Vec<u64>,
    pub sum: f64,
}

impl HistogramSnapshot {
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// `(upper bound, cumulative count)` per bucket, `+Inf` last, as exposed.
    pub fn cumulative(&self) -> impl Iterator<Item = (f64, u64)> + '_ {
        let mut running = 0;
        self.counts.iter().enumerate().map(move |(i, c)| {
            running += c;
            (
                self.bounds.get(i).copied().unwrap_or(f64::INFINITY),
                running,
            )
        })
    }

    fn merge(&mut self, o: &HistogramSnapshot) {
        for (a, b) in self.counts.iter_mut().zip(&o.counts) {
            *a += b;
        }
        self.sum += o.sum;
    }
}

/// The `type` of a `pyroscope_write_latency` observation: what Alloy's `fanOutClient` times
/// (internal/component/pyroscope/write/write.go, `observeLatency`). `*_total` spans one call
/// into the writer (an `/ingest` upload, or one Push series: Alloy appends a push's series one
/// by one) until every endpoint of the writer has finished it, with `endpoint="-"`;
/// `*_endpoint` spans one endpoint's delivery of it, retries and backoff included;
/// `*_downstream` spans one attempt (one upstream request).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteLatency {
    PushTotal = 0,
    PushEndpoint = 1,
    PushDownstream = 2,
    IngestTotal = 3,
    IngestEndpoint = 4,
    IngestDownstream = 5,
}

impl WriteLatency {
    /// Every type, in exposition order.
    pub const ALL: [WriteLatency; 6] = [
        WriteLatency::PushTotal,
        WriteLatency::PushEndpoint,
        WriteLatency::PushDownstream,
        WriteLatency::IngestTotal,
        WriteLatency::IngestEndpoint,
        WriteLatency::IngestDownstream,
    ];

    /// The `type` label value.
    pub fn label(self) -> &'static str {
        match self {
            WriteLatency::PushTotal => "push_total",
            WriteLatency::PushEndpoint => "push_endpoint",
            WriteLatency::PushDownstream => "push_downstream",
            WriteLatency::IngestTotal => "ingest_total",
            WriteLatency::IngestEndpoint => "ingest_endpoint",
            WriteLatency::IngestDownstream => "ingest_downstream",
        }
    }

    /// Whether this type is a writer's (`endpoint="-"`) rather than an endpoint's.
    pub fn is_total(self) -> bool {
        matches!(self, WriteLatency::PushTotal | WriteLatency::IngestTotal)
    }
}

/// `pyroscope_write_latency` histograms of one component or endpoint on one core, one per
/// [`WriteLatency`] type (a writer records only `*_total`, an endpoint only the others).
#[derive(Debug)]
pub struct WriteLatencies([FixedHistogram; 6]);

impl Default for WriteLatencies {
    fn default() -> Self {
        WriteLatencies(std::array::from_fn(|_| {
            FixedHistogram::new(&WRITE_LATENCY_BUCKETS)
        }))
    }
}

impl WriteLatencies {
    pub fn observe(&self, t: WriteLatency, elapsed: Duration) {
        self.0[t as usize].observe(elapsed.as_secs_f64());
    }

    fn snapshot(&self) -> Vec<HistogramSnapshot> {
        self.0.iter().map(FixedHistogram::snapshot).collect()
    }
}

/// One `pyroscope.write` component's own metrics on one core (the `*_total` latencies).
#[derive(Debug, Default)]
pub struct WriterMetrics {
    pub latency: WriteLatencies,
}

/// Plain-data copy of one writer's metrics.
#[derive(Debug, Clone, Default)]
pub struct WriterSnapshot {
    /// Indexed by [`WriteLatency`].
    pub latency: Vec<HistogramSnapshot>,
}

impl WriterSnapshot {
    fn merge(&mut self, o: &WriterSnapshot) {
        for (a, b) in self.latency.iter_mut().zip(&o.latency) {
            a.merge(b);
        }
    }
}

/// One writer's share of one upload, timed for `*_total`: it starts when the writer is given
/// the upload and each of its requests (the one `/ingest` request, or one per Push series)
/// is observed once every destination of the writer has finished that request. A destination
/// sends its requests in order, so the requests finish everywhere in order; request `i` is
/// timed from when request `i - 1` finished everywhere, as Alloy appends series one after the
/// other.
#[derive(Debug)]
pub struct WriteSpan {
    writer: Rc<WriterMetrics>,
    kind: WriteLatency,
    /// When the previous request finished everywhere (at first, when the span started).
    last: Cell<Instant>,
    /// Per request, the destinations still working on it.
    remaining: Remaining,
}

/// Per request of a [`WriteSpan`], the destinations still working on it; an `/ingest` upload's
/// single request needs no allocation of its own.
#[derive(Debug)]
enum Remaining {
    One(Cell<usize>),
    Many(Box<[Cell<usize>]>),
}

impl Remaining {
    fn new(requests: usize, destinations: usize) -> Self {
        match requests {
            1 => Remaining::One(Cell::new(destinations)),
            n => Remaining::Many((0..n).map(|_| Cell::new(destinations)).collect()),
        }
    }

    fn len(&self) -> usize {
        match self {
            Remaining::One(_) => 1,
            Remaining::Many(all) => all.len(),
        }
    }

    fn get(&self, i: usize) -> Option<&Cell<usize>> {
        match self {
            Remaining::One(left) => (i == 0).then_some(left),
            Remaining::Many(all) => all.get(i),
        }
    }
}

impl WriteSpan {
    /// Starts a span of `requests` requests, each sent to `destinations` destinations. With no
    /// destination (the writer rejected the upload) every request is observed now, as Alloy's
    /// `AppendIngest` observes a call that fails its label check.
    pub fn start(
        writer: &Rc<WriterMetrics>,
        kind: WriteLatency,
        requests: usize,
        destinations: usize,
    ) -> Rc<WriteSpan> {
        let span = Rc::new(WriteSpan {
            writer: writer.clone(),
            kind,
            last: Cell::new(Instant::now()),
            remaining: Remaining::new(requests, destinations),
        });
        if destinations == 0 {
            for _ in 0..requests {
                span.writer.latency.observe(kind, Duration::ZERO);
            }
        }
        span
    }

    /// How many requests the span covers.
    pub fn requests(&self) -> usize {
        self.remaining.len()
    }

    /// One destination finished request `i` (delivered or given up).
    pub fn finished(&self, i: usize) {
        let Some(left) = self.remaining.get(i) else {
            return;
        };
        if left.get() == 0 {
            return;
        }
        left.set(left.get() - 1);
        if left.get() == 0 {
            let now = Instant::now();
            let since = self.last.replace(now);
            self.writer
                .latency
                .observe(self.kind, now.saturating_duration_since(since));
        }
    }
}

/// dskit's HTTP server instrumentation for one `(method, route)` of one receiver on one core
/// (grafana/dskit middleware/instrument.go).
#[derive(Debug)]
struct HttpRoute {
    method: &'static str,
    route: &'static str,
    inflight: Cell<u64>,
    request_bytes: FixedHistogram,
    response_bytes: FixedHistogram,
    /// `request_duration_seconds` by `(status_code, ws)`.
    durations: RefCell<Vec<(u16, bool, FixedHistogram)>>,
}

/// One request being served, counted in `inflight_requests` until it is dropped; its
/// duration and sizes are observed by [`HttpRequest::finish`]. A request abandoned without an
/// answer (the client went away, a read timed out) only leaves the in-flight gauge.
#[derive(Debug)]
pub struct HttpRequest {
    route: Rc<HttpRoute>,
    started: Instant,
    ws: bool,
}

impl HttpRequest {
    /// The answer was written: `status`, `request_bytes` body bytes read and
    /// `response_bytes` body bytes sent (dskit counts bodies, not heads).
    pub fn finish(self, status: u16, request_bytes: u64, response_bytes: u64) {
        let r = &self.route;
        r.request_bytes.observe(request_bytes as f64);
        r.response_bytes.observe(response_bytes as f64);
        let seconds = self.started.elapsed().as_secs_f64();
        // The borrow ends within this block: never held across an await.
        let mut durations = r.durations.borrow_mut();
        match durations
            .iter()
            .find(|(s, w, _)| *s == status && *w == self.ws)
        {
            Some((_, _, h)) => h.observe(seconds),
            None => {
                let h = FixedHistogram::new(&REQUEST_DURATION_BUCKETS);
                h.observe(seconds);
                durations.push((status, self.ws, h));
            }
        }
    }
}

impl Drop for HttpRequest {
    fn drop(&mut self) {
        let r = &self.route;
        r.inflight.set(r.inflight.get().saturating_sub(1));
    }
}

/// Plain-data copy of one `(method, route)`'s HTTP server metrics.
#[derive(Debug, Clone)]
pub struct HttpSnapshot {
    pub method: &'static str,
    pub route: &'static str,
    pub inflight: u64,
    pub request_bytes: HistogramSnapshot,
    pub response_bytes: HistogramSnapshot,
    /// `(status_code, ws, duration)`.
    pub durations: Vec<(u16, bool, HistogramSnapshot)>,
}

impl HttpSnapshot {
    fn merge(&mut self, o: &HttpSnapshot) {
        self.inflight += o.inflight;
        self.request_bytes.merge(&o.request_bytes);
        self.response_bytes.merge(&o.response_bytes);
        for (status, ws, h) in &o.durations {
            match self
                .durations
                .iter_mut()
                .find(|(s, w, _)| s == status && w == ws)
            {
                Some((_, _, mine)) => mine.merge(h),
                None => self.durations.push((*status, *ws, h.clone())),
            }
        }
    }
}

/// Merges `(method, route)` series of two cores.
fn merge_http(into: &mut Vec<HttpSnapshot>, from: &[HttpSnapshot]) {
    for b in from {
        match into
            .iter_mut()
            .find(|a| a.method == b.method && a.route == b.route)
        {
            Some(a) => a.merge(b),
            None => into.push(b.clone()),
        }
    }
}

/// One destination's metrics on one core.
#[derive(Debug)]
pub struct DestMetrics {
    pub sent_bytes: Cell<u64>,
    pub sent_profiles: Cell<u64>,
    pub dropped_bytes: Cell<u64>,
    pub dropped_profiles: Cell<u64>,
    pub retries: Cell<u64>,
    dropped: [Cell<u64>; DropReason::ALL.len()],
    /// Profiles this destination was given (queued, or refused before queueing).
    accepted_profiles: Cell<u64>,
    /// Accepted profiles not yet delivered or dropped (queued or being sent).
    pending_profiles: Cell<u64>,
    /// Uploads written to the spool (spill-over).
    spilled: Cell<u64>,
    /// Time from enqueue to final success, in microseconds.
    latency: RefCell<Histogram<u64>>,
    /// The destination's most recent degraded-state message (the status page's "last error").
    last_error: RefCell<Option<LastError>>,
    /// Alloy's `pyroscope_write_latency` (`*_endpoint`, `*_downstream`).
    pub write_latency: WriteLatencies,
}

impl Default for DestMetrics {
    fn default() -> Self {
        DestMetrics {
            sent_bytes: Cell::new(0),
            sent_profiles: Cell::new(0),
            dropped_bytes: Cell::new(0),
            dropped_profiles: Cell::new(0),
            retries: Cell::new(0),
            dropped: Default::default(),
            accepted_profiles: Cell::new(0),
            pending_profiles: Cell::new(0),
            spilled: Cell::new(0),
            latency: RefCell::new(new_latency_histogram()),
            last_error: RefCell::new(None),
            write_latency: WriteLatencies::default(),
        }
    }
}

fn add(c: &Cell<u64>, n: u64) {
    c.set(c.get().wrapping_add(n));
}

impl DestMetrics {
    /// The destination was given `profiles` profiles; each ends delivered or dropped, so
    /// accepted = delivered + dropped + pending at every moment.
    pub fn record_accepted(&self, profiles: u64) {
        add(&self.accepted_profiles, profiles);
        add(&self.pending_profiles, profiles);
    }

    /// Accepted profiles neither delivered nor dropped yet.
    pub fn pending_profiles(&self) -> u64 {
        self.pending_profiles.get()
    }

    fn settle(&self, profiles: u64) {
        self.pending_profiles
            .set(self.pending_profiles.get().saturating_sub(profiles));
    }

    pub fn record_sent(&self, bytes: u64, profiles: u64, latency: Duration) {
        self.settle(profiles);
        add(&self.sent_bytes, bytes);
        add(&self.sent_profiles, profiles);
        let micros = u64::try_from(latency.as_micros())
            .unwrap_or(u64::MAX)
            .max(1);
        self.latency.borrow_mut().saturating_record(micros);
    }

    pub fn record_dropped(&self, bytes: u64, profiles: u64, reason: DropReason) {
        self.settle(profiles);
        add(&self.dropped_bytes, bytes);
        add(&self.dropped_profiles, profiles);
        add(&self.dropped[reason as usize], 1);
    }

    /// An upload left memory for the spool: its profiles count as spooled from now on.
    pub fn record_spooled(&self, profiles: u64) {
        self.settle(profiles);
        add(&self.spilled, 1);
    }

    /// A spooled upload was given back after a failed replay: spooled again, not a new spill.
    pub fn record_respooled(&self, profiles: u64) {
        self.settle(profiles);
    }

    /// A spooled upload is being replayed: its profiles are in flight again.
    pub fn record_unspooled(&self, profiles: u64) {
        add(&self.pending_profiles, profiles);
    }

    pub fn record_retry(&self) {
        add(&self.retries, 1);
    }

    /// Remembers `message` (cut to [`MAX_LAST_ERROR_BYTES`]) as the destination's last error,
    /// stamped with the wall-clock time. Reuses the previous message's buffer.
    pub fn record_error(&self, message: std::fmt::Arguments<'_>) {
        let unix_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        let mut slot = self.last_error.borrow_mut();
        let e = slot.get_or_insert_with(|| LastError {
            unix_ms,
            message: String::new(),
        });
        e.unix_ms = unix_ms;
        e.message.clear();
        let _ = e.message.write_fmt(message);
        if e.message.len() > MAX_LAST_ERROR_BYTES {
            let mut cut = MAX_LAST_ERROR_BYTES;
            while !e.message.is_char_boundary(cut) {
                cut -= 1;
            }
            e.message.truncate(cut);
            e.message.push('…');
        }
    }

    pub fn dropped_total(&self) -> u64 {
        self.dropped.iter().map(Cell::get).sum()
    }

    fn snapshot(&self, queue_depth: u64) -> DestSnapshot {
        DestSnapshot {
            sent_bytes: self.sent_bytes.get(),
            sent_profiles: self.sent_profiles.get(),
            dropped_bytes: self.dropped_bytes.get(),
            dropped_profiles: self.dropped_profiles.get(),
            retries: self.retries.get(),
            dropped: self.dropped.each_ref().map(Cell::get),
            accepted_profiles: self.accepted_profiles.get(),
            pending_profiles: self.pending_profiles.get(),
            latency: self.latency.borrow().clone(),
            write_latency: self.write_latency.snapshot(),
            queue_depth,
            last_error: self.last_error.borrow().clone(),
            spilled: self.spilled.get(),
            spool: None,
        }
    }
}

/// One receiver's metrics on one core.
#[derive(Debug, Default)]
pub struct ReceiverMetrics {
    requests: RefCell<BTreeMap<(&'static str, u16), u64>>,
    refused: [Cell<u64>; RefuseReason::ALL.len()],
    connections: Cell<u64>,
    /// dskit's server instrumentation, one entry per `(method, route)` seen.
    http: RefCell<Vec<Rc<HttpRoute>>>,
    /// Debug-info calls forwarded, per [`crate::debuginfo::Call`] and result (success,
    /// failure).
    debuginfo_calls: [[Cell<u64>; 2]; 3],
}

impl ReceiverMetrics {
    /// A request on `route` (dskit's route name) with `method` starts being served: counted
    /// in flight until the returned value is dropped. `ws`: the request is a WebSocket
    /// handshake (dskit's `ws` label).
    pub fn begin_request(
        &self,
        method: &'static str,
        route: &'static str,
        ws: bool,
    ) -> HttpRequest {
        // The borrow ends within this function: never held across an await.
        let mut http = self.http.borrow_mut();
        let r = match http.iter().find(|r| r.method == method && r.route == route) {
            Some(r) => r.clone(),
            None => {
                let r = Rc::new(HttpRoute {
                    method,
                    route,
                    inflight: Cell::new(0),
                    request_bytes: FixedHistogram::new(&MESSAGE_BYTES_BUCKETS),
                    response_bytes: FixedHistogram::new(&MESSAGE_BYTES_BUCKETS),
                    durations: RefCell::new(Vec::new()),
                });
                http.push(r.clone());
                r
            }
        };
        add(&r.inflight, 1);
        HttpRequest {
            route: r,
            started: Instant::now(),
            ws,
        }
    }

    pub fn record_request(&self, route: &'static str, status: u16) {
        *self
            .requests
            .borrow_mut()
            .entry((route, status))
            .or_insert(0) += 1;
    }

    /// The receiver's open connections on this core.
    pub fn set_connections(&self, open: usize) {
        self.connections.set(open as u64);
    }

    pub fn record_refused(&self, reason: RefuseReason) {
        add(&self.refused[reason as usize], 1);
    }

    /// One debug-info call answered: Alloy's `recordDownstream`.
    pub fn record_debuginfo(&self, call: crate::debuginfo::Call, success: bool) {
        add(
            &self.debuginfo_calls[call as usize][usize::from(!success)],
            1,
        );
    }

    fn snapshot(&self) -> ReceiverSnapshot {
        ReceiverSnapshot {
            requests: self.requests.borrow().clone(),
            refused: self.refused.each_ref().map(Cell::get),
            connections: self.connections.get(),
            debuginfo_calls: self
                .debuginfo_calls
                .each_ref()
                .map(|r| r.each_ref().map(Cell::get)),
            http: self
                .http
                .borrow()
                .iter()
                .map(|r| HttpSnapshot {
                    method: r.method,
                    route: r.route,
                    inflight: r.inflight.get(),
                    request_bytes: r.request_bytes.snapshot(),
                    response_bytes: r.response_bytes.snapshot(),
                    durations: r
                        .durations
                        .borrow()
                        .iter()
                        .map(|(s, w, h)| (*s, *w, h.snapshot()))
                        .collect(),
                })
                .collect(),
        }
    }
}

/// One `pyroscope.relabel` component's metrics on one core (Alloy's counters; the cache is
/// per core, so `cache_size` sums the cores' caches).
#[derive(Debug, Default)]
pub struct RelabelMetrics {
    processed: Cell<u64>,
    written: Cell<u64>,
    dropped: Cell<u64>,
    cache_hits: Cell<u64>,
    cache_misses: Cell<u64>,
    cache_size: Cell<u64>,
}

impl RelabelMetrics {
    /// A profile reached the component and was forwarded (`written`) or dropped by a rule.
    pub fn record(&self, written: bool) {
        add(&self.processed, 1);
        add(
            if written {
                &self.written
            } else {
                &self.dropped
            },
            1,
        );
    }

    /// A cache lookup; `size` is the cache's length after it.
    pub fn record_lookup(&self, hit: bool, size: usize) {
        add(
            if hit {
                &self.cache_hits
            } else {
                &self.cache_misses
            },
            1,
        );
        self.cache_size.set(size as u64);
    }

    fn snapshot(&self) -> RelabelSnapshot {
        RelabelSnapshot {
            processed: self.processed.get(),
            written: self.written.get(),
            dropped: self.dropped.get(),
            cache_hits: self.cache_hits.get(),
            cache_misses: self.cache_misses.get(),
            cache_size: self.cache_size.get(),
        }
    }
}

/// Plain-data copy of one relabel component's metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RelabelSnapshot {
    pub processed: u64,
    pub written: u64,
    pub dropped: u64,
    pub cache_hits: u64,
    pub cache_misses: u64,
    pub cache_size: u64,
}

impl RelabelSnapshot {
    fn merge(&mut self, o: &RelabelSnapshot) {
        self.processed += o.processed;
        self.written += o.written;
        self.dropped += o.dropped;
        self.cache_hits += o.cache_hits;
        self.cache_misses += o.cache_misses;
        self.cache_size += o.cache_size;
    }
}

/// Plain-data copy of one destination's metrics (sent across threads).
#[derive(Debug, Clone)]
pub struct DestSnapshot {
    pub sent_bytes: u64,
    pub sent_profiles: u64,
    pub dropped_bytes: u64,
    pub dropped_profiles: u64,
    pub retries: u64,
    pub dropped: [u64; DropReason::ALL.len()],
    pub accepted_profiles: u64,
    pub pending_profiles: u64,
    pub latency: Histogram<u64>,
    /// Indexed by [`WriteLatency`].
    pub write_latency: Vec<HistogramSnapshot>,
    pub queue_depth: u64,
    /// The latest error over the merged cores, if any.
    pub last_error: Option<LastError>,
    /// Uploads written to the spool.
    pub spilled: u64,
    /// The destination's spool figures (one core reports them; see [`DestSnapshot::add_spool`]).
    pub spool: Option<SpoolStats>,
}

/// Longest last-error message kept per destination and core; longer ones are cut (an upstream's
/// error text can be long).
pub const MAX_LAST_ERROR_BYTES: usize = 512;

/// A destination's most recent error message and when it happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastError {
    /// Milliseconds since the Unix epoch.
    pub unix_ms: u64,
    pub message: String,
}

/// Figures of one destination's spool (shared by every core), plain data.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SpoolStats {
    /// Bytes of the segment files.
    pub bytes: u64,
    /// Uploads waiting for replay (not counting those being replayed now), and their profiles.
    pub records: u64,
    pub profiles: u64,
    /// Accepted time of the oldest waiting upload, Unix ms (0 when none).
    pub oldest_at_unix_ms: u64,
    /// Age of that upload when the snapshot was taken, ms.
    pub oldest_age_ms: u64,
    pub replayed_records: u64,
    pub expired_records: u64,
    pub expired_profiles: u64,
    pub expired_bytes: u64,
    pub full_records: u64,
    pub full_profiles: u64,
    pub full_bytes: u64,
    /// Bytes cut from torn or corrupt tails at start; records found corrupt at replay.
    pub truncated_bytes: u64,
    pub corrupt_records: u64,
    /// Profiles found in the spool at start (accepted by an earlier run).
    pub recovered_profiles: u64,
}

impl DestSnapshot {
    fn merge(&mut self, o: &DestSnapshot) {
        self.sent_bytes += o.sent_bytes;
        self.sent_profiles += o.sent_profiles;
        self.dropped_bytes += o.dropped_bytes;
        self.dropped_profiles += o.dropped_profiles;
        self.retries += o.retries;
        self.accepted_profiles += o.accepted_profiles;
        self.pending_profiles += o.pending_profiles;
        for (a, b) in self.dropped.iter_mut().zip(o.dropped) {
            *a += b;
        }
        // Both histograms have identical bounds, so adding cannot fail.
        let _ = self.latency.add(&o.latency);
        for (a, b) in self.write_latency.iter_mut().zip(&o.write_latency) {
            a.merge(b);
        }
        self.queue_depth += o.queue_depth;
        if let Some(theirs) = &o.last_error
            && self
                .last_error
                .as_ref()
                .is_none_or(|mine| theirs.unix_ms > mine.unix_ms)
        {
            self.last_error = Some(theirs.clone());
        }
        self.spilled += o.spilled;
        if self.spool.is_none() {
            self.spool.clone_from(&o.spool);
        }
    }

    /// Folds the destination's spool figures in, once for all cores: the spool's own drops
    /// (`expired`, `spool_full`) join the drop counters, and profiles recovered at start join
    /// the accepted ones, so accepted = delivered + dropped + in flight + spooled holds.
    pub fn add_spool(&mut self, s: SpoolStats) {
        self.dropped[DropReason::Expired as usize] += s.expired_records;
        self.dropped[DropReason::SpoolFull as usize] += s.full_records;
        self.dropped_profiles += s.expired_profiles + s.full_profiles;
        self.dropped_bytes += s.expired_bytes + s.full_bytes;
        self.accepted_profiles += s.recovered_profiles;
        self.spool = Some(s);
    }
}

/// The spool families (only when some destination spools, so `/metrics` is unchanged
/// without a spool).
fn render_spool(f: &mut Family<'_>, snap: &CoreSnapshot, names: &[String]) {
    if snap.dests.iter().all(|d| d.spool.is_none()) {
        return;
    }
    type Field = fn(&DestSnapshot, &SpoolStats) -> f64;
    let families: [(&str, &str, &str, Field); 8] = [
        (
            "pyrogate_spool_bytes",
            "gauge",
            "Bytes of a destination's spool files.",
            |_, s| s.bytes as f64,
        ),
        (
            "pyrogate_spool_records",
            "gauge",
            "Uploads waiting in a destination's spool.",
            |_, s| s.records as f64,
        ),
        (
            "pyrogate_spool_profiles",
            "gauge",
            "Profiles waiting in a destination's spool; accepted = sent + dropped + in flight + spooled.",
            |_, s| s.profiles as f64,
        ),
        (
            "pyrogate_spool_oldest_age_seconds",
            "gauge",
            "Age of the oldest upload waiting in a destination's spool (0 when empty).",
            |_, s| s.oldest_age_ms as f64 / 1000.0,
        ),
        (
            "pyrogate_spool_spilled_total",
            "counter",
            "Uploads written to a destination's spool instead of being dropped.",
            |d, _| d.spilled as f64,
        ),
        (
            "pyrogate_spool_replayed_total",
            "counter",
            "Spooled uploads delivered to their destination.",
            |_, s| s.replayed_records as f64,
        ),
        (
            "pyrogate_spool_truncated_bytes_total",
            "counter",
            "Bytes of torn or corrupt spool tails cut at start.",
            |_, s| s.truncated_bytes as f64,
        ),
        (
            "pyrogate_spool_corrupt_records_total",
            "counter",
            "Spooled uploads found corrupt at replay and skipped.",
            |_, s| s.corrupt_records as f64,
        ),
    ];
    for (metric, kind, help, field) in families {
        f.header(metric, kind, help);
        for (d, n) in snap.dests.iter().zip(names) {
            if let Some(s) = &d.spool {
                f.sample(metric, &[label("endpoint", n)], field(d, s));
            }
        }
    }
}

/// Plain-data copy of one receiver's metrics.
#[derive(Debug, Clone, Default)]
pub struct ReceiverSnapshot {
    pub requests: BTreeMap<(&'static str, u16), u64>,
    pub refused: [u64; RefuseReason::ALL.len()],
    pub connections: u64,
    /// Debug-info calls per `Call` and result (success, failure).
    pub debuginfo_calls: [[u64; 2]; 3],
    /// dskit's server metrics per `(method, route)`.
    pub http: Vec<HttpSnapshot>,
}

/// Everything one core reports when asked.
#[derive(Debug, Clone, Default)]
pub struct CoreSnapshot {
    /// Indexed like the core's destinations (writer order, then endpoint order).
    pub dests: Vec<DestSnapshot>,
    /// Indexed like `Config::receivers`.
    pub receivers: Vec<ReceiverSnapshot>,
    /// Indexed like `Config::relabels`.
    pub relabels: Vec<RelabelSnapshot>,
    /// Indexed like `Config::writers`.
    pub writers: Vec<WriterSnapshot>,
    pub inflight_bytes: u64,
    /// `(core index, I/O driver name)` of each core merged in.
    pub cores: Vec<(usize, &'static str)>,
}

impl CoreSnapshot {
    pub fn capture<'a>(
        dests: impl Iterator<Item = (&'a DestMetrics, u64)>,
        receivers: impl Iterator<Item = &'a ReceiverMetrics>,
        relabels: impl Iterator<Item = &'a RelabelMetrics>,
        inflight_bytes: u64,
    ) -> Self {
        CoreSnapshot {
            dests: dests.map(|(m, depth)| m.snapshot(depth)).collect(),
            receivers: receivers.map(ReceiverMetrics::snapshot).collect(),
            relabels: relabels.map(RelabelMetrics::snapshot).collect(),
            writers: Vec::new(),
            inflight_bytes,
            cores: Vec::new(),
        }
    }

    /// Adds the writers' own metrics (`Config::writers` order).
    pub fn with_writers<'a>(mut self, writers: impl Iterator<Item = &'a WriterMetrics>) -> Self {
        self.writers = writers
            .map(|w| WriterSnapshot {
                latency: w.latency.snapshot(),
            })
            .collect();
        self
    }

    /// Records which core this is and the I/O driver it runs on.
    pub fn with_core(mut self, index: usize, driver: &'static str) -> Self {
        self.cores = vec![(index, driver)];
        self
    }

    /// Adds `other` into `self` (same configuration on every core).
    pub fn merge(&mut self, other: &CoreSnapshot) {
        if self.dests.is_empty()
            && self.receivers.is_empty()
            && self.relabels.is_empty()
            && self.writers.is_empty()
        {
            *self = other.clone();
            return;
        }
        self.cores.extend_from_slice(&other.cores);
        for (a, b) in self.dests.iter_mut().zip(&other.dests) {
            a.merge(b);
        }
        for (a, b) in self.receivers.iter_mut().zip(&other.receivers) {
            for (k, v) in &b.requests {
                *a.requests.entry(*k).or_insert(0) += v;
            }
            for (x, y) in a.refused.iter_mut().zip(b.refused) {
                *x += y;
            }
            a.connections += b.connections;
            for (x, y) in a.debuginfo_calls.iter_mut().zip(b.debuginfo_calls) {
                for (x, y) in x.iter_mut().zip(y) {
                    *x += y;
                }
            }
            merge_http(&mut a.http, &b.http);
        }
        for (a, b) in self.writers.iter_mut().zip(&other.writers) {
            a.merge(b);
        }
        for (a, b) in self.relabels.iter_mut().zip(&other.relabels) {
            a.merge(b);
        }
        self.inflight_bytes += other.inflight_bytes;
    }

    /// Uploads delivered and dropped over every destination (the shutdown summary).
    pub fn totals(&self) -> (u64, u64) {
        let delivered = self.dests.iter().map(|d| d.sent_profiles).sum();
        let dropped = self
            .dests
            .iter()
            .map(|d| d.dropped.iter().sum::<u64>())
            .sum();
        (delivered, dropped)
    }
}

/// The `component_id` of each destination's writer (`pyroscope.write.LABEL`), in core
/// destination order.
pub fn destination_components(config: &Config) -> Vec<String> {
    config
        .writers
        .iter()
        .flat_map(|w| {
            w.endpoints
                .iter()
                .map(move |_| format!("pyroscope.write.{}", w.label))
        })
        .collect()
}

/// The `endpoint` label of each destination, in core destination order.
pub fn destination_names(config: &Config) -> Vec<String> {
    config
        .writers
        .iter()
        .flat_map(|w| w.endpoints.iter().map(|e| e.url_text.clone()))
        .collect()
}

fn escape_label(v: &str, out: &mut String) {
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

fn label(name: &str, value: &str) -> String {
    let mut s = String::with_capacity(name.len() + value.len() + 4);
    s.push_str(name);
    s.push_str("=\"");
    escape_label(value, &mut s);
    s.push('"');
    s
}

struct Family<'a> {
    out: &'a mut String,
}

impl Family<'_> {
    fn header(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }
    fn sample(&mut self, name: &str, labels: &[String], value: impl std::fmt::Display) {
        if labels.is_empty() {
            let _ = writeln!(self.out, "{name} {value}");
        } else {
            let _ = writeln!(self.out, "{name}{{{}}} {value}", labels.join(","));
        }
    }
    /// One histogram series: cumulative `_bucket`s (`le` last, `+Inf` included), `_sum`,
    /// `_count`, in client_golang's order.
    fn histogram(&mut self, name: &str, labels: &[String], h: &HistogramSnapshot) {
        let bucket = format!("{name}_bucket");
        let mut with_le = labels.to_vec();
        with_le.push(String::new());
        for (le, count) in h.cumulative() {
            if let Some(last) = with_le.last_mut() {
                *last = label("le", &go_float(le));
            }
            self.sample(&bucket, &with_le, count);
        }
        self.sample(&format!("{name}_sum"), labels, go_float(h.sum));
        self.sample(&format!("{name}_count"), labels, h.count());
    }
}

/// A float as client_golang's text exposition writes it (expfmt `writeFloat`: Go's
/// `strconv.FormatFloat(f, 'g', -1, 64)`, `+Inf`), so `le` label values are the very
/// strings Alloy exposes: `0.005`, `1`, `262144`, `1.048576e+06`.
pub fn go_float(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "+Inf" } else { "-Inf" }.into();
    }
    if f == 0.0 {
        return "0".into();
    }
    // Shortest round-trip digits; with the shortest precision Go's 'g' switches to the
    // exponent form when the decimal exponent is below -4 or at least 6 (strconv/ftoa.go:
    // `if shortest { eprec = 6 }`), and writes at least two exponent digits.
    let sci = format!("{f:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if (-4..6).contains(&exp) {
        return format!("{f}");
    }
    let sign = if exp < 0 { '-' } else { '+' };
    format!("{mantissa}e{sign}{:02}", exp.unsigned_abs())
}

/// Renders merged metrics in the Prometheus text exposition format (version 0.0.4).
pub fn render(config: &Config, snap: &CoreSnapshot) -> String {
    render_with(config, snap, &Process::current())
}

/// [`render`] with the process figures given (for tests).
pub fn render_with(config: &Config, snap: &CoreSnapshot, process: &Process) -> String {
    let names = destination_names(config);
    let components = destination_components(config);
    let mut out = String::with_capacity(4096);
    let mut f = Family { out: &mut out };
    type Field = fn(&DestSnapshot) -> u64;
    // Alloy's names and help texts (internal/component/pyroscope/write/metrics.go); every
    // series carries `component_id` and `component_path`, as Alloy's registry adds them.
    let per_endpoint: [(&str, &str, Field); 5] = [
        (
            "pyroscope_write_sent_bytes_total",
            "Total number of compressed bytes sent to Pyroscope.",
            |d| d.sent_bytes,
        ),
        (
            "pyroscope_write_dropped_bytes_total",
            "Total number of compressed bytes dropped by Pyroscope.",
            |d| d.dropped_bytes,
        ),
        (
            "pyroscope_write_sent_profiles_total",
            "Total number of profiles sent to Pyroscope.",
            |d| d.sent_profiles,
        ),
        (
            "pyroscope_write_dropped_profiles_total",
            "Total number of profiles dropped by Pyroscope.",
            |d| d.dropped_profiles,
        ),
        (
            "pyroscope_write_retries_total",
            "Total number of retries to Pyroscope.",
            |d| d.retries,
        ),
    ];
    for (metric, help, field) in per_endpoint {
        f.header(metric, "counter", help);
        for ((d, n), c) in snap.dests.iter().zip(&names).zip(&components) {
            f.sample(
                metric,
                &[
                    label("component_id", c),
                    label("component_path", "/"),
                    label("endpoint", n),
                ],
                field(d),
            );
        }
    }
    // Alloy's write latency histogram: `*_total` per writer with `endpoint="-"`, the other
    // types per endpoint. Native histograms (protobuf exposition) are not offered.
    let h = "pyroscope_write_latency";
    f.header(
        h,
        "histogram",
        "Write latency for sending profiles to pyroscope",
    );
    for (w, wc) in snap.writers.iter().zip(&config.writers) {
        let component = format!("pyroscope.write.{}", wc.label);
        for t in WriteLatency::ALL.into_iter().filter(|t| t.is_total()) {
            if let Some(hist) = w.latency.get(t as usize) {
                let labels = [
                    label("component_id", &component),
                    label("component_path", "/"),
                    label("endpoint", "-"),
                    label("type", t.label()),
                ];
                f.histogram(h, &labels, hist);
            }
        }
    }
    for ((d, n), c) in snap.dests.iter().zip(&names).zip(&components) {
        for t in WriteLatency::ALL.into_iter().filter(|t| !t.is_total()) {
            if let Some(hist) = d.write_latency.get(t as usize) {
                let labels = [
                    label("component_id", c),
                    label("component_path", "/"),
                    label("endpoint", n),
                    label("type", t.label()),
                ];
                f.histogram(h, &labels, hist);
            }
        }
    }
    f.header(
        "pyrogate_dropped_total",
        "counter",
        "Accepted uploads not delivered to a destination, by reason.",
    );
    for (d, n) in snap.dests.iter().zip(&names) {
        for (i, reason) in DropReason::ALL.iter().map(|r| r.label()).enumerate() {
            f.sample(
                "pyrogate_dropped_total",
                &[label("endpoint", n), label("reason", reason)],
                d.dropped[i],
            );
        }
    }
    f.header(
        "pyrogate_accepted_profiles_total",
        "counter",
        "Profiles given to a destination; each ends delivered (pyroscope_write_sent_profiles_total), dropped (pyroscope_write_dropped_profiles_total) or is still in flight (pyrogate_inflight_profiles).",
    );
    for (d, n) in snap.dests.iter().zip(&names) {
        f.sample(
            "pyrogate_accepted_profiles_total",
            &[label("endpoint", n)],
            d.accepted_profiles,
        );
    }
    f.header(
        "pyrogate_inflight_profiles",
        "gauge",
        "Accepted profiles queued or being sent to a destination.",
    );
    for (d, n) in snap.dests.iter().zip(&names) {
        f.sample(
            "pyrogate_inflight_profiles",
            &[label("endpoint", n)],
            d.pending_profiles,
        );
    }
    render_spool(&mut f, snap, &names);
    f.header(
        "pyrogate_queue_depth",
        "gauge",
        "Uploads waiting in a destination's queues.",
    );
    for (d, n) in snap.dests.iter().zip(&names) {
        f.sample(
            "pyrogate_queue_depth",
            &[label("endpoint", n)],
            d.queue_depth,
        );
    }
    let h = "pyrogate_upstream_latency_seconds";
    f.header(
        h,
        "histogram",
        "Time from enqueue to successful delivery, retries included.",
    );
    for (d, n) in snap.dests.iter().zip(&names) {
        for le in LATENCY_BUCKETS_SECONDS {
            let micros = (le * 1e6) as u64;
            let count = d.latency.count_between(0, micros);
            f.sample(
                &format!("{h}_bucket"),
                &[label("endpoint", n), label("le", &le.to_string())],
                count,
            );
        }
        let total = d.latency.len();
        f.sample(
            &format!("{h}_bucket"),
            &[label("endpoint", n), label("le", "+Inf")],
            total,
        );
        let sum_seconds = d.latency.mean() * total as f64 / 1e6;
        f.sample(&format!("{h}_sum"), &[label("endpoint", n)], sum_seconds);
        f.sample(&format!("{h}_count"), &[label("endpoint", n)], total);
    }
    f.header(
        "pyrogate_requests_total",
        "counter",
        "Requests answered, by receiver, route and status.",
    );
    for (r, rc) in snap.receivers.iter().zip(&config.receivers) {
        for ((route, status), v) in &r.requests {
            f.sample(
                "pyrogate_requests_total",
                &[
                    label("receiver", &rc.label),
                    label("route", route),
                    label("status", &status.to_string()),
                ],
                v,
            );
        }
    }
    f.header(
        "pyrogate_refused_total",
        "counter",
        "Requests answered 503 before anything was queued, by reason.",
    );
    for (r, rc) in snap.receivers.iter().zip(&config.receivers) {
        for (i, reason) in RefuseReason::ALL.iter().map(|r| r.label()).enumerate() {
            f.sample(
                "pyrogate_refused_total",
                &[label("receiver", &rc.label), label("reason", reason)],
                r.refused[i],
            );
        }
    }
    type RelabelField = fn(&RelabelSnapshot) -> u64;
    let relabel: [(&str, &str, &str, RelabelField); 6] = [
        (
            "pyroscope_relabel_profiles_processed",
            "counter",
            "Total number of profiles processed",
            |r| r.processed,
        ),
        (
            "pyroscope_relabel_profiles_written",
            "counter",
            "Total number of profiles forwarded",
            |r| r.written,
        ),
        (
            "pyroscope_relabel_profiles_dropped",
            "counter",
            "Total number of profiles dropped by relabeling rules",
            |r| r.dropped,
        ),
        (
            "pyroscope_relabel_cache_hits",
            "counter",
            "Total number of cache hits",
            |r| r.cache_hits,
        ),
        (
            "pyroscope_relabel_cache_misses",
            "counter",
            "Total number of cache misses",
            |r| r.cache_misses,
        ),
        (
            "pyroscope_relabel_cache_size",
            "gauge",
            "Total size of relabel cache",
            |r| r.cache_size,
        ),
    ];
    if !config.relabels.is_empty() {
        for (metric, kind, help, field) in relabel {
            f.header(metric, kind, help);
            for (r, rc) in snap.relabels.iter().zip(&config.relabels) {
                f.sample(
                    metric,
                    &[
                        label("component_id", &format!("pyroscope.relabel.{}", rc.label)),
                        label("component_path", "/"),
                    ],
                    field(r),
                );
            }
        }
    }
    // receive_http's connection gauges, as Alloy's (dskit server metrics, namespace
    // pyroscope_receive_http), labelled by component.
    f.header(
        "pyroscope_receive_http_tcp_connections",
        "gauge",
        "Current number of accepted TCP connections.",
    );
    for (r, rc) in snap.receivers.iter().zip(&config.receivers) {
        f.sample(
            "pyroscope_receive_http_tcp_connections",
            &[
                label(
                    "component_id",
                    &format!("pyroscope.receive_http.{}", rc.label),
                ),
                label("component_path", "/"),
                label("protocol", "http"),
            ],
            r.connections,
        );
    }
    f.header(
        "pyroscope_receive_http_tcp_connections_limit",
        "gauge",
        "The max number of TCP connections that can be accepted (0 means no limit).",
    );
    for rc in &config.receivers {
        f.sample(
            "pyroscope_receive_http_tcp_connections_limit",
            &[
                label(
                    "component_id",
                    &format!("pyroscope.receive_http.{}", rc.label),
                ),
                label("component_path", "/"),
                label("protocol", "http"),
            ],
            rc.http.conn_limit,
        );
    }
    render_debuginfo(&mut f, config, snap);
    render_http(&mut f, config, snap);
    f.header("pyrogate_connections", "gauge", "Open client connections.");
    for (r, rc) in snap.receivers.iter().zip(&config.receivers) {
        f.sample(
            "pyrogate_connections",
            &[label("receiver", &rc.label)],
            r.connections,
        );
    }
    f.header(
        "pyrogate_inflight_bytes",
        "gauge",
        "Body bytes held in memory (being received or queued).",
    );
    f.sample("pyrogate_inflight_bytes", &[], snap.inflight_bytes);
    f.header(
        "pyrogate_core_driver",
        "gauge",
        "The I/O driver each core thread runs on (uring: io_uring; legacy: epoll); always 1.",
    );
    let mut cores = snap.cores.clone();
    cores.sort_unstable();
    for (index, driver) in cores {
        f.sample(
            "pyrogate_core_driver",
            &[label("core", &index.to_string()), label("driver", driver)],
            1u64,
        );
    }
    process.render(&mut f);
    out
}

/// receive_http's debug-info proxy counter, as Alloy's (`receive_http/metrics.go`): a
/// `(method, result)` series appears once such a call was answered.
fn render_debuginfo(f: &mut Family<'_>, config: &Config, snap: &CoreSnapshot) {
    let name = "pyroscope_receive_http_debuginfo_downstream_calls_total";
    f.header(
        name,
        "counter",
        "Total number of downstream debuginfo calls made by the receive_http proxy, labeled by method and result.",
    );
    for (r, rc) in snap.receivers.iter().zip(&config.receivers) {
        for call in crate::debuginfo::Call::ALL {
            for (i, result) in ["success", "failure"].into_iter().enumerate() {
                let n = r.debuginfo_calls[call as usize][i];
                if n == 0 {
                    continue;
                }
                f.sample(
                    name,
                    &[
                        label(
                            "component_id",
                            &format!("pyroscope.receive_http.{}", rc.label),
                        ),
                        label("component_path", "/"),
                        label("method", call.as_str()),
                        label("result", result),
                    ],
                    n,
                );
            }
        }
    }
}

/// receive_http's request instrumentation, as dskit's server middleware exposes it with the
/// namespace `pyroscope_receive_http` (grafana/dskit server/metrics.go,
/// middleware/instrument.go): only the `(method, route)` and status combinations seen so far
/// have series, as with client_golang's vectors.
fn render_http(f: &mut Family<'_>, config: &Config, snap: &CoreSnapshot) {
    let receivers: Vec<(String, Vec<&HttpSnapshot>)> = snap
        .receivers
        .iter()
        .zip(&config.receivers)
        .map(|(r, rc)| {
            let mut http: Vec<&HttpSnapshot> = r.http.iter().collect();
            http.sort_by_key(|h| (h.method, h.route));
            (format!("pyroscope.receive_http.{}", rc.label), http)
        })
        .collect();
    let base = |component: &str, h: &HttpSnapshot| {
        vec![
            label("component_id", component),
            label("component_path", "/"),
            label("method", h.method),
            label("route", h.route),
        ]
    };
    let name = "pyroscope_receive_http_request_duration_seconds";
    f.header(
        name,
        "histogram",
        "Time (in seconds) spent serving HTTP requests.",
    );
    for (component, http) in &receivers {
        for h in http {
            let mut durations: Vec<&(u16, bool, HistogramSnapshot)> = h.durations.iter().collect();
            durations.sort_by_key(|(s, w, _)| (*s, *w));
            for (status, ws, hist) in durations {
                let mut labels = base(component, h);
                labels.push(label("status_code", &status.to_string()));
                labels.push(label("ws", if *ws { "true" } else { "false" }));
                f.histogram(name, &labels, hist);
            }
        }
    }
    type Sizes = fn(&HttpSnapshot) -> &HistogramSnapshot;
    let sizes: [(&str, &str, Sizes); 2] = [
        (
            "pyroscope_receive_http_request_message_bytes",
            "Size (in bytes) of messages received in the request.",
            |h| &h.request_bytes,
        ),
        (
            "pyroscope_receive_http_response_message_bytes",
            "Size (in bytes) of messages sent in response.",
            |h| &h.response_bytes,
        ),
    ];
    for (name, help, field) in sizes {
        f.header(name, "histogram", help);
        for (component, http) in &receivers {
            for h in http {
                f.histogram(name, &base(component, h), field(h));
            }
        }
    }
    let name = "pyroscope_receive_http_inflight_requests";
    f.header(name, "gauge", "Current number of inflight requests.");
    for (component, http) in &receivers {
        for h in http {
            f.sample(name, &base(component, h), h.inflight);
        }
    }
}

/// The process figures every Prometheus exporter publishes (client_golang's process
/// collector), read from `/proc/self` (Linux `proc(5)`), plus `pyrogate_build_info`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Process {
    pub cpu_seconds: f64,
    pub resident_bytes: u64,
    pub virtual_bytes: u64,
    pub open_fds: u64,
    pub max_fds: u64,
    pub start_time_seconds: f64,
}

impl Process {
    /// Reads this process's figures; a field that cannot be read is 0.
    pub fn current() -> Self {
        let mut p = Process::default();
        // Times in /proc/self/stat are in USER_HZ, 100 on every Linux architecture (the
        // kernel's fixed ABI for /proc, proc(5)); memory comes from /proc/self/status in kB,
        // so the page size does not matter.
        const USER_HZ: f64 = 100.0;
        if let Ok(stat) = std::fs::read_to_string("/proc/self/stat") {
            // Fields after the parenthesised command name (which may hold spaces): utime is
            // field 14, stime 15, starttime 22.
            if let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) {
                let f: Vec<&str> = rest.split_whitespace().collect();
                let num = |i: usize| {
                    f.get(i - 3)
                        .and_then(|v| v.parse::<u64>().ok())
                        .unwrap_or(0)
                };
                p.cpu_seconds = (num(14) + num(15)) as f64 / USER_HZ;
                let boot = std::fs::read_to_string("/proc/stat")
                    .ok()
                    .and_then(|s| {
                        s.lines()
                            .find_map(|l| l.strip_prefix("btime "))
                            .and_then(|v| v.trim().parse::<u64>().ok())
                    })
                    .unwrap_or(0);
                p.start_time_seconds = boot as f64 + num(22) as f64 / USER_HZ;
            }
        }
        if let Ok(status) = std::fs::read_to_string("/proc/self/status") {
            let kb = |key: &str| {
                status
                    .lines()
                    .find_map(|l| l.strip_prefix(key))
                    .and_then(|v| v.split_whitespace().next())
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or(0)
                    * 1024
            };
            p.resident_bytes = kb("VmRSS:");
            p.virtual_bytes = kb("VmSize:");
        }
        p.open_fds = std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count() as u64);
        if let Ok(limits) = std::fs::read_to_string("/proc/self/limits") {
            p.max_fds = limits
                .lines()
                .find(|l| l.starts_with("Max open files"))
                .and_then(|l| l.split_whitespace().nth(3))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
        }
        p
    }

    fn render(&self, f: &mut Family<'_>) {
        let gauges: [(&str, &str, &str, f64); 6] = [
            (
                "process_cpu_seconds_total",
                "counter",
                "Total user and system CPU time spent in seconds.",
                self.cpu_seconds,
            ),
            (
                "process_resident_memory_bytes",
                "gauge",
                "Resident memory size in bytes.",
                self.resident_bytes as f64,
            ),
            (
                "process_virtual_memory_bytes",
                "gauge",
                "Virtual memory size in bytes.",
                self.virtual_bytes as f64,
            ),
            (
                "process_open_fds",
                "gauge",
                "Number of open file descriptors.",
                self.open_fds as f64,
            ),
            (
                "process_max_fds",
                "gauge",
                "Maximum number of open file descriptors.",
                self.max_fds as f64,
            ),
            (
                "process_start_time_seconds",
                "gauge",
                "Start time of the process since unix epoch in seconds.",
                self.start_time_seconds,
            ),
        ];
        for (name, kind, help, v) in gauges {
            f.header(name, kind, help);
            f.sample(name, &[], v);
        }
        f.header(
            "pyrogate_build_info",
            "gauge",
            "A metric with a constant '1' value labelled by version and revision of pyrogate.",
        );
        f.sample(
            "pyrogate_build_info",
            &[
                label("version", env!("CARGO_PKG_VERSION")),
                label(
                    "revision",
                    option_env!("PYROGATE_REVISION").unwrap_or("unknown"),
                ),
            ],
            1,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_are_written_as_client_golang_writes_them() {
        let cases = [
            (0.005, "0.005"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (1.0, "1"),
            (2.5, "2.5"),
            (100.0, "100"),
            (262_144.0, "262144"),
            (1_048_576.0, "1.048576e+06"),
            (1_073_741_824.0, "1.073741824e+09"),
            (1e21, "1e+21"),
            (0.0, "0"),
            (f64::INFINITY, "+Inf"),
        ];
        for (f, want) in cases {
            assert_eq!(go_float(f), want, "{f}");
        }
    }

    #[test]
    fn an_observation_on_a_bound_counts_in_that_bucket() {
        let h = FixedHistogram::new(&WRITE_LATENCY_BUCKETS);
        for v in [0.005, 0.0051, 10.0, 11.0, 0.0] {
            h.observe(v);
        }
        let s = h.snapshot();
        let cumulative: Vec<(f64, u64)> = s.cumulative().collect();
        assert_eq!(cumulative[0], (0.005, 2));
        assert_eq!(cumulative[1], (0.01, 3));
        assert_eq!(cumulative[10], (10.0, 4));
        assert_eq!(cumulative[11], (f64::INFINITY, 5));
        assert_eq!(s.count(), 5);
        assert!((s.sum - 21.0101).abs() < 1e-9);
    }

    #[test]
    fn a_write_span_observes_each_request_once_every_destination_finished_it() {
        let w = Rc::new(WriterMetrics::default());
        let span = WriteSpan::start(&w, WriteLatency::PushTotal, 2, 2);
        let count = |t: WriteLatency| w.latency.snapshot()[t as usize].count();
        span.finished(0);
        assert_eq!(count(WriteLatency::PushTotal), 0);
        span.finished(0);
        assert_eq!(count(WriteLatency::PushTotal), 1);
        span.finished(1);
        span.finished(1);
        span.finished(1);
        assert_eq!(count(WriteLatency::PushTotal), 2, "never more than once");
        // A writer that rejected the upload is timed at once.
        WriteSpan::start(&w, WriteLatency::IngestTotal, 1, 0);
        assert_eq!(count(WriteLatency::IngestTotal), 1);
        assert_eq!(count(WriteLatency::IngestEndpoint), 0);
    }

    #[test]
    fn http_requests_merge_by_method_route_and_status_and_leave_the_gauge() {
        let cores = [ReceiverMetrics::default(), ReceiverMetrics::default()];
        let held = cores[1].begin_request("POST", "ingest", false);
        for m in &cores {
            m.begin_request("POST", "ingest", false).finish(200, 100, 0);
            m.begin_request("POST", "ingest", false)
                .finish(400, 5000, 12);
            m.begin_request("GET", "other", false).finish(404, 0, 19);
        }
        let mut merged = ReceiverSnapshot::default();
        for m in &cores {
            merge_http(&mut merged.http, &m.snapshot().http);
        }
        let ingest = merged
            .http
            .iter()
            .find(|h| (h.method, h.route) == ("POST", "ingest"))
            .expect("POST ingest");
        assert_eq!(ingest.inflight, 1);
        assert_eq!(ingest.request_bytes.count(), 4);
        assert_eq!(ingest.request_bytes.sum, 10_200.0);
        let statuses: Vec<(u16, u64)> = ingest
            .durations
            .iter()
            .map(|(s, _, h)| (*s, h.count()))
            .collect();
        assert_eq!(statuses, [(200, 2), (400, 2)]);
        drop(held);
        assert_eq!(cores[1].snapshot().http[0].inflight, 0);
    }
}

#[cfg(test)]
mod spool_tests {
    use super::*;

    fn config() -> Config {
        let text = "pyroscope.receive_http \"r\" {\n  http {\n    listen_port = 0\n  }\n  forward_to = [pyroscope.write.w.receiver]\n}\npyroscope.write \"w\" {\n  endpoint {\n    url = \"http://a:4040\"\n  }\n}\n";
        crate::config::load_str("t.alloy", text, &crate::config::ProcessEnvironment)
            .unwrap()
            .config
    }

    fn process() -> Process {
        Process {
            cpu_seconds: 0.0,
            resident_bytes: 0,
            virtual_bytes: 0,
            open_fds: 0,
            max_fds: 0,
            start_time_seconds: 0.0,
        }
    }

    fn snapshot(m: &DestMetrics) -> CoreSnapshot {
        CoreSnapshot::capture(
            [(m, 0)].into_iter(),
            std::iter::empty(),
            std::iter::empty(),
            0,
        )
    }

    #[test]
    fn without_a_spool_no_spool_series_are_rendered() {
        let m = DestMetrics::default();
        let text = render_with(&config(), &snapshot(&m), &process());
        assert!(!text.contains("pyrogate_spool_"), "{text}");
        assert!(
            text.contains(
                "pyrogate_dropped_total{endpoint=\"http://a:4040\",reason=\"expired\"} 0"
            )
        );
    }

    #[test]
    fn spool_figures_join_the_account_once_however_many_cores() {
        // Core 0 spilled 3 uploads of 1 profile each; the spool (shared) expired one, holds
        // two, and had 4 profiles from an earlier run of which 4 were delivered by core 1.
        let core0 = DestMetrics::default();
        core0.record_accepted(3);
        for _ in 0..3 {
            core0.record_spooled(1);
        }
        let core1 = DestMetrics::default();
        for _ in 0..4 {
            core1.record_unspooled(1);
            core1.record_sent(10, 1, Duration::from_millis(1));
        }
        let stats = SpoolStats {
            bytes: 4096,
            records: 2,
            profiles: 2,
            oldest_at_unix_ms: 1,
            oldest_age_ms: 2500,
            replayed_records: 4,
            expired_records: 1,
            expired_profiles: 1,
            expired_bytes: 10,
            recovered_profiles: 4,
            ..SpoolStats::default()
        };
        let mut merged = snapshot(&core0);
        merged.dests[0].add_spool(stats);
        merged.merge(&snapshot(&core1));
        let d = &merged.dests[0];
        assert_eq!(
            d.accepted_profiles,
            d.sent_profiles + d.dropped_profiles + d.pending_profiles + 2,
            "accepted = sent + dropped + in flight + spooled"
        );
        let text = render_with(&config(), &merged, &process());
        for line in [
            "pyrogate_spool_bytes{endpoint=\"http://a:4040\"} 4096",
            "pyrogate_spool_records{endpoint=\"http://a:4040\"} 2",
            "pyrogate_spool_profiles{endpoint=\"http://a:4040\"} 2",
            "pyrogate_spool_oldest_age_seconds{endpoint=\"http://a:4040\"} 2.5",
            "pyrogate_spool_spilled_total{endpoint=\"http://a:4040\"} 3",
            "pyrogate_spool_replayed_total{endpoint=\"http://a:4040\"} 4",
            "pyrogate_dropped_total{endpoint=\"http://a:4040\",reason=\"expired\"} 1",
            "pyrogate_accepted_profiles_total{endpoint=\"http://a:4040\"} 7",
        ] {
            assert!(text.contains(line), "missing {line}:\n{text}");
        }
    }
}
