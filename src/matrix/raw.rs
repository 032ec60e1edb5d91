//! The matrix file as written: serde types with spans. They also generate the JSON Schema
//! (`schemas/matrix.schema.json`), which in turn drives the structural check in `structure.rs`,
//! so the schema editors see and the file the tool accepts cannot drift apart.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Deserialize;
use toml::Spanned;

use crate::domain::Arch;

type S<T> = Spanned<T>;

/// A driver-matrix build matrix: drivers × OpenShift releases × architectures.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
#[schemars(title = "driver-matrix matrix.toml")]
pub struct RawMatrix {
    /// The OpenShift releases and architectures to build for.
    #[schemars(with = "RawOpenShift")]
    pub openshift: S<RawOpenShift>,
    /// Per-registry settings, keyed by `host[:port]`.
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, RawRegistry>")]
    pub registries: BTreeMap<String, S<RawRegistry>>,
    /// The drivers to build.
    #[serde(default, rename = "driver")]
    #[schemars(with = "Vec<RawDriver>")]
    pub drivers: Vec<S<RawDriver>>,
    /// Cells to drop: each rule drops every (driver, release, arch, stream, kernel) that matches
    /// all its keys.
    #[serde(default, rename = "exclude")]
    #[schemars(with = "Vec<RawExclude>")]
    pub excludes: Vec<S<RawExclude>>,
    /// Kernels to build for without an OpenShift release, each with its builder image.
    #[serde(default, rename = "toolkit")]
    #[schemars(with = "Vec<super::toolkit::RawToolkit>")]
    pub toolkits: Vec<S<super::toolkit::RawToolkit>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
#[schemars(rename = "OpenShift")]
pub struct RawOpenShift {
    /// Exact OpenShift versions (`4.14.12`, `4.16.0-rc.3`).
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub releases: Vec<S<String>>,
    /// Update channels whose newest z-streams are built.
    #[serde(default)]
    #[schemars(with = "Vec<RawChannel>")]
    pub channels: Vec<S<RawChannel>>,
    /// Architectures; default `["x86_64"]`.
    #[serde(default)]
    #[schemars(with = "Option<Vec<Arch>>")]
    pub arch: Option<Vec<S<String>>>,
    /// Repository of release payloads; the tag is `<version>-<arch>`.
    /// Default `quay.io/openshift-release-dev/ocp-release`.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub payload_repo: Option<S<String>>,
    /// The update graph (Cincinnati) that channels are read from.
    /// Default `https://api.openshift.com/api/upgrades_info/v1/graph`.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub graph_url: Option<S<String>>,
    /// The node OS streams to build for: `default` (the payload's `driver-toolkit` and
    /// `rhel-coreos`) and `rhel-10` (`driver-toolkit-10` and `rhel-coreos-10` of a dual-stream
    /// release). Default: every stream a release ships.
    #[serde(default)]
    #[schemars(with = "Option<Vec<Stream>>")]
    pub streams: Option<Vec<S<String>>>,
}

/// A node OS stream of a release.
#[derive(JsonSchema)]
#[expect(
    dead_code,
    reason = "only its schema is used: `streams` are read as strings"
)]
pub enum Stream {
    #[serde(rename = "default")]
    Default,
    #[serde(rename = "rhel-10")]
    Rhel10,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
#[schemars(rename = "Channel")]
pub struct RawChannel {
    /// The channel, such as `stable-4.16`.
    #[schemars(with = "String")]
    pub name: S<String>,
    /// How many of the newest z-streams of the channel's own minor to build; default 1.
    #[serde(default)]
    #[schemars(with = "Option<u32>", range(min = 1))]
    pub latest: Option<S<i64>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
#[schemars(rename = "Registry")]
pub struct RawRegistry {
    /// Read this registry's images from the mirror `host[:port][/namespace]` instead.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub mirror: Option<S<String>>,
    /// Plain HTTP and no TLS verification for this host only.
    #[serde(default)]
    pub insecure: Option<bool>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
#[schemars(rename = "Driver")]
pub struct RawDriver {
    /// `[a-z0-9][a-z0-9._-]*`, unique.
    #[schemars(with = "String")]
    pub name: S<String>,
    /// Build context directory, relative to matrix.toml; may not leave its directory.
    #[schemars(with = "String")]
    pub context: S<String>,
    /// Containerfile, relative to the context; default `Containerfile`.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub containerfile: Option<S<String>>,
    /// Repository the built images are pushed to, without tag or digest.
    #[schemars(with = "String")]
    pub image: S<String>,
    /// Tag template; default `${KERNEL_FULL_VERSION}`. Placeholders: `${KERNEL_FULL_VERSION}`,
    /// `${KERNEL_VERSION}`, `${DRIVER}`, `${ARCH}`, `${RHEL_VERSION}` and the driver's build args.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub tag: Option<S<String>>,
    /// Names of the `.ko` modules the image must hold (checked by `verify --deep`).
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub modules: Vec<S<String>>,
    /// The driver's own build args. Reserved names (`DTK_IMAGE`, `DTK_AUTO`, `KERNEL_VERSION`,
    /// `KERNEL_FULL_VERSION`, `RHEL_VERSION`) are set by driver-matrix.
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, String>")]
    pub build_args: BTreeMap<S<String>, S<String>>,
    /// Build secrets: id → file relative to matrix.toml (`buildah --secret id=ID,src=PATH`).
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, String>")]
    pub secrets: BTreeMap<S<String>, S<String>>,
    /// Constraint on release versions, such as `>=4.14, <4.17`.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub openshift: Option<S<String>>,
    /// Subset of `[openshift].arch` to build this driver for.
    #[serde(default)]
    #[schemars(with = "Option<Vec<Arch>>")]
    pub arch: Option<Vec<S<String>>>,
    /// Also build for each release's real-time kernel.
    #[serde(default)]
    pub rt: Option<bool>,
    /// Secure Boot: `verify --deep` requires every module of the driver's images to carry an
    /// appended signature (`sign-file`), and reports its signer and key id.
    #[serde(default)]
    #[schemars(with = "Option<bool>")]
    pub signed: Option<S<bool>>,
    /// The signing key's public certificate (PEM or DER, RSA), relative to matrix.toml: with
    /// `signed = true`, every module's signature must check against it.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub signing_cert: Option<S<String>>,
    /// How `export kmm` and `export boot` deploy the driver with Kernel Module Management.
    #[serde(default)]
    #[schemars(with = "Option<super::kmm::RawKmm>")]
    pub kmm: Option<S<super::kmm::RawKmm>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
#[schemars(rename = "Exclude")]
pub struct RawExclude {
    /// Driver name.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub driver: Option<S<String>>,
    /// Version constraint, such as `4.15.*`.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub openshift: Option<S<String>>,
    /// Architecture.
    #[serde(default)]
    #[schemars(with = "Option<Arch>")]
    pub arch: Option<S<String>>,
    /// A kernel, as the DTK names it (`5.14.0-427.13.1.el9_4.x86_64`): only that kernel's job
    /// is dropped, the release's other kernels (its RT kernel, another stream's) stay.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub kernel: Option<S<String>>,
    /// A node OS stream: `default` or `rhel-10`.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub stream: Option<S<String>>,
}

/// The JSON Schema of matrix.toml, as committed in `schemas/matrix.schema.json`.
pub fn schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(RawMatrix)).expect("a schema is plain JSON")
}

/// The schema as pretty JSON with a trailing newline: the committed file's exact bytes.
pub fn schema_text() -> String {
    let mut s = serde_json::to_string_pretty(&schema()).expect("a schema is plain JSON");
    s.push('\n');
    s
}
