//! Hot-path cost of the `/ingest` label rewrite: parse the query, run receive_http's stage,
//! pyroscope.write's stage with three external labels, and re-encode the upstream query, for a
//! realistic Go-SDK upload. Throughput is the incoming query's bytes. `ingest_rewrite_go_sdk`
//! does the whole rewrite per upload; `ingest_rewrite_go_sdk_planned` is what a core does for
//! a label set it has seen before (`server::ingest_plans`): the query is parsed and re-encoded
//! (its `from` and `until` change every upload), the labels come from the plan.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use pyrogate::labels;
use pyrogate::server::ingest_plans::IngestPlans;

/// What pyroscope-go sends: an app name with ~8 tags plus the usual parameters.
const GO_SDK_QUERY: &[u8] = b"name=checkout.cpu%7Benv%3Dproduction%2Cregion%3Deu-west-1%2Cpod%3Dcheckout-7d9f8b6c5-x2k4q%2Cnamespace%3Dshop%2Cversion%3D1.42.3%2Cteam%3Dpayments%2Ccontainer%3Dcheckout%2Cnode%3Dip-10-0-12-34%7D&from=1700000000&until=1700000010&spyName=gospy&sampleRate=100&units=samples&aggregationType=sum&format=pprof";

fn external_labels() -> Vec<(String, String)> {
    [
        ("cluster", "prod-eu-1"),
        ("env", "prod"),
        ("source", "pyrogate"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

fn ingest_rewrite(c: &mut Criterion) {
    let external = external_labels();
    let mut group = c.benchmark_group("labels");
    group.throughput(Throughput::Bytes(GO_SDK_QUERY.len() as u64));
    group.bench_function("ingest_rewrite_go_sdk", |b| {
        b.iter(|| {
            let query = labels::parse_query(black_box(GO_SDK_QUERY));
            let received = labels::receive_stage(&query);
            let name = labels::write_stage(&received, &external).unwrap_or_default();
            black_box(labels::upstream_query(&query, &name))
        })
    });
    let plans = IngestPlans::default();
    group.bench_function("ingest_rewrite_go_sdk_planned", |b| {
        b.iter(|| {
            let query = labels::parse_query(black_box(GO_SDK_QUERY));
            let plan = plans.plan(query.first(b"name").unwrap_or_default(), 1);
            let escaped = match plan.written(0, &external) {
                Some(Ok(escaped)) => escaped,
                _ => "",
            };
            black_box(labels::upstream_query_escaped(&query, escaped))
        })
    });
    let query = labels::parse_query(GO_SDK_QUERY);
    group.bench_function("parse_query", |b| {
        b.iter(|| labels::parse_query(black_box(GO_SDK_QUERY)))
    });
    group.bench_function("receive_stage", |b| {
        b.iter(|| labels::receive_stage(black_box(&query)))
    });
    let received = labels::receive_stage(&query);
    group.bench_function("write_stage_and_encode", |b| {
        b.iter(|| {
            let name = labels::write_stage(black_box(&received), &external).unwrap_or_default();
            labels::upstream_query(&query, &name)
        })
    });
    group.finish();
}

criterion_group!(benches, ingest_rewrite);
criterion_main!(benches);
