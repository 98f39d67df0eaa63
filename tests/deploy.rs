//! The deployment files in `deploy/` are checked, not just shipped.
//!
//! - Every Kubernetes manifest parses as YAML and holds the expected kinds: a DaemonSet beside
//!   the apps; a Deployment + Service + PodDisruptionBudget + HorizontalPodAutoscaler for the
//!   central gateway; a ConfigMap whose `config.alloy` pyrogate itself loads without an error.
//!   Every pod's probes hit `/-/ready` and `/-/healthy` on the admin port, and it runs as a
//!   non-root user.
//! - The systemd unit passes `systemd-analyze verify` (with `ExecStart` pointed at the binary
//!   this test run built) where `systemd-analyze` exists, and carries the limits `tuning.md`
//!   recommends.
//! - The Dockerfile's build-stage command is the one the README documents, the final stage runs
//!   as a non-root user, and the admin listener is reachable from outside the container (probes).

use std::path::{Path, PathBuf};
use std::process::Command;

use yaml_rust2::{Yaml, YamlLoader};

fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(repo(rel)).unwrap_or_else(|e| panic!("read {rel}: {e}"))
}

fn docs(rel: &str) -> Vec<Yaml> {
    YamlLoader::load_from_str(&read(rel)).unwrap_or_else(|e| panic!("{rel} is not YAML: {e}"))
}

fn kinds(docs: &[Yaml]) -> Vec<String> {
    docs.iter()
        .map(|d| d["kind"].as_str().unwrap_or("?").to_string())
        .collect()
}

/// Checks the pod template of a DaemonSet or Deployment.
fn assert_pod(workload: &Yaml, what: &str) {
    let spec = &workload["spec"]["template"]["spec"];
    assert_eq!(
        spec["securityContext"]["runAsNonRoot"].as_bool(),
        Some(true),
        "{what}"
    );
    let c = &spec["containers"][0];
    assert_eq!(
        c["readinessProbe"]["httpGet"]["path"].as_str(),
        Some("/-/ready"),
        "{what}"
    );
    assert_eq!(
        c["livenessProbe"]["httpGet"]["path"].as_str(),
        Some("/-/healthy"),
        "{what}"
    );
    for probe in ["readinessProbe", "livenessProbe"] {
        assert_eq!(
            c[probe]["httpGet"]["port"].as_str(),
            Some("admin"),
            "{what} {probe}"
        );
    }
    let ports: Vec<(String, i64)> = c["ports"]
        .as_vec()
        .expect("container ports")
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap_or("?").to_string(),
                p["containerPort"].as_i64().unwrap_or(0),
            )
        })
        .collect();
    assert_eq!(
        ports[..2],
        [("ingest".to_string(), 9999), ("admin".to_string(), 12345)],
        "{what}"
    );
    let mount = &c["volumeMounts"][0];
    assert_eq!(mount["mountPath"].as_str(), Some("/etc/pyrogate"), "{what}");
    assert_eq!(
        spec["volumes"][0]["configMap"]["name"].as_str(),
        Some("pyrogate"),
        "{what}"
    );
}

#[test]
fn kubernetes_manifests_parse_and_hold_both_topologies() {
    let daemonset = docs("deploy/kubernetes/daemonset.yaml");
    assert_eq!(kinds(&daemonset), ["DaemonSet"]);
    assert_pod(&daemonset[0], "daemonset");

    let gateway = docs("deploy/kubernetes/gateway.yaml");
    assert_eq!(
        kinds(&gateway),
        [
            "Deployment",
            "Service",
            "PodDisruptionBudget",
            "HorizontalPodAutoscaler"
        ]
    );
    assert_pod(&gateway[0], "gateway deployment");
    let selector = &gateway[1]["spec"]["selector"];
    let template = &gateway[0]["spec"]["template"]["metadata"]["labels"];
    assert_eq!(selector, template, "the Service selects the gateway pods");
    assert_eq!(
        gateway[3]["spec"]["scaleTargetRef"]["name"], gateway[0]["metadata"]["name"],
        "the autoscaler scales the gateway"
    );
    assert_eq!(
        gateway[3]["spec"]["metrics"][0]["resource"]["name"].as_str(),
        Some("cpu")
    );
}

#[test]
fn the_configmap_holds_a_config_pyrogate_loads() {
    let cm = docs("deploy/kubernetes/configmap.yaml");
    assert_eq!(kinds(&cm), ["ConfigMap"]);
    let text = cm[0]["data"]["config.alloy"]
        .as_str()
        .expect("config.alloy");
    let loaded = pyrogate::config::load_str(
        "configmap/config.alloy",
        text,
        &pyrogate::config::ProcessEnvironment,
    )
    .unwrap_or_else(|d| panic!("the shipped config does not load:\n{d}"));
    assert_eq!(loaded.config.receivers[0].http.listen.port(), 9999);
}

#[test]
fn systemd_unit_verifies_and_sets_the_recommended_limits() {
    let unit = read("deploy/pyrogate.service");
    for line in [
        "LimitNOFILE=1048576",
        "LimitMEMLOCK=infinity",
        "Restart=on-failure",
        "NoNewPrivileges=yes",
        "KillSignal=SIGTERM",
    ] {
        assert!(unit.lines().any(|l| l == line), "missing {line}");
    }
    let which = Command::new("sh")
        .args(["-c", "command -v systemd-analyze"])
        .output();
    if !which.is_ok_and(|o| o.status.success()) {
        println!("skipped systemd-analyze verify: systemd-analyze is not installed");
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("pyrogate.service");
    let unit = unit.replace("/usr/local/bin/pyrogate", env!("CARGO_BIN_EXE_pyrogate"));
    std::fs::write(&path, unit).expect("write unit");
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .expect("run systemd-analyze");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "systemd-analyze verify failed:\n{stderr}"
    );
    // verify prints problems it does not fail on (e.g. unknown directives) as warnings.
    let own: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("pyrogate.service"))
        .collect();
    assert!(own.is_empty(), "systemd-analyze warnings: {own:?}");
}

#[test]
fn dockerfile_builds_as_the_readme_documents_and_runs_unprivileged() {
    let dockerfile = read("deploy/Dockerfile");
    let readme = read("README.md");
    let build = dockerfile
        .lines()
        .find_map(|l| l.strip_prefix("RUN cargo "))
        .map(|rest| format!("cargo {rest}"))
        .expect("a cargo RUN line in the build stage");
    assert!(
        readme.contains(&build),
        "the README does not document the Dockerfile's build command `{build}`"
    );
    assert_eq!(
        dockerfile
            .lines()
            .filter(|l| l.starts_with("FROM "))
            .count(),
        2,
        "multi-stage"
    );
    assert!(dockerfile.lines().any(|l| l == "USER 10001:10001"));
    assert!(dockerfile.contains("--server.http.listen-addr=0.0.0.0:12345"));
    assert!(
        dockerfile.contains("seccomp"),
        "documents io_uring under seccomp"
    );
}
