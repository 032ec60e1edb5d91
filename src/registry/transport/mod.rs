//! The HTTP side of the distribution API: where a reference is read from (mirrors; HTTPS, or
//! plain HTTP for insecure hosts that do not speak TLS, see `tls.rs`), authentication (bearer
//! tokens and basic; a registry's credentials go only to its own host, so a token realm on
//! another host gets that host's own credentials or none, and never over plain HTTP unless its
//! host is `insecure`), timeouts, and the bound on requests in flight. Every request, token
//! requests included, is tried under the one [`RetryPolicy`]; [`Transport::fetch`] reads the
//! body within the try, so a document whose body breaks is fetched again. All of it async;
//! [`super::Client`] wraps it in a synchronous API.
//!
//! This file holds the transport's state, the shapes of a request and a response, and where a
//! reference is routed; `send.rs` the tries (one send, one capped body) under the policy,
//! `challenge.rs` what a host asks for in its 401 and the header that answers it, `token.rs`
//! bearer tokens and whose credentials a token service gets, `refused.rs` what a refusal says.

mod challenge;
mod refused;
mod send;
mod token;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use reqwest::header::HeaderMap;
use reqwest::{Method, Response, StatusCode};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::auth::{AuthFiles, Credentials};
use super::error::RegistryError;
use super::retry::RetryPolicy;
use super::route::Route;
use super::tls::{Clients, host_port};
use crate::domain::{ImageRef, RegistrySettings};
use challenge::Challenge;

pub(crate) struct Transport {
    clients: Clients,
    registries: BTreeMap<String, RegistrySettings>,
    auth: AuthFiles,
    challenges: Mutex<HashMap<String, Challenge>>,
    /// Bearer tokens by (host, repository, whether the token may push).
    tokens: Mutex<HashMap<(String, String, bool), String>>,
    /// Registry hosts whose credentials were withheld from a token realm on another host
    /// (to say so when the registry then refuses).
    withheld: Mutex<std::collections::BTreeSet<String>>,
    permits: std::sync::Arc<Semaphore>,
    pub policy: RetryPolicy,
    pub timeout: Duration,
    /// Response body bytes received, for `-v` and the benchmarks.
    pub received: AtomicU64,
    pub requests: AtomicU64,
}

/// A response and the permit that counts it as in flight until it is dropped.
pub(crate) struct Held {
    pub response: Response,
    pub _permit: OwnedSemaphorePermit,
}

/// One request as every try sends it.
pub(crate) struct Request<'a> {
    pub route: &'a Route,
    pub method: Method,
    pub url: &'a str,
    pub accept: Option<&'a str>,
    /// The timeout covers the whole exchange (documents), not only each read (blobs).
    pub whole_timeout: bool,
    pub range: Option<&'a str>,
    /// Registry authentication (challenges, tokens, credentials); off for the update graph.
    pub authenticate: bool,
    /// A body to send, with its `Content-Type` (a manifest `PUT`).
    pub body: Option<(&'a str, &'a [u8])>,
    /// Whether the request writes: a bearer token is then asked for `pull,push`.
    pub push: bool,
}

impl<'a> Request<'a> {
    /// A registry `GET` (or `HEAD`) with the whole-exchange timeout.
    pub fn new(route: &'a Route, method: Method, url: &'a str) -> Request<'a> {
        Request {
            route,
            method,
            url,
            accept: None,
            whole_timeout: true,
            range: None,
            authenticate: true,
            body: None,
            push: false,
        }
    }
}

/// A response read whole: status, headers and body.
pub(crate) struct Fetched {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Transport {
    /// The credentials files this transport answers from.
    pub(crate) fn auth(&self) -> &AuthFiles {
        &self.auth
    }

    pub fn new(
        registries: BTreeMap<String, RegistrySettings>,
        auth: AuthFiles,
        cert_dir: Option<PathBuf>,
        (max_in_flight, timeout, retries): (usize, Duration, u32),
    ) -> Result<Transport, RegistryError> {
        Ok(Transport {
            clients: Clients::new(cert_dir, timeout),
            registries,
            auth,
            challenges: Mutex::default(),
            tokens: Mutex::default(),
            withheld: Mutex::default(),
            permits: std::sync::Arc::new(Semaphore::new(max_in_flight.max(1))),
            policy: RetryPolicy::new(retries),
            timeout,
            received: AtomicU64::new(0),
            requests: AtomicU64::new(0),
        })
    }

    /// Where reads of `r` go: its mirror when the matrix names one; over HTTPS, or plain HTTP
    /// when the host actually contacted is marked insecure and does not answer HTTPS.
    pub async fn route(&self, r: &ImageRef) -> Route {
        let physical = match self
            .registries
            .get(r.registry())
            .and_then(|s| s.mirror.as_ref())
        {
            Some(m) => r.rehomed(&m.host, m.namespace.as_deref()),
            None => r.clone(),
        };
        self.route_via(r, &physical).await
    }

    /// Where writes to `r` go: its own host, never a mirror (mirrors serve reads only; buildah
    /// pushes to the source too).
    pub async fn route_to_source(&self, r: &ImageRef) -> Route {
        self.route_via(r, r).await
    }

    async fn route_via(&self, r: &ImageRef, physical: &ImageRef) -> Route {
        let insecure = self.insecure(physical.registry());
        let host = match physical.registry() {
            "docker.io" => "registry-1.docker.io".to_string(),
            h => h.to_string(),
        };
        Route {
            source: r.clone(),
            scheme: self.clients.scheme(&host, insecure).await,
            host,
            repository: physical.repository().to_string(),
        }
    }

    /// Whether `[registries."HOST"]` marks `host` insecure.
    pub(super) fn insecure(&self, host: &str) -> bool {
        self.registries.get(host).is_some_and(|s| s.insecure)
    }

    /// The HTTP client for `url`: its host's CA certificates, no verification when insecure.
    pub(super) fn http(&self, url: &reqwest::Url) -> Result<reqwest::Client, RegistryError> {
        let host = host_port(url);
        let insecure = self.insecure(&host);
        self.clients.get(&host, !insecure)
    }

    pub(super) fn credentials(&self, route: &Route) -> Option<(Credentials, PathBuf)> {
        self.auth.lookup(auth_host(route), &route.repository)
    }

    pub fn network(&self, route: &Route, url: &str, message: String) -> RegistryError {
        RegistryError::Network {
            reference: route.source.to_string(),
            tried: url.to_string(),
            message,
        }
    }
}

/// The host credentials are keyed by (`docker.io` for Docker Hub's API host).
pub(super) fn auth_host(route: &Route) -> &str {
    if route.host == "registry-1.docker.io" {
        "docker.io"
    } else {
        &route.host
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mirrored_reads_go_to_the_mirror_and_keep_the_source_for_messages() {
        use crate::domain::Mirror;
        let mut registries = BTreeMap::new();
        registries.insert(
            "quay.io".to_string(),
            RegistrySettings {
                mirror: Some(Mirror {
                    host: "127.0.0.1:5000".into(),
                    namespace: Some("ocp".into()),
                }),
                insecure: false,
            },
        );
        registries.insert(
            "127.0.0.1:5000".to_string(),
            RegistrySettings {
                mirror: None,
                insecure: true,
            },
        );
        let t = Transport::new(
            registries,
            AuthFiles::default(),
            None,
            (1, Duration::from_secs(1), 0),
        )
        .unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let r: ImageRef = "quay.io/openshift-release-dev/ocp-release:4.14.12-x86_64"
            .parse()
            .unwrap();
        // Nothing listens on that port: HTTPS fails, plain HTTP is kept for the insecure host.
        let route = rt.block_on(t.route(&r));
        assert_eq!(
            route.url("manifests", "4.14.12-x86_64"),
            "http://127.0.0.1:5000/v2/ocp/openshift-release-dev/ocp-release/manifests/4.14.12-x86_64"
        );
        assert_eq!(route.source, r);
        let other: ImageRef = "registry.example/a/b:c".parse().unwrap();
        assert_eq!(
            rt.block_on(t.route(&other)).url("manifests", "c"),
            "https://registry.example/v2/a/b/manifests/c"
        );
    }
}
