//! Which jobs a run builds: `--driver`, `--kernel`, `--arch` and `--shard I/N`.
//!
//! Shards are assigned from a hash of the job key (driver, kernel, arch) alone, so a job lands
//! in the same shard whatever else the matrix holds, and the N shards of a plan cover every job
//! exactly once. The index is 0-based, as Kubernetes' `$JOB_COMPLETION_INDEX` of an Indexed Job.

use std::fmt;
use std::str::FromStr;

use sha2::{Digest as _, Sha256};

use crate::domain::{Arch, Kernel};
use crate::plan::Job;

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

/// The stable shard of a job key: the first 8 bytes of a SHA-256 of the key, modulo N.
pub fn shard_of(driver: &str, kernel: &Kernel, arch: Arch, count: u64) -> u64 {
    let mut h = Sha256::new();
    for part in [driver, kernel.as_str(), arch.as_str()] {
        h.update(part.as_bytes());
        h.update([0]);
    }
    let bytes: [u8; 8] = h.finalize()[..8]
        .try_into()
        .expect("a SHA-256 has more than 8 bytes");
    u64::from_be_bytes(bytes) % count
}

impl Shard {
    pub fn contains(&self, job: &Job) -> bool {
        shard_of(&job.driver, &job.kernel, job.arch, self.count) == self.index
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
}

impl Selection {
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
                .is_none_or(|s| shard_of(driver, kernel, arch, s.count) == s.index)
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
}
