//! Where a request goes and how its failure reads: the pieces the transport, the TLS clients
//! and the body readers share, kept apart so that none of them depends on another's internals.

use crate::domain::ImageRef;

/// Where a reference is actually read from.
#[derive(Debug, Clone)]
pub(crate) struct Route {
    /// The reference as the user or payload names it; what messages show.
    pub source: ImageRef,
    /// The host API requests go to (`registry-1.docker.io` for `docker.io`).
    pub host: String,
    /// The repository on that host (a mirror's namespace prepended).
    pub repository: String,
    /// `http` or `https`.
    pub scheme: &'static str,
}

impl Route {
    pub fn url(&self, kind: &str, object: &str) -> String {
        format!(
            "{}://{}/v2/{}/{kind}/{object}",
            self.scheme, self.host, self.repository
        )
    }
}

/// A reqwest error by its causes, which hold the useful part (connection refused, ...); the
/// top-level message only repeats the URL, which the errors name already.
pub(crate) fn describe(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        return "timed out".to_string();
    }
    let mut parts = Vec::new();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        parts.push(s.to_string());
        source = s.source();
    }
    if parts.is_empty() {
        e.to_string()
    } else {
        parts.join(": ")
    }
}
