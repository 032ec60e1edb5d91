//! The HTTP side of the distribution API: where a reference is read from (mirrors; HTTPS, or
//! plain HTTP for insecure hosts that do not speak TLS, see `tls.rs`), authentication (bearer
//! tokens and basic; a registry's credentials go only to its own host, so a token realm on
//! another host gets that host's own credentials or none, and never over plain HTTP unless its
//! host is `insecure`), timeouts, and the bound on
//! requests in flight. Every request, token requests included, is tried under the one
//! [`RetryPolicy`]; [`Transport::fetch`] reads the body within the try, so a document whose
//! body breaks is fetched again. All of it async; [`super::Client`] wraps it in a synchronous
//! API.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use reqwest::header::{ACCEPT, AUTHORIZATION, HeaderMap, RETRY_AFTER, WWW_AUTHENTICATE};

use reqwest::{Method, Response, StatusCode};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::auth::{AuthFiles, Credentials};
use super::body::{BodyError, ERROR_BODY_CAP, error_body, read_body, said, too_large};
use super::error::RegistryError;
use super::retry::{Attempt, RetryPolicy};
use super::route::{Route, describe};
use super::tls::{Clients, host_port};
use crate::domain::{ImageRef, RegistrySettings};

/// How a host wants to be authenticated, learnt from its first 401.
#[derive(Debug, Clone)]
enum Challenge {
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
    },
}

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

/// The most of a token response read; real tokens are a few kilobytes.
const TOKEN_CAP: usize = 1 << 20;

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

/// How one try failed before there was a response.
enum Failure {
    /// A refused or reset connection, a timeout: worth another try.
    Transient(RegistryError),
    /// Worth nothing more (a refused login, a malformed URL).
    Final(RegistryError),
}

impl Failure {
    /// What the retry policy makes of a try that failed this way.
    fn attempt<T>(self) -> Attempt<T> {
        match self {
            Failure::Transient(e) => Attempt::Retry {
                last: Err(e),
                after: None,
            },
            Failure::Final(e) => Attempt::Done(Err(e)),
        }
    }
}

impl Transport {
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
    fn insecure(&self, host: &str) -> bool {
        self.registries.get(host).is_some_and(|s| s.insecure)
    }

    /// The HTTP client for `url`: its host's CA certificates, no verification when insecure.
    fn http(&self, url: &reqwest::Url) -> Result<reqwest::Client, RegistryError> {
        let host = host_port(url);
        let insecure = self.insecure(&host);
        self.clients.get(&host, !insecure)
    }

    fn credentials(&self, route: &Route) -> Option<(Credentials, PathBuf)> {
        self.auth.lookup(auth_host(route), &route.repository)
    }

    /// The `Authorization` header to send before any challenge, when one is known. A write
    /// (`push`) gets a bearer token of its own, asked for `pull,push`; reads keep theirs,
    /// asked for `pull` only.
    async fn authorization(
        &self,
        route: &Route,
        push: bool,
    ) -> Result<Option<String>, RegistryError> {
        let challenge = self
            .challenges
            .lock()
            .expect("the challenge map is never poisoned")
            .get(&route.host)
            .cloned();
        match challenge {
            None => Ok(None),
            Some(Challenge::Basic) => Ok(self.credentials(route).map(|(c, _)| c.basic_header())),
            Some(Challenge::Bearer { realm, service }) => {
                let key = (route.host.clone(), route.repository.clone(), push);
                let cached = self
                    .tokens
                    .lock()
                    .expect("the token map is never poisoned")
                    .get(&key)
                    .cloned();
                let token = match cached {
                    Some(t) => t,
                    None => {
                        let t = self
                            .fetch_token(route, &realm, service.as_deref(), push)
                            .await?;
                        self.tokens
                            .lock()
                            .expect("the token map is never poisoned")
                            .insert(key, t.clone());
                        t
                    }
                };
                Ok(Some(format!("Bearer {token}")))
            }
        }
    }

    /// A bearer token for `route` from `realm`, sending the host's credentials only where they
    /// belong. (Its length is the one retried attempt, kept whole: the request, the capped body
    /// and the decision to retry.)
    async fn fetch_token(
        &self,
        route: &Route,
        realm: &str,
        service: Option<&str>,
        push: bool,
    ) -> Result<String, RegistryError> {
        let access = if push { "pull,push" } else { "pull" };
        let scope = format!("repository:{}:{access}", route.repository);
        let mut params = vec![("scope", scope.as_str())];
        if let Some(s) = service {
            params.push(("service", s));
        }
        let url = reqwest::Url::parse_with_params(realm, &params)
            .map_err(|e| self.network(route, realm, format!("bad token realm `{realm}`: {e}")))?;
        if url.scheme() != "https" && !self.insecure(&host_port(&url)) {
            return Err(RegistryError::InsecureRealm {
                reference: route.source.to_string(),
                realm: realm.to_string(),
                host: host_port(&url),
            });
        }
        let http = self.http(&url)?;
        let credentials = self.token_credentials(route, &host_port(&url));
        let Fetched { status, body, .. } = self
            .policy
            .run(|_| async {
                let mut req = http.get(url.clone()).timeout(self.timeout);
                if let Some(c) = &credentials {
                    req = req.header(AUTHORIZATION, c.basic_header());
                }
                self.requests.fetch_add(1, Ordering::Relaxed);
                match req.send().await {
                    Ok(resp) => self.read_capped(route, realm, resp, TOKEN_CAP).await,
                    Err(e) => self.failure(route, realm, &e).attempt(),
                }
            })
            .await?;
        if !status.is_success() {
            return Err(self.unauthorized(route, realm, status.as_u16(), said(&body)));
        }
        token_of(route, realm, &body)
    }

    /// The credentials a token request to `realm_host` carries: the registry's own when the
    /// realm is on the registry's host; else those the auth files hold for the realm's host,
    /// or none (an anonymous token), the registry's being withheld. containers/image sends the
    /// registry's to any HTTPS realm; here credentials reach only their hosts (docs/registries.md).
    fn token_credentials(&self, route: &Route, realm_host: &str) -> Option<Credentials> {
        if realm_host == route.host || realm_host == auth_host(route) {
            return self.credentials(route).map(|(c, _)| c);
        }
        let own = self
            .auth
            .lookup(realm_host, &route.repository)
            .map(|(c, _)| c);
        if own.is_none() && self.credentials(route).is_some() {
            self.withheld
                .lock()
                .expect("the withheld set is never poisoned")
                .insert(format!("{}\u{0}{realm_host}", route.host));
        }
        own
    }

    /// The token realm's host that `route`'s host's credentials were withheld from, if any.
    fn withheld_from(&self, route: &Route) -> Option<String> {
        let prefix = format!("{}\u{0}", route.host);
        self.withheld
            .lock()
            .expect("the withheld set is never poisoned")
            .iter()
            .find_map(|k| k.strip_prefix(&prefix).map(str::to_string))
    }

    /// Sends `req`, authenticating on a challenge and retrying what is worth retrying under
    /// the policy. Returns the final response whatever its status (except 401, an error), with
    /// the permit that keeps it counted as in flight.
    pub async fn send(&self, req: &Request<'_>) -> Result<Held, RegistryError> {
        self.policy
            .run(|_| async {
                match self.send_once(req).await {
                    Ok(held) => match retryable_status(&held.response) {
                        Some(after) => Attempt::Retry {
                            last: Ok(held),
                            after,
                        },
                        None => Attempt::Done(Ok(held)),
                    },
                    Err(failure) => failure.attempt(),
                }
            })
            .await
    }

    /// GETs `req` and reads its body (at most `cap` bytes) within each try, so that a body
    /// that breaks mid-stream is tried again like a refused connection. Error bodies are read
    /// too (for the message), up to [`ERROR_BODY_CAP`].
    pub async fn fetch(&self, req: &Request<'_>, cap: usize) -> Result<Fetched, RegistryError> {
        self.policy
            .run(|_| async {
                let held = match self.send_once(req).await {
                    Ok(held) => held,
                    Err(failure) => return failure.attempt(),
                };
                let attempt = self
                    .read_capped(req.route, req.url, held.response, cap)
                    .await;
                if let Attempt::Done(Ok(f)) | Attempt::Retry { last: Ok(f), .. } = &attempt {
                    self.received
                        .fetch_add(f.body.len() as u64, Ordering::Relaxed);
                }
                attempt
            })
            .await
    }

    /// The capped-body half of one try: reads `resp`'s body, at most `cap` bytes (at most
    /// [`ERROR_BODY_CAP`] for an error status), and says what the retry policy makes of it: a
    /// body over its cap is final, one that breaks mid-stream or a retryable status (429,
    /// 5xx) is worth another try.
    async fn read_capped(
        &self,
        route: &Route,
        url: &str,
        resp: Response,
        cap: usize,
    ) -> Attempt<Fetched> {
        let retry = retryable_status(&resp);
        let status = resp.status();
        let headers = resp.headers().clone();
        let cap = if status.is_success() {
            cap
        } else {
            ERROR_BODY_CAP
        };
        let body = match read_body(resp, cap).await {
            Ok(body) => body,
            Err(BodyError::TooLarge) => {
                return Attempt::Done(Err(too_large(route, url, status, cap)));
            }
            Err(BodyError::Broken(message)) => {
                return Attempt::Retry {
                    last: Err(self.network(route, url, message)),
                    after: retry.flatten(),
                };
            }
        };
        let fetched = Fetched {
            status,
            headers,
            body,
        };
        match retry {
            Some(after) => Attempt::Retry {
                last: Ok(fetched),
                after,
            },
            None => Attempt::Done(Ok(fetched)),
        }
    }

    /// One try: the request, and again once with credentials when the first answer is a
    /// challenge the client can meet.
    async fn send_once(&self, req: &Request<'_>) -> Result<Held, Failure> {
        let route = req.route;
        let mut challenged = false;
        loop {
            let permit = self
                .permits
                .clone()
                .acquire_owned()
                .await
                .expect("the semaphore is never closed");
            let mut builder = self.builder(req)?;
            if req.authenticate
                && let Some(auth) = self
                    .authorization(route, req.push)
                    .await
                    .map_err(Failure::Final)?
            {
                builder = builder.header(AUTHORIZATION, auth);
            }
            self.requests.fetch_add(1, Ordering::Relaxed);
            let resp = builder
                .send()
                .await
                .map_err(|e| self.failure(route, req.url, &e))?;
            if resp.status() != StatusCode::UNAUTHORIZED || !req.authenticate {
                return Ok(Held {
                    response: resp,
                    _permit: permit,
                });
            }
            let learnt = parse_challenge(resp.headers());
            let body = error_body(route, req.url, resp)
                .await
                .map_err(Failure::Final)?;
            drop(permit);
            if challenged || !self.learn(route, learnt) {
                return Err(Failure::Final(self.unauthorized(
                    route,
                    req.url,
                    401,
                    said(&body),
                )));
            }
            challenged = true;
        }
    }

    /// `req` as every try starts it: its host's client, method, timeout, headers and body
    /// (the `Authorization` header comes later, from what the host asked for).
    fn builder(&self, req: &Request<'_>) -> Result<reqwest::RequestBuilder, Failure> {
        let url = reqwest::Url::parse(req.url).map_err(|e| {
            Failure::Final(self.network(req.route, req.url, format!("not a URL: {e}")))
        })?;
        let mut builder = self
            .http(&url)
            .map_err(Failure::Final)?
            .request(req.method.clone(), req.url);
        if req.whole_timeout {
            builder = builder.timeout(self.timeout);
        }
        if let Some(a) = req.accept {
            builder = builder.header(ACCEPT, a);
        }
        if let Some(r) = req.range {
            builder = builder.header(reqwest::header::RANGE, r);
        }
        if let Some((content_type, body)) = req.body {
            builder = builder
                .header(reqwest::header::CONTENT_TYPE, content_type)
                .body(body.to_vec());
        }
        Ok(builder)
    }

    /// Records a host's challenge; false when the client cannot meet it (basic auth without
    /// credentials, an unknown scheme).
    fn learn(&self, route: &Route, challenge: Option<Challenge>) -> bool {
        let ch = match challenge {
            Some(ch @ Challenge::Bearer { .. }) => {
                let mut tokens = self.tokens.lock().expect("the token map is never poisoned");
                for push in [false, true] {
                    tokens.remove(&(route.host.clone(), route.repository.clone(), push));
                }
                drop(tokens);
                ch
            }
            Some(ch @ Challenge::Basic) if self.credentials(route).is_some() => ch,
            _ => return false,
        };
        self.challenges
            .lock()
            .expect("the challenge map is never poisoned")
            .insert(route.host.clone(), ch);
        true
    }

    /// A send to `url` that failed before there was a response: transient when the
    /// connection was refused, reset or timed out.
    fn failure(&self, route: &Route, url: &str, e: &reqwest::Error) -> Failure {
        let error = self.network(route, url, describe(e));
        if transient(e) {
            Failure::Transient(error)
        } else {
            Failure::Final(error)
        }
    }

    pub fn network(&self, route: &Route, url: &str, message: String) -> RegistryError {
        RegistryError::Network {
            reference: route.source.to_string(),
            tried: url.to_string(),
            message,
        }
    }

    fn unauthorized(&self, route: &Route, url: &str, status: u16, said: String) -> RegistryError {
        let host = route.source.registry();
        let unavailable = self.auth.unavailable(auth_host(route));
        let withheld = self.withheld_from(route);
        let mut help = match (self.credentials(route), unavailable, withheld) {
            (Some(_), _, Some(realm)) => format!(
                "`{}` sends clients to the token service `{realm}`, another host: driver-matrix sends a registry's credentials only to that registry, so the token was asked for without them. If `{realm}` is the registry's own token service, add credentials for `{realm}` to your auth file (`podman login {realm}`, or an `auths` entry keyed `{realm}`)",
                route.host
            ),
            (Some((_, path)), _, None) => format!(
                "the credentials for `{}` from `{}` were refused; log in again (`podman login --authfile {} {}`) or fix that file",
                route.host,
                path.display(),
                path.display(),
                route.host
            ),
            (None, Some(why), _) => why,
            (None, None, _) => {
                let searched: Vec<String> = self
                    .auth
                    .searched()
                    .iter()
                    .map(|p| format!("`{}`", p.display()))
                    .collect();
                format!(
                    "no credentials for `{}` were found (looked in {}); pass one with `--authfile`",
                    route.host,
                    if searched.is_empty() {
                        "no file".to_string()
                    } else {
                        searched.join(", ")
                    }
                )
            }
        };
        if host == "quay.io" || route.host == "quay.io" {
            help.push_str(
                "; quay.io/openshift-release-dev needs the Red Hat pull secret (console.redhat.com/openshift/install/pull-secret)",
            );
        }
        RegistryError::Unauthorized {
            reference: route.source.to_string(),
            tried: url.to_string(),
            status,
            said,
            help,
        }
    }
}

/// The host credentials are keyed by (`docker.io` for Docker Hub's API host).
fn auth_host(route: &Route) -> &str {
    if route.host == "registry-1.docker.io" {
        "docker.io"
    } else {
        &route.host
    }
}

fn parse_challenge(headers: &HeaderMap) -> Option<Challenge> {
    let value = headers.get(WWW_AUTHENTICATE)?.to_str().ok()?;
    let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
    if scheme.eq_ignore_ascii_case("basic") {
        return Some(Challenge::Basic);
    }
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let mut params = HashMap::new();
    for part in split_params(rest) {
        if let Some((k, v)) = part.split_once('=') {
            params.insert(
                k.trim().to_ascii_lowercase(),
                v.trim().trim_matches('"').to_string(),
            );
        }
    }
    Some(Challenge::Bearer {
        realm: params.remove("realm")?,
        service: params.remove("service"),
    })
}

/// Splits `a="x,y",b=z` on the commas outside quotes.
fn split_params(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut start, mut quoted) = (0, false);
    for (i, c) in s.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

/// Whether a failed send is worth another try: the connection was refused, reset or timed
/// out (rather than, say, the URL being unusable).
fn transient(e: &reqwest::Error) -> bool {
    e.is_connect() || e.is_timeout() || e.is_request()
}

/// `Some(Retry-After)` when `resp` is worth another try (429, 5xx); the policy caps the wait.
pub(crate) fn retryable_status(resp: &Response) -> Option<Option<Duration>> {
    let status = resp.status();
    if status != StatusCode::TOO_MANY_REQUESTS && !status.is_server_error() {
        return None;
    }
    let secs: Option<u64> = resp
        .headers()
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok());
    Some(secs.map(Duration::from_secs))
}

/// The token of a token response (`token`, else `access_token`, as distribution's clients read
/// it).
fn token_of(route: &Route, realm: &str, body: &[u8]) -> Result<String, RegistryError> {
    #[derive(serde::Deserialize)]
    struct Token {
        token: Option<String>,
        access_token: Option<String>,
    }
    let malformed = |message: String| RegistryError::Malformed {
        reference: route.source.to_string(),
        tried: realm.to_string(),
        message,
    };
    let t: Token = serde_json::from_slice(body)
        .map_err(|e| malformed(format!("token response is not JSON: {e}")))?;
    t.token
        .or(t.access_token)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| malformed("the token response holds no token".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bearer_challenges() {
        let mut h = HeaderMap::new();
        h.insert(
            WWW_AUTHENTICATE,
            r#"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push""#
                .parse()
                .unwrap(),
        );
        match parse_challenge(&h) {
            Some(Challenge::Bearer { realm, service }) => {
                assert_eq!(realm, "https://auth.example/token");
                assert_eq!(service.as_deref(), Some("registry.example"));
            }
            other => panic!("{other:?}"),
        }
    }

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

    fn client(addr: &str) -> crate::registry::Client {
        crate::registry::test_client(addr)
    }

    #[test]
    fn documents_and_the_graph_whose_body_breaks_are_fetched_again() {
        use driver_matrix_sandbox::faulty::{FaultServer, Reply};
        use driver_matrix_sandbox::proxy::{Fault, FaultProxy};
        let mt = "application/vnd.oci.image.manifest.v1+json";
        let manifest = format!(
            r#"{{"schemaVersion":2,"mediaType":"{mt}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:{0}","size":2}},"layers":[]}}"#,
            "a".repeat(64)
        );
        let up = FaultServer::start().unwrap();
        up.route("/v2/a/b/manifests/t", Reply::ok(mt, manifest.as_bytes()));
        up.route("/graph", Reply::ok("application/json", b"{\"nodes\":[]}"));
        let proxy = FaultProxy::start(up.addr(), 0, 0.0, Duration::ZERO).unwrap();
        let c = client(proxy.addr());
        proxy.fault_next(Fault::Truncate { keep: Some(10) });
        proxy.fault_next(Fault::Reset);
        let r: ImageRef = format!("{}/a/b:t", proxy.addr()).parse().unwrap();
        let m = c.manifest(&r, crate::domain::Arch::X86_64).unwrap();
        assert_eq!(m.digest, crate::domain::Digest::sha256(manifest.as_bytes()));
        proxy.fault_next(Fault::Truncate { keep: Some(3) });
        proxy.fault_next(Fault::TooMany { retry_after: 0 });
        let body = c
            .get_json(&format!("http://{}/graph", proxy.addr()))
            .unwrap();
        assert_eq!(body, b"{\"nodes\":[]}");
        let counts = proxy.counts();
        assert_eq!(counts.requests, 6, "{counts}");
        assert_eq!(counts.injected(), 4, "{counts}");
    }

    #[test]
    fn credentials_never_go_to_a_plain_http_realm_of_a_host_that_is_not_insecure() {
        use driver_matrix_sandbox::faulty::{FaultServer, Reply};
        let dir = tempfile::tempdir().unwrap();
        let token = FaultServer::start().unwrap();
        token.route(
            "/token",
            Reply::ok("application/json", br#"{"token":"t0k3n"}"#),
        );
        let up = FaultServer::start().unwrap();
        let challenge = format!(
            r#"Bearer realm="http://{}/token",service="s""#,
            token.addr()
        );
        up.route(
            "/v2/a/b/manifests/t",
            Reply::status(401).header("WWW-Authenticate", &challenge),
        );
        let b64 = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, "u:pw");
        std::fs::write(
            dir.path().join("auth.json"),
            format!(r#"{{"auths":{{"{}":{{"auth":"{b64}"}}}}}}"#, up.addr()),
        )
        .unwrap();
        let client_with = |insecure_token: bool| {
            let mut registries = BTreeMap::new();
            for (host, insecure) in [(up.addr(), true), (token.addr(), insecure_token)] {
                let settings = RegistrySettings {
                    mirror: None,
                    insecure,
                };
                registries.insert(host.to_string(), settings);
            }
            crate::registry::Client::new(crate::registry::ClientOptions {
                registries,
                authfile: Some(dir.path().join("auth.json")),
                timeout: Duration::from_secs(5),
                retries: 0,
                ..crate::registry::ClientOptions::default()
            })
            .unwrap()
        };
        let r: ImageRef = format!("{}/a/b:t", up.addr()).parse().unwrap();
        let err = client_with(false)
            .manifest(&r, crate::domain::Arch::X86_64)
            .unwrap_err();
        assert!(
            matches!(err, RegistryError::InsecureRealm { .. }),
            "{err:?}"
        );
        assert!(token.requests().is_empty(), "{:?}", token.requests());
        // Marked insecure, the realm is asked (without the registry's credentials: it is another
        // host, tests/it/token_service.rs) and the registry refuses again.
        let err = client_with(true)
            .manifest(&r, crate::domain::Arch::X86_64)
            .unwrap_err();
        assert!(matches!(err, RegistryError::Unauthorized { .. }), "{err:?}");
        assert_eq!(token.requests().len(), 1, "{:?}", token.requests());
        // Neither the token nor the credentials show in the error.
        let plain = format!("{err:?} {err}");
        let shown = format!("{plain} {:?}", miette::Report::new(err));
        for secret in ["t0k3n", &b64] {
            assert!(!shown.contains(secret), "{shown}");
        }
    }
}
