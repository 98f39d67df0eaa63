//! How an endpoint's connections are made secure and authenticated: TLS, the egress proxy
//! and the `Authorization` source, prepared once at start and shared by every core.
//!
//! Owns: [`Transport`] (built on the main thread by [`prepare`], so a missing certificate, an
//! unparsable PEM, a key that does not match, an unsupported proxy or an unreadable secret
//! file stops the start with the file named), the address a destination dials (the proxy's
//! when one is used), and [`establish`]: CONNECT through the proxy, then the TLS handshake,
//! over a freshly connected socket. Does not own: pooling and retries ([`super::sender`]),
//! PEM and verifier details ([`crate::tls`]). Cold path except `establish`, once per
//! connection.

use std::sync::Arc;

use monoio::net::TcpStream;
use rustls::ClientConfig;
use rustls::pki_types::ServerName;

use super::proxy::{self, ProxyTarget};
use crate::config::{Auth, Endpoint, EndpointUrl};
use crate::secrets::{self, AuthCell, FileWatch};
use crate::tls::stream::{Stream, TlsStream};
use crate::tls::{self, TlsError};

/// An endpoint's connection settings, shared by all cores.
#[derive(Debug)]
pub struct Transport {
    /// Client TLS settings (also used for https redirect targets).
    pub tls: Option<Arc<ClientConfig>>,
    /// SNI and verified name for the endpoint's own host; `None` for `http://`.
    pub server_name: Option<ServerName<'static>>,
    /// The proxy for the endpoint's own host.
    pub proxy: Option<ProxyTarget>,
    /// `proxy_connect_header`, sent with every CONNECT.
    pub proxy_headers: Vec<(String, String)>,
    /// `host:port` of the endpoint, as written in CONNECT.
    pub authority: String,
    pub auth: Arc<AuthCell>,
    /// How the dial target's name is resolved (`hosts_file`, then the system).
    pub resolver: super::resolve::Resolver,
    /// Whether the endpoint is failing, as every core sees it (the down/up log lines).
    pub health: super::Health,
}

impl Default for Transport {
    fn default() -> Self {
        Transport {
            tls: None,
            server_name: None,
            proxy: None,
            proxy_headers: Vec::new(),
            authority: String::new(),
            auth: AuthCell::new(secrets::AuthValue::None),
            resolver: super::resolve::Resolver::default(),
            health: super::Health::default(),
        }
    }
}

/// Why an endpoint's transport could not be prepared.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("tls_config: {0}")]
    Tls(#[from] TlsError),
    #[error("{0}")]
    Auth(#[from] secrets::AuthError),
    #[error("proxy: {0}")]
    Proxy(#[from] proxy::ProxyError),
    #[error("oauth2: {0}")]
    OAuth2(String),
    #[error("{0}")]
    HostsFile(std::io::Error),
}

/// `host:port` with IPv6 literals bracketed.
pub fn authority(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// Everything [`prepare`] produced: one transport per endpoint (writer order, then endpoint
/// order), plus the secret files to watch.
#[derive(Debug, Default)]
pub struct Prepared {
    pub transports: Vec<Arc<Transport>>,
    pub watches: Vec<FileWatch>,
}

/// Builds one endpoint's transport (main thread, at start).
pub fn build(
    e: &Endpoint,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(Transport, Option<FileWatch>), TransportError> {
    let EndpointUrl::Http {
        tls: https,
        host,
        port,
        ..
    } = &e.url
    else {
        return Ok((Transport::default(), None));
    };
    // Also for http:// endpoints: a redirect may lead to https.
    let tls = Some(tls::client_config(e.tls.as_ref())?);
    let server_name = if *https {
        Some(tls::server_name(e.tls.as_ref(), host)?)
    } else {
        None
    };
    let proxy = proxy::select(&e.proxy, *https, host, *port, env)?;
    let proxy_headers = e
        .proxy
        .proxy_connect_header
        .iter()
        .flat_map(|(n, vs)| vs.iter().map(move |v| (n.clone(), v.0.clone())))
        .collect();
    let (cell, watch) = secrets::build(e)?;
    if let Some(Auth::OAuth2(o)) = &e.auth
        && !e
            .headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case("authorization"))
    {
        super::oauth2::spawn(o.clone(), e.url_text.clone(), cell.clone())
            .map_err(|err| TransportError::OAuth2(err.to_string()))?;
    }
    if e.tls.as_ref().is_some_and(|t| t.insecure_skip_verify) {
        tracing::warn!(
            endpoint = %e.url_text,
            "TLS CERTIFICATE VERIFICATION IS DISABLED (insecure_skip_verify = true): any server can impersonate this endpoint"
        );
    }
    Ok((
        Transport {
            tls,
            server_name,
            proxy,
            proxy_headers,
            authority: authority(host, *port),
            auth: cell,
            resolver: super::resolve::Resolver::default(),
            health: super::Health::default(),
        },
        watch,
    ))
}

/// Prepares every endpoint of `config`.
pub fn prepare(config: &crate::config::Config) -> Result<Prepared, (String, TransportError)> {
    let env = |k: &str| std::env::var(k).ok();
    let resolver = super::resolve::Resolver::new(config.gateway.hosts_file.clone());
    let mut out = Prepared::default();
    for w in &config.writers {
        for e in &w.endpoints {
            let (mut t, watch) = build(e, &env).map_err(|err| (e.url_text.clone(), err))?;
            resolver
                .check()
                .map_err(|err| (e.url_text.clone(), TransportError::HostsFile(err)))?;
            t.resolver = resolver.clone();
            out.transports.push(Arc::new(t));
            out.watches.extend(watch);
        }
    }
    Ok(out)
}

/// The host and port a destination dials: its proxy's, or its own.
pub fn dial_target(t: &Transport, e: &Endpoint) -> Option<(String, u16)> {
    match (&t.proxy, &e.url) {
        (Some(p), _) => Some((p.host.clone(), p.port)),
        (None, EndpointUrl::Http { host, port, .. }) => Some((host.clone(), *port)),
        (None, EndpointUrl::Capture { .. }) => None,
    }
}

/// Turns a socket connected to the dial target into a connection to `authority`: CONNECT
/// through `proxy` when set, then TLS when `name` is set.
pub async fn establish_to(
    mut tcp: TcpStream,
    proxy: Option<&ProxyTarget>,
    proxy_headers: &[(String, String)],
    authority: &str,
    tls: Option<(&Arc<ClientConfig>, ServerName<'static>)>,
) -> std::io::Result<Stream> {
    if let Some(p) = proxy {
        proxy::tunnel(&mut tcp, p, authority, proxy_headers).await?;
    }
    match tls {
        Some((config, name)) => Ok(Stream::Tls(Box::new(
            TlsStream::connect(tcp, config.clone(), name).await?,
        ))),
        None => Ok(Stream::Plain(tcp)),
    }
}

/// [`establish_to`] for the endpoint's own host.
pub async fn establish(t: &Transport, tcp: TcpStream) -> std::io::Result<Stream> {
    let tls = match (&t.tls, &t.server_name) {
        (Some(c), Some(n)) => Some((c, n.clone())),
        _ => None,
    };
    establish_to(tcp, t.proxy.as_ref(), &t.proxy_headers, &t.authority, tls).await
}
