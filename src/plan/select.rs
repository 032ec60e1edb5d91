//! Which jobs a run builds: `--driver`, `--kernel`, `--arch` and `--shard I/N`.
//!
//! Shards are balanced: the planned jobs are ordered, the jobs the lock does not hold fresh
//! first, then by a hash of the job key (driver, kernel, arch), and dealt to the N shards in
//! turn. The largest shard then holds at most one job more than the smallest, both of all the
//! jobs and of the jobs to build, whatever their count. The order depends only on the matrix,
//! the releases and the lock, so every runner of one nightly computes the same shards from the
//! same checkout. A locked image whose job left the plan has no place in that order: the hash
//! alone (modulo N) names the one shard that drops it. The index is 0-based, as Kubernetes'
//! `$JOB_COMPLETION_INDEX` of an Indexed Job.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use sha2::{Digest as _, Sha256};

use super::{Job, Plan};
use crate::domain::{Arch, Kernel, did_you_mean};
use crate::matrix::Matrix;

/// `--shard I/N`: the I-th of N shards, `0 <= I < N`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: u64,
    pub count: u64,
}

impl FromStr for Shard {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let usage = || format!("`{s}` is not a shard: expected `I/N` with 0 <= I < N, like `0/4`");
        let (i, n) = s.split_once('/').ok_or_else(usage)?;
        let index: u64 = i.trim().parse().map_err(|_| usage())?;
        let count: u64 = n.trim().parse().map_err(|_| usage())?;
        if count == 0 {
            return Err(format!("`{s}` has no shards: N must be at least 1"));
        }
        if index >= count {
            return Err(format!(
                "shard `{s}` is out of range: the index is 0-based, from 0 to {}",
                count - 1
            ));
        }
        Ok(Shard { index, count })
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// The first 8 bytes of a SHA-256 of a job key: where it sorts among the jobs of its tier.
fn key_hash(driver: &str, kernel: &Kernel, arch: Arch) -> u64 {
    let mut h = Sha256::new();
    for part in [driver, kernel.as_str(), arch.as_str()] {
        h.update(part.as_bytes());
        h.update([0]);
    }
    let bytes: [u8; 8] = h.finalize()[..8]
        .try_into()
        .expect("a SHA-256 has more than 8 bytes");
    u64::from_be_bytes(bytes)
}

/// The shard of a job key that is not in the plan: its hash modulo N.
pub fn shard_of(driver: &str, kernel: &Kernel, arch: Arch, count: u64) -> u64 {
    key_hash(driver, kernel, arch) % count
}

/// The shard of every planned job, for one shard count.
#[derive(Debug, Clone)]
pub struct Assignment {
    count: u64,
    shards: Arc<HashMap<(String, Kernel, Arch), u64>>,
}

impl Assignment {
    /// Deals `jobs` to `count` shards: the jobs to build (not fresh in the lock) first, then
    /// the fresh ones, each tier in hash order, one job per shard in turn.
    pub fn new(jobs: &[Job], count: u64) -> Self {
        let mut order: Vec<(bool, u64, &Job)> = jobs
            .iter()
            .map(|j| {
                let fresh = j.state == crate::plan::State::Fresh;
                (fresh, key_hash(&j.driver, &j.kernel, j.arch), j)
            })
            .collect();
        // The key breaks the (unlikely) tie of two equal hashes, so the order is total.
        order.sort_by(|a, b| (a.0, a.1, a.2.key()).cmp(&(b.0, b.1, b.2.key())));
        let shards = order
            .into_iter()
            .zip((0..count).cycle())
            .map(|((_, _, j), shard)| ((j.driver.clone(), j.kernel.clone(), j.arch), shard))
            .collect();
        Assignment {
            count,
            shards: Arc::new(shards),
        }
    }

    /// The shard of a job key: its dealt shard when planned, else its hash modulo N.
    pub fn shard(&self, driver: &str, kernel: &Kernel, arch: Arch) -> u64 {
        self.shards
            .get(&(driver.to_string(), kernel.clone(), arch))
            .copied()
            .unwrap_or_else(|| shard_of(driver, kernel, arch, self.count))
    }
}

/// The selection flags; empty lists select everything.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    pub drivers: Vec<String>,
    /// Kernels as written (exact or in their tag-normalized form).
    pub kernels: Vec<String>,
    pub arches: Vec<Arch>,
    pub shard: Option<Shard>,
    /// The plan's jobs dealt to `shard.count` shards; without it (or for a key it does not
    /// hold) a key's shard is its hash modulo N.
    pub assignment: Option<Assignment>,
}

/// A selection flag that names nothing the matrix or the plan has: a usage error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, miette::Diagnostic)]
#[error("{message}")]
#[diagnostic(code(driver_matrix::usage))]
pub struct SelectionError {
    pub message: String,
    #[help]
    pub help: Option<String>,
}

impl Selection {
    /// The selection of `--driver`, `--kernel`, `--arch` and `--shard`, each driver and kernel
    /// checked against the matrix and the plan (a typo selects nothing, silently, otherwise).
    pub fn checked(
        matrix: &Matrix,
        plan: &Plan,
        drivers: &[String],
        kernels: &[String],
        arches: &[Arch],
        shard: Option<Shard>,
    ) -> Result<Selection, SelectionError> {
        for d in drivers {
            if matrix.driver(d).is_none() {
                let names = matrix.drivers.iter().map(|d| d.name.as_str());
                let help = match did_you_mean(d, names.clone()) {
                    Some(close) => format!("did you mean `{close}`?"),
                    None => format!("the drivers are: {}", names.collect::<Vec<_>>().join(", ")),
                };
                return Err(SelectionError {
                    message: format!("`--driver {d}` names no driver of the matrix"),
                    help: Some(help),
                });
            }
        }
        let known: BTreeSet<&str> = plan.jobs.iter().map(|j| j.kernel.as_str()).collect();
        for k in kernels {
            let found = plan
                .jobs
                .iter()
                .any(|j| j.kernel.as_str() == k || j.kernel.normalized() == *k);
            if !found {
                return Err(SelectionError {
                    message: format!("`--kernel {k}` names no kernel of the plan"),
                    help: Some(format!(
                        "the plan's kernels are: {}",
                        known.iter().copied().collect::<Vec<_>>().join(", ")
                    )),
                });
            }
        }
        Ok(Selection {
            drivers: drivers.to_vec(),
            kernels: kernels.to_vec(),
            arches: arches.to_vec(),
            shard,
            assignment: shard.map(|s| Assignment::new(&plan.jobs, s.count)),
        })
    }

    pub fn contains(&self, job: &Job) -> bool {
        self.matches(&job.driver, &job.kernel, job.arch)
    }

    /// Whether the job key (driver, kernel, arch) is selected; also asked of locked images
    /// whose job left the plan.
    pub fn matches(&self, driver: &str, kernel: &Kernel, arch: Arch) -> bool {
        (self.drivers.is_empty() || self.drivers.iter().any(|d| d == driver))
            && (self.kernels.is_empty()
                || self
                    .kernels
                    .iter()
                    .any(|k| k == kernel.as_str() || *k == kernel.normalized()))
            && (self.arches.is_empty() || self.arches.contains(&arch))
            && self
                .shard
                .is_none_or(|s| self.shard_of(driver, kernel, arch, s) == s.index)
    }

    fn shard_of(&self, driver: &str, kernel: &Kernel, arch: Arch, s: Shard) -> u64 {
        match &self.assignment {
            Some(a) if a.count == s.count => a.shard(driver, kernel, arch),
            _ => shard_of(driver, kernel, arch, s.count),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_zero_based_shards() {
        assert_eq!("0/4".parse::<Shard>(), Ok(Shard { index: 0, count: 4 }));
        assert_eq!("3/4".parse::<Shard>(), Ok(Shard { index: 3, count: 4 }));
        assert!("4/4".parse::<Shard>().unwrap_err().contains("0-based"));
        assert!("0/0".parse::<Shard>().is_err());
        assert!("1".parse::<Shard>().is_err());
        assert!("-1/2".parse::<Shard>().is_err());
    }

    #[test]
    fn assignment_is_stable_and_covers_every_key_once() {
        let kernels: Vec<Kernel> = (0..50)
            .map(|i| format!("5.14.0-{i}.el9.x86_64").parse().unwrap())
            .collect();
        for n in 1..6 {
            for k in &kernels {
                let s = shard_of("d", k, Arch::X86_64, n);
                assert!(s < n);
                assert_eq!(s, shard_of("d", k, Arch::X86_64, n));
            }
        }
        // Pinned: a change here moves jobs between the shards of running CI pipelines.
        let k: Kernel = "5.14.0-284.52.1.el9_2.x86_64".parse().unwrap();
        assert_eq!(shard_of("hello-kmod", &k, Arch::X86_64, 1000), 814);
        assert_eq!(shard_of("hello-kmod", &k, Arch::X86_64, 4), 2);
        // Spread: with 4 shards, 50 keys do not all land in one.
        let used: std::collections::BTreeSet<u64> = kernels
            .iter()
            .map(|k| shard_of("d", k, Arch::X86_64, 4))
            .collect();
        assert!(used.len() > 1);
    }

    fn jobs(n: usize, to_build: usize) -> Vec<Job> {
        (0..n)
            .map(|i| Job {
                driver: format!("d{}", i % 3),
                kernel: format!("5.14.0-{i}.el9.x86_64").parse().unwrap(),
                arch: Arch::X86_64,
                rt: false,
                releases: vec![],
                dtk: format!("quay.io/r/dtk@sha256:{}", "ab".repeat(32))
                    .parse()
                    .unwrap(),
                rhel: "9.2".into(),
                image: format!("127.0.0.1:5000/acme/d:{i}").parse().unwrap(),
                driver_args: Arc::new(Default::default()),
                inputs: crate::domain::Digest::sha256(b"x"),
                state: if i < to_build {
                    crate::plan::State::New
                } else {
                    crate::plan::State::Fresh
                },
            })
            .collect()
    }

    /// The number of jobs of `jobs` (or of those to build) in each of `count` shards.
    fn sizes(jobs: &[Job], count: u64, only_to_build: bool) -> Vec<usize> {
        let a = Assignment::new(jobs, count);
        let mut sizes = vec![0; count as usize];
        for j in jobs {
            if !only_to_build || j.state != crate::plan::State::Fresh {
                sizes[a.shard(&j.driver, &j.kernel, j.arch) as usize] += 1;
            }
        }
        sizes
    }

    #[test]
    fn shards_differ_by_at_most_one_job_for_any_count() {
        for n in [0, 1, 9, 100, 1000] {
            for count in [1, 4, 16, 256] {
                let all = jobs(n, n / 7);
                for only in [false, true] {
                    let s = sizes(&all, count, only);
                    let (min, max) = (s.iter().min().unwrap(), s.iter().max().unwrap());
                    assert!(max - min <= 1, "{n} jobs over {count}: {min}..{max}");
                    let expected = if only { n / 7 } else { n };
                    assert_eq!(s.iter().sum::<usize>(), expected, "each job once");
                }
            }
        }
    }

    #[test]
    fn assignment_does_not_depend_on_the_order_of_the_plan() {
        let all = jobs(100, 10);
        let mut reversed = all.clone();
        reversed.reverse();
        let (a, b) = (Assignment::new(&all, 16), Assignment::new(&reversed, 16));
        for j in &all {
            assert_eq!(
                a.shard(&j.driver, &j.kernel, j.arch),
                b.shard(&j.driver, &j.kernel, j.arch)
            );
        }
    }

    #[test]
    fn a_key_out_of_the_plan_falls_back_to_its_hash() {
        let a = Assignment::new(&jobs(9, 0), 4);
        let k: Kernel = "5.14.0-284.52.1.el9_2.x86_64".parse().unwrap();
        assert_eq!(a.shard("hello-kmod", &k, Arch::X86_64), 2);
        let sel = Selection {
            shard: Some(Shard { index: 2, count: 4 }),
            assignment: Some(a),
            ..Selection::default()
        };
        assert!(sel.matches("hello-kmod", &k, Arch::X86_64));
    }
}
