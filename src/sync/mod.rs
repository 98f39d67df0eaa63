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
#[derive(Debug, Default)]
pub struct Notify {
    generation: Cell<u64>,
    waiters: RefCell<Vec<Waker>>,
}

impl Notify {
    pub fn new() -> Self {
        Self::default()
    }

    /// Wakes all tasks waiting in [`Notify::notified`].
    pub fn notify_all(&self) {
        self.generation.set(self.generation.get().wrapping_add(1));
        let waiters = std::mem::take(&mut *self.waiters.borrow_mut());
        for w in waiters {
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
            (!waiters.is_empty()).then(|| waiters.remove(0))
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
        }
    }
}

/// Future returned by [`Notify::notified`].
#[derive(Debug)]
pub struct Notified<'a> {
    notify: &'a Notify,
    generation: u64,
}

impl Future for Notified<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.notify.generation.get() != self.generation {
            return Poll::Ready(());
        }
        let mut waiters = self.notify.waiters.borrow_mut();
        if !waiters.iter().any(|w| w.will_wake(cx.waker())) {
            waiters.push(cx.waker().clone());
        }
        Poll::Pending
    }
}
