//! TLS settings: rustls client and server configurations built from `tls_config` (endpoints)
//! and `http > tls` (receivers).
//!
//! Owns: loading PEM certificates and keys (inline or from files), checking at start that each
//! one parses and that a key matches its certificate, choosing the trust roots (the system
//! store; the bundled Mozilla roots only when the system store is empty), the
//! `insecure_skip_verify` verifier, `min_version`, and mapping Go's `client_auth_type` values to
//! rustls client verifiers. Everything here runs once, on the main thread, before the cores
//! start; errors name the file (or the inline attribute) at fault. Does not own the record
//! layer over sockets ([`stream`]). Cold path. The crypto provider is `ring` (no OpenSSL, no
//! cmake/nasm toolchain).

pub mod stream;

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{
    ClientConfig, DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig,
    SignatureScheme,
};

use crate::config::{ClientTls, ServerTls, TlsVersion};

/// Why a TLS configuration could not be built. Messages name the file or attribute.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("reading {what} {path}: {error}")]
    Read {
        what: &'static str,
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{origin}: no PEM {what} found")]
    NoPem { what: &'static str, origin: String },
    #[error("{origin}: unparsable PEM {what}: {detail}")]
    BadPem {
        what: &'static str,
        origin: String,
        detail: String,
    },
    #[error("key {key} does not match certificate {cert}")]
    KeyMismatch { cert: String, key: String },
    #[error("{origin}: unsupported private key: {detail}")]
    UnsupportedKey { origin: String, detail: String },
    #[error(
        "min_version {0} is not supported: pyrogate's TLS library implements TLS 1.2 and 1.3 only (use \"TLS12\" or \"TLS13\")"
    )]
    UnsupportedVersion(&'static str),
    #[error("client_auth_type {0} needs client_ca_file or client_ca")]
    ClientCaRequired(String),
    #[error("client CA {origin}: {detail}")]
    ClientCa { origin: String, detail: String },
    #[error("a certificate and a key are both required, only the {0} is configured")]
    HalfPair(&'static str),
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
}

/// Where a PEM blob comes from: its text, and a name for error messages.
struct Pem {
    text: Vec<u8>,
    origin: String,
}

fn pem_of(
    what: &'static str,
    inline: Option<&str>,
    inline_name: &str,
    file: Option<&Path>,
) -> Result<Option<Pem>, TlsError> {
    if let Some(p) = file {
        let text = std::fs::read(p).map_err(|error| TlsError::Read {
            what,
            path: p.to_path_buf(),
            error,
        })?;
        return Ok(Some(Pem {
            text,
            origin: p.display().to_string(),
        }));
    }
    Ok(inline.map(|t| Pem {
        text: t.as_bytes().to_vec(),
        origin: inline_name.to_string(),
    }))
}

fn certs_of(pem: &Pem, what: &'static str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(&pem.text)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::BadPem {
            what,
            origin: pem.origin.clone(),
            detail: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoPem {
            what,
            origin: pem.origin.clone(),
        });
    }
    Ok(certs)
}

fn key_of(pem: &Pem) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_slice(&pem.text).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => TlsError::NoPem {
            what: "private key",
            origin: pem.origin.clone(),
        },
        e => TlsError::BadPem {
            what: "private key",
            origin: pem.origin.clone(),
            detail: e.to_string(),
        },
    })
}

/// The process-wide crypto provider (`ring`).
pub fn provider() -> Arc<CryptoProvider> {
    static P: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    P.get_or_init(|| Arc::new(rustls::crypto::ring::default_provider()))
        .clone()
}

fn versions(
    min: Option<TlsVersion>,
) -> Result<&'static [&'static rustls::SupportedProtocolVersion], TlsError> {
    static BOTH: &[&rustls::SupportedProtocolVersion] =
        &[&rustls::version::TLS13, &rustls::version::TLS12];
    static TLS13: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS13];
    match min {
        Some(TlsVersion::Tls10) => Err(TlsError::UnsupportedVersion("TLS10")),
        Some(TlsVersion::Tls11) => Err(TlsError::UnsupportedVersion("TLS11")),
        Some(TlsVersion::Tls13) => Ok(TLS13),
        Some(TlsVersion::Tls12) | None => Ok(BOTH),
    }
}

/// A certificate chain and its key, loaded and checked to match.
fn certified(
    cert: Pem,
    key: Pem,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), TlsError> {
    let chain = certs_of(&cert, "certificate")?;
    let der = key_of(&key)?;
    let signer = provider()
        .key_provider
        .load_private_key(der.clone_key())
        .map_err(|e| TlsError::UnsupportedKey {
            origin: key.origin.clone(),
            detail: e.to_string(),
        })?;
    let ck = rustls::sign::CertifiedKey::new(chain.clone(), signer);
    match ck.keys_match() {
        Ok(()) => {}
        // The key type cannot tell its public key: nothing to compare, rustls checks at use.
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {}
        Err(_) => {
            return Err(TlsError::KeyMismatch {
                cert: cert.origin,
                key: key.origin,
            });
        }
    }
    Ok((chain, der))
}

/// The certificate chain and key of one side of a connection, each from its file or its
/// inline attribute (`<attrs>.cert_pem`, `<attrs>.key_pem` in errors); `None` when neither
/// is configured, an error when only one is.
fn cert_and_key(
    attrs: &str,
    cert_pem: Option<&str>,
    cert_file: Option<&Path>,
    key_pem: Option<&str>,
    key_file: Option<&Path>,
) -> Result<Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>, TlsError> {
    let cert = pem_of(
        "certificate file",
        cert_pem,
        &format!("{attrs}.cert_pem"),
        cert_file,
    )?;
    let key = pem_of("key file", key_pem, &format!("{attrs}.key_pem"), key_file)?;
    match (cert, key) {
        (Some(c), Some(k)) => certified(c, k).map(Some),
        (None, None) => Ok(None),
        (Some(_), None) => Err(TlsError::HalfPair("certificate")),
        (None, Some(_)) => Err(TlsError::HalfPair("key")),
    }
}

/// A trust store of every certificate in `pem` (`what` names them in errors); `refused` makes
/// the caller's error, from the origin and rustls' reason, for a certificate rustls rejects.
fn roots_of(
    pem: &Pem,
    what: &'static str,
    refused: impl Fn(String, String) -> TlsError,
) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for c in certs_of(pem, what)? {
        roots
            .add(c)
            .map_err(|e| refused(pem.origin.clone(), e.to_string()))?;
    }
    Ok(roots)
}

/// The trust roots used when `tls_config` names no CA: the system store, or Mozilla's roots
/// (webpki-roots) when the system store has no usable certificate.
fn default_roots() -> RootCertStore {
    let mut roots = RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    let (added, _ignored) = roots.add_parsable_certificates(native.certs);
    if added == 0 {
        tracing::warn!(
            "the system certificate store is empty; trusting the bundled Mozilla roots (webpki-roots)"
        );
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    }
    roots
}

/// Builds the client configuration of one endpoint (or an OAuth2 token URL). As Go's
/// `crypto/tls`, a configured CA replaces the system roots rather than adding to them.
pub fn client_config(t: Option<&ClientTls>) -> Result<Arc<ClientConfig>, TlsError> {
    // The default (system roots) is shared: the system store is read once.
    static DEFAULT: OnceLock<Arc<ClientConfig>> = OnceLock::new();
    match t {
        None => {
            if let Some(c) = DEFAULT.get() {
                return Ok(c.clone());
            }
            let c = build_client_config(&ClientTls::default())?;
            Ok(DEFAULT.get_or_init(|| c).clone())
        }
        Some(t) => build_client_config(t),
    }
}

fn build_client_config(t: &ClientTls) -> Result<Arc<ClientConfig>, TlsError> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(versions(t.min_version)?)?;
    let builder = if t.insecure_skip_verify {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerify {
                algs: provider().signature_verification_algorithms,
            }))
    } else {
        let ca = pem_of(
            "CA file",
            t.ca_pem.as_deref(),
            "tls_config.ca_pem",
            t.ca_file.as_deref(),
        )?;
        let roots = match ca {
            Some(pem) => roots_of(&pem, "CA certificate", |origin, detail| TlsError::BadPem {
                what: "CA certificate",
                origin,
                detail,
            })?,
            None => default_roots(),
        };
        builder.with_root_certificates(roots)
    };
    let mut config = match cert_and_key(
        "tls_config",
        t.cert_pem.as_deref(),
        t.cert_file.as_deref(),
        t.key_pem.as_ref().map(|s| s.0.as_str()),
        t.key_file.as_deref(),
    )? {
        Some((chain, key)) => builder.with_client_auth_cert(chain, key)?,
        None => builder.with_no_client_auth(),
    };
    // HTTP/1.1 only: the upstream transport speaks no h2 (see the README).
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The SNI name and verified identity for `host`, or `server_name` when configured.
pub fn server_name(t: Option<&ClientTls>, host: &str) -> Result<ServerName<'static>, TlsError> {
    let name = t.and_then(|t| t.server_name.as_deref()).unwrap_or(host);
    ServerName::try_from(name.to_string()).map_err(|e| TlsError::BadPem {
        what: "server name",
        origin: name.to_string(),
        detail: e.to_string(),
    })
}

/// Builds a receiver's server configuration; `None` when the `tls` block has neither a
/// certificate nor a key (Alloy enables TLS only when both are set).
pub fn server_config(t: &ServerTls) -> Result<Option<Arc<ServerConfig>>, TlsError> {
    let Some((chain, key)) = cert_and_key(
        "tls",
        t.cert_pem.as_ref().map(|s| s.0.as_str()),
        t.cert_file.as_deref(),
        t.key_pem.as_ref().map(|s| s.0.as_str()),
        t.key_file.as_deref(),
    )?
    else {
        return Ok(None);
    };
    let builder = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(versions(t.min_version)?)?;
    let kind = t.client_auth_type.as_deref().unwrap_or("NoClientCert");
    let builder = match kind {
        "RequestClientCert" | "RequireAnyClientCert" => {
            builder.with_client_cert_verifier(Arc::new(AnyClientCert {
                mandatory: kind == "RequireAnyClientCert",
                algs: provider().signature_verification_algorithms,
            }))
        }
        "VerifyClientCertIfGiven" | "RequireAndVerifyClientCert" => {
            let ca = pem_of(
                "client CA file",
                t.client_ca.as_deref(),
                "tls.client_ca",
                t.client_ca_file.as_deref(),
            )?
            .ok_or_else(|| TlsError::ClientCaRequired(kind.to_string()))?;
            let roots = roots_of(&ca, "client CA certificate", |origin, detail| {
                TlsError::ClientCa { origin, detail }
            })?;
            let v = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider());
            let v = if kind == "VerifyClientCertIfGiven" {
                v.allow_unauthenticated()
            } else {
                v
            };
            let v = v.build().map_err(|e| TlsError::ClientCa {
                origin: ca.origin.clone(),
                detail: e.to_string(),
            })?;
            builder.with_client_cert_verifier(v)
        }
        _ => builder.with_no_client_auth(),
    };
    let mut config = builder.with_single_cert(chain, key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Some(Arc::new(config)))
}

/// The handshake-signature half of rustls' `ServerCertVerifier` and `ClientCertVerifier`,
/// the same for both: rustls' own TLS 1.2 / 1.3 checks with the verifier's `algs`, so a
/// peer must still hold the key of the certificate it sent.
macro_rules! signature_checks_by_algs {
    () => {
        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algs)
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algs)
        }

        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.algs.supported_schemes()
        }
    };
}

/// `insecure_skip_verify`: accepts any server certificate, but still checks that the peer
/// holds the key of the certificate it sent (handshake signatures), as Go does.
#[derive(Debug)]
struct NoVerify {
    algs: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    signature_checks_by_algs!();
}

/// Go's `RequestClientCert` / `RequireAnyClientCert`: a client certificate is asked for (and
/// required by the second) but not verified against any CA.
#[derive(Debug)]
struct AnyClientCert {
    mandatory: bool,
    algs: WebPkiSupportedAlgorithms,
}

impl ClientCertVerifier for AnyClientCert {
    fn client_auth_mandatory(&self) -> bool {
        self.mandatory
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    signature_checks_by_algs!();
}
