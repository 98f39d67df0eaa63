//! Following upstream redirects (`follow_redirects`, default true).
//!
//! Owns: the `Location` of a redirect response, resolving it against the URL that answered
//! (RFC 3986 §5.2 for the shapes servers send), and re-sending the upload to it. Only 307 and
//! 308 are followed: they keep the method and the body (RFC 9110 §15.4.8/§15.4.9), and the
//! body is re-sent from the same `Bytes`. A 301, 302 or 303 would turn Go's POST into a GET
//! without a body, which cannot deliver a profile, so pyrogate treats those as the final
//! (failed) status instead. At most [`MAX_REDIRECTS`] hops (Go's limit). A hop to another
//! scheme, host or port drops `Authorization`, as Alloy's auth round-trippers and Go's client
//! do. Each hop uses a fresh connection (not pooled): redirects are rare and per-upload.
//! Pure resolution; the hop itself is part of a delivery attempt.

use bytes::BytesMut;
use monoio::net::TcpStream;

use super::client::{Connection, ExchangeError, Response};
use super::{Destination, proxy, transport};
use crate::h1;
use crate::upload::Payload;

/// Most redirects followed for one attempt (Go's `http.Client` stops after 10).
pub const MAX_REDIRECTS: usize = 10;

/// Where a request goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hop {
    pub tls: bool,
    pub host: String,
    pub port: u16,
    /// Path and query, as sent in the request line.
    pub target: String,
}

impl Hop {
    fn same_origin(&self, o: &Hop) -> bool {
        self.tls == o.tls && self.host.eq_ignore_ascii_case(&o.host) && self.port == o.port
    }

    fn host_header(&self) -> String {
        let default = if self.tls { 443 } else { 80 };
        let h = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        if self.port == default {
            h
        } else {
            format!("{h}:{}", self.port)
        }
    }
}

/// Whether `status` is a redirect pyrogate follows.
pub fn is_followed(status: u16) -> bool {
    matches!(status, 307 | 308)
}

/// The `Location` header of a response head. Pure.
pub fn location_of(head: &[u8]) -> Option<String> {
    let mut headers = [httparse::EMPTY_HEADER; super::client::MAX_RESPONSE_HEADERS];
    let mut r = httparse::Response::new(&mut headers);
    r.parse(head).ok()?;
    r.headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("location"))
        .and_then(|h| std::str::from_utf8(h.value).ok())
        .map(|s| s.trim().to_string())
}

fn split_authority(a: &str, tls: bool) -> Option<(String, u16)> {
    let default = if tls { 443 } else { 80 };
    if let Some(v6) = a.strip_prefix('[') {
        let (h, rest) = v6.split_once(']')?;
        let port = match rest.strip_prefix(':') {
            Some(p) => p.parse().ok()?,
            None => default,
        };
        return Some((h.to_string(), port));
    }
    match a.rsplit_once(':') {
        Some((h, p)) => Some((h.to_string(), p.parse().ok()?)),
        None => Some((a.to_string(), default)),
    }
    .filter(|(h, _)| !h.is_empty())
}

/// Resolves `location` against `base`. `None` for a location that is not an http(s) URL or
/// cannot be parsed. Pure.
pub fn resolve(base: &Hop, location: &str) -> Option<Hop> {
    let location = location.split('#').next().unwrap_or("");
    let (tls, rest) = if let Some(r) = location.strip_prefix("https://") {
        (true, Some(r))
    } else if let Some(r) = location.strip_prefix("http://") {
        (false, Some(r))
    } else if let Some(r) = location.strip_prefix("//") {
        (base.tls, Some(r))
    } else if location.contains("://") {
        return None;
    } else {
        (base.tls, None)
    };
    if let Some(rest) = rest {
        let cut = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, target) = rest.split_at(cut);
        let (host, port) = split_authority(authority, tls)?;
        let target = if target.starts_with('/') {
            target.to_string()
        } else {
            format!("/{target}")
        };
        return Some(Hop {
            tls,
            host,
            port,
            target,
        });
    }
    let target = if location.starts_with('/') {
        location.to_string()
    } else if location.starts_with('?') {
        let path = base.target.split('?').next().unwrap_or("/");
        format!("{path}{location}")
    } else {
        let path = base.target.split('?').next().unwrap_or("/");
        let dir = &path[..path.rfind('/').map_or(0, |i| i + 1)];
        format!("{}{location}", if dir.is_empty() { "/" } else { dir })
    };
    Some(Hop {
        tls: base.tls,
        host: base.host.clone(),
        port: base.port,
        target,
    })
}

async fn dial(dest: &Destination, hop: &Hop) -> Result<Connection, ExchangeError> {
    let t = &dest.transport;
    let env = |k: &str| std::env::var(k).ok();
    let proxy = proxy::select(&dest.endpoint.proxy, hop.tls, &hop.host, hop.port, &env)
        .map_err(|e| ExchangeError::Io(std::io::Error::other(e.to_string())))?;
    let (dial_host, dial_port) = match &proxy {
        Some(p) => (p.host.clone(), p.port),
        None => (hop.host.clone(), hop.port),
    };
    let resolver = dest.transport.resolver.clone();
    let addrs = monoio::spawn_blocking(move || resolver.resolve(&dial_host, dial_port))
        .await
        .map_err(|_| ExchangeError::Io(std::io::Error::other("resolver task failed")))??;
    let addr = addrs.first().copied().ok_or_else(|| {
        ExchangeError::Io(std::io::Error::other(
            "redirect host resolves to no address",
        ))
    })?;
    let tcp = monoio::time::timeout(dest.endpoint.connect_timeout, TcpStream::connect_addr(addr))
        .await
        .map_err(|_| {
            ExchangeError::Io(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("connect to {addr} timed out"),
            ))
        })??;
    let _ = tcp.set_nodelay(true);
    let tls = if hop.tls {
        let config = t.tls.as_ref().ok_or_else(|| {
            ExchangeError::Io(std::io::Error::other(
                "no TLS settings for an https redirect",
            ))
        })?;
        let name = crate::tls::server_name(dest.endpoint.tls.as_ref(), &hop.host)
            .map_err(|e| ExchangeError::Io(std::io::Error::other(e.to_string())))?;
        Some((config, name))
    } else {
        None
    };
    let stream = transport::establish_to(
        tcp,
        proxy.as_ref(),
        &t.proxy_headers,
        &transport::authority(&hop.host, hop.port),
        tls,
    )
    .await?;
    Ok(Connection::new(stream))
}

/// Follows `resp` while it is a 307/308 with a usable `Location`; returns the final response.
/// `origin` is where the first request went; `headers` are its headers, Authorization
/// included (dropped once a hop leaves the origin).
pub async fn follow(
    dest: &Destination,
    origin: Hop,
    mut resp: Response,
    headers: &[(&[u8], &[u8])],
    payload: &Payload,
) -> Result<Response, ExchangeError> {
    let mut current = origin.clone();
    let mut left_origin = false;
    for _ in 0..MAX_REDIRECTS {
        if !is_followed(resp.status) {
            return Ok(resp);
        }
        let Some(next) = resp.location.as_deref().and_then(|l| resolve(&current, l)) else {
            return Ok(resp);
        };
        left_origin |= !next.same_origin(&origin);
        let kept: Vec<(&[u8], &[u8])> = headers
            .iter()
            .filter(|(n, _)| !(left_origin && n.eq_ignore_ascii_case(b"authorization")))
            .copied()
            .collect();
        let (path, query) = match next.target.split_once('?') {
            Some((p, q)) => (p, Some(q.as_bytes())),
            None => (next.target.as_str(), None),
        };
        let mut head = BytesMut::new();
        h1::encode_request_head(
            &mut head,
            "POST",
            path.as_bytes(),
            query,
            &next.host_header(),
            &kept,
            h1::RequestFraming::Length(payload.len()),
        );
        let mut conn = dial(dest, &next).await?;
        resp = conn.exchange(head.freeze(), payload).await?.0;
        current = next;
    }
    if is_followed(resp.status) {
        return Err(ExchangeError::Malformed(format!(
            "stopped after {MAX_REDIRECTS} redirects"
        )));
    }
    Ok(resp)
}

/// The first request's destination, for [`follow`].
pub fn origin_of(dest: &Destination, target: &str) -> Option<Hop> {
    match &dest.endpoint.url {
        crate::config::EndpointUrl::Http {
            tls, host, port, ..
        } => Some(Hop {
            tls: *tls,
            host: host.clone(),
            port: *port,
            target: target.to_string(),
        }),
        crate::config::EndpointUrl::Capture { .. } => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Hop {
        Hop {
            tls: false,
            host: "a.test".into(),
            port: 8080,
            target: "/p/ingest?name=x".into(),
        }
    }

    #[test]
    fn locations_resolve_like_a_browser() {
        for (loc, want) in [
            ("/other?x=1", (false, "a.test", 8080, "/other?x=1")),
            ("next", (false, "a.test", 8080, "/p/next")),
            ("?q=2", (false, "a.test", 8080, "/p/ingest?q=2")),
            ("https://b.test/in", (true, "b.test", 443, "/in")),
            ("http://b.test:81", (false, "b.test", 81, "/")),
            ("//c.test/z", (false, "c.test", 80, "/z")),
            ("http://[::1]:9/v6", (false, "::1", 9, "/v6")),
        ] {
            let h = resolve(&base(), loc).unwrap();
            assert_eq!(
                (h.tls, h.host.as_str(), h.port, h.target.as_str()),
                want,
                "{loc}"
            );
        }
        assert_eq!(resolve(&base(), "ftp://x/y"), None);
    }

    #[test]
    fn only_307_and_308_are_followed() {
        for s in [301, 302, 303, 304, 300] {
            assert!(!is_followed(s), "{s}");
        }
        assert!(is_followed(307) && is_followed(308));
    }

    #[test]
    fn location_is_read_from_the_head() {
        let head = b"HTTP/1.1 307 Temporary Redirect\r\nlocation: /x\r\nContent-Length: 0\r\n\r\n";
        assert_eq!(location_of(head).as_deref(), Some("/x"));
        assert_eq!(location_of(b"HTTP/1.1 200 OK\r\n\r\n"), None);
    }
}
