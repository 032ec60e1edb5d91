//! Cells → groups: every (driver, release, arch) the matrix asks for, after the driver's
//! `openshift` constraint and `arch` subset and the `[[exclude]]` rules, grouped by the job it
//! belongs to (driver, kernel, arch); `rt = true` adds the release to its RT kernel's group too.
//! A dual-stream release is a cell per stream: each stream's kernel has its own group. A
//! `[[toolkit]]` kernel is a cell of its own, grouped like a release's.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use sha2::Sha256;

use super::{PlanInput, exclude};
use crate::domain::{Arch, Digest, Kernel, Version};
use crate::inputs::{DriverInputs, driver_hasher};
use crate::lock::LockedRelease;
use crate::matrix::{Driver, KernelCell, Matrix, Toolkit};

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
    /// The groups, sorted by (driver, kernel, arch).
    pub groups: Vec<(Key<'a>, Group<'a>)>,
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
    /// (driver index, kernel id, arch) of each group of `groups`, for sorting.
    ids: Vec<(u32, u32, Arch)>,
    /// Where the current driver's group of (kernel id, arch) is in `groups` (`u32::MAX`: none
    /// yet), at `kernel id * 4 + arch`: the hundreds of thousands of cells of a large matrix
    /// find their group by an index, without hashing or comparing strings.
    slots: Vec<u32>,
    /// Kernel ids: each distinct kernel string gets one.
    kernels: Kernels<'a>,
}

/// Distinct kernels, numbered.
#[derive(Default)]
struct Kernels<'a> {
    ids: HashMap<&'a Kernel, u32>,
    all: Vec<&'a Kernel>,
}

impl<'a> Kernels<'a> {
    fn id(&mut self, kernel: &'a Kernel) -> u32 {
        if let Some(&id) = self.ids.get(kernel) {
            return id;
        }
        let id = u32::try_from(self.all.len()).expect("fewer than 4 billion kernels");
        self.all.push(kernel);
        self.ids.insert(kernel, id);
        id
    }

    /// Each id's position in the sorted order of the kernels.
    fn ranks(&self) -> Vec<u32> {
        let mut order: Vec<u32> = (0..self.all.len() as u32).collect();
        order.sort_unstable_by(|&a, &b| self.all[a as usize].cmp(self.all[b as usize]));
        let mut rank = vec![0; order.len()];
        for (r, id) in order.into_iter().enumerate() {
            rank[id as usize] = r as u32;
        }
        rank
    }
}

/// A version's streams for one arch (`None`: not resolved).
type ArchStreams<'r, 'a> = (Arch, Option<&'r Vec<Stream<'a>>>);

/// A release with its kernels numbered.
struct Stream<'a> {
    release: &'a LockedRelease,
    kernel: u32,
    rt: Option<u32>,
}

/// Expands every driver × version × arch of `input`.
pub fn expand<'a>(input: &PlanInput<'a>, shared: &'a DriverShared) -> Expansion<'a> {
    let matrix = input.matrix;
    let mut out = Expansion::empty(matrix);
    let by_release = out.streams_by_release(input.releases);
    for t in &matrix.toolkits {
        out.kernels.id(&t.kernel);
    }
    let streams_of = streams_per_version(input.versions, &by_release);
    for (i, driver) in matrix.drivers.iter().enumerate() {
        let (args, hasher) = (&shared.args[i], &shared.hashers[i]);
        let d = u32::try_from(i).expect("fewer than 4 billion drivers");
        out.begin_driver();
        for (version, streams_of) in input.versions.iter().zip(&streams_of) {
            if driver
                .openshift
                .as_ref()
                .is_some_and(|r| !r.matches(version))
            {
                continue;
            }
            for &arch in &driver.arches {
                let group = |rt| Group {
                    driver,
                    args,
                    hasher,
                    rt,
                    releases: Vec::new(),
                    toolkit: None,
                };
                out.add_cell(d, (matrix, driver), (version, arch), streams_of, group);
            }
        }
        out.add_toolkits(d, matrix, driver, args, hasher);
    }
    out.sort(matrix);
    out
}

/// Each version's streams per arch, looked up once rather than once per driver.
fn streams_per_version<'r, 'a>(
    versions: &'a [Version],
    by_release: &'r HashMap<(&'a Version, Arch), Vec<Stream<'a>>>,
) -> Vec<Vec<ArchStreams<'r, 'a>>> {
    versions
        .iter()
        .map(|v| {
            Arch::ALL
                .iter()
                .map(|&a| (a, by_release.get(&(v, a))))
                .collect()
        })
        .collect()
}

impl<'a> Expansion<'a> {
    /// Nothing expanded yet.
    fn empty(matrix: &Matrix) -> Expansion<'a> {
        Expansion {
            groups: Vec::new(),
            cells: 0,
            builds_without_sharing: 0,
            excludes_used: vec![false; matrix.excludes.len()],
            missing_rt: BTreeSet::new(),
            unresolved: BTreeSet::new(),
            ids: Vec::new(),
            slots: Vec::new(),
            kernels: Kernels::default(),
        }
    }

    /// Every stream of each release, its kernels numbered (a dual-stream release has two
    /// kernels, so two jobs).
    fn streams_by_release(
        &mut self,
        releases: &'a [LockedRelease],
    ) -> HashMap<(&'a Version, Arch), Vec<Stream<'a>>> {
        let mut by_release: HashMap<(&Version, Arch), Vec<Stream<'a>>> = HashMap::new();
        for r in releases {
            let stream = Stream {
                release: r,
                kernel: self.kernels.id(&r.kernel),
                rt: r.rt_kernel.as_ref().map(|k| self.kernels.id(k)),
            };
            by_release
                .entry((&r.version, r.arch))
                .or_default()
                .push(stream);
        }
        by_release
    }

    /// Adds the cell (`version`, `arch`) of `driver`: one per stream the matrix builds, unless
    /// an `[[exclude]]` drops the whole cell; a release not resolved is recorded as such.
    fn add_cell(
        &mut self,
        d: u32,
        (matrix, driver): (&'a Matrix, &'a Driver),
        (version, arch): (&'a Version, Arch),
        streams_of: &[ArchStreams<'_, 'a>],
        group: impl Fn(bool) -> Group<'a> + Copy,
    ) {
        if self.drops_cell(matrix, driver, version, arch) {
            return;
        }
        let Some(streams) = streams_of
            .iter()
            .find(|(a, _)| *a == arch)
            .and_then(|(_, s)| *s)
        else {
            self.unresolved.insert((version, arch));
            return;
        };
        for stream in streams {
            if matrix.openshift.builds_stream(stream.release.stream_name()) {
                self.add(d, stream, (matrix, driver), arch, group);
            }
        }
    }

    /// Whether an `[[exclude]]` without `kernel` or `stream` drops the whole cell; marks every
    /// such rule that matches it as used.
    fn drops_cell(
        &mut self,
        matrix: &Matrix,
        driver: &Driver,
        version: &Version,
        arch: Arch,
    ) -> bool {
        let mut dropped = false;
        for (i, e) in matrix.excludes.iter().enumerate() {
            if e.drops_cell(&driver.name, version, arch) {
                self.excludes_used[i] = true;
                dropped = true;
            }
        }
        dropped
    }

    /// Whether an `[[exclude]]` drops one kernel of a cell; marks every rule that matches it
    /// as used.
    fn excluded(&mut self, matrix: &Matrix, cell: &KernelCell<'_>) -> bool {
        let mut excluded = false;
        for (i, e) in matrix.excludes.iter().enumerate() {
            if e.matches(cell) {
                self.excludes_used[i] = true;
                excluded = true;
            }
        }
        excluded
    }

    /// The group of (driver `d`, `kernel`, `arch`), made by `make` when it is the first.
    fn group(
        &mut self,
        d: u32,
        kernel: (u32, &'a Kernel),
        arch: Arch,
        make: impl FnOnce() -> Group<'a>,
    ) -> &mut Group<'a> {
        let slot = kernel.0 as usize * Arch::ALL.len() + arch as usize;
        if self.slots[slot] == u32::MAX {
            let g = make();
            self.groups
                .push(((g.driver.name.as_str(), kernel.1, arch), g));
            self.ids.push((d, kernel.0, arch));
            self.slots[slot] =
                u32::try_from(self.groups.len() - 1).expect("fewer than 4 billion jobs");
        }
        let at = self.slots[slot] as usize;
        &mut self.groups[at].1
    }

    /// Forgets the previous driver's groups in `slots` (every kernel is numbered by now).
    fn begin_driver(&mut self) {
        self.slots.clear();
        self.slots
            .resize(self.kernels.all.len() * Arch::ALL.len(), u32::MAX);
    }

    /// Adds a cell for every `[[toolkit]]` kernel of the driver's arches. Where a release
    /// offers the same kernel, its DTK builds it (the toolkit is only recorded).
    fn add_toolkits(
        &mut self,
        d: u32,
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
            let kernel = (self.kernels.id(&t.kernel), &t.kernel);
            self.group(d, kernel, t.arch, || Group {
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

    /// Adds the cell of `stream` to its kernel's group, and to its RT kernel's when the
    /// driver asks for one; a kernel an `[[exclude]]` names is left out.
    fn add(
        &mut self,
        d: u32,
        stream: &Stream<'a>,
        (matrix, driver): (&Matrix, &'a Driver),
        arch: Arch,
        group: impl Fn(bool) -> Group<'a>,
    ) {
        let release = stream.release;
        let main = !self.excluded(matrix, &exclude::cell(driver, release, &release.kernel));
        if main {
            self.cells += 1;
            self.builds_without_sharing += 1;
            self.group(d, (stream.kernel, &release.kernel), arch, || group(false))
                .releases
                .push(release);
        }
        if !driver.rt {
            return;
        }
        match (stream.rt, &release.rt_kernel) {
            (Some(id), Some(rt)) => {
                if self.excluded(matrix, &exclude::cell(driver, release, rt)) {
                    return;
                }
                self.cells += usize::from(!main);
                self.builds_without_sharing += 1;
                self.group(d, (id, rt), arch, || group(true))
                    .releases
                    .push(release);
            }
            _ if main => {
                self.missing_rt
                    .insert((&driver.name, &release.version, arch));
            }
            _ => {}
        }
    }

    /// Puts the groups in (driver name, kernel, arch) order, by integer ranks.
    fn sort(&mut self, matrix: &Matrix) {
        let mut drivers: Vec<u32> = (0..matrix.drivers.len() as u32).collect();
        drivers.sort_by(|&a, &b| {
            matrix.drivers[a as usize]
                .name
                .cmp(&matrix.drivers[b as usize].name)
        });
        let mut driver_rank = vec![0u32; drivers.len()];
        for (r, d) in drivers.into_iter().enumerate() {
            driver_rank[d as usize] = r as u32;
        }
        let kernel_rank = self.kernels.ranks();
        let mut order: Vec<((u32, u32, Arch), usize)> = std::mem::take(&mut self.ids)
            .into_iter()
            .enumerate()
            .map(|(at, (d, k, a))| ((driver_rank[d as usize], kernel_rank[k as usize], a), at))
            .collect();
        order.sort_unstable_by_key(|&(key, _)| key);
        let mut slots: Vec<Option<(Key<'a>, Group<'a>)>> = std::mem::take(&mut self.groups)
            .into_iter()
            .map(Some)
            .collect();
        self.groups = order
            .into_iter()
            .filter_map(|(_, at)| slots[at].take())
            .collect();
    }
}
