//! OTLP/HTTP profiles (`POST /v1development/profiles`) for the stand-in and the tests: the
//! stand-in's request rules (Pyroscope's `pkg/ingester/otlp/ingest_handler.go`) and the
//! official OpenTelemetry codec — the `opentelemetry-proto` Python package's generated classes
//! with protobuf's `json_format` — installed on first use into a virtual environment under
//! `target/py-cache/`, guarded by a file lock so parallel tests install it once.
//!
//! Owns: [`judge`] (method, exact `Content-Type`, gzip), [`decode`] (protobuf or OTLP JSON
//! bytes → the message as JSON with proto field names, for comparison), [`encode`] (OTLP JSON
//! text → protobuf bytes). Does not own: pyrogate's codec (never used here). Test code.

use std::path::PathBuf;

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
    crate::python::venv("opentelemetry-proto", PACKAGE)
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
    crate::python::run(&python(), SCRIPT, &[mode], input)
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
