//! The downstream side: one listener per receiver per core, the connection cap, and the
//! accept loop.
//!
//! Owns: accepting connections on this core's SO_REUSEPORT socket for each
//! `pyroscope.receive_http`, enforcing `conn_limit` the way Alloy does (over the limit, new
//! connections wait in the kernel's accept backlog rather than being refused), and spawning a
//! task per connection. Does not own: HTTP handling ([`conn`], [`ingest`]).
//!
//! `conn_limit` is global, as Alloy's (Go's `netutil.LimitListener` over one listener): every
//! core's accept loop takes a slot from the receiver's one atomic counter ([`ConnSlots`],
//! touched once per connection). A core that accepts a connection while every slot is taken
//! holds it unserved (as the backlog would) and accepts nothing more until a slot frees on any
//! core, so at most `conn_limit` connections are ever served and each core keeps at most one
//! connection waiting outside the backlog.

pub mod client_auth;
pub mod conn;
pub mod debuginfo;
pub mod idle;
pub mod inflate;
pub mod ingest;
pub mod ingest_plans;
pub mod listen;
pub mod otlp;
pub mod push;
pub mod stream_body;
pub mod tls;

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use monoio::net::TcpListener;

use std::time::Duration;

use crate::budget::Budget;
use crate::config::{AckMode, DebugInfoDestinations, Receiver};
use crate::h1;
use crate::metrics::ReceiverMetrics;
use crate::pipeline::Pipeline;
use crate::sync::Notify;
use crate::sync::Shutdown;

/// How often a core holding a connection over `conn_limit` looks for a slot freed on another
/// core (a slot freed on its own core wakes it at once).
pub const SLOT_RECHECK_INTERVAL: Duration = Duration::from_millis(5);

/// One receiver's `conn_limit`, shared by every core.
#[derive(Debug)]
pub struct ConnSlots {
    /// 0 = unlimited.
    limit: usize,
    taken: AtomicUsize,
}

impl ConnSlots {
    pub fn new(limit: usize) -> Self {
        ConnSlots {
            limit,
            taken: AtomicUsize::new(0),
        }
    }

    /// Takes a slot if one is free.
    pub fn try_take(&self) -> bool {
        if self.limit == 0 {
            return true;
        }
        self.taken
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.limit).then_some(n + 1)
            })
            .is_ok()
    }

    /// Gives a slot back.
    pub fn release(&self) {
        if self.limit != 0 {
            self.taken.fetch_sub(1, Ordering::AcqRel);
        }
    }

    /// The configured limit (0 = unlimited).
    pub fn limit(&self) -> usize {
        self.limit
    }
}

/// What every connection on one core shares.
#[derive(Debug)]
pub struct Shared {
    /// The in-flight byte budget, reserved before a body is read.
    pub(crate) budget: Rc<Budget>,
    pub(crate) shutdown: Rc<Shutdown>,
    /// How long a request waits for room in a full budget or queue (`queue_wait_timeout`).
    pub(crate) queue_wait_timeout: Duration,
    /// Bumped when a connection opens, starts a request or closes: the worker releases freed
    /// memory once this stops moving.
    activity: Cell<u64>,
}

impl Shared {
    pub fn new(budget: Rc<Budget>, shutdown: Rc<Shutdown>, queue_wait_timeout: Duration) -> Self {
        Shared {
            budget,
            shutdown,
            queue_wait_timeout,
            activity: Cell::new(0),
        }
    }

    /// Notes that connections did something on this core.
    pub fn touch(&self) {
        self.activity.set(self.activity.get().wrapping_add(1));
    }

    /// Changes whenever [`Shared::touch`] is called.
    pub fn activity(&self) -> u64 {
        self.activity.get()
    }
}

/// What a receiver applies to each request, replaced as a whole by a configuration reload:
/// a request takes the current one when it starts and keeps it (an `Rc`) until answered.
#[derive(Debug)]
pub struct Live {
    /// Where this receiver's uploads go.
    pub pipeline: Pipeline,
    pub acknowledge: AckMode,
    /// Client headers copied upstream besides `Content-Type` (lower-cased).
    pub forward_headers: Vec<String>,
    /// Client authentication (`client_auth`).
    pub client_auth: Option<client_auth::Check>,
    /// TLS settings when the receiver serves HTTPS, taken by each new connection: a reload
    /// reads the certificate files again, so connections after it get rotated certificates.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// `debug_info_upload_timeout`.
    pub debug_info_upload_timeout: Duration,
    /// `debug_info_max_upload_bytes`.
    pub debug_info_max_upload_bytes: u64,
    /// `debug_info_destinations`.
    pub debug_info_destinations: DebugInfoDestinations,
}

impl Live {
    pub fn new(
        config: &Receiver,
        pipeline: Pipeline,
        client_auth: Option<client_auth::Check>,
        tls: Option<Arc<rustls::ServerConfig>>,
    ) -> Self {
        Live {
            pipeline,
            acknowledge: config.acknowledge,
            forward_headers: config.forward_headers.clone(),
            client_auth,
            tls,
            debug_info_upload_timeout: config.debug_info_upload_timeout,
            debug_info_max_upload_bytes: config.debug_info_max_upload_bytes,
            debug_info_destinations: config.debug_info_destinations,
        }
    }
}

/// One receiver on one core.
#[derive(Debug)]
pub struct ReceiverRt {
    pub index: usize,
    /// The configuration the listener was bound with. Its `label` and `http` block hold for
    /// the receiver's whole life (a reload that changes either makes a new receiver); the
    /// per-request settings of the current configuration are in [`ReceiverRt::live`].
    pub config: Receiver,
    pub limits: h1::Limits,
    pub metrics: ReceiverMetrics,
    /// `conn_limit`, shared with the other cores.
    pub slots: Arc<ConnSlots>,
    pub active: Cell<usize>,
    /// Woken whenever a connection of this receiver closes.
    pub conn_closed: Notify,
    /// The current per-request settings; swapped by a reload.
    live: RefCell<Rc<Live>>,
    /// Set when a reload removed or rebound this receiver: its accept loop ends and its
    /// connections close once their current request is answered.
    pub retired: Shutdown,
    /// Which destinations asked for which debug-info uploads (`debug_info_destinations =
    /// "all"`).
    pub debuginfo_wanted: debuginfo::Wanted,
    /// The idle timeouts of this receiver's parked connections on this core.
    pub idle: idle::IdleTimers,
    /// `/ingest` label work already done for label sets seen on this core.
    pub ingest_plans: ingest_plans::IngestPlans,
}

impl ReceiverRt {
    pub fn new(
        index: usize,
        config: &Receiver,
        slots: Arc<ConnSlots>,
        pipeline: Pipeline,
        tls: Option<Arc<rustls::ServerConfig>>,
        client_auth: Option<client_auth::Check>,
    ) -> Self {
        ReceiverRt {
            index,
            limits: h1::Limits {
                max_head_bytes: config.http.max_head_bytes,
                max_headers: config.http.max_headers,
            },
            live: RefCell::new(Rc::new(Live::new(config, pipeline, client_auth, tls))),
            config: config.clone(),
            metrics: ReceiverMetrics::default(),
            slots,
            active: Cell::new(0),
            conn_closed: Notify::new(),
            retired: Shutdown::default(),
            debuginfo_wanted: debuginfo::Wanted::default(),
            idle: idle::IdleTimers::default(),
            ingest_plans: ingest_plans::IngestPlans::default(),
        }
    }

    /// The settings a request starting now uses.
    pub fn live(&self) -> Rc<Live> {
        self.live.borrow().clone()
    }

    /// Applies a reloaded configuration to requests that start from now on.
    pub fn set_live(&self, live: Live) {
        *self.live.borrow_mut() = Rc::new(live);
        self.ingest_plans.clear();
    }

    /// Whether this receiver's connections are to close after the current request (core
    /// shutdown, or the receiver retired by a reload).
    pub fn closing(&self, core: &Shared) -> bool {
        core.shutdown.is_triggered() || self.retired.is_triggered()
    }
}

/// Accepts connections until shutdown.
pub async fn accept_loop(core: Rc<Shared>, rx: Rc<ReceiverRt>, listener: TcpListener) {
    monoio::spawn({
        let (core, rx) = (core.clone(), rx.clone());
        async move { rx.idle.run(&core.shutdown, &rx.retired).await }
    });
    loop {
        let accepted = monoio::select! {
            r = listener.accept() => r,
            _ = core.shutdown.wait() => return,
            _ = rx.retired.wait() => return,
        };
        match accepted {
            Ok((stream, _peer)) => {
                // Over the limit the connection waits, unserved, for a slot; meanwhile this
                // core accepts nothing more (later connections wait in the backlog).
                while !rx.slots.try_take() {
                    monoio::select! {
                        _ = rx.conn_closed.notified() => {}
                        _ = monoio::time::sleep(SLOT_RECHECK_INTERVAL) => {}
                        _ = core.shutdown.wait() => return,
                        _ = rx.retired.wait() => return,
                    }
                }
                rx.active.set(rx.active.get() + 1);
                rx.metrics.set_connections(rx.active.get());
                monoio::spawn(conn::serve(core.clone(), rx.clone(), Box::new(stream)));
            }
            Err(e) => {
                // EMFILE and friends: back off briefly instead of spinning.
                tracing::warn!(receiver = %rx.config.label, error = %e, "accept failed");
                monoio::time::sleep(ACCEPT_ERROR_BACKOFF).await;
            }
        }
    }
}

/// How long the accept loop pauses after a failed `accept` (EMFILE and friends).
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(50);

#[cfg(test)]
mod tests {
    use super::ConnSlots;

    #[test]
    fn slots_are_shared_up_to_the_limit_and_unlimited_at_zero() {
        let s = ConnSlots::new(2);
        assert!(s.try_take());
        assert!(s.try_take());
        assert!(!s.try_take());
        s.release();
        assert!(s.try_take());
        let unlimited = ConnSlots::new(0);
        assert!((0..10_000).all(|_| unlimited.try_take()));
    }
}
