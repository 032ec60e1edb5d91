//! OpenShift release versions and constraints on them.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

use super::{ParseError, string_serde};

/// An exact OpenShift release version: `X.Y.Z`, optionally with a pre-release (`4.16.0-rc.3`).
/// Ordered as semver.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Version(semver::Version);

impl Version {
    pub fn major(&self) -> u64 {
        self.0.major
    }

    pub fn minor(&self) -> u64 {
        self.0.minor
    }

    /// `X.Y`, the minor stream this release belongs to.
    pub fn minor_stream(&self) -> (u64, u64) {
        (self.0.major, self.0.minor)
    }

    /// The version with any pre-release dropped: a release candidate belongs to its `X.Y.Z`
    /// when constraints are evaluated.
    fn release_part(&self) -> semver::Version {
        semver::Version::new(self.0.major, self.0.minor, self.0.patch)
    }

    pub fn semver(&self) -> &semver::Version {
        &self.0
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.cmp(&other.0)
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl FromStr for Version {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || {
            ParseError::new(format!("`{s}` is not an OpenShift release version"))
                .with_help("write the exact version, like `4.14.12` or `4.16.0-rc.3`")
        };
        let v = semver::Version::parse(s).map_err(|_| bad())?;
        if !v.build.is_empty() {
            return Err(bad());
        }
        Ok(Version(v))
    }
}

string_serde!(Version);

/// A constraint on release versions, in semver syntax (`>=4.14, <4.17`, `4.15.*`, `~4.16.3`).
///
/// Two rules differ from semver so that constraints read as OpenShift users mean them: a bare
/// version is an exact match on the parts given (`4.15` is `4.15.*`, not `^4.15`), and a
/// pre-release counts as its `X.Y.Z` (`4.16.0-rc.3` satisfies `>=4.16`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionReq {
    text: String,
    req: semver::VersionReq,
}

impl VersionReq {
    pub fn matches(&self, v: &Version) -> bool {
        self.req.matches(&v.release_part())
    }
}

impl fmt::Display for VersionReq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl FromStr for VersionReq {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let normalized = s
            .split(',')
            .map(|part| {
                let part = part.trim();
                if part.starts_with(|c: char| c.is_ascii_digit()) {
                    format!("={part}")
                } else {
                    part.to_string()
                }
            })
            .collect::<Vec<_>>()
            .join(", ");
        let req = semver::VersionReq::parse(&normalized).map_err(|e| {
            ParseError::new(format!("`{s}` is not a version constraint: {e}"))
                .with_help("write a semver constraint like `>=4.14, <4.17` or `4.15.*`")
        })?;
        if req.comparators.iter().any(|c| !c.pre.is_empty()) {
            return Err(
                ParseError::new(format!("`{s}` names a pre-release in a constraint"))
                    .with_help("pre-releases count as their X.Y.Z; write `>=4.16.0` instead"),
            );
        }
        Ok(VersionReq {
            text: s.to_string(),
            req,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        s.parse().unwrap()
    }

    fn req(s: &str) -> VersionReq {
        s.parse().unwrap()
    }

    #[test]
    fn orders_as_semver() {
        let mut vs = [v("4.14.10"), v("4.14.9"), v("4.16.0"), v("4.16.0-rc.3")];
        vs.sort();
        let s: Vec<_> = vs.iter().map(|v| v.to_string()).collect();
        assert_eq!(s, ["4.14.9", "4.14.10", "4.16.0-rc.3", "4.16.0"]);
    }

    #[test]
    fn rejects_incomplete_and_decorated_versions() {
        for bad in ["4.14", "v4.14.1", "4.14.1+build", "4.14.x", "", "04.14.1"] {
            assert!(bad.parse::<Version>().is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn bare_versions_match_exactly_on_given_parts() {
        assert!(req("4.15").matches(&v("4.15.3")));
        assert!(!req("4.15").matches(&v("4.16.0")));
        assert!(req("4.15.3").matches(&v("4.15.3")));
        assert!(!req("4.15.3").matches(&v("4.15.4")));
    }

    #[test]
    fn ranges_and_wildcards() {
        let r = req(">=4.14, <4.17");
        assert!(r.matches(&v("4.14.0")));
        assert!(r.matches(&v("4.16.99")));
        assert!(!r.matches(&v("4.17.0")));
        assert!(!r.matches(&v("4.13.40")));
        assert!(req("4.15.*").matches(&v("4.15.7")));
        assert!(!req("4.15.*").matches(&v("4.14.7")));
    }

    #[test]
    fn prereleases_count_as_their_release() {
        assert!(req(">=4.16").matches(&v("4.16.0-rc.3")));
        assert!(!req("<4.17").matches(&v("4.17.0-ec.1")));
        assert!(req("4.16.*").matches(&v("4.16.0-rc.3")));
    }

    #[test]
    fn rejects_garbage_constraints() {
        for bad in [">=four", "4.14 || 4.15", ">=4.16.0-rc.1", ""] {
            assert!(bad.parse::<VersionReq>().is_err(), "{bad} accepted");
        }
    }
}
