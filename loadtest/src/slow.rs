//! `loadtest slow`: slow and greedy clients beside a normal one.
//!
//! Owns: the attacks — slowloris heads (a header byte a second), slow bodies (a few body bytes a
//! second under a large `Content-Length`), slow readers (requests pipelined as fast as the
//! socket takes them, responses never read), idle keep-alive connections (one upload, then
//! silence), and a connection flood above `conn_limit` (connections that never send a byte) —
//! and the measurement: the normal client's latency (`generator::drive`, open loop) with each
//! attack running and without, whether and when the gateway cut each attacking connection,
//! and the gateway's connection gauge, memory and descriptors meanwhile. Does not own the
//! gateway process (`soak::Gateway`), the sink or the load. A tool: one attacker thread that
//! polls non-blocking sockets, everything on 127.0.0.1, every phase bounded in time.

use std::fmt::Write as _;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::bodies::{BodyPool, Mix};
use crate::generator::{self, Plan, RunResult, Schedule};
use crate::integrity::{Sink, SinkConfig};
use crate::report::{markdown_table, text_table, thousands};
use crate::soak::{self, Gateway, Spread};
use crate::stats::{Percentiles, fmt_us};

/// One kind of misbehaving client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attack {
    /// No attack: the baseline.
    None,
    /// A request head sent one byte a second, never finished.
    Slowloris,
    /// A complete head with `Content-Length: 1 MB`, then 16 body bytes a second.
    SlowBody,
    /// Requests pipelined as fast as the socket takes them; responses never read.
    SlowReader,
    /// One upload answered, then the connection kept open and silent.
    IdleKeepAlive,
    /// More connections than `conn_limit`, none of which sends a byte.
    Flood,
}

impl Attack {
    pub const ALL: [Attack; 7] = [
        Attack::None,
        Attack::Slowloris,
        Attack::SlowBody,
        Attack::SlowReader,
        Attack::IdleKeepAlive,
        Attack::Flood,
        Attack::None,
    ];

    /// `none`, `slowloris`, `slow-body`, `slow-reader`, `idle`, `flood`.
    pub fn parse(s: &str) -> Option<Attack> {
        Some(match s {
            "none" => Attack::None,
            "slowloris" => Attack::Slowloris,
            "slow-body" => Attack::SlowBody,
            "slow-reader" => Attack::SlowReader,
            "idle" => Attack::IdleKeepAlive,
            "flood" => Attack::Flood,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Attack::None => "none (baseline)",
            Attack::Slowloris => "slowloris heads",
            Attack::SlowBody => "slow bodies",
            Attack::SlowReader => "slow readers",
            Attack::IdleKeepAlive => "idle keep-alive",
            Attack::Flood => "connection flood",
        }
    }

    /// What should end the attacking connections.
    pub fn expected_cut(self) -> &'static str {
        match self {
            Attack::None => "—",
            Attack::Slowloris | Attack::SlowBody => "server_read_timeout",
            Attack::SlowReader => "server_write_timeout",
            Attack::IdleKeepAlive => "server_idle_timeout",
            Attack::Flood => "conn_limit, then server_read_timeout",
        }
    }
}

/// What a run does.
#[derive(Debug, Clone)]
pub struct SlowConfig {
    pub pyrogate_bin: PathBuf,
    pub cores: Option<usize>,
    pub conn_limit: usize,
    pub read_timeout: Duration,
    pub write_timeout: Duration,
    pub idle_timeout: Duration,
    /// The normal client's run in each phase.
    pub gen_duration: Duration,
    pub rate: f64,
    pub gen_connections: usize,
    pub mix: Mix,
    /// Attacking connections per attack (the flood opens `conn_limit + flood_extra`).
    pub attackers: usize,
    pub flood_extra: usize,
    pub attacks: Vec<Attack>,
    pub out_dir: PathBuf,
    pub quiet: bool,
}

/// One attacking connection.
#[derive(Debug)]
struct AConn {
    stream: TcpStream,
    opened: Instant,
    /// When the gateway ended it (seen as EOF, reset or a failed write).
    cut: Option<Duration>,
    /// Bytes of the drip (slowloris, slow body) sent so far.
    dripped: usize,
}

const SLOWLORIS_HEAD: &[u8] =
    b"POST /ingest?name=slowloris.cpu&format=folded HTTP/1.1\r\nHost: 127.0.0.1\r\n";
const SLOWLORIS_DRIP: &[u8] = b"X-Slow: aaaaaaaaaaaaaaaaaaaaaaaa\r\n";
const SLOW_BODY_HEAD: &[u8] = b"POST /ingest?name=slowbody.cpu&format=folded HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1000000\r\n\r\n";
const SLOW_BODY_DRIP: &[u8] = b"main;slow;body 1\n";
const PIPELINED: &[u8] = b"GET /nope HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
const IDLE_UPLOAD: &[u8] = b"POST /ingest?name=idle.cpu&format=folded HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 12\r\n\r\nmain;idle 1\n";

/// Whether `stream` has been closed by the peer (non-blocking peek at its input).
fn peer_closed(stream: &mut TcpStream) -> bool {
    let mut b = [0u8; 4096];
    loop {
        match stream.read(&mut b) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return true,
        }
    }
}

/// Writes what the socket takes now; `Err` only when the connection is gone.
fn write_some(stream: &mut TcpStream, data: &[u8]) -> io::Result<usize> {
    match stream.write(data) {
        Ok(n) => Ok(n),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(0),
        Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(0),
        Err(e) => Err(e),
    }
}

/// Opens the attacking connections of `attack` (blocking set-up, then non-blocking).
fn open(attack: Attack, gw: SocketAddr, n: usize) -> Vec<AConn> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let Ok(mut s) = TcpStream::connect_timeout(&gw, Duration::from_secs(5)) else {
            continue;
        };
        let _ = s.set_nodelay(true);
        let ok = match attack {
            Attack::Slowloris => s.write_all(SLOWLORIS_HEAD).is_ok(),
            Attack::SlowBody => s.write_all(SLOW_BODY_HEAD).is_ok(),
            Attack::IdleKeepAlive => {
                // One upload, its answer read, then silence.
                let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
                s.write_all(IDLE_UPLOAD).is_ok() && {
                    let mut got = Vec::new();
                    let mut b = [0u8; 1024];
                    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                        match s.read(&mut b) {
                            Ok(0) | Err(_) => break,
                            Ok(k) => got.extend_from_slice(&b[..k]),
                        }
                    }
                    got.starts_with(b"HTTP/1.1 200")
                }
            }
            Attack::None | Attack::SlowReader | Attack::Flood => true,
        };
        if ok && s.set_nonblocking(true).is_ok() {
            out.push(AConn {
                stream: s,
                opened: Instant::now(),
                cut: None,
                dripped: 0,
            });
        }
    }
    out
}

/// One tick of the attack on every connection still open: drip, flood the pipe, or just
/// watch; records when the gateway ended each.
fn tick(attack: Attack, conns: &mut [AConn], pipeline: &[u8]) {
    for c in conns.iter_mut().filter(|c| c.cut.is_none()) {
        let gone = match attack {
            Attack::Slowloris | Attack::SlowBody => {
                let drip = if attack == Attack::Slowloris {
                    SLOWLORIS_DRIP
                } else {
                    SLOW_BODY_DRIP
                };
                let (i, n) = if attack == Attack::Slowloris {
                    (c.dripped % drip.len(), 1)
                } else {
                    (0, drip.len())
                };
                match write_some(&mut c.stream, &drip[i..i + n]) {
                    Ok(k) => {
                        c.dripped += k;
                        peer_closed(&mut c.stream)
                    }
                    Err(_) => true,
                }
            }
            Attack::SlowReader => {
                // Never read: only a failed write says the gateway gave up.
                let mut gone = false;
                for _ in 0..64 {
                    match write_some(&mut c.stream, pipeline) {
                        Ok(0) => break,
                        Ok(_) => {}
                        Err(_) => {
                            gone = true;
                            break;
                        }
                    }
                }
                gone
            }
            Attack::IdleKeepAlive | Attack::Flood => peer_closed(&mut c.stream),
            Attack::None => false,
        };
        if gone {
            c.cut = Some(c.opened.elapsed());
        }
    }
}

/// One phase's results.
#[derive(Debug, Clone)]
pub struct PhaseResult {
    pub attack: Attack,
    pub opened: usize,
    /// Connections the gateway ended before the phase did, and how long after opening.
    pub cut: Vec<Duration>,
    pub watched: Duration,
    pub client: Percentiles,
    pub client_uploads: u64,
    pub client_ok: u64,
    pub client_errors: String,
    /// Highest `pyrogate_connections` seen during the phase.
    pub max_gateway_connections: u64,
    pub max_rss_kib: u64,
    pub max_fds: u64,
}

impl PhaseResult {
    pub fn cut_spread_ms(&self) -> Option<Spread> {
        Spread::of(self.cut.iter().map(|d| d.as_millis() as u64))
    }
}

/// A finished run.
#[derive(Debug)]
pub struct SlowRun {
    pub config: SlowConfig,
    pub gateway_cores: String,
    pub phases: Vec<PhaseResult>,
    pub started_unix: u64,
    pub wall: Duration,
}

fn gateway_config(c: &SlowConfig, sink: SocketAddr) -> String {
    format!(
        "pyroscope.receive_http \"slow\" {{\n\thttp {{\n\t\tlisten_address       = \"127.0.0.1\"\n\t\tlisten_port          = 0\n\t\tconn_limit           = {}\n\t\tserver_read_timeout  = \"{}ms\"\n\t\tserver_write_timeout = \"{}ms\"\n\t\tserver_idle_timeout  = \"{}ms\"\n\t}}\n\tforward_to = [pyroscope.write.sink.receiver]\n}}\n\npyroscope.write \"sink\" {{\n\tendpoint {{\n\t\turl = \"http://{sink}\"\n\t}}\n}}\n",
        c.conn_limit,
        c.read_timeout.as_millis(),
        c.write_timeout.as_millis(),
        c.idle_timeout.as_millis()
    )
}

/// Runs every phase against one gateway.
pub fn run(cfg: SlowConfig) -> anyhow::Result<SlowRun> {
    let wall = Instant::now();
    let started_unix = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let work = cfg.out_dir.join(format!("slow-{started_unix}-work"));
    std::fs::create_dir_all(&work)?;
    let mut sink = Sink::start(SinkConfig::default())?;
    let mut gw = Gateway::start(
        &cfg.pyrogate_bin,
        cfg.cores,
        &gateway_config(&cfg, sink.addr()),
        &work,
    )?;
    let pid = gw.pid();
    let admin = gw.admin;
    let pool = Arc::new(BodyPool::new(
        cfg.mix,
        crate::bodies::DEFAULT_TEMPLATES,
        200,
        7,
    ));
    let pipeline: Vec<u8> = PIPELINED.repeat(1024);
    let mut phases = Vec::new();
    for &attack in &cfg.attacks {
        let n = match attack {
            Attack::None => 0,
            Attack::Flood => cfg.conn_limit + cfg.flood_extra,
            _ => cfg.attackers,
        };
        let conns = Mutex::new(open(attack, gw.addr, n));
        let opened = conns.lock().map_or(0, |c| c.len());
        let stop = AtomicBool::new(false);
        let watch = Mutex::new((0u64, 0u64, 0u64));
        let phase_start = Instant::now();
        let run_tag = generator::new_run_tag();
        let plan = Plan {
            connections: cfg.gen_connections,
            schedule: Schedule::Rate(cfg.rate),
            duration: cfg.gen_duration,
            max_uploads: u64::MAX,
            timeout: Duration::from_secs(30),
        };
        // Watch at most until every expected cut had time to happen, with slack.
        let longest = cfg
            .read_timeout
            .max(cfg.write_timeout)
            .max(cfg.idle_timeout);
        let watch_for = match attack {
            Attack::None => Duration::ZERO,
            Attack::Flood => cfg.gen_duration.max(longest * 3) + Duration::from_secs(5),
            _ => cfg.gen_duration.max(longest * 2) + Duration::from_secs(5),
        };
        let result: RunResult = std::thread::scope(|scope| {
            scope.spawn(|| {
                let mut last_scrape = Instant::now() - Duration::from_secs(1);
                while !stop.load(Ordering::Relaxed) {
                    {
                        let mut c = conns.lock().unwrap_or_else(|e| e.into_inner());
                        tick(attack, &mut c, &pipeline);
                    }
                    if last_scrape.elapsed() >= Duration::from_millis(500) {
                        last_scrape = Instant::now();
                        let text = generator::http_get(admin, "/metrics", Duration::from_secs(2))
                            .map(|(_, b)| String::from_utf8_lossy(&b).into_owned())
                            .unwrap_or_default();
                        let g = soak::samples(&text, "pyrogate_connections")
                            .iter()
                            .map(|s| s.value)
                            .sum::<f64>() as u64;
                        let mut w = watch.lock().unwrap_or_else(|e| e.into_inner());
                        w.0 = w.0.max(g);
                        w.1 = w.1.max(soak::rss_kib(pid).unwrap_or(0));
                        w.2 = w.2.max(soak::fd_count(pid).unwrap_or(0));
                    }
                    std::thread::sleep(Duration::from_millis(if attack == Attack::SlowReader {
                        50
                    } else {
                        1000
                    }));
                }
            });
            std::thread::sleep(Duration::from_secs(1));
            let make = |i: u64| pool.request(generator::id(run_tag, i));
            let r = generator::drive(gw.addr, &plan, &make, "slow", false);
            // Keep attacking until every connection was cut or the watch is over.
            while phase_start.elapsed() < watch_for {
                let all_cut = conns
                    .lock()
                    .is_ok_and(|c| c.iter().all(|c| c.cut.is_some()));
                if all_cut {
                    break;
                }
                std::thread::sleep(Duration::from_millis(200));
            }
            stop.store(true, Ordering::Relaxed);
            r
        });
        let conns = conns.into_inner().unwrap_or_else(|e| e.into_inner());
        let (max_conns, max_rss, max_fds) = watch.into_inner().unwrap_or_else(|e| e.into_inner());
        let p = PhaseResult {
            attack,
            opened,
            cut: conns.iter().filter_map(|c| c.cut).collect(),
            watched: phase_start.elapsed(),
            client: result.latencies.percentiles(),
            client_uploads: result.uploads(),
            client_ok: result.accepted(),
            client_errors: result.outcomes.errors_text(),
            max_gateway_connections: max_conns,
            max_rss_kib: max_rss,
            max_fds,
        };
        drop(conns);
        if !cfg.quiet {
            eprintln!(
                "slow: {:<17} opened {:>4}, cut {:>4} in {:.0}s; client p50={} p99={} errors: {}",
                attack.name(),
                p.opened,
                p.cut.len(),
                p.watched.as_secs_f64(),
                fmt_us(p.client.p50),
                fmt_us(p.client.p99),
                if p.client_errors.is_empty() {
                    "none"
                } else {
                    &p.client_errors
                }
            );
        }
        phases.push(p);
        // Let the gateway see the attackers' sockets close before the next phase.
        std::thread::sleep(Duration::from_secs(2));
    }
    let cores = gw.cores.clone();
    let _ = gw.stop();
    sink.stop();
    Ok(SlowRun {
        config: cfg,
        gateway_cores: cores,
        phases,
        started_unix,
        wall: wall.elapsed(),
    })
}

pub const HEADERS: [&str; 10] = [
    "attack",
    "attacking conns",
    "cut by gateway",
    "time to cut min / median / max",
    "expected cut",
    "max gateway conns",
    "client uploads (200)",
    "client p50",
    "client p99",
    "client errors",
];

pub fn rows(r: &SlowRun) -> Vec<Vec<String>> {
    r.phases
        .iter()
        .map(|p| {
            let cut = p.cut_spread_ms().map_or_else(
                || "—".to_string(),
                |s| {
                    format!(
                        "{:.1} / {:.1} / {:.1} s",
                        s.min as f64 / 1e3,
                        s.median as f64 / 1e3,
                        s.max as f64 / 1e3
                    )
                },
            );
            vec![
                p.attack.name().to_string(),
                thousands(p.opened as u64),
                format!("{}", p.cut.len()),
                cut,
                p.attack.expected_cut().to_string(),
                thousands(p.max_gateway_connections),
                format!(
                    "{} ({})",
                    thousands(p.client_uploads),
                    thousands(p.client_ok)
                ),
                fmt_us(p.client.p50),
                fmt_us(p.client.p99),
                if p.client_errors.is_empty() {
                    "none".into()
                } else {
                    p.client_errors.clone()
                },
            ]
        })
        .collect()
}

pub fn text(r: &SlowRun) -> String {
    let c = &r.config;
    let mut out = format!(
        "slow clients: pyrogate cores={}, conn_limit={}, read/write/idle timeouts {:?}/{:?}/{:?}; normal client: {} mix, open loop {}/s, {} connections, {:?} per phase\n",
        r.gateway_cores,
        c.conn_limit,
        c.read_timeout,
        c.write_timeout,
        c.idle_timeout,
        c.mix.name(),
        c.rate,
        c.gen_connections,
        c.gen_duration
    );
    out.push_str(&text_table(&HEADERS, &rows(r)));
    for p in &r.phases {
        let _ = writeln!(
            out,
            "  {}: gateway max RSS {:.1} MiB, max fds {}, client max latency {}",
            p.attack.name(),
            p.max_rss_kib as f64 / 1024.0,
            p.max_fds,
            fmt_us(p.client.max)
        );
    }
    out
}

pub fn markdown(r: &SlowRun) -> String {
    markdown_table(&HEADERS, &rows(r))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn a_closed_peer_is_seen_and_an_open_one_is_not() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        c.set_nonblocking(true).unwrap();
        let (server, _) = l.accept().unwrap();
        assert!(!peer_closed(&mut c));
        drop(server);
        std::thread::sleep(Duration::from_millis(50));
        assert!(peer_closed(&mut c));
    }

    #[test]
    fn the_drip_ticks_send_one_byte_or_one_line() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut conns = open(Attack::Slowloris, l.local_addr().unwrap(), 1);
        let (mut server, _) = l.accept().unwrap();
        tick(Attack::Slowloris, &mut conns, &[]);
        tick(Attack::Slowloris, &mut conns, &[]);
        assert_eq!(conns[0].dripped, 2);
        let mut got = vec![0u8; SLOWLORIS_HEAD.len() + 2];
        server.read_exact(&mut got).unwrap();
        assert!(got.ends_with(b"X-"));
        drop(server);
        std::thread::sleep(Duration::from_millis(50));
        tick(Attack::Slowloris, &mut conns, &[]);
        tick(Attack::Slowloris, &mut conns, &[]);
        assert!(conns[0].cut.is_some());
    }

    #[test]
    fn every_attack_names_what_should_cut_it() {
        for a in Attack::ALL {
            assert!(!a.name().is_empty());
            assert!(
                [
                    "none",
                    "slowloris",
                    "slow-body",
                    "slow-reader",
                    "idle",
                    "flood"
                ]
                .iter()
                .any(|n| Attack::parse(n) == Some(a))
            );
            assert!(!a.expected_cut().is_empty());
        }
    }
}
