//! Client authentication on a receiver (*pyrogate extension* `client_auth`).
//!
//! Owns: checking the `Authorization` of each request against the receiver's one configured
//! credential — HTTP Basic (RFC 7617: scheme case-insensitive, base64 of `user:password`) or a
//! bearer token (RFC 6750) — in constant time, and the 401 answer with `WWW-Authenticate`
//! (realm `pyrogate`). Pyroscope itself has no authentication; users otherwise put a proxy in
//! front. The expected secret comes from an [`AuthCell`] kept current by the secrets thread
//! (files are re-read when they change). Does not own routing. Hot path: one comparison per
//! request when configured.

use std::sync::Arc;

use bytes::BytesMut;

use crate::config::ClientAuth;
use crate::h1;
use crate::secrets::{self, AuthCell, AuthView, FileWatch};

/// Realm named in `WWW-Authenticate`.
pub const REALM: &str = "pyrogate";

/// Which scheme a receiver expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Basic,
    Bearer,
}

/// The prepared check of one receiver, shared by all cores.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub scheme: Scheme,
    pub cell: Arc<AuthCell>,
}

/// Builds the check of a receiver (main thread, at start).
pub fn prepare(c: &ClientAuth) -> Result<(Prepared, Option<FileWatch>), secrets::AuthError> {
    let (scheme, prefix, source) = match c {
        ClientAuth::Basic { username, password } => {
            (Scheme::Basic, format!("{username}:"), password)
        }
        ClientAuth::Bearer(s) => (Scheme::Bearer, String::new(), s),
    };
    let (cell, watch) = secrets::build_raw(&prefix, source)?;
    Ok((Prepared { scheme, cell }, watch))
}

/// One core's check.
#[derive(Debug)]
pub struct Check {
    scheme: Scheme,
    expected: AuthView,
}

impl Check {
    pub fn new(p: &Prepared) -> Self {
        Check {
            scheme: p.scheme,
            expected: AuthView::new(p.cell.clone()),
        }
    }

    /// Whether `authorization` (the request's header value, if any) carries the credential.
    pub fn allows(&self, authorization: Option<&[u8]>) -> bool {
        let Ok(Some(expected)) = self.expected.current() else {
            return false;
        };
        let Some(presented) = authorization.and_then(|a| presented(self.scheme, a)) else {
            return false;
        };
        ct_eq(&presented, &expected)
    }

    /// The 401 response, closing the connection when a body was not read.
    pub fn unauthorized(&self, close: bool) -> BytesMut {
        let challenge = match self.scheme {
            Scheme::Basic => format!("Basic realm=\"{REALM}\""),
            Scheme::Bearer => format!("Bearer realm=\"{REALM}\""),
        };
        let mut out = BytesMut::with_capacity(192);
        h1::encode_response(
            &mut out,
            401,
            &[
                ("Content-Type", b"text/plain; charset=utf-8"),
                ("Www-Authenticate", challenge.as_bytes()),
                ("X-Content-Type-Options", b"nosniff"),
            ],
            UNAUTHORIZED_BODY,
            close,
        );
        out
    }

    /// The body length of [`Check::unauthorized`] (for the response size metric).
    pub fn unauthorized_body_len(&self) -> u64 {
        UNAUTHORIZED_BODY.len() as u64
    }
}

/// The 401 body, as Go's `http.Error(w, "Unauthorized", 401)` writes it.
const UNAUTHORIZED_BODY: &[u8] = b"Unauthorized\n";

/// The credential in an `Authorization` value for `scheme`: `user:password` decoded from
/// Basic, the token from Bearer. Pure.
pub fn presented(scheme: Scheme, value: &[u8]) -> Option<Vec<u8>> {
    let sp = value.iter().position(|&b| b == b' ')?;
    let (name, rest) = value.split_at(sp);
    let rest = rest.trim_ascii();
    match scheme {
        Scheme::Basic if name.eq_ignore_ascii_case(b"basic") => base64_decode(rest),
        Scheme::Bearer if name.eq_ignore_ascii_case(b"bearer") => Some(rest.to_vec()),
        _ => None,
    }
}

/// Standard base64 with padding (RFC 4648 §4). Pure; `None` on malformed input.
pub fn base64_decode(s: &[u8]) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(4) {
        return None;
    }
    let val = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let mut out = Vec::with_capacity(s.len() / 4 * 3);
    let chunks = s.len() / 4;
    for (i, q) in s.chunks(4).enumerate() {
        let pad = q.iter().rev().take_while(|&&c| c == b'=').count();
        if pad > 2 || (pad > 0 && i + 1 != chunks) {
            return None;
        }
        let mut n = 0u32;
        for &c in &q[..4 - pad] {
            n = (n << 6) | val(c)?;
        }
        n <<= 6 * pad as u32;
        let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&bytes[..3 - pad]);
    }
    Some(out)
}

/// Constant-time equality (the time depends on the lengths only).
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_and_bearer_credentials_are_extracted() {
        for (scheme, value, want) in [
            (Scheme::Basic, &b"Basic dTpw"[..], Some(&b"u:p"[..])),
            (Scheme::Basic, b"basic   dTpw", Some(b"u:p")),
            (Scheme::Basic, b"Bearer dTpw", None),
            (Scheme::Basic, b"Basic !!!!", None),
            (Scheme::Basic, b"Basic", None),
            (Scheme::Bearer, b"Bearer tok", Some(b"tok")),
            (Scheme::Bearer, b"BEARER tok", Some(b"tok")),
            (Scheme::Bearer, b"Basic tok", None),
        ] {
            assert_eq!(presented(scheme, value).as_deref(), want, "{value:?}");
        }
    }

    #[test]
    fn base64_decoding_round_trips_rfc4648_vectors() {
        for (o, i) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64_decode(i.as_bytes()).as_deref(), Some(o.as_bytes()));
        }
        assert_eq!(base64_decode(b"Zg=a"), None);
        assert_eq!(base64_decode(b"Zg==Zg=="), None);
        assert_eq!(base64_decode(b"Zm9"), None);
    }

    #[test]
    fn constant_time_equality_is_equality() {
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abd"));
        assert!(!ct_eq(b"abc", b"ab"));
    }
}
