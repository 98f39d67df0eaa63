//! End to end: the generator through a real pyrogate (the workspace's debug binary) to two
//! sinks, with the integrity check asserting exact counts; and the sink's fault injection seen
//! from the generator, deterministic for one connection and a fixed seed.
//!
//! The pyrogate binary is `target/debug/pyrogate`, which `cargo test --workspace` builds for the
//! root package's own tests; when it is missing (`cargo test -p loadtest` alone) the test builds
//! it with `cargo build -p pyrogate --bin pyrogate` first. Everything runs on 127.0.0.1 and is
//! bounded by an upload count and a time limit; pyrogate is stopped by PID.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use loadtest::bodies::{BodyPool, Mix};
use loadtest::compare;
use loadtest::generator::{self, Plan, Schedule};
use loadtest::integrity::{Faults, Latency, Sink, SinkConfig};

/// Uploads the e2e run sends.
const UPLOADS: u64 = 300;
/// The run's time bound (it ends far sooner: the count is the limit).
const TIME_BOUND: Duration = Duration::from_secs(120);

fn pyrogate_debug_binary() -> PathBuf {
    // target/debug/deps/e2e-<hash> -> target/debug/pyrogate
    let exe = std::env::current_exe().expect("test executable path");
    let debug_dir = exe.parent().and_then(|d| d.parent()).expect("target/debug");
    let bin = debug_dir.join("pyrogate");
    if !bin.is_file() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
            .args(["build", "-p", "pyrogate", "--bin", "pyrogate"])
            .status()
            .expect("running cargo build for pyrogate");
        assert!(
            status.success(),
            "cargo build -p pyrogate --bin pyrogate failed"
        );
    }
    bin
}

/// Sends `uploads` uploads from `pool` (generator run `run`) over 8 keep-alive connections in a
/// closed loop; every one must be answered 200. Returns the run (its statuses feed the
/// integrity check).
/// Two sinks seeded `first` and `first + 1`, and their addresses.
fn two_sinks(first: u64) -> (Vec<Sink>, Vec<SocketAddr>) {
    let sinks: Vec<Sink> = (first..first + 2)
        .map(|seed| {
            Sink::start(SinkConfig {
                seed,
                ..SinkConfig::default()
            })
            .expect("sink")
        })
        .collect();
    let addrs = sinks.iter().map(Sink::addr).collect();
    (sinks, addrs)
}

fn send_all_accepted(
    gateway: &compare::Started,
    pool: &BodyPool,
    run: u32,
    uploads: u64,
    name: &str,
) -> generator::RunResult {
    let plan = Plan {
        connections: 8,
        schedule: Schedule::Closed,
        duration: TIME_BOUND,
        max_uploads: uploads,
        timeout: Duration::from_secs(60),
    };
    let make = |i: u64| pool.request(generator::id(run, i));
    let result = generator::drive(gateway.addr(), &plan, &make, name, false);
    assert_eq!(result.outcomes.errors_text(), "");
    assert_eq!(result.accepted(), uploads);
    result
}

/// pyrogate's `/metrics` text.
fn scrape(gateway: &compare::Started) -> String {
    let (status, metrics) = generator::http_get(
        gateway.admin().expect("admin address"),
        "/metrics",
        Duration::from_secs(10),
    )
    .expect("metrics");
    assert_eq!(status, 200);
    String::from_utf8_lossy(&metrics).into_owned()
}

#[test]
fn every_accepted_upload_reaches_both_sinks_exactly_once_through_pyrogate() {
    let (sinks, addrs) = two_sinks(0);
    let dir = tempfile::tempdir().expect("temp dir");
    let gateway = compare::start_pyrogate(&pyrogate_debug_binary(), 1, &addrs, dir.path())
        .expect("pyrogate starts");

    // Every SDK shape, 2 KB to 4 MB.
    let pool = BodyPool::new(Mix::All, 20, 50, 7);
    let run = 0x5eed_0001;
    let result = send_all_accepted(&gateway, &pool, run, UPLOADS, "e2e");
    let metrics = scrape(&gateway);
    let dropped = generator::sum_metric(&metrics, "pyrogate_dropped_total");
    assert_eq!(dropped, 0);
    // One profile per upload (Push bodies carry one series with one sample), per endpoint.
    assert_eq!(
        generator::sum_metric(&metrics, "pyroscope_write_sent_profiles_total"),
        2 * UPLOADS
    );

    let named: Vec<_> = sinks
        .iter()
        .enumerate()
        .map(|(i, s)| (format!("sink{i}"), s.stats()))
        .collect();
    let integrity = generator::check_integrity(run, &result.statuses, &named, Some(dropped));
    assert!(integrity.passed(), "{}", integrity.summary());
    for s in &integrity.sinks {
        assert_eq!(
            (
                s.exactly_once,
                s.missing,
                s.duplicated,
                s.unacknowledged,
                s.corrupt
            ),
            (UPLOADS, 0, 0, 0, 0),
            "{}",
            s.name
        );
    }
    for (_, stats) in &named {
        assert_eq!(stats.requests, UPLOADS);
        assert_eq!(stats.statuses.get(&200), Some(&UPLOADS));
        assert_eq!(stats.unmarked, 0);
        // pyrogate adds `service_name` to every /ingest name; Push labels pass through sorted.
        assert!(
            stats.label_sets.keys().all(|k| k.contains("service_name")),
            "{:?}",
            stats.label_sets.keys().next()
        );
    }
    assert_eq!(gateway.stop(), None, "pyrogate exits 0 on SIGTERM");
}

#[test]
fn jfr_and_the_python_and_dotnet_sdk_pushes_reach_both_sinks_exactly_once_through_pyrogate() {
    let (sinks, addrs) = two_sinks(20);
    let dir = tempfile::tempdir().expect("temp dir");
    let gateway = compare::start_pyrogate(&pyrogate_debug_binary(), 1, &addrs, dir.path())
        .expect("pyrogate starts");
    const EACH: u64 = 60;
    for (k, mix) in [Mix::Jfr, Mix::PushPython, Mix::PushDotnet]
        .into_iter()
        .enumerate()
    {
        let pool = BodyPool::new(mix, 10, 20, 5);
        let run = 0x5eed_0100 + k as u32;
        let result = send_all_accepted(&gateway, &pool, run, EACH, mix.name());
        let named: Vec<_> = sinks
            .iter()
            .enumerate()
            .map(|(i, s)| (format!("sink{i}"), s.stats()))
            .collect();
        let integrity = generator::check_integrity(run, &result.statuses, &named, Some(0));
        assert!(integrity.passed(), "{mix:?}: {}", integrity.summary());
        for s in &integrity.sinks {
            assert_eq!(
                (s.exactly_once, s.missing, s.duplicated, s.corrupt),
                (EACH, 0, 0, 0),
                "{mix:?} {}",
                s.name
            );
        }
    }
    let metrics = scrape(&gateway);
    assert_eq!(generator::sum_metric(&metrics, "pyrogate_dropped_total"), 0);
    // One profile per upload (one series with one sample per Push), per destination.
    assert_eq!(
        generator::sum_metric(&metrics, "pyroscope_write_sent_profiles_total"),
        2 * 3 * EACH
    );
    for s in &sinks {
        let stats = s.stats();
        assert_eq!(
            (stats.requests, stats.unmarked, stats.corrupt),
            (3 * EACH, 0, 0)
        );
    }
    assert_eq!(gateway.stop(), None, "pyrogate exits 0 on SIGTERM");
}

#[test]
fn injected_faults_reach_the_client_in_deterministic_numbers() {
    let sink = Sink::start(SinkConfig {
        seed: 11,
        faults: Faults {
            latency: Latency::Fixed(Duration::from_micros(200)),
            error_rate: 0.10,
            error_status: 502,
            throttle_rate: 0.05,
            retry_after_secs: 7,
            reset_rate: 0.05,
            hang_rate: 0.02,
            hang_for: Duration::from_millis(20),
        },
        ..SinkConfig::default()
    })
    .expect("sink");
    let pool = BodyPool::new(Mix::Go, 5, 5, 3);
    let run = 0x5eed_0002;
    // One connection: the sink seeds each connection's fault sequence from its index, so the
    // outcome of every upload is fixed.
    let plan = Plan {
        connections: 1,
        schedule: Schedule::Closed,
        duration: TIME_BOUND,
        max_uploads: 400,
        timeout: Duration::from_secs(10),
    };
    let make = |i: u64| pool.request(generator::id(run, i));
    let result = generator::drive(sink.addr(), &plan, &make, "faults", false);
    let stats = sink.stats();
    let (ok, e502, e429) = (
        result.outcomes.get("200"),
        result.outcomes.get("502"),
        result.outcomes.get("429"),
    );
    let (resets, hangs) = (stats.resets, stats.hangs);
    assert_eq!(ok + e502 + e429 + resets + hangs, 400);
    assert_eq!(
        result.outcomes.get("reset") + result.outcomes.get("closed"),
        resets + hangs
    );
    assert_eq!((ok, e502, e429, resets, hangs), (301, 48, 17, 18, 16));
    // Only the uploads answered 200 count as delivered.
    let integrity =
        generator::check_integrity(run, &result.statuses, &[("sink".into(), stats)], None);
    assert!(integrity.passed(), "{}", integrity.summary());
    assert_eq!(integrity.sinks[0].exactly_once, ok);
}

#[test]
fn a_capture_replayed_reaches_the_sink_with_every_checksum_intact() {
    let dir = tempfile::tempdir().expect("temp dir");
    let capture = dir.path().join("capture");
    let config = format!(
        "pyroscope.receive_http \"loadtest\" {{\n\thttp {{\n\t\tlisten_address = \"127.0.0.1\"\n\t\tlisten_port    = 0\n\t}}\n\tforward_to = [pyroscope.write.capture.receiver]\n}}\n\npyroscope.write \"capture\" {{\n\tendpoint {{\n\t\turl = \"file://{}\"\n\t}}\n}}\n",
        capture.display()
    );
    let gateway = compare::start_pyrogate_with(&pyrogate_debug_binary(), 1, &config, dir.path())
        .expect("pyrogate starts");
    let pool = BodyPool::new(Mix::All, 10, 10, 5);
    let run = 0x5eed_0003;
    let captured = 60;
    let plan = Plan {
        connections: 4,
        schedule: Schedule::Closed,
        duration: TIME_BOUND,
        max_uploads: captured,
        timeout: Duration::from_secs(60),
    };
    let make = |i: u64| pool.request(generator::id(run, i));
    let sent = generator::drive(gateway.addr(), &plan, &make, "capture", false);
    assert_eq!(sent.accepted(), captured);
    assert_eq!(gateway.stop(), None);

    let mut records = pyrogate::capture::read_dir_records(&capture).expect("capture records");
    assert_eq!(records.len() as u64, captured);
    loadtest::replay::sort_records(&mut records);
    let offsets = loadtest::replay::offsets(&records, 100.0);
    let sink = Sink::start(SinkConfig::default()).expect("sink");
    let plan = Plan {
        connections: 2,
        schedule: Schedule::Offsets(offsets.into()),
        duration: TIME_BOUND,
        max_uploads: captured,
        timeout: Duration::from_secs(60),
    };
    let requests: Vec<_> = records.iter().map(loadtest::replay::request).collect();
    let make = |i: u64| requests[i as usize].clone();
    let replayed = generator::drive(sink.addr(), &plan, &make, "replay", false);
    assert_eq!(replayed.accepted(), captured);
    // The trailers carry the original run's identities: each one arrived exactly once, intact.
    let stats = sink.stats();
    assert_eq!(stats.corrupt, 0);
    assert_eq!(stats.unmarked, 0);
    let counts = &stats.deliveries[&run];
    assert_eq!(counts.len() as u64, captured);
    assert!(counts.iter().all(|&c| c == 1), "{counts:?}");
}

#[test]
fn the_relabel_system_delivers_every_upload_with_relabelled_labels() {
    let (sinks, addrs) = two_sinks(20);
    let dir = tempfile::tempdir().expect("temp dir");
    let gateway = compare::start_pyrogate_with(
        &pyrogate_debug_binary(),
        1,
        &compare::pyrogate_relabel_config(&addrs),
        dir.path(),
    )
    .expect("pyrogate starts");
    // Every SDK shape: /ingest (labels in `name`) and Push (labels in the protobuf).
    let pool = BodyPool::new(Mix::All, 20, 50, 9);
    let run = 0x5eed_0004;
    let uploads = 200;
    let result = send_all_accepted(&gateway, &pool, run, uploads, "relabel");
    let metrics = scrape(&gateway);
    let dropped = generator::sum_metric(&metrics, "pyrogate_dropped_total");
    assert_eq!(dropped, 0);
    let counters = compare::RelabelCounters::from_metrics(&metrics);
    assert_eq!(counters.dropped, 0);
    assert_eq!(counters.processed, uploads);
    assert_eq!(counters.written, uploads);
    assert_eq!(counters.cache_hits + counters.cache_misses, uploads);

    let named: Vec<_> = sinks
        .iter()
        .enumerate()
        .map(|(i, s)| (format!("sink{i}"), s.stats()))
        .collect();
    let integrity = generator::check_integrity(run, &result.statuses, &named, Some(dropped));
    assert!(integrity.passed(), "{}", integrity.summary());
    for s in &integrity.sinks {
        assert_eq!((s.exactly_once, s.missing), (uploads, 0), "{}", s.name);
    }
    for (name, stats) in &named {
        for key in stats.label_sets.keys() {
            // The rules touched every label set that arrived: env renamed, shard and zone added.
            assert!(key.contains("environment="), "{name}: {key}");
            assert!(!key.contains("env="), "{name}: {key}");
            assert!(key.contains("shard="), "{name}: {key}");
            assert!(key.contains("zone="), "{name}: {key}");
        }
    }
    assert_eq!(gateway.stop(), None, "pyrogate exits 0 on SIGTERM");
}
