//! End-to-end with REAL Pyroscope SDKs from their registries: PyPI `pyroscope-io` 1.4.0 (a
//! Rust core that uploads through the Connect Push API, gzip'd protobuf) and npm
//! `@pyroscope/nodejs` 0.6.4 (`POST /ingest?format=pprof`, gzip'd pprof). Each profiles a small
//! busy loop and uploads to pyrogate, which forwards to a Pyroscope stand-in that validates
//! every request with the server's rules (name grammar, Push label checks). Under both drivers.
//!
//! The SDKs are installed by the test itself into `target/sdk-cache` (a Python venv and an npm
//! prefix) the first time, so `cargo test --workspace` needs only `python3` (with `venv`) and
//! `node`/`npm` on the machine, which every machine of this project has.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

use support::config;
use support::{Driver, Gateway, MockPyroscope, both_drivers};

/// How long an SDK run may take, installation excluded.
const SDK_RUN_TIMEOUT: Duration = Duration::from_secs(60);
/// How long to wait for the stand-in to receive the first upload.
const WAIT: Duration = Duration::from_secs(30);
const PYTHON_SDK: &str = "pyroscope-io==1.4.0";
const NODE_SDK: &str = "@pyroscope/nodejs@0.6.4";

/// Installation is shared by every test in this file; one at a time.
static INSTALL: Mutex<()> = Mutex::new(());

fn cache_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    target.join("sdk-cache")
}

fn run(cmd: &mut Command, what: &str) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot start {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The venv Python with `pyroscope-io` installed.
fn python_sdk() -> PathBuf {
    let _guard = INSTALL.lock().unwrap_or_else(|p| p.into_inner());
    let venv = cache_dir().join("python");
    let python = venv.join("bin/python");
    let marker = venv.join(".installed-pyroscope-io-1.4.0");
    if !marker.exists() {
        std::fs::create_dir_all(cache_dir()).expect("create sdk cache");
        run(
            Command::new("python3").args(["-m", "venv"]).arg(&venv),
            "creating a Python venv",
        );
        run(
            Command::new(&python).args(["-m", "pip", "install", "-q", PYTHON_SDK]),
            "pip install pyroscope-io",
        );
        std::fs::write(&marker, b"").expect("marker");
    }
    python
}

/// An npm prefix with `@pyroscope/nodejs` installed.
fn node_sdk() -> PathBuf {
    let _guard = INSTALL.lock().unwrap_or_else(|p| p.into_inner());
    let prefix = cache_dir().join("node");
    let marker = prefix.join(".installed-pyroscope-nodejs-0.6.4");
    if !marker.exists() {
        std::fs::create_dir_all(&prefix).expect("create npm prefix");
        run(
            Command::new("npm")
                .args(["install", "--no-audit", "--no-fund", "--prefix"])
                .arg(&prefix)
                .arg(NODE_SDK),
            "npm install @pyroscope/nodejs",
        );
        std::fs::write(&marker, b"").expect("marker");
    }
    prefix
}

/// Runs `program script` with a bound on its run time.
fn run_sdk(program: &Path, script: &Path, cwd: &Path) {
    let mut child = Command::new(program)
        .arg(script)
        .current_dir(cwd)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", program.display()));
    let deadline = std::time::Instant::now() + SDK_RUN_TIMEOUT;
    loop {
        if let Some(status) = child.try_wait().expect("wait for the SDK") {
            assert!(
                status.success(),
                "{} exited with {status}",
                script.display()
            );
            return;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{} did not finish within {SDK_RUN_TIMEOUT:?}",
                script.display()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn python_sdk_pushes_through_pyrogate(driver: Driver) {
    let python = python_sdk();
    let mock = MockPyroscope::start();
    let cfg = config::single(&mock.url(), "", "", "");
    let cfg = cfg.replace(
        "pyroscope.write \"upstream\" {",
        "pyroscope.write \"upstream\" {\n  external_labels = { env = \"e2e\" }",
    );
    let gw = Gateway::start(&cfg, driver, 1);
    let script = gw.dir().join("app.py");
    std::fs::write(
        &script,
        format!(
            r#"import time, pyroscope
pyroscope.configure(application_name="sdk.python", server_address="http://{addr}",
                    tags={{"region": "eu"}}, upload_interval=1)
end = time.time() + 3
while time.time() < end:
    sum(i * i for i in range(20000))
pyroscope.shutdown()
"#,
            addr = gw.addr()
        ),
    )
    .expect("write the app");
    run_sdk(&python, &script, gw.dir());
    let recorded = mock.wait_for_requests(1, WAIT);
    let stopped = gw.stop();
    assert!(stopped.status.success(), "{}", stopped.stderr);
    for r in &recorded {
        assert_eq!(r.path, "/push.v1.PusherService/Push");
        assert_eq!(r.status, Some(200), "the stand-in rejected a push: {r:?}");
        assert_eq!(r.header("connect-protocol-version"), Some("1"));
        assert_eq!(r.header("content-type"), Some("application/proto"));
        let push = r.push_request();
        for series in &push.series {
            let get = |k: &str| {
                series
                    .labels
                    .iter()
                    .find(|(n, _)| n == k)
                    .map(|(_, v)| v.as_str())
            };
            assert_eq!(get("service_name"), Some("sdk.python"));
            assert_eq!(get("__name__"), Some("process_cpu"));
            // Alloy's quirk: service_name present, so app_name = __name__.
            assert_eq!(get("app_name"), Some("process_cpu"));
            assert_eq!(get("region"), Some("eu"));
            assert_eq!(get("env"), Some("e2e"));
            assert_eq!(get("otel.scope.name"), Some("com.grafana.pyroscope/python"));
            let mut names: Vec<&str> = series.labels.iter().map(|(n, _)| n.as_str()).collect();
            let sorted = {
                let mut s = names.clone();
                s.sort();
                s
            };
            assert_eq!(names, sorted, "labels are sent sorted");
            names.dedup();
            assert_eq!(names.len(), series.labels.len());
            assert!(!series.samples.is_empty());
            for s in &series.samples {
                assert!(!s.raw_profile.is_empty());
                assert_eq!(
                    s.id.len(),
                    36,
                    "the SDK's UUID sample ID is kept: {:?}",
                    s.id
                );
            }
        }
    }
}

fn node_sdk_ingests_through_pyrogate(driver: Driver) {
    let prefix = node_sdk();
    let mock = MockPyroscope::start();
    let gw = Gateway::start(&config::single(&mock.url(), "", "", ""), driver, 1);
    let script = gw.dir().join("app.js");
    std::fs::write(
        &script,
        format!(
            r#"const Pyroscope = require({module:?});
Pyroscope.init({{ serverAddress: "http://{addr}", appName: "sdk.node", tags: {{ region: "eu" }}, flushIntervalMs: 1000 }});
Pyroscope.start();
function burn() {{ let s = 0; for (let i = 0; i < 1e6; i++) s += i * i; return s; }}
const iv = setInterval(burn, 1);
setTimeout(async () => {{ clearInterval(iv); await Pyroscope.stop(); process.exit(0); }}, 3000);
"#,
            module = prefix.join("node_modules/@pyroscope/nodejs").display().to_string(),
            addr = gw.addr()
        ),
    )
    .expect("write the app");
    run_sdk(Path::new("node"), &script, gw.dir());
    let recorded = mock.wait_for_requests(1, WAIT);
    let stopped = gw.stop();
    assert!(stopped.status.success(), "{}", stopped.stderr);
    for r in &recorded {
        assert_eq!(r.path, "/ingest");
        assert_eq!(
            r.status,
            Some(200),
            "the stand-in rejected an upload: {r:?}"
        );
        assert!(r.query.contains("format=pprof"), "{}", r.query);
        assert!(r.query.contains("spyName=nodespy"), "{}", r.query);
        assert!(
            r.query.contains("name=sdk.node%7B") && r.query.contains("region%3Deu"),
            "{}",
            r.query
        );
        assert!(
            r.query.contains("service_name%3Dsdk.node%7D"),
            "{}",
            r.query
        );
        assert_eq!(r.header("content-type"), Some("application/octet-stream"));
        assert_eq!(&r.body[..2], b"\x1f\x8b", "gzip'd pprof body, unchanged");
    }
}

both_drivers!(
    python_sdk_pushes_through_pyrogate,
    node_sdk_ingests_through_pyrogate
);
