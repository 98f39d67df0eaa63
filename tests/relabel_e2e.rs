//! End-to-end: `pyroscope.relabel` between the receiver and the writers, through the real
//! binary, on `/ingest` and on the Connect Push API, under both drivers.
//!
//! - A table of one-rule components, one per behaviour of every action (Prometheus'
//!   `model/relabel` semantics as documented in its `relabel_config` reference), each wired
//!   `receive_http → relabel → write` in one gateway: the exact upstream `name` query for an
//!   `/ingest` upload and the exact series labels for a push, or nothing upstream and 200 when
//!   the rule drops the profile. The expected labels are written out by hand here from the
//!   documented behaviour (never computed with pyrogate's code); the writer adds a `case`
//!   external label so the one stand-in can tell the cases apart.
//! - Chains and mixes: two relabel stages in a row, one stage feeding two writers with
//!   different external labels, a receiver whose `forward_to` mixes a writer and a relabel
//!   stage, and a writer reached by two paths (it receives the upload twice, as in Alloy).
//! - Alloy's metrics for the component, with the cache counting hits on a repeated label set.

mod support;

use std::time::Duration;

use support::client::upload_request;
use support::gateway::metric_sum;
use support::push::{self, PUSH_PATH, PushRequest, Sample, Series, owned_labels};
use support::{Client, Driver, Gateway, MockPyroscope, Recorded, both_drivers};
use testkit::labelset::go_query_escape;

const WAIT: Duration = Duration::from_secs(20);

/// The `/ingest` upload every case sends: a Go-SDK-like query whose labels the rules see as
/// `__name__=myapp.cpu`, `env`, `pod`, `region`, `team`, `zone` and (added by receive_http)
/// `service_name=myapp.cpu`.
const INGEST_QUERY: &str = "name=myapp.cpu%7Benv%3Dstaging%2Cpod%3Dcheckout-7d9f%2Cregion%3Deu-west-1%2Cteam%3DPayments%2Czone%3Deu-west-1%7D&from=1700000000&until=1700000010&spyName=gospy&sampleRate=100";

/// The labels receive_http hands on for [`INGEST_QUERY`].
const INGEST_LABELS: &[(&str, &str)] = &[
    ("__name__", "myapp.cpu"),
    ("env", "staging"),
    ("pod", "checkout-7d9f"),
    ("region", "eu-west-1"),
    ("service_name", "myapp.cpu"),
    ("team", "Payments"),
    ("zone", "eu-west-1"),
];

/// The series labels every case pushes (wire order).
const PUSH_SENT: &[(&str, &str)] = &[
    ("__name__", "process_cpu"),
    ("service_name", "myapp"),
    ("env", "staging"),
    ("pod", "checkout-7d9f"),
    ("region", "eu-west-1"),
    ("team", "Payments"),
    ("zone", "eu-west-1"),
];

/// The labels receive_http hands on for [`PUSH_SENT`]: `app_name` from `__name__` because
/// the client sent `service_name`.
const PUSH_LABELS: &[(&str, &str)] = &[
    ("__name__", "process_cpu"),
    ("app_name", "process_cpu"),
    ("env", "staging"),
    ("pod", "checkout-7d9f"),
    ("region", "eu-west-1"),
    ("service_name", "myapp"),
    ("team", "Payments"),
    ("zone", "eu-west-1"),
];

/// What a rule leaves of an input label set.
#[derive(Debug, Clone, Copy)]
enum Expect {
    /// Dropped: the client gets 200 and nothing goes upstream.
    Dropped,
    /// These labels set (a value) or removed (`None`); the rest unchanged.
    Edit(&'static [(&'static str, Option<&'static str>)]),
    /// Only these names kept.
    Only(&'static [&'static str]),
}

impl Expect {
    fn apply(self, input: &[(&str, &str)]) -> Option<Vec<(String, String)>> {
        let mut out: Vec<(String, String)> = owned_labels(input);
        match self {
            Expect::Dropped => return None,
            Expect::Edit(edits) => {
                for (k, v) in edits {
                    out.retain(|(n, _)| n != k);
                    if let Some(v) = v {
                        out.push((k.to_string(), v.to_string()));
                    }
                }
            }
            Expect::Only(names) => out.retain(|(n, _)| names.contains(&n.as_str())),
        }
        out.sort();
        Some(out)
    }
}

struct Case {
    name: &'static str,
    /// The body of the `rule` block.
    rule: &'static str,
    ingest: Expect,
    push: Expect,
}

const UNCHANGED: Expect = Expect::Edit(&[]);

const CASES: &[Case] = &[
    Case {
        name: "replace_copies_a_label",
        rule: r#"action = "replace"
      source_labels = ["env"]
      target_label = "environment""#,
        ingest: Expect::Edit(&[("environment", Some("staging"))]),
        push: Expect::Edit(&[("environment", Some("staging"))]),
    },
    Case {
        name: "replace_is_the_default_action_and_expands_groups",
        rule: r#"source_labels = ["region"]
      regex = "([a-z]+)-(.*)"
      target_label = "continent"
      replacement = "${1}/$2""#,
        ingest: Expect::Edit(&[("continent", Some("eu/west-1"))]),
        push: Expect::Edit(&[("continent", Some("eu/west-1"))]),
    },
    Case {
        name: "replace_without_a_match_changes_nothing",
        rule: r#"source_labels = ["env"]
      regex = "prod"
      target_label = "tier"
      replacement = "gold""#,
        ingest: UNCHANGED,
        push: UNCHANGED,
    },
    Case {
        name: "replace_regex_is_anchored",
        rule: r#"source_labels = ["env"]
      regex = "tag"
      target_label = "tier"
      replacement = "gold""#,
        ingest: UNCHANGED,
        push: UNCHANGED,
    },
    Case {
        name: "replace_with_an_empty_result_deletes_the_target",
        rule: r#"source_labels = ["team"]
      target_label = "team"
      replacement = """#,
        ingest: Expect::Edit(&[("team", None)]),
        push: Expect::Edit(&[("team", None)]),
    },
    Case {
        name: "replace_joins_sources_with_the_separator",
        rule: r#"source_labels = ["env", "region"]
      separator = "/"
      target_label = "where""#,
        ingest: Expect::Edit(&[("where", Some("staging/eu-west-1"))]),
        push: Expect::Edit(&[("where", Some("staging/eu-west-1"))]),
    },
    Case {
        name: "replace_of_service_name_renames_the_ingest_app",
        rule: r#"source_labels = ["service_name"]
      regex = "(.*)\\.cpu"
      target_label = "service_name"
      replacement = "$1-svc""#,
        ingest: Expect::Edit(&[("service_name", Some("myapp-svc"))]),
        push: UNCHANGED,
    },
    Case {
        name: "keep_on_a_match_forwards_unchanged",
        rule: r#"action = "keep"
      source_labels = ["env"]
      regex = "stag.*""#,
        ingest: UNCHANGED,
        push: UNCHANGED,
    },
    Case {
        name: "keep_without_a_match_drops",
        rule: r#"action = "keep"
      source_labels = ["env"]
      regex = "prod""#,
        ingest: Expect::Dropped,
        push: Expect::Dropped,
    },
    Case {
        name: "drop_on_a_match_drops",
        rule: r#"action = "drop"
      source_labels = ["pod"]
      regex = "checkout-.*""#,
        ingest: Expect::Dropped,
        push: Expect::Dropped,
    },
    Case {
        name: "drop_sees_the_push_name_label",
        rule: r#"action = "drop"
      source_labels = ["__name__"]
      regex = "process_cpu""#,
        ingest: UNCHANGED,
        push: Expect::Dropped,
    },
    Case {
        // md5("checkout-7d9f"): last 8 bytes as a big-endian integer, mod 8 = 4.
        name: "hashmod_shards_by_md5",
        rule: r#"action = "hashmod"
      source_labels = ["pod"]
      modulus = 8
      target_label = "shard""#,
        ingest: Expect::Edit(&[("shard", Some("4"))]),
        push: Expect::Edit(&[("shard", Some("4"))]),
    },
    Case {
        name: "labelmap_copies_matching_names",
        rule: r#"action = "labelmap"
      regex = "(env|region)"
      replacement = "k8s_${1}""#,
        ingest: Expect::Edit(&[
            ("k8s_env", Some("staging")),
            ("k8s_region", Some("eu-west-1")),
        ]),
        push: Expect::Edit(&[
            ("k8s_env", Some("staging")),
            ("k8s_region", Some("eu-west-1")),
        ]),
    },
    Case {
        name: "labeldrop_removes_matching_names",
        rule: r#"action = "labeldrop"
      regex = "pod|zone""#,
        ingest: Expect::Edit(&[("pod", None), ("zone", None)]),
        push: Expect::Edit(&[("pod", None), ("zone", None)]),
    },
    Case {
        name: "labelkeep_keeps_only_matching_names",
        rule: r#"action = "labelkeep"
      regex = "__name__|service_name|env""#,
        ingest: Expect::Only(&["__name__", "service_name", "env"]),
        push: Expect::Only(&["__name__", "service_name", "env"]),
    },
    Case {
        name: "lowercase_writes_the_lowered_value",
        rule: r#"action = "lowercase"
      source_labels = ["team"]
      target_label = "team""#,
        ingest: Expect::Edit(&[("team", Some("payments"))]),
        push: Expect::Edit(&[("team", Some("payments"))]),
    },
    Case {
        name: "uppercase_writes_the_raised_value",
        rule: r#"action = "uppercase"
      source_labels = ["env"]
      target_label = "env_upper""#,
        ingest: Expect::Edit(&[("env_upper", Some("STAGING"))]),
        push: Expect::Edit(&[("env_upper", Some("STAGING"))]),
    },
    Case {
        name: "keepequal_keeps_when_source_equals_target",
        rule: r#"action = "keepequal"
      source_labels = ["zone"]
      target_label = "region""#,
        ingest: UNCHANGED,
        push: UNCHANGED,
    },
    Case {
        name: "dropequal_drops_when_source_equals_target",
        rule: r#"action = "dropequal"
      source_labels = ["zone"]
      target_label = "region""#,
        ingest: Expect::Dropped,
        push: Expect::Dropped,
    },
];

/// What `pyroscope.write` sends upstream for `/ingest` labels `labels` (sorted) and the
/// `case` external label: `__name__` from a non-empty `service_name`, then Pyroscope's
/// `Normalized()` text, in the re-encoded query.
fn ingest_query(labels: &[(String, String)], case: &str) -> String {
    let mut labels = labels.to_vec();
    if let Some(service) = labels
        .iter()
        .find(|(k, _)| k == "service_name")
        .map(|(_, v)| v.clone())
    {
        labels.retain(|(k, _)| k != "__name__");
        labels.push(("__name__".into(), service));
    }
    labels.push(("case".into(), case.into()));
    labels.sort();
    let app = labels
        .iter()
        .find(|(k, _)| k == "__name__")
        .map_or("", |(_, v)| v.as_str());
    let inner: Vec<String> = labels
        .iter()
        .filter(|(k, _)| k != "__name__")
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let name = format!("{app}{{{}}}", inner.join(","));
    format!(
        "from=1700000000&name={}&sampleRate=100&spyName=gospy&until=1700000010",
        go_query_escape(&name)
    )
}

/// What `pyroscope.write` sends upstream for push labels `labels`: names starting with `__`
/// dropped except `__name__`, the `case` external label added, sorted.
fn push_labels(labels: &[(String, String)], case: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = labels
        .iter()
        .filter(|(k, _)| !k.starts_with("__") || k == "__name__")
        .cloned()
        .collect();
    out.push(("case".into(), case.into()));
    out.sort();
    out
}

fn table_config(mock: &MockPyroscope) -> String {
    let mut cfg = String::new();
    for case in CASES {
        let n = case.name;
        cfg.push_str(&format!(
            r#"pyroscope.receive_http "{n}" {{
  http {{
    listen_address = "127.0.0.1"
    listen_port    = 0
  }}
  forward_to = [pyroscope.relabel.{n}.receiver]
}}
pyroscope.relabel "{n}" {{
  forward_to = [pyroscope.write.{n}.receiver]
  rule {{
      {rule}
  }}
}}
pyroscope.write "{n}" {{
  endpoint {{
    url = "{url}"
  }}
  external_labels = {{ case = "{n}" }}
}}
"#,
            rule = case.rule,
            url = mock.url()
        ));
    }
    cfg
}

fn ingest_body(case: &str) -> Vec<u8> {
    // Folded text (Pyroscope's default format on /ingest), one stack per case.
    format!("main;{case} 10\n").into_bytes()
}

fn push_request(case: &str) -> PushRequest {
    PushRequest::new(vec![Series::new(
        PUSH_SENT,
        vec![Sample::new(
            format!("pprof for {case}").into_bytes(),
            "0b7e1d4a-9c6f-4a55-8d2e-3f1a2b3c4d5e",
        )],
    )])
}

fn send(addr: std::net::SocketAddr, request: &[u8]) -> support::Response {
    let mut client = Client::connect(addr);
    client.send(request);
    client.read_response()
}

fn case_label(r: &Recorded) -> String {
    if r.path == PUSH_PATH {
        r.push_request().series[0]
            .label("case")
            .unwrap_or_default()
            .to_string()
    } else {
        let at = r.query.find("case%3D").expect("case label in the query") + 7;
        let rest = &r.query[at..];
        let end = rest
            .find("%2C")
            .or_else(|| rest.find("%7D"))
            .unwrap_or(rest.len());
        rest[..end].to_string()
    }
}

fn every_action_rewrites_ingest_and_push_labels_as_prometheus_documents(driver: Driver) {
    let mock = MockPyroscope::start();
    let gw = Gateway::start(&table_config(&mock), driver, 2);
    let mut expected = 0;
    for case in CASES {
        let addr = gw.receiver(case.name);
        let ingest = upload_request(
            &format!("/ingest?{INGEST_QUERY}"),
            &[("Content-Type", "binary/octet-stream")],
            &ingest_body(case.name),
        );
        let r = send(addr, &ingest);
        assert_eq!(
            (r.status, r.body.as_slice()),
            (200, &b""[..]),
            "{}: ingest",
            case.name
        );
        let pushed = push::proto_push(push_request(case.name));
        let r = send(addr, &pushed.http_request(&[]));
        assert_eq!(r.status, 200, "{}: push {r:?}", case.name);
        assert_eq!(
            r.header("content-type"),
            Some("application/proto"),
            "{}",
            case.name
        );
        expected += usize::from(!matches!(case.ingest, Expect::Dropped))
            + usize::from(!matches!(case.push, Expect::Dropped));
    }
    // Every accepted upload was acknowledged after delivery, so the stand-in holds them all.
    let recorded = mock.wait_for_requests(expected, WAIT);
    assert_eq!(recorded.len(), expected, "upstream requests");
    assert_eq!(mock.request_count(), expected, "nothing else arrived");
    for case in CASES {
        let mine: Vec<&Recorded> = recorded
            .iter()
            .filter(|r| case_label(r) == case.name)
            .collect();
        let ingest: Vec<&&Recorded> = mine.iter().filter(|r| r.path == "/ingest").collect();
        match case.ingest.apply(INGEST_LABELS) {
            None => assert!(
                ingest.is_empty(),
                "{}: dropped ingest went upstream",
                case.name
            ),
            Some(labels) => {
                assert_eq!(ingest.len(), 1, "{}: ingest copies", case.name);
                assert_eq!(
                    ingest[0].query,
                    ingest_query(&labels, case.name),
                    "{}",
                    case.name
                );
                assert_eq!(ingest[0].body, ingest_body(case.name), "{}", case.name);
                assert_eq!(
                    ingest[0].status,
                    Some(200),
                    "{}: Pyroscope's rules",
                    case.name
                );
            }
        }
        let pushes: Vec<&&Recorded> = mine.iter().filter(|r| r.path == PUSH_PATH).collect();
        match case.push.apply(PUSH_LABELS) {
            None => assert!(
                pushes.is_empty(),
                "{}: dropped push went upstream",
                case.name
            ),
            Some(labels) => {
                assert_eq!(pushes.len(), 1, "{}: push copies", case.name);
                let got = &pushes[0].push_request().series;
                assert_eq!(got.len(), 1, "{}", case.name);
                assert_eq!(
                    got[0].labels,
                    push_labels(&labels, case.name),
                    "{}",
                    case.name
                );
                assert_eq!(
                    got[0].samples,
                    push_request(case.name).series[0].samples,
                    "{}: samples untouched",
                    case.name
                );
                assert_eq!(
                    pushes[0].status,
                    Some(200),
                    "{}: Pyroscope's rules",
                    case.name
                );
            }
        }
    }
    let metrics = gw.metrics();
    for case in CASES {
        let id = format!("pyroscope.relabel.{}", case.name);
        let labels = [("component_id", id.as_str()), ("component_path", "/")];
        let dropped = usize::from(matches!(case.ingest, Expect::Dropped))
            + usize::from(matches!(case.push, Expect::Dropped));
        let get = |m: &str| metric_sum(&metrics, m, &labels).unwrap_or(-1.0);
        assert_eq!(
            get("pyroscope_relabel_profiles_processed"),
            2.0,
            "{}",
            case.name
        );
        assert_eq!(
            get("pyroscope_relabel_profiles_dropped"),
            dropped as f64,
            "{}",
            case.name
        );
        assert_eq!(
            get("pyroscope_relabel_profiles_written"),
            (2 - dropped) as f64,
            "{}",
            case.name
        );
        assert_eq!(get("pyroscope_relabel_cache_misses"), 2.0, "{}", case.name);
        assert_eq!(get("pyroscope_relabel_cache_hits"), 0.0, "{}", case.name);
        assert_eq!(get("pyroscope_relabel_cache_size"), 2.0, "{}", case.name);
    }
}

/// Receiver → [write `plain`, relabel `first`]; `first` (env → environment) → [relabel
/// `second`, write `plain`]; `second` (drop `env`) → [write `a` (team=a), write `b`
/// (team=b)]. `plain` is reached twice: directly with the received labels and through
/// `first` with `environment` added.
fn chains_and_mixed_forward_to_lists_deliver_every_path(driver: Driver) {
    let plain = MockPyroscope::start();
    let a = MockPyroscope::start();
    let b = MockPyroscope::start();
    let cfg = format!(
        r#"pyroscope.receive_http "default" {{
  http {{
    listen_address = "127.0.0.1"
    listen_port    = 0
  }}
  forward_to = [pyroscope.write.plain.receiver, pyroscope.relabel.first.receiver]
}}
pyroscope.relabel "first" {{
  forward_to = [pyroscope.relabel.second.receiver, pyroscope.write.plain.receiver]
  rule {{
    source_labels = ["env"]
    target_label  = "environment"
  }}
}}
pyroscope.relabel "second" {{
  forward_to = [pyroscope.write.a.receiver, pyroscope.write.b.receiver]
  rule {{
    action = "labeldrop"
    regex  = "env"
  }}
}}
pyroscope.write "plain" {{
  endpoint {{
    url = "{}"
  }}
}}
pyroscope.write "a" {{
  endpoint {{
    url = "{}"
  }}
  external_labels = {{ team = "a" }}
}}
pyroscope.write "b" {{
  endpoint {{
    url = "{}"
  }}
  external_labels = {{ team = "b" }}
}}
"#,
        plain.url(),
        a.url(),
        b.url()
    );
    let gw = Gateway::start(&cfg, driver, 2);
    let body = b"main;every_path 10\n".to_vec();
    let r = send(
        gw.addr(),
        &upload_request(
            "/ingest?name=shop%7Benv%3Dprod%7D&from=1",
            &[("Content-Type", "binary/octet-stream")],
            &body,
        ),
    );
    assert_eq!(r.status, 200, "{r:?}");
    let pushed = push::proto_push(PushRequest::new(vec![Series::new(
        &[
            ("__name__", "cpu"),
            ("service_name", "shop"),
            ("env", "prod"),
        ],
        vec![Sample::new(b"pprof".to_vec(), "id-1")],
    )]));
    let r = send(gw.addr(), &pushed.http_request(&[]));
    assert_eq!(r.status, 200, "{r:?}");

    let at_plain = plain.wait_for_requests(4, WAIT);
    assert_eq!(plain.request_count(), 4, "plain: 2 paths x 2 APIs");
    let mut ingest_queries: Vec<&str> = at_plain
        .iter()
        .filter(|r| r.path == "/ingest")
        .map(|r| r.query.as_str())
        .collect();
    ingest_queries.sort();
    assert_eq!(
        ingest_queries,
        [
            "from=1&name=shop%7Benv%3Dprod%2Cenvironment%3Dprod%2Cservice_name%3Dshop%7D",
            "from=1&name=shop%7Benv%3Dprod%2Cservice_name%3Dshop%7D",
        ]
    );
    let mut push_sets: Vec<Vec<(String, String)>> = at_plain
        .iter()
        .filter(|r| r.path == PUSH_PATH)
        .map(|r| r.push_request().series[0].labels.clone())
        .collect();
    push_sets.sort();
    assert_eq!(
        push_sets,
        [
            owned_labels(&[
                ("__name__", "cpu"),
                ("app_name", "cpu"),
                ("env", "prod"),
                ("environment", "prod"),
                ("service_name", "shop")
            ]),
            owned_labels(&[
                ("__name__", "cpu"),
                ("app_name", "cpu"),
                ("env", "prod"),
                ("service_name", "shop")
            ]),
        ]
    );
    for (mock, team) in [(&a, "a"), (&b, "b")] {
        let got = mock.wait_for_requests(2, WAIT);
        assert_eq!(mock.request_count(), 2, "{team}");
        let ingest = got.iter().find(|r| r.path == "/ingest").expect("ingest");
        assert_eq!(
            ingest.query,
            format!(
                "from=1&name=shop%7Benvironment%3Dprod%2Cservice_name%3Dshop%2Cteam%3D{team}%7D"
            ),
            "{team}"
        );
        assert_eq!(ingest.body, body, "{team}: same body");
        let push = got.iter().find(|r| r.path == PUSH_PATH).expect("push");
        assert_eq!(
            push.push_request().series[0].labels,
            owned_labels(&[
                ("__name__", "cpu"),
                ("app_name", "cpu"),
                ("environment", "prod"),
                ("service_name", "shop"),
                ("team", team)
            ]),
            "{team}"
        );
        assert_eq!(
            push.push_request().series[0].samples,
            pushed.request.series[0].samples
        );
    }
}

/// A repeated label set is answered from the component's cache (one core, so every upload
/// meets the same cache), and a profile every rule path drops is answered 200 and counted.
fn the_cache_answers_repeated_label_sets_and_drops_are_counted(driver: Driver) {
    let mock = MockPyroscope::start();
    let cfg = format!(
        r#"pyroscope.receive_http "default" {{
  http {{
    listen_address = "127.0.0.1"
    listen_port    = 0
  }}
  forward_to = [pyroscope.relabel.filter.receiver]
}}
pyroscope.relabel "filter" {{
  forward_to     = [pyroscope.write.backend.receiver]
  max_cache_size = 1
  rule {{
    action        = "drop"
    source_labels = ["service_name"]
    regex         = "test-.*"
  }}
}}
pyroscope.write "backend" {{
  endpoint {{
    url = "{}"
  }}
}}
"#,
        mock.url()
    );
    let gw = Gateway::start(&cfg, driver, 1);
    let upload = |app: &str| {
        upload_request(
            &format!("/ingest?name={app}&from=1"),
            &[("Content-Type", "binary/octet-stream")],
            b"main;work 1\n",
        )
    };
    let mut client = Client::connect(gw.addr());
    for app in ["shop", "shop", "test-shop", "test-shop", "shop"] {
        client.send(&upload(app));
        assert_eq!(client.read_response().status, 200, "{app}");
    }
    let got = mock.wait_for_requests(3, WAIT);
    assert_eq!(mock.request_count(), 3);
    assert!(
        got.iter()
            .all(|r| r.query == "from=1&name=shop%7Bservice_name%3Dshop%7D")
    );
    let metrics = gw.metrics();
    let labels = [
        ("component_id", "pyroscope.relabel.filter"),
        ("component_path", "/"),
    ];
    let get = |m: &str| metric_sum(&metrics, m, &labels).unwrap_or(-1.0);
    assert_eq!(get("pyroscope_relabel_profiles_processed"), 5.0);
    assert_eq!(get("pyroscope_relabel_profiles_written"), 3.0);
    assert_eq!(get("pyroscope_relabel_profiles_dropped"), 2.0);
    // shop miss, shop hit, test-shop miss (evicts shop), test-shop hit, shop miss.
    assert_eq!(get("pyroscope_relabel_cache_misses"), 3.0);
    assert_eq!(get("pyroscope_relabel_cache_hits"), 2.0);
    assert_eq!(get("pyroscope_relabel_cache_size"), 1.0);
}

/// A push whose labels both writers behind a relabel stage refuse: the client reads Alloy's
/// message, where the relabel component's fan-out has collected the writers' errors with
/// hashicorp/go-multierror; nothing goes upstream.
fn push_label_errors_behind_a_relabel_reach_the_client_as_alloys_multierror(driver: Driver) {
    let a = MockPyroscope::start();
    let b = MockPyroscope::start();
    let cfg = format!(
        r#"pyroscope.receive_http "default" {{
  http {{
    listen_address = "127.0.0.1"
    listen_port    = 0
  }}
  forward_to = [pyroscope.relabel.pass.receiver]
}}
pyroscope.relabel "pass" {{
  forward_to = [pyroscope.write.a.receiver, pyroscope.write.b.receiver]
}}
pyroscope.write "a" {{
  endpoint {{
    url = "{}"
  }}
}}
pyroscope.write "b" {{
  endpoint {{
    url = "{}"
  }}
}}
"#,
        a.url(),
        b.url()
    );
    let gw = Gateway::start(&cfg, driver, 1);
    let pushed = push::proto_push(PushRequest::new(vec![Series::new(
        &[("__name__", "cpu"), ("service_name", "shop"), ("a b", "1")],
        vec![Sample::new(b"pprof".to_vec(), "id-1")],
    )]));
    let r = send(gw.addr(), &pushed.http_request(&[]));
    assert_eq!(r.status, 500, "{r:?}");
    let (code, message) = push::connect_error(&r.body).expect("a Connect error body");
    assert_eq!(code, "internal");
    let write_error = "invalid labels in profile: invalid label name: invalid label name: a b: character is not allowed: ' '";
    assert_eq!(
        message,
        format!(
            "unable to append series {{__name__=\"cpu\", \"a b\"=\"1\", service_name=\"shop\"}} to appendable 0: \
             2 errors occurred:\n\t* {write_error}\n\t* {write_error}\n\n"
        )
    );
    assert_eq!(a.request_count() + b.request_count(), 0, "nothing upstream");
}

both_drivers!(
    push_label_errors_behind_a_relabel_reach_the_client_as_alloys_multierror,
    every_action_rewrites_ingest_and_push_labels_as_prometheus_documents,
    chains_and_mixed_forward_to_lists_deliver_every_path,
    the_cache_answers_repeated_label_sets_and_drops_are_counted,
);
