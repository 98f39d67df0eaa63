//! End-to-end: the eBPF debug-info proxy (`debuginfo.v1alpha1.DebuginfoService`) through the
//! real binary, against stand-ins with Pyroscope's debug-info rules (`testkit::debuginfo`: 412
//! `no pending upload for this build ID` without a `ShouldInitiateUpload` yes, an upload cap,
//! uploads recorded only when their whole body arrived).
//!
//! Covers, under both drivers, what Alloy's `pyroscope.receive_http` does (grafana/alloy
//! `internal/component/pyroscope/receive_http/debuginfo.go`) and pyrogate's additions:
//! - the three calls, protobuf and protojson, reach the first endpoint of the first writer
//!   (through a relabel stage), never the second; the answers are relayed; the endpoint's
//!   `headers`, `http_headers` and basic auth travel; the downstream-calls counter counts them;
//! - an upload without `ShouldInitiateUpload` gets 502 `downstream upload: upload: HTTP 412`;
//! - a 64 MiB upload (Content-Length) streams with the gateway's resident memory under 16 MiB
//!   above idle, and arrives whole (size and hash); a chunked one too;
//! - a client that stalls mid-body is cut at `debug_info_upload_timeout`, and the stand-in
//!   never records a completed upload;
//! - no destination: 503 `no downstream endpoints available` / Connect `unavailable`;
//!   an unreachable one: 502 `downstream upload: Post "…": …` / Connect `unavailable`;
//!   an upload over the destination's cap: 502 `downstream upload: upload: HTTP 500`;
//! - an `https://` endpoint with a private CA, a path and a bearer token, through a CONNECT
//!   proxy: one tunnel per call, the paths joined to the endpoint's, the credentials sent;
//! - an upload over `debug_info_max_upload_bytes`: 413 before anything is sent when announced,
//!   413 with the upstream request left unfinished when found on the way (chunked);
//! - a reload switching `debug_info_destinations` applies to the next call;
//! - `debug_info_destinations = "all"`: two destinations, one says no; the upload reaches only
//!   the one that said yes.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use support::client::{Client, chunked_upload_request, upload_request};
use support::config;
use support::gateway::metric_sum;
use support::{Driver, Gateway, Response, both_drivers};
use testkit::debuginfo::{
    self as di, Answer, DebugInfoServer, Fnv, SHOULD_INITIATE_UPLOAD, UPLOAD_FINISHED,
    UPLOAD_PREFIX,
};

const WAIT: Duration = Duration::from_secs(20);
const CALLS: &str = "pyroscope_receive_http_debuginfo_downstream_calls_total";

fn call(addr: SocketAddr, path: &str, content_type: &str, body: &[u8]) -> Response {
    let mut c = Client::connect(addr);
    c.send(&upload_request(
        path,
        &[
            ("Content-Type", content_type),
            ("Connect-Protocol-Version", "1"),
        ],
        body,
    ));
    c.read_response()
}

fn should_initiate(addr: SocketAddr, json: bool, id: &str) -> Response {
    if json {
        call(
            addr,
            SHOULD_INITIATE_UPLOAD,
            "application/json",
            &di::should_initiate_request_json(id, "/usr/bin/app"),
        )
    } else {
        call(
            addr,
            SHOULD_INITIATE_UPLOAD,
            "application/proto",
            &di::should_initiate_request_proto(id, "/usr/bin/app"),
        )
    }
}

fn upload_finished(addr: SocketAddr, json: bool, id: &str) -> Response {
    if json {
        call(
            addr,
            UPLOAD_FINISHED,
            "application/json",
            &di::upload_finished_request_json(id),
        )
    } else {
        call(
            addr,
            UPLOAD_FINISHED,
            "application/proto",
            &di::upload_finished_request_proto(id),
        )
    }
}

fn upload(addr: SocketAddr, id: &str, body: &[u8]) -> Response {
    let mut c = Client::connect(addr).with_timeout(WAIT);
    c.send(&upload_request(
        &format!("{UPLOAD_PREFIX}{id}"),
        &[("Content-Type", "application/octet-stream")],
        body,
    ));
    c.read_response()
}

/// A fake ELF of `n` bytes.
fn elf(n: usize, seed: u8) -> Vec<u8> {
    let mut out = b"\x7fELF".to_vec();
    out.extend((0..n.saturating_sub(4)).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)));
    out
}

fn assert_yes(r: &Response, json: bool) {
    assert_eq!(r.status, 200, "{}", r.body_str());
    let ct = r.header("content-type").unwrap_or("");
    assert_eq!(
        ct,
        if json {
            "application/json"
        } else {
            "application/proto"
        }
    );
    let answer = di::decode_should_initiate_response(ct, &r.body).expect("decodes");
    assert!(answer.should_initiate_upload, "{answer:?}");
}

/// Receiver → relabel → write `first` (the stand-in `a`), and write `second` (`b`).
fn two_writer_config(a: &str, b: &str, receiver_extra: &str) -> String {
    format!(
        "pyroscope.receive_http \"default\" {{\n  http {{\n    listen_address = \"127.0.0.1\"\n    listen_port = 0\n  }}\n  forward_to = [pyroscope.relabel.r.receiver, pyroscope.write.second.receiver]\n{receiver_extra}\n}}\n\
         pyroscope.relabel \"r\" {{\n  forward_to = [pyroscope.write.first.receiver]\n  rule {{\n    action = \"labeldrop\"\n    regex = \"pod\"\n  }}\n}}\n{}{}",
        config::write(
            "first",
            &[config::endpoint(
                a,
                "    headers = { \"X-Scope-OrgID\" = \"tenant-a\" }\n    http_headers = { \"X-Extra\" = [\"one\", \"two\"] }\n    basic_auth {\n      username = \"u\"\n      password = \"p\"\n    }"
            )],
            ""
        ),
        config::write("second", &[config::endpoint(b, "")], "")
    )
}

fn the_three_calls_reach_the_first_endpoint_in_proto_and_json(driver: Driver) {
    let a = DebugInfoServer::start(Answer::Yes, di::DEFAULT_MAX_UPLOAD);
    let b = DebugInfoServer::start(Answer::Yes, di::DEFAULT_MAX_UPLOAD);
    let gw = Gateway::start(&two_writer_config(&a.url(), &b.url(), ""), driver, 2);
    let body = elf(3 * 1024 * 1024 + 17, 1);
    for (json, id) in [(false, "b1d0000000000001"), (true, "b1d0000000000002")] {
        assert_yes(&should_initiate(gw.addr(), json, id), json);
        let r = upload(gw.addr(), id, &body);
        assert_eq!((r.status, r.body_str()), (200, String::new()));
        let r = upload_finished(gw.addr(), json, id);
        assert_eq!(r.status, 200, "{}", r.body_str());
        let expected: &[u8] = if json { b"{}" } else { b"" };
        assert_eq!(r.body, expected);
    }
    let done = a.completed();
    assert_eq!(done.len(), 2);
    for (c, id) in done.iter().zip(["b1d0000000000001", "b1d0000000000002"]) {
        assert_eq!(c.build_id, id);
        assert_eq!(c.bytes, body.len() as u64);
        assert_eq!(c.hash, Fnv::of(&body));
    }
    assert_eq!(a.finished(), ["b1d0000000000001", "b1d0000000000002"]);
    assert!(b.seen().is_empty(), "the second writer saw {:?}", b.seen());
    for s in a.seen() {
        assert_eq!(s.status, Some(200), "{s:?}");
        assert_eq!(s.header("x-scope-orgid"), Some("tenant-a"), "{s:?}");
        assert_eq!(
            support::header_values(&s.headers, "x-extra"),
            ["one", "two"],
            "{s:?}"
        );
        assert_eq!(s.header("authorization"), Some("Basic dTpw"), "{s:?}");
    }
    let unary: Vec<_> = a
        .seen()
        .into_iter()
        .filter(|s| !s.target.starts_with(UPLOAD_PREFIX))
        .collect();
    assert_eq!(unary.len(), 4);
    assert_eq!(unary[0].header("content-type"), Some("application/proto"));
    assert_eq!(unary[3].header("content-type"), Some("application/json"));
    assert_eq!(unary[0].header("connect-protocol-version"), Some("1"));

    // Pyroscope's rule, relayed: no upload without a pending one.
    let r = upload(gw.addr(), "b1d0000000000003", b"\x7fELF tiny");
    assert_eq!(r.status, 502);
    assert!(
        r.body_str()
            .starts_with("downstream upload: upload: HTTP 412 (duration "),
        "{}",
        r.body_str()
    );
    assert_eq!(a.completed().len(), 2);

    // Keep-alive and pipelining around an upload: question, upload and finish written at once
    // on one connection are answered in order.
    let id = "b1d0000000000004";
    let mut c = Client::connect(gw.addr()).with_timeout(WAIT);
    let mut wire = upload_request(
        SHOULD_INITIATE_UPLOAD,
        &[("Content-Type", "application/proto")],
        &di::should_initiate_request_proto(id, "app"),
    );
    wire.extend(upload_request(&format!("{UPLOAD_PREFIX}{id}"), &[], &body));
    wire.extend(upload_request(
        UPLOAD_FINISHED,
        &[("Content-Type", "application/proto")],
        &di::upload_finished_request_proto(id),
    ));
    c.send(&wire);
    let answers = c.read_responses(3);
    assert_yes(&answers[0], false);
    assert_eq!(
        answers.iter().map(|r| r.status).collect::<Vec<_>>(),
        [200, 200, 200]
    );
    assert_eq!(a.completed().len(), 3);

    // A destination that refuses a large upload before reading it: a 502, the client's
    // connection closed (its body was not read to the end), nothing completed.
    let mut c = Client::connect(gw.addr()).with_timeout(WAIT);
    c.send(&upload_request(
        &format!("{UPLOAD_PREFIX}b1d0000000000005"),
        &[],
        &elf(8 * 1024 * 1024, 9),
    ));
    let r = c.read_response();
    assert_eq!(r.status, 502, "{}", r.body_str());
    assert!(
        r.body_str().starts_with("downstream upload: "),
        "{}",
        r.body_str()
    );
    assert_eq!(r.header("connection"), Some("close"));
    assert_eq!(a.completed().len(), 3);

    let m = gw.metrics();
    for (method, result, n) in [
        ("ShouldInitiateUpload", "success", 3.0),
        ("Upload", "success", 3.0),
        ("Upload", "failure", 2.0),
        ("UploadFinished", "success", 3.0),
    ] {
        assert_eq!(
            metric_sum(&m, CALLS, &[("method", method), ("result", result)]),
            Some(n),
            "{method} {result}"
        );
    }
}

/// VmRSS of `pid` in bytes.
fn rss(pid: u32) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let kb: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS");
    kb * 1024
}

fn a_64_mib_upload_streams_in_bounded_memory(driver: Driver) {
    const SIZE: usize = 64 * 1024 * 1024;
    const PIECE: usize = 1024 * 1024;
    let a = DebugInfoServer::start(Answer::Yes, di::DEFAULT_MAX_UPLOAD);
    let gw = Gateway::start(&config::single(&a.url(), "", "", ""), driver, 1);
    let id = "64646464";
    // Warm up the paths the upload takes (connections, buffers, the allocator's pools).
    assert_yes(&should_initiate(gw.addr(), false, "warm"), false);
    assert_eq!(upload(gw.addr(), "warm", &elf(2 * PIECE, 2)).status, 200);
    assert_yes(&should_initiate(gw.addr(), false, id), false);
    std::thread::sleep(Duration::from_millis(200));
    let idle = rss(gw.pid());

    let peak = Arc::new(AtomicU64::new(idle));
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (peak, stop, pid) = (peak.clone(), stop.clone(), gw.pid());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                peak.fetch_max(rss(pid), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    };
    let piece = elf(PIECE, 3);
    let mut s = TcpStream::connect(gw.addr()).expect("connect");
    s.set_read_timeout(Some(WAIT)).unwrap();
    write!(
        s,
        "POST {UPLOAD_PREFIX}{id} HTTP/1.1\r\nHost: t\r\nContent-Length: {SIZE}\r\n\r\n"
    )
    .unwrap();
    let mut hash = Fnv::default();
    for _ in 0..SIZE / PIECE {
        s.write_all(&piece).expect("write piece");
        hash.update(&piece);
    }
    let mut answer = Vec::new();
    let mut buf = [0u8; 1024];
    while !answer.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = s.read(&mut buf).expect("read answer");
        assert!(n > 0, "closed without an answer");
        answer.extend_from_slice(&buf[..n]);
    }
    stop.store(true, Ordering::Relaxed);
    sampler.join().unwrap();
    assert!(
        answer.starts_with(b"HTTP/1.1 200 OK\r\n"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    let done = a.completed();
    let got = done.iter().find(|c| c.build_id == id).expect("completed");
    assert_eq!((got.bytes, got.hash), (SIZE as u64, hash));
    let grew = peak.load(Ordering::Relaxed).saturating_sub(idle);
    println!(
        "64 MiB upload ({driver:?}): idle RSS {} KiB, peak {} KiB, +{} KiB",
        idle / 1024,
        peak.load(Ordering::Relaxed) / 1024,
        grew / 1024
    );
    assert!(
        grew < 16 * 1024 * 1024,
        "resident memory grew by {grew} bytes during a {SIZE}-byte upload"
    );

    // Chunked from the client: chunked upstream, same bytes.
    let body = elf(5 * PIECE + 3, 4);
    assert_yes(&should_initiate(gw.addr(), true, "c4c4"), true);
    let mut c = Client::connect(gw.addr()).with_timeout(WAIT);
    c.send(&chunked_upload_request(
        &format!("{UPLOAD_PREFIX}c4c4"),
        &[],
        &body,
        100_000,
    ));
    assert_eq!(c.read_response().status, 200);
    let got = a
        .completed()
        .into_iter()
        .find(|c| c.build_id == "c4c4")
        .expect("chunked completed");
    assert_eq!((got.bytes, got.hash), (body.len() as u64, Fnv::of(&body)));
    let seen = a.seen();
    let up = seen
        .iter()
        .find(|s| s.target.ends_with("/Upload/c4c4"))
        .unwrap();
    assert_eq!(up.header("transfer-encoding"), Some("chunked"));
}

fn a_stalled_client_is_cut_at_the_timeout_and_nothing_completes(driver: Driver) {
    let a = DebugInfoServer::start(Answer::Yes, di::DEFAULT_MAX_UPLOAD);
    let gw = Gateway::start(
        &config::single(&a.url(), "", "", "  debug_info_upload_timeout = \"1s\""),
        driver,
        1,
    );
    assert_yes(&should_initiate(gw.addr(), false, "57a11"), false);
    let mut s = TcpStream::connect(gw.addr()).expect("connect");
    s.set_read_timeout(Some(WAIT)).unwrap();
    write!(
        s,
        "POST {UPLOAD_PREFIX}57a11 HTTP/1.1\r\nHost: t\r\nContent-Length: 1048576\r\n\r\n"
    )
    .unwrap();
    s.write_all(&elf(300 * 1024, 5)).unwrap();
    let started = Instant::now();
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    let waited = started.elapsed();
    let text = String::from_utf8_lossy(&answer);
    assert!(
        text.starts_with("HTTP/1.1 408 Request Timeout\r\n"),
        "after {waited:?}: {text}"
    );
    assert!(text.contains("Connection: close\r\n"), "{text}");
    assert!(
        text.ends_with("debug-info upload: the client sent nothing for too long\n"),
        "{text}"
    );
    assert!(
        a.wait_until(WAIT, |a| a.incomplete() == 1),
        "the stand-in saw the upload end early"
    );
    assert!(a.completed().is_empty(), "{:?}", a.completed());
    let seen = a.seen();
    let up = seen.iter().find(|s| s.target.contains("/Upload/")).unwrap();
    assert_eq!(up.status, None, "the upload never got an answer: {up:?}");
    assert_eq!(
        metric_sum(
            &gw.metrics(),
            CALLS,
            &[("method", "Upload"), ("result", "failure")]
        ),
        Some(1.0)
    );
}

fn without_a_destination_calls_are_unavailable(driver: Driver) {
    // A capture directory is not a Pyroscope server: no debug-info destination.
    let dir = tempfile::tempdir().unwrap();
    let url = format!("file://{}", dir.path().display());
    let gw = Gateway::start(&config::single(&url, "", "", ""), driver, 1);
    let r = should_initiate(gw.addr(), false, "abc");
    assert_eq!(r.status, 503);
    assert_eq!(
        r.body_str(),
        r#"{"code":"unavailable","message":"no downstream endpoints available"}"#
    );
    let r = upload(gw.addr(), "abc", b"\x7fELF");
    assert_eq!(
        (r.status, r.body_str()),
        (503, "no downstream endpoints available\n".to_string())
    );
    assert_eq!(
        metric_sum(
            &gw.metrics(),
            CALLS,
            &[("method", "ShouldInitiateUpload"), ("result", "failure")]
        ),
        Some(1.0)
    );
}

fn upstream_failures_are_bad_gateway(driver: Driver) {
    // A port with no listener.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let gw = Gateway::start(
        &config::single(&format!("http://127.0.0.1:{port}"), "", "", ""),
        driver,
        1,
    );
    let r = upload(gw.addr(), "dead", b"\x7fELF");
    assert_eq!(r.status, 502);
    let expected = format!(
        "downstream upload: Post \"http://127.0.0.1:{port}/debuginfo.v1alpha1.DebuginfoService/Upload/dead\": "
    );
    assert!(r.body_str().starts_with(&expected), "{}", r.body_str());
    let r = should_initiate(gw.addr(), true, "dead");
    assert_eq!(r.status, 503, "{}", r.body_str());
    assert!(
        r.body_str()
            .starts_with(r#"{"code":"unavailable","message":"Post \"http://127.0.0.1:"#),
        "{}",
        r.body_str()
    );
    drop(gw);

    // Over the destination's cap: Pyroscope's 500, relayed as a failed upload.
    let a = DebugInfoServer::start(Answer::Yes, 1000);
    let gw = Gateway::start(&config::single(&a.url(), "", "", ""), driver, 1);
    assert_yes(&should_initiate(gw.addr(), false, "b16"), false);
    let r = upload(gw.addr(), "b16", &elf(200_000, 6));
    assert_eq!(r.status, 502);
    assert!(
        r.body_str()
            .starts_with("downstream upload: upload: HTTP 500 (duration "),
        "{}",
        r.body_str()
    );
    assert!(a.completed().is_empty());
}

fn https_through_a_connect_proxy_with_the_endpoint_transport(driver: Driver) {
    let pki = testkit::tls::Pki::new();
    let a = DebugInfoServer::start_with(
        Answer::Yes,
        di::DEFAULT_MAX_UPLOAD,
        Some(pki.server_config(false, false)),
    );
    let proxy = testkit::tls::ConnectProxy::start(a.addr());
    // upstream.test does not resolve: only the proxy reaches the stand-in.
    let authority = format!("upstream.test:{}", a.addr().port());
    let extra = format!(
        "    tls_config {{\n      ca_file = \"{}\"\n    }}\n    proxy_url = \"http://127.0.0.1:{}\"\n    bearer_token = \"tok\"",
        pki.path("ca.pem"),
        proxy.addr.port()
    );
    let gw = Gateway::start(
        &config::single(&format!("https://{authority}/base/"), &extra, "", ""),
        driver,
        1,
    );
    let body = elf(700_000, 8);
    assert_yes(&should_initiate(gw.addr(), false, "7150"), false);
    assert_eq!(upload(gw.addr(), "7150", &body).status, 200);
    assert_eq!(upload_finished(gw.addr(), false, "7150").status, 200);
    let done = a.completed();
    assert_eq!(done.len(), 1);
    assert_eq!(
        (done[0].bytes, done[0].hash),
        (body.len() as u64, Fnv::of(&body))
    );
    let connects = proxy.connects();
    assert_eq!(connects.len(), 3, "one tunnel per call");
    assert!(connects.iter().all(|c| c.target == authority));
    let seen = a.seen();
    let targets: Vec<&str> = seen.iter().map(|s| s.target.as_str()).collect();
    assert_eq!(
        targets,
        [
            "/base/debuginfo.v1alpha1.DebuginfoService/ShouldInitiateUpload",
            "/base/debuginfo.v1alpha1.DebuginfoService/Upload/7150",
            "/base/debuginfo.v1alpha1.DebuginfoService/UploadFinished",
        ]
    );
    for s in &seen {
        assert_eq!(s.header("host"), Some(authority.as_str()));
        assert_eq!(s.header("authorization"), Some("Bearer tok"));
    }
}

fn all_mode_uploads_to_each_destination_that_asked(driver: Driver) {
    let yes = DebugInfoServer::start(Answer::Yes, di::DEFAULT_MAX_UPLOAD);
    let no = DebugInfoServer::start(Answer::No, di::DEFAULT_MAX_UPLOAD);
    let config = format!(
        "{}{}",
        config::receiver("default", &["w"], "", "  debug_info_destinations = \"all\""),
        config::write(
            "w",
            &[
                config::endpoint(&no.url(), ""),
                config::endpoint(&yes.url(), "")
            ],
            ""
        )
    );
    let gw = Gateway::start(&config, driver, 1);
    let body = elf(1024 * 1024 + 5, 7);
    for (json, id) in [(false, "a11a"), (true, "a11b")] {
        // The first destination says no, the second yes: the client is told yes.
        assert_yes(&should_initiate(gw.addr(), json, id), json);
        let r = upload(gw.addr(), id, &body);
        assert_eq!((r.status, r.body_str()), (200, String::new()));
        assert_eq!(upload_finished(gw.addr(), json, id).status, 200);
    }
    let done = yes.completed();
    assert_eq!(done.len(), 2);
    assert!(done.iter().all(|c| c.hash == Fnv::of(&body)));
    assert_eq!(yes.finished(), ["a11a", "a11b"]);
    assert!(no.completed().is_empty());
    let asked_no: Vec<String> = no.seen().into_iter().map(|s| s.target).collect();
    assert_eq!(
        asked_no,
        [SHOULD_INITIATE_UPLOAD, SHOULD_INITIATE_UPLOAD],
        "the destination that said no got only the questions"
    );
}

fn uploads_over_the_limit_are_refused(driver: Driver) {
    let a = DebugInfoServer::start(Answer::Yes, di::DEFAULT_MAX_UPLOAD);
    let gw = Gateway::start(
        &config::single(&a.url(), "", "", "  debug_info_max_upload_bytes = 100000"),
        driver,
        1,
    );
    assert_yes(&should_initiate(gw.addr(), false, "b19"), false);
    // Announced over the limit: refused before anything is read or sent.
    let r = upload(gw.addr(), "b19", &elf(100_001, 11));
    assert_eq!(
        (r.status, r.body_str()),
        (
            413,
            "request body is larger than 100000 bytes\n".to_string()
        )
    );
    assert!(a.seen().iter().all(|s| !s.target.contains("/Upload/")));
    // Chunked, found over the limit on the way: refused, the upstream request left unfinished.
    let mut c = Client::connect(gw.addr()).with_timeout(WAIT);
    c.send(&chunked_upload_request(
        &format!("{UPLOAD_PREFIX}b19"),
        &[],
        &elf(300_000, 12),
        50_000,
    ));
    let r = c.read_response();
    assert_eq!(r.status, 413, "{}", r.body_str());
    assert_eq!(
        r.body_str(),
        "debug-info upload: request body is larger than 100000 bytes\n"
    );
    assert!(a.wait_until(WAIT, |a| a.incomplete() == 1));
    assert!(a.completed().is_empty());
    // Within the limit: delivered.
    let body = elf(100_000, 13);
    assert_eq!(upload(gw.addr(), "b19", &body).status, 200);
    assert_eq!(a.completed()[0].hash, Fnv::of(&body));
}

fn a_reload_applies_new_debug_info_settings(driver: Driver) {
    let yes = DebugInfoServer::start(Answer::Yes, di::DEFAULT_MAX_UPLOAD);
    let no = DebugInfoServer::start(Answer::No, di::DEFAULT_MAX_UPLOAD);
    let config_for = |mode: &str| {
        format!(
            "{}{}",
            config::receiver(
                "default",
                &["w"],
                "",
                &format!("  debug_info_destinations = \"{mode}\"")
            ),
            config::write(
                "w",
                &[
                    config::endpoint(&no.url(), ""),
                    config::endpoint(&yes.url(), "")
                ],
                ""
            )
        )
    };
    let gw = Gateway::start(&config_for("first"), driver, 1);
    // The first endpoint alone is asked: it says no.
    let r = should_initiate(gw.addr(), false, "7e10ad");
    assert_eq!(r.status, 200);
    let answer = di::decode_should_initiate_response("application/proto", &r.body).unwrap();
    assert!(!answer.should_initiate_upload);
    assert!(yes.seen().is_empty());

    std::fs::write(gw.config_path(), config_for("all")).expect("write the config");
    let mut c = Client::connect(gw.admin());
    c.send(b"POST /-/reload HTTP/1.1\r\nHost: pyrogate\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(c.read_response().status, 200);
    assert_yes(&should_initiate(gw.addr(), false, "7e10ad"), false);
    let body = elf(100_000, 10);
    assert_eq!(upload(gw.addr(), "7e10ad", &body).status, 200);
    assert_eq!(yes.completed().len(), 1);
}

both_drivers!(
    uploads_over_the_limit_are_refused,
    a_reload_applies_new_debug_info_settings,
    the_three_calls_reach_the_first_endpoint_in_proto_and_json,
    a_64_mib_upload_streams_in_bounded_memory,
    a_stalled_client_is_cut_at_the_timeout_and_nothing_completes,
    without_a_destination_calls_are_unavailable,
    upstream_failures_are_bad_gateway,
    https_through_a_connect_proxy_with_the_endpoint_transport,
    all_mode_uploads_to_each_destination_that_asked,
);
