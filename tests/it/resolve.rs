//! `driver-matrix resolve` against a real registry: media types, manifest lists, layer
//! layouts, compression, RT kernel forms, and broken payloads.

use crate::support::*;
use driver_matrix_sandbox::{Compression, DtkSpec, Flavor, OsImage, PayloadSpec};

#[test]
fn docker_and_oci_payloads_resolve_into_the_lock() {
    let w = World::new("media");
    let mut old = DtkSpec::new(K_414);
    old.rt_kernel = Some(RT_414.into());
    w.release("4.14.12", &old, Flavor::Docker);
    let mut new = DtkSpec::new(K_416);
    new.rt_kernel = Some(RT_416.into());
    new.rhel = "9.4".into();
    w.release("4.16.3", &new, Flavor::Oci);
    w.matrix(r#"releases = ["4.16.3", "4.14.12"]"#, "");
    w.cmd().args(["resolve"]).run();
    insta::assert_snapshot!(w.stable_lock());
    // Nothing changed: the lock is not rewritten and `--locked` agrees.
    let before = std::fs::metadata(w.path("matrix.lock"))
        .unwrap()
        .modified()
        .unwrap();
    w.cmd().args(["resolve"]).run();
    w.cmd().args(["resolve", "--locked"]).run();
    let after = std::fs::metadata(w.path("matrix.lock"))
        .unwrap()
        .modified()
        .unwrap();
    assert_eq!(before, after);
}

#[test]
fn multi_payload_with_a_dtk_list_picks_each_arch() {
    let w = World::new("multi");
    let mut x86 = DtkSpec::new(K_416);
    x86.rhel = "9.4".into();
    let arm = DtkSpec::new("5.14.0-427.18.1.el9_4.aarch64");
    let (_, x86_dtk) = w.dtk(&x86, "amd64", Flavor::Docker);
    let (_, arm_dtk) = w.dtk(&arm, "arm64", Flavor::Docker);
    let dtk_list = w
        .pusher
        .list(
            &w.repo("dtk"),
            None,
            &[(&x86_dtk, "amd64"), (&arm_dtk, "arm64")],
            Flavor::Docker,
        )
        .unwrap();
    let dtk_ref = format!("{}/{}@{}", w.addr, w.repo("dtk"), dtk_list.digest);
    let mut spec = PayloadSpec::new("4.16.3", Some(dtk_ref));
    spec.multi = true;
    let repo = w.repo("release");
    let px = spec
        .push(&w.pusher, &repo, None, "amd64", Flavor::Docker)
        .unwrap();
    let pa = spec
        .push(&w.pusher, &repo, None, "arm64", Flavor::Docker)
        .unwrap();
    for tag in ["4.16.3-x86_64", "4.16.3-aarch64"] {
        w.pusher
            .list(
                &repo,
                Some(tag),
                &[(&px, "amd64"), (&pa, "arm64")],
                Flavor::Docker,
            )
            .unwrap();
    }
    w.matrix(
        "releases = [\"4.16.3\"]\narch = [\"x86_64\", \"aarch64\"]",
        "",
    );
    w.cmd().args(["resolve"]).run();
    let lock = w.lock();
    // Each arch gets its own DTK child and kernel; the payload is the list.
    assert!(
        lock.contains(&format!(
            "dtk = \"{}/{}@{}\"",
            w.addr,
            w.repo("dtk"),
            x86_dtk.digest
        )),
        "{lock}"
    );
    assert!(
        lock.contains(&format!(
            "dtk = \"{}/{}@{}\"",
            w.addr,
            w.repo("dtk"),
            arm_dtk.digest
        )),
        "{lock}"
    );
    assert!(
        lock.contains("kernel = \"5.14.0-427.18.1.el9_4.aarch64\""),
        "{lock}"
    );
    insta::assert_snapshot!(w.stable_lock());
}

#[test]
fn release_file_in_an_earlier_layer_and_zstd_layers() {
    let w = World::new("layers");
    let mut squashed = DtkSpec::new(K_414);
    squashed.json_in_earlier_layer = true;
    w.release("4.14.12", &squashed, Flavor::Oci);
    let mut z = DtkSpec::new(K_416);
    z.compression = Compression::Zstd;
    let (dtk_ref, _) = w.dtk(&z, "amd64", Flavor::Oci);
    let mut p = PayloadSpec::new("4.16.3", Some(dtk_ref));
    p.compression = Compression::Zstd;
    w.payload(&p, "x86_64", "amd64", Flavor::Oci);
    w.matrix(r#"releases = ["4.14.12", "4.16.3"]"#, "");
    w.cmd().args(["resolve"]).run();
    insta::assert_snapshot!(w.stable_lock());
}

#[test]
fn rt_kernel_forms() {
    let w = World::new("rt");
    let cases = [
        ("4.14.1", Some(RT_414)),
        ("4.16.1", Some(RT_416)),
        ("4.12.1", None),
        ("4.16.2", Some("package kernel-rt-core is not installed")),
    ];
    for (i, (version, rt)) in cases.iter().enumerate() {
        let mut d = DtkSpec::new(&format!("5.14.0-{i}.1.el9_2.x86_64"));
        d.rt_kernel = rt.map(str::to_string);
        w.release(version, &d, Flavor::Docker);
    }
    w.matrix(r#"releases = ["4.14.1", "4.16.1", "4.12.1", "4.16.2"]"#, "");
    w.cmd().args(["resolve"]).run();
    let lock = w.lock();
    assert_eq!(lock.matches("rt-kernel = ").count(), 2, "{lock}");
    insta::assert_snapshot!(w.stable_lock());
}

#[test]
fn a_garbage_kernel_is_rejected() {
    let w = World::new("garbage");
    let mut d = DtkSpec::new(K_414);
    d.json = Some(
        r#"{"KERNEL_VERSION": "package kernel-core is not installed", "RHEL_VERSION": "9.2"}"#
            .into(),
    );
    w.release("4.14.12", &d, Flavor::Docker);
    w.matrix(r#"releases = ["4.14.12"]"#, "");
    let err = w.cmd().args(["resolve"]).expect_exit(1).stderr();
    assert!(
        says(&err, "4.14.12 (x86_64)") && says(&err, "KERNEL_VERSION"),
        "{err}"
    );
    assert!(!w.path("matrix.lock").exists());
}

#[test]
fn a_payload_without_driver_toolkit_names_the_release() {
    let w = World::new("nodtk");
    w.payload(
        &PayloadSpec::new("4.5.1", None),
        "x86_64",
        "amd64",
        Flavor::Docker,
    );
    w.matrix(r#"releases = ["4.5.1"]"#, "");
    let err = w.cmd().args(["resolve"]).expect_exit(1).stderr();
    assert!(
        says(&err, "release 4.5.1 (x86_64)") && says(&err, "driver-toolkit"),
        "{err}"
    );
}

#[test]
fn a_payload_of_the_wrong_kind_is_rejected() {
    let w = World::new("kind");
    let (dtk, _) = w.dtk(&DtkSpec::new(K_414), "amd64", Flavor::Docker);
    let mut p = PayloadSpec::new("4.14.12", Some(dtk));
    p.kind = "ConfigMap".into();
    w.payload(&p, "x86_64", "amd64", Flavor::Docker);
    w.matrix(r#"releases = ["4.14.12"]"#, "");
    w.cmd()
        .args(["resolve"])
        .expect_exit(1)
        .stderr_says("expected an `ImageStream`")
        .run();
}

#[test]
fn a_missing_tag_is_a_matrix_error() {
    let w = World::new("missing");
    w.matrix(r#"releases = ["4.14.99"]"#, "");
    let out = w.cmd().args(["resolve"]).expect_exit(2).run();
    // The release does not exist: a retry cannot help, so not 4.
    let err = out.stderr.clone();
    assert!(
        says(&err, "`4.14.99` (x86_64)") && says(&err, "/release` has no tag `4.14.99-x86_64`"),
        "{err}"
    );
}

/// Releases have shipped a DTK whose kernel is not the one their nodes boot. `resolve` reads
/// the nodes' kernel from the payload's OS image, records it, and warns; `verify` fails on it.
#[test]
fn a_dtk_whose_kernel_the_nodes_do_not_boot_is_reported() {
    const NODE_NEWER: &str = "5.14.0-284.54.1.el9_2.x86_64";
    let w = World::new("nodekernel");
    let (dtk, dtk_pushed) = w.dtk(&DtkSpec::new(K_414), "amd64", Flavor::Docker);
    let mut rpm_label = OsImage::new(K_414);
    rpm_label.label = "com.coreos.rpm.kernel";
    for (version, os) in [
        ("4.14.12", OsImage::new(K_414)),
        ("4.14.13", OsImage::new(NODE_NEWER)),
        ("4.14.14", rpm_label),
    ] {
        let mut spec = PayloadSpec::new(version, Some(dtk.clone()));
        spec.os = Some(w.os(&os, "amd64"));
        w.payload(&spec, "x86_64", "amd64", Flavor::Docker);
    }
    w.matrix(r#"releases = ["4.14.12", "4.14.13", "4.14.14"]"#, "");
    let err = w.cmd().args(["resolve"]).stderr();
    assert!(
        says(
            &err,
            &format!(
                "release 4.14.13 (x86_64): its Driver Toolkit carries kernel `{K_414}`, but its nodes boot `{NODE_NEWER}`"
            )
        ),
        "{err}"
    );
    assert!(!err.contains("4.14.12 (x86_64): its"), "{err}");
    assert!(!err.contains("4.14.14 (x86_64): its"), "{err}");
    // No kernel is broken across lines: a search of the log finds both.
    for kernel in [K_414, NODE_NEWER] {
        assert!(err.lines().any(|l| l.contains(kernel)), "{kernel}:\n{err}");
    }
    // Elsewhere, one line with the count, not the whole warning again.
    for args in [&["plan"][..], &["export", "github-matrix"]] {
        let err = w.cmd().args(args).stderr();
        let lines: Vec<&str> = err.lines().filter(|l| l.contains("4.14.13")).collect();
        assert_eq!(
            lines,
            [
                "warning: 1 release's Driver Toolkit carries another kernel than its nodes boot (4.14.13 (x86_64)); `driver-matrix resolve` shows each"
            ],
            "{args:?}: {err}"
        );
        assert!(!err.contains("but its nodes boot"), "{args:?}: {err}");
    }
    let lock = w.lock();
    assert_eq!(
        lock.matches(&format!("node-kernel = \"{K_414}\"")).count(),
        2,
        "{lock}"
    );
    assert_eq!(
        lock.matches(&format!("node-kernel = \"{NODE_NEWER}\""))
            .count(),
        1,
        "{lock}"
    );
    // From the cache (no lock), the same bytes.
    std::fs::remove_file(w.path("matrix.lock")).unwrap();
    w.cmd().args(["resolve"]).run();
    assert_eq!(w.lock(), lock);

    // `verify` fails on the release (with an image in the lock to verify), and passes once the
    // release is gone.
    let with_image = |lock: &str| {
        let image = format!(
            "{lock}\n[[image]]\ndriver = \"d\"\nkernel = \"{K_414}\"\narch = \"x86_64\"\ndtk = \"{dtk}\"\ninputs = \"{}\"\nimage = \"{}/{}:x\"\ndigest = \"{}\"\nreleases = [\"4.14.12\"]\n",
            dtk_pushed.digest,
            w.addr,
            w.repo("dtk"),
            dtk_pushed.digest
        );
        std::fs::write(w.path("matrix.lock"), image).unwrap();
    };
    with_image(&lock);
    let out = w.cmd().args(["verify"]).expect_exit(1).run();
    assert!(
        out.stdout.contains(&format!(
            "FAIL release 4.14.13 (x86_64): the DTK's kernel {K_414} is not the nodes' kernel {NODE_NEWER}"
        )),
        "{}",
        out.stdout
    );
    w.matrix(r#"releases = ["4.14.12", "4.14.14"]"#, "");
    w.cmd().args(["resolve"]).run();
    with_image(&w.lock());
    w.cmd().args(["verify"]).run();
}

/// Where the OS image's labels carry the real-time kernel (`machine-os-content`), it is
/// locked as `node-rt-kernel` and checked against the DTK's `rt-kernel` as the default
/// kernel is: `resolve` warns, `verify` fails.
#[test]
fn a_dtk_whose_real_time_kernel_its_nodes_do_not_boot_is_reported() {
    const RT: &str = "5.14.0-284.52.1.rt14.337.el9_2.x86_64";
    const RT_NEWER: &str = "5.14.0-284.54.1.rt14.339.el9_2.x86_64";
    let w = World::new("nodertkernel");
    let mut spec = DtkSpec::new(K_414);
    spec.rt_kernel = Some(RT.into());
    let (dtk, dtk_pushed) = w.dtk(&spec, "amd64", Flavor::Docker);
    for (version, rt) in [("4.14.12", RT), ("4.14.13", RT_NEWER)] {
        let mut os = OsImage::new(K_414);
        os.label = "com.coreos.rpm.kernel";
        os.rt_kernel = Some(rt.into());
        let mut spec = PayloadSpec::new(version, Some(dtk.clone()));
        spec.os = Some(w.os(&os, "amd64"));
        w.payload(&spec, "x86_64", "amd64", Flavor::Docker);
    }
    w.matrix(r#"releases = ["4.14.12", "4.14.13"]"#, "");
    let err = w.cmd().args(["resolve"]).stderr();
    assert!(
        says(
            &err,
            &format!(
                "release 4.14.13 (x86_64): its Driver Toolkit carries real-time kernel `{RT}`, but its real-time nodes boot `{RT_NEWER}`"
            )
        ),
        "{err}"
    );
    assert!(!err.contains("4.14.12 (x86_64): its"), "{err}");
    let lock = w.lock();
    assert!(
        lock.contains(&format!("node-rt-kernel = \"{RT}\"")),
        "{lock}"
    );
    assert!(
        lock.contains(&format!("node-rt-kernel = \"{RT_NEWER}\"")),
        "{lock}"
    );
    let image = format!(
        "{lock}\n[[image]]\ndriver = \"d\"\nkernel = \"{K_414}\"\narch = \"x86_64\"\ndtk = \"{dtk}\"\ninputs = \"{}\"\nimage = \"{}/{}:x\"\ndigest = \"{}\"\nreleases = [\"4.14.12\", \"4.14.13\"]\n",
        dtk_pushed.digest,
        w.addr,
        w.repo("dtk"),
        dtk_pushed.digest
    );
    std::fs::write(w.path("matrix.lock"), image).unwrap();
    w.cmd()
        .args(["verify"])
        .expect_exit(1)
        .stdout_contains(format!(
            "FAIL release 4.14.13 (x86_64): the DTK's real-time kernel {RT} is not the real-time nodes' kernel {RT_NEWER}"
        ))
        .run();
}

/// A dual-stream payload resolves to an entry per stream, each with its DTK, kernel and nodes'
/// kernel, online, from the cache and from the lock alike.
#[test]
fn a_dual_stream_release_has_an_entry_per_stream() {
    const K10: &str = "6.12.0-55.9.1.el10_0.x86_64";
    const NODE10: &str = "6.12.0-55.11.1.el10_0.x86_64";
    let w = World::new("dualresolve");
    let (dtk, _) = w.dtk(&DtkSpec::new(K_416), "amd64", Flavor::Docker);
    let mut rhel10 = DtkSpec::new(K10);
    rhel10.rhel = "10.0".into();
    let (dtk10, _) = w.dtk(&rhel10, "amd64", Flavor::Docker);
    let mut spec = PayloadSpec::new("4.19.1", Some(dtk.clone()));
    spec.os = Some(w.os(&OsImage::new(K_416), "amd64"));
    spec.dtk10 = Some(dtk10.clone());
    spec.os10 = Some(w.os(&OsImage::new(NODE10), "amd64"));
    w.payload(&spec, "x86_64", "amd64", Flavor::Docker);
    w.matrix(r#"releases = ["4.19.1"]"#, "");
    let out = w.cmd().args(["resolve"]).run();
    assert!(
        says(
            &out.stderr,
            &format!(
                "release 4.19.1 (x86_64, rhel-10): its Driver Toolkit carries kernel `{K10}`, but its nodes boot `{NODE10}`"
            )
        ),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("4.19.1 (x86_64):"), "{}", out.stderr);
    let lock = w.lock();
    let rhel10_entry = format!(
        "stream = \"rhel-10\"\npayload = \"{}/{}@",
        w.addr,
        w.repo("release")
    );
    assert!(lock.contains(&rhel10_entry), "{lock}");
    assert!(
        lock.contains(&format!(
            "dtk = \"{dtk10}\"\nkernel = \"{K10}\"\nnode-kernel = \"{NODE10}\"\nrhel = \"10.0\""
        )),
        "{lock}"
    );
    assert!(
        lock.contains(&format!(
            "dtk = \"{dtk}\"\nkernel = \"{K_416}\"\nnode-kernel = \"{K_416}\""
        )),
        "{lock}"
    );
    w.cmd().args(["--offline", "resolve", "--locked"]).run();
    // From the cache alone, online and offline: the same bytes.
    for offline in [false, true] {
        std::fs::remove_file(w.path("matrix.lock")).unwrap();
        let args: &[&str] = if offline {
            &["--offline", "resolve"]
        } else {
            &["resolve"]
        };
        w.cmd().args(args).run();
        assert_eq!(w.lock(), lock, "offline: {offline}");
    }
}
