//! `testkit`: everything pyrogate's tests and loadtest need around the gateway — one Pyroscope
//! stand-in, the wire formats it judges with, SDK-shaped bodies, a raw HTTP/1.1 client, TLS
//! fixtures and process control for the `pyrogate` binary.
//!
//! Owns: test and benchmark tooling only. Does not depend on the `pyrogate` crate: every parser
//! here (HTTP/1.1 framing, the `name` label grammar, the Push protobuf and Connect JSON, gzip
//! through `flate2`) is written for the kit from the upstream sources it cites, so that a test
//! never checks the gateway against its own code. Std threads and blocking sockets on
//! 127.0.0.1, every wait bounded; processes are stopped by PID.
//!
//! # Modules
//! - [`server`]: [`MockPyroscope`], the stand-in (`/ingest`, `/pyroscope/ingest`,
//!   `/push.v1.PusherService/Push`; plain or TLS). Build with [`MockPyroscope::builder`]:
//!   `body_limit`, `path_prefix`, `default_action`, `faults(Faults, seed)`, `tls(config)`,
//!   `accept_anything()` (a plain recording upstream), `record(false)`, `max_connections`,
//!   `handler` (answer some requests yourself), `inspector` (see and veto profile payloads).
//!   Script answers with [`MockPyroscope::script`] of [`Action`]s; read [`Recorded`] requests
//!   (`requests`, `wait_for_requests`, `wait_until`) and [`Counters`].
//! - [`rules`]: Pyroscope's verdict on one request (`judge_ingest`, `judge_push`,
//!   `validate_push`), error bodies and limits.
//! - [`faults`]: [`Faults`] and [`Latency`], seeded random answers for load tests.
//! - [`labelset`]: Go's query parsing/escaping and `labelset.Parse`/`Normalized`.
//! - [`push`]: `PushRequest` protobuf/protojson codec, base64, gRPC-Web frames, Connect error
//!   parsing, push bodies of the Python/Rust and .NET SDKs.
//! - [`gzip`]: gzip, bounded gunzip, stored-block gzip, CRC-32, a gzip bomb.
//! - [`bodies`]: [`Prng`], fake pprof, multipart writer, `/ingest` bodies of the Go, Node,
//!   Java and folded-text senders.
//! - [`http`]: request/response head and chunk-size parsers, status texts, response bytes.
//! - [`client`]: [`Client`], a raw-bytes HTTP/1.1 client with bounded reads.
//! - [`gateway`]: [`Gateway`], the `pyrogate run` child process (port-0 configs, waits for
//!   `pyrogate ready`, `/metrics`, SIGTERM by PID, stderr), logfmt and Prometheus text parsing.
//! - [`config`]: Alloy-syntax config snippets for the gateway.
//! - [`debuginfo`]: [`debuginfo::DebugInfoServer`], a stand-in for Pyroscope's debug-info
//!   service (pending uploads, 412, the upload cap), and the service's messages.
//! - [`tls`]: a test PKI, rustls settings, a CONNECT proxy stand-in, a TLS client.
//!
//! # Example
//! ```no_run
//! use testkit::{Action, MockPyroscope, config, gateway::{Driver, Gateway}};
//! let mock = MockPyroscope::start();
//! mock.script([Action::status(503)]);
//! let gw = Gateway::start(&config::single(&mock.url(), "", "", ""), Driver::Legacy, 1);
//! // ... send uploads to gw.addr() with testkit::Client, then:
//! let seen = mock.wait_for_requests(2, std::time::Duration::from_secs(10));
//! assert_eq!(seen[1].status, Some(200));
//! ```

pub mod bodies;
pub mod client;
pub mod config;
pub mod debuginfo;
pub mod faults;
pub mod gateway;
pub mod gzip;
pub mod http;
pub mod labelset;
pub mod otlp;
pub mod process;
pub mod push;
pub mod python;
pub mod rules;
pub mod server;
pub mod tls;

/// The stand-in and Pyroscope's rules under one path (`labelset`, `rules`, `server`).
pub mod upstream {
    pub use crate::labelset::*;
    pub use crate::rules::*;
    pub use crate::server::*;
}

pub use bodies::Prng;
pub use client::{Client, Response};
pub use faults::{Faults, Latency};
pub use gateway::{Driver, Gateway};
pub use server::{Action, Counters, MockPyroscope, Recorded, Truncation};
