//! The one delivery path every upload API shares: from the per-destination requests an API
//! built to the acknowledgement its client gets.
//!
//! Owns: collecting the upstream requests of one client request ([`Delivery`]), the shared
//! [`Upload`] and its ticket, handing the items to the destinations' queues with the wait
//! deadline (`fanout::dispatch`), and the acknowledgement rules of both modes ([`Acked`]).
//! Does not own: decoding a request or encoding its upstream requests (the API handlers in
//! `server`), mapping the outcome to the API's own reply (also theirs), queueing or sending.
//!
//! Acknowledgement (the same for every API):
//! - `delivered` (Alloy): wait until every destination finished; the first upstream status
//!   wins, then a full queue (503), then any other failure (500).
//! - `enqueued`: answer once every destination's queue holds its copy; if none took it, 503;
//!   if a failure is already known (labels a writer rejected), the same failure `delivered`
//!   would report; otherwise 200.
//! - A request no destination needs to see (every profile dropped by a relabel rule) is a
//!   success, as in Alloy.

use std::rc::Rc;
use std::time::Instant;

use bytes::Bytes;

use crate::budget::Reservation;
use crate::config::AckMode;
use crate::fanout;
use crate::metrics::WriteSpan;
use crate::upload::{Api, DeliveryError, Outbound, Payload, Requests, Ticket, Upload, Verdict};
use crate::upstream::Destination;

/// One upstream request sequence for one destination, before the shared upload exists.
#[derive(Debug)]
struct Planned {
    dest: Rc<Destination>,
    target: String,
    requests: Requests,
    profiles: u64,
    bytes: u64,
    span: Option<Rc<WriteSpan>>,
}

/// The upstream requests of one client request, built by an API handler.
#[derive(Debug)]
pub struct Delivery {
    api: Api,
    /// The client's deadline, for Push.
    deadline: Option<Instant>,
    headers: Vec<(Bytes, Bytes)>,
    planned: Vec<Planned>,
    /// Destinations that finished with a failure before anything was queued.
    failed_early: usize,
    /// A failure is known now (reported to the client even if every queued copy succeeds).
    failed: bool,
    errors: Vec<String>,
}

/// What the client is to be told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acked {
    pub verdict: Verdict,
    /// Failure descriptions, one per line (Push answers carry them, as Alloy's do).
    pub errors: String,
    /// Copies were offered and no destination took one: the request was refused.
    pub refused: bool,
}

impl Delivery {
    /// A delivery in `api` (bounded by the client's `deadline`, if any) that forwards
    /// `headers` (name, value slices of the client's head) with every upstream request.
    pub fn new(api: Api, deadline: Option<Instant>, headers: Vec<(Bytes, Bytes)>) -> Self {
        Delivery {
            api,
            deadline,
            headers,
            planned: Vec::new(),
            failed_early: 0,
            failed: false,
            errors: Vec::new(),
        }
    }

    /// Adds one destination's requests: `target` is the upstream path and query, `profiles`
    /// and `bytes` what they carry, `span` the writer's `*_total` timing (for metrics).
    pub fn add(
        &mut self,
        dest: &Rc<Destination>,
        target: String,
        requests: Requests,
        (profiles, bytes): (u64, u64),
        span: &Rc<WriteSpan>,
    ) {
        self.planned.push(Planned {
            dest: dest.clone(),
            target,
            requests,
            profiles,
            bytes,
            span: Some(span.clone()),
        });
    }

    /// Adds an `/ingest` copy of `body` for `dest`.
    pub fn add_whole(
        &mut self,
        dest: &Rc<Destination>,
        target: String,
        body: &Bytes,
        span: &Rc<WriteSpan>,
    ) {
        let bytes = body.len() as u64;
        self.add(
            dest,
            target,
            Requests::One(Payload::Whole(body.clone())),
            (1, bytes),
            span,
        );
    }

    /// Records a destination that will get nothing because its writer rejected the upload.
    pub fn fail_destination(&mut self) {
        self.failed_early += 1;
        self.failed = true;
    }

    /// Records a failure the client must hear about, with its description.
    pub fn fail(&mut self, message: String) {
        self.failed = true;
        self.errors.push(message);
    }

    /// Queues every item (waiting until `wait_until` where a queue is full) and acknowledges
    /// per `ack`.
    pub async fn run(
        self,
        received_at: Instant,
        reservation: Option<Reservation>,
        wait_until: Instant,
        ack: AckMode,
    ) -> Acked {
        let Delivery {
            api,
            deadline,
            headers,
            planned,
            failed_early,
            failed,
            errors,
        } = self;
        let upload = Rc::new(Upload {
            headers,
            ticket: Ticket::new(planned.len() + failed_early),
            received_at,
            reservation,
        });
        for e in &errors {
            upload.ticket.note_error(e);
        }
        if failed {
            upload.ticket.mark_failed();
        }
        for _ in 0..failed_early {
            upload.ticket.complete(Err(DeliveryError::InvalidLabels));
        }
        let offered = planned.len();
        let items = planned
            .into_iter()
            .map(|p| {
                p.dest.metrics.record_accepted(p.profiles);
                let item = Outbound::new(
                    upload.clone(),
                    api,
                    deadline,
                    p.target,
                    p.requests,
                    p.profiles,
                    p.bytes,
                )
                .with_span(p.span);
                (p.dest, item)
            })
            .collect();
        let accepted = fanout::dispatch(items, wait_until).await;
        let refused = offered > 0 && accepted == 0;
        let verdict = match ack {
            AckMode::Enqueued if refused => Verdict::Overloaded,
            AckMode::Enqueued if upload.ticket.verdict() == Verdict::Failed => Verdict::Failed,
            AckMode::Enqueued => Verdict::Delivered,
            AckMode::Delivered => upload.ticket.wait().await,
        };
        Acked {
            verdict,
            errors: upload.ticket.errors(),
            refused,
        }
    }
}
