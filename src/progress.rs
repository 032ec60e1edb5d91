//! What a run reports while it works: releases resolved, jobs built. The resolver and the
//! executor never print; they send [`Event`]s to the one [`Reporter`] interface, which
//! `crate::report` implements at the edge (progress bars on a terminal, plain lines elsewhere,
//! only failures under `-q`). Also how each job ended ([`Outcome`]).

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::domain::{Arch, Digest, Version};
use crate::plan::Job;

/// One thing that happened. For builds, `index` is the job's place among the jobs being built.
#[derive(Debug)]
pub enum Event<'a> {
    /// Resolution starts: `total` releases (version × arch).
    Resolving { total: usize },
    /// One release is resolved: read from the registry (`fetched`), or known from the cache or,
    /// offline, the lock.
    Resolved {
        version: &'a Version,
        arch: Arch,
        fetched: bool,
    },
    /// Resolution is over.
    ResolveEnd,
    /// The build starts: `total` jobs to build (others were fresh or not selected).
    Begin { total: usize },
    Started {
        index: usize,
        job: &'a Job,
        log: &'a Path,
    },
    /// buildah printed `STEP n/m: text`.
    Step {
        index: usize,
        job: &'a Job,
        step: u32,
        steps: u32,
        text: &'a str,
    },
    /// The image is built; the push starts.
    Pushing { index: usize, job: &'a Job },
    /// Built (and pushed, and recorded in the lock, unless `--no-push`).
    Finished {
        index: usize,
        job: &'a Job,
        digest: Option<&'a Digest>,
        elapsed: Duration,
    },
    Failed {
        index: usize,
        job: &'a Job,
        failure: &'a Failure,
    },
}

/// Renders events. Called from the resolver's and the executor's worker threads.
pub trait Reporter: Sync {
    fn event(&self, event: &Event<'_>);
}

/// Discards every event.
pub struct Silent;

impl Reporter for Silent {
    fn event(&self, _: &Event<'_>) {}
}

/// Why a job failed, with what a user needs to act on it.
#[derive(Debug, Clone)]
pub struct Failure {
    /// What went wrong, one line (`exited with status 1`).
    pub message: String,
    /// The command line that failed, when a command did.
    pub command: Option<String>,
    /// The job's full log.
    pub log: PathBuf,
    /// Its last lines.
    pub tail: Vec<String>,
    pub elapsed: Duration,
}

/// How a job of the run ended.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// Built; `digest` is the pushed digest (none under `--no-push`).
    Built {
        digest: Option<Digest>,
        elapsed: Duration,
        log: PathBuf,
    },
    Failed(Failure),
    /// Stopped by Ctrl-C while it ran.
    Interrupted {
        log: PathBuf,
    },
    /// Never started: `--fail-fast` after a failure, or Ctrl-C.
    NotStarted,
}
