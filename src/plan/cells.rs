//! Cells → groups: every (driver, release, arch) the matrix asks for, after the driver's
//! `openshift` constraint and `arch` subset and the `[[exclude]]` rules, grouped by the job it
//! belongs to (driver, kernel, arch); `rt = true` adds the release to its RT kernel's group too.
//! A dual-stream release is a cell per stream: each stream's kernel has its own group. A
//! `[[toolkit]]` kernel is a cell of its own, grouped like a release's.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use sha2::Sha256;

use super::PlanInput;
use crate::domain::{Arch, Digest, Kernel, Version};
use crate::inputs::{DriverInputs, driver_hasher};
use crate::lock::LockedRelease;
use crate::matrix::{Driver, Matrix, Toolkit};

/// What a driver's jobs share, computed once per driver: its build args, and its part of the
/// inputs hash.
pub struct DriverShared {
    args: Vec<Arc<BTreeMap<String, String>>>,
    hashers: Vec<Sha256>,
}

impl DriverShared {
    pub fn of(matrix: &Matrix, contexts: &BTreeMap<String, Digest>) -> DriverShared {
        let args = matrix
            .drivers
            .iter()
            .map(|d| Arc::new(d.build_args.clone()))
            .collect();
        let hashers = matrix
            .drivers
            .iter()
            .map(|d| {
                driver_hasher(&DriverInputs {
                    context: contexts
                        .get(&d.name)
                        .expect("a context digest is computed for every driver"),
                    containerfile: &d.containerfile,
                    build_args: &d.build_args,
                })
            })
            .collect();
        DriverShared { args, hashers }
    }
}

/// The cells of one job.
pub struct Group<'a> {
    pub driver: &'a Driver,
    pub args: &'a Arc<BTreeMap<String, String>>,
    pub hasher: &'a Sha256,
    pub rt: bool,
    pub releases: Vec<&'a LockedRelease>,
    /// The `[[toolkit]]` naming this kernel, for a kernel no release offers.
    pub toolkit: Option<&'a Toolkit>,
}

type Key<'a> = (&'a str, &'a Kernel, Arch);

/// The matrix expanded.
pub struct Expansion<'a> {
    pub groups: BTreeMap<Key<'a>, Group<'a>>,
    /// (driver, release, arch) cells after filters.
    pub cells: usize,
    /// Builds a per-release script would run: one per cell, plus one per RT kernel.
    pub builds_without_sharing: usize,
    /// Which `[[exclude]]` rules matched something.
    pub excludes_used: Vec<bool>,
    /// (driver, version, arch) asking for an RT kernel the release does not have.
    pub missing_rt: BTreeSet<(&'a str, &'a Version, Arch)>,
    /// (version, arch) the matrix asks for that `releases` does not hold.
    pub unresolved: BTreeSet<(&'a Version, Arch)>,
}

/// Expands every driver × version × arch of `input`.
pub fn expand<'a>(input: &PlanInput<'a>, shared: &'a DriverShared) -> Expansion<'a> {
    let matrix = input.matrix;
    // Every stream of a release (a dual-stream release has two kernels, so two jobs).
    let mut by_release: HashMap<(&Version, Arch), Vec<&LockedRelease>> = HashMap::new();
    for r in input.releases {
        by_release.entry((&r.version, r.arch)).or_default().push(r);
    }
    let mut out = Expansion {
        groups: BTreeMap::new(),
        cells: 0,
        builds_without_sharing: 0,
        excludes_used: vec![false; matrix.excludes.len()],
        missing_rt: BTreeSet::new(),
        unresolved: BTreeSet::new(),
    };
    for (i, driver) in matrix.drivers.iter().enumerate() {
        let (args, hasher) = (&shared.args[i], &shared.hashers[i]);
        for version in input.versions {
            if driver
                .openshift
                .as_ref()
                .is_some_and(|r| !r.matches(version))
            {
                continue;
            }
            for &arch in &driver.arches {
                if out.excluded(matrix, driver, version, arch) {
                    continue;
                }
                let Some(streams) = by_release.get(&(version, arch)) else {
                    out.unresolved.insert((version, arch));
                    continue;
                };
                let group = |rt| Group {
                    driver,
                    args,
                    hasher,
                    rt,
                    releases: Vec::new(),
                    toolkit: None,
                };
                for release in streams {
                    if matrix.openshift.builds_stream(release.stream_name()) {
                        out.add(release, driver, arch, group);
                    }
                }
            }
        }
        out.add_toolkits(matrix, driver, args, hasher);
    }
    out
}

impl<'a> Expansion<'a> {
    /// Whether an `[[exclude]]` drops the cell; marks every rule that matches it as used.
    fn excluded(
        &mut self,
        matrix: &Matrix,
        driver: &Driver,
        version: &Version,
        arch: Arch,
    ) -> bool {
        let mut excluded = false;
        for (i, e) in matrix.excludes.iter().enumerate() {
            if e.matches(&driver.name, version, arch) {
                self.excludes_used[i] = true;
                excluded = true;
            }
        }
        excluded
    }

    /// Adds a cell for every `[[toolkit]]` kernel of the driver's arches. Where a release
    /// offers the same kernel, its DTK builds it (the toolkit is only recorded).
    fn add_toolkits(
        &mut self,
        matrix: &'a Matrix,
        driver: &'a Driver,
        args: &'a Arc<BTreeMap<String, String>>,
        hasher: &'a Sha256,
    ) {
        for t in matrix
            .toolkits
            .iter()
            .filter(|t| driver.arches.contains(&t.arch))
        {
            self.cells += 1;
            self.builds_without_sharing += 1;
            self.groups
                .entry((&driver.name, &t.kernel, t.arch))
                .or_insert_with(|| Group {
                    driver,
                    args,
                    hasher,
                    rt: false,
                    releases: Vec::new(),
                    toolkit: None,
                })
                .toolkit = Some(t);
        }
    }

    /// Adds the cell of `release` to its kernel's group, and to its RT kernel's when the
    /// driver asks for one.
    fn add(
        &mut self,
        release: &'a LockedRelease,
        driver: &'a Driver,
        arch: Arch,
        group: impl Fn(bool) -> Group<'a>,
    ) {
        self.cells += 1;
        self.builds_without_sharing += 1;
        self.groups
            .entry((&driver.name, &release.kernel, arch))
            .or_insert_with(|| group(false))
            .releases
            .push(release);
        if !driver.rt {
            return;
        }
        match &release.rt_kernel {
            Some(rt) => {
                self.builds_without_sharing += 1;
                self.groups
                    .entry((&driver.name, rt, arch))
                    .or_insert_with(|| group(true))
                    .releases
                    .push(release);
            }
            None => {
                self.missing_rt
                    .insert((&driver.name, &release.version, arch));
            }
        }
    }
}
