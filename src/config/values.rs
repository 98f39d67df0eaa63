//! Parsers for the string-encoded values of the configuration: durations (Go's
//! `time.ParseDuration`), byte sizes, endpoint URLs and HTTP header names.
//!
//! Owns: turning one string into one typed value or a precise message. Does not own where the
//! string came from (see `build`). Pure, cold path, never panics (all arithmetic checked).

use std::path::PathBuf;
use std::time::Duration;

use super::model::EndpointUrl;

/// Go's duration units, longest match first where prefixes overlap.
const DURATION_UNITS: [(&str, u128); 9] = [
    ("ns", 1),
    ("us", 1_000),
    ("µs", 1_000),
    ("μs", 1_000),
    ("ms", 1_000_000),
    ("s", 1_000_000_000),
    ("m", 60_000_000_000),
    ("h", 3_600_000_000_000),
    ("", 0),
];

/// Go's largest duration (`math.MaxInt64` nanoseconds, about 292 years).
const MAX_DURATION_NANOS: u128 = i64::MAX as u128;

/// Parses a duration the way Go's `time.ParseDuration` does ("300ms", "1.5h", "2h45m"), except
/// that negative durations are rejected: no pyrogate setting means anything with one.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let fail = |why: &str| Err(format!("invalid duration {text:?}: {why}"));
    let mut s = text;
    let negative = s.starts_with('-');
    if negative || s.starts_with('+') {
        s = s.get(1..).unwrap_or("");
    }
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    if s.is_empty() {
        return fail("expected a number followed by a unit, e.g. \"30s\", \"1m30s\" or \"500ms\"");
    }
    let mut total: u128 = 0;
    while !s.is_empty() {
        let int_len = s.bytes().take_while(u8::is_ascii_digit).count();
        let (int_part, rest) = s.split_at(int_len);
        s = rest;
        let mut frac_part = "";
        if let Some(rest) = s.strip_prefix('.') {
            let frac_len = rest.bytes().take_while(u8::is_ascii_digit).count();
            let (f, rest) = rest.split_at(frac_len);
            frac_part = f;
            s = rest;
        }
        if int_part.is_empty() && frac_part.is_empty() {
            return fail(
                "expected a number followed by a unit, e.g. \"30s\", \"1m30s\" or \"500ms\"",
            );
        }
        let unit_len = s
            .char_indices()
            .find(|(_, c)| c.is_ascii_digit() || *c == '.')
            .map_or(s.len(), |(i, _)| i);
        let (unit, rest) = s.split_at(unit_len);
        s = rest;
        if unit.is_empty() {
            return fail("missing unit (use ns, us, ms, s, m or h)");
        }
        let Some(&(_, scale)) = DURATION_UNITS.iter().find(|(u, _)| *u == unit) else {
            return fail(&format!(
                "unknown unit {unit:?} (use ns, us, ms, s, m or h)"
            ));
        };
        let int: u128 = if int_part.is_empty() {
            0
        } else {
            match int_part.parse::<u128>() {
                Ok(v) if v <= MAX_DURATION_NANOS => v,
                _ => return fail("out of range"),
            }
        };
        let mut nanos = int.saturating_mul(scale);
        // Fraction: keep at most enough digits to stay exact in nanoseconds.
        let mut frac_scale = scale;
        for d in frac_part.bytes().take(30) {
            frac_scale /= 10;
            if frac_scale == 0 {
                break;
            }
            nanos = nanos.saturating_add(u128::from(d - b'0') * frac_scale);
        }
        total = total.saturating_add(nanos);
        if total > MAX_DURATION_NANOS {
            return fail("out of range");
        }
    }
    if negative && total > 0 {
        return fail("durations must not be negative");
    }
    let secs = u64::try_from(total / 1_000_000_000).unwrap_or(u64::MAX);
    let sub = u32::try_from(total % 1_000_000_000).unwrap_or(0);
    Ok(Duration::new(secs, sub))
}

/// Byte-size units: decimal (`KB` = 1000) and binary (`KiB` = 1024), as Go's `go-units` and
/// Kubernetes quantities spell them. Matched case-insensitively.
const SIZE_UNITS: [(&str, u64); 10] = [
    ("", 1),
    ("b", 1),
    ("kb", 1_000),
    ("kib", 1 << 10),
    ("mb", 1_000_000),
    ("mib", 1 << 20),
    ("gb", 1_000_000_000),
    ("gib", 1 << 30),
    ("tb", 1_000_000_000_000),
    ("tib", 1 << 40),
];

/// Parses a byte size: "1024", "256MiB", "1GB", "512 KiB".
pub fn parse_size(text: &str) -> Result<u64, String> {
    let fail = || {
        Err(format!(
            "invalid size {text:?}: expected an integer with an optional unit (B, KB, KiB, MB, MiB, GB, GiB, TB, TiB), e.g. \"256MiB\""
        ))
    };
    let t = text.trim();
    let digits = t.bytes().take_while(u8::is_ascii_digit).count();
    let (num, unit) = t.split_at(digits);
    let unit = unit.trim();
    let Ok(n) = num.parse::<u64>() else {
        return fail();
    };
    let Some(&(_, scale)) = SIZE_UNITS
        .iter()
        .find(|(u, _)| u.eq_ignore_ascii_case(unit))
    else {
        return fail();
    };
    n.checked_mul(scale)
        .ok_or_else(|| format!("invalid size {text:?}: out of range"))
}

/// Parses an endpoint `url`. `http`/`https` become [`EndpointUrl::Http`] (the query string
/// and fragment are discarded, as Alloy does); `file://DIR` becomes [`EndpointUrl::Capture`].
pub fn parse_endpoint_url(full: &str) -> Result<EndpointUrl, String> {
    // Messages quote the URL without its query or fragment: those may carry tokens.
    let text = full.split(['?', '#']).next().unwrap_or("");
    let Some((scheme, _)) = text.split_once("://") else {
        return Err(format!(
            "url {text:?} has no scheme: expected http://, https:// or file://"
        ));
    };
    let scheme_lc = scheme.to_ascii_lowercase();
    let tls = match scheme_lc.as_str() {
        "http" => false,
        "https" => true,
        "file" => {
            let rest = full.split_once("://").map_or("", |(_, r)| r);
            if rest.is_empty() {
                return Err(
                    "file:// url needs a directory, e.g. \"file://./pyrogate-capture\"".to_string(),
                );
            }
            return Ok(EndpointUrl::Capture {
                dir: PathBuf::from(rest),
            });
        }
        _ => {
            return Err(format!(
                "unsupported url scheme {scheme:?}: pyrogate sends to http:// or https:// and captures to file://"
            ));
        }
    };
    let rest = full.split_once("://").map_or("", |(_, r)| r);
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    if authority.contains('@') {
        // Never echo the text: it may hold a password.
        return Err(
            "url must not contain a username or password (\"user:password@host\"); use basic_auth instead"
                .to_string(),
        );
    }
    let (host, port_text) = if let Some(after) = authority.strip_prefix('[') {
        let Some((host, after)) = after.split_once(']') else {
            return Err(format!("url {text:?}: IPv6 address is missing \"]\""));
        };
        if host.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(format!("url {text:?}: {host:?} is not an IPv6 address"));
        }
        match after {
            "" => (host, None),
            _ => match after.strip_prefix(':') {
                Some(p) => (host, Some(p)),
                None => return Err(format!("url {text:?}: unexpected text after \"]\"")),
            },
        }
    } else {
        match authority.split_once(':') {
            Some((_, p)) if p.contains(':') => {
                return Err(format!(
                    "url {text:?}: an IPv6 address must be written in brackets, e.g. http://[::1]:4040"
                ));
            }
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return Err(format!("url {text:?} has no host"));
    }
    if !host.contains(':')
        && !host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
    {
        return Err(format!("url {text:?}: invalid host {host:?}"));
    }
    let default_port = if tls { 443 } else { 80 };
    let port = match port_text {
        None | Some("") => default_port,
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n > 0 && p.bytes().all(|b| b.is_ascii_digit()) => n,
            _ => {
                return Err(format!(
                    "url {text:?}: port {p:?} must be a number between 1 and 65535"
                ));
            }
        },
    };
    let path_end = tail.find(['?', '#']).unwrap_or(tail.len());
    let path = tail.get(..path_end).unwrap_or("").to_string();
    Ok(EndpointUrl::Http {
        tls,
        host: host.to_string(),
        port,
        path,
    })
}

/// An HTTP header name must be an RFC 9110 §5.6.2 token.
pub fn is_header_name(name: &str) -> bool {
    !name.is_empty()
        && name.bytes().all(|b| {
            b.is_ascii_alphanumeric()
                || matches!(
                    b,
                    b'!' | b'#'
                        | b'$'
                        | b'%'
                        | b'&'
                        | b'\''
                        | b'*'
                        | b'+'
                        | b'-'
                        | b'.'
                        | b'^'
                        | b'_'
                        | b'`'
                        | b'|'
                        | b'~'
                )
        })
}

/// Header names `pyroscope.write` refuses in `http_headers` (Alloy's
/// `common/config` reserved list; matched case-insensitively), plus the prefixes below.
const RESERVED_HEADERS: [&str; 12] = [
    "authorization",
    "host",
    "content-encoding",
    "content-length",
    "content-type",
    "user-agent",
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "www-authenticate",
    "accept-encoding",
];

/// Reserved header-name prefixes (`X-Prometheus-*`, `X-Amz-*`).
const RESERVED_HEADER_PREFIXES: [&str; 2] = ["x-prometheus-", "x-amz-"];

/// Whether Alloy rejects `name` in `http_headers`.
pub fn is_reserved_header(name: &str) -> bool {
    let lc = name.to_ascii_lowercase();
    RESERVED_HEADERS.contains(&lc.as_str())
        || RESERVED_HEADER_PREFIXES.iter().any(|p| lc.starts_with(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_follow_go_parse_duration() {
        let ok = [
            ("30s", Duration::from_secs(30)),
            ("1m30s", Duration::from_secs(90)),
            ("500ms", Duration::from_millis(500)),
            ("1.5h", Duration::from_secs(5400)),
            ("10us", Duration::from_micros(10)),
            ("10µs", Duration::from_micros(10)),
            ("7ns", Duration::from_nanos(7)),
            ("0", Duration::ZERO),
            ("0s", Duration::ZERO),
            ("+2m", Duration::from_secs(120)),
            (".5s", Duration::from_millis(500)),
            ("2h45m0.5s", Duration::from_millis(9_900_500)),
        ];
        for (text, want) in ok {
            assert_eq!(parse_duration(text), Ok(want), "{text}");
        }
    }

    #[test]
    fn bad_durations_say_why() {
        let bad = [
            (
                "30",
                "invalid duration \"30\": missing unit (use ns, us, ms, s, m or h)",
            ),
            (
                "5 s",
                "invalid duration \"5 s\": unknown unit \" s\" (use ns, us, ms, s, m or h)",
            ),
            (
                "1d",
                "invalid duration \"1d\": unknown unit \"d\" (use ns, us, ms, s, m or h)",
            ),
            (
                "",
                "invalid duration \"\": expected a number followed by a unit, e.g. \"30s\", \"1m30s\" or \"500ms\"",
            ),
            (
                "-1s",
                "invalid duration \"-1s\": durations must not be negative",
            ),
            (
                "99999999999h",
                "invalid duration \"99999999999h\": out of range",
            ),
        ];
        for (text, want) in bad {
            assert_eq!(parse_duration(text), Err(want.to_string()), "{text}");
        }
    }

    #[test]
    fn sizes_accept_decimal_and_binary_units() {
        assert_eq!(parse_size("256MiB"), Ok(256 << 20));
        assert_eq!(parse_size("1GB"), Ok(1_000_000_000));
        assert_eq!(parse_size("512 KiB"), Ok(512 << 10));
        assert_eq!(parse_size("42"), Ok(42));
        assert!(parse_size("1.5GiB").is_err());
        assert!(parse_size("MiB").is_err());
        assert!(parse_size("99999999999TiB").is_err());
    }

    #[test]
    fn http_urls_parse_with_default_ports_and_no_query() {
        assert_eq!(
            parse_endpoint_url("http://pyroscope:4040"),
            Ok(EndpointUrl::Http {
                tls: false,
                host: "pyroscope".into(),
                port: 4040,
                path: String::new()
            })
        );
        assert_eq!(
            parse_endpoint_url("https://prof.example.com/base/path?x=1#f"),
            Ok(EndpointUrl::Http {
                tls: true,
                host: "prof.example.com".into(),
                port: 443,
                path: "/base/path".into()
            })
        );
        assert_eq!(
            parse_endpoint_url("HTTP://[::1]:4040/"),
            Ok(EndpointUrl::Http {
                tls: false,
                host: "::1".into(),
                port: 4040,
                path: "/".into()
            })
        );
    }

    #[test]
    fn file_urls_are_capture_directories() {
        assert_eq!(
            parse_endpoint_url("file://./pyrogate-capture"),
            Ok(EndpointUrl::Capture {
                dir: PathBuf::from("./pyrogate-capture")
            })
        );
        assert_eq!(
            parse_endpoint_url("file:///var/tmp/cap"),
            Ok(EndpointUrl::Capture {
                dir: PathBuf::from("/var/tmp/cap")
            })
        );
        assert!(parse_endpoint_url("file://").is_err());
    }

    #[test]
    fn bad_urls_are_rejected_without_echoing_credentials() {
        let e = parse_endpoint_url("https://user:hunter2@host").unwrap_err();
        assert!(!e.contains("hunter2"), "{e}");
        assert!(e.contains("must not contain a username or password"));
        assert!(
            parse_endpoint_url("ftp://x")
                .unwrap_err()
                .contains("unsupported url scheme")
        );
        assert!(
            parse_endpoint_url("pyroscope:4040")
                .unwrap_err()
                .contains("has no scheme")
        );
        assert!(
            parse_endpoint_url("http://:4040")
                .unwrap_err()
                .contains("has no host")
        );
        assert!(
            parse_endpoint_url("http://h:0")
                .unwrap_err()
                .contains("port")
        );
        assert!(
            parse_endpoint_url("http://h:70000")
                .unwrap_err()
                .contains("port")
        );
        assert!(
            parse_endpoint_url("http://::1:80")
                .unwrap_err()
                .contains("brackets")
        );
    }

    #[test]
    fn reserved_headers_match_alloy_list_case_insensitively() {
        for h in [
            "Authorization",
            "host",
            "X-Prometheus-Remote-Write-Version",
            "x-amz-date",
        ] {
            assert!(is_reserved_header(h), "{h}");
        }
        assert!(!is_reserved_header("X-Scope-OrgID"));
    }

    #[test]
    fn header_names_are_tokens() {
        assert!(is_header_name("X-Scope-OrgID"));
        assert!(!is_header_name("bad header"));
        assert!(!is_header_name(""));
        assert!(!is_header_name("a:b"));
    }
}
