//! The file I/O of `init`: reads the module source directory's `Kbuild` (or `Makefile`), then
//! writes what [`super`] makes of it (a matrix, a Containerfile, and a `.containerignore` unless
//! the directory has an ignore file), never overwriting a file.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use miette::Diagnostic;

/// The files `init` writes, relative to the directory.
pub const MATRIX: &str = "matrix.toml";
pub const CONTAINERFILE: &str = "Containerfile";
pub const IGNORE: &str = ".containerignore";

/// Why `init` wrote nothing more. The first three are the user's to fix; reading and writing
/// are I/O failures.
#[derive(Debug, thiserror::Error, Diagnostic)]
pub enum ScaffoldError {
    #[error("`{}` has no Kbuild or Makefile", dir.display())]
    #[diagnostic(
        code(driver_matrix::usage),
        help(
            "run `driver-matrix init DIR` on the directory that holds the module's sources and its Kbuild or Makefile"
        )
    )]
    NoBuildFile { dir: PathBuf },

    #[error("`{}` declares no module in `obj-m`", path.display())]
    #[diagnostic(
        code(driver_matrix::usage),
        help("add a line such as `obj-m := mydriver.o`; each `NAME.o` of `obj-m` is one module")
    )]
    NoModule { path: PathBuf },

    #[error("`{}` already exists; `init` never overwrites a file", path.display())]
    #[diagnostic(
        code(driver_matrix::usage),
        help("move it away, or run `driver-matrix init` in another directory")
    )]
    Exists { path: PathBuf },

    #[error("cannot read `{}`: {source}", path.display())]
    #[diagnostic(code(driver_matrix::init::io))]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },

    #[error("cannot write `{}`: {source}", path.display())]
    #[diagnostic(code(driver_matrix::init::io))]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// What `init` wrote.
#[derive(Debug)]
pub struct Scaffolded {
    /// The driver's name in the matrix, from the directory's.
    pub driver: String,
    pub modules: Vec<String>,
    pub matrix: PathBuf,
    pub containerfile: PathBuf,
    pub ignore: Ignore,
}

/// The context's ignore file.
#[derive(Debug, PartialEq, Eq)]
pub enum Ignore {
    /// Written here.
    Wrote(PathBuf),
    /// The directory had this one: it is the user's, left alone (and must leave out what ours
    /// would, as buildah reads only one of them).
    Kept(&'static str),
}

/// Reads `dir`'s build file and writes the matrix, the Containerfile and the ignore file; writes
/// nothing when the build file declares no module or the matrix or the Containerfile exists.
pub fn write_into(dir: &Path) -> Result<Scaffolded, ScaffoldError> {
    let (build_file, text) = read_build_file(dir)?;
    let modules = super::modules_from_kbuild(&text);
    if modules.is_empty() {
        return Err(ScaffoldError::NoModule { path: build_file });
    }
    let (matrix, containerfile) = (dir.join(MATRIX), dir.join(CONTAINERFILE));
    if let Some(existing) = [&matrix, &containerfile].into_iter().find(|p| p.exists()) {
        return Err(ScaffoldError::Exists {
            path: existing.clone(),
        });
    }
    let driver = super::driver_name(dir);
    write_new(&matrix, &super::matrix_toml(&driver, &modules))?;
    write_new(&containerfile, &super::containerfile(&modules))?;
    let ignore = ignore_file(dir)?;
    Ok(Scaffolded {
        driver,
        modules,
        matrix,
        containerfile,
        ignore,
    })
}

/// Writes `.containerignore` unless the directory has an ignore file already.
fn ignore_file(dir: &Path) -> Result<Ignore, ScaffoldError> {
    if let Some(name) = crate::inputs::IGNORE_FILES
        .into_iter()
        .find(|n| std::fs::symlink_metadata(dir.join(n)).is_ok())
    {
        return Ok(Ignore::Kept(name));
    }
    let path = dir.join(IGNORE);
    write_new(&path, super::containerignore())?;
    Ok(Ignore::Wrote(path))
}

/// `Kbuild` if there is one (kbuild reads it before the Makefile), else `Makefile`.
fn read_build_file(dir: &Path) -> Result<(PathBuf, String), ScaffoldError> {
    for name in ["Kbuild", "Makefile"] {
        let path = dir.join(name);
        if path.is_file() {
            return match std::fs::read_to_string(&path) {
                Ok(text) => Ok((path, text)),
                Err(source) => Err(ScaffoldError::Read { path, source }),
            };
        }
    }
    Err(ScaffoldError::NoBuildFile {
        dir: dir.to_path_buf(),
    })
}

/// Creates `path`, failing if it appeared meanwhile.
fn write_new(path: &Path, content: &str) -> Result<(), ScaffoldError> {
    let fail = |source| ScaffoldError::Write {
        path: path.to_path_buf(),
        source,
    };
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(fail)?;
    file.write_all(content.as_bytes()).map_err(fail)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sources(files: &[(&str, &[u8])]) -> (tempfile::TempDir, PathBuf) {
        let tmp = tempfile::tempdir().expect("a temporary directory");
        let dir = tmp.path().join("hello");
        std::fs::create_dir(&dir).expect("the sources' directory");
        for (name, content) in files {
            std::fs::write(dir.join(name), content).expect("a source file");
        }
        (tmp, dir)
    }

    #[test]
    fn writes_the_three_files_or_keeps_the_users_ignore_file() {
        let (_tmp, dir) = sources(&[("Kbuild", b"obj-m := hello.o\n")]);
        let done = write_into(&dir).expect("scaffolded");
        assert_eq!(
            (done.driver.as_str(), &done.modules[..]),
            ("hello", &["hello".to_string()][..])
        );
        assert!(done.matrix.is_file() && done.containerfile.is_file());
        assert_eq!(done.ignore, Ignore::Wrote(dir.join(IGNORE)));

        let (_tmp, dir) = sources(&[("Makefile", b"obj-m += a.o\n"), (".dockerignore", b"x\n")]);
        assert_eq!(
            write_into(&dir).expect("scaffolded").ignore,
            Ignore::Kept(".dockerignore")
        );
        assert!(!dir.join(IGNORE).exists());
    }

    #[test]
    fn reading_and_writing_fail_as_io_naming_the_file() {
        let (_tmp, dir) = sources(&[("Kbuild", b"obj-m := \xff.o\n")]);
        let err = write_into(&dir).expect_err("a Kbuild that is not UTF-8");
        assert!(matches!(&err, ScaffoldError::Read { path, .. } if path == &dir.join("Kbuild")));

        // A dangling symlink is no file that `exists`, yet nothing can be created in its place.
        let (_tmp, dir) = sources(&[("Kbuild", b"obj-m := hello.o\n")]);
        std::os::unix::fs::symlink(dir.join("nowhere"), dir.join(MATRIX)).expect("a symlink");
        let err = write_into(&dir).expect_err("the matrix cannot be created");
        assert!(matches!(&err, ScaffoldError::Write { path, .. } if path == &dir.join(MATRIX)));
        assert!(
            err.to_string()
                .starts_with(&format!("cannot write `{}`: ", dir.join(MATRIX).display()))
        );
    }
}
