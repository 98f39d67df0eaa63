//! Black-box tests of the `loadtest` command line, by running the built binary.
//!
//! - `-h` and `--help` on the program and on every subcommand print that subcommand's usage
//!   on stdout and exit 0 without doing anything: every program a run would start (pyrogate via
//!   `$PYROGATE_BIN`, `nginx` and `cargo` via `PATH`) is a stand-in script that leaves a marker
//!   file, and none is left; the working directory stays empty (no `target/loadtest` output);
//!   and each call returns within [`CLI_TIMEOUT`] (a `sink` that ran would sleep ten minutes,
//!   a `compare` at least a minute). The control: the same `compare` without `-h` does reach
//!   the stand-in pyrogate, so the markers do detect a start.
//! - `--version`; an unknown flag is named with the close one suggested, exit 2; flags that
//!   only apply to another `--mode` are refused; `completions bash` passes `bash -n`.
//!
//! Everything is bounded in time; the control run binds its sinks on 127.0.0.1 only.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// Bound on one run that should return at once.
const CLI_TIMEOUT: Duration = Duration::from_secs(20);
/// Bound on the control run (a 200 ms direct round; the stand-in pyrogate fails and is skipped).
const CONTROL_TIMEOUT: Duration = Duration::from_secs(60);

const SUBCOMMANDS: [&str; 9] = [
    "sink",
    "gen",
    "replay",
    "compare",
    "soak",
    "outage",
    "slow",
    "idle",
    "completions",
];

use testkit::process::Finished as Output;

/// A sandbox: an empty working directory, a `bin/` of stand-ins first on `PATH`, and a
/// `markers/` directory they write into when started.
struct Sandbox {
    _root: tempfile::TempDir,
    work: PathBuf,
    bin: PathBuf,
    markers: PathBuf,
}

impl Sandbox {
    fn new() -> Sandbox {
        let root = tempfile::tempdir().expect("tempdir");
        let work = root.path().join("work");
        let bin = root.path().join("bin");
        let markers = root.path().join("markers");
        for d in [&work, &bin, &markers] {
            std::fs::create_dir(d).expect("mkdir");
        }
        for name in ["pyrogate", "nginx", "cargo"] {
            let path = bin.join(name);
            std::fs::write(
                &path,
                format!(
                    "#!/bin/sh\necho \"$@\" > '{}/{name}'\nexit 1\n",
                    markers.display()
                ),
            )
            .expect("write stand-in");
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        }
        Sandbox {
            _root: root,
            work,
            bin,
            markers,
        }
    }

    fn started(&self) -> Vec<String> {
        names(&self.markers)
    }

    /// Runs `loadtest <args>` in the sandbox; kills it and panics after `bound`.
    fn loadtest(&self, args: &[&str], bound: Duration) -> Output {
        let path = format!(
            "{}:{}",
            self.bin.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        testkit::process::run_bounded(
            Command::new(env!("CARGO_BIN_EXE_loadtest"))
                .args(args)
                .current_dir(&self.work)
                .env("PATH", path)
                .env("PYROGATE_BIN", self.bin.join("pyrogate")),
            bound,
            &format!("loadtest {args:?}"),
        )
    }
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .expect("read dir")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn help_on_every_subcommand_exits_0_prints_usage_and_starts_nothing() {
    let sb = Sandbox::new();
    let mut cases: Vec<(Vec<&str>, String)> = vec![
        (vec!["-h"], "Usage: loadtest <COMMAND>".into()),
        (vec!["--help"], "Usage: loadtest <COMMAND>".into()),
        (vec!["help"], "Usage: loadtest <COMMAND>".into()),
    ];
    for sub in SUBCOMMANDS {
        let usage = format!("Usage: loadtest {sub}");
        cases.push((vec![sub, "-h"], usage.clone()));
        cases.push((vec![sub, "--help"], usage.clone()));
        cases.push((vec!["help", sub], usage));
    }
    // Help wins over other flags, before or after it.
    cases.push((
        vec!["compare", "--rounds=1", "-h", "--duration=1s"],
        "Usage: loadtest compare".into(),
    ));
    cases.push((
        vec!["sink", "--listen=127.0.0.1:0", "--help"],
        "Usage: loadtest sink".into(),
    ));
    cases.push((vec!["replay", "dir", "-h"], "Usage: loadtest replay".into()));
    for (args, usage) in &cases {
        let out = sb.loadtest(args, CLI_TIMEOUT);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {out:?}");
        assert_eq!(out.stderr, "", "{args:?}");
        assert!(
            out.stdout.contains(usage.as_str()),
            "{args:?} lacks {usage:?}:\n{}",
            out.stdout
        );
        assert_eq!(
            sb.started(),
            Vec::<String>::new(),
            "{args:?} started something"
        );
        assert_eq!(
            names(&sb.work),
            Vec::<String>::new(),
            "{args:?} wrote files"
        );
    }
    // The control: without -h the same command does start the stand-in pyrogate.
    let out = sb.loadtest(
        &[
            "compare",
            "--no-nginx",
            "--rounds=1",
            "--duration=200ms",
            "--fanouts=1",
            "--connections=2",
            "--quiet",
        ],
        CONTROL_TIMEOUT,
    );
    assert_eq!(sb.started(), ["pyrogate"], "{out:?}");
}

#[test]
fn compare_help_lists_its_flags_with_their_defaults() {
    let sb = Sandbox::new();
    let out = sb.loadtest(&["compare", "--help"], CLI_TIMEOUT);
    let text = out.stdout.split_whitespace().collect::<Vec<_>>().join(" ");
    for needle in [
        "--rounds <N>",
        "[default: 2]",
        "--duration <DURATION>",
        "[default: 6s]",
        "--fanouts <N,N>",
        "[default: 1,2,4]",
        "--nginx-fanout <N>",
        "--no-nginx",
        "--relabel",
        "--no-build",
        "--out <DIR>",
        "[default: target/loadtest]",
        "--cores <N|default>",
        "`default` for pyrogate's own default (every core)",
        "--pin",
        "not pinned",
        "push-python",
        "push-dotnet",
        "jfr",
    ] {
        assert!(
            text.contains(needle),
            "compare --help lacks {needle:?}:\n{text}"
        );
    }
}

#[test]
fn version_prints_the_package_version() {
    let sb = Sandbox::new();
    for flag in ["--version", "-V"] {
        let out = sb.loadtest(&[flag], CLI_TIMEOUT);
        assert_eq!(out.status.code(), Some(0), "{out:?}");
        assert_eq!(
            out.stdout,
            format!("loadtest {}\n", env!("CARGO_PKG_VERSION"))
        );
    }
}

#[test]
fn mistakes_exit_2_naming_the_flag_and_start_nothing() {
    let sb = Sandbox::new();
    for (args, first, more) in [
        (
            &["compare", "--round=3"][..],
            "error: unexpected argument '--round' found",
            "tip: a similar argument exists: '--rounds'",
        ),
        (
            &["sink", "--error_rate=0.1"],
            "error: unexpected argument '--error_rate' found",
            "tip: a similar argument exists: '--error-rate'",
        ),
        (
            &["gen", "--rate=100"],
            "error: --rate applies only to --mode=open",
            "Usage: loadtest gen",
        ),
        (
            &["gen", "--target=10.1.2.3:80"],
            "error: invalid value '10.1.2.3:80' for '--target <ADDR>': expected a loopback address",
            "",
        ),
        (
            &["soak", "--mix=java"],
            "error: invalid value 'java' for '--mix <MIX>'",
            "[possible values: go, all, jfr, push-python, push-dotnet]",
        ),
        (
            &["compare", "--cores=all"],
            "error: invalid value 'all' for '--cores <N|default>': expected a number of cores (1 or more) or `default`",
            "",
        ),
        (&["bench"], "error: unrecognized subcommand 'bench'", ""),
    ] {
        let out = sb.loadtest(args, CLI_TIMEOUT);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
        assert_eq!(out.stdout, "", "{args:?}");
        assert!(
            out.stderr.starts_with(first) && out.stderr.contains(more),
            "{args:?}: {}",
            out.stderr
        );
    }
    assert_eq!(sb.started(), Vec::<String>::new());
    // No command at all: the help, on stderr, exit 2.
    let out = sb.loadtest(&[], CLI_TIMEOUT);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(out.stderr.contains("Usage: loadtest <COMMAND>"), "{out:?}");
}

#[test]
fn completions_bash_is_a_script_bash_accepts() {
    let sb = Sandbox::new();
    let out = sb.loadtest(&["completions", "bash"], CLI_TIMEOUT);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(
        out.stdout.contains("complete -F _loadtest") && out.stdout.contains("--nginx-fanout"),
        "{}",
        out.stdout
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let script = dir.path().join("loadtest.bash");
    std::fs::write(&script, &out.stdout).expect("write script");
    let check = Command::new("bash")
        .arg("-n")
        .arg(&script)
        .output()
        .expect("run bash -n");
    assert!(
        check.status.success(),
        "bash -n rejects the script: {}",
        String::from_utf8_lossy(&check.stderr)
    );
    for shell in ["zsh", "fish"] {
        let out = sb.loadtest(&["completions", shell], CLI_TIMEOUT);
        assert_eq!(out.status.code(), Some(0), "{shell}: {out:?}");
        assert!(out.stdout.contains("compare"), "{shell}");
    }
}
