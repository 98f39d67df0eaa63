//! Canonical formatter (`pyrogate fmt`).
//!
//! Owns: printing a parsed file in `alloy fmt` style — tab indentation, one blank line between
//! top-level blocks, `=` aligned across consecutive attribute lines (and object fields) as
//! Go's tabwriter does for `alloy fmt`, comments kept, literals printed exactly as written (so
//! secrets and escapes are never re-encoded). Does not evaluate anything. Pure, cold path.
//! Idempotent: formatting its own output changes nothing.

use super::ast::{Body, Comment, Element, Expr, ExprKind, Field, Stmt};

/// Prints `body` canonically; the result ends with one newline (or is empty).
pub(crate) fn format_body(body: &Body) -> String {
    let mut out = String::new();
    print_body(body, 0, true, &mut out);
    out
}

fn indent(out: &mut String, level: usize) {
    for _ in 0..level {
        out.push('\t');
    }
}

fn push_trailing(out: &mut String, comments: &[Comment]) {
    for c in comments {
        out.push(' ');
        out.push_str(&c.text);
    }
}

/// Whether the item at `i` starts a run of comments that leads straight into a block (so a
/// blank line separating it from the previous block goes before the comments).
fn starts_block_unit(items: &[super::ast::Item], i: usize) -> bool {
    let mut k = i;
    while let Some(item) = items.get(k) {
        if k > i && item.blank_before {
            return false;
        }
        match item.stmt {
            Stmt::Block(_) => return true,
            Stmt::Comment(_) => k += 1,
            Stmt::Attr(_) => return false,
        }
    }
    false
}

fn print_body(body: &Body, level: usize, top: bool, out: &mut String) {
    let items = &body.items;
    let mut i = 0;
    while let Some(item) = items.get(i) {
        if i > 0 {
            let prev = items.get(i - 1).map(|p| &p.stmt);
            let blank = item.blank_before
                || (top
                    && match prev {
                        Some(Stmt::Block(_)) => true,
                        Some(Stmt::Attr(_)) => starts_block_unit(items, i),
                        _ => false,
                    });
            if blank {
                out.push('\n');
            }
        }
        match &item.stmt {
            Stmt::Comment(c) => {
                indent(out, level);
                out.push_str(&c.text);
                out.push('\n');
                i += 1;
            }
            Stmt::Block(b) => {
                indent(out, level);
                out.push_str(&b.name);
                if let Some(l) = &b.label_text {
                    out.push(' ');
                    out.push_str(l);
                }
                if b.body.items.is_empty() {
                    out.push_str(" { }");
                } else {
                    out.push_str(" {\n");
                    print_body(&b.body, level + 1, false, out);
                    indent(out, level);
                    out.push('}');
                }
                push_trailing(out, &b.trailing);
                out.push('\n');
                i += 1;
            }
            Stmt::Attr(_) => {
                // A run of attributes aligned together: it ends at a blank line, a comment or
                // block, or after an attribute whose value spans lines (tabwriter semantics).
                let mut group = Vec::new();
                let mut j = i;
                while let Some(it) = items.get(j) {
                    let Stmt::Attr(a) = &it.stmt else { break };
                    if j > i && it.blank_before {
                        break;
                    }
                    let v = expr(&a.value, level);
                    let multiline = v.contains('\n');
                    group.push((a, v));
                    j += 1;
                    if multiline {
                        break;
                    }
                }
                let width = group
                    .iter()
                    .map(|(a, _)| a.name.chars().count())
                    .max()
                    .unwrap_or(0);
                // Trailing comments on consecutive lines line up too (a tabwriter column).
                let comment_cols = trailing_columns(
                    &group
                        .iter()
                        .map(|(a, v)| {
                            (
                                !a.trailing.is_empty() && !v.contains('\n'),
                                v.chars().count(),
                            )
                        })
                        .collect::<Vec<_>>(),
                );
                for ((a, v), col) in group.into_iter().zip(comment_cols) {
                    indent(out, level);
                    out.push_str(&a.name);
                    for _ in a.name.chars().count()..width {
                        out.push(' ');
                    }
                    out.push_str(" = ");
                    out.push_str(&v);
                    for _ in v.chars().count()..col {
                        out.push(' ');
                    }
                    push_trailing(out, &a.trailing);
                    out.push('\n');
                }
                i = j;
            }
        }
    }
}

/// For each line `(has_comment, value_width)`, the width to pad its value to so that the
/// comments of consecutive commented lines start in the same column.
fn trailing_columns(lines: &[(bool, usize)]) -> Vec<usize> {
    let mut cols = vec![0; lines.len()];
    let mut i = 0;
    while i < lines.len() {
        if !lines[i].0 {
            i += 1;
            continue;
        }
        let mut j = i;
        while j < lines.len() && lines[j].0 {
            j += 1;
        }
        let width = lines[i..j].iter().map(|l| l.1).max().unwrap_or(0);
        for c in &mut cols[i..j] {
            *c = width;
        }
        i = j;
    }
    cols
}

/// Prints an expression that starts on a line indented `level` tabs.
fn expr(e: &Expr, level: usize) -> String {
    match &e.kind {
        ExprKind::Literal { text, .. } => text.clone(),
        ExprKind::Ident(n) => n.clone(),
        ExprKind::Access { base, name } => format!("{}.{name}", expr(base, level)),
        ExprKind::Call { callee, args } => {
            let args: Vec<String> = args.iter().map(|a| expr(a, level)).collect();
            format!("{}({})", expr(callee, level), args.join(", "))
        }
        ExprKind::Add(a, b) => format!("{} + {}", expr(a, level), expr(b, level)),
        ExprKind::Neg(a) => format!("-{}", expr(a, level)),
        ExprKind::Paren(a) => format!("({})", expr(a, level)),
        ExprKind::List {
            elems,
            multiline,
            end_comments,
        } => {
            let multi = *multiline || needs_lines(elems) || !end_comments.is_empty();
            if !multi {
                let parts: Vec<String> = elems
                    .iter()
                    .map(|el| {
                        let mut s = expr(&el.value, level);
                        push_trailing(&mut s, &el.trailing);
                        s
                    })
                    .collect();
                return format!("[{}]", parts.join(", "));
            }
            let mut out = String::from("[\n");
            for el in elems {
                leading(&mut out, &el.leading, level + 1);
                indent(&mut out, level + 1);
                out.push_str(&expr(&el.value, level + 1));
                out.push(',');
                push_trailing(&mut out, &el.trailing);
                out.push('\n');
            }
            leading(&mut out, end_comments, level + 1);
            indent(&mut out, level);
            out.push(']');
            out
        }
        ExprKind::Object {
            fields,
            multiline,
            end_comments,
        } => {
            let multi = *multiline || needs_lines(fields) || !end_comments.is_empty();
            if !multi {
                if fields.is_empty() {
                    return "{}".to_string();
                }
                let parts: Vec<String> = fields
                    .iter()
                    .map(|f| {
                        let mut s =
                            format!("{} = {}", f.value.key_text, expr(&f.value.value, level));
                        push_trailing(&mut s, &f.trailing);
                        s
                    })
                    .collect();
                return format!("{{ {} }}", parts.join(", "));
            }
            let mut out = String::from("{\n");
            print_fields(fields, level + 1, &mut out);
            leading(&mut out, end_comments, level + 1);
            indent(&mut out, level);
            out.push('}');
            out
        }
    }
}

/// Object fields one per line, keys aligned within runs (as for attributes).
fn print_fields(fields: &[Element<Field>], level: usize, out: &mut String) {
    let mut i = 0;
    while i < fields.len() {
        let mut group = Vec::new();
        let mut j = i;
        while let Some(f) = fields.get(j) {
            if j > i && !f.leading.is_empty() {
                break;
            }
            let v = expr(&f.value.value, level);
            let multiline = v.contains('\n');
            group.push((f, v));
            j += 1;
            if multiline {
                break;
            }
        }
        let width = group
            .iter()
            .map(|(f, _)| f.value.key_text.chars().count())
            .max()
            .unwrap_or(0);
        for (f, v) in group {
            leading(out, &f.leading, level);
            indent(out, level);
            out.push_str(&f.value.key_text);
            for _ in f.value.key_text.chars().count()..width {
                out.push(' ');
            }
            out.push_str(" = ");
            out.push_str(&v);
            out.push(',');
            push_trailing(out, &f.trailing);
            out.push('\n');
        }
        i = j;
    }
}

fn leading(out: &mut String, comments: &[Comment], level: usize) {
    for c in comments {
        indent(out, level);
        out.push_str(&c.text);
        out.push('\n');
    }
}

/// Elements with comments on their own lines, or `//` comments, cannot share one line.
fn needs_lines<T>(elems: &[Element<T>]) -> bool {
    elems
        .iter()
        .any(|e| !e.leading.is_empty() || e.trailing.iter().any(Comment::is_line))
}

#[cfg(test)]
mod tests {
    use crate::config::format_source;

    fn fmt(src: &str) -> String {
        match format_source("t.alloy", src) {
            Ok(s) => s,
            Err(d) => panic!("{d}"),
        }
    }

    #[test]
    fn aligns_equals_uses_tabs_and_separates_top_level_blocks() {
        let src = "pyroscope.receive_http \"default\" {\n  http {\n    listen_address = \"0.0.0.0\"\n    listen_port = 9999\n  }\n  forward_to = [pyroscope.write.backend.receiver]\n}\npyroscope.write \"backend\" {\nendpoint {\nurl = \"http://pyroscope:4040\"\n}\n}\n";
        let want = "pyroscope.receive_http \"default\" {\n\thttp {\n\t\tlisten_address = \"0.0.0.0\"\n\t\tlisten_port    = 9999\n\t}\n\tforward_to = [pyroscope.write.backend.receiver]\n}\n\npyroscope.write \"backend\" {\n\tendpoint {\n\t\turl = \"http://pyroscope:4040\"\n\t}\n}\n";
        assert_eq!(fmt(src), want);
    }

    #[test]
    fn multiline_objects_align_keys_and_get_trailing_commas() {
        let src = "w {\n  external_labels = {\n    \"env\" = \"production\",\n    \"region\" = \"us\"\n  }\n}\n";
        let want = "w {\n\texternal_labels = {\n\t\t\"env\"    = \"production\",\n\t\t\"region\" = \"us\",\n\t}\n}\n";
        assert_eq!(fmt(src), want);
    }

    #[test]
    fn comments_are_kept_in_place() {
        let src = "// head\na \"x\" { // opens\n  b = 1 /* why */\n  // inner\n  c = [x /* e */, y]\n}\n// tail\n";
        let want = "// head\na \"x\" {\n\t// opens\n\tb = 1 /* why */\n\t// inner\n\tc = [x /* e */, y]\n}\n\n// tail\n";
        assert_eq!(fmt(src), want);
    }

    #[test]
    fn literals_are_printed_as_written() {
        let src = "a {\n\tp = \"s3cr\\u0065t\"\n\tq = `raw\\n`\n\tr = 1.50\n}\n";
        assert_eq!(fmt(src), src);
    }

    #[test]
    fn blank_line_goes_before_the_comment_that_introduces_a_block() {
        let src = "a { }\n// about b\nb { }\n";
        assert_eq!(fmt(src), "a { }\n\n// about b\nb { }\n");
    }

    #[test]
    fn multiline_value_ends_an_alignment_run() {
        let src = "a {\nx = 1\nlonger = [\n1,\n]\ny = 2\n}\n";
        let want = "a {\n\tx      = 1\n\tlonger = [\n\t\t1,\n\t]\n\ty = 2\n}\n";
        assert_eq!(fmt(src), want);
    }

    #[test]
    fn syntax_errors_are_reported_not_formatted() {
        assert!(format_source("t", "a {\n b = \n}\n").is_err());
    }
}
