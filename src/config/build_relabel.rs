//! Builder for `pyroscope.relabel` blocks and for the component graph.
//!
//! Owns: the arguments of `pyroscope.relabel` (`forward_to`, `max_cache_size`, `rule` blocks
//! with Alloy's defaults, validated by `relabel::Rule::new` and reported at the attribute they
//! concern), resolving any `forward_to` list into [`Target`]s, and rejecting cycles between
//! relabel components. Does not own the relabelling semantics (see `relabel`) or what the
//! runtime builds from the graph. Pure, cold path.

use std::collections::HashMap;

use super::ast::{Block, ExprKind};
use super::diag::{Pos, Sink};
use super::eval::{ReceiverRef, V, Val};
use super::model::{DEFAULT_RELABEL_CACHE_SIZE, Relabel, Target};
use super::reader::{Cx, Reader};
use crate::relabel::{Action, Rule, RuleSpec};

/// The components a `forward_to` list may name, by label.
pub(crate) struct Targets<'a> {
    /// `pyroscope.write` labels → index in `Config::writers`.
    pub writers: HashMap<&'a str, usize>,
    /// `pyroscope.relabel` labels → index in `Config::relabels`.
    pub relabels: HashMap<&'a str, usize>,
}

impl Cx<'_, '_, '_> {
    /// The `forward_to` attribute of `r` (required): the targets in the order written,
    /// duplicates removed, and where each one was written.
    pub fn forward_to(
        &mut self,
        r: &mut Reader<'_>,
        targets: &Targets<'_>,
    ) -> (Vec<Target>, Vec<Pos>) {
        let fwd_attr = r.attr("forward_to");
        self.require(r, "forward_to", fwd_attr.is_some());
        let (mut out, mut at) = (Vec::new(), Vec::new());
        let Some(a) = fwd_attr else {
            return (out, at);
        };
        // A list literal is evaluated element by element so that one bad reference does not
        // hide the problems of the others.
        let items: Vec<Val> = match &a.value.kind {
            ExprKind::List { elems, .. } => elems
                .iter()
                .filter_map(|el| self.ev.eval(&el.value, self.sink))
                .collect(),
            _ => match self.eval(a) {
                Some(Val {
                    kind: V::List(items),
                    ..
                }) => items,
                Some(v) => {
                    self.type_error("forward_to", "list(ProfilesReceiver)", &v);
                    Vec::new()
                }
                None => Vec::new(),
            },
        };
        for item in items {
            match &item.kind {
                V::Receiver(reference) => {
                    let target = match reference {
                        ReceiverRef::Writer(l) => {
                            targets.writers.get(l.as_str()).map(|&i| Target::Writer(i))
                        }
                        ReceiverRef::Relabel(l) => targets
                            .relabels
                            .get(l.as_str())
                            .map(|&i| Target::Relabel(i)),
                    };
                    if let Some(t) = target
                        && !out.contains(&t)
                    {
                        out.push(t);
                        at.push(item.span.start);
                    }
                }
                V::Component(path) => self.sink.error(
                    item.span.start,
                    format!("{path} is not a receiver; forward_to takes {path}.receiver"),
                ),
                _ => self.type_error("forward_to element", "receiver", &item),
            }
        }
        (out, at)
    }

    /// One `pyroscope.relabel` block, with the position of each `forward_to` target (for cycle
    /// messages); `None` when it is invalid (reported).
    pub fn relabel(&mut self, b: &Block, targets: &Targets<'_>) -> Option<(Relabel, Vec<Pos>)> {
        let label = b.label.clone().unwrap_or_default();
        let mut r = Reader::new(b.display_name(), b, self.sink);
        let errors_before = self.sink.error_count();
        let (forward_to, at) = self.forward_to(&mut r, targets);
        // Alloy builds its cache with `lru.New(max_cache_size)`, which refuses sizes below 1.
        let max_cache_size = self
            .int(
                &mut r,
                "max_cache_size",
                1,
                i64::from(u32::MAX),
                Some("max_cache_size must be a positive number of cache entries"),
            )
            .map_or(DEFAULT_RELABEL_CACHE_SIZE, |n| n as usize);
        let mut rules = Vec::new();
        for rb in r.blocks("rule", self.sink) {
            if let Some(rule) = self.rule(rb, &r.path) {
                rules.push(rule);
            }
        }
        r.finish(self.sink);
        (self.sink.error_count() == errors_before).then_some((
            Relabel {
                label,
                forward_to,
                rules,
                max_cache_size,
            },
            at,
        ))
    }

    /// One `rule` block: Alloy's defaults for what is left out, then `Rule::new`'s checks,
    /// reported at the attribute each one is about.
    fn rule(&mut self, b: &Block, parent: &str) -> Option<Rule> {
        let mut r = Reader::new(format!("{parent} > rule"), b, self.sink);
        let errors_before = self.sink.error_count();
        let mut spec = RuleSpec::default();
        let mut ok = true;
        if let Some(list) = self.string_list(&mut r, "source_labels") {
            spec.source_labels = list.into_iter().map(|(s, _)| s).collect();
        }
        for (name, slot) in [
            ("separator", &mut spec.separator),
            ("regex", &mut spec.regex),
            ("target_label", &mut spec.target_label),
            ("replacement", &mut spec.replacement),
        ] {
            if let Some(v) = self.string(&mut r, name) {
                *slot = v;
            }
        }
        if let Some(m) = self.int(&mut r, "modulus", 0, i64::MAX, None) {
            spec.modulus = m as u64;
        }
        if let Some(a) = r.attr("action")
            && let Some(v) = self.eval(a)
        {
            let at = v.span.start;
            match self.val_string("action", v).map(|s| Action::parse(&s)) {
                Some(Ok(action)) => spec.action = action,
                Some(Err(e)) => {
                    self.sink.error(at, e.to_string());
                    ok = false;
                }
                None => ok = false,
            }
        }
        let at = r.at;
        let value_pos = |name: &str| {
            b.body.items.iter().find_map(|item| match &item.stmt {
                super::ast::Stmt::Attr(a) if a.name == name => Some(a.value.span.start),
                _ => None,
            })
        };
        r.finish(self.sink);
        // A rule with an attribute already reported is not validated as a whole: its spec
        // holds defaults where the bad values were, so the whole-rule message would mislead.
        if !ok || self.sink.error_count() != errors_before {
            return None;
        }
        match Rule::new(spec) {
            Ok(rule) => Some(rule),
            Err(e) => {
                let pos = value_pos(e.field()).unwrap_or(at);
                self.sink.error(pos, e.to_string());
                None
            }
        }
    }
}

/// Reports every cycle between relabel components (each `forward_to` edge that closes one),
/// naming the components in order: `pyroscope.relabel.a -> pyroscope.relabel.b ->
/// pyroscope.relabel.a`. A cycle would send one profile around forever. Components that
/// failed to build (`None`, already reported) have no edges.
pub(crate) fn check_cycles(relabels: &[Option<(Relabel, Vec<Pos>)>], sink: &mut Sink<'_>) {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        OnPath,
        Done,
    }
    fn visit(
        i: usize,
        relabels: &[Option<(Relabel, Vec<Pos>)>],
        marks: &mut [Mark],
        path: &mut Vec<usize>,
        sink: &mut Sink<'_>,
    ) {
        marks[i] = Mark::OnPath;
        path.push(i);
        let Some((r, at)) = &relabels[i] else {
            marks[i] = Mark::Done;
            path.pop();
            return;
        };
        for (t, pos) in r.forward_to.iter().zip(at) {
            let Target::Relabel(j) = *t else { continue };
            match marks[j] {
                Mark::New => visit(j, relabels, marks, path, sink),
                Mark::OnPath => {
                    let start = path.iter().position(|&p| p == j).unwrap_or(0);
                    let names: Vec<String> = path[start..]
                        .iter()
                        .chain(std::iter::once(&j))
                        .map(|&k| {
                            let label = relabels[k].as_ref().map_or("?", |(r, _)| &r.label);
                            format!("pyroscope.relabel.{label}")
                        })
                        .collect();
                    sink.error(
                        *pos,
                        format!(
                            "forward_to makes a cycle: {}; a profile would be relabelled forever",
                            names.join(" -> ")
                        ),
                    );
                }
                Mark::Done => {}
            }
        }
        path.pop();
        marks[i] = Mark::Done;
    }
    let mut marks = vec![Mark::New; relabels.len()];
    for i in 0..relabels.len() {
        if marks[i] == Mark::New {
            visit(i, relabels, &mut marks, &mut Vec::new(), sink);
        }
    }
}
