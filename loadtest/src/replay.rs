//! `loadtest replay DIR`: sends captured uploads again, paced as they were captured.
//!
//! Owns: turning pyrogate's `file://` capture records (`pyrogate::capture::read_dir_records`)
//! into requests and an open-loop schedule: record `i` is due `(captured_at[i] - captured_at[0])
//! / speedup` after the start, so bursts in the capture are bursts in the replay, and latency is
//! measured from that due time (no coordinated omission). Does not own sending (`generator`).
//! Cold path.

use std::time::Duration;

use bytes::Bytes;
use pyrogate::capture::Record;

use crate::bodies::Request;

/// Headers of a record that are not replayed (framing and hop-by-hop fields; the sender sets
/// its own `Host` and `Content-Length`).
const SKIPPED_HEADERS: &[&str] = &["host", "content-length", "transfer-encoding", "connection"];

/// Records in capture order (stable for equal timestamps).
pub fn sort_records(records: &mut [Record]) {
    records.sort_by_key(|r| r.captured_at_unix_ns);
}

/// The due time of each (sorted) record relative to the first, divided by `speedup`
/// (`speedup` ≤ 0 or not finite: everything at once).
pub fn offsets(records: &[Record], speedup: f64) -> Vec<Duration> {
    let first = records.first().map_or(0, |r| r.captured_at_unix_ns);
    records
        .iter()
        .map(|r| {
            let ns = r.captured_at_unix_ns.saturating_sub(first) as f64;
            if speedup.is_finite() && speedup > 0.0 {
                Duration::from_nanos((ns / speedup).min(u64::MAX as f64) as u64)
            } else {
                Duration::ZERO
            }
        })
        .collect()
}

/// The request a record replays: same target, same headers (minus framing), same body bytes.
pub fn request(record: &Record) -> Request {
    let headers = record
        .headers
        .iter()
        .filter(|(n, _)| !SKIPPED_HEADERS.iter().any(|s| n.eq_ignore_ascii_case(s)))
        .map(|(n, v)| (n.clone(), String::from_utf8_lossy(v).into_owned()))
        .collect();
    Request {
        target: record.target.clone(),
        headers,
        body: vec![Bytes::clone(&record.body)],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(at: u128, target: &str) -> Record {
        Record {
            target: target.into(),
            headers: vec![
                ("Content-Type".into(), b"application/octet-stream".to_vec()),
                ("Host".into(), b"x".to_vec()),
                ("User-Agent".into(), b"pyrogate/0.1.0".to_vec()),
            ],
            captured_at_unix_ns: at,
            body: Bytes::from_static(b"main;work 10\n"),
        }
    }

    #[test]
    fn offsets_keep_the_capture_pacing_divided_by_the_speedup() {
        let mut recs = vec![
            record(3_000_000_000, "/c"),
            record(1_000_000_000, "/a"),
            record(1_500_000_000, "/b"),
        ];
        sort_records(&mut recs);
        assert_eq!(
            recs.iter().map(|r| r.target.as_str()).collect::<Vec<_>>(),
            ["/a", "/b", "/c"]
        );
        assert_eq!(
            offsets(&recs, 1.0),
            [
                Duration::ZERO,
                Duration::from_millis(500),
                Duration::from_secs(2)
            ]
        );
        assert_eq!(
            offsets(&recs, 10.0),
            [
                Duration::ZERO,
                Duration::from_millis(50),
                Duration::from_millis(200)
            ]
        );
        assert_eq!(offsets(&recs, 0.0), [Duration::ZERO; 3]);
    }

    #[test]
    fn a_replayed_request_keeps_target_headers_and_body_but_not_host() {
        let r = request(&record(1, "/ingest?name=app"));
        assert_eq!(r.target, "/ingest?name=app");
        assert_eq!(
            r.headers,
            vec![
                (
                    "Content-Type".to_string(),
                    "application/octet-stream".to_string()
                ),
                ("User-Agent".to_string(), "pyrogate/0.1.0".to_string())
            ]
        );
        assert_eq!(r.body.concat(), b"main;work 10\n");
    }
}
