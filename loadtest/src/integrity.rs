//! `loadtest sink`: the test kit's Pyroscope stand-in ([`testkit::MockPyroscope`]) set up for
//! load — no request recording, seeded random faults — plus loadtest's own integrity layer on
//! top of it.
//!
//! Owns: the checksum check of every accepted profile payload ([`crate::bodies::verify`], through
//! the stand-in's inspector hook: a corrupt payload is refused with 422), per-upload delivery
//! counts, [`SinkStats`] (the stand-in's counters plus those) with its JSON form, served at
//! `GET /-/loadtest/stats` through the stand-in's handler hook, and the latency spec syntax of
//! the command line. Does not own any HTTP serving, Pyroscope rule or fault draw: the kit does,
//! with its own parsers (never pyrogate's).

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use testkit::MockPyroscope;
use testkit::http::response_bytes;
use testkit::server::{Counters, OnAnswer};

pub use testkit::faults::{Faults, Latency};
pub use testkit::rules::DEFAULT_BODY_LIMIT;
pub use testkit::server::DEFAULT_MAX_CONNECTIONS;

use crate::bodies::{self, UploadId};

/// Highest upload sequence number tracked per run (bounds the delivery table's memory: 1 byte
/// per upload).
pub const MAX_TRACKED_SEQ: u64 = 64 * 1024 * 1024;
/// The stats route.
pub const STATS_PATH: &str = "/-/loadtest/stats";

/// `0`, `5ms`, `2ms..20ms` (uniform), `exp:10ms`.
pub fn parse_latency(s: &str) -> Option<Latency> {
    if s == "0" || s == "none" {
        return Some(Latency::None);
    }
    if let Some(mean) = s.strip_prefix("exp:") {
        return Some(Latency::Exponential(crate::cli::parse_duration(mean)?));
    }
    if let Some((lo, hi)) = s.split_once("..") {
        let (lo, hi) = (
            crate::cli::parse_duration(lo)?,
            crate::cli::parse_duration(hi)?,
        );
        return (lo <= hi).then_some(Latency::Uniform(lo, hi));
    }
    crate::cli::parse_duration(s).map(Latency::Fixed)
}

/// A sink's configuration.
#[derive(Debug, Clone)]
pub struct SinkConfig {
    pub listen: SocketAddr,
    pub body_limit: usize,
    pub faults: Faults,
    pub seed: u64,
    pub max_connections: usize,
}

impl Default for SinkConfig {
    fn default() -> Self {
        SinkConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            body_limit: DEFAULT_BODY_LIMIT,
            faults: Faults::default(),
            seed: 1,
            max_connections: DEFAULT_MAX_CONNECTIONS,
        }
    }
}

/// Counters of one sink.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SinkStats {
    pub requests: u64,
    pub body_bytes: u64,
    /// Answers by status (injected ones included).
    pub statuses: BTreeMap<u16, u64>,
    pub resets: u64,
    pub hangs: u64,
    /// Payloads whose trailer did not match their bytes.
    pub corrupt: u64,
    /// Accepted payloads without a trailer.
    pub unmarked: u64,
    pub connections: u64,
    pub refused_connections: u64,
    /// `(requests, body bytes)` per label set.
    pub label_sets: HashMap<String, (u64, u64)>,
    /// Per generator run: how many times each upload was delivered (answered 200), by seq.
    pub deliveries: HashMap<u32, Vec<u8>>,
}

/// What the integrity layer counts beside the stand-in.
#[derive(Debug, Clone, Default)]
struct Integrity {
    corrupt: u64,
    unmarked: u64,
    deliveries: HashMap<u32, Vec<u8>>,
}

impl Integrity {
    fn record_delivery(&mut self, id: UploadId) {
        if id.seq >= MAX_TRACKED_SEQ {
            return;
        }
        let counts = self.deliveries.entry(id.run).or_default();
        let at = id.seq as usize;
        if counts.len() <= at {
            counts.resize(at + 1, 0);
        }
        counts[at] = counts[at].saturating_add(1);
    }
}

fn lock(m: &Mutex<Integrity>) -> MutexGuard<'_, Integrity> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl SinkStats {
    fn from_parts(c: Counters, i: Integrity) -> SinkStats {
        SinkStats {
            requests: c.requests,
            body_bytes: c.body_bytes,
            statuses: c.statuses,
            resets: c.resets,
            hangs: c.hangs,
            corrupt: i.corrupt,
            unmarked: i.unmarked,
            connections: c.connections,
            refused_connections: c.refused_connections,
            label_sets: c.label_sets,
            deliveries: i.deliveries,
        }
    }

    /// Times upload `id` was delivered.
    pub fn delivered(&self, id: UploadId) -> u8 {
        self.deliveries
            .get(&id.run)
            .and_then(|v| v.get(usize::try_from(id.seq).ok()?).copied())
            .unwrap_or(0)
    }

    /// JSON: totals, statuses, the 20 busiest label sets, and deliveries run-length encoded as
    /// `[first_seq, end_seq_exclusive, count]`.
    pub fn to_json(&self) -> serde_json::Value {
        let mut busiest: Vec<(&String, &(u64, u64))> = self.label_sets.iter().collect();
        busiest.sort_by(|a, b| b.1.0.cmp(&a.1.0).then(a.0.cmp(b.0)));
        let runs: serde_json::Map<String, serde_json::Value> = self
            .deliveries
            .iter()
            .map(|(run, counts)| (format!("{run:08x}"), serde_json::json!(run_lengths(counts))))
            .collect();
        serde_json::json!({
            "requests": self.requests,
            "body_bytes": self.body_bytes,
            "statuses": self.statuses.iter().map(|(k, v)| (k.to_string(), *v)).collect::<BTreeMap<_, _>>(),
            "resets": self.resets,
            "hangs": self.hangs,
            "corrupt": self.corrupt,
            "unmarked": self.unmarked,
            "connections": self.connections,
            "refused_connections": self.refused_connections,
            "label_sets": self.label_sets.len(),
            "busiest_label_sets": busiest.iter().take(20).map(|(k, (n, b))| serde_json::json!({"labels": k, "requests": n, "bytes": b})).collect::<Vec<_>>(),
            "deliveries": runs,
        })
    }

    /// Reads back what [`SinkStats::to_json`] wrote (label sets are not round-tripped).
    pub fn from_json(v: &serde_json::Value) -> Option<SinkStats> {
        let u = |k: &str| v.get(k).and_then(serde_json::Value::as_u64).unwrap_or(0);
        let mut stats = SinkStats {
            requests: u("requests"),
            body_bytes: u("body_bytes"),
            resets: u("resets"),
            hangs: u("hangs"),
            corrupt: u("corrupt"),
            unmarked: u("unmarked"),
            connections: u("connections"),
            refused_connections: u("refused_connections"),
            ..SinkStats::default()
        };
        for (k, n) in v.get("statuses")?.as_object()? {
            stats.statuses.insert(k.parse().ok()?, n.as_u64()?);
        }
        for (run, ranges) in v.get("deliveries")?.as_object()? {
            let run = u32::from_str_radix(run, 16).ok()?;
            let mut counts = Vec::new();
            for r in ranges.as_array()? {
                let r = r.as_array()?;
                let (a, b, c) = (
                    r.first()?.as_u64()?,
                    r.get(1)?.as_u64()?,
                    r.get(2)?.as_u64()?,
                );
                if b > MAX_TRACKED_SEQ || a > b {
                    return None;
                }
                if counts.len() < b as usize {
                    counts.resize(b as usize, 0);
                }
                counts[a as usize..b as usize].fill(u8::try_from(c).unwrap_or(u8::MAX));
            }
            stats.deliveries.insert(run, counts);
        }
        Some(stats)
    }
}

/// Run-length encoding of delivery counts: `[first, end_exclusive, count]`.
pub fn run_lengths(counts: &[u8]) -> Vec<[u64; 3]> {
    let mut out: Vec<[u64; 3]> = Vec::new();
    for (i, &c) in counts.iter().enumerate() {
        match out.last_mut() {
            Some(last) if last[2] == u64::from(c) && last[1] == i as u64 => last[1] += 1,
            _ => out.push([i as u64, i as u64 + 1, u64::from(c)]),
        }
    }
    out
}

/// The inspector: refuses a request with a corrupt payload, and on a 200 counts each payload's
/// delivery (or that it was unmarked).
fn inspect(integrity: &Arc<Mutex<Integrity>>, payloads: &[&[u8]]) -> Result<OnAnswer, String> {
    let verdicts: Vec<bodies::Verdict> = payloads.iter().map(|p| bodies::verify(p)).collect();
    let corrupt = verdicts
        .iter()
        .filter(|v| **v == bodies::Verdict::Corrupt)
        .count();
    if corrupt > 0 {
        lock(integrity).corrupt += corrupt as u64;
        return Err("loadtest: payload checksum mismatch".into());
    }
    let integrity = Arc::clone(integrity);
    Ok(Box::new(move |status| {
        if status != 200 {
            return;
        }
        let mut i = lock(&integrity);
        for v in verdicts {
            match v {
                bodies::Verdict::Valid(id) => i.record_delivery(id),
                bodies::Verdict::Unmarked => i.unmarked += 1,
                bodies::Verdict::Corrupt => {}
            }
        }
    }))
}

/// A running sink.
#[derive(Debug)]
pub struct Sink {
    mock: MockPyroscope,
    integrity: Arc<Mutex<Integrity>>,
}

impl Sink {
    /// Binds and starts serving.
    pub fn start(config: SinkConfig) -> io::Result<Sink> {
        let integrity = Arc::new(Mutex::new(Integrity::default()));
        let (for_inspector, for_stats) = (Arc::clone(&integrity), Arc::clone(&integrity));
        let mock = MockPyroscope::builder()
            .listen(config.listen)
            .body_limit(config.body_limit)
            .faults(config.faults, config.seed)
            .max_connections(config.max_connections)
            .record(false)
            .inspector(Arc::new(move |payloads| inspect(&for_inspector, payloads)))
            .handler(Arc::new(move |request, view| {
                (request.method == "GET" && request.path == STATS_PATH).then(|| {
                    let stats = SinkStats::from_parts(view.counters(), lock(&for_stats).clone());
                    let json = stats.to_json().to_string();
                    response_bytes(200, Some("application/json"), &[], json.as_bytes(), false)
                })
            }))
            .try_start()?;
        Ok(Sink { mock, integrity })
    }

    pub fn addr(&self) -> SocketAddr {
        self.mock.addr()
    }

    /// A copy of the counters now.
    pub fn stats(&self) -> SinkStats {
        SinkStats::from_parts(self.mock.counters(), lock(&self.integrity).clone())
    }

    /// Stops accepting and ends every connection (hangs included).
    pub fn stop(&mut self) {
        self.mock.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bodies::{BodyPool, Mix};
    use std::time::Duration;

    #[test]
    fn latency_specs_parse() {
        assert_eq!(parse_latency("0"), Some(Latency::None));
        assert_eq!(
            parse_latency("5ms"),
            Some(Latency::Fixed(Duration::from_millis(5)))
        );
        assert_eq!(
            parse_latency("2ms..20ms"),
            Some(Latency::Uniform(
                Duration::from_millis(2),
                Duration::from_millis(20)
            ))
        );
        assert_eq!(
            parse_latency("exp:10ms"),
            Some(Latency::Exponential(Duration::from_millis(10)))
        );
        assert_eq!(parse_latency("20ms..2ms"), None);
        assert_eq!(parse_latency("fast"), None);
    }

    #[test]
    fn generated_bodies_of_every_shape_are_accepted_with_valid_trailers() {
        let sink = Sink::start(SinkConfig::default()).expect("sink");
        let mut client = testkit::Client::connect(sink.addr());
        for (run, mix) in [Mix::All, Mix::Jfr, Mix::PushPython, Mix::PushDotnet]
            .into_iter()
            .enumerate()
        {
            let run = 7 + run as u32;
            let pool = BodyPool::new(mix, 10, 3, 9);
            for seq in 0..10 {
                let id = UploadId { run, seq };
                let r = pool.request(id);
                let mut bytes = r.head("sink.test");
                bytes.extend_from_slice(&r.body.concat());
                client.send(&bytes);
                let response = client.read_response();
                assert_eq!(response.status, 200, "{mix:?} {}: {response:?}", r.target);
            }
        }
        let stats = sink.stats();
        for run in 7..11 {
            for seq in 0..10 {
                assert_eq!(stats.delivered(UploadId { run, seq }), 1, "run {run}");
            }
        }
        assert_eq!((stats.corrupt, stats.unmarked), (0, 0));
        assert!(stats.label_sets.keys().all(|k| k.contains("svc-")));
    }

    #[test]
    fn delivery_counts_round_trip_through_json_run_lengths() {
        let mut i = Integrity::default();
        for seq in [0, 1, 2, 4, 4, 5] {
            i.record_delivery(UploadId { run: 3, seq });
        }
        let s = SinkStats::from_parts(Counters::default(), i);
        assert_eq!(
            run_lengths(&s.deliveries[&3]),
            vec![[0, 3, 1], [3, 4, 0], [4, 5, 2], [5, 6, 1]]
        );
        let back = SinkStats::from_json(&s.to_json()).unwrap();
        assert_eq!(back.deliveries, s.deliveries);
        assert_eq!(back.delivered(UploadId { run: 3, seq: 4 }), 2);
        assert_eq!(back.delivered(UploadId { run: 3, seq: 99 }), 0);
        // Ranges out of order still rebuild the same table; malformed ones are refused.
        let shuffled =
            serde_json::json!({"statuses": {}, "deliveries": {"00000003": [[4, 6, 1], [0, 2, 1]]}});
        assert_eq!(
            SinkStats::from_json(&shuffled).unwrap().deliveries[&3],
            vec![1, 1, 0, 0, 1, 1]
        );
        let reversed = serde_json::json!({"statuses": {}, "deliveries": {"00000003": [[5, 2, 1]]}});
        assert_eq!(SinkStats::from_json(&reversed), None);
    }
}
