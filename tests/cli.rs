//! Black-box tests of the `pyrogate` command line (README, "Command line") and its diagnostics.
//!
//! Covers, by running the built binary:
//! - `--help` (exit 0; names run, validate and fmt; explains `--stability.level`) and
//!   `--version` (`pyrogate <CARGO_PKG_VERSION>`);
//! - usage errors: an unknown flag, an invalid `--stability.level`, a missing config file
//!   (for `run`, `validate` and `fmt`): exactly one line on stderr naming the problem, exit 2;
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

use std::io::Read;
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use support::gateway::{binary, logfmt_get};
use support::{Driver, Gateway, MockPyroscope, config};

/// Bound on one `validate`/`fmt`/`--help` run (they read one small file).
const CLI_TIMEOUT: Duration = Duration::from_secs(20);

/// What a finished CLI run printed.
#[derive(Debug)]
struct Output {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

impl Output {
    fn code(&self) -> Option<i32> {
        self.status.code()
    }
}

/// Runs `pyrogate <args>` with `env_unset` removed from its environment; kills it and panics
/// if it runs longer than [`CLI_TIMEOUT`].
fn pyrogate(args: &[&str], env_unset: &[&str]) -> Output {
    let mut command = Command::new(binary());
    command
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for var in env_unset {
        command.env_remove(var);
    }
    let mut child = command
        .spawn()
        .unwrap_or_else(|e| panic!("spawn pyrogate {args:?}: {e}"));
    let mut out_pipe = child.stdout.take().expect("stdout pipe");
    let mut err_pipe = child.stderr.take().expect("stderr pipe");
    let out_reader = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = out_pipe.read_to_end(&mut s);
        s
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = err_pipe.read_to_end(&mut s);
        s
    });
    let deadline = Instant::now() + CLI_TIMEOUT;
    let status = loop {
        match child.try_wait().expect("wait for pyrogate") {
            Some(status) => break status,
            None if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            None => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("pyrogate {args:?} still running after {CLI_TIMEOUT:?}");
            }
        }
    };
    let stdout = String::from_utf8(out_reader.join().expect("stdout reader")).expect("UTF-8");
    let stderr = String::from_utf8(err_reader.join().expect("stderr reader")).expect("UTF-8");
    Output {
        status,
        stdout,
        stderr,
    }
}

/// Asserts a usage error: nothing on stdout, exactly one line on stderr, exit 2. Returns it.
fn assert_usage_error(out: &Output) -> String {
    assert_eq!(out.code(), Some(2), "{out:?}");
    assert_eq!(out.stdout, "", "{out:?}");
    assert!(out.stderr.ends_with('\n'), "{out:?}");
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "expected exactly one line: {out:?}");
    lines[0].to_string()
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

#[test]
fn help_exits_0_and_describes_the_commands_and_the_stability_level() {
    for flag in ["--help", "-h"] {
        let out = pyrogate(&[flag], &[]);
        assert_eq!(out.code(), Some(0), "{out:?}");
        assert_eq!(out.stderr, "", "{out:?}");
        for needle in [
            "pyrogate run",
            "pyrogate validate",
            "pyrogate fmt",
            "--stability.level",
            "generally-available",
            "public-preview",
            "experimental",
            "Every pyrogate component is",
            "available at every level",
            "--server.http.listen-addr",
            "--cores",
        ] {
            assert!(
                out.stdout.contains(needle),
                "--help lacks {needle:?}:\n{}",
                out.stdout
            );
        }
    }
}

#[test]
fn version_prints_the_package_version() {
    let out = pyrogate(&["--version"], &[]);
    assert_eq!(out.code(), Some(0), "{out:?}");
    assert_eq!(
        out.stdout,
        format!("pyrogate {}\n", env!("CARGO_PKG_VERSION"))
    );
    assert_eq!(out.stderr, "");
}

#[test]
fn unknown_flag_is_one_line_and_exit_2() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write_file(dir.path(), "c.alloy", "");
    for args in [
        vec!["run", "--bogus", path.as_str()],
        vec!["run", "--bogus=1", path.as_str()],
        vec!["validate", "--cores=2", path.as_str()],
        vec!["fmt", "--bogus", path.as_str()],
    ] {
        let line = assert_usage_error(&pyrogate(&args, &[]));
        let flag = args[1].split('=').next().unwrap_or_default();
        assert!(
            line.contains(flag),
            "{args:?}: {line:?} does not name {flag}"
        );
    }
}

#[test]
fn unknown_stability_level_is_one_line_and_exit_2() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write_file(dir.path(), "c.alloy", "");
    let line = assert_usage_error(&pyrogate(
        &["run", "--stability.level=beta", path.as_str()],
        &[],
    ));
    assert!(
        line.contains("--stability.level") && line.contains("beta"),
        "{line:?}"
    );
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
        let line = assert_usage_error(&pyrogate(&args, &[]));
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
