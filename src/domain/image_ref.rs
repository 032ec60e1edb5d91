//! Image references in the grammar of the distribution project (`host[:port]/path[:tag][@digest]`).

use std::fmt;
use std::str::FromStr;

use super::grammar::check_tag;
use super::{Digest, ParseError, string_serde};

/// A fully qualified image reference. The registry host is always explicit: an unqualified name
/// would be resolved through each machine's own search list, which a build matrix cannot rely on.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ImageRef {
    registry: String,
    repository: String,
    tag: Option<String>,
    digest: Option<Digest>,
}

impl ImageRef {
    /// `host[:port]`.
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// The path after the host, without tag or digest.
    pub fn repository(&self) -> &str {
        &self.repository
    }

    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// `host/path`, without tag or digest.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// The same repository at `tag` (any digest dropped).
    pub fn with_tag(&self, tag: &str) -> Result<ImageRef, ParseError> {
        check_tag(tag)?;
        Ok(ImageRef {
            tag: Some(tag.to_string()),
            digest: None,
            ..self.clone()
        })
    }

    /// The same repository pinned at `digest` (any tag dropped).
    pub fn with_digest(&self, digest: Digest) -> ImageRef {
        ImageRef {
            tag: None,
            digest: Some(digest),
            ..self.clone()
        }
    }

    /// The same path on another registry, with `namespace` prepended (`mirror.example/ocp`).
    pub fn rehomed(&self, registry: &str, namespace: Option<&str>) -> ImageRef {
        let repository = match namespace {
            Some(ns) if !ns.is_empty() => format!("{ns}/{}", self.repository),
            _ => self.repository.clone(),
        };
        ImageRef {
            registry: registry.to_string(),
            repository,
            ..self.clone()
        }
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

fn is_domain_component(s: &str) -> bool {
    !s.is_empty()
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

fn is_host(s: &str) -> bool {
    let (host, port) = match s.rsplit_once(':') {
        Some((h, p)) if !h.starts_with('[') || h.ends_with(']') => (h, Some(p)),
        _ => (s, None),
    };
    if let Some(p) = port
        && (p.is_empty() || !p.chars().all(|c| c.is_ascii_digit()) || p.parse::<u16>().is_err())
    {
        return false;
    }
    if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return v6.parse::<std::net::Ipv6Addr>().is_ok();
    }
    host.split('.').all(is_domain_component)
}

/// `[a-z0-9]+` joined by `.`, `_`, `__` or runs of `-`.
fn is_path_component(s: &str) -> bool {
    let bytes = s.as_bytes();
    if bytes.is_empty()
        || !bytes[0].is_ascii_alphanumeric()
        || !bytes[bytes.len() - 1].is_ascii_alphanumeric()
    {
        return false;
    }
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b.is_ascii_lowercase() || b.is_ascii_digit() {
            i += 1;
            continue;
        }
        let sep_len = match b {
            b'.' => 1,
            b'_' if bytes.get(i + 1) == Some(&b'_') => 2,
            b'_' => 1,
            b'-' => bytes[i..].iter().take_while(|&&c| c == b'-').count(),
            _ => return false,
        };
        i += sep_len;
        if !bytes
            .get(i)
            .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        {
            return false;
        }
    }
    true
}

impl FromStr for ImageRef {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad =
            |why: &str| ParseError::new(format!("`{s}` is not a valid image reference: {why}"));
        let (rest, digest) = match s.split_once('@') {
            Some((r, d)) => (r, Some(d.parse::<Digest>()?)),
            None => (s, None),
        };
        let (host, path) = rest.split_once('/').ok_or_else(|| {
            bad("it has no registry host").with_help(format!(
                "write the full name, for example `quay.io/{rest}` or `127.0.0.1:5000/{rest}`"
            ))
        })?;
        let qualified = host.contains(['.', ':']) || host == "localhost";
        if !qualified || !is_host(host) {
            return Err(bad(&format!("`{host}` is not a registry host"))
                .with_help(format!("write the full name, for example `quay.io/{rest}`")));
        }
        // A `:` after the last `/` starts the tag.
        let (path, tag) = match path.rsplit_once(':') {
            Some((p, t)) if !t.contains('/') => (p, Some(t)),
            _ => (path, None),
        };
        if let Some(t) = tag {
            check_tag(t)?;
        }
        if path.is_empty() || !path.split('/').all(is_path_component) {
            return Err(bad(&format!("`{path}` is not a valid repository path")).with_help(
                "path components are lowercase letters and digits, joined by `.`, `_`, `__` or `-`",
            ));
        }
        if rest.len() > 255 {
            return Err(bad("the name is longer than 255 characters"));
        }
        Ok(ImageRef {
            registry: host.to_string(),
            repository: path.to_string(),
            tag: tag.map(str::to_string),
            digest,
        })
    }
}

string_serde!(ImageRef);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_qualified_references() {
        let r: ImageRef = "quay.io/openshift-release-dev/ocp-release:4.14.12-x86_64"
            .parse()
            .unwrap();
        assert_eq!(r.registry(), "quay.io");
        assert_eq!(r.repository(), "openshift-release-dev/ocp-release");
        assert_eq!(r.tag(), Some("4.14.12-x86_64"));
        let d = format!("sha256:{}", "a".repeat(64));
        let r: ImageRef = format!("127.0.0.1:5000/acme/hello-kmod@{d}")
            .parse()
            .unwrap();
        assert_eq!(r.registry(), "127.0.0.1:5000");
        assert_eq!(r.digest().unwrap().as_str(), d);
        assert_eq!(r.to_string(), format!("127.0.0.1:5000/acme/hello-kmod@{d}"));
        let r: ImageRef = "localhost/a__b/c--d/e.f".parse().unwrap();
        assert_eq!(r.repository(), "a__b/c--d/e.f");
        let r: ImageRef = "[::1]:5000/x".parse().unwrap();
        assert_eq!(r.registry(), "[::1]:5000");
    }

    #[test]
    fn rejects_bad_references() {
        for bad in [
            "hello-kmod",
            "acme/hello-kmod",
            "quay.io/Acme/x",
            "quay.io/",
            "quay.io/a//b",
            "quay.io/a-",
            "quay.io/a:b:c",
            "quay.io:99999/a",
            "quay.io/a@sha256:1234",
            "quay.io/a b",
            "-bad.io/a",
        ] {
            assert!(bad.parse::<ImageRef>().is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn rehomes_onto_a_mirror() {
        let r: ImageRef = "quay.io/openshift-release-dev/ocp-release:4.14.12-x86_64"
            .parse()
            .unwrap();
        assert_eq!(
            r.rehomed("mirror.example:5000", Some("ocp")).to_string(),
            "mirror.example:5000/ocp/openshift-release-dev/ocp-release:4.14.12-x86_64"
        );
    }
}
