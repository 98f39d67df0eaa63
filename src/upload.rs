//! The values that cross from the request handler to the destinations' queues.
//!
//! Owns: [`Upload`] (what all destinations of one client request share: forwarded headers, the
//! acknowledgement [`Ticket`], the budget reservation), [`Outbound`] (one queued upstream
//! request for one destination) and [`Payload`] (the body as `Bytes` handles). Does not own:
//! building them (`server::ingest`) or sending them (`upstream`). Hot path: yes.
//!
//! Zero copy: the request body is read once into one `Bytes`; every destination's `Outbound`
//! holds a clone of that handle, and the sender hands the same handle to the kernel. A Push
//! request (one upstream request per series) is a [`Payload::Parts`] of re-encoded framing
//! around slices of the decoded body, so profile bytes are never copied either.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Instant;

use bytes::Bytes;

use crate::budget::Reservation;
use crate::metrics::{DropReason, WriteLatency, WriteSpan};
use crate::sync::Notify;

/// The body of one upstream request, as reference-counted handles into received memory.
#[derive(Debug, Clone)]
pub enum Payload {
    /// The client's body, forwarded as is (`/ingest`).
    Whole(Bytes),
    /// Pieces written back to back (Push: re-encoded labels and framing around untouched
    /// `raw_profile` slices).
    Parts(Rc<[Bytes]>),
}

impl Payload {
    /// Total length in bytes (the upstream `Content-Length`).
    pub fn len(&self) -> u64 {
        match self {
            Payload::Whole(b) => b.len() as u64,
            Payload::Parts(parts) => parts.iter().map(|p| p.len() as u64).sum(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The pieces in write order.
    pub fn parts(&self) -> &[Bytes] {
        match self {
            Payload::Whole(b) => std::slice::from_ref(b),
            Payload::Parts(parts) => parts,
        }
    }
}

/// The upstream requests one destination makes for one upload: one for `/ingest`; one per
/// series for Push, sent in order (Alloy appends a push's series sequentially).
#[derive(Debug, Clone)]
pub enum Requests {
    One(Payload),
    Sequence(Vec<Payload>),
}

impl Requests {
    pub fn iter(&self) -> std::slice::Iter<'_, Payload> {
        match self {
            Requests::One(p) => std::slice::from_ref(p).iter(),
            Requests::Sequence(v) => v.iter(),
        }
    }
}

/// Which upload API a request uses, downstream and upstream (the one enum for it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    /// `POST /ingest`: the client's body and `Content-Type`, Alloy's `/ingest` retry rules.
    Ingest,
    /// Connect unary `Push`: `application/proto`, `Connect-Protocol-Version: 1`,
    /// `Connect-Timeout-Ms` from the remaining deadline, Connect's retry rules.
    Push,
    /// OTLP/HTTP profiles (`POST /v1development/profiles`) in the client's encoding (also the
    /// upstream `Content-Type`); OTLP's retry rules (429, 502, 503, 504).
    Otlp(crate::otlp::Format),
}

impl Api {
    /// Alloy's `pyroscope_write_latency` types for this API: `(total, endpoint, downstream)`.
    pub fn write_latency(self) -> (WriteLatency, WriteLatency, WriteLatency) {
        match self {
            Api::Ingest => (
                WriteLatency::IngestTotal,
                WriteLatency::IngestEndpoint,
                WriteLatency::IngestDownstream,
            ),
            // Alloy has no OTLP: its exports are timed as pushes (one request per export).
            Api::Push | Api::Otlp(_) => (
                WriteLatency::PushTotal,
                WriteLatency::PushEndpoint,
                WriteLatency::PushDownstream,
            ),
        }
    }
}

/// Which side of the gateway a delivery error belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// What the client sent (labels a writer refuses, a deadline it set).
    Client,
    /// What the upstream did (a status, a broken connection).
    Upstream,
    /// The gateway's own limits and state (a full queue, shutdown, a capture file).
    Internal,
}

/// Whether the attempt that met an error may be made again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    No,
    /// Within the endpoint's retry budget (backoff, `max_backoff_retries`).
    Yes,
    /// Only when it happened on a reused keep-alive connection, and then at once on a fresh
    /// one without counting an attempt: the upstream closed the idle connection first.
    OnReusedConnection,
}

/// Why one destination's copy of an upload was not delivered, or why one attempt failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryError {
    /// The writer refused the labels (`invalid labels in profile: ...`).
    InvalidLabels,
    /// The destination's queue stayed full past the request's wait deadline.
    QueueFull,
    /// The upstream answered this status (not 200); `retryable` per the protocol's rules
    /// (Alloy's `shouldRetry` for `/ingest`, Connect's codes for Push).
    Status { status: u16, retryable: bool },
    /// No usable response: connect failure, reset, malformed response, attempt timeout.
    Transport,
    /// A reused keep-alive connection failed before any response byte arrived.
    StaleConnection,
    /// The client's deadline (`Connect-Timeout-Ms`) passed before an attempt could start.
    DeadlineExceeded,
    /// Writing a capture record failed.
    Capture,
    /// Still queued or in flight when graceful shutdown ran out of time (or the item was
    /// dropped unfinished).
    Shutdown,
}

impl DeliveryError {
    pub fn side(self) -> Side {
        match self {
            DeliveryError::InvalidLabels | DeliveryError::DeadlineExceeded => Side::Client,
            DeliveryError::Status { .. }
            | DeliveryError::Transport
            | DeliveryError::StaleConnection => Side::Upstream,
            DeliveryError::QueueFull | DeliveryError::Capture | DeliveryError::Shutdown => {
                Side::Internal
            }
        }
    }

    pub fn retry(self) -> Retry {
        match self {
            DeliveryError::Status {
                retryable: true, ..
            }
            | DeliveryError::Transport => Retry::Yes,
            DeliveryError::StaleConnection => Retry::OnReusedConnection,
            _ => Retry::No,
        }
    }

    /// A stable name for logs and metrics.
    pub fn label(self) -> &'static str {
        match self {
            DeliveryError::InvalidLabels => "invalid_labels",
            DeliveryError::QueueFull => "queue_full",
            DeliveryError::Status { .. } => "status",
            DeliveryError::Transport => "transport",
            DeliveryError::StaleConnection => "stale_connection",
            DeliveryError::DeadlineExceeded => "deadline_exceeded",
            DeliveryError::Capture => "capture",
            DeliveryError::Shutdown => "shutdown",
        }
    }

    /// The `reason` a final error is counted under in `pyrogate_dropped_total`: a retryable
    /// error that ended the delivery did so because the attempts ran out.
    pub fn drop_reason(self) -> DropReason {
        match self {
            DeliveryError::QueueFull => DropReason::QueueFull,
            DeliveryError::Shutdown => DropReason::Shutdown,
            e if e.retry() != Retry::No => DropReason::RetriesExhausted,
            _ => DropReason::Rejected,
        }
    }
}

/// What the client is told once every destination has finished (Alloy's rules).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Every destination succeeded: 200, empty body.
    Delivered,
    /// The first upstream status seen, passed through with its status text.
    Upstream(u16),
    /// A queue was full: 503 with `Retry-After`.
    Overloaded,
    /// Any other failure: 500 `Failed to process request`.
    Failed,
}

/// Tracks the destinations of one upload that have not finished yet.
#[derive(Debug)]
pub struct Ticket {
    remaining: Cell<usize>,
    first_status: Cell<Option<u16>>,
    overloaded: Cell<bool>,
    failed: Cell<bool>,
    /// Failure descriptions, one per line (Push answers carry them, as Alloy's do).
    errors: RefCell<String>,
    done: Notify,
}

impl Ticket {
    pub fn new(destinations: usize) -> Self {
        Ticket {
            remaining: Cell::new(destinations),
            first_status: Cell::new(None),
            overloaded: Cell::new(false),
            failed: Cell::new(false),
            errors: RefCell::new(String::new()),
            done: Notify::new(),
        }
    }

    /// Records one destination's final result: the first upstream status wins, then a full
    /// queue, then any other error.
    pub fn complete(&self, result: Result<(), DeliveryError>) {
        match result {
            Ok(()) => {}
            Err(DeliveryError::Status { status, .. }) => {
                if self.first_status.get().is_none() {
                    self.first_status.set(Some(status));
                }
            }
            Err(DeliveryError::QueueFull) => self.overloaded.set(true),
            Err(_) => self.failed.set(true),
        }
        let left = self.remaining.get().saturating_sub(1);
        self.remaining.set(left);
        if left == 0 {
            self.done.notify_all();
        }
    }

    /// Records a failure that is not one destination's final result (a push series with
    /// invalid labels while the other series are still delivered).
    pub fn mark_failed(&self) {
        self.failed.set(true);
    }

    /// Adds a failure description (cold path: only on failures).
    pub fn note_error(&self, message: &str) {
        let mut errors = self.errors.borrow_mut();
        if !errors.is_empty() {
            errors.push('\n');
        }
        errors.push_str(message);
    }

    /// Every failure description noted so far, one per line.
    pub fn errors(&self) -> String {
        self.errors.borrow().clone()
    }

    pub fn is_done(&self) -> bool {
        self.remaining.get() == 0
    }

    /// The verdict so far (final once [`Ticket::is_done`]).
    pub fn verdict(&self) -> Verdict {
        if let Some(s) = self.first_status.get() {
            Verdict::Upstream(s)
        } else if self.overloaded.get() {
            Verdict::Overloaded
        } else if self.failed.get() {
            Verdict::Failed
        } else {
            Verdict::Delivered
        }
    }

    /// Waits until every destination has finished.
    pub async fn wait(&self) -> Verdict {
        while !self.is_done() {
            self.done.notified().await;
        }
        self.verdict()
    }
}

/// What every destination of one client request shares.
#[derive(Debug)]
pub struct Upload {
    /// Client headers forwarded upstream (`Content-Type` values, then `forward_headers`), as
    /// `(name, value)` slices of the received head.
    pub headers: Vec<(Bytes, Bytes)>,
    pub ticket: Ticket,
    pub received_at: Instant,
    /// Released when the last `Outbound` referring to this upload is gone.
    pub reservation: Option<Reservation>,
}

/// One queued upload for one destination.
#[derive(Debug)]
pub struct Outbound {
    pub upload: Rc<Upload>,
    pub api: Api,
    /// The client's deadline (Push `Connect-Timeout-Ms`), which caps every attempt.
    pub deadline: Option<Instant>,
    /// Upstream request-target: path and query, already rewritten.
    pub target: String,
    pub requests: Requests,
    /// Profiles carried (1 per `/ingest` upload; samples for Push), for metrics.
    pub profiles: u64,
    /// Profile bytes carried (the body for `/ingest`; Σ `raw_profile` for Push), for metrics.
    pub bytes: u64,
    /// The writer's `*_total` timing this item's requests are part of.
    span: Option<Rc<WriteSpan>>,
    /// Requests of this item finished so far (delivered or given up), in order.
    requests_done: Cell<usize>,
    finished: bool,
}

impl Outbound {
    /// One destination's requests for `upload`.
    pub fn new(
        upload: Rc<Upload>,
        api: Api,
        deadline: Option<Instant>,
        target: String,
        requests: Requests,
        profiles: u64,
        bytes: u64,
    ) -> Self {
        Outbound {
            upload,
            api,
            deadline,
            target,
            requests,
            profiles,
            bytes,
            span: None,
            requests_done: Cell::new(0),
            finished: false,
        }
    }

    /// Makes this item's requests part of its writer's `*_total` timing.
    pub fn with_span(mut self, span: Option<Rc<WriteSpan>>) -> Self {
        self.span = span;
        self
    }

    /// The sender finished this item's next request (delivered or given up).
    pub fn request_finished(&self) {
        let i = self.requests_done.get();
        self.requests_done.set(i + 1);
        if let Some(span) = &self.span {
            span.finished(i);
        }
    }

    /// Every request not finished yet ends now (the item is finished or dropped).
    fn finish_requests(&self) {
        if let Some(span) = &self.span {
            for i in self.requests_done.get()..span.requests() {
                span.finished(i);
            }
        }
    }

    /// An `/ingest` upload: one request whose body is the client's.
    pub fn ingest(upload: Rc<Upload>, target: String, body: Payload) -> Self {
        let bytes = body.len();
        Outbound {
            upload,
            api: Api::Ingest,
            deadline: None,
            target,
            requests: Requests::One(body),
            profiles: 1,
            bytes,
            span: None,
            requests_done: Cell::new(0),
            finished: false,
        }
    }

    /// A Push: one request per series, in order.
    pub fn push(
        upload: Rc<Upload>,
        target: String,
        series: Vec<Payload>,
        deadline: Option<Instant>,
        profiles: u64,
        bytes: u64,
    ) -> Self {
        Outbound {
            upload,
            api: Api::Push,
            deadline,
            target,
            requests: Requests::Sequence(series),
            profiles,
            bytes,
            span: None,
            requests_done: Cell::new(0),
            finished: false,
        }
    }

    /// Reports this destination's final result to the upload's ticket.
    pub fn finish(mut self, result: Result<(), DeliveryError>) {
        self.finished = true;
        self.finish_requests();
        self.upload.ticket.complete(result);
    }
}

impl Drop for Outbound {
    /// An `Outbound` dropped without [`Outbound::finish`] (shutdown) still completes its
    /// ticket, so no client waits forever.
    fn drop(&mut self) {
        if !self.finished {
            self.finish_requests();
            self.upload.ticket.complete(Err(DeliveryError::Shutdown));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delivery_errors_know_their_side_retry_rule_and_drop_reason() {
        use DeliveryError as E;
        let cases = [
            (
                E::InvalidLabels,
                Side::Client,
                Retry::No,
                DropReason::Rejected,
            ),
            (
                E::QueueFull,
                Side::Internal,
                Retry::No,
                DropReason::QueueFull,
            ),
            (
                E::Status {
                    status: 503,
                    retryable: true,
                },
                Side::Upstream,
                Retry::Yes,
                DropReason::RetriesExhausted,
            ),
            (
                E::Status {
                    status: 400,
                    retryable: false,
                },
                Side::Upstream,
                Retry::No,
                DropReason::Rejected,
            ),
            (
                E::Transport,
                Side::Upstream,
                Retry::Yes,
                DropReason::RetriesExhausted,
            ),
            (
                E::StaleConnection,
                Side::Upstream,
                Retry::OnReusedConnection,
                DropReason::RetriesExhausted,
            ),
            (
                E::DeadlineExceeded,
                Side::Client,
                Retry::No,
                DropReason::Rejected,
            ),
            (E::Capture, Side::Internal, Retry::No, DropReason::Rejected),
            (E::Shutdown, Side::Internal, Retry::No, DropReason::Shutdown),
        ];
        for (e, side, retry, reason) in cases {
            assert_eq!(
                (e.side(), e.retry(), e.drop_reason()),
                (side, retry, reason),
                "{e:?}"
            );
        }
    }

    #[test]
    fn first_upstream_status_wins_over_other_failures() {
        let t = Ticket::new(3);
        t.complete(Err(DeliveryError::Transport));
        t.complete(Err(DeliveryError::Status {
            status: 429,
            retryable: true,
        }));
        assert!(!t.is_done());
        t.complete(Err(DeliveryError::Status {
            status: 503,
            retryable: true,
        }));
        assert!(t.is_done());
        assert_eq!(t.verdict(), Verdict::Upstream(429));
    }

    #[test]
    fn an_outbound_dropped_unfinished_fails_its_destination() {
        let upload = Rc::new(Upload {
            headers: Vec::new(),
            ticket: Ticket::new(2),
            received_at: Instant::now(),
            reservation: None,
        });
        let body = Bytes::from_static(b"x");
        Outbound::ingest(
            upload.clone(),
            "/ingest".into(),
            Payload::Whole(body.clone()),
        )
        .finish(Ok(()));
        drop(Outbound::ingest(
            upload.clone(),
            "/ingest".into(),
            Payload::Whole(body),
        ));
        assert_eq!(upload.ticket.verdict(), Verdict::Failed);
        assert!(upload.ticket.is_done());
    }

    #[test]
    fn parts_payload_reports_total_length_in_order() {
        let p = Payload::Parts(Rc::from(vec![
            Bytes::from_static(b"ab"),
            Bytes::from_static(b"cde"),
        ]));
        assert_eq!(p.len(), 5);
        assert_eq!(p.parts()[1].as_ref(), b"cde");
    }
}
