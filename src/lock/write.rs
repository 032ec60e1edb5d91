//! The canonical writer: fixed key order, sorted lists, atomic replace, no write without change.

use std::io::Write as _;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use super::{FORMAT_VERSION, HEADER, Lock, LockError};
use crate::render::appendln;

/// A TOML basic string for `s`.
fn quote(s: &str) -> String {
    // Printable ASCII without quote or backslash is written as is, which is what the TOML
    // writer does with it; anything else goes through the writer for its escapes.
    if s.bytes()
        .all(|b| (b' '..=b'~').contains(&b) && b != b'"' && b != b'\\')
    {
        return format!("\"{s}\"");
    }
    toml::Value::String(s.to_string()).to_string()
}

fn line(out: &mut String, key: &str, value: impl AsRef<str>) {
    appendln!(out, "{key} = {}", quote(value.as_ref()));
}

/// The lock's canonical text.
pub fn render(lock: &Lock) -> String {
    let mut lock = lock.clone();
    lock.canonicalize();
    let mut out = String::new();
    out.push_str(HEADER);
    appendln!(out, "version = {FORMAT_VERSION}");
    for r in &lock.releases {
        out.push_str("\n[[release]]\n");
        line(&mut out, "version", r.version.to_string());
        line(&mut out, "arch", r.arch.as_str());
        if let Some(s) = &r.stream {
            line(&mut out, "stream", s);
        }
        line(&mut out, "payload", r.payload.to_string());
        line(&mut out, "dtk", r.dtk.to_string());
        line(&mut out, "kernel", r.kernel.as_str());
        if let Some(rt) = &r.rt_kernel {
            line(&mut out, "rt-kernel", rt.as_str());
        }
        if let Some(n) = &r.node_kernel {
            line(&mut out, "node-kernel", n.as_str());
        }
        if let Some(n) = &r.node_rt_kernel {
            line(&mut out, "node-rt-kernel", n.as_str());
        }
        line(&mut out, "rhel", &r.rhel);
        if let Some(m) = &r.machine_os {
            line(&mut out, "machine-os", m);
        }
    }
    for i in &lock.images {
        out.push_str("\n[[image]]\n");
        line(&mut out, "driver", &i.driver);
        line(&mut out, "kernel", i.kernel.as_str());
        line(&mut out, "arch", i.arch.as_str());
        line(&mut out, "dtk", i.dtk.to_string());
        line(&mut out, "inputs", i.inputs.as_str());
        line(&mut out, "image", i.image.to_string());
        line(&mut out, "digest", i.digest.as_str());
        let releases: Vec<String> = i.releases.iter().map(|v| quote(&v.to_string())).collect();
        appendln!(out, "releases = [{}]", releases.join(", "));
    }
    out
}

/// Writes the lock to `path` atomically (a new temporary file in the same directory, made with
/// `O_CREAT|O_EXCL` and so never through a link, then rename), and only when its bytes differ
/// from what is there; a link or anything but a regular file at `path` is refused. Returns
/// whether the file changed.
pub fn write_if_changed(path: &Path, lock: &Lock) -> Result<bool, LockError> {
    let text = render(lock);
    let err = |source| LockError::Write {
        path: path.to_path_buf(),
        source,
    };
    // Never through a link: a link at the lock's path is refused, not written through.
    if super::read::read_bytes(path)?.is_some_and(|old| old == text.as_bytes()) {
        return Ok(false);
    }
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    // Named by run (`.matrix.lock.<pid>-<start>.XXXXXX`): a killed writer's file is removed by
    // the next run, and a live one's left alone (see `crate::runs`).
    let prefix = crate::runs::temp_prefix(&crate::runs::lock_temp_base(path));
    let mut tmp = tempfile::Builder::new()
        .prefix(&prefix)
        .tempfile_in(dir)
        .map_err(err)?;
    tmp.write_all(text.as_bytes()).map_err(err)?;
    // A temporary file is private (0600); the lock is an ordinary file of the repository: keep
    // the mode it had, or make it 0644.
    let mode = std::fs::symlink_metadata(path)
        .ok()
        .filter(std::fs::Metadata::is_file)
        .map_or(0o644, |m| m.permissions().mode() & 0o777);
    tmp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(mode))
        .map_err(err)?;
    tmp.as_file().sync_all().map_err(err)?;
    tmp.persist(path).map_err(|e| err(e.error))?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::quote;

    #[test]
    fn quote_writes_what_the_toml_writer_writes() {
        for s in [
            "",
            "4.16.3",
            "quay.io/a/b@sha256:0123",
            "it's",
            "a b ~ { } [ ] = #",
            "with \"quotes\"",
            "back\\slash",
            "tab\there",
            "new\nline",
            "ünïcode",
            "\u{1b}[31mred",
        ] {
            let theirs = toml::Value::String(s.to_string()).to_string();
            assert_eq!(quote(s), theirs, "{s:?}");
            let back: toml::Table = toml::from_str(&format!("k = {}", quote(s))).unwrap();
            assert_eq!(back["k"].as_str(), Some(s), "{s:?}");
        }
    }
}
