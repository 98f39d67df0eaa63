//! Command-line flags: `--name=value` or `--name value`, positional arguments, durations.
//!
//! Owns: tokenising the arguments, typed lookups with defaults, rejecting flags no subcommand
//! read, and the duration syntax (`250us`, `500ms`, `10s`, `2m`, `1.5s`). Does not own what the
//! flags mean (each subcommand's `from_args`). Cold path.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::str::FromStr;
use std::time::Duration;

/// A command-line mistake; printed as one line, exit status 2.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CliError {
    #[error("flag --{flag}: invalid value {value:?} ({expected})")]
    Invalid {
        flag: String,
        value: String,
        expected: &'static str,
    },
    #[error("flag --{0} needs a value")]
    MissingValue(String),
    #[error("unknown flag --{0}")]
    Unknown(String),
    #[error("{0}")]
    Usage(String),
}

/// Parsed arguments of one subcommand.
#[derive(Debug, Default)]
pub struct Args {
    flags: BTreeMap<String, String>,
    pub positional: Vec<String>,
    read: RefCell<BTreeSet<String>>,
}

/// Flags that take no value.
const SWITCHES: &[&str] = &["help", "no-build", "quiet", "no-nginx", "relabel"];

impl Args {
    pub fn parse<I: IntoIterator<Item = String>>(args: I) -> Result<Args, CliError> {
        let mut out = Args::default();
        let mut it = args.into_iter();
        while let Some(a) = it.next() {
            if let Some(flag) = a.strip_prefix("--") {
                let (name, value) = match flag.split_once('=') {
                    Some((n, v)) => (n.to_string(), v.to_string()),
                    None if SWITCHES.contains(&flag) => (flag.to_string(), "true".to_string()),
                    None => {
                        let v = it
                            .next()
                            .ok_or_else(|| CliError::MissingValue(flag.to_string()))?;
                        (flag.to_string(), v)
                    }
                };
                out.flags.insert(name, value);
            } else {
                out.positional.push(a);
            }
        }
        Ok(out)
    }

    /// The raw value of `--name`, if given.
    pub fn str(&self, name: &str) -> Option<&str> {
        self.read.borrow_mut().insert(name.to_string());
        self.flags.get(name).map(String::as_str)
    }

    pub fn switch(&self, name: &str) -> bool {
        self.str(name).is_some_and(|v| v != "false")
    }

    /// `--name` parsed as `T`, or `default`.
    pub fn get<T: FromStr>(
        &self,
        name: &str,
        default: T,
        expected: &'static str,
    ) -> Result<T, CliError> {
        match self.str(name) {
            None => Ok(default),
            Some(v) => v.parse().map_err(|_| invalid(name, v, expected)),
        }
    }

    pub fn duration(&self, name: &str, default: Duration) -> Result<Duration, CliError> {
        match self.str(name) {
            None => Ok(default),
            Some(v) => parse_duration(v)
                .ok_or_else(|| invalid(name, v, "a duration such as 500ms, 10s or 2m")),
        }
    }

    /// A rate in `[0, 1]`.
    pub fn rate(&self, name: &str) -> Result<f64, CliError> {
        let r: f64 = self.get(name, 0.0, "a rate between 0 and 1")?;
        if (0.0..=1.0).contains(&r) {
            Ok(r)
        } else {
            Err(invalid(name, &r.to_string(), "a rate between 0 and 1"))
        }
    }

    /// Fails on the first flag no lookup asked for.
    pub fn finish(&self) -> Result<(), CliError> {
        let read = self.read.borrow();
        match self.flags.keys().find(|k| !read.contains(*k)) {
            Some(k) => Err(CliError::Unknown(k.clone())),
            None => Ok(()),
        }
    }
}

pub fn invalid(flag: &str, value: &str, expected: &'static str) -> CliError {
    CliError::Invalid {
        flag: flag.to_string(),
        value: value.to_string(),
        expected,
    }
}

/// `250us`, `500ms`, `10s`, `2m`, `1.5s`; a bare number is seconds.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num.parse().ok()?;
    let secs = match unit {
        "us" | "µs" => n / 1e6,
        "ms" => n / 1e3,
        "" | "s" => n,
        "m" => n * 60.0,
        _ => return None,
    };
    (secs.is_finite() && (0.0..=86_400.0).contains(&secs)).then(|| Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Args {
        Args::parse(a.iter().map(|s| s.to_string())).unwrap()
    }

    #[test]
    fn both_flag_forms_and_positionals() {
        let a = args(&["dir", "--rate=5", "--duration", "2s", "--no-build"]);
        assert_eq!(a.positional, vec!["dir"]);
        assert_eq!(a.get("rate", 0u32, "n").unwrap(), 5);
        assert_eq!(
            a.duration("duration", Duration::ZERO).unwrap(),
            Duration::from_secs(2)
        );
        assert!(a.switch("no-build"));
        assert_eq!(a.finish(), Ok(()));
    }

    #[test]
    fn unknown_and_invalid_flags_are_named() {
        let a = args(&["--rate=x", "--bogus=1"]);
        assert_eq!(
            a.get("rate", 0u32, "an integer").unwrap_err().to_string(),
            "flag --rate: invalid value \"x\" (an integer)"
        );
        assert_eq!(a.finish().unwrap_err().to_string(), "unknown flag --bogus");
        assert_eq!(
            Args::parse(["--rate".to_string()]).unwrap_err(),
            CliError::MissingValue("rate".into())
        );
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250us"), Some(Duration::from_micros(250)));
        assert_eq!(parse_duration("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2m"), Some(Duration::from_secs(120)));
        assert_eq!(parse_duration("7"), Some(Duration::from_secs(7)));
        assert_eq!(parse_duration("5h"), None);
        assert_eq!(parse_duration("-1s"), None);
    }
}
