//! The Driver Toolkit image: `etc/driver-toolkit-release.json`, found by walking the layers
//! from the last to the first and streaming each only until the file appears, so the DTK's
//! large base layers are never downloaded when the file sits in a small top layer.

use serde::Deserialize;

use super::{Fault, layer};
use crate::domain::{ImageRef, Kernel};
use crate::registry::{Client, ImageManifest};

pub const RELEASE_JSON: &str = "etc/driver-toolkit-release.json";

/// A layer whose unread rest is at most this many bytes is read to the end, so that its
/// digest gets checked at a negligible cost.
const VERIFY_TAIL: u64 = 256 << 10;

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

/// Finds and parses the release file of the DTK `dtk` (the per-platform image).
pub fn read(client: &Client, dtk: &ImageRef, image: &ImageManifest) -> Result<DtkInfo, Fault> {
    for desc in image.layers.iter().rev() {
        let mut blob = client.blob_reader(dtk, desc)?;
        let hint = blob.hint();
        let found = match layer::scan(
            &mut blob,
            &[RELEASE_JSON],
            layer::Limits::default(),
            Some(hint),
        ) {
            Ok(f) => f,
            Err(e) => return Err(Fault::layer(dtk, desc, e)),
        };
        let fault = |e| Fault::layer(dtk, desc, layer::LayerError::Read(e));
        match found.get(RELEASE_JSON) {
            Some(bytes) => {
                if desc.size.saturating_sub(blob.bytes_read()) <= VERIFY_TAIL {
                    blob.finish().map_err(fault)?;
                }
                return parse(bytes);
            }
            None => blob.finish().map_err(fault)?,
        }
    }
    Err(Fault::Content(format!(
        "no layer of the Driver Toolkit `{dtk}` holds `/{RELEASE_JSON}`"
    )))
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
        .filter(|r| {
            !r.is_empty()
                && r.len() <= 16
                && r.split('.').all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        })
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

    #[test]
    fn rejects_a_garbage_kernel_or_rhel() {
        assert!(parse(br#"{"KERNEL_VERSION":"package kernel-core is not installed","RHEL_VERSION":"9.2"}"#).is_err());
        assert!(
            parse(br#"{"KERNEL_VERSION":"5.14.0-1.el9.x86_64","RHEL_VERSION":"nine"}"#).is_err()
        );
        assert!(parse(br#"{"RHEL_VERSION":"9.2"}"#).is_err());
    }
}
