//! Builder: syntax tree to the typed [`Config`], with all validation.
//!
//! Owns: which blocks and attributes exist where, their types and defaults (Alloy's, from
//! `alloy-behaviour.md` §1.5 and §3.1, plus the pyrogate extensions), cross-component checks
//! (duplicate labels, `forward_to` resolution, listen-address clashes) and every message about
//! them. The `pyroscope.write` half lives in `build_write`. Does not own syntax or expression
//! meaning (see `parser`, `eval`). Pure, cold path; collects every problem.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use super::Environment;
use super::ast::{Attribute, Block, Body, ExprKind, Stmt};
use super::diag::{Pos, Sink};
use super::eval::{Evaluator, V, Val};
use super::model::*;
use super::values::{is_header_name, parse_duration, parse_size};

pub(crate) const RECEIVE_HTTP: &str = "pyroscope.receive_http";
pub(crate) const WRITE: &str = "pyroscope.write";

/// Builds the configuration; `None` when any error was reported.
pub(crate) fn build(body: &Body, env: &dyn Environment, sink: &mut Sink<'_>) -> Option<Config> {
    let mut receivers_src: Vec<&Block> = Vec::new();
    let mut writers_src: Vec<&Block> = Vec::new();
    let mut logging_src: Option<&Block> = None;
    let mut gateway_src: Option<&Block> = None;
    let mut seen: HashMap<(String, String), u32> = HashMap::new();

    for item in &body.items {
        match &item.stmt {
            Stmt::Comment(_) => {}
            Stmt::Attr(a) => sink.error(
                a.name_span.start,
                format!(
                    "attribute {:?} is not allowed at the top level; it belongs inside a block",
                    a.name
                ),
            ),
            Stmt::Block(b) => match b.name.as_str() {
                RECEIVE_HTTP | WRITE => {
                    let Some(label) = &b.label else {
                        sink.error(
                            b.name_span.start,
                            format!(
                                "component {} needs a label, e.g. {} \"default\" {{ ... }}",
                                b.name, b.name
                            ),
                        );
                        continue;
                    };
                    let at = b.label_span.map_or(b.name_span.start, |s| s.start);
                    if !is_identifier(label) {
                        sink.error(
                            at,
                            format!(
                                "component label {label:?} must be a valid identifier (letters, digits and _, not starting with a digit)"
                            ),
                        );
                        continue;
                    }
                    let key = (b.name.clone(), label.clone());
                    if let Some(line) = seen.get(&key) {
                        sink.error(
                            at,
                            format!(
                                "{} {label:?} is already declared at line {line}",
                                b.name
                            ),
                        );
                        continue;
                    }
                    seen.insert(key, b.name_span.start.line);
                    if b.name == RECEIVE_HTTP {
                        receivers_src.push(b);
                    } else {
                        writers_src.push(b);
                    }
                }
                "logging" | "pyrogate" => {
                    if b.label.is_some() {
                        let at = b.label_span.map_or(b.name_span.start, |s| s.start);
                        sink.error(at, format!("block {} does not take a label", b.name));
                    }
                    let slot = if b.name == "logging" {
                        &mut logging_src
                    } else {
                        &mut gateway_src
                    };
                    match slot {
                        Some(first) => sink.error(
                            b.name_span.start,
                            format!(
                                "block {} may only be given once (first at line {})",
                                b.name, first.name_span.start.line
                            ),
                        ),
                        None => *slot = Some(b),
                    }
                }
                name if name.contains('.') => sink.error(
                    b.name_span.start,
                    format!(
                        "component {name} is not supported: pyrogate supports only the {RECEIVE_HTTP} and {WRITE} components"
                    ),
                ),
                name => sink.error(
                    b.name_span.start,
                    format!(
                        "unknown block {name:?} at the top level: pyrogate supports logging, pyrogate, {RECEIVE_HTTP} and {WRITE}"
                    ),
                ),
            },
        }
    }

    let writer_labels: HashSet<String> =
        writers_src.iter().filter_map(|b| b.label.clone()).collect();
    let receiver_labels: HashSet<String> = receivers_src
        .iter()
        .filter_map(|b| b.label.clone())
        .collect();
    let mut cx = Cx {
        ev: Evaluator {
            env,
            writers: &writer_labels,
            receivers: &receiver_labels,
        },
        sink,
    };

    let writers: Vec<Writer> = writers_src.iter().filter_map(|b| cx.writer(b)).collect();
    let writer_index: HashMap<&str, usize> = writers
        .iter()
        .enumerate()
        .map(|(i, w)| (w.label.as_str(), i))
        .collect();

    let mut receivers = Vec::new();
    let mut listen_at: Vec<(SocketAddr, Pos, &Block)> = Vec::new();
    for b in &receivers_src {
        if let Some((r, pos)) = cx.receiver(b, &writer_index) {
            let addr = r.http.listen;
            if addr.port() != 0 {
                if let Some((_, _, first)) =
                    listen_at.iter().find(|(other, _, _)| clashes(*other, addr))
                {
                    cx.sink.error(
                        pos,
                        format!(
                            "listen address {addr} is already used by {} (line {})",
                            first.display_name(),
                            first.name_span.start.line
                        ),
                    );
                }
                listen_at.push((addr, pos, b));
            }
            receivers.push(r);
        }
    }

    let logging = logging_src.map(|b| cx.logging(b)).unwrap_or_default();
    let gateway = gateway_src.map(|b| cx.gateway(b)).unwrap_or_default();

    if cx.sink.has_errors() {
        return None;
    }
    Some(Config {
        receivers,
        writers,
        logging,
        gateway,
    })
}

/// Two listeners clash when they share a port and an address, or one of them listens on every
/// address of the same family.
fn clashes(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() == b.port()
        && (a.ip() == b.ip()
            || (a.is_ipv4() == b.is_ipv4() && (a.ip().is_unspecified() || b.ip().is_unspecified())))
}

/// Alloy's identifier rule for component labels.
fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c == '_' || c.is_alphabetic())
        && chars.all(|c| c == '_' || c.is_alphanumeric())
}

/// The attributes and blocks of one block body, with which ones were looked at; whatever is
/// left unread when [`Reader::finish`] runs is unknown and reported.
pub(crate) struct Reader<'b> {
    /// Where we are, for messages: `pyroscope.write "backend" > endpoint`.
    pub path: String,
    /// The block's name position, for "missing required attribute".
    pub at: Pos,
    attrs: Vec<(&'b Attribute, bool)>,
    blocks: Vec<(&'b Block, bool)>,
}

impl<'b> Reader<'b> {
    pub fn new(path: String, block: &'b Block, sink: &mut Sink<'_>) -> Self {
        let mut attrs: Vec<(&'b Attribute, bool)> = Vec::new();
        let mut blocks = Vec::new();
        for item in &block.body.items {
            match &item.stmt {
                Stmt::Attr(a) => {
                    if let Some((first, _)) = attrs.iter().find(|(f, _)| f.name == a.name) {
                        sink.error(
                            a.name_span.start,
                            format!(
                                "attribute {:?} may only be provided once (first at line {})",
                                a.name, first.name_span.start.line
                            ),
                        );
                    } else {
                        attrs.push((a, false));
                    }
                }
                Stmt::Block(b) => blocks.push((b, false)),
                Stmt::Comment(_) => {}
            }
        }
        Reader {
            path,
            at: block.name_span.start,
            attrs,
            blocks,
        }
    }

    /// Looks up (and marks as known) an attribute.
    pub fn attr(&mut self, name: &str) -> Option<&'b Attribute> {
        let slot = self.attrs.iter_mut().find(|(a, _)| a.name == name)?;
        slot.1 = true;
        Some(slot.0)
    }

    /// All nested blocks called `name`, marked as known. Labels are not allowed on them.
    pub fn blocks(&mut self, name: &str, sink: &mut Sink<'_>) -> Vec<&'b Block> {
        let mut out = Vec::new();
        for (b, used) in self.blocks.iter_mut() {
            if b.name == name {
                *used = true;
                if let Some(span) = b.label_span {
                    sink.error(span.start, format!("block {name} does not take a label"));
                }
                out.push(*b);
            }
        }
        out
    }

    /// The nested block called `name`, which may appear at most once.
    pub fn block(&mut self, name: &str, sink: &mut Sink<'_>) -> Option<&'b Block> {
        let all = self.blocks(name, sink);
        if let [first, rest @ ..] = all.as_slice() {
            for extra in rest {
                sink.error(
                    extra.name_span.start,
                    format!(
                        "block {name} may only be given once in {} (first at line {})",
                        self.path, first.name_span.start.line
                    ),
                );
            }
        }
        all.first().copied()
    }

    /// Reports every attribute and block nobody asked for.
    pub fn finish(self, sink: &mut Sink<'_>) {
        for (a, used) in &self.attrs {
            if !used {
                sink.error(
                    a.name_span.start,
                    format!("unknown attribute {:?} in {}", a.name, self.path),
                );
            }
        }
        for (b, used) in &self.blocks {
            if !used {
                sink.error(
                    b.name_span.start,
                    format!("unknown block {:?} in {}", b.name, self.path),
                );
            }
        }
    }
}

/// Evaluation plus diagnostics: the typed getters every block builder uses. Getters return
/// `None` when the attribute is absent or invalid (invalid ones are reported).
pub(crate) struct Cx<'e, 'k, 's> {
    pub ev: Evaluator<'e>,
    pub sink: &'k mut Sink<'s>,
}

impl Cx<'_, '_, '_> {
    pub fn eval(&mut self, a: &Attribute) -> Option<Val> {
        self.ev.eval(&a.value, self.sink)
    }

    pub fn type_error(&mut self, name: &str, want: &str, got: &Val) {
        self.sink.error(
            got.span.start,
            format!("{name}: expected {want}, got {}", got.kind.type_name()),
        );
    }

    /// Reports a missing required attribute.
    pub fn require(&mut self, r: &Reader<'_>, name: &str, present: bool) {
        if !present {
            self.sink.error(
                r.at,
                format!("missing required attribute {name:?} in {}", r.path),
            );
        }
    }

    /// A string value; warns when it is empty because `env()` read an unset variable.
    pub fn val_string(&mut self, name: &str, v: Val) -> Option<String> {
        match v.kind {
            V::Str { s, unset_env } => {
                if s.is_empty()
                    && let Some(var) = unset_env.first()
                {
                    self.sink.warn(
                        v.span.start,
                        format!("{name} is empty because environment variable {var} is not set"),
                    );
                }
                Some(s)
            }
            _ => {
                self.type_error(name, "string", &v);
                None
            }
        }
    }

    pub fn string(&mut self, r: &mut Reader<'_>, name: &str) -> Option<String> {
        let a = r.attr(name)?;
        let v = self.eval(a)?;
        self.val_string(name, v)
    }

    /// A string that must be one of `allowed`.
    pub fn choice<T: Copy>(
        &mut self,
        r: &mut Reader<'_>,
        name: &str,
        allowed: &[(&str, T)],
    ) -> Option<T> {
        let a = r.attr(name)?;
        let v = self.eval(a)?;
        let span = v.span;
        let s = self.val_string(name, v)?;
        if let Some((_, t)) = allowed.iter().find(|(k, _)| *k == s) {
            return Some(*t);
        }
        let names: Vec<String> = allowed.iter().map(|(k, _)| format!("{k:?}")).collect();
        self.sink.error(
            span.start,
            format!("{name} must be one of {}, got {s:?}", names.join(", ")),
        );
        None
    }

    pub fn secret(&mut self, r: &mut Reader<'_>, name: &str) -> Option<Secret> {
        self.string(r, name).map(Secret)
    }

    pub fn path(&mut self, r: &mut Reader<'_>, name: &str) -> Option<PathBuf> {
        self.string(r, name).map(PathBuf::from)
    }

    pub fn bool(&mut self, r: &mut Reader<'_>, name: &str) -> Option<bool> {
        let a = r.attr(name)?;
        let v = self.eval(a)?;
        match v.kind {
            V::Bool(b) => Some(b),
            _ => {
                self.type_error(name, "bool", &v);
                None
            }
        }
    }

    /// An integer in `min..=max`; `range_msg` overrides the default range message.
    pub fn int(
        &mut self,
        r: &mut Reader<'_>,
        name: &str,
        min: i64,
        max: i64,
        range_msg: Option<&str>,
    ) -> Option<i64> {
        let a = r.attr(name)?;
        let v = self.eval(a)?;
        let i = self.val_int(name, &v)?;
        if i < min || i > max {
            let msg = match range_msg {
                Some(m) => format!("{m}, got {i}"),
                None if max == i64::MAX => format!("{name} must be at least {min}, got {i}"),
                None => format!("{name} must be between {min} and {max}, got {i}"),
            };
            self.sink.error(v.span.start, msg);
            return None;
        }
        Some(i)
    }

    fn val_int(&mut self, name: &str, v: &Val) -> Option<i64> {
        match v.kind {
            V::Int(i) => Some(i),
            V::Float(f) => {
                self.sink.error(
                    v.span.start,
                    format!("{name}: expected a whole number, got {f}"),
                );
                None
            }
            _ => {
                self.type_error(name, "number", v);
                None
            }
        }
    }

    pub fn duration(&mut self, r: &mut Reader<'_>, name: &str) -> Option<Duration> {
        let a = r.attr(name)?;
        let v = self.eval(a)?;
        let span = v.span;
        let s = self.val_string(name, v)?;
        match parse_duration(&s) {
            Ok(d) => Some(d),
            Err(e) => {
                self.sink.error(span.start, format!("{name}: {e}"));
                None
            }
        }
    }

    /// A duration that must be greater than zero.
    pub fn positive_duration(&mut self, r: &mut Reader<'_>, name: &str) -> Option<Duration> {
        let at = r.attr(name).map(|a| a.value.span.start);
        let d = self.duration(r, name)?;
        if d.is_zero() {
            if let Some(at) = at {
                self.sink
                    .error(at, format!("{name} must be greater than zero"));
            }
            return None;
        }
        Some(d)
    }

    /// A byte count: a positive integer or a size string such as "256MiB".
    pub fn size(&mut self, r: &mut Reader<'_>, name: &str) -> Option<u64> {
        let a = r.attr(name)?;
        let v = self.eval(a)?;
        let span = v.span;
        let n = match v.kind {
            V::Str { s, .. } => match parse_size(&s) {
                Ok(n) => n,
                Err(e) => {
                    self.sink.error(span.start, format!("{name}: {e}"));
                    return None;
                }
            },
            V::Int(i) => u64::try_from(i).unwrap_or(0),
            _ => {
                self.type_error(name, "number or size string", &v);
                return None;
            }
        };
        if n == 0 {
            self.sink
                .error(span.start, format!("{name} must be greater than zero"));
            return None;
        }
        Some(n)
    }

    pub fn string_list(&mut self, r: &mut Reader<'_>, name: &str) -> Option<Vec<(String, Pos)>> {
        let a = r.attr(name)?;
        let v = self.eval(a)?;
        let V::List(items) = v.kind else {
            self.type_error(name, "list(string)", &v);
            return None;
        };
        let mut out = Vec::new();
        for item in items {
            let at = item.span.start;
            out.push((self.val_string(name, item)?, at));
        }
        Some(out)
    }

    /// An object whose values are strings (Alloy's `map(string)`), in the order written.
    pub fn string_map(
        &mut self,
        r: &mut Reader<'_>,
        name: &str,
    ) -> Option<Vec<(String, String, Pos)>> {
        let a = r.attr(name)?;
        let v = self.eval(a)?;
        let V::Object(fields) = v.kind else {
            self.type_error(name, "map(string)", &v);
            return None;
        };
        let mut out = Vec::new();
        let mut ok = true;
        for (k, fv) in fields {
            let at = fv.span.start;
            match self.val_string(&format!("{name}[{k:?}]"), fv) {
                Some(s) => out.push((k, s, at)),
                None => ok = false,
            }
        }
        ok.then_some(out)
    }

    /// An object whose values are lists of strings (Alloy's `map(list(secret))`).
    pub fn list_map(
        &mut self,
        r: &mut Reader<'_>,
        name: &str,
    ) -> Option<Vec<(String, Vec<String>, Pos)>> {
        let a = r.attr(name)?;
        let v = self.eval(a)?;
        let V::Object(fields) = v.kind else {
            self.type_error(name, "map(list(secret))", &v);
            return None;
        };
        let mut out = Vec::new();
        let mut ok = true;
        for (k, fv) in fields {
            let at = fv.span.start;
            let V::List(items) = fv.kind else {
                self.type_error(&format!("{name}[{k:?}]"), "list(secret)", &fv);
                ok = false;
                continue;
            };
            let mut vals = Vec::new();
            for item in items {
                match self.val_string(&format!("{name}[{k:?}]"), item) {
                    Some(s) => vals.push(s),
                    None => ok = false,
                }
            }
            out.push((k, vals, at));
        }
        ok.then_some(out)
    }

    /// Reports "at most one of A and B" when both attributes are set; returns whether both were.
    pub fn exclusive(&mut self, r: &mut Reader<'_>, a: &str, b: &str, msg: &str) -> bool {
        match (r.attr(a), r.attr(b)) {
            (Some(x), Some(y)) => {
                let later = if x.name_span.start > y.name_span.start {
                    x
                } else {
                    y
                };
                self.sink.error(later.name_span.start, msg.to_string());
                true
            }
            _ => false,
        }
    }

    /// Accepts a block pyrogate does not act on, with a warning.
    pub fn ignored_block(&mut self, r: &mut Reader<'_>, name: &str, why: &str) {
        for b in r.blocks(name, self.sink) {
            self.sink.warn(
                b.name_span.start,
                format!("block {name} in {} is ignored by pyrogate: {why}", r.path),
            );
        }
    }

    /// Accepts an attribute pyrogate does not act on (after checking its type), with a warning.
    pub fn ignored_duration(&mut self, r: &mut Reader<'_>, name: &str, why: &str) {
        let at = r.attr(name).map(|a| a.name_span.start);
        if let Some(at) = at
            && self.duration(r, name).is_some()
        {
            self.sink.warn(
                at,
                format!("{name} in {} is ignored by pyrogate: {why}", r.path),
            );
        }
    }

    fn receiver(&mut self, b: &Block, writers: &HashMap<&str, usize>) -> Option<(Receiver, Pos)> {
        let label = b.label.clone().unwrap_or_default();
        let mut r = Reader::new(b.display_name(), b, self.sink);

        let fwd_attr = r.attr("forward_to");
        self.require(&r, "forward_to", fwd_attr.is_some());
        let mut forward_to = Vec::new();
        if let Some(a) = fwd_attr {
            // A list literal is evaluated element by element so that one bad reference does
            // not hide the problems of the others.
            let items = match &a.value.kind {
                ExprKind::List { elems, .. } => Some(
                    elems
                        .iter()
                        .filter_map(|el| self.ev.eval(&el.value, self.sink))
                        .collect(),
                ),
                _ => match self.eval(a) {
                    Some(Val {
                        kind: V::List(items),
                        ..
                    }) => Some(items),
                    Some(v) => {
                        self.type_error("forward_to", "list(ProfilesReceiver)", &v);
                        None
                    }
                    None => None,
                },
            };
            for item in items.unwrap_or_default() {
                match item.kind {
                    V::Receiver(l) => {
                        if let Some(&i) = writers.get(l.as_str())
                            && !forward_to.contains(&i)
                        {
                            forward_to.push(i);
                        }
                    }
                    V::Component(path) => self.sink.error(
                        item.span.start,
                        format!("{path} is not a receiver; forward_to takes {path}.receiver"),
                    ),
                    _ => self.type_error("forward_to element", "receiver", &item),
                }
            }
        }
        let graceful_shutdown_timeout = self
            .duration(&mut r, "graceful_shutdown_timeout")
            .unwrap_or(DEFAULT_GRACEFUL_SHUTDOWN_TIMEOUT);
        self.ignored_duration(
            &mut r,
            "debug_info_upload_timeout",
            "it applies to eBPF debug-info uploads, which pyrogate does not receive",
        );
        let acknowledge = self
            .choice(
                &mut r,
                "acknowledge",
                &[
                    ("delivered", AckMode::Delivered),
                    ("enqueued", AckMode::Enqueued),
                ],
            )
            .unwrap_or(AckMode::Delivered);
        let mut forward_headers: Vec<String> = Vec::new();
        for (h, at) in self
            .string_list(&mut r, "forward_headers")
            .unwrap_or_default()
        {
            if !is_header_name(&h) {
                self.sink.error(
                    at,
                    format!("forward_headers: {h:?} is not a valid HTTP header name"),
                );
                continue;
            }
            let lc = h.to_ascii_lowercase();
            if !forward_headers.contains(&lc) {
                forward_headers.push(lc);
            }
        }
        let http_block = r.block("http", self.sink);
        let (http, listen_pos) = match http_block {
            Some(hb) => self.http_server(hb, &r.path),
            None => (default_http_server(), b.name_span.start),
        };
        self.ignored_block(
            &mut r,
            "grpc",
            "pyroscope.receive_http serves no gRPC services",
        );
        r.finish(self.sink);
        Some((
            Receiver {
                label,
                forward_to,
                graceful_shutdown_timeout,
                http: http?,
                acknowledge,
                forward_headers,
            },
            listen_pos,
        ))
    }

    /// The `http` block; also returns where to point listen-address clash errors.
    fn http_server(&mut self, b: &Block, parent: &str) -> (Option<HttpServer>, Pos) {
        let mut r = Reader::new(format!("{parent} > http"), b, self.sink);
        let mut h = default_http_server().unwrap_or_else(fallback_http_server);
        let mut ok = true;
        let addr_pos = r.attr("listen_address").map(|a| a.value.span.start);
        if let Some(a) = self.string(&mut r, "listen_address") {
            match parse_listen_address(&a) {
                Some(ip) => h.listen.set_ip(ip),
                None => {
                    ok = false;
                    self.sink.error(
                        addr_pos.unwrap_or(r.at),
                        format!(
                            "listen_address must be an IP address (or \"\" for all interfaces), got {a:?}"
                        ),
                    );
                }
            }
        }
        let port_pos = r.attr("listen_port").map(|a| a.name_span.start);
        let port_present = port_pos.is_some();
        match self.int(
            &mut r,
            "listen_port",
            0,
            65535,
            Some("listen_port must be between 1 and 65535 (or 0 to pick a free port)"),
        ) {
            Some(p) => h.listen.set_port(u16::try_from(p).unwrap_or(0)),
            None => ok &= !port_present,
        }
        if let Some(n) = self.int(&mut r, "conn_limit", 0, i64::MAX, None) {
            h.conn_limit = usize::try_from(n).unwrap_or(usize::MAX);
        }
        if let Some(d) = self.duration(&mut r, "server_read_timeout") {
            h.server_read_timeout = d;
        }
        if let Some(d) = self.duration(&mut r, "server_write_timeout") {
            h.server_write_timeout = d;
        }
        if let Some(d) = self.duration(&mut r, "server_idle_timeout") {
            h.server_idle_timeout = d;
        }
        if let Some(n) = self.int(&mut r, "max_request_head_bytes", 1, i64::MAX, None) {
            h.max_head_bytes = usize::try_from(n).unwrap_or(usize::MAX);
        }
        if let Some(n) = self.int(&mut r, "max_request_headers", 1, i64::MAX, None) {
            h.max_headers = usize::try_from(n).unwrap_or(usize::MAX);
        }
        if let Some(n) = self.size(&mut r, "max_request_body_bytes") {
            h.max_body_bytes = n;
        }
        if let Some(tb) = r.block("tls", self.sink) {
            h.tls = Some(self.server_tls(tb, &r.path));
        }
        self.ignored_block(
            &mut r,
            "http2",
            "pyrogate serves HTTP/1.1 only (as Alloy does unless http2 is enabled)",
        );
        let at = port_pos.or(addr_pos).unwrap_or(r.at);
        r.finish(self.sink);
        (ok.then_some(h), at)
    }

    fn server_tls(&mut self, b: &Block, parent: &str) -> ServerTls {
        let mut r = Reader::new(format!("{parent} > tls"), b, self.sink);
        self.exclusive(
            &mut r,
            "cert_pem",
            "cert_file",
            "at most one of cert_pem and cert_file must be configured",
        );
        self.exclusive(
            &mut r,
            "key_pem",
            "key_file",
            "at most one of key_pem and key_file must be configured",
        );
        let t = ServerTls {
            cert_pem: self.secret(&mut r, "cert_pem"),
            cert_file: self.path(&mut r, "cert_file"),
            key_pem: self.secret(&mut r, "key_pem"),
            key_file: self.path(&mut r, "key_file"),
            client_auth_type: self
                .choice(
                    &mut r,
                    "client_auth_type",
                    &[
                        ("NoClientCert", None),
                        ("RequestClientCert", Some("RequestClientCert")),
                        ("RequireAnyClientCert", Some("RequireAnyClientCert")),
                        ("VerifyClientCertIfGiven", Some("VerifyClientCertIfGiven")),
                        (
                            "RequireAndVerifyClientCert",
                            Some("RequireAndVerifyClientCert"),
                        ),
                    ],
                )
                .flatten()
                .map(str::to_string),
            client_ca_file: self.path(&mut r, "client_ca_file"),
            client_ca: self.string(&mut r, "client_ca"),
            min_version: self.tls_version(&mut r),
        };
        if r.attr("cipher_suites").is_some() {
            let at = r.attr("cipher_suites").map_or(r.at, |a| a.name_span.start);
            self.sink.warn(
                at,
                format!(
                    "cipher_suites in {} is ignored by pyrogate: the TLS library's safe defaults are used",
                    r.path
                ),
            );
        }
        r.finish(self.sink);
        t
    }

    pub fn tls_version(&mut self, r: &mut Reader<'_>) -> Option<TlsVersion> {
        self.choice(
            r,
            "min_version",
            &[
                ("TLS10", TlsVersion::Tls10),
                ("TLS11", TlsVersion::Tls11),
                ("TLS12", TlsVersion::Tls12),
                ("TLS13", TlsVersion::Tls13),
            ],
        )
    }

    fn logging(&mut self, b: &Block) -> Logging {
        let mut r = Reader::new("logging".to_string(), b, self.sink);
        let d = Logging::default();
        let level = self
            .choice(
                &mut r,
                "level",
                &[
                    ("debug", LogLevel::Debug),
                    ("info", LogLevel::Info),
                    ("warn", LogLevel::Warn),
                    ("error", LogLevel::Error),
                ],
            )
            .unwrap_or(d.level);
        let format = self
            .choice(
                &mut r,
                "format",
                &[("logfmt", LogFormat::Logfmt), ("json", LogFormat::Json)],
            )
            .unwrap_or(d.format);
        r.finish(self.sink);
        Logging { level, format }
    }

    fn gateway(&mut self, b: &Block) -> Gateway {
        let mut r = Reader::new("pyrogate".to_string(), b, self.sink);
        let d = Gateway::default();
        let g = Gateway {
            max_inflight_bytes: self
                .size(&mut r, "max_inflight_bytes")
                .unwrap_or(d.max_inflight_bytes),
            queue_wait_timeout: self
                .duration(&mut r, "queue_wait_timeout")
                .unwrap_or(d.queue_wait_timeout),
            dns_refresh_interval: self
                .positive_duration(&mut r, "dns_refresh_interval")
                .unwrap_or(d.dns_refresh_interval),
        };
        r.finish(self.sink);
        g
    }
}

/// `""` is every interface; otherwise an IP literal (IPv6 with or without brackets) or
/// `localhost`. Other names would need DNS, which the pure config layer does not do.
fn parse_listen_address(s: &str) -> Option<IpAddr> {
    if s.is_empty() {
        return Some(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    }
    if s == "localhost" {
        return Some(IpAddr::V4(Ipv4Addr::LOCALHOST));
    }
    let bare = s
        .strip_prefix('[')
        .and_then(|x| x.strip_suffix(']'))
        .unwrap_or(s);
    bare.parse().ok()
}

fn default_http_server() -> Option<HttpServer> {
    Some(fallback_http_server())
}

/// Alloy's `http` defaults for `pyroscope.receive_http` plus pyrogate's limits.
fn fallback_http_server() -> HttpServer {
    HttpServer {
        listen: SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), DEFAULT_LISTEN_PORT),
        conn_limit: DEFAULT_CONN_LIMIT,
        server_read_timeout: DEFAULT_SERVER_READ_TIMEOUT,
        server_write_timeout: DEFAULT_SERVER_WRITE_TIMEOUT,
        server_idle_timeout: DEFAULT_SERVER_IDLE_TIMEOUT,
        tls: None,
        max_head_bytes: DEFAULT_MAX_HEAD_BYTES,
        max_headers: DEFAULT_MAX_HEADERS,
        max_body_bytes: DEFAULT_MAX_BODY_BYTES,
    }
}
