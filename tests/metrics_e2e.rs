//! End-to-end: the admin listener's `/metrics`, `/-/ready` and `/-/healthy`.
//!
//! Covers, under both drivers (README, "Metrics"; tuning.md, "What the metrics tell"):
//! - a fan-out to two destinations where A answers 200 and B answers 400, run on two cores with
//!   one connection per upload (so that SO_REUSEPORT spreads them over both cores): after `n`
//!   uploads of every SDK shape, one scrape shows exact, merged values — Alloy's
//!   `pyroscope_write_sent_profiles_total{endpoint=A} = n`,
//!   `pyroscope_write_dropped_profiles_total{endpoint=B} = n`, sent/dropped bytes = the sum of
//!   the body lengths, no retries; `pyrogate_dropped_total{endpoint=B,reason="rejected"} = n`
//!   and every other reason 0; `pyrogate_requests_total{receiver,route="ingest",status="400"}
//!   = n` and no other ingest status; `pyrogate_upstream_latency_seconds_count{endpoint=A} = n`
//!   (and its `+Inf` bucket), 0 for B; empty queues, no bytes in flight, nothing refused;
//! - `pyrogate_connections{receiver}` counts the connections held open across two cores, and
//!   falls back to 0 once the clients close;
//! - `/-/ready` and `/-/healthy` answer 200 with their one-word bodies, `/metrics` is served
//!   as Prometheus text;
//! - Alloy's histograms, parsed by `prometheus_client`: `pyroscope_write_latency` counts one
//!   `*_total` per upload (per Push series) for a writer with two endpoints, one `*_endpoint`
//!   per endpoint and one `*_downstream` per attempt (a retry included); the receive_http
//!   request duration, request and response size histograms count each request under its
//!   method, dskit route and status, sizes in the buckets their lengths fall in; every series
//!   has Alloy's bucket layout, cumulative buckets and `+Inf` = `_count`.
//!
//! Counters are final once a client has its answer (acknowledge = delivered waits for both
//! destinations), so one scrape after the last response is exact; nothing here polls.

mod support;

use std::time::Duration;

use support::client::{Client, get};
use support::config;
use support::gateway::{metric_samples, metric_sum};
use support::{Action, Driver, Gateway, MockPyroscope, both_drivers};
use support::{bodies, push};

const WAIT: Duration = Duration::from_secs(20);
/// Uploads in the fan-out scenario: each SDK shape several times, one connection each.
const UPLOADS: usize = 24;

/// Receiver `default` → writes `a` and `b`, one endpoint each.
fn fan_out_config(a: &str, b: &str) -> String {
    format!(
        "{}{}{}",
        config::receiver("default", &["a", "b"], "", ""),
        config::write("a", &[config::endpoint(a, "")], ""),
        config::write("b", &[config::endpoint(b, "")], ""),
    )
}

/// The value of the one sample of `name` with exactly `labels`; panics if there is none.
fn value(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    let matching: Vec<f64> = metric_samples(text)
        .into_iter()
        .filter(|(n, ls, _)| {
            n == name
                && ls.len() == labels.len()
                && labels
                    .iter()
                    .all(|(k, v)| ls.iter().any(|(lk, lv)| lk == k && lv == v))
        })
        .map(|(_, _, v)| v)
        .collect();
    assert_eq!(matching.len(), 1, "samples of {name}{labels:?} in:\n{text}");
    matching[0]
}

fn fan_out_counters_are_exact_and_merged_across_two_cores(driver: Driver) {
    let a = MockPyroscope::start();
    let b = MockPyroscope::builder()
        .default_action(Action::status(400))
        .start();
    let (url_a, url_b) = (a.url(), b.url());
    let gw = Gateway::start(&fan_out_config(&url_a, &url_b), driver, 2);
    let uploads: Vec<bodies::Upload> = (0..UPLOADS / 4)
        .flat_map(|i| bodies::all_shapes(1000 + 10 * i as u64))
        .collect();
    assert_eq!(uploads.len(), UPLOADS);
    let total_bytes: usize = uploads.iter().map(|u| u.body.len()).sum();
    for upload in &uploads {
        let mut client = Client::connect(gw.addr());
        client.send(&upload.request(&[("Connection", "close")]));
        let response = client.read_response();
        assert_eq!(response.status, 400, "{}: {response:?}", upload.shape);
        assert_eq!(response.body_str(), "Bad Request\n");
    }
    assert_eq!(a.request_count(), UPLOADS);
    assert_eq!(b.request_count(), UPLOADS);

    let text = gw.metrics();
    let n = UPLOADS as f64;
    let bytes = total_bytes as f64;
    let ep_a = [("endpoint", url_a.as_str())];
    let ep_b = [("endpoint", url_b.as_str())];
    for (name, want_a, want_b) in [
        ("pyroscope_write_sent_profiles_total", n, 0.0),
        ("pyroscope_write_dropped_profiles_total", 0.0, n),
        ("pyroscope_write_sent_bytes_total", bytes, 0.0),
        ("pyroscope_write_dropped_bytes_total", 0.0, bytes),
        ("pyroscope_write_retries_total", 0.0, 0.0),
        ("pyrogate_upstream_latency_seconds_count", n, 0.0),
        ("pyrogate_queue_depth", 0.0, 0.0),
    ] {
        // Alloy's series carry the component's id and path besides `endpoint`.
        type Labels<'a> = Vec<(&'a str, &'a str)>;
        let (la, lb): (Labels, Labels) = if name.starts_with("pyroscope_write_") {
            (
                [
                    ("component_id", "pyroscope.write.a"),
                    ("component_path", "/"),
                ]
                .into_iter()
                .chain(ep_a)
                .collect(),
                [
                    ("component_id", "pyroscope.write.b"),
                    ("component_path", "/"),
                ]
                .into_iter()
                .chain(ep_b)
                .collect(),
            )
        } else {
            (ep_a.to_vec(), ep_b.to_vec())
        };
        assert_eq!(value(&text, name, &la), want_a, "{name} for A\n{text}");
        assert_eq!(value(&text, name, &lb), want_b, "{name} for B\n{text}");
    }
    assert_eq!(
        value(
            &text,
            "pyrogate_upstream_latency_seconds_bucket",
            &[("endpoint", url_a.as_str()), ("le", "+Inf")]
        ),
        n
    );
    for reason in ["queue_full", "retries_exhausted", "rejected", "shutdown"] {
        let want_b = if reason == "rejected" { n } else { 0.0 };
        for (url, want) in [(&url_a, 0.0), (&url_b, want_b)] {
            assert_eq!(
                value(
                    &text,
                    "pyrogate_dropped_total",
                    &[("endpoint", url.as_str()), ("reason", reason)]
                ),
                want,
                "pyrogate_dropped_total{{endpoint={url},reason={reason}}}\n{text}"
            );
        }
    }
    assert_eq!(
        value(
            &text,
            "pyrogate_requests_total",
            &[
                ("receiver", "default"),
                ("route", "ingest"),
                ("status", "400")
            ]
        ),
        n
    );
    assert_eq!(
        metric_sum(
            &text,
            "pyrogate_requests_total",
            &[("receiver", "default"), ("route", "ingest")]
        ),
        Some(n),
        "no ingest request was answered with another status\n{text}"
    );
    assert_eq!(
        metric_sum(&text, "pyrogate_refused_total", &[("receiver", "default")]),
        Some(0.0)
    );
    assert_eq!(value(&text, "pyrogate_inflight_bytes", &[]), 0.0);
}

fn connections_gauge_counts_open_connections_on_every_core(driver: Driver) {
    let mock = MockPyroscope::start();
    let gw = Gateway::start(&config::single(&mock.url(), "", "", ""), driver, 2);
    let receiver = [("receiver", "default")];
    // Each connection is proven accepted by one answered upload, then left open.
    let clients: Vec<Client> = (0..6)
        .map(|i| {
            let mut c = Client::connect(gw.addr());
            c.send(&bodies::folded(600 + i).request(&[]));
            assert_eq!(c.read_response().status, 200);
            c
        })
        .collect();
    assert_eq!(
        metric_sum(&gw.metrics(), "pyrogate_connections", &receiver),
        Some(6.0)
    );
    drop(clients);
    // The gateway notices the closes asynchronously: a bounded poll, not a timing assertion.
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let open = metric_sum(&gw.metrics(), "pyrogate_connections", &receiver);
        if open == Some(0.0) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "pyrogate_connections still {open:?} after every client closed"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn ready_and_healthy_answer_200(driver: Driver) {
    let mock = MockPyroscope::start();
    let gw = Gateway::start(&config::single(&mock.url(), "", "", ""), driver, 1);
    let ready = get(gw.admin(), "/-/ready");
    assert_eq!(ready.status, 200, "{ready:?}");
    assert_eq!(ready.body_str(), "ready\n");
    let healthy = get(gw.admin(), "/-/healthy");
    assert_eq!(healthy.status, 200, "{healthy:?}");
    assert_eq!(healthy.body_str(), "healthy\n");
    let metrics = get(gw.admin(), "/metrics");
    assert_eq!(metrics.status, 200, "{metrics:?}");
    assert_eq!(
        metrics.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    assert!(
        metrics
            .body_str()
            .contains("# TYPE pyroscope_write_sent_profiles_total counter\n"),
        "{}",
        metrics.body_str()
    );
    let unknown = get(gw.admin(), "/nope");
    assert_eq!(unknown.status, 404, "{unknown:?}");
    // Scrapes stay bounded even while the receiver is in use.
    let mut client = Client::connect(gw.addr()).with_timeout(WAIT);
    client.send(&bodies::folded(7).request(&[]));
    assert_eq!(client.read_response().status, 200);
    assert_eq!(
        metric_sum(
            &gw.metrics(),
            "pyroscope_write_sent_profiles_total",
            &[("endpoint", mock.url().as_str())]
        ),
        Some(1.0)
    );
}

/// Parses a scrape with `prometheus_client.parser` (the Prometheus client library's own text
/// parser, installed by the test kit into a venv under `target/py-cache` the first time; it
/// needs `python3`) and returns `name type labels=value` lines, one per sample, as the library
/// understood them.
fn parse_with_prometheus_client(text: &str) -> Vec<String> {
    const SCRIPT: &str = r#"
import sys
from prometheus_client.parser import text_string_to_metric_families
for fam in text_string_to_metric_families(sys.stdin.read()):
    for s in fam.samples:
        labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()))
        print(f"{fam.name} {fam.type} {s.name}{{{labels}}}={s.value}")
"#;
    let python = testkit::python::venv("prometheus-client", "prometheus-client==0.21.1");
    let out = testkit::python::run(&python, SCRIPT, &[], text.as_bytes())
        .unwrap_or_else(|e| panic!("prometheus_client rejected the scrape: {e}\n{text}"));
    String::from_utf8_lossy(&out)
        .lines()
        .map(str::to_string)
        .collect()
}

/// A scrape during an end-to-end run parses with the Prometheus client library, and what it
/// parsed has Alloy's names, types and labels and the numbers that were sent.
fn scrape_parses_with_the_prometheus_parser_and_has_alloys_series(driver: Driver) {
    let mock = MockPyroscope::start();
    let gw = Gateway::start(
        &config::single(&mock.url(), "", "    conn_limit = 77", ""),
        driver,
        2,
    );
    let mut client = Client::connect(gw.addr());
    for i in 0..3 {
        client.send(&bodies::folded(700 + i).request(&[]));
        assert_eq!(client.read_response().status, 200);
    }
    let parsed = parse_with_prometheus_client(&gw.metrics());
    let url = mock.url();
    let write = format!("component_id=pyroscope.write.upstream,component_path=/,endpoint={url}");
    let rx = "component_id=pyroscope.receive_http.default,component_path=/,protocol=http";
    for want in [
        format!(
            "pyroscope_write_sent_profiles counter pyroscope_write_sent_profiles_total{{{write}}}=3.0"
        ),
        format!(
            "pyroscope_write_dropped_profiles counter pyroscope_write_dropped_profiles_total{{{write}}}=0.0"
        ),
        format!("pyroscope_write_retries counter pyroscope_write_retries_total{{{write}}}=0.0"),
        format!(
            "pyrogate_accepted_profiles counter pyrogate_accepted_profiles_total{{endpoint={url}}}=3.0"
        ),
        format!(
            "pyroscope_receive_http_tcp_connections gauge pyroscope_receive_http_tcp_connections{{{rx}}}=1.0"
        ),
        format!(
            "pyroscope_receive_http_tcp_connections_limit gauge pyroscope_receive_http_tcp_connections_limit{{{rx}}}=77.0"
        ),
        format!(
            "pyrogate_build_info gauge pyrogate_build_info{{revision=unknown,version={}}}=1.0",
            env!("CARGO_PKG_VERSION")
        ),
        // Both cores, each on the driver it was forced onto.
        format!(
            "pyrogate_core_driver gauge pyrogate_core_driver{{core=0,driver={}}}=1.0",
            driver.flag()
        ),
        format!(
            "pyrogate_core_driver gauge pyrogate_core_driver{{core=1,driver={}}}=1.0",
            driver.flag()
        ),
    ] {
        assert!(
            parsed.contains(&want),
            "missing `{want}` in:\n{}",
            parsed.join("\n")
        );
    }
    for name in [
        "process_cpu_seconds counter",
        "process_resident_memory_bytes gauge",
        "process_virtual_memory_bytes gauge",
        "process_open_fds gauge",
        "process_max_fds gauge",
        "process_start_time_seconds gauge",
    ] {
        let line = parsed
            .iter()
            .find(|l| l.starts_with(&format!("{name} ")))
            .unwrap_or_else(|| panic!("no {name}"));
        let v: f64 = line
            .rsplit('=')
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0);
        // CPU time is counted in 10 ms ticks: a quiet gateway may still read 0.
        let floor = if name.starts_with("process_cpu") {
            0.0
        } else {
            1.0
        };
        assert!(v >= floor, "{line}");
    }
}

/// One sample as `prometheus_client` parsed it.
#[derive(Debug)]
struct Parsed {
    family: String,
    kind: String,
    name: String,
    labels: std::collections::BTreeMap<String, String>,
    value: f64,
}

/// The lines of [`parse_with_prometheus_client`] as values.
fn parsed_samples(text: &str) -> Vec<Parsed> {
    parse_with_prometheus_client(text)
        .into_iter()
        .map(|line| {
            let (family, rest) = line.split_once(' ').expect("family");
            let (kind, rest) = rest.split_once(' ').expect("type");
            let (name, rest) = rest.split_once('{').expect("labels");
            let (labels, value) = rest.rsplit_once("}=").expect("value");
            let labels = labels
                .split(',')
                .filter(|kv| !kv.is_empty())
                .map(|kv| {
                    let (k, v) = kv.split_once('=').expect("label");
                    (k.to_string(), v.to_string())
                })
                .collect();
            Parsed {
                family: family.into(),
                kind: kind.into(),
                name: name.into(),
                labels,
                value: value.parse().expect("number"),
            }
        })
        .collect()
}

/// One histogram series as parsed: `(le, cumulative count)` in exposition order, sum, count.
#[derive(Debug)]
struct Hist {
    buckets: Vec<(String, f64)>,
    sum: f64,
    count: f64,
}

/// The series of histogram `family` whose labels (besides `le`) are exactly `labels`.
fn histogram(parsed: &[Parsed], family: &str, labels: &[(&str, &str)]) -> Hist {
    let want: std::collections::BTreeMap<String, String> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let mut h = Hist {
        buckets: Vec::new(),
        sum: f64::NAN,
        count: f64::NAN,
    };
    for p in parsed.iter().filter(|p| p.family == family) {
        assert_eq!(p.kind, "histogram", "{family}");
        let mut ls = p.labels.clone();
        let le = ls.remove("le");
        if ls != want {
            continue;
        }
        match (p.name.strip_prefix(family), le) {
            (Some("_bucket"), Some(le)) => h.buckets.push((le, p.value)),
            (Some("_sum"), None) => h.sum = p.value,
            (Some("_count"), None) => h.count = p.value,
            other => panic!("unexpected sample {other:?} in {family}"),
        }
    }
    assert!(!h.count.is_nan(), "no {family}{labels:?}");
    h
}

/// The `le` values Alloy exposes for each histogram family (client_golang's float format).
fn bucket_layout(family: &str) -> Vec<&'static str> {
    let mut les = match family {
        "pyroscope_write_latency" => vec![
            "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10",
        ],
        "pyroscope_receive_http_request_duration_seconds" => vec![
            "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "25",
            "50", "100",
        ],
        "pyroscope_receive_http_request_message_bytes"
        | "pyroscope_receive_http_response_message_bytes" => vec![
            "4",
            "16",
            "64",
            "256",
            "1024",
            "4096",
            "16384",
            "65536",
            "262144",
            "1.048576e+06",
            "4.194304e+06",
            "1.6777216e+07",
            "6.7108864e+07",
            "2.68435456e+08",
            "1.073741824e+09",
        ],
        // pyrogate's own: enqueue to delivery, retries included, up to 30 s.
        "pyrogate_upstream_latency_seconds" => vec![
            "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "30",
        ],
        other => panic!("unexpected histogram family {other}"),
    };
    les.push("+Inf");
    les
}

/// After known uploads (four `/ingest` bodies of chosen sizes, one Push of three series, one
/// unrouted GET), Alloy's histograms count exactly what was sent: `pyroscope_write_latency`
/// per type (`*_total` per writer with `endpoint="-"`, per Push series), the receiver's
/// request duration per method/route/status, the request and response body sizes in the
/// buckets their lengths fall in; every histogram series has Alloy's bucket layout, cumulative
/// buckets and `+Inf` = `_count`; nothing is left in flight.
fn histograms_count_what_was_sent_with_alloys_layouts(driver: Driver) {
    let mock = MockPyroscope::start();
    let url = mock.url();
    // A second endpoint of the same writer answers its first request 503: one retry.
    let second = MockPyroscope::start();
    second.script([Action::status(503)]);
    let url2 = second.url();
    let cfg = format!(
        "{}{}",
        config::receiver("default", &["upstream"], "", ""),
        config::write(
            "upstream",
            &[
                config::endpoint(&url, ""),
                config::endpoint(
                    &url2,
                    "    min_backoff_period = \"10ms\"\n    max_backoff_period = \"20ms\""
                ),
            ],
            ""
        ),
    );
    let gw = Gateway::start(&cfg, driver, 2);
    let lengths = [10usize, 100, 5000, 70_000];
    for (i, len) in lengths.iter().enumerate() {
        let mut client = Client::connect(gw.addr());
        let upload = bodies::pprof_of_len(800 + i as u64, *len);
        client.send(&upload.request(&[("Connection", "close")]));
        assert_eq!(client.read_response().status, 200);
    }
    let series = (0..3)
        .map(|i| {
            push::simple_request(900 + i, &format!("svc{i}"), 300)
                .series
                .remove(0)
        })
        .collect();
    let push_upload = push::proto_push(push::PushRequest::new(series));
    let mut client = Client::connect(gw.addr());
    client.send(&push_upload.http_request(&[]));
    assert_eq!(client.read_response().status, 200);
    let nope = get(gw.addr(), "/nope");
    assert_eq!(nope.status, 404);
    assert_eq!(mock.request_count(), lengths.len() + 3);
    assert_eq!(second.request_count(), lengths.len() + 3 + 1);

    let parsed = parsed_samples(&gw.metrics());
    // Every histogram series: Alloy's layout, cumulative, +Inf = _count, a finite sum.
    let mut series_seen = std::collections::BTreeSet::new();
    for p in parsed.iter().filter(|p| p.kind == "histogram") {
        let mut ls: Vec<(&str, &str)> = p
            .labels
            .iter()
            .filter(|(k, _)| k.as_str() != "le")
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        ls.sort();
        if !series_seen.insert((p.family.clone(), format!("{ls:?}"))) {
            continue;
        }
        let h = histogram(&parsed, &p.family, &ls);
        let les: Vec<&str> = h.buckets.iter().map(|(le, _)| le.as_str()).collect();
        assert_eq!(les, bucket_layout(&p.family), "{} {ls:?}", p.family);
        assert!(
            h.buckets.windows(2).all(|w| w[0].1 <= w[1].1),
            "{} {ls:?}: buckets not cumulative: {h:?}",
            p.family
        );
        assert_eq!(h.buckets.last().map(|b| b.1), Some(h.count), "{h:?}");
        assert!(h.sum.is_finite() && h.sum >= 0.0, "{h:?}");
    }
    assert!(series_seen.len() >= 2 + 4 + 4 + 3 + 6, "{series_seen:?}");

    let writer = [
        ("component_id", "pyroscope.write.upstream"),
        ("component_path", "/"),
    ];
    let latency_count = |endpoint: &str, kind: &str| {
        let mut ls = writer.to_vec();
        ls.push(("endpoint", endpoint));
        ls.push(("type", kind));
        histogram(&parsed, "pyroscope_write_latency", &ls).count
    };
    let ingests = lengths.len() as f64;
    // `*_total` once per upload (per Push series) however many endpoints the writer has;
    // `*_downstream` once per attempt: the retry on the second endpoint counts there, and
    // the first request there was an `/ingest` one.
    for (endpoint, kind, want) in [
        ("-", "ingest_total", ingests),
        (url.as_str(), "ingest_endpoint", ingests),
        (url.as_str(), "ingest_downstream", ingests),
        (url2.as_str(), "ingest_endpoint", ingests),
        (url2.as_str(), "ingest_downstream", ingests + 1.0),
        ("-", "push_total", 3.0),
        (url.as_str(), "push_endpoint", 3.0),
        (url.as_str(), "push_downstream", 3.0),
        (url2.as_str(), "push_endpoint", 3.0),
        (url2.as_str(), "push_downstream", 3.0),
    ] {
        assert_eq!(latency_count(endpoint, kind), want, "{kind} {endpoint}");
    }

    let rx = [
        ("component_id", "pyroscope.receive_http.default"),
        ("component_path", "/"),
    ];
    let with = |extra: &[(&'static str, &'static str)]| {
        let mut ls = rx.to_vec();
        ls.extend_from_slice(extra);
        ls
    };
    let duration = "pyroscope_receive_http_request_duration_seconds";
    for (method, route, status, want) in [
        ("POST", "ingest", "200", ingests),
        ("POST", "push_v1_pusherservice", "200", 1.0),
        ("GET", "other", "404", 1.0),
    ] {
        let ls = with(&[
            ("method", method),
            ("route", route),
            ("status_code", status),
            ("ws", "false"),
        ]);
        assert_eq!(histogram(&parsed, duration, &ls).count, want, "{ls:?}");
    }
    // Request bodies: each length is counted in the first bucket that holds it.
    let request_bytes = histogram(
        &parsed,
        "pyroscope_receive_http_request_message_bytes",
        &with(&[("method", "POST"), ("route", "ingest")]),
    );
    assert_eq!(request_bytes.count, ingests);
    assert_eq!(
        request_bytes.sum,
        lengths.iter().sum::<usize>() as f64,
        "{request_bytes:?}"
    );
    for (le, cumulative) in &request_bytes.buckets {
        let bound: f64 = if le == "+Inf" {
            f64::INFINITY
        } else {
            le.parse().expect("le")
        };
        let want = lengths.iter().filter(|&&l| l as f64 <= bound).count() as f64;
        assert_eq!(*cumulative, want, "le={le}: {request_bytes:?}");
    }
    let push_bytes = histogram(
        &parsed,
        "pyroscope_receive_http_request_message_bytes",
        &with(&[("method", "POST"), ("route", "push_v1_pusherservice")]),
    );
    assert_eq!(
        (push_bytes.count, push_bytes.sum),
        (1.0, push_upload.body.len() as f64)
    );
    // Responses: empty 200s for /ingest; Go's 404 text for the unrouted GET.
    let responses = "pyroscope_receive_http_response_message_bytes";
    let ingest_out = histogram(
        &parsed,
        responses,
        &with(&[("method", "POST"), ("route", "ingest")]),
    );
    assert_eq!((ingest_out.count, ingest_out.sum), (ingests, 0.0));
    let other_out = histogram(
        &parsed,
        responses,
        &with(&[("method", "GET"), ("route", "other")]),
    );
    assert_eq!(
        (other_out.count, other_out.sum),
        (1.0, "404 page not found\n".len() as f64)
    );
    for (method, route) in [
        ("POST", "ingest"),
        ("POST", "push_v1_pusherservice"),
        ("GET", "other"),
    ] {
        let mut ls: Vec<(String, String)> = with(&[("method", method), ("route", route)])
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
        ls.sort();
        let inflight: Vec<f64> = parsed
            .iter()
            .filter(|p| {
                p.name == "pyroscope_receive_http_inflight_requests"
                    && p.labels.clone().into_iter().collect::<Vec<_>>() == ls
            })
            .map(|p| p.value)
            .collect();
        assert_eq!(inflight, [0.0], "inflight {method} {route}");
    }
}

both_drivers!(
    histograms_count_what_was_sent_with_alloys_layouts,
    scrape_parses_with_the_prometheus_parser_and_has_alloys_series,
    fan_out_counters_are_exact_and_merged_across_two_cores,
    connections_gauge_counts_open_connections_on_every_core,
    ready_and_healthy_answer_200,
);
