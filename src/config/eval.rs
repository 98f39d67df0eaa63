//! Evaluator: expressions to values.
//!
//! Owns: the meaning of the expressions pyrogate supports — literals, lists, objects, `+`,
//! `env()`/`sys.env()`, `coalesce()`, `constants.*` and component references
//! (`pyroscope.write.LABEL.receiver`). Does not own types of arguments (see `build`) nor any
//! I/O: the environment comes in through [`Environment`]. Cold path, never panics.

use std::collections::HashSet;

use super::Environment;
use super::ast::{Expr, ExprKind, Literal};
use super::diag::{Sink, Span};

/// A value with the span of the expression that produced it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Val {
    pub kind: V,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum V {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str {
        s: String,
        /// Environment variables that were unset while computing this string (`env()` gave
        /// `""`), so an empty result can be explained in a warning.
        unset_env: Vec<String>,
    },
    List(Vec<Val>),
    /// Fields in the order written; spans point at each value.
    Object(Vec<(String, Val)>),
    /// `pyroscope.write.LABEL.receiver` or `pyroscope.relabel.LABEL.receiver`.
    Receiver(ReceiverRef),
    /// A reference to a component that is not a receiver, e.g. `pyroscope.write.LABEL`.
    Component(String),
}

/// Which component a `receiver` export belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ReceiverRef {
    /// `pyroscope.write.LABEL.receiver`.
    Writer(String),
    /// `pyroscope.relabel.LABEL.receiver`.
    Relabel(String),
}

impl V {
    /// The Alloy name of the value's type, for "expected X, got Y".
    pub fn type_name(&self) -> &'static str {
        match self {
            V::Null => "null",
            V::Bool(_) => "bool",
            V::Int(_) | V::Float(_) => "number",
            V::Str { .. } => "string",
            V::List(_) => "list",
            V::Object(_) => "object",
            V::Receiver(_) => "receiver",
            V::Component(_) => "component reference",
        }
    }

    /// Alloy's "zero value" test used by `coalesce`.
    fn is_zero(&self) -> bool {
        match self {
            V::Null => true,
            V::Bool(b) => !b,
            V::Int(i) => *i == 0,
            V::Float(f) => *f == 0.0,
            V::Str { s, .. } => s.is_empty(),
            V::List(l) => l.is_empty(),
            V::Object(o) => o.is_empty(),
            V::Receiver(_) | V::Component(_) => false,
        }
    }
}

/// Go's `runtime.GOOS` for this build, as Alloy's `constants.os` reports it.
fn go_os() -> &'static str {
    match std::env::consts::OS {
        "macos" => "darwin",
        other => other,
    }
}

/// Go's `runtime.GOARCH` for this build, as Alloy's `constants.arch` reports it.
fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64",
        "loongarch64" => "loong64",
        other => other,
    }
}

/// Evaluates expressions against the environment and the declared components.
pub(crate) struct Evaluator<'a> {
    pub env: &'a dyn Environment,
    /// Labels of declared `pyroscope.write` components.
    pub writers: &'a HashSet<String>,
    /// Labels of declared `pyroscope.relabel` components.
    pub relabels: &'a HashSet<String>,
    /// Labels of declared `pyroscope.receive_http` components.
    pub receivers: &'a HashSet<String>,
}

/// `a.b.c` as `["a", "b", "c"]`, when the expression is a plain reference.
fn path_of(e: &Expr) -> Option<Vec<&str>> {
    match &e.kind {
        ExprKind::Ident(n) => Some(vec![n.as_str()]),
        ExprKind::Access { base, name } => {
            let mut p = path_of(base)?;
            p.push(name.as_str());
            Some(p)
        }
        _ => None,
    }
}

fn string(s: String, span: Span) -> Val {
    Val {
        kind: V::Str {
            s,
            unset_env: Vec::new(),
        },
        span,
    }
}

impl Evaluator<'_> {
    /// Evaluates `e`; `None` means an error was reported.
    pub fn eval(&self, e: &Expr, sink: &mut Sink<'_>) -> Option<Val> {
        let span = e.span;
        let kind = match &e.kind {
            ExprKind::Literal { value, .. } => match value {
                Literal::Null => V::Null,
                Literal::Bool(b) => V::Bool(*b),
                Literal::Int(i) => V::Int(*i),
                Literal::Float(f) => V::Float(*f),
                Literal::Str(s) => return Some(string(s.clone(), span)),
            },
            ExprKind::Paren(inner) => return self.eval(inner, sink),
            ExprKind::Ident(_) | ExprKind::Access { .. } => return self.reference(e, sink),
            ExprKind::Call { callee, args } => return self.call(callee, args, span, sink),
            ExprKind::Neg(inner) => match self.eval(inner, sink)?.kind {
                V::Int(i) => V::Int(i.checked_neg().or_else(|| {
                    sink.error(span.start, "number is out of range");
                    None
                })?),
                V::Float(f) => V::Float(-f),
                other => {
                    sink.error(
                        span.start,
                        format!("cannot negate a value of type {}", other.type_name()),
                    );
                    return None;
                }
            },
            ExprKind::Add(a, b) => {
                let a = self.eval(a, sink);
                let b = self.eval(b, sink);
                return add(a?, b?, span, sink);
            }
            ExprKind::List { elems, .. } => {
                let mut out = Vec::with_capacity(elems.len());
                let mut ok = true;
                for el in elems {
                    match self.eval(&el.value, sink) {
                        Some(v) => out.push(v),
                        None => ok = false,
                    }
                }
                if !ok {
                    return None;
                }
                V::List(out)
            }
            ExprKind::Object { fields, .. } => {
                let mut out: Vec<(String, Val)> = Vec::with_capacity(fields.len());
                let mut ok = true;
                for f in fields {
                    let f = &f.value;
                    if out.iter().any(|(k, _)| *k == f.key) {
                        sink.error(
                            f.key_span.start,
                            format!("field {:?} appears more than once in the object", f.key),
                        );
                        ok = false;
                        continue;
                    }
                    match self.eval(&f.value, sink) {
                        Some(v) => out.push((f.key.clone(), v)),
                        None => ok = false,
                    }
                }
                if !ok {
                    return None;
                }
                V::Object(out)
            }
        };
        Some(Val { kind, span })
    }

    fn reference(&self, e: &Expr, sink: &mut Sink<'_>) -> Option<Val> {
        let span = e.span;
        let Some(path) = path_of(e) else {
            sink.error(
                span.start,
                "field access is only supported on references like pyroscope.write.LABEL.receiver",
            );
            return None;
        };
        let joined = path.join(".");
        match path.as_slice() {
            ["constants", "hostname"] => Some(string(self.env.hostname(), span)),
            ["constants", "os"] => Some(string(go_os().to_string(), span)),
            ["constants", "arch"] => Some(string(go_arch().to_string(), span)),
            ["constants", ..] => {
                sink.error(
                    span.start,
                    format!(
                        "unknown constant {joined} (pyrogate knows constants.hostname, constants.os and constants.arch)"
                    ),
                );
                None
            }
            ["env"] | ["sys", "env"] => {
                sink.error(
                    span.start,
                    format!("{joined} is a function; call it as {joined}(\"NAME\")"),
                );
                None
            }
            ["pyroscope", kind @ ("write" | "relabel"), label, rest @ ..] => {
                let (declared, exports) = if *kind == "write" {
                    (self.writers, "exports only \"receiver\"")
                } else {
                    (
                        self.relabels,
                        "exports \"receiver\" and \"rules\", and forward_to takes \"receiver\"",
                    )
                };
                if !declared.contains(*label) {
                    sink.error(
                        span.start,
                        format!("unknown component pyroscope.{kind}.{label}"),
                    );
                    return None;
                }
                match rest {
                    [] => Some(Val {
                        kind: V::Component(joined),
                        span,
                    }),
                    ["receiver"] => Some(Val {
                        kind: V::Receiver(if *kind == "write" {
                            ReceiverRef::Writer(label.to_string())
                        } else {
                            ReceiverRef::Relabel(label.to_string())
                        }),
                        span,
                    }),
                    _ => {
                        sink.error(
                            span.start,
                            format!(
                                "{joined} is not a receiver: pyroscope.{kind}.{label} {exports}"
                            ),
                        );
                        None
                    }
                }
            }
            ["pyroscope", "receive_http", label, ..] => {
                if self.receivers.contains(*label) {
                    sink.error(
                        span.start,
                        format!(
                            "{joined} is not a receiver: pyroscope.receive_http exports nothing"
                        ),
                    );
                } else {
                    sink.error(
                        span.start,
                        format!("unknown component pyroscope.receive_http.{label}"),
                    );
                }
                None
            }
            [a, b, label, ..] => {
                sink.error(span.start, format!("unknown component {a}.{b}.{label}"));
                None
            }
            _ => {
                sink.error(span.start, format!("unknown identifier {joined}"));
                None
            }
        }
    }

    fn call(&self, callee: &Expr, args: &[Expr], span: Span, sink: &mut Sink<'_>) -> Option<Val> {
        let name = path_of(callee).map(|p| p.join("."));
        match name.as_deref() {
            Some(f @ ("env" | "sys.env")) => {
                let [arg] = args else {
                    sink.error(
                        span.start,
                        format!("{f} takes exactly one argument, got {}", args.len()),
                    );
                    return None;
                };
                let v = self.eval(arg, sink)?;
                let V::Str { s: var, .. } = v.kind else {
                    sink.error(
                        v.span.start,
                        format!("{f}: expected string, got {}", v.kind.type_name()),
                    );
                    return None;
                };
                Some(match self.env.var(&var) {
                    Some(value) => string(value, span),
                    // As in Alloy (os.Getenv): an unset variable reads as "".
                    None => Val {
                        kind: V::Str {
                            s: String::new(),
                            unset_env: vec![var],
                        },
                        span,
                    },
                })
            }
            Some("coalesce") => {
                let mut vals = Vec::with_capacity(args.len());
                let mut ok = true;
                for a in args {
                    match self.eval(a, sink) {
                        Some(v) => vals.push(v),
                        None => ok = false,
                    }
                }
                if !ok {
                    return None;
                }
                // Alloy's coalesce: the first non-zero argument, else the last one.
                let mut unset = Vec::new();
                for v in &vals {
                    if let V::Str { unset_env, .. } = &v.kind {
                        unset.extend(unset_env.iter().cloned());
                    }
                }
                let chosen = match vals.iter().position(|v| !v.kind.is_zero()) {
                    Some(i) => vals.swap_remove(i),
                    None => match vals.pop() {
                        Some(v) => v,
                        None => {
                            return Some(Val {
                                kind: V::Null,
                                span,
                            });
                        }
                    },
                };
                let kind = match chosen.kind {
                    V::Str { s, .. } if s.is_empty() => V::Str {
                        s,
                        unset_env: unset,
                    },
                    other => other,
                };
                Some(Val { kind, span })
            }
            Some(other) => {
                sink.error(
                    span.start,
                    format!(
                        "function {other} is not supported by pyrogate (supported: env, sys.env, coalesce)"
                    ),
                );
                None
            }
            None => {
                sink.error(span.start, "only named functions can be called");
                None
            }
        }
    }
}

fn add(a: Val, b: Val, span: Span, sink: &mut Sink<'_>) -> Option<Val> {
    let kind = match (a.kind, b.kind) {
        (
            V::Str {
                s: mut sa,
                unset_env: mut ua,
            },
            V::Str {
                s: sb,
                unset_env: ub,
            },
        ) => {
            sa.push_str(&sb);
            ua.extend(ub);
            V::Str {
                s: sa,
                unset_env: ua,
            }
        }
        (V::Int(x), V::Int(y)) => match x.checked_add(y) {
            Some(z) => V::Int(z),
            None => {
                sink.error(span.start, "number is out of range");
                return None;
            }
        },
        (V::Int(x), V::Float(y)) => V::Float(x as f64 + y),
        (V::Float(x), V::Int(y)) => V::Float(x + y as f64),
        (V::Float(x), V::Float(y)) => V::Float(x + y),
        (x, y) => {
            sink.error(
                span.start,
                format!(
                    "cannot add {} and {} (+ joins two strings or adds two numbers)",
                    x.type_name(),
                    y.type_name()
                ),
            );
            return None;
        }
    };
    Some(Val { kind, span })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{lexer, parser};

    struct FakeEnv;
    impl Environment for FakeEnv {
        fn var(&self, name: &str) -> Option<String> {
            match name {
                "USER" => Some("alice".to_string()),
                "EMPTY" => Some(String::new()),
                _ => None,
            }
        }
        fn hostname(&self) -> String {
            "host-1".to_string()
        }
    }

    /// Evaluates the value of `x = EXPR` and returns the value or the error messages.
    fn eval(expr: &str) -> Result<V, Vec<String>> {
        let src = format!("x = {expr}\n");
        let mut sink = Sink::new("t", &src);
        let toks = lexer::lex(&src, &mut sink);
        let body = parser::parse(&toks, &mut sink);
        let writers: HashSet<String> = ["backend".to_string()].into();
        let relabels: HashSet<String> = ["clean".to_string()].into();
        let receivers: HashSet<String> = ["in".to_string()].into();
        let ev = Evaluator {
            env: &FakeEnv,
            writers: &writers,
            relabels: &relabels,
            receivers: &receivers,
        };
        let v = match &body.items.first().map(|i| &i.stmt) {
            Some(crate::config::ast::Stmt::Attr(a)) => ev.eval(&a.value, &mut sink),
            _ => None,
        };
        let d = sink.finish();
        match v {
            Some(v) if d.is_empty() => Ok(v.kind),
            _ => Err(d.iter().map(|d| d.message.clone()).collect()),
        }
    }

    fn s(v: &str) -> V {
        V::Str {
            s: v.to_string(),
            unset_env: Vec::new(),
        }
    }

    #[test]
    fn env_reads_set_variables_and_unset_ones_are_empty_with_a_note() {
        assert_eq!(eval(r#"env("USER")"#), Ok(s("alice")));
        assert_eq!(eval(r#"sys.env("USER")"#), Ok(s("alice")));
        assert_eq!(
            eval(r#"env("NOPE")"#),
            Ok(V::Str {
                s: String::new(),
                unset_env: vec!["NOPE".to_string()]
            })
        );
    }

    #[test]
    fn plus_concatenates_strings_and_adds_numbers() {
        assert_eq!(eval(r#""a" + env("USER") + "b""#), Ok(s("aaliceb")));
        assert_eq!(eval("1 + 2"), Ok(V::Int(3)));
        assert_eq!(
            eval(r#""a" + 1"#),
            Err(vec![
                "cannot add string and number (+ joins two strings or adds two numbers)"
                    .to_string()
            ])
        );
    }

    #[test]
    fn coalesce_returns_first_non_empty_else_last() {
        assert_eq!(eval(r#"coalesce(env("NOPE"), "x")"#), Ok(s("x")));
        assert_eq!(eval(r#"coalesce(env("EMPTY"), null, "", "y")"#), Ok(s("y")));
        assert_eq!(
            eval(r#"coalesce(env("NOPE"), "")"#),
            Ok(V::Str {
                s: String::new(),
                unset_env: vec!["NOPE".to_string()]
            })
        );
    }

    #[test]
    fn constants_come_from_the_environment_and_build() {
        assert_eq!(eval("constants.hostname"), Ok(s("host-1")));
        assert_eq!(eval("constants.os"), Ok(s(go_os())));
        assert!(eval("constants.nope").is_err());
    }

    #[test]
    fn references_resolve_to_receivers_or_precise_errors() {
        assert_eq!(
            eval("pyroscope.write.backend.receiver"),
            Ok(V::Receiver(ReceiverRef::Writer("backend".to_string())))
        );
        assert_eq!(
            eval("pyroscope.write.backend"),
            Ok(V::Component("pyroscope.write.backend".to_string()))
        );
        assert_eq!(
            eval("pyroscope.relabel.clean.receiver"),
            Ok(V::Receiver(ReceiverRef::Relabel("clean".to_string())))
        );
        assert_eq!(
            eval("pyroscope.relabel.clean.rules"),
            Err(vec![
                "pyroscope.relabel.clean.rules is not a receiver: pyroscope.relabel.clean exports \"receiver\" and \"rules\", and forward_to takes \"receiver\""
                    .to_string()
            ])
        );
        assert_eq!(
            eval("pyroscope.relabel.dirty.receiver"),
            Err(vec![
                "unknown component pyroscope.relabel.dirty".to_string()
            ])
        );
        assert_eq!(
            eval("pyroscope.write.missing.receiver"),
            Err(vec![
                "unknown component pyroscope.write.missing".to_string()
            ])
        );
        assert_eq!(
            eval("pyroscope.write.backend.foo"),
            Err(vec![
                "pyroscope.write.backend.foo is not a receiver: pyroscope.write.backend exports only \"receiver\""
                    .to_string()
            ])
        );
        assert_eq!(
            eval("pyroscope.receive_http.in.receiver"),
            Err(vec![
                "pyroscope.receive_http.in.receiver is not a receiver: pyroscope.receive_http exports nothing"
                    .to_string()
            ])
        );
    }

    #[test]
    fn unsupported_function_is_named() {
        assert_eq!(
            eval(r#"concat("a")"#),
            Err(vec![
                "function concat is not supported by pyrogate (supported: env, sys.env, coalesce)"
                    .to_string()
            ])
        );
    }

    #[test]
    fn lists_and_objects_evaluate_elementwise() {
        assert_eq!(eval(r#"[1, "a"]"#).map(|v| v.type_name()), Ok("list"));
        assert_eq!(
            eval(r#"{ a = 1, "b" = 2 }"#).map(|v| v.type_name()),
            Ok("object")
        );
        assert_eq!(
            eval(r#"{ a = 1, a = 2 }"#),
            Err(vec![
                "field \"a\" appears more than once in the object".to_string()
            ])
        );
    }

    #[test]
    fn negative_numbers() {
        assert_eq!(eval("-5"), Ok(V::Int(-5)));
        assert_eq!(eval("-1.5"), Ok(V::Float(-1.5)));
    }
}
