//! One module per command: parse its flags, call the pipeline (`crate::pipeline`), render what
//! it returns. This one holds what they share: opening the session, planning with the warnings
//! shown, printing warnings.
//!
//! Every command module has one entry point, named `run` in each: it takes the [`Context`] and
//! the command's flags (`schema::run` needs neither) and returns the exit code. [`dispatch`]
//! calls the command's `run`; no command module calls into another one.

// Commands are where output is written; everything below them returns what to show.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod build;
mod collect;
mod diff;
mod export;
mod init;
mod plan;
mod releases;
mod resolve;
mod schema;
mod verify;

use std::io::Write;
use std::path::PathBuf;

use crate::cli::{Cli, Command, Global};
use crate::error::Result;
use crate::exit::ExitCode;
use crate::lock::{self, Lock};
use crate::matrix::{self, Matrix};
use crate::pipeline::{self, Access, Planned, Session};
use crate::plan::Plan;

/// Runs the parsed command line; returns the process exit code (`build`, `verify` and
/// `collect` return 1 for a failed job or finding, `build` 130 when interrupted).
pub fn dispatch(cli: Cli) -> Result<ExitCode> {
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
            let mut cmd = crate::cli::command();
            clap_complete::generate(shell, &mut cmd, "driver-matrix", &mut std::io::stdout());
            Ok(ExitCode::Ok)
        }
    }
}

/// How the releases whose DTK kernel is not their nodes' are shown: in full where they are
/// found (`resolve`), as one line with the count everywhere else.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kernels {
    Full,
    Count,
}

/// What every command starts from.
pub struct Context {
    pub global: Global,
}

impl Context {
    pub fn lock_path(&self) -> PathBuf {
        self.options().lock_path()
    }

    pub fn options(&self) -> pipeline::Options {
        let g = &self.global;
        pipeline::Options {
            matrix: g.matrix.clone(),
            lockfile: g.lockfile.clone(),
            authfile: g.authfile.clone(),
            cert_dir: g.cert_dir.clone(),
            cache_dir: g.cache_dir.clone(),
            offline: g.offline,
            wait: if g.no_wait {
                pipeline::Wait::No
            } else {
                pipeline::Wait::Yes
            },
        }
    }

    /// Opens the run's session (see [`pipeline::Session::open`]), saying so when it waits for
    /// another writer, and prints the matrix's warnings.
    pub fn session(&self, access: Access) -> Result<Session> {
        if matches!(access, Access::Write(_)) {
            self.sweep();
        }
        let quiet = self.global.quiet;
        let session = Session::open(self.options(), access, |holder| {
            if !quiet {
                eprintln!(
                    "waiting for another driver-matrix to finish writing the lock ({holder})"
                );
            }
        })?;
        self.warn_all(&session.matrix, &session.warnings);
        Ok(session)
    }

    /// Removes what killed runs left (their buildah process groups, their temporary files:
    /// see [`crate::runs`]), once per process, saying so unless `-q`. Nothing of a live run is
    /// touched, so two commands at once stay safe.
    pub fn sweep(&self) {
        static SWEPT: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
        if SWEPT.swap(true, std::sync::atomic::Ordering::SeqCst) {
            return;
        }
        let opts = self.options();
        let swept = crate::runs::sweep(opts.cache_dir().as_deref(), &opts.lock_path());
        if !self.global.quiet {
            for m in swept.messages() {
                eprintln!("{m}");
            }
        }
    }

    /// Loads the matrix and prints its warnings (unless `-q`).
    pub fn load_matrix(&self) -> Result<Matrix> {
        let loaded = matrix::load(&self.global.matrix)?;
        self.warn_all(&loaded.matrix, &loaded.warnings);
        Ok(loaded.matrix)
    }

    pub fn read_lock(&self) -> Result<Lock> {
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
            let report = miette::Report::new(crate::text::Escaped::new(w.clone()))
                .with_source_code(matrix.source.clone());
            let _ = writeln!(std::io::stderr(), "{report:?}");
        }
    }

    /// The run's progress display on stderr: bars on a terminal, plain lines elsewhere, only
    /// failures under `-q`.
    pub fn reporter(&self) -> Box<dyn crate::progress::Reporter> {
        use std::io::IsTerminal;
        if self.global.quiet {
            Box::new(crate::report::Quiet)
        } else if std::io::stderr().is_terminal() {
            Box::new(crate::report::Progress::new())
        } else {
            Box::new(crate::report::Plain::default())
        }
    }

    /// Resolves and plans in `session` ([`Session::planned`]), reporting to `progress`, then
    /// shows the releases whose DTK kernel is not their nodes' (as `kernels` says) and the
    /// plan's warnings.
    pub fn planned(
        &self,
        session: &Session,
        progress: &dyn crate::progress::Reporter,
        kernels: Kernels,
    ) -> Result<Planned> {
        let planned = session.planned(progress)?;
        // After planning: a release every driver excludes has left, and is not warned about.
        let releases = &planned.resolution.releases;
        match kernels {
            Kernels::Full => self.warn_all(&session.matrix, &pipeline::kernel_warnings(releases)),
            Kernels::Count => {
                if let Some(line) = crate::report::kernel_mismatch_line(releases)
                    && !self.global.quiet
                {
                    eprintln!("{line}");
                }
            }
        }
        self.warn_all(&session.matrix, &planned.plan.warnings);
        Ok(planned)
    }

    /// The plan, resolved and planned in a session of its own with the progress display, after
    /// every Containerfile is checked; nothing is written.
    pub fn read_only_plan(&self) -> Result<Plan> {
        let session = self.session(Access::Read)?;
        crate::matrix::containerfile::check_all(&session.matrix)?;
        Ok(self
            .planned(&session, self.reporter().as_ref(), Kernels::Count)?
            .plan)
    }

    /// `-v`: what the registry client did.
    pub fn registry_stats(&self, session: &Session) {
        if self.global.verbose == 0 {
            return;
        }
        if let Some(c) = session.client_if_used() {
            let s = c.stats();
            eprintln!(
                "registry: {} requests, {} bytes received",
                s.requests, s.bytes
            );
        }
    }
}
