//! `$1` / `${name}` templates, as Go's `Regexp.ExpandString` reads them (golang/go
//! `src/regexp/regexp.go`, `expand` and `extract`).
//!
//! Owns: parsing a `target_label` or `replacement` template once, when the rule is built, and
//! expanding it against a match. Does not own: finding the match (see `super::goregex`).
//!
//! Go's reading, reproduced here: `$$` is a `$`; `$name` takes the longest run of Unicode
//! letters, digits and `_` (so `$1x` is the group named `1x`, which does not exist, and expands
//! to nothing); `${name}` needs its closing brace; an all-digit name without a leading zero is a
//! group number; a name is the first group of that name that took part in the match; an
//! unknown group or one that did not take part expands to nothing; a `$` that starts no valid
//! reference (a lone `$`, `${`, `${}`, `$-`) stays a literal `$` and the text after it is read
//! as ordinary text.

use super::goregex::{GoRegex, Slots};

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Literal(String),
    /// A group number (may exceed the groups the regex has: then it expands to nothing).
    Group(usize),
    /// A group name resolved to the indices of the groups with that name, in order.
    Named(Vec<usize>),
}

/// A parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    pieces: Vec<Piece>,
}

/// Go's `unicode.IsLetter(r) || unicode.IsDigit(r) || r == '_'`.
fn is_name_char(c: char) -> bool {
    if c.is_ascii() {
        return c.is_ascii_alphanumeric() || c == '_';
    }
    super::goregex::is_letter_or_decimal_digit(c)
}

impl Template {
    /// Parses `template` for a regex with capture names `names` (Go's `SubexpNames`).
    pub fn new(template: &str, names: &[Option<String>]) -> Template {
        let mut pieces = Vec::new();
        let mut lit = String::new();
        let mut rest = template;
        while let Some(i) = rest.find('$') {
            lit.push_str(&rest[..i]);
            rest = &rest[i + 1..];
            if let Some(after) = rest.strip_prefix('$') {
                lit.push('$');
                rest = after;
                continue;
            }
            let Some((name, after)) = extract(rest) else {
                // Malformed: the $ is raw text.
                lit.push('$');
                continue;
            };
            rest = after;
            if !lit.is_empty() {
                pieces.push(Piece::Literal(std::mem::take(&mut lit)));
            }
            match group_number(name) {
                Some(n) => pieces.push(Piece::Group(n)),
                None => pieces.push(Piece::Named(
                    names
                        .iter()
                        .enumerate()
                        .filter(|(_, n)| n.as_deref() == Some(name))
                        .map(|(i, _)| i)
                        .collect(),
                )),
            }
        }
        lit.push_str(rest);
        if !lit.is_empty() {
            pieces.push(Piece::Literal(lit));
        }
        Template { pieces }
    }

    /// The template when it references no group (it then expands to itself).
    pub fn as_literal(&self) -> Option<&str> {
        match self.pieces.as_slice() {
            [] => Some(""),
            [Piece::Literal(s)] => Some(s),
            _ => None,
        }
    }

    /// Appends the expansion for the match `slots` of `src` to `out`.
    pub fn expand_into(&self, out: &mut String, src: &str, slots: &Slots) {
        for piece in &self.pieces {
            match piece {
                Piece::Literal(s) => out.push_str(s),
                Piece::Group(n) => {
                    if let Some((a, b)) = slots.group(*n) {
                        out.push_str(&src[a..b]);
                    }
                }
                Piece::Named(indices) => {
                    if let Some((a, b)) = indices.iter().find_map(|&i| slots.group(i)) {
                        out.push_str(&src[a..b]);
                    }
                }
            }
        }
    }

    /// The expansion for the match `slots` of `src`.
    pub fn expand(&self, src: &str, slots: &Slots) -> String {
        let mut out = String::new();
        self.expand_into(&mut out, src, slots);
        out
    }
}

/// Go's `extract`: the name of a leading `name` or `{name}` (the `$` already taken) and what
/// follows; `None` when malformed.
fn extract(s: &str) -> Option<(&str, &str)> {
    let (brace, body) = match s.strip_prefix('{') {
        Some(body) => (true, body),
        None => (false, s),
    };
    let len: usize = body
        .chars()
        .take_while(|&c| is_name_char(c))
        .map(char::len_utf8)
        .sum();
    if len == 0 {
        return None;
    }
    let name = &body[..len];
    let rest = &body[len..];
    if brace {
        let rest = rest.strip_prefix('}')?;
        return Some((name, rest));
    }
    Some((name, rest))
}

/// Go's number reading in `extract`: ASCII digits, no leading zero, below the 1e8 guard.
fn group_number(name: &str) -> Option<usize> {
    if name.len() > 1 && name.starts_with('0') {
        return None;
    }
    let mut num: usize = 0;
    for b in name.bytes() {
        if !b.is_ascii_digit() || num >= 100_000_000 {
            return None;
        }
        num = num * 10 + usize::from(b - b'0');
    }
    Some(num)
}

/// Go's `ReplaceAllString(src, template)`: every match replaced by the template's expansion.
pub fn replace_all(re: &GoRegex, src: &str, template: &Template) -> String {
    let mut out = String::with_capacity(src.len());
    re.replace_all(src, &mut out, |out, slots| {
        template.expand_into(out, src, slots)
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expand(pattern: &str, template: &str, src: &str) -> String {
        let re = GoRegex::anchored(pattern).expect("compiles");
        let slots = re.captures_at(src, 0).expect("matches");
        Template::new(template, re.names()).expand(src, &slots)
    }

    #[test]
    fn numbered_and_braced_references_expand() {
        assert_eq!(expand("(a)(b)", "$1-${2}", "ab"), "a-b");
        assert_eq!(expand("(a)(b)", "ch${1}-ch${1}", "ab"), "cha-cha");
    }

    #[test]
    fn dollar_name_takes_the_longest_word_run() {
        // $1x is the group named "1x" (none): empty, not "a" followed by "x".
        assert_eq!(expand("(a)", "$1x", "a"), "");
        assert_eq!(expand("(a)", "${1}x", "a"), "ax");
        // $10 is group 10, not group 1 followed by 0.
        assert_eq!(expand("(a)", "$10", "a"), "");
        // Unicode letters continue a name, as unicode.IsLetter does in Go.
        assert_eq!(expand("(a)", "$1é", "a"), "");
        assert_eq!(expand("(a)", "$1-é", "a"), "a-é");
    }

    #[test]
    fn double_dollar_is_a_literal_dollar() {
        assert_eq!(expand("(a)", "$$1", "a"), "$1");
        assert_eq!(expand("(a)", "$$$1", "a"), "$a");
    }

    #[test]
    fn malformed_references_keep_the_dollar() {
        assert_eq!(expand("(a)", "$", "a"), "$");
        assert_eq!(expand("(a)", "x$", "a"), "x$");
        assert_eq!(expand("(a)", "${", "a"), "${");
        assert_eq!(expand("(a)", "${}", "a"), "${}");
        assert_eq!(expand("(a)", "${1", "a"), "${1");
        assert_eq!(expand("(a)", "$-1", "a"), "$-1");
        assert_eq!(expand("(a)", "${1-}", "a"), "${1-}");
    }

    #[test]
    fn unknown_and_unmatched_groups_expand_to_nothing() {
        assert_eq!(expand("(a)", "[$2]", "a"), "[]");
        assert_eq!(expand("(a)|(b)", "[$1][$2]", "b"), "[][b]");
        assert_eq!(expand("(a)", "[$nope]", "a"), "[]");
    }

    #[test]
    fn names_resolve_to_the_first_participating_group() {
        assert_eq!(expand("(?P<x>a)(?<y>b)", "$y$x", "ab"), "ba");
        // Go allows duplicate names; the first one that matched wins.
        assert_eq!(expand("(?P<n>a)|(?P<n>b)", "[$n]", "b"), "[b]");
        // Go allows names that start with a digit; "01" is not a number (leading zero).
        assert_eq!(expand("(?P<01>a)", "${01}", "a"), "a");
    }

    #[test]
    fn leading_zero_number_is_a_name() {
        assert_eq!(expand("(a)", "$01", "a"), "");
        assert_eq!(expand("(a)", "$0", "a"), "a");
    }

    #[test]
    fn replace_all_replaces_the_whole_anchored_match() {
        let re = GoRegex::anchored("__meta_(.+)").expect("compiles");
        let t = Template::new("${1}", re.names());
        assert_eq!(replace_all(&re, "__meta_foo", &t), "foo");
    }

    #[test]
    fn replace_all_follows_go_when_the_pattern_escapes_its_anchors() {
        // `^(?s:x)|(?:y)$`: the second alternative is anchored only at the end.
        let re = GoRegex::anchored("x)|(?:y").expect("compiles");
        let t = Template::new("<$0>", re.names());
        assert_eq!(replace_all(&re, "ayby", &t), "ayb<y>");
        // An empty-matching pattern: Go inserts at every position but not right after a match.
        let re = GoRegex::new("a*").expect("compiles");
        let t = Template::new("-", re.names());
        assert_eq!(replace_all(&re, "baaac", &t), "-b-c-");
    }
}
