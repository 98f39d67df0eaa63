//! Per-core bounded queue, used between the request handler and one destination's senders.
//!
//! Owns: capacity accounting, waking idle consumers when an item arrives and waking waiting
//! producers when room appears, and closing for shutdown. Does not own: what is queued, or what
//! happens when the queue stays full (see `fanout::dispatch`). Hot path: yes; a push or pop is a
//! `VecDeque` operation and one wake-up. The deque grows as a burst needs and, once drained,
//! gives back what it grew beyond [`KEEP_ITEMS`], so a burst's queue memory does not stay
//! resident; below that it never allocates again.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;

use super::Notify;

/// Room a drained queue keeps (items): enough for ordinary backlogs without reallocating, small
/// enough (a few tens of KB per destination per core) to keep for good.
pub const KEEP_ITEMS: usize = 256;

/// A bounded multi-producer, multi-consumer queue for tasks on one core.
#[derive(Debug)]
pub struct Queue<T> {
    items: RefCell<VecDeque<T>>,
    capacity: usize,
    /// Woken when an item is pushed or the queue closes (senders wait here).
    readable: Notify,
    /// Woken when an item is popped (producers waiting for room wait here).
    writable: Notify,
    closed: Cell<bool>,
}

impl<T> Queue<T> {
    pub fn new(capacity: usize) -> Self {
        Queue {
            items: RefCell::new(VecDeque::with_capacity(capacity.clamp(1, KEEP_ITEMS))),
            capacity: capacity.max(1),
            readable: Notify::new(),
            writable: Notify::new(),
            closed: Cell::new(false),
        }
    }

    pub fn len(&self) -> usize {
        self.items.borrow().len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.borrow().is_empty()
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Items the deque has room for without allocating.
    pub fn allocated(&self) -> usize {
        self.items.borrow().capacity()
    }

    /// Pushes `item` if there is room, otherwise hands it back.
    pub fn try_push(&self, item: T) -> Result<(), T> {
        {
            let mut items = self.items.borrow_mut();
            if items.len() >= self.capacity || self.closed.get() {
                return Err(item);
            }
            items.push_back(item);
        }
        // One item needs one sender: waking them all would poll every idle sender per upload.
        self.readable.notify_one();
        Ok(())
    }

    /// Whether [`Queue::close`] was called: no push will ever succeed again.
    pub fn is_closed(&self) -> bool {
        self.closed.get()
    }

    /// Whether a push would succeed now.
    pub fn has_room(&self) -> bool {
        !self.closed.get() && self.items.borrow().len() < self.capacity
    }

    /// Waits until the queue may have room (or closed). Callers re-check with `try_push`.
    pub async fn room(&self) {
        if self.has_room() || self.closed.get() {
            return;
        }
        self.writable.notified().await;
    }

    /// Takes the oldest item, waiting for one. `None` once the queue is closed and empty.
    pub async fn pop(&self) -> Option<T> {
        loop {
            let (item, more) = {
                let mut items = self.items.borrow_mut();
                let item = items.pop_front();
                if items.is_empty() && items.capacity() > KEEP_ITEMS {
                    items.shrink_to(KEEP_ITEMS);
                }
                (item, !items.is_empty())
            };
            if let Some(item) = item {
                if more {
                    // Pass the wake-up on, so items pushed while this sender was busy are
                    // picked up by another idle sender.
                    self.readable.notify_one();
                }
                self.writable.notify_all();
                return Some(item);
            }
            if self.closed.get() {
                return None;
            }
            self.readable.notified().await;
        }
    }

    /// Refuses further pushes; consumers drain what is left, then get `None`.
    pub fn close(&self) {
        self.closed.set(true);
        self.readable.notify_all();
        self.writable.notify_all();
    }

    /// Removes and returns every queued item (shutdown accounting).
    pub fn drain(&self) -> Vec<T> {
        let items: Vec<T> = self.items.borrow_mut().drain(..).collect();
        self.writable.notify_all();
        items
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_queue_hands_the_item_back() {
        let q = Queue::new(2);
        assert!(q.try_push(1).is_ok());
        assert!(q.try_push(2).is_ok());
        assert_eq!(q.try_push(3), Err(3));
        assert_eq!(q.len(), 2);
    }

    #[monoio::test_all(timer_enabled = true)]
    async fn a_drained_queue_gives_back_what_a_burst_grew() {
        let q = Queue::new(10_000);
        assert!(q.allocated() <= KEEP_ITEMS);
        for i in 0..5_000 {
            q.try_push(i).unwrap();
        }
        assert!(q.allocated() >= 5_000);
        for i in 0..5_000 {
            assert_eq!(q.pop().await, Some(i));
        }
        assert!(q.allocated() <= KEEP_ITEMS, "{}", q.allocated());
        // Ordinary backlogs below the kept room reuse it.
        for i in 0..KEEP_ITEMS {
            q.try_push(i).unwrap();
        }
        let kept = q.allocated();
        for _ in 0..KEEP_ITEMS {
            q.pop().await;
        }
        assert_eq!(q.allocated(), kept);
    }

    #[monoio::test_all(timer_enabled = true)]
    async fn pop_returns_items_in_order_then_none_after_close() {
        let q = Queue::new(4);
        q.try_push("a").unwrap();
        q.try_push("b").unwrap();
        q.close();
        assert_eq!(q.try_push("c"), Err("c"));
        assert_eq!(q.pop().await, Some("a"));
        assert_eq!(q.pop().await, Some("b"));
        assert_eq!(q.pop().await, None);
    }

    #[monoio::test_all(timer_enabled = true)]
    async fn two_pushes_wake_two_waiting_consumers() {
        let q = std::rc::Rc::new(Queue::new(4));
        let a = monoio::spawn({
            let q = q.clone();
            async move { q.pop().await }
        });
        let b = monoio::spawn({
            let q = q.clone();
            async move { q.pop().await }
        });
        monoio::time::sleep(std::time::Duration::from_millis(5)).await;
        q.try_push(1).unwrap();
        q.try_push(2).unwrap();
        let mut got = vec![a.await.unwrap(), b.await.unwrap()];
        got.sort();
        assert_eq!(got, vec![1, 2]);
    }

    #[monoio::test_all(timer_enabled = true)]
    async fn a_waiting_consumer_is_woken_by_a_push() {
        let q = std::rc::Rc::new(Queue::new(1));
        let q2 = q.clone();
        let consumer = monoio::spawn(async move { q2.pop().await });
        monoio::time::sleep(std::time::Duration::from_millis(5)).await;
        q.try_push(7).unwrap();
        assert_eq!(consumer.await, Some(7));
    }
}
