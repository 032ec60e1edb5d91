//! `matrix.toml`: parsing, the structural check against the schema, semantic validation, and
//! the validated model.
//!
//! Loading runs three passes and reports every problem of a pass at once: TOML syntax, then
//! structure (unknown keys, missing keys, wrong types), then values (versions, arches, paths,
//! references, templates). Warnings (a duplicate release, an exclude naming an unknown driver)
//! come back beside the matrix.

pub mod containerfile;
mod diagnostic;
mod kmm;
mod model;
mod raw;
mod signing;
mod structure;
mod toolkit;
mod validate;

use std::path::Path;
use std::sync::Arc;

use miette::NamedSource;

pub use containerfile::ContainerfileError;
pub use diagnostic::{MatrixError, Problem};
pub use kmm::{
    DevicePlugin, Fallback, KERNEL_PLACEHOLDER, Kmm, Sign, Toleration, is_dns_subdomain,
    is_label_key,
};
pub use model::*;
pub use raw::{schema, schema_text};
pub use toolkit::Toolkit;
pub use validate::{RESERVED_BUILD_ARGS, shipped_secret, suggest_name};

/// Why the matrix file could not be loaded at all.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum LoadError {
    #[error("cannot read matrix file `{path}`")]
    #[diagnostic(
        code(driver_matrix::matrix::io),
        help("pass the matrix with `-m PATH`; the default is `./matrix.toml`")
    )]
    Io {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error(transparent)]
    #[diagnostic(transparent)]
    Invalid(#[from] Box<MatrixError>),
}

/// A loaded matrix and the warnings found on the way.
#[derive(Debug)]
pub struct Loaded {
    pub matrix: Matrix,
    pub warnings: Vec<Problem>,
}

/// Reads and validates the matrix file at `path`.
pub fn load(path: &Path) -> Result<Loaded, LoadError> {
    let text = std::fs::read_to_string(path).map_err(|source| LoadError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let root = dir.canonicalize().map_err(|source| LoadError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse(path, &root, text).map_err(|e| LoadError::Invalid(Box::new(e)))
}

/// Validates matrix text; `path` names it in messages, `root` is the directory paths are
/// relative to.
pub fn parse(path: &Path, root: &Path, text: String) -> Result<Loaded, MatrixError> {
    let name = path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    let source = Arc::new(NamedSource::new(name, text.clone()).with_language("TOML"));
    let fail = |mut problems: Vec<Problem>| {
        problems.sort_by_key(Problem::offset);
        MatrixError {
            path: path.to_path_buf(),
            source_code: source.clone(),
            problems,
        }
    };

    let table = toml::de::DeTable::parse(&text).map_err(|e| {
        let problem = Problem::new(format!("invalid TOML: {}", e.message().trim_end()));
        let problem = match e.span() {
            Some(span) => problem.label(span, "here"),
            None => problem,
        };
        fail(vec![problem])
    })?;
    let problems = structure::check(&table, &schema());
    if !problems.is_empty() {
        return Err(fail(problems));
    }
    let raw: raw::RawMatrix = toml::from_str(&text).map_err(|e| {
        let problem = Problem::new(e.message().trim_end().to_string());
        fail(vec![match e.span() {
            Some(span) => problem.label(span, "here"),
            None => problem,
        }])
    })?;
    let mut v = validate::Validator::new(root.to_path_buf());
    let matrix = v.matrix(raw, path, source.clone());
    let (errors, mut warnings): (Vec<Problem>, Vec<Problem>) = v
        .problems
        .into_iter()
        .partition(|p| p.severity == miette::Severity::Error);
    if !errors.is_empty() {
        return Err(fail(errors));
    }
    warnings.sort_by_key(Problem::offset);
    Ok(Loaded { matrix, warnings })
}
