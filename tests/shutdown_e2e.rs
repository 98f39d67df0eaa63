//! End-to-end: graceful shutdown on SIGTERM, seen from clients, the upstream and the exit.
//!
//! Covers, under both drivers (README, "Behaviour"; tuning.md, "Acknowledgement and timeouts"):
//! - SIGTERM while an upload is being delivered to a slow upstream (the mock answers after
//!   1 s): the upload still reaches the upstream, the client gets its 200 and then the
//!   connection is closed, the process exits 0 after `shutdown complete delivered=1 dropped=0`;
//! - SIGTERM with `acknowledge = "enqueued"`, an upstream that never answers and
//!   `graceful_shutdown_timeout = "1s"`: the process still exits 0 within 15 s, after waiting
//!   the grace period, and `dropped=` counts every undelivered upload (one being sent, two still
//!   queued behind it with `max_connections_per_core = 1`);
//! - SIGTERM while a client is half-way through sending an upload: the rest is still read,
//!   the upload delivered and answered 200, then the connection closed;
//! - SIGTERM with `acknowledge = "enqueued"` and uploads still queued behind one slow sender:
//!   every queued upload is delivered, in order, before the exit (`delivered=4 dropped=0`);
//! - SIGINT does the same as SIGTERM (two cores: both drain and the totals are merged);
//! - after SIGTERM the receiver no longer takes new connections: once an idle keep-alive
//!   connection has been closed by the shutdown (proof that the core saw it), a new connection
//!   is refused or closed without a response and its upload is not forwarded, while the
//!   delivery in flight completes;
//! - keep-alive connections idle long enough to have given their read buffer back (parked on
//!   readiness, their idle timeout kept by the receiver's per-core registry) still serve their
//!   next upload, and SIGTERM closes them at once, not at the idle timeout.

mod support;

use std::time::{Duration, Instant};

use support::bodies;
use support::client::Client;
use support::config;
use support::gateway::{Stopped, metric_sum};
use support::{Action, Driver, Gateway, MockPyroscope, both_drivers};

const WAIT: Duration = Duration::from_secs(20);
/// Bound on the exit after SIGTERM when the upstream hangs (grace period 1 s).
const EXIT_BOUND: Duration = Duration::from_secs(15);

/// Waits for the gateway to exit on its own; panics with its stderr if it does not.
fn exited(gw: Gateway, bound: Duration) -> Stopped {
    match gw.wait_exit(bound) {
        Ok(stopped) => stopped,
        Err(killed) => panic!(
            "pyrogate still running {bound:?} after SIGTERM (killed); stderr:\n{}",
            killed.stderr
        ),
    }
}

fn sigterm_during_a_slow_delivery_still_delivers_and_answers(driver: Driver) {
    let mock = MockPyroscope::builder()
        .default_action(Action::ok().delayed(Duration::from_secs(1)))
        .start();
    let gw = Gateway::start(&config::single(&mock.url(), "", "", ""), driver, 1);
    let upload = bodies::go_multipart(1, true);
    let mut client = Client::connect(gw.addr());
    client.send(&upload.request(&[]));
    // The upstream has the request and is sitting on its answer: the delivery is in flight.
    mock.wait_for_requests(1, WAIT);
    gw.terminate();
    let response = client.read_response();
    assert_eq!(response.status, 200, "{response:?}");
    assert_eq!(response.body, b"");
    // Draining: the answered connection is not kept alive.
    client.expect_closed();
    let stopped = exited(gw, EXIT_BOUND);
    stopped.assert_clean_exit(1, 0);
    let recorded = mock.requests();
    assert_eq!(recorded.len(), 1);
    assert_eq!(recorded[0].body, upload.body);
    assert_eq!(recorded[0].status, Some(200));
}

fn sigterm_with_a_hanging_upstream_exits_after_the_grace_period_counting_drops(driver: Driver) {
    let mock = MockPyroscope::builder()
        .default_action(Action::Hang)
        .start();
    let cfg = config::single(
        &mock.url(),
        "    max_connections_per_core = 1\n    remote_timeout = \"60s\"",
        "",
        "  acknowledge = \"enqueued\"\n  graceful_shutdown_timeout = \"1s\"",
    );
    let gw = Gateway::start(&cfg, driver, 1);
    let uploads: Vec<bodies::Upload> = (0..3).map(|i| bodies::node_pprof(100 + i)).collect();
    let mut client = Client::connect(gw.addr());
    // Acknowledged on enqueue although the upstream never answers.
    client.upload_each_expecting_200(&uploads);
    // One upload is being sent (the only sender hangs on it), two wait in the queue.
    mock.wait_for_requests(1, WAIT);
    let signalled = Instant::now();
    gw.terminate();
    let stopped = exited(gw, EXIT_BOUND);
    let took = signalled.elapsed();
    assert!(
        took >= Duration::from_millis(900),
        "exited {took:?} after SIGTERM: the 1s grace period was not waited"
    );
    stopped.assert_clean_exit(0, uploads.len() as u64);
    assert_eq!(
        mock.request_count(),
        1,
        "the queued uploads were never sent"
    );
}

fn sigterm_drains_queued_uploads_before_exiting(driver: Driver) {
    // One sender and 300 ms per delivery: after the last 200 most uploads are still queued.
    let mock = MockPyroscope::builder()
        .default_action(Action::ok().delayed(Duration::from_millis(300)))
        .start();
    let cfg = config::single(
        &mock.url(),
        "    max_connections_per_core = 1",
        "",
        "  acknowledge = \"enqueued\"",
    );
    let gw = Gateway::start(&cfg, driver, 1);
    let uploads: Vec<bodies::Upload> = (0..4).map(|i| bodies::folded(300 + i)).collect();
    let mut client = Client::connect(gw.addr());
    client.upload_each_expecting_200(&uploads);
    gw.terminate();
    let stopped = exited(gw, EXIT_BOUND);
    stopped.assert_clean_exit(uploads.len() as u64, 0);
    let recorded = mock.requests();
    let bodies: Vec<&[u8]> = recorded.iter().map(|r| r.body.as_slice()).collect();
    let sent: Vec<&[u8]> = uploads.iter().map(|u| u.body.as_slice()).collect();
    assert_eq!(bodies, sent, "every queued upload delivered once, in order");
}

fn sigint_shuts_down_like_sigterm(driver: Driver) {
    let mock = MockPyroscope::start();
    let gw = Gateway::start(&config::single(&mock.url(), "", "", ""), driver, 2);
    let mut client = Client::connect(gw.addr());
    client.send(&bodies::node_pprof(400).request(&[]));
    assert_eq!(client.read_response().status, 200);
    gw.signal("INT");
    let stopped = exited(gw, EXIT_BOUND);
    stopped.assert_clean_exit(1, 0);
}

fn sigterm_during_an_upload_still_reads_delivers_and_answers_it(driver: Driver) {
    let mock = MockPyroscope::start();
    let gw = Gateway::start(&config::single(&mock.url(), "", "", ""), driver, 1);
    let mut idle = Client::connect(gw.addr());
    idle.send(&bodies::folded(500).request(&[]));
    assert_eq!(idle.read_response().status, 200);

    let upload = bodies::java_jfr(501);
    let request = upload.request(&[]);
    let half = request.len() - upload.body.len() / 2;
    let mut uploading = Client::connect(gw.addr());
    uploading.send(&request[..half]);
    // SIGTERM must find the upload being read: accepted, head parsed, body bytes reserved.
    // (A connection still in the accept backlog when the signal lands is never served.)
    let until = Instant::now() + WAIT;
    while metric_sum(&gw.metrics(), "pyrogate_inflight_bytes", &[]).unwrap_or(0.0) == 0.0 {
        assert!(
            Instant::now() < until,
            "the upload never started being read"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    gw.terminate();
    // The core has seen the shutdown once it closes the idle keep-alive connection.
    idle.expect_closed();
    uploading.send(&request[half..]);
    let response = uploading.read_response();
    assert_eq!(response.status, 200, "{response:?}");
    uploading.expect_closed();
    let stopped = exited(gw, EXIT_BOUND);
    stopped.assert_clean_exit(2, 0);
    let recorded = mock.requests();
    assert_eq!(recorded.len(), 2);
    assert_eq!(recorded[1].body, upload.body);
}

fn after_sigterm_new_connections_are_not_served(driver: Driver) {
    // The first upload is answered at once; later ones take 3 s, which keeps the gateway
    // draining (and alive) while the test knocks on the listener.
    let mock = MockPyroscope::builder()
        .default_action(Action::ok().delayed(Duration::from_secs(3)))
        .start();
    mock.script([Action::ok()]);
    let gw = Gateway::start(&config::single(&mock.url(), "", "", ""), driver, 1);
    let addr = gw.addr();

    let mut idle = Client::connect(addr);
    idle.send(&bodies::node_pprof(200).request(&[]));
    assert_eq!(idle.read_response().status, 200);

    let slow_upload = bodies::node_pprof(201);
    let mut slow = Client::connect(addr);
    slow.send(&slow_upload.request(&[]));
    mock.wait_for_requests(2, WAIT);

    gw.terminate();
    // The core has seen the shutdown once it closes the idle keep-alive connection.
    idle.expect_closed();

    let late_upload = bodies::node_pprof(202);
    match Client::try_connect(addr) {
        Err(_) => {} // refused: the listener is gone
        Ok(late) => {
            let mut late = late.with_timeout(WAIT);
            let _ = late.try_send(&late_upload.request(&[]));
            match late.try_read_response() {
                Ok(None) => {}
                other => panic!("a connection made after SIGTERM got {other:?}"),
            }
        }
    }

    let response = slow.read_response();
    assert_eq!(
        response.status, 200,
        "the delivery in flight completes: {response:?}"
    );
    let stopped = exited(gw, EXIT_BOUND);
    stopped.assert_clean_exit(2, 0);
    let recorded = mock.requests();
    assert_eq!(recorded.len(), 2, "the late upload was not forwarded");
    assert_eq!(recorded[1].body, slow_upload.body);
}

/// Longer than the 250 ms a waiting connection keeps its read buffer posted before it parks.
const PARKED: Duration = Duration::from_millis(600);

fn parked_connections_serve_their_next_upload_and_close_at_sigterm(driver: Driver) {
    let mock = MockPyroscope::start();
    let gw = Gateway::start(&config::single(&mock.url(), "", "", ""), driver, 1);
    let mut a = Client::connect(gw.addr());
    let mut b = Client::connect(gw.addr());
    a.send(&bodies::folded(700).request(&[]));
    assert_eq!(a.read_response().status, 200);
    b.send(&bodies::folded(701).request(&[]));
    assert_eq!(b.read_response().status, 200);
    std::thread::sleep(PARKED);
    let next = bodies::node_pprof(702);
    a.send(&next.request(&[]));
    assert_eq!(a.read_response().status, 200);
    std::thread::sleep(PARKED);
    gw.terminate();
    // The server idle timeout is Alloy's default (120 s): only the shutdown closes them.
    a.expect_closed();
    b.expect_closed();
    let stopped = exited(gw, EXIT_BOUND);
    stopped.assert_clean_exit(3, 0);
    let recorded = mock.requests();
    assert_eq!(recorded.len(), 3);
    assert_eq!(recorded[2].body, next.body);
}

both_drivers!(
    parked_connections_serve_their_next_upload_and_close_at_sigterm,
    sigterm_during_a_slow_delivery_still_delivers_and_answers,
    sigterm_with_a_hanging_upstream_exits_after_the_grace_period_counting_drops,
    sigterm_drains_queued_uploads_before_exiting,
    sigint_shuts_down_like_sigterm,
    sigterm_during_an_upload_still_reads_delivers_and_answers_it,
    after_sigterm_new_connections_are_not_served,
);
