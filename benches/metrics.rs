//! Criterion bench of the per-request metric work the hot path adds (`pyrogate::metrics`).
//!
//! - `http_request`: what a connection does per request for Alloy's receive_http series —
//!   `begin_request` (find the `(method, route)` entry, count it in flight), then `finish`
//!   (request and response size histograms, the duration histogram of its status).
//! - `write_span_3_endpoints`: the writer's `*_total` timing of one upload delivered to three
//!   endpoints (start, three finishes), plus each endpoint's `*_endpoint` and `*_downstream`
//!   observations.
//! - `histogram_observe`: one fixed-bucket observation.
//!
//! Everything is per core `Cell` arithmetic; no I/O, no atomics.

use std::hint::black_box;
use std::rc::Rc;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use pyrogate::metrics::{
    DestMetrics, FixedHistogram, ReceiverMetrics, WRITE_LATENCY_BUCKETS, WriteLatency, WriteSpan,
    WriterMetrics,
};

fn bench(c: &mut Criterion) {
    let rx = ReceiverMetrics::default();
    // Two other routes already seen, as on a busy receiver.
    rx.begin_request("GET", "other", false).finish(404, 0, 19);
    rx.begin_request("POST", "push_v1_pusherservice", false)
        .finish(200, 900, 0);
    c.bench_function("http_request", |b| {
        b.iter(|| {
            let r = rx.begin_request(black_box("POST"), black_box("ingest"), false);
            r.finish(black_box(200), black_box(16 * 1024), 0);
        })
    });

    let writer = Rc::new(WriterMetrics::default());
    let dests: Vec<DestMetrics> = (0..3).map(|_| DestMetrics::default()).collect();
    c.bench_function("write_span_3_endpoints", |b| {
        b.iter(|| {
            let span = WriteSpan::start(&writer, WriteLatency::IngestTotal, 1, dests.len());
            for d in &dests {
                d.write_latency
                    .observe(WriteLatency::IngestDownstream, Duration::from_micros(700));
                d.write_latency
                    .observe(WriteLatency::IngestEndpoint, Duration::from_micros(800));
                span.finished(0);
            }
            black_box(span);
        })
    });

    let h = FixedHistogram::new(&WRITE_LATENCY_BUCKETS);
    c.bench_function("histogram_observe", |b| {
        b.iter(|| h.observe(black_box(0.042)))
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = bench
}
criterion_main!(benches);
