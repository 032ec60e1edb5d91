//! What a build context holds: one list of ignore patterns per driver, read by the inputs hash
//! and handed to buildah (`--ignorefile`), so that the hash covers exactly what buildah is sent.
//!
//! The list is the context's ignore file (`.containerignore`, `.dockerignore`, or one named
//! after the containerfile, as buildah chooses: [`ignore_candidates`]),
//! each pattern cleaned and written back in a canonical form, followed by driver-matrix's own
//! files that lie inside the context: the matrix file, the lockfile, its writer's lock and
//! temporary files, the cache directory, and `.git`. Those change with every run; were they
//! inputs, no image would ever stay fresh. They come last, so no `!` line of the user's can
//! bring them back.

use std::io::Read;
use std::path::{Component, Path, PathBuf};

use globset::{GlobBuilder, GlobMatcher};

use super::{InputsError, open_regular};

/// The ignore files buildah reads from a context when no `<containerfile>.dockerignore` or
/// `<containerfile>.containerignore` is there, in its order of preference.
pub const IGNORE_FILES: [&str; 2] = [".containerignore", ".dockerignore"];

/// The files buildah reads the context's ignore patterns from, in its order of preference
/// (measured with buildah 1.28): `<containerfile>.dockerignore`,
/// `<containerfile>.containerignore`, then [`IGNORE_FILES`]; the first that exists is the only
/// one read.
pub fn ignore_candidates(context: &Path, containerfile: &str) -> Vec<PathBuf> {
    let cf = context.join(containerfile);
    let beside = |suffix: &str| {
        let mut name = cf.clone().into_os_string();
        name.push(suffix);
        PathBuf::from(name)
    };
    let mut out = vec![beside(".dockerignore"), beside(".containerignore")];
    out.extend(IGNORE_FILES.iter().map(|n| context.join(n)));
    out
}

/// The ignore file buildah reads for this context, or `.containerignore` when it has none
/// (the one to create): where a path must be listed to leave the context.
pub fn ignore_file_in_effect(context: &Path, containerfile: &str) -> PathBuf {
    ignore_candidates(context, containerfile)
        .into_iter()
        .find(|p| std::fs::symlink_metadata(p).is_ok())
        .unwrap_or_else(|| context.join(IGNORE_FILES[0]))
}

/// One line of an ignore file.
struct Rule {
    matcher: GlobMatcher,
    exclude: bool,
}

/// The patterns of `.containerignore` / `.dockerignore`, evaluated as buildah does: each
/// pattern is cleaned and matched against the path relative to the context, a pattern that
/// matches a directory matches everything below it, `!` re-includes, and the last matching
/// pattern wins.
pub struct IgnoreRules {
    rules: Vec<Rule>,
    /// The canonical lines, one per rule, in order: what buildah is given.
    lines: Vec<String>,
}

impl IgnoreRules {
    /// Reads the first of [`ignore_candidates`] that exists; none means no rules.
    pub fn load(context: &Path, containerfile: &str) -> Result<Self, InputsError> {
        for path in ignore_candidates(context, containerfile) {
            let mut file = match open_regular(&path) {
                Ok(f) => f,
                Err(InputsError::Io { source, .. })
                    if source.kind() == std::io::ErrorKind::NotFound =>
                {
                    continue;
                }
                Err(e) => return Err(e),
            };
            let mut text = String::new();
            file.read_to_string(&mut text)
                .map_err(|source| InputsError::Io {
                    path: path.clone(),
                    source,
                })?;
            return Self::parse(&text, &path);
        }
        Ok(IgnoreRules {
            rules: Vec::new(),
            lines: Vec::new(),
        })
    }

    /// Parses an ignore file as buildah 1.28 does (measured): a `#` in the first column starts
    /// a comment (an indented `#` is a pattern), each line is trimmed, a leading `!` makes an
    /// exception of the rest as it stands (`! b` is the pattern ` b`), and every pattern is
    /// cleaned (`/` prefix, `.` and `..` components) as `filepath.Clean` does.
    pub fn parse(text: &str, file: &Path) -> Result<Self, InputsError> {
        let mut rules = IgnoreRules {
            rules: Vec::new(),
            lines: Vec::new(),
        };
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        for line in text.lines() {
            if line.starts_with('#') {
                continue;
            }
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            let (exclude, pattern) = match line.strip_prefix('!') {
                Some(p) => (false, p),
                None => (true, line),
            };
            let cleaned = clean(pattern);
            if cleaned.is_empty() {
                continue;
            }
            rules.push(&cleaned, exclude, file, pattern)?;
        }
        Ok(rules)
    }

    fn push(
        &mut self,
        cleaned: &str,
        exclude: bool,
        file: &Path,
        pattern: &str,
    ) -> Result<(), InputsError> {
        let glob = GlobBuilder::new(&go_glob(cleaned))
            .literal_separator(true)
            .backslash_escape(true)
            .build()
            .map_err(|e| InputsError::Pattern {
                file: file.to_path_buf(),
                pattern: pattern.to_string(),
                message: e.kind().to_string(),
            })?;
        self.rules.push(Rule {
            matcher: glob.compile_matcher(),
            exclude,
        });
        // A cleaned pattern never starts with `/` or whitespace; one that starts with `#`
        // would read as a comment, so its `#` is escaped (both sides read `\#` as `#`).
        let escaped = match cleaned.strip_prefix('#') {
            Some(rest) => format!("\\#{rest}"),
            None => cleaned.to_string(),
        };
        self.lines.push(if exclude {
            escaped
        } else {
            format!("!{escaped}")
        });
        Ok(())
    }

    /// Whether `rel` (relative, `/`-separated) is left out of the context.
    pub fn is_ignored(&self, rel: &str) -> bool {
        let mut ignored = false;
        for rule in &self.rules {
            // The path itself or any of its parents.
            let hit = rule.matcher.is_match(rel)
                || rel
                    .match_indices('/')
                    .any(|(i, _)| rule.matcher.is_match(&rel[..i]));
            if hit {
                ignored = rule.exclude;
            }
        }
        ignored
    }
}

/// A Go `filepath.Match` pattern, which buildah uses, as a glob: `{` and `}` are literal (Go
/// has no `{a,b}` alternation), and so is a `!` that opens a class (`[!a]` is the set of `!`
/// and `a` in Go; only `^` negates), which moves inside the class.
fn go_glob(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len() + 2);
    let mut chars = pattern.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                out.push(c);
                if let Some(next) = chars.next() {
                    out.push(next);
                }
            }
            '{' | '}' => {
                out.push('\\');
                out.push(c);
            }
            '[' if chars.peek() == Some(&'!') => {
                chars.next();
                let mut body = String::new();
                let mut closed = false;
                for d in chars.by_ref() {
                    if d == ']' {
                        closed = true;
                        break;
                    }
                    body.push(d);
                }
                if !closed {
                    // Not a class: the pattern is refused as it stands.
                    out.push_str("[!");
                    out.push_str(&body);
                } else if body.is_empty() {
                    out.push_str("\\!");
                } else {
                    // Not first (no negation) and not before a final `-` (no range).
                    let at = body.strip_suffix('-').map_or(body.len(), str::len);
                    body.insert(at, '!');
                    out.push('[');
                    out.push_str(&body);
                    out.push(']');
                }
            }
            c => out.push(c),
        }
    }
    out
}

/// `filepath.Clean` for patterns: drops a leading `/`, `.` components and resolves `..`.
fn clean(pattern: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in pattern.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    parts.join("/")
}

/// driver-matrix's own files, wherever they are; those inside a context are left out of it.
#[derive(Debug, Clone, Default)]
pub struct OwnFiles {
    pub matrix: Option<PathBuf>,
    pub lockfile: Option<PathBuf>,
    pub cache_dir: Option<PathBuf>,
}

impl OwnFiles {
    /// The patterns, relative to `context` (canonical), that leave these files out of it.
    fn patterns(&self, context: &Path) -> Vec<String> {
        let mut out = Vec::new();
        let mut add = |path: &Path, suffix: &str| {
            if let Some(rel) = inside(context, path) {
                out.push(format!("{}{suffix}", escape(&rel)));
            }
        };
        if let Some(m) = &self.matrix {
            add(m, "");
        }
        if let Some(lock) = &self.lockfile {
            add(lock, "");
            add(&crate::lock::writer::guard_path(lock), "");
            // The lock's temporary files: `.matrix.lock.<run>.XXXXXX` beside it.
            let temp = lock.with_file_name(crate::runs::lock_temp_base(lock));
            add(&temp, "*");
        }
        if let Some(c) = &self.cache_dir {
            add(c, "");
        }
        out.push("**/.git".to_string());
        out
    }
}

/// `path` relative to `context`, `/`-separated, when it lies inside it. The path need not
/// exist: its longest existing ancestor is resolved, so a lockfile not yet written is placed
/// where it will be.
fn inside(context: &Path, path: &Path) -> Option<String> {
    let absolute = resolve_existing(path)?;
    let rel = absolute.strip_prefix(context).ok()?;
    let parts: Vec<String> = rel
        .components()
        .map(|c| match c {
            Component::Normal(s) => Some(s.to_string_lossy().into_owned()),
            _ => None,
        })
        .collect::<Option<_>>()?;
    // A name with a line break cannot be written as a pattern; it is not a file this tool
    // names (it would be the user's own), so it stays in the context.
    (!parts.is_empty() && parts.iter().all(|p| !p.contains(['\n', '\r']))).then(|| parts.join("/"))
}

/// The canonical form of `path`'s longest existing ancestor, with the rest appended.
fn resolve_existing(path: &Path) -> Option<PathBuf> {
    let absolute = std::path::absolute(path).ok()?;
    let mut base = absolute.as_path();
    let mut rest = Vec::new();
    loop {
        if let Ok(c) = base.canonicalize() {
            let mut out = c;
            out.extend(rest.iter().rev());
            return Some(out);
        }
        rest.push(base.file_name()?.to_os_string());
        base = base.parent()?;
    }
}

/// A literal path as a pattern: glob characters escaped with `\`, as both sides read them.
fn escape(rel: &str) -> String {
    let mut out = String::with_capacity(rel.len());
    for c in rel.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\' | '{' | '}') {
            out.push('\\');
        }
        out.push(c);
    }
    match out.strip_prefix('!') {
        Some(rest) => format!("\\!{rest}"),
        None => out,
    }
}

/// The one list of a context: the user's patterns, then driver-matrix's own.
pub struct ContextFilter {
    rules: IgnoreRules,
}

impl ContextFilter {
    pub fn new(context: &Path, containerfile: &str, own: &OwnFiles) -> Result<Self, InputsError> {
        let mut rules = IgnoreRules::load(context, containerfile)?;
        for p in own.patterns(context) {
            rules.push(&p, true, Path::new("driver-matrix"), &p)?;
        }
        Ok(ContextFilter { rules })
    }

    pub fn is_ignored(&self, rel: &str) -> bool {
        self.rules.is_ignored(rel)
    }

    /// The ignore file buildah is given, from the same rules the hash applies.
    pub fn text(&self) -> String {
        let mut out = String::from(
            "# Written by driver-matrix: the context's ignore file, then driver-matrix's own files.\n",
        );
        for l in &self.rules.lines {
            out.push_str(l);
            out.push('\n');
        }
        out
    }
}

/// Writes `text` to `dir/<digest>.containerignore` (once: the name is its contents' digest);
/// returns the path.
pub fn write(dir: &Path, text: &str) -> Result<PathBuf, InputsError> {
    let name = format!(
        "{}.containerignore",
        &crate::domain::Digest::sha256(text.as_bytes()).hex()[..16]
    );
    let path = dir.join(name);
    let err = |source| InputsError::Io {
        path: path.clone(),
        source,
    };
    if std::fs::read_to_string(&path).is_ok_and(|t| t == text) {
        return Ok(path);
    }
    std::fs::create_dir_all(dir).map_err(err)?;
    let prefix = crate::runs::temp_prefix(crate::runs::CACHE_TEMP);
    let mut tmp = tempfile::Builder::new()
        .prefix(&prefix)
        .tempfile_in(dir)
        .map_err(err)?;
    std::io::Write::write_all(&mut tmp, text.as_bytes()).map_err(err)?;
    tmp.persist(&path).map_err(|e| err(e.error))?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(text: &str) -> IgnoreRules {
        IgnoreRules::parse(text, Path::new(".dockerignore")).unwrap()
    }

    #[test]
    fn ignore_rules_follow_buildah() {
        let r = rules("# comment\n*.o\nbuild/\n!build/keep.txt\n/docs/**/*.md\n**/tmp\n");
        assert!(!r.is_ignored("main.c"));
        // `*` does not cross `/`, like filepath.Match.
        assert!(r.is_ignored("x.o"));
        assert!(!r.is_ignored("sub/x.o"));
        assert!(r.is_ignored("build"));
        assert!(r.is_ignored("build/out/a.bin"));
        assert!(!r.is_ignored("build/keep.txt"));
        assert!(r.is_ignored("docs/a/b/c.md"));
        assert!(r.is_ignored("a/b/tmp/file"));
        let last_wins = rules("!a.txt\n*.txt\n");
        assert!(last_wins.is_ignored("a.txt"));
        // Measured with buildah 1.28: an indented `#` is a pattern, and `! b` re-includes
        // ` b`, not `b`.
        let quirks = rules("  #c\n*\n! b\n");
        assert!(quirks.is_ignored("#c"));
        assert!(quirks.is_ignored("b"));
        assert!(!quirks.is_ignored(" b"));
        // Measured: in Go (and so buildah) `[!a]` is the set of `!` and `a`; `^` negates.
        let bang = rules("[!a]\nx[!a-]\n");
        assert!(bang.is_ignored("!") && bang.is_ignored("a") && !bang.is_ignored("b"));
        assert!(bang.is_ignored("x-") && bang.is_ignored("x!") && !bang.is_ignored("xb"));
        let caret = rules("[^a]\n");
        assert!(caret.is_ignored("b") && !caret.is_ignored("a"));
        let braces = rules("{a,b}.c\n");
        assert!(braces.is_ignored("{a,b}.c"));
        assert!(!braces.is_ignored("a.c"));
    }

    #[test]
    fn the_canonical_lines_mean_what_the_file_meant() {
        let text = "\u{feff}# c\n  /src/../*.o  \n!keep.o\n! sp\n/#hash\n./a/./b/\n\n";
        let r = rules(text);
        assert_eq!(r.lines, ["*.o", "!keep.o", "! sp", "\\#hash", "a/b"]);
        let again = rules(&r.lines.join("\n"));
        assert_eq!(again.lines, r.lines, "a fixpoint");
        for p in ["x.o", "keep.o", "#hash", "a/b/c", "a/c", " sp", "sp"] {
            assert_eq!(r.is_ignored(p), again.is_ignored(p), "{p}");
        }
        assert!(again.is_ignored("#hash"));
    }

    #[test]
    fn own_files_inside_the_context_are_ignored_whatever_the_user_says() {
        let dir = tempfile::tempdir().unwrap();
        let ctx = dir.path().canonicalize().unwrap();
        std::fs::create_dir_all(ctx.join("sub")).unwrap();
        std::fs::write(ctx.join(".containerignore"), "!matrix.lock\n!.git\n").unwrap();
        let own = OwnFiles {
            matrix: Some(ctx.join("matrix.toml")),
            lockfile: Some(ctx.join("sub/m[1].lock")),
            cache_dir: Some(ctx.join("cache/not-yet")),
        };
        let f = ContextFilter::new(&ctx, "Containerfile", &own).unwrap();
        for p in [
            "matrix.toml",
            "sub/m[1].lock",
            "sub/m[1].lock.lock",
            "sub/.m[1].lock.4242-1.ABCDEF",
            "cache/not-yet/v1/x",
            ".git/HEAD",
            "vendor/.git",
        ] {
            assert!(f.is_ignored(p), "{p}");
        }
        for p in ["sub/m1.lock", "matrix.lock", "cache/other", "src/a.c"] {
            assert!(!f.is_ignored(p), "{p}");
        }
        let outside = OwnFiles {
            matrix: Some(dir.path().join("../elsewhere/matrix.toml")),
            ..OwnFiles::default()
        };
        assert_eq!(
            ContextFilter::new(&ctx, "Containerfile", &outside)
                .unwrap()
                .text(),
            "# Written by driver-matrix: the context's ignore file, then driver-matrix's own files.\n\
             !matrix.lock\n!.git\n**/.git\n"
        );
    }
}
