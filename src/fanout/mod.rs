//! Fan-out: handing one upload to every destination's queue on this core.
//!
//! Owns: the per-destination bounded queues' admission policy. An upload goes to every
//! destination that has room; a destination whose queue stays full until the request's wait
//! deadline drops it (counted as `queue_full` and logged) while the others proceed, so one
//! slow or dead destination never holds back the healthy ones. Does not own: building the
//! items (`server::ingest`) or sending them (`upstream::sender`). Hot path: yes; one
//! `Rc`/`Bytes` clone per destination, no body copy.

use std::rc::Rc;
use std::time::Instant;

use crate::metrics::DropReason;
use crate::upload::{DeliveryError, Outbound};
use crate::upstream::Destination;

/// Queues each `(destination, item)`, waiting until `deadline` for room where a queue is
/// full. Returns how many destinations accepted.
pub async fn dispatch(items: Vec<(Rc<Destination>, Outbound)>, deadline: Instant) -> usize {
    let mut accepted = 0;
    let mut pending = Vec::new();
    for (d, item) in items {
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
