//! The relabel engine: arbitrary rule specs through `Rule::new` (which compiles the regex with
//! the Go-regex front end, `src/relabel/goregex.rs`, so arbitrary regex text reaches it), then
//! `process` over arbitrary label sets. Nothing may panic; a kept label set must be a valid
//! `labels.Labels` (names strictly sorted by bytes, no empty values); the per-core cache must
//! give `process`'s answer, from the cache the second time.
//!
//! Input (lossy UTF-8), one record per line; rule lines until the first empty line, label-set
//! lines after it:
//! - rule: `action TAB regex TAB sources TAB separator TAB target TAB replacement TAB modulus`,
//!   sources separated by `,`; missing fields keep Alloy's defaults; a line of one field is
//!   used as a `replace` rule's regex (so bare regex text is a useful input too);
//! - label set: `name=value` pairs separated by TAB.
#![no_main]

use pyrogate::relabel::{self, Action, Labels, Rule, RuleSpec, cache::Outcome, cache::Relabeler};

/// Most rules and label sets per input: keeps one execution short.
const MAX_RULES: usize = 8;
const MAX_SETS: usize = 8;

fn spec(line: &str) -> Option<RuleSpec> {
    let fields: Vec<&str> = line.split('\t').collect();
    let mut spec = RuleSpec::default();
    if let [regex] = fields.as_slice() {
        spec.regex = (*regex).to_owned();
        spec.target_label = "t".to_owned();
        return Some(spec);
    }
    let mut it = fields.into_iter();
    let action = it.next()?;
    spec.action = match Action::parse(action) {
        Ok(a) => a,
        Err(e) => {
            assert_eq!(e.field(), "action");
            let _ = e.to_string();
            return None;
        }
    };
    if let Some(regex) = it.next() {
        spec.regex = regex.to_owned();
    }
    if let Some(sources) = it.next() {
        spec.source_labels = sources
            .split(',')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
    }
    if let Some(separator) = it.next() {
        spec.separator = separator.to_owned();
    }
    if let Some(target) = it.next() {
        spec.target_label = target.to_owned();
    }
    if let Some(replacement) = it.next() {
        spec.replacement = replacement.to_owned();
    }
    if let Some(modulus) = it.next() {
        spec.modulus = modulus.trim().parse().unwrap_or(u64::MAX);
    }
    Some(spec)
}

/// A label set as Prometheus holds one: sorted by name, later duplicates winning, empty values
/// dropped.
fn label_set(line: &str) -> Labels {
    let mut labels: Labels = Vec::new();
    for pair in line.split('\t') {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        labels.retain(|(n, _)| n != name);
        if !value.is_empty() {
            labels.push((name.to_owned(), value.to_owned()));
        }
    }
    labels.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    labels
}

fn assert_valid(labels: &Labels) {
    assert!(
        labels.windows(2).all(|w| w[0].0.as_bytes() < w[1].0.as_bytes()),
        "names not strictly sorted: {labels:?}"
    );
    assert!(labels.iter().all(|(_, v)| !v.is_empty()), "empty value: {labels:?}");
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (rules_text, sets_text) = text.split_once("\n\n").unwrap_or((&text, ""));
    let mut rules = Vec::new();
    for line in rules_text.lines().take(MAX_RULES) {
        let Some(spec) = spec(line) else { continue };
        match Rule::new(spec.clone()) {
            Ok(rule) => {
                assert_eq!(rule.spec(), &spec);
                rules.push(rule);
            }
            Err(e) => {
                let _ = (e.to_string(), e.field());
            }
        }
    }
    let mut cache = Relabeler::new(rules.clone(), 4);
    for line in sets_text.lines().take(MAX_SETS) {
        let input = label_set(line);
        let mut labels = input.clone();
        let kept = relabel::process(&rules, &mut labels);
        if kept {
            assert_valid(&labels);
        }
        let borrowed: Vec<(&str, &str)> =
            input.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
        if input.is_empty() {
            continue; // forwarded without relabelling
        }
        let expected = if kept {
            Outcome::Keep(std::rc::Rc::new(labels))
        } else {
            Outcome::Drop
        };
        let (first, _) = cache.relabel(&borrowed);
        assert_eq!(first, expected);
        let (second, cached) = cache.relabel(&borrowed);
        assert!(cached, "a repeated label set comes from the cache");
        assert_eq!(second, expected);
    }
});
