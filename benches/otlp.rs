//! Hot-path cost of an OTLP/HTTP profiles export: decode an `ExportProfilesServiceRequest`
//! (one resource with 10 attributes, one scope, one profile, a dictionary), derive the labels
//! relabel rules see, and rewrite it for a writer with two `external_labels` (the `Resource`
//! re-encoded, everything else sliced). The profile and the dictionary are never walked or
//! copied, so the cost is the same for a 4 KiB and a 1 MiB profile.

use std::hint::black_box;

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use pyrogate::otlp::{self, Format};

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn field(number: u64, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 6);
    varint(&mut out, (number << 3) | 2);
    varint(&mut out, payload.len() as u64);
    out.extend_from_slice(payload);
    out
}

fn attribute(k: &str, v: &str) -> Vec<u8> {
    let mut kv = field(1, k.as_bytes());
    kv.extend(field(2, &field(1, v.as_bytes())));
    field(1, &kv)
}

/// An export whose profile (samples) and dictionary (strings) take about `size` bytes each.
fn request_body(size: usize) -> Bytes {
    let mut resource = Vec::new();
    for (k, v) in [
        ("service.name", "checkout"),
        ("service.version", "1.42.3"),
        ("deployment.environment", "production"),
        ("host.name", "node-17.eu-west-1.compute.internal"),
        ("k8s.namespace.name", "shop"),
        ("k8s.pod.name", "checkout-7d9f8b6c5-x2k4q"),
        ("process.executable.name", "java"),
        ("process.runtime.name", "OpenJDK Runtime Environment"),
        ("telemetry.sdk.language", "java"),
        ("env", "staging"),
    ] {
        resource.extend(attribute(k, v));
    }
    // Samples: { stack_index = 1 (varint), values = [n] (packed) }.
    let mut profile = Vec::with_capacity(size + 16);
    let mut i = 0u64;
    while profile.len() < size {
        let mut sample = vec![0x08];
        varint(&mut sample, i % 1000 + 1);
        let mut packed = Vec::new();
        varint(&mut packed, 10_000_000 * (i % 7 + 1));
        sample.extend(field(4, &packed));
        profile.extend(field(2, &sample));
        i += 1;
    }
    let mut scope = field(1, &field(1, b"pyroscope-java"));
    scope.extend(field(2, &profile));
    let mut rp = field(1, &resource);
    rp.extend(field(2, &scope));
    let mut dictionary = Vec::with_capacity(size + 16);
    let mut n = 0;
    while dictionary.len() < size {
        dictionary.extend(field(5, format!("com.example.Class{n}.method").as_bytes()));
        n += 1;
    }
    let mut body = field(1, &rp);
    body.extend(field(2, &dictionary));
    Bytes::from(body)
}

fn otlp_codec(c: &mut Criterion) {
    let external = vec![
        ("cluster".to_owned(), "prod-eu-1".to_owned()),
        ("env".to_owned(), "prod".to_owned()),
    ];
    let mut group = c.benchmark_group("otlp");
    for (name, size) in [("4KiB", 4 * 1024), ("1MiB", 1024 * 1024)] {
        let body = request_body(size);
        group.bench_with_input(
            BenchmarkId::new("decode_labels_rewrite", name),
            &body,
            |b, body| {
                b.iter(|| {
                    let export =
                        otlp::decode(Format::XProtobuf, black_box(body)).unwrap_or_default();
                    let mut n = 0;
                    for rp in &export.resources {
                        n += otlp::labels(rp).len();
                    }
                    let keep: Vec<usize> = (0..export.resources.len()).collect();
                    let parts = otlp::rewrite(Format::XProtobuf, body, &export, &keep, &external);
                    black_box((n, parts.iter().map(|p| p.len()).sum::<usize>()))
                })
            },
        );
        group.bench_with_input(BenchmarkId::new("decode", name), &body, |b, body| {
            b.iter(|| otlp::decode(Format::XProtobuf, black_box(body)))
        });
    }
    group.finish();
}

criterion_group!(benches, otlp_codec);
criterion_main!(benches);
