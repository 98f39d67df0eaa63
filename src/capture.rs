//! The capture destination (`url = "file://DIR"`): uploads stored as replayable records.
//!
//! Owns: the record format and the per-core segment files. A record is exactly the HTTP/1.1
//! request pyrogate would have sent upstream, without `Host`, plus an
//! `X-Pyrogate-Captured-At: <unix ns>` header; records are appended back to back to
//! `DIR/capture-<unix_ms>-core<k>-<seq>.http`, rotated at [`SEGMENT_MAX_BYTES`]. Any HTTP
//! tool can read them, and `loadtest replay` sends them again.
//!
//! Does not own: scheduling. File writes are blocking, so the sender runs [`CaptureSink::append`]
//! on monoio's blocking pool, never on a core thread. Cold relative to the core.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::{BufMut, Bytes, BytesMut};

/// Size at which a segment file is closed and a new one started.
pub const SEGMENT_MAX_BYTES: u64 = 64 * 1024 * 1024;
/// The header carrying the capture time, in Unix nanoseconds.
pub const CAPTURED_AT_HEADER: &str = "X-Pyrogate-Captured-At";

/// Encodes the head of one record (request line, headers, `Content-Length`, blank line).
pub fn encode_record_head(
    dst: &mut BytesMut,
    target: &str,
    headers: &[(&[u8], &[u8])],
    captured_at_unix_ns: u128,
    content_length: u64,
) {
    dst.reserve(
        128 + target.len()
            + headers
                .iter()
                .map(|(n, v)| n.len() + v.len() + 4)
                .sum::<usize>(),
    );
    dst.put_slice(b"POST ");
    dst.put_slice(target.as_bytes());
    dst.put_slice(b" HTTP/1.1\r\n");
    for (n, v) in headers {
        dst.put_slice(n);
        dst.put_slice(b": ");
        dst.put_slice(v);
        dst.put_slice(b"\r\n");
    }
    dst.put_slice(format!("{CAPTURED_AT_HEADER}: {captured_at_unix_ns}\r\nContent-Length: {content_length}\r\n\r\n").as_bytes());
}

/// One record read back from a segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub target: String,
    pub headers: Vec<(String, Vec<u8>)>,
    pub captured_at_unix_ns: u128,
    pub body: Bytes,
}

/// Why a segment could not be read back.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RecordError {
    #[error("record at byte {offset}: malformed head")]
    MalformedHead { offset: usize },
    #[error("record at byte {offset}: missing or invalid Content-Length")]
    BadLength { offset: usize },
    #[error("record at byte {offset}: truncated body")]
    Truncated { offset: usize },
}

/// Parses every record of a segment's bytes.
pub fn parse_records(data: &Bytes) -> Result<Vec<Record>, RecordError> {
    let mut out = Vec::new();
    let mut offset = 0;
    while offset < data.len() {
        let mut headers = [httparse::EMPTY_HEADER; 128];
        let mut req = httparse::Request::new(&mut headers);
        let head_len = match req.parse(&data[offset..]) {
            Ok(httparse::Status::Complete(n)) => n,
            _ => return Err(RecordError::MalformedHead { offset }),
        };
        let target = req.path.unwrap_or("").to_string();
        let mut length = None;
        let mut captured = 0u128;
        let mut kept = Vec::new();
        for h in req.headers.iter() {
            if h.name.eq_ignore_ascii_case("content-length") {
                length = std::str::from_utf8(h.value)
                    .ok()
                    .and_then(|s| s.parse::<usize>().ok());
            } else if h.name.eq_ignore_ascii_case(CAPTURED_AT_HEADER) {
                captured = std::str::from_utf8(h.value)
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0);
            } else {
                kept.push((h.name.to_string(), h.value.to_vec()));
            }
        }
        let len = length.ok_or(RecordError::BadLength { offset })?;
        let start = offset + head_len;
        let end = start
            .checked_add(len)
            .filter(|e| *e <= data.len())
            .ok_or(RecordError::Truncated { offset })?;
        out.push(Record {
            target,
            headers: kept,
            captured_at_unix_ns: captured,
            body: data.slice(start..end),
        });
        offset = end;
    }
    Ok(out)
}

/// Reads every record of every segment in `dir`, oldest segment first.
pub fn read_dir_records(dir: &Path) -> io::Result<Vec<Record>> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "http"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for f in files {
        let data = Bytes::from(fs::read(&f)?);
        let recs = parse_records(&data).map_err(|e| {
            io::Error::new(io::ErrorKind::InvalidData, format!("{}: {e}", f.display()))
        })?;
        out.extend(recs);
    }
    Ok(out)
}

#[derive(Debug)]
struct Segment {
    file: File,
    written: u64,
}

#[derive(Debug)]
struct SinkState {
    segment: Option<Segment>,
    seq: u64,
}

/// The segment files of one capture destination on one core.
#[derive(Debug)]
pub struct CaptureSink {
    dir: PathBuf,
    core: usize,
    /// Touched only on the blocking pool; one sender per core uses it, so it is uncontended.
    state: Mutex<SinkState>,
}

impl CaptureSink {
    pub fn new(dir: PathBuf, core: usize) -> Self {
        CaptureSink {
            dir,
            core,
            state: Mutex::new(SinkState {
                segment: None,
                seq: 0,
            }),
        }
    }

    /// Appends one record (blocking). Rotates the segment first when it is full.
    pub fn append(&self, head: &[u8], parts: &[Bytes]) -> io::Result<()> {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let len = head.len() as u64 + parts.iter().map(|p| p.len() as u64).sum::<u64>();
        if st
            .segment
            .as_ref()
            .is_none_or(|s| s.written + len > SEGMENT_MAX_BYTES && s.written > 0)
        {
            fs::create_dir_all(&self.dir)?;
            let ms = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_millis())
                .unwrap_or(0);
            st.seq += 1;
            let name = format!("capture-{ms}-core{}-{}.http", self.core, st.seq);
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(self.dir.join(name))?;
            st.segment = Some(Segment { file, written: 0 });
        }
        let seg = st.segment.as_mut().expect("segment opened above");
        let mut slices: Vec<io::IoSlice<'_>> = Vec::with_capacity(parts.len() + 1);
        slices.push(io::IoSlice::new(head));
        slices.extend(parts.iter().map(|p| io::IoSlice::new(p)));
        write_all_vectored(&mut seg.file, &mut slices)?;
        seg.written += len;
        Ok(())
    }
}

fn write_all_vectored(f: &mut File, mut bufs: &mut [io::IoSlice<'_>]) -> io::Result<()> {
    io::IoSlice::advance_slices(&mut bufs, 0);
    while !bufs.is_empty() {
        match f.write_vectored(bufs) {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::WriteZero,
                    "capture file accepted no bytes",
                ));
            }
            Ok(n) => io::IoSlice::advance_slices(&mut bufs, n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_through_a_segment() {
        let dir = tempfile::tempdir().unwrap();
        let sink = CaptureSink::new(dir.path().join("cap"), 0);
        for (i, body) in [&b"first body"[..], b"\x00\x01second"].iter().enumerate() {
            let mut head = BytesMut::new();
            encode_record_head(
                &mut head,
                "/ingest?name=app%7B%7D",
                &[(b"Content-Type", b"binary/octet-stream")],
                1000 + i as u128,
                body.len() as u64,
            );
            sink.append(&head, &[Bytes::copy_from_slice(body)]).unwrap();
        }
        let recs = read_dir_records(&dir.path().join("cap")).unwrap();
        assert_eq!(recs.len(), 2);
        assert_eq!(recs[0].target, "/ingest?name=app%7B%7D");
        assert_eq!(recs[0].body.as_ref(), b"first body");
        assert_eq!(recs[1].body.as_ref(), b"\x00\x01second");
        assert_eq!(recs[1].captured_at_unix_ns, 1001);
        assert_eq!(
            recs[0].headers,
            vec![("Content-Type".to_string(), b"binary/octet-stream".to_vec())]
        );
    }

    #[test]
    fn a_truncated_segment_is_reported_with_its_offset() {
        let mut head = BytesMut::new();
        encode_record_head(&mut head, "/ingest", &[], 1, 10);
        head.extend_from_slice(b"short");
        assert_eq!(
            parse_records(&head.freeze()),
            Err(RecordError::Truncated { offset: 0 })
        );
    }
}
