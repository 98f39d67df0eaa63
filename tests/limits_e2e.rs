//! End-to-end: the receiver's timeouts, connection cap and size limits, seen from raw sockets.
//!
//! Covers, under both drivers, the limits with their named defaults, and `server_read_timeout`
//! ... `conn_limit` as Alloy defines them (grafana/alloy `internal/component/common/net/config.go`;
//! dskit `server/server.go`): a slow client cannot hold a core or a connection slot beyond them:
//! - `server_read_timeout = "500ms"` bounds the whole request: a client that stalls inside the
//!   head, one that stalls inside the body, and one that keeps dripping body bytes (so that no
//!   single read ever waits long) are all disconnected without a response, not before the
//!   timeout and well within 5 s, and nothing is forwarded;
//! - `server_idle_timeout = "500ms"` closes a keep-alive connection left idle after a response;
//! - `conn_limit = 2` on one core: a third connection is accepted by the kernel but its request
//!   gets no response while the first two stay open; once one of them closes, the third is
//!   served (Alloy's `netutil.LimitListener`: wait, not refuse);
//! - `max_request_head_bytes`, `max_request_headers` and `max_request_body_bytes` overrides:
//!   a request exactly at each limit is served (the body reaches the upstream byte-identical,
//!   for Content-Length and chunked framing), one unit over is answered 431 / 431 / 413 and the
//!   connection closed, with nothing forwarded.
//!
//! "Nothing forwarded" is checked by count: a marker upload on a fresh connection is
//! acknowledged after delivery (acknowledge = delivered), and the upstream must then hold
//! exactly the uploads that were served plus the marker.
//!
//! The lower bounds on disconnect times only check that the cut-off came from the timeout (not
//! from an error); the upper bound is the client's read timeout.

mod support;

use std::io::Write;
use std::time::{Duration, Instant};

use support::bodies;
use support::client::{Client, chunked_body};
use support::config;
use support::{Driver, Gateway, MockPyroscope, both_drivers};

const WAIT: Duration = Duration::from_secs(20);
/// The `server_read_timeout` / `server_idle_timeout` configured for the timeout tests.
const SHORT_TIMEOUT: &str = "500ms";
/// Disconnects must come no earlier than this (the 500 ms timeout, less timer granularity).
const NOT_BEFORE: Duration = Duration::from_millis(400);
/// ... and no later than this (a generous bound for a shared, slow machine).
const NOT_AFTER: Duration = Duration::from_secs(5);

/// Limits configured for the size tests (pyrogate extensions in the `http` block).
const HEAD_LIMIT: usize = 1024;
const HEADER_LIMIT: usize = 8;
const BODY_LIMIT: usize = 3000;

fn size_limits() -> String {
    format!(
        "    max_request_head_bytes = {HEAD_LIMIT}\n    max_request_headers = {HEADER_LIMIT}\n    max_request_body_bytes = {BODY_LIMIT}"
    )
}

/// Sends one upload on a fresh connection, expects 200, then asserts that the upstream holds
/// exactly `expected_total` requests (the marker included).
fn assert_forwarded_exactly(gw: &Gateway, mock: &MockPyroscope, expected_total: usize) {
    let marker = bodies::folded(4242);
    let mut client = Client::connect(gw.addr());
    client.send(&marker.request(&[]));
    let response = client.read_response();
    assert_eq!(response.status, 200, "marker upload: {response:?}");
    let recorded = mock.requests();
    assert_eq!(
        recorded.len(),
        expected_total,
        "upstream got {:?}",
        recorded
            .iter()
            .map(|r| (r.query.clone(), r.body.len()))
            .collect::<Vec<_>>()
    );
    assert_eq!(recorded[expected_total - 1].body, marker.body);
}

/// Waits for the gateway to close `client` with no bytes sent; returns how long that took
/// from `since`.
fn closed_after(client: Client, since: Instant) -> Duration {
    let mut client = client.with_timeout(NOT_AFTER);
    client.expect_closed();
    since.elapsed()
}

fn timeout_gateway(mock: &MockPyroscope, http_extra: &str, driver: Driver) -> Gateway {
    Gateway::start(&config::single(&mock.url(), "", http_extra, ""), driver, 1)
}

fn read_timeout_cuts_off_a_client_stalled_inside_the_head(driver: Driver) {
    let mock = MockPyroscope::start();
    let gw = timeout_gateway(
        &mock,
        &format!("    server_read_timeout = \"{SHORT_TIMEOUT}\""),
        driver,
    );
    let upload = bodies::node_pprof(1);
    let request = upload.request(&[]);
    let head_end = request
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("head end");
    let mut client = Client::connect(gw.addr());
    let sent = Instant::now();
    client.send(&request[..head_end / 2]);
    let took = closed_after(client, sent);
    assert!(took >= NOT_BEFORE, "closed after {took:?}");
    assert_forwarded_exactly(&gw, &mock, 1);
}

fn read_timeout_cuts_off_a_client_stalled_inside_the_body(driver: Driver) {
    let mock = MockPyroscope::start();
    let gw = timeout_gateway(
        &mock,
        &format!("    server_read_timeout = \"{SHORT_TIMEOUT}\""),
        driver,
    );
    let upload = bodies::node_pprof(2);
    let request = upload.request(&[]);
    // The whole head and half of the body.
    let cut = request.len() - upload.body.len() / 2;
    let mut client = Client::connect(gw.addr());
    let sent = Instant::now();
    client.send(&request[..cut]);
    let took = closed_after(client, sent);
    assert!(took >= NOT_BEFORE, "closed after {took:?}");
    assert_forwarded_exactly(&gw, &mock, 1);
}

/// A client that sends one body byte every 50 ms: each read completes quickly, so only a
/// bound on the whole request (Go's `ReadTimeout`, which Alloy sets) can cut it off.
fn read_timeout_bounds_the_whole_request_for_a_dripping_client(driver: Driver) {
    let mock = MockPyroscope::start();
    let gw = timeout_gateway(
        &mock,
        &format!("    server_read_timeout = \"{SHORT_TIMEOUT}\""),
        driver,
    );
    let upload = bodies::node_pprof(3);
    let request = upload.request(&[]);
    let body_start = request.len() - upload.body.len();
    let mut client = Client::connect(gw.addr());
    let mut writer = client.stream_clone();
    let sent = Instant::now();
    client.send(&request[..body_start]);
    // Enough bytes to drip for 10 s, far longer than NOT_AFTER; stops at the first error.
    let drip: Vec<u8> = request[body_start..body_start + 200].to_vec();
    let dripper = std::thread::spawn(move || {
        for byte in drip {
            if writer.write_all(&[byte]).is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    });
    let took = closed_after(client, sent);
    assert!(took >= NOT_BEFORE, "closed after {took:?}");
    let _ = dripper.join();
    assert_forwarded_exactly(&gw, &mock, 1);
}

/// Go's server sets the `ReadTimeout` deadline as soon as it starts reading a request, and on
/// a new connection that is right after accept: a client that connects and sends nothing is
/// cut off after `server_read_timeout` (the idle timeout only applies between requests).
fn read_timeout_cuts_off_a_new_connection_that_sends_nothing(driver: Driver) {
    let mock = MockPyroscope::start();
    let gw = timeout_gateway(
        &mock,
        &format!(
            "    server_read_timeout = \"{SHORT_TIMEOUT}\"\n    server_idle_timeout = \"120s\""
        ),
        driver,
    );
    let connected = Instant::now();
    let client = Client::connect(gw.addr());
    let took = closed_after(client, connected);
    assert!(took >= NOT_BEFORE, "closed after {took:?}");
    assert_forwarded_exactly(&gw, &mock, 1);
}

fn idle_timeout_closes_an_idle_keep_alive_connection(driver: Driver) {
    let mock = MockPyroscope::start();
    let gw = timeout_gateway(
        &mock,
        &format!("    server_idle_timeout = \"{SHORT_TIMEOUT}\""),
        driver,
    );
    let upload = bodies::node_pprof(4);
    let mut client = Client::connect(gw.addr());
    client.send(&upload.request(&[]));
    let response = client.read_response();
    assert_eq!(response.status, 200, "{response:?}");
    assert_eq!(
        response.header("connection"),
        None,
        "the connection is kept alive after the response"
    );
    let answered = Instant::now();
    let took = closed_after(client, answered);
    assert!(took >= NOT_BEFORE, "closed after {took:?}");
    assert_eq!(mock.request_count(), 1);
}

/// How long a request on the third connection is given to (wrongly) get an answer.
const NO_ANSWER_WINDOW: Duration = Duration::from_secs(1);

/// `conn_limit` is one limit for the whole gateway, not a share per core: with two cores and
/// `conn_limit = 3`, three connections are served and three more, wherever SO_REUSEPORT puts
/// them, wait unanswered; closing the served ones lets the waiting ones in.
fn conn_limit_is_global_across_cores(driver: Driver) {
    let mock = MockPyroscope::start();
    let gw = Gateway::start(
        &config::single(&mock.url(), "", "    conn_limit = 3", ""),
        driver,
        2,
    );
    let held: Vec<Client> = (0..3)
        .map(|i| {
            let mut c = Client::connect(gw.addr());
            c.send(&bodies::node_pprof(30 + i).request(&[]));
            let response = c.read_response();
            assert_eq!(response.status, 200, "connection {i}: {response:?}");
            c
        })
        .collect();
    let mut extra: Vec<Client> = (0..3)
        .map(|i| {
            let mut c = Client::connect(gw.addr()).with_timeout(NO_ANSWER_WINDOW);
            c.send(&bodies::node_pprof(40 + i).request(&[]));
            c
        })
        .collect();
    for (i, c) in extra.iter_mut().enumerate() {
        match c.try_read_response() {
            Err(e) if e.starts_with("timed out") => {}
            other => panic!("connection {} over a conn_limit of 3 got {other:?}", i + 4),
        }
    }
    assert_eq!(
        mock.request_count(),
        3,
        "only the three served uploads went upstream"
    );
    drop(held);
    for (i, c) in extra.into_iter().enumerate() {
        let mut c = c.with_timeout(WAIT);
        let response = c.read_response();
        assert_eq!(response.status, 200, "waiting connection {i}: {response:?}");
    }
    assert_eq!(mock.request_count(), 6);
}

/// `max_inflight_bytes` is one budget for all cores: on two cores, a body larger than half of
/// it (what a per-core share would allow) is still admitted, on whichever core it lands.
fn inflight_budget_is_global_across_cores(driver: Driver) {
    let mock = MockPyroscope::start();
    let cfg = format!(
        "{}\npyrogate {{\n  max_inflight_bytes = 65536\n  queue_wait_timeout = \"100ms\"\n}}\n",
        config::single(&mock.url(), "", "", "")
    );
    let gw = Gateway::start(&cfg, driver, 2);
    for seed in 0..4 {
        let upload = bodies::pprof_of_len(50 + seed, 48 * 1024);
        let mut c = Client::connect(gw.addr());
        c.send(&upload.request(&[]));
        let response = c.read_response();
        assert_eq!(response.status, 200, "upload {seed}: {response:?}");
    }
    assert_eq!(mock.request_count(), 4);
}

fn conn_limit_makes_an_extra_connection_wait_until_a_slot_frees(driver: Driver) {
    let mock = MockPyroscope::start();
    let gw = Gateway::start(
        &config::single(&mock.url(), "", "    conn_limit = 2", ""),
        driver,
        1,
    );
    // Two connections, each proven served (and so holding a slot) by one upload.
    let mut held: Vec<Client> = (0..2)
        .map(|i| {
            let mut c = Client::connect(gw.addr());
            c.send(&bodies::node_pprof(10 + i).request(&[]));
            let response = c.read_response();
            assert_eq!(response.status, 200, "connection {i}: {response:?}");
            c
        })
        .collect();
    // The kernel completes the handshake (the socket is in the accept backlog)...
    let third_upload = bodies::node_pprof(12);
    let mut third = Client::connect(gw.addr()).with_timeout(NO_ANSWER_WINDOW);
    third.send(&third_upload.request(&[]));
    // ...but the gateway does not serve it while both slots are taken.
    match third.try_read_response() {
        Err(e) if e.starts_with("timed out") => {}
        other => panic!("third connection over conn_limit got {other:?}"),
    }
    assert_eq!(
        mock.request_count(),
        2,
        "the third upload was not forwarded"
    );
    // A slot frees: the waiting connection is accepted and served.
    drop(held.remove(0));
    let mut third = third.with_timeout(WAIT);
    let response = third.read_response();
    assert_eq!(response.status, 200, "{response:?}");
    let recorded = mock.requests();
    assert_eq!(recorded.len(), 3);
    assert_eq!(recorded[2].body, third_upload.body);
    // The connection that stayed open is still served.
    held[0].send(&bodies::node_pprof(13).request(&[]));
    assert_eq!(held[0].read_response().status, 200);
}

/// An upload request whose head is exactly `head_len` bytes (padded with an `X-Pad` field).
fn request_with_head_len(upload: &bodies::Upload, head_len: usize) -> Vec<u8> {
    let unpadded = upload.request(&[("X-Pad", "")]);
    let base = unpadded.len() - upload.body.len();
    assert!(head_len >= base, "head {head_len} < minimal {base}");
    let pad = "p".repeat(head_len - base);
    let request = upload.request(&[("X-Pad", &pad)]);
    assert_eq!(request.len() - upload.body.len(), head_len);
    request
}

fn head_at_max_request_head_bytes_is_served_and_one_byte_more_is_431(driver: Driver) {
    let mock = MockPyroscope::start();
    let gw = Gateway::start(
        &config::single(&mock.url(), "", &size_limits(), ""),
        driver,
        1,
    );
    let upload = bodies::node_pprof(20);
    let mut client = Client::connect(gw.addr());
    client.send(&request_with_head_len(&upload, HEAD_LIMIT));
    let response = client.read_response();
    assert_eq!(
        response.status, 200,
        "head of exactly {HEAD_LIMIT} bytes: {response:?}"
    );
    assert_eq!(mock.request_count(), 1);

    let mut client = Client::connect(gw.addr());
    client.send(&request_with_head_len(&upload, HEAD_LIMIT + 1));
    let response = client.read_response();
    assert_eq!(response.status, 431, "{response:?}");
    assert_eq!(
        response.body_str(),
        format!("request head exceeds the {HEAD_LIMIT}-byte limit\n")
    );
    client.expect_closed();
    assert_forwarded_exactly(&gw, &mock, 2);
}

/// An upload request with exactly `n` header fields (Host, Content-Type, Content-Length and
/// `X-N` fillers).
fn request_with_headers(upload: &bodies::Upload, n: usize) -> Vec<u8> {
    let names: Vec<String> = (0..n - 3).map(|i| format!("X-Filler-{i}")).collect();
    let extra: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), "1")).collect();
    upload.request(&extra)
}

fn header_count_at_max_request_headers_is_served_and_one_more_is_431(driver: Driver) {
    let mock = MockPyroscope::start();
    let gw = Gateway::start(
        &config::single(&mock.url(), "", &size_limits(), ""),
        driver,
        1,
    );
    let upload = bodies::node_pprof(21);
    let mut client = Client::connect(gw.addr());
    client.send(&request_with_headers(&upload, HEADER_LIMIT));
    let response = client.read_response();
    assert_eq!(
        response.status, 200,
        "{HEADER_LIMIT} header fields: {response:?}"
    );
    assert_eq!(mock.request_count(), 1);

    let mut client = Client::connect(gw.addr());
    client.send(&request_with_headers(&upload, HEADER_LIMIT + 1));
    let response = client.read_response();
    assert_eq!(response.status, 431, "{response:?}");
    assert_eq!(
        response.body_str(),
        format!("request head has more than {HEADER_LIMIT} header fields\n")
    );
    client.expect_closed();
    assert_forwarded_exactly(&gw, &mock, 2);
}

fn body_at_max_request_body_bytes_is_delivered_and_one_byte_more_is_413(driver: Driver) {
    let mock = MockPyroscope::start();
    let gw = Gateway::start(
        &config::single(&mock.url(), "", &size_limits(), ""),
        driver,
        1,
    );
    let exact = bodies::pprof_of_len(22, BODY_LIMIT);
    let mut client = Client::connect(gw.addr());
    client.send(&exact.request(&[]));
    let response = client.read_response();
    assert_eq!(
        response.status, 200,
        "body of exactly {BODY_LIMIT} bytes: {response:?}"
    );
    let recorded = mock.requests();
    assert_eq!(recorded.len(), 1);
    assert_eq!(recorded[0].body, exact.body);

    // Over the limit: answered from the Content-Length, before any body byte is sent.
    let over = bodies::pprof_of_len(23, BODY_LIMIT + 1);
    let request = over.request(&[]);
    let mut client = Client::connect(gw.addr());
    client.send(&request[..request.len() - over.body.len()]);
    let response = client.read_response();
    assert_eq!(response.status, 413, "{response:?}");
    assert_eq!(response.body_str(), "Request Entity Too Large\n");
    client.expect_closed();
    assert_forwarded_exactly(&gw, &mock, 2);
}

fn chunked_body_at_max_request_body_bytes_is_delivered_and_one_byte_more_is_413(driver: Driver) {
    let mock = MockPyroscope::start();
    let gw = Gateway::start(
        &config::single(&mock.url(), "", &size_limits(), ""),
        driver,
        1,
    );
    let chunked_request = |upload: &bodies::Upload| {
        let mut out = format!(
            "POST {} HTTP/1.1\r\nHost: pyrogate.test\r\nContent-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\n\r\n",
            upload.target()
        )
        .into_bytes();
        out.extend_from_slice(&chunked_body(&upload.body, 1000));
        out
    };
    let exact = bodies::pprof_of_len(24, BODY_LIMIT);
    let mut client = Client::connect(gw.addr());
    client.send(&chunked_request(&exact));
    let response = client.read_response();
    assert_eq!(
        response.status, 200,
        "chunked body of exactly {BODY_LIMIT} bytes: {response:?}"
    );
    let recorded = mock.requests();
    assert_eq!(recorded.len(), 1);
    assert_eq!(recorded[0].body, exact.body);
    assert_eq!(
        recorded[0].header("content-length"),
        Some(BODY_LIMIT.to_string().as_str())
    );

    let over = bodies::pprof_of_len(25, BODY_LIMIT + 1);
    let mut client = Client::connect(gw.addr());
    // The peer may close while the tail is still being written.
    let _ = client.try_send(&chunked_request(&over));
    let response = client.read_response();
    assert_eq!(response.status, 413, "{response:?}");
    assert_forwarded_exactly(&gw, &mock, 2);
}

/// Without the overrides the same over-limit requests are served: the limits above are the
/// configured ones, not built-in.
fn requests_over_the_overrides_are_served_under_the_defaults(driver: Driver) {
    let mock = MockPyroscope::start();
    let gw = Gateway::start(&config::single(&mock.url(), "", "", ""), driver, 1);
    let head = request_with_head_len(&bodies::node_pprof(30), HEAD_LIMIT + 1);
    let headers = request_with_headers(&bodies::node_pprof(31), HEADER_LIMIT + 1);
    let body = bodies::pprof_of_len(32, BODY_LIMIT + 1).request(&[]);
    let mut bytes = head;
    bytes.extend_from_slice(&headers);
    bytes.extend_from_slice(&body);
    let mut client = Client::connect(gw.addr());
    client.send(&bytes);
    let statuses: Vec<u16> = client.read_responses(3).iter().map(|r| r.status).collect();
    assert_eq!(statuses, [200, 200, 200]);
    assert_eq!(mock.request_count(), 3);
}

both_drivers!(
    read_timeout_cuts_off_a_client_stalled_inside_the_head,
    read_timeout_cuts_off_a_client_stalled_inside_the_body,
    read_timeout_bounds_the_whole_request_for_a_dripping_client,
    read_timeout_cuts_off_a_new_connection_that_sends_nothing,
    idle_timeout_closes_an_idle_keep_alive_connection,
    conn_limit_makes_an_extra_connection_wait_until_a_slot_frees,
    conn_limit_is_global_across_cores,
    inflight_budget_is_global_across_cores,
    head_at_max_request_head_bytes_is_served_and_one_byte_more_is_431,
    header_count_at_max_request_headers_is_served_and_one_more_is_431,
    body_at_max_request_body_bytes_is_delivered_and_one_byte_more_is_413,
    chunked_body_at_max_request_body_bytes_is_delivered_and_one_byte_more_is_413,
    requests_over_the_overrides_are_served_under_the_defaults,
);
