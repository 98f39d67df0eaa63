//! `POST /v1development/profiles`: OpenTelemetry profiles over HTTP (OTLP/HTTP), from the
//! Pyroscope Java agent's OTLP exporter, the OpenTelemetry Collector's `otlphttp` exporter and
//! other OTLP senders. Alloy's pyroscope components do not serve it; Pyroscope does
//! (`pkg/ingester/otlp/ingest_handler.go`).
//!
//! Owns: the request rules of Pyroscope's handler and the OTLP/HTTP specification
//! (`Content-Encoding: gzip` or none; gzip inflated within `max_request_body_bytes` and the
//! in-flight budget), routing each `ResourceProfiles` through the pipeline by its resource
//! attributes (`otlp::labels`), one upstream export per writer reached — the received body
//! whole when nothing changes, else the kept elements with the writer's `external_labels` as
//! resource attributes (`otlp::rewrite`) — and the answer in the client's encoding (an empty
//! `ExportProfilesServiceResponse`, or a `google.rpc.Status`). Does not own: the codec
//! (`otlp`), the content-type check and size limits before the body is read (`conn`),
//! queueing or sending. Hot path: yes.
//!
//! A relabel rule that drops an element's label set drops that `ResourceProfiles` for the
//! writers behind it; other label changes a rule makes are not written back into the resource.

use std::rc::Rc;
use std::time::Instant;

use bytes::Bytes;

use super::ReceiverRt;
use super::conn::Reply;
use super::inflate::{InflateError, inflate_charged};
use crate::budget::Reservation;
use crate::h1::RequestHead;
use crate::metrics::{RefuseReason, WriteLatency, WriteSpan};
use crate::otlp::{self, Format, OTLP_PATH, StatusCode};
use crate::pipeline::Writer;
use crate::pipeline::deliver::Delivery;
use crate::push::GzipError;
use crate::upload::{Api, Payload, Requests, Verdict};

/// An OTLP error answer: `status` with a `google.rpc.Status` body in the request's encoding.
pub fn error(format: Format, status: u16, code: StatusCode, message: &str) -> Reply {
    Reply {
        status,
        body: otlp::status_body(format, code, message),
        content_type: Some(format.content_type()),
        retry_after: status == 503 || status == 429,
    }
}

/// 415 for a `Content-Type` Pyroscope's handler does not take, in its words (plain text:
/// the client's encoding is unknown).
pub fn unsupported_content_type(content_type: &[u8]) -> Reply {
    Reply::text(
        415,
        &format!(
            "Unsupported Content-Type: {}",
            String::from_utf8_lossy(content_type)
        ),
    )
}

/// Handles one export whose body has been read; returns the client's answer.
#[allow(clippy::too_many_arguments)]
pub async fn handle(
    rx: &ReceiverRt,
    format: Format,
    head: &RequestHead,
    head_bytes: &Bytes,
    body: Bytes,
    reservation: Option<Reservation>,
    wait_until: Instant,
) -> Reply {
    let received_at = Instant::now();
    let max = rx.config.http.max_body_bytes;
    let fail = |status, code, message: &str| error(format, status, code, message);
    let encoding = head.header(head_bytes, "content-encoding").unwrap_or(b"");
    let body = if encoding.is_empty() || encoding.eq_ignore_ascii_case(b"identity") {
        body
    } else if encoding.eq_ignore_ascii_case(b"gzip") {
        match inflate_charged(rx, &body, max, reservation.as_ref(), wait_until).await {
            Ok(inflated) => inflated,
            Err(InflateError::Budget) => {
                return fail(503, StatusCode::Unavailable, "in-flight budget exhausted");
            }
            Err(InflateError::Gzip(GzipError::TooLarge { .. })) => {
                let msg = format!("request body after decompression is larger than {max} bytes");
                return fail(413, StatusCode::ResourceExhausted, &msg);
            }
            Err(InflateError::Gzip(e)) => {
                return fail(400, StatusCode::InvalidArgument, &e.to_string());
            }
        }
    } else {
        let msg = format!(
            "unsupported Content-Encoding {:?}: supported encodings are gzip, identity",
            String::from_utf8_lossy(encoding)
        );
        return fail(415, StatusCode::InvalidArgument, &msg);
    };
    let export = match otlp::decode(format, &body) {
        Ok(e) => e,
        Err(e) => return fail(400, StatusCode::InvalidArgument, &e.to_string()),
    };

    // The settings of the configuration current once the request is decoded.
    let live = rx.live();
    let mut paths: Vec<PathExport<'_>> = Vec::new();
    paths.resize_with(live.pipeline.paths(), PathExport::default);
    let mut hops = Vec::with_capacity(live.pipeline.paths());
    for (i, rp) in export.resources.iter().enumerate() {
        let labels = otlp::labels(rp);
        let view: Vec<(&str, &str)> = labels.iter().map(|(k, v)| (&**k, &**v)).collect();
        hops.clear();
        live.pipeline.route(&view, &mut hops);
        for hop in &hops {
            let Some(acc) = paths.get_mut(hop.path) else {
                continue;
            };
            acc.writer = Some(hop.writer);
            acc.keep.push(i);
            acc.profiles += rp.profiles;
        }
    }

    let mut delivery = Delivery::new(
        Api::Otlp(format),
        None,
        super::push::forwarded_headers(&live, head, head_bytes),
    );
    for acc in paths {
        let Some(writer) = acc.writer else { continue };
        let set = writer.external_labels();
        let payload = if acc.keep.len() == export.resources.len() && set.is_empty() {
            Payload::Whole(body.clone())
        } else {
            Payload::Parts(otlp::rewrite(format, &body, &export, &acc.keep, set).into())
        };
        let span = WriteSpan::start(
            writer.metrics(),
            WriteLatency::PushTotal,
            1,
            writer.destinations().len(),
        );
        let bytes = payload.len();
        for dest in writer.destinations() {
            delivery.add(
                dest,
                dest.upstream_path(OTLP_PATH).into_owned(),
                Requests::One(payload.clone()),
                (acc.profiles, bytes),
                &span,
            );
        }
    }
    let acked = delivery
        .run(received_at, reservation, wait_until, live.acknowledge)
        .await;
    if acked.refused {
        rx.metrics.record_refused(RefuseReason::QueueFull);
    }
    match acked.verdict {
        Verdict::Delivered => Reply {
            status: 200,
            body: otlp::success_body(format),
            content_type: Some(format.content_type()),
            retry_after: false,
        },
        Verdict::Overloaded => fail(
            503,
            StatusCode::Unavailable,
            "destination queues are full; retry later",
        ),
        Verdict::Upstream(status) => {
            let code = match status {
                400 => StatusCode::InvalidArgument,
                429 => StatusCode::ResourceExhausted,
                502..=504 => StatusCode::Unavailable,
                _ => StatusCode::Internal,
            };
            fail(status, code, &acked.errors)
        }
        Verdict::Failed => fail(500, StatusCode::Internal, &acked.errors),
    }
}

/// The export one path through the pipeline (one writer reached one way) receives.
#[derive(Default)]
struct PathExport<'p> {
    writer: Option<&'p Rc<Writer>>,
    /// Indices of the `ResourceProfiles` that took this path, ascending.
    keep: Vec<usize>,
    profiles: u64,
}
