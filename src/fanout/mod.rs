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

use crate::upload::{DeliveryError, Outbound};
use crate::upstream::Destination;
use crate::upstream::replay::spill;

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
