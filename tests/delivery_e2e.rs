//! End-to-end: delivery, retries, acknowledgement, backpressure, capture and shutdown.
//!
//! Covers, under both drivers (README, "Behaviour" and "Capture format"; tuning.md, "Memory: the
//! in-flight budget and the queues"):
//! - retry then success: upstream 503, 503, 200 → client 200 after exactly 3 attempts;
//! - no retry on 400: exactly 1 attempt, client 400 `Bad Request\n`;
//! - 429 with `Retry-After: 1` is honoured: the retry comes ≥ 900 ms after the first attempt
//!   although `min_backoff_period` is 10 ms (a behavioural check, not a speed target);
//! - `max_backoff_retries = 3` against an always-500 upstream: exactly 3 attempts, client 500
//!   `Internal Server Error\n`, Alloy's per-endpoint retry/drop counters;
//! - a dead destination (connection refused, retried with backoff) does not hold back a
//!   healthy one under `acknowledge = "enqueued"` (by count: all 20 uploads arrive);
//! - a full in-flight budget answers 503 with `Retry-After` after `queue_wait_timeout` and
//!   counts the refusal in `pyrogate_refused_total`;
//! - the quickstart config (`examples/quickstart.alloy`, port and capture dir redirected):
//!   an upload lands as a capture record with the identical body and rewritten query, and
//!   SIGTERM ends the process with status 0 and `shutdown complete delivered=1`.

mod support;

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use support::bodies;
use support::client::Client;
use support::config;
use support::gateway::{logfmt_get, metric_sum};
use support::upstream::dead_destination;
use support::{Action, Driver, Gateway, MockPyroscope, both_drivers};

const WAIT: Duration = Duration::from_secs(20);

/// Endpoint settings that make retries fast (Alloy's default minimum is 500 ms).
const FAST_BACKOFF: &str = "    min_backoff_period = \"10ms\"\n    max_backoff_period = \"50ms\"";

/// The rewritten query of `bodies::node_pprof` through a write without external labels.
const NODE_QUERY_PLAIN: &str = "format=pprof&from=1700000000&name=myapp.cpu%7Benv%3Dstaging%2Cregion%3Deu%2Cservice_name%3Dmyapp.cpu%7D&sampleRate=100&spyName=nodespy&until=1700000060";

fn upload_once(gw: &Gateway, upload: &bodies::Upload) -> support::Response {
    let mut client = Client::connect(gw.addr());
    client.send(&upload.request(&[]));
    client.read_response()
}

/// A gateway whose single write sends to `mock` with `endpoint` settings, and the mock's url.
fn gateway_for(mock: &MockPyroscope, endpoint: &str, driver: Driver) -> (Gateway, String) {
    let url = mock.url();
    let gw = Gateway::start(&config::single(&url, endpoint, "", ""), driver, 1);
    (gw, url)
}

/// Asserts the account of `url` in one scrape: accepted, delivered, dropped and in-flight
/// profiles, and that accepted = delivered + dropped + in flight.
fn assert_account(
    metrics: &str,
    url: &str,
    accepted: f64,
    delivered: f64,
    dropped: f64,
    in_flight: f64,
) {
    let ep = [("endpoint", url)];
    let get = |name: &str| metric_sum(metrics, name, &ep).unwrap_or(-1.0);
    let got = (
        get("pyrogate_accepted_profiles_total"),
        get("pyroscope_write_sent_profiles_total"),
        get("pyroscope_write_dropped_profiles_total"),
        get("pyrogate_inflight_profiles"),
    );
    assert_eq!(
        got,
        (accepted, delivered, dropped, in_flight),
        "account of {url}"
    );
    assert_eq!(
        got.0,
        got.1 + got.2 + got.3,
        "accepted = delivered + dropped + in flight"
    );
}

/// Asserts the per-endpoint counters of `url`, all read from one scrape of `gw`'s metrics.
fn assert_endpoint_counters(gw: &Gateway, url: &str, expected: &[(&str, Option<f64>)]) {
    let metrics = gw.metrics();
    let ep = [("endpoint", url)];
    for &(name, value) in expected {
        assert_eq!(metric_sum(&metrics, name, &ep), value, "{name} of {url}");
    }
}

fn retry_then_success(driver: Driver) {
    let mock = MockPyroscope::start();
    mock.script([Action::status(503), Action::status(503)]);
    let (gw, url) = gateway_for(&mock, FAST_BACKOFF, driver);
    let upload = bodies::node_pprof(10);
    let response = upload_once(&gw, &upload);
    assert_eq!(response.status, 200, "{response:?}");
    assert_eq!(response.body, b"");
    let recorded = mock.requests();
    let statuses: Vec<Option<u16>> = recorded.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [Some(503), Some(503), Some(200)]);
    for r in &recorded {
        assert_eq!(r.body, upload.body, "every attempt re-sends the same bytes");
        assert_eq!(r.query, NODE_QUERY_PLAIN);
    }
    assert_endpoint_counters(
        &gw,
        &url,
        &[
            ("pyroscope_write_retries_total", Some(2.0)),
            ("pyroscope_write_sent_profiles_total", Some(1.0)),
            (
                "pyroscope_write_sent_bytes_total",
                Some(upload.body.len() as f64),
            ),
        ],
    );
}

fn no_retry_on_400(driver: Driver) {
    let mock = MockPyroscope::start();
    mock.script([Action::status(400)]);
    let (gw, url) = gateway_for(&mock, FAST_BACKOFF, driver);
    let upload = bodies::node_pprof(11);
    let response = upload_once(&gw, &upload);
    assert_eq!(response.status, 400, "{response:?}");
    assert_eq!(response.body_str(), "Bad Request\n");
    assert_eq!(
        response.header("content-type"),
        Some("text/plain; charset=utf-8")
    );
    // The response waited for the final outcome (acknowledge = delivered), so the count is final.
    assert_eq!(mock.request_count(), 1);
    let metrics = gw.metrics();
    let ep = [("endpoint", url.as_str())];
    assert_eq!(
        metric_sum(&metrics, "pyroscope_write_dropped_profiles_total", &ep),
        Some(1.0)
    );
    assert_eq!(
        metric_sum(&metrics, "pyroscope_write_retries_total", &ep).unwrap_or(0.0),
        0.0
    );
}

fn retry_after_on_429_is_honoured(driver: Driver) {
    let mock = MockPyroscope::start();
    mock.script([Action::status(429).with_retry_after("1")]);
    let (gw, _) = gateway_for(&mock, FAST_BACKOFF, driver);
    let upload = bodies::node_pprof(12);
    let response = upload_once(&gw, &upload);
    assert_eq!(response.status, 200, "{response:?}");
    let recorded = mock.requests();
    assert_eq!(recorded.len(), 2);
    assert_eq!(recorded[0].status, Some(429));
    assert_eq!(recorded[1].status, Some(200));
    let gap = recorded[1]
        .received_at
        .duration_since(recorded[0].received_at);
    assert!(
        gap >= Duration::from_millis(900),
        "retry came {gap:?} after a 429 with Retry-After: 1 (min_backoff_period is 10ms)"
    );
}

fn max_backoff_retries_bounds_the_attempts(driver: Driver) {
    let mock = MockPyroscope::builder()
        .default_action(Action::status(500))
        .start();
    let endpoint = format!("{FAST_BACKOFF}\n    max_backoff_retries = 3");
    let (gw, url) = gateway_for(&mock, &endpoint, driver);
    let upload = bodies::folded(13);
    let response = upload_once(&gw, &upload);
    assert_eq!(response.status, 500, "{response:?}");
    assert_eq!(response.body_str(), "Internal Server Error\n");
    assert_eq!(mock.request_count(), 3);
    assert_endpoint_counters(
        &gw,
        &url,
        &[
            ("pyroscope_write_retries_total", Some(2.0)),
            ("pyroscope_write_dropped_profiles_total", Some(1.0)),
            (
                "pyroscope_write_dropped_bytes_total",
                Some(upload.body.len() as f64),
            ),
        ],
    );
    assert_account(&gw.metrics(), &url, 1.0, 0.0, 1.0, 0.0);
}

fn dead_destination_does_not_slow_a_healthy_one(driver: Driver) {
    let healthy = MockPyroscope::start();
    let dead_url = format!("http://{}", dead_destination());
    let cfg = format!(
        "{}{}{}",
        config::receiver(
            "default",
            &["healthy", "dead"],
            "",
            "  acknowledge = \"enqueued\"\n  graceful_shutdown_timeout = \"1s\"",
        ),
        config::write("healthy", &[config::endpoint(&healthy.url(), "")], ""),
        config::write(
            "dead",
            &[config::endpoint(
                &dead_url,
                "    min_backoff_period = \"50ms\"\n    max_backoff_period = \"200ms\"\n    max_backoff_retries = 0",
            )],
            "",
        ),
    );
    let gw = Gateway::start(&cfg, driver, 1);
    let uploads: Vec<bodies::Upload> = (0..20).map(|i| bodies::node_pprof(500 + i)).collect();
    let mut client = Client::connect(gw.addr());
    client.upload_each_expecting_200(&uploads);
    let recorded = healthy.wait_for_requests(uploads.len(), WAIT);
    assert_eq!(recorded.len(), uploads.len());
    for upload in &uploads {
        assert_eq!(
            recorded.iter().filter(|r| r.body == upload.body).count(),
            1,
            "each upload reaches the healthy destination once"
        );
    }
    // The dead destination is still being retried (bounded poll, not a timing assertion).
    let ep = [("endpoint", dead_url.as_str())];
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let retries = metric_sum(&gw.metrics(), "pyroscope_write_retries_total", &ep);
        if retries.is_some_and(|r| r > 0.0) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no retries counted for {dead_url}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let metrics = gw.metrics();
    assert_account(&metrics, &healthy.url(), 20.0, 20.0, 0.0, 0.0);
    let dropped =
        metric_sum(&metrics, "pyroscope_write_dropped_profiles_total", &ep).unwrap_or(-1.0);
    assert_account(&metrics, &dead_url, 20.0, 0.0, dropped, 20.0 - dropped);
    // Graceful shutdown gives up on the dead destination after 1 s and prints its account.
    let stopped = gw.stop();
    let line = stopped
        .stderr
        .lines()
        .find(|l| {
            logfmt_get(l, "msg").as_deref() == Some("destination account")
                && logfmt_get(l, "endpoint").as_deref() == Some(dead_url.as_str())
        })
        .expect("an account line for the dead destination");
    for (key, want) in [
        ("accepted", "20"),
        ("delivered", "0"),
        ("dropped", "20"),
        ("in_flight", "0"),
    ] {
        assert_eq!(
            logfmt_get(line, key).as_deref(),
            Some(want),
            "{key} in {line}"
        );
    }
}

fn full_budget_answers_503_with_retry_after(driver: Driver) {
    let mock = MockPyroscope::builder()
        .default_action(Action::Hang)
        .start();
    // Each body is ~2 KB; a 4096-byte budget admits at most two at a time.
    let cfg = format!(
        "{}\npyrogate {{\n  max_inflight_bytes = 4096\n  queue_wait_timeout = \"100ms\"\n}}\n",
        config::single(
            &mock.url(),
            "    remote_timeout = \"2s\"\n    max_backoff_retries = 1",
            "",
            "",
        )
    );
    let gw = Gateway::start(&cfg, driver, 1);
    let uploads: Vec<bodies::Upload> = (0..8).map(|i| bodies::node_pprof(700 + i)).collect();
    let mut clients: Vec<Client> = uploads
        .iter()
        .map(|u| {
            let mut c = Client::connect(gw.addr());
            c.send(&u.request(&[]));
            c
        })
        .collect();
    let responses: Vec<support::Response> = clients.iter_mut().map(|c| c.read_response()).collect();
    let refused: Vec<&support::Response> = responses.iter().filter(|r| r.status == 503).collect();
    assert!(
        !refused.is_empty(),
        "expected some 503s: {:?}",
        responses.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    assert!(
        refused.len() < uploads.len(),
        "at least one upload fits the budget"
    );
    for r in &refused {
        assert_eq!(r.header("retry-after"), Some("1"), "{r:?}");
    }
    for r in responses.iter().filter(|r| r.status != 503) {
        // Admitted uploads met a hanging upstream: a timeout is not an HTTP status.
        assert_eq!(r.status, 500, "{r:?}");
        assert_eq!(r.body_str(), "Failed to process request\n");
    }
    let refused_metric = metric_sum(&gw.metrics(), "pyrogate_refused_total", &[]);
    assert_eq!(refused_metric, Some(refused.len() as f64));
}

/// `examples/quickstart.alloy` with the receiver on port 0 and the capture dir in `capture`.
fn quickstart_config(capture: &Path) -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/quickstart.alloy");
    let original = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{path}: {e} (the README's first command needs it)"));
    let mut out = String::new();
    let mut saw_port = false;
    let mut saw_file = false;
    for line in original.lines() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("listen_port") {
            let indent = &line[..line.len() - trimmed.len()];
            out.push_str(&format!("{indent}listen_port = 0\n"));
            saw_port = true;
        } else if let Some(start) = line.find("\"file://") {
            let rest = &line[start + 1..];
            let end = rest.find('"').expect("closing quote of the file:// url");
            out.push_str(&line[..start]);
            out.push_str(&format!("\"file://{}\"", capture.display()));
            out.push_str(&rest[end + 1..]);
            out.push('\n');
            saw_file = true;
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    assert!(
        saw_port,
        "quickstart.alloy sets no listen_port:\n{original}"
    );
    assert!(saw_file, "quickstart.alloy has no file:// url:\n{original}");
    out
}

/// One capture record: request line, header fields, body.
#[derive(Debug)]
struct CaptureRecord {
    request_line: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl CaptureRecord {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Parses a segment: a sequence of HTTP/1.1 requests framed by Content-Length.
fn parse_capture(mut bytes: &[u8]) -> Vec<CaptureRecord> {
    let mut records = Vec::new();
    while !bytes.is_empty() {
        let head_end = bytes
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("record head ends with CRLFCRLF");
        let head = std::str::from_utf8(&bytes[..head_end]).expect("record head is UTF-8");
        let mut lines = head.split("\r\n");
        let request_line = lines.next().expect("request line").to_string();
        let headers: Vec<(String, String)> = lines
            .map(|l| {
                let (n, v) = l.split_once(':').expect("header field");
                (n.to_string(), v.trim().to_string())
            })
            .collect();
        let len: usize = headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
            .and_then(|(_, v)| v.parse().ok())
            .expect("record Content-Length");
        let body_start = head_end + 4;
        let body = bytes[body_start..body_start + len].to_vec();
        bytes = &bytes[body_start + len..];
        records.push(CaptureRecord {
            request_line,
            headers,
            body,
        });
    }
    records
}

fn capture_segments(dir: &Path) -> Vec<PathBuf> {
    let mut segments: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("capture dir {}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            name.starts_with("capture-") && name.ends_with(".http") && name.contains("-core")
        })
        .collect();
    segments.sort();
    segments
}

fn quickstart_upload_lands_in_the_capture_dir(driver: Driver) {
    let scratch = tempfile::tempdir().expect("tempdir");
    let capture = scratch.path().join("capture");
    let gw = Gateway::start(&quickstart_config(&capture), driver, 1);
    let upload = bodies::node_pprof(900);
    let before = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_nanos();
    let response = upload_once(&gw, &upload);
    assert_eq!(response.status, 200, "{response:?}");
    let stopped = gw.stop();
    let after = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_nanos();
    stopped.assert_clean_exit(1, 0);

    let segments = capture_segments(&capture);
    assert!(
        !segments.is_empty(),
        "no capture segment in {}",
        capture.display()
    );
    let records: Vec<CaptureRecord> = segments
        .iter()
        .flat_map(|p| parse_capture(&std::fs::read(p).expect("read segment")))
        .collect();
    assert_eq!(records.len(), 1, "{records:?}");
    let record = &records[0];
    // The quickstart write has no external labels: the query is Alloy's plain rewrite.
    assert_eq!(
        record.request_line,
        format!("POST /ingest?{NODE_QUERY_PLAIN} HTTP/1.1")
    );
    assert_eq!(record.body, upload.body);
    assert_eq!(record.header("host"), None);
    assert_eq!(
        record.header("content-type"),
        upload.content_type.as_deref()
    );
    assert_eq!(
        record.header("content-length"),
        Some(upload.body.len().to_string().as_str())
    );
    let captured_at: u128 = record
        .header("x-pyrogate-captured-at")
        .and_then(|v| v.parse().ok())
        .expect("X-Pyrogate-Captured-At in unix nanoseconds");
    assert!(
        (before..=after).contains(&captured_at),
        "captured at {captured_at}, upload between {before} and {after}"
    );
}

both_drivers!(
    retry_then_success,
    no_retry_on_400,
    retry_after_on_429_is_honoured,
    max_backoff_retries_bounds_the_attempts,
    dead_destination_does_not_slow_a_healthy_one,
    full_budget_answers_503_with_retry_after,
    quickstart_upload_lands_in_the_capture_dir,
);
