//! Kernel release strings (`uname -r`), the build key of a driver image.

use std::fmt;
use std::str::FromStr;

use super::{ParseError, string_serde};

/// A kernel release such as `5.14.0-284.52.1.el9_2.x86_64`, `6.12.117+deb13-amd64` or
/// `5.14.0-427.18.1.el9_4.x86_64+rt`.
///
/// Accepted: `MAJOR.MINOR` digits first, then only `[A-Za-z0-9._+~-]`, at most 64 bytes (the
/// kernel's own limit for `uname -r`). This rejects the prose some tools print instead of a
/// version ("package kernel-rt-core is not installed").
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Kernel(String);

impl Kernel {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `self` and `other` name the same kernel build, compared as parsed kernels:
    /// version (before the first `-`), release and arch must be equal, where the arch is the
    /// last `.`-component when it names one (`x86_64`, `aarch64`, `ppc64le`, `s390x`) and is only compared when both sides carry it.
    pub fn same_build(&self, other: &Kernel) -> bool {
        let (a, b) = (parts(&self.0), parts(&other.0));
        a.0 == b.0 && a.1 == b.1 && (a.2.is_none() || b.2.is_none() || a.2 == b.2)
    }

    /// The kernel without the `+rt` that `uname -r` of a 4.16+ real-time kernel ends with.
    pub fn without_rt_suffix(&self) -> Kernel {
        Kernel(self.0.strip_suffix("+rt").unwrap_or(&self.0).to_string())
    }

    /// The kernel as KMM puts it into image tags: every character outside `[A-Za-z0-9._-]`
    /// becomes `_`.
    pub fn normalized(&self) -> String {
        self.0
            .chars()
            .map(|c| if super::is_tag_char(c) { c } else { '_' })
            .collect()
    }
}

/// (version, release, arch) of an rpm-style kernel string.
fn parts(s: &str) -> (&str, &str, Option<&str>) {
    let (rest, arch) = match s.rsplit_once('.') {
        Some((rest, a)) if ["x86_64", "aarch64", "ppc64le", "s390x"].contains(&a) => {
            (rest, Some(a))
        }
        _ => (s, None),
    };
    let (version, release) = rest.split_once('-').unwrap_or((rest, ""));
    (version, release, arch)
}

impl fmt::Display for Kernel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for Kernel {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let shown: String = s.chars().take(80).collect();
        let bad = |why: &str| ParseError::new(format!("`{shown}` is not a kernel release: {why}"));
        if s.is_empty() || s.len() > 64 {
            return Err(bad("expected 1 to 64 characters"));
        }
        if let Some(c) = s
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '+' | '~' | '-')))
        {
            return Err(bad(&format!("unexpected character {c:?}")));
        }
        let mut parts = s.splitn(3, '.');
        let numeric = |p: Option<&str>, whole: bool| {
            p.map(|p| {
                let digits: String = p.chars().take_while(char::is_ascii_digit).collect();
                !digits.is_empty() && (!whole || digits.len() == p.len())
            })
            .unwrap_or(false)
        };
        if !numeric(parts.next(), true) || !numeric(parts.next(), false) {
            return Err(bad("expected it to start with MAJOR.MINOR"));
        }
        Ok(Kernel(s.to_string()))
    }
}

string_serde!(Kernel);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_real_kernels() {
        for k in [
            "5.14.0-284.52.1.el9_2.x86_64",
            "5.14.0-284.52.1.rt14.337.el9_2.x86_64",
            "5.14.0-427.18.1.el9_4.x86_64+rt",
            "6.1.0-50-amd64",
            "6.12.117+deb13-amd64",
            "4.18.0-372.9.1.el8.aarch64",
        ] {
            assert_eq!(k.parse::<Kernel>().unwrap().as_str(), k);
        }
    }

    #[test]
    fn rejects_prose_and_garbage() {
        for k in [
            "package kernel-rt-core is not installed",
            "",
            "latest",
            "5",
            "5.x",
            "5.14.0 ",
            "5.14.0-284;rm -rf /",
            &"5.14.0-".repeat(20),
        ] {
            assert!(k.parse::<Kernel>().is_err(), "{k:?} accepted");
        }
    }

    #[test]
    fn compares_as_parsed_kernels() {
        let k = |s: &str| s.parse::<Kernel>().unwrap();
        let dtk = k("5.14.0-284.52.1.el9_2.x86_64");
        assert!(dtk.same_build(&k("5.14.0-284.52.1.el9_2.x86_64")));
        assert!(
            dtk.same_build(&k("5.14.0-284.52.1.el9_2")),
            "no arch on one side"
        );
        assert!(
            !dtk.same_build(&k("5.14.0-284.54.1.el9_2.x86_64")),
            "another release"
        );
        assert!(
            !dtk.same_build(&k("5.14.1-284.52.1.el9_2.x86_64")),
            "another version"
        );
        assert!(
            !dtk.same_build(&k("5.14.0-284.52.1.el9_2.aarch64")),
            "another arch"
        );
        assert!(!dtk.same_build(&k("5.14.0-284.52.1.el9_2.x86_64+rt")));
    }

    #[test]
    fn normalizes_like_kmm() {
        let k: Kernel = "5.14.0-427.18.1.el9_4.x86_64+rt".parse().unwrap();
        assert_eq!(k.normalized(), "5.14.0-427.18.1.el9_4.x86_64_rt");
        let k: Kernel = "6.12.117+deb13-amd64".parse().unwrap();
        assert_eq!(k.normalized(), "6.12.117_deb13-amd64");
    }
}
