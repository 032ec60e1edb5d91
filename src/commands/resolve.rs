//! `driver-matrix resolve [--locked]`: every release of the matrix (exact versions, and channels
//! expanded through the update graph) resolved to payload, DTK and kernel, written to the
//! `[[release]]` part of the lock. `plan` and `build` resolve through [`resolve_matrix`] too.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{IsTerminal, Write as _};
use std::sync::Mutex;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::Context;
use crate::cli::ResolveArgs;
use crate::domain::{Arch, ImageRef, Version};
use crate::error::{Error, Result};
use crate::lock::{self, Lock, LockedRelease};
use crate::matrix::Matrix;
use crate::plan;
use crate::registry::{Client, ClientOptions};
use crate::release::{Cache, Event, Progress, Resolver, Target, graph};

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
    /// How many came from the registry (the rest from the cache or, offline, the lock).
    pub fetched: usize,
}

/// A registry client configured from the matrix (mirrors, insecure hosts) and `--authfile`.
pub fn client(ctx: &Context, matrix: &Matrix) -> Result<Client> {
    Ok(Client::new(ClientOptions {
        registries: matrix.registries.clone(),
        authfile: ctx.global.authfile.clone(),
        ..ClientOptions::default()
    })?)
}

/// The cache of `--cache-dir`, else of the user cache directory.
pub fn cache(ctx: &Context) -> Cache {
    match ctx.global.cache_dir.clone().or_else(Cache::default_dir) {
        Some(dir) => Cache::new(dir),
        None => Cache::disabled(),
    }
}

pub fn run(ctx: &Context, args: &ResolveArgs) -> Result<i32> {
    let matrix = ctx.matrix()?;
    let old = ctx.lock()?;
    let res = resolve_matrix(ctx, &matrix, &old)?;
    let mut new = old.clone();
    new.releases = res.releases.clone();
    new.canonicalize();
    let path = ctx.lock_path();
    let changes = describe_changes(&old, &new);
    if args.locked {
        let current = std::fs::read_to_string(&path).unwrap_or_default();
        if lock::render(&new) != current {
            return Err(Error::Outdated {
                message: format!(
                    "lockfile `{}` is out of date: {}",
                    path.display(),
                    if changes.is_empty() {
                        "its formatting differs".to_string()
                    } else {
                        changes.join(", ")
                    }
                ),
            });
        }
        return Ok(0);
    }
    let written = lock::write_if_changed(&path, &new)?;
    if !ctx.global.quiet {
        let mut err = std::io::stderr().lock();
        for c in &changes {
            let _ = writeln!(err, "  {c}");
        }
        let _ = writeln!(
            err,
            "resolved {} releases ({} from the registry); `{}` {}",
            res.releases.len(),
            res.fetched,
            path.display(),
            if written { "updated" } else { "unchanged" }
        );
    }
    Ok(0)
}

/// `added 4.16.3 (x86_64)`-style lines for what differs between two locks' releases.
fn describe_changes(old: &Lock, new: &Lock) -> Vec<String> {
    let key = |r: &LockedRelease| (r.version.clone(), r.arch);
    let before: BTreeMap<_, _> = old.releases.iter().map(|r| (key(r), r)).collect();
    let after: BTreeMap<_, _> = new.releases.iter().map(|r| (key(r), r)).collect();
    let keys: BTreeSet<_> = before.keys().chain(after.keys()).cloned().collect();
    keys.into_iter()
        .filter_map(|k| {
            let what = match (before.get(&k), after.get(&k)) {
                (None, Some(_)) => "added",
                (Some(_), None) => "removed",
                (Some(a), Some(b)) if a != b => "changed",
                _ => return None,
            };
            Some(format!("{what} {} ({})", k.0, k.1))
        })
        .collect()
}

/// Resolves the matrix's releases: online through the update graph and the registry (the
/// cache saving what it can), or with `--offline` from the lock and the cache only.
pub fn resolve_matrix(ctx: &Context, matrix: &Matrix, lock: &Lock) -> Result<Resolution> {
    let cache = cache(ctx);
    let client = if ctx.global.offline {
        None
    } else {
        Some(client(ctx, matrix)?)
    };
    let (channels, from_graph) = match &client {
        None => (plan::channels_from_lock(matrix, lock), BTreeMap::new()),
        Some(c) => expand_channels(c, matrix)?,
    };
    let versions = plan::target_versions(matrix, &channels);
    let repo = &matrix.openshift.payload_repo;
    let mut targets = Vec::new();
    for version in &versions {
        for &arch in &matrix.openshift.arches {
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
    let reporter = Reporter::new(ctx.global.quiet);
    let resolver = Resolver {
        client: client.as_ref(),
        cache: &cache,
        jobs: JOBS,
    };
    let releases = resolver.resolve(&targets, lock, &reporter)?;
    let fetched = *reporter.fetched.lock().expect("no reporter panics");
    if ctx.global.verbose > 0
        && let Some(c) = &client
    {
        let s = c.stats();
        eprintln!(
            "registry: {} requests, {} bytes received",
            s.requests, s.bytes
        );
    }
    Ok(Resolution {
        channels,
        versions,
        releases,
        fetched,
    })
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

/// Progress on stderr: a bar on a terminal, a line per release read from the registry
/// elsewhere, nothing under `-q`.
struct Reporter {
    bar: Option<ProgressBar>,
    plain: bool,
    fetched: Mutex<usize>,
}

impl Reporter {
    fn new(quiet: bool) -> Reporter {
        let tty = std::io::stderr().is_terminal();
        let bar = (!quiet && tty).then(|| {
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template("{spinner} resolving releases {pos}/{len} {msg}")
                    .expect("a valid template"),
            );
            bar
        });
        Reporter {
            bar,
            plain: !quiet && !tty,
            fetched: Mutex::new(0),
        }
    }
}

impl Progress for Reporter {
    fn start(&self, total: usize) {
        if let Some(b) = &self.bar {
            b.set_length(total as u64);
        }
    }

    fn done(&self, t: &Target, event: Event) {
        if event == Event::Fetched {
            *self.fetched.lock().expect("no reporter panics") += 1;
        }
        if let Some(b) = &self.bar {
            b.set_message(format!("{} ({})", t.version, t.arch));
            b.inc(1);
        } else if self.plain && event == Event::Fetched {
            eprintln!("resolved {} ({})", t.version, t.arch);
        }
    }

    fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}
