//! Driver Toolkit stand-ins with real kernel headers: a Debian root ([`crate::rootfs`]) as one
//! large base layer, `/etc/driver-toolkit-release.json` naming its kernel as a small top
//! layer, pushed by digest only to `openshift-release-dev/ocp-v4.0-art-dev` as a real DTK is.
//! The root's layer is packed once per debootstrap run and cached; the image's bytes are
//! deterministic, so pushing it again to the same registry uploads nothing.

use std::path::Path;

use crate::bigimage::{self, Config, LayerBlob, Source};
use crate::oci::{self, Pushed, Pusher};
use crate::rootfs::{FileLock, Rootfs};

/// The repository DTKs live in, under quay.io or its mirror.
pub const DTK_REPO: &str = "openshift-release-dev/ocp-v4.0-art-dev";

/// A DTK stand-in in the registry.
#[derive(Debug, Clone)]
pub struct DebianDtk {
    pub suite: String,
    pub kernel: String,
    pub rhel: String,
    /// The manifest as pushed (digest, size, media type).
    pub pushed: Pushed,
}

impl DebianDtk {
    /// `quay.io/openshift-release-dev/ocp-v4.0-art-dev@sha256:...`, as a payload names it.
    pub fn quay_ref(&self) -> String {
        format!("quay.io/{DTK_REPO}@{}", self.pushed.digest)
    }
}

/// `/etc/driver-toolkit-release.json` as the DTK's last build step writes it; these kernels
/// have no real-time flavour, which the DTK says with an empty `RT_KERNEL_VERSION`.
pub fn release_json(kernel: &str, rhel: &str) -> String {
    format!(
        "{{\"KERNEL_VERSION\": \"{kernel}\", \"RT_KERNEL_VERSION\": \"\", \"RHEL_VERSION\": \"{rhel}\"}}\n"
    )
}

/// Pushes the DTK stand-in of `root`; `rhel` goes into the release file. The root's layer is
/// packed once per debootstrap run and kept in `layers`; pushing it again costs a `HEAD` per
/// blob, and another registry (a test's) only an upload.
pub fn ensure(
    pusher: &Pusher,
    root: &Rootfs,
    rhel: &str,
    layers: &Path,
) -> std::io::Result<DebianDtk> {
    let stamp = stamp(root)?;
    let base = root_layer(root, &stamp, layers)?;
    let json = release_json(&root.kernel, rhel);
    let top = LayerBlob::from_tar(&oci::tar(&[
        ("etc/", b""),
        ("etc/driver-toolkit-release.json", json.as_bytes()),
    ]));
    let config = Config {
        labels: vec![
            ("name".into(), "driver-toolkit".into()),
            (
                "io.k8s.description".into(),
                format!(
                    "driver-matrix sandbox: Driver Toolkit stand-in with Debian {} kernel headers",
                    root.suite
                ),
            ),
        ],
        env: vec!["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into()],
        cmd: vec!["/bin/bash".into()],
    };
    eprintln!(
        "sandbox: pushing the DTK stand-in for {} ({})",
        root.suite, root.kernel
    );
    let pushed = bigimage::push(pusher, DTK_REPO, None, &[base, top], "amd64", &config)?;
    Ok(DebianDtk {
        suite: root.suite.clone(),
        kernel: root.kernel.clone(),
        rhel: rhel.to_string(),
        pushed,
    })
}

/// The root as one gzip layer, made once per debootstrap run and kept in `dir`.
fn root_layer(root: &Rootfs, stamp: &str, dir: &Path) -> std::io::Result<LayerBlob> {
    std::fs::create_dir_all(dir)?;
    // Two callers in one run (the demo test and the DKMS test) would otherwise pack into the
    // same temporary file, and the second rename finds it gone.
    let _lock = FileLock::acquire(&dir.join(format!("{}.tar.gz.lock", root.suite)))?;
    let blob = dir.join(format!("{}.tar.gz", root.suite));
    let meta = dir.join(format!("{}.tar.gz.json", root.suite));
    if let Ok(bytes) = std::fs::read(&meta)
        && let Ok(v) = serde_json::from_slice::<serde_json::Value>(&bytes)
        && v["stamp"] == stamp
        && let (Some(digest), Some(diff_id), Some(size)) = (
            v["digest"].as_str(),
            v["diff_id"].as_str(),
            v["size"].as_u64(),
        )
        && std::fs::metadata(&blob).is_ok_and(|m| m.len() == size)
    {
        return Ok(LayerBlob {
            source: Source::File(blob),
            digest: digest.to_string(),
            diff_id: diff_id.to_string(),
            size,
        });
    }
    eprintln!(
        "sandbox: packing {} into a layer (gzip -1)",
        root.path.display()
    );
    let started = std::time::Instant::now();
    let tmp = dir.join(format!("{}.tar.gz.tmp", root.suite));
    let layer = bigimage::tar_dir(&root.path, &tmp, &["proc", "sys", "dev", "tmp"])?;
    std::fs::rename(&tmp, &blob)?;
    let record = serde_json::json!({
        "stamp": stamp, "digest": layer.digest, "diff_id": layer.diff_id, "size": layer.size,
    });
    std::fs::write(
        &meta,
        serde_json::to_vec_pretty(&record).expect("JSON into memory"),
    )?;
    eprintln!(
        "sandbox: packed {} ({} MB) in {:.0?}",
        root.suite,
        layer.size >> 20,
        started.elapsed()
    );
    Ok(LayerBlob {
        source: Source::File(blob),
        ..layer
    })
}

/// Identifies one debootstrap run of the root: a re-made root gives a new DTK.
fn stamp(root: &Rootfs) -> std::io::Result<String> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(&root.path)?;
    Ok(format!("{}:{}:{}", m.ino(), m.ctime(), root.kernel))
}
