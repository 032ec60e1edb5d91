//! Exports parse back into the types their consumers use, with the key fields right.

use std::collections::BTreeMap;
use std::path::Path;

use k8s_openapi::api::batch::v1::Job;
use serde::Deserialize;

use crate::support::{Cmd, dm};

/// `export ARGS` over the good matrix and `tests/locks/new.lock`.
fn run(args: &[&str]) -> Cmd {
    dm().args(["--offline", "--color", "never", "-m"])
        .arg(crate::support::repo().join("tests/matrices/good/matrix.toml"))
        .arg("--lockfile")
        .arg(crate::support::repo().join("tests/locks/new.lock"))
        .arg("export")
        .args(args)
}

fn export(args: &[&str]) -> String {
    run(args).stdout()
}

/// `export ARGS` over `tests/matrices/kmm` (every `[driver.kmm]` key, every job locked).
fn run_kmm(args: &[&str], lock: Option<&Path>) -> Cmd {
    let mut cmd = dm()
        .args(["--offline", "--color", "never", "-m"])
        .arg(crate::support::repo().join("tests/matrices/kmm/matrix.toml"));
    if let Some(lock) = lock {
        cmd = cmd.arg("--lockfile").arg(lock);
    }
    cmd.arg("export").args(args)
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
    #[serde(default)]
    modules_loading_order: Vec<String>,
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
fn kmm_modules_map_every_wanted_kernel_once_by_digest_and_name_the_missing() {
    let out = run(&[
        "kmm",
        "--namespace",
        "acme",
        "--selector",
        "feature.node.kubernetes.io/pci-10de.present=true",
    ])
    .expect_exit(1)
    .run();
    // net-kmod (>=4.15) has no image for 4.16.3's kernel: the Modules are still written, the
    // missing job is named, and the exit code says the export is incomplete.
    let stderr = out.stderr;
    assert!(
        stderr.contains(
            "driver `net-kmod`: no image for kernel `5.14.0-427.18.1.el9_4.x86_64` (x86_64)"
        ),
        "{stderr}"
    );
    assert_eq!(stderr.matches("no image for").count(), 1, "{stderr}");
    let text = out.stdout;
    insta::assert_snapshot!("export_kmm", text);
    let modules: Vec<Module> = documents(&text);
    let lock =
        driver_matrix::lock::read(&crate::support::repo().join("tests/locks/new.lock")).unwrap();
    assert_eq!(modules.len(), 2);
    for m in &modules {
        assert_eq!(m.api_version, "kmm.sigs.x-k8s.io/v1beta1");
        assert_eq!(m.kind, "Module");
        assert_eq!(m.metadata.namespace.as_deref(), Some("acme"));
        assert_eq!(
            m.spec.selector["feature.node.kubernetes.io/pci-10de.present"],
            "true"
        );
        let mappings = &m.spec.module_loader.container.kernel_mappings;
        for k in mappings {
            let hits: Vec<_> = lock
                .images
                .iter()
                .filter(|i| i.driver == m.metadata.name && i.kernel.as_str() == k.literal)
                .collect();
            assert_eq!(
                hits.len(),
                1,
                "kernel {} mapped, locked {} times",
                k.literal,
                hits.len()
            );
            assert_eq!(k.container_image, hits[0].pinned().to_string());
            assert!(k.container_image.contains("@sha256:"));
        }
        let mut kernels: Vec<&str> = mappings.iter().map(|k| k.literal.as_str()).collect();
        kernels.dedup();
        assert_eq!(kernels.len(), mappings.len(), "a kernel mapped twice");
    }
    let hello = modules
        .iter()
        .find(|m| m.metadata.name == "hello-kmod")
        .unwrap();
    let container = &hello.spec.module_loader.container;
    assert_eq!(container.modprobe.module_name, "hello");
    assert!(container.modprobe.modules_loading_order.is_empty());
    assert_eq!(container.kernel_mappings.len(), 3);
    let net = modules
        .iter()
        .find(|m| m.metadata.name == "net-kmod")
        .unwrap();
    let container = &net.spec.module_loader.container;
    assert_eq!(container.modprobe.module_name, "netfoo");
    assert_eq!(
        container.modprobe.modules_loading_order,
        ["netfoo", "netbar"]
    );
    // The 4.14 image is outside net-kmod's `openshift = ">=4.15"`: no node of it runs that kernel.
    let kernels: Vec<&str> = container
        .kernel_mappings
        .iter()
        .map(|k| k.literal.as_str())
        .collect();
    assert_eq!(kernels, ["5.14.0-284.59.1.el9_2.x86_64"]);
}

#[test]
fn kmm_settings_of_the_matrix_reach_the_module() {
    let out = run_kmm(&["kmm"], None).run();
    let text = out.stdout;
    insta::assert_snapshot!("export_kmm_settings", text);
    let docs: Vec<serde_json::Value> = documents(&text);
    let gpu = &docs[0]["spec"];
    let container = &gpu["moduleLoader"]["container"];
    assert_eq!(
        container["modprobe"]["parameters"],
        serde_json::json!(["debug=1", "max_queues=8"])
    );
    assert_eq!(container["modprobe"]["firmwarePath"], "/firmware");
    assert_eq!(
        container["modprobe"]["modulesLoadingOrder"],
        serde_json::json!(["acme_gpu", "acme_gpu_core"])
    );
    assert_eq!(
        container["inTreeModulesToRemove"],
        serde_json::json!(["nouveau"])
    );
    assert_eq!(gpu["moduleLoader"]["serviceAccountName"], "acme-gpu-loader");
    assert_eq!(container["version"], "2.3.1");
    assert_eq!(
        gpu["devicePlugin"]["container"]["image"],
        "quay.io/acme/gpu-device-plugin@sha256:1111111111111111111111111111111111111111111111111111111111111111"
    );
    assert_eq!(
        gpu["devicePlugin"]["container"]["args"],
        serde_json::json!(["--devices=all"])
    );
    assert_eq!(gpu["devicePlugin"]["serviceAccountName"], "acme-gpu-plugin");
    assert_eq!(gpu["imageRepoSecret"]["name"], "acme-pull");
    assert_eq!(
        gpu["selector"]["feature.node.kubernetes.io/pci-10de.present"],
        "true"
    );
    assert_eq!(gpu["tolerations"][1]["tolerationSeconds"], 300);
    assert_eq!(container["kernelMappings"].as_array().unwrap().len(), 4);
    let nic = &docs[1]["spec"]["moduleLoader"]["container"]["kernelMappings"];
    assert_eq!(
        nic.as_array().unwrap().len(),
        4,
        "two kernels and their RT kernels"
    );
    let rt = &nic[1];
    assert_eq!(rt["literal"], "5.14.0-427.26.1.el9_4.x86_64+rt");
    assert_eq!(
        rt["containerImage"],
        "quay.io/acme/nic-kmod-signed:5.14.0-427.26.1.el9_4.x86_64_rt-signed"
    );
    assert!(
        rt["sign"]["unsignedImage"]
            .as_str()
            .unwrap()
            .starts_with("quay.io/acme/nic-kmod@sha256:")
    );
    assert_eq!(rt["sign"]["keySecret"]["name"], "acme-signing-key");
    assert_eq!(
        rt["sign"]["filesToSign"],
        serde_json::json!(["/opt/lib/modules/5.14.0-427.26.1.el9_4.x86_64+rt/acme_nic.ko"])
    );
}

#[test]
fn a_driver_without_any_image_is_named_and_the_others_are_written() {
    let lock_path = crate::support::repo().join("tests/matrices/kmm/matrix.lock");
    let mut lock = driver_matrix::lock::read(&lock_path).unwrap();
    lock.images.retain(|i| {
        i.driver != "nic-kmod"
            && !(i.arch.as_str() == "aarch64" && i.releases[0].to_string() == "4.16.4")
    });
    let dir = tempfile::tempdir().unwrap();
    let partial = dir.path().join("matrix.lock");
    std::fs::write(&partial, driver_matrix::lock::render(&lock)).unwrap();
    for what in [&["kmm"][..], &["boot", "--drop-parameters"]] {
        let out = run_kmm(what, Some(&partial)).expect_exit(1).run();
        let stderr = out.stderr;
        assert_eq!(
            stderr
                .matches("error: driver `nic-kmod`: no image for kernel")
                .count(),
            4,
            "{stderr}"
        );
        assert!(stderr.contains("error: driver `gpu-kmod`: no image for kernel `5.14.0-427.28.1.el9_4.aarch64` (aarch64)"), "{stderr}");
        let docs: Vec<serde_json::Value> = documents(&out.stdout);
        assert_eq!(docs.len(), 1, "{what:?}: only gpu-kmod has images");
        assert_eq!(docs[0]["metadata"]["name"], "gpu-kmod");
    }
}

#[test]
fn boot_module_configs_name_the_repository_kmm_appends_the_kernel_to() {
    // gpu-kmod loads its module with parameters, which KMM's boot units cannot pass.
    let out = run_kmm(&["boot-module-config", "--pool", "gpu-workers"], None)
        .expect_exit(2)
        .run();
    assert!(out.stdout.is_empty());
    let stderr = out.stderr;
    assert!(
        crate::support::says(
            &stderr,
            "driver `gpu-kmod` loads its module with parameters (debug=1 max_queues=8)"
        ),
        "{stderr}"
    );
    assert!(
        crate::support::says(&stderr, "--drop-parameters"),
        "{stderr}"
    );
    let out = run_kmm(
        &[
            "boot-module-config",
            "--pool",
            "gpu-workers",
            "--drop-parameters",
        ],
        None,
    )
    .run();
    let text = out.stdout;
    insta::assert_snapshot!("export_boot", text);
    assert_eq!(
        text,
        run_kmm(
            &["boot", "--pool", "gpu-workers", "--drop-parameters"],
            None
        )
        .stdout()
    );
    let docs: Vec<serde_json::Value> = documents(&text);
    assert_eq!(docs.len(), 2);
    let gpu = &docs[0]["spec"];
    assert_eq!(gpu["kernelModuleImage"], "quay.io/acme/gpu-kmod");
    assert_eq!(gpu["kernelModuleName"], "acme_gpu");
    assert_eq!(gpu["machineConfigPoolName"], "gpu-workers");
    assert_eq!(gpu["machineConfigName"], "99-gpu-workers-kmm-gpu-kmod");
    assert_eq!(gpu["firmwareFilesPath"], "/firmware");
    assert_eq!(gpu["inTreeModulesToRemove"], serde_json::json!(["nouveau"]));
    assert!(text.contains("Kernel `5.14.0-427.26.1.el9_4.x86_64+rt` cannot load at boot"));
    assert!(text.contains("`acme_gpu` is loaded without its parameters (debug=1 max_queues=8)"));
    assert!(
        text.contains("An image rebuilt for a kernel a node already has is not fetched at boot")
    );
}

#[test]
fn boot_refuses_a_driver_whose_tag_is_not_the_bare_kernel() {
    let out = run(&["boot"]).expect_exit(2).run();
    assert!(out.stdout.is_empty());
    let stderr = out.stderr;
    assert!(
        stderr.contains("driver `hello-kmod` tags its images `${VERSION}-${KERNEL_FULL_VERSION}`"),
        "{stderr}"
    );
    assert!(
        stderr.contains("tag = \"${KERNEL_FULL_VERSION}\""),
        "{stderr}"
    );
    assert!(stderr.contains("+rt"), "{stderr}");
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

/// `export preflight` over the good matrix: like `export kmm`, it exits 1 and names net-kmod's
/// job without an image, and still writes every release's validation.
fn preflight() -> String {
    let out = run(&["preflight"]).expect_exit(1).run();
    let kmm = run(&["kmm"]).expect_exit(1).run();
    let err = out.stderr;
    assert!(
        err.contains("error: driver `net-kmod`: no image for kernel"),
        "{err}"
    );
    assert_eq!(err, kmm.stderr);
    out.stdout
}

#[test]
fn one_preflight_per_locked_release() {
    let text = preflight();
    insta::assert_snapshot!("export_preflight", text);
    let docs: Vec<Preflight> = documents(&text);
    let lock =
        driver_matrix::lock::read(&crate::support::repo().join("tests/locks/new.lock")).unwrap();
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
    dm().args(["export", "github-matrix", "--shards", "257"])
        .expect_exit(2)
        .run();
}

#[test]
fn exports_are_deterministic() {
    let kmm = || run_kmm(&["kmm"], None).stdout();
    assert_eq!(kmm(), kmm());
    assert_eq!(preflight(), preflight());
    assert_eq!(
        export(&["k8s-job", "--shards", "3"]),
        export(&["k8s-job", "--shards", "3"])
    );
}

#[test]
fn preflight_for_an_upgrade_target_checks_the_kernel_its_nodes_boot() {
    let lock_path = crate::support::repo().join("tests/matrices/kmm/matrix.lock");
    let mut lock = driver_matrix::lock::read(&lock_path).unwrap();
    let node: driver_matrix::domain::Kernel = "5.14.0-427.31.1.el9_4.x86_64".parse().unwrap();
    for r in &mut lock.releases {
        if r.version.to_string() == "4.16.4" && r.arch.as_str() == "x86_64" {
            r.node_kernel = Some(node.clone());
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("matrix.lock");
    std::fs::write(&path, driver_matrix::lock::render(&lock)).unwrap();

    let out = run_kmm(&["preflight", "--release", "4.16.4"], Some(&path)).run();
    let text = out.stdout;
    let docs: Vec<serde_json::Value> = documents(&text);
    let kernels: Vec<&str> = docs
        .iter()
        .map(|d| d["spec"]["kernelVersion"].as_str().unwrap())
        .collect();
    // Only the upgrade target, on both arches, and its x86_64 real-time kernel (nic-kmod is
    // built for it); on x86_64 the kernel its nodes boot, not its DTK's.
    assert_eq!(
        kernels,
        [
            "5.14.0-427.28.1.el9_4.aarch64",
            "5.14.0-427.31.1.el9_4.x86_64",
            "5.14.0-427.28.1.el9_4.x86_64+rt",
        ]
    );
    assert!(
        text.contains("its Driver Toolkit carries `5.14.0-427.28.1.el9_4.x86_64`"),
        "{text}"
    );
    assert!(!text.contains("4.16.3"), "{text}");
    for doc in &docs {
        assert!(doc["metadata"].get("namespace").is_none(), "cluster-scoped");
    }

    let out = run_kmm(&["preflight", "--release", "4.99.0"], Some(&path))
        .expect_exit(2)
        .run();
    assert!(
        out.stderr
            .contains("`--release 4.99.0` names no release of the lock")
    );
    let out = run_kmm(&["preflight", "--namespace", "acme"], Some(&path))
        .expect_exit(2)
        .run();
    assert!(out.stderr.contains("cluster-scoped"));
}

/// KMM signs an image in the cluster only when its `-signed` tag does not exist yet: the
/// Module's `imageRebuildTriggerGeneration` follows the locked digests, so an image rebuilt for
/// a kernel KMM already signed is signed again; a driver KMM does not sign has none.
#[test]
fn a_rebuilt_image_changes_the_generation_kmm_signs_again_for() {
    let lock_path = crate::support::repo().join("tests/matrices/kmm/matrix.lock");
    let generation = |lock: &Path| -> (serde_json::Value, serde_json::Value) {
        let out = run_kmm(&["kmm"], Some(lock)).run();
        let docs: Vec<serde_json::Value> = documents(&out.stdout);
        let of = |name: &str| {
            docs.iter()
                .find(|d| d["metadata"]["name"] == name)
                .map(|d| d["spec"]["imageRebuildTriggerGeneration"].clone())
                .unwrap()
        };
        (of("gpu-kmod"), of("nic-kmod"))
    };
    let (gpu, nic) = generation(&lock_path);
    assert!(
        gpu.is_null(),
        "gpu-kmod is not signed in the cluster: {gpu}"
    );
    assert!(nic.as_u64().is_some_and(|n| n < 1 << 31), "{nic}");
    assert_eq!(
        generation(&lock_path).1,
        nic,
        "the same lock, the same generation"
    );

    let mut lock = driver_matrix::lock::read(&lock_path).unwrap();
    let rebuilt = lock
        .images
        .iter_mut()
        .find(|i| i.driver == "nic-kmod")
        .unwrap();
    rebuilt.digest = driver_matrix::domain::Digest::sha256(b"rebuilt for the same kernel");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("matrix.lock");
    std::fs::write(&path, driver_matrix::lock::render(&lock)).unwrap();
    let (gpu_after, nic_after) = generation(&path);
    assert!(gpu_after.is_null());
    assert_ne!(nic_after, nic, "a new digest, a new signature");
}
