//! Command-line parsing, shaped like `alloy run` so scripts and unit files carry over.
//!
//! Owns: turning `argv` into a [`Command`] (pure; no I/O) with `clap`'s derive API, the help
//! and version texts, and the shell-completion scripts (rendered into a `String`). Does not
//! own: running anything, or printing (`main.rs` does both). Cold path.
//!
//! Alloy's flags are cobra/pflag flags (`alloy run --server.http.listen-addr=… CONFIG`, see
//! `internal/alloycli/cmd_run.go` in grafana/alloy): long names with dots, the value after `=`
//! or as the next argument. clap accepts both forms for the same long names, so the unit
//! files, container commands and scripts written for Alloy run unchanged.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::builder::PossibleValue;
use clap::{CommandFactory, Parser, Subcommand, ValueEnum};
pub use clap_complete::Shell;

use crate::io::Driver;

/// Default admin listener, as Alloy's `--server.http.listen-addr`.
pub const DEFAULT_ADMIN_ADDR: &str = "127.0.0.1:12345";

/// Alloy's `--stability.level` values (`internal/featuregate`).
pub const STABILITY_LEVELS: [&str; 3] = ["generally-available", "public-preview", "experimental"];

/// What the user asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Run(RunArgs),
    Validate {
        config: PathBuf,
    },
    Fmt {
        config: PathBuf,
        write: bool,
    },
    /// Print the completion script for this shell.
    Completions(Shell),
    /// `pyrogate version` (kept beside `--version`, which clap answers itself).
    Version,
}

/// Arguments of `pyrogate run`.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct RunArgs {
    /// The config file (Alloy syntax: pyroscope.receive_http, pyroscope.relabel,
    /// pyroscope.write, logging)
    #[arg(value_name = "CONFIG_PATH")]
    pub config: PathBuf,
    /// Accepted for Alloy compatibility. Every pyrogate component is available at every
    /// level, so the value changes nothing; it is logged at start.
    #[arg(
        long = "stability.level",
        value_name = "LEVEL",
        default_value = "generally-available",
        value_parser = STABILITY_LEVELS
    )]
    pub stability_level: String,
    /// Admin listener for /metrics, /-/ready, /-/healthy and /-/reload (as in Alloy)
    #[arg(
        long = "server.http.listen-addr",
        value_name = "HOST:PORT",
        default_value = DEFAULT_ADMIN_ADDR,
        value_parser = parse_admin_addr
    )]
    pub admin_addr: SocketAddr,
    /// Accepted for Alloy compatibility (its unit files and images pass it); pyrogate keeps no
    /// state on disk, so the directory is not used
    #[arg(long = "storage.path", value_name = "DIR")]
    pub storage_path: Option<PathBuf>,
    /// Accepted for Alloy compatibility; pyrogate sends no usage reports
    #[arg(long = "disable-reporting")]
    pub disable_reporting: bool,
    /// Core threads to run [default: every available core]
    #[arg(long, value_name = "N", value_parser = parse_cores)]
    pub cores: Option<usize>,
    /// I/O driver
    #[arg(long, value_name = "DRIVER", default_value = "auto")]
    pub driver: Driver,
}

/// The parser's shape; [`parse`] turns it into a [`Command`].
#[derive(Debug, Parser)]
#[command(
    name = "pyrogate",
    version,
    // A flag given twice: the last one wins, as with Alloy's pflag flags (and the harnesses
    // that append a flag to a command line that already has it).
    args_override_self = true,
    about = "A thread-per-core gateway for Pyroscope profile uploads (a drop-in for Grafana \
             Alloy's pyroscope.receive_http + pyroscope.write)",
    after_help = "Run `pyrogate <COMMAND> --help` for the flags of a command."
)]
struct Cli {
    #[command(subcommand)]
    command: Sub,
}

#[derive(Debug, Subcommand)]
enum Sub {
    /// Load and validate the config, then serve until SIGINT/SIGTERM, then drain (SIGHUP: reload)
    Run(RunArgs),
    /// Print every diagnostic of a config; exit 1 on any error, 0 when valid
    Validate {
        /// The config file to check
        #[arg(value_name = "CONFIG_PATH")]
        config: PathBuf,
    },
    /// Print the config in canonical Alloy formatting
    Fmt {
        /// Rewrite the file in place instead of printing it
        #[arg(short, long)]
        write: bool,
        /// The config file to format
        #[arg(value_name = "CONFIG_PATH")]
        config: PathBuf,
    },
    /// Print a shell completion script (e.g. `pyrogate completions bash > /etc/bash_completion.d/pyrogate`)
    Completions {
        /// bash, elvish, fish, powershell or zsh
        shell: Shell,
    },
    /// Print the version
    #[command(hide = true)]
    Version,
}

impl ValueEnum for Driver {
    fn value_variants<'a>() -> &'a [Self] {
        &[Driver::Auto, Driver::Uring, Driver::Legacy]
    }

    fn to_possible_value(&self) -> Option<PossibleValue> {
        Some(match self {
            Driver::Auto => {
                PossibleValue::new("auto").help("io_uring where the kernel allows it, else epoll")
            }
            Driver::Uring => PossibleValue::new("uring")
                .alias("io_uring")
                .help("io_uring"),
            Driver::Legacy => PossibleValue::new("legacy")
                .alias("epoll")
                .help("epoll (the fallback)"),
        })
    }
}

fn parse_admin_addr(s: &str) -> Result<SocketAddr, String> {
    s.parse()
        .map_err(|_| "expected HOST:PORT with an IP host, e.g. 127.0.0.1:12345".to_string())
}

fn parse_cores(s: &str) -> Result<usize, String> {
    s.parse()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| "expected a positive integer".to_string())
}

/// Parses `args` (without the program name). `Err` carries clap's rendered message and exit
/// status: 0 for `--help`/`-h`/`--version` (the text goes to stdout), 2 for a usage error
/// (to stderr, with a suggestion where one is close). No arguments at all is `--help`.
pub fn parse(args: &[String]) -> Result<Command, clap::Error> {
    let argv = std::iter::once("pyrogate").chain(args.iter().map(String::as_str));
    let cli = if args.is_empty() {
        Cli::try_parse_from(["pyrogate", "--help"])?
    } else {
        Cli::try_parse_from(argv)?
    };
    Ok(match cli.command {
        Sub::Run(run) => Command::Run(run),
        Sub::Validate { config } => Command::Validate { config },
        Sub::Fmt { write, config } => Command::Fmt { config, write },
        Sub::Completions { shell } => Command::Completions(shell),
        Sub::Version => Command::Version,
    })
}

/// The completion script for `shell`.
pub fn completions(shell: Shell) -> String {
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "pyrogate", &mut out);
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use clap::error::ErrorKind;

    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    fn run_args(config: &str) -> RunArgs {
        RunArgs {
            config: config.into(),
            stability_level: "generally-available".into(),
            admin_addr: DEFAULT_ADMIN_ADDR.parse().unwrap(),
            storage_path: None,
            disable_reporting: false,
            cores: None,
            driver: Driver::Auto,
        }
    }

    #[test]
    fn the_parser_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn run_defaults_are_alloys() {
        assert_eq!(
            parse(&args("run cfg.alloy")).unwrap(),
            Command::Run(run_args("cfg.alloy"))
        );
    }

    #[test]
    fn run_accepts_alloy_flags_with_equals_and_with_a_space() {
        let want = Command::Run(RunArgs {
            stability_level: "public-preview".into(),
            admin_addr: "0.0.0.0:9090".parse().unwrap(),
            storage_path: Some("/var/lib/alloy/data".into()),
            disable_reporting: true,
            cores: Some(2),
            driver: Driver::Legacy,
            ..run_args("cfg.alloy")
        });
        let equals = "run --stability.level=public-preview --server.http.listen-addr=0.0.0.0:9090 \
                      --storage.path=/var/lib/alloy/data --disable-reporting --cores=2 \
                      --driver=legacy cfg.alloy";
        let space = "run --stability.level public-preview --server.http.listen-addr 0.0.0.0:9090 \
                     --storage.path /var/lib/alloy/data --disable-reporting --cores 2 \
                     --driver legacy cfg.alloy";
        let config_first = "run cfg.alloy --stability.level public-preview \
                            --server.http.listen-addr=0.0.0.0:9090 --storage.path \
                            /var/lib/alloy/data --disable-reporting --cores=2 --driver epoll";
        let repeated = "run --cores=1 --driver=auto --server.http.listen-addr=127.0.0.1:0 \
                        --stability.level=experimental cfg.alloy --stability.level public-preview \
                        --server.http.listen-addr=0.0.0.0:9090 --storage.path=/var/lib/alloy/data \
                        --disable-reporting --cores=2 --driver=legacy";
        for line in [equals, space, config_first, repeated] {
            assert_eq!(parse(&args(line)).unwrap(), want, "{line}");
        }
    }

    #[test]
    fn driver_names_and_aliases() {
        for (name, want) in [
            ("auto", Driver::Auto),
            ("uring", Driver::Uring),
            ("io_uring", Driver::Uring),
            ("legacy", Driver::Legacy),
            ("epoll", Driver::Legacy),
        ] {
            let Command::Run(r) = parse(&args(&format!("run --driver={name} c"))).unwrap() else {
                panic!("not run");
            };
            assert_eq!(r.driver, want, "{name}");
        }
    }

    #[test]
    fn bad_values_unknown_flags_and_missing_paths_are_usage_errors() {
        for (line, kind) in [
            ("run --nope cfg", ErrorKind::UnknownArgument),
            ("run --core=2 cfg", ErrorKind::UnknownArgument),
            ("validate --cores=2 c", ErrorKind::UnknownArgument),
            ("run --cores=0 c", ErrorKind::ValueValidation),
            ("run --cores=x c", ErrorKind::ValueValidation),
            (
                "run --server.http.listen-addr=localhost:1 c",
                ErrorKind::ValueValidation,
            ),
            ("run --stability.level=beta c", ErrorKind::InvalidValue),
            ("run --driver=kqueue c", ErrorKind::InvalidValue),
            ("run --cores", ErrorKind::InvalidValue),
            ("validate", ErrorKind::MissingRequiredArgument),
            ("run a b", ErrorKind::UnknownArgument),
            ("serve c", ErrorKind::InvalidSubcommand),
            ("completions tcsh", ErrorKind::InvalidValue),
        ] {
            let e = parse(&args(line)).unwrap_err();
            assert_eq!(e.kind(), kind, "{line}: {e}");
            assert_eq!(e.exit_code(), 2, "{line}");
        }
    }

    #[test]
    fn an_unknown_flag_close_to_a_known_one_gets_a_suggestion() {
        let e = parse(&args("run --server.http.listen-adr=0.0.0.0:1 c")).unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains("unexpected argument '--server.http.listen-adr'")
                && text.contains("--server.http.listen-addr"),
            "{text}"
        );
    }

    #[test]
    fn fmt_write_in_both_spellings() {
        for line in ["fmt --write c", "fmt -w c", "fmt c --write"] {
            assert_eq!(
                parse(&args(line)).unwrap(),
                Command::Fmt {
                    config: "c".into(),
                    write: true
                },
                "{line}"
            );
        }
        assert_eq!(
            parse(&args("fmt c")).unwrap(),
            Command::Fmt {
                config: "c".into(),
                write: false
            }
        );
    }

    #[test]
    fn help_on_every_command_and_version_exit_0() {
        for line in [
            "",
            "-h",
            "--help",
            "help",
            "help run",
            "run -h",
            "run --help",
            "run --cores=2 --help",
            "validate -h",
            "fmt --help",
            "completions -h",
        ] {
            let e = parse(&args(line)).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::DisplayHelp, "{line:?}");
            assert_eq!(e.exit_code(), 0, "{line:?}");
        }
        let e = parse(&args("--version")).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::DisplayVersion);
        assert_eq!(
            e.to_string(),
            format!("pyrogate {}\n", env!("CARGO_PKG_VERSION"))
        );
        assert_eq!(parse(&args("version")).unwrap(), Command::Version);
    }

    #[test]
    fn run_help_explains_the_alloy_flags() {
        let text = parse(&args("run --help")).unwrap_err().to_string();
        for needle in [
            "--stability.level <LEVEL>",
            "generally-available",
            "Every pyrogate component is available at every level",
            "--server.http.listen-addr <HOST:PORT>",
            "[default: 127.0.0.1:12345]",
            "--storage.path <DIR>",
            "--cores <N>",
            "--driver <DRIVER>",
            "io_uring where the kernel allows it",
        ] {
            assert!(
                text.contains(needle),
                "run --help lacks {needle:?}:\n{text}"
            );
        }
    }

    #[test]
    fn completions_name_every_command_and_flag() {
        assert_eq!(
            parse(&args("completions zsh")).unwrap(),
            Command::Completions(Shell::Zsh)
        );
        for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
            let script = completions(shell);
            for needle in [
                "validate",
                "fmt",
                "server.http.listen-addr",
                "stability.level",
            ] {
                assert!(script.contains(needle), "{shell}: lacks {needle}");
            }
        }
    }
}
