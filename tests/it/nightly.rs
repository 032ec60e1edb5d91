//! Successive nights on one lock and one registry, each changing the world or the matrix the
//! way a vendor's nightly CI sees it change. After every night the incremental lock must be
//! byte-identical to `collect` run from scratch in a fresh directory over the same registry,
//! `verify` and `build --locked` must pass, and a second `build` must build nothing.
//! Real buildah, real docker-registry; modules are ELF objects with a real `.modinfo`.

use std::collections::BTreeMap;
use std::path::Path;

use crate::support::{World, in_dir, module};
use driver_matrix_sandbox::{DtkSpec, Flavor, GraphServer, PayloadSpec, graph};

const K1: &str = "5.14.0-284.52.1.el9_2.x86_64";
const K2: &str = "5.14.0-427.18.1.el9_4.x86_64";
const K3: &str = "5.14.0-284.60.1.el9_2.x86_64";

/// The world of one arch: DTKs by name, payloads by version, the channel's versions.
struct Arch {
    name: &'static str,
    goarch: &'static str,
}

const X86: Arch = Arch {
    name: "x86_64",
    goarch: "amd64",
};
const ARM: Arch = Arch {
    name: "aarch64",
    goarch: "arm64",
};

struct Night {
    w: World,
    graph: GraphServer,
    /// DTK name → the kernel it carries (per arch the kernel's arch suffix is swapped).
    dtks: BTreeMap<&'static str, (&'static str, u32)>,
    /// Published (version, dtk name), on every arch.
    published: Vec<(&'static str, &'static str)>,
    /// Versions of channel `stable-4.15`, oldest first.
    channel: Vec<&'static str>,
    exact: Vec<&'static str>,
    arches: Vec<&'static str>,
    excludes: String,
    /// Version → the DTK of its RHEL 10 stream (a dual-stream release).
    dual: BTreeMap<&'static str, &'static str>,
    /// `[openshift] streams`, verbatim, or empty.
    streams: String,
    /// `[[toolkit]]` entries, verbatim.
    toolkits: String,
    source_rev: u32,
}

fn kernel_for(kernel: &str, arch: &Arch) -> String {
    kernel.replace("x86_64", arch.name)
}

impl Night {
    fn new() -> Night {
        Self::named("nightly")
    }

    fn named(name: &str) -> Night {
        let w = World::new(name);
        Night {
            w,
            graph: GraphServer::start().unwrap(),
            dtks: BTreeMap::new(),
            published: Vec::new(),
            channel: Vec::new(),
            exact: Vec::new(),
            arches: vec!["x86_64"],
            excludes: String::new(),
            dual: BTreeMap::new(),
            streams: String::new(),
            toolkits: String::new(),
            source_rev: 1,
        }
    }

    /// A DTK named `name` for `kernel`; `build` makes a rebuild of the same kernel (another
    /// digest).
    fn dtk(&mut self, name: &'static str, kernel: &'static str, build: u32) {
        self.dtks.insert(name, (kernel, build));
    }

    fn dtk_ref(&self, name: &str, arch: &Arch) -> String {
        let (kernel, build) = self.dtks[name];
        let mut spec = DtkSpec::new(&kernel_for(kernel, arch));
        spec.base = 64 << 10;
        spec.json = Some(format!(
            r#"{{"KERNEL_VERSION": "{}", "RHEL_VERSION": "9.2", "BUILD": "{build}"}}"#,
            kernel_for(kernel, arch)
        ));
        let (r, _) = self.w.dtk(&spec, arch.goarch, Flavor::Docker);
        r
    }

    /// Publishes `version` on DTK `dtk` for every arch (pushing is idempotent).
    fn publish(&mut self, version: &'static str, dtk: &'static str) {
        self.published.push((version, dtk));
        for arch in [&X86, &ARM] {
            self.push_payload(version, dtk, arch);
        }
    }

    fn push_payload(&self, version: &str, dtk: &str, arch: &Arch) -> String {
        let mut spec = PayloadSpec::new(version, Some(self.dtk_ref(dtk, arch)));
        spec.dtk10 = self.dual.get(version).map(|d| self.dtk_ref(d, arch));
        spec.filler = 16 << 10;
        spec.tags = 20;
        let p = self
            .w
            .payload(&spec, arch.name, arch.goarch, Flavor::Docker);
        format!("{}/{}@{}", self.w.addr, self.w.repo("release"), p.digest)
    }

    /// The channel's graph as published now, for both arches.
    fn serve_graph(&self) {
        for arch in [&X86, &ARM] {
            let nodes: Vec<(String, String)> = self
                .channel
                .iter()
                .map(|v| {
                    let dtk = self
                        .published
                        .iter()
                        .rev()
                        .find(|(p, _)| p == v)
                        .expect("channel versions are published")
                        .1;
                    (v.to_string(), self.push_payload(v, dtk, arch))
                })
                .collect();
            let refs: Vec<(&str, &str)> = nodes
                .iter()
                .map(|(a, b)| (a.as_str(), b.as_str()))
                .collect();
            self.graph
                .set("stable-4.15", arch.goarch, graph::graph_json(&refs));
        }
    }

    /// Writes the project (matrix and driver context) into `dir`.
    fn write_project(&self, dir: &Path) {
        let ctx = dir.join("good-kmod");
        std::fs::create_dir_all(&ctx).unwrap();
        let mut kernels: Vec<String> = Vec::new();
        for (kernel, _) in self.dtks.values() {
            for arch in [&X86, &ARM] {
                kernels.push(kernel_for(kernel, arch));
            }
        }
        for k in &kernels {
            let d = ctx.join("modules").join(k);
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join("hello.ko"), module("hello", k)).unwrap();
        }
        std::fs::write(
            ctx.join("VERSION"),
            format!("source revision {}\n", self.source_rev),
        )
        .unwrap();
        std::fs::write(
            ctx.join("Containerfile"),
            "ARG DTK_IMAGE\nFROM ${DTK_IMAGE} AS dtk\n\nFROM scratch\nARG KERNEL_VERSION\n\
             COPY --from=dtk /etc/driver-toolkit-release.json /etc/\nCOPY VERSION /\n\
             COPY modules/${KERNEL_VERSION}/hello.ko /opt/lib/modules/${KERNEL_VERSION}/hello.ko\n",
        )
        .unwrap();
        let list = |v: &[&str]| {
            v.iter()
                .map(|s| format!("\"{s}\""))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let text = format!(
            "[openshift]\npayload-repo = \"{addr}/{release}\"\nreleases = [{exact}]\n\
             {channels}graph-url = \"{graph}\"\n\
             arch = [{arches}]\n{streams}\n\
             [registries.\"{addr}\"]\ninsecure = true\n\n\
             [[driver]]\nname = \"good-kmod\"\ncontext = \"good-kmod\"\nimage = \"{addr}/{ns}/good-kmod\"\n\
             tag = \"${{KERNEL_FULL_VERSION}}\"\nmodules = [\"hello\"]\n{excludes}\n{toolkits}",
            addr = self.w.addr,
            release = self.w.repo("release"),
            exact = list(&self.exact),
            graph = self.graph.url(),
            // A channel the graph lists no release of is an unknown channel (exit 2): a night
            // without channel releases asks for none.
            channels = if self.channel.is_empty() {
                ""
            } else {
                "channels = [{ name = \"stable-4.15\", latest = 2 }]\n"
            },
            arches = list(&self.arches),
            ns = self.w.ns,
            excludes = self.excludes,
            streams = self.streams,
            toolkits = self.toolkits,
        );
        std::fs::write(dir.join("matrix.toml"), text).unwrap();
    }

    fn dir(&self) -> &Path {
        self.w.dir.path()
    }

    fn lock(&self) -> String {
        std::fs::read_to_string(self.dir().join("matrix.lock")).unwrap_or_default()
    }

    /// `collect` in a fresh directory holding only the matrix and the context, ending with
    /// one of `codes`.
    fn collect_from_scratch(&self, codes: &'static [i32]) -> String {
        let fresh = tempfile::tempdir().unwrap();
        self.write_project(fresh.path());
        in_dir(fresh.path())
            .args(["collect"])
            .expect_exit_in(codes)
            .run();
        std::fs::read_to_string(fresh.path().join("matrix.lock")).unwrap_or_default()
    }

    /// Runs one night: the project as it is now, then `resolve` and `build`, checking after
    /// each that the lock equals a from-scratch `collect`.
    fn run(&self, what: &str) {
        self.write_project(self.dir());
        self.serve_graph();
        let dir = self.dir();
        // Every night changes something: `--locked` says so and writes nothing.
        let unchanged = self.lock();
        for locked in [&["build", "--locked"][..], &["resolve", "--locked"]] {
            in_dir(dir).args(locked).expect_exit(3).run();
            assert_eq!(self.lock(), unchanged, "night `{what}`: {locked:?} wrote");
        }
        in_dir(dir).args(["resolve"]).run();
        // Before the build, images are missing: `collect` says so (exit 1).
        let scratch = self.collect_from_scratch(&[0, 1]);
        assert_eq!(
            self.lock(),
            scratch,
            "night `{what}`: after `resolve` the lock differs from `collect` from scratch"
        );

        let built = in_dir(dir).args(["build", "-j", "2"]).run();
        let scratch = self.collect_from_scratch(&[0]);
        assert_eq!(
            self.lock(),
            scratch,
            "night `{what}`: after `build` the lock differs from `collect` from scratch\n{}",
            built.stdout
        );
        in_dir(dir).args(["verify", "--deep"]).run();
        for locked in [&["build", "--locked"][..], &["resolve", "--locked"]] {
            in_dir(dir).args(locked).run();
        }
        let before = self.lock();
        let again = in_dir(dir).args(["build"]).run();
        assert!(
            again.stdout.contains("0 built"),
            "night `{what}`: a second build built something:\n{}",
            again.stdout
        );
        assert_eq!(
            self.lock(),
            before,
            "night `{what}`: a no-op build changed the lock"
        );
    }

    fn images(&self) -> Vec<(String, Vec<String>)> {
        let lock = driver_matrix::lock::read(&self.dir().join("matrix.lock")).unwrap();
        lock.images
            .iter()
            .map(|i| {
                (
                    format!("{} {}", i.kernel, i.dtk.digest().unwrap().hex()),
                    i.releases.iter().map(|r| r.to_string()).collect(),
                )
            })
            .collect()
    }

    fn releases_of(&self, kernel: &str) -> Vec<String> {
        let lock = driver_matrix::lock::read(&self.dir().join("matrix.lock")).unwrap();
        lock.images
            .iter()
            .filter(|i| i.kernel.as_str() == kernel)
            .flat_map(|i| i.releases.iter().map(|r| r.to_string()))
            .collect()
    }
}

/// A release of the RHEL 10 dual stream ships two DTKs, so two kernels: each gets its job and
/// its image, recorded with the stream it serves, through `build` and `collect` from scratch
/// alike; `[openshift] streams` restricts what is built.
#[test]
fn a_dual_stream_release_builds_an_image_per_node_os() {
    const K10: &str = "6.12.0-55.9.1.el10_0.x86_64";
    let mut n = Night::named("dualstream");
    n.dtk("rhel9", K1, 1);
    n.dtk("rhel10", K10, 1);
    n.dual.insert("4.16.1", "rhel10");
    n.publish("4.16.1", "rhel9");
    n.publish("4.16.2", "rhel9");
    n.exact = vec!["4.16.1", "4.16.2"];
    n.run("a dual-stream release");
    let lock = n.lock();
    assert_eq!(lock.matches("stream = \"rhel-10\"").count(), 1, "{lock}");
    assert_eq!(n.releases_of(K1), ["4.16.1", "4.16.2"]);
    assert_eq!(n.releases_of(K10), ["4.16.1"]);

    n.streams = "streams = [\"default\"]".into();
    n.run("only the default stream");
    assert_eq!(n.releases_of(K1), ["4.16.1", "4.16.2"]);
    assert!(n.releases_of(K10).is_empty(), "{}", n.lock());
    assert!(
        n.lock().contains("stream = \"rhel-10\""),
        "the release still has the stream"
    );

    // A new source revision too: `resolve` does not look for an image of a job that comes back
    // (a from-scratch `collect` would find the old one), so give the job new inputs.
    n.streams = "streams = [\"rhel-10\"]".into();
    n.source_rev += 1;
    n.run("only the RHEL 10 stream");
    assert!(n.releases_of(K1).is_empty(), "{}", n.lock());
    assert_eq!(n.releases_of(K10), ["4.16.1"]);
}

/// The hard way: a kernel no release ships, named with its builder image in `[[toolkit]]`, is
/// planned, built, locked, collected and exported like a DTK's kernel (serving no release).
#[test]
fn a_toolkit_kernel_is_built_like_a_dtk_kernel() {
    let mut n = Night::named("hardway");
    n.dtk("builder", K3, 1);
    let builder = n.dtk_ref("builder", &X86);
    n.toolkits = format!("[[toolkit]]\nkernel = \"{K3}\"\nimage = \"{builder}\"\nrhel = \"9.2\"\n");
    n.run("a toolkit kernel, no release");
    let lock = n.lock();
    assert!(!lock.contains("[[release]]"), "{lock}");
    assert_eq!(n.images().len(), 1, "{lock}");
    assert!(
        lock.contains(&format!(
            "kernel = \"{K3}\"\narch = \"x86_64\"\ndtk = \"{builder}\""
        )),
        "{lock}"
    );
    assert!(n.releases_of(K3).is_empty(), "{lock}");
    let kmm = in_dir(n.dir()).args(["export", "kmm"]).run();
    assert!(
        kmm.stdout.contains(&format!("literal: {K3}"))
            || kmm.stdout.contains(&format!("literal: \"{K3}\"")),
        "{}",
        kmm.stdout
    );

    // A release beside it: its kernel's job is added, the toolkit's image stays.
    n.dtk("a1", K1, 1);
    n.publish("4.14.7", "a1");
    n.exact = vec!["4.14.7"];
    n.run("a release beside the toolkit");
    assert_eq!(n.releases_of(K1), ["4.14.7"]);
    assert_eq!(n.images().len(), 2, "{}", n.lock());
}

#[test]
fn successive_nights_keep_the_lock_equal_to_a_run_from_scratch() {
    let mut n = Night::new();
    n.dtk("a1", K1, 1);
    n.dtk("b1", K2, 1);
    n.publish("4.14.7", "a1");
    n.publish("4.14.8", "a1");
    n.publish("4.15.1", "b1");
    n.publish("4.15.2", "b1");
    n.exact = vec!["4.14.7", "4.14.8"];
    n.channel = vec!["4.15.1", "4.15.2"];
    n.run("first build");
    assert_eq!(n.images().len(), 2);

    // 1. A new z-stream on the same DTK: its kernel's image serves it, nothing is built.
    n.publish("4.14.9", "a1");
    n.exact.push("4.14.9");
    n.run("new z-stream sharing a kernel");
    assert_eq!(n.releases_of(K1), ["4.14.7", "4.14.8", "4.14.9"]);

    // 2. A z-stream whose DTK was rebuilt with the same kernel: the lock keeps the DTK it
    // built on (a release still offers it), and `collect` recognises that image by its label.
    let before = n.images();
    n.dtk("a2", K1, 2);
    n.publish("4.14.10", "a2");
    n.exact.push("4.14.10");
    n.run("DTK rebuilt with the same kernel");
    let after = n.images();
    assert_eq!(before[0].0, after[0].0, "the K1 image keeps its DTK");
    assert_eq!(n.releases_of(K1).len(), 4);

    // 3. A new kernel: a new job.
    n.dtk("a3", K3, 1);
    n.publish("4.14.11", "a3");
    n.exact.push("4.14.11");
    n.run("new kernel");
    assert_eq!(n.releases_of(K3), ["4.14.11"]);

    // 4. The channel's window moves: 4.15.1 drops out of the lock.
    n.publish("4.15.3", "b1");
    n.channel.push("4.15.3");
    n.run("channel window moves");
    assert_eq!(n.releases_of(K2), ["4.15.2", "4.15.3"]);
    assert!(!n.lock().contains("\"4.15.1\""), "{}", n.lock());

    // 5. The driver's source changes: every image is rebuilt.
    let digests = n.lock();
    n.source_rev = 2;
    n.run("driver source change");
    assert_ne!(n.lock(), digests);

    // 6. An image is deleted from the registry: the next night builds it again.
    let lock = driver_matrix::lock::read(&n.dir().join("matrix.lock")).unwrap();
    let victim = &lock.images[0];
    let repo = victim
        .image
        .to_string()
        .split_once('/')
        .unwrap()
        .1
        .split_once(':')
        .unwrap()
        .0
        .to_string();
    let gone = driver_matrix_sandbox::http::request(
        &n.w.addr,
        "DELETE",
        &format!("/v2/{repo}/manifests/{}", victim.digest),
        &[],
        b"",
    )
    .unwrap();
    assert_eq!(gone.status, 202, "the registry deletes the manifest");
    n.run("image deleted from the registry");

    // 7. An `[[exclude]]` drops a release from every image.
    n.excludes = "\n[[exclude]]\nopenshift = \"4.14.7\"\n".into();
    n.run("exclude added");
    assert_eq!(n.releases_of(K1), ["4.14.8", "4.14.9", "4.14.10"]);

    // 8. A second arch: every release again for aarch64.
    n.arches = vec!["x86_64", "aarch64"];
    n.run("second arch");
    assert_eq!(n.releases_of(&K1.replace("x86_64", "aarch64")).len(), 3);
    assert_eq!(n.images().len(), 6);
}
