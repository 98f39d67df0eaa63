//! `loadtest compare`: pyrogate against the alternatives, same machine, same load, in rounds.
//!
//! Owns: the systems under test — a direct-to-sink baseline, pyrogate (its release binary, one
//! `pyroscope.write` per destination; with `--relabel` also the same behind a five-rule
//! `pyroscope.relabel`) and nginx as a mirroring reverse proxy (`proxy_pass` to the
//! first sink, one `mirror` + `mirror_request_body on` per further sink, generated config) —
//! starting and stopping them (by PID, `kill -TERM` then SIGKILL after a grace period), running
//! each under the same closed-loop load in alternating order round after round, and measuring
//! uploads/s, latency percentiles, CPU time per 1,000 uploads (utime + stime of the system's
//! processes from `/proc/PID/stat`, nginx's master and workers summed), peak resident memory
//! (`VmHWM`, summed over those processes) and the integrity check against the sinks; the
//! report (CPU per upload split into user and kernel time, throughput, percentiles, peak RSS,
//! ratios against pyrogate and against nginx, the issue's targets per mix and core count) as
//! text, Markdown, JSON and two SVG plots. Each system gets the same `--cores` (`N`, or
//! `default`: pyrogate's own default against one nginx worker per CPU), optionally pinned away
//! from the load ([`crate::placement`]). nginx's one `location /` mirrors every route, Push
//! included. Installs nothing: a missing peer is reported with its install command and
//! skipped. Does not own the table and plot primitives (`report`, `svg`). Cold path; bounded:
//! rounds × systems × duration.

use std::fmt::Write as _;
use std::fs;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};

use crate::bodies::{BodyPool, Mix};
use crate::generator::{self, Plan, Schedule};
use crate::integrity::{Sink, SinkConfig};
use crate::placement::{self, Cores, Pinning};
use crate::report::{markdown_table, opt1, ratio, text_table, thousands};
use crate::stats::{self, Latencies, Outcomes, fmt_us};
use crate::svg;

/// How long a started system gets to become ready.
const READY_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a stopped system gets to exit after SIGTERM before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(10);
/// How long the sinks may keep receiving after the load ends (mirrors finishing).
const SETTLE_MAX: Duration = Duration::from_secs(3);
/// The nginx install hint.
pub const NGINX_HINT: &str = "apt-get install nginx";

/// A system under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum System {
    /// The generator straight to the first sink: the ceiling of this machine.
    Direct,
    Pyrogate {
        fanout: usize,
    },
    /// pyrogate with [`RELABEL_RULES`] between the receiver and the writers.
    PyrogateRelabel {
        fanout: usize,
    },
    Nginx {
        fanout: usize,
    },
}

impl System {
    pub fn name(self) -> String {
        match self {
            System::Direct => "direct (no gateway)".into(),
            System::Pyrogate { fanout } => format!("pyrogate fan-out {fanout}"),
            System::PyrogateRelabel { fanout } => format!("pyrogate+relabel fan-out {fanout}"),
            System::Nginx { fanout } => format!("nginx mirror fan-out {fanout}"),
        }
    }

    pub fn fanout(self) -> usize {
        match self {
            System::Direct => 1,
            System::Pyrogate { fanout }
            | System::PyrogateRelabel { fanout }
            | System::Nginx { fanout } => fanout,
        }
    }
}

/// What `compare` runs.
#[derive(Debug, Clone)]
pub struct CompareConfig {
    pub rounds: usize,
    pub duration: Duration,
    pub connections: usize,
    pub mix: Mix,
    /// Core threads of pyrogate and worker processes of nginx.
    pub cores: Cores,
    /// Pin the gateway to the first CPUs and the generator and sinks to the others, where
    /// the machine has CPUs the gateway does not use ([`placement::plan`]).
    pub pin: bool,
    /// Fan-outs pyrogate runs at (memory vs destinations); the headline is 2.
    pub pyrogate_fanouts: Vec<usize>,
    pub nginx_fanout: usize,
    /// Also run pyrogate with a five-rule `pyroscope.relabel` ([`RELABEL_RULES`]) at the
    /// headline fan-out ([`headline_fanout`]), in the same rounds.
    pub relabel: bool,
    pub label_sets: usize,
    pub seed: u64,
    pub pyrogate_bin: PathBuf,
    /// `None`: nginx is not installed (skipped).
    pub nginx_bin: Option<PathBuf>,
    pub out_dir: PathBuf,
    pub quiet: bool,
}

/// Where a workspace build puts the release binary of pyrogate.
pub fn default_pyrogate_bin() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    target.join("release/pyrogate")
}

/// `nginx` on `PATH` or in `/usr/sbin`.
pub fn find_nginx() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/local/sbin")])
        .map(|d| d.join("nginx"))
        .find(|p| p.is_file())
}

/// One measured run of one system.
#[derive(Debug, Clone)]
pub struct Run {
    pub round: usize,
    pub uploads: u64,
    pub elapsed: Duration,
    pub latencies: Latencies,
    pub outcomes: Outcomes,
    pub cpu: Option<stats::CpuTimes>,
    pub peak_rss_kib: Option<u64>,
    pub integrity: generator::Integrity,
    /// The `pyroscope_relabel_*` counters after the run (relabel systems only).
    pub relabel: Option<RelabelCounters>,
}

/// pyrogate's `pyroscope_relabel_*` counters, summed over its relabel components.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RelabelCounters {
    pub processed: u64,
    pub written: u64,
    pub dropped: u64,
    pub cache_hits: u64,
    pub cache_misses: u64,
}

impl RelabelCounters {
    /// Reads them from a `/metrics` text.
    pub fn from_metrics(text: &str) -> RelabelCounters {
        let m = |name: &str| generator::sum_metric(text, name);
        RelabelCounters {
            processed: m("pyroscope_relabel_profiles_processed"),
            written: m("pyroscope_relabel_profiles_written"),
            dropped: m("pyroscope_relabel_profiles_dropped"),
            cache_hits: m("pyroscope_relabel_cache_hits"),
            cache_misses: m("pyroscope_relabel_cache_misses"),
        }
    }

    fn add(&mut self, o: &RelabelCounters) {
        self.processed += o.processed;
        self.written += o.written;
        self.dropped += o.dropped;
        self.cache_hits += o.cache_hits;
        self.cache_misses += o.cache_misses;
    }

    fn to_json(self) -> serde_json::Value {
        serde_json::json!({
            "processed": self.processed, "written": self.written, "dropped": self.dropped,
            "cache_hits": self.cache_hits, "cache_misses": self.cache_misses,
        })
    }
}

/// Every run of one system, and their aggregate.
#[derive(Debug, Clone)]
pub struct SystemResult {
    pub system: System,
    pub runs: Vec<Run>,
}

impl SystemResult {
    pub fn uploads(&self) -> u64 {
        self.runs.iter().map(|r| r.uploads).sum()
    }

    pub fn per_second(&self) -> f64 {
        let secs: f64 = self.runs.iter().map(|r| r.elapsed.as_secs_f64()).sum();
        self.uploads() as f64 / secs.max(1e-9)
    }

    pub fn latencies(&self) -> Latencies {
        let mut h = Latencies::new();
        for r in &self.runs {
            h.merge(&r.latencies);
        }
        h
    }

    pub fn outcomes(&self) -> Outcomes {
        let mut o = Outcomes::default();
        for r in &self.runs {
            o.merge(&r.outcomes);
        }
        o
    }

    /// CPU milliseconds per 1,000 uploads over every run.
    pub fn cpu_ms_per_1k(&self) -> Option<f64> {
        let cpu: Option<Duration> = self
            .runs
            .iter()
            .map(|r| r.cpu.map(stats::CpuTimes::total))
            .sum();
        let uploads = self.uploads();
        (uploads > 0).then_some(())?;
        Some(cpu?.as_secs_f64() * 1e3 * 1e3 / uploads as f64)
    }

    /// User-space CPU milliseconds per 1,000 uploads over every run.
    pub fn user_ms_per_1k(&self) -> Option<f64> {
        self.part_ms_per_1k(|c| c.user)
    }

    /// Kernel (system) CPU milliseconds per 1,000 uploads over every run.
    pub fn kernel_ms_per_1k(&self) -> Option<f64> {
        self.part_ms_per_1k(|c| c.system)
    }

    fn part_ms_per_1k(&self, part: fn(stats::CpuTimes) -> Duration) -> Option<f64> {
        let cpu: Option<Duration> = self.runs.iter().map(|r| r.cpu.map(part)).sum();
        let uploads = self.uploads();
        (uploads > 0).then_some(())?;
        Some(cpu?.as_secs_f64() * 1e6 / uploads as f64)
    }

    /// Share of the CPU time spent in the kernel (system time), over every run.
    pub fn kernel_share(&self) -> Option<f64> {
        let cpu: stats::CpuTimes = self.runs.iter().map(|r| r.cpu).sum::<Option<_>>()?;
        let total = cpu.total().as_secs_f64();
        (total > 0.0).then(|| cpu.system.as_secs_f64() / total)
    }

    pub fn peak_rss_mib(&self) -> Option<f64> {
        self.runs
            .iter()
            .filter_map(|r| r.peak_rss_kib)
            .max()
            .map(|k| k as f64 / 1024.0)
    }

    pub fn lost(&self) -> u64 {
        self.runs.iter().map(|r| r.integrity.lost()).sum()
    }

    pub fn integrity_passed(&self) -> bool {
        self.runs.iter().all(|r| r.integrity.passed())
    }

    /// The relabel counters summed over the runs that have them.
    pub fn relabel(&self) -> Option<RelabelCounters> {
        let mut any = None;
        for c in self.runs.iter().filter_map(|r| r.relabel.as_ref()) {
            any.get_or_insert_with(RelabelCounters::default).add(c);
        }
        any
    }

    /// CPU milliseconds per 1,000 uploads of the run of `round`.
    fn round_cpu_ms_per_1k(&self, round: usize) -> Option<f64> {
        let r = self.runs.iter().find(|r| r.round == round)?;
        (r.uploads > 0).then_some(())?;
        Some(r.cpu?.total().as_secs_f64() * 1e6 / r.uploads as f64)
    }
}

/// A started system: its processes and the address the generator targets.
#[derive(Debug)]
pub struct Started {
    child: Option<Child>,
    addr: SocketAddr,
    admin: Option<SocketAddr>,
    log: Option<PathBuf>,
}

impl Started {
    /// The PIDs whose CPU and memory count: the process and its direct children.
    pub fn pids(&self) -> Vec<u32> {
        let Some(c) = &self.child else {
            return Vec::new();
        };
        let mut pids = vec![c.id()];
        pids.extend(stats::children(c.id()));
        pids
    }

    /// The address uploads go to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// pyrogate's admin listener (`/metrics`).
    pub fn admin(&self) -> Option<SocketAddr> {
        self.admin
    }

    /// CPU time of the processes so far.
    pub fn cpu(&self) -> Option<stats::CpuTimes> {
        let pids = self.pids();
        if pids.is_empty() {
            return None;
        }
        pids.iter().map(|&p| stats::cpu_time(p)).sum()
    }

    /// Peak resident memory, summed over the processes.
    pub fn peak_rss_kib(&self) -> Option<u64> {
        let pids = self.pids();
        if pids.is_empty() {
            return None;
        }
        pids.iter().map(|&p| stats::peak_rss_kib(p)).sum()
    }

    /// SIGTERM by PID (via kill(1): the workspace forbids `unsafe` libc calls), wait, then
    /// SIGKILL. Returns the tail of the log for the report when the exit was not clean.
    pub fn stop(mut self) -> Option<String> {
        let mut child = self.child.take()?;
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status();
        let deadline = Instant::now() + STOP_GRACE;
        loop {
            match child.try_wait() {
                Ok(Some(status)) if status.success() => return None,
                Ok(Some(status)) => return Some(format!("exited with {status}")),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50))
                }
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Some(format!("did not stop within {STOP_GRACE:?}; killed"));
                }
            }
        }
    }
}

impl Drop for Started {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A free loopback port (bound, then released for the system to take).
pub fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// pyrogate's configuration: one receiver on an ephemeral port, one `pyroscope.write` per sink.
pub fn pyrogate_config(sinks: &[SocketAddr]) -> String {
    let writes: Vec<String> = (0..sinks.len())
        .map(|i| format!("pyroscope.write.sink{i}.receiver"))
        .collect();
    let mut cfg = format!(
        "pyroscope.receive_http \"loadtest\" {{\n\thttp {{\n\t\tlisten_address = \"127.0.0.1\"\n\t\tlisten_port    = 0\n\t}}\n\tforward_to = [{}]\n}}\n",
        writes.join(", ")
    );
    write_components(&mut cfg, sinks);
    cfg
}

/// The rules of the `--relabel` system, written for the generator's label sets
/// ([`crate::bodies::label_sets`]: `service_name` `svc-N`, `env`, `pod`, `region`): every one
/// touches every upload's labels, and none drops one.
pub const RELABEL_RULES: &str = "\
\t// env=production becomes environment=production ...
\trule {
\t\taction        = \"replace\"
\t\tsource_labels = [\"env\"]
\t\ttarget_label  = \"environment\"
\t}

\t// ... and the old name goes.
\trule {
\t\taction = \"labeldrop\"
\t\tregex  = \"env\"
\t}

\t// Evaluated on every upload; the generator's services are svc-N, so nothing is dropped.
\trule {
\t\taction        = \"drop\"
\t\tsource_labels = [\"service_name\"]
\t\tregex         = \"test-.*\"
\t}

\trule {
\t\taction        = \"hashmod\"
\t\tsource_labels = [\"pod\"]
\t\tmodulus       = 8
\t\ttarget_label  = \"shard\"
\t}

\trule {
\t\taction        = \"lowercase\"
\t\tsource_labels = [\"region\"]
\t\ttarget_label  = \"zone\"
\t}
";

/// pyrogate's configuration of the `--relabel` system: the receiver forwards to one
/// `pyroscope.relabel` with [`RELABEL_RULES`], which forwards to one `pyroscope.write` per sink
/// (the same fan-out as [`pyrogate_config`]).
pub fn pyrogate_relabel_config(sinks: &[SocketAddr]) -> String {
    let writes: Vec<String> = (0..sinks.len())
        .map(|i| format!("pyroscope.write.sink{i}.receiver"))
        .collect();
    let mut cfg = "pyroscope.receive_http \"loadtest\" {\n\thttp {\n\t\tlisten_address = \"127.0.0.1\"\n\t\tlisten_port    = 0\n\t}\n\tforward_to = [pyroscope.relabel.loadtest.receiver]\n}\n".to_string();
    let _ = write!(
        cfg,
        "\npyroscope.relabel \"loadtest\" {{\n\tforward_to = [{}]\n\n{RELABEL_RULES}}}\n",
        writes.join(", ")
    );
    write_components(&mut cfg, sinks);
    cfg
}

/// One `pyroscope.write "sinkI"` per sink.
fn write_components(cfg: &mut String, sinks: &[SocketAddr]) {
    for (i, s) in sinks.iter().enumerate() {
        let _ = write!(
            cfg,
            "\npyroscope.write \"sink{i}\" {{\n\tendpoint {{\n\t\turl = \"http://{s}\"\n\t}}\n}}\n"
        );
    }
}

/// nginx's configuration: `proxy_pass` to the first sink, a `mirror` per further sink, bodies
/// held in memory up to Pyroscope's profile limit, keep-alive upstream pools.
pub fn nginx_config(dir: &Path, port: u16, sinks: &[SocketAddr], workers: usize) -> String {
    let d = dir.display();
    let mut c = format!(
        "worker_processes {workers};\ndaemon off;\nmaster_process on;\npid {d}/nginx.pid;\nerror_log {d}/error.log warn;\nevents {{ worker_connections 4096; }}\nhttp {{\n  access_log off;\n  client_body_buffer_size 8m;\n  client_max_body_size 256m;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n  keepalive_requests 1000000;\n"
    );
    for (i, s) in sinks.iter().enumerate() {
        let _ = writeln!(c, "  upstream sink{i} {{ server {s}; keepalive 64; }}");
    }
    let _ = write!(
        c,
        "  server {{\n    listen 127.0.0.1:{port};\n    location / {{\n"
    );
    for i in 1..sinks.len() {
        let _ = writeln!(c, "      mirror /__mirror{i};");
    }
    if sinks.len() > 1 {
        c.push_str("      mirror_request_body on;\n");
    }
    c.push_str("      proxy_http_version 1.1;\n      proxy_set_header Connection \"\";\n      proxy_pass http://sink0;\n    }\n");
    for i in 1..sinks.len() {
        let _ = write!(
            c,
            "    location = /__mirror{i} {{\n      internal;\n      proxy_http_version 1.1;\n      proxy_set_header Connection \"\";\n      proxy_pass http://sink{i}$request_uri;\n    }}\n"
        );
    }
    c.push_str("  }\n}\n");
    c
}

fn wait_for_port(addr: SocketAddr, child: &mut Child) -> anyhow::Result<()> {
    let deadline = Instant::now() + READY_TIMEOUT;
    while Instant::now() < deadline {
        if std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        if let Some(status) = child.try_wait()? {
            bail!("exited during start-up with {status}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    bail!("not listening on {addr} after {READY_TIMEOUT:?}")
}

/// The value of `key=` in a logfmt line.
fn logfmt_value<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    line.split_ascii_whitespace()
        .find_map(|t| t.strip_prefix(key)?.strip_prefix('='))
}

/// Starts `bin run --cores=N` on a generated config forwarding to `sinks`; waits for
/// `pyrogate ready` and reads the receiver and admin addresses from its log (in `dir`).
pub fn start_pyrogate(
    bin: &Path,
    cores: usize,
    sinks: &[SocketAddr],
    dir: &Path,
) -> anyhow::Result<Started> {
    start_pyrogate_with(bin, cores, &pyrogate_config(sinks), dir)
}

/// A pyrogate process that logged `pyrogate ready`, with what its log says.
#[derive(Debug)]
pub struct Launched {
    pub child: Child,
    /// The first receiver's address (the one the generator targets).
    pub addr: SocketAddr,
    pub admin: Option<SocketAddr>,
    pub log: PathBuf,
    /// The `pyrogate ready` log line.
    pub ready: String,
}

/// Starts `bin run [--cores=N] --server.http.listen-addr=127.0.0.1:0 CONFIG` with `config`
/// written into `dir`, its log in `dir/pyrogate.log`; waits for `pyrogate ready` (killing it
/// on failure). `cores: None` runs pyrogate's default (every core).
pub fn launch_pyrogate(
    bin: &Path,
    cores: Option<usize>,
    config: &str,
    dir: &Path,
) -> anyhow::Result<Launched> {
    launch_pyrogate_on(bin, cores, config, dir, None)
}

/// [`launch_pyrogate`] through `taskset -c CPUS` when `cpus` is given.
pub fn launch_pyrogate_on(
    bin: &Path,
    cores: Option<usize>,
    config: &str,
    dir: &Path,
    cpus: Option<&str>,
) -> anyhow::Result<Launched> {
    let conf = dir.join("pyrogate.alloy");
    fs::write(&conf, config)?;
    let log = dir.join("pyrogate.log");
    let mut cmd = placement::command(bin, cpus);
    cmd.arg("run");
    if let Some(c) = cores {
        cmd.arg(format!("--cores={c}"));
    }
    let mut child = cmd
        .arg("--server.http.listen-addr=127.0.0.1:0")
        .arg(&conf)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(fs::File::create(&log)?)
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        let text = fs::read_to_string(&log).unwrap_or_default();
        if let Some(ready) = text.lines().find(|l| l.contains("msg=\"pyrogate ready\"")) {
            let addr = |what: &str| {
                text.lines()
                    .find(|l| l.contains(what))
                    .and_then(|l| logfmt_value(l, "addr"))
                    .and_then(|a| a.parse::<SocketAddr>().ok())
            };
            let Some(recv) = addr("msg=\"receiver listening\"") else {
                let _ = child.kill();
                let _ = child.wait();
                bail!("no `receiver listening` line in pyrogate's log:\n{text}");
            };
            return Ok(Launched {
                ready: ready.to_string(),
                admin: addr("msg=\"admin listening\""),
                addr: recv,
                child,
                log,
            });
        }
        if let Some(status) = child.try_wait()? {
            bail!("pyrogate exited during start-up with {status}:\n{text}");
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!("pyrogate not ready after {READY_TIMEOUT:?}:\n{text}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Starts `bin run --cores=N` on the given configuration text (written into `dir`); waits for
/// `pyrogate ready`. The first receiver's address is the one the generator targets.
pub fn start_pyrogate_with(
    bin: &Path,
    cores: usize,
    config: &str,
    dir: &Path,
) -> anyhow::Result<Started> {
    let l = launch_pyrogate(bin, Some(cores), config, dir)?;
    Ok(Started {
        child: Some(l.child),
        addr: l.addr,
        admin: l.admin,
        log: Some(l.log),
    })
}

fn start_nginx(
    bin: &Path,
    cfg: &CompareConfig,
    place: &Placement,
    sinks: &[SocketAddr],
    dir: &Path,
) -> anyhow::Result<Started> {
    let workers = cfg.cores.threads(place.cpus);
    let config = nginx_config(dir, free_port()?, sinks, workers);
    start_nginx_on(bin, &config, dir, place.gateway.as_deref())
}

/// Where a comparison runs: the CPUs the machine gave this process before any pinning, and
/// the gateway's CPU list when pinned.
#[derive(Debug, Clone)]
pub struct Placement {
    pub cpus: usize,
    pub gateway: Option<String>,
}

impl Started {
    /// Current resident memory, summed over the processes, in KiB.
    pub fn rss_kib(&self) -> Option<u64> {
        let pids = self.pids();
        if pids.is_empty() {
            return None;
        }
        pids.iter().map(|&p| stats::rss_kib(p)).sum()
    }
}

/// Starts nginx on `config` (from [`nginx_config`], whose `listen` line gives the port) in
/// `dir`, and waits until it accepts connections.
pub fn start_nginx_with(bin: &Path, config: &str, dir: &Path) -> anyhow::Result<Started> {
    start_nginx_on(bin, config, dir, None)
}

/// [`start_nginx_with`] through `taskset -c CPUS` when `cpus` is given (the workers inherit it).
pub fn start_nginx_on(
    bin: &Path,
    config: &str,
    dir: &Path,
    cpus: Option<&str>,
) -> anyhow::Result<Started> {
    use std::os::unix::fs::PermissionsExt;
    // Workers may run as another user (nobody) when started as root: they need the temp dirs.
    for sub in ["body", "proxy"] {
        let p = dir.join(sub);
        fs::create_dir_all(&p)?;
        fs::set_permissions(&p, fs::Permissions::from_mode(0o777))?;
    }
    fs::set_permissions(dir, fs::Permissions::from_mode(0o755))?;
    let port: u16 = config
        .split("listen 127.0.0.1:")
        .nth(1)
        .and_then(|r| r.split(';').next())
        .and_then(|p| p.parse().ok())
        .context("nginx config without `listen 127.0.0.1:PORT;`")?;
    let conf = dir.join("nginx.conf");
    fs::write(&conf, config)?;
    let log = dir.join("nginx.stderr");
    let mut child = placement::command(bin, cpus)
        .arg("-p")
        .arg(dir)
        .arg("-e")
        .arg(dir.join("error.log"))
        .arg("-c")
        .arg(&conf)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(fs::File::create(&log)?)
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    if let Err(e) = wait_for_port(addr, &mut child) {
        let _ = child.kill();
        let _ = child.wait();
        let err = fs::read_to_string(dir.join("error.log")).unwrap_or_default();
        bail!("nginx: {e}\n{err}");
    }
    Ok(Started {
        child: Some(child),
        addr,
        admin: None,
        log: Some(dir.join("error.log")),
    })
}

/// Waits until the sinks' request counts stop moving (bounded by [`SETTLE_MAX`]).
fn settle(sinks: &[Sink]) {
    let total = || sinks.iter().map(|s| s.stats().requests).sum::<u64>();
    let deadline = Instant::now() + SETTLE_MAX;
    let mut last = total();
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(150));
        let now = total();
        if now == last {
            return;
        }
        last = now;
    }
}

fn run_one(
    cfg: &CompareConfig,
    system: System,
    round: usize,
    sinks: &[Sink],
    pool: &BodyPool,
    work: &Path,
    place: &Placement,
) -> anyhow::Result<Run> {
    let fanout = system.fanout().min(sinks.len());
    let sink_addrs: Vec<SocketAddr> = sinks.iter().take(fanout).map(Sink::addr).collect();
    let dir = work.join(format!(
        "round{round}-{}",
        system.name().replace(' ', "-").replace(['(', ')'], "")
    ));
    fs::create_dir_all(&dir)?;
    let started = match system {
        System::Direct => Started {
            child: None,
            addr: sink_addrs[0],
            admin: None,
            log: None,
        },
        System::Pyrogate { .. } | System::PyrogateRelabel { .. } => {
            let config = if matches!(system, System::Pyrogate { .. }) {
                pyrogate_config(&sink_addrs)
            } else {
                pyrogate_relabel_config(&sink_addrs)
            };
            let l = launch_pyrogate_on(
                &cfg.pyrogate_bin,
                cfg.cores.pyrogate_flag(),
                &config,
                &dir,
                place.gateway.as_deref(),
            )?;
            Started {
                child: Some(l.child),
                addr: l.addr,
                admin: l.admin,
                log: Some(l.log),
            }
        }
        System::Nginx { .. } => {
            let bin = cfg.nginx_bin.as_deref().context("nginx is not installed")?;
            start_nginx(bin, cfg, place, &sink_addrs, &dir)?
        }
    };
    let run_tag = generator::new_run_tag();
    let plan = Plan {
        connections: cfg.connections,
        schedule: Schedule::Closed,
        duration: cfg.duration,
        max_uploads: u64::MAX,
        timeout: Duration::from_secs(30),
    };
    let label = format!("[round {}/{}] {:<28}", round + 1, cfg.rounds, system.name());
    let cpu0 = started.cpu();
    let make = |i: u64| pool.request(generator::id(run_tag, i));
    let result = generator::drive(started.addr, &plan, &make, &label, !cfg.quiet);
    settle(sinks);
    let cpu1 = started.cpu();
    let peak = started.peak_rss_kib();
    let metrics = started.admin.and_then(|a| {
        let (status, body) = generator::http_get(a, "/metrics", Duration::from_secs(5)).ok()?;
        (status == 200).then(|| String::from_utf8_lossy(&body).into_owned())
    });
    let dropped = metrics
        .as_deref()
        .map(|m| generator::sum_metric(m, "pyrogate_dropped_total"));
    let relabel = match system {
        System::PyrogateRelabel { .. } => metrics.as_deref().map(RelabelCounters::from_metrics),
        _ => None,
    };
    let named: Vec<(String, crate::integrity::SinkStats)> = sinks
        .iter()
        .take(fanout)
        .enumerate()
        .map(|(i, s)| (format!("sink{i}"), s.stats()))
        .collect();
    let integrity = generator::check_integrity(run_tag, &result.statuses, &named, dropped);
    let log = started.log.clone();
    if let Some(problem) = started.stop()
        && !cfg.quiet
    {
        eprintln!(
            "{}: {problem} (log: {})",
            system.name(),
            log.map(|l| l.display().to_string()).unwrap_or_default()
        );
    }
    let cpu = match (cpu0, cpu1) {
        (Some(a), Some(b)) => Some(b.since(a)),
        _ => None,
    };
    Ok(Run {
        round,
        uploads: result.uploads(),
        elapsed: result.elapsed,
        latencies: result.latencies,
        outcomes: result.outcomes,
        cpu,
        peak_rss_kib: peak,
        integrity,
        relabel,
    })
}

/// Everything a compare produced.
#[derive(Debug)]
pub struct Comparison {
    pub config: CompareConfig,
    pub results: Vec<SystemResult>,
    pub skipped: Vec<String>,
    pub started_unix: u64,
    pub wall: Duration,
    /// CPUs this process could use at the start (before pinning).
    pub cpus: usize,
    pub pinning: Pinning,
}

/// The systems of a config, in their first-round order.
pub fn systems(cfg: &CompareConfig) -> Vec<System> {
    let mut out = vec![System::Direct];
    out.extend(
        cfg.pyrogate_fanouts
            .iter()
            .map(|&f| System::Pyrogate { fanout: f }),
    );
    if cfg.relabel {
        out.push(System::PyrogateRelabel {
            fanout: headline_fanout(cfg),
        });
    }
    if cfg.nginx_bin.is_some() {
        out.push(System::Nginx {
            fanout: cfg.nginx_fanout,
        });
    }
    out
}

/// Runs every system for every round, rotating the order each round.
pub fn run(cfg: CompareConfig) -> anyhow::Result<Comparison> {
    let begun = Instant::now();
    let started_unix = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let mut skipped = Vec::new();
    if cfg.nginx_bin.is_none() {
        skipped.push(format!(
            "nginx: not installed (install it with `{NGINX_HINT}`)"
        ));
    }
    // Count the CPUs before pinning this process to a part of them.
    let cpus = placement::allowed_cpus();
    let mut pinning = placement::plan(cfg.pin, &cpus, cfg.cores.threads(cpus.len()));
    if let Pinning::Pinned { load, .. } = &pinning
        && let Err(e) = placement::pin_self(load)
    {
        pinning = Pinning::NotPinned(format!("not pinned: {e}"));
    }
    if !cfg.quiet {
        eprintln!(
            "compare: cores {}; {}",
            cfg.cores.describe(cpus.len()),
            pinning.describe()
        );
    }
    let place = Placement {
        cpus: cpus.len(),
        gateway: pinning.gateway_list(),
    };
    let systems = systems(&cfg);
    let max_fanout = systems.iter().map(|s| s.fanout()).max().unwrap_or(1);
    let sinks: Vec<Sink> = (0..max_fanout)
        .map(|i| {
            Sink::start(SinkConfig {
                seed: cfg.seed + i as u64,
                ..SinkConfig::default()
            })
        })
        .collect::<Result<_, _>>()
        .context("starting the sinks")?;
    let pool = BodyPool::new(
        cfg.mix,
        crate::bodies::DEFAULT_TEMPLATES,
        cfg.label_sets,
        cfg.seed,
    );
    let work = std::env::temp_dir().join(format!(
        "loadtest-compare-{}-{started_unix}",
        std::process::id()
    ));
    fs::create_dir_all(&work)?;
    let mut results: Vec<SystemResult> = systems
        .iter()
        .map(|&s| SystemResult {
            system: s,
            runs: Vec::new(),
        })
        .collect();
    for round in 0..cfg.rounds {
        let n = systems.len();
        for k in 0..n {
            let idx = (k + round) % n;
            let system = systems[idx];
            match run_one(&cfg, system, round, &sinks, &pool, &work, &place) {
                Ok(r) => {
                    if !cfg.quiet {
                        eprintln!(
                            "[round {}/{}] {:<28} {:>8.0} uploads/s  p99 {:>9}  cpu/1k {:>7}  {}",
                            round + 1,
                            cfg.rounds,
                            system.name(),
                            r.uploads as f64 / r.elapsed.as_secs_f64().max(1e-9),
                            fmt_us(r.latencies.at(0.99)),
                            r.cpu
                                .map(|c| format!(
                                    "{:.1}ms",
                                    c.total().as_secs_f64() * 1e6 / r.uploads.max(1) as f64
                                ))
                                .unwrap_or_else(|| "—".into()),
                            r.integrity.summary()
                        );
                    }
                    results[idx].runs.push(r);
                }
                Err(e) => {
                    skipped.push(format!("{} (round {}): {e:#}", system.name(), round + 1));
                    if !cfg.quiet {
                        eprintln!("{}: {e:#}", system.name());
                    }
                }
            }
        }
    }
    let _ = fs::remove_dir_all(&work);
    results.retain(|r| !r.runs.is_empty());
    Ok(Comparison {
        config: cfg,
        results,
        skipped,
        started_unix,
        wall: begun.elapsed(),
        cpus: place.cpus,
        pinning,
    })
}

/// The fan-out of the headline pyrogate system: nginx's (2 by default) when pyrogate runs at
/// it, else pyrogate's first.
pub fn headline_fanout(cfg: &CompareConfig) -> usize {
    if cfg.pyrogate_fanouts.contains(&cfg.nginx_fanout) {
        cfg.nginx_fanout
    } else {
        cfg.pyrogate_fanouts
            .first()
            .copied()
            .unwrap_or(cfg.nginx_fanout)
    }
}

/// The headline system: pyrogate at nginx's fan-out (2 by default), else the first pyrogate.
fn reference(c: &Comparison) -> Option<&SystemResult> {
    c.results
        .iter()
        .find(|r| {
            r.system
                == System::Pyrogate {
                    fanout: c.config.nginx_fanout,
                }
        })
        .or_else(|| {
            c.results
                .iter()
                .find(|r| matches!(r.system, System::Pyrogate { .. }))
        })
}

/// The issue's bound on the relabel system's CPU per upload, as a ratio to plain pyrogate.
pub const RELABEL_CPU_TARGET: f64 = 1.05;

/// The median of `v` (the mean of the middle two for an even count); `None` when empty.
pub fn median(v: &[f64]) -> Option<f64> {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(v[n / 2]),
        _ => Some((v[n / 2 - 1] + v[n / 2]) / 2.0),
    }
}

/// The relabel verdict: CPU per upload of pyrogate+relabel over plain pyrogate at the same
/// fan-out, over all rounds and round by round (both ran in each round).
fn relabel_verdict(c: &Comparison) -> Option<String> {
    let rel = c
        .results
        .iter()
        .find(|r| matches!(r.system, System::PyrogateRelabel { .. }))?;
    let f = rel.system.fanout();
    let plain = c
        .results
        .iter()
        .find(|r| r.system == System::Pyrogate { fanout: f });
    let Some(plain) = plain else {
        return Some(format!(
            "relabel cost at fan-out {f}: no plain pyrogate run at that fan-out to compare with"
        ));
    };
    let rounds: Vec<f64> = (0..c.config.rounds)
        .filter_map(|k| Some(rel.round_cpu_ms_per_1k(k)? / plain.round_cpu_ms_per_1k(k)?))
        .collect();
    let counters = rel.relabel().map_or_else(
        || "relabel counters: not scraped".to_string(),
        |r| {
            let looked_up = r.cache_hits + r.cache_misses;
            format!(
                "relabel processed {}, written {}, dropped {}, cache hits {:.1}%",
                thousands(r.processed),
                thousands(r.written),
                r.dropped,
                r.cache_hits as f64 * 100.0 / looked_up.max(1) as f64
            )
        },
    );
    let (Some(r), Some(p)) = (rel.cpu_ms_per_1k(), plain.cpu_ms_per_1k()) else {
        return Some(format!(
            "relabel cost at fan-out {f}: no CPU figures ({counters})"
        ));
    };
    let per_round: Vec<String> = rounds.iter().map(|x| format!("{x:.3}")).collect();
    let med = median(&rounds);
    Some(format!(
        "relabel cost at fan-out {f} (5 rules, same rounds): CPU per 1,000 uploads pyrogate+relabel {r:.1} ms, pyrogate {p:.1} ms: ratio {:.3} (per round {}; median {}) (target ≤ {RELABEL_CPU_TARGET:.2}: {}); {counters}",
        r / p,
        per_round.join(", "),
        med.map_or_else(|| "?".to_string(), |m| format!("{m:.3}")),
        if r / p <= RELABEL_CPU_TARGET {
            "met"
        } else {
            "missed"
        },
    ))
}

const HEADERS: [&str; 13] = [
    "system",
    "uploads",
    "uploads/s",
    "p50",
    "p90",
    "p99",
    "p99.9",
    "max",
    "CPU ms/1k uploads",
    "user",
    "kernel",
    "peak RSS MiB",
    "errors",
];

/// The result rows (one per system).
pub fn rows(c: &Comparison) -> Vec<Vec<String>> {
    c.results
        .iter()
        .map(|r| {
            let p = r.latencies().percentiles();
            let errors = r.outcomes().errors_text();
            vec![
                r.system.name(),
                thousands(r.uploads()),
                thousands(r.per_second().round() as u64),
                fmt_us(p.p50),
                fmt_us(p.p90),
                fmt_us(p.p99),
                fmt_us(p.p999),
                fmt_us(p.max),
                opt1(r.cpu_ms_per_1k()),
                opt1(r.user_ms_per_1k()),
                opt1(r.kernel_ms_per_1k()),
                opt1(r.peak_rss_mib()),
                if errors.is_empty() {
                    "0".into()
                } else {
                    errors
                },
            ]
        })
        .collect()
}

/// Ratios of each system against the reference pyrogate.
pub fn ratio_rows(c: &Comparison) -> Vec<Vec<String>> {
    let Some(base) = reference(c) else {
        return Vec::new();
    };
    c.results
        .iter()
        .map(|r| {
            vec![
                r.system.name(),
                ratio(Some(r.per_second()), Some(base.per_second())),
                ratio(
                    Some(r.latencies().at(0.99) as f64),
                    Some(base.latencies().at(0.99) as f64),
                ),
                ratio(r.cpu_ms_per_1k(), base.cpu_ms_per_1k()),
                ratio(r.peak_rss_mib(), base.peak_rss_mib()),
            ]
        })
        .collect()
}

const RATIO_HEADERS: [&str; 5] = ["system", "uploads/s", "p99", "CPU/1k uploads", "peak RSS"];

/// The nginx mirror at `--nginx-fanout`, when it ran.
fn nginx_result(c: &Comparison) -> Option<&SystemResult> {
    c.results.iter().find(|r| {
        r.system
            == System::Nginx {
                fanout: c.config.nginx_fanout,
            }
    })
}

/// Ratios of each system against the nginx mirror (the issue's "× nginx" figures).
pub fn nginx_ratio_rows(c: &Comparison) -> Vec<Vec<String>> {
    let Some(n) = nginx_result(c) else {
        return Vec::new();
    };
    c.results
        .iter()
        .filter(|r| r.system != n.system)
        .map(|r| {
            vec![
                r.system.name(),
                ratio(r.cpu_ms_per_1k(), n.cpu_ms_per_1k()),
                ratio(r.user_ms_per_1k(), n.user_ms_per_1k()),
                ratio(r.kernel_ms_per_1k(), n.kernel_ms_per_1k()),
                ratio(Some(r.per_second()), Some(n.per_second())),
                ratio(
                    Some(r.latencies().at(0.50) as f64),
                    Some(n.latencies().at(0.50) as f64),
                ),
                ratio(
                    Some(r.latencies().at(0.99) as f64),
                    Some(n.latencies().at(0.99) as f64),
                ),
                ratio(r.peak_rss_mib(), n.peak_rss_mib()),
            ]
        })
        .collect()
}

const NGINX_RATIO_HEADERS: [&str; 8] = [
    "system",
    "CPU/upload",
    "user",
    "kernel",
    "uploads/s",
    "p50",
    "p99",
    "peak RSS",
];

/// The issue's bound on pyrogate's CPU per upload over nginx's (same fan-out, as many nginx
/// workers as pyrogate cores) for a mix at a core count; `None` where it sets none.
pub fn cpu_target(mix: Mix, cores: Cores) -> Option<f64> {
    match (mix, cores) {
        (Mix::Go, Cores::Count(1)) => Some(0.50),
        (Mix::Go, _) => Some(0.60),
        (Mix::Jfr, Cores::Count(1)) => Some(0.70),
        (Mix::PushPython, Cores::Count(1)) => Some(2.5),
        (Mix::PushDotnet, Cores::Count(1)) => Some(0.6),
        _ => None,
    }
}

fn pct(share: Option<f64>) -> String {
    share.map_or_else(|| "?".to_string(), |k| format!("{:.0}%", k * 100.0))
}

/// The verdicts on the issue's targets, one line each.
pub fn verdicts(c: &Comparison) -> Vec<String> {
    let mut out = Vec::new();
    let f = c.config.nginx_fanout;
    let pyro = c
        .results
        .iter()
        .find(|r| r.system == System::Pyrogate { fanout: f });
    let nginx = c
        .results
        .iter()
        .find(|r| r.system == System::Nginx { fanout: f });
    let target = cpu_target(c.config.mix, c.config.cores);
    match (pyro.and_then(SystemResult::cpu_ms_per_1k), nginx.and_then(SystemResult::cpu_ms_per_1k)) {
        (Some(p), Some(n)) => out.push(format!(
            "CPU per 1,000 uploads at fan-out {f}: pyrogate {p:.1} ms ({} kernel), nginx {n:.1} ms ({} kernel): pyrogate/nginx = {:.2} ({})",
            pct(pyro.and_then(SystemResult::kernel_share)),
            pct(nginx.and_then(SystemResult::kernel_share)),
            p / n,
            target.map_or_else(
                || format!("no target for the {} mix at cores {}", c.config.mix.name(), c.config.cores),
                |t| format!("target ≤ {t:.2}: {}", if p / n <= t { "met" } else { "missed" })
            )
        )),
        _ => out.push(format!("CPU per 1,000 uploads at fan-out {f}: no nginx/pyrogate pair measured")),
    }
    let mems: Vec<(usize, f64)> = c
        .results
        .iter()
        .filter_map(|r| match r.system {
            System::Pyrogate { fanout } => Some((fanout, r.peak_rss_mib()?)),
            _ => None,
        })
        .collect();
    if mems.len() > 1 {
        let lo = mems.iter().map(|m| m.1).fold(f64::INFINITY, f64::min);
        let hi = mems.iter().map(|m| m.1).fold(0.0, f64::max);
        let list: Vec<String> = mems
            .iter()
            .map(|(f, m)| format!("{m:.1} MiB at fan-out {f}"))
            .collect();
        out.push(format!(
            "pyrogate peak RSS: {} (max/min = {:.2})",
            list.join(", "),
            hi / lo.max(1e-9)
        ));
    }
    out.extend(relabel_verdict(c));
    let lost: u64 = c.results.iter().map(SystemResult::lost).sum();
    let all_ok = c.results.iter().all(SystemResult::integrity_passed);
    out.push(format!(
        "integrity: {} (lost uploads: {lost})",
        if all_ok {
            "every accepted upload delivered exactly once to every destination, in every run"
        } else {
            "FAILED in at least one run (see the JSON)"
        }
    ));
    out
}

/// The table, ratios and verdicts as plain text.
pub fn text(c: &Comparison) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "\n{} mix, {} connections (closed loop), {} × {:?} per system; cores {}; {}",
        c.config.mix.name(),
        c.config.connections,
        c.config.rounds,
        c.config.duration,
        c.config.cores.describe(c.cpus),
        c.pinning.describe()
    );
    s.push_str("CPU, user and kernel in ms per 1,000 uploads (= µs per upload)\n");
    s.push_str(&text_table(&HEADERS, &rows(c)));
    let ratios = ratio_rows(c);
    if !ratios.is_empty() {
        s.push_str("\nrelative to pyrogate fan-out ");
        let _ = writeln!(s, "{}:", reference(c).map_or(0, |r| r.system.fanout()));
        s.push_str(&text_table(&RATIO_HEADERS, &ratios));
    }
    let vs_nginx = nginx_ratio_rows(c);
    if !vs_nginx.is_empty() {
        let _ = writeln!(
            s,
            "\nrelative to nginx mirror fan-out {}:",
            c.config.nginx_fanout
        );
        s.push_str(&text_table(&NGINX_RATIO_HEADERS, &vs_nginx));
    }
    s.push('\n');
    for v in verdicts(c) {
        let _ = writeln!(s, "{v}");
    }
    for k in &c.skipped {
        let _ = writeln!(s, "skipped: {k}");
    }
    s
}

/// The table as Markdown (for the README and tuning.md).
pub fn markdown(c: &Comparison) -> String {
    let mut s = markdown_table(&HEADERS, &rows(c));
    let ratios = ratio_rows(c);
    if !ratios.is_empty() {
        s.push('\n');
        s.push_str(&markdown_table(&RATIO_HEADERS, &ratios));
    }
    let vs_nginx = nginx_ratio_rows(c);
    if !vs_nginx.is_empty() {
        s.push('\n');
        s.push_str(&markdown_table(&NGINX_RATIO_HEADERS, &vs_nginx));
    }
    s
}

/// The whole comparison as JSON.
pub fn json(c: &Comparison) -> serde_json::Value {
    serde_json::json!({
        "started_unix": c.started_unix,
        "wall_seconds": c.wall.as_secs_f64(),
        "config": {
            "rounds": c.config.rounds, "duration_s": c.config.duration.as_secs_f64(),
            "connections": c.config.connections, "mix": c.config.mix.name(),
            "cores": c.config.cores.to_string(), "cpus": c.cpus,
            "gateway_threads": c.config.cores.threads(c.cpus),
            "nginx_workers": c.config.cores.threads(c.cpus),
            "pin": c.config.pin, "pinning": c.pinning.describe(),
            "pyrogate_fanouts": c.config.pyrogate_fanouts, "nginx_fanout": c.config.nginx_fanout,
            "relabel": c.config.relabel,
            "label_sets": c.config.label_sets, "seed": c.config.seed,
            "pyrogate_bin": c.config.pyrogate_bin.display().to_string(),
            "nginx_bin": c.config.nginx_bin.as_ref().map(|p| p.display().to_string()),
        },
        "systems": c.results.iter().map(|r| serde_json::json!({
            "system": r.system.name(),
            "fanout": r.system.fanout(),
            "uploads": r.uploads(),
            "uploads_per_s": r.per_second(),
            "latency": r.latencies().percentiles().to_json(),
            "cpu_ms_per_1k_uploads": r.cpu_ms_per_1k(),
            "cpu_user_ms_per_1k_uploads": r.user_ms_per_1k(),
            "cpu_kernel_ms_per_1k_uploads": r.kernel_ms_per_1k(),
            "cpu_kernel_share": r.kernel_share(),
            "peak_rss_mib": r.peak_rss_mib(),
            "outcomes": r.outcomes().0,
            "integrity_passed": r.integrity_passed(),
            "lost": r.lost(),
            "relabel": r.relabel().map(RelabelCounters::to_json),
            "runs": r.runs.iter().map(|run| serde_json::json!({
                "round": run.round, "uploads": run.uploads, "elapsed_s": run.elapsed.as_secs_f64(),
                "latency": run.latencies.percentiles().to_json(),
                "cpu_ms": run.cpu.map(|c| c.total().as_secs_f64() * 1e3),
                "cpu_user_ms": run.cpu.map(|c| c.user.as_secs_f64() * 1e3),
                "cpu_system_ms": run.cpu.map(|c| c.system.as_secs_f64() * 1e3), "peak_rss_kib": run.peak_rss_kib,
                "integrity": run.integrity.to_json(),
                "relabel": run.relabel.map(RelabelCounters::to_json),
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "vs_nginx": nginx_result(c).map(|n| c.results.iter().filter(|r| r.system != n.system).map(|r| {
            let q = |a: Option<f64>, b: Option<f64>| Some(a? / b?).filter(|x| x.is_finite());
            serde_json::json!({
                "system": r.system.name(),
                "cpu_per_upload": q(r.cpu_ms_per_1k(), n.cpu_ms_per_1k()),
                "cpu_user_per_upload": q(r.user_ms_per_1k(), n.user_ms_per_1k()),
                "cpu_kernel_per_upload": q(r.kernel_ms_per_1k(), n.kernel_ms_per_1k()),
                "uploads_per_s": q(Some(r.per_second()), Some(n.per_second())),
                "p50": q(Some(r.latencies().at(0.50) as f64), Some(n.latencies().at(0.50) as f64)),
                "p99": q(Some(r.latencies().at(0.99) as f64), Some(n.latencies().at(0.99) as f64)),
                "peak_rss": q(r.peak_rss_mib(), n.peak_rss_mib()),
            })
        }).collect::<Vec<_>>()),
        "cpu_target_vs_nginx": cpu_target(c.config.mix, c.config.cores),
        "verdicts": verdicts(c),
        "skipped": c.skipped,
    })
}

/// The latency-percentile plot of every system.
pub fn plot(c: &Comparison) -> String {
    let series: Vec<svg::Series> = c
        .results
        .iter()
        .map(|r| svg::Series {
            name: r.system.name(),
            points: r.latencies().curve(),
        })
        .collect();
    svg::percentile_plot(
        &format!(
            "upload latency, {} mix, {} connections closed loop",
            c.config.mix.name(),
            c.config.connections
        ),
        &series,
    )
}

/// CPU per upload of every system, user and kernel stacked.
pub fn cpu_plot(c: &Comparison) -> String {
    let bars: Vec<svg::Bar> = c
        .results
        .iter()
        .filter_map(|r| {
            Some(svg::Bar {
                name: r.system.name(),
                parts: vec![r.user_ms_per_1k()?, r.kernel_ms_per_1k()?],
            })
        })
        .collect();
    svg::stacked_bars(
        &format!(
            "CPU per upload (µs), {} mix, cores {}",
            c.config.mix.name(),
            c.config.cores
        ),
        &["user", "kernel"],
        &bars,
    )
}

/// Writes `compare-<unix>.json`, `.svg` (latency) and `-cpu.svg` into the output directory;
/// returns the paths of the JSON and the latency plot.
pub fn write_outputs(c: &Comparison) -> anyhow::Result<(PathBuf, PathBuf)> {
    fs::create_dir_all(&c.config.out_dir)?;
    let base = c.config.out_dir.join(format!("compare-{}", c.started_unix));
    let (j, s) = (base.with_extension("json"), base.with_extension("svg"));
    fs::write(&j, serde_json::to_string_pretty(&json(c))? + "\n")?;
    fs::write(&s, plot(c))?;
    fs::write(
        c.config
            .out_dir
            .join(format!("compare-{}-cpu.svg", c.started_unix)),
        cpu_plot(c),
    )?;
    Ok((j, s))
}

/// Builds pyrogate's release binary with cargo (the workspace's own build; nothing is
/// installed). Prints the command first.
pub fn build_pyrogate() -> anyhow::Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    eprintln!("building the gateway: cargo build --release -p pyrogate --bin pyrogate");
    let status = Command::new("cargo")
        .current_dir(&root)
        .args(["build", "--release", "-p", "pyrogate", "--bin", "pyrogate"])
        .status()
        .context("running cargo")?;
    if !status.success() {
        bail!("cargo build --release -p pyrogate --bin pyrogate failed: {status}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(p: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], p))
    }

    #[test]
    fn pyrogate_gets_one_write_component_per_sink() {
        let c = pyrogate_config(&[addr(4001), addr(4002)]);
        assert!(c.contains(
            "forward_to = [pyroscope.write.sink0.receiver, pyroscope.write.sink1.receiver]"
        ));
        assert!(c.contains("pyroscope.write \"sink1\" {\n\tendpoint {\n\t\turl = \"http://127.0.0.1:4002\"\n\t}\n}\n"));
        assert!(c.contains("listen_port    = 0"));
    }

    #[test]
    fn nginx_mirrors_every_sink_but_the_first() {
        let c = nginx_config(
            Path::new("/tmp/x"),
            18080,
            &[addr(4001), addr(4002), addr(4003)],
            1,
        );
        assert!(c.contains("listen 127.0.0.1:18080;"));
        assert!(c.contains(
            "mirror /__mirror1;\n      mirror /__mirror2;\n      mirror_request_body on;"
        ));
        assert!(c.contains("proxy_pass http://sink0;"));
        assert!(c.contains("proxy_pass http://sink2$request_uri;"));
        assert!(c.contains("upstream sink1 { server 127.0.0.1:4002; keepalive 64; }"));
        assert!(!nginx_config(Path::new("/tmp/x"), 1, &[addr(4001)], 1).contains("mirror"));
    }

    #[test]
    fn nginx_mirrors_the_push_route_like_every_other_path() {
        let c = nginx_config(Path::new("/tmp/x"), 18080, &[addr(4001), addr(4002)], 2);
        assert!(c.starts_with("worker_processes 2;\n"));
        // One prefix location for everything: /ingest and /push.v1.PusherService/Push alike,
        // headers (Content-Encoding, Content-Type) passed through as received.
        assert_eq!(c.matches("location / {").count(), 1, "{c}");
        assert_eq!(c.matches("location = /__mirror").count(), 1, "{c}");
        assert!(c.contains("    location / {\n      mirror /__mirror1;\n"));
        assert!(!c.contains("proxy_set_header Content-"));
    }

    fn run_with(uploads: u64, user_ms: u64, kernel_ms: u64, p99_ms: u64, rss_kib: u64) -> Run {
        let mut latencies = Latencies::new();
        for i in 0..uploads {
            let us = if i + 1 == uploads {
                p99_ms * 1000
            } else {
                1000
            };
            latencies.record(Duration::from_micros(us));
        }
        Run {
            round: 0,
            uploads,
            elapsed: Duration::from_secs(1),
            latencies,
            outcomes: Outcomes::default(),
            cpu: Some(stats::CpuTimes {
                user: Duration::from_millis(user_ms),
                system: Duration::from_millis(kernel_ms),
            }),
            peak_rss_kib: Some(rss_kib),
            integrity: generator::Integrity {
                sent: uploads,
                accepted: uploads,
                sinks: Vec::new(),
                gateway_dropped: None,
            },
            relabel: None,
        }
    }

    fn comparison(mix: Mix, cores: Cores) -> Comparison {
        Comparison {
            config: CompareConfig {
                rounds: 1,
                duration: Duration::from_secs(1),
                connections: 1,
                mix,
                cores,
                pin: true,
                pyrogate_fanouts: vec![2],
                nginx_fanout: 2,
                relabel: false,
                label_sets: 1,
                seed: 1,
                pyrogate_bin: PathBuf::from("/nonexistent"),
                nginx_bin: Some(PathBuf::from("/usr/sbin/nginx")),
                out_dir: PathBuf::from("/tmp"),
                quiet: true,
            },
            results: vec![
                SystemResult {
                    system: System::Pyrogate { fanout: 2 },
                    runs: vec![run_with(1000, 60, 40, 4, 20 * 1024)],
                },
                SystemResult {
                    system: System::Nginx { fanout: 2 },
                    runs: vec![run_with(500, 20, 20, 2, 10 * 1024)],
                },
            ],
            skipped: Vec::new(),
            started_unix: 1,
            wall: Duration::from_secs(2),
            cpus: 2,
            pinning: placement::plan(true, &[0, 1], cores.threads(2)),
        }
    }

    #[test]
    fn the_report_splits_cpu_into_user_and_kernel_and_gives_ratios_against_nginx() {
        let c = comparison(Mix::PushPython, Cores::Count(1));
        let p = &c.results[0];
        // 100 ms over 1,000 uploads: 100 µs each, 60 user + 40 kernel.
        assert_eq!(p.cpu_ms_per_1k(), Some(100.0));
        assert_eq!(p.user_ms_per_1k(), Some(60.0));
        assert_eq!(p.kernel_ms_per_1k(), Some(40.0));
        // nginx: 80 µs per upload (40 user, 40 kernel) at half the throughput.
        let rows = nginx_ratio_rows(&c);
        assert_eq!(rows.len(), 1);
        assert_eq!(
            rows[0][..5],
            ["pyrogate fan-out 2", "1.25×", "1.50×", "1.00×", "2.00×"]
        );
        assert_eq!(rows[0][7], "2.00×");
        let text = text(&c);
        assert!(text.contains("cores --cores=1 (nginx: 1 worker); pinned: gateway on CPU 0, generator and sinks on CPU 1"), "{text}");
        assert!(
            text.contains("relative to nginx mirror fan-out 2:"),
            "{text}"
        );
        assert!(
            text.contains("pyrogate/nginx = 1.25 (target ≤ 2.50: met)"),
            "{text}"
        );
        let md = markdown(&c);
        assert!(
            md.contains(
                "| system | CPU/upload | user | kernel | uploads/s | p50 | p99 | peak RSS |"
            ),
            "{md}"
        );
        let j = json(&c);
        assert_eq!(j["config"]["cores"], "1");
        assert_eq!(j["config"]["gateway_threads"], 1);
        assert_eq!(j["config"]["mix"], "push-python");
        assert_eq!(j["systems"][0]["cpu_user_ms_per_1k_uploads"], 60.0);
        assert_eq!(j["systems"][0]["cpu_kernel_ms_per_1k_uploads"], 40.0);
        assert_eq!(j["vs_nginx"][0]["cpu_per_upload"], 1.25);
        assert_eq!(j["vs_nginx"][0]["uploads_per_s"], 2.0);
        assert_eq!(j["cpu_target_vs_nginx"], 2.5);
        let svg = cpu_plot(&c);
        assert!(
            svg.starts_with("<svg") && svg.contains("nginx mirror fan-out 2"),
            "{svg}"
        );

        // The default core count on two CPUs: two of each, no CPU left to pin the load to.
        let d = comparison(Mix::Go, Cores::Default);
        let text = super::text(&d);
        assert!(
            text.contains("cores default: every core, 2 (nginx: 2 workers); not pinned: 2 CPUs, the gateway uses 2"),
            "{text}"
        );
        assert!(text.contains("(target ≤ 0.60: missed)"), "{text}");
        assert_eq!(json(&d)["config"]["nginx_workers"], 2);
        assert_eq!(json(&d)["config"]["cores"], "default");
    }

    #[test]
    fn cpu_targets_follow_the_issue() {
        assert_eq!(cpu_target(Mix::Go, Cores::Count(1)), Some(0.50));
        assert_eq!(cpu_target(Mix::Go, Cores::Default), Some(0.60));
        assert_eq!(cpu_target(Mix::Jfr, Cores::Count(1)), Some(0.70));
        assert_eq!(cpu_target(Mix::PushPython, Cores::Count(1)), Some(2.5));
        assert_eq!(cpu_target(Mix::PushDotnet, Cores::Count(1)), Some(0.6));
        assert_eq!(cpu_target(Mix::PushDotnet, Cores::Default), None);
        assert_eq!(cpu_target(Mix::All, Cores::Count(1)), None);
    }

    #[test]
    fn logfmt_values_are_found_by_key() {
        let line =
            "ts=1 level=info msg=\"receiver listening\" receiver=loadtest addr=127.0.0.1:4567";
        assert_eq!(logfmt_value(line, "addr"), Some("127.0.0.1:4567"));
        assert_eq!(logfmt_value(line, "port"), None);
    }

    #[test]
    fn rounds_rotate_and_nginx_is_skipped_when_missing() {
        let cfg = CompareConfig {
            rounds: 2,
            duration: Duration::from_secs(1),
            connections: 1,
            mix: Mix::Go,
            cores: Cores::Count(1),
            pin: false,
            pyrogate_fanouts: vec![1, 2],
            nginx_fanout: 2,
            relabel: false,
            label_sets: 1,
            seed: 1,
            pyrogate_bin: PathBuf::from("/nonexistent"),
            nginx_bin: None,
            out_dir: PathBuf::from("/tmp"),
            quiet: true,
        };
        assert_eq!(
            systems(&cfg),
            vec![
                System::Direct,
                System::Pyrogate { fanout: 1 },
                System::Pyrogate { fanout: 2 }
            ]
        );
        // --relabel: one more system, at the headline fan-out, beside the plain one.
        let mut cfg = CompareConfig {
            relabel: true,
            nginx_bin: Some(PathBuf::from("/usr/sbin/nginx")),
            ..cfg
        };
        assert_eq!(
            systems(&cfg),
            vec![
                System::Direct,
                System::Pyrogate { fanout: 1 },
                System::Pyrogate { fanout: 2 },
                System::PyrogateRelabel { fanout: 2 },
                System::Nginx { fanout: 2 }
            ]
        );
        cfg.pyrogate_fanouts = vec![4, 1];
        assert_eq!(headline_fanout(&cfg), 4);
        assert!(systems(&cfg).contains(&System::PyrogateRelabel { fanout: 4 }));
    }

    /// Every config `compare` generates loads with pyrogate's own loader.
    fn load(text: &str) -> pyrogate::config::Config {
        match pyrogate::config::load_str(
            "compare.alloy",
            text,
            &pyrogate::config::ProcessEnvironment,
        ) {
            Ok(l) => {
                assert!(l.warnings.is_empty(), "{:?}\n{text}", l.warnings);
                l.config
            }
            Err(d) => panic!("{d:?}\n{text}"),
        }
    }

    #[test]
    fn generated_pyrogate_configs_load() {
        for n in 1..=4 {
            let sinks: Vec<SocketAddr> = (0..n).map(|i| addr(4001 + i)).collect();
            let plain = load(&pyrogate_config(&sinks));
            assert_eq!(plain.writers.len(), usize::from(n));
            assert!(plain.relabels.is_empty());
            let relabel = load(&pyrogate_relabel_config(&sinks));
            assert_eq!(relabel.writers.len(), usize::from(n));
            assert_eq!(relabel.receivers.len(), 1);
            assert_eq!(
                relabel.receivers[0].forward_to,
                vec![pyrogate::config::Target::Relabel(0)]
            );
            // The same fan-out as the plain system, behind the relabel stage.
            assert_eq!(
                relabel.relabels[0].forward_to,
                (0..usize::from(n))
                    .map(pyrogate::config::Target::Writer)
                    .collect::<Vec<_>>()
            );
        }
    }

    #[test]
    fn relabel_rules_touch_every_generated_label_set_and_drop_none() {
        use pyrogate::relabel::Action;
        let cfg = load(&pyrogate_relabel_config(&[addr(4001), addr(4002)]));
        let rules = &cfg.relabels[0].rules;
        let actions: Vec<Action> = rules.iter().map(|r| r.spec().action).collect();
        assert_eq!(
            actions,
            [
                Action::Replace,
                Action::LabelDrop,
                Action::Drop,
                Action::HashMod,
                Action::Lowercase
            ]
        );
        assert_eq!(rules[3].spec().modulus, 8);
        let mut shards = std::collections::BTreeSet::new();
        for set in crate::bodies::label_sets(500, 1) {
            // The Push labels (a superset of what /ingest's `name` carries), sorted by name as
            // the rules see them.
            let mut labels = crate::bodies::push_labels(&set);
            labels.sort();
            let env = set.tags.iter().find(|(k, _)| k == "env").unwrap().1.clone();
            let region = set
                .tags
                .iter()
                .find(|(k, _)| k == "region")
                .unwrap()
                .1
                .clone();
            assert!(
                pyrogate::relabel::process(rules, &mut labels),
                "dropped {set:?}"
            );
            let get = |k: &str| labels.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
            assert_eq!(get("env"), None);
            assert_eq!(get("environment"), Some(env));
            assert_eq!(get("zone"), Some(region.to_lowercase()));
            let shard: u64 = get("shard").unwrap().parse().unwrap();
            assert!(shard < 8);
            shards.insert(shard);
        }
        // 500 pods spread over every shard.
        assert_eq!(shards.len(), 8);
    }

    #[test]
    fn medians_and_relabel_counters() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
        let text = "# TYPE pyroscope_relabel_cache_hits counter\n\
            pyroscope_relabel_profiles_processed{component_id=\"pyroscope.relabel.loadtest\",component_path=\"/\"} 10\n\
            pyroscope_relabel_profiles_written{component_id=\"pyroscope.relabel.loadtest\",component_path=\"/\"} 9\n\
            pyroscope_relabel_profiles_dropped{component_id=\"pyroscope.relabel.loadtest\",component_path=\"/\"} 1\n\
            pyroscope_relabel_cache_hits{component_id=\"pyroscope.relabel.loadtest\",component_path=\"/\"} 7\n\
            pyroscope_relabel_cache_misses{component_id=\"pyroscope.relabel.loadtest\",component_path=\"/\"} 3\n";
        assert_eq!(
            RelabelCounters::from_metrics(text),
            RelabelCounters {
                processed: 10,
                written: 9,
                dropped: 1,
                cache_hits: 7,
                cache_misses: 3
            }
        );
    }
}
