//! The Driver Toolkit image: `etc/driver-toolkit-release.json`, found by walking the layers
//! from the last to the first and streaming each only until the file appears, so the DTK's
//! large base layers are never downloaded when the file sits in a small top layer.
//!
//! Layers passed over on the way are read whole (digest-checked). The layer holding the file is
//! read to its end too when little of it is left ([`VERIFY_TAIL`]); the kernel is then
//! *verified*. Otherwise (a squashed DTK, the file near the start of a gigabyte layer) what
//! was read comes from bytes no digest vouches for, and it is used only when something verified
//! confirms it: the nodes' kernel, read from the OS image's digest-checked config, is the same
//! string, and the RHEL and RT kernel versions are the ones that kernel implies
//! ([`confirmed_by`]). Otherwise the layer is read to its end after all, so that its digest is
//! checked: the lock never holds an unconfirmed fact. The resolver caches only what was read
//! whole.

use serde::Deserialize;

use super::{Fault, layer, verify_rest};
use crate::domain::{Digest, ImageRef, Kernel, check_rhel, is_digits};
use crate::registry::{Client, ImageManifest};

pub const RELEASE_JSON: &str = "etc/driver-toolkit-release.json";

/// A layer whose unread rest, once the release file is found, is at most this many bytes is
/// read to its end so that the kernel is verified. Real DTKs come in two shapes: the release
/// file alone in a top layer of a few KiB (its build's last step writes only that file), or
/// somewhere in one squashed layer of over a gigabyte. Any threshold between a few hundred KiB
/// and some tens of MiB sorts them the same way; 4 MiB keeps the worst case for a top layer
/// of odd size to about what the payload's manifests layer (always read whole) costs, and to
/// one range request of the blob reader (8 MiB windows).
pub const VERIFY_TAIL: u64 = 4 << 20;

/// What the DTK says about its kernels.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DtkInfo {
    pub kernel: Kernel,
    pub rt_kernel: Option<Kernel>,
    pub rhel: String,
}

#[derive(Deserialize)]
struct Raw {
    #[serde(rename = "KERNEL_VERSION")]
    kernel: Option<String>,
    #[serde(rename = "RT_KERNEL_VERSION")]
    rt_kernel: Option<String>,
    #[serde(rename = "RHEL_VERSION")]
    rhel: Option<String>,
}

/// [`DtkInfo`] and how far to trust it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DtkRead {
    pub info: DtkInfo,
    /// The layer the release file came from.
    pub layer: Digest,
    /// Whether that layer was read to its end and matched its digest; `false`: confirmed by
    /// the nodes' kernel instead ([`confirmed_by`]).
    pub verified: bool,
}

/// Finds and parses the release file of the DTK `dtk` (the per-platform image). `node` is the
/// stream's nodes' kernel, read from a verified OS image config, when there is one.
pub fn read(
    client: &Client,
    dtk: &ImageRef,
    image: &ImageManifest,
    node: Option<&Kernel>,
) -> Result<DtkRead, Fault> {
    for desc in image.layers.iter().rev() {
        let mut blob = client.blob_reader(dtk, desc)?;
        let hint = blob.hint();
        let found = layer::scan(
            &mut blob,
            &[RELEASE_JSON],
            layer::Limits::RELEASE,
            Some(hint),
        );
        let small_rest = desc.size.saturating_sub(blob.bytes_read()) <= VERIFY_TAIL;
        let found = match found {
            Ok(f) => f,
            Err(e @ layer::LayerError::Read(_)) => return Err(Fault::layer(dtk, desc, e)),
            Err(e) => {
                // Bad content: when it is cheap, tell altered bytes (exit 4) from a bad image.
                if small_rest {
                    verify_rest(&mut blob, dtk, desc)?;
                }
                return Err(Fault::layer(dtk, desc, e));
            }
        };
        match found.get(RELEASE_JSON) {
            Some(bytes) => {
                let info = parse(bytes);
                let confirmed =
                    !small_rest && matches!((&info, node), (Ok(i), Some(k)) if confirmed_by(i, k));
                if !confirmed {
                    verify_rest(&mut blob, dtk, desc)?;
                }
                return Ok(DtkRead {
                    info: info?,
                    layer: desc.digest.clone(),
                    verified: blob.verified(),
                });
            }
            None => verify_rest(&mut blob, dtk, desc)?,
        }
    }
    Err(Fault::Content(format!(
        "no layer of the Driver Toolkit `{dtk}` holds `/{RELEASE_JSON}`"
    )))
}

/// Whether the nodes' kernel `node` (verified) vouches for everything in `info` (read from an
/// unverified prefix): the kernel is the same string, the RHEL version is the one its `elX_Y`
/// tag names, and the RT kernel, if any, is that kernel's RT build.
pub fn confirmed_by(info: &DtkInfo, node: &Kernel) -> bool {
    info.kernel.as_str() == node.as_str()
        && rhel_of(node.as_str()).is_some_and(|r| r == info.rhel)
        && info
            .rt_kernel
            .as_ref()
            .is_none_or(|rt| without_rt(rt.as_str()) == node.as_str())
}

/// The RHEL version a RHEL kernel release names (`….el9_2.…` → `9.2`, `….el10.…` → `10`).
fn rhel_of(kernel: &str) -> Option<String> {
    let tag = kernel
        .split(['.', '-', '+'])
        .find_map(|p| p.strip_prefix("el"))?;
    let (major, minor) = match tag.split_once('_') {
        Some((m, n)) => (m, Some(n)),
        None => (tag, None),
    };
    if !is_digits(major) || !minor.is_none_or(is_digits) {
        return None;
    }
    Some(match minor {
        Some(n) => format!("{major}.{n}"),
        None => major.to_string(),
    })
}

/// An RT kernel release as the plain kernel of the same build: `+rt` dropped (9.3 on), or the
/// `.rtN.M` pair (before).
fn without_rt(rt: &str) -> String {
    let rt = rt.strip_suffix("+rt").unwrap_or(rt);
    let mut out: Vec<&str> = Vec::new();
    let mut parts = rt.split('.').peekable();
    while let Some(p) = parts.next() {
        if p.strip_prefix("rt").is_some_and(is_digits) {
            parts.next_if(|n| is_digits(n));
            continue;
        }
        out.push(p);
    }
    out.join(".")
}

/// Parses the release file: the kernel and the RHEL version are required and validated; the
/// RT kernel is optional, and a value that is not a kernel release (rpm's "package ... is not
/// installed" on arches without one) counts as absent.
pub fn parse(bytes: &[u8]) -> Result<DtkInfo, Fault> {
    let raw: Raw = serde_json::from_slice(bytes)
        .map_err(|e| Fault::Content(format!("`/{RELEASE_JSON}` is not valid JSON: {e}")))?;
    let kernel = raw
        .kernel
        .ok_or_else(|| Fault::Content(format!("`/{RELEASE_JSON}` has no `KERNEL_VERSION`")))?;
    let kernel: Kernel = kernel
        .trim()
        .parse()
        .map_err(|e: crate::domain::ParseError| {
            Fault::Content(format!(
                "`KERNEL_VERSION` in `/{RELEASE_JSON}`: {}",
                e.message
            ))
        })?;
    let rt_kernel = raw.rt_kernel.and_then(|k| k.trim().parse::<Kernel>().ok());
    let rhel = raw
        .rhel
        .map(|r| r.trim().to_string())
        .filter(|r| check_rhel(r).is_ok())
        .ok_or_else(|| {
            Fault::Content(format!(
                "`/{RELEASE_JSON}` has no valid `RHEL_VERSION` (expected digits and dots, like `9.2`)"
            ))
        })?;
    Ok(DtkInfo {
        kernel,
        rt_kernel,
        rhel,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rt_kernel_forms() {
        let j = |rt: &str| {
            format!(
                r#"{{"KERNEL_VERSION":"5.14.0-284.52.1.el9_2.x86_64",{rt}"RHEL_VERSION":"9.2"}}"#
            )
        };
        let old =
            parse(j(r#""RT_KERNEL_VERSION":"5.14.0-284.52.1.rt14.337.el9_2.x86_64","#).as_bytes())
                .unwrap();
        assert_eq!(
            old.rt_kernel.unwrap().as_str(),
            "5.14.0-284.52.1.rt14.337.el9_2.x86_64"
        );
        let new = parse(j(r#""RT_KERNEL_VERSION":"5.14.0-427.18.1.el9_4.x86_64+rt","#).as_bytes())
            .unwrap();
        assert_eq!(
            new.rt_kernel.unwrap().as_str(),
            "5.14.0-427.18.1.el9_4.x86_64+rt"
        );
        assert!(parse(j("").as_bytes()).unwrap().rt_kernel.is_none());
        let garbage = j(r#""RT_KERNEL_VERSION":"package kernel-rt-core is not installed","#);
        assert!(parse(garbage.as_bytes()).unwrap().rt_kernel.is_none());
    }

    fn info(kernel: &str, rt: Option<&str>, rhel: &str) -> DtkInfo {
        DtkInfo {
            kernel: kernel.parse().unwrap(),
            rt_kernel: rt.map(|r| r.parse().unwrap()),
            rhel: rhel.into(),
        }
    }

    #[test]
    fn the_nodes_kernel_confirms_only_what_it_implies() {
        let k = "5.14.0-284.52.1.el9_2.x86_64";
        let node: Kernel = k.parse().unwrap();
        assert!(confirmed_by(&info(k, None, "9.2"), &node));
        let old_rt = "5.14.0-284.52.1.rt14.337.el9_2.x86_64";
        assert!(confirmed_by(&info(k, Some(old_rt), "9.2"), &node));
        assert!(confirmed_by(
            &info(k, Some(&format!("{k}+rt")), "9.2"),
            &node
        ));
        // Another kernel, another RHEL, another RT build: not confirmed.
        let evil = "5.14.0-666.evl.x86_64";
        assert!(!confirmed_by(&info(evil, None, "9.2"), &node));
        assert!(!confirmed_by(&info(k, None, "9.9"), &node));
        let other_rt = "5.14.0-284.53.1.rt14.338.el9_2.x86_64";
        assert!(!confirmed_by(&info(k, Some(other_rt), "9.2"), &node));
        // A kernel that names no RHEL version confirms no RHEL version.
        let debian: Kernel = "6.1.0-18-amd64".parse().unwrap();
        assert!(!confirmed_by(&info("6.1.0-18-amd64", None, "9.2"), &debian));
        let ten: Kernel = "6.12.0-55.9.1.el10_0.x86_64".parse().unwrap();
        assert!(confirmed_by(
            &info("6.12.0-55.9.1.el10_0.x86_64", None, "10.0"),
            &ten
        ));
    }

    #[test]
    fn rejects_a_garbage_kernel_or_rhel() {
        assert!(parse(br#"{"KERNEL_VERSION":"package kernel-core is not installed","RHEL_VERSION":"9.2"}"#).is_err());
        assert!(
            parse(br#"{"KERNEL_VERSION":"5.14.0-1.el9.x86_64","RHEL_VERSION":"nine"}"#).is_err()
        );
        assert!(parse(br#"{"RHEL_VERSION":"9.2"}"#).is_err());
    }
}
