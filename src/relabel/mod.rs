//! `pyroscope.relabel`: Prometheus' relabelling rules (`prometheus/model/relabel`), as Alloy's
//! `pyroscope.relabel` component applies them to the labels of each profile.
//!
//! Owns: the rule model ([`RuleSpec`] as written, [`Rule`] compiled and validated), applying
//! rules to a label set ([`process`]), and the per-core result cache ([`cache`]). Does not own:
//! where rules run in a request (see `pipeline`), the config syntax (see `config`), or any I/O.
//! Pure code; hot path through [`cache::Relabeler`].

pub mod cache;

use std::fmt;

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
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

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
            separator: ";".to_owned(),
            regex: "(.*)".to_owned(),
            modulus: 0,
            target_label: String::new(),
            replacement: "$1".to_owned(),
            action: Action::Replace,
        }
    }
}

/// Why a rule is invalid. `Display` is the message a user sees (Alloy's / Prometheus' text
/// where they have one); [`RuleError::field`] names the attribute it is about.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    /// Placeholder until the validation lands.
    #[error("{message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
}

impl RuleError {
    /// The `rule` attribute the error is about (`"regex"`, `"target_label"`, `"modulus"`,
    /// `"action"`, ...), so a diagnostic can point at it.
    pub fn field(&self) -> &'static str {
        match self {
            RuleError::Invalid { field, .. } => field,
        }
    }
}

impl Action {
    /// Parses an action name as Alloy does; the error names the accepted values.
    pub fn parse(s: &str) -> Result<Action, RuleError> {
        let _ = s;
        Err(RuleError::Invalid {
            field: "action",
            message: "not implemented".to_owned(),
        })
    }
}

/// A validated rule with its regular expression compiled. Compares equal when the specs do.
#[derive(Debug, Clone)]
pub struct Rule {
    spec: RuleSpec,
}

impl PartialEq for Rule {
    fn eq(&self, other: &Self) -> bool {
        self.spec == other.spec
    }
}

impl Rule {
    /// Validates `spec` as Alloy does at config time and compiles its regex.
    pub fn new(spec: RuleSpec) -> Result<Rule, RuleError> {
        Ok(Rule { spec })
    }

    /// The rule as written.
    pub fn spec(&self) -> &RuleSpec {
        &self.spec
    }
}

/// Applies `rules` in order to `labels` (Prometheus `relabel.ProcessBuilder`). Returns `false`
/// when a rule dropped the label set; `labels` is then unspecified.
pub fn process(rules: &[Rule], labels: &mut Labels) -> bool {
    let _ = (rules, labels);
    true
}
