//! The typed configuration the runtime reads.
//!
//! Owns: the shape of a validated pyrogate configuration, with every value already parsed
//! (durations are [`Duration`], addresses are [`SocketAddr`], `forward_to` references are
//! indices into [`Config::writers`]). Does not own: parsing, evaluation or validation — those
//! produce this model (see `config::build`) — nor any I/O. Cold path.
//!
//! The component graph is held as [`Target`]s: indices into [`Config::writers`] and
//! [`Config::relabels`], checked at build time (every reference resolves, no cycle). The
//! runtime turns them into typed per-core stages once, at start (see `pipeline`).
//!
//! Names follow Alloy's argument names; fields marked *pyrogate extension* have no Alloy
//! equivalent and are listed in the README.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::relabel::Rule;

/// Alloy's default `server_read_timeout` and `server_write_timeout`.
pub const DEFAULT_SERVER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Alloy's default `server_write_timeout`.
pub const DEFAULT_SERVER_WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// Alloy's default `server_idle_timeout`.
pub const DEFAULT_SERVER_IDLE_TIMEOUT: Duration = Duration::from_secs(120);
/// Alloy's default `listen_port` for `pyroscope.receive_http`.
pub const DEFAULT_LISTEN_PORT: u16 = 8080;
/// Alloy's `conn_limit` for `pyroscope.receive_http` since v1.11 (`64 / 4 * 1024`).
pub const DEFAULT_CONN_LIMIT: usize = 16_384;
/// Alloy's default `graceful_shutdown_timeout`.
pub const DEFAULT_GRACEFUL_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);
/// Alloy's default per-attempt `remote_timeout`.
pub const DEFAULT_REMOTE_TIMEOUT: Duration = Duration::from_secs(10);
/// Alloy's default `min_backoff_period`.
pub const DEFAULT_MIN_BACKOFF: Duration = Duration::from_millis(500);
/// Alloy's default `max_backoff_period`.
pub const DEFAULT_MAX_BACKOFF: Duration = Duration::from_secs(300);
/// Alloy's default `max_backoff_retries` (the total number of attempts; 0 = unbounded).
pub const DEFAULT_MAX_BACKOFF_RETRIES: u32 = 10;

/// Largest request head (request line + headers) pyrogate buffers before answering 431.
/// Go's net/http (so Alloy) allows 1 MiB; SDK heads are well under 8 KiB, the slack is for
/// long label sets in `?name=app{k=v,...}`.
pub const DEFAULT_MAX_HEAD_BYTES: usize = 64 * 1024;
/// Most header fields in one request head before answering 431.
pub const DEFAULT_MAX_HEADERS: usize = 100;
/// Largest request body accepted before answering 413: Pyroscope's own
/// `-distributor.ingestion-body-limit-mb` default (256 MiB).
pub const DEFAULT_MAX_BODY_BYTES: u64 = 256 * 1024 * 1024;
/// Default global in-flight budget: bytes held by bodies that are being received or are queued
/// for delivery, across all cores.
pub const DEFAULT_MAX_INFLIGHT_BYTES: u64 = 512 * 1024 * 1024;
/// How long a request waits for room in a full queue or budget before it gets 503.
pub const DEFAULT_QUEUE_WAIT_TIMEOUT: Duration = Duration::from_secs(2);
/// Default capacity of one destination's queue on one core, in uploads.
pub const DEFAULT_QUEUE_CAPACITY: usize = 1024;
/// Default number of concurrent sender tasks (and so upstream connections) per destination per core.
pub const DEFAULT_SENDERS_PER_CORE: usize = 16;
/// Default upstream TCP connect timeout.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Default interval between DNS re-resolutions of an upstream host.
pub const DEFAULT_DNS_REFRESH: Duration = Duration::from_secs(30);
/// Alloy's default `debug_info_upload_timeout` (receive_http and write endpoints), also
/// Pyroscope's `-debug-info.upload-timeout`.
pub const DEFAULT_DEBUG_INFO_UPLOAD_TIMEOUT: Duration = Duration::from_secs(120);
/// Largest debug-info upload (`POST /debuginfo.v1alpha1.DebuginfoService/Upload/…`) a
/// receiver forwards: Pyroscope's `-debug-info.max-upload-size` default (1 GiB).
pub const DEFAULT_DEBUG_INFO_MAX_UPLOAD_BYTES: u64 = 1024 * 1024 * 1024;

/// A whole validated configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Every `pyroscope.receive_http` block, in file order.
    pub receivers: Vec<Receiver>,
    /// Every `pyroscope.write` block, in file order ([`Target::Writer`] indexes this).
    pub writers: Vec<Writer>,
    /// Every `pyroscope.relabel` block, in file order ([`Target::Relabel`] indexes this).
    pub relabels: Vec<Relabel>,
    /// The top-level `logging` block.
    pub logging: Logging,
    /// The top-level `pyrogate` block (*pyrogate extension*).
    pub gateway: Gateway,
}

/// One `pyroscope.receive_http "LABEL"` block.
#[derive(Debug, Clone, PartialEq)]
pub struct Receiver {
    pub label: String,
    /// The components uploads go to, in the order written (duplicates removed).
    pub forward_to: Vec<Target>,
    pub graceful_shutdown_timeout: Duration,
    pub http: HttpServer,
    /// When the client gets its response (*pyrogate extension* `acknowledge`).
    pub acknowledge: AckMode,
    /// Client request headers copied upstream besides `Content-Type` (*pyrogate extension*
    /// `forward_headers`), lower-cased, e.g. `x-scope-orgid`.
    pub forward_headers: Vec<String>,
    /// Credentials clients must present (*pyrogate extension* `client_auth`).
    pub client_auth: Option<ClientAuth>,
    /// `debug_info_upload_timeout`: bounds a debug-info upload (the client's read and the
    /// upstream's write), as Alloy's.
    pub debug_info_upload_timeout: Duration,
    /// *pyrogate extension* `debug_info_max_upload_bytes`: the largest debug-info upload
    /// forwarded.
    pub debug_info_max_upload_bytes: u64,
    /// *pyrogate extension* `debug_info_destinations`: which destinations debug-info calls go
    /// to.
    pub debug_info_destinations: DebugInfoDestinations,
}

/// Where a receiver's debug-info calls go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DebugInfoDestinations {
    /// Alloy's behaviour: the first endpoint of the first writer reachable
    /// (`debug_info_destinations = "first"`, the default).
    First,
    /// Every destination reachable; an upload goes to each one that asked for it
    /// (`debug_info_destinations = "all"`).
    All,
}

/// The `client_auth` block of a receiver (*pyrogate extension*): the one credential every
/// request must carry in `Authorization`, else 401.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientAuth {
    /// `basic { username, password | password_file }`.
    Basic {
        username: String,
        password: SecretSource,
    },
    /// `bearer_token` or `bearer_token_file`.
    Bearer(SecretSource),
}

/// When a receiver answers the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckMode {
    /// Alloy's behaviour: wait until every destination has succeeded or finally failed
    /// (`acknowledge = "delivered"`, the default).
    Delivered,
    /// Answer 200 as soon as every destination's queue holds the upload; retries continue
    /// after the client has gone (`acknowledge = "enqueued"`).
    Enqueued,
}

/// The `http` block of a receiver.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpServer {
    /// `listen_address` + `listen_port`; `""` means all interfaces (`0.0.0.0`).
    pub listen: SocketAddr,
    /// Maximum simultaneous connections (0 = unlimited). Over the limit, new connections wait
    /// in the kernel's accept backlog, as in Alloy.
    pub conn_limit: usize,
    pub server_read_timeout: Duration,
    pub server_write_timeout: Duration,
    pub server_idle_timeout: Duration,
    pub tls: Option<ServerTls>,
    /// *pyrogate extension* `max_request_head_bytes`.
    pub max_head_bytes: usize,
    /// *pyrogate extension* `max_request_headers`.
    pub max_headers: usize,
    /// *pyrogate extension* `max_request_body_bytes`.
    pub max_body_bytes: u64,
}

/// The `http > tls` block of a receiver. Values are as written; certificates are loaded and
/// checked by the TLS layer.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ServerTls {
    pub cert_pem: Option<Secret>,
    pub cert_file: Option<PathBuf>,
    pub key_pem: Option<Secret>,
    pub key_file: Option<PathBuf>,
    /// Alloy's `client_auth_type`, e.g. `"RequireAndVerifyClientCert"`; `None` = `NoClientCert`.
    pub client_auth_type: Option<String>,
    pub client_ca_file: Option<PathBuf>,
    pub client_ca: Option<String>,
    pub min_version: Option<TlsVersion>,
}

/// A component `forward_to` names by its `receiver` export.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Target {
    /// `pyroscope.write.LABEL.receiver`: an index into [`Config::writers`].
    Writer(usize),
    /// `pyroscope.relabel.LABEL.receiver`: an index into [`Config::relabels`].
    Relabel(usize),
}

/// Alloy's default `max_cache_size` of `pyroscope.relabel`.
pub const DEFAULT_RELABEL_CACHE_SIZE: usize = 10_000;

/// One `pyroscope.relabel "LABEL"` block.
#[derive(Debug, Clone, PartialEq)]
pub struct Relabel {
    pub label: String,
    /// Where relabelled profiles go, in the order written (duplicates removed). Never leads
    /// back to this component (checked at build time).
    pub forward_to: Vec<Target>,
    /// `rule` blocks, validated and compiled, in order.
    pub rules: Vec<Rule>,
    /// `max_cache_size`: entries of the per-core result cache (at least 1).
    pub max_cache_size: usize,
}

/// One `pyroscope.write "LABEL"` block.
#[derive(Debug, Clone, PartialEq)]
pub struct Writer {
    pub label: String,
    /// `external_labels`, sorted by name. An empty value deletes the label.
    pub external_labels: Vec<(String, String)>,
    pub endpoints: Vec<Endpoint>,
}

/// One `endpoint` block of a `pyroscope.write`.
#[derive(Debug, Clone, PartialEq)]
pub struct Endpoint {
    pub url: EndpointUrl,
    /// The URL as written, used as the `endpoint` label of metrics (as Alloy does).
    pub url_text: String,
    pub name: String,
    pub remote_timeout: Duration,
    /// `headers`: set on every request, replacing a value of the same name.
    pub headers: Vec<(String, String)>,
    /// `http_headers`: appended to every request.
    pub http_headers: Vec<(String, Vec<Secret>)>,
    pub min_backoff_period: Duration,
    pub max_backoff_period: Duration,
    /// Total attempts; 0 = unbounded (bounded by the client's deadline only).
    pub max_backoff_retries: u32,
    pub retry_on_http_429: bool,
    pub auth: Option<Auth>,
    pub tls: Option<ClientTls>,
    pub proxy: Proxy,
    pub follow_redirects: bool,
    pub enable_http2: bool,
    /// *pyrogate extension* `queue_capacity`: uploads queued per core for this endpoint.
    pub queue_capacity: usize,
    /// *pyrogate extension* `max_connections_per_core`: concurrent senders per core.
    pub senders_per_core: usize,
    /// *pyrogate extension* `connect_timeout`.
    pub connect_timeout: Duration,
    /// *pyrogate extension* `compression`: how Push requests are sent upstream (Alloy always
    /// sends them uncompressed). `/ingest` bodies are always forwarded byte for byte.
    pub compression: Compression,
    /// *pyrogate extension* `spool`: whether this endpoint spools when a `spool` block is
    /// configured (default true; `spool = false` opts out).
    pub spool: bool,
    /// `debug_info_upload_timeout`: bounds a debug-info upload to this endpoint, as Alloy's.
    pub debug_info_upload_timeout: Duration,
}

/// Content coding of upstream Push requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// `compression = "none"` (default, as Alloy).
    None,
    /// `compression = "gzip"`: `Content-Encoding: gzip` (costs a compression pass per series
    /// per endpoint, and one copy of the profile bytes into the compressed body).
    Gzip,
}

impl Endpoint {
    /// An endpoint with every setting at its default (Alloy's for Alloy arguments, pyrogate's
    /// documented defaults for the extensions) except the URL.
    pub fn new(url: EndpointUrl, url_text: impl Into<String>) -> Self {
        Endpoint {
            url,
            url_text: url_text.into(),
            name: String::new(),
            remote_timeout: DEFAULT_REMOTE_TIMEOUT,
            headers: Vec::new(),
            http_headers: Vec::new(),
            min_backoff_period: DEFAULT_MIN_BACKOFF,
            max_backoff_period: DEFAULT_MAX_BACKOFF,
            max_backoff_retries: DEFAULT_MAX_BACKOFF_RETRIES,
            retry_on_http_429: true,
            auth: None,
            tls: None,
            proxy: Proxy::default(),
            follow_redirects: true,
            enable_http2: true,
            queue_capacity: DEFAULT_QUEUE_CAPACITY,
            senders_per_core: DEFAULT_SENDERS_PER_CORE,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            compression: Compression::None,
            spool: true,
            debug_info_upload_timeout: DEFAULT_DEBUG_INFO_UPLOAD_TIMEOUT,
        }
    }
}

/// A parsed endpoint URL. The URL's own query string is discarded, as Alloy does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndpointUrl {
    /// `http://` or `https://`.
    Http {
        tls: bool,
        /// Host as written (a name or an IP literal without brackets).
        host: String,
        port: u16,
        /// Path with no trailing query, `""` when absent.
        path: String,
    },
    /// `file://DIR` (*pyrogate extension*): captures each delivered upload into DIR.
    Capture { dir: PathBuf },
}

/// A secret value: never printed by `Debug`, `fmt` output, logs or metrics.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("(secret)")
    }
}

/// A secret given inline or read from a file (re-read when the file changes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    Inline(Secret),
    File(PathBuf),
}

/// The one authentication method of an endpoint (Alloy allows at most one).
// One value per endpoint, built once at start-up: boxing OAuth2 would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Auth {
    Basic {
        username: String,
        password: Option<SecretSource>,
    },
    /// `bearer_token`/`bearer_token_file`, or `authorization { type, credentials* }`.
    /// Alloy rewrites `bearer_token` into `authorization { type = "Bearer" }`.
    Authorization {
        scheme: String,
        credentials: SecretSource,
    },
    OAuth2(OAuth2),
}

/// `oauth2` client-credentials settings.
#[derive(Debug, Clone, PartialEq)]
pub struct OAuth2 {
    pub client_id: String,
    pub client_secret: SecretSource,
    pub scopes: Vec<String>,
    pub token_url: String,
    pub endpoint_params: Vec<(String, String)>,
    pub tls: Option<ClientTls>,
    pub proxy: Proxy,
}

/// `tls_config` of an endpoint.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ClientTls {
    pub ca_pem: Option<String>,
    pub ca_file: Option<PathBuf>,
    pub cert_pem: Option<String>,
    pub cert_file: Option<PathBuf>,
    pub key_pem: Option<Secret>,
    pub key_file: Option<PathBuf>,
    pub server_name: Option<String>,
    pub insecure_skip_verify: bool,
    pub min_version: Option<TlsVersion>,
}

/// `min_version` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TlsVersion {
    Tls10,
    Tls11,
    Tls12,
    Tls13,
}

/// Egress proxy settings of an endpoint.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Proxy {
    pub proxy_url: Option<String>,
    pub no_proxy: Option<String>,
    pub proxy_from_environment: bool,
    pub proxy_connect_header: Vec<(String, Vec<Secret>)>,
}

/// The top-level `logging` block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Logging {
    pub level: LogLevel,
    pub format: LogFormat,
}

impl Default for Logging {
    fn default() -> Self {
        Logging {
            level: LogLevel::Info,
            format: LogFormat::Logfmt,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    Error,
    Warn,
    Info,
    Debug,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Logfmt,
    Json,
}

/// The top-level `pyrogate { ... }` block (*pyrogate extension*); every field optional.
#[derive(Debug, Clone, PartialEq)]
pub struct Gateway {
    /// `max_inflight_bytes`: bytes of bodies held in memory (being received or queued), summed
    /// over all cores; each core gets an equal share.
    pub max_inflight_bytes: u64,
    /// `queue_wait_timeout`: how long a request waits for queue or budget room before 503.
    pub queue_wait_timeout: Duration,
    /// `dns_refresh_interval`.
    pub dns_refresh_interval: Duration,
    /// `hosts_file`: upstream names listed there resolve to its addresses before the system
    /// resolver is asked (`/etc/hosts` format, re-read at every resolution).
    pub hosts_file: Option<std::path::PathBuf>,
    /// The `spool` block: where uploads a destination cannot take are kept (absent: no spool).
    pub spool: Option<Spool>,
}

/// The `spool` block of `pyrogate` (*pyrogate extension*).
#[derive(Debug, Clone, PartialEq)]
pub struct Spool {
    /// `directory` (required): each destination's spool is a directory under it.
    pub directory: std::path::PathBuf,
    /// `max_bytes`: disk bytes per destination; the oldest records are dropped past it.
    pub max_bytes: u64,
    /// `max_age`: records older than this (since accepted) are dropped, not replayed.
    pub max_age: Duration,
    /// `fsync`: when spooled records are forced to the disk.
    pub fsync: Fsync,
}

/// Default `spool.max_bytes`: 1 GiB.
pub const DEFAULT_SPOOL_MAX_BYTES: u64 = 1 << 30;
/// Default `spool.max_age`: Pyroscope's default `reject-older-than` window.
pub const DEFAULT_SPOOL_MAX_AGE: Duration = Duration::from_secs(3600);

/// When the spool forces its writes to the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fsync {
    /// `fsync = "never"` (default): records survive a crash of the process (they are in the
    /// kernel's page cache), not a power loss before the kernel writes them back.
    Never,
    /// `fsync = "always"`: each record is `fdatasync`ed before it counts as spooled.
    Always,
}

impl Default for Gateway {
    fn default() -> Self {
        Gateway {
            max_inflight_bytes: DEFAULT_MAX_INFLIGHT_BYTES,
            queue_wait_timeout: DEFAULT_QUEUE_WAIT_TIMEOUT,
            dns_refresh_interval: DEFAULT_DNS_REFRESH,
            hosts_file: None,
            spool: None,
        }
    }
}
