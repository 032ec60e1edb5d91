//! Renderings of a lock diff: text for terminals, markdown to paste as a pull-request comment,
//! JSON for scripts (a stable shape: keys are only ever added).

use super::diff::{
    DriverChanges, FileChange, ImageChange, ImageChangeKind, InputChange, LockDiff,
    ReleaseChangeKind, Summary,
};
use crate::render::{Table, append, appendln};
use crate::text::{escape, escape_line};

fn short(image: &str) -> String {
    // `repo@sha256:<64>` → `repo@sha256:<12>`, readable in a table; JSON keeps full digests.
    match image.split_once("@sha256:") {
        Some((repo, hex)) => format!("{repo}@sha256:{}", &hex[..hex.len().min(12)]),
        None => image.to_string(),
    }
}

/// The digest of `repo@sha256:<64>`, shortened to 12 hex digits.
fn digest_of(image: &str) -> String {
    match image.split_once("@sha256:") {
        Some((_, hex)) => format!("sha256:{}", &hex[..hex.len().min(12)]),
        None => image.to_string(),
    }
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// One line summing up the diff.
pub fn summary_line(s: &Summary) -> String {
    let mut parts = Vec::new();
    let mut add = |n: usize, one: &str, many: &str| {
        if n > 0 {
            parts.push(plural(n, one, many));
        }
    };
    add(s.kernels_added, "kernel added", "kernels added");
    add(s.kernels_removed, "kernel removed", "kernels removed");
    add(s.images_rebuilt, "image rebuilt", "images rebuilt");
    add(
        s.releases_covered,
        "release newly covered",
        "releases newly covered",
    );
    add(s.releases_dropped, "release dropped", "releases dropped");
    add(
        s.releases_resolved,
        "release entry changed",
        "release entries changed",
    );
    if parts.is_empty() {
        "no changes".to_string()
    } else {
        parts.join(", ")
    }
}

fn releases_cell(c: &ImageChange) -> String {
    let mut parts: Vec<String> = c.releases_added.iter().map(|v| format!("+{v}")).collect();
    parts.extend(c.releases_removed.iter().map(|v| format!("-{v}")));
    parts.join(" ")
}

fn image_cell(c: &ImageChange) -> String {
    match (c.kind, &c.old_image, &c.new_image) {
        (ImageChangeKind::Rebuilt, Some(o), Some(n)) => {
            format!("{} → {}", digest_of(o), digest_of(n))
        }
        (_, _, Some(n)) => short(n),
        (_, Some(o), None) => short(o),
        _ => String::new(),
    }
}

/// Why an image was rebuilt, with what changed: the DTK's digests, the files and build args.
fn why(c: &ImageChange, code: fn(&str) -> String) -> String {
    let Some(reason) = c.reason else {
        return String::new();
    };
    let mut parts = Vec::new();
    if let Some(d) = &c.dtk {
        parts.push(format!(
            "{} → {}",
            code(&digest_of(&d.old)),
            code(&digest_of(&d.new))
        ));
    }
    for i in &c.inputs {
        parts.push(match i {
            InputChange::File { path, change } => {
                let sign = match change {
                    FileChange::Added => "+",
                    FileChange::Removed => "-",
                    FileChange::Modified => "~",
                };
                format!("{sign}{}", code(path))
            }
            InputChange::BuildArg { name, old, new } => {
                let show = |v: &Option<String>| v.as_deref().map_or("(unset)".to_string(), code);
                format!("{} {} → {}", code(name), show(old), show(new))
            }
        });
    }
    if parts.is_empty() {
        reason.describe().to_string()
    } else {
        format!("{}: {}", reason.describe(), parts.join(", "))
    }
}

fn plain(s: &str) -> String {
    s.to_string()
}

fn kind_word(k: ImageChangeKind) -> &'static str {
    match k {
        ImageChangeKind::Added => "added",
        ImageChangeKind::Removed => "removed",
        ImageChangeKind::Rebuilt => "rebuilt",
        ImageChangeKind::Releases => "releases",
    }
}

/// For terminals. A lock read from a git revision is anyone's text: control characters in it
/// are escaped.
pub fn render_text(d: &LockDiff) -> String {
    escape(&text(d)).into_owned()
}

fn text(d: &LockDiff) -> String {
    let mut out = String::new();
    if d.is_empty() {
        out.push_str("no changes\n");
        return out;
    }
    appendln!(out, "{}", summary_line(&d.summary()));
    for drv in &d.drivers {
        appendln!(out, "\n{}", drv.driver);
        for c in &drv.images {
            let sign = match c.kind {
                ImageChangeKind::Added => '+',
                ImageChangeKind::Removed => '-',
                ImageChangeKind::Rebuilt | ImageChangeKind::Releases => '~',
            };
            let mut line = format!("  {sign} {} ({})", c.kernel, c.arch);
            if c.kind != ImageChangeKind::Releases {
                append!(line, " {}", kind_word(c.kind));
            }
            if c.reason.is_some() {
                append!(line, ": {}", escape_line(&why(c, plain)));
            }
            let rel = releases_cell(c);
            if !rel.is_empty() {
                append!(line, "  releases {rel}");
            }
            append!(line, "  {}", image_cell(c));
            appendln!(out, "{}", line.trim_end());
        }
        for r in &drv.releases_covered {
            appendln!(out, "  newly covers {} with {}", r.label(), short(&r.image));
        }
        for r in &drv.releases_dropped {
            appendln!(out, "  no longer covers {}", r.label());
        }
    }
    if !d.releases.is_empty() {
        out.push_str("\nreleases\n");
        for r in &d.releases {
            let (sign, what) = match r.kind {
                ReleaseChangeKind::Added => ('+', "added".to_string()),
                ReleaseChangeKind::Removed => ('-', "removed".to_string()),
                ReleaseChangeKind::Changed => ('~', format!("changed: {}", r.fields.join(", "))),
            };
            let kernel = r
                .kernel
                .as_ref()
                .map(|k| format!("  kernel {k}"))
                .unwrap_or_default();
            appendln!(out, "  {sign} {} ({}) {what}{kernel}", r.version, r.place());
        }
    }
    out
}

/// For a pull-request comment: a summary line, then a table per driver; control characters
/// escaped as in the text. A lock read from `git:REV` is a contributor's text: every value from
/// it is inline code that it cannot close (see [`code`]), so it can start no heading, link,
/// mention, issue reference or HTML, and cannot break a table.
pub fn render_markdown(d: &LockDiff) -> String {
    escape(&markdown(d)).into_owned()
}

/// `s` as inline code: fenced by more backticks than any run inside it (padded with a space
/// where it starts or ends with one or a space), line breaks shown as `\n` and `\r`. Empty
/// for an empty value.
pub fn code(s: &str) -> String {
    fenced(&s.replace('\r', "\\r").replace('\n', "\\n"))
}

/// [`code`] for a table cell: `|` escaped too, which GFM reads as a `|` even inside code.
pub fn cell(s: &str) -> String {
    code(&s.replace('|', "\\|"))
}

fn fenced(s: &str) -> String {
    if s.is_empty() {
        return String::new();
    }
    let longest = s.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    let fence = "`".repeat(longest + 1);
    let pad = if s.starts_with('`') || s.ends_with('`') || s.starts_with(' ') || s.ends_with(' ') {
        " "
    } else {
        ""
    };
    format!("{fence}{pad}{s}{pad}{fence}")
}

/// Each word of `list` as inline code, separated by spaces.
fn codes<I: IntoIterator<Item = String>>(list: I) -> String {
    list.into_iter()
        .map(|s| cell(&s))
        .collect::<Vec<_>>()
        .join(" ")
}

fn markdown(d: &LockDiff) -> String {
    let mut out = String::new();
    appendln!(out, "**driver-matrix**: {}", summary_line(&d.summary()));
    for drv in &d.drivers {
        markdown_driver(&mut out, drv);
    }
    if !d.releases.is_empty() {
        markdown_releases(&mut out, d);
    }
    out
}

/// A driver's section: a table of its images, then the releases it newly covers or drops.
fn markdown_driver(out: &mut String, drv: &DriverChanges) {
    appendln!(out, "\n### {}\n", code(&drv.driver));
    if !drv.images.is_empty() {
        let mut table = Table::new(&["change", "kernel", "arch", "releases", "image", "why"]);
        for c in &drv.images {
            let releases = c
                .releases_added
                .iter()
                .map(|v| format!("+{v}"))
                .chain(c.releases_removed.iter().map(|v| format!("-{v}")));
            table.row([
                kind_word(c.kind).to_string(),
                cell(&c.kernel.to_string()),
                cell(&c.arch.to_string()),
                codes(releases),
                cell(&image_cell(c)),
                why(c, cell),
            ]);
        }
        out.push_str(&table.markdown());
    }
    for (label, list) in [
        ("Newly covered", &drv.releases_covered),
        ("No longer covered", &drv.releases_dropped),
    ] {
        if !list.is_empty() {
            let list: Vec<String> = list.iter().map(|r| code(&r.label())).collect();
            appendln!(out, "\n{label}: {}", list.join(", "));
        }
    }
}

/// The `[[release]]` changes, folded away under a summary line.
fn markdown_releases(out: &mut String, d: &LockDiff) {
    appendln!(
        out,
        "\n<details><summary>Release resolutions ({})</summary>\n",
        d.releases.len()
    );
    let mut table = Table::new(&["release", "arch", "change", "kernel"]);
    for r in &d.releases {
        let what = match r.kind {
            ReleaseChangeKind::Added => "added".to_string(),
            ReleaseChangeKind::Removed => "removed".to_string(),
            ReleaseChangeKind::Changed => format!("changed: {}", r.fields.join(", ")),
        };
        let kernel = r
            .kernel
            .as_ref()
            .map(|k| cell(&k.to_string()))
            .unwrap_or_default();
        table.row([cell(&r.version.to_string()), cell(&r.place()), what, kernel]);
    }
    out.push_str(&table.markdown());
    out.push_str("\n</details>\n");
}

/// For scripts.
pub fn render_json(d: &LockDiff) -> String {
    #[derive(serde::Serialize)]
    struct Doc<'a> {
        version: u32,
        changed: bool,
        summary: Summary,
        #[serde(flatten)]
        diff: &'a LockDiff,
    }
    let mut s = serde_json::to_string_pretty(&Doc {
        version: 1,
        changed: !d.is_empty(),
        summary: d.summary(),
        diff: d,
    })
    .expect("a diff is plain JSON");
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lock::diff::{DriverChanges, ReleaseServed};

    /// A line with its inline code spans taken out (as CommonMark reads them: a run of N
    /// backticks closed by the next run of exactly N).
    fn outside_code(line: &str) -> String {
        let b = line.as_bytes();
        let (mut out, mut i) = (String::new(), 0);
        while i < b.len() {
            if b[i] != b'`' {
                out.push(b[i] as char);
                i += 1;
                continue;
            }
            let n = b[i..].iter().take_while(|&&c| c == b'`').count();
            let mut j = i + n;
            let close = loop {
                match b[j.min(b.len())..].iter().position(|&c| c == b'`') {
                    None => break None,
                    Some(p) => {
                        let at = j + p;
                        let m = b[at..].iter().take_while(|&&c| c == b'`').count();
                        if m == n {
                            break Some(at + m);
                        }
                        j = at + m;
                    }
                }
            };
            match close {
                Some(end) => i = end,
                None => panic!("an unclosed code span in {line:?}"),
            }
        }
        out
    }

    /// The `|` of a table row that split cells (not escaped by a backslash).
    fn cell_pipes(line: &str) -> usize {
        let b = line.as_bytes();
        (0..b.len())
            .filter(|&i| b[i] == b'|' && (i == 0 || b[i - 1] != b'\\'))
            .count()
    }

    #[test]
    fn a_contributor_cannot_inject_markdown_through_lock_strings() {
        let evil = "rhel-10\n---\n# Heading [link](https://evil.example) @someone Fixes #1 <img src=x onerror=alert(1)> | a ``` b `";
        let version: crate::domain::Version = "4.17.0".parse().expect("a version");
        let d = LockDiff {
            releases: vec![crate::lock::diff::ReleaseChange {
                version: version.clone(),
                arch: crate::domain::Arch::X86_64,
                stream: Some(evil.into()),
                kind: ReleaseChangeKind::Added,
                fields: Vec::new(),
                kernel: Some("5.14.0-570.1.1.el10_0.x86_64".parse().expect("a kernel")),
            }],
            drivers: vec![DriverChanges {
                driver: format!("d {evil}"),
                images: Vec::new(),
                releases_covered: vec![ReleaseServed {
                    version,
                    arch: crate::domain::Arch::X86_64,
                    stream: Some(evil.into()),
                    image: "quay.io/x/y@sha256:abc".into(),
                }],
                releases_dropped: Vec::new(),
            }],
        };
        let md = render_markdown(&d);
        let lines: Vec<&str> = md.lines().collect();
        // Nothing the values hold started a line of its own.
        assert_eq!(lines.len(), 14, "{md}");
        for line in &lines {
            let rest = outside_code(line);
            for bad in ["@", "<img", "[", "Fixes", "---\n", "\n#"] {
                assert!(!rest.contains(bad), "{bad:?} outside code in {line:?}");
            }
            assert!(!rest.starts_with("# "), "{line}");
        }
        let row = lines
            .iter()
            .find(|l| l.starts_with("| ") && l.contains("added"))
            .expect("the release row");
        assert_eq!(cell_pipes(row), 5, "four cells: {row}");
        assert_eq!(code("a`b"), "``a`b``");
        assert_eq!(code("`x"), "`` `x ``");
        assert_eq!(cell("a|b"), "`a\\|b`");
        assert_eq!(code("a|b"), "`a|b`");
    }

    #[test]
    fn control_characters_are_escaped_in_text_and_markdown() {
        let d = LockDiff {
            releases: Vec::new(),
            drivers: vec![DriverChanges {
                driver: "evil\x1b]0;title\x07".into(),
                images: Vec::new(),
                releases_covered: vec![ReleaseServed {
                    version: "4.16.3".parse().expect("a version"),
                    arch: crate::domain::Arch::X86_64,
                    stream: None,
                    image: "quay.io/x/y\x1b[2J@sha256:abc".into(),
                }],
                releases_dropped: Vec::new(),
            }],
        };
        for out in [render_text(&d), render_markdown(&d)] {
            assert!(!out.contains(['\x1b', '\x07']), "{out}");
            assert!(out.contains(r"evil\x1b]0;title\x07"), "{out}");
        }
        assert!(render_text(&d).contains(r"y\x1b[2J@sha256:abc"));
        assert!(render_json(&d).contains(r"\u001b"), "JSON stays JSON");
    }
}
