//! Resolving many releases: cache first, then payload → DTK, on a few workers
//! ([`crate::parallel`]); results come back in target order whatever order they finish in.
//! The cache gains entries only from a release that resolved, and only verified facts (see
//! [`super::cache`]).

use super::{
    Cache, DtkEntry, Fault, PayloadEntry, ReleaseError, StreamEntry, Verified, dtk, os, payload,
};
use crate::domain::{Arch, Digest, ImageRef, Kernel, Version};
use crate::lock::{Lock, LockedRelease};
use crate::parallel::Next;
use crate::progress::{Event as ProgressEvent, Reporter};

/// Where a release came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Event {
    /// Found in the lock (offline) or the cache.
    Cached,
    /// Read from the registry.
    Fetched,
}
use crate::registry::{Client, ImageManifest};

/// The lock's releases by (version, arch) ([`Lock::release_index`]).
type Locked<'l> = std::collections::HashMap<(&'l Version, Arch), Vec<&'l LockedRelease>>;

/// One release to resolve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub version: Version,
    pub arch: Arch,
    /// The payload as the source names it: `<payload-repo>:<version>-<arch>` or, from the
    /// graph, `...@sha256:...`.
    pub payload: ImageRef,
}

pub struct Resolver<'a> {
    /// `None` resolves offline: lock and cache only.
    pub client: Option<&'a Client>,
    pub cache: &'a Cache,
    /// Worker threads.
    pub jobs: usize,
}

impl Resolver<'_> {
    /// Resolves every target; the result is in target order. Stops early at the first
    /// failure and returns the failure of the earliest target that failed.
    pub fn resolve(
        &self,
        targets: &[Target],
        lock: &Lock,
        progress: &dyn Reporter,
    ) -> Result<Vec<LockedRelease>, ReleaseError> {
        progress.event(&ProgressEvent::Resolving {
            total: targets.len(),
        });
        let locked = lock.release_index();
        // Offline, every answer is in memory or one small file away: threads cost more than
        // they save.
        let jobs = if self.client.is_some() { self.jobs } else { 1 };
        let results = crate::parallel::run(targets, jobs, |_, t| {
            let r = self.resolve_release(t, &locked);
            let next = match &r {
                Ok((_, ev)) => {
                    progress.event(&ProgressEvent::Resolved {
                        version: &t.version,
                        arch: t.arch,
                        fetched: *ev == Event::Fetched,
                    });
                    Next::Continue
                }
                Err(_) => Next::Stop,
            };
            (r.map(|(r, _)| r), next)
        });
        progress.event(&ProgressEvent::ResolveEnd);
        let mut out = Vec::with_capacity(targets.len());
        // Targets are taken in order, so every target before a failed one has a result.
        for r in results.into_iter().flatten() {
            out.extend(r?);
        }
        Ok(out)
    }

    /// Every stream of one release (the payload's default stream first).
    fn resolve_release(
        &self,
        t: &Target,
        lock: &Locked<'_>,
    ) -> Result<(Vec<LockedRelease>, Event), ReleaseError> {
        let Some(client) = self.client else {
            return self.offline(t, lock).map(|r| (r, Event::Cached));
        };
        let digest = self.payload_digest(client, t)?;
        let pinned = t.payload.with_digest(digest.clone());
        let cached = self
            .cache
            .payload(&digest, t.arch)
            .filter(|e| e.version == t.version);
        if let Some(entry) = &cached
            && let Some(infos) = self.cache.dtks_of(entry)
        {
            return Ok((entry.locked_all(&pinned, &infos), Event::Cached));
        }
        // A cached payload whose DTK kernel was confirmed by the nodes' (never cached): only
        // the DTKs are read again.
        let (entry, images) = match cached {
            Some(entry) => (entry, Vec::new()),
            None => self.read_payload(client, t, &digest, &pinned)?,
        };
        let mut infos = Vec::new();
        let nodes = entry.nodes();
        for (i, dtk_ref) in entry.dtks().into_iter().enumerate() {
            let node = nodes.get(i).copied().flatten();
            infos.push(self.dtk_info(client, t, &pinned, dtk_ref, images.get(i), node)?);
        }
        // Written only once the whole release resolved, so a failed run caches nothing.
        self.cache.put_payload(&entry);
        Ok((entry.locked_all(&pinned, &infos), Event::Fetched))
    }

    /// What the DTK `dtk_ref` (its per-arch image by digest; `image` its manifest when already
    /// fetched) says: from the cache, else its release file, confirmed by the stream's nodes'
    /// kernel `node` or read whole ([`dtk::read`]).
    fn dtk_info(
        &self,
        client: &Client,
        t: &Target,
        pinned: &ImageRef,
        dtk_ref: &ImageRef,
        image: Option<&ImageManifest>,
        node: Option<&Kernel>,
    ) -> Result<dtk::DtkInfo, ReleaseError> {
        if let Some(hit) = dtk_ref.digest().and_then(|d| self.cache.dtk(d)) {
            return Ok(hit.info);
        }
        let dtk_image = match image {
            Some(i) => i.clone(),
            None => client
                .manifest(dtk_ref, t.arch)
                .map_err(|e| ReleaseError::from_fault(&t.version, t.arch, pinned, e.into()))?,
        };
        let fault = |f: Fault| ReleaseError::from_fault(&t.version, t.arch, dtk_ref, f);
        let read = dtk::read(client, dtk_ref, &dtk_image, node).map_err(fault)?;
        if read.verified {
            self.cache.put_dtk(&DtkEntry {
                image: dtk_image.image_digest.clone(),
                info: read.info.clone(),
                verified: Verified::read_whole(read.layer),
            });
        }
        Ok(read.info)
    }

    /// The digest the target's payload names: its own, else the tag's (one `HEAD`).
    fn payload_digest(&self, client: &Client, t: &Target) -> Result<Digest, ReleaseError> {
        if let Some(d) = t.payload.digest() {
            return Ok(d.clone());
        }
        let fault = |f: Fault| ReleaseError::from_fault(&t.version, t.arch, &t.payload, f);
        let digest = client
            .head_manifest(&t.payload)
            .map_err(|e| fault(e.into()))?
            .ok_or_else(|| {
                fault(Fault::Registry(crate::registry::RegistryError::NotFound {
                    reference: t.payload.to_string(),
                    tried: String::new(),
                    said: "the registry has no such tag".into(),
                }))
            })?;
        self.cache.put_tag(&t.payload, &digest);
        Ok(digest)
    }

    /// Reads the payload (its manifests layer verified whole), every stream's DTK manifest (in
    /// [`PayloadEntry::dtks`] order) and its nodes' kernel, all by digest.
    fn read_payload(
        &self,
        client: &Client,
        t: &Target,
        digest: &Digest,
        pinned: &ImageRef,
    ) -> Result<(PayloadEntry, Vec<ImageManifest>), ReleaseError> {
        let fault = |f: Fault| ReleaseError::from_fault(&t.version, t.arch, pinned, f);
        let image = client
            .manifest(pinned, t.arch)
            .map_err(|e| fault(e.into()))?;
        let read = payload::read(client, pinned, &image, &t.version, t.arch).map_err(fault)?;
        let dtk_image = client
            .manifest(&read.info.dtk, t.arch)
            .map_err(|e| fault(e.into()))?;
        let node = os::node_kernel(client, &read.info.os, t.arch).map_err(fault)?;
        let mut images = vec![dtk_image.clone()];
        let rhel10 = match &read.info.rhel10 {
            None => None,
            Some(s) => {
                let image = client
                    .manifest(&s.dtk, t.arch)
                    .map_err(|e| fault(e.into()))?;
                let node = os::node_kernel(client, &s.os, t.arch).map_err(fault)?;
                let entry = StreamEntry {
                    dtk: image.pinned(&s.dtk),
                    node,
                };
                images.push(image);
                Some(entry)
            }
        };
        let entry = PayloadEntry {
            payload: digest.clone(),
            arch: t.arch,
            version: t.version.clone(),
            dtk: dtk_image.pinned(&read.info.dtk),
            machine_os: read.info.machine_os,
            node,
            rhel10,
            verified: Verified::read_whole(read.layer),
        };
        Ok((entry, images))
    }

    /// The lock's entries, else the cache's by the tag's last known digest.
    fn offline(&self, t: &Target, lock: &Locked<'_>) -> Result<Vec<LockedRelease>, ReleaseError> {
        if let Some(locked) = lock.get(&(&t.version, t.arch)) {
            return Ok(locked.iter().map(|r| (*r).clone()).collect());
        }
        let digest = t
            .payload
            .digest()
            .cloned()
            .or_else(|| self.cache.tag(&t.payload));
        digest
            .and_then(|d| {
                self.cache
                    .release(&t.payload.with_digest(d), &t.version, t.arch)
            })
            .ok_or_else(|| ReleaseError::Offline {
                release: format!("{} ({})", t.version, t.arch),
            })
    }
}
