//! The delivery loop: a pool of sender tasks per destination per core.
//!
//! Owns: taking uploads from a destination's queue, sending each upstream with per-attempt
//! `remote_timeout`, Alloy's retry rules with jittered backoff (and `Retry-After`), keep-alive
//! connection reuse, and recording the final result (metrics, the upload's ticket). Does not
//! own: the wire format (`client`, `h1`) or queueing policy (`fanout`). Hot path: yes.

use std::rc::Rc;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use monoio::net::TcpStream;

use super::backoff::{AttemptError, Backoff, should_retry};
use super::client::{Connection, ExchangeError, Response};
use super::{Destination, HttpTarget, Target};
use crate::capture;
use crate::h1;
use crate::metrics::DropReason;
use crate::upload::{Failure, Outbound};

/// Runs one sender until the destination's queue is closed and empty.
pub async fn run(dest: Rc<Destination>) {
    while let Some(item) = dest.queue.pop().await {
        dest.in_flight.set(dest.in_flight.get() + 1);
        let result = deliver(&dest, &item).await;
        dest.in_flight.set(dest.in_flight.get() - 1);
        let bytes = item.payload.len();
        match result {
            Ok(()) => {
                dest.metrics
                    .record_sent(bytes, item.profiles, item.upload.received_at.elapsed());
                item.finish(Ok(()));
            }
            Err((failure, reason)) => {
                dest.metrics.record_dropped(bytes, item.profiles, reason);
                item.finish(Err(failure));
            }
        }
    }
}

fn headers_of<'a>(dest: &'a Destination, item: &'a Outbound) -> Vec<(&'a [u8], &'a [u8])> {
    let mut h: Vec<(&[u8], &[u8])> =
        Vec::with_capacity(dest.static_headers.len() + item.upload.headers.len() + 1);
    let client_has_ct = item
        .upload
        .headers
        .iter()
        .any(|(n, _)| n.eq_ignore_ascii_case(b"content-type"));
    for (n, v) in &item.upload.headers {
        h.push((n, v));
    }
    if let (false, Some(ct)) = (client_has_ct, &dest.fallback_content_type) {
        h.push((b"Content-Type", ct));
    }
    for (n, v) in &dest.static_headers {
        h.push((n, v));
    }
    h
}

async fn deliver(dest: &Destination, item: &Outbound) -> Result<(), (Failure, DropReason)> {
    match &dest.target {
        Target::Capture(sink) => {
            let mut head = BytesMut::new();
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0);
            capture::encode_record_head(
                &mut head,
                &item.target,
                &headers_of(dest, item),
                now,
                item.payload.len(),
            );
            let parts: Vec<Bytes> = item.payload.parts().to_vec();
            let sink = sink.clone();
            match monoio::spawn_blocking(move || sink.append(&head, &parts)).await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => {
                    dest.warn(format_args!("capture write failed: {e}"));
                    Err((Failure::Error, DropReason::Rejected))
                }
                Err(_) => Err((Failure::Error, DropReason::Rejected)),
            }
        }
        Target::Http(http) => deliver_http(dest, http, item).await,
    }
}

async fn deliver_http(
    dest: &Destination,
    http: &HttpTarget,
    item: &Outbound,
) -> Result<(), (Failure, DropReason)> {
    let ep = &dest.endpoint;
    let mut backoff = Backoff::new(
        ep.min_backoff_period,
        ep.max_backoff_period,
        ep.max_backoff_retries,
    );
    loop {
        let (err, retry_after, excerpt) = match monoio::time::timeout(
            ep.remote_timeout,
            attempt(dest, http, item),
        )
        .await
        {
            Ok(Ok(resp)) if resp.status == 200 => return Ok(()),
            Ok(Ok(resp)) => (
                AttemptError::Status(resp.status),
                resp.retry_after,
                resp.body_excerpt,
            ),
            Ok(Err(e)) => {
                tracing::debug!(endpoint = %ep.url_text, error = %e, "failed to ingest to endpoint");
                (AttemptError::Transport, None, Bytes::new())
            }
            Err(_) => {
                tracing::debug!(endpoint = %ep.url_text, "attempt timed out");
                (AttemptError::Transport, None, Bytes::new())
            }
        };
        let more = backoff.record_attempt();
        let failure = match err {
            AttemptError::Status(s) => Failure::Status(s),
            AttemptError::Transport => Failure::Error,
        };
        if !should_retry(err, ep.retry_on_http_429) {
            let body = String::from_utf8_lossy(&excerpt);
            dest.warn(format_args!(
                "failed to ingest to endpoint {} (0 retries): status={failure:?} msg={body}",
                ep.url_text
            ));
            return Err((failure, DropReason::Rejected));
        }
        if !more {
            dest.warn(format_args!(
                "failed to ingest to endpoint {} ({} retries): {failure:?}",
                ep.url_text,
                backoff.attempts()
            ));
            return Err((failure, DropReason::RetriesExhausted));
        }
        dest.metrics.record_retry();
        let delay = backoff.next_delay(fastrand::f64(), retry_after);
        monoio::time::sleep(delay).await;
    }
}

/// One attempt: a pooled connection if there is one (falling back to a fresh connection when
/// the pooled one turns out stale), else a new one.
async fn attempt(
    dest: &Destination,
    http: &HttpTarget,
    item: &Outbound,
) -> Result<Response, ExchangeError> {
    let mut head = BytesMut::new();
    let (path, query) = match item.target.split_once('?') {
        Some((p, q)) => (p, Some(q.as_bytes())),
        None => (item.target.as_str(), None),
    };
    let auth = dest
        .auth
        .current()
        .map_err(|e| ExchangeError::Io(std::io::Error::other(e.to_string())))?;
    let mut headers = headers_of(dest, item);
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
        item.payload.len(),
    );
    let pooled = http.idle.borrow_mut().pop();
    if let Some(mut conn) = pooled {
        match conn.exchange(head.clone(), &item.payload).await {
            Ok((resp, reusable)) => {
                if reusable {
                    http.idle.borrow_mut().push(conn);
                }
                return redirected(dest, item, resp, &headers).await;
            }
            Err(ExchangeError::Closed {
                response_started: false,
            })
            | Err(ExchangeError::Io(_)) => {
                // A keep-alive connection the upstream closed while idle: not an attempt.
            }
            Err(e) => return Err(e),
        }
    }
    let mut conn = connect(dest, http).await?;
    let (resp, reusable) = conn.exchange(head, &item.payload).await?;
    if reusable {
        http.idle.borrow_mut().push(conn);
    }
    redirected(dest, item, resp, &headers).await
}

/// Follows a 307/308 when the endpoint allows it (`follow_redirects`).
async fn redirected(
    dest: &Destination,
    item: &Outbound,
    resp: Response,
    headers: &[(&[u8], &[u8])],
) -> Result<Response, ExchangeError> {
    if !dest.endpoint.follow_redirects || !super::redirect::is_followed(resp.status) {
        return Ok(resp);
    }
    match super::redirect::origin_of(dest, &item.target) {
        Some(origin) => super::redirect::follow(dest, origin, resp, headers, &item.payload).await,
        None => Ok(resp),
    }
}

async fn connect(dest: &Destination, http: &HttpTarget) -> Result<Connection, ExchangeError> {
    let addrs = http.addrs.borrow().clone();
    if addrs.is_empty() {
        let (host, port) = (http.host.clone(), http.port);
        let resolved = monoio::spawn_blocking(move || super::resolve(&host, port))
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
        let mut e = crate::fanout::tests::endpoint(&format!("http://{addr}"), 4);
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
                .try_push(Outbound::new(
                    up.clone(),
                    "/ingest?name=a".into(),
                    Payload::Whole(body.clone()),
                    1,
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
            .try_push(Outbound::new(
                up.clone(),
                "/ingest".into(),
                Payload::Whole(Bytes::from_static(b"p")),
                1,
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
