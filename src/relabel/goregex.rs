//! Go's `regexp` (RE2 syntax, as `github.com/grafana/regexp` parses it with Go's `regexp/syntax`)
//! on top of `regex-automata`.
//!
//! Owns: parsing a pattern with Go's grammar and Go's error texts (a port of the parser in
//! golang/go `src/regexp/syntax/parse.go`), building the equivalent `regex-syntax` HIR with Go's
//! meaning spelled out (ASCII `\d \s \w \b`, Go's `\s` without `\v`, case folding before class
//! negation, octal escapes, `\Q..\E`, literal `{`, capture names Rust would refuse), and the
//! search primitives the rules need (`MatchString`, `FindStringSubmatchIndex`,
//! `ReplaceAllString`). Does not own: what the rules do with a match (see `super`), or template
//! expansion (see `super::expand`).
//!
//! What is not reproduced exactly is refused when the rule is built ([`RegexError::Unsupported`]),
//! never matched differently: Unicode scripts, category aliases and `\p{C}`/`\p{Cn}` (whose
//! meaning depends on Go's Unicode tables). Unicode general categories (`\pL`, `\p{Lu}`, ...) and
//! `(?i)` folding use the Unicode tables of `regex-syntax`, which may be a newer Unicode version
//! than the Go release Alloy is built with: code points assigned in between can differ.

use std::fmt;
use std::sync::LazyLock;

use regex_automata::util::primitives::NonMaxUsize;
use regex_automata::{Input, meta};
use regex_syntax::hir::{self, Class, ClassUnicode, ClassUnicodeRange, Hir, Look, Repetition};

/// Why a pattern does not compile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegexError {
    /// Go rejects it; the text is Go's (`error parsing regexp: <code>: `<expr>``).
    Syntax(String),
    /// Go accepts it (or might), but pyrogate cannot reproduce its meaning exactly.
    Unsupported(String),
}

impl fmt::Display for RegexError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RegexError::Syntax(m) | RegexError::Unsupported(m) => f.write_str(m),
        }
    }
}

// Go's `regexp/syntax` error codes (golang/go src/regexp/syntax/parse.go, `ErrorCode`).
const ERR_INVALID_CHAR_RANGE: &str = "invalid character class range";
const ERR_INVALID_ESCAPE: &str = "invalid escape sequence";
const ERR_INVALID_NAMED_CAPTURE: &str = "invalid named capture";
const ERR_INVALID_PERL_OP: &str = "invalid or unsupported Perl syntax";
const ERR_INVALID_REPEAT_OP: &str = "invalid nested repetition operator";
const ERR_INVALID_REPEAT_SIZE: &str = "invalid repeat count";
const ERR_MISSING_BRACKET: &str = "missing closing ]";
const ERR_MISSING_PAREN: &str = "missing closing )";
const ERR_MISSING_REPEAT_ARGUMENT: &str = "missing argument to repetition operator";
const ERR_TRAILING_BACKSLASH: &str = "trailing backslash at end of expression";
const ERR_UNEXPECTED_PAREN: &str = "unexpected )";
const ERR_NESTING_DEPTH: &str = "expression nests too deeply";

fn syntax_err(code: &str, expr: &str) -> RegexError {
    RegexError::Syntax(format!("error parsing regexp: {code}: `{expr}`"))
}

/// Go's `maxRepeat`: the largest count in `x{n,m}`, and the largest product of nested counts.
const MAX_REPEAT: u32 = 1000;
/// Go's `maxHeight`: the deepest parse tree Go accepts.
const MAX_HEIGHT: usize = 1000;
const MAX_RUNE: u32 = 0x10FFFF;

// Parser flags, as Go's `syntax.Flags` (only those `syntax.Perl` mode uses).
const FOLD_CASE: u8 = 1;
const DOT_NL: u8 = 2;
const ONE_LINE: u8 = 4;
const NON_GREEDY: u8 = 8;

/// A character class as sorted `(lo, hi)` code point ranges (Go's `[]rune` pairs).
type Ranges = Vec<(u32, u32)>;

/// A parsed expression, with Go's meaning already resolved (classes are explicit rune ranges).
#[derive(Debug, Clone)]
enum Node {
    Empty,
    Literal(char, bool),
    Class(Vec<(u32, u32)>),
    Look(Look),
    Capture(u32, Box<Node>),
    Repeat {
        min: u32,
        max: Option<u32>,
        greedy: bool,
        sub: Box<Node>,
    },
    Concat(Vec<Node>),
    Alternate(Vec<Node>),
}

/// Go's `repeatIsValid`: the product of nested counts stays within `n`.
fn repeat_is_valid(node: &Node, mut n: u32) -> bool {
    match node {
        Node::Repeat { min, max, sub, .. } => {
            let m = match max {
                Some(0) => return true,
                Some(m) => *m,
                None => *min,
            };
            if m > n {
                return false;
            }
            n = n.checked_div(m).unwrap_or(n);
            repeat_is_valid(sub, n)
        }
        Node::Capture(_, sub) => repeat_is_valid(sub, n),
        Node::Concat(subs) | Node::Alternate(subs) => subs.iter().all(|s| repeat_is_valid(s, n)),
        _ => true,
    }
}

enum Item {
    /// An expression and the height of its tree (Go's `calcHeight`).
    Expr(Node, usize),
    /// `(`: capture index (0 for a plain group) and the flags to restore at `)`.
    LeftParen {
        cap: u32,
        flags: u8,
    },
    VerticalBar,
}

struct Parser<'a> {
    whole: &'a str,
    flags: u8,
    stack: Vec<Item>,
    num_cap: u32,
    names: Vec<Option<String>>,
    too_deep: bool,
}

/// The classes of Go's `perl_groups.go`, as `(lo, hi)` pairs; the bool says negated.
fn perl_group(c: u8) -> Option<(&'static [(u32, u32)], bool)> {
    const D: &[(u32, u32)] = &[(0x30, 0x39)];
    const S: &[(u32, u32)] = &[(0x09, 0x0A), (0x0C, 0x0D), (0x20, 0x20)];
    const W: &[(u32, u32)] = &[(0x30, 0x39), (0x41, 0x5A), (0x5F, 0x5F), (0x61, 0x7A)];
    Some(match c {
        b'd' => (D, false),
        b'D' => (D, true),
        b's' => (S, false),
        b'S' => (S, true),
        b'w' => (W, false),
        b'W' => (W, true),
        _ => return None,
    })
}

fn posix_group(name: &str) -> Option<(&'static [(u32, u32)], bool)> {
    let (negated, base) = match name.strip_prefix("[:^") {
        Some(rest) => (true, rest),
        None => (false, &name[2..]),
    };
    let class: &'static [(u32, u32)] = match base {
        "alnum:]" => &[(0x30, 0x39), (0x41, 0x5A), (0x61, 0x7A)],
        "alpha:]" => &[(0x41, 0x5A), (0x61, 0x7A)],
        "ascii:]" => &[(0x00, 0x7F)],
        "blank:]" => &[(0x09, 0x09), (0x20, 0x20)],
        "cntrl:]" => &[(0x00, 0x1F), (0x7F, 0x7F)],
        "digit:]" => &[(0x30, 0x39)],
        "graph:]" => &[(0x21, 0x7E)],
        "lower:]" => &[(0x61, 0x7A)],
        "print:]" => &[(0x20, 0x7E)],
        "punct:]" => &[(0x21, 0x2F), (0x3A, 0x40), (0x5B, 0x60), (0x7B, 0x7E)],
        "space:]" => &[(0x09, 0x0D), (0x20, 0x20)],
        "upper:]" => &[(0x41, 0x5A)],
        "word:]" => &[(0x30, 0x39), (0x41, 0x5A), (0x5F, 0x5F), (0x61, 0x7A)],
        "xdigit:]" => &[(0x30, 0x39), (0x41, 0x46), (0x61, 0x66)],
        _ => return None,
    };
    Some((class, negated))
}

/// Go's `canonicalName` for `\p{...}` names: first letter upper, the rest lower, no `_ -` or
/// spaces.
fn canonical_name(name: &str) -> String {
    let mut out = Vec::with_capacity(name.len());
    let mut first = true;
    for &b in name.as_bytes() {
        match b {
            b'_' | b'-' | b' ' => continue,
            _ if first => {
                first = false;
                out.push(b.to_ascii_uppercase());
            }
            _ => out.push(b.to_ascii_lowercase()),
        }
    }
    // Only ASCII bytes changed (or went), so this is still UTF-8.
    String::from_utf8(out).unwrap_or_default()
}

/// The general categories Go's `unicode.Categories` has and whose meaning is the same in
/// `regex-syntax` (`C` is left out: Go's excludes unassigned code points, Unicode's does not).
const CATEGORIES: &[&str] = &[
    "Cc", "Cf", "Co", "Cs", "L", "Ll", "Lm", "Lo", "Lt", "Lu", "M", "Mc", "Me", "Mn", "N", "Nd",
    "Nl", "No", "P", "Pc", "Pd", "Pe", "Pf", "Pi", "Po", "Ps", "S", "Sc", "Sk", "Sm", "So", "Z",
    "Zl", "Zp", "Zs",
];

/// The code points of a Unicode general category, from `regex-syntax`'s tables.
fn unicode_category(name: &str) -> Vec<(u32, u32)> {
    let pattern = format!(r"\p{{{name}}}");
    let hir = regex_syntax::ParserBuilder::new()
        .build()
        .parse(&pattern)
        .expect("general category known to regex-syntax");
    match hir.kind() {
        hir::HirKind::Class(Class::Unicode(cls)) => cls
            .ranges()
            .iter()
            .map(|r| (r.start() as u32, r.end() as u32))
            .collect(),
        _ => unreachable!("\\p{{..}} parses to a class"),
    }
}

/// Go's `unicode.IsLetter(c) || unicode.IsDigit(c)` (categories L and Nd).
pub fn is_letter_or_decimal_digit(c: char) -> bool {
    static TABLE: LazyLock<Vec<(u32, u32)>> = LazyLock::new(|| {
        let mut cls = to_class(&unicode_category("L"));
        cls.union(&to_class(&unicode_category("Nd")));
        from_class(&cls)
    });
    in_ranges(&TABLE, c)
}

/// Go's `unicode.IsPrint`: categories L, M, N, P, S and the ASCII space.
pub fn is_print(c: char) -> bool {
    static TABLE: LazyLock<Vec<(u32, u32)>> = LazyLock::new(|| {
        let mut cls = ClassUnicode::new([ClassUnicodeRange::new(' ', ' ')]);
        for cat in ["L", "M", "N", "P", "S"] {
            cls.union(&to_class(&unicode_category(cat)));
        }
        from_class(&cls)
    });
    in_ranges(&TABLE, c)
}

fn in_ranges(ranges: &[(u32, u32)], c: char) -> bool {
    let c = c as u32;
    ranges
        .binary_search_by(|&(lo, hi)| {
            if hi < c {
                std::cmp::Ordering::Less
            } else if lo > c {
                std::cmp::Ordering::Greater
            } else {
                std::cmp::Ordering::Equal
            }
        })
        .is_ok()
}

fn to_class(ranges: &[(u32, u32)]) -> ClassUnicode {
    let mut out = Vec::with_capacity(ranges.len() + 1);
    for &(lo, hi) in ranges {
        // Split around the surrogates, which no `char` (and no valid UTF-8) holds.
        if lo <= 0xD7FF {
            out.push(ClassUnicodeRange::new(
                char::from_u32(lo).unwrap_or('\0'),
                char::from_u32(hi.min(0xD7FF)).unwrap_or('\0'),
            ));
        }
        if hi >= 0xE000 {
            let lo = lo.max(0xE000);
            if let (Some(l), Some(h)) = (char::from_u32(lo), char::from_u32(hi.min(MAX_RUNE))) {
                out.push(ClassUnicodeRange::new(l, h));
            }
        }
    }
    ClassUnicode::new(out)
}

fn from_class(cls: &ClassUnicode) -> Vec<(u32, u32)> {
    cls.ranges()
        .iter()
        .map(|r| (r.start() as u32, r.end() as u32))
        .collect()
}

/// Go's `appendFoldedClass` (add every simple-case-fold equivalent).
fn fold(ranges: &[(u32, u32)]) -> Vec<(u32, u32)> {
    let mut cls = to_class(ranges);
    cls.case_fold_simple();
    from_class(&cls)
}

fn negate(ranges: &[(u32, u32)]) -> Vec<(u32, u32)> {
    let mut cls = to_class(ranges);
    cls.negate();
    from_class(&cls)
}

fn is_alnum(c: char) -> bool {
    c.is_ascii_alphanumeric()
}

fn unhex(c: char) -> Option<u32> {
    c.to_digit(16)
}

impl<'a> Parser<'a> {
    fn pos(&self, rest: &str) -> usize {
        self.whole.len() - rest.len()
    }

    fn push(&mut self, node: Node) {
        self.push_h(node, 1);
    }

    /// Pushes `node` of tree height `height`; Go refuses trees over `maxHeight`. Checking as
    /// the tree grows also keeps every later recursion over it shallow.
    fn push_h(&mut self, node: Node, height: usize) {
        self.too_deep |= height > MAX_HEIGHT;
        self.stack.push(Item::Expr(node, height));
    }

    fn literal(&mut self, c: char) {
        let fold = self.flags & FOLD_CASE != 0;
        self.push(Node::Literal(c, fold));
    }

    /// A literal written as an escape, which can name a surrogate: Go then matches a rune no
    /// valid UTF-8 decodes to, so never; an empty class says the same.
    fn literal_rune(&mut self, r: u32) {
        match char::from_u32(r) {
            Some(c) => self.literal(c),
            None => self.push(Node::Class(Vec::new())),
        }
    }

    /// Go's `appendGroup`: a Perl or POSIX class, folded under `(?i)` before its negation.
    fn group(&self, class: &[(u32, u32)], negated: bool) -> Vec<(u32, u32)> {
        let positive = if self.flags & FOLD_CASE != 0 {
            fold(class)
        } else {
            class.to_vec()
        };
        if negated { negate(&positive) } else { positive }
    }

    fn parse(mut self) -> Result<(Node, Vec<Option<String>>), RegexError> {
        let s = self.whole;
        let mut t: &str = s;
        let mut last_repeat: Option<usize> = None; // byte offset of the previous repeat op
        while !t.is_empty() {
            if self.too_deep {
                return Err(syntax_err(ERR_NESTING_DEPTH, s));
            }
            let mut repeat: Option<usize> = None;
            let b = t.as_bytes()[0];
            match b {
                b'(' => {
                    if t.len() >= 2 && t.as_bytes()[1] == b'?' {
                        t = self.parse_perl_flags(t)?;
                    } else {
                        self.num_cap += 1;
                        self.names.push(None);
                        self.stack.push(Item::LeftParen {
                            cap: self.num_cap,
                            flags: self.flags,
                        });
                        t = &t[1..];
                    }
                }
                b'|' => {
                    self.concat();
                    self.swap_or_push_bar();
                    t = &t[1..];
                }
                b')' => {
                    self.parse_right_paren()?;
                    t = &t[1..];
                }
                b'^' => {
                    let look = if self.flags & ONE_LINE != 0 {
                        Look::Start
                    } else {
                        Look::StartLF
                    };
                    self.push(Node::Look(look));
                    t = &t[1..];
                }
                b'$' => {
                    let look = if self.flags & ONE_LINE != 0 {
                        Look::End
                    } else {
                        Look::EndLF
                    };
                    self.push(Node::Look(look));
                    t = &t[1..];
                }
                b'.' => {
                    let class = if self.flags & DOT_NL != 0 {
                        vec![(0, MAX_RUNE)]
                    } else {
                        vec![(0, 0x09), (0x0B, MAX_RUNE)]
                    };
                    self.push(Node::Class(class));
                    t = &t[1..];
                }
                b'[' => t = self.parse_class(t)?,
                b'*' | b'+' | b'?' => {
                    let before = self.pos(t);
                    let (min, max) = match b {
                        b'*' => (0, None),
                        b'+' => (1, None),
                        _ => (0, Some(1)),
                    };
                    let after = self.pos(&t[1..]);
                    let after = self.repeat(min, max, false, before, after, last_repeat)?;
                    repeat = Some(before);
                    t = &s[after..];
                }
                b'{' => {
                    let before = self.pos(t);
                    match parse_repeat(t) {
                        None => {
                            // If the repeat cannot be parsed, { is a literal.
                            self.literal('{');
                            t = &t[1..];
                        }
                        Some((min, max, rest)) => {
                            let after = self.pos(rest);
                            if min > MAX_REPEAT || max.is_some_and(|m| m > MAX_REPEAT || min > m) {
                                // Numbers were too big, or max is present and min > max.
                                return Err(syntax_err(ERR_INVALID_REPEAT_SIZE, &s[before..after]));
                            }
                            let after = self.repeat(min, max, true, before, after, last_repeat)?;
                            repeat = Some(before);
                            t = &s[after..];
                        }
                    }
                }
                b'\\' => t = self.parse_backslash(t)?,
                _ => {
                    let c = t.chars().next().unwrap_or('\0');
                    self.literal(c);
                    t = &t[c.len_utf8()..];
                }
            }
            last_repeat = repeat;
        }
        self.concat();
        if self.swap_vertical_bar() {
            self.stack.pop();
        }
        self.alternate();
        if self.stack.len() != 1 {
            return Err(syntax_err(ERR_MISSING_PAREN, s));
        }
        if self.too_deep {
            return Err(syntax_err(ERR_NESTING_DEPTH, s));
        }
        let Some(Item::Expr(node, _)) = self.stack.pop() else {
            return Err(syntax_err(ERR_MISSING_PAREN, s));
        };
        Ok((node, self.names))
    }

    /// Go's `repeat`; `before`/`after` are offsets of the operator and of what follows it.
    fn repeat(
        &mut self,
        min: u32,
        max: Option<u32>,
        counted: bool,
        before: usize,
        mut after: usize,
        last_repeat: Option<usize>,
    ) -> Result<usize, RegexError> {
        let s = self.whole;
        let mut greedy = self.flags & NON_GREEDY == 0;
        if s.as_bytes().get(after) == Some(&b'?') {
            after += 1;
            greedy = !greedy;
        }
        if let Some(last) = last_repeat {
            return Err(syntax_err(ERR_INVALID_REPEAT_OP, &s[last..after]));
        }
        let (sub, height) = match self.stack.pop() {
            Some(Item::Expr(node, height)) => (node, height),
            other => {
                if let Some(item) = other {
                    self.stack.push(item);
                }
                return Err(syntax_err(ERR_MISSING_REPEAT_ARGUMENT, &s[before..after]));
            }
        };
        let node = Node::Repeat {
            min,
            max,
            greedy,
            sub: Box::new(sub),
        };
        if counted
            && (min >= 2 || max.is_some_and(|m| m >= 2))
            && !repeat_is_valid(&node, MAX_REPEAT)
        {
            return Err(syntax_err(ERR_INVALID_REPEAT_SIZE, &s[before..after]));
        }
        self.push_h(node, height + 1);
        Ok(after)
    }

    /// Go's `concat`: everything above the topmost `|` or `(` becomes one concatenation.
    fn concat(&mut self) {
        let node = self.collapse(false);
        self.push_node(node);
    }

    /// Go's `alternate`: everything above the topmost `(` becomes one alternation.
    fn alternate(&mut self) {
        let node = self.collapse(true);
        self.push_node(node);
    }

    fn push_node(&mut self, (node, height): (Node, usize)) {
        self.push_h(node, height);
    }

    /// Go's `collapse`: pops the expressions above the topmost marker into one concatenation
    /// or alternation, hoisting nested ones of the same kind (Go's tree shape, for its height
    /// limit). Go's further rewrites (prefix factoring, class merging) keep the meaning and are
    /// not reproduced.
    fn collapse(&mut self, alternate: bool) -> (Node, usize) {
        let mut i = self.stack.len();
        while i > 0 && matches!(self.stack[i - 1], Item::Expr(..)) {
            i -= 1;
        }
        let mut subs = Vec::new();
        let mut height = 0;
        for item in self.stack.drain(i..) {
            let Item::Expr(node, h) = item else {
                unreachable!("only expressions above the marker");
            };
            match node {
                Node::Alternate(inner) if alternate => subs.extend(inner),
                Node::Concat(inner) if !alternate => subs.extend(inner),
                node => subs.push(node),
            }
            height = height.max(h);
        }
        match subs.len() {
            // Go: OpEmptyMatch for an empty concatenation, OpNoMatch for an empty alternation
            // (which cannot happen after a concatenation).
            0 if alternate => (Node::Class(Vec::new()), 1),
            0 => (Node::Empty, 1),
            1 => (subs.pop().unwrap_or(Node::Empty), height),
            _ if alternate => (Node::Alternate(subs), height + 1),
            _ => (Node::Concat(subs), height + 1),
        }
    }

    /// Go's `swapVerticalBar` (without its char-class merging, which does not change meaning):
    /// finished alternatives sit below the `|` marker, `[.., alt1, alt2, |, current]` becomes
    /// `[.., alt1, alt2, current, |]`.
    fn swap_vertical_bar(&mut self) -> bool {
        let n = self.stack.len();
        if n >= 2
            && matches!(self.stack[n - 2], Item::VerticalBar)
            && matches!(self.stack[n - 1], Item::Expr(..))
        {
            self.stack.swap(n - 2, n - 1);
            return true;
        }
        false
    }

    fn swap_or_push_bar(&mut self) {
        if !self.swap_vertical_bar() {
            self.stack.push(Item::VerticalBar);
        }
    }

    fn parse_right_paren(&mut self) -> Result<(), RegexError> {
        self.concat();
        if self.swap_vertical_bar() {
            self.stack.pop();
        }
        self.alternate();
        let n = self.stack.len();
        if n < 2 {
            return Err(syntax_err(ERR_UNEXPECTED_PAREN, self.whole));
        }
        let Some(Item::Expr(body, height)) = self.stack.pop() else {
            return Err(syntax_err(ERR_UNEXPECTED_PAREN, self.whole));
        };
        match self.stack.pop() {
            Some(Item::LeftParen { cap, flags }) => {
                self.flags = flags;
                if cap == 0 {
                    self.push_h(body, height);
                } else {
                    self.push_h(Node::Capture(cap, Box::new(body)), height + 1);
                }
                Ok(())
            }
            _ => Err(syntax_err(ERR_UNEXPECTED_PAREN, self.whole)),
        }
    }

    /// Go's `parsePerlFlags`: `(?i)`, `(?i:`, `(?P<name>`, `(?<name>`.
    fn parse_perl_flags(&mut self, s: &'a str) -> Result<&'a str, RegexError> {
        let tb = s.as_bytes();
        let starts_with_p = tb.len() > 4 && tb[2] == b'P' && tb[3] == b'<';
        let starts_with_name = tb.len() > 3 && tb[2] == b'<';
        if starts_with_p || starts_with_name {
            let expr_start = if starts_with_p { 4 } else { 3 };
            let Some(end) = s.find('>') else {
                return Err(syntax_err(ERR_INVALID_NAMED_CAPTURE, s));
            };
            let capture = &s[..end + 1];
            let name = &s[expr_start..end];
            if name.is_empty() || !name.chars().all(|c| c == '_' || is_alnum(c)) {
                return Err(syntax_err(ERR_INVALID_NAMED_CAPTURE, capture));
            }
            self.num_cap += 1;
            self.names.push(Some(name.to_owned()));
            self.stack.push(Item::LeftParen {
                cap: self.num_cap,
                flags: self.flags,
            });
            return Ok(&s[end + 1..]);
        }

        let mut t = &s[2..];
        let mut flags = self.flags;
        let mut negated = false;
        let mut saw_flag = false;
        while let Some(c) = t.chars().next() {
            t = &t[c.len_utf8()..];
            match c {
                'i' | 'm' | 's' | 'U' => {
                    let bit = match c {
                        'i' => FOLD_CASE,
                        'm' => ONE_LINE,
                        's' => DOT_NL,
                        _ => NON_GREEDY,
                    };
                    // `m` clears OneLine; the others set their flag. Negation inverts.
                    let set = (c != 'm') != negated;
                    if set {
                        flags |= bit;
                    } else {
                        flags &= !bit;
                    }
                    saw_flag = true;
                }
                '-' => {
                    if negated {
                        break;
                    }
                    negated = true;
                    saw_flag = false;
                }
                ':' | ')' => {
                    if negated && !saw_flag {
                        break;
                    }
                    if c == ':' {
                        self.stack.push(Item::LeftParen {
                            cap: 0,
                            flags: self.flags,
                        });
                    }
                    self.flags = flags;
                    return Ok(t);
                }
                _ => break,
            }
        }
        Err(syntax_err(ERR_INVALID_PERL_OP, &s[..s.len() - t.len()]))
    }

    /// A `\` outside a class: Go's special escapes, then Unicode and Perl classes, then a
    /// single-character escape.
    fn parse_backslash(&mut self, t: &'a str) -> Result<&'a str, RegexError> {
        let tb = t.as_bytes();
        if tb.len() >= 2 {
            match tb[1] {
                b'A' => {
                    self.push(Node::Look(Look::Start));
                    return Ok(&t[2..]);
                }
                b'b' => {
                    self.push(Node::Look(Look::WordAscii));
                    return Ok(&t[2..]);
                }
                b'B' => {
                    self.push(Node::Look(Look::WordAsciiNegate));
                    return Ok(&t[2..]);
                }
                b'C' => return Err(syntax_err(ERR_INVALID_ESCAPE, &t[..2])),
                b'Q' => {
                    let body = &t[2..];
                    let (lit, rest) = match body.find(r"\E") {
                        Some(i) => (&body[..i], &body[i + 2..]),
                        None => (body, ""),
                    };
                    for c in lit.chars() {
                        self.literal(c);
                    }
                    return Ok(rest);
                }
                b'z' => {
                    self.push(Node::Look(Look::End));
                    return Ok(&t[2..]);
                }
                b'p' | b'P' => {
                    if let Some((class, rest)) = self.parse_unicode_class(t)? {
                        self.push(Node::Class(class));
                        return Ok(rest);
                    }
                }
                c => {
                    if let Some((class, negated)) = perl_group(c) {
                        let class = self.group(class, negated);
                        self.push(Node::Class(class));
                        return Ok(&t[2..]);
                    }
                }
            }
        }
        let (r, rest) = parse_escape(t)?;
        self.literal_rune(r);
        Ok(rest)
    }

    /// Go's `parseUnicodeClass`; `Ok(None)` when `s` does not start with `\p`/`\P`.
    fn parse_unicode_class(&self, s: &'a str) -> Result<Option<(Ranges, &'a str)>, RegexError> {
        let sb = s.as_bytes();
        if sb.len() < 2 || sb[0] != b'\\' || (sb[1] != b'p' && sb[1] != b'P') {
            return Ok(None);
        }
        let mut negated = sb[1] == b'P';
        let t = &s[2..];
        let (seq, mut name, rest) = match t.chars().next() {
            Some('{') => {
                let Some(end) = s.find('}') else {
                    return Err(syntax_err(ERR_INVALID_CHAR_RANGE, s));
                };
                (&s[..end + 1], &s[3..end], &s[end + 1..])
            }
            Some(c) => {
                let seq = &s[..2 + c.len_utf8()];
                (seq, &seq[2..], &s[2 + c.len_utf8()..])
            }
            None => (s, "", ""),
        };
        if let Some(stripped) = name.strip_prefix('^') {
            negated = !negated;
            name = stripped;
        }
        let canonical = canonical_name(name);
        let table: Vec<(u32, u32)> = match canonical.as_str() {
            "Any" => vec![(0, MAX_RUNE)],
            "Ascii" => vec![(0, 0x7F)],
            "Lc" => unicode_category("LC"),
            c if CATEGORIES.contains(&c) => unicode_category(c),
            // Go's one-letter names are the major categories C L M N P S Z; other single letters
            // (and the empty name) are unknown to it.
            c if c.len() <= 1 && c != "C" => {
                return Err(syntax_err(ERR_INVALID_CHAR_RANGE, seq));
            }
            _ => {
                return Err(RegexError::Unsupported(format!(
                    "unsupported Unicode class `{seq}` in regex: pyrogate reproduces Go's general \
                     categories (\\pL, \\p{{Lu}}, ...), Any and ASCII only; Unicode scripts, \
                     aliases and \\p{{C}} depend on Go's Unicode tables"
                )));
            }
        };
        let table = if self.flags & FOLD_CASE != 0 {
            fold(&table)
        } else {
            table
        };
        let class = if negated { negate(&table) } else { table };
        Ok(Some((class, rest)))
    }

    /// Go's `parseClass`: `[...]`, folded under `(?i)` before its negation.
    fn parse_class(&mut self, s: &'a str) -> Result<&'a str, RegexError> {
        let mut t = &s[1..];
        let mut negated = false;
        if t.starts_with('^') {
            negated = true;
            t = &t[1..];
        }
        let fold_case = self.flags & FOLD_CASE != 0;
        let mut class: Vec<(u32, u32)> = Vec::new();
        let mut first = true;
        while t.is_empty() || !t.starts_with(']') || first {
            first = false;
            // POSIX [:alnum:] etc.
            if t.len() > 2
                && t.starts_with("[:")
                && let Some(i) = t[2..].find(":]")
            {
                let name = &t[..i + 4];
                let Some((group, neg)) = posix_group(name) else {
                    return Err(syntax_err(ERR_INVALID_CHAR_RANGE, name));
                };
                class.extend(self.group(group, neg));
                t = &t[i + 4..];
                continue;
            }
            if let Some((uni, rest)) = self.parse_unicode_class(t)? {
                class.extend(uni);
                t = rest;
                continue;
            }
            if t.len() >= 2
                && t.as_bytes()[0] == b'\\'
                && let Some((group, neg)) = perl_group(t.as_bytes()[1])
            {
                class.extend(self.group(group, neg));
                t = &t[2..];
                continue;
            }
            // Single character or simple range.
            let rng = t;
            let (lo, rest) = parse_class_char(t, s)?;
            t = rest;
            let mut hi = lo;
            // [a-] means (a|-), so check for the final ].
            if t.len() >= 2 && t.as_bytes()[0] == b'-' && t.as_bytes()[1] != b']' {
                t = &t[1..];
                let (h, rest) = parse_class_char(t, s)?;
                t = rest;
                hi = h;
                if hi < lo {
                    let len = rng.len() - t.len();
                    return Err(syntax_err(ERR_INVALID_CHAR_RANGE, &rng[..len]));
                }
            }
            if fold_case {
                class.extend(fold(&[(lo, hi)]));
            } else {
                class.push((lo, hi));
            }
        }
        t = &t[1..]; // chop ]
        let mut cls = to_class(&class);
        if negated {
            cls.negate();
        }
        self.push(Node::Class(from_class(&cls)));
        Ok(t)
    }
}

/// Go's `parseRepeat`: `{n}`, `{n,}`, `{n,m}` as `(min, max, rest)` with `max` `None` for
/// `{n,}`. `None` when `s` is not of that form (the `{` is then a literal). Numbers saturate:
/// anything over 1000 is refused by the caller with the same error Go gives for "too big".
fn parse_repeat(s: &str) -> Option<(u32, Option<u32>, &str)> {
    let s = s.strip_prefix('{')?;
    let (min, s) = parse_int(s)?;
    let (max, s) = match s.strip_prefix(',') {
        None => (Some(min), s),
        Some(s) if s.starts_with('}') => (None, s),
        Some(s) => {
            let (max, s) = parse_int(s)?;
            (Some(max), s)
        }
    };
    let rest = s.strip_prefix('}')?;
    Some((min, max, rest))
}

/// Go's `parseInt`: decimal digits without leading zeros (saturating).
fn parse_int(s: &str) -> Option<(u32, &str)> {
    let b = s.as_bytes();
    if b.is_empty() || !b[0].is_ascii_digit() {
        return None;
    }
    if b.len() >= 2 && b[0] == b'0' && b[1].is_ascii_digit() {
        return None;
    }
    let n = b.iter().take_while(|c| c.is_ascii_digit()).count();
    let v = b[..n].iter().fold(0u32, |v, &d| {
        v.saturating_mul(10).saturating_add(u32::from(d - b'0'))
    });
    Some((v, &s[n..]))
}

/// Go's `parseClassChar`.
fn parse_class_char<'s>(s: &'s str, whole_class: &str) -> Result<(u32, &'s str), RegexError> {
    if s.is_empty() {
        return Err(syntax_err(ERR_MISSING_BRACKET, whole_class));
    }
    if s.starts_with('\\') {
        return parse_escape(s);
    }
    let c = s.chars().next().unwrap_or('\0');
    Ok((c as u32, &s[c.len_utf8()..]))
}

/// Go's `parseEscape`: one escaped character (octal, hex, C escapes, punctuation).
fn parse_escape(s: &str) -> Result<(u32, &str), RegexError> {
    let t = &s[1..];
    let Some(c) = t.chars().next() else {
        return Err(syntax_err(ERR_TRAILING_BACKSLASH, ""));
    };
    let mut t = &t[c.len_utf8()..];
    let invalid = |t: &str| syntax_err(ERR_INVALID_ESCAPE, &s[..s.len() - t.len()]);
    match c {
        '1'..='7' if !t.starts_with(|d: char| ('0'..='7').contains(&d)) => Err(invalid(t)),
        '0'..='7' => {
            let mut r = c as u32 - '0' as u32;
            for _ in 1..3 {
                match t.as_bytes().first() {
                    Some(d @ b'0'..=b'7') => {
                        r = r * 8 + u32::from(d - b'0');
                        t = &t[1..];
                    }
                    _ => break,
                }
            }
            Ok((r, t))
        }
        'x' => {
            let Some(c) = t.chars().next() else {
                return Err(invalid(t));
            };
            t = &t[c.len_utf8()..];
            if c == '{' {
                let mut nhex = 0;
                let mut r: u32 = 0;
                loop {
                    let Some(c) = t.chars().next() else {
                        return Err(invalid(t));
                    };
                    t = &t[c.len_utf8()..];
                    if c == '}' {
                        break;
                    }
                    let Some(v) = unhex(c) else {
                        return Err(invalid(t));
                    };
                    r = r * 16 + v;
                    if r > MAX_RUNE {
                        return Err(invalid(t));
                    }
                    nhex += 1;
                }
                if nhex == 0 {
                    return Err(invalid(t));
                }
                return Ok((r, t));
            }
            let x = unhex(c);
            let Some(c2) = t.chars().next() else {
                return Err(invalid(t));
            };
            t = &t[c2.len_utf8()..];
            match (x, unhex(c2)) {
                (Some(x), Some(y)) => Ok((x * 16 + y, t)),
                _ => Err(invalid(t)),
            }
        }
        'a' => Ok((7, t)),
        'f' => Ok((0xC, t)),
        'n' => Ok((0xA, t)),
        'r' => Ok((0xD, t)),
        't' => Ok((9, t)),
        'v' => Ok((0xB, t)),
        c if c.is_ascii() && !is_alnum(c) => Ok((c as u32, t)),
        _ => Err(invalid(t)),
    }
}

fn to_hir(node: &Node) -> Hir {
    match node {
        Node::Empty => Hir::empty(),
        Node::Literal(c, false) => {
            let mut buf = [0u8; 4];
            Hir::literal(c.encode_utf8(&mut buf).as_bytes())
        }
        Node::Literal(c, true) => {
            let mut cls = ClassUnicode::new([ClassUnicodeRange::new(*c, *c)]);
            cls.case_fold_simple();
            Hir::class(Class::Unicode(cls))
        }
        Node::Class(ranges) => Hir::class(Class::Unicode(to_class(ranges))),
        Node::Look(look) => Hir::look(*look),
        Node::Capture(index, sub) => Hir::capture(hir::Capture {
            index: *index,
            name: None,
            sub: Box::new(to_hir(sub)),
        }),
        Node::Repeat {
            min,
            max,
            greedy,
            sub,
        } => Hir::repetition(Repetition {
            min: *min,
            max: *max,
            greedy: *greedy,
            sub: Box::new(to_hir(sub)),
        }),
        Node::Concat(subs) => Hir::concat(subs.iter().map(to_hir).collect()),
        Node::Alternate(subs) => Hir::alternation(subs.iter().map(to_hir).collect()),
    }
}

/// A compiled Go regular expression.
#[derive(Clone)]
pub struct GoRegex {
    re: meta::Regex,
    /// Capture group names by index (index 0, the whole match, has none), as Go's
    /// `SubexpNames`. Go allows duplicate names and names starting with a digit.
    names: Vec<Option<String>>,
}

impl fmt::Debug for GoRegex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GoRegex")
            .field("groups", &self.names.len())
            .finish_non_exhaustive()
    }
}

/// The most capture groups a match is resolved for without allocating.
const STACK_GROUPS: usize = 16;

/// Capture positions of one match, Go's `[]int` from `FindStringSubmatchIndex` (`None` for a
/// group that did not participate).
#[derive(Debug)]
pub struct Slots {
    inline: [Option<NonMaxUsize>; 2 * STACK_GROUPS],
    heap: Vec<Option<NonMaxUsize>>,
    groups: usize,
}

impl Slots {
    fn new(groups: usize) -> Self {
        Slots {
            inline: [None; 2 * STACK_GROUPS],
            heap: if groups > STACK_GROUPS {
                vec![None; 2 * groups]
            } else {
                Vec::new()
            },
            groups,
        }
    }

    fn slice_mut(&mut self) -> &mut [Option<NonMaxUsize>] {
        if self.groups > STACK_GROUPS {
            &mut self.heap
        } else {
            &mut self.inline[..2 * self.groups]
        }
    }

    fn slice(&self) -> &[Option<NonMaxUsize>] {
        if self.groups > STACK_GROUPS {
            &self.heap
        } else {
            &self.inline[..2 * self.groups]
        }
    }

    /// The span of group `i`, if it exists and participated.
    pub fn group(&self, i: usize) -> Option<(usize, usize)> {
        let s = self.slice();
        match (s.get(2 * i)?, s.get(2 * i + 1)?) {
            (Some(a), Some(b)) => Some((a.get(), b.get())),
            _ => None,
        }
    }
}

impl GoRegex {
    /// Compiles `pattern` as Go's `regexp.Compile` does (`syntax.Perl` flags).
    pub fn new(pattern: &str) -> Result<GoRegex, RegexError> {
        let parser = Parser {
            whole: pattern,
            flags: ONE_LINE,
            stack: Vec::new(),
            num_cap: 0,
            names: vec![None],
            too_deep: false,
        };
        let (node, names) = parser.parse()?;
        let hir = to_hir(&node);
        let re = meta::Builder::new()
            .configure(
                meta::Config::new()
                    .nfa_size_limit(Some(64 << 20))
                    .hybrid_cache_capacity(4 << 20),
            )
            .build_from_hir(&hir)
            .map_err(|e| {
                RegexError::Unsupported(format!("regex too large for pyrogate's regex engine: {e}"))
            })?;
        Ok(GoRegex { re, names })
    }

    /// Compiles `pattern` anchored as Alloy's and Prometheus' relabel `Regexp` do: the text
    /// `^(?s:` + pattern + `)$` (so `.` matches `\n`, and the pattern can close the group).
    pub fn anchored(pattern: &str) -> Result<GoRegex, RegexError> {
        GoRegex::new(&format!("^(?s:{pattern})$"))
    }

    /// Number of groups including group 0.
    pub fn groups(&self) -> usize {
        self.names.len()
    }

    /// Capture names by index (Go's `SubexpNames`).
    pub fn names(&self) -> &[Option<String>] {
        &self.names
    }

    /// Go's `MatchString`: a match anywhere in `hay`.
    pub fn is_match(&self, hay: &str) -> bool {
        self.re.is_match(hay)
    }

    /// Go's `FindStringSubmatchIndex` from byte `start` on.
    pub fn captures_at(&self, hay: &str, start: usize) -> Option<Slots> {
        let mut slots = Slots::new(self.groups());
        let input = Input::new(hay).range(start..);
        self.re.search_slots(&input, slots.slice_mut())?;
        Some(slots)
    }

    /// Go's `ReplaceAllString(src, ...)` with a per-match expansion.
    pub fn replace_all(
        &self,
        src: &str,
        out: &mut String,
        mut expand: impl FnMut(&mut String, &Slots),
    ) {
        // golang/go src/regexp/regexp.go, `replaceAll`.
        let mut last_match_end = 0;
        let mut search_pos = 0;
        while search_pos <= src.len() {
            let Some(slots) = self.captures_at(src, search_pos) else {
                break;
            };
            let Some((a0, a1)) = slots.group(0) else {
                break;
            };
            out.push_str(&src[last_match_end..a0]);
            // Not for an empty match immediately after another match.
            if a1 > last_match_end || a0 == 0 {
                expand(out, &slots);
            }
            last_match_end = a1;
            let width = src[search_pos..].chars().next().map_or(0, char::len_utf8);
            if search_pos + width > a1 {
                search_pos += width;
            } else if search_pos + 1 > a1 {
                search_pos += 1;
            } else {
                search_pos = a1;
            }
        }
        out.push_str(&src[last_match_end..]);
    }
}
