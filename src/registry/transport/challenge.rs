//! How a host wants to be authenticated, read from the `WWW-Authenticate` header of its first
//! 401, and the `Authorization` header that answers it (credentials for basic, a bearer token
//! per host, repository and access).

use std::collections::HashMap;

use reqwest::header::{HeaderMap, WWW_AUTHENTICATE};

use super::Transport;
use crate::registry::error::RegistryError;
use crate::registry::route::Route;

/// How a host wants to be authenticated, learnt from its first 401.
#[derive(Debug, Clone)]
pub(super) enum Challenge {
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
    },
}

impl Transport {
    /// The `Authorization` header to send before any challenge, when one is known. A write
    /// (`push`) gets a bearer token of its own, asked for `pull,push`; reads keep theirs,
    /// asked for `pull` only.
    pub(super) async fn authorization(
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

    /// Records a host's challenge; false when the client cannot meet it (basic auth without
    /// credentials, an unknown scheme).
    pub(super) fn learn(&self, route: &Route, challenge: Option<Challenge>) -> bool {
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
}

pub(super) fn parse_challenge(headers: &HeaderMap) -> Option<Challenge> {
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
}
