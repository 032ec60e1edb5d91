//! What changed between two lockfiles, for reviewers: kernels added and removed, releases newly
//! covered or dropped (and which image serves them now), images rebuilt and why, releases that
//! resolved differently. Pure; rendering lives in `diff_view.rs`.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::model::ReleaseKey;
use super::{Lock, LockedImage, LockedRelease};
use crate::domain::{Arch, Kernel, Version};

/// Why an image for the same (driver, kernel, arch) has a new digest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RebuildReason {
    /// Built on another DTK (which also changes the inputs).
    DtkChanged,
    /// The context, containerfile or build args changed.
    InputsChanged,
    /// Same inputs, new digest: a forced rebuild, or a build that is not reproducible.
    SameInputs,
}

impl RebuildReason {
    pub fn describe(self) -> &'static str {
        match self {
            RebuildReason::DtkChanged => "DTK changed",
            RebuildReason::InputsChanged => "inputs changed",
            RebuildReason::SameInputs => "rebuilt with the same inputs",
        }
    }
}

/// One (driver, kernel, arch) whose lock entry changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct ImageChange {
    pub kernel: Kernel,
    pub arch: Arch,
    pub kind: ImageChangeKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<RebuildReason>,
    /// For a rebuild on another DTK: the old and the new, by digest.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dtk: Option<Change>,
    /// For a rebuild whose inputs changed, what changed in them where it can be told (see
    /// `lock::why`); empty otherwise.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub inputs: Vec<InputChange>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub old_image: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub new_image: Option<String>,
    /// Releases this image serves now and did not before (whoever served them before).
    pub releases_added: Vec<Version>,
    /// Releases this image served before and does not now.
    pub releases_removed: Vec<Version>,
}

/// A value before and after.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    pub old: String,
    pub new: String,
}

/// One thing that went into an image's inputs and changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum InputChange {
    /// A file of the context (the Containerfile included), by its path in the context.
    File { path: String, change: FileChange },
    /// A build argument of the driver; `None` where it was not set.
    BuildArg {
        name: String,
        old: Option<String>,
        new: Option<String>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FileChange {
    Added,
    Removed,
    Modified,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ImageChangeKind {
    /// A kernel the driver is newly built for.
    Added,
    /// A kernel the driver is no longer built for.
    Removed,
    /// A new digest for the same kernel.
    Rebuilt,
    /// Same digest; only the releases it serves changed.
    Releases,
}

/// The changes of one driver.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct DriverChanges {
    pub driver: String,
    pub images: Vec<ImageChange>,
    /// Releases (with arch) the driver newly covers, and the image that serves each.
    pub releases_covered: Vec<ReleaseServed>,
    /// Releases (with arch) the driver no longer covers.
    pub releases_dropped: Vec<ReleaseServed>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReleaseServed {
    pub version: Version,
    pub arch: Arch,
    /// The node OS stream the image serves, for a stream other than the payload's default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream: Option<String>,
    /// `image@digest` serving it (in the newer lock for covered releases, the older for dropped).
    pub image: String,
}

/// A `[[release]]` entry that appeared, disappeared or resolved differently.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct ReleaseChange {
    pub version: Version,
    pub arch: Arch,
    /// The node OS stream, for entries of a stream other than the payload's default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream: Option<String>,
    pub kind: ReleaseChangeKind,
    /// For `changed`: the keys whose values differ.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kernel: Option<Kernel>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReleaseChangeKind {
    Added,
    Removed,
    Changed,
}

/// Everything that differs between two locks.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct LockDiff {
    pub releases: Vec<ReleaseChange>,
    pub drivers: Vec<DriverChanges>,
}

impl LockDiff {
    pub fn is_empty(&self) -> bool {
        self.releases.is_empty() && self.drivers.is_empty()
    }

    fn count(&self, kind: ImageChangeKind) -> usize {
        self.drivers
            .iter()
            .flat_map(|d| &d.images)
            .filter(|i| i.kind == kind)
            .count()
    }

    pub fn summary(&self) -> Summary {
        Summary {
            kernels_added: self.count(ImageChangeKind::Added),
            kernels_removed: self.count(ImageChangeKind::Removed),
            images_rebuilt: self.count(ImageChangeKind::Rebuilt),
            releases_covered: self.drivers.iter().map(|d| d.releases_covered.len()).sum(),
            releases_dropped: self.drivers.iter().map(|d| d.releases_dropped.len()).sum(),
            releases_resolved: self.releases.len(),
        }
    }
}

impl ReleaseChange {
    /// The arch, and the stream where it is not the default: `x86_64` or `x86_64, rhel-10`.
    pub fn place(&self) -> String {
        match &self.stream {
            Some(s) => format!("{}, {s}", self.arch),
            None => self.arch.to_string(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Summary {
    pub kernels_added: usize,
    pub kernels_removed: usize,
    pub images_rebuilt: usize,
    pub releases_covered: usize,
    pub releases_dropped: usize,
    /// `[[release]]` entries added, removed or changed.
    pub releases_resolved: usize,
}

fn release_fields(a: &LockedRelease, b: &LockedRelease) -> Vec<&'static str> {
    let mut f = Vec::new();
    let mut check = |name, differs: bool| {
        if differs {
            f.push(name);
        }
    };
    check("payload", a.payload != b.payload);
    check("dtk", a.dtk != b.dtk);
    check("kernel", a.kernel != b.kernel);
    check("rt-kernel", a.rt_kernel != b.rt_kernel);
    check("rhel", a.rhel != b.rhel);
    check("machine-os", a.machine_os != b.machine_os);
    check("node-kernel", a.node_kernel != b.node_kernel);
    check("node-rt-kernel", a.node_rt_kernel != b.node_rt_kernel);
    f
}

fn set_minus(a: &[Version], b: &[Version]) -> Vec<Version> {
    let b: BTreeSet<&Version> = b.iter().collect();
    a.iter().filter(|v| !b.contains(v)).cloned().collect()
}

type ImageKey<'a> = (&'a str, &'a Kernel, Arch);

fn image_change(old: Option<&LockedImage>, new: Option<&LockedImage>) -> Option<ImageChange> {
    let (kernel, arch) = match (old, new) {
        (_, Some(n)) => (n.kernel.clone(), n.arch),
        (Some(o), None) => (o.kernel.clone(), o.arch),
        (None, None) => return None,
    };
    let empty = Vec::new();
    let old_releases = old.map_or(&empty, |o| &o.releases);
    let new_releases = new.map_or(&empty, |n| &n.releases);
    let (kind, reason) = match (old, new) {
        (None, Some(_)) => (ImageChangeKind::Added, None),
        (Some(_), None) => (ImageChangeKind::Removed, None),
        (Some(o), Some(n)) if o.digest != n.digest || o.image != n.image => {
            let reason = if o.dtk != n.dtk {
                RebuildReason::DtkChanged
            } else if o.inputs != n.inputs {
                RebuildReason::InputsChanged
            } else {
                RebuildReason::SameInputs
            };
            (ImageChangeKind::Rebuilt, Some(reason))
        }
        (Some(_), Some(_)) if old_releases != new_releases => (ImageChangeKind::Releases, None),
        _ => return None,
    };
    let dtk = match (old, new) {
        (Some(o), Some(n)) if reason == Some(RebuildReason::DtkChanged) => Some(Change {
            old: o.dtk.to_string(),
            new: n.dtk.to_string(),
        }),
        _ => None,
    };
    Some(ImageChange {
        kernel,
        arch,
        kind,
        reason,
        dtk,
        inputs: Vec::new(),
        old_image: old.map(|o| o.pinned().to_string()),
        new_image: new.map(|n| n.pinned().to_string()),
        releases_added: set_minus(new_releases, old_releases),
        releases_removed: set_minus(old_releases, new_releases),
    })
}

/// (release, arch, stream): what a driver covers. An image serves the stream whose DTK kernel
/// (or RT kernel) is its kernel; a dual-stream release is covered once per stream.
type Cover = (Version, Arch, Option<String>);

impl ReleaseServed {
    /// `4.16.1 (x86_64)`, or `4.16.1 (x86_64, rhel-10)` for a stream other than the default.
    pub fn label(&self) -> String {
        match &self.stream {
            Some(s) => format!("{} ({}, {s})", self.version, self.arch),
            None => format!("{} ({})", self.version, self.arch),
        }
    }
}

/// The stream of `version` on `arch` whose kernel `kernel` is, in `lock` (the default stream
/// when no entry says otherwise).
fn stream_of(lock: &Lock, version: &Version, arch: Arch, kernel: &Kernel) -> Option<String> {
    lock.releases
        .iter()
        .filter(|r| &r.version == version && r.arch == arch)
        .find(|r| &r.kernel == kernel || r.rt_kernel.as_ref() == Some(kernel))
        .and_then(|r| r.stream.clone())
}

/// Which image serves each (release, arch, stream) of a driver.
fn served(lock: &Lock, driver: &str) -> BTreeMap<Cover, String> {
    let mut out = BTreeMap::new();
    for i in lock.images.iter().filter(|i| i.driver == driver) {
        let pinned = i.pinned().to_string();
        for v in &i.releases {
            let stream = stream_of(lock, v, i.arch, &i.kernel);
            out.insert((v.clone(), i.arch, stream), pinned.clone());
        }
    }
    out
}

/// Compares two locks.
pub fn diff(old: &Lock, new: &Lock) -> LockDiff {
    let old_img: BTreeMap<ImageKey<'_>, &LockedImage> =
        old.images.iter().map(|i| (i.key(), i)).collect();
    let new_img: BTreeMap<ImageKey<'_>, &LockedImage> =
        new.images.iter().map(|i| (i.key(), i)).collect();
    let drivers: BTreeSet<&str> = old_img.keys().chain(new_img.keys()).map(|k| k.0).collect();
    let drivers = drivers
        .into_iter()
        .map(|driver| driver_changes(driver, (old, &old_img), (new, &new_img)))
        .filter(|c| {
            !c.images.is_empty() || !c.releases_covered.is_empty() || !c.releases_dropped.is_empty()
        })
        .collect();
    LockDiff {
        releases: release_changes(old, new),
        drivers,
    }
}

/// The `[[release]]` entries that appeared, disappeared or resolved differently.
fn release_changes(old: &Lock, new: &Lock) -> Vec<ReleaseChange> {
    let old_rel: BTreeMap<ReleaseKey<'_>, &LockedRelease> =
        old.releases.iter().map(|r| (r.sort_key(), r)).collect();
    let new_rel: BTreeMap<ReleaseKey<'_>, &LockedRelease> =
        new.releases.iter().map(|r| (r.sort_key(), r)).collect();
    let keys: BTreeSet<ReleaseKey<'_>> = old_rel.keys().chain(new_rel.keys()).copied().collect();
    keys.into_iter()
        .filter_map(|key| {
            let (kind, fields, kernel) = match (old_rel.get(&key), new_rel.get(&key)) {
                (None, Some(n)) => (ReleaseChangeKind::Added, Vec::new(), &n.kernel),
                (Some(o), None) => (ReleaseChangeKind::Removed, Vec::new(), &o.kernel),
                (Some(o), Some(n)) => {
                    let fields = release_fields(o, n);
                    if fields.is_empty() {
                        return None;
                    }
                    (ReleaseChangeKind::Changed, fields, &n.kernel)
                }
                (None, None) => return None,
            };
            Some(ReleaseChange {
                version: key.0.clone(),
                arch: key.1,
                stream: key.2.map(str::to_string),
                kind,
                fields,
                kernel: Some(kernel.clone()),
            })
        })
        .collect()
}

type Images<'l> = BTreeMap<ImageKey<'l>, &'l LockedImage>;

/// What changed for one driver: its images, and the releases it newly covers or drops.
fn driver_changes(
    driver: &str,
    (old, old_img): (&Lock, &Images<'_>),
    (new, new_img): (&Lock, &Images<'_>),
) -> DriverChanges {
    let keys: BTreeSet<ImageKey<'_>> = old_img
        .keys()
        .chain(new_img.keys())
        .filter(|k| k.0 == driver)
        .copied()
        .collect();
    let images = keys
        .into_iter()
        .filter_map(|k| image_change(old_img.get(&k).copied(), new_img.get(&k).copied()))
        .collect();
    let before = served(old, driver);
    let after = served(new, driver);
    let only_in = |a: &BTreeMap<Cover, String>, b: &BTreeMap<Cover, String>| {
        a.iter()
            .filter(|(k, _)| !b.contains_key(k))
            .map(|((version, arch, stream), image)| ReleaseServed {
                version: version.clone(),
                arch: *arch,
                stream: stream.clone(),
                image: image.clone(),
            })
            .collect()
    };
    DriverChanges {
        driver: driver.to_string(),
        images,
        releases_covered: only_in(&after, &before),
        releases_dropped: only_in(&before, &after),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
    const K9: &str = "5.14.0-427.40.1.el9_4.x86_64";
    const K10: &str = "6.12.0-55.9.1.el10_0.x86_64";

    fn release(version: &str, stream: Option<&str>, kernel: &str) -> String {
        let stream = stream.map_or(String::new(), |s| format!("stream = \"{s}\"\n"));
        format!(
            "[[release]]\nversion = \"{version}\"\narch = \"x86_64\"\n{stream}payload = \"quay.io/p/r@{D}\"\ndtk = \"quay.io/p/d@{D}\"\nkernel = \"{kernel}\"\nrhel = \"9.4\"\n\n"
        )
    }

    fn image(kernel: &str, releases: &str) -> String {
        format!(
            "[[image]]\ndriver = \"d\"\nkernel = \"{kernel}\"\narch = \"x86_64\"\ndtk = \"quay.io/p/d@{D}\"\ninputs = \"{D}\"\nimage = \"r.example/d:{kernel}\"\ndigest = \"{D}\"\nreleases = [{releases}]\n\n"
        )
    }

    fn lock(text: &str) -> Lock {
        crate::lock::read_str(
            std::path::Path::new("t.lock"),
            &format!("version = 1\n\n{text}"),
        )
        .expect("a valid lock")
    }

    /// A dual-stream release is covered once per stream: an image for its RHEL 10 kernel newly
    /// covers it even though its default stream was covered before.
    #[test]
    fn coverage_is_counted_per_release_arch_and_stream() {
        let releases = format!(
            "{}{}{}",
            release("4.16.2", None, K9),
            release("4.17.0", None, K9),
            release("4.17.0", Some("rhel-10"), K10)
        );
        let old = lock(&format!(
            "{releases}{}",
            image(K9, "\"4.16.2\", \"4.17.0\"")
        ));
        let new = lock(&format!(
            "{releases}{}{}",
            image(K9, "\"4.16.2\", \"4.17.0\""),
            image(K10, "\"4.17.0\"")
        ));
        let d = diff(&old, &new);
        let covered = &d.drivers[0].releases_covered;
        assert_eq!(covered.len(), 1, "{covered:?}");
        assert_eq!(covered[0].label(), "4.17.0 (x86_64, rhel-10)");
        assert_eq!(d.summary().releases_covered, 1);
        assert_eq!(d.drivers[0].images[0].releases_added.len(), 1);
    }
}
