//! TLS on a receiver's listener (`http > tls`).
//!
//! Owns: building each receiver's rustls server configuration at start (main thread; a bad
//! certificate or key stops the start with the file named) and, per accepted connection, the
//! handshake — bounded by `server_read_timeout`, as Go's `ReadTimeout` covers it — or Go's
//! `400 Client sent an HTTP request to an HTTPS server.` for a plain-HTTP client. Does not own
//! the record layer ([`crate::tls::stream`]). Runs once per connection.

use std::sync::Arc;

use monoio::net::TcpStream;
use rustls::ServerConfig;

use super::ReceiverRt;
use crate::config::Config;
use crate::tls::stream::{Stream, accept_tls};
use crate::tls::{self, TlsError};

/// Everything a receiver needs from start-up, shared by all cores.
#[derive(Debug, Clone, Default)]
pub struct Prepared {
    /// `None`: plain HTTP.
    pub tls: Option<Arc<ServerConfig>>,
    pub client_auth: Option<super::client_auth::Prepared>,
}

/// Why a receiver's security settings could not be prepared.
#[derive(Debug, thiserror::Error)]
pub enum PrepareError {
    #[error("http > tls: {0}")]
    Tls(#[from] TlsError),
    #[error("client_auth: {0}")]
    ClientAuth(#[from] crate::secrets::AuthError),
}

/// Prepares every receiver (in `config.receivers` order); also returns the secret files to
/// watch.
pub fn prepare_all(
    config: &Config,
) -> Result<(Vec<Prepared>, Vec<crate::secrets::FileWatch>), (String, PrepareError)> {
    let tls = prepare(config).map_err(|(r, e)| (r, PrepareError::Tls(e)))?;
    let mut out = Vec::new();
    let mut watches = Vec::new();
    for (r, tls) in config.receivers.iter().zip(tls) {
        let client_auth = match &r.client_auth {
            None => None,
            Some(c) => {
                let (p, w) = super::client_auth::prepare(c)
                    .map_err(|e| (r.label.clone(), PrepareError::ClientAuth(e)))?;
                watches.extend(w);
                Some(p)
            }
        };
        out.push(Prepared { tls, client_auth });
    }
    Ok((out, watches))
}

/// One server configuration per receiver (`None`: plain HTTP), in `config.receivers` order.
pub fn prepare(config: &Config) -> Result<Vec<Option<Arc<ServerConfig>>>, (String, TlsError)> {
    config
        .receivers
        .iter()
        .map(|r| match &r.http.tls {
            None => Ok(None),
            Some(t) => {
                let c = tls::server_config(t).map_err(|e| (r.label.clone(), e))?;
                if c.is_none() {
                    tracing::warn!(receiver = %r.label, "http > tls has no certificate and key: serving plain HTTP (as Alloy does)");
                }
                Ok(c)
            }
        })
        .collect()
}

/// The connection to serve: `tcp` itself, or TLS over it once the handshake is done. `None`
/// when the connection is to be closed (handshake failure or timeout, plain HTTP answered).
pub async fn wrap(rx: &ReceiverRt, tcp: TcpStream) -> Option<Stream> {
    let Some(config) = rx.live().tls.clone() else {
        return Some(Stream::Plain(tcp));
    };
    match monoio::time::timeout(rx.config.http.server_read_timeout, accept_tls(tcp, config)).await {
        Ok(Ok(Some(t))) => Some(Stream::Tls(Box::new(t))),
        Ok(Ok(None)) => None,
        Ok(Err(e)) => {
            tracing::debug!(receiver = %rx.config.label, error = %e, "TLS handshake failed");
            None
        }
        Err(_) => {
            tracing::debug!(receiver = %rx.config.label, "TLS handshake timed out");
            None
        }
    }
}
