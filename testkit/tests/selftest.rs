//! Self-tests of the kit, runnable without the gateway.
//!
//! Covers: the mock upstream's label-set grammar (against every `labelset` case of
//! `tests/data/label-vectors.json`, computed by running Pyroscope's own code), its query
//! parsing, its status codes (404, 405, 400 name errors, 400 unknown profile type, 413 by
//! Content-Length and by chunked total, 422 multipart without the required part), chunked
//! request bodies, keep-alive with pipelining, scripted answers (status, Retry-After, close,
//! hang), the dead-destination helper; and the body builders (gzip framing, CRC-32, multipart
//! shapes), the raw client's response framing, and the logfmt / metrics parsers. For the
//! Connect Push API: the test-side protobuf codec (canonical bytes, unknown fields, malformed
//! input), protojson, base64, gzip and the gzip bomb, gRPC-Web framing, Pyroscope's series
//! validation, and the mock's Push route (SDK shapes accepted and decoded, Connect errors with
//! their statuses, resource_exhausted over the limit, scripted answers).

/// The harness paths these tests were written against.
use testkit as support;

use std::time::Duration;

use support::bodies::{self, Upload};
use support::client::{Client, chunked_upload_request, upload_request};
use support::gateway::{logfmt, logfmt_get, metric_sum};
use support::upstream::{
    self, Action, MockPyroscope, dead_destination, normalized, parse_labelset, parse_query,
};

const WAIT: Duration = Duration::from_secs(10);

/// The Alloy label vectors, vendored in the repository (`tests/data/label-vectors.json`).
const VECTORS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../tests/data/label-vectors.json"
);

fn vectors() -> serde_json::Value {
    let text = std::fs::read_to_string(VECTORS).unwrap_or_else(|e| panic!("read {VECTORS}: {e}"));
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
            "{\"code\":\"invalid_argument\",\"message\":\"name: service name is required\"}\n",
        ),
        (
            "bad app name",
            folded_upload("name=my+app"),
            400,
            "{\"code\":\"invalid_argument\",\"message\":\"name: invalid service name: my app: character is not allowed: ' '\"}\n",
        ),
        (
            "bad label name",
            folded_upload("name=app%7Ba%2Fb%3Dv%7D"),
            400,
            "{\"code\":\"invalid_argument\",\"message\":\"name: invalid label name: a/b: character is not allowed: '/'\"}\n",
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
            concat!(
                r#"{"code":"unknown","message":"strconv.Atoi: parsing \"ten\": invalid syntax"}"#,
                "\n"
            ),
        ),
        (
            "multipart without a profile part",
            upload_request(
                "/ingest?name=app",
                &[("Content-Type", &no_file_ct)],
                &no_file_body,
            ),
            422,
            concat!(
                r#"{"code":"unknown","message":"profile is required"}"#,
                "\n"
            ),
        ),
        (
            "multipart with an empty profile part",
            upload_request(
                "/ingest?name=app",
                &[("Content-Type", &empty_ct)],
                &empty_body,
            ),
            422,
            concat!(
                r#"{"code":"unknown","message":"profile is required"}"#,
                "\n"
            ),
        ),
        (
            "jfr multipart without a jfr part",
            upload_request(
                "/ingest?name=app&format=jfr",
                &[("Content-Type", &no_file_ct)],
                &no_file_body,
            ),
            422,
            concat!(r#"{"code":"unknown","message":"jfr is required"}"#, "\n"),
        ),
        (
            "multipart body with format=pprof",
            upload_request(
                "/ingest?name=app&format=pprof",
                &[("Content-Type", &jfr_ct)],
                &jfr.body,
            ),
            422,
            concat!(
                r#"{"code":"unknown","message":"failed to parse pprof: multipart body with format=pprof"}"#,
                "\n"
            ),
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
        "{\"code\":\"unavailable\",\"message\":\"Service Unavailable\"}\n"
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
fn mock_truncated_action_sends_half_a_body_then_ends_as_told() {
    use std::io::{ErrorKind, Read, Write};
    use support::Truncation;
    let head = "HTTP/1.1 200 OK\r\nContent-Length: 64\r\n\r\n";
    let half = "x".repeat(32);
    for end in [Truncation::Close, Truncation::Reset, Truncation::Hang] {
        let mock = MockPyroscope::start();
        mock.script([Action::truncated(200, end)]);
        let mut s = std::net::TcpStream::connect(mock.addr()).unwrap();
        s.set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        s.write_all(&folded_upload("name=app")).unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 256];
        let last = loop {
            match s.read(&mut buf) {
                Ok(0) => break None,
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) => break Some(e.kind()),
            }
        };
        let text = String::from_utf8_lossy(&got).into_owned();
        match end {
            Truncation::Close => assert_eq!(last, None, "{end:?}: FIN"),
            Truncation::Reset => assert_eq!(last, Some(ErrorKind::ConnectionReset), "{end:?}"),
            Truncation::Hang => assert!(
                matches!(last, Some(ErrorKind::WouldBlock | ErrorKind::TimedOut)),
                "{end:?}: {last:?}"
            ),
        }
        // On loopback the bytes written before the reset are read before the reset is seen.
        assert_eq!(text, format!("{head}{half}"), "{end:?}");
        assert_eq!(mock.requests()[0].status, None, "{end:?}");
        assert_eq!(mock.counters().truncated, 1, "{end:?}");
    }
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
    assert_eq!(testkit::gzip::crc32(b"123456789"), 0xCBF4_3926);
}

#[test]
fn gzip_stored_frames_data_with_magic_crc_and_size() {
    let data = bodies::Prng::new(3).bytes(70_000);
    let gz = testkit::gzip::gzip_stored(&data);
    assert_eq!(&gz[..3], &[0x1f, 0x8b, 0x08]);
    // Two stored blocks (65535 + 4465 bytes), 5 header bytes each.
    assert_eq!(gz.len(), 10 + 5 + 65_535 + 5 + 4_465 + 8);
    assert_eq!(gz[10], 0x00, "first block not final");
    assert_eq!(gz[10 + 5 + 65_535], 0x01, "second block final");
    let tail = &gz[gz.len() - 8..];
    assert_eq!(tail[..4], testkit::gzip::crc32(&data).to_le_bytes());
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
        testkit::labelset::go_query_escape("myapp.cpu{cluster=c1,env=prod}"),
        "myapp.cpu%7Bcluster%3Dc1%2Cenv%3Dprod%7D"
    );
    assert_eq!(testkit::labelset::go_query_escape("a b/~"), "a+b%2F~");
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

// ---------------------------------------------------------------------------------------------
// Connect Push API: the test-side codec and the mock's Push route.

use support::push::{
    self, PUSH_PATH, PushRequest, RawField, Sample, Series, base64_decode, base64_encode,
    connect_error, grpc_web_frame, grpc_web_frames, grpc_web_trailers,
};
use support::upstream::PushCodec;

fn push_http(content_type: &str, extra: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut headers = vec![("Content-Type", content_type)];
    headers.extend_from_slice(extra);
    upload_request(PUSH_PATH, &headers, body)
}

#[test]
fn push_encoder_writes_canonical_protobuf_bytes() {
    let request = PushRequest::new(vec![Series::new(
        &[("a", "b")],
        vec![Sample::new(vec![1, 2], "x"), Sample::new(vec![3], "")],
    )]);
    #[rustfmt::skip]
    let want: &[u8] = &[
        0x0a, 0x16,                                     // series, 22 bytes
        0x0a, 0x06, 0x0a, 0x01, b'a', 0x12, 0x01, b'b', // labels {name a, value b}
        0x12, 0x07, 0x0a, 0x02, 1, 2, 0x12, 0x01, b'x', // samples {raw 01 02, ID x}
        0x12, 0x03, 0x0a, 0x01, 3,                      // samples {raw 03}: empty ID omitted
    ];
    assert_eq!(request.encode(), want);
    assert_eq!(PushRequest::decode(want), Ok(request));
    assert_eq!(PushRequest::decode(&[]), Ok(PushRequest::default()));
}

#[test]
fn push_decoder_skips_unknown_fields_and_unexpected_wire_types() {
    let series = Series::new(&[("__name__", "cpu")], vec![Sample::new(vec![9; 3], "id")]);
    let mut series_bytes = series.encode();
    // An annotation (field 3), a fixed32 field 9 and a varint field 1 (wrong wire type).
    series_bytes.extend_from_slice(&[0x1a, 0x02, 0x0a, 0x00]);
    series_bytes.extend_from_slice(&[0x4d, 1, 2, 3, 4]);
    series_bytes.extend_from_slice(&[0x08, 0x96, 0x01]);
    let mut body = vec![0x78, 0x96, 0x01]; // field 15, varint 150
    body.push(0x0a);
    body.push(series_bytes.len() as u8);
    body.extend_from_slice(&series_bytes);
    body.extend_from_slice(&[0x11, 0, 0, 0, 0, 0, 0, 0, 0]); // field 2, fixed64
    assert_eq!(
        PushRequest::decode(&body),
        Ok(PushRequest::new(vec![series]))
    );
}

#[test]
fn push_decoder_rejects_malformed_protobuf() {
    let cases: &[(&str, &[u8])] = &[
        ("tag without length", &[0x0a]),
        ("length past the end", &[0x0a, 0x05, 0x01]),
        ("field number 0", &[0x02, 0x00]),
        ("group wire type", &[0x0b]),
        (
            "nested length past the end",
            &[0x0a, 0x04, 0x0a, 0x02, 0x0a, 0x05],
        ),
        (
            "invalid UTF-8 label name",
            &[0x0a, 0x05, 0x0a, 0x03, 0x0a, 0x01, 0xff],
        ),
        (
            "varint over 10 bytes",
            &[
                0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f,
            ],
        ),
        ("fixed64 cut short", &[0x09, 1, 2, 3]),
    ];
    for (what, bytes) in cases {
        assert!(
            PushRequest::decode(bytes).is_err(),
            "{what}: {bytes:02x?} decoded"
        );
    }
}

#[test]
fn base64_matches_rfc4648_vectors() {
    let cases: &[(&[u8], &str)] = &[
        (b"", ""),
        (b"f", "Zg=="),
        (b"fo", "Zm8="),
        (b"foo", "Zm9v"),
        (b"foob", "Zm9vYg=="),
        (b"fooba", "Zm9vYmE="),
        (b"foobar", "Zm9vYmFy"),
        (&[0xfb, 0xff], "+/8="),
    ];
    for (raw, text) in cases {
        assert_eq!(base64_encode(raw), *text);
        assert_eq!(base64_decode(text).as_deref(), Ok(*raw));
    }
    assert_eq!(base64_decode("-_8").as_deref(), Ok(&[0xfb, 0xff][..]));
    assert_eq!(base64_decode("Zm9vYg").as_deref(), Ok(&b"foob"[..]));
    assert!(base64_decode("Zm9vY").is_err());
    assert!(base64_decode("Zm9v!").is_err());
}

#[test]
fn push_json_round_trips_with_both_profile_field_names() {
    let request = push::python_sdk(3).request;
    let camel = request.to_json(RawField::Camel);
    assert!(camel.contains("\"rawProfile\":\""), "{camel}");
    assert!(camel.contains("\"ID\":\""), "{camel}");
    assert_eq!(
        PushRequest::from_json(camel.as_bytes()),
        Ok(request.clone())
    );
    let proto = request.to_json(RawField::Proto);
    assert!(proto.contains("\"raw_profile\":\""), "{proto}");
    assert_eq!(PushRequest::from_json(proto.as_bytes()), Ok(request));
    assert!(PushRequest::from_json(b"{\"series\":[").is_err());
    assert!(PushRequest::from_json(b"[]").is_err());
}

#[test]
fn gzip_round_trips_and_the_bomb_is_small_but_inflates_past_the_limit() {
    let data = bodies::fake_pprof(5, 10_000);
    assert_eq!(push::gunzip_bounded(&push::gzip(&data), 10_000), Ok(data));
    let bomb = push::gzip_bomb(1 << 20);
    assert!(bomb.len() < 8 * 1024, "bomb is {} bytes", bomb.len());
    assert_eq!(
        push::gunzip_bounded(&bomb, 64 * 1024),
        Err(push::Gunzip::TooLarge)
    );
    let inflated = push::gunzip_bounded(&bomb, 2 << 20).expect("inflates within 2 MiB");
    let request = PushRequest::decode(&inflated).expect("a valid PushRequest");
    assert_eq!(request.series[0].samples[0].raw_profile, vec![0u8; 1 << 20]);
    assert!(matches!(
        push::gunzip_bounded(b"\x1f\x8b\x08\x00garbage", 100),
        Err(push::Gunzip::Corrupt(_))
    ));
}

#[test]
fn grpc_web_frames_split_and_trailers_parse() {
    let mut body = grpc_web_frame(0, b"");
    body.extend_from_slice(&grpc_web_frame(
        0x80,
        b"grpc-status:0\r\nGrpc-Message: a%20b\r\n",
    ));
    assert_eq!(&body[..5], &[0, 0, 0, 0, 0]);
    let frames = grpc_web_frames(&body).expect("two frames");
    assert_eq!(frames.len(), 2);
    assert_eq!(frames[0], (0, Vec::new()));
    assert_eq!(frames[1].0, 0x80);
    assert_eq!(
        grpc_web_trailers(&frames[1].1),
        [
            ("grpc-status".to_string(), "0".to_string()),
            ("grpc-message".to_string(), "a%20b".to_string())
        ]
    );
    assert!(grpc_web_frames(&[0, 0, 0, 0, 9, 1]).is_err());
    assert!(grpc_web_frames(&[0, 0]).is_err());
}

#[test]
fn uuid_v4_has_the_version_and_variant_bits() {
    let mut rng = bodies::Prng::new(1);
    let id = push::uuid_v4(&mut rng);
    assert_eq!(id.len(), 36, "{id}");
    let groups: Vec<&str> = id.split('-').collect();
    assert_eq!(
        groups.iter().map(|g| g.len()).collect::<Vec<_>>(),
        [8, 4, 4, 4, 12]
    );
    assert!(groups[2].starts_with('4'), "{id}");
    assert!(matches!(groups[3].as_bytes()[0], b'8'..=b'b'), "{id}");
    assert_ne!(id, push::uuid_v4(&mut rng));
}

/// (what, labels, the end of the error message).
type LabelCase = (
    &'static str,
    &'static [(&'static str, &'static str)],
    &'static str,
);

#[test]
fn validate_push_follows_pyroscope_series_rules() {
    let ok = |labels: &[(&str, &str)]| {
        push::validate_push(&PushRequest::new(vec![Series::new(
            labels,
            vec![Sample::new(vec![1], "")],
        )]))
    };
    assert_eq!(
        ok(&[
            ("__name__", "process_cpu"),
            ("service_name", "a"),
            ("x.y_z", "")
        ]),
        Ok(())
    );
    let bad: &[LabelCase] = &[
        (
            "no __name__",
            &[("service_name", "a")],
            "invalid metric name",
        ),
        (
            "empty __name__",
            &[("__name__", ""), ("service_name", "a")],
            "invalid metric name",
        ),
        (
            "no service_name",
            &[("__name__", "cpu")],
            "service name is not provided",
        ),
        (
            "dash in a name",
            &[("__name__", "cpu"), ("service_name", "a"), ("team-x", "1")],
            "invalid label name 'team-x'",
        ),
        (
            "leading dot",
            &[("__name__", "cpu"), ("service_name", "a"), (".x", "1")],
            "invalid label name '.x'",
        ),
        (
            "duplicate",
            &[
                ("__name__", "cpu"),
                ("service_name", "a"),
                ("service_name", "b"),
            ],
            "has duplicate label name: 'service_name'",
        ),
    ];
    for (what, labels, why) in bad {
        let err = ok(labels).expect_err(what);
        assert!(err.ends_with(why), "{what}: {err}");
        assert!(
            err.starts_with("invalid labels '{") || err.starts_with("profile with labels '{"),
            "{what}: {err}"
        );
    }
    assert_eq!(
        push::validate_push(&PushRequest::default()),
        Err("no profiles received".to_string())
    );
    let big = PushRequest::new(vec![Series::new(
        &[("__name__", "cpu"), ("service_name", "a")],
        vec![Sample::new(vec![0; push::MAX_PROFILE_SIZE_BYTES + 1], "")],
    )]);
    assert!(push::validate_push(&big).is_err());
}

#[test]
fn mock_push_accepts_sdk_shapes_and_records_decoded_series() {
    let mock = MockPyroscope::start();
    let shapes = [
        push::python_sdk(20),
        push::dotnet_sdk(21),
        push::json_push(push::simple_request(22, "j1", 100), RawField::Camel),
        push::json_push(push::simple_request(23, "j2", 100), RawField::Proto),
    ];
    let mut client = Client::connect(mock.addr());
    for upload in &shapes {
        client.send(&upload.http_request(&[("X-Scope-OrgID", "t1")]));
        let response = client.read_response();
        assert_eq!(response.status, 200, "{}: {response:?}", upload.shape);
        if upload.content_type == "application/json" {
            assert_eq!(response.header("content-type"), Some("application/json"));
            assert_eq!(response.body, b"{}");
        } else {
            assert_eq!(response.header("content-type"), Some("application/proto"));
            assert_eq!(response.body, b"");
        }
    }
    let recorded = mock.wait_for_requests(shapes.len(), WAIT);
    for (r, upload) in recorded.iter().zip(&shapes) {
        assert_eq!(r.path, PUSH_PATH);
        assert_eq!(r.status, Some(200));
        assert_eq!(r.push_request(), &upload.request, "{}", upload.shape);
        assert_eq!(r.body, upload.body);
        assert_eq!(r.header("user-agent"), Some(upload.user_agent.as_str()));
        assert_eq!(
            r.header("content-encoding"),
            upload.content_encoding.as_deref()
        );
    }
    assert_eq!(
        recorded[0].push_request().series[0].label("otel.scope.name"),
        Some("com.grafana.pyroscope/python")
    );
}

#[test]
fn mock_push_records_connect_headers_and_serves_under_a_prefix() {
    let mock = MockPyroscope::builder().path_prefix("/p").start();
    let request = push::simple_request(30, "svc", 64);
    let mut client = Client::connect(mock.addr());
    client.send(&upload_request(
        &format!("/p{PUSH_PATH}"),
        &[
            ("Content-Type", "application/proto"),
            ("Connect-Protocol-Version", "1"),
            ("Connect-Timeout-Ms", "9500"),
        ],
        &request.encode(),
    ));
    assert_eq!(client.read_response().status, 200);
    client.send(&push_http("application/proto", &[], &request.encode()));
    assert_eq!(client.read_response().status, 404);
    let recorded = mock.wait_for_requests(2, WAIT);
    assert_eq!(recorded[0].header("connect-protocol-version"), Some("1"));
    assert_eq!(recorded[0].header("connect-timeout-ms"), Some("9500"));
    assert_eq!(
        recorded[0].header("content-type"),
        Some("application/proto")
    );
    assert_eq!(recorded[0].push_request(), &request);
    assert_eq!(recorded[1].push, None);
}

#[test]
fn mock_push_answers_connect_errors_like_pyroscope() {
    let valid = push::simple_request(40, "svc", 64).encode();
    let one = |labels: &[(&str, &str)], raw: Vec<u8>| {
        PushRequest::new(vec![Series::new(labels, vec![Sample::new(raw, "")])]).encode()
    };
    let huge = one(
        &[("__name__", "cpu"), ("service_name", "a")],
        vec![7; push::MAX_PROFILE_SIZE_BYTES + 1],
    );
    // (what, request bytes, status, Connect code or "" for an empty body)
    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        (
            "zero series",
            push_http("application/proto", &[], b""),
            400,
            "invalid_argument",
        ),
        (
            "no service_name",
            push_http(
                "application/proto",
                &[],
                &one(&[("__name__", "cpu")], vec![1]),
            ),
            400,
            "invalid_argument",
        ),
        (
            "no __name__",
            push_http(
                "application/proto",
                &[],
                &one(&[("service_name", "a")], vec![1]),
            ),
            400,
            "invalid_argument",
        ),
        (
            "bad label name",
            push_http(
                "application/proto",
                &[],
                &one(
                    &[("__name__", "cpu"), ("service_name", "a"), ("a/b", "1")],
                    vec![1],
                ),
            ),
            400,
            "invalid_argument",
        ),
        (
            "raw_profile over 4 MiB",
            push_http("application/proto", &[], &huge),
            400,
            "invalid_argument",
        ),
        (
            "malformed protobuf",
            push_http("application/proto", &[], &[0x0a, 0x05]),
            400,
            "invalid_argument",
        ),
        (
            "malformed JSON",
            push_http("application/json", &[], b"{\"series\":"),
            400,
            "invalid_argument",
        ),
        (
            "corrupt gzip",
            push_http(
                "application/proto",
                &[("Content-Encoding", "gzip")],
                b"\x1f\x8bnope",
            ),
            400,
            "invalid_argument",
        ),
        (
            "protocol version 2",
            push_http(
                "application/proto",
                &[("Connect-Protocol-Version", "2")],
                &valid,
            ),
            400,
            "invalid_argument",
        ),
        (
            "bad timeout",
            push_http(
                "application/proto",
                &[("Connect-Timeout-Ms", "12345678901")],
                &valid,
            ),
            400,
            "invalid_argument",
        ),
        (
            "brotli",
            push_http("application/proto", &[("Content-Encoding", "br")], &valid),
            501,
            "unimplemented",
        ),
        (
            "streaming content type",
            push_http("application/connect+proto", &[], &valid),
            415,
            "",
        ),
        (
            "octet-stream",
            push_http("application/octet-stream", &[], &valid),
            415,
            "",
        ),
        (
            "GET",
            format!("GET {PUSH_PATH} HTTP/1.1\r\nHost: x\r\n\r\n").into_bytes(),
            405,
            "",
        ),
    ];
    let mock = MockPyroscope::start();
    for (what, bytes, status, code) in &cases {
        let mut client = Client::connect(mock.addr());
        client.send(bytes);
        let response = client.read_response();
        assert_eq!(response.status, *status, "{what}: {response:?}");
        if code.is_empty() {
            assert_eq!(response.body, b"", "{what}");
        } else {
            let parsed = connect_error(&response.body);
            let got = parsed.as_ref().map(|(c, _)| c.as_str());
            let content_type = response.header("content-type");
            assert_eq!(
                (content_type, got),
                (Some("application/json"), Some(*code)),
                "{what}: {response:?}"
            );
            assert!(parsed.is_some_and(|(_, m)| !m.is_empty()), "{what}");
        }
        if *status == 415 {
            assert!(
                response
                    .header("accept-post")
                    .is_some_and(|v| v.contains("application/proto")),
                "{what}: {response:?}"
            );
        }
    }
    let recorded = mock.requests();
    assert_eq!(recorded.len(), cases.len());
    assert_eq!(
        connect_error(&json_error_of(&mock, &cases[0].1)).map(|(_, m)| m),
        Some("no profiles received".to_string())
    );
    assert_eq!(recorded[0].push, Some(PushRequest::default()));
}

/// Sends `bytes` once more to `mock` and returns the answer's body.
fn json_error_of(mock: &MockPyroscope, bytes: &[u8]) -> Vec<u8> {
    let mut client = Client::connect(mock.addr());
    client.send(bytes);
    client.read_response().body
}

#[test]
fn mock_push_over_the_body_limit_and_a_gzip_bomb_get_resource_exhausted() {
    let mock = MockPyroscope::builder().body_limit(64 * 1024).start();
    let big = push::simple_request(50, "svc", 70 * 1024).encode();
    let mut client = Client::connect(mock.addr());
    client.send(&push_http("application/proto", &[], &big));
    let response = client.read_response();
    assert_eq!(response.status, 429, "{response:?}");
    assert_eq!(
        connect_error(&response.body).map(|(c, _)| c).as_deref(),
        Some("resource_exhausted")
    );
    client.expect_closed();

    let bomb = push::gzip_bomb(1 << 20);
    let mut client = Client::connect(mock.addr());
    client.send(&push_http(
        "application/proto",
        &[("Content-Encoding", "gzip")],
        &bomb,
    ));
    let response = client.read_response();
    assert_eq!(response.status, 429, "{response:?}");
    assert_eq!(
        connect_error(&response.body).map(|(c, _)| c).as_deref(),
        Some("resource_exhausted")
    );
    assert_eq!(mock.requests()[1].push, None);
}

#[test]
fn mock_push_follows_scripted_actions() {
    let mock = MockPyroscope::start();
    mock.script([
        Action::status(503).with_retry_after("2"),
        Action::status(400),
        Action::status(500).delayed(Duration::from_millis(20)),
        Action::Close,
    ]);
    let body = push::simple_request(60, "svc", 64).encode();
    let request = push_http("application/proto", &[], &body);
    let mut client = Client::connect(mock.addr());
    let expected: &[(u16, &str)] = &[
        (
            503,
            r#"{"code":"unavailable","message":"Service Unavailable"}"#,
        ),
        (
            400,
            r#"{"code":"invalid_argument","message":"Bad Request"}"#,
        ),
        (
            500,
            r#"{"code":"internal","message":"Internal Server Error"}"#,
        ),
    ];
    for (status, body) in expected {
        client.send(&request);
        let response = client.read_response();
        assert_eq!(response.status, *status);
        assert_eq!(response.body_str(), *body);
        assert_eq!(response.header("content-type"), Some("application/json"));
    }
    client.send(&request);
    assert_eq!(client.try_read_response(), Ok(None));
    let statuses: Vec<Option<u16>> = mock.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [Some(503), Some(400), Some(500), None]);
    assert_eq!(
        mock.requests()[0].header("content-type"),
        Some("application/proto")
    );

    mock.set_default(Action::Hang);
    let mut client = Client::connect(mock.addr()).with_timeout(Duration::from_millis(300));
    client.send(&request);
    let err = client.try_read_response().expect_err("no answer expected");
    assert!(err.starts_with("timed out"), "{err}");
    assert_eq!(mock.request_count(), 5);
    assert!(mock.requests()[4].push.is_some());
    drop(mock);
}

#[test]
fn judge_push_reports_the_codec_of_a_valid_push() {
    let request = push::simple_request(70, "svc", 10);
    let record = |ct: &str, body: Vec<u8>| support::Recorded {
        method: "POST".into(),
        target: PUSH_PATH.into(),
        path: PUSH_PATH.into(),
        query: String::new(),
        version: 1,
        headers: vec![("Content-Type".into(), ct.into())],
        chunked: false,
        body,
        received_at: std::time::Instant::now(),
        status: None,
        push: None,
    };
    let (decoded, verdict) =
        upstream::judge_push(1 << 20, &record("application/proto", request.encode()));
    assert_eq!(decoded.as_ref(), Some(&request));
    assert_eq!(verdict.map(|a| a.codec), Ok(Some(PushCodec::Proto)));
    let json = request.to_json(RawField::Camel).into_bytes();
    let (decoded, verdict) =
        upstream::judge_push(1 << 20, &record("application/json; charset=utf-8", json));
    assert_eq!(decoded.as_ref(), Some(&request));
    assert_eq!(verdict.map(|a| a.codec), Ok(Some(PushCodec::Json)));
}
