//! A disconnected site: every quay.io read (payloads, the DTK) goes to a mirror, for
//! `resolve`, `build` (buildah through a generated registries.conf), `verify --deep` and
//! `collect`; the lock, the plan and the exports name quay.io only; the inputs hashes are the
//! ones computed without a mirror.

use crate::support::{World, in_dir, module};
use driver_matrix_sandbox::{DtkSpec, Flavor, PayloadSpec, Registry};

const K: &str = "5.14.0-284.52.1.el9_2.x86_64";

#[test]
fn resolve_build_verify_and_collect_through_a_mirror_of_quay_io() {
    // A registry of its own, so that its log holds only this test's requests.
    let reg = Registry::start(Default::default()).unwrap();
    let w = World::on(reg.addr(), "mirror-e2e", None);
    let mut dtk = DtkSpec::new(K);
    dtk.base = 64 << 10;
    let pushed = dtk
        .push(
            &w.pusher,
            &w.repo("openshift-release-dev/ocp-v4.0-art-dev"),
            "amd64",
            Flavor::Docker,
        )
        .unwrap();
    let quay_dtk = format!(
        "quay.io/openshift-release-dev/ocp-v4.0-art-dev@{}",
        pushed.digest
    );
    for v in ["4.14.12", "4.14.13"] {
        PayloadSpec::new(v, Some(quay_dtk.clone()))
            .push(
                &w.pusher,
                &w.repo("openshift-release-dev/ocp-release"),
                Some(&format!("{v}-x86_64")),
                "amd64",
                Flavor::Docker,
            )
            .unwrap();
    }
    let dir = w.dir.path();
    let ctx = dir.join("hello");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(ctx.join("hello.ko"), module("hello", K)).unwrap();
    std::fs::write(
        ctx.join("Containerfile"),
        "ARG DTK_IMAGE\nFROM ${DTK_IMAGE} AS dtk\n\nFROM scratch\nARG KERNEL_VERSION\n\
         COPY --from=dtk /etc/driver-toolkit-release.json /etc/\n\
         COPY hello.ko /opt/lib/modules/${KERNEL_VERSION}/hello.ko\n",
    )
    .unwrap();
    let driver = format!(
        "[[driver]]\nname = \"hello-kmod\"\ncontext = \"hello\"\nimage = \"{}/{}/hello-kmod\"\nmodules = [\"hello\"]\n",
        w.addr, w.ns
    );
    // The default payload repo (quay.io), and one mirror line: what a real user writes.
    let mirrored = format!(
        "[openshift]\nreleases = [\"4.14.12\", \"4.14.13\"]\n\n[registries.\"quay.io\"]\nmirror = \"{}/{}\"\n\n[registries.\"{}\"]\ninsecure = true\n\n{driver}",
        w.addr, w.ns, w.addr
    );
    std::fs::write(dir.join("matrix.toml"), &mirrored).unwrap();

    in_dir(dir).args(["resolve"]).run();
    let plan_json = in_dir(dir).args(["plan", "--format", "json"]).stdout();
    in_dir(dir).args(["build"]).run();
    let out = in_dir(dir).args(["verify", "--deep"]).run();
    assert!(
        out.stdout.contains(&format!("hello: vermagic {K}")),
        "{}",
        out.stdout
    );
    let lock = std::fs::read_to_string(dir.join("matrix.lock")).unwrap();
    // collect through the mirror rebuilds the same lock.
    std::fs::write(
        dir.join("matrix.lock"),
        lock.lines()
            .take_while(|l| !l.starts_with("[[image]]"))
            .collect::<Vec<_>>()
            .join("\n")
            + "\n",
    )
    .unwrap();
    in_dir(dir).args(["collect"]).run();
    assert_eq!(
        std::fs::read_to_string(dir.join("matrix.lock")).unwrap(),
        lock
    );

    // The lock, the plan and the exports name quay.io for the payload and the DTK, never the
    // mirror's namespace.
    let mirror_ns = format!("{}/{}/openshift-release-dev", w.addr, w.ns);
    let kmm = in_dir(dir).args(["export", "kmm"]).stdout();
    let preflight = in_dir(dir).args(["export", "preflight"]).stdout();
    for (what, text) in [
        ("lock", &lock),
        ("plan", &plan_json),
        ("kmm", &kmm),
        ("preflight", &preflight),
    ] {
        assert!(
            !text.contains(&mirror_ns),
            "{what} names the mirror:\n{text}"
        );
    }
    assert!(lock.contains(&format!("dtk = \"{quay_dtk}\"")), "{lock}");
    assert!(
        lock.contains("payload = \"quay.io/openshift-release-dev/ocp-release@sha256:"),
        "{lock}"
    );

    // buildah pulled the DTK from the mirror: its manifest and blobs were served here.
    let log = reg.log();
    let dtk_path = format!(
        "/v2/{}/openshift-release-dev/ocp-v4.0-art-dev/manifests/{}",
        w.ns, pushed.digest
    );
    let dtk_reads = log.lines().filter(|l| l.contains(&dtk_path)).count();
    assert!(
        dtk_reads >= 2,
        "resolve and buildah each read the DTK manifest from the mirror; log:\n{log}"
    );
    // buildah names itself in the user agent (the tool says `driver-matrix/<version>`).
    assert!(
        log.lines()
            .any(|l| l.contains(&dtk_path) && l.contains("Buildah/")),
        "no DTK read by buildah in the mirror's log:\n{log}"
    );

    // Without the mirror (same lock, offline): the same inputs hashes.
    let direct = mirrored.replace(
        &format!(
            "[registries.\"quay.io\"]\nmirror = \"{}/{}\"\n\n",
            w.addr, w.ns
        ),
        "",
    );
    assert!(!direct.contains("[registries.\"quay.io\"]"));
    std::fs::write(dir.join("matrix.toml"), direct).unwrap();
    let offline_plan = in_dir(dir)
        .args(["--offline", "plan", "--format", "json"])
        .stdout();
    let inputs = |json: &str| -> Vec<String> {
        let v: serde_json::Value = serde_json::from_str(json).unwrap();
        v["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|j| j["inputs"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(inputs(&plan_json), inputs(&offline_plan));
}
