//! Throughput of the spool's store (`pyrogate::spool::Store`): append, then take and
//! acknowledge, in MiB of upload body per second, for comparison with the disk's sequential
//! write speed measured with `dd` on the same machine (tuning.md, "Sizing the spool").
//!
//! Not a criterion bench: one pass writes `SPOOL_BENCH_MIB` (default 512) MiB of 64 KiB
//! records into a fresh spool under `target/tmp`, then `sync(2)`s, so the write figure includes
//! getting the bytes to the disk as `dd conv=fdatasync` does; the replay pass reads every
//! record back (from the page cache when it fits there) and acknowledges it, which deletes the
//! segments. One thread, as one blocking-pool thread runs the store.
//!
//! `cargo bench --bench spool`

use std::time::{Duration, Instant};

use bytes::Bytes;
use pyrogate::config::{Fsync, Spool};
use pyrogate::spool::Store;
use pyrogate::spool::record::Meta;
use pyrogate::upload::Api;

const RECORD_BODY: usize = 64 * 1024;

fn mib_per_s(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / (1 << 20) as f64 / d.as_secs_f64()
}

fn main() {
    // `cargo bench` passes `--bench`; nothing to parse.
    let mib: u64 = std::env::var("SPOOL_BENCH_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(512);
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/tmp");
    std::fs::create_dir_all(&root).expect("target/tmp");
    let dir = tempfile::tempdir_in(&root).expect("tempdir");
    let settings = Spool {
        directory: dir.path().into(),
        max_bytes: (mib + 64) << 20,
        max_age: Duration::from_secs(3600),
        fsync: Fsync::Never,
    };
    let (store, _) = Store::open(dir.path().join("bench"), &settings).expect("open");
    let body = Bytes::from(vec![0xA5u8; RECORD_BODY]);
    let records = (mib << 20) / RECORD_BODY as u64;
    let now = pyrogate::spool::unix_ms();
    let meta = Meta {
        api: Api::Ingest,
        accepted_at_unix_ms: now,
        profiles: 1,
        bytes: RECORD_BODY as u64,
        target: "/ingest?name=bench.cpu%7B%7D&from=1700000000&until=1700000010".into(),
        headers: vec![(
            Bytes::from_static(b"Content-Type"),
            Bytes::from_static(b"application/octet-stream"),
        )],
    };
    let t = Instant::now();
    for _ in 0..records {
        store.append(&meta, &[vec![body.clone()]]).expect("append");
    }
    sync();
    let write = t.elapsed();
    let t = Instant::now();
    let mut n = 0u64;
    while let Some(taken) = store.take(now) {
        store.ack(&taken.entry, true);
        n += 1;
    }
    let replay = t.elapsed();
    assert_eq!(n, records);
    let bytes = records * RECORD_BODY as u64;
    println!(
        "spool append+sync: {records} records of {RECORD_BODY} B in {write:.2?}: {:.0} MiB/s",
        mib_per_s(bytes, write)
    );
    println!(
        "spool take+ack:    {n} records in {replay:.2?}: {:.0} MiB/s",
        mib_per_s(bytes, replay)
    );
}

/// `sync(1)` as a child process, so the bench needs no `unsafe`.
fn sync() {
    let _ = std::process::Command::new("sync").status();
}
