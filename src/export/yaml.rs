//! A small block-style YAML writer for the manifests driver-matrix exports.
//!
//! Scalars are written as double-quoted strings, numbers and booleans (valid YAML that no parser
//! reads as anything else: `"on"`, `"4.10"` and `"0755"` stay strings), keys keep their
//! insertion order, and the output for the same value is always the same bytes. Every string
//! holds its line breaks and control characters as escapes, so whatever it carries (a lock's
//! or a registry's text) stays one scalar: it cannot end its line, start a document (`---`) or
//! an object, and strict parsers do not refuse it.
//!
//! Why not a serde YAML crate: `serde_norway` (like `serde_yaml`) quotes only what YAML 1.2
//! would misread, and writes `on`, `yes`, `y`, `off`, `no` and `12:30` bare. kubectl and `oc`
//! read manifests as YAML 1.1 (go-yaml), where those are booleans and a sexagesimal number, so
//! a node selector value `"yes"` would reach the API server as `true` and the Module would be
//! rejected. Neither crate writes comments, which carry each document's provenance here.

use serde_json::Value;

use crate::render::append;

/// Whether `c` is written as an escape in a scalar and a comment: every C0 control, DEL and C1
/// control (YAML's non-printables, which strict parsers refuse raw, and NEL, a line break to
/// YAML 1.1), the line and paragraph separators (line breaks to YAML 1.1 readers such as
/// go-yaml and PyYAML), the byte order mark and the noncharacters, and the bidirectional
/// controls that make a reviewer read text in another order than a parser does.
fn escaped(c: char) -> bool {
    matches!(
        c,
        '\0'..='\x1f'
            | '\x7f'..='\u{9f}'
            | '\u{2028}'
            | '\u{2029}'
            | '\u{feff}'
            | '\u{fffe}'
            | '\u{ffff}'
            | '\u{200e}'
            | '\u{200f}'
            | '\u{202a}'..='\u{202e}'
            | '\u{2066}'..='\u{2069}'
    )
}

/// `c` as a YAML escape (`\n`, `\x1b`, `\u2028`), the same in YAML 1.1 and 1.2.
fn push_escape(out: &mut String, c: char) {
    let code = u32::from(c);
    match c {
        '\n' => out.push_str("\\n"),
        '\t' => out.push_str("\\t"),
        '\r' => out.push_str("\\r"),
        _ if code <= 0xff => append!(out, "\\x{code:02x}"),
        _ => append!(out, "\\u{code:04x}"),
    }
}

/// A double-quoted scalar: `"` and `\` escaped, and every character [`escaped`] names, so the
/// value is one line, cannot end its scalar, and reads back as exactly `s`.
fn quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if escaped(c) => push_escape(&mut out, c),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A comment line's text: what [`escaped`] names is written as an escape, so a comment cannot
/// end its line.
fn comment_text(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    for c in line.chars() {
        if escaped(c) {
            push_escape(&mut out, c);
        } else {
            out.push(c);
        }
    }
    out
}

fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => quoted(s),
        other => other.to_string(),
    }
}

fn key(k: &str) -> String {
    let plain = !k.is_empty()
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '/'))
        && !k.starts_with(['-', '.']);
    if plain { k.to_string() } else { quoted(k) }
}

fn is_empty_container(v: &Value) -> bool {
    matches!(v, Value::Object(m) if m.is_empty()) || matches!(v, Value::Array(a) if a.is_empty())
}

fn write(out: &mut String, v: &Value, indent: usize) {
    let pad = " ".repeat(indent);
    match v {
        Value::Object(map) => {
            for (k, val) in map {
                match val {
                    Value::Object(_) | Value::Array(_) if !is_empty_container(val) => {
                        append!(out, "{pad}{}:\n", key(k));
                        let child = if matches!(val, Value::Array(_)) {
                            indent
                        } else {
                            indent + 2
                        };
                        write(out, val, child);
                    }
                    Value::Object(_) => append!(out, "{pad}{}: {{}}\n", key(k)),
                    Value::Array(_) => append!(out, "{pad}{}: []\n", key(k)),
                    _ => append!(out, "{pad}{}: {}\n", key(k), scalar(val)),
                }
            }
        }
        Value::Array(items) => {
            for item in items {
                match item {
                    Value::Object(_) | Value::Array(_) if !is_empty_container(item) => {
                        let mut inner = String::new();
                        write(&mut inner, item, indent + 2);
                        // The first line of the item goes behind the dash.
                        let trimmed = inner.trim_start_matches(' ');
                        append!(out, "{pad}- {trimmed}");
                    }
                    Value::Object(_) => append!(out, "{pad}- {{}}\n"),
                    Value::Array(_) => append!(out, "{pad}- []\n"),
                    _ => append!(out, "{pad}- {}\n", scalar(item)),
                }
            }
        }
        _ => append!(out, "{pad}{}\n", scalar(v)),
    }
}

/// One YAML document, with `comment` lines (`# ...`) above it.
pub fn document(comment: &[&str], v: &Value) -> String {
    let mut out = String::new();
    for line in comment {
        if line.is_empty() {
            out.push_str("#\n");
        } else {
            append!(out, "# {}\n", comment_text(line));
        }
    }
    write(&mut out, v, 0);
    out
}

/// Several documents separated by `---`.
pub fn documents(docs: &[String]) -> String {
    docs.iter()
        .map(|d| format!("---\n{d}"))
        .collect::<Vec<_>>()
        .join("")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize as _;
    use serde_json::json;

    #[test]
    fn writes_nested_maps_and_lists() {
        let v = json!({
            "a": {"b": "on", "c": 3, "d": [{"x": "1", "y": {"z": true}}, "s"]},
            "empty": {},
            "weird key": []
        });
        let y = document(&["head"], &v);
        assert_eq!(
            y,
            "# head\na:\n  b: \"on\"\n  c: 3\n  d:\n  - x: \"1\"\n    y:\n      z: true\n  - \"s\"\nempty: {}\n\"weird key\": []\n"
        );
    }

    /// Strings that YAML 1.1 or 1.2 would read as something else, keys that need quoting and
    /// multi-line text all come back as the same JSON from a YAML parser, and every string
    /// scalar is quoted, so YAML 1.1 readers (kubectl) see strings too.
    #[test]
    fn every_string_is_quoted_and_reads_back_unchanged() {
        let tricky = [
            "on",
            "off",
            "yes",
            "no",
            "y",
            "N",
            "true",
            "null",
            "~",
            "",
            "4.10",
            "0755",
            "1e3",
            "0x1F",
            "12:30",
            "2024-01-01",
            ".inf",
            "-",
            "a: b",
            "#x",
            "<<",
            "=",
            " lead",
            "multi\nline",
            "${KERNEL_FULL_VERSION}",
            "quote\"d",
            "tab\there",
            "\u{e9}t\u{e9}",
        ];
        let map: serde_json::Map<String, Value> =
            tricky.iter().map(|s| (format!("k{s}"), json!(s))).collect();
        let v = json!({ "list": tricky, "map": map, "n": -3, "f": 1.5, "b": false });
        let text = document(&[], &v);
        let back: Value = serde_norway::from_str(&text).unwrap();
        assert_eq!(back, v, "{text}");
        for line in text.lines().filter(|l| l.trim_start().starts_with("- ")) {
            assert!(line.trim_start()[2..].starts_with('"'), "unquoted: {line}");
        }
    }

    /// Strings a lock or a registry could carry, built to escape their scalar.
    const HOSTILE: &[&str] = &[
        "rhel-10\n---\napiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nroleRef:\n  name: cluster-admin",
        "a\n...\n--- !!str\nb",
        "\" , \"injected\": \"x",
        "x\\\"\nkind: Secret",
        "\x1b]0;pwned\x07\x1b[2J",
        "del\x7fc1\u{80}\u{85}nel\u{9b}31m\u{9f}",
        "ls\u{2028}kind: Secret\u{2029}ps",
        "\u{feff}bom\u{fffe}\u{ffff}",
        "bidi\u{202e}txt.exe\u{2066}\u{200f}",
        "\0nul\r\n\tcr",
        "# heading [x](https://evil.example) @admin Fixes #1 <img src=x>",
        "{a: b}",
        "[1, 2]",
        "&anchor *alias !!binary |",
        "\u{1f600} \u{e9}",
    ];

    /// Every document in `text`, as JSON.
    fn all_documents(text: &str) -> Vec<Value> {
        serde_norway::Deserializer::from_str(text)
            .map(|d| Value::deserialize(d).unwrap_or_else(|e| panic!("{e}: {text}")))
            .collect()
    }

    /// Hostile strings as values, keys and comment lines: each document reads back as one
    /// document with the same strings, and no raw control or line-separator character is
    /// written.
    #[test]
    fn hostile_strings_stay_in_their_scalar() {
        let map: serde_json::Map<String, Value> = HOSTILE
            .iter()
            .map(|s| ((*s).to_string(), json!(s)))
            .collect();
        let v = json!({ "list": HOSTILE, "map": map, "nested": [{ "k": HOSTILE[0] }] });
        let docs: Vec<String> = (0..2).map(|_| document(HOSTILE, &v)).collect();
        let text = documents(&docs);
        assert_eq!(all_documents(&text), vec![v.clone(), v], "{text}");
        let raw = text.chars().find(|&c| escaped(c) && c != '\n');
        assert_eq!(raw, None, "{text}");
        for line in text.lines() {
            assert!(
                line == "---"
                    || line.starts_with(['#', ' ', '-', '"'])
                    || line.starts_with(|c: char| c.is_ascii_alphanumeric()),
                "{line}"
            );
            assert!(!line.starts_with("---") || line == "---", "{line}");
        }
    }
}
