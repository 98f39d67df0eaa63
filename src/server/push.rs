//! `POST /push.v1.PusherService/Push`: the Connect Push API (Rust, Python ≥1.0, Ruby ≥1.0 and
//! .NET ≥1.0 SDKs, Alloy, profilecli).
//!
//! Owns: the request protocol (Connect unary proto/JSON, gRPC-Web), content decoding (gzip,
//! bounded by `max_request_body_bytes` and charged to the in-flight budget), decoding the
//! `PushRequest` with `raw_profile` kept as slices of the received body, Alloy's push label
//! rules per `pyroscope.write`, one upstream request per series (encoded as framing around the
//! untouched `raw_profile` slices), and the answer in the client's protocol. Does not own:
//! the codec (`push`), label rules (`labels`), queueing or sending. Hot path: yes.

use std::rc::Rc;
use std::time::Instant;

use bytes::Bytes;

use super::conn::Reply;
use super::inflate::{InflateError, inflate_charged};
use super::{Live, ReceiverRt};
use crate::budget::Reservation;
use crate::h1::RequestHead;
use crate::labels;
use crate::metrics::{DropReason, RefuseReason, WriteLatency, WriteSpan};
use crate::pipeline::Writer;
use crate::pipeline::deliver::Delivery;
use crate::push::{self, PUSH_PATH, connect::Code, connect::Protocol as Wire};
use crate::upload::{Api, Payload, Requests, Verdict};

/// An answer in the client's protocol.
fn answer(wire: Wire, error: Option<(Code, &str)>) -> Reply {
    match (wire, error) {
        (Wire::GrpcWeb, e) => Reply {
            status: 200,
            body: push::grpcweb::encode_response(e),
            content_type: Some("application/grpc-web+proto"),
            retry_after: false,
        },
        (Wire::ConnectProto, None) => Reply {
            content_type: Some("application/proto"),
            ..Reply::empty(200)
        },
        (Wire::ConnectJson, None) => Reply {
            status: 200,
            body: Bytes::from_static(b"{}"),
            content_type: Some("application/json"),
            retry_after: false,
        },
        (_, Some((code, message))) => connect_error(code, code.http_status(), message),
    }
}

fn connect_error(code: Code, status: u16, message: &str) -> Reply {
    Reply {
        status,
        body: Bytes::from(push::connect::error_body(code, message)),
        content_type: Some("application/json"),
        retry_after: code == Code::Unavailable,
    }
}

fn header<'a>(head: &RequestHead, buf: &'a Bytes, name: &str) -> Option<&'a [u8]> {
    head.header(buf, name)
}

/// Handles one push whose body has been read; returns the client's answer.
#[allow(clippy::too_many_arguments)]
pub async fn handle(
    rx: &ReceiverRt,
    head: &RequestHead,
    head_bytes: &Bytes,
    body: Bytes,
    reservation: Option<Reservation>,
    wait_until: Instant,
) -> Reply {
    let received_at = Instant::now();
    let ct = header(head, head_bytes, "content-type").unwrap_or(b"");
    let wire = match push::connect::classify(ct) {
        Ok(w) => w,
        Err(e) => return connect_error(Code::Unimplemented, 415, &e.to_string()),
    };
    let version = header(head, head_bytes, "connect-protocol-version");
    if let (false, Some(v)) = (wire == Wire::GrpcWeb, version)
        && v != b"1"
    {
        let msg = format!(
            "connect-protocol-version must be \"1\": got {:?}",
            String::from_utf8_lossy(v)
        );
        return answer(wire, Some((Code::InvalidArgument, &msg)));
    }
    let deadline = header(head, head_bytes, "connect-timeout-ms")
        .and_then(push::connect::parse_timeout_ms)
        .map(|d| received_at + d);
    let max = rx.config.http.max_body_bytes;

    // Unwrap gRPC-Web framing, then undo the content coding.
    let (message, compressed) = match wire {
        Wire::GrpcWeb => match push::grpcweb::unwrap_request(&body) {
            Ok((m, c)) => (m, c),
            Err(e) => return answer(wire, Some((Code::InvalidArgument, &e.to_string()))),
        },
        _ => {
            let enc = header(head, head_bytes, "content-encoding").unwrap_or(b"identity");
            match enc {
                b"identity" | b"" => (body, false),
                e if e.eq_ignore_ascii_case(b"gzip") => (body, true),
                other => {
                    let msg = format!(
                        "unknown compression {:?}: supported encodings are gzip, identity",
                        String::from_utf8_lossy(other)
                    );
                    return answer(wire, Some((Code::Unimplemented, &msg)));
                }
            }
        }
    };
    if compressed && wire == Wire::GrpcWeb {
        let enc = header(head, head_bytes, "grpc-encoding").unwrap_or(b"");
        if !enc.eq_ignore_ascii_case(b"gzip") {
            return answer(
                wire,
                Some((
                    Code::Unimplemented,
                    "compressed gRPC-Web message without grpc-encoding: gzip",
                )),
            );
        }
    }
    let message = if compressed {
        match inflate_charged(rx, &message, max, reservation.as_ref(), wait_until).await {
            Ok(m) => m,
            Err(InflateError::Budget) => {
                return answer(
                    wire,
                    Some((Code::Unavailable, "in-flight budget exhausted")),
                );
            }
            Err(InflateError::Gzip(push::GzipError::TooLarge { .. })) => {
                let msg = format!("message after decompression is larger than {max} bytes");
                return answer(wire, Some((Code::ResourceExhausted, &msg)));
            }
            Err(InflateError::Gzip(e)) => {
                return answer(wire, Some((Code::InvalidArgument, &e.to_string())));
            }
        }
    } else {
        message
    };
    let request = match wire {
        Wire::ConnectJson => push::decode_json(&message),
        _ => push::decode_proto(&message),
    };
    let request = match request {
        Ok(r) => r,
        Err(e) => return answer(wire, Some((Code::InvalidArgument, &e.to_string()))),
    };

    // The settings of the configuration current once the request is decoded; a reload after
    // this point applies to the next request.
    let live = rx.live();
    let mut paths: Vec<PathRequests<'_>> = Vec::new();
    paths.resize_with(live.pipeline.paths(), PathRequests::default);
    let mut hops = Vec::with_capacity(live.pipeline.paths());
    // Alloy's client message per appendable (receiver `forward_to` element) and series.
    let mut messages: Vec<(usize, String)> = Vec::new();
    for s in &request.series {
        let received = labels::push_receive_stage(&s.labels);
        hops.clear();
        live.pipeline.route(received.labels(), &mut hops);
        let mut refused: Vec<(usize, bool, labels::PushLabelError)> = Vec::new();
        for hop in &hops {
            let Some(acc) = paths.get_mut(hop.path) else {
                continue;
            };
            acc.writer = Some(hop.writer);
            let pairs = hop.labels(received.labels()).pairs();
            match labels::push_write_stage(&received, &pairs, hop.writer.external_labels()) {
                Ok(lbls) => {
                    acc.requests.push(Payload::Parts(
                        push::encode_series(&lbls, &s.samples).into(),
                    ));
                    acc.profiles += s.samples.len() as u64;
                    acc.bytes += s
                        .samples
                        .iter()
                        .map(|x| x.raw_profile.len() as u64)
                        .sum::<u64>();
                }
                Err(e) => {
                    acc.rejected += 1;
                    refused.push((hop.appendable, hop.through_relabel, e));
                }
            }
        }
        let mut at = 0;
        while let Some(&(appendable, through_relabel, _)) = refused.get(at) {
            let same: Vec<&labels::PushLabelError> = refused[at..]
                .iter()
                .take_while(|(a, _, _)| *a == appendable)
                .map(|(_, _, e)| e)
                .collect();
            at += same.len();
            let message = if through_relabel {
                labels::PushLabelError::client_message_through_relabel(&same, appendable)
            } else {
                same.iter()
                    .map(|e| e.client_message_for(appendable))
                    .collect::<Vec<_>>()
                    .join("\n")
            };
            messages.push((appendable, message));
        }
    }
    // Alloy joins each appendable's per-series errors: the valid series are still delivered,
    // but the client is told about the invalid ones.
    messages.sort_by_key(|(appendable, _)| *appendable);

    let mut delivery = Delivery::new(
        Api::Push,
        deadline,
        forwarded_headers(&live, head, head_bytes),
    );
    for (_, message) in messages {
        delivery.fail(message);
    }
    for acc in paths {
        let Some(writer) = acc.writer else { continue };
        let rejected = acc.rejected;
        // Alloy's `push_total` times each series a writer accepts (a rejected series fails
        // `Append`'s label check before `Push` is timed).
        let span = WriteSpan::start(
            writer.metrics(),
            WriteLatency::PushTotal,
            acc.requests.len(),
            writer.destinations().len(),
        );
        for dest in writer.destinations() {
            if rejected > 0 {
                dest.metrics.record_accepted(rejected);
                dest.metrics
                    .record_dropped(0, rejected, DropReason::Rejected);
            }
            if acc.requests.is_empty() {
                delivery.fail_destination();
                continue;
            }
            delivery.add(
                dest,
                dest.upstream_path(PUSH_PATH).into_owned(),
                Requests::Sequence(acc.requests.clone()),
                (acc.profiles, acc.bytes),
                &span,
            );
        }
    }
    let acked = delivery
        .run(
            received_at,
            reservation,
            deadline.map_or(wait_until, |d| d.min(wait_until)),
            live.acknowledge,
        )
        .await;
    if acked.refused {
        rx.metrics.record_refused(RefuseReason::QueueFull);
    }
    match acked.verdict {
        Verdict::Delivered => answer(wire, None),
        Verdict::Overloaded => answer(
            wire,
            Some((
                Code::Unavailable,
                "destination queues are full; retry later",
            )),
        ),
        Verdict::Upstream(_) | Verdict::Failed => {
            answer(wire, Some((Code::Internal, &acked.errors)))
        }
    }
}

/// The upstream requests of one path through the pipeline (one writer reached one way), for
/// the series of one Push that took it.
#[derive(Default)]
struct PathRequests<'p> {
    writer: Option<&'p Rc<Writer>>,
    requests: Vec<Payload>,
    profiles: u64,
    bytes: u64,
    /// Series the writer rejected.
    rejected: u64,
}

pub(super) fn forwarded_headers(
    live: &Live,
    head: &RequestHead,
    head_bytes: &Bytes,
) -> Vec<(Bytes, Bytes)> {
    head.headers
        .iter()
        .filter(|h| {
            let name = &head_bytes[h.name.clone()];
            live.forward_headers
                .iter()
                .any(|f| name.eq_ignore_ascii_case(f.as_bytes()))
        })
        .map(|h| {
            (
                head_bytes.slice(h.name.clone()),
                head_bytes.slice(h.value.clone()),
            )
        })
        .collect()
}
