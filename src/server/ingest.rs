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
use crate::budget::Reservation;
use crate::h1::{self, RequestHead};
use crate::labels;
use crate::metrics::{DropReason, RefuseReason, WriteLatency, WriteSpan};
use crate::pipeline::deliver::Delivery;
use crate::upload::{Api, Verdict};

/// Handles one upload whose body has been read; returns the client's answer.
pub async fn handle(
    rx: &ReceiverRt,
    head: &RequestHead,
    head_bytes: &Bytes,
    body: Bytes,
    reservation: Option<Reservation>,
    wait_until: Instant,
) -> Reply {
    // The settings of the configuration current once the body is read; a reload after this
    // point applies to the next request.
    let live = rx.live();
    let raw_query = head.query.clone().map(|r| &head_bytes[r]).unwrap_or(b"");
    let query = labels::parse_query(raw_query);
    let paths = live.pipeline.paths();
    let plan = rx.ingest_plans.plan(
        query.first(labels::ingest::NAME_PARAM).unwrap_or_default(),
        paths,
    );
    let received = &plan.received;
    let request_path = String::from_utf8_lossy(&head_bytes[head.path.clone()]);

    let mut headers = Vec::new();
    for h in &head.headers {
        let name = &head_bytes[h.name.clone()];
        let wanted = name.eq_ignore_ascii_case(b"content-type")
            || live
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
    let mut hops = Vec::with_capacity(paths);
    live.pipeline.route(&input, &mut hops);
    let mut delivery = Delivery::new(Api::Ingest, None, headers);
    for hop in &hops {
        let external = hop.writer.external_labels();
        // The upstream query: the writer's `name` kept in the core's plan for this label set
        // (already escaped), or computed now for labels a relabel stage changed.
        let kept = match hop.labels {
            None => plan.written(hop.path, external),
            Some(_) => None,
        };
        let upstream = match (&hop.labels, kept) {
            (None, Some(kept)) => kept.map(|name| labels::upstream_query_escaped(&query, name)),
            (Some(l), _) => labels::write_stage_sorted(
                l.iter().map(|(k, v)| (k.as_str(), v.as_str())),
                external,
            )
            .map(|name| labels::upstream_query(&query, &name)),
            (None, None) => labels::write_stage(received, external)
                .map(|name| labels::upstream_query(&query, &name)),
        };
        // Alloy's `ingest_total` times each writer's `AppendIngest`, a rejected one too.
        let dests = if upstream.is_ok() {
            hop.writer.destinations().len()
        } else {
            0
        };
        let span = WriteSpan::start(hop.writer.metrics(), WriteLatency::IngestTotal, 1, dests);
        match upstream {
            Ok(query) => {
                for dest in hop.writer.destinations() {
                    let path = dest.upstream_path(&request_path);
                    let mut target = String::with_capacity(path.len() + query.len() + 1);
                    target.push_str(&path);
                    target.push('?');
                    target.push_str(&query);
                    delivery.add_whole(dest, target, &body, &span);
                }
            }
            Err(e) => {
                for dest in hop.writer.destinations() {
                    dest.metrics.record_accepted(1);
                    dest.metrics
                        .record_dropped(body.len() as u64, 1, DropReason::Rejected);
                    dest.warn(format_args!("{e}"));
                    delivery.fail_destination();
                }
            }
        }
    }
    let acked = delivery
        .run(Instant::now(), reservation, wait_until, live.acknowledge)
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::config::{self, ProcessEnvironment};
    use crate::pipeline::Components;

    /// A receiver that sends every upload through a relabel stage to two writers (three
    /// destinations), acknowledging on enqueue.
    const CONFIG: &str = r#"
pyroscope.receive_http "default" {
  forward_to  = [pyroscope.relabel.clean.receiver]
  acknowledge = "enqueued"
}
pyroscope.relabel "clean" {
  forward_to = [pyroscope.write.a.receiver, pyroscope.write.b.receiver]
  rule {
    action = "labeldrop"
    regex  = "pod"
  }
}
pyroscope.write "a" {
  endpoint {
    url = "http://127.0.0.1:1"
  }
}
pyroscope.write "b" {
  endpoint {
    url = "http://127.0.0.1:2"
  }
  endpoint {
    url = "http://127.0.0.1:3"
  }
  external_labels = { env = "prod" }
}
"#;

    /// One upload of `target` through `rx` with `acknowledge = "enqueued"`; the target each
    /// destination of `components` was sent.
    async fn targets_of(rx: &ReceiverRt, components: &Components, target: &str) -> Vec<String> {
        let head_bytes = Bytes::from(format!(
            "POST {target} HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\n"
        ));
        let head = h1::parse_request(&head_bytes, &rx.limits)
            .expect("valid head")
            .expect("complete head");
        let deadline = Instant::now() + Duration::from_secs(1);
        let reply = handle(
            rx,
            &head,
            &head_bytes,
            Bytes::from_static(b"abc"),
            None,
            deadline,
        )
        .await;
        assert_eq!(reply.status, 200);
        let mut targets = Vec::new();
        for d in components.destinations() {
            let item = d.queue.pop().await.expect("one item per destination");
            targets.push(item.target.clone());
            item.finish(Ok(()));
        }
        targets
    }

    /// The first receiver of `text` on this core, with its destinations (not resolved).
    fn receiver(text: &str) -> (Components, ReceiverRt) {
        let cfg = config::load_str("t.alloy", text, &ProcessEnvironment)
            .expect("valid config")
            .config;
        let components = Components::unresolved(&cfg).expect("destinations");
        let r = &cfg.receivers[0];
        let slots = std::sync::Arc::new(super::super::ConnSlots::new(0));
        let rx = ReceiverRt::new(0, r, slots, components.pipeline(&r.forward_to), None, None);
        (components, rx)
    }

    fn one_writer(external: &str) -> String {
        format!(
            "pyroscope.receive_http \"default\" {{\n  forward_to  = [pyroscope.write.w.receiver]\n  acknowledge = \"enqueued\"\n}}\npyroscope.write \"w\" {{\n  endpoint {{\n    url = \"http://127.0.0.1:1\"\n  }}\n  external_labels = {{ {external} }}\n}}\n"
        )
    }

    #[monoio::test_all(timer_enabled = true)]
    async fn repeated_label_set_is_rewritten_from_the_cores_plan_with_fresh_parameters() {
        let (components, rx) = receiver(&one_writer("env = \"prod\""));
        let first = targets_of(
            &rx,
            &components,
            "/ingest?name=app%7Bpod%3Dp1%7D&from=1&until=2",
        )
        .await;
        let second = targets_of(
            &rx,
            &components,
            "/ingest?from=11&until=12&name=app%7Bpod%3Dp1%7D",
        )
        .await;
        assert_eq!(rx.ingest_plans.len(), 1, "one label set, one plan");
        assert_eq!(
            [first, second].concat(),
            [
                "/ingest?from=1&name=app%7Benv%3Dprod%2Cpod%3Dp1%2Cservice_name%3Dapp%7D&until=2",
                "/ingest?from=11&name=app%7Benv%3Dprod%2Cpod%3Dp1%2Cservice_name%3Dapp%7D&until=12",
            ]
        );
    }

    #[monoio::test_all(timer_enabled = true)]
    async fn reload_that_changes_external_labels_applies_to_a_label_set_seen_before() {
        let (components, rx) = receiver(&one_writer("env = \"prod\""));
        let target = "/ingest?name=app%7Bpod%3Dp1%7D";
        let before = targets_of(&rx, &components, target).await;

        let cfg = config::load_str(
            "t.alloy",
            &one_writer("env = \"staging\""),
            &ProcessEnvironment,
        )
        .expect("valid config")
        .config;
        let reloaded = Components::unresolved(&cfg).expect("destinations");
        let r = &cfg.receivers[0];
        rx.set_live(super::super::Live::new(
            r,
            reloaded.pipeline(&r.forward_to),
            None,
            None,
        ));
        assert!(rx.ingest_plans.is_empty(), "a reload forgets the plans");
        let after = targets_of(&rx, &reloaded, target).await;
        assert_eq!(
            [before, after].concat(),
            [
                "/ingest?name=app%7Benv%3Dprod%2Cpod%3Dp1%2Cservice_name%3Dapp%7D",
                "/ingest?name=app%7Benv%3Dstaging%2Cpod%3Dp1%2Cservice_name%3Dapp%7D",
            ]
        );
    }

    #[monoio::test_all(timer_enabled = true)]
    async fn relabelled_upload_reaches_every_destination_as_one_body_allocation() {
        let (components, rx) = receiver(CONFIG);
        let head_bytes = Bytes::from_static(
            b"POST /ingest?name=app%7Bpod%3Dp1%2Cenv%3Ddev%7D HTTP/1.1\r\nHost: x\r\nContent-Length: 4096\r\n\r\n",
        );
        let head = h1::parse_request(&head_bytes, &rx.limits)
            .expect("valid head")
            .expect("complete head");
        let body = Bytes::from(vec![7u8; 4096]);
        let reply = handle(
            &rx,
            &head,
            &head_bytes,
            body.clone(),
            None,
            Instant::now() + Duration::from_secs(1),
        )
        .await;
        assert_eq!(reply.status, 200);
        let mut targets = Vec::new();
        for d in components.destinations() {
            let item = d.queue.pop().await.expect("one item per destination");
            let parts = item.requests.iter().next().expect("one request").parts();
            assert_eq!(parts.len(), 1);
            assert_eq!(parts[0].as_ptr(), body.as_ptr(), "same allocation");
            targets.push(item.target.clone());
            item.finish(Ok(()));
        }
        assert_eq!(
            targets,
            [
                "/ingest?name=app%7Benv%3Ddev%2Cservice_name%3Dapp%7D",
                "/ingest?name=app%7Benv%3Dprod%2Cservice_name%3Dapp%7D",
                "/ingest?name=app%7Benv%3Dprod%2Cservice_name%3Dapp%7D",
            ]
        );
    }
}
