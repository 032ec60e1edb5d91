//! Debian root filesystems with real kernel headers, made by `debootstrap` and cached: the
//! stuff the DTK stand-ins are built from. A root is complete once it sits at
//! `<cache>/<suite>` (debootstrap works in `<suite>.tmp` and the result is renamed), so an
//! interrupted run is redone, never half-used. Concurrent callers (the demo and `make test`)
//! wait on `<suite>.lock`.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

/// Packages a root needs to build out-of-tree modules: a compiler, make, the headers of the
/// suite's default kernel, kmod for depmod and libelf for objtool.
pub const PACKAGES: &str = "gcc,make,libc6-dev,linux-headers-amd64,kmod,libelf-dev";

/// Where debootstrap downloads from, unless `DRIVER_MATRIX_DEBIAN_MIRROR` says otherwise.
pub const DEFAULT_MIRROR: &str = "http://deb.debian.org/debian";

/// A cached Debian root.
#[derive(Debug, Clone)]
pub struct Rootfs {
    pub suite: String,
    pub path: PathBuf,
    /// The kernel whose headers the root holds (the one directory under `lib/modules`).
    pub kernel: String,
    /// `VERSION_ID` of the root's os-release (`12`, `13`).
    pub debian: String,
}

/// An exclusive `flock` held until drop.
pub(crate) struct FileLock(File);

impl FileLock {
    pub(crate) fn acquire(path: &Path) -> std::io::Result<FileLock> {
        let f = File::create(path)?;
        // SAFETY: flock on a descriptor this struct owns; released when the file is closed.
        if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(FileLock(f))
    }
}

impl Drop for FileLock {
    fn drop(&mut self) {
        // SAFETY: as above; closing would release it too, this is just explicit.
        unsafe { libc::flock(self.0.as_raw_fd(), libc::LOCK_UN) };
    }
}

/// The root of `suite` under `cache`, bootstrapped first when it is not there yet.
pub fn ensure(cache: &Path, suite: &str) -> std::io::Result<Rootfs> {
    std::fs::create_dir_all(cache)?;
    let _lock = FileLock::acquire(&cache.join(format!("{suite}.lock")))?;
    let path = cache.join(suite);
    if !path.is_dir() {
        bootstrap(cache, suite)?;
    }
    describe(suite, &path)
}

fn bootstrap(cache: &Path, suite: &str) -> std::io::Result<()> {
    let tmp = cache.join(format!("{suite}.tmp"));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp)?;
    }
    let mirror =
        std::env::var("DRIVER_MATRIX_DEBIAN_MIRROR").unwrap_or_else(|_| DEFAULT_MIRROR.into());
    let log_path = cache.join(format!("{suite}.log"));
    let log = File::create(&log_path)?;
    eprintln!(
        "sandbox: debootstrap {suite} into {} (a minute or two; log: {})",
        tmp.display(),
        log_path.display()
    );
    let start = Instant::now();
    let status = Command::new("debootstrap")
        .args(["--variant=minbase", &format!("--include={PACKAGES}"), suite])
        .arg(&tmp)
        .arg(&mirror)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .status()
        .map_err(|e| {
            std::io::Error::new(
                e.kind(),
                format!("cannot run debootstrap (apt-get install debootstrap): {e}"),
            )
        })?;
    if !status.success() {
        let tail: String = std::fs::read_to_string(&log_path)
            .unwrap_or_default()
            .lines()
            .rev()
            .take(15)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join("\n");
        return Err(std::io::Error::other(format!(
            "debootstrap {suite} failed ({status}); the end of {}:\n{tail}",
            log_path.display()
        )));
    }
    // Downloaded .debs are half the root's size and no build needs them.
    let archives = tmp.join("var/cache/apt/archives");
    if let Ok(entries) = std::fs::read_dir(&archives) {
        for e in entries.flatten() {
            if e.path().extension().is_some_and(|x| x == "deb") {
                std::fs::remove_file(e.path())?;
            }
        }
    }
    std::fs::rename(&tmp, cache.join(suite))?;
    eprintln!(
        "sandbox: debootstrap {suite} done in {:.0?}",
        start.elapsed()
    );
    Ok(())
}

/// Reads the kernel and the Debian version of a finished root.
pub fn describe(suite: &str, path: &Path) -> std::io::Result<Rootfs> {
    let modules = path.join("lib/modules");
    let mut kernels: Vec<String> = std::fs::read_dir(&modules)
        .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", modules.display())))?
        .flatten()
        .filter(|e| std::fs::symlink_metadata(e.path().join("build")).is_ok())
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    kernels.sort();
    let kernel = match kernels.as_slice() {
        [one] => one.clone(),
        _ => {
            return Err(std::io::Error::other(format!(
                "expected exactly one kernel with headers under {}, found {kernels:?}",
                modules.display()
            )));
        }
    };
    let os_release = std::fs::read_to_string(path.join("etc/os-release")).unwrap_or_default();
    let debian = os_release
        .lines()
        .find_map(|l| l.strip_prefix("VERSION_ID="))
        .map(|v| v.trim_matches('"').to_string())
        .unwrap_or_else(|| "0".into());
    Ok(Rootfs {
        suite: suite.to_string(),
        path: path.to_path_buf(),
        kernel,
        debian,
    })
}
