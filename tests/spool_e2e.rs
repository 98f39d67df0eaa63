//! End-to-end: the durable spool (`pyrogate { spool { ... } }`) through outages, crashes and
//! restarts, under both drivers (README, "Spool"; tuning.md, "Sizing the spool").
//!
//! Covers:
//! - an outage while the gateway runs: an `/ingest` upload (with a forwarded header) and a
//!   two-series Push are spooled, and when the destination comes back they arrive exactly as a
//!   gateway with a healthy destination sends them (targets, headers in order, bodies);
//! - destination down, 1,000 uploads answered 200 (`acknowledge = "enqueued"`), every one in
//!   the spool; `kill -9` the gateway; start it again with the destination up: every upload
//!   arrives, each exactly once (compared by CRC-32 of the body), and the spool empties;
//! - the same with SIGTERM sent right after the last answer (uploads still in memory are
//!   spooled by the drain): every upload arrives exactly once after the restart;
//! - a spool file cut in the middle of its last record: the gateway starts, counts the cut
//!   bytes (`pyrogate_spool_truncated_bytes_total`) and delivers every whole record;
//! - the spool of an endpoint no longer configured is kept and named in a warning; an endpoint
//!   with `spool = false` drops as it would without a spool and gets no directory;
//! - a destination a reload adds spools too (its own directory, named in `endpoint.txt`) and
//!   replays once it answers, while the destination the reload kept never touches the disk;
//! - a destination a reload removed keeps replaying its spool, and a shutdown waits for its
//!   replay in flight: the record leaves the spool, so a restart finds nothing to send again;
//! - uploads being replayed are charged to the in-flight budget (`pyrogate_inflight_bytes`
//!   shows them, and never more than `max_inflight_bytes`);
//! - `max_bytes` drops the oldest uploads as `spool_full` and `max_age` drops old ones as
//!   `expired`, both counted, with accepted = sent + dropped + in flight + spooled.

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use support::bodies::{self, Upload};
use support::client::Client;
use support::config;
use support::gateway::metric_sum;
use support::upstream::dead_destination;
use support::{Driver, Gateway, MockPyroscope, both_drivers};

const WAIT: Duration = Duration::from_secs(60);

/// One receiver (`acknowledge = "enqueued"`) → one endpoint at `addr` that gives up quickly,
/// with a spool in `dir`.
fn spool_config(addr: std::net::SocketAddr, dir: &Path, spool_extra: &str) -> String {
    format!(
        "{}pyrogate {{\n  spool {{\n    directory = \"{}\"\n{spool_extra}\n  }}\n}}\n",
        config::single(
            &format!("http://{addr}"),
            "    max_backoff_retries = 2\n    min_backoff_period = \"20ms\"\n    max_backoff_period = \"50ms\"",
            "",
            "  acknowledge = \"enqueued\"",
        ),
        dir.display()
    )
}

fn uploads(n: u64, len: usize) -> Vec<Upload> {
    (0..n)
        .map(|i| bodies::pprof_of_len(1000 + i, len))
        .collect()
}

fn crc_counts<'a>(bodies: impl Iterator<Item = &'a [u8]>) -> BTreeMap<u32, usize> {
    let mut m = BTreeMap::new();
    for b in bodies {
        *m.entry(testkit::gzip::crc32(b)).or_insert(0) += 1;
    }
    m
}

fn metric(gw: &Gateway, name: &str) -> f64 {
    metric_sum(&gw.metrics(), name, &[]).unwrap_or(-1.0)
}

fn dropped(gw: &Gateway, reason: &str) -> f64 {
    metric_sum(
        &gw.metrics(),
        "pyrogate_dropped_total",
        &[("reason", reason)],
    )
    .unwrap_or(-1.0)
}

/// Polls `/metrics` until `name` equals `want` (panics with the last text after [`WAIT`]).
fn wait_metric(gw: &Gateway, name: &str, want: f64) {
    let deadline = Instant::now() + WAIT;
    loop {
        let text = gw.metrics();
        if metric_sum(&text, name, &[]) == Some(want) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{name} never reached {want}:\n{text}\nstderr:\n{}",
            gw.stderr_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Starts the destination at `addr` and a gateway on the same spool; waits until `n` uploads
/// arrived and the spool is empty; returns the arrived bodies' CRC counts.
fn restart_and_collect(
    cfg: &str,
    addr: std::net::SocketAddr,
    driver: Driver,
    n: usize,
) -> (BTreeMap<u32, usize>, Gateway, MockPyroscope) {
    let mock = MockPyroscope::builder()
        .listen(addr)
        .accept_anything()
        .start();
    let gw = Gateway::start(cfg, driver, 2);
    mock.wait_for_requests(n, WAIT);
    wait_metric(&gw, "pyrogate_spool_records", 0.0);
    wait_metric(&gw, "pyrogate_inflight_profiles", 0.0);
    let got = mock.requests();
    let counts = crc_counts(got.iter().map(|r| r.body.as_slice()));
    (counts, gw, mock)
}

fn kill_9_with_everything_spooled_then_restart_delivers_every_upload_once(driver: Driver) {
    let spool = tempfile::tempdir().unwrap();
    let addr = dead_destination();
    let cfg = spool_config(addr, spool.path(), "");
    let sent = uploads(1000, 512);
    let gw = Gateway::start(&cfg, driver, 2);
    Client::connect(gw.addr()).upload_each_expecting_200(&sent);
    wait_metric(&gw, "pyrogate_spool_records", 1000.0);
    assert_eq!(metric(&gw, "pyrogate_spool_spilled_total"), 1000.0);
    gw.signal("KILL");
    let killed = gw.wait_exit(Duration::from_secs(10)).unwrap();
    assert!(!killed.status.success());

    let (got, gw, _mock) = restart_and_collect(&cfg, addr, driver, 1000);
    let want = crc_counts(sent.iter().map(|u| u.body.as_slice()));
    assert_eq!(got, want, "every upload exactly once");
    assert_eq!(metric(&gw, "pyrogate_spool_replayed_total"), 1000.0);
    assert_eq!(metric(&gw, "pyroscope_write_sent_profiles_total"), 1000.0);
    // Recovered uploads count as accepted by this run: the account balances.
    assert_eq!(metric(&gw, "pyrogate_accepted_profiles_total"), 1000.0);
    let files: Vec<_> = walk(spool.path())
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "spool"))
        .collect();
    assert!(
        files.is_empty(),
        "delivered segments are deleted: {files:?}"
    );
    gw.stop().assert_clean_exit(1000, 0);
}

fn sigterm_right_after_the_answers_then_restart_delivers_every_upload_once(driver: Driver) {
    let spool = tempfile::tempdir().unwrap();
    let addr = dead_destination();
    let cfg = spool_config(addr, spool.path(), "");
    let sent = uploads(1000, 512);
    let gw = Gateway::start(&cfg, driver, 2);
    Client::connect(gw.addr()).upload_each_expecting_200(&sent);
    // No waiting: some uploads are still queued or between retries; the drain spools them.
    let stopped = gw.stop();
    assert!(stopped.status.success(), "{}", stopped.stderr);
    let done = stopped.log_line("shutdown complete").unwrap();
    assert_eq!(
        testkit::gateway::logfmt_get(&done, "dropped").as_deref(),
        Some("0"),
        "{done}"
    );

    let (got, gw, _mock) = restart_and_collect(&cfg, addr, driver, 1000);
    let want = crc_counts(sent.iter().map(|u| u.body.as_slice()));
    assert_eq!(got, want, "every upload exactly once");
    gw.stop().assert_clean_exit(1000, 0);
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().filter_map(Result::ok) {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out.sort();
    out
}

fn a_spool_file_cut_mid_record_is_truncated_and_the_rest_delivered(driver: Driver) {
    let spool = tempfile::tempdir().unwrap();
    let addr = dead_destination();
    let cfg = spool_config(addr, spool.path(), "");
    let sent = uploads(10, 2048);
    let gw = Gateway::start(&cfg, driver, 1);
    Client::connect(gw.addr()).upload_each_expecting_200(&sent);
    wait_metric(&gw, "pyrogate_spool_records", 10.0);
    gw.stop().assert_clean_exit(0, 0);

    let last = walk(spool.path())
        .into_iter()
        .rfind(|p| p.extension().is_some_and(|e| e == "spool"))
        .expect("a segment file");
    let len = std::fs::metadata(&last).unwrap().len();
    // Half of the last record's body gone, as a crash in the middle of the write leaves it.
    std::fs::OpenOptions::new()
        .write(true)
        .open(&last)
        .unwrap()
        .set_len(len - 1024)
        .unwrap();

    // The spool of an endpoint no longer configured: kept, not replayed, named in a warning.
    let orphan = spool.path().join("gone-0123456789abcdef");
    std::fs::create_dir_all(&orphan).unwrap();
    let orphan_segment = orphan.join("seg-00000000000000000000.spool");
    std::fs::write(&orphan_segment, b"PGSPOOL1").unwrap();

    let (got, gw, _mock) = restart_and_collect(&cfg, addr, driver, 9);
    assert_eq!(got.values().sum::<usize>(), 9);
    let want = crc_counts(sent.iter().map(|u| u.body.as_slice()));
    assert!(got.keys().all(|k| want.contains_key(k)));
    assert!(got.values().all(|n| *n == 1));
    let cut = metric(&gw, "pyrogate_spool_truncated_bytes_total");
    assert!(cut > 0.0 && cut < 2048.0 + 512.0, "truncated {cut}");
    let stopped = gw.stop();
    assert!(
        stopped
            .stderr
            .contains("spool: torn or corrupt tail truncated")
    );
    let warning = stopped
        .log_line("spool of an endpoint that is no longer configured: its files are kept and not replayed")
        .unwrap_or_else(|| panic!("no orphan warning:\n{}", stopped.stderr));
    assert!(warning.contains("gone-0123456789abcdef"), "{warning}");
    assert!(orphan_segment.exists());
    stopped.assert_clean_exit(9, 0);
}

fn an_endpoint_with_spool_false_drops_as_without_a_spool(driver: Driver) {
    let spool = tempfile::tempdir().unwrap();
    let addr = dead_destination();
    let cfg = spool_config(addr, spool.path(), "").replace(
        "max_backoff_retries = 2",
        "max_backoff_retries = 2\n    spool = false",
    );
    let gw = Gateway::start(&cfg, driver, 1);
    Client::connect(gw.addr()).upload_each_expecting_200(&uploads(3, 100));
    let deadline = Instant::now() + WAIT;
    while dropped(&gw, "retries_exhausted") != 3.0 {
        assert!(Instant::now() < deadline, "{}", gw.metrics());
        std::thread::sleep(Duration::from_millis(50));
    }
    let text = gw.metrics();
    assert_eq!(
        metric_sum(&text, "pyrogate_spool_records", &[]),
        None,
        "{text}"
    );
    assert_eq!(walk(spool.path()), Vec::<std::path::PathBuf>::new());
    gw.stop().assert_clean_exit(0, 3);
}

fn max_bytes_and_max_age_drop_what_they_must_and_count_it(driver: Driver) {
    // max_bytes: 256 KiB of 64 KiB segments; 100 uploads of 10 KiB cannot all fit.
    let spool = tempfile::tempdir().unwrap();
    let addr = dead_destination();
    let cfg = spool_config(addr, spool.path(), "    max_bytes = 262144");
    let sent = uploads(100, 10 * 1024);
    let gw = Gateway::start(&cfg, driver, 1);
    Client::connect(gw.addr()).upload_each_expecting_200(&sent);
    let deadline = Instant::now() + WAIT;
    loop {
        let text = gw.metrics();
        let spooled = metric_sum(&text, "pyrogate_spool_records", &[]).unwrap_or(0.0);
        let full =
            metric_sum(&text, "pyrogate_dropped_total", &[("reason", "spool_full")]).unwrap_or(0.0);
        let m = |name| metric_sum(&text, name, &[]).unwrap_or(-1.0);
        // accepted = sent + dropped + in flight + spooled (a replay probe may be between the
        // spool and the core when the figures are read: then the next scrape is checked).
        let balanced = m("pyrogate_accepted_profiles_total")
            == m("pyroscope_write_sent_profiles_total")
                + m("pyroscope_write_dropped_profiles_total")
                + m("pyrogate_inflight_profiles")
                + m("pyrogate_spool_profiles");
        if spooled + full == 100.0 && balanced {
            assert!(full > 0.0, "{text}");
            assert!(m("pyrogate_spool_bytes") <= 262_144.0, "{text}");
            assert_eq!(m("pyroscope_write_dropped_profiles_total"), full, "{text}");
            break;
        }
        assert!(Instant::now() < deadline, "{text}");
        std::thread::sleep(Duration::from_millis(50));
    }
    gw.stop();

    // max_age: everything spooled is older than 1 s before the destination comes back.
    let spool = tempfile::tempdir().unwrap();
    let cfg = spool_config(addr, spool.path(), "    max_age = \"1s\"");
    let gw = Gateway::start(&cfg, driver, 1);
    Client::connect(gw.addr()).upload_each_expecting_200(&sent[..5]);
    let deadline = Instant::now() + WAIT;
    while dropped(&gw, "expired") != 5.0 {
        assert!(Instant::now() < deadline, "{}", gw.metrics());
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(metric(&gw, "pyrogate_spool_records"), 0.0);
    assert_eq!(metric(&gw, "pyroscope_write_dropped_profiles_total"), 5.0);
    gw.stop().assert_clean_exit(0, 5);
}

/// What an upstream request is, minus what legitimately differs between two sends: `Host`
/// (another port) and the `Connect-Timeout-Ms` value (the time left when the attempt started).
/// The body as its length and CRC-32.
fn comparable(r: &support::Recorded) -> (String, Vec<(String, String)>, usize, u32) {
    let headers = r
        .headers
        .iter()
        .filter(|(n, _)| {
            !n.eq_ignore_ascii_case("connect-timeout-ms") && !n.eq_ignore_ascii_case("host")
        })
        .cloned()
        .collect();
    (
        r.target.clone(),
        headers,
        r.body.len(),
        testkit::gzip::crc32(&r.body),
    )
}

/// Sends one `/ingest` upload (with a forwarded tenant header) and one two-series Push.
fn send_ingest_and_push(gw: &Gateway) {
    let mut client = Client::connect(gw.addr());
    let ingest = bodies::pprof_of_len(7, 3000);
    client.send(&ingest.request(&[("X-Scope-OrgID", "tenant-7")]));
    assert_eq!(client.read_response().status, 200);
    let request = support::push::PushRequest::new(vec![
        support::push::simple_request(8, "svc-a", 700).series[0].clone(),
        support::push::simple_request(9, "svc-b", 900).series[0].clone(),
    ]);
    let push = support::push::proto_push(request);
    client.send(&push.http_request(&[("X-Scope-OrgID", "tenant-7")]));
    assert_eq!(client.read_response().status, 200);
}

fn an_outage_without_restart_replays_the_requests_that_would_have_been_sent(driver: Driver) {
    let receiver_extra = "  acknowledge = \"enqueued\"\n  forward_headers = [\"X-Scope-OrgID\"]";
    let endpoint_extra = "    max_backoff_retries = 2\n    min_backoff_period = \"20ms\"\n    max_backoff_period = \"50ms\"\n    headers = { \"X-Endpoint\" = \"e1\" }";
    // Reference: the same uploads through a gateway whose destination answers.
    let healthy = MockPyroscope::builder().accept_anything().start();
    let reference = Gateway::start(
        &config::single(&healthy.url(), endpoint_extra, "", receiver_extra),
        driver,
        1,
    );
    send_ingest_and_push(&reference);
    let mut want: Vec<_> = healthy
        .wait_for_requests(3, WAIT)
        .iter()
        .map(comparable)
        .collect();
    // The ingest upload and the Push go out on different senders: their order may vary.
    want.sort();
    reference.stop().assert_clean_exit(3, 0);

    let spool = tempfile::tempdir().unwrap();
    let addr = dead_destination();
    let cfg = format!(
        "{}pyrogate {{\n  spool {{\n    directory = \"{}\"\n  }}\n}}\n",
        config::single(
            &format!("http://{addr}"),
            endpoint_extra,
            "",
            receiver_extra
        ),
        spool.path().display()
    );
    let gw = Gateway::start(&cfg, driver, 1);
    send_ingest_and_push(&gw);
    wait_metric(&gw, "pyrogate_spool_records", 2.0);
    assert!(metric(&gw, "pyrogate_spool_bytes") > 4600.0);
    // The destination comes back while the gateway runs.
    let mock = MockPyroscope::builder()
        .listen(addr)
        .accept_anything()
        .start();
    let arrived = mock.wait_for_requests(3, WAIT);
    // A Push's series are sent in order, after a replay too.
    let series: Vec<String> = arrived
        .iter()
        .filter(|r| r.path == "/push.v1.PusherService/Push")
        .map(|r| support::push::PushRequest::decode(&r.body).unwrap())
        .filter_map(|p| p.series[0].label("service_name").map(str::to_string))
        .collect();
    assert_eq!(series, ["svc-a", "svc-b"]);
    let mut got: Vec<_> = arrived.iter().map(comparable).collect();
    got.sort();
    assert_eq!(got, want, "same targets, headers (in order) and bodies");
    wait_metric(&gw, "pyrogate_spool_records", 0.0);
    assert_eq!(metric(&gw, "pyrogate_spool_replayed_total"), 2.0);
    assert_eq!(metric(&gw, "pyrogate_spool_oldest_age_seconds"), 0.0);
    gw.stop().assert_clean_exit(3, 0);
}

fn a_destination_added_by_a_reload_spools_and_replays(driver: Driver) {
    let spool = tempfile::tempdir().unwrap();
    let healthy = MockPyroscope::builder().accept_anything().start();
    let dead = dead_destination();
    let quick = "    max_backoff_retries = 2\n    min_backoff_period = \"20ms\"\n    max_backoff_period = \"50ms\"";
    let with = |urls: &[String]| {
        format!(
            "{}{}pyrogate {{\n  spool {{\n    directory = \"{}\"\n  }}\n}}\n",
            config::receiver("default", &["w"], "", "  acknowledge = \"enqueued\""),
            config::write(
                "w",
                &urls
                    .iter()
                    .map(|u| config::endpoint(u, quick))
                    .collect::<Vec<_>>(),
                ""
            ),
            spool.path().display()
        )
    };
    let dead_url = format!("http://{dead}");
    let gw = Gateway::start(&with(&[healthy.url()]), driver, 1);
    std::fs::write(gw.config_path(), with(&[healthy.url(), dead_url.clone()])).unwrap();
    let mut admin = Client::connect(gw.admin());
    admin.send(b"POST /-/reload HTTP/1.1\r\nHost: pyrogate\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(admin.read_response().status, 200, "{}", gw.stderr_text());
    let sent = uploads(5, 2048);
    Client::connect(gw.addr()).upload_each_expecting_200(&sent);
    wait_metric(&gw, "pyrogate_spool_records", 5.0);
    assert_eq!(
        metric_sum(
            &gw.metrics(),
            "pyrogate_spool_records",
            &[("endpoint", dead_url.as_str())]
        ),
        Some(5.0)
    );
    // The new destination's directory names its endpoint; the kept one has none.
    let owners: Vec<String> = std::fs::read_dir(spool.path())
        .unwrap()
        .filter_map(|e| std::fs::read_to_string(e.ok()?.path().join("endpoint.txt")).ok())
        .collect();
    assert!(owners.contains(&dead_url), "{owners:?}");
    assert_eq!(healthy.wait_for_requests(5, WAIT).len(), 5);
    // The destination comes back: the spool replays, every upload once.
    let mock = MockPyroscope::builder()
        .listen(dead)
        .accept_anything()
        .start();
    let arrived = mock.wait_for_requests(5, WAIT);
    wait_metric(&gw, "pyrogate_spool_records", 0.0);
    assert_eq!(
        crc_counts(arrived.iter().map(|r| r.body.as_slice())),
        crc_counts(sent.iter().map(|u| u.body.as_slice()))
    );
    assert_eq!(metric(&gw, "pyrogate_spool_replayed_total"), 5.0);
    gw.stop().assert_clean_exit(10, 0);
}

fn replayed_uploads_are_charged_to_the_in_flight_budget(driver: Driver) {
    const BUDGET: f64 = 200_000.0;
    let spool = tempfile::tempdir().unwrap();
    let dead = dead_destination();
    let cfg = format!(
        "{}pyrogate {{\n  max_inflight_bytes = {BUDGET}\n  spool {{\n    directory = \"{}\"\n  }}\n}}\n",
        config::single(
            &format!("http://{dead}"),
            "    max_backoff_retries = 2\n    min_backoff_period = \"20ms\"\n    max_backoff_period = \"50ms\"",
            "",
            "  acknowledge = \"enqueued\"",
        ),
        spool.path().display()
    );
    let gw = Gateway::start(&cfg, driver, 1);
    let sent = uploads(4, 100_000);
    Client::connect(gw.addr()).upload_each_expecting_200(&sent);
    wait_metric(&gw, "pyrogate_spool_records", 4.0);
    assert_eq!(
        metric(&gw, "pyrogate_inflight_bytes"),
        0.0,
        "spooled, not held"
    );
    // A slow destination comes back: each replayed upload is held while it is sent.
    let slow = testkit::faults::Faults {
        latency: testkit::faults::Latency::Fixed(Duration::from_millis(300)),
        ..Default::default()
    };
    let mock = MockPyroscope::builder()
        .listen(dead)
        .accept_anything()
        .faults(slow, 1)
        .start();
    let deadline = Instant::now() + WAIT;
    let mut held = Vec::new();
    loop {
        let text = gw.metrics();
        held.push(metric_sum(&text, "pyrogate_inflight_bytes", &[]).unwrap_or(-1.0));
        if metric_sum(&text, "pyrogate_spool_records", &[]) == Some(0.0)
            && metric_sum(&text, "pyrogate_inflight_profiles", &[]) == Some(0.0)
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the spool never emptied:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let most = held.iter().copied().fold(0.0, f64::max);
    // One record (a 100,000-byte body and its framing) at a time: two do not fit.
    assert!((100_000.0..=BUDGET).contains(&most), "held: {held:?}");
    assert_eq!(mock.requests().len(), 4);
    assert_eq!(metric(&gw, "pyrogate_inflight_bytes"), 0.0);
    gw.stop().assert_clean_exit(4, 0);
}

fn a_removed_destinations_replay_in_flight_is_awaited_at_shutdown(driver: Driver) {
    let spool = tempfile::tempdir().unwrap();
    let dead = dead_destination();
    let healthy = MockPyroscope::builder().accept_anything().start();
    let with = |url: &str| {
        format!(
            "{}pyrogate {{\n  spool {{\n    directory = \"{}\"\n  }}\n}}\n",
            config::single(
                url,
                "    max_backoff_retries = 2\n    min_backoff_period = \"20ms\"\n    max_backoff_period = \"50ms\"",
                "",
                "  acknowledge = \"enqueued\"",
            ),
            spool.path().display()
        )
    };
    let dead_url = format!("http://{dead}");
    let gw = Gateway::start(&with(&dead_url), driver, 1);
    let sent = uploads(1, 4096);
    Client::connect(gw.addr()).upload_each_expecting_200(&sent);
    wait_metric(&gw, "pyrogate_spool_records", 1.0);
    // A reload removes the destination while its upload waits in the spool.
    std::fs::write(gw.config_path(), with(&healthy.url())).unwrap();
    let mut admin = Client::connect(gw.admin());
    admin.send(b"POST /-/reload HTTP/1.1\r\nHost: pyrogate\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(admin.read_response().status, 200, "{}", gw.stderr_text());
    // It comes back, slowly: the replay is in flight when the gateway is told to stop.
    let slow = testkit::faults::Faults {
        latency: testkit::faults::Latency::Fixed(Duration::from_millis(1500)),
        ..Default::default()
    };
    let mut back = MockPyroscope::builder()
        .listen(dead)
        .accept_anything()
        .faults(slow, 1)
        .start();
    back.wait_for_requests(1, WAIT);
    let stopped = gw.stop();
    assert!(stopped.status.success(), "{}", stopped.stderr);
    back.stop();
    // The drain waited for the answer: nothing is left to replay after a restart.
    let again = Gateway::start(&with(&dead_url), driver, 1);
    let log = again.stderr_text();
    assert!(
        !log.contains("records from an earlier run"),
        "first run:\n{}\nrestart:\n{log}",
        stopped.stderr
    );
    again.stop().assert_clean_exit(0, 0);
}

both_drivers!(
    a_removed_destinations_replay_in_flight_is_awaited_at_shutdown,
    replayed_uploads_are_charged_to_the_in_flight_budget,
    a_destination_added_by_a_reload_spools_and_replays,
    an_endpoint_with_spool_false_drops_as_without_a_spool,
    an_outage_without_restart_replays_the_requests_that_would_have_been_sent,
    kill_9_with_everything_spooled_then_restart_delivers_every_upload_once,
    sigterm_right_after_the_answers_then_restart_delivers_every_upload_once,
    a_spool_file_cut_mid_record_is_truncated_and_the_rest_delivered,
    max_bytes_and_max_age_drop_what_they_must_and_count_it,
);
