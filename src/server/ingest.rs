//! `POST /ingest`: from a received upload to one queued item per destination, and the answer.
//!
//! Owns: Alloy's `/ingest` semantics — labels from `name` (lenient parse), the `service_name`
//! rule, per-`pyroscope.write` label rewrite with `external_labels`, the upstream path (endpoint
//! path joined with the request path) and query (every parameter kept, re-encoded), which
//! client headers go upstream (`Content-Type` values, plus `forward_headers`), and the answer
//! per acknowledgement mode. Does not own: the label rules themselves (`labels`), queueing
//! (`fanout`), or HTTP framing (`conn`). Hot path: yes.

use std::rc::Rc;
use std::time::Instant;

use bytes::Bytes;

use super::ReceiverRt;
use super::conn::Reply;
use crate::budget::Reservation;
use crate::config::AckMode;
use crate::fanout;
use crate::h1::{self, RequestHead};
use crate::labels;
use crate::metrics::RefuseReason;
use crate::upload::{Failure, Outbound, Payload, Ticket, Upload, Verdict};
use crate::worker::Core;

/// Handles one upload whose body has been read; returns the client's answer.
pub async fn handle(
    core: &Core,
    rx: &ReceiverRt,
    head: &RequestHead,
    head_bytes: &Bytes,
    body: Bytes,
    reservation: Option<Reservation>,
    wait_until: Instant,
) -> Reply {
    let raw_query = head.query.clone().map(|r| &head_bytes[r]).unwrap_or(b"");
    let query = labels::parse_query(raw_query);
    let received = labels::receive_stage(&query);
    let request_path = String::from_utf8_lossy(&head_bytes[head.path.clone()]);

    let mut headers = Vec::new();
    for h in &head.headers {
        let name = &head_bytes[h.name.clone()];
        let wanted = name.eq_ignore_ascii_case(b"content-type")
            || rx
                .config
                .forward_headers
                .iter()
                .any(|f| name.eq_ignore_ascii_case(f.as_bytes()));
        if wanted {
            headers.push((
                head_bytes.slice(h.name.clone()),
                head_bytes.slice(h.value.clone()),
            ));
        }
    }

    let total: usize = rx
        .config
        .forward_to
        .iter()
        .map(|&w| core.writer_dests[w].len())
        .sum();
    if total == 0 {
        return Reply::empty(200);
    }
    let upload = Rc::new(Upload {
        headers,
        ticket: Ticket::new(total),
        received_at: Instant::now(),
        reservation,
    });
    let mut items = Vec::with_capacity(total);
    for &w in &rx.config.forward_to {
        let writer = &core.config.writers[w];
        match labels::write_stage(&received, &writer.external_labels) {
            Ok(name) => {
                let query = labels::upstream_query(&query, &name);
                for &d in &core.writer_dests[w] {
                    let path = core.destinations[d].upstream_path(&request_path);
                    let mut target = String::with_capacity(path.len() + query.len() + 1);
                    target.push_str(&path);
                    target.push('?');
                    target.push_str(&query);
                    items.push((
                        d,
                        Outbound::ingest(upload.clone(), target, Payload::Whole(body.clone())),
                    ));
                }
            }
            Err(e) => {
                for &d in &core.writer_dests[w] {
                    let dest = &core.destinations[d];
                    dest.metrics.record_dropped(
                        body.len() as u64,
                        1,
                        crate::metrics::DropReason::Rejected,
                    );
                    dest.warn(format_args!("{e}"));
                    upload.ticket.complete(Err(Failure::Error));
                }
            }
        }
    }
    let offered = items.len();
    let accepted = fanout::dispatch(&core.destinations, items, wait_until).await;
    if offered > 0 && accepted == 0 {
        rx.metrics.record_refused(RefuseReason::QueueFull);
    }
    match rx.config.acknowledge {
        AckMode::Enqueued => {
            drop(upload);
            if offered > 0 && accepted == 0 {
                Reply::overloaded()
            } else if offered == 0 {
                failed()
            } else {
                Reply::empty(200)
            }
        }
        AckMode::Delivered => match upload.ticket.wait().await {
            Verdict::Delivered => Reply::empty(200),
            Verdict::Upstream(s) => Reply::text(s, h1::reason_phrase(s)),
            Verdict::Overloaded => Reply::overloaded(),
            Verdict::Failed => failed(),
        },
    }
}

fn failed() -> Reply {
    Reply::text(500, "Failed to process request")
}
