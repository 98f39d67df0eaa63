//! Criterion benches for the pure HTTP/1.1 wire code (`pyrogate::h1`), in bytes per second.
//!
//! Inputs mirror production: the request head is what pyroscope-go v1.4.2 sends to `/ingest`
//! (labelled `name`, ns timestamps, multipart Content-Type, Basic auth, tenant header), the body is
//! 1 MiB in 16 KiB chunks (what a streaming client produces), and the encoded head is the upstream
//! request a sender writes for the same upload. Runs on the system allocator (mimalloc is set only
//! in `main.rs`).

use std::hint::black_box;

use bytes::BytesMut;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use pyrogate::h1::{
    ChunkedDecoder, Limits, RequestFraming, encode_request_head, find_head_end, parse_request,
};

const GO_SDK_INGEST_HEAD: &[u8] = b"POST /ingest?name=checkout-service.cpu%7B__session_id__%3D6f1c2a9b0e7d4f35%2Cenvironment%3Dproduction%2Chostname%3Dcheckout-7d9f8b6c5-x2x4q%2Cotel.scope.name%3Dgithub.com%2Fgrafana%2Fpyroscope-go%2Cotel.scope.version%3D1.4.2%2Cprocess.runtime.name%3Dgo%2Cprocess.runtime.version%3Dgo1.24.1%2Cregion%3Deu-west-1%2Cservice_version%3D2.31.0%7D&from=1735689600000000000&until=1735689615000000000&spyName=gospy&sampleRate=100&units=samples&aggregationType=sum HTTP/1.1\r\n\
Host: alloy.monitoring.svc.cluster.local:9999\r\n\
User-Agent: Go-http-client/1.1\r\n\
Content-Length: 23841\r\n\
Authorization: Basic cHlyb3Njb3BlOnMzY3IzdC10MGszbg==\r\n\
Content-Type: multipart/form-data; boundary=0f2b4c3e5d8a7f6e9b1c0d2e3f4a5b6c7d8e9f0a1b2c3d4e5f6a7b8c9d0e\r\n\
X-Scope-Orgid: tenant-42\r\n\
Accept-Encoding: gzip\r\n\
\r\n";

const LIMITS: Limits = Limits {
    max_head_bytes: 64 * 1024,
    max_headers: 100,
};

fn request_head(c: &mut Criterion) {
    let mut group = c.benchmark_group("request_head");
    group.throughput(Throughput::Bytes(GO_SDK_INGEST_HEAD.len() as u64));
    group.bench_function("find_head_end", |b| {
        b.iter(|| find_head_end(black_box(GO_SDK_INGEST_HEAD), 0))
    });
    group.bench_function("parse_request", |b| {
        b.iter(|| parse_request(black_box(GO_SDK_INGEST_HEAD), &LIMITS))
    });
    group.finish();
}

fn chunked_body() -> Vec<u8> {
    const BODY: usize = 1024 * 1024;
    const CHUNK: usize = 16 * 1024;
    let data: Vec<u8> = (0..BODY).map(|i| (i % 251) as u8).collect();
    let mut wire = Vec::with_capacity(BODY + BODY / CHUNK * 16 + 8);
    for chunk in data.chunks(CHUNK) {
        wire.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        wire.extend_from_slice(chunk);
        wire.extend_from_slice(b"\r\n");
    }
    wire.extend_from_slice(b"0\r\n\r\n");
    wire
}

fn chunked_decode(c: &mut Criterion) {
    let wire = chunked_body();
    let mut group = c.benchmark_group("chunked_decode");
    group.throughput(Throughput::Bytes(wire.len() as u64));
    group.bench_function("1MiB_in_16KiB_chunks", |b| {
        let mut out = BytesMut::with_capacity(1024 * 1024);
        b.iter(|| {
            out.clear();
            let mut decoder = ChunkedDecoder::new(256 * 1024 * 1024);
            let progress = decoder.decode(black_box(&wire), Some(&mut out));
            assert!(matches!(progress, Ok(p) if p.done));
        })
    });
    group.finish();
}

fn encode(c: &mut Criterion) {
    let query: &[u8] = b"aggregationType=sum&from=1735689600000000000&name=checkout-service.cpu%7B__session_id__%3D6f1c2a9b0e7d4f35%2Cenvironment%3Dproduction%2Chostname%3Dcheckout-7d9f8b6c5-x2x4q%2Cotel.scope.name%3Dgithub.com%2Fgrafana%2Fpyroscope-go%2Cotel.scope.version%3D1.4.2%2Cprocess.runtime.name%3Dgo%2Cprocess.runtime.version%3Dgo1.24.1%2Cregion%3Deu-west-1%2Cservice_name%3Dcheckout-service%2Cservice_version%3D2.31.0%7D&sampleRate=100&spyName=gospy&units=samples&until=1735689615000000000";
    let headers: &[(&[u8], &[u8])] = &[
        (
            b"Content-Type",
            b"multipart/form-data; boundary=0f2b4c3e5d8a7f6e9b1c0d2e3f4a5b6c7d8e9f0a1b2c3d4e5f6a7b8c9d0e",
        ),
        (b"X-Scope-OrgID", b"tenant-42"),
        (b"Authorization", b"Basic cHlyb3Njb3BlOnMzY3IzdC10MGszbg=="),
        (b"User-Agent", b"pyrogate/0.1.0"),
    ];
    let mut probe = BytesMut::new();
    encode_request_head(
        &mut probe,
        "POST",
        b"/ingest",
        Some(query),
        "pyroscope:4040",
        headers,
        RequestFraming::Length(23841),
    );
    let mut group = c.benchmark_group("encode");
    group.throughput(Throughput::Bytes(probe.len() as u64));
    group.bench_function("encode_request_head", |b| {
        let mut dst = BytesMut::with_capacity(4096);
        b.iter(|| {
            dst.clear();
            encode_request_head(
                &mut dst,
                "POST",
                b"/ingest",
                Some(black_box(query)),
                "pyroscope:4040",
                black_box(headers),
                RequestFraming::Length(23841),
            );
        })
    });
    group.finish();
}

criterion_group!(benches, request_head, chunked_decode, encode);
criterion_main!(benches);
