//! The release payload: `release-manifests/image-references` (an ImageStream naming every
//! component image) and `release-manifests/release-metadata`, read from the payload's last
//! layer, with the other layers as a fallback, newest first.
//!
//! The layer that holds them is read to its end and checked against its digest before either
//! file is parsed: both say what the lock records (the DTK, the version), and a prefix of a
//! layer proves nothing about who wrote it. On real payloads that layer is a few MB of
//! compressed YAML; it is streamed, so memory stays bounded by [`layer::Limits`].

use serde::Deserialize;

use super::{Fault, layer, verify_rest};
use crate::domain::{Arch, Digest, ImageRef, Version};
use crate::registry::{Client, ImageManifest};

pub const IMAGE_REFERENCES: &str = "release-manifests/image-references";
pub const RELEASE_METADATA: &str = "release-manifests/release-metadata";

/// The tags of the RHEL 10 stream's DTK and OS image in a dual-stream release.
pub const DTK_TAG_RHEL10: &str = "driver-toolkit-10";
pub const OS_TAG_RHEL10: &str = "rhel-coreos-10";

/// The tags of the OS image, newest naming first; `stream-coreos` is the CentOS Stream CoreOS
/// image of OKD/SCOS payloads, read like `rhel-coreos`.
pub const OS_TAGS: [&str; 4] = [
    "rhel-coreos",
    "stream-coreos",
    "rhel-coreos-8",
    "machine-os-content",
];

/// What the resolver takes from a payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PayloadInfo {
    /// The `driver-toolkit` tag's `from.name`, always a digest reference.
    pub dtk: ImageRef,
    /// `machine-os=` of the OS tag's `io.openshift.build.versions`.
    pub machine_os: Option<String>,
    /// The OS images the payload names by digest, in [`OS_TAGS`] order: where the nodes'
    /// own kernel is read (see [`super::os`]).
    pub os: Vec<ImageRef>,
    /// The RHEL 10 stream of a dual-stream release: `driver-toolkit-10` and `rhel-coreos-10`.
    pub rhel10: Option<StreamRefs>,
}

/// What a payload names for one more node OS stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamRefs {
    /// Its DTK, by digest.
    pub dtk: ImageRef,
    /// Its OS images, by digest.
    pub os: Vec<ImageRef>,
}

/// [`PayloadInfo`] and where it was read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PayloadRead {
    pub info: PayloadInfo,
    /// The layer both files came from, read whole and digest-checked.
    pub layer: Digest,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ImageStream {
    kind: String,
    api_version: String,
    #[serde(default)]
    spec: Spec,
}

#[derive(Deserialize, Default)]
struct Spec {
    #[serde(default)]
    tags: Vec<Tag>,
}

#[derive(Deserialize)]
struct Tag {
    name: String,
    #[serde(default)]
    annotations: std::collections::BTreeMap<String, String>,
    from: Option<From>,
}

#[derive(Deserialize)]
struct From {
    #[serde(default)]
    kind: String,
    name: String,
}

#[derive(Deserialize)]
struct Metadata {
    kind: String,
    version: String,
}

/// Reads the payload's release manifests, last layer first. Every layer looked at is read to
/// its end and digest-checked before anything found in it (or any verdict on its format) is
/// used, so altered bytes fail the run as a digest mismatch, whatever they decompress to.
pub fn read(
    client: &Client,
    payload: &ImageRef,
    image: &ImageManifest,
    version: &Version,
    arch: Arch,
) -> Result<PayloadRead, Fault> {
    let wanted = [IMAGE_REFERENCES, RELEASE_METADATA];
    for layer_desc in image.layers.iter().rev() {
        let mut blob = client.blob_reader(payload, layer_desc)?;
        let found = layer::scan(&mut blob, &wanted, layer::Limits::RELEASE, None);
        if let Err(e @ layer::LayerError::Read(_)) = found {
            return Err(Fault::layer(payload, layer_desc, e));
        }
        verify_rest(&mut blob, payload, layer_desc)?;
        let mut found = match found {
            Ok(f) => f,
            // A layer that is not a tar (or is something else entirely) is not where the
            // manifests are; try the next one. Bombs are not skipped.
            Err(layer::LayerError::Format(_)) => continue,
            Err(e) => return Err(Fault::layer(payload, layer_desc, e)),
        };
        let (Some(refs), Some(meta)) = (
            found.remove(IMAGE_REFERENCES),
            found.remove(RELEASE_METADATA),
        ) else {
            continue;
        };
        check_metadata(&meta, version, arch)?;
        return Ok(PayloadRead {
            info: parse_references(&refs)?,
            layer: layer_desc.digest.clone(),
        });
    }
    Err(Fault::Content(format!(
        "no layer of the payload holds `{IMAGE_REFERENCES}` and `{RELEASE_METADATA}`"
    )))
}

/// Checks `release-metadata`: kind `cincinnati-metadata-v0` and the expected version.
pub fn check_metadata(bytes: &[u8], version: &Version, _arch: Arch) -> Result<(), Fault> {
    let m: Metadata = serde_json::from_slice(bytes)
        .map_err(|e| Fault::Content(format!("`{RELEASE_METADATA}` is not valid: {e}")))?;
    if m.kind != "cincinnati-metadata-v0" {
        return Err(Fault::Content(format!(
            "`{RELEASE_METADATA}` has kind `{}`, expected `cincinnati-metadata-v0`",
            m.kind
        )));
    }
    if m.version != version.to_string() {
        return Err(Fault::Content(format!(
            "the payload is release `{}`, not `{version}`",
            m.version
        )));
    }
    Ok(())
}

/// Parses `image-references` as `oc` does: kind and apiVersion must be exactly those of an
/// ImageStream. The DTK must be named by digest.
pub fn parse_references(bytes: &[u8]) -> Result<PayloadInfo, Fault> {
    let stream: ImageStream = serde_json::from_slice(bytes)
        .map_err(|e| Fault::Content(format!("`{IMAGE_REFERENCES}` is not valid: {e}")))?;
    if stream.kind != "ImageStream" || stream.api_version != "image.openshift.io/v1" {
        return Err(Fault::Content(format!(
            "`{IMAGE_REFERENCES}` is a `{}` of `{}`, expected an `ImageStream` of `image.openshift.io/v1`",
            stream.kind, stream.api_version
        )));
    }
    let tag = |name: &str| stream.spec.tags.iter().find(|t| t.name == name);
    let dtk = dtk_of(tag("driver-toolkit").ok_or(Fault::NoDriverToolkit)?)?;
    let machine_os = OS_TAGS
        .iter()
        .filter_map(|n| tag(n))
        .find_map(|t| t.annotations.get("io.openshift.build.versions"))
        .and_then(|v| {
            v.split(',')
                .find_map(|kv| kv.trim().strip_prefix("machine-os="))
                .map(str::to_string)
        })
        .filter(|m| valid_machine_os(m));
    let os_images = |names: &[&str]| -> Vec<ImageRef> {
        names
            .iter()
            .filter_map(|n| tag(n)?.from.as_ref())
            .filter_map(|f| f.name.parse::<ImageRef>().ok())
            .filter(|r| r.digest().is_some())
            .collect()
    };
    let rhel10 = match tag(DTK_TAG_RHEL10) {
        Some(t) => Some(StreamRefs {
            dtk: dtk_of(t)?,
            os: os_images(&[OS_TAG_RHEL10]),
        }),
        None => None,
    };
    Ok(PayloadInfo {
        dtk,
        machine_os,
        os: os_images(&OS_TAGS),
        rhel10,
    })
}

/// The DTK a `driver-toolkit` tag names: a `DockerImage` by digest.
fn dtk_of(t: &Tag) -> Result<ImageRef, Fault> {
    let name = &t.name;
    let from = t
        .from
        .as_ref()
        .filter(|f| f.kind == "DockerImage" || f.kind.is_empty())
        .ok_or_else(|| Fault::Content(format!("the `{name}` tag has no `DockerImage` source")))?;
    let dtk: ImageRef = from.name.parse().map_err(|e: crate::domain::ParseError| {
        Fault::Content(format!("the `{name}` tag names {}", e.message))
    })?;
    if dtk.digest().is_none() {
        return Err(Fault::DtkByTag(dtk.to_string()));
    }
    Ok(dtk)
}

/// An RHCOS version as the lock may record it ([`crate::domain::check_machine_os`]).
pub fn valid_machine_os(m: &str) -> bool {
    crate::domain::check_machine_os(m).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const DTK: &str = "quay.io/openshift-release-dev/ocp-v4.0-art-dev@sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

    fn stream(kind: &str, tags: &str) -> Vec<u8> {
        format!(
            r#"{{"kind":"{kind}","apiVersion":"image.openshift.io/v1","spec":{{"tags":[{tags}]}}}}"#
        )
        .into_bytes()
    }

    #[test]
    fn takes_the_dtk_and_machine_os() {
        let tags = format!(
            r#"{{"name":"rhel-coreos","annotations":{{"io.openshift.build.versions":"machine-os=414.92.202402130420-0"}},"from":{{"kind":"DockerImage","name":"{DTK}"}}}},
               {{"name":"driver-toolkit","from":{{"kind":"DockerImage","name":"{DTK}"}}}}"#
        );
        let info = parse_references(&stream("ImageStream", &tags)).unwrap();
        assert_eq!(info.dtk.to_string(), DTK);
        assert_eq!(info.machine_os.as_deref(), Some("414.92.202402130420-0"));
        assert_eq!(info.os.len(), 1);
        assert_eq!(info.os[0].to_string(), DTK);
        assert!(info.rhel10.is_none());
    }

    #[test]
    fn an_okd_payload_names_its_os_image_stream_coreos() {
        let os = DTK.replace(&"a".repeat(64), &"c".repeat(64));
        let tags = format!(
            r#"{{"name":"stream-coreos","annotations":{{"io.openshift.build.versions":"machine-os=9.0.20250510-0"}},"from":{{"kind":"DockerImage","name":"{os}"}}}},
               {{"name":"driver-toolkit","from":{{"kind":"DockerImage","name":"{DTK}"}}}}"#
        );
        let info = parse_references(&stream("ImageStream", &tags)).unwrap();
        assert_eq!(info.os.len(), 1, "the nodes' kernel is read from it");
        assert_eq!(info.os[0].to_string(), os);
        assert_eq!(info.machine_os.as_deref(), Some("9.0.20250510-0"));
    }

    #[test]
    fn a_dual_stream_payload_names_a_second_dtk_and_os() {
        let dtk10 = DTK.replace(&"a".repeat(64), &"b".repeat(64));
        let tags = format!(
            r#"{{"name":"driver-toolkit","from":{{"kind":"DockerImage","name":"{DTK}"}}}},
               {{"name":"driver-toolkit-10","from":{{"kind":"DockerImage","name":"{dtk10}"}}}},
               {{"name":"rhel-coreos-10","from":{{"kind":"DockerImage","name":"{dtk10}"}}}}"#
        );
        let info = parse_references(&stream("ImageStream", &tags)).unwrap();
        let rhel10 = info.rhel10.unwrap();
        assert_eq!(rhel10.dtk.to_string(), dtk10);
        assert_eq!(rhel10.os.len(), 1);
        assert!(info.os.is_empty());
        let by_tag = format!(
            r#"{{"name":"driver-toolkit","from":{{"kind":"DockerImage","name":"{DTK}"}}}},
               {{"name":"driver-toolkit-10","from":{{"kind":"DockerImage","name":"x.io/dtk:10"}}}}"#
        );
        assert!(matches!(
            parse_references(&stream("ImageStream", &by_tag)),
            Err(Fault::DtkByTag(_))
        ));
    }

    #[test]
    fn rejects_wrong_kind_and_missing_dtk() {
        let tags = format!(
            r#"{{"name":"driver-toolkit","from":{{"kind":"DockerImage","name":"{DTK}"}}}}"#
        );
        assert!(matches!(
            parse_references(&stream("ConfigMap", &tags)),
            Err(Fault::Content(_))
        ));
        assert!(matches!(
            parse_references(&stream("ImageStream", r#"{"name":"cli"}"#)),
            Err(Fault::NoDriverToolkit)
        ));
    }

    #[test]
    fn a_dtk_named_by_tag_is_refused_with_its_reference() {
        let by_tag = "evil.example/ns/dtk:latest";
        let tags = format!(
            r#"{{"name":"driver-toolkit","from":{{"kind":"DockerImage","name":"{by_tag}"}}}}"#
        );
        match parse_references(&stream("ImageStream", &tags)) {
            Err(Fault::DtkByTag(r)) => assert_eq!(r, by_tag),
            other => panic!("{other:?}"),
        }
    }
}
