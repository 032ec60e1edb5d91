//! A DTK stand-in built with real buildah and pushed to the shared registry, and a `Project`
//! (a matrix, driver contexts and a lock with `[[release]]` entries in a temporary directory)
//! that runs the real binary `--offline` with a counting buildah shim.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock};

use super::{Cmd, buildah_env, in_dir, registry};

/// The two kernels the stub releases carry.
pub const K1: &str = "5.14.0-284.52.1.el9_2.x86_64";
pub const K2: &str = "5.14.0-427.18.1.el9_4.x86_64";

/// Runs a helper program (buildah, skopeo, git) in buildah's test environment, stdin closed;
/// panics showing both streams unless it succeeds. Its stdout, trimmed.
pub fn run_ok(cmd: &mut Command) -> String {
    let out = buildah_env(cmd)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A DTK-like image for `kernel`, pushed to the shared registry: a static busybox as `/bin/sh`
/// and `/etc/driver-toolkit-release.json`. Returns `host/test/dtk@sha256:...`; built once per
/// kernel and test process.
pub fn dtk(kernel: &str) -> String {
    static DTKS: OnceLock<Mutex<HashMap<String, String>>> = OnceLock::new();
    let mut dtks = DTKS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if let Some(r) = dtks.get(kernel) {
        return r.clone();
    }
    let reg = registry().addr();
    let busybox = ["/bin/busybox", "/usr/bin/busybox"]
        .into_iter()
        .find(|p| Path::new(p).is_file())
        .expect("a static busybox (apt-get install busybox-static)");
    let dir = tempfile::tempdir().unwrap();
    let release = format!(
        r#"{{"KERNEL_VERSION": "{kernel}", "RT_KERNEL_VERSION": "", "RHEL_VERSION": "9.2"}}"#
    );
    std::fs::write(dir.path().join("driver-toolkit-release.json"), release).unwrap();
    let ctr = run_ok(Command::new("buildah").args(["from", "scratch"]));
    let copy = |src: &Path, dest: &str| {
        run_ok(
            Command::new("buildah")
                .arg("copy")
                .arg(&ctr)
                .arg(src)
                .arg(dest),
        );
    };
    copy(Path::new(busybox), "/bin/busybox");
    copy(
        &dir.path().join("driver-toolkit-release.json"),
        "/etc/driver-toolkit-release.json",
    );
    run_ok(Command::new("buildah").args([
        "run",
        "--isolation",
        "chroot",
        &ctr,
        "--",
        "/bin/busybox",
        "--install",
        "-s",
        "/bin",
    ]));
    let tag = format!("{reg}/test/dtk:{kernel}");
    run_ok(Command::new("buildah").args(["commit", "--rm", "--timestamp", "0", &ctr, &tag]));
    let digestfile = dir.path().join("digest");
    run_ok(
        Command::new("buildah")
            .args(["push", "--tls-verify=false", "--digestfile"])
            .arg(&digestfile)
            .arg(&tag),
    );
    let digest = std::fs::read_to_string(&digestfile).unwrap();
    let r = format!("{reg}/test/dtk@{}", digest.trim());
    dtks.insert(kernel.to_string(), r.clone());
    r
}

/// `<dir>/<kernel>/hello.ko` for each kernel: a module whose `vermagic` names that kernel.
pub fn fake_modules<'k>(dir: &Path, kernels: impl IntoIterator<Item = &'k str>) {
    for k in kernels {
        let dir = dir.join(k);
        std::fs::create_dir_all(&dir).unwrap();
        let ko = driver_matrix_sandbox::kmod::fake_module("hello", k);
        std::fs::write(dir.join("hello.ko"), ko).unwrap();
    }
}

/// A driver context whose image is only its modules: `<ctx>/<kernel>/hello.ko` per kernel,
/// and a `FROM scratch` Containerfile that copies the build's kernel's to
/// `/opt/lib/modules/<kernel>/`.
pub fn scratch_module_context(ctx: &Path, kernels: &[&str]) {
    fake_modules(ctx, kernels.iter().copied());
    std::fs::write(
        ctx.join("Containerfile"),
        "FROM scratch\nARG KERNEL_VERSION\n\
         COPY ${KERNEL_VERSION}/hello.ko /opt/lib/modules/${KERNEL_VERSION}/hello.ko\n",
    )
    .unwrap();
}

/// A fake (never contacted) payload reference for `version`.
fn payload(version: &str) -> String {
    let hex: String = format!("{:0>64}", version.replace('.', ""));
    format!("quay.io/openshift-release-dev/ocp-release@sha256:{hex}")
}

/// A driver of a test matrix.
pub struct Driver {
    pub name: &'static str,
    /// A RUN line for its Containerfile.
    pub run: &'static str,
}

impl Driver {
    pub fn ok(name: &'static str) -> Driver {
        Driver {
            name,
            run: "echo \"$DRIVER_NAME for $KERNEL_FULL_VERSION\" > /driver.txt",
        }
    }

    pub fn failing(name: &'static str) -> Driver {
        Driver {
            name,
            run: "echo compiling && echo 'hello.c:1: error: this driver does not build' && false",
        }
    }
}

/// A matrix in a temporary directory: releases 4.14.1-3 share kernel K1, 4.15.1 has K2.
pub struct Project {
    pub dir: tempfile::TempDir,
}

impl Project {
    pub fn new(ns: &str, drivers: &[Driver]) -> Project {
        let releases = [
            ("4.14.1", K1),
            ("4.14.2", K1),
            ("4.14.3", K1),
            ("4.15.1", K2),
        ];
        Project::with_releases(ns, drivers, &releases)
    }

    /// A project over the given (version, kernel) releases; kernels other than K1 and K2 get
    /// K1's DTK (the build never looks inside).
    pub fn with_releases(ns: &str, drivers: &[Driver], releases: &[(&str, &str)]) -> Project {
        let dir = tempfile::tempdir().unwrap();
        let reg = registry().addr();
        let p = Project { dir };
        let versions: Vec<String> = releases.iter().map(|(v, _)| format!("\"{v}\"")).collect();
        let mut matrix = format!(
            "[openshift]\nreleases = [{}]\n\n[registries.\"{reg}\"]\ninsecure = true\n",
            versions.join(", ")
        );
        for d in drivers {
            matrix.push_str(&format!(
                "\n[[driver]]\nname = \"{n}\"\ncontext = \"drivers/{n}\"\nimage = \"{reg}/{ns}/{n}\"\n\
                 build-args = {{ DRIVER_NAME = \"{n}\" }}\n",
                n = d.name
            ));
            let ctx = p.path().join("drivers").join(d.name);
            std::fs::create_dir_all(ctx.join("src")).unwrap();
            // The module `build` reads back before it records an image: one per kernel.
            fake_modules(&ctx.join("modules"), releases.iter().map(|&(_, k)| k));
            std::fs::write(
                ctx.join("Containerfile"),
                format!(
                    "ARG DTK_IMAGE\nFROM ${{DTK_IMAGE}}\nARG KERNEL_FULL_VERSION\nARG DRIVER_NAME\n\
                     COPY src /src\n\
                     COPY modules/${{KERNEL_FULL_VERSION}}/ /opt/lib/modules/${{KERNEL_FULL_VERSION}}/\n\
                     RUN {}\n",
                    d.run
                ),
            )
            .unwrap();
            std::fs::write(ctx.join("src/hello.c"), "int main(void) { return 0; }\n").unwrap();
        }
        std::fs::write(p.path().join("matrix.toml"), matrix).unwrap();
        let mut lock = String::from(
            "# This file is @generated by driver-matrix. Do not edit it by hand.\nversion = 1\n",
        );
        for &(v, k) in releases {
            let stub = if k == K2 { K2 } else { K1 };
            lock.push_str(&format!(
                "\n[[release]]\nversion = \"{v}\"\narch = \"x86_64\"\npayload = \"{}\"\n\
                 dtk = \"{}\"\nkernel = \"{k}\"\nrhel = \"9.2\"\n",
                payload(v),
                dtk(stub)
            ));
        }
        std::fs::write(p.lock_path(), lock).unwrap();
        std::fs::create_dir_all(p.path().join("bin")).unwrap();
        let shim = p.path().join("bin/buildah");
        let real = which("buildah");
        std::fs::write(
            &shim,
            format!(
                "#!/bin/sh\necho \"$1\" >> '{}'\nexec '{}' \"$@\"\n",
                p.calls_path().display(),
                real.display()
            ),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&shim, std::fs::Permissions::from_mode(0o755)).unwrap();
        p
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn lock_path(&self) -> PathBuf {
        self.path().join("matrix.lock")
    }

    pub fn lock(&self) -> String {
        std::fs::read_to_string(self.lock_path()).unwrap()
    }

    fn calls_path(&self) -> PathBuf {
        self.path().join("buildah-calls")
    }

    /// The buildah subcommands run so far (`build`, `push`), in order.
    pub fn calls(&self) -> Vec<String> {
        std::fs::read_to_string(self.calls_path())
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    pub fn builds(&self) -> usize {
        self.calls().iter().filter(|c| *c == "build").count()
    }

    pub fn reset_calls(&self) {
        let _ = std::fs::remove_file(self.calls_path());
    }

    /// `driver-matrix --offline …` in the project (see [`in_dir`]), with the buildah shim
    /// first in PATH and without `SOURCE_DATE_EPOCH`.
    pub fn cmd(&self) -> Cmd {
        self.online().arg("--offline")
    }

    /// [`Project::cmd`] without `--offline` (for `verify`, `collect` and the like).
    pub fn online(&self) -> Cmd {
        let path = format!(
            "{}:{}",
            self.path().join("bin").display(),
            std::env::var("PATH").unwrap_or_default()
        );
        in_dir(self.path())
            .env("PATH", path)
            .env_remove("SOURCE_DATE_EPOCH")
    }

    pub fn write(&self, rel: &str, text: &str) {
        std::fs::write(self.path().join(rel), text).unwrap();
    }
}

pub fn which(program: &str) -> PathBuf {
    std::env::var_os("PATH")
        .and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|d| d.join(program))
                .find(|p| p.is_file())
        })
        .unwrap_or_else(|| panic!("`{program}` is not on PATH"))
}

/// `skopeo inspect` of `image` (no TLS: the shared registry is on loopback).
pub fn inspect(image: &str) -> serde_json::Value {
    let out = Command::new("skopeo")
        .args(["inspect", "--tls-verify=false"])
        .arg(format!("docker://{image}"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "skopeo inspect {image}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}
