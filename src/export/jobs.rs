//! Which images an export needs: the jobs the matrix asks for over the releases the lock holds.
//! Pure: the lock's `[[release]]` entries that the matrix still targets, filtered by each
//! driver's `openshift` constraint, `arch` subset, `rt`, `[[exclude]]` and `[openshift] streams`,
//! as the planner does; and the `[[toolkit]]` kernels of the driver's arches.

use std::collections::BTreeSet;

use crate::domain::{Arch, Kernel};
use crate::lock::{Lock, LockedImage, LockedRelease};
use crate::matrix::{Driver, Matrix};
use crate::plan::exclude::kept_kernels;
use crate::plan::{channels_from_lock, target_versions};

/// One (driver, kernel, arch) the matrix asks for. Exports report only the missing ones, so
/// it displays as the line that names it missing.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Wanted {
    pub driver: String,
    pub kernel: Kernel,
    pub arch: Arch,
}

impl std::fmt::Display for Wanted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "driver `{}`: no image for kernel `{}` ({})",
            self.driver, self.kernel, self.arch
        )
    }
}

/// Every (driver, kernel, arch) of `driver` that the lock's releases call for, sorted.
pub fn wanted(matrix: &Matrix, lock: &Lock, driver: &Driver) -> BTreeSet<Wanted> {
    let versions = target_versions(matrix, &channels_from_lock(matrix, lock));
    let mut out = BTreeSet::new();
    for r in lock
        .releases
        .iter()
        .filter(|r| versions.contains(&r.version))
    {
        for kernel in kept_kernels(matrix, driver, r) {
            out.insert(Wanted {
                driver: driver.name.clone(),
                kernel: kernel.clone(),
                arch: r.arch,
            });
        }
    }
    for t in matrix
        .toolkits
        .iter()
        .filter(|t| driver.arches.contains(&t.arch))
    {
        out.insert(Wanted {
            driver: driver.name.clone(),
            kernel: t.kernel.clone(),
            arch: t.arch,
        });
    }
    out
}

/// The locked images of `wanted`, and the jobs that have none.
pub fn split(lock: &Lock, wanted: BTreeSet<Wanted>) -> (Vec<&LockedImage>, Vec<Wanted>) {
    let mut found = Vec::new();
    let mut missing = Vec::new();
    let index = lock.image_index();
    for w in wanted {
        match index.get(&(w.driver.as_str(), &w.kernel, w.arch)).copied() {
            Some(image) => found.push(image),
            None => missing.push(w),
        }
    }
    (found, missing)
}

/// Every job of every driver that the lock has no image for, sorted: what `export kmm`,
/// `export preflight` and `verify` each report.
pub fn missing(matrix: &Matrix, lock: &Lock) -> Vec<Wanted> {
    let mut out: Vec<Wanted> = matrix
        .drivers
        .iter()
        .flat_map(|d| split(lock, wanted(matrix, lock, d)).1)
        .collect();
    out.sort();
    out
}

/// The kernel the nodes of each locked release that `driver` builds for boot, as `uname -r`
/// reports it and KMM matches it against a Module's `kernelMappings`: the OS image's
/// (`node-kernel`) where it is another build than the DTK's, the DTK's otherwise, and the
/// real-time kernel where the driver builds for it. In lock order; kernels an `[[exclude]]`
/// drops are left out (the matrix chose not to serve them).
pub fn node_kernels<'l>(
    matrix: &Matrix,
    lock: &'l Lock,
    driver: &Driver,
) -> Vec<(&'l LockedRelease, Kernel)> {
    let versions = target_versions(matrix, &channels_from_lock(matrix, lock));
    let mut out = Vec::new();
    for r in lock
        .releases
        .iter()
        .filter(|r| versions.contains(&r.version))
    {
        for kernel in kept_kernels(matrix, driver, r) {
            let booted = if kernel == &r.kernel {
                r.node_kernel_mismatch().unwrap_or(kernel)
            } else if Some(kernel) == r.rt_kernel.as_ref() {
                r.node_rt_kernel_mismatch().unwrap_or(kernel)
            } else {
                kernel
            };
            out.push((r, booted.clone()));
        }
    }
    out
}

/// The locked releases whose nodes boot a kernel the lock has no image of `driver` for (on
/// their arch), each once, in lock order: KMM maps their nodes to nothing unless the driver
/// has a fallback.
pub fn unserved<'l>(matrix: &Matrix, lock: &'l Lock, driver: &Driver) -> Vec<&'l LockedRelease> {
    let mut out: Vec<&LockedRelease> = Vec::new();
    for (release, kernel) in node_kernels(matrix, lock, driver) {
        let served = lock
            .images
            .iter()
            .any(|i| i.driver == driver.name && i.kernel == kernel && i.arch == release.arch);
        if !served && !out.iter().any(|r| r.sort_key() == release.sort_key()) {
            out.push(release);
        }
    }
    out
}

/// The locked releases `w` would serve: those whose kept kernels for its driver include its
/// kernel on its arch (none for a `[[toolkit]]` kernel).
pub fn serving<'l>(matrix: &Matrix, lock: &'l Lock, w: &Wanted) -> Vec<&'l LockedRelease> {
    let Some(driver) = matrix.driver(&w.driver) else {
        return Vec::new();
    };
    let versions = target_versions(matrix, &channels_from_lock(matrix, lock));
    lock.releases
        .iter()
        .filter(|r| r.arch == w.arch && versions.contains(&r.version))
        .filter(|r| kept_kernels(matrix, driver, r).contains(&&w.kernel))
        .collect()
}
