//! The one write the client makes: moving a tag. The manifest a digest names is read from the
//! tag's repository and checked against that digest, then the same bytes are `PUT` under the
//! tag, on the repository's own host (never a mirror). `build` moves a job's tag this way only
//! once the image it pushed by digest has been confirmed.

use reqwest::Method;

use super::body::error_summary;
use super::transport::Request;
use super::{Client, MAX_DOCUMENT, RegistryError, check_equal, header_digest, status_error};
use crate::domain::{Digest, ImageRef};

impl Client {
    /// Points `target`'s tag at the manifest `digest` names in the same repository. The bytes
    /// written are the ones read by `digest`, after their sha256 matched it, and the registry's
    /// answer must name that digest too.
    pub fn tag_manifest(&self, target: &ImageRef, digest: &Digest) -> Result<(), RegistryError> {
        let tag = target.tag().ok_or_else(|| RegistryError::Malformed {
            reference: target.to_string(),
            tried: String::new(),
            message: "a tag can only be moved by a reference that names one".into(),
        })?;
        let t = &self.inner.transport;
        self.inner.rt.block_on(async {
            let pinned = target.with_digest(digest.clone());
            let from = t.route_to_source(&pinned).await;
            let url = from.url("manifests", digest.as_str());
            // `document` checks the bytes against the digest the reference names.
            let (_, body, ctype) = self.document(&from, &url).await?;
            let media_type = media_type(&body, ctype.as_deref());
            let to = t.route_to_source(target).await;
            let put = to.url("manifests", tag);
            let req = Request {
                body: Some((&media_type, &body)),
                push: true,
                ..Request::new(&to, Method::PUT, &put)
            };
            let answer = t.fetch(&req, MAX_DOCUMENT).await?;
            if !answer.status.is_success() {
                return Err(status_error(
                    &to,
                    &put,
                    answer.status,
                    error_summary(&answer.body),
                ));
            }
            match header_digest(&answer.headers) {
                Some(d) => check_equal(&to, &put, digest, &d),
                None => Ok(()),
            }
        })
    }
}

/// The manifest's own `mediaType`, else the `Content-Type` it was served with, else OCI's.
fn media_type(body: &[u8], content_type: Option<&str>) -> String {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Head {
        media_type: Option<String>,
    }
    serde_json::from_slice::<Head>(body)
        .ok()
        .and_then(|h| h.media_type)
        .or_else(|| content_type.map(|c| c.split(';').next().unwrap_or(c).trim().to_string()))
        .unwrap_or_else(|| oci_client::manifest::OCI_IMAGE_MEDIA_TYPE.to_string())
}

#[cfg(test)]
mod tests {
    use super::media_type;
    use crate::domain::{Digest, ImageRef};
    use crate::registry::{Client, ClientOptions, RegistryError};
    use driver_matrix_sandbox::faulty::{FaultServer, Reply};

    /// A client for a registry and its token service, both on plain-HTTP loopback.
    fn client(hosts: &[&str]) -> Client {
        let dir = tempfile::tempdir().unwrap().keep();
        std::fs::write(dir.join("auth.json"), "{}").unwrap();
        let settings = crate::domain::RegistrySettings {
            mirror: None,
            insecure: true,
        };
        Client::new(ClientOptions {
            registries: hosts
                .iter()
                .map(|h| (h.to_string(), settings.clone()))
                .collect(),
            authfile: Some(dir.join("auth.json")),
            retries: 0,
            ..ClientOptions::default()
        })
        .unwrap()
    }

    #[test]
    fn the_tag_gets_the_bytes_read_by_digest_with_a_token_that_may_push() {
        let mt = "application/vnd.oci.image.manifest.v1+json";
        let manifest = format!(
            r#"{{"schemaVersion":2,"mediaType":"{mt}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:{0}","size":2}},"layers":[]}}"#,
            "a".repeat(64)
        );
        let digest = Digest::sha256(manifest.as_bytes());
        let token = FaultServer::start().unwrap();
        let scope = |access: &str| format!("/token?scope=repository%3Aa%2Fb%3A{access}&service=s");
        token.route(
            &scope("pull"),
            Reply::ok("application/json", br#"{"token":"r"}"#),
        );
        token.route(
            &scope("pull%2Cpush"),
            Reply::ok("application/json", br#"{"token":"w"}"#),
        );
        let up = FaultServer::start().unwrap();
        let challenge = format!(
            r#"Bearer realm="http://{}/token",service="s""#,
            token.addr()
        );
        up.fail_next(Reply::status(401).header("WWW-Authenticate", &challenge));
        up.route(
            &format!("/v2/a/b/manifests/{digest}"),
            Reply::ok(mt, manifest.as_bytes()),
        );
        up.route(
            "/v2/a/b/manifests/t",
            Reply::status(201).header("Docker-Content-Digest", digest.as_str()),
        );
        let c = client(&[up.addr(), token.addr()]);
        let tagged: ImageRef = format!("{}/a/b:t", up.addr()).parse().unwrap();
        c.tag_manifest(&tagged, &digest).unwrap();
        assert_eq!(
            up.requests(),
            [
                format!("GET /v2/a/b/manifests/{digest}"),
                format!("GET /v2/a/b/manifests/{digest}"),
                "PUT /v2/a/b/manifests/t".to_string(),
            ]
        );
        assert_eq!(
            token.requests(),
            [
                format!("GET {}", scope("pull")),
                format!("GET {}", scope("pull%2Cpush"))
            ],
            "the read's token may only pull; the write asks for one that may push"
        );

        // Bytes that are not the digest's are never written.
        let other = Digest::sha256(b"something else");
        up.route(
            &format!("/v2/a/b/manifests/{other}"),
            Reply::ok(mt, manifest.as_bytes()),
        );
        let err = c.tag_manifest(&tagged, &other).unwrap_err();
        assert!(
            matches!(err, RegistryError::DigestMismatch { .. }),
            "{err:?}"
        );
        assert_eq!(
            up.requests()
                .iter()
                .filter(|r| r.starts_with("PUT"))
                .count(),
            1
        );
        // A registry that stores other bytes under the tag is an error too.
        up.route(
            "/v2/a/b/manifests/t",
            Reply::status(201).header("Docker-Content-Digest", other.as_str()),
        );
        let err = c.tag_manifest(&tagged, &digest).unwrap_err();
        assert!(
            matches!(err, RegistryError::DigestMismatch { .. }),
            "{err:?}"
        );
    }

    #[test]
    fn the_media_type_is_the_manifests_own_first() {
        let oci = "application/vnd.oci.image.manifest.v1+json";
        let docker = "application/vnd.docker.distribution.manifest.v2+json";
        let body = format!(r#"{{"schemaVersion":2,"mediaType":"{docker}"}}"#);
        assert_eq!(media_type(body.as_bytes(), Some(oci)), docker);
        let bare = br#"{"schemaVersion":2}"#;
        assert_eq!(
            media_type(bare, Some(&format!("{docker}; charset=utf-8"))),
            docker
        );
        assert_eq!(media_type(bare, None), oci);
    }
}
