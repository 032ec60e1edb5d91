//! Registry credentials from the files `podman`, `skopeo` and `docker` use, in the contract's
//! lookup order: `--authfile`, `$REGISTRY_AUTH_FILE`, `$XDG_RUNTIME_DIR/containers/auth.json`,
//! `~/.config/containers/auth.json`, `~/.docker/config.json`.
//!
//! As containers-auth.json(5) says: the first file with credentials for the repository wins;
//! within a file, `credHelpers` (run as `docker-credential-NAME get`, the host on stdin) come
//! before `auths`, whose keys are `host` or `host/namespace[/...]`, the most specific one that
//! prefixes the repository winning. `credsStore` is ignored, as containers tools ignore it.
//!
//! The files are merged once, at load, into one view that answers exactly what that per-file
//! order answers ([`merge`]); buildah gets that view as one file ([`tool_authfile`]), so that a
//! run that can resolve can also push. Secrets stay in [`Credentials`], whose `Debug` prints no
//! secret, and are only ever written into an `Authorization` header or that private file.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

mod helper;
mod merged;

pub use merged::{ToolAuthfile, tool_authfile};

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

/// A helper's answer for a host: its credentials, none, or why it failed.
type HelperAnswer = Result<Option<Credentials>, String>;

/// The credentials files found, merged (see [`merge`]).
#[derive(Debug, Default)]
pub struct AuthFiles {
    /// `auths` keys (normalized) with their credentials and file.
    entries: BTreeMap<String, (Credentials, PathBuf)>,
    /// `credHelpers`: host → helper name and file.
    helpers: BTreeMap<String, (String, PathBuf)>,
    /// Files that name a `credsStore`, for messages.
    stores: Vec<(PathBuf, String)>,
    /// Every path looked at, for messages.
    searched: Vec<PathBuf>,
    /// What each helper said per host (a failure is kept for messages). One cell per host, so
    /// helpers for different hosts run at once and one host's helper runs once.
    asked: Mutex<HashMap<String, Arc<OnceLock<HelperAnswer>>>>,
}

impl Clone for AuthFiles {
    fn clone(&self) -> Self {
        AuthFiles {
            entries: self.entries.clone(),
            helpers: self.helpers.clone(),
            stores: self.stores.clone(),
            searched: self.searched.clone(),
            asked: Mutex::default(),
        }
    }
}

#[derive(Deserialize)]
struct RawFile {
    #[serde(default)]
    auths: BTreeMap<String, RawEntry>,
    #[serde(default, rename = "credHelpers")]
    cred_helpers: BTreeMap<String, String>,
    #[serde(default, rename = "credsStore")]
    creds_store: Option<String>,
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

/// One parsed file.
#[derive(Debug, Default)]
struct Parsed {
    auths: BTreeMap<String, Credentials>,
    helpers: BTreeMap<String, String>,
    store: Option<String>,
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

/// The host part of a key.
fn key_host(key: &str) -> &str {
    key.split('/').next().unwrap_or(key)
}

/// Whether `key` names `full` (`host/repository`) or one of its parents.
fn covers(key: &str, full: &str) -> bool {
    full == key || full.starts_with(&format!("{key}/"))
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
        let mut out = merge(files);
        out.searched = searched;
        Ok(out)
    }

    /// Credentials for `repository` on `host`, and the file they came from.
    pub fn lookup(&self, host: &str, repository: &str) -> Option<(Credentials, PathBuf)> {
        if let Some(said) = self.ask_helper(host) {
            let path = &self.helpers[host].1;
            return said.ok().flatten().map(|c| (c, path.clone()));
        }
        let full = format!("{host}/{repository}");
        self.entries
            .iter()
            .filter(|(k, _)| covers(k, &full) || host == k.as_str())
            .max_by_key(|(k, _)| k.len())
            .map(|(_, (c, p))| (c.clone(), p.clone()))
    }

    /// Why `host` has no credentials although a helper or store was configured, for messages.
    pub fn unavailable(&self, host: &str) -> Option<String> {
        if let Some((name, path)) = self.helpers.get(host) {
            let said = self
                .asked
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(host)
                .and_then(|cell| cell.get().cloned());
            return Some(match said {
                Some(Err(e)) => format!(
                    "the credential helper `docker-credential-{name}` named in `{}` failed: {e}",
                    path.display()
                ),
                _ => format!(
                    "the credential helper `docker-credential-{name}` named in `{}` has no credentials for `{host}`",
                    path.display()
                ),
            });
        }
        self.stores.first().map(|(path, store)| {
            format!(
                "`credsStore = \"{store}\"` in `{}` is not supported (containers tools ignore it too); name the helper per host in `credHelpers`, or log in with `podman login`",
                path.display()
            )
        })
    }

    /// What `host`'s helper says, asked once per run (its answer, or why it failed, is kept);
    /// `None` when no helper is named for `host`.
    fn ask_helper(&self, host: &str) -> Option<HelperAnswer> {
        let (name, _) = self.helpers.get(host)?;
        let cell = self
            .asked
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(host.to_string())
            .or_default()
            .clone();
        // The map is not held while the helper runs: only this host's cell waits on it.
        Some(cell.get_or_init(|| helper::get(name, host)).clone())
    }

    /// Every `credHelpers` entry asked now, each helper under its time limit and all at once:
    /// the hosts it has credentials for, with them, and why each helper that failed (could not
    /// run, or did not answer in time) did. So a tool given the answers as `auths` (buildah)
    /// never runs a helper itself, with no time limit, while the writer's lock is held.
    pub fn resolve_helpers(&self) -> (Vec<(String, Credentials)>, Vec<String>) {
        let hosts: Vec<&String> = self.helpers.keys().collect();
        let answers = crate::parallel::map(&hosts, crate::parallel::NETWORK, |host| {
            (*host, self.ask_helper(host))
        });
        let (mut found, mut failed) = (Vec::new(), Vec::new());
        for (host, said) in answers {
            match said {
                Some(Ok(Some(c))) => found.push((host.clone(), c)),
                Some(Err(_)) => failed.extend(self.unavailable(host)),
                Some(Ok(None)) | None => {}
            }
        }
        (found, failed)
    }

    /// The paths looked at, in order, for messages.
    pub fn searched(&self) -> &[PathBuf] {
        &self.searched
    }

    /// Whether a `credHelpers` entry is in the view.
    pub fn has_helpers(&self) -> bool {
        !self.helpers.is_empty()
    }

    /// Whether any file was found with anything in it.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty() && self.helpers.is_empty()
    }
}

/// The files, in lookup order, as one view. A later file's `auths` key is dropped when an
/// earlier file has the same key, a parent of it, or a helper for its host; a later file's
/// helper is dropped when an earlier file has a helper or any key for that host. Then "the
/// longest key across the view" picks what "the first file with a match, its longest key"
/// picks: a later key longer than the earlier file's match would be a child of it, and dropped.
fn merge(files: Vec<(PathBuf, Parsed)>) -> AuthFiles {
    let mut out = AuthFiles::default();
    for (path, file) in files {
        let earlier_key = |k: &str, out: &AuthFiles| {
            out.helpers.contains_key(key_host(k))
                || out.entries.keys().any(|e| k == e || covers(e, k))
        };
        let keys: Vec<(String, Credentials)> = file
            .auths
            .into_iter()
            .filter(|(k, _)| !earlier_key(k, &out))
            .collect();
        let helpers: Vec<(String, String)> = file
            .helpers
            .into_iter()
            .filter(|(h, _)| {
                !out.helpers.contains_key(h) && !out.entries.keys().any(|e| key_host(e) == h)
            })
            .collect();
        for (k, c) in keys {
            out.entries.insert(k, (c, path.clone()));
        }
        for (h, name) in helpers {
            out.helpers.insert(h, (name, path.clone()));
        }
        if let Some(store) = file.store {
            out.stores.push((path.clone(), store));
        }
    }
    out
}

fn parse(path: &Path, text: &str) -> Result<Parsed, RegistryError> {
    let bad = |message: String| RegistryError::AuthFile {
        path: path.to_path_buf(),
        message,
    };
    let raw: RawFile =
        serde_json::from_str(text).map_err(|e| bad(format!("not valid JSON: {e}")))?;
    let mut out = Parsed {
        store: raw.creds_store.filter(|s| !s.is_empty()),
        ..Parsed::default()
    };
    for (key, name) in raw.cred_helpers {
        helper::check_name(&name).map_err(|m| bad(format!("`credHelpers` of `{key}`: {m}")))?;
        out.helpers.insert(normalize_key(&key), name);
    }
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
        out.auths.insert(normalize_key(&key), creds);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(text: &str) -> AuthFiles {
        let path = PathBuf::from("auth.json");
        merge(vec![(path.clone(), parse(&path, text).unwrap())])
    }

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    #[test]
    fn the_merged_view_answers_what_the_first_file_with_a_match_answers() {
        let one = PathBuf::from("one.json");
        let two = PathBuf::from("two.json");
        let a = format!(
            r#"{{"auths":{{"quay.io":{{"auth":"{}"}},"h:5000/a":{{"auth":"{}"}}}}}}"#,
            b64("one-quay:1"),
            b64("one-a:1")
        );
        let b = format!(
            r#"{{"auths":{{"quay.io/ns":{{"auth":"{}"}},"h:5000":{{"auth":"{}"}},"ghcr.io":{{"auth":"{}"}}}},"credHelpers":{{"quay.io":"x","reg.example":"y"}}}}"#,
            b64("two-ns:2"),
            b64("two-h:2"),
            b64("two-ghcr:2")
        );
        let m = merge(vec![
            (one.clone(), parse(&one, &a).unwrap()),
            (two.clone(), parse(&two, &b).unwrap()),
        ]);
        let user = |h: &str, r: &str| m.lookup(h, r).map(|(c, p)| (c.username, p));
        // The first file has `quay.io`: its key wins over the second file's more specific one,
        // and over the second file's helper.
        assert_eq!(
            user("quay.io", "ns/x"),
            Some(("one-quay".into(), one.clone()))
        );
        assert_eq!(user("h:5000", "a/b"), Some(("one-a".into(), one.clone())));
        assert_eq!(user("h:5000", "c"), Some(("two-h".into(), two.clone())));
        assert_eq!(user("ghcr.io", "c"), Some(("two-ghcr".into(), two.clone())));
        assert!(m.helpers.contains_key("reg.example") && !m.helpers.contains_key("quay.io"));
    }

    #[test]
    fn most_specific_key_wins() {
        let a = files(&format!(
            r#"{{"auths":{{"quay.io":{{"auth":"{}"}},"quay.io/openshift-release-dev":{{"auth":"{}"}},"https://index.docker.io/v1/":{{"auth":"{}"}}}}}}"#,
            b64("any:1"),
            b64("ocp:2"),
            b64("hub:3")
        ));
        let user = |h: &str, r: &str| a.lookup(h, r).map(|(c, _)| c.username);
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
    fn a_creds_store_is_named_as_unsupported() {
        let a = files(r#"{"credsStore":"desktop"}"#);
        assert_eq!(a.lookup("quay.io", "a/b"), None);
        let why = a.unavailable("quay.io").unwrap();
        assert!(
            why.contains("credsStore") && why.contains("not supported"),
            "{why}"
        );
        let h = files(r#"{"credHelpers":{"quay.io":"dm-none-such"}}"#);
        assert_eq!(h.lookup("quay.io", "a/b"), None);
        let why = h.unavailable("quay.io").unwrap();
        assert!(why.contains("docker-credential-dm-none-such"), "{why}");
        assert!(why.contains("failed"), "{why}");
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
        assert!(parse(&path, r#"{"credHelpers":{"quay.io":"../../bin/sh"}}"#).is_err());
    }
}
