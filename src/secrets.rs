//! Credentials kept current while secrets rotate: the `Authorization` value of an endpoint and
//! the expected credential of a receiver's `client_auth`.
//!
//! Owns: rendering `basic_auth`, `bearer_token(_file)` and `authorization { }` into a header
//! value exactly as Alloy's round-trippers do (prometheus/common `config/http_config.go`); one
//! [`AuthCell`] per credential, shared by all cores, holding the current value behind a version
//! counter (a core reads one atomic per request and locks only after a change); the
//! `pyrogate-secrets` thread that stats each secret file every [`SECRET_POLL_INTERVAL`] and
//! re-reads it when its mtime, size or inode changed (a Kubernetes secret rotation swaps a
//! symlink); and RFC 4648 [`base64`] for credentials. No core thread ever touches a file.
//! Secrets never reach logs, errors or `Debug` output. Does not own: the OAuth2 token source
//! (`upstream::oauth2`, which fills a cell) or checking clients (`server::client_auth`). Cold
//! path except [`AuthView::current`]. A leaf above `config` only.

use std::cell::{Cell, RefCell};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::Bytes;

use crate::config::{Auth, Endpoint, SecretSource};

/// How often secret files are checked for changes.
pub const SECRET_POLL_INTERVAL: Duration = Duration::from_secs(2);

/// What goes into the `Authorization` header.
#[derive(Clone, Default)]
pub enum AuthValue {
    /// No header (no auth configured, or `headers` already sets `Authorization`).
    #[default]
    None,
    Header(Bytes),
    /// The credential cannot be had now (e.g. the OAuth2 token fetch failed): deliveries fail
    /// as transport errors and are retried.
    Unavailable,
}

impl std::fmt::Debug for AuthValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            AuthValue::None => "None",
            AuthValue::Header(_) => "Header((secret))",
            AuthValue::Unavailable => "Unavailable",
        })
    }
}

/// The current value for one endpoint, shared by every core.
#[derive(Debug, Default)]
pub struct AuthCell {
    version: AtomicU64,
    value: Mutex<AuthValue>,
}

impl AuthCell {
    pub fn new(value: AuthValue) -> Arc<AuthCell> {
        Arc::new(AuthCell {
            version: AtomicU64::new(1),
            value: Mutex::new(value),
        })
    }

    /// Replaces the value; cores pick it up on their next request.
    pub fn set(&self, value: AuthValue) {
        *self.value.lock().unwrap_or_else(|e| e.into_inner()) = value;
        self.version.fetch_add(1, Ordering::Release);
    }

    fn get(&self) -> (u64, AuthValue) {
        let v = self.version.load(Ordering::Acquire);
        (
            v,
            self.value.lock().unwrap_or_else(|e| e.into_inner()).clone(),
        )
    }
}

/// One core's view of an [`AuthCell`], caching the value between changes.
#[derive(Debug)]
pub struct AuthView {
    cell: Arc<AuthCell>,
    seen: Cell<u64>,
    cached: RefCell<AuthValue>,
}

/// The credential is not available right now.
#[derive(Debug, thiserror::Error)]
#[error("no credential available for this endpoint yet (see the OAuth2 token log lines)")]
pub struct Unavailable;

impl AuthView {
    pub fn new(cell: Arc<AuthCell>) -> Self {
        AuthView {
            cell,
            seen: Cell::new(0),
            cached: RefCell::new(AuthValue::None),
        }
    }

    /// The header value to send now (`None`: send no `Authorization`).
    pub fn current(&self) -> Result<Option<Bytes>, Unavailable> {
        if self.cell.version.load(Ordering::Acquire) != self.seen.get() {
            let (v, value) = self.cell.get();
            self.seen.set(v);
            *self.cached.borrow_mut() = value;
        }
        match &*self.cached.borrow() {
            AuthValue::None => Ok(None),
            AuthValue::Header(h) => Ok(Some(h.clone())),
            AuthValue::Unavailable => Err(Unavailable),
        }
    }
}

/// Why an endpoint's credentials could not be loaded at start.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("reading secret file {path}: {error}")]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
}

/// How a secret turns into the header value.
#[derive(Debug, Clone)]
enum Render {
    Basic {
        username: String,
    },
    Scheme(String),
    /// The secret behind a fixed prefix, for checking clients (`user:` for basic).
    Raw(String),
}

impl Render {
    fn header(&self, secret: &str) -> Bytes {
        Bytes::from(match self {
            Render::Basic { username } => {
                format!(
                    "Basic {}",
                    base64(format!("{username}:{secret}").as_bytes())
                )
            }
            Render::Scheme(s) => format!("{s} {secret}"),
            Render::Raw(prefix) => format!("{prefix}{secret}"),
        })
    }
}

/// RFC 4648 §4 base64 with padding (Basic credentials for endpoints, proxies and OAuth2 clients).
pub fn base64(input: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// File identity used to notice a change without reading the file.
type Stamp = (Option<SystemTime>, u64, u64);

fn stamp(p: &Path) -> std::io::Result<Stamp> {
    let m = std::fs::metadata(p)?;
    Ok((m.modified().ok(), m.len(), m.ino()))
}

/// Reads a secret file as Alloy does (trailing line breaks removed).
pub fn read_secret(p: &Path) -> Result<String, AuthError> {
    std::fs::read_to_string(p)
        .map(|s| s.trim_end_matches(['\r', '\n']).to_string())
        .map_err(|error| AuthError::Read {
            path: p.to_path_buf(),
            error,
        })
}

/// A secret file the watcher thread keeps an [`AuthCell`] in step with.
#[derive(Debug)]
pub struct FileWatch {
    path: PathBuf,
    render: Render,
    cell: Arc<AuthCell>,
    stamp: Option<Stamp>,
}

/// Builds the cell of an endpoint (reading secret files now, on the main thread) and, for a
/// file-backed secret, the watch that keeps it current. OAuth2 cells start `Unavailable`;
/// `upstream::oauth2` fills them.
pub fn build(e: &Endpoint) -> Result<(Arc<AuthCell>, Option<FileWatch>), AuthError> {
    // Alloy's auth round-trippers skip when the request already has Authorization.
    if e.headers
        .iter()
        .any(|(n, _)| n.eq_ignore_ascii_case("authorization"))
    {
        return Ok((AuthCell::new(AuthValue::None), None));
    }
    let (render, source) = match &e.auth {
        None => return Ok((AuthCell::new(AuthValue::None), None)),
        Some(Auth::OAuth2(_)) => return Ok((AuthCell::new(AuthValue::Unavailable), None)),
        Some(Auth::Basic { username, password }) => (
            Render::Basic {
                username: username.clone(),
            },
            password.clone(),
        ),
        Some(Auth::Authorization {
            scheme,
            credentials,
        }) => (Render::Scheme(scheme.clone()), Some(credentials.clone())),
    };
    cell_for(render, source)
}

/// A cell holding `prefix` + the secret (kept current like an endpoint's), for checking the
/// credentials clients present to a receiver.
pub fn build_raw(
    prefix: &str,
    source: &SecretSource,
) -> Result<(Arc<AuthCell>, Option<FileWatch>), AuthError> {
    cell_for(Render::Raw(prefix.to_string()), Some(source.clone()))
}

fn cell_for(
    render: Render,
    source: Option<SecretSource>,
) -> Result<(Arc<AuthCell>, Option<FileWatch>), AuthError> {
    match source {
        None => Ok((AuthCell::new(AuthValue::Header(render.header(""))), None)),
        Some(SecretSource::Inline(s)) => {
            Ok((AuthCell::new(AuthValue::Header(render.header(&s.0))), None))
        }
        Some(SecretSource::File(path)) => {
            let st = stamp(&path).ok();
            let secret = read_secret(&path)?;
            let cell = AuthCell::new(AuthValue::Header(render.header(&secret)));
            Ok((
                cell.clone(),
                Some(FileWatch {
                    path,
                    render,
                    cell,
                    stamp: st,
                }),
            ))
        }
    }
}

impl FileWatch {
    /// Re-reads the file if it changed. A file that cannot be read keeps the last value.
    fn poll(&mut self) {
        let now = stamp(&self.path).ok();
        if now.is_none() || now == self.stamp {
            return;
        }
        match read_secret(&self.path) {
            Ok(s) => {
                self.stamp = now;
                self.cell.set(AuthValue::Header(self.render.header(&s)));
                tracing::info!(file = %self.path.display(), "secret file changed; credentials reloaded");
            }
            Err(e) => tracing::warn!(error = %e, "keeping the previous credentials"),
        }
    }
}

/// Starts the thread that watches every secret file (none started when there is none).
pub fn spawn_watcher(mut watches: Vec<FileWatch>) -> std::io::Result<()> {
    if watches.is_empty() {
        return Ok(());
    }
    std::thread::Builder::new()
        .name("pyrogate-secrets".into())
        .spawn(move || {
            loop {
                std::thread::sleep(SECRET_POLL_INTERVAL);
                for w in &mut watches {
                    w.poll();
                }
            }
        })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint() -> Endpoint {
        let target = crate::config::EndpointUrl::Http {
            tls: false,
            host: "x".into(),
            port: 80,
            path: String::new(),
        };
        Endpoint::new(target, "http://x")
    }

    #[test]
    fn a_view_sees_a_new_value_after_set() {
        let cell = AuthCell::new(AuthValue::Header(Bytes::from_static(b"Bearer a")));
        let view = AuthView::new(cell.clone());
        assert_eq!(view.current().unwrap().as_deref(), Some(&b"Bearer a"[..]));
        cell.set(AuthValue::Header(Bytes::from_static(b"Bearer b")));
        assert_eq!(view.current().unwrap().as_deref(), Some(&b"Bearer b"[..]));
        cell.set(AuthValue::Unavailable);
        assert!(view.current().is_err());
    }

    #[test]
    fn secrets_are_not_printed_by_debug() {
        let v = AuthValue::Header(Bytes::from_static(b"Bearer s3cr3t"));
        assert_eq!(format!("{v:?}"), "Header((secret))");
    }

    #[test]
    fn a_rewritten_file_is_picked_up_by_poll() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("token");
        std::fs::write(&p, "one\n").unwrap();
        let mut e = endpoint();
        e.auth = Some(Auth::Authorization {
            scheme: "Bearer".into(),
            credentials: SecretSource::File(p.clone()),
        });
        let (cell, watch) = build(&e).unwrap();
        let mut watch = watch.unwrap();
        let view = AuthView::new(cell);
        assert_eq!(view.current().unwrap().as_deref(), Some(&b"Bearer one"[..]));
        // A new file (new inode) replaces the old one, as a symlink swap does.
        let tmp = dir.path().join("token.new");
        std::fs::write(&tmp, "two-longer\n").unwrap();
        std::fs::rename(&tmp, &p).unwrap();
        watch.poll();
        assert_eq!(
            view.current().unwrap().as_deref(),
            Some(&b"Bearer two-longer"[..])
        );
    }

    #[test]
    fn a_missing_secret_file_names_the_file() {
        let mut e = endpoint();
        e.auth = Some(Auth::Basic {
            username: "u".into(),
            password: Some(SecretSource::File("/nonexistent/pw".into())),
        });
        let err = build(&e).unwrap_err().to_string();
        assert!(
            err.starts_with("reading secret file /nonexistent/pw: "),
            "{err}"
        );
    }

    #[test]
    fn base64_matches_rfc4648_vectors() {
        for (i, o) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(i.as_bytes()), o);
        }
    }
}
