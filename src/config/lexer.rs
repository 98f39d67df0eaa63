//! Lexer for the Alloy configuration language subset pyrogate reads.
//!
//! Owns: turning source text into [`Token`]s with [`Span`]s, including newlines (they end
//! statements, as in Alloy) and comments (the formatter keeps them). Decodes string literals
//! with Go's escape rules (Alloy strings are Go strings). Does not own grammar. Pure, cold path;
//! never panics, reports every bad character and keeps going.

use super::diag::{Pos, Sink, Span};

/// What a token is.
#[derive(Debug, Clone, PartialEq)]
pub enum TokKind {
    Ident(String),
    /// A string literal, already decoded (quoted with Go escapes or raw backtick).
    Str(String),
    /// A number literal; the parser decides integer or float from its text.
    Number,
    LBrace,
    RBrace,
    LBrack,
    RBrack,
    LParen,
    RParen,
    Comma,
    Dot,
    Assign,
    Plus,
    Minus,
    /// An Alloy operator pyrogate does not evaluate (`*`, `==`, `&&`, ...), kept so the parser
    /// can name it.
    Op(&'static str),
    Newline,
    /// `// ...` or `/* ... */`, text as written.
    Comment(String),
    /// A character that starts no token; already reported.
    Invalid,
    Eof,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Token {
    pub kind: TokKind,
    pub span: Span,
}

/// Operators Alloy has and pyrogate does not evaluate, longest first.
const OTHER_OPS: [&str; 14] = [
    "==", "!=", "<=", ">=", "&&", "||", "*", "/", "%", "^", "<", ">", "!", "?",
];

struct Cursor<'a> {
    src: &'a str,
    offset: usize,
    line: u32,
    col: u32,
}

impl<'a> Cursor<'a> {
    fn pos(&self) -> Pos {
        Pos {
            offset: self.offset,
            line: self.line,
            col: self.col,
        }
    }

    fn rest(&self) -> &'a str {
        self.src.get(self.offset..).unwrap_or("")
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn peek2(&self) -> Option<char> {
        let mut it = self.rest().chars();
        it.next();
        it.next()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.offset += c.len_utf8();
        if c == '\n' {
            self.line = self.line.saturating_add(1);
            self.col = 1;
        } else {
            self.col = self.col.saturating_add(1);
        }
        Some(c)
    }

    fn text_from(&self, start: usize) -> &'a str {
        self.src.get(start..self.offset).unwrap_or("")
    }
}

fn is_ident_start(c: char) -> bool {
    c == '_' || c.is_alphabetic()
}

fn is_ident_continue(c: char) -> bool {
    c == '_' || c.is_alphanumeric()
}

/// Splits `src` into tokens, ending with [`TokKind::Eof`]. Problems go to `sink`.
pub(crate) fn lex(src: &str, sink: &mut Sink<'_>) -> Vec<Token> {
    let mut cur = Cursor {
        src,
        offset: 0,
        line: 1,
        col: 1,
    };
    let mut toks = Vec::new();
    while let Some(c) = cur.peek() {
        let start = cur.pos();
        let kind = match c {
            ' ' | '\t' | '\r' => {
                cur.bump();
                continue;
            }
            '\n' => {
                cur.bump();
                TokKind::Newline
            }
            '/' if cur.peek2() == Some('/') => {
                while let Some(c) = cur.peek() {
                    if c == '\n' {
                        break;
                    }
                    cur.bump();
                }
                TokKind::Comment(cur.text_from(start.offset).trim_end().to_string())
            }
            '/' if cur.peek2() == Some('*') => {
                cur.bump();
                cur.bump();
                let mut closed = false;
                while let Some(c) = cur.bump() {
                    if c == '*' && cur.peek() == Some('/') {
                        cur.bump();
                        closed = true;
                        break;
                    }
                }
                if !closed {
                    sink.error(start, "block comment is not terminated (missing */)");
                }
                TokKind::Comment(cur.text_from(start.offset).to_string())
            }
            '"' => lex_quoted(&mut cur, sink),
            '`' => {
                cur.bump();
                let body_start = cur.offset;
                let mut closed = false;
                while let Some(c) = cur.bump() {
                    if c == '`' {
                        closed = true;
                        break;
                    }
                }
                let end = if closed {
                    cur.offset.saturating_sub(1)
                } else {
                    sink.error(start, "raw string is not terminated (missing `)");
                    cur.offset
                };
                // Go drops carriage returns from raw strings.
                TokKind::Str(src.get(body_start..end).unwrap_or("").replace('\r', ""))
            }
            '0'..='9' => {
                lex_number(&mut cur, sink);
                TokKind::Number
            }
            '.' if cur.peek2().is_some_and(|c| c.is_ascii_digit()) => {
                lex_number(&mut cur, sink);
                TokKind::Number
            }
            c if is_ident_start(c) => {
                while cur.peek().is_some_and(is_ident_continue) {
                    cur.bump();
                }
                TokKind::Ident(cur.text_from(start.offset).to_string())
            }
            '{' | '}' | '[' | ']' | '(' | ')' | ',' | '.' | '+' | '-' => {
                cur.bump();
                match c {
                    '{' => TokKind::LBrace,
                    '}' => TokKind::RBrace,
                    '[' => TokKind::LBrack,
                    ']' => TokKind::RBrack,
                    '(' => TokKind::LParen,
                    ')' => TokKind::RParen,
                    ',' => TokKind::Comma,
                    '.' => TokKind::Dot,
                    '+' => TokKind::Plus,
                    _ => TokKind::Minus,
                }
            }
            '=' if cur.peek2() != Some('=') => {
                cur.bump();
                TokKind::Assign
            }
            _ => {
                let rest = cur.rest();
                if let Some(op) = OTHER_OPS.iter().find(|op| rest.starts_with(**op)) {
                    for _ in 0..op.len() {
                        cur.bump();
                    }
                    TokKind::Op(op)
                } else {
                    cur.bump();
                    sink.error(start, format!("unexpected character {c:?}"));
                    TokKind::Invalid
                }
            }
        };
        toks.push(Token {
            kind,
            span: Span::new(start, cur.offset),
        });
    }
    let end = cur.pos();
    toks.push(Token {
        kind: TokKind::Eof,
        span: Span::new(end, end.offset),
    });
    toks
}

fn lex_number(cur: &mut Cursor<'_>, sink: &mut Sink<'_>) {
    let start = cur.pos();
    while cur.peek().is_some_and(|c| c.is_ascii_digit()) {
        cur.bump();
    }
    if cur.peek() == Some('.') && cur.peek2().is_some_and(|c| c.is_ascii_digit()) {
        cur.bump();
        while cur.peek().is_some_and(|c| c.is_ascii_digit()) {
            cur.bump();
        }
    }
    if matches!(cur.peek(), Some('e' | 'E')) {
        cur.bump();
        if matches!(cur.peek(), Some('+' | '-')) {
            cur.bump();
        }
        if !cur.peek().is_some_and(|c| c.is_ascii_digit()) {
            sink.error(start, "number has an exponent with no digits");
        }
        while cur.peek().is_some_and(|c| c.is_ascii_digit()) {
            cur.bump();
        }
    }
    if cur.peek().is_some_and(is_ident_continue) {
        sink.error(
            start,
            format!(
                "invalid number {:?}",
                format!(
                    "{}{}",
                    cur.text_from(start.offset),
                    cur.peek().unwrap_or(' ')
                )
            ),
        );
        while cur.peek().is_some_and(is_ident_continue) {
            cur.bump();
        }
    }
}

/// A double-quoted string with Go escapes. Strings cannot span lines.
fn lex_quoted(cur: &mut Cursor<'_>, sink: &mut Sink<'_>) -> TokKind {
    let start = cur.pos();
    cur.bump();
    let mut out = String::new();
    loop {
        let here = cur.pos();
        match cur.peek() {
            None | Some('\n') => {
                sink.error(start, "string literal is not terminated (missing \")");
                break;
            }
            Some('"') => {
                cur.bump();
                break;
            }
            Some('\\') => {
                cur.bump();
                match decode_escape(cur) {
                    Ok(c) => out.push(c),
                    Err(msg) => sink.error(here, msg),
                }
            }
            Some(c) => {
                cur.bump();
                out.push(c);
            }
        }
    }
    TokKind::Str(out)
}

/// Decodes one escape after the backslash, as Go's `strconv.Unquote` does for `"` strings.
fn decode_escape(cur: &mut Cursor<'_>) -> Result<char, String> {
    let Some(c) = cur.peek() else {
        return Err("escape sequence is not terminated".to_string());
    };
    if c == '\n' {
        return Err("escape sequence is not terminated".to_string());
    }
    cur.bump();
    let simple = match c {
        'a' => Some('\u{7}'),
        'b' => Some('\u{8}'),
        'f' => Some('\u{c}'),
        'n' => Some('\n'),
        'r' => Some('\r'),
        't' => Some('\t'),
        'v' => Some('\u{b}'),
        '\\' => Some('\\'),
        '"' => Some('"'),
        _ => None,
    };
    if let Some(s) = simple {
        return Ok(s);
    }
    let (digits, radix) = match c {
        'x' => (2, 16),
        'u' => (4, 16),
        'U' => (8, 16),
        '0'..='7' => (2, 8),
        _ => return Err(format!("unknown escape sequence \\{c}")),
    };
    let mut value: u32 = if radix == 8 { c as u32 - '0' as u32 } else { 0 };
    for _ in 0..digits {
        let Some(d) = cur.peek().and_then(|d| d.to_digit(radix)) else {
            return Err(format!("escape sequence \\{c} needs {digits} more digits"));
        };
        cur.bump();
        value = value.saturating_mul(radix).saturating_add(d);
    }
    if ('0'..='7').contains(&c) && value > 255 {
        return Err("octal escape value is greater than 255".to_string());
    }
    if c == 'x' || (c.is_ascii_digit()) {
        // Go strings are bytes; a \x or octal escape above 0x7f would not be valid UTF-8 on
        // its own. pyrogate's strings are UTF-8, so only ASCII bytes are accepted.
        if value > 0x7f {
            return Err(format!(
                "escape sequence \\{c} produces byte {value:#04x}, which is not valid UTF-8 on its own"
            ));
        }
    }
    char::from_u32(value)
        .ok_or_else(|| format!("escape sequence is an invalid Unicode code point ({value:#x})"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(src: &str) -> (Vec<TokKind>, Vec<String>) {
        let mut sink = Sink::new("t", src);
        let toks = lex(src, &mut sink);
        let d = sink.finish();
        (
            toks.into_iter().map(|t| t.kind).collect(),
            d.iter().map(|d| d.message.clone()).collect(),
        )
    }

    #[test]
    fn go_escapes_are_decoded() {
        let (k, errs) = kinds(r#""a\n\t\"\\\u00e9\x41\101\U0001F600""#);
        assert!(errs.is_empty(), "{errs:?}");
        assert_eq!(k[0], TokKind::Str("a\n\t\"\\éAA😀".to_string()));
    }

    #[test]
    fn unknown_escape_is_reported() {
        let (_, errs) = kinds(r#""a\q""#);
        assert_eq!(errs, ["unknown escape sequence \\q"]);
    }

    #[test]
    fn raw_string_keeps_backslashes_and_newlines() {
        let (k, errs) = kinds("`a\\n\nb`");
        assert!(errs.is_empty());
        assert_eq!(k[0], TokKind::Str("a\\n\nb".to_string()));
    }

    #[test]
    fn unterminated_string_is_reported_and_lexing_continues() {
        let (k, errs) = kinds("\"abc\nx");
        assert_eq!(errs, ["string literal is not terminated (missing \")"]);
        assert_eq!(k[2], TokKind::Ident("x".to_string()));
    }

    #[test]
    fn comments_and_newlines_are_tokens() {
        let (k, _) = kinds("a // c\n/* d */");
        assert_eq!(
            k,
            [
                TokKind::Ident("a".into()),
                TokKind::Comment("// c".into()),
                TokKind::Newline,
                TokKind::Comment("/* d */".into()),
                TokKind::Eof
            ]
        );
    }

    #[test]
    fn dotted_reference_and_numbers() {
        let (k, errs) = kinds("a.b 12 1.5 1e3");
        assert!(errs.is_empty());
        assert_eq!(
            k,
            [
                TokKind::Ident("a".into()),
                TokKind::Dot,
                TokKind::Ident("b".into()),
                TokKind::Number,
                TokKind::Number,
                TokKind::Number,
                TokKind::Eof
            ]
        );
    }

    #[test]
    fn unsupported_operators_are_named_tokens() {
        let (k, errs) = kinds("a == b * c");
        assert!(errs.is_empty());
        assert_eq!(k[1], TokKind::Op("=="));
        assert_eq!(k[3], TokKind::Op("*"));
    }

    #[test]
    fn stray_character_is_reported() {
        let (_, errs) = kinds("a @ b");
        assert_eq!(errs, ["unexpected character '@'"]);
    }

    #[test]
    fn columns_count_characters() {
        let src = "é x";
        let mut sink = Sink::new("t", src);
        let toks = lex(src, &mut sink);
        assert_eq!(toks[1].span.start.col, 3);
        assert_eq!(toks[1].span.start.offset, 3);
    }
}
