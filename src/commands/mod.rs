//! One module per command; this one holds what they share: loading the matrix and the lock,
//! printing warnings.

mod build;
mod collect;
mod diff;
mod export;
mod init;
mod plan;
mod releases;
pub mod resolve;
mod schema;
mod verify;

use std::io::Write;
use std::path::PathBuf;

use crate::cli::{Cli, Command, Global};
use crate::error::Result;
use crate::lock::{self, Lock};
use crate::matrix::{self, Matrix};

/// Runs the parsed command line; returns the process exit code on success paths that still
/// want a non-zero code (none yet).
pub fn run(cli: Cli) -> Result<i32> {
    let ctx = Context { global: cli.global };
    match cli.command {
        Command::Plan(args) => plan::run(&ctx, &args),
        Command::Build(args) => build::run(&ctx, &args),
        Command::Resolve(args) => resolve::run(&ctx, &args),
        Command::Releases(args) => releases::run(&ctx, &args),
        Command::Verify(args) => verify::run(&ctx, &args),
        Command::Collect => collect::run(&ctx),
        Command::Diff(args) => diff::run(&ctx, &args),
        Command::Export(args) => export::run(&ctx, &args),
        Command::Schema => schema::run(),
        Command::Init(args) => init::run(&ctx, &args.dir),
        Command::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut cmd, "driver-matrix", &mut std::io::stdout());
            Ok(0)
        }
    }
}

/// What every command starts from.
pub struct Context {
    pub global: Global,
}

impl Context {
    pub fn lock_path(&self) -> PathBuf {
        match &self.global.lockfile {
            Some(p) => p.clone(),
            None => self.global.matrix.with_file_name("matrix.lock"),
        }
    }

    /// Loads the matrix and prints its warnings (unless `-q`).
    pub fn matrix(&self) -> Result<Matrix> {
        let loaded = matrix::load(&self.global.matrix)?;
        self.warn_all(&loaded.matrix, &loaded.warnings);
        Ok(loaded.matrix)
    }

    pub fn lock(&self) -> Result<Lock> {
        Ok(lock::read(&self.lock_path())?)
    }

    pub fn warn_all(&self, matrix: &Matrix, warnings: &[matrix::Problem]) {
        if self.global.quiet {
            return;
        }
        for w in warnings {
            if w.severity == miette::Severity::Advice && self.global.verbose == 0 {
                continue;
            }
            let report = miette::Report::new(w.clone()).with_source_code(matrix.source.clone());
            let _ = writeln!(std::io::stderr(), "{report:?}");
        }
    }
}
