//! Every KMM object driver-matrix exports (`export kmm`, `export boot-module-config`,
//! `export preflight`) validates against KMM's own CRDs in `tests/kmm-crds/`, with unknown
//! fields rejected as `kubectl apply` does by default (strict field validation): an export a
//! cluster would reject fails here, not on a customer's cluster.
//!
//! Each CRD version's `openAPIV3Schema` is read as JSON Schema. Kubernetes extensions are
//! handled as the API server does: `x-kubernetes-preserve-unknown-fields` keeps unknown fields,
//! every other object schema with `properties` rejects them; `x-kubernetes-int-or-string`
//! comes with its own `anyOf`; the one CEL rule (`x-kubernetes-validations`: `dra` and
//! `devicePlugin` are exclusive) is checked by hand (no export sets `dra`).

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{Value, json};

use crate::support::{Cmd, dm};

/// (apiVersion, kind) → the validator of that version's schema.
struct Crds(BTreeMap<(String, String), jsonschema::Validator>);

/// Marks every object schema that lists its `properties` as closed, unless Kubernetes keeps
/// unknown fields there.
fn strict(schema: &mut Value) {
    let Some(obj) = schema.as_object_mut() else {
        return;
    };
    let keeps_unknown = obj.get("x-kubernetes-preserve-unknown-fields") == Some(&json!(true));
    if obj.contains_key("properties") && !obj.contains_key("additionalProperties") && !keeps_unknown
    {
        obj.insert("additionalProperties".into(), json!(false));
    }
    if let Some(Value::Object(props)) = obj.get_mut("properties") {
        props.values_mut().for_each(strict);
    }
    for key in ["items", "additionalProperties", "not"] {
        if let Some(sub) = obj.get_mut(key) {
            strict(sub);
        }
    }
    for key in ["anyOf", "allOf", "oneOf"] {
        if let Some(Value::Array(list)) = obj.get_mut(key) {
            list.iter_mut().for_each(strict);
        }
    }
}

fn crds() -> Crds {
    let crds = crds_in("tests/kmm-crds");
    assert_eq!(
        crds.0.len(),
        4,
        "Module, BootModuleConfig, PreflightValidationOCP x2"
    );
    crds
}

/// The CRDs of the YAML files in `dir` (relative to the repository).
fn crds_in(dir: &str) -> Crds {
    let mut map = BTreeMap::new();
    let dir = crate::support::repo().join(dir);
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "yaml") {
            continue;
        }
        let crd: Value = serde_norway::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let group = crd["spec"]["group"].as_str().unwrap();
        let kind = crd["spec"]["names"]["kind"].as_str().unwrap();
        for version in crd["spec"]["versions"].as_array().unwrap() {
            let mut schema = version["schema"]["openAPIV3Schema"].clone();
            strict(&mut schema);
            let validator = jsonschema::validator_for(&schema).unwrap();
            let api = format!("{group}/{}", version["name"].as_str().unwrap());
            map.insert((api, kind.to_string()), validator);
        }
    }
    Crds(map)
}

/// Kubernetes object names (RFC 1123 subdomains), checked here independently of the code
/// under test; the CRDs leave `metadata` to the API server.
fn metadata_problems(meta: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let Some(obj) = meta.as_object() else {
        return vec!["metadata is not an object".into()];
    };
    for key in obj.keys() {
        if !["name", "namespace", "labels", "annotations"].contains(&key.as_str()) {
            out.push(format!("metadata.{key} is not set by users"));
        }
    }
    let name = obj.get("name").and_then(Value::as_str).unwrap_or_default();
    let label_ok = |p: &str| {
        !p.is_empty()
            && p.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !p.starts_with('-')
            && !p.ends_with('-')
    };
    if name.len() > 253 || !name.split('.').all(label_ok) {
        out.push(format!("metadata.name `{name}` is not a DNS subdomain"));
    }
    out
}

/// A ConfigMap as the fallback's build reads it: KMM takes the Dockerfile from its
/// `dockerfile` key (KMM `internal/constants`, `DockerfileCMKey`), and the API server takes
/// string data only, under keys of `[-._a-zA-Z0-9]`.
fn config_map_problems(doc: &Value) -> Vec<String> {
    let mut out = metadata_problems(&doc["metadata"]);
    let Some(data) = doc["data"].as_object() else {
        return vec!["a ConfigMap without `data`".to_string()];
    };
    for (k, v) in data {
        if k.is_empty()
            || !k
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-._".contains(c))
        {
            out.push(format!("ConfigMap key `{k}` is not valid"));
        }
        if !v.is_string() {
            out.push(format!("ConfigMap value of `{k}` is not a string"));
        }
    }
    if !data.get("dockerfile").is_some_and(Value::is_string) {
        out.push("no `dockerfile` key, which KMM's build reads".to_string());
    }
    let keys: Vec<&String> = doc
        .as_object()
        .map(|o| o.keys().collect())
        .unwrap_or_default();
    if keys
        .iter()
        .any(|k| !["apiVersion", "kind", "metadata", "data"].contains(&k.as_str()))
    {
        out.push(format!("unexpected top-level keys {keys:?}"));
    }
    out
}

impl Crds {
    /// Every reason the API server would reject `doc`.
    fn problems(&self, doc: &Value) -> Vec<String> {
        let api = doc["apiVersion"].as_str().unwrap_or_default().to_string();
        let kind = doc["kind"].as_str().unwrap_or_default().to_string();
        if (api.as_str(), kind.as_str()) == ("v1", "ConfigMap") {
            return config_map_problems(doc);
        }
        let Some(validator) = self.0.get(&(api.clone(), kind.clone())) else {
            return vec![format!("no CRD serves {kind} in {api}")];
        };
        let mut out: Vec<String> = validator
            .iter_errors(doc)
            .map(|e| format!("{}: {e}", e.instance_path()))
            .collect();
        out.extend(metadata_problems(&doc["metadata"]));
        // The CRD's one CEL rule, checked here as the API server would.
        if doc["spec"].get("dra").is_some() && doc["spec"].get("devicePlugin").is_some() {
            out.push("spec.dra and spec.devicePlugin are exclusive".to_string());
        }
        out
    }
}

/// `export ARGS` over `matrix` (and `lock`), both relative to the crate.
fn run(matrix: &str, lock: Option<&str>, args: &[&str]) -> Cmd {
    let mut cmd = dm()
        .args(["--offline", "--color", "never", "-m"])
        .arg(crate::support::repo().join(matrix));
    if let Some(lock) = lock {
        cmd = cmd.arg("--lockfile").arg(crate::support::repo().join(lock));
    }
    cmd.arg("export").args(args)
}

fn documents(text: &str) -> Vec<Value> {
    serde_norway::Deserializer::from_str(text)
        .map(|d| Value::deserialize(d).unwrap())
        .collect()
}

#[test]
fn every_kmm_export_validates_against_the_crds() {
    let crds = crds();
    let kmm = "tests/matrices/kmm/matrix.toml";
    let good = "tests/matrices/good/matrix.toml";
    let new_lock = Some("tests/locks/new.lock");
    let fallback = "tests/matrices/kmm-fallback/matrix.toml";
    let cases: [(&str, Option<&str>, &[&str], usize); 7] = [
        // Two Modules, each with its fallback's ConfigMap.
        (fallback, None, &["kmm", "--namespace", "acme"], 4),
        (kmm, None, &["kmm", "--namespace", "acme"], 2),
        (
            kmm,
            None,
            &[
                "boot-module-config",
                "--namespace",
                "acme",
                "--drop-parameters",
            ],
            2,
        ),
        // Two of its four releases carry a real-time kernel, which nic-kmod is built for.
        (kmm, None, &["preflight"], 6),
        // One job of net-kmod has no image: exit 1, the Modules still written must be valid.
        (
            good,
            new_lock,
            &["kmm", "--selector", "a.example.com/b=c"],
            2,
        ),
        (good, new_lock, &["preflight"], 3),
        (
            kmm,
            None,
            &["kmm", "--selector", "node-role.kubernetes.io/worker="],
            2,
        ),
    ];
    let mut kinds = BTreeMap::new();
    for (matrix, lock, args, count) in cases {
        let out = run(matrix, lock, args).expect_exit_in(&[0, 1]).run();
        let docs = documents(&out.stdout);
        assert_eq!(docs.len(), count, "{args:?}");
        for doc in &docs {
            let problems = crds.problems(doc);
            assert!(
                problems.is_empty(),
                "{args:?} wrote an object KMM rejects: {problems:#?}\n{doc:#}"
            );
            *kinds
                .entry(doc["kind"].as_str().unwrap().to_string())
                .or_insert(0) += 1;
        }
    }
    assert_eq!(
        kinds,
        BTreeMap::from([
            ("BootModuleConfig".to_string(), 2),
            ("ConfigMap".to_string(), 2),
            ("Module".to_string(), 8),
            ("PreflightValidationOCP".to_string(), 9)
        ])
    );
}

/// A valid export, changed the ways a hand edit or a writer bug would change it: each change
/// must be caught, or the test above proves nothing.
#[test]
fn objects_kmm_would_reject_fail_validation() {
    let crds = crds();
    let out = run("tests/matrices/kmm/matrix.toml", None, &["kmm"]).run();
    let module = documents(&out.stdout).remove(0);
    assert!(crds.problems(&module).is_empty());
    type Breakage = (&'static str, fn(&mut Value));
    let breakages: [Breakage; 7] = [
        ("misspelt key", |m| {
            let mp = m["spec"]["moduleLoader"]["container"]["modprobe"]
                .as_object_mut()
                .unwrap();
            let name = mp.remove("moduleName").unwrap();
            mp.insert("moduleNam".into(), name);
        }),
        ("missing required containerImage", |m| {
            m["spec"]["moduleLoader"]["container"]["kernelMappings"][0]
                .as_object_mut()
                .unwrap()
                .remove("containerImage");
        }),
        ("selector value read as a YAML 1.1 boolean", |m| {
            m["spec"]["selector"]["feature.node.kubernetes.io/pci-10de.present"] = json!(true);
        }),
        ("tolerationSeconds as a string", |m| {
            m["spec"]["tolerations"][1]["tolerationSeconds"] = json!("300");
        }),
        ("no selector", |m| {
            m["spec"].as_object_mut().unwrap().remove("selector");
        }),
        ("imageRepoSecret as a bare string", |m| {
            m["spec"]["imageRepoSecret"] = json!("acme-pull");
        }),
        ("object name with capitals", |m| {
            m["metadata"]["name"] = json!("GPU_kmod");
        }),
    ];
    for (what, breakage) in breakages {
        let mut broken = module.clone();
        breakage(&mut broken);
        assert!(
            !crds.problems(&broken).is_empty(),
            "{what} passed validation"
        );
    }
    let mut bmc = documents(
        &run(
            "tests/matrices/kmm/matrix.toml",
            None,
            &["boot", "--drop-parameters"],
        )
        .stdout(),
    )
    .remove(0);
    assert!(crds.problems(&bmc).is_empty());
    bmc["spec"]
        .as_object_mut()
        .unwrap()
        .remove("machineConfigPoolName");
    assert!(
        !crds.problems(&bmc).is_empty(),
        "a BootModuleConfig without pool passed"
    );
}

/// `export preflight --kmm-api release-image` writes the form KMM served from March 2024 to
/// June 2025 (`releaseImage`, `useRTKernel`): valid against that era's CRD
/// (`tests/kmm-crds-2025-05/`), and rejected by today's, as the current form is by that era's.
#[test]
fn the_older_preflight_form_validates_against_its_eras_crd() {
    let old = crds_in("tests/kmm-crds-2025-05");
    let now = crds();
    let kmm = "tests/matrices/kmm/matrix.toml";
    let out = run(kmm, None, &["preflight", "--kmm-api", "release-image"]).run();
    let docs = documents(&out.stdout);
    // Four releases, two with a real-time kernel that nic-kmod is built for.
    assert_eq!(docs.len(), 6);
    let lock =
        driver_matrix::lock::read(&crate::support::repo().join("tests/matrices/kmm/matrix.lock"))
            .unwrap();
    for doc in &docs {
        assert!(
            old.problems(doc).is_empty(),
            "{:?}\n{doc:#}",
            old.problems(doc)
        );
        assert!(
            !now.problems(doc).is_empty(),
            "today's CRD takes it: {doc:#}"
        );
        let payload = doc["spec"]["releaseImage"].as_str().unwrap();
        assert!(
            lock.releases
                .iter()
                .any(|r| r.payload.to_string() == payload),
            "the payload by digest from the lock: {payload}"
        );
    }
    let rt = docs
        .iter()
        .filter(|d| d["spec"]["useRTKernel"] == json!(true))
        .count();
    assert_eq!(rt, 2);
    let out = run(kmm, None, &["preflight"]).run();
    for doc in documents(&out.stdout) {
        assert!(
            !old.problems(&doc).is_empty(),
            "that era's CRD takes {doc:#}"
        );
    }
}
