//! `driver-matrix build` end to end: real buildah, the real registry, the real binary.

use crate::support;
use support::{Driver, K1, K2, Project, inspect, redact};

#[test]
fn builds_each_kernel_once_pushes_labels_and_locks() {
    let p = Project::new("main", &[Driver::ok("alpha"), Driver::ok("beta")]);
    let run = p.cmd().args(["build", "-j2"]).run();
    // 2 drivers × 4 releases = 8 cells, but 3 releases share K1: 2 × 2 kernels = 4 builds.
    assert_eq!(p.builds(), 4, "{}", run.stderr);
    let lock = p.lock();
    insta::assert_snapshot!("main_lock", redact(&lock, support::registry().addr()));

    let parsed = driver_matrix::lock::read(&p.lock_path()).unwrap();
    assert_eq!(parsed.images.len(), 4);
    for img in &parsed.images {
        let info = inspect(&img.pinned().to_string());
        let label = |k: &str| info["Labels"][k].as_str().unwrap().to_string();
        assert_eq!(label("io.driver-matrix.driver"), img.driver);
        assert_eq!(label("io.driver-matrix.kernel"), img.kernel.as_str());
        assert_eq!(label("io.driver-matrix.arch"), "x86_64");
        assert_eq!(label("io.driver-matrix.dtk"), img.dtk.to_string());
        assert_eq!(label("io.driver-matrix.inputs"), img.inputs.as_str());
        assert_eq!(info["Architecture"], "amd64");
        // The tag points at the locked digest too.
        assert_eq!(
            inspect(&img.image.to_string())["Digest"],
            img.digest.as_str()
        );
    }

    // Nothing changed: nothing built, no buildah call, the lock untouched to the byte.
    p.reset_calls();
    let before = std::fs::metadata(p.lock_path())
        .unwrap()
        .modified()
        .unwrap();
    let run = p.cmd().args(["build"]).run();
    assert_eq!(p.calls(), Vec::<String>::new(), "{}", run.stderr);
    assert_eq!(p.lock(), lock);
    assert_eq!(
        std::fs::metadata(p.lock_path())
            .unwrap()
            .modified()
            .unwrap(),
        before
    );
    assert!(run.stdout.contains("0 built, 4 fresh"), "{}", run.stdout);
    p.cmd().args(["build", "--locked"]).run();

    // One file of alpha's context changes: exactly alpha's two jobs are rebuilt.
    p.write(
        "drivers/alpha/src/hello.c",
        "int main(void) { return 1; }\n",
    );
    p.cmd().args(["build", "--locked"]).expect_exit(3).run();
    let dry = p.cmd().args(["build", "--dry-run"]).run();
    assert_eq!(
        dry.stdout.matches("would build alpha").count(),
        2,
        "{}",
        dry.stdout
    );
    assert!(!dry.stdout.contains("would build beta"));
    assert!(dry.stdout.contains("buildah build --file"));
    assert_eq!(p.calls(), Vec::<String>::new(), "--dry-run runs no buildah");
    assert_eq!(p.lock(), lock, "--dry-run changes nothing");
    p.cmd().args(["build"]).run();
    assert_eq!(p.builds(), 2);
    let after = p.lock();
    let changed: Vec<&str> = lock
        .lines()
        .zip(after.lines())
        .filter(|(a, b)| a != b)
        .map(|(_, b)| b)
        .collect();
    // alpha's two images: inputs and digest each.
    assert_eq!(changed.len(), 4, "{changed:#?}");
    assert!(after.contains(K1) && after.contains(K2));
}

#[test]
fn a_failing_driver_does_not_stop_the_others() {
    let p = Project::new("failing", &[Driver::failing("bad"), Driver::ok("good")]);
    let run = p.cmd().args(["build", "-j2"]).expect_exit(1).run();
    assert_eq!(p.builds(), 4);
    let lock = driver_matrix::lock::read(&p.lock_path()).unwrap();
    let drivers: Vec<&str> = lock.images.iter().map(|i| i.driver.as_str()).collect();
    assert_eq!(drivers, ["good", "good"]);
    let err = run.stderr.clone();
    assert!(
        err.contains(&format!(
            "error: bad {K1} x86_64 failed: exited with status 1"
        )),
        "{err}"
    );
    // The command line as it ran, environment for buildah included.
    assert!(
        err.contains("  command: CONTAINERS_REGISTRIES_CONF=")
            && err.contains(" buildah build --file "),
        "{err}"
    );
    assert!(
        err.contains("  | hello.c:1: error: this driver does not build"),
        "{err}"
    );
    let log = err
        .lines()
        .find_map(|l| l.strip_prefix("  log: "))
        .expect("the failure names its log");
    let text = std::fs::read_to_string(log).unwrap();
    assert!(text.contains("this driver does not build"), "{text}");
    assert!(
        run.stdout.contains("2 built, 0 fresh, 2 failed"),
        "{}",
        run.stdout
    );
    // The next run retries only the failures.
    p.reset_calls();
    p.cmd().args(["build"]).expect_exit(1).run();
    assert_eq!(p.builds(), 2);
}

#[test]
fn fail_fast_starts_nothing_after_a_failure() {
    let p = Project::new("failfast", &[Driver::failing("aaa"), Driver::ok("zzz")]);
    let run = p
        .cmd()
        .args(["build", "-j1", "--fail-fast"])
        .expect_exit(1)
        .run();
    assert_eq!(p.calls(), ["build"], "{}", run.stderr);
    assert!(
        run.stdout
            .contains("0 built, 0 fresh, 1 failed, 3 not built"),
        "{}",
        run.stdout
    );
    assert!(!p.lock().contains("[[image]]"));
}

#[test]
fn locked_fails_before_building() {
    let p = Project::new("locked", &[Driver::ok("alpha")]);
    let run = p.cmd().args(["build", "--locked"]).expect_exit(3).run();
    assert!(
        run.stderr.contains("is out of date")
            && run
                .stderr
                .contains(&format!("would build alpha/{}/x86_64 (new)", support::K1)),
        "{}",
        run.stderr
    );
    assert_eq!(p.builds(), 0);
}

/// The jobs a `--dry-run` would build, as `driver kernel arch` lines.
fn would_build(p: &Project, args: &[&str]) -> Vec<String> {
    let mut all = vec!["build", "--dry-run"];
    all.extend_from_slice(args);
    p.cmd()
        .args(all)
        .stdout()
        .lines()
        .filter_map(|l| l.strip_prefix("would build "))
        .map(|l| l.split(" (").next().unwrap().to_string())
        .collect()
}

#[test]
fn shards_cover_every_job_exactly_once_and_selection_filters() {
    let p = Project::new(
        "shard",
        &[Driver::ok("alpha"), Driver::ok("beta"), Driver::ok("gamma")],
    );
    let mut all = would_build(&p, &[]);
    all.sort();
    assert_eq!(all.len(), 6);
    for n in 1..=4 {
        let mut union = Vec::new();
        for i in 0..n {
            union.extend(would_build(&p, &["--shard", &format!("{i}/{n}")]));
        }
        union.sort();
        assert_eq!(union, all, "shards of {n}");
    }
    let run = p
        .cmd()
        .args(["build", "--dry-run", "--shard", "2/2"])
        .expect_exit(2)
        .run();
    assert!(run.stderr.contains("0-based"), "{}", run.stderr);

    assert_eq!(
        would_build(&p, &["--driver", "beta", "--kernel", K2]),
        [format!("beta {K2} x86_64")]
    );
    assert_eq!(would_build(&p, &["--arch", "x86_64"]).len(), 6);
    let run = p
        .cmd()
        .args(["build", "--driver", "betta"])
        .expect_exit(2)
        .run();
    assert!(
        run.stderr.contains("did you mean `beta`?"),
        "{}",
        run.stderr
    );
    p.cmd()
        .args(["build", "--kernel", "1.2.3"])
        .expect_exit(2)
        .run();
}

#[test]
fn no_push_builds_but_leaves_the_lock() {
    let p = Project::new("nopush", &[Driver::ok("alpha")]);
    let lock = p.lock();
    p.cmd().args(["build", "--no-push", "--kernel", K2]).run();
    assert_eq!(p.calls(), ["build"]);
    assert_eq!(p.lock(), lock);
}

#[test]
fn a_secret_from_the_command_line_reaches_the_build() {
    let reads_secret = Driver {
        name: "signed",
        run: "--mount=type=secret,id=signing-key grep -qx from-ci /run/secrets/signing-key",
    };
    let p = Project::new("secret", &[reads_secret]);
    // Outside the matrix directory: only the command line may name it.
    let elsewhere = tempfile::tempdir().unwrap();
    let key = elsewhere.path().join("signing.priv");
    std::fs::write(&key, "from-ci\n").unwrap();
    let flag = format!("signing-key={}", key.display());
    p.cmd()
        .args(["build", "--no-push", "--kernel", K2, "--secret", &flag])
        .run();
    // Without it the RUN step finds no secret, so the secret above really was mounted.
    p.cmd()
        .args(["build", "--no-push", "--kernel", K2])
        .expect_exit(1)
        .run();
    let injected = format!("signing-key={},env=HOME", key.display());
    p.cmd()
        .args(["build", "--no-push", "--secret", &injected])
        .expect_exit(2)
        .run();
}

#[test]
fn a_killed_build_keeps_what_it_pushed() {
    let p = Project::new("killed", &[Driver::ok("alpha"), Driver::ok("beta")]);
    let mut running = p
        .cmd()
        .args(["build", "-j1"])
        .spawn(std::process::Stdio::null(), std::process::Stdio::null());
    let start = std::time::Instant::now();
    while !p.lock().contains("[[image]]") {
        assert!(start.elapsed().as_secs() < 120, "no image recorded");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    running.child.kill().unwrap();
    running.child.wait().unwrap();
    let lock = driver_matrix::lock::read(&p.lock_path()).expect("the lock parses");
    let kept = lock.images.len();
    assert!((1..4).contains(&kept), "{kept} images kept");
    for img in &lock.images {
        inspect(&img.pinned().to_string());
    }
    p.reset_calls();
    p.cmd().args(["build"]).run();
    assert_eq!(p.builds(), 4 - kept);
}

#[test]
fn ctrl_c_stops_the_running_build_and_keeps_what_was_pushed() {
    let slow = Driver {
        name: "slow",
        run: "sleep 60",
    };
    let p = Project::new("interrupted", &[Driver::ok("alpha"), slow]);
    let running = p
        .cmd()
        .args(["build", "-j1"])
        .expect_exit(130)
        .spawn(std::process::Stdio::piped(), std::process::Stdio::piped());
    let start = std::time::Instant::now();
    // alpha's two jobs are pushed, then slow's first build starts.
    while p.builds() < 3 {
        assert!(start.elapsed().as_secs() < 120, "slow never started");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let pid = i32::try_from(running.child.id()).unwrap();
    // SAFETY: signals the child this test started.
    unsafe {
        libc::kill(pid, libc::SIGINT);
    }
    let out = running.wait();
    assert!(
        start.elapsed().as_secs() < 50,
        "the sleeping build was not stopped"
    );
    assert_eq!(p.builds(), 3, "nothing new started: {}", out.stderr);
    let lock = driver_matrix::lock::read(&p.lock_path()).unwrap();
    assert_eq!(lock.images.len(), 2);
    assert!(out.stdout.contains("interrupted"), "{}", out.stdout);
}

#[test]
fn one_and_four_workers_write_the_same_lock() {
    let drivers = || [Driver::ok("alpha"), Driver::ok("beta")];
    let (a, b) = (
        Project::new("same", &drivers()),
        Project::new("same", &drivers()),
    );
    // Reproducible images (SOURCE_DATE_EPOCH), so that equal inputs give equal digests.
    let run = |p: &Project, j: &str| {
        p.cmd()
            .args(["build", j])
            .env("SOURCE_DATE_EPOCH", "0")
            .run();
    };
    run(&a, "-j1");
    run(&b, "-j4");
    assert_eq!(a.lock(), b.lock());
}

#[test]
fn help() {
    let help = support::dm()
        .args(["build", "--help"])
        .env("COLUMNS", "100")
        .stdout();
    insta::assert_snapshot!("build_help", help);
}

#[test]
fn the_native_store_checks_digests_for_real() {
    use driver_matrix::domain::{Digest, ImageRef};
    use driver_matrix::matrix::RegistrySettings;
    use driver_matrix::registry::has_digest;
    let dtk: ImageRef = support::dtk(K1).parse().unwrap();
    let digest = dtk.digest().unwrap().clone();
    let insecure = RegistrySettings {
        mirror: None,
        insecure: true,
    };
    let store = driver_matrix::registry::Client::new(driver_matrix::registry::ClientOptions {
        registries: [
            (support::registry().addr().to_string(), insecure.clone()),
            ("127.0.0.1:1".to_string(), insecure),
        ]
        .into(),
        retries: 0,
        ..Default::default()
    })
    .unwrap();
    assert!(has_digest(&store, &dtk, &digest).unwrap());
    assert!(!has_digest(&store, &dtk, &Digest::sha256(b"not pushed")).unwrap());
    let missing_repo: ImageRef = format!("{}/test/nothing-here", support::registry().addr())
        .parse()
        .unwrap();
    assert!(!has_digest(&store, &missing_repo, &digest).unwrap());
    let dead: ImageRef = "127.0.0.1:1/test/dtk".parse().unwrap();
    assert!(has_digest(&store, &dead, &digest).is_err());
}
