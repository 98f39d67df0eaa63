//! Builder: syntax tree to the typed [`Config`], with all validation.
//!
//! Owns: which blocks and attributes exist where, their types and defaults (Alloy's: grafana/alloy
//! `internal/component/common/net/config.go` `DefaultServerConfig` with the `receive_http.go`
//! override for `pyroscope.receive_http`, `internal/component/pyroscope/write/write.go`
//! `GetDefaultEndpointOptions` for `pyroscope.write`; plus the pyrogate extensions),
//! cross-component checks (duplicate labels, `forward_to` resolution, listen-address clashes)
//! and every message about them. The `pyroscope.write` half lives in `build_write`, the typed
//! getters in `reader`. Does not own syntax or expression meaning (see `parser`, `eval`). Pure,
//! cold path; collects every problem.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// Headers `forward_headers` may not name: hop-by-hop headers (RFC 9110 §7.6.1) and the ones
/// pyrogate sets per upstream request (framing, `Host`).
const NOT_FORWARDABLE: [&str; 11] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "content-length",
    "host",
];

use super::Environment;
use super::ast::{Block, Body, Stmt};
use super::build_relabel::{Targets, check_cycles};
use super::diag::{Pos, Sink};
use super::eval::Evaluator;
use super::model::*;
use super::reader::{Cx, Reader};
use super::values::is_header_name;

pub(crate) const RECEIVE_HTTP: &str = "pyroscope.receive_http";
pub(crate) const WRITE: &str = "pyroscope.write";
pub(crate) const RELABEL: &str = "pyroscope.relabel";

/// Builds the configuration; `None` when any error was reported.
pub(crate) fn build(body: &Body, env: &dyn Environment, sink: &mut Sink<'_>) -> Option<Config> {
    let mut receivers_src: Vec<&Block> = Vec::new();
    let mut writers_src: Vec<&Block> = Vec::new();
    let mut relabels_src: Vec<&Block> = Vec::new();
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
                RECEIVE_HTTP | WRITE | RELABEL => {
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
                    match b.name.as_str() {
                        RECEIVE_HTTP => receivers_src.push(b),
                        WRITE => writers_src.push(b),
                        _ => relabels_src.push(b),
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
                        "component {name} is not supported: pyrogate supports only the {RECEIVE_HTTP}, {RELABEL} and {WRITE} components"
                    ),
                ),
                name => sink.error(
                    b.name_span.start,
                    format!(
                        "unknown block {name:?} at the top level: pyrogate supports logging, pyrogate, {RECEIVE_HTTP}, {RELABEL} and {WRITE}"
                    ),
                ),
            },
        }
    }

    let writer_labels: HashSet<String> =
        writers_src.iter().filter_map(|b| b.label.clone()).collect();
    let relabel_labels: HashSet<String> = relabels_src
        .iter()
        .filter_map(|b| b.label.clone())
        .collect();
    let receiver_labels: HashSet<String> = receivers_src
        .iter()
        .filter_map(|b| b.label.clone())
        .collect();
    let mut cx = Cx {
        ev: Evaluator {
            env,
            writers: &writer_labels,
            relabels: &relabel_labels,
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
    let targets = Targets {
        writers: writer_index,
        relabels: relabels_src
            .iter()
            .enumerate()
            .filter_map(|(i, b)| Some((b.label.as_deref()?, i)))
            .collect(),
    };
    let relabels: Vec<Option<(Relabel, Vec<Pos>)>> = relabels_src
        .iter()
        .map(|b| cx.relabel(b, &targets))
        .collect();

    let mut receivers = Vec::new();
    let mut listen_at: Vec<(SocketAddr, Pos, &Block)> = Vec::new();
    for b in &receivers_src {
        if let Some((r, pos)) = cx.receiver(b, &targets) {
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

    check_cycles(&relabels, cx.sink);
    if cx.sink.has_errors() {
        return None;
    }
    let relabels: Vec<(Relabel, Vec<Pos>)> = relabels.into_iter().collect::<Option<_>>()?;
    Some(Config {
        receivers,
        writers,
        relabels: relabels.into_iter().map(|(r, _)| r).collect(),
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

impl Cx<'_, '_, '_> {
    fn receiver(&mut self, b: &Block, targets: &Targets<'_>) -> Option<(Receiver, Pos)> {
        let label = b.label.clone().unwrap_or_default();
        let mut r = Reader::new(b.display_name(), b, self.sink);

        let (forward_to, _) = self.forward_to(&mut r, targets);
        let graceful_shutdown_timeout = self
            .duration(&mut r, "graceful_shutdown_timeout")
            .unwrap_or(DEFAULT_GRACEFUL_SHUTDOWN_TIMEOUT);
        let debug_info_upload_timeout = self
            .positive_duration(&mut r, "debug_info_upload_timeout")
            .unwrap_or(DEFAULT_DEBUG_INFO_UPLOAD_TIMEOUT);
        let debug_info_max_upload_bytes = self
            .size(&mut r, "debug_info_max_upload_bytes")
            .unwrap_or(DEFAULT_DEBUG_INFO_MAX_UPLOAD_BYTES);
        let debug_info_destinations = self
            .choice(
                &mut r,
                "debug_info_destinations",
                &[
                    ("first", DebugInfoDestinations::First),
                    ("all", DebugInfoDestinations::All),
                ],
            )
            .unwrap_or(DebugInfoDestinations::First);
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
            if NOT_FORWARDABLE.contains(&lc.as_str()) {
                self.sink.error(
                    at,
                    format!(
                        "forward_headers: {h:?} cannot be forwarded: hop-by-hop and framing headers \
                         are set by pyrogate for each upstream connection"
                    ),
                );
                continue;
            }
            if !forward_headers.contains(&lc) {
                forward_headers.push(lc);
            }
        }
        let client_auth = r
            .block("client_auth", self.sink)
            .and_then(|b| self.client_auth(b, &r.path));
        let http_block = r.block("http", self.sink);
        let (http, listen_pos) = match http_block {
            Some(hb) => self.http_server(hb, &r.path),
            None => (Some(fallback_http_server()), b.name_span.start),
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
                client_auth,
                debug_info_upload_timeout,
                debug_info_max_upload_bytes,
                debug_info_destinations,
            },
            listen_pos,
        ))
    }

    /// `client_auth` (*pyrogate extension*): exactly one of `basic { }`, `bearer_token`,
    /// `bearer_token_file`; `None` when invalid (reported).
    fn client_auth(&mut self, b: &Block, parent: &str) -> Option<ClientAuth> {
        let mut r = Reader::new(format!("{parent} > client_auth"), b, self.sink);
        let basic_block = r.block("basic", self.sink);
        let token = self
            .secret(&mut r, "bearer_token")
            .map(SecretSource::Inline);
        let token_file = self
            .path(&mut r, "bearer_token_file")
            .map(SecretSource::File);
        let path = r.path.clone();
        let basic = basic_block.map(|bb| {
            let mut br = Reader::new(format!("{path} > basic"), bb, self.sink);
            let both = self.exclusive(
                &mut br,
                "password",
                "password_file",
                "at most one of password & password_file must be configured",
            );
            let has_user = br.attr("username").is_some();
            self.require(&br, "username", has_user);
            let has_pw = br.attr("password").is_some() || br.attr("password_file").is_some();
            if !has_pw {
                self.sink.error(
                    br.at,
                    format!(
                        "one of password or password_file must be configured in {}",
                        br.path
                    ),
                );
            }
            let username = self.string(&mut br, "username").unwrap_or_default();
            let password = self.secret(&mut br, "password").map(SecretSource::Inline);
            let password_file = self.path(&mut br, "password_file").map(SecretSource::File);
            br.finish(self.sink);
            (has_user && !both)
                .then_some(())
                .and(password.or(password_file))
                .map(|password| ClientAuth::Basic { username, password })
        });
        let given = usize::from(basic.is_some() || basic_block.is_some())
            + usize::from(token.is_some())
            + usize::from(token_file.is_some());
        let at = r.at;
        r.finish(self.sink);
        if given != 1 {
            self.sink.error(
                at,
                "client_auth needs exactly one of basic, bearer_token or bearer_token_file",
            );
            return None;
        }
        basic
            .flatten()
            .or(token.map(ClientAuth::Bearer))
            .or(token_file.map(ClientAuth::Bearer))
    }

    /// The `http` block; also returns where to point listen-address clash errors.
    fn http_server(&mut self, b: &Block, parent: &str) -> (Option<HttpServer>, Pos) {
        let mut r = Reader::new(format!("{parent} > http"), b, self.sink);
        let mut h = fallback_http_server();
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
            hosts_file: self.path(&mut r, "hosts_file"),
            spool: r
                .block("spool", self.sink)
                .and_then(|b| self.spool(b, b.name_span.start)),
        };
        r.finish(self.sink);
        g
    }

    /// `pyrogate > spool` (*pyrogate extension*): `directory` is required.
    fn spool(&mut self, b: &Block, at: Pos) -> Option<Spool> {
        let mut r = Reader::new("pyrogate > spool".to_string(), b, self.sink);
        let given = r.attr("directory").is_some();
        self.require(&r, "directory", given);
        let directory = self.path(&mut r, "directory");
        let max_bytes = self
            .size(&mut r, "max_bytes")
            .unwrap_or(DEFAULT_SPOOL_MAX_BYTES);
        let max_age = self
            .positive_duration(&mut r, "max_age")
            .unwrap_or(DEFAULT_SPOOL_MAX_AGE);
        let fsync = self
            .choice(
                &mut r,
                "fsync",
                &[("never", Fsync::Never), ("always", Fsync::Always)],
            )
            .unwrap_or(Fsync::Never);
        r.finish(self.sink);
        let directory = directory?;
        if directory.as_os_str().is_empty() {
            self.sink.error(
                at,
                "pyrogate > spool: directory must not be empty".to_string(),
            );
            return None;
        }
        Some(Spool {
            directory,
            max_bytes,
            max_age,
            fsync,
        })
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
