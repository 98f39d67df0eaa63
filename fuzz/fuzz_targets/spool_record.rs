//! The spool's record codec (`pyrogate::spool::record`), which reads back files a crash may
//! have torn or a disk may have corrupted: arbitrary bytes as a segment must never panic, and
//! whatever decodes must re-encode to a record that decodes to the same thing.
//!
//! Random bytes almost never carry a valid CRC-32, so the payload parser is also driven
//! directly: the input, as a payload, with its own checksum.
#![no_main]

use bytes::Bytes;
use pyrogate::spool::record::{self, Record};

fn round_trip(rec: &Record) {
    let requests: Vec<Vec<Bytes>> = rec.requests.iter().map(|r| vec![r.clone()]).collect();
    let Some(encoded) = record::encode(&rec.meta, &requests) else {
        // Only a record over the payload limit cannot be encoded, and none decodes.
        panic!("a decoded record must re-encode");
    };
    let frame = Bytes::from(encoded.chunks.concat());
    assert_eq!(encoded.len(), frame.len() as u64);
    let (again, used) = record::decode(&frame).expect("an encoded record decodes");
    assert_eq!(used, frame.len());
    assert_eq!(&again, rec);
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    // As a segment: records back to back, as recovery walks them.
    let mut rest = Bytes::copy_from_slice(data);
    while !rest.is_empty() {
        match record::decode(&rest) {
            Ok((rec, used)) => {
                assert!(used > record::FRAME_HEAD && used <= rest.len());
                round_trip(&rec);
                rest = rest.slice(used..);
            }
            Err(e) => {
                drop(e.to_string());
                break;
            }
        }
    }
    // As one payload with a matching checksum: the parser itself.
    let payload = Bytes::copy_from_slice(data);
    let crc = crc32fast::hash(data);
    if let Ok(rec) = record::decode_payload(payload, crc) {
        round_trip(&rec);
        let meta = record::peek_meta(data).expect("a decoded payload has a readable head");
        assert_eq!(
            meta,
            (rec.meta.accepted_at_unix_ms, rec.meta.profiles, rec.meta.bytes)
        );
    }
});
