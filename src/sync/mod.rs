//! Single-threaded async primitives for one core: [`Notify`] (a wake-all / wake-one signal),
//! [`Shutdown`] (the per-core shutdown flag) and [`Queue`] (a bounded MPMC queue).
//!
//! Owns: waking tasks on the same monoio runtime when some per-core state changed (queue room,
//! budget released, shutdown). Does not own: the state itself; callers re-check their condition
//! after every wake-up. Hot path: yes; no allocation once the waiter list has grown. A leaf:
//! depends on nothing else in the crate.
//!
//! Correctness relies on the thread-per-core model: between a caller's condition check and the
//! first poll of [`Notify::notified`] no other task runs, so a wake-up cannot be lost.

mod queue;
mod shutdown;

pub use queue::Queue;
pub use shutdown::Shutdown;

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

/// Wakes every task currently waiting; a generation counter makes late polls see the change.
///
/// A waiter that goes away before it is woken (a `select!` branch that lost, a request that
/// ended) takes its waker out of the list when its [`Notified`] is dropped: a waker keeps its
/// task's allocation alive, so a stale one left behind by every connection that ever waited
/// would keep every closed connection's task in memory until the list is drained.
#[derive(Debug, Default)]
pub struct Notify {
    generation: Cell<u64>,
    waiters: RefCell<Waiters>,
}

/// Waiter slots a [`Notify`] keeps once nobody waits (more were grown by a burst, and are given
/// back).
const KEEP_WAITERS: usize = 64;

/// The registered wakers: slots reused through a free list, each tagged with a ticket (unique
/// for the list's life) so a [`Notified`] can tell its own registration from a later one in
/// the same slot, and so [`Notify::notify_one`] can pick the longest waiting.
#[derive(Debug, Default)]
struct Waiters {
    slots: Vec<Option<(u64, Waker)>>,
    free: Vec<usize>,
    next_ticket: u64,
}

impl Waiters {
    fn register(&mut self, waker: Waker) -> (usize, u64) {
        let ticket = self.next_ticket;
        self.next_ticket += 1;
        let slot = match self.free.pop() {
            Some(slot) => {
                self.slots[slot] = Some((ticket, waker));
                slot
            }
            None => {
                self.slots.push(Some((ticket, waker)));
                self.slots.len() - 1
            }
        };
        (slot, ticket)
    }

    /// The registration `(slot, ticket)`'s waker, if it is still in the list.
    fn get_mut(&mut self, (slot, ticket): (usize, u64)) -> Option<&mut Waker> {
        match self.slots.get_mut(slot) {
            Some(Some((t, waker))) if *t == ticket => Some(waker),
            _ => None,
        }
    }

    fn remove(&mut self, reg: (usize, u64)) {
        if self.get_mut(reg).is_none() {
            return;
        }
        self.slots[reg.0] = None;
        self.free.push(reg.0);
        if self.free.len() == self.slots.len() {
            // Nobody waits: start again from slot 0. The room stays for the next waiters unless
            // a burst grew it (every connection of a core waiting on its shutdown signal).
            if self.slots.capacity() > KEEP_WAITERS {
                self.slots = Vec::new();
                self.free = Vec::new();
            } else {
                self.slots.clear();
                self.free.clear();
            }
        }
    }

    fn len(&self) -> usize {
        self.slots.len() - self.free.len()
    }
}

impl Notify {
    pub fn new() -> Self {
        Self::default()
    }

    /// Wakes all tasks waiting in [`Notify::notified`].
    pub fn notify_all(&self) {
        self.generation.set(self.generation.get().wrapping_add(1));
        let slots = {
            let mut waiters = self.waiters.borrow_mut();
            waiters.free.clear();
            std::mem::take(&mut waiters.slots)
        };
        for (_, w) in slots.into_iter().flatten() {
            w.wake();
        }
    }

    /// Wakes one waiting task (the longest waiting). Use where any single waiter can do the
    /// work (an item for one of several idle senders), so a push does not wake every sender.
    /// The woken task must pass the signal on if it leaves work behind (see `Queue::pop`).
    pub fn notify_one(&self) {
        self.generation.set(self.generation.get().wrapping_add(1));
        let waker = {
            let mut waiters = self.waiters.borrow_mut();
            let oldest = waiters
                .slots
                .iter()
                .enumerate()
                .filter_map(|(i, s)| s.as_ref().map(|(t, _)| (*t, i)))
                .min();
            oldest.and_then(|(ticket, slot)| {
                let waker = waiters.get_mut((slot, ticket)).cloned();
                waiters.remove((slot, ticket));
                waker
            })
        };
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// Completes at the next [`Notify::notify_all`] or [`Notify::notify_one`] after this call
    /// (for `notify_one`, only the woken task is sure to be polled).
    pub fn notified(&self) -> Notified<'_> {
        Notified {
            notify: self,
            generation: self.generation.get(),
            registered: None,
        }
    }

    /// How many wakers are registered (tasks waiting now).
    pub fn waiting(&self) -> usize {
        self.waiters.borrow().len()
    }
}

/// Future returned by [`Notify::notified`]; dropping it unregisters its waker.
#[derive(Debug)]
pub struct Notified<'a> {
    notify: &'a Notify,
    generation: u64,
    /// Where this future's waker sits in the list, once polled.
    registered: Option<(usize, u64)>,
}

impl Future for Notified<'_> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let notify = self.notify;
        let mut waiters = notify.waiters.borrow_mut();
        if notify.generation.get() != self.generation {
            if let Some(reg) = self.registered.take() {
                waiters.remove(reg);
            }
            return Poll::Ready(());
        }
        match self.registered.and_then(|reg| waiters.get_mut(reg)) {
            Some(w) if w.will_wake(cx.waker()) => {}
            Some(w) => *w = cx.waker().clone(),
            None => self.registered = Some(waiters.register(cx.waker().clone())),
        }
        Poll::Pending
    }
}

impl Drop for Notified<'_> {
    fn drop(&mut self) {
        if let Some(reg) = self.registered {
            self.notify.waiters.borrow_mut().remove(reg);
        }
    }
}

/// A waker that counts its wake-ups, for unit tests of per-core wake-up logic.
#[cfg(test)]
pub(crate) mod test_waker {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::{Wake, Waker};

    pub struct Count(AtomicUsize);

    impl Count {
        /// Wake-ups so far.
        pub fn get(&self) -> usize {
            self.0.load(Ordering::SeqCst)
        }
    }

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// A waker and the count of its wake-ups.
    pub fn counting() -> (Arc<Count>, Waker) {
        let c = Arc::new(Count(AtomicUsize::new(0)));
        (c.clone(), Waker::from(c))
    }
}

#[cfg(test)]
mod tests {
    use super::Notify;
    use super::test_waker::counting;
    use std::future::Future;
    use std::pin::pin;
    use std::sync::Arc;
    use std::task::{Context, Poll};

    #[test]
    fn a_dropped_waiter_leaves_no_waker_behind() {
        let n = Notify::new();
        let (count, waker) = counting();
        let mut cx = Context::from_waker(&waker);
        for _ in 0..1_000 {
            let mut f = pin!(n.notified());
            assert_eq!(f.as_mut().poll(&mut cx), Poll::Pending);
            assert_eq!(n.waiting(), 1);
        }
        assert_eq!(n.waiting(), 0);
        // The waker's task is no longer referenced by the list.
        assert_eq!(Arc::strong_count(&count), 2);
        n.notify_all();
        assert_eq!(count.get(), 0);
    }

    #[test]
    fn the_room_a_burst_of_waiters_grew_is_given_back_when_the_last_leaves() {
        let n = Notify::new();
        let (_, w) = counting();
        let mut cx = Context::from_waker(&w);
        let mut many: Vec<_> = (0..1_000).map(|_| Box::pin(n.notified())).collect();
        for f in &mut many {
            assert!(f.as_mut().poll(&mut cx).is_pending());
        }
        assert!(n.waiters.borrow().slots.capacity() >= 1_000);
        drop(many);
        assert_eq!(n.waiting(), 0);
        assert_eq!(n.waiters.borrow().slots.capacity(), 0);
    }

    #[test]
    fn polling_again_keeps_one_registration_and_takes_the_new_waker() {
        let n = Notify::new();
        let (a, wa) = counting();
        let (b, wb) = counting();
        let mut f = pin!(n.notified());
        assert!(f.as_mut().poll(&mut Context::from_waker(&wa)).is_pending());
        assert!(f.as_mut().poll(&mut Context::from_waker(&wa)).is_pending());
        assert!(f.as_mut().poll(&mut Context::from_waker(&wb)).is_pending());
        assert_eq!(n.waiting(), 1);
        n.notify_all();
        assert_eq!((a.get(), b.get()), (0, 1));
        assert!(f.as_mut().poll(&mut Context::from_waker(&wb)).is_ready());
        assert_eq!(n.waiting(), 0);
    }

    #[test]
    fn notify_one_wakes_the_longest_waiting_and_slots_are_reused() {
        let n = Notify::new();
        let wakers: Vec<_> = (0..4).map(|_| counting()).collect();
        let mut fs: Vec<_> = (0..4).map(|_| Box::pin(n.notified())).collect();
        for (f, (_, w)) in fs.iter_mut().zip(&wakers) {
            assert!(f.as_mut().poll(&mut Context::from_waker(w)).is_pending());
        }
        // The second waiter leaves; a newcomer takes its slot but is the youngest.
        drop(fs.remove(1));
        let (late, wl) = counting();
        let mut f_late = Box::pin(n.notified());
        assert!(
            f_late
                .as_mut()
                .poll(&mut Context::from_waker(&wl))
                .is_pending()
        );
        assert_eq!(n.waiting(), 4);
        let woken = |i: usize| wakers[i].0.get();
        n.notify_one();
        assert_eq!((woken(0), woken(2), woken(3)), (1, 0, 0));
        n.notify_one();
        assert_eq!((woken(2), woken(3)), (1, 0));
        n.notify_one();
        n.notify_one();
        assert_eq!((woken(3), late.get()), (1, 1));
        assert_eq!(woken(1), 0);
        assert_eq!(n.waiting(), 0);
    }

    #[test]
    fn a_waiter_registered_before_notify_all_completes_and_a_later_one_waits() {
        let n = Notify::new();
        let (_, w) = counting();
        let mut cx = Context::from_waker(&w);
        let mut early = pin!(n.notified());
        assert!(early.as_mut().poll(&mut cx).is_pending());
        n.notify_all();
        let mut late = pin!(n.notified());
        assert!(early.as_mut().poll(&mut cx).is_ready());
        assert!(late.as_mut().poll(&mut cx).is_pending());
        assert_eq!(n.waiting(), 1);
    }
}
