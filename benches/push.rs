//! Hot-path cost of a Push request: decode a realistic SDK push (1 series, 12 labels, one
//! 60 KB `raw_profile`, a UUID `ID`) from protobuf, and encode the upstream series around the
//! untouched profile (also with Alloy's label rules in between). Throughput is the request body's bytes. The profile is never copied, so
//! the cost is the framing and labels, whatever the profile size.

use std::hint::black_box;

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use pyrogate::labels;
use pyrogate::push::{self, Sample};

const PROFILE_BYTES: usize = 60 * 1024;

fn labels() -> Vec<(String, String)> {
    [
        ("__name__", "process_cpu"),
        ("service_name", "checkout"),
        ("env", "production"),
        ("region", "eu-west-1"),
        ("pod", "checkout-7d9f8b6c5-x2k4q"),
        ("namespace", "shop"),
        ("version", "1.42.3"),
        ("team", "payments"),
        ("otel.scope.name", "com.grafana.pyroscope/rust"),
        ("otel.scope.version", "2.1.5"),
        ("process.runtime.name", "rust"),
        (
            "process.runtime.version",
            "rustc 1.95.0 (59807616e 2026-04-14)",
        ),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

fn request_body() -> Bytes {
    let profile: Vec<u8> = (0..PROFILE_BYTES).map(|i| (i * 131 % 251) as u8).collect();
    let samples = [Sample {
        raw_profile: Bytes::from(profile),
        id: "6f1c0c2e-8a4b-4e0f-9d3a-2b7c5e1f0a9d".to_owned(),
    }];
    Bytes::from(push::encode_series(&labels(), &samples).concat())
}

fn push_codec(c: &mut Criterion) {
    let body = request_body();
    let mut group = c.benchmark_group("push");
    group.throughput(Throughput::Bytes(body.len() as u64));
    group.bench_function("decode_and_encode_series", |b| {
        b.iter(|| {
            let request = push::decode_proto(black_box(&body)).unwrap_or_default();
            let mut n = 0;
            for s in &request.series {
                n += push::encoded_len(&push::encode_series(&s.labels, &s.samples));
            }
            black_box(n)
        })
    });
    // What the server does per push: decode, Alloy's label rules with two external labels,
    // encode the upstream series.
    let external = vec![
        ("cluster".to_owned(), "prod-eu-1".to_owned()),
        ("source".to_owned(), "pyrogate".to_owned()),
    ];
    group.bench_function("decode_rewrite_encode", |b| {
        b.iter(|| {
            let request = push::decode_proto(black_box(&body)).unwrap_or_default();
            let mut n = 0;
            for s in &request.series {
                let labels = labels::push_series_labels(&s.labels, &external).unwrap_or_default();
                n += push::encoded_len(&push::encode_series(&labels, &s.samples));
            }
            black_box(n)
        })
    });
    group.bench_function("decode_proto", |b| {
        b.iter(|| push::decode_proto(black_box(&body)))
    });
    let request = push::decode_proto(&body).unwrap_or_default();
    let series = &request.series[0];
    group.bench_function("encode_series", |b| {
        b.iter(|| push::encode_series(black_box(&series.labels), black_box(&series.samples)))
    });
    // JSON carries the profile as base64, so its throughput is over the JSON body.
    group.finish();

    let json = json_body(&series.samples[0].raw_profile);
    let mut group = c.benchmark_group("push_json");
    group.throughput(Throughput::Bytes(json.len() as u64));
    group.bench_function("decode_json", |b| {
        b.iter(|| push::decode_json(black_box(&json)))
    });
    group.finish();

    let gz = gzip(&body);
    let mut group = c.benchmark_group("push_gzip");
    group.throughput(Throughput::Bytes(body.len() as u64));
    group.bench_function("gunzip_bounded", |b| {
        b.iter(|| push::gunzip_bounded(black_box(&gz), 1 << 20))
    });
    group.finish();
}

fn json_body(profile: &[u8]) -> Vec<u8> {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut b64 = String::new();
    for chunk in profile.chunks(3) {
        let v = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, &x)| acc | u32::from(x) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                b64.push(char::from(ALPHABET[(v >> (18 - 6 * i) & 63) as usize]));
            } else {
                b64.push('=');
            }
        }
    }
    let labels: Vec<String> = labels()
        .iter()
        .map(|(k, v)| format!("{{\"name\":\"{k}\",\"value\":\"{v}\"}}"))
        .collect();
    format!(
        "{{\"series\":[{{\"labels\":[{}],\"samples\":[{{\"rawProfile\":\"{b64}\",\"ID\":\"6f1c0c2e-8a4b-4e0f-9d3a-2b7c5e1f0a9d\"}}]}}]}}",
        labels.join(",")
    )
    .into_bytes()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(data).unwrap_or_default();
    enc.finish().unwrap_or_default()
}

criterion_group!(benches, push_codec);
criterion_main!(benches);
