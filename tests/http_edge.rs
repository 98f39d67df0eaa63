//! End-to-end: the receiver's HTTP/1.1 edge cases (RFC 9112), seen from a raw socket.
//!
//! Covers, under both drivers (the HTTP/1.1 server of `src/h1` and `src/server/conn.rs`):
//! - a keep-alive connection left idle past the receiver's buffer release (it then waits on
//!   readiness alone) serves its next requests, pipelined ones included, in order, and requests
//!   landing just as its buffer is released are all answered;
//! - pipelining: three requests in one write are answered in order (a slow upstream delivery
//!   before an instant 404) and both uploads reach the upstream;
//! - `Expect: 100-continue`: `HTTP/1.1 100 Continue` arrives before the body is sent, then 200;
//! - HTTP/1.0 with Content-Length: delivered, answered, connection closed;
//! - 404 `404 page not found\n` for `/nope`, 405 with an empty body for `GET /ingest`, nothing
//!   forwarded;
//! - every framing rejection — Content-Length with Transfer-Encoding, differing Content-Lengths,
//!   a non-numeric Content-Length, `Transfer-Encoding: gzip, chunked`, Transfer-Encoding on
//!   HTTP/1.0, no Host, two Hosts, a head over `max_request_head_bytes` (431), more headers than
//!   `max_request_headers` (431), a chunked body over `max_request_body_bytes` (413) — gets its
//!   status, closes the connection without processing the pipelined request behind it, and
//!   forwards nothing; a Content-Length over the limit is answered 413 from the head alone.
//!
//! "Nothing forwarded" is checked by count, not by waiting: after each case a marker upload on a
//! fresh connection is acknowledged (acknowledge = delivered), and the upstream must then hold
//! exactly the markers.

mod support;

use std::time::Duration;

use support::bodies;
use support::client::{Client, chunked_body, upload_request};
use support::config;
use support::{Action, Driver, Gateway, MockPyroscope, both_drivers};

const WAIT: Duration = Duration::from_secs(20);
/// Limits configured for the framing tests (pyrogate extensions in the `http` block).
const HEAD_LIMIT: usize = 2048;
const HEADER_LIMIT: usize = 20;
const BODY_LIMIT: usize = 4096;

fn limits() -> String {
    format!(
        "    max_request_head_bytes = {HEAD_LIMIT}\n    max_request_headers = {HEADER_LIMIT}\n    max_request_body_bytes = {BODY_LIMIT}"
    )
}

fn pipelined_requests_are_answered_in_order(driver: Driver) {
    // Deliveries take 200 ms, the 404 is instant: an out-of-order server would answer it first.
    let mock = MockPyroscope::builder()
        .default_action(Action::ok().delayed(Duration::from_millis(200)))
        .start();
    let gw = Gateway::start(&config::single(&mock.url(), "", "", ""), driver, 1);
    let first = bodies::node_pprof(1);
    let second = bodies::folded(2);
    let mut bytes = first.request(&[]);
    bytes.extend_from_slice(&second.request(&[]));
    bytes.extend_from_slice(b"GET /nope HTTP/1.1\r\nHost: pyrogate.test\r\n\r\n");
    let mut client = Client::connect(gw.addr());
    client.send(&bytes);
    let responses = client.read_responses(3);
    let statuses: Vec<u16> = responses.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [200, 200, 404]);
    assert_eq!(responses[2].body_str(), "404 page not found\n");
    let recorded = mock.wait_for_requests(2, WAIT);
    assert_eq!(recorded.len(), 2);
    assert!(recorded.iter().any(|r| r.body == first.body));
    assert!(recorded.iter().any(|r| r.body == second.body));
}

fn expect_100_continue_gets_an_interim_response(driver: Driver) {
    let mock = MockPyroscope::start();
    let gw = Gateway::start(&config::single(&mock.url(), "", "", ""), driver, 1);
    let upload = bodies::node_pprof(3);
    let head = format!(
        "POST {} HTTP/1.1\r\nHost: pyrogate.test\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\nExpect: 100-continue\r\n\r\n",
        upload.target(),
        upload.body.len()
    );
    let mut client = Client::connect(gw.addr());
    client.send(head.as_bytes());
    let interim = client.read_response();
    assert_eq!(interim.version, 1);
    assert_eq!((interim.status, interim.reason.as_str()), (100, "Continue"));
    assert_eq!(mock.request_count(), 0, "nothing forwarded before the body");
    client.send(&upload.body);
    let response = client.read_response();
    assert_eq!(response.status, 200, "{response:?}");
    let recorded = mock.wait_for_requests(1, WAIT);
    assert_eq!(recorded[0].body, upload.body);
    assert_eq!(recorded[0].header("expect"), None);
}

fn http10_request_is_delivered_then_closed(driver: Driver) {
    let mock = MockPyroscope::start();
    let gw = Gateway::start(&config::single(&mock.url(), "", "", ""), driver, 1);
    let upload = bodies::folded(4);
    let mut bytes = format!(
        "POST {} HTTP/1.0\r\nContent-Length: {}\r\n\r\n",
        upload.target(),
        upload.body.len()
    )
    .into_bytes();
    bytes.extend_from_slice(&upload.body);
    let mut client = Client::connect(gw.addr());
    client.send(&bytes);
    let response = client.read_response();
    assert_eq!(response.status, 200, "{response:?}");
    client.expect_closed();
    let recorded = mock.wait_for_requests(1, WAIT);
    assert_eq!(recorded[0].body, upload.body);
    assert_eq!(recorded[0].version, 1, "upstream requests are HTTP/1.1");
}

/// RFC 9112 §9.3: an HTTP/1.0 client asking for keep-alive is told the connection persists
/// (`Connection: keep-alive`, as Go's server answers) and can reuse it.
fn http10_keep_alive_is_announced_and_honoured(driver: Driver) {
    let mock = MockPyroscope::start();
    let gw = Gateway::start(&config::single(&mock.url(), "", "", ""), driver, 1);
    let mut client = Client::connect(gw.addr());
    for seed in [5, 6] {
        let upload = bodies::folded(seed);
        let mut bytes = format!(
            "POST {} HTTP/1.0\r\nConnection: keep-alive\r\nContent-Length: {}\r\n\r\n",
            upload.target(),
            upload.body.len()
        )
        .into_bytes();
        bytes.extend_from_slice(&upload.body);
        client.send(&bytes);
        let response = client.read_response();
        assert_eq!(response.status, 200, "{response:?}");
        assert_eq!(
            response.header("connection"),
            Some("keep-alive"),
            "{response:?}"
        );
    }
    assert_eq!(mock.wait_for_requests(2, WAIT).len(), 2);
}

/// RFC 9112 §3.2.2: "a server MUST accept the absolute-form in requests". The target's
/// authority is never dialled: the upload goes through the receiver's pipeline like any other.
fn absolute_form_targets_are_served_from_the_pipeline(driver: Driver) {
    let mock = MockPyroscope::start();
    let gw = Gateway::start(&config::single(&mock.url(), "", "", ""), driver, 1);
    let normal = bodies::folded(7);
    let absolute = bodies::folded(7);
    let mut client = Client::connect(gw.addr());
    client.send(&normal.request(&[]));
    assert_eq!(client.read_response().status, 200);
    client.send(&upload_request(
        &format!("http://192.0.2.1:4040{}", absolute.target()),
        &[],
        &absolute.body,
    ));
    let response = client.read_response();
    assert_eq!(response.status, 200, "{response:?}");
    let recorded = mock.wait_for_requests(2, WAIT);
    assert_eq!(recorded.len(), 2);
    assert_eq!(recorded[1].path, "/ingest");
    assert_eq!(recorded[1].query, recorded[0].query, "same rewritten query");
    assert_eq!(recorded[1].body, absolute.body);
}

fn unknown_path_and_wrong_method_are_not_forwarded(driver: Driver) {
    let mock = MockPyroscope::start();
    let gw = Gateway::start(&config::single(&mock.url(), "", "", ""), driver, 1);
    let mut client = Client::connect(gw.addr());
    client.send(&upload_request("/nope?name=app", &[], b"a;b 1\n"));
    let not_found = client.read_response();
    assert_eq!(not_found.status, 404);
    assert_eq!(not_found.body_str(), "404 page not found\n");
    let mut client = Client::connect(gw.addr());
    client.send(b"GET /ingest?name=app HTTP/1.1\r\nHost: pyrogate.test\r\n\r\n");
    let wrong_method = client.read_response();
    assert_eq!(wrong_method.status, 405);
    assert_eq!(wrong_method.body, b"");
    let mut client = Client::connect(gw.addr());
    client.send(b"GET /pyroscope/ingest HTTP/1.1\r\nHost: pyrogate.test\r\n\r\n");
    assert_eq!(client.read_response().status, 405);
    assert_markers_only(&gw, &mock, 1);
}

/// Sends marker upload number `n` on a fresh connection and asserts the upstream then holds
/// exactly markers 1..=n: whatever was rejected before was not forwarded.
fn assert_markers_only(gw: &Gateway, mock: &MockPyroscope, n: u64) {
    let marker = bodies::folded(1_000_000 + n);
    let mut client = Client::connect(gw.addr());
    client.send(&marker.request(&[]));
    let response = client.read_response();
    assert_eq!(response.status, 200, "marker {n}: {response:?}");
    let recorded = mock.wait_for_requests(n as usize, WAIT);
    let expected: Vec<Vec<u8>> = (1..=n)
        .map(|i| bodies::folded(1_000_000 + i).body)
        .collect();
    let unexpected: Vec<String> = recorded
        .iter()
        .filter(|r| !expected.contains(&r.body))
        .map(|r| {
            format!(
                "{} {}?{} ({} bytes)",
                r.method,
                r.path,
                r.query,
                r.body.len()
            )
        })
        .collect();
    assert!(unexpected.is_empty(), "forwarded: {unexpected:?}");
    assert_eq!(recorded.len(), n as usize);
}

/// A framing case: name, the bytes of the bad request, the statuses RFC 9112 §6.1 and §6.3 allow.
struct FramingCase {
    name: &'static str,
    bytes: Vec<u8>,
    statuses: &'static [u16],
}

fn framing_cases() -> Vec<FramingCase> {
    let big_value = "v".repeat(HEAD_LIMIT + 100);
    let mut many_headers =
        String::from("POST /ingest?name=app HTTP/1.1\r\nHost: pyrogate.test\r\n");
    for i in 0..HEADER_LIMIT + 5 {
        many_headers.push_str(&format!("X-Extra-{i}: {i}\r\n"));
    }
    many_headers.push_str("Content-Length: 6\r\n\r\na;b 1\n");
    let mut oversized_chunked = b"POST /ingest?name=app HTTP/1.1\r\nHost: pyrogate.test\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    oversized_chunked.extend_from_slice(&chunked_body(&vec![b'x'; BODY_LIMIT + 1000], 1000));
    vec![
        FramingCase {
            name: "Content-Length with Transfer-Encoding",
            bytes: b"POST /ingest?name=app HTTP/1.1\r\nHost: pyrogate.test\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n6\r\na;b 1\n\r\n0\r\n\r\n".to_vec(),
            statuses: &[400],
        },
        FramingCase {
            name: "two differing Content-Lengths",
            bytes: b"POST /ingest?name=app HTTP/1.1\r\nHost: pyrogate.test\r\nContent-Length: 6\r\nContent-Length: 7\r\n\r\na;b 1\n".to_vec(),
            statuses: &[400],
        },
        FramingCase {
            name: "non-numeric Content-Length",
            bytes: b"POST /ingest?name=app HTTP/1.1\r\nHost: pyrogate.test\r\nContent-Length: six\r\n\r\na;b 1\n".to_vec(),
            statuses: &[400],
        },
        FramingCase {
            name: "Transfer-Encoding: gzip, chunked",
            bytes: b"POST /ingest?name=app HTTP/1.1\r\nHost: pyrogate.test\r\nTransfer-Encoding: gzip, chunked\r\n\r\n6\r\na;b 1\n\r\n0\r\n\r\n".to_vec(),
            statuses: &[400, 501],
        },
        FramingCase {
            name: "Transfer-Encoding on HTTP/1.0",
            bytes: b"POST /ingest?name=app HTTP/1.0\r\nHost: pyrogate.test\r\nTransfer-Encoding: chunked\r\n\r\n6\r\na;b 1\n\r\n0\r\n\r\n".to_vec(),
            statuses: &[400, 501],
        },
        FramingCase {
            name: "no Host",
            bytes: b"POST /ingest?name=app HTTP/1.1\r\nContent-Length: 6\r\n\r\na;b 1\n".to_vec(),
            statuses: &[400],
        },
        FramingCase {
            name: "two Hosts",
            bytes: b"POST /ingest?name=app HTTP/1.1\r\nHost: a.test\r\nHost: b.test\r\nContent-Length: 6\r\n\r\na;b 1\n".to_vec(),
            statuses: &[400],
        },
        FramingCase {
            name: "head over max_request_head_bytes",
            bytes: format!(
                "POST /ingest?name=app HTTP/1.1\r\nHost: pyrogate.test\r\nX-Big: {big_value}\r\nContent-Length: 6\r\n\r\na;b 1\n"
            )
            .into_bytes(),
            statuses: &[431],
        },
        FramingCase {
            name: "more headers than max_request_headers",
            bytes: many_headers.into_bytes(),
            statuses: &[431],
        },
        FramingCase {
            name: "chunked body over max_request_body_bytes",
            bytes: oversized_chunked,
            statuses: &[413],
        },
    ]
}

fn framing_rejections_close_the_connection_and_forward_nothing(driver: Driver) {
    let mock = MockPyroscope::start();
    let gw = Gateway::start(&config::single(&mock.url(), "", &limits(), ""), driver, 1);
    // A valid upload pipelined behind each bad request: it must never be processed.
    let follower = bodies::folded(77);
    let mut marker = 0;
    for case in framing_cases() {
        let mut bytes = case.bytes.clone();
        bytes.extend_from_slice(&follower.request(&[]));
        let mut client = Client::connect(gw.addr());
        // The server may close before reading everything; a failed write is fine.
        let _ = client.try_send(&bytes);
        let response = client
            .try_read_response()
            .unwrap_or_else(|e| panic!("{}: {e}", case.name))
            .unwrap_or_else(|| panic!("{}: closed without a response", case.name));
        assert!(
            case.statuses.contains(&response.status),
            "{}: got {} (allowed {:?}): {response:?}",
            case.name,
            response.status,
            case.statuses
        );
        if matches!(response.status, 400 | 501) {
            assert_eq!(
                response
                    .header("connection")
                    .map(|v| v.to_ascii_lowercase()),
                Some("close".to_string()),
                "{}: {response:?}",
                case.name
            );
        }
        client.expect_closed();
        marker += 1;
        assert_markers_only(&gw, &mock, marker);
    }
    assert!(mock.requests().iter().all(|r| r.body != follower.body));
}

fn oversized_content_length_is_answered_before_the_body(driver: Driver) {
    let mock = MockPyroscope::start();
    let gw = Gateway::start(&config::single(&mock.url(), "", &limits(), ""), driver, 1);
    let mut client = Client::connect(gw.addr());
    // Only the head: the 413 must come from the Content-Length alone.
    client.send(
        format!(
            "POST /ingest?name=app HTTP/1.1\r\nHost: pyrogate.test\r\nContent-Length: {}\r\n\r\n",
            BODY_LIMIT + 1
        )
        .as_bytes(),
    );
    let response = client.read_response();
    assert_eq!(response.status, 413, "{response:?}");
    client.expect_closed();
    assert_markers_only(&gw, &mock, 1);
}

/// Longer than the receiver's idle-buffer release (`IDLE_BUFFER_RELEASE`, 250 ms in
/// `src/server/conn.rs`): the connection then waits on readiness alone, without a buffer.
const PAST_BUFFER_RELEASE: Duration = Duration::from_millis(700);

fn a_connection_idle_past_its_buffer_release_serves_the_next_requests(driver: Driver) {
    let mock = MockPyroscope::start();
    let gw = Gateway::start(&config::single(&mock.url(), "", "", ""), driver, 1);
    let mut client = Client::connect(gw.addr());
    // Idle before the first request too: a fresh connection gives its buffer back as well.
    std::thread::sleep(PAST_BUFFER_RELEASE);
    let first = bodies::folded(41);
    client.send(&first.request(&[]));
    assert_eq!(client.read_response().status, 200);
    std::thread::sleep(PAST_BUFFER_RELEASE);
    // Two pipelined uploads and a 404 arrive at once on the parked connection.
    let (second, third) = (bodies::node_pprof(42), bodies::folded(43));
    let mut bytes = second.request(&[]);
    bytes.extend_from_slice(&third.request(&[]));
    bytes.extend_from_slice(b"GET /nope HTTP/1.1\r\nHost: pyrogate.test\r\n\r\n");
    client.send(&bytes);
    let statuses: Vec<u16> = client.read_responses(3).iter().map(|r| r.status).collect();
    assert_eq!(statuses, [200, 200, 404]);
    let recorded = mock.wait_for_requests(3, WAIT);
    let bodies: Vec<&[u8]> = recorded.iter().map(|r| r.body.as_slice()).collect();
    assert_eq!(bodies, [&first.body[..], &second.body[..], &third.body[..]]);
}

/// Requests that arrive right around the buffer release: the posted read is being cancelled as
/// the bytes land. On io_uring a recv can complete after the cancellation was queued; its bytes
/// must be kept (the read is awaited to its end), not lost with a dropped op — a lost request
/// would never be answered.
fn requests_arriving_at_the_buffer_release_are_all_answered(driver: Driver) {
    const CONNECTIONS: usize = 12;
    const ROUNDS: usize = 6;
    let mock = MockPyroscope::start();
    let gw = Gateway::start(&config::single(&mock.url(), "", "", ""), driver, 1);
    let addr = gw.addr();
    let threads: Vec<_> = (0..CONNECTIONS)
        .map(|c| {
            std::thread::spawn(move || {
                let mut client = Client::connect(addr).with_timeout(WAIT);
                for r in 0..ROUNDS {
                    // 235..=265 ms after the last answer, spread over the connections.
                    let ms = 235 + ((c * 7 + r * 11) % 31) as u64;
                    std::thread::sleep(Duration::from_millis(ms));
                    client.send(&bodies::folded((1000 + c * ROUNDS + r) as u64).request(&[]));
                    assert_eq!(
                        client.read_response().status,
                        200,
                        "connection {c} round {r}"
                    );
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("client thread");
    }
    assert_eq!(
        mock.wait_for_requests(CONNECTIONS * ROUNDS, WAIT).len(),
        CONNECTIONS * ROUNDS
    );
}

both_drivers!(
    requests_arriving_at_the_buffer_release_are_all_answered,
    a_connection_idle_past_its_buffer_release_serves_the_next_requests,
    http10_keep_alive_is_announced_and_honoured,
    absolute_form_targets_are_served_from_the_pipeline,
    pipelined_requests_are_answered_in_order,
    expect_100_continue_gets_an_interim_response,
    http10_request_is_delivered_then_closed,
    unknown_path_and_wrong_method_are_not_forwarded,
    framing_rejections_close_the_connection_and_forward_nothing,
    oversized_content_length_is_answered_before_the_body,
);
