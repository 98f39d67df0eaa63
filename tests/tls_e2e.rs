//! End-to-end: secure transport (README, "Secure transport"), under both drivers.
//!
//! Upstream side, against a rustls stand-in with a CA made at test time:
//! - delivery over https with a private CA (`tls_config.ca_file`), body byte-identical;
//! - an untrusted (self-signed) certificate is refused (client 500, nothing delivered) and
//!   accepted with `insecure_skip_verify` (logged at start);
//! - mutual TLS: an upstream that requires a client certificate gets one from
//!   `cert_file`/`key_file`;
//! - every auth method arrives as the exact `Authorization` bytes Alloy would send, and an
//!   `Authorization` in `headers` wins;
//! - a rewritten `bearer_token_file` is picked up (bounded polling, no fixed sleep);
//! - https delivery through an HTTP CONNECT proxy (CONNECT line and Proxy-Authorization);
//!   `no_proxy` bypasses the proxy;
//! - a 307 is followed with the identical body; a cross-host hop drops Authorization;
//! - an OAuth2 client-credentials token is fetched (Basic client auth, Go's form) and attached.
//!
//! Receiver side: a TLS receiver requiring client certificates serves a client with a trusted
//! certificate and refuses one without; plain HTTP to the TLS port gets Go's 400 text; a
//! missing certificate file and a key that does not match its certificate stop the start
//! (exit 1, file named); a receiver's `client_auth` answers 401 with `WWW-Authenticate` and
//! forwards nothing unless the request carries the configured credential.

mod support;

use std::time::Duration;

use support::client::{Client, upload_request};
use support::config;
use support::tls::{
    ConnectProxy, Pki, Req, Upstream, replace_file, status_response, tls_roundtrip,
};
use support::{Driver, Gateway, both_drivers};

const TARGET: &str = "/ingest?name=app.cpu&from=1&until=2";

/// Sends one upload to the gateway's only receiver; returns the status.
fn upload(gw: &Gateway, body: &[u8]) -> u16 {
    let mut c = Client::connect(gw.addr());
    c.send(&upload_request(
        TARGET,
        &[("Content-Type", "application/octet-stream")],
        body,
    ));
    c.read_response().status
}

fn ca_file(pki: &Pki) -> String {
    format!(
        "    tls_config {{\n      ca_file = \"{}\"\n    }}",
        pki.path("ca.pem")
    )
}

fn https_delivery_with_a_private_ca(driver: Driver) {
    let pki = Pki::new();
    let up = Upstream::start(Some(pki.server_config(false, false)));
    let url = format!("https://localhost:{}/base", up.addr.port());
    let gw = Gateway::start(&config::single(&url, &ca_file(&pki), "", ""), driver, 1);
    let body: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    assert_eq!(upload(&gw, &body), 200);
    assert_eq!(upload(&gw, b"second"), 200);
    let reqs = up.requests();
    assert_eq!(reqs.len(), 2);
    assert_eq!(reqs[0].body, body);
    assert_eq!(reqs[1].body, b"second");
    assert!(
        reqs[0].target.starts_with("/base/ingest?"),
        "{}",
        reqs[0].target
    );
    assert_eq!(
        reqs[0].header("Host"),
        Some(format!("localhost:{}", up.addr.port()).as_str())
    );
}

fn untrusted_certificate_refused_unless_insecure_skip_verify(driver: Driver) {
    let pki = Pki::new();
    let up = Upstream::start(Some(pki.server_config(true, false)));
    let url = format!("https://localhost:{}", up.addr.port());
    let strict = format!("{}\n    max_backoff_retries = 1", ca_file(&pki));
    let gw = Gateway::start(&config::single(&url, &strict, "", ""), driver, 1);
    assert_eq!(upload(&gw, b"profile"), 500);
    assert!(up.requests().is_empty());
    // The stand-in sees the gateway's alert (bounded wait: its thread may lag the client).
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while up.handshake_failures() == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "no failed handshake seen"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    drop(gw);

    let lax = "    tls_config {\n      insecure_skip_verify = true\n    }";
    let gw = Gateway::start(&config::single(&url, lax, "", ""), driver, 1);
    assert_eq!(upload(&gw, b"profile"), 200);
    assert_eq!(up.requests().len(), 1);
    let log = gw.stderr_text();
    assert!(
        log.contains("insecure_skip_verify") && log.contains(&url),
        "the start log names the insecure endpoint: {log}"
    );
}

fn mutual_tls_upstream(driver: Driver) {
    let pki = Pki::new();
    let up = Upstream::start(Some(pki.server_config(false, true)));
    let url = format!("https://127.0.0.1:{}", up.addr.port());
    let tls = format!(
        "    tls_config {{\n      ca_file = \"{}\"\n      cert_file = \"{}\"\n      key_file = \"{}\"\n    }}",
        pki.path("ca.pem"),
        pki.path("client.pem"),
        pki.path("client-key.pem")
    );
    let gw = Gateway::start(&config::single(&url, &tls, "", ""), driver, 1);
    assert_eq!(upload(&gw, b"mtls"), 200);
    assert_eq!(up.requests()[0].body, b"mtls");
    drop(gw);

    // Without a client certificate the same upstream refuses the handshake.
    let no_cert = format!("{}\n    max_backoff_retries = 1", ca_file(&pki));
    let gw = Gateway::start(&config::single(&url, &no_cert, "", ""), driver, 1);
    assert_eq!(upload(&gw, b"mtls"), 500);
    assert_eq!(up.requests().len(), 1);
}

fn every_auth_method_arrives_exactly(driver: Driver) {
    let up = Upstream::start(None);
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("pw");
    let tok = dir.path().join("tok");
    let cred = dir.path().join("cred");
    std::fs::write(&pw, "file-pass\n").unwrap();
    std::fs::write(&tok, "file-token\n").unwrap();
    std::fs::write(&cred, "file-cred").unwrap();
    let base = format!("http://{}", up.addr);
    let eps = [
        (
            "basic",
            "    basic_auth {\n      username = \"alice\"\n      password = \"s3cret\"\n    }"
                .to_string(),
        ),
        (
            "basicfile",
            format!(
                "    basic_auth {{\n      username = \"bob\"\n      password_file = \"{}\"\n    }}",
                pw.display()
            ),
        ),
        ("bearer", "    bearer_token = \"tok-inline\"".to_string()),
        (
            "bearerfile",
            format!("    bearer_token_file = \"{}\"", tok.display()),
        ),
        (
            "authz",
            "    authorization {\n      type = \"Token\"\n      credentials = \"abc\"\n    }"
                .to_string(),
        ),
        (
            "authzfile",
            format!(
                "    authorization {{\n      credentials_file = \"{}\"\n    }}",
                cred.display()
            ),
        ),
        (
            "override",
            "    bearer_token = \"ignored\"\n    headers = { \"Authorization\" = \"Custom x\" }"
                .to_string(),
        ),
    ];
    let endpoints: Vec<String> = eps
        .iter()
        .map(|(p, extra)| config::endpoint(&format!("{base}/{p}"), extra))
        .collect();
    let cfg = format!(
        "{}{}",
        config::receiver("default", &["upstream"], "", ""),
        config::write("upstream", &endpoints, "")
    );
    let gw = Gateway::start(&cfg, driver, 1);
    assert_eq!(upload(&gw, b"auth"), 200);
    let reqs = up.requests();
    let auth_of = |prefix: &str| -> Vec<String> {
        let r: Vec<&Req> = reqs
            .iter()
            .filter(|r| r.target.starts_with(&format!("/{prefix}/")))
            .collect();
        assert_eq!(r.len(), 1, "{prefix}");
        r[0].header_all("Authorization")
            .iter()
            .map(|s| s.to_string())
            .collect()
    };
    // base64("alice:s3cret"), base64("bob:file-pass").
    assert_eq!(auth_of("basic"), ["Basic YWxpY2U6czNjcmV0"]);
    assert_eq!(auth_of("basicfile"), ["Basic Ym9iOmZpbGUtcGFzcw=="]);
    assert_eq!(auth_of("bearer"), ["Bearer tok-inline"]);
    assert_eq!(auth_of("bearerfile"), ["Bearer file-token"]);
    assert_eq!(auth_of("authz"), ["Token abc"]);
    assert_eq!(auth_of("authzfile"), ["Bearer file-cred"]);
    assert_eq!(auth_of("override"), ["Custom x"]);
    let log = gw.stderr_text();
    for secret in [
        "s3cret",
        "file-pass",
        "tok-inline",
        "file-token",
        "file-cred",
    ] {
        assert!(!log.contains(secret), "{secret} leaked into the log");
    }
}

fn a_rotated_bearer_token_file_is_picked_up(driver: Driver) {
    let up = Upstream::start(None);
    let dir = tempfile::tempdir().unwrap();
    let tok = dir.path().join("token");
    std::fs::write(&tok, "first-token\n").unwrap();
    let extra = format!("    bearer_token_file = \"{}\"", tok.display());
    let gw = Gateway::start(
        &config::single(&format!("http://{}", up.addr), &extra, "", ""),
        driver,
        2,
    );
    assert_eq!(upload(&gw, b"a"), 200);
    assert_eq!(
        up.requests()[0].header("Authorization"),
        Some("Bearer first-token")
    );
    replace_file(&tok, "second-token\n");
    // Keep uploading until a delivery carries the new token (bounded by `wait_until`).
    let reqs = up.wait_until("a request with the rotated token", |r| {
        if r.last().and_then(|x| x.header("Authorization")) == Some("Bearer second-token") {
            return true;
        }
        assert_eq!(upload(&gw, b"b"), 200);
        false
    });
    let last = reqs.last().unwrap();
    assert_eq!(last.header("Authorization"), Some("Bearer second-token"));
}

fn https_through_a_connect_proxy(driver: Driver) {
    let pki = Pki::new();
    let up = Upstream::start(Some(pki.server_config(false, false)));
    let proxy = ConnectProxy::start(up.addr);
    // upstream.test does not resolve: only the proxy can reach it.
    let url = format!("https://upstream.test:{}", up.addr.port());
    let extra = format!(
        "{}\n    proxy_url = \"http://user:p%40ss@127.0.0.1:{}\"",
        ca_file(&pki),
        proxy.addr.port()
    );
    let gw = Gateway::start(&config::single(&url, &extra, "", ""), driver, 1);
    assert_eq!(upload(&gw, b"via proxy"), 200);
    let connects = proxy.connects();
    assert_eq!(connects.len(), 1);
    let authority = format!("upstream.test:{}", up.addr.port());
    assert_eq!(connects[0].method, "CONNECT");
    assert_eq!(connects[0].target, authority);
    // base64("user:p@ss")
    assert_eq!(
        connects[0].header("Proxy-Authorization"),
        Some("Basic dXNlcjpwQHNz")
    );
    let reqs = up.requests();
    assert_eq!(reqs[0].body, b"via proxy");
    assert_eq!(reqs[0].header("Host"), Some(authority.as_str()));
    assert_eq!(reqs[0].header("Proxy-Authorization"), None);
}

fn no_proxy_bypasses_the_proxy(driver: Driver) {
    let up = Upstream::start(None);
    let proxy = ConnectProxy::start(up.addr);
    let extra = format!(
        "    proxy_url = \"http://127.0.0.1:{}\"\n    no_proxy = \"127.0.0.1\"",
        proxy.addr.port()
    );
    let gw = Gateway::start(
        &config::single(&format!("http://{}", up.addr), &extra, "", ""),
        driver,
        1,
    );
    assert_eq!(upload(&gw, b"direct"), 200);
    assert_eq!(up.requests().len(), 1);
    assert!(proxy.connects().is_empty());
}

fn a_307_is_followed_with_the_same_body(driver: Driver) {
    let up = Upstream::start_with(
        None,
        std::sync::Arc::new(|r: &Req, addr| {
            if r.target.starts_with("/old/") {
                let rest = r.target.trim_start_matches("/old");
                // Another host name for the same socket: a cross-host hop.
                format!(
                    "HTTP/1.1 307 Temporary Redirect\r\nLocation: http://localhost:{}/new{rest}\r\nContent-Length: 0\r\n\r\n",
                    addr.port()
                )
                .into_bytes()
            } else {
                status_response(200)
            }
        }),
    );
    let url = format!("http://{}/old", up.addr);
    let gw = Gateway::start(
        &config::single(&url, "    bearer_token = \"t\"", "", ""),
        driver,
        1,
    );
    let body: Vec<u8> = (0..70_000u32).map(|i| (i % 13) as u8).collect();
    assert_eq!(upload(&gw, &body), 200);
    let reqs = up.requests();
    assert_eq!(reqs.len(), 2);
    assert!(
        reqs[1].target.starts_with("/new/ingest?"),
        "{}",
        reqs[1].target
    );
    assert_eq!(reqs[0].body, body);
    assert_eq!(reqs[1].body, body);
    assert_eq!(reqs[1].method, "POST");
    assert_eq!(reqs[0].header("Authorization"), Some("Bearer t"));
    assert_eq!(reqs[1].header("Authorization"), None);
    assert_eq!(
        reqs[1].header("Host"),
        Some(format!("localhost:{}", up.addr.port()).as_str())
    );
}

fn tls_receiver_config(pki: &Pki, client_auth: &str) -> String {
    let up_cfg = config::receiver(
        "default",
        &["upstream"],
        &format!(
            "    tls {{\n      cert_file = \"{}\"\n      key_file = \"{}\"\n      client_ca_file = \"{}\"\n      client_auth_type = \"{client_auth}\"\n    }}",
            pki.path("server.pem"),
            pki.path("server-key.pem"),
            pki.path("ca.pem")
        ),
        "",
    );
    format!("{up_cfg}{}", config::write("upstream", &[], ""))
}

fn tls_receiver_requires_a_trusted_client_certificate(driver: Driver) {
    let pki = Pki::new();
    let gw = Gateway::start(
        &tls_receiver_config(&pki, "RequireAndVerifyClientCert"),
        driver,
        1,
    );
    let req = upload_request(TARGET, &[], b"over tls");
    let ok = tls_roundtrip(gw.addr(), pki.client_config(true), &req).unwrap();
    assert!(ok.starts_with("HTTP/1.1 200 OK\r\n"), "{ok}");
    let refused = tls_roundtrip(gw.addr(), pki.client_config(false), &req);
    assert!(
        refused
            .as_ref()
            .is_err_and(|e| e.contains("CertificateRequired") || e.contains("alert")),
        "a client without a certificate gets no response: {refused:?}"
    );
}

fn plain_http_to_a_tls_receiver_gets_go_400_text(driver: Driver) {
    let pki = Pki::new();
    let gw = Gateway::start(&tls_receiver_config(&pki, "NoClientCert"), driver, 1);
    let mut s = std::net::TcpStream::connect(gw.addr()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    use std::io::{Read, Write};
    s.write_all(&upload_request(TARGET, &[], b"x")).unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out),
        "HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n"
    );
}

/// Runs `pyrogate run` on `config` until it exits (it must fail to start); returns the exit
/// code and stderr.
fn failed_start(config: &str, driver: Driver) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.alloy");
    std::fs::write(&path, config).unwrap();
    let out = std::process::Command::new(support::gateway::binary())
        .arg("run")
        .arg(format!("--driver={}", driver.flag()))
        .arg("--cores=1")
        .arg("--server.http.listen-addr=127.0.0.1:0")
        .arg(&path)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn startup_errors_name_the_file(driver: Driver) {
    let pki = Pki::new();
    let missing = format!("{}/nope.pem", pki.dir.path().display());
    let tls = format!(
        "    tls_config {{\n      cert_file = \"{missing}\"\n      key_file = \"{}\"\n    }}",
        pki.path("client-key.pem")
    );
    let (code, err) = failed_start(&config::single("https://127.0.0.1:1", &tls, "", ""), driver);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains(&format!(
            "pyrogate: endpoint https://127.0.0.1:1: tls_config: reading certificate file {missing}: "
        )),
        "{err}"
    );

    // The receiver's certificate with the client's key.
    let http = format!(
        "    tls {{\n      cert_file = \"{}\"\n      key_file = \"{}\"\n    }}",
        pki.path("server.pem"),
        pki.path("client-key.pem")
    );
    let cfg = format!(
        "{}{}",
        config::receiver("default", &["upstream"], &http, ""),
        config::write("upstream", &[], "")
    );
    let (code, err) = failed_start(&cfg, driver);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains(&format!(
            "pyrogate: receiver \"default\": http > tls: key {} does not match certificate {}",
            pki.path("client-key.pem"),
            pki.path("server.pem")
        )),
        "{err}"
    );
}

fn receiver_client_auth_answers_401_without_the_credential(driver: Driver) {
    let up = Upstream::start(None);
    let cfg = format!(
        "{}{}",
        config::receiver(
            "default",
            &["upstream"],
            "",
            "  client_auth {\n    basic {\n      username = \"sdk\"\n      password = \"pw\"\n    }\n  }"
        ),
        config::write(
            "upstream",
            &[config::endpoint(&format!("http://{}", up.addr), "")],
            ""
        )
    );
    let gw = Gateway::start(&cfg, driver, 1);
    let send = |auth: Option<&str>| {
        let mut c = Client::connect(gw.addr());
        let headers: Vec<(&str, &str)> = auth.map(|a| ("Authorization", a)).into_iter().collect();
        c.send(&upload_request(TARGET, &headers, b"guarded"));
        c.read_response()
    };
    for auth in [None, Some("Basic c2RrOndyb25n"), Some("Bearer pw")] {
        let r = send(auth);
        assert_eq!(r.status, 401, "{auth:?}");
        assert_eq!(
            r.header("WWW-Authenticate"),
            Some("Basic realm=\"pyrogate\"")
        );
        assert_eq!(r.body_str(), "Unauthorized\n");
    }
    assert!(
        up.requests().is_empty(),
        "nothing is forwarded without the credential"
    );
    // base64("sdk:pw")
    assert_eq!(send(Some("Basic c2RrOnB3")).status, 200);
    assert_eq!(up.requests().len(), 1);
    // The client's Authorization is not forwarded upstream (Alloy's header rule).
    assert_eq!(up.requests()[0].header("Authorization"), None);
}

fn oauth2_client_credentials_token_is_attached(driver: Driver) {
    // One stand-in serves both the token endpoint and the ingest endpoint.
    let up = Upstream::start_with(
        None,
        std::sync::Arc::new(|r: &Req, _| {
            if r.target == "/oauth/token" {
                let body = br#"{"access_token":"tok-1","token_type":"bearer","expires_in":3600}"#;
                let mut out = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                    body.len()
                )
                .into_bytes();
                out.extend_from_slice(body);
                out
            } else {
                status_response(200)
            }
        }),
    );
    let extra = format!(
        "    oauth2 {{\n      client_id = \"id\"\n      client_secret = \"sec\"\n      token_url = \"http://{}/oauth/token\"\n      scopes = [\"a\", \"b\"]\n      endpoint_params = {{ \"audience\" = \"pyro\" }}\n    }}",
        up.addr
    );
    let gw = Gateway::start(
        &config::single(&format!("http://{}/ingest-base", up.addr), &extra, "", ""),
        driver,
        1,
    );
    // Deliveries before the first token fail as transport errors and are retried.
    assert_eq!(upload(&gw, b"with token"), 200);
    let reqs = up.requests();
    let token_reqs: Vec<&Req> = reqs.iter().filter(|r| r.target == "/oauth/token").collect();
    assert_eq!(token_reqs.len(), 1);
    // base64("id:sec")
    assert_eq!(
        token_reqs[0].header("Authorization"),
        Some("Basic aWQ6c2Vj")
    );
    assert_eq!(
        String::from_utf8_lossy(&token_reqs[0].body),
        "audience=pyro&grant_type=client_credentials&scope=a+b"
    );
    let ingest: Vec<&Req> = reqs
        .iter()
        .filter(|r| r.target.starts_with("/ingest-base/"))
        .collect();
    assert_eq!(ingest.len(), 1);
    assert_eq!(ingest[0].header("Authorization"), Some("Bearer tok-1"));
    assert!(
        !gw.stderr_text().contains("sec\""),
        "the client secret is not logged"
    );
}

both_drivers!(
    oauth2_client_credentials_token_is_attached,
    receiver_client_auth_answers_401_without_the_credential,
    https_delivery_with_a_private_ca,
    untrusted_certificate_refused_unless_insecure_skip_verify,
    mutual_tls_upstream,
    every_auth_method_arrives_exactly,
    a_rotated_bearer_token_file_is_picked_up,
    https_through_a_connect_proxy,
    no_proxy_bypasses_the_proxy,
    a_307_is_followed_with_the_same_body,
    tls_receiver_requires_a_trusted_client_certificate,
    plain_http_to_a_tls_receiver_gets_go_400_text,
    startup_errors_name_the_file,
);
