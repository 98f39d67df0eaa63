//! End-to-end: the Connect Push API (`POST /push.v1.PusherService/Push`) through the
//! real binary, against Pyroscope stand-ins that decode and validate every forwarded push with
//! an independent codec (`support::push`).
//!
//! Covers, under both drivers, Push as Alloy's `pyroscope.receive_http` serves it and
//! `pyroscope.write` forwards it (grafana/alloy `internal/component/pyroscope/write/write.go`,
//! `Append`; README, "Behaviour"):
//! - the Python/Rust SDK shape (gzip'd `application/proto`, UUID sample ID, no
//!   `Connect-Protocol-Version`) reaches every destination of a two-write fan-out with Alloy's
//!   labels (sorted, `app_name` added, external labels overriding on one write), the same
//!   `raw_profile` bytes and ID, and the upstream Connect headers (`application/proto`,
//!   `Connect-Protocol-Version: 1`, `Connect-Timeout-Ms` ≤ `remote_timeout`, pyrogate's UA, no
//!   Content-Encoding, the endpoint headers, no client header); the client gets 200
//!   `application/proto` with an empty body;
//! - the .NET shape (uncompressed, empty ID) likewise, with the labels of the `push-sdk-dotnet`
//!   vector of `tests/data/label-vectors.json`;
//! - a JSON push (`rawProfile` and `raw_profile`) arrives as proto with identical bytes; the
//!   client gets `{}` as `application/json`; a client `Connect-Timeout-Ms` bounds the upstream
//!   one;
//! - a 3-series push becomes exactly 3 upstream requests per endpoint, one series each, in
//!   order, each with Alloy's label rules (`__` labels dropped except `__name__`/`__delta__`,
//!   `service_name` from `__name__`);
//! - gRPC-Web (`application/grpc-web+proto` and `application/grpc-web`) is delivered and
//!   answered 200 with an empty data frame and a `grpc-status: 0` trailer;
//! - malformed protobuf/JSON, a wrong `Connect-Protocol-Version`, streaming or unknown content
//!   types, `Content-Encoding: br` and a gzip bomb get their Connect errors, nothing forwarded;
//! - every failing `push` label vector gets 500 `internal` with the vector's `client_message`;
//! - 503, 503, 200 upstream → delivered after 3 attempts; a Connect `invalid_argument` 400 is
//!   not retried and the client gets 500 `internal`;
//! - `pyroscope_write_sent_profiles_total` / `_sent_bytes_total` count samples and raw bytes.

mod support;

use std::time::Duration;

use support::client::{Client, upload_request};
use support::config;
use support::gateway::metric_sum;
use support::push::{
    self, PUSH_PATH, PushRequest, PushUpload, RawField, Sample, Series, connect_error,
    grpc_web_frame, grpc_web_frames, grpc_web_trailers, owned_labels,
};
use support::{Action, Driver, Gateway, MockPyroscope, Recorded, Response, both_drivers};

const WAIT: Duration = Duration::from_secs(20);

/// Endpoint settings that make retries fast (Alloy's default minimum is 500 ms).
const FAST_BACKOFF: &str = "    min_backoff_period = \"10ms\"\n    max_backoff_period = \"50ms\"";

/// The `remote_timeout` of the fan-out endpoints, which bounds `Connect-Timeout-Ms`.
const REMOTE_TIMEOUT_MS: u64 = 7000;

/// Client headers an SDK may send that must not reach the upstream.
const CLIENT_EXTRA_HEADERS: &[(&str, &str)] =
    &[("X-Custom-Client", "dropped"), ("Accept-Encoding", "gzip")];

/// The Alloy label vectors, vendored in the repository (`tests/data/label-vectors.json`).
const VECTORS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/label-vectors.json");

fn push_vectors() -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(VECTORS).unwrap_or_else(|e| panic!("read {VECTORS}: {e}"));
    let all: serde_json::Value = serde_json::from_str(&text).expect("vectors are JSON");
    all["push"].as_array().expect("push vectors").clone()
}

fn vector(id: &str) -> serde_json::Value {
    push_vectors()
        .into_iter()
        .find(|v| v["id"] == id)
        .unwrap_or_else(|| panic!("no push vector {id}"))
}

/// A `[["name","value"], ...]` array of a vector as labels.
fn vector_labels(value: &serde_json::Value) -> Vec<(String, String)> {
    value
        .as_array()
        .expect("label list")
        .iter()
        .map(|pair| {
            (
                pair[0].as_str().expect("name").to_string(),
                pair[1].as_str().expect("value").to_string(),
            )
        })
        .collect()
}

fn user_agent() -> String {
    format!("pyrogate/{}", env!("CARGO_PKG_VERSION"))
}

fn send(gw: &Gateway, bytes: &[u8]) -> Response {
    let mut client = Client::connect(gw.addr());
    client.send(bytes);
    client.read_response()
}

fn send_push(gw: &Gateway, upload: &PushUpload) -> Response {
    send(gw, &upload.http_request(CLIENT_EXTRA_HEADERS))
}

/// A Connect unary success: 200, `application/proto` with an empty body, or `{}` as
/// `application/json` for a JSON request.
fn assert_push_ok(response: &Response, json: bool, what: &str) {
    assert_eq!(response.status, 200, "{what}: {response:?}");
    if json {
        assert_eq!(
            response.header("content-type"),
            Some("application/json"),
            "{what}"
        );
        assert_eq!(response.body_str(), "{}", "{what}");
    } else {
        assert_eq!(
            response.header("content-type"),
            Some("application/proto"),
            "{what}"
        );
        assert_eq!(response.body, b"", "{what}");
    }
}

/// A Connect error: `status`, `application/json`, `{"code":"<code>","message":..}`; returns
/// the message.
fn assert_connect_error(response: &Response, status: u16, code: &str, what: &str) -> String {
    assert_eq!(response.status, status, "{what}: {response:?}");
    assert_eq!(
        response.header("content-type"),
        Some("application/json"),
        "{what}: {response:?}"
    );
    let (got, message) = connect_error(&response.body)
        .unwrap_or_else(|| panic!("{what}: not a Connect error body: {response:?}"));
    assert_eq!(got, code, "{what}: {message}");
    message
}

/// The headers pyrogate must put on an upstream push (Alloy's `pyroscope.write` push client:
/// connect-go's unary Connect protocol, `application/proto`, `Connect-Protocol-Version: 1`).
fn assert_upstream_push_headers(r: &Recorded, endpoint_header: Option<(&str, &str)>, what: &str) {
    assert_eq!(r.method, "POST", "{what}");
    assert_eq!(r.path, PUSH_PATH, "{what}");
    assert_eq!(r.query, "", "{what}");
    assert_eq!(
        r.header_all("content-type"),
        ["application/proto"],
        "{what}"
    );
    assert_eq!(r.header_all("connect-protocol-version"), ["1"], "{what}");
    assert_eq!(
        r.header_all("user-agent"),
        [user_agent().as_str()],
        "{what}"
    );
    assert_eq!(r.header("content-encoding"), None, "{what}");
    assert_eq!(r.header("x-custom-client"), None, "{what}");
    assert_eq!(
        r.header("content-length"),
        Some(r.body.len().to_string().as_str()),
        "{what}"
    );
    assert!(!r.chunked, "{what}: forwarded chunked");
    let timeout: u64 = r
        .header("connect-timeout-ms")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{what}: no numeric Connect-Timeout-Ms in {:?}", r.headers));
    assert!(
        timeout > 0 && timeout <= REMOTE_TIMEOUT_MS,
        "{what}: Connect-Timeout-Ms {timeout} not in 1..={REMOTE_TIMEOUT_MS}"
    );
    if let Some((name, value)) = endpoint_header {
        assert_eq!(r.header_all(name), [value], "{what}");
    }
    assert_eq!(r.status, Some(200), "{what}: Pyroscope's rules");
}

/// The series pyrogate must forward for `sent` with `labels` as rewritten by Alloy: the same
/// samples (bytes and IDs) in order.
fn expect_series(sent: &Series, labels: &[(&str, &str)]) -> PushRequest {
    PushRequest::new(vec![Series {
        labels: owned_labels(labels),
        samples: sent.samples.clone(),
    }])
}

/// Sends a valid marker push, expects it delivered, then asserts the upstream holds only it:
/// nothing before it was forwarded.
fn assert_only_marker_forwarded(gw: &Gateway, mock: &MockPyroscope, what: &str) {
    let marker = push::proto_push(push::simple_request(9999, "marker", 200));
    assert_push_ok(&send_push(gw, &marker), false, "marker push");
    let recorded = mock.wait_for_requests(1, WAIT);
    assert_eq!(
        recorded.len(),
        1,
        "{what}: upstream got {:?}",
        recorded
            .iter()
            .map(|r| (r.path.clone(), r.push.clone()))
            .collect::<Vec<_>>()
    );
    let series = &marker.request.series[0];
    assert_eq!(
        recorded[0].push_request(),
        &expect_series(
            series,
            &[
                ("__name__", "process_cpu"),
                ("app_name", "process_cpu"),
                ("service_name", "marker")
            ]
        ),
        "{what}: the marker"
    );
}

/// Receiver `default` → writes `a` (external labels `env=prod`, `cluster=c1`) and `b`, one
/// endpoint each with an `X-Destination` header and `remote_timeout = 7s`.
fn fan_out_config(a: &MockPyroscope, b: &MockPyroscope) -> String {
    let endpoint = |mock: &MockPyroscope, dest: &str| {
        config::endpoint(
            &mock.url(),
            &format!(
                "    headers = {{ \"X-Destination\" = \"{dest}\" }}\n    remote_timeout = \"{}s\"",
                REMOTE_TIMEOUT_MS / 1000
            ),
        )
    };
    format!(
        "{}{}{}",
        config::receiver("default", &["a", "b"], "", ""),
        config::write(
            "a",
            &[endpoint(a, "a")],
            "  external_labels = { env = \"prod\", cluster = \"c1\" }",
        ),
        config::write("b", &[endpoint(b, "b")], ""),
    )
}

/// Receiver `default` → write `upstream` → the given endpoints (with `endpoint_extra`).
fn one_write_config(mocks: &[&MockPyroscope], endpoint_extra: &str, http_extra: &str) -> String {
    let endpoints: Vec<String> = mocks
        .iter()
        .map(|m| config::endpoint(&m.url(), endpoint_extra))
        .collect();
    format!(
        "{}{}",
        config::receiver("default", &["upstream"], http_extra, ""),
        config::write("upstream", &endpoints, "")
    )
}

fn sdk_gzip_proto_push_reaches_every_destination(driver: Driver) {
    let a = MockPyroscope::start();
    let b = MockPyroscope::start();
    let gw = Gateway::start(&fan_out_config(&a, &b), driver, 2);
    let upload = push::python_sdk(100);
    assert_eq!(upload.content_encoding.as_deref(), Some("gzip"));
    assert_eq!(upload.user_agent, "pyroscope-rs/pyspy/1.4.0 reqwest");
    assert_push_ok(&send_push(&gw, &upload), false, upload.shape);

    let sent = &upload.request.series[0];
    assert_eq!(sent.samples[0].id.len(), 36, "a UUID sample ID");
    let common = [
        ("otel.scope.name", "com.grafana.pyroscope/python"),
        ("otel.scope.version", "1.4.0"),
        ("process.runtime.name", "cpython"),
        ("process.runtime.version", "3.11.7"),
        ("region", "eu"),
        ("service_name", "myapp"),
    ];
    let mut with_external = vec![
        ("__name__", "process_cpu"),
        ("app_name", "process_cpu"),
        ("cluster", "c1"),
        ("env", "prod"),
    ];
    with_external.extend_from_slice(&common);
    let mut plain = vec![
        ("__name__", "process_cpu"),
        ("app_name", "process_cpu"),
        ("env", "staging"),
    ];
    plain.extend_from_slice(&common);

    for (mock, dest, labels) in [(&a, "a", &with_external), (&b, "b", &plain)] {
        let recorded = mock.wait_for_requests(1, WAIT);
        assert_eq!(recorded.len(), 1, "destination {dest}");
        let r = &recorded[0];
        assert_upstream_push_headers(r, Some(("x-destination", dest)), dest);
        assert_eq!(
            r.push_request(),
            &expect_series(sent, labels),
            "destination {dest}"
        );
        assert_eq!(
            r.push_request().series[0].samples[0].raw_profile,
            sent.samples[0].raw_profile,
            "destination {dest}: raw_profile byte-identical"
        );
    }
}

fn dotnet_uncompressed_push_reaches_every_destination(driver: Driver) {
    let a = MockPyroscope::start();
    let b = MockPyroscope::start();
    let gw = Gateway::start(&fan_out_config(&a, &b), driver, 1);
    let upload = push::dotnet_sdk(200);
    let sent = &upload.request.series[0];
    // The shape carries exactly the labels of the `push-sdk-dotnet` vector.
    let v = vector("push-sdk-dotnet");
    assert_eq!(sent.labels, vector_labels(&v["labels_in"]));
    assert_eq!(v["external_labels"], serde_json::json!({"cluster": "c1"}));
    assert_eq!(upload.content_encoding, None);
    assert_eq!(sent.samples[0].id, "");
    assert_push_ok(&send_push(&gw, &upload), false, upload.shape);

    // Write `a` also sets env=prod, which the series does not carry: it is simply added.
    let mut at_a = vector_labels(&v["expect"]["labels_out"]);
    at_a.push(("env".into(), "prod".into()));
    at_a.sort();
    let at_b: Vec<(String, String)> = vector_labels(&v["expect"]["labels_out"])
        .into_iter()
        .filter(|(n, _)| n != "cluster")
        .collect();
    for (mock, dest, labels) in [(&a, "a", at_a), (&b, "b", at_b)] {
        let recorded = mock.wait_for_requests(1, WAIT);
        assert_eq!(recorded.len(), 1, "destination {dest}");
        let r = &recorded[0];
        assert_upstream_push_headers(r, Some(("x-destination", dest)), dest);
        let want = PushRequest::new(vec![Series {
            labels,
            samples: sent.samples.clone(),
        }]);
        assert_eq!(r.push_request(), &want, "destination {dest}");
    }
}

fn json_push_is_forwarded_as_proto_with_identical_bytes(driver: Driver) {
    let mock = MockPyroscope::start();
    let gw = Gateway::start(
        &one_write_config(&[&mock], "    remote_timeout = \"7s\"", ""),
        driver,
        1,
    );
    let uploads = [
        push::json_push(
            push::simple_request(300, "json-camel", 900),
            RawField::Camel,
        ),
        push::json_push(
            push::simple_request(301, "json-proto", 700),
            RawField::Proto,
        ),
    ];
    // The first one as a connect-go client sends it: protocol version and a 5 s deadline,
    // which then bounds the upstream Connect-Timeout-Ms below remote_timeout.
    let response = send(
        &gw,
        &uploads[0].http_request(&[
            ("Connect-Protocol-Version", "1"),
            ("Connect-Timeout-Ms", "5000"),
        ]),
    );
    assert_push_ok(&response, true, "json with a client deadline");
    assert_push_ok(&send_push(&gw, &uploads[1]), true, uploads[1].shape);
    let recorded = mock.wait_for_requests(2, WAIT);
    assert_eq!(recorded.len(), 2);
    let bounded: u64 = recorded[0]
        .header("connect-timeout-ms")
        .and_then(|v| v.parse().ok())
        .expect("numeric Connect-Timeout-Ms");
    assert!(
        bounded <= 5000,
        "Connect-Timeout-Ms {bounded} exceeds the client's remaining 5000 ms"
    );
    for (r, upload) in recorded.iter().zip(&uploads) {
        assert_upstream_push_headers(r, None, upload.shape);
        let sent = &upload.request.series[0];
        let service = sent.label("service_name").expect("service_name");
        assert_eq!(
            r.push_request(),
            &expect_series(
                sent,
                &[
                    ("__name__", "process_cpu"),
                    ("app_name", "process_cpu"),
                    ("service_name", service)
                ]
            ),
            "{service}"
        );
    }
}

fn multi_series_push_becomes_one_upstream_push_per_series(driver: Driver) {
    let a = MockPyroscope::start();
    let b = MockPyroscope::start();
    let gw = Gateway::start(
        &one_write_config(&[&a, &b], "    remote_timeout = \"7s\"", ""),
        driver,
        1,
    );
    let mut rng = support::bodies::Prng::new(400);
    let sample = |seed: u64, len: usize, id: String| {
        Sample::new(support::bodies::fake_pprof(seed, len), &id)
    };
    let request = PushRequest::new(vec![
        Series::new(
            &[
                ("__name__", "process_cpu"),
                ("service_name", "svc1"),
                ("env", "staging"),
            ],
            vec![
                sample(401, 500, push::uuid_v4(&mut rng)),
                sample(402, 600, push::uuid_v4(&mut rng)),
            ],
        ),
        Series::new(
            &[
                ("__name__", "memory"),
                ("__delta__", "false"),
                ("__session_id__", "0123abcd"),
                ("__type__", "x"),
                ("service_name", "svc2"),
            ],
            vec![sample(403, 700, push::uuid_v4(&mut rng))],
        ),
        Series::new(
            &[("region", "eu"), ("__name__", "wall")],
            vec![sample(404, 800, String::new())],
        ),
    ]);
    let upload = push::proto_push(request);
    assert_push_ok(&send_push(&gw, &upload), false, "3 series");
    let series = &upload.request.series;
    let want = [
        expect_series(
            &series[0],
            &[
                ("__name__", "process_cpu"),
                ("app_name", "process_cpu"),
                ("env", "staging"),
                ("service_name", "svc1"),
            ],
        ),
        expect_series(
            &series[1],
            &[
                ("__delta__", "false"),
                ("__name__", "memory"),
                ("app_name", "memory"),
                ("service_name", "svc2"),
            ],
        ),
        expect_series(
            &series[2],
            &[
                ("__name__", "wall"),
                ("region", "eu"),
                ("service_name", "wall"),
            ],
        ),
    ];
    for (mock, dest) in [(&a, "a"), (&b, "b")] {
        let recorded = mock.wait_for_requests(3, WAIT);
        assert_eq!(recorded.len(), 3, "destination {dest}");
        for (i, (r, want)) in recorded.iter().zip(&want).enumerate() {
            let what = format!("destination {dest}, series {i}");
            assert_upstream_push_headers(r, None, &what);
            assert_eq!(r.push_request(), want, "{what}");
        }
    }
}

fn grpc_web_push_is_delivered_with_a_grpc_status_trailer(driver: Driver) {
    let mock = MockPyroscope::start();
    let gw = Gateway::start(
        &one_write_config(&[&mock], "    remote_timeout = \"7s\"", ""),
        driver,
        1,
    );
    let requests = [
        (
            "application/grpc-web+proto",
            push::simple_request(500, "grpcweb1", 400),
        ),
        (
            "application/grpc-web",
            push::simple_request(501, "grpcweb2", 300),
        ),
    ];
    for (content_type, request) in &requests {
        let body = grpc_web_frame(0, &request.encode());
        let response = send(
            &gw,
            &upload_request(
                PUSH_PATH,
                &[
                    ("Content-Type", content_type),
                    ("X-Grpc-Web", "1"),
                    ("User-Agent", "grpc-web-javascript/0.1"),
                ],
                &body,
            ),
        );
        assert_eq!(response.status, 200, "{content_type}: {response:?}");
        assert_eq!(
            response.header("content-type"),
            Some("application/grpc-web+proto"),
            "{content_type}"
        );
        let frames = grpc_web_frames(&response.body)
            .unwrap_or_else(|e| panic!("{content_type}: bad gRPC-Web body ({e}): {response:?}"));
        assert_eq!(frames.len(), 2, "{content_type}: {frames:?}");
        assert_eq!(
            frames[0],
            (0, Vec::new()),
            "{content_type}: empty PushResponse"
        );
        assert_eq!(frames[1].0, 0x80, "{content_type}: trailer frame flag");
        let trailers = grpc_web_trailers(&frames[1].1);
        let status: Vec<&str> = trailers
            .iter()
            .filter(|(n, _)| n == "grpc-status")
            .map(|(_, v)| v.as_str())
            .collect();
        assert_eq!(status, ["0"], "{content_type}: {trailers:?}");
    }
    let recorded = mock.wait_for_requests(2, WAIT);
    assert_eq!(recorded.len(), 2);
    for (r, (content_type, request)) in recorded.iter().zip(&requests) {
        assert_upstream_push_headers(r, None, content_type);
        let sent = &request.series[0];
        let service = sent.label("service_name").expect("service_name");
        assert_eq!(
            r.push_request(),
            &expect_series(
                sent,
                &[
                    ("__name__", "process_cpu"),
                    ("app_name", "process_cpu"),
                    ("service_name", service)
                ]
            ),
            "{content_type}"
        );
    }
}

/// The receiver's `max_request_body_bytes` in the error scenario: the gzip bomb is far below
/// it on the wire and far above it inflated.
const SMALL_BODY_LIMIT: usize = 64 * 1024;

fn malformed_and_unsupported_pushes_get_connect_errors(driver: Driver) {
    let mock = MockPyroscope::start();
    let gw = Gateway::start(
        &one_write_config(
            &[&mock],
            "    remote_timeout = \"7s\"",
            &format!("    max_request_body_bytes = {SMALL_BODY_LIMIT}"),
        ),
        driver,
        1,
    );
    let valid = push::simple_request(600, "svc", 100).encode();
    let bomb = push::gzip_bomb(1 << 20);
    assert!(
        bomb.len() < SMALL_BODY_LIMIT / 8,
        "bomb is {} bytes",
        bomb.len()
    );
    let request = |content_type: &str, extra: &[(&str, &str)], body: &[u8]| {
        let mut headers = vec![("Content-Type", content_type)];
        headers.extend_from_slice(extra);
        upload_request(PUSH_PATH, &headers, body)
    };
    // (what, request, status, Connect code)
    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        (
            "malformed protobuf",
            request("application/proto", &[], &[0x0a, 0x05, 0x01]),
            400,
            "invalid_argument",
        ),
        (
            "malformed JSON",
            request("application/json", &[], b"{\"series\":["),
            400,
            "invalid_argument",
        ),
        (
            "Connect-Protocol-Version 2",
            request(
                "application/proto",
                &[("Connect-Protocol-Version", "2")],
                &valid,
            ),
            400,
            "invalid_argument",
        ),
        (
            "streaming application/connect+proto",
            request("application/connect+proto", &[], &valid),
            415,
            "unimplemented",
        ),
        (
            "streaming application/connect+json",
            request("application/connect+json", &[], b"{}"),
            415,
            "unimplemented",
        ),
        (
            "unknown content type",
            request("application/octet-stream", &[], &valid),
            415,
            "unimplemented",
        ),
        (
            "Content-Encoding: br",
            request("application/proto", &[("Content-Encoding", "br")], &valid),
            501,
            "unimplemented",
        ),
        (
            "gzip bomb",
            request("application/proto", &[("Content-Encoding", "gzip")], &bomb),
            429,
            "resource_exhausted",
        ),
    ];
    for (what, bytes, status, code) in &cases {
        let response = send(&gw, bytes);
        let message = assert_connect_error(&response, *status, code, what);
        assert!(!message.is_empty(), "{what}: empty message");
    }
    assert_only_marker_forwarded(&gw, &mock, "after the refused pushes");
}

/// A push over `max_request_body_bytes` gets the same Connect error whether its size is
/// announced by Content-Length (answered before the body is read) or found while decoding a
/// chunked body; nothing is forwarded.
fn push_over_the_body_limit_gets_resource_exhausted_with_either_framing(driver: Driver) {
    let mock = MockPyroscope::start();
    let gw = Gateway::start(
        &one_write_config(
            &[&mock],
            "",
            &format!("    max_request_body_bytes = {SMALL_BODY_LIMIT}"),
        ),
        driver,
        1,
    );
    let body = vec![0x0au8; SMALL_BODY_LIMIT + 1];
    let head = |framing: &str| {
        format!(
            "POST {PUSH_PATH} HTTP/1.1\r\nHost: pyrogate.test\r\nContent-Type: application/proto\r\n{framing}\r\n"
        )
        .into_bytes()
    };
    let mut client = Client::connect(gw.addr());
    client.send(&head(&format!("Content-Length: {}\r\n", body.len())));
    let response = client.read_response();
    let message = assert_connect_error(&response, 429, "resource_exhausted", "Content-Length");
    assert_eq!(
        message,
        format!("request body is larger than {SMALL_BODY_LIMIT} bytes")
    );

    let mut chunked = head("Transfer-Encoding: chunked\r\n");
    chunked.extend_from_slice(&support::client::chunked_body(&body, 1000));
    let mut client = Client::connect(gw.addr());
    // The peer may close while the tail is still being written.
    let _ = client.try_send(&chunked);
    let response = client.read_response();
    let message = assert_connect_error(&response, 429, "resource_exhausted", "chunked");
    assert_eq!(
        message,
        format!("request body is larger than {SMALL_BODY_LIMIT} bytes")
    );
    assert_only_marker_forwarded(&gw, &mock, "after the oversized pushes");
}

fn invalid_labels_get_internal_with_alloys_message(driver: Driver) {
    let mock = MockPyroscope::start();
    let gw = Gateway::start(&one_write_config(&[&mock], "", ""), driver, 1);
    let failing: Vec<serde_json::Value> = push_vectors()
        .into_iter()
        .filter(|v| {
            v["expect"]["error"].is_string() && v["external_labels"] == serde_json::json!({})
        })
        .collect();
    assert!(
        failing.iter().any(|v| v["id"] == "push-empty-label-name"),
        "the duplicate-name vector is among the failing ones"
    );
    for v in &failing {
        let id = v["id"].as_str().unwrap_or("?");
        let request = PushRequest::new(vec![Series {
            labels: vector_labels(&v["labels_in"]),
            samples: vec![Sample::new(support::bodies::fake_pprof(700, 300), "")],
        }]);
        let response = send_push(&gw, &push::proto_push(request));
        let message = assert_connect_error(&response, 500, "internal", id);
        assert_eq!(
            message,
            v["expect"]["client_message"]
                .as_str()
                .expect("client_message"),
            "{id}"
        );
    }
    assert_only_marker_forwarded(&gw, &mock, "after the invalid label sets");
}

fn upstream_503_is_retried_until_delivered(driver: Driver) {
    let mock = MockPyroscope::start();
    mock.script([Action::status(503), Action::status(503)]);
    let url = mock.url();
    let gw = Gateway::start(
        &one_write_config(
            &[&mock],
            &format!("{FAST_BACKOFF}\n    remote_timeout = \"7s\""),
            "",
        ),
        driver,
        1,
    );
    let upload = push::python_sdk(800);
    assert_push_ok(&send_push(&gw, &upload), false, "retried push");
    let recorded = mock.requests();
    let statuses: Vec<Option<u16>> = recorded.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [Some(503), Some(503), Some(200)]);
    let first = recorded[0].push_request();
    for (i, r) in recorded.iter().enumerate() {
        assert_upstream_push_headers_any_status(r, &format!("attempt {i}"));
        assert_eq!(
            r.push_request(),
            first,
            "attempt {i} re-sends the same push"
        );
    }
    assert_eq!(
        first.series[0].samples, upload.request.series[0].samples,
        "same bytes and ID"
    );
    let ep = [("endpoint", url.as_str())];
    let metrics = gw.metrics();
    assert_eq!(
        metric_sum(&metrics, "pyroscope_write_retries_total", &ep),
        Some(2.0)
    );
    assert_eq!(
        metric_sum(&metrics, "pyroscope_write_sent_profiles_total", &ep),
        Some(1.0)
    );
}

/// The upstream push headers, for an attempt the mock may have answered with an error.
fn assert_upstream_push_headers_any_status(r: &Recorded, what: &str) {
    let mut accepted = r.clone();
    accepted.status = Some(200);
    assert_upstream_push_headers(&accepted, None, what);
}

fn upstream_invalid_argument_is_not_retried(driver: Driver) {
    let mock = MockPyroscope::start();
    mock.script([Action::status(400)]);
    let url = mock.url();
    let gw = Gateway::start(
        &one_write_config(
            &[&mock],
            &format!("{FAST_BACKOFF}\n    remote_timeout = \"7s\""),
            "",
        ),
        driver,
        1,
    );
    let upload = push::dotnet_sdk(900);
    let response = send_push(&gw, &upload);
    assert_connect_error(&response, 500, "internal", "upstream invalid_argument");
    // The response waited for the final outcome (acknowledge = delivered): the count is final.
    let recorded = mock.requests();
    assert_eq!(recorded.len(), 1, "exactly one attempt");
    assert_eq!(recorded[0].status, Some(400));
    assert_upstream_push_headers_any_status(&recorded[0], "the one attempt");
    let metrics = gw.metrics();
    let ep = [("endpoint", url.as_str())];
    assert_eq!(
        metric_sum(&metrics, "pyroscope_write_retries_total", &ep).unwrap_or(0.0),
        0.0
    );
    assert_eq!(
        metric_sum(&metrics, "pyroscope_write_dropped_profiles_total", &ep),
        Some(1.0)
    );
}

fn sent_metrics_count_samples_and_raw_bytes(driver: Driver) {
    const PUSHES: usize = 3;
    const SAMPLES_PER_PUSH: usize = 2;
    let a = MockPyroscope::start();
    let b = MockPyroscope::start();
    let gw = Gateway::start(
        &one_write_config(&[&a, &b], "    remote_timeout = \"7s\"", ""),
        driver,
        1,
    );
    let mut raw_bytes = 0;
    for i in 0..PUSHES {
        let seed = 1000 + 10 * i as u64;
        let samples: Vec<Sample> = (0..SAMPLES_PER_PUSH)
            .map(|k| {
                Sample::new(
                    support::bodies::fake_pprof(seed + k as u64, 300 + 111 * (i + k)),
                    "",
                )
            })
            .collect();
        let request = PushRequest::new(vec![Series::new(
            &[("__name__", "process_cpu"), ("service_name", "metrics")],
            samples,
        )]);
        raw_bytes += request.raw_bytes();
        assert_eq!(request.sample_count(), SAMPLES_PER_PUSH);
        let upload = push::proto_push(request);
        assert_push_ok(&send_push(&gw, &upload), false, "metrics push");
    }
    let metrics = gw.metrics();
    for mock in [&a, &b] {
        assert_eq!(mock.wait_for_requests(PUSHES, WAIT).len(), PUSHES);
        let url = mock.url();
        let ep = [("endpoint", url.as_str())];
        assert_eq!(
            metric_sum(&metrics, "pyroscope_write_sent_profiles_total", &ep),
            Some((PUSHES * SAMPLES_PER_PUSH) as f64),
            "{url}"
        );
        assert_eq!(
            metric_sum(&metrics, "pyroscope_write_sent_bytes_total", &ep),
            Some(raw_bytes as f64),
            "{url}"
        );
    }
}

/// The `compression = "gzip"` endpoint extension: the upstream push is gzip'd (Alloy sends it
/// uncompressed) and still decodes to the same series with byte-identical `raw_profile`.
fn endpoint_gzip_compression_sends_gzipd_pushes(driver: Driver) {
    let mock = MockPyroscope::start();
    let gw = Gateway::start(
        &one_write_config(&[&mock], "    compression = \"gzip\"", ""),
        driver,
        1,
    );
    let upload = push::dotnet_sdk(300);
    let sent = &upload.request.series[0];
    assert_push_ok(&send_push(&gw, &upload), false, upload.shape);
    let recorded = mock.wait_for_requests(1, WAIT);
    assert_eq!(recorded.len(), 1);
    let r = &recorded[0];
    assert_eq!(r.status, Some(200), "{r:?}");
    assert_eq!(r.header("content-encoding"), Some("gzip"));
    assert_eq!(&r.body[..2], b"\x1f\x8b", "the body on the wire is gzip");
    let got = &r.push_request().series[0];
    assert_eq!(
        got.samples, sent.samples,
        "raw_profile and ID survive compression"
    );
}

both_drivers!(
    endpoint_gzip_compression_sends_gzipd_pushes,
    sdk_gzip_proto_push_reaches_every_destination,
    dotnet_uncompressed_push_reaches_every_destination,
    json_push_is_forwarded_as_proto_with_identical_bytes,
    multi_series_push_becomes_one_upstream_push_per_series,
    grpc_web_push_is_delivered_with_a_grpc_status_trailer,
    malformed_and_unsupported_pushes_get_connect_errors,
    push_over_the_body_limit_gets_resource_exhausted_with_either_framing,
    invalid_labels_get_internal_with_alloys_message,
    upstream_503_is_retried_until_delivered,
    upstream_invalid_argument_is_not_retried,
    sent_metrics_count_samples_and_raw_bytes,
);
