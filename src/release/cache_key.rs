//! The key that authenticates the resolution cache ([`super::cache`]). It never lives in the
//! cache directory, so a cache directory restored from elsewhere (a CI cache that a pull
//! request could write) cannot vouch for itself: its entries are misses unless they were
//! written by a run that held the same key.
//!
//! Where the key comes from, first found wins:
//! - `DRIVER_MATRIX_CACHE_KEY`, when set and not empty: a secret given through the environment
//!   (a CI secret, so that a cache restored between jobs of one trusted pipeline stays usable).
//!   Its SHA-256 is the key.
//! - `<config dir>/driver-matrix/cache.key` (`~/.config/driver-matrix/cache.key` on Linux):
//!   32 random bytes in hex, created `0600` on first use. A key file that is not a regular
//!   file of the current user, readable or writable by anyone else, or not 64 hex digits is
//!   not used.
//!
//! Without a key, the cache holds nothing (every read a miss, no write): slower, never wrong.

use std::io::Write as _;
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use hmac::{Hmac, Mac as _};
use sha2::{Digest as _, Sha256};

/// The environment variable holding the cache secret in CI.
pub const KEY_ENV: &str = "DRIVER_MATRIX_CACHE_KEY";

/// An HMAC-SHA256 key; its bytes never leave this module.
#[derive(Clone)]
pub struct CacheKey([u8; 32]);

impl std::fmt::Debug for CacheKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CacheKey(..)")
    }
}

impl CacheKey {
    /// The key of this user: the environment's secret, else the key file (created if absent).
    /// An empty variable counts as unset (CI expands a missing secret to nothing).
    pub fn of_user() -> Option<CacheKey> {
        if let Some(secret) = std::env::var_os(KEY_ENV).filter(|s| !s.is_empty()) {
            return CacheKey::from_secret(secret.as_encoded_bytes());
        }
        CacheKey::from_file(&Self::default_file()?)
    }

    /// `<config dir>/driver-matrix/cache.key`.
    pub fn default_file() -> Option<PathBuf> {
        dirs::config_dir().map(|d| d.join("driver-matrix").join("cache.key"))
    }

    /// The key derived from a secret; an empty secret is no key.
    pub fn from_secret(secret: &[u8]) -> Option<CacheKey> {
        (!secret.is_empty()).then(|| CacheKey(Sha256::digest(secret).into()))
    }

    /// The key in `path`, created with fresh random bytes if there is none. `None` when it
    /// cannot be read or made, or is not safe to use.
    pub fn from_file(path: &Path) -> Option<CacheKey> {
        if let Some(k) = read_file(path) {
            return Some(k);
        }
        // Created whole under another name, then linked into place unless another run was
        // first: either way every run reads the same complete key.
        let _ = create_file(path);
        read_file(path)
    }

    /// The tag of `parts`, each length-prefixed so that no two lists of parts collide.
    pub fn tag(&self, parts: &[&[u8]]) -> [u8; 32] {
        self.mac(parts).finalize().into_bytes().into()
    }

    /// Whether `tag` is the tag of `parts` (compared in constant time).
    pub fn verifies(&self, parts: &[&[u8]], tag: &[u8]) -> bool {
        self.mac(parts).verify_slice(tag).is_ok()
    }

    fn mac(&self, parts: &[&[u8]]) -> Hmac<Sha256> {
        let mut mac = <Hmac<Sha256>>::new_from_slice(&self.0).expect("HMAC takes keys of any size");
        for p in parts {
            mac.update(&(p.len() as u64).to_be_bytes());
            mac.update(p);
        }
        mac
    }
}

fn read_file(path: &Path) -> Option<CacheKey> {
    let meta = std::fs::symlink_metadata(path).ok()?;
    // SAFETY: geteuid has no preconditions and cannot fail.
    let uid = unsafe { libc::geteuid() };
    if !meta.file_type().is_file() || meta.uid() != uid || meta.mode() & 0o077 != 0 {
        return None;
    }
    let text = std::fs::read_to_string(path).ok()?;
    let bytes = hex::decode(text.trim()).ok()?;
    Some(CacheKey(bytes.try_into().ok()?))
}

fn create_file(path: &Path) -> std::io::Result<()> {
    let dir = path.parent().ok_or(std::io::ErrorKind::InvalidInput)?;
    std::fs::create_dir_all(dir)?;
    let mut key = [0u8; 32];
    getrandom::fill(&mut key).map_err(|e| std::io::Error::other(e.to_string()))?;
    // `tempfile` creates its files 0600.
    let mut tmp = tempfile::Builder::new()
        .prefix(".cache.key")
        .tempfile_in(dir)?;
    tmp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(0o600))?;
    writeln!(tmp, "{}", hex::encode(key))?;
    tmp.as_file().sync_all()?;
    tmp.persist_noclobber(path).map_err(|e| e.error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_file_is_made_once_private_and_then_reused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cfg/driver-matrix/cache.key");
        let a = CacheKey::from_file(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().mode();
        assert_eq!(mode & 0o777, 0o600);
        let b = CacheKey::from_file(&path).unwrap();
        let parts: [&[u8]; 2] = [b"kind", b"entry"];
        assert!(b.verifies(&parts, &a.tag(&parts)));
        // Another user's key (another file) does not verify this one's tags.
        let other = CacheKey::from_file(&dir.path().join("other.key")).unwrap();
        assert!(!other.verifies(&parts, &a.tag(&parts)));
    }

    #[test]
    fn a_key_file_others_can_read_or_that_is_garbage_is_not_used() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cache.key");
        CacheKey::from_file(&path).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(CacheKey::from_file(&path).is_none());
        std::fs::write(&path, "not hex\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(CacheKey::from_file(&path).is_none());
        let link = dir.path().join("link.key");
        std::os::unix::fs::symlink(&path, &link).unwrap();
        assert!(CacheKey::from_file(&link).is_none());
    }

    #[test]
    fn parts_are_not_confused_and_secrets_make_keys() {
        let k = CacheKey::from_secret(b"ci secret").unwrap();
        assert!(CacheKey::from_secret(b"").is_none());
        let tag = k.tag(&[b"ab", b"c"]);
        assert!(k.verifies(&[b"ab", b"c"], &tag));
        assert!(!k.verifies(&[b"a", b"bc"], &tag));
        assert!(
            !CacheKey::from_secret(b"other")
                .unwrap()
                .verifies(&[b"ab", b"c"], &tag)
        );
    }
}
