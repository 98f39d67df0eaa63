//! Log output as Alloy writes it: logfmt (the default) or JSON, to stderr.
//!
//! Owns: the two line formats and installing the global subscriber. Alloy logs through Go's
//! `log/slog` with `ReplaceAttr` renaming the time key to `ts` (RFC 3339 with nanoseconds, UTC)
//! and the levels to go-kit's lowercase names (grafana/alloy internal/runtime/logging/
//! handler.go), so a line starts `ts=… level=… msg=…` and the event's fields follow in the
//! order written; JSON has the keys `ts`, `level`, `msg`, then the fields. Values are quoted
//! only when slog's text handler would quote them. Does not own: what is logged. Per-request
//! events are `debug`; `info` and above are lifecycle and degraded-state events only.

use std::fmt;

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

use crate::config::{LogFormat, LogLevel, Logging};

/// One field value: a string, or a number or boolean (bare in both formats).
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Str(String),
    Bare(String),
}

/// One event, ready to be written.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    /// RFC 3339 with nanoseconds, UTC, trailing zeros of the fraction dropped (Go's
    /// `time.RFC3339Nano`).
    pub ts: String,
    /// `debug`, `info`, `warn` or `error` (go-kit's names).
    pub level: &'static str,
    pub msg: String,
    pub fields: Vec<(String, Value)>,
}

/// Whether slog's text handler quotes `s` (log/slog text_handler.go `needsQuoting`): empty,
/// a space, `=`, `"`, an ASCII control character, or a non-ASCII space or unprintable rune.
fn needs_quoting(s: &str) -> bool {
    s.is_empty()
        || s.chars().any(|c| {
            if c.is_ascii() {
                c == ' ' || c == '=' || c == '"' || c.is_ascii_control()
            } else {
                c.is_whitespace() || c.is_control()
            }
        })
}

/// `s` as a logfmt value: bare, or quoted with Go's `strconv.Quote` escapes.
fn logfmt_value(out: &mut String, s: &str) {
    if !needs_quoting(s) {
        out.push_str(s);
        return;
    }
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_ascii_control() => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// `s` as a JSON string (slog's JSON handler: encoding/json's escapes without HTML escaping).
fn json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

impl Line {
    /// `ts=… level=… msg=… key=value …` (no newline). An empty message is left out, as
    /// Alloy's handler drops it.
    pub fn logfmt(&self) -> String {
        let mut out = String::with_capacity(96 + self.msg.len());
        out.push_str("ts=");
        out.push_str(&self.ts);
        out.push_str(" level=");
        out.push_str(self.level);
        if !self.msg.is_empty() {
            out.push_str(" msg=");
            logfmt_value(&mut out, &self.msg);
        }
        for (k, v) in &self.fields {
            out.push(' ');
            out.push_str(k);
            out.push('=');
            match v {
                Value::Str(s) => logfmt_value(&mut out, s),
                Value::Bare(s) => out.push_str(s),
            }
        }
        out
    }

    /// `{"ts":…,"level":…,"msg":…,"key":value,…}` (no newline).
    pub fn json(&self) -> String {
        let mut out = String::with_capacity(96 + self.msg.len());
        out.push_str("{\"ts\":");
        json_string(&mut out, &self.ts);
        out.push_str(",\"level\":");
        json_string(&mut out, self.level);
        if !self.msg.is_empty() {
            out.push_str(",\"msg\":");
            json_string(&mut out, &self.msg);
        }
        for (k, v) in &self.fields {
            out.push(',');
            json_string(&mut out, k);
            out.push(':');
            match v {
                Value::Str(s) => json_string(&mut out, s),
                Value::Bare(s) => out.push_str(s),
            }
        }
        out.push('}');
        out
    }
}

/// Collects an event's message and fields in the order written.
struct Collect<'a>(&'a mut Line);

impl Collect<'_> {
    fn push(&mut self, field: &Field, v: Value) {
        if field.name() == "message" {
            self.0.msg = match v {
                Value::Str(s) | Value::Bare(s) => s,
            };
        } else {
            self.0.fields.push((field.name().to_string(), v));
        }
    }
}

impl Visit for Collect<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.push(field, Value::Str(value.to_string()));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.push(field, Value::Str(format!("{value:?}")));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.push(field, Value::Bare(value.to_string()));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.push(field, Value::Bare(value.to_string()));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.push(field, Value::Bare(value.to_string()));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        let v = if value.is_finite() {
            Value::Bare(value.to_string())
        } else {
            Value::Str(value.to_string())
        };
        self.push(field, v);
    }
}

/// go-kit's level names (Alloy has no trace level: it logs as debug).
fn level_name(level: &Level) -> &'static str {
    match *level {
        Level::ERROR => "error",
        Level::WARN => "warn",
        Level::INFO => "info",
        _ => "debug",
    }
}

/// Formats events as Alloy does, in one of its two formats.
#[derive(Debug, Clone, Copy)]
pub struct AlloyFormat(pub LogFormat);

impl<S, N> FormatEvent<S, N> for AlloyFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut w: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut line = Line {
            ts: rfc3339_nano(std::time::SystemTime::now()),
            level: level_name(event.metadata().level()),
            msg: String::new(),
            fields: Vec::new(),
        };
        event.record(&mut Collect(&mut line));
        match self.0 {
            LogFormat::Logfmt => writeln!(w, "{}", line.logfmt()),
            LogFormat::Json => writeln!(w, "{}", line.json()),
        }
    }
}

/// The proleptic Gregorian `(year, month, day)` of a day count since 1970-01-01: Howard
/// Hinnant's `civil_from_days` (as C++20 `<chrono>` uses it). No date library.
pub fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// Go's `t.UTC().Format(time.RFC3339Nano)`: `2006-01-02T15:04:05.999999999Z`, the fraction
/// without trailing zeros (and without the dot when it is zero). No date library.
pub fn rfc3339_nano(t: std::time::SystemTime) -> String {
    let since = t.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    let mut out = format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
    );
    let nanos = since.subsec_nanos();
    if nanos != 0 {
        let frac = format!("{nanos:09}");
        out.push('.');
        out.push_str(frac.trim_end_matches('0'));
    }
    out.push('Z');
    out
}

/// Installs the global subscriber. `RUST_LOG`, when set, overrides the configured level.
pub fn init(cfg: &Logging) {
    let level = match cfg.level {
        LogLevel::Error => "error",
        LogLevel::Warn => "warn",
        LogLevel::Info => "info",
        LogLevel::Debug => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(format!("{level},monoio=warn")));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .event_format(AlloyFormat(cfg.format))
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    fn line() -> Line {
        Line {
            ts: "2024-05-06T07:08:09.5Z".into(),
            level: "info",
            msg: "receiver listening".into(),
            fields: vec![
                ("receiver".into(), Value::Str("default".into())),
                ("addr".into(), Value::Str("127.0.0.1:9999".into())),
                ("cores".into(), Value::Bare("2".into())),
                ("note".into(), Value::Str("a \"b\" = c\\d".into())),
                ("empty".into(), Value::Str(String::new())),
            ],
        }
    }

    #[test]
    fn logfmt_starts_with_ts_level_msg_and_quotes_only_what_slog_quotes() {
        assert_eq!(
            line().logfmt(),
            r#"ts=2024-05-06T07:08:09.5Z level=info msg="receiver listening" receiver=default addr=127.0.0.1:9999 cores=2 note="a \"b\" = c\\d" empty="""#
        );
        let bare = Line {
            msg: "ready".into(),
            fields: vec![("path".into(), Value::Str(r"C:\x".into()))],
            ..line()
        };
        assert_eq!(
            bare.logfmt(),
            r"ts=2024-05-06T07:08:09.5Z level=info msg=ready path=C:\x"
        );
    }

    #[test]
    fn json_has_ts_level_msg_first_and_typed_values() {
        assert_eq!(
            line().json(),
            r#"{"ts":"2024-05-06T07:08:09.5Z","level":"info","msg":"receiver listening","receiver":"default","addr":"127.0.0.1:9999","cores":2,"note":"a \"b\" = c\\d","empty":""}"#
        );
    }

    #[test]
    fn timestamps_follow_go_rfc3339_nano() {
        let t = |secs: u64, nanos: u32| rfc3339_nano(UNIX_EPOCH + Duration::new(secs, nanos));
        assert_eq!(t(0, 0), "1970-01-01T00:00:00Z");
        assert_eq!(t(1_714_979_289, 500_000_000), "2024-05-06T07:08:09.5Z");
        assert_eq!(
            t(1_714_979_289, 123_456_789),
            "2024-05-06T07:08:09.123456789Z"
        );
        assert_eq!(t(951_782_400, 1_000), "2000-02-29T00:00:00.000001Z");
    }
}
