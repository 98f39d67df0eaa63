//! Differential target for the `name` label-set parser: `pyrogate::labels::parse_bytes` against
//! a second, independent implementation of Pyroscope's `api/model/labelset` `Parse` written
//! here, rune by rune, the way the Go source reads:
//!
//! ```go
//! for _, r := range name + "{" {
//!     switch p.parserState {
//!     case nameParserState:   '{' → TrimSpace(value), ValidateServiceName, labels["__name__"]=…, key state
//!     case tagKeyParserState: '}' → done; '=' → value state, value.Reset(); else key += r
//!     case tagValueParserState: ',' or '}' → key state; k := TrimSpace(key); unless k is
//!                               "__name__", ValidateLabelName(k); labels[k] = TrimSpace(value);
//!                               key.Reset(); else value += r
//!     }
//! }
//! ```
//!
//! Nothing of pyrogate's is reused: the UTF-8 decoding (Go's `utf8.DecodeRune`: every byte of an
//! invalid sequence is one U+FFFD), `strings.TrimSpace`'s space set (`unicode.IsSpace`, written
//! out as a table), the rune classes and the map are all local. The two must agree on accept or
//! reject, on the error (kind, name and rune), on every label, and on `Normalized()`.
#![no_main]

use std::collections::BTreeMap;

use pyrogate::labels::{self, LabelsetError};

const RUNE_ERROR: char = '\u{FFFD}';

/// Go's `utf8.DecodeRune`: `(RuneError, 1)` for any invalid or truncated sequence.
fn decode_rune(b: &[u8]) -> (char, usize) {
    let b0 = b[0];
    if b0 < 0x80 {
        return (char::from(b0), 1);
    }
    // (continuation bytes needed, accepted range of the second byte, payload bits of b0)
    let (need, lo, hi, init) = match b0 {
        0xC2..=0xDF => (1, 0x80, 0xBF, u32::from(b0 & 0x1F)),
        0xE0 => (2, 0xA0, 0xBF, u32::from(b0 & 0x0F)),
        0xE1..=0xEC | 0xEE..=0xEF => (2, 0x80, 0xBF, u32::from(b0 & 0x0F)),
        0xED => (2, 0x80, 0x9F, u32::from(b0 & 0x0F)),
        0xF0 => (3, 0x90, 0xBF, u32::from(b0 & 0x07)),
        0xF1..=0xF3 => (3, 0x80, 0xBF, u32::from(b0 & 0x07)),
        0xF4 => (3, 0x80, 0x8F, u32::from(b0 & 0x07)),
        _ => return (RUNE_ERROR, 1),
    };
    if b.len() < 1 + need {
        return (RUNE_ERROR, 1);
    }
    if !(lo..=hi).contains(&b[1]) {
        return (RUNE_ERROR, 1);
    }
    let mut cp = init;
    for (i, &c) in b[1..=need].iter().enumerate() {
        if i > 0 && !(0x80..=0xBF).contains(&c) {
            return (RUNE_ERROR, 1);
        }
        cp = (cp << 6) | u32::from(c & 0x3F);
    }
    (char::from_u32(cp).unwrap_or(RUNE_ERROR), 1 + need)
}

/// `for _, r := range s` over a Go byte string.
fn go_runes(mut b: &[u8]) -> Vec<char> {
    let mut out = Vec::with_capacity(b.len());
    while !b.is_empty() {
        let (r, n) = decode_rune(b);
        out.push(r);
        b = &b[n..];
    }
    out
}

/// Go's `unicode.IsSpace`: the Latin-1 list plus the `White_Space` property, written out.
fn go_is_space(r: char) -> bool {
    matches!(
        r,
        '\t' | '\n'
            | '\u{0B}'
            | '\u{0C}'
            | '\r'
            | ' '
            | '\u{85}'
            | '\u{A0}'
            | '\u{1680}'
            | '\u{2000}'..='\u{200A}'
            | '\u{2028}'
            | '\u{2029}'
            | '\u{202F}'
            | '\u{205F}'
            | '\u{3000}'
    )
}

/// `strings.TrimSpace` over runes.
fn go_trim_space(runes: &[char]) -> String {
    let start = runes.iter().position(|&r| !go_is_space(r));
    let Some(start) = start else {
        return String::new();
    };
    let end = runes.iter().rposition(|&r| !go_is_space(r)).map_or(start, |e| e + 1);
    runes[start..end].iter().collect()
}

fn label_rune_allowed(r: char) -> bool {
    r.is_ascii_lowercase() || r.is_ascii_uppercase() || r.is_ascii_digit() || r == '_' || r == '.'
}

fn service_rune_allowed(r: char) -> bool {
    label_rune_allowed(r) || r == '-' || r == '/'
}

#[derive(Debug, PartialEq, Eq)]
enum GoError {
    ServiceNameRequired,
    InvalidServiceName(String, char),
    LabelNameRequired,
    InvalidLabelName(String, char),
    LabelNameReserved(String),
}

impl From<LabelsetError> for GoError {
    fn from(e: LabelsetError) -> Self {
        match e {
            LabelsetError::ServiceNameRequired => GoError::ServiceNameRequired,
            LabelsetError::InvalidServiceName { name, ch } => GoError::InvalidServiceName(name, ch),
            LabelsetError::LabelNameRequired => GoError::LabelNameRequired,
            LabelsetError::InvalidLabelName { name, ch } => GoError::InvalidLabelName(name, ch),
            LabelsetError::LabelNameReserved(name) => GoError::LabelNameReserved(name),
        }
    }
}

fn validate_service_name(n: &str) -> Result<(), GoError> {
    if n.is_empty() {
        return Err(GoError::ServiceNameRequired);
    }
    match n.chars().find(|&r| !service_rune_allowed(r)) {
        Some(r) => Err(GoError::InvalidServiceName(n.to_owned(), r)),
        None => Ok(()),
    }
}

fn validate_label_name(n: &str) -> Result<(), GoError> {
    if n.is_empty() {
        return Err(GoError::LabelNameRequired);
    }
    if let Some(r) = n.chars().find(|&r| !label_rune_allowed(r)) {
        return Err(GoError::InvalidLabelName(n.to_owned(), r));
    }
    if n == "__name__" {
        return Err(GoError::LabelNameReserved(n.to_owned()));
    }
    Ok(())
}

enum State {
    Name,
    Key,
    Value,
    Done,
}

/// Pyroscope's `labelset.Parse`, as a map sorted by name bytes.
fn go_parse(name: &[u8]) -> Result<BTreeMap<String, String>, GoError> {
    let mut labels = BTreeMap::new();
    let mut state = State::Name;
    let mut key: Vec<char> = Vec::new();
    let mut value: Vec<char> = Vec::new();
    let mut runes = go_runes(name);
    runes.push('{');
    for r in runes {
        match state {
            State::Name => {
                if r == '{' {
                    state = State::Key;
                    let app = go_trim_space(&value);
                    validate_service_name(&app)?;
                    labels.insert("__name__".to_owned(), app);
                } else {
                    value.push(r);
                }
            }
            State::Key => match r {
                '}' => state = State::Done,
                '=' => {
                    state = State::Value;
                    value.clear();
                }
                _ => key.push(r),
            },
            State::Value => match r {
                ',' | '}' => {
                    state = State::Key;
                    let k = go_trim_space(&key);
                    if k != "__name__" {
                        validate_label_name(&k)?;
                    }
                    labels.insert(k, go_trim_space(&value));
                    key.clear();
                }
                _ => value.push(r),
            },
            State::Done => {}
        }
    }
    Ok(labels)
}

/// `(*LabelSet).Normalized()`.
fn go_normalized(labels: &BTreeMap<String, String>) -> String {
    let mut out = labels.get("__name__").cloned().unwrap_or_default();
    out.push('{');
    let rest: Vec<String> = labels
        .iter()
        .filter(|(k, _)| k.as_str() != "__name__")
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    out.push_str(&rest.join(","));
    out.push('}');
    out
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let expected = go_parse(data);
    let got = labels::parse_bytes(data);
    match (&expected, got) {
        (Ok(want), Ok(set)) => {
            let have: Vec<(&str, &str)> = set.iter().collect();
            let want_pairs: Vec<(&str, &str)> =
                want.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            assert_eq!(have, want_pairs, "labels of {:?}", String::from_utf8_lossy(data));
            assert_eq!(set.normalized(), go_normalized(want));
            for (k, v) in want {
                assert_eq!(set.get(k), Some(v.as_str()));
            }
        }
        (Err(want), Err(e)) => {
            let _ = e.to_string();
            assert_eq!(&GoError::from(e), want, "error for {:?}", String::from_utf8_lossy(data));
        }
        (want, got) => panic!(
            "accept/reject differs for {:?}: reference {want:?}, pyrogate {got:?}",
            String::from_utf8_lossy(data)
        ),
    }
    // A UTF-8 input parses the same through the `&str` entry point.
    if let Ok(text) = std::str::from_utf8(data) {
        assert_eq!(labels::parse(text), labels::parse_bytes(data));
    }
});
