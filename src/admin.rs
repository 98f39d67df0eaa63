//! The admin listener (`--server.http.listen-addr`, default `127.0.0.1:12345` as in Alloy):
//! `/metrics`, `/-/ready`, `/-/healthy`, the status page (`/`, refreshed from
//! `/-/status.json`; rendered by `status`), and `/-/reload`.
//!
//! Owns: a small blocking HTTP server on its own thread (never a core thread) and gathering a
//! metrics snapshot from every core over the control channels. Does not own: the metrics
//! themselves. Cold path: one scrape at a time.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use crate::metrics::{self, CoreSnapshot};
use crate::reload::Reloader;
use crate::worker::{CoreHandle, CoreMsg};

/// How long a scrape waits for each core's snapshot.
const SNAPSHOT_TIMEOUT: Duration = Duration::from_secs(2);
/// Largest admin request head read.
const MAX_ADMIN_REQUEST_BYTES: usize = 8 * 1024;

/// Asks every core for its metrics and merges them.
pub fn gather(cores: &[CoreHandle]) -> CoreSnapshot {
    let (tx, rx) = crossbeam_channel::bounded(cores.len().max(1));
    for c in cores {
        c.send(CoreMsg::Snapshot(tx.clone()));
    }
    let mut merged = CoreSnapshot::default();
    for _ in cores {
        match rx.recv_timeout(SNAPSHOT_TIMEOUT) {
            Ok(s) => merged.merge(&s),
            Err(_) => break,
        }
    }
    merged
}

/// Serves admin requests until the process exits.
pub fn serve(listener: TcpListener, reloader: Arc<Reloader>, cores: Arc<Vec<CoreHandle>>) {
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        let _ = handle(stream, &reloader, &cores);
    }
}

fn handle(mut s: TcpStream, reloader: &Reloader, cores: &[CoreHandle]) -> std::io::Result<()> {
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.set_write_timeout(Some(Duration::from_secs(5)))?;
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    let (method, path) = loop {
        let n = s.read(&mut chunk)?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut req = httparse::Request::new(&mut headers);
        match req.parse(&buf) {
            Ok(httparse::Status::Complete(_)) => {
                break (
                    req.method.unwrap_or("GET").to_string(),
                    req.path.unwrap_or("/").to_string(),
                );
            }
            Ok(httparse::Status::Partial) if buf.len() < MAX_ADMIN_REQUEST_BYTES => {}
            _ => return respond(&mut s, 400, "text/plain", "bad request\n"),
        }
    };
    match path.split('?').next().unwrap_or("") {
        "/metrics" => {
            let mut body = reloader.settled(|config| metrics::render(config, &gather(cores)));
            body.push_str(&reloader.render_metrics());
            respond(
                &mut s,
                200,
                "text/plain; version=0.0.4; charset=utf-8",
                &body,
            )
        }
        "/" | crate::status::JSON_PATH => {
            let process = metrics::Process::current();
            let now_unix_ms = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
            let json = path.starts_with(crate::status::JSON_PATH);
            let (content_type, body) = reloader.settled(|config| {
                let snapshot = gather(cores);
                let view = crate::status::Status {
                    config,
                    snapshot: &snapshot,
                    process: &process,
                    cores: cores.len(),
                    now_unix_ms,
                };
                if json {
                    ("application/json", crate::status::render_json(&view))
                } else {
                    (
                        "text/html; charset=utf-8",
                        crate::status::render_html(&view),
                    )
                }
            });
            respond_status(&mut s, content_type, &body)
        }
        "/-/ready" => respond(&mut s, 200, "text/plain", "ready\n"),
        "/-/healthy" => respond(&mut s, 200, "text/plain", "healthy\n"),
        "/-/reload" => reload(&mut s, &method, reloader),
        _ => respond(&mut s, 404, "text/plain", "404 page not found\n"),
    }
}

/// `/-/reload`: re-reads the config file. GET and POST as Alloy's handler
/// (internal/service/http/http.go: `config reloaded` on success, 400 with the error text
/// otherwise), PUT too as Prometheus' (web/web.go). 200 once every core runs the new
/// configuration; 400 with the diagnostics (as `pyrogate validate` prints them) when it is
/// invalid, the running one staying.
fn reload(s: &mut TcpStream, method: &str, reloader: &Reloader) -> std::io::Result<()> {
    if !matches!(method, "POST" | "PUT" | "GET") {
        return respond(
            s,
            405,
            "text/plain",
            "Only POST, PUT or GET requests allowed\n",
        );
    }
    match reloader.reload() {
        Ok(_) => respond(s, 200, "text/plain", "config reloaded\n"),
        Err(e) => {
            let mut body = e.to_string();
            if !body.ends_with('\n') {
                body.push('\n');
            }
            respond(s, e.status(), "text/plain; charset=utf-8", &body)
        }
    }
}

fn respond(s: &mut TcpStream, status: u16, ct: &str, body: &str) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: {ct}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        crate::h1::reason_phrase(status),
        body.len()
    );
    s.write_all(head.as_bytes())?;
    s.write_all(body.as_bytes())
}

/// A status page answer: never cached, and (for the page) a content security policy that
/// allows only its own inline style and script and fetches from this origin, so the page
/// cannot load anything external even if a rendering bug let markup through.
fn respond_status(s: &mut TcpStream, ct: &str, body: &str) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: {ct}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nContent-Security-Policy: default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; connect-src 'self'\r\nX-Content-Type-Options: nosniff\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes())?;
    s.write_all(body.as_bytes())
}
