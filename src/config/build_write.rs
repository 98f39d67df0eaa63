//! Builder for `pyroscope.write`: endpoints, authentication, TLS and proxy settings.
//!
//! Owns: the `pyroscope.write` half of validation, with Alloy's own messages where Alloy has
//! them (grafana/alloy `internal/component/common/config/types.go` `HTTPClientConfig.Validate`:
//! one auth method, exclusive pairs; prometheus/common `config/http_config.go`: reserved
//! `http_headers`).
//! Does not own the reader and typed getters (see `reader`). Pure, cold path.

use super::ast::Block;
use super::diag::Pos;
use super::model::*;
use super::reader::{Cx, Reader};
use super::values::{is_header_name, is_reserved_header, parse_endpoint_url};

/// Alloy's message when an endpoint configures more than one authentication method.
pub const AUTH_CONFLICT: &str = "at most one of basic_auth, authorization, oauth2, bearer_token & bearer_token_file must be configured";

impl Cx<'_, '_, '_> {
    pub(crate) fn writer(&mut self, b: &Block) -> Option<Writer> {
        let label = b.label.clone().unwrap_or_default();
        let mut r = Reader::new(b.display_name(), b, self.sink);
        let mut external_labels: Vec<(String, String)> = self
            .string_map(&mut r, "external_labels")
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v, _)| (k, v))
            .collect();
        external_labels.sort();
        let mut endpoints = Vec::new();
        let mut ok = true;
        for eb in r.blocks("endpoint", self.sink) {
            match self.endpoint(eb, &r.path) {
                Some(e) => endpoints.push(e),
                None => ok = false,
            }
        }
        self.ignored_block(
            &mut r,
            "tracing",
            "pyrogate does not propagate trace context",
        );
        r.finish(self.sink);
        ok.then_some(Writer {
            label,
            external_labels,
            endpoints,
        })
    }

    fn endpoint(&mut self, b: &Block, parent: &str) -> Option<Endpoint> {
        let mut r = Reader::new(format!("{parent} > endpoint"), b, self.sink);
        let mut ok = true;

        let url_attr = r.attr("url");
        self.require(&r, "url", url_attr.is_some());
        let url_pos = url_attr.map(|a| a.value.span.start);
        let url_text = self.string(&mut r, "url");
        let url = match (&url_text, url_pos) {
            // Empty because env() read an unset variable: already warned. As in Alloy, the
            // URL is not checked further; every delivery to it fails.
            (Some(t), _) if t.is_empty() => Some(EndpointUrl::Http {
                tls: false,
                host: String::new(),
                port: 80,
                path: String::new(),
            }),
            (Some(t), Some(at)) => match parse_endpoint_url(t) {
                Ok(u) => Some(u),
                Err(e) => {
                    self.sink.error(at, format!("url: {e}"));
                    None
                }
            },
            _ => None,
        };

        let name = self.string(&mut r, "name").unwrap_or_default();
        let remote_timeout = self
            .positive_duration(&mut r, "remote_timeout")
            .unwrap_or(DEFAULT_REMOTE_TIMEOUT);
        let mut headers = Vec::new();
        for (k, v, at) in self.string_map(&mut r, "headers").unwrap_or_default() {
            ok &= self.check_header("headers", &k, std::slice::from_ref(&v), at);
            headers.push((k, v));
        }
        let mut http_headers = Vec::new();
        for (k, vs, at) in self.list_map(&mut r, "http_headers").unwrap_or_default() {
            if is_reserved_header(&k) {
                self.sink
                    .error(at, format!("setting header {k:?} is not allowed"));
                ok = false;
            }
            ok &= self.check_header("http_headers", &k, &vs, at);
            http_headers.push((k, vs.into_iter().map(Secret).collect()));
        }
        let min_backoff_period = self
            .duration(&mut r, "min_backoff_period")
            .unwrap_or(DEFAULT_MIN_BACKOFF);
        let max_backoff_period = self
            .duration(&mut r, "max_backoff_period")
            .unwrap_or(DEFAULT_MAX_BACKOFF);
        let max_backoff_retries = self
            .int(&mut r, "max_backoff_retries", 0, i64::from(u32::MAX), None)
            .map_or(DEFAULT_MAX_BACKOFF_RETRIES, |n| {
                u32::try_from(n).unwrap_or(u32::MAX)
            });
        let retry_on_http_429 = self.bool(&mut r, "retry_on_http_429").unwrap_or(true);
        let debug_info_upload_timeout = self
            .positive_duration(&mut r, "debug_info_upload_timeout")
            .unwrap_or(DEFAULT_DEBUG_INFO_UPLOAD_TIMEOUT);
        let auth = self.auth(&mut r, &mut ok);
        let tls = r
            .block("tls_config", self.sink)
            .map(|tb| self.client_tls(tb, &r.path));
        let proxy = self.proxy(&mut r, &mut ok);
        let follow_redirects = self.bool(&mut r, "follow_redirects").unwrap_or(true);
        let enable_http2 = self.bool(&mut r, "enable_http2").unwrap_or(true);
        let queue_capacity = self
            .int(&mut r, "queue_capacity", 1, i64::MAX, None)
            .map_or(DEFAULT_QUEUE_CAPACITY, |n| {
                usize::try_from(n).unwrap_or(usize::MAX)
            });
        let senders_per_core = self
            .int(&mut r, "max_connections_per_core", 1, i64::MAX, None)
            .map_or(DEFAULT_SENDERS_PER_CORE, |n| {
                usize::try_from(n).unwrap_or(usize::MAX)
            });
        let connect_timeout = self
            .positive_duration(&mut r, "connect_timeout")
            .unwrap_or(DEFAULT_CONNECT_TIMEOUT);
        let compression = self
            .choice(
                &mut r,
                "compression",
                &[("none", Compression::None), ("gzip", Compression::Gzip)],
            )
            .unwrap_or(Compression::None);
        let spool = self.bool(&mut r, "spool").unwrap_or(true);
        r.finish(self.sink);
        if !ok {
            return None;
        }
        Some(Endpoint {
            url: url?,
            url_text: url_text.unwrap_or_default(),
            name,
            remote_timeout,
            headers,
            http_headers,
            min_backoff_period,
            max_backoff_period,
            max_backoff_retries,
            retry_on_http_429,
            auth: auth?,
            tls: tls.flatten(),
            proxy,
            follow_redirects,
            enable_http2,
            queue_capacity,
            senders_per_core,
            connect_timeout,
            compression,
            spool,
            debug_info_upload_timeout,
        })
    }

    /// Header names must be tokens and values must not contain CR or LF (which would let a
    /// value inject headers). Values are never echoed: they may be secrets.
    fn check_header(&mut self, attr: &str, name: &str, values: &[String], at: Pos) -> bool {
        let mut ok = true;
        if !is_header_name(name) {
            self.sink.error(
                at,
                format!("{attr}: {name:?} is not a valid HTTP header name"),
            );
            ok = false;
        }
        if values.iter().any(|v| v.contains(['\r', '\n'])) {
            self.sink.error(
                at,
                format!("{attr}: the value of header {name:?} must not contain CR or LF"),
            );
            ok = false;
        }
        ok
    }

    /// The endpoint's one authentication method. `Some(None)`: none configured; `None`: invalid.
    fn auth(&mut self, r: &mut Reader<'_>, ok: &mut bool) -> Option<Option<Auth>> {
        let basic = r.block("basic_auth", self.sink);
        let authz = r.block("authorization", self.sink);
        let oauth = r.block("oauth2", self.sink);
        let bearer_at = r.attr("bearer_token").map(|a| a.name_span.start);
        let bearer = self.secret(r, "bearer_token").filter(|s| !s.0.is_empty());
        let bearer_file_at = r.attr("bearer_token_file").map(|a| a.name_span.start);
        let bearer_file = self
            .path(r, "bearer_token_file")
            .filter(|p| !p.as_os_str().is_empty());

        let mut present: Vec<Pos> = Vec::new();
        present.extend(basic.map(|b| b.name_span.start));
        present.extend(authz.map(|b| b.name_span.start));
        present.extend(oauth.map(|b| b.name_span.start));
        if bearer.is_some() {
            present.extend(bearer_at);
        }
        if bearer_file.is_some() {
            present.extend(bearer_file_at);
        }
        present.sort();
        if let Some(second) = present.get(1) {
            self.sink.error(*second, AUTH_CONFLICT);
            *ok = false;
            // Still check each block for its own problems.
        }
        let path = r.path.clone();
        let basic = basic.map(|b| self.basic_auth(b, &path));
        let authz = authz.map(|b| self.authorization(b, &path));
        let oauth = oauth.map(|b| self.oauth2(b, &path));
        if present.len() > 1 {
            return None;
        }
        if let Some(a) = basic {
            return a.map(Some);
        }
        if let Some(a) = authz {
            return a.map(Some);
        }
        if let Some(a) = oauth {
            return a.map(|o| Some(Auth::OAuth2(o)));
        }
        // Alloy's Validate() rewrites bearer_token(_file) into authorization { type = "Bearer" }.
        if let Some(t) = bearer {
            return Some(Some(Auth::Authorization {
                scheme: "Bearer".to_string(),
                credentials: SecretSource::Inline(t),
            }));
        }
        if let Some(f) = bearer_file {
            return Some(Some(Auth::Authorization {
                scheme: "Bearer".to_string(),
                credentials: SecretSource::File(f),
            }));
        }
        Some(None)
    }

    fn basic_auth(&mut self, b: &Block, parent: &str) -> Option<Auth> {
        let mut r = Reader::new(format!("{parent} > basic_auth"), b, self.sink);
        let both = self.exclusive(
            &mut r,
            "password",
            "password_file",
            "at most one of basic_auth password & password_file must be configured",
        );
        let username = self.string(&mut r, "username").unwrap_or_default();
        let password = self.secret(&mut r, "password").map(SecretSource::Inline);
        let password_file = self.path(&mut r, "password_file").map(SecretSource::File);
        r.finish(self.sink);
        if both {
            return None;
        }
        Some(Auth::Basic {
            username,
            password: password.or(password_file),
        })
    }

    fn authorization(&mut self, b: &Block, parent: &str) -> Option<Auth> {
        let mut r = Reader::new(format!("{parent} > authorization"), b, self.sink);
        let both = self.exclusive(
            &mut r,
            "credentials",
            "credentials_file",
            "at most one of authorization credentials & credentials_file must be configured",
        );
        let type_at = r.attr("type").map(|a| a.value.span.start);
        let scheme = self
            .string(&mut r, "type")
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "Bearer".to_string());
        let mut ok = !both;
        if scheme.eq_ignore_ascii_case("basic") {
            self.sink.error(
                type_at.unwrap_or(r.at),
                "authorization type cannot be set to \"basic\", use \"basic_auth\" instead",
            );
            ok = false;
        }
        let credentials = self.secret(&mut r, "credentials").map(SecretSource::Inline);
        let credentials_file = self
            .path(&mut r, "credentials_file")
            .map(SecretSource::File);
        r.finish(self.sink);
        ok.then(|| Auth::Authorization {
            scheme,
            credentials: credentials
                .or(credentials_file)
                .unwrap_or(SecretSource::Inline(Secret::default())),
        })
    }

    fn oauth2(&mut self, b: &Block, parent: &str) -> Option<OAuth2> {
        let mut r = Reader::new(format!("{parent} > oauth2"), b, self.sink);
        let mut ok = true;
        let both = self.exclusive(
            &mut r,
            "client_secret",
            "client_secret_file",
            "at most one of oauth2 client_secret & client_secret_file must be configured",
        );
        ok &= !both;
        let has_id = r.attr("client_id").is_some();
        self.require(&r, "client_id", has_id);
        let has_url = r.attr("token_url").is_some();
        self.require(&r, "token_url", has_url);
        let client_id = self.string(&mut r, "client_id");
        let secret = self
            .secret(&mut r, "client_secret")
            .map(SecretSource::Inline);
        let secret_file = self
            .path(&mut r, "client_secret_file")
            .map(SecretSource::File);
        let client_secret = secret.or(secret_file);
        if client_secret.is_none() && !both {
            self.sink.error(
                r.at,
                "one of oauth2 client_secret or client_secret_file must be configured",
            );
            ok = false;
        }
        let scopes = self
            .string_list(&mut r, "scopes")
            .unwrap_or_default()
            .into_iter()
            .map(|(s, _)| s)
            .collect();
        let token_url = self.string(&mut r, "token_url");
        let endpoint_params = self
            .string_map(&mut r, "endpoint_params")
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v, _)| (k, v))
            .collect();
        let tls = r
            .block("tls_config", self.sink)
            .map(|tb| self.client_tls(tb, &r.path));
        let proxy = self.proxy(&mut r, &mut ok);
        r.finish(self.sink);
        if !ok {
            return None;
        }
        Some(OAuth2 {
            client_id: client_id?,
            client_secret: client_secret?,
            scopes,
            token_url: token_url?,
            endpoint_params,
            tls: tls.flatten(),
            proxy,
        })
    }

    /// `tls_config`; `None` when invalid (reported).
    fn client_tls(&mut self, b: &Block, parent: &str) -> Option<ClientTls> {
        let mut r = Reader::new(format!("{parent} > tls_config"), b, self.sink);
        let mut bad = false;
        bad |= self.exclusive(
            &mut r,
            "ca_pem",
            "ca_file",
            "at most one of ca_pem and ca_file must be configured",
        );
        bad |= self.exclusive(
            &mut r,
            "cert_pem",
            "cert_file",
            "at most one of cert_pem and cert_file must be configured",
        );
        bad |= self.exclusive(
            &mut r,
            "key_pem",
            "key_file",
            "at most one of key_pem and key_file must be configured",
        );
        let cert_at = r
            .attr("cert_pem")
            .or(r.attr("cert_file"))
            .map(|a| a.name_span.start);
        let key_at = r
            .attr("key_pem")
            .or(r.attr("key_file"))
            .map(|a| a.name_span.start);
        match (cert_at, key_at) {
            (Some(at), None) => {
                self.sink.error(
                    at,
                    "exactly one of key_pem or key_file must be configured when a client certificate is configured",
                );
                bad = true;
            }
            (None, Some(at)) => {
                self.sink.error(
                    at,
                    "exactly one of cert_pem or cert_file must be configured when a client key is configured",
                );
                bad = true;
            }
            _ => {}
        }
        let t = ClientTls {
            ca_pem: self.string(&mut r, "ca_pem"),
            ca_file: self.path(&mut r, "ca_file"),
            cert_pem: self.string(&mut r, "cert_pem"),
            cert_file: self.path(&mut r, "cert_file"),
            key_pem: self.secret(&mut r, "key_pem"),
            key_file: self.path(&mut r, "key_file"),
            server_name: self.string(&mut r, "server_name"),
            insecure_skip_verify: self.bool(&mut r, "insecure_skip_verify").unwrap_or(false),
            min_version: self.tls_version(&mut r),
        };
        r.finish(self.sink);
        (!bad).then_some(t)
    }

    /// `proxy_url`, `no_proxy`, `proxy_from_environment`, `proxy_connect_header`, checked as
    /// Prometheus' `ProxyConfig.Validate` does.
    fn proxy(&mut self, r: &mut Reader<'_>, ok: &mut bool) -> Proxy {
        let url_at = r.attr("proxy_url").map(|a| a.name_span.start);
        let no_proxy_at = r.attr("no_proxy").map(|a| a.name_span.start);
        let header_at = r.attr("proxy_connect_header").map(|a| a.name_span.start);
        let from_env_at = r.attr("proxy_from_environment").map(|a| a.name_span.start);
        let proxy_url = self.string(r, "proxy_url").filter(|s| !s.is_empty());
        let no_proxy = self.string(r, "no_proxy").filter(|s| !s.is_empty());
        let proxy_from_environment = self.bool(r, "proxy_from_environment").unwrap_or(false);
        let mut proxy_connect_header = Vec::new();
        for (k, vs, at) in self.list_map(r, "proxy_connect_header").unwrap_or_default() {
            *ok &= self.check_header("proxy_connect_header", &k, &vs, at);
            proxy_connect_header.push((k, vs.into_iter().map(Secret).collect()));
        }
        let at = from_env_at.unwrap_or(r.at);
        if let (Some(u), Some(url_pos)) = (&proxy_url, url_at)
            && !(u.starts_with("http://")
                || u.starts_with("https://")
                || u.starts_with("socks5://"))
        {
            self.sink.error(
                url_pos,
                "proxy_url must start with http://, https:// or socks5://",
            );
            *ok = false;
        }
        if proxy_from_environment && proxy_url.is_some() {
            self.sink.error(
                at,
                "if proxy_from_environment is configured, proxy_url must not be configured",
            );
            *ok = false;
        }
        if proxy_from_environment && no_proxy.is_some() {
            self.sink.error(
                at,
                "if proxy_from_environment is configured, no_proxy must not be configured",
            );
            *ok = false;
        }
        if proxy_url.is_none() && no_proxy.is_some() {
            self.sink.error(
                no_proxy_at.unwrap_or(r.at),
                "if no_proxy is configured, proxy_url must also be configured",
            );
            *ok = false;
        }
        if !proxy_connect_header.is_empty() && proxy_url.is_none() && !proxy_from_environment {
            self.sink.error(
                header_at.unwrap_or(r.at),
                "if proxy_connect_header is configured, proxy_url or proxy_from_environment must also be configured",
            );
            *ok = false;
        }
        Proxy {
            proxy_url,
            no_proxy,
            proxy_from_environment,
            proxy_connect_header,
        }
    }
}
