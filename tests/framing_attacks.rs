//! End-to-end: the request-framing and parser attack table (RFC 9112), for both the `/ingest`
//! route and the Connect Push route, under both drivers, seen from a raw socket.
//!
//! Every case is a script of writes and expected responses on one fresh connection, then one of
//! two endings: the connection is still in sync (a probe upload on the same connection gets
//! exactly one 200 and nothing else), or it is closed (the last response carried
//! `Connection: close`, nothing more arrives, and a valid upload pipelined behind the bad request
//! was never processed). After each case a barrier upload on a fresh connection is acknowledged
//! (acknowledge = delivered), then the stand-in must hold exactly what the case expects: each
//! accepted upload once, byte-identical, plus the probes, and nothing from a refused request.
//!
//! References, per case name: RFC 9112 (HTTP/1.1), RFC 9110 (semantics), RFC 6585 (431), and
//! Go's net/http server (what Alloy runs; `net/http/server.go`, `transfer.go`,
//! `internal/chunked.go`, `net/textproto`). Where the RFC leaves a choice (MAY reject / MAY
//! accept) the case asserts pyrogate's documented choice and says what Go does.
//!
//! Cases whose RFC outcome pyrogate does not produce yet sit in their own tests below the table
//! (`absolute_form_targets_are_served`, `http10_keep_alive_is_acknowledged_or_closed`): they
//! fail until `src/server/conn.rs` handles them.
//!
//! One gateway per test (one core, small limits); the table is run whole and every failing case
//! is reported together.

mod support;

use std::time::Duration;

use support::client::{Client, Response};
use support::config;
use support::push::{PushRequest, Sample, Series};
use support::{Driver, Gateway, MockPyroscope, Recorded, both_drivers};

/// Limits configured for the table (pyrogate extensions in the `http` block).
const HEAD_LIMIT: usize = 4096;
const HEADER_LIMIT: usize = 24;
const BODY_LIMIT: usize = 32 * 1024;
/// pyrogate's fixed bounds on chunk extensions and trailers (`src/h1/chunked.rs`).
const CHUNK_EXTENSIONS_LIMIT: usize = 16 * 1024;
const TRAILERS_LIMIT: usize = 16 * 1024;
/// Bound on each response read: far above what any case needs, so a hang fails the case.
const READ_TIMEOUT: Duration = Duration::from_secs(10);

fn gateway(mock: &MockPyroscope, driver: Driver) -> Gateway {
    let http = format!(
        "    max_request_head_bytes = {HEAD_LIMIT}\n    max_request_headers = {HEADER_LIMIT}\n    max_request_body_bytes = {BODY_LIMIT}\n    server_read_timeout = \"5s\""
    );
    Gateway::start(&config::single(&mock.url(), "", &http, ""), driver, 1)
}

// ---------------------------------------------------------------------------------------------
// Routes and payloads

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    Ingest,
    Push,
}

impl Route {
    fn target(self) -> &'static str {
        match self {
            // `format=pprof`: the stand-in does not parse the body (folded text it would).
            Route::Ingest => {
                "/ingest?name=framing.cpu%7Benv%3Dtest%7D&format=pprof&from=1700000000&until=1700000010"
            }
            Route::Push => "/push.v1.PusherService/Push",
        }
    }

    /// Header lines (with CRLF) the route needs besides Host and framing.
    fn content_type_line(self) -> &'static str {
        match self {
            Route::Ingest => "",
            Route::Push => "Content-Type: application/proto\r\n",
        }
    }

    /// The status for a body over `max_request_body_bytes`: 413 (RFC 9110 §15.5.14) on
    /// `/ingest`; the Connect error `resource_exhausted` (HTTP 429) on Push, as connect-go.
    fn too_large(self) -> u16 {
        match self {
            Route::Ingest => 413,
            Route::Push => 429,
        }
    }

    /// What the stand-in saw of an upload, to compare with a [`Payload::mark`].
    fn mark_of(self, r: &Recorded) -> Vec<u8> {
        match self {
            Route::Ingest => r.body.clone(),
            Route::Push => r
                .push
                .as_ref()
                .and_then(|p| p.series.first())
                .and_then(|s| s.samples.first())
                .map(|s| s.raw_profile.clone())
                .unwrap_or_else(|| r.body.clone()),
        }
    }
}

/// One valid upload body for a route, and the bytes the stand-in identifies it by.
#[derive(Debug, Clone)]
struct Payload {
    body: Vec<u8>,
    /// `/ingest`: the body (forwarded as is); Push: the sample's `raw_profile`.
    mark: Vec<u8>,
}

/// Hands out distinct payloads for one route.
struct Payloads {
    route: Route,
    next: u64,
}

impl Payloads {
    fn new(route: Route, first: u64) -> Payloads {
        Payloads { route, next: first }
    }

    fn next(&mut self) -> Payload {
        self.next += 1;
        let seed = self.next;
        self.with_content(
            format!("main;framing_{seed};work_{seed} 7\nmain;framing_{seed};idle 3\n").as_bytes(),
        )
    }

    /// A payload whose forwarded bytes start with `content` (then a unique suffix).
    fn with_content(&mut self, content: &[u8]) -> Payload {
        self.next += 1;
        let mut mark = content.to_vec();
        mark.extend_from_slice(format!("framing-seed {}\n", self.next).as_bytes());
        match self.route {
            Route::Ingest => Payload {
                body: mark.clone(),
                mark,
            },
            Route::Push => {
                let request = PushRequest::new(vec![Series::new(
                    &[("__name__", "process_cpu"), ("service_name", "framing")],
                    vec![Sample::new(
                        mark.clone(),
                        &format!("00000000-0000-4000-8000-{:012x}", self.next),
                    )],
                )]);
                Payload {
                    body: request.encode(),
                    mark,
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Request building

/// A request as lines: the request line and each field line carry their own terminators, so a
/// case can put a bare LF or CR anywhere.
#[derive(Debug, Clone)]
struct Req {
    line: Vec<u8>,
    fields: Vec<Vec<u8>>,
    blank: Vec<u8>,
    body: Vec<u8>,
}

impl Req {
    /// `POST <target> HTTP/1.1`, Host and the route's Content-Type; no framing, no body.
    fn post(route: Route) -> Req {
        Req::with_line(
            route,
            format!("POST {} HTTP/1.1\r\n", route.target()).as_bytes(),
        )
    }

    /// `POST <target> HTTP/1.0` with the route's Content-Type, no Host.
    fn post10(route: Route) -> Req {
        let mut req = Req::post(route);
        req.line = format!("POST {} HTTP/1.0\r\n", route.target()).into_bytes();
        req.fields.retain(|f| !f.starts_with(b"Host:"));
        req
    }

    fn with_line(route: Route, line: &[u8]) -> Req {
        let mut fields = vec![b"Host: pyrogate.test\r\n".to_vec()];
        if !route.content_type_line().is_empty() {
            fields.push(route.content_type_line().as_bytes().to_vec());
        }
        Req {
            line: line.to_vec(),
            fields,
            blank: b"\r\n".to_vec(),
            body: Vec::new(),
        }
    }

    /// Replaces the request line (terminator included).
    fn line(mut self, line: &[u8]) -> Req {
        self.line = line.to_vec();
        self
    }

    /// Adds a field line; CRLF is appended.
    fn field(mut self, line: impl AsRef<[u8]>) -> Req {
        let mut f = line.as_ref().to_vec();
        f.extend_from_slice(b"\r\n");
        self.fields.push(f);
        self
    }

    /// Adds bytes as one field line, terminator included (or not).
    fn raw_field(mut self, bytes: impl AsRef<[u8]>) -> Req {
        self.fields.push(bytes.as_ref().to_vec());
        self
    }

    /// Removes every field line starting with `prefix`.
    fn without(mut self, prefix: &str) -> Req {
        self.fields.retain(|f| !f.starts_with(prefix.as_bytes()));
        self
    }

    fn blank(mut self, blank: &[u8]) -> Req {
        self.blank = blank.to_vec();
        self
    }

    fn cl(self, n: usize) -> Req {
        self.field(format!("Content-Length: {n}"))
    }

    fn te(self, value: &str) -> Req {
        self.field(format!("Transfer-Encoding: {value}"))
    }

    fn body(mut self, body: impl AsRef<[u8]>) -> Req {
        self.body = body.as_ref().to_vec();
        self
    }

    fn head_len(&self) -> usize {
        self.line.len() + self.fields.iter().map(Vec::len).sum::<usize>() + self.blank.len()
    }

    fn bytes(&self) -> Vec<u8> {
        let mut out = self.line.clone();
        for f in &self.fields {
            out.extend_from_slice(f);
        }
        out.extend_from_slice(&self.blank);
        out.extend_from_slice(&self.body);
        out
    }

    /// The head alone (no body).
    fn head(&self) -> Vec<u8> {
        let mut out = self.bytes();
        out.truncate(self.head_len());
        out
    }
}

/// The payload as a plain Content-Length request.
fn cl_request(route: Route, p: &Payload) -> Req {
    Req::post(route).cl(p.body.len()).body(&p.body)
}

/// `Transfer-Encoding: chunked` with the payload as one chunk, then the last chunk.
fn chunked_request(route: Route, p: &Payload) -> Req {
    Req::post(route)
        .te("chunked")
        .body(one_chunk(&p.body, b"", b""))
}

/// `<size><ext>CRLF<data>CRLF0CRLF<trailers>CRLF`.
fn one_chunk(data: &[u8], ext: &[u8], trailers: &[u8]) -> Vec<u8> {
    let mut out = format!("{:x}", data.len()).into_bytes();
    out.extend_from_slice(ext);
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n0\r\n");
    out.extend_from_slice(trailers);
    out.extend_from_slice(b"\r\n");
    out
}

/// `data` as chunks of `size` bytes each (RFC 9112 §7.1).
fn chunks_of(data: &[u8], size: usize) -> Vec<u8> {
    support::client::chunked_body(data, size)
}

/// Builds a chunked body around a payload.
type BodyOf = Box<dyn Fn(&Payload) -> Vec<u8>>;

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

// ---------------------------------------------------------------------------------------------
// Cases

#[derive(Debug, Clone)]
enum Step {
    /// Writes bytes (a failed write is not an error: the gateway may have closed already).
    Send(Vec<u8>),
    /// Lets the gateway act on what it has (e.g. decide about `100 Continue`).
    Pause(Duration),
    /// Exactly one response with this status; a stray `100 Continue` fails the case.
    Status(u16),
    /// A final response with this status, after at most one interim `100 Continue` (which
    /// RFC 9110 §10.1.1 lets the server send or omit when the body has already arrived).
    Final(u16),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum After {
    /// A probe upload on the same connection gets exactly one 200.
    InSync,
    /// The last response said `Connection: close` (if there was one) and the connection
    /// closes with nothing more; the follower behind the request is never processed.
    Closed,
}

#[derive(Debug, Clone)]
struct Case {
    name: String,
    steps: Vec<Step>,
    /// Marks of the uploads that must reach the stand-in exactly once, in any order.
    delivered: Vec<Vec<u8>>,
    after: After,
}

impl Case {
    /// The request is served: 200, delivered once, connection in sync.
    fn served(name: impl Into<String>, bytes: Vec<u8>, p: &Payload) -> Case {
        Case {
            name: name.into(),
            steps: vec![Step::Send(bytes), Step::Status(200)],
            delivered: vec![p.mark.clone()],
            after: After::InSync,
        }
    }

    /// The request is refused with `status` and the connection closed; nothing forwarded.
    fn refused(name: impl Into<String>, bytes: Vec<u8>, status: u16) -> Case {
        Case {
            name: name.into(),
            steps: vec![Step::Send(bytes), Step::Status(status)],
            delivered: Vec::new(),
            after: After::Closed,
        }
    }

    fn custom(
        name: impl Into<String>,
        steps: Vec<Step>,
        delivered: Vec<Vec<u8>>,
        after: After,
    ) -> Case {
        Case {
            name: name.into(),
            steps,
            delivered,
            after,
        }
    }
}

/// The table for one route. `ps` hands out distinct payloads.
fn table(route: Route, ps: &mut Payloads) -> Vec<Case> {
    let mut cases = Vec::new();
    let r = route;

    // --- Baselines -----------------------------------------------------------------------
    let p = ps.next();
    cases.push(Case::served(
        "baseline Content-Length (RFC 9112 §6.3 item 6)",
        cl_request(r, &p).bytes(),
        &p,
    ));
    let p = ps.next();
    cases.push(Case::served(
        "baseline chunked (RFC 9112 §7.1)",
        chunked_request(r, &p).bytes(),
        &p,
    ));
    let p = ps.next();
    cases.push(Case::served(
        "many one-byte chunks (RFC 9112 §7.1)",
        Req::post(r)
            .te("chunked")
            .body(chunks_of(&p.body, 1))
            .bytes(),
        &p,
    ));
    if r == Route::Ingest {
        let p = ps.next();
        let line = format!(
            "POST {} HTTP/1.1\r\n",
            r.target().replacen("/ingest", "/pyroscope/ingest", 1)
        );
        cases.push(Case::served(
            "route alias /pyroscope/ingest",
            cl_request(r, &p).line(line.as_bytes()).bytes(),
            &p,
        ));
    }

    // --- Content-Length (RFC 9112 §6.3 item 5, RFC 9110 §8.6) ----------------------------
    let p = ps.next();
    let n = p.body.len();
    cases.push(Case::refused(
        "Content-Length then Transfer-Encoding: 400 (RFC 9112 §6.1 MAY reject, §6.3 item 3; Go: TE wins)",
        Req::post(r).cl(n).te("chunked").body(one_chunk(&p.body, b"", b"")).bytes(),
        400,
    ));
    cases.push(Case::refused(
        "Transfer-Encoding then Content-Length: 400 (RFC 9112 §6.1, §6.3 item 3)",
        Req::post(r)
            .te("chunked")
            .cl(n)
            .body(one_chunk(&p.body, b"", b""))
            .bytes(),
        400,
    ));
    cases.push(Case::refused(
        "CL.TE smuggling: Content-Length: 5 with chunked body hiding a request (RFC 9112 §11.2)",
        Req::post(r)
            .cl(5)
            .te("chunked")
            .body(cat(&[b"0\r\n\r\n", &cl_request(r, &p).bytes()]))
            .bytes(),
        400,
    ));
    cases.push(Case::refused(
        "Transfer-Encoding: chunked with Content-Length: 0 (RFC 9112 §6.1)",
        Req::post(r)
            .te("chunked")
            .cl(0)
            .body(one_chunk(&p.body, b"", b""))
            .bytes(),
        400,
    ));
    cases.push(Case::refused(
        "Transfer-Encoding: identity with Content-Length (RFC 9112 §6.1, §6.3 item 3)",
        Req::post(r).te("identity").cl(n).body(&p.body).bytes(),
        400,
    ));
    let p = ps.next();
    cases.push(Case::served(
        "two identical Content-Length lines (RFC 9110 §8.6 MAY accept; Go accepts)",
        Req::post(r)
            .cl(p.body.len())
            .cl(p.body.len())
            .body(&p.body)
            .bytes(),
        &p,
    ));
    let p = ps.next();
    cases.push(Case::served(
        "list-valued Content-Length `n, n` (RFC 9110 §8.6 MAY accept; Go: 400)",
        Req::post(r)
            .field(format!("Content-Length: {0}, {0}", p.body.len()))
            .body(&p.body)
            .bytes(),
        &p,
    ));
    let p = ps.next();
    let n = p.body.len();
    cases.push(Case::refused(
        "two differing Content-Length lines (RFC 9110 §8.6, RFC 9112 §6.3 item 5)",
        Req::post(r).cl(n).cl(n + 1).body(&p.body).bytes(),
        400,
    ));
    cases.push(Case::refused(
        "differing list `n, n+1` (RFC 9112 §6.3 item 5)",
        Req::post(r)
            .field(format!("Content-Length: {n}, {}", n + 1))
            .body(&p.body)
            .bytes(),
        400,
    ));
    cases.push(Case::refused(
        "identical line then a differing list (RFC 9112 §6.3 item 5)",
        Req::post(r)
            .cl(n)
            .field(format!("Content-Length: {n}, 1"))
            .body(&p.body)
            .bytes(),
        400,
    ));
    for (label, value) in [
        ("signed `+n`", format!("+{n}")),
        ("negative `-1`", "-1".to_string()),
        ("hex `0x..`", format!("0x{n:x}")),
        ("hex digits without a prefix `1a`", "1a".to_string()),
        ("empty (Go ≥ 1.22: 400)", String::new()),
        ("only whitespace", "   ".to_string()),
        ("trailing comma `n,`", format!("{n},")),
        ("leading comma `,n`", format!(",{n}")),
        ("space inside `1 2`", "1 2".to_string()),
        ("decimal point `n.0`", format!("{n}.0")),
        (
            "overflowing u64 `18446744073709551616`",
            "18446744073709551616".to_string(),
        ),
        (
            "far beyond u64 (40 digits)",
            "9999999999999999999999999999999999999999".to_string(),
        ),
        ("exponent `1e3`", "1e3".to_string()),
        ("quoted `\"n\"`", format!("\"{n}\"")),
    ] {
        cases.push(Case::refused(
            format!("Content-Length {label}: 400 (RFC 9110 §8.6 1*DIGIT, RFC 9112 §6.3 item 5)"),
            Req::post(r)
                .field(format!("Content-Length: {value}"))
                .body(&p.body)
                .bytes(),
            400,
        ));
    }
    cases.push(Case::refused(
        "Content-Length with NUL after the digits (RFC 9110 §5.5)",
        Req::post(r)
            .field(format!("Content-Length: {n}\0"))
            .body(&p.body)
            .bytes(),
        400,
    ));
    cases.push(Case::refused(
        "Content-Length with a vertical tab (RFC 9110 §5.5 CTL)",
        Req::post(r)
            .field(format!("Content-Length: \x0b{n}"))
            .body(&p.body)
            .bytes(),
        400,
    ));
    let p = ps.next();
    cases.push(Case::served(
        "leading-zero Content-Length `000n` (RFC 9110 §8.6 1*DIGIT; Go accepts)",
        Req::post(r)
            .field(format!("Content-Length: 000{}", p.body.len()))
            .body(&p.body)
            .bytes(),
        &p,
    ));
    let p = ps.next();
    cases.push(Case::served(
        "Content-Length with OWS around the value (RFC 9112 §5.1)",
        Req::post(r)
            .field(format!("Content-Length: \t {} \t", p.body.len()))
            .body(&p.body)
            .bytes(),
        &p,
    ));
    let p = ps.next();
    cases.push(Case::served(
        "Content-Length with no space after the colon (RFC 9112 §5.1 OWS)",
        Req::post(r)
            .field(format!("Content-Length:{}", p.body.len()))
            .body(&p.body)
            .bytes(),
        &p,
    ));
    let p = ps.next();
    cases.push(Case::served(
        "field names are case-insensitive: CONTENT-LENGTH (RFC 9110 §5.1)",
        Req::post(r)
            .field(format!("CONTENT-LENGTH: {}", p.body.len()))
            .body(&p.body)
            .bytes(),
        &p,
    ));
    let p = ps.next();
    cases.push(Case::served(
        "`Transfer_Encoding: chunked` is just another field: Content-Length frames (RFC 9110 §5.1)",
        Req::post(r)
            .field("Transfer_Encoding: chunked")
            .cl(p.body.len())
            .body(&p.body)
            .bytes(),
        &p,
    ));
    let p = ps.next();
    cases.push(Case::refused(
        "valid Content-Length over max_request_body_bytes (RFC 9110 §15.5.14)",
        Req::post(r).cl(99_999_999_999_999).body(&p.body).bytes(),
        r.too_large(),
    ));
    cases.push(Case::refused(
        "Content-Length u64::MAX (RFC 9110 §8.6: anticipate large numerals)",
        Req::post(r)
            .field("Content-Length: 18446744073709551615")
            .bytes(),
        r.too_large(),
    ));
    cases.push(Case::refused(
        "Content-Length over the limit, head only: answered before any body byte (RFC 9110 §15.5.14)",
        Req::post(r).cl(BODY_LIMIT + 1).head(),
        r.too_large(),
    ));

    // --- Transfer-Encoding (RFC 9112 §6.1, §6.3 item 4, §7) ------------------------------
    let te_body = |p: &Payload| one_chunk(&p.body, b"", b"");
    let p = ps.next();
    for (label, value, status) in [
        (
            "`chunked, chunked`: 501 (RFC 9112 §7.1 chunked at most once; Go 501)",
            "chunked, chunked",
            501,
        ),
        (
            "`gzip`: chunked not final, 400 (RFC 9112 §6.3 item 4 MUST)",
            "gzip",
            400,
        ),
        (
            "`gzip, chunked`: coding not understood, 501 (RFC 9112 §6.1 SHOULD; Go 501)",
            "gzip, chunked",
            501,
        ),
        (
            "`chunked, gzip`: chunked not final, 400 (RFC 9112 §6.3 item 4 MUST)",
            "chunked, gzip",
            400,
        ),
        (
            "`identity` (removed from the registry): 400 (RFC 9112 §6.3 item 4)",
            "identity",
            400,
        ),
        (
            "unknown coding `foo`: 400 (RFC 9112 §6.3 item 4)",
            "foo",
            400,
        ),
        (
            "unknown coding before chunked `foo, chunked`: 501 (RFC 9112 §6.1)",
            "foo, chunked",
            501,
        ),
        (
            "`chunked;x` (parameter on chunked, invalid syntax): 400 (RFC 9112 §6.3 item 4, §7)",
            "chunked;x",
            400,
        ),
        (
            "`chunked;q=1`: not plain chunked, 400 (RFC 9112 §6.3 item 4)",
            "chunked;q=1",
            400,
        ),
        ("`ch unked`: 400 (RFC 9112 §6.3 item 4)", "ch unked", 400),
        (
            "`\"chunked\"` quoted: 400 (RFC 9112 §6.3 item 4)",
            "\"chunked\"",
            400,
        ),
        ("`xchunked`: 400 (RFC 9112 §6.3 item 4)", "xchunked", 400),
        ("`chunkedx`: 400 (RFC 9112 §6.3 item 4)", "chunkedx", 400),
        (
            "empty Transfer-Encoding: 400 (RFC 9112 §6.3 item 4)",
            "",
            400,
        ),
        ("`,` only: 400 (RFC 9112 §6.3 item 4)", ",", 400),
    ] {
        cases.push(Case::refused(
            format!("Transfer-Encoding {label}"),
            Req::post(r).te(value).body(te_body(&p)).bytes(),
            status,
        ));
    }
    cases.push(Case::refused(
        "two Transfer-Encoding lines `chunked` + `chunked`: 501 (RFC 9110 §5.3 one list; Go 501)",
        Req::post(r)
            .te("chunked")
            .te("chunked")
            .body(te_body(&p))
            .bytes(),
        501,
    ));
    cases.push(Case::refused(
        "two Transfer-Encoding lines `chunked` + `gzip`: chunked not final, 400 (RFC 9112 §6.3 item 4)",
        Req::post(r).te("chunked").te("gzip").body(te_body(&p)).bytes(),
        400,
    ));
    cases.push(Case::refused(
        "two Transfer-Encoding lines `gzip` + `chunked`: 501 (RFC 9112 §6.1)",
        Req::post(r)
            .te("gzip")
            .te("chunked")
            .body(te_body(&p))
            .bytes(),
        501,
    ));
    cases.push(Case::refused(
        "Transfer-Encoding with NBSP (obs-text) before chunked: 400 (RFC 9112 §6.3 item 4)",
        Req::post(r)
            .field(b"Transfer-Encoding: \xa0chunked")
            .body(te_body(&p))
            .bytes(),
        400,
    ));
    cases.push(Case::refused(
        "obs-fold inside Transfer-Encoding `gzip,` CRLF SP `chunked`: 400 (RFC 9112 §5.2)",
        Req::post(r)
            .field("Transfer-Encoding: gzip,")
            .field(" chunked")
            .body(te_body(&p))
            .bytes(),
        400,
    ));
    cases.push(Case::refused(
        "obs-fold: Transfer-Encoding value on a continuation line: 400 (RFC 9112 §5.2)",
        Req::post(r)
            .field("Transfer-Encoding:")
            .field("\tchunked")
            .body(te_body(&p))
            .bytes(),
        400,
    ));
    cases.push(Case::refused(
        "space before the colon `Transfer-Encoding : chunked`: 400 (RFC 9112 §5.1 MUST)",
        Req::post(r)
            .field("Transfer-Encoding : chunked")
            .body(te_body(&p))
            .bytes(),
        400,
    ));
    cases.push(Case::refused(
        "space before the colon with Content-Length (TE.CL smuggling shape): 400 (RFC 9112 §5.1)",
        Req::post(r)
            .field("Transfer-Encoding : chunked")
            .cl(p.body.len() + 2)
            .body(te_body(&p))
            .bytes(),
        400,
    ));
    cases.push(Case::refused(
        "vertical tab after chunked: 400 (RFC 9110 §5.5 CTL in a value)",
        Req::post(r)
            .field("Transfer-Encoding: chunked\x0b")
            .body(te_body(&p))
            .bytes(),
        400,
    ));
    cases.push(Case::refused(
        "form feed before chunked: 400 (RFC 9110 §5.5 CTL in a value)",
        Req::post(r)
            .field("Transfer-Encoding: \x0cchunked")
            .body(te_body(&p))
            .bytes(),
        400,
    ));
    cases.push(Case::refused(
        "Transfer-Encoding on HTTP/1.0: 400 (RFC 9112 §6.1 MUST treat as faulty; Go ignores TE)",
        Req::post10(r).te("chunked").body(te_body(&p)).bytes(),
        400,
    ));
    cases.push(Case::refused(
        "Transfer-Encoding with Content-Length on HTTP/1.0: 400 (RFC 9112 §6.1)",
        Req::post10(r)
            .te("chunked")
            .cl(p.body.len())
            .body(&p.body)
            .bytes(),
        400,
    ));
    let p = ps.next();
    cases.push(Case::served(
        "`CHUNKED` (codings are case-insensitive, RFC 9112 §7)",
        Req::post(r).te("CHUNKED").body(te_body(&p)).bytes(),
        &p,
    ));
    let p = ps.next();
    cases.push(Case::served(
        "`,chunked`: empty list elements are ignored (RFC 9110 §5.6.1; Go 501)",
        Req::post(r).te(",chunked").body(te_body(&p)).bytes(),
        &p,
    ));
    let p = ps.next();
    cases.push(Case::served(
        "`chunked , ,` trailing empty elements (RFC 9110 §5.6.1)",
        Req::post(r).te("chunked , ,").body(te_body(&p)).bytes(),
        &p,
    ));
    let p = ps.next();
    cases.push(Case::served(
        "tabs and spaces around chunked (RFC 9112 §5.1 OWS)",
        Req::post(r)
            .field("Transfer-Encoding:\t  chunked \t")
            .body(te_body(&p))
            .bytes(),
        &p,
    ));

    // --- Bare LF and bare CR (RFC 9112 §2.2) ---------------------------------------------
    let p = ps.next();
    let mut req = cl_request(r, &p);
    req.line = format!("POST {} HTTP/1.1\n", r.target()).into_bytes();
    cases.push(Case::served(
        "bare LF ends the request line (RFC 9112 §2.2 MAY; Go accepts)",
        req.bytes(),
        &p,
    ));
    let p = ps.next();
    let mut req = cl_request(r, &p);
    req.line = format!("POST {} HTTP/1.1\n", r.target()).into_bytes();
    for f in &mut req.fields {
        f.truncate(f.len() - 2);
        f.push(b'\n');
    }
    req.blank = b"\n".to_vec();
    cases.push(Case::served(
        "every head line ends in bare LF (RFC 9112 §2.2 MAY; Go accepts)",
        req.bytes(),
        &p,
    ));
    let p = ps.next();
    cases.push(Case::served(
        "one header line ends in bare LF (RFC 9112 §2.2)",
        Req::post(r)
            .raw_field(b"X-Bare-Lf: 1\n")
            .cl(p.body.len())
            .body(&p.body)
            .bytes(),
        &p,
    ));
    let p = ps.next();
    let mut req = cl_request(r, &p);
    if let Some(last) = req.fields.last_mut() {
        last.truncate(last.len() - 2);
        last.push(b'\n');
    }
    cases.push(Case::served(
        "last field line ends in bare LF, then CRLF (RFC 9112 §2.2)",
        req.bytes(),
        &p,
    ));
    let p = ps.next();
    let n = p.body.len();
    cases.push(Case::refused(
        "bare CR inside the target: 400 (RFC 9112 §2.2 MUST invalid or SP → invalid target)",
        cl_request(r, &p)
            .line(format!("POST {}\r&x=1 HTTP/1.1\r\n", r.target()).as_bytes())
            .bytes(),
        400,
    ));
    cases.push(Case::refused(
        "bare CR before the request line's CRLF: 400 (RFC 9112 §2.2)",
        cl_request(r, &p)
            .line(format!("POST {} HTTP/1.1\r\r\n", r.target()).as_bytes())
            .bytes(),
        400,
    ));
    cases.push(Case::refused(
        "bare CR as the request line's terminator: 400 (RFC 9112 §2.2)",
        cl_request(r, &p)
            .line(format!("POST {} HTTP/1.1\r", r.target()).as_bytes())
            .bytes(),
        400,
    ));
    cases.push(Case::refused(
        "bare CR inside a header value: 400 (RFC 9112 §2.2, RFC 9110 §5.5; Go 400)",
        Req::post(r)
            .field("X-Note: a\rb")
            .cl(n)
            .body(&p.body)
            .bytes(),
        400,
    ));
    cases.push(Case::refused(
        "bare CR ending a header line, Content-Length hidden behind it: 400 (RFC 9112 §2.2)",
        Req::post(r)
            .raw_field(format!("X-Note: a\rContent-Length: {n}\r\n"))
            .body(&p.body)
            .bytes(),
        400,
    ));
    cases.push(Case::refused(
        "bare CR inside a header name: 400 (RFC 9112 §2.2, RFC 9110 §5.1)",
        Req::post(r)
            .field("X-No\rte: a")
            .cl(n)
            .body(&p.body)
            .bytes(),
        400,
    ));
    cases.push(Case::refused(
        "bare CR as the blank line: 400 (RFC 9112 §2.2)",
        cl_request(r, &p).blank(b"\r\r\n").bytes(),
        400,
    ));
    let chunk_cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "bare LF after the chunk size (RFC 9112 §7.1; errata 7633; Go ≥ 1.24.2 400)",
            cat(&[format!("{:x}\n", n).as_bytes(), &p.body, b"\r\n0\r\n\r\n"]),
        ),
        (
            "bare LF after the chunk data (RFC 9112 §7.1)",
            cat(&[format!("{:x}\r\n", n).as_bytes(), &p.body, b"\n0\r\n\r\n"]),
        ),
        (
            "bare LF after the last chunk (RFC 9112 §7.1)",
            cat(&[format!("{:x}\r\n", n).as_bytes(), &p.body, b"\r\n0\n\r\n"]),
        ),
        (
            "bare LF ending the chunked body (RFC 9112 §7.1)",
            cat(&[format!("{:x}\r\n", n).as_bytes(), &p.body, b"\r\n0\r\n\n"]),
        ),
        (
            "bare CR after the chunk size (RFC 9112 §2.2, §7.1)",
            cat(&[
                format!("{:x}\r\r\n", n).as_bytes(),
                &p.body,
                b"\r\n0\r\n\r\n",
            ]),
        ),
        (
            "bare CR after the chunk data (RFC 9112 §7.1)",
            cat(&[format!("{:x}\r\n", n).as_bytes(), &p.body, b"\r0\r\n\r\n"]),
        ),
        (
            "bare CR inside a chunk extension (RFC 9112 §2.2, §7.1.1)",
            cat(&[
                format!("{:x};a\rb\r\n", n).as_bytes(),
                &p.body,
                b"\r\n0\r\n\r\n",
            ]),
        ),
        (
            "bare LF inside a chunk extension (RFC 9112 §7.1.1)",
            cat(&[
                format!("{:x};a\nb\r\n", n).as_bytes(),
                &p.body,
                b"\r\n0\r\n\r\n",
            ]),
        ),
        (
            "bare LF ending a trailer field (RFC 9112 §7.1.2)",
            cat(&[
                format!("{:x}\r\n", n).as_bytes(),
                &p.body,
                b"\r\n0\r\nX-Trailer: 1\n\r\n",
            ]),
        ),
        (
            "bare CR inside a trailer field (RFC 9112 §2.2, §7.1.2)",
            cat(&[
                format!("{:x}\r\n", n).as_bytes(),
                &p.body,
                b"\r\n0\r\nX-Trailer: a\rb\r\n\r\n",
            ]),
        ),
        (
            "empty chunk size (RFC 9112 §7.1 1*HEXDIG; Go 400)",
            cat(&[b"\r\n", &p.body, b"\r\n0\r\n\r\n"]),
        ),
        (
            "chunk size `0x..` (RFC 9112 §7.1)",
            cat(&[
                format!("0x{:x}\r\n", n).as_bytes(),
                &p.body,
                b"\r\n0\r\n\r\n",
            ]),
        ),
        (
            "negative chunk size (RFC 9112 §7.1)",
            cat(&[
                format!("-{:x}\r\n", n).as_bytes(),
                &p.body,
                b"\r\n0\r\n\r\n",
            ]),
        ),
        (
            "whitespace before the chunk size (RFC 9112 §7.1)",
            cat(&[
                format!(" {:x}\r\n", n).as_bytes(),
                &p.body,
                b"\r\n0\r\n\r\n",
            ]),
        ),
        (
            "chunk data longer than its size (RFC 9112 §7.1)",
            cat(&[
                format!("{:x}\r\n", n - 1).as_bytes(),
                &p.body,
                b"\r\n0\r\n\r\n",
            ]),
        ),
        (
            "NUL in the chunk size line (RFC 9112 §7.1)",
            cat(&[
                format!("{:x}\0\r\n", n).as_bytes(),
                &p.body,
                b"\r\n0\r\n\r\n",
            ]),
        ),
        (
            "TE smuggling: chunk size swallows a pipelined request, then garbage (RFC 9112 §7.1, §11.2)",
            // Size 10 takes `hello\r\n0\r\n`; the `\r\n` closes it; then `P` is no hex digit.
            cat(&[b"a\r\nhello\r\n0\r\n\r\n", &cl_request(r, &p).bytes()]),
        ),
        (
            "chunk extensions over 16 KiB in total (pyrogate and hyper bound; RFC 9112 §7.1.1)",
            cat(&[
                format!("{:x};x={}\r\n", n, "e".repeat(CHUNK_EXTENSIONS_LIMIT)).as_bytes(),
                &p.body,
                b"\r\n0\r\n\r\n",
            ]),
        ),
        (
            "trailer section over 16 KiB (pyrogate and hyper bound; RFC 9112 §7.1.2)",
            cat(&[
                format!("{:x}\r\n", n).as_bytes(),
                &p.body,
                format!("\r\n0\r\nX-Trailer: {}\r\n\r\n", "t".repeat(TRAILERS_LIMIT)).as_bytes(),
            ]),
        ),
    ];
    for (label, body) in chunk_cases {
        cases.push(Case::refused(
            format!("chunked: {label}: 400"),
            Req::post(r).te("chunked").body(body).bytes(),
            400,
        ));
    }
    cases.push(Case::refused(
        "chunk size overflowing u64 (17 hex digits): refused at the limit (RFC 9112 §7.1 anticipate large numerals)",
        Req::post(r)
            .te("chunked")
            .body(cat(&[b"10000000000000000\r\n", &p.body, b"\r\n0\r\n\r\n"]))
            .bytes(),
        r.too_large(),
    ));
    cases.push(Case::refused(
        "chunk size `ffffffffffffffffffff` (20 digits): refused at the limit (RFC 9112 §7.1)",
        Req::post(r)
            .te("chunked")
            .body(cat(&[
                b"ffffffffffffffffffff\r\n",
                &p.body,
                b"\r\n0\r\n\r\n",
            ]))
            .bytes(),
        r.too_large(),
    ));
    cases.push(Case::refused(
        "chunked body over max_request_body_bytes (RFC 9110 §15.5.14)",
        Req::post(r)
            .te("chunked")
            .body(chunks_of(&vec![b'x'; BODY_LIMIT + 1], 4096))
            .bytes(),
        r.too_large(),
    ));
    let chunk_ok: Vec<(&str, BodyOf)> = vec![
        (
            "leading zeros on the chunk size, 22 digits (RFC 9112 §7.1 1*HEXDIG; Go: 400 over 16 digits)",
            Box::new(|p: &Payload| {
                cat(&[
                    format!("{:022x}\r\n", p.body.len()).as_bytes(),
                    &p.body,
                    b"\r\n0\r\n\r\n",
                ])
            }),
        ),
        (
            "upper-case hex chunk size (RFC 9112 §7.1 HEXDIG)",
            Box::new(|p: &Payload| {
                cat(&[
                    format!("{:X}\r\n", p.body.len()).as_bytes(),
                    &p.body,
                    b"\r\n0\r\n\r\n",
                ])
            }),
        ),
        (
            "last chunk `000` (RFC 9112 §7.1 1*\"0\")",
            Box::new(|p: &Payload| {
                cat(&[
                    format!("{:x}\r\n", p.body.len()).as_bytes(),
                    &p.body,
                    b"\r\n000\r\n\r\n",
                ])
            }),
        ),
        (
            "whitespace after the chunk size (BWS, RFC 9112 §7.1.1; hyper and Go accept)",
            Box::new(|p: &Payload| {
                cat(&[
                    format!("{:x} \t\r\n", p.body.len()).as_bytes(),
                    &p.body,
                    b"\r\n0\r\n\r\n",
                ])
            }),
        ),
        (
            "chunk extension `;name=value` (RFC 9112 §7.1.1)",
            Box::new(|p: &Payload| one_chunk(&p.body, b";name=value", b"")),
        ),
        (
            "chunk extension without value `;flag` (RFC 9112 §7.1.1)",
            Box::new(|p: &Payload| one_chunk(&p.body, b";flag", b"")),
        ),
        (
            "quoted chunk extension with `;` and an escaped quote (RFC 9112 §7.1.1)",
            Box::new(|p: &Payload| one_chunk(&p.body, b";name=\"va;l\\\"ue\"", b"")),
        ),
        (
            "chunk extensions with BWS `5 ; a = b ; c` (RFC 9112 §7.1.1)",
            Box::new(|p: &Payload| one_chunk(&p.body, b" ; a = b ; c", b"")),
        ),
        (
            "chunk extension on the last chunk (RFC 9112 §7.1)",
            Box::new(|p: &Payload| {
                cat(&[
                    format!("{:x}\r\n", p.body.len()).as_bytes(),
                    &p.body,
                    b"\r\n0;last=yes\r\n\r\n",
                ])
            }),
        ),
        (
            "chunk extensions just under the 16 KiB bound (RFC 9112 §7.1.1)",
            Box::new(|p: &Payload| {
                let ext = format!(";x={}", "e".repeat(CHUNK_EXTENSIONS_LIMIT - 100));
                one_chunk(&p.body, ext.as_bytes(), b"")
            }),
        ),
        (
            "one trailer field (RFC 9112 §7.1.2)",
            Box::new(|p: &Payload| one_chunk(&p.body, b"", b"X-Checksum: abc\r\n")),
        ),
        (
            "several trailer fields, framing names included, discarded (RFC 9112 §7.1.2, RFC 9110 §6.5.1)",
            Box::new(|p: &Payload| {
                one_chunk(
                    &p.body,
                    b"",
                    b"X-A: 1\r\nContent-Length: 99\r\nTransfer-Encoding: gzip\r\n",
                )
            }),
        ),
        (
            "trailers just under the 16 KiB bound (RFC 9112 §7.1.2)",
            Box::new(|p: &Payload| {
                let t = format!("X-T: {}\r\n", "t".repeat(TRAILERS_LIMIT - 100));
                one_chunk(&p.body, b"", t.as_bytes())
            }),
        ),
        (
            "the body split in two chunks (RFC 9112 §7.1)",
            Box::new(|p: &Payload| chunks_of(&p.body, p.body.len() / 2 + 1)),
        ),
    ];
    for (label, build) in chunk_ok {
        let p = ps.next();
        cases.push(Case::served(
            format!("chunked: {label}"),
            Req::post(r).te("chunked").body(build(&p)).bytes(),
            &p,
        ));
    }

    // --- NUL and control characters (RFC 9110 §5.1, §5.5; RFC 9112 §3) --------------------
    let p = ps.next();
    let n = p.body.len();
    let t = r.target();
    for (label, line) in [
        ("NUL in the target", format!("POST {t}\0 HTTP/1.1\r\n")),
        ("DEL in the target", format!("POST {t}\x7f HTTP/1.1\r\n")),
        ("ESC in the target", format!("POST {t}\x1b HTTP/1.1\r\n")),
        ("TAB in the target", format!("POST {t}\t HTTP/1.1\r\n")),
        (
            "space inside the target",
            format!("POST {t}&a b=1 HTTP/1.1\r\n"),
        ),
        ("NUL in the method", format!("PO\0ST {t} HTTP/1.1\r\n")),
        (
            "two spaces after the method",
            format!("POST  {t} HTTP/1.1\r\n"),
        ),
        (
            "TAB between method and target",
            format!("POST\t{t} HTTP/1.1\r\n"),
        ),
        ("lower-case `http/1.1`", format!("POST {t} http/1.1\r\n")),
        (
            "trailing space after the version",
            format!("POST {t} HTTP/1.1 \r\n"),
        ),
        ("no version (HTTP/0.9 style)", format!("POST {t}\r\n")),
        ("`HTTP/1` without a minor", format!("POST {t} HTTP/1\r\n")),
        ("empty request line", "\r\n\r\n \r\n".to_string()),
    ] {
        cases.push(Case::refused(
            format!("request line: {label}: 400 (RFC 9112 §3; Go 400)"),
            cl_request(r, &p).line(line.as_bytes()).bytes(),
            400,
        ));
    }
    cases.push(Case::refused(
        "request line: space inside the target, HTTP/1.2 last: 400 (RFC 9112 §3)",
        cl_request(r, &p)
            .line(format!("POST {t}&a b=1 HTTP/1.2\r\n").as_bytes())
            .bytes(),
        400,
    ));
    let p2 = ps.next();
    cases.push(Case::served(
        "request line: HTTP/1.2 is read as HTTP/1.1 (RFC 9110 §6.2 SHOULD; Go serves it)",
        cl_request(r, &p2)
            .line(format!("POST {t} HTTP/1.2\r\n").as_bytes())
            .bytes(),
        &p2,
    ));
    cases.push(Case::refused(
        "request line: HTTP/1.2 without Host is an HTTP/1.1 request without Host: 400 (RFC 9112 §3.2)",
        cl_request(r, &p)
            .line(format!("POST {t} HTTP/1.2\r\n").as_bytes())
            .without("Host:")
            .bytes(),
        400,
    ));
    cases.push(Case::refused(
        "request line: HTTP/0.9 version token: 505 (RFC 9110 §15.6.6; Go 505)",
        cl_request(r, &p)
            .line(format!("POST {t} HTTP/0.9\r\n").as_bytes())
            .bytes(),
        505,
    ));
    cases.push(Case::refused(
        "request line: HTTP/2.0: 505 (RFC 9110 §15.6.6; Go 505)",
        cl_request(r, &p)
            .line(format!("POST {t} HTTP/2.0\r\n").as_bytes())
            .bytes(),
        505,
    ));
    for (label, field) in [
        ("NUL in a header name", b"X-A\0b: v".to_vec()),
        (
            "control char 0x01 in a header name",
            b"X-A\x01b: v".to_vec(),
        ),
        ("high byte in a header name", b"X-\xc3\xa9: v".to_vec()),
        ("`@` in a header name", b"X@A: v".to_vec()),
        ("NUL in a header value", b"X-A: a\0b".to_vec()),
        (
            "control char 0x01 in a header value",
            b"X-A: a\x01b".to_vec(),
        ),
        ("DEL in a header value", b"X-A: a\x7fb".to_vec()),
        ("ESC in a header value", b"X-A: \x1b[31m".to_vec()),
        ("empty header name", b": value".to_vec()),
        ("header line without a colon", b"X-No-Colon".to_vec()),
        ("space before the colon", b"X-A : v".to_vec()),
        ("tab before the colon", b"X-A\t: v".to_vec()),
        ("space inside a header name", b"X A: v".to_vec()),
    ] {
        cases.push(Case::refused(
            format!(
                "header: {}: 400 (RFC 9110 §5.1/§5.5, RFC 9112 §5.1; Go 400)",
                label
            ),
            Req::post(r).field(field).cl(n).body(&p.body).bytes(),
            400,
        ));
    }
    cases.push(Case::refused(
        "obs-fold continuation of an ordinary field: 400 (RFC 9112 §5.2 reject or replace; Go joins)",
        Req::post(r)
            .field("X-A: a")
            .field(" b")
            .cl(n)
            .body(&p.body)
            .bytes(),
        400,
    ));
    cases.push(Case::refused(
        "whitespace-preceded line before the first field: 400 (RFC 9112 §2.2 reject or ignore; Go 400)",
        cl_request(r, &p)
            .line(format!("POST {t} HTTP/1.1\r\n X-Hidden: 1\r\n").as_bytes())
            .bytes(),
        400,
    ));
    let p = ps.next();
    cases.push(Case::served(
        "HTAB inside a header value (RFC 9110 §5.5 field-vchar / SP / HTAB)",
        Req::post(r)
            .field("X-A: a\tb")
            .cl(p.body.len())
            .body(&p.body)
            .bytes(),
        &p,
    ));
    let p = ps.next();
    cases.push(Case::served(
        "obs-text in a header value (RFC 9110 §5.5 obs-text; Go accepts)",
        Req::post(r)
            .field(b"X-A: caf\xc3\xa9 \xff")
            .cl(p.body.len())
            .body(&p.body)
            .bytes(),
        &p,
    ));
    let p = ps.next();
    cases.push(Case::served(
        "empty header value (RFC 9110 §5.5 field-value may be empty)",
        Req::post(r)
            .field("X-Empty:")
            .cl(p.body.len())
            .body(&p.body)
            .bytes(),
        &p,
    ));
    let p = ps.next();
    cases.push(Case::served(
        "one empty line before the request line is ignored (RFC 9112 §2.2 SHOULD)",
        cat(&[b"\r\n", &cl_request(r, &p).bytes()]),
        &p,
    ));

    // --- Host (RFC 9112 §3.2) -------------------------------------------------------------
    let p = ps.next();
    let n = p.body.len();
    cases.push(Case::refused(
        "HTTP/1.1 without Host: 400 (RFC 9112 §3.2 MUST)",
        cl_request(r, &p).without("Host:").bytes(),
        400,
    ));
    cases.push(Case::refused(
        "two Host lines: 400 (RFC 9112 §3.2 MUST)",
        Req::post(r)
            .field("Host: other.test")
            .cl(n)
            .body(&p.body)
            .bytes(),
        400,
    ));
    cases.push(Case::refused(
        "Host with two values `a, b`: 400 (RFC 9112 §3.2 MUST, invalid value)",
        Req::post(r)
            .without("Host:")
            .field("Host: a.test, b.test")
            .cl(n)
            .body(&p.body)
            .bytes(),
        400,
    ));
    for (label, value) in [
        ("space inside (Go 400)", "pyro gate.test"),
        ("`/` inside (Go 400)", "pyrogate.test/ingest"),
        ("userinfo `@` (Go 400)", "user@pyrogate.test"),
        ("`\"` quoted (Go 400)", "\"pyrogate.test\""),
        ("non-numeric port (Go accepts)", "pyrogate.test:http"),
        ("unclosed IPv6 literal (Go accepts)", "[::1"),
        ("two ports (Go accepts)", "pyrogate.test:1:2"),
    ] {
        cases.push(Case::refused(
            format!(
                "Host {label}: 400 (RFC 9112 §3.2 MUST, RFC 3986 §3.2.2 uri-host [\":\" port])"
            ),
            Req::post(r)
                .without("Host:")
                .field(format!("Host: {value}"))
                .cl(n)
                .body(&p.body)
                .bytes(),
            400,
        ));
    }
    for (label, value) in [
        ("with a port", "pyrogate.test:4040"),
        ("IPv4 with a port", "127.0.0.1:4040"),
        ("IPv6 literal with a port", "[::1]:4040"),
        ("empty port", "pyrogate.test:"),
        ("empty (RFC 9112 §3.2 allows an empty Host)", ""),
    ] {
        let p = ps.next();
        cases.push(Case::served(
            format!("Host {label} (RFC 9112 §3.2, RFC 3986 §3.2.2)"),
            Req::post(r)
                .without("Host:")
                .field(format!("Host: {value}"))
                .cl(p.body.len())
                .body(&p.body)
                .bytes(),
            &p,
        ));
    }

    // --- Size limits (RFC 6585 §5) --------------------------------------------------------
    let p = ps.next();
    let long_target = format!("{t}&pad={}", "p".repeat(HEAD_LIMIT));
    cases.push(Case::refused(
        "request line over max_request_head_bytes: 431 (RFC 6585 §5; Go 431; RFC 9112 §3 would say 414)",
        cl_request(r, &p)
            .line(format!("POST {long_target} HTTP/1.1\r\n").as_bytes())
            .bytes(),
        431,
    ));
    cases.push(Case::refused(
        "request line over max_request_head_bytes, no line end yet: 431 (RFC 6585 §5)",
        format!("POST {long_target}").into_bytes(),
        431,
    ));
    let base = cl_request(r, &p);
    let pad = HEAD_LIMIT - base.head_len() - "X-Pad: \r\n".len();
    let exact = base.clone().field(format!("X-Pad: {}", "p".repeat(pad)));
    assert_eq!(exact.head_len(), HEAD_LIMIT);
    cases.push(Case::served(
        "head of exactly max_request_head_bytes",
        exact.bytes(),
        &p,
    ));
    cases.push(Case::refused(
        "head one byte over max_request_head_bytes: 431 (RFC 6585 §5)",
        base.clone()
            .field(format!("X-Pad: {}", "p".repeat(pad + 1)))
            .bytes(),
        431,
    ));
    cases.push(Case::refused(
        "one header value larger than max_request_head_bytes: 431 (RFC 6585 §5)",
        base.clone()
            .field(format!("X-Pad: {}", "p".repeat(HEAD_LIMIT)))
            .bytes(),
        431,
    ));
    let p = ps.next();
    let mut at_limit = cl_request(r, &p);
    let mut i = 0;
    while at_limit.fields.len() < HEADER_LIMIT {
        at_limit = at_limit.field(format!("X-Extra-{i}: {i}"));
        i += 1;
    }
    cases.push(Case::served(
        "exactly max_request_headers fields",
        at_limit.bytes(),
        &p,
    ));
    cases.push(Case::refused(
        "one field over max_request_headers: 431 (RFC 6585 §5)",
        at_limit.clone().field("X-One-More: 1").bytes(),
        431,
    ));
    let mut many = Req::post(r);
    for i in 0..HEADER_LIMIT * 4 {
        many = many.field(format!("X-{i}: {i}"));
    }
    cases.push(Case::refused(
        "four times max_request_headers fields: 431 (RFC 6585 §5)",
        many.cl(p.body.len()).body(&p.body).bytes(),
        431,
    ));

    // --- Pipelining, hidden requests, connection close (RFC 9112 §9.3, §9.6, §11.2) -------
    let (a, b) = (ps.next(), ps.next());
    cases.push(Case::custom(
        "two uploads in one write: answered in order, each delivered once (RFC 9112 §9.3.2)",
        vec![
            Step::Send(cat(&[
                &cl_request(r, &a).bytes(),
                &cl_request(r, &b).bytes(),
            ])),
            Step::Status(200),
            Step::Status(200),
        ],
        vec![a.mark.clone(), b.mark.clone()],
        After::InSync,
    ));
    let (a, b) = (ps.next(), ps.next());
    cases.push(Case::custom(
        "chunked upload then Content-Length upload in one write (RFC 9112 §9.3.2)",
        vec![
            Step::Send(cat(&[
                &chunked_request(r, &a).bytes(),
                &cl_request(r, &b).bytes(),
            ])),
            Step::Status(200),
            Step::Status(200),
        ],
        vec![a.mark.clone(), b.mark.clone()],
        After::InSync,
    ));
    let (a, b) = (ps.next(), ps.next());
    cases.push(Case::custom(
        "upload, GET /nope, upload in one write: 200, 404, 200 (RFC 9112 §9.3.2)",
        vec![
            Step::Send(cat(&[
                &cl_request(r, &a).bytes(),
                b"GET /nope HTTP/1.1\r\nHost: pyrogate.test\r\n\r\n",
                &cl_request(r, &b).bytes(),
            ])),
            Step::Status(200),
            Step::Status(404),
            Step::Status(200),
        ],
        vec![a.mark.clone(), b.mark.clone()],
        After::InSync,
    ));
    let (a, b) = (ps.next(), ps.next());
    cases.push(Case::custom(
        "pipelined upload split mid-head across writes (RFC 9112 §9.3.2)",
        {
            let both = cat(&[&cl_request(r, &a).bytes(), &cl_request(r, &b).bytes()]);
            let cut = cl_request(r, &a).bytes().len() + 20;
            vec![
                Step::Send(both[..cut].to_vec()),
                Step::Pause(Duration::from_millis(50)),
                Step::Send(both[cut..].to_vec()),
                Step::Status(200),
                Step::Status(200),
            ]
        },
        vec![a.mark.clone(), b.mark.clone()],
        After::InSync,
    ));
    let hidden_victim = ps.next();
    let hidden = cl_request(r, &hidden_victim).bytes();
    let p = ps.with_content(&hidden);
    cases.push(Case::served(
        "a request hidden in a Content-Length body is body bytes (RFC 9112 §6.3 item 6)",
        cl_request(r, &p).bytes(),
        &p,
    ));
    let p = ps.with_content(&hidden);
    cases.push(Case::served(
        "a request hidden in chunk data is body bytes (RFC 9112 §7.1)",
        Req::post(r)
            .te("chunked")
            .body(chunks_of(&p.body, 7))
            .bytes(),
        &p,
    ));
    let p = ps.next();
    cases.push(Case::custom(
        "Connection: close: served, then no further request processed (RFC 9112 §9.6 MUST NOT)",
        vec![
            Step::Send(cl_request(r, &p).field("Connection: close").bytes()),
            Step::Status(200),
        ],
        vec![p.mark.clone()],
        After::Closed,
    ));
    let p = ps.next();
    cases.push(Case::custom(
        "`Connection: keep-alive, close`: close wins (RFC 9112 §9.6)",
        vec![
            Step::Send(
                cl_request(r, &p)
                    .field("Connection: keep-alive, close")
                    .bytes(),
            ),
            Step::Status(200),
        ],
        vec![p.mark.clone()],
        After::Closed,
    ));
    let p = ps.next();
    cases.push(Case::custom(
        "HTTP/1.0 without keep-alive: served, then closed (RFC 9112 §9.3)",
        vec![
            Step::Send(Req::post10(r).cl(p.body.len()).body(&p.body).bytes()),
            Step::Status(200),
        ],
        vec![p.mark.clone()],
        After::Closed,
    ));
    let p = ps.next();
    cases.push(Case::custom(
        "HTTP/1.0 with Host and `Connection: keep-alive, close`: closed (RFC 9112 §9.3)",
        vec![
            Step::Send(
                Req::post10(r)
                    .field("Host: pyrogate.test")
                    .field("Connection: keep-alive, close")
                    .cl(p.body.len())
                    .body(&p.body)
                    .bytes(),
            ),
            Step::Status(200),
        ],
        vec![p.mark.clone()],
        After::Closed,
    ));

    // --- Early errors with an unread body (RFC 9112 §9.6, RFC 9110 §15.5) -----------------
    let p = ps.next();
    cases.push(Case::refused(
        "GET on the route with a body: 405, closed without reading the body (RFC 9110 §15.5.6)",
        cl_request(r, &p)
            .line(format!("GET {t} HTTP/1.1\r\n").as_bytes())
            .bytes(),
        405,
    ));
    cases.push(Case::refused(
        "lower-case method `post` is another method: 405 (RFC 9110 §9.1 case-sensitive)",
        cl_request(r, &p)
            .line(format!("post {t} HTTP/1.1\r\n").as_bytes())
            .bytes(),
        405,
    ));
    cases.push(Case::refused(
        "unknown path with a body: 404, closed without reading the body",
        cl_request(r, &p).line(b"POST /nope HTTP/1.1\r\n").bytes(),
        404,
    ));
    cases.push(Case::refused(
        "unknown path with a chunked body: 404, closed",
        chunked_request(r, &p)
            .line(b"POST /ingest/ HTTP/1.1\r\n")
            .bytes(),
        404,
    ));
    if r == Route::Push {
        let p = ps.next();
        cases.push(Case::custom(
            "Push with an unsupported Content-Type: body read, 415, connection in sync",
            vec![
                Step::Send(
                    Req::post(r)
                        .without("Content-Type:")
                        .field("Content-Type: text/plain")
                        .cl(p.body.len())
                        .body(&p.body)
                        .bytes(),
                ),
                Step::Status(415),
            ],
            Vec::new(),
            After::InSync,
        ));
    }

    // --- Expect (RFC 9110 §10.1.1) --------------------------------------------------------
    let p = ps.next();
    let req = cl_request(r, &p).field("Expect: 100-continue");
    cases.push(Case::custom(
        "Expect: 100-continue: 100 before the body is sent, then 200 (RFC 9110 §10.1.1)",
        vec![
            Step::Send(req.head()),
            Step::Status(100),
            Step::Send(p.body.clone()),
            Step::Status(200),
        ],
        vec![p.mark.clone()],
        After::InSync,
    ));
    let p = ps.next();
    let req = chunked_request(r, &p).field("Expect: 100-Continue");
    cases.push(Case::custom(
        "Expect: 100-Continue (case-insensitive) with a chunked body (RFC 9110 §10.1.1)",
        vec![
            Step::Send(req.head()),
            Step::Status(100),
            Step::Send(req.body.clone()),
            Step::Status(200),
        ],
        vec![p.mark.clone()],
        After::InSync,
    ));
    let p = ps.next();
    cases.push(Case::custom(
        "Expect: 100-continue with the body in the same write: 200 (100 optional, RFC 9110 §10.1.1)",
        vec![
            Step::Send(cl_request(r, &p).field("Expect: 100-continue").bytes()),
            Step::Final(200),
        ],
        vec![p.mark.clone()],
        After::InSync,
    ));
    cases.push(Case::refused(
        "Expect: 100-continue with Content-Length over the limit: 413 instead of 100 (RFC 9110 §10.1.1)",
        Req::post(r)
            .field("Expect: 100-continue")
            .cl(BODY_LIMIT * 1000)
            .head(),
        r.too_large(),
    ));
    let p = ps.next();
    cases.push(Case::custom(
        "unknown expectation `Expect: 200-ok`: ignored, 200 (RFC 9110 §10.1.1 MAY 417; Go 417)",
        vec![
            Step::Send(cl_request(r, &p).field("Expect: 200-ok").bytes()),
            Step::Status(200),
        ],
        vec![p.mark.clone()],
        After::InSync,
    ));
    let p = ps.next();
    let req = Req::post10(r)
        .field("Expect: 100-continue")
        .cl(p.body.len())
        .body(&p.body);
    cases.push(Case::custom(
        "Expect: 100-continue on HTTP/1.0 is ignored: no 100 (RFC 9110 §10.1.1 MUST ignore)",
        vec![
            Step::Send(req.head()),
            Step::Pause(Duration::from_millis(300)),
            Step::Send(req.body.clone()),
            Step::Status(200),
        ],
        vec![p.mark.clone()],
        After::Closed,
    ));

    cases
}

// ---------------------------------------------------------------------------------------------
// Running

/// One gateway and stand-in for a table, and the probes that check sync and delivery.
struct Bench {
    route: Route,
    gw: Gateway,
    mock: MockPyroscope,
    probes: Payloads,
}

impl Bench {
    fn start(route: Route, driver: Driver) -> Bench {
        let mock = MockPyroscope::start();
        let gw = gateway(&mock, driver);
        Bench {
            route,
            gw,
            mock,
            probes: Payloads::new(route, 1_000_000),
        }
    }

    fn connect(&self) -> Client {
        Client::connect(self.gw.addr()).with_timeout(READ_TIMEOUT)
    }

    /// Runs every case; returns one line per failing case.
    fn run_all(&mut self, cases: Vec<Case>) -> Vec<String> {
        let total = cases.len();
        let mut failures = Vec::new();
        for (i, case) in cases.into_iter().enumerate() {
            if let Err(e) = self.run(&case) {
                failures.push(format!("[{:?} #{i}] {}: {e}", self.route, case.name));
            }
        }
        println!(
            "{:?} route, {:?} driver: {} of {total} cases pass",
            self.route,
            self.gw.driver,
            total - failures.len()
        );
        failures
    }

    fn run(&mut self, case: &Case) -> Result<(), String> {
        let before = self.mock.request_count();
        let follower = self.probes.next();
        let mut client = self.connect();
        let mut last: Option<Response> = None;
        let last_send = case.steps.iter().rposition(|s| matches!(s, Step::Send(_)));
        for (i, step) in case.steps.iter().enumerate() {
            match step {
                Step::Send(bytes) => {
                    let mut bytes = bytes.clone();
                    // Behind a request the connection must not outlive, a valid upload that
                    // must never be processed.
                    if case.after == After::Closed && Some(i) == last_send {
                        bytes.extend_from_slice(&cl_request(self.route, &follower).bytes());
                    }
                    let _ = client.try_send(&bytes);
                }
                Step::Pause(d) => std::thread::sleep(*d),
                Step::Status(want) | Step::Final(want) => {
                    let mut got = read(&mut client)?;
                    if matches!(step, Step::Final(_)) && got.status == 100 && *want != 100 {
                        got = read(&mut client)?;
                    }
                    if got.status != *want {
                        return Err(format!(
                            "step {i}: want {want}, got {} {:?} {:?} body {:?}",
                            got.status,
                            got.reason,
                            got.headers,
                            got.body_str()
                        ));
                    }
                    if got.status >= 200 {
                        last = Some(got);
                    }
                }
            }
        }
        let mut expected: Vec<Vec<u8>> = case.delivered.clone();
        match case.after {
            After::InSync => {
                if let Some(close) = last.as_ref().and_then(|r| r.header("connection"))
                    && close.eq_ignore_ascii_case("close")
                {
                    return Err(format!(
                        "expected the connection to stay open, got Connection: close ({last:?})"
                    ));
                }
                let probe = self.probes.next();
                client
                    .try_send(&cl_request(self.route, &probe).bytes())
                    .map_err(|e| format!("probe write on the same connection: {e}"))?;
                let answer = read(&mut client).map_err(|e| format!("probe: {e}"))?;
                if answer.status != 200 {
                    return Err(format!("probe answered {answer:?}: out of sync"));
                }
                if !client.buffered().is_empty() {
                    return Err(format!(
                        "bytes after the probe's response: {:?}",
                        String::from_utf8_lossy(client.buffered())
                    ));
                }
                expected.push(probe.mark);
            }
            After::Closed => {
                if let Some(r) = &last {
                    let close = r.header("connection").map(str::to_ascii_lowercase);
                    if close.as_deref() != Some("close") {
                        return Err(format!(
                            "final response before close lacks `Connection: close`: {r:?}"
                        ));
                    }
                }
                match client.try_read_response() {
                    Ok(None) => {}
                    Ok(Some(r)) => {
                        return Err(format!("expected close, got another response {r:?}"));
                    }
                    Err(e) => return Err(format!("expected close: {e}")),
                }
            }
        }
        // Barrier: acknowledged on a fresh connection, so everything forwarded before it has
        // reached the stand-in.
        let barrier = self.probes.next();
        let mut fresh = self.connect();
        fresh.send(&cl_request(self.route, &barrier).bytes());
        let answer = read(&mut fresh).map_err(|e| format!("barrier: {e}"))?;
        if answer.status != 200 {
            return Err(format!("barrier answered {answer:?}"));
        }
        expected.push(barrier.mark);
        let recorded = self.mock.requests();
        let new: Vec<Vec<u8>> = recorded
            .get(before..)
            .unwrap_or_default()
            .iter()
            .map(|r| self.route.mark_of(r))
            .collect();
        if new.contains(&follower.mark) {
            return Err("the request behind it was processed".into());
        }
        for mark in &expected {
            let n = new.iter().filter(|m| *m == mark).count();
            if n != 1 {
                return Err(format!(
                    "upload {:?} reached the stand-in {n} times",
                    preview(mark)
                ));
            }
        }
        if new.len() != expected.len() {
            let extra: Vec<String> = new
                .iter()
                .filter(|m| !expected.contains(m))
                .map(|m| preview(m))
                .collect();
            return Err(format!(
                "unexpected uploads reached the stand-in: {extra:?}"
            ));
        }
        Ok(())
    }
}

fn read(client: &mut Client) -> Result<Response, String> {
    match client.try_read_response() {
        Ok(Some(r)) => Ok(r),
        Ok(None) => Err("connection closed without a response".into()),
        Err(e) => Err(e),
    }
}

fn preview(bytes: &[u8]) -> String {
    let s = String::from_utf8_lossy(bytes);
    s.chars().take(60).collect()
}

fn assert_table(route: Route, driver: Driver) {
    let mut bench = Bench::start(route, driver);
    let cases = table(route, &mut Payloads::new(route, 0));
    assert!(cases.len() >= 100, "{} cases", cases.len());
    let failures = bench.run_all(cases);
    assert!(
        failures.is_empty(),
        "{} failing case(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
}

fn ingest_framing_table(driver: Driver) {
    assert_table(Route::Ingest, driver);
}

fn push_framing_table(driver: Driver) {
    assert_table(Route::Push, driver);
}

// ---------------------------------------------------------------------------------------------
// RFC outcomes pyrogate does not produce yet (fixes belong to src/server/conn.rs)

/// RFC 9112 §3.2.2: "a server MUST accept the absolute-form in requests", and an origin server
/// ignores the Host field in favour of the target's authority. Go serves these (the path comes
/// from `url.ParseRequestURI`). Today pyrogate routes on the whole target and answers 404.
fn absolute_form_targets_are_served(driver: Driver) {
    let mut failures = Vec::new();
    for route in [Route::Ingest, Route::Push] {
        let mut bench = Bench::start(route, driver);
        let addr = bench.gw.addr();
        let mut ps = Payloads::new(route, 500);
        let pq = route.target();
        let mut cases = Vec::new();
        for (label, target) in [
            (
                "with the gateway's own authority",
                format!("http://{addr}{pq}"),
            ),
            (
                "with another authority",
                format!("http://pyrogate.test{pq}"),
            ),
            (
                "with an upper-case scheme (RFC 3986 §3.1)",
                format!("HTTP://pyrogate.test{pq}"),
            ),
        ] {
            let p = ps.next();
            cases.push(Case::served(
                format!("absolute-form target {label} (RFC 9112 §3.2.2 MUST accept)"),
                cl_request(route, &p)
                    .line(format!("POST {target} HTTP/1.1\r\n").as_bytes())
                    .bytes(),
                &p,
            ));
        }
        let p = ps.next();
        cases.push(Case::served(
            "absolute-form target with a chunked body (RFC 9112 §3.2.2)",
            chunked_request(route, &p)
                .line(format!("POST http://{addr}{pq} HTTP/1.1\r\n").as_bytes())
                .bytes(),
            &p,
        ));
        failures.extend(bench.run_all(cases));
    }
    assert!(
        failures.is_empty(),
        "{} failing case(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// RFC 9112 §9.3: an HTTP/1.0 request with `Connection: keep-alive` either gets
/// `Connection: keep-alive` in the answer and the connection stays open, or the connection is
/// closed after the answer (Go answers `Connection: keep-alive` and keeps it open). Today
/// pyrogate keeps the connection open without saying so, which an HTTP/1.0 client cannot know.
fn http10_keep_alive_is_acknowledged_or_closed(driver: Driver) {
    let mut failures = Vec::new();
    for route in [Route::Ingest, Route::Push] {
        let bench = Bench::start(route, driver);
        let mut ps = Payloads::new(route, 700);
        for keep_alive in ["keep-alive", "Keep-Alive"] {
            let p = ps.next();
            let mut client = bench.connect();
            client.send(
                &Req::post10(route)
                    .field(format!("Connection: {keep_alive}"))
                    .cl(p.body.len())
                    .body(&p.body)
                    .bytes(),
            );
            let response = match read(&mut client) {
                Ok(r) => r,
                Err(e) => {
                    failures.push(format!("[{route:?}] {keep_alive}: {e}"));
                    continue;
                }
            };
            if response.status != 200 {
                failures.push(format!("[{route:?}] {keep_alive}: {response:?}"));
                continue;
            }
            let connection = response
                .header("connection")
                .map(str::to_ascii_lowercase)
                .unwrap_or_default();
            match connection.as_str() {
                "keep-alive" => {
                    let probe = ps.next();
                    client.send(
                        &Req::post10(route)
                            .field("Connection: keep-alive")
                            .cl(probe.body.len())
                            .body(&probe.body)
                            .bytes(),
                    );
                    match read(&mut client) {
                        Ok(r) if r.status == 200 => {}
                        other => failures.push(format!(
                            "[{route:?}] {keep_alive}: acknowledged, but the next request got {other:?}"
                        )),
                    }
                }
                "close" => match client.try_read_response() {
                    Ok(None) => {}
                    other => failures.push(format!(
                        "[{route:?}] {keep_alive}: said close, then {other:?}"
                    )),
                },
                other => failures.push(format!(
                    "[{route:?}] HTTP/1.0 `Connection: {keep_alive}` answered with Connection: {other:?} (RFC 9112 §9.3: must say keep-alive and stay open, or close); response {response:?}"
                )),
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} failing case(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
}

both_drivers!(
    ingest_framing_table,
    push_framing_table,
    absolute_form_targets_are_served,
    http10_keep_alive_is_acknowledged_or_closed,
);
