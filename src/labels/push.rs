//! The label rules Alloy applies to one series of `/push.v1.PusherService/Push`:
//! `pyroscope.receive_http`'s `Push` (labels applied with a `labels.Builder`, then
//! `ensureServiceName`) and `pyroscope.write`'s `Append` (`validateLabels`, the `__` filter,
//! external labels, sorting), with the exact error texts the client and the logs see.
//!
//! Owns: the label list of each upstream series. Does not own protobuf or Connect framing.
//! Hot path: once per series per `pyroscope.write`; error texts are built only on failure.

use super::goquote::{is_legacy_label_name, push_quoted_str};
use super::ingest::upsert;
use super::labelset::{self, APP_NAME_LABEL, LabelValidationError, NAME_LABEL, SERVICE_NAME_LABEL};

/// Prometheus' reserved-name prefix; `Append` drops such labels except the two below.
const RESERVED_PREFIX: &str = "__";
/// Pyroscope's delta marker, kept by `Append` despite its reserved prefix.
const DELTA_LABEL: &str = "__delta__";

/// `pyroscope.write` rejected a Push series.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid labels in profile: {cause}")]
pub struct PushLabelError {
    /// The series as `labels.Labels.String()` renders it, taken before `ensureServiceName`.
    series: String,
    /// What `validateLabels` reported.
    cause: LabelValidationError,
}

impl PushLabelError {
    /// The Connect code the client receives (`connect.CodeInternal`, HTTP 500).
    pub const CONNECT_CODE: &'static str = "internal";
    /// The HTTP status of that Connect error.
    pub const HTTP_STATUS: u16 = 500;

    /// `pyroscope.write`'s error: `invalid labels in profile: <reason>`.
    pub fn write_error(&self) -> String {
        self.to_string()
    }

    /// The Connect error message for appendable 0 (a single `forward_to` target).
    pub fn client_message(&self) -> String {
        self.client_message_for(0)
    }

    /// `unable to append series <labels> to appendable <index>: <write error>`.
    pub fn client_message_for(&self, appendable_index: usize) -> String {
        format!(
            "unable to append series {} to appendable {appendable_index}: {self}",
            self.series
        )
    }

    /// `unable to append series <labels> to appendable <index>: <errors>` for the errors of
    /// several writers behind one `pyroscope.relabel` (Alloy's relabel fan-out collects them
    /// with hashicorp/go-multierror, whose `Append` flattens nested lists, so every writer
    /// below the stage lands in one list, in order): `errors` are those writers' errors for
    /// the same series.
    pub fn client_message_through_relabel(
        errors: &[&PushLabelError],
        appendable_index: usize,
    ) -> String {
        let series = errors.first().map_or("", |e| e.series.as_str());
        let list = match errors {
            [one] => format!("1 error occurred:\n\t* {one}\n\n"),
            many => {
                let points: Vec<String> = many.iter().map(|e| format!("* {e}")).collect();
                format!(
                    "{} errors occurred:\n\t{}\n\n",
                    many.len(),
                    points.join("\n\t")
                )
            }
        };
        format!("unable to append series {series} to appendable {appendable_index}: {list}")
    }

    /// What `validateLabels` reported.
    pub fn cause(&self) -> &LabelValidationError {
        &self.cause
    }
}

/// Prometheus `labels.Labels.String()`: `{a="1", "b-c"="2"}`; names that are not legacy
/// Prometheus names are quoted, values always are (Go `strconv.Quote`).
fn labels_string(sorted: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(
        2 + sorted
            .iter()
            .map(|(k, v)| k.len() + v.len() + 8)
            .sum::<usize>(),
    );
    out.push('{');
    for (i, (k, v)) in sorted.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        if is_legacy_label_name(k) {
            out.push_str(k);
        } else {
            push_quoted_str(&mut out, k);
        }
        out.push('=');
        push_quoted_str(&mut out, v);
    }
    out.push('}');
    out
}

/// One incoming Push series after `pyroscope.receive_http`'s stage: what the next component
/// (`pyroscope.relabel` or `pyroscope.write`) receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedSeries<'a> {
    /// The pairs as `Set` in wire order (later wins, empty deletes), sorted by name: the
    /// series Alloy names in its errors (`lb.Labels().String()`).
    received: Vec<(&'a str, &'a str)>,
    /// `received` plus `service_name` (or `app_name`) from `__name__` (`ensureServiceName`).
    staged: Vec<(&'a str, &'a str)>,
}

impl<'a> ReceivedSeries<'a> {
    /// The labels handed downstream, sorted by name.
    pub fn labels(&self) -> &[(&'a str, &'a str)] {
        &self.staged
    }
}

/// `receive_http`'s stage: each incoming pair is `Set` in wire order (later wins, empty
/// deletes); then `service_name` = `__name__` if `service_name` is absent, else `app_name` =
/// `__name__` (deleted when there is no `__name__`). `__name__` is NOT replaced by
/// `service_name` here.
pub fn push_receive_stage(labels_in: &[(String, String)]) -> ReceivedSeries<'_> {
    let mut received: Vec<(&str, &str)> = Vec::with_capacity(labels_in.len() + 1);
    for (k, v) in labels_in {
        upsert(&mut received, k, v);
    }
    let mut staged = Vec::with_capacity(received.len() + 1);
    staged.extend_from_slice(&received);
    let name = staged
        .binary_search_by(|(k, _)| labelset::cmp_names(k, NAME_LABEL))
        .ok()
        .and_then(|i| staged.get(i))
        .map_or("", |(_, v)| *v);
    let has_service_name = staged
        .binary_search_by(|(k, _)| labelset::cmp_names(k, SERVICE_NAME_LABEL))
        .is_ok();
    let stage_label = if has_service_name {
        APP_NAME_LABEL
    } else {
        SERVICE_NAME_LABEL
    };
    upsert(&mut staged, stage_label, name);
    ReceivedSeries { received, staged }
}

/// `pyroscope.write`'s `Append` for one series whose labels (sorted by name) are `labels`:
/// `validateLabels`; drop names starting with `__` except `__name__`/`__delta__`; apply
/// external labels after that filter (override, empty deletes, unvalidated). The error names
/// the series as `series` was received.
pub fn push_write_stage(
    series: &ReceivedSeries<'_>,
    labels: &[(&str, &str)],
    external_labels: &[(String, String)],
) -> Result<Vec<(String, String)>, PushLabelError> {
    if let Err(cause) = labelset::validate_labels(labels.iter().copied()) {
        return Err(PushLabelError {
            series: labels_string(&series.received),
            cause,
        });
    }
    let mut out: Vec<(&str, &str)> = Vec::with_capacity(labels.len() + external_labels.len());
    out.extend(
        labels.iter().filter(|(k, _)| {
            !k.starts_with(RESERVED_PREFIX) || *k == NAME_LABEL || *k == DELTA_LABEL
        }),
    );
    for (k, v) in external_labels {
        upsert(&mut out, k, v);
    }
    Ok(out
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect())
}

/// The labels of the upstream series for one incoming series sent straight from
/// `receive_http` to `pyroscope.write`, or the error Alloy reports:
/// [`push_receive_stage`] then [`push_write_stage`].
pub fn push_series_labels(
    labels_in: &[(String, String)],
    external_labels: &[(String, String)],
) -> Result<Vec<(String, String)>, PushLabelError> {
    let series = push_receive_stage(labels_in);
    push_write_stage(&series, series.labels(), external_labels)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owned(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn series_string_quotes_non_legacy_names_and_all_values() {
        assert_eq!(
            labels_string(&[("", "x"), ("__name__", "a\"b"), ("a.b", "é\n")]),
            "{\"\"=\"x\", __name__=\"a\\\"b\", \"a.b\"=\"é\\n\"}"
        );
        assert_eq!(labels_string(&[]), "{}");
    }

    #[test]
    fn reserved_names_filtered_after_validation() {
        // "__type__" passes validation (it is [A-Za-z0-9_.]) and is then dropped.
        let got = push_series_labels(
            &owned(&[
                ("__name__", "cpu"),
                ("__type__", "t"),
                ("__delta__", "false"),
            ]),
            &[],
        )
        .unwrap();
        assert_eq!(
            got,
            owned(&[
                ("__delta__", "false"),
                ("__name__", "cpu"),
                ("service_name", "cpu")
            ])
        );
    }

    #[test]
    fn invalid_name_error_uses_series_before_service_name_step() {
        let err =
            push_series_labels(&owned(&[("__name__", "cpu"), ("a b", "1")]), &[]).unwrap_err();
        assert_eq!(
            err.client_message_for(2),
            "unable to append series {__name__=\"cpu\", \"a b\"=\"1\"} to appendable 2: \
             invalid labels in profile: invalid label name: invalid label name: a b: \
             character is not allowed: ' '"
        );
    }

    #[test]
    fn errors_behind_a_relabel_stage_read_as_go_multierror() {
        let err =
            push_series_labels(&owned(&[("__name__", "cpu"), ("a b", "1")]), &[]).unwrap_err();
        assert_eq!(
            PushLabelError::client_message_through_relabel(&[&err], 1),
            format!(
                "unable to append series {{__name__=\"cpu\", \"a b\"=\"1\"}} to appendable 1: \
                 1 error occurred:\n\t* {err}\n\n"
            )
        );
    }

    #[test]
    fn non_printable_rune_in_name_is_escaped_in_both_texts() {
        let err = push_series_labels(&owned(&[("__name__", "cpu"), ("a\u{200b}", "1")]), &[])
            .unwrap_err();
        assert_eq!(
            err.client_message(),
            "unable to append series {__name__=\"cpu\", \"a\\u200b\"=\"1\"} to appendable 0: \
             invalid labels in profile: invalid label name: invalid label name: a\u{200b}: \
             character is not allowed: '\\u200b'"
        );
    }
}
