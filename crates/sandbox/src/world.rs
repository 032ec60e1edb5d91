//! Everything `make demo` and the end-to-end test stand up, in one call: Debian roots →
//! DTK stand-ins → the kmod base image → release payloads → update graphs. The registry and
//! graph server are the caller's (a fixed port for the demo, a free one for tests).

use std::collections::BTreeMap;
use std::io::Write as _;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};

use crate::debian_dtk::{self, DebianDtk};
use crate::graph::GraphServer;
use crate::oci::{Pushed, Pusher};
use crate::openshift::{self, Published};
use crate::rootfs::FileLock;
use crate::{kmod_base, rootfs};

/// Where the heavy things are cached.
#[derive(Debug, Clone)]
pub struct Paths {
    /// Debian roots: `<rootfs>/<suite>`.
    pub rootfs: PathBuf,
    /// Packed layers of the roots: `<work>/layers/<suite>.tar.gz`.
    pub work: PathBuf,
}

impl Paths {
    /// The repository's `.sandbox/` (git-ignored): shared by `make demo` and `make test`.
    pub fn in_repo(sandbox: &Path) -> Paths {
        Paths {
            rootfs: sandbox.join("rootfs"),
            work: sandbox.join("work"),
        }
    }
}

/// What the sandbox holds once populated.
#[derive(Debug, Clone)]
pub struct World {
    pub registry: String,
    pub dtks: BTreeMap<String, DebianDtk>,
    /// The RHEL 10 stream's DTK of the dual-stream release ([`openshift::RHEL10`]).
    pub rhel10: DebianDtk,
    pub kmod_base: Pushed,
    pub releases: Vec<Published>,
}

impl World {
    /// `<registry>/sandbox/kmod-base:latest`.
    pub fn kmod_base_ref(&self) -> String {
        format!("{}/{}:{}", self.registry, kmod_base::REPO, kmod_base::TAG)
    }

    /// The distinct kernels of the releases' DTKs (every stream's).
    pub fn kernels(&self) -> Vec<String> {
        let mut k: Vec<String> = self
            .dtks
            .values()
            .chain([&self.rhel10])
            .map(|d| d.kernel.clone())
            .collect();
        k.sort();
        k.dedup();
        k
    }

    /// Serves the graphs for `arch=amd64` (and the multi payload under `arch=multi`).
    pub fn serve_graphs(&self, server: &GraphServer) {
        for (channel, json) in openshift::graphs(&self.releases) {
            server.set(&channel, "amd64", json);
        }
        let multi: Vec<Published> = self
            .releases
            .iter()
            .filter(|r| r.tag.ends_with("-multi"))
            .cloned()
            .collect();
        server.set(
            "stable-4.16",
            "multi",
            openshift::graph("stable-4.16", &multi),
        );
    }
}

/// Populates the registry at `registry` (plain HTTP on loopback). Both Debian suites are
/// bootstrapped and turned into DTKs in parallel; everything is cached under `paths`.
/// Concurrent callers on one cache take turns.
pub fn populate(registry: &str, paths: &Paths) -> std::io::Result<World> {
    // One caller at a time per cache: two tests of one run would otherwise upload the same
    // blobs to one registry at once, which docker-registry answers with DIGEST_INVALID. The
    // second caller finds everything cached and pushed, and pays a HEAD per blob.
    std::fs::create_dir_all(&paths.work)?;
    let _lock = FileLock::acquire(&paths.work.join("populate.lock"))?;
    let pusher = Pusher::new(registry);
    let dtks: Vec<std::io::Result<DebianDtk>> = std::thread::scope(|s| {
        let handles: Vec<_> = openshift::SUITES
            .iter()
            .map(|(suite, rhel)| {
                let pusher = &pusher;
                s.spawn(move || {
                    let root = rootfs::ensure(&paths.rootfs, suite)?;
                    debian_dtk::ensure(pusher, &root, rhel, &paths.work.join("layers"))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a DTK thread does not panic"))
            .collect()
    });
    let mut by_suite = BTreeMap::new();
    for d in dtks {
        let d = d?;
        by_suite.insert(d.suite.clone(), d);
    }
    // The RHEL 10 stream's DTK: another suite's root (its packed layer is cached) under a
    // release file of its own.
    let (suite, rhel) = openshift::RHEL10;
    let root = rootfs::ensure(&paths.rootfs, suite)?;
    let rhel10 = debian_dtk::ensure(&pusher, &root, rhel, &paths.work.join("layers"))?;
    let kmod_base = kmod_base::push(&pusher)?;
    let releases = openshift::publish(&pusher, &by_suite, &rhel10)?;
    Ok(World {
        registry: registry.to_string(),
        dtks: by_suite,
        rhel10,
        kmod_base,
        releases,
    })
}

/// A `registries.conf` (for `CONTAINERS_REGISTRIES_CONF`) that reads quay.io from `mirror`
/// and lets buildah use `mirror` over plain HTTP, as a disconnected site configures its
/// machines.
pub fn registries_conf(mirror: &str) -> String {
    format!(
        "# driver-matrix sandbox: quay.io is mirrored on {mirror} (plain HTTP on loopback).\n\
         [[registry]]\nprefix = \"quay.io\"\nlocation = \"quay.io\"\n\n\
         [[registry.mirror]]\nlocation = \"{mirror}\"\ninsecure = true\n\n\
         [[registry]]\nlocation = \"{mirror}\"\ninsecure = true\n"
    )
}

/// Accepts connections on `listen` and relays each to `to`, so a graph server on a free port
/// also answers on a fixed one. Runs for the life of the process.
pub fn forward(listen: &str, to: &str) -> std::io::Result<()> {
    let listener = TcpListener::bind(listen)?;
    let to = to.to_string();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let to = to.clone();
            std::thread::spawn(move || {
                let Ok(upstream) = TcpStream::connect(&to) else {
                    return;
                };
                let (Ok(mut c2), Ok(mut u2)) = (conn.try_clone(), upstream.try_clone()) else {
                    return;
                };
                let up = std::thread::spawn(move || {
                    let _ = std::io::copy(&mut c2, &mut u2);
                    let _ = u2.shutdown(std::net::Shutdown::Write);
                });
                let (mut conn, mut upstream) = (conn, upstream);
                let _ = std::io::copy(&mut upstream, &mut conn);
                let _ = conn.flush();
                let _ = conn.shutdown(std::net::Shutdown::Both);
                let _ = up.join();
            });
        }
    });
    Ok(())
}
