//! The lockfile's entries as domain values.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::domain::{Arch, Digest, ImageRef, Kernel, Version};

pub use crate::domain::{STREAM_DEFAULT, STREAM_RHEL10};

/// (version, arch, stream): how `[[release]]` entries are told apart and sorted (the default
/// stream first).
pub type ReleaseKey<'a> = (&'a Version, Arch, Option<&'a str>);

/// One OpenShift release on one arch, resolved from its payload: the `[[release]]` table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct LockedRelease {
    pub version: Version,
    pub arch: Arch,
    /// The node OS stream this entry's DTK and kernel serve: absent for the payload's default
    /// stream (`driver-toolkit`, `rhel-coreos`), [`STREAM_RHEL10`] for the RHEL 10 stream of a
    /// dual-stream release (`driver-toolkit-10`, `rhel-coreos-10`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<String>,
    /// The payload by digest (`quay.io/openshift-release-dev/ocp-release@sha256:...`).
    pub payload: ImageRef,
    /// The Driver Toolkit by digest, as the payload's `driver-toolkit` tag names it.
    pub dtk: ImageRef,
    pub kernel: Kernel,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rt_kernel: Option<Kernel>,
    pub rhel: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machine_os: Option<String>,
    /// The kernel the release's nodes boot, from its OS image's config; absent where it could
    /// not be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_kernel: Option<Kernel>,
    /// The real-time kernel the release's nodes boot, where its OS image's labels carry it
    /// (`machine-os-content`); absent elsewhere.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_rt_kernel: Option<Kernel>,
}

impl LockedRelease {
    pub fn sort_key(&self) -> ReleaseKey<'_> {
        (&self.version, self.arch, self.stream.as_deref())
    }

    /// `4.16.1 (x86_64)`, or `4.16.1 (x86_64, rhel-10)` for a stream other than the default.
    pub fn label(&self) -> String {
        match &self.stream {
            Some(s) => format!("{} ({}, {s})", self.version, self.arch),
            None => format!("{} ({})", self.version, self.arch),
        }
    }

    /// The stream's name as a matrix's `[openshift] streams` names it.
    pub fn stream_name(&self) -> &str {
        self.stream.as_deref().unwrap_or(STREAM_DEFAULT)
    }

    /// The nodes' kernel when it differs from the DTK's (compared as parsed kernels): drivers
    /// built on this DTK will not load on this release's nodes.
    pub fn node_kernel_mismatch(&self) -> Option<&Kernel> {
        self.node_kernel
            .as_ref()
            .filter(|n| !n.same_build(&self.kernel))
    }

    /// The nodes' real-time kernel when it differs from the DTK's `rt-kernel` (compared as
    /// parsed kernels, the `+rt` of a 4.16+ kernel's `uname -r` left out: the label names the
    /// rpm). `None` when either is unknown.
    pub fn node_rt_kernel_mismatch(&self) -> Option<&Kernel> {
        let dtk = self.rt_kernel.as_ref()?;
        self.node_rt_kernel
            .as_ref()
            .filter(|n| !n.without_rt_suffix().same_build(&dtk.without_rt_suffix()))
    }
}

/// One pushed driver image: the `[[image]]` table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct LockedImage {
    pub driver: String,
    pub kernel: Kernel,
    pub arch: Arch,
    pub dtk: ImageRef,
    /// Hash of everything the build read (see `crate::inputs`).
    pub inputs: Digest,
    /// `repository:tag` as pushed.
    pub image: ImageRef,
    /// The pushed manifest's digest.
    pub digest: Digest,
    pub releases: Vec<Version>,
}

impl LockedImage {
    pub fn key(&self) -> (&str, &Kernel, Arch) {
        (&self.driver, &self.kernel, self.arch)
    }

    /// `repository@digest`: how deployments should name this image.
    pub fn pinned(&self) -> ImageRef {
        self.image.with_digest(self.digest.clone())
    }
}

/// The whole lockfile.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Lock {
    pub releases: Vec<LockedRelease>,
    pub images: Vec<LockedImage>,
}

impl Lock {
    /// Puts every list into the canonical order of the file.
    pub fn canonicalize(&mut self) {
        self.releases
            .sort_by(|a, b| a.sort_key().cmp(&b.sort_key()));
        self.releases.dedup_by(|a, b| a.sort_key() == b.sort_key());
        for image in &mut self.images {
            image.releases.sort();
            image.releases.dedup();
        }
        self.images.sort_by(|a, b| a.key().cmp(&b.key()));
        self.images.dedup_by(|a, b| a.key() == b.key());
    }

    /// The default stream's entry of a release.
    pub fn release(&self, version: &Version, arch: Arch) -> Option<&LockedRelease> {
        self.releases
            .iter()
            .find(|r| &r.version == version && r.arch == arch && r.stream.is_none())
    }

    /// Every stream's entry of a release, the default stream first.
    pub fn release_streams(&self, version: &Version, arch: Arch) -> Vec<LockedRelease> {
        self.releases
            .iter()
            .filter(|r| &r.version == version && r.arch == arch)
            .cloned()
            .collect()
    }

    /// [`Self::release_streams`] of every release at once, by (version, arch): for looking up
    /// many releases without a scan of the lock each.
    pub fn release_index(&self) -> HashMap<(&Version, Arch), Vec<&LockedRelease>> {
        let mut index: HashMap<(&Version, Arch), Vec<&LockedRelease>> = HashMap::new();
        for r in &self.releases {
            index.entry((&r.version, r.arch)).or_default().push(r);
        }
        index
    }

    /// The images by (driver, kernel, arch): for looking up many (a plan's jobs) without a
    /// scan of the lock each.
    pub fn image_index(&self) -> HashMap<(&str, &Kernel, Arch), &LockedImage> {
        self.images.iter().map(|i| (i.key(), i)).collect()
    }

    pub fn image(&self, driver: &str, kernel: &Kernel, arch: Arch) -> Option<&LockedImage> {
        self.images
            .iter()
            .find(|i| i.driver == driver && &i.kernel == kernel && i.arch == arch)
    }

    /// Inserts or replaces the image with the same (driver, kernel, arch).
    pub fn upsert_image(&mut self, image: LockedImage) {
        match self.images.iter_mut().find(|i| i.key() == image.key()) {
            Some(slot) => *slot = image,
            None => self.images.push(image),
        }
        self.canonicalize();
    }
}
