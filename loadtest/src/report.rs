//! Tables for humans and for the README: aligned plain text and Markdown.
//!
//! Owns: column layout (first column left-aligned, the rest right-aligned, as numbers read best)
//! and the number formats the reports share. Does not own what goes in the cells. Pure. Cold.

/// A table as aligned plain text, header underlined.
pub fn text_table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let widths = widths(headers, rows);
    let mut out = String::new();
    let line = |cells: &[String], out: &mut String| {
        let mut parts = Vec::with_capacity(cells.len());
        for (i, c) in cells.iter().enumerate() {
            let w = widths.get(i).copied().unwrap_or(0);
            parts.push(if i == 0 {
                format!("{c:<w$}")
            } else {
                format!("{c:>w$}")
            });
        }
        out.push_str(parts.join("  ").trim_end());
        out.push('\n');
    };
    let head: Vec<String> = headers.iter().map(|h| h.to_string()).collect();
    line(&head, &mut out);
    let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
    line(&rule, &mut out);
    for r in rows {
        line(r, &mut out);
    }
    out
}

/// A GitHub Markdown table (numbers right-aligned).
pub fn markdown_table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut out = format!("| {} |\n|", headers.join(" | "));
    for i in 0..headers.len() {
        out.push_str(if i == 0 { "---|" } else { "---:|" });
    }
    out.push('\n');
    for r in rows {
        out.push_str(&format!("| {} |\n", r.join(" | ")));
    }
    out
}

fn widths(headers: &[&str], rows: &[Vec<String>]) -> Vec<usize> {
    let mut w: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if i >= w.len() {
                w.push(0);
            }
            w[i] = w[i].max(c.chars().count());
        }
    }
    w
}

/// `12,345` (thousands separated by commas).
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

/// A ratio `a / b` as `0.42×`, or `—` when undefined.
pub fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}×", a / b),
        _ => "—".to_string(),
    }
}

/// A value with one decimal, or `—`.
pub fn opt1(v: Option<f64>) -> String {
    v.map_or_else(|| "—".to_string(), |v| format!("{v:.1}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_tables_align_numbers_right() {
        let t = text_table(
            &["system", "uploads/s"],
            &[
                vec!["pyrogate".into(), "812".into()],
                vec!["nginx".into(), "12,345".into()],
            ],
        );
        assert_eq!(
            t,
            "system    uploads/s\n--------  ---------\npyrogate        812\nnginx        12,345\n"
        );
    }

    #[test]
    fn markdown_tables_have_an_alignment_row() {
        let t = markdown_table(&["a", "b"], &[vec!["x".into(), "1".into()]]);
        assert_eq!(t, "| a | b |\n|---|---:|\n| x | 1 |\n");
    }

    #[test]
    fn number_formats() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(ratio(Some(1.0), Some(4.0)), "0.25×");
        assert_eq!(ratio(None, Some(4.0)), "—");
        assert_eq!(ratio(Some(1.0), Some(0.0)), "—");
        assert_eq!(opt1(Some(2.26)), "2.3");
        assert_eq!(opt1(None), "—");
    }
}
