//! Every bad matrix under `tests/matrices/bad/` fails to load with diagnostics that point at
//! the offending line and key; the rendered text is snapshotted as users read it.

use std::path::Path;

use driver_matrix::matrix;
use miette::{GraphicalReportHandler, GraphicalTheme};

fn render(diag: &dyn miette::Diagnostic) -> String {
    let mut out = String::new();
    GraphicalReportHandler::new_themed(GraphicalTheme::unicode_nocolor())
        // Wide enough that no line wraps: a wrap would depend on where the checkout lives.
        .with_width(10_000)
        .with_links(false)
        .render_report(&mut out, diag)
        .expect("rendering into a String cannot fail");
    out
}

#[test]
fn bad_matrices_are_reported_with_their_place() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/matrices");
    let root_text = root.canonicalize().unwrap().display().to_string();
    let mut seen = 0;
    insta::glob!("../matrices/bad", "*.toml", |path| {
        seen += 1;
        // Named relative to the repository, as a user names it with `-m`, so that the report
        // does not depend on where the checkout lives.
        let name = Path::new("tests/matrices/bad").join(path.file_name().unwrap());
        let text = std::fs::read_to_string(path).unwrap();
        let root = path.parent().unwrap().canonicalize().unwrap();
        let err = match matrix::parse(&name, &root, text) {
            Ok(_) => panic!("{} loaded without error", path.display()),
            Err(e) => e,
        };
        let text = render(&err);
        // Each report names the file and a line:column inside it.
        let name = path.file_name().unwrap().to_string_lossy();
        assert!(
            text.contains(&format!("[{name}:")),
            "no location in:\n{text}"
        );
        insta::with_settings!({ filters => vec![(root_text.as_str(), "[MATRICES]")] }, {
            insta::assert_snapshot!(text);
        });
    });
    assert!(seen >= 25, "only {seen} bad matrices");
}

#[test]
fn several_problems_are_reported_together() {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/matrices/bad/35-several-problems.toml");
    let Err(matrix::LoadError::Invalid(err)) = matrix::load(&path) else {
        panic!("expected validation problems");
    };
    assert!(err.problems.len() >= 8, "{:#?}", err.problems);
    // In file order, so the report reads top to bottom.
    let offsets: Vec<usize> = err.problems.iter().map(|p| p.offset()).collect();
    let mut sorted = offsets.clone();
    sorted.sort();
    assert_eq!(offsets, sorted);
}

/// A Containerfile buildah would refuse fails `plan` and `build` at once (exit 2, the file and
/// its line), before any release is resolved or DTK pulled, not once per kernel.
#[test]
fn a_containerfile_that_cannot_build_is_refused_before_anything_is_pulled() {
    use crate::support::in_dir;
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("hello")).unwrap();
    std::fs::write(
        dir.path().join("matrix.toml"),
        "[openshift]\nreleases = [\"4.14.12\"]\npayload-repo = \"127.0.0.1:9/ocp/release\"\n\n\
         [[driver]]\nname = \"hello\"\ncontext = \"hello\"\nimage = \"127.0.0.1:9/acme/hello\"\n",
    )
    .unwrap();
    let cases = [
        (
            "ARG DTK_IMAGE\nFORM ${DTK_IMAGE}\nRUN make\n",
            "FORM",
            "hello/Containerfile:2:",
        ),
        (
            "# no stage\nARG DTK_IMAGE\n",
            "FROM",
            "hello/Containerfile:",
        ),
        (
            "FROM ${DTK_IMAGE}\nARG DTK_IMAGE\nRUN make\n",
            "not declared before the first `FROM`",
            "hello/Containerfile:1:",
        ),
    ];
    for (containerfile, expect, place) in cases {
        std::fs::write(dir.path().join("hello/Containerfile"), containerfile).unwrap();
        for args in [&["plan"][..], &["build", "--dry-run"]] {
            let err = in_dir(dir.path()).args(args).expect_exit(2).stderr();
            assert!(
                crate::support::says(&err, expect) && err.contains(place),
                "{args:?} {containerfile:?}: {err}"
            );
            // Refused before resolving: the unreachable payload repository was never asked.
            assert!(!err.contains("127.0.0.1:9"), "{err}");
        }
    }
    std::fs::write(
        dir.path().join("hello/Containerfile"),
        "ARG DTK_IMAGE\nFORM ${DTK_IMAGE}\nRUN make\n",
    )
    .unwrap();
    let err = in_dir(dir.path()).args(["plan"]).expect_exit(2).stderr();
    insta::assert_snapshot!("containerfile_typo", err);
}
