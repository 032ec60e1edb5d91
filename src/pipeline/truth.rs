//! The lock a run from scratch would write, computed from the lock a run starts with. Pure.
//!
//! `collect` in an empty directory is the reference: it writes the releases as resolved and, for
//! every planned job, the image its tag holds when that image was built from the job's inputs.
//! An incremental run must end with the same bytes. So, before anything is built:
//! - `[[release]]` becomes the releases as resolved now (releases that left the matrix leave);
//! - an image whose job is still planned with the same inputs and reference stays, with the
//!   job's current `releases` and DTK (a new z-stream sharing the kernel joins it, no rebuild);
//! - an image whose job changed inputs (stale) or left the plan goes: a run from scratch would
//!   not accept it either.
//!
//! A selective build (`--driver`, `--kernel`, `--arch`, `--shard`) applies the same rule to the
//! images it selected and leaves the others as they were.

use std::collections::HashMap;

use crate::domain::{Arch, Kernel};
use crate::lock::{Lock, LockedImage, LockedRelease};
use crate::plan::{Job, Plan};

/// Which images a run answers for.
pub trait Scope {
    fn covers(&self, driver: &str, kernel: &Kernel, arch: Arch) -> bool;
}

/// Every image: `resolve`, a full `build`, `collect`.
pub struct All;

impl Scope for All {
    fn covers(&self, _: &str, _: &Kernel, _: Arch) -> bool {
        true
    }
}

impl Scope for crate::plan::Selection {
    fn covers(&self, driver: &str, kernel: &Kernel, arch: Arch) -> bool {
        self.matches(driver, kernel, arch)
    }
}

/// The lock `old` brought up to date with `releases` and `plan`, without building anything.
pub fn reconcile(old: &Lock, releases: &[LockedRelease], plan: &Plan, scope: &dyn Scope) -> Lock {
    let jobs: HashMap<(&str, &Kernel, Arch), &Job> =
        plan.jobs.iter().map(|j| (j.key(), j)).collect();
    let images = old
        .images
        .iter()
        .filter_map(|image| {
            let (driver, kernel, arch) = image.key();
            if !scope.covers(driver, kernel, arch) {
                return Some(image.clone());
            }
            let job = jobs.get(&image.key())?;
            still_serves(image, job).then(|| job.locked(image.digest.clone()))
        })
        .collect();
    let mut lock = Lock {
        releases: releases.to_vec(),
        images,
    };
    lock.canonicalize();
    lock
}

/// Whether `image` is the build of `job` as planned now: same inputs (which cover the DTK, the
/// kernel, the arch and everything read from the context) and same reference.
pub fn still_serves(image: &LockedImage, job: &Job) -> bool {
    image.inputs == job.inputs && image.image == job.image
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Digest, ImageRef, Version};
    use crate::plan::Selection;
    use crate::plan::State;
    use std::collections::BTreeMap;
    use std::sync::Arc;

    const K1: &str = "5.14.0-284.52.1.el9_2.x86_64";
    const K2: &str = "5.14.0-427.18.1.el9_4.x86_64";

    fn v(s: &str) -> Version {
        s.parse().unwrap()
    }

    fn dtk(n: u8) -> ImageRef {
        format!("quay.io/r/dtk@sha256:{}", format!("{n:02x}").repeat(32))
            .parse()
            .unwrap()
    }

    fn job(driver: &str, kernel: &str, releases: &[&str], inputs: &[u8]) -> Job {
        Job {
            driver: driver.into(),
            kernel: kernel.parse().unwrap(),
            arch: Arch::X86_64,
            rt: false,
            releases: releases.iter().map(|r| v(r)).collect(),
            dtk: dtk(1),
            rhel: "9.2".into(),
            image: format!("127.0.0.1:5000/acme/{driver}:{kernel}")
                .parse()
                .unwrap(),
            driver_args: Arc::new(BTreeMap::new()),
            inputs: Digest::sha256(inputs),
            state: State::Fresh,
        }
    }

    fn release(version: &str, kernel: &str) -> LockedRelease {
        LockedRelease {
            version: v(version),
            arch: Arch::X86_64,
            stream: None,
            payload: format!("quay.io/r/p@sha256:{}", "ab".repeat(32))
                .parse()
                .unwrap(),
            dtk: dtk(1),
            kernel: kernel.parse().unwrap(),
            rt_kernel: None,
            rhel: "9.2".into(),
            machine_os: None,
            node_kernel: None,
            node_rt_kernel: None,
        }
    }

    fn plan(jobs: Vec<Job>) -> Plan {
        Plan {
            jobs,
            ..Plan::default()
        }
    }

    #[test]
    fn a_fresh_image_follows_its_job_and_stale_or_unplanned_ones_go() {
        let digest = Digest::sha256(b"pushed");
        let old = Lock {
            releases: vec![release("4.14.7", K1), release("4.14.8", K1)],
            images: vec![
                job("a", K1, &["4.14.7", "4.14.8"], b"same").locked(digest.clone()),
                job("b", K1, &["4.14.7"], b"old inputs").locked(digest.clone()),
                job("c", K2, &["4.15.1"], b"gone").locked(digest.clone()),
            ],
        };
        let releases = vec![
            release("4.14.7", K1),
            release("4.14.8", K1),
            release("4.14.9", K1),
        ];
        let now = plan(vec![
            job("a", K1, &["4.14.7", "4.14.8", "4.14.9"], b"same"),
            job("b", K1, &["4.14.7", "4.14.8", "4.14.9"], b"new inputs"),
        ]);
        let lock = reconcile(&old, &releases, &now, &All);
        assert_eq!(lock.releases, releases);
        assert_eq!(lock.images.len(), 1, "{:?}", lock.images);
        assert_eq!(lock.images[0].driver, "a");
        assert_eq!(lock.images[0].digest, digest);
        let served: Vec<String> = lock.images[0]
            .releases
            .iter()
            .map(|r| r.to_string())
            .collect();
        assert_eq!(served, ["4.14.7", "4.14.8", "4.14.9"]);
    }

    #[test]
    fn a_selection_leaves_what_it_did_not_select() {
        let digest = Digest::sha256(b"pushed");
        let old = Lock {
            releases: vec![release("4.14.7", K1)],
            images: vec![
                job("a", K1, &["4.14.7"], b"old").locked(digest.clone()),
                job("b", K1, &["4.14.7"], b"old").locked(digest.clone()),
            ],
        };
        let now = plan(vec![
            job("a", K1, &["4.14.7"], b"new"),
            job("b", K1, &["4.14.7"], b"new"),
        ]);
        let only_a = Selection {
            drivers: vec!["a".into()],
            ..Selection::default()
        };
        let lock = reconcile(&old, &old.releases, &now, &only_a);
        assert_eq!(lock.images.len(), 1);
        assert_eq!(lock.images[0].driver, "b", "b was not selected and stays");
        assert_eq!(lock.images[0].inputs, Digest::sha256(b"old"));
    }
}
