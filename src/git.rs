//! The git repository a matrix lives in, for the exports that build from source on a cluster:
//! its top level, the commit a revision names, a remote's URL, and whether a directory holds
//! uncommitted changes. git runs with fixed arguments; a value from a flag or the matrix that
//! starts with `-` is refused before git sees it, and `--end-of-options` ends git's options.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

#[derive(Debug, thiserror::Error, miette::Diagnostic)]
#[error("{message}")]
#[diagnostic(code(driver_matrix::git))]
pub struct GitError {
    pub message: String,
    #[help]
    pub help: Option<String>,
}

impl GitError {
    fn new(message: impl Into<String>, help: Option<&str>) -> Self {
        GitError {
            message: message.into(),
            help: help.map(str::to_string),
        }
    }
}

/// A work tree: its top level, canonicalized.
#[derive(Debug, Clone)]
pub struct Repo {
    pub top: PathBuf,
}

fn git(dir: &Path, args: &[&str]) -> Result<Output, GitError> {
    Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_TERMINAL_PROMPT", "0")
        .output()
        .map_err(|e| {
            GitError::new(
                format!("cannot run `git {}`: {e}", args.join(" ")),
                Some("install git"),
            )
        })
}

/// git's stdout, or an error carrying its stderr.
fn stdout(dir: &Path, args: &[&str]) -> Result<String, GitError> {
    let out = git(dir, args)?;
    if !out.status.success() {
        return Err(GitError::new(
            format!(
                "`git {}` failed in `{}`: {}",
                args.join(" "),
                dir.display(),
                crate::text::escape(String::from_utf8_lossy(&out.stderr).trim())
            ),
            None,
        ));
    }
    String::from_utf8(out.stdout)
        .map_err(|_| GitError::new(format!("`git {}` printed non-UTF-8", args.join(" ")), None))
}

fn no_option(what: &str, value: &str) -> Result<(), GitError> {
    if value.is_empty() || value.starts_with('-') {
        return Err(GitError::new(
            format!("`{}` is not a {what}", crate::text::escape(value)),
            Some("a value that starts with `-` would be read by git as an option"),
        ));
    }
    Ok(())
}

impl Repo {
    /// The work tree `dir` lies in.
    pub fn discover(dir: &Path) -> Result<Repo, GitError> {
        let out = git(dir, &["rev-parse", "--show-toplevel"])?;
        if !out.status.success() {
            return Err(GitError::new(
                format!("`{}` is not inside a git repository", dir.display()),
                Some(
                    "commit the matrix and its contexts to a repository the cluster can clone, or give `--git-uri` and `--git-ref`, or use `--binary` and `oc start-build --from-dir`",
                ),
            ));
        }
        let top = String::from_utf8_lossy(&out.stdout).trim().to_string();
        let top = Path::new(&top)
            .canonicalize()
            .map_err(|e| GitError::new(format!("git's top level `{top}`: {e}"), None))?;
        Ok(Repo { top })
    }

    /// The full commit id `rev` names (a branch or tag is resolved to the commit it names now).
    pub fn commit(&self, rev: &str) -> Result<String, GitError> {
        no_option("revision", rev)?;
        let spec = format!("{rev}^{{commit}}");
        let id = stdout(
            &self.top,
            &[
                "rev-parse",
                "--verify",
                "--quiet",
                "--end-of-options",
                &spec,
            ],
        )
        .map_err(|_| {
            GitError::new(
                format!(
                    "`{}` names no commit of `{}`",
                    crate::text::escape(rev),
                    self.top.display()
                ),
                Some("give a commit, branch or tag that exists, like `HEAD`"),
            )
        })?;
        Ok(id.trim().to_string())
    }

    /// The fetch URL of `remote`.
    pub fn remote_url(&self, remote: &str) -> Result<String, GitError> {
        no_option("remote", remote)?;
        let url = stdout(&self.top, &["remote", "get-url", "--", remote]).map_err(|_| {
            GitError::new(
                format!(
                    "the repository `{}` has no remote `{}`",
                    self.top.display(),
                    crate::text::escape(remote)
                ),
                Some("give the URL the cluster clones with `--git-uri`, or the remote with `--git-remote`"),
            )
        })?;
        Ok(url.trim().to_string())
    }

    /// `path` relative to the top level, `/`-separated; empty for the top level itself.
    pub fn relative(&self, path: &Path) -> Option<String> {
        let rel = path.strip_prefix(&self.top).ok()?;
        let parts: Vec<String> = rel
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect();
        Some(parts.join("/"))
    }

    /// What differs under `path` (top-level relative) between `commit` and the working tree:
    /// modified, staged, deleted and untracked files, and (separately) the ignored ones, as
    /// top-level relative paths (an ignored directory ends in `/`).
    pub fn changes(&self, commit: &str, path: &str) -> Result<Status, GitError> {
        no_option("commit", commit)?;
        let pathspec = format!(":(top,literal){}", if path.is_empty() { "." } else { path });
        let diff = stdout(
            &self.top,
            &[
                "diff",
                "--name-only",
                "-z",
                "--end-of-options",
                commit,
                "--",
                &pathspec,
            ],
        )?;
        let mut status = Status::default();
        status.changed.extend(
            diff.split('\0')
                .filter(|e| !e.is_empty())
                .map(str::to_string),
        );
        let text = stdout(
            &self.top,
            &[
                "status",
                "--porcelain=v1",
                "-z",
                "--untracked-files=all",
                "--ignored=matching",
                "--",
                &pathspec,
            ],
        )?;
        let mut entries = text.split('\0').filter(|e| !e.is_empty());
        while let Some(entry) = entries.next() {
            let (code, file) = entry.split_at(entry.len().min(3));
            match code {
                "?? " => status.changed.push(file.to_string()),
                "!! " => status.ignored.push(file.to_string()),
                // A rename or copy is followed by its source path; `git diff` named both.
                c if c.starts_with('R') || c.starts_with('C') => {
                    entries.next();
                }
                _ => {}
            }
        }
        Ok(status)
    }
}

/// Files under a path that differ from the commit.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Status {
    /// Modified, staged, deleted or untracked (not ignored).
    pub changed: Vec<String>,
    /// Ignored by `.gitignore`: present here, absent from a clone.
    pub ignored: Vec<String>,
}

/// A URL without its user information (`https://user:token@host/…` → `https://host/…`), so
/// that a credential in a remote's URL never reaches an exported object or a log.
pub fn without_credentials(url: &str) -> (String, bool) {
    if let Some((scheme, rest)) = url.split_once("://") {
        let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        if let Some((_, host)) = authority.rsplit_once('@') {
            let keep_user = scheme.starts_with("ssh");
            if keep_user {
                // `ssh://git@host/…`: a user name, not a secret, unless it carries a password.
                if let Some((user, _)) = authority.split_once(':').filter(|(u, _)| !u.contains('@'))
                {
                    return (format!("{scheme}://{user}@{host}{path}"), true);
                }
                return (url.to_string(), false);
            }
            return (format!("{scheme}://{host}{path}"), true);
        }
    }
    (url.to_string(), false)
}

#[cfg(test)]
mod tests {
    use super::without_credentials;

    #[test]
    fn credentials_leave_urls() {
        assert_eq!(
            without_credentials("https://bot:ghp_secret@github.com/acme/drivers.git"),
            ("https://github.com/acme/drivers.git".to_string(), true)
        );
        assert_eq!(
            without_credentials("https://github.com/acme/drivers.git"),
            ("https://github.com/acme/drivers.git".to_string(), false)
        );
        assert_eq!(
            without_credentials("ssh://git@github.com/acme/drivers.git"),
            ("ssh://git@github.com/acme/drivers.git".to_string(), false)
        );
        assert_eq!(
            without_credentials("ssh://git:pw@github.com/acme/drivers.git"),
            ("ssh://git@github.com/acme/drivers.git".to_string(), true)
        );
        assert_eq!(
            without_credentials("git@github.com:acme/drivers.git"),
            ("git@github.com:acme/drivers.git".to_string(), false)
        );
    }
}
