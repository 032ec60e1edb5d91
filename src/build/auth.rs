//! Finding registry credentials as the containers tools do: `--authfile`, else
//! `REGISTRY_AUTH_FILE`, then `$XDG_RUNTIME_DIR/containers/auth.json`,
//! `~/.config/containers/auth.json`, `~/.docker/config.json`; the first that exists.

use std::path::{Path, PathBuf};

/// The credentials file to pass to buildah and skopeo, if any. An explicit file is returned
/// even when it does not exist, so that the tools name it in their error.
pub fn find(explicit: Option<&Path>) -> Option<PathBuf> {
    find_in(explicit, &|k| std::env::var_os(k), dirs::home_dir())
}

fn find_in(
    explicit: Option<&Path>,
    env: &dyn Fn(&str) -> Option<std::ffi::OsString>,
    home: Option<PathBuf>,
) -> Option<PathBuf> {
    if let Some(p) = explicit {
        return Some(p.to_path_buf());
    }
    if let Some(p) = env("REGISTRY_AUTH_FILE").filter(|v| !v.is_empty()) {
        return Some(PathBuf::from(p));
    }
    let mut candidates = Vec::new();
    if let Some(run) = env("XDG_RUNTIME_DIR").filter(|v| !v.is_empty()) {
        candidates.push(PathBuf::from(run).join("containers/auth.json"));
    }
    if let Some(home) = home {
        candidates.push(home.join(".config/containers/auth.json"));
        candidates.push(home.join(".docker/config.json"));
    }
    candidates.into_iter().find(|p| p.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explicit_then_env_then_first_existing() {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("home");
        let none = |_: &str| None;
        assert_eq!(find_in(None, &none, Some(home.clone())), None);
        std::fs::create_dir_all(home.join(".docker")).unwrap();
        std::fs::write(home.join(".docker/config.json"), "{}").unwrap();
        assert_eq!(
            find_in(None, &none, Some(home.clone())),
            Some(home.join(".docker/config.json"))
        );
        let env = |k: &str| (k == "REGISTRY_AUTH_FILE").then(|| "/x/auth.json".into());
        assert_eq!(
            find_in(None, &env, Some(home.clone())),
            Some(PathBuf::from("/x/auth.json"))
        );
        assert_eq!(
            find_in(Some(Path::new("/given")), &env, Some(home)),
            Some(PathBuf::from("/given"))
        );
    }
}
