//! `loadtest`: the command line of the benchmark harness (sink, gen, replay, compare).
//!
//! Owns: reading each subcommand's flags into its configuration, refusing anything that is not
//! 127.0.0.1, printing reports. Everything else lives in the library. Cold path.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use loadtest::bodies::{BodyPool, Mix};
use loadtest::cli::{Args, CliError, invalid};
use loadtest::compare::{self, CompareConfig};
use loadtest::generator::{self, Plan, RunResult, Schedule};
use loadtest::integrity::{self as sink, Faults, Sink, SinkConfig, SinkStats};
use loadtest::report::thousands;
use loadtest::stats::fmt_us;

const USAGE: &str = "\
usage: loadtest <command> [flags]

  sink     a Pyroscope stand-in upstream (counts, verifies checksums, injects faults)
           --listen=127.0.0.1:4040 --duration=10m --latency=0|5ms|2ms..20ms|exp:10ms
           --error-rate=0 --error-status=503 --throttle-rate=0 --retry-after=1
           --reset-rate=0 --hang-rate=0 --hang-for=30s --seed=1 --body-limit=268435456
           counters: GET /-/loadtest/stats (JSON); a final JSON line on stdout at the end
  gen      a load generator
           --target=127.0.0.1:9999 --mode=closed|open|burst --connections=32 --rate=500
           --period=10s --instances=200 --spread=1s --duration=10s --max-uploads=N
           --mix=go|all --label-sets=500 --seed=1 --timeout=30s
           --sinks=ADDR,ADDR (integrity check) --gateway-admin=ADDR (pyrogate's drops)
           --json=FILE
  replay   DIR: sends pyrogate capture records again, paced by X-Pyrogate-Captured-At
           --target=127.0.0.1:9999 --speedup=1 --connections=32 --max-duration=10m
  compare  pyrogate vs nginx (mirror) vs direct, same load, alternating rounds
           --rounds=2 --duration=6s --connections=32 --mix=go --cores=1
           --fanouts=1,2,4 --nginx-fanout=2 --pyrogate=PATH --nginx=PATH --no-nginx
           --relabel --label-sets=500 --seed=1 --no-build --out=target/loadtest --quiet
           --relabel also runs pyrogate behind a five-rule pyroscope.relabel (replace,
           labeldrop, drop matching nothing, hashmod, lowercase) at the headline fan-out
           (--nginx-fanout if in --fanouts, else the first) and reports its CPU per
           upload as a ratio to plain pyrogate at that fan-out, from the same rounds
  soak     a long run through pyrogate to 3 sinks, one flaky (resets, 503 storms, an outage
           in the middle); samples RSS, fds and /metrics every second; checks the account
           --duration=10m --rate=40 --connections=128 --mix=all --acknowledge=enqueued
           --cores=N (default: pyrogate's) --warmup=60s --drain-max=5m --reset-rate=0.02
           --error-rate=0.03 --outage=DURATION (default: 10% of --duration) --pyrogate=PATH
           --out=target/loadtest --seed=1 --quiet
  slow     the normal client's latency with and without slowloris heads, slow bodies, slow
           readers, idle keep-alive connections and a connection flood above conn_limit
           --attackers=200 --flood-extra=300 --conn-limit=256 --read-timeout=10s
           --write-timeout=10s --idle-timeout=15s --duration=20s --rate=50 --connections=16
           --mix=go --cores=N --attacks=none,slowloris,slow-body,slow-reader,idle,flood,none
           --pyrogate=PATH --out=target/loadtest --quiet
";

fn main() -> ExitCode {
    let mut argv = std::env::args().skip(1);
    let Some(cmd) = argv.next() else {
        eprint!("{USAGE}");
        return ExitCode::from(2);
    };
    let args = match Args::parse(argv) {
        Ok(a) => a,
        Err(e) => return usage_error(&e),
    };
    let result = match cmd.as_str() {
        "sink" => cmd_sink(&args),
        "gen" => cmd_gen(&args),
        "replay" => cmd_replay(&args),
        "compare" => cmd_compare(&args),
        "soak" => cmd_soak(&args),
        "slow" => cmd_slow(&args),
        "help" | "--help" | "-h" => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        other => {
            eprintln!("loadtest: unknown command {other:?}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(code) => code,
        Err(e) => match e.downcast_ref::<CliError>() {
            Some(c) => usage_error(c),
            None => {
                eprintln!("loadtest {cmd}: {e:#}");
                ExitCode::FAILURE
            }
        },
    }
}

fn usage_error(e: &CliError) -> ExitCode {
    eprintln!("loadtest: {e}");
    ExitCode::from(2)
}

/// A loopback socket address flag (everything the harness touches is on 127.0.0.1).
fn loopback(args: &Args, name: &str, default: &str) -> Result<SocketAddr, CliError> {
    let v = args.str(name).unwrap_or(default);
    match v.parse::<SocketAddr>() {
        Ok(a) if a.ip().is_loopback() => Ok(a),
        _ => Err(invalid(
            name,
            v,
            "a loopback address such as 127.0.0.1:9999",
        )),
    }
}

fn loopback_list(args: &Args, name: &str) -> Result<Vec<SocketAddr>, CliError> {
    let Some(v) = args.str(name) else {
        return Ok(Vec::new());
    };
    v.split(',')
        .map(|s| match s.trim().parse::<SocketAddr>() {
            Ok(a) if a.ip().is_loopback() => Ok(a),
            _ => Err(invalid(name, s, "comma-separated loopback addresses")),
        })
        .collect()
}

fn mix(args: &Args) -> Result<Mix, CliError> {
    let v = args.str("mix").unwrap_or("go");
    Mix::parse(v).ok_or_else(|| invalid("mix", v, "go or all"))
}

fn cmd_sink(args: &Args) -> anyhow::Result<ExitCode> {
    let latency_text = args.str("latency").unwrap_or("0");
    let faults = Faults {
        latency: sink::parse_latency(latency_text)
            .ok_or_else(|| invalid("latency", latency_text, "0, 5ms, 2ms..20ms or exp:10ms"))?,
        error_rate: args.rate("error-rate")?,
        error_status: args.get("error-status", 503u16, "an HTTP status")?,
        throttle_rate: args.rate("throttle-rate")?,
        retry_after_secs: args.get("retry-after", 1u32, "seconds")?,
        reset_rate: args.rate("reset-rate")?,
        hang_rate: args.rate("hang-rate")?,
        hang_for: args.duration("hang-for", Duration::from_secs(30))?,
    };
    let config = SinkConfig {
        listen: loopback(args, "listen", "127.0.0.1:4040")?,
        body_limit: args.get("body-limit", sink::DEFAULT_BODY_LIMIT, "bytes")?,
        faults,
        seed: args.get("seed", 1u64, "an integer")?,
        max_connections: args.get(
            "max-connections",
            sink::DEFAULT_MAX_CONNECTIONS,
            "an integer",
        )?,
    };
    let duration = args.duration("duration", Duration::from_secs(600))?;
    args.finish()?;
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

fn cmd_gen(args: &Args) -> anyhow::Result<ExitCode> {
    let target = loopback(args, "target", "127.0.0.1:9999")?;
    let connections = args.get("connections", 32usize, "an integer")?;
    let duration = args.duration("duration", Duration::from_secs(10))?;
    let schedule = match args.str("mode").unwrap_or("closed") {
        "closed" => Schedule::Closed,
        "open" => {
            let r: f64 = args.get("rate", 500.0, "uploads per second")?;
            if !(r > 0.0 && r.is_finite()) {
                return Err(invalid("rate", &r.to_string(), "a positive rate").into());
            }
            Schedule::Rate(r)
        }
        "burst" => {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default();
            let period = args.duration("period", Duration::from_secs(10))?;
            let instances = args.get("instances", 200usize, "an integer")?;
            let spread = args.duration("spread", Duration::from_secs(1))?;
            let offsets = generator::burst_offsets(now, duration, period, instances, spread);
            Schedule::Offsets(offsets.into())
        }
        other => return Err(invalid("mode", other, "closed, open or burst").into()),
    };
    let plan = Plan {
        connections,
        schedule,
        duration,
        max_uploads: args.get("max-uploads", u64::MAX, "an integer")?,
        timeout: args.duration("timeout", Duration::from_secs(30))?,
    };
    let mix = mix(args)?;
    let label_sets = args.get("label-sets", 500usize, "an integer")?;
    let seed = args.get("seed", 1u64, "an integer")?;
    let sinks = loopback_list(args, "sinks")?;
    let admin = match args.str("gateway-admin") {
        Some(_) => Some(loopback(args, "gateway-admin", "")?),
        None => None,
    };
    let json_out = args.str("json").map(PathBuf::from);
    args.finish()?;
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
        std::fs::write(&path, serde_json::to_string_pretty(&json)? + "\n")?;
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

fn cmd_replay(args: &Args) -> anyhow::Result<ExitCode> {
    let [dir] = args.positional.as_slice() else {
        return Err(CliError::Usage(
            "replay needs exactly one DIR (a pyrogate file:// capture directory)".into(),
        )
        .into());
    };
    let target = loopback(args, "target", "127.0.0.1:9999")?;
    let speedup: f64 = args.get("speedup", 1.0, "a factor such as 10")?;
    let connections = args.get("connections", 32usize, "an integer")?;
    let max = args.duration("max-duration", Duration::from_secs(600))?;
    args.finish()?;
    let mut records = pyrogate::capture::read_dir_records(std::path::Path::new(dir))
        .with_context(|| format!("reading {dir}"))?;
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

fn cmd_compare(args: &Args) -> anyhow::Result<ExitCode> {
    let fanouts: Vec<usize> = args
        .str("fanouts")
        .unwrap_or("1,2,4")
        .split(',')
        .map(|s| {
            s.trim()
                .parse::<usize>()
                .ok()
                .filter(|&f| (1..=16).contains(&f))
        })
        .collect::<Option<_>>()
        .ok_or_else(|| {
            invalid(
                "fanouts",
                args.str("fanouts").unwrap_or(""),
                "comma-separated fan-outs 1..16",
            )
        })?;
    let pyrogate_bin = args
        .str("pyrogate")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("PYROGATE_BIN").map(PathBuf::from));
    let explicit_bin = pyrogate_bin.is_some();
    let pyrogate_bin = pyrogate_bin.unwrap_or_else(compare::default_pyrogate_bin);
    let nginx_bin = if args.switch("no-nginx") {
        None
    } else {
        args.str("nginx")
            .map(PathBuf::from)
            .or_else(compare::find_nginx)
    };
    let cfg = CompareConfig {
        rounds: args.get("rounds", 2usize, "an integer")?.max(1),
        duration: args.duration("duration", Duration::from_secs(6))?,
        connections: args.get("connections", 32usize, "an integer")?,
        mix: mix(args)?,
        cores: args.get("cores", 1usize, "an integer")?.max(1),
        pyrogate_fanouts: fanouts,
        nginx_fanout: args.get("nginx-fanout", 2usize, "an integer")?.clamp(1, 16),
        relabel: args.switch("relabel"),
        label_sets: args.get("label-sets", 500usize, "an integer")?,
        seed: args.get("seed", 1u64, "an integer")?,
        pyrogate_bin,
        nginx_bin,
        out_dir: PathBuf::from(args.str("out").unwrap_or("target/loadtest")),
        quiet: args.switch("quiet"),
    };
    let no_build = args.switch("no-build");
    args.finish()?;
    if cfg.nginx_bin.is_none() && !args.switch("no-nginx") {
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
        "compare: pyrogate {} · nginx {} · {} rounds × {:?} · {} mix · {} connections",
        cfg.pyrogate_bin.display(),
        cfg.nginx_bin
            .as_ref()
            .map_or("(skipped)".to_string(), |p| p.display().to_string()),
        cfg.rounds,
        cfg.duration,
        cfg.mix.name(),
        cfg.connections
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

fn cmd_soak(args: &Args) -> anyhow::Result<ExitCode> {
    let acknowledge = args.str("acknowledge").unwrap_or("enqueued").to_string();
    if acknowledge != "enqueued" && acknowledge != "delivered" {
        return Err(invalid("acknowledge", &acknowledge, "enqueued or delivered").into());
    }
    let rate: f64 = args.get("rate", 40.0, "uploads per second")?;
    if !(rate > 0.0 && rate.is_finite()) {
        return Err(invalid("rate", &rate.to_string(), "a positive rate").into());
    }
    let cores = match args.str("cores") {
        Some(_) => Some(args.get("cores", 1usize, "an integer")?.max(1)),
        None => None,
    };
    let latency =
        loadtest::integrity::Latency::Uniform(Duration::from_millis(1), Duration::from_millis(10));
    let cfg = loadtest::soak::SoakConfig {
        duration: args.duration("duration", Duration::from_secs(600))?,
        warmup: args.duration("warmup", Duration::from_secs(60))?,
        rate,
        connections: args.get("connections", 128usize, "an integer")?.max(1),
        mix: Mix::parse(args.str("mix").unwrap_or("all"))
            .ok_or_else(|| invalid("mix", args.str("mix").unwrap_or(""), "go or all"))?,
        label_sets: args.get("label-sets", 500usize, "an integer")?,
        seed: args.get("seed", 1u64, "an integer")?,
        acknowledge,
        cores,
        pyrogate_bin: args
            .str("pyrogate")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("PYROGATE_BIN").map(PathBuf::from))
            .unwrap_or_else(compare::default_pyrogate_bin),
        out_dir: PathBuf::from(args.str("out").unwrap_or("target/loadtest")),
        drain_max: args.duration("drain-max", Duration::from_secs(300))?,
        outage: match args.str("outage") {
            Some(_) => Some(args.duration("outage", Duration::from_secs(60))?),
            None => None,
        },
        flaky: Faults {
            latency,
            reset_rate: args.get("reset-rate", 0.02, "a rate between 0 and 1")?,
            error_rate: args.get("error-rate", 0.03, "a rate between 0 and 1")?,
            error_status: 503,
            ..Faults::default()
        },
        healthy_latency: latency,
        timeout: args.duration("timeout", Duration::from_secs(30))?,
        quiet: args.switch("quiet"),
    };
    args.finish()?;
    if !cfg.pyrogate_bin.is_file() {
        bail!(
            "no pyrogate binary at {}: build it with `cargo build --release --workspace`",
            cfg.pyrogate_bin.display()
        );
    }
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

fn cmd_slow(args: &Args) -> anyhow::Result<ExitCode> {
    let rate: f64 = args.get("rate", 50.0, "uploads per second")?;
    if !(rate > 0.0 && rate.is_finite()) {
        return Err(invalid("rate", &rate.to_string(), "a positive rate").into());
    }
    let cores = match args.str("cores") {
        Some(_) => Some(args.get("cores", 1usize, "an integer")?.max(1)),
        None => None,
    };
    let cfg = loadtest::slow::SlowConfig {
        pyrogate_bin: args
            .str("pyrogate")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("PYROGATE_BIN").map(PathBuf::from))
            .unwrap_or_else(compare::default_pyrogate_bin),
        cores,
        conn_limit: args.get("conn-limit", 256usize, "an integer")?.max(1),
        read_timeout: args.duration("read-timeout", Duration::from_secs(10))?,
        write_timeout: args.duration("write-timeout", Duration::from_secs(10))?,
        idle_timeout: args.duration("idle-timeout", Duration::from_secs(15))?,
        gen_duration: args.duration("duration", Duration::from_secs(20))?,
        rate,
        gen_connections: args.get("connections", 16usize, "an integer")?.max(1),
        mix: mix(args)?,
        attackers: args.get("attackers", 200usize, "an integer")?,
        flood_extra: args.get("flood-extra", 300usize, "an integer")?,
        attacks: match args.str("attacks") {
            None => loadtest::slow::Attack::ALL.to_vec(),
            Some(v) => v
                .split(',')
                .map(|a| loadtest::slow::Attack::parse(a.trim()))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| {
                    invalid(
                        "attacks",
                        v,
                        "comma-separated none, slowloris, slow-body, slow-reader, idle, flood",
                    )
                })?,
        },
        out_dir: PathBuf::from(args.str("out").unwrap_or("target/loadtest")),
        quiet: args.switch("quiet"),
    };
    args.finish()?;
    if !cfg.pyrogate_bin.is_file() {
        bail!(
            "no pyrogate binary at {}: build it with `cargo build --release --workspace`",
            cfg.pyrogate_bin.display()
        );
    }
    let r = loadtest::slow::run(cfg)?;
    print!("{}", loadtest::slow::text(&r));
    println!("\nmarkdown:\n{}", loadtest::slow::markdown(&r));
    println!("wall time: {:.0}s", r.wall.as_secs_f64());
    Ok(ExitCode::SUCCESS)
}
