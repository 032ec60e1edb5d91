//! The tries of a request under the retry policy: one send (authenticating once on a challenge
//! the client can meet), and for documents one capped body read within the same try, so that a
//! body that breaks mid-stream is tried again like a refused connection.

use std::sync::atomic::Ordering;
use std::time::Duration;

use reqwest::header::{ACCEPT, AUTHORIZATION, RETRY_AFTER};
use reqwest::{Response, StatusCode};

use super::challenge::parse_challenge;
use super::{Fetched, Held, Request, Transport};
use crate::registry::body::{
    BodyError, ERROR_BODY_CAP, error_body, error_summary, read_body, too_large,
};
use crate::registry::error::RegistryError;
use crate::registry::retry::Attempt;
use crate::registry::route::{Route, describe};

/// How one try failed before there was a response.
pub(super) enum Failure {
    /// A refused or reset connection, a timeout: worth another try.
    Transient(RegistryError),
    /// Worth nothing more (a refused login, a malformed URL).
    Final(RegistryError),
}

impl Failure {
    /// What the retry policy makes of a try that failed this way.
    pub(super) fn attempt<T>(self) -> Attempt<T> {
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
    pub(super) async fn read_capped(
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
                    error_summary(&body),
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

    /// A send to `url` that failed before there was a response: transient when the
    /// connection was refused, reset or timed out.
    pub(super) fn failure(&self, route: &Route, url: &str, e: &reqwest::Error) -> Failure {
        let error = self.network(route, url, describe(e));
        if transient(e) {
            Failure::Transient(error)
        } else {
            Failure::Final(error)
        }
    }
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::domain::ImageRef;

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
}
