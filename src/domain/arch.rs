//! CPU architectures OpenShift ships payloads for.

use std::fmt;
use std::str::FromStr;

use super::{ParseError, did_you_mean, string_serde};

/// An OpenShift architecture, named as in payload tags (`x86_64`, not `amd64`).
///
/// Variants are declared in alphabetical order so that the derived `Ord` sorts as the names do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, schemars::JsonSchema)]
pub enum Arch {
    #[schemars(rename = "aarch64")]
    Aarch64,
    #[schemars(rename = "ppc64le")]
    Ppc64le,
    #[schemars(rename = "s390x")]
    S390x,
    #[schemars(rename = "x86_64")]
    X86_64,
}

impl Arch {
    pub const ALL: [Arch; 4] = [Arch::Aarch64, Arch::Ppc64le, Arch::S390x, Arch::X86_64];

    pub fn as_str(self) -> &'static str {
        match self {
            Arch::Aarch64 => "aarch64",
            Arch::Ppc64le => "ppc64le",
            Arch::S390x => "s390x",
            Arch::X86_64 => "x86_64",
        }
    }

    /// The Go/OCI name: what manifest lists, `--platform` and the update graph use.
    pub fn goarch(self) -> &'static str {
        match self {
            Arch::Aarch64 => "arm64",
            Arch::Ppc64le => "ppc64le",
            Arch::S390x => "s390x",
            Arch::X86_64 => "amd64",
        }
    }

    /// `linux/<goarch>`, as passed to `buildah build --platform`.
    pub fn platform(self) -> String {
        format!("linux/{}", self.goarch())
    }
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Arch {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some(a) = Arch::ALL.into_iter().find(|a| a.as_str() == s) {
            return Ok(a);
        }
        let err = ParseError::new(format!("unknown arch `{s}`"));
        // Users often write the Go name; point them at ours.
        if let Some(a) = Arch::ALL.into_iter().find(|a| a.goarch() == s) {
            return Err(err.with_help(format!("OpenShift names this arch `{a}`")));
        }
        let names = Arch::ALL.map(Arch::as_str);
        Err(match did_you_mean(s, names) {
            Some(close) => err.with_help(format!("did you mean `{close}`?")),
            None => err.with_help(format!("expected one of: {}", names.join(", "))),
        })
    }
}

string_serde!(Arch);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_and_maps_goarch() {
        assert_eq!("aarch64".parse::<Arch>().unwrap().goarch(), "arm64");
        assert_eq!("x86_64".parse::<Arch>().unwrap().platform(), "linux/amd64");
    }

    #[test]
    fn suggests_our_name_for_the_go_name() {
        let err = "amd64".parse::<Arch>().unwrap_err();
        assert_eq!(
            err.help.as_deref(),
            Some("OpenShift names this arch `x86_64`")
        );
        let err = "x86-64".parse::<Arch>().unwrap_err();
        assert_eq!(err.help.as_deref(), Some("did you mean `x86_64`?"));
    }

    #[test]
    fn order_is_alphabetical() {
        let mut v = Arch::ALL.to_vec();
        v.sort_by_key(|a| a.as_str());
        assert_eq!(v, Arch::ALL.to_vec());
    }
}
