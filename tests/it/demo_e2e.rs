//! `make demo` as a test: the sandbox (Debian kernel headers as DTK stand-ins, release payloads
//! in the real format behind a quay.io mirror, an update graph), the example matrix and the
//! example drivers, real buildah and the real binary. Each locked image is pulled back and
//! every module in it must carry the vermagic of its locked kernel; hello-kmod's module must
//! be signed (by `sign-file` from the DTK's kernel tree) with the key made for the demo, and
//! `verify --deep` must name that signer as `modinfo` does, and fail against another key.
//! The RHEL 10 dual-stream release (4.17.0) resolves to both its kernels and is built for both;
//! the release whose nodes boot another kernel than its DTK (4.15.3) gives `resolve`'s warning
//! and `verify`'s finding. Then a real client reads what was pushed: podman pulls each image
//! from the registry and runs `modinfo` on each module inside it (see [`Podman`]).
//!
//! The Debian roots are cached in the repository's `.sandbox/` (shared with `make demo`;
//! `DRIVER_MATRIX_SANDBOX_DIR` puts them elsewhere, a CI cache say): the first run on a machine
//! bootstraps them (about five minutes), later runs reuse them.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use driver_matrix_sandbox::GraphServer;
use driver_matrix_sandbox::world::World;

use crate::support::{Cmd, in_dir, repo};

/// A copy of the example matrix and drivers in a temporary directory, pointed at this test's
/// registry and graph instead of the demo's fixed ports.
struct Demo {
    dir: tempfile::TempDir,
}

impl Demo {
    fn new(world: &World, graph: &GraphServer) -> Demo {
        let dir = tempfile::tempdir().unwrap();
        for d in ["hello-kmod", "acme-net"] {
            let from = repo().join("examples").join(d);
            let to = dir.path().join("examples").join(d);
            std::fs::create_dir_all(&to).unwrap();
            for e in std::fs::read_dir(&from).unwrap() {
                let e = e.unwrap();
                std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
            }
        }
        let example = std::fs::read_to_string(repo().join("matrix.example.toml")).unwrap();
        assert!(example.contains("mirror = \"127.0.0.1:5000\""), "{example}");
        let matrix = example
            .replace(
                "http://127.0.0.1:5001/api/upgrades_info/v1/graph",
                &graph.url(),
            )
            .replace("127.0.0.1:5000", &world.registry);
        std::fs::write(dir.path().join("matrix.toml"), matrix).unwrap();
        // The example matrix names the key pair `make demo` makes in .sandbox/signing/.
        driver_matrix_sandbox::signing::ensure(&dir.path().join(".sandbox/signing")).unwrap();
        Demo { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `driver-matrix ARGS` in the demo's directory (see [`in_dir`]); the harness removes
    /// `CONTAINERS_REGISTRIES_CONF`: the matrix's mirror alone must take buildah to the
    /// sandbox for quay.io.
    fn cmd(&self, args: &[&str]) -> Cmd {
        in_dir(self.path())
            .env_remove("SOURCE_DATE_EPOCH")
            .args(args)
    }

    fn lock(&self) -> String {
        std::fs::read_to_string(self.path().join("matrix.lock")).unwrap()
    }
}

/// The `.ko` files of `image@digest` under `opt/lib/modules/<kernel>/`, written into `into`:
/// module name → path.
fn modules_in(image: &str, kernel: &str, into: &Path) -> BTreeMap<String, PathBuf> {
    let prefix = format!("opt/lib/modules/{kernel}/");
    let mut found = BTreeMap::new();
    let files = crate::support::image_files(image, |p| {
        p.strip_prefix(&prefix).is_some_and(|n| n.ends_with(".ko"))
    });
    for (path, bytes) in files {
        let name = path[prefix.len()..path.len() - ".ko".len()].to_string();
        let file = into.join(format!("{name}.ko"));
        std::fs::write(&file, bytes).unwrap();
        found.insert(name, file);
    }
    found
}

/// Debian's podman, as root on a machine with no systemd and no container engine, in a storage
/// of its own that is removed with it. What each flag is for:
/// - `--root`/`--runroot`/`--tmpdir` and `--storage-driver vfs`: a private storage under a
///   temporary directory (vfs needs no overlay mount), so the test leaves nothing behind;
/// - `--cgroup-manager cgroupfs`: there is no systemd to ask for a scope;
/// - `--events-backend file`: no journald either;
/// - `--runtime runc`: crun refuses a hybrid cgroup hierarchy whose v2 part has controllers
///   ("cgroups in hybrid mode not supported"), which such machines (and CI containers) have;
/// - `--network none`: `modinfo` needs no network, and no network means no netavark/CNI;
/// - `--ulimit nofile=4096:4096 --ulimit nproc=4096:4096`: podman asks root containers for
///   far higher limits than the machine's (1048576 open files), and raising a limit needs
///   `CAP_SYS_RESOURCE`, which a CI container lacks; lowering one is always allowed;
/// - `pull --tls-verify=false`: the sandbox registry speaks plain HTTP on loopback.
///
/// No `--privileged` or `--cap-add SYS_MODULE`: reading a module needs no capability; only
/// loading it does (docs/cookbook.md, "Run with podman").
struct Podman {
    dir: tempfile::TempDir,
}

impl Podman {
    fn new() -> Podman {
        Podman {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn cmd(&self) -> Command {
        let d = self.dir.path();
        let mut cmd = Command::new("podman");
        cmd.arg("--root")
            .arg(d.join("root"))
            .arg("--runroot")
            .arg(d.join("run"))
            .arg("--tmpdir")
            .arg(d.join("tmp"))
            .args(["--storage-driver", "vfs", "--cgroup-manager", "cgroupfs"])
            .args(["--events-backend", "file", "--runtime", "runc"])
            .env_remove("CONTAINERS_STORAGE_CONF")
            .env_remove("STORAGE_DRIVER")
            .stdin(Stdio::null());
        cmd
    }

    fn check(what: &str, out: &Output) -> String {
        assert!(
            out.status.success(),
            "podman {what} failed ({}):\n{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `podman pull --tls-verify=false IMAGE` (by digest).
    fn pull(&self, image: &str) {
        let out = self
            .cmd()
            .args(["pull", "--quiet", "--tls-verify=false", image])
            .output()
            .expect("running podman (apt-get install podman)");
        Self::check(&format!("pull {image}"), &out);
    }

    /// `podman run --rm --network none ... IMAGE ARGS...`: the image's own programs.
    fn run(&self, image: &str, args: &[&str]) -> String {
        let out = self
            .cmd()
            .args(["run", "--rm", "--pull", "never", "--network", "none"])
            .args([
                "--ulimit",
                "nofile=4096:4096",
                "--ulimit",
                "nproc=4096:4096",
            ])
            .arg(image)
            .args(args)
            .output()
            .unwrap();
        Self::check(&format!("run {image} {args:?}"), &out)
    }
}

/// `FIELD:` of `modinfo`'s output (continuation lines of a multi-line field are not joined).
fn field<'a>(modinfo: &'a str, name: &str) -> Option<&'a str> {
    modinfo
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .map(str::trim)
}

fn vermagic(ko: &Path) -> String {
    modinfo_field(ko, "vermagic")
}

/// `modinfo -F FIELD` of a module file.
fn modinfo_field(ko: &Path, field: &str) -> String {
    let modinfo = ["/usr/sbin/modinfo", "/sbin/modinfo"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .unwrap_or("modinfo");
    let out = Command::new(modinfo)
        .args(["-F", field])
        .arg(ko)
        .output()
        .unwrap();
    assert!(out.status.success(), "modinfo {}", ko.display());
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn example_drivers_build_for_every_sandbox_kernel_and_carry_its_vermagic() {
    let started = std::time::Instant::now();
    let (_own, world) = crate::support::sandbox();
    eprintln!("sandbox populated in {:.0?}", started.elapsed());
    let kernels: BTreeSet<String> = world.kernels().into_iter().collect();
    assert_eq!(kernels.len(), 2, "two distinct real kernels: {kernels:?}");
    let graph = GraphServer::start().unwrap();
    world.serve_graphs(&graph);
    let demo = Demo::new(&world, &graph);

    // 4.15.3's nodes boot another kernel than its DTK carries: `resolve` says so, and goes on.
    let warnings = demo.cmd(&["resolve"]).stderr();
    let lagging = world
        .releases
        .iter()
        .find(|r| r.version == "4.15.3")
        .unwrap();
    let node = lagging.node_kernel.as_deref().unwrap();
    assert_ne!(node, lagging.kernel, "the sandbox's 4.15.3 lags");
    let warning = format!(
        "release 4.15.3 (x86_64): its Driver Toolkit carries kernel `{}`, but its nodes boot `{node}`",
        lagging.kernel
    );
    // Diagnostics are wrapped (`  | ` continues a line): compare without the wrapping.
    let unwrapped = |s: &str| -> String {
        s.chars()
            .filter(|c| !c.is_whitespace() && *c != '|')
            .collect()
    };
    assert!(
        unwrapped(&warnings).contains(&unwrapped(&warning)),
        "{warning}\n{warnings}"
    );
    assert_eq!(
        unwrapped(&warnings).matches("butitsnodesboot").count(),
        1,
        "{warnings}"
    );

    let plan: serde_json::Value = demo.cmd(&["plan", "--format", "json"]).run().json();
    // hello-kmod: 4.15.1-4.15.3, the channel's 4.16.0-4.16.2 and 4.17.0; acme-net: >=4.15.2
    // without 4.16.0. 4.17.0 ships two node OSes (two kernels), a cell each, so it is in a job
    // of each kernel. 8 + 6 cells on two kernels: 4 jobs.
    assert_eq!(plan["summary"]["cells"], 14, "{plan:#}");
    assert_eq!(plan["summary"]["jobs"], 4, "{plan:#}");
    assert_eq!(plan["summary"]["saved"], 10, "{plan:#}");
    assert_eq!(plan["summary"]["new"], 4, "{plan:#}");
    let jobs = plan["jobs"].as_array().unwrap();
    for job in jobs {
        let releases: Vec<&str> = job["releases"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert!(
            releases.contains(&"4.17.0"),
            "both streams of 4.17.0 are planned: {job:#}"
        );
    }

    let t = std::time::Instant::now();
    demo.cmd(&["build", "-j2"]).run();
    eprintln!("4 builds in {:.0?}", t.elapsed());
    let lock_text = demo.lock();
    let lock: toml::Table = toml::from_str(&lock_text).unwrap();

    // Every release (every stream of it) maps to the kernel, DTK and node kernel the sandbox
    // published it with.
    let releases = lock["release"].as_array().expect("[[release]] in the lock");
    let locked: BTreeMap<(&str, &str), &toml::Value> = releases
        .iter()
        .map(|r| {
            let stream = r.get("stream").map_or("default", |s| s.as_str().unwrap());
            ((r["version"].as_str().unwrap(), stream), r)
        })
        .collect();
    assert_eq!(
        locked.keys().copied().collect::<Vec<_>>(),
        [
            ("4.15.1", "default"),
            ("4.15.2", "default"),
            ("4.15.3", "default"),
            ("4.16.0", "default"),
            ("4.16.1", "default"),
            ("4.16.2", "default"),
            ("4.17.0", "default"),
            ("4.17.0", "rhel-10"),
        ]
    );
    for p in &world.releases {
        let r = locked[&(p.version.as_str(), "default")];
        assert_eq!(
            r["kernel"].as_str(),
            Some(p.kernel.as_str()),
            "{}",
            p.version
        );
        assert_eq!(r["dtk"].as_str(), Some(p.dtk.as_str()), "{}", p.version);
        assert_eq!(r["arch"].as_str(), Some("x86_64"));
        assert_eq!(
            r.get("node-kernel").and_then(|k| k.as_str()),
            p.node_kernel.as_deref(),
            "{}",
            p.version
        );
        if let Some(s) = &p.rhel10 {
            let r = locked[&(p.version.as_str(), "rhel-10")];
            assert_ne!(s.kernel, p.kernel, "two streams, two kernels");
            assert_eq!(r["kernel"].as_str(), Some(s.kernel.as_str()));
            assert_eq!(r["dtk"].as_str(), Some(s.dtk.as_str()));
            assert_eq!(r["rhel"].as_str(), Some("10.0"));
            assert_eq!(r["node-kernel"].as_str(), Some(s.kernel.as_str()));
            assert_eq!(r["payload"].as_str(), Some(p.payload.as_str()));
        }
    }
    let serves = |version: &str, kernel: &str| {
        locked
            .iter()
            .any(|((v, _), r)| *v == version && r["kernel"].as_str() == Some(kernel))
    };

    // Every image holds exactly its driver's modules, built for its kernel.
    let images = lock["image"].as_array().expect("[[image]] in the lock");
    assert_eq!(images.len(), 4, "{lock_text}");
    let expected: BTreeMap<&str, BTreeSet<&str>> = [
        ("hello-kmod", BTreeSet::from(["hello"])),
        ("acme-net", BTreeSet::from(["acme_core", "acme_net"])),
    ]
    .into();
    let mut seen = BTreeSet::new();
    let mut signed_by = BTreeSet::new();
    let mut pinned_images = Vec::new();
    for img in images {
        let driver = img["driver"].as_str().unwrap();
        let kernel = img["kernel"].as_str().unwrap();
        assert!(kernels.contains(kernel), "{kernel} is a sandbox kernel");
        seen.insert((driver, kernel));
        let served: Vec<&str> = img["releases"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        for v in &served {
            assert!(serves(v, kernel), "{driver} {v} has a stream on {kernel}");
        }
        // Each stream of the dual-stream release has its image.
        assert!(served.contains(&"4.17.0"), "{driver} {kernel}: {served:?}");
        let repo = img["image"].as_str().unwrap().rsplit_once(':').unwrap().0;
        let pinned = format!("{repo}@{}", img["digest"].as_str().unwrap());
        pinned_images.push((driver, kernel, pinned.clone()));
        let scratch = tempfile::tempdir().unwrap();
        let modules = modules_in(&pinned, kernel, scratch.path());
        assert_eq!(
            modules.keys().map(String::as_str).collect::<BTreeSet<_>>(),
            expected[driver],
            "{pinned}"
        );
        for (name, ko) in &modules {
            let magic = vermagic(ko);
            assert!(
                magic.starts_with(&format!("{kernel} ")),
                "{name}.ko in {pinned}: vermagic `{magic}` is not for {kernel}"
            );
            // hello-kmod signs its module; acme-net does not.
            let signer = modinfo_field(ko, "signer");
            if driver == "hello-kmod" {
                assert_eq!(signer, driver_matrix_sandbox::signing::SIGNER, "{pinned}");
                assert_eq!(modinfo_field(ko, "sig_hashalgo"), "sha256");
                signed_by.insert(modinfo_field(ko, "sig_key"));
            } else {
                assert_eq!(signer, "", "{name}.ko in {pinned}");
            }
        }
    }
    assert_eq!(seen.len(), 4, "one image per driver and kernel: {seen:?}");

    // A real client reads what was pushed: podman pulls each image by digest and runs the
    // image's own modinfo on each module, found as `modprobe -d /opt` finds it (modules.dep
    // under /opt/lib/modules/<kernel>/).
    let podman = Podman::new();
    let t = std::time::Instant::now();
    for (driver, kernel, pinned) in &pinned_images {
        podman.pull(pinned);
        for name in &expected[driver] {
            let info = podman.run(pinned, &["modinfo", "-b", "/opt", "-k", kernel, name]);
            assert_eq!(
                field(&info, "filename"),
                Some(format!("/opt/lib/modules/{kernel}/{name}.ko").as_str()),
                "{pinned}:\n{info}"
            );
            let magic = field(&info, "vermagic").unwrap_or_default();
            assert!(
                magic.starts_with(&format!("{kernel} ")),
                "{name} in {pinned} (podman): vermagic `{magic}` is not for {kernel}"
            );
            let signer = field(&info, "signer");
            if *driver == "hello-kmod" {
                assert_eq!(
                    signer,
                    Some(driver_matrix_sandbox::signing::SIGNER),
                    "{pinned}:\n{info}"
                );
            } else {
                assert_eq!(signer, None, "{pinned}:\n{info}");
            }
        }
    }
    eprintln!(
        "podman read {} images in {:.0?}",
        pinned_images.len(),
        t.elapsed()
    );

    // The tool's own deep verification agrees on every image; it fails (exit 1) on one
    // finding: 4.15.3's DTK is not its nodes' kernel.
    let verified_out = demo.cmd(&["verify", "--deep"]).expect_exit(1).stdout();
    let finding = format!(
        "FAIL release 4.15.3 (x86_64): the DTK's kernel {} is not the nodes' kernel {node}",
        lagging.kernel
    );
    assert!(verified_out.contains(&finding), "{finding}\n{verified_out}");
    assert_eq!(
        verified_out.matches("FAIL").count(),
        1,
        "the release is the only failure: {verified_out}"
    );
    assert_eq!(
        signed_by.len(),
        1,
        "one key signs every image: {signed_by:?}"
    );
    let key_id = signed_by.first().unwrap();
    let line = format!(
        "hello: signed by `{}` (key id {key_id}, sha256)",
        driver_matrix_sandbox::signing::SIGNER
    );
    assert_eq!(
        verified_out.matches(&line).count(),
        2,
        "{line}\n{verified_out}"
    );
    // Against another certificate the same images fail, naming who did sign them.
    let cert = demo.path().join(".sandbox/signing/signing.crt");
    let ours = std::fs::read(&cert).unwrap();
    let other = driver_matrix_sandbox::signing::ensure(&demo.path().join("other")).unwrap();
    std::fs::copy(&other.1, &cert).unwrap();
    let stdout = demo.cmd(&["verify", "--deep"]).expect_exit(1).stdout();
    assert_eq!(
        stdout
            .matches("signed by another key than the driver's certificate")
            .count(),
        2,
        "{stdout}"
    );
    std::fs::write(&cert, ours).unwrap();
    let kmm = demo.cmd(&["export", "kmm"]).stdout();
    for img in images {
        let kernel = img["kernel"].as_str().unwrap();
        let digest = img["digest"].as_str().unwrap();
        assert!(kmm.contains(&format!("literal: \"{kernel}\"")), "{kmm}");
        assert!(kmm.contains(digest), "{digest} in {kmm}");
    }
    // Both example drivers are tagged with the bare kernel, so both can load at boot.
    let boot = demo.cmd(&["export", "boot"]).stdout();
    assert_eq!(
        boot.matches("kind: \"BootModuleConfig\"").count(),
        2,
        "{boot}"
    );
    for d in ["hello-kmod", "acme-net"] {
        assert!(boot.contains(&format!("/acme/{d}")), "{d} in {boot}");
    }

    // Nothing changed: the second build builds nothing and leaves the lock alone.
    let lock_path = demo.path().join("matrix.lock");
    let before = std::fs::metadata(&lock_path).unwrap().modified().unwrap();
    let stdout = demo.cmd(&["build"]).stdout();
    assert!(stdout.contains("0 built, 4 fresh"), "{stdout}");
    assert_eq!(demo.lock(), lock_text);
    assert_eq!(
        std::fs::metadata(&lock_path).unwrap().modified().unwrap(),
        before
    );
    eprintln!("end to end in {:.0?}", started.elapsed());

    // The built images are in the registry; buildah's local copies only take space. (The
    // DTKs stay: their digests are stable while the Debian roots are, so the next run pulls
    // nothing.)
    for img in images {
        let _ = Command::new("buildah")
            .args(["rmi", img["image"].as_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}
