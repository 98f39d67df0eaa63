//! `loadtest`: the binary of the benchmark harness (sink, gen, replay, compare, soak, slow).
//!
//! Owns: building each subcommand's configuration from its parsed flags (`cli.rs` parses them,
//! refusing anything that is not 127.0.0.1), the environment and clock look-ups that adds
//! (`$PYROGATE_BIN`, nginx on `PATH`, burst offsets), printing reports and the exit status.
//! Everything else lives in the library. Cold path.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use loadtest::bodies::BodyPool;
use loadtest::cli::{
    self, Command, CompareArgs, GenArgs, IdleArgs, Mode, OutageArgs, ReplayArgs, SinkArgs,
    SlowArgs, SoakArgs,
};
use loadtest::compare::{self, CompareConfig};
use loadtest::generator::{self, Plan, RunResult, Schedule};
use loadtest::integrity::{self as sink, Faults, Sink, SinkConfig, SinkStats};
use loadtest::report::thousands;
use loadtest::stats::fmt_us;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let command = match cli::parse(&args) {
        Ok(c) => c,
        // `--help`, `--version` (stdout, exit 0) and usage errors (stderr, exit 2).
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(2));
        }
    };
    let (name, result) = match command {
        Command::Sink(a) => ("sink", cmd_sink(a)),
        Command::Gen(a) => ("gen", cmd_gen(a)),
        Command::Replay(a) => ("replay", cmd_replay(a)),
        Command::Compare(a) => ("compare", cmd_compare(a)),
        Command::Soak(a) => ("soak", cmd_soak(a)),
        Command::Outage(a) => ("outage", cmd_outage(a)),
        Command::Slow(a) => ("slow", cmd_slow(a)),
        Command::Idle(a) => ("idle", cmd_idle(a)),
        Command::Completions { shell } => {
            print!("{}", cli::completions(shell));
            return ExitCode::SUCCESS;
        }
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("loadtest {name}: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `--pyrogate`, else `$PYROGATE_BIN`, else the release build's path.
fn pyrogate_bin(flag: Option<PathBuf>) -> PathBuf {
    flag.or_else(|| std::env::var_os("PYROGATE_BIN").map(PathBuf::from))
        .unwrap_or_else(compare::default_pyrogate_bin)
}

fn cmd_sink(args: SinkArgs) -> anyhow::Result<ExitCode> {
    let faults = Faults {
        latency: args.latency,
        error_rate: args.error_rate,
        error_status: args.error_status,
        throttle_rate: args.throttle_rate,
        retry_after_secs: args.retry_after,
        reset_rate: args.reset_rate,
        hang_rate: args.hang_rate,
        hang_for: args.hang_for,
    };
    let config = SinkConfig {
        listen: args.listen,
        body_limit: args.body_limit,
        faults,
        seed: args.seed,
        max_connections: args.max_connections,
    };
    let duration = args.duration;
    let mut sink =
        Sink::start(config.clone()).with_context(|| format!("binding {}", config.listen))?;
    eprintln!(
        "sink listening addr={} duration={duration:?} faults={:?}; counters at http://{}{}",
        sink.addr(),
        config.faults,
        sink.addr(),
        sink::STATS_PATH
    );
    std::thread::sleep(duration);
    let stats = sink.stats();
    sink.stop();
    println!("{}", stats.to_json());
    Ok(ExitCode::SUCCESS)
}

fn print_run(result: &RunResult) {
    let p = result.latencies.percentiles();
    println!(
        "uploads={} accepted={} in {:.1}s: {:.0} uploads/s, {:.1} MB/s",
        thousands(result.uploads()),
        thousands(result.accepted()),
        result.elapsed.as_secs_f64(),
        result.per_second(),
        result.body_bytes as f64 / 1e6 / result.elapsed.as_secs_f64().max(1e-9)
    );
    println!(
        "latency p50={} p90={} p99={} p99.9={} max={}",
        fmt_us(p.p50),
        fmt_us(p.p90),
        fmt_us(p.p99),
        fmt_us(p.p999),
        fmt_us(p.max)
    );
    let errors = result.outcomes.errors_text();
    println!(
        "errors: {}",
        if errors.is_empty() {
            "none".to_string()
        } else {
            errors
        }
    );
}

fn fetch_sink(addr: SocketAddr) -> anyhow::Result<SinkStats> {
    let (status, body) = generator::http_get(addr, sink::STATS_PATH, Duration::from_secs(10))?;
    if status != 200 {
        bail!("{addr}{}: status {status}", sink::STATS_PATH);
    }
    let v: serde_json::Value = serde_json::from_slice(&body)?;
    SinkStats::from_json(&v).with_context(|| format!("{addr}: not a loadtest sink's stats"))
}

fn cmd_gen(args: GenArgs) -> anyhow::Result<ExitCode> {
    let GenArgs {
        target,
        connections,
        duration,
        mix,
        label_sets,
        seed,
        gateway_admin: admin,
        ..
    } = args;
    let (sinks, json_out) = (&args.sinks, &args.json);
    let schedule = match args.mode {
        Mode::Closed => Schedule::Closed,
        Mode::Open => Schedule::Rate(args.rate.unwrap_or(cli::GEN_DEFAULT_RATE)),
        Mode::Burst => {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default();
            let offsets = generator::burst_offsets(
                now,
                duration,
                args.period.unwrap_or(cli::GEN_DEFAULT_PERIOD),
                args.instances.unwrap_or(cli::GEN_DEFAULT_INSTANCES),
                args.spread.unwrap_or(cli::GEN_DEFAULT_SPREAD),
            );
            Schedule::Offsets(offsets.into())
        }
    };
    let plan = Plan {
        connections,
        schedule,
        duration,
        max_uploads: args.max_uploads,
        timeout: args.timeout,
    };
    let pool = Arc::new(BodyPool::new(
        mix,
        loadtest::bodies::DEFAULT_TEMPLATES,
        label_sets,
        seed,
    ));
    let run = generator::new_run_tag();
    eprintln!(
        "gen: run {run:08x} -> {target}, {} mix (mean body {} B), {} label sets, {connections} connections, {:?}",
        mix.name(),
        pool.mean_body_bytes(),
        pool.labels.len(),
        plan.schedule_name()
    );
    let make = |i: u64| pool.request(generator::id(run, i));
    let result = generator::drive(target, &plan, &make, "gen", true);
    print_run(&result);
    let mut json = serde_json::json!({
        "run": format!("{run:08x}"),
        "uploads": result.uploads(), "accepted": result.accepted(),
        "elapsed_s": result.elapsed.as_secs_f64(), "uploads_per_s": result.per_second(),
        "latency": result.latencies.percentiles().to_json(), "outcomes": result.outcomes.0,
    });
    let mut ok = true;
    if !sinks.is_empty() {
        std::thread::sleep(Duration::from_millis(500));
        let named = sinks
            .iter()
            .map(|a| Ok((a.to_string(), fetch_sink(*a)?)))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let dropped = match admin {
            Some(a) => {
                let (_, body) = generator::http_get(a, "/metrics", Duration::from_secs(10))?;
                Some(generator::sum_metric(
                    &String::from_utf8_lossy(&body),
                    "pyrogate_dropped_total",
                ))
            }
            None => None,
        };
        let integrity = generator::check_integrity(run, &result.statuses, &named, dropped);
        println!("integrity: {}", integrity.summary());
        ok = integrity.passed();
        json["integrity"] = integrity.to_json();
    }
    if let Some(path) = json_out {
        std::fs::write(path, serde_json::to_string_pretty(&json)? + "\n")?;
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

trait ScheduleName {
    fn schedule_name(&self) -> String;
}

impl ScheduleName for Plan {
    fn schedule_name(&self) -> String {
        match &self.schedule {
            Schedule::Closed => format!("closed loop for {:?}", self.duration),
            Schedule::Rate(r) => format!("open loop at {r}/s for {:?}", self.duration),
            Schedule::Offsets(o) => {
                format!("{} scheduled uploads within {:?}", o.len(), self.duration)
            }
        }
    }
}

fn cmd_replay(args: ReplayArgs) -> anyhow::Result<ExitCode> {
    let ReplayArgs {
        dir: path,
        target,
        speedup,
        connections,
        max_duration: max,
    } = args;
    let dir = path.display();
    let mut records =
        pyrogate::capture::read_dir_records(&path).with_context(|| format!("reading {dir}"))?;
    if records.is_empty() {
        bail!("{dir}: no capture records (capture-*.http)");
    }
    loadtest::replay::sort_records(&mut records);
    let offsets = loadtest::replay::offsets(&records, speedup);
    let span = offsets.last().copied().unwrap_or_default();
    let plan = Plan {
        connections,
        schedule: Schedule::Offsets(offsets.into()),
        duration: (span + Duration::from_secs(1)).min(max),
        max_uploads: records.len() as u64,
        timeout: Duration::from_secs(30),
    };
    eprintln!(
        "replay: {} records spanning {span:?} (speed-up {speedup}) -> {target}",
        records.len()
    );
    let requests: Vec<_> = records.iter().map(loadtest::replay::request).collect();
    let make = |i: u64| requests[i as usize].clone();
    let result = generator::drive(target, &plan, &make, "replay", true);
    print_run(&result);
    Ok(ExitCode::SUCCESS)
}

fn cmd_compare(args: CompareArgs) -> anyhow::Result<ExitCode> {
    let explicit_bin = args.pyrogate.is_some() || std::env::var_os("PYROGATE_BIN").is_some();
    let nginx_bin = if args.no_nginx {
        None
    } else {
        args.nginx.clone().or_else(compare::find_nginx)
    };
    let cfg = CompareConfig {
        rounds: args.rounds.max(1),
        duration: args.duration,
        connections: args.connections,
        mix: args.mix,
        cores: args.cores,
        pin: args.pin,
        pyrogate_fanouts: args.fanouts,
        nginx_fanout: args.nginx_fanout.clamp(1, 16),
        relabel: args.relabel,
        label_sets: args.label_sets,
        seed: args.seed,
        pyrogate_bin: pyrogate_bin(args.pyrogate),
        nginx_bin,
        out_dir: args.out,
        quiet: args.quiet,
    };
    let no_build = args.no_build;
    if cfg.nginx_bin.is_none() && !args.no_nginx {
        eprintln!(
            "compare: nginx not found; install it with `{}` to compare against it. Skipping that peer.",
            compare::NGINX_HINT
        );
    }
    if !cfg.pyrogate_bin.is_file() {
        if explicit_bin || no_build {
            bail!(
                "no pyrogate binary at {}: build it with `cargo build --release -p pyrogate --bin pyrogate`",
                cfg.pyrogate_bin.display()
            );
        }
        compare::build_pyrogate()?;
    }
    eprintln!(
        "compare: pyrogate {} · nginx {} · {} rounds × {:?} · {} mix · {} connections · cores {}",
        cfg.pyrogate_bin.display(),
        cfg.nginx_bin
            .as_ref()
            .map_or("(skipped)".to_string(), |p| p.display().to_string()),
        cfg.rounds,
        cfg.duration,
        cfg.mix.name(),
        cfg.connections,
        cfg.cores
    );
    let c = compare::run(cfg)?;
    print!("{}", compare::text(&c));
    let (json, svg) = compare::write_outputs(&c)?;
    println!("\nmarkdown:\n{}", compare::markdown(&c));
    println!(
        "results: {}\nplot:    {}\nwall time: {:.0}s",
        json.display(),
        svg.display(),
        c.wall.as_secs_f64()
    );
    Ok(
        if c.results
            .iter()
            .all(compare::SystemResult::integrity_passed)
        {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        },
    )
}

/// Fails with how to build it when there is no pyrogate binary at `bin`.
fn require_built(bin: &std::path::Path) -> anyhow::Result<()> {
    if !bin.is_file() {
        bail!(
            "no pyrogate binary at {}: build it with `cargo build --release --workspace`",
            bin.display()
        );
    }
    Ok(())
}

fn cmd_outage(args: OutageArgs) -> anyhow::Result<ExitCode> {
    if args.outage_at + args.outage >= args.duration {
        bail!("--outage-at plus --outage must end before --duration");
    }
    let cfg = loadtest::outage::OutageConfig {
        duration: args.duration,
        outage_at: args.outage_at,
        outage: args.outage,
        rate: args.rate,
        connections: args.connections.max(1),
        mix: args.mix,
        label_sets: args.label_sets,
        seed: args.seed,
        cores: args.cores.map(|c| c.max(1)),
        pyrogate_bin: pyrogate_bin(args.pyrogate),
        out_dir: args.out,
        drain_max: args.drain_max,
        dd_mib: args.dd_mib.max(1),
        timeout: args.timeout,
        quiet: args.quiet,
    };
    require_built(&cfg.pyrogate_bin)?;
    let o = loadtest::outage::run(cfg)?;
    print!("{}", loadtest::outage::text(&o));
    let [txt, json, svg] = loadtest::outage::write_outputs(&o)?;
    println!(
        "summary: {}\nresults: {}\nplot:    {}\nwall time: {:.0}s",
        txt.display(),
        json.display(),
        svg.display(),
        o.wall.as_secs_f64()
    );
    Ok(if o.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn cmd_soak(args: SoakArgs) -> anyhow::Result<ExitCode> {
    let latency =
        loadtest::integrity::Latency::Uniform(Duration::from_millis(1), Duration::from_millis(10));
    let cfg = loadtest::soak::SoakConfig {
        duration: args.duration,
        warmup: args.warmup,
        rate: args.rate,
        connections: args.connections.max(1),
        mix: args.mix,
        label_sets: args.label_sets,
        seed: args.seed,
        acknowledge: args.acknowledge.name().to_string(),
        cores: args.cores.map(|c| c.max(1)),
        pyrogate_bin: pyrogate_bin(args.pyrogate),
        out_dir: args.out,
        drain_max: args.drain_max,
        outage: args.outage,
        flaky: Faults {
            latency,
            reset_rate: args.reset_rate,
            error_rate: args.error_rate,
            error_status: 503,
            ..Faults::default()
        },
        healthy_latency: latency,
        timeout: args.timeout,
        quiet: args.quiet,
    };
    require_built(&cfg.pyrogate_bin)?;
    let s = loadtest::soak::run(cfg)?;
    print!("{}", loadtest::soak::text(&s));
    println!("\nmarkdown:\n{}", loadtest::soak::markdown(&s));
    let [json, csv, svg] = loadtest::soak::write_outputs(&s)?;
    println!(
        "results: {}\nsamples: {}\nplot:    {}\nwall time: {:.0}s",
        json.display(),
        csv.display(),
        svg.display(),
        s.wall.as_secs_f64()
    );
    Ok(if s.accounts_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn cmd_idle(args: IdleArgs) -> anyhow::Result<ExitCode> {
    let cores = args.cores.unwrap_or_else(|| {
        std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
    });
    let cfg = loadtest::idle::IdleConfig {
        connections: args.connections.max(1),
        cores: cores.max(1),
        settle: args.settle,
        pyrogate_bin: pyrogate_bin(args.pyrogate),
        nginx_bin: if args.no_nginx {
            None
        } else {
            args.nginx.or_else(compare::find_nginx)
        },
        out_dir: args.out,
    };
    if !cfg.pyrogate_bin.is_file() {
        bail!(
            "no pyrogate binary at {}: build it with `cargo build --release -p pyrogate --bin pyrogate`",
            cfg.pyrogate_bin.display()
        );
    }
    if cfg.nginx_bin.is_none() && !args.no_nginx {
        eprintln!(
            "idle: nginx not found; install it with `{}` to compare against it. Skipping that peer.",
            compare::NGINX_HINT
        );
    }
    let results = loadtest::idle::run(&cfg)?;
    print!("{}", loadtest::idle::markdown(&results));
    Ok(ExitCode::SUCCESS)
}

fn cmd_slow(args: SlowArgs) -> anyhow::Result<ExitCode> {
    let cfg = loadtest::slow::SlowConfig {
        pyrogate_bin: pyrogate_bin(args.pyrogate),
        cores: args.cores.map(|c| c.max(1)),
        conn_limit: args.conn_limit.max(1),
        read_timeout: args.read_timeout,
        write_timeout: args.write_timeout,
        idle_timeout: args.idle_timeout,
        gen_duration: args.duration,
        rate: args.rate,
        gen_connections: args.connections.max(1),
        mix: args.mix,
        attackers: args.attackers,
        flood_extra: args.flood_extra,
        attacks: if args.attacks.is_empty() {
            loadtest::slow::Attack::ALL.to_vec()
        } else {
            args.attacks
        },
        out_dir: args.out,
        quiet: args.quiet,
    };
    require_built(&cfg.pyrogate_bin)?;
    let r = loadtest::slow::run(cfg)?;
    print!("{}", loadtest::slow::text(&r));
    println!("\nmarkdown:\n{}", loadtest::slow::markdown(&r));
    println!("wall time: {:.0}s", r.wall.as_secs_f64());
    Ok(ExitCode::SUCCESS)
}
