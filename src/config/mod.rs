//! pyrogate's configuration front end: the Alloy configuration language subset.
//!
//! Owns: reading a configuration file (the only I/O is in [`load_file`]), lexing, parsing,
//! evaluating and validating it into the typed [`Config`] of [`model`], collecting every
//! problem as positioned [`Diagnostics`], and canonical formatting ([`format_source`]).
//! Does not own the runtime. Cold path: runs once at start-up (and for `validate`/`fmt`).
//!
//! The steps, each its own module, with errors collected rather than stopping at the first:
//! text → tokens ([`lexer`]) → syntax tree with
//! spans ([`ast`], [`parser`]) → values ([`eval`]) → typed, validated model (`build`,
//! `build_write`). Formatting works on the syntax tree ([`fmt`](self::fmt)).

pub mod ast;
mod build;
mod build_relabel;
mod build_write;
pub mod diag;
mod eval;
mod fmt;
pub mod lexer;
pub mod model;
pub mod parser;
mod reader;
pub mod values;

pub use diag::{Diagnostic, Diagnostics, Severity};
pub use model::*;

use diag::Sink;

/// Where `env()` and `constants.hostname` get their values. Tests use a fake.
pub trait Environment {
    /// The value of an environment variable, `None` when unset.
    fn var(&self, name: &str) -> Option<String>;
    /// The machine's host name (`constants.hostname`).
    fn hostname(&self) -> String;
}

/// The real process environment and host name.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessEnvironment;

impl Environment for ProcessEnvironment {
    fn var(&self, name: &str) -> Option<String> {
        // Go's os.Getenv (so Alloy's env()) returns "" for unset variables; an unset
        // variable and a non-UTF-8 one both read as unset here, and the caller maps that to "".
        std::env::var(name).ok()
    }

    fn hostname(&self) -> String {
        // What Go's os.Hostname reads on Linux; the library forbids unsafe, so no libc call.
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .or_else(|| std::env::var("HOSTNAME").ok().filter(|s| !s.is_empty()))
            .unwrap_or_else(|| "localhost".to_string())
    }
}

/// A valid configuration and the warnings found while loading it.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub config: Config,
    pub warnings: Diagnostics,
}

/// Reads, parses and validates a configuration file.
pub fn load_file(path: &std::path::Path, env: &dyn Environment) -> Result<Loaded, Diagnostics> {
    let name = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(source) => load_str(&name, &source, env),
        Err(e) => {
            let mut d = Diagnostics::new();
            d.push(Diagnostic::file_error(
                &name,
                format!("cannot read file: {e}"),
            ));
            Err(d)
        }
    }
}

/// Parses and validates configuration text. `Err` holds every diagnostic (errors and
/// warnings) when there is at least one error.
pub fn load_str(
    file_name: &str,
    source: &str,
    env: &dyn Environment,
) -> Result<Loaded, Diagnostics> {
    let mut sink = Sink::new(file_name, source);
    let tokens = lexer::lex(source, &mut sink);
    let body = parser::parse(&tokens, &mut sink);
    let syntax_ok = !sink.has_errors();
    // Syntax errors drop the malformed statements; checking the rest would produce errors
    // that are only echoes of the syntax error (e.g. "missing forward_to"), so stop here.
    let config = if syntax_ok {
        build::build(&body, env, &mut sink)
    } else {
        None
    };
    let diags = sink.finish();
    match config {
        Some(config) if !diags.has_errors() => Ok(Loaded {
            config,
            warnings: diags,
        }),
        _ => Err(diags),
    }
}

/// Formats configuration text canonically (`alloy fmt` style). Fails only on syntax errors.
pub fn format_source(file_name: &str, source: &str) -> Result<String, Diagnostics> {
    let mut sink = Sink::new(file_name, source);
    let tokens = lexer::lex(source, &mut sink);
    let body = parser::parse(&tokens, &mut sink);
    if sink.has_errors() {
        return Err(sink.finish());
    }
    Ok(fmt::format_body(&body))
}

/// The syntax tree of `source`, or its syntax errors (used by tests and tools that compare
/// the shape of two files, see [`ast::shape`]).
pub fn parse_source(file_name: &str, source: &str) -> Result<ast::Body, Diagnostics> {
    let mut sink = Sink::new(file_name, source);
    let tokens = lexer::lex(source, &mut sink);
    let body = parser::parse(&tokens, &mut sink);
    if sink.has_errors() {
        return Err(sink.finish());
    }
    Ok(body)
}
