//! Egress proxies: choosing one for a target (`proxy_url`, `no_proxy`,
//! `proxy_from_environment`) and opening an HTTP CONNECT tunnel through it.
//!
//! Owns: the selection rules of Prometheus' `ProxyConfig.Proxy()` — `proxy_url` alone proxies
//! everything (`http.ProxyURL`); with `no_proxy`, or from the environment, Go's `httpproxy`
//! rules apply, which never proxy `localhost` or loopback addresses — the `no_proxy` matcher
//! (hosts, `.domain` suffixes, IPs, CIDRs, optional `:port`, `*`), parsing the proxy URL
//! (credentials become `Proxy-Authorization: Basic`), and the CONNECT exchange. Every target
//! goes through CONNECT, plain `http://` ones too (Go would send those in absolute form): one
//! code path, and the proxy never sees request heads. Only `http://` proxies are supported.
//! Selection is pure; the tunnel is on the hot path only when a connection is opened.

use std::net::IpAddr;

use bytes::BytesMut;
use monoio::io::AsyncWriteRentExt;
use monoio::net::TcpStream;

use crate::config::Proxy;

/// Largest CONNECT response head accepted from a proxy.
const MAX_CONNECT_RESPONSE_BYTES: usize = 16 * 1024;

/// A proxy to tunnel through.
#[derive(Clone, PartialEq, Eq)]
pub struct ProxyTarget {
    pub host: String,
    pub port: u16,
    /// `Basic …` from the proxy URL's userinfo, sent as `Proxy-Authorization`.
    pub authorization: Option<String>,
}

impl std::fmt::Debug for ProxyTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProxyTarget")
            .field("host", &self.host)
            .field("port", &self.port)
            .field(
                "authorization",
                &self.authorization.as_ref().map(|_| "(secret)"),
            )
            .finish()
    }
}

/// Why a proxy setting cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProxyError {
    #[error(
        "proxy URL scheme {0:?} is not supported: pyrogate tunnels through http:// proxies only"
    )]
    Scheme(String),
    #[error("proxy URL has no host")]
    NoHost,
    #[error("proxy URL has an invalid port")]
    Port,
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match (
            b[i],
            b.get(i + 1).copied().and_then(hex),
            b.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (c, _, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parses `http://[user[:pass]@]host[:port][/]` (a scheme-less value means http, as Go's
/// `httpproxy` reads environment variables).
pub fn parse_proxy_url(url: &str) -> Result<ProxyTarget, ProxyError> {
    let rest = match url.split_once("://") {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") => rest,
        Some((scheme, _)) => return Err(ProxyError::Scheme(scheme.to_string())),
        None => url,
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let (userinfo, hostport) = match authority.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, authority),
    };
    let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
        let (h, after) = v6.split_once(']').ok_or(ProxyError::NoHost)?;
        (h, after.strip_prefix(':'))
    } else {
        match hostport.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (hostport, None),
        }
    };
    if host.is_empty() {
        return Err(ProxyError::NoHost);
    }
    let port = match port {
        None | Some("") => 80,
        Some(p) => p.parse().map_err(|_| ProxyError::Port)?,
    };
    let authorization = userinfo.map(|u| {
        let (user, pass) = u.split_once(':').unwrap_or((u, ""));
        let cred = format!("{}:{}", percent_decode(user), percent_decode(pass));
        format!("Basic {}", crate::secrets::base64(cred.as_bytes()))
    });
    Ok(ProxyTarget {
        host: host.to_string(),
        port,
        authorization,
    })
}

/// Go's `httpproxy` `no_proxy` matching for `host:port` (host without brackets). Pure.
pub fn no_proxy_matches(list: &str, host: &str, port: u16) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    let ip: Option<IpAddr> = host.parse().ok();
    for entry in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        if entry == "*" {
            return true;
        }
        if let Some((net, bits)) = entry.split_once('/') {
            if let (Some(ip), Ok(net), Ok(bits)) = (ip, net.parse::<IpAddr>(), bits.parse::<u8>())
                && cidr_contains(net, bits, ip)
            {
                return true;
            }
            continue;
        }
        if let Ok(e) = entry.parse::<IpAddr>() {
            if ip == Some(e) {
                return true;
            }
            continue;
        }
        // `host:port` entries match that port only.
        let (name, eport) = match entry.rsplit_once(':') {
            Some((n, p)) if !n.contains(':') => match p.parse::<u16>() {
                Ok(p) => (n, Some(p)),
                Err(_) => continue,
            },
            _ => (entry, None),
        };
        if eport.is_some_and(|p| p != port) {
            continue;
        }
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        if let Some(suffix) = name.strip_prefix('.') {
            // `.example.com` matches subdomains only.
            if host.ends_with(&format!(".{suffix}")) {
                return true;
            }
        } else if host == name || host.ends_with(&format!(".{name}")) {
            // `example.com` matches itself and its subdomains.
            return true;
        }
    }
    false
}

fn cidr_contains(net: IpAddr, bits: u8, ip: IpAddr) -> bool {
    match (net, ip) {
        (IpAddr::V4(n), IpAddr::V4(i)) if bits <= 32 => {
            let mask = u32::MAX.checked_shl(32 - u32::from(bits)).unwrap_or(0);
            u32::from(n) & mask == u32::from(i) & mask
        }
        (IpAddr::V6(n), IpAddr::V6(i)) if bits <= 128 => {
            let mask = u128::MAX.checked_shl(128 - u32::from(bits)).unwrap_or(0);
            u128::from(n) & mask == u128::from(i) & mask
        }
        _ => false,
    }
}

/// Go's `httpproxy` never proxies `localhost` or loopback addresses.
fn is_local(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost") || host.parse::<IpAddr>().is_ok_and(|i| i.is_loopback())
}

/// The proxy for a request to `host:port` (`tls` = https), or `None` for a direct
/// connection. `env` reads environment variables (`std::env::var` in production).
pub fn select(
    p: &Proxy,
    tls: bool,
    host: &str,
    port: u16,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<ProxyTarget>, ProxyError> {
    if p.proxy_from_environment {
        let any = |names: &[&str]| names.iter().find_map(|n| env(n).filter(|v| !v.is_empty()));
        let url = if tls {
            any(&["HTTPS_PROXY", "https_proxy"])
        } else {
            any(&["HTTP_PROXY", "http_proxy"])
        };
        let Some(url) = url else { return Ok(None) };
        let no_proxy = any(&["NO_PROXY", "no_proxy"]).unwrap_or_default();
        if is_local(host) || no_proxy_matches(&no_proxy, host, port) {
            return Ok(None);
        }
        return parse_proxy_url(&url).map(Some);
    }
    let Some(url) = &p.proxy_url else {
        return Ok(None);
    };
    if let Some(no_proxy) = &p.no_proxy
        && (is_local(host) || no_proxy_matches(no_proxy, host, port))
    {
        return Ok(None);
    }
    parse_proxy_url(url).map(Some)
}

/// Renders the CONNECT request for `authority` (`host:port`).
pub fn connect_request(
    target: &ProxyTarget,
    authority: &str,
    extra: &[(String, String)],
) -> BytesMut {
    let mut out = BytesMut::with_capacity(128);
    out.extend_from_slice(
        format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n").as_bytes(),
    );
    if let Some(a) = &target.authorization {
        out.extend_from_slice(format!("Proxy-Authorization: {a}\r\n").as_bytes());
    }
    for (n, v) in extra {
        out.extend_from_slice(format!("{n}: {v}\r\n").as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// Opens a CONNECT tunnel to `authority` over `tcp` (already connected to the proxy).
pub async fn tunnel(
    tcp: &mut TcpStream,
    target: &ProxyTarget,
    authority: &str,
    extra: &[(String, String)],
) -> std::io::Result<()> {
    let (r, _) = tcp
        .write_all(connect_request(target, authority, extra))
        .await;
    r?;
    let mut buf = BytesMut::with_capacity(1024);
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut resp = httparse::Response::new(&mut headers);
        match resp.parse(&buf) {
            Ok(httparse::Status::Complete(n)) => {
                let code = resp.code.unwrap_or(0);
                if code / 100 != 2 {
                    return Err(std::io::Error::other(format!(
                        "proxy {}:{} refused CONNECT {authority}: status {code}",
                        target.host, target.port
                    )));
                }
                if n != buf.len() {
                    return Err(std::io::Error::other(
                        "proxy sent bytes after its CONNECT response",
                    ));
                }
                return Ok(());
            }
            Ok(httparse::Status::Partial) if buf.len() < MAX_CONNECT_RESPONSE_BYTES => {}
            Ok(httparse::Status::Partial) => {
                return Err(std::io::Error::other(
                    "proxy CONNECT response head too large",
                ));
            }
            Err(e) => {
                return Err(std::io::Error::other(format!(
                    "malformed proxy CONNECT response: {e}"
                )));
            }
        }
        let (r, b) = crate::io::read_more(tcp, buf, 1024).await;
        buf = b;
        if r? == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "proxy closed the connection during CONNECT",
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_urls_parse_with_credentials_and_default_port() {
        let t = parse_proxy_url("http://us%40er:p%3Ass@proxy.local:3128").unwrap();
        assert_eq!(t.host, "proxy.local");
        assert_eq!(t.port, 3128);
        // base64("us@er:p:ss")
        assert_eq!(t.authorization.as_deref(), Some("Basic dXNAZXI6cDpzcw=="));
        let t = parse_proxy_url("http://proxy.local/").unwrap();
        assert_eq!((t.port, t.authorization), (80, None));
        let t = parse_proxy_url("proxy.local:8080").unwrap();
        assert_eq!(t.port, 8080);
        assert_eq!(
            parse_proxy_url("socks5://p:1080"),
            Err(ProxyError::Scheme("socks5".into()))
        );
        assert_eq!(parse_proxy_url("http://:80"), Err(ProxyError::NoHost));
    }

    #[test]
    fn no_proxy_matches_hosts_domains_ips_cidrs_and_ports() {
        for (list, host, port, want) in [
            ("example.com", "example.com", 443, true),
            ("example.com", "api.example.com", 443, true),
            ("example.com", "notexample.com", 443, false),
            (".example.com", "example.com", 443, false),
            (".example.com", "api.example.com", 443, true),
            ("10.0.0.0/8", "10.1.2.3", 80, true),
            ("10.0.0.0/8", "11.1.2.3", 80, false),
            ("192.168.1.5", "192.168.1.5", 80, true),
            ("example.com:8443", "example.com", 443, false),
            ("example.com:8443", "example.com", 8443, true),
            ("a.test, b.test", "b.test", 1, true),
            ("*", "anything", 1, true),
            ("", "anything", 1, false),
            ("fd00::/8", "fd12::1", 1, true),
        ] {
            assert_eq!(
                no_proxy_matches(list, host, port),
                want,
                "{list} vs {host}:{port}"
            );
        }
    }

    #[test]
    fn selection_follows_prometheus_rules() {
        let explicit = Proxy {
            proxy_url: Some("http://p:3128".into()),
            ..Proxy::default()
        };
        let none = |_: &str| None;
        // proxy_url alone proxies everything, loopback included (http.ProxyURL).
        assert!(
            select(&explicit, false, "127.0.0.1", 80, &none)
                .unwrap()
                .is_some()
        );
        let with_no = Proxy {
            no_proxy: Some("internal.test".into()),
            ..explicit.clone()
        };
        assert!(
            select(&with_no, true, "api.internal.test", 443, &none)
                .unwrap()
                .is_none()
        );
        assert!(
            select(&with_no, true, "127.0.0.1", 443, &none)
                .unwrap()
                .is_none()
        );
        assert!(
            select(&with_no, true, "cloud.test", 443, &none)
                .unwrap()
                .is_some()
        );
        let env_cfg = Proxy {
            proxy_from_environment: true,
            ..Proxy::default()
        };
        let env = |k: &str| match k {
            "HTTPS_PROXY" => Some("http://secure:1".to_string()),
            "http_proxy" => Some("http://plain:2".to_string()),
            "NO_PROXY" => Some(".skip.test".to_string()),
            _ => None,
        };
        assert_eq!(
            select(&env_cfg, true, "a.test", 443, &env)
                .unwrap()
                .unwrap()
                .host,
            "secure"
        );
        assert_eq!(
            select(&env_cfg, false, "a.test", 80, &env)
                .unwrap()
                .unwrap()
                .host,
            "plain"
        );
        assert!(
            select(&env_cfg, true, "x.skip.test", 443, &env)
                .unwrap()
                .is_none()
        );
        assert!(
            select(&env_cfg, true, "localhost", 443, &env)
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn connect_request_carries_proxy_authorization() {
        let t = parse_proxy_url("http://u:p@proxy:3128").unwrap();
        let req = connect_request(&t, "upstream.test:443", &[]);
        assert_eq!(
            &req[..],
            b"CONNECT upstream.test:443 HTTP/1.1\r\nHost: upstream.test:443\r\nProxy-Authorization: Basic dTpw\r\n\r\n"
        );
    }
}
