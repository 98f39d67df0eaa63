//! Configuration reload (`SIGHUP`, `POST /-/reload` on the admin listener): re-reading the
//! config file and handing the result to every core.
//!
//! Owns: the running configuration as the process sees it ([`Reloader::config`]), the blocking
//! half of a reload — reading and validating the file (the diagnostics `pyrogate validate`
//! prints), deciding which receivers keep their sockets and which destinations keep their
//! queues, binding new sockets, building new destinations' transports and resolving their
//! hosts — then sending one [`ReloadPlan`] per core and waiting for every core to apply it,
//! and the reload metrics. Runs on the admin and signal threads, never on a core thread; one
//! reload at a time. Does not own: applying a plan on a core (`worker`), nor anything on the
//! data path.
//!
//! What a reload keeps, by identity:
//! - a receiver whose label and `http` block are unchanged keeps its sockets, connections and
//!   counters; its per-request settings (`forward_to`, `acknowledge`, `forward_headers`,
//!   `client_auth`) switch for requests that start after the reload, and its TLS certificate
//!   files are read again for connections accepted after it. `client_auth` is prepared again
//!   only when its settings changed (an unchanged secret file keeps its one watch). Any other receiver is
//!   new: bound before the old one (if any) closes.
//! - a destination whose writer label and `endpoint` block are unchanged keeps its queue,
//!   connections and counters. A removed one drains for `graceful_shutdown_timeout`.
//! - relabel components keep their counters by label, and their cache when their rules are
//!   unchanged; writers pick up new `external_labels` at once.
//!
//! The `pyrogate` and `logging` blocks are read at start only: a reload that changes them says
//! so in the log and applies the rest.
//!
//! Metric names follow Prometheus' own (`prometheus_config_last_reload_successful`,
//! `prometheus_config_last_reload_success_timestamp_seconds`, cmd/prometheus/main.go); Alloy's
//! equivalents are `alloy_config_last_load_successful` and
//! `alloy_config_last_load_success_timestamp_seconds` (its `instrumentation` package,
//! `InstrumentConfig`), and its failure counter `alloy_config_load_failures_total` is mirrored
//! as `pyrogate_config_load_failures_total`. Like both, the success timestamp is set by the
//! start-up load too.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::config::{self, Config, Endpoint, EndpointUrl, ProcessEnvironment};
use crate::server::client_auth::Prepared as ClientAuthPrepared;
use crate::server::{self, ConnSlots};
use crate::upstream::{self, transport};
use crate::worker::{
    CoreHandle, CoreMsg, DestinationPlan, ListenerPlan, ReceiverPlan, ReloadPlan, RetiredDrops,
};

/// How long a reload waits for each core to apply its plan.
const CORE_APPLY_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a reload was not applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReloadError {
    /// The new configuration is invalid or cannot be used (diagnostics, a socket that cannot
    /// be bound, a TLS file that does not load); the running configuration stays.
    #[error("{0}")]
    Invalid(String),
    /// A core did not apply the plan in time or refused it (shutting down).
    #[error("{0}")]
    NotApplied(String),
}

impl ReloadError {
    /// The admin answer's status: 400 for a configuration that cannot be used, 500 when the
    /// process could not apply a valid one.
    pub fn status(&self) -> u16 {
        match self {
            ReloadError::Invalid(_) => 400,
            ReloadError::NotApplied(_) => 500,
        }
    }
}

/// What a successful reload changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Applied {
    pub receivers_kept: usize,
    pub receivers_new: usize,
    pub receivers_removed: usize,
    pub destinations_kept: usize,
    pub destinations_new: usize,
    pub destinations_removed: usize,
}

#[derive(Debug)]
struct State {
    config: Arc<Config>,
    /// The address each receiver is bound to (`config.receivers` order).
    bound: Vec<SocketAddr>,
    /// Each receiver's prepared `client_auth` (`config.receivers` order): reused while its
    /// settings are unchanged, so a reload starts no second watch of the same secret file.
    client_auth: Vec<Option<ClientAuthPrepared>>,
    /// Every spool the process has open: a destination a reload adds spools too.
    spools: crate::spool::Spools,
}

/// The process's handle on its configuration.
#[derive(Debug)]
pub struct Reloader {
    path: PathBuf,
    cores: Arc<Vec<CoreHandle>>,
    state: Mutex<State>,
    /// A copy of `state.config` readable while a reload runs.
    current: Mutex<Arc<Config>>,
    successful: AtomicBool,
    /// Milliseconds since the Unix epoch of the last successful load.
    success_ms: AtomicU64,
    failures: AtomicU64,
    retired_drops: Arc<RetiredDrops>,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl Reloader {
    /// The reloader of a gateway started from `path` with `config`, whose receivers are bound
    /// to `bound` and run with `client_auth` (both in `config.receivers` order).
    pub fn new(
        path: PathBuf,
        config: Arc<Config>,
        bound: Vec<SocketAddr>,
        client_auth: Vec<Option<ClientAuthPrepared>>,
        cores: Arc<Vec<CoreHandle>>,
        retired_drops: Arc<RetiredDrops>,
        spools: crate::spool::Spools,
    ) -> Self {
        Reloader {
            path,
            cores,
            current: Mutex::new(config.clone()),
            state: Mutex::new(State {
                config,
                bound,
                client_auth,
                spools,
            }),
            successful: AtomicBool::new(true),
            success_ms: AtomicU64::new(now_ms()),
            failures: AtomicU64::new(0),
            retired_drops,
        }
    }

    /// The configuration the cores run.
    pub fn config(&self) -> Arc<Config> {
        self.current
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Runs `f` with the running configuration while no reload is in progress, so that what
    /// `f` gathers from the cores (a metrics snapshot, indexed by that configuration's
    /// destinations) matches it. A scrape during a reload waits for the reload.
    pub fn settled<R>(&self, f: impl FnOnce(&Config) -> R) -> R {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        f(&state.config)
    }

    /// Re-reads the config file and applies it; logs the outcome. On an error the running
    /// configuration stays.
    pub fn reload(&self) -> Result<Applied, ReloadError> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let result = self.reload_locked(&mut state);
        match &result {
            Ok(a) => {
                self.successful.store(true, Ordering::Relaxed);
                self.success_ms.store(now_ms(), Ordering::Relaxed);
                *self.current.lock().unwrap_or_else(|e| e.into_inner()) = state.config.clone();
                tracing::info!(
                    config = %self.path.display(),
                    receivers_kept = a.receivers_kept,
                    receivers_new = a.receivers_new,
                    receivers_removed = a.receivers_removed,
                    destinations_kept = a.destinations_kept,
                    destinations_new = a.destinations_new,
                    destinations_removed = a.destinations_removed,
                    "config reloaded"
                );
                for line in crate::pipeline_summary(&state.config) {
                    tracing::info!(pipeline = %line, "pipeline");
                }
            }
            Err(e) => {
                self.successful.store(false, Ordering::Relaxed);
                self.failures.fetch_add(1, Ordering::Relaxed);
                tracing::error!(config = %self.path.display(), error = %e.to_string().trim_end(), "config reload failed; the running configuration stays");
            }
        }
        result
    }

    fn reload_locked(&self, state: &mut State) -> Result<Applied, ReloadError> {
        let loaded = config::load_file(&self.path, &ProcessEnvironment)
            .map_err(|d| ReloadError::Invalid(d.to_string()))?;
        if !loaded.warnings.is_empty() {
            tracing::warn!(warnings = %loaded.warnings.to_string().trim_end(), "config warnings");
        }
        let new = loaded.config;
        let old = state.config.clone();
        if new.gateway != old.gateway {
            tracing::warn!("the pyrogate block changed: it takes effect at the next restart");
        }
        if new.logging != old.logging {
            tracing::warn!("the logging block changed: it takes effect at the next restart");
        }
        let cores = self.cores.len().max(1);
        let mut applied = Applied::default();

        // Receivers: keep those whose label and http block are unchanged, bind the others.
        // Certificate files are read again (rotation); client_auth is prepared again only
        // where its settings changed.
        let tls = server::tls::prepare(&new)
            .map_err(|(r, e)| ReloadError::Invalid(format!("receiver {r:?}: http > tls: {e}")))?;
        let mut watches = Vec::new();
        let mut client_auth = Vec::with_capacity(new.receivers.len());
        for r in &new.receivers {
            let Some(c) = &r.client_auth else {
                client_auth.push(None);
                continue;
            };
            let running = old
                .receivers
                .iter()
                .zip(&state.client_auth)
                .find(|(o, _)| o.client_auth.as_ref() == Some(c))
                .and_then(|(_, p)| p.clone());
            let prepared = match running {
                Some(p) => p,
                None => {
                    let (p, w) = server::client_auth::prepare(c).map_err(|e| {
                        ReloadError::Invalid(format!("receiver {:?}: client_auth: {e}", r.label))
                    })?;
                    watches.extend(w);
                    p
                }
            };
            client_auth.push(Some(prepared));
        }
        let mut per_core: Vec<Vec<ReceiverPlan>> = (0..cores).map(|_| Vec::new()).collect();
        let mut kept = vec![false; old.receivers.len()];
        let same: Vec<Option<usize>> =
            new.receivers
                .iter()
                .map(|r| {
                    let j =
                        old.receivers.iter().enumerate().position(|(j, o)| {
                            !kept[j] && o.label == r.label && o.http == r.http
                        })?;
                    kept[j] = true;
                    Some(j)
                })
                .collect();
        // Ports of receivers this reload replaces: their new sockets are bound beside the
        // running ones (SO_REUSEPORT) before those close. Any other port must be free.
        let released: Vec<u16> = state
            .bound
            .iter()
            .zip(&kept)
            .filter(|(_, k)| !**k)
            .map(|(b, _)| b.port())
            .collect();
        let mut bound = Vec::with_capacity(new.receivers.len());
        let mut listening = Vec::new();
        let security = tls.into_iter().zip(client_auth.iter().cloned());
        for ((r, (tls, auth)), same) in new.receivers.iter().zip(security).zip(same) {
            if let Some(j) = same {
                applied.receivers_kept += 1;
                bound.push(state.bound.get(j).copied().unwrap_or(r.http.listen));
                for plans in per_core.iter_mut() {
                    plans.push(ReceiverPlan {
                        listener: ListenerPlan::Kept(j),
                        client_auth: auth.clone(),
                        tls: tls.clone(),
                    });
                }
                continue;
            }
            let rebinding = r.http.listen.port() != 0 && released.contains(&r.http.listen.port());
            let (listeners, addr) = server::listen::bind(r.http.listen, cores, !rebinding)
                .map_err(|e| {
                    ReloadError::Invalid(format!(
                        "receiver {:?}: cannot listen on {}: {e}",
                        r.label, r.http.listen
                    ))
                })?;
            listening.push((r.label.clone(), addr));
            applied.receivers_new += 1;
            bound.push(addr);
            let slots = Arc::new(ConnSlots::new(r.http.conn_limit));
            for (plans, listener) in per_core.iter_mut().zip(listeners) {
                plans.push(ReceiverPlan {
                    listener: ListenerPlan::New {
                        listener,
                        slots: slots.clone(),
                    },
                    client_auth: auth.clone(),
                    tls: tls.clone(),
                });
            }
        }
        applied.receivers_removed = kept.iter().filter(|k| !**k).count();

        // Destinations: keep those of the same writer with the same endpoint settings.
        let running: Vec<(&str, &Endpoint)> = old
            .writers
            .iter()
            .flat_map(|w| w.endpoints.iter().map(move |e| (w.label.as_str(), e)))
            .collect();
        let mut used = vec![false; running.len()];
        let mut destinations = Vec::new();
        let env = |k: &str| std::env::var(k).ok();
        // Each destination's spool (the running settings: the `pyrogate` block is read at
        // start only); a new destination with the writer and URL of a removed one shares the
        // spool that one still replays.
        let mut spools = state.spools.for_config(&new).into_iter();
        for w in &new.writers {
            for e in &w.endpoints {
                let spool = spools.next().flatten();
                let same = running
                    .iter()
                    .enumerate()
                    .position(|(i, (l, o))| !used[i] && *l == w.label && *o == e);
                if let Some(i) = same {
                    used[i] = true;
                    applied.destinations_kept += 1;
                    destinations.push(DestinationPlan::Kept(i));
                    continue;
                }
                let (mut t, watch) = transport::build(e, &env).map_err(|err| {
                    ReloadError::Invalid(format!("endpoint {}: {err}", e.url_text))
                })?;
                t.resolver = upstream::resolve::Resolver::new(new.gateway.hosts_file.clone());
                t.resolver.check().map_err(|err| {
                    ReloadError::Invalid(format!("endpoint {}: {err}", e.url_text))
                })?;
                watches.extend(watch);
                let addrs = resolve(&t, e);
                applied.destinations_new += 1;
                destinations.push(DestinationPlan::New {
                    addrs,
                    transport: Arc::new(t),
                    spool,
                });
            }
        }
        applied.destinations_removed = used.iter().filter(|u| !**u).count();

        // Every core applies its plan; the running configuration changes once all did.
        let new = Arc::new(new);
        let (done, results) = crossbeam_channel::unbounded();
        for (core, receivers) in self.cores.iter().zip(per_core) {
            core.send(CoreMsg::Reload(Box::new(ReloadPlan {
                config: new.clone(),
                receivers,
                destinations: destinations.clone(),
                done: done.clone(),
            })));
        }
        drop(done);
        let mut failed = Vec::new();
        for i in 0..self.cores.len() {
            match results.recv_timeout(CORE_APPLY_TIMEOUT) {
                Ok(Ok(())) => {}
                Ok(Err(e)) => failed.push(e),
                Err(_) => {
                    failed.push(format!(
                        "{} of {} cores did not answer within {CORE_APPLY_TIMEOUT:?}",
                        self.cores.len() - i,
                        self.cores.len()
                    ));
                    break;
                }
            }
        }
        // Watch the new secret files whatever happened: some core may run with them.
        if let Err(e) = crate::secrets::spawn_watcher(watches) {
            tracing::warn!(error = %e, "cannot watch the reloaded config's secret files");
        }
        if !failed.is_empty() {
            return Err(ReloadError::NotApplied(format!(
                "the configuration was not applied on every core: {}",
                failed.join("; ")
            )));
        }
        for (receiver, addr) in listening {
            tracing::info!(receiver = %receiver, addr = %addr, "receiver listening");
        }
        state.config = new;
        state.bound = bound;
        state.client_auth = client_auth;
        Ok(applied)
    }

    /// The reload metrics, in the Prometheus text format.
    pub fn render_metrics(&self) -> String {
        let mut out = String::with_capacity(1024);
        let ms = self.success_ms.load(Ordering::Relaxed);
        let gauges: [(&str, &str, &str, String); 5] = [
            (
                "pyrogate_config_last_reload_successful",
                "gauge",
                "Whether the last configuration reload attempt was successful.",
                u8::from(self.successful.load(Ordering::Relaxed)).to_string(),
            ),
            (
                "pyrogate_config_last_reload_success_timestamp_seconds",
                "gauge",
                "Timestamp of the last successful configuration load (start or reload).",
                format!("{}.{:03}", ms / 1000, ms % 1000),
            ),
            (
                "pyrogate_config_load_failures_total",
                "counter",
                "Configuration reloads that failed.",
                self.failures.load(Ordering::Relaxed).to_string(),
            ),
            (
                "pyrogate_reload_dropped_uploads_total",
                "counter",
                "Uploads still queued for an endpoint a reload removed when its graceful_shutdown_timeout passed (dropped with reason reload).",
                self.retired_drops
                    .uploads
                    .load(Ordering::Relaxed)
                    .to_string(),
            ),
            (
                "pyrogate_reload_dropped_profiles_total",
                "counter",
                "Profiles in those uploads.",
                self.retired_drops
                    .profiles
                    .load(Ordering::Relaxed)
                    .to_string(),
            ),
        ];
        for (name, kind, help, value) in gauges {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
            );
        }
        out
    }
}

/// Resolves a new destination's dial target (blocking; the reload thread may block). An
/// unresolvable name is retried by the destination's DNS refresher.
fn resolve(t: &transport::Transport, e: &Endpoint) -> Vec<SocketAddr> {
    match (&e.url, transport::dial_target(t, e)) {
        (EndpointUrl::Http { .. }, Some((host, port))) => match t.resolver.resolve(&host, port) {
            Ok(a) => a,
            Err(err) => {
                tracing::warn!(endpoint = %e.url_text, error = %err, "cannot resolve upstream yet; will retry when sending");
                Vec::new()
            }
        },
        _ => Vec::new(),
    }
}
