//! Keeping `matrix.lock` true while a build runs: every pushed image is written into the lock
//! the moment its push ends, so an interrupted or killed run loses nothing it pushed.
//!
//! Writers of one lockfile are serialized by an advisory lock on the sidecar file
//! `<lockfile>.lock` (the lockfile itself is replaced by rename on every write, so a lock on it
//! would be a lock on a file that no longer exists). The lock is held for the whole run.

use std::collections::BTreeSet;
use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::domain::{Arch, Kernel};
use crate::lock::{self, Lock, LockError, LockedImage, LockedRelease};
use crate::plan::Plan;

#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum RecordError {
    #[error("cannot lock `{path}`")]
    #[diagnostic(
        code(driver_matrix::build::lock_file),
        help("the directory of the lockfile must be writable")
    )]
    Guard {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error(transparent)]
    #[diagnostic(transparent)]
    Lock(#[from] LockError),
}

type Key = (String, Kernel, Arch);

/// Writes images into the lockfile; holds the advisory lock while it lives.
pub struct Recorder {
    path: PathBuf,
    /// Every job of the full plan (not only the selected ones): images for anything else are
    /// dropped from the lock.
    keep: BTreeSet<Key>,
    state: Mutex<()>,
    _guard: File,
}

fn keys(plan: &Plan) -> BTreeSet<Key> {
    plan.jobs
        .iter()
        .map(|j| (j.driver.clone(), j.kernel.clone(), j.arch))
        .collect()
}

fn retain(lock: &mut Lock, keep: &BTreeSet<Key>) {
    lock.images
        .retain(|i| keep.contains(&(i.driver.clone(), i.kernel.clone(), i.arch)));
}

/// `lock` without the images of jobs that are no longer in `plan`.
pub fn prune(mut lock: Lock, plan: &Plan) -> Lock {
    retain(&mut lock, &keys(plan));
    lock
}

/// flock(2), which `File::lock` wraps from Rust 1.89 (the crate's MSRV is 1.85). The lock goes
/// with the open file: closing it, or the process dying, releases it.
fn flock(file: &File, op: i32) -> std::io::Result<()> {
    loop {
        // SAFETY: flock on a descriptor this `File` owns; no memory is involved.
        if unsafe { libc::flock(file.as_raw_fd(), op) } == 0 {
            return Ok(());
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// `matrix.lock.lock` beside `matrix.lock`.
pub fn guard_path(lock_path: &Path) -> PathBuf {
    let mut name = lock_path.file_name().unwrap_or_default().to_os_string();
    name.push(".lock");
    lock_path.with_file_name(name)
}

impl Recorder {
    /// Takes the advisory lock, waiting (after calling `waiting`) while another build holds it.
    pub fn open(
        path: &Path,
        plan: &Plan,
        waiting: impl FnOnce(&Path),
    ) -> Result<Self, RecordError> {
        let guard_path = guard_path(path);
        let guard_err = |source| RecordError::Guard {
            path: guard_path.clone(),
            source,
        };
        let guard = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&guard_path)
            .map_err(guard_err)?;
        match flock(&guard, libc::LOCK_EX | libc::LOCK_NB) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                waiting(&guard_path);
                flock(&guard, libc::LOCK_EX).map_err(guard_err)?;
            }
            Err(e) => return Err(guard_err(e)),
        }
        Ok(Recorder {
            path: path.to_path_buf(),
            keep: keys(plan),
            state: Mutex::new(()),
            _guard: guard,
        })
    }

    fn pruned(&self, mut lock: Lock) -> Lock {
        retain(&mut lock, &self.keep);
        lock
    }

    /// Sets the `[[release]]` part to `releases` and drops images of jobs no longer in the
    /// plan; returns whether the file changed.
    pub fn prune(&self, releases: &[LockedRelease]) -> Result<bool, RecordError> {
        let _held = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let mut lock = self.pruned(lock::read(&self.path)?);
        lock.releases = releases.to_vec();
        Ok(lock::write_if_changed(&self.path, &lock)?)
    }

    /// Writes `image` into the lock (re-read from disk, so anything else written to it since,
    /// such as `[[release]]` entries, is kept).
    pub fn record(&self, image: LockedImage) -> Result<(), RecordError> {
        let _held = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let mut lock = self.pruned(lock::read(&self.path)?);
        lock.upsert_image(image);
        lock::write_if_changed(&self.path, &lock)?;
        Ok(())
    }
}
