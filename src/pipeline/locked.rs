//! `--locked`, the one check `build` and `resolve` share: a run that would build a job or change
//! the lock by a byte (an entry, or only its formatting) fails, naming every change.

use super::{Session, describe_changes};
use crate::error::{Error, Result};
use crate::lock::{self, Lock};

/// Fails with [`Error::Outdated`] when `to_build` (`driver/kernel/arch (why)` of each job that
/// would be built) is not empty or `new` is not, byte for byte, the lock file as it is now.
pub fn check(session: &Session, to_build: &[String], new: &Lock) -> Result<()> {
    let changes = changes(&session.lock, &session.current_text(), to_build, new);
    if changes.is_empty() {
        return Ok(());
    }
    Err(Error::Outdated {
        lock: session.lock_path(),
        changes,
    })
}

/// What `--locked` names, in order: each job that would be built, then each change from `old`
/// (the lock as read, whose file now holds `file`) to `new`, or only that the formatting differs.
fn changes(old: &Lock, file: &str, to_build: &[String], new: &Lock) -> Vec<String> {
    let mut changes: Vec<String> = to_build
        .iter()
        .map(|j| format!("would build {j}"))
        .collect();
    if lock::render(new) != file {
        changes.extend(describe_changes(old, new));
        if changes.is_empty() {
            changes.push("its formatting differs from the canonical form".into());
        }
    }
    changes
}

#[cfg(test)]
mod tests {
    use super::changes;
    use crate::lock::{self, Lock, LockedRelease};

    fn release(version: &str) -> LockedRelease {
        let digest = "a".repeat(64);
        toml::from_str(&format!(
            r#"
            version = "{version}"
            arch = "x86_64"
            payload = "quay.io/ocp/release@sha256:{digest}"
            dtk = "quay.io/ocp/dtk@sha256:{digest}"
            kernel = "5.14.0-427.13.1.el9_4.x86_64"
            rhel = "9.4"
            "#
        ))
        .expect("a release entry")
    }

    #[test]
    fn nothing_to_name_when_nothing_is_built_and_the_file_is_canonical() {
        let lock = Lock {
            releases: vec![release("4.16.3")],
            images: Vec::new(),
        };
        assert!(changes(&lock, &lock::render(&lock), &[], &lock).is_empty());
    }

    #[test]
    fn jobs_to_build_come_first_then_the_locks_changes() {
        let old = Lock::default();
        let new = Lock {
            releases: vec![release("4.16.3")],
            images: Vec::new(),
        };
        let job = "hello/5.14.0/x86_64 (new)".to_string();
        assert_eq!(
            changes(&old, &lock::render(&old), &[job], &new),
            [
                "would build hello/5.14.0/x86_64 (new)",
                "added 4.16.3 (x86_64)"
            ]
        );
    }

    #[test]
    fn a_file_that_differs_only_in_formatting_is_named_so() {
        let lock = Lock {
            releases: vec![release("4.16.3")],
            images: Vec::new(),
        };
        let file = format!("# edited by hand\n{}", lock::render(&lock));
        assert_eq!(
            changes(&lock, &file, &[], &lock),
            ["its formatting differs from the canonical form"]
        );
    }
}
