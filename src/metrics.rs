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
use std::time::Duration;

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
}

impl DropReason {
    /// Every reason, in counter order.
    pub const ALL: [DropReason; 5] = [
        DropReason::QueueFull,
        DropReason::RetriesExhausted,
        DropReason::Rejected,
        DropReason::Shutdown,
        DropReason::Reload,
    ];

    /// The `reason` label value.
    pub fn label(self) -> &'static str {
        match self {
            DropReason::QueueFull => "queue_full",
            DropReason::RetriesExhausted => "retries_exhausted",
            DropReason::Rejected => "rejected",
            DropReason::Shutdown => "shutdown",
            DropReason::Reload => "reload",
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
    /// Time from enqueue to final success, in microseconds.
    latency: RefCell<Histogram<u64>>,
    /// The destination's most recent degraded-state message (the status page's "last error").
    last_error: RefCell<Option<LastError>>,
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
            latency: RefCell::new(new_latency_histogram()),
            last_error: RefCell::new(None),
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
            queue_depth,
            last_error: self.last_error.borrow().clone(),
        }
    }
}

/// One receiver's metrics on one core.
#[derive(Debug, Default)]
pub struct ReceiverMetrics {
    requests: RefCell<BTreeMap<(&'static str, u16), u64>>,
    refused: [Cell<u64>; RefuseReason::ALL.len()],
    connections: Cell<u64>,
}

impl ReceiverMetrics {
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

    fn snapshot(&self) -> ReceiverSnapshot {
        ReceiverSnapshot {
            requests: self.requests.borrow().clone(),
            refused: self.refused.each_ref().map(Cell::get),
            connections: self.connections.get(),
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
    pub queue_depth: u64,
    /// The latest error over the merged cores, if any.
    pub last_error: Option<LastError>,
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
        self.queue_depth += o.queue_depth;
        if let Some(theirs) = &o.last_error
            && self
                .last_error
                .as_ref()
                .is_none_or(|mine| theirs.unix_ms > mine.unix_ms)
        {
            self.last_error = Some(theirs.clone());
        }
    }
}

/// Plain-data copy of one receiver's metrics.
#[derive(Debug, Clone, Default)]
pub struct ReceiverSnapshot {
    pub requests: BTreeMap<(&'static str, u16), u64>,
    pub refused: [u64; RefuseReason::ALL.len()],
    pub connections: u64,
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
    pub inflight_bytes: u64,
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
            inflight_bytes,
        }
    }

    /// Adds `other` into `self` (same configuration on every core).
    pub fn merge(&mut self, other: &CoreSnapshot) {
        if self.dests.is_empty() && self.receivers.is_empty() && self.relabels.is_empty() {
            *self = other.clone();
            return;
        }
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
    process.render(&mut f);
    out
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
