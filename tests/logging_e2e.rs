//! End-to-end: the log lines the gateway writes, in both formats of the `logging` block.
//!
//! Covers, under both drivers (README, "Logs"):
//! - logfmt (the default): every startup line is `ts=… level=… msg=…` first, then the event's
//!   fields, with `ts` in Go's RFC 3339 nanosecond form; the `receiver listening`,
//!   `admin listening` and `pyrogate ready` lines have exactly their keys, in order;
//! - at `info`, uploads add no line (no line per request);
//! - `format = "json"`: every startup line is one JSON object whose keys start `ts`, `level`,
//!   `msg`, with the same events and fields (numbers as numbers);
//! - a destination that starts failing logs `destination down` once (warn), its per-upload
//!   failure warnings are rate-limited (one line for several failures), and once deliveries
//!   succeed again it logs `destination up` once (info) with the count of failed uploads.

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::client::Client;
use support::config;
use support::gateway::{STARTUP_TIMEOUT, binary, logfmt, logfmt_get};
use support::{Action, Driver, Gateway, MockPyroscope, bodies, both_drivers};

/// Whether `ts` is Go's `time.RFC3339Nano` in UTC: `YYYY-MM-DDTHH:MM:SS[.fraction]Z`, the
/// fraction 1–9 digits without a trailing zero.
fn is_rfc3339_nano_utc(ts: &str) -> bool {
    let b = ts.as_bytes();
    let digits =
        |r: std::ops::Range<usize>| b.get(r).is_some_and(|s| s.iter().all(u8::is_ascii_digit));
    let fixed = b.len() >= 20
        && digits(0..4)
        && b[4] == b'-'
        && digits(5..7)
        && b[7] == b'-'
        && digits(8..10)
        && b[10] == b'T'
        && digits(11..13)
        && b[13] == b':'
        && digits(14..16)
        && b[16] == b':'
        && digits(17..19);
    if !fixed || !ts.ends_with('Z') {
        return false;
    }
    match &ts[19..ts.len() - 1] {
        "" => true,
        frac => {
            let f = frac.strip_prefix('.').unwrap_or("");
            (1..=9).contains(&f.len()) && f.bytes().all(|c| c.is_ascii_digit()) && !f.ends_with('0')
        }
    }
}

/// The keys of a logfmt line, in order.
fn keys(line: &str) -> Vec<String> {
    logfmt(line).into_iter().map(|(k, _)| k).collect()
}

/// The lines whose `msg` is `msg`.
fn lines_with<'a>(lines: &'a [String], msg: &str) -> Vec<&'a String> {
    lines
        .iter()
        .filter(|l| logfmt_get(l, "msg").as_deref() == Some(msg))
        .collect()
}

fn stderr_lines(gw: &Gateway) -> Vec<String> {
    gw.stderr_text().lines().map(str::to_string).collect()
}

fn logfmt_startup_lines_start_with_ts_level_msg(driver: Driver) {
    let mock = MockPyroscope::start();
    let gw = Gateway::start(&config::single(&mock.url(), "", "", ""), driver, 2);
    let lines = stderr_lines(&gw);
    assert!(!lines.is_empty());
    for line in &lines {
        let k = keys(line);
        assert_eq!(
            k.get(..3),
            Some(&["ts", "level", "msg"].map(String::from)[..]),
            "{line}"
        );
        let ts = logfmt_get(line, "ts").unwrap_or_default();
        assert!(is_rfc3339_nano_utc(&ts), "ts={ts:?} in {line}");
        let level = logfmt_get(line, "level").unwrap_or_default();
        assert!(
            ["debug", "info", "warn", "error"].contains(&level.as_str()),
            "{line}"
        );
    }
    for (msg, want) in [
        ("receiver listening", vec!["receiver", "addr"]),
        ("admin listening", vec!["addr"]),
        ("pyrogate ready", vec!["cores", "driver"]),
    ] {
        let found = lines_with(&lines, msg);
        assert_eq!(found.len(), 1, "one `{msg}` line in:\n{}", lines.join("\n"));
        let line = found[0];
        let mut expected = vec!["ts", "level", "msg"];
        expected.extend(want);
        assert_eq!(keys(line), expected, "{line}");
        assert_eq!(logfmt_get(line, "level").as_deref(), Some("info"), "{line}");
        // A message with a space is quoted, as slog quotes it.
        assert!(line.contains(&format!(" msg=\"{msg}\"")), "{line}");
    }
    let ready = lines_with(&lines, "pyrogate ready")[0].clone();
    assert_eq!(logfmt_get(&ready, "cores").as_deref(), Some("2"));
    assert_eq!(logfmt_get(&ready, "driver").as_deref(), Some(driver.flag()));

    // Uploads at `info` add no line.
    let before = stderr_lines(&gw).len();
    for i in 0..10 {
        let mut client = Client::connect(gw.addr());
        client.send(&bodies::folded(40 + i).request(&[]));
        assert_eq!(client.read_response().status, 200);
    }
    assert_eq!(mock.request_count(), 10);
    let after = stderr_lines(&gw);
    assert_eq!(
        after.len(),
        before,
        "lines logged for uploads:\n{}",
        after[before..].join("\n")
    );
}

/// Starts the gateway with `format = "json"` and returns its stderr lines up to and including
/// the `pyrogate ready` one (bounded by the startup timeout); the process is killed after.
fn json_startup_lines(url: &str, driver: Driver) -> Vec<String> {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("config.alloy");
    let cfg = format!(
        "logging {{\n  level  = \"info\"\n  format = \"json\"\n}}\n{}",
        config::single(url, "", "", "")
    );
    std::fs::write(&path, cfg).expect("write config");
    let mut child = Command::new(binary())
        .arg("run")
        .arg(format!("--driver={}", driver.flag()))
        .arg("--cores=1")
        .arg("--server.http.listen-addr=127.0.0.1:0")
        .arg(&path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn pyrogate");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + STARTUP_TIMEOUT;
    let mut lines = Vec::new();
    let ready = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => {
                let done = line.contains("\"msg\":\"pyrogate ready\"");
                lines.push(line);
                if done {
                    break true;
                }
            }
            Err(_) => break false,
        }
    };
    let _ = child.kill();
    let _ = child.wait();
    drop(rx);
    let _ = reader.join();
    assert!(ready, "no `pyrogate ready` line:\n{}", lines.join("\n"));
    lines
}

fn json_startup_lines_are_objects_with_ts_level_msg_first(driver: Driver) {
    let mock = MockPyroscope::start();
    let lines = json_startup_lines(&mock.url(), driver);
    let mut seen = Vec::new();
    for line in &lines {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        let obj = v
            .as_object()
            .unwrap_or_else(|| panic!("not an object: {line}"));
        let ts = obj.get("ts").and_then(|t| t.as_str()).unwrap_or_default();
        assert!(is_rfc3339_nano_utc(ts), "ts={ts:?} in {line}");
        let level = obj
            .get("level")
            .and_then(|l| l.as_str())
            .unwrap_or_default();
        assert!(
            ["debug", "info", "warn", "error"].contains(&level),
            "{line}"
        );
        let msg = obj.get("msg").and_then(|m| m.as_str()).unwrap_or_default();
        assert!(!msg.is_empty(), "{line}");
        // Key order: ts, level, msg, then the fields. Rebuilt from the parsed values, the
        // line must come out byte for byte.
        let prefix = format!(
            "{{\"ts\":{},\"level\":{},\"msg\":{}",
            serde_json::to_string(ts).unwrap_or_default(),
            serde_json::to_string(level).unwrap_or_default(),
            serde_json::to_string(msg).unwrap_or_default(),
        );
        assert!(line.starts_with(&prefix), "{line}\nshould start {prefix}");
        seen.push((msg.to_string(), obj.clone(), line.clone()));
    }
    let find = |msg: &str| {
        let found: Vec<_> = seen.iter().filter(|(m, _, _)| m == msg).collect();
        assert_eq!(found.len(), 1, "one `{msg}` line in:\n{}", lines.join("\n"));
        found[0].clone()
    };
    let (_, ready, raw) = find("pyrogate ready");
    assert_eq!(ready.get("cores"), Some(&serde_json::json!(1)), "{raw}");
    assert_eq!(
        ready.get("driver"),
        Some(&serde_json::json!(driver.flag())),
        "{raw}"
    );
    assert!(
        raw.ends_with(&format!(",\"cores\":1,\"driver\":\"{}\"}}", driver.flag())),
        "fields in the order written: {raw}"
    );
    let (_, rx_line, raw) = find("receiver listening");
    assert_eq!(
        rx_line.get("receiver"),
        Some(&serde_json::json!("default")),
        "{raw}"
    );
    assert!(
        rx_line
            .get("addr")
            .and_then(|a| a.as_str())
            .is_some_and(|a| a.parse::<std::net::SocketAddr>().is_ok()),
        "{raw}"
    );
    assert_eq!(rx_line.len(), 5, "{raw}");
    find("admin listening");
}

fn a_failing_destination_logs_down_once_and_up_once(driver: Driver) {
    let mock = MockPyroscope::builder()
        .default_action(Action::status(503))
        .start();
    let url = mock.url();
    let endpoint = "    min_backoff_period = \"10ms\"\n    max_backoff_period = \"20ms\"\n    max_backoff_retries = 2";
    let gw = Gateway::start(&config::single(&url, endpoint, "", ""), driver, 1);
    const FAILED: usize = 3;
    for i in 0..FAILED {
        let mut client = Client::connect(gw.addr());
        client.send(&bodies::folded(60 + i as u64).request(&[]));
        assert_eq!(client.read_response().status, 503);
    }
    let lines = stderr_lines(&gw);
    let down = lines_with(&lines, "destination down");
    assert_eq!(down.len(), 1, "{}", lines.join("\n"));
    assert_eq!(logfmt_get(down[0], "level").as_deref(), Some("warn"));
    assert_eq!(
        logfmt_get(down[0], "endpoint").as_deref(),
        Some(url.as_str())
    );
    assert!(
        logfmt_get(down[0], "cause").is_some_and(|c| c.contains("status=503")),
        "{}",
        down[0]
    );
    // The per-upload failure warnings are rate-limited: one line for the three failures.
    let failures: Vec<&String> = lines
        .iter()
        .filter(|l| {
            logfmt_get(l, "msg").is_some_and(|m| m.starts_with("failed to ingest to endpoint"))
        })
        .collect();
    assert_eq!(failures.len(), 1, "{}", lines.join("\n"));
    assert_eq!(logfmt_get(failures[0], "suppressed").as_deref(), Some("0"));

    // Deliveries succeed again: `destination up` once the failures have settled. A bounded
    // poll, not a timing assertion.
    mock.set_default(Action::ok());
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut sent = 0;
    let up = loop {
        let mut client = Client::connect(gw.addr());
        client.send(&bodies::folded(70 + sent).request(&[]));
        assert_eq!(client.read_response().status, 200);
        sent += 1;
        let lines = stderr_lines(&gw);
        let up: Vec<String> = lines_with(&lines, "destination up")
            .into_iter()
            .cloned()
            .collect();
        if !up.is_empty() {
            break up;
        }
        assert!(
            Instant::now() < deadline,
            "no `destination up`:\n{}",
            lines.join("\n")
        );
        std::thread::sleep(Duration::from_millis(250));
    };
    assert_eq!(up.len(), 1);
    assert_eq!(logfmt_get(&up[0], "level").as_deref(), Some("info"));
    assert_eq!(
        logfmt_get(&up[0], "endpoint").as_deref(),
        Some(url.as_str())
    );
    assert_eq!(
        logfmt_get(&up[0], "failed_uploads").as_deref(),
        Some(FAILED.to_string().as_str()),
        "{}",
        up[0]
    );
    assert_eq!(
        keys(&up[0]),
        [
            "ts",
            "level",
            "msg",
            "endpoint",
            "down_for",
            "failed_uploads"
        ]
    );
    // More successes add nothing.
    let before = stderr_lines(&gw).len();
    for i in 0..3 {
        let mut client = Client::connect(gw.addr());
        client.send(&bodies::folded(90 + i).request(&[]));
        assert_eq!(client.read_response().status, 200);
    }
    assert_eq!(stderr_lines(&gw).len(), before);
}

both_drivers!(
    logfmt_startup_lines_start_with_ts_level_msg,
    json_startup_lines_are_objects_with_ts_level_msg_first,
    a_failing_destination_logs_down_once_and_up_once,
);
