//! `loadtest outage`: a one-minute outage of one of two destinations under steady load, with a
//! spool, measured phase by phase.
//!
//! Owns: the scenario (two sinks, one writer each, `acknowledge = "enqueued"`, a spool in the
//! run's work directory; the second sink stopped for `--outage` starting at `--outage-at`, then
//! started again on the same port), the disk's sequential write speed measured first with `dd`
//! on the spool's file system, the sampler (gateway CPU time and `/metrics` once a second, ten
//! times a second while the spool drains), the per-phase figures (before, outage, replay,
//! after: uploads/s, gateway CPU per upload, the healthy destination's enqueue-to-delivery
//! latency), the spool's spill and replay throughput as ratios of the `dd` figure, and the
//! account of both destinations with the spooled term (accepted = sent + dropped + in flight +
//! spooled, and each sink saw every upload once). Does not own the load (`generator`), the
//! sinks (`integrity`) or the gateway process helpers (`soak`).
//! A tool: std threads, everything on 127.0.0.1, bounded by the load plus the drain limit; it
//! stops only the processes it started, by PID.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};

use crate::bodies::Mix;
use crate::generator;
use crate::integrity::{Faults, Sink, SinkConfig, SinkStats};
use crate::soak::{self, FlakySink, Gateway, lock, samples, sum_by};
use crate::stats::{self, fmt_us};
use crate::timeplot::{self, Band, Line, Panel};

/// What an outage run does.
#[derive(Debug, Clone)]
pub struct OutageConfig {
    /// How long load is offered.
    pub duration: Duration,
    /// When the second destination goes down, from the start of the load.
    pub outage_at: Duration,
    /// How long it stays down.
    pub outage: Duration,
    /// Open-loop uploads per second.
    pub rate: f64,
    pub connections: usize,
    pub mix: Mix,
    pub label_sets: usize,
    pub seed: u64,
    /// `--cores` for the gateway; `None` leaves pyrogate's default (every core).
    pub cores: Option<usize>,
    pub pyrogate_bin: PathBuf,
    /// Where the results go (the work directory with the spool is made inside).
    pub out_dir: PathBuf,
    /// Longest wait, after the load, for the spool to empty and nothing to be in flight.
    pub drain_max: Duration,
    /// Size of the `dd` write that measures the disk.
    pub dd_mib: u64,
    pub timeout: Duration,
    pub quiet: bool,
}

/// One sample of the run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sample {
    /// Seconds since the load started.
    pub t_s: f64,
    /// Gateway CPU time so far, milliseconds.
    pub cpu_ms: u64,
    /// Uploads answered so far (`pyrogate_requests_total`).
    pub requests: f64,
    /// The healthy destination's `pyrogate_upstream_latency_seconds`: sum, count, and the
    /// cumulative buckets by upper bound.
    pub healthy_latency_sum: f64,
    pub healthy_latency_count: f64,
    pub healthy_buckets: Vec<(f64, f64)>,
    /// The healthy destination's `pyroscope_write_sent_profiles_total`.
    pub healthy_sent: f64,
    /// The spooling destination's spool.
    pub spool_bytes: f64,
    pub spool_records: f64,
    pub spilled: f64,
    pub replayed: f64,
}

/// One phase's figures.
#[derive(Debug, Clone, PartialEq)]
pub struct PhaseFigures {
    pub name: &'static str,
    pub start_s: f64,
    pub end_s: f64,
    pub uploads_per_s: f64,
    /// Gateway CPU (user + system, every thread) per upload answered, microseconds.
    pub cpu_us_per_upload: f64,
    /// The healthy destination: mean enqueue-to-delivery latency, microseconds.
    pub healthy_mean_us: f64,
    /// The healthy destination: the smallest bucket bound holding 99 % of the phase's
    /// deliveries (the histogram's resolution), seconds.
    pub healthy_p99_le_s: f64,
    pub healthy_delivered_per_s: f64,
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
    pub spooled: u64,
    pub dropped_by_reason: BTreeMap<String, u64>,
    /// Payloads of this run the sink answered 200, and the distinct uploads among them.
    pub sink_delivered: u64,
    pub sink_distinct: u64,
}

impl Account {
    /// accepted = sent + dropped + in flight + spooled.
    pub fn balanced(&self) -> bool {
        self.accepted == self.sent + self.dropped + self.inflight + self.spooled
    }

    /// The sink saw every delivered upload, and each once.
    pub fn sink_agrees(&self) -> bool {
        self.sink_distinct == self.sent && self.sink_delivered == self.sent
    }
}

/// What an outage run found.
#[derive(Debug, Clone)]
pub struct Outage {
    pub config: OutageConfig,
    pub started_unix: u64,
    pub gateway_cores: String,
    /// `dd`'s sequential write of `dd_mib` MiB with `conv=fdatasync`, bytes per second.
    pub dd_bytes_per_s: f64,
    pub samples: Vec<Sample>,
    pub phases: Vec<PhaseFigures>,
    /// Largest spool size seen, and when the spool held it.
    pub spool_peak_bytes: f64,
    pub spool_peak_records: f64,
    /// Bytes spilled per second over the outage (the arrival rate bounds it).
    pub spill_bytes_per_s: f64,
    /// Seconds from the sink's return until the spool was empty.
    pub replay_s: Option<f64>,
    /// Spool bytes at the sink's return over `replay_s`.
    pub replay_bytes_per_s: Option<f64>,
    pub uploads: u64,
    pub answered_200: u64,
    pub client_p50_us: u64,
    pub client_p99_us: u64,
    pub accounts: Vec<Account>,
    pub drained_after_s: Option<f64>,
    pub gateway_exit: String,
    pub wall: Duration,
}

impl Outage {
    /// Every account balanced and every sink saw each delivered upload once, with nothing
    /// left in flight or in the spool.
    pub fn passed(&self) -> bool {
        self.drained_after_s.is_some()
            && self
                .accounts
                .iter()
                .all(|a| a.balanced() && a.sink_agrees() && a.inflight == 0 && a.spooled == 0)
    }
}

/// Runs `dd` writing `mib` MiB of zeros to `dir` with `conv=fdatasync`; bytes per second.
pub fn dd_write_speed(dir: &Path, mib: u64) -> anyhow::Result<f64> {
    let file = dir.join("dd-probe.tmp");
    let start = Instant::now();
    let status = Command::new("dd")
        .arg("if=/dev/zero")
        .arg(format!("of={}", file.display()))
        .arg("bs=1M")
        .arg(format!("count={mib}"))
        .arg("conv=fdatasync")
        .arg("status=none")
        .status()
        .context("running dd")?;
    let took = start.elapsed();
    let _ = fs::remove_file(&file);
    if !status.success() {
        bail!("dd failed: {status}");
    }
    Ok((mib * 1024 * 1024) as f64 / took.as_secs_f64().max(1e-9))
}

/// The gateway configuration: one receiver (`enqueued`), a writer per sink, a spool in `dir`.
pub fn gateway_config(sinks: &[(&str, SocketAddr)], spool_dir: &Path) -> String {
    let mut cfg = soak::gateway_config("enqueued", sinks);
    let _ = write!(
        cfg,
        "\npyrogate {{\n\tspool {{\n\t\tdirectory = {:?}\n\t}}\n}}\n",
        spool_dir.display().to_string()
    );
    cfg
}

/// The sample at or after `t_s` (the last one if none), and the one at or before it.
fn sample_at(samples: &[Sample], t_s: f64, after: bool) -> Option<&Sample> {
    if after {
        samples
            .iter()
            .find(|s| s.t_s >= t_s)
            .or_else(|| samples.last())
    } else {
        samples
            .iter()
            .rev()
            .find(|s| s.t_s <= t_s)
            .or(samples.first())
    }
}

/// The smallest bucket bound holding `q` of the deliveries between two cumulative bucket
/// lists (equal bounds, ascending).
pub fn bucket_quantile(a: &[(f64, f64)], b: &[(f64, f64)], q: f64) -> f64 {
    let deltas: Vec<(f64, f64)> = b
        .iter()
        .map(|&(le, n)| {
            let before = a.iter().find(|x| x.0 == le).map_or(0.0, |x| x.1);
            (le, n - before)
        })
        .collect();
    let total = deltas.last().map_or(0.0, |d| d.1);
    if total <= 0.0 {
        return 0.0;
    }
    deltas
        .iter()
        .find(|d| d.1 >= q * total)
        .map_or(f64::INFINITY, |d| d.0)
}

/// The figures of `[start_s, end_s]`.
pub fn phase(samples: &[Sample], name: &'static str, start_s: f64, end_s: f64) -> PhaseFigures {
    let (Some(a), Some(b)) = (
        sample_at(samples, start_s, true),
        sample_at(samples, end_s, false),
    ) else {
        return PhaseFigures {
            name,
            start_s,
            end_s,
            uploads_per_s: 0.0,
            cpu_us_per_upload: 0.0,
            healthy_mean_us: 0.0,
            healthy_p99_le_s: 0.0,
            healthy_delivered_per_s: 0.0,
        };
    };
    let dt = (b.t_s - a.t_s).max(1e-9);
    let uploads = (b.requests - a.requests).max(0.0);
    let deliveries = b.healthy_latency_count - a.healthy_latency_count;
    PhaseFigures {
        name,
        start_s: a.t_s,
        end_s: b.t_s,
        uploads_per_s: uploads / dt,
        cpu_us_per_upload: if uploads > 0.0 {
            b.cpu_ms.saturating_sub(a.cpu_ms) as f64 * 1000.0 / uploads
        } else {
            0.0
        },
        healthy_mean_us: if deliveries > 0.0 {
            (b.healthy_latency_sum - a.healthy_latency_sum) / deliveries * 1e6
        } else {
            0.0
        },
        healthy_p99_le_s: bucket_quantile(&a.healthy_buckets, &b.healthy_buckets, 0.99),
        healthy_delivered_per_s: (b.healthy_sent - a.healthy_sent) / dt,
    }
}

fn scrape(admin: SocketAddr) -> String {
    generator::http_get(admin, "/metrics", Duration::from_secs(2))
        .map(|(_, b)| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

fn sample_of(text: &str, t_s: f64, pid: u32, healthy: &str, spooling: &str) -> Sample {
    let pick = |m: &str, e: &str| sum_by(text, m, "endpoint").get(e).copied().unwrap_or(0.0);
    let lat = "pyrogate_upstream_latency_seconds";
    let mut buckets: Vec<(f64, f64)> = samples(text, &format!("{lat}_bucket"))
        .into_iter()
        .filter(|s| s.labels.get("endpoint").map(String::as_str) == Some(healthy))
        .filter_map(|s| {
            let le = s.labels.get("le")?;
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().ok()?
            };
            Some((le, s.value))
        })
        .collect();
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    Sample {
        t_s,
        cpu_ms: stats::cpu_time(pid).map_or(0, |c| c.total().as_millis() as u64),
        requests: samples(text, "pyrogate_requests_total")
            .iter()
            .map(|s| s.value)
            .sum(),
        healthy_latency_sum: pick(&format!("{lat}_sum"), healthy),
        healthy_latency_count: pick(&format!("{lat}_count"), healthy),
        healthy_buckets: buckets,
        healthy_sent: pick("pyroscope_write_sent_profiles_total", healthy),
        spool_bytes: pick("pyrogate_spool_bytes", spooling),
        spool_records: pick("pyrogate_spool_records", spooling),
        spilled: pick("pyrogate_spool_spilled_total", spooling),
        replayed: pick("pyrogate_spool_replayed_total", spooling),
    }
}

/// Runs the scenario.
pub fn run(cfg: OutageConfig) -> anyhow::Result<Outage> {
    let wall = Instant::now();
    let started_unix = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let work = cfg.out_dir.join(format!("outage-{started_unix}-work"));
    let spool_dir = work.join("spool");
    fs::create_dir_all(&spool_dir)?;
    let say = |s: String| {
        if !cfg.quiet {
            eprintln!("{s}");
        }
    };
    let dd_bytes_per_s = dd_write_speed(&work, cfg.dd_mib)?;
    say(format!(
        "outage: dd writes {:.0} MiB/s on the spool's file system",
        dd_bytes_per_s / 1_048_576.0
    ));
    let base = |seed: u64| SinkConfig {
        seed,
        faults: Faults::default(),
        ..SinkConfig::default()
    };
    let mut healthy_sink = Sink::start(base(cfg.seed)).context("starting the healthy sink")?;
    let spooling_sink = Arc::new(Mutex::new(FlakySink::start(base(cfg.seed + 100))?));
    let named = [
        ("healthy", healthy_sink.addr()),
        ("spooling", lock(&spooling_sink).addr()),
    ];
    let healthy = format!("http://{}", named[0].1);
    let spooling = format!("http://{}", named[1].1);
    let mut gw = Gateway::start(
        &cfg.pyrogate_bin,
        cfg.cores,
        &gateway_config(&named, &spool_dir),
        &work,
    )?;
    let (pid, admin) = (gw.pid(), gw.admin);
    say(format!(
        "outage: pyrogate pid {pid} ({} cores) at {}; sinks healthy={} spooling={}",
        gw.cores, gw.addr, named[0].1, named[1].1
    ));
    std::thread::sleep(Duration::from_secs(1));
    let (pool, run_tag, plan) = soak::steady_load(
        cfg.mix,
        cfg.label_sets,
        cfg.seed,
        cfg.connections,
        cfg.rate,
        cfg.duration,
        cfg.timeout,
    );
    let outage_start = cfg.outage_at.as_secs_f64();
    let outage_end = (cfg.outage_at + cfg.outage).as_secs_f64();
    let start = Instant::now();
    let stop = AtomicBool::new(false);
    // Set once the sink is back: the sampler then samples ten times a second until the spool
    // is empty, so the replay time is known to 0.1 s.
    let back_at: Mutex<Option<f64>> = Mutex::new(None);
    let emptied_at: Mutex<Option<f64>> = Mutex::new(None);
    let log: Mutex<Vec<Sample>> = Mutex::new(Vec::new());
    let (run, drained_after_s) = std::thread::scope(|scope| {
        scope.spawn(|| {
            let mut last_print = Instant::now();
            while !stop.load(Ordering::Relaxed) {
                let t_s = start.elapsed().as_secs_f64();
                let s = sample_of(&scrape(admin), t_s, pid, &healthy, &spooling);
                let replaying = lock(&back_at).is_some() && lock(&emptied_at).is_none();
                if replaying && s.spool_records == 0.0 {
                    *lock(&emptied_at) = Some(t_s);
                }
                if last_print.elapsed() >= Duration::from_secs(10) {
                    last_print = Instant::now();
                    say(format!(
                        "outage {t_s:6.0}s  requests={} spool={:.1}MiB/{} records spilled={} replayed={}",
                        s.requests,
                        s.spool_bytes / 1_048_576.0,
                        s.spool_records,
                        s.spilled,
                        s.replayed
                    ));
                }
                lock(&log).push(s);
                let period = if replaying {
                    Duration::from_millis(100)
                } else {
                    Duration::from_secs(1)
                };
                // Sleeps in small steps so a stop is seen quickly.
                let until = Instant::now() + period;
                while Instant::now() < until && !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(20).min(period));
                }
            }
        });
        scope.spawn(|| {
            for (at, up) in [(outage_start, false), (outage_end, true)] {
                let when = start + Duration::from_secs_f64(at);
                while Instant::now() < when {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
                let faults = up.then(Faults::default);
                if let Err(e) = lock(&spooling_sink).switch(faults) {
                    say(format!("outage: {e:#}"));
                }
                let t = start.elapsed().as_secs_f64();
                if up {
                    *lock(&back_at) = Some(t);
                }
                say(format!(
                    "outage {t:6.0}s  spooling destination {}",
                    if up { "back" } else { "down" }
                ));
            }
        });
        let make = |i: u64| pool.request(generator::id(run_tag, i));
        let run = generator::drive(gw.addr, &plan, &make, "outage", false);
        let end = start.elapsed().as_secs_f64();
        say(format!(
            "outage {end:6.0}s  load ended: {} uploads; draining",
            run.uploads()
        ));
        // Drain: nothing in flight and the spool empty, in two scrapes in a row.
        let deadline = Instant::now() + cfg.drain_max;
        let mut in_a_row = 0;
        let mut drained = None;
        while Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(500));
            let text = scrape(admin);
            let inflight: f64 = samples(&text, "pyrogate_inflight_profiles")
                .iter()
                .map(|s| s.value)
                .sum();
            let spooled: f64 = samples(&text, "pyrogate_spool_records")
                .iter()
                .map(|s| s.value)
                .sum();
            if !text.is_empty() && inflight == 0.0 && spooled == 0.0 {
                in_a_row += 1;
                if in_a_row >= 2 {
                    drained = Some(start.elapsed().as_secs_f64() - end);
                    break;
                }
            } else {
                in_a_row = 0;
            }
        }
        stop.store(true, Ordering::Relaxed);
        (run, drained)
    });
    // The account.
    let text = scrape(admin);
    if text.is_empty() {
        bail!("the final /metrics scrape failed");
    }
    let sink_stats: [SinkStats; 2] = [healthy_sink.stats(), lock(&spooling_sink).stats()];
    let by_reason = samples(&text, "pyrogate_dropped_total");
    let accounts = named
        .iter()
        .zip(&sink_stats)
        .map(|((name, addr), st)| {
            let endpoint = format!("http://{addr}");
            let g = |m: &str| {
                sum_by(&text, m, "endpoint")
                    .get(&endpoint)
                    .copied()
                    .unwrap_or(0.0) as u64
            };
            let reasons = soak::drops_by_reason(&by_reason, &endpoint);
            let (sink_delivered, sink_distinct) = soak::deliveries(st, run_tag);
            Account {
                name: name.to_string(),
                accepted: g("pyrogate_accepted_profiles_total"),
                sent: g("pyroscope_write_sent_profiles_total"),
                dropped: g("pyroscope_write_dropped_profiles_total"),
                inflight: g("pyrogate_inflight_profiles"),
                spooled: g("pyrogate_spool_profiles"),
                dropped_by_reason: reasons,
                sink_delivered,
                sink_distinct,
                endpoint,
            }
        })
        .collect();
    let gateway_exit = gw.stop();
    healthy_sink.stop();
    let _ = lock(&spooling_sink).switch(None);
    let samples = log.into_inner().unwrap_or_else(|e| e.into_inner());
    let back = back_at.into_inner().unwrap_or_else(|e| e.into_inner());
    let emptied = emptied_at.into_inner().unwrap_or_else(|e| e.into_inner());
    let load_s = cfg.duration.as_secs_f64();
    // Phases: a few seconds of warm-up are left out; the replay is its own phase.
    let replay_end = emptied.unwrap_or(outage_end).min(load_s);
    let mut phases = vec![
        phase(&samples, "before", 5.0_f64.min(outage_start), outage_start),
        phase(&samples, "outage", outage_start, outage_end),
    ];
    if replay_end > outage_end {
        phases.push(phase(&samples, "replay", outage_end, replay_end));
    }
    if load_s > replay_end + 1.0 {
        phases.push(phase(&samples, "after", replay_end, load_s));
    }
    let (spool_peak_bytes, spool_peak_records) = samples
        .iter()
        .map(|s| (s.spool_bytes, s.spool_records))
        .fold((0.0_f64, 0.0_f64), |a, b| (a.0.max(b.0), a.1.max(b.1)));
    let at_back = back.and_then(|b| sample_at(&samples, b, false));
    let replay_s = back.zip(emptied).map(|(b, e)| e - b);
    let replay_bytes_per_s = at_back
        .map(|s| s.spool_bytes)
        .zip(replay_s)
        .map(|(bytes, s)| bytes / s.max(0.1));
    let spill_bytes_per_s =
        at_back.map_or(spool_peak_bytes, |s| s.spool_bytes) / cfg.outage.as_secs_f64().max(1e-9);
    Ok(Outage {
        started_unix,
        gateway_cores: gw.cores.clone(),
        dd_bytes_per_s,
        phases,
        spool_peak_bytes,
        spool_peak_records,
        spill_bytes_per_s,
        replay_s,
        replay_bytes_per_s,
        uploads: run.uploads(),
        answered_200: run.accepted(),
        client_p50_us: run.latencies.at(0.5),
        client_p99_us: run.latencies.at(0.99),
        accounts,
        drained_after_s,
        gateway_exit,
        samples,
        config: cfg,
        wall: wall.elapsed(),
    })
}

fn mb_s(bytes_per_s: f64) -> String {
    format!("{:.1} MB/s", bytes_per_s / 1e6)
}

/// The summary.
pub fn text(o: &Outage) -> String {
    let c = &o.config;
    let mut t = String::new();
    let _ = writeln!(
        t,
        "outage: {} mix at {}/s for {:.0}s, {} cores, destination 'spooling' down from {:.0}s for {:.0}s",
        c.mix.name(),
        c.rate,
        c.duration.as_secs_f64(),
        o.gateway_cores,
        c.outage_at.as_secs_f64(),
        c.outage.as_secs_f64()
    );
    let _ = writeln!(
        t,
        "client: {} uploads, {} answered 200; p50 {}, p99 {}",
        o.uploads,
        o.answered_200,
        fmt_us(o.client_p50_us),
        fmt_us(o.client_p99_us)
    );
    let _ = writeln!(
        t,
        "\n{:<8} {:>12} {:>9} {:>18} {:>20} {:>16}",
        "phase",
        "seconds",
        "uploads/s",
        "CPU µs per upload",
        "healthy mean latency",
        "healthy p99 ≤"
    );
    for p in &o.phases {
        let _ = writeln!(
            t,
            "{:<8} {:>5.0}–{:<6.0} {:>9.1} {:>18.0} {:>20} {:>15}s",
            p.name,
            p.start_s,
            p.end_s,
            p.uploads_per_s,
            p.cpu_us_per_upload,
            fmt_us(p.healthy_mean_us.round() as u64),
            p.healthy_p99_le_s
        );
    }
    let _ = writeln!(
        t,
        "\ndisk (dd, {} MiB, conv=fdatasync): {}",
        c.dd_mib,
        mb_s(o.dd_bytes_per_s)
    );
    let _ = writeln!(
        t,
        "spill: {} records, {:.1} MB at the peak; {} over the outage = {:.3} × dd (the arrival rate bounds it)",
        o.spool_peak_records,
        o.spool_peak_bytes / 1e6,
        mb_s(o.spill_bytes_per_s),
        o.spill_bytes_per_s / o.dd_bytes_per_s
    );
    match (o.replay_s, o.replay_bytes_per_s) {
        (Some(s), Some(r)) => {
            let _ = writeln!(
                t,
                "replay: spool empty {s:.1}s after the destination came back: {} = {:.2} × dd",
                mb_s(r),
                r / o.dd_bytes_per_s
            );
        }
        _ => {
            let _ = writeln!(t, "replay: the spool did not empty during the load");
        }
    }
    let _ = writeln!(
        t,
        "\n{:<9} {:>9} {:>9} {:>8} {:>9} {:>8} {:>12} {:>12}  balanced",
        "account", "accepted", "sent", "dropped", "in flight", "spooled", "sink got", "sink unique"
    );
    for a in &o.accounts {
        let _ = writeln!(
            t,
            "{:<9} {:>9} {:>9} {:>8} {:>9} {:>8} {:>12} {:>12}  {}{}",
            a.name,
            a.accepted,
            a.sent,
            a.dropped,
            a.inflight,
            a.spooled,
            a.sink_delivered,
            a.sink_distinct,
            if a.balanced() && a.sink_agrees() {
                "yes"
            } else {
                "NO"
            },
            if a.dropped_by_reason.is_empty() {
                String::new()
            } else {
                format!(" dropped by reason: {:?}", a.dropped_by_reason)
            }
        );
    }
    let _ = writeln!(
        t,
        "drained {} after the load; gateway {}; {}",
        o.drained_after_s
            .map_or("NOT".to_string(), |s| format!("{s:.1}s")),
        o.gateway_exit,
        if o.passed() { "PASSED" } else { "FAILED" }
    );
    t
}

/// The results as JSON.
pub fn json(o: &Outage) -> serde_json::Value {
    let c = &o.config;
    serde_json::json!({
        "config": {
            "duration_s": c.duration.as_secs_f64(),
            "outage_at_s": c.outage_at.as_secs_f64(),
            "outage_s": c.outage.as_secs_f64(),
            "rate": c.rate,
            "connections": c.connections,
            "mix": c.mix.name(),
            "cores": o.gateway_cores,
            "dd_mib": c.dd_mib,
        },
        "dd_bytes_per_s": o.dd_bytes_per_s,
        "phases": o.phases.iter().map(|p| serde_json::json!({
            "name": p.name,
            "start_s": p.start_s,
            "end_s": p.end_s,
            "uploads_per_s": p.uploads_per_s,
            "cpu_us_per_upload": p.cpu_us_per_upload,
            "healthy_mean_latency_us": p.healthy_mean_us,
            "healthy_p99_le_s": p.healthy_p99_le_s,
            "healthy_delivered_per_s": p.healthy_delivered_per_s,
        })).collect::<Vec<_>>(),
        "spool": {
            "peak_bytes": o.spool_peak_bytes,
            "peak_records": o.spool_peak_records,
            "spill_bytes_per_s": o.spill_bytes_per_s,
            "spill_over_dd": o.spill_bytes_per_s / o.dd_bytes_per_s,
            "replay_s": o.replay_s,
            "replay_bytes_per_s": o.replay_bytes_per_s,
            "replay_over_dd": o.replay_bytes_per_s.map(|r| r / o.dd_bytes_per_s),
        },
        "client": {
            "uploads": o.uploads,
            "answered_200": o.answered_200,
            "p50_us": o.client_p50_us,
            "p99_us": o.client_p99_us,
        },
        "accounts": o.accounts.iter().map(|a| serde_json::json!({
            "name": a.name,
            "endpoint": a.endpoint,
            "accepted": a.accepted,
            "sent": a.sent,
            "dropped": a.dropped,
            "inflight": a.inflight,
            "spooled": a.spooled,
            "dropped_by_reason": a.dropped_by_reason,
            "sink_delivered": a.sink_delivered,
            "sink_distinct": a.sink_distinct,
            "balanced": a.balanced(),
            "sink_agrees": a.sink_agrees(),
        })).collect::<Vec<_>>(),
        "drained_after_s": o.drained_after_s,
        "gateway_exit": o.gateway_exit,
        "passed": o.passed(),
        "wall_s": o.wall.as_secs_f64(),
    })
}

/// CPU per upload, the healthy destination's latency and the spool over time.
pub fn plot(o: &Outage) -> String {
    let per_second = |f: &dyn Fn(&Sample, &Sample) -> Option<f64>| -> Vec<(f64, f64)> {
        let mut out = Vec::new();
        let mut prev: Option<&Sample> = None;
        for s in &o.samples {
            match prev {
                Some(p) if s.t_s - p.t_s >= 0.95 => {
                    if let Some(v) = f(p, s) {
                        out.push((s.t_s, v));
                    }
                    prev = Some(s);
                }
                Some(_) => {}
                None => prev = Some(s),
            }
        }
        out
    };
    let panels = vec![
        Panel {
            y_label: "CPU µs per upload".into(),
            lines: vec![Line {
                name: "gateway CPU per upload answered".into(),
                points: per_second(&|a, b| {
                    let n = b.requests - a.requests;
                    (n > 0.0).then(|| b.cpu_ms.saturating_sub(a.cpu_ms) as f64 * 1000.0 / n)
                }),
            }],
        },
        Panel {
            y_label: "healthy latency (ms)".into(),
            lines: vec![Line {
                name: "healthy destination: mean enqueue to delivery".into(),
                points: per_second(&|a, b| {
                    let n = b.healthy_latency_count - a.healthy_latency_count;
                    (n > 0.0).then(|| (b.healthy_latency_sum - a.healthy_latency_sum) / n * 1e3)
                }),
            }],
        },
        Panel {
            y_label: "spool (MB)".into(),
            lines: vec![Line {
                name: "pyrogate_spool_bytes (spooling destination)".into(),
                points: o
                    .samples
                    .iter()
                    .map(|s| (s.t_s, s.spool_bytes / 1e6))
                    .collect(),
            }],
        },
    ];
    let bands: Vec<Band> = o
        .phases
        .iter()
        .filter(|p| p.name == "outage" || p.name == "replay")
        .map(|p| Band {
            start_s: p.start_s,
            end_s: p.end_s,
            label: format!("spooling destination: {}", p.name),
            color: if p.name == "outage" {
                "#d62728"
            } else {
                "#2ca02c"
            },
        })
        .collect();
    let t_max = o.samples.last().map_or(1.0, |s| s.t_s);
    let title = format!(
        "pyrogate outage: {} mix at {}/s, 2 destinations (one down {:.0}s), spool, {} cores",
        o.config.mix.name(),
        o.config.rate,
        o.config.outage.as_secs_f64(),
        o.gateway_cores
    );
    timeplot::time_plot(
        &title,
        t_max,
        &panels,
        &bands,
        &[(o.config.duration.as_secs_f64(), "load ends".into())],
    )
}

/// Writes `outage-<unix>.{txt,json,svg}` into the out dir.
pub fn write_outputs(o: &Outage) -> anyhow::Result<[PathBuf; 3]> {
    fs::create_dir_all(&o.config.out_dir)?;
    let base = o.config.out_dir.join(format!("outage-{}", o.started_unix));
    let paths = [
        base.with_extension("txt"),
        base.with_extension("json"),
        base.with_extension("svg"),
    ];
    fs::write(&paths[0], text(o))?;
    fs::write(&paths[1], serde_json::to_string_pretty(&json(o))? + "\n")?;
    fs::write(&paths[2], plot(o))?;
    Ok(paths)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(t_s: f64, cpu_ms: u64, requests: f64, lat: (f64, f64), buckets: &[(f64, f64)]) -> Sample {
        Sample {
            t_s,
            cpu_ms,
            requests,
            healthy_latency_sum: lat.0,
            healthy_latency_count: lat.1,
            healthy_buckets: buckets.to_vec(),
            healthy_sent: lat.1,
            ..Sample::default()
        }
    }

    #[test]
    fn a_phase_is_the_difference_of_its_end_samples() {
        let samples = [
            s(0.0, 0, 0.0, (0.0, 0.0), &[(0.001, 0.0), (0.01, 0.0)]),
            s(
                10.2,
                2_000,
                1_000.0,
                (0.5, 1_000.0),
                &[(0.001, 900.0), (0.01, 1_000.0)],
            ),
            s(
                20.0,
                5_000,
                2_000.0,
                (2.5, 2_000.0),
                &[(0.001, 1_000.0), (0.01, 2_000.0)],
            ),
        ];
        let p = phase(&samples, "x", 10.0, 20.0);
        assert_eq!((p.start_s, p.end_s), (10.2, 20.0));
        assert!((p.uploads_per_s - 1_000.0 / 9.8).abs() < 1e-9);
        assert_eq!(p.cpu_us_per_upload, 3_000.0);
        assert!((p.healthy_mean_us - 2_000.0).abs() < 1e-6);
        // 100 of the phase's 1,000 deliveries were under 1 ms: p99 is in the 10 ms bucket.
        assert_eq!(p.healthy_p99_le_s, 0.01);
    }

    #[test]
    fn the_bucket_quantile_is_the_first_bound_holding_the_share() {
        let a = [(0.001, 10.0), (0.01, 10.0), (f64::INFINITY, 10.0)];
        let b = [(0.001, 109.0), (0.01, 110.0), (f64::INFINITY, 110.0)];
        assert_eq!(bucket_quantile(&a, &b, 0.5), 0.001);
        assert_eq!(bucket_quantile(&a, &b, 0.99), 0.001);
        assert_eq!(bucket_quantile(&a, &b, 1.0), 0.01);
        assert_eq!(bucket_quantile(&a, &a, 0.99), 0.0);
    }

    #[test]
    fn the_account_has_the_spooled_term() {
        let mut a = Account {
            name: "spooling".into(),
            endpoint: "http://x".into(),
            accepted: 10,
            sent: 6,
            dropped: 1,
            inflight: 1,
            spooled: 2,
            dropped_by_reason: BTreeMap::new(),
            sink_delivered: 6,
            sink_distinct: 6,
        };
        assert!(a.balanced() && a.sink_agrees());
        a.spooled = 1;
        assert!(!a.balanced());
        a.sink_delivered = 7;
        assert!(!a.sink_agrees());
    }

    #[test]
    fn the_config_adds_a_spool_block() {
        let cfg = gateway_config(
            &[
                ("healthy", "127.0.0.1:1".parse().unwrap()),
                ("spooling", "127.0.0.1:2".parse().unwrap()),
            ],
            Path::new("/tmp/sp ool"),
        );
        assert!(
            cfg.ends_with("pyrogate {\n\tspool {\n\t\tdirectory = \"/tmp/sp ool\"\n\t}\n}\n"),
            "{cfg}"
        );
        assert!(cfg.contains("acknowledge = \"enqueued\""), "{cfg}");
        assert!(cfg.contains("url = \"http://127.0.0.1:2\""), "{cfg}");
    }
}
