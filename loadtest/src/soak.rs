//! `loadtest soak`: a long run of mixed load through pyrogate to three sinks, one of which
//! fails on a schedule, with the gateway's memory, file descriptors and per-destination account
//! watched the whole time.
//!
//! Owns: the fault schedule of the flaky destination ([`phases`]: background resets and 503s,
//! two 503 storms, and an outage in the middle during which the sink is down and connections
//! are refused), restarting that sink between phases while keeping its counters
//! ([`merge_stats`]), starting the release gateway at its default core count, the once-a-second
//! sampler (`VmRSS` and `VmHWM` from `/proc/PID/status`, the entries of `/proc/PID/fd`, CPU
//! time, and the per-destination figures of `/metrics`), the drain wait, the account of every
//! destination (`pyrogate_accepted_profiles_total` = sent + dropped + in flight, compared with
//! what the sink itself counted) and the outputs (summary JSON, samples CSV, SVG plot).
//! Does not own the load (`generator`), the bodies (`bodies`) or the sink (`integrity`).
//! A tool: std threads, everything on 127.0.0.1, bounded by the load duration plus the drain
//! limit; it stops only the processes it started, by PID.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};

use crate::bodies::{BodyPool, Mix};
use crate::generator::{self, Plan, RunResult, Schedule};
use crate::integrity::{Faults, Latency, Sink, SinkConfig, SinkStats};
use crate::report::{markdown_table, text_table, thousands};
use crate::stats::{self, fmt_us};
use crate::timeplot::{self, Band, Line, Panel};

/// How long a SIGTERM'd gateway may take to exit (its graceful drain is 30 s by default).
const STOP_GRACE: Duration = Duration::from_secs(45);

/// What a soak run does.
#[derive(Debug, Clone)]
pub struct SoakConfig {
    /// How long load is offered.
    pub duration: Duration,
    /// Samples before this are left out of the RSS figures.
    pub warmup: Duration,
    /// Open-loop uploads per second.
    pub rate: f64,
    pub connections: usize,
    pub mix: Mix,
    pub label_sets: usize,
    pub seed: u64,
    /// `enqueued` or `delivered` (the receiver's `acknowledge`).
    pub acknowledge: String,
    /// `--cores` for the gateway; `None` leaves pyrogate's default (every core).
    pub cores: Option<usize>,
    pub pyrogate_bin: PathBuf,
    /// Where the summary, samples and plot go.
    pub out_dir: PathBuf,
    /// Longest wait, after the load, for every destination's in-flight count to reach 0.
    pub drain_max: Duration,
    /// Length of the outage, centred in the load; `None`: 10 % of the load.
    pub outage: Option<Duration>,
    /// The flaky destination outside storms and the outage.
    pub flaky: Faults,
    /// The healthy destinations (latency only).
    pub healthy_latency: Latency,
    /// Client socket timeout.
    pub timeout: Duration,
    pub quiet: bool,
}

/// What the flaky destination does during a phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    /// The background faults ([`SoakConfig::flaky`]).
    Flaky,
    /// Every request answered 503.
    Storm,
    /// The sink is stopped: connections are refused.
    Outage,
}

impl FaultKind {
    pub fn name(self) -> &'static str {
        match self {
            FaultKind::Flaky => "flaky",
            FaultKind::Storm => "503 storm",
            FaultKind::Outage => "outage",
        }
    }
}

/// One phase of the flaky destination, in seconds since the load started.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Phase {
    pub kind: FaultKind,
    pub start_s: f64,
    pub end_s: f64,
}

/// The schedule over a load of `load`: flaky throughout, 503 storms over 20–25 % and 75–80 %,
/// the outage over 45–55 % (one minute of a ten-minute run, in the middle), or, with `outage`,
/// an outage of that length centred in the load (a storm it would overlap is left out). The
/// last phase lasts through the drain.
pub fn phases(load: Duration, outage: Option<Duration>) -> Vec<Phase> {
    let s = load.as_secs_f64();
    let half = outage.map_or(0.05 * s, |o| o.as_secs_f64().min(s) / 2.0);
    let out = (0.5 * s - half, 0.5 * s + half);
    let mut faults = vec![(0.20 * s, 0.25 * s, FaultKind::Storm)];
    faults.push((out.0, out.1, FaultKind::Outage));
    faults.push((0.75 * s, 0.80 * s, FaultKind::Storm));
    faults.retain(|&(a, b, kind)| kind == FaultKind::Outage || b <= out.0 || a >= out.1);
    let mut plan = Vec::new();
    let mut at = 0.0;
    for (a, b, kind) in faults {
        if a > at {
            plan.push(Phase {
                kind: FaultKind::Flaky,
                start_s: at,
                end_s: a,
            });
        }
        plan.push(Phase {
            kind,
            start_s: a,
            end_s: b,
        });
        at = b;
    }
    plan.push(Phase {
        kind: FaultKind::Flaky,
        start_s: at,
        end_s: s,
    });
    plan
}

/// Adds `b`'s counters to `a` (a sink restarted between phases keeps one account).
pub fn merge_stats(a: &mut SinkStats, b: &SinkStats) {
    a.requests += b.requests;
    a.body_bytes += b.body_bytes;
    for (k, v) in &b.statuses {
        *a.statuses.entry(*k).or_default() += v;
    }
    a.resets += b.resets;
    a.hangs += b.hangs;
    a.corrupt += b.corrupt;
    a.unmarked += b.unmarked;
    a.connections += b.connections;
    a.refused_connections += b.refused_connections;
    for (k, (n, bytes)) in &b.label_sets {
        let e = a.label_sets.entry(k.clone()).or_default();
        e.0 += n;
        e.1 += bytes;
    }
    for (run, counts) in &b.deliveries {
        let mine = a.deliveries.entry(*run).or_default();
        if mine.len() < counts.len() {
            mine.resize(counts.len(), 0);
        }
        for (m, c) in mine.iter_mut().zip(counts) {
            *m = m.saturating_add(*c);
        }
    }
}

/// `(delivered, distinct)` payloads of `run` a sink answered 200.
pub fn deliveries(stats: &SinkStats, run: u32) -> (u64, u64) {
    let counts = stats
        .deliveries
        .get(&run)
        .map(Vec::as_slice)
        .unwrap_or_default();
    (
        counts.iter().map(|&c| u64::from(c)).sum(),
        counts.iter().filter(|&&c| c > 0).count() as u64,
    )
}

/// The flaky destination: a sink restarted on the same port with each phase's faults.
#[derive(Debug)]
pub struct FlakySink {
    base: SinkConfig,
    current: Option<Sink>,
    /// Counters of the stopped incarnations.
    past: SinkStats,
    restarts: u32,
}

impl FlakySink {
    pub fn start(base: SinkConfig) -> anyhow::Result<FlakySink> {
        let sink = Sink::start(base.clone()).context("starting the flaky sink")?;
        let mut base = base;
        base.listen = sink.addr();
        Ok(FlakySink {
            base,
            current: Some(sink),
            past: SinkStats::default(),
            restarts: 0,
        })
    }

    /// Stops the running sink (its connections end) and starts one with `faults`, or none.
    pub fn switch(&mut self, faults: Option<Faults>) -> anyhow::Result<()> {
        if let Some(mut s) = self.current.take() {
            s.stop();
            merge_stats(&mut self.past, &s.stats());
        }
        let Some(faults) = faults else {
            return Ok(());
        };
        let mut config = self.base.clone();
        config.faults = faults;
        config.seed = self.base.seed.wrapping_add(u64::from(self.restarts) + 1);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match Sink::start(config.clone()) {
                Ok(s) => {
                    self.current = Some(s);
                    self.restarts += 1;
                    return Ok(());
                }
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(e) => return Err(e).context("restarting the flaky sink on its port"),
            }
        }
    }

    pub fn stats(&self) -> SinkStats {
        let mut s = self.past.clone();
        if let Some(c) = &self.current {
            merge_stats(&mut s, &c.stats());
        }
        s
    }

    pub fn addr(&self) -> SocketAddr {
        self.base.listen
    }
}

pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// One Prometheus text sample: labels and value.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricSample {
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// Every sample of `metric` (exact name) in a Prometheus text exposition.
pub fn samples(text: &str, metric: &str) -> Vec<MetricSample> {
    let mut out = Vec::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some(rest) = line.strip_prefix(metric) else {
            continue;
        };
        let (labels, value) = if let Some(inner) = rest.strip_prefix('{') {
            let Some(close) = inner.rfind('}') else {
                continue;
            };
            (parse_labels(&inner[..close]), inner[close + 1..].trim())
        } else if rest.starts_with(' ') {
            (BTreeMap::new(), rest.trim())
        } else {
            continue;
        };
        let Some(v) = value
            .split_ascii_whitespace()
            .next()
            .and_then(|v| v.parse::<f64>().ok())
        else {
            continue;
        };
        out.push(MetricSample { labels, value: v });
    }
    out
}

fn parse_labels(s: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut rest = s;
    while let Some(eq) = rest.find("=\"") {
        let name = rest[..eq].trim_start_matches([',', ' ']).to_string();
        let mut value = String::new();
        let mut chars = rest[eq + 2..].char_indices();
        let mut end = rest.len() - eq - 2;
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => {
                    if let Some((_, n)) = chars.next() {
                        value.push(match n {
                            'n' => '\n',
                            other => other,
                        });
                    }
                }
                '"' => {
                    end = i + 1;
                    break;
                }
                c => value.push(c),
            }
        }
        out.insert(name, value);
        rest = &rest[(eq + 2 + end).min(rest.len())..];
    }
    out
}

/// `metric` summed per value of label `by` (other labels summed over).
pub fn sum_by(text: &str, metric: &str, by: &str) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for s in samples(text, metric) {
        let key = s.labels.get(by).cloned().unwrap_or_default();
        *out.entry(key).or_default() += s.value;
    }
    out
}

/// Open file descriptors of `pid` (entries of `/proc/PID/fd`).
pub fn fd_count(pid: u32) -> Option<u64> {
    Some(fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count() as u64)
}

pub use crate::stats::{parse_vm_rss_kib, rss_kib};

/// `(local port, remote port, state)` by socket inode, from `/proc/PID/net/tcp` and `tcp6`
/// (the process's own network namespace; proc(5)).
pub fn tcp_sockets(pid: u32) -> BTreeMap<u64, (u16, u16, u8)> {
    let mut out = BTreeMap::new();
    for file in ["tcp", "tcp6"] {
        let text = fs::read_to_string(format!("/proc/{pid}/net/{file}")).unwrap_or_default();
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_ascii_whitespace().collect();
            let port = |a: &str| {
                a.rsplit(':')
                    .next()
                    .and_then(|p| u16::from_str_radix(p, 16).ok())
            };
            let (Some(l), Some(r), Some(st), Some(inode)) = (
                f.get(1).and_then(|a| port(a)),
                f.get(2).and_then(|a| port(a)),
                f.get(3).and_then(|s| u8::from_str_radix(s, 16).ok()),
                f.get(9).and_then(|i| i.parse::<u64>().ok()),
            ) else {
                continue;
            };
            out.insert(inode, (l, r, st));
        }
    }
    out
}

/// The open descriptors of `pid` by kind: TCP sockets named by `ports` (remote port → name,
/// e.g. the sinks), listeners, other TCP sockets, and everything else by its link target
/// with numbers removed (`anon_inode:[eventfd]`, `pipe`, a file).
pub fn fd_kinds(pid: u32, ports: &BTreeMap<u16, String>) -> BTreeMap<String, u64> {
    let sockets = tcp_sockets(pid);
    let mut out = BTreeMap::new();
    let Ok(dir) = fs::read_dir(format!("/proc/{pid}/fd")) else {
        return out;
    };
    for e in dir.flatten() {
        let Ok(target) = fs::read_link(e.path()) else {
            continue;
        };
        let t = target.to_string_lossy().into_owned();
        let kind = if let Some(inode) = t
            .strip_prefix("socket:[")
            .and_then(|r| r.strip_suffix(']'))
            .and_then(|i| i.parse::<u64>().ok())
        {
            match sockets.get(&inode) {
                Some((_, _, 0x0A)) => "tcp listener".to_string(),
                Some((_, r, _)) => match ports.get(r) {
                    Some(name) => format!("tcp to {name}"),
                    None => "tcp, other (clients)".to_string(),
                },
                None => "socket, not tcp".to_string(),
            }
        } else if t.starts_with("pipe:") {
            "pipe".to_string()
        } else if t.starts_with('/') {
            "file".to_string()
        } else {
            t.chars().filter(|c| !c.is_ascii_digit()).collect()
        };
        *out.entry(kind).or_default() += 1;
    }
    out
}

fn kinds_text(k: &BTreeMap<String, u64>) -> String {
    k.iter()
        .map(|(k, v)| format!("{k}: {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The release gateway, started here and stopped by PID.
#[derive(Debug)]
pub struct Gateway {
    child: Option<Child>,
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    pub log: PathBuf,
    pub cores: String,
}

fn logfmt_value<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    line.split_ascii_whitespace()
        .find_map(|t| t.strip_prefix(key)?.strip_prefix('='))
}

impl Gateway {
    /// `bin run [--cores=N] --server.http.listen-addr=127.0.0.1:0 CONFIG`; waits for ready.
    pub fn start(
        bin: &Path,
        cores: Option<usize>,
        config: &str,
        dir: &Path,
    ) -> anyhow::Result<Gateway> {
        let mut l = crate::compare::launch_pyrogate(bin, cores, config, dir)?;
        let Some(admin) = l.admin else {
            let _ = l.child.kill();
            let _ = l.child.wait();
            bail!("no `admin listening` line in pyrogate's log");
        };
        Ok(Gateway {
            cores: logfmt_value(&l.ready, "cores").unwrap_or("?").to_string(),
            child: Some(l.child),
            addr: l.addr,
            admin,
            log: l.log,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// SIGTERM by PID (kill(1)), wait for the graceful drain, SIGKILL past [`STOP_GRACE`].
    /// Returns how it ended.
    pub fn stop(&mut self) -> String {
        let Some(mut child) = self.child.take() else {
            return "not running".into();
        };
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status();
        let deadline = Instant::now() + STOP_GRACE;
        loop {
            match child.try_wait() {
                Ok(Some(status)) => return format!("exited: {status}"),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50));
                }
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return format!("did not stop within {STOP_GRACE:?}; killed");
                }
            }
        }
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The gateway configuration: one receiver, three `pyroscope.write`s.
pub fn gateway_config(acknowledge: &str, sinks: &[(&str, SocketAddr)]) -> String {
    let writes: Vec<String> = sinks
        .iter()
        .map(|(n, _)| format!("pyroscope.write.{n}.receiver"))
        .collect();
    let mut cfg = format!(
        "pyroscope.receive_http \"soak\" {{\n\thttp {{\n\t\tlisten_address = \"127.0.0.1\"\n\t\tlisten_port    = 0\n\t}}\n\tacknowledge = \"{acknowledge}\"\n\tforward_to  = [{}]\n}}\n",
        writes.join(", ")
    );
    for (n, a) in sinks {
        let _ = write!(
            cfg,
            "\npyroscope.write \"{n}\" {{\n\tendpoint {{\n\t\turl = \"http://{a}\"\n\t}}\n}}\n"
        );
    }
    cfg
}

/// One destination's figures in one sample.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct DestSample {
    pub inflight: f64,
    pub queue_depth: f64,
    pub sent: f64,
    pub dropped: f64,
}

/// One second of the run.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Seconds since the load started (negative before).
    pub t_s: f64,
    pub rss_kib: u64,
    pub fds: u64,
    /// Gateway CPU time so far, milliseconds.
    pub cpu_ms: u64,
    /// Requests answered so far (`pyrogate_requests_total`, every route and status).
    pub requests: f64,
    /// Body bytes held against the budget (`pyrogate_inflight_bytes`).
    pub inflight_bytes: f64,
    /// Per destination, in the order of [`Soak::dests`].
    pub dests: Vec<DestSample>,
}

/// One destination's account at the end.
#[derive(Debug, Clone, PartialEq)]
pub struct Account {
    pub name: String,
    pub endpoint: String,
    pub accepted: u64,
    pub sent: u64,
    pub dropped: u64,
    pub inflight: u64,
    /// `pyrogate_dropped_total` by reason.
    pub dropped_by_reason: BTreeMap<String, u64>,
    pub retries: u64,
    /// Payloads of this run the sink answered 200 (all deliveries, duplicates included).
    pub sink_delivered: u64,
    /// Distinct uploads among them.
    pub sink_distinct: u64,
    pub sink_statuses: BTreeMap<u16, u64>,
    pub sink_resets: u64,
    pub sink_corrupt: u64,
}

impl Account {
    /// accepted = sent + dropped + in flight.
    pub fn balanced(&self) -> bool {
        self.accepted == self.sent + self.dropped + self.inflight
    }

    /// The sink counted exactly what the gateway says it delivered, once each.
    pub fn sink_agrees(&self) -> bool {
        self.sink_delivered == self.sent && self.sink_distinct == self.sent
    }
}

/// Min, median and max.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Spread {
    pub min: u64,
    pub median: u64,
    pub max: u64,
}

impl Spread {
    pub fn of(values: impl IntoIterator<Item = u64>) -> Option<Spread> {
        let mut v: Vec<u64> = values.into_iter().collect();
        if v.is_empty() {
            return None;
        }
        v.sort_unstable();
        Some(Spread {
            min: v[0],
            median: v[v.len() / 2],
            max: v[v.len() - 1],
        })
    }
}

/// A finished soak.
#[derive(Debug)]
pub struct Soak {
    pub config: SoakConfig,
    pub started_unix: u64,
    pub gateway_cores: String,
    /// `(name, endpoint url)` in sample order.
    pub dests: Vec<(String, String)>,
    pub phases: Vec<Phase>,
    pub samples: Vec<Sample>,
    pub load_end_s: f64,
    /// Seconds from the end of the load until every in-flight count was 0 (None: never).
    pub drained_after_s: Option<f64>,
    pub fds_before: u64,
    pub fds_after: u64,
    /// The descriptors by kind before the load and after the drain.
    pub fd_kinds_before: BTreeMap<String, u64>,
    pub fd_kinds_after: BTreeMap<String, u64>,
    pub rss_before_kib: u64,
    pub rss_after_kib: u64,
    pub peak_rss_kib: u64,
    pub run: RunResult,
    pub run_tag: u32,
    pub integrity: generator::Integrity,
    pub accounts: Vec<Account>,
    pub flaky_restarts: u32,
    pub gateway_exit: String,
    /// The gateway's `destination account` and `shutdown complete` log lines.
    pub shutdown_lines: Vec<String>,
    /// Warning and error lines of the gateway's log, counted by message.
    pub log_messages: BTreeMap<String, u64>,
    pub wall: Duration,
}

impl Soak {
    /// RSS spread after the warm-up until the load ended.
    pub fn rss_spread(&self) -> Option<Spread> {
        let w = self.config.warmup.as_secs_f64();
        Spread::of(
            self.samples
                .iter()
                .filter(|s| s.t_s >= w && s.t_s <= self.load_end_s)
                .map(|s| s.rss_kib),
        )
    }

    /// Spread of `VmRSS` minus `pyrogate_inflight_bytes` (KiB) after the warm-up until the
    /// load ended: what the process holds beyond what the budget is charged.
    pub fn rss_over_charge(&self) -> Option<Spread> {
        let w = self.config.warmup.as_secs_f64();
        Spread::of(
            self.samples
                .iter()
                .filter(|s| s.t_s >= w && s.t_s <= self.load_end_s)
                .map(|s| s.rss_kib.saturating_sub(s.inflight_bytes as u64 / 1024)),
        )
    }

    /// Open-descriptor spread while load was offered.
    pub fn fds_during(&self) -> Option<Spread> {
        Spread::of(
            self.samples
                .iter()
                .filter(|s| s.t_s >= 0.0 && s.t_s <= self.load_end_s)
                .map(|s| s.fds),
        )
    }

    pub fn accounts_ok(&self) -> bool {
        self.accounts
            .iter()
            .all(|a| a.balanced() && a.inflight == 0)
            && self
                .accounts
                .iter()
                .filter(|a| a.name != "flaky")
                .all(|a| a.sink_agrees() && a.dropped == 0 && a.accepted == a.sent)
    }
}

/// The log message of a logfmt line, with its level, for warnings and errors.
fn log_key(line: &str) -> Option<String> {
    let level = logfmt_value(line, "level")?;
    if level != "warn" && level != "error" {
        return None;
    }
    let msg = line.split("msg=\"").nth(1)?.split('"').next()?;
    Some(format!("{level}: {msg}"))
}

/// Runs the soak. Progress goes to stderr unless `quiet`.
pub fn run(cfg: SoakConfig) -> anyhow::Result<Soak> {
    let wall = Instant::now();
    let started_unix = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let work = cfg.out_dir.join(format!("soak-{started_unix}-work"));
    fs::create_dir_all(&work)?;
    let healthy_faults = Faults {
        latency: cfg.healthy_latency,
        ..Faults::default()
    };
    let base = |seed: u64, faults: Faults| SinkConfig {
        faults,
        seed,
        ..SinkConfig::default()
    };
    let mut sink_a = Sink::start(base(cfg.seed, healthy_faults.clone()))?;
    let mut sink_b = Sink::start(base(cfg.seed + 100, healthy_faults.clone()))?;
    let flaky = Arc::new(Mutex::new(FlakySink::start(base(
        cfg.seed + 200,
        cfg.flaky.clone(),
    ))?));
    let flaky_addr = lock(&flaky).addr();
    let named = [
        ("a", sink_a.addr()),
        ("b", sink_b.addr()),
        ("flaky", flaky_addr),
    ];
    let dests: Vec<(String, String)> = named
        .iter()
        .map(|(n, a)| (n.to_string(), format!("http://{a}")))
        .collect();
    let mut gw = Gateway::start(
        &cfg.pyrogate_bin,
        cfg.cores,
        &gateway_config(&cfg.acknowledge, &named),
        &work,
    )?;
    let pid = gw.pid();
    let admin = gw.admin;
    std::thread::sleep(Duration::from_secs(2));
    let fds_before = fd_count(pid).unwrap_or(0);
    let rss_before_kib = rss_kib(pid).unwrap_or(0);
    let ports: BTreeMap<u16, String> = named
        .iter()
        .map(|(n, a)| (a.port(), format!("sink {n}")))
        .chain([(admin.port(), "admin (a scrape)".to_string())])
        .collect();
    let fd_kinds_before = fd_kinds(pid, &ports);
    let say = |s: String| {
        if !cfg.quiet {
            eprintln!("{s}");
        }
    };
    say(format!(
        "soak: pyrogate pid {pid} ({} cores) at {}, admin {admin}; sinks a={} b={} flaky={flaky_addr}; before load: {fds_before} fds, RSS {:.1} MiB",
        gw.cores,
        gw.addr,
        named[0].1,
        named[1].1,
        rss_before_kib as f64 / 1024.0
    ));
    let plan_phases = phases(cfg.duration, cfg.outage);
    let (pool, run_tag, plan) = steady_load(
        cfg.mix,
        cfg.label_sets,
        cfg.seed,
        cfg.connections,
        cfg.rate,
        cfg.duration,
        cfg.timeout,
    );
    let start = Instant::now();
    let stop = AtomicBool::new(false);
    let sample_log: Mutex<Vec<Sample>> = Mutex::new(Vec::new());
    let load_end: Mutex<Option<f64>> = Mutex::new(None);
    let endpoints: Vec<String> = dests.iter().map(|d| d.1.clone()).collect();
    let (run, drained_after_s, fds_after, rss_after_kib, fd_kinds_after) = std::thread::scope(
        |scope| {
            // The sampler: once a second until told to stop.
            scope.spawn(|| {
            let mut next = Instant::now();
            let mut last_print = Instant::now();
            while !stop.load(Ordering::Relaxed) {
                let t_s = start.elapsed().as_secs_f64();
                let text = generator::http_get(admin, "/metrics", Duration::from_secs(2))
                    .map(|(_, b)| String::from_utf8_lossy(&b).into_owned())
                    .unwrap_or_default();
                let get = |m: &str| sum_by(&text, m, "endpoint");
                let (inflight, depth, sent, dropped) = (
                    get("pyrogate_inflight_profiles"),
                    get("pyrogate_queue_depth"),
                    get("pyroscope_write_sent_profiles_total"),
                    get("pyroscope_write_dropped_profiles_total"),
                );
                let pick = |m: &BTreeMap<String, f64>, e: &String| m.get(e).copied().unwrap_or(0.0);
                let s = Sample {
                    t_s,
                    rss_kib: rss_kib(pid).unwrap_or(0),
                    fds: fd_count(pid).unwrap_or(0),
                    cpu_ms: stats::cpu_time(pid).map_or(0, |c| c.total().as_millis() as u64),
                    requests: samples_total(&text, "pyrogate_requests_total") + 0.0,
                    inflight_bytes: samples_total(&text, "pyrogate_inflight_bytes") + 0.0,
                    dests: endpoints
                        .iter()
                        .map(|e| DestSample {
                            inflight: pick(&inflight, e),
                            queue_depth: pick(&depth, e),
                            sent: pick(&sent, e),
                            dropped: pick(&dropped, e),
                        })
                        .collect(),
                };
                if last_print.elapsed() >= Duration::from_secs(10) {
                    last_print = Instant::now();
                    say(format!(
                        "soak {t_s:6.0}s  rss={:.1}MiB fds={} requests={} in-flight a/b/flaky={}/{}/{} dropped flaky={}",
                        s.rss_kib as f64 / 1024.0,
                        s.fds,
                        s.requests,
                        s.dests[0].inflight,
                        s.dests[1].inflight,
                        s.dests[2].inflight,
                        s.dests[2].dropped
                    ));
                }
                lock(&sample_log).push(s);
                next += Duration::from_secs(1);
                let now = Instant::now();
                if next > now {
                    std::thread::sleep(next - now);
                } else {
                    next = now;
                }
            }
        });
            // The fault controller: switches the flaky sink at each phase boundary.
            scope.spawn(|| {
                for p in plan_phases.iter().skip(1) {
                    let at = start + Duration::from_secs_f64(p.start_s);
                    while Instant::now() < at {
                        if stop.load(Ordering::Relaxed) || lock(&load_end).is_some() {
                            return;
                        }
                        std::thread::sleep(Duration::from_millis(50));
                    }
                    let faults = match p.kind {
                        FaultKind::Flaky => Some(cfg.flaky.clone()),
                        FaultKind::Storm => Some(Faults {
                            error_rate: 1.0,
                            error_status: 503,
                            ..cfg.flaky.clone()
                        }),
                        FaultKind::Outage => None,
                    };
                    say(format!(
                        "soak {:6.0}s  flaky destination: {}",
                        start.elapsed().as_secs_f64(),
                        p.kind.name()
                    ));
                    if let Err(e) = lock(&flaky).switch(faults) {
                        say(format!("soak: {e:#}"));
                    }
                }
            });
            let make = |i: u64| pool.request(generator::id(run_tag, i));
            let run = generator::drive(gw.addr, &plan, &make, "soak", false);
            let end = start.elapsed().as_secs_f64();
            *lock(&load_end) = Some(end);
            // Whatever the schedule was doing, the flaky sink is up for the drain.
            {
                let mut f = lock(&flaky);
                if f.current.is_none() {
                    let _ = f.switch(Some(cfg.flaky.clone()));
                }
            }
            say(format!(
                "soak {end:6.0}s  load ended: {} uploads, {}; draining",
                thousands(run.uploads()),
                run.outcomes
                    .0
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            ));
            // Drain: every destination's in-flight count at 0 in two scrapes in a row.
            let deadline = Instant::now() + cfg.drain_max;
            let mut zero_in_a_row = 0;
            let mut drained = None;
            while Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(500));
                let text = generator::http_get(admin, "/metrics", Duration::from_secs(2))
                    .map(|(_, b)| String::from_utf8_lossy(&b).into_owned())
                    .unwrap_or_default();
                let inflight = samples_total(&text, "pyrogate_inflight_profiles");
                if !text.is_empty() && inflight == 0.0 {
                    zero_in_a_row += 1;
                    if zero_in_a_row >= 2 {
                        drained = Some(start.elapsed().as_secs_f64() - end);
                        break;
                    }
                } else {
                    zero_in_a_row = 0;
                }
            }
            // A few idle seconds so that closed connections are gone from /proc.
            std::thread::sleep(Duration::from_secs(3));
            let fds_after = fd_count(pid).unwrap_or(0);
            let rss_after = rss_kib(pid).unwrap_or(0);
            let kinds_after = fd_kinds(pid, &ports);
            stop.store(true, Ordering::Relaxed);
            (run, drained, fds_after, rss_after, kinds_after)
        },
    );
    let load_end_s = lock(&load_end).unwrap_or(0.0);
    let peak_rss_kib = stats::peak_rss_kib(pid).unwrap_or(0);
    // Final account.
    let (_, body) = generator::http_get(admin, "/metrics", Duration::from_secs(5))
        .context("final /metrics scrape")?;
    let text = String::from_utf8_lossy(&body).into_owned();
    let accepted = sum_by(&text, "pyrogate_accepted_profiles_total", "endpoint");
    let sent = sum_by(&text, "pyroscope_write_sent_profiles_total", "endpoint");
    let dropped = sum_by(&text, "pyroscope_write_dropped_profiles_total", "endpoint");
    let inflight = sum_by(&text, "pyrogate_inflight_profiles", "endpoint");
    let retries = sum_by(&text, "pyroscope_write_retries_total", "endpoint");
    let by_reason = samples(&text, "pyrogate_dropped_total");
    let sink_stats = [sink_a.stats(), sink_b.stats(), lock(&flaky).stats()];
    let flaky_restarts = lock(&flaky).restarts;
    let accounts: Vec<Account> = dests
        .iter()
        .zip(&sink_stats)
        .map(|((name, endpoint), st)| {
            let g = |m: &BTreeMap<String, f64>| m.get(endpoint).copied().unwrap_or(0.0) as u64;
            let (sink_delivered, sink_distinct) = deliveries(st, run_tag);
            let reasons = drops_by_reason(&by_reason, endpoint);
            Account {
                name: name.clone(),
                endpoint: endpoint.clone(),
                accepted: g(&accepted),
                sent: g(&sent),
                dropped: g(&dropped),
                inflight: g(&inflight),
                dropped_by_reason: reasons,
                retries: g(&retries),
                sink_delivered,
                sink_distinct,
                sink_statuses: st.statuses.clone(),
                sink_resets: st.resets,
                sink_corrupt: st.corrupt,
            }
        })
        .collect();
    let named_stats: Vec<(String, SinkStats)> = dests
        .iter()
        .map(|d| d.0.clone())
        .zip(sink_stats.iter().cloned())
        .collect();
    let gateway_dropped = generator::sum_metric(&text, "pyrogate_dropped_total");
    let integrity =
        generator::check_integrity(run_tag, &run.statuses, &named_stats, Some(gateway_dropped));
    let gateway_exit = gw.stop();
    let log = fs::read_to_string(&gw.log).unwrap_or_default();
    let shutdown_lines = log
        .lines()
        .filter(|l| {
            l.contains("msg=\"destination account\"") || l.contains("msg=\"shutdown complete\"")
        })
        .map(str::to_string)
        .collect();
    let mut log_messages = BTreeMap::new();
    for k in log.lines().filter_map(log_key) {
        *log_messages.entry(k).or_default() += 1;
    }
    sink_a.stop();
    sink_b.stop();
    let _ = lock(&flaky).switch(None);
    let samples = sample_log.into_inner().unwrap_or_else(|e| e.into_inner());
    Ok(Soak {
        config: cfg,
        started_unix,
        gateway_cores: gw.cores.clone(),
        dests,
        phases: plan_phases,
        samples,
        load_end_s,
        drained_after_s,
        fds_before,
        fds_after,
        fd_kinds_before,
        fd_kinds_after,
        rss_before_kib,
        rss_after_kib,
        peak_rss_kib,
        run,
        run_tag,
        integrity,
        accounts,
        flaky_restarts,
        gateway_exit,
        shutdown_lines,
        log_messages,
        wall: wall.elapsed(),
    })
}

/// An open-loop load at `rate` uploads/s for `duration`: the bodies, the run's tag (the sinks
/// count this run's uploads by it) and the plan.
pub fn steady_load(
    mix: Mix,
    label_sets: usize,
    seed: u64,
    connections: usize,
    rate: f64,
    duration: Duration,
    timeout: Duration,
) -> (Arc<BodyPool>, u32, Plan) {
    let pool = Arc::new(BodyPool::new(
        mix,
        crate::bodies::DEFAULT_TEMPLATES,
        label_sets,
        seed,
    ));
    let plan = Plan {
        connections,
        schedule: Schedule::Rate(rate),
        duration,
        max_uploads: u64::MAX,
        timeout,
    };
    (pool, generator::new_run_tag(), plan)
}

/// `pyrogate_dropped_total` of `endpoint` by reason (reasons with none left out).
pub fn drops_by_reason(by_reason: &[MetricSample], endpoint: &str) -> BTreeMap<String, u64> {
    let mut reasons = BTreeMap::new();
    for s in by_reason
        .iter()
        .filter(|s| s.labels.get("endpoint").map(String::as_str) == Some(endpoint) && s.value > 0.0)
    {
        let r = s.labels.get("reason").cloned().unwrap_or_default();
        *reasons.entry(r).or_default() += s.value as u64;
    }
    reasons
}

/// Every sample of `metric` summed.
fn samples_total(text: &str, metric: &str) -> f64 {
    samples(text, metric).iter().map(|s| s.value).sum()
}

fn mib(kib: u64) -> String {
    format!("{:.1}", kib as f64 / 1024.0)
}

/// The account table rows.
pub fn account_rows(s: &Soak) -> Vec<Vec<String>> {
    s.accounts
        .iter()
        .map(|a| {
            let reasons = a
                .dropped_by_reason
                .iter()
                .filter(|(_, v)| **v > 0)
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(" ");
            vec![
                a.name.clone(),
                thousands(a.accepted),
                thousands(a.sent),
                if reasons.is_empty() {
                    thousands(a.dropped)
                } else {
                    format!("{} ({reasons})", thousands(a.dropped))
                },
                thousands(a.inflight),
                if a.balanced() { "yes" } else { "NO" }.into(),
                thousands(a.retries),
                format!(
                    "{} ({} distinct)",
                    thousands(a.sink_delivered),
                    thousands(a.sink_distinct)
                ),
                if a.sink_agrees() { "yes" } else { "NO" }.into(),
            ]
        })
        .collect()
}

pub const ACCOUNT_HEADERS: [&str; 9] = [
    "destination",
    "accepted",
    "sent",
    "dropped",
    "in flight",
    "accepted = sent+dropped+in flight",
    "retries",
    "sink got (200)",
    "sink = sent",
];

/// The report for a terminal.
pub fn text(s: &Soak) -> String {
    let mut out = String::new();
    let c = &s.config;
    let _ = writeln!(
        out,
        "soak: {:?} of {} mix at {}/s open loop ({} connections), acknowledge={}, pyrogate cores={}, run {:08x}",
        c.duration,
        c.mix.name(),
        c.rate,
        c.connections,
        c.acknowledge,
        s.gateway_cores,
        s.run_tag
    );
    for p in &s.phases {
        let _ = writeln!(
            out,
            "  flaky {:>9}: {:5.0}s – {:5.0}s",
            p.kind.name(),
            p.start_s,
            p.end_s
        );
    }
    let p = s.run.latencies.percentiles();
    let _ = writeln!(
        out,
        "client: {} uploads, {} answered 200; outcomes {}; latency p50={} p90={} p99={} p99.9={} max={}",
        thousands(s.run.uploads()),
        thousands(s.run.accepted()),
        s.run
            .outcomes
            .0
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(" "),
        fmt_us(p.p50),
        fmt_us(p.p90),
        fmt_us(p.p99),
        fmt_us(p.p999),
        fmt_us(p.max)
    );
    if let Some(r) = s.rss_spread() {
        let _ = writeln!(
            out,
            "RSS MiB: before load {}; after the {:?} warm-up until the end of load: min {} median {} max {}; after drain {}; peak (VmHWM) {}",
            mib(s.rss_before_kib),
            c.warmup,
            mib(r.min),
            mib(r.median),
            mib(r.max),
            mib(s.rss_after_kib),
            mib(s.peak_rss_kib)
        );
    }
    if let Some(f) = s.fds_during() {
        let _ = writeln!(
            out,
            "open fds: before load {}; during load min {} median {} max {}; after drain {}",
            s.fds_before, f.min, f.median, f.max, s.fds_after
        );
        let _ = writeln!(
            out,
            "  fds before load: {}\n  fds after drain: {}",
            kinds_text(&s.fd_kinds_before),
            kinds_text(&s.fd_kinds_after)
        );
    }
    if let Some(b) = s.samples.iter().map(|x| x.inflight_bytes as u64).max() {
        let at = s.samples.iter().find(|x| x.inflight_bytes as u64 == b);
        let _ = writeln!(
            out,
            "budget: pyrogate_inflight_bytes peaked at {} MiB (RSS then {} MiB)",
            mib(b / 1024),
            mib(at.map_or(0, |x| x.rss_kib))
        );
    }
    if let Some(o) = s.rss_over_charge() {
        let _ = writeln!(
            out,
            "RSS above pyrogate_inflight_bytes, after the warm-up until the end of load: min {} median {} max {} MiB",
            mib(o.min),
            mib(o.median),
            mib(o.max)
        );
    }
    for a in &s.accounts {
        let failed = a.sink_resets
            + a.sink_statuses
                .iter()
                .filter(|(k, _)| **k != 200)
                .map(|(_, v)| v)
                .sum::<u64>();
        if failed > 0 || a.retries > 0 {
            let exhausted = a
                .dropped_by_reason
                .get("retries_exhausted")
                .copied()
                .unwrap_or(0);
            let _ = writeln!(
                out,
                "{}: requests the sink failed (resets + non-200) {}; retries {} + retries_exhausted drops {} = {}",
                a.name,
                failed,
                a.retries,
                exhausted,
                a.retries + exhausted
            );
        }
    }
    let _ = writeln!(
        out,
        "drain: {}; flaky sink restarts: {}; gateway {}",
        s.drained_after_s.map_or_else(
            || format!("in-flight NOT 0 after {:?}", c.drain_max),
            |d| format!("every in-flight count 0 {d:.1}s after the load")
        ),
        s.flaky_restarts,
        s.gateway_exit
    );
    out.push_str(&text_table(&ACCOUNT_HEADERS, &account_rows(s)));
    let _ = writeln!(out, "integrity: {}", s.integrity.summary());
    for si in &s.integrity.sinks {
        let _ = writeln!(
            out,
            "  {}: exactly once {} missing {} duplicated {} unacknowledged {} corrupt {}",
            si.name, si.exactly_once, si.missing, si.duplicated, si.unacknowledged, si.corrupt
        );
    }
    for l in &s.shutdown_lines {
        let _ = writeln!(out, "  {l}");
    }
    for (k, v) in &s.log_messages {
        let _ = writeln!(out, "  log {k}: {v}");
    }
    let _ = writeln!(
        out,
        "accounts: {}",
        if s.accounts_ok() { "ok" } else { "FAILED" }
    );
    out
}

/// The account table as Markdown.
pub fn markdown(s: &Soak) -> String {
    markdown_table(&ACCOUNT_HEADERS, &account_rows(s))
}

/// Samples as CSV.
pub fn csv(s: &Soak) -> String {
    let mut out = String::from("t_s,rss_kib,fds,cpu_ms,requests,inflight_bytes");
    for (n, _) in &s.dests {
        let _ = write!(out, ",{n}_inflight,{n}_queue_depth,{n}_sent,{n}_dropped");
    }
    out.push('\n');
    for x in &s.samples {
        let _ = write!(
            out,
            "{:.1},{},{},{},{},{}",
            x.t_s, x.rss_kib, x.fds, x.cpu_ms, x.requests, x.inflight_bytes
        );
        for d in &x.dests {
            let _ = write!(
                out,
                ",{},{},{},{}",
                d.inflight, d.queue_depth, d.sent, d.dropped
            );
        }
        out.push('\n');
    }
    out
}

/// The summary as JSON (no samples: they are in the CSV).
pub fn json(s: &Soak) -> serde_json::Value {
    let c = &s.config;
    let spread = |v: Option<Spread>| {
        v.map(|v| serde_json::json!({"min": v.min, "median": v.median, "max": v.max}))
    };
    serde_json::json!({
        "started_unix": s.started_unix,
        "config": {
            "duration_s": c.duration.as_secs_f64(), "warmup_s": c.warmup.as_secs_f64(),
            "outage_s": c.outage.map(|o| o.as_secs_f64()),
            "rate": c.rate, "connections": c.connections, "mix": c.mix.name(),
            "label_sets": c.label_sets, "seed": c.seed, "acknowledge": c.acknowledge,
            "cores_flag": c.cores, "gateway_cores": s.gateway_cores,
            "flaky": format!("{:?}", c.flaky), "healthy_latency": format!("{:?}", c.healthy_latency),
        },
        "phases": s.phases.iter().map(|p| serde_json::json!({"kind": p.kind.name(), "start_s": p.start_s, "end_s": p.end_s})).collect::<Vec<_>>(),
        "client": {
            "uploads": s.run.uploads(), "accepted": s.run.accepted(),
            "outcomes": s.run.outcomes.0, "latency": s.run.latencies.percentiles().to_json(),
        },
        "rss_kib": {
            "before_load": s.rss_before_kib, "after_warmup": spread(s.rss_spread()),
            "over_inflight_bytes_after_warmup": spread(s.rss_over_charge()),
            "after_drain": s.rss_after_kib, "peak_vmhwm": s.peak_rss_kib,
        },
        "fds": {"before_load": s.fds_before, "during_load": spread(s.fds_during()), "after_drain": s.fds_after,
            "kinds_before_load": s.fd_kinds_before, "kinds_after_drain": s.fd_kinds_after},
        "load_end_s": s.load_end_s,
        "drained_after_s": s.drained_after_s,
        "accounts": s.accounts.iter().map(|a| serde_json::json!({
            "destination": a.name, "endpoint": a.endpoint, "accepted": a.accepted, "sent": a.sent,
            "dropped": a.dropped, "dropped_by_reason": a.dropped_by_reason, "in_flight": a.inflight,
            "retries": a.retries, "balanced": a.balanced(),
            "sink_delivered": a.sink_delivered, "sink_distinct": a.sink_distinct,
            "sink_statuses": a.sink_statuses.iter().map(|(k, v)| (k.to_string(), *v)).collect::<BTreeMap<_, _>>(),
            "sink_resets": a.sink_resets, "sink_corrupt": a.sink_corrupt, "sink_agrees": a.sink_agrees(),
        })).collect::<Vec<_>>(),
        "accounts_ok": s.accounts_ok(),
        "integrity": s.integrity.to_json(),
        "flaky_restarts": s.flaky_restarts,
        "gateway_exit": s.gateway_exit,
        "shutdown_lines": s.shutdown_lines,
        "log_messages": s.log_messages,
        "wall_s": s.wall.as_secs_f64(),
    })
}

/// The plot: RSS, open descriptors and CPU, and per-destination in-flight profiles, over time,
/// with the flaky destination's storms and outage shaded.
pub fn plot(s: &Soak) -> String {
    let pts = |f: &dyn Fn(&Sample) -> f64| -> Vec<(f64, f64)> {
        s.samples
            .iter()
            .filter(|x| x.t_s >= 0.0)
            .map(|x| (x.t_s, f(x)))
            .collect()
    };
    let cpu: Vec<(f64, f64)> = s
        .samples
        .windows(2)
        .filter(|w| w[1].t_s >= 0.0)
        .map(|w| {
            let dt = (w[1].t_s - w[0].t_s).max(1e-3);
            (
                w[1].t_s,
                (w[1].cpu_ms.saturating_sub(w[0].cpu_ms)) as f64 / 10.0 / dt,
            )
        })
        .collect();
    let panels = vec![
        Panel {
            y_label: "resident memory (MiB)".into(),
            lines: vec![
                Line {
                    name: "VmRSS".into(),
                    points: pts(&|x| x.rss_kib as f64 / 1024.0),
                },
                Line {
                    name: "pyrogate_inflight_bytes (budget)".into(),
                    points: pts(&|x| x.inflight_bytes / 1_048_576.0),
                },
            ],
        },
        Panel {
            y_label: "open fds / CPU %".into(),
            lines: vec![
                Line {
                    name: "open file descriptors".into(),
                    points: pts(&|x| x.fds as f64),
                },
                Line {
                    name: "gateway CPU % (of one core)".into(),
                    points: cpu,
                },
            ],
        },
        Panel {
            y_label: "profiles in flight".into(),
            lines: s
                .dests
                .iter()
                .enumerate()
                .map(|(i, (n, _))| Line {
                    name: format!("in flight: {n}"),
                    points: pts(&|x| x.dests.get(i).map_or(0.0, |d| d.inflight)),
                })
                .collect(),
        },
    ];
    let bands: Vec<Band> = s
        .phases
        .iter()
        .filter(|p| p.kind != FaultKind::Flaky)
        .map(|p| Band {
            start_s: p.start_s,
            end_s: p.end_s,
            label: format!("flaky sink: {}", p.kind.name()),
            color: if p.kind == FaultKind::Outage {
                "#d62728"
            } else {
                "#ff7f0e"
            },
        })
        .collect();
    let t_max = s.samples.last().map_or(1.0, |x| x.t_s);
    let title = format!(
        "pyrogate soak: {} mix at {}/s, 3 destinations (one flaky), acknowledge={}, {} cores",
        s.config.mix.name(),
        s.config.rate,
        s.config.acknowledge,
        s.gateway_cores
    );
    timeplot::time_plot(
        &title,
        t_max,
        &panels,
        &bands,
        &[(s.load_end_s, "load ends".into())],
    )
}

/// Writes `soak-<unix>.json`, `soak-<unix>.csv` and `soak-<unix>.svg` into the out dir.
pub fn write_outputs(s: &Soak) -> anyhow::Result<[PathBuf; 3]> {
    fs::create_dir_all(&s.config.out_dir)?;
    let base = s.config.out_dir.join(format!("soak-{}", s.started_unix));
    let paths = [
        base.with_extension("json"),
        base.with_extension("csv"),
        base.with_extension("svg"),
    ];
    fs::write(&paths[0], serde_json::to_string_pretty(&json(s))? + "\n")?;
    fs::write(&paths[1], csv(s))?;
    fs::write(&paths[2], plot(s))?;
    Ok(paths)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schedule_puts_the_outage_in_the_middle() {
        let p = phases(Duration::from_secs(600), None);
        assert_eq!(p.len(), 7);
        let outage = p.iter().find(|p| p.kind == FaultKind::Outage).unwrap();
        assert_eq!((outage.start_s, outage.end_s), (270.0, 330.0));
        assert_eq!(p.iter().filter(|p| p.kind == FaultKind::Storm).count(), 2);
        assert!(p.windows(2).all(|w| w[0].end_s == w[1].start_s));
        assert_eq!((p[0].start_s, p[6].end_s), (0.0, 600.0));
    }

    #[test]
    fn a_given_outage_is_centred_and_storms_it_would_overlap_are_left_out() {
        let p = phases(Duration::from_secs(180), Some(Duration::from_secs(60)));
        let kinds: Vec<_> = p.iter().map(|p| (p.kind, p.start_s, p.end_s)).collect();
        assert_eq!(
            kinds,
            vec![
                (FaultKind::Flaky, 0.0, 36.0),
                (FaultKind::Storm, 36.0, 45.0),
                (FaultKind::Flaky, 45.0, 60.0),
                (FaultKind::Outage, 60.0, 120.0),
                (FaultKind::Flaky, 120.0, 135.0),
                (FaultKind::Storm, 135.0, 144.0),
                (FaultKind::Flaky, 144.0, 180.0),
            ]
        );
        let long = phases(Duration::from_secs(100), Some(Duration::from_secs(80)));
        assert_eq!(
            long.iter().map(|p| p.kind).collect::<Vec<_>>(),
            vec![FaultKind::Flaky, FaultKind::Outage, FaultKind::Flaky]
        );
    }

    #[test]
    fn metrics_are_summed_by_endpoint() {
        let text = "# HELP x\n\
            pyrogate_inflight_profiles{endpoint=\"http://127.0.0.1:1\"} 3\n\
            pyrogate_inflight_profiles{endpoint=\"http://127.0.0.1:2\"} 0\n\
            pyrogate_dropped_total{endpoint=\"http://127.0.0.1:1\",reason=\"queue_full\"} 4\n\
            pyrogate_dropped_total{endpoint=\"http://127.0.0.1:1\",reason=\"shutdown\"} 1\n\
            pyrogate_inflight_profiles_x{endpoint=\"http://127.0.0.1:1\"} 9\n\
            pyrogate_requests_total{receiver=\"r\",route=\"/ingest\",status=\"200\"} 5\n";
        let m = sum_by(text, "pyrogate_inflight_profiles", "endpoint");
        assert_eq!(m.len(), 2);
        assert_eq!(m["http://127.0.0.1:1"], 3.0);
        assert_eq!(
            sum_by(text, "pyrogate_dropped_total", "endpoint")["http://127.0.0.1:1"],
            5.0
        );
        let s = samples(text, "pyrogate_dropped_total");
        assert_eq!(s[1].labels["reason"], "shutdown");
        assert_eq!(
            sum_by(text, "pyrogate_requests_total", "")
                .values()
                .sum::<f64>(),
            5.0
        );
        assert_eq!(samples_total(text, "pyrogate_inflight_profiles"), 3.0);
    }

    #[test]
    fn labels_with_escapes_and_commas() {
        let l = parse_labels(r#"a="x,y",b="q\"r",c="""#);
        assert_eq!(l["a"], "x,y");
        assert_eq!(l["b"], "q\"r");
        assert_eq!(l["c"], "");
    }

    #[test]
    fn this_process_descriptors_are_classified() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let _c = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        let names = BTreeMap::from([(port, "sink x".to_string())]);
        let k = fd_kinds(std::process::id(), &names);
        assert!(k.get("tcp listener").copied().unwrap_or(0) >= 1, "{k:?}");
        assert!(k.get("tcp to sink x").copied().unwrap_or(0) >= 1, "{k:?}");
    }

    #[test]
    fn vm_rss_is_read_in_kib() {
        let status = "Name:\tpyrogate\nVmHWM:\t   13952 kB\nVmRSS:\t   12001 kB\n";
        assert_eq!(parse_vm_rss_kib(status), Some(12001));
        assert_eq!(parse_vm_rss_kib("Name: x\n"), None);
        let me = std::process::id();
        assert!(rss_kib(me).unwrap() > 0);
        assert!(fd_count(me).unwrap() >= 3);
    }

    #[test]
    fn stats_of_restarted_sinks_add_up() {
        let mut a = SinkStats::default();
        a.statuses.insert(200, 2);
        a.deliveries.insert(7, vec![1, 1]);
        let mut b = SinkStats::default();
        b.statuses.insert(200, 3);
        b.statuses.insert(503, 1);
        b.resets = 2;
        b.deliveries.insert(7, vec![0, 1, 1, 1]);
        merge_stats(&mut a, &b);
        assert_eq!(a.statuses[&200], 5);
        assert_eq!(a.statuses[&503], 1);
        assert_eq!(a.resets, 2);
        assert_eq!(a.deliveries[&7], vec![1, 2, 1, 1]);
        assert_eq!(deliveries(&a, 7), (5, 4));
        assert_eq!(deliveries(&a, 8), (0, 0));
    }

    #[test]
    fn spreads_and_accounts() {
        assert_eq!(Spread::of(Vec::<u64>::new()), None);
        assert_eq!(
            Spread::of([5, 1, 9, 3]),
            Some(Spread {
                min: 1,
                median: 5,
                max: 9
            })
        );
        let a = Account {
            name: "a".into(),
            endpoint: "http://x".into(),
            accepted: 10,
            sent: 7,
            dropped: 2,
            inflight: 1,
            dropped_by_reason: BTreeMap::new(),
            retries: 0,
            sink_delivered: 7,
            sink_distinct: 7,
            sink_statuses: BTreeMap::new(),
            sink_resets: 0,
            sink_corrupt: 0,
        };
        assert!(a.balanced());
        assert!(a.sink_agrees());
        let b = Account {
            sink_delivered: 8,
            ..a.clone()
        };
        assert!(!b.sink_agrees());
    }

    #[test]
    fn the_gateway_config_forwards_to_every_sink() {
        let c = gateway_config(
            "enqueued",
            &[
                ("a", SocketAddr::from(([127, 0, 0, 1], 4001))),
                ("flaky", SocketAddr::from(([127, 0, 0, 1], 4003))),
            ],
        );
        assert!(c.contains("acknowledge = \"enqueued\""));
        assert!(c.contains(
            "forward_to  = [pyroscope.write.a.receiver, pyroscope.write.flaky.receiver]"
        ));
        assert!(c.contains("url = \"http://127.0.0.1:4003\""));
    }

    #[test]
    fn log_keys_are_warnings_and_errors_only() {
        assert_eq!(
            log_key("ts=1 level=warn msg=\"queue full\" endpoint=x"),
            Some("warn: queue full".into())
        );
        assert_eq!(log_key("ts=1 level=info msg=\"ready\""), None);
    }
}
