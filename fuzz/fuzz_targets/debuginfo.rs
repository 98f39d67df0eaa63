#![no_main]
//! Arbitrary bytes as a debug-info request path and as each of the service's messages, in both
//! codecs: no panic, and a routed upload's build ID survives the trip through the upstream
//! path (`url.PathEscape`) and back through the router.

use pyrogate::debuginfo::{self, Codec, Route};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Some(Route::Upload(id)) = debuginfo::route(data) {
        let path = debuginfo::upload_path("", &id);
        assert_eq!(debuginfo::route(path.as_bytes()), Some(Route::Upload(id)));
    }
    for codec in [Codec::Proto, Codec::Json] {
        let _ = debuginfo::decode_should_initiate_request(codec, data);
        let _ = debuginfo::decode_upload_finished_request(codec, data);
        let _ = debuginfo::decode_should_initiate_response(codec, data);
    }
});
