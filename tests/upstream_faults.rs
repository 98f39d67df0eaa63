//! End-to-end: upstream faults, each beside a healthy destination, under both drivers.
//!
//! Every scenario runs a gateway whose receiver forwards to two `pyroscope.write` blocks: one
//! healthy stand-in and one faulty destination. Faults: connection refused, reset before the
//! response, close without an answer, an answer cut off inside its body (then close, reset or
//! hang), a hang without an answer (cut by `remote_timeout`), a TLS handshake failure (a
//! stand-in with a certificate the gateway does not trust), 503, 408, 429 with `Retry-After`,
//! non-retryable 4xx, a slow destination (every answer held, then delayed 1 s), a DNS name
//! that stops resolving (then moves), and a destination down for a minute under steady load.
//!
//! What is checked (README, "Behaviour": retries, `acknowledge`; "Metrics": the account):
//! - the retry rules, with `acknowledge = "delivered"` so the answer comes after the final
//!   outcome: a retryable fault gets exactly `max_backoff_retries` attempts (counted at the
//!   stand-in, or as failed handshakes, and in `pyroscope_write_retries_total`) and is dropped
//!   as `retries_exhausted`; 400, 404, 413 and 429 without `retry_on_http_429` get exactly one
//!   attempt and are dropped as `rejected`; the client gets the first upstream status, else 500;
//! - a persistent fault with unbounded retries and `acknowledge = "enqueued"`: the healthy
//!   destination receives every upload exactly once while the faulty one has delivered nothing
//!   and still holds every upload in flight, and every upload is retried; then the destination
//!   comes back (a stand-in starts on the refused port, the script turns to 200, a trusted
//!   certificate is served, the slow one's gate opens) and every upload is delivered to it
//!   exactly once, late, none lost; `pyroscope_write_retries_total` equals the failed attempts
//!   the stand-in saw; a 429 with `Retry-After: 1` spaces each upload's attempts ≥ 900 ms apart
//!   although `min_backoff_period` is 10 ms;
//! - the account `accepted = delivered + dropped + in flight` of both destinations at every
//!   scrape, with exact final figures once quiescent (bounded polls; the one upper time bound
//!   is the recovery after a minute's outage, 10× the probe interval it checks);
//! - the same for Connect Push (reset, 503), identified by each sample's `raw_profile`;
//! - a name that stops resolving keeps its last good address (and a moved name is followed);
//! - after a one-minute outage with Alloy's default backoff, the backlog is delivered within a
//!   few probe intervals of the destination's return, not after the senders' long backoffs.
//!
//! Keep-alive races pinned here: an i/o error or close *before* any answer byte on a reused
//! keep-alive connection is taken for an idle connection the upstream closed first and re-sent
//! at once on a fresh one without using up `max_backoff_retries` (so `max_backoff_retries = 3`
//! lets 4 requests reach the upstream), but counted in `pyroscope_write_retries_total`; once
//! answer bytes arrived it is an ordinary attempt (`ExchangeError::on_reused_connection`,
//! src/upstream/client.rs).

mod support;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use support::bodies::{self, Upload};
use support::client::Client;
use support::config;
use support::gateway::metric_sum;
use support::push::{self, PushUpload};
use support::tls::Pki;
use support::upstream::{Handler, RefusingPort};
use support::{Action, Driver, Gateway, MockPyroscope, Recorded, Response, both_drivers};
use testkit::Truncation;
use testkit::http::status_text;

/// Bound of every wait in this file.
const WAIT: Duration = Duration::from_secs(30);

/// Endpoint settings that make retries fast (Alloy's default minimum is 500 ms).
const FAST_BACKOFF: &str = "    min_backoff_period = \"10ms\"\n    max_backoff_period = \"50ms\"";

/// Per-attempt timeout where a fault hangs.
const SHORT_TIMEOUT: &str = "    remote_timeout = \"300ms\"";

/// Uploads per recovery scenario (fewer than the 16 senders per core, so all are in flight).
const UPLOADS: usize = 6;

// ---------------------------------------------------------------------------------------------
// The faulty destination

/// How the faulty destination misbehaves.
#[derive(Debug, Clone)]
enum Fault {
    /// Nothing listens: every connect is refused.
    Refused,
    /// A stand-in that answers every valid request with this action.
    Mock(Action),
    /// A TLS stand-in whose self-signed certificate the gateway (trusting only the test CA)
    /// refuses during the handshake.
    UntrustedTls,
    /// A stand-in that holds every answer until the test opens a gate, then answers 200 after
    /// 1 s.
    Slow,
}

impl Fault {
    /// Whether an attempt that meets this fault is retried (Alloy's `shouldRetry`).
    fn retryable(&self) -> bool {
        match self {
            Fault::Mock(Action::Respond { status, .. }) => {
                *status == 408 || *status == 429 || *status >= 500
            }
            _ => true,
        }
    }

    /// Whether the fault involves waiting for an answer that does not come.
    fn hangs(&self) -> bool {
        matches!(
            self,
            Fault::Mock(Action::Hang)
                | Fault::Mock(Action::Truncated {
                    end: Truncation::Hang,
                    ..
                })
        )
    }
}

/// A latch the slow stand-in's handler waits on (bounded by [`WAIT`]).
#[derive(Debug, Default)]
struct Gate {
    open: Mutex<bool>,
    cv: Condvar,
}

impl Gate {
    fn wait(&self) {
        let deadline = Instant::now() + WAIT;
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        while !*open && Instant::now() < deadline {
            open = self
                .cv
                .wait_timeout(open, deadline - Instant::now())
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    fn open(&self) {
        *self.open.lock().unwrap_or_else(|e| e.into_inner()) = true;
        self.cv.notify_all();
    }
}

/// A server certificate source that serves the self-signed (untrusted) certificate until
/// [`FlipCert::trust`], then the one the test CA signed: one listener, no port rebinding.
#[derive(Debug)]
struct FlipCert {
    trusted: AtomicBool,
    rogue: Arc<CertifiedKey>,
    good: Arc<CertifiedKey>,
}

impl FlipCert {
    fn new(pki: &Pki) -> FlipCert {
        let key = |cert: &str, key: &str| {
            let chain: Vec<CertificateDer<'static>> =
                CertificateDer::pem_slice_iter(cert.as_bytes())
                    .map(|c| c.expect("certificate PEM"))
                    .collect();
            let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).expect("key PEM");
            let signer = rustls::crypto::ring::sign::any_supported_type(&key).expect("signing key");
            Arc::new(CertifiedKey::new(chain, signer))
        };
        FlipCert {
            trusted: AtomicBool::new(false),
            rogue: key(&pki.rogue_cert, &pki.rogue_key),
            good: key(&pki.server_cert, &pki.server_key),
        }
    }

    fn server_config(self: &Arc<Self>) -> Arc<rustls::ServerConfig> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_no_client_auth()
            .with_cert_resolver(Arc::clone(self) as Arc<dyn ResolvesServerCert>);
        Arc::new(config)
    }

    fn trust(&self) {
        self.trusted.store(true, Ordering::SeqCst);
    }
}

impl ResolvesServerCert for FlipCert {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(if self.trusted.load(Ordering::SeqCst) {
            Arc::clone(&self.good)
        } else {
            Arc::clone(&self.rogue)
        })
    }
}

/// The faulty destination: its address, the stand-ins that served it (the current one last)
/// and what turns it healthy.
struct Faulty {
    fault: Fault,
    addr: SocketAddr,
    url: String,
    mocks: Vec<MockPyroscope>,
    /// For [`Fault::Refused`]: the port, held (bound, not listening) until the recovery.
    refusing: Option<RefusingPort>,
    pki: Option<Pki>,
    cert: Option<Arc<FlipCert>>,
    gate: Option<Arc<Gate>>,
}

impl Faulty {
    fn start(fault: Fault) -> Faulty {
        let mut pki = None;
        let mut cert = None;
        let mut gate = None;
        let mock = match &fault {
            Fault::Refused => None,
            Fault::Mock(action) => Some(
                MockPyroscope::builder()
                    .default_action(action.clone())
                    .start(),
            ),
            Fault::UntrustedTls => {
                let p = Pki::new();
                let flip = Arc::new(FlipCert::new(&p));
                let m = MockPyroscope::builder().tls(flip.server_config()).start();
                pki = Some(p);
                cert = Some(flip);
                Some(m)
            }
            Fault::Slow => {
                let g = Arc::new(Gate::default());
                let waiter = Arc::clone(&g);
                let handler: Handler = Arc::new(move |_, _| {
                    waiter.wait();
                    None
                });
                gate = Some(g);
                Some(
                    MockPyroscope::builder()
                        .handler(handler)
                        .default_action(Action::ok().delayed(Duration::from_secs(1)))
                        .start(),
                )
            }
        };
        let refusing = mock.is_none().then(RefusingPort::bind);
        let addr = match (&mock, &refusing) {
            (Some(m), _) => m.addr(),
            (None, Some(r)) => r.addr(),
            (None, None) => unreachable!("a refused destination holds its port"),
        };
        let scheme = if pki.is_some() { "https" } else { "http" };
        Faulty {
            url: format!("{scheme}://{addr}"),
            fault,
            addr,
            mocks: mock.into_iter().collect(),
            refusing,
            pki,
            cert,
            gate,
        }
    }

    /// The faulty endpoint's settings: fast backoff, a short `remote_timeout` where the fault
    /// hangs, the test CA for https, then `extra`.
    fn endpoint(&self, extra: &str) -> String {
        let mut e = FAST_BACKOFF.to_string();
        if self.fault.hangs() {
            e.push('\n');
            e.push_str(SHORT_TIMEOUT);
        }
        if matches!(self.fault, Fault::Slow) {
            // The gate may stay shut a while on a loaded machine: no attempt may time out.
            e.push_str("\n    remote_timeout = \"30s\"");
        }
        if let Some(pki) = &self.pki {
            e.push_str(&format!(
                "\n    tls_config {{\n      ca_file = \"{}\"\n    }}",
                pki.path("ca.pem")
            ));
        }
        if !extra.is_empty() {
            e.push('\n');
            e.push_str(extra);
        }
        e
    }

    /// Every request the stand-ins of this destination recorded.
    fn requests(&self) -> Vec<Recorded> {
        self.mocks.iter().flat_map(|m| m.requests()).collect()
    }

    /// Attempts that failed as far as the far side can tell: requests not answered 200, plus
    /// failed TLS handshakes; `None` where nothing listens to see them.
    fn failed_attempts(&self) -> Option<usize> {
        if matches!(self.fault, Fault::Refused) {
            return None;
        }
        let failed = self
            .requests()
            .iter()
            .filter(|r| r.status != Some(200))
            .count();
        let handshakes: usize = self.mocks.iter().map(|m| m.handshake_failures()).sum();
        Some(failed + handshakes)
    }

    /// Turns the destination healthy: a stand-in starts on the refused port, the script
    /// answers 200, a trusted certificate is served, the gate opens.
    fn recover(&mut self) {
        match &self.fault {
            Fault::Refused => {
                let port = self.refusing.take().expect("the refused port");
                let m = port
                    .hand_over(MockPyroscope::builder())
                    .unwrap_or_else(|e| panic!("listen on {}: {e}", self.addr));
                self.mocks.push(m);
            }
            Fault::Mock(_) => self.mocks[0].set_default(Action::ok()),
            Fault::UntrustedTls => self.cert.as_ref().expect("cert").trust(),
            Fault::Slow => self.gate.as_ref().expect("gate").open(),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Gateway, uploads, identities

/// Receiver `default` (with `receiver_extra`) → writes `healthy` and `faulty`, one endpoint
/// each.
fn two_destinations(
    healthy: &MockPyroscope,
    faulty_url: &str,
    faulty_endpoint: &str,
    receiver_extra: &str,
) -> String {
    format!(
        "{}{}{}",
        config::receiver("default", &["healthy", "faulty"], "", receiver_extra),
        config::write("healthy", &[config::endpoint(&healthy.url(), "")], ""),
        config::write(
            "faulty",
            &[config::endpoint(faulty_url, faulty_endpoint)],
            ""
        ),
    )
}

const ENQUEUED: &str = "  acknowledge = \"enqueued\"";

/// One client upload, whichever API: its request bytes and the profile bytes that identify it
/// at a stand-in.
#[derive(Debug, Clone)]
struct Sent {
    request: Vec<u8>,
    key: Vec<u8>,
}

fn ingest(upload: &Upload) -> Sent {
    Sent {
        request: upload.request(&[]),
        key: upload.body.clone(),
    }
}

fn pushed(upload: &PushUpload) -> Sent {
    assert_eq!(upload.request.sample_count(), 1, "one profile per push");
    Sent {
        request: upload.http_request(&[]),
        key: upload.request.series[0].samples[0].raw_profile.clone(),
    }
}

/// What identifies a recorded request: an `/ingest` body, or a push's `raw_profile` bytes.
fn key_of(r: &Recorded) -> Vec<u8> {
    match &r.push {
        Some(p) => p
            .series
            .iter()
            .flat_map(|s| s.samples.iter().flat_map(|x| x.raw_profile.iter().copied()))
            .collect(),
        None => r.body.clone(),
    }
}

/// Sends `sent` on one connection; every answer must be 200.
fn send_all_expecting_200(gw: &Gateway, sent: &[Sent]) {
    let mut client = Client::connect(gw.addr());
    for (i, s) in sent.iter().enumerate() {
        client.send(&s.request);
        let response = client.read_response();
        assert_eq!(response.status, 200, "upload {i}: {response:?}");
    }
}

fn send_one(gw: &Gateway, sent: &Sent) -> Response {
    let mut client = Client::connect(gw.addr());
    client.send(&sent.request);
    client.read_response()
}

/// Asserts that the requests answered 200 carry each of `sent` exactly once and nothing else.
fn assert_each_delivered_once(recorded: &[Recorded], sent: &[Sent], what: &str) {
    let delivered: Vec<Vec<u8>> = recorded
        .iter()
        .filter(|r| r.status == Some(200))
        .map(key_of)
        .collect();
    for (i, s) in sent.iter().enumerate() {
        let n = delivered.iter().filter(|k| **k == s.key).count();
        assert_eq!(n, 1, "{what}: upload {i} delivered {n} times");
    }
    assert_eq!(
        delivered.len(),
        sent.len(),
        "{what}: 200 answers for unknown bodies"
    );
}

/// One destination's account in one scrape: (accepted, delivered, dropped, in flight).
fn account(metrics: &str, url: &str) -> (f64, f64, f64, f64) {
    let ep = [("endpoint", url)];
    let get = |name: &str| metric_sum(metrics, name, &ep).unwrap_or(0.0);
    (
        get("pyrogate_accepted_profiles_total"),
        get("pyroscope_write_sent_profiles_total"),
        get("pyroscope_write_dropped_profiles_total"),
        get("pyrogate_inflight_profiles"),
    )
}

/// Asserts `accepted = delivered + dropped + in flight` for `url` in one scrape; returns the
/// account.
fn assert_identity(metrics: &str, url: &str) -> (f64, f64, f64, f64) {
    let a = account(metrics, url);
    assert_eq!(
        a.0,
        a.1 + a.2 + a.3,
        "{url}: accepted = delivered + dropped + in flight, got {a:?}"
    );
    a
}

fn counter(metrics: &str, name: &str, url: &str) -> f64 {
    metric_sum(metrics, name, &[("endpoint", url)]).unwrap_or(0.0)
}

fn dropped_for(metrics: &str, url: &str, reason: &str) -> f64 {
    metric_sum(
        metrics,
        "pyrogate_dropped_total",
        &[("endpoint", url), ("reason", reason)],
    )
    .unwrap_or(0.0)
}

/// Polls (bounded) until every url has accepted `accepted` profiles and none is in flight,
/// checking the identity of each at every scrape; returns the last scrape.
fn wait_quiescent(gw: &Gateway, urls: &[&str], accepted: f64) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        let metrics = gw.metrics();
        let accounts: Vec<_> = urls.iter().map(|u| assert_identity(&metrics, u)).collect();
        if accounts.iter().all(|a| a.0 == accepted && a.3 == 0.0) {
            return metrics;
        }
        assert!(
            Instant::now() < deadline,
            "not quiescent after {WAIT:?}: {:?}",
            urls.iter().zip(&accounts).collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// Polls `cond` (bounded), panicking with `what`.
fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !cond() {
        assert!(Instant::now() < deadline, "waited {WAIT:?} for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

// ---------------------------------------------------------------------------------------------
// Retry rules: exact attempt counts with `acknowledge = "delivered"`

/// The answer the client gets when the faulty destination's final outcome is `fault` and the
/// healthy one succeeded: the upstream status with its text, else 500.
fn expected_answer(fault: &Fault) -> (u16, String) {
    match fault {
        Fault::Mock(Action::Respond { status, .. }) => {
            (*status, format!("{}\n", status_text(*status)))
        }
        _ => (500, "Failed to process request\n".to_string()),
    }
}

/// One upload to a fresh gateway whose faulty endpoint has `max_backoff_retries = 3` (and
/// `endpoint_extra`): exactly 3 attempts for a retryable fault, 1 otherwise; the healthy
/// destination gets it once; the accounts and drop reasons are exact.
fn attempts_case(driver: Driver, fault: Fault, endpoint_extra: &str, sent: Sent, what: &str) {
    let healthy = MockPyroscope::start();
    let faulty = Faulty::start(fault.clone());
    let extra = format!("    max_backoff_retries = 3\n{endpoint_extra}");
    let gw = Gateway::start(
        &two_destinations(&healthy, &faulty.url, &faulty.endpoint(&extra), ""),
        driver,
        1,
    );
    let response = send_one(&gw, &sent);
    let attempts = if fault.retryable() { 3 } else { 1 };

    // acknowledge = "delivered": the answer came after both final outcomes.
    if sent.request.starts_with(b"POST /push") {
        assert_eq!(response.status, 500, "{what}: {response:?}");
        let (code, _) = push::connect_error(&response.body)
            .unwrap_or_else(|| panic!("{what}: not a Connect error: {response:?}"));
        assert_eq!(code, "internal", "{what}");
    } else {
        let (status, body) = expected_answer(&fault);
        assert_eq!(response.status, status, "{what}: {response:?}");
        assert_eq!(response.body_str(), body, "{what}");
    }
    assert_each_delivered_once(&healthy.requests(), std::slice::from_ref(&sent), what);
    assert_eq!(
        healthy.request_count(),
        1,
        "{what}: healthy got one request"
    );
    match fault {
        Fault::Refused => {}
        Fault::UntrustedTls => {
            // The stand-in's thread may count the last failed handshake after the answer.
            wait_for(&format!("{what}: {attempts} failed handshakes"), || {
                faulty.mocks[0].handshake_failures() >= attempts
            });
            assert_eq!(faulty.mocks[0].handshake_failures(), attempts, "{what}");
            assert_eq!(faulty.requests().len(), 0, "{what}");
        }
        _ => {
            let recorded = faulty.requests();
            assert_eq!(recorded.len(), attempts, "{what}: attempts at the upstream");
            for (i, r) in recorded.iter().enumerate() {
                assert_eq!(
                    key_of(r),
                    sent.key,
                    "{what}: attempt {i} re-sends the bytes"
                );
                assert_ne!(r.status, Some(200), "{what}: attempt {i}");
            }
        }
    }
    let metrics = gw.metrics();
    let url = faulty.url.as_str();
    assert_eq!(
        assert_identity(&metrics, &healthy.url()),
        (1.0, 1.0, 0.0, 0.0),
        "{what}: healthy account"
    );
    assert_eq!(
        assert_identity(&metrics, url),
        (1.0, 0.0, 1.0, 0.0),
        "{what}: faulty account"
    );
    assert_eq!(
        counter(&metrics, "pyroscope_write_retries_total", url),
        (attempts - 1) as f64,
        "{what}: retries"
    );
    let reason = if fault.retryable() {
        "retries_exhausted"
    } else {
        "rejected"
    };
    assert_eq!(dropped_for(&metrics, url, reason), 1.0, "{what}: {reason}");
    assert_eq!(
        counter(&metrics, "pyrogate_dropped_total", &healthy.url()),
        0.0,
        "{what}: nothing dropped for the healthy destination"
    );
}

fn transport_faults() -> Vec<(&'static str, Fault)> {
    vec![
        ("connection refused", Fault::Refused),
        ("reset before the answer", Fault::Mock(Action::Reset)),
        ("closed without an answer", Fault::Mock(Action::Close)),
        (
            "closed inside the body",
            Fault::Mock(Action::truncated(200, Truncation::Close)),
        ),
        (
            "reset inside the body",
            Fault::Mock(Action::truncated(200, Truncation::Reset)),
        ),
        (
            "body never finishes",
            Fault::Mock(Action::truncated(200, Truncation::Hang)),
        ),
        ("hang without an answer", Fault::Mock(Action::Hang)),
        ("TLS handshake refused", Fault::UntrustedTls),
    ]
}

fn transport_faults_get_exactly_max_backoff_retries_attempts(driver: Driver) {
    for (i, (what, fault)) in transport_faults().into_iter().enumerate() {
        attempts_case(
            driver,
            fault,
            "",
            ingest(&bodies::node_pprof(100 + i as u64)),
            what,
        );
    }
}

fn retryable_statuses_get_exactly_max_backoff_retries_attempts(driver: Driver) {
    for (i, status) in [503, 500, 408, 429].into_iter().enumerate() {
        let what = format!("status {status}");
        attempts_case(
            driver,
            Fault::Mock(Action::status(status)),
            "",
            ingest(&bodies::folded(200 + i as u64)),
            &what,
        );
    }
}

fn non_retryable_statuses_get_one_attempt(driver: Driver) {
    for (i, status) in [400, 404, 413, 422].into_iter().enumerate() {
        let what = format!("status {status}");
        attempts_case(
            driver,
            Fault::Mock(Action::status(status)),
            "",
            ingest(&bodies::node_pprof(300 + i as u64)),
            &what,
        );
    }
    // 429 is final when `retry_on_http_429 = false`, whatever its Retry-After says.
    let fault = Fault::Mock(Action::status(429).with_retry_after("1"));
    let healthy = MockPyroscope::start();
    let faulty = Faulty::start(fault);
    let gw = Gateway::start(
        &two_destinations(
            &healthy,
            &faulty.url,
            &faulty.endpoint("    retry_on_http_429 = false\n    max_backoff_retries = 3"),
            "",
        ),
        driver,
        1,
    );
    let sent = ingest(&bodies::node_pprof(310));
    let response = send_one(&gw, &sent);
    assert_eq!(response.status, 429, "{response:?}");
    assert_eq!(response.body_str(), "Too Many Requests\n");
    assert_eq!(faulty.requests().len(), 1, "429 without retry_on_http_429");
    assert_each_delivered_once(&healthy.requests(), &[sent], "healthy beside a final 429");
    let metrics = gw.metrics();
    assert_eq!(assert_identity(&metrics, &faulty.url), (1.0, 0.0, 1.0, 0.0));
    assert_eq!(dropped_for(&metrics, &faulty.url, "rejected"), 1.0);
    assert_eq!(
        counter(&metrics, "pyroscope_write_retries_total", &faulty.url),
        0.0
    );
}

fn push_reset_and_503_get_exactly_max_backoff_retries_attempts(driver: Driver) {
    for (i, (what, fault)) in [
        ("push: reset", Fault::Mock(Action::Reset)),
        ("push: 503", Fault::Mock(Action::status(503))),
    ]
    .into_iter()
    .enumerate()
    {
        let sent = pushed(&push::python_sdk(400 + i as u64));
        attempts_case(driver, fault, "", sent, what);
    }
}

// ---------------------------------------------------------------------------------------------
// A persistent fault beside a healthy destination, then recovery

/// `UPLOADS` uploads with `acknowledge = "enqueued"` and unbounded retries while `fault`
/// persists: the healthy destination gets all of them exactly once while the faulty one has
/// delivered none and holds all in flight, and every upload is retried; once the destination
/// recovers, each is delivered to it exactly once, none lost, none twice, and the accounts and
/// retry counter are exact. Returns the faulty destination's stand-in records.
fn fault_then_recovery(driver: Driver, fault: Fault, sent: &[Sent], what: &str) -> Vec<Recorded> {
    let healthy = MockPyroscope::start();
    let mut faulty = Faulty::start(fault.clone());
    let gw = Gateway::start(
        &two_destinations(
            &healthy,
            &faulty.url,
            &faulty.endpoint("    max_backoff_retries = 0"),
            ENQUEUED,
        ),
        driver,
        1,
    );
    let (healthy_url, url) = (healthy.url(), faulty.url.clone());
    send_all_expecting_200(&gw, sent);

    // The healthy destination has everything while the faulty one has delivered nothing.
    let recorded = healthy.wait_for_requests(sent.len(), WAIT);
    assert_each_delivered_once(&recorded, sent, &format!("{what}: healthy"));
    let n = sent.len() as f64;
    // The stand-in records a request before the gateway has read the answer: poll until the
    // healthy destination's account shows every delivery, the faulty one's none.
    wait_for(&format!("{what}: healthy account complete"), || {
        let metrics = gw.metrics();
        assert_eq!(
            assert_identity(&metrics, &url),
            (n, 0.0, 0.0, n),
            "{what}: faulty account while it fails"
        );
        assert_identity(&metrics, &healthy_url) == (n, n, 0.0, 0.0)
    });

    // Every upload is being retried (the slow one is not failing: it only holds answers).
    if !matches!(fault, Fault::Slow) {
        wait_for(&format!("{what}: every upload retried"), || {
            counter(&gw.metrics(), "pyroscope_write_retries_total", &url) >= n
        });
        if let Fault::Mock(_) = fault {
            faulty.mocks[0].wait_until(&format!("{what}: two failed attempts per upload"), |r| {
                sent.iter().all(|s| {
                    r.iter()
                        .filter(|x| x.status != Some(200) && key_of(x) == s.key)
                        .count()
                        >= 2
                })
            });
        }
    }
    let metrics = gw.metrics();
    assert_eq!(
        assert_identity(&metrics, &url),
        (n, 0.0, 0.0, n),
        "{what}: still failing, nothing dropped"
    );

    faulty.recover();
    let metrics = wait_quiescent(&gw, &[&healthy_url, &url], n);
    let recorded = faulty.requests();
    assert_each_delivered_once(&recorded, sent, &format!("{what}: recovered destination"));
    assert_each_delivered_once(&healthy.requests(), sent, &format!("{what}: healthy"));
    assert_eq!(
        healthy.request_count(),
        sent.len(),
        "{what}: healthy re-sent"
    );
    assert_eq!(
        assert_identity(&metrics, &url),
        (n, n, 0.0, 0.0),
        "{what}: faulty account"
    );
    assert_eq!(
        assert_identity(&metrics, &healthy_url),
        (n, n, 0.0, 0.0),
        "{what}: healthy account"
    );
    let retries = counter(&metrics, "pyroscope_write_retries_total", &url);
    if let Some(failed) = faulty.failed_attempts() {
        // The far side may count a failed handshake after the gateway moved on.
        if matches!(fault, Fault::UntrustedTls) && failed != retries as usize {
            wait_for(
                &format!("{what}: failed handshakes = {retries} retries"),
                || faulty.failed_attempts() == Some(retries as usize),
            );
        } else {
            assert_eq!(
                retries, failed as f64,
                "{what}: one retry per failed attempt"
            );
        }
    }
    if matches!(fault, Fault::Slow) {
        assert_eq!(retries, 0.0, "{what}: a slow answer is not retried");
        assert_eq!(recorded.len(), sent.len(), "{what}: one request each");
    }
    assert_eq!(
        counter(&metrics, "pyroscope_write_retries_total", &healthy_url),
        0.0,
        "{what}: healthy retries"
    );
    // Stopped cleanly: every profile of both destinations delivered, nothing dropped.
    drop(faulty);
    gw.stop().assert_clean_exit(2 * sent.len() as u64, 0);
    recorded
}

fn ingest_uploads(seed: u64) -> Vec<Sent> {
    (0..UPLOADS as u64)
        .map(|i| {
            if i % 2 == 0 {
                ingest(&bodies::node_pprof(seed + i))
            } else {
                ingest(&bodies::go_multipart(seed + i, i % 3 == 0))
            }
        })
        .collect()
}

fn refused_destination_comes_back(driver: Driver) {
    fault_then_recovery(
        driver,
        Fault::Refused,
        &ingest_uploads(1000),
        "connection refused",
    );
}

fn reset_destination_comes_back(driver: Driver) {
    fault_then_recovery(
        driver,
        Fault::Mock(Action::Reset),
        &ingest_uploads(1100),
        "reset",
    );
}

fn answer_closed_inside_its_body_then_recovery(driver: Driver) {
    fault_then_recovery(
        driver,
        Fault::Mock(Action::truncated(200, Truncation::Close)),
        &ingest_uploads(1200),
        "closed inside the body",
    );
}

fn answer_that_never_finishes_then_recovery(driver: Driver) {
    fault_then_recovery(
        driver,
        Fault::Mock(Action::truncated(200, Truncation::Hang)),
        &ingest_uploads(1300),
        "body never finishes",
    );
}

fn hang_cut_by_remote_timeout_then_recovery(driver: Driver) {
    fault_then_recovery(
        driver,
        Fault::Mock(Action::Hang),
        &ingest_uploads(1400),
        "hang",
    );
}

fn storm_of_503_then_success(driver: Driver) {
    let recorded = fault_then_recovery(
        driver,
        Fault::Mock(Action::status(503)),
        &ingest_uploads(1500),
        "503 storm",
    );
    assert!(recorded.iter().all(|r| matches!(r.status, Some(503 | 200))));
}

fn throttled_with_retry_after_then_success(driver: Driver) {
    let sent = ingest_uploads(1600);
    let recorded = fault_then_recovery(
        driver,
        Fault::Mock(Action::status(429).with_retry_after("1")),
        &sent,
        "429 Retry-After: 1",
    );
    // Retry-After: 1 is honoured although min_backoff_period is 10 ms: each upload's attempts
    // are at least ~1 s apart (a lower bound, not a latency target).
    for (i, s) in sent.iter().enumerate() {
        let times: Vec<Instant> = recorded
            .iter()
            .filter(|r| key_of(r) == s.key)
            .map(|r| r.received_at)
            .collect();
        assert!(times.len() >= 3, "upload {i}: {} attempts", times.len());
        for pair in times.windows(2) {
            let gap = pair[1].duration_since(pair[0]);
            assert!(
                gap >= Duration::from_millis(900),
                "upload {i}: retried {gap:?} after a 429 with Retry-After: 1"
            );
        }
    }
}

fn untrusted_certificate_then_trusted(driver: Driver) {
    fault_then_recovery(
        driver,
        Fault::UntrustedTls,
        &ingest_uploads(1700),
        "TLS handshake refused",
    );
}

fn slow_destination_beside_a_healthy_one(driver: Driver) {
    fault_then_recovery(driver, Fault::Slow, &ingest_uploads(1800), "slow");
}

fn push_uploads(seed: u64) -> Vec<Sent> {
    (0..UPLOADS as u64)
        .map(|i| pushed(&push::python_sdk(seed + i)))
        .collect()
}

fn push_reset_destination_comes_back(driver: Driver) {
    fault_then_recovery(
        driver,
        Fault::Mock(Action::Reset),
        &push_uploads(1900),
        "push: reset",
    );
}

fn push_storm_of_503_then_success(driver: Driver) {
    let recorded = fault_then_recovery(
        driver,
        Fault::Mock(Action::status(503)),
        &push_uploads(2000),
        "push: 503 storm",
    );
    assert!(recorded.iter().all(|r| r.push.is_some()), "decoded pushes");
}

// ---------------------------------------------------------------------------------------------
// Faults on a reused keep-alive connection

/// One upload delivered (its connection stays pooled), then `fault` with
/// `max_backoff_retries = 3` for a second upload; returns the requests the faulty stand-in
/// saw for the second upload, and the retries counted.
fn fault_on_a_reused_connection(driver: Driver, fault: Action, seed: u64) -> (usize, f64) {
    let healthy = MockPyroscope::start();
    let faulty = Faulty::start(Fault::Mock(Action::ok()));
    let gw = Gateway::start(
        &two_destinations(
            &healthy,
            &faulty.url,
            &faulty.endpoint("    max_backoff_retries = 3"),
            "",
        ),
        driver,
        1,
    );
    let first = ingest(&bodies::node_pprof(seed));
    assert_eq!(send_one(&gw, &first).status, 200);
    assert_eq!(faulty.mocks[0].counters().connections, 1);
    faulty.mocks[0].set_default(fault);
    let second = ingest(&bodies::node_pprof(seed + 1));
    let response = send_one(&gw, &second);
    assert_eq!(response.status, 500, "{response:?}");
    let attempts = faulty
        .requests()
        .iter()
        .filter(|r| r.body == second.key)
        .count();
    let metrics = gw.metrics();
    assert_eq!(assert_identity(&metrics, &faulty.url), (2.0, 1.0, 1.0, 0.0));
    (
        attempts,
        counter(&metrics, "pyroscope_write_retries_total", &faulty.url),
    )
}

/// A reset before any answer byte on a reused connection is taken for a keep-alive race (the
/// upstream closed the idle connection first): re-sent at once on a fresh connection without
/// counting against `max_backoff_retries` (README, src/upstream/client.rs), so the upstream
/// sees one request more than `max_backoff_retries`; every re-sent request is a retry in
/// `pyroscope_write_retries_total` (requests at the upstream = 1 + retries).
fn reset_before_the_answer_on_a_reused_connection_is_resent_at_once(driver: Driver) {
    let (attempts, retries) = fault_on_a_reused_connection(driver, Action::Reset, 2100);
    assert_eq!((attempts, retries), (4, 3.0));
}

/// A close inside the answer's body on a reused connection is a failed attempt like any
/// other: exactly `max_backoff_retries` requests.
fn close_inside_a_reused_connections_answer_counts_as_an_attempt(driver: Driver) {
    let (attempts, retries) =
        fault_on_a_reused_connection(driver, Action::truncated(200, Truncation::Close), 2200);
    assert_eq!((attempts, retries), (3, 2.0));
}

/// A reset inside the answer's body on a reused connection: answer bytes arrived, so this is
/// not an idle connection the upstream closed first, and the attempt must count — exactly
/// `max_backoff_retries` requests, as for a close.
fn reset_inside_a_reused_connections_answer_counts_as_an_attempt(driver: Driver) {
    let (attempts, retries) =
        fault_on_a_reused_connection(driver, Action::truncated(200, Truncation::Reset), 2300);
    assert_eq!((attempts, retries), (3, 2.0));
}

// ---------------------------------------------------------------------------------------------
// A DNS name that stops resolving

/// The name the faulty destination is known by; only the gateway's `hosts_file` resolves it
/// (`.invalid` never resolves elsewhere, RFC 6761 §6.4), so no lookup leaves the machine.
const DNS_NAME: &str = "faulty.pyrogate.invalid";

/// How often the gateway re-resolves in the DNS scenarios.
const DNS_REFRESH: &str = "100ms";

/// Sends `sent` expecting 200 each (`acknowledge = "delivered"`: both destinations have them).
fn deliver_now(gw: &Gateway, sent: &[Sent], what: &str) {
    for (i, s) in sent.iter().enumerate() {
        let response = send_one(gw, s);
        assert_eq!(response.status, 200, "{what}: upload {i}: {response:?}");
    }
}

/// Polls (bounded) until the gateway's log holds `count` lines containing `needle`.
fn wait_for_log(gw: &Gateway, needle: &str, count: usize) {
    wait_for(&format!("{count}× {needle:?} in the log"), || {
        gw.stderr_text().matches(needle).count() >= count
    });
}

/// The destination's name resolves (through `hosts_file`) to a stand-in; then it stops
/// resolving (the file is gone, so every re-resolution fails): the gateway logs the failure,
/// keeps the last good address and still delivers there — on fresh connections, the stand-in
/// having been restarted — while the healthy destination is unaffected. Then the name resolves
/// to another address (127.0.0.2, same port): the gateway follows it and delivers there.
/// The account of both destinations holds at every scrape; nothing is dropped.
fn dns_name_that_stops_resolving_keeps_the_last_good_address(driver: Driver) {
    let healthy = MockPyroscope::start();
    let first = MockPyroscope::start();
    let port = first.addr().port();
    let dir = tempfile::tempdir().expect("temp dir");
    let hosts = dir.path().join("hosts");
    std::fs::write(&hosts, format!("127.0.0.1 {DNS_NAME}\n")).expect("write hosts");
    let url = format!("http://{DNS_NAME}:{port}");
    let healthy_url = healthy.url();
    let config = format!(
        "{}pyrogate {{\n  hosts_file = \"{}\"\n  dns_refresh_interval = \"{DNS_REFRESH}\"\n}}\n",
        two_destinations(&healthy, &url, FAST_BACKOFF, ""),
        hosts.display()
    );
    let gw = Gateway::start(&config, driver, 1);
    let uploads: Vec<Sent> = (0..9)
        .map(|i| ingest(&bodies::node_pprof(2400 + i)))
        .collect();

    // Resolving: delivered to the address the file gives.
    deliver_now(&gw, &uploads[..3], "name resolves");
    assert_each_delivered_once(&first.requests(), &uploads[..3], "first address");

    // The name stops resolving; the stand-in restarts, so pooled connections are gone.
    std::fs::remove_file(&hosts).expect("remove hosts");
    wait_for_log(&gw, "DNS resolution failed", 1);
    let addr = first.addr();
    drop(first);
    let again = MockPyroscope::builder()
        .listen(addr)
        .try_start()
        .unwrap_or_else(|e| panic!("listen again on {addr}: {e}"));
    deliver_now(&gw, &uploads[3..6], "name stopped resolving");
    assert_each_delivered_once(&again.requests(), &uploads[3..6], "last good address");
    assert!(
        again.counters().connections >= 1,
        "a fresh connection was dialled to the last good address"
    );
    let log = gw.stderr_text();
    assert!(
        log.contains("keeping the previous addresses"),
        "the failure says what the gateway does: {log}"
    );
    assert!(!log.contains("upstream address changed"), "{log}");
    let metrics = gw.metrics();
    assert_eq!(assert_identity(&metrics, &url), (6.0, 6.0, 0.0, 0.0));
    assert_eq!(
        assert_identity(&metrics, &healthy_url),
        (6.0, 6.0, 0.0, 0.0)
    );
    // The only re-sends: requests that met a pooled connection the restart had cut (each
    // re-sent at once on a fresh connection, and counted).
    let retries = counter(&metrics, "pyroscope_write_retries_total", &url);
    assert!((1.0..=3.0).contains(&retries), "retries: {retries}");

    // The name resolves again, to another address: followed at the next refresh.
    let moved = MockPyroscope::builder()
        .listen(SocketAddr::from(([127, 0, 0, 2], port)))
        .try_start()
        .unwrap_or_else(|e| panic!("listen on 127.0.0.2:{port}: {e}"));
    std::fs::write(&hosts, format!("127.0.0.2 {DNS_NAME}\n")).expect("write hosts");
    wait_for_log(&gw, "upstream address changed", 1);
    deliver_now(&gw, &uploads[6..], "name moved");
    assert_each_delivered_once(&moved.requests(), &uploads[6..], "new address");
    assert_eq!(again.request_count(), 3, "nothing more to the old address");

    let metrics = wait_quiescent(&gw, &[&healthy_url, &url], 9.0);
    assert_eq!(assert_identity(&metrics, &url), (9.0, 9.0, 0.0, 0.0));
    assert_each_delivered_once(&healthy.requests(), &uploads, "healthy");
    assert_eq!(
        counter(&metrics, "pyroscope_write_retries_total", &url),
        retries,
        "a changed address starts on fresh connections: no re-send"
    );
    gw.stop().assert_clean_exit(18, 0);
}

/// A `hosts_file` that cannot be read at start stops the start with the file named (later, an
/// unreadable file is a failed resolution, as above).
fn a_missing_hosts_file_stops_the_start(driver: Driver) {
    let healthy = MockPyroscope::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let hosts = dir.path().join("no-such-hosts");
    let config = format!(
        "{}pyrogate {{\n  hosts_file = \"{}\"\n}}\n",
        config::single(&healthy.url(), "", "", ""),
        hosts.display()
    );
    let err = match Gateway::try_start(&config, driver, 1) {
        Ok(_) => panic!("started with a missing hosts_file"),
        Err(e) => e,
    };
    let wanted = format!("hosts_file {}: No such file or directory", hosts.display());
    assert!(err.contains(&wanted), "{err}");
    assert_eq!(healthy.request_count(), 0);
}

// ---------------------------------------------------------------------------------------------
// A destination that comes back after a minute

/// How long the destination is down in [`destination_back_after_a_minute_is_noticed_at_once`].
const OUTAGE: Duration = Duration::from_secs(60);

/// Longest time from the destination's return to the last backlogged upload delivered that
/// the test accepts: many times the 1 s probe interval (`src/upstream/recovery.rs`), and well
/// below the 16–64 s a sender can be sleeping in Alloy's default backoff one minute into an
/// outage, which is what this guards against (not a latency target).
const RECOVERY_BOUND: Duration = Duration::from_secs(10);

/// Connections refused for a minute while an upload arrives every 2 s, with Alloy's default
/// backoff (500 ms doubling to 5 m) and unbounded retries: the healthy destination gets each
/// upload meanwhile; then the destination comes back and the whole backlog is delivered to it
/// within [`RECOVERY_BOUND`], each upload exactly once, with the account exact throughout.
fn destination_back_after_a_minute_is_noticed_at_once(driver: Driver) {
    let healthy = MockPyroscope::start();
    let mut faulty = Faulty::start(Fault::Refused);
    let gw = Gateway::start(
        &two_destinations(
            &healthy,
            &faulty.url,
            "    max_backoff_retries = 0",
            ENQUEUED,
        ),
        driver,
        1,
    );
    let (healthy_url, url) = (healthy.url(), faulty.url.clone());
    let interval = Duration::from_secs(2);
    let count = (OUTAGE.as_secs() / interval.as_secs()) as usize;
    let sent: Vec<Sent> = (0..count as u64)
        .map(|i| ingest(&bodies::node_pprof(2500 + i)))
        .collect();
    let start = Instant::now();
    let mut client = Client::connect(gw.addr());
    for (i, s) in sent.iter().enumerate() {
        let due = start + interval * i as u32;
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
        client.send(&s.request);
        let response = client.read_response();
        assert_eq!(response.status, 200, "upload {i}: {response:?}");
        // The healthy destination keeps up while the other one is down.
        healthy.wait_for_requests(i + 1, WAIT);
        let metrics = gw.metrics();
        let n = (i + 1) as f64;
        let faulty_account = assert_identity(&metrics, &url);
        assert_eq!(
            faulty_account.1 + faulty_account.2,
            0.0,
            "nothing delivered or dropped"
        );
        assert_eq!(faulty_account.0, n, "faulty accepted");
        assert_identity(&metrics, &healthy_url);
    }
    std::thread::sleep((start + OUTAGE).saturating_duration_since(Instant::now()));
    let n = count as f64;
    let metrics = wait_for_healthy_complete(&gw, &healthy_url, n);
    assert_eq!(assert_identity(&metrics, &url), (n, 0.0, 0.0, n));
    let retries_during_outage = counter(&metrics, "pyroscope_write_retries_total", &url);
    assert!(
        retries_during_outage >= n,
        "every upload was retried: {retries_during_outage}"
    );

    faulty.recover();
    let back = Instant::now();
    let metrics = wait_quiescent(&gw, &[&healthy_url, &url], n);
    let took = back.elapsed();
    println!(
        "{driver:?}: backlog of {count} delivered {took:?} after the destination came back \
         ({retries_during_outage} retries during the {OUTAGE:?} outage)"
    );
    assert!(
        took < RECOVERY_BOUND,
        "backlog delivered {took:?} after the destination came back"
    );
    assert_each_delivered_once(&faulty.requests(), &sent, "recovered destination");
    assert_each_delivered_once(&healthy.requests(), &sent, "healthy");
    assert_eq!(assert_identity(&metrics, &url), (n, n, 0.0, 0.0));
    assert_eq!(
        counter(&metrics, "pyroscope_write_retries_total", &healthy_url),
        0.0
    );
    drop(client);
    drop(faulty);
    gw.stop().assert_clean_exit(2 * count as u64, 0);
}

/// Polls (bounded) until the healthy destination's account shows `n` delivered.
fn wait_for_healthy_complete(gw: &Gateway, healthy_url: &str, n: f64) -> String {
    let mut last = String::new();
    wait_for("healthy account complete", || {
        last = gw.metrics();
        assert_identity(&last, healthy_url) == (n, n, 0.0, 0.0)
    });
    last
}

both_drivers!(
    transport_faults_get_exactly_max_backoff_retries_attempts,
    retryable_statuses_get_exactly_max_backoff_retries_attempts,
    non_retryable_statuses_get_one_attempt,
    push_reset_and_503_get_exactly_max_backoff_retries_attempts,
    refused_destination_comes_back,
    reset_destination_comes_back,
    answer_closed_inside_its_body_then_recovery,
    answer_that_never_finishes_then_recovery,
    hang_cut_by_remote_timeout_then_recovery,
    storm_of_503_then_success,
    throttled_with_retry_after_then_success,
    untrusted_certificate_then_trusted,
    slow_destination_beside_a_healthy_one,
    push_reset_destination_comes_back,
    push_storm_of_503_then_success,
    reset_before_the_answer_on_a_reused_connection_is_resent_at_once,
    close_inside_a_reused_connections_answer_counts_as_an_attempt,
    reset_inside_a_reused_connections_answer_counts_as_an_attempt,
    dns_name_that_stops_resolving_keeps_the_last_good_address,
    a_missing_hosts_file_stops_the_start,
    destination_back_after_a_minute_is_noticed_at_once,
);
