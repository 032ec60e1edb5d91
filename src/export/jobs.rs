//! Which images an export needs: the jobs the matrix asks for over the releases the lock holds.
//! Pure: the lock's `[[release]]` entries that the matrix still targets, filtered by each
//! driver's `openshift` constraint, `arch` subset, `rt`, `[[exclude]]` and `[openshift] streams`,
//! as the planner does; and the `[[toolkit]]` kernels of the driver's arches.

use std::collections::BTreeSet;

use crate::domain::{Arch, Kernel};
use crate::lock::{Lock, LockedImage};
use crate::matrix::{Driver, Matrix};
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
        let excluded = matrix
            .excludes
            .iter()
            .any(|e| e.matches(&driver.name, &r.version, r.arch));
        let allowed = driver
            .openshift
            .as_ref()
            .is_none_or(|c| c.matches(&r.version))
            && driver.arches.contains(&r.arch)
            && matrix.openshift.builds_stream(r.stream_name());
        if excluded || !allowed {
            continue;
        }
        let rt = r.rt_kernel.as_ref().filter(|_| driver.rt);
        for kernel in std::iter::once(&r.kernel).chain(rt) {
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
