//! The grammars of the names that stay strings: a driver's name, a node OS stream, a RHEL
//! version and an RHCOS (machine-os) version. The lock is read against them, so a string in it
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
    let ok = stream.strip_prefix("rhel-").is_some_and(|n| {
        (1..=3).contains(&n.len()) && n.bytes().all(|b| b.is_ascii_digit()) && !n.starts_with('0')
    });
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
    let ok = !rhel.is_empty()
        && rhel.len() <= 16
        && rhel
            .split('.')
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
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

    #[test]
    fn a_refused_value_is_shown_escaped_and_short() {
        let e = check_stream(&format!("\x1b]0;t\x07{}", "x".repeat(100))).unwrap_err();
        assert!(!e.message.contains('\x1b'), "{}", e.message);
        assert!(e.message.contains(r"\x1b]0;t\x07"), "{}", e.message);
        assert!(e.message.len() < 80, "{}", e.message);
    }
}
