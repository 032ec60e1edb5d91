//! The planner: matrix × resolved releases → build jobs. Pure: no I/O, deterministic output.
//!
//! A *cell* is (driver, release, arch), filtered by the driver's `openshift` constraint and
//! `arch` subset and by `[[exclude]]`. A *job* is (driver, kernel, arch): cells whose releases
//! share a kernel share one job and one image. `rt = true` adds a job for each RT kernel.

mod cells;
pub mod exclude;
pub mod select;
mod view;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use crate::domain::{Arch, Digest, ImageRef, Kernel, Version};
use crate::inputs::{DriverInputs, JobInputs, driver_hasher, hash_job};
use crate::lock::{Lock, LockedImage, LockedRelease};
use crate::matrix::{Driver, Matrix, Problem};
use crate::names::{arg, placeholder};

pub use select::{Assignment, Selection, SelectionError, Shard};
pub use view::{render_json, render_table};

/// How a job compares with the lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// The lock holds an image with the same inputs hash and reference.
    Fresh,
    /// The lock holds an image for this (driver, kernel, arch), built from other inputs.
    Stale,
    /// The lock holds no image for this (driver, kernel, arch).
    New,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Fresh => "fresh",
            State::Stale => "stale",
            State::New => "new",
        }
    }
}

/// One build: a driver for one kernel on one arch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    pub driver: String,
    pub kernel: Kernel,
    pub arch: Arch,
    /// Built for a real-time kernel.
    pub rt: bool,
    /// The releases this image serves, sorted.
    pub releases: Vec<Version>,
    /// The DTK by digest (source reference, never a mirror's).
    pub dtk: ImageRef,
    pub rhel: String,
    /// `repository:tag` the image is pushed to.
    pub image: ImageRef,
    /// The driver's own build args, shared by all of its jobs (see [`Job::build_args`]).
    pub driver_args: Arc<BTreeMap<String, String>>,
    pub inputs: Digest,
    pub state: State,
}

impl Job {
    pub fn key(&self) -> (&str, &Kernel, Arch) {
        (&self.driver, &self.kernel, self.arch)
    }

    /// `driver/kernel/arch`, how jobs are named in messages and logs.
    pub fn id(&self) -> String {
        format!("{}/{}/{}", self.driver, self.kernel, self.arch)
    }

    /// The lock entry for this job's image once it is in the registry at `digest`.
    pub fn locked(&self, digest: Digest) -> LockedImage {
        LockedImage {
            driver: self.driver.clone(),
            kernel: self.kernel.clone(),
            arch: self.arch,
            dtk: self.dtk.clone(),
            inputs: self.inputs.clone(),
            image: self.image.clone(),
            digest,
            releases: self.releases.clone(),
        }
    }

    /// Every build arg, the reserved ones and the driver's own, sorted by name.
    pub fn build_args(&self) -> BTreeMap<String, String> {
        let dtk = self.dtk.to_string();
        let mut args = (*self.driver_args).clone();
        for (k, v) in reserved_args(&dtk, &self.kernel, &self.rhel) {
            args.insert(k.to_string(), v.to_string());
        }
        args
    }
}

/// The reserved build args of a job, in name order.
fn reserved_args<'a>(
    dtk: &'a str,
    kernel: &'a Kernel,
    rhel: &'a str,
) -> [(&'static str, &'a str); 5] {
    [
        (arg::DTK_AUTO, dtk),
        (arg::DTK_IMAGE, dtk),
        (arg::KERNEL_FULL_VERSION, kernel.as_str()),
        (arg::KERNEL_VERSION, kernel.as_str()),
        (arg::RHEL_VERSION, rhel),
    ]
}

/// The plan: jobs sorted by (driver, kernel, arch), and what was noticed on the way.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    pub jobs: Vec<Job>,
    /// Number of (driver, release, arch) cells after filters.
    pub cells: usize,
    /// Builds a per-release script would run: one per cell, plus one per cell with an RT kernel.
    pub builds_without_sharing: usize,
    pub warnings: Vec<Problem>,
}

#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum PlanError {
    #[error("{} not resolved: {}", if .0.len() == 1 { "a release is" } else { "releases are" }, .0.join(", "))]
    #[diagnostic(
        code(driver_matrix::plan::unresolved),
        help(
            "run `driver-matrix resolve` (without `--offline`) to resolve them and record them in the lock"
        )
    )]
    Unresolved(Vec<String>),

    #[error("driver `{driver}` renders tag `{tag}` for both {first} and {second}")]
    #[diagnostic(
        code(driver_matrix::plan::tag_collision),
        help(
            "put `${{KERNEL_FULL_VERSION}}` (and `${{ARCH}}` when building several arches) into the driver's `tag`"
        )
    )]
    TagCollision {
        driver: String,
        tag: String,
        first: String,
        second: String,
    },

    #[error("drivers push to the same image `{image}`: {first} and {second}")]
    #[diagnostic(
        code(driver_matrix::plan::image_collision),
        help(
            "give each driver its own `image` repository, or put `${{DRIVER}}` into the `tag` of one of them"
        )
    )]
    ImageCollision {
        image: String,
        first: String,
        second: String,
    },

    #[error("driver `{driver}` renders an invalid tag for kernel `{kernel}`: {message}")]
    #[diagnostic(code(driver_matrix::plan::bad_tag))]
    BadTag {
        driver: String,
        kernel: Kernel,
        message: String,
    },
}

/// What the planner works from.
pub struct PlanInput<'a> {
    pub matrix: &'a Matrix,
    /// The release versions to build for: the exact ones and those channels expanded to.
    pub versions: &'a [Version],
    /// Resolutions covering every version × arch of the matrix (more are ignored).
    pub releases: &'a [LockedRelease],
    /// Each driver's context digest (see `inputs::hash_context`).
    pub contexts: &'a BTreeMap<String, Digest>,
    /// The current lock: the DTK already chosen for a job, and job states.
    pub lock: &'a Lock,
}

/// The versions to build: the exact releases and each channel's expansion, sorted, unique.
pub fn target_versions(matrix: &Matrix, channels: &BTreeMap<String, Vec<Version>>) -> Vec<Version> {
    let mut all: BTreeSet<Version> = matrix.openshift.releases.iter().cloned().collect();
    for versions in channels.values() {
        all.extend(versions.iter().cloned());
    }
    all.into_iter().collect()
}

/// Expands channels from what the lock already holds: the newest `latest` locked versions of
/// each channel's minor. This is how `--offline` sees channels.
pub fn channels_from_lock(matrix: &Matrix, lock: &Lock) -> BTreeMap<String, Vec<Version>> {
    let locked: BTreeSet<&Version> = lock.releases.iter().map(|r| &r.version).collect();
    matrix
        .openshift
        .channels
        .iter()
        .map(|c| {
            let mut versions: Vec<Version> = locked
                .iter()
                .filter(|v| v.minor_stream() == c.minor && !matrix.openshift.releases.contains(v))
                .map(|v| (*v).clone())
                .collect();
            versions.sort();
            let keep = versions.len().saturating_sub(c.latest as usize);
            (c.name.clone(), versions.split_off(keep))
        })
        .collect()
}

/// Expands the matrix into jobs: cells grouped by (driver, kernel, arch) ([`cells`]), one job
/// per group, compared with the lock.
pub fn plan(input: &PlanInput<'_>) -> Result<Plan, PlanError> {
    let matrix = input.matrix;
    let drivers = cells::DriverShared::of(matrix, input.contexts);
    let expansion = cells::expand(input, &drivers);
    if !expansion.unresolved.is_empty() {
        return Err(PlanError::Unresolved(
            expansion
                .unresolved
                .iter()
                .map(|(v, a)| format!("{v} ({a})"))
                .collect(),
        ));
    }
    let warnings = warnings(matrix, &expansion);
    let locked: HashMap<(&str, &Kernel, Arch), &LockedImage> =
        input.lock.images.iter().map(|i| (i.key(), i)).collect();
    let groups: Vec<_> = expansion.groups.iter().collect();
    // Jobs are independent: build them on every core, collected back in plan order.
    let jobs = crate::parallel::map(
        &groups,
        crate::parallel::cpu(),
        |((_, kernel, arch), group)| {
            let lock = locked
                .get(&(group.driver.name.as_str(), *kernel, *arch))
                .copied();
            make_job(group, kernel, *arch, lock)
        },
    )
    .into_iter()
    .collect::<Result<Vec<Job>, PlanError>>()?;
    check_collisions(&jobs)?;
    Ok(Plan {
        jobs,
        cells: expansion.cells,
        builds_without_sharing: expansion.builds_without_sharing,
        warnings,
    })
}

/// An `[[exclude]]` that matched nothing is a warning; releases without the RT kernel a driver
/// asks for are advice (OpenShift ships RT kernels for x86_64 only, so that is normal; shown
/// with `-v`), one line per driver and arch.
fn warnings(matrix: &Matrix, expansion: &cells::Expansion<'_>) -> Vec<Problem> {
    let mut warnings = Vec::new();
    for (e, used) in matrix.excludes.iter().zip(&expansion.excludes_used) {
        if !used {
            warnings.push(
                Problem::warning("this `[[exclude]]` rule matches no cell of the matrix")
                    .label(e.span.clone(), "matches nothing")
                    .help("remove it, or check its `driver`, `openshift` and `arch` against the matrix"),
            );
        }
    }
    let mut without_rt: BTreeMap<(&str, Arch), Vec<String>> = BTreeMap::new();
    for (driver, version, arch) in &expansion.missing_rt {
        without_rt
            .entry((driver, *arch))
            .or_default()
            .push(version.to_string());
    }
    for ((driver, arch), versions) in without_rt {
        let mut p = Problem::new(format!(
            "driver `{driver}` asks for RT kernels; {arch} releases {} have none, so only their standard kernel is built",
            versions.join(", ")
        ));
        p.severity = miette::Severity::Advice;
        warnings.push(p);
    }
    warnings
}

/// Two jobs must not push to the same `repository:tag`, within a driver or across drivers.
fn check_collisions(jobs: &[Job]) -> Result<(), PlanError> {
    let mut pushed: HashMap<&ImageRef, &Job> = HashMap::with_capacity(jobs.len());
    for job in jobs {
        let Some(first) = pushed.insert(&job.image, job) else {
            continue;
        };
        return Err(if first.driver == job.driver {
            PlanError::TagCollision {
                driver: job.driver.clone(),
                tag: job.image.tag().unwrap_or_default().to_string(),
                first: first.id(),
                second: job.id(),
            }
        } else {
            PlanError::ImageCollision {
                image: job.image.to_string(),
                first: first.id(),
                second: job.id(),
            }
        });
    }
    Ok(())
}

/// The `inputs` hash `job` would have if it were built on `dtk` (with that DTK's RHEL
/// version): how `collect` recognises an image built on another DTK of the same kernel that one
/// of the job's releases offers (the contract's DTK rule keeps an older one in the lock).
pub fn inputs_with_dtk(
    driver: &Driver,
    context: &Digest,
    job: &Job,
    dtk: &ImageRef,
    rhel: &str,
) -> Digest {
    let hasher = driver_hasher(&DriverInputs {
        context,
        containerfile: &driver.containerfile,
        build_args: &driver.build_args,
    });
    hash_job(
        &hasher,
        &JobInputs {
            arch: job.arch,
            dtk: &dtk.to_string(),
            kernel: job.kernel.as_str(),
            rhel,
        },
    )
}

fn make_job(
    group: &cells::Group<'_>,
    kernel: &Kernel,
    arch: Arch,
    locked: Option<&LockedImage>,
) -> Result<Job, PlanError> {
    let driver = group.driver;
    let mut releases = group.releases.clone();
    releases.sort_by(|a, b| a.version.cmp(&b.version));
    // Keep the DTK the lock already names while a release still offers it, so that a new
    // z-stream with a rebuilt DTK for the same kernel does not force a rebuild; else take the
    // DTK of the highest release.
    let source = locked
        .and_then(|img| releases.iter().rev().find(|r| r.dtk == img.dtk))
        .or(releases.last());
    // A kernel no release offers comes from a `[[toolkit]]`: its builder plays the DTK.
    let (dtk, rhel) = source
        .map(|r| (r.dtk.clone(), r.rhel.clone()))
        .or_else(|| group.toolkit.map(|t| (t.image.clone(), t.rhel.clone())))
        .expect("a group is made for a release or a toolkit");
    let image = image(driver, kernel, arch, &rhel)?;
    let inputs = hash_job(
        group.hasher,
        &JobInputs {
            arch,
            dtk: &dtk.to_string(),
            kernel: kernel.as_str(),
            rhel: &rhel,
        },
    );
    let state = match locked {
        None => State::New,
        Some(l) if l.inputs == inputs && l.image == image => State::Fresh,
        Some(_) => State::Stale,
    };
    Ok(Job {
        driver: driver.name.clone(),
        kernel: kernel.clone(),
        arch,
        rt: group.rt,
        releases: releases.iter().map(|r| r.version.clone()).collect(),
        dtk,
        rhel,
        image,
        driver_args: group.args.clone(),
        inputs,
        state,
    })
}

/// `repository:tag` of a job: the driver's tag template rendered with the job's values (the
/// kernel normalized as KMM does) and the driver's own build args.
fn image(driver: &Driver, kernel: &Kernel, arch: Arch, rhel: &str) -> Result<ImageRef, PlanError> {
    let normalized = kernel.normalized();
    let mut vars: BTreeMap<&str, &str> = driver
        .build_args
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    vars.insert(arg::KERNEL_FULL_VERSION, &normalized);
    vars.insert(arg::KERNEL_VERSION, &normalized);
    vars.insert(placeholder::DRIVER, &driver.name);
    vars.insert(placeholder::ARCH, arch.as_str());
    vars.insert(arg::RHEL_VERSION, rhel);
    let bad_tag = |message: String| PlanError::BadTag {
        driver: driver.name.clone(),
        kernel: kernel.clone(),
        message,
    };
    let tag = driver.tag.render(&vars).map_err(|e| bad_tag(e.message))?;
    // `build` pushes every image there before it is confirmed: a job's own tag must differ.
    if tag == crate::names::UNCONFIRMED_TAG {
        return Err(bad_tag(format!(
            "`{tag}` is the tag `build` pushes unconfirmed images to"
        )));
    }
    driver.image.with_tag(&tag).map_err(|e| bad_tag(e.message))
}

#[cfg(test)]
impl Job {
    /// A new job of `hello-kmod` for one kernel: what unit tests elsewhere start from.
    pub(crate) fn example() -> Job {
        Job {
            driver: "hello-kmod".into(),
            kernel: "5.14.0-284.52.1.el9_2.x86_64".parse().expect("a kernel"),
            arch: Arch::X86_64,
            rt: false,
            releases: vec!["4.14.12".parse().expect("a version")],
            dtk: format!("quay.io/ocp/dtk@sha256:{}", "d".repeat(64))
                .parse()
                .expect("an image"),
            rhel: "9.2".into(),
            image: "quay.io/acme/hello-kmod:t".parse().expect("an image"),
            driver_args: std::sync::Arc::new(Default::default()),
            inputs: crate::domain::Digest::sha256(b"inputs"),
            state: State::New,
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_tag_may_not_be_the_unconfirmed_tag() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        std::fs::create_dir_all(root.join("ctx")).unwrap();
        std::fs::write(root.join("ctx/Containerfile"), "FROM scratch\n").unwrap();
        let text = "[openshift]\nreleases = [\"4.18.1\"]\n\n[[driver]]\nname = \"a\"\n\
                    context = \"ctx\"\nimage = \"quay.io/acme/a\"\ntag = \"driver-matrix-${DRIVER}\"\n";
        let m = crate::matrix::parse(
            &root.join("matrix.toml"),
            &root,
            text.replace("${DRIVER}", "unconfirmed"),
        )
        .unwrap()
        .matrix;
        let kernel = "5.14.0-427.13.1.el9_4.x86_64".parse().unwrap();
        let err =
            super::image(&m.drivers[0], &kernel, crate::domain::Arch::X86_64, "9.4").unwrap_err();
        assert!(err.to_string().contains("unconfirmed images"), "{err}");
        let other = crate::matrix::parse(&root.join("matrix.toml"), &root, text.to_string())
            .unwrap()
            .matrix;
        assert!(
            super::image(
                &other.drivers[0],
                &kernel,
                crate::domain::Arch::X86_64,
                "9.4"
            )
            .is_ok()
        );
    }
}
