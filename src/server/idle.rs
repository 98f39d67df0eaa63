//! The idle timeout of parked keep-alive connections: one registry per receiver per core
//! instead of a timer per connection.
//!
//! Owns: the `server_idle_timeout` deadlines of parked connections (those waiting for their
//! next request on readiness alone, see `conn::Conn::await_request`), the one ticker task that
//! wakes a connection whose deadline passed, and waking every parked connection when the core
//! shuts down or the receiver is retired by a reload, and [`Parked`], the wait that races a
//! connection's deadline against its socket's readiness. Does not own: the socket or its
//! readiness future (the caller passes it in).
//!
//! Why not a monoio `Sleep` per connection: its timer entry is cache-line padded (640 bytes,
//! 128-byte aligned), and the alignment spreads through the connection's whole task, which
//! made every parked connection cost 2.2 KB. A slot here is a few dozen bytes.
//!
//! A connection takes one [`Slot`] the first time it parks and gives it back when it closes.
//! The registry keeps at most one heap entry per slot: a slot's deadline only moves later
//! (each park is `now + server_idle_timeout`), so an entry that comes up early is pushed again
//! with the slot's current deadline instead of a new entry being added per park.

use std::cell::{Cell, RefCell};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::future::Future;
use std::num::NonZeroU64;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use crate::sync::{Notify, Shutdown};

/// A connection's place in an [`IdleTimers`] registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot {
    index: usize,
    /// Never 0 (a free slot's), which also makes `Option<Slot>` no larger than a `Slot`.
    ticket: NonZeroU64,
}

#[derive(Debug)]
struct SlotState {
    /// The ticket of the connection holding the slot; 0 when free.
    ticket: u64,
    deadline: Instant,
    parked: bool,
    /// The heap holds an entry for this slot.
    queued: bool,
    expired: bool,
    waker: Option<Waker>,
}

#[derive(Debug, Default)]
struct Inner {
    slots: Vec<SlotState>,
    free: Vec<usize>,
    next_ticket: u64,
    /// `(deadline, slot index, ticket)`, earliest first.
    heap: BinaryHeap<Reverse<(Instant, usize, u64)>>,
    /// When the ticker looks next (`None`: only when woken).
    ticker_at: Option<Instant>,
}

impl Inner {
    fn state(&mut self, slot: Slot) -> Option<&mut SlotState> {
        self.state_at(slot.index, slot.ticket.get())
    }

    fn state_at(&mut self, index: usize, ticket: u64) -> Option<&mut SlotState> {
        self.slots.get_mut(index).filter(|s| s.ticket == ticket)
    }
}

/// The idle deadlines of one receiver's parked connections on one core.
#[derive(Debug, Default)]
pub struct IdleTimers {
    inner: RefCell<Inner>,
    /// Wakes the ticker when a deadline earlier than its next look is added.
    rearm: Notify,
    /// Set once the core shuts down or the receiver is retired: every wait ends at once.
    closed: Cell<bool>,
}

impl IdleTimers {
    /// A slot for a connection, held until [`IdleTimers::release`].
    pub fn slot(&self) -> Slot {
        let mut inner = self.inner.borrow_mut();
        inner.next_ticket += 1;
        let ticket = NonZeroU64::new(inner.next_ticket).expect("tickets start at 1");
        let state = SlotState {
            ticket: ticket.get(),
            deadline: Instant::now(),
            parked: false,
            queued: false,
            expired: false,
            waker: None,
        };
        let index = match inner.free.pop() {
            Some(i) => {
                inner.slots[i] = state;
                i
            }
            None => {
                inner.slots.push(state);
                inner.slots.len() - 1
            }
        };
        Slot { index, ticket }
    }

    /// Gives a closed connection's slot back (its heap entry, if any, is dropped when it comes
    /// up).
    pub fn release(&self, slot: Slot) {
        let mut inner = self.inner.borrow_mut();
        if let Some(s) = inner.state(slot) {
            s.ticket = 0;
            s.parked = false;
            s.waker = None;
            inner.free.push(slot.index);
        }
        if inner.free.len() == inner.slots.len() {
            // The last connection closed: every heap entry is stale, and what a burst of
            // connections grew is given back.
            inner.slots = Vec::new();
            inner.free = Vec::new();
            inner.heap = BinaryHeap::new();
        }
    }

    /// The connection waits from now until `deadline` at the latest.
    fn park(&self, slot: Slot, deadline: Instant) {
        let mut inner = self.inner.borrow_mut();
        let Some(s) = inner.state(slot) else {
            return;
        };
        s.deadline = deadline;
        s.parked = true;
        s.expired = false;
        if s.queued {
            return;
        }
        s.queued = true;
        inner
            .heap
            .push(Reverse((deadline, slot.index, slot.ticket.get())));
        if inner.ticker_at.is_none_or(|at| deadline < at) {
            drop(inner);
            self.rearm.notify_all();
        }
    }

    /// Whether the parked connection's wait is over (deadline passed, or shutdown); if not,
    /// the task behind `cx` is woken when it is.
    fn poll_expired(&self, slot: Slot, cx: &mut Context<'_>) -> bool {
        if self.closed.get() {
            return true;
        }
        let mut inner = self.inner.borrow_mut();
        let Some(s) = inner.state(slot) else {
            return true;
        };
        if s.expired {
            return true;
        }
        match &mut s.waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            w => *w = Some(cx.waker().clone()),
        }
        false
    }

    /// Parks the connection in `slot` until `deadline` and waits for `ready` (its socket's
    /// readiness): `None` if the deadline passed (or the core is shutting down) first. The slot
    /// is unparked when the wait ends.
    pub fn wait<F: Future>(&self, slot: Slot, deadline: Instant, ready: F) -> Parked<'_, F> {
        self.park(slot, deadline);
        Parked {
            timers: self,
            slot,
            ready,
        }
    }

    /// The connection stopped waiting (bytes arrived, or it timed out).
    fn unpark(&self, slot: Slot) {
        if let Some(s) = self.inner.borrow_mut().state(slot) {
            s.parked = false;
            s.waker = None;
        }
    }

    /// Wakes the parked connections whose deadline is at or before `now`.
    fn expire(&self, now: Instant) {
        let mut woken = Vec::new();
        {
            let mut inner = self.inner.borrow_mut();
            while let Some(&Reverse((deadline, index, ticket))) = inner.heap.peek() {
                if deadline > now {
                    break;
                }
                inner.heap.pop();
                let Some(s) = inner.state_at(index, ticket) else {
                    continue;
                };
                s.queued = false;
                if !s.parked {
                    continue;
                }
                if s.deadline <= now {
                    s.expired = true;
                    woken.extend(s.waker.take());
                } else {
                    s.queued = true;
                    let later = s.deadline;
                    inner.heap.push(Reverse((later, index, ticket)));
                }
            }
        }
        for w in woken {
            w.wake();
        }
    }

    /// Ends every wait, now and to come.
    fn close(&self) {
        self.closed.set(true);
        let woken: Vec<Waker> = {
            let mut inner = self.inner.borrow_mut();
            inner.heap.clear();
            inner
                .slots
                .iter_mut()
                .filter_map(|s| s.waker.take())
                .collect()
        };
        for w in woken {
            w.wake();
        }
    }

    /// How many heap entries there are (at most one per slot, plus those of closed
    /// connections until their deadline).
    #[cfg(test)]
    fn queued(&self) -> usize {
        self.inner.borrow().heap.len()
    }

    /// The ticker: wakes connections as their deadlines pass, until the core shuts down or the
    /// receiver is retired, then ends every wait.
    pub async fn run(&self, shutdown: &Shutdown, retired: &Shutdown) {
        loop {
            let next = {
                let mut inner = self.inner.borrow_mut();
                let next = inner.heap.peek().map(|Reverse((at, _, _))| *at);
                inner.ticker_at = next;
                next
            };
            let rearm = self.rearm.notified();
            let stop = match next {
                Some(at) => monoio::select! {
                    _ = monoio::time::sleep_until(at.into()) => false,
                    _ = rearm => false,
                    _ = shutdown.wait() => true,
                    _ = retired.wait() => true,
                },
                None => monoio::select! {
                    _ = rearm => false,
                    _ = shutdown.wait() => true,
                    _ = retired.wait() => true,
                },
            };
            if stop {
                break;
            }
            self.expire(Instant::now());
        }
        self.close();
    }
}

pin_project_lite::pin_project! {
    /// A parked connection's wait ([`IdleTimers::wait`]): what a task holds while its
    /// connection is idle, so it is kept to the two references and the readiness future.
    pub struct Parked<'a, F> {
        timers: &'a IdleTimers,
        slot: Slot,
        #[pin]
        ready: F,
    }
}

impl<F: Future> Future for Parked<'_, F> {
    type Output = Option<F::Output>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let out = if this.timers.poll_expired(*this.slot, cx) {
            None
        } else {
            match this.ready.poll(cx) {
                Poll::Ready(r) => Some(r),
                Poll::Pending => return Poll::Pending,
            }
        };
        this.timers.unpark(*this.slot);
        Poll::Ready(out)
    }
}

#[cfg(test)]
mod tests {
    use super::IdleTimers;
    use crate::sync::test_waker::counting;
    use std::task::Context;
    use std::time::{Duration, Instant};

    #[test]
    fn a_parked_slot_expires_at_its_deadline_and_not_before() {
        let t = IdleTimers::default();
        let (count, waker) = counting();
        let mut cx = Context::from_waker(&waker);
        let s = t.slot();
        let start = Instant::now();
        t.park(s, start + Duration::from_secs(10));
        assert!(!t.poll_expired(s, &mut cx));
        t.expire(start + Duration::from_secs(9));
        assert!(!t.poll_expired(s, &mut cx));
        assert_eq!(count.get(), 0);
        t.expire(start + Duration::from_secs(10));
        assert_eq!(count.get(), 1);
        assert!(t.poll_expired(s, &mut cx));
    }

    #[test]
    fn parking_again_moves_the_deadline_without_a_second_entry() {
        let t = IdleTimers::default();
        let (count, waker) = counting();
        let mut cx = Context::from_waker(&waker);
        let s = t.slot();
        let start = Instant::now();
        for i in 0..100 {
            t.park(s, start + Duration::from_secs(10 + i));
            assert!(!t.poll_expired(s, &mut cx));
            t.unpark(s);
        }
        assert_eq!(t.queued(), 1);
        t.park(s, start + Duration::from_secs(200));
        assert!(!t.poll_expired(s, &mut cx));
        // The first entry comes up at 10 s and is moved to the slot's deadline.
        t.expire(start + Duration::from_secs(100));
        assert_eq!((t.queued(), count.get()), (1, 0));
        t.expire(start + Duration::from_secs(200));
        assert_eq!((t.queued(), count.get()), (0, 1));
        assert!(t.poll_expired(s, &mut cx));
    }

    #[test]
    fn a_connection_busy_at_its_deadline_is_not_woken_and_requeues_when_it_parks() {
        let t = IdleTimers::default();
        let (count, waker) = counting();
        let mut cx = Context::from_waker(&waker);
        let s = t.slot();
        let start = Instant::now();
        t.park(s, start + Duration::from_secs(1));
        assert!(!t.poll_expired(s, &mut cx));
        t.unpark(s);
        t.expire(start + Duration::from_secs(2));
        assert_eq!((t.queued(), count.get()), (0, 0));
        t.park(s, start + Duration::from_secs(3));
        assert_eq!(t.queued(), 1);
        assert!(!t.poll_expired(s, &mut cx));
        t.expire(start + Duration::from_secs(3));
        assert_eq!(count.get(), 1);
    }

    #[test]
    fn a_released_slot_is_reused_and_its_old_entry_is_ignored() {
        let t = IdleTimers::default();
        let (count, waker) = counting();
        let mut cx = Context::from_waker(&waker);
        let start = Instant::now();
        let old = t.slot();
        t.park(old, start + Duration::from_secs(1));
        t.release(old);
        let new = t.slot();
        assert_ne!(old, new);
        t.park(new, start + Duration::from_secs(5));
        assert!(!t.poll_expired(new, &mut cx));
        t.expire(start + Duration::from_secs(1));
        assert_eq!(count.get(), 0);
        assert!(!t.poll_expired(new, &mut cx));
        // A stale slot handle reads as expired, so a wait on it ends.
        assert!(t.poll_expired(old, &mut cx));
    }

    #[test]
    fn when_the_last_connection_closes_its_slots_and_entries_are_given_back() {
        let t = IdleTimers::default();
        let far = Instant::now() + Duration::from_secs(3600);
        let slots: Vec<_> = (0..1_000).map(|_| t.slot()).collect();
        for &s in &slots {
            t.park(s, far);
        }
        assert_eq!(t.queued(), 1_000);
        for &s in &slots[1..] {
            t.release(s);
        }
        assert_eq!(t.queued(), 1_000);
        t.release(slots[0]);
        assert_eq!(t.queued(), 0);
        assert_eq!(t.inner.borrow().slots.capacity(), 0);
        // A stale handle reads as expired; a new connection starts afresh.
        let (_, waker) = counting();
        let mut cx = Context::from_waker(&waker);
        assert!(t.poll_expired(slots[5], &mut cx));
        let s = t.slot();
        t.park(s, far);
        assert!(!t.poll_expired(s, &mut cx));
    }

    #[test]
    fn closing_wakes_every_parked_connection_and_ends_later_waits() {
        let t = IdleTimers::default();
        let (count, waker) = counting();
        let mut cx = Context::from_waker(&waker);
        let far = Instant::now() + Duration::from_secs(3600);
        let slots: Vec<_> = (0..3).map(|_| t.slot()).collect();
        for &s in &slots {
            t.park(s, far);
            assert!(!t.poll_expired(s, &mut cx));
        }
        t.close();
        assert_eq!(count.get(), 3);
        let late = t.slot();
        t.park(late, far);
        assert!(t.poll_expired(late, &mut cx));
    }

    #[monoio::test_all(timer_enabled = true)]
    async fn the_ticker_wakes_a_parked_connection_at_its_deadline_and_all_at_shutdown() {
        let timers = std::rc::Rc::new(IdleTimers::default());
        let shutdown = std::rc::Rc::new(crate::sync::Shutdown::default());
        let ticker = {
            let (timers, shutdown) = (timers.clone(), shutdown.clone());
            monoio::spawn(async move {
                timers
                    .run(&shutdown, &crate::sync::Shutdown::default())
                    .await
            })
        };
        let wait = |s| {
            let timers = timers.clone();
            std::future::poll_fn(move |cx| {
                if timers.poll_expired(s, cx) {
                    std::task::Poll::Ready(())
                } else {
                    std::task::Poll::Pending
                }
            })
        };
        let start = Instant::now();
        let (soon, never) = (timers.slot(), timers.slot());
        timers.park(never, start + Duration::from_secs(3600));
        timers.park(soon, start + Duration::from_millis(50));
        wait(soon).await;
        let waited = start.elapsed();
        assert!(waited >= Duration::from_millis(50), "{waited:?}");
        shutdown.trigger();
        wait(never).await;
        ticker.await;
    }
}
