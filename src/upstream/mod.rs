//! Destinations: one per `endpoint` of each `pyroscope.write`, instantiated on every core.
//!
//! Owns: a destination's per-core state — its bounded queue, its senders' shared state
//! (resolved addresses, idle keep-alive connections, pre-rendered static headers), metrics —
//! and periodic DNS re-resolution off the core thread. Does not own: the delivery loop
//! ([`sender`]) or the wire exchange ([`client`]). Hot path: yes, but everything built here is
//! built once at start.

pub mod backoff;
pub mod client;
pub mod debuginfo;
pub mod oauth2;
pub mod proxy;
pub mod recovery;
pub mod redirect;
pub mod replay;
pub mod resolve;
pub mod sender;
pub mod spill;
pub mod transport;

use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::capture::CaptureSink;
use crate::config::{Endpoint, EndpointUrl};
use crate::metrics::DestMetrics;
use crate::sync::{Notify, Queue};
use crate::upload::Outbound;

/// `User-Agent` of every upstream request.
pub const USER_AGENT: &str = concat!("pyrogate/", env!("CARGO_PKG_VERSION"));

/// Where a destination delivers.
#[derive(Debug)]
pub enum Target {
    Http(HttpTarget),
    Capture(Arc<CaptureSink>),
}

/// Per-core state of an `http://` destination.
#[derive(Debug)]
pub struct HttpTarget {
    pub host: String,
    pub port: u16,
    /// `Host` header value (`host[:port]`, port omitted when it is the default).
    pub host_header: String,
    /// The endpoint URL's path, joined with each request's path.
    pub base_path: String,
    /// Latest resolution; replaced wholesale by the DNS refresh task.
    pub addrs: RefCell<Rc<[SocketAddr]>>,
    pub next_addr: Cell<usize>,
    /// Idle keep-alive connections, most recently used last.
    pub idle: RefCell<Vec<client::Connection>>,
}

/// One endpoint on one core.
#[derive(Debug)]
pub struct Destination {
    pub endpoint: Endpoint,
    pub queue: Queue<Outbound>,
    pub metrics: DestMetrics,
    /// Uploads taken from the queue and not yet finished (shutdown accounting).
    pub in_flight: Cell<usize>,
    /// Woken whenever a sender finishes an upload (`in_flight` went down), so the shutdown
    /// drain waits for the destination to settle instead of polling.
    pub settled: Notify,
    /// Probing and wake-up of uploads waiting to retry ([`recovery`]).
    pub recovery: recovery::Recovery,
    pub target: Target,
    /// Headers sent on every request, in order: endpoint `headers` (except Content-Type),
    /// `http_headers`, authorization, `User-Agent`.
    pub static_headers: Vec<(Bytes, Bytes)>,
    /// Endpoint-configured `Content-Type`, used only when the client sent none (Alloy's order).
    pub fallback_content_type: Option<Bytes>,
    /// Upstream paths of the `/ingest`, `/pyroscope/ingest` and Push routes, joined with the
    /// endpoint path and escaped once at start rather than per upload.
    routed_paths: [String; 4],
    /// TLS, proxy and credential source, shared with the other cores.
    pub transport: Arc<transport::Transport>,
    /// This core's view of the current `Authorization` value.
    pub auth: crate::secrets::AuthView,
    last_warn: Cell<Option<Instant>>,
    suppressed_warnings: Cell<u64>,
    /// This destination's spool (shared by every core), when it spools.
    pub spool: Option<Arc<crate::spool::Store>>,
    /// Since when every attempt on this core has failed (a retryable failure with no success
    /// since); `None` while the destination answers.
    pub failing_since: Cell<Option<Instant>>,
    /// Shutting down while failing: whatever is still in memory goes to the spool.
    pub draining: Cell<bool>,
    /// This core's spill writes for this destination, grouped ([`spill`]).
    pub spill_queue: Rc<spill::SpillQueue>,
}

/// How long a spooling destination may fail before new uploads go to its spool instead of
/// waiting in memory (and retry loops hand theirs over).
pub const SPILL_AFTER_FAILING: Duration = Duration::from_secs(3);

/// The request paths the receivers route to uploads.
const ROUTED_PATHS: [&str; 4] = [
    "/ingest",
    "/pyroscope/ingest",
    crate::push::PUSH_PATH,
    crate::otlp::OTLP_PATH,
];

fn base_of(url: &EndpointUrl) -> &str {
    match url {
        EndpointUrl::Http { path, .. } => path,
        EndpointUrl::Capture { .. } => "",
    }
}

/// Where a request to `request_path` goes on an endpoint whose URL path is `base`: for
/// `/ingest`, Go's `path.Join` (Alloy's `AppendIngest`); for Push, the URL path without its
/// trailing slash followed by the method path (connect-go's client). Escaped as Go's
/// `EscapedPath`.
fn upstream_path_for(base: &str, request_path: &str) -> String {
    let mut out = String::with_capacity(base.len() + request_path.len() + 8);
    if request_path == crate::push::PUSH_PATH {
        crate::labels::path_escape(base.trim_end_matches('/'), &mut out);
        out.push_str(request_path);
    } else {
        crate::labels::path_escape(&crate::labels::join_path(base, request_path), &mut out);
    }
    out
}

/// Upper bound on warnings a destination logs: one per this interval, the rest counted.
const WARN_INTERVAL: Duration = Duration::from_secs(5);

/// How long a failing destination must go without a failure before a delivery marks it up
/// again, so a destination that fails every other upload logs two lines, not one per upload.
pub const HEALTH_SETTLE: Duration = Duration::from_secs(5);

/// Whether an endpoint is failing, shared by every core that sends to it: one log line when
/// deliveries start failing (`destination down`, warn) and one when they succeed again after
/// [`HEALTH_SETTLE`] without a failure (`destination up`, info, with how long it was down and
/// how many uploads failed meanwhile). Written only on failures and on the transitions; a
/// delivery reads one flag.
#[derive(Debug)]
pub struct Health {
    base: Instant,
    down: AtomicBool,
    /// Milliseconds since `base`.
    down_since_ms: AtomicU64,
    last_failure_ms: AtomicU64,
    /// Uploads given up on since the destination went down.
    failures: AtomicU64,
}

impl Default for Health {
    fn default() -> Self {
        Health {
            base: Instant::now(),
            down: AtomicBool::new(false),
            down_since_ms: AtomicU64::new(0),
            last_failure_ms: AtomicU64::new(0),
            failures: AtomicU64::new(0),
        }
    }
}

impl Health {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.base.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// An upload to `endpoint` was given up on because the destination failed (`cause`).
    pub fn failed(&self, endpoint: &str, cause: &str) {
        let now = self.now_ms();
        self.last_failure_ms.store(now, Ordering::Relaxed);
        self.failures.fetch_add(1, Ordering::Relaxed);
        if !self.down.swap(true, Ordering::AcqRel) {
            self.down_since_ms.store(now, Ordering::Relaxed);
            self.failures.store(1, Ordering::Relaxed);
            tracing::warn!(endpoint = %endpoint, cause = %cause, "destination down");
        }
    }

    /// An upload to `endpoint` was delivered.
    pub fn delivered(&self, endpoint: &str) {
        if !self.down.load(Ordering::Relaxed) {
            return;
        }
        let now = self.now_ms();
        let quiet = now.saturating_sub(self.last_failure_ms.load(Ordering::Relaxed));
        if quiet < HEALTH_SETTLE.as_millis() as u64 || !self.down.swap(false, Ordering::AcqRel) {
            return;
        }
        let since = self.down_since_ms.load(Ordering::Relaxed);
        let down_for = Duration::from_millis(now.saturating_sub(since));
        let failed = self.failures.swap(0, Ordering::Relaxed);
        tracing::info!(
            endpoint = %endpoint,
            down_for = %format!("{:.1}s", down_for.as_secs_f64()),
            failed_uploads = failed,
            "destination up"
        );
    }
}

impl Destination {
    /// Builds the destination for `core` with a plain transport (no TLS, proxy or auth).
    pub fn new(endpoint: &Endpoint, core: usize, addrs: Vec<SocketAddr>) -> std::io::Result<Self> {
        Self::with_transport(endpoint, core, addrs, Arc::default())
    }

    /// Builds the destination for `core`. `addrs` is the start-up resolution of the host it
    /// dials (its proxy's when it has one).
    pub fn with_transport(
        endpoint: &Endpoint,
        core: usize,
        addrs: Vec<SocketAddr>,
        transport: Arc<transport::Transport>,
    ) -> std::io::Result<Self> {
        let target = match &endpoint.url {
            EndpointUrl::Http {
                host,
                port,
                path,
                tls,
            } => {
                let default_port = if *tls { 443 } else { 80 };
                let host_literal = if host.contains(':') {
                    format!("[{host}]")
                } else {
                    host.clone()
                };
                let host_header = if *port == default_port {
                    host_literal
                } else {
                    format!("{host_literal}:{port}")
                };
                let (host, port) = match &transport.proxy {
                    Some(p) => (&p.host, &p.port),
                    None => (host, port),
                };
                Target::Http(HttpTarget {
                    host: host.clone(),
                    port: *port,
                    host_header,
                    base_path: path.clone(),
                    addrs: RefCell::new(addrs.into()),
                    next_addr: Cell::new(core),
                    idle: RefCell::new(Vec::new()),
                })
            }
            EndpointUrl::Capture { dir } => {
                Target::Capture(Arc::new(CaptureSink::new(dir.clone(), core)))
            }
        };
        let (static_headers, fallback_content_type) = static_headers(endpoint)?;
        let auth = crate::secrets::AuthView::new(transport.auth.clone());
        Ok(Destination {
            endpoint: endpoint.clone(),
            queue: Queue::new(endpoint.queue_capacity),
            metrics: DestMetrics::default(),
            in_flight: Cell::new(0),
            settled: Notify::new(),
            recovery: recovery::Recovery::default(),
            target,
            static_headers,
            fallback_content_type,
            routed_paths: ROUTED_PATHS.map(|p| upstream_path_for(base_of(&endpoint.url), p)),
            transport,
            auth,
            last_warn: Cell::new(None),
            suppressed_warnings: Cell::new(0),
            spool: None,
            failing_since: Cell::new(None),
            draining: Cell::new(false),
            spill_queue: Rc::default(),
        })
    }

    /// Attaches the destination's spool.
    pub fn with_spool(mut self, spool: Option<Arc<crate::spool::Store>>) -> Self {
        self.spool = spool;
        self
    }

    /// An attempt failed in a way worth retrying: the destination is failing.
    pub fn note_failure(&self) {
        if self.failing_since.get().is_none() {
            self.failing_since.set(Some(Instant::now()));
        }
    }

    /// The destination answered.
    pub fn note_success(&self) {
        self.failing_since.set(None);
    }

    /// Whether uploads for this destination go to its spool rather than stay in memory: it
    /// spools, and it has been failing for [`SPILL_AFTER_FAILING`] (or is failing at shutdown).
    pub fn spills_now(&self) -> bool {
        self.spool.is_some()
            && (self.draining.get()
                || self
                    .failing_since
                    .get()
                    .is_some_and(|t| t.elapsed() >= SPILL_AFTER_FAILING))
    }

    /// The endpoint's base path (`""` for capture destinations).
    pub fn base_path(&self) -> &str {
        match &self.target {
            Target::Http(h) => &h.base_path,
            Target::Capture(_) => "",
        }
    }

    /// The upstream path (escaped) for a request to `request_path` on the receiver.
    pub fn upstream_path(&self, request_path: &str) -> std::borrow::Cow<'_, str> {
        match ROUTED_PATHS.iter().position(|p| *p == request_path) {
            Some(i) => std::borrow::Cow::Borrowed(&self.routed_paths[i]),
            None => std::borrow::Cow::Owned(upstream_path_for(self.base_path(), request_path)),
        }
    }

    /// Number of sender tasks to run on each core.
    pub fn senders(&self) -> usize {
        match self.target {
            Target::Http(_) => self.endpoint.senders_per_core.max(1),
            // One writer per core keeps a segment's records in order.
            Target::Capture(_) => 1,
        }
    }

    /// Logs a degraded-state warning at most once per [`WARN_INTERVAL`]; every one (logged or
    /// not) becomes the destination's last error on the status page.
    pub fn warn(&self, message: std::fmt::Arguments<'_>) {
        self.metrics.record_error(message);
        let now = Instant::now();
        if self
            .last_warn
            .get()
            .is_some_and(|t| now.duration_since(t) < WARN_INTERVAL)
        {
            self.suppressed_warnings
                .set(self.suppressed_warnings.get() + 1);
            return;
        }
        let suppressed = self.suppressed_warnings.replace(0);
        self.last_warn.set(Some(now));
        tracing::warn!(endpoint = %self.endpoint.url_text, suppressed, "{}", message);
    }
}

/// Headers every request carries, and the endpoint's fallback `Content-Type`.
type StaticHeaders = (Vec<(Bytes, Bytes)>, Option<Bytes>);

/// Renders the headers every request of this endpoint carries (all but Authorization).
fn static_headers(e: &Endpoint) -> std::io::Result<StaticHeaders> {
    let mut out: Vec<(Bytes, Bytes)> = Vec::new();
    let mut content_type = None;
    let mut has_ua = false;
    for (n, v) in &e.headers {
        if n.eq_ignore_ascii_case("content-type") {
            content_type = Some(Bytes::from(v.clone()));
            continue;
        }
        has_ua |= n.eq_ignore_ascii_case("user-agent");
        out.push((Bytes::from(n.clone()), Bytes::from(v.clone())));
    }
    for (n, vs) in &e.http_headers {
        for v in vs {
            out.push((Bytes::from(n.clone()), Bytes::from(v.0.clone())));
        }
    }
    // Authorization comes from `transport.auth` (it may rotate), added per request.
    if !has_ua {
        out.push((
            Bytes::from_static(b"User-Agent"),
            Bytes::from_static(USER_AGENT.as_bytes()),
        ));
    }
    Ok((out, content_type))
}

/// Re-resolves an HTTP destination's host every `interval` on the blocking pool, so a
/// changed address (a Kubernetes Service, a cloud endpoint) is followed without blocking.
///
/// A name that stops resolving (NXDOMAIN, a resolver outage, an unreadable `hosts_file`, an
/// empty answer) keeps the last good addresses, with a rate-limited warning per failure: the
/// upstream itself is most likely still there, and dropping its address would turn a DNS
/// outage into a delivery outage. Envoy's `STRICT_DNS` clusters behave the same (a failed
/// resolution keeps the current hosts). Go's `net/http` (hence Alloy) resolves at each dial,
/// so there a name that stops resolving fails every new connection at once.
pub async fn refresh_dns(
    dest: Rc<Destination>,
    interval: Duration,
    shutdown: Rc<crate::sync::Shutdown>,
) {
    let Target::Http(http) = &dest.target else {
        return;
    };
    if http.host.parse::<std::net::IpAddr>().is_ok() {
        return;
    }
    loop {
        if shutdown.wait_timeout(interval).await {
            return;
        }
        let (host, port) = (http.host.clone(), http.port);
        let resolver = dest.transport.resolver.clone();
        match monoio::spawn_blocking(move || resolver.resolve(&host, port)).await {
            Ok(Ok(addrs)) if !addrs.is_empty() => {
                if **http.addrs.borrow() != *addrs {
                    tracing::info!(endpoint = %dest.endpoint.url_text, addrs = ?addrs, "upstream address changed");
                    *http.addrs.borrow_mut() = addrs.into();
                    http.idle.borrow_mut().clear();
                }
            }
            Ok(Ok(_)) => dest.warn(format_args!(
                "DNS resolution returned no address; keeping the previous ones"
            )),
            Ok(Err(e)) => dest.warn(format_args!(
                "DNS resolution failed: {e}; keeping the previous addresses"
            )),
            Err(_) => {}
        }
    }
}

/// Test helpers for this module's tests and the modules above it.
#[cfg(test)]
pub(crate) mod testing {
    use crate::config;

    /// A plain-HTTP endpoint named `url` (its host and port are placeholders: tests pass the
    /// addresses to dial to `Destination::new`) with one attempt, one sender per core and a
    /// queue of `queue_capacity`.
    pub(crate) fn endpoint(url: &str, queue_capacity: usize) -> config::Endpoint {
        let target = config::EndpointUrl::Http {
            tls: false,
            host: "127.0.0.1".into(),
            port: 1,
            path: String::new(),
        };
        config::Endpoint {
            max_backoff_retries: 1,
            queue_capacity,
            senders_per_core: 1,
            ..config::Endpoint::new(target, url)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::upstream_path_for;

    #[test]
    fn upstream_paths_join_like_alloy_for_ingest_and_like_connect_for_push() {
        let push = crate::push::PUSH_PATH;
        assert_eq!(upstream_path_for("", "/ingest"), "/ingest");
        assert_eq!(upstream_path_for("/prefix/", "/ingest"), "/prefix/ingest");
        assert_eq!(
            upstream_path_for("/a/../b", "/pyroscope/ingest"),
            "/b/pyroscope/ingest"
        );
        assert_eq!(upstream_path_for("/a b", "/ingest"), "/a%20b/ingest");
        assert_eq!(upstream_path_for("", push), "/push.v1.PusherService/Push");
        assert_eq!(upstream_path_for("/", push), "/push.v1.PusherService/Push");
        assert_eq!(
            upstream_path_for("/prefix/", push),
            "/prefix/push.v1.PusherService/Push"
        );
    }
}
