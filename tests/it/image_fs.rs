//! `verify --deep` (and the build's read-back) judge the file a container sees: images built
//! with real buildah whose later layers replace a signed `hello.ko` by a symbolic link, a hard
//! link or a link climbing above the root to an unsigned module, remove a directory of modules
//! (a whiteout), or make the modules directory opaque; each checked against the file `buildah
//! run` shows at that path. And module dependencies: one found nowhere fails, one in the
//! kernel's tree passes with KMM's `host` link, one shipped in the image passes.

use std::path::PathBuf;
use std::process::Command;

use driver_matrix_sandbox::oci::{self, Compression, Layer};
use driver_matrix_sandbox::{DtkSpec, Flavor, PayloadSpec, signing};

use crate::support::{World, in_dir};

const K: &str = "5.14.0-284.52.1.el9_2.x86_64";

/// A `.ko`-like ELF object named `name` built for `K`, needing `depends`.
fn ko(name: &str, depends: &str) -> Vec<u8> {
    use object::write::{Object, StandardSection};
    use object::{Architecture, BinaryFormat, Endianness, SectionKind};
    let mut obj = Object::new(BinaryFormat::Elf, Architecture::X86_64, Endianness::Little);
    let id = obj.add_section(
        Vec::new(),
        b".modinfo".to_vec(),
        SectionKind::ReadOnlyString,
    );
    let info =
        format!("license=GPL\0depends={depends}\0name={name}\0vermagic={K} SMP mod_unload \0");
    obj.append_section_data(id, info.as_bytes(), 1);
    let text = obj.section_id(StandardSection::Text);
    obj.append_section_data(text, &[0xc3], 1);
    obj.write().unwrap()
}

/// The project: a release whose DTK lists `videodev` in its kernel's `modules.dep`.
struct Setup {
    w: World,
    key: PathBuf,
    cert: PathBuf,
}

impl Setup {
    fn new(name: &str) -> Setup {
        let w = World::new(name);
        let mut spec = DtkSpec::new(K);
        spec.base = 64 << 10;
        let mut layers = spec.layers();
        let dep = "kernel/drivers/media/v4l2-core/videodev.ko.xz: kernel/drivers/media/mc/mc.ko.xz\n\
                   kernel/drivers/media/mc/mc.ko.xz:\n";
        let tree = oci::tar(&[
            ("usr/", b""),
            ("usr/lib/", b""),
            ("usr/lib/modules/", b""),
            (&format!("usr/lib/modules/{K}/"), b""),
            (&format!("usr/lib/modules/{K}/modules.dep"), dep.as_bytes()),
            (
                &format!("usr/lib/modules/{K}/modules.builtin"),
                b"kernel/fs/ext4/ext4.ko\n",
            ),
        ]);
        layers.insert(1, Layer::new(&tree, Compression::Gzip));
        let dtk = w
            .pusher
            .image(&w.repo("dtk"), None, &layers, &[], "amd64", Flavor::Docker)
            .unwrap();
        let dtk_ref = format!("{}/{}@{}", w.addr, w.repo("dtk"), dtk.digest);
        w.payload(
            &PayloadSpec::new("4.14.1", Some(dtk_ref)),
            "x86_64",
            "amd64",
            Flavor::Docker,
        );
        let (key, cert) = signing::ensure(&w.path("keys")).unwrap();
        Setup { w, key, cert }
    }

    fn signed(&self, m: &[u8]) -> Vec<u8> {
        signing::sign(&self.key, &self.cert, m).unwrap()
    }

    /// A driver whose context holds `files` and busybox, built from `steps` on scratch.
    fn driver(&self, name: &str, modules: &str, files: &[(&str, Vec<u8>)], steps: &str) -> String {
        let ctx = self.w.path(name);
        std::fs::create_dir_all(&ctx).unwrap();
        for (file, bytes) in files {
            let p = ctx.join(file);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, bytes).unwrap();
        }
        std::fs::copy("/usr/bin/busybox", ctx.join("busybox")).unwrap();
        std::fs::write(
            ctx.join("Containerfile"),
            format!(
                "ARG DTK_IMAGE\nFROM ${{DTK_IMAGE}} AS dtk\n\nFROM scratch\n\
                 COPY --from=dtk /etc/driver-toolkit-release.json /etc/\n\
                 COPY busybox /bin/busybox\n{steps}"
            ),
        )
        .unwrap();
        format!(
            "[[driver]]\nname = \"{name}\"\ncontext = \"{name}\"\nimage = \"{}/{}/{name}\"\n\
             modules = [{modules}]\nsigned = true\nsigning-cert = \"keys/signing.crt\"\n\n",
            self.w.addr, self.w.ns,
        )
    }

    fn matrix(&self, drivers: &str) {
        let w = &self.w;
        std::fs::write(
            w.path("matrix.toml"),
            format!(
                "[openshift]\npayload-repo = \"{}/{}\"\nreleases = [\"4.14.1\"]\n\n\
                 [registries.\"{}\"]\ninsecure = true\n\n{drivers}",
                w.addr,
                w.repo("release"),
                w.addr
            ),
        )
        .unwrap();
    }

    /// The digest the lock pins for `driver`'s image.
    fn locked(&self, driver: &str) -> String {
        let lock = self.w.lock();
        let block = lock
            .split("[[image]]")
            .find(|b| b.contains(&format!("driver = \"{driver}\"")))
            .unwrap_or_else(|| panic!("no image of `{driver}` in the lock:\n{lock}"));
        let at = block.find("digest = \"").unwrap() + 10;
        block[at..at + 71].to_string()
    }
}

/// buildah with a storage of this test's own (nothing shared with other builds is touched).
struct Buildah {
    root: tempfile::TempDir,
}

impl Buildah {
    fn new() -> Buildah {
        Buildah {
            root: tempfile::tempdir().unwrap(),
        }
    }

    fn cmd(&self, args: &[&str]) -> Vec<u8> {
        let r = self.root.path();
        let out = Command::new("buildah")
            .arg("--root")
            .arg(r.join("root"))
            .arg("--runroot")
            .arg(r.join("run"))
            .args(["--storage-driver", "vfs"])
            .args(args)
            .env("BUILDAH_ISOLATION", "chroot")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "buildah {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    /// What `/bin/busybox <args>` prints inside a container of `image`: the filesystem a
    /// container sees.
    fn run(&self, image: &str, args: &[&str]) -> Vec<u8> {
        let ctr = self.cmd(&["from", "--tls-verify=false", &format!("docker://{image}")]);
        let ctr = String::from_utf8(ctr).unwrap().trim().to_string();
        let mut all = vec!["run", &ctr, "--", "/bin/busybox"];
        all.extend(args);
        let out = self.cmd(&all);
        self.cmd(&["rm", &ctr]);
        out
    }
}

/// The lines `verify` printed for `driver` (its header, then the indented ones).
fn block<'a>(text: &'a str, driver: &str) -> Vec<&'a str> {
    let mut lines = text
        .lines()
        .skip_while(|l| !l[5.min(l.len())..].starts_with(&format!("{driver} ")));
    let head = lines
        .next()
        .unwrap_or_else(|| panic!("no `{driver}` in:\n{text}"));
    std::iter::once(head)
        .chain(lines.take_while(|l| l.starts_with("     ")))
        .collect()
}

#[test]
fn verify_deep_judges_the_file_a_container_sees() {
    let s = Setup::new("image-fs");
    let hello = s.signed(&ko("hello", ""));
    let evil = ko("evil", "");
    let dir = format!("/opt/lib/modules/{K}");
    let base = || vec![("good/hello.ko", hello.clone()), ("evil.ko", evil.clone())];
    let copy = format!("COPY good/ {dir}/\nCOPY evil.ko {dir}/evil.ko\n");
    let sh = |script: &str| format!("RUN [\"/bin/busybox\", \"sh\", \"-c\", \"{script}\"]\n");
    let bb = "/bin/busybox";
    let climb = "../".repeat(12);
    let mut drivers = String::new();
    drivers += &s.driver(
        "symlink",
        "\"hello\"",
        &base(),
        &format!(
            "{copy}{}",
            sh(&format!("{bb} ln -sf evil.ko {dir}/hello.ko"))
        ),
    );
    drivers += &s.driver(
        "hardlink",
        "\"hello\"",
        &base(),
        &format!(
            "COPY good/ {dir}/\nCOPY evil.ko /stage/evil.ko\n{}",
            sh(&format!(
                "{bb} cp /stage/evil.ko {dir}/evil.ko && {bb} ln -f {dir}/evil.ko {dir}/hello.ko"
            ))
        ),
    );
    drivers += &s.driver(
        "climbing",
        "\"hello\"",
        &base(),
        &format!(
            "{copy}{}",
            sh(&format!("{bb} ln -sf {climb}{dir}/evil.ko {dir}/hello.ko"))
        ),
    );
    drivers += &s.driver(
        "whiteout",
        "",
        &base(),
        &format!(
            "COPY good/ {dir}/\nCOPY evil.ko {dir}/extra/evil.ko\n{}",
            sh(&format!("{bb} rm -rf {dir}/extra"))
        ),
    );
    // `build` reads each image back with the same view and the driver's signing rule, and
    // would refuse the swapped modules: build them without the rule, then ask `verify --deep`
    // with it, as for a lock written before the rule.
    let rule = "signed = true\nsigning-cert = \"keys/signing.crt\"\n";
    s.matrix(&drivers.replace(rule, ""));
    in_dir(s.w.dir.path()).args(["build", "-j", "2"]).run();
    s.matrix(&drivers);
    let out = in_dir(s.w.dir.path())
        .args(["verify", "--deep"])
        .expect_exit(1)
        .run();
    let text = out.stdout.clone();

    let buildah = Buildah::new();
    let at = |driver: &str| format!("{}/{}/{driver}@{}", s.w.addr, s.w.ns, s.locked(driver));
    for driver in ["symlink", "hardlink", "climbing"] {
        let seen = buildah.run(&at(driver), &["cat", &format!("{dir}/hello.ko")]);
        assert!(
            seen == evil,
            "{driver}: the container does not see evil.ko at hello.ko"
        );
        let lines = block(&text, driver).join("\n");
        assert!(lines.starts_with("FAIL"), "{lines}");
        assert!(
            lines.contains(&format!(
                "module `hello` ({dir}/hello.ko -> {dir}/evil.ko) is not signed"
            )),
            "{driver}:\n{lines}"
        );
    }
    let listed = buildah.run(&at("whiteout"), &["ls", "-R", &dir]);
    let listed = String::from_utf8(listed).unwrap();
    assert!(!listed.contains("evil"), "{listed}");
    let lines = block(&text, "whiteout").join("\n");
    assert!(lines.starts_with("ok"), "{lines}");
}

#[test]
fn an_opaque_directory_hides_what_lower_layers_had() {
    let s = Setup::new("image-fs-opaque");
    let hello = s.signed(&ko("hello", ""));
    let evil = ko("sneaky", "");
    let dir = format!("opt/lib/modules/{K}");
    let bb = std::fs::read("/usr/bin/busybox").unwrap();
    let mut lower = oci::tar(&[("bin/", b"")]);
    lower.truncate(lower.len() - 1024);
    let mut b = tar::Builder::new(lower);
    let mut h = tar::Header::new_gnu();
    h.set_size(bb.len() as u64);
    h.set_mode(0o755);
    b.append_data(&mut h, "bin/busybox", bb.as_slice()).unwrap();
    let mut lower = b.into_inner().unwrap();
    lower.truncate(lower.len() - 1024);
    lower.extend(oci::tar(&[
        ("opt/", b""),
        ("opt/lib/", b""),
        ("opt/lib/modules/", b""),
        (&format!("{dir}/"), b""),
        (&format!("{dir}/hello.ko"), &evil),
        (&format!("{dir}/sneaky.ko"), &evil),
    ]));
    let upper = oci::tar(&[
        (&format!("{dir}/"), b""),
        (&format!("{dir}/.wh..wh..opq"), b""),
        (&format!("{dir}/hello.ko"), &hello),
    ]);
    let layers = [
        Layer::new(&lower, Compression::Gzip),
        Layer::new(&upper, Compression::Gzip),
    ];
    let base =
        s.w.pusher
            .image(
                &s.w.repo("base"),
                Some("opaque"),
                &layers,
                &[],
                "amd64",
                Flavor::Docker,
            )
            .unwrap();
    let base_ref = format!("{}/{}@{}", s.w.addr, s.w.repo("base"), base.digest);
    let ctx = s.w.path("opaque");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(
        ctx.join("Containerfile"),
        format!("ARG DTK_IMAGE\nFROM ${{DTK_IMAGE}} AS dtk\n\nFROM {base_ref}\nCOPY --from=dtk /etc/driver-toolkit-release.json /etc/\n"),
    )
    .unwrap();
    s.matrix(&format!(
        "[[driver]]\nname = \"opaque\"\ncontext = \"opaque\"\nimage = \"{}/{}/opaque\"\n\
         signed = true\nsigning-cert = \"keys/signing.crt\"\n",
        s.w.addr, s.w.ns
    ));
    in_dir(s.w.dir.path()).args(["build"]).run();
    let text = in_dir(s.w.dir.path())
        .args(["verify", "--deep"])
        .stdout_contains("hello: signed by")
        .stdout();
    assert!(!text.contains("sneaky"), "{text}");
    let image = format!("{}/{}/opaque@{}", s.w.addr, s.w.ns, s.locked("opaque"));
    let listed = Buildah::new().run(&image, &["ls", &format!("/{dir}")]);
    assert_eq!(
        String::from_utf8(listed)
            .unwrap()
            .split_whitespace()
            .collect::<Vec<_>>(),
        ["hello.ko"]
    );
}

/// The digest `build` said it pushed for `driver` without recording it.
fn refused(text: &str, driver: &str) -> String {
    let line = text
        .lines()
        .find(|l| l.contains(driver) && l.contains("not recorded"))
        .unwrap_or_else(|| panic!("`{driver}` was not refused:\n{text}"));
    let at = line.find("sha256:").unwrap();
    line[at..at + 71].to_string()
}

#[test]
fn dependencies_must_be_in_the_image_or_reachable_in_the_kernels_tree() {
    let s = Setup::new("image-fs-deps");
    let dir = format!("/opt/lib/modules/{K}");
    let host =
        format!("RUN [\"/bin/busybox\", \"ln\", \"-s\", \"/lib/modules/{K}\", \"{dir}/host\"]\n");
    let copy = format!("COPY modules/ {dir}/\n");
    let loopback = || {
        vec![(
            "modules/v4l2loopback.ko",
            s.signed(&ko("v4l2loopback", "videodev")),
        )]
    };
    let mut drivers = String::new();
    drivers += &s.driver("in-tree", "", &loopback(), &format!("{copy}{host}"));
    drivers += &s.driver("no-host", "", &loopback(), &copy);
    drivers += &s.driver(
        "shipped",
        "\"acme\"",
        &[
            ("modules/acme.ko", s.signed(&ko("acme", "acme-core,ext4"))),
            ("modules/acme-core.ko", s.signed(&ko("acme_core", ""))),
        ],
        &copy,
    );
    drivers += &s.driver(
        "nowhere",
        "\"acme\"",
        &[("modules/acme.ko", s.signed(&ko("acme", "acme_core")))],
        &format!("{copy}{host}"),
    );
    s.matrix(&drivers);
    let out = in_dir(s.w.dir.path())
        .args(["build", "-j", "2"])
        .expect_failure()
        .run();
    let all = format!("{}{}", out.stdout, out.stderr);
    // The build's read-back refuses what verify would fail.
    let no_host = refused(&all, "no-host");
    let nowhere = refused(&all, "nowhere");
    assert!(
        all.contains("module `v4l2loopback` depends on `videodev`, a module of kernel"),
        "{all}"
    );
    assert!(
        all.contains(&format!("has no link {dir}/host -> /lib/modules/{K}")),
        "{all}"
    );
    assert!(
        all.contains(
            "module `acme` depends on `acme_core`, which is neither in the image nor in kernel"
        ),
        "{all}"
    );
    for ok in ["in-tree", "shipped"] {
        s.locked(ok);
    }
    // The DTK's tree was read once, and kept for the next runs.
    let trees: Vec<_> = std::fs::read_dir(s.w.path("cache/v4/trees"))
        .unwrap()
        .collect();
    assert_eq!(trees.len(), 1, "{trees:?}");
    // A lock that names the refused images (as one written without this check would):
    // verify fails each, naming the module and its dependency.
    let lock = s.w.lock();
    let template = lock
        .split("[[image]]")
        .find(|b| b.contains("driver = \"in-tree\""))
        .unwrap()
        .to_string();
    let in_tree = s.locked("in-tree");
    let mut added = String::new();
    for (driver, digest) in [("no-host", &no_host), ("nowhere", &nowhere)] {
        let entry = template
            .replace("\"in-tree\"", &format!("\"{driver}\""))
            .replace("/in-tree", &format!("/{driver}"))
            .replace(&in_tree, digest);
        added.push_str(&format!("[[image]]{}\n\n", entry.trim_end()));
    }
    // In the lock's order (by driver): before `shipped`.
    let at = lock.find("[[image]]\ndriver = \"shipped\"").unwrap();
    let lock = format!("{}{added}{}", &lock[..at], &lock[at..]);
    std::fs::write(s.w.path("matrix.lock"), lock).unwrap();
    let out = in_dir(s.w.dir.path())
        .args(["verify", "--deep"])
        .expect_exit(1)
        .run();
    let text = out.stdout.clone();
    for ok in ["in-tree", "shipped"] {
        assert!(block(&text, ok)[0].starts_with("ok"), "{text}");
    }
    let nowhere = block(&text, "nowhere").join("\n");
    assert!(
        nowhere.contains("module `acme` depends on `acme_core`, which is neither"),
        "{nowhere}"
    );
    let no_host = block(&text, "no-host").join("\n");
    assert!(
        no_host.contains("depends on `videodev`, a module of kernel"),
        "{no_host}"
    );
}

/// What reading a kernel's tree costs: `verify --deep` of one image whose module needs an
/// in-tree module, the DTK's base layer `DTK_TREE_MIB` MiB (default 256), with a cold cache
/// (every DTK layer read once) and a warm one (the tree from `trees/`). Prints the times.
/// `cargo test --test it -- --ignored image_fs::what_reading_the_tree_costs --nocapture`
#[test]
#[ignore]
fn what_reading_the_tree_costs() {
    let mib: usize = std::env::var("DTK_TREE_MIB").map_or(256, |v| v.parse().unwrap());
    let w = World::new("image-fs-cost");
    let mut spec = DtkSpec::new(K);
    spec.base = mib << 20;
    let mut layers = spec.layers();
    let dep = "kernel/drivers/media/v4l2-core/videodev.ko.xz:\n";
    let tree = oci::tar(&[(&format!("usr/lib/modules/{K}/modules.dep"), dep.as_bytes())]);
    layers.insert(1, Layer::new(&tree, Compression::Gzip));
    let dtk = w
        .pusher
        .image(&w.repo("dtk"), None, &layers, &[], "amd64", Flavor::Docker)
        .unwrap();
    let dtk_ref = format!("{}/{}@{}", w.addr, w.repo("dtk"), dtk.digest);
    w.payload(
        &PayloadSpec::new("4.14.1", Some(dtk_ref)),
        "x86_64",
        "amd64",
        Flavor::Docker,
    );
    let (key, cert) = signing::ensure(&w.path("keys")).unwrap();
    let s = Setup { w, key, cert };
    let dir = format!("/opt/lib/modules/{K}");
    let host =
        format!("RUN [\"/bin/busybox\", \"ln\", \"-s\", \"/lib/modules/{K}\", \"{dir}/host\"]\n");
    let files = [(
        "modules/v4l2loopback.ko",
        s.signed(&ko("v4l2loopback", "videodev")),
    )];
    let drivers = s.driver(
        "in-tree",
        "",
        &files,
        &format!("COPY modules/ {dir}/\n{host}"),
    );
    s.matrix(&drivers);
    in_dir(s.w.dir.path()).args(["build"]).run();
    let time = |label: &str| {
        let started = std::time::Instant::now();
        in_dir(s.w.dir.path()).args(["verify", "--deep"]).run();
        eprintln!(
            "{label}: verify --deep took {:?} (DTK base layer {mib} MiB)",
            started.elapsed()
        );
    };
    let _ = std::fs::remove_dir_all(s.w.path("cache"));
    time("cold cache");
    time("warm cache");
    let _ = std::fs::remove_dir_all(s.w.path("cache/v4/trees"));
    time("layers cached, tree not");
}
