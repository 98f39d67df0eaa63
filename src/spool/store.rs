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

/// Records encoded and bound for the last segment, not yet written.
#[derive(Debug, Default)]
struct Pending {
    /// Per record: its index in the batch, frame length, accepted-at, profiles, body bytes.
    records: Vec<(usize, u64, u64, u64, u64)>,
    chunks: Vec<Bytes>,
    bytes: u64,
}

impl Pending {
    fn clear(&mut self) {
        self.records.clear();
        self.chunks.clear();
        self.bytes = 0;
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
        let mut r = self.append_batch(std::slice::from_ref(&(meta, requests)));
        r.pop().unwrap_or(Ok(()))
    }

    /// Appends several records in order, as [`Store::append`] does one, with one lock and as
    /// few writes as the segments allow: consecutive records bound for the same segment go to
    /// the file in one vectored write (and, with `fsync = "always"`, one flush). One result per
    /// record; a failed write fails the records it carried and leaves the file ending on a
    /// whole record.
    pub fn append_batch(&self, records: &[(&Meta, &[Vec<Bytes>])]) -> Vec<Result<(), AppendError>> {
        let mut results: Vec<Option<Result<(), AppendError>>> =
            records.iter().map(|_| None).collect();
        let mut st = self.lock();
        let mut pending = Pending::default();
        for (i, (meta, requests)) in records.iter().enumerate() {
            let Some(enc) = record::encode(meta, requests) else {
                results[i] = Some(Err(AppendError::TooLarge(meta.bytes)));
                continue;
            };
            let len = enc.len();
            if len + MAGIC_LEN > self.max_bytes {
                results[i] = Some(Err(AppendError::TooLarge(len)));
                continue;
            }
            if st.total_bytes + pending.bytes + len + MAGIC_LEN > self.max_bytes {
                // Room is made from what is written: write what is pending first.
                self.flush(&mut st, &mut pending, &mut results);
                while st.total_bytes + len + MAGIC_LEN > self.max_bytes && !st.segments.is_empty() {
                    self.evict_oldest(&mut st);
                }
            }
            let need_new = st.segments.back().is_none_or(|s| {
                let size = s.size + pending.bytes;
                s.sealed || (size + len > self.segment_bytes && size > MAGIC_LEN)
            });
            if need_new {
                self.flush(&mut st, &mut pending, &mut results);
                if let Err(e) = self.open_segment(&mut st) {
                    results[i] = Some(Err(e.into()));
                    continue;
                }
            }
            pending.bytes += len;
            pending.chunks.extend(enc.chunks);
            pending
                .records
                .push((i, len, meta.accepted_at_unix_ms, meta.profiles, meta.bytes));
        }
        self.flush(&mut st, &mut pending, &mut results);
        self.publish(&st);
        results.into_iter().map(|r| r.unwrap_or(Ok(()))).collect()
    }

    /// Seals the last segment and starts a new one.
    fn open_segment(&self, st: &mut State) -> io::Result<()> {
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
        Ok(())
    }

    /// Writes the pending records to the last segment in one vectored write (flushed to disk
    /// with `fsync = "always"`) and makes them waiting records; on an error cuts the file back
    /// to where it was and fails them.
    fn flush(
        &self,
        st: &mut State,
        pending: &mut Pending,
        results: &mut [Option<Result<(), AppendError>>],
    ) {
        if pending.records.is_empty() {
            return;
        }
        let Some(seg) = st.segments.back_mut() else {
            return;
        };
        let start = seg.size;
        let written = write_all_vectored(&mut seg.file, &pending.chunks).and_then(|()| {
            if self.fsync == Fsync::Always {
                seg.file.sync_data()
            } else {
                Ok(())
            }
        });
        if let Err(e) = written {
            // Take back a partial write so the file ends on a whole record.
            let _ = seg.file.set_len(start);
            for &(i, ..) in &pending.records {
                results[i] = Some(Err(io::Error::new(e.kind(), e.to_string()).into()));
            }
            pending.clear();
            return;
        }
        let mut off = start;
        let (mut records, mut profiles) = (0, 0);
        for &(_, len, accepted_at_unix_ms, p, bytes) in &pending.records {
            seg.waiting.push_back(Entry {
                seq: seg.seq,
                off,
                len,
                accepted_at_unix_ms,
                profiles: p,
                bytes,
            });
            off += len;
            records += 1;
            profiles += p;
        }
        seg.size = off;
        st.total_bytes += off - start;
        st.waiting_records += records;
        st.waiting_profiles += profiles;
        pending.clear();
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
    fn a_batch_is_appended_in_order_across_segments_and_evictions_as_one_by_one() {
        let dir = tempfile::tempdir().unwrap();
        // 200 KB: 64 KiB segments, so the batch spans several and evicts the oldest.
        let (s, _) = Store::open(dir.path().join("d"), &settings(200_000)).unwrap();
        let metas: Vec<Meta> = (0..2000).map(|i| meta(i, 1000)).collect();
        let mut bodies: Vec<Vec<Vec<Bytes>>> = (0..2000).map(body).collect();
        // One record larger than max_bytes on its own, in the middle.
        bodies[700] = vec![vec![Bytes::from(vec![7u8; 300_000])]];
        let batch: Vec<(&Meta, &[Vec<Bytes>])> = metas
            .iter()
            .zip(&bodies)
            .map(|(m, b)| (m, b.as_slice()))
            .collect();
        let results = s.append_batch(&batch);
        assert_eq!(results.len(), 2000);
        for (i, r) in results.iter().enumerate() {
            assert_eq!(r.is_ok(), i != 700, "record {i}: {r:?}");
        }
        let st = s.stats();
        assert!(st.full_records > 0, "evicted some: {st:?}");
        assert_eq!(st.records + st.full_records, 1999);
        assert!(st.bytes <= 200_000, "{st:?}");
        // The newest records survive, in order, and a reopened spool finds the same ones.
        let survivors: Vec<String> = (2000 - st.records..2000)
            .map(|i| format!("/ingest?name=app&i={i}"))
            .collect();
        drop(s);
        let (again, rec) = Store::open(dir.path().join("d"), &settings(200_000)).unwrap();
        assert_eq!(rec.truncated_bytes, 0);
        assert_eq!(targets(&again, 2000), survivors);
    }

    #[test]
    fn a_batch_spooled_one_by_one_or_at_once_writes_the_same_files() {
        let (one, all) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (a, _) = Store::open(one.path().join("d"), &settings(1 << 20)).unwrap();
        let (b, _) = Store::open(all.path().join("d"), &settings(1 << 20)).unwrap();
        let metas: Vec<Meta> = (0..600).map(|i| meta(i, 1000 + i)).collect();
        let bodies: Vec<Vec<Vec<Bytes>>> = (0..600).map(body).collect();
        for (m, r) in metas.iter().zip(&bodies) {
            a.append(m, r).unwrap();
        }
        let batch: Vec<(&Meta, &[Vec<Bytes>])> = metas
            .iter()
            .zip(&bodies)
            .map(|(m, b)| (m, b.as_slice()))
            .collect();
        assert!(b.append_batch(&batch).iter().all(Result::is_ok));
        assert_eq!(a.stats(), b.stats());
        let files = |d: &Path| {
            let mut v: Vec<(String, Vec<u8>)> = fs::read_dir(d)
                .unwrap()
                .map(|e| {
                    let e = e.unwrap();
                    (
                        e.file_name().to_string_lossy().into_owned(),
                        fs::read(e.path()).unwrap(),
                    )
                })
                .collect();
            v.sort();
            v
        };
        let fa = files(&one.path().join("d"));
        assert!(fa.len() > 1, "several segments");
        assert_eq!(fa, files(&all.path().join("d")));
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
