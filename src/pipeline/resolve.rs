//! Resolving the matrix's releases: channels expanded through the update graph, then every
//! version × arch resolved to payload, DTK and kernel (the cache saving what it can), or with
//! `--offline` taken from the lock and the cache alone.

use std::collections::{BTreeMap, BTreeSet};

use super::Session;
use crate::domain::{Arch, ImageRef, Version};
use crate::error::{Error, Result};
use crate::lock::LockedRelease;
use crate::matrix::Matrix;
use crate::plan;
use crate::progress::Reporter;
use crate::registry::Client;
use crate::release::{ReleaseError, Resolver, Target, UnknownChannel, UnknownRelease, graph};

/// Worker threads resolving releases; each holds at most a couple of requests in flight.
const JOBS: usize = 8;

/// The releases a matrix stands for, resolved.
#[derive(Debug, Clone)]
pub struct Resolution {
    /// Each channel's versions (the newest `latest` of its minor).
    pub channels: BTreeMap<String, Vec<Version>>,
    /// Exact and channel versions, sorted, unique.
    pub versions: Vec<Version>,
    /// One entry per version × `[openshift].arch`, in lock order.
    pub releases: Vec<LockedRelease>,
}

impl Session {
    /// Resolves the matrix's releases, reporting each to `progress`.
    pub fn resolve(&self, progress: &dyn Reporter) -> Result<Resolution> {
        let matrix = &self.matrix;
        let client = if self.opts.offline {
            None
        } else {
            Some(self.client()?)
        };
        let (channels, from_graph) = match client {
            None => (
                plan::channels_from_lock(matrix, &self.lock),
                BTreeMap::new(),
            ),
            Some(c) => expand_channels(c, matrix)?,
        };
        let versions = plan::target_versions(matrix, &channels);
        let targets = targets(matrix, &versions, &from_graph)?;
        let cache = self.cache();
        let resolver = Resolver {
            client,
            cache: &cache,
            jobs: JOBS,
        };
        let releases = resolver
            .resolve(&targets, &self.lock, progress)
            .map_err(|e| unknown_release(e, client, matrix, &targets))?;
        Ok(Resolution {
            channels,
            versions,
            releases,
        })
    }
}

/// A warning for every release whose DTK carries another kernel than its nodes boot: images
/// built on that DTK would not load on them.
pub fn kernel_warnings(releases: &[LockedRelease]) -> Vec<crate::matrix::Problem> {
    let help = "modules built on this DTK will not load on the release's nodes; build for another release of the same kernel, or wait for a z-stream whose DTK matches";
    let mut out = Vec::new();
    for r in releases {
        if let Some(node) = r.node_kernel_mismatch() {
            out.push(
                crate::matrix::Problem::warning(format!(
                    "release {}: its Driver Toolkit carries kernel `{}`, but its nodes boot `{node}`",
                    r.label(),
                    r.kernel
                ))
                .help(help),
            );
        }
        if let (Some(node), Some(dtk)) = (r.node_rt_kernel_mismatch(), &r.rt_kernel) {
            out.push(
                crate::matrix::Problem::warning(format!(
                    "release {}: its Driver Toolkit carries real-time kernel `{dtk}`, but its real-time nodes boot `{node}`",
                    r.label()
                ))
                .help(help),
            );
        }
    }
    out
}

/// One target per version × arch that some driver builds for without an exclude dropping it:
/// the graph's payload digest where it gave one, else the payload repository's
/// `<version>-<arch>` tag.
fn targets(
    matrix: &Matrix,
    versions: &[Version],
    from_graph: &GraphPayloads,
) -> Result<Vec<Target>> {
    let repo = &matrix.openshift.payload_repo;
    let mut targets = Vec::new();
    for version in versions {
        for &arch in &matrix.openshift.arches {
            // Excluded for every driver that builds for it: it leaves the lock, so it is not
            // read (and `--offline` does not miss it once it has left).
            if plan::exclude::excluded_before_resolving(matrix, version, arch) {
                continue;
            }
            let payload = match from_graph.get(&(version.clone(), arch)) {
                Some(p) => p.clone(),
                None => repo
                    .with_tag(&format!("{version}-{arch}"))
                    .map_err(|e| Error::usage(e.message, e.help))?,
            };
            targets.push(Target {
                version: version.clone(),
                arch,
                payload,
            });
        }
    }
    Ok(targets)
}

type GraphPayloads = BTreeMap<(Version, Arch), ImageRef>;

/// Each channel's newest `latest` versions of its own minor among those every arch of the
/// matrix offers, and the payload digests the graph gives for them.
fn expand_channels(
    client: &Client,
    matrix: &Matrix,
) -> Result<(BTreeMap<String, Vec<Version>>, GraphPayloads)> {
    let mut channels = BTreeMap::new();
    let mut payloads = BTreeMap::new();
    for ch in &matrix.openshift.channels {
        let mut common: Option<BTreeSet<Version>> = None;
        let mut per_arch = Vec::new();
        for &arch in &matrix.openshift.arches {
            let answer = graph::channel_answer(client, &matrix.openshift.graph_url, &ch.name, arch)
                .map_err(|e| at_channel(e, matrix, &ch.name))?;
            let own: BTreeSet<Version> = answer
                .nodes
                .iter()
                .filter(|n| n.version.minor_stream() == ch.minor)
                .map(|n| n.version.clone())
                .collect();
            if own.is_empty() {
                return Err(no_own_minor(matrix, ch, arch, &answer.channels).into());
            }
            let nodes = answer.nodes;
            common = Some(match common {
                None => own,
                Some(c) => c.intersection(&own).cloned().collect(),
            });
            per_arch.push((arch, nodes));
        }
        let common: Vec<Version> = common.unwrap_or_default().into_iter().collect();
        let keep = common.len().saturating_sub(ch.latest as usize);
        let chosen = common[keep..].to_vec();
        for (arch, nodes) in &per_arch {
            for n in nodes.iter().filter(|n| chosen.contains(&n.version)) {
                if let Some(p) = &n.payload {
                    payloads.insert((n.version.clone(), *arch), p.clone());
                }
            }
        }
        channels.insert(ch.name.clone(), chosen);
    }
    Ok((channels, payloads))
}

/// Where `"value"` first appears in the matrix file (a release or a channel name): the place an
/// error about that value points at.
fn span_of(matrix: &Matrix, value: &str) -> Option<miette::SourceSpan> {
    let quoted = format!("\"{value}\"");
    matrix
        .source
        .inner()
        .find(&quoted)
        .map(|at| (at, quoted.len()).into())
}

/// A channel error pointed at the channel's line of the matrix.
fn at_channel(e: ReleaseError, matrix: &Matrix, name: &str) -> ReleaseError {
    match e {
        ReleaseError::UnknownChannel(mut u) => {
            u.span = span_of(matrix, name);
            u.matrix = Some(matrix.source.clone());
            ReleaseError::UnknownChannel(u)
        }
        e => e,
    }
}

/// A channel whose graph lists no release of its own minor: it does not exist (yet).
fn no_own_minor(
    matrix: &Matrix,
    ch: &crate::matrix::Channel,
    arch: Arch,
    known: &[String],
) -> ReleaseError {
    let sep = if matrix.openshift.graph_url.contains('?') {
        '&'
    } else {
        '?'
    };
    let help = if known.is_empty() {
        "check the channel's name (like `stable-4.16`)".to_string()
    } else {
        let known: Vec<String> = known.iter().map(|c| format!("`{c}`")).collect();
        format!(
            "check the channel's name; its releases are in: {}",
            known.join(", ")
        )
    };
    ReleaseError::UnknownChannel(Box::new(UnknownChannel {
        channel: ch.name.clone(),
        arch,
        url: format!(
            "{}{sep}channel={}&arch={}",
            matrix.openshift.graph_url,
            ch.name,
            arch.goarch()
        ),
        said: format!("it lists no {}.{} release", ch.minor.0, ch.minor.1),
        help,
        matrix: Some(matrix.source.clone()),
        span: span_of(matrix, &ch.name),
    }))
}

/// A payload tag the registry does not have is a release that does not exist: a matrix error
/// naming the host and repository asked, the matrix line and the nearest tag that exists.
/// Every other failure is returned as it is.
fn unknown_release(
    e: ReleaseError,
    client: Option<&Client>,
    matrix: &Matrix,
    targets: &[Target],
) -> ReleaseError {
    let (Some(client), ReleaseError::Registry { error, .. }) = (client, &e) else {
        return e;
    };
    let crate::registry::RegistryError::NotFound { reference, .. } = error.as_ref() else {
        return e;
    };
    let Some(t) = targets
        .iter()
        .find(|t| t.payload.digest().is_none() && t.payload.to_string() == *reference)
    else {
        return e;
    };
    let tag = t.payload.tag().unwrap_or_default().to_string();
    // Best effort: a registry that will not list its tags still gets the error above.
    let tags = client.tags(&t.payload).unwrap_or_default();
    let help = match nearest_tag(&tags, &t.version, t.arch) {
        Some(near) => format!(
            "the nearest tag that exists is `{near}`; name an existing release in `releases`, or a channel"
        ),
        None => "name an existing release in `releases` (`driver-matrix releases stable-4.Y` lists a channel's), or check `payload-repo` and its mirror".to_string(),
    };
    ReleaseError::UnknownRelease(Box::new(UnknownRelease {
        version: t.version.to_string(),
        arch: t.arch,
        asked: client.location(&t.payload),
        tag,
        help,
        span: span_of(matrix, &t.version.to_string()),
        matrix: Some(matrix.source.clone()),
    }))
}

/// The tag nearest to `<version>-<arch>` among `tags`: another tag of the same version (like
/// `4.16.2-multi`), else the same arch's release of the same minor nearest in patch, else the
/// newest of the nearest minor.
pub fn nearest_tag(tags: &[String], version: &Version, arch: Arch) -> Option<String> {
    let same_version = format!("{version}-");
    let mut same: Vec<&String> = tags
        .iter()
        .filter(|t| t.starts_with(&same_version))
        .collect();
    same.sort();
    if let Some(t) = same.first() {
        return Some((*t).clone());
    }
    let suffix = format!("-{arch}");
    let want = version.semver();
    tags.iter()
        .filter_map(|t| {
            let v: Version = t.strip_suffix(&suffix)?.parse().ok()?;
            let s = v.semver();
            let minor = (s.major.abs_diff(want.major), s.minor.abs_diff(want.minor));
            // Nearest minor; within the same minor the nearest patch; then the newer.
            let patch = if minor == (0, 0) {
                s.patch.abs_diff(want.patch)
            } else {
                0
            };
            Some(((minor, patch, std::cmp::Reverse(v)), t))
        })
        .min_by(|a, b| a.0.cmp(&b.0))
        .map(|(_, t)| t.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn the_nearest_tag_prefers_the_same_version_then_the_same_minor() {
        let v = |s: &str| s.parse::<Version>().expect("a version");
        let t = tags(&[
            "4.15.8-x86_64",
            "4.15.10-x86_64",
            "4.16.2-multi",
            "4.14.1-aarch64",
        ]);
        assert_eq!(
            nearest_tag(&t, &v("4.16.2"), Arch::X86_64).as_deref(),
            Some("4.16.2-multi")
        );
        assert_eq!(
            nearest_tag(&t, &v("4.15.9"), Arch::X86_64).as_deref(),
            Some("4.15.10-x86_64")
        );
        assert_eq!(
            nearest_tag(&t, &v("4.17.0"), Arch::X86_64).as_deref(),
            Some("4.15.10-x86_64")
        );
        assert_eq!(
            nearest_tag(&t, &v("4.14.1"), Arch::X86_64).as_deref(),
            Some("4.14.1-aarch64")
        );
        assert_eq!(nearest_tag(&t, &v("4.15.9"), Arch::Ppc64le), None);
    }
}
