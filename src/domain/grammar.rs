//! The grammars of the names that stay strings: a driver's name, a node OS stream, a RHEL
//! version and an RHCOS (machine-os) version, an image tag, a kernel module's name and a build
//! secret's id; and the lexical pieces other grammars share (digits, lowercase hex, the
//! characters of a tag). The lock is read against them, so a string in it
//! that does not fit is refused before anything prints or exports it.
//!
//! Each is as wide as the real values (see the payload format notes) and no wider: none admits
//! a space, a quote, a control character or anything markdown, YAML or a shell reads as syntax.

use super::ParseError;

/// At most this many bytes of a refused value are shown back, escaped.
const SHOWN: usize = 40;

/// `value` as a message may name it: control characters escaped, cut at [`SHOWN`] characters.
fn shown(value: &str) -> String {
    let cut: String = value.chars().take(SHOWN).collect();
    let more = if cut.len() < value.len() { "…" } else { "" };
    format!("{}{more}", crate::text::escape_line(&cut))
}

fn refuse(value: &str, what: &str, expected: &str) -> ParseError {
    ParseError::new(format!("`{}` is not {what}", shown(value))).with_help(expected.to_string())
}

/// One or more ASCII digits (`0`, `10`, `007`); no sign, no other script's digits.
pub fn is_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// One or more lowercase hex digits, as a digest or a token is written.
pub fn is_lower_hex(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// A character an image tag may hold (after its first): `[A-Za-z0-9_.-]`. KMM writes every
/// other character of a kernel release as `_` when it makes a tag of it.
pub fn is_tag_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')
}

/// Checks a tag against the distribution grammar: `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
pub fn check_tag(tag: &str) -> Result<(), ParseError> {
    let ok_first = tag
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
    let ok_rest = tag.chars().all(is_tag_char);
    if tag.len() > 128 {
        Err(ParseError::new(format!(
            "tag `{tag}` is {} characters long; a tag may have at most 128",
            tag.len()
        )))
    } else if !ok_first || !ok_rest {
        Err(ParseError::new(format!("`{tag}` is not a valid image tag")).with_help(
            "a tag starts with a letter, digit or `_` and holds only letters, digits, `_`, `.` and `-`",
        ))
    } else {
        Ok(())
    }
}

/// A kernel module's name as a matrix or a Kbuild file writes it, without `.ko`: letters,
/// digits, `_` and `-`.
pub fn is_module_name(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// A build secret id: letters, digits, `.`, `_` or `-` (so never `,` or `=`, which buildah's
/// `--secret id=…,src=…` would read as more options).
pub fn is_secret_id(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// A driver's name: `[a-z0-9][a-z0-9._-]*`, the matrix's rule.
pub fn check_driver_name(name: &str) -> Result<(), ParseError> {
    let ok = name
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && name.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
        });
    if ok {
        Ok(())
    } else {
        Err(refuse(
            name,
            "a driver name",
            "a driver name is `[a-z0-9][a-z0-9._-]*`, as the matrix names it",
        ))
    }
}

/// The `stream` of the RHEL 10 node OS in a dual-stream release.
pub const STREAM_RHEL10: &str = "rhel-10";
/// How a matrix names a payload's default stream (no `stream` key in the lock).
pub const STREAM_DEFAULT: &str = "default";

/// A node OS stream other than the payload's default: `rhel-N` (`rhel-10`), N a major version
/// without leading zero. The default stream has no name in the lock.
pub fn check_stream(stream: &str) -> Result<(), ParseError> {
    let ok = stream
        .strip_prefix("rhel-")
        .is_some_and(|n| n.len() <= 3 && is_digits(n) && !n.starts_with('0'));
    if ok {
        Ok(())
    } else {
        Err(refuse(
            stream,
            "a node OS stream",
            "a stream is `rhel-` and a major version, like `rhel-10`; the default stream has no `stream` key",
        ))
    }
}

/// A RHEL version as a DTK's release file gives it: numbers joined by `.` (`9.2`, `10.0`), at
/// most 16 bytes.
pub fn check_rhel(rhel: &str) -> Result<(), ParseError> {
    let ok = !rhel.is_empty() && rhel.len() <= 16 && rhel.split('.').all(is_digits);
    if ok {
        Ok(())
    } else {
        Err(refuse(
            rhel,
            "a RHEL version",
            "a RHEL version is numbers joined by `.`, like `9.2`",
        ))
    }
}

/// An RHCOS version as a payload's `machine-os=` annotation gives it (`414.92.202402130420-0`,
/// `9.6.20260327-0`): 1 to 64 bytes of letters, digits, `.`, `-` and `_`, starting with a letter
/// or digit.
pub fn check_machine_os(m: &str) -> Result<(), ParseError> {
    let ok = !m.is_empty()
        && m.len() <= 64
        && m.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
        && m.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'));
    if ok {
        Ok(())
    } else {
        Err(refuse(
            m,
            "an RHCOS version",
            "an RHCOS version holds letters, digits, `.`, `-` and `_`, like `414.92.202402130420-0`",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn real_values_are_accepted() {
        for d in ["hello-kmod", "acme-net", "a", "0", "x.y_z-1"] {
            assert!(check_driver_name(d).is_ok(), "{d}");
        }
        assert!(check_stream("rhel-10").is_ok());
        assert!(check_stream("rhel-9").is_ok());
        for r in ["9.2", "9.4", "10.0", "8.6", "9"] {
            assert!(check_rhel(r).is_ok(), "{r}");
        }
        for m in [
            "414.92.202402130420-0",
            "416.94.202406251923-0",
            "9.6.20260327-0",
            "4.12-rc_1",
        ] {
            assert!(check_machine_os(m).is_ok(), "{m}");
        }
    }

    #[test]
    fn hostile_and_malformed_values_are_refused() {
        let hostile = [
            "",
            " ",
            "rhel-10\n---\nkind: ClusterRoleBinding",
            "\x1b]0;pwned\x07",
            "a\u{7f}",
            "a\u{85}b",
            "a\u{9b}31m",
            "# heading",
            "[x](https://evil.example)",
            "@admin",
            "Fixes #1",
            "<img src=x>",
            "a|b",
            "a`b",
            "a b",
            "a\"b",
            "9.2 ",
        ];
        for h in hostile {
            assert!(check_driver_name(h).is_err(), "driver {h:?}");
            assert!(check_stream(h).is_err(), "stream {h:?}");
            assert!(check_rhel(h).is_err(), "rhel {h:?}");
            assert!(check_machine_os(h).is_err(), "machine-os {h:?}");
        }
        for s in [
            "default",
            "rhel-",
            "rhel-010",
            "rhel-1000",
            "RHEL-10",
            "rhel10",
        ] {
            assert!(check_stream(s).is_err(), "{s}");
        }
        for r in ["9.", ".9", "9..2", "nine", &"9.".repeat(9)] {
            assert!(check_rhel(r).is_err(), "{r}");
        }
        assert!(check_driver_name("Hello").is_err());
        assert!(check_driver_name("-x").is_err());
        assert!(check_machine_os("-1").is_err());
        assert!(check_machine_os(&"4".repeat(65)).is_err());
    }

    /// The edges of each rule, pinned before the copies of it elsewhere (the matrix's driver
    /// names, the DTK's and the `[[toolkit]]`'s RHEL version) were made to call it.
    #[test]
    fn the_edges_of_each_rule_are_pinned() {
        for ok in ["0", "9a", "a..b", "a-", "a_", "a.", "a-b.c_d-9"] {
            assert!(check_driver_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "-a",
            ".a",
            "_a",
            "A",
            "aB",
            "a/b",
            "a+b",
            "é",
            "a\u{0301}",
            "a:b",
        ] {
            assert!(check_driver_name(bad).is_err(), "{bad}");
        }
        for ok in [
            "0",
            "9",
            "10.0",
            "1.2.3",
            "0.0",
            &"9".repeat(16),
            "9.4.1.2.3.4.5.6",
        ] {
            assert!(check_rhel(ok).is_ok(), "{ok}");
        }
        for bad in [
            &"9".repeat(17),
            " 9.2",
            "9.2 ",
            "9,2",
            "9.a",
            "\u{0669}",
            "+9",
            "-9",
            "9_2",
        ] {
            assert!(check_rhel(bad).is_err(), "{bad}");
        }
        for ok in ["rhel-1", "rhel-10", "rhel-999"] {
            assert!(check_stream(ok).is_ok(), "{ok}");
        }
        for bad in ["rhel-0", "rhel-1a", "rhel-+1", "rhel-\u{0661}"] {
            assert!(check_stream(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn tag_rules() {
        assert!(check_tag("5.14.0-284.52.1.el9_2.x86_64").is_ok());
        assert!(check_tag(".hidden").is_err());
        assert!(check_tag("a+b").is_err());
        assert!(check_tag(&"a".repeat(129)).is_err());
        assert!(check_tag(&"a".repeat(128)).is_ok());
    }

    #[test]
    fn the_shared_pieces_have_edges_too() {
        for (s, digits, hex) in [
            ("", false, false),
            ("0", true, true),
            ("007", true, true),
            ("1a", false, true),
            ("A", false, false),
            ("g", false, false),
            ("+1", false, false),
            ("\u{0669}", false, false),
        ] {
            assert_eq!(is_digits(s), digits, "{s:?}");
            assert_eq!(is_lower_hex(s), hex, "{s:?}");
        }
        for ok in ["a", "A1", "a-b_c", "-a", "_"] {
            assert!(is_module_name(ok), "{ok}");
        }
        for bad in ["", "a.b", "a b", "a.ko ", "é", "a/b"] {
            assert!(!is_module_name(bad), "{bad}");
        }
        for ok in ["a", "key.pem", "a_b-c", ".", "-x"] {
            assert!(is_secret_id(ok), "{ok}");
        }
        for bad in ["", "a=b", "a,b", "a/b", "a b", "é"] {
            assert!(!is_secret_id(bad), "{bad}");
        }
        let tag: String = ('\0'..='\u{ff}').filter(|&c| is_tag_char(c)).collect();
        assert_eq!(
            tag,
            "-.0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz"
        );
    }

    #[test]
    fn a_refused_value_is_shown_escaped_and_short() {
        let e = check_stream(&format!("\x1b]0;t\x07{}", "x".repeat(100))).unwrap_err();
        assert!(!e.message.contains('\x1b'), "{}", e.message);
        assert!(e.message.contains(r"\x1b]0;t\x07"), "{}", e.message);
        assert!(e.message.len() < 80, "{}", e.message);
    }
}
