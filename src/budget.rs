//! The global in-flight byte budget, as each core sees it.
//!
//! Owns: counting the bytes of request bodies held in memory — from the moment a body starts
//! being read until the last destination has finished with it — against one limit for the
//! whole process, and making requests wait (bounded) for room. Does not own: the wait deadline
//! or the 503 answer (see `server::conn`). Hot path: a few atomic operations per body (reserve,
//! grow steps of a chunked body, release), never per byte.
//!
//! One limit for all cores ([`Global`], shared by every core's [`Budget`]): a large upload on a
//! busy core is admitted while other cores hold little, instead of being refused by a fixed
//! per-core share. A body larger than the whole budget is admitted only while nothing else is
//! held anywhere, so the worst case is `max(max_inflight_bytes, max_request_body_bytes)` and a
//! large upload is slowed by the budget, never refused outright because of it. A waiting request
//! wakes at once on a release on its own core and re-checks every
//! [`RECHECK_INTERVAL`] for releases on the others.

use std::cell::Cell;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::sync::Notify;

/// How often a request waiting for room re-checks the shared count for bytes released on
/// another core (a release on its own core wakes it at once).
pub const RECHECK_INTERVAL: Duration = Duration::from_millis(5);

/// The process-wide count, shared by every core.
#[derive(Debug)]
pub struct Global {
    limit: u64,
    used: AtomicU64,
}

impl Global {
    pub fn new(limit: u64) -> Arc<Self> {
        Arc::new(Global {
            limit,
            used: AtomicU64::new(0),
        })
    }

    /// Bytes held on every core together.
    pub fn used(&self) -> u64 {
        self.used.load(Ordering::Acquire)
    }

    /// Adds `more` if it fits: within the limit, or when the only bytes held are the asker's
    /// own `own` (a sole holder may exceed the limit).
    fn try_add(&self, own: u64, more: u64) -> bool {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                (used == own || used.saturating_add(more) <= self.limit).then_some(used + more)
            })
            .is_ok()
    }

    fn sub(&self, bytes: u64) {
        // Never below zero: every subtraction matches an earlier successful addition.
        let _ = self
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                Some(used.saturating_sub(bytes))
            });
    }
}

/// One core's handle on the global budget, with what this core's reservations hold.
#[derive(Debug)]
pub struct Budget {
    global: Arc<Global>,
    /// Bytes held by this core's reservations (for `pyrogate_inflight_bytes`, summed).
    held: Cell<u64>,
    released: Notify,
}

impl Budget {
    /// A budget of its own (one core, or a test).
    pub fn new(limit: u64) -> Rc<Self> {
        Self::shared(Global::new(limit))
    }

    /// This core's handle on the process-wide `global`.
    pub fn shared(global: Arc<Global>) -> Rc<Self> {
        Rc::new(Budget {
            global,
            held: Cell::new(0),
            released: Notify::new(),
        })
    }

    pub fn limit(&self) -> u64 {
        self.global.limit
    }

    /// Bytes held by this core's reservations.
    pub fn used(&self) -> u64 {
        self.held.get()
    }

    /// Reserves `bytes` now if they fit.
    pub fn try_reserve(self: &Rc<Self>, bytes: u64) -> Option<Reservation> {
        if !self.global.try_add(0, bytes) {
            return None;
        }
        self.held.set(self.held.get() + bytes);
        Some(Reservation {
            budget: self.clone(),
            bytes: Cell::new(bytes),
        })
    }

    /// Reserves `bytes`, waiting for releases until `deadline`. `None` when they never fit in
    /// time (or can never fit: more than the whole budget).
    pub async fn reserve_until(
        self: &Rc<Self>,
        bytes: u64,
        deadline: Instant,
    ) -> Option<Reservation> {
        if bytes > self.global.limit {
            return None;
        }
        loop {
            if let Some(r) = self.try_reserve(bytes) {
                return Some(r);
            }
            if !self.wait_for_release(deadline).await {
                return None;
            }
        }
    }

    /// Waits for a release on this core, or the next re-check; `false` at the deadline.
    async fn wait_for_release(&self, deadline: Instant) -> bool {
        let now = Instant::now();
        if now >= deadline {
            return false;
        }
        let wait = (deadline - now).min(RECHECK_INTERVAL);
        let _ = monoio::time::timeout(wait, self.released.notified()).await;
        true
    }

    fn release(&self, bytes: u64) {
        self.global.sub(bytes);
        self.held.set(self.held.get().saturating_sub(bytes));
        self.released.notify_all();
    }
}

/// Bytes held against a [`Budget`]; released when dropped (when the last destination is done
/// with the body, the upload's `Rc` holding this goes away).
#[derive(Debug)]
pub struct Reservation {
    budget: Rc<Budget>,
    bytes: Cell<u64>,
}

impl Reservation {
    pub fn bytes(&self) -> u64 {
        self.bytes.get()
    }

    /// Grows the reservation by `more` bytes if they fit now.
    pub fn try_grow(&self, more: u64) -> bool {
        if !self.budget.global.try_add(self.bytes.get(), more) {
            return false;
        }
        self.budget.held.set(self.budget.held.get() + more);
        self.bytes.set(self.bytes.get() + more);
        true
    }

    /// Grows by `more`, waiting for releases until `deadline`.
    pub async fn grow_until(&self, more: u64, deadline: Instant) -> bool {
        loop {
            if self.try_grow(more) {
                return true;
            }
            if !self.budget.wait_for_release(deadline).await {
                return false;
            }
        }
    }

    /// Gives back what is reserved beyond `bytes` (a body that turned out smaller).
    pub fn shrink_to(&self, bytes: u64) {
        let held = self.bytes.get();
        if bytes < held {
            self.bytes.set(bytes);
            self.budget.release(held - bytes);
        }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.budget.release(self.bytes.get());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn reservations_are_released_on_drop() {
        let b = Budget::new(100);
        let r1 = b.try_reserve(60).unwrap();
        assert!(b.try_reserve(50).is_none());
        drop(r1);
        assert_eq!(b.used(), 0);
        assert!(b.try_reserve(100).is_some());
    }

    #[test]
    fn a_body_larger_than_the_share_waits_for_an_empty_budget() {
        let b = Budget::new(100);
        let small = b.try_reserve(10).unwrap();
        assert!(b.try_reserve(150).is_none());
        drop(small);
        let big = b.try_reserve(150).unwrap();
        assert!(b.try_reserve(1).is_none());
        assert!(big.try_grow(50), "a sole holder may keep growing");
        drop(big);
        assert_eq!(b.used(), 0);
    }

    #[test]
    fn growth_and_shrink_are_accounted() {
        let b = Budget::new(100);
        let other = b.try_reserve(5).unwrap();
        let r = b.try_reserve(10).unwrap();
        assert!(r.try_grow(80));
        assert!(!r.try_grow(20));
        assert_eq!(b.used(), 95);
        r.shrink_to(30);
        assert_eq!(b.used(), 35);
        drop(r);
        drop(other);
        assert_eq!(b.used(), 0);
    }

    #[monoio::test_all(timer_enabled = true)]
    async fn a_waiting_reservation_succeeds_when_room_is_released() {
        let b = Budget::new(100);
        let held = b.try_reserve(100).unwrap();
        let b2 = b.clone();
        let waiter = monoio::spawn(async move {
            b2.reserve_until(40, Instant::now() + Duration::from_secs(5))
                .await
                .map(|r| r.bytes())
        });
        monoio::time::sleep(Duration::from_millis(5)).await;
        drop(held);
        assert_eq!(waiter.await, Some(40));
    }

    #[test]
    fn one_limit_is_shared_by_every_core() {
        let global = Global::new(100);
        let (core_a, core_b) = (
            Budget::shared(global.clone()),
            Budget::shared(global.clone()),
        );
        let big = core_a.try_reserve(90).unwrap();
        assert!(
            core_b.try_reserve(20).is_none(),
            "core a's bytes count on core b"
        );
        let small = core_b.try_reserve(10).unwrap();
        assert_eq!((core_a.used(), core_b.used(), global.used()), (90, 10, 100));
        drop(big);
        assert!(
            core_b.try_reserve(80).is_some(),
            "room freed on core a is usable on core b"
        );
        drop(small);
        assert_eq!(global.used(), 0);
    }

    #[monoio::test_all(timer_enabled = true)]
    async fn a_waiter_sees_room_freed_on_another_core() {
        let global = Global::new(100);
        let (core_a, core_b) = (Budget::shared(global.clone()), Budget::shared(global));
        let held = core_a.try_reserve(100).unwrap();
        let waiter = monoio::spawn(async move {
            core_b
                .reserve_until(40, Instant::now() + Duration::from_secs(5))
                .await
                .map(|r| r.bytes())
        });
        monoio::time::sleep(Duration::from_millis(2)).await;
        drop(held);
        assert_eq!(waiter.await, Some(40));
    }

    #[monoio::test_all(timer_enabled = true)]
    async fn a_reservation_gives_up_at_the_deadline() {
        let b = Budget::new(100);
        let _held = b.try_reserve(100).unwrap();
        let got = b
            .reserve_until(1, Instant::now() + Duration::from_millis(20))
            .await;
        assert!(got.is_none());
    }
}
