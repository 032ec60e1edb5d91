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
use crate::release::{Resolver, Target, graph};

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
        let releases = resolver.resolve(&targets, &self.lock, progress)?;
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
    releases
        .iter()
        .filter_map(|r| {
            let node = r.node_kernel_mismatch()?;
            Some(
                crate::matrix::Problem::warning(format!(
                    "release {}: its Driver Toolkit carries kernel `{}`, but its nodes boot `{node}`",
                    r.label(),
                    r.kernel
                ))
                .help(
                    "modules built on this DTK will not load on the release's nodes; build for another release of the same kernel, or wait for a z-stream whose DTK matches",
                ),
            )
        })
        .collect()
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
            let nodes = graph::channel(client, &matrix.openshift.graph_url, &ch.name, arch)?;
            let own: BTreeSet<Version> = nodes
                .iter()
                .filter(|n| n.version.minor_stream() == ch.minor)
                .map(|n| n.version.clone())
                .collect();
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
