//! Python packages for the tests: a virtual environment per package under `target/py-cache/`,
//! installed on first use, and running a script in it.
//!
//! Owns: [`venv`] (one installer at a time — the driver variants of a test and other test
//! binaries run at once — under an in-process mutex and an exclusive lock on a file beside the
//! venv; a marker file says the install finished) and [`run`] (a `python -c` script with bytes
//! on stdin). Does not own what the scripts do. Test code.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// The interpreter of the venv `name` with `requirement` (`package==version`) installed,
/// installing it the first time (needs `python3` with `venv` and access to PyPI).
pub fn venv(name: &str, requirement: &str) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("..")
                .join("target")
        });
    let cache = target.join("py-cache");
    let venv = cache.join(name);
    let python = venv.join("bin/python");
    let marker = venv.join(format!(".installed-{}", requirement.replace("==", "-")));
    static IN_PROCESS: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _guard = IN_PROCESS.lock().unwrap_or_else(|e| e.into_inner());
    std::fs::create_dir_all(&cache).expect("py-cache dir");
    let lock = std::fs::File::create(cache.join(format!("{name}.lock"))).expect("lock file");
    lock.lock().expect("lock the venv");
    if !marker.exists() {
        let ok = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .is_ok_and(|s| s.success())
            && Command::new(&python)
                .args(["-m", "pip", "install", "-q", requirement])
                .status()
                .is_ok_and(|s| s.success());
        assert!(ok, "installing {requirement} into {}", venv.display());
        std::fs::write(&marker, b"").expect("marker");
    }
    python
}

/// Runs `script` (`python -c`) with `args`, `input` on stdin; its stdout, or its stderr when
/// it fails.
pub fn run(python: &PathBuf, script: &str, args: &[&str], input: &[u8]) -> Result<Vec<u8>, String> {
    let mut child = Command::new(python)
        .args(["-c", script])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start python");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input)
        .expect("write to python");
    let out = child.wait_with_output().expect("python output");
    if out.status.success() {
        Ok(out.stdout)
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}
