//! Exports parse back into the types their consumers use, with the key fields right.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use k8s_openapi::api::batch::v1::Job;
use serde::Deserialize;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}

fn export(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_driver-matrix"))
        .args(["--offline", "--color", "never", "-m"])
        .arg(root().join("tests/matrices/good/matrix.toml"))
        .arg("--lockfile")
        .arg(root().join("tests/locks/new.lock"))
        .arg("export")
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The fields of KMM's `Module` (kmm.sigs.x-k8s.io/v1beta1) that the export sets.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Module {
    api_version: String,
    kind: String,
    metadata: Metadata,
    spec: ModuleSpec,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Metadata {
    name: String,
    namespace: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ModuleSpec {
    module_loader: ModuleLoader,
    selector: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ModuleLoader {
    container: Container,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Container {
    modprobe: Modprobe,
    kernel_mappings: Vec<KernelMapping>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Modprobe {
    module_name: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct KernelMapping {
    literal: String,
    container_image: String,
}

fn documents<T: for<'de> Deserialize<'de>>(text: &str) -> Vec<T> {
    serde_norway::Deserializer::from_str(text)
        .map(|d| T::deserialize(d).unwrap())
        .collect()
}

#[test]
fn kmm_modules_map_every_locked_kernel_once_by_digest() {
    let text = export(&[
        "kmm",
        "--namespace",
        "acme",
        "--selector",
        "feature.node.kubernetes.io/pci-10de.present=true",
    ]);
    insta::assert_snapshot!("export_kmm", text);
    let modules: Vec<Module> = documents(&text);
    let lock = driver_matrix::lock::read(&root().join("tests/locks/new.lock")).unwrap();
    assert_eq!(modules.len(), 2);
    for m in &modules {
        assert_eq!(m.api_version, "kmm.sigs.x-k8s.io/v1beta1");
        assert_eq!(m.kind, "Module");
        assert_eq!(m.metadata.namespace.as_deref(), Some("acme"));
        assert_eq!(
            m.spec.selector["feature.node.kubernetes.io/pci-10de.present"],
            "true"
        );
        let locked: Vec<_> = lock
            .images
            .iter()
            .filter(|i| i.driver == m.metadata.name)
            .collect();
        let mappings = &m.spec.module_loader.container.kernel_mappings;
        assert_eq!(mappings.len(), locked.len());
        for image in locked {
            let hits: Vec<_> = mappings
                .iter()
                .filter(|k| k.literal == image.kernel.as_str())
                .collect();
            assert_eq!(
                hits.len(),
                1,
                "kernel {} mapped {} times",
                image.kernel,
                hits.len()
            );
            assert_eq!(hits[0].container_image, image.pinned().to_string());
            assert!(hits[0].container_image.contains("@sha256:"));
        }
    }
    let hello = modules
        .iter()
        .find(|m| m.metadata.name == "hello-kmod")
        .unwrap();
    assert_eq!(
        hello.spec.module_loader.container.modprobe.module_name,
        "hello"
    );
    let net = modules
        .iter()
        .find(|m| m.metadata.name == "net-kmod")
        .unwrap();
    assert_eq!(
        net.spec.module_loader.container.modprobe.module_name,
        "netfoo"
    );
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Preflight {
    api_version: String,
    kind: String,
    metadata: Metadata,
    spec: PreflightSpec,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct PreflightSpec {
    kernel_version: String,
    dtk_image: String,
    push_built_image: bool,
}

#[test]
fn one_preflight_per_locked_release() {
    let text = export(&["preflight"]);
    insta::assert_snapshot!("export_preflight", text);
    let docs: Vec<Preflight> = documents(&text);
    let lock = driver_matrix::lock::read(&root().join("tests/locks/new.lock")).unwrap();
    assert_eq!(docs.len(), lock.releases.len());
    for (doc, r) in docs.iter().zip(&lock.releases) {
        assert_eq!(doc.api_version, "kmm.sigs.x-k8s.io/v1beta2");
        assert_eq!(doc.kind, "PreflightValidationOCP");
        assert_eq!(doc.spec.kernel_version, r.kernel.as_str());
        assert_eq!(doc.spec.dtk_image, r.dtk.to_string());
        assert!(!doc.spec.push_built_image);
        assert!(
            doc.metadata
                .name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
        );
    }
}

#[test]
fn the_k8s_job_parses_as_a_batch_v1_job_with_one_completion_per_shard() {
    let text = export(&[
        "k8s-job",
        "--shards",
        "5",
        "--parallelism",
        "2",
        "--namespace",
        "builds",
    ]);
    insta::assert_snapshot!("export_k8s_job", text);
    let job: Job = serde_norway::from_str(&text).unwrap();
    let spec = job.spec.unwrap();
    assert_eq!(spec.completion_mode.as_deref(), Some("Indexed"));
    assert_eq!(spec.completions, Some(5));
    assert_eq!(spec.parallelism, Some(2));
    assert_eq!(spec.backoff_limit_per_index, Some(2));
    assert_eq!(job.metadata.namespace.as_deref(), Some("builds"));
    let pod = spec.template.spec.unwrap();
    let c = &pod.containers[0];
    assert_eq!(
        c.args.as_ref().unwrap()[..3],
        ["build", "--shard", "$(JOB_COMPLETION_INDEX)/5"]
    );
    let secret = pod
        .volumes
        .unwrap()
        .into_iter()
        .find_map(|v| v.secret)
        .unwrap();
    assert_eq!(
        secret.secret_name.as_deref(),
        Some("driver-matrix-registry")
    );
}

#[test]
fn the_github_matrix_carries_one_shard_per_entry() {
    let text = export(&["github-matrix", "--shards", "4"]);
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let shards: Vec<&str> = v["include"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["shard"].as_str().unwrap())
        .collect();
    assert_eq!(shards, ["0/4", "1/4", "2/4", "3/4"]);
    let out = Command::new(env!("CARGO_BIN_EXE_driver-matrix"))
        .args(["export", "github-matrix", "--shards", "257"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn exports_are_deterministic() {
    assert_eq!(export(&["kmm"]), export(&["kmm"]));
    assert_eq!(
        export(&["k8s-job", "--shards", "3"]),
        export(&["k8s-job", "--shards", "3"])
    );
}
