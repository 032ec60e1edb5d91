//! A real module, as a vendor would take it: the source of Debian's `acpi-call-dkms` (fetched
//! by `scripts/install-deps.sh` into `.sandbox/dkms/`), `driver-matrix init` on it, a few edits
//! a vendor makes (the image repository, the sandbox's releases and base image), then `build`
//! on the sandbox's DTK stand-ins (Debian's 6.1 and 6.12 kernel headers, the sandbox of
//! `demo_e2e`). The layout init wrote must stay fresh: a second `build` does nothing, `plan`
//! says fresh, `build --locked` agrees, a comment in the matrix changes nothing, and only an
//! edited source file makes the jobs stale.

use std::path::{Path, PathBuf};

use driver_matrix_sandbox::world;

use crate::support::{Out, in_dir, repo, says};

/// The unpacked package's module source, or a failure that says how to get it.
fn acpi_call_source() -> PathBuf {
    let src = repo().join(".sandbox/dkms/usr/src");
    std::fs::read_dir(&src)
        .ok()
        .and_then(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.path())
                .find(|p| {
                    p.file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with("acpi-call-"))
                })
        })
        .unwrap_or_else(|| {
            panic!(
                "no acpi-call-dkms source under {}: run scripts/install-deps.sh (it downloads the Debian package)",
                src.display()
            )
        })
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

/// `driver-matrix ARGS` in `dir` (its cache inside it, as a vendor's checkout may have it),
/// asserting success.
fn ok(dir: &Path, args: &[&str]) -> Out {
    in_dir(dir).env_remove("SOURCE_DATE_EPOCH").args(args).run()
}

/// The states of `plan --format json`, one per job.
fn states(dir: &Path) -> Vec<String> {
    let out = ok(dir, &["plan", "--format", "json"]);
    let plan = out.json();
    plan["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["state"].as_str().unwrap().to_string())
        .collect()
}

/// `buildah build` of `dir` as another route runs it: only `args`, the directory's own
/// `.containerignore`, no push. Returns the files under `opt/lib/modules/` of the final stage.
fn route_build(dir: &Path, registries_conf: &Path, args: &[(&str, &str)]) -> Vec<String> {
    let out_dir = tempfile::tempdir().unwrap();
    let iid = out_dir.path().join("iid");
    let rootfs = out_dir.path().join("rootfs");
    let mut cmd = std::process::Command::new("buildah");
    crate::support::buildah_env(&mut cmd)
        .env("CONTAINERS_REGISTRIES_CONF", registries_conf)
        .args(["build", "--iidfile"])
        .arg(&iid)
        .arg("--output")
        .arg(format!("type=local,dest={}", rootfs.display()));
    for (k, v) in args {
        cmd.arg("--build-arg").arg(format!("{k}={v}"));
    }
    let out = cmd.arg(dir).output().unwrap();
    if let Ok(id) = std::fs::read_to_string(&iid) {
        let _ = std::process::Command::new("buildah")
            .args(["rmi", id.trim()])
            .output();
    }
    assert!(
        out.status.success(),
        "buildah build {args:?}:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let modules = rootfs.join("opt/lib/modules");
    let mut files: Vec<String> = walkdir::WalkDir::new(&modules)
        .min_depth(1)
        .into_iter()
        .filter_map(Result::ok)
        .map(|e| {
            e.path()
                .strip_prefix(&modules)
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    files.sort();
    files
}

#[test]
fn a_debian_dkms_module_goes_from_init_to_a_fresh_lock() {
    let source = acpi_call_source();
    let (_own, world) = crate::support::sandbox();
    let registry = world.registry.clone();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("acpi-call");
    copy_dir(&source, &dir);

    let init = ok(&dir, &["init", "."]);
    assert!(says(&init.stderr, "modules: acpi_call"), "{}", init.stderr);
    // What a vendor edits: the repository, the releases (two kernels: 6.1 and 6.12), and the
    // sandbox's base image (kmod, no package manager) and registry.
    let matrix = std::fs::read_to_string(dir.join("matrix.toml")).unwrap();
    let matrix = matrix
        .replace(
            "channels = [{ name = \"stable-4.16\", latest = 1 }]",
            "releases = [\"4.15.1\", \"4.15.2\", \"4.16.0\", \"4.16.1\"]",
        )
        .replace(
            "image = \"quay.io/example/acpi-call\"",
            &format!("image = \"{registry}/dkms-{}/acpi-call\"", std::process::id()),
        )
        .replace(
            "# build-args = { BASE_IMAGE = \"registry.access.redhat.com/ubi9/ubi-minimal:latest\" }",
            &format!("build-args = {{ BASE_IMAGE = \"{}\" }}", world.kmod_base_ref()),
        );
    assert!(
        matrix.contains("releases = [") && matrix.contains("build-args = {"),
        "{matrix}"
    );
    let matrix = format!(
        "{matrix}\n[registries.\"quay.io\"]\nmirror = \"{registry}\"\n\n[registries.\"{registry}\"]\ninsecure = true\n"
    );
    std::fs::write(dir.join("matrix.toml"), &matrix).unwrap();

    let t = std::time::Instant::now();
    let built = ok(&dir, &["build"]);
    eprintln!("2 builds in {:.0?}", t.elapsed());
    assert!(says(&built.stdout, "2 built"), "{}", built.stdout);
    let lock = std::fs::read_to_string(dir.join("matrix.lock")).unwrap();
    let kernels: Vec<String> = world.kernels();
    for k in kernels.iter().filter(|k| !k.contains("+rt")) {
        if world.releases.iter().any(|r| &r.kernel == k) {
            assert!(lock.contains(&format!("kernel = \"{k}\"")), "{k}:\n{lock}");
        }
    }
    assert_eq!(lock.matches("[[image]]").count(), 2, "{lock}");

    // Again: nothing to do, and the lock does not change by a byte.
    let again = ok(&dir, &["build"]);
    assert!(says(&again.stdout, "0 built"), "{}", again.stdout);
    assert!(says(&again.stdout, "2 fresh"), "{}", again.stdout);
    assert_eq!(
        std::fs::read_to_string(dir.join("matrix.lock")).unwrap(),
        lock
    );
    assert_eq!(states(&dir), ["fresh", "fresh"]);
    ok(&dir, &["build", "--locked"]);

    // A comment in the matrix is no input of any image.
    std::fs::write(dir.join("matrix.toml"), format!("# reviewed\n{matrix}")).unwrap();
    assert_eq!(states(&dir), ["fresh", "fresh"]);
    ok(&dir, &["build", "--locked"]);

    // A source file is.
    let c = dir.join("acpi_call.c");
    let text = std::fs::read_to_string(&c).unwrap();
    std::fs::write(&c, format!("{text}\n/* patched */\n")).unwrap();
    assert_eq!(states(&dir), ["stale", "stale"]);
    in_dir(&dir)
        .env_remove("SOURCE_DATE_EPOCH")
        .args(["build", "--locked"])
        .expect_exit(3)
        .run();

    // The same Containerfile, unchanged, as KMM's in-cluster build and an OpenShift
    // BuildConfig (the DTK's README) run it, each with its own build args only.
    let release = world
        .releases
        .iter()
        .find(|r| r.version == "4.16.0")
        .unwrap();
    let (dtk, kernel) = (release.dtk.as_str(), release.kernel.as_str());
    let conf = tmp.path().join("registries.conf");
    std::fs::write(&conf, world::registries_conf(&registry)).unwrap();
    let base = world.kmod_base_ref();
    let kmm = route_build(
        &dir,
        &conf,
        &[
            ("DTK_AUTO", dtk),
            ("KERNEL_FULL_VERSION", kernel),
            ("KERNEL_VERSION", kernel),
            ("MOD_NAME", "acpi-call"),
            ("MOD_NAMESPACE", "vendor"),
            ("BASE_IMAGE", &base),
        ],
    );
    let buildconfig = route_build(
        &dir,
        &conf,
        &[("DTK", dtk), ("KVER", kernel), ("BASE_IMAGE", &base)],
    );
    for files in [&kmm, &buildconfig] {
        assert!(
            files.contains(&format!("{kernel}/acpi_call.ko")),
            "{files:?}"
        );
        // KMM's link to the node's in-tree modules.
        assert!(files.contains(&format!("{kernel}/host")), "{files:?}");
        assert!(
            files.contains(&format!("{kernel}/modules.dep")),
            "{files:?}"
        );
    }
}
