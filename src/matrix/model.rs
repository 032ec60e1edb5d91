//! The validated matrix: what the rest of the pipeline works from.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use miette::NamedSource;

use crate::domain::{Arch, ImageRef, Kernel, Version, VersionReq};
use crate::template::TagTemplate;

/// The default repository of OpenShift release payloads; the tag is `<version>-<arch>`.
pub const DEFAULT_PAYLOAD_REPO: &str = "quay.io/openshift-release-dev/ocp-release";
/// The default update graph (Cincinnati).
pub const DEFAULT_GRAPH_URL: &str = "https://api.openshift.com/api/upgrades_info/v1/graph";
/// The default tag template of driver images.
pub const DEFAULT_TAG: &str = "${KERNEL_FULL_VERSION}";
/// The default containerfile name, relative to the context.
pub const DEFAULT_CONTAINERFILE: &str = "Containerfile";

/// A validated `matrix.toml`.
#[derive(Debug, Clone)]
pub struct Matrix {
    /// The matrix file as given.
    pub path: PathBuf,
    /// The directory holding the matrix file, canonicalized; contexts may not leave it.
    pub root: PathBuf,
    /// The file's text, kept for diagnostics that point into it after validation.
    pub source: Arc<NamedSource<String>>,
    pub openshift: OpenShift,
    /// Per-host settings, keyed by `host[:port]`.
    pub registries: BTreeMap<String, RegistrySettings>,
    /// Sorted by name.
    pub drivers: Vec<Driver>,
    pub excludes: Vec<Exclude>,
    /// `[[toolkit]]` kernels, sorted by (kernel, arch).
    pub toolkits: Vec<super::toolkit::Toolkit>,
}

#[derive(Debug, Clone)]
pub struct OpenShift {
    /// Exact versions, sorted, without duplicates.
    pub releases: Vec<Version>,
    pub channels: Vec<Channel>,
    /// Sorted, without duplicates.
    pub arches: Vec<Arch>,
    /// A repository without tag or digest.
    pub payload_repo: ImageRef,
    pub graph_url: String,
    /// The node OS streams to build for (`default`, `rhel-10`), sorted; `None`: every stream.
    pub streams: Option<Vec<String>>,
}

impl OpenShift {
    /// Whether the matrix builds for the stream `name` (see `LockedRelease::stream_name`).
    pub fn builds_stream(&self, name: &str) -> bool {
        self.streams
            .as_ref()
            .is_none_or(|s| s.iter().any(|x| x == name))
    }
}

/// An update channel such as `stable-4.16`, of which the newest `latest` z-streams are built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Channel {
    pub name: String,
    /// The channel's own minor stream (`4.16` for `stable-4.16`).
    pub minor: (u64, u64),
    pub latest: u32,
}

// Per-host registry settings are the registry client's types; the matrix fills them in.
pub use crate::domain::{Mirror, RegistrySettings};

/// One driver of the matrix.
#[derive(Debug, Clone)]
pub struct Driver {
    pub name: String,
    /// The build context, canonicalized (inside `Matrix::root`).
    pub context: PathBuf,
    /// The containerfile's path relative to the context, `/`-separated.
    pub containerfile: String,
    /// Repository the images are pushed to (no tag, no digest).
    pub image: ImageRef,
    pub tag: TagTemplate,
    pub modules: Vec<String>,
    /// The driver's own build args (reserved names excluded by validation).
    pub build_args: BTreeMap<String, String>,
    /// Secret id → file, passed to buildah as `--secret id=ID,src=PATH`; never hashed or logged.
    pub secrets: BTreeMap<String, PathBuf>,
    pub openshift: Option<VersionReq>,
    /// The arches this driver is built for: its own subset, or all of `[openshift].arch`.
    pub arches: Vec<Arch>,
    pub rt: bool,
    /// `signed = true` (and `signing-cert`): what `verify --deep` asks of the modules' signatures.
    pub signing: Option<crate::domain::Signing>,
    /// `[driver.kmm]`: what the KMM exports set beyond the images.
    pub kmm: super::kmm::Kmm,
}

/// An `[[exclude]]` rule: drops every (driver, release, arch, stream, kernel) that matches all
/// of its given keys. A rule without `kernel` or `stream` drops whole cells.
#[derive(Debug, Clone)]
pub struct Exclude {
    pub driver: Option<String>,
    pub openshift: Option<VersionReq>,
    pub arch: Option<Arch>,
    pub kernel: Option<Kernel>,
    /// `default` or `rhel-10`.
    pub stream: Option<String>,
    /// Where the rule stands in the matrix file, for the warning when it matches nothing.
    pub span: std::ops::Range<usize>,
}

/// One kernel of one release stream that a driver may build for: what an exclude is matched
/// against.
#[derive(Debug, Clone, Copy)]
pub struct KernelCell<'a> {
    pub driver: &'a str,
    pub version: &'a Version,
    pub arch: Arch,
    /// The stream's name (`default`, `rhel-10`).
    pub stream: &'a str,
    pub kernel: &'a Kernel,
}

impl Exclude {
    /// Whether the rule drops `t`.
    pub fn matches(&self, t: &KernelCell<'_>) -> bool {
        self.matches_cell(t.driver, t.version, t.arch)
            && self.stream.as_deref().is_none_or(|s| s == t.stream)
            && self.kernel.as_ref().is_none_or(|k| k == t.kernel)
    }

    /// Whether the rule drops the whole cell (driver, version, arch), whatever its streams and
    /// kernels: it names neither, and its other keys match.
    pub fn drops_cell(&self, driver: &str, version: &Version, arch: Arch) -> bool {
        self.kernel.is_none() && self.stream.is_none() && self.matches_cell(driver, version, arch)
    }

    fn matches_cell(&self, driver: &str, version: &Version, arch: Arch) -> bool {
        self.driver.as_deref().is_none_or(|d| d == driver)
            && self.openshift.as_ref().is_none_or(|r| r.matches(version))
            && self.arch.is_none_or(|a| a == arch)
    }
}

impl Matrix {
    pub fn driver(&self, name: &str) -> Option<&Driver> {
        self.drivers.iter().find(|d| d.name == name)
    }

    /// The `modules` a driver declares (none for a driver the matrix no longer has).
    pub fn modules_of(&self, driver: &str) -> &[String] {
        self.driver(driver).map_or(&[], |d| d.modules.as_slice())
    }

    /// What `verify --deep` asks of a driver's images: its modules, and its signing rule.
    pub fn expect_of(&self, driver: &str) -> crate::domain::Expect {
        crate::domain::Expect {
            modules: self.modules_of(driver).to_vec(),
            signing: self.driver(driver).and_then(|d| d.signing.clone()),
        }
    }
}
