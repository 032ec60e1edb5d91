//! Building the jobs of a plan with buildah: which jobs ([`select`], [`fresh`]), their command
//! lines ([`command`], pure), running them in parallel ([`executor`], [`process`]) while
//! reporting [`crate::progress`] events.
//!
//! The orchestration (freshness, the lock, confirming pushed images) lives in
//! `crate::pipeline::build`; rendering events lives in `crate::report`.

pub mod command;
pub mod executor;
pub mod fresh;
pub mod process;
pub mod registries;
pub mod select;

pub use crate::progress::{Event, Failure, Outcome, Reporter};
pub use command::{Buildah, CliSecret, Invocation};
pub use executor::{Executor, Task};
pub use fresh::{StoreError, has_digest};
pub use process::Cancel;
pub use select::{Assignment, Selection, SelectionError, Shard};

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
