//! What changed in the inputs of a rebuilt image, told from git when the older lock is read
//! from `git:REV`: the files of the driver's context (the Containerfile among them) that
//! differ between that revision and the newer side, and the driver's build args in
//! `matrix.toml` at both. The lock holds only the inputs hash; the repository holds what went
//! into it, so nothing new is recorded and nothing here can disagree with a checkout.
//!
//! Best effort by design: a context or matrix git cannot read leaves an image's reason as the
//! bare "inputs changed". Only hexadecimal commit ids (from [`super::source::commit_of`]) and
//! `.` reach git as arguments, after `--end-of-options`.

use std::collections::BTreeMap;
use std::path::Path;

use super::diff::{FileChange, ImageChangeKind, InputChange, LockDiff, RebuildReason};
use crate::matrix::Matrix;

/// The newer side of a diff: a commit, or the working tree.
#[derive(Debug, Clone)]
pub enum Side {
    Commit(String),
    WorkTree,
}

/// Fills `inputs` of every image of `d` rebuilt because its inputs changed, comparing commit
/// `old` with `new`; `matrix` (the current one) says where each driver's context is.
pub fn explain(d: &mut LockDiff, matrix: &Matrix, old: &str, new: &Side) {
    let old_args = matrix_args(matrix, &Side::Commit(old.to_string()));
    let new_args = matrix_args(matrix, new);
    for drv in &mut d.drivers {
        let Some(driver) = matrix.drivers.iter().find(|x| x.name == drv.driver) else {
            continue;
        };
        let mut changes: Option<Vec<InputChange>> = None;
        for image in &mut drv.images {
            if image.kind != ImageChangeKind::Rebuilt
                || image.reason != Some(RebuildReason::InputsChanged)
            {
                continue;
            }
            let found = changes.get_or_insert_with(|| {
                let mut c = build_args(
                    old_args.as_ref().and_then(|a| a.get(&drv.driver)),
                    new_args.as_ref().and_then(|a| a.get(&drv.driver)),
                );
                c.extend(files(&driver.context, old, new));
                c
            });
            image.inputs = found.clone();
        }
    }
}

/// The build args that differ, by name.
fn build_args(
    old: Option<&BTreeMap<String, String>>,
    new: Option<&BTreeMap<String, String>>,
) -> Vec<InputChange> {
    let (Some(old), Some(new)) = (old, new) else {
        return Vec::new();
    };
    let mut names: Vec<&String> = old.keys().chain(new.keys()).collect();
    names.sort();
    names.dedup();
    names
        .into_iter()
        .filter(|n| old.get(*n) != new.get(*n))
        .map(|n| InputChange::BuildArg {
            name: n.clone(),
            old: old.get(n).cloned(),
            new: new.get(n).cloned(),
        })
        .collect()
}

/// Every driver's `build-args` in the matrix file on `side`.
fn matrix_args(matrix: &Matrix, side: &Side) -> Option<BTreeMap<String, BTreeMap<String, String>>> {
    let text = match side {
        Side::WorkTree => std::fs::read_to_string(&matrix.path).ok()?,
        Side::Commit(commit) => {
            let file = matrix.path.file_name()?.to_string_lossy().into_owned();
            let object = format!("{commit}:./{file}");
            let out = git(&matrix.root, &["show", "--end-of-options", &object])?;
            String::from_utf8(out).ok()?
        }
    };
    let value: toml::Table = text.parse().ok()?;
    let drivers = value.get("driver")?.as_array()?;
    Some(
        drivers
            .iter()
            .filter_map(|d| {
                let name = d.get("name")?.as_str()?.to_string();
                let args = d
                    .get("build-args")
                    .and_then(|a| a.as_table())
                    .map(|t| {
                        t.iter()
                            .map(|(k, v)| {
                                (
                                    k.clone(),
                                    v.as_str().map_or_else(|| v.to_string(), str::to_string),
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                Some((name, args))
            })
            .collect(),
    )
}

/// The files of `context` that differ between commit `old` and `new`, by path in the context.
fn files(context: &Path, old: &str, new: &Side) -> Vec<InputChange> {
    let mut args = vec!["diff", "--name-status", "--no-renames", "--relative", "-z"];
    args.extend(["--end-of-options", old]);
    if let Side::Commit(c) = new {
        args.push(c);
    }
    args.extend(["--", "."]);
    let Some(out) = git(context, &args) else {
        return Vec::new();
    };
    let text = String::from_utf8_lossy(&out);
    let mut fields = text.split('\0');
    let mut found = Vec::new();
    while let (Some(status), Some(path)) = (fields.next(), fields.next()) {
        let change = match status {
            "A" => FileChange::Added,
            "D" => FileChange::Removed,
            _ => FileChange::Modified,
        };
        found.push(InputChange::File {
            path: path.to_string(),
            change,
        });
    }
    // In the working tree, a new file git does not track yet is as much an input.
    if let Side::WorkTree = new
        && let Some(out) = git(
            context,
            &[
                "ls-files",
                "--others",
                "--exclude-standard",
                "-z",
                "--",
                ".",
            ],
        )
    {
        for path in String::from_utf8_lossy(&out)
            .split('\0')
            .filter(|p| !p.is_empty())
        {
            found.push(InputChange::File {
                path: path.to_string(),
                change: FileChange::Added,
            });
        }
        found.sort_by(|a, b| file_path(a).cmp(file_path(b)));
    }
    found
}

fn file_path(c: &InputChange) -> &str {
    match c {
        InputChange::File { path, .. } => path,
        InputChange::BuildArg { name, .. } => name,
    }
}

/// `git -C dir ARGS`'s output, or `None` when git fails.
fn git(dir: &Path, args: &[&str]) -> Option<Vec<u8>> {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .ok()?;
    out.status.success().then_some(out.stdout)
}
