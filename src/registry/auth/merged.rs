//! The credentials file buildah gets: the merged view of every credentials file (what the
//! native client uses), written 0600 into a private (0700) temporary directory that is removed
//! when the run ends. It is never written into the cache, and only its path is ever printed.
//!
//! It holds `auths` only: each `credHelpers` entry is asked first, under the helper's time
//! limit ([`AuthFiles::resolve_helpers`]), and its answer written as the host's `auths` entry.
//! buildah would otherwise run the helper itself, with no time limit, while the writer's lock is
//! held.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use base64::Engine as _;

use super::{AuthFiles, Credentials, RegistryError};

/// The file given to buildah with `--authfile`; a merged one lives as long as this value.
#[derive(Debug)]
pub struct ToolAuthfile {
    path: PathBuf,
    _dir: Option<tempfile::TempDir>,
    /// Why each credential helper that failed did: its host has no entry in the file.
    failed: Vec<String>,
}

impl ToolAuthfile {
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Why each credential helper that failed did (buildah gets no credentials for its host).
    pub fn failed_helpers(&self) -> &[String] {
        &self.failed
    }
}

/// The file for buildah from `files`, the view loaded for `explicit` (`--authfile`) or the
/// candidates: `--authfile` as given when it names no helper, so that buildah's errors name
/// it; else the merged view with every helper's answer, or `None` when no file holds anything.
pub fn tool_authfile(
    explicit: Option<&Path>,
    files: &AuthFiles,
) -> Result<Option<ToolAuthfile>, RegistryError> {
    match explicit {
        Some(p) if !files.has_helpers() => Ok(Some(ToolAuthfile {
            path: p.to_path_buf(),
            _dir: None,
            failed: Vec::new(),
        })),
        _ if files.is_empty() => Ok(None),
        _ => write(files).map(Some),
    }
}

/// The merged view as an auth.json: `auths` with base64 `auth` values, the helpers' answers
/// (`helped`) among them.
fn render(files: &AuthFiles, helped: &[(String, Credentials)]) -> String {
    let entry = |c: &Credentials| {
        let raw = format!("{}:{}", c.username, c.password);
        let auth = base64::engine::general_purpose::STANDARD.encode(raw);
        serde_json::json!({ "auth": auth })
    };
    let auths: BTreeMap<&str, serde_json::Value> = files
        .entries
        .iter()
        .map(|(k, (c, _))| (k.as_str(), entry(c)))
        .chain(helped.iter().map(|(h, c)| (h.as_str(), entry(c))))
        .collect();
    serde_json::json!({ "auths": auths }).to_string()
}

/// The merged credentials live in `$TMPDIR/driver-matrix-auth-<pid>-<start>.<random>/`, named
/// by run (see `crate::runs`).
const PREFIX: &str = "driver-matrix-auth-";

/// Removes the credentials directories that runs killed before they could clean up left in
/// `tmp`: those of this user whose run is gone (its process no longer exists, or its process id
/// now belongs to a process started at another time). A live run's directory, or another
/// user's, is left alone.
fn sweep_leftovers(tmp: &Path) {
    use std::os::unix::fs::MetadataExt;
    let Ok(entries) = std::fs::read_dir(tmp) else {
        return;
    };
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(run) = name
            .to_str()
            .and_then(|n| n.strip_prefix(PREFIX))
            .and_then(|rest| rest.split_once('.'))
            .and_then(|(tag, _)| crate::runs::RunId::parse(tag))
        else {
            continue;
        };
        let ours = entry.metadata().is_ok_and(|m| m.is_dir() && m.uid() == me);
        if ours && !run.is_alive() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

fn write(files: &AuthFiles) -> Result<ToolAuthfile, RegistryError> {
    let (helped, failed) = files.resolve_helpers();
    let err = |path: &Path, e: std::io::Error| RegistryError::AuthFile {
        path: path.to_path_buf(),
        message: format!("cannot write the merged credentials for buildah: {e}"),
    };
    sweep_leftovers(&std::env::temp_dir());
    let prefix = crate::runs::temp_prefix(PREFIX);
    let dir = tempfile::Builder::new()
        .prefix(&prefix)
        .permissions(std::fs::Permissions::from_mode(0o700))
        .tempdir()
        .map_err(|e| err(&std::env::temp_dir(), e))?;
    let path = dir.path().join("auth.json");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .map_err(|e| err(&path, e))?;
    f.write_all(render(files, &helped).as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(|e| err(&path, e))?;
    Ok(ToolAuthfile {
        path,
        _dir: Some(dir),
        failed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_killed_runs_credentials_are_removed_and_a_live_ones_kept() {
        let tmp = tempfile::tempdir().unwrap();
        // A process that has exited: its directory is a leftover.
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        let left = tmp.path().join(format!("{PREFIX}{dead}-1.abc"));
        std::fs::create_dir(&left).unwrap();
        std::fs::write(left.join("auth.json"), "{}").unwrap();
        // This process is alive: its directory stays.
        let live = tmp
            .path()
            .join(format!("{}def", crate::runs::temp_prefix(PREFIX)));
        std::fs::create_dir(&live).unwrap();
        // This process id with another start time: a run that had the id before, gone.
        let me = crate::runs::RunId::current();
        let recycled = tmp
            .path()
            .join(format!("{PREFIX}{}-{}.ghi", me.pid, me.start + 1));
        std::fs::create_dir(&recycled).unwrap();
        let other = tmp.path().join("driver-matrix-other");
        std::fs::create_dir(&other).unwrap();
        sweep_leftovers(tmp.path());
        assert!(!left.exists(), "a dead run's credentials are removed");
        assert!(!recycled.exists(), "a recycled process id is not this run");
        assert!(live.exists() && other.exists());
    }

    #[test]
    fn the_merged_file_is_private_and_gone_with_its_owner() {
        let src = tempfile::tempdir().unwrap();
        let a = src.path().join("a.json");
        std::fs::write(
            &a,
            r#"{"auths":{"h:1":{"username":"u","password":"p"}},"credHelpers":{"h:2":"x"}}"#,
        )
        .unwrap();
        let files = super::super::merge(vec![(
            a.clone(),
            super::super::parse(&a, &std::fs::read_to_string(&a).unwrap()).unwrap(),
        )]);
        let t = write(&files).unwrap();
        let meta = std::fs::metadata(t.path()).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        let dir = t.path().parent().unwrap().to_path_buf();
        let dmode = std::fs::metadata(&dir).unwrap().permissions().mode();
        assert_eq!(dmode & 0o077, 0, "{dmode:o}");
        let text = std::fs::read_to_string(t.path()).unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["auths"]["h:1"]["auth"], "dTpw");
        // No helper for buildah to run: `docker-credential-x` was asked (it cannot run), and
        // its host is left out, with the reason.
        assert!(v.get("credHelpers").is_none(), "{text}");
        assert!(v["auths"].get("h:2").is_none(), "{text}");
        assert_eq!(t.failed_helpers().len(), 1);
        assert!(
            t.failed_helpers()[0].contains("`docker-credential-x`"),
            "{:?}",
            t.failed_helpers()
        );
        drop(t);
        assert!(!dir.exists());
    }
}
