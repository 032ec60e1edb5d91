//! buildah, the one builder: its command lines ([`command`], pure), the registries.conf it gets
//! ([`registries`]), and running the builds of a plan in parallel ([`executor`], [`process`])
//! while reporting [`crate::progress`] events.
//!
//! Which jobs a run builds is the planner's (`crate::plan::select`); whether a locked image is
//! still there, the registry's (`crate::registry::has_digest`); the orchestration (freshness,
//! the lock, confirming pushed images) lives in `crate::pipeline::build`; rendering events in
//! `crate::report`.

pub mod command;
pub mod executor;
pub mod process;
pub mod registries;

pub use crate::progress::{Event, Failure, Outcome, Reporter};
pub use crate::registry::StoreError;
pub use command::{Buildah, CliSecret, Invocation};
pub use executor::{Executor, Task};
pub use process::Cancel;

/// Errors of the build layer that end the run (a failed job does not: it is an outcome).
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum BuildError {
    #[error(transparent)]
    #[diagnostic(transparent)]
    Store(#[from] StoreError),

    #[error("no cache directory to keep build logs in")]
    #[diagnostic(code(driver_matrix::build::cache_dir), help("pass `--cache-dir DIR`"))]
    NoCacheDir,

    #[error("cannot write buildah's registries.conf to `{path}`")]
    #[diagnostic(code(driver_matrix::build::registries_conf))]
    RegistriesConf {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read the machine's registries configuration `{path}`: {message}")]
    #[diagnostic(
        code(driver_matrix::build::machine_registries_conf),
        help(
            "buildah's registries.conf is this file plus the matrix's `[registries]`; fix it (containers-registries.conf(5)) or point `CONTAINERS_REGISTRIES_CONF` at a valid one"
        )
    )]
    MachineRegistriesConf {
        path: std::path::PathBuf,
        message: String,
    },
}
