//! End-to-end: OpenTelemetry profiles over HTTP (`POST /v1development/profiles`) through the
//! real binary, against Pyroscope stand-ins, under both drivers. Every request body is built
//! with the official generated classes (the `opentelemetry-proto` Python package, installed by
//! the test kit into `target/py-cache/`), and everything that reaches a stand-in is decoded
//! with them and compared, field by field (every attribute, sample and dictionary entry), with
//! what was sent plus the attributes the writer adds.
//!
//! - protobuf without external labels reaches two destinations byte for byte, with the
//!   client's `Content-Type`, no `Content-Encoding`, the endpoint path joined, the tenant
//!   header; the client gets 200 and an empty `application/x-protobuf` body;
//! - a gzip'd `application/protobuf` export to a writer with `external_labels` arrives
//!   inflated, every `ResourceProfiles` carrying the labels as string attributes (an attribute
//!   of the same key replaced), byte-identical at both destinations, the profiles and the
//!   dictionary unchanged;
//! - JSON: forwarded as is to a writer without labels, and as JSON with the attributes to one
//!   with labels; the client gets `{}`; an upstream `compression = "gzip"` endpoint gets gzip;
//! - a relabel rule dropping `service_name = "noisy"` removes that `ResourceProfiles` only;
//! - 503 with `Retry-After: 1`, then 200: delivered on the second attempt, not before a
//!   second; an upstream 400 is not retried and the client gets 400;
//! - 415 (other content types), 400 (malformed protobuf, malformed JSON, missing dictionary),
//!   413 (over `max_request_body_bytes`, before and after gzip) answer with Pyroscope's text or
//!   a `google.rpc.Status` in the request's encoding, and nothing reaches the stand-in;
//! - a body the in-flight budget cannot hold (as received, or once inflated) gets 503 with
//!   `Retry-After: 1`.

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::client::{Client, upload_request};
use support::{Driver, Gateway, MockPyroscope, Recorded, both_drivers, config, otlp};

const PATH: &str = "/v1development/profiles";
const WAIT: Duration = Duration::from_secs(20);
const FAST_BACKOFF: &str = "    min_backoff_period = \"10ms\"\n    max_backoff_period = \"50ms\"";

fn base64(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in data.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                out.push(char::from(A[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// An OTLP JSON export: one `ResourceProfiles` per attribute list, each with one scope of one
/// CPU profile of `samples` samples and a `payload_len`-byte original payload, and a shared
/// dictionary (functions, locations, stacks, strings, attributes).
fn export_json(resources: &[&[(&str, &str)]], samples: usize, payload_len: usize) -> String {
    let payload: Vec<u8> = (0..payload_len).map(|i| (i * 31 % 251) as u8).collect();
    let rps: Vec<Value> = resources
        .iter()
        .enumerate()
        .map(|(r, attrs)| {
            let mut attributes: Vec<Value> = attrs
                .iter()
                .map(|(k, v)| json!({"key": k, "value": {"stringValue": v}}))
                .collect();
            attributes.push(json!({"key": "process.pid", "value": {"intValue": "4242"}}));
            let samples: Vec<Value> = (0..samples)
                .map(|i| {
                    json!({
                        "stackIndex": 1 + (i % 2),
                        "values": [format!("{}", 10_000_000 * (i + 1 + r))],
                        "attributeIndices": [1],
                        "timestampsUnixNano": [format!("{}", 1_700_000_000_000_000_000u64 + i as u64)]
                    })
                })
                .collect();
            json!({
                "resource": {"attributes": attributes, "droppedAttributesCount": 1},
                "scopeProfiles": [{
                    "scope": {"name": "pyroscope-java", "version": "2.1.2"},
                    "profiles": [{
                        "sampleType": {"typeStrindex": 1, "unitStrindex": 2},
                        "samples": samples,
                        "timeUnixNano": "1700000000000000000",
                        "durationNano": "10000000000",
                        "periodType": {"typeStrindex": 1, "unitStrindex": 2},
                        "period": "10000000",
                        "profileId": base64(&[r as u8 + 1; 16]),
                        "originalPayloadFormat": "jfr",
                        "originalPayload": base64(&payload)
                    }],
                    "schemaUrl": "https://opentelemetry.io/schemas/1.30.0"
                }],
                "schemaUrl": "https://opentelemetry.io/schemas/1.30.0"
            })
        })
        .collect();
    json!({
        "resourceProfiles": rps,
        "dictionary": {
            "mappingTable": [{}, {"memoryStart": "4096", "memoryLimit": "8192", "filenameStrindex": 6}],
            "locationTable": [{}, {"mappingIndex": 1, "address": "4100", "lines": [{"functionIndex": 1, "line": "12"}]},
                              {"mappingIndex": 1, "address": "4200", "lines": [{"functionIndex": 2, "line": "40", "column": "3"}]}],
            "functionTable": [{}, {"nameStrindex": 3, "filenameStrindex": 5, "startLine": "10"},
                              {"nameStrindex": 4, "systemNameStrindex": 4, "filenameStrindex": 5}],
            "stringTable": ["", "cpu", "nanoseconds", "main", "work", "Main.java", "libjvm.so", "thread.name"],
            "attributeTable": [{}, {"keyStrindex": 7, "value": {"stringValue": "worker-1"}}],
            "stackTable": [{}, {"locationIndices": [1]}, {"locationIndices": [2, 1]}],
            "linkTable": [{}]
        }
    })
    .to_string()
}

/// `decoded` (proto field names) with `set` applied to every resource as the gateway's
/// contract says: attributes with those keys removed, then the non-empty ones appended in
/// order.
fn with_attributes(mut decoded: Value, set: &[(&str, &str)]) -> Value {
    for rp in decoded["resource_profiles"].as_array_mut().unwrap() {
        let resource = rp
            .as_object_mut()
            .unwrap()
            .entry("resource")
            .or_insert_with(|| json!({}));
        let attrs = resource
            .as_object_mut()
            .unwrap()
            .entry("attributes")
            .or_insert_with(|| json!([]))
            .as_array_mut()
            .unwrap();
        attrs.retain(|a| !set.iter().any(|(k, _)| a["key"] == *k));
        for (k, v) in set {
            attrs.push(json!({"key": k, "value": {"string_value": v}}));
        }
    }
    decoded
}

fn keep_resources(mut decoded: Value, keep: &[usize]) -> Value {
    let all = decoded["resource_profiles"].as_array().unwrap().clone();
    decoded["resource_profiles"] = Value::Array(keep.iter().map(|&i| all[i].clone()).collect());
    decoded
}

fn decode(r: &Recorded) -> Value {
    let json = r.header("content-type") == Some("application/json");
    let body = if r.header("content-encoding") == Some("gzip") {
        testkit::gzip::gunzip_bounded(&r.body, 1 << 30).expect("gzip")
    } else {
        r.body.clone()
    };
    otlp::decode(&body, json).unwrap_or_else(|e| panic!("the official codec rejected it: {e}"))
}

fn send(gw: &Gateway, headers: &[(&str, &str)], body: &[u8]) -> support::Response {
    let mut client = Client::connect(gw.addr());
    client.send(&upload_request(PATH, headers, body));
    client.read_response()
}

/// Two endpoints of one writer: `(config, [stand-in; 2])`.
fn two_destinations(
    endpoint_extra: &str,
    write_extra: &str,
    http_extra: &str,
) -> (String, [MockPyroscope; 2]) {
    let a = MockPyroscope::builder().path_prefix("/prefix").start();
    let b = MockPyroscope::start();
    let cfg = format!(
        "{}{}",
        config::receiver("default", &["w"], http_extra, ""),
        config::write(
            "w",
            &[
                config::endpoint(&format!("{}/prefix", a.url()), endpoint_extra),
                config::endpoint(&b.url(), endpoint_extra),
            ],
            write_extra,
        )
    );
    (cfg, [a, b])
}

fn protobuf_without_labels_is_forwarded_byte_for_byte(driver: Driver) {
    let (cfg, [a, b]) = two_destinations("    headers = { \"X-Scope-OrgID\" = \"t1\" }", "", "");
    let gw = Gateway::start(&cfg, driver, 2);
    let json = export_json(&[&[("service.name", "api")]], 50, 2000);
    let body = otlp::encode(&json);
    let resp = send(
        &gw,
        &[
            ("Content-Type", "application/x-protobuf"),
            ("X-Custom", "not forwarded"),
        ],
        &body,
    );
    assert_eq!(resp.status, 200, "{}", resp.body_str());
    assert_eq!(resp.header("content-type"), Some("application/x-protobuf"));
    assert!(resp.body.is_empty());
    for (mock, path) in [(&a, "/prefix/v1development/profiles"), (&b, PATH)] {
        let got = mock.wait_for_requests(1, WAIT);
        assert_eq!(got.len(), 1);
        let r = &got[0];
        assert_eq!(r.path, path);
        assert_eq!(r.status, Some(200));
        assert_eq!(r.body, body, "forwarded byte for byte");
        assert_eq!(r.header("content-type"), Some("application/x-protobuf"));
        assert_eq!(r.header("content-encoding"), None);
        assert_eq!(r.header("x-scope-orgid"), Some("t1"));
        assert_eq!(r.header("x-custom"), None);
        assert_eq!(decode(r), otlp::decode(&body, false).unwrap());
    }
}

fn external_labels_become_resource_attributes(driver: Driver) {
    let (cfg, [a, b]) = two_destinations(
        "",
        "  external_labels = { env = \"prod\", cluster = \"eu-1\" }",
        "",
    );
    let gw = Gateway::start(&cfg, driver, 2);
    let json = export_json(
        &[
            &[("service.name", "api"), ("env", "dev"), ("host.name", "h1")],
            &[("service.name", "db")],
        ],
        200,
        64 * 1024,
    );
    let body = otlp::encode(&json);
    let gz = testkit::gzip::gzip(&body);
    let resp = send(
        &gw,
        &[
            ("Content-Type", "application/protobuf"),
            ("Content-Encoding", "gzip"),
        ],
        &gz,
    );
    assert_eq!(resp.status, 200, "{}", resp.body_str());
    assert_eq!(resp.header("content-type"), Some("application/protobuf"));
    let ra = a.wait_for_requests(1, WAIT).remove(0);
    let rb = b.wait_for_requests(1, WAIT).remove(0);
    assert_eq!(ra.body, rb.body, "both destinations get the same bytes");
    assert_eq!(ra.header("content-type"), Some("application/protobuf"));
    assert_eq!(
        ra.header("content-encoding"),
        None,
        "upstream is uncompressed"
    );
    let want = with_attributes(
        otlp::decode(&body, false).unwrap(),
        &[("cluster", "eu-1"), ("env", "prod")],
    );
    assert_eq!(decode(&ra), want);
    // Sanity of the expectation itself: the first resource's attributes, written out.
    let attrs: Vec<(String, String)> = want["resource_profiles"][0]["resource"]["attributes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["key"].as_str().unwrap().to_string(),
                a["value"].to_string(),
            )
        })
        .collect();
    assert_eq!(
        attrs,
        [
            ("service.name".into(), r#"{"string_value":"api"}"#.into()),
            ("host.name".into(), r#"{"string_value":"h1"}"#.into()),
            ("process.pid".into(), r#"{"int_value":"4242"}"#.into()),
            ("cluster".into(), r#"{"string_value":"eu-1"}"#.into()),
            ("env".into(), r#"{"string_value":"prod"}"#.into()),
        ]
    );
}

fn json_exports_stay_json(driver: Driver) {
    let plain = MockPyroscope::start();
    let labelled = MockPyroscope::start();
    let cfg = format!(
        "{}{}{}",
        config::receiver("default", &["plain", "labelled"], "", ""),
        config::write("plain", &[config::endpoint(&plain.url(), "")], ""),
        config::write(
            "labelled",
            &[config::endpoint(
                &labelled.url(),
                "    compression = \"gzip\""
            )],
            "  external_labels = { team = \"perf\" }"
        ),
    );
    let gw = Gateway::start(&cfg, driver, 1);
    let json = export_json(
        &[&[("service.name", "api")], &[("service.name", "web")]],
        20,
        100,
    );
    let gz = testkit::gzip::gzip(json.as_bytes());
    let resp = send(
        &gw,
        &[
            ("Content-Type", "application/json"),
            ("Content-Encoding", "gzip"),
        ],
        &gz,
    );
    assert_eq!(resp.status, 200, "{}", resp.body_str());
    assert_eq!(resp.header("content-type"), Some("application/json"));
    assert_eq!(resp.body, b"{}");
    let p = plain.wait_for_requests(1, WAIT).remove(0);
    assert_eq!(p.body, json.as_bytes(), "inflated and forwarded as is");
    assert_eq!(p.header("content-type"), Some("application/json"));
    let l = labelled.wait_for_requests(1, WAIT).remove(0);
    assert_eq!(l.header("content-type"), Some("application/json"));
    assert_eq!(l.header("content-encoding"), Some("gzip"));
    let want = with_attributes(
        otlp::decode(json.as_bytes(), true).unwrap(),
        &[("team", "perf")],
    );
    assert_eq!(decode(&l), want);
}

fn relabel_drop_removes_one_resource_profiles(driver: Driver) {
    let mock = MockPyroscope::start();
    let cfg = format!(
        r#"{}
pyroscope.relabel "filter" {{
  forward_to = [pyroscope.write.w.receiver]
  rule {{
    action        = "drop"
    source_labels = ["service_name"]
    regex         = "noisy"
  }}
}}
{}"#,
        config::receiver("default", &[], "", "").replace(
            "forward_to = []",
            "forward_to = [pyroscope.relabel.filter.receiver]"
        ),
        config::write("w", &[config::endpoint(&mock.url(), "")], ""),
    );
    let gw = Gateway::start(&cfg, driver, 1);
    let json = export_json(
        &[
            &[("service.name", "api")],
            &[("service.name", "noisy")],
            &[("process.executable.name", "java")],
        ],
        5,
        10,
    );
    let body = otlp::encode(&json);
    let resp = send(&gw, &[("Content-Type", "application/x-protobuf")], &body);
    assert_eq!(resp.status, 200, "{}", resp.body_str());
    let r = mock.wait_for_requests(1, WAIT).remove(0);
    let want = keep_resources(otlp::decode(&body, false).unwrap(), &[0, 2]);
    assert_eq!(decode(&r), want);

    // Every element dropped: nothing upstream, and the client still succeeds (Alloy's rule).
    let json = export_json(&[&[("service.name", "noisy")]], 1, 1);
    let resp = send(
        &gw,
        &[("Content-Type", "application/x-protobuf")],
        &otlp::encode(&json),
    );
    assert_eq!(resp.status, 200);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(mock.request_count(), 1);
}

fn retries_503_honouring_retry_after_but_not_400(driver: Driver) {
    let mock = MockPyroscope::start();
    mock.script([
        support::Action::status(503).with_retry_after("1"),
        support::Action::ok(),
        support::Action::status(400),
    ]);
    let gw = Gateway::start(
        &config::single(&mock.url(), FAST_BACKOFF, "", ""),
        driver,
        1,
    );
    let body = otlp::encode(&export_json(&[&[("service.name", "api")]], 3, 10));
    let resp = send(&gw, &[("Content-Type", "application/x-protobuf")], &body);
    assert_eq!(resp.status, 200, "{}", resp.body_str());
    let got = mock.wait_for_requests(2, WAIT);
    assert_eq!(got[0].status, Some(503));
    assert_eq!(got[1].status, Some(200));
    assert_eq!(got[1].body, body);
    assert!(
        got[1].received_at.duration_since(got[0].received_at) >= Duration::from_millis(950),
        "Retry-After: 1 is honoured"
    );

    let resp = send(&gw, &[("Content-Type", "application/x-protobuf")], &body);
    assert_eq!(resp.status, 400, "{}", resp.body_str());
    assert_eq!(resp.header("content-type"), Some("application/x-protobuf"));
    assert_eq!(resp.body[..2], [0x08, 0x03], "google.rpc.Status code 3");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(mock.request_count(), 3, "a 400 is not retried");
}

fn refusals_forward_nothing(driver: Driver) {
    let mock = MockPyroscope::start();
    let gw = Gateway::start(
        &config::single(&mock.url(), "", "    max_request_body_bytes = 4096", ""),
        driver,
        1,
    );
    let small = otlp::encode(&export_json(&[&[("service.name", "api")]], 1, 10));
    let big = otlp::encode(&export_json(&[&[("service.name", "api")]], 1, 8000));

    for ct in [
        "text/plain",
        "application/json; charset=utf-8",
        "APPLICATION/JSON",
    ] {
        let resp = send(&gw, &[("Content-Type", ct)], &small);
        assert_eq!(resp.status, 415, "{ct}");
        assert_eq!(resp.body_str(), format!("Unsupported Content-Type: {ct}\n"));
    }
    let resp = send(&gw, &[], &small);
    assert_eq!(resp.status, 415);

    let resp = send(
        &gw,
        &[("Content-Type", "application/x-protobuf")],
        b"\x0a\x05abc",
    );
    assert_eq!(resp.status, 400);
    let msg = "ExportProfilesServiceRequest: truncated length-delimited field resource_profiles: 5 bytes declared, 3 remain";
    let mut want = vec![0x08, 0x03, 0x12, msg.len() as u8];
    want.extend_from_slice(msg.as_bytes());
    assert_eq!(resp.body, want);

    let resp = send(
        &gw,
        &[("Content-Type", "application/json")],
        br#"{"resourceProfiles":[{}]}"#,
    );
    assert_eq!(resp.status, 400);
    assert_eq!(resp.header("content-type"), Some("application/json"));
    assert_eq!(
        resp.body_str(),
        r#"{"code":3,"message":"missing profile metadata dictionary"}"#
    );

    let resp = send(&gw, &[("Content-Type", "application/json")], b"{\"x\":");
    assert_eq!(resp.status, 400);
    assert_eq!(
        resp.body_str(),
        r#"{"code":3,"message":"ExportProfilesServiceRequest: unexpected end of JSON input"}"#
    );

    let resp = send(
        &gw,
        &[
            ("Content-Type", "application/x-protobuf"),
            ("Content-Encoding", "gzip"),
        ],
        b"not gzip",
    );
    assert_eq!(resp.status, 400);

    assert!(big.len() > 4096);
    let resp = send(&gw, &[("Content-Type", "application/x-protobuf")], &big);
    assert_eq!(resp.status, 413);
    let gz = testkit::gzip::gzip(&big);
    assert!(gz.len() < 4096);
    let resp = send(
        &gw,
        &[
            ("Content-Type", "application/x-protobuf"),
            ("Content-Encoding", "gzip"),
        ],
        &gz,
    );
    assert_eq!(resp.status, 413, "{}", resp.body_str());
    assert_eq!(
        resp.body[..2],
        [0x08, 0x08],
        "google.rpc.Status resource_exhausted"
    );

    // The same export within the limit goes through, so the refusals above were the limits.
    let resp = send(&gw, &[("Content-Type", "application/x-protobuf")], &small);
    assert_eq!(resp.status, 200);
    assert_eq!(mock.wait_for_requests(1, WAIT).len(), 1);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(mock.request_count(), 1, "nothing refused was forwarded");
}

/// A body the in-flight budget cannot hold, received or inflated, gets 503 with
/// `Retry-After: 1` and a `google.rpc.Status` `unavailable` (14) in the request's encoding.
fn an_exhausted_budget_answers_503_with_retry_after(driver: Driver) {
    let mock = MockPyroscope::start();
    let cfg = format!(
        "{}\npyrogate {{\n  max_inflight_bytes = 4096\n  queue_wait_timeout = \"100ms\"\n}}\n",
        config::single(&mock.url(), "", "", "")
    );
    let gw = Gateway::start(&cfg, driver, 1);
    // One export held in flight by a stand-in that does not answer yet; a body larger than
    // the whole budget is admitted only while nothing else is in flight.
    mock.script([support::Action::HangFor(Duration::from_secs(2))]);
    let held = otlp::encode(&export_json(&[&[("service.name", "held")]], 1, 1000));
    assert!(held.len() < 4096);
    let mut holder = Client::connect(gw.addr());
    holder.send(&upload_request(
        PATH,
        &[("Content-Type", "application/x-protobuf")],
        &held,
    ));
    mock.wait_for_requests(1, WAIT);
    let big = otlp::encode(&export_json(&[&[("service.name", "api")]], 1, 8000));
    let resp = send(&gw, &[("Content-Type", "application/x-protobuf")], &big);
    assert_eq!(resp.status, 503, "{}", resp.body_str());
    assert_eq!(resp.header("retry-after"), Some("1"));
    assert_eq!(resp.body[..2], [0x08, 0x0e]);

    let json = export_json(&[&[("service.name", "api")]], 1, 8000);
    let gz = testkit::gzip::gzip(json.as_bytes());
    assert!(gz.len() < 4096);
    let resp = send(
        &gw,
        &[
            ("Content-Type", "application/json"),
            ("Content-Encoding", "gzip"),
        ],
        &gz,
    );
    assert_eq!(resp.status, 503, "{}", resp.body_str());
    assert_eq!(resp.header("retry-after"), Some("1"));
    assert_eq!(
        resp.body_str(),
        r#"{"code":14,"message":"in-flight budget exhausted"}"#
    );
    // The held export is delivered on a retry; nothing refused ever reached the stand-in.
    assert_eq!(holder.read_response().status, 200);
    assert!(mock.requests().iter().all(|r| r.body == held));
}

both_drivers!(
    protobuf_without_labels_is_forwarded_byte_for_byte,
    external_labels_become_resource_attributes,
    json_exports_stay_json,
    relabel_drop_removes_one_resource_profiles,
    retries_503_honouring_retry_after_but_not_400,
    refusals_forward_nothing,
    an_exhausted_budget_answers_503_with_retry_after,
);
