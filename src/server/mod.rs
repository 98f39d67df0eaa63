//! The downstream side: one listener per receiver per core, the connection cap, and the
//! accept loop.
//!
//! Owns: accepting connections on this core's SO_REUSEPORT socket for each
//! `pyroscope.receive_http`, enforcing `conn_limit` the way Alloy does (over the limit, new
//! connections wait in the kernel's accept backlog rather than being refused), and spawning a
//! task per connection. Does not own: HTTP handling ([`conn`], [`ingest`]). The per-core share
//! of `conn_limit` is `ceil(conn_limit / cores)`.

pub mod client_auth;
pub mod conn;
pub mod ingest;
pub mod push;
pub mod tls;

use std::cell::Cell;
use std::rc::Rc;
use std::sync::Arc;

use monoio::net::TcpListener;

use std::time::Duration;

use crate::budget::Budget;
use crate::config::Receiver;
use crate::h1;
use crate::metrics::ReceiverMetrics;
use crate::pipeline::Pipeline;
use crate::sync::Notify;
use crate::sync::Shutdown;

/// What every connection on one core shares.
#[derive(Debug)]
pub struct Shared {
    /// The in-flight byte budget, reserved before a body is read.
    pub(crate) budget: Rc<Budget>,
    pub(crate) shutdown: Rc<Shutdown>,
    /// How long a request waits for room in a full budget or queue (`queue_wait_timeout`).
    pub(crate) queue_wait_timeout: Duration,
}

impl Shared {
    pub fn new(budget: Rc<Budget>, shutdown: Rc<Shutdown>, queue_wait_timeout: Duration) -> Self {
        Shared {
            budget,
            shutdown,
            queue_wait_timeout,
        }
    }
}

/// One receiver on one core.
#[derive(Debug)]
pub struct ReceiverRt {
    pub index: usize,
    pub config: Receiver,
    pub limits: h1::Limits,
    pub metrics: ReceiverMetrics,
    /// This core's share of `conn_limit` (0 = unlimited).
    pub conn_limit: usize,
    pub active: Cell<usize>,
    /// Woken whenever a connection of this receiver closes.
    pub conn_closed: Notify,
    /// TLS settings when the receiver serves HTTPS.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Client authentication (`client_auth`).
    pub client_auth: Option<client_auth::Check>,
    /// Where this receiver's uploads go.
    pub pipeline: Pipeline,
}

impl ReceiverRt {
    pub fn new(
        index: usize,
        config: &Receiver,
        cores: usize,
        pipeline: Pipeline,
        tls: Option<Arc<rustls::ServerConfig>>,
        client_auth: Option<client_auth::Check>,
    ) -> Self {
        let limit = config.http.conn_limit;
        ReceiverRt {
            index,
            limits: h1::Limits {
                max_head_bytes: config.http.max_head_bytes,
                max_headers: config.http.max_headers,
            },
            config: config.clone(),
            metrics: ReceiverMetrics::default(),
            conn_limit: if limit == 0 {
                0
            } else {
                limit.div_ceil(cores.max(1))
            },
            active: Cell::new(0),
            conn_closed: Notify::new(),
            tls,
            client_auth,
            pipeline,
        }
    }
}

/// Accepts connections until shutdown.
pub async fn accept_loop(core: Rc<Shared>, rx: Rc<ReceiverRt>, listener: TcpListener) {
    loop {
        while rx.conn_limit != 0 && rx.active.get() >= rx.conn_limit {
            monoio::select! {
                _ = rx.conn_closed.notified() => {}
                _ = core.shutdown.wait() => return,
            }
        }
        let accepted = monoio::select! {
            r = listener.accept() => r,
            _ = core.shutdown.wait() => return,
        };
        match accepted {
            Ok((stream, peer)) => {
                rx.active.set(rx.active.get() + 1);
                rx.metrics.connections.set(rx.active.get() as u64);
                let (core, rx) = (core.clone(), rx.clone());
                monoio::spawn(async move {
                    conn::serve(&core, &rx, stream, peer).await;
                    rx.active.set(rx.active.get() - 1);
                    rx.metrics.connections.set(rx.active.get() as u64);
                    rx.conn_closed.notify_all();
                });
            }
            Err(e) => {
                // EMFILE and friends: back off briefly instead of spinning.
                tracing::warn!(receiver = %rx.config.label, error = %e, "accept failed");
                monoio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
}
