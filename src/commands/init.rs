//! `driver-matrix init [DIR]`: reads the module source directory's `Kbuild` (or `Makefile`) and
//! writes what [`crate::scaffold`] makes of it (a matrix, a Containerfile, and a
//! `.containerignore` unless the directory has an ignore file), never overwriting a file.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::Context;
use crate::error::{Error, Result};
use crate::exit::ExitCode;
use crate::scaffold;

/// The files `init` writes, relative to DIR.
const MATRIX: &str = "matrix.toml";
const CONTAINERFILE: &str = "Containerfile";
const IGNORE: &str = ".containerignore";

pub fn run(ctx: &Context, dir: &Path) -> Result<ExitCode> {
    let (build_file, text) = read_build_file(dir)?;
    let modules = scaffold::modules_from_kbuild(&text);
    if modules.is_empty() {
        return Err(Error::usage(
            format!("`{}` declares no module in `obj-m`", build_file.display()),
            Some(
                "add a line such as `obj-m := mydriver.o`; each `NAME.o` of `obj-m` is one module"
                    .into(),
            ),
        ));
    }
    let targets = [dir.join(MATRIX), dir.join(CONTAINERFILE)];
    if let Some(existing) = targets.iter().find(|p| p.exists()) {
        return Err(Error::usage(
            format!(
                "`{}` already exists; `init` never overwrites a file",
                existing.display()
            ),
            Some("move it away, or run `driver-matrix init` in another directory".into()),
        ));
    }
    let name = scaffold::driver_name(dir);
    let files = [
        (&targets[0], scaffold::matrix_toml(&name, &modules)),
        (&targets[1], scaffold::containerfile(&modules)),
    ];
    for (path, content) in files {
        write_new(path, &content)?;
    }
    // An ignore file the directory already has is the user's: it is left alone, and must
    // leave out what ours would (buildah reads only one of them).
    let existing_ignore = scaffold_ignore(dir)?;
    if !ctx.global.quiet {
        let mut err = std::io::stderr().lock();
        let _ = writeln!(
            err,
            "wrote {} and {} for driver `{name}` (modules: {})",
            targets[0].display(),
            targets[1].display(),
            modules.join(", ")
        );
        match &existing_ignore {
            Some(name) => {
                let _ = writeln!(
                    err,
                    "kept the existing `{name}`: make it leave out local build output and every secret inside {}",
                    dir.display()
                );
            }
            None => {
                let _ = writeln!(
                    err,
                    "wrote {}: what the build context leaves out",
                    dir.join(IGNORE).display()
                );
            }
        }
        let _ = writeln!(
            err,
            "next: set `image` in {MATRIX}, then `driver-matrix resolve`, `plan` and `build` (with `-m {}`)",
            targets[0].display()
        );
    }
    Ok(ExitCode::Ok)
}

/// Writes `.containerignore` unless the directory has an ignore file already; returns the
/// name of the one it has.
fn scaffold_ignore(dir: &Path) -> Result<Option<&'static str>> {
    if let Some(name) = crate::inputs::IGNORE_FILES
        .into_iter()
        .find(|n| std::fs::symlink_metadata(dir.join(n)).is_ok())
    {
        return Ok(Some(name));
    }
    write_new(&dir.join(IGNORE), scaffold::containerignore())?;
    Ok(None)
}

/// `Kbuild` if there is one (kbuild reads it before the Makefile), else `Makefile`.
fn read_build_file(dir: &Path) -> Result<(PathBuf, String)> {
    for name in ["Kbuild", "Makefile"] {
        let path = dir.join(name);
        if path.is_file() {
            let text = std::fs::read_to_string(&path).map_err(|e| {
                Error::usage(format!("cannot read `{}`: {e}", path.display()), None)
            })?;
            return Ok((path, text));
        }
    }
    Err(Error::usage(
        format!("`{}` has no Kbuild or Makefile", dir.display()),
        Some("run `driver-matrix init DIR` on the directory that holds the module's sources and its Kbuild or Makefile".into()),
    ))
}

/// Creates `path`, failing if it appeared meanwhile.
fn write_new(path: &Path, content: &str) -> Result<()> {
    let fail =
        |e: std::io::Error| Error::usage(format!("cannot write `{}`: {e}", path.display()), None);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(fail)?;
    file.write_all(content.as_bytes()).map_err(fail)
}
