//! Diagnostics: positioned errors and warnings about a configuration file.
//!
//! Owns: [`Pos`]/[`Span`] (1-based line and column, columns counted in characters), the
//! [`Diagnostic`]/[`Diagnostics`] types and their rustc-style rendering
//! (`file:line:col: error: message`, the source line, a caret). Does not own deciding what is
//! wrong; the lexer, parser and builder report into a [`Sink`]. Cold path.
//!
//! Modelled on Alloy's `syntax/diag/diag.go`: every problem is collected, none stops the run.

use std::fmt;

/// A position in a source file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Pos {
    /// Byte offset into the source.
    pub offset: usize,
    /// 1-based line.
    pub line: u32,
    /// 1-based column, in characters (so a caret can be drawn under it).
    pub col: u32,
}

/// A source range: where a node starts and the byte offset just past its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Span {
    pub start: Pos,
    pub end: usize,
}

impl Span {
    pub fn new(start: Pos, end: usize) -> Self {
        Span { start, end }
    }

    /// A span covering `self` through `other`.
    pub fn to(self, other: Span) -> Span {
        Span {
            start: self.start,
            end: other.end.max(self.end),
        }
    }
}

/// How bad a diagnostic is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// The configuration is rejected.
    Error,
    /// The configuration is accepted, but something deserves attention.
    Warning,
}

impl Severity {
    fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        }
    }
}

/// One problem found in a configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    pub file: String,
    /// 1-based line; 0 when the problem concerns the whole file (e.g. it cannot be read).
    pub line: u32,
    /// 1-based column in characters; 0 with `line == 0`.
    pub col: u32,
    pub message: String,
    /// The text of line `line`, without its line terminator, for the caret display.
    source_line: String,
}

impl Diagnostic {
    /// A diagnostic about a whole file (no position), e.g. an I/O error.
    pub fn file_error(file: &str, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Error,
            file: file.to_string(),
            line: 0,
            col: 0,
            message: message.into(),
            source_line: String::new(),
        }
    }

    /// The source line the diagnostic points into.
    pub fn source_line(&self) -> &str {
        &self.source_line
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            return writeln!(
                f,
                "{}: {}: {}",
                self.file,
                self.severity.as_str(),
                self.message
            );
        }
        writeln!(
            f,
            "{}:{}:{}: {}: {}",
            self.file,
            self.line,
            self.col,
            self.severity.as_str(),
            self.message
        )?;
        writeln!(f, "{}", self.source_line)?;
        // Keep tabs so the caret lines up whatever the terminal's tab width is.
        let mut caret = String::new();
        for ch in self
            .source_line
            .chars()
            .take(self.col.saturating_sub(1) as usize)
        {
            caret.push(if ch == '\t' { '\t' } else { ' ' });
        }
        caret.push('^');
        writeln!(f, "{caret}")
    }
}

/// Every diagnostic produced for one file, sorted by position.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Diagnostics {
    items: Vec<Diagnostic>,
}

impl Diagnostics {
    pub fn new() -> Self {
        Diagnostics::default()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn has_errors(&self) -> bool {
        self.items.iter().any(|d| d.severity == Severity::Error)
    }

    pub fn iter(&self) -> std::slice::Iter<'_, Diagnostic> {
        self.items.iter()
    }

    pub fn push(&mut self, d: Diagnostic) {
        self.items.push(d);
    }

    /// Only the warnings.
    pub fn warnings(&self) -> impl Iterator<Item = &Diagnostic> {
        self.items
            .iter()
            .filter(|d| d.severity == Severity::Warning)
    }

    /// Only the errors.
    pub fn errors(&self) -> impl Iterator<Item = &Diagnostic> {
        self.items.iter().filter(|d| d.severity == Severity::Error)
    }
}

impl<'a> IntoIterator for &'a Diagnostics {
    type Item = &'a Diagnostic;
    type IntoIter = std::slice::Iter<'a, Diagnostic>;
    fn into_iter(self) -> Self::IntoIter {
        self.items.iter()
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for d in &self.items {
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

/// Where the lexer, parser and builder report problems for one source file.
#[derive(Debug)]
pub(crate) struct Sink<'s> {
    file: String,
    source: &'s str,
    items: Vec<Diagnostic>,
}

impl<'s> Sink<'s> {
    pub(crate) fn new(file: &str, source: &'s str) -> Self {
        Sink {
            file: file.to_string(),
            source,
            items: Vec::new(),
        }
    }

    pub(crate) fn error(&mut self, at: Pos, message: impl Into<String>) {
        self.push(Severity::Error, at, message.into());
    }

    pub(crate) fn warn(&mut self, at: Pos, message: impl Into<String>) {
        self.push(Severity::Warning, at, message.into());
    }

    pub(crate) fn source(&self) -> &'s str {
        self.source
    }

    pub(crate) fn has_errors(&self) -> bool {
        self.items.iter().any(|d| d.severity == Severity::Error)
    }

    /// How many errors were reported so far (a builder compares counts to tell whether its
    /// own block was valid).
    pub(crate) fn error_count(&self) -> usize {
        self.items
            .iter()
            .filter(|d| d.severity == Severity::Error)
            .count()
    }

    fn push(&mut self, severity: Severity, at: Pos, message: String) {
        let line_index = at.line.saturating_sub(1) as usize;
        let source_line = self
            .source
            .lines()
            .nth(line_index)
            .unwrap_or("")
            .trim_end_matches('\r')
            .to_string();
        self.items.push(Diagnostic {
            severity,
            file: self.file.clone(),
            line: at.line,
            col: at.col,
            message,
            source_line,
        });
    }

    /// All diagnostics, sorted by position (stable, so same-place problems keep their order).
    pub(crate) fn finish(mut self) -> Diagnostics {
        self.items.sort_by_key(|d| (d.line, d.col));
        Diagnostics { items: self.items }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_renders_location_source_line_and_caret_with_tabs_kept() {
        let src = "a {\n\tb = 1\n}\n";
        let mut sink = Sink::new("x.alloy", src);
        sink.error(
            Pos {
                offset: 5,
                line: 2,
                col: 2,
            },
            "unknown attribute \"b\"",
        );
        let out = sink.finish().to_string();
        assert_eq!(
            out,
            "x.alloy:2:2: error: unknown attribute \"b\"\n\tb = 1\n\t^\n"
        );
    }

    #[test]
    fn warning_renders_with_warning_word() {
        let mut sink = Sink::new("f", "abc");
        sink.warn(
            Pos {
                offset: 1,
                line: 1,
                col: 2,
            },
            "m",
        );
        let d = sink.finish();
        assert!(!d.has_errors());
        assert_eq!(d.to_string(), "f:1:2: warning: m\nabc\n ^\n");
    }

    #[test]
    fn file_level_error_has_no_position() {
        let d = Diagnostic::file_error("missing.alloy", "cannot read file: not found");
        assert_eq!(
            d.to_string(),
            "missing.alloy: error: cannot read file: not found\n"
        );
    }

    #[test]
    fn diagnostics_are_sorted_by_position() {
        let mut sink = Sink::new("f", "a\nb\n");
        sink.error(
            Pos {
                offset: 2,
                line: 2,
                col: 1,
            },
            "second",
        );
        sink.error(
            Pos {
                offset: 0,
                line: 1,
                col: 1,
            },
            "first",
        );
        let d = sink.finish();
        let msgs: Vec<_> = d.iter().map(|d| d.message.as_str()).collect();
        assert_eq!(msgs, ["first", "second"]);
    }
}
