//! Core threads: one OS thread per core, each with its own monoio runtime and its own copy of
//! every receiver and destination.
//!
//! Owns: building the runtime with the requested driver (io_uring, the epoll "legacy" driver,
//! or `auto`: io_uring where the kernel allows it), starting the accept loops, senders and DNS
//! refreshers, the control channel (the only cross-core traffic: shutdown, configuration
//! reloads and metrics snapshots, via crossbeam-channel plus a socketpair wake-up), applying a
//! reload ([`ReloadPlan`]: swapping each receiver's per-request settings, starting new
//! receivers and destinations, retiring removed ones and draining their queues), and the
//! graceful drain. Does not own: request handling or delivery, nor preparing a reload (file
//! reading, parsing, binding, DNS: `reload`, off the core threads). Nothing on a core thread
//! blocks: DNS and file writes go to monoio's blocking pool.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use monoio::blocking::DefaultThreadPool;
use monoio::io::AsyncReadRent;
use monoio::task::JoinHandle;
use monoio::{IoUringDriver, LegacyDriver, RuntimeBuilder};

use crate::budget::Budget;
use crate::config::Config;
use crate::io::Driver;
use crate::metrics::{CoreSnapshot, DropReason};
use crate::pipeline::Components;
use crate::server::{self, ConnSlots, Live, ReceiverRt};
use crate::sync::Shutdown;
use crate::upload::DeliveryError;
use crate::upstream::{self, Destination};

/// Everything one core owns. A reload replaces `config`, `components` and `receivers` as a
/// whole; requests already running keep what they took (`Rc`s).
struct Core {
    index: usize,
    /// The I/O driver this core's runtime runs on.
    driver: Driver,
    config: RefCell<Arc<Config>>,
    /// The component instances: writers with their destinations, relabel stages.
    components: RefCell<Rc<Components>>,
    receivers: RefCell<Vec<Rc<ReceiverRt>>>,
    /// Receivers a reload removed or rebound whose connections may still be open.
    retired_receivers: RefCell<Vec<Rc<ReceiverRt>>>,
    /// Destinations a reload removed that are still draining.
    retiring: RefCell<Vec<Rc<Destination>>>,
    /// Every accept loop started (awaited at shutdown).
    accepts: RefCell<Vec<JoinHandle<()>>>,
    /// The stop signal of each destination's DNS refresher (retiring a destination stops it).
    dns_stops: RefCell<Vec<(Rc<Destination>, Rc<Shutdown>)>>,
    /// Process-wide count of what removed destinations dropped.
    retired_drops: Arc<RetiredDrops>,
    /// What the connections share (budget, shutdown signal).
    shared: Rc<server::Shared>,
}

impl Core {
    fn components(&self) -> Rc<Components> {
        self.components.borrow().clone()
    }

    fn snapshot(&self) -> CoreSnapshot {
        let components = self.components();
        let receivers = self.receivers.borrow();
        let mut snap = CoreSnapshot::capture(
            components
                .destinations()
                .map(|d| (&d.metrics, d.queue.len() as u64)),
            receivers.iter().map(|r| &r.metrics),
            components.relabels().iter().map(|r| r.metrics()),
            self.shared.budget.used(),
        )
        .with_writers(components.writers().iter().map(|w| w.metrics().as_ref()))
        .with_core(self.index, self.driver.name());
        // A spool is shared by every core: core 0 alone reports it, so merging adds it once.
        if self.index == 0 {
            for (s, d) in snap.dests.iter_mut().zip(components.destinations()) {
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

    /// Current and retiring destinations.
    fn all_destinations(&self) -> Vec<Rc<Destination>> {
        let mut all: Vec<Rc<Destination>> = self.components().destinations().cloned().collect();
        all.extend(self.retiring.borrow().iter().cloned());
        all
    }

    /// Current and retired receivers.
    fn all_receivers(&self) -> Vec<Rc<ReceiverRt>> {
        let mut all = self.receivers.borrow().clone();
        all.extend(self.retired_receivers.borrow().iter().cloned());
        all
    }

    /// The longest `graceful_shutdown_timeout` of the current receivers.
    fn grace(&self) -> Duration {
        self.config
            .borrow()
            .receivers
            .iter()
            .map(|r| r.graceful_shutdown_timeout)
            .max()
            .unwrap_or(Duration::ZERO)
    }
}

/// What destinations removed by a reload dropped after their grace period, over every core
/// (rendered by the admin listener).
#[derive(Debug, Default)]
pub struct RetiredDrops {
    pub uploads: AtomicU64,
    pub profiles: AtomicU64,
}

/// Messages a core accepts from other threads.
#[derive(Debug)]
pub enum CoreMsg {
    Shutdown,
    Snapshot(Sender<CoreSnapshot>),
    /// Apply a reloaded configuration; the result goes to `ReloadPlan::done`.
    Reload(Box<ReloadPlan>),
}

/// A reloaded configuration as one core applies it, prepared off the core threads: every
/// socket bound, every new destination's transport built and its host resolved.
#[derive(Debug)]
pub struct ReloadPlan {
    pub config: Arc<Config>,
    /// One per `config.receivers`, in order.
    pub receivers: Vec<ReceiverPlan>,
    /// One per destination of `config` (writer order, then endpoint order).
    pub destinations: Vec<DestinationPlan>,
    /// Where the core reports that it applied the plan, or why not.
    pub done: Sender<Result<(), String>>,
}

/// One receiver of a reloaded configuration.
#[derive(Debug)]
pub struct ReceiverPlan {
    pub listener: ListenerPlan,
    /// Client authentication of the new configuration.
    pub client_auth: Option<server::client_auth::Prepared>,
    /// TLS settings of the new configuration (certificate files read again).
    pub tls: Option<Arc<rustls::ServerConfig>>,
}

/// Where a receiver's connections come from after a reload.
#[derive(Debug)]
pub enum ListenerPlan {
    /// The running receiver at this index (its `http` block is unchanged): its socket,
    /// connections and counters carry on.
    Kept(usize),
    /// A new receiver: this core's socket and its `conn_limit` slots.
    New {
        listener: std::net::TcpListener,
        slots: Arc<ConnSlots>,
    },
}

/// Where a destination of a reloaded configuration comes from.
#[derive(Debug, Clone)]
pub enum DestinationPlan {
    /// The running destination at this index (same writer, same endpoint settings): its
    /// queue, connections and counters carry on.
    Kept(usize),
    /// A new destination with its start-up resolution and transport.
    New {
        addrs: Vec<SocketAddr>,
        transport: Arc<upstream::transport::Transport>,
        /// Its spool (shared by every core), when it spools.
        spool: Option<Arc<crate::spool::Store>>,
    },
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
    /// Where removed destinations' drops are counted, shared by every core.
    pub retired_drops: Arc<RetiredDrops>,
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
        retired_drops,
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
        driver,
        config: RefCell::new(config.clone()),
        components: RefCell::new(Rc::new(components)),
        receivers: RefCell::new(receivers),
        retired_receivers: RefCell::default(),
        retiring: RefCell::default(),
        accepts: RefCell::default(),
        dns_stops: RefCell::default(),
        retired_drops,
        shared: Rc::new(server::Shared::new(
            Budget::shared(budget),
            Rc::new(Shutdown::default()),
            config.gateway.queue_wait_timeout,
        )),
    });

    for d in core.components().destinations() {
        start_destination(&core, d);
    }
    let receivers = core.receivers.borrow().clone();
    for (rx, l) in receivers.iter().zip(listeners) {
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
        start_receiver(&core, rx.clone(), listener);
    }
    monoio::spawn(control_task(core.clone(), control, wake));
    monoio::spawn(release_memory_when_quiet(core.shared.clone()));
    tracing::info!(core = index, driver = driver.name(), "core started");
    let _ = ready.send(Ok(()));

    core.shutdown().wait().await;
    let accepts = std::mem::take(&mut *core.accepts.borrow_mut());
    for a in accepts {
        a.await;
    }
    drain(&core).await;
    for d in core.all_destinations() {
        d.queue.close();
    }
    core.snapshot()
}

/// How long a core's connections must have done nothing (no connection opened, no request
/// started, none closed) before the core gives the memory freed meanwhile back.
const QUIET_BEFORE_RELEASE: Duration = Duration::from_secs(1);

/// Gives freed memory back to the operating system once the core goes quiet after activity
/// (see [`crate::memory`]): once per burst, not while busy (the allocator reuses what it keeps)
/// and not again while idle.
async fn release_memory_when_quiet(shared: Rc<server::Shared>) {
    let mut seen = shared.activity();
    // Collections still to make in this quiet spell: two, a tick apart, so that what the first
    // one frees but mimalloc keeps queued for a later purge is caught by the second.
    let mut pending = 0;
    while !shared.shutdown.wait_timeout(QUIET_BEFORE_RELEASE).await {
        let now = shared.activity();
        if now != seen {
            (seen, pending) = (now, 2);
        } else if pending > 0 {
            crate::memory::release_free_memory();
            pending -= 1;
        }
    }
}

/// Starts a destination's senders and its DNS refresher. Sender tasks are not awaited: once
/// the queue is closed (after the shutdown drain, or after a removed destination drained),
/// idle senders end on their own, and one still delivering past the shutdown deadline is
/// abandoned with the runtime (its upload is counted as dropped by the drain).
fn start_destination(core: &Rc<Core>, d: &Rc<Destination>) {
    for _ in 0..d.senders() {
        monoio::spawn(upstream::sender::run(d.clone()));
    }
    if d.spool.is_some() {
        monoio::spawn(upstream::replay::run(
            d.clone(),
            core.shared.budget.clone(),
            core.shared.shutdown.clone(),
        ));
    }
    let stop = Rc::new(Shutdown::default());
    core.dns_stops.borrow_mut().push((d.clone(), stop.clone()));
    let refresh = upstream::refresh_dns(
        d.clone(),
        core.config.borrow().gateway.dns_refresh_interval,
        core.shared.shutdown.clone(),
    );
    monoio::spawn(async move {
        monoio::select! {
            _ = refresh => {}
            _ = stop.wait() => {}
        }
    });
}

/// Starts accepting connections for `rx` on this core.
fn start_receiver(core: &Rc<Core>, rx: Rc<ReceiverRt>, listener: monoio::net::TcpListener) {
    let task = monoio::spawn(server::accept_loop(core.shared.clone(), rx, listener));
    core.accepts.borrow_mut().push(task);
}

/// Applies a reloaded configuration. Every step that can fail runs before anything changes,
/// so a failure leaves this core on its running configuration. Cold path; never blocks.
fn apply_reload(core: &Rc<Core>, plan: ReloadPlan) -> Result<(), String> {
    if core.shutdown().is_triggered() {
        return Err("shutting down".into());
    }
    let ReloadPlan {
        config,
        receivers: receiver_plans,
        destinations: destination_plans,
        ..
    } = plan;
    let mismatch = || "the reload plan does not match its configuration".to_string();
    if receiver_plans.len() != config.receivers.len() {
        return Err(mismatch());
    }
    let old_components = core.components();
    // Each running destination with its writer's label: a kept one must be the same writer and
    // endpoint here too, so a core that diverged from the reloader's view (an earlier reload
    // applied on some cores only) refuses the plan instead of keeping the wrong destination.
    let old_dests: Vec<(&str, Rc<Destination>)> = old_components
        .writers()
        .iter()
        .flat_map(|w| w.destinations().iter().map(move |d| (w.label(), d.clone())))
        .collect();
    let mut dest_kept = vec![false; old_dests.len()];
    let mut fresh = Vec::new();
    let mut writer_dests = Vec::with_capacity(config.writers.len());
    let mut plans = destination_plans.into_iter();
    for w in &config.writers {
        let mut dests = Vec::with_capacity(w.endpoints.len());
        for e in &w.endpoints {
            let d = match plans.next() {
                Some(DestinationPlan::Kept(i))
                    if old_dests
                        .get(i)
                        .is_some_and(|(l, d)| *l == w.label && d.endpoint == *e)
                        && !dest_kept[i] =>
                {
                    dest_kept[i] = true;
                    old_dests[i].1.clone()
                }
                Some(DestinationPlan::New {
                    addrs,
                    transport,
                    spool,
                }) => {
                    let d = Destination::with_transport(e, core.index, addrs, transport)
                        .map_err(|err| format!("endpoint {}: {err}", e.url_text))?;
                    let d = Rc::new(d.with_spool(spool));
                    fresh.push(d.clone());
                    d
                }
                _ => return Err(mismatch()),
            };
            dests.push(d);
        }
        writer_dests.push(dests);
    }
    let components = Rc::new(Components::rebuild(
        &config,
        writer_dests,
        Some(&old_components),
    ));

    let old_rx = core.receivers.borrow().clone();
    let mut rx_kept = vec![false; old_rx.len()];
    let mut receivers = Vec::with_capacity(config.receivers.len());
    let mut lives = Vec::new();
    let mut to_start = Vec::new();
    for (i, (r, p)) in config.receivers.iter().zip(receiver_plans).enumerate() {
        let check = p.client_auth.as_ref().map(server::client_auth::Check::new);
        let pipeline = components.pipeline(&r.forward_to);
        match p.listener {
            ListenerPlan::Kept(j)
                if old_rx
                    .get(j)
                    .is_some_and(|o| o.config.label == r.label && o.config.http == r.http)
                    && !rx_kept[j] =>
            {
                rx_kept[j] = true;
                lives.push((old_rx[j].clone(), Live::new(r, pipeline, check, p.tls)));
                receivers.push(old_rx[j].clone());
            }
            ListenerPlan::New { listener, slots } => {
                let listener = listener
                    .set_nonblocking(true)
                    .and_then(|()| monoio::net::TcpListener::from_std(listener))
                    .map_err(|e| format!("receiver {}: {e}", r.label))?;
                let rx = Rc::new(ReceiverRt::new(i, r, slots, pipeline, p.tls, check));
                to_start.push((rx.clone(), listener));
                receivers.push(rx);
            }
            ListenerPlan::Kept(_) => return Err(mismatch()),
        }
    }

    // Nothing below fails.
    for (rx, live) in lives {
        rx.set_live(live);
    }
    {
        let mut retired = core.retired_receivers.borrow_mut();
        retired.retain(|r| r.active.get() > 0);
        for (rx, kept) in old_rx.iter().zip(&rx_kept) {
            if !kept {
                rx.retired.trigger();
                retired.push(rx.clone());
            }
        }
    }
    *core.receivers.borrow_mut() = receivers;
    *core.components.borrow_mut() = components;
    *core.config.borrow_mut() = config;
    for (rx, listener) in to_start {
        start_receiver(core, rx, listener);
    }
    for d in &fresh {
        start_destination(core, d);
    }
    let grace = core.grace();
    for ((_, d), kept) in old_dests.into_iter().zip(dest_kept) {
        if !kept {
            core.retiring.borrow_mut().push(d.clone());
            monoio::spawn(retire_destination(core.clone(), d, grace));
        }
    }
    Ok(())
}

/// Lets a destination a reload removed deliver what it holds for up to `grace`, then counts
/// what is still queued as dropped (reason `reload`) and closes its queue. Uploads being sent
/// at that moment finish their attempt sequence and are counted by their outcome. At a
/// shutdown meanwhile, the shutdown drain takes over.
async fn retire_destination(core: Rc<Core>, d: Rc<Destination>, grace: Duration) {
    let deadline = Instant::now() + grace;
    let shutdown = core.shared.shutdown.clone();
    tracing::info!(endpoint = %d.endpoint.url_text, queued = d.queue.len(), in_flight = d.in_flight.get(), "endpoint removed by reload: draining");
    while !d.queue.is_empty() || d.in_flight.get() > 0 {
        let now = Instant::now();
        if now >= deadline || shutdown.is_triggered() {
            break;
        }
        monoio::select! {
            _ = monoio::time::timeout(deadline - now, d.settled.notified()) => {}
            _ = shutdown.wait() => {}
        }
    }
    if shutdown.is_triggered() {
        return;
    }
    let left = d.queue.drain();
    d.queue.close();
    if let Some(i) = core
        .dns_stops
        .borrow()
        .iter()
        .position(|(x, _)| Rc::ptr_eq(x, &d))
    {
        core.dns_stops.borrow()[i].1.trigger();
    }
    core.dns_stops
        .borrow_mut()
        .retain(|(x, _)| !Rc::ptr_eq(x, &d));
    if !left.is_empty() {
        tracing::warn!(endpoint = %d.endpoint.url_text, dropped = left.len(), "endpoint removed by reload: graceful_shutdown_timeout passed, dropping what is still queued");
    }
    for item in left {
        d.metrics
            .record_dropped(item.bytes, item.profiles, DropReason::Reload);
        core.retired_drops.uploads.fetch_add(1, Ordering::Relaxed);
        core.retired_drops
            .profiles
            .fetch_add(item.profiles, Ordering::Relaxed);
        item.finish(Err(DeliveryError::Shutdown));
    }
    // The shutdown drain still waits for uploads being sent.
    while d.in_flight.get() > 0 && !shutdown.is_triggered() {
        monoio::select! {
            _ = d.settled.notified() => {}
            _ = shutdown.wait() => {}
        }
    }
    if shutdown.is_triggered() {
        return;
    }
    // A spooling destination keeps replaying what it spooled; it stays among the retiring ones
    // (so the shutdown drain waits for its replays in flight) until its spool is empty.
    if let Some(store) = d.spool.clone() {
        while (store.has_waiting() || d.in_flight.get() > 0) && !shutdown.is_triggered() {
            monoio::select! {
                _ = monoio::time::timeout(RETIRED_SPOOL_RECHECK, d.settled.notified()) => {}
                _ = shutdown.wait() => {}
            }
        }
        if shutdown.is_triggered() {
            return;
        }
    }
    core.retiring.borrow_mut().retain(|x| !Rc::ptr_eq(x, &d));
    tracing::info!(endpoint = %d.endpoint.url_text, delivered = d.metrics.sent_profiles.get(), dropped = d.metrics.dropped_profiles.get(), "endpoint removed by reload: drained");
}

/// How often a destination a reload removed checks whether its spool is empty.
const RETIRED_SPOOL_RECHECK: Duration = Duration::from_secs(1);

/// Waits for open requests and queued uploads to finish, up to the longest
/// `graceful_shutdown_timeout`; whatever is left then is counted as dropped.
async fn drain(core: &Core) {
    let deadline = Instant::now() + core.grace();
    let receivers = core.all_receivers();
    let destinations = core.all_destinations();
    // A spooling destination that is failing spools what it holds now rather than retrying it
    // through the grace period (the senders and retry loops hand their uploads over).
    for d in &destinations {
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
        let changed = if let Some(r) = receivers.iter().find(|r| r.active.get() > 0) {
            r.conn_closed.notified()
        } else if let Some(d) = destinations
            .iter()
            .find(|d| !d.queue.is_empty() || d.in_flight.get() > 0)
        {
            d.settled.notified()
        } else {
            break;
        };
        let _ = monoio::time::timeout(deadline - now, changed).await;
    }
    for d in &destinations {
        let left = d.queue.drain();
        let in_flight = d.in_flight.get() as u64;
        if !left.is_empty() || in_flight > 0 {
            tracing::warn!(endpoint = %d.endpoint.url_text, queued = left.len(), in_flight, "graceful shutdown timeout: dropping undelivered uploads");
        }
        if d.spool.is_some() {
            // Spilled together: the spool groups what is spilled at once into few writes.
            let spills: Vec<_> = left
                .into_iter()
                .map(|item| {
                    let d = d.clone();
                    monoio::spawn(async move {
                        upstream::spill::spill(&d, item, crate::upload::DeliveryError::Shutdown)
                            .await
                    })
                })
                .collect();
            for s in spills {
                s.await;
            }
        } else {
            for item in left {
                d.metrics
                    .record_dropped(item.bytes, item.profiles, DropReason::Shutdown);
            }
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
                CoreMsg::Reload(plan) => {
                    let done = plan.done.clone();
                    let result = apply_reload(&core, *plan);
                    if let Err(e) = &result {
                        tracing::error!(core = core.index, error = %e, "reload not applied on this core");
                    }
                    let _ = done.send(result);
                }
            }
        }
        if matches!(res, Ok(0) | Err(_)) {
            return;
        }
    }
}
