//! The release payload: `release-manifests/image-references` (an ImageStream naming every
//! component image) and `release-manifests/release-metadata`, read from the payload's last
//! layer, with the other layers as a fallback, newest first.

use serde::Deserialize;

use super::{Fault, layer};
use crate::domain::{Arch, ImageRef, Version};
use crate::registry::{Client, ImageManifest};

pub const IMAGE_REFERENCES: &str = "release-manifests/image-references";
pub const RELEASE_METADATA: &str = "release-manifests/release-metadata";

/// The tags of the OS image, newest naming first.
const OS_TAGS: [&str; 3] = ["rhel-coreos", "rhel-coreos-8", "machine-os-content"];

/// What the resolver takes from a payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PayloadInfo {
    /// The `driver-toolkit` tag's `from.name`.
    pub dtk: ImageRef,
    /// `machine-os=` of the OS tag's `io.openshift.build.versions`.
    pub machine_os: Option<String>,
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

/// Reads the payload's release manifests, last layer first, stopping inside the layer as soon
/// as both files are found.
pub fn read(
    client: &Client,
    payload: &ImageRef,
    image: &ImageManifest,
    version: &Version,
    arch: Arch,
) -> Result<PayloadInfo, Fault> {
    let wanted = [IMAGE_REFERENCES, RELEASE_METADATA];
    for layer_desc in image.layers.iter().rev() {
        let mut blob = client.blob_reader(payload, layer_desc)?;
        let hint = blob.hint();
        let found = layer::scan(&mut blob, &wanted, layer::Limits::default(), Some(hint));
        let mut found = match found {
            Ok(f) => f,
            // A layer that is not a tar (or is something else entirely) is not where the
            // manifests are; try the next one. Read failures and bombs are not skipped.
            Err(layer::LayerError::Format(_)) => continue,
            Err(e) => return Err(Fault::layer(payload, layer_desc, e)),
        };
        if found.len() < wanted.len() {
            // The archive ended without them: read the rest so the digest is checked, then
            // move on to an older layer.
            blob.finish()
                .map_err(|e| Fault::layer(payload, layer_desc, layer::LayerError::Read(e)))?;
            continue;
        }
        let refs = found
            .remove(IMAGE_REFERENCES)
            .expect("both files were found");
        let meta = found
            .remove(RELEASE_METADATA)
            .expect("both files were found");
        check_metadata(&meta, version, arch)?;
        return parse_references(&refs);
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
/// ImageStream.
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
    let dtk_tag = tag("driver-toolkit").ok_or(Fault::NoDriverToolkit)?;
    let from = dtk_tag
        .from
        .as_ref()
        .filter(|f| f.kind == "DockerImage" || f.kind.is_empty())
        .ok_or_else(|| {
            Fault::Content("the `driver-toolkit` tag has no `DockerImage` source".into())
        })?;
    let dtk: ImageRef = from.name.parse().map_err(|e: crate::domain::ParseError| {
        Fault::Content(format!("the `driver-toolkit` tag names {}", e.message))
    })?;
    let machine_os = OS_TAGS
        .iter()
        .filter_map(|n| tag(n))
        .find_map(|t| t.annotations.get("io.openshift.build.versions"))
        .and_then(|v| {
            v.split(',')
                .find_map(|kv| kv.trim().strip_prefix("machine-os="))
                .map(str::to_string)
        })
        .filter(|m| {
            !m.is_empty()
                && m.len() <= 64
                && m.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
        });
    Ok(PayloadInfo { dtk, machine_os })
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
}
