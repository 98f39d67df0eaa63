//! Cost of `pyroscope.relabel` on a realistic profile label set: the rules cold (`process`)
//! and a per-core cache hit (`Relabeler::relabel`). Owns only the benchmark; the engine lives in
//! `pyrogate::relabel`.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use pyrogate::relabel::{Action, Labels, Rule, RuleSpec, cache::Relabeler, process};

/// Ten labels as a Go SDK upload carries them after receive_http.
const LABELS: &[(&str, &str)] = &[
    ("__name__", "process_cpu"),
    ("container", "checkout"),
    ("env", "production"),
    ("namespace", "shop"),
    ("node", "ip-10-0-12-34"),
    ("pod", "checkout-7d9f8b6c5-x2k4q"),
    ("region", "eu-west-1"),
    ("service_name", "checkout"),
    ("team", "payments"),
    ("version", "1.42.3"),
];

fn rules() -> Vec<Rule> {
    let specs = [
        RuleSpec {
            source_labels: vec!["namespace".into(), "service_name".into()],
            separator: "/".into(),
            target_label: "app".into(),
            ..RuleSpec::default()
        },
        RuleSpec {
            regex: "node|version".into(),
            action: Action::LabelDrop,
            ..RuleSpec::default()
        },
        RuleSpec {
            source_labels: vec!["env".into()],
            regex: "production|staging".into(),
            action: Action::Keep,
            ..RuleSpec::default()
        },
        RuleSpec {
            source_labels: vec!["pod".into()],
            target_label: "shard".into(),
            modulus: 8,
            action: Action::HashMod,
            ..RuleSpec::default()
        },
        RuleSpec {
            source_labels: vec!["region".into()],
            target_label: "region".into(),
            action: Action::Uppercase,
            ..RuleSpec::default()
        },
    ];
    specs
        .into_iter()
        .map(|s| Rule::new(s).expect("valid rule"))
        .collect()
}

fn owned() -> Labels {
    LABELS
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn relabel(c: &mut Criterion) {
    let rules = rules();
    let mut group = c.benchmark_group("relabel");
    group.bench_function("process_five_rules_cold", |b| {
        b.iter_batched(
            owned,
            |mut labels| {
                let keep = process(black_box(&rules), &mut labels);
                black_box((keep, labels))
            },
            criterion::BatchSize::SmallInput,
        )
    });
    let mut relabeler = Relabeler::new(rules.clone(), 10_000);
    relabeler.relabel(LABELS);
    group.bench_function("relabeler_cache_hit", |b| {
        b.iter(|| black_box(relabeler.relabel(black_box(LABELS))))
    });
    group.finish();
}

criterion_group!(benches, relabel);
criterion_main!(benches);
