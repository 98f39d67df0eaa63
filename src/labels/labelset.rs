//! Pyroscope's label-set grammar (`grafana/pyroscope api/model/labelset` `Parse`, `Normalized`,
//! `ValidateLabelName`, `ValidateServiceName`) and Alloy's `validateLabels` from
//! `pyroscope.write`, with the exact Go error texts.
//!
//! Owns: parsing `APP{k=v,...}` strings into a [`LabelSet`], rendering the canonical form, and
//! the label checks shared by the `/ingest` and Push paths. Does not own the receive/write stage
//! rules (see `ingest` and `push`). Hot path: `parse_bytes` and `normalized` run once per upload.
//!
//! The parser is Go's rune state machine over `name + "{"`, implemented as byte scans: every
//! delimiter (`{ } = ,`) is ASCII, so it can never sit inside a multi-byte UTF-8 sequence.

use std::cmp::Ordering;

use super::goquote::{go_lossy_utf8, quote_rune};

/// The label that carries the application (service) name: Pyroscope's `ReservedLabelNameName`.
pub const NAME_LABEL: &str = "__name__";
/// The label Alloy's receive stage adds from `__name__` (`pyroscope.LabelServiceName`).
pub const SERVICE_NAME_LABEL: &str = "service_name";
/// The label Alloy's receive stage sets from `__name__` when `service_name` is already present.
pub const APP_NAME_LABEL: &str = "app_name";

/// Every label set's text starts with these three names so that the keys the stages add can be
/// referenced by span without re-allocating the text.
const STATIC_KEYS: &str = "__name__service_nameapp_name";
const NAME_KEY: Span = Span { start: 0, end: 8 };
const SERVICE_NAME_KEY: Span = Span { start: 8, end: 20 };
const APP_NAME_KEY: Span = Span { start: 20, end: 28 };

/// Why [`parse`] rejected a label-set string. `Display` is Go's exact error text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LabelsetError {
    /// The trimmed text before the first `{` is empty.
    #[error("service name is required")]
    ServiceNameRequired,
    /// The app name contains a rune outside `[A-Za-z0-9_.\-/]`; `ch` is the first such rune.
    #[error("invalid service name: {name}: character is not allowed: {}", quote_rune(*.ch))]
    InvalidServiceName {
        /// The trimmed app name (invalid UTF-8 already replaced by U+FFFD).
        name: String,
        /// The first rejected rune.
        ch: char,
    },
    /// A label key is empty after trimming.
    #[error("label name is required")]
    LabelNameRequired,
    /// A label key contains a rune outside `[A-Za-z0-9_.]`; `ch` is the first such rune.
    #[error("invalid label name: {name}: character is not allowed: {}", quote_rune(*.ch))]
    InvalidLabelName {
        /// The trimmed label key.
        name: String,
        /// The first rejected rune.
        ch: char,
    },
    /// `ValidateLabelName` of a reserved name (`__name__`); the parser itself never reports it.
    #[error("label name is reserved: {0}")]
    LabelNameReserved(String),
}

/// Why Alloy's `pyroscope.write` `validateLabels` rejected a series. `Display` is Go's text
/// (without the `invalid labels in profile: ` prefix the callers add).
///
/// Go's check `invalid label value for <n>: <v>` (value not UTF-8) has no variant: every value
/// reaching it here is a Rust `str`, so that case cannot occur.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LabelValidationError {
    /// The label set is empty.
    #[error("service name is required")]
    ServiceNameRequired,
    /// Two equal names are adjacent after sorting. An empty name is reported here too, because
    /// Go compares it with the initial empty "previous name".
    #[error("duplicate label name: {0}")]
    DuplicateName(String),
    /// A name other than `__name__` failed `ValidateLabelName`.
    #[error("invalid label name: {0}")]
    InvalidName(LabelsetError),
}

/// A byte range inside a [`LabelSet`]'s text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Span {
    start: usize,
    end: usize,
}

/// A parsed label set: name → value, sorted by name bytes, names unique. `__name__` (the app
/// name) is an ordinary entry here. Keys and values live in one string; entries are spans into
/// it, so a parse costs two allocations however many labels there are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LabelSet {
    text: String,
    entries: Vec<(Span, Span)>,
}

impl Default for LabelSet {
    fn default() -> Self {
        Self::new()
    }
}

fn span_str(text: &str, span: Span) -> &str {
    text.get(span.start..span.end).unwrap_or_default()
}

/// The span of `text[start..end]` with Unicode white space trimmed from both ends, like Go's
/// `strings.TrimSpace` (both use the Unicode `White_Space` property).
fn trimmed_span(text: &str, start: usize, end: usize) -> Span {
    let s = text.get(start..end).unwrap_or_default();
    let lead = s.len() - s.trim_start().len();
    let inner = s.trim();
    Span {
        start: start + lead,
        end: start + lead + inner.len(),
    }
}

/// Go's `IsLabelNameRuneAllowed`.
fn is_label_name_rune(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '.'
}

/// Go's `IsServiceNameRuneAllowed`.
fn is_service_name_rune(c: char) -> bool {
    is_label_name_rune(c) || c == '-' || c == '/'
}

/// Go's `labelset.ValidateServiceName`.
pub fn validate_service_name(name: &str) -> Result<(), LabelsetError> {
    if name.is_empty() {
        return Err(LabelsetError::ServiceNameRequired);
    }
    match name.chars().find(|&c| !is_service_name_rune(c)) {
        Some(ch) => Err(LabelsetError::InvalidServiceName {
            name: name.to_owned(),
            ch,
        }),
        None => Ok(()),
    }
}

/// Go's `labelset.ValidateLabelName`: non-empty, `[A-Za-z0-9_.]`, and not `__name__`.
pub fn validate_label_name(name: &str) -> Result<(), LabelsetError> {
    if name.is_empty() {
        return Err(LabelsetError::LabelNameRequired);
    }
    if let Some(ch) = name.chars().find(|&c| !is_label_name_rune(c)) {
        return Err(LabelsetError::InvalidLabelName {
            name: name.to_owned(),
            ch,
        });
    }
    if name == NAME_LABEL {
        return Err(LabelsetError::LabelNameReserved(name.to_owned()));
    }
    Ok(())
}

/// Alloy `pyroscope.write` `validateLabels` over labels sorted by name: non-empty set; for each
/// label in order, a name equal to the previous one (initially `""`) is a duplicate; every name
/// but `__name__` must pass [`validate_label_name`]. The first failure wins.
pub fn validate_labels<'a>(
    sorted: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Result<(), LabelValidationError> {
    let mut last = "";
    let mut any = false;
    for (name, _value) in sorted {
        any = true;
        if name == last {
            return Err(LabelValidationError::DuplicateName(name.to_owned()));
        }
        if name != NAME_LABEL {
            validate_label_name(name).map_err(LabelValidationError::InvalidName)?;
        }
        last = name;
    }
    if any {
        Ok(())
    } else {
        Err(LabelValidationError::ServiceNameRequired)
    }
}

/// Parses a label-set string (Go `labelset.Parse`).
pub fn parse(name: &str) -> Result<LabelSet, LabelsetError> {
    parse_bytes(name.as_bytes())
}

/// Parses a label-set given as raw bytes (a decoded query value is a Go byte string); bytes that
/// are not UTF-8 become U+FFFD one by one, as Go's `range` over a string does.
pub fn parse_bytes(name: &[u8]) -> Result<LabelSet, LabelsetError> {
    let decoded = go_lossy_utf8(name);
    let mut text = String::with_capacity(STATIC_KEYS.len() + decoded.len());
    text.push_str(STATIC_KEYS);
    text.push_str(&decoded);
    // One entry per '=' at most, plus `__name__` and the one the receive stage may add.
    let mut entries = Vec::with_capacity(memchr::memchr_iter(b'=', name).count() + 2);
    parse_into(&text, STATIC_KEYS.len(), &mut entries)?;
    Ok(LabelSet { text, entries })
}

/// Finds the first of two bytes at or after `from`; returns its absolute index. A plain scan:
/// keys and values are a few bytes long, too short for memchr's setup to pay off.
fn find2(bytes: &[u8], from: usize, a: u8, b: u8) -> Option<usize> {
    let tail = bytes.get(from..)?;
    tail.iter()
        .position(|&c| c == a || c == b)
        .map(|i| from + i)
}

/// The state machine of Go's `Parse` over `text[base..] + "{"`. The appended `{` only matters
/// in the name state (it ends an app name without braces); elsewhere it is appended to a key or
/// value that is never committed, so it is modelled as "end of input".
fn parse_into(
    text: &str,
    base: usize,
    entries: &mut Vec<(Span, Span)>,
) -> Result<(), LabelsetError> {
    let bytes = text.as_bytes();
    let len = bytes.len();
    // Name state: everything up to the first '{' (or the appended one).
    let brace =
        memchr::memchr(b'{', bytes.get(base..).unwrap_or_default()).map_or(len, |i| base + i);
    let app = trimmed_span(text, base, brace);
    validate_service_name(span_str(text, app))?;
    upsert(text, entries, NAME_KEY, app);
    let mut key_start = brace.saturating_add(1);
    loop {
        // Key state: runes accumulate into the key until '=' (go to value) or '}' (done).
        let Some(delim) = find2(bytes, key_start, b'=', b'}') else {
            return Ok(());
        };
        if bytes.get(delim) == Some(&b'}') {
            return Ok(());
        }
        let value_start = delim + 1;
        // Value state: runes accumulate until ',' or '}', which commit the pair.
        let Some(value_end) = find2(bytes, value_start, b',', b'}') else {
            return Ok(()); // an unterminated last pair is never committed
        };
        let key = trimmed_span(text, key_start, delim);
        let key_str = span_str(text, key);
        if key_str != NAME_LABEL {
            validate_label_name(key_str)?;
        }
        upsert(
            text,
            entries,
            key,
            trimmed_span(text, value_start, value_end),
        );
        // Both ',' and '}' return to the key state; only a '}' met there ends parsing.
        key_start = value_end + 1;
    }
}

/// Inserts or replaces (later wins) keeping `entries` sorted by key bytes.
fn upsert(text: &str, entries: &mut Vec<(Span, Span)>, key: Span, value: Span) {
    let key_str = span_str(text, key);
    match entries.binary_search_by(|(k, _)| span_str(text, *k).cmp(key_str)) {
        Ok(i) => {
            if let Some(e) = entries.get_mut(i) {
                *e = (key, value);
            }
        }
        Err(i) => entries.insert(i, (key, value)),
    }
}

impl LabelSet {
    /// An empty label set.
    pub fn new() -> Self {
        Self {
            text: STATIC_KEYS.to_owned(),
            entries: Vec::new(),
        }
    }

    fn find(&self, key: &str) -> Result<usize, usize> {
        self.entries
            .binary_search_by(|(k, _)| span_str(&self.text, *k).cmp(key))
    }

    /// The value of `key`, if present (an empty value is present).
    pub fn get(&self, key: &str) -> Option<&str> {
        let i = self.find(key).ok()?;
        self.entries.get(i).map(|(_, v)| span_str(&self.text, *v))
    }

    /// Whether `key` is present, whatever its value.
    pub fn contains_key(&self, key: &str) -> bool {
        self.find(key).is_ok()
    }

    /// All `(name, value)` pairs, sorted by name bytes (`__name__` included).
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> + Clone {
        self.entries
            .iter()
            .map(|(k, v)| (span_str(&self.text, *k), span_str(&self.text, *v)))
    }

    /// Number of labels, `__name__` included.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no labels at all.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Length of the text the names and values live in.
    pub fn text_len(&self) -> usize {
        self.text.len()
    }

    /// Sets `key` to `value` (later wins; an empty value is kept, as Go's map assignment does).
    pub fn insert(&mut self, key: &str, value: &str) {
        let k = self.push_text(key);
        let v = self.push_text(value);
        upsert(&self.text, &mut self.entries, k, v);
    }

    /// Removes `key`; returns whether it was present.
    pub fn remove(&mut self, key: &str) -> bool {
        match self.find(key) {
            Ok(i) => {
                self.entries.remove(i);
                true
            }
            Err(_) => false,
        }
    }

    fn push_text(&mut self, s: &str) -> Span {
        let start = self.text.len();
        self.text.push_str(s);
        Span {
            start,
            end: self.text.len(),
        }
    }

    /// Go's `Normalized()`: the `__name__` value, then `{k1=v1,k2=v2}` over the other names
    /// sorted by bytes, with no escaping; `{}` when there are no other labels.
    pub fn normalized(&self) -> String {
        normalize_sorted(self.iter())
    }

    /// The span of `__name__`'s value when it is present and non-empty.
    pub(crate) fn non_empty_name_value(&self) -> Option<Span> {
        let i = self.find(NAME_LABEL).ok()?;
        let (_, v) = *self.entries.get(i)?;
        (v.end > v.start).then_some(v)
    }

    /// Drops every label whose value is empty (Prometheus' `labels.Builder` semantics).
    pub(crate) fn retain_non_empty(&mut self) {
        self.entries.retain(|(_, v)| v.end > v.start);
    }

    /// `labels.Builder.Set(service_name | app_name, value)` where `None` deletes.
    pub(crate) fn set_stage_label(&mut self, key: StageLabel, value: Option<Span>) {
        let (key_span, key_str) = match key {
            StageLabel::ServiceName => (SERVICE_NAME_KEY, SERVICE_NAME_LABEL),
            StageLabel::AppName => (APP_NAME_KEY, APP_NAME_LABEL),
        };
        match value {
            Some(v) => upsert(&self.text, &mut self.entries, key_span, v),
            None => {
                self.remove(key_str);
            }
        }
    }
}

/// The labels Alloy's receive stage writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum StageLabel {
    ServiceName,
    AppName,
}

/// Renders labels already sorted by name as Go's `Normalized()` does.
pub(crate) fn normalize_sorted<'a, I>(sorted: I) -> String
where
    I: Iterator<Item = (&'a str, &'a str)> + Clone,
{
    let size = sorted
        .clone()
        .map(|(k, v)| {
            if k == NAME_LABEL {
                v.len()
            } else {
                k.len() + v.len() + 2
            }
        })
        .sum::<usize>()
        + 2;
    let mut out = String::with_capacity(size);
    if let Some((_, v)) = sorted.clone().find(|(k, _)| *k == NAME_LABEL) {
        out.push_str(v);
    }
    out.push('{');
    let mut first = true;
    for (k, v) in sorted.filter(|(k, _)| *k != NAME_LABEL) {
        if !first {
            out.push(',');
        }
        first = false;
        out.push_str(k);
        out.push('=');
        out.push_str(v);
    }
    out.push('}');
    out
}

/// Orders label names by bytes, as Go's `<` on strings (and `sort.Strings`) does.
pub(crate) fn cmp_names(a: &str, b: &str) -> Ordering {
    a.as_bytes().cmp(b.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(s: &LabelSet) -> Vec<(&str, &str)> {
        s.iter().collect()
    }

    #[test]
    fn closing_brace_after_value_returns_to_key_state() {
        let s = parse("app{a=b}x=y}").unwrap();
        assert_eq!(pairs(&s), [("__name__", "app"), ("a", "b"), ("x", "y")]);
        let err = parse("app{a=b}{c=d}").unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid label name: {c: character is not allowed: '{'"
        );
    }

    #[test]
    fn closing_brace_in_key_state_ends_parsing() {
        assert_eq!(pairs(&parse("app{}x=y}").unwrap()), [("__name__", "app")]);
        assert_eq!(
            pairs(&parse("app{a=b}trailing").unwrap()),
            [("__name__", "app"), ("a", "b")]
        );
    }

    #[test]
    fn unterminated_pair_and_key_without_equals_are_dropped() {
        assert_eq!(pairs(&parse("app{a=b").unwrap()), [("__name__", "app")]);
        assert_eq!(pairs(&parse("app{a}").unwrap()), [("__name__", "app")]);
        assert_eq!(pairs(&parse("app{").unwrap()), [("__name__", "app")]);
    }

    #[test]
    fn name_key_overrides_app_name_unvalidated() {
        let s = parse("app{__name__=x y}").unwrap();
        assert_eq!(pairs(&s), [("__name__", "x y")]);
        assert_eq!(s.normalized(), "x y{}");
    }

    #[test]
    fn later_duplicate_wins_and_values_keep_inner_text() {
        let s = parse("app{k=1,k= a=b{c }").unwrap();
        assert_eq!(s.get("k"), Some("a=b{c"));
        assert_eq!(s.len(), 2);
    }

    #[test]
    fn invalid_utf8_becomes_replacement_runes() {
        let err = parse_bytes(b"ap\xffp").unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid service name: ap\u{fffd}p: character is not allowed: '\u{fffd}'"
        );
        let s = parse_bytes(b"app{k=\xe2\x82}").unwrap();
        assert_eq!(s.get("k"), Some("\u{fffd}\u{fffd}"));
    }

    #[test]
    fn error_texts_quote_runes_like_go() {
        assert_eq!(
            parse("").unwrap_err().to_string(),
            "service name is required"
        );
        assert_eq!(
            parse("app{=v}").unwrap_err().to_string(),
            "label name is required"
        );
        assert_eq!(
            parse("a\tb{}").unwrap_err().to_string(),
            "invalid service name: a\tb: character is not allowed: '\\t'"
        );
    }

    #[test]
    fn normalized_without_name_has_nothing_before_brace() {
        let mut s = LabelSet::new();
        s.insert("b", "2");
        s.insert("a", "1");
        assert_eq!(s.normalized(), "{a=1,b=2}");
        assert!(s.remove("a"));
        assert!(!s.remove("a"));
        assert_eq!(s.normalized(), "{b=2}");
    }

    #[test]
    fn validate_labels_reports_first_problem_in_go_order() {
        assert_eq!(
            validate_labels([]).unwrap_err().to_string(),
            "service name is required"
        );
        assert_eq!(
            validate_labels([("", "x"), ("a-b", "y")])
                .unwrap_err()
                .to_string(),
            "duplicate label name: "
        );
        assert_eq!(
            validate_labels([("__name__", "x"), ("a-b", "y")])
                .unwrap_err()
                .to_string(),
            "invalid label name: invalid label name: a-b: character is not allowed: '-'"
        );
        assert_eq!(validate_labels([("__name__", "x y"), ("a.b", "")]), Ok(()));
    }
}
