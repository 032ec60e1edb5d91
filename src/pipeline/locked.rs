//! `--locked`, the one check `build` and `resolve` share: a run that would build a job or change
//! the lock by a byte (an entry, or only its formatting) fails, naming every change.

use super::{Session, describe_changes};
use crate::error::{Error, Result};
use crate::lock::{self, Lock};

/// Fails with [`Error::Outdated`] when `to_build` (`driver/kernel/arch (why)` of each job that
/// would be built) is not empty or `new` is not, byte for byte, the lock file as it is now.
pub fn check(session: &Session, to_build: &[String], new: &Lock) -> Result<()> {
    let mut changes: Vec<String> = to_build
        .iter()
        .map(|j| format!("would build {j}"))
        .collect();
    if lock::render(new) != session.current_text() {
        changes.extend(describe_changes(&session.lock, new));
        if changes.is_empty() {
            changes.push("its formatting differs from the canonical form".into());
        }
    }
    if changes.is_empty() {
        return Ok(());
    }
    Err(Error::Outdated {
        lock: session.lock_path(),
        changes,
    })
}
