//! `pyroscope.relabel`: Prometheus' relabelling rules (`prometheus/model/relabel`), as Alloy's
//! `pyroscope.relabel` component applies them to the labels of each profile.
//!
//! Owns: the rule model ([`RuleSpec`] as written, [`Rule`] compiled and validated), applying
//! rules to a label set ([`process`]), and the per-core result cache ([`cache`]). Does not own:
//! where rules run in a request (see `pipeline`), the config syntax (see `config`), or any I/O.
//! Pure code; hot path through [`cache::Relabeler`].
//!
//! Sources reproduced (Alloy `internal/component/pyroscope/relabel/relabel.go` converts its
//! rules with `ComponentToPromRelabelConfigs` and runs Prometheus' `relabel.ProcessBuilder`):
//! - config-time checks: Alloy's own `Config.Validate` in grafana/alloy
//!   `internal/component/common/relabel/relabel.go`, which checks names with
//!   `model.LabelName.IsValid` of prometheus/common v0.70 (the UTF-8 scheme: any non-empty
//!   name) and `$` templates with the legacy `relabelTarget` pattern;
//! - run time: prometheus/prometheus `model/relabel/relabel.go` (v3.13, Go module v0.313) with
//!   `NameValidationScheme: model.LegacyValidation`, so a `replace` whose target expands to a
//!   name outside `[a-zA-Z_][a-zA-Z0-9_]*` does nothing, while `lowercase`, `uppercase`,
//!   `hashmod` and `labelmap` write whatever name they were given;
//! - the label set edits: `labels.Builder` in prometheus/prometheus
//!   `model/labels/labels_common.go` (a `labelmap` walks a snapshot: the input labels not yet
//!   touched in name order, then the ones set by earlier rules in the order they were set).

pub mod cache;
mod case;
mod expand;
mod goregex;

use std::fmt;
use std::sync::LazyLock;

use expand::Template;
use goregex::GoRegex;
pub use goregex::RegexError;

/// A label set as the rules see it: `(name, value)` pairs sorted by name bytes, names unique,
/// no empty values (Prometheus `labels.Labels`).
pub type Labels = Vec<(String, String)>;

/// A relabelling action (Prometheus `relabel.Action`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Replace,
    Keep,
    Drop,
    HashMod,
    LabelMap,
    LabelDrop,
    LabelKeep,
    Lowercase,
    Uppercase,
    KeepEqual,
    DropEqual,
}

const ACTIONS: [Action; 11] = [
    Action::Replace,
    Action::Keep,
    Action::Drop,
    Action::HashMod,
    Action::LabelMap,
    Action::LabelDrop,
    Action::LabelKeep,
    Action::Lowercase,
    Action::Uppercase,
    Action::KeepEqual,
    Action::DropEqual,
];

impl Action {
    /// The action's name as written in a config (`"replace"`, `"hashmod"`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Action::Replace => "replace",
            Action::Keep => "keep",
            Action::Drop => "drop",
            Action::HashMod => "hashmod",
            Action::LabelMap => "labelmap",
            Action::LabelDrop => "labeldrop",
            Action::LabelKeep => "labelkeep",
            Action::Lowercase => "lowercase",
            Action::Uppercase => "uppercase",
            Action::KeepEqual => "keepequal",
            Action::DropEqual => "dropequal",
        }
    }

    /// Parses an action name as Alloy's `Action.UnmarshalText` does: exact, case-sensitive
    /// (`"Replace"` is refused, unlike Prometheus' YAML which lower-cases first).
    pub fn parse(s: &str) -> Result<Action, RuleError> {
        ACTIONS
            .iter()
            .copied()
            .find(|a| a.name() == s)
            .ok_or_else(|| RuleError::UnknownAction {
                action: s.to_owned(),
            })
    }

    /// Actions that need `target_label`.
    fn needs_target(self) -> bool {
        matches!(
            self,
            Action::Replace
                | Action::HashMod
                | Action::Lowercase
                | Action::Uppercase
                | Action::KeepEqual
                | Action::DropEqual
        )
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Alloy's default `regex`.
pub const DEFAULT_REGEX: &str = "(.*)";
/// Alloy's default `separator`.
pub const DEFAULT_SEPARATOR: &str = ";";
/// Alloy's default `replacement`.
pub const DEFAULT_REPLACEMENT: &str = "$1";

/// One `rule` block as written, with Alloy's defaults for what was left out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleSpec {
    pub source_labels: Vec<String>,
    pub separator: String,
    /// The regular expression as written (unanchored); [`Rule::new`] anchors it.
    pub regex: String,
    pub modulus: u64,
    pub target_label: String,
    pub replacement: String,
    pub action: Action,
}

impl Default for RuleSpec {
    /// Alloy's `DefaultRelabelConfig`: separator `;`, regex `(.*)`, replacement `$1`, action
    /// `replace`.
    fn default() -> Self {
        Self {
            source_labels: Vec::new(),
            separator: DEFAULT_SEPARATOR.to_owned(),
            regex: DEFAULT_REGEX.to_owned(),
            modulus: 0,
            target_label: String::new(),
            replacement: DEFAULT_REPLACEMENT.to_owned(),
            action: Action::Replace,
        }
    }
}

/// Why a rule is invalid. `Display` is the message a user sees (Alloy's / Prometheus' text
/// where they have one); [`RuleError::field`] names the attribute it is about.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    /// Alloy `Action.UnmarshalText`.
    #[error("unrecognized action type {}", go_quote(.action))]
    UnknownAction { action: String },
    /// `regex` does not compile: Go's `regexp` error text, for the anchored pattern
    /// `^(?s:<regex>)$` as Go reports it.
    #[error("{message}")]
    Regex { message: String },
    /// `regex` is valid for Go (or may be), but pyrogate cannot match it exactly.
    #[error("{message}")]
    UnsupportedRegex { message: String },
    #[error("relabel configuration for hashmod requires non-zero modulus")]
    ZeroModulus,
    #[error("relabel configuration for {action} action requires 'target_label' value")]
    MissingTargetLabel { action: Action },
    #[error("{} is invalid 'target_label' for {action} action", go_quote(.target_label))]
    InvalidTargetLabel {
        target_label: String,
        action: Action,
    },
    #[error("'replacement' can not be set for {action} action")]
    ReplacementNotAllowed { action: Action },
    #[error("{} is invalid 'replacement' for {action} action", go_quote(.replacement))]
    InvalidReplacement { replacement: String, action: Action },
    /// `labeldrop` / `labelkeep` with anything but `regex`.
    #[error("{action} action requires only 'regex', and no other fields")]
    OnlyRegex { action: Action },
    /// `keepequal` / `dropequal` with `regex`, `modulus`, `separator` or `replacement` set.
    #[error(
        "{action} action requires only 'source_labels' and 'target_label', and no other fields"
    )]
    OnlySourceAndTarget { action: Action },
}

impl RuleError {
    /// The `rule` attribute the error is about (`"regex"`, `"target_label"`, `"modulus"`,
    /// `"action"`, ...), so a diagnostic can point at it.
    pub fn field(&self) -> &'static str {
        match self {
            RuleError::UnknownAction { .. }
            | RuleError::OnlyRegex { .. }
            | RuleError::OnlySourceAndTarget { .. } => "action",
            RuleError::Regex { .. } | RuleError::UnsupportedRegex { .. } => "regex",
            RuleError::ZeroModulus => "modulus",
            RuleError::MissingTargetLabel { .. } | RuleError::InvalidTargetLabel { .. } => {
                "target_label"
            }
            RuleError::ReplacementNotAllowed { .. } | RuleError::InvalidReplacement { .. } => {
                "replacement"
            }
        }
    }
}

impl From<RegexError> for RuleError {
    fn from(e: RegexError) -> Self {
        match e {
            RegexError::Syntax(message) => RuleError::Regex { message },
            RegexError::Unsupported(message) => RuleError::UnsupportedRegex { message },
        }
    }
}

/// Go's `strconv.Quote` (what `%q` prints in Alloy's and Prometheus' messages).
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            ' '..='~' => out.push(c),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c if !c.is_ascii() && goregex::is_print(c) => out.push(c),
            c if (c as u32) < 0x10000 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push_str(&format!("\\U{:08x}", c as u32)),
        }
    }
    out.push('"');
    out
}

/// prometheus/common `LegacyValidation.IsValidLabelName`: `[a-zA-Z_][a-zA-Z0-9_]*`.
pub fn is_legacy_label_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .enumerate()
            .all(|(i, b)| b.is_ascii_alphabetic() || b == b'_' || (i > 0 && b.is_ascii_digit()))
}

/// prometheus/common `UTF8Validation.IsValidLabelName` (what Alloy's `Validate` gets from
/// `model.LabelName.IsValid`, the global scheme being UTF-8): non-empty valid UTF-8, which a
/// `&str` always is.
fn is_utf8_label_name(name: &str) -> bool {
    !name.is_empty()
}

/// Alloy's (and Prometheus' `relabelTargetLegacy`) pattern for names with `$` references.
static RELABEL_TARGET: LazyLock<GoRegex> = LazyLock::new(|| {
    GoRegex::new(r"^(?:(?:[a-zA-Z_]|\$(?:\{\w+\}|\w+))+\w*)+$").expect("valid pattern")
});

/// Whether `template` passes Alloy's `relabelTarget` check (used for `target_label` with a `$`
/// and for the `labelmap` replacement).
pub fn is_valid_target_template(template: &str) -> bool {
    RELABEL_TARGET.is_match(template)
}

/// A validated rule with its regular expression compiled. Compares equal when the specs do.
#[derive(Debug, Clone)]
pub struct Rule {
    spec: RuleSpec,
    regex: GoRegex,
    target: Template,
    replacement: Template,
}

impl PartialEq for Rule {
    fn eq(&self, other: &Self) -> bool {
        self.spec == other.spec
    }
}

impl Rule {
    /// Validates `spec` as Alloy does at config time and compiles its regex. The regex is
    /// compiled first (Alloy decodes it before `Validate` runs); the checks then run in the
    /// order of Alloy's `Config.Validate`.
    pub fn new(spec: RuleSpec) -> Result<Rule, RuleError> {
        let regex = GoRegex::anchored(&spec.regex)?;
        validate(&spec)?;
        let target = Template::new(&spec.target_label, regex.names());
        let replacement = Template::new(&spec.replacement, regex.names());
        Ok(Rule {
            spec,
            regex,
            target,
            replacement,
        })
    }

    /// The rule as written.
    pub fn spec(&self) -> &RuleSpec {
        &self.spec
    }
}

/// Alloy's `Config.Validate` (grafana/alloy `internal/component/common/relabel/relabel.go`).
fn validate(c: &RuleSpec) -> Result<(), RuleError> {
    let action = c.action;
    if c.modulus == 0 && action == Action::HashMod {
        return Err(RuleError::ZeroModulus);
    }
    if action.needs_target() && c.target_label.is_empty() {
        return Err(RuleError::MissingTargetLabel { action });
    }
    let invalid_target = || RuleError::InvalidTargetLabel {
        target_label: c.target_label.clone(),
        action,
    };
    let has_var = c.target_label.contains('$');
    if action == Action::Replace && !has_var && !is_utf8_label_name(&c.target_label) {
        return Err(invalid_target());
    }
    if action == Action::Replace && has_var && !is_valid_target_template(&c.target_label) {
        return Err(invalid_target());
    }
    let equal_or_case = matches!(
        action,
        Action::Lowercase | Action::Uppercase | Action::KeepEqual | Action::DropEqual
    );
    if equal_or_case && !is_utf8_label_name(&c.target_label) {
        return Err(invalid_target());
    }
    if equal_or_case && c.replacement != DEFAULT_REPLACEMENT {
        return Err(RuleError::ReplacementNotAllowed { action });
    }
    if action == Action::LabelMap && !is_valid_target_template(&c.replacement) {
        return Err(RuleError::InvalidReplacement {
            replacement: c.replacement.clone(),
            action,
        });
    }
    if action == Action::HashMod && !is_utf8_label_name(&c.target_label) {
        return Err(invalid_target());
    }
    if matches!(action, Action::LabelDrop | Action::LabelKeep)
        && (!c.source_labels.is_empty()
            || !c.target_label.is_empty()
            || c.modulus != 0
            || c.separator != DEFAULT_SEPARATOR
            || c.replacement != DEFAULT_REPLACEMENT)
    {
        return Err(RuleError::OnlyRegex { action });
    }
    if matches!(action, Action::KeepEqual | Action::DropEqual)
        && (c.regex != DEFAULT_REGEX
            || c.modulus != 0
            || c.separator != DEFAULT_SEPARATOR
            || c.replacement != DEFAULT_REPLACEMENT)
    {
        return Err(RuleError::OnlySourceAndTarget { action });
    }
    Ok(())
}

/// Prometheus' `labels.Builder` over a sorted base: `Set` on a name already added updates it in
/// place, `Del` removes it from the additions and records the deletion, a set to `""` deletes.
#[derive(Debug)]
struct Builder {
    base: Labels,
    add: Vec<(String, String)>,
    del: Vec<String>,
}

impl Builder {
    fn get(&self, name: &str) -> &str {
        // Del() removes entries from add but Set() does not remove from del: check add first.
        if let Some((_, v)) = self.add.iter().find(|(n, _)| n == name) {
            return v;
        }
        if self.del.iter().any(|n| n == name) {
            return "";
        }
        match self.base.binary_search_by(|(n, _)| n.as_str().cmp(name)) {
            Ok(i) => &self.base[i].1,
            Err(_) => "",
        }
    }

    fn del(&mut self, name: &str) {
        self.add.retain(|(n, _)| n != name);
        self.del.push(name.to_owned());
    }

    fn set(&mut self, name: &str, value: String) {
        if value.is_empty() {
            self.del(name);
            return;
        }
        if let Some((_, v)) = self.add.iter_mut().find(|(n, _)| n == name) {
            *v = value;
            return;
        }
        self.add.push((name.to_owned(), value));
    }

    /// `Range`'s snapshot: base labels neither deleted nor added, in name order, then the
    /// additions in the order they were made. Calls `f` with each name and value.
    fn for_each_snapshot(&mut self, mut f: impl FnMut(&mut Self, &str, &str)) {
        let orig_add = self.add.clone();
        let orig_del = self.del.len();
        for i in 0..self.base.len() {
            let (name, value) = &self.base[i];
            if self.del[..orig_del].iter().any(|n| n == name)
                || orig_add.iter().any(|(n, _)| n == name)
            {
                continue;
            }
            let (name, value) = (name.clone(), value.clone());
            f(self, &name, &value);
        }
        for (name, value) in &orig_add {
            f(self, name, value);
        }
    }

    /// `Labels()`: the result, sorted by name.
    fn finish(self) -> Labels {
        let Builder { mut base, add, del } = self;
        if add.is_empty() && del.is_empty() {
            return base;
        }
        base.retain(|(n, _)| !del.contains(n) && !add.iter().any(|(a, _)| a == n));
        if !add.is_empty() {
            base.extend(add);
            base.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
        }
        base
    }
}

/// Applies `rules` in order to `labels` (Prometheus `relabel.ProcessBuilder`). Returns `false`
/// when a rule dropped the label set; `labels` is then unspecified.
pub fn process(rules: &[Rule], labels: &mut Labels) -> bool {
    if rules.is_empty() {
        return true;
    }
    let mut b = Builder {
        base: std::mem::take(labels),
        add: Vec::new(),
        del: Vec::new(),
    };
    let mut val = String::new();
    for rule in rules {
        if !relabel(rule, &mut b, &mut val) {
            return false;
        }
    }
    *labels = b.finish();
    true
}

/// Prometheus `relabel()` for one rule. `val` is scratch space for the joined source values.
fn relabel(rule: &Rule, b: &mut Builder, val: &mut String) -> bool {
    let cfg = &rule.spec;
    val.clear();
    for (i, name) in cfg.source_labels.iter().enumerate() {
        if i > 0 {
            val.push_str(&cfg.separator);
        }
        val.push_str(b.get(name));
    }
    let val = val.as_str();
    match cfg.action {
        Action::Drop => {
            if rule.regex.is_match(val) {
                return false;
            }
        }
        Action::Keep => {
            if !rule.regex.is_match(val) {
                return false;
            }
        }
        Action::DropEqual => {
            if b.get(&cfg.target_label) == val {
                return false;
            }
        }
        Action::KeepEqual => {
            if b.get(&cfg.target_label) != val {
                return false;
            }
        }
        Action::Replace => {
            // Prometheus' fast path (`cfg.Regex == DefaultRelabelConfig.Regex`) compares regexp
            // pointers; Alloy's converted rules never share Prometheus' pointer, so it never
            // runs under Alloy and the general path below is the one to match.
            let Some(slots) = rule.regex.captures_at(val, 0) else {
                // If there is no match no replacement must take place.
                return true;
            };
            let target = match rule.target.as_literal() {
                Some(t) => std::borrow::Cow::Borrowed(t),
                None => std::borrow::Cow::Owned(rule.target.expand(val, &slots)),
            };
            if !is_legacy_label_name(&target) {
                return true;
            }
            let res = rule.replacement.expand(val, &slots);
            if res.is_empty() {
                b.del(&target);
            } else {
                b.set(&target, res);
            }
        }
        Action::Lowercase => b.set(&cfg.target_label, case::to_lower(val)),
        Action::Uppercase => b.set(&cfg.target_label, case::to_upper(val)),
        Action::HashMod => {
            let m = hashmod(val, cfg.modulus);
            b.set(&cfg.target_label, m.to_string());
        }
        Action::LabelMap => b.for_each_snapshot(|b, name, value| {
            if rule.regex.is_match(name) {
                let res = expand::replace_all(&rule.regex, name, &rule.replacement);
                b.set(&res, value.to_owned());
            }
        }),
        Action::LabelDrop => b.for_each_snapshot(|b, name, _| {
            if rule.regex.is_match(name) {
                b.del(name);
            }
        }),
        Action::LabelKeep => b.for_each_snapshot(|b, name, _| {
            if !rule.regex.is_match(name) {
                b.del(name);
            }
        }),
    }
    true
}

/// `hashmod`: the last 8 bytes of the MD5 of `val`, big-endian, modulo `modulus` (Prometheus
/// `relabel()`, "to give the same result as earlier versions"). `modulus` is non-zero for a
/// validated rule.
pub fn hashmod(val: &str, modulus: u64) -> u64 {
    use md5::{Digest, Md5};
    let digest = Md5::digest(val.as_bytes());
    let mut last = [0u8; 8];
    last.copy_from_slice(&digest[8..]);
    u64::from_be_bytes(last) % modulus.max(1)
}

#[cfg(test)]
mod tests;
