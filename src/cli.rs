//! Command-line parsing, shaped like `alloy run` so scripts and unit files carry over.
//!
//! Owns: turning `argv` into a [`Command`] (pure; no I/O) and the `--help` text. Does not own:
//! running anything. Cold path.

use std::net::SocketAddr;
use std::path::PathBuf;

use crate::io::Driver;

/// Default admin listener, as Alloy's `--server.http.listen-addr`.
pub const DEFAULT_ADMIN_ADDR: &str = "127.0.0.1:12345";

/// What the user asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Run(RunArgs),
    Validate { config: PathBuf },
    Fmt { config: PathBuf, write: bool },
    Help,
    Version,
}

/// Arguments of `pyrogate run`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunArgs {
    pub config: PathBuf,
    pub stability_level: String,
    pub admin_addr: SocketAddr,
    /// `None` = every available core.
    pub cores: Option<usize>,
    pub driver: Driver,
}

/// A usage error: one line for stderr; the process exits 2.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

pub const HELP: &str = "\
pyrogate: a thread-per-core gateway for Pyroscope profile uploads (a drop-in for Grafana Alloy's
pyroscope.receive_http + pyroscope.write).

Usage:
  pyrogate run [flags] CONFIG_PATH     load and validate the config, then serve until SIGINT/SIGTERM
  pyrogate validate CONFIG_PATH        print every diagnostic; exit 1 on any error, 0 when valid
  pyrogate fmt [--write] CONFIG_PATH   print the config in canonical Alloy formatting (--write: in place)
  pyrogate --help | --version

Flags of run:
  --server.http.listen-addr=HOST:PORT  admin listener for /metrics, /-/ready, /-/healthy
                                       (default 127.0.0.1:12345, as in Alloy)
  --stability.level=LEVEL              accepted for Alloy compatibility: generally-available,
                                       public-preview or experimental. Every pyrogate component is
                                       available at every level, so the value changes nothing.
  --cores=N                            core threads to run (default: all available cores)
  --driver=auto|uring|legacy           I/O driver: io_uring, the epoll fallback, or auto (io_uring
                                       where the kernel allows it; default)
";

const STABILITY_LEVELS: [&str; 3] = ["generally-available", "public-preview", "experimental"];

/// Parses `args` (without the program name).
pub fn parse(args: &[String]) -> Result<Command, UsageError> {
    let mut it = args.iter().peekable();
    let Some(sub) = it.next() else {
        return Ok(Command::Help);
    };
    match sub.as_str() {
        "-h" | "--help" | "help" => return Ok(Command::Help),
        "-V" | "--version" | "version" => return Ok(Command::Version),
        "run" | "validate" | "fmt" => {}
        other => {
            return Err(UsageError(format!(
                "unknown command {other:?}; expected run, validate or fmt (see --help)"
            )));
        }
    }
    let mut config = None;
    let mut stability = "generally-available".to_string();
    let mut admin: SocketAddr = DEFAULT_ADMIN_ADDR.parse().expect("valid default");
    let mut cores = None;
    let mut driver = Driver::Auto;
    let mut write = false;
    while let Some(arg) = it.next() {
        if arg == "-h" || arg == "--help" {
            return Ok(Command::Help);
        }
        if !arg.starts_with('-') || arg == "-" {
            if config.is_some() {
                return Err(UsageError(format!(
                    "unexpected argument {arg:?}: only one config path is accepted"
                )));
            }
            config = Some(PathBuf::from(arg));
            continue;
        }
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (arg.as_str(), None),
        };
        let is_flag = |n: &str| matches!((sub.as_str(), n), ("fmt", "--write") | ("fmt", "-w"));
        if is_flag(name) {
            write = true;
            continue;
        }
        let known = sub == "run"
            && matches!(
                name,
                "--stability.level" | "--server.http.listen-addr" | "--cores" | "--driver"
            );
        if !known {
            return Err(UsageError(format!(
                "unknown flag {name} for `pyrogate {sub}` (see --help)"
            )));
        }
        let value = match inline {
            Some(v) => v,
            None => it
                .next()
                .cloned()
                .ok_or_else(|| UsageError(format!("flag {name} needs a value")))?,
        };
        match name {
            "--stability.level" => {
                if !STABILITY_LEVELS.contains(&value.as_str()) {
                    return Err(UsageError(format!(
                        "invalid --stability.level {value:?}: expected generally-available, public-preview or experimental"
                    )));
                }
                stability = value;
            }
            "--server.http.listen-addr" => {
                admin = value
                    .parse()
                    .map_err(|_| UsageError(format!("invalid --server.http.listen-addr {value:?}: expected HOST:PORT with an IP host")))?;
            }
            "--cores" => {
                let n: usize = value.parse().ok().filter(|n| *n > 0).ok_or_else(|| {
                    UsageError(format!(
                        "invalid --cores {value:?}: expected a positive integer"
                    ))
                })?;
                cores = Some(n);
            }
            _ => {
                driver = match value.as_str() {
                    "auto" => Driver::Auto,
                    "uring" | "io_uring" => Driver::Uring,
                    "legacy" | "epoll" => Driver::Legacy,
                    _ => {
                        return Err(UsageError(format!(
                            "invalid --driver {value:?}: expected auto, uring or legacy"
                        )));
                    }
                };
            }
        }
    }
    let config = config.ok_or_else(|| {
        UsageError(format!(
            "missing CONFIG_PATH: usage: pyrogate {sub} [flags] CONFIG_PATH"
        ))
    })?;
    Ok(match sub.as_str() {
        "run" => Command::Run(RunArgs {
            config,
            stability_level: stability,
            admin_addr: admin,
            cores,
            driver,
        }),
        "validate" => Command::Validate { config },
        _ => Command::Fmt { config, write },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn run_accepts_alloy_flags_in_both_forms() {
        let c = parse(&args("run --stability.level=public-preview --server.http.listen-addr 0.0.0.0:9090 --cores=2 --driver=legacy cfg.alloy")).unwrap();
        assert_eq!(
            c,
            Command::Run(RunArgs {
                config: "cfg.alloy".into(),
                stability_level: "public-preview".into(),
                admin_addr: "0.0.0.0:9090".parse().unwrap(),
                cores: Some(2),
                driver: Driver::Legacy,
            })
        );
    }

    #[test]
    fn unknown_flags_and_missing_paths_are_usage_errors() {
        assert_eq!(
            parse(&args("run --nope cfg")).unwrap_err().0,
            "unknown flag --nope for `pyrogate run` (see --help)"
        );
        assert_eq!(
            parse(&args("validate")).unwrap_err().0,
            "missing CONFIG_PATH: usage: pyrogate validate [flags] CONFIG_PATH"
        );
        assert!(parse(&args("run --cores=0 c")).is_err());
        assert!(parse(&args("run --stability.level=beta c")).is_err());
        assert!(parse(&args("validate --cores=2 c")).is_err());
    }

    #[test]
    fn fmt_write_and_help_and_version() {
        assert_eq!(
            parse(&args("fmt --write c")).unwrap(),
            Command::Fmt {
                config: "c".into(),
                write: true
            }
        );
        assert_eq!(parse(&args("--version")).unwrap(), Command::Version);
        assert_eq!(parse(&args("run --help")).unwrap(), Command::Help);
        assert_eq!(parse(&[]).unwrap(), Command::Help);
    }
}
