//! pyrogate: a thread-per-core, zero-copy gateway for continuous-profiling uploads.
//!
//! Pyroscope SDKs upload profiles to pyrogate exactly as they would to Pyroscope or to Grafana
//! Alloy's `pyroscope.receive_http`; pyrogate rewrites the labels the way Alloy's
//! `pyroscope.write` does and delivers every upload to every configured destination.
//!
//! # Layout
//! - [`config`]: the Alloy configuration language (lexer, parser, evaluator, diagnostics,
//!   canonical formatter) and the typed model the runtime reads. Pure, cold path.
//! - [`h1`]: HTTP/1.1 wire format in both directions. Pure bytes-in/values-out.
//! - [`labels`]: Pyroscope's label-set grammar, Go-compatible query parsing and encoding, and
//!   the label rules Alloy applies on `/ingest` and Push. Pure.
//! - [`relabel`]: Prometheus' relabelling rules (`pyroscope.relabel`) and their cache. Pure.
//! - [`debuginfo`]: the eBPF debug-info service's routes, upstream paths and message fields.
//!   Pure. `server::debuginfo` proxies the service (`upstream::debuginfo` sends each call).
//! - [`gateway`] (main thread) starts [`worker`] core threads; each core runs [`server`]
//!   (accept, HTTP/1.1 connections, the `/ingest` and Push ends), [`pipeline`] (the component
//!   graph of each receiver and the one delivery path), [`fanout`] (admission to the
//!   per-destination queues) and [`upstream`] (sender pools, retries, keep-alive connections,
//!   [`capture`] files). [`admin`] serves `/metrics` from [`metrics`] snapshots, the
//!   status page rendered by [`status`], and `/-/reload`; [`reload`] re-reads the config file
//!   (also on `SIGHUP`) and hands each core a plan to apply.
//! - [`spool`]: the durable spill-over of uploads a destination could not take (record codec,
//!   segment files on the blocking pool); `upstream::replay` fills and drains it.
//! - Leaves shared by those: [`upload`] (what crosses from handler to sender), [`budget`] (the
//!   in-flight byte budget), [`sync`] (per-core `Notify`, `Shutdown`, `Queue`), [`io`] (reads,
//!   the vectored write, the driver choice), [`secrets`] (rotating credentials), [`tls`].
//!   `tests/module_dag.rs` fails on any dependency cycle between these modules.
//!
//! # Data flow on one core
//! ```text
//!  accept ─► conn: read head (h1) ─► route ─► reserve budget ─► read body into one Bytes
//!        ─► ingest/push: labels ─► pipeline: relabel stages ─► writers reached
//!        ─► deliver: Outbound{Bytes clone} per endpoint
//!        ─► fanout::dispatch ─┬─► queue[A] ─► senders ×N ─► keep-alive conns ─► upstream A
//!                             └─► queue[B] ─► senders ×N ─► capture segment (blocking pool)
//!  ◄── reply: on enqueue (acknowledge="enqueued") or after every destination (Alloy's default)
//! ```
//! Nothing mutable is shared between cores: per-core state is `Rc`/`Cell`. Cross-core traffic
//! is only shutdown, configuration reloads and metrics snapshots (crossbeam-channel plus a
//! socketpair wake-up). DNS, file writes and secret files run on monoio's blocking pool, never
//! on a core thread.
//!
//! # Policies
//! - Acknowledgement: by default the client's response waits for every destination (Alloy);
//!   `acknowledge = "enqueued"` answers once every destination's queue holds the upload.
//! - Full queue: a request waits up to `queue_wait_timeout` for room; a destination still full
//!   then drops its copy (counted, logged) while the others proceed; a request no destination
//!   took gets 503 with `Retry-After`. The byte budget is reserved before a body is read.

pub mod admin;
pub mod budget;
pub mod capture;
pub mod cli;
pub mod config;
pub mod debuginfo;
pub mod fanout;
pub mod gateway;
pub mod h1;
pub mod io;
pub mod labels;
pub mod logging;
pub mod memory;
pub mod metrics;
pub mod otlp;
pub mod pipeline;
pub mod push;
pub mod relabel;
pub mod reload;
pub mod secrets;
pub mod server;
pub mod spool;
pub mod status;
pub mod sync;
pub mod tls;
pub mod upload;
pub mod upstream;
pub mod worker;

/// One line per receiver describing its resolved pipeline, e.g.
/// `pyroscope.receive_http.default (0.0.0.0:9999) -> pyroscope.write.backend [http://pyroscope:4040]`;
/// a relabel stage shows what it forwards to:
/// `... -> pyroscope.relabel.clean -> (pyroscope.write.a [..], pyroscope.write.b [..])`.
pub fn pipeline_summary(config: &config::Config) -> Vec<String> {
    fn target(config: &config::Config, t: config::Target) -> String {
        match t {
            config::Target::Writer(w) => {
                let wr = &config.writers[w];
                let eps: Vec<&str> = wr.endpoints.iter().map(|e| e.url_text.as_str()).collect();
                format!("pyroscope.write.{} [{}]", wr.label, eps.join(", "))
            }
            config::Target::Relabel(r) => {
                let rl = &config.relabels[r];
                let next: Vec<String> = rl.forward_to.iter().map(|&t| target(config, t)).collect();
                match next.as_slice() {
                    [one] => format!("pyroscope.relabel.{} -> {one}", rl.label),
                    _ => format!("pyroscope.relabel.{} -> ({})", rl.label, next.join(", ")),
                }
            }
        }
    }
    config
        .receivers
        .iter()
        .map(|r| {
            let targets: Vec<String> = r.forward_to.iter().map(|&t| target(config, t)).collect();
            format!(
                "pyroscope.receive_http.{} ({}) -> {}",
                r.label,
                r.http.listen,
                targets.join(", ")
            )
        })
        .collect()
}
