//! One client connection: the HTTP/1.1 keep-alive loop.
//!
//! Owns: reading request heads (bounded by `max_request_head_bytes`, parsed in place by
//! `h1`), routing, reading bodies (Content-Length or chunked, bounded by
//! `max_request_body_bytes` and by the in-flight budget, reserved *before* the buffer grows),
//! `Expect: 100-continue`, pipelining (requests are answered in order; unread bytes stay in
//! the buffer for the next request), and the timeouts: `server_idle_timeout` between requests,
//! `server_read_timeout` over a whole request (head and body, like Go's `ReadTimeout`),
//! `server_write_timeout` per response. An error answered before its body was read closes the
//! connection, so unread body bytes are never parsed as a request.
//!
//! Does not own: what an upload becomes ([`super::ingest`]). Hot path: yes.

use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use monoio::net::TcpStream;

use super::ReceiverRt;
use super::{debuginfo, ingest, otlp, push};
use crate::budget::Reservation;
use crate::debuginfo::{self as debuginfo_codec, Call};
use crate::h1::{self, BodyFraming, Method, RequestHead};
use crate::metrics::{HttpRequest, RefuseReason};
use crate::tls::stream::Stream;
use crate::upload::Api;

/// Initial read buffer per connection; SDK heads fit, bodies get their own buffer.
const READ_BUFFER_BYTES: usize = 16 * 1024;
/// How long a connection waiting for its next request keeps a read buffer posted before it
/// counts as idle and gives the buffer back (see `Conn::await_request`).
const IDLE_BUFFER_RELEASE: Duration = Duration::from_millis(250);
/// Linux's `ECANCELED`, the error a cancelled read ends with (monoio reports it so on both
/// drivers).
const ECANCELED: i32 = 125;
/// Budget granted to a chunked body at a time while it is being read.
const CHUNKED_RESERVE_STEP: u64 = 256 * 1024;
/// After answering a debug-info upload whose body was not read to its end, how long (and how
/// many bytes) the connection keeps reading and discarding before it closes, so the client can
/// finish writing and read the answer instead of meeting a reset (Go's server waits the same
/// 500 ms, `rstAvoidanceDelay`, before closing such a connection).
const LINGER: Duration = Duration::from_millis(500);
const LINGER_MAX_BYTES: u64 = 64 * 1024 * 1024;

/// A response decided by the connection loop or the ingest handler.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub body: Bytes,
    pub content_type: Option<&'static str>,
    pub retry_after: bool,
}

impl Reply {
    pub fn empty(status: u16) -> Self {
        Reply {
            status,
            body: Bytes::new(),
            content_type: None,
            retry_after: false,
        }
    }

    /// Go's `http.Error`: status text plus newline, text/plain.
    pub fn text(status: u16, text: &str) -> Self {
        Reply {
            status,
            body: Bytes::from(format!("{text}\n")),
            content_type: Some("text/plain; charset=utf-8"),
            retry_after: false,
        }
    }

    pub fn overloaded() -> Self {
        Reply {
            retry_after: true,
            ..Reply::text(503, h1::reason_phrase(503))
        }
    }
}

fn route_name(api: Api) -> &'static str {
    match api {
        Api::Ingest => "ingest",
        Api::Push => "push_v1_pusherservice",
        Api::Otlp(_) => OTLP_ROUTE,
    }
}

/// The route label of `POST /v1development/profiles` (dskit's rule: the path made a label).
const OTLP_ROUTE: &str = "v1development_profiles";

/// The answer when the body is over `max_request_body_bytes`, before it is read.
fn too_large(api: Api, limit: u64) -> Reply {
    match api {
        Api::Ingest => Reply::text(413, h1::reason_phrase(413)),
        Api::Push => push_error(
            crate::push::connect::Code::ResourceExhausted,
            &format!("request body is larger than {limit} bytes"),
        ),
        Api::Otlp(format) => otlp::error(
            format,
            413,
            crate::otlp::StatusCode::ResourceExhausted,
            &format!("request body is larger than {limit} bytes"),
        ),
    }
}

/// The answer when the in-flight budget stays full.
fn overloaded(api: Api) -> Reply {
    match api {
        Api::Ingest => Reply::overloaded(),
        Api::Push => push_error(
            crate::push::connect::Code::Unavailable,
            "in-flight budget exhausted; retry later",
        ),
        Api::Otlp(format) => otlp::error(
            format,
            503,
            crate::otlp::StatusCode::Unavailable,
            "in-flight budget exhausted; retry later",
        ),
    }
}

fn push_error(code: crate::push::connect::Code, message: &str) -> Reply {
    Reply {
        status: code.http_status(),
        body: Bytes::from(crate::push::connect::error_body(code, message)),
        content_type: Some("application/json"),
        retry_after: code == crate::push::connect::Code::Unavailable,
    }
}

enum Route {
    Upload(Api),
    /// `ShouldInitiateUpload` or `UploadFinished`: a Connect unary body read whole.
    DebugInfoUnary(Call),
    /// `Upload/{gnu_build_id}`: a body streamed, never read whole here.
    DebugInfoUpload(String),
    MethodNotAllowed,
    NotFound,
}

/// dskit's route labels of the debug-info routes: the Connect service prefix Alloy mounts,
/// and the upload's path template.
const DEBUGINFO_ROUTE: &str = "debuginfo_v1alpha1_debuginfoservice";
const DEBUGINFO_UPLOAD_ROUTE: &str = "debuginfo_v1alpha1_debuginfoservice_upload_gnu_build_id";

fn route(method: Method, path: &[u8]) -> (Route, &'static str) {
    match path {
        b"/ingest" | b"/pyroscope/ingest" => {
            if method == Method::Post {
                (Route::Upload(Api::Ingest), "ingest")
            } else {
                (Route::MethodNotAllowed, "ingest")
            }
        }
        p if p == crate::push::PUSH_PATH.as_bytes() => {
            if method == Method::Post {
                (Route::Upload(Api::Push), "push_v1_pusherservice")
            } else {
                (Route::MethodNotAllowed, "push_v1_pusherservice")
            }
        }
        p if p.starts_with(debuginfo_codec::SERVICE_PREFIX.as_bytes()) => {
            match debuginfo_codec::route(p) {
                Some(_) if method != Method::Post => (Route::MethodNotAllowed, DEBUGINFO_ROUTE),
                Some(debuginfo_codec::Route::Unary(call)) => {
                    (Route::DebugInfoUnary(call), DEBUGINFO_ROUTE)
                }
                Some(debuginfo_codec::Route::Upload(id)) => {
                    (Route::DebugInfoUpload(id), DEBUGINFO_UPLOAD_ROUTE)
                }
                None => (Route::NotFound, "notfound"),
            }
        }
        p if p == crate::otlp::OTLP_PATH.as_bytes() => {
            if method == Method::Post {
                // The encoding is read from the head before the body (see `Conn::upload`).
                let api = Api::Otlp(crate::otlp::Format::XProtobuf);
                (Route::Upload(api), OTLP_ROUTE)
            } else {
                (Route::MethodNotAllowed, OTLP_ROUTE)
            }
        }
        _ => (Route::NotFound, "notfound"),
    }
}

/// The route label dskit gives a request (grafana/dskit middleware/route_injector.go): the
/// gorilla/mux path template Alloy registered, made a label value (`/ingest` → `ingest`,
/// the Push prefix `/push.v1.PusherService/` → `push_v1_pusherservice`); a request no route
/// matches, a method mismatch included, is `other`. `/pyroscope/ingest`, which Alloy does not
/// serve, counts as `ingest`.
fn dskit_route(route: &Route) -> &'static str {
    match route {
        Route::Upload(Api::Ingest) => "ingest",
        Route::Upload(Api::Push) => "push_v1_pusherservice",
        Route::DebugInfoUnary(_) => DEBUGINFO_ROUTE,
        Route::DebugInfoUpload(_) => DEBUGINFO_UPLOAD_ROUTE,
        Route::Upload(Api::Otlp(_)) => OTLP_ROUTE,
        Route::MethodNotAllowed | Route::NotFound => "other",
    }
}

/// The `method` label (Go's `r.Method`); an extension method is `OTHER`.
fn method_label(m: Method) -> &'static str {
    match m {
        Method::Get => "GET",
        Method::Head => "HEAD",
        Method::Post => "POST",
        Method::Put => "PUT",
        Method::Delete => "DELETE",
        Method::Options => "OPTIONS",
        Method::Patch => "PATCH",
        Method::Connect => "CONNECT",
        Method::Trace => "TRACE",
        Method::Other => "OTHER",
    }
}

/// dskit's `IsWSHandshakeRequest`: `Upgrade: websocket` and an `upgrade` token in
/// `Connection`.
fn is_ws_handshake(head: &RequestHead, buf: &[u8]) -> bool {
    head.header(buf, "upgrade")
        .is_some_and(|u| u.eq_ignore_ascii_case(b"websocket"))
        && head.header(buf, "connection").is_some_and(|c| {
            c.split(|&b| b == b',')
                .any(|t| t.trim_ascii().eq_ignore_ascii_case(b"upgrade"))
        })
}

/// How one read ended.
enum ReadOutcome {
    /// This many bytes arrived.
    Data(usize),
    /// End of stream or an error: the connection is done.
    Closed,
    TimedOut,
}

/// Why the keep-alive loop ends.
enum Next {
    KeepAlive,
    Close,
}

struct Conn<'a> {
    core: &'a super::Shared,
    rx: &'a ReceiverRt,
    stream: Stream,
    buf: BytesMut,
    /// The request being answered is HTTP/1.0 with `Connection: keep-alive`: an answer that
    /// keeps the connection open must say so (RFC 9112 §9.3), as Go's server does.
    http10_keep_alive: bool,
    /// The request being served, for the receiver's HTTP metrics (dskit's instrumentation
    /// starts once the head is read; a head that does not parse is never a request).
    request: Option<HttpRequest>,
    /// Body bytes read for the request being served.
    body_read: u64,
    /// This connection's place in the receiver's idle timeouts, from its first park.
    idle_slot: Option<super::idle::Slot>,
}

impl Drop for Conn<'_> {
    fn drop(&mut self) {
        self.core.touch();
        if let Some(slot) = self.idle_slot {
            self.rx.idle.release(slot);
        }
    }
}

/// Serves one connection until it closes, times out, errs, or the core shuts down; then gives
/// its `conn_limit` slot back.
///
/// This future is the connection's task, so what it holds across the idle wait is what every
/// idle keep-alive connection costs: the connection ([`Conn`]) and the readiness wait. Reading
/// a request head, the request itself and the TLS handshake run in their own allocations.
///
/// The stream comes boxed (a pointer in the task) and [`Conn::open`] unboxes it, freeing the
/// box, so the connection's task does not keep an emptied box for its whole life.
// An async block, not an async fn: an async fn would hold each argument twice for the task's life (24 bytes more per idle
// connection, `-Zprint-type-sizes`), which would put the task in a larger allocation class.
#[allow(clippy::manual_async_fn)]
pub fn serve(
    core: Rc<super::Shared>,
    rx: Rc<ReceiverRt>,
    stream: Box<TcpStream>,
) -> impl std::future::Future<Output = ()> {
    async move {
        let _open = Open(&rx);
        // Built in its own allocation, so the task holds the connection once (not also the
        // handshake's state or a moved-from stream).
        let Some(mut c) = Box::pin(Conn::open(&core, &rx, stream)).await else {
            return;
        };
        // Go's server starts the first request's `ReadTimeout` when it starts reading, right
        // after accept: a connection that never sends a byte is cut off then, not at the idle
        // timeout (which only applies between requests; net/http `conn.serve` / `readRequest`).
        let mut first = Some(Instant::now() + rx.config.http.server_read_timeout);
        loop {
            core.touch();
            match Box::pin(c.await_request(first)).await {
                Wait::Request => {}
                Wait::Close => return,
                Wait::Idle(deadline) => {
                    // Parked: the receiver's idle timeouts keep the deadline and end the wait
                    // at shutdown or retirement.
                    let slot = c.idle_slot();
                    // Only whether it is readable is kept across the next await.
                    let readable = matches!(
                        rx.idle.wait(slot, deadline, c.stream.readable()).await,
                        Some(Ok(()))
                    );
                    if !readable || !Box::pin(c.read_after_park()).await {
                        return;
                    }
                }
            }
            // The request's state machine (head parsing, delivery, the answer) lives in its
            // own allocation while a request is served, so an idle connection's task holds
            // only the small waiting state above.
            match Box::pin(c.one_request(first.take())).await {
                Next::KeepAlive if !rx.closing(&core) => {}
                _ => return,
            }
        }
    }
}

/// An open connection of a receiver: closing it frees its `conn_limit` slot and wakes an
/// accept loop waiting for one.
struct Open<'a>(&'a ReceiverRt);

impl Drop for Open<'_> {
    fn drop(&mut self) {
        let rx = self.0;
        rx.slots.release();
        rx.active.set(rx.active.get() - 1);
        rx.metrics.set_connections(rx.active.get());
        rx.conn_closed.notify_all();
    }
}

/// How the wait for the next request ended.
enum Wait {
    /// Bytes of a request are in the buffer.
    Request,
    /// Closed, timed out or shutting down.
    Close,
    /// Nothing arrived while a read was posted: wait on readiness alone until this deadline.
    Idle(Instant),
}

impl<'a> Conn<'a> {
    /// The TLS handshake where the receiver serves HTTPS, then the connection's state.
    /// `stream` arrives boxed and is unboxed here, so the box is freed when the connection is
    /// open instead of staying with the connection's task.
    async fn open(
        core: &'a super::Shared,
        rx: &'a ReceiverRt,
        stream: Box<TcpStream>,
    ) -> Option<Self> {
        let stream = *stream;
        let _ = stream.set_nodelay(true);
        let stream = super::tls::wrap(rx, stream).await?;
        Some(Conn {
            core,
            rx,
            http10_keep_alive: false,
            request: None,
            body_read: 0,
            idle_slot: None,
            stream,
            buf: BytesMut::with_capacity(READ_BUFFER_BYTES),
        })
    }

    async fn read(&mut self, deadline: Instant) -> Option<usize> {
        match self.read_outcome(deadline).await {
            ReadOutcome::Data(n) => Some(n),
            ReadOutcome::Closed | ReadOutcome::TimedOut => None,
        }
    }

    /// Waits for the first byte of the next request: until `first` (the first request's read
    /// deadline) or the idle timeout, or shutdown.
    ///
    /// A busy connection's next request usually arrives within [`IDLE_BUFFER_RELEASE`], into the
    /// read buffer already posted. After that the connection counts as idle: on plain TCP it
    /// gives its read buffer back and answers [`Wait::Idle`], and `serve` parks it on readiness
    /// alone (an io_uring `PollAdd`, or epoll; [`super::idle::Parked`]), so thousands of idle
    /// keep-alive connections hold no buffer memory; [`Conn::read_after_park`] takes a fresh
    /// buffer when bytes arrive. TLS connections keep theirs (rustls may hold decrypted bytes
    /// that no readiness event announces).
    async fn await_request(&mut self, first: Option<Instant>) -> Wait {
        if !self.buf.is_empty() {
            return Wait::Request;
        }
        let idle =
            first.unwrap_or_else(|| Instant::now() + self.rx.config.http.server_idle_timeout);
        let park_at = (Instant::now() + IDLE_BUFFER_RELEASE).min(idle);
        let can_park = self.stream.is_plain() && park_at < idle;
        let first_wait = if can_park { park_at } else { idle };
        match self.read_or_stop(first_wait, can_park).await {
            ReadOutcome::Data(_) => Wait::Request,
            ReadOutcome::TimedOut if can_park && Instant::now() < idle => {
                // Idle: hold no buffer while waiting.
                self.buf = BytesMut::new();
                Wait::Idle(idle)
            }
            ReadOutcome::Closed | ReadOutcome::TimedOut => Wait::Close,
        }
    }

    /// After the parked wait saw the socket readable: reads into a fresh buffer (whether a
    /// request starts, or the stream ended).
    async fn read_after_park(&mut self) -> bool {
        self.buf = BytesMut::with_capacity(READ_BUFFER_BYTES);
        let deadline = Instant::now() + self.rx.config.http.server_read_timeout;
        matches!(
            self.read_or_stop(deadline, false).await,
            ReadOutcome::Data(_)
        )
    }

    /// This connection's place in the receiver's idle timeouts (taken at its first park).
    fn idle_slot(&mut self) -> super::idle::Slot {
        *self.idle_slot.get_or_insert_with(|| self.rx.idle.slot())
    }

    /// A read until `deadline` ([`Conn::read_until_park`] when `park`, else
    /// [`Conn::read_outcome`]), ended early (as `Closed`) by shutdown or by the retirement of the
    /// receiver (a reload that removed or rebound it).
    async fn read_or_stop(&mut self, deadline: Instant, park: bool) -> ReadOutcome {
        let shutdown = self.core.shutdown.clone();
        let rx = self.rx;
        monoio::select! {
            r = self.read_for(deadline, park) => r,
            _ = shutdown.wait() => ReadOutcome::Closed,
            _ = rx.retired.wait() => ReadOutcome::Closed,
        }
    }

    async fn read_for(&mut self, deadline: Instant, park: bool) -> ReadOutcome {
        if park {
            self.read_until_park(deadline).await
        } else {
            self.read_outcome(deadline).await
        }
    }

    /// A read with the buffer posted until `park_at`; then the read is cancelled and awaited to
    /// its end, so bytes the kernel delivered meanwhile are kept (`TimedOut` only when the
    /// cancellation won). Plain TCP (see [`Stream::cancelable_read_more`]).
    async fn read_until_park(&mut self, park_at: Instant) -> ReadOutcome {
        let now = Instant::now();
        if now >= park_at {
            return ReadOutcome::TimedOut;
        }
        let canceller = monoio::io::Canceller::new();
        let buf = std::mem::take(&mut self.buf);
        let read = self
            .stream
            .cancelable_read_more(buf, READ_BUFFER_BYTES, canceller.handle());
        let mut read = std::pin::pin!(read);
        let (result, buf) = match monoio::time::timeout(park_at - now, &mut read).await {
            Ok(done) => done,
            Err(_) => {
                let _ = canceller.cancel();
                read.await
            }
        };
        self.buf = buf;
        match result {
            Ok(0) => ReadOutcome::Closed,
            Ok(n) => ReadOutcome::Data(n),
            Err(e) if e.raw_os_error() == Some(ECANCELED) => ReadOutcome::TimedOut,
            Err(_) => ReadOutcome::Closed,
        }
    }

    /// One read into the buffer, telling a timeout apart from the end of the stream.
    async fn read_outcome(&mut self, deadline: Instant) -> ReadOutcome {
        let now = Instant::now();
        if now >= deadline {
            return ReadOutcome::TimedOut;
        }
        let buf = std::mem::take(&mut self.buf);
        match monoio::time::timeout(
            deadline - now,
            self.stream.read_more(buf, READ_BUFFER_BYTES),
        )
        .await
        {
            Ok((Ok(n), buf)) => {
                self.buf = buf;
                if n > 0 {
                    ReadOutcome::Data(n)
                } else {
                    ReadOutcome::Closed
                }
            }
            Ok((Err(_), buf)) => {
                self.buf = buf;
                ReadOutcome::Closed
            }
            // The cancelled read took its buffer with it; the next read allocates one.
            Err(_) => ReadOutcome::TimedOut,
        }
    }

    async fn respond(&mut self, reply: &Reply, close: bool, route: &'static str) -> Next {
        let mut headers: Vec<(&str, &[u8])> = Vec::with_capacity(3);
        if let Some(ct) = reply.content_type {
            headers.push(("Content-Type", ct.as_bytes()));
            headers.push(("X-Content-Type-Options", b"nosniff"));
        }
        if reply.retry_after {
            headers.push(("Retry-After", b"1"));
        }
        if self.http10_keep_alive && !close {
            headers.push(("Connection", b"keep-alive"));
        }
        let mut out = BytesMut::with_capacity(128 + reply.body.len());
        h1::encode_response(&mut out, reply.status, &headers, &reply.body, close);
        self.rx.metrics.record_request(route, reply.status);
        if let Some(r) = self.request.take() {
            r.finish(reply.status, self.body_read, reply.body.len() as u64);
        }
        self.write_answer(out, close).await
    }

    /// Writes an encoded answer within `server_write_timeout`: the connection stays open when
    /// it went out and `close` is not set.
    async fn write_answer(&mut self, answer: BytesMut, close: bool) -> Next {
        let write = self.stream.write_all(answer);
        match monoio::time::timeout(self.rx.config.http.server_write_timeout, write).await {
            Ok((Ok(_), _)) if !close => Next::KeepAlive,
            _ => Next::Close,
        }
    }

    /// Serves the request whose first bytes are in the buffer.
    async fn one_request(&mut self, first: Option<Instant>) -> Next {
        // `server_read_timeout` bounds the whole request: from accept for the first request,
        // from its first byte for the later ones.
        let deadline =
            first.unwrap_or_else(|| Instant::now() + self.rx.config.http.server_read_timeout);
        let mut scanned = 0;
        self.http10_keep_alive = false;
        let head = loop {
            if h1::find_head_end(&self.buf, scanned).is_some() {
                match h1::parse_request(&self.buf, &self.rx.limits) {
                    Ok(Some(head)) => {
                        self.http10_keep_alive =
                            head.version == h1::Version::Http10 && head.keep_alive;
                        break head;
                    }
                    // Leading empty lines (RFC 9112 §2.2) end a "head" that is not one yet.
                    Ok(None) => {}
                    Err(e) => {
                        let reply = Reply::text(e.status(), &e.to_string());
                        return self.respond(&reply, true, "unknown").await;
                    }
                }
            }
            scanned = self.buf.len();
            if self.buf.len() > self.rx.limits.max_head_bytes {
                let e = h1::RequestError::HeadTooLarge {
                    limit: self.rx.limits.max_head_bytes,
                };
                let reply = Reply::text(e.status(), &e.to_string());
                return self.respond(&reply, true, "unknown").await;
            }
            if self.read(deadline).await.is_none() {
                return Next::Close;
            }
        };
        let head_bytes = self.buf.split_to(head.head_len).freeze();
        let (route, route_name) = route(head.method, &head_bytes[head.path.clone()]);
        self.body_read = 0;
        self.request = Some(self.rx.metrics.begin_request(
            method_label(head.method),
            dskit_route(&route),
            is_ws_handshake(&head, &head_bytes),
        ));
        let has_body = !matches!(head.body, BodyFraming::Empty);
        if let Some(check) = &self.rx.live().client_auth
            && !check.allows(head.header(&head_bytes, "authorization"))
        {
            // The body is not read: the connection closes after the 401 when there is one.
            let close = has_body || !head.keep_alive;
            self.rx.metrics.record_request(route_name, 401);
            let answer = check.unauthorized(close);
            if let Some(r) = self.request.take() {
                r.finish(401, 0, check.unauthorized_body_len());
            }
            return self.write_answer(answer, close).await;
        }
        let next = match route {
            Route::NotFound => {
                let reply = Reply::text(404, "404 page not found");
                self.respond(&reply, has_body || !head.keep_alive, route_name)
                    .await
            }
            Route::MethodNotAllowed => {
                self.respond(&Reply::empty(405), has_body || !head.keep_alive, route_name)
                    .await
            }
            Route::Upload(api) => self.upload(api, None, head, head_bytes, deadline).await,
            // Connect unary: the body is read (and its errors answered) as a Push's.
            Route::DebugInfoUnary(call) => {
                self.upload(Api::Push, Some(call), head, head_bytes, deadline)
                    .await
            }
            Route::DebugInfoUpload(build_id) => {
                self.debuginfo_upload(head, head_bytes, &build_id).await
            }
        };
        // A request abandoned without an answer leaves the in-flight gauge here.
        self.request = None;
        next
    }

    /// Reads the body of an upload (or of a debug-info unary `call`, whose errors are a
    /// Push's) and hands it to its handler.
    async fn upload(
        &mut self,
        api: Api,
        call: Option<Call>,
        head: RequestHead,
        head_bytes: Bytes,
        deadline: Instant,
    ) -> Next {
        let http = &self.rx.config.http;
        let route = if call.is_some() {
            DEBUGINFO_ROUTE
        } else {
            route_name(api)
        };
        // OTLP: an unsupported `Content-Type` is refused before the body is read (415, as
        // Pyroscope's handler), and the encoding shapes every later answer.
        let api = match api {
            Api::Otlp(_) => {
                let ct = head.header(&head_bytes, "content-type").unwrap_or(b"");
                match crate::otlp::Format::classify(ct) {
                    Some(format) => Api::Otlp(format),
                    None => {
                        let reply = otlp::unsupported_content_type(ct);
                        let close = !matches!(head.body, BodyFraming::Empty) || !head.keep_alive;
                        return self.respond(&reply, close, route).await;
                    }
                }
            }
            api => api,
        };
        let wait_until = Instant::now() + self.core.queue_wait_timeout;
        let keep_alive = head.keep_alive;
        let (body, reservation) = match head.body {
            BodyFraming::Empty => (Bytes::new(), None),
            BodyFraming::Length(n) if n > http.max_body_bytes => {
                let reply = too_large(api, http.max_body_bytes);
                return self.respond(&reply, true, route).await;
            }
            BodyFraming::Length(n) => {
                let Some(res) = self.core.budget.reserve_until(n, wait_until).await else {
                    self.rx.metrics.record_refused(RefuseReason::Budget);
                    return self.respond(&overloaded(api), true, route).await;
                };
                if head.expect_continue && self.buf.is_empty() && !self.write_continue().await {
                    return Next::Close;
                }
                match self.read_length_body(n as usize, deadline).await {
                    Some(body) => (body, Some(res)),
                    None => return Next::Close,
                }
            }
            BodyFraming::Chunked => {
                let Some(res) = self
                    .core
                    .budget
                    .reserve_until(CHUNKED_RESERVE_STEP.min(http.max_body_bytes), wait_until)
                    .await
                else {
                    self.rx.metrics.record_refused(RefuseReason::Budget);
                    return self.respond(&overloaded(api), true, route).await;
                };
                if head.expect_continue && self.buf.is_empty() && !self.write_continue().await {
                    return Next::Close;
                }
                match self
                    .read_chunked_body(api, &res, deadline, wait_until)
                    .await
                {
                    Ok(body) => (body, Some(res)),
                    Err(Some(reply)) => return self.respond(&reply, true, route).await,
                    Err(None) => return Next::Close,
                }
            }
        };
        self.body_read = body.len() as u64;
        let reply = match (call, api) {
            (Some(call), _) => {
                // The message stays charged until the call is answered.
                let _held = reservation;
                debuginfo::unary(self.rx, call, &head, &head_bytes, body).await
            }
            (None, Api::Ingest) => {
                ingest::handle(self.rx, &head, &head_bytes, body, reservation, wait_until).await
            }
            (None, Api::Push) => {
                push::handle(self.rx, &head, &head_bytes, body, reservation, wait_until).await
            }
            (None, Api::Otlp(format)) => {
                otlp::handle(
                    self.rx,
                    format,
                    &head,
                    &head_bytes,
                    body,
                    reservation,
                    wait_until,
                )
                .await
            }
        };
        let close = !keep_alive || self.rx.closing(self.core);
        self.respond(&reply, close, route).await
    }

    /// `Upload/{gnu_build_id}`: the body is streamed to the destination as it arrives, under
    /// `debug_info_upload_timeout` instead of `server_read_timeout` (Alloy extends the
    /// connection's deadlines the same way). A body not read to its end closes the connection.
    async fn debuginfo_upload(
        &mut self,
        head: RequestHead,
        head_bytes: Bytes,
        build_id: &str,
    ) -> Next {
        let route = DEBUGINFO_UPLOAD_ROUTE;
        let limit = self.rx.live().debug_info_max_upload_bytes;
        let keep_alive = head.keep_alive;
        if let BodyFraming::Length(n) = head.body
            && n > limit
        {
            self.rx.metrics.record_debuginfo(Call::Upload, false);
            let reply = Reply::text(413, &format!("request body is larger than {limit} bytes"));
            return self.respond(&reply, true, route).await;
        }
        if head.expect_continue
            && self.buf.is_empty()
            && !matches!(head.body, BodyFraming::Empty)
            && !self.write_continue().await
        {
            return Next::Close;
        }
        let (rx, core) = (self.rx, self.core);
        let body = match super::stream_body::StreamBody::new(
            &mut self.stream,
            &mut self.buf,
            head.body,
            limit,
        ) {
            Ok(b) => b,
            Err(e) => {
                let reply = Reply::text(e.status(), &e.to_string());
                return self.respond(&reply, true, route).await;
            }
        };
        let done = debuginfo::upload(rx, core, &head, &head_bytes, build_id, body).await;
        self.body_read = done.body_read;
        let close = !done.body_done || !keep_alive || self.rx.closing(self.core);
        let next = self.respond(&done.reply, close, route).await;
        if !done.body_done {
            self.linger().await;
        }
        next
    }

    /// Reads and discards what the client still sends, for at most [`LINGER`] and
    /// [`LINGER_MAX_BYTES`], before the connection closes.
    async fn linger(&mut self) {
        let until = Instant::now() + LINGER;
        let mut drained = 0u64;
        while drained < LINGER_MAX_BYTES {
            self.buf.clear();
            match self.read_outcome(until).await {
                ReadOutcome::Data(n) => drained += n as u64,
                ReadOutcome::Closed | ReadOutcome::TimedOut => return,
            }
        }
    }

    async fn write_continue(&mut self) -> bool {
        let write = self.stream.write_all(h1::CONTINUE_100);
        matches!(
            monoio::time::timeout(self.rx.config.http.server_write_timeout, write).await,
            Ok((Ok(_), _))
        )
    }

    /// Reads exactly `n` body bytes into one buffer: the bytes already buffered are taken
    /// without copying when they hold the whole body, else the body gets its own allocation of
    /// exactly `n` bytes that the socket reads land in directly.
    async fn read_length_body(&mut self, n: usize, deadline: Instant) -> Option<Bytes> {
        if self.buf.len() >= n {
            return Some(self.buf.split_to(n).freeze());
        }
        let mut body = BytesMut::with_capacity(n);
        body.extend_from_slice(&self.buf);
        self.buf.clear();
        while body.len() < n {
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            let spare = n - body.len();
            let (res, b) = match monoio::time::timeout(
                deadline - now,
                read_exact_room(&mut self.stream, body, spare),
            )
            .await
            {
                Ok(r) => r,
                Err(_) => return None,
            };
            body = b;
            match res {
                Ok(0) | Err(_) => return None,
                Ok(_) => {}
            }
        }
        Some(body.freeze())
    }

    /// Decodes a chunked body, growing the budget reservation before the buffer grows.
    async fn read_chunked_body(
        &mut self,
        api: Api,
        res: &Reservation,
        deadline: Instant,
        wait_until: Instant,
    ) -> Result<Bytes, Option<Reply>> {
        let max = self.rx.config.http.max_body_bytes;
        let mut decoder = h1::ChunkedDecoder::new(max);
        let mut body = BytesMut::new();
        loop {
            // At most everything buffered can become body bytes in this step. The buffer is
            // grown here, not by the decoder's appends, so that what is charged is its
            // capacity (what stays allocated), reserved before it grows.
            let worst = body.len() + self.buf.len();
            if worst > body.capacity() {
                let doubled = (body.capacity() * 2).min(usize::try_from(max).unwrap_or(usize::MAX));
                let capacity = worst.max(doubled);
                if capacity as u64 > res.bytes() {
                    // Reserved ahead in steps, so a large body takes few budget updates.
                    let more = (capacity as u64 - res.bytes()).max(CHUNKED_RESERVE_STEP.min(max));
                    if !res.grow_until(more, wait_until).await {
                        self.rx.metrics.record_refused(RefuseReason::Budget);
                        return Err(Some(overloaded(api)));
                    }
                }
                // Exactly `capacity`: `BytesMut::reserve` may allocate up to twice the current
                // capacity, more than was charged.
                let mut grown = BytesMut::with_capacity(capacity);
                grown.extend_from_slice(&body);
                body = grown;
            }
            // Over the limit a Push (OTLP export) gets the Connect (OTLP) error a Content-Length
            // one gets; other
            // framing errors are HTTP-level.
            let progress = decoder
                .decode(&self.buf, Some(&mut body))
                .map_err(|e| match e {
                    h1::ChunkedError::BodyTooLarge { limit } if api != Api::Ingest => {
                        Some(too_large(api, limit))
                    }
                    e => Some(Reply::text(e.status(), &e.to_string())),
                })?;
            self.buf.advance(progress.consumed);
            if progress.done {
                // What stays charged: the allocation, not just the bytes in it.
                res.shrink_to(body.capacity() as u64);
                return Ok(body.freeze());
            }
            if self.read(deadline).await.is_none() {
                return Err(None);
            }
        }
    }
}

/// Reads into the spare room of `body` (at most `room` bytes).
async fn read_exact_room(
    stream: &mut Stream,
    body: BytesMut,
    room: usize,
) -> (std::io::Result<usize>, BytesMut) {
    stream.read_room(body, room).await
}
