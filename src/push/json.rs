//! protojson for `PushRequest` (`application/json` Connect requests) and the small JSON needs of
//! Connect error bodies, without a general JSON library.
//!
//! Decoding mirrors connect-go's JSON codec: `protojson.UnmarshalOptions{DiscardUnknown: true}`
//! (connect-go `codec.go`) over RFC 8259 JSON. So: an empty body is an error; unknown members
//! are skipped but must still be valid JSON; a member named twice (even once as `rawProfile`
//! and once as `raw_profile`) is an error; `null` for a field leaves it at its default, but a
//! `null` element of a list is an error; strings must be JSON strings (no numbers), escapes are
//! checked, a lone UTF-16 surrogate is an error; field names are matched exactly, by JSON name
//! (`rawProfile`) or proto name (`raw_profile`; `ID` is both). `bytes` follow protojson's
//! base64 rules: the URL-safe alphabet if the text holds `-` or `_`, unpadded if its length is
//! not a multiple of 4, `\r`/`\n` ignored, non-zero trailing bits accepted (Go's
//! `encoding/base64`, not strict). Nesting of skipped values is capped at [`MAX_DEPTH`].
//!
//! Hot path for JSON pushes only (rare: SDKs send protobuf); a decoded `raw_profile` is a new
//! buffer, as base64 demands.

use std::borrow::Cow;

use bytes::Bytes;

use super::connect::Code;
use super::{DecodeError, Item, Location, PushRequest, Sample, Series};

/// Deepest nesting of arrays and objects accepted inside a skipped (unknown) member: the
/// default recursion limit of protobuf-go (`protowire.DefaultRecursionLimit`).
pub const MAX_DEPTH: usize = 10_000;

/// What is wrong with a protojson body at a [`Location`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JsonProblem {
    #[error("zero-length payload is not a valid JSON object")]
    Empty,
    #[error("invalid UTF-8 at byte {0}")]
    InvalidUtf8(usize),
    #[error("unexpected end of JSON input")]
    UnexpectedEnd,
    #[error("syntax error at byte {offset}: expected {expected}")]
    Syntax {
        offset: usize,
        expected: &'static str,
    },
    #[error("invalid escape in string at byte {0}")]
    InvalidEscape(usize),
    #[error("control character in string at byte {0}")]
    ControlCharacter(usize),
    #[error("nesting deeper than {MAX_DEPTH} at byte {0}")]
    TooDeep(usize),
    #[error("unexpected data after the top-level value at byte {0}")]
    TrailingData(usize),
    #[error("expected a JSON object, found {0}")]
    NotAnObject(&'static str),
    #[error("field {field}: expected {expected}, found {found}")]
    WrongType {
        field: &'static str,
        expected: &'static str,
        found: &'static str,
    },
    #[error("duplicate field {0}")]
    DuplicateField(&'static str),
    #[error("field {field}: invalid base64 at character {offset}")]
    InvalidBase64 { field: &'static str, offset: usize },
}

/// Decodes a protojson `PushRequest`:
/// `{"series":[{"labels":[{"name":"..","value":".."}],"samples":[{"rawProfile":"<base64>","ID":".."}]}]}`.
pub fn decode_json(body: &[u8]) -> Result<PushRequest, DecodeError> {
    let top = Location::TOP;
    let fail = |problem| DecodeError::Json { at: top, problem };
    if body.is_empty() {
        return Err(fail(JsonProblem::Empty));
    }
    let text =
        std::str::from_utf8(body).map_err(|e| fail(JsonProblem::InvalidUtf8(e.valid_up_to())))?;
    let mut lx = Lexer::new(text);
    let mut request = PushRequest::default();
    if lx.peek() != Some(b'{') {
        return Err(fail(JsonProblem::NotAnObject(lx.found())));
    }
    lx.pos += 1;
    let mut seen = Seen::default();
    let mut first = true;
    while let Some(key) = lx.next_key(&mut first).map_err(fail)? {
        if &*key == "series" {
            seen.mark(0, "series").map_err(fail)?;
            if lx.null().map_err(fail)? {
                continue;
            }
            lx.begin_array("series").map_err(fail)?;
            let mut first = true;
            while lx.next_elem(&mut first).map_err(fail)? {
                let at = Location::series(request.series.len());
                request.series.push(series(&mut lx, at)?);
            }
        } else {
            lx.skip_value().map_err(fail)?;
        }
    }
    lx.end().map_err(fail)?;
    Ok(request)
}

fn series(lx: &mut Lexer<'_>, at: Location) -> Result<Series, DecodeError> {
    let fail = |problem| DecodeError::Json { at, problem };
    lx.begin_object("series").map_err(fail)?;
    let mut out = Series::default();
    let mut annotations = 0;
    let mut seen = Seen::default();
    let mut first = true;
    while let Some(key) = lx.next_key(&mut first).map_err(fail)? {
        let (field, bit) = match &*key {
            "labels" => ("labels", 0),
            "samples" => ("samples", 1),
            "annotations" => ("annotations", 2),
            _ => {
                lx.skip_value().map_err(fail)?;
                continue;
            }
        };
        seen.mark(bit, field).map_err(fail)?;
        if lx.null().map_err(fail)? {
            continue;
        }
        lx.begin_array(field).map_err(fail)?;
        let mut first = true;
        while lx.next_elem(&mut first).map_err(fail)? {
            match bit {
                0 => {
                    let here = at.item(Item::Labels, out.labels.len());
                    let pair = pair(lx, "labels", "name").map_err(|p| json_err(here, p))?;
                    out.labels.push(pair);
                }
                1 => {
                    let here = at.item(Item::Samples, out.samples.len());
                    out.samples.push(sample(lx).map_err(|p| json_err(here, p))?);
                }
                _ => {
                    let here = at.item(Item::Annotations, annotations);
                    pair(lx, "annotations", "key").map_err(|p| json_err(here, p))?;
                    annotations += 1;
                }
            }
        }
    }
    Ok(out)
}

fn json_err(at: Location, problem: JsonProblem) -> DecodeError {
    DecodeError::Json { at, problem }
}

/// `LabelPair` (`name`, `value`) or `ProfileAnnotation` (`key`, `value`).
fn pair(
    lx: &mut Lexer<'_>,
    list: &'static str,
    first_name: &'static str,
) -> Result<(String, String), JsonProblem> {
    lx.begin_object(list)?;
    let (mut a, mut b) = (String::new(), String::new());
    let mut seen = Seen::default();
    let mut first = true;
    while let Some(key) = lx.next_key(&mut first)? {
        if *key == *first_name {
            seen.mark(0, first_name)?;
            a = lx.string_field(first_name)?;
        } else if &*key == "value" {
            seen.mark(1, "value")?;
            b = lx.string_field("value")?;
        } else {
            lx.skip_value()?;
        }
    }
    Ok((a, b))
}

fn sample(lx: &mut Lexer<'_>) -> Result<Sample, JsonProblem> {
    lx.begin_object("samples")?;
    let mut out = Sample::default();
    let mut seen = Seen::default();
    let mut first = true;
    while let Some(key) = lx.next_key(&mut first)? {
        match &*key {
            "rawProfile" | "raw_profile" => {
                let field = "rawProfile";
                seen.mark(0, field)?;
                if lx.null()? {
                    continue;
                }
                if lx.peek() != Some(b'"') {
                    return Err(lx.wrong_type(field, "a base64 string"));
                }
                let text = lx.string()?;
                let raw = decode_base64(text.as_bytes())
                    .map_err(|offset| JsonProblem::InvalidBase64 { field, offset })?;
                out.raw_profile = Bytes::from(raw);
            }
            "ID" => {
                seen.mark(1, "ID")?;
                out.id = lx.string_field("ID")?;
            }
            _ => lx.skip_value()?,
        }
    }
    Ok(out)
}

/// Fields of one message already given, for protojson's duplicate-field rule.
#[derive(Default)]
struct Seen(u8);

impl Seen {
    fn mark(&mut self, bit: u8, field: &'static str) -> Result<(), JsonProblem> {
        if self.0 & (1 << bit) != 0 {
            return Err(JsonProblem::DuplicateField(field));
        }
        self.0 |= 1 << bit;
        Ok(())
    }
}

/// The code and message of a Connect error body (see `connect::parse_error_body`). Member names
/// match case-insensitively, as Go's `encoding/json` matches struct fields.
pub(crate) fn parse_error_object(body: &[u8]) -> Option<(Code, String)> {
    let text = String::from_utf8_lossy(body);
    let mut lx = Lexer::new(&text);
    if lx.peek() != Some(b'{') {
        return None;
    }
    lx.pos += 1;
    let (mut code, mut message) = (None, String::new());
    let mut first = true;
    while let Some(key) = lx.next_key(&mut first).ok()? {
        if key.eq_ignore_ascii_case("code") {
            code = match lx.null().ok()? {
                true => None,
                false => Some(Code::parse(&lx.string().ok()?)?),
            };
        } else if key.eq_ignore_ascii_case("message") {
            message = match lx.null().ok()? {
                true => String::new(),
                false => lx.string().ok()?.into_owned(),
            };
        } else {
            lx.skip_value().ok()?;
        }
    }
    lx.end().ok()?;
    Some((code?, message))
}

/// Appends `s` as a JSON string escaped like Go's `encoding/json.Marshal` (Go 1.22+): `\"`,
/// `\\`, `\b \f \n \r \t`, other controls and the HTML-sensitive `< > &` as `\u00xx`, and
/// U+2028/U+2029 escaped for JavaScript.
pub(crate) fn push_go_string(out: &mut String, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push('"');
    let mut run = 0;
    for (i, c) in s.char_indices() {
        let escape: Option<&str> = match c {
            '"' => Some("\\\""),
            '\\' => Some("\\\\"),
            '\u{8}' => Some("\\b"),
            '\u{c}' => Some("\\f"),
            '\n' => Some("\\n"),
            '\r' => Some("\\r"),
            '\t' => Some("\\t"),
            '\u{2028}' => Some("\\u2028"),
            '\u{2029}' => Some("\\u2029"),
            '\0'..='\u{1f}' | '<' | '>' | '&' => Some(""),
            _ => None,
        };
        let Some(escape) = escape else { continue };
        out.push_str(s.get(run..i).unwrap_or_default());
        run = i + c.len_utf8();
        if escape.is_empty() {
            let b = c as u8;
            out.push_str("\\u00");
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0xf)]));
        } else {
            out.push_str(escape);
        }
    }
    out.push_str(s.get(run..).unwrap_or_default());
    out.push('"');
}

/// Base64 as protojson decodes `bytes` (see the module docs). `Err` carries the offset of the
/// first offending character (or the text's length when it ends mid-quantum).
fn decode_base64(text: &[u8]) -> Result<Vec<u8>, usize> {
    let url = memchr::memchr2(b'-', b'_', text).is_some();
    let table = if url { &URL_SAFE } else { &STANDARD };
    let padded = text.len().is_multiple_of(4);
    let mut out = Vec::with_capacity(text.len() / 4 * 3 + 2);
    let (mut acc, mut n) = (0u32, 0u8);
    let mut i = 0;
    // Fast path: whole quanta of four alphabet characters. Anything else (padding, line
    // breaks, an invalid byte: all map to INVALID, whose top bit is set) ends it.
    while let Some(&[a, b, c, d]) = text.get(i..i + 4) {
        let [a, b, c, d] = [a, b, c, d].map(|x| table[usize::from(x)]);
        if (a | b | c | d) & INVALID_BIT != 0 {
            break;
        }
        let v = u32::from(a) << 18 | u32::from(b) << 12 | u32::from(c) << 6 | u32::from(d);
        out.extend_from_slice(&[(v >> 16) as u8, (v >> 8) as u8, v as u8]);
        i += 4;
    }
    while let Some(&c) = text.get(i) {
        if c == b'\r' || c == b'\n' {
            i += 1;
            continue;
        }
        if c == b'=' {
            // Padding ends the text: "xx==" or "xxx=", then only line breaks.
            if !padded || n < 2 {
                return Err(i);
            }
            let mut pads = 4 - usize::from(n);
            for (j, &c) in text.iter().enumerate().skip(i) {
                match c {
                    b'\r' | b'\n' => {}
                    b'=' if pads > 0 => pads -= 1,
                    _ => return Err(j),
                }
            }
            if pads > 0 {
                return Err(text.len());
            }
            break;
        }
        let v = table[usize::from(c)];
        if v == INVALID {
            return Err(i);
        }
        acc = (acc << 6) | u32::from(v);
        n += 1;
        if n == 4 {
            out.extend_from_slice(&[(acc >> 16) as u8, (acc >> 8) as u8, acc as u8]);
            (acc, n) = (0, 0);
        }
        i += 1;
    }
    match n {
        0 => {}
        1 => return Err(text.len()),
        2 => out.push((acc >> 4) as u8),
        _ => out.extend_from_slice(&[(acc >> 10) as u8, (acc >> 2) as u8]),
    }
    if padded && n != 0 && !text.contains(&b'=') {
        return Err(text.len());
    }
    Ok(out)
}

/// Marks bytes outside a base64 alphabet.
const INVALID: u8 = 0xff;
/// Set in [`INVALID`], clear in every 6-bit value.
const INVALID_BIT: u8 = 0x80;
const STANDARD: [u8; 256] = alphabet(b'+', b'/');
const URL_SAFE: [u8; 256] = alphabet(b'-', b'_');

const fn alphabet(c62: u8, c63: u8) -> [u8; 256] {
    let mut t = [INVALID; 256];
    let mut i = 0;
    while i < 26 {
        t[b'A' as usize + i] = i as u8;
        t[b'a' as usize + i] = 26 + i as u8;
        i += 1;
    }
    let mut d = 0;
    while d < 10 {
        t[b'0' as usize + d] = 52 + d as u8;
        d += 1;
    }
    t[c62 as usize] = 62;
    t[c63 as usize] = 63;
    t
}

/// A JSON reader over validated UTF-8 text. Every position it stops at is an ASCII byte, so
/// slicing `text` at those positions never splits a character.
pub(crate) struct Lexer<'a> {
    text: &'a str,
    pub(crate) pos: usize,
}

impl<'a> Lexer<'a> {
    pub(crate) fn new(text: &'a str) -> Lexer<'a> {
        Lexer { text, pos: 0 }
    }

    fn byte(&self, at: usize) -> Option<u8> {
        self.text.as_bytes().get(at).copied()
    }

    /// The next non-whitespace byte (RFC 8259 §2: space, tab, LF, CR), without consuming it.
    pub(crate) fn peek(&mut self) -> Option<u8> {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.byte(self.pos) {
            self.pos += 1;
        }
        self.byte(self.pos)
    }

    /// What the next value is, for error messages.
    pub(crate) fn found(&mut self) -> &'static str {
        match self.peek() {
            Some(b'{') => "an object",
            Some(b'[') => "an array",
            Some(b'"') => "a string",
            Some(b't' | b'f') => "a boolean",
            Some(b'n') => "null",
            Some(b'-' | b'0'..=b'9') => "a number",
            None => "the end of input",
            Some(_) => "an invalid token",
        }
    }

    fn syntax(&self, expected: &'static str) -> JsonProblem {
        if self.pos >= self.text.len() {
            JsonProblem::UnexpectedEnd
        } else {
            JsonProblem::Syntax {
                offset: self.pos,
                expected,
            }
        }
    }

    pub(crate) fn wrong_type(
        &mut self,
        field: &'static str,
        expected: &'static str,
    ) -> JsonProblem {
        let found = self.found();
        JsonProblem::WrongType {
            field,
            expected,
            found,
        }
    }

    pub(crate) fn begin_object(&mut self, field: &'static str) -> Result<(), JsonProblem> {
        if self.peek() != Some(b'{') {
            return Err(self.wrong_type(field, "an object"));
        }
        self.pos += 1;
        Ok(())
    }

    pub(crate) fn begin_array(&mut self, field: &'static str) -> Result<(), JsonProblem> {
        if self.peek() != Some(b'[') {
            return Err(self.wrong_type(field, "an array"));
        }
        self.pos += 1;
        Ok(())
    }

    /// After `{` or a member's value: the next member's name (its `:` consumed), or `None`
    /// at `}`.
    pub(crate) fn next_key(
        &mut self,
        first: &mut bool,
    ) -> Result<Option<Cow<'a, str>>, JsonProblem> {
        match self.peek() {
            Some(b'}') => {
                self.pos += 1;
                return Ok(None);
            }
            Some(b',') if !*first => self.pos += 1,
            _ if *first => {}
            _ => return Err(self.syntax("',' or '}'")),
        }
        *first = false;
        if self.peek() != Some(b'"') {
            return Err(self.syntax("a member name"));
        }
        let key = self.string()?;
        if self.peek() != Some(b':') {
            return Err(self.syntax("':'"));
        }
        self.pos += 1;
        Ok(Some(key))
    }

    /// After `[` or an element: whether another element follows (`]` consumed if not).
    pub(crate) fn next_elem(&mut self, first: &mut bool) -> Result<bool, JsonProblem> {
        match self.peek() {
            Some(b']') => {
                self.pos += 1;
                return Ok(false);
            }
            Some(b',') if !*first => self.pos += 1,
            _ if *first => {}
            _ => return Err(self.syntax("',' or ']'")),
        }
        *first = false;
        Ok(true)
    }

    /// Consumes `null` if that is the next value.
    pub(crate) fn null(&mut self) -> Result<bool, JsonProblem> {
        if self.peek() != Some(b'n') {
            return Ok(false);
        }
        self.literal("null")?;
        Ok(true)
    }

    fn literal(&mut self, word: &'static str) -> Result<(), JsonProblem> {
        let end = self.pos + word.len();
        if self.text.as_bytes().get(self.pos..end) == Some(word.as_bytes()) {
            self.pos = end;
            Ok(())
        } else {
            Err(self.syntax(word))
        }
    }

    /// A `string` field's value: a JSON string, or `null` for the default.
    pub(crate) fn string_field(&mut self, field: &'static str) -> Result<String, JsonProblem> {
        if self.null()? {
            return Ok(String::new());
        }
        if self.peek() != Some(b'"') {
            return Err(self.wrong_type(field, "a string"));
        }
        Ok(self.string()?.into_owned())
    }

    /// A string token starting at the current position (after whitespace): borrowed when it has
    /// no escapes.
    pub(crate) fn string(&mut self) -> Result<Cow<'a, str>, JsonProblem> {
        if self.peek() != Some(b'"') {
            return Err(self.syntax("a string"));
        }
        self.pos += 1;
        let start = self.pos;
        self.plain_run()?;
        if self.byte(self.pos) == Some(b'"') {
            let s = self.text.get(start..self.pos).unwrap_or_default();
            self.pos += 1;
            return Ok(Cow::Borrowed(s));
        }
        let mut out = String::from(self.text.get(start..self.pos).unwrap_or_default());
        loop {
            match self.byte(self.pos) {
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(Cow::Owned(out));
                }
                Some(b'\\') => self.escape(&mut out)?,
                _ => {
                    let run = self.pos;
                    self.plain_run()?;
                    out.push_str(self.text.get(run..self.pos).unwrap_or_default());
                }
            }
        }
    }

    /// Advances over string bytes that need no decoding; stops at `"` or `\`.
    fn plain_run(&mut self) -> Result<(), JsonProblem> {
        let rest = self.text.as_bytes().get(self.pos..).unwrap_or_default();
        let end = memchr::memchr2(b'"', b'\\', rest);
        let run = rest.get(..end.unwrap_or(rest.len())).unwrap_or_default();
        // `min` has no early exit, so it vectorizes; the exact position is found only on error.
        if run.iter().copied().min().is_some_and(|b| b < 0x20) {
            let at = run.iter().position(|&b| b < 0x20).unwrap_or(0);
            return Err(JsonProblem::ControlCharacter(self.pos + at));
        }
        self.pos += run.len();
        match end {
            Some(_) => Ok(()),
            None => Err(JsonProblem::UnexpectedEnd),
        }
    }

    /// Decodes one escape at `\` (RFC 8259 §7), a surrogate pair as one character.
    fn escape(&mut self, out: &mut String) -> Result<(), JsonProblem> {
        let at = self.pos;
        let c = match self.byte(at + 1) {
            None => return Err(JsonProblem::UnexpectedEnd),
            Some(b'"') => '"',
            Some(b'\\') => '\\',
            Some(b'/') => '/',
            Some(b'b') => '\u{8}',
            Some(b'f') => '\u{c}',
            Some(b'n') => '\n',
            Some(b'r') => '\r',
            Some(b't') => '\t',
            Some(b'u') => {
                let high = self.hex4(at + 2)?;
                self.pos = at + 6;
                let code = match high {
                    0xd800..=0xdbff => {
                        let next = self.pos;
                        if self.byte(next) != Some(b'\\') || self.byte(next + 1) != Some(b'u') {
                            return Err(JsonProblem::InvalidEscape(at));
                        }
                        let low = self.hex4(next + 2)?;
                        if !(0xdc00..=0xdfff).contains(&low) {
                            return Err(JsonProblem::InvalidEscape(next));
                        }
                        self.pos = next + 6;
                        0x10000 + ((high - 0xd800) << 10) + (low - 0xdc00)
                    }
                    0xdc00..=0xdfff => return Err(JsonProblem::InvalidEscape(at)),
                    _ => high,
                };
                out.push(char::from_u32(code).ok_or(JsonProblem::InvalidEscape(at))?);
                return Ok(());
            }
            Some(_) => return Err(JsonProblem::InvalidEscape(at)),
        };
        out.push(c);
        self.pos = at + 2;
        Ok(())
    }

    fn hex4(&self, at: usize) -> Result<u32, JsonProblem> {
        let Some(digits) = self.text.as_bytes().get(at..at + 4) else {
            return Err(JsonProblem::UnexpectedEnd);
        };
        digits.iter().try_fold(0u32, |acc, &d| {
            let v = char::from(d)
                .to_digit(16)
                .ok_or(JsonProblem::InvalidEscape(at - 2))?;
            Ok(acc * 16 + v)
        })
    }

    fn digits(&mut self) -> Result<(), JsonProblem> {
        if !self.byte(self.pos).is_some_and(|b| b.is_ascii_digit()) {
            return Err(self.syntax("a digit"));
        }
        while self.byte(self.pos).is_some_and(|b| b.is_ascii_digit()) {
            self.pos += 1;
        }
        Ok(())
    }

    /// RFC 8259 §6: `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`.
    fn number(&mut self) -> Result<(), JsonProblem> {
        if self.byte(self.pos) == Some(b'-') {
            self.pos += 1;
        }
        if self.byte(self.pos) == Some(b'0') {
            self.pos += 1;
        } else {
            self.digits()?;
        }
        if self.byte(self.pos) == Some(b'.') {
            self.pos += 1;
            self.digits()?;
        }
        if let Some(b'e' | b'E') = self.byte(self.pos) {
            self.pos += 1;
            if let Some(b'+' | b'-') = self.byte(self.pos) {
                self.pos += 1;
            }
            self.digits()?;
        }
        Ok(())
    }

    /// Skips one complete value, checking its syntax, without recursion: `open` holds the
    /// closing bracket of every container entered.
    pub(crate) fn skip_value(&mut self) -> Result<(), JsonProblem> {
        let mut open: Vec<u8> = Vec::new();
        loop {
            // One value, or the opening of a container.
            let mut opened = None;
            match self.peek() {
                Some(b'{') => opened = Some(b'}'),
                Some(b'[') => opened = Some(b']'),
                Some(b'"') => drop(self.string()?),
                Some(b't') => self.literal("true")?,
                Some(b'f') => self.literal("false")?,
                Some(b'n') => self.literal("null")?,
                Some(b'-' | b'0'..=b'9') => self.number()?,
                _ => return Err(self.syntax("a value")),
            }
            if let Some(close) = opened {
                if open.len() >= MAX_DEPTH {
                    return Err(JsonProblem::TooDeep(self.pos));
                }
                self.pos += 1;
                let empty = self.peek() == Some(close);
                if !empty {
                    open.push(close);
                    if close == b'}' {
                        self.member_name()?;
                    }
                    continue;
                }
                self.pos += 1;
            }
            // The value is complete: close containers until one has another element.
            loop {
                let Some(&close) = open.last() else {
                    return Ok(());
                };
                match self.peek() {
                    Some(b',') => {
                        self.pos += 1;
                        if close == b'}' {
                            self.member_name()?;
                        }
                        break;
                    }
                    Some(c) if c == close => {
                        self.pos += 1;
                        open.pop();
                    }
                    _ if close == b'}' => return Err(self.syntax("',' or '}'")),
                    _ => return Err(self.syntax("',' or ']'")),
                }
            }
        }
    }

    fn member_name(&mut self) -> Result<(), JsonProblem> {
        if self.peek() != Some(b'"') {
            return Err(self.syntax("a member name"));
        }
        self.string()?;
        if self.peek() != Some(b':') {
            return Err(self.syntax("':'"));
        }
        self.pos += 1;
        Ok(())
    }

    /// Only whitespace may follow the top-level value.
    pub(crate) fn end(&mut self) -> Result<(), JsonProblem> {
        match self.peek() {
            None => Ok(()),
            Some(_) => Err(JsonProblem::TrailingData(self.pos)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owned(labels: &[(&str, &str)]) -> Vec<(String, String)> {
        labels
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    fn decode_err(body: &str) -> String {
        decode_json(body.as_bytes()).unwrap_err().to_string()
    }

    #[test]
    fn decodes_the_contract_example_with_json_names() {
        // "H4sI" is base64 of the gzip magic 1f 8b 08.
        let body = br#"{"series":[{"labels":[{"name":"__name__","value":"process_cpu"},
            {"name":"service_name","value":"app"}],
            "samples":[{"rawProfile":"H4sIAA==","ID":"6f1c0c2e-8a4b-4e0f-9d3a-2b7c5e1f0a9d"}]}]}"#;
        let d = decode_json(body).unwrap();
        assert_eq!(
            d,
            PushRequest {
                series: vec![Series {
                    labels: owned(&[("__name__", "process_cpu"), ("service_name", "app")]),
                    samples: vec![Sample {
                        raw_profile: Bytes::from_static(b"\x1f\x8b\x08\x00"),
                        id: "6f1c0c2e-8a4b-4e0f-9d3a-2b7c5e1f0a9d".into(),
                    }],
                }],
            }
        );
    }

    #[test]
    fn accepts_proto_names_nulls_unknown_members_and_whitespace() {
        let body = " \r\n{ \"unknown\" : {\"deep\":[1,-2.5e+3,true,false,null,\"s\",{},[]]},\n\
            \"series\" : [ { \"samples\" : [ {\"raw_profile\":\"AAEC\",\"ID\":null,\"x\":0},\
            {\"rawProfile\":null} ], \"labels\":null, \"annotations\":[{\"key\":\"k\",\"value\":\"v\"}] },\
            {}, {\"labels\":[{\"name\":\"a\\u00e9\\ud83d\\ude00\\n\\/\",\"value\":null}]} ] } \t";
        let d = decode_json(body.as_bytes()).unwrap();
        assert_eq!(d.series.len(), 3);
        assert_eq!(&d.series[0].samples[0].raw_profile[..], [0, 1, 2]);
        assert_eq!(d.series[0].samples[0].id, "");
        assert_eq!(d.series[0].samples[1], Sample::default());
        assert!(d.series[0].labels.is_empty());
        assert_eq!(d.series[1], Series::default());
        assert_eq!(d.series[2].labels, owned(&[("aé😀\n/", "")]));
        assert_eq!(decode_json(b"{}").unwrap(), PushRequest::default());
        assert_eq!(
            decode_json(b"{\"series\":null}").unwrap(),
            PushRequest::default()
        );
    }

    #[test]
    fn base64_follows_protojson_alphabet_and_padding_rules() {
        let table: [(&str, Option<&[u8]>); 14] = [
            ("", Some(b"")),
            ("QQ==", Some(b"A")),
            ("QQ", Some(b"A")),
            ("QUI=", Some(b"AB")),
            ("QUI", Some(b"AB")),
            ("QUJD", Some(b"ABC")),
            ("-_8", Some(b"\xfb\xff")),
            ("+/8=", Some(b"\xfb\xff")),
            ("QUJD\r\nREVG", Some(b"ABCDEF")),
            // Non-zero trailing bits are accepted (Go's non-strict decoder): "QR" = 'A'.
            ("QR==", Some(b"A")),
            ("QQ=", None),
            ("Q===", None),
            ("+/-_", None),
            ("QU!D", None),
        ];
        for (text, expected) in table {
            assert_eq!(
                decode_base64(text.as_bytes()).ok().as_deref(),
                expected,
                "{text}"
            );
        }
        assert_eq!(decode_base64(b"QQ=A"), Err(3));
        assert_eq!(decode_base64(b"Q"), Err(1));
    }

    #[test]
    fn base64_decodes_every_length_in_both_alphabets_padded_or_not() {
        const STD: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        for len in 0..50usize {
            let data: Vec<u8> = (0..len).map(|i| (i * 97 + 251) as u8).collect();
            let mut text = String::new();
            for chunk in data.chunks(3) {
                let v = chunk
                    .iter()
                    .enumerate()
                    .fold(0u32, |acc, (i, &x)| acc | u32::from(x) << (16 - 8 * i));
                for i in 0..=chunk.len() {
                    text.push(char::from(STD[(v >> (18 - 6 * i) & 63) as usize]));
                }
                text.push_str(&"=".repeat(3 - chunk.len()));
            }
            let unpadded = text.trim_end_matches('=');
            let url = unpadded.replace('+', "-").replace('/', "_");
            for variant in [text.as_str(), unpadded, url.as_str()] {
                assert_eq!(
                    decode_base64(variant.as_bytes()).as_deref(),
                    Ok(&data[..]),
                    "{variant}"
                );
            }
        }
    }

    #[test]
    fn malformed_json_fails_with_precise_errors() {
        let table = [
            (
                "",
                "PushRequest: zero-length payload is not a valid JSON object",
            ),
            (
                "  ",
                "PushRequest: expected a JSON object, found the end of input",
            ),
            ("[]", "PushRequest: expected a JSON object, found an array"),
            (
                "{\"series\":[]} x",
                "PushRequest: unexpected data after the top-level value at byte 14",
            ),
            (
                "{\"series\":[]",
                "PushRequest: unexpected end of JSON input",
            ),
            (
                "{\"series\":[],}",
                "PushRequest: syntax error at byte 13: expected a member name",
            ),
            (
                "{\"series\" []}",
                "PushRequest: syntax error at byte 10: expected ':'",
            ),
            (
                "{\"series\":{}}",
                "PushRequest: field series: expected an array, found an object",
            ),
            (
                "{\"series\":[],\"series\":[]}",
                "PushRequest: duplicate field series",
            ),
            (
                "{\"x\":[1,]}",
                "PushRequest: syntax error at byte 8: expected a value",
            ),
            (
                "{\"x\":01}",
                "PushRequest: syntax error at byte 6: expected ',' or '}'",
            ),
            (
                "{\"x\":tru}",
                "PushRequest: syntax error at byte 5: expected true",
            ),
            (
                "{\"x\":\"a\u{1}\"}",
                "PushRequest: control character in string at byte 7",
            ),
            (
                "{\"x\":\"\\x\"}",
                "PushRequest: invalid escape in string at byte 6",
            ),
            (
                "{\"x\":\"\\ud800\"}",
                "PushRequest: invalid escape in string at byte 6",
            ),
            (
                "{\"x\":\"\\udc00\\u0041\"}",
                "PushRequest: invalid escape in string at byte 6",
            ),
            (
                "{\"x\":\"\\ud800\\u0041\"}",
                "PushRequest: invalid escape in string at byte 12",
            ),
            (
                "{\"x\":\"\\u12g4\"}",
                "PushRequest: invalid escape in string at byte 6",
            ),
            (
                "{\"series\":[null]}",
                "series[0]: field series: expected an object, found null",
            ),
            (
                "{\"series\":[{\"labels\":[{\"name\":1}]}]}",
                "series[0].labels[0]: field name: expected a string, found a number",
            ),
            (
                "{\"series\":[{\"labels\":[{\"name\":\"a\",\"value\":true}]}]}",
                "series[0].labels[0]: field value: expected a string, found a boolean",
            ),
            (
                "{\"series\":[{},{\"samples\":[{},{\"rawProfile\":[]}]}]}",
                "series[1].samples[1]: field rawProfile: expected a base64 string, found an array",
            ),
            (
                "{\"series\":[{\"samples\":[{\"rawProfile\":\"QQ==\",\"raw_profile\":\"QQ==\"}]}]}",
                "series[0].samples[0]: duplicate field rawProfile",
            ),
            (
                "{\"series\":[{\"samples\":[{\"rawProfile\":\"QU*D\"}]}]}",
                "series[0].samples[0]: field rawProfile: invalid base64 at character 2",
            ),
            (
                "{\"series\":[{\"samples\":[{\"ID\":5}]}]}",
                "series[0].samples[0]: field ID: expected a string, found a number",
            ),
            (
                "{\"series\":[{\"labels\":[],\"labels\":[]}]}",
                "series[0]: duplicate field labels",
            ),
            (
                "{\"series\":[{\"annotations\":[{\"key\":{}}]}]}",
                "series[0].annotations[0]: field key: expected a string, found an object",
            ),
        ];
        for (body, message) in table {
            assert_eq!(decode_err(body), message, "{body}");
        }
        assert_eq!(
            decode_json(b"{\"x\":\"\xff\"}").unwrap_err().to_string(),
            "PushRequest: invalid UTF-8 at byte 6"
        );
        assert_eq!(
            decode_json(b"[]").unwrap_err().code(),
            crate::push::Code::InvalidArgument
        );
    }

    #[test]
    fn nesting_of_skipped_values_is_bounded() {
        let deep = |n: usize| format!("{{\"x\":{}{}}}", "[".repeat(n), "]".repeat(n));
        assert!(decode_json(deep(MAX_DEPTH).as_bytes()).is_ok());
        assert_eq!(
            decode_err(&deep(MAX_DEPTH + 1)),
            format!(
                "PushRequest: nesting deeper than 10000 at byte {}",
                5 + MAX_DEPTH
            )
        );
    }

    #[test]
    fn go_string_escaping_round_trips_through_the_lexer() {
        let s = "\"\\/\u{0}\u{8}\u{c}\n\r\t\u{1f}<>&\u{2028}\u{2029}é😀\u{7f}";
        let mut json = String::new();
        push_go_string(&mut json, s);
        assert_eq!(
            json,
            "\"\\\"\\\\/\\u0000\\b\\f\\n\\r\\t\\u001f\\u003c\\u003e\\u0026\\u2028\\u2029é😀\u{7f}\""
        );
        assert_eq!(Lexer::new(&json).string().unwrap(), s);
    }
}
