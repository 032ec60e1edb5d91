//! The one test harness: the shared registry, the binary run as a machine of its own would run
//! it ([`Cmd`], `cmd.rs`: the only place that names the binary), buildah's environment,
//! redaction, and two ways to set up a project:
//! - [`World`] (`world.rs`): release payloads, DTK stand-ins and images pushed into a namespace
//!   of the shared registry by the sandbox crate, and a matrix over them;
//! - [`Project`] (`project.rs`): a matrix whose `[[release]]` entries are written into the lock,
//!   run `--offline` with a buildah shim that counts builds.

mod cmd;
mod image;
mod project;
mod world;

use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;

use driver_matrix_sandbox::Registry;

pub use cmd::*;
pub use image::*;
pub use project::*;
pub use world::*;

/// The shared registry (`DRIVER_MATRIX_TEST_REGISTRY` under `make test`, else one started for
/// this process from a thread that never ends: the sandbox starts it with `PR_SET_PDEATHSIG`,
/// which fires when the *thread* that spawned it exits).
pub fn registry() -> &'static Registry {
    static STARTED: OnceLock<()> = OnceLock::new();
    STARTED.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            Registry::shared();
            tx.send(()).expect("the test thread waits for the registry");
            loop {
                std::thread::park();
            }
        });
        rx.recv().expect("the registry thread reports back");
    });
    Registry::shared()
}

/// buildah's environment for the tests, unless the caller's environment already says.
pub fn buildah_env(cmd: &mut Command) -> &mut Command {
    for (k, v) in [("STORAGE_DRIVER", "vfs"), ("BUILDAH_ISOLATION", "chroot")] {
        if std::env::var_os(k).is_none() {
            cmd.env(k, v);
        }
    }
    cmd
}

/// The binary in `dir`, as a machine of its own would run it (see [`Cmd`]): `dir` as its
/// HOME and working directory, its cache in `dir/cache`, reproducible images
/// (`SOURCE_DATE_EPOCH`).
pub fn in_dir(dir: &Path) -> Cmd {
    Cmd::isolated(dir, dir)
        .arg("--cache-dir")
        .arg(dir.join("cache"))
        .env("SOURCE_DATE_EPOCH", "1700000000")
}

/// The binary outside any project: a temporary directory of its own is its HOME and working
/// directory (see [`Cmd`]).
pub fn dm() -> Cmd {
    Cmd::homeless()
}

/// `text` with `prefix` (a registry address, with a namespace) replaced by `[registry]` and
/// every digest by `sha256:[digest]`, for snapshots.
pub fn redact(text: &str, prefix: &str) -> String {
    let text = text.replace(prefix, "[registry]");
    let mut out = String::new();
    let mut rest = text.as_str();
    while let Some(i) = rest.find("sha256:") {
        out.push_str(&rest[..i]);
        let tail = &rest[i + 7..];
        let hex = tail.bytes().take_while(|b| b.is_ascii_hexdigit()).count();
        out.push_str("sha256:[digest]");
        rest = &tail[hex..];
    }
    out.push_str(rest);
    out
}

/// Whether `hay` (a rendered diagnostic, wrapped at 80 columns with `  | ` margins) holds
/// `needle`, ignoring whitespace and margins.
pub fn says(hay: &str, needle: &str) -> bool {
    let flat = |s: &str| -> String {
        s.chars()
            .filter(|c| !c.is_whitespace() && *c != '|')
            .collect()
    };
    flat(hay).contains(&flat(needle))
}

/// A `.ko`-like ELF object whose `.modinfo` says it was built for `kernel`.
pub fn module(name: &str, kernel: &str) -> Vec<u8> {
    driver_matrix_sandbox::kmod::fake_module(name, kernel)
}

/// The repository's root.
pub fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The sandbox of `make demo` (Debian roots, DTK stand-ins, release payloads) pushed into
/// `make test`'s registry, else into a registry of the caller's own, which lives as long as the
/// returned value (the DTK stand-ins are hundreds of megabytes). The roots and packed layers are
/// cached in `$DRIVER_MATRIX_SANDBOX_DIR`, else the repository's `.sandbox/`.
pub fn sandbox() -> (Option<Registry>, driver_matrix_sandbox::world::World) {
    use driver_matrix_sandbox::world::{Paths, populate};
    let (own, registry) = match std::env::var("DRIVER_MATRIX_TEST_REGISTRY") {
        Ok(addr) if !addr.is_empty() => (None, addr),
        _ => {
            let own = Registry::start(Default::default()).expect("starting docker-registry");
            let addr = own.addr().to_string();
            (Some(own), addr)
        }
    };
    let cache = std::env::var_os("DRIVER_MATRIX_SANDBOX_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| repo().join(".sandbox"));
    let world = populate(&registry, &Paths::in_repo(&cache))
        .expect("populating the sandbox (debootstrap needs the Debian mirror)");
    (own, world)
}
