//! `Gateway`: runs the real `pyrogate` binary as a child process for one test.
//!
//! Owns: writing the config to a temporary directory, spawning
//! `pyrogate run --driver=<d> --cores=<n> --server.http.listen-addr=127.0.0.1:0 <path>`,
//! reading the startup lines the binary logs to stderr (receiver and admin addresses,
//! `pyrogate ready`) within a bounded wait, scraping `/metrics`, and stopping the process with
//! SIGTERM (then SIGKILL after a bound). Does not own anything inside the gateway: it relies only
//! on the command line, log lines, signals and admin routes of the README's "Command line".

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long the gateway may take to print `pyrogate ready`.
pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(20);
/// How long `stop()` waits after SIGTERM before SIGKILL.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// Which monoio driver the gateway is forced to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Driver {
    Uring,
    Legacy,
}

impl Driver {
    /// The `--driver=` value.
    pub fn flag(self) -> &'static str {
        match self {
            Driver::Uring => "uring",
            Driver::Legacy => "legacy",
        }
    }
}

/// Splits one logfmt line into `(key, value)` pairs, unquoting `"..."` values.
pub fn logfmt(line: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.peek().is_none() {
            return out;
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c.is_whitespace() {
                break;
            }
            key.push(c);
            chars.next();
        }
        let mut value = String::new();
        if chars.peek() == Some(&'=') {
            chars.next();
            if chars.peek() == Some(&'"') {
                chars.next();
                while let Some(c) = chars.next() {
                    match c {
                        '"' => break,
                        '\\' => {
                            if let Some(e) = chars.next() {
                                value.push(match e {
                                    'n' => '\n',
                                    't' => '\t',
                                    other => other,
                                });
                            }
                        }
                        c => value.push(c),
                    }
                }
            } else {
                while let Some(&c) = chars.peek() {
                    if c.is_whitespace() {
                        break;
                    }
                    value.push(c);
                    chars.next();
                }
            }
        }
        out.push((key, value));
    }
}

/// The value of `key` in a logfmt line.
pub fn logfmt_get(line: &str, key: &str) -> Option<String> {
    logfmt(line)
        .into_iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v)
}

/// How the gateway ended.
#[derive(Debug)]
pub struct Stopped {
    pub status: ExitStatus,
    /// Everything it wrote to stderr.
    pub stderr: String,
}

impl Stopped {
    /// The last stderr line whose `msg` is `msg`.
    pub fn log_line(&self, msg: &str) -> Option<String> {
        self.stderr
            .lines()
            .rev()
            .find(|l| logfmt_get(l, "msg").as_deref() == Some(msg))
            .map(str::to_string)
    }

    /// Asserts exit status 0 and the `delivered=` and `dropped=` counts of the
    /// `shutdown complete` line.
    pub fn assert_clean_exit(&self, delivered: u64, dropped: u64) {
        assert!(
            self.status.success(),
            "exit {:?}; stderr:\n{}",
            self.status,
            self.stderr
        );
        let done = self
            .log_line("shutdown complete")
            .unwrap_or_else(|| panic!("no `shutdown complete` line:\n{}", self.stderr));
        assert_eq!(
            logfmt_get(&done, "delivered"),
            Some(delivered.to_string()),
            "{done}"
        );
        assert_eq!(
            logfmt_get(&done, "dropped"),
            Some(dropped.to_string()),
            "{done}"
        );
    }
}

/// A running `pyrogate run` child process.
#[derive(Debug)]
pub struct Gateway {
    child: Option<Child>,
    pid: u32,
    dir: tempfile::TempDir,
    config_path: PathBuf,
    receivers: BTreeMap<String, SocketAddr>,
    admin: SocketAddr,
    stderr: Arc<Mutex<Vec<String>>>,
    reader: Option<JoinHandle<()>>,
    pub driver: Driver,
    pub cores: usize,
}

/// The gateway binary: `$PYROGATE_E2E_BIN` when set (to run a suite against another build,
/// e.g. a release binary), else `pyrogate` in the Cargo target directory of the running test
/// executable (`target/<profile>/deps/<test>` → `target/<profile>/pyrogate`), which Cargo
/// builds before the root package's integration tests run.
pub fn binary() -> PathBuf {
    if let Some(path) = std::env::var_os("PYROGATE_E2E_BIN") {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().expect("test executable path");
    let mut dir = exe.parent();
    while let Some(d) = dir {
        let candidate = d.join("pyrogate");
        if candidate.is_file() {
            return candidate;
        }
        dir = d
            .parent()
            .filter(|p| p.file_name().is_some_and(|n| n != "target"));
    }
    panic!(
        "no pyrogate binary next to {} (build it with `cargo build --bin pyrogate`, or set PYROGATE_E2E_BIN)",
        exe.display()
    )
}

/// Maps a wildcard listen address to loopback, so a client can connect to it.
fn connectable(addr: SocketAddr) -> SocketAddr {
    if addr.ip().is_unspecified() {
        SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), addr.port())
    } else {
        addr
    }
}

impl Gateway {
    /// Starts the gateway on `config` and waits (bounded) for `pyrogate ready`; panics with
    /// the collected stderr if it does not get there.
    pub fn start(config: &str, driver: Driver, cores: usize) -> Gateway {
        Self::try_start(config, driver, cores).unwrap_or_else(|e| panic!("{e}"))
    }

    pub fn try_start(config: &str, driver: Driver, cores: usize) -> Result<Gateway, String> {
        Self::try_start_with_args(config, driver, cores, &[])
    }

    /// [`Gateway::start`] with `extra` flags of `run` placed before the config path (e.g.
    /// `--stability.level=public-preview`).
    pub fn start_with_args(config: &str, driver: Driver, cores: usize, extra: &[&str]) -> Gateway {
        Self::try_start_with_args(config, driver, cores, extra).unwrap_or_else(|e| panic!("{e}"))
    }

    pub fn try_start_with_args(
        config: &str,
        driver: Driver,
        cores: usize,
        extra: &[&str],
    ) -> Result<Gateway, String> {
        let dir = tempfile::tempdir().map_err(|e| format!("tempdir: {e}"))?;
        let config_path = dir.path().join("config.alloy");
        std::fs::write(&config_path, config).map_err(|e| format!("write config: {e}"))?;
        let mut child = Command::new(binary())
            .arg("run")
            .arg(format!("--driver={}", driver.flag()))
            .arg(format!("--cores={cores}"))
            .arg("--server.http.listen-addr=127.0.0.1:0")
            .args(extra)
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("spawn pyrogate: {e}"))?;
        let pid = child.id();
        let stderr_pipe = child.stderr.take().ok_or("no stderr pipe")?;
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel::<String>();
        let sink = Arc::clone(&stderr);
        let reader = std::thread::Builder::new()
            .name("pyrogate-stderr".into())
            .spawn(move || {
                for line in BufReader::new(stderr_pipe).lines() {
                    let Ok(line) = line else { break };
                    sink.lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push(line.clone());
                    let _ = tx.send(line);
                }
            })
            .map_err(|e| format!("spawn stderr reader: {e}"))?;
        let mut gateway = Gateway {
            child: Some(child),
            pid,
            dir,
            config_path,
            receivers: BTreeMap::new(),
            admin: SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0),
            stderr,
            reader: Some(reader),
            driver,
            cores,
        };
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        let mut admin = None;
        loop {
            let now = Instant::now();
            let line = if now >= deadline {
                Err(RecvTimeoutError::Timeout)
            } else {
                rx.recv_timeout(deadline - now)
            };
            let line = match line {
                Ok(line) => line,
                Err(RecvTimeoutError::Timeout) => {
                    return Err(format!(
                        "pyrogate not ready within {STARTUP_TIMEOUT:?} (driver={}, cores={cores}); stderr:\n{}",
                        driver.flag(),
                        gateway.stderr_text()
                    ));
                }
                Err(RecvTimeoutError::Disconnected) => {
                    let status = gateway.child.as_mut().and_then(|c| c.wait().ok());
                    if let Some(reader) = gateway.reader.take() {
                        let _ = reader.join();
                    }
                    return Err(format!(
                        "pyrogate exited before ready ({status:?}); stderr:\n{}",
                        gateway.stderr_text()
                    ));
                }
            };
            match logfmt_get(&line, "msg").as_deref() {
                Some("receiver listening") => {
                    let label = logfmt_get(&line, "receiver").unwrap_or_default();
                    let addr = logfmt_get(&line, "addr")
                        .and_then(|a| a.parse::<SocketAddr>().ok())
                        .ok_or_else(|| format!("bad receiver line: {line}"))?;
                    gateway.receivers.insert(label, connectable(addr));
                }
                Some("admin listening") => {
                    admin = logfmt_get(&line, "addr").and_then(|a| a.parse::<SocketAddr>().ok());
                }
                Some("pyrogate ready") => break,
                _ => {}
            }
        }
        gateway.admin = connectable(admin.ok_or_else(|| {
            format!(
                "no `admin listening` line before ready; stderr:\n{}",
                gateway.stderr_text()
            )
        })?);
        if gateway.receivers.is_empty() {
            return Err(format!(
                "no `receiver listening` line before ready; stderr:\n{}",
                gateway.stderr_text()
            ));
        }
        Ok(gateway)
    }

    /// The address of receiver `label` (panics if the gateway did not announce it).
    pub fn receiver(&self, label: &str) -> SocketAddr {
        *self
            .receivers
            .get(label)
            .unwrap_or_else(|| panic!("no receiver {label:?}; have {:?}", self.receivers))
    }

    /// The address of the only receiver.
    pub fn addr(&self) -> SocketAddr {
        assert_eq!(self.receivers.len(), 1, "receivers: {:?}", self.receivers);
        *self.receivers.values().next().expect("one receiver")
    }

    pub fn admin(&self) -> SocketAddr {
        self.admin
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// This gateway's temporary directory (holds the config file).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn config_path(&self) -> &Path {
        &self.config_path
    }

    /// Everything written to stderr so far.
    pub fn stderr_text(&self) -> String {
        self.stderr
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .join("\n")
    }

    /// `GET /metrics` on the admin listener.
    pub fn metrics(&self) -> String {
        let response = crate::client::get(self.admin, "/metrics");
        assert_eq!(response.status, 200, "GET /metrics: {response:?}");
        response.body_str()
    }

    /// Sends SIGTERM without waiting: the gateway keeps draining while the test goes on.
    pub fn terminate(&self) {
        self.signal("TERM");
    }

    /// Sends signal `name` (`"TERM"`, `"INT"`, ...) without waiting.
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.pid.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("run kill");
        assert!(
            status.success(),
            "kill -{name} {} failed: {status:?}",
            self.pid
        );
    }

    /// Waits up to `bound` for the process to end by itself (after [`Gateway::terminate`]).
    /// `Err` when it did not: it was then killed with SIGKILL, and the error holds that outcome.
    pub fn wait_exit(mut self, bound: Duration) -> Result<Stopped, Stopped> {
        let mut child = self.child.take().expect("gateway already stopped");
        let deadline = Instant::now() + bound;
        let (status, on_time) = loop {
            match child.try_wait() {
                Ok(Some(status)) => break (status, true),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                _ => {
                    let _ = child.kill();
                    break (child.wait().expect("wait for killed pyrogate"), false);
                }
            }
        };
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
        let stopped = Stopped {
            status,
            stderr: self.stderr_text(),
        };
        if on_time { Ok(stopped) } else { Err(stopped) }
    }

    /// Sends SIGTERM and waits (bounded, then SIGKILL) for the process to end.
    pub fn stop(mut self) -> Stopped {
        let mut child = self.child.take().expect("gateway already stopped");
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.pid.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + STOP_TIMEOUT;
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                _ => {
                    let _ = child.kill();
                    break child.wait().expect("wait for killed pyrogate");
                }
            }
        };
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
        Stopped {
            status,
            stderr: self.stderr_text(),
        }
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
    }
}

/// One sample of Prometheus text exposition: metric name, labels, value.
pub type Sample = (String, Vec<(String, String)>, f64);

/// Parses `name{k="v",...} value` sample lines of Prometheus text exposition.
pub fn metric_samples(text: &str) -> Vec<Sample> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (series, value) = match line.rfind('}') {
            Some(close) => (&line[..=close], line[close + 1..].trim()),
            None => match line.split_once(' ') {
                Some((s, v)) => (s, v.trim()),
                None => continue,
            },
        };
        // A trailing timestamp may follow the value.
        let value = value.split_whitespace().next().unwrap_or("");
        let Ok(value) = value.parse::<f64>() else {
            continue;
        };
        let (name, labels) = match series.split_once('{') {
            Some((name, rest)) => (name, parse_labels(rest.trim_end_matches('}'))),
            None => (series, Vec::new()),
        };
        out.push((name.to_string(), labels, value));
    }
    out
}

fn parse_labels(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let mut key = String::new();
        for c in chars.by_ref() {
            if c == '=' {
                break;
            }
            key.push(c);
        }
        if key.is_empty() {
            return out;
        }
        if chars.next() != Some('"') {
            return out;
        }
        let mut value = String::new();
        while let Some(c) = chars.next() {
            match c {
                '"' => break,
                '\\' => match chars.next() {
                    Some('n') => value.push('\n'),
                    Some(other) => value.push(other),
                    None => {}
                },
                c => value.push(c),
            }
        }
        out.push((key, value));
    }
}

/// The sum of every sample of `name` whose labels include all of `labels`; `None` if no
/// sample matches.
pub fn metric_sum(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let matching: Vec<f64> = metric_samples(text)
        .into_iter()
        .filter(|(n, ls, _)| {
            n == name
                && labels
                    .iter()
                    .all(|(k, v)| ls.iter().any(|(lk, lv)| lk == k && lv == v))
        })
        .map(|(_, _, v)| v)
        .collect();
    if matching.is_empty() {
        None
    } else {
        Some(matching.iter().sum())
    }
}
