//! The committed JSON Schema is the one the Rust types generate, and the example matrix and
//! fixtures validate against it.

use std::path::Path;

use crate::support::dm;

#[test]
fn committed_schema_is_up_to_date() {
    let committed = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/matrix.schema.json"),
    )
    .unwrap();
    assert!(
        committed == driver_matrix::matrix::schema_text(),
        "schemas/matrix.schema.json is stale: run `make schema` and commit it"
    );
}

#[test]
fn schema_command_prints_the_schema() {
    let out = dm().arg("schema").stdout();
    assert_eq!(out, driver_matrix::matrix::schema_text());
}

#[test]
fn schema_describes_every_top_level_key_and_forbids_others() {
    let schema = driver_matrix::matrix::schema();
    let props = schema["properties"].as_object().unwrap();
    let keys: Vec<&str> = props.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        ["openshift", "registries", "driver", "exclude", "toolkit"]
    );
    assert_eq!(schema["additionalProperties"], false);
    assert_eq!(schema["$defs"]["Driver"]["additionalProperties"], false);
    assert_eq!(schema["$defs"]["Toolkit"]["additionalProperties"], false);
    assert_eq!(
        schema["$defs"]["Stream"]["enum"],
        serde_json::json!(["default", "rhel-10"])
    );
    let arch = &schema["$defs"]["Arch"];
    assert_eq!(
        arch["enum"],
        serde_json::json!(["aarch64", "ppc64le", "s390x", "x86_64"])
    );
}

#[test]
fn example_matrix_starts_with_the_schema_line_and_loads() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(root.join("matrix.example.toml")).unwrap();
    assert!(text.starts_with("#:schema ./schemas/matrix.schema.json\n"));
    // hello-kmod is signed with the key `make demo` makes in .sandbox/signing/.
    driver_matrix_sandbox::signing::ensure(&root.join(".sandbox/signing")).unwrap();
    let loaded = driver_matrix::matrix::load(&root.join("matrix.example.toml")).unwrap();
    assert_eq!(loaded.warnings.len(), 0);
    assert_eq!(loaded.matrix.drivers.len(), 2);
    let hello = loaded.matrix.driver("hello-kmod").unwrap();
    assert!(hello.signing.as_ref().is_some_and(|s| s.cert.is_some()));
    assert_eq!(hello.secrets.len(), 2);
}
