//! OTLP/HTTP profiles (`POST /v1development/profiles`) for the stand-in and the tests: the
//! stand-in's request rules (Pyroscope's `pkg/ingester/otlp/ingest_handler.go`) and the
//! official OpenTelemetry codec — the `opentelemetry-proto` Python package's generated classes
//! with protobuf's `json_format` — installed on first use into a virtual environment under
//! `target/py-cache/`, guarded by a file lock so parallel tests install it once.
//!
//! Owns: [`judge`] (method, exact `Content-Type`, gzip), [`decode`] (protobuf or OTLP JSON
//! bytes → the message as JSON with proto field names, for comparison), [`encode`] (OTLP JSON
//! text → protobuf bytes). Does not own: pyrogate's codec (never used here). Test code.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use crate::http::header_value;
use crate::rules::{Accepted, Rejection};
use crate::server::Recorded;

/// The OTLP/HTTP profiles path.
pub const OTLP_PATH: &str = "/v1development/profiles";

/// The `opentelemetry-proto` release whose `v1development` profiles messages match
/// opentelemetry-proto v1.10.0 (the version Pyroscope pins).
pub const PACKAGE: &str = "opentelemetry-proto==1.45.2";

/// Pyroscope's OTLP/HTTP rules on a fully received request: `POST`, `Content-Type` exactly
/// one of the three OTLP types (else 415 `Unsupported Content-Type: …`), a gzip body that
/// inflates within the limit (else 400 `Failed to read request body`), not empty.
pub fn judge(limit: usize, req: &Recorded) -> Result<Accepted, Rejection> {
    if req.method != "POST" {
        return Err(Rejection::empty(405, Vec::new()));
    }
    let ct = header_value(&req.headers, "content-type").unwrap_or("");
    if !matches!(
        ct,
        "application/x-protobuf" | "application/protobuf" | "application/json"
    ) {
        return Err(text(415, &format!("Unsupported Content-Type: {ct}")));
    }
    let gzip = header_value(&req.headers, "content-encoding")
        .is_some_and(|e| e.eq_ignore_ascii_case("gzip"));
    let body = if gzip {
        crate::gzip::gunzip_bounded(&req.body, limit)
            .map_err(|_| text(400, "Failed to read request body"))?
    } else {
        req.body.clone()
    };
    if body.is_empty() {
        return Err(text(400, "missing resource profiles"));
    }
    Ok(Accepted {
        label_key: String::new(),
        codec: None,
    })
}

/// Go's `http.Error`.
fn text(status: u16, message: &str) -> Rejection {
    Rejection {
        status,
        content_type: "text/plain; charset=utf-8",
        body: format!("{message}\n").into_bytes(),
        extra: vec![("X-Content-Type-Options", "nosniff")],
    }
}

/// The venv's interpreter, installing the package on first use.
pub fn python() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("..")
                .join("target")
        });
    let cache = target.join("py-cache");
    let venv = cache.join("opentelemetry-proto");
    let python = venv.join("bin/python");
    let marker = venv.join(".installed-opentelemetry-proto-1.45.2");
    static IN_PROCESS: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _guard = IN_PROCESS.lock().unwrap_or_else(|e| e.into_inner());
    std::fs::create_dir_all(&cache).expect("py-cache dir");
    let lock = std::fs::File::create(cache.join("opentelemetry-proto.lock")).expect("lock file");
    lock.lock().expect("lock the venv");
    if !marker.exists() {
        let ok = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .is_ok_and(|s| s.success())
            && Command::new(&python)
                .args(["-m", "pip", "install", "-q", PACKAGE])
                .status()
                .is_ok_and(|s| s.success());
        assert!(ok, "installing {PACKAGE} into {}", venv.display());
        std::fs::write(&marker, b"").expect("marker");
    }
    python
}

const SCRIPT: &str = r#"
import sys
from google.protobuf import json_format
from opentelemetry.proto.collector.profiles.v1development.profiles_service_pb2 import (
    ExportProfilesServiceRequest,
)
mode = sys.argv[1]
data = sys.stdin.buffer.read()
m = ExportProfilesServiceRequest()
if mode == "proto":
    m.ParseFromString(data)
else:
    json_format.Parse(data.decode("utf-8"), m)
if mode == "encode":
    sys.stdout.buffer.write(m.SerializeToString())
else:
    sys.stdout.write(json_format.MessageToJson(m, preserving_proto_field_name=True, sort_keys=True))
"#;

fn run(mode: &str, input: &[u8]) -> Result<Vec<u8>, String> {
    let mut child = Command::new(python())
        .args(["-c", SCRIPT, mode])
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

/// Decodes an `ExportProfilesServiceRequest` (protobuf, or OTLP JSON when `json`) with the
/// official classes and returns it as JSON with proto field names; `Err` with the library's
/// complaint when it does not parse.
pub fn decode(body: &[u8], json: bool) -> Result<serde_json::Value, String> {
    let out = run(if json { "json" } else { "proto" }, body)?;
    serde_json::from_slice(&out).map_err(|e| e.to_string())
}

/// Encodes OTLP JSON text as protobuf bytes with the official classes.
pub fn encode(json: &str) -> Vec<u8> {
    run("encode", json.as_bytes()).unwrap_or_else(|e| panic!("encode {json}: {e}"))
}
