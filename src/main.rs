//! The `pyrogate` binary: CLI edge. Parses arguments, loads the config, and hands over to
//! [`pyrogate::gateway::run`]. The only place `anyhow` is used.

use std::process::ExitCode;

use pyrogate::cli::{self, Command};
use pyrogate::config::{self, ProcessEnvironment};
use pyrogate::gateway::{self, RunOptions};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let cmd = match cli::parse(&args) {
        Ok(c) => c,
        // `--help`, `--version` (stdout, exit 0) and usage errors (stderr, exit 2).
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(2));
        }
    };
    match cmd {
        Command::Version => {
            println!("pyrogate {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Command::Completions(shell) => {
            print!("{}", cli::completions(shell));
            ExitCode::SUCCESS
        }
        Command::Validate { config } => {
            if !config.exists() {
                eprintln!("pyrogate: config file {} does not exist", config.display());
                return ExitCode::from(2);
            }
            match config::load_file(&config, &ProcessEnvironment) {
                Ok(loaded) => {
                    if !loaded.warnings.is_empty() {
                        eprint!("{}", loaded.warnings);
                    }
                    ExitCode::SUCCESS
                }
                Err(diags) => {
                    eprint!("{diags}");
                    ExitCode::from(1)
                }
            }
        }
        Command::Fmt { config, write } => {
            let src = match std::fs::read_to_string(&config) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("pyrogate: cannot read {}: {e}", config.display());
                    return ExitCode::from(2);
                }
            };
            match config::format_source(&config.display().to_string(), &src) {
                Ok(out) if write => match std::fs::write(&config, out) {
                    Ok(()) => ExitCode::SUCCESS,
                    Err(e) => {
                        eprintln!("pyrogate: cannot write {}: {e}", config.display());
                        ExitCode::from(1)
                    }
                },
                Ok(out) => {
                    print!("{out}");
                    ExitCode::SUCCESS
                }
                Err(diags) => {
                    eprint!("{diags}");
                    ExitCode::from(1)
                }
            }
        }
        Command::Run(args) => match run(args) {
            Ok(code) => code,
            Err(e) => {
                eprintln!("pyrogate: {e:#}");
                ExitCode::from(1)
            }
        },
    }
}

fn run(args: cli::RunArgs) -> anyhow::Result<ExitCode> {
    if !args.config.exists() {
        eprintln!(
            "pyrogate: config file {} does not exist",
            args.config.display()
        );
        return Ok(ExitCode::from(2));
    }
    let loaded = match config::load_file(&args.config, &ProcessEnvironment) {
        Ok(l) => l,
        Err(diags) => {
            eprint!("{diags}");
            return Ok(ExitCode::from(1));
        }
    };
    if !loaded.warnings.is_empty() {
        eprint!("{}", loaded.warnings);
    }
    pyrogate::logging::init(&loaded.config.logging);
    let cores = args.cores.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    });
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        config = %args.config.display(),
        stability_level = %args.stability_level,
        "starting pyrogate"
    );
    for line in pyrogate::pipeline_summary(&loaded.config) {
        tracing::info!(pipeline = %line, "pipeline");
    }
    let (summary, config) = gateway::run(
        loaded.config,
        RunOptions {
            cores,
            driver: args.driver,
            admin_addr: args.admin_addr,
            config_path: args.config.clone(),
        },
    )?;
    let endpoints = pyrogate::metrics::destination_names(&config);
    // The account of every destination: accepted = delivered + dropped (by reason) + in flight
    // + spooled.
    for (d, endpoint) in summary.dests.iter().zip(&endpoints) {
        let [
            queue_full,
            retries_exhausted,
            rejected,
            shutdown,
            reload,
            expired,
            spool_full,
        ] = d.dropped;
        let spooled = d.spool.as_ref().map_or(0, |s| s.profiles);
        tracing::info!(
            endpoint = %endpoint,
            accepted = d.accepted_profiles,
            delivered = d.sent_profiles,
            dropped = d.dropped_profiles,
            in_flight = d.pending_profiles,
            queue_full,
            retries_exhausted,
            rejected,
            shutdown,
            reload,
            expired,
            spool_full,
            spooled,
            "destination account"
        );
    }
    let (delivered, dropped) = summary.totals();
    tracing::info!(delivered, dropped, "shutdown complete");
    Ok(ExitCode::SUCCESS)
}
