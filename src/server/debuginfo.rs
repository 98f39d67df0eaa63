//! The debug-info proxy: eBPF profilers' `debuginfo.v1alpha1.DebuginfoService` calls,
//! forwarded as Alloy's `pyroscope.receive_http` forwards them (grafana/alloy
//! `internal/component/pyroscope/receive_http/debuginfo.go`).
//!
//! Owns: choosing the destinations (by default the first endpoint of the first writer reachable
//! from the receiver, as Alloy; with `debug_info_destinations = "all"` every one), the two
//! Connect unary calls (`ShouldInitiateUpload`, `UploadFinished`: the client's message is
//! checked, sent as received, and the destination's answer relayed, Connect errors included),
//! the upload (`Upload/{gnu_build_id}`: streamed to the one destination through a window of
//! [`UPLOAD_WINDOW_BYTES`] charged to the in-flight budget, so memory does not grow with the
//! file; in "all" mode read whole within the budget and sent, the same pieces, to each
//! destination that asked for it), `debug_info_upload_timeout`, Alloy's error texts, and
//! `pyroscope_receive_http_debuginfo_downstream_calls_total`. Does not own: the codec
//! (`debuginfo`), the upstream exchange (`upstream::debuginfo`), or reading the body
//! ([`super::stream_body`]).
//!
//! Pyroscope answers an upload 412 unless `ShouldInitiateUpload` said yes for that build ID
//! (grafana/pyroscope `pkg/debuginfo/store.go`), so the three calls of one upload must reach
//! the same servers. In "all" mode each core remembers, per build ID, which destinations said
//! yes ([`Wanted`]); an upload or `UploadFinished` arriving on a core that did not see the
//! question goes to every destination, and a 412 there means "not wanted", not a failure.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};

use super::ReceiverRt;
use super::conn::Reply;
use super::stream_body::{BodyError, StreamBody};
use crate::budget::Reservation;
use crate::config::{DebugInfoDestinations, EndpointUrl};
use crate::debuginfo::{self as codec, Call, Codec};
use crate::h1::{self, RequestHead};
use crate::metrics::RefuseReason;
use crate::push::connect::{self, Code};
use crate::upstream::debuginfo::{self as upstream, Answer, CallError, Framing};
use crate::upstream::{Destination, Target};

/// The window an upload streams through: at most this many body bytes are held (and charged
/// to the in-flight budget) between the client's socket and the destination's.
pub const UPLOAD_WINDOW_BYTES: usize = 256 * 1024;
/// How long a destination that failed a write mid-upload gets to show the answer it sent
/// before (a 412 or 413 before the body was read).
const EARLY_ANSWER_WAIT: Duration = Duration::from_millis(500);
/// Build IDs a core remembers the willing destinations of ("all" mode).
const MAX_WANTED: usize = 1024;
/// How long such a memory lasts: longer than any upload may take at the default timeout.
const WANTED_TTL: Duration = Duration::from_secs(600);

/// Alloy's message when the receiver reaches no endpoint.
pub const NO_DESTINATION: &str = "no downstream endpoints available";

/// Per core and receiver ("all" mode): which destinations said yes to `ShouldInitiateUpload`
/// for a build ID, until its `UploadFinished`.
#[derive(Debug, Default)]
pub struct Wanted {
    by_build_id: RefCell<HashMap<String, Willing>>,
    /// Order of the answers, so the oldest is the one evicted.
    next: std::cell::Cell<u64>,
}

/// When a build ID was asked about (and in which order), and the destinations that said yes.
type Willing = (Instant, u64, Vec<Rc<Destination>>);

impl Wanted {
    fn remember(&self, build_id: &str, yes: Vec<Rc<Destination>>) {
        // The borrow ends within this function: never held across an await.
        let mut map = self.by_build_id.borrow_mut();
        if map.len() >= MAX_WANTED {
            map.retain(|_, (at, _, _)| at.elapsed() < WANTED_TTL);
        }
        if map.len() >= MAX_WANTED
            && let Some(oldest) = map
                .iter()
                .min_by_key(|(_, (_, seq, _))| *seq)
                .map(|(k, _)| k.clone())
        {
            map.remove(&oldest);
        }
        let seq = self.next.get();
        self.next.set(seq + 1);
        map.insert(build_id.to_string(), (Instant::now(), seq, yes));
    }

    fn get(&self, build_id: &str) -> Option<Vec<Rc<Destination>>> {
        let map = self.by_build_id.borrow();
        map.get(build_id)
            .filter(|(at, _, _)| at.elapsed() < WANTED_TTL)
            .map(|(_, _, d)| d.clone())
    }

    fn forget(&self, build_id: &str) -> Option<Vec<Rc<Destination>>> {
        let mut map = self.by_build_id.borrow_mut();
        map.remove(build_id)
            .filter(|(at, _, _)| at.elapsed() < WANTED_TTL)
            .map(|(_, _, d)| d)
    }
}

/// The destinations debug-info calls may go to: reachable HTTP endpoints (a capture directory
/// is not a Pyroscope server).
fn destinations(rx: &ReceiverRt) -> Vec<Rc<Destination>> {
    rx.live()
        .pipeline
        .reachable_destinations()
        .into_iter()
        .filter(|d| matches!(d.target, Target::Http(_)))
        .collect()
}

fn connect_error(code: Code, message: &str) -> Reply {
    Reply {
        status: code.http_status(),
        body: Bytes::from(connect::error_body(code, message)),
        content_type: Some("application/json"),
        retry_after: code == Code::Unavailable,
    }
}

/// The client's headers that travel upstream: the receiver's `forward_headers`.
fn forwarded<'a>(
    forward: &[String],
    head: &RequestHead,
    head_bytes: &'a [u8],
) -> Vec<(&'a [u8], &'a [u8])> {
    head.headers
        .iter()
        .filter(|h| {
            let name = &head_bytes[h.name.clone()];
            forward
                .iter()
                .any(|f| name.eq_ignore_ascii_case(f.as_bytes()))
        })
        .map(|h| (&head_bytes[h.name.clone()], &head_bytes[h.value.clone()]))
        .collect()
}

/// `scheme://host[:port]path` of a request to `dest`, for messages as Go's client writes them.
fn url_of(dest: &Destination, path: &str) -> String {
    match (&dest.target, &dest.endpoint.url) {
        (Target::Http(h), EndpointUrl::Http { tls, .. }) => {
            let scheme = if *tls { "https" } else { "http" };
            format!("{scheme}://{}{path}", h.host_header)
        }
        _ => path.to_string(),
    }
}

/// How one unary call to one destination ended.
enum UnaryOutcome {
    Ok(Answer),
    /// The answer to relay to the client.
    Failed(Reply),
}

/// Handles `ShouldInitiateUpload` or `UploadFinished` whose body has been read.
pub async fn unary(
    rx: &ReceiverRt,
    call: Call,
    head: &RequestHead,
    head_bytes: &Bytes,
    body: Bytes,
) -> Reply {
    let reply = unary_reply(rx, call, head, head_bytes, body).await;
    rx.metrics.record_debuginfo(call, reply.status == 200);
    reply
}

async fn unary_reply(
    rx: &ReceiverRt,
    call: Call,
    head: &RequestHead,
    head_bytes: &Bytes,
    body: Bytes,
) -> Reply {
    let received_at = Instant::now();
    let ct = head.header(head_bytes, "content-type").unwrap_or(b"");
    let Some(codec) = Codec::of(ct) else {
        let msg = format!(
            "unsupported content type {:?}: use application/proto or application/json",
            String::from_utf8_lossy(&ct[..ct.len().min(64)])
        );
        return Reply {
            status: 415,
            ..connect_error(Code::Unimplemented, &msg)
        };
    };
    if let Some(v) = head.header(head_bytes, "connect-protocol-version")
        && v != b"1"
    {
        let msg = format!(
            "connect-protocol-version must be \"1\": got {:?}",
            String::from_utf8_lossy(v)
        );
        return connect_error(Code::InvalidArgument, &msg);
    }
    let encoding = head
        .header(head_bytes, "content-encoding")
        .filter(|e| !e.is_empty() && !e.eq_ignore_ascii_case(b"identity"));
    if let Some(e) = encoding
        && !e.eq_ignore_ascii_case(b"gzip")
    {
        let msg = format!(
            "unknown compression {:?}: supported encodings are gzip, identity",
            String::from_utf8_lossy(e)
        );
        return connect_error(Code::Unimplemented, &msg);
    }
    // The build ID names the upload in "all" mode; a compressed message is forwarded as
    // received, unread.
    let build_id = if encoding.is_some() {
        None
    } else {
        let decoded = match call {
            Call::ShouldInitiateUpload => {
                codec::decode_should_initiate_request(codec, &body).map(|f| f.gnu_build_id)
            }
            _ => codec::decode_upload_finished_request(codec, &body),
        };
        match decoded {
            Ok(id) => Some(id),
            Err(e) => return connect_error(Code::InvalidArgument, &e.to_string()),
        }
    };
    let client_deadline = head
        .header(head_bytes, "connect-timeout-ms")
        .and_then(connect::parse_timeout_ms)
        .map(|d| received_at + d);
    let dests = destinations(rx);
    if dests.is_empty() {
        return connect_error(Code::Unavailable, NO_DESTINATION);
    }
    let live = rx.live();
    let mut extra = forwarded(&live.forward_headers, head, head_bytes);
    extra.push((b"Content-Type", ct));
    if let Some(e) = encoding {
        extra.push((b"Content-Encoding", e));
    }
    extra.push((b"Connect-Protocol-Version", b"1"));

    let one = |dest: Rc<Destination>| {
        let body = body.clone();
        let extra = extra.clone();
        async move {
            let outcome = call_unary(&dest, call, &extra, body, client_deadline).await;
            (dest, outcome)
        }
    };
    match live.debug_info_destinations {
        DebugInfoDestinations::First => match one(dests[0].clone()).await.1 {
            UnaryOutcome::Ok(answer) => relay(codec, answer),
            UnaryOutcome::Failed(reply) => reply,
        },
        DebugInfoDestinations::All => {
            let targets = match (call, &build_id) {
                (Call::UploadFinished, Some(id)) => rx.debuginfo_wanted.forget(id).unwrap_or(dests),
                _ => dests,
            };
            let mut first_ok: Option<Answer> = None;
            let mut first_yes: Option<Answer> = None;
            let mut first_failure: Option<Reply> = None;
            let mut yes = Vec::new();
            for dest in targets {
                let (dest, outcome) = one(dest).await;
                match outcome {
                    UnaryOutcome::Ok(answer) => {
                        if call == Call::ShouldInitiateUpload
                            && codec::decode_should_initiate_response(codec, &answer.body)
                                .is_ok_and(|r| r.should_initiate_upload)
                        {
                            yes.push(dest);
                            first_yes.get_or_insert_with(|| answer.clone());
                        }
                        first_ok.get_or_insert(answer);
                    }
                    UnaryOutcome::Failed(reply) => {
                        first_failure.get_or_insert(reply);
                    }
                }
            }
            if let (Call::ShouldInitiateUpload, Some(id)) = (call, &build_id) {
                rx.debuginfo_wanted.remember(id, yes);
            }
            // A yes wins (the client then uploads); then any answer; else the first error.
            match (first_yes.or(first_ok), first_failure) {
                (Some(answer), _) => relay(codec, answer),
                (None, Some(reply)) => reply,
                (None, None) => connect_error(Code::Unavailable, NO_DESTINATION),
            }
        }
    }
}

/// A destination's 200 answer, relayed in the client's codec (the destination answers in the
/// codec it was asked in).
fn relay(codec: Codec, answer: Answer) -> Reply {
    Reply {
        status: 200,
        body: answer.body,
        content_type: Some(codec.content_type()),
        retry_after: false,
    }
}

async fn call_unary(
    dest: &Destination,
    call: Call,
    extra: &[(&[u8], &[u8])],
    body: Bytes,
    client_deadline: Option<Instant>,
) -> UnaryOutcome {
    let path = codec::unary_path(&upstream::escaped_base(dest), call);
    // connect-go's client deadline: the write endpoint's `remote_timeout`, capped by the
    // client's own `Connect-Timeout-Ms`.
    let mut budget = dest.endpoint.remote_timeout;
    if let Some(d) = client_deadline {
        budget = budget.min(d.saturating_duration_since(Instant::now()));
    }
    let timeout_ms = budget.as_millis().max(1).to_string();
    let mut headers = extra.to_vec();
    headers.push((b"Connect-Timeout-Ms", timeout_ms.as_bytes()));
    let result = monoio::time::timeout(budget, upstream::unary(dest, &path, &headers, body)).await;
    let failed = |code: Code, message: String| {
        dest.warn(format_args!("debug-info {call} failed: {message}"));
        UnaryOutcome::Failed(connect_error(code, &message))
    };
    match result {
        Ok(Ok(answer)) if answer.status == 200 => UnaryOutcome::Ok(answer),
        Ok(Ok(answer)) => {
            // A Connect error is relayed as the destination wrote it; any other answer becomes
            // the error connect-go's client makes of its HTTP status.
            if let Some((code, message)) = connect::parse_error_body(&answer.body) {
                dest.warn(format_args!("debug-info {call} failed: {code}: {message}"));
                return UnaryOutcome::Failed(Reply {
                    status: answer.status,
                    body: answer.body,
                    content_type: Some("application/json"),
                    retry_after: code == Code::Unavailable,
                });
            }
            failed(
                Code::from_http_status(answer.status),
                format!(
                    "HTTP status {} {}",
                    answer.status,
                    h1::reason_phrase(answer.status)
                ),
            )
        }
        Ok(Err(e)) => failed(
            Code::Unavailable,
            format!("Post \"{}\": {e}", url_of(dest, &path)),
        ),
        Err(_) => failed(
            Code::DeadlineExceeded,
            format!(
                "Post \"{}\": context deadline exceeded",
                url_of(dest, &path)
            ),
        ),
    }
}

/// The answer to an upload, and whether the connection must close (the body was not read to
/// its end).
#[derive(Debug)]
pub struct UploadReply {
    pub reply: Reply,
    pub body_read: u64,
    pub body_done: bool,
}

/// Handles `POST …/Upload/{gnu_build_id}`; the body has not been read.
pub async fn upload(
    rx: &ReceiverRt,
    core: &super::Shared,
    head: &RequestHead,
    head_bytes: &Bytes,
    build_id: &str,
    mut body: StreamBody<'_>,
) -> UploadReply {
    let started = Instant::now();
    let dests = destinations(rx);
    let reply = if dests.is_empty() {
        Reply::text(503, NO_DESTINATION)
    } else {
        let live = rx.live();
        let extra = forwarded(&live.forward_headers, head, head_bytes);
        match live.debug_info_destinations {
            DebugInfoDestinations::First => {
                let dest = &dests[0];
                let timeout = live
                    .debug_info_upload_timeout
                    .min(dest.endpoint.debug_info_upload_timeout);
                let reply = stream_to_one(
                    rx,
                    core,
                    dest,
                    build_id,
                    &extra,
                    &mut body,
                    started + timeout,
                )
                .await;
                if reply.status != 200 {
                    warn_upload(
                        dest,
                        build_id,
                        String::from_utf8_lossy(&reply.body).trim_end(),
                    );
                }
                reply
            }
            DebugInfoDestinations::All => {
                let (targets, known) = match rx.debuginfo_wanted.get(build_id) {
                    Some(t) => (t, true),
                    None => (dests, false),
                };
                upload_to_each(
                    rx, core, targets, known, build_id, &extra, &mut body, started,
                )
                .await
            }
        }
    };
    rx.metrics
        .record_debuginfo(Call::Upload, reply.status == 200);
    UploadReply {
        reply,
        body_read: body.read_bytes(),
        body_done: body.is_done(),
    }
}

fn downstream_error(message: impl std::fmt::Display) -> Reply {
    Reply::text(502, &format!("downstream upload: {message}"))
}

fn client_error(e: &BodyError) -> Reply {
    Reply::text(e.status(), &format!("debug-info upload: {e}"))
}

/// Alloy's `debuginfoclient` error for a non-200 answer.
fn status_error(status: u16, started: Instant) -> Reply {
    downstream_error(format_args!(
        "upload: HTTP {status} (duration {:?})",
        started.elapsed()
    ))
}

/// Waits for `fut` until `deadline`.
async fn until<T>(deadline: Instant, fut: impl std::future::Future<Output = T>) -> Option<T> {
    let left = deadline.saturating_duration_since(Instant::now());
    monoio::time::timeout(left, fut).await.ok()
}

/// One upload window of the in-flight budget, waited for until `wait_until`; else the 503 a
/// full budget gets (counted).
async fn reserve_window(
    rx: &ReceiverRt,
    core: &super::Shared,
    wait_until: Instant,
) -> Result<Reservation, Reply> {
    match core
        .budget
        .reserve_until(UPLOAD_WINDOW_BYTES as u64, wait_until)
        .await
    {
        Some(r) => Ok(r),
        None => {
            rx.metrics.record_refused(RefuseReason::Budget);
            Err(Reply::overloaded())
        }
    }
}

/// The upload streamed to one destination: each window's bytes are written upstream before the
/// next are read from the client, so either side's pace holds the other back.
async fn stream_to_one(
    rx: &ReceiverRt,
    core: &super::Shared,
    dest: &Destination,
    build_id: &str,
    extra: &[(&[u8], &[u8])],
    body: &mut StreamBody<'_>,
    deadline: Instant,
) -> Reply {
    let started = Instant::now();
    let wait_until = started + core.queue_wait_timeout;
    let _window = match reserve_window(rx, core, wait_until).await {
        Ok(r) => r,
        Err(reply) => return reply,
    };
    let path = codec::upload_path(&upstream::escaped_base(dest), build_id);
    let url = url_of(dest, &path);
    let framing = body.length().map_or(Framing::Chunked, Framing::Length);
    let mut up = match until(
        deadline,
        upstream::Upload::start(dest, &path, extra, framing),
    )
    .await
    {
        Some(Ok(u)) => u,
        Some(Err(e)) => return downstream_error(format_args!("Post \"{url}\": {e}")),
        None => return downstream_error(format_args!("Post \"{url}\": context deadline exceeded")),
    };
    while !body.is_done() {
        let window = BytesMut::with_capacity(UPLOAD_WINDOW_BYTES);
        let (r, piece) = body.next_into(window, deadline).await;
        if let Err(e) = r {
            // The upstream request is left incomplete and its connection dropped: the
            // destination never sees a finished upload.
            return client_error(&e);
        }
        match until(deadline, up.send(piece.freeze())).await {
            Some(Ok(())) => {}
            Some(Err(e)) => {
                return match up.early_answer(EARLY_ANSWER_WAIT).await {
                    Some(a) if a.status != 200 => status_error(a.status, started),
                    _ => downstream_error(format_args!("Post \"{url}\": {e}")),
                };
            }
            None => {
                return downstream_error(format_args!("Post \"{url}\": context deadline exceeded"));
            }
        }
    }
    match until(deadline, up.finish()).await {
        Some(Ok(a)) if a.status == 200 => Reply::empty(200),
        Some(Ok(a)) => status_error(a.status, started),
        Some(Err(e)) => downstream_error(format_args!("Post \"{url}\": {e}")),
        None => downstream_error(format_args!("Post \"{url}\": context deadline exceeded")),
    }
}

fn warn_upload(dest: &Destination, build_id: &str, why: &str) {
    // Rate-limited per destination, and shown as its last error on the status page.
    dest.warn(format_args!(
        "debug-info upload of {build_id} not completed: {why}"
    ));
}

/// "all" mode: the body is read whole (each window charged to the budget), then the same
/// pieces go to each target. `known`: the targets are those that said yes on this core;
/// otherwise a 412 from a target means it did not ask for this file.
#[allow(clippy::too_many_arguments)]
async fn upload_to_each(
    rx: &ReceiverRt,
    core: &super::Shared,
    targets: Vec<Rc<Destination>>,
    known: bool,
    build_id: &str,
    extra: &[(&[u8], &[u8])],
    body: &mut StreamBody<'_>,
    started: Instant,
) -> Reply {
    let read_deadline = started + rx.live().debug_info_upload_timeout;
    let wait_until = started + core.queue_wait_timeout;
    let reservation = match reserve_window(rx, core, wait_until).await {
        Ok(r) => r,
        Err(reply) => return reply,
    };
    let mut pieces: Vec<Bytes> = Vec::new();
    let mut held = 0u64;
    while !body.is_done() {
        let step = UPLOAD_WINDOW_BYTES as u64;
        if held + step > reservation.bytes() && !reservation.grow_until(step, wait_until).await {
            rx.metrics.record_refused(RefuseReason::Budget);
            return Reply::overloaded();
        }
        let (r, piece) = body
            .next_into(BytesMut::with_capacity(UPLOAD_WINDOW_BYTES), read_deadline)
            .await;
        if let Err(e) = r {
            return client_error(&e);
        }
        held += piece.capacity() as u64;
        pieces.push(piece.freeze());
    }
    let total: u64 = pieces.iter().map(|p| p.len() as u64).sum();
    let mut delivered = 0;
    let mut failure: Option<Reply> = None;
    for dest in &targets {
        let deadline = started
            + rx.live()
                .debug_info_upload_timeout
                .min(dest.endpoint.debug_info_upload_timeout);
        let reply = send_whole(dest, build_id, extra, &pieces, total, deadline).await;
        match reply.status {
            200 => delivered += 1,
            // Not asked for there (this core did not see the question).
            _ if !known
                && reply
                    .body
                    .starts_with(b"downstream upload: upload: HTTP 412 ") => {}
            _ => {
                warn_upload(
                    dest,
                    build_id,
                    String::from_utf8_lossy(&reply.body).trim_end(),
                );
                failure.get_or_insert(reply);
            }
        }
    }
    match failure {
        Some(reply) => reply,
        None if delivered > 0 => Reply::empty(200),
        None => status_error(412, started),
    }
}

/// One destination's copy of a body held whole.
async fn send_whole(
    dest: &Destination,
    build_id: &str,
    extra: &[(&[u8], &[u8])],
    pieces: &[Bytes],
    total: u64,
    deadline: Instant,
) -> Reply {
    let started = Instant::now();
    let path = codec::upload_path(&upstream::escaped_base(dest), build_id);
    let url = url_of(dest, &path);
    let send = async {
        let mut up = upstream::Upload::start(dest, &path, extra, Framing::Length(total)).await?;
        for p in pieces {
            if let Err(e) = up.send(p.clone()).await {
                return Ok(match up.early_answer(EARLY_ANSWER_WAIT).await {
                    Some(a) if a.status != 200 => status_error(a.status, started),
                    _ => downstream_error(format_args!("Post \"{url}\": {e}")),
                });
            }
        }
        let a = up.finish().await?;
        Ok::<Reply, CallError>(if a.status == 200 {
            Reply::empty(200)
        } else {
            status_error(a.status, started)
        })
    };
    match until(deadline, send).await {
        Some(Ok(reply)) => reply,
        Some(Err(e)) => downstream_error(format_args!("Post \"{url}\": {e}")),
        None => downstream_error(format_args!("Post \"{url}\": context deadline exceeded")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dest(n: u16) -> Rc<Destination> {
        let e = crate::upstream::testing::endpoint(&format!("http://127.0.0.1:{n}"), 1);
        Rc::new(Destination::new(&e, 0, vec![]).expect("destination"))
    }

    #[test]
    fn wanted_remembers_the_willing_until_finished_and_stays_bounded() {
        let w = Wanted::default();
        let (a, b) = (dest(1), dest(2));
        w.remember("id", vec![b.clone()]);
        let got = w.get("id").expect("remembered");
        assert!(got.len() == 1 && Rc::ptr_eq(&got[0], &b));
        // An upload reads it; `UploadFinished` takes it.
        assert!(w.get("id").is_some());
        assert!(w.forget("id").is_some());
        assert!(w.get("id").is_none() && w.forget("id").is_none());

        for i in 0..MAX_WANTED + 10 {
            w.remember(&format!("b{i}"), vec![a.clone()]);
        }
        assert_eq!(w.by_build_id.borrow().len(), MAX_WANTED);
        // The oldest went first; the newest is there.
        assert!(w.get("b0").is_none());
        assert!(w.get(&format!("b{}", MAX_WANTED + 9)).is_some());
    }
}
