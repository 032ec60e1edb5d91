//! Credential helpers as containers-auth.json(5) and docker-credential-helpers define them:
//! `docker-credential-NAME get`, the registry host on stdin, a JSON object with `Username` and
//! `Secret` on stdout; "credentials not found" means none. What a helper prints on stderr is
//! not shown (it may echo what it was given).

use std::io::Write;
use std::process::{Command, Stdio};

use super::Credentials;

/// A helper name is a program suffix: no path, no option.
pub(super) fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && !name.starts_with('-')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        && name != "."
        && name != "..";
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{name}` is not a helper name (the part after `docker-credential-`)"
        ))
    }
}

/// Asks helper `name` for `host`'s credentials: `Ok(None)` when it has none.
pub(super) fn get(name: &str, host: &str) -> Result<Option<Credentials>, String> {
    let program = format!("docker-credential-{name}");
    let mut child = Command::new(&program)
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot run `{program}`: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(host.as_bytes())
            .map_err(|e| format!("cannot write to `{program}`: {e}"))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| format!("`{program}` failed: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        if text.to_ascii_lowercase().contains("credentials not found") {
            return Ok(None);
        }
        return Err(format!("`{program} get` exited with {}", out.status));
    }
    #[derive(serde::Deserialize)]
    struct Answer {
        #[serde(rename = "Username", default)]
        username: String,
        #[serde(rename = "Secret", default)]
        secret: String,
    }
    let a: Answer = serde_json::from_str(&text)
        .map_err(|_| format!("`{program} get` did not print a JSON object with `Secret`"))?;
    if a.username == "<token>" {
        return Err(format!(
            "`{program}` holds an identity token for `{host}`, which is not supported; log in with a user name and password"
        ));
    }
    if a.secret.is_empty() {
        return Ok(None);
    }
    Ok(Some(Credentials::new(a.username, a.secret)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helper_names_cannot_be_paths_or_options() {
        assert!(check_name("secretservice").is_ok());
        assert!(check_name("ecr-login").is_ok());
        for bad in ["", "../x", "a/b", "-h", "..", "a b"] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }
}
