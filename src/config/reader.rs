//! Block reader and typed getters shared by the builders.
//!
//! Owns: [`Reader`] (which attributes and blocks of a body were consulted, so the rest can be
//! reported as unknown) and [`Cx`] (evaluate an attribute and convert it to a Rust type, with
//! Alloy's "expected X, got Y" messages, range checks and the unset-`env()` warning). Does not
//! own which attributes exist (see `build`, `build_write`). Pure, cold path.

use std::path::PathBuf;
use std::time::Duration;

use super::ast::{Attribute, Block, Stmt};
use super::diag::{Pos, Sink};
use super::eval::{Evaluator, V, Val};
use super::model::*;
use super::values::{parse_duration, parse_size};

/// The attributes and blocks of one block body, with which ones were looked at; whatever is
/// left unread when [`Reader::finish`] runs is unknown and reported.
pub(crate) struct Reader<'b> {
    /// Where we are, for messages: `pyroscope.write "backend" > endpoint`.
    pub path: String,
    /// The block's name position, for "missing required attribute".
    pub at: Pos,
    attrs: Vec<(&'b Attribute, bool)>,
    blocks: Vec<(&'b Block, bool)>,
}

impl<'b> Reader<'b> {
    pub fn new(path: String, block: &'b Block, sink: &mut Sink<'_>) -> Self {
        let mut attrs: Vec<(&'b Attribute, bool)> = Vec::new();
        let mut blocks = Vec::new();
        for item in &block.body.items {
            match &item.stmt {
                Stmt::Attr(a) => {
                    if let Some((first, _)) = attrs.iter().find(|(f, _)| f.name == a.name) {
                        sink.error(
                            a.name_span.start,
                            format!(
                                "attribute {:?} may only be provided once (first at line {})",
                                a.name, first.name_span.start.line
                            ),
                        );
                    } else {
                        attrs.push((a, false));
                    }
                }
                Stmt::Block(b) => blocks.push((b, false)),
                Stmt::Comment(_) => {}
            }
        }
        Reader {
            path,
            at: block.name_span.start,
            attrs,
            blocks,
        }
    }

    /// Looks up (and marks as known) an attribute.
    pub fn attr(&mut self, name: &str) -> Option<&'b Attribute> {
        let slot = self.attrs.iter_mut().find(|(a, _)| a.name == name)?;
        slot.1 = true;
        Some(slot.0)
    }

    /// All nested blocks called `name`, marked as known. Labels are not allowed on them.
    pub fn blocks(&mut self, name: &str, sink: &mut Sink<'_>) -> Vec<&'b Block> {
        let mut out = Vec::new();
        for (b, used) in self.blocks.iter_mut() {
            if b.name == name {
                *used = true;
                if let Some(span) = b.label_span {
                    sink.error(span.start, format!("block {name} does not take a label"));
                }
                out.push(*b);
            }
        }
        out
    }

    /// The nested block called `name`, which may appear at most once.
    pub fn block(&mut self, name: &str, sink: &mut Sink<'_>) -> Option<&'b Block> {
        let all = self.blocks(name, sink);
        if let [first, rest @ ..] = all.as_slice() {
            for extra in rest {
                sink.error(
                    extra.name_span.start,
                    format!(
                        "block {name} may only be given once in {} (first at line {})",
                        self.path, first.name_span.start.line
                    ),
                );
            }
        }
        all.first().copied()
    }

    /// Reports every attribute and block nobody asked for.
    pub fn finish(self, sink: &mut Sink<'_>) {
        for (a, used) in &self.attrs {
            if !used {
                sink.error(
                    a.name_span.start,
                    format!("unknown attribute {:?} in {}", a.name, self.path),
                );
            }
        }
        for (b, used) in &self.blocks {
            if !used {
                sink.error(
                    b.name_span.start,
                    format!("unknown block {:?} in {}", b.name, self.path),
                );
            }
        }
    }
}

/// Evaluation plus diagnostics: the typed getters every block builder uses. Getters return
/// `None` when the attribute is absent or invalid (invalid ones are reported).
pub(crate) struct Cx<'e, 'k, 's> {
    pub ev: Evaluator<'e>,
    pub sink: &'k mut Sink<'s>,
}

impl Cx<'_, '_, '_> {
    pub fn eval(&mut self, a: &Attribute) -> Option<Val> {
        self.ev.eval(&a.value, self.sink)
    }

    pub fn type_error(&mut self, name: &str, want: &str, got: &Val) {
        self.sink.error(
            got.span.start,
            format!("{name}: expected {want}, got {}", got.kind.type_name()),
        );
    }

    /// Reports a missing required attribute.
    pub fn require(&mut self, r: &Reader<'_>, name: &str, present: bool) {
        if !present {
            self.sink.error(
                r.at,
                format!("missing required attribute {name:?} in {}", r.path),
            );
        }
    }

    /// A string value; warns when it is empty because `env()` read an unset variable.
    pub fn val_string(&mut self, name: &str, v: Val) -> Option<String> {
        match v.kind {
            V::Str { s, unset_env } => {
                if s.is_empty()
                    && let Some(var) = unset_env.first()
                {
                    self.sink.warn(
                        v.span.start,
                        format!("{name} is empty because environment variable {var} is not set"),
                    );
                }
                Some(s)
            }
            _ => {
                self.type_error(name, "string", &v);
                None
            }
        }
    }

    pub fn string(&mut self, r: &mut Reader<'_>, name: &str) -> Option<String> {
        let a = r.attr(name)?;
        let v = self.eval(a)?;
        self.val_string(name, v)
    }

    /// A string that must be one of `allowed`.
    pub fn choice<T: Copy>(
        &mut self,
        r: &mut Reader<'_>,
        name: &str,
        allowed: &[(&str, T)],
    ) -> Option<T> {
        let a = r.attr(name)?;
        let v = self.eval(a)?;
        let span = v.span;
        let s = self.val_string(name, v)?;
        if let Some((_, t)) = allowed.iter().find(|(k, _)| *k == s) {
            return Some(*t);
        }
        let names: Vec<String> = allowed.iter().map(|(k, _)| format!("{k:?}")).collect();
        self.sink.error(
            span.start,
            format!("{name} must be one of {}, got {s:?}", names.join(", ")),
        );
        None
    }

    pub fn secret(&mut self, r: &mut Reader<'_>, name: &str) -> Option<Secret> {
        self.string(r, name).map(Secret)
    }

    pub fn path(&mut self, r: &mut Reader<'_>, name: &str) -> Option<PathBuf> {
        self.string(r, name).map(PathBuf::from)
    }

    pub fn bool(&mut self, r: &mut Reader<'_>, name: &str) -> Option<bool> {
        let a = r.attr(name)?;
        let v = self.eval(a)?;
        match v.kind {
            V::Bool(b) => Some(b),
            _ => {
                self.type_error(name, "bool", &v);
                None
            }
        }
    }

    /// An integer in `min..=max`; `range_msg` overrides the default range message.
    pub fn int(
        &mut self,
        r: &mut Reader<'_>,
        name: &str,
        min: i64,
        max: i64,
        range_msg: Option<&str>,
    ) -> Option<i64> {
        let a = r.attr(name)?;
        let v = self.eval(a)?;
        let i = self.val_int(name, &v)?;
        if i < min || i > max {
            let msg = match range_msg {
                Some(m) => format!("{m}, got {i}"),
                None if max == i64::MAX => format!("{name} must be at least {min}, got {i}"),
                None => format!("{name} must be between {min} and {max}, got {i}"),
            };
            self.sink.error(v.span.start, msg);
            return None;
        }
        Some(i)
    }

    fn val_int(&mut self, name: &str, v: &Val) -> Option<i64> {
        match v.kind {
            V::Int(i) => Some(i),
            V::Float(f) => {
                self.sink.error(
                    v.span.start,
                    format!("{name}: expected a whole number, got {f}"),
                );
                None
            }
            _ => {
                self.type_error(name, "number", v);
                None
            }
        }
    }

    pub fn duration(&mut self, r: &mut Reader<'_>, name: &str) -> Option<Duration> {
        let a = r.attr(name)?;
        let v = self.eval(a)?;
        let span = v.span;
        let s = self.val_string(name, v)?;
        match parse_duration(&s) {
            Ok(d) => Some(d),
            Err(e) => {
                self.sink.error(span.start, format!("{name}: {e}"));
                None
            }
        }
    }

    /// A duration that must be greater than zero.
    pub fn positive_duration(&mut self, r: &mut Reader<'_>, name: &str) -> Option<Duration> {
        let at = r.attr(name).map(|a| a.value.span.start);
        let d = self.duration(r, name)?;
        if d.is_zero() {
            if let Some(at) = at {
                self.sink
                    .error(at, format!("{name} must be greater than zero"));
            }
            return None;
        }
        Some(d)
    }

    /// A byte count: a positive integer or a size string such as "256MiB".
    pub fn size(&mut self, r: &mut Reader<'_>, name: &str) -> Option<u64> {
        let a = r.attr(name)?;
        let v = self.eval(a)?;
        let span = v.span;
        let n = match v.kind {
            V::Str { s, .. } => match parse_size(&s) {
                Ok(n) => n,
                Err(e) => {
                    self.sink.error(span.start, format!("{name}: {e}"));
                    return None;
                }
            },
            V::Int(i) => u64::try_from(i).unwrap_or(0),
            _ => {
                self.type_error(name, "number or size string", &v);
                return None;
            }
        };
        if n == 0 {
            self.sink
                .error(span.start, format!("{name} must be greater than zero"));
            return None;
        }
        Some(n)
    }

    pub fn string_list(&mut self, r: &mut Reader<'_>, name: &str) -> Option<Vec<(String, Pos)>> {
        let a = r.attr(name)?;
        let v = self.eval(a)?;
        let V::List(items) = v.kind else {
            self.type_error(name, "list(string)", &v);
            return None;
        };
        let mut out = Vec::new();
        for item in items {
            let at = item.span.start;
            out.push((self.val_string(name, item)?, at));
        }
        Some(out)
    }

    /// The fields of the object attribute `name`, in the order written; a type error naming
    /// `want` when the value is not an object.
    fn object_fields(
        &mut self,
        r: &mut Reader<'_>,
        name: &str,
        want: &str,
    ) -> Option<Vec<(String, Val)>> {
        let a = r.attr(name)?;
        let v = self.eval(a)?;
        let V::Object(fields) = v.kind else {
            self.type_error(name, want, &v);
            return None;
        };
        Some(fields)
    }

    /// An object whose values are strings (Alloy's `map(string)`), in the order written.
    pub fn string_map(
        &mut self,
        r: &mut Reader<'_>,
        name: &str,
    ) -> Option<Vec<(String, String, Pos)>> {
        let fields = self.object_fields(r, name, "map(string)")?;
        let mut out = Vec::new();
        let mut ok = true;
        for (k, fv) in fields {
            let at = fv.span.start;
            match self.val_string(&format!("{name}[{k:?}]"), fv) {
                Some(s) => out.push((k, s, at)),
                None => ok = false,
            }
        }
        ok.then_some(out)
    }

    /// An object whose values are lists of strings (Alloy's `map(list(secret))`).
    pub fn list_map(
        &mut self,
        r: &mut Reader<'_>,
        name: &str,
    ) -> Option<Vec<(String, Vec<String>, Pos)>> {
        let fields = self.object_fields(r, name, "map(list(secret))")?;
        let mut out = Vec::new();
        let mut ok = true;
        for (k, fv) in fields {
            let at = fv.span.start;
            let V::List(items) = fv.kind else {
                self.type_error(&format!("{name}[{k:?}]"), "list(secret)", &fv);
                ok = false;
                continue;
            };
            let mut vals = Vec::new();
            for item in items {
                match self.val_string(&format!("{name}[{k:?}]"), item) {
                    Some(s) => vals.push(s),
                    None => ok = false,
                }
            }
            out.push((k, vals, at));
        }
        ok.then_some(out)
    }

    /// Reports "at most one of A and B" when both attributes are set; returns whether both were.
    pub fn exclusive(&mut self, r: &mut Reader<'_>, a: &str, b: &str, msg: &str) -> bool {
        match (r.attr(a), r.attr(b)) {
            (Some(x), Some(y)) => {
                let later = if x.name_span.start > y.name_span.start {
                    x
                } else {
                    y
                };
                self.sink.error(later.name_span.start, msg.to_string());
                true
            }
            _ => false,
        }
    }

    /// Accepts a block pyrogate does not act on, with a warning.
    pub fn ignored_block(&mut self, r: &mut Reader<'_>, name: &str, why: &str) {
        for b in r.blocks(name, self.sink) {
            self.sink.warn(
                b.name_span.start,
                format!("block {name} in {} is ignored by pyrogate: {why}", r.path),
            );
        }
    }
}
