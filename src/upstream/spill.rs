//! Spill-over: moving an upload from memory to its destination's spool.
//!
//! Owns: [`spill`] (when its queue stays full, its retries run out on a retryable failure, the
//! destination has failed for [`SPILL_AFTER_FAILING`](super::SPILL_AFTER_FAILING), or shutdown
//! finds it undelivered), what counts as "try later" ([`spillable`]), and the per-core group
//! commit of spill writes ([`SpillQueue`]): the uploads spilled while one write is on the
//! blocking pool go to the file together in the next one (one hand-off, one lock, one vectored
//! write and, with `fsync = "always"`, one flush), so a destination that fails under load costs
//! a hand-off per batch rather than per upload. No upload waits for company: a write starts as
//! soon as the previous one is done. Does not own: the files ([`crate::spool`]) or replay
//! ([`super::replay`]).
//!
//! Healthy path: never here. A destination that answers never spills. The bodies cross to the
//! blocking pool as `Bytes` handles and are written by the kernel from the memory they arrived
//! in.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::Arc;

use bytes::Bytes;

use super::Destination;
use crate::metrics::DropReason;
use crate::spool::record::Meta;
use crate::spool::store::AppendError;
use crate::spool::{Store, unix_ms};
use crate::sync::Notify;
use crate::upload::{DeliveryError, Outbound, Retry};

/// Most records one spill write carries; the rest wait for the next write.
pub const SPILL_BATCH_RECORDS: usize = 256;
/// Most body bytes one spill write carries (a larger record still goes, alone).
pub const SPILL_BATCH_BYTES: u64 = 16 * 1024 * 1024;

/// Whether a final delivery error means "try later" (the spool) rather than "never".
pub fn spillable(e: DeliveryError) -> bool {
    e.retry() != Retry::No
        || matches!(
            e,
            DeliveryError::QueueFull | DeliveryError::Shutdown | DeliveryError::DeadlineExceeded
        )
}

/// How one spilled record ended: `None` when the blocking pool could not run the write.
type Outcome = Option<Result<(), AppendError>>;

/// One record as the store appends it: its metadata and each upstream body as its pieces.
type Record = (Meta, Vec<Vec<Bytes>>);

/// A record waiting for the next spill write, and where its outcome goes.
struct Waiting {
    meta: Meta,
    requests: Vec<Vec<Bytes>>,
    outcome: Rc<Cell<Option<Outcome>>>,
}

/// One destination's spill writes on one core: the records waiting for the next write, and
/// whether a write is on the blocking pool now.
#[derive(Default)]
pub struct SpillQueue {
    waiting: RefCell<Vec<Waiting>>,
    writing: Cell<bool>,
    /// Woken when a write's records have their outcomes.
    written: Notify,
    /// Writes made so far.
    writes: Cell<u64>,
}

impl std::fmt::Debug for SpillQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpillQueue")
            .field("waiting", &self.waiting.borrow().len())
            .field("writing", &self.writing.get())
            .finish()
    }
}

impl SpillQueue {
    /// Spill writes made so far (each carrying one or more records).
    pub fn writes(&self) -> u64 {
        self.writes.get()
    }

    /// Appends one record to `store` with whatever else is spilled meanwhile; completes when
    /// it is in the file (or failed).
    async fn append(
        self: &Rc<Self>,
        store: &Arc<Store>,
        meta: Meta,
        requests: Vec<Vec<Bytes>>,
    ) -> Outcome {
        let outcome = Rc::new(Cell::new(None));
        self.waiting.borrow_mut().push(Waiting {
            meta,
            requests,
            outcome: outcome.clone(),
        });
        if !self.writing.get() {
            self.writing.set(true);
            monoio::spawn(write_batches(self.clone(), store.clone()));
        }
        loop {
            if let Some(o) = outcome.take() {
                return o;
            }
            self.written.notified().await;
        }
    }

    /// The next write's records: the oldest waiting, up to the batch limits.
    fn next_batch(&self) -> Vec<Waiting> {
        let mut waiting = self.waiting.borrow_mut();
        let mut bytes = 0u64;
        let mut n = 0;
        for w in waiting.iter() {
            let size: u64 = w.requests.iter().flatten().map(|b| b.len() as u64).sum();
            if n == SPILL_BATCH_RECORDS || (n > 0 && bytes + size > SPILL_BATCH_BYTES) {
                break;
            }
            bytes += size;
            n += 1;
        }
        waiting.drain(..n).collect()
    }
}

/// Writes batches until nothing waits.
async fn write_batches(q: Rc<SpillQueue>, store: Arc<Store>) {
    loop {
        let batch = q.next_batch();
        if batch.is_empty() {
            q.writing.set(false);
            return;
        }
        let (records, outcomes): (Vec<Record>, Vec<_>) = batch
            .into_iter()
            .map(|w| ((w.meta, w.requests), w.outcome))
            .unzip();
        let store = store.clone();
        q.writes.set(q.writes.get() + 1);
        let written = monoio::spawn_blocking(move || {
            let refs: Vec<(&Meta, &[Vec<Bytes>])> =
                records.iter().map(|(m, r)| (m, r.as_slice())).collect();
            store.append_batch(&refs)
        })
        .await;
        match written {
            Ok(results) => {
                for (o, r) in outcomes.iter().zip(results) {
                    o.set(Some(Some(r)));
                }
            }
            Err(_) => outcomes.iter().for_each(|o| o.set(Some(None))),
        }
        q.written.notify_all();
    }
}

/// Writes `item` to the destination's spool and finishes it with `cause` (what the client
/// hears when it waits for delivery: a spooled upload is not delivered). Returns whether it
/// was spooled; if not (no spool, no room, a write error) the item is counted as dropped —
/// `spool_full` when it does not fit, else `cause`'s reason.
pub async fn spill(dest: &Destination, item: Outbound, cause: DeliveryError) -> bool {
    let Some(store) = dest.spool.as_ref() else {
        dest.metrics
            .record_dropped(item.bytes, item.profiles, cause.drop_reason());
        item.finish(Err(cause));
        return false;
    };
    let age = u64::try_from(item.upload.received_at.elapsed().as_millis()).unwrap_or(0);
    let meta = Meta {
        api: item.api,
        accepted_at_unix_ms: unix_ms().saturating_sub(age),
        profiles: item.profiles,
        bytes: item.bytes,
        target: item.target.clone(),
        headers: item.upload.headers.clone(),
    };
    let requests: Vec<Vec<Bytes>> = item.requests.iter().map(|p| p.parts().to_vec()).collect();
    let reason = match dest.spill_queue.append(store, meta, requests).await {
        Some(Ok(())) => {
            dest.metrics.record_spooled(item.profiles);
            item.finish(Err(cause));
            return true;
        }
        Some(Err(AppendError::TooLarge(n))) => {
            dest.warn(format_args!(
                "spool full: an upload of {n} bytes does not fit max_bytes; dropped"
            ));
            DropReason::SpoolFull
        }
        Some(Err(e)) => {
            dest.warn(format_args!("{e}; upload dropped"));
            cause.drop_reason()
        }
        None => cause.drop_reason(),
    };
    dest.metrics
        .record_dropped(item.bytes, item.profiles, reason);
    item.finish(Err(cause));
    false
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;
    use crate::upload::{Payload, Ticket, Upload};
    use crate::upstream::testing::endpoint;

    #[test]
    fn uploads_spilled_during_a_write_share_the_next_one_in_order() {
        // Spool writes run on the blocking pool, which `monoio::test` does not attach.
        monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
            .enable_timer()
            .attach_thread_pool(Box::new(monoio::blocking::DefaultThreadPool::new(1)))
            .build()
            .unwrap()
            .block_on(spill_twenty_at_once());
    }

    async fn spill_twenty_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let settings = crate::config::Spool {
            directory: dir.path().into(),
            max_bytes: 1 << 20,
            max_age: Duration::from_secs(3600),
            fsync: crate::config::Fsync::Never,
        };
        let (store, _) = Store::open(dir.path().join("d"), &settings).unwrap();
        let d = Rc::new(
            Destination::new(&endpoint("http://down", 1), 0, vec![])
                .unwrap()
                .with_spool(Some(Arc::new(store))),
        );
        let tasks: Vec<_> = (0..20)
            .map(|i| {
                let up = Rc::new(Upload {
                    headers: vec![],
                    ticket: Ticket::new(1),
                    received_at: Instant::now(),
                    reservation: None,
                });
                let item = Outbound::ingest(
                    up,
                    format!("/ingest?i={i}"),
                    Payload::Whole(Bytes::from(vec![i as u8; 1000])),
                );
                let d = d.clone();
                monoio::spawn(async move { spill(&d, item, DeliveryError::QueueFull).await })
            })
            .collect();
        for t in tasks {
            assert!(t.await);
        }
        let store = d.spool.as_ref().unwrap();
        assert_eq!(store.stats().records, 20);
        // The writer task the first spill starts runs after the other 19 queued theirs: one
        // write carries all twenty.
        assert_eq!(d.spill_queue.writes(), 1);
        let mut order = Vec::new();
        while let Some(t) = store.take(crate::spool::unix_ms()) {
            order.push(t.record.meta.target.clone());
            assert_eq!(t.record.requests[0].len(), 1000);
            store.ack(&t.entry, true);
        }
        let want: Vec<String> = (0..20).map(|i| format!("/ingest?i={i}")).collect();
        assert_eq!(order, want);
        assert!(!d.spill_queue.writing.get(), "the writer task ended");
    }
}
