//! House rules no compiler keeps, checked against the library's own sources: parallel work
//! goes through [`crate::parallel`], dead code is removed or kept with an `expect` that
//! says why (an `expect` fails the build once the code is used, an `allow` never does), and
//! text is built and tables are laid out only through [`crate::render`].

use std::path::{Path, PathBuf};

/// Every `.rs` file under `src/` but this one, sorted, with its text.
fn sources() -> Vec<(PathBuf, String)> {
    fn walk(dir: &Path, out: &mut Vec<(PathBuf, String)>) {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        for path in entries {
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") && !path.ends_with("src/house.rs")
            {
                let text = std::fs::read_to_string(&path).unwrap();
                out.push((path, text));
            }
        }
    }
    let mut out = Vec::new();
    walk(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"), &mut out);
    assert!(out.len() > 50, "only {} sources found", out.len());
    out
}

/// The files of [`sources`] whose text holds any of `words`, but `except`.
fn holding(words: &[&str], except: &[&str]) -> Vec<String> {
    sources()
        .into_iter()
        .filter(|(path, text)| {
            !except.iter().any(|e| path.ends_with(e)) && words.iter().any(|w| text.contains(w))
        })
        .map(|(path, _)| path.display().to_string())
        .collect()
}

#[test]
fn nothing_but_parallel_reaches_for_rayon() {
    let found = holding(&["rayon", "par_iter", "par_bridge"], &["src/parallel.rs"]);
    assert!(
        found.is_empty(),
        "parallel work outside `parallel`: {found:?}"
    );
}

#[test]
fn no_dead_code_is_allowed_without_a_reason() {
    let found = holding(&["allow(dead_code"], &[]);
    assert!(
        found.is_empty(),
        "use `expect(dead_code, reason = …)`: {found:?}"
    );
}

#[test]
fn text_is_written_one_way_and_tables_by_one_helper() {
    let found = holding(
        &["push_str(&format!(", "writing to a String cannot fail"],
        &["src/render.rs"],
    );
    assert!(
        found.is_empty(),
        "build text with `render::append!` or `appendln!`: {found:?}"
    );
    // A width given at run time (`{cell:<w$}`) is a column padder of its own.
    let found = holding(&["$}"], &["src/render.rs"]);
    assert!(
        found.is_empty(),
        "lay tables out with `render::Table`: {found:?}"
    );
}
