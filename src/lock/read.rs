//! Reading `matrix.lock`. A lock that cannot be read is an error, never silently replaced.
//!
//! The lockfile comes from contributors, so it is opened as data: a symbolic link at its path
//! is refused (never followed), anything but a regular file is never read (a FIFO cannot hang
//! a run), and an error quotes no more of the file than the offending span of a file that is a
//! lock; a file that is not a lock at all is only said to be one.

use std::io::Read as _;
use std::path::{Path, PathBuf};

use miette::{Diagnostic, NamedSource, SourceSpan};
use serde::Deserialize;

use super::validate::{self, Invalid, RawImage, RawRelease};
use super::{FORMAT_VERSION, Lock};
use crate::data_file::{Refused, open_regular};

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

    #[error("lockfile `{path}` is {what}")]
    #[diagnostic(
        code(driver_matrix::lock::not_a_file),
        help(
            "the lockfile is read and replaced in place, never through a link: put the file itself at `{}`, or name it with `--lockfile`",
            path.display()
        )
    )]
    NotAFile { path: PathBuf, what: &'static str },

    #[error(
        "`{path}` is not a driver-matrix lock: it has no `@generated` header and no `version` key"
    )]
    #[diagnostic(
        code(driver_matrix::lock::not_a_lock),
        help(
            "point `--lockfile` at a lock driver-matrix wrote, or remove `{}` and run `driver-matrix resolve`",
            path.display()
        )
    )]
    NotALock { path: PathBuf },

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
    src: NamedSource<SpanOnly>,
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

/// The largest lockfile read; a bigger file is no lock this tool wrote.
const LOCK_MAX: u64 = 256 << 20;

/// The source of a malformed lock as an error shows it: the lines of the offending span and
/// nothing around them.
#[derive(Debug)]
pub struct SpanOnly(String);

impl miette::SourceCode for SpanOnly {
    fn read_span<'a>(
        &'a self,
        span: &SourceSpan,
        _before: usize,
        _after: usize,
    ) -> Result<Box<dyn miette::SpanContents<'a> + 'a>, miette::MietteError> {
        self.0.read_span(span, 0, 0)
    }
}

/// Reads the lock at `path`; a missing file is an empty lock, a link or anything but a
/// regular file an error.
pub fn read(path: &Path) -> Result<Lock, LockError> {
    match read_bytes(path)? {
        Some(bytes) => match String::from_utf8(bytes) {
            Ok(text) => read_str(path, &text),
            Err(_) => Err(LockError::NotALock {
                path: path.to_path_buf(),
            }),
        },
        None => Ok(Lock::default()),
    }
}

/// The bytes of the lockfile at `path` (`None` when there is none), opened without following
/// a link and without blocking on a FIFO, and read only when it is a regular file.
pub(crate) fn read_bytes(path: &Path) -> Result<Option<Vec<u8>>, LockError> {
    let io = |source| LockError::Io {
        path: path.to_path_buf(),
        source,
    };
    let not_a_file = |what| LockError::NotAFile {
        path: path.to_path_buf(),
        what,
    };
    let file = match open_regular(path, std::fs::OpenOptions::new().read(true)) {
        Ok((f, _)) => f,
        Err(Refused::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(Refused::Link) => return Err(not_a_file("a symbolic link")),
        Err(Refused::NotRegular) => return Err(not_a_file("not a regular file")),
        Err(Refused::Io(e)) => return Err(io(e)),
    };
    let mut bytes = Vec::new();
    file.take(LOCK_MAX + 1)
        .read_to_end(&mut bytes)
        .map_err(io)?;
    if bytes.len() as u64 > LOCK_MAX {
        return Err(io(std::io::Error::other(format!(
            "it is larger than {} MiB",
            LOCK_MAX >> 20
        ))));
    }
    Ok(Some(bytes))
}

/// Whether `text` starts as a lock this tool writes does: the `@generated` header.
fn has_header(text: &str) -> bool {
    text.lines()
        .next()
        .is_some_and(|l| l.starts_with('#') && l.contains("@generated"))
}

/// Parses lock text; `path` is only used in messages.
pub fn read_str(path: &Path, text: &str) -> Result<Lock, LockError> {
    let malformed = |message: String, span: Option<std::ops::Range<usize>>| {
        LockError::Malformed(Box::new(Malformed {
            path: path.to_path_buf(),
            message,
            src: NamedSource::new(path.display().to_string(), SpanOnly(text.to_string())),
            span: span.map(Into::into),
        }))
    };
    let not_a_lock = || LockError::NotALock {
        path: path.to_path_buf(),
    };
    let version_error = |version: Option<&toml::Value>| match version {
        Some(toml::Value::Integer(FORMAT_VERSION)) => None,
        Some(other @ toml::Value::Integer(_)) => Some(LockError::UnknownVersion {
            path: path.to_path_buf(),
            found: other.to_string(),
        }),
        // Not a lock's version: quoted only when the file says it is a lock.
        Some(other) if has_header(text) => Some(LockError::UnknownVersion {
            path: path.to_path_buf(),
            found: other.to_string(),
        }),
        Some(_) => Some(not_a_lock()),
        None if has_header(text) => Some(malformed("it has no `version` key".into(), None)),
        None => Some(not_a_lock()),
    };
    // One parse when the lock is well formed. When it is not, look at its version before
    // anything else, so that a lock from a newer format is reported as such rather than as a
    // pile of unknown keys, and a file that is no lock at all is said to be none (without a
    // word of what it holds).
    let raw: RawLock = match toml::from_str(text) {
        Ok(raw) => raw,
        Err(e) => {
            let table: toml::Table = match toml::from_str(text) {
                Ok(t) => t,
                Err(e) if has_header(text) => {
                    return Err(malformed(e.message().to_string(), e.span()));
                }
                Err(_) => return Err(not_a_lock()),
            };
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
