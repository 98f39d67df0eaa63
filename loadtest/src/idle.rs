//! `loadtest idle`: what idle keep-alive connections cost a proxy in resident memory.
//!
//! Owns: opening N connections to a started system (pyrogate at its default core count, then
//! nginx with as many workers), sending one upload on each and keeping them open, and sampling
//! the system's resident memory (`VmRSS`, summed over its processes) before, while the
//! connections sit idle, and after they close. Does not own: starting the systems
//! ([`crate::compare`]) or the sink ([`crate::integrity`]).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};

use crate::bodies::{BodyPool, Mix, UploadId};
use crate::compare::{self, Started};
use crate::integrity::{Sink, SinkConfig};

/// How long a connection may take to get its answer.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);
/// The largest response head this client reads.
const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// What `loadtest idle` runs.
#[derive(Debug, Clone)]
pub struct IdleConfig {
    pub connections: usize,
    /// pyrogate's core threads and nginx's workers.
    pub cores: usize,
    /// How long to wait before each sample, for the system to settle.
    pub settle: Duration,
    pub pyrogate_bin: PathBuf,
    pub nginx_bin: Option<PathBuf>,
    pub out_dir: PathBuf,
}

/// One system's samples, in KiB.
#[derive(Debug, Clone)]
pub struct IdleResult {
    pub system: String,
    pub before: u64,
    pub idle: u64,
    pub closed: u64,
    pub connections: usize,
}

impl IdleResult {
    /// Resident bytes each idle connection costs.
    pub fn bytes_per_connection(&self) -> f64 {
        (self.idle as f64 - self.before as f64) * 1024.0 / self.connections.max(1) as f64
    }

    /// Resident memory after the connections closed, relative to before they opened.
    pub fn closed_vs_before(&self) -> f64 {
        self.closed as f64 / self.before.max(1) as f64
    }
}

/// Runs pyrogate, then nginx (when installed), each against its own sink.
pub fn run(cfg: &IdleConfig) -> anyhow::Result<Vec<IdleResult>> {
    let mut out = Vec::new();
    let pool = BodyPool::new(Mix::Go, 8, 64, 11);
    let work = cfg.out_dir.join("idle-work");
    std::fs::create_dir_all(&work)?;
    {
        let mut sink = Sink::start(SinkConfig::default())?;
        let dir = work.join("pyrogate");
        std::fs::create_dir_all(&dir)?;
        // Default receiver settings: Alloy's `conn_limit` (16,384) admits the connections.
        let config = compare::pyrogate_config(&[sink.addr()]);
        let sys = compare::start_pyrogate_with(&cfg.pyrogate_bin, cfg.cores, &config, &dir)?;
        out.push(measure(
            cfg,
            &pool,
            sys,
            format!("pyrogate --cores={}", cfg.cores),
        )?);
        sink.stop();
    }
    if let Some(nginx) = &cfg.nginx_bin {
        let mut sink = Sink::start(SinkConfig::default())?;
        let dir = work.join("nginx");
        std::fs::create_dir_all(&dir)?;
        let port = compare::free_port()?;
        // Every client connection and the upstream pool must fit in one worker.
        let config = compare::nginx_config(&dir, port, &[sink.addr()], cfg.cores);
        if !config.contains("worker_connections 4096") {
            bail!("nginx_config changed its worker_connections line");
        }
        let config = config.replace(
            "worker_connections 4096",
            &format!("worker_connections {}", cfg.connections + 1024),
        );
        let sys = compare::start_nginx_with(nginx, &config, &dir)?;
        out.push(measure(
            cfg,
            &pool,
            sys,
            format!("nginx {} workers", cfg.cores),
        )?);
        sink.stop();
    }
    Ok(out)
}

fn measure(
    cfg: &IdleConfig,
    pool: &BodyPool,
    sys: Started,
    name: String,
) -> anyhow::Result<IdleResult> {
    std::thread::sleep(cfg.settle);
    let before = sys.rss_kib().context("reading VmRSS")?;
    let mut conns = Vec::with_capacity(cfg.connections);
    for seq in 0..cfg.connections as u64 {
        conns.push(
            one_upload(sys.addr(), pool, seq)
                .with_context(|| format!("{name}: upload on connection {seq}"))?,
        );
    }
    std::thread::sleep(cfg.settle);
    let idle = sys.rss_kib().context("reading VmRSS")?;
    drop(conns);
    std::thread::sleep(cfg.settle);
    let closed = sys.rss_kib().context("reading VmRSS")?;
    if let Some(problem) = sys.stop() {
        bail!("{name}: {problem}");
    }
    Ok(IdleResult {
        system: name,
        before,
        idle,
        closed,
        connections: cfg.connections,
    })
}

/// Opens a connection, sends one upload, reads a 200 and its body; returns the open socket.
fn one_upload(addr: SocketAddr, pool: &BodyPool, seq: u64) -> anyhow::Result<TcpStream> {
    let req = pool.request(UploadId { run: 1, seq });
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(ANSWER_TIMEOUT))?;
    let mut wire = req.head("127.0.0.1");
    for piece in &req.body {
        wire.extend_from_slice(piece);
    }
    s.write_all(&wire)?;
    let mut got = Vec::new();
    let mut chunk = [0u8; 4096];
    let (head_end, body_len) = loop {
        let n = s.read(&mut chunk)?;
        if n == 0 {
            bail!("closed before the answer");
        }
        got.extend_from_slice(&chunk[..n]);
        if let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&got[..end]).to_ascii_lowercase();
            if !head.starts_with("http/1.1 200") {
                bail!("answer {:?}", head.lines().next().unwrap_or(""));
            }
            let len = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            break (end + 4, len);
        }
        if got.len() > MAX_RESPONSE_BYTES {
            bail!("response head over {MAX_RESPONSE_BYTES} bytes");
        }
    };
    while got.len() < head_end + body_len {
        let n = s.read(&mut chunk)?;
        if n == 0 {
            bail!("closed inside the answer body");
        }
        got.extend_from_slice(&chunk[..n]);
    }
    Ok(s)
}

/// The results as a markdown table.
pub fn markdown(results: &[IdleResult]) -> String {
    let mut t = String::from(
        "| system | connections | RSS before | idle | after close | per idle connection | after close / before |\n|---|---:|---:|---:|---:|---:|---:|\n",
    );
    for r in results {
        t.push_str(&format!(
            "| {} | {} | {:.1} MiB | {:.1} MiB | {:.1} MiB | {:.0} B | {:.2} |\n",
            r.system,
            r.connections,
            r.before as f64 / 1024.0,
            r.idle as f64 / 1024.0,
            r.closed as f64 / 1024.0,
            r.bytes_per_connection(),
            r.closed_vs_before(),
        ));
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_connection_cost_is_the_growth_over_the_connections() {
        let r = IdleResult {
            system: "x".into(),
            before: 10_000,
            idle: 14_000,
            closed: 11_000,
            connections: 4_096,
        };
        assert_eq!(r.bytes_per_connection(), 1000.0);
        assert!((r.closed_vs_before() - 1.1).abs() < 1e-9);
        assert!(
            markdown(&[r]).contains("| x | 4096 | 9.8 MiB | 13.7 MiB | 10.7 MiB | 1000 B | 1.10 |")
        );
    }
}
