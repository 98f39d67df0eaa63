//! Starting and stopping the whole gateway: the glue between the CLI and the core threads.
//!
//! Owns: start-up work that may block (DNS resolution, binding every receiver's SO_REUSEPORT
//! sockets — port 0 is resolved once and shared by all cores), starting the core threads, the
//! admin thread and the signal thread (SIGINT/SIGTERM: shutdown; SIGHUP: reload), and the
//! shutdown summary. Runs on the main thread. Does not own: anything on the data path, nor
//! what a reload does (`reload`).

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::sync::Arc;
use std::thread;

use monoio::blocking::DefaultThreadPool;

use crate::admin;
use crate::config::{Config, EndpointUrl};
use crate::io::Driver;
use crate::metrics::CoreSnapshot;
use crate::reload::Reloader;
use crate::server;
use crate::upstream::transport::{self, Transport};
use crate::worker::{self, CoreHandle, CoreMsg, CoreSetup, RetiredDrops};
/// Threads of the blocking pool shared by all cores (DNS, capture writes, secret files).
const BLOCKING_THREADS: usize = 4;

/// How `run` is asked to run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub cores: usize,
    pub driver: Driver,
    pub admin_addr: SocketAddr,
    /// The file the configuration was read from (re-read on reload).
    pub config_path: PathBuf,
}

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("receiver {receiver:?}: cannot listen on {addr}: {error}")]
    Bind {
        receiver: String,
        addr: SocketAddr,
        error: std::io::Error,
    },
    #[error("admin listener {addr}: {error}")]
    Admin {
        addr: SocketAddr,
        error: std::io::Error,
    },
    #[error("endpoint {endpoint}: {error}")]
    Endpoint {
        endpoint: String,
        error: transport::TransportError,
    },
    #[error("receiver {receiver:?}: {error}")]
    ReceiverTls {
        receiver: String,
        error: server::tls::PrepareError,
    },
    #[error("core {core}: {message}")]
    Core { core: usize, message: String },
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// Binds `cores` sockets for each receiver; returns them per core, plus the bound addresses.
fn bind_all(
    config: &Config,
    cores: usize,
) -> Result<(Vec<Vec<TcpListener>>, Vec<SocketAddr>), StartError> {
    let mut per_core: Vec<Vec<TcpListener>> = (0..cores).map(|_| Vec::new()).collect();
    let mut bound = Vec::new();
    for r in &config.receivers {
        let (listeners, addr) =
            server::listen::bind(r.http.listen, cores, true).map_err(|error| StartError::Bind {
                receiver: r.label.clone(),
                addr: r.http.listen,
                error,
            })?;
        for (slot, l) in per_core.iter_mut().zip(listeners) {
            slot.push(l);
        }
        bound.push(addr);
    }
    Ok((per_core, bound))
}

/// Resolves every HTTP destination (or its proxy) once at start (blocking is fine on the main
/// thread).
fn resolve_all(config: &Config, transports: &[std::sync::Arc<Transport>]) -> Vec<Vec<SocketAddr>> {
    let mut out = Vec::new();
    for w in &config.writers {
        for e in &w.endpoints {
            let t = transports.get(out.len());
            let dial = t.and_then(|t| transport::dial_target(t, e));
            out.push(match (&e.url, dial, t) {
                (EndpointUrl::Http { .. }, Some((host, port)), Some(t)) => match t.resolver.resolve(&host, port) {
                    Ok(a) => a,
                    Err(err) => {
                        tracing::warn!(endpoint = %e.url_text, error = %err, "cannot resolve upstream yet; will retry when sending");
                        Vec::new()
                    }
                },
                _ => Vec::new(),
            });
        }
    }
    out
}

/// Runs the gateway until SIGINT/SIGTERM and the drain finish. Returns the merged final
/// metrics of every core and the configuration they last ran (their destination order).
pub fn run(config: Config, opts: RunOptions) -> Result<(CoreSnapshot, Arc<Config>), StartError> {
    let config = Arc::new(config);
    let cores = opts.cores.max(1);
    let driver = opts.driver.resolve();
    let prepared = transport::prepare(&config)
        .map_err(|(endpoint, error)| StartError::Endpoint { endpoint, error })?;
    let (server_sec, receiver_watches) = server::tls::prepare_all(&config)
        .map_err(|(receiver, error)| StartError::ReceiverTls { receiver, error })?;
    let mut watches = prepared.watches;
    watches.extend(receiver_watches);
    crate::secrets::spawn_watcher(watches)?;
    let (listeners, bound) = bind_all(&config, cores)?;
    for (r, addr) in config.receivers.iter().zip(&bound) {
        tracing::info!(receiver = %r.label, addr = %addr, "receiver listening");
    }
    let addrs = resolve_all(&config, &prepared.transports);
    // Opened (and recovered) before any core starts; a spool that cannot be opened is logged
    // and its destination runs without one.
    let (spool_registry, spools) = crate::spool::Spools::open_all(&config);
    let pool = DefaultThreadPool::new(BLOCKING_THREADS);
    let (ready_tx, ready_rx) = crossbeam_channel::unbounded();
    let conn_slots: Vec<Arc<server::ConnSlots>> = config
        .receivers
        .iter()
        .map(|r| Arc::new(server::ConnSlots::new(r.http.conn_limit)))
        .collect();
    let budget = crate::budget::Global::new(config.gateway.max_inflight_bytes);
    let retired_drops = Arc::new(RetiredDrops::default());
    let mut handles: Vec<CoreHandle> = Vec::new();
    let mut threads = Vec::new();
    for (index, l) in listeners.into_iter().enumerate() {
        let (handle, control, wake) = worker::control_channel()?;
        handles.push(handle);
        let setup = CoreSetup {
            index,
            config: config.clone(),
            listeners: l,
            addrs: addrs.clone(),
            driver,
            transports: prepared.transports.clone(),
            receivers_sec: server_sec.clone(),
            conn_slots: conn_slots.clone(),
            budget: budget.clone(),
            retired_drops: retired_drops.clone(),
            blocking_pool: pool.clone(),
            ready: ready_tx.clone(),
            spools: spools.clone(),
        };
        let t = thread::Builder::new()
            .name(format!("pyrogate-core-{index}"))
            .spawn(move || {
                // Pinning is best-effort: it fails harmlessly where the CPU set is restricted.
                let _ = monoio::utils::bind_to_cpu_set([index % num_cpus()]);
                worker::run_core(setup, control, wake)
            })?;
        threads.push(t);
    }
    drop(ready_tx);
    let handles = Arc::new(handles);
    for index in 0..cores {
        match ready_rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(message)) => {
                for h in handles.iter() {
                    h.send(CoreMsg::Shutdown);
                }
                return Err(StartError::Core {
                    core: index,
                    message,
                });
            }
            Err(_) => {
                return Err(StartError::Core {
                    core: index,
                    message: "core thread exited during start-up".into(),
                });
            }
        }
    }

    let admin = TcpListener::bind(opts.admin_addr).map_err(|error| StartError::Admin {
        addr: opts.admin_addr,
        error,
    })?;
    tracing::info!(addr = %admin.local_addr()?, "admin listening");
    let reloader = Arc::new(Reloader::new(
        opts.config_path.clone(),
        config.clone(),
        bound,
        server_sec.iter().map(|p| p.client_auth.clone()).collect(),
        handles.clone(),
        retired_drops,
        spool_registry,
    ));
    {
        let (reloader, handles) = (reloader.clone(), handles.clone());
        thread::Builder::new()
            .name("pyrogate-admin".into())
            .spawn(move || admin::serve(admin, reloader, handles))?;
    }
    {
        let handles = handles.clone();
        let reloader = reloader.clone();
        let mut signals = signal_hook::iterator::Signals::new([
            signal_hook::consts::SIGINT,
            signal_hook::consts::SIGTERM,
            signal_hook::consts::SIGHUP,
        ])?;
        thread::Builder::new()
            .name("pyrogate-signals".into())
            .spawn(move || {
                let mut seen = 0;
                for sig in signals.forever() {
                    if sig == signal_hook::consts::SIGHUP {
                        tracing::info!("SIGHUP: reloading the config file");
                        // Off this thread, so a shutdown signal is handled during a reload.
                        let reloader = reloader.clone();
                        let _ = thread::Builder::new()
                            .name("pyrogate-reload".into())
                            .spawn(move || reloader.reload());
                        continue;
                    }
                    seen += 1;
                    if seen > 1 {
                        tracing::warn!(signal = sig, "second signal: exiting without draining");
                        std::process::exit(1);
                    }
                    tracing::info!(
                        signal = sig,
                        "shutting down: no new connections; draining queues"
                    );
                    for h in handles.iter() {
                        h.send(CoreMsg::Shutdown);
                    }
                }
            })?;
    }
    tracing::info!(cores, driver = driver.name(), "pyrogate ready");

    let mut total = CoreSnapshot::default();
    for t in threads {
        if let Ok(snap) = t.join() {
            total.merge(&snap);
        }
    }
    Ok((total, reloader.config()))
}

fn num_cpus() -> usize {
    thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}
