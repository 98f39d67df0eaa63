//! Fan-out: handing one upload to every destination's queue on this core.
//!
//! Owns: the per-destination bounded queues' admission policy. An upload goes to every
//! destination that has room; a destination whose queue stays full until the request's wait
//! deadline drops it (counted as `queue_full` and logged) while the others proceed, so one
//! slow or dead destination never holds back the healthy ones. Does not own: building the
//! items (`server::ingest`) or sending them (`upstream::sender`). Hot path: yes; one
//! `Rc`/`Bytes` clone per destination, no body copy.
//!
//! With a spool, a destination that has been failing for a while takes new uploads straight
//! into its spool, and one whose queue stays full spools instead of dropping; a spooled copy
//! counts as accepted (`upstream::replay`).

use std::rc::Rc;
use std::time::Instant;

use crate::metrics::DropReason;
use crate::upload::{DeliveryError, Outbound};
use crate::upstream::Destination;
use crate::upstream::spill::spill;

/// Queues each `(destination, item)`, waiting until `deadline` for room where a queue is
/// full. Returns how many destinations accepted.
pub async fn dispatch(items: Vec<(Rc<Destination>, Outbound)>, deadline: Instant) -> usize {
    let mut accepted = 0;
    let mut pending = Vec::new();
    for (d, item) in items {
        if d.spills_now() {
            accepted += usize::from(spill(&d, item, DeliveryError::QueueFull).await);
            continue;
        }
        match d.queue.try_push(item) {
            Ok(()) => accepted += 1,
            Err(item) if d.queue.is_closed() => gone(&d, item),
            Err(item) => pending.push((d, item)),
        }
    }
    while let Some((first, _)) = pending.first() {
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        let first = first.clone();
        let _ = monoio::time::timeout(deadline - now, first.queue.room()).await;
        let mut still = Vec::with_capacity(pending.len());
        for (d, item) in pending {
            match d.queue.try_push(item) {
                Ok(()) => accepted += 1,
                Err(item) if d.queue.is_closed() => gone(&d, item),
                Err(item) => still.push((d, item)),
            }
        }
        pending = still;
    }
    for (d, item) in pending {
        if d.spool.is_some() {
            accepted += usize::from(spill(&d, item, DeliveryError::QueueFull).await);
            continue;
        }
        d.metrics.record_dropped(
            item.bytes,
            item.profiles,
            DeliveryError::QueueFull.drop_reason(),
        );
        d.warn(format_args!(
            "queue full ({} uploads): upload dropped for this endpoint",
            d.queue.capacity()
        ));
        item.finish(Err(DeliveryError::QueueFull));
    }
    accepted
}

/// A closed queue never has room again: its destination was removed by a configuration
/// reload and has drained (a request that started before the reload still routes to it).
/// Its copy is dropped at once (reason `reload`) rather than waited for.
fn gone(d: &Destination, item: Outbound) {
    d.metrics
        .record_dropped(item.bytes, item.profiles, DropReason::Reload);
    d.warn(format_args!(
        "endpoint removed by a reload: upload dropped for this endpoint"
    ));
    item.finish(Err(DeliveryError::Shutdown));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upload::{Payload, Ticket, Upload};
    use crate::upstream::testing::endpoint;
    use bytes::Bytes;
    use std::time::Duration;

    fn upload(n: usize) -> Rc<Upload> {
        Rc::new(Upload {
            headers: vec![],
            ticket: Ticket::new(n),
            received_at: Instant::now(),
            reservation: None,
        })
    }

    #[monoio::test_all(timer_enabled = true)]
    async fn every_destination_gets_the_same_body_allocation() {
        let dests: Vec<Rc<Destination>> = (0..8)
            .map(|i| {
                Rc::new(Destination::new(&endpoint(&format!("http://d{i}"), 4), 0, vec![]).unwrap())
            })
            .collect();
        let body = Bytes::from(vec![7u8; 4096]);
        let up = upload(8);
        let items = dests
            .iter()
            .map(|d| {
                (
                    d.clone(),
                    Outbound::ingest(up.clone(), "/ingest".into(), Payload::Whole(body.clone())),
                )
            })
            .collect();
        assert_eq!(dispatch(items, Instant::now()).await, 8);
        for d in &dests {
            let item = d.queue.pop().await.unwrap();
            assert_eq!(
                item.requests.iter().next().unwrap().parts()[0].as_ptr(),
                body.as_ptr()
            );
            item.finish(Ok(()));
        }
    }

    fn spooling(url: &str, dir: &std::path::Path) -> Rc<Destination> {
        let settings = crate::config::Spool {
            directory: dir.into(),
            max_bytes: 1 << 20,
            max_age: Duration::from_secs(3600),
            fsync: crate::config::Fsync::Never,
        };
        let (store, _) = crate::spool::Store::open(dir.join("d"), &settings).unwrap();
        Rc::new(
            Destination::new(&endpoint(url, 1), 0, vec![])
                .unwrap()
                .with_spool(Some(std::sync::Arc::new(store))),
        )
    }

    #[monoio::test_all(timer_enabled = true)]
    async fn a_healthy_spooling_destination_never_touches_its_spool() {
        let dir = tempfile::tempdir().unwrap();
        let d = spooling("http://ok", dir.path());
        let up = upload(1);
        let item = Outbound::ingest(up, "/ingest".into(), Payload::Whole(Bytes::from("p")));
        assert_eq!(dispatch(vec![(d.clone(), item)], Instant::now()).await, 1);
        assert_eq!(d.queue.len(), 1);
        let store = d.spool.as_ref().unwrap();
        assert_eq!(store.stats().bytes, 0);
        let files = std::fs::read_dir(dir.path().join("d")).unwrap().count();
        assert_eq!(files, 0, "no segment file is even created");
        d.queue.pop().await.unwrap().finish(Ok(()));
    }

    #[test]
    fn a_failing_or_full_spooling_destination_spools_and_counts_it_accepted() {
        // Spool writes run on the blocking pool, which `monoio::test` does not attach.
        monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
            .enable_timer()
            .attach_thread_pool(Box::new(monoio::blocking::DefaultThreadPool::new(1)))
            .build()
            .unwrap()
            .block_on(spools_and_counts_it_accepted());
    }

    async fn spools_and_counts_it_accepted() {
        let dir = tempfile::tempdir().unwrap();
        let d = spooling("http://down", dir.path());
        // The queue (capacity 1) is full: the second upload is spooled at the deadline.
        let first = upload(1);
        d.queue
            .try_push(Outbound::ingest(
                first,
                "/x".into(),
                Payload::Whole(Bytes::new()),
            ))
            .unwrap();
        let up = upload(1);
        let item = Outbound::ingest(
            up.clone(),
            "/ingest?a".into(),
            Payload::Whole(Bytes::from("p1")),
        );
        d.metrics.record_accepted(1);
        assert_eq!(dispatch(vec![(d.clone(), item)], Instant::now()).await, 1);
        // Failing for longer than SPILL_AFTER_FAILING: straight to the spool, no waiting.
        d.failing_since
            .set(Instant::now().checked_sub(crate::upstream::SPILL_AFTER_FAILING));
        let up2 = upload(1);
        let item = Outbound::ingest(
            up2.clone(),
            "/ingest?b".into(),
            Payload::Whole(Bytes::from("p2")),
        );
        d.metrics.record_accepted(1);
        let far = Instant::now() + Duration::from_secs(60);
        assert_eq!(dispatch(vec![(d.clone(), item)], far).await, 1);
        let store = d.spool.as_ref().unwrap();
        assert_eq!(store.stats().records, 2);
        assert_eq!(d.metrics.pending_profiles(), 0, "spooled, not in flight");
        assert_eq!(d.metrics.dropped_total(), 0);
        // The waiting client hears that the upload is not delivered (503: try later).
        assert_eq!(up.ticket.verdict(), crate::upload::Verdict::Overloaded);
        let t = store.take(crate::spool::unix_ms()).unwrap();
        assert_eq!(t.record.meta.target, "/ingest?a");
        assert_eq!(t.record.requests, vec![Bytes::from("p1")]);
        d.queue.pop().await.unwrap().finish(Ok(()));
    }

    #[monoio::test_all(timer_enabled = true)]
    async fn a_closed_queue_drops_its_copy_at_once_as_reload() {
        let closed = Rc::new(Destination::new(&endpoint("http://gone", 4), 0, vec![]).unwrap());
        closed.queue.close();
        let up = upload(1);
        let items = vec![(
            closed.clone(),
            Outbound::ingest(
                up.clone(),
                "/ingest".into(),
                Payload::Whole(Bytes::from_static(b"p")),
            ),
        )];
        let started = Instant::now();
        let accepted = dispatch(items, started + Duration::from_secs(5)).await;
        assert_eq!(accepted, 0);
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "waited for a closed queue"
        );
        assert_eq!(closed.metrics.dropped_total(), 1);
        let snap = crate::metrics::CoreSnapshot::capture(
            std::iter::once((&closed.metrics, 0)),
            std::iter::empty(),
            std::iter::empty(),
            0,
        );
        assert_eq!(snap.dests[0].dropped[DropReason::Reload as usize], 1);
        assert_eq!(up.ticket.verdict(), crate::upload::Verdict::Failed);
    }

    #[monoio::test_all(timer_enabled = true)]
    async fn a_full_queue_drops_only_its_own_copy_after_the_deadline() {
        let full = Rc::new(Destination::new(&endpoint("http://full", 1), 0, vec![]).unwrap());
        let healthy = Rc::new(Destination::new(&endpoint("http://ok", 4), 0, vec![]).unwrap());
        let blocker = upload(1);
        full.queue
            .try_push(Outbound::ingest(
                blocker,
                "/x".into(),
                Payload::Whole(Bytes::new()),
            ))
            .unwrap();
        let up = upload(2);
        let body = Bytes::from_static(b"profile");
        let items = vec![
            (
                full.clone(),
                Outbound::ingest(up.clone(), "/ingest".into(), Payload::Whole(body.clone())),
            ),
            (
                healthy.clone(),
                Outbound::ingest(up.clone(), "/ingest".into(), Payload::Whole(body.clone())),
            ),
        ];
        let accepted = dispatch(items, Instant::now() + Duration::from_millis(20)).await;
        assert_eq!(accepted, 1);
        assert_eq!(healthy.queue.len(), 1);
        assert_eq!(full.metrics.dropped_bytes.get(), 7);
        assert_eq!(full.metrics.dropped_total(), 1);
        healthy.queue.pop().await.unwrap().finish(Ok(()));
        assert_eq!(up.ticket.verdict(), crate::upload::Verdict::Overloaded);
    }
}
