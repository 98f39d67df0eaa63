//! Heap allocations per upload on the hot path, counted by a counting global allocator
//! (`stats_alloc` around the system allocator).
//!
//! Not a timing bench: it prints, per `/ingest` upload, how many allocations (and bytes) the
//! receiving core makes from a parsed request head to one queued item per destination
//! (`server::ingest::handle`: query parse, receive_http's `service_name` rule, the
//! per-writer label rewrite, the upstream target per destination, fan-out), then for a sender
//! popping and finishing each item, and for encoding each upstream request head
//! (`h1::encode_request_head` with the headers a sender writes). Fan-out 1, 2 and 8, with and
//! without a `pyroscope.relabel` stage (whose per-core cache is warm after the first upload).
//! The request head parse is counted alone (`h1::parse_request`: one allocation, its vector
//! of header ranges; names and values stay in the received buffer). `/ingest` label work is
//! kept per `name` value on each core (`server::ingest_plans`), so after the warm-up upload
//! the label parse, validation and render cost nothing.
//!
//! Run: `cargo bench --bench allocs`. Counts are exact and do not depend on machine load.

use std::alloc::System;
use std::cell::Cell;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use pyrogate::config::{self, ProcessEnvironment};
use pyrogate::h1;
use pyrogate::pipeline::Components;
use pyrogate::server::{ConnSlots, ReceiverRt, ingest};
use stats_alloc::{INSTRUMENTED_SYSTEM, StatsAlloc};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Allocations (reallocations included) and bytes allocated so far.
fn totals() -> (u64, u64) {
    let s = GLOBAL.stats();
    (
        (s.allocations + s.reallocations) as u64,
        (s.bytes_allocated + s.bytes_reallocated.max(0) as usize) as u64,
    )
}

/// Allocations and bytes made while `f` runs.
fn counted<T>(f: impl FnOnce() -> T) -> (T, u64, u64) {
    let (a, b) = totals();
    let out = f();
    let (a2, b2) = totals();
    (out, a2 - a, b2 - b)
}

/// What pyroscope-go sends: an app name with ~8 tags plus the usual parameters.
const HEAD: &[u8] = b"POST /ingest?name=checkout.cpu%7Benv%3Dproduction%2Cregion%3Deu-west-1%2Cpod%3Dcheckout-7d9f8b6c5-x2k4q%2Cnamespace%3Dshop%2Cversion%3D1.42.3%2Cteam%3Dpayments%7D&from=1700000000&until=1700000010&spyName=gospy&sampleRate=100&units=samples&aggregationType=sum&format=pprof HTTP/1.1\r\nHost: pyrogate:4040\r\nUser-Agent: Go-http-client/1.1\r\nContent-Length: 16384\r\nContent-Type: multipart/form-data; boundary=a1b2c3d4e5f6\r\nAccept-Encoding: gzip\r\n\r\n";

fn config_text(fanout: usize, relabel: bool) -> String {
    let endpoints: String = (0..fanout)
        .map(|i| {
            format!(
                "  endpoint {{\n    url = \"http://127.0.0.1:{}\"\n  }}\n",
                4040 + i
            )
        })
        .collect();
    let first = if relabel {
        "pyroscope.relabel.clean.receiver"
    } else {
        "pyroscope.write.w.receiver"
    };
    let mut cfg = format!(
        "pyroscope.receive_http \"default\" {{\n  forward_to  = [{first}]\n  acknowledge = \"enqueued\"\n}}\npyroscope.write \"w\" {{\n{endpoints}  external_labels = {{ cluster = \"prod-eu-1\", env = \"prod\", source = \"pyrogate\" }}\n}}\n"
    );
    if relabel {
        cfg.push_str("pyroscope.relabel \"clean\" {\n  forward_to = [pyroscope.write.w.receiver]\n  rule {\n    action = \"labeldrop\"\n    regex  = \"pod\"\n  }\n}\n");
    }
    cfg
}

/// Per-upload figures of one setup, averaged over `n` uploads after one warm-up upload.
struct Row {
    handle: (f64, f64),
    pop_finish: (f64, f64),
    encode_head: (f64, f64),
}

fn measure(fanout: usize, relabel: bool, n: u64) -> Row {
    let cfg = config::load_str(
        "bench.alloy",
        &config_text(fanout, relabel),
        &ProcessEnvironment,
    )
    .expect("valid config")
    .config;
    let components = Components::unresolved(&cfg).expect("destinations");
    let r = &cfg.receivers[0];
    let rx = ReceiverRt::new(
        0,
        r,
        std::sync::Arc::new(ConnSlots::new(0)),
        components.pipeline(&r.forward_to),
        None,
        None,
    );
    let head_bytes = Bytes::from_static(HEAD);
    let body = Bytes::from(vec![0x5au8; 16384]);
    let mut rt = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
        .enable_timer()
        .build()
        .expect("monoio runtime");
    let sums = [
        Cell::new((0u64, 0u64)),
        Cell::new((0, 0)),
        Cell::new((0, 0)),
    ];
    let add = |i: usize, a: u64, b: u64| {
        let (x, y) = sums[i].get();
        sums[i].set((x + a, y + b));
    };
    rt.block_on(async {
        for round in 0..=n {
            let head = h1::parse_request(&head_bytes, &rx.limits)
                .expect("valid head")
                .expect("complete head");
            let deadline = Instant::now() + Duration::from_secs(5);
            let a0 = totals();
            let reply = ingest::handle(&rx, &head, &head_bytes, body.clone(), None, deadline).await;
            let a1 = totals();
            assert_eq!(reply.status, 200);
            let mut items = Vec::new();
            for d in components.destinations() {
                items.push(d.queue.pop().await.expect("one item per destination"));
            }
            let mut out = BytesMut::with_capacity(1024);
            let (_, ea, eb) = counted(|| {
                for item in &items {
                    let (path, query) = item.target.split_once('?').unwrap_or((&item.target, ""));
                    let headers: Vec<(&[u8], &[u8])> = item
                        .upload
                        .headers
                        .iter()
                        .map(|(n, v)| (&n[..], &v[..]))
                        .chain([(&b"User-Agent"[..], &b"pyrogate/0.1.0"[..])])
                        .collect();
                    out.clear();
                    h1::encode_request_head(
                        &mut out,
                        "POST",
                        path.as_bytes(),
                        Some(query.as_bytes()),
                        "127.0.0.1:4040",
                        &headers,
                        h1::RequestFraming::Length(16384),
                    );
                }
            });
            let (_, fa, fb) = counted(|| {
                for item in items {
                    item.finish(Ok(()));
                }
            });
            if round > 0 {
                add(0, a1.0 - a0.0, a1.1 - a0.1);
                add(1, fa, fb);
                add(2, ea, eb);
            }
        }
    });
    let per = |i: usize| {
        let (a, b) = sums[i].get();
        (a as f64 / n as f64, b as f64 / n as f64)
    };
    Row {
        handle: per(0),
        pop_finish: per(1),
        encode_head: per(2),
    }
}

fn main() {
    // `cargo bench` passes `--bench`; a filter or `--test` (from `cargo test --benches`) runs a
    // short version.
    let quick = std::env::args().any(|a| a == "--test");
    let n = if quick { 10 } else { 1000 };
    let limits = h1::Limits {
        max_head_bytes: 16 * 1024,
        max_headers: 100,
    };
    let head_bytes = Bytes::from_static(HEAD);
    let (_, pa, _) = counted(|| h1::parse_request(&head_bytes, &limits));
    println!(
        "allocations per /ingest upload (Go SDK head, 16 KiB body), {n} uploads after one warm-up"
    );
    println!("h1::parse_request: {pa} allocations");
    println!(
        "{:<22} {:>22} {:>24} {:>26}",
        "setup", "ingest::handle", "senders pop + finish", "upstream heads (all dests)"
    );
    for relabel in [false, true] {
        for fanout in [1usize, 2, 8] {
            let r = measure(fanout, relabel, n);
            let f = |(a, b): (f64, f64)| format!("{a:.1} ({b:.0} B)");
            println!(
                "{:<22} {:>22} {:>24} {:>26}",
                format!(
                    "fan-out {fanout}{}",
                    if relabel { " + relabel" } else { "" }
                ),
                f(r.handle),
                f(r.pop_finish),
                f(r.encode_head)
            );
        }
    }
}
