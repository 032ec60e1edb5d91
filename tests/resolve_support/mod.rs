//! Test support for `tests/resolve*.rs`: a `World` is a namespace of its own in the shared
//! registry, a temporary project directory with a matrix, and a way to run the real binary
//! there, isolated from the machine's credentials and cache.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use driver_matrix_sandbox::{DtkSpec, Flavor, OsImage, PayloadSpec, Pushed, Pusher, Registry};

pub const K_414: &str = "5.14.0-284.52.1.el9_2.x86_64";
pub const RT_414: &str = "5.14.0-284.52.1.rt14.337.el9_2.x86_64";
pub const K_416: &str = "5.14.0-427.18.1.el9_4.x86_64";
pub const RT_416: &str = "5.14.0-427.18.1.el9_4.x86_64+rt";

pub struct World {
    pub addr: String,
    pub pusher: Pusher,
    /// This test's namespace in the registry.
    pub ns: String,
    pub dir: tempfile::TempDir,
}

impl World {
    pub fn new(name: &str) -> World {
        Self::on(Registry::shared().addr(), name, None)
    }

    /// A world on a registry of its own (e.g. one that requires auth).
    pub fn on(addr: &str, name: &str, auth: Option<(&str, &str)>) -> World {
        let mut pusher = Pusher::new(addr);
        if let Some((u, p)) = auth {
            pusher = pusher.with_basic(u, p);
        }
        World {
            addr: addr.to_string(),
            pusher,
            ns: format!("t{}-{name}", std::process::id()),
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub fn repo(&self, name: &str) -> String {
        format!("{}/{name}", self.ns)
    }

    /// Pushes a DTK; returns `host/ns/dtk@digest`.
    pub fn dtk(&self, spec: &DtkSpec, goarch: &str, flavor: Flavor) -> (String, Pushed) {
        let p = spec
            .push(&self.pusher, &self.repo("dtk"), goarch, flavor)
            .unwrap();
        (
            format!("{}/{}@{}", self.addr, self.repo("dtk"), p.digest),
            p,
        )
    }

    /// Pushes an RHCOS stand-in; returns `host/ns/rhcos@digest`.
    pub fn os(&self, spec: &OsImage, goarch: &str) -> String {
        let p = spec
            .push(&self.pusher, &self.repo("rhcos"), goarch, Flavor::Docker)
            .unwrap();
        format!("{}/{}@{}", self.addr, self.repo("rhcos"), p.digest)
    }

    /// Pushes a payload as `host/ns/release:<version>-<arch>`.
    pub fn payload(&self, spec: &PayloadSpec, arch: &str, goarch: &str, flavor: Flavor) -> Pushed {
        let tag = format!("{}-{arch}", spec.version);
        spec.push(
            &self.pusher,
            &self.repo("release"),
            Some(&tag),
            goarch,
            flavor,
        )
        .unwrap()
    }

    /// A release with a single-arch payload and its own DTK.
    pub fn release(&self, version: &str, dtk: &DtkSpec, flavor: Flavor) -> Pushed {
        let (dtk_ref, _) = self.dtk(dtk, "amd64", flavor);
        self.payload(
            &PayloadSpec::new(version, Some(dtk_ref)),
            "x86_64",
            "amd64",
            flavor,
        )
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Writes `matrix.toml`: the payload repo in this world's namespace, the registry
    /// insecure, then `extra` verbatim.
    pub fn matrix(&self, openshift: &str, extra: &str) {
        let text = format!(
            "[openshift]\npayload-repo = \"{}/{}\"\n{openshift}\n\n[registries.\"{}\"]\ninsecure = true\n{extra}\n",
            self.addr,
            self.repo("release"),
            self.addr
        );
        std::fs::write(self.path("matrix.toml"), text).unwrap();
    }

    /// Writes `matrix.toml` exactly as given.
    pub fn matrix_raw(&self, text: &str) {
        std::fs::write(self.path("matrix.toml"), text).unwrap();
    }

    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_driver-matrix"));
        cmd.current_dir(self.dir.path())
            .args(args)
            .arg("--cache-dir")
            .arg(self.path("cache"))
            .env("HOME", self.dir.path())
            .env("NO_COLOR", "1")
            .env_remove("REGISTRY_AUTH_FILE")
            .env_remove("XDG_RUNTIME_DIR")
            .stdin(Stdio::null());
        cmd
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }

    /// Runs and asserts success.
    pub fn ok(&self, args: &[&str]) -> Output {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "{args:?} failed ({:?}):\n{}{}",
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    pub fn lock(&self) -> String {
        std::fs::read_to_string(self.path("matrix.lock")).unwrap()
    }

    /// The lock with this world's registry and namespace, and every digest, made stable.
    pub fn stable_lock(&self) -> String {
        redact(&self.lock(), &format!("{}/{}", self.addr, self.ns))
    }
}

/// Replaces `prefix` with `[registry]` and digests with `sha256:[digest]`.
pub fn redact(text: &str, prefix: &str) -> String {
    let text = text.replace(prefix, "[registry]");
    let mut out = String::new();
    let mut rest = text.as_str();
    while let Some(i) = rest.find("sha256:") {
        out.push_str(&rest[..i]);
        let tail = &rest[i + 7..];
        let hex = tail.bytes().take_while(|b| b.is_ascii_hexdigit()).count();
        out.push_str("sha256:[digest]");
        rest = &tail[hex..];
    }
    out.push_str(rest);
    out
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn exists(p: &Path) -> bool {
    p.exists()
}

/// Whether `hay` (a rendered diagnostic, wrapped at 80 columns with `  | ` margins) holds
/// `needle`, ignoring whitespace and margins.
pub fn says(hay: &str, needle: &str) -> bool {
    let flat = |s: &str| -> String {
        s.chars()
            .filter(|c| !c.is_whitespace() && *c != '|')
            .collect()
    };
    flat(hay).contains(&flat(needle))
}

/// The binary in `dir`, as a machine of its own would run it: its own cache and HOME, no
/// credentials or registries.conf from this machine, reproducible images
/// (`SOURCE_DATE_EPOCH`), and buildah set up for root without a container engine unless the
/// environment says otherwise.
pub fn run_in(dir: &Path, args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_driver-matrix"));
    cmd.current_dir(dir)
        .args(args)
        .arg("--cache-dir")
        .arg(dir.join("cache"))
        .env("NO_COLOR", "1")
        .env("HOME", dir)
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .env_remove("REGISTRY_AUTH_FILE")
        .env_remove("XDG_RUNTIME_DIR")
        .env_remove("CONTAINERS_REGISTRIES_CONF")
        .stdin(Stdio::null());
    if std::env::var_os("STORAGE_DRIVER").is_none() {
        cmd.env("STORAGE_DRIVER", "vfs");
    }
    if std::env::var_os("BUILDAH_ISOLATION").is_none() {
        cmd.env("BUILDAH_ISOLATION", "chroot");
    }
    cmd.output().unwrap()
}

/// [`run_in`], asserting success.
pub fn ok_in(dir: &Path, args: &[&str]) -> Output {
    let out = run_in(dir, args);
    assert!(
        out.status.success(),
        "{args:?} failed:\n{}{}",
        stdout(&out),
        stderr(&out)
    );
    out
}

/// A `.ko`-like ELF object whose `.modinfo` says it was built for `kernel`.
pub fn module(name: &str, kernel: &str) -> Vec<u8> {
    driver_matrix_sandbox::kmod::fake_module(name, kernel)
}
