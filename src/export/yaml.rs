//! A small block-style YAML writer for the manifests driver-matrix exports.
//!
//! Scalars are written as JSON strings, numbers and booleans (valid YAML that no parser reads
//! as anything else: `"on"`, `"4.10"` and `"0755"` stay strings), keys keep their insertion
//! order, and the output for the same value is always the same bytes.
//!
//! Why not a serde YAML crate: `serde_norway` (like `serde_yaml`) quotes only what YAML 1.2
//! would misread, and writes `on`, `yes`, `y`, `off`, `no` and `12:30` bare. kubectl and `oc`
//! read manifests as YAML 1.1 (go-yaml), where those are booleans and a sexagesimal number, so
//! a node selector value `"yes"` would reach the API server as `true` and the Module would be
//! rejected. Neither crate writes comments, which carry each document's provenance here.

use serde_json::Value;

fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => serde_json::to_string(s).expect("a string serializes"),
        other => other.to_string(),
    }
}

fn key(k: &str) -> String {
    let plain = !k.is_empty()
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '/'))
        && !k.starts_with(['-', '.']);
    if plain {
        k.to_string()
    } else {
        serde_json::to_string(k).expect("a string serializes")
    }
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
                        out.push_str(&format!("{pad}{}:\n", key(k)));
                        let child = if matches!(val, Value::Array(_)) {
                            indent
                        } else {
                            indent + 2
                        };
                        write(out, val, child);
                    }
                    Value::Object(_) => out.push_str(&format!("{pad}{}: {{}}\n", key(k))),
                    Value::Array(_) => out.push_str(&format!("{pad}{}: []\n", key(k))),
                    _ => out.push_str(&format!("{pad}{}: {}\n", key(k), scalar(val))),
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
                        out.push_str(&format!("{pad}- {trimmed}"));
                    }
                    Value::Object(_) => out.push_str(&format!("{pad}- {{}}\n")),
                    Value::Array(_) => out.push_str(&format!("{pad}- []\n")),
                    _ => out.push_str(&format!("{pad}- {}\n", scalar(item))),
                }
            }
        }
        _ => out.push_str(&format!("{pad}{}\n", scalar(v))),
    }
}

/// One YAML document, with `comment` lines (`# ...`) above it.
pub fn document(comment: &[&str], v: &Value) -> String {
    let mut out = String::new();
    for line in comment {
        if line.is_empty() {
            out.push_str("#\n");
        } else {
            out.push_str(&format!("# {line}\n"));
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
}
