//! A driver's Containerfile checked before anything is resolved or pulled: one that buildah
//! would refuse (an unknown instruction such as `FORM`, no `FROM`, a `FROM` naming a build arg
//! that is not declared before it or has no value) is a matrix error with its file and line,
//! not a failure per kernel after each DTK pull.
//!
//! The syntax is `parse-dockerfile`'s (the BuildKit grammar: instructions, continuations,
//! heredocs, parser directives); what it leaves to the builder, the arguments a `FROM` may
//! name, is checked here.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use miette::{NamedSource, SourceSpan};
use parse_dockerfile::Instruction;

use super::{Driver, Matrix, RESERVED_BUILD_ARGS};

/// The build args BuildKit and buildah define in the global scope without an `ARG`.
const AUTOMATIC_ARGS: [&str; 8] = [
    "TARGETPLATFORM",
    "TARGETOS",
    "TARGETARCH",
    "TARGETVARIANT",
    "BUILDPLATFORM",
    "BUILDOS",
    "BUILDARCH",
    "BUILDVARIANT",
];

/// A Containerfile buildah would refuse.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
#[error("driver `{driver}`: `{name}` cannot build: {message}")]
#[diagnostic(code(driver_matrix::containerfile), help("{help}"))]
pub struct ContainerfileError {
    pub driver: String,
    pub path: PathBuf,
    /// The file as the report names it: relative to the matrix's directory.
    pub name: String,
    pub message: String,
    pub help: String,
    #[source_code]
    pub text: Arc<NamedSource<String>>,
    #[label("here")]
    pub span: SourceSpan,
}

/// Checks the Containerfile of every driver, in the matrix's order; the first that cannot
/// build is the error. A file that cannot be read is left to the build (validation already
/// said it exists).
pub fn check_all(matrix: &Matrix) -> Result<(), Box<ContainerfileError>> {
    for d in &matrix.drivers {
        let path = d.context.join(&d.containerfile);
        if let Ok(text) = std::fs::read_to_string(&path) {
            check(d, &path, &matrix.root, text)?;
        }
    }
    Ok(())
}

/// Checks one Containerfile's text; `root` (the matrix's directory) is what its name in the
/// report is relative to.
pub fn check(
    driver: &Driver,
    path: &Path,
    root: &Path,
    text: String,
) -> Result<(), Box<ContainerfileError>> {
    let problem = problem(&text, &driver.build_args);
    let Some((at, message, help)) = problem else {
        return Ok(());
    };
    let name = path
        .strip_prefix(root)
        .map_or_else(|_| path.display().to_string(), |p| p.display().to_string());
    let len = text[at.min(text.len())..]
        .find(['\n', ' '])
        .unwrap_or(text.len().saturating_sub(at))
        .max(1);
    Err(Box::new(ContainerfileError {
        driver: driver.name.clone(),
        path: path.to_path_buf(),
        name: name.clone(),
        message,
        help,
        span: (at.min(text.len()), len.min(text.len().saturating_sub(at))).into(),
        text: Arc::new(NamedSource::new(name, text)),
    }))
}

/// The first problem of `text`: its byte offset, what is wrong, and the fix.
fn problem(text: &str, build_args: &BTreeMap<String, String>) -> Option<(usize, String, String)> {
    let file = match parse_dockerfile::parse(text) {
        Ok(f) => f,
        Err(e) => {
            let help = if e.to_string().contains("unknown instruction") {
                "instructions are `FROM`, `ARG`, `RUN`, `COPY`, `ADD`, `ENV`, `LABEL`, ...: check the spelling"
            } else {
                "a Containerfile needs at least one `FROM`, and only `ARG` may come before the first"
            };
            return Some((
                offset(text, e.line(), e.column()),
                format!("{e:#} (line {})", e.line()),
                help.into(),
            ));
        }
    };
    let globals: BTreeMap<String, bool> = file.global_args().flat_map(declared).collect();
    file.instructions.iter().find_map(|i| match i {
        Instruction::From(from) => {
            undeclared(&from.image.value, &globals, build_args).map(|(name, declared)| {
                let line = text[..from.image.span.start.min(text.len())].lines().count().max(1);
                let (message, help) = if declared {
                    (
                        format!("`FROM` on line {line} names `${name}`, which has no value"),
                        format!("give it a default (`ARG {name}=...`) or a value in the driver's `build-args`"),
                    )
                } else {
                    (
                        format!("`FROM` on line {line} names `${name}`, which is not declared before the first `FROM`"),
                        format!("add `ARG {name}` before the first `FROM` (as the scaffold of `driver-matrix init` does)"),
                    )
                };
                (from.image.span.start, message, help)
            })
        }
        _ => None,
    })
}

/// The names an `ARG` declares, and whether each has a default.
fn declared(arg: &parse_dockerfile::ArgInstruction<'_>) -> Vec<(String, bool)> {
    arg.arguments
        .value
        .split_whitespace()
        .map(|a| match a.split_once('=') {
            Some((n, v)) => (n.to_string(), !v.is_empty()),
            None => (a.to_string(), false),
        })
        .collect()
}

/// The first variable of `image` that expands to nothing: not declared in the global scope
/// (`false`), or declared without a default nor a value given by the build (`true`). A
/// variable with a default of its own (`${X:-y}`) never does.
fn undeclared(
    image: &str,
    globals: &BTreeMap<String, bool>,
    build_args: &BTreeMap<String, String>,
) -> Option<(String, bool)> {
    let passed: BTreeSet<&str> = RESERVED_BUILD_ARGS
        .iter()
        .copied()
        .chain(build_args.keys().map(String::as_str))
        .collect();
    variables(image).into_iter().find_map(|name| {
        if AUTOMATIC_ARGS.contains(&name.as_str()) {
            return None;
        }
        match globals.get(&name) {
            None => Some((name, false)),
            Some(true) => None,
            Some(false) if passed.contains(name.as_str()) => None,
            Some(false) => Some((name, true)),
        }
    })
}

/// The variables `$X` and `${X}` of `s` (not those with a modifier such as `${X:-default}`).
fn variables(s: &str) -> Vec<String> {
    let is_name = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut out = Vec::new();
    let mut rest = s;
    while let Some(at) = rest.find('$') {
        rest = &rest[at + 1..];
        if let Some(inner) = rest.strip_prefix('{') {
            let end = inner.find('}').unwrap_or(inner.len());
            let body = &inner[..end];
            if !body.is_empty() && body.chars().all(is_name) {
                out.push(body.to_string());
            }
            rest = &inner[end..];
        } else {
            let end = rest.find(|c| !is_name(c)).unwrap_or(rest.len());
            if end > 0 {
                out.push(rest[..end].to_string());
            }
            rest = &rest[end..];
        }
    }
    out
}

/// The byte offset of 1-based `line` and `column` in `text`.
fn offset(text: &str, line: usize, column: usize) -> usize {
    let start: usize = text
        .split_inclusive('\n')
        .take(line.saturating_sub(1))
        .map(str::len)
        .sum();
    (start + column.saturating_sub(1)).min(text.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn first(text: &str) -> Option<String> {
        // As matrix.example.toml passes them.
        let args = BTreeMap::from([
            ("VERSION".to_string(), "1.0".to_string()),
            ("BASE_IMAGE".to_string(), "r.example/kmod-base".to_string()),
        ]);
        problem(text, &args).map(|(at, m, _)| format!("{at}: {m}"))
    }

    #[test]
    fn what_buildah_would_refuse() {
        let good = "ARG DTK_IMAGE\nARG BASE=registry.example/base:9\nFROM ${DTK_IMAGE} AS dtk\nRUN make\nFROM $BASE\nCOPY --from=dtk /a /b\n";
        assert_eq!(first(good), None);
        assert_eq!(
            first("FROM ${TARGETARCH:-x}/a\nFROM ${NOPE:-busybox}\n"),
            None
        );
        let typo = first("ARG DTK_IMAGE\nFORM ${DTK_IMAGE}\n").expect("a typo");
        assert!(
            typo.starts_with("14: ") && typo.contains("FORM") && typo.contains("line 2"),
            "{typo}"
        );
        let none = first("# nothing\nARG X\n").expect("no FROM");
        assert!(none.contains("line"), "{none}");
        let run_first = first("RUN make\nFROM scratch\n").expect("RUN before FROM");
        assert!(run_first.starts_with("0: "), "{run_first}");
        let late = first("FROM ${DTK_IMAGE}\nARG DTK_IMAGE\n").expect("undeclared");
        assert!(
            late.contains("`$DTK_IMAGE`") && late.contains("not declared"),
            "{late}"
        );
        let empty = first("ARG BASE\nFROM $BASE\n").expect("no value");
        assert_eq!(
            first("ARG BASE_IMAGE\nFROM $BASE_IMAGE\n"),
            None,
            "a build arg"
        );
        assert!(
            empty.contains("`$BASE`") && empty.contains("no value"),
            "{empty}"
        );
        // A stage's own ARG is not in scope for the next FROM.
        let stage = first("FROM scratch\nARG B=x\nFROM $B\n").expect("stage scope");
        assert!(stage.contains("not declared"), "{stage}");
        // A declared arg without a default is fine when the build passes it.
        assert_eq!(
            first("ARG VERSION\nARG KERNEL_VERSION\nFROM a/b:$VERSION-$KERNEL_VERSION\n"),
            None
        );
    }

    #[test]
    fn the_repository_s_own_containerfiles_pass() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        for f in [
            "examples/acme-net/Containerfile",
            "examples/hello-kmod/Containerfile",
            "tests/matrices/good/hello/Containerfile",
            "tests/matrices/good/net/Containerfile",
            "tests/matrices/kmm/gpu/Containerfile",
            "tests/matrices/kmm/nic/Containerfile",
        ] {
            let text = std::fs::read_to_string(root.join(f)).expect("a Containerfile");
            assert_eq!(first(&text), None, "{f}");
        }
    }

    #[test]
    fn variables_are_found_with_and_without_braces() {
        assert_eq!(variables("${A}/x:$B-${C:-d}$"), ["A", "B"]);
    }
}
