//! `driver-matrix init DIR`: the files it writes (snapshotted), that the matrix loads without
//! a problem and plans once its releases are resolved, and that it never overwrites a file.

use crate::support::{Cmd, dm};
use std::path::{Path, PathBuf};

/// `driver-matrix --color never init DIR`.
fn init(dir: &Path) -> Cmd {
    dm().args(["--color", "never", "init"]).arg(dir)
}

/// A module source directory named `name` holding `files`.
fn sources(parent: &Path, name: &str, files: &[(&str, &str)]) -> PathBuf {
    let dir = parent.join(name);
    std::fs::create_dir(&dir).unwrap();
    for (file, text) in files {
        std::fs::write(dir.join(file), text).unwrap();
    }
    dir
}

#[test]
fn init_scaffolds_a_matrix_that_loads_and_plans() {
    let tmp = tempfile::tempdir().unwrap();
    let hello =
        std::fs::read_to_string(crate::support::repo().join("tests/matrices/good/hello/hello.c"))
            .unwrap();
    let dir = sources(
        tmp.path(),
        "Hello_KMod",
        &[
            ("Kbuild", "obj-m := hello.o\nobj-m += hello_extra.o\n"),
            ("hello.c", &hello),
        ],
    );
    init(&dir).run();
    let matrix = std::fs::read_to_string(dir.join("matrix.toml")).unwrap();
    let containerfile = std::fs::read_to_string(dir.join("Containerfile")).unwrap();
    insta::assert_snapshot!("init_matrix_toml", matrix);
    let ignore = std::fs::read_to_string(dir.join(".containerignore")).unwrap();
    insta::assert_snapshot!("init_containerfile", containerfile);
    insta::assert_snapshot!("init_containerignore", ignore);
    assert!(matrix.contains("name = \"hello_kmod\""));
    assert!(containerfile.contains("cp hello.ko hello_extra.ko \"/opt/lib/modules/"));
    // One file for every route: driver-matrix's, KMM's and a BuildConfig's build args.
    for arg in [
        "ARG DTK_AUTO\n",
        "ARG DTK=${DTK_AUTO}\n",
        "ARG DTK_IMAGE=${DTK}\n",
        "ARG KVER\n",
        "ARG KERNEL_VERSION=${KVER}\n",
        "ARG KERNEL_FULL_VERSION=${KERNEL_VERSION}\n",
    ] {
        assert!(containerfile.contains(arg), "{arg}");
    }
    // KMM's link to the node's in-tree modules, made before depmod.
    let link = containerfile.find("/host\"").unwrap();
    assert!(link < containerfile.find("depmod -b /opt").unwrap());
    // kmod only when the base lacks it.
    assert!(containerfile.contains("command -v modprobe >/dev/null 2>&1 ||"));
    // The ignore file leaves out driver-matrix's own files.
    for own in [
        "matrix.toml",
        "matrix.lock",
        "matrix.lock.lock",
        ".matrix.lock.*",
    ] {
        assert!(ignore.lines().any(|l| l == own), "{own}");
    }

    let loaded = driver_matrix::matrix::load(&dir.join("matrix.toml")).unwrap();
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    assert_eq!(loaded.matrix.drivers[0].modules, ["hello", "hello_extra"]);
    assert_eq!(loaded.matrix.drivers[0].containerfile, "Containerfile");

    // Once `resolve` has recorded a release of the channel, `plan` has a job for it.
    let lock =
        driver_matrix::lock::read(&crate::support::repo().join("tests/matrices/kmm/matrix.lock"))
            .unwrap();
    let resolved = driver_matrix::lock::Lock {
        releases: lock
            .releases
            .into_iter()
            .filter(|r| r.version.to_string() == "4.16.4")
            .collect(),
        images: Vec::new(),
    };
    std::fs::write(
        dir.join("matrix.lock"),
        driver_matrix::lock::render(&resolved),
    )
    .unwrap();
    let plan = dm()
        .args(["--offline", "--color", "never", "-m"])
        .arg(dir.join("matrix.toml"))
        .args(["plan", "--format", "json"])
        .run()
        .json();
    let text = plan.to_string();
    assert!(
        text.contains("quay.io/example/hello_kmod:5.14.0-427.28.1.el9_4.x86_64"),
        "{text}"
    );
}

#[test]
fn init_reads_obj_m_from_a_makefile() {
    let tmp = tempfile::tempdir().unwrap();
    let makefile = "ifneq ($(KERNELRELEASE),)\nobj-m += acme_net.o \\\n\tacme_core.o\nelse\nall:\n\t$(MAKE) -C /lib/modules/$(shell uname -r)/build M=$(PWD) modules\nendif\n";
    let dir = sources(tmp.path(), "acme", &[("Makefile", makefile)]);
    init(&dir).run();
    let loaded = driver_matrix::matrix::load(&dir.join("matrix.toml")).unwrap();
    assert_eq!(loaded.matrix.drivers[0].modules, ["acme_net", "acme_core"]);
}

#[test]
fn init_keeps_an_ignore_file_the_directory_has() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = sources(
        tmp.path(),
        "kept",
        &[
            ("Kbuild", "obj-m := kept.o\n"),
            (".dockerignore", "*.bin\n"),
        ],
    );
    init(&dir)
        .stderr_contains("kept the existing `.dockerignore`")
        .run();
    assert!(
        !dir.join(".containerignore").exists(),
        "a .containerignore would silently replace the user's .dockerignore"
    );
    assert_eq!(
        std::fs::read_to_string(dir.join(".dockerignore")).unwrap(),
        "*.bin\n"
    );
}

#[test]
fn init_never_overwrites_and_needs_a_module() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = sources(
        tmp.path(),
        "mine",
        &[
            ("Kbuild", "obj-m := mine.o\n"),
            ("Containerfile", "FROM scratch\n"),
        ],
    );
    init(&dir)
        .expect_exit(2)
        .stderr_contains("already exists")
        .run();
    assert_eq!(
        std::fs::read_to_string(dir.join("Containerfile")).unwrap(),
        "FROM scratch\n"
    );
    assert!(
        !dir.join("matrix.toml").exists(),
        "nothing is written when one file exists"
    );

    let empty = sources(tmp.path(), "empty", &[("hello.c", "")]);
    init(&empty)
        .expect_exit(2)
        .stderr_contains("has no Kbuild or Makefile")
        .run();

    let no_module = sources(tmp.path(), "nomod", &[("Kbuild", "obj-y := builtin.o\n")]);
    init(&no_module)
        .expect_exit(2)
        .stderr_contains("declares no module in `obj-m`")
        .run();
    assert!(!no_module.join("matrix.toml").exists());

    // A second run over its own output refuses too.
    let twice = sources(tmp.path(), "twice", &[("Kbuild", "obj-m := twice.o\n")]);
    init(&twice).run();
    let first = std::fs::read(twice.join("matrix.toml")).unwrap();
    init(&twice).expect_exit(2).run();
    assert_eq!(std::fs::read(twice.join("matrix.toml")).unwrap(), first);
}
