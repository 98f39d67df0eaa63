//! Black-box tests of the `pyrogate` command line (README, "Command line") and its diagnostics.
//!
//! Covers, by running the built binary:
//! - `-h`/`--help` on the program and on every command (`run`, `validate`, `fmt`,
//!   `completions`, and `help COMMAND`): usage on stdout, exit 0, nothing started (a `run -h`
//!   with a valid config returns at once and logs nothing); `run --help` explains
//!   `--stability.level`; `--version`, `-V` and `version` print `pyrogate <CARGO_PKG_VERSION>`;
//! - usage errors (clap's): an unknown flag names the flag and suggests the close one, exit 2,
//!   nothing on stdout; an invalid `--stability.level` lists the accepted levels; a missing
//!   config file (for `run`, `validate` and `fmt`) is exactly one line naming it, exit 2;
//! - Alloy's flag spellings: `run --server.http.listen-addr …`, `--stability.level …` (and
//!   `--storage.path`, `--disable-reporting`, which Alloy's unit files pass) with `=` and with a
//!   space; the admin listener comes up on the address given, under both drivers;
//! - `completions bash|zsh|fish`: a non-empty script; the bash one passes `bash -n`;
//! - `validate`: every `examples/*.alloy` is accepted; two errors are both printed as
//!   `file:line:col: error: message` with the source line and a caret line, exit 1; an
//!   `env()` of an unset variable used as a basic_auth username is a warning, exit 0; an
//!   unsupported Alloy component is an error that names it;
//! - `fmt`: canonical Alloy formatting (tab indentation, `=` aligned in a run of attributes),
//!   the examples are already canonical, `fmt --write` rewrites the file in place and a second
//!   run changes nothing;
//! - `run --stability.level=public-preview` logs the level and the resolved pipeline (receiver
//!   → write → endpoint URL) before serving, then stops cleanly on SIGTERM.
//!
//! Every child process is bounded in time ([`CLI_TIMEOUT`], the harness's startup/stop bounds).

mod support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use support::gateway::{binary, logfmt_get};
use support::{Driver, Gateway, MockPyroscope, both_drivers, client, config};

/// Bound on one `validate`/`fmt`/`--help` run (they read one small file).
const CLI_TIMEOUT: Duration = Duration::from_secs(20);

use testkit::process::Finished as Output;

/// Runs `pyrogate <args>` with `env_unset` removed from its environment; kills it and panics
/// if it runs longer than [`CLI_TIMEOUT`].
fn pyrogate(args: &[&str], env_unset: &[&str]) -> Output {
    let mut command = Command::new(binary());
    command.args(args);
    for var in env_unset {
        command.env_remove(var);
    }
    testkit::process::run_bounded(&mut command, CLI_TIMEOUT, &format!("pyrogate {args:?}"))
}

/// Asserts one of main.rs's own usage errors (a missing file): nothing on stdout, exactly
/// one line on stderr, exit 2. Returns it.
fn assert_one_line_error(out: &Output) -> String {
    assert_eq!(out.code(), Some(2), "{out:?}");
    assert_eq!(out.stdout, "", "{out:?}");
    assert!(out.stderr.ends_with('\n'), "{out:?}");
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "expected exactly one line: {out:?}");
    lines[0].to_string()
}

/// Asserts a command-line mistake as clap reports it: nothing on stdout, exit 2, stderr
/// opening with `error: ` and ending with the pointer to `--help`. Returns stderr.
fn assert_usage_error(out: &Output) -> String {
    assert_eq!(out.code(), Some(2), "{out:?}");
    assert_eq!(out.stdout, "", "{out:?}");
    assert!(out.stderr.starts_with("error: "), "{out:?}");
    assert!(
        out.stderr
            .ends_with("For more information, try '--help'.\n"),
        "{out:?}"
    );
    out.stderr.clone()
}

fn write_file(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    path.display().to_string()
}

fn examples() -> Vec<String> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/examples");
    let mut paths: Vec<String> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{dir}: {e}"))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "alloy"))
        .map(|p| p.display().to_string())
        .collect();
    paths.sort();
    paths
}

/// A valid config that `run` would serve (receiver on port 0, a capture directory).
fn runnable_config(dir: &Path) -> String {
    let capture = dir.join("capture");
    write_file(
        dir,
        "ok.alloy",
        &config::single(&format!("file://{}", capture.display()), "", "", ""),
    )
}

#[test]
fn help_on_every_command_exits_0_prints_usage_and_starts_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = runnable_config(dir.path());
    for (args, usage) in [
        (vec!["--help"], "Usage: pyrogate <COMMAND>"),
        (vec!["-h"], "Usage: pyrogate <COMMAND>"),
        (vec![], "Usage: pyrogate <COMMAND>"),
        (vec!["help"], "Usage: pyrogate <COMMAND>"),
        (vec!["run", "-h", path.as_str()], "Usage: pyrogate run"),
        (vec!["run", path.as_str(), "--help"], "Usage: pyrogate run"),
        (
            vec![
                "run",
                "--server.http.listen-addr=127.0.0.1:0",
                "-h",
                path.as_str(),
            ],
            "Usage: pyrogate run",
        ),
        (vec!["help", "run"], "Usage: pyrogate run"),
        (vec!["validate", "-h"], "Usage: pyrogate validate"),
        (
            vec!["validate", "--help", path.as_str()],
            "Usage: pyrogate validate",
        ),
        (vec!["fmt", "-h"], "Usage: pyrogate fmt"),
        (
            vec!["fmt", "--write", "--help", path.as_str()],
            "Usage: pyrogate fmt",
        ),
        (vec!["completions", "-h"], "Usage: pyrogate completions"),
        (
            vec!["completions", "bash", "--help"],
            "Usage: pyrogate completions",
        ),
    ] {
        let out = pyrogate(&args, &[]);
        assert_eq!(out.code(), Some(0), "{args:?}: {out:?}");
        assert_eq!(out.stderr, "", "{args:?}: nothing logged, nothing started");
        assert!(
            out.stdout.contains(usage),
            "{args:?} lacks {usage:?}:\n{}",
            out.stdout
        );
    }
    // `fmt --write --help` did not rewrite, and `run -h` did not start a capture.
    assert!(!dir.path().join("capture").exists());
    let top = pyrogate(&["--help"], &[]).stdout;
    for command in ["run", "validate", "fmt", "completions"] {
        assert!(
            top.lines().any(|l| l.trim_start().starts_with(command)),
            "--help does not list {command}:\n{top}"
        );
    }
}

#[test]
fn run_help_describes_the_alloy_flags_and_the_stability_level() {
    let out = pyrogate(&["run", "--help"], &[]);
    assert_eq!(out.code(), Some(0), "{out:?}");
    let text = out.stdout.split_whitespace().collect::<Vec<_>>().join(" ");
    for needle in [
        "--stability.level <LEVEL>",
        "[possible values: generally-available, public-preview, experimental]",
        "Every pyrogate component is available at every level",
        "--server.http.listen-addr <HOST:PORT>",
        "[default: 127.0.0.1:12345]",
        "--storage.path <DIR>",
        "--disable-reporting",
        "--cores <N>",
        "--driver <DRIVER>",
    ] {
        assert!(
            text.contains(needle),
            "run --help lacks {needle:?}:\n{text}"
        );
    }
}

#[test]
fn version_prints_the_package_version() {
    for args in [&["--version"][..], &["-V"], &["version"]] {
        let out = pyrogate(args, &[]);
        assert_eq!(out.code(), Some(0), "{out:?}");
        assert_eq!(
            out.stdout,
            format!("pyrogate {}\n", env!("CARGO_PKG_VERSION")),
            "{args:?}"
        );
        assert_eq!(out.stderr, "", "{args:?}");
    }
}

#[test]
fn unknown_flag_is_named_and_exits_2() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write_file(dir.path(), "c.alloy", "");
    for args in [
        vec!["run", "--bogus", path.as_str()],
        vec!["run", "--bogus=1", path.as_str()],
        vec!["validate", "--cores=2", path.as_str()],
        vec!["fmt", "--bogus", path.as_str()],
    ] {
        let text = assert_usage_error(&pyrogate(&args, &[]));
        let flag = args[1].split('=').next().unwrap_or_default();
        assert!(
            text.starts_with(&format!("error: unexpected argument '{flag}' found\n")),
            "{args:?}: {text:?} does not name {flag}"
        );
    }
}

#[test]
fn a_mistyped_flag_gets_the_close_one_suggested() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write_file(dir.path(), "c.alloy", "");
    for (typo, known) in [
        (
            "--server.http.listen-adr=0.0.0.0:1",
            "--server.http.listen-addr",
        ),
        ("--stability-level=experimental", "--stability.level"),
        ("--core=2", "--cores"),
    ] {
        let text = assert_usage_error(&pyrogate(&["run", typo, path.as_str()], &[]));
        let name = typo.split('=').next().unwrap_or_default();
        assert!(
            text.starts_with(&format!("error: unexpected argument '{name}' found\n"))
                && text.contains(&format!("tip: a similar argument exists: '{known}'")),
            "{typo}: {text}"
        );
    }
}

#[test]
fn completions_bash_is_a_script_bash_accepts() {
    let out = pyrogate(&["completions", "bash"], &[]);
    assert_eq!(out.code(), Some(0), "{out:?}");
    assert_eq!(out.stderr, "");
    assert!(
        out.stdout.contains("complete -F _pyrogate")
            && out.stdout.contains("--server.http.listen-addr"),
        "{}",
        out.stdout
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let script = write_file(dir.path(), "pyrogate.bash", &out.stdout);
    let check = Command::new("bash")
        .args(["-n", &script])
        .output()
        .expect("run bash -n");
    assert!(
        check.status.success(),
        "bash -n rejects the script: {}",
        String::from_utf8_lossy(&check.stderr)
    );
    for shell in ["zsh", "fish"] {
        let out = pyrogate(&["completions", shell], &[]);
        assert_eq!(out.code(), Some(0), "{shell}: {out:?}");
        assert!(
            out.stdout.contains("stability.level"),
            "{shell}: {}",
            out.stdout
        );
    }
    let text = assert_usage_error(&pyrogate(&["completions", "tcsh"], &[]));
    assert!(
        text.contains("[possible values: bash, elvish, fish, powershell, zsh]"),
        "{text}"
    );
}

/// A free loopback port (bound, then released for the gateway to take).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind a free port")
        .port()
}

/// `run` takes Alloy's flags in both spellings, `--name=value` and `--name value`; the admin
/// listener comes up where the flag says (the harness's own `--server.http.listen-addr` comes
/// first and is overridden, as pflag does), and the stability level is the one given.
fn alloy_flag_spellings_with_equals_and_with_a_space(driver: Driver) {
    let mock = MockPyroscope::start();
    for space in [false, true] {
        let port = free_port();
        let admin = format!("127.0.0.1:{port}");
        let pairs = [
            ("--server.http.listen-addr", admin.as_str()),
            ("--stability.level", "experimental"),
            ("--storage.path", "/var/lib/alloy/data"),
        ];
        let mut extra: Vec<String> = Vec::new();
        for (flag, value) in pairs {
            if space {
                extra.extend([flag.to_string(), value.to_string()]);
            } else {
                extra.push(format!("{flag}={value}"));
            }
        }
        extra.push("--disable-reporting".into());
        let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
        let gw =
            Gateway::start_with_args(&config::single(&mock.url(), "", "", ""), driver, 1, &extra);
        assert_eq!(gw.admin().to_string(), admin, "space={space} {extra:?}");
        let ready = client::get(gw.admin(), "/-/ready");
        assert_eq!(ready.status, 200, "space={space}");
        let stderr = gw.stderr_text();
        let starting = stderr
            .lines()
            .find(|l| logfmt_get(l, "msg").as_deref() == Some("starting pyrogate"))
            .unwrap_or_else(|| panic!("no `starting pyrogate` line:\n{stderr}"));
        assert_eq!(
            logfmt_get(starting, "stability_level").as_deref(),
            Some("experimental"),
            "space={space}: {starting}"
        );
        let stopped = gw.stop();
        assert!(stopped.status.success(), "space={space}: {stopped:?}");
    }
}

both_drivers!(alloy_flag_spellings_with_equals_and_with_a_space);

#[test]
fn unknown_stability_level_lists_the_levels_and_exits_2() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write_file(dir.path(), "c.alloy", "");
    for args in [
        vec!["run", "--stability.level=beta", path.as_str()],
        vec!["run", "--stability.level", "beta", path.as_str()],
    ] {
        let text = assert_usage_error(&pyrogate(&args, &[]));
        assert!(
            text.starts_with("error: invalid value 'beta' for '--stability.level <LEVEL>'\n")
                && text.contains(
                    "[possible values: generally-available, public-preview, experimental]"
                ),
            "{args:?}: {text}"
        );
    }
}

#[test]
fn missing_config_file_is_one_line_naming_it_and_exit_2() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("nope.alloy").display().to_string();
    for args in [
        vec!["validate", missing.as_str()],
        vec!["fmt", missing.as_str()],
        vec![
            "run",
            "--server.http.listen-addr=127.0.0.1:0",
            missing.as_str(),
        ],
    ] {
        let line = assert_one_line_error(&pyrogate(&args, &[]));
        assert!(
            line.contains(&missing),
            "{args:?}: {line:?} does not name the file"
        );
    }
}

#[test]
fn validate_accepts_every_example() {
    let paths = examples();
    assert!(paths.len() >= 5, "examples: {paths:?}");
    for path in &paths {
        let out = pyrogate(&["validate", path], &[]);
        assert_eq!(out.code(), Some(0), "{path}: {out:?}");
        assert_eq!(out.stdout, "", "{path}: {out:?}");
        assert!(!out.stderr.contains(": error:"), "{path}: {}", out.stderr);
    }
}

#[test]
fn validate_prints_every_error_with_source_line_and_caret_and_exits_1() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write_file(
        dir.path(),
        "two-errors.alloy",
        "pyroscope.receive_http \"default\" {\n\
         \thttp {\n\
         \t\tlisten_port = 99999\n\
         \t}\n\
         \tgraceful_shutdown_timeout = \"5 minutes\"\n\
         \tforward_to = [pyroscope.write.backend.receiver]\n\
         }\n\
         \n\
         pyroscope.write \"backend\" {\n\
         \tendpoint {\n\
         \t\turl = \"http://pyroscope:4040\"\n\
         \t}\n\
         }\n",
    );
    let out = pyrogate(&["validate", &path], &[]);
    assert_eq!(out.code(), Some(1), "{out:?}");
    assert_eq!(out.stdout, "");
    let expected = format!(
        "{path}:3:17: error: listen_port must be between 1 and 65535 (or 0 to pick a free port), got 99999\n\
         \t\tlisten_port = 99999\n\
         \t\t              ^\n\
         {path}:5:30: error: graceful_shutdown_timeout: invalid duration \"5 minutes\": unknown unit \" minutes\" (use ns, us, ms, s, m or h)\n\
         \tgraceful_shutdown_timeout = \"5 minutes\"\n\
         \t                            ^\n"
    );
    assert_eq!(out.stderr, expected);
}

#[test]
fn validate_warns_about_an_unset_env_username_and_exits_0() {
    const VAR: &str = "PYROGATE_CLI_TEST_UNSET_USERNAME";
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write_file(
        dir.path(),
        "env.alloy",
        &format!(
            "pyroscope.receive_http \"default\" {{\n\
             \tforward_to = [pyroscope.write.backend.receiver]\n\
             }}\n\
             \n\
             pyroscope.write \"backend\" {{\n\
             \tendpoint {{\n\
             \t\turl = \"http://pyroscope:4040\"\n\
             \n\
             \t\tbasic_auth {{\n\
             \t\t\tusername = env(\"{VAR}\")\n\
             \t\t\tpassword = \"secret\"\n\
             \t\t}}\n\
             \t}}\n\
             }}\n"
        ),
    );
    let out = pyrogate(&["validate", &path], &[VAR]);
    assert_eq!(out.code(), Some(0), "{out:?}");
    assert_eq!(out.stdout, "");
    let first = out.stderr.lines().next().unwrap_or_default();
    assert_eq!(
        first,
        format!(
            "{path}:10:15: warning: username is empty because environment variable {VAR} is not set"
        ),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains(": error:"), "{}", out.stderr);
}

#[test]
fn validate_rejects_an_unsupported_component_by_name() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write_file(
        dir.path(),
        "scrape.alloy",
        "prometheus.scrape \"x\" {}\n\
         \n\
         pyroscope.receive_http \"default\" {\n\
         \tforward_to = [pyroscope.write.backend.receiver]\n\
         }\n\
         \n\
         pyroscope.write \"backend\" {\n\
         \tendpoint {\n\
         \t\turl = \"http://pyroscope:4040\"\n\
         \t}\n\
         }\n",
    );
    let out = pyrogate(&["validate", &path], &[]);
    assert_eq!(out.code(), Some(1), "{out:?}");
    assert_eq!(
        out.stderr,
        format!(
            "{path}:1:1: error: component prometheus.scrape is not supported: pyrogate supports only the pyroscope.receive_http, pyroscope.relabel and pyroscope.write components\n\
             prometheus.scrape \"x\" {{}}\n\
             ^\n"
        )
    );
}

/// A valid config in sloppy layout: two-space and mixed indentation, unaligned `=`.
const SLOPPY: &str = "// backend for the demo\n\
pyroscope.receive_http \"default\" {\n\
  http {\n\
      listen_address = \"127.0.0.1\"\n\
    listen_port = 9999\n\
    conn_limit = 10\n\
  }\n\
  forward_to = [pyroscope.write.backend.receiver]\n\
}\n\
\n\
pyroscope.write \"backend\" {\n\
    endpoint {\n\
        url = \"http://pyroscope:4040\"\n\
        remote_timeout = \"5s\"\n\
    }\n\
  external_labels = {\n\
    \"env\" = \"dev\",\n\
    \"region\" = \"eu\",\n\
  }\n\
}\n";

/// What Alloy's formatter makes of [`SLOPPY`]: tabs, `=` aligned within each run of
/// attributes (object keys included), comments and blank lines kept.
const CANONICAL: &str = "// backend for the demo\n\
pyroscope.receive_http \"default\" {\n\
\thttp {\n\
\t\tlisten_address = \"127.0.0.1\"\n\
\t\tlisten_port    = 9999\n\
\t\tconn_limit     = 10\n\
\t}\n\
\tforward_to = [pyroscope.write.backend.receiver]\n\
}\n\
\n\
pyroscope.write \"backend\" {\n\
\tendpoint {\n\
\t\turl            = \"http://pyroscope:4040\"\n\
\t\tremote_timeout = \"5s\"\n\
\t}\n\
\texternal_labels = {\n\
\t\t\"env\"    = \"dev\",\n\
\t\t\"region\" = \"eu\",\n\
\t}\n\
}\n";

#[test]
fn fmt_prints_canonical_formatting_with_tabs_and_aligned_equals() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write_file(dir.path(), "sloppy.alloy", SLOPPY);
    let out = pyrogate(&["fmt", &path], &[]);
    assert_eq!(out.code(), Some(0), "{out:?}");
    assert_eq!(out.stderr, "");
    assert_eq!(out.stdout, CANONICAL);
    // Printing does not touch the file.
    assert_eq!(std::fs::read_to_string(&path).expect("read back"), SLOPPY);
}

#[test]
fn fmt_leaves_every_example_unchanged() {
    for path in examples() {
        let out = pyrogate(&["fmt", &path], &[]);
        assert_eq!(out.code(), Some(0), "{path}: {out:?}");
        let original = std::fs::read_to_string(&path).expect("read example");
        assert_eq!(out.stdout, original, "{path} is not in canonical form");
    }
}

#[test]
fn fmt_write_rewrites_in_place_and_is_idempotent() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write_file(dir.path(), "sloppy.alloy", SLOPPY);
    for round in 0..2 {
        let out = pyrogate(&["fmt", "--write", &path], &[]);
        assert_eq!(out.code(), Some(0), "round {round}: {out:?}");
        assert_eq!(out.stdout, "", "round {round}: --write prints nothing");
        assert_eq!(out.stderr, "", "round {round}");
        assert_eq!(
            std::fs::read_to_string(&path).expect("read back"),
            CANONICAL,
            "round {round}"
        );
    }
    // And the rewritten file is still a valid config.
    let out = pyrogate(&["validate", &path], &[]);
    assert_eq!(out.code(), Some(0), "{out:?}");
}

#[test]
fn fmt_of_an_invalid_file_prints_the_syntax_error_and_exits_1() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write_file(
        dir.path(),
        "broken.alloy",
        "logging {\n\tlevel = \"info\"\n",
    );
    let out = pyrogate(&["fmt", "--write", &path], &[]);
    assert_eq!(out.code(), Some(1), "{out:?}");
    assert_eq!(out.stdout, "");
    assert!(
        out.stderr.starts_with(&format!("{path}:")) && out.stderr.contains(": error: "),
        "{}",
        out.stderr
    );
    // A failed --write leaves the file as it was.
    assert_eq!(
        std::fs::read_to_string(&path).expect("read back"),
        "logging {\n\tlevel = \"info\"\n"
    );
}

#[test]
fn run_with_public_preview_logs_the_level_and_the_resolved_pipeline() {
    let mock = MockPyroscope::start();
    let url = mock.url();
    let gw = Gateway::start_with_args(
        &config::single(&url, "", "", ""),
        Driver::Legacy,
        1,
        &["--stability.level=public-preview"],
    );
    let stderr = gw.stderr_text();
    let starting = stderr
        .lines()
        .find(|l| logfmt_get(l, "msg").as_deref() == Some("starting pyrogate"))
        .unwrap_or_else(|| panic!("no `starting pyrogate` line:\n{stderr}"));
    assert_eq!(
        logfmt_get(starting, "stability_level").as_deref(),
        Some("public-preview"),
        "{starting}"
    );
    let pipeline: Vec<String> = stderr
        .lines()
        .filter(|l| logfmt_get(l, "msg").as_deref() == Some("pipeline"))
        .filter_map(|l| logfmt_get(l, "pipeline"))
        .collect();
    assert_eq!(
        pipeline,
        [format!(
            "pyroscope.receive_http.default (127.0.0.1:0) -> pyroscope.write.upstream [{url}]"
        )],
        "{stderr}"
    );
    let stopped = gw.stop();
    assert!(stopped.status.success(), "{stopped:?}");
}
