//! The final-stage base image of the example drivers: the host's `kmod` (`modprobe`, `depmod`,
//! `modinfo`, ...) with the shared libraries `ldd` names, and a static busybox for `sh` and
//! `sleep` when the host has one. A few megabytes, where a real driver uses UBI minimal.

use std::path::Path;
use std::process::Command;

use crate::bigimage::{self, Config, LayerBlob};
use crate::oci::Pushed;
use crate::oci::Pusher;

/// Where the demo's matrix expects it: `<registry>/sandbox/kmod-base:latest`.
pub const REPO: &str = "sandbox/kmod-base";
pub const TAG: &str = "latest";

const KMOD_TOOLS: [&str; 6] = ["modprobe", "depmod", "modinfo", "insmod", "rmmod", "lsmod"];
const BUSYBOX_TOOLS: [&str; 6] = ["sh", "sleep", "ls", "cat", "echo", "true"];

enum Entry {
    Dir,
    File(Vec<u8>, u32),
    Link(String),
}

/// Finds a program in the usual places.
fn find(names: &[&str]) -> Option<std::path::PathBuf> {
    names
        .iter()
        .map(Path::new)
        .find(|p| p.is_file())
        .map(Path::to_path_buf)
}

/// The shared libraries of `bin` as `ldd` lists them (including the dynamic loader).
fn libraries(bin: &Path) -> std::io::Result<Vec<String>> {
    let out = Command::new("ldd").arg(bin).output()?;
    if !out.status.success() {
        return Err(std::io::Error::other(format!(
            "ldd {}: {}",
            bin.display(),
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let l = l.trim();
            let path = match l.split_once("=>") {
                Some((_, rest)) => rest.split_whitespace().next()?,
                None => l.split_whitespace().next()?,
            };
            path.starts_with('/').then(|| path.to_string())
        })
        .collect())
}

/// The image's single layer, a merged-/usr tree.
fn layer() -> std::io::Result<Vec<u8>> {
    let kmod = find(&["/usr/bin/kmod", "/bin/kmod"])
        .ok_or_else(|| std::io::Error::other("no kmod on this machine (apt-get install kmod)"))?;
    let mut entries: Vec<(String, Entry)> = Vec::new();
    for d in [
        "etc/",
        "etc/modprobe.d/",
        "opt/",
        "tmp/",
        "usr/",
        "usr/bin/",
        "usr/sbin/",
        "usr/lib/",
        "usr/lib64/",
    ] {
        entries.push((d.into(), Entry::Dir));
    }
    for (link, target) in [
        ("bin", "usr/bin"),
        ("sbin", "usr/sbin"),
        ("lib", "usr/lib"),
        ("lib64", "usr/lib64"),
    ] {
        entries.push((link.into(), Entry::Link(target.into())));
    }
    entries.push((
        "usr/bin/kmod".into(),
        Entry::File(std::fs::read(&kmod)?, 0o755),
    ));
    for t in KMOD_TOOLS {
        entries.push((format!("usr/sbin/{t}"), Entry::Link("../bin/kmod".into())));
    }
    let mut dirs = std::collections::BTreeSet::new();
    for lib in libraries(&kmod)? {
        // /lib/x86_64-linux-gnu/libc.so.6 -> usr/lib/x86_64-linux-gnu/libc.so.6 (merged /usr).
        let rel = lib.trim_start_matches('/');
        let rel = if rel.starts_with("usr/") {
            rel.to_string()
        } else {
            format!("usr/{rel}")
        };
        if let Some((dir, _)) = rel.rsplit_once('/')
            && dirs.insert(dir.to_string())
            && !matches!(dir, "usr/lib" | "usr/lib64")
        {
            entries.push((format!("{dir}/"), Entry::Dir));
        }
        entries.push((
            rel,
            Entry::File(std::fs::read(std::fs::canonicalize(&lib)?)?, 0o755),
        ));
    }
    if let Some(bb) = find(&["/bin/busybox", "/usr/bin/busybox"]) {
        let static_bin = libraries(&bb).map(|l| l.is_empty()).unwrap_or(true);
        if static_bin {
            entries.push((
                "usr/bin/busybox".into(),
                Entry::File(std::fs::read(&bb)?, 0o755),
            ));
            for t in BUSYBOX_TOOLS {
                entries.push((format!("usr/bin/{t}"), Entry::Link("busybox".into())));
            }
        }
    }
    let mut b = tar::Builder::new(Vec::new());
    for (path, e) in entries {
        let mut h = tar::Header::new_gnu();
        h.set_mtime(1_700_000_000);
        match e {
            Entry::Dir => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(if path == "tmp/" { 0o1777 } else { 0o755 });
                h.set_size(0);
                b.append_data(&mut h, &path, std::io::empty())?;
            }
            Entry::File(data, mode) => {
                h.set_mode(mode);
                h.set_size(data.len() as u64);
                b.append_data(&mut h, &path, data.as_slice())?;
            }
            Entry::Link(target) => {
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_mode(0o777);
                h.set_size(0);
                b.append_link(&mut h, &path, &target)?;
            }
        }
    }
    b.into_inner()
}

/// Pushes the image as `<registry>/sandbox/kmod-base:latest` (the same bytes each time, so a
/// second push changes nothing).
pub fn push(pusher: &Pusher) -> std::io::Result<Pushed> {
    let layer = LayerBlob::from_tar(&layer()?);
    let config = Config {
        labels: vec![(
            "io.k8s.description".into(),
            "driver-matrix sandbox: kmod and busybox, the final stage of the example drivers"
                .into(),
        )],
        env: vec!["PATH=/usr/sbin:/usr/bin:/sbin:/bin".into()],
        cmd: vec!["/bin/sh".into()],
    };
    bigimage::push(pusher, REPO, Some(TAG), &[layer], "amd64", &config)
}
