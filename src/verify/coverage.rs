//! Coverage: every job the matrix asks for over the lock's releases has an image. A lock whose
//! images all check out can still leave releases without a driver (a build that failed, a
//! kernel never built); `verify` fails for each such job, as `export kmm` and
//! `export preflight` do, and names the releases it leaves without a driver.

use crate::export::{Wanted, missing, serving, unserved};
use crate::lock::{Lock, LockedRelease};
use crate::matrix::Matrix;

/// A job without an image, with the releases it would serve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gap {
    pub job: Wanted,
    /// In lock order; empty for a `[[toolkit]]` kernel.
    pub releases: Vec<LockedRelease>,
}

impl Gap {
    /// One line for `verify`: `driver `x`: no image for kernel `k` (x86_64), needed by 4.16.1
    /// (x86_64), 4.16.2 (x86_64)`.
    pub fn describe(&self) -> String {
        if self.releases.is_empty() {
            return self.job.to_string();
        }
        let labels: Vec<String> = self.releases.iter().map(LockedRelease::label).collect();
        format!("{}, needed by {}", self.job, labels.join(", "))
    }
}

/// Every job of the matrix over the lock's releases that the lock has no image for, sorted by
/// driver, kernel, arch.
pub fn gaps(matrix: &Matrix, lock: &Lock) -> Vec<Gap> {
    missing(matrix, lock)
        .into_iter()
        .map(|job| Gap {
            releases: serving(matrix, lock, &job).into_iter().cloned().collect(),
            job,
        })
        .collect()
}

/// A driver's locked releases whose nodes boot a kernel it has no image for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unmapped {
    pub driver: String,
    /// Labels, in lock order.
    pub releases: Vec<String>,
    /// Whether KMM builds for them in the cluster (`fallback = "build"`).
    pub fallback: bool,
}

impl Unmapped {
    /// One line for `verify`: what KMM does on those nodes.
    pub fn describe(&self) -> String {
        let releases = self.releases.join(", ");
        if self.fallback {
            format!(
                "driver `{}`: KMM builds in the cluster for the nodes of {releases} (`fallback = \"build\"`)",
                self.driver
            )
        } else {
            format!(
                "driver `{}`: KMM loads nothing on the nodes of {releases}: no image for the kernel they boot, and no `fallback`",
                self.driver
            )
        }
    }
}

/// Every driver whose exported Module would map some locked release's nodes to nothing
/// literal, in matrix order (the same releases `export kmm` names in each Module's header).
pub fn unmapped(matrix: &Matrix, lock: &Lock) -> Vec<Unmapped> {
    matrix
        .drivers
        .iter()
        .filter_map(|d| {
            let releases: Vec<String> = unserved(matrix, lock, d)
                .iter()
                .map(|r| r.label())
                .collect();
            (!releases.is_empty()).then(|| Unmapped {
                driver: d.name.clone(),
                releases,
                fallback: d.kmm.fallback.is_some(),
            })
        })
        .collect()
}

/// The releases left without a driver by `gaps`: each once, in lock order.
pub fn releases_left(gaps: &[Gap]) -> Vec<&LockedRelease> {
    let mut out: Vec<&LockedRelease> = gaps.iter().flat_map(|g| &g.releases).collect();
    out.sort_by(|a, b| a.sort_key().cmp(&b.sort_key()));
    out.dedup_by(|a, b| a.sort_key() == b.sort_key());
    out
}
