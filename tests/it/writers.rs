//! One writer at a time: commands that write the lock hold the writer's lock for their whole
//! read-modify-write, so concurrent runs lose nothing; `--no-wait` fails at once instead.
//! Real buildah, real docker-registry.

use std::path::Path;

use crate::support::{World, in_dir, says, scratch_module_context};
use driver_matrix::pipeline::writer::{Wait, Writer};
use driver_matrix_sandbox::{DtkSpec, Flavor, PayloadSpec};

const K1: &str = "5.14.0-284.52.1.el9_2.x86_64";
const K2: &str = "5.14.0-427.18.1.el9_4.x86_64";

/// 4.14.1 on K1 and 4.16.1 on K2; drivers `a` and `b`, each with a module per kernel.
fn world(name: &str) -> World {
    let w = World::new(name);
    for (version, kernel) in [("4.14.1", K1), ("4.16.1", K2)] {
        let mut dtk = DtkSpec::new(kernel);
        dtk.base = 64 << 10;
        let (dtk_ref, _) = w.dtk(&dtk, "amd64", Flavor::Docker);
        let mut spec = PayloadSpec::new(version, Some(dtk_ref));
        spec.filler = 16 << 10;
        w.payload(&spec, "x86_64", "amd64", Flavor::Docker);
    }
    let dir = w.dir.path();
    let mut matrix = format!(
        "[openshift]\npayload-repo = \"{addr}/{release}\"\nreleases = [\"4.14.1\", \"4.16.1\"]\n\n\
         [registries.\"{addr}\"]\ninsecure = true\n",
        addr = w.addr,
        release = w.repo("release"),
    );
    for driver in ["a", "b"] {
        scratch_module_context(&dir.join(driver), &[K1, K2]);
        matrix.push_str(&format!(
            "\n[[driver]]\nname = \"{driver}\"\ncontext = \"{driver}\"\nimage = \"{}/{}/{driver}\"\n",
            w.addr, w.ns
        ));
    }
    std::fs::write(dir.join("matrix.toml"), matrix).unwrap();
    w
}

fn images(dir: &Path) -> Vec<String> {
    driver_matrix::lock::read(&dir.join("matrix.lock"))
        .unwrap()
        .images
        .iter()
        .map(|i| format!("{} {}", i.driver, i.kernel))
        .collect()
}

#[test]
fn concurrent_writers_lose_nothing() {
    let w = world("writers");
    let dir = w.dir.path().to_path_buf();
    // Two selective builds at once: each records its driver's images; neither loses the other's.
    let (d1, d2) = (dir.clone(), dir.clone());
    let a = std::thread::spawn(move || in_dir(&d1).args(["build", "--driver", "a"]).run());
    let b = std::thread::spawn(move || in_dir(&d2).args(["build", "--driver", "b"]).run());
    a.join().unwrap();
    b.join().unwrap();
    assert_eq!(
        images(&dir),
        [
            format!("a {K1}"),
            format!("a {K2}"),
            format!("b {K1}"),
            format!("b {K2}")
        ]
    );

    // While a build runs, resolve and collect take the same lock: with `--no-wait` they fail
    // at once; without it they wait, and keep what the build recorded.
    let _ = std::fs::remove_file(dir.join("matrix.lock.lock"));
    let d1 = dir.clone();
    let build = std::thread::spawn(move || {
        in_dir(&d1)
            .args(["build", "--force", "--driver", "a"])
            .run()
    });
    wait_for_holder(&dir, "driver-matrix build");
    for cmd in ["resolve", "collect"] {
        in_dir(&dir)
            .args([cmd, "--no-wait"])
            .expect_exit(2)
            .stderr_says("driver-matrix build")
            .run();
    }
    let d2 = dir.clone();
    let resolve = std::thread::spawn(move || in_dir(&d2).args(["resolve"]).run());
    build.join().unwrap();
    resolve.join().unwrap();
    assert_eq!(images(&dir).len(), 4, "{:?}", images(&dir));
}

/// Waits until the writer's lock of `dir`'s lockfile names `holder`.
fn wait_for_holder(dir: &Path, holder: &str) {
    let note = dir.join("matrix.lock.lock");
    for _ in 0..200 {
        if std::fs::read_to_string(&note).is_ok_and(|t| t.contains(holder)) {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    panic!("no `{holder}` took the lock");
}

#[test]
fn a_second_writer_waits_or_with_no_wait_fails_at_once() {
    let w = world("no-wait");
    let dir = w.dir.path();
    let held = Writer::acquire(&dir.join("matrix.lock"), "build", Wait::No, |_| {}).unwrap();
    let out = in_dir(dir)
        .args(["resolve", "--no-wait"])
        .expect_exit(2)
        .run();
    assert!(
        says(
            &out.stderr,
            &format!("pid {}: driver-matrix build", std::process::id())
        ),
        "{}",
        out.stderr
    );
    assert!(!dir.join("matrix.lock").exists(), "nothing was written");
    // Without --no-wait it says whom it waits for, and goes on once the lock is released.
    let d = dir.to_path_buf();
    let waiting = std::thread::spawn(move || in_dir(&d).args(["resolve"]).run());
    std::thread::sleep(std::time::Duration::from_millis(1500));
    drop(held);
    let out = waiting.join().unwrap();
    assert!(
        out.stderr
            .contains("waiting for another driver-matrix to finish writing the lock"),
        "{}",
        out.stderr
    );
    assert!(dir.join("matrix.lock").exists());
}
