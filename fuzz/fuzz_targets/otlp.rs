//! Arbitrary bytes through the OTLP profiles decoders (`pyrogate::otlp`, protobuf and JSON):
//! none may panic. Whatever decodes must survive a rewrite — every element kept and every
//! other one, with and without attributes to set — into a body that decodes again to the kept
//! elements, each with the attributes the rewrite promises (the others' in order, minus the
//! replaced keys, then the new ones); a protobuf rewrite that keeps everything and sets nothing
//! is the body itself. Error bodies must be well-formed for any message.
#![no_main]

use bytes::Bytes;
use pyrogate::otlp::{self, Attribute, Export, Format, StatusCode};

fn expected(before: &[Attribute], set: &[(String, String)]) -> Vec<Attribute> {
    let mut out: Vec<Attribute> = before
        .iter()
        .filter(|a| !set.iter().any(|(k, _)| *k == a.key))
        .cloned()
        .collect();
    out.extend(set.iter().filter(|(_, v)| !v.is_empty()).map(|(k, v)| Attribute {
        key: k.clone(),
        string_value: Some(v.clone()),
    }));
    out
}

fn check(format: Format, body: &Bytes, export: &Export, set: &[(String, String)]) {
    let n = export.resources.len();
    let all: Vec<usize> = (0..n).collect();
    let odd: Vec<usize> = (0..n).filter(|i| i % 2 == 1).collect();
    for keep in [&all, &odd] {
        if keep.is_empty() {
            continue;
        }
        let parts = otlp::rewrite(format, body, export, keep, set);
        let out = Bytes::from(parts.concat());
        if !format.is_json() && set.is_empty() && keep.len() == n {
            assert_eq!(out, *body);
        }
        let again = otlp::decode(format, &out).expect("a rewrite decodes");
        assert_eq!(again.resources.len(), keep.len());
        for (got, &i) in again.resources.iter().zip(keep.iter()) {
            let before = &export.resources[i];
            assert_eq!(got.profiles, before.profiles);
            let want = if set.is_empty() {
                before.attributes.clone()
            } else {
                expected(&before.attributes, set)
            };
            assert_eq!(got.attributes, want);
        }
    }
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let body = Bytes::copy_from_slice(data);
    // Attributes to set, from the input's first bytes: a fixed key and one the input names.
    let text = String::from_utf8_lossy(data.get(..8).unwrap_or(data)).into_owned();
    let sets = [
        Vec::new(),
        vec![("env".to_string(), "prod".to_string()), (text.clone(), String::new())],
        vec![("service.name".to_string(), text.clone())],
    ];
    for format in [Format::XProtobuf, Format::Json] {
        match otlp::decode(format, &body) {
            Ok(export) => {
                for rp in &export.resources {
                    let labels = otlp::labels(rp);
                    assert!(labels.windows(2).all(|w| w[0].0 < w[1].0));
                }
                for set in &sets {
                    check(format, &body, &export, set);
                }
            }
            Err(e) => drop(e.to_string()),
        }
        let _ = otlp::status_body(format, StatusCode::InvalidArgument, &text);
    }
    let _ = Format::classify(data);
});
