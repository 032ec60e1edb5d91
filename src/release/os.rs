//! The nodes' own kernel, read from the payload's OS image (`rhel-coreos`, OKD's
//! `stream-coreos`, `rhel-coreos-8`, `machine-os-content`) the cheapest way the formats allow:
//! its image config, a few KB, fetched by the digest the (digest-checked) manifest names and
//! hashed. Nothing of its layers is read.
//!
//! Labels, first found wins: `ostree.linux` (ostree-native images, 4.12 on), then
//! `com.coreos.rpm.kernel` (`machine-os-content`, full NVRA, the rpm name optional). Where
//! the labels also carry the real-time kernel (`com.coreos.rpm.kernel-rt-core` on
//! `machine-os-content`), it is read too, to check the DTK's `rt-kernel` against.

use serde::{Deserialize, Serialize};

use super::{Fault, Verified};
use crate::domain::{Arch, ImageRef, Kernel};
use crate::registry::Client;

/// The config labels that carry the kernel, in order of preference.
pub const KERNEL_LABELS: [&str; 2] = ["ostree.linux", "com.coreos.rpm.kernel"];

/// The config label that carries the real-time kernel's rpm (`machine-os-content`).
pub const RT_KERNEL_LABEL: &str = "com.coreos.rpm.kernel-rt-core";

/// The kernel the nodes boot and where it was read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct NodeKernel {
    pub kernel: Kernel,
    /// The OS image's per-arch manifest, by digest.
    pub image: ImageRef,
    /// The config blob the label was read from.
    pub verified: Verified,
    /// The real-time kernel, where the labels carry it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rt_kernel: Option<Kernel>,
}

impl NodeKernel {
    /// Whether a cached entry is what [`node_kernel`] writes.
    pub fn checks_out(&self) -> bool {
        self.image.digest().is_some() && self.verified.how == super::How::ImageConfig
    }
}

/// Reads the node kernel from the first of `images` whose config carries a kernel label. An
/// OS image the registry (or mirror) does not hold is passed over: the check is then not made,
/// which is not a fact about the release. Any other failure fails the release.
pub fn node_kernel(
    client: &Client,
    images: &[ImageRef],
    arch: Arch,
) -> Result<Option<NodeKernel>, Fault> {
    for os in images {
        let manifest = match client.manifest(os, arch) {
            Ok(m) => m,
            Err(e) if e.is_not_found() => continue,
            Err(e) => return Err(e.into()),
        };
        let labels = match client.config_labels(os, &manifest) {
            Ok(l) => l,
            Err(e) if e.is_not_found() => continue,
            Err(e) => return Err(e.into()),
        };
        if let Some(kernel) = kernel_from_labels(&labels) {
            return Ok(Some(NodeKernel {
                kernel,
                rt_kernel: rt_kernel_from_labels(&labels),
                image: manifest.pinned(os),
                verified: Verified::image_config(manifest.config.digest.clone()),
            }));
        }
    }
    Ok(None)
}

/// The kernel of the first label in [`KERNEL_LABELS`] that holds one.
pub fn kernel_from_labels(labels: &std::collections::BTreeMap<String, String>) -> Option<Kernel> {
    KERNEL_LABELS.iter().find_map(|l| {
        let v = labels.get(*l)?.trim();
        let v = ["kernel-core-", "kernel-"]
            .iter()
            .find_map(|p| v.strip_prefix(p))
            .unwrap_or(v);
        v.parse().ok()
    })
}

/// The real-time kernel of [`RT_KERNEL_LABEL`], when it holds one.
pub fn rt_kernel_from_labels(
    labels: &std::collections::BTreeMap<String, String>,
) -> Option<Kernel> {
    let v = labels.get(RT_KERNEL_LABEL)?.trim();
    v.strip_prefix("kernel-rt-core-").unwrap_or(v).parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> std::collections::BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn reads_the_real_time_kernel_where_the_labels_carry_it() {
        let mos = labels(&[
            ("com.coreos.rpm.kernel", "4.18.0-305.17.1.el8_4.x86_64"),
            (
                RT_KERNEL_LABEL,
                "kernel-rt-core-4.18.0-305.17.1.rt7.89.el8_4.x86_64",
            ),
        ]);
        assert_eq!(
            rt_kernel_from_labels(&mos)
                .map(|k| k.to_string())
                .as_deref(),
            Some("4.18.0-305.17.1.rt7.89.el8_4.x86_64")
        );
        assert_eq!(
            rt_kernel_from_labels(&labels(&[("ostree.linux", "5.14.0-1.el9.x86_64")])),
            None
        );
        let garbage = labels(&[(RT_KERNEL_LABEL, "package kernel-rt-core is not installed")]);
        assert_eq!(rt_kernel_from_labels(&garbage), None);
    }

    #[test]
    fn reads_ostree_linux_before_the_rpm_label() {
        let both = labels(&[
            ("com.coreos.rpm.kernel", "4.18.0-305.17.1.el8_4.x86_64"),
            ("ostree.linux", "5.14.0-284.52.1.el9_2.x86_64"),
        ]);
        assert_eq!(
            kernel_from_labels(&both).unwrap().as_str(),
            "5.14.0-284.52.1.el9_2.x86_64"
        );
        let rpm = labels(&[(
            "com.coreos.rpm.kernel",
            "kernel-4.18.0-305.17.1.el8_4.x86_64",
        )]);
        assert_eq!(
            kernel_from_labels(&rpm).unwrap().as_str(),
            "4.18.0-305.17.1.el8_4.x86_64"
        );
    }

    #[test]
    fn garbage_or_no_label_is_no_kernel() {
        assert!(kernel_from_labels(&labels(&[])).is_none());
        let bad = labels(&[("ostree.linux", "package kernel is not installed")]);
        assert!(kernel_from_labels(&bad).is_none());
    }
}
