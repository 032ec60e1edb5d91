//! `driver-matrix init [DIR]`: [`crate::scaffold::write_into`] reads the module source
//! directory's `Kbuild` (or `Makefile`) and writes a matrix, a Containerfile and, unless the
//! directory has an ignore file, a `.containerignore`, never overwriting a file; this says what
//! it wrote and what comes next.

use std::path::Path;

use super::Context;
use crate::error::Result;
use crate::exit::ExitCode;
use crate::render::appendln;
use crate::scaffold::{self, Ignore, write::MATRIX};

pub fn run(ctx: &Context, dir: &Path) -> Result<ExitCode> {
    let done = scaffold::write_into(dir)?;
    if ctx.global.quiet {
        return Ok(ExitCode::Ok);
    }
    let mut err = String::new();
    appendln!(
        err,
        "wrote {} and {} for driver `{}` (modules: {})",
        done.matrix.display(),
        done.containerfile.display(),
        done.driver,
        done.modules.join(", ")
    );
    match &done.ignore {
        Ignore::Kept(name) => appendln!(
            err,
            "kept the existing `{name}`: make it leave out local build output and every secret inside {}",
            dir.display()
        ),
        Ignore::Wrote(path) => appendln!(
            err,
            "wrote {}: what the build context leaves out",
            path.display()
        ),
    }
    appendln!(
        err,
        "next: set `image` in {MATRIX}, then `driver-matrix resolve`, `plan` and `build` (with `-m {}`)",
        done.matrix.display()
    );
    eprint!("{err}");
    Ok(ExitCode::Ok)
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use crate::cli::Cli;
    use crate::exit::ExitCode;

    /// The exit code `driver-matrix init DIR` ends with.
    fn init(dir: &std::path::Path) -> ExitCode {
        let cli = Cli::try_parse_from(["driver-matrix", "-q", "init", &dir.to_string_lossy()])
            .expect("a command line");
        crate::commands::dispatch(cli).unwrap_or_else(|e| e.exit_code())
    }

    #[test]
    fn a_file_init_cannot_write_is_an_io_failure_not_a_usage_error() {
        let tmp = tempfile::tempdir().expect("a temporary directory");
        std::fs::write(tmp.path().join("Kbuild"), "obj-m := hello.o\n").expect("a Kbuild");
        // A dangling symlink is no file that exists, yet nothing can be created in its place.
        std::os::unix::fs::symlink(tmp.path().join("nowhere"), tmp.path().join("Containerfile"))
            .expect("a symlink");
        assert_eq!(init(tmp.path()), ExitCode::Failed);
        std::fs::remove_file(tmp.path().join("Containerfile")).expect("the symlink removed");
        std::fs::remove_file(tmp.path().join("matrix.toml")).expect("the matrix written");
        assert_eq!(init(tmp.path()), ExitCode::Ok);
        assert_eq!(
            init(tmp.path()),
            ExitCode::Usage,
            "a second run finds its own files"
        );
    }
}
