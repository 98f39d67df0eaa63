//! The segment files of one destination's spool, and what is in them.
//!
//! Owns: the directory of one destination (`seg-<seq>.spool` files of [`record`] frames, each
//! with a `seg-<seq>.cursor` naming the first byte not yet delivered), crash recovery (a torn
//! or corrupt tail is truncated and counted, never replayed, never fatal), the order records
//! leave in (oldest first; a record handed back after a failed replay goes first again), the
//! `max_bytes` and `max_age` limits, and the figures `/metrics` shows. Does not own: when to
//! spill or replay, or sending (`upstream::replay`).
//!
//! Every method blocks on file I/O: call it only from the blocking pool, never from a core
//! thread. One `Store` serves every core; the mutex is taken only on blocking-pool threads,
//! and the figures the cores read are atomics.

use std::collections::{BTreeMap, VecDeque};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;

use super::record::{self, FRAME_HEAD, Meta, Record, SEGMENT_MAGIC};
use crate::config::{Fsync, Spool as Settings};

/// Smallest and largest segment file; a segment is about `max_bytes / SEGMENTS_PER_SPOOL`, so
/// `max_bytes` is enforced by dropping whole old segments at a fine enough grain.
const SEGMENT_MIN_BYTES: u64 = 64 * 1024;
const SEGMENT_MAX_BYTES: u64 = 64 * 1024 * 1024;
const SEGMENTS_PER_SPOOL: u64 = 16;
const MAGIC_LEN: u64 = SEGMENT_MAGIC.len() as u64;

/// Where one record lies and what it carries (kept in memory for records not yet delivered).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    seq: u64,
    off: u64,
    /// Frame bytes (head and payload).
    pub len: u64,
    pub accepted_at_unix_ms: u64,
    pub profiles: u64,
    pub bytes: u64,
}

/// A record handed out for replay; give it back with [`Store::ack`] or [`Store::nack`].
#[derive(Debug)]
pub struct Taken {
    pub entry: Entry,
    pub record: Record,
}

/// Why a record was not spooled.
#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    /// Larger than `max_bytes` (or than a frame may be) on its own.
    #[error("record of {0} bytes does not fit the spool")]
    TooLarge(u64),
    #[error("spool write failed: {0}")]
    Io(#[from] io::Error),
}

/// Figures of one spool, plain data (read by every core's metrics snapshot).
pub use crate::metrics::SpoolStats as Stats;

#[derive(Debug, Default)]
struct Cells {
    bytes: AtomicU64,
    records: AtomicU64,
    profiles: AtomicU64,
    oldest_at_unix_ms: AtomicU64,
    replayed_records: AtomicU64,
    expired_records: AtomicU64,
    expired_profiles: AtomicU64,
    expired_bytes: AtomicU64,
    full_records: AtomicU64,
    full_profiles: AtomicU64,
    full_bytes: AtomicU64,
    truncated_bytes: AtomicU64,
    corrupt_records: AtomicU64,
    recovered_profiles: AtomicU64,
}

fn bump(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

#[derive(Debug)]
struct Segment {
    seq: u64,
    file: File,
    size: u64,
    /// No more appends (recovered, rotated or consumed).
    sealed: bool,
    /// Persisted cursor: every record before it was delivered or dropped.
    start: u64,
    cursor: Option<File>,
    waiting: VecDeque<Entry>,
    /// Handed out: offset → (end, finished).
    taken: BTreeMap<u64, (u64, bool)>,
}

impl Segment {
    fn first_open(&self) -> u64 {
        let t = self
            .taken
            .iter()
            .find(|(_, (_, done))| !done)
            .map(|(o, _)| *o);
        let w = self.waiting.front().map(|e| e.off);
        [t, w].into_iter().flatten().min().unwrap_or(self.size)
    }

    fn is_consumed(&self) -> bool {
        self.waiting.is_empty() && self.taken.is_empty()
    }
}

#[derive(Debug, Default)]
struct State {
    /// Oldest first; only the last may be unsealed.
    segments: VecDeque<Segment>,
    next_seq: u64,
    /// Records given back after a failed replay, oldest first.
    retry: BTreeMap<(u64, u64), Entry>,
    total_bytes: u64,
    waiting_records: u64,
    waiting_profiles: u64,
}

/// One destination's spool directory.
#[derive(Debug)]
pub struct Store {
    dir: PathBuf,
    max_bytes: u64,
    max_age_ms: u64,
    fsync: Fsync,
    segment_bytes: u64,
    state: Mutex<State>,
    cells: Cells,
}

/// What start-up found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recovery {
    pub records: u64,
    pub bytes: u64,
    pub truncated_bytes: u64,
    /// Files whose tail was cut.
    pub truncated_files: Vec<PathBuf>,
}

fn segment_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("seg-{seq:020}.spool"))
}

fn cursor_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("seg-{seq:020}.cursor"))
}

fn read_cursor(path: &Path) -> Option<u64> {
    let b = fs::read(path).ok()?;
    if b.len() != 12 {
        return None;
    }
    let off = u64::from_le_bytes(b[0..8].try_into().ok()?);
    let crc = u32::from_le_bytes(b[8..12].try_into().ok()?);
    (crc32fast::hash(&b[0..8]) == crc).then_some(off)
}

fn cursor_bytes(off: u64) -> [u8; 12] {
    let mut b = [0u8; 12];
    b[0..8].copy_from_slice(&off.to_le_bytes());
    let crc = crc32fast::hash(&b[0..8]);
    b[8..12].copy_from_slice(&crc.to_le_bytes());
    b
}

fn write_all_vectored(f: &mut File, chunks: &[Bytes]) -> io::Result<()> {
    let mut slices: Vec<io::IoSlice<'_>> = chunks.iter().map(|c| io::IoSlice::new(c)).collect();
    let mut bufs = &mut slices[..];
    while !bufs.is_empty() {
        match f.write_vectored(bufs) {
            Ok(0) => return Err(io::Error::new(io::ErrorKind::WriteZero, "spool file full")),
            Ok(n) => io::IoSlice::advance_slices(&mut bufs, n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

impl Store {
    /// Opens (creating) the spool in `dir` and recovers what an earlier run left there.
    pub fn open(dir: PathBuf, settings: &Settings) -> io::Result<(Store, Recovery)> {
        fs::create_dir_all(&dir)?;
        let segment_bytes = (settings.max_bytes / SEGMENTS_PER_SPOOL)
            .clamp(SEGMENT_MIN_BYTES, SEGMENT_MAX_BYTES)
            .min(settings.max_bytes);
        let store = Store {
            dir,
            max_bytes: settings.max_bytes,
            max_age_ms: u64::try_from(settings.max_age.as_millis()).unwrap_or(u64::MAX),
            fsync: settings.fsync,
            segment_bytes,
            state: Mutex::new(State::default()),
            cells: Cells::default(),
        };
        let recovery = store.recover()?;
        Ok((store, recovery))
    }

    /// The directory this spool lives in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn recover(&self) -> io::Result<Recovery> {
        let mut seqs: Vec<u64> = fs::read_dir(&self.dir)?
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                name.strip_prefix("seg-")?
                    .strip_suffix(".spool")?
                    .parse()
                    .ok()
            })
            .collect();
        seqs.sort_unstable();
        let mut st = self.lock();
        let mut rec = Recovery::default();
        for seq in seqs {
            st.next_seq = st.next_seq.max(seq + 1);
            let path = segment_path(&self.dir, seq);
            let data = fs::read(&path)?;
            if data.len() < SEGMENT_MAGIC.len() || &data[..SEGMENT_MAGIC.len()] != SEGMENT_MAGIC {
                rec.truncated_bytes += data.len() as u64;
                rec.truncated_files.push(path.clone());
                let _ = fs::remove_file(&path);
                let _ = fs::remove_file(cursor_path(&self.dir, seq));
                continue;
            }
            let start = read_cursor(&cursor_path(&self.dir, seq))
                .filter(|o| *o >= MAGIC_LEN && *o <= data.len() as u64)
                .unwrap_or(MAGIC_LEN);
            let mut off = start as usize;
            let mut waiting = VecDeque::new();
            // Frames are walked from the cursor on: the first one that is not whole and
            // intact ends the segment (a torn write, or garbage after a crash).
            while off < data.len() {
                let Ok((len, crc)) = record::frame_head(&data[off..]) else {
                    break;
                };
                let end = off + FRAME_HEAD + len as usize;
                if end > data.len() {
                    break;
                }
                let payload = &data[off + FRAME_HEAD..end];
                if crc32fast::hash(payload) != crc {
                    break;
                }
                let Some((at, profiles, bytes)) = record::peek_meta(payload) else {
                    break;
                };
                waiting.push_back(Entry {
                    seq,
                    off: off as u64,
                    len: (end - off) as u64,
                    accepted_at_unix_ms: at,
                    profiles,
                    bytes,
                });
                off = end;
            }
            let file = OpenOptions::new().read(true).append(true).open(&path)?;
            if off < data.len() {
                rec.truncated_bytes += (data.len() - off) as u64;
                rec.truncated_files.push(path.clone());
                file.set_len(off as u64)?;
            }
            if waiting.is_empty() {
                drop(file);
                let _ = fs::remove_file(&path);
                let _ = fs::remove_file(cursor_path(&self.dir, seq));
                continue;
            }
            rec.records += waiting.len() as u64;
            st.waiting_records += waiting.len() as u64;
            let profiles: u64 = waiting.iter().map(|e| e.profiles).sum();
            st.waiting_profiles += profiles;
            bump(&self.cells.recovered_profiles, profiles);
            st.total_bytes += off as u64;
            rec.bytes += off as u64;
            st.segments.push_back(Segment {
                seq,
                file,
                size: off as u64,
                sealed: true,
                start,
                cursor: None,
                waiting,
                taken: BTreeMap::new(),
            });
        }
        bump(&self.cells.truncated_bytes, rec.truncated_bytes);
        self.publish(&st);
        Ok(rec)
    }

    /// Appends one record (`requests`: each upstream body as its pieces). Makes room by
    /// dropping the oldest segments (counted as `spool_full`) when `max_bytes` would be passed.
    pub fn append(&self, meta: &Meta, requests: &[Vec<Bytes>]) -> Result<(), AppendError> {
        let enc = record::encode(meta, requests).ok_or(AppendError::TooLarge(meta.bytes))?;
        let len = enc.len();
        if len + MAGIC_LEN > self.max_bytes {
            return Err(AppendError::TooLarge(len));
        }
        let mut st = self.lock();
        while st.total_bytes + len + MAGIC_LEN > self.max_bytes && !st.segments.is_empty() {
            self.evict_oldest(&mut st);
        }
        let need_new = st
            .segments
            .back()
            .is_none_or(|s| s.sealed || (s.size + len > self.segment_bytes && s.size > MAGIC_LEN));
        if need_new {
            if let Some(s) = st.segments.back_mut() {
                s.sealed = true;
            }
            let seq = st.next_seq;
            st.next_seq += 1;
            let path = segment_path(&self.dir, seq);
            let mut file = OpenOptions::new()
                .read(true)
                .append(true)
                .create(true)
                .truncate(false)
                .open(&path)?;
            file.set_len(0)?;
            file.write_all(SEGMENT_MAGIC)?;
            st.total_bytes += MAGIC_LEN;
            st.segments.push_back(Segment {
                seq,
                file,
                size: MAGIC_LEN,
                sealed: false,
                start: MAGIC_LEN,
                cursor: None,
                waiting: VecDeque::new(),
                taken: BTreeMap::new(),
            });
        }
        let seg = st.segments.back_mut().expect("a segment was opened above");
        let off = seg.size;
        if let Err(e) = write_all_vectored(&mut seg.file, &enc.chunks) {
            // Take back a partial write so the file ends on a whole record.
            let _ = seg.file.set_len(off);
            return Err(e.into());
        }
        if self.fsync == Fsync::Always {
            seg.file.sync_data()?;
        }
        seg.size += len;
        seg.waiting.push_back(Entry {
            seq: seg.seq,
            off,
            len,
            accepted_at_unix_ms: meta.accepted_at_unix_ms,
            profiles: meta.profiles,
            bytes: meta.bytes,
        });
        st.total_bytes += len;
        st.waiting_records += 1;
        st.waiting_profiles += meta.profiles;
        self.publish(&st);
        Ok(())
    }

    /// Drops the oldest segment with everything in it not yet delivered (`spool_full`).
    fn evict_oldest(&self, st: &mut State) {
        let Some(seg) = st.segments.pop_front() else {
            return;
        };
        let mut dropped: Vec<Entry> = seg.waiting.iter().copied().collect();
        let retried: Vec<(u64, u64)> = st
            .retry
            .range((seg.seq, 0)..=(seg.seq, u64::MAX))
            .map(|(k, _)| *k)
            .collect();
        for k in retried {
            if let Some(e) = st.retry.remove(&k) {
                dropped.push(e);
            }
        }
        for e in &dropped {
            st.waiting_records -= 1;
            st.waiting_profiles -= e.profiles;
            bump(&self.cells.full_records, 1);
            bump(&self.cells.full_profiles, e.profiles);
            bump(&self.cells.full_bytes, e.bytes);
        }
        st.total_bytes = st.total_bytes.saturating_sub(seg.size);
        tracing::warn!(dir = %self.dir.display(), records = dropped.len(), "spool full (max_bytes): oldest segment dropped");
        self.remove_files(seg.seq);
    }

    fn remove_files(&self, seq: u64) {
        let _ = fs::remove_file(segment_path(&self.dir, seq));
        let _ = fs::remove_file(cursor_path(&self.dir, seq));
    }

    fn expired(&self, e: &Entry, now_ms: u64) -> bool {
        now_ms.saturating_sub(e.accepted_at_unix_ms) > self.max_age_ms
    }

    fn count_expired(&self, st: &mut State, e: &Entry) {
        st.waiting_records -= 1;
        st.waiting_profiles -= e.profiles;
        bump(&self.cells.expired_records, 1);
        bump(&self.cells.expired_profiles, e.profiles);
        bump(&self.cells.expired_bytes, e.bytes);
    }

    /// Hands out the oldest waiting record for replay; records past `max_age` on the way are
    /// dropped (`expired`) and records found corrupt are skipped (counted).
    pub fn take(&self, now_ms: u64) -> Option<Taken> {
        let mut st = self.lock();
        let out = loop {
            let entry = match st.retry.pop_first() {
                Some((_, e)) => e,
                None => {
                    let seg = st.segments.iter_mut().find(|s| !s.waiting.is_empty())?;
                    let e = seg.waiting.pop_front().expect("not empty");
                    seg.taken.insert(e.off, (e.off + e.len, false));
                    e
                }
            };
            if self.expired(&entry, now_ms) {
                self.count_expired(&mut st, &entry);
                self.finish(&mut st, entry);
                continue;
            }
            let Some(seg) = st.segments.iter().find(|s| s.seq == entry.seq) else {
                continue;
            };
            let mut buf = vec![0u8; entry.len as usize];
            let read = seg.file.read_exact_at(&mut buf, entry.off);
            st.waiting_records -= 1;
            st.waiting_profiles -= entry.profiles;
            match read
                .ok()
                .and_then(|()| record::decode(&Bytes::from(buf)).ok())
            {
                Some((record, _)) => break Some(Taken { entry, record }),
                None => {
                    tracing::warn!(dir = %self.dir.display(), seq = entry.seq, offset = entry.off, "corrupt spool record skipped");
                    bump(&self.cells.corrupt_records, 1);
                    self.finish(&mut st, entry);
                }
            }
        };
        self.publish(&st);
        out
    }

    /// The record was delivered (or finally rejected): it leaves the spool.
    pub fn ack(&self, entry: &Entry, delivered: bool) {
        let mut st = self.lock();
        if delivered {
            bump(&self.cells.replayed_records, 1);
        }
        self.finish(&mut st, *entry);
        self.publish(&st);
    }

    /// The replay failed: the record waits again, ahead of the others.
    pub fn nack(&self, entry: &Entry) {
        let mut st = self.lock();
        if st.segments.iter().any(|s| s.seq == entry.seq) {
            st.retry.insert((entry.seq, entry.off), *entry);
            st.waiting_records += 1;
            st.waiting_profiles += entry.profiles;
        } else {
            // Its segment was dropped for room while it was out: it is gone with it.
            bump(&self.cells.full_records, 1);
            bump(&self.cells.full_profiles, entry.profiles);
            bump(&self.cells.full_bytes, entry.bytes);
        }
        self.publish(&st);
    }

    /// Drops every waiting record past `max_age` (`expired`).
    pub fn expire(&self, now_ms: u64) {
        let mut st = self.lock();
        let old: Vec<(u64, u64)> = st
            .retry
            .iter()
            .filter(|(_, e)| self.expired(e, now_ms))
            .map(|(k, _)| *k)
            .collect();
        for k in old {
            if let Some(e) = st.retry.remove(&k) {
                self.count_expired(&mut st, &e);
                self.finish(&mut st, e);
            }
        }
        let mut gone = Vec::new();
        for i in 0..st.segments.len() {
            while let Some(e) = st.segments[i].waiting.front().copied() {
                if !self.expired(&e, now_ms) {
                    break;
                }
                st.segments[i].waiting.pop_front();
                gone.push(e);
            }
        }
        for e in gone {
            self.count_expired(&mut st, &e);
            st.segments
                .iter_mut()
                .find(|s| s.seq == e.seq)
                .map(|s| s.taken.insert(e.off, (e.off + e.len, false)));
            self.finish(&mut st, e);
        }
        self.publish(&st);
    }

    /// Marks a handed-out record finished: moves the segment's cursor past every finished
    /// record at its front, and deletes a segment nothing is left in.
    fn finish(&self, st: &mut State, e: Entry) {
        let Some(i) = st.segments.iter().position(|s| s.seq == e.seq) else {
            return;
        };
        let seg = &mut st.segments[i];
        if let Some(t) = seg.taken.get_mut(&e.off) {
            t.1 = true;
        }
        while let Some((_, (_, true))) = seg.taken.first_key_value() {
            seg.taken.pop_first();
        }
        let start = seg.first_open();
        if seg.is_consumed() && !st.retry.keys().any(|(s, _)| *s == e.seq) {
            let seg = st.segments.remove(i).expect("index found above");
            st.total_bytes = st.total_bytes.saturating_sub(seg.size);
            drop(seg);
            self.remove_files(e.seq);
            return;
        }
        if start != seg.start {
            seg.start = start;
            if seg.cursor.is_none() {
                seg.cursor = OpenOptions::new()
                    .write(true)
                    .create(true)
                    .truncate(false)
                    .open(cursor_path(&self.dir, seg.seq))
                    .ok();
            }
            if let Some(c) = &seg.cursor {
                // Without fsync, this survives a crash of the process (the page cache keeps
                // it) but not of the machine; a lost cursor only means records are sent again.
                let _ = c.write_all_at(&cursor_bytes(start), 0);
            }
        }
    }

    fn publish(&self, st: &State) {
        let c = &self.cells;
        c.bytes.store(st.total_bytes, Ordering::Relaxed);
        c.records.store(st.waiting_records, Ordering::Relaxed);
        c.profiles.store(st.waiting_profiles, Ordering::Relaxed);
        let oldest = st
            .retry
            .values()
            .map(|e| e.accepted_at_unix_ms)
            .chain(
                st.segments
                    .iter()
                    .find_map(|s| s.waiting.front())
                    .map(|e| e.accepted_at_unix_ms),
            )
            .min()
            .unwrap_or(0);
        c.oldest_at_unix_ms.store(oldest, Ordering::Relaxed);
    }

    /// The spool's figures (lock-free; any thread).
    pub fn stats(&self) -> Stats {
        let c = &self.cells;
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let oldest = g(&c.oldest_at_unix_ms);
        Stats {
            oldest_age_ms: if oldest == 0 {
                0
            } else {
                super::unix_ms().saturating_sub(oldest)
            },
            bytes: g(&c.bytes),
            records: g(&c.records),
            profiles: g(&c.profiles),
            oldest_at_unix_ms: g(&c.oldest_at_unix_ms),
            replayed_records: g(&c.replayed_records),
            expired_records: g(&c.expired_records),
            expired_profiles: g(&c.expired_profiles),
            expired_bytes: g(&c.expired_bytes),
            full_records: g(&c.full_records),
            full_profiles: g(&c.full_profiles),
            full_bytes: g(&c.full_bytes),
            truncated_bytes: g(&c.truncated_bytes),
            corrupt_records: g(&c.corrupt_records),
            recovered_profiles: g(&c.recovered_profiles),
        }
    }

    /// Whether records wait for replay (lock-free).
    pub fn has_waiting(&self) -> bool {
        self.cells.records.load(Ordering::Relaxed) > 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upload::Api;
    use std::time::Duration;

    fn settings(max_bytes: u64) -> Settings {
        Settings {
            directory: PathBuf::new(),
            max_bytes,
            max_age: Duration::from_secs(3600),
            fsync: Fsync::Never,
        }
    }

    fn meta(i: u64, at: u64) -> Meta {
        Meta {
            api: Api::Ingest,
            accepted_at_unix_ms: at,
            profiles: 1,
            bytes: 100,
            target: format!("/ingest?name=app&i={i}"),
            headers: vec![],
        }
    }

    fn body(i: u64) -> Vec<Vec<Bytes>> {
        vec![vec![Bytes::from(vec![(i % 251) as u8; 100])]]
    }

    fn targets(store: &Store, now: u64) -> Vec<String> {
        let mut out = Vec::new();
        while let Some(t) = store.take(now) {
            out.push(t.record.meta.target.clone());
            store.ack(&t.entry, true);
        }
        out
    }

    #[test]
    fn records_come_back_oldest_first_and_a_delivered_spool_leaves_no_files() {
        let dir = tempfile::tempdir().unwrap();
        let (s, rec) = Store::open(dir.path().join("d"), &settings(1 << 20)).unwrap();
        assert_eq!(rec, Recovery::default());
        for i in 0..5 {
            s.append(&meta(i, 1000), &body(i)).unwrap();
        }
        assert_eq!(s.stats().records, 5);
        assert_eq!(s.stats().oldest_at_unix_ms, 1000);
        let got = targets(&s, 2000);
        assert_eq!(
            got,
            (0..5)
                .map(|i| format!("/ingest?name=app&i={i}"))
                .collect::<Vec<_>>()
        );
        assert_eq!(s.stats().records, 0);
        assert_eq!(s.stats().bytes, 0);
        assert_eq!(s.stats().replayed_records, 5);
        assert_eq!(fs::read_dir(dir.path().join("d")).unwrap().count(), 0);
    }

    #[test]
    fn a_record_given_back_goes_first_again() {
        let dir = tempfile::tempdir().unwrap();
        let (s, _) = Store::open(dir.path().into(), &settings(1 << 20)).unwrap();
        for i in 0..3 {
            s.append(&meta(i, 1000), &body(i)).unwrap();
        }
        let a = s.take(1000).unwrap();
        let b = s.take(1000).unwrap();
        s.ack(&b.entry, true);
        s.nack(&a.entry);
        assert_eq!(s.stats().records, 2);
        assert_eq!(
            targets(&s, 1000),
            vec!["/ingest?name=app&i=0", "/ingest?name=app&i=2"]
        );
    }

    #[test]
    fn a_reopened_spool_resumes_after_what_was_delivered() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (s, _) = Store::open(dir.path().into(), &settings(1 << 20)).unwrap();
            for i in 0..4 {
                s.append(&meta(i, 1000), &body(i)).unwrap();
            }
            let t = s.take(1000).unwrap();
            s.ack(&t.entry, true);
            // Taken but not finished when the process dies: sent again after a restart.
            let _lost = s.take(1000).unwrap();
        }
        let (s, rec) = Store::open(dir.path().into(), &settings(1 << 20)).unwrap();
        assert_eq!(rec.records, 3);
        assert_eq!(s.stats().recovered_profiles, 3);
        assert_eq!(
            targets(&s, 1000),
            vec![
                "/ingest?name=app&i=1",
                "/ingest?name=app&i=2",
                "/ingest?name=app&i=3"
            ]
        );
    }

    #[test]
    fn a_torn_tail_is_truncated_counted_and_the_whole_records_survive() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (s, _) = Store::open(dir.path().into(), &settings(1 << 20)).unwrap();
            for i in 0..3 {
                s.append(&meta(i, 1000), &body(i)).unwrap();
            }
        }
        let seg = segment_path(dir.path(), 0);
        let len = fs::metadata(&seg).unwrap().len();
        // Cut the last record in half, as a crash mid-write leaves it.
        OpenOptions::new()
            .write(true)
            .open(&seg)
            .unwrap()
            .set_len(len - 60)
            .unwrap();
        let (s, rec) = Store::open(dir.path().into(), &settings(1 << 20)).unwrap();
        assert_eq!(rec.records, 2);
        assert!(rec.truncated_bytes > 0);
        assert_eq!(s.stats().truncated_bytes, rec.truncated_bytes);
        assert_eq!(
            targets(&s, 1000),
            vec!["/ingest?name=app&i=0", "/ingest?name=app&i=1"]
        );
    }

    #[test]
    fn a_corrupt_record_ends_its_segment_at_recovery() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (s, _) = Store::open(dir.path().into(), &settings(1 << 20)).unwrap();
            for i in 0..3 {
                s.append(&meta(i, 1000), &body(i)).unwrap();
            }
        }
        let seg = segment_path(dir.path(), 0);
        let mut data = fs::read(&seg).unwrap();
        let n = data.len();
        data[n - 10] ^= 0xFF;
        fs::write(&seg, &data).unwrap();
        let (s, rec) = Store::open(dir.path().into(), &settings(1 << 20)).unwrap();
        assert_eq!(rec.records, 2);
        assert_eq!(targets(&s, 1000).len(), 2);
        // A file that is not a segment at all is removed, and start-up goes on.
        fs::write(segment_path(dir.path(), 9), b"garbage").unwrap();
        let (_, rec) = Store::open(dir.path().into(), &settings(1 << 20)).unwrap();
        assert_eq!(rec.truncated_bytes, 7);
    }

    #[test]
    fn max_bytes_drops_the_oldest_records_and_counts_them() {
        let dir = tempfile::tempdir().unwrap();
        // 64 KiB segments; each record is about 150 bytes.
        let (s, _) = Store::open(dir.path().into(), &settings(256 * 1024)).unwrap();
        for i in 0..4000 {
            s.append(&meta(i, 1000), &body(i)).unwrap();
        }
        let st = s.stats();
        assert!(st.bytes <= 256 * 1024, "{st:?}");
        assert!(st.full_records > 0);
        assert_eq!(st.records + st.full_records, 4000);
        assert_eq!(st.full_profiles, st.full_records);
        let got = targets(&s, 1000);
        assert_eq!(got.len() as u64, st.records);
        assert_eq!(got.last().unwrap(), "/ingest?name=app&i=3999");
        assert!(matches!(
            s.append(&meta(0, 0), &[vec![Bytes::from(vec![0u8; 300_000])]]),
            Err(AppendError::TooLarge(_))
        ));
    }

    #[test]
    fn records_past_max_age_are_dropped_as_expired() {
        let dir = tempfile::tempdir().unwrap();
        let (s, _) = Store::open(dir.path().into(), &settings(1 << 20)).unwrap();
        s.append(&meta(0, 1_000), &body(0)).unwrap();
        s.append(&meta(1, 5_000_000), &body(1)).unwrap();
        s.append(&meta(2, 1_000), &body(2)).unwrap();
        // 1h = 3_600_000 ms: the first is expired at 3_700_000, the second is not.
        s.expire(3_700_000);
        assert_eq!(s.stats().expired_records, 1);
        assert_eq!(targets(&s, 3_700_000), vec!["/ingest?name=app&i=1"]);
        assert_eq!(s.stats().expired_records, 2);
        assert_eq!(s.stats().expired_bytes, 200);
    }
}
