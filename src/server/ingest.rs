//! `POST /ingest`: from a received upload to one queued item per destination, and the answer.
//!
//! Owns: Alloy's `/ingest` semantics — labels from `name` (lenient parse), the `service_name`
//! rule, per-`pyroscope.write` label rewrite with `external_labels`, the upstream path (endpoint
//! path joined with the request path) and query (every parameter kept, re-encoded), which
//! client headers go upstream (`Content-Type` values, plus `forward_headers`), and the answer
//! per acknowledgement mode. Does not own: the label rules themselves (`labels`), queueing
//! (`fanout`), or HTTP framing (`conn`). Hot path: yes.

use std::time::Instant;

use bytes::Bytes;

use super::ReceiverRt;
use super::conn::Reply;
use crate::fanout::budget::Reservation;
use crate::h1::{self, RequestHead};
use crate::labels::{self, IngestLabels};
use crate::metrics::{DropReason, RefuseReason};
use crate::pipeline::deliver::Delivery;
use crate::upload::{Protocol, Verdict};

/// Handles one upload whose body has been read; returns the client's answer.
pub async fn handle(
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

    let input: Vec<(&str, &str)> = received.iter().collect();
    let mut hops = Vec::with_capacity(rx.pipeline.paths());
    rx.pipeline.route(&input, &mut hops);
    let mut delivery = Delivery::new(Protocol::Ingest, headers);
    for hop in &hops {
        let relabelled;
        let labels = match &hop.labels {
            Some(l) => {
                relabelled =
                    IngestLabels::from_pairs(l.iter().map(|(k, v)| (k.as_str(), v.as_str())));
                &relabelled
            }
            None => &received,
        };
        match labels::write_stage(labels, hop.writer.external_labels()) {
            Ok(name) => {
                let query = labels::upstream_query(&query, &name);
                for dest in hop.writer.destinations() {
                    let path = dest.upstream_path(&request_path);
                    let mut target = String::with_capacity(path.len() + query.len() + 1);
                    target.push_str(&path);
                    target.push('?');
                    target.push_str(&query);
                    delivery.add_whole(dest, target, &body);
                }
            }
            Err(e) => {
                for dest in hop.writer.destinations() {
                    dest.metrics
                        .record_dropped(body.len() as u64, 1, DropReason::Rejected);
                    dest.warn(format_args!("{e}"));
                    delivery.fail_destination();
                }
            }
        }
    }
    let acked = delivery
        .run(
            Instant::now(),
            reservation,
            wait_until,
            rx.config.acknowledge,
        )
        .await;
    if acked.refused {
        rx.metrics.record_refused(RefuseReason::QueueFull);
    }
    match acked.verdict {
        Verdict::Delivered => Reply::empty(200),
        Verdict::Upstream(s) => Reply::text(s, h1::reason_phrase(s)),
        Verdict::Overloaded => Reply::overloaded(),
        Verdict::Failed => Reply::text(500, "Failed to process request"),
    }
}
