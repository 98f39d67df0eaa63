//! Tests of the relabelling engine: the case table of prometheus/prometheus
//! `model/relabel/relabel_test.go` (`TestRelabel`, `TestRelabelValidate`,
//! `TestTargetLabelLegacyValidity`) rewritten in Rust with Alloy's run-time naming scheme
//! (legacy) where it changes the expected result, Alloy's `Validate` messages, and the places
//! where Go's `regexp` and Rust's `regex` differ.

use super::*;

fn ls(pairs: &[(&str, &str)]) -> Labels {
    let mut v: Labels = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    v.sort();
    v
}

fn rule(spec: RuleSpec) -> Rule {
    Rule::new(spec.clone()).unwrap_or_else(|e| panic!("{spec:?}: {e}"))
}

fn run(input: &[(&str, &str)], rules: &[Rule]) -> Option<Labels> {
    let mut l = ls(input);
    process(rules, &mut l).then_some(l)
}

fn replace(src: &[&str], regex: &str, target: &str, replacement: &str) -> Rule {
    rule(RuleSpec {
        source_labels: src.iter().map(|s| s.to_string()).collect(),
        regex: regex.into(),
        target_label: target.into(),
        replacement: replacement.into(),
        ..RuleSpec::default()
    })
}

fn with_action(action: Action, src: &[&str], regex: &str) -> Rule {
    rule(RuleSpec {
        source_labels: src.iter().map(|s| s.to_string()).collect(),
        regex: regex.into(),
        action,
        ..RuleSpec::default()
    })
}

fn target_action(action: Action, src: &[&str], target: &str) -> Rule {
    rule(RuleSpec {
        source_labels: src.iter().map(|s| s.to_string()).collect(),
        target_label: target.into(),
        action,
        ..RuleSpec::default()
    })
}

fn spec_err(spec: RuleSpec) -> RuleError {
    Rule::new(spec).expect_err("invalid rule")
}

// ---- prometheus/prometheus model/relabel/relabel_test.go, TestRelabel ----

#[test]
fn upstream_replace_with_braced_group() {
    let r = [replace(&["a"], "f(.*)", "d", "ch${1}-ch${1}")];
    assert_eq!(
        run(&[("a", "foo"), ("b", "bar"), ("c", "baz")], &r),
        Some(ls(&[
            ("a", "foo"),
            ("b", "bar"),
            ("c", "baz"),
            ("d", "choo-choo")
        ]))
    );
}

#[test]
fn upstream_replace_chain_sees_earlier_results() {
    let r = [
        replace(&["a", "b"], "f(.*);(.*)r", "a", "b${1}${2}m"),
        replace(&["c", "a"], "(b).*b(.*)ba(.*)", "d", "$1$2$2$3"),
    ];
    assert_eq!(
        run(&[("a", "foo"), ("b", "bar"), ("c", "baz")], &r),
        Some(ls(&[
            ("a", "boobam"),
            ("b", "bar"),
            ("c", "baz"),
            ("d", "boooom")
        ]))
    );
}

#[test]
fn upstream_drop_stops_the_chain() {
    let r = [
        with_action(Action::Drop, &["a"], ".*o.*"),
        replace(&["a"], "f(.*)", "d", "ch$1-ch$1"),
    ];
    assert_eq!(run(&[("a", "foo")], &r), None);
    assert_eq!(run(&[("a", "foo"), ("b", "bar")], &r[..1]), None);
}

#[test]
fn upstream_replace_with_inner_group() {
    let r = [replace(&["a"], ".*(b).*", "d", "$1")];
    assert_eq!(
        run(&[("a", "abc")], &r),
        Some(ls(&[("a", "abc"), ("d", "b")]))
    );
}

#[test]
fn upstream_drop_needs_a_full_match() {
    assert_eq!(
        run(
            &[("a", "foo")],
            &[with_action(Action::Drop, &["a"], "no-match")]
        ),
        Some(ls(&[("a", "foo")]))
    );
    assert_eq!(
        run(&[("a", "foo")], &[with_action(Action::Drop, &["a"], "f|o")]),
        Some(ls(&[("a", "foo")]))
    );
}

#[test]
fn upstream_keep() {
    assert_eq!(
        run(
            &[("a", "foo")],
            &[with_action(Action::Keep, &["a"], "no-match")]
        ),
        None
    );
    assert_eq!(
        run(&[("a", "foo")], &[with_action(Action::Keep, &["a"], "f.*")]),
        Some(ls(&[("a", "foo")]))
    );
}

#[test]
fn upstream_no_replacement_without_a_match() {
    let r = [replace(&["a"], "f", "b", "bar")];
    assert_eq!(run(&[("a", "boo")], &r), Some(ls(&[("a", "boo")])));
}

#[test]
fn upstream_blank_replacement_deletes_the_target() {
    let r = [replace(&["a"], "(f).*", "$1", "$2")];
    assert_eq!(
        run(&[("a", "foo"), ("f", "baz")], &r),
        Some(ls(&[("a", "foo")]))
    );
}

#[test]
fn upstream_hashmod() {
    let hm = |src: &str, target: &str| {
        rule(RuleSpec {
            source_labels: vec![src.into()],
            target_label: target.into(),
            action: Action::HashMod,
            modulus: 1000,
            ..RuleSpec::default()
        })
    };
    assert_eq!(
        run(&[("a", "foo"), ("b", "bar"), ("c", "baz")], &[hm("c", "d")]),
        Some(ls(&[
            ("a", "foo"),
            ("b", "bar"),
            ("c", "baz"),
            ("d", "976")
        ]))
    );
    assert_eq!(
        run(&[("a", "foo\nbar")], &[hm("a", "b")]),
        Some(ls(&[("a", "foo\nbar"), ("b", "734")]))
    );
}

fn labelmap(regex: &str, replacement: &str) -> Rule {
    rule(RuleSpec {
        regex: regex.into(),
        replacement: replacement.into(),
        action: Action::LabelMap,
        ..RuleSpec::default()
    })
}

#[test]
fn upstream_labelmap() {
    assert_eq!(
        run(
            &[("a", "foo"), ("b1", "bar"), ("b2", "baz")],
            &[labelmap("(b.*)", "bar_${1}")]
        ),
        Some(ls(&[
            ("a", "foo"),
            ("b1", "bar"),
            ("b2", "baz"),
            ("bar_b1", "bar"),
            ("bar_b2", "baz")
        ]))
    );
    assert_eq!(
        run(
            &[
                ("a", "foo"),
                ("__meta_my_bar", "aaa"),
                ("__meta_my_baz", "bbb"),
                ("__meta_other", "ccc")
            ],
            &[labelmap("__meta_(my.*)", "${1}")]
        ),
        Some(ls(&[
            ("a", "foo"),
            ("__meta_my_bar", "aaa"),
            ("__meta_my_baz", "bbb"),
            ("__meta_other", "ccc"),
            ("my_bar", "aaa"),
            ("my_baz", "bbb")
        ]))
    );
}

#[test]
fn upstream_templated_target_label() {
    let r = [replace(&["a"], "some-([^-]+)-([^,]+)", "${1}", "${2}")];
    assert_eq!(
        run(&[("a", "some-name-value")], &r),
        Some(ls(&[("a", "some-name-value"), ("name", "value")]))
    );
    // Replacement expanding to "" deletes the (absent) target.
    let r = [replace(&["a"], "some-([^-]+)-([^,]+)", "${1}", "${3}")];
    assert_eq!(
        run(&[("a", "some-name-value")], &r),
        Some(ls(&[("a", "some-name-value")]))
    );
    // Target expanding to "" is not a valid name: nothing happens.
    let r = [
        replace(&["a"], "some-([^-]+)-([^,]+)", "${3}", "${1}"),
        replace(&["a"], "some-([^-]+)(-[^,]+)", "${3}", "${1}"),
    ];
    assert_eq!(
        run(&[("a", "some-name-0")], &r),
        Some(ls(&[("a", "some-name-0")]))
    );
}

#[test]
fn upstream_real_life_tags() {
    let r = [
        replace(
            &["__meta_sd_tags"],
            "(?:.+,|^)path:(/[^,]+).*",
            "__metrics_path__",
            "${1}",
        ),
        replace(&["__meta_sd_tags"], "(?:.+,|^)job:([^,]+).*", "job", "${1}"),
        replace(
            &["__meta_sd_tags"],
            "(?:.+,|^)label:([^=]+)=([^,]+).*",
            "${1}",
            "${2}",
        ),
    ];
    let tags = "path:/secret,job:some-job,label:foo=bar";
    assert_eq!(
        run(&[("__meta_sd_tags", tags)], &r),
        Some(ls(&[
            ("__meta_sd_tags", tags),
            ("__metrics_path__", "/secret"),
            ("job", "some-job"),
            ("foo", "bar")
        ]))
    );
}

#[test]
fn upstream_issue_12283_labeldrop_then_set_then_keep() {
    // https://github.com/prometheus/prometheus/issues/12283
    let r = [
        rule(RuleSpec {
            regex: "^__meta_kubernetes_pod_container_port_name$".into(),
            action: Action::LabelDrop,
            ..RuleSpec::default()
        }),
        replace(
            &["__meta_kubernetes_pod_annotation_XXX_metrics_port"],
            "(.+)",
            "__meta_kubernetes_pod_container_port_name",
            "metrics",
        ),
        with_action(
            Action::Keep,
            &["__meta_kubernetes_pod_container_port_name"],
            "^metrics$",
        ),
    ];
    assert_eq!(
        run(
            &[
                ("__meta_kubernetes_pod_container_port_name", "foo"),
                ("__meta_kubernetes_pod_annotation_XXX_metrics_port", "9091")
            ],
            &r
        ),
        Some(ls(&[
            ("__meta_kubernetes_pod_annotation_XXX_metrics_port", "9091"),
            ("__meta_kubernetes_pod_container_port_name", "metrics")
        ]))
    );
}

#[test]
fn upstream_labelkeep_and_labeldrop() {
    let input = [("a", "foo"), ("b1", "bar"), ("b2", "baz")];
    let keep = rule(RuleSpec {
        regex: "(b.*)".into(),
        action: Action::LabelKeep,
        ..RuleSpec::default()
    });
    let drop = rule(RuleSpec {
        regex: "(b.*)".into(),
        action: Action::LabelDrop,
        ..RuleSpec::default()
    });
    assert_eq!(
        run(&input, &[keep]),
        Some(ls(&[("b1", "bar"), ("b2", "baz")]))
    );
    assert_eq!(run(&input, &[drop]), Some(ls(&[("a", "foo")])));
}

#[test]
fn upstream_uppercase_and_lowercase() {
    let r = [
        target_action(Action::Uppercase, &["foo"], "foo_uppercase"),
        target_action(Action::Lowercase, &["foo"], "foo_lowercase"),
    ];
    assert_eq!(
        run(&[("foo", "bAr123Foo")], &r),
        Some(ls(&[
            ("foo", "bAr123Foo"),
            ("foo_lowercase", "bar123foo"),
            ("foo_uppercase", "BAR123FOO")
        ]))
    );
}

#[test]
fn upstream_keepequal_and_dropequal() {
    let input = [
        ("__tmp_port", "1234"),
        ("__port1", "1234"),
        ("__port2", "5678"),
    ];
    let kept = Some(ls(&input));
    let eq = |a, t| [target_action(a, &["__tmp_port"], t)];
    assert_eq!(run(&input, &eq(Action::KeepEqual, "__port1")), kept);
    assert_eq!(run(&input, &eq(Action::DropEqual, "__port1")), None);
    assert_eq!(run(&input, &eq(Action::DropEqual, "__port2")), kept);
    assert_eq!(run(&input, &eq(Action::KeepEqual, "__port2")), None);
}

#[test]
fn upstream_dot_matches_newline() {
    let r = [replace(&["a"], "line1.*line2", "d", "match${1}")];
    assert_eq!(
        run(&[("a", "line1\nline2"), ("b", "bar"), ("c", "baz")], &r),
        Some(ls(&[
            ("a", "line1\nline2"),
            ("b", "bar"),
            ("c", "baz"),
            ("d", "match")
        ]))
    );
    // Source label with UTF-8 characters.
    let r = [replace(&["utf-8.label"], "line1.*line2", "d", "match${1}")];
    assert_eq!(
        run(&[("utf-8.label", "line1\nline2"), ("b", "bar")], &r),
        Some(ls(&[
            ("utf-8.label", "line1\nline2"),
            ("b", "bar"),
            ("d", "match")
        ]))
    );
}

#[test]
fn utf8_target_label_is_accepted_but_does_nothing_under_alloy() {
    // Upstream runs this case with UTF-8 validation and expects "utf-8.label" to be set.
    // Alloy validates the name as UTF-8 (accepted) but runs Prometheus with
    // LegacyValidation, so the replace is skipped.
    let r = [replace(&["a"], "line1.*line2", "utf-8.label", "match${1}")];
    assert_eq!(
        run(&[("a", "line1\nline2"), ("b", "bar")], &r),
        Some(ls(&[("a", "line1\nline2"), ("b", "bar")]))
    );
}

#[test]
fn utf8_target_label_with_a_variable_is_refused_by_alloy() {
    // Upstream (UTF-8 scheme) accepts it; Alloy checks `$` templates with the legacy pattern.
    let e = spec_err(RuleSpec {
        source_labels: vec!["a".into()],
        regex: "line1.*line2".into(),
        target_label: "utf-8.label${1}".into(),
        replacement: "match${1}".into(),
        ..RuleSpec::default()
    });
    assert_eq!(
        e.to_string(),
        r#""utf-8.label${1}" is invalid 'target_label' for replace action"#
    );
    assert_eq!(e.field(), "target_label");
}

#[test]
fn upstream_named_groups_in_both_var_styles() {
    let r = [
        replace(
            &["a"],
            "(line1).*(?<second>line2)",
            "label1_${1}",
            "val_${second}",
        ),
        replace(
            &["a"],
            "(line1).*(?<second>line2)",
            "label2_$1",
            "val_$second",
        ),
    ];
    assert_eq!(
        run(&[("a", "line1\nline2")], &r),
        Some(ls(&[
            ("a", "line1\nline2"),
            ("label1_line1", "val_line2"),
            ("label2_line1", "val_line2")
        ]))
    );
}

#[test]
fn upstream_dollar_inside_the_pattern_anchors_nothing_extra() {
    let r = [replace(&["__name__"], ".*_total$", "__type__", "counter")];
    assert_eq!(
        run(&[("__name__", "http_requests_total")], &r),
        Some(ls(&[
            ("__name__", "http_requests_total"),
            ("__type__", "counter")
        ]))
    );
}

// ---- TestTargetLabelLegacyValidity ----

#[test]
fn upstream_relabel_target_pattern() {
    for (s, valid) in [
        ("-label", false),
        ("label", true),
        ("label${1}", true),
        ("${1}label", true),
        ("${1}", true),
        ("${", false),
        ("$", false),
        ("${}", false),
        ("foo${", false),
        ("$1", true),
        ("asd$2asd", true),
        ("-foo${1}bar-", false),
        ("bar.foo${1}bar", false),
        ("_${1}_", true),
        ("foo${bar}foo", true),
    ] {
        assert_eq!(is_valid_target_template(s), valid, "{s:?}");
    }
}

// ---- Validation: Alloy's Config.Validate messages ----

#[test]
fn hashmod_needs_a_modulus() {
    let e = spec_err(RuleSpec {
        target_label: "x".into(),
        action: Action::HashMod,
        ..RuleSpec::default()
    });
    assert_eq!(
        e.to_string(),
        "relabel configuration for hashmod requires non-zero modulus"
    );
    assert_eq!(e.field(), "modulus");
}

#[test]
fn actions_that_write_need_a_target_label() {
    for action in [
        Action::Replace,
        Action::HashMod,
        Action::Lowercase,
        Action::Uppercase,
        Action::KeepEqual,
        Action::DropEqual,
    ] {
        let e = spec_err(RuleSpec {
            action,
            modulus: 1,
            ..RuleSpec::default()
        });
        assert_eq!(
            e.to_string(),
            format!("relabel configuration for {action} action requires 'target_label' value")
        );
        assert_eq!(e.field(), "target_label");
    }
}

#[test]
fn literal_target_labels_only_need_to_be_non_empty_at_config_time() {
    for target in ["foo.bar", "0abc", "-x", "ünïcode"] {
        assert!(
            Rule::new(RuleSpec {
                target_label: target.into(),
                ..RuleSpec::default()
            })
            .is_ok(),
            "{target}"
        );
    }
    // Lowercase with "${3}": a valid UTF-8 name, so Alloy accepts it, and writes it as is.
    let r = target_action(Action::Lowercase, &["a"], "${3}");
    assert_eq!(
        run(&[("a", "X")], &[r]),
        Some(ls(&[("${3}", "x"), ("a", "X")]))
    );
}

#[test]
fn templated_target_labels_must_match_the_legacy_pattern() {
    for ok in ["${3}", "${1}_x", "a$1"] {
        assert!(
            Rule::new(RuleSpec {
                target_label: ok.into(),
                ..RuleSpec::default()
            })
            .is_ok(),
            "{ok}"
        );
    }
    for bad in ["0${3}", "-${3}", "$", "a.$1"] {
        let e = spec_err(RuleSpec {
            target_label: bad.into(),
            ..RuleSpec::default()
        });
        assert_eq!(
            e.to_string(),
            format!(
                "{} is invalid 'target_label' for replace action",
                go_quote(bad)
            )
        );
    }
}

#[test]
fn replacement_cannot_be_set_for_case_and_equal_actions() {
    for action in [
        Action::Lowercase,
        Action::Uppercase,
        Action::KeepEqual,
        Action::DropEqual,
    ] {
        let e = spec_err(RuleSpec {
            target_label: "t".into(),
            replacement: "x".into(),
            action,
            ..RuleSpec::default()
        });
        assert_eq!(
            e.to_string(),
            format!("'replacement' can not be set for {action} action")
        );
        assert_eq!(e.field(), "replacement");
    }
}

#[test]
fn labelmap_replacement_must_match_the_legacy_pattern() {
    assert!(
        Rule::new(RuleSpec {
            regex: "__meta_kubernetes_pod_label_(strimzi_io_.+)".into(),
            replacement: "$1".into(),
            action: Action::LabelMap,
            ..RuleSpec::default()
        })
        .is_ok()
    );
    let e = spec_err(RuleSpec {
        replacement: "a.b".into(),
        action: Action::LabelMap,
        ..RuleSpec::default()
    });
    assert_eq!(
        e.to_string(),
        r#""a.b" is invalid 'replacement' for labelmap action"#
    );
    assert_eq!(e.field(), "replacement");
}

#[test]
fn labeldrop_and_labelkeep_take_only_regex() {
    for action in [Action::LabelDrop, Action::LabelKeep] {
        for spec in [
            RuleSpec {
                source_labels: vec!["a".into()],
                ..RuleSpec::default()
            },
            RuleSpec {
                target_label: "a".into(),
                ..RuleSpec::default()
            },
            RuleSpec {
                modulus: 2,
                ..RuleSpec::default()
            },
            RuleSpec {
                separator: ",".into(),
                ..RuleSpec::default()
            },
            RuleSpec {
                replacement: "$2".into(),
                ..RuleSpec::default()
            },
        ] {
            let e = spec_err(RuleSpec { action, ..spec });
            assert_eq!(
                e.to_string(),
                format!("{action} action requires only 'regex', and no other fields")
            );
        }
    }
}

#[test]
fn keepequal_and_dropequal_take_only_source_and_target() {
    for action in [Action::KeepEqual, Action::DropEqual] {
        for spec in [
            RuleSpec {
                regex: "x".into(),
                ..RuleSpec::default()
            },
            RuleSpec {
                modulus: 2,
                ..RuleSpec::default()
            },
            RuleSpec {
                separator: ",".into(),
                ..RuleSpec::default()
            },
        ] {
            let e = spec_err(RuleSpec {
                action,
                target_label: "t".into(),
                ..spec
            });
            assert_eq!(
                e.to_string(),
                format!(
                    "{action} action requires only 'source_labels' and 'target_label', and no other fields"
                )
            );
        }
    }
}

#[test]
fn action_names_are_case_sensitive() {
    assert_eq!(Action::parse("labelmap"), Ok(Action::LabelMap));
    for a in ACTIONS {
        assert_eq!(Action::parse(a.name()), Ok(a));
    }
    let e = Action::parse("Replace").expect_err("Alloy does not lower-case");
    assert_eq!(e.to_string(), r#"unrecognized action type "Replace""#);
    assert_eq!(e.field(), "action");
    assert_eq!(
        Action::parse("").expect_err("empty").to_string(),
        r#"unrecognized action type """#
    );
}

#[test]
fn go_quote_escapes_like_strconv_quote() {
    assert_eq!(go_quote("a\"b\\c"), r#""a\"b\\c""#);
    assert_eq!(go_quote("\n\t\u{1}\u{7f}"), r#""\n\t\x01\x7f""#);
    assert_eq!(go_quote("é\u{a0}\u{200b}"), r#""é\u00a0\u200b""#);
}

// ---- Run-time behaviour ----

#[test]
fn replace_to_an_invalid_expanded_name_does_nothing() {
    let r = [replace(&["a"], "(.*)", "${1}", "v")];
    assert_eq!(
        run(&[("a", "not.valid")], &r),
        Some(ls(&[("a", "not.valid")]))
    );
    assert_eq!(
        run(&[("a", "ok_name")], &r),
        Some(ls(&[("a", "ok_name"), ("ok_name", "v")]))
    );
}

#[test]
fn missing_source_labels_join_as_empty_strings() {
    let r = [replace(&["x", "y"], "(.*)", "z", "[$1]")];
    assert_eq!(
        run(&[("a", "1")], &r),
        Some(ls(&[("a", "1"), ("z", "[;]")]))
    );
}

#[test]
fn default_rule_without_sources_sets_a_constant() {
    let r = [replace(&[], "(.*)", "env", "prod")];
    assert_eq!(
        run(&[("a", "1")], &r),
        Some(ls(&[("a", "1"), ("env", "prod")]))
    );
}

#[test]
fn labelmap_can_write_names_replace_could_not() {
    // labelmap writes its result unchecked at run time, even "" (from an empty group).
    let r = [labelmap("x(.*)", "$1")];
    assert_eq!(
        run(&[("x", "v"), ("xy", "w")], &r),
        Some(ls(&[("", "v"), ("x", "v"), ("xy", "w"), ("y", "w")]))
    );
}

#[test]
fn labelmap_walks_untouched_input_then_additions_in_order() {
    // b is set first by a replace, so it is walked after the untouched input labels: the
    // value of `b` wins over `a` for the mapped name.
    let r = [replace(&[], "(.*)", "b", "from_b"), labelmap("(a|b)", "m")];
    assert_eq!(
        run(&[("a", "from_a")], &r),
        Some(ls(&[("a", "from_a"), ("b", "from_b"), ("m", "from_b")]))
    );
    // With both in the input, name order: b (later) wins.
    assert_eq!(
        run(&[("a", "1"), ("b", "2")], &[labelmap("(a|b)", "m")]),
        Some(ls(&[("a", "1"), ("b", "2"), ("m", "2")]))
    );
}

#[test]
fn labelmap_sees_a_snapshot() {
    // `a` maps to `b`; the walk still sees b's original value afterwards.
    let r = [labelmap("(a|b)", "b")];
    assert_eq!(
        run(&[("a", "1"), ("b", "2")], &r),
        Some(ls(&[("a", "1"), ("b", "2")]))
    );
}

#[test]
fn hashmod_uses_the_last_eight_digest_bytes() {
    // Expected values from python3 hashlib.md5(...).digest()[8:] as big-endian integers.
    assert_eq!(hashmod("baz", u64::MAX), 16450797887570275976);
    assert_eq!(hashmod("api;prod", 16), 1);
    assert_eq!(hashmod("", 7), 1);
    let r = rule(RuleSpec {
        source_labels: vec!["service_name".into(), "env".into()],
        target_label: "shard".into(),
        modulus: 16,
        action: Action::HashMod,
        ..RuleSpec::default()
    });
    assert_eq!(
        run(&[("env", "prod"), ("service_name", "api")], &[r]),
        Some(ls(&[
            ("env", "prod"),
            ("service_name", "api"),
            ("shard", "1")
        ]))
    );
}

#[test]
fn lowercase_uses_go_simple_case_mapping() {
    let r = [
        target_action(Action::Lowercase, &["a"], "lower"),
        target_action(Action::Uppercase, &["a"], "upper"),
    ];
    assert_eq!(
        run(&[("a", "Straße İ ΟΣ")], &r),
        Some(ls(&[
            ("a", "Straße İ ΟΣ"),
            ("lower", "straße i οσ"),
            ("upper", "STRAßE İ ΟΣ")
        ]))
    );
}

#[test]
fn lowercase_of_empty_value_deletes_the_target() {
    let r = [target_action(Action::Lowercase, &["missing"], "a")];
    assert_eq!(run(&[("a", "1"), ("b", "2")], &r), Some(ls(&[("b", "2")])));
}

#[test]
fn keepequal_compares_joined_sources_with_target() {
    let r = [rule(RuleSpec {
        source_labels: vec!["x".into(), "y".into()],
        target_label: "t".into(),
        action: Action::KeepEqual,
        ..RuleSpec::default()
    })];
    assert!(run(&[("t", "1;2"), ("x", "1"), ("y", "2")], &r).is_some());
    assert!(run(&[("t", "1;3"), ("x", "1"), ("y", "2")], &r).is_none());
    // Missing target is "", equal to an empty join.
    assert!(run(&[("z", "1")], &[target_action(Action::KeepEqual, &[], "t")]).is_some());
}

#[test]
fn no_rules_leave_labels_as_they_are() {
    assert_eq!(run(&[("a", "1")], &[]), Some(ls(&[("a", "1")])));
}

// ---- Regex: Go's syntax and meaning ----

fn matches(regex: &str, s: &str) -> bool {
    with_action(Action::Keep, &["a"], regex).regex.is_match(s)
}

fn regex_err(regex: &str) -> String {
    let e = spec_err(RuleSpec {
        regex: regex.into(),
        ..RuleSpec::default()
    });
    assert_eq!(e.field(), "regex");
    e.to_string()
}

#[test]
fn regex_is_fully_anchored() {
    assert!(matches("foo", "foo"));
    assert!(!matches("foo", "xfoo"));
    assert!(!matches("foo", "foox"));
    assert!(!matches("foo", "foo\n"));
}

#[test]
fn dot_matches_newline_unless_turned_off() {
    assert!(matches("a.b", "a\nb"));
    assert!(!matches("(?-s)a.b", "a\nb"));
    assert!(matches("(?-s)a.b", "a-b"));
}

#[test]
fn perl_classes_are_ascii_like_go() {
    // Rust's \d, \w are Unicode; Go's are ASCII.
    assert!(!matches(r"\d", "٣"));
    assert!(matches(r"\d+", "0123"));
    assert!(!matches(r"\w", "é"));
    assert!(matches(r"\W", "é"));
    // Go's \s has no \v (Rust's has).
    assert!(!matches(r"\s", "\u{b}"));
    assert!(matches(r"\s", "\u{c}"));
    assert!(!matches(r"\s", "\u{a0}"));
    assert!(matches(r"[[:space:]]", "\u{b}"));
    // \b is an ASCII word boundary.
    assert!(matches(r"é\bx", "éx"));
    assert!(!matches(r"a\bx", "ax"));
}

#[test]
fn case_folding_happens_before_negation() {
    // (?i)\W excludes the Kelvin sign and long s, whose folds are word characters.
    assert!(!matches(r"(?i)\W", "\u{212a}"));
    assert!(!matches(r"(?i)\W", "ſ"));
    assert!(matches(r"(?i)\w", "\u{212a}"));
    assert!(!matches(r"(?i)[^k]", "K"));
    assert!(matches(r"(?i)K", "\u{212a}"));
}

#[test]
fn go_only_syntax_is_translated() {
    // Literal { where it is not a repeat.
    assert!(matches("a{", "a{"));
    assert!(matches("a{x}", "a{x}"));
    assert!(matches("a{,2}", "a{,2}"));
    // Octal escapes.
    assert!(matches(r"\101\0", "A\0"));
    // \Q...\E.
    assert!(matches(r"\Qa.b*\Ec", "a.b*c"));
    assert!(!matches(r"\Qa.b\E", "axb"));
    // An unterminated \Q swallows the anchoring `)$` too, as in Go.
    assert_eq!(
        regex_err(r"\Qa.b"),
        "error parsing regexp: missing closing ): `^(?s:\\Qa.b)$`"
    );
    // Rust set operators are plain characters in Go classes.
    assert!(matches("[a&&b]+", "a&&b"));
    assert!(matches("[b~~a-]+", "~-a"));
    // ... and `a--b` is a (reversed, so invalid) range from `a` to `-`, as in Go.
    assert_eq!(
        regex_err("[a--b]"),
        "error parsing regexp: invalid character class range: `a--`"
    );
    assert!(matches("[[a]]", "[]"));
    // Capture names starting with a digit.
    assert!(matches("(?P<1x>a)", "a"));
    // Escaped punctuation Rust would refuse.
    assert!(matches(r"\_\ \#", "_ #"));
}

#[test]
fn user_regex_can_close_the_anchoring_group_like_in_go() {
    // ^(?s:a):(b)$ is what Go compiles for "a):(b".
    assert!(matches("a):(b", "a:b"));
    // ^(?s:x)|(?:y)$ : the second branch matches anything ending in y.
    assert!(matches("x)|(?:y", "zzy"));
}

#[test]
fn regex_errors_are_gos_text_for_the_anchored_pattern() {
    assert_eq!(
        regex_err("(abc"),
        "error parsing regexp: missing closing ): `^(?s:(abc)$`"
    );
    assert_eq!(
        regex_err("abc)"),
        "error parsing regexp: unexpected ): `^(?s:abc))$`"
    );
    assert_eq!(
        regex_err("a**"),
        "error parsing regexp: invalid nested repetition operator: `**`"
    );
    assert_eq!(
        regex_err("*"),
        "error parsing regexp: missing argument to repetition operator: `*`"
    );
    assert_eq!(
        regex_err("a{1001}"),
        "error parsing regexp: invalid repeat count: `{1001}`"
    );
    assert_eq!(
        regex_err("(a{100}){100}"),
        "error parsing regexp: invalid repeat count: `{100}`"
    );
    assert_eq!(
        regex_err(r"\C"),
        "error parsing regexp: invalid escape sequence: `\\C`"
    );
    assert_eq!(
        regex_err(r"\8"),
        "error parsing regexp: invalid escape sequence: `\\8`"
    );
    assert_eq!(
        regex_err(r"\1"),
        "error parsing regexp: invalid escape sequence: `\\1`"
    );
    assert_eq!(
        regex_err("[z-a]"),
        "error parsing regexp: invalid character class range: `z-a`"
    );
    assert_eq!(
        regex_err("[[:foo:]]"),
        "error parsing regexp: invalid character class range: `[:foo:]`"
    );
    assert_eq!(
        regex_err("[a"),
        "error parsing regexp: missing closing ]: `[a)$`"
    );
    assert_eq!(
        regex_err("(?x)a"),
        "error parsing regexp: invalid or unsupported Perl syntax: `(?x`"
    );
    assert_eq!(
        regex_err("(?P<a-b>x)"),
        "error parsing regexp: invalid named capture: `(?P<a-b>`"
    );
    assert_eq!(
        regex_err(r"\pX"),
        "error parsing regexp: invalid character class range: `\\pX`"
    );
}

#[test]
fn unicode_categories_are_supported_and_scripts_refused() {
    assert!(matches(r"\pL+", "héllo"));
    assert!(matches(r"\p{Lu}", "É"));
    assert!(matches(r"\p{^Lu}", "é"));
    assert!(matches(r"\PL", "1"));
    assert!(matches(r"\p{any}", "\n"));
    let e = spec_err(RuleSpec {
        regex: r"\p{Greek}".into(),
        ..RuleSpec::default()
    });
    assert!(matches!(e, RuleError::UnsupportedRegex { .. }), "{e}");
    assert_eq!(e.field(), "regex");
}

#[test]
fn repetition_with_zero_count_keeps_group_numbers() {
    let r = [replace(&["a"], "(x){0}(b)", "t", "$2")];
    assert_eq!(run(&[("a", "b")], &r), Some(ls(&[("a", "b"), ("t", "b")])));
}

#[test]
fn leftmost_first_alternation_and_captures_match_go() {
    let r = [replace(&["a"], "(a|ab)(c|bcd)(d*)", "t", "$1-$2-$3")];
    assert_eq!(
        run(&[("a", "abcd")], &r),
        Some(ls(&[("a", "abcd"), ("t", "a-bcd-")]))
    );
    let r = [replace(&["a"], "(a*?)(a*)", "t", "[$1][$2]")];
    assert_eq!(
        run(&[("a", "aaa")], &r),
        Some(ls(&[("a", "aaa"), ("t", "[][aaa]")]))
    );
}

#[test]
fn multiline_flag_changes_anchors_inside_the_pattern() {
    assert!(matches("(?m)a$\n^b", "a\nb"));
    assert!(!matches("a$\n^b", "a\nb"));
}

#[test]
fn surrogate_escapes_never_match() {
    assert!(!matches(r"\x{D800}", "\u{fffd}"));
    assert!(matches(r"[^\x{D800}]", "x"));
}
