//! `driver-matrix diff` over lock pairs that cover every kind of change, in every format.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::{Cmd, dm};

fn locks() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/locks")
}

/// `driver-matrix --color never diff ARGS` in `cwd`.
fn diff(args: &[&str], cwd: &Path) -> Cmd {
    dm().current_dir(cwd)
        .args(["--color", "never", "diff"])
        .args(args)
}

#[test]
fn every_format_over_every_kind_of_change() {
    for format in ["text", "markdown", "json"] {
        let out = diff(&["old.lock", "new.lock", "--format", format], &locks()).stdout();
        insta::assert_snapshot!(format!("diff_{format}"), out);
    }
}

#[test]
fn the_json_shape_names_each_change() {
    let out = diff(&["old.lock", "new.lock", "--format", "json"], &locks()).stdout();
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["changed"], true);
    let s = &v["summary"];
    assert_eq!(s["kernels-added"], 1);
    assert_eq!(s["kernels-removed"], 1);
    assert_eq!(s["images-rebuilt"], 3);
    let hello = v["drivers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["driver"] == "hello-kmod")
        .unwrap();
    let reasons: Vec<&str> = hello["images"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|i| i["reason"].as_str())
        .collect();
    assert_eq!(reasons, ["dtk-changed"]);
    // The DTK it changed from and to, by digest: what a reviewer checks against the releases.
    let rebuilt = hello["images"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["reason"] == "dtk-changed")
        .unwrap();
    let (old, new) = (
        rebuilt["dtk"]["old"].as_str().unwrap(),
        rebuilt["dtk"]["new"].as_str().unwrap(),
    );
    assert!(
        old.contains("@sha256:b344789d330c") && new.contains("@sha256:05446adac4d1"),
        "{rebuilt}"
    );
    let net = v["drivers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["driver"] == "net-kmod")
        .unwrap();
    let reasons: Vec<&str> = net["images"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|i| i["reason"].as_str())
        .collect();
    assert_eq!(reasons, ["inputs-changed", "same-inputs"]);
    let covered: Vec<&str> = hello["releases-covered"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["version"].as_str().unwrap())
        .collect();
    assert_eq!(covered, ["4.16.3"]);
}

#[test]
fn identical_locks_print_that_nothing_changed() {
    for format in ["text", "markdown"] {
        diff(&["old.lock", "old.lock", "--format", format], &locks())
            .stdout_contains("no changes")
            .run();
    }
    let out = diff(&["new.lock", "new.lock", "--format", "json"], &locks()).stdout();
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["changed"], false);
}

#[test]
fn git_rev_reads_the_lock_at_that_revision() {
    let dir = tempfile::tempdir().unwrap();
    let git = |args: &[&str]| {
        let s = Command::new("git")
            .current_dir(dir.path())
            .args(args)
            .output()
            .unwrap();
        assert!(
            s.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&s.stderr)
        );
    };
    git(&["init", "-q"]);
    git(&["config", "user.email", "t@example.invalid"]);
    git(&["config", "user.name", "t"]);
    std::fs::copy(locks().join("old.lock"), dir.path().join("matrix.lock")).unwrap();
    git(&["add", "matrix.lock"]);
    git(&["commit", "-qm", "lock"]);
    std::fs::copy(locks().join("new.lock"), dir.path().join("matrix.lock")).unwrap();
    let from_git = diff(&["git:HEAD", "--format", "json"], dir.path()).stdout();
    let from_files = diff(&["old.lock", "new.lock", "--format", "json"], &locks()).stdout();
    assert_eq!(from_git, from_files);
    // A revision where the lock did not exist yet: everything is new.
    git(&["commit", "-q", "--allow-empty", "-m", "empty"]);
    diff(&["git:NOPE"], dir.path())
        .expect_exit(2)
        .stderr_contains("`NOPE` is not a commit")
        .run();
}

#[test]
fn a_revision_that_looks_like_an_option_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let git = |args: &[&str]| {
        let s = Command::new("git")
            .current_dir(dir.path())
            .args(args)
            .output()
            .unwrap();
        assert!(s.status.success(), "git {args:?}");
    };
    git(&["init", "-q"]);
    git(&["config", "user.email", "t@example.invalid"]);
    git(&["config", "user.name", "t"]);
    std::fs::copy(locks().join("old.lock"), dir.path().join("matrix.lock")).unwrap();
    git(&["add", "matrix.lock"]);
    git(&["commit", "-qm", "lock"]);
    // `git show --output=D/out:./matrix.lock` writes into the directory `D/out:.`.
    let out_dir = dir.path().join("out:.");
    std::fs::create_dir(&out_dir).unwrap();
    let written = out_dir.join("matrix.lock");
    for arg in [
        format!("git:--output={}", dir.path().join("out").display()),
        "git:--all".to_string(),
    ] {
        diff(&[&arg], dir.path())
            .expect_exit(2)
            .stderr_contains("does not name a revision")
            .run();
        assert!(!written.exists(), "{arg} made git write a file");
    }
    // An option after a valid revision is still not an option to git.
    diff(&["git:HEAD --output=x"], dir.path())
        .expect_exit(2)
        .run();
    assert!(!dir.path().join("x").exists());
}

#[test]
fn a_missing_lock_path_is_a_usage_error() {
    diff(&["nope.lock", "new.lock"], &locks())
        .expect_exit(2)
        .stderr_contains("`nope.lock` does not exist")
        .run();
}

/// From `git:REV`, an image rebuilt for its inputs says which: the files of its context that
/// changed (the Containerfile among them) and its build args, in every format.
#[test]
fn git_rev_says_which_inputs_changed() {
    let dir = tempfile::tempdir().unwrap();
    let git = |args: &[&str]| {
        let s = Command::new("git")
            .current_dir(dir.path())
            .args(args)
            .output()
            .unwrap();
        assert!(
            s.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&s.stderr)
        );
    };
    let matrix = |version: &str| {
        format!(
            "[openshift]\nreleases = [\"4.14.12\"]\n\n[[driver]]\nname = \"net-kmod\"\ncontext = \"net\"\n\
             image = \"127.0.0.1:5000/acme/net-kmod\"\nbuild-args = {{ VERSION = \"{version}\", KEEP = \"x\" }}\n"
        )
    };
    let p = dir.path();
    std::fs::create_dir(p.join("net")).unwrap();
    std::fs::write(
        p.join("net/Containerfile"),
        "ARG DTK_IMAGE\nFROM ${DTK_IMAGE}\n",
    )
    .unwrap();
    std::fs::write(p.join("net/net.c"), "int x;\n").unwrap();
    std::fs::write(p.join("matrix.toml"), matrix("1.0")).unwrap();
    std::fs::copy(locks().join("old.lock"), p.join("matrix.lock")).unwrap();
    git(&["init", "-q"]);
    git(&["config", "user.email", "t@example.invalid"]);
    git(&["config", "user.name", "t"]);
    git(&["add", "."]);
    git(&["commit", "-qm", "old"]);
    std::fs::write(
        p.join("net/Containerfile"),
        "ARG DTK_IMAGE\nFROM ${DTK_IMAGE}\nRUN make\n",
    )
    .unwrap();
    // Untracked yet: still an input of the working tree.
    std::fs::write(p.join("net/net.h"), "int y;\n").unwrap();
    std::fs::remove_file(p.join("net/net.c")).unwrap();
    std::fs::write(p.join("matrix.toml"), matrix("1.1")).unwrap();
    std::fs::copy(locks().join("new.lock"), p.join("matrix.lock")).unwrap();

    let out = diff(&["git:HEAD", "--format", "json"], p).stdout();
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let net = v["drivers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["driver"] == "net-kmod")
        .unwrap();
    let image = net["images"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["reason"] == "inputs-changed")
        .unwrap();
    assert_eq!(
        image["inputs"],
        serde_json::json!([
            {"kind": "build-arg", "name": "VERSION", "old": "1.0", "new": "1.1"},
            {"kind": "file", "path": "Containerfile", "change": "modified"},
            {"kind": "file", "path": "net.c", "change": "removed"},
            {"kind": "file", "path": "net.h", "change": "added"},
        ]),
        "{image}"
    );
    // The image rebuilt with the same inputs says nothing more.
    assert!(
        net["images"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|i| i["reason"] != "inputs-changed")
            .all(|i| i.get("inputs").is_none())
    );

    diff(&["git:HEAD"], p)
        .stdout_contains("inputs changed: VERSION 1.0 → 1.1, ~Containerfile, -net.c, +net.h")
        .run();
    diff(&["git:HEAD", "--format", "markdown"], p)
        .stdout_contains(
            "inputs changed: `VERSION` `1.0` → `1.1`, ~`Containerfile`, -`net.c`, +`net.h`",
        )
        .run();
}
