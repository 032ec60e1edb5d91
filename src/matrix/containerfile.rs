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
    let passed = passed(RESERVED_BUILD_ARGS.iter().copied(), &driver.build_args);
    match problem(&text, &passed) {
        Some(found) => Err(located(driver, path, root, text, found)),
        None => Ok(()),
    }
}

/// The build args KMM's in-cluster build passes (KMM `internal/buildsign/resource/common.go`,
/// `buildSpec`), besides the mapping's own: `DTK_AUTO` (the DTK image of the node's kernel,
/// only when the Dockerfile names it), `KERNEL_VERSION` and `KERNEL_FULL_VERSION` (the node's
/// kernel), `MOD_NAME` and `MOD_NAMESPACE` (the Module's).
pub const KMM_BUILD_ARGS: [&str; 5] = [
    "DTK_AUTO",
    "KERNEL_VERSION",
    "KERNEL_FULL_VERSION",
    "MOD_NAME",
    "MOD_NAMESPACE",
];

/// The driver's Containerfile as KMM's in-cluster build (`fallback = "build"`) takes it from a
/// ConfigMap, checked to build there: KMM runs an OpenShift Build of type Dockerfile, which has
/// the Dockerfile and no context, and gives values only to [`KMM_BUILD_ARGS`] and the driver's
/// `build-args`. So a `COPY` or `ADD` from the context, or a `FROM` naming `DTK_IMAGE`
/// without a default, is an error here, with its file and line.
pub fn for_kmm_build(driver: &Driver, root: &Path) -> Result<String, Box<ContainerfileError>> {
    let path = driver.context.join(&driver.containerfile);
    let text = std::fs::read_to_string(&path).map_err(|e| {
        located(
            driver,
            &path,
            root,
            String::new(),
            (
                0,
                format!("it cannot be read: {e}"),
                "check the driver's `containerfile`".into(),
            ),
        )
    })?;
    let passed = passed(KMM_BUILD_ARGS.iter().copied(), &driver.build_args);
    match kmm_problem(&text, &passed) {
        Some(found) => Err(located(driver, &path, root, text, found)),
        None => Ok(text),
    }
}

/// The first problem of `text` for KMM's in-cluster build, where `passed` have values: what
/// [`problem`] finds (a `FROM` without a value said to be KMM's), then a copy from the context.
fn kmm_problem(text: &str, passed: &BTreeSet<&str>) -> Option<Found> {
    let file = match parse_dockerfile::parse(text) {
        Ok(f) => f,
        Err(e) => return Some(parse_problem(text, &e)),
    };
    let under_kmm = |(at, message, _): Found| {
        let help = "KMM's in-cluster build gives values to `DTK_AUTO`, `KERNEL_VERSION`, `KERNEL_FULL_VERSION`, `MOD_NAME`, `MOD_NAMESPACE` and the driver's `build-args` only: chain the DTK as `driver-matrix init` writes it (`ARG DTK_AUTO`, then `ARG DTK_IMAGE=${DTK_AUTO}`)";
        (
            at,
            format!("{message} in KMM's in-cluster build"),
            help.to_string(),
        )
    };
    from_problem(&file, text, passed)
        .map(under_kmm)
        .or_else(|| from_context(&file))
}

/// A problem found in a Containerfile: its byte offset, what is wrong, and the fix.
type Found = (usize, String, String);

/// The first `COPY` or `ADD` that reads the build context: neither `--from` another stage or
/// image, nor a URL, nor a here-document.
fn from_context(file: &parse_dockerfile::Dockerfile<'_>) -> Option<Found> {
    let help = "KMM's in-cluster build has no context: fetch the sources in the Containerfile (`RUN git clone ...`, `ADD https://...`, or `COPY --from=<a sources image>`), or leave `fallback` out";
    file.instructions.iter().find_map(|i| {
        let (what, options, src) = match i {
            Instruction::Copy(c) => ("COPY", &c.options, &c.src),
            Instruction::Add(a) => ("ADD", &a.options, &a.src),
            _ => return None,
        };
        if options.iter().any(|f| f.name.value == "from") {
            return None;
        }
        src.iter().find_map(|s| match s {
            parse_dockerfile::Source::Path(p)
                if !(what == "ADD" && is_remote(&p.value)) =>
            {
                Some((
                    p.span.start,
                    format!("`{what} {}` copies from the build context, which KMM's in-cluster build does not have", p.value),
                    help.to_string(),
                ))
            }
            _ => None,
        })
    })
}

/// Whether an `ADD` source is fetched from the network rather than the context.
fn is_remote(src: &str) -> bool {
    src.contains("://") || src.starts_with("git@")
}

/// The names that get a value in a build: `given` and the driver's `build-args`.
fn passed<'a>(
    given: impl Iterator<Item = &'a str>,
    build_args: &'a BTreeMap<String, String>,
) -> BTreeSet<&'a str> {
    given.chain(build_args.keys().map(String::as_str)).collect()
}

/// A problem found at byte `at` of `text`, as the error that shows it in the file.
fn located(
    driver: &Driver,
    path: &Path,
    root: &Path,
    text: String,
    (at, message, help): Found,
) -> Box<ContainerfileError> {
    let name = path
        .strip_prefix(root)
        .map_or_else(|_| path.display().to_string(), |p| p.display().to_string());
    let len = text[at.min(text.len())..]
        .find(['\n', ' '])
        .unwrap_or(text.len().saturating_sub(at))
        .max(1);
    Box::new(ContainerfileError {
        driver: driver.name.clone(),
        path: path.to_path_buf(),
        name: name.clone(),
        message,
        help,
        span: (at.min(text.len()), len.min(text.len().saturating_sub(at))).into(),
        text: Arc::new(NamedSource::new(name, text)),
    })
}

/// The first problem of `text` for a build where `passed` have values.
fn problem(text: &str, passed: &BTreeSet<&str>) -> Option<Found> {
    match parse_dockerfile::parse(text) {
        Ok(file) => from_problem(&file, text, passed),
        Err(e) => Some(parse_problem(text, &e)),
    }
}

/// What buildah would say of a Containerfile that does not parse.
fn parse_problem(text: &str, e: &parse_dockerfile::Error) -> Found {
    let help = if e.to_string().contains("unknown instruction") {
        "instructions are `FROM`, `ARG`, `RUN`, `COPY`, `ADD`, `ENV`, `LABEL`, ...: check the spelling"
    } else {
        "a Containerfile needs at least one `FROM`, and only `ARG` may come before the first"
    };
    (
        offset(text, e.line(), e.column()),
        format!("{e:#} (line {})", e.line()),
        help.into(),
    )
}

/// The first `FROM` of `file` (parsed from `text`) that names a build arg without a value.
fn from_problem(
    file: &parse_dockerfile::Dockerfile<'_>,
    text: &str,
    passed: &BTreeSet<&str>,
) -> Option<Found> {
    let globals: BTreeMap<String, bool> = file.global_args().flat_map(declared).collect();
    file.instructions.iter().find_map(|i| match i {
        Instruction::From(from) => {
            undeclared(&from.image.value, &globals, passed).map(|(name, declared)| {
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
    passed: &BTreeSet<&str>,
) -> Option<(String, bool)> {
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
        let passed = passed(RESERVED_BUILD_ARGS.iter().copied(), &args);
        problem(text, &passed).map(|(at, m, _)| format!("{at}: {m}"))
    }

    /// The first problem of `text` for KMM's in-cluster build.
    fn for_kmm(text: &str) -> Option<String> {
        let args = BTreeMap::from([("VERSION".to_string(), "1.0".to_string())]);
        let passed = passed(KMM_BUILD_ARGS.iter().copied(), &args);
        kmm_problem(text, &passed).map(|(at, m, _)| format!("{at}: {m}"))
    }

    #[test]
    fn what_kmm_s_in_cluster_build_cannot_build() {
        let fetched = "ARG DTK_AUTO\nFROM ${DTK_AUTO} AS builder\nARG VERSION\nADD https://example.com/d-${VERSION}.tar.gz /src/\nRUN git clone https://example.com/d /d\nFROM registry.example/base:9\nCOPY --from=builder /src /opt\nCOPY --from=registry.example/d-src:1 /src /src\n";
        assert_eq!(for_kmm(fetched), None);
        let context = for_kmm("ARG DTK_AUTO\nFROM ${DTK_AUTO}\nCOPY . /src\n").expect("context");
        assert!(
            context.starts_with("35: ")
                && context.contains("`COPY .`")
                && context.contains("context"),
            "{context}"
        );
        let local_add = for_kmm("FROM a/b\nADD d.tar.gz /src/\n").expect("a local ADD");
        assert!(local_add.contains("`ADD d.tar.gz`"), "{local_add}");
        // driver-matrix passes DTK_IMAGE, KMM does not.
        let dtk = for_kmm("ARG DTK_IMAGE\nFROM ${DTK_IMAGE}\n").expect("DTK_IMAGE");
        assert!(
            dtk.contains("`$DTK_IMAGE`") && dtk.contains("no value"),
            "{dtk}"
        );
        assert_eq!(
            for_kmm("ARG DTK_IMAGE=${DTK_AUTO}\nFROM ${DTK_IMAGE:-x}\n"),
            None
        );
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
