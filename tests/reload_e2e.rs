//! End-to-end: configuration reload (`POST /-/reload` on the admin listener, `SIGHUP`).
//!
//! Covers, under both drivers (README, "Reload"):
//! - reloads under load: a generator thread sends uploads throughout, most on one keep-alive
//!   connection and every fifth on a new connection, over two cores, while eight reloads in a
//!   row set `external_labels` to `env=gen1` … `env=gen8`, each `POST /-/reload` answered 200
//!   `config reloaded`. No request fails, the stand-in receives exactly the uploads sent (each
//!   once, matched by body), and every upload carries the labels of the last reload answered
//!   before it was sent (one overlapping a reload may carry those of the reload before);
//!   `pyrogate_config_last_reload_successful` is 1, its success timestamp is not older than the
//!   first reload, and the destination's counters cover every upload (kept across reloads);
//! - the same with `SIGHUP` (its completion seen in the log line `config reloaded`);
//! - an invalid config: 400 whose body is exactly what `pyrogate validate` prints for the same
//!   file (file:line:col), the gateway keeps serving with the old labels, the success gauge is
//!   0 and `pyrogate_config_load_failures_total` 1; fixing the file and reloading gives 200
//!   and the gauge 1 again; `GET /-/reload` works as in Alloy, `DELETE` gets 405;
//! - a removed destination drains: its stand-in answers slowly, with one connection, and holds
//!   queued uploads when the reload removes it; every one of them still reaches it, while
//!   uploads after the reload go only to the remaining destination, and nothing is counted
//!   dropped for the reload;
//! - a removed destination whose upstream hangs: after `graceful_shutdown_timeout` the uploads
//!   still queued are counted in `pyrogate_reload_dropped_uploads_total`;
//! - new relabel rules apply after a reload, on `/ingest` and Push alike and on a keep-alive
//!   connection opened before it (the rule sets `stage` to `v1`, then `v2`), the relabel
//!   component's counters continue across the reload, and the unchanged destination keeps its
//!   one upstream connection;
//! - a TLS receiver whose certificate files were replaced serves the new certificate to
//!   connections after a reload (a client trusting only the test CA is refused once the files
//!   hold a self-signed certificate), on the same socket;
//! - a changed `client_auth` on a kept receiver: after the reload the old bearer token gets
//!   401 and the new one 200, on a keep-alive connection opened before the reload;
//! - listeners: a receiver whose `http` block is unchanged keeps its socket (a keep-alive
//!   connection opened before the reload is served after it, on the same address); a receiver
//!   whose `http` block changed is rebound (announced again, served on its new socket, the old
//!   address no longer served); a receiver added by the reload is served;
//! - on a fixed port, a receiver whose `http` block changed is rebound on the same port (its
//!   new `conn_limit` shows in `pyroscope_receive_http_tcp_connections_limit`), while a
//!   reload that adds a receiver on a port another socket holds is refused with 400 naming the
//!   address (no silent sharing of the port), the running configuration staying.

mod support;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use support::bodies;
use support::client::{Client, upload_request};
use support::config;
use support::gateway::{binary, logfmt_get, metric_sum};
use support::push::{self, PUSH_PATH, PushRequest, Sample, Series};
use support::tls::{Pki, replace_file, tls_roundtrip};
use support::upstream::{parse_labelset, parse_query};
use support::{Action, Driver, Gateway, MockPyroscope, Recorded, Response, both_drivers};

const WAIT: Duration = Duration::from_secs(20);
/// Uploads the generator sends before the first reload, and at least after the last.
const PHASE_UPLOADS: usize = 40;
/// Reloads in the scenario under load, and uploads sent at least between two of them.
const RELOADS: usize = 8;
const BETWEEN_RELOADS: usize = 10;

/// Receiver `default` → write `upstream` (one endpoint) with `env = "<env>"`.
fn labelled(url: &str, env: &str) -> String {
    format!(
        "{}{}",
        config::receiver("default", &["upstream"], "", ""),
        config::write(
            "upstream",
            &[config::endpoint(url, "")],
            &format!("  external_labels = {{ \"env\" = \"{env}\" }}"),
        )
    )
}

fn post_reload(gw: &Gateway) -> Response {
    let mut c = Client::connect(gw.admin());
    c.send(b"POST /-/reload HTTP/1.1\r\nHost: pyrogate\r\nContent-Length: 0\r\n\r\n");
    c.read_response()
}

fn write_config(gw: &Gateway, text: &str) {
    std::fs::write(gw.config_path(), text).expect("write the config file");
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs_f64()
}

/// The `env` label of a recorded `/ingest` request (from its `name` parameter).
fn env_of(r: &Recorded) -> Option<String> {
    ingest_label(r, "env")
}

/// Label `key` of a recorded `/ingest` request (from its `name` parameter).
fn ingest_label(r: &Recorded, key: &str) -> Option<String> {
    let name = parse_query(&r.query)
        .into_iter()
        .find(|(k, _)| k == "name")?
        .1;
    parse_labelset(&name)
        .ok()?
        .into_iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v)
}

/// One upload the generator sent.
#[derive(Debug)]
struct Sent {
    body: Vec<u8>,
    started: Instant,
    finished: Instant,
    outcome: Result<u16, String>,
}

/// Uploads sent continuously until stopped: on one keep-alive connection, every fifth on a
/// new connection. Each body is unique (seeded by its sequence number).
struct Generator {
    stop: Arc<AtomicBool>,
    sent: Arc<std::sync::Mutex<Vec<Sent>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Generator {
    fn start(addr: std::net::SocketAddr, seed: u64) -> Generator {
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (s, out) = (stop.clone(), sent.clone());
        let thread = std::thread::spawn(move || {
            let mut keep_alive: Option<Client> = None;
            let mut i = 0u64;
            while !s.load(Ordering::Relaxed) {
                let upload = bodies::node_pprof(seed + i);
                let fresh = i % 5 == 4;
                let started = Instant::now();
                let outcome = (|| -> Result<u16, String> {
                    let mut own;
                    let client = if fresh {
                        own = Client::try_connect(addr).map_err(|e| format!("connect: {e}"))?;
                        &mut own
                    } else {
                        if keep_alive.is_none() {
                            keep_alive = Some(
                                Client::try_connect(addr).map_err(|e| format!("connect: {e}"))?,
                            );
                        }
                        keep_alive.as_mut().expect("connected")
                    };
                    client
                        .try_send(&upload.request(&[]))
                        .map_err(|e| format!("send: {e}"))?;
                    match client.try_read_response()? {
                        Some(r) => Ok(r.status),
                        None => Err("connection closed without an answer".into()),
                    }
                })();
                if outcome.is_err() {
                    keep_alive = None;
                }
                out.lock().unwrap().push(Sent {
                    body: upload.body,
                    started,
                    finished: Instant::now(),
                    outcome,
                });
                i += 1;
                std::thread::sleep(Duration::from_millis(1));
            }
        });
        Generator {
            stop,
            sent,
            thread: Some(thread),
        }
    }

    fn count(&self) -> usize {
        self.sent.lock().unwrap().len()
    }

    fn wait_for(&self, n: usize) {
        let until = Instant::now() + WAIT;
        while self.count() < n {
            assert!(
                Instant::now() < until,
                "the generator sent only {}",
                self.count()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn finish(mut self) -> Vec<Sent> {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.join().expect("generator thread");
        }
        std::mem::take(&mut *self.sent.lock().unwrap())
    }
}

/// How the scenario asks for the reload.
#[derive(Clone, Copy)]
enum Trigger {
    Post,
    Sighup,
}

/// Count of `config reloaded` log lines so far.
fn reloads_logged(gw: &Gateway) -> usize {
    logged(gw, "config reloaded")
}

/// Count of log lines with `msg` so far.
fn logged(gw: &Gateway, msg: &str) -> usize {
    gw.stderr_text()
        .lines()
        .filter(|l| logfmt_get(l, "msg").as_deref() == Some(msg))
        .count()
}

/// Waits until `n` log lines with `msg` have reached the test (the log arrives through a
/// pipe, possibly after the reload's answer); a reload logs every receiver it binds first.
fn wait_logged(gw: &Gateway, msg: &str, n: usize) {
    let until = Instant::now() + WAIT;
    while logged(gw, msg) < n {
        assert!(
            Instant::now() < until,
            "fewer than {n} `{msg}` lines:\n{}",
            gw.stderr_text()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn reload_under_load(driver: Driver, trigger: Trigger) {
    let mock = MockPyroscope::start();
    let gw = Gateway::start(&labelled(&mock.url(), "gen0"), driver, 2);
    let generator = Generator::start(gw.addr(), 1000);
    generator.wait_for(PHASE_UPLOADS);

    // Reload k sets env=gen<k>; each window is (reload asked, reload answered).
    let reload_unix = unix_now();
    let mut windows: Vec<(Instant, Instant)> = Vec::new();
    for k in 1..=RELOADS {
        write_config(&gw, &labelled(&mock.url(), &format!("gen{k}")));
        let started = Instant::now();
        match trigger {
            Trigger::Post => {
                let response = post_reload(&gw);
                assert_eq!(response.status, 200, "{response:?}");
                assert_eq!(response.body_str(), "config reloaded\n");
            }
            Trigger::Sighup => {
                gw.signal("HUP");
                let until = Instant::now() + WAIT;
                while reloads_logged(&gw) < k {
                    assert!(
                        Instant::now() < until,
                        "no `config reloaded` line after SIGHUP {k}:\n{}",
                        gw.stderr_text()
                    );
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        }
        windows.push((started, Instant::now()));
        generator.wait_for(generator.count() + BETWEEN_RELOADS);
    }
    generator.wait_for(generator.count() + PHASE_UPLOADS);
    let sent = generator.finish();

    let failed: Vec<&Sent> = sent.iter().filter(|s| s.outcome != Ok(200)).collect();
    assert!(
        failed.is_empty(),
        "{} of {} uploads failed, first: {:?}",
        failed.len(),
        sent.len(),
        failed.first().map(|s| &s.outcome)
    );
    let recorded = mock.wait_for_requests(sent.len(), WAIT);
    // Every answered upload reached the stand-in, and nothing else did.
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(mock.request_count(), sent.len(), "uploads sent vs received");
    let by_body: HashMap<&[u8], &Recorded> =
        recorded.iter().map(|r| (r.body.as_slice(), r)).collect();
    assert_eq!(by_body.len(), sent.len(), "each upload received once");
    // An upload carries the labels of every reload answered before it was sent, and of none
    // asked after it was answered; one overlapping a reload may carry either.
    let mut settled = 0;
    for s in &sent {
        let r = by_body
            .get(s.body.as_slice())
            .unwrap_or_else(|| panic!("an upload sent at {:?} never arrived", s.started));
        let env = env_of(r).expect("an env label");
        let got: usize = env
            .strip_prefix("gen")
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("env={env}"));
        let applied = windows.iter().filter(|(_, done)| *done < s.started).count();
        let possible = windows
            .iter()
            .filter(|(asked, _)| *asked < s.finished)
            .count();
        assert!(
            applied <= got && got <= possible,
            "an upload carries env=gen{got}; reloads answered before it: {applied}, asked before its answer: {possible}"
        );
        settled += usize::from(applied == possible);
    }
    let longest = windows
        .iter()
        .map(|(a, d)| *d - *a)
        .max()
        .unwrap_or_default();
    println!(
        "{RELOADS} reloads under load (longest {longest:?}); {} uploads, {settled} outside any reload window, none failed or lost",
        sent.len()
    );
    assert!(
        settled >= sent.len() / 2,
        "{settled} of {} settled",
        sent.len()
    );

    let metrics = gw.metrics();
    assert_eq!(
        metric_sum(&metrics, "pyrogate_config_last_reload_successful", &[]),
        Some(1.0),
        "{metrics}"
    );
    let ts = metric_sum(
        &metrics,
        "pyrogate_config_last_reload_success_timestamp_seconds",
        &[],
    )
    .expect("success timestamp");
    assert!(
        ts >= reload_unix - 1.0 && ts <= unix_now() + 1.0,
        "timestamp {ts} vs reload at {reload_unix}"
    );
    assert_eq!(
        metric_sum(&metrics, "pyrogate_config_load_failures_total", &[]),
        Some(0.0)
    );
    // The destination kept its counters across the reload.
    assert_eq!(
        metric_sum(&metrics, "pyroscope_write_sent_profiles_total", &[]),
        Some(sent.len() as f64),
        "{metrics}"
    );
    let stopped = gw.stop();
    stopped.assert_clean_exit(sent.len() as u64, 0);
}

fn post_reload_under_load_applies_new_external_labels_without_a_failed_or_lost_upload(
    driver: Driver,
) {
    reload_under_load(driver, Trigger::Post);
}

fn sighup_reload_under_load_applies_new_external_labels_without_a_failed_or_lost_upload(
    driver: Driver,
) {
    reload_under_load(driver, Trigger::Sighup);
}

fn one_upload(gw: &Gateway, seed: u64) -> Vec<u8> {
    let upload = bodies::node_pprof(seed);
    let mut c = Client::connect(gw.addr());
    c.send(&upload.request(&[]));
    assert_eq!(c.read_response().status, 200);
    upload.body
}

fn an_invalid_config_is_answered_400_with_its_diagnostics_and_the_running_one_stays(
    driver: Driver,
) {
    let mock = MockPyroscope::start();
    let gw = Gateway::start(&labelled(&mock.url(), "one"), driver, 1);
    one_upload(&gw, 1);
    let broken = labelled(&mock.url(), "two").replace("forward_to", "forward_too");
    write_config(&gw, &broken);
    let validate = std::process::Command::new(binary())
        .arg("validate")
        .arg(gw.config_path())
        .output()
        .expect("run pyrogate validate");
    assert!(!validate.status.success());
    let diagnostics = String::from_utf8(validate.stderr).expect("utf-8 diagnostics");
    let path = gw.config_path().display().to_string();
    assert!(
        diagnostics.contains(&format!("{path}:")),
        "diagnostics name the file: {diagnostics}"
    );

    let response = post_reload(&gw);
    assert_eq!(response.status, 400, "{response:?}");
    assert_eq!(response.body_str(), diagnostics);

    let body = one_upload(&gw, 2);
    let recorded = mock.wait_for_requests(2, WAIT);
    let r = recorded.iter().find(|r| r.body == body).expect("received");
    assert_eq!(
        env_of(r).as_deref(),
        Some("one"),
        "the running config stays"
    );
    let metrics = gw.metrics();
    assert_eq!(
        metric_sum(&metrics, "pyrogate_config_last_reload_successful", &[]),
        Some(0.0)
    );
    assert_eq!(
        metric_sum(&metrics, "pyrogate_config_load_failures_total", &[]),
        Some(1.0)
    );

    write_config(&gw, &labelled(&mock.url(), "two"));
    let response = post_reload(&gw);
    assert_eq!(response.status, 200, "{response:?}");
    let body = one_upload(&gw, 3);
    let recorded = mock.wait_for_requests(3, WAIT);
    let r = recorded.iter().find(|r| r.body == body).expect("received");
    assert_eq!(env_of(r).as_deref(), Some("two"));
    assert_eq!(
        metric_sum(&gw.metrics(), "pyrogate_config_last_reload_successful", &[]),
        Some(1.0)
    );
    // Alloy's handler takes GET too; other methods are refused.
    let get = support::client::get(gw.admin(), "/-/reload");
    assert_eq!(
        (get.status, get.body_str()),
        (200, "config reloaded\n".into())
    );
    let mut c = Client::connect(gw.admin());
    c.send(b"DELETE /-/reload HTTP/1.1\r\nHost: pyrogate\r\n\r\n");
    assert_eq!(c.read_response().status, 405);
    gw.stop().assert_clean_exit(3, 0);
}

/// Receiver `default` → writes `a` and (when `with_b`) `b`; `b`'s endpoint has one
/// connection per core; uploads are acknowledged once queued.
fn two_writers(a: &str, b: &str, with_b: bool, b_extra: &str, receiver_extra: &str) -> String {
    let targets: &[&str] = if with_b { &["a", "b"] } else { &["a"] };
    let extra = format!("  acknowledge = \"enqueued\"\n{receiver_extra}");
    let mut out = config::receiver("default", targets, "", &extra);
    out.push_str(&config::write("a", &[config::endpoint(a, "")], ""));
    if with_b {
        out.push_str(&config::write(
            "b",
            &[config::endpoint(
                b,
                &format!("    max_connections_per_core = 1\n{b_extra}"),
            )],
            "",
        ));
    }
    out
}

fn a_removed_destination_delivers_what_it_had_queued(driver: Driver) {
    let fast = MockPyroscope::start();
    let slow = MockPyroscope::builder()
        .default_action(Action::ok().delayed(Duration::from_millis(200)))
        .start();
    let gw = Gateway::start(
        &two_writers(&fast.url(), &slow.url(), true, "", ""),
        driver,
        1,
    );
    let queued: Vec<Vec<u8>> = (0..6).map(|i| one_upload(&gw, 100 + i)).collect();
    // One upload at the slow stand-in, the rest queued behind it.
    slow.wait_for_requests(1, WAIT);
    write_config(&gw, &two_writers(&fast.url(), &slow.url(), false, "", ""));
    let response = post_reload(&gw);
    assert_eq!(response.status, 200, "{response:?}");
    let later = one_upload(&gw, 200);

    let drained = slow.wait_for_requests(queued.len(), WAIT);
    let got: Vec<&[u8]> = drained.iter().map(|r| r.body.as_slice()).collect();
    let want: Vec<&[u8]> = queued.iter().map(|b| b.as_slice()).collect();
    assert_eq!(got, want, "every queued upload delivered once, in order");
    fast.wait_for_requests(queued.len() + 1, WAIT);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        slow.request_count(),
        queued.len(),
        "nothing new for the removed one"
    );
    assert!(fast.requests().iter().any(|r| r.body == later));
    let metrics = gw.metrics();
    assert_eq!(
        metric_sum(&metrics, "pyrogate_reload_dropped_uploads_total", &[]),
        Some(0.0),
        "{metrics}"
    );
    // The remaining destination kept its counters.
    assert_eq!(
        metric_sum(
            &metrics,
            "pyroscope_write_sent_profiles_total",
            &[("endpoint", fast.url().as_str())]
        ),
        Some((queued.len() + 1) as f64),
        "{metrics}"
    );
    assert!(
        !metrics.contains(&format!("endpoint=\"{}\"", slow.url())),
        "the removed destination's series are gone:\n{metrics}"
    );
    gw.stop();
}

fn a_removed_destination_counts_what_is_still_queued_after_the_grace_period(driver: Driver) {
    let fast = MockPyroscope::start();
    let hung = MockPyroscope::builder()
        .default_action(Action::Hang)
        .start();
    let b_extra = "    remote_timeout = \"60s\"";
    let grace = "  graceful_shutdown_timeout = \"1s\"";
    let gw = Gateway::start(
        &two_writers(&fast.url(), &hung.url(), true, b_extra, grace),
        driver,
        1,
    );
    for i in 0..3 {
        one_upload(&gw, 300 + i);
    }
    hung.wait_for_requests(1, WAIT);
    write_config(
        &gw,
        &two_writers(&fast.url(), &hung.url(), false, b_extra, grace),
    );
    let reloaded = Instant::now();
    let response = post_reload(&gw);
    assert_eq!(response.status, 200, "{response:?}");
    // One upload hangs at the stand-in, two are queued behind it: those two are dropped.
    let until = Instant::now() + WAIT;
    loop {
        let metrics = gw.metrics();
        let dropped = metric_sum(&metrics, "pyrogate_reload_dropped_uploads_total", &[]);
        if dropped == Some(2.0) {
            assert_eq!(
                metric_sum(&metrics, "pyrogate_reload_dropped_profiles_total", &[]),
                Some(2.0)
            );
            break;
        }
        assert_eq!(dropped, Some(0.0), "{metrics}");
        assert!(Instant::now() < until, "never counted:\n{metrics}");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        reloaded.elapsed() >= Duration::from_millis(900),
        "dropped before the grace period passed"
    );
    assert_eq!(
        hung.request_count(),
        1,
        "the queued uploads were never sent"
    );
    let msg = "endpoint removed by reload: graceful_shutdown_timeout passed, dropping what is still queued";
    wait_logged(&gw, msg, 1);
    let stderr = gw.stderr_text();
    let line = stderr
        .lines()
        .find(|l| logfmt_get(l, "msg").as_deref() == Some(msg))
        .expect("logged");
    assert_eq!(logfmt_get(line, "dropped").as_deref(), Some("2"), "{line}");
    assert_eq!(
        logfmt_get(line, "endpoint").as_deref(),
        Some(hung.url().as_str()),
        "{line}"
    );
    gw.stop();
}

/// Receiver `default` → relabel `tag` (sets `stage` = `stage`) → write `upstream`.
fn relabelled(url: &str, stage: &str) -> String {
    format!(
        r#"pyroscope.receive_http "default" {{
  http {{
    listen_address = "127.0.0.1"
    listen_port    = 0
  }}
  forward_to = [pyroscope.relabel.tag.receiver]
}}
pyroscope.relabel "tag" {{
  forward_to = [pyroscope.write.upstream.receiver]
  rule {{
    target_label = "stage"
    replacement  = "{stage}"
  }}
}}
pyroscope.write "upstream" {{
  endpoint {{
    url = "{url}"
  }}
}}
"#
    )
}

/// The `stage` label of a recorded upload, either API.
fn stage_of(r: &Recorded) -> Option<String> {
    if r.path == PUSH_PATH {
        return r.push_request().series[0]
            .label("stage")
            .map(str::to_string);
    }
    ingest_label(r, "stage")
}

fn new_relabel_rules_apply_after_a_reload_on_both_apis(driver: Driver) {
    let mock = MockPyroscope::start();
    let gw = Gateway::start(&relabelled(&mock.url(), "v1"), driver, 1);
    let mut keep_alive = Client::connect(gw.addr());
    let mut send_both = |seed: u64| {
        let ingest = upload_request(
            &format!("/ingest?name=shop%7Benv%3Dprod%7D&from={seed}"),
            &[("Content-Type", "binary/octet-stream")],
            format!("main;reload {seed}\n").as_bytes(),
        );
        keep_alive.send(&ingest);
        assert_eq!(keep_alive.read_response().status, 200);
        let pushed = push::proto_push(PushRequest::new(vec![Series::new(
            &[("__name__", "cpu"), ("service_name", "shop")],
            vec![Sample::new(format!("pprof {seed}").into_bytes(), "id")],
        )]));
        keep_alive.send(&pushed.http_request(&[]));
        let r = keep_alive.read_response();
        assert_eq!(r.status, 200, "{r:?}");
    };
    send_both(1);
    write_config(&gw, &relabelled(&mock.url(), "v2"));
    let response = post_reload(&gw);
    assert_eq!(response.status, 200, "{response:?}");
    send_both(2);
    let recorded = mock.wait_for_requests(4, WAIT);
    let stages: Vec<(String, Option<String>)> = recorded
        .iter()
        .map(|r| (r.path.clone(), stage_of(r)))
        .collect();
    let v = |s: &str| Some(s.to_string());
    assert_eq!(
        stages,
        [
            ("/ingest".to_string(), v("v1")),
            (PUSH_PATH.to_string(), v("v1")),
            ("/ingest".to_string(), v("v2")),
            (PUSH_PATH.to_string(), v("v2")),
        ]
    );
    // The unchanged destination kept its upstream connection: one for all four uploads.
    assert_eq!(mock.counters().connections, 1, "upstream connections");
    let metrics = gw.metrics();
    assert_eq!(
        metric_sum(
            &metrics,
            "pyroscope_relabel_profiles_processed",
            &[("component_id", "pyroscope.relabel.tag")]
        ),
        Some(4.0),
        "counters continue across the reload:\n{metrics}"
    );
    gw.stop().assert_clean_exit(4, 0);
}

fn a_reload_serves_rotated_tls_certificates_on_the_same_socket(driver: Driver) {
    let pki = Pki::new();
    let mock = MockPyroscope::start();
    let cfg = format!(
        "{}{}",
        config::receiver(
            "default",
            &["upstream"],
            &format!(
                "    tls {{\n      cert_file = \"{}\"\n      key_file = \"{}\"\n    }}",
                pki.path("server.pem"),
                pki.path("server-key.pem"),
            ),
            "",
        ),
        config::write("upstream", &[config::endpoint(&mock.url(), "")], "")
    );
    let gw = Gateway::start(&cfg, driver, 1);
    let request = bodies::node_pprof(1).request(&[]);
    let ok = tls_roundtrip(gw.addr(), pki.client_config(false), &request).unwrap();
    assert!(ok.starts_with("HTTP/1.1 200 OK\r\n"), "{ok}");

    // The files now hold a certificate the client does not trust; the running config still
    // serves the one it read at start.
    replace_file(
        std::path::Path::new(&pki.path("server.pem")),
        &pki.rogue_cert,
    );
    replace_file(
        std::path::Path::new(&pki.path("server-key.pem")),
        &pki.rogue_key,
    );
    let still = tls_roundtrip(gw.addr(), pki.client_config(false), &request).unwrap();
    assert!(still.starts_with("HTTP/1.1 200 OK\r\n"), "{still}");

    let response = post_reload(&gw);
    assert_eq!(response.status, 200, "{response:?}");
    let refused = tls_roundtrip(gw.addr(), pki.client_config(false), &request);
    assert!(
        refused
            .as_ref()
            .is_err_and(|e| e.contains("certificate") || e.contains("Certificate")),
        "the rotated (untrusted) certificate is served after the reload: {refused:?}"
    );
    wait_logged(&gw, "config reloaded", 1);
    assert_eq!(announced(&gw, "default"), vec![gw.addr()], "same socket");
    gw.stop();
}

fn a_reload_changes_client_auth_for_requests_after_it(driver: Driver) {
    let mock = MockPyroscope::start();
    let cfg = |token: &str| {
        format!(
            "{}{}",
            config::receiver(
                "default",
                &["upstream"],
                "",
                &format!("  client_auth {{\n    bearer_token = \"{token}\"\n  }}"),
            ),
            config::write("upstream", &[config::endpoint(&mock.url(), "")], "")
        )
    };
    let gw = Gateway::start(&cfg("first"), driver, 1);
    let send = |c: &mut Client, token: &str, seed: u64| {
        let auth = format!("Bearer {token}");
        c.send(&bodies::node_pprof(seed).request(&[("Authorization", auth.as_str())]));
        c.read_response().status
    };
    // A refused upload's body is not read, so its connection closes: those use their own.
    let mut keep_alive = Client::connect(gw.addr());
    assert_eq!(send(&mut keep_alive, "first", 1), 200);
    assert_eq!(send(&mut Client::connect(gw.addr()), "second", 2), 401);
    write_config(&gw, &cfg("second"));
    let response = post_reload(&gw);
    assert_eq!(response.status, 200, "{response:?}");
    assert_eq!(send(&mut Client::connect(gw.addr()), "first", 3), 401);
    assert_eq!(send(&mut keep_alive, "second", 4), 200);
    mock.wait_for_requests(2, WAIT);
    wait_logged(&gw, "config reloaded", 1);
    assert_eq!(announced(&gw, "default"), vec![gw.addr()], "same socket");
    gw.stop().assert_clean_exit(2, 0);
}

/// The last announced address of receiver `label`.
fn announced(gw: &Gateway, label: &str) -> Vec<std::net::SocketAddr> {
    gw.stderr_text()
        .lines()
        .filter(|l| {
            logfmt_get(l, "msg").as_deref() == Some("receiver listening")
                && logfmt_get(l, "receiver").as_deref() == Some(label)
        })
        .filter_map(|l| logfmt_get(l, "addr")?.parse().ok())
        .collect()
}

/// The announced addresses of receiver `label` once there are `n` (the log reaches the test
/// through a pipe, possibly after the reload's answer).
fn wait_announced(gw: &Gateway, label: &str, n: usize) -> Vec<std::net::SocketAddr> {
    let until = Instant::now() + WAIT;
    loop {
        let got = announced(gw, label);
        if got.len() >= n {
            return got;
        }
        assert!(
            Instant::now() < until,
            "receiver {label} announced {} times, not {n}:\n{}",
            got.len(),
            gw.stderr_text()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn unchanged_listeners_keep_their_sockets_and_changed_ones_are_rebound(driver: Driver) {
    let mock = MockPyroscope::start();
    let write = config::write("upstream", &[config::endpoint(&mock.url(), "")], "");
    let kept = config::receiver("kept", &["upstream"], "", "");
    let moved = |limit: usize| {
        config::receiver(
            "moved",
            &["upstream"],
            &format!("    conn_limit = {limit}"),
            "",
        )
    };
    let gw = Gateway::start(&format!("{kept}{}{write}", moved(100)), driver, 2);
    let kept_addr = gw.receiver("kept");
    let moved_addr = gw.receiver("moved");
    let mut idle = Client::connect(kept_addr);
    idle.send(&bodies::node_pprof(1).request(&[]));
    assert_eq!(idle.read_response().status, 200);

    let added = config::receiver("added", &["upstream"], "", "");
    write_config(&gw, &format!("{kept}{}{added}{write}", moved(200)));
    let response = post_reload(&gw);
    assert_eq!(response.status, 200, "{response:?}");

    // The keep-alive connection to the unchanged receiver is still served.
    idle.send(&bodies::node_pprof(2).request(&[]));
    assert_eq!(idle.read_response().status, 200);
    wait_logged(&gw, "config reloaded", 1);
    assert_eq!(announced(&gw, "kept"), vec![kept_addr], "announced once");
    let mut c = Client::connect(kept_addr);
    c.send(&bodies::node_pprof(3).request(&[]));
    assert_eq!(c.read_response().status, 200);

    let moved_now = wait_announced(&gw, "moved", 2);
    assert_eq!(moved_now.len(), 2, "rebound: announced again");
    let mut c = Client::connect(moved_now[1]);
    c.send(&bodies::node_pprof(4).request(&[]));
    assert_eq!(c.read_response().status, 200);
    if moved_now[1] != moved_addr {
        // Port 0 gave the new sockets a new port; the old one is closed.
        let refused = match Client::try_connect(moved_addr) {
            Err(_) => true,
            Ok(mut c) => {
                c.try_send(&bodies::node_pprof(5).request(&[])).is_err()
                    || !matches!(c.try_read_response(), Ok(Some(_)))
            }
        };
        assert!(refused, "the old socket of a rebound receiver still serves");
    }
    let added_addr = wait_announced(&gw, "added", 1)[0];
    let mut c = Client::connect(added_addr);
    c.send(&bodies::node_pprof(6).request(&[]));
    assert_eq!(c.read_response().status, 200);
    mock.wait_for_requests(5, WAIT);
    gw.stop().assert_clean_exit(5, 0);
}

/// A receiver `label` on 127.0.0.1:`port` with `conn_limit`, forwarding to `upstream`.
fn fixed_receiver(label: &str, port: u16, conn_limit: usize) -> String {
    format!(
        "pyroscope.receive_http \"{label}\" {{\n  http {{\n    listen_address = \"127.0.0.1\"\n    listen_port    = {port}\n    conn_limit     = {conn_limit}\n  }}\n  forward_to = [pyroscope.write.upstream.receiver]\n}}\n"
    )
}

fn a_changed_listener_on_a_fixed_port_is_rebound_there_and_a_port_in_use_is_refused(
    driver: Driver,
) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let mock = MockPyroscope::start();
    let write = config::write("upstream", &[config::endpoint(&mock.url(), "")], "");
    let gw = Gateway::start(
        &format!("{}{write}", fixed_receiver("fixed", port, 100)),
        driver,
        2,
    );
    let addr = gw.addr();
    assert_eq!(addr.port(), port);
    let limit = |gw: &Gateway| {
        metric_sum(
            &gw.metrics(),
            "pyroscope_receive_http_tcp_connections_limit",
            &[("component_id", "pyroscope.receive_http.fixed")],
        )
    };
    assert_eq!(limit(&gw), Some(100.0));

    write_config(
        &gw,
        &format!("{}{write}", fixed_receiver("fixed", port, 200)),
    );
    let response = post_reload(&gw);
    assert_eq!(response.status, 200, "{response:?}");
    assert_eq!(
        wait_announced(&gw, "fixed", 2),
        vec![addr, addr],
        "rebound on the same port"
    );
    assert_eq!(limit(&gw), Some(200.0));
    let mut c = Client::connect(addr);
    c.send(&bodies::node_pprof(1).request(&[]));
    assert_eq!(c.read_response().status, 200);

    // Another socket (not SO_REUSEPORT) holds this port: the reload must not share it.
    let foreign = std::net::TcpListener::bind("127.0.0.1:0").expect("a foreign listener");
    let taken = foreign.local_addr().expect("its address").port();
    let clash = format!(
        "{}{}{write}",
        fixed_receiver("fixed", port, 200),
        fixed_receiver("clash", taken, 10)
    );
    write_config(&gw, &clash);
    let response = post_reload(&gw);
    assert_eq!(response.status, 400, "{response:?}");
    let body = response.body_str();
    assert!(
        body.starts_with(&format!(
            "receiver \"clash\": cannot listen on 127.0.0.1:{taken}: "
        )),
        "{body}"
    );
    let mut c = Client::connect(addr);
    c.send(&bodies::node_pprof(2).request(&[]));
    assert_eq!(c.read_response().status, 200, "the running config stays");
    wait_logged(
        &gw,
        "config reload failed; the running configuration stays",
        1,
    );
    assert!(announced(&gw, "clash").is_empty());
    mock.wait_for_requests(2, WAIT);
    gw.stop().assert_clean_exit(2, 0);
}

both_drivers!(
    post_reload_under_load_applies_new_external_labels_without_a_failed_or_lost_upload,
    sighup_reload_under_load_applies_new_external_labels_without_a_failed_or_lost_upload,
    an_invalid_config_is_answered_400_with_its_diagnostics_and_the_running_one_stays,
    a_removed_destination_delivers_what_it_had_queued,
    a_removed_destination_counts_what_is_still_queued_after_the_grace_period,
    new_relabel_rules_apply_after_a_reload_on_both_apis,
    a_reload_serves_rotated_tls_certificates_on_the_same_socket,
    a_reload_changes_client_auth_for_requests_after_it,
    unchanged_listeners_keep_their_sockets_and_changed_ones_are_rebound,
    a_changed_listener_on_a_fixed_port_is_rebound_there_and_a_port_in_use_is_refused,
);
