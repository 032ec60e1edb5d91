//! Bearer tokens: asking a token service for one (under the retry policy, the response body
//! capped), and which credentials that request carries: a registry's own only when the token
//! service is on its host.

use std::sync::atomic::Ordering;

use reqwest::header::AUTHORIZATION;

use super::{Fetched, Transport, auth_host};
use crate::registry::auth::Credentials;
use crate::registry::body::error_summary;
use crate::registry::error::RegistryError;
use crate::registry::route::Route;
use crate::registry::tls::host_port;

/// The most of a token response read; real tokens are a few kilobytes.
const TOKEN_CAP: usize = 1 << 20;

impl Transport {
    /// A bearer token for `route` from `realm`, sending the host's credentials only where they
    /// belong. Each try is the request and its capped body ([`Transport::read_capped`]).
    pub(super) async fn fetch_token(
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
            return Err(self.unauthorized(route, realm, status.as_u16(), error_summary(&body)));
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
    pub(super) fn withheld_from(&self, route: &Route) -> Option<String> {
        let prefix = format!("{}\u{0}", route.host);
        self.withheld
            .lock()
            .expect("the withheld set is never poisoned")
            .iter()
            .find_map(|k| k.strip_prefix(&prefix).map(str::to_string))
    }
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
    use std::collections::BTreeMap;
    use std::time::Duration;

    use crate::domain::{ImageRef, RegistrySettings};
    use crate::registry::RegistryError;

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
