//! The TLS tests' fixtures under their old names: the kit's PKI, CONNECT proxy and TLS client,
//! and `Upstream` — the kit's one Pyroscope stand-in configured as a plain recording upstream
//! (no Pyroscope rules: these tests send transport payloads, not profiles), over TLS or TCP.
//!
//! Owns: that configuration only. Does not own a server: [`testkit::server`] does.

use std::net::SocketAddr;
use std::sync::Arc;

use testkit::MockPyroscope;
pub use testkit::http::status_response;
pub use testkit::server::Recorded as Req;
pub use testkit::tls::{ConnectProxy, Pki, replace_file, tls_roundtrip};

/// How the stand-in answers a request: the full response bytes.
pub type Responder = Arc<dyn Fn(&Req, SocketAddr) -> Vec<u8> + Send + Sync>;

/// A recording upstream over TLS (`config`) or plain TCP (`None`); derefs to the stand-in.
#[derive(Debug)]
pub struct Upstream {
    pub addr: SocketAddr,
    mock: MockPyroscope,
}

impl Upstream {
    /// Answers 200 to everything.
    pub fn start(config: Option<Arc<rustls::ServerConfig>>) -> Upstream {
        Self::from_builder(config, MockPyroscope::builder())
    }

    /// Answers each request with `respond`.
    pub fn start_with(config: Option<Arc<rustls::ServerConfig>>, respond: Responder) -> Upstream {
        let builder =
            MockPyroscope::builder().handler(Arc::new(move |r, view| Some(respond(r, view.addr))));
        Self::from_builder(config, builder)
    }

    fn from_builder(
        config: Option<Arc<rustls::ServerConfig>>,
        builder: testkit::server::MockBuilder,
    ) -> Upstream {
        let builder = builder.accept_anything();
        let mock = match config {
            Some(c) => builder.tls(c),
            None => builder,
        }
        .start();
        Upstream {
            addr: mock.addr(),
            mock,
        }
    }
}

impl std::ops::Deref for Upstream {
    type Target = MockPyroscope;

    fn deref(&self) -> &MockPyroscope {
        &self.mock
    }
}
