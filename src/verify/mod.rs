//! `verify`: every locked image still exists at its digest; with `--deep`, its layers hold each
//! module of the driver under `lib/modules/<kernel>/`, built for that kernel (`vermagic`), and
//! for a driver with `signed = true` each of them carries a signature (by the driver's
//! `signing-cert`, when it names one).

pub mod coverage;
mod depends;
pub mod modinfo;
pub mod scan;
pub mod signature;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::domain::{Digest, Kernel};
pub use crate::domain::{Expect, Signing};
use crate::lock::LockedImage;
use crate::registry::{Client, RegistryError};
use crate::release::Cache;
use crate::text::escape_line;
use scan::{ModuleFile, Scanner};
use signature::{Signature, SignatureError};

/// A module found where it belongs and built for the image's kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked {
    pub module: String,
    /// Its path in the image, without a leading `/`.
    pub path: String,
    pub vermagic: String,
    /// Its appended signature: `None` when it has none.
    pub signature: Option<Result<Signature, SignatureError>>,
}

/// Something `verify` found wrong (or worth a warning) with one locked image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    /// The registry no longer has the locked digest.
    Missing,
    /// The tag now points elsewhere (a warning: the lock pins the digest).
    TagMoved { now: String },
    /// The tag is gone (a warning).
    TagGone,
    /// A module of the driver is not in the image.
    ModuleMissing {
        module: String,
        /// Where a module of that name is, outside the kernel's directory.
        elsewhere: Vec<String>,
        /// The modules the kernel's directory does hold, by name.
        present: Vec<String>,
    },
    /// A module was built for another kernel.
    WrongKernel {
        module: String,
        path: String,
        vermagic: String,
    },
    /// A `.ko` that is not a readable module.
    Unreadable { path: String, why: String },
    /// A module without a signature, of a driver with `signed = true`.
    Unsigned { module: String, path: String },
    /// A module whose signature is unreadable, or is not one by the driver's certificate.
    BadSignature {
        module: String,
        path: String,
        /// Who the signature says signed it, when it could be read.
        signer: Option<String>,
        why: String,
    },
    /// The image holds no module at all for its kernel (driver without `modules`).
    NoModules,
    /// A module needs another that `modprobe -d /opt` will not find: neither in the image nor
    /// (through KMM's `host` link) in the kernel's own tree.
    DependencyMissing(depends::Missing),
    /// The registry failed while checking (or served a layer that cannot be read).
    Registry(RegistryFailure),
}

/// What failed while reading an image from the registry, with its cause kept whole.
#[derive(Debug, Clone)]
pub struct RegistryFailure {
    /// The layer being read, when it was one.
    pub layer: Option<String>,
    pub cause: std::sync::Arc<dyn std::error::Error + Send + Sync>,
}

impl RegistryFailure {
    fn new(layer: Option<String>, cause: impl std::error::Error + Send + Sync + 'static) -> Self {
        RegistryFailure {
            layer,
            cause: std::sync::Arc::new(cause),
        }
    }
}

impl std::fmt::Display for RegistryFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.layer {
            Some(l) => write!(f, "reading layer {l}: {}", self.cause),
            None => write!(f, "{}", self.cause),
        }
    }
}

impl std::error::Error for RegistryFailure {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(self.cause.as_ref())
    }
}

/// Two failures are the same finding when they read the same.
impl PartialEq for RegistryFailure {
    fn eq(&self, other: &Self) -> bool {
        self.to_string() == other.to_string()
    }
}

impl Eq for RegistryFailure {}

impl Finding {
    pub fn is_error(&self) -> bool {
        !matches!(self, Finding::TagMoved { .. } | Finding::TagGone)
    }

    /// One line for a human; every value read from the registry or the image (paths, module
    /// names, `vermagic`, registry messages) has its control characters escaped.
    pub fn describe(&self) -> String {
        let e = |s: &str| escape_line(s).into_owned();
        match self {
            Finding::Missing => "the registry no longer has this digest".into(),
            Finding::TagMoved { now } => {
                format!(
                    "warning: the tag now points to {}; the lock pins the digest",
                    e(now)
                )
            }
            Finding::TagGone => {
                "warning: the tag no longer exists; the lock pins the digest".into()
            }
            Finding::ModuleMissing {
                module,
                elsewhere,
                present,
            } => module_missing(module, elsewhere, present),
            Finding::WrongKernel {
                module,
                path,
                vermagic,
            } => format!(
                "module `{}` (/{}) was built for `{}`",
                e(module),
                e(path),
                e(vermagic)
            ),
            Finding::Unreadable { path, why } => {
                format!("/{} is not a readable module: {}", e(path), e(why))
            }
            Finding::Unsigned { module, path } => format!(
                "module `{}` (/{}) is not signed, and the driver has `signed = true`",
                e(module),
                e(path)
            ),
            Finding::BadSignature {
                module,
                path,
                signer,
                why,
            } => {
                let by = signer
                    .as_ref()
                    .map_or(String::new(), |s| format!(", signed by {}", e(s)));
                format!("module `{}` (/{}){by}: {}", e(module), e(path), e(why))
            }
            Finding::NoModules => "the image holds no module under lib/modules/<kernel>/".into(),
            Finding::DependencyMissing(m) => m.describe(),
            Finding::Registry(f) => e(&f.to_string()),
        }
    }
}

/// Where a module the driver names is not: absent from its kernel's directory (naming what is
/// there), or found only elsewhere in the image.
fn module_missing(module: &str, elsewhere: &[String], present: &[String]) -> String {
    let e = |s: &str| escape_line(s).into_owned();
    if !elsewhere.is_empty() {
        let places: Vec<String> = elsewhere.iter().map(|p| e(p)).collect();
        return format!(
            "module `{}` is not under this kernel's directory; found at {}",
            e(module),
            places.join(", ")
        );
    }
    let found = if present.is_empty() {
        "no module".to_string()
    } else {
        let names: Vec<String> = present.iter().map(|m| format!("`{}`", e(m))).collect();
        names.join(", ")
    };
    format!(
        "module `{}` is not in the image (its kernel's directory holds {found})",
        e(module)
    )
}

/// The outcome for one image.
#[derive(Debug, Clone)]
pub struct ImageReport {
    pub image: LockedImage,
    /// Every module checked.
    pub checked: Vec<Checked>,
    pub findings: Vec<Finding>,
}

impl ImageReport {
    pub fn ok(&self) -> bool {
        !self.findings.iter().any(Finding::is_error)
    }
}

/// Checks the modules found in an image against the driver's `modules` and the kernel. With
/// no `modules` declared, every module in the kernel's directory is checked, and there must be
/// at least one.
pub fn check_modules(
    expected: &[String],
    kernel: &Kernel,
    found: &[ModuleFile],
) -> (Vec<Checked>, Vec<Finding>) {
    let mut findings = Vec::new();
    let mut checked = Vec::new();
    let in_dir: Vec<&ModuleFile> = found
        .iter()
        .filter(|f| f.kernel_dir == kernel.as_str())
        .collect();
    let wanted: Vec<String> = if expected.is_empty() {
        if in_dir.is_empty() {
            findings.push(Finding::NoModules);
        }
        in_dir.iter().map(|f| f.name.clone()).collect()
    } else {
        expected.iter().map(|m| m.replace('-', "_")).collect()
    };
    for module in wanted {
        let Some(file) = in_dir.iter().find(|f| f.name == module) else {
            let elsewhere = found
                .iter()
                .filter(|f| f.name == module)
                .map(|f| format!("/{}", f.path))
                .collect();
            let mut present: Vec<String> = in_dir.iter().map(|f| f.name.clone()).collect();
            present.sort();
            present.dedup();
            findings.push(Finding::ModuleMissing {
                module,
                elsewhere,
                present,
            });
            continue;
        };
        match &file.info {
            Ok(info) if info.kernel() == kernel.as_str() => checked.push(Checked {
                module,
                path: file.shown(),
                vermagic: info.vermagic.clone(),
                signature: file.signature.clone(),
            }),
            Ok(info) => findings.push(Finding::WrongKernel {
                module,
                path: file.shown(),
                vermagic: info.vermagic.clone(),
            }),
            Err(e) => findings.push(Finding::Unreadable {
                path: file.shown(),
                why: e.to_string(),
            }),
        }
    }
    (checked, findings)
}

/// What a driver's signing rule says about the modules checked: each must be signed, by the
/// driver's certificate when it names one.
pub fn check_signatures(signing: &Signing, checked: &[Checked]) -> Vec<Finding> {
    let mut findings = Vec::new();
    for c in checked {
        let bad = |signer: Option<&Signature>, why: String| Finding::BadSignature {
            module: c.module.clone(),
            path: c.path.clone(),
            signer: signer.map(describe_signer),
            why,
        };
        match (&c.signature, &signing.cert) {
            (None, _) => findings.push(Finding::Unsigned {
                module: c.module.clone(),
                path: c.path.clone(),
            }),
            (Some(Err(e)), _) => findings.push(bad(None, e.to_string())),
            (Some(Ok(sig)), Some(cert)) => {
                if let Err(e) = sig.check(cert) {
                    findings.push(bad(Some(sig), e.to_string()));
                }
            }
            (Some(Ok(_)), None) => {}
        }
    }
    findings
}

/// `` `CN` (key id AB:CD, sha256) ``, as `verify` prints a signer.
pub fn describe_signer(sig: &Signature) -> String {
    let who = if sig.signer.is_empty() {
        "a key".to_string()
    } else {
        format!("`{}`", sig.signer)
    };
    format!("{who} (key id {}, {})", sig.key_id, sig.hash)
}

fn registry_finding(e: RegistryError) -> Finding {
    Finding::Registry(RegistryFailure::new(None, e))
}

/// Verifies one image: its digest, its tag, and with `deep` its modules.
pub fn verify_image(
    client: &Client,
    cache: &Cache,
    image: &LockedImage,
    expect: &Expect,
    deep: bool,
) -> ImageReport {
    let mut report = ImageReport {
        image: image.clone(),
        checked: Vec::new(),
        findings: Vec::new(),
    };
    let pinned = image.pinned();
    match client.head_manifest(&pinned) {
        Ok(Some(_)) => {}
        Ok(None) => {
            report.findings.push(Finding::Missing);
            return report;
        }
        Err(e) => {
            report.findings.push(registry_finding(e));
            return report;
        }
    }
    match client.head_manifest(&image.image) {
        Ok(Some(d)) if d != image.digest => report
            .findings
            .push(Finding::TagMoved { now: d.to_string() }),
        Ok(Some(_)) => {}
        Ok(None) => report.findings.push(Finding::TagGone),
        Err(e) => report.findings.push(registry_finding(e)),
    }
    if !deep {
        return report;
    }
    let (checked, findings) = match client.manifest(&image.pinned(), image.arch) {
        Ok(manifest) => deep_check_expecting(client, cache, image, &manifest, expect),
        Err(e) => (Vec::new(), vec![registry_finding(e)]),
    };
    report.checked = checked;
    report.findings.extend(findings);
    report
}

/// Reads the image `image` pins (by digest) and checks its modules against its kernel: the
/// deep part of `verify`, and what `build` and `collect` ask of every image before it enters
/// the lock. Returns the modules checked and what was wrong.
pub fn deep_check(
    client: &Client,
    cache: &Cache,
    image: &LockedImage,
    modules: &[String],
) -> (Vec<Checked>, Vec<Finding>) {
    match client.manifest(&image.pinned(), image.arch) {
        Ok(manifest) => deep_check_manifest(client, cache, image, &manifest, modules),
        Err(e) => (Vec::new(), vec![registry_finding(e)]),
    }
}

/// [`deep_check`] of an image whose manifest the caller already read (by the image's digest).
pub fn deep_check_manifest(
    client: &Client,
    cache: &Cache,
    image: &LockedImage,
    manifest: &crate::registry::ImageManifest,
    modules: &[String],
) -> (Vec<Checked>, Vec<Finding>) {
    let expect = Expect {
        modules: modules.to_vec(),
        signing: None,
    };
    deep_check_expecting(client, cache, image, manifest, &expect)
}

/// [`deep_check_manifest`] with the driver's signing rule too.
pub fn deep_check_expecting(
    client: &Client,
    cache: &Cache,
    image: &LockedImage,
    manifest: &crate::registry::ImageManifest,
    expect: &Expect,
) -> (Vec<Checked>, Vec<Finding>) {
    let mut scanner = Scanner::default();
    if let Err(e) = apply_layers(client, cache, &image.pinned(), manifest, &mut scanner) {
        return (Vec::new(), vec![Finding::Registry(e)]);
    }
    let found = scanner.view().modules();
    let (checked, mut findings) = check_modules(&expect.modules, &image.kernel, &found);
    let needs = depends::Needs::of(&image.kernel, &found, &checked, scanner.view());
    findings.extend(needs.check(|| depends::in_tree(client, cache, image)));
    if let Some(signing) = &expect.signing {
        findings.extend(check_signatures(signing, &checked));
    }
    (checked, findings)
}

/// Applies the layers of `manifest` (an image of `pinned`'s repository) to `scanner`, each
/// read once per run (see [`layer_changes`]).
fn apply_layers(
    client: &Client,
    cache: &Cache,
    pinned: &crate::domain::ImageRef,
    manifest: &crate::registry::ImageManifest,
    scanner: &mut Scanner,
) -> Result<(), RegistryFailure> {
    for layer in &manifest.layers {
        let changes = layer_changes(&layer.digest, scanner.mode(), cache, || {
            read_layer(client, pinned, layer, scanner)
        })?;
        scanner
            .apply_layer(&changes)
            .map_err(|e| RegistryFailure::new(Some(layer.digest.to_string()), e))?;
    }
    Ok(())
}

/// Reads one layer to its end (so that its digest is checked) and returns what it changes.
fn read_layer(
    client: &Client,
    pinned: &crate::domain::ImageRef,
    layer: &crate::registry::Descriptor,
    scanner: &Scanner,
) -> Result<scan::LayerChanges, RegistryFailure> {
    let at = || Some(layer.digest.to_string());
    let mut blob = client
        .blob_reader(pinned, layer)
        .map_err(|e| RegistryFailure::new(at(), e))?;
    // Read to the end (the tar reader leaves padding), so the digest is checked.
    scanner
        .read_layer(&mut blob)
        .and_then(|c| std::io::copy(&mut blob, &mut std::io::sink()).map(|_| c))
        .map_err(|e| RegistryFailure::new(at(), e))
}

/// Layers read whole by this process, by digest: images built on one DTK share its layers,
/// and a layer's contents are fixed by its digest, so each is read once per run, even by
/// images checked at the same time. Only what was read to the end with a matching digest is
/// kept; small results only, up to a total.
#[derive(Default)]
struct LayerCache {
    slots: HashMap<(Digest, scan::Mode), Slot>,
    weight: usize,
}

/// One layer's result, while it is read and once it was.
type Slot = Arc<Mutex<Option<Arc<scan::LayerChanges>>>>;

/// Largest result kept for one layer, and for all of them together.
const LAYER_CACHE_ONE: usize = 1 << 20;
const LAYER_CACHE_MAX: usize = 64 << 20;

fn layer_cache() -> std::sync::MutexGuard<'static, LayerCache> {
    static LAYERS: std::sync::OnceLock<Mutex<LayerCache>> = std::sync::OnceLock::new();
    LAYERS
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner())
}

/// What layer `digest` changes, read in `mode`: kept from an earlier read of this run, else
/// from the cache (a layer without modules read whole by an earlier run: the same in every
/// mode), else `read` (and then cached when it has no modules). While one thread reads a layer, the others asking for it wait for its
/// result; a read that fails leaves nothing, so each of them then reads it for itself.
fn layer_changes(
    digest: &Digest,
    mode: scan::Mode,
    cache: &Cache,
    read: impl FnOnce() -> Result<scan::LayerChanges, RegistryFailure>,
) -> Result<Arc<scan::LayerChanges>, RegistryFailure> {
    let key = (digest.clone(), mode);
    let slot = Arc::clone(layer_cache().slots.entry(key).or_default());
    let mut held = slot.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(changes) = &*held {
        return Ok(Arc::clone(changes));
    }
    let changes = match cache.layer(digest) {
        Some(e) => scan::LayerChanges::of_portable(e.removed, e.opaque, e.nodes),
        None => {
            let changes = read()?;
            if changes.weight() <= LAYER_CACHE_ONE
                && let Some(portable) = changes.portable()
            {
                cache.put_layer(digest, portable);
            }
            changes
        }
    };
    let changes = Arc::new(changes);
    let weight = changes.weight() + 256;
    let mut cache = layer_cache();
    if weight <= LAYER_CACHE_ONE && cache.weight + weight <= LAYER_CACHE_MAX {
        cache.weight += weight;
        *held = Some(Arc::clone(&changes));
    }
    Ok(changes)
}

/// Verifies every image, in parallel; reports come back in lock order.
pub fn verify_all(
    client: &Client,
    cache: &Cache,
    images: &[(LockedImage, Expect)],
    deep: bool,
) -> Vec<ImageReport> {
    crate::parallel::map(images, crate::parallel::NETWORK, |(image, expect)| {
        verify_image(client, cache, image, expect, deep)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ko(vermagic: &str) -> Vec<u8> {
        let info = format!("name=x\0vermagic={vermagic}\0");
        modinfo::tests::fake_module(info.as_bytes())
    }

    fn module(path: &str, vermagic: &str) -> ModuleFile {
        module_of(path, &ko(vermagic))
    }

    fn module_of(path: &str, bytes: &[u8]) -> ModuleFile {
        let (_, rest) = path.split_once("modules/").unwrap();
        let (kernel_dir, file) = rest.split_once('/').unwrap();
        ModuleFile {
            path: path.into(),
            kernel_dir: kernel_dir.into(),
            name: scan::module_name(file.rsplit('/').next().unwrap()).unwrap(),
            info: modinfo::read(bytes),
            signature: signature::read(bytes),
            target: None,
        }
    }

    #[test]
    fn a_module_for_another_kernel_is_caught() {
        let k: Kernel = "6.1.0-50-amd64".parse().unwrap();
        let found = [
            module(
                "opt/lib/modules/6.1.0-50-amd64/hello.ko",
                "6.1.0-50-amd64 SMP preempt mod_unload",
            ),
            module(
                "opt/lib/modules/6.1.0-50-amd64/acme-net.ko",
                "6.12.117+deb13-amd64 SMP preempt mod_unload",
            ),
        ];
        let (checked, findings) = check_modules(
            &["hello".into(), "acme_net".into(), "gone".into()],
            &k,
            &found,
        );
        let checked: Vec<_> = checked
            .iter()
            .map(|c| (&c.module[..], &c.vermagic[..]))
            .collect();
        assert_eq!(
            checked,
            [("hello", "6.1.0-50-amd64 SMP preempt mod_unload")]
        );
        assert!(
            matches!(&findings[0], Finding::WrongKernel { module, .. } if module == "acme_net")
        );
        assert!(
            matches!(&findings[1], Finding::ModuleMissing { module, elsewhere, present } if module == "gone" && elsewhere.is_empty() && present == &["acme_net", "hello"])
        );
        assert_eq!(
            findings[1].describe(),
            "module `gone` is not in the image (its kernel's directory holds `acme_net`, `hello`)"
        );
    }

    #[test]
    fn findings_print_no_control_character() {
        let findings = [
            Finding::WrongKernel {
                module: "hello".into(),
                path: "opt/lib/modules/k/\x1b[2Jhello.ko".into(),
                vermagic: "6.1.0 \x1b]0;title\x07\nok   forged line".into(),
            },
            Finding::ModuleMissing {
                module: "x".into(),
                elsewhere: vec!["/a\u{9b}31m".into()],
                present: Vec::new(),
            },
            Finding::ModuleMissing {
                module: "x".into(),
                elsewhere: Vec::new(),
                present: vec!["\x1b[2Jy".into()],
            },
            Finding::Registry(RegistryFailure::new(
                None,
                std::io::Error::other("server said \x1b[8m"),
            )),
            Finding::BadSignature {
                module: "hello".into(),
                path: "opt/lib/modules/k/hello.ko".into(),
                signer: Some("`\x1b[31mAcme\n` (key id 01, sha256)".into()),
                why: "its signature does not match the module's bytes".into(),
            },
        ];
        for f in &findings {
            let line = f.describe();
            assert!(!line.contains(['\x1b', '\x07', '\n', '\u{9b}']), "{line}");
        }
        assert!(findings[0].describe().contains(r"\x1b]0;title\x07\x0aok"));
    }

    #[test]
    fn a_module_in_the_wrong_kernel_directory_is_named() {
        let k: Kernel = "6.1.0-50-amd64".parse().unwrap();
        let found = [module(
            "opt/lib/modules/6.1.0-49-amd64/hello.ko",
            "6.1.0-49-amd64 SMP",
        )];
        let (_, findings) = check_modules(&["hello".into()], &k, &found);
        assert_eq!(
            findings,
            [Finding::ModuleMissing {
                module: "hello".into(),
                elsewhere: vec!["/opt/lib/modules/6.1.0-49-amd64/hello.ko".into()],
                present: Vec::new(),
            }]
        );
        let (_, findings) = check_modules(&[], &k, &found);
        assert_eq!(findings, [Finding::NoModules]);
    }

    const K: &str = "6.1.0-50-amd64";

    /// The findings of a driver with `signed = true` (and `cert`) for one module `bytes`.
    fn signing_findings(bytes: &[u8], cert: Option<signature::Certificate>) -> Vec<Finding> {
        let found = [module_of(&format!("opt/lib/modules/{K}/hello.ko"), bytes)];
        let (checked, findings) = check_modules(&["hello".into()], &K.parse().unwrap(), &found);
        assert_eq!((checked.len(), findings.len()), (1, 0), "{findings:?}");
        check_signatures(&Signing { cert }, &checked)
    }

    #[test]
    fn a_signed_driver_needs_a_signature_on_every_module() {
        let (ours, _) = signature::tests::keys();
        let unsigned = ko(&format!("{K} SMP"));
        let findings = signing_findings(&unsigned, Some(ours.certificate()));
        assert!(matches!(&findings[..], [Finding::Unsigned { module, .. }] if module == "hello"));
        assert!(findings[0].describe().contains("is not signed"));
        assert_eq!(signing_findings(&unsigned, None).len(), 1);
        // Signed: without a certificate any readable signature will do; with one, ours.
        let signed = ours.sign(&unsigned);
        assert_eq!(signing_findings(&signed, None), []);
        assert_eq!(signing_findings(&signed, Some(ours.certificate())), []);
    }

    #[test]
    fn a_wrongly_signed_module_fails_and_names_its_signer() {
        let (ours, theirs) = signature::tests::keys();
        let module = ko(&format!("{K} SMP"));
        let by_them = signing_findings(&theirs.sign(&module), Some(ours.certificate()));
        let [
            f @ Finding::BadSignature {
                signer: Some(s), ..
            },
        ] = &by_them[..]
        else {
            panic!("{by_them:?}");
        };
        assert!(
            s.contains("`someone else`") && s.contains(&theirs.serial()),
            "{s}"
        );
        assert!(f.describe().contains("another key"), "{}", f.describe());
        let mut tampered = ours.sign(&module);
        tampered[64] ^= 1;
        let findings = signing_findings(&tampered, Some(ours.certificate()));
        assert!(
            findings[0]
                .describe()
                .ends_with("its signature does not match the module's bytes"),
            "{findings:?}"
        );
        let garbled = signature::tests::append(&module, b"\x30\x03junk");
        assert!(matches!(
            &signing_findings(&garbled, None)[..],
            [Finding::BadSignature { signer: None, .. }]
        ));
    }
}
