//! The admin listener (`--server.http.listen-addr`, default `127.0.0.1:12345` as in Alloy):
//! `/metrics`, `/-/ready`, `/-/healthy`, and the status page (`/`, refreshed from
//! `/-/status.json`; rendered by `status`).
//!
//! Owns: a small blocking HTTP server on its own thread (never a core thread) and gathering a
//! metrics snapshot from every core over the control channels. Does not own: the metrics
//! themselves. Cold path: one scrape at a time.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use crate::config::Config;
use crate::metrics::{self, CoreSnapshot};
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
pub fn serve(listener: TcpListener, config: Arc<Config>, cores: Arc<Vec<CoreHandle>>) {
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        let _ = handle(stream, &config, &cores);
    }
}

fn handle(mut s: TcpStream, config: &Config, cores: &[CoreHandle]) -> std::io::Result<()> {
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.set_write_timeout(Some(Duration::from_secs(5)))?;
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    let path = loop {
        let n = s.read(&mut chunk)?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut req = httparse::Request::new(&mut headers);
        match req.parse(&buf) {
            Ok(httparse::Status::Complete(_)) => break req.path.unwrap_or("/").to_string(),
            Ok(httparse::Status::Partial) if buf.len() < MAX_ADMIN_REQUEST_BYTES => {}
            _ => return respond(&mut s, 400, "text/plain", "bad request\n"),
        }
    };
    match path.split('?').next().unwrap_or("") {
        "/metrics" => {
            let body = metrics::render(config, &gather(cores));
            respond(
                &mut s,
                200,
                "text/plain; version=0.0.4; charset=utf-8",
                &body,
            )
        }
        "/" | crate::status::JSON_PATH => {
            let snapshot = gather(cores);
            let process = metrics::Process::current();
            let now_unix_ms = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
            let view = crate::status::Status {
                config,
                snapshot: &snapshot,
                process: &process,
                cores: cores.len(),
                now_unix_ms,
            };
            if path.starts_with(crate::status::JSON_PATH) {
                let body = crate::status::render_json(&view);
                respond_status(&mut s, "application/json", &body)
            } else {
                let body = crate::status::render_html(&view);
                respond_status(&mut s, "text/html; charset=utf-8", &body)
            }
        }
        "/-/ready" => respond(&mut s, 200, "text/plain", "ready\n"),
        "/-/healthy" => respond(&mut s, 200, "text/plain", "healthy\n"),
        _ => respond(&mut s, 404, "text/plain", "404 page not found\n"),
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
