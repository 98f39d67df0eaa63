//! OAuth2 client-credentials tokens for an endpoint, fetched off the core threads.
//!
//! Owns: one `pyrogate-oauth2` thread per OAuth2 endpoint that fetches a token from
//! `token_url` (RFC 6749 §4.4: `grant_type=client_credentials`, `scope`, `endpoint_params`;
//! client credentials in HTTP Basic first, then in the form body if that fails, as Go's
//! `AuthStyleAutoDetect` does), publishes `Authorization: <type> <token>` in the endpoint's
//! [`AuthCell`], and refreshes it at [`REFRESH_AT_PERCENT`] of `expires_in`. A failed fetch is
//! logged (without secrets) and retried with backoff; the previous token stays in use until it
//! expires, after which deliveries fail as transport errors (retried). The request is a small
//! blocking HTTP/1.1 exchange over std sockets (rustls for https). `client_secret_file` is
//! read at each fetch. Not supported: the `oauth2` block's own proxy settings. Cold path.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::config::{OAuth2, SecretSource};
use crate::secrets::{AuthCell, AuthValue, base64, read_secret};

/// Refresh a token when this share of its lifetime has passed.
pub const REFRESH_AT_PERCENT: u64 = 80;
/// Lifetime assumed for a token that states none (Go treats such a token as never expiring;
/// refreshing hourly bounds how long a revoked one is used).
const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(3600);
/// Timeout of connecting to, writing to and reading from the token URL.
const TOKEN_IO_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest token response read.
const MAX_TOKEN_RESPONSE_BYTES: u64 = 1024 * 1024;
/// Backoff after a failed fetch: first and largest delay.
const RETRY_MIN: Duration = Duration::from_secs(1);
const RETRY_MAX: Duration = Duration::from_secs(30);

/// A token as the server issued it.
#[derive(Clone, PartialEq, Eq)]
pub struct Token {
    pub header: String,
    pub expires_in: Option<Duration>,
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Token")
            .field("header", &"(secret)")
            .field("expires_in", &self.expires_in)
            .finish()
    }
}

/// Why a token fetch failed. Never carries a secret.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FetchError {
    #[error("token_url {0:?} is not an http:// or https:// URL")]
    Url(String),
    #[error("token request: {0}")]
    Io(String),
    #[error("token endpoint answered status {0}")]
    Status(u16),
    #[error("token response: {0}")]
    Response(String),
}

/// `application/x-www-form-urlencoded` escaping (Go's `url.QueryEscape`).
pub fn form_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// The form body, keys sorted as Go's `url.Values.Encode` does.
pub fn form_body(o: &OAuth2, secret_in_body: Option<&str>) -> String {
    let mut kv: Vec<(String, String)> = vec![("grant_type".into(), "client_credentials".into())];
    if !o.scopes.is_empty() {
        kv.push(("scope".into(), o.scopes.join(" ")));
    }
    for (k, v) in &o.endpoint_params {
        kv.retain(|(n, _)| n != k);
        kv.push((k.clone(), v.clone()));
    }
    if let Some(secret) = secret_in_body {
        kv.push(("client_id".into(), o.client_id.clone()));
        kv.push(("client_secret".into(), secret.to_string()));
    }
    kv.sort_by(|a, b| a.0.cmp(&b.0));
    kv.iter()
        .map(|(k, v)| format!("{}={}", form_escape(k), form_escape(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// Go's `Token.Type()`: the canonical scheme for `token_type`.
fn token_scheme(t: &str) -> String {
    if t.is_empty() || t.eq_ignore_ascii_case("bearer") {
        "Bearer".into()
    } else if t.eq_ignore_ascii_case("mac") {
        "MAC".into()
    } else if t.eq_ignore_ascii_case("basic") {
        "Basic".into()
    } else {
        t.to_string()
    }
}

/// Parses a token response body (RFC 6749 §5.1). Pure.
pub fn parse_token(body: &[u8]) -> Result<Token, FetchError> {
    let v: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| FetchError::Response(format!("not JSON: {e}")))?;
    let token = v
        .get("access_token")
        .and_then(|t| t.as_str())
        .filter(|t| !t.is_empty())
        .ok_or_else(|| FetchError::Response("no access_token".into()))?;
    let kind = v.get("token_type").and_then(|t| t.as_str()).unwrap_or("");
    let expires_in = v.get("expires_in").and_then(|e| match e {
        serde_json::Value::Number(n) => n.as_u64(),
        serde_json::Value::String(s) => s.parse().ok(),
        _ => None,
    });
    Ok(Token {
        header: format!("{} {token}", token_scheme(kind)),
        expires_in: expires_in.filter(|&s| s > 0).map(Duration::from_secs),
    })
}

struct TokenUrl {
    tls: bool,
    host: String,
    port: u16,
    target: String,
}

fn parse_url(u: &str) -> Result<TokenUrl, FetchError> {
    let (tls, rest) = if let Some(r) = u.strip_prefix("https://") {
        (true, r)
    } else if let Some(r) = u.strip_prefix("http://") {
        (false, r)
    } else {
        return Err(FetchError::Url(u.into()));
    };
    let split = rest.find(['/', '?']).unwrap_or(rest.len());
    let (hostport, target) = rest.split_at(split);
    let target = if target.is_empty() || target.starts_with('?') {
        format!("/{target}")
    } else {
        target.to_string()
    };
    let (host, port) = match hostport.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || hostport.starts_with('[') => (
            h.trim_start_matches('[').trim_end_matches(']'),
            p.parse().map_err(|_| FetchError::Url(u.into()))?,
        ),
        _ => (hostport, if tls { 443 } else { 80 }),
    };
    if host.is_empty() {
        return Err(FetchError::Url(u.into()));
    }
    Ok(TokenUrl {
        tls,
        host: host.into(),
        port,
        target,
    })
}

fn exchange(
    url: &TokenUrl,
    tls: &Arc<rustls::ClientConfig>,
    request: &[u8],
) -> Result<Vec<u8>, FetchError> {
    let io = |e: std::io::Error| FetchError::Io(e.to_string());
    let addrs: Vec<_> = (url.host.as_str(), url.port)
        .to_socket_addrs()
        .map_err(io)?
        .collect();
    let mut last = FetchError::Io(format!("{} resolves to no address", url.host));
    let mut tcp = None;
    for a in addrs {
        match TcpStream::connect_timeout(&a, TOKEN_IO_TIMEOUT) {
            Ok(s) => {
                tcp = Some(s);
                break;
            }
            Err(e) => last = io(e),
        }
    }
    let tcp = tcp.ok_or(last)?;
    tcp.set_read_timeout(Some(TOKEN_IO_TIMEOUT)).map_err(io)?;
    tcp.set_write_timeout(Some(TOKEN_IO_TIMEOUT)).map_err(io)?;
    let mut raw = Vec::new();
    if url.tls {
        let name =
            crate::tls::server_name(None, &url.host).map_err(|e| FetchError::Io(e.to_string()))?;
        let conn = rustls::ClientConnection::new(tls.clone(), name)
            .map_err(|e| FetchError::Io(e.to_string()))?;
        let mut s = rustls::StreamOwned::new(conn, tcp);
        s.write_all(request).map_err(io)?;
        read_response(&mut s, &mut raw).map_err(io)?;
    } else {
        let mut s = tcp;
        s.write_all(request).map_err(io)?;
        read_response(&mut s, &mut raw).map_err(io)?;
    }
    Ok(raw)
}

/// Reads until the response is complete (by its framing) or the peer closes; a peer closing
/// without TLS close_notify after some bytes is tolerated.
fn read_response(s: &mut impl Read, raw: &mut Vec<u8>) -> std::io::Result<()> {
    let mut chunk = [0u8; 8192];
    while !response_complete(raw) {
        if raw.len() as u64 > MAX_TOKEN_RESPONSE_BYTES {
            return Err(std::io::Error::other("token response too large"));
        }
        match s.read(&mut chunk) {
            Ok(0) => return Ok(()),
            Ok(n) => raw.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !raw.is_empty() => {
                return Ok(());
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Whether `raw` holds a whole response: head plus a Content-Length or chunked body.
fn response_complete(raw: &[u8]) -> bool {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut r = httparse::Response::new(&mut headers);
    let Ok(httparse::Status::Complete(n)) = r.parse(raw) else {
        return false;
    };
    let rest = raw.get(n..).unwrap_or_default();
    for h in r.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            return std::str::from_utf8(h.value)
                .ok()
                .and_then(|v| v.trim().parse::<usize>().ok())
                .is_some_and(|cl| rest.len() >= cl);
        }
        if h.name.eq_ignore_ascii_case("transfer-encoding") {
            let mut dec = crate::h1::ChunkedDecoder::new(MAX_TOKEN_RESPONSE_BYTES);
            return dec.decode(rest, None).is_ok_and(|p| p.done);
        }
    }
    false
}

/// Splits a complete `Connection: close` response into status and body. Pure.
pub fn parse_response(raw: &[u8]) -> Result<(u16, Vec<u8>), FetchError> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut r = httparse::Response::new(&mut headers);
    let n = match r.parse(raw) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Err(FetchError::Response("truncated".into())),
        Err(e) => return Err(FetchError::Response(e.to_string())),
    };
    let status = r.code.unwrap_or(0);
    let chunked = r.headers.iter().any(|h| {
        h.name.eq_ignore_ascii_case("transfer-encoding")
            && String::from_utf8_lossy(h.value)
                .to_ascii_lowercase()
                .contains("chunked")
    });
    let rest = raw.get(n..).unwrap_or_default();
    let body = if chunked {
        let mut out = bytes::BytesMut::new();
        let mut dec = crate::h1::ChunkedDecoder::new(MAX_TOKEN_RESPONSE_BYTES);
        dec.decode(rest, Some(&mut out))
            .map_err(|e| FetchError::Response(e.to_string()))?;
        out.to_vec()
    } else {
        let cl = r
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case("content-length"))
            .and_then(|h| std::str::from_utf8(h.value).ok())
            .and_then(|v| v.trim().parse::<usize>().ok());
        rest.get(..cl.unwrap_or(rest.len()).min(rest.len()))
            .unwrap_or_default()
            .to_vec()
    };
    Ok((status, body))
}

/// One token fetch (blocking).
pub fn fetch(
    o: &OAuth2,
    tls: &Arc<rustls::ClientConfig>,
    secret_in_header: bool,
) -> Result<Token, FetchError> {
    let url = parse_url(&o.token_url)?;
    let secret = match &o.client_secret {
        SecretSource::Inline(s) => s.0.clone(),
        SecretSource::File(p) => read_secret(p).map_err(|e| FetchError::Io(e.to_string()))?,
    };
    let body = form_body(o, (!secret_in_header).then_some(secret.as_str()));
    let host = super::transport::authority(&url.host, url.port);
    let mut req = format!(
        "POST {} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: {}\r\nContent-Type: application/x-www-form-urlencoded\r\nAccept: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
        url.target,
        super::USER_AGENT,
        body.len()
    );
    if secret_in_header {
        let cred = format!("{}:{}", form_escape(&o.client_id), form_escape(&secret));
        req.push_str(&format!(
            "Authorization: Basic {}\r\n",
            base64(cred.as_bytes())
        ));
    }
    req.push_str("\r\n");
    req.push_str(&body);
    let raw = exchange(&url, tls, req.as_bytes())?;
    let (status, body) = parse_response(&raw)?;
    if !(200..300).contains(&status) {
        return Err(FetchError::Status(status));
    }
    parse_token(&body)
}

/// When to refresh a token that lives `expires_in`.
pub fn refresh_after(expires_in: Option<Duration>) -> Duration {
    let life = expires_in.unwrap_or(DEFAULT_TOKEN_LIFETIME);
    (life * REFRESH_AT_PERCENT as u32 / 100).max(Duration::from_secs(1))
}

/// Starts the token thread of one endpoint. The TLS settings of `token_url` are checked now.
pub fn spawn(o: OAuth2, endpoint: String, cell: Arc<AuthCell>) -> Result<(), crate::tls::TlsError> {
    let tls = crate::tls::client_config(o.tls.as_ref())?;
    let name = endpoint.clone();
    let spawned = std::thread::Builder::new()
        .name("pyrogate-oauth2".into())
        .spawn(move || {
            let mut delay = RETRY_MIN;
            let mut valid_until: Option<Instant> = None;
            loop {
                let got = fetch(&o, &tls, true).or_else(|first| {
                    fetch(&o, &tls, false).map_err(|second| (first, second))
                });
                match got {
                    Ok(tok) => {
                        let now = Instant::now();
                        valid_until = Some(now + tok.expires_in.unwrap_or(DEFAULT_TOKEN_LIFETIME));
                        cell.set(AuthValue::Header(Bytes::from(tok.header.clone())));
                        delay = RETRY_MIN;
                        tracing::debug!(endpoint = %endpoint, "oauth2 token fetched");
                        std::thread::sleep(refresh_after(tok.expires_in));
                    }
                    Err((first, second)) => {
                        tracing::warn!(endpoint = %endpoint, token_url = %o.token_url, error = %first, error_body_auth = %second, "oauth2 token fetch failed");
                        if valid_until.is_none_or(|t| Instant::now() >= t) {
                            cell.set(AuthValue::Unavailable);
                        }
                        std::thread::sleep(delay);
                        delay = (delay * 2).min(RETRY_MAX);
                    }
                }
            }
        });
    if let Err(e) = spawned {
        tracing::error!(endpoint = %name, error = %e, "cannot start the oauth2 token thread");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn oauth(scopes: &[&str], params: &[(&str, &str)]) -> OAuth2 {
        OAuth2 {
            client_id: "id with space".into(),
            client_secret: SecretSource::Inline(crate::config::Secret("s&cret".into())),
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
            token_url: "http://auth.test/token".into(),
            endpoint_params: params
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            tls: None,
            proxy: Default::default(),
        }
    }

    #[test]
    fn the_form_is_sorted_and_escaped_like_go() {
        assert_eq!(
            form_body(&oauth(&["a", "b:c"], &[("audience", "x y")]), None),
            "audience=x+y&grant_type=client_credentials&scope=a+b%3Ac"
        );
        assert_eq!(
            form_body(&oauth(&[], &[]), Some("s&cret")),
            "client_id=id+with+space&client_secret=s%26cret&grant_type=client_credentials"
        );
    }

    #[test]
    fn token_responses_parse_with_go_type_canonicalisation() {
        let t = parse_token(br#"{"access_token":"abc","token_type":"bearer","expires_in":3600}"#)
            .unwrap();
        assert_eq!(t.header, "Bearer abc");
        assert_eq!(t.expires_in, Some(Duration::from_secs(3600)));
        let t = parse_token(br#"{"access_token":"abc","expires_in":"60"}"#).unwrap();
        assert_eq!(
            (t.header.as_str(), t.expires_in),
            ("Bearer abc", Some(Duration::from_secs(60)))
        );
        assert_eq!(
            parse_token(br#"{"error":"invalid_client"}"#),
            Err(FetchError::Response("no access_token".into()))
        );
        assert_eq!(
            refresh_after(Some(Duration::from_secs(100))),
            Duration::from_secs(80)
        );
    }

    #[test]
    fn responses_split_into_status_and_body() {
        let (s, b) =
            parse_response(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n{}").unwrap();
        assert_eq!((s, b.as_slice()), (200, &b"{}"[..]));
        let (s, b) = parse_response(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
        )
        .unwrap();
        assert_eq!((s, b.as_slice()), (200, &b"{}"[..]));
    }
}
