//! Arbitrary bytes through every decoder of `pyrogate::push`: none may panic. Whatever decodes
//! (as protobuf, protojson, or protobuf inside a gRPC-Web frame or a small gzip stream) must
//! re-encode per series with `encode_series` and decode back to the same series; every error
//! body pyrogate writes must parse back to its code and message.
#![no_main]

use bytes::Bytes;
use pyrogate::push::{self, Code, PushRequest};

/// Small, so that gzip input regularly hits the limit.
const GUNZIP_LIMIT: u64 = 4096;

fn round_trip(request: &PushRequest) {
    for series in &request.series {
        let parts = push::encode_series(&series.labels, &series.samples);
        let body = Bytes::from(parts.concat());
        assert_eq!(push::encoded_len(&parts), body.len() as u64);
        let again = push::decode_proto(&body).expect("encode_series output decodes");
        assert_eq!(again.series, std::slice::from_ref(series));
    }
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let body = Bytes::copy_from_slice(data);
    match push::decode_proto(&body) {
        Ok(request) => round_trip(&request),
        Err(e) => drop(e.to_string()),
    }
    match push::decode_json(data) {
        Ok(request) => round_trip(&request),
        Err(e) => drop(e.to_string()),
    }
    if let Ok((message, _compressed)) = push::grpcweb::unwrap_request(&body) {
        if let Ok(request) = push::decode_proto(&message) {
            round_trip(&request);
        }
    }
    match push::gunzip_bounded(data, GUNZIP_LIMIT) {
        Ok(out) => {
            assert!(out.len() as u64 <= GUNZIP_LIMIT);
            if let Ok(request) = push::decode_proto(&out) {
                round_trip(&request);
            }
        }
        Err(e) => drop(e.to_string()),
    }
    let _ = push::parse_error_body(data);
    let _ = push::classify(data).map_err(|e| e.to_string());
    let _ = push::parse_timeout_ms(data);

    let text = String::from_utf8_lossy(data);
    let body = push::error_body(Code::Internal, &text);
    assert_eq!(
        push::parse_error_body(body.as_bytes()),
        Some((Code::Internal, text.clone().into_owned()))
    );
    let _ = push::grpcweb::encode_response(Some((Code::Unavailable, &text)));
});
