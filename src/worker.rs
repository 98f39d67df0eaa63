//! Core threads: one OS thread per core, each with its own monoio runtime and its own copy of
//! every receiver and destination.
//!
//! Owns: building the runtime with the requested driver (io_uring, the epoll "legacy" driver,
//! or `auto`: io_uring where the kernel allows it), starting the accept loops, senders and DNS
//! refreshers, the control channel (the only cross-core traffic: shutdown and metrics
//! snapshots, via crossbeam-channel plus a socketpair wake-up), and the graceful drain.
//! Does not own: request handling or delivery. Nothing on a core thread blocks: DNS and file
//! writes go to monoio's blocking pool.

use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use monoio::blocking::DefaultThreadPool;
use monoio::io::AsyncReadRent;
use monoio::{IoUringDriver, LegacyDriver, RuntimeBuilder};

use crate::budget::Budget;
use crate::config::Config;
use crate::io::Driver;
use crate::metrics::{CoreSnapshot, DropReason};
use crate::pipeline::Components;
use crate::server::{self, ReceiverRt};
use crate::sync::Shutdown;
use crate::upstream::{self, Destination};

/// Everything one core owns.
#[derive(Debug)]
struct Core {
    index: usize,
    config: Arc<Config>,
    /// The component instances: writers with their destinations, relabel stages.
    components: Components,
    receivers: Vec<Rc<ReceiverRt>>,
    /// What the connections share (budget, shutdown signal).
    shared: Rc<server::Shared>,
}

impl Core {
    fn snapshot(&self) -> CoreSnapshot {
        let mut snap = CoreSnapshot::capture(
            self.components
                .destinations()
                .map(|d| (&d.metrics, d.queue.len() as u64)),
            self.receivers.iter().map(|r| &r.metrics),
            self.components.relabels().iter().map(|r| r.metrics()),
            self.shared.budget.used(),
        );
        // A spool is shared by every core: core 0 alone reports it, so merging adds it once.
        if self.index == 0 {
            for (s, d) in snap.dests.iter_mut().zip(self.components.destinations()) {
                if let Some(store) = &d.spool {
                    s.add_spool(store.stats());
                }
            }
        }
        snap
    }

    fn shutdown(&self) -> &Shutdown {
        &self.shared.shutdown
    }
}

/// Messages a core accepts from other threads.
#[derive(Debug)]
pub enum CoreMsg {
    Shutdown,
    Snapshot(Sender<CoreSnapshot>),
}

/// The other threads' handle on one core.
#[derive(Debug)]
pub struct CoreHandle {
    tx: Sender<CoreMsg>,
    wake: std::os::unix::net::UnixStream,
}

impl CoreHandle {
    /// Queues `msg` and wakes the core's control task.
    pub fn send(&self, msg: CoreMsg) {
        if self.tx.send(msg).is_ok() {
            use std::io::Write;
            let _ = (&self.wake).write(&[1]);
        }
    }
}

/// What a core thread needs to start.
#[allow(missing_debug_implementations)] // DefaultThreadPool has no Debug
pub struct CoreSetup {
    pub index: usize,
    pub config: Arc<Config>,
    /// One bound SO_REUSEPORT listener per receiver, in `config.receivers` order.
    pub listeners: Vec<std::net::TcpListener>,
    /// Start-up DNS resolution per destination (empty for capture destinations).
    pub addrs: Vec<Vec<SocketAddr>>,
    pub driver: Driver,
    /// TLS, proxy and credentials per destination (same order as `addrs`).
    pub transports: Vec<Arc<upstream::transport::Transport>>,
    /// TLS and client authentication per receiver, in `config.receivers` order.
    pub receivers_sec: Vec<server::tls::Prepared>,
    /// Each receiver's `conn_limit` slots, shared by every core (`config.receivers` order).
    pub conn_slots: Vec<Arc<server::ConnSlots>>,
    /// The in-flight byte budget, shared by every core.
    pub budget: Arc<crate::budget::Global>,
    pub blocking_pool: DefaultThreadPool,
    pub ready: Sender<Result<(), String>>,
    /// Each destination's spool, shared by every core (same order as `addrs`).
    pub spools: Vec<Option<Arc<crate::spool::Store>>>,
}

/// Creates the control channel of one core.
pub fn control_channel() -> std::io::Result<(
    CoreHandle,
    Receiver<CoreMsg>,
    std::os::unix::net::UnixStream,
)> {
    let (tx, rx) = crossbeam_channel::unbounded();
    let (a, b) = std::os::unix::net::UnixStream::pair()?;
    a.set_nonblocking(true)?;
    Ok((CoreHandle { tx, wake: a }, rx, b))
}

/// Runs one core to completion (after shutdown and drain); returns its final metrics.
pub fn run_core(
    setup: CoreSetup,
    control: Receiver<CoreMsg>,
    wake: std::os::unix::net::UnixStream,
) -> CoreSnapshot {
    let ready = setup.ready.clone();
    let pool = Box::new(setup.blocking_pool.clone());
    let result = match setup.driver.resolve() {
        Driver::Uring => RuntimeBuilder::<IoUringDriver>::new()
            .enable_timer()
            .attach_thread_pool(pool)
            .build()
            .map(|mut rt| rt.block_on(core_main(setup, control, wake))),
        _ => RuntimeBuilder::<LegacyDriver>::new()
            .enable_timer()
            .attach_thread_pool(pool)
            .build()
            .map(|mut rt| rt.block_on(core_main(setup, control, wake))),
    };
    match result {
        Ok(snap) => snap,
        Err(e) => {
            let _ = ready.send(Err(format!("building the runtime failed: {e}")));
            CoreSnapshot::default()
        }
    }
}

async fn core_main(
    setup: CoreSetup,
    control: Receiver<CoreMsg>,
    wake: std::os::unix::net::UnixStream,
) -> CoreSnapshot {
    let CoreSetup {
        index,
        config,
        listeners,
        addrs,
        ready,
        driver,
        transports,
        receivers_sec,
        conn_slots,
        budget,
        spools,
        ..
    } = setup;
    let driver = driver.resolve();
    let mut writer_dests = Vec::with_capacity(config.writers.len());
    let mut n = 0;
    for w in &config.writers {
        let mut dests = Vec::with_capacity(w.endpoints.len());
        for e in &w.endpoints {
            let a = addrs.get(n).cloned().unwrap_or_default();
            let t = transports.get(n).cloned().unwrap_or_default();
            let spool = spools.get(n).cloned().flatten();
            n += 1;
            match Destination::with_transport(e, index, a, t) {
                Ok(d) => dests.push(Rc::new(d.with_spool(spool))),
                Err(err) => {
                    let _ = ready.send(Err(format!("endpoint {}: {err}", e.url_text)));
                    return CoreSnapshot::default();
                }
            }
        }
        writer_dests.push(dests);
    }
    let components = Components::build(&config, writer_dests);
    let receivers: Vec<Rc<ReceiverRt>> = config
        .receivers
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let sec = receivers_sec.get(i);
            Rc::new(ReceiverRt::new(
                i,
                r,
                conn_slots
                    .get(i)
                    .cloned()
                    .unwrap_or_else(|| Arc::new(server::ConnSlots::new(r.http.conn_limit))),
                components.pipeline(&r.forward_to),
                sec.and_then(|p| p.tls.clone()),
                sec.and_then(|p| p.client_auth.as_ref())
                    .map(server::client_auth::Check::new),
            ))
        })
        .collect();
    let core = Rc::new(Core {
        index,
        config: config.clone(),
        components,
        receivers,
        shared: Rc::new(server::Shared::new(
            Budget::shared(budget),
            Rc::new(Shutdown::default()),
            config.gateway.queue_wait_timeout,
        )),
    });

    // Sender tasks are not awaited: once the queues are closed after the drain, idle senders
    // end on their own, and one still delivering past the drain deadline is abandoned with the
    // runtime (its upload is counted as dropped by the drain).
    for d in core.components.destinations() {
        for _ in 0..d.senders() {
            monoio::spawn(upstream::sender::run(d.clone()));
        }
        if d.spool.is_some() {
            monoio::spawn(upstream::replay::run(
                d.clone(),
                core.shared.shutdown.clone(),
            ));
        }
        monoio::spawn(upstream::refresh_dns(
            d.clone(),
            config.gateway.dns_refresh_interval,
            core.shared.shutdown.clone(),
        ));
    }
    let mut accepts = Vec::new();
    for (rx, l) in core.receivers.iter().zip(listeners) {
        let listener = match l
            .set_nonblocking(true)
            .and_then(|()| monoio::net::TcpListener::from_std(l))
        {
            Ok(l) => l,
            Err(e) => {
                let _ = ready.send(Err(format!("receiver {}: {e}", rx.config.label)));
                return CoreSnapshot::default();
            }
        };
        accepts.push(monoio::spawn(server::accept_loop(
            core.shared.clone(),
            rx.clone(),
            listener,
        )));
    }
    monoio::spawn(control_task(core.clone(), control, wake));
    tracing::info!(core = index, driver = driver.name(), "core started");
    let _ = ready.send(Ok(()));

    core.shutdown().wait().await;
    for a in accepts {
        a.await;
    }
    drain(&core).await;
    for d in core.components.destinations() {
        d.queue.close();
    }
    core.snapshot()
}

/// Waits for open requests and queued uploads to finish, up to the longest
/// `graceful_shutdown_timeout`; whatever is left then is counted as dropped.
async fn drain(core: &Core) {
    let grace = core
        .config
        .receivers
        .iter()
        .map(|r| r.graceful_shutdown_timeout)
        .max()
        .unwrap_or(Duration::ZERO);
    let deadline = Instant::now() + grace;
    // A spooling destination that is failing spools what it holds now rather than retrying it
    // through the grace period (the senders and retry loops hand their uploads over).
    for d in core.components.destinations() {
        if d.spool.is_some() && d.failing_since.get().is_some() {
            d.draining.set(true);
        }
    }
    // Everything must settle, so waiting on the first busy receiver or destination until it
    // changes, then checking again, misses nothing. A destination settles when a sender
    // finishes an upload: a pop is followed at once by `in_flight += 1`, so an emptied queue
    // with nothing in flight only ever appears at a finish.
    loop {
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        let changed = if let Some(r) = core.receivers.iter().find(|r| r.active.get() > 0) {
            r.conn_closed.notified()
        } else if let Some(d) = core
            .components
            .destinations()
            .find(|d| !d.queue.is_empty() || d.in_flight.get() > 0)
        {
            d.settled.notified()
        } else {
            break;
        };
        let _ = monoio::time::timeout(deadline - now, changed).await;
    }
    for d in core.components.destinations() {
        let left = d.queue.drain();
        let in_flight = d.in_flight.get() as u64;
        if !left.is_empty() || in_flight > 0 {
            tracing::warn!(endpoint = %d.endpoint.url_text, queued = left.len(), in_flight, "graceful shutdown timeout: dropping undelivered uploads");
        }
        for item in left {
            if d.spool.is_some() {
                upstream::replay::spill(d, item, crate::upload::DeliveryError::Shutdown).await;
                continue;
            }
            d.metrics
                .record_dropped(item.bytes, item.profiles, DropReason::Shutdown);
        }
        // What is left pending now is what the senders still hold; count its profiles once
        // and each upload.
        let sending = d.metrics.pending_profiles();
        for i in 0..in_flight {
            let profiles = if i == 0 { sending } else { 0 };
            d.metrics.record_dropped(0, profiles, DropReason::Shutdown);
        }
    }
}

async fn control_task(
    core: Rc<Core>,
    control: Receiver<CoreMsg>,
    wake: std::os::unix::net::UnixStream,
) {
    let Ok(mut wake) = wake
        .set_nonblocking(true)
        .and_then(|()| monoio::net::UnixStream::from_std(wake))
    else {
        tracing::error!(
            core = core.index,
            "control channel unusable; shutdown will not reach this core"
        );
        return;
    };
    let mut buf = vec![0u8; 64];
    loop {
        let (res, b) = wake.read(buf).await;
        buf = b;
        while let Ok(msg) = control.try_recv() {
            match msg {
                CoreMsg::Shutdown => core.shutdown().trigger(),
                CoreMsg::Snapshot(reply) => {
                    let _ = reply.send(core.snapshot());
                }
            }
        }
        if matches!(res, Ok(0) | Err(_)) {
            return;
        }
    }
}
