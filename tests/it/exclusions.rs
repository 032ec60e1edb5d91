//! Coverage and exclusions: `verify`, `export kmm` and `export preflight` fail for every job
//! the matrix asks for without an image and name the releases it leaves without a driver;
//! `[[exclude]]` takes what it names out of the plan, and a release every driver excludes out
//! of the lock, the warnings, `verify` and every export.

use crate::support;
use support::{Driver, K1, K2, Project};

/// A project whose one driver declares its module, so that `export kmm` runs.
fn project(ns: &str) -> Project {
    let p = Project::new(ns, &[Driver::ok("alpha")]);
    let m = std::fs::read_to_string(p.path().join("matrix.toml")).unwrap();
    p.write(
        "matrix.toml",
        &m.replace("build-args = ", "modules = [\"hello\"]\nbuild-args = "),
    );
    p
}

fn append(p: &Project, text: &str) {
    let mut m = std::fs::read_to_string(p.path().join("matrix.toml")).unwrap();
    m.push_str(text);
    p.write("matrix.toml", &m);
}

#[test]
fn verify_and_the_exports_fail_for_a_job_without_an_image() {
    let p = project("coverage");
    // K2's job is never built: 4.15.1 has no driver.
    p.cmd().args(["build", "--kernel", K1]).run();
    let missing = format!("driver `alpha`: no image for kernel `{K2}` (x86_64)");

    let verify = p.online().args(["verify"]).expect_exit(1).run();
    let out = verify.stdout.clone();
    assert!(
        out.contains(&format!("FAIL {missing}, needed by 4.15.1 (x86_64)")),
        "{out}"
    );
    assert!(
        out.contains(
            "1 job(s) without an image leave 1 release(s) without a driver: 4.15.1 (x86_64)"
        ),
        "{out}"
    );
    assert!(out.contains("1 of 1 images verified"), "{out}");

    for what in ["kmm", "preflight"] {
        let run = p.cmd().args(["export", what]).expect_exit(1).run();
        assert!(run.stderr.contains(&missing), "{what}: {}", run.stderr);
    }
    // The preflight of every locked release is still written.
    let preflight = p
        .cmd()
        .args(["export", "preflight"])
        .expect_exit(1)
        .stdout();
    assert_eq!(
        preflight
            .matches("kind: \"PreflightValidationOCP\"")
            .count(),
        4
    );

    // Built: nothing is missing any more.
    p.cmd().args(["build"]).run();
    p.online().args(["verify"]).run();
    p.cmd().args(["export", "preflight"]).run();
    p.cmd().args(["export", "kmm"]).run();
}

#[test]
fn a_release_every_driver_excludes_leaves_the_lock_the_warnings_verify_and_the_exports() {
    let p = project("excluded");
    // 4.15.1's DTK lags behind its nodes: a warning, and a `verify` failure.
    let lock = p.lock().replacen(
        &format!("kernel = \"{K2}\"\n"),
        &format!("kernel = \"{K2}\"\nnode-kernel = \"5.14.0-427.20.1.el9_4.x86_64\"\n"),
        1,
    );
    std::fs::write(p.lock_path(), lock).unwrap();
    // `build` says it in one line (`resolve` in full).
    let run = p.cmd().args(["build"]).run();
    let line = "Driver Toolkit carries another kernel than its nodes boot (4.15.1 (x86_64))";
    assert!(support::says(&run.stderr, line), "{}", run.stderr);
    let warning = "release 4.15.1 (x86_64): its Driver Toolkit carries kernel";
    let run = p.cmd().args(["resolve"]).run();
    assert!(support::says(&run.stderr, warning), "{}", run.stderr);
    p.online()
        .args(["verify"])
        .expect_exit(1)
        .stdout_contains("FAIL release 4.15.1")
        .run();

    append(&p, "\n[[exclude]]\nopenshift = \"4.15.1\"\n");
    // The lock still names 4.15.1: `verify` and the exports leave it out already.
    p.online().args(["verify"]).run();
    let preflight = p.cmd().args(["export", "preflight"]).stdout();
    assert!(!preflight.contains("4.15.1"), "{preflight}");
    assert_eq!(
        preflight
            .matches("kind: \"PreflightValidationOCP\"")
            .count(),
        3
    );
    let kmm = p.cmd().args(["export", "kmm"]).stdout();
    assert!(!kmm.contains(K2), "{kmm}");

    // The next run takes it out of the lock, image and all, without a warning.
    let err = p.cmd().args(["resolve"]).stderr();
    assert!(!support::says(&err, warning), "{err}");
    assert!(err.contains("removed 4.15.1 (x86_64)"), "{err}");
    let lock = p.lock();
    assert!(!lock.contains("4.15.1") && !lock.contains(K2), "{lock}");
    // Once it has left, `--offline` does not look for it.
    p.reset_calls();
    let run = p.cmd().args(["build"]).run();
    assert_eq!(p.builds(), 0, "{}", run.stderr);
    assert_eq!(p.lock(), lock);
    p.online().args(["verify"]).run();
}

#[test]
fn a_kernel_exclusion_parks_one_kernel_of_one_driver() {
    let p = Project::new("parked", &[Driver::ok("alpha"), Driver::ok("beta")]);
    append(
        &p,
        &format!("\n[[exclude]]\ndriver = \"alpha\"\nkernel = \"{K2}\"\n"),
    );
    p.cmd().args(["build"]).run();
    let lock = driver_matrix::lock::read(&p.lock_path()).unwrap();
    let jobs: Vec<String> = lock
        .images
        .iter()
        .map(|i| format!("{}/{}", i.driver, i.kernel))
        .collect();
    assert_eq!(
        jobs,
        [
            format!("alpha/{K1}"),
            format!("beta/{K1}"),
            format!("beta/{K2}")
        ]
    );
    assert_eq!(lock.releases.len(), 4, "beta still serves 4.15.1");
    p.online().args(["verify"]).run();

    // A kernel rule that names no kernel of the matrix matches nothing: a warning.
    append(&p, "\n[[exclude]]\nkernel = \"5.14.0-1.el9.x86_64\"\n");
    p.cmd()
        .args(["plan"])
        .stderr_contains("matches no cell")
        .run();
}
