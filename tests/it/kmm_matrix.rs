//! `[driver.kmm]` in matrix.toml: a good table loads into the model, every bad value is
//! reported at once with its place, and the structure pass (driven by the JSON Schema) knows
//! the new keys.

use std::path::Path;

use driver_matrix::matrix;
use miette::{GraphicalReportHandler, GraphicalTheme};

fn render(diag: &dyn miette::Diagnostic) -> String {
    let mut out = String::new();
    GraphicalReportHandler::new_themed(GraphicalTheme::unicode_nocolor())
        .with_width(10_000)
        .with_links(false)
        .render_report(&mut out, diag)
        .expect("rendering into a String cannot fail");
    out
}

fn load(driver_tail: &str) -> Result<matrix::Loaded, String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/matrices/kmm");
    let text = format!(
        "[openshift]\nreleases = [\"4.16.3\"]\n\n[[driver]]\nname = \"gpu-kmod\"\ncontext = \"gpu\"\nimage = \"quay.io/acme/gpu-kmod\"\n{driver_tail}"
    );
    matrix::parse(
        Path::new("matrix.toml"),
        &root.canonicalize().unwrap(),
        text,
    )
    .map_err(|e| render(&e))
}

#[test]
fn the_fixture_matrix_loads_every_kmm_key() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/matrices/kmm/matrix.toml");
    let loaded = matrix::load(&root).unwrap();
    assert!(loaded.warnings.is_empty());
    let gpu = &loaded.matrix.drivers[0].kmm;
    assert_eq!(gpu.parameters, ["debug=1", "max_queues=8"]);
    assert_eq!(gpu.firmware_path.as_deref(), Some("/firmware"));
    assert_eq!(gpu.image_repo_secret.as_deref(), Some("acme-pull"));
    assert_eq!(gpu.service_account.as_deref(), Some("acme-gpu-loader"));
    assert_eq!(gpu.selector.len(), 2);
    assert_eq!(gpu.tolerations.len(), 2);
    assert_eq!(gpu.tolerations[1].toleration_seconds, Some(300));
    let sign = loaded.matrix.drivers[1].kmm.sign.as_ref().unwrap();
    assert_eq!(sign.key_secret, "acme-signing-key");
    assert_eq!(
        sign.image.as_ref().unwrap().to_string(),
        "quay.io/acme/nic-kmod-signed"
    );
    assert_eq!(
        loaded.matrix.drivers[1].kmm.in_tree_modules_to_remove,
        ["ice"]
    );
}

#[test]
fn a_driver_without_a_kmm_table_gets_the_defaults() {
    let loaded = load("modules = [\"m\"]\n").unwrap();
    assert_eq!(loaded.matrix.drivers[0].kmm, matrix::Kmm::default());
}

#[test]
fn every_bad_kmm_value_is_reported_with_its_place() {
    let report = load(
        r#"
[driver.kmm]
parameters = ["debug = 1", "ok=1"]
firmware-path = "firmware"
in-tree-modules-to-remove = ["nouveau.ko"]
image-repo-secret = "Acme_Pull"
service-account = "-sa"
selector = { "a/b/c" = "x", "node-role.kubernetes.io/worker" = "not ok" }
tolerations = [
  { operator = "Equal", value = "x" },
  { key = "k", operator = "Exist", effect = "NoSchedul" },
  { key = "k", operator = "Exists", value = "v", toleration-seconds = 5 },
]

[driver.kmm.sign]
key-secret = "key"
cert-secret = "cert"
files-to-sign = ["/opt/lib/modules/${KERNEL_VERSION}/m.ko", "m.ko"]
image = "quay.io/acme/signed:latest"
"#,
    )
    .unwrap_err();
    insta::assert_snapshot!("kmm_bad_values", report);
    for needle in [
        "`[driver.kmm]` is set, but the driver lists no `modules`",
        "`debug = 1` is not a module parameter",
        "`firmware-path` must be an absolute path in the image, not `firmware`",
        "`nouveau.ko` is not a kernel module name",
        "`Acme_Pull` is not the name of a Secret",
        "`-sa` is not the name of a ServiceAccount",
        "`a/b/c` is not a node label key",
        "`not ok` is not a label value",
        "a toleration without `key` must have `operator = \"Exists\"`",
        "`Exist` is not a toleration operator",
        "`NoSchedul` is not a toleration effect",
        "a toleration with `operator = \"Exists\"` takes no `value`",
        "`toleration-seconds` applies only to `effect = \"NoExecute\"`",
        "uses a placeholder other than `${KERNEL_FULL_VERSION}`",
        "`files-to-sign` must be an absolute path in the image, not `m.ko`",
        "`sign.image` must name a repository without tag or digest",
    ] {
        assert!(report.contains(needle), "missing {needle:?} in\n{report}");
    }
}

#[test]
fn unknown_kmm_keys_and_wrong_types_are_structural_problems() {
    let report = load(
        "modules = [\"m\"]\n[driver.kmm]\nparameter = [\"a=1\"]\ntolerations = \"all\"\n[driver.kmm.sign]\nkey-secret = \"k\"\n",
    )
    .unwrap_err();
    assert!(
        report.contains("unknown key `parameter` in `driver[0].kmm`"),
        "{report}"
    );
    assert!(report.contains("did you mean `parameters`?"), "{report}");
    assert!(
        report.contains("`driver[0].kmm.tolerations` must be an array"),
        "{report}"
    );
    assert!(
        report.contains("missing the required key `cert-secret`"),
        "{report}"
    );
    assert!(
        report.contains("missing the required key `files-to-sign`"),
        "{report}"
    );
}

#[test]
fn the_committed_schema_describes_the_kmm_table() {
    let schema = matrix::schema();
    let kmm = &schema["$defs"]["Kmm"]["properties"];
    for key in [
        "parameters",
        "firmware-path",
        "in-tree-modules-to-remove",
        "image-repo-secret",
        "service-account",
        "selector",
        "tolerations",
        "sign",
    ] {
        assert!(kmm.get(key).is_some(), "schema lacks `{key}`");
    }
    assert_eq!(
        schema["$defs"]["Sign"]["required"],
        serde_json::json!(["key-secret", "cert-secret", "files-to-sign"])
    );
}
