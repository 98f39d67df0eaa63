//! Parser: tokens to [`ast::Body`].
//!
//! Owns: the grammar of the Alloy subset (blocks, attributes, expressions), attaching comments
//! and blank lines to the tree for the formatter, and recovering from syntax errors at the next
//! statement so that every problem in a file is reported in one run. Does not own evaluation.
//! Pure, cold path; never panics, and bounds nesting so hostile input cannot overflow the stack.

use super::ast::{Attribute, Block, Body, Comment, Item, Stmt};
use super::diag::{Sink, Span};
use super::lexer::{TokKind, Token};

mod expr;

/// Deepest nesting of blocks and expressions accepted. Real configurations nest four or five
/// levels (`pyroscope.write > endpoint > oauth2 > tls_config`); the bound keeps recursion, and
/// so stack use, small on hostile input.
pub const MAX_NESTING: usize = 64;

/// Most operands of one `a + b + ...` chain. The chain becomes a left-leaning tree that the
/// evaluator and formatter walk recursively, so it is bounded like nesting; real
/// configurations join two or three strings.
pub const MAX_CONCAT_TERMS: usize = 64;

/// Parses a whole file. Problems go to `sink`; the tree is returned even when some
/// statements were malformed (they are left out).
pub(crate) fn parse(tokens: &[Token], sink: &mut Sink<'_>) -> Body {
    let mut p = Parser {
        toks: tokens,
        i: 0,
        sink,
        stray: Vec::new(),
        depth: 0,
        bad: false,
    };
    p.parse_body(None)
}

struct Parser<'t, 'k, 's> {
    toks: &'t [Token],
    i: usize,
    sink: &'k mut Sink<'s>,
    /// Comments met inside an expression where no element could own them; the enclosing
    /// statement takes them as trailing comments so that none is ever lost.
    stray: Vec<Comment>,
    depth: usize,
    /// The current statement already has a reported error; skip it without piling on more.
    bad: bool,
}

fn describe(kind: &TokKind) -> String {
    match kind {
        TokKind::Ident(n) => format!("identifier {n}"),
        TokKind::Str(_) => "string".to_string(),
        TokKind::Number => "number".to_string(),
        TokKind::LBrace => "\"{\"".to_string(),
        TokKind::RBrace => "\"}\"".to_string(),
        TokKind::LBrack => "\"[\"".to_string(),
        TokKind::RBrack => "\"]\"".to_string(),
        TokKind::LParen => "\"(\"".to_string(),
        TokKind::RParen => "\")\"".to_string(),
        TokKind::Comma => "\",\"".to_string(),
        TokKind::Dot => "\".\"".to_string(),
        TokKind::Assign => "\"=\"".to_string(),
        TokKind::Plus => "\"+\"".to_string(),
        TokKind::Minus => "\"-\"".to_string(),
        TokKind::Op(o) => format!("operator {o}"),
        TokKind::Newline => "newline".to_string(),
        TokKind::Comment(_) => "comment".to_string(),
        TokKind::Invalid => "invalid character".to_string(),
        TokKind::Eof => "end of file".to_string(),
    }
}

/// What `collect_trivia` found between two tokens.
struct Trivia {
    /// Comments before the first newline.
    same_line: Vec<Comment>,
    /// Comments after it.
    later: Vec<Comment>,
    newline: bool,
}

impl Parser<'_, '_, '_> {
    fn tok(&self) -> &Token {
        // The token list always ends with Eof and `i` never moves past it.
        let last = self.toks.len().saturating_sub(1);
        &self.toks[self.i.min(last)]
    }

    fn kind(&self) -> &TokKind {
        &self.tok().kind
    }

    fn span(&self) -> Span {
        self.tok().span
    }

    fn advance(&mut self) {
        if !matches!(self.kind(), TokKind::Eof) {
            self.i += 1;
        }
    }

    fn error(&mut self, span: Span, msg: impl Into<String>) {
        if !self.bad {
            self.sink.error(span.start, msg);
        }
        self.bad = true;
    }

    /// Reports "expected {what}, got {the current token}" at the current token.
    fn expected(&mut self, what: &str) {
        let msg = format!("expected {what}, got {}", describe(self.kind()));
        let span = self.span();
        self.error(span, msg);
    }

    fn comment_here(&self) -> Option<Comment> {
        match self.kind() {
            TokKind::Comment(t) => Some(Comment {
                text: t.clone(),
                span: self.span(),
            }),
            _ => None,
        }
    }

    /// Skips newlines and comments, sorting the comments by whether a newline came first.
    fn collect_trivia(&mut self) -> Trivia {
        let mut t = Trivia {
            same_line: Vec::new(),
            later: Vec::new(),
            newline: false,
        };
        loop {
            if let Some(c) = self.comment_here() {
                if t.newline {
                    t.later.push(c);
                } else {
                    t.same_line.push(c);
                }
            } else if matches!(self.kind(), TokKind::Newline) {
                t.newline = true;
            } else {
                return t;
            }
            self.advance();
        }
    }

    /// Skips to the end of the current statement: a newline or a `}` at the statement's own
    /// nesting level (neither consumed), or the end of the file.
    fn recover(&mut self) {
        let mut depth = 0usize;
        loop {
            match self.kind() {
                TokKind::Eof => return,
                TokKind::Newline | TokKind::RBrace if depth == 0 => return,
                TokKind::LBrace | TokKind::LBrack | TokKind::LParen => depth += 1,
                TokKind::RBrace | TokKind::RBrack | TokKind::RParen => {
                    depth = depth.saturating_sub(1)
                }
                _ => {}
            }
            self.advance();
        }
    }

    /// `name`: the enclosing block's name and where it opened, `None` at the top level.
    fn parse_body(&mut self, enclosing: Option<(&str, Span)>) -> Body {
        let mut items: Vec<Item> = Vec::new();
        let mut newlines = 0usize;
        loop {
            match self.kind().clone() {
                TokKind::Newline => {
                    newlines += 1;
                    self.advance();
                }
                TokKind::Comment(text) => {
                    items.push(Item {
                        blank_before: newlines >= 2,
                        stmt: Stmt::Comment(Comment {
                            text,
                            span: self.span(),
                        }),
                    });
                    newlines = 0;
                    self.advance();
                }
                TokKind::RBrace => {
                    if enclosing.is_some() {
                        break;
                    }
                    self.sink
                        .error(self.span().start, "unexpected \"}\" with no block to close");
                    self.advance();
                }
                TokKind::Eof => {
                    if let Some((name, span)) = enclosing {
                        self.sink.error(
                            span.start,
                            format!(
                                "block {name} is not closed: missing \"}}\" before the end of the file"
                            ),
                        );
                    }
                    break;
                }
                TokKind::Ident(_) => {
                    self.bad = false;
                    let stmt = self.parse_stmt();
                    self.finish_stmt(stmt, newlines >= 2, &mut items);
                    newlines = 0;
                }
                TokKind::Invalid => {
                    // Already reported by the lexer.
                    self.advance();
                    self.recover();
                    newlines = 0;
                }
                _ => {
                    self.bad = false;
                    self.expected("an attribute or a block");
                    self.advance();
                    self.recover();
                    newlines = 0;
                }
            }
        }
        Body { items }
    }

    /// Attaches same-line comments and checks that the statement ends its line.
    fn finish_stmt(&mut self, stmt: Option<Stmt>, blank_before: bool, items: &mut Vec<Item>) {
        let mut trailing = std::mem::take(&mut self.stray);
        while let Some(c) = self.comment_here() {
            trailing.push(c);
            self.advance();
        }
        match self.kind() {
            TokKind::Newline | TokKind::RBrace | TokKind::Eof => {}
            // The lexer already reported the character.
            TokKind::Invalid => self.recover(),
            _ => {
                self.expected("a newline after the statement");
                self.recover();
            }
        }
        let Some(mut stmt) = stmt else { return };
        match &mut stmt {
            Stmt::Attr(a) => a.trailing.extend(trailing),
            Stmt::Block(b) => b.trailing.extend(trailing),
            Stmt::Comment(_) => {}
        }
        items.push(Item { blank_before, stmt });
    }

    fn parse_stmt(&mut self) -> Option<Stmt> {
        let name_span_start = self.span();
        let TokKind::Ident(first) = self.kind().clone() else {
            return None;
        };
        self.advance();
        let mut name = first;
        let mut name_span = name_span_start;
        while matches!(self.kind(), TokKind::Dot) {
            self.advance();
            match self.kind().clone() {
                TokKind::Ident(part) => {
                    name.push('.');
                    name.push_str(&part);
                    name_span = name_span.to(self.span());
                    self.advance();
                }
                _ => {
                    self.expected("an identifier after \".\"");
                    self.recover();
                    return None;
                }
            }
        }
        match self.kind().clone() {
            TokKind::Assign => {
                if name.contains('.') {
                    self.error(
                        name_span,
                        format!("attribute name {name:?} must be a single identifier"),
                    );
                    self.recover();
                    return None;
                }
                self.advance();
                let value = self.parse_expr();
                if self.bad {
                    self.recover();
                    return None;
                }
                Some(Stmt::Attr(Attribute {
                    name,
                    name_span,
                    value,
                    trailing: Vec::new(),
                }))
            }
            TokKind::Str(label) => {
                let label_span = self.span();
                self.advance();
                if !matches!(self.kind(), TokKind::LBrace) {
                    self.expected(&format!("\"{{\" after the label of block {name}"));
                    self.recover();
                    return None;
                }
                self.parse_block(name, name_span, Some((label, label_span)))
            }
            TokKind::LBrace => self.parse_block(name, name_span, None),
            _ => {
                self.expected(&format!("\"=\" or a block after {name}"));
                self.recover();
                None
            }
        }
    }

    fn parse_block(
        &mut self,
        name: String,
        name_span: Span,
        label: Option<(String, Span)>,
    ) -> Option<Stmt> {
        // At `{`.
        let open = self.span();
        if self.depth >= MAX_NESTING {
            self.error(
                open,
                format!("blocks are nested deeper than {MAX_NESTING} levels"),
            );
            self.recover();
            return None;
        }
        self.advance();
        self.depth += 1;
        let body = self.parse_body(Some((&name, name_span)));
        self.depth -= 1;
        let end = self.span();
        if matches!(self.kind(), TokKind::RBrace) {
            self.advance();
        }
        // Errors inside the body were reported and recovered from there; the block itself
        // is well formed.
        self.bad = false;
        let (label, label_text, label_span) = match label {
            Some((l, s)) => (Some(l), Some(self.source_text(s)), Some(s)),
            None => (None, None, None),
        };
        Some(Stmt::Block(Block {
            name,
            name_span,
            label,
            label_text,
            label_span,
            body,
            trailing: Vec::new(),
            span: name_span.to(end),
        }))
    }
}

#[cfg(test)]
mod tests {
    use crate::config::{diag::Sink, lexer, parser};

    fn errors(src: &str) -> Vec<String> {
        let mut sink = Sink::new("t", src);
        let toks = lexer::lex(src, &mut sink);
        let _ = parser::parse(&toks, &mut sink);
        sink.finish().iter().map(|d| d.message.clone()).collect()
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_stack_overflow() {
        let src = format!("a = {}\n", "[".repeat(100_000));
        assert_eq!(
            errors(&src),
            ["expressions are nested deeper than 64 levels"]
        );
        let src = format!("{}\n", "a {\n".repeat(100_000));
        assert!(errors(&src).contains(&"blocks are nested deeper than 64 levels".to_string()));
        let src = format!("a = {}\n", "-".repeat(100_000));
        assert_eq!(
            errors(&src),
            ["expressions are nested deeper than 64 levels"]
        );
    }

    #[test]
    fn long_concatenation_is_bounded() {
        let src = format!("a = 1{}\n", " + 1".repeat(100_000));
        assert_eq!(errors(&src), ["a + chain may join at most 64 values"]);
        let src = format!("a = 1{}\n", " + 1".repeat(63));
        assert!(errors(&src).is_empty());
    }

    #[test]
    fn every_syntax_error_is_reported_with_recovery() {
        let src = "a {\n  b = \n  c = 1 2\n  d = [1,, 2]\n}\ne = 1\n";
        assert_eq!(
            errors(src),
            [
                "expected a value, got newline",
                "expected a newline after the statement, got number",
                "expected a value, got \",\"",
            ]
        );
    }

    #[test]
    fn comments_attach_to_statements_and_elements() {
        let src = "a = [\n  // lead\n  x, // trail\n] // end\n";
        let mut sink = Sink::new("t", src);
        let toks = lexer::lex(src, &mut sink);
        let body = parser::parse(&toks, &mut sink);
        let crate::config::ast::Stmt::Attr(a) = &body.items[0].stmt else {
            panic!("not an attribute")
        };
        assert_eq!(a.trailing[0].text, "// end");
        let crate::config::ast::ExprKind::List {
            elems, multiline, ..
        } = &a.value.kind
        else {
            panic!("not a list")
        };
        assert!(*multiline);
        assert_eq!(elems[0].leading[0].text, "// lead");
        assert_eq!(elems[0].trailing[0].text, "// trail");
    }
}
