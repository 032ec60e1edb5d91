//! Reading `matrix.lock`. A lock that cannot be read is an error, never silently replaced.

use std::path::{Path, PathBuf};

use miette::{Diagnostic, NamedSource, SourceSpan};
use serde::Deserialize;

use super::validate::{self, Invalid, RawImage, RawRelease};
use super::{FORMAT_VERSION, Lock};

#[derive(Debug, thiserror::Error, Diagnostic)]
pub enum LockError {
    #[error("cannot read lockfile `{path}`")]
    #[diagnostic(code(driver_matrix::lock::io))]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error(transparent)]
    #[diagnostic(transparent)]
    Malformed(Box<Malformed>),

    /// A field that does not fit its grammar ([`validate`]).
    #[error(transparent)]
    #[diagnostic(transparent)]
    Invalid(Box<Invalid>),

    #[error(
        "lockfile `{path}` has format version {found}; this driver-matrix reads version {FORMAT_VERSION}"
    )]
    #[diagnostic(
        code(driver_matrix::lock::version),
        help(
            "a newer driver-matrix wrote it; upgrade driver-matrix rather than overwriting the lock"
        )
    )]
    UnknownVersion { path: PathBuf, found: String },

    /// A lock named on the command line that cannot be had (no such file, not a revision,
    /// git failed).
    #[error("{message}")]
    #[diagnostic(code(driver_matrix::lock::source))]
    Source {
        message: String,
        #[help]
        help: Option<String>,
    },

    #[error("cannot write lockfile `{path}`")]
    #[diagnostic(code(driver_matrix::lock::write))]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

#[derive(Debug, thiserror::Error, Diagnostic)]
#[error("lockfile `{path}` is malformed: {message}")]
#[diagnostic(
    code(driver_matrix::lock::malformed),
    help(
        "the lock is generated; restore it from version control, or delete it and run `driver-matrix resolve`"
    )
)]
pub struct Malformed {
    path: PathBuf,
    message: String,
    #[source_code]
    src: NamedSource<String>,
    #[label("here")]
    span: Option<SourceSpan>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLock {
    version: toml::Value,
    #[serde(default)]
    release: Vec<RawRelease>,
    #[serde(default)]
    image: Vec<RawImage>,
}

impl LockError {
    pub(crate) fn source(message: impl Into<String>, help: Option<String>) -> Self {
        LockError::Source {
            message: message.into(),
            help,
        }
    }
}

/// Reads the lock at `path`; a missing file is an empty lock.
pub fn read(path: &Path) -> Result<Lock, LockError> {
    match std::fs::read_to_string(path) {
        Ok(text) => read_str(path, &text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Lock::default()),
        Err(source) => Err(LockError::Io {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Parses lock text; `path` is only used in messages.
pub fn read_str(path: &Path, text: &str) -> Result<Lock, LockError> {
    let malformed = |message: String, span: Option<std::ops::Range<usize>>| {
        LockError::Malformed(Box::new(Malformed {
            path: path.to_path_buf(),
            message,
            src: NamedSource::new(path.display().to_string(), text.to_string()),
            span: span.map(Into::into),
        }))
    };
    let version_error = |version: Option<&toml::Value>| match version {
        Some(toml::Value::Integer(FORMAT_VERSION)) => None,
        Some(other) => Some(LockError::UnknownVersion {
            path: path.to_path_buf(),
            found: other.to_string(),
        }),
        None => Some(malformed("it has no `version` key".into(), None)),
    };
    // One parse when the lock is well formed. When it is not, look at its version before
    // anything else, so that a lock from a newer format is reported as such rather than as a
    // pile of unknown keys.
    let raw: RawLock = match toml::from_str(text) {
        Ok(raw) => raw,
        Err(e) => {
            let table: toml::Table =
                toml::from_str(text).map_err(|e| malformed(e.message().to_string(), e.span()))?;
            return Err(version_error(table.get("version"))
                .unwrap_or_else(|| malformed(e.message().to_string(), e.span())));
        }
    };
    if let Some(e) = version_error(Some(&raw.version)) {
        return Err(e);
    }
    let invalid = |e| LockError::Invalid(Box::new(e));
    let mut lock = Lock {
        releases: validate::releases(path, raw.release).map_err(invalid)?,
        images: validate::images(path, raw.image).map_err(invalid)?,
    };
    lock.canonicalize();
    Ok(lock)
}
