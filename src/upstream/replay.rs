//! Replay from a destination's spool.
//!
//! Owns: the per-core replay task ([`run`]) that sends spooled uploads, oldest first, once the
//! destination answers again — one probe at a time while it fails, then up to
//! [`replay_concurrency`] at once per core, what it holds charged to the in-flight budget. Does
//! not own: the files ([`crate::spool`]), spilling ([`super::spill`]) or the wire (`sender`).
//! File I/O runs on the blocking pool.
//!
//! Healthy path: never here. A destination that answers never spills.

use std::cell::Cell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::Destination;
use super::sender;
use super::spill::spillable;
use crate::budget::{Budget, Reservation};
use crate::metrics::DropReason;
use crate::spool::store::Taken;
use crate::spool::{Store, unix_ms};
use crate::sync::{Notify, Shutdown};
use crate::upload::{Api, DeliveryError, Outbound, Payload, Requests, Ticket, Upload};

/// Spooled uploads one core sends at once for one destination once it answers again: half its
/// `max_connections_per_core`, so new uploads keep the other half.
pub fn replay_concurrency(dest: &Destination) -> usize {
    (dest.endpoint.senders_per_core / 2).max(1)
}
/// Bytes of spooled uploads one core holds in memory for one destination's replay: no new
/// record is read while this much is being sent (one record is always allowed, so a record
/// larger than this is still replayed, alone). Within this cap, every record being replayed is
/// also charged to the in-flight budget, like a client's body: a replay never pushes the
/// process past `max_inflight_bytes`, and new uploads come first when the budget is full.
pub const REPLAY_MAX_BYTES: u64 = 64 * 1024 * 1024;
/// How often a failing destination is probed with its oldest spooled upload.
const PROBE_INTERVAL: Duration = Duration::from_secs(1);
/// How often an idle replay task looks for work and drops expired records.
const IDLE_POLL: Duration = Duration::from_millis(250);

async fn blocking<T: Send + 'static>(
    store: &Arc<Store>,
    f: impl FnOnce(&Store) -> T + Send + 'static,
) -> Option<T> {
    let store = store.clone();
    monoio::spawn_blocking(move || f(&store)).await.ok()
}

/// Rebuilds the queued form of a spooled upload: the same target, forwarded headers and
/// bodies, with no client deadline (the client has its answer).
fn outbound_of(t: &Taken, reservation: Reservation) -> Outbound {
    let m = &t.record.meta;
    let age = Duration::from_millis(unix_ms().saturating_sub(m.accepted_at_unix_ms));
    let now = Instant::now();
    let upload = Rc::new(Upload {
        headers: m.headers.clone(),
        ticket: Ticket::new(1),
        received_at: now.checked_sub(age).unwrap_or(now),
        reservation: Some(reservation),
    });
    let mut bodies: Vec<Payload> = t
        .record
        .requests
        .iter()
        .cloned()
        .map(Payload::Whole)
        .collect();
    let requests = match (m.api, bodies.pop()) {
        (Api::Ingest | Api::Otlp(_), Some(one)) if bodies.is_empty() => Requests::One(one),
        (_, last) => {
            bodies.extend(last);
            Requests::Sequence(bodies)
        }
    };
    Outbound::new(
        upload,
        m.api,
        None,
        m.target.clone(),
        requests,
        m.profiles,
        m.bytes,
    )
}

/// Sends one spooled upload and settles it in the spool: delivered or rejected leaves,
/// anything retryable waits again.
async fn replay_one(
    dest: Rc<Destination>,
    store: Arc<Store>,
    taken: Taken,
    reservation: Reservation,
) {
    let item = outbound_of(&taken, reservation);
    dest.metrics.record_unspooled(item.profiles);
    dest.in_flight.set(dest.in_flight.get() + 1);
    let result = sender::deliver(&dest, &item).await;
    let entry = taken.entry;
    match result {
        Ok(()) => {
            dest.note_success();
            dest.metrics
                .record_sent(item.bytes, item.profiles, item.upload.received_at.elapsed());
            blocking(&store, move |s| s.ack(&entry, true)).await;
            item.finish(Ok(()));
        }
        Err(e) if spillable(e.error) => {
            dest.note_failure();
            dest.metrics.record_respooled(item.profiles);
            blocking(&store, move |s| s.nack(&entry)).await;
            item.finish(Err(e.error));
        }
        Err(e) => {
            if matches!(e.error, DeliveryError::Status { .. }) {
                dest.note_success();
            }
            dest.metrics
                .record_dropped(item.bytes, item.profiles, DropReason::Rejected);
            blocking(&store, move |s| s.ack(&entry, false)).await;
            item.finish(Err(e.error));
        }
    }
    // In flight until the spool knows the outcome, so the shutdown drain waits for it.
    dest.in_flight.set(dest.in_flight.get() - 1);
    dest.settled.notify_all();
}

/// The replay task of one destination on one core: runs until shutdown. What it holds in
/// memory is charged to `budget`, the core's share of the in-flight budget.
pub async fn run(dest: Rc<Destination>, budget: Rc<Budget>, shutdown: Rc<Shutdown>) {
    let Some(store) = dest.spool.clone() else {
        return;
    };
    let active = Rc::new(Cell::new(0usize));
    let active_bytes = Rc::new(Cell::new(0u64));
    let done = Rc::new(Notify::new());
    let mut last_expire = Instant::now();
    let mut last_probe: Option<Instant> = None;
    while !shutdown.is_triggered() {
        let failing = dest.failing_since.get().is_some();
        // While the destination fails, one probe at a time; then up to the concurrency.
        let limit = if failing {
            1
        } else {
            replay_concurrency(&dest)
        };
        if active.get() >= limit || (active.get() > 0 && active_bytes.get() >= REPLAY_MAX_BYTES) {
            let _ = monoio::time::timeout(IDLE_POLL, done.notified()).await;
            continue;
        }
        if last_expire.elapsed() >= IDLE_POLL && store.has_waiting() {
            last_expire = Instant::now();
            blocking(&store, |s| s.expire(unix_ms())).await;
        }
        if !store.has_waiting() {
            // A destination a reload removed is done once its spool is empty.
            if dest.queue.is_closed() && active.get() == 0 {
                break;
            }
            if shutdown.wait_timeout(IDLE_POLL).await {
                break;
            }
            continue;
        }
        if failing && let Some(p) = last_probe {
            let since = p.elapsed();
            if since < PROBE_INTERVAL {
                if shutdown.wait_timeout(PROBE_INTERVAL - since).await {
                    break;
                }
                continue;
            }
        }
        let Some(Some(taken)) = blocking(&store, |s| s.take(unix_ms())).await else {
            continue;
        };
        let size = taken.entry.len;
        // Charged like a client's body (a record larger than the whole budget is charged the
        // whole budget). While the budget stays full, new uploads come first: the record goes
        // back to the front of the spool.
        let charge = size.min(budget.limit());
        let Some(reservation) = budget
            .reserve_until(charge, Instant::now() + IDLE_POLL)
            .await
        else {
            let entry = taken.entry;
            blocking(&store, move |s| s.nack(&entry)).await;
            if shutdown.wait_timeout(IDLE_POLL).await {
                break;
            }
            continue;
        };
        active.set(active.get() + 1);
        active_bytes.set(active_bytes.get() + size);
        let (d, s, a, b, n) = (
            dest.clone(),
            store.clone(),
            active.clone(),
            active_bytes.clone(),
            done.clone(),
        );
        monoio::spawn(async move {
            replay_one(d, s, taken, reservation).await;
            a.set(a.get() - 1);
            b.set(b.get() - size);
            n.notify_all();
        });
        if failing {
            last_probe = Some(Instant::now());
            // Wait for the probe's answer before anything else.
            while active.get() > 0 {
                done.notified().await;
            }
        }
    }
}
