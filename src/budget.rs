//! Per-core share of the global in-flight byte budget.
//!
//! Owns: counting the bytes of request bodies held in memory on this core — from the moment a
//! body starts being read until the last destination has finished with it — and making
//! requests wait (bounded) for room. Does not own: the wait deadline or the 503 answer (see
//! `server::conn`). Hot path: yes; `Cell` arithmetic only.
//!
//! The configured `max_inflight_bytes` is split evenly between cores: SO_REUSEPORT spreads
//! connections evenly, and an even split keeps every check core-local (no atomics). A single
//! body larger than a core's whole share is admitted only while nothing else is held on that
//! core, so the worst case per core is `max(share, max_request_body_bytes)` and a large upload
//! is slowed by the budget, never refused outright because of it.

use std::cell::Cell;
use std::rc::Rc;
use std::time::Instant;

use crate::sync::Notify;

/// The byte budget of one core.
#[derive(Debug)]
pub struct Budget {
    limit: u64,
    used: Cell<u64>,
    released: Notify,
}

impl Budget {
    pub fn new(limit: u64) -> Rc<Self> {
        Rc::new(Budget {
            limit,
            used: Cell::new(0),
            released: Notify::new(),
        })
    }

    pub fn limit(&self) -> u64 {
        self.limit
    }

    pub fn used(&self) -> u64 {
        self.used.get()
    }

    /// Whether `more` bytes may be added to `used` bytes held, of which `own` are held by the
    /// asking reservation itself (a sole holder may exceed the limit).
    fn fits(&self, used: u64, own: u64, more: u64) -> bool {
        used == own || used.saturating_add(more) <= self.limit
    }

    /// Reserves `bytes` now if they fit.
    pub fn try_reserve(self: &Rc<Self>, bytes: u64) -> Option<Reservation> {
        let used = self.used.get();
        if !self.fits(used, 0, bytes) {
            return None;
        }
        self.used.set(used + bytes);
        Some(Reservation {
            budget: self.clone(),
            bytes: Cell::new(bytes),
        })
    }

    /// Reserves `bytes`, waiting for releases until `deadline`. `None` when they never fit in
    /// time (or can never fit: more than the whole per-core budget).
    pub async fn reserve_until(
        self: &Rc<Self>,
        bytes: u64,
        deadline: Instant,
    ) -> Option<Reservation> {
        if bytes > self.limit {
            return None;
        }
        loop {
            if let Some(r) = self.try_reserve(bytes) {
                return Some(r);
            }
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            monoio::time::timeout(deadline - now, self.released.notified())
                .await
                .ok()?;
        }
    }

    fn release(&self, bytes: u64) {
        self.used.set(self.used.get().saturating_sub(bytes));
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
        let used = self.budget.used.get();
        if !self.budget.fits(used, self.bytes.get(), more) {
            return false;
        }
        self.budget.used.set(used + more);
        self.bytes.set(self.bytes.get() + more);
        true
    }

    /// Grows by `more`, waiting for releases until `deadline`.
    pub async fn grow_until(&self, more: u64, deadline: Instant) -> bool {
        loop {
            if self.try_grow(more) {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            if monoio::time::timeout(deadline - now, self.budget.released.notified())
                .await
                .is_err()
            {
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
