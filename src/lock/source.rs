//! Where a lock is read from: a path, or `git:REV` (the lock at that revision of the
//! repository it lives in), for `driver-matrix diff`.

use std::path::Path;
use std::process::{Command, Output};

use super::{Lock, LockError};

/// Reads a lock given as a path or as `git:REV` (the lock at `lock_path`, at that revision).
pub fn read_spec(spec: &str, lock_path: &Path) -> Result<Lock, LockError> {
    let Some(rev) = spec.strip_prefix("git:") else {
        let path = Path::new(spec);
        if !path.exists() {
            return Err(LockError::source(
                format!("lockfile `{spec}` does not exist"),
                Some(
                    "give a path to a lockfile, or `git:REV` for the lock at a git revision".into(),
                ),
            ));
        }
        return super::read(path);
    };
    let dir = match lock_path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let file = lock_path
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_else(|| "matrix.lock".into());
    let commit = commit_of(dir, rev)?;
    let object = format!("{commit}:./{file}");
    let out = git(dir, &["show", "--end-of-options", &object])?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        // The lock did not exist at that revision: everything in the newer lock is new.
        if stderr.contains("does not exist in") || stderr.contains("exists on disk, but not in") {
            return Ok(Lock::default());
        }
        return Err(LockError::source(
            format!(
                "`git show {rev}:./{file}` failed in `{}`: {}",
                dir.display(),
                stderr.trim()
            ),
            Some("check the revision with `git log`".into()),
        ));
    }
    let text = String::from_utf8(out.stdout)
        .map_err(|_| LockError::source(format!("the lock at `{spec}` is not UTF-8"), None))?;
    super::read_str(Path::new(&format!("{spec} ({file})")), &text)
}

/// The commit a `git:REV` spec names, as a full object id (in the repository of the lock at
/// `lock_path`); `None` for a path.
pub fn spec_commit(spec: &str, lock_path: &Path) -> Result<Option<String>, LockError> {
    let Some(rev) = spec.strip_prefix("git:") else {
        return Ok(None);
    };
    let dir = match lock_path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    commit_of(dir, rev).map(Some)
}

/// Runs `git -C dir ARGS`, capturing its output.
fn git(dir: &Path, args: &[&str]) -> Result<Output, LockError> {
    Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .map_err(|e| {
            LockError::source(
                format!("cannot run `git {}`: {e}", args.join(" ")),
                Some("install git, or pass a path".into()),
            )
        })
}

/// The commit `rev` names, as a full object id. Only a revision is accepted: a value that
/// starts with `-` would be an option to git (`--output=FILE` writes a file), so it is refused
/// before git runs, and git is told where its options end.
fn commit_of(dir: &Path, rev: &str) -> Result<String, LockError> {
    if rev.is_empty() || rev.starts_with('-') {
        return Err(LockError::source(
            format!("`git:{rev}` does not name a revision"),
            Some(
                "write `git:REV` with a branch, tag or commit, like `git:HEAD~1` or `git:main`"
                    .into(),
            ),
        ));
    }
    let query = format!("{rev}^{{commit}}");
    let out = git(
        dir,
        &[
            "rev-parse",
            "--verify",
            "--quiet",
            "--end-of-options",
            &query,
        ],
    )?;
    let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if !out.status.success() || id.is_empty() || !id.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(LockError::source(
            format!(
                "`{rev}` is not a commit in the git repository at `{}`",
                dir.display()
            ),
            Some("check the revision with `git log`".into()),
        ));
    }
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_option_is_not_a_revision() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let target = dir.path().join("written");
        for rev in [
            format!("--output={}", target.display()),
            "-p".into(),
            String::new(),
        ] {
            let err = commit_of(dir.path(), &rev).expect_err("refused");
            assert!(matches!(err, LockError::Source { .. }), "{err:?}");
        }
        assert!(!target.exists());
    }
}
