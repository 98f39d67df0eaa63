//! Table-driven diagnostics suite: every `tests/config/*.alloy` file is loaded with
//! [`FakeEnv`] and its diagnostics are compared with the markers written in it.
//!
//! A marker `/* ERROR "text" */` (or `/* WARNING "text" */`) on a line expects one error (or
//! warning) on that line whose message contains `text`. Every diagnostic must be matched by a
//! marker and every marker by a diagnostic, so a file without markers must load cleanly.
//!
//! [`FakeEnv`] sets exactly these variables: `PYROSCOPE_USERNAME=user`,
//! `PYROSCOPE_PASSWORD=pass`, `HOSTNAME=test-host`, `TENANT=team-a`, `SET_BUT_EMPTY=` (empty);
//! every other variable is unset. Its host name is `fake-host`.

use std::path::{Path, PathBuf};

use pyrogate::config::{Environment, Severity, Target, format_source, load_str, parse_source};

struct FakeEnv;

impl Environment for FakeEnv {
    fn var(&self, name: &str) -> Option<String> {
        let v = match name {
            "PYROSCOPE_USERNAME" => "user",
            "PYROSCOPE_PASSWORD" => "pass",
            "HOSTNAME" => "test-host",
            "TENANT" => "team-a",
            "SET_BUT_EMPTY" => "",
            _ => return None,
        };
        Some(v.to_string())
    }
    fn hostname(&self) -> String {
        "fake-host".to_string()
    }
}

#[derive(Debug, Clone, PartialEq)]
struct Marker {
    severity: Severity,
    line: u32,
    text: String,
}

/// Finds every `/* ERROR "..." */` and `/* WARNING "..." */` marker in the raw text.
fn markers(src: &str) -> Vec<Marker> {
    let mut out = Vec::new();
    for (i, line) in src.lines().enumerate() {
        let line_no = u32::try_from(i + 1).expect("line number fits u32");
        let mut rest = line;
        while let Some(start) = rest.find("/* ") {
            rest = &rest[start + 3..];
            let severity = if let Some(r) = rest.strip_prefix("ERROR \"") {
                rest = r;
                Severity::Error
            } else if let Some(r) = rest.strip_prefix("WARNING \"") {
                rest = r;
                Severity::Warning
            } else {
                continue;
            };
            let mut text = String::new();
            let mut chars = rest.char_indices();
            let mut end = rest.len();
            while let Some((idx, c)) = chars.next() {
                match c {
                    '\\' => {
                        if let Some((_, n)) = chars.next() {
                            text.push(n);
                        }
                    }
                    '"' => {
                        end = idx + 1;
                        break;
                    }
                    _ => text.push(c),
                }
            }
            rest = &rest[end..];
            out.push(Marker {
                severity,
                line: line_no,
                text,
            });
        }
    }
    out
}

fn files_in(dir: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "alloy"))
        .collect();
    files.sort();
    files
}

/// Compares one file's diagnostics with its markers; returns a description of each mismatch.
fn check_file(path: &Path) -> Vec<String> {
    let src = std::fs::read_to_string(path).expect("readable test file");
    let name = path
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    let diags = match load_str(&name, &src, &FakeEnv) {
        Ok(loaded) => loaded.warnings,
        Err(d) => d,
    };
    let mut expected = markers(&src);
    let mut problems = Vec::new();
    for d in &diags {
        let pos = expected.iter().position(|m| {
            m.severity == d.severity && m.line == d.line && d.message.contains(&m.text)
        });
        match pos {
            Some(i) => {
                expected.remove(i);
            }
            None => problems.push(format!("unexpected diagnostic:\n{d}")),
        }
    }
    for m in expected {
        problems.push(format!(
            "{name}:{}: expected {:?} containing {:?}, not reported",
            m.line, m.severity, m.text
        ));
    }
    problems
}

#[test]
fn every_test_config_produces_exactly_its_marked_diagnostics() {
    let files = files_in("tests/config");
    assert!(files.len() >= 40, "only {} test configs", files.len());
    let mut problems = Vec::new();
    for f in &files {
        problems.extend(check_file(f));
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn test_configs_hold_at_least_forty_marked_cases() {
    let cases: usize = files_in("tests/config")
        .iter()
        .map(|f| {
            markers(&std::fs::read_to_string(f).expect("readable"))
                .len()
                .max(1)
        })
        .sum();
    assert!(cases >= 40, "only {cases} cases");
}

#[test]
fn every_example_loads_without_errors() {
    let files = files_in("examples");
    assert!(files.iter().any(|f| f.ends_with("quickstart.alloy")));
    for f in files {
        let src = std::fs::read_to_string(&f).expect("readable example");
        if let Err(d) = load_str(&f.display().to_string(), &src, &FakeEnv) {
            panic!("{} does not load:\n{d}", f.display());
        }
    }
}

#[test]
fn quickstart_captures_to_a_relative_directory() {
    let f = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/quickstart.alloy");
    let loaded = pyrogate::config::load_file(&f, &FakeEnv).expect("quickstart loads");
    let c = loaded.config;
    assert_eq!(c.receivers.len(), 1);
    assert_eq!(c.receivers[0].http.listen.to_string(), "0.0.0.0:9999");
    assert_eq!(c.receivers[0].forward_to, [Target::Writer(0)]);
    assert_eq!(
        c.writers[0].endpoints[0].url,
        pyrogate::config::EndpointUrl::Capture {
            dir: PathBuf::from("./pyrogate-capture")
        }
    );
    assert!(loaded.warnings.is_empty());
}

#[test]
fn formatting_is_idempotent_and_keeps_the_syntax_tree() {
    let mut files = files_in("examples");
    files.extend(files_in("tests/config"));
    let mut checked = 0;
    for f in files {
        let src = std::fs::read_to_string(&f).expect("readable");
        let name = f.display().to_string();
        // Files with syntax errors cannot be formatted; that is their point.
        let Ok(once) = format_source(&name, &src) else {
            continue;
        };
        let twice = format_source(&name, &once)
            .unwrap_or_else(|d| panic!("formatted {name} does not parse:\n{d}\n{once}"));
        assert_eq!(once, twice, "formatting {name} twice changed it");
        let before = parse_source(&name, &src).expect("parses");
        let after = parse_source(&name, &once).expect("parses");
        assert_eq!(
            pyrogate::config::ast::shape(&before),
            pyrogate::config::ast::shape(&after),
            "formatting {name} changed its meaning"
        );
        checked += 1;
    }
    assert!(checked >= 40, "only {checked} files formatted");
}

#[test]
fn examples_are_already_canonically_formatted() {
    for f in files_in("examples") {
        let src = std::fs::read_to_string(&f).expect("readable");
        let formatted = format_source("x", &src).expect("formats");
        assert_eq!(formatted, src, "{} is not in canonical form", f.display());
    }
}

#[test]
fn diagnostics_render_like_rustc_with_source_line_and_caret() {
    let src = "pyroscope.receive_http \"a\" {\n\thttp {\n\t\tlisten_port = 99999\n\t}\n\tforward_to = []\n}\n";
    let d = load_str("cfg.alloy", src, &FakeEnv).expect_err("port out of range");
    assert_eq!(
        d.to_string(),
        "cfg.alloy:3:17: error: listen_port must be between 1 and 65535 (or 0 to pick a free port), got 99999\n\t\tlisten_port = 99999\n\t\t              ^\n"
    );
}

#[test]
fn a_wrong_or_missing_marker_is_reported_as_a_mismatch() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bad.alloy");
    std::fs::write(
        &path,
        "pyroscope.receive_http \"a\" { /* ERROR \"some other message\" */\n}\n",
    )
    .expect("write");
    let problems = check_file(&path);
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert!(problems[0].starts_with(
        "unexpected diagnostic:\nbad.alloy:1:1: error: missing required attribute \"forward_to\""
    ));
    assert!(problems[1].contains("expected Error containing \"some other message\", not reported"));
}

#[test]
fn markers_are_parsed_with_escaped_quotes() {
    let m = markers("x /* ERROR \"a \\\"b\\\"\" */ /* WARNING \"c\" */\n");
    assert_eq!(
        m,
        [
            Marker {
                severity: Severity::Error,
                line: 1,
                text: "a \"b\"".to_string()
            },
            Marker {
                severity: Severity::Warning,
                line: 1,
                text: "c".to_string()
            },
        ]
    );
}

fn load_test_config(name: &str) -> pyrogate::config::Config {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/config")
        .join(name);
    match pyrogate::config::load_file(&path, &FakeEnv) {
        Ok(l) => l.config,
        Err(d) => panic!("{d}"),
    }
}

#[test]
fn extensions_reach_the_typed_model() {
    use pyrogate::config::{AckMode, EndpointUrl};
    use std::time::Duration;
    let c = load_test_config("extensions_valid.alloy");
    assert_eq!(c.gateway.max_inflight_bytes, 1 << 30);
    assert_eq!(c.gateway.queue_wait_timeout, Duration::from_millis(500));
    assert_eq!(c.gateway.dns_refresh_interval, Duration::from_secs(60));
    assert_eq!(
        c.gateway.spool,
        Some(pyrogate::config::Spool {
            directory: PathBuf::from("/var/lib/pyrogate/spool"),
            max_bytes: 2 << 30,
            max_age: Duration::from_secs(1800),
            fsync: pyrogate::config::Fsync::Always,
        })
    );
    let r = &c.receivers[0];
    assert_eq!(r.http.listen.to_string(), "[::]:4100");
    assert_eq!(r.http.max_head_bytes, 16384);
    assert_eq!(r.http.max_headers, 64);
    assert_eq!(r.http.max_body_bytes, 10 << 20);
    assert_eq!(r.acknowledge, AckMode::Enqueued);
    assert_eq!(r.forward_headers, ["x-scope-orgid", "x-request-id"]);
    assert_eq!(r.forward_to, [Target::Writer(0)], "duplicates removed");
    let e = &c.writers[0].endpoints;
    assert_eq!(
        e[0].url,
        EndpointUrl::Capture {
            dir: PathBuf::from("captures/run-1")
        }
    );
    assert_eq!(e[0].queue_capacity, 1);
    assert_eq!(e[0].senders_per_core, 1);
    assert_eq!(e[0].connect_timeout, Duration::from_millis(250));
    assert!(e[0].spool, "endpoints spool by default");
    assert!(!e[1].spool);
    assert_eq!(
        e[1].url,
        EndpointUrl::Http {
            tls: true,
            host: "2001:db8::1".into(),
            port: 443,
            path: "/base".into()
        }
    );
    assert_eq!(e[1].url_text, "https://[2001:db8::1]/base?ignored=1");
}

#[test]
fn auth_methods_map_to_the_model() {
    use pyrogate::config::{Auth, Secret, SecretSource};
    let c = load_test_config("auth_valid_methods.alloy");
    let auths: Vec<_> = c.writers[0]
        .endpoints
        .iter()
        .map(|e| e.auth.clone())
        .collect();
    assert_eq!(
        auths[0],
        Some(Auth::Authorization {
            scheme: "Bearer".into(),
            credentials: SecretSource::Inline(Secret("team-a".into()))
        })
    );
    assert_eq!(
        auths[1],
        Some(Auth::Authorization {
            scheme: "Token".into(),
            credentials: SecretSource::File(PathBuf::from("/run/secrets/token"))
        })
    );
    assert!(matches!(&auths[2], Some(Auth::OAuth2(o)) if o.scopes == ["profiles:write"]));
    assert_eq!(
        auths[3],
        Some(Auth::Basic {
            username: "user".into(),
            password: Some(SecretSource::File(PathBuf::from("/run/secrets/password")))
        })
    );
}

#[test]
fn defaults_match_alloy() {
    use pyrogate::config::*;
    let c = load_test_config("logging_valid.alloy");
    assert_eq!(
        c.logging,
        Logging {
            level: LogLevel::Debug,
            format: LogFormat::Json
        }
    );
    let r = &c.receivers[0];
    assert_eq!(r.http.listen.to_string(), "0.0.0.0:8080");
    assert_eq!(r.http.conn_limit, 16_384);
    assert_eq!(
        r.graceful_shutdown_timeout,
        DEFAULT_GRACEFUL_SHUTDOWN_TIMEOUT
    );
    assert_eq!(r.acknowledge, AckMode::Delivered);
    let e = &c.writers[0].endpoints[0];
    assert_eq!(e.remote_timeout, DEFAULT_REMOTE_TIMEOUT);
    assert_eq!(e.max_backoff_retries, 10);
    assert!(e.retry_on_http_429 && e.follow_redirects && e.enable_http2);
    assert_eq!(e.url_text, "http://pyroscope:4040");
    assert_eq!(c.gateway, Gateway::default());
}
