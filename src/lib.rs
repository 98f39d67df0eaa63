//! pyrogate: a thread-per-core, zero-copy gateway for continuous-profiling uploads.
//!
//! Pyroscope SDKs upload profiles to pyrogate exactly as they would to Pyroscope or to Grafana
//! Alloy's `pyroscope.receive_http`; pyrogate rewrites the labels the way Alloy's
//! `pyroscope.write` does and delivers every upload to every configured destination.
//!
//! # Layout
//! - [`config`]: the Alloy configuration language (lexer, parser, evaluator, diagnostics,
//!   canonical formatter) and the typed model the runtime reads. Pure, cold path.
//! - [`h1`]: HTTP/1.1 wire format in both directions (request heads, chunked bodies, upstream
//!   response heads, head encoding). Pure bytes-in/values-out, fuzzed and benched.
//! - [`labels`]: Pyroscope's label-set grammar, Go-compatible query parsing and encoding, and the
//!   label rules Alloy applies on `/ingest` and Push. Pure.
//! - The runtime (worker threads, server, fan-out queues, upstream senders, capture, metrics)
//!   lives in the remaining modules and is the only code that touches monoio.

pub mod config;
pub mod h1;
pub mod labels;
