//! The resolution cache under `--cache-dir`: what a payload resolved to, keyed by the payload
//! manifest's digest and the arch (content-addressed, so never stale); what a DTK holds, keyed by
//! its image digest; and, for `--offline` only, the digest a payload tag had when last seen.
//!
//! Every write goes to a temporary file in the same directory and is renamed into place, so
//! concurrent runs and a crash mid-write leave either the old entry or the new one. An entry
//! that cannot be parsed is a miss, never an error.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde::{Serialize, de::DeserializeOwned};

use super::dtk::DtkInfo;
use crate::domain::{Arch, Digest, ImageRef};
use crate::lock::LockedRelease;

/// Bumped when the meaning of an entry changes.
const LAYOUT: &str = "v1";

#[derive(Debug, Clone)]
pub struct Cache {
    root: Option<PathBuf>,
}

impl Cache {
    /// A cache in `dir` (created on first write).
    pub fn new(dir: impl Into<PathBuf>) -> Cache {
        Cache {
            root: Some(dir.into()),
        }
    }

    /// A cache that holds nothing (no cache directory on this system).
    pub fn disabled() -> Cache {
        Cache { root: None }
    }

    /// `--cache-dir`, else the user cache directory's `driver-matrix/`.
    pub fn default_dir() -> Option<PathBuf> {
        dirs::cache_dir().map(|d| d.join("driver-matrix"))
    }

    fn path(&self, kind: &str, key: &str) -> Option<PathBuf> {
        self.root
            .as_ref()
            .map(|r| r.join(LAYOUT).join(kind).join(format!("{key}.json")))
    }

    pub fn release(&self, payload: &Digest, arch: Arch) -> Option<LockedRelease> {
        read(&self.path("releases", &format!("{}-{arch}", payload.hex()))?)
    }

    pub fn put_release(&self, payload: &Digest, r: &LockedRelease) {
        if let Some(p) = self.path("releases", &format!("{}-{}", payload.hex(), r.arch)) {
            write(&p, r);
        }
    }

    pub fn dtk(&self, image: &Digest) -> Option<DtkInfo> {
        read(&self.path("dtk", image.hex())?)
    }

    pub fn put_dtk(&self, image: &Digest, info: &DtkInfo) {
        if let Some(p) = self.path("dtk", image.hex()) {
            write(&p, info);
        }
    }

    /// The digest `tag_ref` had when last resolved online.
    pub fn tag(&self, tag_ref: &ImageRef) -> Option<Digest> {
        let key = Digest::sha256(tag_ref.to_string().as_bytes());
        read::<Digest>(&self.path("tags", key.hex())?)
    }

    pub fn put_tag(&self, tag_ref: &ImageRef, digest: &Digest) {
        let key = Digest::sha256(tag_ref.to_string().as_bytes());
        if let Some(p) = self.path("tags", key.hex()) {
            write(&p, digest);
        }
    }
}

fn read<T: DeserializeOwned>(path: &Path) -> Option<T> {
    let bytes = std::fs::read(path).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Best effort: a cache that cannot be written only costs time on the next run.
fn write<T: Serialize>(path: &Path, value: &T) {
    let _ = try_write(path, value);
}

fn try_write<T: Serialize>(path: &Path, value: &T) -> std::io::Result<()> {
    let dir = path.parent().expect("cache paths have a parent");
    std::fs::create_dir_all(dir)?;
    let mut tmp = tempfile::Builder::new().prefix(".tmp.").tempfile_in(dir)?;
    serde_json::to_writer(&mut tmp, value)?;
    tmp.flush()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_treats_garbage_as_a_miss() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(dir.path());
        let d = Digest::sha256(b"payload");
        let info = DtkInfo {
            kernel: "5.14.0-1.el9.x86_64".parse().unwrap(),
            rt_kernel: None,
            rhel: "9.2".into(),
        };
        assert!(cache.dtk(&d).is_none());
        cache.put_dtk(&d, &info);
        assert_eq!(cache.dtk(&d), Some(info));
        let p = cache.path("dtk", d.hex()).unwrap();
        std::fs::write(&p, b"{ truncated").unwrap();
        assert!(cache.dtk(&d).is_none());
        assert!(Cache::disabled().dtk(&d).is_none());
    }
}
