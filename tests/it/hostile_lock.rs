//! State on disk and in the registry is data: a lock string outside its grammar is refused
//! (exit 2, the field named, the value never echoed raw); every export of the widest lock that
//! passes reads back as one YAML document per object; and what `collect` and `verify` print of
//! a registry's labels and modules holds no raw control character, nor anything a pull request
//! would act on in a `not collected:` line.

use std::path::Path;

use driver_matrix_sandbox::Flavor;
use driver_matrix_sandbox::oci::{Compression, Layer, tar};

use crate::support::{K_414, World, in_dir, module, says};

/// Whether `text` holds a control character other than a newline (C0, DEL, C1) or a line
/// separator.
fn raw_control(text: &str) -> Option<char> {
    text.chars()
        .find(|&c| (c.is_control() && c != '\n') || c == '\u{2028}' || c == '\u{2029}')
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

/// `tests/matrices/kmm` (matrix, contexts and lock) in a directory of its own.
fn kmm_project() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/matrices/kmm"),
        dir.path(),
    );
    dir
}

fn lock_text(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("matrix.lock")).unwrap()
}

/// The lock with its first line starting `prefix` replaced by `line`, or `line` added after
/// the first `after` line when no line starts with `prefix`.
fn edit(text: &str, prefix: &str, after: &str, line: &str) -> String {
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    match lines.iter().position(|l| l.starts_with(prefix)) {
        Some(i) => lines[i] = line.to_string(),
        None => {
            let i = lines.iter().position(|l| l.starts_with(after)).unwrap();
            lines.insert(i + 1, line.to_string());
        }
    }
    lines.join("\n") + "\n"
}

/// TOML strings built to escape their place: a second YAML object, terminal controls, DEL and
/// C1, markdown that acts in a pull request, a table cell's end.
const HOSTILE: &[&str] = &[
    r#""rhel-10\n---\napiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nroleRef:\n  name: cluster-admin""#,
    r#""\u001b]0;pwned\u0007""#,
    r#""9.4\u007f""#,
    "\"9.4\u{85}\u{9b}31m\"",
    r##""# heading [x](https://evil.example) @admin Fixes #1 <img src=x> | cell""##,
];

#[test]
fn a_lock_with_a_hostile_string_is_refused_naming_the_field() {
    let dir = kmm_project();
    let good = lock_text(dir.path());
    // (key, a line of the lock to put it after when the fixture has none)
    let fields = [
        ("stream", "arch = "),
        ("rhel", "rhel = "),
        ("machine-os", "rhel = "),
        ("kernel", "kernel = "),
        ("rt-kernel", "rt-kernel = "),
        ("payload", "payload = "),
        ("driver", "driver = "),
        ("inputs", "inputs = "),
        ("image", "image = "),
    ];
    for (key, after) in fields {
        for value in HOSTILE {
            let text = edit(
                &good,
                &format!("{key} = "),
                after,
                &format!("{key} = {value}"),
            );
            std::fs::write(dir.path().join("matrix.lock"), &text).unwrap();
            for args in [
                &["--offline", "export", "preflight"][..],
                &["--offline", "plan"],
            ] {
                let out = in_dir(dir.path()).args(args).expect_exit(2).run();
                let err = out.stderr.clone();
                assert!(err.contains(&format!("`{key}`")), "{key}: {err}");
                assert!(says(&err, "`[[") && says(&err, "number 1"), "{err}");
                assert_eq!(raw_control(&err), None, "{key} = {value}: {err:?}");
                assert!(out.stdout.is_empty(), "{}", out.stdout);
            }
        }
    }
}

/// Every YAML document of `text`, and the number of `---` separators it has.
fn yaml_documents(text: &str) -> (Vec<serde_json::Value>, usize) {
    use serde::Deserialize as _;
    let docs: Vec<serde_json::Value> = serde_norway::Deserializer::from_str(text)
        .map(|d| serde_json::Value::deserialize(d).unwrap_or_else(|e| panic!("{e}: {text}")))
        .collect();
    (docs, text.lines().filter(|l| *l == "---").count())
}

#[test]
fn every_export_of_the_widest_legal_lock_reads_back_one_document_per_object() {
    let dir = kmm_project();
    let mut text = lock_text(dir.path());
    let machine_os: String = "Zz9._-".chars().cycle().take(64).collect();
    text = edit(&text, "rhel = ", "", "rhel = \"10.0.1.2.3.4.5.6\"");
    text = edit(
        &text,
        "machine-os = ",
        "rhel = ",
        &format!("machine-os = \"{machine_os}\""),
    );
    text = edit(
        &text,
        "node-kernel = ",
        "kernel = ",
        "node-kernel = \"5.14.0-427.26.1.el9_4.x86_64\"",
    );
    // The first release again, on the RHEL 10 stream of a dual-stream payload.
    let first = text.split("\n[[release]]\n").nth(1).unwrap().to_string();
    let stream = edit(&first, "stream = ", "arch = ", "stream = \"rhel-10\"");
    text = text.replacen(
        "\n[[image]]\n",
        &format!("\n[[release]]\n{stream}\n[[image]]\n"),
        1,
    );
    std::fs::write(dir.path().join("matrix.lock"), &text).unwrap();
    let lock = driver_matrix::lock::read(&dir.path().join("matrix.lock")).unwrap();
    assert_eq!(lock.releases.len(), 5);

    let run = |args: &[&str]| {
        let mut all = vec!["--offline", "export"];
        all.extend_from_slice(args);
        let out = in_dir(dir.path()).args(&all).run();
        assert_eq!(raw_control(&out.stdout), None);
        assert_eq!(raw_control(&out.stderr), None);
        out
    };
    let out = run(&["preflight"]);
    let (docs, separators) = yaml_documents(&out.stdout);
    // One per release, checking the kernel its nodes boot, and one per real-time kernel (a
    // driver of the matrix is built for them).
    let expected: Vec<(String, String)> = lock
        .releases
        .iter()
        .flat_map(|r| {
            let node = r.node_kernel.as_ref().unwrap_or(&r.kernel).to_string();
            std::iter::once((node, r.dtk.to_string())).chain(
                r.rt_kernel
                    .as_ref()
                    .map(|k| (k.to_string(), r.dtk.to_string())),
            )
        })
        .collect();
    assert_eq!(
        (docs.len(), separators),
        (expected.len(), expected.len()),
        "{}",
        out.stdout
    );
    for (doc, (kernel, dtk)) in docs.iter().zip(&expected) {
        assert_eq!(doc["kind"], "PreflightValidationOCP");
        assert_eq!(doc["spec"]["kernelVersion"], kernel.as_str());
        assert_eq!(doc["spec"]["dtkImage"], dtk.as_str());
    }
    assert!(
        out.stdout
            .contains("# OpenShift 4.16.3 (x86_64, rhel-10)\n")
    );
    for (args, objects) in [
        (&["kmm"][..], 2),
        (&["boot-module-config", "--drop-parameters"], 2),
        (&["k8s-job", "--shards", "2"], 1),
    ] {
        let out = run(args);
        let text = out.stdout.clone();
        let (docs, separators) = yaml_documents(&text);
        assert!(separators <= docs.len(), "{args:?}: {text}");
        assert_eq!(docs.len(), objects, "{args:?}: {text}");
        for doc in &docs {
            assert!(
                doc["kind"].is_string() && doc["apiVersion"].is_string(),
                "{doc}"
            );
        }
    }
    let out = run(&["github-matrix"]);
    let _: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
}

/// What a hostile registry puts into a label or a module's `vermagic`.
const LABEL: &str =
    "\x1b]0;pwned\x07\x1b[2J @admin Fixes #1 <img src=x> [x](https://evil.example) \u{9b}31m";

#[test]
fn collect_and_verify_print_registry_text_escaped_and_keep_it_out_of_summaries() {
    let w = World::new("hostile-labels");
    w.publish(&[(&["4.14.1"], K_414)]);
    let mut drivers = String::new();
    for d in ["label-kmod", "vermagic-kmod"] {
        std::fs::create_dir_all(w.path(d)).unwrap();
        std::fs::write(w.path(d).join("Containerfile"), "FROM scratch\n").unwrap();
        drivers.push_str(&format!(
            "\n[[driver]]\nname = \"{d}\"\ncontext = \"{d}\"\nimage = \"{}/{}/{d}\"\nmodules = [\"hello\"]\n",
            w.addr, w.ns
        ));
    }
    w.matrix("releases = [\"4.14.1\"]", &drivers);
    let dir = w.dir.path();
    in_dir(dir).args(["resolve"]).run();
    let plan: serde_json::Value = in_dir(dir).args(["plan", "--format", "json"]).run().json();
    let inputs = |driver: &str| -> String {
        plan["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|j| j["driver"] == driver)
            .unwrap()["inputs"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let ko = format!("opt/lib/modules/{K_414}/hello.ko");
    let push = |driver: &str, inputs: &str, vermagic: &str| {
        let layer = Layer::new(
            &tar(&[(&ko, &module("hello", vermagic))]),
            Compression::Gzip,
        );
        w.pusher
            .image(
                &format!("{}/{driver}", w.ns),
                Some(K_414),
                &[layer],
                &[("io.driver-matrix.inputs", inputs)],
                "amd64",
                Flavor::Docker,
            )
            .unwrap()
    };
    // A label that is not the job's inputs hash, and an image whose inputs are the job's but
    // whose module says it was built for something else.
    push("label-kmod", LABEL, K_414);
    let pushed = push("vermagic-kmod", &inputs("vermagic-kmod"), LABEL);

    let err = in_dir(dir).args(["collect"]).expect_exit(1).stderr();
    assert_eq!(raw_control(&err), None, "{err:?}");
    let lines: Vec<&str> = err
        .lines()
        .filter(|l| l.starts_with("not collected: "))
        .collect();
    assert_eq!(lines.len(), 2, "{err}");
    for line in &lines {
        for acting in ["@admin", "Fixes #1", "<img", "](", "pwned", "\\x1b"] {
            assert!(!line.contains(acting), "{acting} in {line}");
        }
    }
    assert!(lines[0].contains("inputs label is not a digest"), "{err}");
    assert!(
        lines[1].contains(&format!("do not confirm kernel `{K_414}`")),
        "{err}"
    );
    // What the registry said is on the line below, escaped.
    assert!(err.contains(r"\x1b]0;pwned\x07\x1b[2J @admin"), "{err}");

    // `verify --deep` of the image, put into the lock by hand: its findings, escaped.
    let path = dir.join("matrix.lock");
    let mut lock = driver_matrix::lock::read(&path).unwrap();
    let release = lock.releases[0].clone();
    lock.upsert_image(driver_matrix::lock::LockedImage {
        driver: "vermagic-kmod".into(),
        kernel: release.kernel.clone(),
        arch: release.arch,
        dtk: release.dtk.clone(),
        inputs: inputs("vermagic-kmod").parse().unwrap(),
        image: format!("{}/{}/vermagic-kmod:{K_414}", w.addr, w.ns)
            .parse()
            .unwrap(),
        digest: pushed.digest.parse().unwrap(),
        releases: vec![release.version.clone()],
    });
    driver_matrix::lock::write_if_changed(&path, &lock).unwrap();
    let out = in_dir(dir).args(["verify", "--deep"]).expect_exit(1).run();
    let text = format!("{}{}", out.stdout, out.stderr);
    assert_eq!(raw_control(&text), None, "{text:?}");
    assert!(text.contains(r"\x1b]0;pwned\x07"), "{text}");
}
