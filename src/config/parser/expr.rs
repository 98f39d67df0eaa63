//! Expression grammar: literals, references, calls, `+`, unary `-`, parentheses, lists and
//! objects (with the comments around their elements). Part of [`super`]; same rules: pure,
//! never panics, nesting bounded by [`super::MAX_NESTING`].

use super::super::ast::{Comment, Element, Expr, ExprKind, Field, Literal};
use super::super::diag::Span;
use super::super::lexer::TokKind;
use super::{MAX_CONCAT_TERMS, MAX_NESTING, Parser};

impl Parser<'_, '_, '_> {
    pub(super) fn parse_expr(&mut self) -> Expr {
        let span = self.span();
        self.nested(span, Self::parse_add)
            .unwrap_or_else(|| null_expr(span))
    }

    /// Runs `parse` one expression nesting level deeper; `None`, reported at `at`, when that
    /// would pass [`MAX_NESTING`].
    fn nested(&mut self, at: Span, parse: impl FnOnce(&mut Self) -> Expr) -> Option<Expr> {
        if self.depth >= MAX_NESTING {
            self.error(
                at,
                format!("expressions are nested deeper than {MAX_NESTING} levels"),
            );
            return None;
        }
        self.depth += 1;
        let e = parse(self);
        self.depth -= 1;
        Some(e)
    }

    fn parse_add(&mut self) -> Expr {
        let mut lhs = self.parse_unary();
        let mut terms = 1usize;
        loop {
            match self.kind().clone() {
                TokKind::Plus => {
                    terms += 1;
                    if terms > MAX_CONCAT_TERMS {
                        let span = self.span();
                        self.error(
                            span,
                            format!("a + chain may join at most {MAX_CONCAT_TERMS} values"),
                        );
                        return lhs;
                    }
                    self.advance();
                    self.skip_trivia_to_stray();
                    let rhs = self.parse_unary();
                    let span = lhs.span.to(rhs.span);
                    lhs = Expr {
                        kind: ExprKind::Add(Box::new(lhs), Box::new(rhs)),
                        span,
                    };
                }
                TokKind::Minus => {
                    let span = self.span();
                    self.error(
                        span,
                        "operator - is not supported by pyrogate (only + is evaluated)",
                    );
                    return lhs;
                }
                TokKind::Op(op) => {
                    let span = self.span();
                    self.error(
                        span,
                        format!("operator {op} is not supported by pyrogate (only + is evaluated)"),
                    );
                    return lhs;
                }
                _ => return lhs,
            }
        }
    }

    fn parse_unary(&mut self) -> Expr {
        match self.kind() {
            TokKind::Minus => {
                let start = self.span();
                self.advance();
                let Some(inner) = self.nested(start, Self::parse_unary) else {
                    return null_expr(start);
                };
                let span = start.to(inner.span);
                Expr {
                    kind: ExprKind::Neg(Box::new(inner)),
                    span,
                }
            }
            TokKind::Op(op) => {
                let op = *op;
                let span = self.span();
                self.error(
                    span,
                    format!("operator {op} is not supported by pyrogate (only + is evaluated)"),
                );
                null_expr(span)
            }
            _ => self.parse_postfix(),
        }
    }

    fn parse_postfix(&mut self) -> Expr {
        let mut e = self.parse_primary();
        loop {
            match self.kind() {
                TokKind::Dot => {
                    self.advance();
                    match self.kind().clone() {
                        TokKind::Ident(name) => {
                            let span = e.span.to(self.span());
                            self.advance();
                            e = Expr {
                                kind: ExprKind::Access {
                                    base: Box::new(e),
                                    name,
                                },
                                span,
                            };
                        }
                        _ => {
                            self.expected("an identifier after \".\"");
                            return e;
                        }
                    }
                }
                TokKind::LParen => {
                    self.advance();
                    let mut args = Vec::new();
                    loop {
                        self.skip_trivia_to_stray();
                        if matches!(self.kind(), TokKind::RParen) {
                            break;
                        }
                        args.push(self.parse_expr());
                        if self.bad {
                            return e;
                        }
                        self.skip_trivia_to_stray();
                        match self.kind() {
                            TokKind::Comma => self.advance(),
                            TokKind::RParen => break,
                            _ => {
                                self.expected("\",\" or \")\" in the argument list");
                                return e;
                            }
                        }
                    }
                    let span = e.span.to(self.span());
                    self.advance();
                    e = Expr {
                        kind: ExprKind::Call {
                            callee: Box::new(e),
                            args,
                        },
                        span,
                    };
                }
                TokKind::LBrack => {
                    let span = self.span();
                    self.error(span, "indexing with [...] is not supported by pyrogate");
                    return e;
                }
                _ => return e,
            }
        }
    }

    fn parse_primary(&mut self) -> Expr {
        // `x = /* why */ value`: a comment may sit before the value on the same line.
        while let Some(c) = self.comment_here() {
            self.stray.push(c);
            self.advance();
        }
        let span = self.span();
        match self.kind().clone() {
            TokKind::Str(s) => {
                self.advance();
                literal(Literal::Str(s), span, self.source_text(span))
            }
            TokKind::Number => {
                self.advance();
                let text = self.source_text(span);
                let value = if text.contains(['.', 'e', 'E']) {
                    match text.parse::<f64>() {
                        Ok(f) if f.is_finite() => Literal::Float(f),
                        _ => {
                            self.error(span, format!("number {text} is out of range"));
                            Literal::Null
                        }
                    }
                } else {
                    match text.parse::<i64>() {
                        Ok(i) => Literal::Int(i),
                        Err(_) => {
                            self.error(span, format!("integer {text} is out of range"));
                            Literal::Null
                        }
                    }
                };
                literal(value, span, text)
            }
            TokKind::Ident(name) => {
                self.advance();
                match name.as_str() {
                    "true" => literal(Literal::Bool(true), span, name),
                    "false" => literal(Literal::Bool(false), span, name),
                    "null" => literal(Literal::Null, span, name),
                    _ => Expr {
                        kind: ExprKind::Ident(name),
                        span,
                    },
                }
            }
            TokKind::LParen => {
                self.advance();
                self.skip_trivia_to_stray();
                let inner = self.parse_expr();
                if self.bad {
                    return inner;
                }
                self.skip_trivia_to_stray();
                if !matches!(self.kind(), TokKind::RParen) {
                    self.expected("\")\"");
                    return inner;
                }
                let end = self.span();
                self.advance();
                Expr {
                    kind: ExprKind::Paren(Box::new(inner)),
                    span: span.to(end),
                }
            }
            TokKind::LBrack => self.parse_list(),
            TokKind::LBrace => self.parse_object(),
            TokKind::Invalid => {
                // Already reported by the lexer; stay quiet about the rest of the statement.
                self.bad = true;
                null_expr(span)
            }
            _ => {
                self.expected("a value");
                null_expr(span)
            }
        }
    }

    /// Skips newlines and comments where no element can own the comments (after `+`, inside
    /// `( )` and argument lists): they become the statement's trailing comments.
    fn skip_trivia_to_stray(&mut self) {
        let t = self.collect_trivia();
        self.stray.extend(t.same_line);
        self.stray.extend(t.later);
    }

    /// The source text of a token, as written.
    pub(super) fn source_text(&self, span: Span) -> String {
        self.sink
            .source()
            .get(span.start.offset..span.end)
            .unwrap_or("")
            .to_string()
    }

    fn parse_list(&mut self) -> Expr {
        let open = self.span();
        match self.parse_elements(&TokKind::RBrack, "\"]\" in the list", |p| {
            let value = p.parse_expr();
            (!p.bad).then_some(value)
        }) {
            Some(list) => Expr {
                kind: ExprKind::List {
                    elems: list.elems,
                    multiline: list.multiline,
                    end_comments: list.end_comments,
                },
                span: open.to(list.close),
            },
            None => null_expr(open),
        }
    }

    fn parse_object(&mut self) -> Expr {
        let open = self.span();
        match self.parse_elements(&TokKind::RBrace, "\"}\" in the object", Self::parse_field) {
            Some(object) => Expr {
                kind: ExprKind::Object {
                    fields: object.elems,
                    multiline: object.multiline,
                    end_comments: object.end_comments,
                },
                span: open.to(object.close),
            },
            None => null_expr(open),
        }
    }

    /// One `key = value` of an object; `None` once an error has been reported.
    fn parse_field(&mut self) -> Option<Field> {
        let key_span = self.span();
        let (key, key_text) = match self.kind().clone() {
            TokKind::Ident(k) => (k.clone(), k),
            TokKind::Str(k) => (k, self.source_text(key_span)),
            _ => {
                self.expected("a field name (identifier or string) in the object");
                return None;
            }
        };
        self.advance();
        if !matches!(self.kind(), TokKind::Assign) {
            self.expected(&format!("\"=\" after field {key_text} in the object"));
            return None;
        }
        self.advance();
        let value = self.parse_expr();
        if self.bad {
            return None;
        }
        Some(Field {
            key,
            key_text,
            key_span,
            value,
        })
    }

    /// The elements of a list or object, from its opening bracket (the current token) through
    /// `close`, with the comments around each element. Elements are separated by commas or
    /// newlines; `parse_one` reads one element. `expected` finishes the message for a token
    /// after an element that is neither (e.g. `"]" in the list`). `None` once an error has been
    /// reported.
    fn parse_elements<T>(
        &mut self,
        close: &TokKind,
        expected: &str,
        mut parse_one: impl FnMut(&mut Self) -> Option<T>,
    ) -> Option<Elements<T>> {
        self.advance();
        let first = self.collect_trivia();
        let mut multiline = first.newline;
        let mut pending: Vec<Comment> = first.same_line;
        pending.extend(first.later);
        let mut elems = Vec::new();
        loop {
            if self.kind() == close {
                break;
            }
            let value = parse_one(self)?;
            let after = self.collect_trivia();
            let mut el = Element {
                leading: std::mem::take(&mut pending),
                value,
                trailing: after.same_line,
            };
            pending = after.later;
            multiline |= after.newline;
            match self.kind() {
                TokKind::Comma => {
                    self.advance();
                    let t = self.collect_trivia();
                    if after.newline {
                        pending.extend(t.same_line);
                    } else {
                        el.trailing.extend(t.same_line);
                    }
                    pending.extend(t.later);
                    multiline |= t.newline;
                }
                k if k == close => {}
                _ if after.newline => {}
                _ => {
                    self.expected(&format!("\",\" or {expected}"));
                    return None;
                }
            }
            elems.push(el);
        }
        let close = self.span();
        self.advance();
        Some(Elements {
            elems,
            multiline,
            end_comments: pending,
            close,
        })
    }
}

/// What [`Parser::parse_elements`] read between the brackets of a list or object.
struct Elements<T> {
    elems: Vec<Element<T>>,
    /// A newline stood somewhere between the brackets.
    multiline: bool,
    /// Comments after the last element, before the closing bracket.
    end_comments: Vec<Comment>,
    /// The closing bracket.
    close: Span,
}

pub(super) fn literal(value: Literal, span: Span, text: String) -> Expr {
    Expr {
        kind: ExprKind::Literal { value, text },
        span,
    }
}

pub(super) fn null_expr(span: Span) -> Expr {
    literal(Literal::Null, span, "null".to_string())
}
