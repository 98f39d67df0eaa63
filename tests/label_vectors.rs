//! Every case of `tests/data/label-vectors.json` (produced by running Alloy's real code) checked
//! against `pyrogate::labels`. Each section reports all failing case ids at once and asserts
//! that it checked exactly as many cases as the file holds.

use pyrogate::labels::{self, ingest};
use serde_json::Value;

const VECTORS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/label-vectors.json");

fn load() -> Value {
    let text = std::fs::read_to_string(VECTORS).expect("read label-vectors.json");
    serde_json::from_str(&text).expect("parse label-vectors.json")
}

fn section<'a>(doc: &'a Value, name: &str) -> &'a [Value] {
    doc[name]
        .as_array()
        .map(Vec::as_slice)
        .expect("section is an array")
}

fn str_field<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("field {key} is a string in {v}"))
}

/// `{"k": "v", ...}` as pairs (order is irrelevant: Alloy's external labels are a Go map).
fn object_pairs(v: &Value) -> Vec<(String, String)> {
    v.as_object()
        .expect("object")
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().expect("string value").to_owned()))
        .collect()
}

/// `[["k", "v"], ...]` as pairs, in order.
fn array_pairs(v: &Value) -> Vec<(String, String)> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|p| (pair_elem(p, 0), pair_elem(p, 1)))
        .collect()
}

fn pair_elem(v: &Value, i: usize) -> String {
    v[i].as_str().expect("pair element is a string").to_owned()
}

/// Runs `check` on every case of `section`, then fails listing every failing id at once and
/// asserts that the number of cases checked equals the number in the file.
fn check_section(name: &str, check: impl Fn(&Value) -> Result<(), String>) {
    let doc = load();
    let cases = section(&doc, name);
    assert!(!cases.is_empty(), "section {name} is empty");
    let mut failures = Vec::new();
    let mut checked = 0;
    for case in cases {
        checked += 1;
        if let Err(msg) = check(case) {
            failures.push(format!("{}: {msg}", str_field(case, "id")));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} {name} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    assert_eq!(checked, cases.len(), "{name}: checked {checked} cases");
}

fn run_ingest(case: &Value) -> Result<(), String> {
    let raw = str_field(case, "query");
    let external = object_pairs(&case["external_labels"]);
    let expect = &case["expect"];
    let status = expect["status"].as_u64().ok_or("expect.status missing")?;

    let query = labels::parse_query(raw.as_bytes());
    let received = labels::receive_stage(&query);
    match labels::write_stage(&received, &external) {
        Err(e) => {
            if status != 500 || expect["upstream"] != "none" {
                return Err(format!("unexpected error {:?}", e.to_string()));
            }
            let wanted = "invalid labels in profile: service name is required";
            if e.to_string() != wanted || ingest::InvalidLabels::HTTP_STATUS != 500 {
                return Err(format!("error {:?}, want {wanted:?}", e.to_string()));
            }
            Ok(())
        }
        Ok(name) => {
            if status != 200 {
                return Err(format!("got name {name:?}, want status {status}"));
            }
            // endpoint_query is deliberately unused: Alloy discards the endpoint URL's own
            // query string and builds the upstream query from the incoming one only.
            let endpoint_path = case["endpoint_path"].as_str().unwrap_or("");
            let path = labels::join_path(endpoint_path, "/ingest");
            let upstream_query = labels::upstream_query(&query, &name);
            let want_path = str_field(expect, "upstream_path");
            let want_query = str_field(expect, "upstream_query");
            if path != want_path {
                return Err(format!("path {path:?}, want {want_path:?}"));
            }
            if upstream_query != want_query {
                return Err(format!("query {upstream_query:?}, want {want_query:?}"));
            }
            Ok(())
        }
    }
}

fn run_labelset(case: &Value) -> Result<(), String> {
    let input = str_field(case, "input");
    let expect = &case["expect"];
    match (labels::parse(input), expect.get("error")) {
        (Ok(set), None) => {
            let mut want = object_pairs(&expect["labels"]);
            want.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            let got: Vec<(String, String)> = set
                .iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect();
            if got != want {
                return Err(format!("labels {got:?}, want {want:?}"));
            }
            let want_norm = str_field(expect, "normalized");
            if set.normalized() != want_norm {
                return Err(format!(
                    "normalized {:?}, want {want_norm:?}",
                    set.normalized()
                ));
            }
            Ok(())
        }
        (Err(e), Some(want)) => {
            let want = want.as_str().ok_or("error is not a string")?;
            if e.to_string() != want {
                return Err(format!("error {:?}, want {want:?}", e.to_string()));
            }
            Ok(())
        }
        (Ok(set), Some(want)) => Err(format!("parsed {:?}, want error {want}", set.normalized())),
        (Err(e), None) => Err(format!("unexpected error {:?}", e.to_string())),
    }
}

fn run_push(case: &Value) -> Result<(), String> {
    let labels_in = array_pairs(&case["labels_in"]);
    let external = object_pairs(&case["external_labels"]);
    let expect = &case["expect"];
    match (
        labels::push_series_labels(&labels_in, &external),
        expect.get("error"),
    ) {
        (Ok(got), None) => {
            let want = array_pairs(&expect["labels_out"]);
            if got != want {
                return Err(format!("labels {got:?}, want {want:?}"));
            }
            Ok(())
        }
        (Err(e), Some(want)) => {
            let want = want.as_str().ok_or("error is not a string")?;
            if e.write_error() != want {
                return Err(format!("error {:?}, want {want:?}", e.write_error()));
            }
            let want_msg = str_field(expect, "client_message");
            if e.client_message() != want_msg {
                return Err(format!(
                    "client message {:?}, want {want_msg:?}",
                    e.client_message()
                ));
            }
            let want_code = str_field(expect, "connect_code");
            if labels::PushLabelError::CONNECT_CODE != want_code {
                return Err(format!("connect code, want {want_code:?}"));
            }
            Ok(())
        }
        (Ok(got), Some(want)) => Err(format!("got labels {got:?}, want error {want}")),
        (Err(e), None) => Err(format!("unexpected error {:?}", e.write_error())),
    }
}

#[test]
fn ingest_vectors_match_alloy() {
    check_section("ingest", run_ingest);
}

#[test]
fn labelset_vectors_match_pyroscope_parser() {
    check_section("labelset", run_labelset);
}

#[test]
fn push_vectors_match_alloy() {
    check_section("push", run_push);
}
