//! The delivery loop: a pool of sender tasks per destination per core.
//!
//! Owns: taking uploads from a destination's queue, sending each upstream with per-attempt
//! `remote_timeout`, Alloy's retry rules with jittered backoff (and `Retry-After`; waits cut
//! short by [`super::recovery`] once the upstream is back), keep-alive
//! connection reuse, and recording the final result (metrics, the upload's ticket). Does not
//! own: the wire format (`client`, `h1`) or queueing policy (`fanout`). Hot path: yes.

use std::rc::Rc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use monoio::net::TcpStream;

use super::backoff::{AttemptError, Backoff, should_retry};
use super::client::{Connection, ExchangeError, Response};
use super::{Destination, HttpTarget, Target};
use crate::capture;
use crate::config::Compression;
use crate::h1;
use crate::push::connect;
use crate::upload::{Api, DeliveryError, Outbound, Payload, Retry};

/// Runs one sender until the destination's queue is closed and empty.
pub async fn run(dest: Rc<Destination>) {
    while let Some(item) = dest.queue.pop().await {
        if dest.spills_now() {
            // Failing long enough: the spool holds it until the destination answers.
            spill_in_flight(&dest, item, DeliveryError::Transport).await;
            continue;
        }
        dest.in_flight.set(dest.in_flight.get() + 1);
        let result = deliver(&dest, &item).await;
        dest.in_flight.set(dest.in_flight.get() - 1);
        dest.settled.notify_all();
        match result {
            Ok(()) => {
                dest.transport.health.delivered(&dest.endpoint.url_text);
                dest.metrics.record_sent(
                    item.bytes,
                    item.profiles,
                    item.upload.received_at.elapsed(),
                );
                item.finish(Ok(()));
            }
            Err(undelivered)
                if dest.spool.is_some() && super::spill::spillable(undelivered.error) =>
            {
                // Spooled, not dropped, but the destination is down all the same (logs).
                if means_down(undelivered.error) {
                    dest.transport
                        .health
                        .failed(&dest.endpoint.url_text, &undelivered.message);
                }
                if matches!(item.api, Api::Push | Api::Otlp(_)) {
                    item.upload.ticket.note_error(&undelivered.message);
                }
                spill_in_flight(&dest, item, undelivered.error).await;
            }
            Err(undelivered) => {
                if means_down(undelivered.error) {
                    dest.transport
                        .health
                        .failed(&dest.endpoint.url_text, &undelivered.message);
                }
                dest.metrics.record_dropped(
                    item.bytes,
                    item.profiles,
                    undelivered.error.drop_reason(),
                );
                if matches!(item.api, Api::Push | Api::Otlp(_)) {
                    item.upload.ticket.note_error(&undelivered.message);
                }
                item.finish(Err(undelivered.error));
            }
        }
    }
}

/// Whether a final failure says the destination is failing rather than that this upload was
/// refused: retries ran out (5xx, 429 when retried, transport errors), a capture write failed,
/// or the endpoint refused the credentials (401, 403, 407).
fn means_down(e: DeliveryError) -> bool {
    match e {
        DeliveryError::Status {
            status: 401 | 403 | 407,
            ..
        } => true,
        DeliveryError::Capture => true,
        e => e.retry() != Retry::No,
    }
}

/// Spills `item`, counted as in flight until the write is done, so the shutdown drain waits
/// for it.
async fn spill_in_flight(dest: &Destination, item: Outbound, cause: DeliveryError) {
    dest.in_flight.set(dest.in_flight.get() + 1);
    super::spill::spill(dest, item, cause).await;
    dest.in_flight.set(dest.in_flight.get() - 1);
    dest.settled.notify_all();
}

/// The final failure of one upload at one destination.
#[derive(Debug)]
pub(crate) struct Undelivered {
    pub(crate) error: DeliveryError,
    /// Alloy's wording: `failed to push to endpoint <url> (<n> retries): <cause>`.
    message: String,
}

/// Headers of one upstream request, in order: the client's forwarded headers, the
/// protocol's own, the endpoint's.
fn headers_of<'a>(
    dest: &'a Destination,
    item: &'a Outbound,
    timeout_ms: Option<&'a str>,
) -> Vec<(&'a [u8], &'a [u8])> {
    let gzip =
        dest.endpoint.compression == Compression::Gzip && matches!(dest.target, Target::Http(_));
    let mut h: Vec<(&[u8], &[u8])> =
        Vec::with_capacity(dest.static_headers.len() + item.upload.headers.len() + 3);
    for (n, v) in &item.upload.headers {
        h.push((n, v));
    }
    match item.api {
        Api::Ingest => {
            let client_has_ct = item
                .upload
                .headers
                .iter()
                .any(|(n, _)| n.eq_ignore_ascii_case(b"content-type"));
            if let (false, Some(ct)) = (client_has_ct, &dest.fallback_content_type) {
                h.push((b"Content-Type", ct));
            }
        }
        Api::Push => {
            h.push((b"Content-Type", b"application/proto"));
            if gzip {
                h.push((b"Content-Encoding", b"gzip"));
            }
            h.push((b"Connect-Protocol-Version", b"1"));
            if let Some(ms) = timeout_ms {
                h.push((b"Connect-Timeout-Ms", ms.as_bytes()));
            }
        }
        Api::Otlp(format) => {
            h.push((b"Content-Type", format.content_type().as_bytes()));
            if gzip {
                h.push((b"Content-Encoding", b"gzip"));
            }
        }
    }
    for (n, v) in &dest.static_headers {
        h.push((n, v));
    }
    h
}

/// Delivers every request of `item` in order. Like Alloy, a failed series does not stop the
/// following ones; the item's result is the first failure.
pub(crate) async fn deliver(dest: &Destination, item: &Outbound) -> Result<(), Undelivered> {
    let (_, endpoint, downstream) = item.api.write_latency();
    let mut first = None;
    for payload in item.requests.iter() {
        // Alloy's `*_endpoint`: one endpoint's delivery of one request, retries included.
        let started = Instant::now();
        let result = match &dest.target {
            Target::Capture(sink) => {
                let r = capture(dest, sink, item, payload).await;
                dest.metrics
                    .write_latency
                    .observe(downstream, started.elapsed());
                r
            }
            Target::Http(http) => deliver_http(dest, http, item, payload).await,
        };
        dest.metrics
            .write_latency
            .observe(endpoint, started.elapsed());
        item.request_finished();
        if let Err(e) = result {
            first.get_or_insert(e);
        }
    }
    first.map_or(Ok(()), Err)
}

async fn capture(
    dest: &Destination,
    sink: &std::sync::Arc<capture::CaptureSink>,
    item: &Outbound,
    payload: &Payload,
) -> Result<(), Undelivered> {
    let mut head = BytesMut::new();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    capture::encode_record_head(
        &mut head,
        &item.target,
        &headers_of(dest, item, None),
        now,
        payload.len(),
    );
    let parts: Vec<Bytes> = payload.parts().to_vec();
    let sink = sink.clone();
    let failed = |cause: String| Undelivered {
        error: DeliveryError::Capture,
        message: format!(
            "failed to write capture {}: {cause}",
            dest.endpoint.url_text
        ),
    };
    match monoio::spawn_blocking(move || sink.append(&head, &parts)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => {
            dest.warn(format_args!("capture write failed: {e}"));
            Err(failed(e.to_string()))
        }
        Err(_) => Err(failed("blocking pool unavailable".into())),
    }
}

/// How one attempt ended: the typed error (side, retry rule) and its description.
struct AttemptFailure {
    error: DeliveryError,
    retry_after: Option<Duration>,
    /// What the logs and a Push client read after `failed to push to endpoint ...: `.
    cause: String,
}

/// Classifies a non-200 response: Alloy's `/ingest` rules on the status, or Connect's rules
/// on the error code (from the Connect error body, else from the HTTP status as connect-go does),
/// or OTLP/HTTP's retryable statuses (429 — unless `retry_on_http_429 = false` — 502, 503, 504;
/// OTLP specification, "Retryable Response Codes").
fn classify(api: Api, resp: &Response, retry_on_429: bool) -> AttemptFailure {
    let body = String::from_utf8_lossy(&resp.body_excerpt).into_owned();
    match api {
        Api::Otlp(_) => AttemptFailure {
            error: DeliveryError::Status {
                status: resp.status,
                retryable: matches!(resp.status, 502..=504) || (resp.status == 429 && retry_on_429),
            },
            retry_after: resp.retry_after,
            cause: format!(
                "remote error: otlp export error: status={} msg={}",
                resp.status,
                body.trim_end()
            ),
        },
        Api::Ingest => AttemptFailure {
            error: DeliveryError::Status {
                status: resp.status,
                retryable: should_retry(AttemptError::Status(resp.status), retry_on_429),
            },
            retry_after: resp.retry_after,
            cause: format!(
                "remote error: pyroscope write error: status={} msg={body}",
                resp.status
            ),
        },
        Api::Push => {
            let (code, message) =
                connect::parse_error_body(&resp.body_excerpt).unwrap_or_else(|| {
                    (
                        connect::Code::from_http_status(resp.status),
                        h1::reason_phrase(resp.status).to_string(),
                    )
                });
            AttemptFailure {
                error: DeliveryError::Status {
                    status: resp.status,
                    retryable: code.is_retryable(retry_on_429),
                },
                retry_after: resp.retry_after,
                cause: format!("{}: {message}", code.as_str()),
            }
        }
    }
}

fn transport_failure(api: Api, cause: String) -> AttemptFailure {
    let cause = match api {
        Api::Ingest | Api::Otlp(_) => cause,
        Api::Push => format!("unavailable: {cause}"),
    };
    AttemptFailure {
        error: DeliveryError::Transport,
        retry_after: None,
        cause,
    }
}

async fn deliver_http(
    dest: &Destination,
    http: &HttpTarget,
    item: &Outbound,
    payload: &Payload,
) -> Result<(), Undelivered> {
    let ep = &dest.endpoint;
    let verb = match item.api {
        Api::Ingest => "ingest",
        Api::Push => "push",
        Api::Otlp(_) => "export",
    };
    // A Push or OTLP export to an endpoint that asks for gzip is compressed once, before the first attempt;
    // retries resend the same compressed bytes.
    let compressed;
    let payload = match (item.api, ep.compression) {
        (Api::Push | Api::Otlp(_), Compression::Gzip) => {
            compressed = gzip_payload(payload);
            &compressed
        }
        _ => payload,
    };
    let mut backoff = Backoff::new(
        ep.min_backoff_period,
        ep.max_backoff_period,
        ep.max_backoff_retries,
    );
    let probe = super::recovery::PROBE_INTERVAL.max(ep.min_backoff_period);
    let (_, _, downstream) = item.api.write_latency();
    loop {
        // Alloy's `*_downstream`: one attempt.
        let attempt_started = Instant::now();
        // Per attempt: `remote_timeout`, capped by the client's deadline (Connect-Timeout-Ms).
        let mut budget = ep.remote_timeout;
        if let (Api::Push, Some(d)) = (item.api, item.deadline) {
            budget = budget.min(d.saturating_duration_since(Instant::now()));
        }
        let failed = if budget.is_zero() {
            // Alloy still makes (and times) the attempt, which fails at once.
            dest.metrics
                .write_latency
                .observe(downstream, attempt_started.elapsed());
            AttemptFailure {
                error: DeliveryError::DeadlineExceeded,
                retry_after: None,
                cause: "deadline_exceeded: the client's deadline passed".into(),
            }
        } else {
            dest.recovery.attempt_started();
            let outcome =
                monoio::time::timeout(budget, attempt(dest, http, item, payload, budget)).await;
            dest.metrics
                .write_latency
                .observe(downstream, attempt_started.elapsed());
            match outcome {
                Ok(Ok(resp)) if resp.status == 200 => {
                    dest.recovery.attempt_succeeded(probe);
                    dest.note_success();
                    return Ok(());
                }
                Ok(Ok(resp)) => classify(item.api, &resp, ep.retry_on_http_429),
                Ok(Err(e)) => transport_failure(item.api, e.to_string()),
                Err(_) => {
                    transport_failure(item.api, format!("attempt timed out after {budget:?}"))
                }
            }
        };
        tracing::debug!(endpoint = %ep.url_text, cause = %failed.cause, "failed to {verb} to endpoint");
        let more = backoff.record_attempt();
        let retryable = failed.error.retry() == Retry::Yes;
        // An answer, even a rejection, means the destination is up; a client deadline says
        // nothing about it.
        if retryable {
            dest.note_failure();
        } else if matches!(failed.error, DeliveryError::Status { .. }) {
            dest.note_success();
        }
        // A spooling destination that has failed for a while hands the upload to its spool
        // instead of holding it in memory through the remaining retries.
        if !retryable || !more || dest.spills_now() {
            let retries = if retryable { backoff.attempts() } else { 0 };
            let message = format!(
                "failed to {verb} to endpoint {} ({retries} retries): {}",
                ep.url_text, failed.cause
            );
            dest.warn(format_args!("{message}"));
            return Err(Undelivered {
                error: failed.error,
                message,
            });
        }
        dest.metrics.record_retry();
        // A destination that keeps failing shows why on the status page while it retries.
        dest.metrics.record_error(format_args!(
            "failed to {verb} to endpoint {} (attempt {}, retrying): {}",
            ep.url_text,
            backoff.attempts(),
            failed.cause
        ));
        let delay = backoff.next_delay(fastrand::f64(), failed.retry_after);
        // Cut short by a probe or the destination's recovery (`recovery`), never below the
        // upstream's Retry-After.
        let floor = failed
            .retry_after
            .map_or(Duration::ZERO, |ra| ra.min(super::backoff::MAX_RETRY_AFTER));
        dest.recovery.wait(delay, floor, probe).await;
    }
}

/// The gzip encoding of a payload (fast level: upstream CPU matters more than a few percent of
/// size for already-compact pprof).
fn gzip_payload(payload: &Payload) -> Payload {
    use std::io::Write;
    let mut enc = flate2::write::GzEncoder::new(
        Vec::with_capacity(payload.len() as usize / 2),
        flate2::Compression::fast(),
    );
    for part in payload.parts() {
        // Writing into a Vec cannot fail.
        let _ = enc.write_all(part);
    }
    Payload::Whole(Bytes::from(enc.finish().unwrap_or_default()))
}

/// One attempt: a pooled connection if there is one (falling back to a fresh connection when
/// the pooled one turns out stale), else a new one. Only connections that completed an
/// exchange enter the pool, so "pooled" is exactly "reused": the stale keep-alive fallback
/// never applies to a fresh connection, whose failures are the attempt's.
async fn attempt(
    dest: &Destination,
    http: &HttpTarget,
    item: &Outbound,
    payload: &Payload,
    budget: Duration,
) -> Result<Response, ExchangeError> {
    let mut head = BytesMut::new();
    let (path, query) = match item.target.split_once('?') {
        Some((p, q)) => (p, Some(q.as_bytes())),
        None => (item.target.as_str(), None),
    };
    // Connect's deadline header goes with Push requests only.
    let timeout_ms = matches!(item.api, Api::Push).then(|| budget.as_millis().max(1).to_string());
    let auth = dest
        .auth
        .current()
        .map_err(|e| ExchangeError::Io(std::io::Error::other(e.to_string())))?;
    let mut headers = headers_of(dest, item, timeout_ms.as_deref());
    if let Some(a) = &auth {
        headers.push((b"Authorization", a));
    }
    h1::encode_request_head(
        &mut head,
        "POST",
        path.as_bytes(),
        query,
        &http.host_header,
        &headers,
        h1::RequestFraming::Length(payload.len()),
    );
    // Frozen once: re-sending on a fresh connection shares these bytes.
    let head = head.freeze();
    let pooled = http.idle.borrow_mut().pop();
    if let Some(mut conn) = pooled {
        match conn.exchange(head.clone(), payload).await {
            Ok((resp, reusable)) => {
                if reusable {
                    http.idle.borrow_mut().push(conn);
                }
                return redirected(dest, item, payload, resp, &headers).await;
            }
            // A keep-alive connection the upstream closed while idle (or reset before any
            // answer byte): re-sent at once on a fresh connection without counting against
            // `max_backoff_retries`, but the request did go out again, so it is a retry in
            // `pyroscope_write_retries_total` (as Alloy counts it: Go's transport does not
            // replay a written POST, so Alloy retries it through its backoff).
            Err(e) if e.on_reused_connection().retry() == Retry::OnReusedConnection => {
                dest.metrics.record_retry();
            }
            Err(e) => return Err(e),
        }
    }
    let mut conn = connect(dest, http).await?;
    let (resp, reusable) = conn.exchange(head, payload).await?;
    if reusable {
        http.idle.borrow_mut().push(conn);
    }
    redirected(dest, item, payload, resp, &headers).await
}

/// Follows a 307/308 when the endpoint allows it (`follow_redirects`).
async fn redirected(
    dest: &Destination,
    item: &Outbound,
    payload: &Payload,
    resp: Response,
    headers: &[(&[u8], &[u8])],
) -> Result<Response, ExchangeError> {
    if !dest.endpoint.follow_redirects || !super::redirect::is_followed(resp.status) {
        return Ok(resp);
    }
    match super::redirect::origin_of(dest, &item.target) {
        Some(origin) => super::redirect::follow(dest, origin, resp, headers, payload).await,
        None => Ok(resp),
    }
}

pub(crate) async fn connect(
    dest: &Destination,
    http: &HttpTarget,
) -> Result<Connection, ExchangeError> {
    let addrs = http.addrs.borrow().clone();
    if addrs.is_empty() {
        let (host, port) = (http.host.clone(), http.port);
        let resolver = dest.transport.resolver.clone();
        let resolved = monoio::spawn_blocking(move || resolver.resolve(&host, port))
            .await
            .map_err(|_| ExchangeError::Io(std::io::Error::other("resolver task failed")))??;
        *http.addrs.borrow_mut() = resolved.into();
    }
    let addrs = http.addrs.borrow().clone();
    if addrs.is_empty() {
        return Err(ExchangeError::Io(std::io::Error::other(format!(
            "{} resolves to no address",
            http.host
        ))));
    }
    let start = http.next_addr.get();
    http.next_addr.set(start.wrapping_add(1));
    let mut last = None;
    for i in 0..addrs.len() {
        let addr = addrs[(start + i) % addrs.len()];
        match monoio::time::timeout(dest.endpoint.connect_timeout, TcpStream::connect_addr(addr))
            .await
        {
            Ok(Ok(s)) => {
                // Head and body go out as separate writes; without NODELAY, Nagle would hold
                // the body behind the head's ACK.
                let _ = s.set_nodelay(true);
                let s = super::transport::establish(&dest.transport, s).await?;
                return Ok(Connection::new(s));
            }
            Ok(Err(e)) => last = Some(e),
            Err(_) => {
                last = Some(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("connect to {addr} timed out"),
                ))
            }
        }
    }
    Err(ExchangeError::Io(
        last.unwrap_or_else(|| std::io::Error::other("no address")),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config;
    use crate::upload::{Payload, Ticket, Upload, Verdict};
    use crate::upstream::client::WRITTEN_PAYLOAD_PTRS;
    use std::io::{Read, Write};
    use std::net::TcpListener;
    use std::time::Instant;

    /// A one-connection upstream that answers every request with `status` and records bodies.
    fn upstream(status: u16) -> (std::net::SocketAddr, std::thread::JoinHandle<Vec<u8>>) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let t = std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
                .unwrap();
            let mut got = Vec::new();
            let mut buf = [0u8; 4096];
            loop {
                let n = s.read(&mut buf).unwrap();
                got.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&got).to_string();
                if let Some(h) = text.find("\r\n\r\n") {
                    let cl: usize = text[..h]
                        .lines()
                        .find_map(|l| l.strip_prefix("Content-Length: "))
                        .unwrap()
                        .parse()
                        .unwrap();
                    if got.len() >= h + 4 + cl {
                        break;
                    }
                }
                if n == 0 {
                    break;
                }
            }
            write!(s, "HTTP/1.1 {status} X\r\nContent-Length: 0\r\n\r\n").unwrap();
            got
        });
        (addr, t)
    }

    fn endpoint_for(addr: std::net::SocketAddr) -> config::Endpoint {
        let mut e = crate::upstream::testing::endpoint(&format!("http://{addr}"), 4);
        e.url = config::EndpointUrl::Http {
            tls: false,
            host: addr.ip().to_string(),
            port: addr.port(),
            path: String::new(),
        };
        e
    }

    #[monoio::test_all(timer_enabled = true)]
    async fn the_same_body_allocation_is_written_to_every_destination() {
        WRITTEN_PAYLOAD_PTRS.with(|p| p.borrow_mut().clear());
        let ups: Vec<_> = (0..3).map(|_| upstream(200)).collect();
        let dests: Vec<Rc<Destination>> = ups
            .iter()
            .map(|(a, _)| Rc::new(Destination::new(&endpoint_for(*a), 0, vec![*a]).unwrap()))
            .collect();
        let body = Bytes::from(vec![0xA5u8; 64 * 1024]);
        let up = Rc::new(Upload {
            headers: vec![],
            ticket: Ticket::new(3),
            received_at: Instant::now(),
            reservation: None,
        });
        for d in &dests {
            d.queue
                .try_push(Outbound::ingest(
                    up.clone(),
                    "/ingest?name=a".into(),
                    Payload::Whole(body.clone()),
                ))
                .unwrap();
            d.queue.close();
        }
        for d in &dests {
            run(d.clone()).await;
        }
        assert_eq!(up.ticket.verdict(), Verdict::Delivered);
        let ptrs = WRITTEN_PAYLOAD_PTRS.with(|p| p.borrow().clone());
        assert_eq!(ptrs, vec![body.as_ptr() as usize; 3]);
        for (_, t) in ups {
            let got = t.join().unwrap();
            assert!(
                got.ends_with(&body),
                "upstream received the body byte for byte"
            );
        }
    }

    /// An OTLP export rewritten for `external_labels`: the profile bytes that reach the socket
    /// are the received allocation (only the resource is new), with the OTLP content type.
    #[monoio::test_all(timer_enabled = true)]
    async fn an_otlp_rewrite_writes_the_received_profile_bytes() {
        use crate::otlp::{self, Format};
        WRITTEN_PAYLOAD_PTRS.with(|p| p.borrow_mut().clear());
        let (addr, t) = upstream(200);
        let d = Rc::new(Destination::new(&endpoint_for(addr), 0, vec![addr]).unwrap());
        // ExportProfilesServiceRequest { resource_profiles { resource {}, scope_profiles {
        // profiles: <60 KiB> } }, dictionary {} }, assembled by hand.
        let profile = vec![0x5Au8; 60 * 1024];
        let mut scope = vec![0x12, 0x80, 0xe0, 0x03];
        scope.extend_from_slice(&profile);
        let mut rp = vec![0x0a, 0x00, 0x12, 0x84, 0xe0, 0x03];
        rp.extend_from_slice(&scope);
        let mut raw = vec![0x0a, 0x8a, 0xe0, 0x03];
        raw.extend_from_slice(&rp);
        raw.extend_from_slice(&[0x12, 0x00]);
        let body = Bytes::from(raw);
        let export = otlp::decode(Format::XProtobuf, &body).unwrap();
        let set = vec![("env".to_string(), "prod".to_string())];
        let parts = otlp::rewrite(Format::XProtobuf, &body, &export, &[0], &set);
        let sent: Vec<u8> = parts.concat();
        let up = Rc::new(Upload {
            headers: vec![],
            ticket: Ticket::new(1),
            received_at: Instant::now(),
            reservation: None,
        });
        let item = Outbound::new(
            up.clone(),
            Api::Otlp(Format::XProtobuf),
            None,
            "/v1development/profiles".into(),
            crate::upload::Requests::One(Payload::Parts(parts.into())),
            1,
            sent.len() as u64,
        );
        d.queue.try_push(item).unwrap();
        d.queue.close();
        run(d.clone()).await;
        assert_eq!(up.ticket.verdict(), Verdict::Delivered);
        let range = body.as_ptr_range();
        let ptrs = WRITTEN_PAYLOAD_PTRS.with(|p| p.borrow().clone());
        let scope_at = body.as_ptr() as usize + 6;
        assert!(
            ptrs.contains(&scope_at),
            "the scope profiles are a slice of the body"
        );
        assert!(
            !range.contains(&(ptrs[0] as *const u8)),
            "the resource is new"
        );
        let got = t.join().unwrap();
        let text = String::from_utf8_lossy(&got);
        assert!(text.contains("Content-Type: application/x-protobuf\r\n"));
        assert!(got.ends_with(&sent));
    }

    #[monoio::test_all(timer_enabled = true)]
    async fn a_400_is_final_and_reported_with_its_status() {
        let (addr, t) = upstream(400);
        let d = Rc::new(Destination::new(&endpoint_for(addr), 0, vec![addr]).unwrap());
        let up = Rc::new(Upload {
            headers: vec![],
            ticket: Ticket::new(1),
            received_at: Instant::now(),
            reservation: None,
        });
        d.queue
            .try_push(Outbound::ingest(
                up.clone(),
                "/ingest".into(),
                Payload::Whole(Bytes::from_static(b"p")),
            ))
            .unwrap();
        d.queue.close();
        run(d.clone()).await;
        t.join().unwrap();
        assert_eq!(up.ticket.verdict(), Verdict::Upstream(400));
        assert_eq!(d.metrics.retries.get(), 0);
        assert_eq!(d.metrics.dropped_profiles.get(), 1);
    }
}
