//! The crate's top-level error, and the one mapping of an error to the contract's exit code.

use miette::Diagnostic;

use crate::buildah::BuildError;
use crate::exit::ExitCode;
use crate::release::{ReleaseError, layer::LayerError};

#[derive(Debug, thiserror::Error, Diagnostic)]
pub enum Error {
    #[error(transparent)]
    #[diagnostic(transparent)]
    Matrix(#[from] crate::matrix::LoadError),

    /// A Containerfile buildah would refuse, found before anything is resolved.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Containerfile(#[from] Box<crate::matrix::ContainerfileError>),

    #[error(transparent)]
    #[diagnostic(transparent)]
    Lock(#[from] crate::lock::LockError),

    #[error(transparent)]
    #[diagnostic(transparent)]
    Plan(#[from] crate::plan::PlanError),

    #[error(transparent)]
    #[diagnostic(transparent)]
    Inputs(#[from] crate::inputs::InputsError),

    #[error(transparent)]
    #[diagnostic(transparent)]
    Build(#[from] crate::buildah::BuildError),

    #[error(transparent)]
    #[diagnostic(transparent)]
    Export(#[from] crate::export::ExportError),

    #[error(transparent)]
    #[diagnostic(transparent)]
    Release(#[from] crate::release::ReleaseError),

    #[error(transparent)]
    #[diagnostic(transparent)]
    Registry(#[from] crate::registry::RegistryError),

    /// The writer's lock could not be taken (`--no-wait` while another writer holds it).
    #[error(transparent)]
    #[diagnostic(transparent)]
    Writer(#[from] crate::lock::writer::WriterError),

    /// `init`: a module source directory it cannot scaffold, or a file it cannot read or write.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Scaffold(#[from] crate::scaffold::ScaffoldError),

    /// A selection flag (`--driver`, `--kernel`) that names nothing the matrix or the plan has.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Selection(#[from] crate::plan::SelectionError),

    /// Bad usage that clap could not catch (conflicting values, a missing lock entry offline).
    #[error("{message}")]
    #[diagnostic(code(driver_matrix::usage))]
    Usage {
        message: String,
        #[help]
        help: Option<String>,
    },

    /// `collect` could not read some images; the lock was left as it was.
    #[error("the registry failed while collecting; the lock is unchanged:\n  {}", failed.join("\n  "))]
    #[diagnostic(
        code(driver_matrix::collect::registry),
        help("check that the registry is reachable and run `driver-matrix collect` again")
    )]
    Collect { failed: Vec<String> },

    /// `--locked` and the lock would change (or, for `build`, something would be built).
    #[error("lockfile `{}` is out of date:\n  {}", lock.display(), changes.join("\n  "))]
    #[diagnostic(
        code(driver_matrix::locked),
        help("run the same command without `--locked` and commit the updated lock")
    )]
    Outdated {
        lock: std::path::PathBuf,
        changes: Vec<String>,
    },
}

impl Error {
    pub fn usage(message: impl Into<String>, help: Option<String>) -> Self {
        Error::Usage {
            message: message.into(),
            help,
        }
    }

    /// The contract's exit code for this error: the one place an error becomes one.
    pub fn exit_code(&self) -> ExitCode {
        match self {
            Error::Matrix(_)
            | Error::Containerfile(_)
            | Error::Lock(_)
            | Error::Plan(_)
            | Error::Usage { .. }
            | Error::Selection(_)
            | Error::Inputs(_)
            | Error::Export(_)
            | Error::Writer(_) => ExitCode::Usage,
            Error::Outdated { .. } => ExitCode::Locked,
            Error::Collect { .. } => ExitCode::Registry,
            Error::Build(e) => build_code(e),
            Error::Release(e) => release_code(e),
            Error::Registry(_) => ExitCode::Registry,
            Error::Scaffold(e) => scaffold_code(e),
        }
    }
}

/// Failed for a file `init` could not read or write; usage for what the user must fix.
fn scaffold_code(e: &crate::scaffold::ScaffoldError) -> ExitCode {
    use crate::scaffold::ScaffoldError;
    match e {
        ScaffoldError::Read { .. } | ScaffoldError::Write { .. } => ExitCode::Failed,
        ScaffoldError::NoBuildFile { .. }
        | ScaffoldError::NoModule { .. }
        | ScaffoldError::Exists { .. } => ExitCode::Usage,
    }
}

fn build_code(e: &BuildError) -> ExitCode {
    match e {
        BuildError::Store(_) => ExitCode::Registry,
        BuildError::NoCacheDir => ExitCode::Usage,
        BuildError::RegistriesConf { .. } => ExitCode::Failed,
        BuildError::MachineRegistriesConf { .. } => ExitCode::Usage,
    }
}

/// Registry for registry, network and authentication failures; failed for content that is not
/// what a release payload or DTK should hold; usage for what `--offline` cannot know and for
/// releases and channels that do not exist (a matrix error: a retry cannot help).
fn release_code(e: &ReleaseError) -> ExitCode {
    match e {
        ReleaseError::Registry { .. }
        | ReleaseError::Graph { .. }
        | ReleaseError::LayerDigest { .. } => ExitCode::Registry,
        ReleaseError::Layer {
            error: LayerError::Read(_),
            ..
        } => ExitCode::Registry,
        ReleaseError::Offline { .. }
        | ReleaseError::UnknownRelease(_)
        | ReleaseError::UnknownChannel(_) => ExitCode::Usage,
        _ => ExitCode::Failed,
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
