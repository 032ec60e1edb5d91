//! Registry credentials from the files `podman`, `skopeo` and `docker` use, in the contract's
//! lookup order: `--authfile`, `$REGISTRY_AUTH_FILE`, `$XDG_RUNTIME_DIR/containers/auth.json`,
//! `~/.config/containers/auth.json`, `~/.docker/config.json`.
//!
//! Entries are keyed `host` or `host/namespace[/...]`; the most specific key that prefixes the
//! repository wins. Secrets stay in [`Credentials`], whose `Debug` prints no secret, and are only
//! ever written into an `Authorization` header.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde::Deserialize;

use super::RegistryError;

/// A user name and password (or token) for one registry.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    password: String,
}

impl Credentials {
    pub fn new(username: impl Into<String>, password: impl Into<String>) -> Self {
        Credentials {
            username: username.into(),
            password: password.into(),
        }
    }

    /// The value of a basic `Authorization` header.
    pub(crate) fn basic_header(&self) -> String {
        let raw = format!("{}:{}", self.username, self.password);
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        )
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Credentials {{ username: {:?}, password: <redacted> }}",
            self.username
        )
    }
}

/// The credentials files found, in lookup order, with their entries.
#[derive(Debug, Default, Clone)]
pub struct AuthFiles {
    files: Vec<(PathBuf, BTreeMap<String, Credentials>)>,
    /// Every path looked at, for messages.
    searched: Vec<PathBuf>,
}

#[derive(Deserialize)]
struct RawFile {
    #[serde(default)]
    auths: BTreeMap<String, RawEntry>,
}

#[derive(Deserialize)]
struct RawEntry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
}

/// The candidate files in lookup order. An explicit `--authfile` is the only candidate.
pub fn candidates(explicit: Option<&Path>) -> Vec<PathBuf> {
    if let Some(p) = explicit {
        return vec![p.to_path_buf()];
    }
    let mut out = Vec::new();
    if let Some(p) = std::env::var_os("REGISTRY_AUTH_FILE").filter(|p| !p.is_empty()) {
        out.push(PathBuf::from(p));
    }
    if let Some(p) = std::env::var_os("XDG_RUNTIME_DIR").filter(|p| !p.is_empty()) {
        out.push(PathBuf::from(p).join("containers/auth.json"));
    }
    if let Some(home) = dirs::home_dir() {
        out.push(home.join(".config/containers/auth.json"));
        out.push(home.join(".docker/config.json"));
    }
    out
}

/// The credentials file to hand to buildah and skopeo: `--authfile` as given (even when it does
/// not exist, so that they name it in their error), else the first candidate that exists.
pub fn tool_authfile(explicit: Option<&Path>) -> Option<PathBuf> {
    match explicit {
        Some(p) => Some(p.to_path_buf()),
        None => candidates(None).into_iter().find(|p| p.is_file()),
    }
}

/// `https://index.docker.io/v1/` → `docker.io`; `http://h:5000/ns/` → `h:5000/ns`.
fn normalize_key(key: &str) -> String {
    let k = key
        .trim_start_matches("https://")
        .trim_start_matches("http://")
        .trim_end_matches('/');
    let k = k
        .strip_suffix("/v1")
        .or_else(|| k.strip_suffix("/v2"))
        .unwrap_or(k);
    match k {
        "index.docker.io" | "registry-1.docker.io" => "docker.io".to_string(),
        _ => k.to_string(),
    }
}

impl AuthFiles {
    /// Loads every existing candidate. A given `--authfile` must exist; any file that exists
    /// must parse.
    pub fn load(explicit: Option<&Path>) -> Result<AuthFiles, RegistryError> {
        let searched = candidates(explicit);
        let mut files = Vec::new();
        for path in &searched {
            let text = match std::fs::read_to_string(path) {
                Ok(t) => t,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound && explicit.is_none() => {
                    continue;
                }
                Err(e) => {
                    return Err(RegistryError::AuthFile {
                        path: path.clone(),
                        message: e.to_string(),
                    });
                }
            };
            files.push((path.clone(), parse(path, &text)?));
        }
        Ok(AuthFiles { files, searched })
    }

    /// Credentials for `repository` on `host`, and the file they came from: the first file (in
    /// lookup order) with a matching key; within it the longest key that prefixes `host/repo`.
    pub fn lookup(&self, host: &str, repository: &str) -> Option<(&Credentials, &Path)> {
        let full = format!("{host}/{repository}");
        for (path, entries) in &self.files {
            let best = entries
                .iter()
                .filter(|(k, _)| {
                    full == **k || full.starts_with(&format!("{k}/")) || host == k.as_str()
                })
                .max_by_key(|(k, _)| k.len());
            if let Some((_, c)) = best {
                return Some((c, path));
            }
        }
        None
    }

    /// The paths looked at, in order, for messages.
    pub fn searched(&self) -> &[PathBuf] {
        &self.searched
    }
}

fn parse(path: &Path, text: &str) -> Result<BTreeMap<String, Credentials>, RegistryError> {
    let bad = |message: String| RegistryError::AuthFile {
        path: path.to_path_buf(),
        message,
    };
    let raw: RawFile =
        serde_json::from_str(text).map_err(|e| bad(format!("not valid JSON: {e}")))?;
    let mut out = BTreeMap::new();
    for (key, entry) in raw.auths {
        let creds = match (
            entry.auth.filter(|a| !a.is_empty()),
            entry.username,
            entry.password,
        ) {
            (Some(auth), _, _) => {
                let decoded = base64::engine::general_purpose::STANDARD
                    .decode(auth.trim())
                    .ok()
                    .and_then(|b| String::from_utf8(b).ok())
                    .ok_or_else(|| bad(format!("the `auth` of `{key}` is not base64 text")))?;
                let (u, p) = decoded.split_once(':').ok_or_else(|| {
                    bad(format!(
                        "the `auth` of `{key}` is not `user:password` in base64"
                    ))
                })?;
                Credentials::new(u, p)
            }
            (None, Some(u), Some(p)) => Credentials::new(u, p),
            _ => continue,
        };
        out.insert(normalize_key(&key), creds);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(text: &str) -> AuthFiles {
        let path = PathBuf::from("auth.json");
        AuthFiles {
            files: vec![(path.clone(), parse(&path, text).unwrap())],
            searched: vec![path],
        }
    }

    #[test]
    fn most_specific_key_wins() {
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        let a = files(&format!(
            r#"{{"auths":{{"quay.io":{{"auth":"{}"}},"quay.io/openshift-release-dev":{{"auth":"{}"}},"https://index.docker.io/v1/":{{"auth":"{}"}}}}}}"#,
            b64("any:1"),
            b64("ocp:2"),
            b64("hub:3")
        ));
        let user = |h: &str, r: &str| a.lookup(h, r).map(|(c, _)| c.username.clone());
        assert_eq!(
            user("quay.io", "openshift-release-dev/ocp-release").as_deref(),
            Some("ocp")
        );
        assert_eq!(
            user("quay.io", "openshift-release-devx/a").as_deref(),
            Some("any")
        );
        assert_eq!(user("docker.io", "library/busybox").as_deref(), Some("hub"));
        assert_eq!(user("ghcr.io", "x"), None);
    }

    #[test]
    fn debug_hides_the_password() {
        let c = Credentials::new("u", "hunter2");
        assert!(!format!("{c:?}").contains("hunter2"));
    }

    #[test]
    fn rejects_bad_auth_values() {
        let path = PathBuf::from("a.json");
        assert!(parse(&path, r#"{"auths":{"quay.io":{"auth":"!!"}}}"#).is_err());
        assert!(parse(&path, "not json").is_err());
    }
}
