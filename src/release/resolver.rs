//! Resolving many releases: cache first, then payload → DTK, on a few worker threads; results
//! come back in target order whatever order the workers finish in.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use super::{Cache, Fault, ReleaseError, dtk, payload};
use crate::domain::{Arch, ImageRef, Version};
use crate::lock::{Lock, LockedRelease};
use crate::registry::Client;

/// One release to resolve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub version: Version,
    pub arch: Arch,
    /// The payload as the source names it: `<payload-repo>:<version>-<arch>` or, from the
    /// graph, `...@sha256:...`.
    pub payload: ImageRef,
}

/// What happened to one target, for a progress display.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// Found in the lock (offline) or the cache.
    Cached,
    /// Read from the registry.
    Fetched,
}

/// Receives progress from the worker threads.
pub trait Progress: Sync {
    fn start(&self, _total: usize) {}
    fn done(&self, _target: &Target, _event: Event) {}
    fn finish(&self) {}
}

/// No progress display.
impl Progress for () {}

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
        progress: &dyn Progress,
    ) -> Result<Vec<LockedRelease>, ReleaseError> {
        progress.start(targets.len());
        let next = AtomicUsize::new(0);
        let stop = AtomicBool::new(false);
        let results: Mutex<Vec<Option<Result<LockedRelease, ReleaseError>>>> =
            Mutex::new((0..targets.len()).map(|_| None).collect());
        let workers = self.jobs.clamp(1, targets.len().max(1));
        std::thread::scope(|s| {
            for _ in 0..workers {
                s.spawn(|| {
                    while !stop.load(Ordering::Relaxed) {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(t) = targets.get(i) else { break };
                        let r = self.one(t, lock);
                        match &r {
                            Ok((_, ev)) => progress.done(t, *ev),
                            Err(_) => stop.store(true, Ordering::Relaxed),
                        }
                        results.lock().expect("no worker panics holding the lock")[i] =
                            Some(r.map(|(r, _)| r));
                    }
                });
            }
        });
        progress.finish();
        let results = results.into_inner().expect("the workers are done");
        let mut out = Vec::with_capacity(targets.len());
        // Targets are handed out in order, so every target before a failed one has a result.
        for r in results.into_iter().flatten() {
            out.push(r?);
        }
        Ok(out)
    }

    fn one(&self, t: &Target, lock: &Lock) -> Result<(LockedRelease, Event), ReleaseError> {
        let Some(client) = self.client else {
            return self.offline(t, lock).map(|r| (r, Event::Cached));
        };
        let fault = |f: Fault| ReleaseError::from_fault(&t.version, t.arch, &t.payload, f);
        let digest = match t.payload.digest() {
            Some(d) => d.clone(),
            None => client
                .head_manifest(&t.payload)
                .map_err(|e| fault(e.into()))?
                .ok_or_else(|| {
                    fault(Fault::Registry(crate::registry::RegistryError::NotFound {
                        reference: t.payload.to_string(),
                        tried: String::new(),
                        said: "the registry has no such tag".into(),
                    }))
                })?,
        };
        if t.payload.digest().is_none() {
            self.cache.put_tag(&t.payload, &digest);
        }
        if let Some(hit) = self.cache.release(&digest, t.arch)
            && hit.version == t.version
        {
            return Ok((hit, Event::Cached));
        }
        let pinned = t.payload.with_digest(digest.clone());
        let fault = |f: Fault| ReleaseError::from_fault(&t.version, t.arch, &pinned, f);
        let image = client
            .manifest(&pinned, t.arch)
            .map_err(|e| fault(e.into()))?;
        let info = payload::read(client, &pinned, &image, &t.version, t.arch).map_err(fault)?;
        let dtk_image = client
            .manifest(&info.dtk, t.arch)
            .map_err(|e| fault(e.into()))?;
        let dtk_ref = dtk_image.pinned(&info.dtk);
        let dtk_info = match self.cache.dtk(&dtk_image.image_digest) {
            Some(hit) => hit,
            None => {
                let fault = |f: Fault| ReleaseError::from_fault(&t.version, t.arch, &dtk_ref, f);
                let read = dtk::read(client, &dtk_ref, &dtk_image).map_err(fault)?;
                self.cache.put_dtk(&dtk_image.image_digest, &read);
                read
            }
        };
        let release = LockedRelease {
            version: t.version.clone(),
            arch: t.arch,
            payload: pinned,
            dtk: dtk_ref,
            kernel: dtk_info.kernel,
            rt_kernel: dtk_info.rt_kernel,
            rhel: dtk_info.rhel,
            machine_os: info.machine_os,
        };
        self.cache.put_release(&digest, &release);
        Ok((release, Event::Fetched))
    }

    /// The lock's entry, else the cache's by the tag's last known digest.
    fn offline(&self, t: &Target, lock: &Lock) -> Result<LockedRelease, ReleaseError> {
        if let Some(r) = lock.release(&t.version, t.arch) {
            return Ok(r.clone());
        }
        let digest = t
            .payload
            .digest()
            .cloned()
            .or_else(|| self.cache.tag(&t.payload));
        digest
            .and_then(|d| self.cache.release(&d, t.arch))
            .filter(|r| r.version == t.version)
            .ok_or_else(|| ReleaseError::Offline {
                release: format!("{} ({})", t.version, t.arch),
            })
    }
}
