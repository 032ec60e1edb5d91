//! Where a cluster's build takes its source from: the commit the matrix's repository names,
//! checked against the working tree. The plan's inputs hash describes the files on disk; a
//! BuildConfig builds what the commit holds. The two are the same only when no context differs
//! from the commit in what the hash covers (the context's one ignore list, see
//! `crate::inputs::ContextFilter`), so a context with changes there (modified, staged, deleted
//! or untracked files, or files git ignores that the build would still send) is refused.
//! driver-matrix's own files (the lock changes after every build) are not hashed, so they may
//! differ.

use std::collections::BTreeMap;

use crate::error::{Error, Result};
use crate::export::buildconfig::Source;
use crate::git::{self, Repo};
use crate::inputs::{ContextFilter, OwnFiles};
use crate::matrix::Driver;

/// The jobs `export buildconfig` writes a BuildConfig for: the selected ones that are not fresh
/// (every selected one with `all`), in plan order, and the drivers they build.
pub fn jobs_to_build<'p>(
    matrix: &'p crate::matrix::Matrix,
    plan: &'p crate::plan::Plan,
    selection: &crate::plan::Selection,
    all: bool,
) -> (Vec<&'p crate::plan::Job>, Vec<&'p Driver>) {
    let jobs: Vec<&crate::plan::Job> = plan
        .jobs
        .iter()
        .filter(|j| selection.contains(j) && (all || j.state != crate::plan::State::Fresh))
        .collect();
    let mut drivers: Vec<&Driver> = matrix
        .drivers
        .iter()
        .filter(|d| jobs.iter().any(|j| j.driver == d.name))
        .collect();
    drivers.dedup_by(|a, b| a.name == b.name);
    (jobs, drivers)
}

/// Each driver's name and the ids of the secrets its Containerfile mounts where a BuildConfig's
/// builds do not find them (see [`crate::export::buildconfig::secrets_outside_dir`]); an
/// unreadable Containerfile mounts none here (building it fails with the reason).
pub fn secrets_outside_dir(drivers: &[&Driver]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for d in drivers {
        let text = std::fs::read_to_string(d.context.join(&d.containerfile)).unwrap_or_default();
        for id in crate::export::buildconfig::secrets_outside_dir(&text) {
            out.push((d.name.clone(), id));
        }
    }
    out
}

/// The source flags of `export buildconfig`.
#[derive(Debug, Clone)]
pub struct GitRequest {
    pub uri: Option<String>,
    pub rev: String,
    pub remote: String,
}

/// The git source of `drivers`' builds, and what to tell the user on the way.
pub fn git_source(
    root: &std::path::Path,
    drivers: &[&Driver],
    req: &GitRequest,
    own: &OwnFiles,
) -> Result<(Source, Vec<String>)> {
    let usage = |e: git::GitError| Error::usage(e.message, e.help);
    let repo = Repo::discover(root).map_err(usage)?;
    let commit = repo.commit(&req.rev).map_err(usage)?;
    let mut notes = Vec::new();
    let raw = match &req.uri {
        Some(u) => u.clone(),
        None => repo.remote_url(&req.remote).map_err(usage)?,
    };
    let (uri, stripped) = git::without_credentials(&raw);
    if stripped {
        notes.push(format!(
            "the git URL carried credentials; the BuildConfigs name `{uri}` without them (give the cluster a source secret instead)"
        ));
    }
    let mut context_dirs = BTreeMap::new();
    for d in drivers {
        let rel = repo.relative(&d.context).ok_or_else(|| {
            Error::usage(
                format!(
                    "driver `{}`: its context `{}` is outside the repository `{}`",
                    d.name,
                    d.context.display(),
                    repo.top.display()
                ),
                None,
            )
        })?;
        let changes = changes(&repo, &commit, &rel, d, own)?;
        if !changes.is_empty() {
            return Err(dirty(d, &req.rev, &changes));
        }
        context_dirs.insert(d.name.clone(), rel);
    }
    Ok((
        Source::Git {
            uri,
            commit,
            context_dirs,
        },
        notes,
    ))
}

/// The files under a driver's context (top-level relative) that the inputs hash covers and
/// whose content on disk the commit does not hold: changed, untracked, or ignored by git (so
/// absent from a clone) yet part of the context.
fn changes(
    repo: &Repo,
    commit: &str,
    rel: &str,
    d: &Driver,
    own: &OwnFiles,
) -> Result<Vec<String>> {
    let usage = |e: git::GitError| Error::usage(e.message, e.help);
    let status = repo.changes(commit, rel).map_err(usage)?;
    let filter = ContextFilter::new(&d.context, &d.containerfile, own)
        .map_err(|e| Error::usage(e.to_string(), None))?;
    let prefix = if rel.is_empty() {
        String::new()
    } else {
        format!("{rel}/")
    };
    let hashed = |path: &String| {
        let in_context = path
            .strip_prefix(&prefix)
            .unwrap_or(path)
            .trim_end_matches('/');
        !filter.is_ignored(in_context)
    };
    let mut out: Vec<String> = status
        .changed
        .into_iter()
        .chain(status.ignored)
        .filter(hashed)
        .collect();
    out.sort();
    out.dedup();
    Ok(out)
}

fn dirty(d: &Driver, rev: &str, files: &[String]) -> Error {
    const SHOWN: usize = 10;
    let mut list: Vec<String> = files
        .iter()
        .take(SHOWN)
        .map(|f| crate::text::escape_line(f).into_owned())
        .collect();
    if files.len() > SHOWN {
        list.push(format!("… and {} more", files.len() - SHOWN));
    }
    Error::usage(
        format!(
            "driver `{}`: its context differs from `{}`, so the cluster would not build what the plan hashed:\n  {}",
            d.name,
            crate::text::escape_line(rev),
            list.join("\n  ")
        ),
        Some(
            "commit (and push) the changes, or leave the files out of the context with .containerignore; `--binary` uploads the working tree instead"
                .into(),
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::secrets_outside_dir;

    #[test]
    fn the_secrets_a_buildconfig_would_miss_are_named_with_their_driver() {
        let tmp = tempfile::tempdir().expect("a temporary directory");
        let dir = tmp.path().join("hello");
        std::fs::create_dir(&dir).expect("the sources");
        std::fs::write(dir.join("Kbuild"), "obj-m := hello.o\n").expect("a Kbuild");
        crate::scaffold::write_into(&dir).expect("scaffolded");
        let mut containerfile =
            std::fs::read_to_string(dir.join("Containerfile")).expect("the Containerfile");
        containerfile.push_str(
            "RUN --mount=type=secret,id=token,target=/tmp/token true\n\
             RUN --mount=type=secret,id=kept,target=/run/secrets/driver-matrix/kept true\n",
        );
        std::fs::write(dir.join("Containerfile"), containerfile).expect("the Containerfile");
        let matrix = crate::matrix::load(&dir.join("matrix.toml"))
            .expect("the matrix loads")
            .matrix;
        let drivers: Vec<_> = matrix.drivers.iter().collect();
        assert_eq!(
            secrets_outside_dir(&drivers),
            [("hello".to_string(), "token".to_string())]
        );
    }
}
