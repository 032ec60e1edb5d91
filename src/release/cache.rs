//! The resolution cache under `--cache-dir`. It holds only facts read from bytes that matched
//! their digest, each with a record of how it was verified:
//!
//! - `payloads/<payload digest>-<arch>.json`: what a payload names (its DTK's per-arch image by
//!   digest, the RHCOS version), read from the payload layer that holds `image-references`,
//!   that layer read whole; and the nodes' kernel, read from the OS image's config (fetched by
//!   the digest its manifest names, and hashed), with that config's digest;
//! - `dtk/<image digest>.json`: what a DTK's release file says, only when the layer holding it
//!   was read whole (a kernel read from a prefix and confirmed by the nodes' is never cached);
//! - `layers/<layer digest>.json`: the whiteouts (and the directories, files and links under
//!   or on the way to the modules directories) of an image layer that holds no kernel module,
//!   for the module reader of `build`, `collect` and `verify --deep` (images built on one DTK
//!   share its layers, which need not be read again on every run), only when the layer was
//!   read whole;
//! - `trees/<DTK image digest>-<kernel hash>.json`: the module names of a kernel's tree (its
//!   `modules.dep` and `modules.builtin` in the DTK's final filesystem), for `verify`'s
//!   dependency check, only when every layer of the DTK was read whole;
//! - `tags/`: for `--offline` only, the digest a payload tag had when last seen (a pointer,
//!   not a fact: the entries it leads to are checked like any other).
//!
//! Keys are content digests, so entries are never stale. Every write goes to a temporary file
//! in the same directory and is renamed into place, so concurrent runs and a crash mid-write
//! leave either the old entry or the new one. An entry that cannot be parsed, or that does not
//! check out (its contents name another key, a DTK by tag, no record of how it was verified),
//! is a miss, never an error.
//!
//! The cache directory is not trusted (it may be a CI cache restored from a run that a pull
//! request controlled): every entry is written inside an envelope carrying an HMAC-SHA256 of
//! its kind, its key and its exact bytes, under a key that does not live in the cache directory
//! ([`super::cache_key`]). An entry whose tag does not verify under this user's key is a miss,
//! so a forged or foreign entry is never believed; without a key, the cache holds nothing.

use std::io::Write as _;
use std::path::PathBuf;

use serde::{Deserialize, Serialize, de::DeserializeOwned};
use serde_json::value::RawValue;

use super::cache_key::CacheKey;

use super::dtk::DtkInfo;
use super::os::NodeKernel;
use super::payload::valid_machine_os;
use crate::domain::{Arch, Digest, ImageRef, Version};
use crate::lock::LockedRelease;

/// Bumped when the meaning of an entry changes. `v1` entries (facts read from unverified
/// prefixes of layers) are never read; `v2` entries do not say whether the nodes' kernel was
/// looked for, so they are not read either; `v3` entries carry no tag.
const LAYOUT: &str = "v4";

/// What a file of the cache holds: the entry's exact bytes and their tag.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Envelope<'a> {
    /// HMAC-SHA256 (hex) of the layout, kind, key and `entry`'s bytes ([`CacheKey::tag`]).
    mac: String,
    #[serde(borrow)]
    entry: &'a RawValue,
}

/// How a cached fact was verified.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Verified {
    /// The layer (or, for [`How::ImageConfig`], the config blob) the fact was read from.
    pub layer: Digest,
    pub how: How,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum How {
    /// The layer was read to its end and its sha256 equalled the digest that the image
    /// manifest (itself fetched by digest and hashed) names.
    ReadWhole,
    /// The image config blob was fetched by the digest that the image manifest (itself
    /// fetched by digest and hashed) names, and its sha256 equalled that digest.
    ImageConfig,
    /// Every layer of the image (its manifest fetched by the digest recorded, and hashed) was
    /// read to its end, and each one's sha256 equalled the digest the manifest names.
    ImageLayers,
}

impl Verified {
    pub fn read_whole(layer: Digest) -> Verified {
        Verified {
            layer,
            how: How::ReadWhole,
        }
    }

    pub fn image_config(config: Digest) -> Verified {
        Verified {
            layer: config,
            how: How::ImageConfig,
        }
    }
}

/// What one payload names for one arch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct PayloadEntry {
    /// The payload manifest (the list's, for a multi payload): the key.
    pub payload: Digest,
    pub arch: Arch,
    pub version: Version,
    /// The DTK's per-arch image, by digest.
    pub dtk: ImageRef,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machine_os: Option<String>,
    /// The nodes' kernel; absent when the payload names no OS image the registry holds, or its
    /// config carries no kernel label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<NodeKernel>,
    /// The RHEL 10 stream of a dual-stream release, from the same verified layer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rhel10: Option<StreamEntry>,
    pub verified: Verified,
}

/// All that an image layer without kernel modules changes for the module reader
/// ([`crate::verify`]): the paths it removes, the directories it makes opaque, and its
/// entries where modules are looked for (directories, links: `verify::scan::view`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct LayerEntry {
    pub removed: Vec<String>,
    pub opaque: Vec<String>,
    /// Required: an entry written before links were kept is a miss.
    pub nodes: Vec<LayerNode>,
    /// The layer itself, read whole: the key.
    pub verified: Verified,
}

/// One entry of a layer under (or on the way to) the modules directories, in layer order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct LayerNode {
    pub path: String,
    pub kind: NodeKind,
    /// A link's target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NodeKind {
    Dir,
    File,
    Symlink,
    Hardlink,
}

/// The module names of one kernel's tree, as its DTK's final filesystem lists them
/// (`modules.dep`, `modules.builtin`), for `verify`'s dependency check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct TreeEntry {
    /// The DTK's per-arch image manifest: the key, with the kernel.
    pub image: Digest,
    pub kernel: String,
    pub modules: Vec<String>,
    pub builtin: Vec<String>,
    pub verified: Verified,
}

/// A node OS stream beside the payload's default one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct StreamEntry {
    /// The stream's DTK's per-arch image, by digest.
    pub dtk: ImageRef,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<NodeKernel>,
}

impl PayloadEntry {
    /// Every stream's DTK, the default stream's first.
    pub fn dtks(&self) -> Vec<&ImageRef> {
        std::iter::once(&self.dtk)
            .chain(self.rhel10.as_ref().map(|s| &s.dtk))
            .collect()
    }

    /// Every stream's nodes' kernel, in [`Self::dtks`] order.
    pub fn nodes(&self) -> Vec<Option<&crate::domain::Kernel>> {
        std::iter::once(self.node.as_ref())
            .chain(self.rhel10.as_ref().map(|s| s.node.as_ref()))
            .map(|n| n.map(|n| &n.kernel))
            .collect()
    }

    /// The lock entries for this payload, one per stream in [`Self::dtks`] order, given each
    /// stream's DTK facts in that order.
    pub fn locked_all(&self, payload: &ImageRef, dtks: &[DtkInfo]) -> Vec<LockedRelease> {
        let mut out = Vec::new();
        if let Some(d) = dtks.first() {
            out.push(self.locked(payload.clone(), d));
        }
        if let (Some(s), Some(d)) = (&self.rhel10, dtks.get(1)) {
            let mut r = self.locked(payload.clone(), d);
            r.stream = Some(crate::lock::STREAM_RHEL10.to_string());
            r.dtk = s.dtk.clone();
            r.node_kernel = s.node.as_ref().map(|n| n.kernel.clone());
            r.node_rt_kernel = s.node.as_ref().and_then(|n| n.rt_kernel.clone());
            out.push(r);
        }
        out
    }

    /// The lock entry for this payload's default stream, named as `payload` (by digest)
    /// names it.
    pub fn locked(&self, payload: ImageRef, dtk: &DtkInfo) -> LockedRelease {
        LockedRelease {
            version: self.version.clone(),
            arch: self.arch,
            stream: None,
            payload,
            dtk: self.dtk.clone(),
            kernel: dtk.kernel.clone(),
            rt_kernel: dtk.rt_kernel.clone(),
            rhel: dtk.rhel.clone(),
            machine_os: self.machine_os.clone(),
            node_kernel: self.node.as_ref().map(|n| n.kernel.clone()),
            node_rt_kernel: self.node.as_ref().and_then(|n| n.rt_kernel.clone()),
        }
    }

    fn checks_out(&self, key: &Digest, arch: Arch) -> bool {
        &self.payload == key
            && self.arch == arch
            && self.dtk.digest().is_some()
            && self.machine_os.as_deref().is_none_or(valid_machine_os)
            && self
                .node
                .as_ref()
                .is_none_or(|n| n.image.digest().is_some() && n.verified.how == How::ImageConfig)
    }
}

/// What one DTK image's release file says, verified.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct DtkEntry {
    /// The per-arch image manifest: the key.
    pub image: Digest,
    pub info: DtkInfo,
    pub verified: Verified,
}

#[derive(Debug, Clone)]
pub struct Cache {
    /// The directory and the key that authenticates its entries; `None`: a cache that holds
    /// nothing.
    root: Option<(PathBuf, CacheKey)>,
}

impl Cache {
    /// A cache in `dir` (created on first write), authenticated with this user's key
    /// ([`CacheKey::of_user`]); without one, a cache that holds nothing.
    pub fn new(dir: impl Into<PathBuf>) -> Cache {
        match CacheKey::of_user() {
            Some(key) => Cache::with_key(dir, key),
            None => Cache::disabled(),
        }
    }

    /// A cache in `dir` whose entries are authenticated with `key`.
    pub fn with_key(dir: impl Into<PathBuf>, key: CacheKey) -> Cache {
        Cache {
            root: Some((dir.into(), key)),
        }
    }

    /// A cache that holds nothing (no cache directory or key on this system).
    pub fn disabled() -> Cache {
        Cache { root: None }
    }

    /// `--cache-dir`, else the user cache directory's `driver-matrix/`.
    pub fn default_dir() -> Option<PathBuf> {
        dirs::cache_dir().map(|d| d.join("driver-matrix"))
    }

    /// Where the entry `kind/key` lives, and the parts its tag covers.
    fn slot<'a>(&'a self, kind: &'a str, key: &'a str) -> Option<Slot<'a>> {
        let (root, mac) = self.root.as_ref()?;
        Some(Slot {
            path: root.join(LAYOUT).join(kind).join(format!("{key}.json")),
            mac,
            kind,
            key,
        })
    }

    #[cfg(test)]
    fn path(&self, kind: &str, key: &str) -> Option<PathBuf> {
        self.slot(kind, key).map(|s| s.path)
    }

    fn payload_key(payload: &Digest, arch: Arch) -> String {
        format!("{}-{arch}", payload.hex())
    }

    pub fn payload(&self, payload: &Digest, arch: Arch) -> Option<PayloadEntry> {
        self.slot("payloads", &Self::payload_key(payload, arch))?
            .read::<PayloadEntry>()
            .filter(|e| e.checks_out(payload, arch))
    }

    pub fn put_payload(&self, e: &PayloadEntry) {
        if let Some(s) = self.slot("payloads", &Self::payload_key(&e.payload, e.arch)) {
            s.write(e);
        }
    }

    pub fn dtk(&self, image: &Digest) -> Option<DtkEntry> {
        self.slot("dtk", image.hex())?
            .read::<DtkEntry>()
            .filter(|e| &e.image == image)
    }

    pub fn put_dtk(&self, e: &DtkEntry) {
        if let Some(s) = self.slot("dtk", e.image.hex()) {
            s.write(e);
        }
    }

    /// The whole release `version` for `arch` from the cache alone, one entry per stream: its
    /// payload's entry and every stream's DTK's. `payload` names the payload by digest.
    pub fn release(
        &self,
        payload: &ImageRef,
        version: &Version,
        arch: Arch,
    ) -> Option<Vec<LockedRelease>> {
        let p = self
            .payload(payload.digest()?, arch)
            .filter(|p| &p.version == version)?;
        let dtks = self.dtks_of(&p)?;
        Some(p.locked_all(payload, &dtks))
    }

    /// The cached facts of every stream's DTK of `p`, or `None` when one is missing.
    pub fn dtks_of(&self, p: &PayloadEntry) -> Option<Vec<DtkInfo>> {
        p.dtks()
            .into_iter()
            .map(|d| Some(self.dtk(d.digest()?)?.info))
            .collect()
    }

    pub fn layer(&self, layer: &Digest) -> Option<LayerEntry> {
        self.slot("layers", layer.hex())?
            .read::<LayerEntry>()
            .filter(|e| e.verified == Verified::read_whole(layer.clone()))
    }

    /// Keeps the whiteouts and the entries where modules are looked for of `layer`, which the
    /// caller read whole and found free of modules.
    pub fn put_layer(
        &self,
        layer: &Digest,
        (removed, opaque, nodes): (Vec<String>, Vec<String>, Vec<LayerNode>),
    ) {
        if let Some(s) = self.slot("layers", layer.hex()) {
            let verified = Verified::read_whole(layer.clone());
            s.write(&LayerEntry {
                removed,
                opaque,
                nodes,
                verified,
            });
        }
    }

    fn tree_key(image: &Digest, kernel: &str) -> String {
        let k = Digest::sha256(kernel.as_bytes());
        format!("{}-{}", image.hex(), &k.hex()[..16])
    }

    /// The tree of `kernel` in DTK `image`, read whole by an earlier run.
    pub fn tree(&self, image: &Digest, kernel: &str) -> Option<TreeEntry> {
        let key = Self::tree_key(image, kernel);
        self.slot("trees", &key)?.read::<TreeEntry>().filter(|e| {
            &e.image == image
                && e.kernel == kernel
                && e.verified
                    == Verified {
                        layer: image.clone(),
                        how: How::ImageLayers,
                    }
        })
    }

    /// Keeps the tree of `kernel` in DTK `image`, whose layers the caller read whole.
    pub fn put_tree(
        &self,
        image: &Digest,
        kernel: &str,
        modules: Vec<String>,
        builtin: Vec<String>,
    ) {
        let key = Self::tree_key(image, kernel);
        if let Some(s) = self.slot("trees", &key) {
            let verified = Verified {
                layer: image.clone(),
                how: How::ImageLayers,
            };
            let entry = TreeEntry {
                image: image.clone(),
                kernel: kernel.to_string(),
                modules,
                builtin,
                verified,
            };
            s.write(&entry);
        }
    }

    /// The digest `tag_ref` had when last resolved online.
    pub fn tag(&self, tag_ref: &ImageRef) -> Option<Digest> {
        let key = Digest::sha256(tag_ref.to_string().as_bytes());
        self.slot("tags", key.hex())?.read::<Digest>()
    }

    pub fn put_tag(&self, tag_ref: &ImageRef, digest: &Digest) {
        let key = Digest::sha256(tag_ref.to_string().as_bytes());
        if let Some(s) = self.slot("tags", key.hex()) {
            s.write(digest);
        }
    }
}

/// One entry's file and what its tag covers.
struct Slot<'a> {
    path: PathBuf,
    mac: &'a CacheKey,
    kind: &'a str,
    key: &'a str,
}

impl Slot<'_> {
    fn parts<'b>(&'b self, entry: &'b [u8]) -> [&'b [u8]; 4] {
        [
            LAYOUT.as_bytes(),
            self.kind.as_bytes(),
            self.key.as_bytes(),
            entry,
        ]
    }

    /// The entry, if its file holds an envelope whose tag verifies under this cache's key.
    fn read<T: DeserializeOwned>(&self) -> Option<T> {
        let bytes = std::fs::read(&self.path).ok()?;
        let env: Envelope<'_> = serde_json::from_slice(&bytes).ok()?;
        let entry = env.entry.get().as_bytes();
        let tag = hex::decode(&env.mac).ok()?;
        if !self.mac.verifies(&self.parts(entry), &tag) {
            return None;
        }
        serde_json::from_slice(entry).ok()
    }

    /// Best effort: a cache that cannot be written only costs time on the next run.
    fn write<T: Serialize>(&self, value: &T) {
        let _ = self.try_write(value);
    }

    fn try_write<T: Serialize>(&self, value: &T) -> std::io::Result<()> {
        let entry = RawValue::from_string(serde_json::to_string(value)?)?;
        let mac = hex::encode(self.mac.tag(&self.parts(entry.get().as_bytes())));
        let env = Envelope { mac, entry: &entry };
        let dir = self.path.parent().expect("cache paths have a parent");
        std::fs::create_dir_all(dir)?;
        // Named by run, for the next run to remove if this one is killed (see `crate::runs`).
        let prefix = crate::runs::temp_prefix(crate::runs::CACHE_TEMP);
        let mut tmp = tempfile::Builder::new().prefix(&prefix).tempfile_in(dir)?;
        serde_json::to_writer(&mut tmp, &env)?;
        tmp.flush()?;
        tmp.persist(&self.path).map_err(|e| e.error)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const REPO: &str = "quay.io/openshift-release-dev/ocp-v4.0-art-dev";

    fn key() -> CacheKey {
        CacheKey::from_secret(b"test").unwrap()
    }

    fn dtk_entry(image: &Digest) -> DtkEntry {
        DtkEntry {
            image: image.clone(),
            info: DtkInfo {
                kernel: "5.14.0-1.el9.x86_64".parse().unwrap(),
                rt_kernel: None,
                rhel: "9.2".into(),
            },
            verified: Verified::read_whole(Digest::sha256(b"dtk layer")),
        }
    }

    fn payload_entry(payload: &Digest, dtk: &Digest) -> PayloadEntry {
        PayloadEntry {
            payload: payload.clone(),
            arch: Arch::X86_64,
            version: "4.14.12".parse().unwrap(),
            dtk: format!("{REPO}@{dtk}").parse().unwrap(),
            machine_os: Some("414.92.202402130420-0".into()),
            node: None,
            rhel10: None,
            verified: Verified::read_whole(Digest::sha256(b"payload layer")),
        }
    }

    #[test]
    fn round_trips_and_treats_garbage_as_a_miss() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::with_key(dir.path(), key());
        let d = Digest::sha256(b"dtk");
        assert!(cache.dtk(&d).is_none());
        cache.put_dtk(&dtk_entry(&d));
        assert_eq!(cache.dtk(&d), Some(dtk_entry(&d)));
        let p = cache.path("dtk", d.hex()).unwrap();
        std::fs::write(&p, b"{ truncated").unwrap();
        assert!(cache.dtk(&d).is_none());
        assert!(Cache::disabled().dtk(&d).is_none());
    }

    #[test]
    fn a_layer_entry_is_found_only_under_the_layer_it_names() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::with_key(dir.path(), key());
        let (a, b) = (Digest::sha256(b"layer a"), Digest::sha256(b"layer b"));
        let removed = vec!["opt/lib/modules/x/.wh.old.ko".to_string()];
        assert!(cache.layer(&a).is_none());
        cache.put_layer(&a, (removed.clone(), vec![], vec![]));
        let entry = cache.layer(&a).unwrap();
        assert_eq!(entry.removed, removed);
        assert_eq!(entry.verified, Verified::read_whole(a.clone()));
        // Written before links were kept (no `nodes`): a miss, read again.
        let mut old = serde_json::to_value(&entry).unwrap();
        old.as_object_mut().unwrap().remove("nodes");
        plant(&cache, "layers", a.hex(), &old);
        assert!(cache.layer(&a).is_none());
        cache.put_layer(&a, (removed.clone(), vec![], vec![]));
        // Copied under another layer's name: a miss.
        let from = cache.path("layers", a.hex()).unwrap();
        std::fs::copy(&from, cache.path("layers", b.hex()).unwrap()).unwrap();
        assert!(cache.layer(&b).is_none());
    }

    #[test]
    fn a_tree_is_found_only_under_its_image_and_kernel() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(dir.path());
        let (a, b) = (Digest::sha256(b"dtk a"), Digest::sha256(b"dtk b"));
        cache.put_tree(&a, "5.14.0", vec!["videodev".into()], vec![]);
        assert_eq!(cache.tree(&a, "5.14.0").unwrap().modules, ["videodev"]);
        assert!(cache.tree(&a, "5.14.1").is_none());
        let from = cache.path("trees", &Cache::tree_key(&a, "5.14.0")).unwrap();
        std::fs::copy(
            &from,
            cache.path("trees", &Cache::tree_key(&b, "5.14.0")).unwrap(),
        )
        .unwrap();
        assert!(cache.tree(&b, "5.14.0").is_none());
    }

    #[test]
    fn a_release_needs_both_entries() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::with_key(dir.path(), key());
        let (p, d) = (Digest::sha256(b"payload"), Digest::sha256(b"dtk"));
        let payload: ImageRef = format!("example.com/ocp-release@{p}").parse().unwrap();
        let v: Version = "4.14.12".parse().unwrap();
        cache.put_payload(&payload_entry(&p, &d));
        assert!(cache.release(&payload, &v, Arch::X86_64).is_none());
        cache.put_dtk(&dtk_entry(&d));
        let r = cache.release(&payload, &v, Arch::X86_64).unwrap().remove(0);
        assert_eq!(r.payload, payload);
        assert_eq!(r.kernel.as_str(), "5.14.0-1.el9.x86_64");
        assert!(
            cache
                .release(&payload, &"4.14.13".parse().unwrap(), Arch::X86_64)
                .is_none()
        );
        assert!(cache.release(&payload, &v, Arch::Aarch64).is_none());
    }

    /// Writes `json`, tagged with the cache's key, where the entry for `key` lives.
    fn plant(cache: &Cache, kind: &str, key: &str, json: &serde_json::Value) {
        cache.slot(kind, key).unwrap().try_write(json).unwrap();
    }

    #[test]
    fn entries_that_do_not_check_out_are_misses() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::with_key(dir.path(), key());
        let (p, other, d) = (
            Digest::sha256(b"payload"),
            Digest::sha256(b"other payload"),
            Digest::sha256(b"dtk"),
        );
        let key = Cache::payload_key(&p, Arch::X86_64);
        let good = serde_json::to_value(payload_entry(&p, &d)).unwrap();
        plant(&cache, "payloads", &key, &good);
        assert!(cache.payload(&p, Arch::X86_64).is_some(), "the control");
        // Another payload's entry under this key.
        let moved = serde_json::to_value(payload_entry(&other, &d)).unwrap();
        plant(&cache, "payloads", &key, &moved);
        assert!(cache.payload(&p, Arch::X86_64).is_none());
        // A DTK by tag.
        let mut by_tag = good.clone();
        by_tag["dtk"] = format!("{REPO}:latest").into();
        plant(&cache, "payloads", &key, &by_tag);
        assert!(cache.payload(&p, Arch::X86_64).is_none());
        // No record of how it was verified, or an unknown one.
        for verified in [
            serde_json::Value::Null,
            serde_json::json!({"layer": d.to_string(), "how": "prefix"}),
        ] {
            let mut v = serde_json::to_value(dtk_entry(&d)).unwrap();
            v["verified"] = verified;
            plant(&cache, "dtk", d.hex(), &v);
            assert!(cache.dtk(&d).is_none());
        }
        let mut bare = serde_json::to_value(dtk_entry(&d)).unwrap();
        bare.as_object_mut().unwrap().remove("verified");
        plant(&cache, "dtk", d.hex(), &bare);
        assert!(cache.dtk(&d).is_none());
        // A DTK entry whose contents name another image.
        let moved = serde_json::to_value(dtk_entry(&other)).unwrap();
        plant(&cache, "dtk", d.hex(), &moved);
        assert!(cache.dtk(&d).is_none());
    }
}

#[cfg(test)]
mod forged {
    use super::*;

    fn entry(layer: &Digest) -> LayerEntry {
        LayerEntry {
            removed: vec![],
            opaque: vec![],
            nodes: vec![],
            verified: Verified::read_whole(layer.clone()),
        }
    }

    #[test]
    fn entries_without_a_tag_of_this_key_are_misses() {
        let dir = tempfile::tempdir().unwrap();
        let ours = Cache::with_key(dir.path(), CacheKey::from_secret(b"ours").unwrap());
        let theirs = Cache::with_key(dir.path(), CacheKey::from_secret(b"theirs").unwrap());
        let (a, b) = (Digest::sha256(b"layer a"), Digest::sha256(b"layer b"));
        ours.put_layer(&a, (vec!["x/.wh.y.ko".into()], vec![], vec![]));
        assert!(ours.layer(&a).is_some(), "the control");
        // The same cache directory under another key: a miss.
        assert!(theirs.layer(&a).is_none());
        let path = ours.path("layers", a.hex()).unwrap();
        let json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        // The bare entry, well formed and named right, without an envelope.
        std::fs::write(&path, json["entry"].to_string()).unwrap();
        assert!(ours.layer(&a).is_none());
        // Another entry's bytes under this entry's tag.
        let mut swapped = json.clone();
        swapped["entry"]["removed"] = serde_json::json!([]);
        std::fs::write(&path, swapped.to_string()).unwrap();
        assert!(ours.layer(&a).is_none());
        // A tagged entry moved to another key (its contents rewritten to match): a miss.
        ours.put_layer(&a, (vec![], vec![], vec![]));
        let mut moved: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        moved["entry"] = serde_json::to_value(entry(&b)).unwrap();
        let to = ours.path("layers", b.hex()).unwrap();
        std::fs::write(&to, moved.to_string()).unwrap();
        assert!(ours.layer(&b).is_none());
        // With no key there is no cache.
        assert!(Cache::disabled().layer(&a).is_none());
    }
}
