//! Manifests as the resolver needs them: Docker schema 2 and OCI image manifests, and Docker
//! manifest lists and OCI indexes with the child for `linux/<goarch>` picked.

use oci_client::manifest::{
    IMAGE_MANIFEST_LIST_MEDIA_TYPE, IMAGE_MANIFEST_MEDIA_TYPE, OCI_IMAGE_INDEX_MEDIA_TYPE,
    OCI_IMAGE_MEDIA_TYPE, OciDescriptor, OciImageIndex, OciImageManifest,
};

use crate::domain::{Arch, Digest, ImageRef};

/// Every manifest type we accept, for `Accept`.
pub const ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json";

/// A blob a manifest points at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Descriptor {
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
}

/// A single-platform image, as reached from a reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageManifest {
    /// The digest of what the reference named: the list's digest when it named a list.
    pub digest: Digest,
    /// The digest of the per-platform image manifest (equal to `digest` for a plain image).
    pub image_digest: Digest,
    /// Whether the reference named a manifest list or an OCI index.
    pub from_list: bool,
    pub media_type: String,
    pub config: Descriptor,
    /// Base layer first, as in the manifest.
    pub layers: Vec<Descriptor>,
}

impl ImageManifest {
    /// `repo@image_digest`: the per-platform image, on the reference's own (source) registry.
    pub fn pinned(&self, source: &ImageRef) -> ImageRef {
        source.with_digest(self.image_digest.clone())
    }
}

/// What a manifest body turned out to be.
pub(crate) enum Parsed {
    Image(String, Descriptor, Vec<Descriptor>),
    /// Children as (digest, `os/arch[/variant]`).
    List(Vec<(Digest, String)>),
}

fn descriptor(d: &OciDescriptor) -> Result<Descriptor, String> {
    Ok(Descriptor {
        media_type: d.media_type.clone(),
        digest: d
            .digest
            .parse()
            .map_err(|_| format!("descriptor digest `{}` is not a sha256 digest", d.digest))?,
        size: u64::try_from(d.size).map_err(|_| format!("negative size for `{}`", d.digest))?,
    })
}

/// Parses a manifest body; `content_type` is the response header, used when the body has no
/// `mediaType`.
pub(crate) fn parse(body: &[u8], content_type: Option<&str>) -> Result<Parsed, String> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Head {
        schema_version: Option<i64>,
        media_type: Option<String>,
        manifests: Option<serde_json::Value>,
    }
    let head: Head =
        serde_json::from_slice(body).map_err(|e| format!("the manifest is not JSON: {e}"))?;
    if head.schema_version != Some(2) {
        return Err(format!(
            "schema version {:?} is not supported (only schema 2 and OCI)",
            head.schema_version
        ));
    }
    let media_type = head
        .media_type
        .or_else(|| content_type.map(|c| c.split(';').next().unwrap_or(c).trim().to_string()))
        .unwrap_or_default();
    let is_list = match media_type.as_str() {
        IMAGE_MANIFEST_LIST_MEDIA_TYPE | OCI_IMAGE_INDEX_MEDIA_TYPE => true,
        IMAGE_MANIFEST_MEDIA_TYPE | OCI_IMAGE_MEDIA_TYPE => false,
        // An OCI manifest may omit its media type; its shape tells.
        _ => head.manifests.is_some(),
    };
    if is_list {
        let index: OciImageIndex =
            serde_json::from_slice(body).map_err(|e| format!("bad manifest list: {e}"))?;
        let children = index
            .manifests
            .iter()
            .map(|m| {
                let digest = m
                    .digest
                    .parse()
                    .map_err(|_| format!("child digest `{}` is not a sha256 digest", m.digest))?;
                let platform = m.platform.as_ref().map_or_else(
                    || "unknown".to_string(),
                    |p| match &p.variant {
                        Some(v) => format!("{}/{}/{v}", p.os, p.architecture),
                        None => format!("{}/{}", p.os, p.architecture),
                    },
                );
                Ok((digest, platform))
            })
            .collect::<Result<_, String>>()?;
        return Ok(Parsed::List(children));
    }
    let m: OciImageManifest =
        serde_json::from_slice(body).map_err(|e| format!("bad image manifest: {e}"))?;
    let config = descriptor(&m.config)?;
    let layers = m.layers.iter().map(descriptor).collect::<Result<_, _>>()?;
    if media_type.is_empty() {
        return Ok(Parsed::Image(OCI_IMAGE_MEDIA_TYPE.into(), config, layers));
    }
    Ok(Parsed::Image(media_type, config, layers))
}

/// The child for `linux/<goarch>` (for arm64 any variant, `v8` preferred).
pub(crate) fn pick(children: &[(Digest, String)], arch: Arch) -> Option<Digest> {
    let want = format!("linux/{}", arch.goarch());
    children
        .iter()
        .find(|(_, p)| *p == want || *p == format!("{want}/v8"))
        .or_else(|| {
            children
                .iter()
                .find(|(_, p)| p.starts_with(&format!("{want}/")))
        })
        .map(|(d, _)| d.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(c: char) -> String {
        format!("sha256:{}", c.to_string().repeat(64))
    }

    #[test]
    fn picks_the_platform_child() {
        let body = format!(
            r#"{{"schemaVersion":2,"mediaType":"{IMAGE_MANIFEST_LIST_MEDIA_TYPE}","manifests":[
            {{"mediaType":"{IMAGE_MANIFEST_MEDIA_TYPE}","digest":"{}","size":1,"platform":{{"os":"linux","architecture":"amd64"}}}},
            {{"mediaType":"{IMAGE_MANIFEST_MEDIA_TYPE}","digest":"{}","size":1,"platform":{{"os":"linux","architecture":"arm64","variant":"v8"}}}}]}}"#,
            d('a'),
            d('b')
        );
        let Ok(Parsed::List(children)) = parse(body.as_bytes(), None) else {
            panic!("not a list")
        };
        assert_eq!(pick(&children, Arch::Aarch64).unwrap().as_str(), d('b'));
        assert_eq!(pick(&children, Arch::X86_64).unwrap().as_str(), d('a'));
        assert!(pick(&children, Arch::S390x).is_none());
    }

    #[test]
    fn rejects_schema_1_and_garbage() {
        assert!(parse(br#"{"schemaVersion":1}"#, None).is_err());
        assert!(parse(b"<html>", None).is_err());
    }
}
