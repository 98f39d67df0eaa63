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
//! - Every command the Dockerfile's build stage runs is documented verbatim in the README's
//!   Deployment section, the final stage copies that build's binary and runs as a non-root
//!   user, and the image's ENTRYPOINT + CMD is a `pyrogate run` that pyrogate's own command
//!   line parser accepts, with the admin listener reachable from outside the container (probes).

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

/// The Dockerfile's instructions, continuation lines joined and whitespace collapsed, comments
/// and blank lines dropped: `(INSTRUCTION, arguments)`.
fn dockerfile_instructions(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut pending = String::new();
    for line in text.lines() {
        let t = line.trim();
        if pending.is_empty() && (t.is_empty() || t.starts_with('#')) {
            continue;
        }
        match t.strip_suffix('\\') {
            Some(head) => {
                pending.push_str(head);
                pending.push(' ');
            }
            None => {
                pending.push_str(t);
                let joined = pending.split_whitespace().collect::<Vec<_>>().join(" ");
                pending.clear();
                let (instr, args) = joined.split_once(' ').unwrap_or((&joined, ""));
                out.push((instr.to_ascii_uppercase(), args.to_string()));
            }
        }
    }
    out
}

/// The README's "Deployment" section.
fn readme_deployment_section() -> String {
    let readme = read("README.md");
    let start = readme
        .find("\n## Deployment\n")
        .expect("a Deployment section");
    let rest = &readme[start + 1..];
    let end = rest[3..].find("\n## ").map_or(rest.len(), |i| i + 3);
    rest[..end].to_string()
}

#[test]
fn dockerfile_builds_as_the_readme_documents_and_runs_unprivileged() {
    let dockerfile = read("deploy/Dockerfile");
    let instructions = dockerfile_instructions(&dockerfile);
    let stages: Vec<usize> = instructions
        .iter()
        .enumerate()
        .filter(|(_, (i, _))| i == "FROM")
        .map(|(n, _)| n)
        .collect();
    assert_eq!(stages.len(), 2, "multi-stage: {instructions:?}");
    assert!(
        instructions[stages[0]].1.ends_with(" AS build"),
        "the first stage is the build stage: {:?}",
        instructions[stages[0]]
    );
    // Every command the build stage runs is documented, verbatim, in the README's Deployment
    // section (as `code`), and the build stage runs at least the release build.
    let deployment = readme_deployment_section();
    let build_runs: Vec<&str> = instructions[stages[0]..stages[1]]
        .iter()
        .filter(|(i, _)| i == "RUN")
        .map(|(_, a)| a.as_str())
        .collect();
    assert!(
        build_runs
            .iter()
            .any(|r| r.starts_with("cargo build --release")),
        "the build stage runs no release build: {build_runs:?}"
    );
    for run in &build_runs {
        assert!(
            deployment.contains(&format!("`{run}`")),
            "the README's Deployment section does not document the build stage's `{run}`"
        );
    }
    // The final stage copies what that build produced, from the build stage's WORKDIR.
    let workdir = instructions[stages[0]..stages[1]]
        .iter()
        .rev()
        .find(|(i, _)| i == "WORKDIR")
        .map(|(_, a)| a.clone())
        .expect("the build stage's WORKDIR");
    let final_stage = &instructions[stages[1]..];
    assert!(
        final_stage.iter().any(|(i, a)| i == "COPY"
            && a.starts_with(&format!("--from=build {workdir}/target/release/pyrogate "))),
        "the final stage does not copy {workdir}/target/release/pyrogate: {final_stage:?}"
    );
    assert!(
        final_stage
            .iter()
            .any(|(i, a)| i == "USER" && a == "10001:10001")
    );
    assert!(
        dockerfile.contains("seccomp"),
        "documents io_uring under seccomp"
    );
    // The command the image runs is one pyrogate's command line accepts: `run` with the admin
    // listener reachable from outside the container (probes) and the shipped config.
    let exec_form = |instr: &str| -> Vec<String> {
        let (_, args) = final_stage
            .iter()
            .find(|(i, _)| i == instr)
            .unwrap_or_else(|| panic!("no {instr} in the final stage"));
        serde_json::from_str(args).unwrap_or_else(|e| panic!("{instr} is not exec form: {e}"))
    };
    let entrypoint = exec_form("ENTRYPOINT");
    assert_eq!(entrypoint[0], "/usr/local/bin/pyrogate");
    let argv: Vec<String> = entrypoint[1..]
        .iter()
        .cloned()
        .chain(exec_form("CMD"))
        .collect();
    match pyrogate::cli::parse(&argv) {
        Ok(pyrogate::cli::Command::Run(run)) => {
            assert_eq!(run.admin_addr.to_string(), "0.0.0.0:12345", "{argv:?}");
            assert_eq!(
                run.config,
                std::path::Path::new("/etc/pyrogate/config.alloy"),
                "{argv:?}"
            );
        }
        other => panic!("the image's command {argv:?} is not a `pyrogate run`: {other:?}"),
    }
}
