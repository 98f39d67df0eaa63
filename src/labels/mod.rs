//! Pyroscope label handling, byte-exact with Grafana Alloy (`pyroscope.receive_http` +
//! `pyroscope.write`, Alloy v1.8–v1.19, Pyroscope `api/model/labelset` v1.5.0, Go 1.26
//! `net/url`): the label-set grammar, Go-compatible query parsing and encoding, `path.Join`, and
//! the label rules of the `/ingest` and Push paths. Pure code: bytes and strings in, values
//! out; no I/O. Hot path (see each submodule for its costs). Verified against
//! `tests/data/label-vectors.json`, which was produced by running Alloy's code.
//!
//! # Alloy quirks reproduced on purpose
//! - **Lenient `name`**: a missing or empty first `name` value, or one that fails to parse,
//!   is not an error at receive time; the labels are simply empty, so `pyroscope.write` then
//!   fails with `invalid labels in profile: service name is required` (client gets 500,
//!   nothing goes upstream). Only the FIRST `name` value counts; parameter names are
//!   case-sensitive.
//! - **Grammar**: the app name (before the first `{`, trimmed of Unicode spaces) must be
//!   `[A-Za-z0-9_.\-/]+`; keys `[A-Za-z0-9_.]+` except `__name__`, which overrides the app name
//!   unvalidated; values are trimmed but never validated or unescaped (they may hold `=`, `{`,
//!   spaces); a later duplicate wins; a pair without `=` or without a closing `,`/`}` is
//!   dropped; a `}` ending a value returns to key reading (`app{a=b}x=y}` yields `x=y`,
//!   `app{a=b}{c=d}` fails on key `{c`), a `}` met while reading a key ends parsing; a comma
//!   outside a value joins keys (`app{a,b=c}` fails on key `a,b`). Non-UTF-8 bytes become
//!   U+FFFD one byte at a time, as Go's `range` does.
//! - **receive_http stage**: empty values are dropped; if `service_name` was not among the
//!   parsed keys it is added as `__name__`; if it was (even empty), `app_name` is overwritten
//!   with `__name__` (or deleted when there is none).
//! - **write stage (`/ingest`)**: `__name__` is replaced by a non-empty `service_name`, so a
//!   `.cpu`-style app-name suffix is lost upstream when the client sent `service_name`;
//!   external labels override, an empty one deletes, none is validated and `__name__` may be
//!   set or removed; `name` becomes `Normalized()`: `<__name__>{k=v,...}` sorted by bytes,
//!   unescaped, `service_name` always inside the braces, no `__` filtering.
//! - **Query re-encoding**: every other parameter is kept, decoded and re-encoded by
//!   `url.Values.Encode` (keys sorted by bytes, values of one key in arrival order,
//!   `QueryEscape`: space as `+`, `%XX` upper-case); pairs containing `;` or a malformed
//!   `%`-escape vanish; `+` means space; bytes are preserved exactly (`%FF` stays `%FF`); more
//!   than 10 000 parameters make Go drop the whole query. The endpoint URL's own query is
//!   discarded; the path is `path.Join(endpoint path, "/ingest")`, cleaned.
//! - **Push path**: pairs applied in wire order (later wins, empty deletes); the same
//!   `service_name`/`app_name` rule, but `__name__` is NOT renamed; validation (an empty name
//!   is reported as `duplicate label name: `); then names starting with `__` other than
//!   `__name__`/`__delta__` are dropped; external labels are applied after that filter. Errors
//!   reach the client as Connect `internal` with Alloy's exact message, including the series
//!   rendered by Prometheus `Labels.String()` (Go `%q` quoting, Unicode 15.0 printability).

mod goquote;
pub mod ingest;
pub mod labelset;
pub mod push;
pub mod query;

pub use ingest::{
    IngestLabels, InvalidLabels, escaped_name, join_path, receive_stage, receive_stage_of,
    upstream_query, upstream_query_escaped, write_stage, write_stage_sorted,
};
pub use labelset::{LabelSet, LabelValidationError, LabelsetError, parse, parse_bytes};
pub use push::{
    PushLabelError, ReceivedSeries, push_receive_stage, push_series_labels, push_write_stage,
};
pub use query::{QueryValues, parse_query, path_escape, query_escape};
