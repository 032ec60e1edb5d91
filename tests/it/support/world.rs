//! A `World` is a namespace of its own in the shared registry (payloads, DTK stand-ins and
//! images pushed there by the sandbox crate) and a temporary project directory with a matrix.

use std::path::PathBuf;

use driver_matrix_sandbox::{DtkSpec, Flavor, OsImage, PayloadSpec, Pushed, Pusher};

use super::{Cmd, in_dir, redact};

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
        Self::on(super::registry().addr(), name, None)
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

    /// Publishes single-arch releases: for each `(versions, kernel)`, a small DTK for
    /// `kernel` and a payload per version naming it.
    pub fn publish(&self, releases: &[(&[&str], &str)]) {
        for (versions, kernel) in releases {
            let mut dtk = DtkSpec::new(kernel);
            dtk.base = 64 << 10;
            let (dtk_ref, _) = self.dtk(&dtk, "amd64", Flavor::Docker);
            for v in *versions {
                self.payload(
                    &PayloadSpec::new(v, Some(dtk_ref.clone())),
                    "x86_64",
                    "amd64",
                    Flavor::Docker,
                );
            }
        }
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

    /// The binary in this world's directory (see [`in_dir`]), without `SOURCE_DATE_EPOCH`.
    pub fn cmd(&self) -> Cmd {
        in_dir(self.dir.path()).env_remove("SOURCE_DATE_EPOCH")
    }

    pub fn lock(&self) -> String {
        std::fs::read_to_string(self.path("matrix.lock")).unwrap()
    }

    /// The lock with this world's registry and namespace, and every digest, made stable.
    pub fn stable_lock(&self) -> String {
        redact(&self.lock(), &format!("{}/{}", self.addr, self.ns))
    }
}
