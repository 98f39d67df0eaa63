//! The `/ingest` query string and the `name` label-set grammar, written from Go's `net/url` and
//! Pyroscope's `labelset.Parse` (grafana/pyroscope `api/model/labelset/labelset.go`,
//! `validate.go`) for the kit alone.
//!
//! Owns: `url.ParseQuery`/`url.QueryUnescape`/`url.QueryEscape` as Go defines them, the
//! `app{k=v,...}` state machine with Pyroscope's error texts, and `Normalized()`. Does not own
//! what a parsed label set means for acceptance ([`crate::rules`]). Independent of pyrogate's
//! `labels` module, so the tests do not check the gateway's parser against itself.

/// Go's `url.ParseQuery` as `r.URL.Query()` uses it: pairs split on `&`, a pair containing `;`
/// or a malformed `%` escape is dropped, `+` is a space.
pub fn parse_query(raw: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for pair in raw.split('&') {
        if pair.is_empty() || pair.contains(';') {
            continue;
        }
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let (Some(k), Some(v)) = (query_unescape(k), query_unescape(v)) else {
            continue;
        };
        out.push((k, v));
    }
    out
}

/// Go's `url.QueryUnescape`; `None` on a malformed escape.
pub fn query_unescape(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hi = bytes.get(i + 1).and_then(|b| (*b as char).to_digit(16))?;
                let lo = bytes.get(i + 2).and_then(|b| (*b as char).to_digit(16))?;
                out.push((hi * 16 + lo) as u8);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    Some(String::from_utf8_lossy(&out).into_owned())
}

/// Pyroscope's `labelset.Parse`: a rune state machine over `name + "{"`. Returns the labels
/// (`__name__` = app name) sorted by key, or the error text Pyroscope would put after `name: `.
pub fn parse_labelset(name: &str) -> Result<Vec<(String, String)>, String> {
    enum State {
        App,
        Key,
        Value,
        Done,
    }
    let mut labels: Vec<(String, String)> = Vec::new();
    let set = |labels: &mut Vec<(String, String)>, k: String, v: String| {
        if let Some(slot) = labels.iter_mut().find(|(key, _)| *key == k) {
            slot.1 = v;
        } else {
            labels.push((k, v));
        }
    };
    let mut state = State::App;
    let mut key = String::new();
    let mut value = String::new();
    let input = format!("{name}{{");
    for c in input.chars() {
        match state {
            State::App => {
                if c == '{' {
                    let app = value.trim().to_string();
                    validate_service_name(&app)?;
                    set(&mut labels, "__name__".into(), app);
                    value.clear();
                    state = State::Key;
                } else {
                    value.push(c);
                }
            }
            State::Key => match c {
                '}' => state = State::Done,
                '=' => {
                    state = State::Value;
                    value.clear();
                }
                c => key.push(c),
            },
            State::Value => match c {
                ',' | '}' => {
                    let k = key.trim().to_string();
                    if k != "__name__" {
                        validate_label_name(&k)?;
                    }
                    set(&mut labels, k, value.trim().to_string());
                    key.clear();
                    value.clear();
                    state = State::Key;
                }
                c => value.push(c),
            },
            State::Done => break,
        }
    }
    labels.sort();
    Ok(labels)
}

/// `labelset.Normalized()`: `app{k1=v1,k2=v2}` with keys sorted.
pub fn normalized(labels: &[(String, String)]) -> String {
    let app = labels
        .iter()
        .find(|(k, _)| k == "__name__")
        .map(|(_, v)| v.as_str())
        .unwrap_or("");
    let rest: Vec<String> = labels
        .iter()
        .filter(|(k, _)| k != "__name__")
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    format!("{app}{{{}}}", rest.join(","))
}

fn validate_service_name(app: &str) -> Result<(), String> {
    if app.is_empty() {
        return Err("service name is required".into());
    }
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-' | '/');
    match app.chars().find(|&c| !allowed(c)) {
        Some(c) => Err(format!(
            "invalid service name: {app}: character is not allowed: {}",
            go_quote_rune(c)
        )),
        None => Ok(()),
    }
}

fn validate_label_name(key: &str) -> Result<(), String> {
    if key.is_empty() {
        return Err("label name is required".into());
    }
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '.');
    match key.chars().find(|&c| !allowed(c)) {
        Some(c) => Err(format!(
            "invalid label name: {key}: character is not allowed: {}",
            go_quote_rune(c)
        )),
        None => Ok(()),
    }
}

/// Go's `%q` of a rune (`strconv.QuoteRune`), for the characters the tests meet.
fn go_quote_rune(c: char) -> String {
    match c {
        '\'' => "'\\''".into(),
        '\\' => "'\\\\'".into(),
        '\t' => "'\\t'".into(),
        '\n' => "'\\n'".into(),
        '\r' => "'\\r'".into(),
        c if c.is_control() || is_go_unprintable_format(c) => {
            if (c as u32) <= 0xFFFF {
                format!("'\\u{:04x}'", c as u32)
            } else {
                format!("'\\U{:08x}'", c as u32)
            }
        }
        c => format!("'{c}'"),
    }
}

/// Unicode format characters (category Cf) Go does not print literally.
fn is_go_unprintable_format(c: char) -> bool {
    matches!(c as u32, 0xAD | 0x200B..=0x200F | 0x2028..=0x202E | 0x2060..=0x2064 | 0xFEFF)
}

/// Go's `url.QueryEscape` (space as `+`, unreserved `A-Za-z0-9-_.~` kept, the rest `%XX`).
pub fn go_query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            b => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}
