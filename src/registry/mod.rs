//! The registry client: the only code that speaks the distribution API, and the only async
//! code of the crate. A current-thread tokio runtime lives inside [`Client`]; its API is
//! synchronous, so the resolver, build, verify and collect call it from plain threads.
//!
//! What it guarantees:
//! - reads of a mirrored host (`[registries."quay.io"] mirror = ...`) go to the mirror with the
//!   mirror's credentials and `insecure` setting; nothing is sent to the mirrored host, and
//!   errors name both the source reference and the URL tried;
//! - HTTPS verified against the system roots and the host's CA certificates
//!   (`/etc/containers/certs.d/HOST/*.crt`, or `--cert-dir`); for hosts marked `insecure`, HTTPS
//!   without verification, then plain HTTP (`tls.rs`); never a redirect from HTTPS to HTTP;
//! - a registry's credentials only in requests to its own host (its token realm when on that
//!   host; a realm on another host gets that host's own credentials or none), never to a realm
//!   on plain HTTP unless that host is `insecure`;
//! - every manifest, config and fully read blob is checked against its digest, and content
//!   that does not match is never returned;
//! - one retry policy (`retry.rs`: tries, backoff with jitter, `Retry-After` honoured up to a
//!   cap) for every request: connection errors, resets, timeouts, 429, 5xx, and bodies that
//!   break mid-stream (documents are fetched again, blobs resumed with `Range`); a timeout on
//!   every request; at most `max_in_flight` requests at once;
//! - every body is read under a cap (`body.rs`); a bigger one is an error naming the URL;
//! - credentials never appear in any output or error.
//!
//! Why not `oci_client::Client` for the transport: it cannot HEAD without a fallback GET, it
//! folds token failures into anonymous requests, it has no retry, and its streamed blobs are
//! not digest-checked. Its manifest types are used for parsing.

mod auth;
mod blob;
mod body;
mod error;
mod fresh;
mod manifest;
mod retry;
mod route;
mod tag;
mod tls;
mod transport;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use reqwest::header::{CONTENT_TYPE, HeaderMap};
use reqwest::{Method, StatusCode};

pub use auth::{AuthFiles, Credentials, ToolAuthfile};
pub use blob::{BlobReader, TransferError};
pub use error::RegistryError;
pub use fresh::{StoreError, has_digest};
pub use manifest::{Descriptor, ImageManifest};

use crate::domain::RegistrySettings;
use crate::domain::{Arch, Digest, ImageRef};
use body::error_summary;
use route::Route;
use transport::{Request, Transport};

/// The largest manifest or config accepted; real ones are a few kilobytes.
const MAX_DOCUMENT: usize = 8 << 20;

/// How to build a [`Client`].
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// `matrix.registries`: mirrors and insecure hosts.
    pub registries: BTreeMap<String, RegistrySettings>,
    /// `--authfile`; `None` follows the lookup order of the contract.
    pub authfile: Option<std::path::PathBuf>,
    /// `--cert-dir`: CA certificates for every host, instead of
    /// `/etc/containers/certs.d/HOST/`.
    pub cert_dir: Option<std::path::PathBuf>,
    /// Requests in flight at once, over all threads.
    pub max_in_flight: usize,
    /// Per request (whole request for documents; between two reads for blobs).
    pub timeout: Duration,
    /// Retries after the first attempt (the budget is explained in `registry/retry.rs`).
    pub retries: u32,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            registries: BTreeMap::new(),
            authfile: None,
            cert_dir: None,
            max_in_flight: 8,
            timeout: Duration::from_secs(60),
            retries: retry::DEFAULT_RETRIES,
        }
    }
}

/// A synchronous registry client; cheap to clone and safe to share between threads.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub rt: tokio::runtime::Runtime,
    pub transport: Transport,
}

/// Bytes and requests so far, for `-v` and the benchmarks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    pub requests: u64,
    pub bytes: u64,
}

impl Client {
    pub fn new(opts: ClientOptions) -> Result<Client, RegistryError> {
        let auth = AuthFiles::load(opts.authfile.as_deref())?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| RegistryError::Client {
                message: e.to_string(),
            })?;
        // reqwest's client must be built inside the runtime it will run on.
        let transport = rt.block_on(async {
            Transport::new(
                opts.registries,
                auth,
                opts.cert_dir,
                (opts.max_in_flight, opts.timeout, opts.retries),
            )
        })?;
        Ok(Client {
            inner: Arc::new(Inner { rt, transport }),
        })
    }

    /// The credentials file buildah gets: this client's own credentials view (see
    /// `auth::tool_authfile`), so a credential helper the client already asked is not asked
    /// again.
    pub fn tool_authfile(
        &self,
        explicit: Option<&std::path::Path>,
    ) -> Result<Option<ToolAuthfile>, RegistryError> {
        auth::tool_authfile(explicit, self.inner.transport.auth())
    }

    pub fn stats(&self) -> Stats {
        let t = &self.inner.transport;
        Stats {
            requests: t.requests.load(Ordering::Relaxed),
            bytes: t.received.load(Ordering::Relaxed),
        }
    }

    /// The digest `r` currently names, by a single `HEAD`; `None` when the registry says it
    /// does not exist. A reference by digest is checked against what the registry answers.
    pub fn head_manifest(&self, r: &ImageRef) -> Result<Option<Digest>, RegistryError> {
        let t = &self.inner.transport;
        self.inner.rt.block_on(async {
            let route = t.route(r).await;
            let url = route.url("manifests", &object(r));
            let held = t
                .send(&Request {
                    accept: Some(manifest::ACCEPT),
                    ..Request::new(&route, Method::HEAD, &url)
                })
                .await?;
            let status = held.response.status();
            if status == StatusCode::NOT_FOUND {
                return Ok(None);
            }
            if !status.is_success() {
                return Err(status_error(&route, &url, status, String::new()));
            }
            match header_digest(held.response.headers()) {
                Some(d) => {
                    check_named(&route, &url, &d)?;
                    Ok(Some(d))
                }
                // No digest header: fall back to hashing the manifest itself.
                None => {
                    drop(held);
                    Ok(Some(self.document(&route, &url).await?.0))
                }
            }
        })
    }

    /// The single-platform image `r` names for `arch`: when `r` names a manifest list or an
    /// OCI index, its `linux/<goarch>` child.
    pub fn manifest(&self, r: &ImageRef, arch: Arch) -> Result<ImageManifest, RegistryError> {
        self.inner.rt.block_on(async {
            let route = self.inner.transport.route(r).await;
            let url = route.url("manifests", &object(r));
            let (digest, body, ctype) = self.document(&route, &url).await?;
            let malformed = |message: String, url: &str| RegistryError::Malformed {
                reference: r.to_string(),
                tried: url.to_string(),
                message,
            };
            match manifest::parse(&body, ctype.as_deref()).map_err(|m| malformed(m, &url))? {
                manifest::Parsed::Image(media_type, config, layers) => Ok(ImageManifest {
                    image_digest: digest.clone(),
                    digest,
                    from_list: false,
                    media_type,
                    config,
                    layers,
                }),
                manifest::Parsed::List(children) => {
                    let child = manifest::pick(&children, arch).ok_or_else(|| {
                        RegistryError::NoPlatform {
                            reference: r.to_string(),
                            platform: arch.platform(),
                            offered: children
                                .iter()
                                .map(|(_, p)| p.as_str())
                                .collect::<Vec<_>>()
                                .join(", "),
                        }
                    })?;
                    let child_ref = r.with_digest(child.clone());
                    let child_route = self.inner.transport.route(&child_ref).await;
                    let child_url = child_route.url("manifests", child.as_str());
                    let (image_digest, body, ctype) =
                        self.document(&child_route, &child_url).await?;
                    match manifest::parse(&body, ctype.as_deref())
                        .map_err(|m| malformed(m, &child_url))?
                    {
                        manifest::Parsed::Image(media_type, config, layers) => Ok(ImageManifest {
                            digest,
                            image_digest,
                            from_list: true,
                            media_type,
                            config,
                            layers,
                        }),
                        manifest::Parsed::List(_) => Err(malformed(
                            "a manifest list names another list for a platform".into(),
                            &child_url,
                        )),
                    }
                }
            }
        })
    }

    /// The config labels of an image (`config.Labels`), the config blob digest-checked.
    pub fn config_labels(
        &self,
        r: &ImageRef,
        image: &ImageManifest,
    ) -> Result<BTreeMap<String, String>, RegistryError> {
        let (url, body) = self.inner.rt.block_on(async {
            let route = self.inner.transport.route(r).await;
            let url = route.url("blobs", image.config.digest.as_str());
            let named = r.with_digest(image.config.digest.clone());
            let route = Route {
                source: named,
                ..route
            };
            let (d, body, _) = self.document(&route, &url).await?;
            check_equal(&route, &url, &image.config.digest, &d)?;
            Ok::<_, RegistryError>((url, body))
        })?;
        #[derive(serde::Deserialize)]
        struct Config {
            #[serde(default)]
            config: Option<Inner>,
        }
        #[derive(serde::Deserialize)]
        struct Inner {
            #[serde(default, rename = "Labels")]
            labels: Option<BTreeMap<String, String>>,
        }
        let c: Config = serde_json::from_slice(&body).map_err(|e| RegistryError::Malformed {
            reference: r.to_string(),
            tried: url.clone(),
            message: format!("the image config is not JSON: {e}"),
        })?;
        Ok(c.config.and_then(|c| c.labels).unwrap_or_default())
    }

    /// Streams a blob of `r`'s repository. Reading it to the end checks its digest (a
    /// mismatch is an `InvalidData` error at the end); dropping it early closes the connection
    /// and leaves the bytes not read unverified.
    pub fn blob_reader(
        &self,
        r: &ImageRef,
        blob: &Descriptor,
    ) -> Result<BlobReader, RegistryError> {
        let named = r.with_digest(blob.digest.clone());
        let route = self.inner.rt.block_on(self.inner.transport.route(&named));
        let url = route.url("blobs", blob.digest.as_str());
        BlobReader::open(self.inner.clone(), route, url, blob)
    }

    /// Where reads of `r` go, as `host/repository` (the mirror's when the matrix names one):
    /// what an error about a missing tag should name.
    pub fn location(&self, r: &ImageRef) -> String {
        let route = self.inner.rt.block_on(self.inner.transport.route(r));
        format!("{}/{}", route.host, route.repository)
    }

    /// The tags of `r`'s repository (`GET /v2/<repository>/tags/list`, the first page only,
    /// capped like a manifest): for naming the nearest tag to one that does not exist.
    pub fn tags(&self, r: &ImageRef) -> Result<Vec<String>, RegistryError> {
        #[derive(serde::Deserialize)]
        struct List {
            #[serde(default)]
            tags: Option<Vec<String>>,
        }
        let route = self.inner.rt.block_on(self.inner.transport.route(r));
        let url = format!("{}?n=10000", route.url("tags", "list"));
        let req = Request {
            accept: Some("application/json"),
            ..Request::new(&route, Method::GET, &url)
        };
        let fetched = self
            .inner
            .rt
            .block_on(self.inner.transport.fetch(&req, MAX_DOCUMENT))?;
        if !fetched.status.is_success() {
            return Err(status_error(
                &route,
                &url,
                fetched.status,
                error_summary(&fetched.body),
            ));
        }
        let list: List =
            serde_json::from_slice(&fetched.body).map_err(|e| RegistryError::Malformed {
                reference: r.to_string(),
                tried: url.clone(),
                message: format!("the tag list is not JSON: {e}"),
            })?;
        Ok(list.tags.unwrap_or_default())
    }

    /// A small JSON document over plain HTTP(S), e.g. the update graph. Not a registry call,
    /// but it shares the runtime, timeouts and retries.
    pub fn get_json(&self, url: &str) -> Result<Vec<u8>, RegistryError> {
        let source: ImageRef = "update-graph.invalid/graph"
            .parse()
            .expect("a constant, valid reference");
        let route = Route {
            source,
            host: String::new(),
            repository: String::new(),
            scheme: "https",
        };
        let req = Request {
            accept: Some("application/json"),
            authenticate: false,
            ..Request::new(&route, Method::GET, url)
        };
        let fetched = self
            .inner
            .rt
            .block_on(self.inner.transport.fetch(&req, MAX_DOCUMENT))
            .map_err(|e| match e {
                RegistryError::Network { message, .. }
                | RegistryError::Malformed { message, .. } => graph_error(url, message),
                e => e,
            })?;
        // The server answered, and said there is no such document (an update graph's answer
        // for a channel it does not know): not a network failure.
        if matches!(
            fetched.status,
            StatusCode::BAD_REQUEST | StatusCode::NOT_FOUND | StatusCode::GONE
        ) {
            return Err(RegistryError::NotFound {
                reference: url.to_string(),
                tried: String::new(),
                said: format!("HTTP {}: {}", fetched.status, error_summary(&fetched.body)),
            });
        }
        if !fetched.status.is_success() {
            return Err(graph_error(
                url,
                format!("HTTP {}: {}", fetched.status, error_summary(&fetched.body)),
            ));
        }
        Ok(fetched.body)
    }

    /// GETs a manifest or config and checks it: its sha256 must equal the digest the reference
    /// names and the `Docker-Content-Digest` the registry sent.
    async fn document(
        &self,
        route: &Route,
        url: &str,
    ) -> Result<(Digest, Vec<u8>, Option<String>), RegistryError> {
        let req = Request {
            accept: Some(manifest::ACCEPT),
            ..Request::new(route, Method::GET, url)
        };
        let fetched = self.inner.transport.fetch(&req, MAX_DOCUMENT).await?;
        let (status, headers, body) = (fetched.status, fetched.headers, fetched.body);
        if !status.is_success() {
            return Err(status_error(route, url, status, error_summary(&body)));
        }
        let actual = Digest::sha256(&body);
        if let Some(d) = header_digest(&headers) {
            check_equal(route, url, &d, &actual)?;
        }
        check_named(route, url, &actual)?;
        let ctype = headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        Ok((actual, body, ctype))
    }
}

fn graph_error(url: &str, message: String) -> RegistryError {
    RegistryError::Network {
        reference: "the update graph".into(),
        tried: url.to_string(),
        message,
    }
}

/// The tag or digest part of a manifest URL.
fn object(r: &ImageRef) -> String {
    match (r.digest(), r.tag()) {
        (Some(d), _) => d.to_string(),
        (None, Some(t)) => t.to_string(),
        (None, None) => "latest".to_string(),
    }
}

fn header_digest(headers: &HeaderMap) -> Option<Digest> {
    headers
        .get("docker-content-digest")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}

fn check_named(route: &Route, url: &str, actual: &Digest) -> Result<(), RegistryError> {
    match route.source.digest() {
        Some(expected) => check_equal(route, url, expected, actual),
        None => Ok(()),
    }
}

fn check_equal(
    route: &Route,
    url: &str,
    expected: &Digest,
    actual: &Digest,
) -> Result<(), RegistryError> {
    if expected == actual {
        Ok(())
    } else {
        Err(RegistryError::DigestMismatch {
            reference: route.source.to_string(),
            tried: url.to_string(),
            expected: expected.to_string(),
            actual: actual.to_string(),
        })
    }
}

pub(crate) fn status_error(
    route: &Route,
    url: &str,
    status: StatusCode,
    said: String,
) -> RegistryError {
    let reference = route.source.to_string();
    let tried = url.to_string();
    let said = if said.is_empty() {
        status
            .canonical_reason()
            .unwrap_or("no details")
            .to_string()
    } else {
        said
    };
    match status {
        StatusCode::NOT_FOUND => RegistryError::NotFound {
            reference,
            tried,
            said,
        },
        StatusCode::FORBIDDEN => RegistryError::Unauthorized {
            reference,
            tried,
            status: 403,
            said,
            help: "the credentials are valid but may not read this repository".into(),
        },
        _ => RegistryError::Status {
            reference,
            tried,
            status: status.as_u16(),
            said,
        },
    }
}

/// For the unit tests of the registry code: a client of `addr` over plain HTTP, with no
/// credentials from the machine, a 5 s timeout and 3 retries.
#[cfg(test)]
pub(crate) fn test_client(addr: &str) -> Client {
    let dir = tempfile::tempdir().expect("a temporary directory").keep();
    std::fs::write(dir.join("auth.json"), "{}").expect("writing an empty auth file");
    let mut registries = BTreeMap::new();
    registries.insert(
        addr.to_string(),
        RegistrySettings {
            mirror: None,
            insecure: true,
        },
    );
    Client::new(ClientOptions {
        registries,
        authfile: Some(dir.join("auth.json")),
        timeout: Duration::from_secs(5),
        retries: 3,
        ..ClientOptions::default()
    })
    .expect("a client")
}
