//! The command line of `loadtest`: every subcommand's flags, parsed by `clap` (derive).
//!
//! Owns: turning `argv` into a [`Command`] holding typed flag values (pure; no I/O: no
//! environment, no clock, no file system), the checks between flags, the value syntaxes
//! (durations `250us`, `500ms`, `10s`, `2m`, `1.5s`; rates in `[0, 1]`; loopback addresses;
//! comma-separated lists), the help texts and the shell-completion scripts. Does not own what
//! the flags mean (`main.rs` builds each subcommand's configuration from them). Cold path.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::builder::PossibleValue;
use clap::error::ErrorKind;
use clap::{CommandFactory, Parser, Subcommand, ValueEnum};
pub use clap_complete::Shell;

use crate::bodies::Mix;
use crate::integrity::{self, Latency};
use crate::placement::Cores;
use crate::slow::Attack;

/// `gen --mode=open` without `--rate`: uploads per second.
pub const GEN_DEFAULT_RATE: f64 = 500.0;
/// `gen --mode=burst` without `--period`.
pub const GEN_DEFAULT_PERIOD: Duration = Duration::from_secs(10);
/// `gen --mode=burst` without `--instances`.
pub const GEN_DEFAULT_INSTANCES: usize = 200;
/// `gen --mode=burst` without `--spread`.
pub const GEN_DEFAULT_SPREAD: Duration = Duration::from_secs(1);

/// What the user asked for.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// A Pyroscope stand-in upstream that counts, verifies checksums and injects faults
    ///
    /// Pyroscope's 400/413/422 rules, per-label-set counters at GET /-/loadtest/stats (JSON),
    /// and a final JSON line on stdout at the end.
    Sink(SinkArgs),
    /// A load generator: closed loop, open loop at a rate, or fleet bursts
    ///
    /// With --sinks, checks that every accepted upload reached every sink exactly once
    /// (counting pyrogate's drops from its /metrics with --gateway-admin).
    Gen(GenArgs),
    /// Send a pyrogate file:// capture again, paced by X-Pyrogate-Captured-At
    Replay(ReplayArgs),
    /// pyrogate vs nginx (mirror) vs direct, same load, alternating rounds
    ///
    /// Starts Pyroscope stand-in sinks, runs the same load against each system in turn, prints
    /// a table, writes a JSON result and an SVG latency plot under --out, and checks that every
    /// upload answered 200 reached every sink exactly once.
    Compare(CompareArgs),
    /// A long run through pyrogate to three sinks, one of them flaky
    ///
    /// The flaky sink resets connections, answers 503 storms and has an outage in the middle;
    /// RSS, fds and /metrics are sampled every second, and the account (accepted = delivered +
    /// dropped + in flight) is checked at the end.
    Soak(SoakArgs),
    /// A one-minute outage of one of two destinations under steady load, with a spool
    ///
    /// Measures the disk with dd, then the gateway's CPU per upload and the healthy
    /// destination's latency before, during and after the outage, the spool's spill and replay
    /// throughput as ratios of dd's, and the account (accepted = delivered + dropped + in
    /// flight + spooled, every upload at each sink once).
    Outage(OutageArgs),
    /// A normal client's latency while slow or idle clients attack pyrogate
    ///
    /// Phases with slowloris heads, slow bodies, slow readers, idle keep-alive connections
    /// and a connection flood above conn_limit, each beside the same normal load.
    Slow(SlowArgs),
    /// Resident memory of N idle keep-alive connections (one upload each), pyrogate vs nginx
    Idle(IdleArgs),
    /// Print a shell completion script (e.g. `loadtest completions bash`)
    Completions {
        /// bash, elvish, fish, powershell or zsh
        shell: Shell,
    },
}

/// Flags of `loadtest sink`.
#[derive(Debug, Clone, PartialEq, clap::Args)]
pub struct SinkArgs {
    /// Address to listen on (loopback only)
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:4040", value_parser = loopback)]
    pub listen: SocketAddr,
    /// How long to run, then print the counters and exit
    #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = duration)]
    pub duration: Duration,
    /// Added latency per request: 0, 5ms (fixed), 2ms..20ms (uniform) or exp:10ms (exponential mean)
    #[arg(long, value_name = "LATENCY", default_value = "0", value_parser = latency)]
    pub latency: Latency,
    /// Share of requests answered with --error-status
    #[arg(long, value_name = "RATE", default_value = "0", value_parser = rate)]
    pub error_rate: f64,
    /// Status of the injected errors
    #[arg(long, value_name = "STATUS", default_value_t = 503)]
    pub error_status: u16,
    /// Share of requests answered 429 with Retry-After
    #[arg(long, value_name = "RATE", default_value = "0", value_parser = rate)]
    pub throttle_rate: f64,
    /// Retry-After seconds of the 429 answers
    #[arg(long, value_name = "SECONDS", default_value_t = 1)]
    pub retry_after: u32,
    /// Share of connections reset instead of answered
    #[arg(long, value_name = "RATE", default_value = "0", value_parser = rate)]
    pub reset_rate: f64,
    /// Share of requests left unanswered for --hang-for
    #[arg(long, value_name = "RATE", default_value = "0", value_parser = rate)]
    pub hang_rate: f64,
    /// How long a hung request hangs
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = duration)]
    pub hang_for: Duration,
    /// Seed of the fault dice
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Largest accepted body in bytes (larger: 413, as Pyroscope)
    #[arg(long, value_name = "BYTES", default_value_t = integrity::DEFAULT_BODY_LIMIT)]
    pub body_limit: usize,
    /// Most connections served at once
    #[arg(long, value_name = "N", default_value_t = integrity::DEFAULT_MAX_CONNECTIONS)]
    pub max_connections: usize,
}

/// `--mode` of `loadtest gen`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// Every connection sends its next upload when the last is answered
    Closed,
    /// A constant --rate; latency is measured from the intended send time
    Open,
    /// --instances uploads every --period on wall-clock boundaries, spread over --spread
    Burst,
}

/// Flags of `loadtest gen`.
#[derive(Debug, Clone, PartialEq, clap::Args)]
pub struct GenArgs {
    /// Where to send (loopback only)
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:9999", value_parser = loopback)]
    pub target: SocketAddr,
    /// Load shape
    #[arg(long, value_name = "MODE", default_value = "closed")]
    pub mode: Mode,
    /// Keep-alive connections
    #[arg(long, value_name = "N", default_value_t = 32)]
    pub connections: usize,
    /// Uploads per second, with --mode=open [default: 500]
    #[arg(long, value_name = "PER_SECOND", value_parser = positive_rate)]
    pub rate: Option<f64>,
    /// Burst period, with --mode=burst [default: 10s]
    #[arg(long, value_name = "DURATION", value_parser = duration)]
    pub period: Option<Duration>,
    /// Uploads per burst, with --mode=burst [default: 200]
    #[arg(long, value_name = "N")]
    pub instances: Option<usize>,
    /// How far a burst spreads, with --mode=burst [default: 1s]
    #[arg(long, value_name = "DURATION", value_parser = duration)]
    pub spread: Option<Duration>,
    /// How long to send
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = duration)]
    pub duration: Duration,
    /// Stop after this many uploads [default: no limit]
    #[arg(long, value_name = "N", default_value_t = u64::MAX, hide_default_value = true)]
    pub max_uploads: u64,
    /// Upload shapes
    #[arg(long, value_name = "MIX", default_value = "go")]
    pub mix: Mix,
    /// Distinct label sets
    #[arg(long, value_name = "N", default_value_t = 500)]
    pub label_sets: usize,
    /// Seed of the bodies and labels
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Timeout per upload
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = duration)]
    pub timeout: Duration,
    /// Loopback sinks to check every accepted upload against (integrity check)
    #[arg(long, value_name = "ADDR,ADDR", value_delimiter = ',', action = clap::ArgAction::Set, value_parser = loopback)]
    pub sinks: Vec<SocketAddr>,
    /// pyrogate's admin listener, to count its drops in the integrity check
    #[arg(long, value_name = "ADDR", value_parser = loopback)]
    pub gateway_admin: Option<SocketAddr>,
    /// Also write the result as JSON to this file
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
}

/// Flags of `loadtest replay`.
#[derive(Debug, Clone, PartialEq, clap::Args)]
pub struct ReplayArgs {
    /// A pyrogate file:// capture directory (capture-*.http)
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
    /// Where to send (loopback only)
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:9999", value_parser = loopback)]
    pub target: SocketAddr,
    /// Replay this many times faster than captured
    #[arg(long, value_name = "FACTOR", default_value_t = 1.0)]
    pub speedup: f64,
    /// Keep-alive connections
    #[arg(long, value_name = "N", default_value_t = 32)]
    pub connections: usize,
    /// Stop after this long
    #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = duration)]
    pub max_duration: Duration,
}

/// Flags of `loadtest compare`.
#[derive(Debug, Clone, PartialEq, clap::Args)]
pub struct CompareArgs {
    /// Alternating rounds per system
    #[arg(long, value_name = "N", default_value_t = 2)]
    pub rounds: usize,
    /// Length of one round
    #[arg(long, value_name = "DURATION", default_value = "6s", value_parser = duration)]
    pub duration: Duration,
    /// Keep-alive connections of the generator
    #[arg(long, value_name = "N", default_value_t = 32)]
    pub connections: usize,
    /// Upload shapes
    #[arg(long, value_name = "MIX", default_value = "go")]
    pub mix: Mix,
    /// Core threads of pyrogate and worker processes of nginx: a number, or `default` for
    /// pyrogate's own default (every core) against nginx with one worker per CPU
    #[arg(long, value_name = "N|default", default_value = "1", value_parser = cores)]
    pub cores: Cores,
    /// Pin the gateway (pyrogate, nginx) to the first CPUs it uses and the generator and sinks
    /// to the others with taskset; where no CPU is left over the report says "not pinned"
    #[arg(long)]
    pub pin: bool,
    /// Fan-outs pyrogate runs at (1..16)
    #[arg(long, value_name = "N,N", value_delimiter = ',', action = clap::ArgAction::Set, default_value = "1,2,4", value_parser = fanout)]
    pub fanouts: Vec<usize>,
    /// Fan-out of the nginx mirror
    #[arg(long, value_name = "N", default_value_t = 2)]
    pub nginx_fanout: usize,
    /// The pyrogate binary [default: $PYROGATE_BIN, else target/release/pyrogate, built if missing]
    #[arg(long, value_name = "PATH")]
    pub pyrogate: Option<PathBuf>,
    /// The nginx binary [default: found on PATH]
    #[arg(long, value_name = "PATH")]
    pub nginx: Option<PathBuf>,
    /// Skip nginx
    #[arg(long, conflicts_with = "nginx")]
    pub no_nginx: bool,
    /// Also run pyrogate behind a five-rule pyroscope.relabel (replace, labeldrop, drop
    /// matching nothing, hashmod, lowercase) at the headline fan-out (--nginx-fanout if in
    /// --fanouts, else the first) and report its CPU per upload as a ratio to plain pyrogate
    /// at that fan-out, from the same rounds
    #[arg(long)]
    pub relabel: bool,
    /// Distinct label sets
    #[arg(long, value_name = "N", default_value_t = 500)]
    pub label_sets: usize,
    /// Seed of the bodies and labels
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Do not build pyrogate when the binary is missing; fail instead
    #[arg(long)]
    pub no_build: bool,
    /// Where the JSON results and the plot go
    #[arg(long, value_name = "DIR", default_value = "target/loadtest")]
    pub out: PathBuf,
    /// No progress lines
    #[arg(long)]
    pub quiet: bool,
}

/// `--acknowledge` of `loadtest soak`: when pyrogate answers an upload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Acknowledge {
    /// Once it is queued for every destination
    Enqueued,
    /// Once every destination has it
    Delivered,
}

impl Acknowledge {
    pub fn name(self) -> &'static str {
        match self {
            Acknowledge::Enqueued => "enqueued",
            Acknowledge::Delivered => "delivered",
        }
    }
}

/// Flags of `loadtest soak`.
#[derive(Debug, Clone, PartialEq, clap::Args)]
pub struct SoakArgs {
    /// Length of the measured run
    #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = duration)]
    pub duration: Duration,
    /// Load before the measured run
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = duration)]
    pub warmup: Duration,
    /// Uploads per second (open loop)
    #[arg(long, value_name = "PER_SECOND", default_value = "40", value_parser = positive_rate)]
    pub rate: f64,
    /// Keep-alive connections of the generator
    #[arg(long, value_name = "N", default_value_t = 128)]
    pub connections: usize,
    /// Upload shapes
    #[arg(long, value_name = "MIX", default_value = "all")]
    pub mix: Mix,
    /// Distinct label sets
    #[arg(long, value_name = "N", default_value_t = 500)]
    pub label_sets: usize,
    /// Seed of the bodies, labels and faults
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// When pyrogate answers an upload
    #[arg(long, value_name = "WHEN", default_value = "enqueued")]
    pub acknowledge: Acknowledge,
    /// Core threads of pyrogate [default: pyrogate's]
    #[arg(long, value_name = "N")]
    pub cores: Option<usize>,
    /// The pyrogate binary [default: $PYROGATE_BIN, else target/release/pyrogate]
    #[arg(long, value_name = "PATH")]
    pub pyrogate: Option<PathBuf>,
    /// Where the results, samples and plot go
    #[arg(long, value_name = "DIR", default_value = "target/loadtest")]
    pub out: PathBuf,
    /// Longest wait for the queues to drain at the end
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = duration)]
    pub drain_max: Duration,
    /// Length of the flaky sink's outage, centred in the load [default: 10% of --duration]
    #[arg(long, value_name = "DURATION", value_parser = duration)]
    pub outage: Option<Duration>,
    /// Share of the flaky sink's connections reset
    #[arg(long, value_name = "RATE", default_value = "0.02", value_parser = rate)]
    pub reset_rate: f64,
    /// Share of the flaky sink's answers that are 503
    #[arg(long, value_name = "RATE", default_value = "0.03", value_parser = rate)]
    pub error_rate: f64,
    /// Timeout per upload
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = duration)]
    pub timeout: Duration,
    /// No progress lines
    #[arg(long)]
    pub quiet: bool,
}

/// Flags of `loadtest outage`.
#[derive(Debug, Clone, PartialEq, clap::Args)]
pub struct OutageArgs {
    /// Length of the load
    #[arg(long, value_name = "DURATION", default_value = "150s", value_parser = duration)]
    pub duration: Duration,
    /// When the second destination goes down, from the start of the load
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = duration)]
    pub outage_at: Duration,
    /// How long it stays down
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = duration)]
    pub outage: Duration,
    /// Uploads per second (open loop)
    #[arg(long, value_name = "PER_SECOND", default_value = "200", value_parser = positive_rate)]
    pub rate: f64,
    /// Keep-alive connections of the generator
    #[arg(long, value_name = "N", default_value_t = 64)]
    pub connections: usize,
    /// Upload shapes
    #[arg(long, value_name = "MIX", default_value = "go")]
    pub mix: Mix,
    /// Distinct label sets
    #[arg(long, value_name = "N", default_value_t = 500)]
    pub label_sets: usize,
    /// Seed of the bodies and labels
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Core threads of pyrogate [default: pyrogate's]
    #[arg(long, value_name = "N")]
    pub cores: Option<usize>,
    /// The pyrogate binary [default: $PYROGATE_BIN, else target/release/pyrogate]
    #[arg(long, value_name = "PATH")]
    pub pyrogate: Option<PathBuf>,
    /// Where the results, plot and the run's spool go
    #[arg(long, value_name = "DIR", default_value = "target/loadtest")]
    pub out: PathBuf,
    /// Longest wait for the spool to empty at the end
    #[arg(long, value_name = "DURATION", default_value = "2m", value_parser = duration)]
    pub drain_max: Duration,
    /// MiB dd writes to measure the disk
    #[arg(long, value_name = "MIB", default_value_t = 256)]
    pub dd_mib: u64,
    /// Timeout per upload
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = duration)]
    pub timeout: Duration,
    /// No progress lines
    #[arg(long)]
    pub quiet: bool,
}

/// Flags of `loadtest idle`.
#[derive(Debug, Clone, PartialEq, clap::Args)]
pub struct IdleArgs {
    /// Keep-alive connections, each idle after one upload
    #[arg(long, value_name = "N", default_value_t = 4000)]
    pub connections: usize,
    /// Core threads of pyrogate and workers of nginx [default: every core]
    #[arg(long, value_name = "N")]
    pub cores: Option<usize>,
    /// Wait before each memory sample
    #[arg(long, value_name = "DURATION", default_value = "3s", value_parser = duration)]
    pub settle: Duration,
    /// The pyrogate binary [default: $PYROGATE_BIN, else target/release/pyrogate]
    #[arg(long, value_name = "PATH")]
    pub pyrogate: Option<PathBuf>,
    /// The nginx binary [default: nginx on PATH]
    #[arg(long, value_name = "PATH")]
    pub nginx: Option<PathBuf>,
    /// Do not run nginx
    #[arg(long)]
    pub no_nginx: bool,
    /// Where the results go
    #[arg(long, value_name = "DIR", default_value = "target/loadtest")]
    pub out: PathBuf,
}

/// Flags of `loadtest slow`.
#[derive(Debug, Clone, PartialEq, clap::Args)]
pub struct SlowArgs {
    /// Slow connections per attack
    #[arg(long, value_name = "N", default_value_t = 200)]
    pub attackers: usize,
    /// Connections above --conn-limit in the flood
    #[arg(long, value_name = "N", default_value_t = 300)]
    pub flood_extra: usize,
    /// pyrogate's conn_limit
    #[arg(long, value_name = "N", default_value_t = 256)]
    pub conn_limit: usize,
    /// pyrogate's read timeout
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = duration)]
    pub read_timeout: Duration,
    /// pyrogate's write timeout
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = duration)]
    pub write_timeout: Duration,
    /// pyrogate's idle (keep-alive) timeout
    #[arg(long, value_name = "DURATION", default_value = "15s", value_parser = duration)]
    pub idle_timeout: Duration,
    /// Length of one phase of the normal client's load
    #[arg(long, value_name = "DURATION", default_value = "20s", value_parser = duration)]
    pub duration: Duration,
    /// The normal client's uploads per second
    #[arg(long, value_name = "PER_SECOND", default_value = "50", value_parser = positive_rate)]
    pub rate: f64,
    /// The normal client's keep-alive connections
    #[arg(long, value_name = "N", default_value_t = 16)]
    pub connections: usize,
    /// Upload shapes
    #[arg(long, value_name = "MIX", default_value = "go")]
    pub mix: Mix,
    /// Core threads of pyrogate [default: pyrogate's]
    #[arg(long, value_name = "N")]
    pub cores: Option<usize>,
    /// Phases, in order: none, slowloris, slow-body, slow-reader, idle, flood
    /// [default: none,slowloris,slow-body,slow-reader,idle,flood,none]
    #[arg(long, value_name = "A,B", value_delimiter = ',', action = clap::ArgAction::Set, value_parser = attack)]
    pub attacks: Vec<Attack>,
    /// The pyrogate binary [default: $PYROGATE_BIN, else target/release/pyrogate]
    #[arg(long, value_name = "PATH")]
    pub pyrogate: Option<PathBuf>,
    /// Where the results go
    #[arg(long, value_name = "DIR", default_value = "target/loadtest")]
    pub out: PathBuf,
    /// No progress lines
    #[arg(long)]
    pub quiet: bool,
}

#[derive(Debug, Parser)]
#[command(
    name = "loadtest",
    version,
    // A flag given twice: the last one wins (a list flag too: `--fanouts=1,2 --fanouts=4` is 4).
    args_override_self = true,
    about = "pyrogate's benchmark harness: a Pyroscope stand-in sink, a load generator, capture \
             replay, and side-by-side runs (compare, soak, slow). Everything it touches is on \
             127.0.0.1.",
    arg_required_else_help = true,
    after_help = "Run `loadtest <COMMAND> --help` for the flags of a command."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

impl ValueEnum for Mix {
    fn value_variants<'a>() -> &'a [Self] {
        &Mix::ALL
    }

    fn to_possible_value(&self) -> Option<PossibleValue> {
        Some(match self {
            Mix::Go => PossibleValue::new("go").help("Go SDK multipart uploads, 2-64 KB"),
            Mix::All => PossibleValue::new("all").help("every SDK shape, 2 KB to 4 MB"),
            Mix::Jfr => PossibleValue::new("jfr").help("Java agent JFR multipart, ~200 KB"),
            Mix::PushPython => PossibleValue::new("push-python")
                .help("Python SDK Push: a ~61 KB pprof, the request gzip'd to ~18 KB"),
            Mix::PushDotnet => PossibleValue::new("push-dotnet")
                .help(".NET SDK Push: uncompressed, a 54-260 KB gzip'd pprof"),
        })
    }
}

/// Parses `args` (without the program name). `Err` carries clap's rendered message and exit
/// status: 0 for `--help`/`-h`/`--version` (stdout), 2 for a usage error (stderr, with a
/// suggestion where one is close). No arguments at all prints the help and exits 2.
pub fn parse(args: &[String]) -> Result<Command, clap::Error> {
    let argv = std::iter::once("loadtest").chain(args.iter().map(String::as_str));
    let command = Cli::try_parse_from(argv)?.command;
    if let Command::Gen(g) = &command {
        let only = |given: bool, flag: &str, mode: &str| {
            if given {
                let mut cli = Cli::command();
                cli.build();
                let gen_command = cli.find_subcommand_mut("gen").expect("gen is a subcommand");
                Err(gen_command.error(
                    ErrorKind::ArgumentConflict,
                    format!("--{flag} applies only to --mode={mode}"),
                ))
            } else {
                Ok(())
            }
        };
        only(g.rate.is_some() && g.mode != Mode::Open, "rate", "open")?;
        for (given, flag) in [
            (g.period.is_some(), "period"),
            (g.instances.is_some(), "instances"),
            (g.spread.is_some(), "spread"),
        ] {
            only(given && g.mode != Mode::Burst, flag, "burst")?;
        }
    }
    Ok(command)
}

/// The completion script for `shell`.
pub fn completions(shell: Shell) -> String {
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "loadtest", &mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// `250us`, `500ms`, `10s`, `2m`, `1.5s`; a bare number is seconds.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num.parse().ok()?;
    let secs = match unit {
        "us" | "µs" => n / 1e6,
        "ms" => n / 1e3,
        "" | "s" => n,
        "m" => n * 60.0,
        _ => return None,
    };
    (secs.is_finite() && (0.0..=86_400.0).contains(&secs)).then(|| Duration::from_secs_f64(secs))
}

fn duration(s: &str) -> Result<Duration, String> {
    parse_duration(s).ok_or_else(|| "expected a duration such as 500ms, 10s or 2m".into())
}

fn latency(s: &str) -> Result<Latency, String> {
    integrity::parse_latency(s).ok_or_else(|| "expected 0, 5ms, 2ms..20ms or exp:10ms".into())
}

/// A share in `[0, 1]`.
fn rate(s: &str) -> Result<f64, String> {
    s.parse::<f64>()
        .ok()
        .filter(|r| (0.0..=1.0).contains(r))
        .ok_or_else(|| "expected a rate between 0 and 1".into())
}

/// Events per second, above zero.
fn positive_rate(s: &str) -> Result<f64, String> {
    s.parse::<f64>()
        .ok()
        .filter(|r| *r > 0.0 && r.is_finite())
        .ok_or_else(|| "expected a positive rate".into())
}

/// Everything the harness touches is on 127.0.0.1 (or ::1).
fn loopback(s: &str) -> Result<SocketAddr, String> {
    match s.trim().parse::<SocketAddr>() {
        Ok(a) if a.ip().is_loopback() => Ok(a),
        _ => Err("expected a loopback address such as 127.0.0.1:9999".into()),
    }
}

fn fanout(s: &str) -> Result<usize, String> {
    s.trim()
        .parse::<usize>()
        .ok()
        .filter(|f| (1..=16).contains(f))
        .ok_or_else(|| "expected comma-separated fan-outs 1..16".into())
}

fn cores(s: &str) -> Result<Cores, String> {
    Cores::parse(s).ok_or_else(|| "expected a number of cores (1 or more) or `default`".into())
}

fn attack(s: &str) -> Result<Attack, String> {
    Attack::parse(s.trim()).ok_or_else(|| {
        "expected comma-separated none, slowloris, slow-body, slow-reader, idle, flood".into()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    fn ok(s: &str) -> Command {
        parse(&args(s)).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn err(s: &str) -> clap::Error {
        match parse(&args(s)) {
            Ok(c) => panic!("{s}: parsed as {c:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn the_parser_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn defaults_are_the_documented_ones() {
        let Command::Compare(c) = ok("compare") else {
            panic!()
        };
        assert_eq!(
            c,
            CompareArgs {
                rounds: 2,
                duration: Duration::from_secs(6),
                connections: 32,
                mix: Mix::Go,
                cores: Cores::Count(1),
                pin: false,
                fanouts: vec![1, 2, 4],
                nginx_fanout: 2,
                pyrogate: None,
                nginx: None,
                no_nginx: false,
                relabel: false,
                label_sets: 500,
                seed: 1,
                no_build: false,
                out: "target/loadtest".into(),
                quiet: false,
            }
        );
        let Command::Sink(s) = ok("sink") else {
            panic!()
        };
        assert_eq!(s.listen, "127.0.0.1:4040".parse().unwrap());
        assert_eq!(s.duration, Duration::from_secs(600));
        assert_eq!((s.error_status, s.retry_after, s.seed), (503, 1, 1));
        assert_eq!(s.hang_for, Duration::from_secs(30));
        assert_eq!(s.latency, Latency::None);
        assert_eq!(s.body_limit, integrity::DEFAULT_BODY_LIMIT);
        let Command::Gen(g) = ok("gen") else { panic!() };
        assert_eq!(
            (g.mode, g.connections, g.duration, g.max_uploads, g.mix),
            (Mode::Closed, 32, Duration::from_secs(10), u64::MAX, Mix::Go)
        );
        assert!(g.sinks.is_empty() && g.gateway_admin.is_none() && g.json.is_none());
        let Command::Soak(s) = ok("soak") else {
            panic!()
        };
        assert_eq!(
            (s.rate, s.connections, s.mix, s.acknowledge, s.cores),
            (40.0, 128, Mix::All, Acknowledge::Enqueued, None)
        );
        assert_eq!((s.reset_rate, s.error_rate), (0.02, 0.03));
        assert_eq!(
            (s.duration, s.warmup, s.drain_max),
            (
                Duration::from_secs(600),
                Duration::from_secs(60),
                Duration::from_secs(300)
            )
        );
        let Command::Slow(s) = ok("slow") else {
            panic!()
        };
        assert_eq!(
            (
                s.attackers,
                s.flood_extra,
                s.conn_limit,
                s.rate,
                s.connections
            ),
            (200, 300, 256, 50.0, 16)
        );
        assert!(s.attacks.is_empty(), "empty means Attack::ALL");
        assert_eq!(s.idle_timeout, Duration::from_secs(15));
    }

    #[test]
    fn both_flag_forms_and_lists() {
        let a = ok("compare --rounds=5 --duration 8s --fanouts 2 --no-nginx --relabel --no-build");
        let b = ok("compare --rounds 5 --duration=8s --fanouts=2 --no-nginx --relabel --no-build");
        let (Command::Compare(a), Command::Compare(b)) = (a, b) else {
            panic!()
        };
        assert_eq!(a, b);
        assert_eq!((a.rounds, a.fanouts.as_slice()), (5, &[2][..]));
        let Command::Compare(c) = ok("compare --fanouts=1,2 --rounds=1 --fanouts=4 --rounds=3")
        else {
            panic!()
        };
        assert_eq!((c.rounds, c.fanouts.as_slice()), (3, &[4][..]), "last wins");
        let Command::Gen(g) = ok("gen --sinks=127.0.0.1:1,127.0.0.1:2 --mode=open --rate 5") else {
            panic!()
        };
        assert_eq!(g.sinks.len(), 2);
        assert_eq!(g.rate, Some(5.0));
        let Command::Slow(s) = ok("slow --attacks=none,flood") else {
            panic!()
        };
        assert_eq!(s.attacks, [Attack::None, Attack::Flood]);
        let Command::Replay(r) = ok("replay dir --speedup=10") else {
            panic!()
        };
        assert_eq!((r.dir, r.speedup), ("dir".into(), 10.0));
    }

    #[test]
    fn compare_takes_a_core_count_or_default_pinning_and_every_mix() {
        let Command::Compare(c) = ok("compare --cores=default --pin --mix=push-python") else {
            panic!()
        };
        assert_eq!(
            (c.cores, c.pin, c.mix),
            (Cores::Default, true, Mix::PushPython)
        );
        let Command::Compare(c) = ok("compare --cores 4 --mix push-dotnet") else {
            panic!()
        };
        assert_eq!(
            (c.cores, c.pin, c.mix),
            (Cores::Count(4), false, Mix::PushDotnet)
        );
        let Command::Compare(c) = ok("compare --mix=jfr") else {
            panic!()
        };
        assert_eq!((c.cores, c.mix), (Cores::Count(1), Mix::Jfr));
        for bad in ["--cores=0", "--cores=all", "--cores=-1", "--cores="] {
            let e = err(&format!("compare {bad}"));
            assert_eq!(e.kind(), ErrorKind::ValueValidation, "{bad}: {e}");
            assert!(e.to_string().contains("or `default`"), "{bad}: {e}");
        }
        assert_eq!(err("compare --mix=python").kind(), ErrorKind::InvalidValue);
        assert_eq!(err("compare --pin=yes").kind(), ErrorKind::TooManyValues);
    }

    #[test]
    fn mistakes_are_usage_errors() {
        for (line, kind) in [
            ("compare --bogus", ErrorKind::UnknownArgument),
            ("compare -x", ErrorKind::UnknownArgument),
            ("compare 3", ErrorKind::UnknownArgument),
            ("compare --fanouts=1,17", ErrorKind::ValueValidation),
            ("compare --no-nginx --nginx=/x", ErrorKind::ArgumentConflict),
            ("gen --target=10.0.0.1:80", ErrorKind::ValueValidation),
            ("gen --rate=5", ErrorKind::ArgumentConflict),
            ("gen --mode=open --spread=1s", ErrorKind::ArgumentConflict),
            ("gen --mode=fast", ErrorKind::InvalidValue),
            ("gen --mix=java", ErrorKind::InvalidValue),
            ("sink --error-rate=2", ErrorKind::ValueValidation),
            ("sink --latency=5h", ErrorKind::ValueValidation),
            ("sink --duration", ErrorKind::InvalidValue),
            ("soak --acknowledge=never", ErrorKind::InvalidValue),
            ("soak --rate=0", ErrorKind::ValueValidation),
            ("slow --attacks=none,ddos", ErrorKind::ValueValidation),
            ("replay", ErrorKind::MissingRequiredArgument),
            ("bench", ErrorKind::InvalidSubcommand),
        ] {
            let e = err(line);
            assert_eq!(e.kind(), kind, "{line}: {e}");
            assert_eq!(e.exit_code(), 2, "{line}");
        }
        let text = err("compare --round=3").to_string();
        assert!(text.contains("--rounds"), "no suggestion: {text}");
        assert!(
            err("gen --rate=5")
                .to_string()
                .contains("--rate applies only to --mode=open")
        );
    }

    #[test]
    fn help_on_every_subcommand_exits_0() {
        // Every subcommand clap knows, so a new one is covered without editing this test
        // (tests/cli.rs names them one by one against the binary).
        let cmd = <Cli as clap::CommandFactory>::command();
        let subs: Vec<&str> = cmd.get_subcommands().map(|c| c.get_name()).collect();
        assert_eq!(subs.len(), 9, "{subs:?}");
        for sub in subs {
            for flag in ["-h", "--help"] {
                let e = err(&format!("{sub} {flag}"));
                assert_eq!(e.kind(), ErrorKind::DisplayHelp, "{sub} {flag}");
                assert_eq!(e.exit_code(), 0, "{sub} {flag}");
            }
            assert_eq!(err(&format!("help {sub}")).kind(), ErrorKind::DisplayHelp);
        }
        assert_eq!(err("--version").kind(), ErrorKind::DisplayVersion);
        let e = err("");
        assert_eq!(e.exit_code(), 2, "no command: help on stderr, exit 2");
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250us"), Some(Duration::from_micros(250)));
        assert_eq!(parse_duration("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2m"), Some(Duration::from_secs(120)));
        assert_eq!(parse_duration("7"), Some(Duration::from_secs(7)));
        assert_eq!(parse_duration("5h"), None);
        assert_eq!(parse_duration("-1s"), None);
    }

    #[test]
    fn completions_name_every_subcommand() {
        for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
            let script = completions(shell);
            for sub in ["sink", "gen", "replay", "compare", "soak", "outage", "slow"] {
                assert!(script.contains(sub), "{shell}: lacks {sub}");
            }
            assert!(script.contains("nginx-fanout"), "{shell}");
        }
    }
}
