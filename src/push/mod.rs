//! The wire formats of Pyroscope's Connect Push API (`POST /push.v1.PusherService/Push`):
//! the `push.v1.PushRequest` protobuf in both directions, its protojson form, Connect's error
//! model and content types, gRPC-Web framing, and bounded gzip.
//!
//! Owns: bytes in, values out — [`decode_proto`], [`decode_json`], [`encode_series`],
//! [`gunzip_bounded`], and the [`connect`] and [`grpcweb`] envelopes. Does not own: the label
//! rules (`labels::push_series_labels`), routing, limits chosen by configuration, or any I/O.
//! Hot path: every Push request is decoded here once and every upstream Push body is encoded
//! here once per series. `raw_profile` is never copied by the protobuf codec: decoding returns
//! `Bytes::slice`s of the request body and encoding hands the same `Bytes` back as pieces of a
//! vectored write. Nothing here panics on any input (fuzzed by `fuzz/fuzz_targets/push.rs`,
//! benched by `benches/push.rs`).
//!
//! Schema (`api/push/v1/push.proto`, `api/types/v1/types.proto` of grafana/pyroscope):
//! ```text
//! PushRequest       { repeated RawProfileSeries series = 1; }
//! RawProfileSeries  { repeated LabelPair labels = 1; repeated RawSample samples = 2;
//!                     repeated ProfileAnnotation annotations = 3; }   // validated, dropped
//! LabelPair         { string name = 1; string value = 2; }
//! RawSample         { bytes raw_profile = 1; string ID = 2; }
//! ProfileAnnotation { string key = 1; string value = 2; }
//! ```

use std::fmt;

use bytes::Bytes;

pub mod connect;
mod deflate_ffi;
pub mod grpcweb;
pub mod gzip;
pub mod json;
pub mod proto;

pub use connect::{
    Code, Protocol, UnsupportedContentType, classify, error_body, parse_error_body,
    parse_timeout_ms,
};
pub use gzip::{GzipError, gunzip_bounded, inflated_size_hint};
pub use json::{JsonProblem, decode_json};
pub use proto::{ProtoProblem, decode_proto, encode_series, encoded_len};

/// The request path of the one method this module speaks.
pub const PUSH_PATH: &str = "/push.v1.PusherService/Push";

/// `push.v1.PushRequest`: what one Push call carries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PushRequest {
    pub series: Vec<Series>,
}

/// `push.v1.RawProfileSeries` without its annotations (the Pyroscope server drops them too).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Series {
    /// `(name, value)` in wire order, duplicates and empty values included: the label rules
    /// decide what they mean.
    pub labels: Vec<(String, String)>,
    pub samples: Vec<Sample>,
}

/// `push.v1.RawSample`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sample {
    /// The pprof profile (gzip'd or plain), a slice of the request body after proto decoding.
    pub raw_profile: Bytes,
    /// The sample `ID` (a UUID from the Rust/Python SDKs, empty from .NET).
    pub id: String,
}

/// Where in a `PushRequest` a decoding problem was found: `series[0].samples[1]`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Location {
    /// Index of the `RawProfileSeries`, if inside one.
    pub series: Option<usize>,
    /// The repeated field of the series and the element's index, if inside one.
    pub item: Option<(Item, usize)>,
}

/// The repeated message fields of `RawProfileSeries`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Item {
    Labels,
    Samples,
    Annotations,
}

impl Location {
    /// The top level of the `PushRequest`.
    pub const TOP: Location = Location {
        series: None,
        item: None,
    };

    pub(crate) fn series(index: usize) -> Location {
        Location {
            series: Some(index),
            item: None,
        }
    }

    pub(crate) fn item(self, item: Item, index: usize) -> Location {
        Location {
            series: self.series,
            item: Some((item, index)),
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Some(series) = self.series else {
            return f.write_str("PushRequest");
        };
        write!(f, "series[{series}]")?;
        if let Some((item, index)) = self.item {
            let name = match item {
                Item::Labels => "labels",
                Item::Samples => "samples",
                Item::Annotations => "annotations",
            };
            write!(f, ".{name}[{index}]")?;
        }
        Ok(())
    }
}

/// A request body that is not a well-formed `PushRequest` in its protocol. Every variant is the
/// Connect `invalid_argument` error (HTTP 400, gRPC status 3), as connect-go answers an
/// unmarshalling failure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Binary protobuf (`application/proto`, gRPC-Web).
    #[error("{at}: {problem}")]
    Proto { at: Location, problem: ProtoProblem },
    /// protojson (`application/json`).
    #[error("{at}: {problem}")]
    Json { at: Location, problem: JsonProblem },
    /// The gRPC-Web envelope around the message.
    #[error("gRPC-Web request: {0}")]
    GrpcWeb(grpcweb::FrameProblem),
}

impl DecodeError {
    /// The Connect code the client receives.
    pub fn code(&self) -> Code {
        Code::InvalidArgument
    }

    /// The HTTP status of that code under the Connect unary protocol.
    pub fn http_status(&self) -> u16 {
        self.code().http_status()
    }
}
