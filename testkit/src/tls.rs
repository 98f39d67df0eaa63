//! TLS fixtures: a private PKI made at test time (rcgen), rustls server and client settings
//! from it, an HTTP CONNECT proxy stand-in, a blocking TLS client for the receiver side, and an
//! atomic file replace for secret rotation.
//!
//! Owns: certificates written as PEM files into a temp dir, the recorded CONNECT heads, and the
//! proxy's threads (torn down with the process; every socket has a timeout). Does not own the
//! TLS upstream: that is the one stand-in, [`crate::server::MockPyroscope`] with
//! [`crate::server::MockBuilder::tls`]. Written on rustls directly, independently of
//! `pyrogate::tls`. Test code: std threads, blocking sockets.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::http::{RequestHead, head_end, parse_request_head};

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

/// Socket timeout of every stand-in and client read/write.
const IO_TIMEOUT: Duration = Duration::from_secs(15);

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A CA, a server certificate for `localhost`/`127.0.0.1` and a client certificate, all signed
/// by the CA, plus an unrelated self-signed server certificate; PEM files in `dir`.
#[derive(Debug)]
pub struct Pki {
    pub dir: tempfile::TempDir,
    pub ca_pem: String,
    pub server_cert: String,
    pub server_key: String,
    pub client_cert: String,
    pub client_key: String,
    pub rogue_cert: String,
    pub rogue_key: String,
}

impl Default for Pki {
    fn default() -> Pki {
        Pki::new()
    }
}

impl Pki {
    pub fn new() -> Pki {
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "pyrogate test CA");
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
        let leaf = |names: Vec<String>, cn: &str| {
            let key = KeyPair::generate().unwrap();
            let mut p = CertificateParams::new(names).unwrap();
            p.distinguished_name.push(DnType::CommonName, cn);
            let cert = p.signed_by(&key, &ca).unwrap();
            (cert.pem(), key.serialize_pem())
        };
        let (server_cert, server_key) = leaf(
            vec![
                "localhost".into(),
                "127.0.0.1".into(),
                "upstream.test".into(),
            ],
            "upstream",
        );
        let (client_cert, client_key) = leaf(vec!["client.test".into()], "client");
        let rogue_key = KeyPair::generate().unwrap();
        let rogue = CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()])
            .unwrap()
            .self_signed(&rogue_key)
            .unwrap();
        let pki = Pki {
            dir: tempfile::tempdir().unwrap(),
            ca_pem: ca.pem(),
            server_cert,
            server_key,
            client_cert,
            client_key,
            rogue_cert: rogue.pem(),
            rogue_key: rogue_key.serialize_pem(),
        };
        for (name, text) in [
            ("ca.pem", &pki.ca_pem),
            ("server.pem", &pki.server_cert),
            ("server-key.pem", &pki.server_key),
            ("client.pem", &pki.client_cert),
            ("client-key.pem", &pki.client_key),
            ("rogue.pem", &pki.rogue_cert),
            ("rogue-key.pem", &pki.rogue_key),
        ] {
            std::fs::write(pki.dir.path().join(name), text).unwrap();
        }
        pki
    }

    /// The path of one of the PEM files written by [`Pki::new`].
    pub fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }

    fn roots(&self) -> rustls::RootCertStore {
        let mut roots = rustls::RootCertStore::empty();
        for c in CertificateDer::pem_slice_iter(self.ca_pem.as_bytes()) {
            roots.add(c.unwrap()).unwrap();
        }
        roots
    }

    /// Server settings for a stand-in: `rogue` serves the self-signed certificate; with
    /// `require_client_cert`, clients must present a certificate signed by the CA.
    pub fn server_config(
        &self,
        rogue: bool,
        require_client_cert: bool,
    ) -> Arc<rustls::ServerConfig> {
        let (cert, key) = if rogue {
            (&self.rogue_cert, &self.rogue_key)
        } else {
            (&self.server_cert, &self.server_key)
        };
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert.as_bytes())
            .map(|c| c.unwrap())
            .collect();
        let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap();
        let b = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap();
        let b = if require_client_cert {
            let v = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(self.roots()),
                provider(),
            )
            .build()
            .unwrap();
            b.with_client_cert_verifier(v)
        } else {
            b.with_no_client_auth()
        };
        Arc::new(b.with_single_cert(chain, key).unwrap())
    }

    /// Client settings trusting the CA, with the client certificate when `with_cert`.
    pub fn client_config(&self, with_cert: bool) -> Arc<rustls::ClientConfig> {
        let b = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(self.roots());
        Arc::new(if with_cert {
            let chain = CertificateDer::pem_slice_iter(self.client_cert.as_bytes())
                .map(|c| c.unwrap())
                .collect();
            let key = PrivateKeyDer::from_pem_slice(self.client_key.as_bytes()).unwrap();
            b.with_client_auth_cert(chain, key).unwrap()
        } else {
            b.with_no_client_auth()
        })
    }
}

/// An HTTP CONNECT proxy stand-in that tunnels every CONNECT to `target`, whatever authority
/// was asked for, and records each CONNECT head.
#[derive(Debug)]
pub struct ConnectProxy {
    pub addr: SocketAddr,
    connects: Arc<Mutex<Vec<RequestHead>>>,
}

impl ConnectProxy {
    pub fn start(target: SocketAddr) -> ConnectProxy {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let connects = Arc::new(Mutex::new(Vec::new()));
        let rec = connects.clone();
        std::thread::spawn(move || {
            for s in l.incoming() {
                let Ok(mut client) = s else { continue };
                let rec = rec.clone();
                std::thread::spawn(move || {
                    client.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    let req = loop {
                        if let Some(end) = head_end(&buf) {
                            let Ok(head) = parse_request_head(&buf[..end]) else {
                                return;
                            };
                            buf.drain(..end);
                            break head;
                        }
                        match client.read(&mut chunk) {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    };
                    rec.lock().unwrap().push(req);
                    let Ok(mut up) = TcpStream::connect(target) else {
                        let _ = client.write_all(b"HTTP/1.1 502 Bad Gateway\r\n\r\n");
                        return;
                    };
                    client
                        .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                        .unwrap();
                    let _ = up.write_all(&buf);
                    client.set_read_timeout(None).unwrap();
                    let (mut c2, mut u2) = (client.try_clone().unwrap(), up.try_clone().unwrap());
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut u2, &mut c2);
                        let _ = c2.shutdown(std::net::Shutdown::Write);
                    });
                    let _ = std::io::copy(&mut client, &mut up);
                    let _ = up.shutdown(std::net::Shutdown::Write);
                });
            }
        });
        ConnectProxy { addr, connects }
    }

    pub fn connects(&self) -> Vec<RequestHead> {
        self.connects.lock().unwrap().clone()
    }
}

/// Sends `request` over TLS to `addr` and returns the whole response text, or the error the
/// TLS or socket layer reported.
pub fn tls_roundtrip(
    addr: SocketAddr,
    config: Arc<rustls::ClientConfig>,
    request: &[u8],
) -> Result<String, String> {
    let tcp = TcpStream::connect(addr).map_err(|e| e.to_string())?;
    tcp.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    let conn = rustls::ClientConnection::new(config, name).map_err(|e| e.to_string())?;
    let mut s = rustls::StreamOwned::new(conn, tcp);
    s.write_all(request).map_err(|e| e.to_string())?;
    s.flush().map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match s.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => {
                out.extend_from_slice(&chunk[..n]);
                let text = String::from_utf8_lossy(&out);
                if let Some(h) = text.find("\r\n\r\n") {
                    let cl: usize = text[..h]
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length: ")
                                .map(str::to_string)
                        })
                        .and_then(|v| v.trim().parse().ok())
                        .unwrap_or(0);
                    if out.len() >= h + 4 + cl {
                        break;
                    }
                }
            }
            Err(e) if out.is_empty() => return Err(e.to_string()),
            Err(_) => break,
        }
    }
    if out.is_empty() {
        return Err("connection closed without a response".into());
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// Writes `text` to `path` atomically (a new inode, as a Kubernetes secret update does).
pub fn replace_file(path: &std::path::Path, text: &str) {
    let tmp: PathBuf = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}
