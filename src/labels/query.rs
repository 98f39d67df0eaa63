//! Go `net/url` query handling as Alloy's `/ingest` path uses it: `url.ParseQuery` (through
//! `URL.Query()`), `url.Values.Set` and `url.Values.Encode` with `url.QueryEscape`.
//!
//! Owns: splitting, unescaping and re-encoding query strings byte-exactly. Does not own the
//! request target (splitting path and query is the HTTP layer's job). Hot path: one parse per
//! upload and one encode per upload per `pyroscope.write`; a parse costs two allocations (one
//! byte buffer for every decoded key and value, one pair table), an encode two (sort order and
//! the exactly pre-sized output).
//!
//! Go strings are byte strings, so keys and values are bytes here: a `%FF` survives a
//! decode/encode round trip unchanged.

/// Go's default `urlmaxqueryparams` (Go 1.24.12 / 1.25.6 and later, so the Go 1.26 Alloy builds
/// with): a query with more than this many `&`-separated parameters fails `ParseQuery` as a
/// whole, and `URL.Query()` then yields no values at all.
pub const GO_MAX_QUERY_PARAMS: usize = 10_000;

const UPPER_HEX: &[u8; 16] = b"0123456789ABCDEF";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Span {
    start: usize,
    end: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Pair {
    key: Span,
    value: Span,
}

impl Pair {
    const EMPTY: Pair = Pair {
        key: Span { start: 0, end: 0 },
        value: Span { start: 0, end: 0 },
    };
}

/// The value of the parameter an encode sets: raw, or already `QueryEscape`d.
#[derive(Clone, Copy)]
enum SetValue<'a> {
    Raw(&'a [u8]),
    Escaped(&'a str),
}

impl SetValue<'_> {
    fn escaped_len(self) -> usize {
        match self {
            SetValue::Raw(v) => escaped_len(v),
            SetValue::Escaped(v) => v.len(),
        }
    }

    fn push_escaped(self, out: &mut String) {
        match self {
            SetValue::Raw(v) => query_escape(v, out),
            SetValue::Escaped(v) => out.push_str(v),
        }
    }
}

/// Parameters [`QueryValues::encode`] sorts without allocating (an SDK sends about ten).
const SORTED_ON_STACK: usize = 16;

/// Decoded query parameters in arrival order (Go's `url.Values`, which keeps the order of the
/// values of one key; keys are ordered only when encoding).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct QueryValues {
    buf: Vec<u8>,
    pairs: Vec<Pair>,
}

fn ishex(b: u8) -> bool {
    b.is_ascii_hexdigit()
}

fn unhex(b: u8) -> u8 {
    match b {
        b'0'..=b'9' => b - b'0',
        b'a'..=b'f' => b - b'a' + 10,
        b'A'..=b'F' => b - b'A' + 10,
        _ => 0,
    }
}

/// Go `QueryUnescape` appended to `buf`: `+` → space, `%XX` → byte. `None` for a malformed
/// escape (`%` not followed by two hex digits), in which case `buf` may hold partial output.
fn unescape_into(src: &[u8], buf: &mut Vec<u8>) -> Option<Span> {
    let start = buf.len();
    let mut rest = src;
    // Byte scan rather than memchr: keys and values are short and escapes dense.
    while let Some(i) = rest.iter().position(|&b| b == b'%' || b == b'+') {
        let (plain, tail) = rest.split_at_checked(i)?;
        buf.extend_from_slice(plain);
        match tail {
            [b'+', after @ ..] => {
                buf.push(b' ');
                rest = after;
            }
            [b'%', hi, lo, after @ ..] if ishex(*hi) && ishex(*lo) => {
                buf.push(unhex(*hi) << 4 | unhex(*lo));
                rest = after;
            }
            _ => return None,
        }
    }
    buf.extend_from_slice(rest);
    Some(Span {
        start,
        end: buf.len(),
    })
}

/// Go `url.ParseQuery` as seen through `URL.Query()` (errors ignored): split on `&`; skip empty
/// pairs and pairs containing `;`; split at the first `=`; drop a pair whose key or value has a
/// malformed escape; unescape both. More than [`GO_MAX_QUERY_PARAMS`] parameters yield nothing.
pub fn parse_query(raw: &[u8]) -> QueryValues {
    let separators = memchr::memchr_iter(b'&', raw).count();
    if separators >= GO_MAX_QUERY_PARAMS {
        return QueryValues::default();
    }
    let mut values = QueryValues {
        buf: Vec::with_capacity(raw.len()),
        pairs: Vec::with_capacity(separators + 1),
    };
    let mut start = 0;
    for end in memchr::memchr_iter(b'&', raw).chain(std::iter::once(raw.len())) {
        let part = raw.get(start..end).unwrap_or_default();
        start = end + 1;
        if part.is_empty() || memchr::memchr(b';', part).is_some() {
            continue;
        }
        let (key, value) = match memchr::memchr(b'=', part) {
            Some(i) => (
                part.get(..i).unwrap_or_default(),
                part.get(i + 1..).unwrap_or_default(),
            ),
            None => (part, &[][..]),
        };
        let mark = values.buf.len();
        let decoded = unescape_into(key, &mut values.buf)
            .and_then(|k| unescape_into(value, &mut values.buf).map(|v| (k, v)));
        match decoded {
            Some((key, value)) => values.pairs.push(Pair { key, value }),
            None => values.buf.truncate(mark),
        }
    }
    values
}

/// Length of each byte after `QueryEscape`: 1 when kept (`A-Za-z0-9-_.~`, Go's
/// `shouldEscape(c, encodeQueryComponent)` is false) or turned into `+` (space), 3 for `%XX`.
const ESCAPED_LEN: [u8; 256] = {
    let mut table = [3u8; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        if c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.' | b'~' | b' ') {
            table[b] = 1;
        }
        b += 1;
    }
    table
};

/// Whether `QueryEscape` copies `b` unchanged.
fn is_unreserved(b: u8) -> bool {
    b != b' ' && ESCAPED_LEN[usize::from(b)] == 1
}

/// Length of `QueryEscape(src)`.
fn escaped_len(src: &[u8]) -> usize {
    src.iter()
        .map(|&b| usize::from(ESCAPED_LEN[usize::from(b)]))
        .sum()
}

/// Go `url.QueryEscape` appended to `out`: `A-Za-z0-9-_.~` kept, space → `+`, every other byte
/// → `%XX` in upper-case hex. Runs of kept bytes are copied in bulk.
pub fn query_escape(src: &[u8], out: &mut String) {
    let mut rest = src;
    loop {
        let run = rest
            .iter()
            .position(|&b| !is_unreserved(b))
            .unwrap_or(rest.len());
        let (plain, tail) = rest.split_at_checked(run).unwrap_or((rest, &[]));
        // Kept bytes are ASCII, so this never fails.
        if let Ok(plain) = std::str::from_utf8(plain) {
            out.push_str(plain);
        }
        let Some((&b, after)) = tail.split_first() else {
            return;
        };
        if b == b' ' {
            out.push('+');
        } else {
            out.push('%');
            out.push(char::from(UPPER_HEX[usize::from(b >> 4)]));
            out.push(char::from(UPPER_HEX[usize::from(b & 0x0f)]));
        }
        rest = after;
    }
}

/// Go's `url.URL.EscapedPath` for a path without a raw form (`escape(path, encodePath)`):
/// unreserved bytes and `$&+,/:;=@` are kept, every other byte becomes `%XX` (upper-case).
/// Plain paths such as `/prefix/ingest` come out unchanged.
pub fn path_escape(src: &str, out: &mut String) {
    percent_escape(src.as_bytes(), out, |b| {
        matches!(
            b,
            b'$' | b'&' | b'+' | b',' | b'/' | b':' | b';' | b'=' | b'@'
        )
    });
}

/// Appends `src` with every byte kept that is unreserved (RFC 3986 §2.3) or that `also_keep`
/// accepts, every other byte as `%XX` in upper-case hex (Go's `url` escapers other than the
/// query's, which also turns a space into `+`: [`query_escape`]).
pub fn percent_escape(src: &[u8], out: &mut String, also_keep: impl Fn(u8) -> bool) {
    for &b in src {
        if is_unreserved(b) || also_keep(b) {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(UPPER_HEX[usize::from(b >> 4)]));
            out.push(char::from(UPPER_HEX[usize::from(b & 0x0f)]));
        }
    }
}

impl QueryValues {
    fn bytes(&self, span: Span) -> &[u8] {
        self.buf.get(span.start..span.end).unwrap_or_default()
    }

    /// Go `Values.Get`: the first value of `key`.
    pub fn first(&self, key: &[u8]) -> Option<&[u8]> {
        self.pairs
            .iter()
            .find(|p| self.bytes(p.key) == key)
            .map(|p| self.bytes(p.value))
    }

    /// Every `(key, value)` pair in arrival order.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.pairs
            .iter()
            .map(|p| (self.bytes(p.key), self.bytes(p.value)))
    }

    /// Number of pairs.
    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    /// Whether there are no pairs.
    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    /// Go `Values.Set`: replaces every value of `key` by the single `value`.
    pub fn set(&mut self, key: &[u8], value: &[u8]) {
        let buf = &self.buf;
        self.pairs
            .retain(|p| buf.get(p.key.start..p.key.end).unwrap_or_default() != key);
        let k = self.push_bytes(key);
        let v = self.push_bytes(value);
        self.pairs.push(Pair { key: k, value: v });
    }

    fn push_bytes(&mut self, b: &[u8]) -> Span {
        let start = self.buf.len();
        self.buf.extend_from_slice(b);
        Span {
            start,
            end: self.buf.len(),
        }
    }

    /// Go `Values.Encode`: keys sorted by bytes, the values of one key in arrival order, each
    /// `QueryEscape(key)=QueryEscape(value)`, joined by `&`.
    pub fn encode(&self) -> String {
        self.encode_inner(None)
    }

    /// `Encode` of a copy on which `Set(key, value)` was called, without copying.
    pub fn encode_with_set(&self, key: &[u8], value: &[u8]) -> String {
        self.encode_inner(Some((key, SetValue::Raw(value))))
    }

    /// [`QueryValues::encode_with_set`] with the value given already `QueryEscape`d (kept
    /// from an earlier upload with the same value).
    pub fn encode_with_escaped_set(&self, key: &[u8], escaped_value: &str) -> String {
        self.encode_inner(Some((key, SetValue::Escaped(escaped_value))))
    }

    fn encode_inner(&self, replace: Option<(&[u8], SetValue<'_>)>) -> String {
        let kept = self
            .pairs
            .iter()
            .filter(|p| replace.is_none_or(|(k, _)| self.bytes(p.key) != k))
            .copied();
        // The order is sorted in place on the stack for the usual handful of parameters.
        let mut stack = [Pair::EMPTY; SORTED_ON_STACK];
        let mut heap = Vec::new();
        let order: &mut [Pair] = if self.pairs.len() <= SORTED_ON_STACK {
            let mut n = 0;
            for (slot, p) in stack.iter_mut().zip(kept) {
                *slot = p;
                n += 1;
            }
            stack.get_mut(..n).unwrap_or_default()
        } else {
            heap.extend(kept);
            &mut heap
        };
        // Stable: the values of one key stay in arrival order.
        order.sort_by(|a, b| self.bytes(a.key).cmp(self.bytes(b.key)));
        let order = &*order;

        let pair_len = |k: &[u8], v: &[u8]| escaped_len(k) + 1 + escaped_len(v);
        let mut size: usize = order
            .iter()
            .map(|p| pair_len(self.bytes(p.key), self.bytes(p.value)) + 1)
            .sum();
        if let Some((k, v)) = replace {
            size += escaped_len(k) + 1 + v.escaped_len() + 1;
        }
        // One '&' fewer than pairs.
        let mut out = String::with_capacity(size.saturating_sub(1));

        let mut pending = replace;
        let emit = |out: &mut String, k: &[u8], v: &[u8]| {
            if !out.is_empty() {
                out.push('&');
            }
            query_escape(k, out);
            out.push('=');
            query_escape(v, out);
        };
        let emit_set = |out: &mut String, k: &[u8], v: SetValue<'_>| {
            if !out.is_empty() {
                out.push('&');
            }
            query_escape(k, out);
            out.push('=');
            v.push_escaped(out);
        };
        for p in order {
            let key = self.bytes(p.key);
            if let Some((rk, rv)) = pending
                && rk < key
            {
                emit_set(&mut out, rk, rv);
                pending = None;
            }
            emit(&mut out, key, self.bytes(p.value));
        }
        if let Some((rk, rv)) = pending {
            emit_set(&mut out, rk, rv);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn path_escape_matches_go_escaped_path() {
        let mut out = String::new();
        super::path_escape("/a b/c!(x)/é;v=1@h/ingest", &mut out);
        assert_eq!(out, "/a%20b/c%21%28x%29/%C3%A9;v=1@h/ingest");
    }

    use super::*;

    fn pairs(q: &QueryValues) -> Vec<(Vec<u8>, Vec<u8>)> {
        q.iter().map(|(k, v)| (k.to_vec(), v.to_vec())).collect()
    }

    #[test]
    fn pairs_with_semicolons_are_dropped_whole() {
        let q = parse_query(b"a=1;b=2&c=3&d=%3B");
        assert_eq!(
            pairs(&q),
            [
                (b"c".to_vec(), b"3".to_vec()),
                (b"d".to_vec(), b";".to_vec())
            ]
        );
    }

    #[test]
    fn malformed_escapes_drop_only_their_pair() {
        let q = parse_query(b"a=%&b=%4&c=%zz&d=%41&e%=1&f=%4a%4A");
        assert_eq!(
            pairs(&q),
            [
                (b"d".to_vec(), b"A".to_vec()),
                (b"f".to_vec(), b"JJ".to_vec())
            ]
        );
    }

    #[test]
    fn plus_is_space_and_escaped_plus_is_plus() {
        let q = parse_query(b"m=a+b%2Bc&k+1=x");
        assert_eq!(q.first(b"m"), Some(&b"a b+c"[..]));
        assert_eq!(q.first(b"k 1"), Some(&b"x"[..]));
        assert_eq!(q.encode(), "k+1=x&m=a+b%2Bc");
    }

    #[test]
    fn empty_parts_skipped_but_empty_keys_and_values_kept() {
        let q = parse_query(b"&&=v&k&=&x=");
        assert_eq!(q.len(), 4);
        assert_eq!(q.encode(), "=v&=&k=&x=");
    }

    #[test]
    fn non_utf8_bytes_round_trip_byte_exact() {
        let q = parse_query(b"x=%FF%fe%00&y=\xc3\x28");
        assert_eq!(q.first(b"x"), Some(&[0xff, 0xfe, 0x00][..]));
        assert_eq!(q.first(b"y"), Some(&[0xc3, 0x28][..]));
        assert_eq!(q.encode(), "x=%FF%FE%00&y=%C3%28");
    }

    #[test]
    fn first_returns_first_value_and_set_replaces_all() {
        let mut q = parse_query(b"name=a&x=1&name=b");
        assert_eq!(q.first(b"name"), Some(&b"a"[..]));
        assert_eq!(q.encode(), "name=a&name=b&x=1");
        assert_eq!(q.encode_with_set(b"name", b"z{}"), "name=z%7B%7D&x=1");
        assert_eq!(q.encode_with_set(b"a", b"0"), "a=0&name=a&name=b&x=1");
        assert_eq!(q.encode_with_set(b"zz", b""), "name=a&name=b&x=1&zz=");
        q.set(b"name", b"c");
        assert_eq!(q.first(b"name"), Some(&b"c"[..]));
        assert_eq!(q.encode(), "name=c&x=1");
    }

    #[test]
    fn keys_sort_bytewise_and_values_keep_order() {
        let q = parse_query(b"b=2&B=1&b=1&_=0&a.b=3&a0=4");
        assert_eq!(q.encode(), "B=1&_=0&a.b=3&a0=4&b=2&b=1");
    }

    #[test]
    fn query_escape_matches_go() {
        let mut out = String::new();
        query_escape(b"aZ09-_.~ !*'()/:;=?@&+,$#%{}\x7f\x80", &mut out);
        assert_eq!(
            out,
            "aZ09-_.~+%21%2A%27%28%29%2F%3A%3B%3D%3F%40%26%2B%2C%24%23%25%7B%7D%7F%80"
        );
        assert_eq!(escaped_len(b"a b{"), out_len(b"a b{"));
    }

    fn out_len(b: &[u8]) -> usize {
        let mut s = String::new();
        query_escape(b, &mut s);
        s.len()
    }

    #[test]
    fn too_many_parameters_yield_nothing() {
        let at_limit = vec![&b"a=1"[..]; GO_MAX_QUERY_PARAMS].join(&b'&');
        assert_eq!(parse_query(&at_limit).len(), GO_MAX_QUERY_PARAMS);
        let over = [&at_limit[..], b"&name=x"].concat();
        assert!(parse_query(&over).is_empty());
        // Empty parts count too: Go counts '&' before skipping them.
        let empties = vec![b'&'; GO_MAX_QUERY_PARAMS];
        assert!(parse_query(&[&b"name=x"[..], &empties].concat()).is_empty());
    }

    #[test]
    fn encode_is_exactly_presized() {
        let q = parse_query(b"name=app%7Bk%3Dv%7D&from=1&x=%FF+y");
        let s = q.encode_with_set(b"name", b"app{k=v,service_name=app}");
        assert_eq!(s.capacity(), s.len());
    }
}
