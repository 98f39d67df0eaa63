//! Self-tests of the e2e harness, runnable without the gateway runtime.
//!
//! Covers: the mock upstream's label-set grammar (against every `labelset` case of
//! `shared/compat/label-vectors.json`, computed by running Pyroscope's own code), its query
//! parsing, its status codes (404, 405, 400 name errors, 400 unknown profile type, 413 by
//! Content-Length and by chunked total, 422 multipart without the required part), chunked
//! request bodies, keep-alive with pipelining, scripted answers (status, Retry-After, close,
//! hang), the dead-destination helper; and the body builders (gzip framing, CRC-32, multipart
//! shapes), the raw client's response framing, and the logfmt / metrics parsers.

mod support;

use std::time::Duration;

use support::bodies::{self, Upload};
use support::client::{Client, chunked_upload_request, upload_request};
use support::gateway::{logfmt, logfmt_get, metric_sum};
use support::upstream::{
    self, Action, MockPyroscope, dead_destination, normalized, parse_labelset, parse_query,
};

const WAIT: Duration = Duration::from_secs(10);

/// Where the label vectors may live: in the repository once vendored, else the shared
/// reference directory next to the worktrees.
const VECTOR_PATHS: &[&str] = &[
    concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/label-vectors.json"),
    concat!(env!("CARGO_MANIFEST_DIR"), "/compat/label-vectors.json"),
    concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/compat/label-vectors.json"
    ),
    "/work/shared/compat/label-vectors.json",
];

fn vectors() -> serde_json::Value {
    let text = VECTOR_PATHS
        .iter()
        .find_map(|p| std::fs::read_to_string(p).ok())
        .unwrap_or_else(|| panic!("label-vectors.json not found in any of {VECTOR_PATHS:?}"));
    serde_json::from_str(&text).expect("vectors are JSON")
}

#[test]
fn mock_labelset_parser_matches_every_pyroscope_vector() {
    let vectors = vectors();
    let cases = vectors["labelset"].as_array().expect("labelset cases");
    assert!(cases.len() >= 30, "expected the full vector set");
    for case in cases {
        let id = case["id"].as_str().unwrap_or("?");
        let input = case["input"].as_str().expect("input");
        let expect = &case["expect"];
        let got = parse_labelset(input);
        if let Some(err) = expect["error"].as_str() {
            assert_eq!(got, Err(err.to_string()), "{id}: {input:?}");
            continue;
        }
        let labels = got.unwrap_or_else(|e| panic!("{id}: {input:?} failed: {e}"));
        let mut want: Vec<(String, String)> = expect["labels"]
            .as_object()
            .expect("labels")
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
            .collect();
        want.sort();
        assert_eq!(labels, want, "{id}: {input:?}");
        assert_eq!(
            normalized(&labels),
            expect["normalized"].as_str().expect("normalized"),
            "{id}: {input:?}"
        );
    }
}

#[test]
fn mock_query_parser_follows_go_parse_query() {
    let cases: &[(&str, &[(&str, &str)])] = &[
        (
            "name=app%7Ba%3Db%7D&from=1",
            &[("name", "app{a=b}"), ("from", "1")],
        ),
        ("name=a+b", &[("name", "a b")]),
        ("x=1;y=2&name=app", &[("name", "app")]),
        ("bad=%zz&name=app", &[("name", "app")]),
        ("flag&name=", &[("flag", ""), ("name", "")]),
        ("name=app{a=b}", &[("name", "app{a=b}")]),
    ];
    for (raw, want) in cases {
        let got = parse_query(raw);
        let want: Vec<(String, String)> = want
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert_eq!(got, want, "{raw}");
    }
}

fn folded_upload(query: &str) -> Vec<u8> {
    upload_request(&format!("/ingest?{query}"), &[], b"a;b;c 10\na;b 5\n")
}

/// (what, request bytes, expected status, expected body).
type StatusCase = (&'static str, Vec<u8>, u16, &'static str);

#[test]
fn mock_answers_pyroscope_statuses() {
    let go = bodies::go_multipart(1, false);
    let (no_file_ct, no_file_body) = bodies::multipart(
        &"a".repeat(60),
        &[("other", "profile.pprof", None, b"xyz".as_slice())],
    );
    let (empty_ct, empty_body) = bodies::multipart(
        &"b".repeat(60),
        &[("profile", "profile.pprof", None, b"".as_slice())],
    );
    let jfr = bodies::java_jfr(2);
    let jfr_ct = jfr.content_type.clone().expect("jfr content type");
    let cases: Vec<StatusCase> = vec![
        (
            "valid folded",
            folded_upload("name=myapp.cpu%7Benv%3Dprod%7D"),
            200,
            "",
        ),
        ("valid go multipart", go.request(&[]), 200, ""),
        ("valid jfr multipart", jfr.request(&[]), 200, ""),
        (
            "pyroscope/ingest route",
            upload_request("/pyroscope/ingest?name=app", &[], b"a;b 1\n"),
            200,
            "",
        ),
        (
            "unknown path",
            upload_request("/nope?name=app", &[], b""),
            404,
            "404 page not found\n",
        ),
        (
            "GET /ingest",
            b"GET /ingest?name=app HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
            405,
            "",
        ),
        (
            "missing name",
            folded_upload("from=1"),
            400,
            r#"{"code":"invalid_argument","message":"name: service name is required"}"#,
        ),
        (
            "bad app name",
            folded_upload("name=my+app"),
            400,
            r#"{"code":"invalid_argument","message":"name: invalid service name: my app: character is not allowed: ' '"}"#,
        ),
        (
            "bad label name",
            folded_upload("name=app%7Ba%2Fb%3Dv%7D"),
            400,
            r#"{"code":"invalid_argument","message":"name: invalid label name: a/b: character is not allowed: '/'"}"#,
        ),
        (
            "unknown text profile type",
            folded_upload("name=my.app"),
            400,
            r#"{"code":"invalid_argument","message":"unknown profile type: app"}"#,
        ),
        (
            "unknown suffix is fine for pprof",
            upload_request("/ingest?name=my.app&format=pprof", &[], b"\x1f\x8b"),
            200,
            "",
        ),
        (
            "folded with a bad count",
            upload_request("/ingest?name=app", &[], b"a;b;c ten\n"),
            422,
            r#"{"code":"invalid_argument","message":"strconv.Atoi: parsing \"ten\": invalid syntax"}"#,
        ),
        (
            "multipart without a profile part",
            upload_request(
                "/ingest?name=app",
                &[("Content-Type", &no_file_ct)],
                &no_file_body,
            ),
            422,
            r#"{"code":"invalid_argument","message":"profile is required"}"#,
        ),
        (
            "multipart with an empty profile part",
            upload_request(
                "/ingest?name=app",
                &[("Content-Type", &empty_ct)],
                &empty_body,
            ),
            422,
            r#"{"code":"invalid_argument","message":"profile is required"}"#,
        ),
        (
            "jfr multipart without a jfr part",
            upload_request(
                "/ingest?name=app&format=jfr",
                &[("Content-Type", &no_file_ct)],
                &no_file_body,
            ),
            422,
            r#"{"code":"invalid_argument","message":"jfr is required"}"#,
        ),
        (
            "multipart body with format=pprof",
            upload_request(
                "/ingest?name=app&format=pprof",
                &[("Content-Type", &jfr_ct)],
                &jfr.body,
            ),
            422,
            r#"{"code":"invalid_argument","message":"failed to parse pprof: multipart body with format=pprof"}"#,
        ),
    ];
    let mock = MockPyroscope::start();
    for (what, request, status, body) in &cases {
        let mut client = Client::connect(mock.addr());
        client.send(request);
        let response = client.read_response();
        assert_eq!(response.status, *status, "{what}: {response:?}");
        assert_eq!(response.body_str(), *body, "{what}");
        if response.status == 400 {
            assert_eq!(
                response.header("content-type"),
                Some("application/json"),
                "{what}"
            );
        }
    }
    let recorded = mock.requests();
    assert_eq!(recorded.len(), cases.len());
    for (r, (what, _, status, _)) in recorded.iter().zip(&cases) {
        assert_eq!(r.status, Some(*status), "{what}");
    }
}

#[test]
fn mock_rejects_body_over_limit_by_content_length_before_reading_it() {
    let mock = MockPyroscope::builder().body_limit(100).start();
    let mut client = Client::connect(mock.addr());
    client.send(b"POST /ingest?name=app HTTP/1.1\r\nHost: x\r\nContent-Length: 101\r\n\r\n");
    let response = client.read_response();
    assert_eq!(response.status, 413);
    client.expect_closed();
}

#[test]
fn mock_rejects_chunked_body_over_limit() {
    let mock = MockPyroscope::builder().body_limit(100).start();
    let mut client = Client::connect(mock.addr());
    client.send(&chunked_upload_request(
        "/ingest?name=app",
        &[],
        &[b'x'; 150],
        40,
    ));
    assert_eq!(client.read_response().status, 413);
    client.expect_closed();
}

#[test]
fn mock_records_chunked_body_and_framing() {
    let mock = MockPyroscope::start();
    let upload = bodies::node_pprof(7);
    let mut client = Client::connect(mock.addr());
    client.send(&chunked_upload_request(
        &upload.target(),
        &[("Content-Type", "application/octet-stream")],
        &upload.body,
        333,
    ));
    assert_eq!(client.read_response().status, 200);
    let recorded = mock.wait_for_requests(1, WAIT);
    assert!(recorded[0].chunked);
    assert_eq!(recorded[0].body, upload.body);
    assert_eq!(recorded[0].query, upload.query);
    assert_eq!(recorded[0].path, "/ingest");
}

#[test]
fn mock_keeps_alive_and_answers_pipelined_requests_in_order() {
    let mock = MockPyroscope::start();
    mock.script([Action::status(503).with_retry_after("7")]);
    let mut bytes = folded_upload("name=first");
    bytes.extend_from_slice(&folded_upload("name=second"));
    bytes.extend_from_slice(&folded_upload("name=third"));
    let mut client = Client::connect(mock.addr());
    client.send(&bytes);
    let responses = client.read_responses(3);
    assert_eq!(responses[0].status, 503);
    assert_eq!(responses[0].header("retry-after"), Some("7"));
    assert_eq!(
        responses[0].body_str(),
        r#"{"code":"unavailable","message":"Service Unavailable"}"#
    );
    assert_eq!(responses[1].status, 200);
    assert_eq!(responses[2].status, 200);
    let queries: Vec<String> = mock.requests().into_iter().map(|r| r.query).collect();
    assert_eq!(queries, ["name=first", "name=second", "name=third"]);
}

#[test]
fn mock_prefix_serves_only_prefixed_routes() {
    let mock = MockPyroscope::builder().path_prefix("/prefix/").start();
    let mut client = Client::connect(mock.addr());
    client.send(&upload_request("/prefix/ingest?name=app", &[], b"a 1\n"));
    assert_eq!(client.read_response().status, 200);
    client.send(&upload_request(
        "/prefix/pyroscope/ingest?name=app",
        &[],
        b"a 1\n",
    ));
    assert_eq!(client.read_response().status, 200);
    client.send(&upload_request("/ingest?name=app", &[], b"a 1\n"));
    assert_eq!(client.read_response().status, 404);
}

#[test]
fn mock_close_action_closes_without_answering() {
    let mock = MockPyroscope::start();
    mock.script([Action::Close]);
    let mut client = Client::connect(mock.addr());
    client.send(&folded_upload("name=app"));
    assert_eq!(client.try_read_response(), Ok(None));
    assert_eq!(mock.requests()[0].status, None);
}

#[test]
fn mock_hang_action_never_answers_and_drop_does_not_block() {
    let mock = MockPyroscope::builder()
        .default_action(Action::Hang)
        .start();
    let mut client = Client::connect(mock.addr()).with_timeout(Duration::from_millis(300));
    client.send(&folded_upload("name=app"));
    let err = client.try_read_response().expect_err("no answer expected");
    assert!(err.starts_with("timed out"), "{err}");
    assert_eq!(mock.request_count(), 1);
    drop(mock);
}

#[test]
fn mock_delayed_answer_arrives_after_the_delay() {
    let mock = MockPyroscope::start();
    mock.set_default(Action::status(429).delayed(Duration::from_millis(50)));
    let mut client = Client::connect(mock.addr());
    client.send(&folded_upload("name=app"));
    assert_eq!(client.read_response().status, 429);
}

#[test]
fn mock_rejects_bad_framing_from_the_gateway() {
    let cases: &[(&[u8], u16)] = &[
        (b"POST /ingest?name=a HTTP/1.1\r\n\r\n", 400),
        (
            b"POST /ingest?name=a HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
            400,
        ),
        (
            b"POST /ingest?name=a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n",
            501,
        ),
        (
            b"POST /ingest?name=a HTTP/1.1\r\nHost: x\r\nContent-Length: +1\r\n\r\n",
            400,
        ),
    ];
    let mock = MockPyroscope::start();
    for (bytes, status) in cases {
        let mut client = Client::connect(mock.addr());
        client.send(bytes);
        assert_eq!(
            client.read_response().status,
            *status,
            "{}",
            String::from_utf8_lossy(bytes)
        );
        client.expect_closed();
    }
}

#[test]
fn dead_destination_refuses_connections() {
    let addr = dead_destination();
    assert!(std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_err());
}

#[test]
fn crc32_matches_the_check_value() {
    assert_eq!(bodies::crc32(b"123456789"), 0xCBF4_3926);
}

#[test]
fn gzip_stored_frames_data_with_magic_crc_and_size() {
    let data = bodies::Prng::new(3).bytes(70_000);
    let gz = bodies::gzip_stored(&data);
    assert_eq!(&gz[..3], &[0x1f, 0x8b, 0x08]);
    // Two stored blocks (65535 + 4465 bytes), 5 header bytes each.
    assert_eq!(gz.len(), 10 + 5 + 65_535 + 5 + 4_465 + 8);
    assert_eq!(gz[10], 0x00, "first block not final");
    assert_eq!(gz[10 + 5 + 65_535], 0x01, "second block final");
    let tail = &gz[gz.len() - 8..];
    assert_eq!(tail[..4], bodies::crc32(&data).to_le_bytes());
    assert_eq!(tail[4..], 70_000u32.to_le_bytes());
}

#[test]
fn go_multipart_has_a_60_hex_boundary_and_the_sdk_parts() {
    let upload = bodies::go_multipart(9, true);
    let ct = upload.content_type.clone().expect("content type");
    let boundary = ct
        .strip_prefix("multipart/form-data; boundary=")
        .expect("multipart");
    assert_eq!(boundary.len(), 60);
    assert!(boundary.bytes().all(|b| b.is_ascii_hexdigit()));
    let parts = upstream::parse_multipart(&ct, &upload.body).expect("parts");
    let names: Vec<(&str, Option<&str>)> = parts
        .iter()
        .map(|p| (p.name.as_str(), p.filename.as_deref()))
        .collect();
    assert_eq!(
        names,
        [
            ("profile", Some("profile.pprof")),
            ("sample_type_config", Some("sample_type_config.json"))
        ]
    );
}

#[test]
fn every_shape_is_distinct_and_accepted_by_the_mock() {
    let shapes = bodies::all_shapes(100);
    let mock = MockPyroscope::start();
    for (i, a) in shapes.iter().enumerate() {
        for b in &shapes[i + 1..] {
            assert_ne!(a.body, b.body, "{} vs {}", a.shape, b.shape);
        }
        let mut client = Client::connect(mock.addr());
        client.send(&a.request(&[]));
        assert_eq!(client.read_response().status, 200, "{}", a.shape);
    }
    assert_ne!(bodies::node_pprof(1).body, bodies::node_pprof(2).body);
}

#[test]
fn go_query_escape_matches_go() {
    assert_eq!(
        bodies::go_query_escape("myapp.cpu{cluster=c1,env=prod}"),
        "myapp.cpu%7Bcluster%3Dc1%2Cenv%3Dprod%7D"
    );
    assert_eq!(bodies::go_query_escape("a b/~"), "a+b%2F~");
}

#[test]
fn client_reads_chunked_and_close_delimited_responses() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = std::thread::spawn(move || {
        use std::io::{Read, Write};
        let (mut s, _) = listener.accept().expect("accept");
        let mut buf = [0u8; 1024];
        let _ = s.read(&mut buf);
        s.write_all(
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;ext=1\r\nde\r\n0\r\nX-T: 1\r\n\r\nHTTP/1.0 500 Boom\r\n\r\nrest",
        )
        .expect("write");
    });
    let mut client = Client::connect(addr);
    client.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    let interim = client.read_response();
    assert_eq!((interim.status, interim.reason.as_str()), (100, "Continue"));
    let chunked = client.read_response();
    assert_eq!(chunked.body, b"abcde");
    let close = client.read_response();
    assert_eq!((close.version, close.status), (0, 500));
    assert_eq!(close.body, b"rest");
    server.join().expect("server thread");
}

#[test]
fn logfmt_lines_parse_into_pairs() {
    let line = r#"level=info msg="receiver listening" receiver=default addr=127.0.0.1:4040"#;
    assert_eq!(
        logfmt(line),
        [
            ("level".to_string(), "info".to_string()),
            ("msg".into(), "receiver listening".into()),
            ("receiver".into(), "default".into()),
            ("addr".into(), "127.0.0.1:4040".into()),
        ]
    );
    assert_eq!(
        logfmt_get(r#"msg="a \"q\"" x=1"#, "msg").as_deref(),
        Some(r#"a "q""#)
    );
}

#[test]
fn metric_sum_adds_matching_samples() {
    let text = "# HELP x\n# TYPE pyrogate_refused_total counter\n\
        pyrogate_refused_total{receiver=\"a\",reason=\"budget\"} 3\n\
        pyrogate_refused_total{receiver=\"b\",reason=\"budget\"} 2\n\
        pyrogate_refused_total{receiver=\"a\",reason=\"shutdown\"} 7\n\
        pyrogate_inflight_bytes 12\n";
    assert_eq!(
        metric_sum(text, "pyrogate_refused_total", &[("reason", "budget")]),
        Some(5.0)
    );
    assert_eq!(metric_sum(text, "pyrogate_inflight_bytes", &[]), Some(12.0));
    assert_eq!(metric_sum(text, "pyrogate_missing_total", &[]), None);
}

#[test]
fn upload_request_sets_content_type_and_length() {
    let upload = Upload {
        shape: "t",
        query: "name=a".into(),
        content_type: Some("text/plain".into()),
        body: b"xy".to_vec(),
    };
    assert_eq!(
        upload.request(&[("X-A", "1")]),
        b"POST /ingest?name=a HTTP/1.1\r\nHost: pyrogate.test\r\nContent-Type: text/plain\r\nX-A: 1\r\nContent-Length: 2\r\n\r\nxy"
    );
}
