//! After a build: `verify` (and `--deep`) against a real registry, and a distributed run where
//! shards build in separate processes that share nothing but the registry, then `collect`
//! rebuilds the lock. Real buildah, real docker-registry; modules are ELF objects with a real
//! `.modinfo`, made by the test.

use std::path::Path;

use crate::support::{World, in_dir, module};

const K1: &str = "5.14.0-284.52.1.el9_2.x86_64";
const K2: &str = "5.14.0-427.18.1.el9_4.x86_64";

/// Publishes 4.14.1 and 4.14.2 on K1 and 4.16.1 on K2, and writes a matrix with two drivers:
/// `good-kmod` copies the module built for each kernel, `bad-kmod` always the K1 one.
fn world(name: &str) -> World {
    world_with(name, K1)
}

/// [`world`], `bad-kmod` copying the module of `bad_copies` (`${KERNEL_VERSION}` makes it good).
fn world_with(name: &str, bad_copies: &str) -> World {
    let w = World::new(name);
    w.publish(&[(&["4.14.1", "4.14.2"], K1), (&["4.16.1"], K2)]);
    write_project(&w, w.dir.path(), bad_copies);
    w
}

fn write_project(w: &World, dir: &Path, bad_copies: &str) {
    for (driver, copy_from) in [("good-kmod", "${KERNEL_VERSION}"), ("bad-kmod", bad_copies)] {
        let ctx = dir.join(driver);
        for k in [K1, K2] {
            std::fs::create_dir_all(ctx.join("modules").join(k)).unwrap();
            std::fs::write(
                ctx.join("modules").join(k).join("hello.ko"),
                module("hello", k),
            )
            .unwrap();
        }
        std::fs::write(
            ctx.join("Containerfile"),
            format!(
                "ARG DTK_IMAGE\nFROM ${{DTK_IMAGE}} AS dtk\n\nFROM scratch\nARG KERNEL_VERSION\n\
                 COPY --from=dtk /etc/driver-toolkit-release.json /etc/\n\
                 COPY modules/{copy_from}/hello.ko /opt/lib/modules/${{KERNEL_VERSION}}/hello.ko\n"
            ),
        )
        .unwrap();
    }
    let text = format!(
        "[openshift]\npayload-repo = \"{addr}/{release}\"\nreleases = [\"4.14.1\", \"4.14.2\", \"4.16.1\"]\n\n\
         [registries.\"{addr}\"]\ninsecure = true\n\n\
         [[driver]]\nname = \"good-kmod\"\ncontext = \"good-kmod\"\nimage = \"{addr}/{ns}/good-kmod\"\nmodules = [\"hello\"]\n\n\
         [[driver]]\nname = \"bad-kmod\"\ncontext = \"bad-kmod\"\nimage = \"{addr}/{ns}/bad-kmod\"\nmodules = [\"hello\"]\n",
        addr = w.addr,
        release = w.repo("release"),
        ns = w.ns,
    );
    std::fs::write(dir.join("matrix.toml"), text).unwrap();
}

#[test]
fn verify_deep_catches_a_module_for_another_kernel_and_a_deleted_image() {
    let w = world("verify");
    let dir = w.dir.path();
    // `build` alone resolves the releases and writes them into the lock with the images.
    // `build` reads every pushed image back: bad-kmod's K2 image carries the K1 module, so it
    // fails and stays out of the lock; everything else is recorded.
    let text = in_dir(dir)
        .args(["build", "-j", "2"])
        .expect_exit(1)
        .stdout();
    assert!(
        text.contains(&format!("do not confirm kernel `{K2}`")),
        "{text}"
    );
    let mut lock = driver_matrix::lock::read(&dir.join("matrix.lock")).unwrap();
    assert_eq!(lock.images.len(), 3, "{:?}", lock.images);
    assert!(
        !lock
            .images
            .iter()
            .any(|i| i.driver == "bad-kmod" && i.kernel.as_str() == K2)
    );
    // Put it into the lock by hand, as a lock edited or written by something else would.
    let pushed = text
        .split("pushed as ")
        .nth(1)
        .and_then(|t| t.split(',').next())
        .expect("the failure names the pushed digest");
    let mut bad = lock
        .images
        .iter()
        .find(|i| i.driver == "good-kmod" && i.kernel.as_str() == K2)
        .unwrap()
        .clone();
    bad.driver = "bad-kmod".into();
    bad.image = bad
        .image
        .to_string()
        .replace("good-kmod", "bad-kmod")
        .parse()
        .unwrap();
    bad.digest = pushed.parse().unwrap();
    lock.upsert_image(bad);
    driver_matrix::lock::write_if_changed(&dir.join("matrix.lock"), &lock).unwrap();
    let versions: Vec<String> = lock
        .releases
        .iter()
        .map(|r| r.version.to_string())
        .collect();
    assert_eq!(versions, ["4.14.1", "4.14.2", "4.16.1"]);
    // Both drivers' images exist: plain verify passes.
    in_dir(dir)
        .args(["verify"])
        .stdout_contains("4 of 4 images verified")
        .run();

    // --deep reads the modules: bad-kmod's K2 image carries the K1 module.
    let text = in_dir(dir)
        .args(["verify", "--deep"])
        .expect_exit(1)
        .stdout();
    assert!(
        text.contains(&format!("ok   good-kmod {K2} x86_64")),
        "{text}"
    );
    assert!(
        text.contains(&format!("FAIL bad-kmod {K2} x86_64")),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "module `hello` (/opt/lib/modules/{K2}/hello.ko) was built for `{K1} SMP"
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!("hello: vermagic {K2} SMP preempt")),
        "{text}"
    );
    assert!(
        text.contains("3 of 4 images and their modules verified"),
        "{text}"
    );

    // Delete good-kmod's K1 manifest from the registry: verify says so and fails.
    let lock = driver_matrix::lock::read(&dir.join("matrix.lock")).unwrap();
    let image = lock
        .images
        .iter()
        .find(|i| i.driver == "good-kmod" && i.kernel.as_str() == K1)
        .unwrap();
    let path = format!(
        "/v2/{}/manifests/{}",
        image.image.repository(),
        image.digest
    );
    let resp = driver_matrix_sandbox::http::request(&w.addr, "DELETE", &path, &[], b"").unwrap();
    let deleted = resp.status == 202;
    assert!(deleted, "could not delete {path}: {}", resp.status);
    let out = in_dir(dir).args(["verify"]).expect_exit(1).run();
    assert!(
        out.stdout
            .contains("the registry no longer has this digest"),
        "{}",
        out.stdout
    );

    // A registry that cannot be reached is not a finding: exit 4 (the contract), not 1.
    let text = std::fs::read_to_string(dir.join("matrix.lock")).unwrap();
    std::fs::write(
        dir.join("matrix.lock"),
        text.replace(&w.addr, "127.0.0.1:9"),
    )
    .unwrap();
    in_dir(dir).args(["verify"]).expect_exit(4).run();
}

#[test]
fn shards_on_separate_machines_then_collect_equal_a_single_build() {
    let w = world_with("shards", "${KERNEL_VERSION}");
    // One machine: resolve and build everything.
    let single = w.dir.path();
    in_dir(single).args(["resolve"]).run();
    in_dir(single).args(["build", "-j", "2"]).run();
    let expected = std::fs::read_to_string(single.join("matrix.lock")).unwrap();
    assert_eq!(
        driver_matrix::lock::read(&single.join("matrix.lock"))
            .unwrap()
            .images
            .len(),
        4
    );
    // Again, online: each job is checked in the registry (one HEAD), found fresh, not built.
    let out = in_dir(single).args(["build", "-j", "2"]).run();
    let text = format!("{}{}", out.stdout, out.stderr);
    assert!(text.contains("0 built, 4 fresh"), "{text}");
    assert_eq!(
        std::fs::read_to_string(single.join("matrix.lock")).unwrap(),
        expected
    );

    // Three "machines": each its own checkout, no lock, its own cache; only the registry is
    // shared. Each builds its shard (all jobs are new to it) and pushes.
    let mut built = 0;
    for i in 0..3 {
        let m = tempfile::tempdir().unwrap();
        write_project(&w, m.path(), "${KERNEL_VERSION}");
        let out = in_dir(m.path())
            .args(["build", "--shard", &format!("{i}/3"), "-j", "1"])
            .run();
        let lock = driver_matrix::lock::read(&m.path().join("matrix.lock")).unwrap();
        built += lock.images.len();
        let _ = out;
    }
    assert_eq!(built, 4, "the shards together built every job exactly once");

    // A fourth checkout rebuilds the lock from the registry alone.
    let c = tempfile::tempdir().unwrap();
    write_project(&w, c.path(), "${KERNEL_VERSION}");
    in_dir(c.path()).args(["resolve"]).run();
    in_dir(c.path())
        .args(["collect"])
        .stderr_contains("collected 4 of 4 images")
        .run();
    let collected = std::fs::read_to_string(c.path().join("matrix.lock")).unwrap();
    assert_eq!(collected, expected);
}

#[test]
fn collect_reports_jobs_the_registry_does_not_have() {
    let w = world_with("collect-missing", "${KERNEL_VERSION}");
    let dir = w.dir.path();
    in_dir(dir).args(["resolve"]).run();
    in_dir(dir).args(["build", "--driver", "good-kmod"]).run();
    let err = in_dir(dir)
        .args(["collect"])
        .expect_exit(1)
        .stderr_contains("collected 2 of 4 images")
        .stderr();
    assert!(
        err.contains(&format!(
            "not collected: bad-kmod/{K1}/x86_64: the tag does not exist"
        )),
        "{err}"
    );
    let lock = driver_matrix::lock::read(&dir.join("matrix.lock")).unwrap();
    assert!(lock.images.iter().all(|i| i.driver == "good-kmod"));
    // An image under the right tag but built from other inputs is not accepted.
    std::fs::write(dir.join("good-kmod/extra.txt"), "changed").unwrap();
    in_dir(dir)
        .args(["collect"])
        .expect_exit(1)
        .stderr_contains("built from other inputs")
        .run();
}
