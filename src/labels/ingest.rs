//! The label rules Alloy applies to `POST /ingest`: `pyroscope.receive_http`'s stage
//! (`handleIngest` + `ensureServiceName`) and `pyroscope.write`'s `AppendIngest` stage
//! (`ensureNameMatchesService`, `validateLabels`, external labels, `name` rebuilt with
//! `Normalized()`, query re-encoded, URL path joined).
//!
//! Owns: turning an incoming query into the labels and the upstream path and query. Does not own
//! HTTP parsing or sending. Hot path: [`receive_stage`] once per upload, [`write_stage`] and
//! [`upstream_query`] once per upload per `pyroscope.write`.

use super::labelset::{
    self, LabelSet, LabelValidationError, NAME_LABEL, SERVICE_NAME_LABEL, StageLabel, cmp_names,
};
use super::query::QueryValues;

/// The query parameter that carries the label set (`APP{k=v,...}`).
pub const NAME_PARAM: &[u8] = b"name";

/// Labels after `pyroscope.receive_http`'s `/ingest` stage: the leniently parsed `name`
/// (parse failures and a missing name give an empty set), empty values dropped, and
/// `service_name` / `app_name` set from `__name__`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IngestLabels {
    set: LabelSet,
}

impl IngestLabels {
    /// The labels, sorted by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.set.iter()
    }

    /// The value of `key`, if present.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.set.get(key)
    }

    /// Whether no label survived (every such upload is rejected by [`write_stage`]).
    pub fn is_empty(&self) -> bool {
        self.set.is_empty()
    }

    /// Bytes the labels' names and values take (what keeping them costs, roughly).
    pub fn text_len(&self) -> usize {
        self.set.text_len()
    }
}

/// `pyroscope.write` rejected the labels: `invalid labels in profile: <reason>`. Not retried;
/// `receive_http` answers the client 500 `Failed to process request` and nothing goes upstream.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid labels in profile: {0}")]
pub struct InvalidLabels(pub LabelValidationError);

impl InvalidLabels {
    /// The status `receive_http` answers with.
    pub const HTTP_STATUS: u16 = 500;
}

/// `receive_http`'s label stage. Uses the FIRST `name` value (Go `Values.Get`); a missing or
/// empty value, or one that fails [`labelset::parse_bytes`], gives empty labels (Alloy only logs
/// the parse error). Then, with Prometheus `labels.Builder` semantics (an empty value deletes):
/// empty-valued labels are dropped; if `service_name` was not among the parsed keys it is set to
/// `__name__`, otherwise (even when it was empty) `app_name` is set to `__name__`.
pub fn receive_stage(query: &QueryValues) -> IngestLabels {
    receive_stage_of(query.first(NAME_PARAM).unwrap_or_default())
}

/// [`receive_stage`] of the first `name` value (decoded; empty when there is none): the stage
/// depends on nothing else, so its result can be kept per value.
pub fn receive_stage_of(name: &[u8]) -> IngestLabels {
    let parsed = match name {
        [] => None,
        raw => labelset::parse_bytes(raw).ok(),
    };
    let Some(mut set) = parsed else {
        return IngestLabels::default();
    };
    let had_service_name = set.contains_key(SERVICE_NAME_LABEL);
    let name = set.non_empty_name_value();
    set.retain_non_empty();
    if had_service_name {
        set.set_stage_label(StageLabel::AppName, name);
    } else {
        set.set_stage_label(StageLabel::ServiceName, name);
    }
    IngestLabels { set }
}

/// `pyroscope.write`'s `AppendIngest` label stage; returns the new `name` value.
///
/// `__name__` becomes `service_name` when that is non-empty; the result is validated (so an
/// empty set fails with `service name is required`); then each external label overrides (an
/// empty value deletes, nothing is validated, `__name__` may be set or removed); the result is
/// rendered by `Normalized()`: `<__name__>{k=v,...}` sorted by bytes, unescaped.
pub fn write_stage(
    labels: &IngestLabels,
    external_labels: &[(String, String)],
) -> Result<String, InvalidLabels> {
    write_stage_sorted(labels.set.iter(), external_labels)
}

/// [`write_stage`] for labels already sorted by name with unique names, such as the set a
/// `pyroscope.relabel` stage left: no intermediate label set is built.
pub fn write_stage_sorted<'a>(
    sorted: impl Iterator<Item = (&'a str, &'a str)>,
    external_labels: &'a [(String, String)],
) -> Result<String, InvalidLabels> {
    let mut merged: Vec<(&str, &str)> = Vec::with_capacity(16 + external_labels.len());
    merged.extend(sorted);
    let service = merged
        .binary_search_by(|(k, _)| cmp_names(k, SERVICE_NAME_LABEL))
        .ok()
        .and_then(|i| merged.get(i))
        .map(|(_, v)| *v)
        .filter(|s| !s.is_empty());
    if let Some(service) = service {
        upsert(&mut merged, NAME_LABEL, service);
    }
    labelset::validate_labels(merged.iter().copied()).map_err(InvalidLabels)?;
    for (k, v) in external_labels {
        upsert(&mut merged, k, v);
    }
    Ok(labelset::normalize_sorted(merged.iter().copied()))
}

/// `labels.Builder.Set` / `LabelSet.Add` on a name-sorted list: an empty value deletes.
pub(crate) fn upsert<'a>(sorted: &mut Vec<(&'a str, &'a str)>, key: &'a str, value: &'a str) {
    match sorted.binary_search_by(|(k, _)| cmp_names(k, key)) {
        Ok(i) if value.is_empty() => {
            sorted.remove(i);
        }
        Ok(i) => {
            if let Some(e) = sorted.get_mut(i) {
                e.1 = value;
            }
        }
        Err(_) if value.is_empty() => {}
        Err(i) => sorted.insert(i, (key, value)),
    }
}

/// The upstream query: the incoming parameters (decoded) with `name` replaced by `name`
/// (`Values.Set`), re-encoded by `Values.Encode`.
pub fn upstream_query(query: &QueryValues, name: &str) -> String {
    query.encode_with_set(NAME_PARAM, name.as_bytes())
}

/// [`upstream_query`] for a `name` already `QueryEscape`d ([`escaped_name`]).
pub fn upstream_query_escaped(query: &QueryValues, escaped_name: &str) -> String {
    query.encode_with_escaped_set(NAME_PARAM, escaped_name)
}

/// `QueryEscape` of a `name` value, as [`upstream_query`] writes it.
pub fn escaped_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len() * 3 / 2);
    super::query::query_escape(name.as_bytes(), &mut out);
    out
}

/// Go `path.Join(endpoint_path, request_path)`: the non-empty elements joined by `/` and
/// cleaned; `""` when both are empty. Alloy uses it for `u.Path = path.Join(u.Path, "/ingest")`.
pub fn join_path(endpoint_path: &str, request_path: &str) -> String {
    match (endpoint_path.is_empty(), request_path.is_empty()) {
        (true, true) => String::new(),
        (true, false) => clean_path(request_path),
        (false, true) => clean_path(endpoint_path),
        (false, false) => {
            let mut joined = String::with_capacity(endpoint_path.len() + 1 + request_path.len());
            joined.push_str(endpoint_path);
            joined.push('/');
            joined.push_str(request_path);
            clean_path(&joined)
        }
    }
}

/// Go `path.Clean`: collapse slashes, drop `.`, resolve `..` against the preceding element
/// (a rooted path drops a leading `..`), `.` for an empty result.
pub fn clean_path(p: &str) -> String {
    let rooted = p.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for seg in p.split('/') {
        match seg {
            "" | "." => {}
            ".." => match parts.last() {
                Some(&last) if last != ".." => {
                    parts.pop();
                }
                _ if !rooted => parts.push(".."),
                _ => {}
            },
            s => parts.push(s),
        }
    }
    let mut out = String::with_capacity(p.len().max(1));
    if rooted {
        out.push('/');
    }
    for (i, s) in parts.iter().enumerate() {
        if i > 0 {
            out.push('/');
        }
        out.push_str(s);
    }
    if out.is_empty() {
        out.push('.');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::query::parse_query;
    use super::*;

    fn rewrite(raw: &[u8], ext: &[(&str, &str)]) -> Result<String, String> {
        let q = parse_query(raw);
        let ext: Vec<(String, String)> = ext
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        write_stage(&receive_stage(&q), &ext)
            .map(|name| upstream_query(&q, &name))
            .map_err(|e| e.to_string())
    }

    #[test]
    fn receive_stage_adds_service_name_from_app_name() {
        let l = receive_stage(&parse_query(b"name=app%7Benv%3D%2Cr%3Deu%7D"));
        let got: Vec<_> = l.iter().collect();
        assert_eq!(
            got,
            [("__name__", "app"), ("r", "eu"), ("service_name", "app")]
        );
    }

    #[test]
    fn empty_service_name_still_counts_as_present() {
        let l = receive_stage(&parse_query(b"name=app%7Bservice_name%3D%7D"));
        let got: Vec<_> = l.iter().collect();
        assert_eq!(got, [("__name__", "app"), ("app_name", "app")]);
    }

    #[test]
    fn client_app_name_overwritten_or_deleted_when_service_name_present() {
        let l = receive_stage(&parse_query(b"name=a%7Bservice_name%3Ds%2Capp_name%3Dx%7D"));
        assert_eq!(l.get("app_name"), Some("a"));
        let l = receive_stage(&parse_query(
            b"name=a%7B__name__%3D%2Cservice_name%3Ds%2Capp_name%3Dx%7D",
        ));
        assert_eq!(l.get("app_name"), None);
        assert_eq!(l.get("service_name"), Some("s"));
    }

    #[test]
    fn unparsable_or_missing_name_is_rejected_by_write_stage() {
        for raw in [&b"from=1"[..], b"name=", b"name=my+app", b"name=&name=app"] {
            assert_eq!(
                rewrite(raw, &[]),
                Err("invalid labels in profile: service name is required".to_owned()),
                "{}",
                String::from_utf8_lossy(raw)
            );
        }
    }

    #[test]
    fn external_labels_override_delete_and_rename() {
        assert_eq!(
            rewrite(
                b"name=app%7Benv%3Ds%7D&from=1",
                &[("env", "prod"), ("c", "1")]
            ),
            Ok("from=1&name=app%7Bc%3D1%2Cenv%3Dprod%2Cservice_name%3Dapp%7D".to_owned())
        );
        assert_eq!(
            rewrite(b"name=app", &[("__name__", "")]),
            Ok("name=%7Bservice_name%3Dapp%7D".to_owned())
        );
        assert_eq!(
            rewrite(b"name=app", &[("service_name", "")]),
            Ok("name=app%7B%7D".to_owned())
        );
    }

    #[test]
    fn non_utf8_name_value_is_decoded_with_replacement_runes() {
        // Values are never validated, so a bad byte in a value survives as U+FFFD.
        assert_eq!(
            rewrite(b"name=app%7Bk%3D%FF%7D", &[]),
            Ok("name=app%7Bk%3D%EF%BF%BD%2Cservice_name%3Dapp%7D".to_owned())
        );
    }

    #[test]
    fn go_path_join() {
        let cases = [
            ("", "/ingest", "/ingest"),
            ("/", "/ingest", "/ingest"),
            ("/prefix/", "/ingest", "/prefix/ingest"),
            ("/a/../b", "/ingest", "/b/ingest"),
            ("/a//b/./c", "/ingest", "/a/b/c/ingest"),
            ("/../..", "/ingest", "/ingest"),
            ("a", "../../ingest", "../ingest"),
            ("", "", ""),
            ("/x", "", "/x"),
            ("a/..", "", "."),
        ];
        for (endpoint, request, want) in cases {
            assert_eq!(
                join_path(endpoint, request),
                want,
                "{endpoint:?} + {request:?}"
            );
        }
    }
}
