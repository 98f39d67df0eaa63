//! Criterion bench of fan-out dispatch (`pyrogate::fanout::dispatch`) to 1, 3 and 8
//! destinations, in bytes of upload body per second.
//!
//! One iteration is what a core does per upload after the body is read: build one `Outbound`
//! per destination around the same body `Bytes` (a reference count each, no copy), queue them
//! with `dispatch`, then — standing in for the senders — pop each destination's copy and finish
//! it, which completes the upload's ticket. Network I/O is excluded on purpose: this is the
//! per-destination cost the gateway adds on the hot path. The body is 16 KiB, a typical Go SDK
//! upload (pyroscope-go `upstream/remote/remote.go`, one gzip'd pprof per profile type). Runs
//! inside one monoio runtime
//! (legacy driver, timers on), as a core thread does; iterations are timed inside it.

use std::hint::black_box;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use pyrogate::config::{Endpoint, EndpointUrl};
use pyrogate::fanout::dispatch;
use pyrogate::upload::{Outbound, Payload, Ticket, Upload};
use pyrogate::upstream::Destination;

/// Bytes of the upload body.
const BODY_BYTES: usize = 16 * 1024;

fn endpoint(i: usize) -> Endpoint {
    let port = 4040 + i as u16;
    let url = EndpointUrl::Http {
        tls: false,
        host: "127.0.0.1".into(),
        port,
        path: String::new(),
    };
    Endpoint {
        max_backoff_retries: 1,
        senders_per_core: 1,
        ..Endpoint::new(url, format!("http://127.0.0.1:{port}"))
    }
}

fn fanout(c: &mut Criterion) {
    let mut rt = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
        .enable_timer()
        .build()
        .expect("monoio runtime");
    let body = Bytes::from(vec![0x5au8; BODY_BYTES]);
    let target = "/ingest?from=1700000000&name=checkout.cpu%7Benv%3Dprod%2Cservice_name%3Dcheckout%7D&until=1700000010";
    let mut group = c.benchmark_group("fanout_dispatch");
    group.throughput(Throughput::Bytes(BODY_BYTES as u64));
    for n in [1usize, 3, 8] {
        let dests: Vec<Rc<Destination>> = (0..n)
            .map(|i| Rc::new(Destination::new(&endpoint(i), 0, vec![]).expect("destination")))
            .collect();
        group.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, &n| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let start = Instant::now();
                    for _ in 0..iters {
                        let upload = Rc::new(Upload {
                            headers: vec![],
                            ticket: Ticket::new(n),
                            received_at: Instant::now(),
                            reservation: None,
                        });
                        let items = dests
                            .iter()
                            .map(|d| {
                                (
                                    d.clone(),
                                    Outbound::ingest(
                                        upload.clone(),
                                        target.to_string(),
                                        Payload::Whole(body.clone()),
                                    ),
                                )
                            })
                            .collect();
                        let deadline = Instant::now() + Duration::from_secs(1);
                        let accepted = dispatch(items, deadline).await;
                        assert_eq!(accepted, n);
                        for d in &dests {
                            if let Some(item) = d.queue.pop().await {
                                item.finish(Ok(()));
                            }
                        }
                        assert!(upload.ticket.is_done());
                        black_box(upload.ticket.verdict());
                    }
                    start.elapsed()
                })
            })
        });
    }
    group.finish();
}

criterion_group!(benches, fanout);
criterion_main!(benches);
